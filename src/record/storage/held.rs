//! The gauge of record storage that snapshots keep alive beyond the budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes of record storage that snapshots keep alive outside the budget: chunks evicted while
/// a snapshot still read them, and snapshots' copies of current chunks.
#[derive(Debug, Default)]
pub(crate) struct HeldBytes(AtomicUsize);

impl HeldBytes {
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    pub(super) fn add(&self, bytes: usize) {
        self.0.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(super) fn sub(&self, bytes: usize) {
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
