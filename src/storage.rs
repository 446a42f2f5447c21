//! Record storage: per-thread chunk rings under one byte budget.
//!
//! Every recording thread owns a [`ThreadBuffer`]: a *current* chunk it appends encoded
//! records to, and a `ringbuf` ring of *sealed* chunks, oldest first. Appending takes only the
//! thread's own mutex, which nobody else touches except a snapshot (for a `memcpy`) and the
//! evictor (once per chunk). The shared [`Storage`] lock is taken once per chunk, when a thread
//! needs a fresh one: that is where the byte budget (`max_bytes`) and the history target
//! (`min_age`) are enforced, by evicting the chunk whose newest record is oldest, from whichever
//! thread holds it.

use std::mem;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use ringbuf::HeapRb;
use ringbuf::traits::Observer;

/// Smallest chunk a thread starts with; later chunks double up to the configured chunk size,
/// so a thread that logs a handful of records never pins a whole chunk.
pub(crate) const FIRST_CHUNK_BYTES: usize = 16 << 10;

/// Locks a mutex, recovering from poisoning: the data behind our locks is only ever changed by
/// code that cannot panic half-way (no user code runs under them), so a poisoned lock still
/// holds consistent data.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A block of encoded records from one thread.
#[derive(Default)]
pub(crate) struct Chunk {
    buf: Box<[u8]>,
    len: usize,
    records: u32,
    last_ts: u64,
}

impl Chunk {
    fn with_capacity(bytes: usize) -> Self {
        Chunk {
            buf: vec![0u8; bytes].into_boxed_slice(),
            ..Chunk::default()
        }
    }

    fn capacity(&self) -> usize {
        self.buf.len()
    }

    fn fits(&self, record: &[u8]) -> bool {
        self.buf.len() - self.len >= record.len()
    }

    fn push(&mut self, record: &[u8], ts: u64) {
        self.buf[self.len..self.len + record.len()].copy_from_slice(record);
        self.len += record.len();
        self.records += 1;
        self.last_ts = ts;
    }

