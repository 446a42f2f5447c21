//! The runtime view on stable tokio (no cfg): workers' busy and parked slices from the park
//! and unpark hooks, and the sampler's counter tracks, on a real two-worker runtime.
#![cfg(feature = "tokio")]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::Value;
use tracing_blackbox::FlightRecorder;
use tracing_blackbox::tokio::{RuntimeSampler, instrument};

fn micros(value: &Value) -> f64 {
    value.as_f64().expect("numeric")
}

/// A two-worker runtime with the recorder's park/unpark hooks and a sampler; with `dispatch`,
/// the workers record into it too.
fn instrumented(
    recorder: &FlightRecorder,
    dispatch: Option<&tracing::Dispatch>,
    interval: Duration,
) -> (tokio::runtime::Runtime, RuntimeSampler) {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_time();
    if let Some(dispatch) = dispatch.cloned() {
        builder.on_thread_start(move || {
            std::mem::forget(tracing::dispatcher::set_default(&dispatch));
        });
    }
    instrument(&mut builder, recorder);
    let runtime = builder.build().unwrap();
    let sampler = RuntimeSampler::start(runtime.handle(), recorder, interval).unwrap();
    (runtime, sampler)
}

/// Runs a small workload on an instrumented two-worker runtime with a sampler, and dumps.
fn run(interval: Duration) -> common::Dump {
    let (layer, recorder) = FlightRecorder::builder()
        .max_bytes(8 << 20)
        .build()
        .unwrap();
    let dispatch = common::dispatch(layer);
    let (runtime, sampler) = instrumented(&recorder, Some(&dispatch), interval);
    {
        let _default = tracing::dispatcher::set_default(&dispatch);
        runtime.block_on(async {
            let tasks: Vec<_> = (0..4u64)
                .map(|n| {
                    tokio::spawn(async move {
                        for step in 0..20u64 {
                            tracing::info!(n, step, "step");
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
    }
    sampler.stop();
    drop(runtime);
    common::dump(&recorder)
}

#[test]
fn workers_show_busy_and_parked_slices_and_their_tasks_run_inside_busy() {
    let dump = run(Duration::from_millis(5));
    let workers: HashSet<u64> = dump
        .phase("M")
        .filter(|m| m["name"] == "thread_name")
        .filter(|m| {
            m["args"]["name"]
                .as_str()
                .unwrap()
                .starts_with("tokio-rt-worker")
        })
        .map(|m| m["tid"].as_u64().unwrap())
        .collect();
    assert_eq!(workers.len(), 2);
    let runtime_slices: Vec<&Value> = dump
        .phase("X")
        .filter(|x| x["cat"] == "tokio::runtime")
        .collect();
    for name in ["busy", "parked"] {
        assert!(
            runtime_slices.iter().any(|x| x["name"] == name),
            "no {name} slice"
        );
    }
    for x in &runtime_slices {
        assert!(workers.contains(&x["tid"].as_u64().unwrap()), "{x}");
    }
    // Per worker, busy and parked alternate and never overlap (the validator checks nesting;
    // two runtime slices never nest in each other).
    for &tid in &workers {
        let mut own: Vec<(f64, f64, &str)> = runtime_slices
            .iter()
            .filter(|x| x["tid"].as_u64() == Some(tid))
            .map(|x| {
                let ts = micros(&x["ts"]);
                (ts, ts + micros(&x["dur"]), x["name"].as_str().unwrap())
            })
            .collect();
        own.sort_by(|a, b| a.0.total_cmp(&b.0));
        for pair in own.windows(2) {
            assert!(pair[0].1 <= pair[1].0 + 0.001, "overlap: {pair:?}");
            assert_ne!(pair[0].2, pair[1].2, "no alternation: {pair:?}");
        }
    }
    // Every step event on a worker happened while it was busy.
    for step in dump.phase("i").filter(|i| i["name"] == "step") {
        let (tid, ts) = (step["tid"].as_u64().unwrap(), micros(&step["ts"]));
        assert!(
            runtime_slices.iter().any(|x| {
                x["name"] == "busy"
                    && x["tid"].as_u64() == Some(tid)
                    && micros(&x["ts"]) <= ts
                    && ts <= micros(&x["ts"]) + micros(&x["dur"])
            }),
            "{step} outside a busy slice"
        );
    }
}

#[test]
fn the_sampler_draws_numeric_counter_tracks() {
    let dump = run(Duration::from_millis(5));
    let mut tracks: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for c in dump.phase("C") {
        tracks
            .entry(c["name"].as_str().unwrap().to_owned())
            .or_default()
            .push(c);
        assert_eq!(c["cat"], "tokio::runtime");
    }
    let names: Vec<&String> = tracks.keys().collect();
    for name in [
        "tokio runtime",
        "tokio worker 0",
        "tokio worker 1",
        "recorder",
    ] {
        let samples = tracks
            .get(name)
            .unwrap_or_else(|| panic!("{name}: {names:?}"));
        assert!(samples.len() >= 5, "{name}: {} samples", samples.len());
    }
    let last = |name: &str, arg: &str| -> f64 {
        let sample = tracks[name].last().unwrap();
        micros(&sample["args"][arg])
    };
    assert_eq!(last("tokio runtime", "workers"), 2.0);
    assert!(tracks["tokio runtime"][0]["args"]["alive_tasks"].is_number());
    assert!(tracks["tokio runtime"][0]["args"]["global_queue_depth"].is_number());
    for worker in ["tokio worker 0", "tokio worker 1"] {
        for sample in &tracks[worker] {
            let ratio = micros(&sample["args"]["busy_ratio"]);
            assert!((0.0..=1.0).contains(&ratio), "{sample}");
            assert!(sample["args"]["park_count"].is_u64());
            assert!(
                sample["args"].get("worker").is_none(),
                "the worker is the name"
            );
        }
    }
    // The metrics that need `tokio_unstable` are there exactly when it is.
    let unstable = tracks["tokio worker 0"][0]["args"]
        .get("local_queue_depth")
        .is_some();
    assert_eq!(unstable, cfg!(tokio_unstable));
    assert_eq!(
        tracks["tokio runtime"][0]["args"]
            .get("blocking_threads")
            .is_some(),
        cfg!(tokio_unstable)
    );
    assert!(last("recorder", "written") > 0.0);
    assert!(last("recorder", "allocated_bytes") > 0.0);
    if cfg!(target_os = "linux") {
        assert!(last("process", "rss_bytes") > 1e6);
        assert!(last("process", "threads") >= 3.0);
    }
    // Timestamps increase per track (the validator checks it per argument too).
    for (name, samples) in &tracks {
        for pair in samples.windows(2) {
            assert!(micros(&pair[0]["ts"]) < micros(&pair[1]["ts"]), "{name}");
        }
    }
    let summary = tracing_blackbox::validate::check(&dump.json).unwrap();
    assert!(summary.counter_tracks >= 4 + 2 * 3, "{summary:?}");
}

#[test]
fn a_too_short_interval_is_a_clear_error_and_a_stopped_sampler_records_nothing_more() {
    let (_layer, recorder) = FlightRecorder::builder().build().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let err =
        RuntimeSampler::start(runtime.handle(), &recorder, Duration::from_micros(10)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("minimum"), "{err}");

    let sampler =
        RuntimeSampler::start(runtime.handle(), &recorder, Duration::from_millis(1)).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    sampler.stop();
    let written = recorder.status().written;
    assert!(written > 0);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(recorder.status().written, written, "stopped means stopped");
}

/// `blackbox summary` and `render` read the runtime view: workers' busy ratio, counter ranges
/// and lanes, task polls with long ones outlined.
#[cfg(feature = "cli")]
#[test]
fn the_cli_summarizes_and_draws_the_runtime_view() {
    let (layer, recorder) = FlightRecorder::builder().build().unwrap();
    let dispatch = common::dispatch(layer);
    let (runtime, sampler) = instrumented(&recorder, None, Duration::from_millis(2));
    runtime.block_on(async {
        let dispatch = dispatch.clone();
        tokio::spawn(async move {
            // A poll shaped like tokio's own task instrumentation (`tokio_unstable`), which
            // blocks its worker for 15 ms.
            tracing::dispatcher::with_default(&dispatch, || {
                let task = tracing::trace_span!(
                    target: "tokio::task",
                    "runtime.spawn",
                    task.name = "slow-task",
                    kind = "task",
                );
                let _poll = task.enter();
                std::thread::sleep(Duration::from_millis(15));
            });
            tokio::time::sleep(Duration::from_millis(10)).await;
        })
        .await
        .unwrap();
    });
    sampler.stop();
    drop(runtime);
    let dir = tempfile::tempdir().unwrap();
    let dump = recorder.dump_to_dir(dir.path(), "view").unwrap().path;

    let blackbox = || assert_cmd::Command::cargo_bin("blackbox").unwrap();
    let output = blackbox().arg("summary").arg(&dump).output().unwrap();
    assert!(output.status.success());
    let summary = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "tokio tasks: 1 polled",
        "longest polls",
        "slow-task",
        "workers (from park/unpark)",
        "counters",
        "tokio worker 0 busy_ratio",
        "tokio runtime alive_tasks",
        "recorder written",
    ] {
        assert!(
            summary.contains(expected),
            "{expected:?} missing:\n{summary}"
        );
    }

    let svg = dir.path().join("view.svg");
    blackbox()
        .arg("render")
        .arg(&dump)
        .arg("-o")
        .arg(&svg)
        .assert()
        .success();
    let svg = std::fs::read_to_string(svg).unwrap();
    assert!(svg.contains("data-counter=\"tokio runtime alive_tasks\""));
    assert!(svg.contains("data-counter=\"tokio worker 1 busy_ratio\""));
    assert!(
        svg.contains("slow-task — ") && svg.contains("(long poll)"),
        "long poll marked"
    );
    assert!(svg.contains("stroke=\"#e08000\""));
}

/// The runtime view's records have callsites of their own: a crash file logs them, so a
/// recovered dump shows the workers' slices and the counters like a live one.
#[cfg(all(feature = "crash", target_os = "linux"))]
#[test]
fn a_crash_file_keeps_the_runtime_view() {
    use tracing_blackbox::recover::{self, RecoverOptions};

    let crash_dir = tempfile::tempdir().unwrap();
    let dumps = tempfile::tempdir().unwrap();
    let (_layer, recorder) = FlightRecorder::builder()
        .crash_safe(crash_dir.path())
        .recover_on_start(false)
        .build()
        .unwrap();
    let (runtime, sampler) = instrumented(&recorder, None, Duration::from_millis(2));
    runtime.block_on(async {
        for _ in 0..10 {
            tokio::spawn(tokio::time::sleep(Duration::from_millis(2)))
                .await
                .unwrap();
        }
    });
    sampler.stop();
    drop(runtime);
    let file = recorder.status().crash_file.unwrap();
    let options = RecoverOptions::new()
        .dump_dir(dumps.path())
        .force(true)
        .keep_file(true);
    let recovered = recover::recover_file(&file, &options).expect("recovery of a live file");
    let dump = common::load(&recovered.dump.path);
    assert!(dump.phase("X").any(|x| x["name"] == "busy"));
    assert!(dump.phase("X").any(|x| x["name"] == "parked"));
    assert!(dump.phase("C").any(|c| c["name"] == "tokio runtime"));
    assert!(dump.phase("C").any(|c| c["name"] == "tokio worker 1"));
    assert!(
        dump.other("warnings")
            .as_array()
            .is_none_or(|w| w.is_empty()),
        "{}",
        dump.other("warnings")
    );
}
