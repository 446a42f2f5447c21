//! tokio's own task instrumentation on the dump's timeline, on a real multi-thread runtime:
//! polls named after their task on the worker that ran them, wake arrows, scheduled delay, and
//! the long-poll and scheduled-delay triggers.
//!
//! Needs tokio's instrumentation, so it runs only when built with `--cfg tokio_unstable` (a
//! second `cargo test` in `.ci/run`, with its own target directory).
#![cfg(all(feature = "tokio", tokio_unstable))]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tracing_blackbox::{DumpOutcome, FlightRecorder, FlightRecorderLayer};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

/// The recorder's layer with its per-layer filter: the test's events and tokio's task records.
fn dispatch(layer: FlightRecorderLayer) -> tracing::Dispatch {
    let filter = tracing_blackbox::tokio::task_filter(LevelFilter::INFO);
    tracing::Dispatch::new(tracing_subscriber::registry().with(layer.with_filter(filter)))
}

/// Two workers, each with the test's subscriber as its default for its whole life (waker
/// events are emitted on whichever thread wakes).
fn runtime(dispatch: &tracing::Dispatch) -> tokio::runtime::Runtime {
    let dispatch = dispatch.clone();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .on_thread_start(move || {
            std::mem::forget(tracing::dispatcher::set_default(&dispatch));
        })
        .build()
        .unwrap()
}

#[track_caller]
fn spawn_named<F>(name: &str, future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::task::Builder::new()
        .name(name)
        .spawn(future)
        .expect("spawn")
}

fn micros(value: &Value) -> f64 {
    value.as_f64().expect("numeric")
}

/// The task slices, by task name: (tid, start µs, end µs, slice).
fn polls<'a>(dump: &'a common::Dump, name: &'a str) -> Vec<(u64, f64, f64, &'a Value)> {
    dump.slices_named(name)
        .into_iter()
        .map(|x| {
            let ts = micros(&x["ts"]);
            (x["tid"].as_u64().unwrap(), ts, ts + micros(&x["dur"]), x)
        })
        .collect()
}

fn worker_tids(dump: &common::Dump) -> HashSet<u64> {
    dump.phase("M")
        .filter(|m| m["name"] == "thread_name")
        .filter(|m| {
            m["args"]["name"].as_str().is_some_and(|n| {
                n.starts_with("tokio-rt-worker") || n.starts_with("tokio-runtime-worker")
            })
        })
        .map(|m| m["tid"].as_u64().unwrap())
        .collect()
}

