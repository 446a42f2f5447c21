//! A chunk: one block of encoded records from one thread.

/// A block of encoded records from one thread. Records are appended whole; `last_ts` is the
/// newest record's timestamp, the chunk's age for eviction.
#[derive(Default)]
pub(crate) struct Chunk {
    buf: Box<[u8]>,
    len: usize,
    pub(super) records: u32,
    pub(super) last_ts: u64,
}

impl Chunk {
    pub(super) fn with_capacity(bytes: usize) -> Self {
        Chunk {
            buf: vec![0u8; bytes].into_boxed_slice(),
            ..Chunk::default()
        }
    }

    pub(super) fn capacity(&self) -> usize {
        self.buf.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub(super) fn fits(&self, record: &[u8]) -> bool {
        self.buf.len() - self.len >= record.len()
    }

    #[inline]
    pub(super) fn push(&mut self, record: &[u8], ts: u64) {
        self.buf[self.len..self.len + record.len()].copy_from_slice(record);
        self.len += record.len();
        self.records += 1;
        self.last_ts = ts;
    }

    pub(super) fn clear(&mut self) {
        self.len = 0;
        self.records = 0;
        self.last_ts = 0;
    }

    /// The same records in a chunk of exactly their size.
    pub(super) fn compacted(&self) -> Chunk {
        Chunk {
            buf: self.bytes().into(),
            len: self.len,
            records: self.records,
            last_ts: self.last_ts,
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}
