//! What the storage hands out without giving anything up: snapshots (every thread's chunks,
//! sealed ones shared, current ones copied) and counters.

use std::time::Instant;

use super::{HeldCopies, Storage, StorageCounters, StorageInner, StoredChunks, ThreadChunks};
use crate::sync::{lock, try_lock_until};
use std::sync::atomic::Ordering;

impl Storage {
    /// Copies every thread's chunks. Holds the storage lock throughout so that no chunk is
    /// evicted half-way (the counters then add up exactly), and each thread's lock only for the
    /// copy of its current chunk.
    pub(crate) fn snapshot(&self) -> StoredChunks {
        let mut written = 0;
        let inner = lock(&self.inner);
        let threads = inner
            .threads
            .iter()
            // SAFETY: we hold the storage lock.
            .map(|thread| unsafe { thread.copy(&mut lock(&thread.state), &mut written) })
            .collect();
        self.finish_snapshot(&inner, threads, written)
    }

    /// [`snapshot`](Self::snapshot) for a panic hook: gives up (`None`) rather than wait past
    /// `deadline` for any lock, since the panicking thread may hold one.
    pub(crate) fn try_snapshot(&self, deadline: Instant) -> Option<StoredChunks> {
        let mut written = 0;
        let inner = try_lock_until(&self.inner, deadline)?;
        let threads = inner
            .threads
            .iter()
            .map(|thread| {
                try_lock_until(&thread.state, deadline)
                    // SAFETY: we hold the storage lock.
                    .map(|mut state| unsafe { thread.copy(&mut state, &mut written) })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(self.finish_snapshot(&inner, threads, written))
    }

    fn finish_snapshot(
        &self,
        inner: &StorageInner,
        mut threads: Vec<ThreadChunks>,
        written: u64,
    ) -> StoredChunks {
        // Registration order, whatever removals did to the list.
        threads.sort_unstable_by_key(|thread| thread.identity.tid);
        let copied = threads
            .iter()
            .map(|thread| thread.current.bytes().len())
            .sum();
        StoredChunks {
            threads,
            written: written + inner.departed_written,
            overwritten: inner.overwritten,
            allocated_bytes: inner.allocated_bytes,
            _copies: HeldCopies::new(&self.held, copied),
        }
    }

    /// The counters alone, without copying anything: for status reports. Each thread's lock
    /// is taken only to read its count.
    pub(crate) fn counters(&self) -> StorageCounters {
        let inner = lock(&self.inner);
        let written = inner
            .threads
            .iter()
            // SAFETY: we hold the storage lock.
            .map(|thread| unsafe { thread.written() })
            .sum::<u64>();
        StorageCounters {
            threads: inner
                .threads
                .iter()
                .filter(|thread| !thread.exited.load(Ordering::Relaxed))
                .count(),
            written: written + inner.departed_written,
            overwritten: inner.overwritten,
            allocated_bytes: inner.allocated_bytes,
        }
    }
}
