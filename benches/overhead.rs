//! Per-operation cost of recording, ours beside the peers, in one run.
//!
//! Layers, each alone on a `Registry`:
//! - `floor`: a no-op layer (what `tracing` itself costs);
//! - `lower_bound`: reads the clock once per callback (event, span new, enter, exit, close) and
//!   takes every field value (formatting the message), and stores nothing: what any recorder
//!   that timestamps every record must pay at least;
//! - `fmt_sink`: `tracing_subscriber::fmt::layer()` writing to `io::sink`;
//! - `chrome_sink`: `tracing-chrome` writing to `io::sink`, `include_args(true)`, measured on
//!   the emitting thread (its writer thread works on the side);
//! - `flight_recorder`: `tracing-flight-recorder` 0.3, capacity 1000;
//! - `blackbox`: ours, default settings;
//! - `blackbox_threshold`: ours with `dump_on_slow_span(1 h)`, so every span is timed;
//! - `blackbox_off`: ours built with `enabled(false)`, as `BLACKBOX=0` does;
//! - `blackbox_no_redaction`: ours with an empty redaction list (the default list checks every
//!   field name; none of the benchmark's fields is redacted).
//!
//! Run: `cargo bench --bench overhead`; summarize: `python3 benches/summarize.py`.

mod common;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

use common::setups::{
    SETUPS, VARIANTS, event_formatted, event_static, instrumented_future, setup, span_lifecycle,
};

fn overhead(c: &mut Criterion) {
    for (group_name, workload) in [
        ("event_static", 0),
        ("event_formatted", 1),
        ("span_lifecycle", 2),
    ] {
        let mut group = c.benchmark_group(group_name);
        for name in SETUPS.iter().chain(VARIANTS).copied() {
            let setup = setup(name);
            tracing::dispatcher::with_default(&setup.dispatch, || {
                group.bench_function(setup.name, |b| {
                    let mut i = 0u64;
                    b.iter(|| {
                        i += 1;
                        match workload {
                            0 => event_static(),
                            1 => event_formatted(i),
                            _ => span_lifecycle(i),
                        }
                    })
                });
            });
        }
        group.finish();
    }

    // An instrumented future polled 10 times: span new, 10 enter/exit pairs, close.
    let mut group = c.benchmark_group("async_future");
    for name in ["floor", "chrome_sink", "blackbox"] {
        let setup = setup(name);
        tracing::dispatcher::with_default(&setup.dispatch, || {
            group.bench_function(setup.name, |b| {
                let mut i = 0u64;
                b.iter(|| {
                    i += 1;
                    instrumented_future(i);
                })
            });
        });
    }
    group.finish();

    // Throughput per thread: the time one event takes when 1 or 2 threads record at once.
    // Scaling = 2 × t(1) / t(2); perfect is 2.
    let mut group = c.benchmark_group("threads");
    for name in SETUPS {
        let setup = setup(name);
        for threads in [1usize, 2] {
            group.bench_function(format!("{}/{threads}", setup.name), |b| {
                b.iter_custom(|iters| {
                    common::on_threads(&setup.dispatch, threads, iters, |_| event_static())
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40);
    targets = overhead
}
criterion_main!(benches);
