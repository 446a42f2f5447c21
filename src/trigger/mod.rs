//! Stage 3, deciding when to dump: admission (cooldown, top-N, queue room, memory), and the
//! triggers themselves — slow spans and errors (through the recording's hooks), signals,
//! panics. They hand a snapshot to the dump thread; they never encode.

pub(crate) mod admission;
#[cfg(all(unix, feature = "signal"))]
pub(crate) mod signal;
