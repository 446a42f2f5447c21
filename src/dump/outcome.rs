//! What dumps and triggers report to the application: [`DumpOutcome`], [`SlowSpan`],
//! [`TriggerOutcome`].

use std::path::PathBuf;
use std::time::Duration;

use crate::dump::context::TriggerInfo;
use crate::error::DumpError;

/// What happened to one dump file: given to the `on_dump` callback.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DumpOutcome {
    /// Why the dump was written: `slow_span`, `long_poll`, `scheduled_delay`, `error`,
    /// `signal`, `panic`, `manual`, `http`, or
    /// the string given to [`FlightRecorder::trigger`](crate::FlightRecorder::trigger).
    pub reason: String,
    /// The file written, or the one that was meant to be when it failed.
    pub path: PathBuf,
    /// Bytes written (0 on failure).
    pub bytes: u64,
    /// Time from the start of encoding to the file being in place.
    pub took: Duration,
    /// The error, if the dump failed. Nothing is left behind then, and recording goes on.
    pub error: Option<DumpError>,
    /// For a `slow_span` dump: the span that was slow; for `long_poll` and `scheduled_delay`:
    /// the task's span (`runtime.spawn`) and how long the poll ran or the task waited.
    pub slow_span: Option<SlowSpan>,
    /// Where it went: a file (at `path`), or an OTLP receiver (whose URL `path` then holds).
    pub destination: Destination,
}

/// Where a dump went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Destination {
    /// A Chrome Trace Event JSON file.
    File,
    /// An OTLP/HTTP receiver ([`Builder::export_otlp`](crate::Builder::export_otlp)).
    Otlp,
}

/// The span whose latency triggered a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SlowSpan {
    /// The span's name.
    pub name: &'static str,
    /// The recorder's id of the span (`span_id` in the dump).
    pub id: u64,
    /// How long it took (wall or busy time, as configured).
    pub duration: Duration,
    /// The threshold it exceeded.
    pub threshold: Duration,
}

impl From<&TriggerInfo> for SlowSpan {
    fn from(info: &TriggerInfo) -> Self {
        SlowSpan {
            name: info.span_name,
            id: info.span_id,
            duration: Duration::from_nanos(info.duration_nanos),
            threshold: Duration::from_nanos(info.threshold_nanos),
        }
    }
}

/// What [`FlightRecorder::trigger`](crate::FlightRecorder::trigger) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TriggerOutcome {
    /// A snapshot was taken and queued; the dump thread writes it.
    Queued,
    /// Within the cooldown, or the queue was full, or not among the slowest kept, or dumps
    /// already hold their memory bound: no dump, nothing copied; counted, and reported by the
    /// next dump as `otherData.suppressed`.
    Suppressed,
    /// The recorder is switched off ([`Builder::enabled`](crate::Builder::enabled),
    /// `BLACKBOX=0`): it has nothing to dump.
    Disabled,
}
