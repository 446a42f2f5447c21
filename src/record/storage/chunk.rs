//! A chunk: one block of encoded records from one thread, filled by that thread while
//! snapshots read what it has published.
//!
//! Its writer appends past the published length and then publishes the new one (a release
//! store of length and record count together); a reader reads below the length it loaded
//! (acquire). So the bytes are only ever reached through a raw pointer, never through a
//! reference that covers what the writer is writing.

use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::ThreadIdentity;
use super::held::HeldBytes;
#[cfg(feature = "crash")]
use crate::record::crash::{CrashStore, MappedBlock};
#[cfg(feature = "crash")]
use crate::record::encode::HEADER_BYTES;
use crate::record::encode::{Encoded, SPAN_RECORD_BYTES, SpanRecord};

/// Heap memory for a chunk, owned through a raw pointer (see the module's comment).
struct HeapBytes {
    ptr: NonNull<u8>,
    capacity: usize,
}

// SAFETY: a plain owned allocation; who may write it when is the chunk's protocol.
unsafe impl Send for HeapBytes {}
// SAFETY: as above.
unsafe impl Sync for HeapBytes {}

impl HeapBytes {
    fn new(bytes: Box<[u8]>) -> Self {
        let capacity = bytes.len();
        let ptr = NonNull::new(Box::into_raw(bytes).cast::<u8>()).unwrap_or(NonNull::dangling());
        HeapBytes { ptr, capacity }
    }
}

impl Drop for HeapBytes {
    fn drop(&mut self) {
        if self.capacity > 0 {
            let slice = std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.capacity);
            // SAFETY: made by `Box::into_raw` of a boxed slice of this length, freed once.
            drop(unsafe { Box::from_raw(slice) });
        }
    }
}

/// Where a chunk's bytes live.
enum Memory {
    Heap(HeapBytes),
    /// In the crash file, which outlives the process.
    #[cfg(feature = "crash")]
    Mapped(MappedBlock),
}

impl Memory {
    /// `bytes` in ordinary memory of `capacity` (zeroed past them).
    fn heap(bytes: &[u8], capacity: usize) -> Memory {
        let boxed: Box<[u8]> = if capacity <= bytes.len() {
            // A copy of exactly the records (snapshots, exited threads): no zeroing first.
            bytes.into()
        } else {
            let mut boxed = vec![0u8; capacity].into_boxed_slice();
            boxed[..bytes.len()].copy_from_slice(bytes);
            boxed
        };
        Memory::Heap(HeapBytes::new(boxed))
    }

    #[inline]
    fn base(&self) -> *mut u8 {
        match self {
            Memory::Heap(heap) => heap.ptr.as_ptr(),
            #[cfg(feature = "crash")]
            Memory::Mapped(block) => block.base(),
        }
    }
}

/// Length in bytes (low 32 bits) and record count (high 32 bits), published together.
fn pack(len: usize, records: u32) -> u64 {
    (u64::from(records) << 32) | len as u64
}

fn unpack(packed: u64) -> (usize, u32) {
    (
        (packed & u64::from(u32::MAX)) as usize,
        (packed >> 32) as u32,
    )
}

/// A block of encoded records from one thread. Records are appended whole; `last_ts` is the
/// newest record's timestamp, the chunk's age for eviction.
pub(crate) struct Chunk {
    buf: Memory,
    capacity: usize,
    /// Length and record count (see [`pack`]), published by the writer with release.
    published: AtomicU64,
    last_ts: AtomicU64,
    /// Where the chunk counts itself once evicted while shared with a snapshot.
    gauge: Option<Arc<HeldBytes>>,
    detached: AtomicBool,
}

impl Default for Chunk {
    fn default() -> Self {
        Chunk::with_memory(Memory::heap(&[], 0), 0, 0, 0, None)
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if *self.detached.get_mut()
            && let Some(gauge) = &self.gauge
        {
            gauge.sub(self.capacity);
        }
    }
}

impl Chunk {
    fn with_memory(
        buf: Memory,
        capacity: usize,
        len: usize,
        records: u32,
        gauge: Option<Arc<HeldBytes>>,
    ) -> Self {
        Chunk {
            buf,
            capacity,
            published: AtomicU64::new(pack(len, records)),
            last_ts: AtomicU64::new(0),
            gauge,
            detached: AtomicBool::new(false),
        }
    }

    /// An empty chunk of `bytes` (the crash file's block size for that, when there is one;
    /// ordinary memory when there is none or it is full).
    pub(super) fn with_capacity(
        bytes: usize,
        gauge: &Arc<HeldBytes>,
        #[cfg(feature = "crash")] crash: Option<&Arc<CrashStore>>,
    ) -> Self {
        let gauge = Some(Arc::clone(gauge));
        #[cfg(feature = "crash")]
        if let Some(store) = crash {
            match store.allocate(bytes) {
                Some(block) => {
                    let capacity = block.capacity();
                    return Self::with_memory(Memory::Mapped(block), capacity, 0, 0, gauge);
                }
                None => store.note_unmapped(),
            }
        }
        Self::with_memory(Memory::heap(&[], bytes), bytes, 0, 0, gauge)
    }

