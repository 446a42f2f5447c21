//! Dump files and the background dump thread.
//!
//! Every dump file is written the same way: encoded into a temporary file beside its
//! destination (named `.<name>.<random>.tmp`, never `.json`), synced, then renamed into place,
//! so a file with a dump's name is always complete. Triggered dumps (slow spans, errors, user
//! triggers) are captured on the triggering thread — a copy of the buffers, nothing more — and
//! handed through a bounded queue to one background thread, which decodes, encodes, writes,
//! applies retention and reports. That thread runs under `NoSubscriber`: its own work is never
//! recorded and cannot re-enter the recorder.

use std::collections::VecDeque;
use std::fmt;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::chrome::{self, CountingWriter, DumpContext, TriggerInfo};
use crate::error::{DumpError, DumpStage};
use crate::snapshot::{Capture, Snapshot, Timebase};
use crate::storage::{lock, try_lock_until};

/// Default directory for triggered dumps.
pub const DEFAULT_DUMP_DIR: &str = "blackbox-dumps";
/// Default minimum interval between two triggered dumps.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(60);
/// Default number of triggered dumps that may wait for the dump thread.
pub const DEFAULT_QUEUE_CAPACITY: usize = 16;
/// How long dropping the last handle waits for queued dumps.
pub(crate) const DROP_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The callback type of [`Builder::on_dump`](crate::Builder::on_dump).
pub(crate) type OnDump = Arc<dyn Fn(&DumpOutcome) + Send + Sync>;

/// What happened to one dump file: given to the `on_dump` callback.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DumpOutcome {
    /// Why the dump was written: `slow_span`, `error`, `signal`, `panic`, `manual`, `http`, or
    /// the string given to [`FlightRecorder::trigger`](crate::FlightRecorder::trigger).
    pub reason: String,
    /// The file written, or the one that was meant to be when it failed.
    pub path: PathBuf,
    /// Bytes written (0 on failure).
    pub bytes: u64,
    /// Time from the start of encoding to the file being in place.
    pub took: Duration,
    /// The error, if the dump failed. Nothing is left behind then, and recording goes on.
    pub error: Option<DumpError>,
    /// For a `slow_span` dump: the span that was slow.
    pub slow_span: Option<SlowSpan>,
}

/// The span whose latency triggered a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SlowSpan {
    /// The span's name.
    pub name: &'static str,
    /// The recorder's id of the span (`span_id` in the dump).
    pub id: u64,
    /// How long it took (wall or busy time, as configured).
    pub duration: Duration,
    /// The threshold it exceeded.
    pub threshold: Duration,
}

impl From<&TriggerInfo> for SlowSpan {
    fn from(info: &TriggerInfo) -> Self {
        SlowSpan {
            name: info.span_name,
            id: info.span_id,
            duration: Duration::from_nanos(info.duration_nanos),
            threshold: Duration::from_nanos(info.threshold_nanos),
        }
    }
}

/// What [`FlightRecorder::trigger`](crate::FlightRecorder::trigger) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TriggerOutcome {
    /// A snapshot was taken and queued; the dump thread writes it.
    Queued,
    /// Within the cooldown, or the queue was full, or not among the slowest kept: no dump;
    /// counted, and reported by the next dump as `otherData.suppressed`.
    Suppressed,
    /// The recorder is switched off ([`Builder::enabled`](crate::Builder::enabled),
    /// `BLACKBOX=0`): it has nothing to dump.
    Disabled,
}

/// Dump settings from the builder.
#[derive(Clone)]
pub(crate) struct DumpConfig {
    pub(crate) dir: PathBuf,
    pub(crate) cooldown: Duration,
    pub(crate) queue_capacity: usize,
    pub(crate) keep_files: Option<usize>,
    pub(crate) keep_bytes: Option<u64>,
    pub(crate) keep_slowest: Option<usize>,
    pub(crate) gzip: bool,
    pub(crate) on_dump: Option<OnDump>,
    pub(crate) modes: FileModes,
}

/// Permissions of dump files and of the directories created for them (unix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileModes {
    pub(crate) file: u32,
    pub(crate) dir: u32,
}

impl Default for FileModes {
    fn default() -> Self {
        // A dump holds whatever spans and events record: owner only.
        FileModes {
            file: 0o600,
            dir: 0o700,
        }
    }
}

