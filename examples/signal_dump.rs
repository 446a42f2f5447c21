//! `kill -USR1 <pid>` leaves a dump (reason `signal`) of the last seconds.
//!
//! ```text
//! cargo run --example signal_dump
//! ```
//! Runs until interrupted (Ctrl-C), doing traced work; prints its PID and the exact command
//! that asks it for a dump, and the path of each dump written to `./blackbox-dumps/`.

#[cfg(all(unix, feature = "signal"))]
fn main() {
    use std::time::Duration;

    use tracing::{info, info_span};
    use tracing_blackbox::FlightRecorder;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let (layer, _recorder) = FlightRecorder::builder()
        .dump_on_signal()
        .on_dump(|dump| match &dump.error {
            None => println!("📝 Trace saved to: {}", dump.path.display()),
            Some(err) => eprintln!("could not save the trace: {err}"),
        })
        .build()
        .expect("a valid configuration");
    tracing_subscriber::registry().with(layer).init();

    let pid = std::process::id();
    println!("PID {pid}: working until interrupted (Ctrl-C).");
    println!("Ask for a dump with:  kill -USR1 {pid}");
    let mut job = 0u64;
    loop {
        let _span = info_span!("job", job).entered();
        info!(job, "step one");
        std::thread::sleep(Duration::from_millis(50));
        info!(job, "step two");
        job += 1;
    }
}

#[cfg(not(all(unix, feature = "signal")))]
fn main() {
    eprintln!("signal_dump needs a unix system and the `signal` feature (on by default)");
}
