//! Stage 1, the hot path: the layer and its callbacks, the binary record encoding, per-thread
//! storage and eviction, redaction, span timing for the latency trigger, the clock. Imports
//! nothing from the stages after it (`dump`, `trigger`, `serve`); it reaches the triggers only
//! through the [`hooks::TriggerHooks`] trait they implement.

pub(crate) mod clock;
#[cfg(feature = "crash")]
pub(crate) mod crash;
pub(crate) mod encode;
pub(crate) mod hooks;
pub(crate) mod layer;
pub(crate) mod redact;
#[cfg(feature = "tokio")]
pub(crate) mod runtime;
pub(crate) mod slot;
pub(crate) mod span_timing;
pub(crate) mod storage;
#[cfg(feature = "tokio")]
pub(crate) mod tasks;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use std::time::Instant;

use tracing_core::Level;

pub(crate) use clock::Timebase;
use encode::{Encoded, SpanRecord};
use redact::Redaction;
use span_timing::{SlowSpanConfig, SlowSpans};
use storage::{Storage, StorageLimits, StoredChunks, ThreadBuffer};

/// The target of the runtime view's own records (`runtime.rs`, feature `tokio`): worker park
/// and unpark, counters. Known to the encoder whatever the features, so a crash file written
/// with them reads back the same.
pub(crate) const RUNTIME_TARGET: &str = "tracing_blackbox::runtime";

/// What the recording needs from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct RecordingConfig {
    pub(crate) max_bytes: usize,
    pub(crate) min_age: Duration,
    pub(crate) max_field_bytes: usize,
    pub(crate) recording: bool,
    pub(crate) enabled: bool,
    pub(crate) redaction: Redaction,
    pub(crate) slow_spans: SlowSpanConfig,
    pub(crate) error_level: Option<Level>,
    pub(crate) clock: Option<quanta::Clock>,
    /// Where the crash file goes (feature `crash`), when the chunks should outlive the process.
    #[cfg(feature = "crash")]
    pub(crate) crash_dir: Option<std::path::PathBuf>,
    /// The long-poll and scheduled-delay thresholds (feature `tokio`).
    #[cfg(feature = "tokio")]
    pub(crate) tasks: tasks::TaskTriggerConfig,
}

/// The recording: what the layer writes into and every later stage reads from.
pub(crate) struct Recording {
    pub(crate) id: u64,
    pub(crate) storage: Storage,
    pub(crate) timebase: Timebase,
    pub(crate) max_field_bytes: usize,
    /// Field names whose values are recorded as `[REDACTED]`.
    pub(crate) redaction: Redaction,
    recording: AtomicBool,
    dropped: AtomicU64,
    /// Latency timing, when a threshold is configured.
    pub(crate) slow: Option<SlowSpans>,
    /// Events at this level or more severe are reported to the triggers.
    pub(crate) error_level: Option<Level>,
    /// Task poll and wake timing, when a runtime-trouble trigger is configured.
    #[cfg(feature = "tokio")]
    pub(crate) tasks: Option<tasks::TaskWatch>,
    /// False when switched off (`BLACKBOX=0`): every callback returns at once.
    pub(crate) enabled: bool,
    max_bytes: usize,
    min_age: Duration,
}

/// Chunks and counters copied at one instant, not yet decoded.
pub(crate) struct Capture {
    pub(crate) raw: StoredChunks,
    /// Clock reading of the snapshot.
    pub(crate) end_raw: u64,
    pub(crate) dropped: u64,
    pub(crate) max_bytes: usize,
    pub(crate) min_age: Duration,
}

