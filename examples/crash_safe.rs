//! A process that dies with no chance to dump (here `abort`, as `panic = "abort"`, a segfault
//! in a C library, a SIGKILL or the OOM killer would) still leaves its last records: the
//! crash-safe recorder keeps them in a shared-memory file, and the next run turns that file
//! into a dump on start.
//!
//! ```text
//! cargo run --example crash_safe --features crash
//! ```
//! The example first starts a copy of itself that serves requests and aborts while handling
//! request 7, leaving `/dev/shm/blackbox-crash_safe-<pid>-<start>.shm`. Then it starts its
//! own crash-safe recorder, as the next run of a service would: that recorder finds the file
//! of the dead process, writes `./blackbox-dumps/crash_<time>_<n>.json` (reason `crash`: the
//! requests up to the one in flight when the process died) and removes the file.
//! `blackbox recover` does the same by hand: `blackbox recover /dev/shm`.

#[cfg(feature = "crash")]
fn main() -> std::process::ExitCode {
    use std::process::{Command, ExitCode};
    use std::time::{Duration, Instant};

    use tracing::{info, info_span, warn};
    use tracing_blackbox::{DumpOutcome, FlightRecorder};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let crash_dir = std::env::var_os("CRASH_DIR")
        .map_or_else(tracing_blackbox::recover::default_crash_dir, Into::into);
    let serving = std::env::args().nth(1).as_deref() == Some("--serve");
    if !serving {
        // Run 1: a copy of this program that crashes.
        let status = Command::new(std::env::current_exe().expect("this program"))
            .arg("--serve")
            .status()
            .expect("run 1 starts");
        println!("run 1 ended: {status}");
    }

    let (done_tx, done_rx) = std::sync::mpsc::channel::<DumpOutcome>();
    let (layer, _recorder) = FlightRecorder::builder()
        .crash_safe(&crash_dir)
        // Run 1 is the one that crashes; run 2 recovers what it left.
        .recover_on_start(!serving)
        .on_dump(move |outcome| {
            let _ = done_tx.send(outcome.clone());
        })
        .build()
        .expect("a crash file in the crash directory");
    tracing_subscriber::registry().with(layer).init();

    if serving {
        for request in 1..=10u64 {
            let span = info_span!("request", request);
            let _entered = span.enter();
            info!(request, "handling");
            std::thread::sleep(Duration::from_millis(10));
            if request == 7 {
                warn!(request, "a C library corrupts the heap");
                eprintln!("run 1: aborting while handling request 7");
                std::process::abort();
            }
            info!(request, "done");
        }
        return ExitCode::SUCCESS;
    }

    // Run 2: the recorder recovers run 1's file in the background on start.
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match done_rx.recv_timeout(left) {
            Ok(outcome) if outcome.reason == "crash" => match outcome.error {
                None => {
                    println!("run 2: the crash's dump is {}", outcome.path.display());
                    return ExitCode::SUCCESS;
                }
                Some(error) => {
                    eprintln!("run 2: recovery failed: {error}");
                    return ExitCode::FAILURE;
                }
            },
            Ok(_) => {}
            Err(_) => break,
        }
    }
    eprintln!("run 2: no crash file found in {}", crash_dir.display());
    ExitCode::FAILURE
}

#[cfg(not(feature = "crash"))]
fn main() {
    eprintln!(
        "this example needs the `crash` feature: cargo run --example crash_safe --features crash"
    );
}