    fn clear(&mut self) {
        self.len = 0;
        self.records = 0;
        self.last_ts = 0;
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Identity of a recording thread, as it appears in dumps.
#[derive(Debug, Clone)]
pub(crate) struct ThreadIdentity {
    pub(crate) tid: u64,
    pub(crate) name: Option<String>,
}

struct ThreadState {
    sealed: HeapRb<Arc<Chunk>>,
    current: Chunk,
    /// Capacity of the next chunk this thread asks for.
    next_chunk_bytes: usize,
    written: u64,
}

/// One thread's records.
pub(crate) struct ThreadBuffer {
    pub(crate) identity: ThreadIdentity,
    /// Padded so two threads' locks never share a cache line.
    state: CachePadded<Mutex<ThreadState>>,
    exited: AtomicBool,
}

impl ThreadBuffer {
    /// Appends a record if it fits the current chunk. Returns `false` when a new chunk is needed.
    #[inline]
    pub(crate) fn try_append(&self, record: &[u8], ts: u64) -> bool {
        let mut state = lock(&self.state);
        if state.current.fits(record) {
            state.current.push(record, ts);
            state.written += 1;
            true
        } else {
            false
        }
    }

    /// The newest timestamp of the oldest chunk this thread holds, and whether it is sealed.
    fn oldest_chunk(&self, include_current: bool) -> Option<u64> {
        let mut state = lock(&self.state);
        if let Some(head) = state.sealed.try_peek() {
            return Some(head.last_ts);
        }
        (include_current && state.current.len > 0).then_some(state.current.last_ts)
    }

    /// Shares the sealed chunks and copies the current one.
    fn copy(&self, state: &mut ThreadState, written: &mut u64) -> RawThread {
        *written += state.written;
        RawThread {
            identity: self.identity.clone(),
            sealed: state.sealed.iter().cloned().collect(),
            current: state.current.bytes().to_vec(),
        }
    }

    fn is_empty(&self) -> bool {
        let state = lock(&self.state);
        state.sealed.is_empty() && state.current.capacity() == 0
    }
}

/// What evicting one chunk gave back.
enum Eviction {
    /// The chunk, emptied, for reuse.
    Reusable(Chunk),
    /// A snapshot still reads the chunk: it left the budget and is the snapshot's memory now.
    HeldBySnapshot,
    /// The victim had nothing left to take.
    Nothing,
}

/// Counters and chunks copied out of [`Storage`] at one instant.
pub(crate) struct RawSnapshot {
    pub(crate) threads: Vec<RawThread>,
    pub(crate) written: u64,
    pub(crate) overwritten: u64,
    /// Storage allocated when the snapshot was taken, in bytes.
    pub(crate) allocated_bytes: usize,
}

/// One thread's chunks, oldest first; the last one is a copy of its current chunk.
pub(crate) struct RawThread {
    pub(crate) identity: ThreadIdentity,
    pub(crate) sealed: Vec<Arc<Chunk>>,
    pub(crate) current: Vec<u8>,
}

/// Configuration the storage enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StorageLimits {
    pub(crate) max_bytes: usize,
    pub(crate) chunk_bytes: usize,
    pub(crate) min_age_nanos: u64,
}

struct StorageInner {
    threads: Vec<Arc<ThreadBuffer>>,
    /// Empty `Arc` shells, kept so sealing a chunk never allocates in steady state.
    shells: Vec<Arc<Chunk>>,
    allocated_bytes: usize,
    overwritten: u64,
    /// `written` of threads that exited and whose chunks are all gone.
    departed_written: u64,
}

/// All threads' buffers and the byte budget.
pub(crate) struct Storage {
    limits: StorageLimits,
    ring_capacity: usize,
    inner: Mutex<StorageInner>,
}

impl Storage {
    pub(crate) fn new(limits: StorageLimits) -> Self {
        // A thread can hold every full chunk plus its small compacted last one.
        let ring_capacity = limits.max_bytes / limits.chunk_bytes + 1;
        Storage {
            limits,
            ring_capacity,
            inner: Mutex::new(StorageInner {
                threads: Vec::new(),
                shells: Vec::new(),
                allocated_bytes: 0,
                overwritten: 0,
                departed_written: 0,
            }),
        }
    }

    pub(crate) fn limits(&self) -> StorageLimits {
        self.limits
    }

    /// Registers the calling thread.
    pub(crate) fn register(&self, identity: ThreadIdentity) -> Arc<ThreadBuffer> {
        let buffer = Arc::new(ThreadBuffer {
            identity,
            state: CachePadded::new(Mutex::new(ThreadState {
                sealed: HeapRb::new(self.ring_capacity),
                current: Chunk::default(),
                next_chunk_bytes: FIRST_CHUNK_BYTES.min(self.limits.chunk_bytes),
                written: 0,
            })),
            exited: AtomicBool::new(false),
        });
        lock(&self.inner).threads.push(Arc::clone(&buffer));
        buffer
    }

