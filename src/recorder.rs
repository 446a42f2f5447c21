//! The handle: snapshots and dumps.

use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;

use tracing_core::Level;

use crate::builder::Builder;
use crate::dump::callback::panic_message;
use crate::dump::chrome;
use crate::dump::context::{DumpContext, TriggerEvent, TriggerInfo};
use crate::dump::files::{self, DumpInfo};
use crate::dump::outcome::{DumpOutcome, TriggerOutcome};
use crate::dump::snapshot::{Capture, Snapshot, Timebase};
use crate::dump::worker::{DROP_FLUSH_TIMEOUT, DumpConfig, Dumper};
use crate::error::DumpError;
use crate::record::encode::Encoded;
use crate::record::redact::Redaction;
use crate::record::span_timing::{Breach, SlowSpanConfig, SlowSpans, SpanTiming};
use crate::record::storage::{Storage, StorageLimits, ThreadBuffer};
use crate::sync::lock;
use crate::trigger::admission::Reason;

/// What the builder decided.
pub(crate) struct Settings {
    pub(crate) max_bytes: usize,
    pub(crate) min_age: Duration,
    pub(crate) max_field_bytes: usize,
    pub(crate) recording: bool,
    pub(crate) dumps: DumpConfig,
    pub(crate) slow_spans: SlowSpanConfig,
    pub(crate) error_level: Option<Level>,
    pub(crate) enabled: bool,
    pub(crate) redaction: Redaction,
    pub(crate) clock: Option<quanta::Clock>,
}

/// How long a panic dump waits for a lock before giving up.
const PANIC_LOCK_PATIENCE: Duration = Duration::from_millis(500);
/// How long a panic waits for a concurrent panic's dump, which it then shares.
const PANIC_SHARE_PATIENCE: Duration = Duration::from_secs(10);
/// A panic this soon after a panic dump shares it: one storm, one dump.
const PANIC_SHARE_WINDOW: Duration = Duration::from_secs(1);

/// State shared by the layer and every handle.
pub(crate) struct Shared {
    pub(crate) id: u64,
    pub(crate) storage: Storage,
    pub(crate) timebase: Timebase,
    pub(crate) max_field_bytes: usize,
    /// Field names whose values are recorded as `[REDACTED]`.
    pub(crate) redaction: Redaction,
    recording: AtomicBool,
    dropped: AtomicU64,
    /// Serializes manual dumps: one encodes at a time, the next waits.
    dump_lock: Mutex<()>,
    /// A panic dump is being written: concurrent panics wait for it and share it.
    panic_dumping: AtomicBool,
    /// When the last panic dump was done, and its file (or why there is none), for panics
    /// that share it.
    panic_dump: Mutex<Option<(Instant, Result<std::path::PathBuf, String>)>>,
    pub(crate) dumper: Dumper,
    /// Latency trigger state, when a threshold is configured.
    pub(crate) slow: Option<SlowSpans>,
    /// Events at this level or more severe trigger an `error` dump.
    pub(crate) error_level: Option<Level>,
    /// False when switched off (`BLACKBOX=0`): every callback returns at once.
    pub(crate) enabled: bool,
    /// Stops the signal thread when the recorder goes away.
    #[cfg(all(unix, feature = "signal"))]
    pub(crate) signals: Mutex<Option<signal_hook::iterator::Handle>>,
}

impl Shared {
    pub(crate) fn new(settings: Settings) -> std::io::Result<Shared> {
        static NEXT_RECORDER: AtomicU64 = AtomicU64::new(1);
        let clock = settings.clock.unwrap_or_default();
        let anchor_wall = Utc::now();
        let anchor_raw = clock.raw();
        let timebase = Timebase {
            clock,
            anchor_raw,
            anchor_wall,
            max_bytes: settings.max_bytes,
            min_age: settings.min_age,
        };
        Ok(Shared {
            id: NEXT_RECORDER.fetch_add(1, Ordering::Relaxed),
            dumper: Dumper::new(settings.dumps, timebase.clone())?,
            slow: settings
                .slow_spans
                .is_enabled()
                .then(|| SlowSpans::new(&settings.slow_spans)),
            error_level: settings.error_level,
            enabled: settings.enabled,
            redaction: settings.redaction,
            #[cfg(all(unix, feature = "signal"))]
            signals: Mutex::new(None),
            storage: Storage::new(StorageLimits::for_budget(
                settings.max_bytes,
                settings.min_age,
            )),
            timebase,
            max_field_bytes: settings.max_field_bytes,
            recording: AtomicBool::new(settings.recording && settings.enabled),
            dropped: AtomicU64::new(0),
            dump_lock: Mutex::new(()),
            panic_dumping: AtomicBool::new(false),
            panic_dump: Mutex::new(None),
        })
    }

