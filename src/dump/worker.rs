//! The dump thread and the bookkeeping of triggered dumps: admission, the queue, retention,
//! reporting.
//!
//! The triggers (see `trigger`) reserve a place in the queue before they copy anything, then
//! hand their snapshot through the bounded queue to one background thread, started by
//! `build()`, which encodes, writes, applies retention, deletes the files it is told to (what
//! top-N pushed out), hands the window to the OTLP exporter when one is configured (see
//! `export`), and reports. Each job runs recording nothing (`sync::quietly`): the thread's
//! own work is never recorded and cannot re-enter the recorder.

use std::collections::{HashSet, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::dump::callback;
use crate::dump::chrome;
use crate::dump::context::DumpContext;
#[cfg(feature = "otlp")]
use crate::dump::export::{self, ExportInfo};
use crate::dump::files::{self, DumpInfo};
#[cfg(feature = "otlp")]
use crate::dump::otlp::Exporter;
use crate::dump::outcome::{Destination, DumpOutcome, SlowSpan, TriggerOutcome};
use crate::error::{DumpError, DumpStage};
use crate::record::{Capture, Timebase};
use crate::sync::quietly;
use crate::sync::{lock, try_lock_until};

pub(crate) use crate::dump::settings::{DEFAULT_DUMP_DIR, DEFAULT_QUEUE_CAPACITY, DumpConfig};

/// How long dropping the last handle waits for queued dumps.
pub(crate) const DROP_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Called with the file a triggered dump was written to; `false` means the file is no longer
/// wanted (top-N pushed its breach out meanwhile) and the dump thread deletes it.
pub(crate) type AfterWrite = Box<dyn FnOnce(&Path) -> bool + Send>;

/// A triggered dump on its way to the dump thread.
pub(crate) struct Job {
    pub(crate) context: DumpContext,
    pub(crate) capture: Capture,
    pub(crate) after_write: Option<AfterWrite>,
}

#[derive(Default)]
struct DumperState {
    /// Jobs queued or being written.
    pending: usize,
    /// Files this recorder wrote (or found from an earlier run), oldest first: (path, bytes).
    written: VecDeque<(PathBuf, u64)>,
    /// Directories whose earlier dumps have been counted.
    scanned: HashSet<PathBuf>,
    /// Files to delete, by the dump thread.
    doomed: Vec<PathBuf>,
    last_error: Option<DumpError>,
    /// Dump files written and failed so far, and the latest outcome with its time.
    files_written: u64,
    files_failed: u64,
    last: Option<(SystemTime, DumpOutcome)>,
}

/// What the dump bookkeeping tells a status report.
pub(crate) struct DumpTally {
    pub(crate) written: u64,
    pub(crate) failed: u64,
    pub(crate) last: Option<(SystemTime, DumpOutcome)>,
}

struct DumperInner {
    config: DumpConfig,
    timebase: Timebase,
    state: Mutex<DumperState>,
    idle: Condvar,
    /// The exporter thread, when windows are also sent to an OTLP receiver.
    #[cfg(feature = "otlp")]
    otlp: Option<Exporter>,
}

/// Owns the dump thread and the dump bookkeeping.
pub(crate) struct Dumper {
    inner: Arc<DumperInner>,
    sender: Mutex<Option<SyncSender<Box<Job>>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// A place in the queue, reserved. Submit a job with it, or drop it to give the place back.
pub(crate) struct Reservation<'a> {
    dumper: &'a Dumper,
    submitted: bool,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.submitted {
            self.dumper.inner.give_back();
        }
    }
}

