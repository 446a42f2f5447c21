//! Record storage: per-thread chunk rings under one byte budget.
//!
//! Every recording thread owns a [`ThreadBuffer`]: a *current* chunk it appends encoded
//! records to, and a `ringbuf` ring of *sealed* chunks, oldest first. Appending takes no lock
//! and no atomic read-modify-write: snapshots copy what the chunk has published while the
//! thread appends past it, and the storage takes an idle thread's chunk only after a
//! handshake (`thread`'s module comment). The shared [`Storage`] lock is taken once per chunk, when a thread
//! needs a fresh one: that is where the byte budget (`max_bytes`) and the history target
//! (`min_age`) are enforced, by evicting the chunk whose newest record is oldest, from whichever
//! thread holds it.
//!
//! Finding that chunk must not cost more with more threads (services spawn and end threads by
//! the thousand): threads with records sit in a min-heap keyed by their oldest chunk's age.
//! A thread's key only grows (its oldest chunk goes, or its current chunk gets newer records),
//! so a key in the heap is a lower bound that is corrected when it reaches the top: a chunk
//! roll costs O(log threads), amortized.

mod barrier;
mod candidate;
mod chunk;
mod copy;
#[cfg(all(test, feature = "crash"))]
mod crash_model_tests;
mod held;
mod limits;
#[cfg(test)]
mod load_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod race_tests;
mod stored;
mod thread;

use std::collections::BinaryHeap;
use std::mem;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

#[cfg(feature = "crash")]
use crate::record::crash::CrashStore;
use crate::record::encode::Encoded;
use crate::sync::lock;
use ringbuf::HeapRb;
use ringbuf::traits::Observer;

use candidate::Candidate;
pub(crate) use chunk::Chunk;
pub(crate) use held::{HeldBytes, HeldCopies};
pub(crate) use limits::{EXPIRE_PER_ROLL, FIRST_CHUNK_BYTES, StorageLimits};
pub(crate) use stored::{StorageCounters, StoredChunks, ThreadChunks};
use thread::ThreadState;
pub(crate) use thread::{ThreadBuffer, ThreadIdentity, next_tid};

struct StorageInner {
    /// Every live thread, and exited ones until their last chunk is gone.
    threads: Vec<Arc<ThreadBuffer>>,
    /// Threads with records, by the age of their oldest chunk (lazily updated).
    heap: BinaryHeap<Candidate>,
    /// Empty `Arc` shells, kept so sealing a chunk never allocates in steady state.
    shells: Vec<Arc<Chunk>>,
    allocated_bytes: usize,
    overwritten: u64,
    /// `written` of threads that exited and whose chunks are all gone.
    departed_written: u64,
    /// Heap entries looked at while choosing eviction victims: the work chunk rolls do.
    victim_checks: u64,
    /// Number of the next chunk a thread starts (orders a thread's chunks in a crash file).
    next_seq: u64,
}

impl StorageInner {
    fn push_candidate(&mut self, thread: &Arc<ThreadBuffer>, key: u64) {
        if !thread.in_heap.swap(true, Ordering::Relaxed) {
            self.heap.push(Candidate {
                key,
                thread: Arc::clone(thread),
            });
        }
    }

    /// Forgets an exited thread that holds nothing any more.
    fn remove_thread(&mut self, thread: &ThreadBuffer, written: u64) {
        let index = thread.index.load(Ordering::Relaxed);
        self.threads.swap_remove(index);
        if let Some(moved) = self.threads.get(index) {
            moved.index.store(index, Ordering::Relaxed);
        }
        self.departed_written += written;
    }

    /// Frees a chunk taken out of a ring, keeping its `Arc` shell for reuse; `None` if a
    /// snapshot still reads it (it left the budget and is the snapshot's memory now).
    fn unshare(&mut self, mut sealed: Arc<Chunk>) -> Option<Chunk> {
        match Arc::get_mut(&mut sealed) {
            Some(slot) => {
                let chunk = mem::take(slot);
                self.shells.push(sealed);
                Some(chunk)
            }
            None => {
                self.allocated_bytes -= sealed.capacity();
                sealed.detach();
                None
            }
        }
    }

