//! The seed's exercise in async form: five tasks on a two-worker tokio runtime, one of which
//! blocks its worker with `std::thread::sleep` now and then. The long-poll trigger dumps the
//! first time it does; the dump shows the blocked worker, the tasks queued behind it and how
//! long each waited (`scheduled_delay_us` on every poll). The runtime is also instrumented
//! (each worker's busy and parked time) and sampled every 10 ms (counter tracks: alive tasks,
//! queue depth, each worker's busy ratio, the process's memory and CPU time).
//!
//! tokio records its tasks only when built with `--cfg tokio_unstable` (without it, the dump
//! still has the workers and counters, and a final manual dump is written instead):
//!
//! ```text
//! RUSTFLAGS="--cfg tokio_unstable" cargo run --release --features tokio --example tokio_runtime
//! ```
//! Open the dump at <https://ui.perfetto.dev> ("Open trace file"), or summarize it with
//! `cargo run --features cli --bin blackbox -- summary <dump>`. The guide's section "Why was
//! my task late?" reads one.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{Instrument, info, info_span};
use tracing_blackbox::FlightRecorder;
use tracing_blackbox::tokio::{DEFAULT_SAMPLE_INTERVAL, RuntimeSampler};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

const TASKS: u32 = 5;
/// The task that blocks its worker.
const BLOCKER: u32 = 2;
const LONG_POLL: Duration = Duration::from_millis(50);
const RUN_FOR: Duration = Duration::from_secs(2);

/// Spawns a task under its name (a name needs tokio's unstable task builder).
fn spawn_named<F>(name: &str, future: F) -> tokio::task::JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    #[cfg(tokio_unstable)]
    return tokio::task::Builder::new()
        .name(name)
        .spawn(future)
        .expect("a tokio runtime");
    #[cfg(not(tokio_unstable))]
    {
        let _ = name;
        tokio::spawn(future)
    }
}

/// One task's loop: requests of a few milliseconds of async waiting; the blocker sleeps the
/// thread instead, every fourth request.
async fn work(task: u32, until: Instant) {
    let mut request = 0u32;
    while Instant::now() < until {
        request += 1;
        let span = info_span!("request", task, request);
        async {
            info!("start");
            tokio::time::sleep(Duration::from_millis(5 + u64::from(task))).await;
            if task == BLOCKER && request.is_multiple_of(4) {
                // The bug: blocking inside async code holds the worker and every task queued
                // on it.
                std::thread::sleep(Duration::from_millis(80));
            }
            tokio::task::yield_now().await;
            info!("done");
        }
        .instrument(span)
        .await;
    }
}

fn main() -> ExitCode {
    let dumps: Arc<Mutex<Vec<std::path::PathBuf>>> = Arc::default();
    let written = Arc::clone(&dumps);
    let built = FlightRecorder::builder()
        .dump_dir("blackbox-dumps")
        .dump_on_long_poll(LONG_POLL)
        .on_dump(move |outcome| match &outcome.error {
            None => {
                println!("dump ({}): {}", outcome.reason, outcome.path.display());
                written.lock().unwrap().push(outcome.path.clone());
            }
            Some(err) => eprintln!("dump failed: {err}"),
        })
        .build();
    let (layer, recorder) = match built {
        Ok(built) => built,
        Err(err) => {
            eprintln!("tokio_runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    // The recorder takes the application's INFO and tokio's task records; a console layer
    // would get a filter of its own.
    tracing_subscriber::registry()
        .with(layer.with_filter(tracing_blackbox::tokio::task_filter(LevelFilter::INFO)))
        .init();

    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_time();
    // Each worker's busy and parked time, on its track.
    tracing_blackbox::tokio::instrument(&mut builder, &recorder);
    let runtime = builder.build().expect("a tokio runtime");
    // The runtime's, the process's and the recorder's counters, every 10 ms.
    let sampler = match RuntimeSampler::start(runtime.handle(), &recorder, DEFAULT_SAMPLE_INTERVAL)
    {
        Ok(sampler) => sampler,
        Err(err) => {
            eprintln!("tokio_runtime: sampler: {err}");
            return ExitCode::FAILURE;
        }
    };
    let until = Instant::now() + RUN_FOR;
    runtime.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| spawn_named(&format!("task-{task}"), work(task, until)))
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    });
    sampler.stop();
    drop(runtime);
    recorder.flush();

    let dumps = dumps.lock().unwrap();
    if dumps.is_empty() {
        if cfg!(tokio_unstable) {
            eprintln!("no long poll was caught");
            return ExitCode::FAILURE;
        }
        // Without tokio's task records nothing can tell a long poll: the workers and counters
        // are in a manual dump.
        return match recorder.dump_to_dir("blackbox-dumps", "runtime") {
            Ok(info) => {
                println!(
                    "dump (workers and counters): {}\n\
                     tokio records its tasks only when built with --cfg tokio_unstable:\n  \
                     RUSTFLAGS=\"--cfg tokio_unstable\" cargo run --release --features tokio --example tokio_runtime",
                    info.path.display()
                );
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("tokio_runtime: {err}");
                ExitCode::FAILURE
            }
        };
    }
    println!(
        "task-{BLOCKER} blocked its worker for 80 ms; open the dump at https://ui.perfetto.dev \
         and look for the long `task-{BLOCKER}` slice, the polls queued behind it on the same \
         worker, and their scheduled_delay_us."
    );
    ExitCode::SUCCESS
}
