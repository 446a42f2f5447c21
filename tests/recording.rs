//! Recording across threads, beside other layers, with several recorders, stop/start,
//! id reuse, out-of-order exits, re-entrancy and panics.

mod common;

use std::fmt;
use std::sync::{Arc, Barrier};

use common::{dump, recorder_with};
use tracing::{Level, debug, info, info_span, trace};
use tracing_blackbox::{FlightRecorder, RecordKind};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, fmt as tfmt};

#[test]
fn records_from_many_threads_with_their_names() {
    let (dispatch, recorder) = recorder_with(1 << 20);
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|n| {
            let dispatch = dispatch.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::Builder::new()
                .name(format!("worker-{n}"))
                .spawn(move || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        barrier.wait();
                        for i in 0..100u64 {
                            let _span = info_span!("job", n, i).entered();
                            info!(i, "step");
                        }
                    })
                })
                .unwrap()
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let unnamed = std::thread::spawn({
        let dispatch = dispatch.clone();
        move || tracing::dispatcher::with_default(&dispatch, || info!("from an unnamed thread"))
    });
    unnamed.join().unwrap();

    let dump = dump(&recorder);
    assert_eq!(dump.slices_named("job").len(), 400);
    let names: Vec<String> = dump
        .phase("M")
        .filter(|m| m["name"] == "thread_name")
        .map(|m| m["args"]["name"].as_str().unwrap().to_owned())
        .collect();
    for n in 0..4 {
        assert!(names.contains(&format!("worker-{n}")), "{names:?}");
    }
    assert!(
        names.iter().any(|n| n.starts_with("thread-")),
        "fallback name: {names:?}"
    );
    // Each worker's slices are on its own tid.
    let tids: std::collections::HashSet<_> = dump
        .slices_named("job")
        .iter()
        .map(|x| x["tid"].as_u64().unwrap())
        .collect();
    assert_eq!(tids.len(), 4);
}

#[test]
fn sits_beside_fmt_with_per_layer_filters() {
    let (layer, recorder) = FlightRecorder::builder()
        .max_bytes(1 << 20)
        .build()
        .unwrap();
    let fmt_output = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let writer = {
        let out = Arc::clone(&fmt_output);
        move || SharedWriter(Arc::clone(&out))
    };
    let subscriber = tracing_subscriber::registry()
        .with(layer.with_filter(LevelFilter::DEBUG))
        .with(
            tfmt::layer()
                .with_writer(writer)
                .with_ansi(false)
                .with_filter(LevelFilter::INFO),
        );
    tracing::subscriber::with_default(subscriber, || {
        let _span = tracing::span!(Level::TRACE, "trace_span").entered();
        trace!("too verbose for both");
        debug!("only the recorder");
        info!("both");
    });
    let dump = dump(&recorder);
    let names: Vec<_> = dump
        .phase("i")
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["only the recorder", "both"]);
    assert!(
        dump.slices_named("trace_span").is_empty(),
        "filtered span not recorded"
    );
    let text = String::from_utf8(fmt_output.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("both") && !text.contains("only the recorder"),
        "{text}"
    );
}

struct SharedWriter(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn several_recorders_stay_apart() {
    let (layer_a, a) = FlightRecorder::builder().build().unwrap();
    let (layer_b, b) = FlightRecorder::builder().build().unwrap();
    tracing::dispatcher::with_default(&common::dispatch(layer_a), || info!("for a"));
    tracing::dispatcher::with_default(&common::dispatch(layer_b), || {
        info!("for b");
        info!("for b again");
    });
    // Two recorders in one stack: each sees the same callbacks, in its own storage.
    let (layer_c, c) = FlightRecorder::builder().build().unwrap();
    let (layer_d, d) = FlightRecorder::builder().build().unwrap();
    let both = tracing_subscriber::registry().with(layer_c).with(layer_d);
    tracing::subscriber::with_default(both, || {
        let _span = info_span!("shared").entered();
        info!("for c and d");
    });
    let names = |r: &FlightRecorder| -> Vec<String> {
        dump(r)
            .phase("i")
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&a), ["for a"]);
    assert_eq!(names(&b), ["for b", "for b again"]);
    assert_eq!(names(&c), ["for c and d"]);
    assert_eq!(names(&d), ["for c and d"]);
    assert_eq!(dump(&c).slices_named("shared").len(), 1);
    assert_eq!(dump(&d).slices_named("shared").len(), 1);
}

