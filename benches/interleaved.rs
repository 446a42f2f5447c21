//! Issue 13's setting: the layers' samples taken in rotating rounds in one process, each
//! layer's right after the others', with our 10 MiB buffer full, the way a service interleaves
//! recording with other work (the caches are the others' when a sample starts), through
//! `with_default`; then the same rows with each layer as the global default, in a process of
//! its own. Medians over the rounds, and the targets.
//!
//! Run: `cargo bench --bench interleaved` (about a minute). Plain `main`, no criterion: the
//! point is the interleaving, which criterion's per-benchmark loops would undo.

mod common;

use std::process::Command;
use std::time::Instant;

use common::setups::{
    POLLS, event_formatted, event_static, instrumented_future, setup, span_lifecycle,
};

/// `lower_bound` reads the clock once per callback and takes the field values, storing
/// nothing: what any recorder that timestamps every record pays at least.
const LAYERS: [&str; 5] = [
    "floor",
    "fmt_sink",
    "flight_recorder",
    "blackbox",
    "lower_bound",
];
/// A workload's name and one operation of it.
type Workload = (&'static str, fn(u64));

const WORKLOADS: [Workload; 4] = [
    ("event", |_| event_static()),
    ("formatted event", event_formatted),
    ("span new+enter+exit+close", span_lifecycle),
    ("future, 10 polls", instrumented_future),
];
const ROUNDS: usize = 15;
const ITERS: u64 = 20_000;
/// Set in the child that measures one layer as the global default.
const GLOBAL: &str = "BLACKBOX_BENCH_GLOBAL";

fn sample(workload: fn(u64), base: u64) -> f64 {
    let start = Instant::now();
    for i in base..base + ITERS {
        workload(i);
    }
    start.elapsed().as_nanos() as f64 / ITERS as f64
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Fills a layer's buffer before measuring, so ours records into a full 10 MiB and evicts.
fn fill(workload_base: &mut u64) {
    for _ in 0..400_000 {
        event_formatted(*workload_base);
        *workload_base += 1;
    }
}

fn main() {
    if let Ok(layer) = std::env::var(GLOBAL) {
        global(&layer);
        return;
    }
    let setups: Vec<_> = LAYERS.iter().map(|name| setup(name)).collect();
    let mut base = 0;
    for setup in &setups {
        tracing::dispatcher::with_default(&setup.dispatch, || fill(&mut base));
    }
    // results[workload][layer] = samples
    let mut results = vec![vec![Vec::new(); LAYERS.len()]; WORKLOADS.len()];
    for round in 0..ROUNDS {
        for (w, (_, workload)) in WORKLOADS.iter().enumerate() {
            for k in 0..LAYERS.len() {
                // Rotate the order, so no layer always follows the same one.
                let l = (k + round) % LAYERS.len();
                let ns = tracing::dispatcher::with_default(&setups[l].dispatch, || {
                    sample(*workload, base)
                });
                base += ITERS;
                results[w][l].push(ns);
            }
        }
    }
    let medians: Vec<Vec<f64>> = results
        .into_iter()
        .map(|per_layer| per_layer.into_iter().map(median).collect())
        .collect();
    println!("Interleaved rounds (with_default), median ns per operation over {ROUNDS} rounds:");
    table(&medians);

    println!("\nEach layer as the global default, in a process of its own:");
    let exe = std::env::current_exe().expect("this bench");
    let mut global_medians = vec![vec![0.0; LAYERS.len()]; WORKLOADS.len()];
    for (l, layer) in LAYERS.iter().enumerate() {
        let output = Command::new(&exe)
            .env(GLOBAL, layer)
            .output()
            .expect("the bench runs itself");
        let text = String::from_utf8_lossy(&output.stdout);
        for line in text.lines() {
            if let Some((w, ns)) = line.split_once(' ')
                && let (Ok(w), Ok(ns)) = (w.parse::<usize>(), ns.parse::<f64>())
            {
                global_medians[w][l] = ns;
            }
        }
    }
    table(&global_medians);
}

/// One layer as the global default: rounds of each workload, medians printed as
/// `<workload index> <ns>` lines for the parent.
fn global(layer: &str) {
    let layer: &'static str = LAYERS
        .iter()
        .find(|name| **name == layer)
        .expect("a known layer");
    let setup = setup(layer);
    tracing::dispatcher::set_global_default(setup.dispatch.clone()).expect("first default");
    let mut base = 0;
    fill(&mut base);
    for (w, (_, workload)) in WORKLOADS.iter().enumerate() {
        let samples = (0..ROUNDS)
            .map(|_| {
                let ns = sample(*workload, base);
                base += ITERS;
                ns
            })
            .collect();
        println!("{w} {}", median(samples));
    }
}

fn table(medians: &[Vec<f64>]) {
    print!("| layer |");
    for (name, _) in WORKLOADS {
        print!(" {name} |");
    }
    println!();
    println!("|---|---|---|---|---|");
    for (l, layer) in LAYERS.iter().enumerate() {
        print!("| {layer} |");
        for row in medians {
            print!(" {:.1} |", row[l]);
        }
        println!();
    }
    let [floor, fmt, tfr, ours, bound] = [0, 1, 2, 3, 4];
    let at = |w: usize, l: usize| medians[w][l];
    let future = format!("future, {POLLS} polls ≤ 2× the floor");
    let targets = [
        (
            "event ≤ 1/8 of tracing-flight-recorder",
            at(0, ours) * 8.0 <= at(0, tfr),
            at(0, tfr) / at(0, ours),
        ),
        (
            "event ≤ 1/12 of fmt",
            at(0, ours) * 12.0 <= at(0, fmt),
            at(0, fmt) / at(0, ours),
        ),
        (
            "formatted event ≤ 1/8 of tracing-flight-recorder",
            at(1, ours) * 8.0 <= at(1, tfr),
            at(1, tfr) / at(1, ours),
        ),
        (
            "span lifecycle ≤ 2× the floor",
            at(2, ours) <= 2.0 * at(2, floor),
            at(2, ours) / at(2, floor),
        ),
        (
            "span lifecycle ≤ 0.6× tracing-flight-recorder",
            at(2, ours) <= 0.6 * at(2, tfr),
            at(2, ours) / at(2, tfr),
        ),
        (
            future.as_str(),
            at(3, ours) <= 2.0 * at(3, floor),
            at(3, ours) / at(3, floor),
        ),
    ];
    for (target, met, ratio) in targets {
        println!(
            "  {target}: {} (ratio {ratio:.2})",
            if met { "met" } else { "MISSED" }
        );
    }
    println!(
        "  lower bound (a clock read per callback, fields taken, nothing stored): event {:.2}× \
         tracing-flight-recorder's 1/8, span lifecycle {:.2}× and future {:.2}× the floor",
        at(0, bound) * 8.0 / at(0, tfr),
        at(2, bound) / at(2, floor),
        at(3, bound) / at(3, floor),
    );
}