    /// The storage let go of this chunk while a snapshot still reads it: it counts as held
    /// until the last reader drops it.
    pub(super) fn detach(&self) {
        if let Some(gauge) = &self.gauge
            && !self.detached.swap(true, Ordering::Relaxed)
        {
            gauge.add(self.capacity);
        }
        // No longer the storage's: a reader of the crash file must not take it for records
        // still held (the snapshot reads the chunk, not the descriptor).
        #[cfg(feature = "crash")]
        if let Memory::Mapped(block) = &self.buf {
            block.commit(0);
        }
    }

    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes published so far.
    #[inline]
    fn len(&self) -> usize {
        unpack(self.published.load(Ordering::Acquire)).0
    }

    /// Records published so far.
    pub(super) fn records(&self) -> u32 {
        unpack(self.published.load(Ordering::Acquire)).1
    }

    /// The newest record's timestamp (for a chunk still being filled, at least that of the
    /// newest published one).
    pub(super) fn last_ts(&self) -> u64 {
        self.last_ts.load(Ordering::Relaxed)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `record` fits. Only its writer may rely on the answer.
    #[inline]
    pub(super) fn fits(&self, record: Encoded<'_>) -> bool {
        self.capacity - self.len() >= record.len()
    }

    /// Appends a record that [`fits`](Self::fits).
    ///
    /// # Safety
    ///
    /// Only the chunk's writer calls this (its thread, or the storage holding it alone),
    /// never two at once: the bytes past the published length are the writer's alone.
    #[inline]
    pub(super) unsafe fn push(&self, record: Encoded<'_>, ts: u64) {
        // SAFETY: the caller's promise; `write` stores exactly `record.len()` bytes.
        unsafe {
            self.push_with(record.len(), ts, |at| {
                std::ptr::copy_nonoverlapping(record.bytes().as_ptr(), at, record.len());
            });
        }
    }

    /// Whether an enter, exit or close record fits. Only its writer may rely on the answer.
    #[inline]
    pub(super) fn fits_span(&self) -> bool {
        self.capacity - self.len() >= SPAN_RECORD_BYTES
    }

    /// Appends an enter, exit or close record that [`fits_span`](Self::fits_span), written
    /// in place as three stores: building it on the stack and copying it would load 16 bytes
    /// over several smaller stores just made, which the CPU cannot forward (a stall that
    /// cost more than the rest of the append).
    ///
    /// # Safety
    ///
    /// As for [`push`](Self::push).
    #[inline]
    pub(super) unsafe fn push_span(&self, record: SpanRecord) {
        // SAFETY: the caller's promise; `write` stores exactly `SPAN_RECORD_BYTES` bytes.
        unsafe { self.push_with(SPAN_RECORD_BYTES, record.ts, |at| record.write(at)) }
    }

    /// Appends `len` bytes that `write` stores at the pointer it is given, then publishes
    /// them.
    ///
    /// # Safety
    ///
    /// As for [`push`](Self::push); the record fits, and `write` stores exactly `len` bytes.
    #[inline(always)]
    unsafe fn push_with(&self, len_bytes: usize, ts: u64, write: impl FnOnce(*mut u8)) {
        let (len, records) = unpack(self.published.load(Ordering::Relaxed));
        let end = len + len_bytes;
        debug_assert!(end <= self.capacity);
        // SAFETY: `end` is within the chunk (the caller checked it fits), and the bytes past
        // the published length are read by no one and written by this writer only.
        write(unsafe { self.buf.base().add(len) });
        #[cfg(target_arch = "x86_64")]
        {
            // The chunk is written front to back into memory that has been out of the caches
            // since it was last filled: ask for the line a few records ahead now, so the
            // stores that reach it need not wait for it.
            const AHEAD: usize = 256;
            if end + AHEAD < self.capacity {
                // SAFETY: a prefetch of an address within the chunk; it reads nothing.
                unsafe {
                    use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
                    _mm_prefetch::<_MM_HINT_T0>(self.buf.base().add(end + AHEAD).cast::<i8>());
                }
            }
        }
        #[cfg(feature = "crash")]
        if let Memory::Mapped(block) = &self.buf {
            // Zeros where the next record's header goes: a crash while it is written leaves
            // non-zero bytes past the committed length, which says so.
            if end + HEADER_BYTES <= self.capacity {
                // SAFETY: within the block, past the published length (as above).
                unsafe { self.buf.base().add(end).write_bytes(0, HEADER_BYTES) };
            }
            block.commit(end);
        }
        self.last_ts.store(ts, Ordering::Relaxed);
        self.published
            .store(pack(end, records + 1), Ordering::Release);
    }

    /// Gives the chunk to thread `tid` as its chunk number `seq` (the crash file's
    /// descriptor says whose records these are).
    #[cfg_attr(not(feature = "crash"), allow(unused_variables))]
    pub(super) fn claim(&mut self, tid: u64, name: Option<&str>, seq: u64) {
        #[cfg(feature = "crash")]
        if let Memory::Mapped(block) = &mut self.buf {
            block.claim(tid, name, seq);
            if self.capacity >= HEADER_BYTES {
                // SAFETY: within the block, which `&mut self` holds alone.
                unsafe { block.base().write_bytes(0, HEADER_BYTES) };
            }
        }
    }

    pub(super) fn clear(&mut self) {
        #[cfg(feature = "crash")]
        if let Memory::Mapped(block) = &self.buf {
            block.commit(0);
        }
        *self.published.get_mut() = 0;
        *self.last_ts.get_mut() = 0;
    }

    /// A copy of the records published so far, for a snapshot: outside the budget, counted
    /// by `HeldCopies`. Safe while the writer appends (it only writes past them).
    pub(super) fn copy(&self) -> Chunk {
        let (len, records) = unpack(self.published.load(Ordering::Acquire));
        let chunk = Self::with_memory(
            Memory::heap(self.bytes_up_to(len), len),
            len,
            len,
            records,
            None,
        );
        chunk.last_ts.store(self.last_ts(), Ordering::Relaxed);
        chunk
    }

    /// The same records in a chunk of exactly their size. With a crash file: in the smallest
    /// block that holds them, claimed for the same thread (and, if this chunk is in the file,
    /// the same number, so a reader keeps one of the two should the process die in between;
    /// else number `fresh_seq`).
    pub(super) fn compacted(
        &self,
        identity: &ThreadIdentity,
        #[cfg(feature = "crash")] crash: Option<(&Arc<CrashStore>, u64)>,
    ) -> Chunk {
        let _ = identity;
        let (len, records) = unpack(self.published.load(Ordering::Acquire));
        let bytes = self.bytes_up_to(len);
        #[allow(unused_mut)]
        let (mut buf, mut capacity) = (Memory::heap(bytes, len), len);
        #[cfg(feature = "crash")]
        if let Some((store, fresh_seq)) = crash {
            let seq = match &self.buf {
                Memory::Mapped(block) => block.seq(),
                Memory::Heap(_) => fresh_seq,
            };
            (buf, capacity) = match store.allocate(len) {
                Some(mut smaller) => {
                    smaller.claim(identity.tid, identity.name.as_deref(), seq);
                    // SAFETY: the new block holds at least `len` bytes and is ours alone.
                    unsafe {
                        std::ptr::copy_nonoverlapping(bytes.as_ptr(), smaller.base(), len);
                    }
                    smaller.commit(len);
                    let capacity = smaller.capacity();
                    (Memory::Mapped(smaller), capacity)
                }
                // The arena is full of chunks snapshots hold: ordinary memory of the same
                // size, so the budget counts the same whichever it got.
                None => {
                    store.note_unmapped();
                    let capacity = CrashStore::block_bytes(len);
                    (Memory::heap(bytes, capacity), capacity)
                }
            };
        }
        let chunk = Self::with_memory(buf, capacity, len, records, self.gauge.clone());
        chunk.last_ts.store(self.last_ts(), Ordering::Relaxed);
        chunk
    }

    /// The records published so far, encoded back to back (read them with
    /// `reader::RecordReader`).
    pub(crate) fn bytes(&self) -> &[u8] {
        self.bytes_up_to(self.len())
    }

    fn bytes_up_to(&self, len: usize) -> &[u8] {
        if len == 0 {
            return &[];
        }
        // SAFETY: the first `len` bytes were published (acquire): written once, never again
        // while the chunk holds them (`clear` takes `&mut self`).
        unsafe { std::slice::from_raw_parts(self.buf.base(), len) }
    }

    /// A chunk read back from a crash file: `bytes` are records the crash reader checked and
    /// whose metadata addresses it replaced with this process's (see `crash::read`), so they
    /// read like the encoder's output.
    #[cfg(feature = "crash")]
    pub(crate) fn recovered(bytes: Vec<u8>, records: u32, last_ts: u64) -> Chunk {
        let len = bytes.len();
        let chunk = Self::with_memory(
            Memory::Heap(HeapBytes::new(bytes.into_boxed_slice())),
            len,
            len,
            records,
            None,
        );
        chunk.last_ts.store(last_ts, Ordering::Relaxed);
        chunk
    }
}
