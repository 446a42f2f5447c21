#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![warn(unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "cli")]
#[cfg_attr(docsrs, doc(cfg(feature = "cli")))]
pub mod analyze;
mod atomic;
mod builder;
mod config;
mod dump;
mod env;
mod error;
mod record;
mod recorder;
#[cfg(feature = "http")]
mod serve;
mod sync;
mod trigger;
#[path = "analyze/validate.rs"]
pub mod validate;

pub use builder::{Builder, MAX_FIELD_LEN_LIMIT, MAX_MAX_BYTES, MIN_MAX_BYTES};
pub use config::{DEFAULT_MAX_BYTES, DEFAULT_MAX_FIELD_LEN, DEFAULT_MIN_AGE};
pub use dump::chrome::FORMAT_VERSION;
pub use dump::files::DumpInfo;
pub use dump::outcome::{DumpOutcome, SlowSpan, TriggerOutcome};
pub use dump::snapshot::{Counters, ORPHAN_SPAN_BIT, Record, RecordKind, Snapshot, ThreadInfo};
pub use dump::worker::{DEFAULT_DUMP_DIR, DEFAULT_QUEUE_CAPACITY};
pub use env::ENV_VARS;
pub use error::{BuildError, DumpError, DumpStage};
pub use record::encode::{Field, FieldValue, TRUNCATION_MARKER};
pub use record::layer::FlightRecorderLayer;
pub use record::redact::{DEFAULT_REDACTED_FIELDS, REDACTED};
pub use record::span_timing::SpanTiming;
pub use recorder::FlightRecorder;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use serve::{
    HttpConfig, HttpError, HttpServer, MAX_BODIES_IN_FLIGHT, MAX_HEADER_BYTES, MAX_HEADERS,
    SNAPSHOT_PATH,
};
pub use trigger::DEFAULT_COOLDOWN;
