//! An entry of the eviction heap: a thread and the age of its oldest chunk.

use std::cmp::Ordering;
use std::sync::Arc;

use super::ThreadBuffer;

/// A thread in the eviction heap, keyed by the age of its oldest chunk (a lower bound: see the
/// module docs); ties go to the older thread. Ordered so that `BinaryHeap` pops the oldest.
pub(super) struct Candidate {
    pub(super) key: u64,
    pub(super) thread: Arc<ThreadBuffer>,
}

impl Candidate {
    fn rank(&self) -> (u64, u64) {
        (self.key, self.thread.identity.tid)
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.rank() == other.rank()
    }
}

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        other.rank().cmp(&self.rank())
    }
}
