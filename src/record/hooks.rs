//! How the hot path reaches the triggers without depending on them: the layer calls this trait,
//! which the `trigger` stage implements.

use tracing_core::Event;

use crate::record::span_timing::Breach;

/// What the layer tells the triggers. Called after the record is stored (or dropped), outside
/// any lock of the recorder's.
pub(crate) trait TriggerHooks: Send + Sync {
    /// An event at or above the error level; `recorded` says whether it is in the buffer.
    fn error_event(&self, event: &Event<'_>, recorded: bool, now: u64);

    /// A span closed over its latency threshold at `now`.
    fn slow_span(&self, breach: Breach, now: u64);

    /// A tokio task polled for too long, or waited too long to be polled, at `now`.
    #[cfg(feature = "tokio")]
    fn task_trouble(&self, breach: crate::record::tasks::TaskBreach, now: u64);
}
