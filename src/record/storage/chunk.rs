//! A chunk: one block of encoded records from one thread, and the gauge of chunks that
//! snapshots hold beyond the budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::ThreadIdentity;
#[cfg(feature = "crash")]
use crate::record::crash::{CrashStore, MappedBlock};
use crate::record::encode::Encoded;
#[cfg(feature = "crash")]
use crate::record::encode::HEADER_BYTES;

/// Bytes of record storage that snapshots keep alive outside the budget: chunks evicted while
/// a snapshot still read them, and snapshots' copies of current chunks.
#[derive(Debug, Default)]
pub(crate) struct HeldBytes(AtomicUsize);

impl HeldBytes {
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    fn add(&self, bytes: usize) {
        self.0.fetch_add(bytes, Ordering::Relaxed);
    }

    fn sub(&self, bytes: usize) {
        self.0.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// Counts a snapshot's copies of current chunks in [`HeldBytes`] while the snapshot lives.
pub(crate) struct HeldCopies {
    gauge: Arc<HeldBytes>,
    bytes: usize,
}

impl HeldCopies {
    pub(super) fn new(gauge: &Arc<HeldBytes>, bytes: usize) -> Self {
        gauge.add(bytes);
        HeldCopies {
            gauge: Arc::clone(gauge),
            bytes,
        }
    }
}

impl Drop for HeldCopies {
    fn drop(&mut self) {
        self.gauge.sub(self.bytes);
    }
}

/// Where a chunk's bytes live.
enum Memory {
    Heap(Box<[u8]>),
    /// In the crash file, which outlives the process.
    #[cfg(feature = "crash")]
    Mapped(MappedBlock),
}

impl Default for Memory {
    fn default() -> Self {
        Memory::Heap(Box::default())
    }
}

impl Memory {
    #[inline]
    fn as_slice(&self) -> &[u8] {
        match self {
            Memory::Heap(bytes) => bytes,
            #[cfg(feature = "crash")]
            Memory::Mapped(block) => block.bytes(),
        }
    }

    fn heap(bytes: &[u8]) -> Memory {
        Memory::Heap(bytes.into())
    }
}

/// A block of encoded records from one thread. Records are appended whole; `last_ts` is the
/// newest record's timestamp, the chunk's age for eviction.
#[derive(Default)]
pub(crate) struct Chunk {
    buf: Memory,
    len: usize,
    pub(super) records: u32,
    pub(super) last_ts: u64,
    /// Where the chunk counts itself once evicted while shared with a snapshot.
    gauge: Option<Arc<HeldBytes>>,
    detached: AtomicBool,
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if *self.detached.get_mut()
            && let Some(gauge) = &self.gauge
        {
            gauge.sub(self.capacity());
        }
    }
}

impl Chunk {
    /// An empty chunk of `bytes` (the crash file's block size for that, when there is one;
    /// ordinary memory when there is none or it is full).
    pub(super) fn with_capacity(
        bytes: usize,
        gauge: &Arc<HeldBytes>,
        #[cfg(feature = "crash")] crash: Option<&Arc<CrashStore>>,
    ) -> Self {
        #[cfg(feature = "crash")]
        if let Some(store) = crash {
            match store.allocate(bytes) {
                Some(block) => return Self::with_memory(Memory::Mapped(block), gauge),
                None => store.note_unmapped(),
            }
        }
        Self::with_memory(Memory::Heap(vec![0u8; bytes].into_boxed_slice()), gauge)
    }

    fn with_memory(buf: Memory, gauge: &Arc<HeldBytes>) -> Self {
        Chunk {
            buf,
            len: 0,
            records: 0,
            last_ts: 0,
            gauge: Some(Arc::clone(gauge)),
            detached: AtomicBool::new(false),
        }
    }

    /// The storage let go of this chunk while a snapshot still reads it: it counts as held
    /// until the last reader drops it.
    pub(super) fn detach(&self) {
        if let Some(gauge) = &self.gauge
            && !self.detached.swap(true, Ordering::Relaxed)
        {
            gauge.add(self.capacity());
        }
        // No longer the storage's: a reader of the crash file must not take it for records
        // still held (the snapshot reads `len`, not the descriptor).
        #[cfg(feature = "crash")]
        if let Memory::Mapped(block) = &self.buf {
            block.commit(0);
        }
    }

