//! What a dump says about why it was written: the typed reason, the slow span or error event
//! that triggered it, and other `otherData` entries.

use serde_json::Value;
use tracing_core::Metadata;

use crate::dump::reader::{Body, RecordReader};
use crate::record::encode::{Field, Scratch, kind};
use crate::record::redact::Redaction;

/// Why a dump is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reason {
    /// A span closed over its latency threshold.
    SlowSpan,
    /// An event at the error level (or the configured one).
    Error,
    /// SIGUSR1.
    #[cfg_attr(not(all(unix, feature = "signal")), allow(dead_code))]
    Signal,
    /// A panic (written synchronously by the panic hook).
    Panic,
    /// `write_to`, `dump_to_file`, `dump_to_dir`.
    Manual,
    /// The snapshot endpoint.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    Http,
    /// [`FlightRecorder::trigger`](crate::FlightRecorder::trigger) with the user's label.
    User(String),
    /// A tokio task's poll ran over its threshold (feature `tokio`).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    LongPoll,
    /// A tokio task waited over its threshold to be polled (feature `tokio`).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    ScheduledDelay,
    /// Read back from a crash file after its process died (feature `crash`).
    #[cfg_attr(not(feature = "crash"), allow(dead_code))]
    Crash,
}

impl Reason {
    /// The name written to `otherData.reason` and used in file names.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Reason::SlowSpan => "slow_span",
            Reason::Error => "error",
            Reason::Signal => "signal",
            Reason::Panic => "panic",
            Reason::Manual => "manual",
            Reason::Http => "http",
            Reason::User(label) => label,
            Reason::Crash => "crash",
            Reason::LongPoll => "long_poll",
            Reason::ScheduledDelay => "scheduled_delay",
        }
    }

    /// Whether the cooldown applies: automatic triggers yes, an operator's request no.
    pub(crate) fn is_rate_limited(&self) -> bool {
        matches!(
            self,
            Reason::SlowSpan
                | Reason::Error
                | Reason::User(_)
                | Reason::LongPoll
                | Reason::ScheduledDelay
        )
    }
}

/// Why a dump was written, and what else `otherData` should say.
#[derive(Debug, Clone)]
pub(crate) struct DumpContext {
    pub(crate) reason: Reason,
    /// The span whose latency triggered the dump.
    pub(crate) trigger: Option<TriggerInfo>,
    /// The event that triggered an error dump.
    pub(crate) event: Option<TriggerEvent>,
    /// Triggers suppressed (cooldown, full queue, top-N, memory) since the previous triggered
    /// dump.
    pub(crate) suppressed: u64,
    /// More `otherData` entries (the panic's message and location, say).
    pub(crate) extra: Vec<(&'static str, Value)>,
    /// The process the records come from, when it is not this one: its pid and name.
    pub(crate) process: Option<(u32, String)>,
}

impl DumpContext {
    pub(crate) fn new(reason: Reason) -> Self {
        DumpContext {
            reason,
            trigger: None,
            event: None,
            suppressed: 0,
            extra: Vec::new(),
            process: None,
        }
    }

    /// The label a triggered dump's file name starts with: the reason, and the slow span's
    /// name (a task's span is always `runtime.spawn`: the reason says enough).
    pub(crate) fn label(&self) -> String {
        match (&self.reason, &self.trigger) {
            (Reason::SlowSpan, Some(trigger)) => {
                format!("{}_{}", self.reason.as_str(), trigger.span_name)
            }
            _ => self.reason.as_str().to_owned(),
        }
    }
}

/// A slow span that triggered a dump.
#[derive(Debug, Clone)]
pub(crate) struct TriggerInfo {
    pub(crate) span_name: &'static str,
    /// The recorder's id of the span.
    pub(crate) span_id: u64,
    pub(crate) duration_nanos: u64,
    pub(crate) threshold_nanos: u64,
    /// What was measured: `wall` or `busy` (slow spans), `poll` or `scheduled_delay` (tasks).
    pub(crate) timing: &'static str,
}

/// The event that triggered an error dump, taken when the trigger was accepted (so the dump
/// names it even if the event itself could not be recorded).
#[derive(Debug, Clone)]
pub(crate) struct TriggerEvent {
    pub(crate) metadata: &'static Metadata<'static>,
    pub(crate) fields: Vec<Field>,
    /// Whether the event is also among the dump's records.
    pub(crate) recorded: bool,
}

impl TriggerEvent {
    /// Takes an event's fields as the recorder keeps them (cut, redacted). Allocates: called
    /// only for an accepted trigger.
    pub(crate) fn capture(
        event: &tracing_core::Event<'_>,
        max_value_bytes: usize,
        redaction: &Redaction,
        recorded: bool,
    ) -> Self {
        let mut scratch = Scratch::new();
        scratch.begin(kind::EVENT, 0);
        scratch.put_metadata(event.metadata());
        scratch.put_u64(0);
        let mut fields = scratch.fields(max_value_bytes, Some(redaction));
        event.record(&mut fields);
        let flags = fields.flags();
        let fields = match RecordReader::of_encoded(scratch.finish(flags)).next() {
            Some((
                _,
                crate::dump::reader::RecordView {
                    body: Body::Event { fields, .. },
                    ..
                },
            )) => fields.decode(),
            _ => Vec::new(),
        };
        TriggerEvent {
            metadata: event.metadata(),
            fields,
            recorded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_and_rate_limits() {
        assert_eq!(Reason::SlowSpan.as_str(), "slow_span");
        assert_eq!(
            Reason::User("payment_failed".into()).as_str(),
            "payment_failed"
        );
        for (reason, limited) in [
            (Reason::SlowSpan, true),
            (Reason::Error, true),
            (Reason::User("x".into()), true),
            (Reason::Signal, false),
            (Reason::Panic, false),
            (Reason::Manual, false),
            (Reason::Http, false),
            (Reason::Crash, false),
            (Reason::LongPoll, true),
            (Reason::ScheduledDelay, true),
        ] {
            assert_eq!(reason.is_rate_limited(), limited, "{reason:?}");
        }
    }
}