impl fmt::Debug for DumpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DumpConfig")
            .field("dir", &self.dir)
            .field("cooldown", &self.cooldown)
            .field("queue_capacity", &self.queue_capacity)
            .field("keep_files", &self.keep_files)
            .field("keep_bytes", &self.keep_bytes)
            .field("keep_slowest", &self.keep_slowest)
            .field("gzip", &self.gzip)
            .field("on_dump", &self.on_dump.is_some())
            .field("modes", &self.modes)
            .finish()
    }
}

impl Default for DumpConfig {
    fn default() -> Self {
        DumpConfig {
            dir: PathBuf::from(DEFAULT_DUMP_DIR),
            cooldown: DEFAULT_COOLDOWN,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            keep_files: None,
            keep_bytes: None,
            keep_slowest: None,
            gzip: false,
            on_dump: None,
            modes: FileModes::default(),
        }
    }
}

/// A triggered dump on its way to the dump thread.
struct Job {
    context: DumpContext,
    capture: Capture,
    /// For top-N: the breach's duration, whose entry in `slowest` this dump fills.
    slowest_entry: Option<u64>,
}

#[derive(Default)]
struct DumperState {
    last_accepted: Option<Instant>,
    suppressed: u64,
    /// Jobs queued or being written.
    pending: usize,
    /// Files this recorder wrote, oldest first: (path, bytes).
    written: VecDeque<(PathBuf, u64)>,
    /// The slowest breaches kept, slowest first: (duration in ns, entry id, file once written).
    slowest: Vec<(u64, u64, Option<PathBuf>)>,
    next_entry: u64,
    last_error: Option<DumpError>,
}

struct DumperInner {
    config: DumpConfig,
    timebase: Timebase,
    state: Mutex<DumperState>,
    idle: Condvar,
}

