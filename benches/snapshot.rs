//! Snapshot and dump costs on a full default (10 MiB) buffer:
//! - the stall a recording thread sees while another thread snapshots and dumps (p50/p99/max
//!   of one `info!` call, with and without dumps running);
//! - dump encoding throughput to `io::sink` (gzip off);
//! - with `--features otlp`: the same window exported as OTLP (protobuf, plain and gzipped) to
//!   a local receiver that accepts everything (axum): time and bytes, against the JSON dump.
//!
//! Run: `cargo bench --bench snapshot [--features otlp]`. Plain `main`, no criterion: the
//! stall is a latency distribution, not a mean.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tracing::{Dispatch, info, info_span};
use tracing_blackbox::FlightRecorder;
use tracing_subscriber::layer::SubscriberExt;

fn fill(recorder: &FlightRecorder, dispatch: &Dispatch) {
    tracing::dispatcher::with_default(dispatch, || {
        let mut i = 0u64;
        while recorder.snapshot().counters.overwritten == 0 {
            for _ in 0..10_000 {
                let _span = info_span!("request", id = i, path = "/api/items").entered();
                info!(i, user = "someone", ok = true, "handled request {}", i);
                i += 1;
            }
        }
    });
}

/// Per-call latencies of `info!` on this thread until `stop` is set (or 32 Mi calls).
fn record_until(dispatch: &Dispatch, stop: &AtomicBool) -> Vec<u32> {
    let mut latencies: Vec<u32> = Vec::with_capacity(32 << 20);
    tracing::dispatcher::with_default(dispatch, || {
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) && latencies.len() < latencies.capacity() {
            let start = Instant::now();
            info!(i, ok = true, "recording while dumping");
            latencies.push(u32::try_from(start.elapsed().as_nanos()).unwrap_or(u32::MAX));
            i += 1;
        }
    });
    latencies
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(label: &str, mut latencies: Vec<u32>) -> u32 {
    latencies.sort_unstable();
    let p99 = percentile(&latencies, 0.99);
    println!(
        "{label:<28} calls {:>9}  p50 {:>6} ns  p99 {:>6} ns  p99.9 {:>7} ns  max {:>9} ns",
        latencies.len(),
        percentile(&latencies, 0.5),
        p99,
        percentile(&latencies, 0.999),
        latencies.last().copied().unwrap_or(0)
    );
    p99
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing we need.
    let (layer, recorder) = FlightRecorder::builder().build().expect("defaults");
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    fill(&recorder, &dispatch);
    let allocated = recorder.allocated_bytes();
    println!(
        "buffer: {:.1} MiB allocated of 10 MiB",
        allocated as f64 / (1 << 20) as f64
    );

    // Baseline: recording alone for a second.
    let stop = AtomicBool::new(false);
    let baseline = std::thread::scope(|scope| {
        let worker = scope.spawn(|| record_until(&dispatch, &stop));
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        worker.join().expect("worker")
    });
    report("recording alone", baseline);

    // Recording while another thread dumps the full buffer ten times in a row.
    stop.store(false, Ordering::Relaxed);
    let (during, dumps) = std::thread::scope(|scope| {
        let worker = scope.spawn(|| record_until(&dispatch, &stop));
        let mut dumps = 0;
        while dumps < 10 && !worker.is_finished() {
            recorder.write_to(io::sink()).expect("dump to sink");
            dumps += 1;
        }
        stop.store(true, Ordering::Relaxed);
        (worker.join().expect("worker"), dumps)
    });
    let p99 = report(&format!("recording during {dumps} dumps"), during);
    println!(
        "stall target: p99 < 1 ms while a full buffer is dumped: {}",
        if p99 < 1_000_000 { "met" } else { "MISSED" }
    );

    // Encoding throughput, and the snapshot alone.
    let mut rates = Vec::new();
    let mut snapshot_times = Vec::new();
    let mut bytes = 0;
    for _ in 0..10 {
        let start = Instant::now();
        let snapshot = recorder.snapshot();
        snapshot_times.push(start.elapsed());
        drop(snapshot);
        let start = Instant::now();
        bytes = recorder.write_to(io::sink()).expect("dump to sink");
        rates.push(bytes as f64 / start.elapsed().as_secs_f64() / 1e6);
    }
    rates.sort_by(f64::total_cmp);
    snapshot_times.sort();
    println!(
        "dump of a full buffer: {:.1} MB of JSON; snapshot (copy + decode) median {:.1} ms; \
         write_to(io::sink) median {:.0} MB/s (min {:.0}, max {:.0}); target >= 100 MB/s: {}",
        bytes as f64 / 1e6,
        snapshot_times[5].as_secs_f64() * 1e3,
        rates[5],
        rates[0],
        rates[9],
        if rates[5] >= 100.0 { "met" } else { "MISSED" }
    );
    #[cfg(feature = "otlp")]
    otlp_export();
}

/// The full window as OTLP, ten times each plain and gzipped, to a receiver that answers 200
/// to anything: median time of `export_otlp_now` (snapshot, decode, map, encode, send) and the
/// request's size, against the JSON dump's.
#[cfg(feature = "otlp")]
fn otlp_export() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = listener.local_addr().expect("its address");
    listener.set_nonblocking(true).expect("non-blocking");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let app = axum::Router::new()
                .route(
                    "/v1/traces",
                    axum::routing::post(|body: axum::body::Bytes| async move { drop(body) }),
                )
                .layer(axum::extract::DefaultBodyLimit::max(1 << 30));
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    for gzip in [false, true] {
        let (layer, recorder) = FlightRecorder::builder()
            .export_otlp(tracing_blackbox::OtlpConfig::new(format!("http://{addr}")).gzip(gzip))
            .build()
            .expect("valid");
        fill(
            &recorder,
            &Dispatch::new(tracing_subscriber::registry().with(layer)),
        );
        let json_bytes = recorder.write_to(io::sink()).expect("dump to sink");
        let mut times = Vec::new();
        let mut sent = None;
        for _ in 0..10 {
            let start = Instant::now();
            sent = Some(
                recorder
                    .export_otlp_now("bench")
                    .expect("the sink takes it"),
            );
            times.push(start.elapsed());
        }
        times.sort();
        let sent = sent.expect("ten exports");
        println!(
            "OTLP export of the full window{}: {} spans, {:.1} MB ({:.2}× the JSON dump's {:.1} MB); \
             export_otlp_now median {:.0} ms (min {:.0}, max {:.0})",
            if gzip { ", gzipped" } else { "" },
            sent.spans,
            sent.bytes as f64 / 1e6,
            sent.bytes as f64 / json_bytes as f64,
            json_bytes as f64 / 1e6,
            times[5].as_secs_f64() * 1e3,
            times[0].as_secs_f64() * 1e3,
            times[9].as_secs_f64() * 1e3,
        );
    }
}
