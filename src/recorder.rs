//! The handle: snapshots and dumps, manual and triggered, of one recorder.

use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::dump::chrome;
use crate::dump::context::{DumpContext, Reason};
#[cfg(feature = "otlp")]
use crate::dump::export::ExportInfo;
use crate::dump::files::{self, DumpInfo};
use crate::dump::outcome::{Destination, DumpOutcome, TriggerOutcome};
use crate::dump::snapshot::Snapshot;
use crate::dump::worker::{DROP_FLUSH_TIMEOUT, Dumper};
use crate::error::DumpError;
use crate::record::Recording;
use crate::status::RecorderStatus;
use crate::sync::lock;
use crate::trigger::Triggers;
#[cfg(feature = "http")]
use crate::{dump::chrome::ChromeStream, record::Capture};

/// The handle of a flight recorder: takes snapshots and writes dumps.
///
/// Cheap to clone, `Send + Sync`, and independent of the subscriber: it keeps working after
/// the subscriber is dropped, and what was recorded before still dumps. Dropping the last
/// handle waits (up to 5 s) for queued dumps to be written.
#[derive(Clone)]
pub struct FlightRecorder {
    parts: Arc<Parts>,
}

/// The recorder's parts, shared by the clones of one handle; flushes when the last goes.
struct Parts {
    recording: Arc<Recording>,
    dumper: Arc<Dumper>,
    triggers: Arc<Triggers>,
    /// Serializes manual dumps: one encodes at a time, the next waits.
    dump_lock: Mutex<()>,
}

impl Drop for Parts {
    fn drop(&mut self) {
        self.dumper.flush_timeout(DROP_FLUSH_TIMEOUT);
    }
}

impl fmt::Debug for FlightRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let recording = &self.parts.recording;
        f.debug_struct("FlightRecorder")
            .field("id", &recording.id)
            .field("recording", &self.is_recording())
            .field("max_bytes", &recording.max_bytes())
            .field("min_age", &recording.min_age())
            .field("dumps", self.parts.dumper.config())
            .finish_non_exhaustive()
    }
}

impl FlightRecorder {
    pub(crate) fn new(recording: Arc<Recording>, triggers: Arc<Triggers>) -> Self {
        FlightRecorder {
            parts: Arc::new(Parts {
                dumper: Arc::clone(&triggers.dumper),
                recording,
                triggers,
                dump_lock: Mutex::new(()),
            }),
        }
    }

    /// The recording this handle reads (the runtime view writes into it too).
    #[cfg(feature = "tokio")]
    pub(crate) fn recording(&self) -> &Arc<Recording> {
        &self.parts.recording
    }

    /// The recorded past, decoded: every retained record in time order, with the recorder's
    /// own span ids. For tests and tools; dumps use the same data.
    pub fn snapshot(&self) -> Snapshot {
        let recording = &self.parts.recording;
        Snapshot::decode(&recording.timebase, recording.capture())
    }

    /// Writes the recent past as Chrome Trace Event JSON; returns the bytes written.
    ///
    /// Recording threads never wait for this: each thread's buffer is locked only long enough
    /// to copy it. Concurrent dumps are serialized; the second waits for the first.
    ///
    /// # Errors
    ///
    /// The writer's error; recording goes on.
    pub fn write_to<W: Write>(&self, writer: W) -> io::Result<u64> {
        self.write_for(Reason::Manual, writer)
    }

    /// [`write_to`](Self::write_to) with another `otherData.reason`.
    pub(crate) fn write_for<W: Write>(&self, reason: Reason, writer: W) -> io::Result<u64> {
        let parts = &self.parts;
        let _serialized = lock(&parts.dump_lock);
        let capture = parts.recording.capture();
        chrome::write(
            &capture,
            &parts.recording.timebase,
            &DumpContext::new(reason),
            writer,
        )
    }

    /// Writes a dump to `path`, atomically: the trace goes to a temporary file beside it
    /// (whose name does not end in `.json`), which is renamed into place once complete.
    /// Missing directories are created. On failure nothing is left behind and recording goes
    /// on. An existing file at `path` is replaced. A path ending in `.gz` is gzipped (feature
    /// `gzip`).
    ///
    /// # Errors
    ///
    /// A [`DumpError`] naming the step that failed (directory, temporary file, writing,
    /// renaming); nothing is left behind.
    pub fn dump_to_file(&self, path: impl AsRef<Path>) -> Result<DumpInfo, DumpError> {
        let parts = &self.parts;
        let path = path.as_ref();
        let started = Instant::now();
        let result = {
            let _serialized = lock(&parts.dump_lock);
            let capture = parts.recording.capture();
            files::write_file(path, parts.dumper.config().modes, |w| {
                chrome::write(
                    &capture,
                    &parts.recording.timebase,
                    &DumpContext::new(Reason::Manual),
                    w,
                )
            })
        };
        parts.dumper.report(&DumpOutcome {
            reason: "manual".to_owned(),
            path: path.to_owned(),
            bytes: result.as_ref().map_or(0, |info| info.bytes),
            took: started.elapsed(),
            error: result.as_ref().err().cloned(),
            slow_span: None,
            destination: Destination::File,
        });
        result
    }

