//! One recording thread's buffer: its current chunk (appended to by the thread without a
//! lock), its ring of sealed chunks, and the bookkeeping the storage keeps about it.
//!
//! ## The owner's append and the storage taking its chunk
//!
//! The thread appends to its current chunk with no lock and no atomic read-modify-write: it
//! marks itself busy, checks that the storage does not claim the chunk, appends, and clears
//! busy. Readers need nothing from it: a snapshot copies the published records while the
//! thread appends past them (`chunk`'s protocol). Only taking the chunk away from an idle
//! thread (eviction, the recorder going away) must exclude the append, and that is rare, so
//! the cost is put there (an asymmetric Dekker handshake, as in RCU):
//!
//! ```text
//! owner:   busy = true;  light barrier;  if claimed (acquire) { busy = false; slow path }
//!          append;  busy = false (release)
//! storage: claimed = true;  heavy barrier;  wait while busy;  take the chunk;
//!          heavy barrier;  claimed = false (release)
//! ```
//!
//! The heavy barrier (`membarrier(2)`, private expedited) makes every running thread of the
//! process execute a full fence, and a thread that is not running passes one when it is
//! scheduled again; the light one is then only a compiler fence. After the first heavy
//! barrier, either the owner sees `claimed` and backs off, or the storage sees `busy` and
//! waits for the append to finish (a copy of at most one record). After the second (and by
//! the acquire of `claimed` even without it), an owner that sees `claimed` false again also
//! sees the chunk that replaced the one taken. The
//! storage holds its own lock throughout, and the owner's slow path takes that lock, so an
//! owner that backed off waits there until the chunk is settled.

use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;
use ringbuf::HeapRb;
use ringbuf::traits::Observer;

use super::{Chunk, ThreadChunks, barrier};
use crate::record::encode::{Encoded, SpanRecord};

/// Identity of a recording thread, as it appears in dumps.
#[derive(Debug, Clone)]
pub(crate) struct ThreadIdentity {
    pub(crate) tid: u64,
    pub(crate) name: Option<String>,
}

/// The part of a thread's buffer others change, under the thread's lock (and the storage's).
pub(super) struct ThreadState {
    pub(super) sealed: HeapRb<Arc<Chunk>>,
    /// Capacity of the next chunk this thread asks for.
    pub(super) next_chunk_bytes: usize,
}

/// The owner's side: its current chunk and the handshake flags, on a cache line of their own.
struct Current {
    /// Empty (no capacity) or holding at least one record.
    chunk: UnsafeCell<Chunk>,
    /// The owner is appending.
    busy: AtomicBool,
    /// The storage is taking the chunk: the owner must not append.
    claimed: AtomicBool,
    /// Records this thread appended that are no longer in the current chunk (sealed, taken
    /// or evicted); changed under the storage lock only. Its records written are this plus
    /// the current chunk's, which keeps the counters exact while the owner appends.
    settled: AtomicU64,
}

/// One thread's records.
pub(crate) struct ThreadBuffer {
    pub(crate) identity: ThreadIdentity,
    current: CachePadded<Current>,
    /// Padded so two threads' locks never share a cache line.
    pub(super) state: CachePadded<Mutex<ThreadState>>,
    /// The rest is the storage's bookkeeping, changed only under the storage lock.
    /// Position in `StorageInner::threads`.
    pub(super) index: AtomicUsize,
    /// Whether the eviction heap holds an entry for this thread.
    pub(super) in_heap: AtomicBool,
    pub(super) exited: AtomicBool,
}

// SAFETY: the only unsynchronized part is `Current::chunk`, accessed as the module's comment
// says: appended to by its owner alone (who is `busy` meanwhile), replaced only under the
// storage lock by the owner or by the storage after the handshake, read concurrently only
// through the chunk's own atomics.
unsafe impl Sync for ThreadBuffer {}

impl ThreadBuffer {
    pub(super) fn new(identity: ThreadIdentity, state: ThreadState, index: usize) -> Self {
        ThreadBuffer {
            identity,
            current: CachePadded::new(Current {
                chunk: UnsafeCell::new(Chunk::default()),
                busy: AtomicBool::new(false),
                claimed: AtomicBool::new(false),
                settled: AtomicU64::new(0),
            }),
            state: CachePadded::new(Mutex::new(state)),
            index: AtomicUsize::new(index),
            in_heap: AtomicBool::new(false),
            exited: AtomicBool::new(false),
        }
    }

    /// Appends a record if it fits the current chunk. Returns `false` when a new chunk is
    /// needed, or the storage is taking the chunk (the slow path sorts both out). Called by
    /// the thread that owns this buffer only.
    #[inline]
    pub(crate) fn try_append(&self, record: Encoded<'_>, ts: u64) -> bool {
        self.owner_append(|chunk| {
            chunk.fits(record) && {
                // SAFETY: a record that fits, pushed by the chunk's only writer.
                unsafe { chunk.push(record, ts) };
                true
            }
        })
    }

    /// [`try_append`](Self::try_append) for an enter, exit or close record.
    #[inline]
    pub(crate) fn try_append_span(&self, record: SpanRecord) -> bool {
        self.owner_append(|chunk| {
            chunk.fits_span() && {
                // SAFETY: a record that fits, pushed by the chunk's only writer.
                unsafe { chunk.push_span(record) };
                true
            }
        })
    }

