//! The task timing rules (scheduled delay, long poll) against a plain reference model, with a
//! mock clock: random spawns, polls, wakes inside and outside polls, and closes of spans
//! shaped exactly like tokio's `runtime.spawn` spans and `tokio::task::waker` events. The
//! real runtime's records are checked in `tokio_tasks.rs` (built with `--cfg tokio_unstable`);
//! this one runs in every build, and pins the arithmetic exactly.
#![cfg(feature = "tokio")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use tracing::Span;
use tracing_blackbox::FlightRecorder;

const LONG_POLL_MS: u64 = 5;
const DELAY_MS: u64 = 7;

#[derive(Debug, Clone)]
enum Op {
    Spawn,
    /// Poll task `n % live` for `ms`; wake task `wake % live` half-way through, if any.
    Poll {
        n: usize,
        ms: u64,
        wake: Option<usize>,
    },
    Wake(usize),
    Advance(u64),
    Close(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::Spawn),
        4 => (any::<usize>(), 0..10u64, proptest::option::of(any::<usize>()))
            .prop_map(|(n, ms, wake)| Op::Poll { n, ms, wake }),
        2 => any::<usize>().prop_map(Op::Wake),
        2 => (0..12u64).prop_map(Op::Advance),
        1 => any::<usize>().prop_map(Op::Close),
    ]
}

/// The model of one task.
struct Task {
    /// `None` once closed.
    span: Option<Span>,
    name: String,
    ready_since: Option<u64>,
    /// Expected scheduled delay of each poll (ms), in order; `None`: no wake was seen.
    delays: Vec<Option<u64>>,
}

fn spawn(n: usize, now: u64) -> Task {
    let name = format!("task-{n}");
    let span = tracing::trace_span!(
        target: "tokio::task",
        parent: None,
        "runtime.spawn",
        kind = "task",
        task.name = name.as_str(),
        task.id = n as u64,
        loc.file = "src/main.rs",
        loc.line = 7u32,
        loc.col = 5u32,
    );
    Task {
        span: Some(span),
        name,
        ready_since: Some(now),
        delays: Vec::new(),
    }
}

fn wake(task: &Task) {
    let id = task
        .span
        .as_ref()
        .and_then(Span::id)
        .expect("open and enabled");
    let id = id.into_u64();
    tracing::trace!(target: "tokio::task::waker", op = "waker.wake_by_ref", task.id = id);
}