/// Owns the dump thread (started on the first triggered dump) and the dump bookkeeping.
pub(crate) struct Dumper {
    inner: Arc<DumperInner>,
    sender: Mutex<Option<SyncSender<Box<Job>>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Dumper {
    pub(crate) fn new(config: DumpConfig, timebase: Timebase) -> Self {
        Dumper {
            inner: Arc::new(DumperInner {
                config,
                timebase,
                state: Mutex::new(DumperState::default()),
                idle: Condvar::new(),
            }),
            sender: Mutex::new(None),
            thread: Mutex::new(None),
        }
    }

    pub(crate) fn config(&self) -> &DumpConfig {
        &self.inner.config
    }

    /// Decides whether a triggered dump may go ahead (cooldown, top-N) and, if so, takes the
    /// snapshot with `capture` and queues it. Rate-limited triggers honour the cooldown;
    /// signal and HTTP dumps pass `rate_limited = false`.
    pub(crate) fn trigger(
        &self,
        reason: &str,
        trigger: Option<TriggerInfo>,
        rate_limited: bool,
        capture: impl FnOnce() -> Capture,
    ) -> TriggerOutcome {
        let config = &self.inner.config;
        let (suppressed, slowest_entry) = {
            let mut state = lock(&self.inner.state);
            if rate_limited
                && !config.cooldown.is_zero()
                && let Some(last) = state.last_accepted
                && last.elapsed() < config.cooldown
            {
                state.suppressed += 1;
                return TriggerOutcome::Suppressed;
            }
            let slowest_entry = match (config.keep_slowest, &trigger) {
                (Some(keep), Some(info)) => {
                    let nanos = info.duration_nanos;
                    if state.slowest.len() >= keep
                        && state.slowest.last().is_none_or(|&(d, _, _)| d >= nanos)
                    {
                        state.suppressed += 1;
                        return TriggerOutcome::Suppressed;
                    }
                    let id = state.next_entry;
                    state.next_entry += 1;
                    let at = state.slowest.partition_point(|&(d, _, _)| d >= nanos);
                    state.slowest.insert(at, (nanos, id, None));
                    // The fastest kept breach makes way; its file goes once it exists.
                    while state.slowest.len() > keep {
                        if let Some((_, _, Some(path))) = state.slowest.pop() {
                            remove_quietly(&path, &mut state.written);
                        }
                    }
                    Some(id)
                }
                _ => None,
            };
            if rate_limited {
                state.last_accepted = Some(Instant::now());
            }
            state.pending += 1;
            (std::mem::take(&mut state.suppressed), slowest_entry)
        };
        let job = Box::new(Job {
            context: DumpContext {
                trigger,
                suppressed,
                ..DumpContext::reason(reason)
            },
            capture: capture(),
            slowest_entry,
        });
        match self.send(job) {
            Ok(()) => TriggerOutcome::Queued,
            Err(job) => {
                let mut state = lock(&self.inner.state);
                state.pending -= 1;
                state.suppressed += 1 + job.context.suppressed;
                if let Some(id) = job.slowest_entry {
                    state.slowest.retain(|&(_, entry, _)| entry != id);
                }
                drop(state);
                self.inner.idle.notify_all();
                TriggerOutcome::Suppressed
            }
        }
    }

    /// Queues a job, starting the dump thread if needed; gives the job back if the queue is
    /// full or the thread cannot be started.
    fn send(&self, job: Box<Job>) -> Result<(), Box<Job>> {
        let mut sender = lock(&self.sender);
        if sender.is_none() {
            let (tx, rx) = mpsc::sync_channel::<Box<Job>>(self.inner.config.queue_capacity);
            let inner = Arc::clone(&self.inner);
            let spawned = std::thread::Builder::new()
                .name("blackbox-dumper".to_owned())
                .spawn(move || {
                    tracing::subscriber::with_default(
                        tracing::subscriber::NoSubscriber::default(),
                        || {
                            for job in rx {
                                inner.write_job(*job);
                            }
                        },
                    )
                });
            match spawned {
                Ok(handle) => {
                    *lock(&self.thread) = Some(handle);
                    *sender = Some(tx);
                }
                Err(_) => return Err(job),
            }
        }
        let Some(tx) = sender.as_ref() else {
            return Err(job);
        };
        tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(job) | TrySendError::Disconnected(job) => job,
        })
    }

    /// Waits until every queued dump is written, or `timeout` passes; true if all were.
    pub(crate) fn flush_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = lock(&self.inner.state);
        while state.pending > 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = match self.inner.idle.wait_timeout(state, deadline - now) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }

    /// Writes a dump file for a manual call, with the same naming, retention and reporting.
    pub(crate) fn write_now(
        &self,
        dir: &Path,
        label: &str,
        context: &DumpContext,
        snapshot: &Snapshot,
    ) -> Result<DumpInfo, DumpError> {
        self.inner.write_by(dir, label, context, snapshot, None)
    }

    pub(crate) fn report(&self, outcome: &DumpOutcome) {
        self.inner.report(outcome, None);
    }

    /// Writes a dump from a panic hook: synchronously, and giving up on the bookkeeping
    /// (retention, last error) rather than wait past `deadline` for its lock.
    pub(crate) fn write_for_panic(
        &self,
        context: &DumpContext,
        snapshot: &Snapshot,
        deadline: Instant,
    ) -> Result<DumpInfo, DumpError> {
        self.inner.write_by(
            &self.inner.config.dir,
            &context.reason,
            context,
            snapshot,
            Some(deadline),
        )
    }

    pub(crate) fn last_error(&self) -> Option<DumpError> {
        lock(&self.inner.state).last_error.clone()
    }
}

impl Drop for Dumper {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has written what is queued.
        drop(lock(&self.sender).take());
        if self.flush_timeout(DROP_FLUSH_TIMEOUT)
            && let Some(handle) = lock(&self.thread).take()
        {
            let _ = handle.join();
        }
    }
}

impl DumperInner {
    fn write_job(&self, job: Job) {
        let snapshot = Snapshot::decode(&self.timebase, job.capture);
        let label = match &job.context.trigger {
            Some(trigger) => format!("{}_{}", job.context.reason, trigger.span_name),
            None => job.context.reason.clone(),
        };
        let result = self.write_by(&self.config.dir, &label, &job.context, &snapshot, None);
        let mut state = lock(&self.state);
        if let (Some(id), Ok(info)) = (job.slowest_entry, &result) {
            match state.slowest.iter_mut().find(|(_, entry, _)| *entry == id) {
                Some(slot) => slot.2 = Some(info.path.clone()),
                // A slower breach took its place while it was being written.
                None => remove_quietly(&info.path, &mut state.written),
            }
        }
        state.pending -= 1;
        drop(state);
        self.idle.notify_all();
    }