impl Recording {
    /// The recording; with a crash directory, its chunks live in a new crash file there.
    ///
    /// # Errors
    ///
    /// The crash file could not be created (the error names the directory).
    pub(crate) fn new(config: RecordingConfig) -> std::io::Result<Self> {
        static NEXT_RECORDER: AtomicU64 = AtomicU64::new(1);
        let limits = StorageLimits::for_budget(config.max_bytes, config.min_age);
        let timebase = Timebase::new(config.clock.unwrap_or_default());
        #[cfg(feature = "crash")]
        let storage = match &config.crash_dir {
            Some(dir) => {
                let file = crash::CrashFileConfig {
                    dir: dir.clone(),
                    max_bytes: config.max_bytes,
                    min_age_nanos: limits.min_age_nanos,
                };
                let store = crash::CrashStore::create(&file, &timebase).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{}: {e}", dir.display()))
                })?;
                Storage::with_crash_store(limits, store)
            }
            None => Storage::new(limits),
        };
        #[cfg(not(feature = "crash"))]
        let storage = Storage::new(limits);
        Ok(Recording {
            id: NEXT_RECORDER.fetch_add(1, Ordering::Relaxed),
            storage,
            timebase,
            max_field_bytes: config.max_field_bytes,
            redaction: config.redaction,
            recording: AtomicBool::new(config.recording && config.enabled),
            dropped: AtomicU64::new(0),
            slow: config
                .slow_spans
                .is_enabled()
                .then(|| SlowSpans::new(&config.slow_spans)),
            error_level: config.error_level,
            #[cfg(feature = "tokio")]
            tasks: config
                .tasks
                .is_enabled()
                .then(|| tasks::TaskWatch::new(&config.tasks)),
            enabled: config.enabled,
            max_bytes: config.max_bytes,
            min_age: config.min_age,
        })
    }

    #[inline]
    pub(crate) fn is_recording(&self) -> bool {
        self.recording.load(Ordering::Relaxed)
    }

    /// Starts or stops recording; a recording built disabled stays off.
    pub(crate) fn set_recording(&self, on: bool) {
        self.recording.store(on && self.enabled, Ordering::Relaxed);
    }

    /// A raw clock reading.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.timebase.now()
    }

    pub(crate) fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    pub(crate) fn min_age(&self) -> Duration {
        self.min_age
    }

    /// The crash file the chunks live in, if any.
    pub(crate) fn crash_file(&self) -> Option<std::path::PathBuf> {
        #[cfg(feature = "crash")]
        if let Some(store) = self.storage.crash_store() {
            return Some(store.path().to_owned());
        }
        None
    }

    /// Records dropped so far (re-entrant callbacks, records that could not be kept).
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "crash")]
        if let Some(crash) = self.storage.crash_store() {
            crash.note_dropped();
        }
    }

    /// Appends a record; `false` if it could not be kept (counted as dropped).
    #[inline]
    pub(crate) fn append(&self, buffer: &Arc<ThreadBuffer>, record: Encoded<'_>, ts: u64) -> bool {
        if buffer.try_append(record, ts) {
            return true;
        }
        let appended = self
            .storage
            .append_slow(buffer, record, ts, self.now(), |from, to| {
                self.timebase.nanos_between(from, to)
            });
        if !appended {
            self.count_dropped();
        }
        appended
    }

    /// [`append`](Self::append) for an enter, exit or close record.
    #[inline]
    pub(crate) fn append_span(&self, buffer: &Arc<ThreadBuffer>, record: SpanRecord) -> bool {
        if buffer.try_append_span(record) {
            return true;
        }
        self.append_span_slow(buffer, record)
    }

    #[cold]
    #[inline(never)]
    fn append_span_slow(&self, buffer: &Arc<ThreadBuffer>, record: SpanRecord) -> bool {
        let bytes = record.to_bytes();
        self.append(buffer, Encoded::span(&bytes), record.ts)
    }

    /// Copies the chunks and counters now; decoding comes later, on whichever thread dumps.
    pub(crate) fn capture(&self) -> Capture {
        self.finish_capture(self.storage.snapshot())
    }

    /// [`capture`](Self::capture) for a panic hook: gives up (`None`) rather than wait past
    /// `deadline` for a lock the panicking thread may hold.
    pub(crate) fn try_capture(&self, deadline: Instant) -> Option<Capture> {
        self.storage
            .try_snapshot(deadline)
            .map(|raw| self.finish_capture(raw))
    }

    fn finish_capture(&self, raw: StoredChunks) -> Capture {
        Capture {
            raw,
            end_raw: self.now(),
            dropped: self.dropped.load(Ordering::Relaxed),
            max_bytes: self.max_bytes,
            min_age: self.min_age,
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        // Threads may outlive the recorder and still hold their buffers: free the chunks now.
        self.storage.release_all();
    }
}
