//! Small shared helpers: locks that survive poisoning or give up at a deadline, and running
//! background work unrecorded.
//!
//! Background work runs under `Dispatch::none()`, scoped to each unit of work.
//! Scoped, not for a thread's whole life: while any thread is inside `with_default`,
//! tracing-core takes its slow path for every `tracing` call in the process (a thread-local
//! look-up instead of the global default), and events emitted from inside a subscriber go
//! nowhere. An idle background thread must leave the application's fast path alone.

use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

/// Locks a mutex, recovering from poisoning: the data behind our locks is only ever changed by
/// code that cannot panic half-way (no user code runs under them), so a poisoned lock still
/// holds consistent data.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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

/// Runs `work` with no subscriber: nothing it does is recorded, by us or by other layers.
///
/// `Dispatch::none()`, not a new `Dispatch` of `NoSubscriber`: creating a dispatcher makes
/// tracing-core recompute every callsite's cached interest with it included, and a subscriber
/// that wants nothing turns "always" into "sometimes" for the whole process — every later
/// `tracing` call then asks each subscriber `enabled` again (about 50 instructions an event),
/// long after the work is done.
pub(crate) fn quietly<T>(work: impl FnOnce() -> T) -> T {
    tracing::dispatcher::with_default(&tracing::Dispatch::none(), work)
}
