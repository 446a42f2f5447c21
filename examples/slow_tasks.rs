//! The seed's exercise: five tasks each wait a random 0–500 ms; every task that takes 300 ms or
//! more gets its own dump of the recent past in `./blackbox-dumps/`.
//!
//! The recorder's built-in latency trigger does the work: when a `slow_operation` span closes
//! more than 300 ms after it began, the snapshot is taken right then and a background thread
//! writes it. The cooldown is off, so every slow task gets its own dump.
//!
//! ```text
//! cargo run --release --example slow_tasks            # a random run (prints its seed)
//! cargo run --release --example slow_tasks -- --seed 7 # the same run again
//! ```
//! Open a dump at <https://ui.perfetto.dev> ("Open trace file").

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tracing::{debug, info, info_span, instrument};
use tracing_blackbox::FlightRecorder;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const TASKS: u32 = 5;
const THRESHOLD: Duration = Duration::from_millis(300);

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
    let failures = Arc::new(AtomicUsize::new(0));
    let built = FlightRecorder::builder()
        .slow_span_threshold("slow_operation", THRESHOLD)
        .cooldown(Duration::ZERO)
        .on_dump({
            let failures = Arc::clone(&failures);
            move |dump| {
                if let Some(slow) = &dump.slow_span {
                    println!();
                    println!(
                        "⚠️  Slow operation detected: {}ms",
                        slow.duration.as_millis()
                    );
                }
                match &dump.error {
                    None => println!("📝 Trace saved to: {}", dump.path.display()),
                    Some(err) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        eprintln!("could not save the trace: {err}");
                    }
                }
            }
        })
        .build();
    let (layer, recorder) = match built {
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
    let tasks: Vec<_> = waits
        .iter()
        .enumerate()
        .map(|(index, &wait_ms)| {
            let task = index as u32 + 1;
            println!("Task {task}: waiting {wait_ms}ms");
            std::thread::Builder::new()
                .name(format!("task-{task}"))
                .spawn(move || slow_operation(task, wait_ms))
                .expect("spawn a task thread")
        })
        .collect();
    for task in tasks {
        let _ = task.join();
    }
    // Dumps are written in the background: wait for them before exiting.
    recorder.flush();
    println!();
    println!(
        "Open a dump at https://ui.perfetto.dev (Open trace file), or in https://www.speedscope.app"
    );
    if failures.load(Ordering::Relaxed) == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
