//! Stress, faults and shutdown: nothing lost, nothing leaked, never a hang.
//!
//! Each stress test has a short form here and a long form under `#[ignore]`, run by
//! `.ci/soak`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use tracing::{info, info_span};
use tracing_blackbox::{FlightRecorder, RecordKind, TriggerOutcome};

/// `threads` threads record `records` each (span + event rounds) while `dumps` dumps are taken
/// concurrently — manual, triggered and over HTTP; every dump parses and passes the invariants, each
/// thread's sequence is in order and untorn, and the counters add up.
fn record_while_dumping(threads: usize, records: u64, dumps: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (layer, recorder) = FlightRecorder::builder()
        .max_bytes(2 << 20)
        .dump_dir(dir.path())
        .cooldown(Duration::ZERO)
        .build()
        .unwrap();
    let dispatch = common::dispatch(layer);
    let start = Barrier::new(threads + 1);
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for t in 0..threads as u64 {
            let dispatch = dispatch.clone();
            let start = &start;
            scope.spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    start.wait();
                    // Five records per round: new, enter, event, exit, close.
                    for i in 0..records / 5 {
                        let _span = info_span!("unit", t, i).entered();
                        info!(t, i, check = t * 1_000_000_007 + i, "record");
                    }
                })
            });
        }
        let dumper = scope.spawn(|| {
            #[cfg(feature = "http")]
            let server = recorder.serve_http("127.0.0.1:0").unwrap();
            start.wait();
            let mut made = 0;
            while made < dumps {
                match made % 3 {
                    0 => {
                        let dump = common::dump(&recorder);
                        check_sequences(&dump);
                    }
                    1 => assert_ne!(recorder.trigger("stress"), TriggerOutcome::Disabled),
                    _ => {
                        // Over HTTP when the feature is on, else another manual dump.
                        #[cfg(feature = "http")]
                        {
                            let dump = common::fetch_dump(&server.url());
                            check_sequences(&dump);
                        }
                        #[cfg(not(feature = "http"))]
                        check_sequences(&common::dump(&recorder));
                    }
                }
                made += 1;
            }
            done.store(true, Ordering::Relaxed);
        });
        dumper.join().unwrap();
    });
    recorder.flush();
    for file in common::files_in(dir.path()) {
        check_sequences(&common::load(&file));
    }
    let snapshot = recorder.snapshot();
    let counters = snapshot.counters;
    assert_eq!(
        counters.written,
        threads as u64 * records,
        "one callback, one record"
    );
    assert_eq!(counters.written, counters.retained + counters.overwritten);
    assert_eq!(counters.dropped, 0);
    // Untorn: every event's check field matches its t and i.
    for record in &snapshot.records {
        if let RecordKind::Event { fields, .. } = &record.kind {
            let get = |name: &str| match fields.iter().find(|f| f.name == name).map(|f| &f.value) {
                Some(tracing_blackbox::FieldValue::U64(v)) => *v,
                other => panic!("{name}: {other:?}"),
            };
            assert_eq!(get("check"), get("t") * 1_000_000_007 + get("i"));
        }
    }
}

/// Per thread, the events' `i` only grow.
fn check_sequences(dump: &common::Dump) {
    let mut last: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
    for event in dump.phase("i") {
        let fields = &event["args"]["fields"];
        let (t, i) = (fields["t"].as_u64().unwrap(), fields["i"].as_u64().unwrap());
        if let Some(previous) = last.insert(t, i) {
            assert!(i > previous, "thread {t}: {i} after {previous}");
        }
    }
}

#[test]
fn recording_while_dumping() {
    record_while_dumping(4, 40_000, 10);
}

#[test]
#[ignore = "long form: run by .ci/soak"]
fn recording_while_dumping_long() {
    record_while_dumping(8, 1_000_000, 100);
}