    pub(super) fn capacity(&self) -> usize {
        self.buf.as_slice().len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub(super) fn fits(&self, record: Encoded<'_>) -> bool {
        self.capacity() - self.len >= record.len()
    }

    #[inline]
    pub(super) fn push(&mut self, record: Encoded<'_>, ts: u64) {
        let end = self.len + record.len();
        match &mut self.buf {
            Memory::Heap(bytes) => bytes[self.len..end].copy_from_slice(record.bytes()),
            #[cfg(feature = "crash")]
            Memory::Mapped(block) => {
                let bytes = block.bytes_mut();
                bytes[self.len..end].copy_from_slice(record.bytes());
                // Zeros where the next record's header goes: a crash while it is written
                // leaves non-zero bytes past the committed length, which says so.
                if let Some(next) = bytes.get_mut(end..end + HEADER_BYTES) {
                    next.copy_from_slice(&[0; HEADER_BYTES]);
                }
                block.commit(end);
            }
        }
        self.len = end;
        self.records += 1;
        self.last_ts = ts;
    }

    /// Gives the chunk to thread `tid` as its chunk number `seq` (the crash file's
    /// descriptor says whose records these are).
    #[cfg_attr(not(feature = "crash"), allow(unused_variables))]
    pub(super) fn claim(&mut self, tid: u64, name: Option<&str>, seq: u64) {
        #[cfg(feature = "crash")]
        if let Memory::Mapped(block) = &mut self.buf {
            block.claim(tid, name, seq);
            if let Some(first) = block.bytes_mut().get_mut(..HEADER_BYTES) {
                first.fill(0);
            }
        }
    }

    pub(super) fn clear(&mut self) {
        #[cfg(feature = "crash")]
        if let Memory::Mapped(block) = &self.buf {
            block.commit(0);
        }
        self.len = 0;
        self.records = 0;
        self.last_ts = 0;
    }

    /// A copy of the records, for a snapshot: outside the budget, counted by `HeldCopies`.
    pub(super) fn copy(&self) -> Chunk {
        Chunk {
            buf: Memory::heap(self.bytes()),
            len: self.len,
            records: self.records,
            last_ts: self.last_ts,
            gauge: None,
            detached: AtomicBool::new(false),
        }
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
        #[allow(unused_mut)]
        let mut buf = Memory::heap(self.bytes());
        #[cfg(feature = "crash")]
        if let Some((store, fresh_seq)) = crash {
            let seq = match &self.buf {
                Memory::Mapped(block) => block.seq(),
                Memory::Heap(_) => fresh_seq,
            };
            buf = match store.allocate(self.len) {
                Some(mut smaller) => {
                    smaller.claim(identity.tid, identity.name.as_deref(), seq);
                    smaller.bytes_mut()[..self.len].copy_from_slice(self.bytes());
                    smaller.commit(self.len);
                    Memory::Mapped(smaller)
                }
                // The arena is full of chunks snapshots hold: ordinary memory of the same
                // size, so the budget counts the same whichever it got.
                None => {
                    store.note_unmapped();
                    let mut bytes = vec![0u8; CrashStore::block_bytes(self.len)];
                    bytes[..self.len].copy_from_slice(self.bytes());
                    Memory::Heap(bytes.into_boxed_slice())
                }
            };
        }
        Chunk {
            buf,
            len: self.len,
            records: self.records,
            last_ts: self.last_ts,
            gauge: self.gauge.clone(),
            detached: AtomicBool::new(false),
        }
    }

    /// The records, encoded back to back (read them with `reader::RecordReader`).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf.as_slice()[..self.len]
    }

    /// A chunk read back from a crash file: `bytes` are records the crash reader checked and
    /// whose metadata addresses it replaced with this process's (see `crash::read`), so they
    /// read like the encoder's output.
    #[cfg(feature = "crash")]
    pub(crate) fn recovered(bytes: Vec<u8>, records: u32, last_ts: u64) -> Chunk {
        Chunk {
            len: bytes.len(),
            buf: Memory::Heap(bytes.into_boxed_slice()),
            records,
            last_ts,
            gauge: None,
            detached: AtomicBool::new(false),
        }
    }
}
