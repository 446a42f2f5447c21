//! The sampler: a thread of its own that records, every interval, the runtime's metrics, the
//! process's and the recorder's own counters as counter records, which the dump draws as
//! counter tracks on the same timeline as everything else.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing_core::Metadata;
use tracing_core::field::{Field, Value};

use crate::FlightRecorder;
use crate::record::Recording;
use crate::record::runtime::{
    self, PROCESS_SAMPLE, RECORDER_SAMPLE, RUNTIME_SAMPLE, WORKER_SAMPLE,
};
use crate::sync::quietly;
use crate::tokio::process::ProcessStat;

/// Default interval between two samples.
pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_millis(10);
/// Shortest interval accepted.
pub const MIN_SAMPLE_INTERVAL: Duration = Duration::from_millis(1);

/// A running sampler; dropping it (or [`stop`](Self::stop)) stops the thread and waits for it.
#[must_use = "the sampler stops when dropped"]
pub struct RuntimeSampler {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    interval: Duration,
}

impl fmt::Debug for RuntimeSampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeSampler")
            .field("interval", &self.interval)
            .field("running", &self.thread.is_some())
            .finish()
    }
}

impl RuntimeSampler {
    /// Starts sampling the runtime behind `handle` into `recorder` every `interval` (see
    /// [`DEFAULT_SAMPLE_INTERVAL`]), on a thread named `blackbox-sampler`. Each sample is a
    /// few records: the runtime (workers, alive tasks, global queue depth; with
    /// `tokio_unstable` also the blocking pool and spawned tasks), each worker (busy ratio
    /// over the interval, parks; with `tokio_unstable` also its local queue, steals, polls and
    /// overflows), the process (resident memory, user and system CPU time, threads; Linux)
    /// and the recorder (bytes allocated, records written, overwritten, dropped). They go into
    /// the recorder's bounded storage, so they age out with everything else.
    ///
    /// # Errors
    ///
    /// `interval` is shorter than [`MIN_SAMPLE_INTERVAL`] (`InvalidInput`), or the thread
    /// could not be started.
    pub fn start(
        handle: &tokio::runtime::Handle,
        recorder: &FlightRecorder,
        interval: Duration,
    ) -> io::Result<RuntimeSampler> {
        if interval < MIN_SAMPLE_INTERVAL {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "sample interval {interval:?} is under the minimum of {MIN_SAMPLE_INTERVAL:?}"
                ),
            ));
        }
        let recording = Arc::clone(recorder.recording());
        runtime::intern_callsites(&recording);
        let handle = handle.clone();
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("blackbox-sampler".into())
            .spawn(move || {
                let mut sampler = Sampler::new(handle, recording);
                loop {
                    quietly(|| sampler.sample());
                    match stopped.recv_timeout(interval) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })?;
        Ok(RuntimeSampler {
            stop: Some(stop),
            thread: Some(thread),
            interval,
        })
    }

    /// Stops the sampler and waits for its thread to end.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RuntimeSampler {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// The sampler thread's state: the previous sample, for ratios over the interval.
struct Sampler {
    handle: tokio::runtime::Handle,
    recording: Arc<Recording>,
    last: Instant,
    /// Per worker: total busy time at the previous sample.
    busy: Vec<Duration>,
    process: Option<ProcessStat>,
}

impl Sampler {
    fn new(handle: tokio::runtime::Handle, recording: Arc<Recording>) -> Self {
        Sampler {
            handle,
            recording,
            last: Instant::now(),
            busy: Vec::new(),
            process: ProcessStat::new(),
        }
    }