    /// The thread whose oldest chunk is oldest, with that chunk's age; the requester's current
    /// chunk does not count. Corrects stale heap keys on the way, and forgets threads that hold
    /// nothing (exited ones for good).
    fn oldest_chunk(&mut self, requester: &ThreadBuffer) -> Option<(Arc<ThreadBuffer>, u64)> {
        loop {
            let top = self.heap.peek()?;
            self.victim_checks += 1;
            let thread = Arc::clone(&top.thread);
            let stored = top.key;
            let (actual, written) = {
                let mut state = lock(&thread.state);
                let include_current = !std::ptr::eq(Arc::as_ptr(&thread), requester);
                // SAFETY: we hold the storage lock (`self` is its guarded data).
                unsafe {
                    (
                        thread.oldest_key(&mut state, include_current),
                        thread.written(),
                    )
                }
            };
            match actual {
                Some(key) if key <= stored => return Some((thread, key)),
                Some(key) => {
                    if let Some(mut top) = self.heap.peek_mut() {
                        top.key = key;
                    }
                }
                None => {
                    self.heap.pop();
                    thread.in_heap.store(false, Ordering::Relaxed);
                    if thread.exited.load(Ordering::Relaxed) {
                        self.remove_thread(&thread, written);
                    }
                }
            }
        }
    }
}

/// All threads' buffers and the byte budget.
pub(crate) struct Storage {
    limits: StorageLimits,
    ring_capacity: usize,
    inner: Mutex<StorageInner>,
    held: Arc<HeldBytes>,
    /// The crash file the chunks live in, when there is one.
    #[cfg(feature = "crash")]
    crash: Option<Arc<CrashStore>>,
}

impl Storage {
    pub(crate) fn new(limits: StorageLimits) -> Self {
        barrier::init();
        Storage {
            limits,
            ring_capacity: limits.max_chunks_per_thread(),
            inner: Mutex::new(StorageInner {
                threads: Vec::new(),
                heap: BinaryHeap::new(),
                shells: Vec::new(),
                allocated_bytes: 0,
                overwritten: 0,
                departed_written: 0,
                victim_checks: 0,
                next_seq: 1,
            }),
            held: Arc::default(),
            #[cfg(feature = "crash")]
            crash: None,
        }
    }

    /// Storage whose chunks live in `crash`'s file.
    #[cfg(feature = "crash")]
    pub(crate) fn with_crash_store(limits: StorageLimits, crash: Arc<CrashStore>) -> Self {
        Storage {
            crash: Some(crash),
            ..Self::new(limits)
        }
    }

    /// The crash file the chunks live in, if any.
    #[cfg(feature = "crash")]
    pub(crate) fn crash_store(&self) -> Option<&Arc<CrashStore>> {
        self.crash.as_ref()
    }

    /// Tells the crash file the count of evicted records.
    fn mirror_overwritten(&self, _inner: &StorageInner) {
        #[cfg(feature = "crash")]
        if let Some(crash) = &self.crash {
            crash.note_overwritten(_inner.overwritten);
        }
    }

    /// Bytes that snapshots keep alive beyond the budget (see [`HeldBytes`]).
    pub(crate) fn held_bytes(&self) -> usize {
        self.held.get()
    }

    /// Registers the calling thread.
    pub(crate) fn register(&self, identity: ThreadIdentity) -> Arc<ThreadBuffer> {
        let mut inner = lock(&self.inner);
        let buffer = Arc::new(ThreadBuffer::new(
            identity,
            ThreadState {
                sealed: HeapRb::new(self.ring_capacity),
                next_chunk_bytes: FIRST_CHUNK_BYTES.min(self.limits.chunk_bytes),
            },
            inner.threads.len(),
        ));
        inner.threads.push(Arc::clone(&buffer));
        buffer
    }