    /// Appends a record that did not fit the thread's current chunk: seals that chunk, makes
    /// room under the budget, and starts a fresh one. Returns `false` if no room could be made.
    pub(crate) fn append_slow(
        &self,
        buffer: &ThreadBuffer,
        record: &[u8],
        ts: u64,
        now: u64,
        nanos_between: impl Fn(u64, u64) -> u64,
    ) -> bool {
        let mut inner = lock(&self.inner);
        let wanted = {
            let mut state = lock(&buffer.state);
            if state.current.fits(record) {
                // Another path made room while we waited for the storage lock.
                state.current.push(record, ts);
                state.written += 1;
                return true;
            }
            if state.current.len > 0 {
                let mut shell = inner.shells.pop().unwrap_or_default();
                match Arc::get_mut(&mut shell) {
                    Some(slot) => *slot = mem::take(&mut state.current),
                    None => shell = Arc::new(mem::take(&mut state.current)),
                }
                if let Err(shell) = state.sealed.try_push(shell) {
                    // Cannot happen while the budget holds; account for it rather than panic.
                    inner.allocated_bytes -= shell.capacity();
                    inner.overwritten += u64::from(shell.records);
                }
            } else {
                inner.allocated_bytes -= state.current.capacity();
                state.current = Chunk::default();
            }
            let wanted = state.next_chunk_bytes;
            state.next_chunk_bytes = (wanted * 2).min(self.limits.chunk_bytes);
            wanted
        };

        let Some(mut fresh) = self.make_room(&mut inner, buffer, wanted, now, nanos_between) else {
            return false;
        };
        drop(inner);

        fresh.push(record, ts);
        let mut state = lock(&buffer.state);
        // Only this thread installs current chunks, and it left its slot empty above.
        state.current = fresh;
        state.written += 1;
        true
    }

