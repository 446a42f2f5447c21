//! Stage 1, the hot path: the layer and its callbacks, the binary record encoding, per-thread
//! storage and eviction, redaction, span timing for the latency trigger, the clock. Imports
//! nothing from the stages after it (`dump`, `trigger`, `serve`); it reaches the triggers only
//! through the [`hooks::TriggerHooks`] trait they implement.

pub(crate) mod encode;
pub(crate) mod layer;
pub(crate) mod redact;
pub(crate) mod span_timing;
pub(crate) mod storage;