    fn sample(&mut self) {
        let metrics = self.handle.metrics();
        let workers = metrics.num_workers();
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        let unstable = Unstable::of(&metrics);
        record(
            &self.recording,
            &RUNTIME_SAMPLE,
            [
                Some(&(workers as u64)),
                Some(&(metrics.num_alive_tasks() as u64)),
                Some(&(metrics.global_queue_depth() as u64)),
                unstable.blocking_threads.as_ref().map(|v| v as &dyn Value),
                unstable
                    .idle_blocking_threads
                    .as_ref()
                    .map(|v| v as &dyn Value),
                unstable
                    .blocking_queue_depth
                    .as_ref()
                    .map(|v| v as &dyn Value),
                unstable.spawned_tasks.as_ref().map(|v| v as &dyn Value),
            ],
        );
        self.busy.resize(workers, Duration::ZERO);
        for worker in 0..workers {
            let busy = metrics.worker_total_busy_duration(worker);
            let delta = busy.saturating_sub(self.busy[worker]).as_secs_f64();
            self.busy[worker] = busy;
            let ratio = if elapsed > 0.0 {
                (delta / elapsed).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let worker_unstable = Unstable::of_worker(&metrics, worker);
            record(
                &self.recording,
                &WORKER_SAMPLE,
                [
                    Some(&(worker as u64)),
                    Some(&ratio),
                    Some(&metrics.worker_park_count(worker)),
                    Some(&metrics.worker_park_unpark_count(worker)),
                    worker_unstable
                        .local_queue_depth
                        .as_ref()
                        .map(|v| v as &dyn Value),
                    worker_unstable.steals.as_ref().map(|v| v as &dyn Value),
                    worker_unstable.polls.as_ref().map(|v| v as &dyn Value),
                    worker_unstable.overflows.as_ref().map(|v| v as &dyn Value),
                ],
            );
        }
        if let Some(stat) = self.process.as_mut().and_then(|p| p.read()) {
            record(
                &self.recording,
                &PROCESS_SAMPLE,
                [
                    Some(&stat.rss_bytes),
                    Some(&stat.cpu_user_ms),
                    Some(&stat.cpu_system_ms),
                    Some(&stat.threads),
                ],
            );
        }
        let storage = self.recording.storage.counters();
        record(
            &self.recording,
            &RECORDER_SAMPLE,
            [
                Some(&(storage.allocated_bytes as u64)),
                Some(&storage.written),
                Some(&storage.overwritten),
                Some(&self.recording.dropped()),
            ],
        );
    }
}

/// Records one sample: `values` in the order of `metadata`'s fields (`None`: not measured).
fn record<const N: usize>(
    recording: &Arc<Recording>,
    metadata: &'static Metadata<'static>,
    values: [Option<&dyn Value>; N],
) {
    let mut names = metadata.fields().iter();
    let fields: [Option<Field>; N] = std::array::from_fn(|_| names.next());
    if fields.iter().any(Option::is_none) {
        return;
    }
    let pairs: [(&Field, Option<&dyn Value>); N] = std::array::from_fn(|i| {
        (
            fields[i]
                .as_ref()
                .unwrap_or_else(|| unreachable!("checked above")),
            values[i],
        )
    });
    runtime::record(recording, metadata, &metadata.fields().value_set(&pairs));
}

/// The metrics that need `--cfg tokio_unstable`; `None` without it.
#[derive(Default)]
struct Unstable {
    blocking_threads: Option<u64>,
    idle_blocking_threads: Option<u64>,
    blocking_queue_depth: Option<u64>,
    spawned_tasks: Option<u64>,
    local_queue_depth: Option<u64>,
    steals: Option<u64>,
    polls: Option<u64>,
    overflows: Option<u64>,
}

impl Unstable {
    #[cfg(tokio_unstable)]
    fn of(metrics: &tokio::runtime::RuntimeMetrics) -> Self {
        Unstable {
            blocking_threads: Some(metrics.num_blocking_threads() as u64),
            idle_blocking_threads: Some(metrics.num_idle_blocking_threads() as u64),
            blocking_queue_depth: Some(metrics.blocking_queue_depth() as u64),
            spawned_tasks: Some(metrics.spawned_tasks_count()),
            ..Unstable::default()
        }
    }

    #[cfg(not(tokio_unstable))]
    fn of(_metrics: &tokio::runtime::RuntimeMetrics) -> Self {
        Unstable::default()
    }

    #[cfg(tokio_unstable)]
    fn of_worker(metrics: &tokio::runtime::RuntimeMetrics, worker: usize) -> Self {
        Unstable {
            local_queue_depth: Some(metrics.worker_local_queue_depth(worker) as u64),
            steals: Some(metrics.worker_steal_count(worker)),
            polls: Some(metrics.worker_poll_count(worker)),
            overflows: Some(metrics.worker_overflow_count(worker)),
            ..Unstable::default()
        }
    }

    #[cfg(not(tokio_unstable))]
    fn of_worker(_metrics: &tokio::runtime::RuntimeMetrics, _worker: usize) -> Self {
        Unstable::default()
    }
}