    #[inline]
    pub(crate) fn is_recording(&self) -> bool {
        self.recording.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.timebase.clock.raw()
    }

    pub(crate) fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
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
                self.timebase.clock.delta_as_nanos(from, to)
            });
        if !appended {
            self.count_dropped();
        }
        appended
    }

    /// Copies the chunks and counters now; decoding comes later, on whichever thread dumps.
    pub(crate) fn capture(&self) -> Capture {
        let raw = self.storage.snapshot();
        Capture {
            raw,
            end_raw: self.now(),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot::decode(&self.timebase, self.capture())
    }

    /// From a panic hook: writes a dump synchronously, without waiting on a lock the panicking
    /// thread may hold. A dump that cannot be taken safely is skipped, and says why on stderr.
    /// Panics that come while one is being dumped, or within a second after, share that dump,
    /// so a panic storm costs one snapshot.
    pub(crate) fn dump_for_panic(&self, info: &std::panic::PanicHookInfo<'_>) {
        let shared_path = |dump: &Option<(Instant, Result<std::path::PathBuf, String>)>| {
            dump.as_ref().and_then(|(done, result)| {
                let path = result.as_ref().ok()?;
                (done.elapsed() < PANIC_SHARE_WINDOW).then(|| path.clone())
            })
        };
        if self.panic_dumping.swap(true, Ordering::AcqRel) {
            let deadline = Instant::now() + PANIC_SHARE_PATIENCE;
            while self.panic_dumping.load(Ordering::Acquire) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            match shared_path(&lock(&self.panic_dump)) {
                Some(path) => Self::report_shared_panic_dump(&path),
                None => eprintln!(
                    "tracing-blackbox: panic: no trace of its own (a concurrent panic's dump is in progress or failed)"
                ),
            }
            return;
        }
        let recent = shared_path(&lock(&self.panic_dump));
        if let Some(path) = recent {
            self.panic_dumping.store(false, Ordering::Release);
            Self::report_shared_panic_dump(&path);
            return;
        }
        *lock(&self.panic_dump) = None;
        let result = self.write_panic_dump(info);
        match &result {
            Ok(path) => eprintln!("tracing-blackbox: panic: trace saved to {}", path.display()),
            Err(why) => eprintln!("tracing-blackbox: panic: {why}"),
        }
        *lock(&self.panic_dump) = Some((Instant::now(), result));
        self.panic_dumping.store(false, Ordering::Release);
    }

    fn report_shared_panic_dump(path: &std::path::Path) {
        eprintln!(
            "tracing-blackbox: panic: trace saved to {} (with a concurrent panic)",
            path.display()
        );
    }

    fn write_panic_dump(
        &self,
        info: &std::panic::PanicHookInfo<'_>,
    ) -> Result<std::path::PathBuf, String> {
        let deadline = Instant::now() + PANIC_LOCK_PATIENCE;
        let Some(raw) = self.storage.try_snapshot(deadline) else {
            return Err(
                "no panic dump: the recorder's buffers stayed locked (the panic \
                        happened while they were in use)"
                    .to_owned(),
            );
        };
        let capture = Capture {
            raw,
            end_raw: self.now(),
            dropped: self.dropped.load(Ordering::Relaxed),
        };
        let mut context = DumpContext::new(Reason::Panic);
        context.extra.push((
            "panic",
            serde_json::json!({
                "message": panic_message(info.payload()),
                "location": info.location().map(|l| format!("{}:{}", l.file(), l.line())),
                "thread": std::thread::current().name().unwrap_or("unnamed"),
            }),
        ));
        self.dumper
            .write_for_panic(&context, &capture, deadline)
            .map(|dump| dump.path)
            .map_err(|err| format!("trace not saved: {err}"))
    }

    /// A span closed over its threshold at `now`: dump, with the span marked.
    pub(crate) fn trigger_slow_span(
        &self,
        breach: Breach,
        timing: SpanTiming,
        now: u64,
    ) -> TriggerOutcome {
        let info = TriggerInfo {
            span_name: breach.metadata.name(),
            span_id: breach.key,
            duration_nanos: breach.duration_nanos,
            threshold_nanos: breach.threshold_nanos,
            timing,
        };
        self.trigger(Reason::SlowSpan, now, Some(info), || None)
    }

    /// A triggered dump at `now` (raw clock): if admitted (cooldown, top-N, queue, memory), the
    /// context is completed (`event` is only called then), the snapshot taken, and the dump
    /// queued. A suppressed trigger copies nothing.
    pub(crate) fn trigger(
        &self,
        reason: Reason,
        now: u64,
        slow: Option<TriggerInfo>,
        event: impl FnOnce() -> Option<TriggerEvent>,
    ) -> TriggerOutcome {
        if !self.enabled {
            return TriggerOutcome::Disabled;
        }
        let Some(ticket) = self.dumper.admit(
            &reason,
            self.timebase.nanos_since_anchor(now),
            slow.as_ref().map(|s| s.duration_nanos),
            self.storage.held_bytes(),
            self.storage.limits().max_bytes,
        ) else {
            return TriggerOutcome::Suppressed;
        };
        let mut context = DumpContext::new(reason);
        context.trigger = slow;
        context.event = event();
        let capture = self.capture();
        self.dumper.submit(ticket, context, capture)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        #[cfg(all(unix, feature = "signal"))]
        if let Some(signals) = lock(&self.signals).take() {
            signals.close();
        }
        // Threads may outlive the recorder and still hold their buffers: free the chunks now.
        self.storage.release_all();
    }
}