#[test]
fn recorders_come_and_go_on_one_thread() {
    // The layer caches one thread's slot for the last recorder it saw: switching recorders,
    // and recorders dropped while the thread lives on, must each keep exactly their records.
    let (layer, keeper) = FlightRecorder::builder().build().unwrap();
    let kept = common::dispatch(layer);
    let mut expected = Vec::new();
    for round in 0..50u64 {
        let (layer, short_lived) = FlightRecorder::builder().build().unwrap();
        let passing = common::dispatch(layer);
        tracing::dispatcher::with_default(&kept, || info!(round, "kept"));
        tracing::dispatcher::with_default(&passing, || {
            let _span = info_span!("passing", round).entered();
            info!(round, "passing");
        });
        tracing::dispatcher::with_default(&kept, || info!(round, "kept again"));
        expected.push(round);
        let dump = dump(&short_lived);
        let rounds: Vec<_> = dump
            .phase("i")
            .map(|e| (e["name"].clone(), e["args"]["fields"]["round"].clone()))
            .collect();
        assert_eq!(rounds, [("passing".into(), round.into())]);
        assert_eq!(dump.slices_named("passing").len(), 1);
        // Dropped with the thread still recording: its slot goes with the next new recorder.
        drop((passing, short_lived));
    }
    let dump = dump(&keeper);
    let kept_rounds: Vec<u64> = dump
        .phase("i")
        .filter(|e| e["name"] == "kept")
        .map(|e| e["args"]["fields"]["round"].as_u64().unwrap())
        .collect();
    assert_eq!(kept_rounds, expected);
    assert_eq!(
        dump.phase("i")
            .filter(|e| e["name"] == "kept again")
            .count(),
        50
    );
    assert!(dump.slices_named("passing").is_empty());
}

#[test]
fn stop_keeps_the_past_and_start_resumes() {
    let (dispatch, recorder) = recorder_with(1 << 20);
    tracing::dispatcher::with_default(&dispatch, || {
        info!("before");
        recorder.stop();
        assert!(!recorder.is_recording());
        info!("while stopped");
        let dump = dump(&recorder);
        let names: Vec<_> = dump.phase("i").map(|e| e["name"].clone()).collect();
        assert_eq!(names, ["before"]);
        recorder.start();
        assert!(recorder.is_recording());
        info!("after");
    });
    let names: Vec<_> = dump(&recorder)
        .phase("i")
        .map(|e| e["name"].clone())
        .collect();
    assert_eq!(names, ["before", "after"]);
}

#[test]
fn recorder_outlives_the_subscriber() {
    let (dispatch, recorder) = recorder_with(1 << 20);
    tracing::dispatcher::with_default(&dispatch, || info!("recorded"));
    drop(dispatch);
    let clone = recorder.clone();
    drop(recorder);
    let dump = dump(&clone);
    assert_eq!(dump.phase("i").next().unwrap()["name"], "recorded");
}

#[test]
fn twenty_thousand_sequential_spans_keep_distinct_ids() {
    let (dispatch, recorder) = recorder_with(8 << 20);
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..20_000u64 {
            let _span = info_span!("seq", i).entered();
        }
    });
    let snapshot = recorder.snapshot();
    assert_eq!(snapshot.counters.overwritten, 0, "all 20,000 spans fit");
    let mut ids = std::collections::HashSet::new();
    for record in &snapshot.records {
        if let RecordKind::NewSpan { span, .. } = record.kind {
            assert!(ids.insert(span), "span id {span} reused");
        }
    }
    assert_eq!(ids.len(), 20_000);
    let dump = dump(&recorder);
    let slices = dump.slices_named("seq");
    assert_eq!(slices.len(), 20_000);
    let distinct: std::collections::HashSet<_> = slices
        .iter()
        .map(|x| x["args"]["span_id"].as_u64().unwrap())
        .collect();
    assert_eq!(distinct.len(), 20_000);
    // The field shows each one is its own span.
    for (n, x) in slices.iter().enumerate() {
        assert_eq!(x["args"]["fields"]["i"], n as u64);
    }
}

#[test]
fn out_of_order_exits_are_repaired_so_slices_nest() {
    let (dispatch, recorder) = recorder_with(1 << 20);
    tracing::dispatcher::with_default(&dispatch, || {
        let a = info_span!("a").entered();
        let b = info_span!("b").entered();
        info!("in b");
        drop(a); // exits a while b is still entered
        info!("after a");
        drop(b);
        // One span entered twice.
        let twice = info_span!("twice");
        let g1 = twice.enter();
        let g2 = twice.enter();
        drop(g1);
        drop(g2);
    });
    let dump = dump(&recorder); // nesting is checked by the validator
    assert_eq!(dump.counter("repaired_exits"), 1);
    let b_slices = dump.slices_named("b");
    assert_eq!(b_slices.len(), 2, "b is split at the repair");
    assert!(b_slices.iter().all(|x| x["args"]["repaired"] == true));
    assert_eq!(dump.slices_named("twice").len(), 2);
}

/// A value whose `Debug` logs: it re-enters the layer on the same thread.
struct Chatty;

impl fmt::Debug for Chatty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        info!("logged from inside Debug");
        f.write_str("chatty")
    }
}