    /// Appends a record that did not fit the thread's current chunk: seals that chunk, makes
    /// room under the budget, and starts a fresh one. Returns `false` if no room could be made.
    pub(crate) fn append_slow(
        &self,
        buffer: &Arc<ThreadBuffer>,
        record: Encoded<'_>,
        ts: u64,
        now: u64,
        nanos_between: impl Fn(u64, u64) -> u64,
    ) -> bool {
        let mut inner = lock(&self.inner);
        let wanted = {
            let mut state = lock(&buffer.state);
            // SAFETY: the owner (only it appends), holding the storage lock.
            let current = unsafe { buffer.current() };
            if current.fits(record) {
                // Another path made room while we waited for the storage lock.
                // SAFETY: as above: the chunk's writer.
                unsafe { current.push(record, ts) };
                return true;
            }
            if !current.is_empty() {
                // SAFETY: as above.
                let full = unsafe { buffer.replace_current(Chunk::default()) };
                let mut shell = inner.shells.pop().unwrap_or_default();
                match Arc::get_mut(&mut shell) {
                    Some(slot) => *slot = full,
                    None => shell = Arc::new(full),
                }
                self.seal(&mut inner, &mut state, shell);
            }
            let wanted = state.next_chunk_bytes;
            state.next_chunk_bytes = (wanted * 2).min(self.limits.chunk_bytes);
            wanted
        };

        let fresh = self.make_room(&mut inner, buffer, wanted, now, nanos_between);
        self.mirror_overwritten(&inner);
        let Some(mut fresh) = fresh else {
            return false;
        };
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let identity = &buffer.identity;
        fresh.claim(identity.tid, identity.name.as_deref(), seq);
        // SAFETY: nobody else holds the fresh chunk.
        unsafe { fresh.push(record, ts) };
        {
            let _state = lock(&buffer.state);
            // Only this thread installs current chunks, and it left its slot empty above.
            // SAFETY: the owner, holding the storage lock.
            unsafe { buffer.replace_current(fresh) };
        }
        inner.push_candidate(buffer, ts);
        true
    }

    /// Puts a full chunk at the end of the thread's ring. The ring is sized for every chunk the
    /// budget lets a thread hold, so it is never full; were it full, the thread's own oldest
    /// chunk would go, never the newest.
    fn seal(&self, inner: &mut StorageInner, state: &mut ThreadState, chunk: Arc<Chunk>) {
        if state.sealed.is_full()
            && let Some(oldest) = state.sealed.try_pop()
        {
            inner.overwritten += u64::from(oldest.records());
            if let Some(freed) = inner.unshare(oldest) {
                inner.allocated_bytes -= freed.capacity();
            }
        }
        let _ = state.sealed.try_push(chunk);
    }

    /// Evicts, oldest first, as many chunks as the budget needs to fit a chunk of `wanted`
    /// bytes, and up to [`EXPIRE_PER_ROLL`] more that are older than `min_age`; returns an
    /// empty chunk of at least that size (an evicted one when one is big enough).
    fn make_room(
        &self,
        inner: &mut StorageInner,
        requester: &ThreadBuffer,
        wanted: usize,
        now: u64,
        nanos_between: impl Fn(u64, u64) -> u64,
    ) -> Option<Chunk> {
        let mut reuse: Option<Chunk> = None;
        let mut expiries_left = EXPIRE_PER_ROLL;
        loop {
            let need_room = inner.allocated_bytes + reuse.as_ref().map_or(wanted, |_| 0)
                > self.limits.max_bytes;
            let Some((victim, key)) = inner.oldest_chunk(requester) else {
                break;
            };
            let expired = expiries_left > 0 && nanos_between(key, now) > self.limits.min_age_nanos;
            if !need_room && !expired {
                break;
            }
            if !need_room {
                expiries_left -= 1;
            }
            let Some(mut evicted) = Self::evict_oldest(inner, &victim, requester) else {
                continue;
            };
            if reuse.is_none() && evicted.capacity() >= wanted {
                evicted.clear();
                reuse = Some(evicted);
            } else {
                inner.allocated_bytes -= evicted.capacity();
            }
        }
        if let Some(chunk) = reuse {
            return Some(chunk);
        }
        if inner.allocated_bytes + wanted > self.limits.max_bytes {
            return None;
        }
        inner.allocated_bytes += wanted;
        Some(Chunk::with_capacity(
            wanted,
            &self.held,
            #[cfg(feature = "crash")]
            self.crash.as_ref(),
        ))
    }

