//! The storage's limits: the byte budget, the chunk-size policy and `min_age`.

use std::time::Duration;

use crate::record::encode::MAX_RECORD_BYTES;

/// Smallest chunk a thread starts with; later chunks double up to the configured chunk size,
/// so a thread that logs a handful of records never pins a whole chunk.
pub(crate) const FIRST_CHUNK_BYTES: usize = 16 << 10;

// Any record fits any chunk.
const _: () = assert!(MAX_RECORD_BYTES < FIRST_CHUNK_BYTES);

/// Most chunks a chunk roll evicts for being older than `min_age` alone (beyond what the
/// budget needs): when many exited threads' records expire together, reclaiming them is
/// spread over rolls instead of stalling one record.
pub(crate) const EXPIRE_PER_ROLL: usize = 32;

/// Configuration the storage enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StorageLimits {
    pub(crate) max_bytes: usize,
    pub(crate) chunk_bytes: usize,
    pub(crate) min_age_nanos: u64,
}

impl StorageLimits {
    /// Storage is cut into about this many chunks: the granularity of allocation and eviction.
    const TARGET_CHUNKS: usize = 64;
    const MAX_CHUNK_BYTES: usize = 1 << 20;

    /// The limits for a budget: chunks of `max_bytes / 64` rounded up to a power of two,
    /// between 16 KiB and 1 MiB, and at most a quarter of the budget.
    pub(crate) fn for_budget(max_bytes: usize, min_age: Duration) -> Self {
        let chunk_bytes = (max_bytes / Self::TARGET_CHUNKS)
            .clamp(FIRST_CHUNK_BYTES, Self::MAX_CHUNK_BYTES)
            .next_power_of_two()
            .min(Self::MAX_CHUNK_BYTES);
        let chunk_bytes = if chunk_bytes * 4 > max_bytes {
            chunk_bytes / 2
        } else {
            chunk_bytes
        };
        StorageLimits {
            max_bytes,
            chunk_bytes,
            min_age_nanos: u64::try_from(min_age.as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// The most chunks one thread can hold: its chunks only grow (16 KiB, 32 KiB, … up to the
    /// chunk size), the ones it holds are the newest of them and fit the budget together, plus
    /// the small compacted chunk it leaves when it exits.
    pub(super) fn max_chunks_per_thread(&self) -> usize {
        let (mut total, mut count) = (0, 0);
        let mut size = FIRST_CHUNK_BYTES.min(self.chunk_bytes);
        while total + size <= self.max_bytes {
            total += size;
            count += 1;
            size = (size * 2).min(self.chunk_bytes);
        }
        count + 1
    }
}