    /// Writes a dump into `dir` under a new name, `<label>_<UTC time>_<seq>.json` (for example
    /// `slow_span_worker_20261126T121914.123Z_1.json`), never replacing a file. The label is
    /// reduced to `[A-Za-z0-9._-]` and at most 64 characters, so it cannot leave `dir`.
    /// Retention and `on_dump` apply as to triggered dumps.
    ///
    /// # Errors
    ///
    /// A [`DumpError`] naming the step that failed; nothing is left behind, and `on_dump` and
    /// [`last_dump_error`](Self::last_dump_error) hear of it.
    pub fn dump_to_dir(&self, dir: impl AsRef<Path>, label: &str) -> Result<DumpInfo, DumpError> {
        let parts = &self.parts;
        let _serialized = lock(&parts.dump_lock);
        let capture = parts.recording.capture();
        parts.dumper.write_now(
            dir.as_ref(),
            label,
            &DumpContext::new(Reason::Manual),
            &capture,
        )
    }

    /// Triggers a dump with `reason` (for example `"payment_failed"`), as the built-in
    /// triggers do: the snapshot is taken now, on this thread, and written by the dump thread
    /// into the dump directory. Subject to the cooldown.
    pub fn trigger(&self, reason: &str) -> TriggerOutcome {
        let now = self.parts.recording.now();
        self.parts
            .triggers
            .trigger(Reason::User(reason.to_owned()), now, None, || None)
    }

    /// Sends the recent past to the OTLP receiver now (feature `otlp`), as a triggered dump
    /// would, with `reason` as `blackbox.reason`: on this thread, retries included (at most
    /// `max_attempts` × the timeout). Not subject to the cooldown. The outcome also reaches
    /// `on_dump` and [`last_dump_error`](Self::last_dump_error).
    ///
    /// # Errors
    ///
    /// A [`DumpError`] with [`DumpStage::Export`](crate::DumpStage::Export): no endpoint is
    /// configured, or the receiver could not be reached or refused the request (the error
    /// says what it answered). Recording goes on.
    #[cfg(feature = "otlp")]
    #[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
    pub fn export_otlp_now(&self, reason: &str) -> Result<ExportInfo, DumpError> {
        let parts = &self.parts;
        let capture = parts.recording.capture();
        parts
            .dumper
            .export_now(&DumpContext::new(Reason::User(reason.to_owned())), capture)
    }

    /// Waits until every queued dump has been written (and, with
    /// [`export_otlp`](crate::Builder::export_otlp), sent or given up on).
    pub fn flush(&self) {
        while !self.flush_timeout(Duration::from_secs(3600)) {}
    }

    /// Waits until every queued dump has been written, or `timeout` passes; returns whether
    /// all were written.
    pub fn flush_timeout(&self, timeout: Duration) -> bool {
        self.parts.dumper.flush_timeout(timeout)
    }

    /// The error of the last dump file that failed, if any.
    pub fn last_dump_error(&self) -> Option<DumpError> {
        self.parts.dumper.last_error()
    }

    /// The directory triggered dumps go to.
    pub fn dump_dir(&self) -> &Path {
        &self.parts.dumper.config().dir
    }

    /// Stops recording. The buffer is kept: a dump after `stop` still shows the past.
    pub fn stop(&self) {
        self.parts.recording.set_recording(false);
    }

    /// Resumes recording after [`stop`](Self::stop). A recorder built disabled
    /// ([`Builder::enabled`](crate::Builder::enabled), `BLACKBOX=0`) stays off.
    pub fn start(&self) {
        self.parts.recording.set_recording(true);
    }

    /// Whether the recorder is recording now.
    pub fn is_recording(&self) -> bool {
        self.parts.recording.is_recording()
    }

    /// Record storage allocated now, in bytes; never more than `max_bytes`.
    pub fn allocated_bytes(&self) -> usize {
        self.parts.recording.storage.allocated_bytes()
    }

    /// The recorder's state and counters, for health checks: cheap (no record is copied),
    /// and what `GET /debug/trace/status` serves.
    pub fn status(&self) -> RecorderStatus {
        let recording = &self.parts.recording;
        let storage = recording.storage.counters();
        let dumps = self.parts.dumper.tally();
        RecorderStatus {
            recording: recording.is_recording(),
            max_bytes: recording.max_bytes(),
            allocated_bytes: storage.allocated_bytes,
            threads: storage.threads,
            written: storage.written,
            overwritten: storage.overwritten,
            dropped: recording.dropped(),
            suppressed: self.parts.triggers.suppressed_pending(),
            dumps_written: dumps.written,
            dumps_failed: dumps.failed,
            last_dump: dumps.last,
            crash_file: recording.crash_file(),
        }
    }

    /// A snapshot for streaming: taken now, encoded by whoever calls
    /// [`ChromeStream::fill`], piece by piece.
    #[cfg(feature = "http")]
    pub(crate) fn stream(&self, reason: Reason) -> ChromeStream<Capture> {
        let recording = &self.parts.recording;
        ChromeStream::new(
            recording.capture(),
            &recording.timebase,
            DumpContext::new(reason),
        )
    }
}
