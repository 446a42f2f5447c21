//! A chunk: one block of encoded records from one thread, and the gauge of chunks that
//! snapshots hold beyond the budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::record::encode::Encoded;

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

/// A block of encoded records from one thread. Records are appended whole; `last_ts` is the
/// newest record's timestamp, the chunk's age for eviction.
#[derive(Default)]
pub(crate) struct Chunk {
    buf: Box<[u8]>,
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
            gauge.sub(self.buf.len());
        }
    }
}

impl Chunk {
    pub(super) fn with_capacity(bytes: usize, gauge: &Arc<HeldBytes>) -> Self {
        Chunk {
            buf: vec![0u8; bytes].into_boxed_slice(),
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
            gauge.add(self.buf.len());
        }
    }

    pub(super) fn capacity(&self) -> usize {
        self.buf.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub(super) fn fits(&self, record: Encoded<'_>) -> bool {
        self.buf.len() - self.len >= record.len()
    }

    #[inline]
    pub(super) fn push(&mut self, record: Encoded<'_>, ts: u64) {
        self.buf[self.len..self.len + record.len()].copy_from_slice(record.bytes());
        self.len += record.len();
        self.records += 1;
        self.last_ts = ts;
    }

    pub(super) fn clear(&mut self) {
        self.len = 0;
        self.records = 0;
        self.last_ts = 0;
    }

    /// A copy of the records, for a snapshot: outside the budget, counted by `HeldCopies`.
    pub(super) fn copy(&self) -> Chunk {
        Chunk {
            buf: self.bytes().into(),
            len: self.len,
            records: self.records,
            last_ts: self.last_ts,
            gauge: None,
            detached: AtomicBool::new(false),
        }
    }

    /// The same records in a chunk of exactly their size.
    pub(super) fn compacted(&self) -> Chunk {
        Chunk {
            buf: self.bytes().into(),
            len: self.len,
            records: self.records,
            last_ts: self.last_ts,
            gauge: self.gauge.clone(),
            detached: AtomicBool::new(false),
        }
    }

    /// The records, encoded back to back (read them with `reader::RecordReader`).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}