#[test]
fn reentrant_debug_neither_deadlocks_nor_corrupts() {
    let (dispatch, recorder) = recorder_with(1 << 20);
    tracing::dispatcher::with_default(&dispatch, || {
        info!(value = ?Chatty, "outer");
        let _span = info_span!("span_with_chatty", v = ?Chatty).entered();
        info!("after");
    });
    let dump = dump(&recorder);
    let outer = dump.phase("i").find(|e| e["name"] == "outer").unwrap();
    assert_eq!(outer["args"]["fields"]["value"], "chatty");
    // Under a scoped default, `tracing` routes the nested calls to `NoSubscriber`.
    let names: Vec<_> = dump.phase("i").map(|e| e["name"].clone()).collect();
    assert_eq!(names, ["outer", "after"]);
    assert_eq!(
        dump.slices_named("span_with_chatty")[0]["args"]["fields"]["v"],
        "chatty"
    );
}

#[test]
fn reentrant_debug_under_a_global_default() {
    // Under a global default a Debug impl that logs re-enters the layer for real. This test
    // binary's only global subscriber is set here, in a child process so it stays alone.
    if std::env::var_os("BLACKBOX_GLOBAL_CHILD").is_none() {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "reentrant_debug_under_a_global_default",
                "--nocapture",
            ])
            .env("BLACKBOX_GLOBAL_CHILD", "1")
            .status()
            .unwrap();
        assert!(status.success());
        return;
    }
    let (dispatch, recorder) = recorder_with(1 << 20);
    tracing::dispatcher::set_global_default(dispatch).unwrap();
    info!(value = ?Chatty, "outer");
    let _span = info_span!("span_with_chatty", v = ?Chatty).entered();
    info!("after");
    let dump = dump(&recorder);
    // The nested events re-entered the layer: dropped and counted, nothing else lost.
    let names: Vec<_> = dump.phase("i").map(|e| e["name"].clone()).collect();
    assert_eq!(names, ["outer", "after"]);
    assert_eq!(
        dump.phase("i").next().unwrap()["args"]["fields"]["value"],
        "chatty"
    );
    assert_eq!(dump.counter("dropped"), 2);
}

struct Panicky;

impl fmt::Debug for Panicky {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        panic!("Debug impl panics");
    }
}

#[test]
fn panicking_debug_leaves_the_recorder_working() {
    let (dispatch, recorder) = recorder_with(1 << 20);
    tracing::dispatcher::with_default(&dispatch, || {
        info!("before");
        let caught = std::panic::catch_unwind(|| info!(v = ?Panicky, "boom"));
        assert!(caught.is_err(), "the panic is the caller's");
        info!("after");
    });
    let dump = dump(&recorder);
    let names: Vec<_> = dump.phase("i").map(|e| e["name"].clone()).collect();
    assert_eq!(names, ["before", "after"]);
    // And from other threads too.
    std::thread::spawn({
        let recorder = recorder.clone();
        move || {
            let d = common::dump(&recorder);
            assert_eq!(d.phase("i").count(), 2);
        }
    })
    .join()
    .unwrap();
}

#[test]
fn spans_that_hop_threads_keep_one_id() {
    let (dispatch, recorder) = recorder_with(1 << 20);
    let span = tracing::dispatcher::with_default(&dispatch, || info_span!("hopper"));
    for _ in 0..3 {
        let span = span.clone();
        let dispatch = dispatch.clone();
        std::thread::spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || {
                let _g = span.enter();
                info!("poll");
            })
        })
        .join()
        .unwrap();
    }
    drop(span);
    let dump = dump(&recorder);
    let slices = dump.slices_named("hopper");
    assert_eq!(slices.len(), 3);
    let ids: std::collections::HashSet<_> = slices
        .iter()
        .map(|x| x["args"]["span_id"].clone())
        .collect();
    assert_eq!(ids.len(), 1);
    let tids: std::collections::HashSet<_> = slices.iter().map(|x| x["tid"].clone()).collect();
    assert_eq!(tids.len(), 3);
    // Flow arrows link the three slices in order, thread to thread.
    let steps: Vec<_> = dump
        .events()
        .iter()
        .filter(|e| ["s", "t", "f"].contains(&e["ph"].as_str().unwrap()))
        .collect();
    assert_eq!(steps.len(), 3);
    let mut by_ts = steps.clone();
    by_ts.sort_by(|a, b| {
        a["ts"]
            .as_f64()
            .unwrap()
            .total_cmp(&b["ts"].as_f64().unwrap())
    });
    let phases: Vec<_> = by_ts.iter().map(|e| e["ph"].as_str().unwrap()).collect();
    assert_eq!(phases, ["s", "t", "f"]);
    let mut slice_starts: Vec<_> = slices
        .iter()
        .map(|x| (x["ts"].as_f64().unwrap(), x["tid"].clone()))
        .collect();
    slice_starts.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (step, (ts, tid)) in by_ts.iter().zip(&slice_starts) {
        assert_eq!(step["ts"].as_f64().unwrap(), *ts);
        assert_eq!(&step["tid"], tid);
        assert_eq!(step["id"], slices[0]["args"]["span_id"]);
    }
}