impl Dumper {
    /// Starts the dump thread.
    pub(crate) fn new(config: DumpConfig, timebase: Timebase) -> io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Box<Job>>(config.queue_capacity);
        #[cfg_attr(not(feature = "otlp"), allow(unused_mut))]
        let mut exporter_error = None;
        let inner = Arc::new_cyclic(|_weak: &std::sync::Weak<DumperInner>| {
            #[cfg(feature = "otlp")]
            let otlp = config.otlp.clone().and_then(|otlp| {
                let weak = _weak.clone();
                let endpoint = otlp.endpoint().to_owned();
                let report = Box::new(move |delivered| {
                    if let Some(inner) = weak.upgrade() {
                        inner.report(&export::outcome(&endpoint, delivered), None);
                    }
                });
                Exporter::start(otlp, report)
                    .map_err(|e| exporter_error = Some(e))
                    .ok()
            });
            DumperInner {
                config,
                timebase,
                state: Mutex::new(DumperState::default()),
                idle: Condvar::new(),
                #[cfg(feature = "otlp")]
                otlp,
            }
        });
        if let Some(error) = exporter_error {
            return Err(error);
        }
        let worker = Arc::clone(&inner);
        let thread = std::thread::Builder::new()
            .name("blackbox-dumper".to_owned())
            .spawn(move || {
                for job in rx {
                    quietly(|| worker.write_job(*job));
                }
                quietly(|| worker.delete_doomed());
            })?;
        Ok(Dumper {
            inner,
            sender: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    pub(crate) fn config(&self) -> &DumpConfig {
        &self.inner.config
    }

    /// A place in the queue, if there is one (queued and written dumps count).
    pub(crate) fn reserve(&self) -> Option<Reservation<'_>> {
        let mut state = lock(&self.inner.state);
        if state.pending >= self.inner.config.queue_capacity {
            return None;
        }
        state.pending += 1;
        Some(Reservation {
            dumper: self,
            submitted: false,
        })
    }

    /// Queues a job in its reserved place.
    pub(crate) fn submit(&self, mut reservation: Reservation<'_>, job: Job) -> TriggerOutcome {
        let sent = lock(&self.sender)
            .as_ref()
            .is_some_and(|tx| tx.try_send(Box::new(job)).is_ok());
        // The place was reserved, so only a stopped thread refuses; the reservation then gives
        // it back.
        reservation.submitted = sent;
        if sent {
            TriggerOutcome::Queued
        } else {
            TriggerOutcome::Suppressed
        }
    }

    /// Files for the dump thread to delete (never deleted on a recording thread).
    pub(crate) fn delete_later(&self, files: Vec<PathBuf>) {
        lock(&self.inner.state).doomed.extend(files);
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
        drop(state);
        // The windows the dump thread handed to the exporter, sent (or given up on) too.
        #[cfg(feature = "otlp")]
        if let Some(exporter) = &self.inner.otlp {
            return exporter.flush_timeout(deadline.saturating_duration_since(Instant::now()));
        }
        true
    }

    /// Writes a dump file for a manual call, with the same naming, retention and reporting.
    pub(crate) fn write_now(
        &self,
        dir: &Path,
        label: &str,
        context: &DumpContext,
        capture: &Capture,
    ) -> Result<DumpInfo, DumpError> {
        self.inner.write_dump(dir, label, context, capture, None)
    }

    pub(crate) fn report(&self, outcome: &DumpOutcome) {
        self.inner.report(outcome, None);
    }

    /// Writes a dump from a panic hook: synchronously, and giving up on the bookkeeping
    /// (retention, last error) rather than wait past `deadline` for its lock.
    pub(crate) fn write_for_panic(
        &self,
        context: &DumpContext,
        capture: Capture,
        deadline: Instant,
    ) -> Result<DumpInfo, DumpError> {
        let written = self.inner.write_dump(
            &self.inner.config.dir,
            &context.label(),
            context,
            &capture,
            Some(deadline),
        );
        // Best effort: sent while the process may still be going.
        self.inner.export(context, capture, Some(deadline));
        written
    }

    pub(crate) fn last_error(&self) -> Option<DumpError> {
        lock(&self.inner.state).last_error.clone()
    }

    /// Sends a window to the OTLP receiver now, on this thread; reports the outcome.
    #[cfg(feature = "otlp")]
    pub(crate) fn export_now(
        &self,
        context: &DumpContext,
        capture: Capture,
    ) -> Result<ExportInfo, DumpError> {
        let Some(exporter) = &self.inner.otlp else {
            return Err(export::not_configured());
        };
        let (sent, outcome) =
            quietly(|| export::send_now(exporter.config(), &self.inner.timebase, context, capture));
        self.inner.report(&outcome, None);
        sent
    }

    pub(crate) fn tally(&self) -> DumpTally {
        let state = lock(&self.inner.state);
        DumpTally {
            written: state.files_written,
            failed: state.files_failed,
            last: state.last.clone(),
        }
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
    /// A reserved place that will not be used.
    fn give_back(&self) {
        lock(&self.state).pending -= 1;
        self.idle.notify_all();
    }

    fn write_job(&self, job: Job) {
        self.delete_doomed();
        let result = self.config.files.then(|| {
            self.write_dump(
                &self.config.dir,
                &job.context.label(),
                &job.context,
                &job.capture,
                None,
            )
        });
        self.export(&job.context, job.capture, None);
        let written = result.and_then(Result::ok);
        let unwanted = match (job.after_write, &written) {
            (Some(after_write), Some(info)) => !after_write(&info.path),
            _ => false,
        };
        let mut state = lock(&self.state);
        if let (true, Some(info)) = (unwanted, written) {
            state.doomed.push(info.path);
        }
        state.pending -= 1;
        drop(state);
        self.delete_doomed();
        self.idle.notify_all();
    }

    /// Sends a triggered dump's window to the OTLP receiver too, when configured: queued for
    /// the exporter thread; from a panic hook, waited for (briefly: the process may be ending).
    #[cfg(feature = "otlp")]
    fn export(&self, context: &DumpContext, capture: Capture, deadline: Option<Instant>) {
        let Some(exporter) = &self.otlp else { return };
        if !export::exported(&context.reason) {
            return;
        }
        if let Err(error) = export::queue(exporter, &self.timebase, context, capture) {
            let outcome = DumpOutcome {
                reason: context.reason.as_str().to_owned(),
                path: error.path().to_owned(),
                bytes: 0,
                took: Duration::ZERO,
                error: Some(error),
                slow_span: None,
                destination: Destination::Otlp,
            };
            self.report(&outcome, deadline);
        }
        if deadline.is_some() {
            exporter.flush_timeout(export::PANIC_EXPORT_WAIT);
        }
    }

    #[cfg(not(feature = "otlp"))]
    fn export(&self, _context: &DumpContext, _capture: Capture, _deadline: Option<Instant>) {}

    /// Deletes the files top-N pushed out (on the dump thread: never on a recording thread).
    fn delete_doomed(&self) {
        let doomed = std::mem::take(&mut lock(&self.state).doomed);
        for path in doomed {
            let _ = fs::remove_file(&path);
            lock(&self.state).written.retain(|(p, _)| *p != path);
        }
    }

    /// Locks the bookkeeping; with a deadline (the panic path), gives up past it.
    fn state(&self, deadline: Option<Instant>) -> Option<MutexGuard<'_, DumperState>> {
        match deadline {
            None => Some(lock(&self.state)),
            Some(deadline) => try_lock_until(&self.state, deadline),
        }
    }

    /// Encodes and writes one dump file, applies retention and reports the outcome.
    fn write_dump(
        &self,
        dir: &Path,
        label: &str,
        context: &DumpContext,
        capture: &Capture,
        deadline: Option<Instant>,
    ) -> Result<DumpInfo, DumpError> {
        let started = Instant::now();
        let stamp = chrome::window_end(capture, &self.timebase);
        let result = files::write_new_file(
            dir,
            label,
            stamp,
            self.config.gzip,
            self.config.modes,
            |w| chrome::write(capture, &self.timebase, context, w),
        );
        if let Ok(info) = &result {
            self.retain(dir, info, deadline);
        }
        let outcome = DumpOutcome {
            reason: context.reason.as_str().to_owned(),
            path: match &result {
                Ok(info) => info.path.clone(),
                Err(err) => err.path().to_owned(),
            },
            bytes: result.as_ref().map_or(0, |info| info.bytes),
            took: started.elapsed(),
            error: result.as_ref().err().cloned(),
            slow_span: context.trigger.as_ref().map(SlowSpan::from),
            destination: Destination::File,
        };
        self.report(&outcome, deadline);
        result
    }

    fn report(&self, outcome: &DumpOutcome, deadline: Option<Instant>) {
        // The bookkeeping first, so that the callback sees it (`last_dump_error`, `status`).
        self.record_outcome(outcome, deadline);
        let Some(on_dump) = &self.config.on_dump else {
            return;
        };
        // From a panic hook, a panicking callback would abort the process: it runs on a
        // thread of its own there.
        let ran = match deadline {
            Some(_) => callback::run_from_panic_hook(on_dump, outcome),
            None => callback::run(on_dump, outcome),
        };
        if let Err(message) = ran {
            let error = DumpError::new(
                DumpStage::Callback,
                &outcome.path,
                io::Error::other(format!("the on_dump callback panicked: {message}")),
            );
            if let Some(mut state) = self.state(deadline) {
                if outcome.error.is_none() {
                    state.files_written -= 1;
                    state.files_failed += 1;
                }
                if let Some((_, last)) = &mut state.last {
                    last.error = Some(error.clone());
                }
                state.last_error = Some(error);
            }
        }
    }

    fn record_outcome(&self, outcome: &DumpOutcome, deadline: Option<Instant>) {
        let Some(mut state) = self.state(deadline) else {
            return;
        };
        match &outcome.error {
            Some(error) => {
                state.files_failed += 1;
                state.last_error = Some(error.clone());
            }
            None => state.files_written += 1,
        }
        state.last = Some((SystemTime::now(), outcome.clone()));
    }

    /// Keeps at most `keep_files` files and `keep_bytes` bytes of this recorder's dumps in
    /// `dir` — counting those an earlier run left there, recognised by their names — deleting
    /// the oldest first, never the one just written, never a file it did not name.
    fn retain(&self, dir: &Path, newest: &DumpInfo, deadline: Option<Instant>) {
        let Some(mut state) = self.state(deadline) else {
            return;
        };
        let limited = self.config.keep_files.is_some() || self.config.keep_bytes.is_some();
        if limited && state.scanned.insert(dir.to_owned()) {
            let known: HashSet<PathBuf> = state.written.iter().map(|(p, _)| p.clone()).collect();
            let earlier: Vec<(PathBuf, u64)> = files::existing_dumps(dir)
                .into_iter()
                .filter(|(path, _)| *path != newest.path && !known.contains(path))
                .collect();
            for entry in earlier.into_iter().rev() {
                state.written.push_front(entry);
            }
        }
        state.written.push_back((newest.path.clone(), newest.bytes));
        if !limited {
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
            }
        }
    }
}
