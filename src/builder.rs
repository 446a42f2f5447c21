//! The fallible builder.

use std::sync::Arc;
use std::time::Duration;

use crate::error::BuildError;
use crate::layer::FlightRecorderLayer;
use crate::recorder::{FlightRecorder, Settings, Shared};

/// Default hard cap on record storage: 10 MiB, as Go's `FlightRecorder`.
pub const DEFAULT_MAX_BYTES: usize = 10 << 20;
/// Default history the recorder aims to keep: 10 s, as Go's `FlightRecorder`.
pub const DEFAULT_MIN_AGE: Duration = Duration::from_secs(10);
/// Default cut-off for one field value, in bytes.
pub const DEFAULT_MAX_FIELD_LEN: usize = 256;
/// Smallest accepted `max_bytes`.
pub const MIN_MAX_BYTES: usize = 64 << 10;
/// Largest accepted `max_bytes` (1 TiB on 64-bit targets).
pub const MAX_MAX_BYTES: usize = if usize::BITS >= 64 { 1 << 40 } else { 1 << 30 };
/// Largest accepted `max_field_len`.
pub const MAX_FIELD_LEN_LIMIT: usize = 4096;

const MAX_MIN_AGE: Duration = Duration::from_secs(365 * 24 * 60 * 60);
const MIN_CHUNK_BYTES: usize = 16 << 10;
const MAX_CHUNK_BYTES: usize = 1 << 20;
/// Storage is cut into about this many chunks: the granularity of allocation and eviction.
const TARGET_CHUNKS: usize = 64;

/// Configures a flight recorder; [`build`](Builder::build) returns the layer and its handle.
///
/// ```
/// use std::time::Duration;
/// let (layer, recorder) = tracing_blackbox::FlightRecorder::builder()
///     .max_bytes(4 << 20)
///     .min_age(Duration::from_secs(30))
///     .build()?;
/// # drop((layer, recorder));
/// # Ok::<(), tracing_blackbox::BuildError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder {
    max_bytes: usize,
    min_age: Duration,
    max_field_len: usize,
    recording: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            max_bytes: DEFAULT_MAX_BYTES,
            min_age: DEFAULT_MIN_AGE,
            max_field_len: DEFAULT_MAX_FIELD_LEN,
            recording: true,
        }
    }
}

impl Builder {
    /// Hard cap on the recorder's allocated record storage, in bytes (default 10 MiB). Memory
    /// is allocated as history needs it, in chunks (`max_bytes / 64` rounded up to a power of
    /// two, between 16 KiB and 1 MiB; 256 KiB for the default); when the cap is reached the
    /// oldest chunk of any thread is reused.
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// How much history to aim for (default 10 s). Older records may be discarded, and their
    /// memory freed; younger ones are kept unless `max_bytes` forces them out.
    pub fn min_age(mut self, age: Duration) -> Self {
        self.min_age = age;
        self
    }

    /// Longest field value kept, in bytes (default 256). Longer strings and `Debug` output are
    /// cut at a character boundary and end with [`TRUNCATION_MARKER`](crate::TRUNCATION_MARKER).
    pub fn max_field_len(mut self, bytes: usize) -> Self {
        self.max_field_len = bytes;
        self
    }

    /// Whether the recorder records from the start (default `true`); see
    /// [`FlightRecorder::start`].
    pub fn recording(mut self, on: bool) -> Self {
        self.recording = on;
        self
    }

    /// Checks the configuration and creates the layer and its handle.
    pub fn build(self) -> Result<(FlightRecorderLayer, FlightRecorder), BuildError> {
        if self.max_bytes < MIN_MAX_BYTES {
            return Err(BuildError::MaxBytesTooSmall {
                given: self.max_bytes,
                min: MIN_MAX_BYTES,
            });
        }
        if self.max_bytes > MAX_MAX_BYTES {
            return Err(BuildError::MaxBytesTooLarge {
                given: self.max_bytes,
                max: MAX_MAX_BYTES,
            });
        }
        if self.min_age.is_zero() || self.min_age > MAX_MIN_AGE {
            return Err(BuildError::InvalidMinAge {
                given: self.min_age,
            });
        }
        if self.max_field_len == 0 || self.max_field_len > MAX_FIELD_LEN_LIMIT {
            return Err(BuildError::InvalidMaxFieldLen {
                given: self.max_field_len,
            });
        }
        let chunk_bytes = (self.max_bytes / TARGET_CHUNKS)
            .clamp(MIN_CHUNK_BYTES, MAX_CHUNK_BYTES)
            .next_power_of_two()
            .min(MAX_CHUNK_BYTES);
        let chunk_bytes = if chunk_bytes * 4 > self.max_bytes {
            chunk_bytes / 2
        } else {
            chunk_bytes
        };
        let shared = Arc::new(Shared::new(Settings {
            max_bytes: self.max_bytes,
            min_age: self.min_age,
            chunk_bytes,
            max_field_bytes: self.max_field_len,
            recording: self.recording,
        }));
        Ok((
            FlightRecorderLayer::new(Arc::clone(&shared)),
            FlightRecorder::new(shared),
        ))
    }
}