    /// Locks the bookkeeping; with a deadline (the panic path), gives up past it.
    fn state(&self, deadline: Option<Instant>) -> Option<MutexGuard<'_, DumperState>> {
        match deadline {
            None => Some(lock(&self.state)),
            Some(deadline) => try_lock_until(&self.state, deadline),
        }
    }

    /// Encodes and writes one dump file, applies retention and reports the outcome.
    fn write_by(
        &self,
        dir: &Path,
        label: &str,
        context: &DumpContext,
        snapshot: &Snapshot,
        deadline: Option<Instant>,
    ) -> Result<DumpInfo, DumpError> {
        let started = Instant::now();
        let stamp = snapshot.wall_time(snapshot.window_end_ns);
        let result = write_new_file(
            dir,
            label,
            stamp,
            self.config.gzip,
            self.config.modes,
            |w| chrome::write(snapshot, context, w),
        );
        if let Ok(info) = &result {
            self.retain(dir, info, deadline);
        }
        let outcome = DumpOutcome {
            reason: context.reason.clone(),
            path: match &result {
                Ok(info) => info.path.clone(),
                Err(err) => err.path().to_owned(),
            },
            bytes: result.as_ref().map_or(0, |info| info.bytes),
            took: started.elapsed(),
            error: result.as_ref().err().cloned(),
            slow_span: context.trigger.as_ref().map(SlowSpan::from),
        };
        self.report(&outcome, deadline);
        result
    }

    fn report(&self, outcome: &DumpOutcome, deadline: Option<Instant>) {
        if let Some(error) = &outcome.error
            && let Some(mut state) = self.state(deadline)
        {
            state.last_error = Some(error.clone());
        }
        if let Some(on_dump) = &self.config.on_dump {
            // A panicking callback must not take the dump thread down with it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| on_dump(outcome)));
        }
    }

    /// Keeps at most `keep_files` files and `keep_bytes` bytes of this recorder's dumps in
    /// `dir`, deleting the oldest first, never the one just written, never another's file.
    fn retain(&self, dir: &Path, newest: &DumpInfo, deadline: Option<Instant>) {
        let Some(mut state) = self.state(deadline) else {
            return;
        };
        state.written.push_back((newest.path.clone(), newest.bytes));
        if self.config.keep_files.is_none() && self.config.keep_bytes.is_none() {
            return;
        }
        loop {
            let in_dir: Vec<usize> = state
                .written
                .iter()
                .enumerate()
                .filter(|(_, (path, _))| path.parent() == Some(dir))
                .map(|(i, _)| i)
                .collect();
            let bytes: u64 = in_dir.iter().map(|&i| state.written[i].1).sum();
            let too_many = self.config.keep_files.is_some_and(|n| in_dir.len() > n);
            let too_big = self.config.keep_bytes.is_some_and(|n| bytes > n);
            let Some(&oldest) = in_dir.first() else {
                return;
            };
            if !(too_many || too_big) || state.written[oldest].0 == newest.path {
                return;
            }
            if let Some((path, _)) = state.written.remove(oldest) {
                let _ = fs::remove_file(&path);
                for entry in &mut state.slowest {
                    if entry.2.as_ref() == Some(&path) {
                        entry.2 = None;
                    }
                }
            }
        }
    }
}

fn remove_quietly(path: &Path, written: &mut VecDeque<(PathBuf, u64)>) {
    let _ = fs::remove_file(path);
    written.retain(|(p, _)| p != path);
}

/// Where a dump went and how large it is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DumpInfo {
    /// The file written.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
}

