//! A worker with the snapshot endpoint: `curl` it for the last seconds of its traces.
//!
//! ```text
//! cargo run --example http_snapshot --features http            # port 6060
//! cargo run --example http_snapshot --features http -- --port 7070
//! curl http://127.0.0.1:6060/debug/trace/snapshot > trace.json
//! curl http://127.0.0.1:6060/debug/trace/status
//! blackbox open trace.json     # or drop it on ui.perfetto.dev
//! ```
//! Runs until interrupted (Ctrl-C).

#[cfg(feature = "http")]
fn main() -> std::process::ExitCode {
    use std::process::ExitCode;
    use std::time::Duration;

    use tracing::{debug, info, info_span};
    use tracing_blackbox::FlightRecorder;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let mut port: u16 = 6060;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().map(|v| v.parse::<u16>())) {
            ("--port", Some(Ok(value))) => port = value,
            _ => {
                eprintln!("usage: http_snapshot [--port N]");
                return ExitCode::from(2);
            }
        }
    }
    let (layer, recorder) = FlightRecorder::builder()
        .build()
        .expect("a valid configuration");
    tracing_subscriber::registry().with(layer).init();
    let server = match recorder.serve_http(&format!("127.0.0.1:{port}")) {
        Ok(server) => server,
        Err(err) => {
            eprintln!("cannot serve snapshots: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "Serving snapshots on {} (Ctrl-C to stop). Take one with:",
        server.url()
    );
    println!("  curl {} > trace.json", server.url());
    println!("  curl -o trace.json.gz '{}?gzip=1'", server.url());
    println!("and see the recorder's state with:");
    println!("  curl {}", server.status_url());

    let mut job = 0u64;
    loop {
        let _span = info_span!("job", job).entered();
        for step in 0..3u64 {
            let _step = info_span!("step", step).entered();
            debug!(job, step, "working");
            std::thread::sleep(Duration::from_millis(10 + 10 * step));
        }
        info!(job, "job done");
        job += 1;
    }
}

#[cfg(not(feature = "http"))]
fn main() {
    eprintln!(
        "http_snapshot needs the `http` feature: cargo run --example http_snapshot --features http"
    );
}