    /// Evicts chunks older than `min_age` and, oldest first, as many more as the budget needs to
    /// fit a chunk of `wanted` bytes; returns an empty chunk of at least that size.
    fn make_room(
        &self,
        inner: &mut StorageInner,
        requester: &ThreadBuffer,
        wanted: usize,
        now: u64,
        nanos_between: impl Fn(u64, u64) -> u64,
    ) -> Option<Chunk> {
        let mut reuse: Option<Chunk> = None;
        loop {
            let need_room = inner.allocated_bytes + reuse.as_ref().map_or(wanted, |_| 0)
                > self.limits.max_bytes;
            let oldest = Self::oldest_candidate(inner, requester);
            let Some((victim, last_ts)) = oldest else {
                break;
            };
            let expired = nanos_between(last_ts, now) > self.limits.min_age_nanos;
            if !need_room && !expired {
                break;
            }
            let evicted = match Self::evict_from(inner, &victim, requester) {
                Eviction::Reusable(chunk) => chunk,
                Eviction::HeldBySnapshot => continue,
                Eviction::Nothing => break,
            };
            if reuse.is_none() && evicted.capacity() >= wanted {
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
        Some(Chunk::with_capacity(wanted))
    }

    /// The thread holding the chunk whose newest record is oldest. Exited threads that hold
    /// nothing any more are forgotten on the way.
    fn oldest_candidate(
        inner: &mut StorageInner,
        requester: &ThreadBuffer,
    ) -> Option<(Arc<ThreadBuffer>, u64)> {
        let mut best: Option<(usize, u64)> = None;
        let mut index = 0;
        while index < inner.threads.len() {
            let thread = &inner.threads[index];
            if thread.exited.load(Ordering::Acquire) && thread.is_empty() {
                let departed = inner.threads.swap_remove(index);
                inner.departed_written += lock(&departed.state).written;
                continue;
            }
            let include_current = !std::ptr::eq(Arc::as_ptr(thread), requester);
            if let Some(ts) = thread.oldest_chunk(include_current)
                && best.is_none_or(|(_, best_ts)| ts < best_ts)
            {
                best = Some((index, ts));
            }
            index += 1;
        }
        best.map(|(index, ts)| (Arc::clone(&inner.threads[index]), ts))
    }

    /// Takes the oldest chunk of `victim`: its oldest sealed one, else its current one.
    fn evict_from(
        inner: &mut StorageInner,
        victim: &ThreadBuffer,
        requester: &ThreadBuffer,
    ) -> Eviction {
        let mut state = lock(&victim.state);
        let mut chunk = if let Some(mut sealed) = state.sealed.try_pop() {
            inner.overwritten += u64::from(sealed.records);
            match Arc::get_mut(&mut sealed) {
                Some(slot) => {
                    let chunk = mem::take(slot);
                    inner.shells.push(sealed);
                    chunk
                }
                None => {
                    inner.allocated_bytes -= sealed.capacity();
                    return Eviction::HeldBySnapshot;
                }
            }
        } else if !std::ptr::eq(victim, requester) && state.current.len > 0 {
            inner.overwritten += u64::from(state.current.records);
            mem::take(&mut state.current)
        } else {
            return Eviction::Nothing;
        };
        chunk.clear();
        Eviction::Reusable(chunk)
    }

    /// Called when a thread exits: its partly filled chunk is shrunk to its contents, so an
    /// exited thread keeps only what it recorded, and stays dumpable until evicted.
    pub(crate) fn retire(&self, buffer: &ThreadBuffer) {
        let mut inner = lock(&self.inner);
        let mut state = lock(&buffer.state);
        let current = mem::take(&mut state.current);
        inner.allocated_bytes -= current.capacity();
        if current.len > 0 {
            let compact = Chunk {
                buf: current.bytes().into(),
                len: current.len,
                records: current.records,
                last_ts: current.last_ts,
            };
            inner.allocated_bytes += compact.capacity();
            if let Err(chunk) = state.sealed.try_push(Arc::new(compact)) {
                inner.allocated_bytes -= chunk.capacity();
                inner.overwritten += u64::from(chunk.records);
            }
        }
        buffer.exited.store(true, Ordering::Release);
    }

    /// Copies every thread's chunks. Holds the storage lock throughout so that no chunk is
    /// evicted half-way (the counters then add up exactly), and each thread's lock only for the
    /// copy of its current chunk.
    pub(crate) fn snapshot(&self) -> RawSnapshot {
        let mut written = 0;
        let inner = lock(&self.inner);
        let threads = inner
            .threads
            .iter()
            .map(|thread| thread.copy(&mut lock(&thread.state), &mut written))
            .collect();
        Self::finish_snapshot(&inner, threads, written)
    }

    /// [`snapshot`](Self::snapshot) for a panic hook: gives up (`None`) rather than wait past
    /// `deadline` for any lock, since the panicking thread may hold one.
    pub(crate) fn try_snapshot(&self, deadline: Instant) -> Option<RawSnapshot> {
        let mut written = 0;
        let inner = try_lock_until(&self.inner, deadline)?;
        let threads = inner
            .threads
            .iter()
            .map(|thread| {
                try_lock_until(&thread.state, deadline)
                    .map(|mut state| thread.copy(&mut state, &mut written))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self::finish_snapshot(&inner, threads, written))
    }

    fn finish_snapshot(inner: &StorageInner, threads: Vec<RawThread>, written: u64) -> RawSnapshot {
        RawSnapshot {
            threads,
            written: written + inner.departed_written,
            overwritten: inner.overwritten,
            allocated_bytes: inner.allocated_bytes,
        }
    }

    /// Bytes of record storage allocated now.
    pub(crate) fn allocated_bytes(&self) -> usize {
        lock(&self.inner).allocated_bytes
    }

    /// Frees every chunk; used when the recorder goes away while threads still hold buffers.
    pub(crate) fn release_all(&self) {
        let mut inner = lock(&self.inner);
        for thread in mem::take(&mut inner.threads) {
            let mut state = lock(&thread.state);
            state.sealed.clear();
            state.current = Chunk::default();
        }
        inner.shells.clear();
        inner.allocated_bytes = 0;
    }
}

/// Takes a lock without waiting past `deadline`; a poisoned lock is taken as it is.
pub(crate) fn try_lock_until<T>(mutex: &Mutex<T>, deadline: Instant) -> Option<MutexGuard<'_, T>> {
    loop {
        match mutex.try_lock() {
            Ok(guard) => return Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => return Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(TryLockError::WouldBlock) => return None,
        }
    }
}

/// Process-wide source of thread ids for dumps.
pub(crate) fn next_tid() -> u64 {
    static NEXT_TID: AtomicU64 = AtomicU64::new(1);
    NEXT_TID.fetch_add(1, Ordering::Relaxed)
}
