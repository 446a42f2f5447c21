//! Issue 16's rows: what the runtime view costs.
//!
//! 1. A recorded poll: enter + exit of a span shaped like tokio's `runtime.spawn` (target
//!    `tokio::task`), against the floor (a `Registry` with a no-op layer), with the recorder
//!    as it is by default and with the long-poll trigger on (the task table); and a worker's
//!    park + unpark pair (`RuntimeHooks`).
//! 2. The sampler on an idle two-worker runtime: its thread's CPU time per sample (from
//!    `/proc/self/task/<tid>/`), and the share of one core that is at 10 ms.
//! 3. A tokio echo-style workload (loopback TCP, 32 clients, one span and one event per
//!    request): round trips per second with no layer beyond a no-op one, with the recorder,
//!    and with the recorder, the park/unpark hooks and the sampler.
//!
//! Run: `cargo bench --bench runtime --features tokio` (about a minute). Plain `main`, rounds
//! that alternate the setups, medians: this machine is shared and noisy.

use std::hint::black_box;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{Dispatch, Instrument, Subscriber};
use tracing_blackbox::FlightRecorder;
use tracing_blackbox::tokio::{RuntimeHooks, RuntimeSampler, instrument};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;

struct Noop;

impl<S: Subscriber> Layer<S> for Noop {}

const ROUNDS: usize = 9;
const ECHO_ROUNDS: usize = 9;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn recorder(long_poll: bool) -> (Dispatch, FlightRecorder) {
    let builder = FlightRecorder::builder();
    let builder = if long_poll {
        builder.dump_on_long_poll(Duration::from_secs(3600))
    } else {
        builder
    };
    let (layer, recorder) = builder.build().expect("valid");
    (
        Dispatch::new(tracing_subscriber::registry().with(layer)),
        recorder,
    )
}

/// ns per enter + exit of a tokio-shaped task span.
fn poll_cost(dispatch: &Dispatch) -> f64 {
    const POLLS: u32 = 200_000;
    tracing::dispatcher::with_default(dispatch, || {
        let span = tracing::trace_span!(
            target: "tokio::task",
            parent: None,
            "runtime.spawn",
            kind = "task",
            task.name = "bench",
            task.id = 1u64,
        );
        let start = Instant::now();
        for _ in 0..POLLS {
            let entered = span.enter();
            drop(black_box(entered));
        }
        start.elapsed().as_nanos() as f64 / f64::from(POLLS)
    })
}

fn polls() {
    let floor = Dispatch::new(tracing_subscriber::registry().with(Noop));
    let (ours, _keep) = recorder(false);
    let (watched, _keep_watched) = recorder(true);
    let hooks = RuntimeHooks::new(&_keep);
    let mut rows: [Vec<f64>; 4] = Default::default();
    for _ in 0..ROUNDS {
        rows[0].push(poll_cost(&floor));
        rows[1].push(poll_cost(&ours));
        rows[2].push(poll_cost(&watched));
        let start = Instant::now();
        for _ in 0..200_000 {
            hooks.on_park();
            hooks.on_unpark();
        }
        rows[3].push(start.elapsed().as_nanos() as f64 / 200_000.0);
    }
    let floor = median(rows[0].clone());
    println!("recorded poll (enter+exit of runtime.spawn), median of {ROUNDS} rounds:");
    for (name, row) in [
        "floor (Registry + no-op layer)",
        "blackbox",
        "blackbox + dump_on_long_poll",
        "park + unpark (RuntimeHooks)",
    ]
    .iter()
    .zip(rows)
    {
        let ns = median(row);
        println!("  {name:<32} {ns:>8.1} ns  {:>5.2}× floor", ns / floor);
    }
}

/// The sampler thread's time on CPU, ns: `schedstat`'s first field where the kernel keeps
/// it, else user + system ticks from `stat` (10 ms resolution).
fn sampler_cpu_ns() -> Option<u64> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        // `comm` keeps 15 bytes of the name.
        if !"blackbox-sampler".starts_with(comm.trim()) || comm.trim().len() < 8 {
            continue;
        }
        if let Some(ns) = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
        {
            return Some(ns);
        }
        let stat = std::fs::read_to_string(path.join("stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 1..];
        let field = |n: usize| rest.split_whitespace().nth(n - 3)?.parse::<u64>().ok();
        // USER_HZ is 100 on Linux.
        return Some((field(14)? + field(15)?) * 10_000_000);
    }
    None
}