    /// Takes `victim`'s oldest chunk (its oldest sealed one, else its current one unless it is
    /// the requester) and counts its records as overwritten; `None` if a snapshot still reads
    /// it or there was nothing to take.
    fn evict_oldest(
        inner: &mut StorageInner,
        victim: &ThreadBuffer,
        requester: &ThreadBuffer,
    ) -> Option<Chunk> {
        let mut state = lock(&victim.state);
        if let Some(sealed) = state.sealed.try_pop() {
            drop(state);
            inner.overwritten += u64::from(sealed.records());
            return inner.unshare(sealed);
        }
        if std::ptr::eq(victim, requester)
            // SAFETY: we hold the storage lock.
            || unsafe { victim.current() }.is_empty()
        {
            return None;
        }
        // An idle thread's chunk: taken from under it (the owner may be about to append).
        // SAFETY: we hold the storage lock.
        let taken = unsafe { victim.take_current() };
        inner.overwritten += u64::from(taken.records());
        Some(taken)
    }

    /// Called when a thread exits: its partly filled chunk is shrunk to its contents, so an
    /// exited thread keeps only what it recorded, and stays dumpable until evicted.
    pub(crate) fn retire(&self, buffer: &ThreadBuffer) {
        let mut inner = lock(&self.inner);
        let mut state = lock(&buffer.state);
        // SAFETY: the owner (exiting), holding the storage lock.
        let current = unsafe { buffer.replace_current(Chunk::default()) };
        inner.allocated_bytes -= current.capacity();
        if !current.is_empty() {
            let compact = current.compacted(
                &buffer.identity,
                #[cfg(feature = "crash")]
                self.crash.as_ref().map(|store| {
                    inner.next_seq += 1;
                    (store, inner.next_seq - 1)
                }),
            );
            inner.allocated_bytes += compact.capacity();
            self.seal(&mut inner, &mut state, Arc::new(compact));
            self.mirror_overwritten(&inner);
        }
        buffer.exited.store(true, Ordering::Relaxed);
        // A thread with records is in the heap, which forgets it once they are gone.
        // SAFETY: we hold the storage lock.
        let has_records = unsafe { buffer.has_records(&state) };
        if !has_records && !buffer.in_heap.load(Ordering::Relaxed) {
            // SAFETY: as above.
            let written = unsafe { buffer.written() };
            drop(state);
            inner.remove_thread(buffer, written);
        }
    }

    /// Bytes of record storage allocated now.
    pub(crate) fn allocated_bytes(&self) -> usize {
        lock(&self.inner).allocated_bytes
    }

    /// Frees every chunk; used when the recorder goes away while threads still hold buffers.
    pub(crate) fn release_all(&self) {
        let mut inner = lock(&self.inner);
        inner.heap.clear();
        for thread in mem::take(&mut inner.threads) {
            let mut state = lock(&thread.state);
            state.sealed.clear();
            // SAFETY: we hold the storage lock.
            drop(unsafe { thread.take_current() });
            thread.in_heap.store(false, Ordering::Relaxed);
        }
        inner.shells.clear();
        inner.allocated_bytes = 0;
    }
}

#[cfg(test)]
impl Storage {
    /// Heap entries looked at while choosing eviction victims, so far.
    pub(crate) fn victim_checks(&self) -> u64 {
        lock(&self.inner).victim_checks
    }
}
