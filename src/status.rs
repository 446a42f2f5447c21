//! The recorder at a glance: what [`FlightRecorder::status`](crate::FlightRecorder::status)
//! returns and `GET /debug/trace/status` serves, for health checks.

use std::path::PathBuf;
use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::dump::outcome::DumpOutcome;

/// The recorder's state and counters at one instant. Taking it copies no records.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecorderStatus {
    /// Whether it records now ([`stop`](crate::FlightRecorder::stop) and
    /// [`start`](crate::FlightRecorder::start) switch it; `BLACKBOX=0` keeps it off).
    pub recording: bool,
    /// The memory budget for records, in bytes.
    pub max_bytes: usize,
    /// Record storage allocated now, in bytes; never more than `max_bytes`.
    pub allocated_bytes: usize,
    /// Threads recording now (exited threads whose records are still kept are not counted).
    pub threads: usize,
    /// Records written since the start.
    pub written: u64,
    /// Records overwritten (evicted by newer ones, or aged out past `min_age`).
    pub overwritten: u64,
    /// Records dropped (re-entrant callbacks, records too large to keep).
    pub dropped: u64,
    /// Triggers suppressed (cooldown, full queue, top-N) since the last triggered dump.
    pub suppressed: u64,
    /// Dumps written since the start: files (triggered, manual into a directory, panic) and
    /// windows exported to OTLP.
    pub dumps_written: u64,
    /// Dumps that failed since the start (files, and OTLP exports).
    pub dumps_failed: u64,
    /// The latest dump's outcome (a file or an export), and when it was reported.
    pub last_dump: Option<(SystemTime, DumpOutcome)>,
    /// The crash file the records live in, for a crash-safe recorder (feature `crash`).
    pub crash_file: Option<PathBuf>,
}

impl RecorderStatus {
    /// The status as the JSON object `GET /debug/trace/status` serves (times in RFC 3339).
    pub fn to_json(&self) -> String {
        let last_dump = self
            .last_dump
            .as_ref()
            .map_or(Value::Null, |(at, outcome)| {
                json!({
                    "at": DateTime::<Utc>::from(*at).to_rfc3339_opts(SecondsFormat::Millis, true),
                    "reason": outcome.reason,
                    "path": outcome.path.to_string_lossy(),
                    "bytes": outcome.bytes,
                    "took_ms": outcome.took.as_secs_f64() * 1e3,
                    "error": outcome.error.as_ref().map(ToString::to_string),
                })
            });
        json!({
            "format": "tracing-blackbox-status",
            "crate_version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "recording": self.recording,
            "max_bytes": self.max_bytes,
            "allocated_bytes": self.allocated_bytes,
            "threads": self.threads,
            "written": self.written,
            "overwritten": self.overwritten,
            "dropped": self.dropped,
            "suppressed": self.suppressed,
            "dumps_written": self.dumps_written,
            "dumps_failed": self.dumps_failed,
            "last_dump": last_dump,
            "crash_file": self.crash_file.as_ref().map(|path| path.to_string_lossy()),
        })
        .to_string()
    }
}