/// The handle of a flight recorder: takes snapshots and writes dumps.
///
/// Cheap to clone, `Send + Sync`, and independent of the subscriber: it keeps working after
/// the subscriber is dropped, and what was recorded before still dumps. Dropping the last
/// handle waits (up to 5 s) for queued dumps to be written.
#[derive(Clone)]
pub struct FlightRecorder {
    handle: Arc<Handle>,
}

/// Shared by the clones of one handle; flushes when the last goes.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.dumper.flush_timeout(DROP_FLUSH_TIMEOUT);
    }
}

impl fmt::Debug for FlightRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.handle.shared;
        f.debug_struct("FlightRecorder")
            .field("id", &shared.id)
            .field("recording", &self.is_recording())
            .field("max_bytes", &shared.storage.limits().max_bytes)
            .field("min_age", &shared.timebase.min_age)
            .field("dumps", shared.dumper.config())
            .finish_non_exhaustive()
    }
}

impl FlightRecorder {
    /// Starts configuring a recorder.
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        FlightRecorder {
            handle: Arc::new(Handle { shared }),
        }
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// The recorded past, decoded: every retained record in time order, with the recorder's
    /// own span ids. For tests and tools; dumps use the same data.
    pub fn snapshot(&self) -> Snapshot {
        self.shared().snapshot()
    }

    /// Writes the recent past as Chrome Trace Event JSON; returns the bytes written.
    ///
    /// Recording threads never wait for this: each thread's buffer is locked only long enough
    /// to copy it. Concurrent dumps are serialized; the second waits for the first.
    pub fn write_to<W: Write>(&self, writer: W) -> io::Result<u64> {
        self.write_for(Reason::Manual, writer)
    }

    /// [`write_to`](Self::write_to) with another `otherData.reason`.
    pub(crate) fn write_for<W: Write>(&self, reason: Reason, writer: W) -> io::Result<u64> {
        let shared = self.shared();
        let _serialized = lock(&shared.dump_lock);
        let capture = shared.capture();
        chrome::write(
            &capture,
            &shared.timebase,
            &DumpContext::new(reason),
            writer,
        )
    }

