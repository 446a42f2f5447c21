//! Sending windows to the OTLP receiver: one exporter thread with a bounded queue (the oldest
//! window dropped, and reported, when full), bounded retries with backoff, a timeout per
//! attempt. Nothing here ever blocks recording or the dump thread.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::OtlpConfig;
use crate::sync::{lock, quietly};

/// A window waiting to be sent.
pub(crate) struct Delivery {
    pub(crate) reason: String,
    pub(crate) body: Vec<u8>,
    pub(crate) queued: Instant,
}

/// What became of a window: sent, or why not (the error's text).
pub(crate) struct Delivered {
    pub(crate) reason: String,
    pub(crate) bytes: u64,
    pub(crate) took: Duration,
    pub(crate) error: Option<String>,
}

type Report = Box<dyn Fn(Delivered) + Send + Sync>;

/// The exporter thread and its queue.
pub(crate) struct Exporter {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    config: OtlpConfig,
    queue: Mutex<Queue>,
    /// A window was queued, or the exporter is closing.
    wake: Condvar,
    /// The queue became empty with nothing being sent.
    idle: Condvar,
    report: Report,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Delivery>,
    sending: bool,
    closed: bool,
}

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The first wait between two attempts; doubled each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

impl Exporter {
    pub(crate) fn start(config: OtlpConfig, report: Report) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            config,
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            idle: Condvar::new(),
            report,
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("blackbox-otlp".to_owned())
            .spawn(move || worker.run())?;
        Ok(Exporter {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    pub(crate) fn config(&self) -> &OtlpConfig {
        &self.shared.config
    }

    /// Queues a window; when the queue is full, the oldest waiting one is dropped (reported as
    /// a failure).
    pub(crate) fn submit(&self, delivery: Delivery) {
        let dropped = {
            let mut queue = lock(&self.shared.queue);
            let dropped = (queue.waiting.len() >= self.shared.config.max_queued)
                .then(|| queue.waiting.pop_front())
                .flatten();
            queue.waiting.push_back(delivery);
            dropped
        };
        self.shared.wake.notify_all();
        if let Some(dropped) = dropped {
            (self.shared.report)(Delivered {
                reason: dropped.reason,
                bytes: 0,
                took: dropped.queued.elapsed(),
                error: Some(format!(
                    "dropped: {} newer windows were waiting to be sent",
                    self.shared.config.max_queued
                )),
            });
        }
    }

    /// Waits until every queued window was sent or given up on, or `timeout` passes.
    pub(crate) fn flush_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut queue = lock(&self.shared.queue);
        while !queue.waiting.is_empty() || queue.sending {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            queue = match self.shared.idle.wait_timeout(queue, left) {
                Ok((queue, _)) => queue,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        // Dropped by its own thread (which reported the last outcome while the recorder went
        // away): it cannot wait for itself.
        let own_thread = lock(&self.thread)
            .as_ref()
            .is_some_and(|thread| thread.thread().id() == std::thread::current().id());
        if own_thread {
            lock(&self.shared.queue).closed = true;
            return;
        }
        // What is queued gets a few seconds; a collector that does not answer is not waited
        // for past that (the thread ends on its own after its current attempt).
        let flushed = self.flush_timeout(Duration::from_secs(5));
        lock(&self.shared.queue).closed = true;
        self.shared.wake.notify_all();
        if flushed && let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn run(&self) {
        loop {
            let delivery = {
                let mut queue = lock(&self.queue);
                loop {
                    if let Some(delivery) = queue.waiting.pop_front() {
                        queue.sending = true;
                        break delivery;
                    }
                    if queue.closed {
                        return;
                    }
                    queue = match self.wake.wait(queue) {
                        Ok(queue) => queue,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                }
            };
            let result = quietly(|| {
                send(&self.config, &delivery.body, |pause| {
                    // Backoff that ends early when the exporter closes.
                    let deadline = Instant::now() + pause;
                    let mut queue = lock(&self.queue);
                    while !queue.closed {
                        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                            return true;
                        };
                        queue = match self.wake.wait_timeout(queue, left) {
                            Ok((queue, _)) => queue,
                            Err(poisoned) => poisoned.into_inner().0,
                        };
                    }
                    false
                })
            });
            (self.report)(Delivered {
                reason: delivery.reason,
                bytes: delivery.body.len() as u64,
                took: delivery.queued.elapsed(),
                error: result.err(),
            });
            let mut queue = lock(&self.queue);
            queue.sending = false;
            if queue.waiting.is_empty() {
                self.idle.notify_all();
            }
        }
    }
}

/// Sends one request body (already encoded, and gzipped if configured), retrying on 429,
/// 502, 503, 504 and failed connections, at most `max_attempts` times; `wait` sleeps between
/// attempts and says whether to go on.
pub(crate) fn send(
    config: &OtlpConfig,
    body: &[u8],
    mut wait: impl FnMut(Duration) -> bool,
) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(config.timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        let mut request = agent
            .post(&config.endpoint)
            .header("content-type", "application/x-protobuf");
        if config.gzip {
            request = request.header("content-encoding", "gzip");
        }
        for (name, value) in &config.headers {
            request = request.header(name, value);
        }
        let (error, retry, retry_after) = match request.send(body) {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(mut response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let mut text = String::new();
                let _ = response
                    .body_mut()
                    .as_reader()
                    .take(512)
                    .read_to_string(&mut text);
                let text = text.trim();
                (
                    format!(
                        "the OTLP receiver at {} answered {status}{}{text}",
                        config.endpoint,
                        if text.is_empty() { "" } else { ": " }
                    ),
                    matches!(status, 429 | 502 | 503 | 504),
                    retry_after,
                )
            }
            Err(err) => {
                let retry = match &err {
                    ureq::Error::ConnectionFailed => true,
                    ureq::Error::Io(e) => matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionRefused
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::ConnectionAborted
                    ),
                    _ => false,
                };
                let what = match &err {
                    ureq::Error::Timeout(_) => format!("no answer within {:?}", config.timeout),
                    other => other.to_string(),
                };
                (
                    format!(
                        "cannot send to the OTLP receiver at {}: {what}",
                        config.endpoint
                    ),
                    retry,
                    None,
                )
            }
        };
        if !retry || attempt >= config.max_attempts {
            let tries = if attempt > 1 {
                format!(" (after {attempt} attempts)")
            } else {
                String::new()
            };
            return Err(format!("{error}{tries}"));
        }
        let pause = retry_after.unwrap_or(backoff).min(MAX_BACKOFF);
        if !wait(pause) {
            return Err(format!("{error} (given up: the recorder is closing)"));
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        attempt += 1;
    }
}