/// Encodes into a temporary file in `dir`, syncs it, and returns it with its length.
fn write_temp(
    dir: &Path,
    meant_for: &Path,
    gzip: bool,
    modes: FileModes,
    encode: impl FnOnce(&mut dyn Write) -> io::Result<u64>,
) -> Result<(tempfile::NamedTempFile, u64), DumpError> {
    create_dir(dir, modes).map_err(|e| DumpError::new(DumpStage::CreateDir, dir, e))?;
    let stem = meant_for
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{stem}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| DumpError::new(DumpStage::CreateTemp, meant_for, e))?;
    set_mode(temp.as_file(), modes)
        .map_err(|e| DumpError::new(DumpStage::CreateTemp, meant_for, e))?;
    let written = (|| {
        let file = temp.as_file_mut();
        let mut counting = CountingWriter {
            inner: BufWriter::with_capacity(64 << 10, file),
            count: 0,
        };
        if gzip {
            encode_gzip(&mut counting, encode)?;
        } else {
            encode(&mut counting)?;
        }
        counting.flush()?;
        let count = counting.count;
        drop(counting);
        temp.as_file().sync_all()?;
        Ok(count)
    })();
    let len = written.map_err(|e| DumpError::new(DumpStage::Write, meant_for, e))?;
    Ok((temp, len))
}

#[cfg(feature = "gzip")]
fn encode_gzip(
    out: &mut dyn Write,
    encode: impl FnOnce(&mut dyn Write) -> io::Result<u64>,
) -> io::Result<()> {
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    encode(&mut gz)?;
    gz.finish()?;
    Ok(())
}

#[cfg(not(feature = "gzip"))]
fn encode_gzip(
    out: &mut dyn Write,
    encode: impl FnOnce(&mut dyn Write) -> io::Result<u64>,
) -> io::Result<()> {
    // The builder only enables gzip with the feature on.
    encode(out).map(drop)
}

/// Writes a dump to exactly `path`, replacing a file there.
pub(crate) fn write_file(
    path: &Path,
    modes: FileModes,
    encode: impl FnOnce(&mut dyn Write) -> io::Result<u64>,
) -> Result<DumpInfo, DumpError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let gzip = path.extension().is_some_and(|ext| ext == "gz") && cfg!(feature = "gzip");
    let (temp, bytes) = write_temp(dir, path, gzip, modes, encode)?;
    // On failure the temp file comes back in the error and is removed when dropped.
    temp.persist(path)
        .map_err(|e| DumpError::new(DumpStage::Persist, path, e.error))?;
    Ok(DumpInfo {
        path: path.to_owned(),
        bytes,
    })
}

/// Writes a dump into `dir` as `<label>_<stamp>_<seq>.json[.gz]`, never replacing a file.
pub(crate) fn write_new_file(
    dir: &Path,
    label: &str,
    stamp: DateTime<Utc>,
    gzip: bool,
    modes: FileModes,
    encode: impl FnOnce(&mut dyn Write) -> io::Result<u64>,
) -> Result<DumpInfo, DumpError> {
    let label = sanitize_label(label);
    let stamp = stamp.format("%Y%m%dT%H%M%S%.3fZ");
    let extension = if gzip { "json.gz" } else { "json" };
    let meant_for = dir.join(format!("{label}_{stamp}.{extension}"));
    let (mut temp, bytes) = write_temp(dir, &meant_for, gzip, modes, encode)?;
    loop {
        let seq = next_dump_seq();
        let path = dir.join(format!("{label}_{stamp}_{seq}.{extension}"));
        match temp.persist_noclobber(&path) {
            Ok(_) => return Ok(DumpInfo { path, bytes }),
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => temp = e.file,
            Err(e) => return Err(DumpError::new(DumpStage::Persist, path, e.error)),
        }
    }
}

/// Creates `dir` and its missing parents, new ones with `modes.dir` (unix).
fn create_dir(dir: &Path, modes: FileModes) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, modes.dir);
    #[cfg(not(unix))]
    let _ = modes;
    builder.create(dir)
}

/// Gives a new dump file `modes.file` (unix).
fn set_mode(file: &fs::File, modes: FileModes) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(modes.file))
    }
    #[cfg(not(unix))]
    {
        let _ = (file, modes);
        Ok(())
    }
}

fn next_dump_seq() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Longest label kept in a file name.
const MAX_LABEL_CHARS: usize = 64;

/// Reduces a label to `[A-Za-z0-9._-]`, at most 64 characters, never empty and never
/// starting with a dot.
pub(crate) fn sanitize_label(label: &str) -> String {
    let clean: String = label
        .trim_start_matches('.')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_LABEL_CHARS)
        .collect();
    if clean.is_empty() {
        "dump".to_owned()
    } else {
        clean
    }
}
