//! Stage 3, deciding when to dump: admission (cooldown, top-N, queue room, memory), and the
//! triggers themselves — slow spans and errors (through the recording's hooks), signals,
//! panics, the user's `trigger`. They hand a snapshot to the dump thread; they never encode.

pub(crate) mod admission;
pub(crate) mod panic;
#[cfg(all(unix, feature = "signal"))]
pub(crate) mod signal;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing_core::Event;

use crate::dump::context::{DumpContext, Reason, TriggerEvent, TriggerInfo};
use crate::dump::outcome::TriggerOutcome;
use crate::dump::worker::{Dumper, Job, Reservation};
use crate::record::Recording;
use crate::record::hooks::TriggerHooks;
use crate::record::span_timing::Breach;
use crate::sync::lock;
use admission::{CooldownGate, ShardedCounter, Slowest};

/// Default minimum interval between two triggered dumps.
pub(crate) const DEFAULT_COOLDOWN: Duration = Duration::from_secs(60);

/// When triggered dumps may be written.
#[derive(Debug, Clone)]
pub(crate) struct TriggerConfig {
    pub(crate) cooldown: Duration,
    pub(crate) keep_slowest: Option<usize>,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        TriggerConfig {
            cooldown: DEFAULT_COOLDOWN,
            keep_slowest: None,
        }
    }
}

/// Admission state behind the lock.
#[derive(Default)]
struct State {
    /// Triggers suppressed under the lock (queue, top-N, memory).
    suppressed: u64,
    slowest: Slowest<PathBuf>,
}

/// The triggers of one recorder.
pub(crate) struct Triggers {
    pub(crate) recording: Arc<Recording>,
    pub(crate) dumper: Arc<Dumper>,
    keep_slowest: Option<usize>,
    gate: CooldownGate,
    /// Triggers suppressed by the cooldown, counted without the lock.
    gated: ShardedCounter,
    /// Shared with the dump thread's after-write calls (top-N).
    state: Arc<Mutex<State>>,
    pub(crate) panics: panic::PanicDumps,
    /// Stops the signal thread when the recorder goes away.
    #[cfg(all(unix, feature = "signal"))]
    pub(crate) signals: Mutex<Option<signal_hook::iterator::Handle>>,
}

/// An admitted trigger: its place in the queue and its top-N entry; dropped without being
/// submitted (a `Debug` impl panicked while its event was taken, say), it gives both back and
/// counts as suppressed.
struct Admitted<'a> {
    triggers: &'a Triggers,
    reservation: Option<Reservation<'a>>,
    slowest_entry: Option<u64>,
    suppressed: u64,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        if self.reservation.is_some() {
            let mut state = lock(&self.triggers.state);
            state.suppressed += 1 + self.suppressed;
            if let Some(entry) = self.slowest_entry {
                state.slowest.abandon(entry);
            }
        }
    }
}

impl Triggers {
    pub(crate) fn new(
        recording: Arc<Recording>,
        dumper: Arc<Dumper>,
        config: &TriggerConfig,
    ) -> Self {
        Triggers {
            recording,
            dumper,
            keep_slowest: config.keep_slowest,
            gate: CooldownGate::new(u64::try_from(config.cooldown.as_nanos()).unwrap_or(u64::MAX)),
            gated: ShardedCounter::default(),
            state: Arc::default(),
            panics: panic::PanicDumps::default(),
            #[cfg(all(unix, feature = "signal"))]
            signals: Mutex::new(None),
        }
    }

    /// Triggers suppressed since the last triggered dump (which reported them).
    pub(crate) fn suppressed_pending(&self) -> u64 {
        lock(&self.state).suppressed + self.gated.peek()
    }

