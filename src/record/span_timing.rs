//! The latency trigger: per-span timing for spans that have a threshold.
//!
//! Timing state lives in a table preallocated at build time and sharded by registry span id
//! (spans may close on another thread than the one that created them), never in the
//! registry's extensions, which would allocate a `Box` per span. Only spans with a threshold
//! get an entry; others cost one look-up of their name.

use std::sync::Mutex;
use std::time::Duration;

use crossbeam_utils::CachePadded;
use rustc_hash::FxHashMap;
use tracing_core::Metadata;

use crate::sync::lock;

const SHARDS: usize = 16;
/// Entries preallocated per shard; the table grows (once) beyond that many open spans.
const SHARD_CAPACITY: usize = 256;

/// How a span's latency is measured for the slow-span trigger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpanTiming {
    /// Wall time from creation to close (default): what a caller waited.
    #[default]
    Wall,
    /// Busy time: the sum of the intervals the span was entered, like the `fmt` layer's
    /// `time.busy`.
    Busy,
}

impl SpanTiming {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SpanTiming::Wall => "wall",
            SpanTiming::Busy => "busy",
        }
    }
}

/// Thresholds from the builder.
#[derive(Debug, Clone, Default)]
pub(crate) struct SlowSpanConfig {
    pub(crate) default: Option<Duration>,
    /// Per span name or target; a name match wins over a target match.
    pub(crate) by_name: Vec<(String, Duration)>,
    pub(crate) timing: SpanTiming,
}

impl SlowSpanConfig {
    pub(crate) fn is_enabled(&self) -> bool {
        self.default.is_some() || !self.by_name.is_empty()
    }
}

struct Timing {
    key: u64,
    metadata: &'static Metadata<'static>,
    start: u64,
    threshold_nanos: u64,
    busy_nanos: u64,
    entered: u32,
    entered_at: u64,
}

/// A span that closed over its threshold.
pub(crate) struct Breach {
    pub(crate) key: u64,
    pub(crate) metadata: &'static Metadata<'static>,
    pub(crate) duration_nanos: u64,
    pub(crate) threshold_nanos: u64,
}

pub(crate) struct SlowSpans {
    default_nanos: Option<u64>,
    by_name: Vec<(String, u64)>,
    timing: SpanTiming,
    spans: ShardedSpans<Timing>,
}

/// Per-span state by registry id, sharded (spans may close on another thread than the one
/// that created them), preallocated, each shard's mutex on its own cache line. Also the task
/// table's (`tasks.rs`).
pub(crate) struct ShardedSpans<T> {
    shards: Box<[Shard<T>]>,
}

/// One shard: its own lock, on its own cache line.
type Shard<T> = CachePadded<Mutex<FxHashMap<u64, T>>>;

impl<T> ShardedSpans<T> {
    pub(crate) fn new() -> Self {
        ShardedSpans {
            shards: (0..SHARDS)
                .map(|_| {
                    CachePadded::new(Mutex::new(FxHashMap::with_capacity_and_hasher(
                        SHARD_CAPACITY,
                        Default::default(),
                    )))
                })
                .collect(),
        }
    }

    /// The shard that holds `id`'s entry.
    #[inline]
    pub(crate) fn shard(&self, id: u64) -> &Mutex<FxHashMap<u64, T>> {
        let index = (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize % SHARDS;
        &self.shards[index]
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl SlowSpans {
    pub(crate) fn new(config: &SlowSpanConfig) -> Self {
        SlowSpans {
            default_nanos: config.default.map(nanos),
            by_name: config
                .by_name
                .iter()
                .map(|(name, threshold)| (name.clone(), nanos(*threshold)))
                .collect(),
            timing: config.timing,
            spans: ShardedSpans::new(),
        }
    }

    pub(crate) fn timing(&self) -> SpanTiming {
        self.timing
    }

    fn shard(&self, id: u64) -> &Mutex<FxHashMap<u64, Timing>> {
        self.spans.shard(id)
    }

    fn threshold(&self, metadata: &Metadata<'_>) -> Option<u64> {
        if !self.by_name.is_empty() {
            let name = metadata.name();
            let target = metadata.target();
            if let Some((_, t)) = self.by_name.iter().find(|(n, _)| n == name) {
                return Some(*t);
            }
            if let Some((_, t)) = self.by_name.iter().find(|(n, _)| n == target) {
                return Some(*t);
            }
        }
        self.default_nanos
    }

    /// Starts timing a new span, if it has a threshold.
    #[inline]
    pub(crate) fn on_new(&self, id: u64, key: u64, metadata: &'static Metadata<'static>, now: u64) {
        let Some(threshold_nanos) = self.threshold(metadata) else {
            return;
        };
        lock(self.shard(id)).insert(
            id,
            Timing {
                key,
                metadata,
                start: now,
                threshold_nanos,
                busy_nanos: 0,
                entered: 0,
                entered_at: 0,
            },
        );
    }

    /// Busy timing (the caller checks [`timing`](Self::timing)): notes an enter or exit.
    #[inline]
    pub(crate) fn on_enter_exit(
        &self,
        id: u64,
        enter: bool,
        now: u64,
        nanos_between: impl Fn(u64, u64) -> u64,
    ) {
        let mut shard = lock(self.shard(id));
        let Some(timing) = shard.get_mut(&id) else {
            return;
        };
        if enter {
            if timing.entered == 0 {
                timing.entered_at = now;
            }
            timing.entered += 1;
        } else if timing.entered > 0 {
            timing.entered -= 1;
            if timing.entered == 0 {
                timing.busy_nanos += nanos_between(timing.entered_at, now);
            }
        }
    }

    /// Stops timing a closing span; returns it if it was over its threshold.
    #[inline]
    pub(crate) fn on_close(
        &self,
        id: u64,
        now: u64,
        nanos_between: impl Fn(u64, u64) -> u64,
    ) -> Option<Breach> {
        let timing = lock(self.shard(id)).remove(&id)?;
        let duration_nanos = match self.timing {
            SpanTiming::Wall => nanos_between(timing.start, now),
            SpanTiming::Busy => timing.busy_nanos,
        };
        (duration_nanos > timing.threshold_nanos).then_some(Breach {
            key: timing.key,
            metadata: timing.metadata,
            duration_nanos,
            threshold_nanos: timing.threshold_nanos,
        })
    }
}
