//! The runtime-trouble triggers (feature `tokio`): per-task poll and wake timing from tokio's
//! own instrumentation (`--cfg tokio_unstable` with tokio's `tracing` feature).
//!
//! tokio wraps every spawned task in a `runtime.spawn` span (target `tokio::task`) entered
//! around each poll, and emits a `tokio::task::waker` event (`op`, `task.id` = the span's
//! registry id) for each waker operation. Telling them from other records costs a length
//! compare of the name or target, nearly always unequal. (Not a set of callsites learnt in
//! `register_callsite`: a callsite first hit while another thread builds a dispatcher can miss
//! that dispatcher's registration.)
//! Task state lives in a sharded table like the latency trigger's; only the spans tokio
//! created for tasks get an entry. A task is *ready* from its wake (or its spawn) until its
//! next poll starts: a wake while it is being polled makes it ready from that poll's end.

use std::sync::Mutex;
use std::time::Duration;

use rustc_hash::FxHashMap;
use tracing_core::field::{Field, Visit};
use tracing_core::{Event, Metadata};

use crate::record::span_timing::ShardedSpans;
use crate::sync::lock;

/// Thresholds from the builder.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TaskTriggerConfig {
    pub(crate) long_poll: Option<Duration>,
    pub(crate) scheduled_delay: Option<Duration>,
}

impl TaskTriggerConfig {
    pub(crate) fn is_enabled(&self) -> bool {
        self.long_poll.is_some() || self.scheduled_delay.is_some()
    }
}

/// What a task's timing broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskTrouble {
    /// One poll ran longer than the threshold (the task blocked its worker).
    LongPoll,
    /// The task waited longer than the threshold between being woken and being polled.
    ScheduledDelay,
}

/// A task over one of its thresholds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TaskBreach {
    pub(crate) trouble: TaskTrouble,
    /// The recorder's id of the task's span.
    pub(crate) key: u64,
    pub(crate) metadata: &'static Metadata<'static>,
    pub(crate) duration_nanos: u64,
    pub(crate) threshold_nanos: u64,
}

#[derive(Clone, Copy)]
struct TaskState {
    key: u64,
    metadata: &'static Metadata<'static>,
    /// Raw clock reading since which the task has been waiting to be polled.
    ready_since: Option<u64>,
    /// Start of the poll in progress.
    poll_start: Option<u64>,
    /// Woken during the poll in progress: ready again from its end.
    woken_while_polled: bool,
}

impl TaskState {
    /// A breach if `duration_nanos` is over `threshold_nanos`.
    fn breach(
        &self,
        trouble: TaskTrouble,
        duration_nanos: u64,
        threshold_nanos: u64,
    ) -> Option<TaskBreach> {
        (duration_nanos > threshold_nanos).then_some(TaskBreach {
            trouble,
            key: self.key,
            metadata: self.metadata,
            duration_nanos,
            threshold_nanos,
        })
    }
}

/// Per-task timing for the long-poll and scheduled-delay triggers.
pub(crate) struct TaskWatch {
    long_poll_nanos: Option<u64>,
    delay_nanos: Option<u64>,
    tasks: ShardedSpans<TaskState>,
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Whether `metadata` is tokio's span around a task's polls (not a blocking task's: those are
/// meant to block).
#[inline]
fn is_async_task_span(metadata: &Metadata<'_>) -> bool {
    metadata.name() == "runtime.spawn" && metadata.target() == "tokio::task"
}

/// Whether `metadata` is one of tokio's waker events.
#[inline]
fn is_waker_event(metadata: &Metadata<'_>) -> bool {
    metadata.target() == "tokio::task::waker"
}

/// Reads a waker event's `op` and `task.id`.
#[derive(Default)]
struct WakerFields {
    wakes: bool,
    task: Option<u64>,
}

impl Visit for WakerFields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "task.id" {
            self.task = Some(value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "op" {
            self.wakes = value == "waker.wake" || value == "waker.wake_by_ref";
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}

impl TaskWatch {
    pub(crate) fn new(config: &TaskTriggerConfig) -> Self {
        TaskWatch {
            long_poll_nanos: config.long_poll.map(nanos),
            delay_nanos: config.scheduled_delay.map(nanos),
            tasks: ShardedSpans::new(),
        }
    }

    fn shard(&self, id: u64) -> &Mutex<FxHashMap<u64, TaskState>> {
        self.tasks.shard(id)
    }

    /// A new span: a task, ready from its spawn, if tokio made it.
    #[inline]
    pub(crate) fn on_new(&self, id: u64, key: u64, metadata: &'static Metadata<'static>, now: u64) {
        if !is_async_task_span(metadata) {
            return;
        }
        lock(self.shard(id)).insert(
            id,
            TaskState {
                key,
                metadata,
                ready_since: Some(now),
                poll_start: None,
                woken_while_polled: false,
            },
        );
    }

    /// A span entered: if it is a task, a poll starts; returns the breach if it waited too long.
    #[inline]
    pub(crate) fn on_enter(
        &self,
        id: u64,
        now: u64,
        nanos_between: impl Fn(u64, u64) -> u64,
    ) -> Option<TaskBreach> {
        let mut shard = lock(self.shard(id));
        let task = shard.get_mut(&id)?;
        let waited = task
            .ready_since
            .take()
            .map(|since| nanos_between(since, now));
        task.poll_start = Some(now);
        task.woken_while_polled = false;
        task.breach(TaskTrouble::ScheduledDelay, waited?, self.delay_nanos?)
    }

    /// A span exited: if it is a task, its poll ends; returns the breach if the poll was long.
    #[inline]
    pub(crate) fn on_exit(
        &self,
        id: u64,
        now: u64,
        nanos_between: impl Fn(u64, u64) -> u64,
    ) -> Option<TaskBreach> {
        let mut shard = lock(self.shard(id));
        let task = shard.get_mut(&id)?;
        let polled = nanos_between(task.poll_start.take()?, now);
        if task.woken_while_polled {
            task.ready_since = Some(now);
        }
        task.breach(TaskTrouble::LongPoll, polled, self.long_poll_nanos?)
    }

    /// An event: if it is tokio waking a task, the task is ready from now (or from the end of
    /// the poll it is in).
    #[inline]
    pub(crate) fn on_event(&self, event: &Event<'_>, now: u64) {
        if !is_waker_event(event.metadata()) {
            return;
        }
        let mut fields = WakerFields::default();
        event.record(&mut fields);
        let (true, Some(id)) = (fields.wakes, fields.task) else {
            return;
        };
        let mut shard = lock(self.shard(id));
        let Some(task) = shard.get_mut(&id) else {
            return;
        };
        if task.poll_start.is_some() {
            task.woken_while_polled = true;
        } else if task.ready_since.is_none() {
            task.ready_since = Some(now);
        }
    }

    /// A span closed: forgets the task.
    #[inline]
    pub(crate) fn on_close(&self, id: u64) {
        lock(self.shard(id)).remove(&id);
    }
}
