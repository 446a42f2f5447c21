//! Whether a trigger may dump: the cooldown gate, suppressed counts, top-N.
//!
//! Everything here is a function of `now` (nanoseconds on the recorder's clock), so tests drive
//! it with plain numbers. The cooldown gate is read without a lock: a trigger inside the
//! cooldown costs one atomic load and one increment of a counter private to its thread's
//! shard, so error storms neither serialize the program nor copy anything.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

/// The cooldown between two rate-limited dumps, readable without a lock.
pub(crate) struct CooldownGate {
    cooldown_nanos: u64,
    /// No rate-limited dump before this time (0: open).
    closed_until: AtomicU64,
}

impl CooldownGate {
    pub(crate) fn new(cooldown_nanos: u64) -> Self {
        CooldownGate {
            cooldown_nanos,
            closed_until: AtomicU64::new(0),
        }
    }

    /// Whether a rate-limited trigger at `now` must be suppressed.
    #[inline]
    pub(crate) fn is_closed(&self, now: u64) -> bool {
        self.cooldown_nanos != 0 && now < self.closed_until.load(Ordering::Relaxed)
    }

    /// A rate-limited dump was accepted at `now`: close the gate for the cooldown. Called under
    /// the dumper's lock, which also re-checks [`is_closed`](Self::is_closed).
    pub(crate) fn close(&self, now: u64) {
        if self.cooldown_nanos != 0 {
            self.closed_until
                .store(now.saturating_add(self.cooldown_nanos), Ordering::Relaxed);
        }
    }
}

const SHARDS: usize = 16;

/// A counter that threads increment without sharing a cache line (mostly).
pub(crate) struct ShardedCounter {
    shards: [CachePadded<AtomicU64>; SHARDS],
}

impl Default for ShardedCounter {
    fn default() -> Self {
        ShardedCounter {
            shards: std::array::from_fn(|_| CachePadded::new(AtomicU64::new(0))),
        }
    }
}

impl ShardedCounter {
    #[inline]
    pub(crate) fn increment(&self) {
        thread_local! {
            static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
        }
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let shard = SHARD
            .try_with(|shard| {
                if shard.get() == usize::MAX {
                    shard.set(NEXT.fetch_add(1, Ordering::Relaxed) as usize % SHARDS);
                }
                shard.get()
            })
            .unwrap_or(0);
        self.shards[shard].fetch_add(1, Ordering::Relaxed);
    }

    /// The count so far, left as it is.
    pub(crate) fn peek(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| shard.load(Ordering::Relaxed))
            .sum()
    }

    /// The count so far, reset to zero.
    pub(crate) fn take(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| shard.swap(0, Ordering::Relaxed))
            .sum()
    }
}

/// The slowest breaches kept by `keep_slowest(n)`, slowest first.
#[derive(Debug, Default)]
pub(crate) struct Slowest<F> {
    /// (duration in ns, entry id, the dump file once written).
    entries: Vec<(u64, u64, Option<F>)>,
    next_entry: u64,
}

impl<F: PartialEq> Slowest<F> {
    /// Admits a breach of `nanos` if it is among the `keep` slowest; returns its entry id and
    /// the files of the entries it pushed out (to delete), or `None` if it is not.
    pub(crate) fn admit(&mut self, keep: usize, nanos: u64) -> Option<(u64, Vec<F>)> {
        if self.entries.len() >= keep && self.entries.last().is_none_or(|&(d, _, _)| d >= nanos) {
            return None;
        }
        let id = self.next_entry;
        self.next_entry += 1;
        let at = self.entries.partition_point(|&(d, _, _)| d >= nanos);
        self.entries.insert(at, (nanos, id, None));
        let mut displaced = Vec::new();
        while self.entries.len() > keep {
            if let Some((_, _, Some(file))) = self.entries.pop() {
                displaced.push(file);
            }
        }
        Some((id, displaced))
    }

    /// The dump of entry `id` was written as `file`; `false` if the entry was pushed out
    /// meanwhile (then the file must go).
    pub(crate) fn written(&mut self, id: u64, file: F) -> bool {
        match self.entries.iter_mut().find(|(_, entry, _)| *entry == id) {
            Some(slot) => {
                slot.2 = Some(file);
                true
            }
            None => false,
        }
    }

    /// The dump of entry `id` will not be written.
    pub(crate) fn abandon(&mut self, id: u64) {
        self.entries.retain(|&(_, entry, _)| entry != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_closes_for_the_cooldown_from_the_accepted_dump() {
        let gate = CooldownGate::new(300);
        assert!(!gate.is_closed(1_000), "open before the first dump");
        gate.close(1_000);
        assert!(gate.is_closed(1_000));
        assert!(gate.is_closed(1_299));
        assert!(!gate.is_closed(1_300), "open again after the cooldown");
        let never = CooldownGate::new(0);
        never.close(5);
        assert!(!never.is_closed(5), "a zero cooldown never closes");
    }

    #[test]
    fn the_sharded_counter_counts_every_thread() {
        let counter = ShardedCounter::default();
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| (0..1_000).for_each(|_| counter.increment()));
            }
        });
        assert_eq!(counter.take(), 8_000);
        assert_eq!(counter.take(), 0, "taking resets");
    }

    #[test]
    fn top_n_keeps_the_slowest_and_hands_back_displaced_files() {
        let mut slowest = Slowest::default();
        let (a, gone) = slowest.admit(2, 30).unwrap();
        assert!(gone.is_empty());
        assert!(slowest.written(a, "a"));
        let (b, _) = slowest.admit(2, 10).unwrap();
        assert!(slowest.written(b, "b"));
        assert_eq!(slowest.admit(2, 5), None, "faster than both kept");
        assert_eq!(slowest.admit(2, 10), None, "a tie does not replace");
        let (c, gone) = slowest.admit(2, 50).unwrap();
        assert_eq!(gone, ["b"], "the fastest kept makes way");
        // A breach pushed out before its file was written: the file must go.
        let (d, gone) = slowest.admit(2, 40).unwrap();
        assert_eq!(gone, ["a"]);
        let (_, gone) = slowest.admit(2, 45).unwrap();
        assert!(gone.is_empty(), "d had no file yet");
        assert!(!slowest.written(d, "d"), "d was pushed out meanwhile");
        assert!(slowest.written(c, "c"));
    }
}