fn run(ops: &[Op]) {
    let dir = tempfile::tempdir().unwrap();
    let (clock, time) = quanta::Clock::mock();
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&outcomes);
    let (layer, recorder) = FlightRecorder::builder()
        .clock(clock)
        .dump_dir(dir.path())
        .cooldown(Duration::ZERO)
        .max_queued_dumps(1024)
        .dump_on_long_poll(Duration::from_millis(LONG_POLL_MS))
        .dump_on_scheduled_delay(Duration::from_millis(DELAY_MS))
        .on_dump(move |o| {
            seen.lock()
                .unwrap()
                .push((o.reason.clone(), o.path.clone()))
        })
        .build()
        .unwrap();
    let dispatch = common::dispatch(layer);
    let ms = |n: u64| Duration::from_millis(n);
    let mut now = 0u64;
    let mut live: Vec<Task> = Vec::new();
    let mut closed: Vec<Task> = Vec::new();
    let mut expected: Vec<(&str, String)> = Vec::new();
    tracing::dispatcher::with_default(&dispatch, || {
        for op in ops {
            match *op {
                Op::Spawn => live.push(spawn(live.len() + closed.len(), now)),
                Op::Advance(n) => {
                    time.increment(ms(n));
                    now += n;
                }
                _ if live.is_empty() => {}
                Op::Poll { n, ms: took, wake } => {
                    let n = n % live.len();
                    let delay = live[n].ready_since.take().map(|since| now - since);
                    live[n].delays.push(delay);
                    if delay.is_some_and(|d| d > DELAY_MS) {
                        expected.push(("scheduled_delay", live[n].name.clone()));
                    }
                    let mut woken_while_polled = false;
                    {
                        let polled = live[n].span.clone().expect("live tasks are open");
                        let _entered = polled.enter();
                        time.increment(ms(took / 2));
                        now += took / 2;
                        if let Some(other) = wake.map(|w| w % live.len()) {
                            self::wake(&live[other]);
                            if other == n {
                                woken_while_polled = true;
                            } else if live[other].ready_since.is_none() {
                                live[other].ready_since = Some(now);
                            }
                        }
                        time.increment(ms(took - took / 2));
                        now += took - took / 2;
                    }
                    if took > LONG_POLL_MS {
                        expected.push(("long_poll", live[n].name.clone()));
                    }
                    if woken_while_polled {
                        live[n].ready_since = Some(now);
                    }
                }
                Op::Wake(n) => {
                    let n = n % live.len();
                    self::wake(&live[n]);
                    if live[n].ready_since.is_none() {
                        live[n].ready_since = Some(now);
                    }
                }
                Op::Close(n) => {
                    let mut task = live.swap_remove(n % live.len());
                    task.span = None;
                    closed.push(task);
                }
            }
        }
    });

    // The dump: each task's polls, in order, with the model's scheduled delays.
    let dump = common::dump(&recorder);
    for task in live.iter().chain(&closed) {
        let mut polls = dump.slices_named(&task.name);
        // In time order: a poll of 0 ms and the next one start at the same time.
        let key = |x: &serde_json::Value| (x["ts"].as_f64().unwrap(), x["dur"].as_f64().unwrap());
        polls.sort_by(|a, b| key(a).partial_cmp(&key(b)).unwrap());
        let delays: Vec<Option<u64>> = polls
            .iter()
            .map(|x| {
                x["args"]["scheduled_delay_us"]
                    .as_f64()
                    .map(|us| (us / 1000.0).round() as u64)
            })
            .collect();
        assert_eq!(delays, task.delays, "{}", task.name);
        assert!(polls.iter().all(|x| x["cat"] == "tokio::task"));
    }

    // The tasks still waiting to be polled at the end: a wait each, as long as the model's.
    let mut waits: Vec<(String, u64)> = dump
        .phase("b")
        .filter(|b| b["cat"] == "tokio::task::ready")
        .map(|b| {
            let name = b["name"].as_str().unwrap();
            let task = name
                .strip_suffix(" (ready, not polled)")
                .unwrap()
                .to_owned();
            let waited = (b["args"]["waited_us"].as_f64().unwrap() / 1000.0).round() as u64;
            (task, waited)
        })
        .collect();
    let mut waiting: Vec<(String, u64)> = live
        .iter()
        .filter_map(|t| Some((t.name.clone(), now - t.ready_since?)))
        .collect();
    waits.sort();
    waiting.sort();
    assert_eq!(waits, waiting, "tasks waiting at the end");

    // The triggers: exactly the model's breaches, each naming its task.
    assert!(recorder.flush_timeout(Duration::from_secs(60)));
    let mut fired: Vec<(String, String)> = outcomes
        .lock()
        .unwrap()
        .iter()
        .map(|(reason, path)| {
            let task = common::load(path).other("trigger")["task"]
                .as_str()
                .unwrap()
                .to_owned();
            (reason.clone(), task)
        })
        .collect();
    let mut expected: Vec<(String, String)> = expected
        .into_iter()
        .map(|(reason, task)| (reason.to_owned(), task))
        .collect();
    fired.sort();
    expected.sort();
    assert_eq!(fired, expected);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn scheduled_delays_and_runtime_triggers_follow_the_model(
        ops in proptest::collection::vec(op(), 1..60)
    ) {
        run(&ops);
    }
}

#[test]
fn a_wake_during_its_own_poll_makes_a_task_ready_from_the_poll_s_end() {
    run(&[
        Op::Spawn,
        Op::Advance(3),
        Op::Poll {
            n: 0,
            ms: 4,
            wake: Some(0),
        },
        Op::Advance(8),
        Op::Poll {
            n: 0,
            ms: 6,
            wake: None,
        },
        Op::Poll {
            n: 0,
            ms: 1,
            wake: None,
        },
    ]);
}