    /// Runs `append` on the current chunk as its owner, unless the storage is taking it
    /// (then `false`). `append` returns whether the record went in.
    #[inline(always)]
    fn owner_append(&self, append: impl FnOnce(&Chunk) -> bool) -> bool {
        let current = &*self.current;
        current.busy.store(true, Ordering::Relaxed);
        barrier::light();
        // Acquire: seeing `claimed` false again after a take also shows the chunk that
        // replaced the one taken (with the fences alone, and with `membarrier`).
        if current.claimed.load(Ordering::Acquire) {
            current.busy.store(false, Ordering::Release);
            return false;
        }
        // SAFETY: the owner, busy and unclaimed: the storage does not replace the chunk until
        // we are done (see the module's comment); we only read it through `&`.
        let chunk = unsafe { &*current.chunk.get() };
        let appended = append(chunk);
        current.busy.store(false, Ordering::Release);
        appended
    }

    /// The current chunk, to read (its published records) or to append to as its owner.
    ///
    /// # Safety
    ///
    /// The storage lock is held (nobody else replaces the chunk meanwhile).
    pub(super) unsafe fn current(&self) -> &Chunk {
        // SAFETY: the caller holds the storage lock, under which alone the chunk is replaced.
        unsafe { &*self.current.chunk.get() }
    }

    /// Replaces the current chunk, as its owner.
    ///
    /// # Safety
    ///
    /// Called by the owning thread (not appending, then), with the storage lock held.
    pub(super) unsafe fn replace_current(&self, chunk: Chunk) -> Chunk {
        // SAFETY: the owner is here, not in `try_append`, and the storage lock keeps every
        // other reader and replacer out.
        let old = unsafe { std::mem::replace(&mut *self.current.chunk.get(), chunk) };
        self.settle(&old);
        old
    }

    /// `chunk` left the current place: its records count as settled.
    fn settle(&self, chunk: &Chunk) {
        let settled = &self.current.settled;
        settled.store(
            settled.load(Ordering::Relaxed) + u64::from(chunk.records()),
            Ordering::Relaxed,
        );
    }

    /// Takes the current chunk away from its owner, whatever thread calls (the handshake of
    /// the module's comment), leaving an empty one.
    ///
    /// # Safety
    ///
    /// The storage lock is held.
    pub(super) unsafe fn take_current(&self) -> Chunk {
        let current = &*self.current;
        current.claimed.store(true, Ordering::Relaxed);
        barrier::heavy();
        while current.busy.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        // SAFETY: the owner is not appending and will not start until `claimed` is false
        // again; the storage lock keeps everyone else out.
        let taken = unsafe { std::mem::take(&mut *current.chunk.get()) };
        self.settle(&taken);
        barrier::heavy();
        current.claimed.store(false, Ordering::Release);
        taken
    }

    /// Records this thread appended, counting those of the current chunk published so far.
    ///
    /// # Safety
    ///
    /// The storage lock is held.
    pub(super) unsafe fn written(&self) -> u64 {
        // SAFETY: the caller holds the storage lock.
        let current = unsafe { self.current() }.records();
        self.current.settled.load(Ordering::Relaxed) + u64::from(current)
    }

    /// The age of the oldest chunk this thread could give up: its oldest sealed one, else
    /// (when allowed) its current one.
    ///
    /// # Safety
    ///
    /// The storage lock is held.
    pub(super) unsafe fn oldest_key(
        &self,
        state: &mut ThreadState,
        include_current: bool,
    ) -> Option<u64> {
        if let Some(head) = state.sealed.try_peek() {
            return Some(head.last_ts());
        }
        // SAFETY: the caller holds the storage lock.
        let current = unsafe { self.current() };
        (include_current && !current.is_empty()).then(|| current.last_ts())
    }

    /// Whether the thread holds any record.
    ///
    /// # Safety
    ///
    /// The storage lock is held.
    pub(super) unsafe fn has_records(&self, state: &ThreadState) -> bool {
        // SAFETY: the caller holds the storage lock.
        !state.sealed.is_empty() || !unsafe { self.current() }.is_empty()
    }

    /// Shares the sealed chunks and copies the published records of the current one.
    ///
    /// # Safety
    ///
    /// The storage lock is held.
    pub(super) unsafe fn copy(&self, state: &mut ThreadState, written: &mut u64) -> ThreadChunks {
        // SAFETY: the caller holds the storage lock.
        let current = unsafe { self.current() }.copy();
        // Exact: the copy's records and the settled ones (which only the lock's holder
        // changes), whatever the owner appends meanwhile.
        *written += self.current.settled.load(Ordering::Relaxed) + u64::from(current.records());
        ThreadChunks {
            identity: self.identity.clone(),
            sealed: state.sealed.iter().cloned().collect(),
            current,
        }
    }
}

/// Process-wide source of thread ids for dumps.
pub(crate) fn next_tid() -> u64 {
    static NEXT_TID: AtomicU64 = AtomicU64::new(1);
    NEXT_TID.fetch_add(1, Ordering::Relaxed)
}
