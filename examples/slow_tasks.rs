//! The seed's exercise: five tasks each wait a random 0–500 ms; every task that takes 300 ms or
//! more gets its own dump of the recent past in `./blackbox-dumps/`.
//!
//! ```text
//! cargo run --release --example slow_tasks            # a random run (prints its seed)
//! cargo run --release --example slow_tasks -- --seed 7 # the same run again
//! ```
//! Open a dump at <https://ui.perfetto.dev> ("Open trace file").

use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tracing::{debug, info, info_span, instrument};
use tracing_blackbox::FlightRecorder;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const TASKS: u32 = 5;
const THRESHOLD: Duration = Duration::from_millis(300);
const DUMP_DIR: &str = "blackbox-dumps";

/// One task's work: a few steps, then the random wait that makes it slow or not.
#[instrument]
fn slow_operation(task: u32, wait_ms: u64) {
    {
        let _prepare = info_span!("prepare", task).entered();
        debug!(task, "loading input");
        std::thread::sleep(Duration::from_millis(2));
    }
    {
        let _wait = info_span!("wait", wait_ms).entered();
        info!(wait_ms, "waiting");
        std::thread::sleep(Duration::from_millis(wait_ms));
    }
    info!(task, "done");
}

fn parse_seed() -> Result<Option<u64>, String> {
    let mut args = std::env::args().skip(1);
    let mut seed = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seed" => {
                let value = args.next().ok_or("--seed needs a number")?;
                seed = Some(
                    value
                        .parse()
                        .map_err(|_| format!("--seed: not a number: {value}"))?,
                );
            }
            other => {
                return Err(format!(
                    "unknown argument: {other} (usage: slow_tasks [--seed N])"
                ));
            }
        }
    }
    Ok(seed)
}

fn main() -> ExitCode {
    let seed = match parse_seed() {
        Ok(seed) => seed.unwrap_or_else(rand::random),
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let (layer, recorder) = match FlightRecorder::builder().build() {
        Ok(pair) => pair,
        Err(err) => {
            eprintln!("cannot start the flight recorder: {err}");
            return ExitCode::FAILURE;
        }
    };
    tracing_subscriber::registry().with(layer).init();
    println!("Starting Flight Recorder... (seed {seed}; rerun with --seed {seed})");

    let mut rng = StdRng::seed_from_u64(seed);
    let waits: Vec<u64> = (0..TASKS).map(|_| rng.random_range(0..=500)).collect();
    let (done, results) = mpsc::channel();
    let tasks: Vec<_> = waits
        .iter()
        .enumerate()
        .map(|(index, &wait_ms)| {
            let task = index as u32 + 1;
            println!("Task {task}: waiting {wait_ms}ms");
            let done = done.clone();
            std::thread::Builder::new()
                .name(format!("task-{task}"))
                .spawn(move || {
                    let start = Instant::now();
                    slow_operation(task, wait_ms);
                    let _ = done.send((task, start.elapsed()));
                })
                .expect("spawn a task thread")
        })
        .collect();
    drop(done);

    // Each slow task gets its own dump, taken right after its span closed.
    let mut failures = 0;
    for (task, elapsed) in results {
        if elapsed < THRESHOLD {
            continue;
        }
        println!();
        println!(
            "⚠️  Slow operation detected: {}ms (task {task})",
            elapsed.as_millis()
        );
        match recorder.dump_to_dir(DUMP_DIR, "slow_span_slow_operation") {
            Ok(dump) => println!("📝 Trace saved to: {}", dump.path.display()),
            Err(err) => {
                failures += 1;
                eprintln!("could not save the trace: {err}");
            }
        }
    }
    for task in tasks {
        let _ = task.join();
    }
    println!();
    println!(
        "Open a dump at https://ui.perfetto.dev (Open trace file), or in https://www.speedscope.app"
    );
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
