#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![warn(unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "analyze")]
#[cfg_attr(docsrs, doc(cfg(feature = "analyze")))]
pub mod analyze;
mod atomic;
mod builder;
mod config;
mod dump;
mod env;
mod error;
mod record;
mod recorder;
#[cfg(feature = "crash")]
#[cfg_attr(docsrs, doc(cfg(feature = "crash")))]
pub mod recover;
#[cfg(all(feature = "crash", not(unix)))]
compile_error!("the `crash` feature needs a unix target (a shared file mapping and /proc or kill)");
#[cfg(feature = "http")]
mod serve;
mod status;
mod sync;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;
mod trigger;
#[path = "analyze/validate.rs"]
pub mod validate;

pub use builder::Builder;
pub use dump::chrome::FORMAT_VERSION;
#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
pub use dump::export::ExportInfo;
pub use dump::files::DumpInfo;
#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
pub use dump::otlp::OtlpConfig;
pub use dump::outcome::{Destination, DumpOutcome, SlowSpan, TriggerOutcome};
pub use dump::snapshot::{Counters, ORPHAN_SPAN_BIT, Record, RecordKind, Snapshot, ThreadInfo};
pub use env::{CRASH_ENV_VAR, ENV_VARS, OTLP_ENV_VARS};
pub use error::{BuildError, DumpError, DumpStage};
pub use record::encode::{Field, FieldValue, TRUNCATION_MARKER};
pub use record::layer::FlightRecorderLayer;
pub use record::redact::{DEFAULT_REDACTED_FIELDS, REDACTED};
pub use record::span_timing::SpanTiming;
pub use recorder::FlightRecorder;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use serve::{HttpConfig, HttpError, HttpServer, SNAPSHOT_PATH, STATUS_PATH};
pub use status::RecorderStatus;

// Defaults and limits kept at the root for code written before they moved to `Builder`.

/// Default hard cap on record storage.
#[deprecated(note = "use `Builder::DEFAULT_MAX_BYTES`")]
pub const DEFAULT_MAX_BYTES: usize = Builder::DEFAULT_MAX_BYTES;
/// Default history the recorder aims to keep.
#[deprecated(note = "use `Builder::DEFAULT_MIN_AGE`")]
pub const DEFAULT_MIN_AGE: std::time::Duration = Builder::DEFAULT_MIN_AGE;
/// Default cut-off for one field value, in bytes.
#[deprecated(note = "use `Builder::DEFAULT_MAX_FIELD_LEN`")]
pub const DEFAULT_MAX_FIELD_LEN: usize = Builder::DEFAULT_MAX_FIELD_LEN;
/// Smallest accepted `max_bytes`.
#[deprecated(note = "use `Builder::MIN_MAX_BYTES`")]
pub const MIN_MAX_BYTES: usize = Builder::MIN_MAX_BYTES;
/// Largest accepted `max_bytes`.
#[deprecated(note = "use `Builder::MAX_MAX_BYTES`")]
pub const MAX_MAX_BYTES: usize = Builder::MAX_MAX_BYTES;
/// Largest accepted `max_field_len`.
#[deprecated(note = "use `Builder::MAX_FIELD_LEN_LIMIT`")]
pub const MAX_FIELD_LEN_LIMIT: usize = Builder::MAX_FIELD_LEN_LIMIT;
/// Default minimum interval between two triggered dumps.
#[deprecated(note = "use `Builder::DEFAULT_COOLDOWN`")]
pub const DEFAULT_COOLDOWN: std::time::Duration = Builder::DEFAULT_COOLDOWN;
/// Default directory for triggered dumps.
#[deprecated(note = "use `Builder::DEFAULT_DUMP_DIR`")]
pub const DEFAULT_DUMP_DIR: &str = Builder::DEFAULT_DUMP_DIR;
/// Default number of triggered dumps that may wait for the dump thread.
#[deprecated(note = "use `Builder::DEFAULT_QUEUE_CAPACITY`")]
pub const DEFAULT_QUEUE_CAPACITY: usize = Builder::DEFAULT_QUEUE_CAPACITY;
