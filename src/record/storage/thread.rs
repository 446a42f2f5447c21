//! One recording thread's buffer: its current chunk, its ring of sealed chunks, and the
//! bookkeeping the storage keeps about it.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;
use ringbuf::HeapRb;
use ringbuf::traits::Observer;

use super::{Chunk, ThreadChunks};
use crate::record::encode::Encoded;
use crate::sync::lock;

/// Identity of a recording thread, as it appears in dumps.
#[derive(Debug, Clone)]
pub(crate) struct ThreadIdentity {
    pub(crate) tid: u64,
    pub(crate) name: Option<String>,
}

pub(super) struct ThreadState {
    pub(super) sealed: HeapRb<Arc<Chunk>>,
    /// Empty (no capacity) or holding at least one record.
    pub(super) current: Chunk,
    /// Capacity of the next chunk this thread asks for.
    pub(super) next_chunk_bytes: usize,
    pub(super) written: u64,
}

impl ThreadState {
    /// The age of the oldest chunk this thread could give up: its oldest sealed one, else
    /// (when allowed) its current one.
    pub(super) fn oldest_key(&mut self, include_current: bool) -> Option<u64> {
        if let Some(head) = self.sealed.try_peek() {
            return Some(head.last_ts);
        }
        (include_current && !self.current.is_empty()).then_some(self.current.last_ts)
    }

    pub(super) fn has_records(&self) -> bool {
        !self.sealed.is_empty() || !self.current.is_empty()
    }
}

/// One thread's records.
pub(crate) struct ThreadBuffer {
    pub(crate) identity: ThreadIdentity,
    /// Padded so two threads' locks never share a cache line.
    pub(super) state: CachePadded<Mutex<ThreadState>>,
    /// The rest is the storage's bookkeeping, changed only under the storage lock.
    /// Position in `StorageInner::threads`.
    pub(super) index: AtomicUsize,
    /// Whether the eviction heap holds an entry for this thread.
    pub(super) in_heap: AtomicBool,
    pub(super) exited: AtomicBool,
}

impl ThreadBuffer {
    /// Appends a record if it fits the current chunk. Returns `false` when a new chunk is needed.
    #[inline]
    pub(crate) fn try_append(&self, record: Encoded<'_>, ts: u64) -> bool {
        let mut state = lock(&self.state);
        if state.current.fits(record) {
            state.current.push(record, ts);
            state.written += 1;
            true
        } else {
            false
        }
    }

    /// Shares the sealed chunks and copies the current one.
    pub(super) fn copy(&self, state: &mut ThreadState, written: &mut u64) -> ThreadChunks {
        *written += state.written;
        ThreadChunks {
            identity: self.identity.clone(),
            sealed: state.sealed.iter().cloned().collect(),
            current: state.current.copy(),
        }
    }
}

/// Process-wide source of thread ids for dumps.
pub(crate) fn next_tid() -> u64 {
    static NEXT_TID: AtomicU64 = AtomicU64::new(1);
    NEXT_TID.fetch_add(1, Ordering::Relaxed)
}
