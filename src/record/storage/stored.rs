//! What the storage hands out: a snapshot's chunks and counters, each thread's chunks.

use std::sync::Arc;

use super::{Chunk, HeldCopies, ThreadIdentity};

/// What the storage hands out at one instant: every thread's chunks (sealed ones shared, current
/// ones copied) and the counters.
pub(crate) struct StoredChunks {
    pub(crate) threads: Vec<ThreadChunks>,
    pub(crate) written: u64,
    pub(crate) overwritten: u64,
    /// Storage allocated when the snapshot was taken, in bytes.
    pub(crate) allocated_bytes: usize,
    /// Counts the copies of current chunks as held while this snapshot lives.
    pub(crate) _copies: HeldCopies,
}

/// The storage's counters at one instant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StorageCounters {
    /// Threads recording now (exited ones not counted).
    pub(crate) threads: usize,
    pub(crate) written: u64,
    pub(crate) overwritten: u64,
    pub(crate) allocated_bytes: usize,
}

/// One thread's chunks, oldest first: the sealed ones shared, then a copy of its current one.
pub(crate) struct ThreadChunks {
    pub(crate) identity: ThreadIdentity,
    pub(crate) sealed: Vec<Arc<Chunk>>,
    pub(crate) current: Chunk,
}

impl ThreadChunks {
    /// Chunk `index`: sealed ones first, then the copy of the current one.
    pub(crate) fn chunk(&self, index: usize) -> Option<&Chunk> {
        match self.sealed.get(index) {
            Some(chunk) => Some(chunk),
            None => (index == self.sealed.len()).then_some(&self.current),
        }
    }
}

#[cfg(feature = "crash")]
impl StoredChunks {
    /// The chunks of a crash file (see `crash::recover`): held by nobody but the capture.
    pub(crate) fn recovered(
        threads: Vec<ThreadChunks>,
        written: u64,
        overwritten: u64,
        allocated_bytes: usize,
    ) -> Self {
        StoredChunks {
            threads,
            written,
            overwritten,
            allocated_bytes,
            _copies: HeldCopies::new(&Arc::default(), 0),
        }
    }
}
