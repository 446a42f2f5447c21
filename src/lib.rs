#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![warn(
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms,
    clippy::undocumented_unsafe_blocks
)]

mod admission;
#[cfg(feature = "cli")]
pub mod analyze;
mod builder;
mod callback;
mod chrome;
mod context;
mod dump;
mod env;
mod error;
mod files;
#[cfg(feature = "http")]
mod http;
mod layer;
mod outcome;
mod quiet;
mod reader;
mod record;
mod recorder;
mod redact;
#[cfg(all(unix, feature = "signal"))]
mod signal;
mod slow;
mod snapshot;
mod storage;
pub mod validate;

pub use builder::{
    Builder, DEFAULT_MAX_BYTES, DEFAULT_MAX_FIELD_LEN, DEFAULT_MIN_AGE, MAX_FIELD_LEN_LIMIT,
    MAX_MAX_BYTES, MIN_MAX_BYTES,
};
pub use chrome::FORMAT_VERSION;
pub use dump::{DEFAULT_COOLDOWN, DEFAULT_DUMP_DIR, DEFAULT_QUEUE_CAPACITY};
pub use env::ENV_VARS;
pub use error::{BuildError, DumpError, DumpStage};
pub use files::DumpInfo;
#[cfg(feature = "http")]
pub use http::{
    HttpConfig, HttpError, HttpServer, MAX_BODIES_IN_FLIGHT, MAX_HEADER_BYTES, MAX_HEADERS,
    SNAPSHOT_PATH,
};
pub use layer::FlightRecorderLayer;
pub use outcome::{DumpOutcome, SlowSpan, TriggerOutcome};
pub use record::{Field, FieldValue, TRUNCATION_MARKER};
pub use recorder::FlightRecorder;
pub use redact::{DEFAULT_REDACTED_FIELDS, REDACTED};
pub use slow::SpanTiming;
pub use snapshot::{Counters, ORPHAN_SPAN_BIT, Record, RecordKind, Snapshot, ThreadInfo};
