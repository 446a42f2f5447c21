//! Background work runs unrecorded: under `NoSubscriber`, scoped to each unit of work.
//!
//! Scoped, not for a thread's whole life: while any thread is inside `with_default`,
//! tracing-core takes its slow path for every `tracing` call in the process (a thread-local
//! look-up instead of the global default), and events emitted from inside a subscriber go
//! nowhere. An idle background thread must leave the application's fast path alone.

/// Runs `work` with no subscriber: nothing it does is recorded, by us or by other layers.
pub(crate) fn quietly<T>(work: impl FnOnce() -> T) -> T {
    tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), work)
}
