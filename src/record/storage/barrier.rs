//! The two barriers of the owner/storage handshake (`thread`'s module comment): a light one
//! on the owner's every append, a heavy one when the storage takes a chunk away.
//!
//! On Linux the heavy one is `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` (a full fence run
//! by every thread of the process), so the light one is only a compiler fence. Where that is
//! not available both are ordinary `SeqCst` fences, which is correct and costs the owner a
//! fence per append.

use std::sync::atomic::{AtomicBool, Ordering, compiler_fence, fence};

/// Whether `membarrier` works (registered for this process). Set once, before any storage
/// exists, and only ever from false to true.
static EXPEDITED: AtomicBool = AtomicBool::new(false);

/// Registers the process for expedited `membarrier` (once; cheap afterwards). Called when a
/// storage is made, before any thread appends to it.
pub(super) fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(target_os = "linux")]
        {
            use rustix::thread::{MembarrierCommand, membarrier, membarrier_query};
            let query = membarrier_query();
            if query.contains_command(MembarrierCommand::PrivateExpedited)
                && query.contains_command(MembarrierCommand::RegisterPrivateExpedited)
                && membarrier(MembarrierCommand::RegisterPrivateExpedited).is_ok()
            {
                EXPEDITED.store(true, Ordering::SeqCst);
            }
        }
    });
}

/// The owner's side, between marking itself busy and reading the claim.
#[inline]
pub(super) fn light() {
    if EXPEDITED.load(Ordering::Relaxed) {
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// The storage's side, between claiming and reading busy (and after taking the chunk).
pub(super) fn heavy() {
    #[cfg(target_os = "linux")]
    if EXPEDITED.load(Ordering::Relaxed) {
        use rustix::thread::{MembarrierCommand, membarrier};
        if membarrier(MembarrierCommand::PrivateExpedited).is_ok() {
            return;
        }
    }
    fence(Ordering::SeqCst);
}
