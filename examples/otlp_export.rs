//! The seed's exercise, shipped to a tracing backend: five tasks each wait a random 0–500 ms;
//! every task that takes 300 ms or more sends the window around it to an OTLP receiver (an
//! OpenTelemetry Collector, Jaeger, Tempo…) as spans, and writes its dump file as usual.
//!
//! ```text
//! # a receiver: Jaeger's all-in-one takes OTLP/HTTP on 4318 and shows traces on 16686
//! docker run --rm -p 4318:4318 -p 16686:16686 jaegertracing/all-in-one
//! cargo run --release --example otlp_export --features otlp
//! cargo run --release --example otlp_export --features otlp -- --endpoint http://collector:4318 --seed 7
//! ```
//! Without `--endpoint`, `OTEL_EXPORTER_OTLP_ENDPOINT` is used, else `http://127.0.0.1:4318`.

#[cfg(feature = "otlp")]
fn main() -> std::process::ExitCode {
    use std::process::ExitCode;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use tracing::{info, info_span};
    use tracing_blackbox::{Destination, FlightRecorder, OtlpConfig};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let mut endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:4318".to_owned());
    let mut seed: u64 = rand::random();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        match (arg.as_str(), value) {
            ("--endpoint", Some(value)) => endpoint = value,
            ("--seed", Some(value)) if value.parse::<u64>().is_ok() => {
                seed = value.parse().unwrap_or(0);
            }
            _ => {
                eprintln!("usage: otlp_export [--endpoint URL] [--seed N]");
                return ExitCode::from(2);
            }
        }
    }

    let failures = Arc::new(AtomicUsize::new(0));
    let built = FlightRecorder::builder()
        .slow_span_threshold("slow_operation", Duration::from_millis(300))
        .cooldown(Duration::ZERO)
        .export_otlp(
            OtlpConfig::new(&endpoint)
                .service_name("slow_tasks")
                .max_attempts(2)
                .timeout(Duration::from_secs(5)),
        )
        .on_dump({
            let failures = Arc::clone(&failures);
            move |dump| match (&dump.error, dump.destination) {
                (None, Destination::Otlp) => println!(
                    "📤 Window sent to {} ({} bytes)",
                    dump.path.display(),
                    dump.bytes
                ),
                (None, _) => println!("📝 Trace saved to: {}", dump.path.display()),
                (Some(err), _) => {
                    failures.fetch_add(1, Ordering::Relaxed);
                    eprintln!("❌ {err}");
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
    println!("Exporting slow tasks' windows to {endpoint} (seed {seed})");

    let mut rng = StdRng::seed_from_u64(seed);
    let tasks: Vec<_> = (1..=5u32)
        .map(|task| {
            let wait_ms: u64 = rng.random_range(0..=500);
            println!("Task {task}: waiting {wait_ms}ms");
            std::thread::Builder::new()
                .name(format!("task-{task}"))
                .spawn(move || {
                    let _span = info_span!("slow_operation", task, wait_ms).entered();
                    info_span!("prepare", task).in_scope(|| info!(task, "loading input"));
                    info_span!("wait", wait_ms).in_scope(|| {
                        std::thread::sleep(Duration::from_millis(wait_ms));
                    });
                    info!(task, "done");
                })
                .expect("spawn a task thread")
        })
        .collect();
    for task in tasks {
        let _ = task.join();
    }
    // Files are written and windows sent in the background: wait for both.
    recorder.flush();
    println!("Find the slow_operation traces of service `slow_tasks` in your backend.");
    if failures.load(Ordering::Relaxed) == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(not(feature = "otlp"))]
fn main() {
    eprintln!(
        "this example needs the `otlp` feature: cargo run --example otlp_export --features otlp"
    );
}
