//! The recorder under hostile shapes, ours beside the floor in one run.
//!
//! - `churn`: batches of 5,000 short-lived threads that each log one record. The recorder
//!   lives across batches, so exited threads accumulate (their records stay dumpable until
//!   evicted): a batch must not get slower as they do. The worst first record of a thread is
//!   printed after each setup.
//! - `error_events`: ERROR events with `dump_on_error` whose triggers are all suppressed by the
//!   cooldown, on 1 and 2 threads, beside INFO events: a suppressed trigger must cost an atomic
//!   load, so ERROR events scale with threads like INFO events.
//!
//! Run: `cargo bench --bench storage`.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tracing::{Dispatch, Subscriber};
use tracing_blackbox::FlightRecorder;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;

struct Noop;

impl<S: Subscriber> Layer<S> for Noop {}

const CHURN_THREADS: usize = 5_000;

/// One batch: `CHURN_THREADS` threads, started together, each logging one record; returns the
/// batch's wall time and records the slowest first record in `worst_nanos`.
fn churn_batch(dispatch: &Dispatch, batch: u64, worst_nanos: &AtomicU64) -> Duration {
    let started = Instant::now();
    let threads: Vec<_> = (0..CHURN_THREADS)
        .map(|n| {
            let dispatch = dispatch.clone();
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    let before = Instant::now();
                    tracing::info!(batch, n, "a short-lived thread");
                    before.elapsed().as_nanos() as u64
                })
            })
        })
        .collect();
    for thread in threads {
        let took = thread.join().unwrap_or(0);
        worst_nanos.fetch_max(took, Ordering::Relaxed);
    }
    started.elapsed()
}

fn info_event(i: u64) {
    tracing::info!(a = i, b = true, "static message");
}

fn error_event(i: u64) {
    tracing::error!(a = i, b = true, "static message");
}

fn storage(c: &mut Criterion) {
    let mut group = c.benchmark_group("churn");
    group.sample_size(10);
    for name in ["floor", "blackbox"] {
        let (dispatch, _recorder) = match name {
            "floor" => (
                Dispatch::new(tracing_subscriber::registry().with(Noop)),
                None,
            ),
            _ => {
                let (layer, recorder) = FlightRecorder::builder().build().unwrap();
                let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
                (dispatch, Some(recorder))
            }
        };
        let worst = AtomicU64::new(0);
        let mut batch = 0;
        group.bench_function(format!("threads_{CHURN_THREADS}/{name}"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        batch += 1;
                        churn_batch(&dispatch, batch, &worst)
                    })
                    .sum()
            })
        });
        eprintln!(
            "churn/{name}: {batch} batches; worst first record of a thread: {:.1} ms",
            worst.load(Ordering::Relaxed) as f64 / 1e6
        );
    }
    group.finish();

    let mut group = c.benchmark_group("error_events");
    let dir = tempfile::tempdir().unwrap();
    let (layer, recorder) = FlightRecorder::builder()
        .dump_dir(dir.path())
        .dump_on_error()
        .cooldown(Duration::from_secs(3600))
        .build()
        .unwrap();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    // The first error dumps; every later one is within the cooldown.
    tracing::dispatcher::with_default(&dispatch, || error_event(0));
    recorder.flush();
    for (name, event) in [
        ("info", info_event as fn(u64)),
        ("error_suppressed", error_event),
    ] {
        for threads in [1usize, 2] {
            group.bench_function(format!("{name}/{threads}"), |b| {
                b.iter_custom(|iters| common::on_threads(&dispatch, threads, iters, event))
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40);
    targets = storage
}
criterion_main!(benches);
