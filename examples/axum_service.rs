//! A service with its own web stack (axum): instrumented handlers, a route of the app's own
//! router that serves the recorder's snapshot, and a latency middleware that dumps any request
//! slower than 500 ms, with its span (the flight recorder's classic pattern).
//!
//! ```text
//! cargo run --release --example axum_service                  # port 3000
//! cargo run --release --example axum_service -- --port 3001
//! curl http://127.0.0.1:3000/users/7        # fast
//! curl http://127.0.0.1:3000/users/10       # every tenth user is slow: a dump appears
//! curl http://127.0.0.1:3000/debug/trace/snapshot > trace.json
//! ```
//! Runs until interrupted (Ctrl-C). Dumps go to `./blackbox-dumps/`.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::timeout::TimeoutLayer;
use tracing::{Instrument, info, info_span, instrument};
use tracing_blackbox::FlightRecorder;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const SLOW: Duration = Duration::from_millis(500);

/// The latency middleware: each request gets a span; one slower than `SLOW` is dumped once
/// its span has closed, so the dump holds it complete. The dump is written off the async
/// workers, on a blocking thread.
async fn record_slow_requests(
    State(recorder): State<FlightRecorder>,
    request: Request,
    next: Next,
) -> Response {
    let span = info_span!("request", method = %request.method(), path = %request.uri().path());
    let label = format!("slow_request_{}_{}", request.method(), request.uri().path());
    let started = Instant::now();
    let response = next.run(request).instrument(span).await;
    let took = started.elapsed();
    if took > SLOW {
        tokio::task::spawn_blocking(
            move || match recorder.dump_to_dir("blackbox-dumps", &label) {
                Ok(dump) => println!(
                    "slow request ({} ms): trace saved to {}",
                    took.as_millis(),
                    dump.path.display()
                ),
                Err(err) => eprintln!(
                    "slow request ({} ms): trace not saved: {err}",
                    took.as_millis()
                ),
            },
        );
    }
    response
}

#[instrument]
async fn load_user(id: u64) -> String {
    // Every tenth user lives on a slow shard.
    let delay = if id.is_multiple_of(10) { 600 } else { 5 };
    tokio::time::sleep(Duration::from_millis(delay)).await;
    info!(id, delay, "user loaded");
    format!("user {id}\n")
}

async fn user(Path(id): Path<u64>) -> String {
    load_user(id).await
}

/// The app's own snapshot route: `write_to` on a blocking thread.
async fn snapshot(State(recorder): State<FlightRecorder>) -> Response {
    let json = tokio::task::spawn_blocking(move || {
        let mut json = Vec::new();
        recorder.write_to(&mut json).map(|_| json)
    })
    .await;
    match json {
        Ok(Ok(json)) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[tokio::main]
async fn main() {
    let mut port: u16 = 3000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().map(|v| v.parse::<u16>())) {
            ("--port", Some(Ok(value))) => port = value,
            _ => {
                eprintln!("usage: axum_service [--port N]");
                std::process::exit(2);
            }
        }
    }
    let (layer, recorder) = FlightRecorder::builder()
        .build()
        .expect("a valid configuration");
    tracing_subscriber::registry().with(layer).init();

    let app = Router::new()
        .route("/users/{id}", get(user))
        .route("/debug/trace/snapshot", get(snapshot))
        .layer(middleware::from_fn_with_state(
            recorder.clone(),
            record_slow_requests,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(10),
        ))
        .with_state(recorder);
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("cannot listen on 127.0.0.1:{port}: {err}");
            std::process::exit(1);
        }
    };
    println!("Listening on http://127.0.0.1:{port} (Ctrl-C to stop)");
    println!("  curl http://127.0.0.1:{port}/users/10   # slow: leaves a dump");
    println!("  curl http://127.0.0.1:{port}/debug/trace/snapshot > trace.json");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if let Err(err) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        eprintln!("server error: {err}");
    }
}