/// The sampler's cost: run at 1 ms for 5 s on an idle two-worker runtime (5,000 samples, so
/// even 10 ms ticks resolve 2 µs a sample), then the share of one core that cost is at 10 ms.
fn sampler() {
    const RUN: Duration = Duration::from_secs(5);
    let (_dispatch, recorder) = recorder(false);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let interval = Duration::from_millis(1);
    let sampler = RuntimeSampler::start(runtime.handle(), &recorder, interval).expect("sampler");
    std::thread::sleep(Duration::from_millis(100));
    let Some(before) = sampler_cpu_ns() else {
        println!("sampler: no /proc/self/task here");
        return;
    };
    let start = Instant::now();
    std::thread::sleep(RUN);
    let after = sampler_cpu_ns().unwrap_or(before);
    let elapsed = start.elapsed();
    sampler.stop();
    let samples = elapsed.as_secs_f64() / interval.as_secs_f64();
    let per_sample_ns = (after - before) as f64 / samples;
    println!(
        "sampler, 2 workers: {:.1} µs a sample: {:.3} % of one core at 10 ms ({:.2} % at 1 ms)",
        per_sample_ns / 1000.0,
        per_sample_ns / 10_000_000.0 * 100.0,
        (after - before) as f64 / elapsed.as_nanos() as f64 * 100.0,
    );
}

/// Round trips per second of an echo server and 32 clients on loopback.
fn echo(dispatch: &Dispatch, recorder: Option<&FlightRecorder>) -> f64 {
    const CLIENTS: usize = 32;
    const RUN: Duration = Duration::from_millis(1500);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all();
    let worker_dispatch = dispatch.clone();
    builder.on_thread_start(move || {
        std::mem::forget(tracing::dispatcher::set_default(&worker_dispatch));
    });
    if let Some(recorder) = recorder {
        instrument(&mut builder, recorder);
    }
    let runtime = builder.build().unwrap();
    let sampler = recorder.map(|recorder| {
        RuntimeSampler::start(runtime.handle(), recorder, Duration::from_millis(10)).unwrap()
    });
    let trips = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0u8; 64];
                    let mut request = 0u64;
                    while socket.read_exact(&mut buffer).await.is_ok() {
                        request += 1;
                        async {
                            tracing::info!(bytes = buffer.len(), "echo");
                            socket.write_all(&buffer).await
                        }
                        .instrument(tracing::info_span!("request", request))
                        .await
                        .ok();
                    }
                });
            }
        });
        let deadline = Instant::now() + RUN;
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                tokio::spawn(async move {
                    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
                    socket.set_nodelay(true).unwrap();
                    let mut buffer = [7u8; 64];
                    let mut trips = 0u64;
                    while Instant::now() < deadline {
                        socket.write_all(&buffer).await.unwrap();
                        socket.read_exact(&mut buffer).await.unwrap();
                        trips += 1;
                    }
                    trips
                })
            })
            .collect();
        let mut trips = 0;
        for client in clients {
            trips += client.await.unwrap();
        }
        trips
    });
    drop(sampler);
    runtime.shutdown_timeout(Duration::from_secs(1));
    trips as f64 / RUN.as_secs_f64()
}

fn echo_rows() {
    let floor = Dispatch::new(tracing_subscriber::registry().with(Noop));
    let mut rows: [Vec<f64>; 3] = Default::default();
    for _ in 0..ECHO_ROUNDS {
        rows[0].push(echo(&floor, None));
        let (ours, keep) = recorder(false);
        rows[1].push(echo(&ours, None));
        drop(keep);
        let (ours, keep) = recorder(false);
        rows[2].push(echo(&ours, Some(&keep)));
    }
    let base = median(rows[0].clone());
    println!(
        "tokio echo (loopback, 32 clients, 2 workers), round trips/s, median of {ECHO_ROUNDS}:"
    );
    for (name, mut row) in ["no-op layer", "blackbox", "blackbox + hooks + sampler"]
        .iter()
        .zip(rows)
    {
        row.sort_by(f64::total_cmp);
        let rate = median(row.clone());
        let (low, high) = (row[row.len() / 4], row[row.len() * 3 / 4]);
        println!(
            "  {name:<28} {rate:>10.0}  {:>+6.1} %   (middle half {low:.0}–{high:.0})",
            (rate / base - 1.0) * 100.0
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument picks one part.
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wants = |part: &str| only.as_deref().is_none_or(|o| part.contains(o));
    if wants("polls") {
        polls();
    }
    if wants("sampler") {
        sampler();
    }
    if wants("echo") {
        echo_rows();
    }
}
