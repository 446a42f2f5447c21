//! Which per-thread state a callback records with: a thread's slot for each recorder, found
//! through a one-entry cache (the common case is one recorder), and the guard that keeps a
//! re-entrant callback off a slot already in use.
//!
//! The slots themselves live in a thread-local `Vec<Box<Slot>>` (boxed, so a slot never moves
//! while the cache points at it). The cache is a `const` thread-local without a destructor,
//! so reading it is a plain thread-local load with no lazy-initialization or teardown check;
//! the `Vec` is reached only on a cache miss. One per-thread flag, `in_use`, says a callback
//! holds a slot: a callback that re-enters the layer on the same thread (a `Debug` impl that
//! logs, a panic hook run inside a callback) finds it set and is counted as dropped instead of
//! aliasing the slot, whichever recorder it is for.

use std::cell::{Cell, RefCell};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use crate::record::Recording;
use crate::record::encode::Scratch;
use crate::record::redact::CallsiteRedaction;
use crate::record::storage::{ThreadBuffer, ThreadIdentity, next_tid};

/// Span ids are handed out to threads in blocks, so a new span costs no shared atomic.
const KEY_BLOCK: u64 = 1 << 12;

/// Per-thread, per-recorder state.
pub(crate) struct Slot {
    recorder: u64,
    shared: Weak<Recording>,
    pub(crate) buffer: Arc<ThreadBuffer>,
    pub(crate) scratch: Scratch,
    /// Which callsites need their fields checked for redaction.
    pub(crate) redaction: CallsiteRedaction,
    /// Registry ids of the spans this thread is in, innermost last (as this layer saw them, so
    /// per-layer filters apply).
    stack: Vec<u64>,
    next_key: u64,
    key_end: u64,
}

impl Slot {
    /// The recorder this slot records for is still there.
    fn is_live(&self) -> bool {
        self.shared.strong_count() > 0
    }

    /// The thread entered span `id`.
    #[inline]
    pub(crate) fn entered(&mut self, id: u64) {
        self.stack.push(id);
    }

    fn new(shared: &Arc<Recording>) -> Slot {
        let identity = ThreadIdentity {
            tid: next_tid(),
            name: std::thread::current().name().map(str::to_owned),
        };
        Slot {
            recorder: shared.id,
            shared: Arc::downgrade(shared),
            buffer: shared.storage.register(identity),
            scratch: Scratch::new(),
            redaction: CallsiteRedaction::new(),
            stack: Vec::with_capacity(32),
            next_key: 0,
            key_end: 0,
        }
    }

    #[inline]
    pub(crate) fn next_span_key(&mut self) -> u64 {
        static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);
        if self.next_key == self.key_end {
            self.next_key = NEXT_BLOCK.fetch_add(KEY_BLOCK, Ordering::Relaxed);
            self.key_end = self.next_key + KEY_BLOCK;
        }
        let key = self.next_key;
        self.next_key += 1;
        key
    }

    /// The thread left span `id`: nearly always the innermost one.
    #[inline]
    pub(crate) fn left(&mut self, id: u64) {
        if self.stack.last() == Some(&id) {
            self.stack.pop();
        } else if let Some(at) = self.stack.iter().rposition(|&s| s == id) {
            self.stack.remove(at);
        }
    }

    #[inline]
    pub(crate) fn current_span(&self) -> u64 {
        self.stack.last().copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // The thread is exiting (or the recorder is gone): keep what it recorded dumpable.
        if let Some(shared) = self.shared.upgrade() {
            shared.storage.retire(&self.buffer);
        }
    }
}

/// The one-entry cache and the in-use flag.
struct Fast {
    /// The recorder `slot` belongs to (0: none; recorder ids start at 1).
    recorder: Cell<u64>,
    slot: Cell<*mut Slot>,
    in_use: Cell<bool>,
}

/// Owns this thread's slots; forgets the cache before they go (thread exit).
// Boxed: the cache points at a slot while the `Vec` may grow.
#[allow(clippy::vec_box)]
struct Slots(Vec<Box<Slot>>);

impl Drop for Slots {
    fn drop(&mut self) {
        FAST.with(|fast| {
            fast.recorder.set(0);
            fast.slot.set(ptr::null_mut());
        });
        // The slots drop after this, each retiring its buffer.
    }
}

thread_local! {
    static FAST: Fast = const {
        Fast {
            recorder: Cell::new(0),
            slot: Cell::new(ptr::null_mut()),
            in_use: Cell::new(false),
        }
    };
    static SLOTS: RefCell<Slots> = const { RefCell::new(Slots(Vec::new())) };
}

/// Clears `in_use` when the callback is done, also if it unwinds (a `Debug` impl that panics).
struct InUse;

impl Drop for InUse {
    #[inline]
    fn drop(&mut self) {
        FAST.with(|fast| fast.in_use.set(false));
    }
}

/// Runs `f` with this thread's slot for `shared`. Re-entrant calls and calls during thread
/// teardown cannot get the slot: they are counted as dropped when recording.
#[inline]
pub(crate) fn with_slot(shared: &Arc<Recording>, f: impl FnOnce(&Recording, &mut Slot)) {
    // Two small thread-local accesses around `f` rather than `f` inside one: they inline to
    // plain thread-local loads and stores, where a large closure would keep `with` (and the
    // thread-local's address) behind a call.
    let Some(slot) = FAST.with(|fast| acquire(fast, shared)) else {
        if shared.is_recording() {
            shared.count_dropped();
        }
        return;
    };
    let _in_use = InUse;
    // SAFETY: `slot` points into a box `SLOTS` owns, which stays where it is until the
    // thread's `SLOTS` is dropped (which first clears the cache) or `slot_for` removes it
    // (which happens only under `in_use`, and resets the cache to what it returns). While
    // `in_use` is set (until `_in_use` drops) nothing else on this thread reaches any slot,
    // and no other thread ever does.
    f(shared, unsafe { &mut *slot });
}

/// Sets `in_use` and returns the slot for `shared`: from the cache, or through [`slot_for`].
/// `None` (and `in_use` as it was) if a callback already holds a slot on this thread or
/// the thread's slots are torn down.
#[inline(always)]
fn acquire(fast: &Fast, shared: &Arc<Recording>) -> Option<*mut Slot> {
    if fast.in_use.get() {
        return None;
    }
    if fast.recorder.get() == shared.id {
        fast.in_use.set(true);
        return Some(fast.slot.get());
    }
    fast.in_use.set(true);
    // Cleared again if making the slot fails or unwinds; kept set for `f` otherwise.
    let in_use = InUse;
    let slot = slot_for(shared)?;
    std::mem::forget(in_use);
    fast.recorder.set(shared.id);
    fast.slot.set(slot);
    Some(slot)
}

/// The cache missed: finds or makes this thread's slot for `shared` (`None` once the thread's
/// slots are torn down). Called with `in_use` set.
#[cold]
#[inline(never)]
fn slot_for(shared: &Arc<Recording>) -> Option<*mut Slot> {
    SLOTS
        .try_with(|slots| {
            let mut slots = slots.try_borrow_mut().ok()?;
            let slots = &mut slots.0;
            if let Some(slot) = slots.iter_mut().find(|s| s.recorder == shared.id) {
                return Some(&mut **slot as *mut Slot);
            }
            // First record of this thread for this recorder; forget recorders that are gone
            // (the cache points at the slot returned, never at one removed here).
            slots.retain(|s| s.is_live());
            slots.push(Box::new(Slot::new(shared)));
            slots.last_mut().map(|slot| &mut **slot as *mut Slot)
        })
        .ok()
        .flatten()
}