#[test]
fn polls_are_slices_named_after_their_task_on_the_worker_that_ran_them() {
    let (layer, recorder) = FlightRecorder::builder()
        .max_bytes(8 << 20)
        .build()
        .unwrap();
    let dispatch = dispatch(layer);
    let rt = runtime(&dispatch);
    let _default = tracing::dispatcher::set_default(&dispatch);
    rt.block_on(async {
        let tasks: Vec<_> = (0..5)
            .map(|n| {
                spawn_named(&format!("worker-{n}"), async move {
                    for step in 0..20u32 {
                        tracing::info!(task = n, step, "step");
                        if step % 2 == 0 {
                            tokio::task::yield_now().await;
                        } else {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    drop(rt);
    let dump = common::dump(&recorder);
    let workers = worker_tids(&dump);
    let names: Vec<&Value> = dump.phase("M").map(|m| &m["args"]["name"]).collect();
    assert_eq!(workers.len(), 2, "two named worker threads: {names:?}");

    let mut ids = HashSet::new();
    for n in 0..5 {
        let name = format!("worker-{n}");
        let polls = polls(&dump, &name);
        // 20 steps, each ends in an await: at least 21 polls.
        assert!(polls.len() >= 21, "{name}: {} polls", polls.len());
        let task_id = polls[0].3["args"]["fields"]["task.id"]
            .as_u64()
            .unwrap_or_else(|| panic!("task.id: {}", polls[0].3));
        assert!(ids.insert(task_id), "task ids are distinct");
        for (tid, _, _, x) in &polls {
            assert!(workers.contains(tid), "{name} polled off the workers: {x}");
            assert_eq!(x["args"]["fields"]["task.id"].as_u64(), Some(task_id));
            assert_eq!(x["cat"], "tokio::task");
        }
        // Each step's event lies inside one of the task's polls, on the same thread.
        let steps: Vec<&Value> = dump
            .phase("i")
            .filter(|i| i["args"]["fields"]["task"] == n && i["name"] == "step")
            .collect();
        assert_eq!(steps.len(), 20);
        for step in steps {
            let (tid, ts) = (step["tid"].as_u64().unwrap(), micros(&step["ts"]));
            assert!(
                polls
                    .iter()
                    .any(|&(t, start, end, _)| t == tid && start <= ts && ts <= end),
                "{step} not inside a poll of {name} on its thread"
            );
        }
        // Every poll says how long the task had been ready for it; the last slice is not a
        // poll but the future's drop (tracing's `Instrumented` enters its span for it).
        let mut by_time = polls.clone();
        by_time.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (drop_slice, polled) = by_time.split_last().unwrap();
        for (_, _, _, x) in polled {
            let delay = x["args"]["scheduled_delay_us"].as_f64();
            assert!(
                delay.is_some_and(|d| d >= 0.0),
                "{name}: poll without a delay: {x}"
            );
        }
        assert!(drop_slice.3["args"]["scheduled_delay_us"].is_null());
        // The task's lifetime is an async track under its name.
        assert_eq!(dump.phase("b").filter(|b| b["name"] == name).count(), 1);
    }
}

/// A task that wakes another from inside its poll, then blocks its worker for 50 ms; the
/// woken task waits in that worker's LIFO slot, which no other worker steals from.
async fn blocker_and_queued() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let queued = spawn_named("queued", async move {
        rx.await.unwrap();
        tracing::info!("queued ran");
    });
    // Let `queued` reach its await.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let blocker = spawn_named("blocker", async move {
        tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    });
    let ordinary: Vec<_> = (0..3)
        .map(|n| {
            spawn_named(&format!("ordinary-{n}"), async move {
                for _ in 0..10 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        })
        .collect();
    blocker.await.unwrap();
    queued.await.unwrap();
    for task in ordinary {
        task.await.unwrap();
    }
}

fn recorder_with_triggers(
    builder: tracing_blackbox::Builder,
) -> (
    FlightRecorder,
    tracing::Dispatch,
    Arc<Mutex<Vec<DumpOutcome>>>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&outcomes);
    let (layer, recorder) = builder
        .max_bytes(8 << 20)
        .dump_dir(dir.path())
        .cooldown(Duration::ZERO)
        .on_dump(move |outcome| seen.lock().unwrap().push(outcome.clone()))
        .build()
        .unwrap();
    (recorder, dispatch(layer), outcomes, dir)
}

#[test]
fn a_blocking_poll_fires_one_long_poll_dump_and_delays_the_task_queued_behind_it() {
    let (recorder, dispatch, outcomes, _dir) = recorder_with_triggers(
        FlightRecorder::builder().dump_on_long_poll(Duration::from_millis(30)),
    );
    let rt = runtime(&dispatch);
    {
        let _default = tracing::dispatcher::set_default(&dispatch);
        rt.block_on(blocker_and_queued());
    }
    drop(rt);
    assert!(recorder.flush_timeout(Duration::from_secs(30)));
    let outcomes = outcomes.lock().unwrap().clone();
    assert_eq!(
        outcomes.len(),
        1,
        "exactly one dump, for the blocker: {outcomes:?}"
    );
    let outcome = &outcomes[0];
    assert_eq!(outcome.reason, "long_poll");
    assert!(outcome.error.is_none(), "{outcome:?}");
    let dump = common::load(&outcome.path);
    let trigger = dump.other("trigger");
    assert_eq!(trigger["task"], "blocker", "{trigger}");
    assert_eq!(trigger["timing"], "poll");
    assert!(
        trigger["duration_ms"].as_f64().unwrap() >= 50.0,
        "{trigger}"
    );
    assert!(
        trigger["fields"]["loc.file"]
            .as_str()
            .unwrap()
            .ends_with("tokio_tasks.rs")
    );

    // The blocker's poll, marked as the trigger, on a worker.
    let long = polls(&dump, "blocker")
        .into_iter()
        .find(|(_, _, _, x)| x["args"]["trigger"] == true)
        .expect("the long poll is marked");
    assert!(long.2 - long.1 >= 50_000.0);
    assert!(worker_tids(&dump).contains(&long.0));

    // Afterwards, the whole story: `queued` was woken inside the long poll...
    let dump = common::dump(&recorder);
    let long = polls(&dump, "blocker")
        .into_iter()
        .max_by(|a, b| (a.2 - a.1).total_cmp(&(b.2 - b.1)))
        .unwrap();
    // ...with an arrow from there to its next poll...
    let flows: HashMap<&Value, Vec<&Value>> = dump
        .events()
        .iter()
        .filter(|e| e["cat"] == "tokio::task::waker" && (e["ph"] == "s" || e["ph"] == "f"))
        .fold(HashMap::new(), |mut map, e| {
            map.entry(&e["id"]).or_default().push(e);
            map
        });
    let queued = polls(&dump, "queued");
    let next_poll = flows
        .values()
        .filter_map(|steps| {
            let s = steps.iter().find(|e| e["ph"] == "s")?;
            let f = steps.iter().find(|e| e["ph"] == "f")?;
            let (tid, ts) = (s["tid"].as_u64()?, micros(&s["ts"]));
            let in_blocker = tid == long.0 && long.1 <= ts && ts <= long.2;
            let poll = queued
                .iter()
                .find(|q| q.0 == f["tid"].as_u64().unwrap() && q.1 == micros(&f["ts"]))?;
            in_blocker.then_some(poll)
        })
        .next()
        .expect("a wake arrow from the blocker's poll to a poll of `queued`");
    assert!(
        next_poll.3["args"]["scheduled_delay_us"].as_f64().unwrap() > 0.0,
        "the woken poll says how long it waited"
    );
}

/// Both workers blocked at once (a barrier only both can pass), then the first wakes `queued`
/// and blocks 50 ms more, the second 70 ms: `queued` cannot be polled before the first ends.
async fn both_workers_blocked() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let queued = spawn_named("queued", async move {
        rx.await.unwrap();
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let both = Arc::clone(&barrier);
    let first = spawn_named("blocker", async move {
        both.wait();
        tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    });
    let second = spawn_named("other-blocker", async move {
        barrier.wait();
        std::thread::sleep(Duration::from_millis(70));
    });
    first.await.unwrap();
    second.await.unwrap();
    queued.await.unwrap();
}

#[test]
fn a_task_queued_behind_blocked_workers_waits_for_them_and_fires_a_scheduled_delay_dump() {
    let (recorder, dispatch, outcomes, _dir) = recorder_with_triggers(
        FlightRecorder::builder().dump_on_scheduled_delay(Duration::from_millis(30)),
    );
    let rt = runtime(&dispatch);
    {
        let _default = tracing::dispatcher::set_default(&dispatch);
        rt.block_on(both_workers_blocked());
    }
    drop(rt);
    assert!(recorder.flush_timeout(Duration::from_secs(30)));

    // The scheduled delay of `queued`'s poll after the wake is at least the rest of the
    // blocker's poll.
    let dump = common::dump(&recorder);
    let blocker = polls(&dump, "blocker")
        .into_iter()
        .max_by(|a, b| (a.2 - a.1).total_cmp(&(b.2 - b.1)))
        .unwrap();
    let wake = dump
        .events()
        .iter()
        .find(|e| {
            e["ph"] == "s"
                && e["cat"] == "tokio::task::waker"
                && e["tid"].as_u64() == Some(blocker.0)
                && (blocker.1..=blocker.2).contains(&micros(&e["ts"]))
        })
        .expect("the wake inside the blocker's poll starts an arrow");
    let arrow_end = dump
        .events()
        .iter()
        .find(|e| e["ph"] == "f" && e["id"] == wake["id"])
        .expect("the arrow ends");
    let queued = polls(&dump, "queued");
    let woken_poll = queued
        .iter()
        .find(|q| Some(q.0) == arrow_end["tid"].as_u64() && q.1 == micros(&arrow_end["ts"]))
        .expect("the arrow ends at a poll of `queued`");
    let delay = micros(&woken_poll.3["args"]["scheduled_delay_us"]);
    let remaining = blocker.2 - micros(&wake["ts"]);
    assert!(remaining >= 50_000.0);
    assert!(
        delay + 1.0 >= remaining,
        "scheduled delay {delay} µs < the blocker's remaining {remaining} µs"
    );

    // The trigger fired for it, naming the task.
    let outcomes = outcomes.lock().unwrap().clone();
    let named: Vec<String> = outcomes
        .iter()
        .filter(|o| o.reason == "scheduled_delay")
        .map(|o| common::load(&o.path).other("trigger")["task"].to_string())
        .collect();
    assert!(
        named.iter().any(|n| n == "\"queued\""),
        "the queued task is named: {named:?} ({outcomes:?})"
    );
}

#[test]
fn the_example_dumps_the_blocked_worker_and_the_tasks_waiting_behind_it() {
    // `.ci/run` builds it into this test's target directory first.
    let Some(binary) = common::example("tokio_runtime") else {
        panic!(
            "examples/tokio_runtime was not built: RUSTFLAGS=\"--cfg tokio_unstable\" cargo build \
             --features tokio --example tokio_runtime --target-dir target/tokio-unstable"
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(binary)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dumps = common::files_in(&dir.path().join("blackbox-dumps"));
    assert_eq!(
        dumps.len(),
        1,
        "one long-poll dump (the cooldown holds the rest): {stdout}"
    );
    let dump = common::load(&dumps[0]);
    assert_eq!(dump.other("reason"), "long_poll");
    assert_eq!(dump.other("trigger")["task"], "task-2");
    // The blocked worker: task-2's 80 ms poll, which ends the window.
    let long = polls(&dump, "task-2")
        .into_iter()
        .max_by(|a, b| (a.2 - a.1).total_cmp(&(b.2 - b.1)))
        .unwrap();
    assert!(long.2 - long.1 >= 80_000.0);
    // Every poll of the others says how long its task waited.
    for n in [0, 1, 3, 4] {
        let name = format!("task-{n}");
        assert!(
            polls(&dump, &name)
                .iter()
                .any(|p| p.3["args"]["scheduled_delay_us"].is_number()),
            "{name}"
        );
    }
}