#[test]
fn a_trigger_from_inside_a_dump_callback_neither_deadlocks_nor_recurses() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let recorder_slot: Arc<std::sync::OnceLock<FlightRecorder>> = Arc::default();
    let (layer, recorder) = FlightRecorder::builder()
        .dump_dir(dir.path())
        .cooldown(Duration::from_secs(60))
        .on_dump({
            let calls = Arc::clone(&calls);
            let slot = Arc::clone(&recorder_slot);
            move |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                if let Some(recorder) = slot.get() {
                    // Within the cooldown: suppressed, not a loop.
                    recorder.trigger("from the callback");
                    let _ = recorder.snapshot();
                }
            }
        })
        .build()
        .unwrap();
    let _ = recorder_slot.set(recorder.clone());
    tracing::dispatcher::with_default(&common::dispatch(layer), || info!("before"));
    recorder.trigger("first");
    assert!(
        recorder.flush_timeout(Duration::from_secs(10)),
        "no deadlock"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(common::files_in(dir.path()).len(), 1);
}

/// One thing to drop.
type Step = Box<dyn FnOnce() + Send>;

#[test]
fn dropping_everything_in_any_order_never_hangs() {
    for order in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        let (layer, recorder) = FlightRecorder::builder()
            .dump_dir(dir.path())
            .cooldown(Duration::ZERO)
            .build()
            .unwrap();
        let dispatch = common::dispatch(layer);
        tracing::dispatcher::with_default(&dispatch, || {
            for i in 0..1000u64 {
                info!(i, "work");
            }
        });
        // A dump in flight while things go away.
        recorder.trigger("in flight");
        let clone = recorder.clone();
        let (a, b, c): (Step, Step, Step) = (
            Box::new(move || drop(dispatch)),
            Box::new(move || drop(recorder)),
            Box::new(move || drop(clone)),
        );
        let steps: Vec<Step> = match order {
            0 => vec![a, b, c],
            1 => vec![a, c, b],
            2 => vec![b, a, c],
            3 => vec![b, c, a],
            4 => vec![c, a, b],
            _ => vec![c, b, a],
        };
        let finished = Arc::new(AtomicBool::new(false));
        let watcher = {
            let finished = Arc::clone(&finished);
            std::thread::spawn(move || {
                for step in steps {
                    step();
                }
                finished.store(true, Ordering::SeqCst);
            })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !finished.load(Ordering::SeqCst) {
            assert!(std::time::Instant::now() < deadline, "order {order} hangs");
            std::thread::sleep(Duration::from_millis(5));
        }
        watcher.join().unwrap();
        // The dump in flight finished (the last handle's drop flushes).
        assert_eq!(common::files_in(dir.path()).len(), 1, "order {order}");
    }
}

#[test]
fn the_dump_directory_removed_or_replaced_while_recording() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("dumps");
    let (layer, recorder) = FlightRecorder::builder()
        .dump_dir(&dir)
        .cooldown(Duration::ZERO)
        .build()
        .unwrap();
    let dispatch = common::dispatch(layer);
    tracing::dispatcher::with_default(&dispatch, || {
        info!("one");
        recorder.trigger("first");
        recorder.flush();
        assert_eq!(common::files_in(&dir).len(), 1);
        // Removed: created again.
        std::fs::remove_dir_all(&dir).unwrap();
        recorder.trigger("recreated");
        recorder.flush();
        assert_eq!(common::files_in(&dir).len(), 1);
        assert!(recorder.last_dump_error().is_none());
        // Replaced by a file: an error, reported; recording goes on; nothing partial.
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::write(&dir, b"a file now").unwrap();
        recorder.trigger("blocked");
        recorder.flush();
        let error = recorder.last_dump_error().expect("reported");
        assert_eq!(error.stage(), tracing_blackbox::DumpStage::CreateDir);
        info!("recording goes on");
    });
    assert_eq!(std::fs::read(&dir).unwrap(), b"a file now");
    assert_eq!(
        common::files_in(root.path()).len(),
        1,
        "no temp files beside it"
    );
    let names: Vec<_> = common::dump(&recorder)
        .phase("i")
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["one", "recording goes on"]);
}