    /// A triggered dump at `now` (raw clock): if admitted, the context is completed (`event` is
    /// only called then), the snapshot taken, and the dump queued. A suppressed trigger copies
    /// nothing; inside the cooldown it costs one atomic load.
    pub(crate) fn trigger(
        &self,
        reason: Reason,
        now: u64,
        slow: Option<TriggerInfo>,
        event: impl FnOnce() -> Option<TriggerEvent>,
    ) -> TriggerOutcome {
        if !self.recording.enabled {
            return TriggerOutcome::Disabled;
        }
        let now = self.recording.timebase.nanos_since_anchor(now);
        let Some(mut admitted) = self.admit(&reason, now, slow.as_ref().map(|s| s.duration_nanos))
        else {
            return TriggerOutcome::Suppressed;
        };
        let context = DumpContext {
            trigger: slow,
            event: event(),
            suppressed: admitted.suppressed,
            ..DumpContext::new(reason)
        };
        let after_write = admitted.slowest_entry.map(|entry| {
            let state = Arc::clone(&self.state);
            Box::new(move |path: &Path| lock(&state).slowest.written(entry, path.to_owned()))
                as Box<dyn FnOnce(&Path) -> bool + Send>
        });
        let job = Job {
            context,
            capture: self.recording.capture(),
            after_write,
        };
        let Some(reservation) = admitted.reservation.take() else {
            return TriggerOutcome::Suppressed;
        };
        self.dumper.submit(reservation, job)
    }

    /// The cooldown (rate-limited reasons), then under the lock: the cooldown again, room in
    /// the queue, the memory snapshots hold beyond the budget, top-N (`slow_nanos`).
    #[inline]
    fn admit(&self, reason: &Reason, now: u64, slow_nanos: Option<u64>) -> Option<Admitted<'_>> {
        let rate_limited = reason.is_rate_limited();
        if rate_limited && self.gate.is_closed(now) {
            self.gated.increment();
            return None;
        }
        let mut state = lock(&self.state);
        if rate_limited && self.gate.is_closed(now) {
            drop(state);
            self.gated.increment();
            return None;
        }
        let within_memory = self.recording.storage.held_bytes() <= self.recording.max_bytes();
        let Some(reservation) = within_memory.then(|| self.dumper.reserve()).flatten() else {
            state.suppressed += 1;
            return None;
        };
        let slowest_entry = match (self.keep_slowest, slow_nanos) {
            (Some(keep), Some(nanos)) => {
                let Some((entry, displaced)) = state.slowest.admit(keep, nanos) else {
                    state.suppressed += 1;
                    return None;
                };
                self.dumper.delete_later(displaced);
                Some(entry)
            }
            _ => None,
        };
        if rate_limited {
            self.gate.close(now);
        }
        let suppressed = std::mem::take(&mut state.suppressed) + self.gated.take();
        Some(Admitted {
            triggers: self,
            reservation: Some(reservation),
            slowest_entry,
            suppressed,
        })
    }
}

impl TriggerHooks for Triggers {
    fn error_event(&self, event: &Event<'_>, recorded: bool, now: u64) {
        let recording = &self.recording;
        self.trigger(Reason::Error, now, None, || {
            Some(TriggerEvent::capture(
                event,
                recording.max_field_bytes,
                &recording.redaction,
                recorded,
            ))
        });
    }

    fn slow_span(&self, breach: Breach, now: u64) {
        let Some(slow) = &self.recording.slow else {
            return;
        };
        let info = TriggerInfo {
            span_name: breach.metadata.name(),
            span_id: breach.key,
            duration_nanos: breach.duration_nanos,
            threshold_nanos: breach.threshold_nanos,
            timing: slow.timing().as_str(),
        };
        self.trigger(Reason::SlowSpan, now, Some(info), || None);
    }

    #[cfg(feature = "tokio")]
    fn task_trouble(&self, breach: crate::record::tasks::TaskBreach, now: u64) {
        use crate::record::tasks::TaskTrouble;
        let (reason, timing) = match breach.trouble {
            TaskTrouble::LongPoll => (Reason::LongPoll, "poll"),
            TaskTrouble::ScheduledDelay => (Reason::ScheduledDelay, "scheduled_delay"),
        };
        let info = TriggerInfo {
            span_name: breach.metadata.name(),
            span_id: breach.key,
            duration_nanos: breach.duration_nanos,
            threshold_nanos: breach.threshold_nanos,
            timing,
        };
        self.trigger(reason, now, Some(info), || None);
    }
}

impl Drop for Triggers {
    fn drop(&mut self) {
        #[cfg(all(unix, feature = "signal"))]
        if let Some(signals) = lock(&self.signals).take() {
            signals.close();
        }
    }
}