    /// Serves snapshots over HTTP on `addr` (loopback only; see
    /// [`serve_http_with`](Self::serve_http_with)): `GET /debug/trace/snapshot` answers with a
    /// dump (`otherData.reason` = `http`), `?gzip=1` with it gzipped. Dropping the returned
    /// guard stops the server.
    ///
    /// ```text
    /// curl http://127.0.0.1:6060/debug/trace/snapshot > trace.json
    /// curl -o trace.json.gz 'http://127.0.0.1:6060/debug/trace/snapshot?gzip=1'
    /// ```
    #[cfg(feature = "http")]
    pub fn serve_http(&self, addr: &str) -> Result<crate::HttpServer, crate::HttpError> {
        crate::serve::serve(self, crate::HttpConfig::new(addr))
    }

    /// [`serve_http`](Self::serve_http) with a bearer token, or on a non-loopback address.
    #[cfg(feature = "http")]
    pub fn serve_http_with(
        &self,
        config: crate::HttpConfig,
    ) -> Result<crate::HttpServer, crate::HttpError> {
        crate::serve::serve(self, config)
    }

    /// Writes a dump to `path`, atomically: the trace goes to a temporary file beside it
    /// (whose name does not end in `.json`), which is renamed into place once complete.
    /// Missing directories are created. On failure nothing is left behind and recording goes
    /// on. An existing file at `path` is replaced. A path ending in `.gz` is gzipped (feature
    /// `gzip`).
    pub fn dump_to_file(&self, path: impl AsRef<Path>) -> Result<DumpInfo, DumpError> {
        let shared = self.shared();
        let path = path.as_ref();
        let started = Instant::now();
        let result = {
            let _serialized = lock(&shared.dump_lock);
            let capture = shared.capture();
            files::write_file(path, shared.dumper.config().modes, |w| {
                chrome::write(
                    &capture,
                    &shared.timebase,
                    &DumpContext::new(Reason::Manual),
                    w,
                )
            })
        };
        shared.dumper.report(&DumpOutcome {
            reason: "manual".to_owned(),
            path: path.to_owned(),
            bytes: result.as_ref().map_or(0, |info| info.bytes),
            took: started.elapsed(),
            error: result.as_ref().err().cloned(),
            slow_span: None,
        });
        result
    }

    /// Writes a dump into `dir` under a new name, `<label>_<UTC time>_<seq>.json` (for example
    /// `slow_span_worker_20261126T121914.123Z_1.json`), never replacing a file. The label is
    /// reduced to `[A-Za-z0-9._-]` and at most 64 characters, so it cannot leave `dir`.
    /// Retention and `on_dump` apply as to triggered dumps.
    pub fn dump_to_dir(&self, dir: impl AsRef<Path>, label: &str) -> Result<DumpInfo, DumpError> {
        let shared = self.shared();
        let _serialized = lock(&shared.dump_lock);
        let capture = shared.capture();
        shared.dumper.write_now(
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
        let shared = self.shared();
        shared.trigger(Reason::User(reason.to_owned()), shared.now(), None, || None)
    }

    /// Waits until every queued dump has been written.
    pub fn flush(&self) {
        while !self.flush_timeout(Duration::from_secs(3600)) {}
    }

    /// Waits until every queued dump has been written, or `timeout` passes; returns whether
    /// all were written.
    pub fn flush_timeout(&self, timeout: Duration) -> bool {
        self.shared().dumper.flush_timeout(timeout)
    }

    /// The error of the last dump file that failed, if any.
    pub fn last_dump_error(&self) -> Option<DumpError> {
        self.shared().dumper.last_error()
    }

    /// The directory triggered dumps go to.
    pub fn dump_dir(&self) -> &Path {
        &self.shared().dumper.config().dir
    }

    /// Stops recording. The buffer is kept: a dump after `stop` still shows the past.
    pub fn stop(&self) {
        self.shared().recording.store(false, Ordering::Relaxed);
    }

    /// Resumes recording after [`stop`](Self::stop). A recorder built disabled
    /// ([`Builder::enabled`], `BLACKBOX=0`) stays off.
    pub fn start(&self) {
        let shared = self.shared();
        if shared.enabled {
            shared.recording.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the recorder is recording now.
    pub fn is_recording(&self) -> bool {
        self.shared().is_recording()
    }

    /// Record storage allocated now, in bytes; never more than `max_bytes`.
    pub fn allocated_bytes(&self) -> usize {
        self.shared().storage.allocated_bytes()
    }
}
