//! Triggered dumps: the dump thread, cooldown, queue, flush, retention, reporting.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::info;
use tracing_blackbox::{DumpOutcome, FlightRecorder, TriggerOutcome};

#[test]
fn a_user_trigger_writes_a_dump_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, recorder) = FlightRecorder::builder()
        .dump_dir(dir.path())
        .build()
        .unwrap();
    let dispatch = common::dispatch(layer);
    tracing::dispatcher::with_default(&dispatch, || {
        info!("before the trigger");
        assert_eq!(recorder.trigger("payment failed!"), TriggerOutcome::Queued);
        info!("after the trigger");
    });
    recorder.flush();
    let files = common::files_in(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("payment_failed__") && name.ends_with(".json"),
        "{name}"
    );
    let dump = common::load(&files[0]);
    assert_eq!(dump.other("reason"), "payment failed!");
    let names: Vec<_> = dump.phase("i").map(|e| e["name"].clone()).collect();
    assert_eq!(
        names,
        ["before the trigger"],
        "the snapshot was taken at the trigger"
    );
}

#[test]
fn the_cooldown_suppresses_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (clock, time) = quanta::Clock::mock();
    let (_layer, recorder) = FlightRecorder::builder()
        .dump_dir(dir.path())
        .cooldown(Duration::from_millis(300))
        .clock(clock)
        .build()
        .unwrap();
    assert_eq!(recorder.trigger("first"), TriggerOutcome::Queued);
    assert_eq!(recorder.trigger("second"), TriggerOutcome::Suppressed);
    assert_eq!(recorder.trigger("third"), TriggerOutcome::Suppressed);
    // Manual dumps are never limited.
    recorder.dump_to_dir(dir.path(), "manual").unwrap();
    time.increment(Duration::from_millis(299));
    assert_eq!(recorder.trigger("almost"), TriggerOutcome::Suppressed);
    time.increment(Duration::from_millis(1));
    assert_eq!(recorder.trigger("fourth"), TriggerOutcome::Queued);
    recorder.flush();
    let files = common::files_in(dir.path());
    assert_eq!(files.len(), 3, "{files:?}");
    let fourth = files
        .iter()
        .find(|p| p.to_string_lossy().contains("fourth"))
        .unwrap();
    assert_eq!(
        common::load(fourth).counter("suppressed"),
        3,
        "second, third, almost"
    );
    let first = files
        .iter()
        .find(|p| p.to_string_lossy().contains("first"))
        .unwrap();
    assert_eq!(common::load(first).counter("suppressed"), 0);
}

#[test]
fn without_a_cooldown_every_trigger_gets_a_dump_or_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (_layer, recorder) = FlightRecorder::builder()
        .dump_dir(dir.path())
        .cooldown(Duration::ZERO)
        .max_queued_dumps(4)
        .build()
        .unwrap();
    let outcomes: Vec<_> = (0..12)
        .map(|n| recorder.trigger(&format!("burst{n}")))
        .collect();
    recorder.flush();
    let queued = outcomes
        .iter()
        .filter(|o| **o == TriggerOutcome::Queued)
        .count();
    let files = common::files_in(dir.path());
    assert_eq!(files.len(), queued, "each queued trigger has its dump");
    assert!(
        queued >= 4,
        "at least a full queue's worth were written: {queued}"
    );
    // Whatever was suppressed is reported by a later dump.
    assert_eq!(recorder.trigger("after"), TriggerOutcome::Queued);
    recorder.flush();
    let after = common::files_in(dir.path())
        .into_iter()
        .find(|p| p.to_string_lossy().contains("after"))
        .unwrap();
    assert_eq!(
        common::load(&after).counter("suppressed") as usize,
        12 - queued
    );
}

#[test]
fn retention_keeps_the_newest_files_and_only_its_own() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("someone_elses.json"), b"{}").unwrap();
    let (_layer, recorder) = FlightRecorder::builder()
        .dump_dir(dir.path())
        .cooldown(Duration::ZERO)
        .keep_files(3)
        .build()
        .unwrap();
    for n in 0..7 {
        recorder.trigger(&format!("t{n}"));
        recorder.flush();
    }
    let names: Vec<String> = common::files_in(dir.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names.contains(&"someone_elses.json".to_owned()));
    for kept in ["t4_", "t5_", "t6_"] {
        assert!(
            names.iter().any(|n| n.starts_with(kept)),
            "{kept} kept: {names:?}"
        );
    }
}

#[test]
fn retention_by_bytes_never_deletes_the_file_just_written() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, recorder) = FlightRecorder::builder()
        .dump_dir(dir.path())
        .cooldown(Duration::ZERO)
        .keep_bytes(1)
        .build()
        .unwrap();
    let dispatch = common::dispatch(layer);
    tracing::dispatcher::with_default(&dispatch, || info!("some content"));
    for n in 0..3 {
        recorder.trigger(&format!("b{n}"));
        recorder.flush();
    }
    let files = common::files_in(dir.path());
    assert_eq!(files.len(), 1);
    assert!(files[0].to_string_lossy().contains("b2_"));
}

#[test]
fn on_dump_reports_successes_and_failures() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, b"a file where the directory should be").unwrap();
    let seen: Arc<Mutex<Vec<DumpOutcome>>> = Arc::default();
    let (layer, recorder) = FlightRecorder::builder()
        .dump_dir(blocker.join("dumps"))
        .cooldown(Duration::ZERO)
        .on_dump({
            let seen = Arc::clone(&seen);
            move |outcome| seen.lock().unwrap().push(outcome.clone())
        })
        .build()
        .unwrap();
    let dispatch = common::dispatch(layer);
    tracing::dispatcher::with_default(&dispatch, || {
        info!("one");
        assert_eq!(recorder.trigger("doomed"), TriggerOutcome::Queued);
        recorder.flush();
        info!("recording goes on");
    });
    let error = recorder.last_dump_error().expect("the failure is kept");
    assert_eq!(error.stage(), tracing_blackbox::DumpStage::CreateDir);
    recorder.dump_to_dir(dir.path(), "fine").unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].reason, "doomed");
    assert!(seen[0].error.is_some() && seen[0].bytes == 0);
    assert_eq!(seen[1].reason, "manual");
    assert!(seen[1].error.is_none() && seen[1].bytes > 0);
    assert!(seen[1].path.exists());
    assert_eq!(common::dump(&recorder).phase("i").count(), 2);
}

#[test]
fn hostile_reasons_stay_inside_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().join("inner");
    let (_layer, recorder) = FlightRecorder::builder()
        .dump_dir(&inner)
        .cooldown(Duration::ZERO)
        .build()
        .unwrap();
    for reason in [
        "../../etc/passwd",
        "/abs/path",
        "..",
        "a\u{0}b",
        &"x".repeat(500),
        "GET /users?id=1",
    ] {
        recorder.trigger(reason);
    }
    recorder.flush();
    let files = common::files_in(&inner);
    assert_eq!(files.len(), 6);
    assert_eq!(
        common::files_in(dir.path()),
        std::slice::from_ref(&inner),
        "nothing outside"
    );
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.len() < 120, "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
            "{name}"
        );
    }
}

/// A recorder on a mock clock, so latencies are set exactly instead of slept through.
fn slow_recorder(
    dir: &Path,
    configure: impl FnOnce(tracing_blackbox::Builder) -> tracing_blackbox::Builder,
) -> (tracing::Dispatch, FlightRecorder, Arc<quanta::Mock>) {
    let (clock, time) = quanta::Clock::mock();
    let builder = FlightRecorder::builder()
        .dump_dir(dir)
        .cooldown(Duration::ZERO)
        .clock(clock);
    let (layer, recorder) = configure(builder).build().unwrap();
    (common::dispatch(layer), recorder, time)
}

#[test]
fn a_slow_span_yields_one_dump_with_the_span_complete_and_a_fast_one_none() {
    let dir = tempfile::tempdir().unwrap();
    let (dispatch, recorder, time) = slow_recorder(dir.path(), |b| {
        b.dump_on_slow_span(Duration::from_millis(40))
    });
    tracing::dispatcher::with_default(&dispatch, || {
        let _fast = tracing::info_span!("fast_request", id = 1u64).entered();
    });
    recorder.flush();
    assert!(
        common::files_in(dir.path()).is_empty(),
        "a fast span dumps nothing"
    );
    tracing::dispatcher::with_default(&dispatch, || {
        let span = tracing::info_span!("GET /users", id = 2u64);
        let _guard = span.enter();
        info!("working");
        time.increment(Duration::from_millis(60));
    });
    recorder.flush();
    let files = common::files_in(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("slow_span_GET__users_"), "{name}");
    let dump = common::load(&files[0]);
    assert_eq!(dump.other("reason"), "slow_span");
    let trigger = dump.other("trigger");
    assert_eq!(trigger["span"], "GET /users");
    assert_eq!(trigger["fields"]["id"], 2);
    assert_eq!(trigger["timing"], "wall");
    assert!(trigger["duration_ms"].as_f64().unwrap() >= 60.0);
    assert_eq!(trigger["threshold_ms"], 40.0);
    let slices = dump.slices_named("GET /users");
    assert_eq!(slices.len(), 1);
    assert_eq!(slices[0]["args"]["trigger"], true);
    assert!(
        slices[0]["args"].get("incomplete").is_none(),
        "the slow span is complete"
    );
    assert_eq!(slices[0]["args"]["span_id"], trigger["span_id"]);
    let end = dump.phase("e").find(|e| e["name"] == "GET /users").unwrap();
    assert!(end.get("args").is_none(), "closed, not incomplete");
    assert!(
        dump.phase("b")
            .any(|b| b["name"] == "GET /users" && b["args"]["trigger"] == true)
    );
}

#[test]
fn per_name_and_per_target_thresholds_take_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let (dispatch, recorder, time) = slow_recorder(dir.path(), |b| {
        b.dump_on_slow_span(Duration::from_secs(60))
            .slow_span_threshold("db_query", Duration::from_millis(10))
            .slow_span_threshold("triggers", Duration::from_millis(30))
    });
    tracing::dispatcher::with_default(&dispatch, || {
        // Name match: 10 ms.
        tracing::info_span!("db_query").in_scope(|| time.increment(Duration::from_millis(20)));
        // Target match (this test's module): 30 ms; 20 ms is not enough.
        tracing::info_span!("render").in_scope(|| time.increment(Duration::from_millis(20)));
        tracing::info_span!("render_slowly").in_scope(|| time.increment(Duration::from_millis(40)));
    });
    recorder.flush();
    let names: Vec<String> = common::files_in(dir.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("slow_span_db_query_")));
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("slow_span_render_slowly_"))
    );
}

#[test]
fn busy_time_counts_only_entered_time() {
    let dir = tempfile::tempdir().unwrap();
    let threshold = Duration::from_millis(30);
    let (dispatch, recorder, time) = slow_recorder(dir.path(), |b| {
        b.dump_on_slow_span(threshold)
            .slow_span_timing(tracing_blackbox::SpanTiming::Busy)
    });
    tracing::dispatcher::with_default(&dispatch, || {
        // Long-lived but idle: wall 60 ms, busy ~0.
        let idle = tracing::info_span!("idle_wait");
        time.increment(Duration::from_millis(60));
        idle.in_scope(|| {});
        drop(idle);
        // Busy across two entries: 2 × 20 ms.
        let busy = tracing::info_span!("busy_work");
        busy.in_scope(|| time.increment(Duration::from_millis(20)));
        time.increment(Duration::from_millis(5));
        busy.in_scope(|| time.increment(Duration::from_millis(20)));
    });
    recorder.flush();
    let files = common::files_in(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let dump = common::load(&files[0]);
    assert_eq!(dump.other("trigger")["span"], "busy_work");
    assert_eq!(dump.other("trigger")["timing"], "busy");
    let busy_ms = dump.other("trigger")["duration_ms"].as_f64().unwrap();
    assert!((40.0..45.0 + 40.0).contains(&busy_ms), "{busy_ms}");
}

#[test]
fn without_a_cooldown_simultaneous_breaches_each_get_a_dump() {
    let dir = tempfile::tempdir().unwrap();
    let (dispatch, recorder, time) = slow_recorder(dir.path(), |b| {
        b.dump_on_slow_span(Duration::from_millis(20))
    });
    std::thread::scope(|scope| {
        for n in 0..4u64 {
            let dispatch = dispatch.clone();
            let time = Arc::clone(&time);
            scope.spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    tracing::info_span!("parallel", n)
                        .in_scope(|| time.increment(Duration::from_millis(40)));
                })
            });
        }
    });
    recorder.flush();
    let files = common::files_in(dir.path());
    assert_eq!(files.len(), 4, "{files:?}");
    let mut triggered: Vec<u64> = files
        .iter()
        .map(|f| {
            common::load(f).other("trigger")["fields"]["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    triggered.sort_unstable();
    assert_eq!(triggered, [0, 1, 2, 3], "each breach dumped its own span");
}

#[test]
fn the_cooldown_applies_to_slow_spans() {
    let dir = tempfile::tempdir().unwrap();
    let (clock, time) = quanta::Clock::mock();
    let (layer, recorder) = FlightRecorder::builder()
        .dump_dir(dir.path())
        .dump_on_slow_span(Duration::from_millis(5))
        .clock(clock)
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&common::dispatch(layer), || {
        for _ in 0..3 {
            tracing::info_span!("slow").in_scope(|| time.increment(Duration::from_millis(10)));
        }
    });
    recorder.flush();
    assert_eq!(
        common::files_in(dir.path()).len(),
        1,
        "default cooldown: one a minute"
    );
}

#[test]
fn top_n_keeps_the_slowest_and_a_faster_breach_never_replaces_a_slower_one() {
    let dir = tempfile::tempdir().unwrap();
    let (dispatch, recorder, time) = slow_recorder(dir.path(), |b| {
        b.dump_on_slow_span(Duration::from_millis(5))
            .keep_slowest(2)
    });
    tracing::dispatcher::with_default(&dispatch, || {
        for ms in [30u64, 10, 50, 20, 40, 15] {
            tracing::info_span!("request", ms)
                .in_scope(|| time.increment(Duration::from_millis(ms)));
            recorder.flush();
        }
    });
    let mut kept: Vec<u64> = common::files_in(dir.path())
        .iter()
        .map(|f| {
            common::load(f).other("trigger")["fields"]["ms"]
                .as_u64()
                .unwrap()
        })
        .collect();
    kept.sort_unstable();
    assert_eq!(kept, [40, 50]);
}

#[test]
fn an_error_event_triggers_a_dump_that_contains_it() {
    let dir = tempfile::tempdir().unwrap();
    let (dispatch, recorder, _time) = slow_recorder(dir.path(), |b| b.dump_on_error());
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::warn!("only a warning");
        recorder.flush();
        assert!(common::files_in(dir.path()).is_empty());
        tracing::info_span!("checkout")
            .in_scope(|| tracing::error!(code = 502u64, "payment failed"));
    });
    recorder.flush();
    let files = common::files_in(dir.path());
    assert_eq!(files.len(), 1);
    assert!(
        files[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("error_")
    );
    let dump = common::load(&files[0]);
    assert_eq!(dump.other("reason"), "error");
    let last = dump.phase("i").last().unwrap();
    assert_eq!(last["name"], "payment failed");
    assert_eq!(last["args"]["fields"]["code"], 502);
    // The dump names the event it is for.
    let event = dump.other("trigger_event");
    assert_eq!(event["level"], "ERROR");
    assert_eq!(event["target"], "triggers");
    assert_eq!(event["message"], "payment failed");
    assert_eq!(event["fields"]["code"], 502);
    assert_eq!(event["recorded"], true);
    assert!(event["location"].as_str().unwrap().contains("triggers.rs"));
}

/// The event an error dump names is recorded as the recorder records fields: secrets
/// redacted.
#[test]
fn an_error_dump_names_its_event_with_fields_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let (dispatch, recorder, _time) = slow_recorder(dir.path(), |b| b.dump_on_error());
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::error!(password = "hunter2", user = "ada", "login failed");
    });
    recorder.flush();
    let files = common::files_in(dir.path());
    let event = common::load(&files[0]).other("trigger_event").clone();
    assert_eq!(event["message"], "login failed");
    assert_eq!(event["fields"]["user"], "ada");
    assert_eq!(event["fields"]["password"], "[REDACTED]");
}

/// An `on_dump` callback that panics is caught, and reported through `last_dump_error`.
#[test]
fn a_panicking_callback_is_reported_and_dumps_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(Mutex::new(0u32));
    let seen = Arc::clone(&calls);
    let (_layer, recorder) = FlightRecorder::builder()
        .dump_dir(dir.path())
        .cooldown(Duration::ZERO)
        .on_dump(move |_| {
            *seen.lock().unwrap() += 1;
            panic!("the callback broke");
        })
        .build()
        .unwrap();
    assert_eq!(recorder.trigger("first"), TriggerOutcome::Queued);
    recorder.flush();
    let error = recorder.last_dump_error().expect("the panic is reported");
    assert_eq!(error.stage(), tracing_blackbox::DumpStage::Callback);
    assert!(error.to_string().contains("the callback broke"), "{error}");
    assert_eq!(error.path(), common::files_in(dir.path())[0]);
    // The dump thread lives on.
    assert_eq!(recorder.trigger("second"), TriggerOutcome::Queued);
    recorder.flush();
    assert_eq!(*calls.lock().unwrap(), 2);
    assert_eq!(common::files_in(dir.path()).len(), 2);
}

/// `keep_files` bounds the directory across restarts: a crash-looping process does not pile
/// up dumps. Files this crate did not name are never touched.
#[test]
fn retention_holds_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mine = [
        "notes.json",
        "error_20261126T121914.123Z.json",
        "x_20261126T121914.123Z_1.json.bak",
    ];
    for name in mine {
        std::fs::write(dir.path().join(name), "{}").unwrap();
    }
    for run in 0..4 {
        let (_layer, recorder) = FlightRecorder::builder()
            .dump_dir(dir.path())
            .cooldown(Duration::ZERO)
            .keep_files(2)
            .build()
            .unwrap();
        for n in 0..3 {
            assert_eq!(
                recorder.trigger(&format!("run{run}_{n}")),
                TriggerOutcome::Queued
            );
            recorder.flush();
        }
    }
    let names: Vec<String> = common::files_in(dir.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let dumps: Vec<&String> = names.iter().filter(|n| n.starts_with("run")).collect();
    assert_eq!(dumps.len(), 2, "{names:?}");
    assert!(
        dumps.iter().all(|n| n.starts_with("run3_")),
        "the newest: {names:?}"
    );
    for name in mine {
        assert!(names.iter().any(|n| n == name), "{name} kept: {names:?}");
    }
}

#[test]
fn the_error_level_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let (dispatch, recorder, _time) =
        slow_recorder(dir.path(), |b| b.error_level(tracing::Level::WARN));
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info!("fine");
        tracing::warn!("disk almost full");
    });
    recorder.flush();
    let files = common::files_in(dir.path());
    assert_eq!(files.len(), 1);
    assert_eq!(common::load(&files[0]).other("reason"), "error");
}

#[test]
fn hostile_span_names_stay_inside_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().join("inner");
    let (dispatch, recorder, time) =
        slow_recorder(&inner, |b| b.dump_on_slow_span(Duration::from_millis(1)));
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info_span!("../../escape").in_scope(|| time.increment(Duration::from_millis(3)));
        tracing::info_span!("/etc/passwd").in_scope(|| time.increment(Duration::from_millis(3)));
    });
    recorder.flush();
    let files = common::files_in(&inner);
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(
        common::files_in(dir.path()),
        std::slice::from_ref(&inner),
        "nothing outside"
    );
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("slow_span_"), "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
            "{name}"
        );
        common::load(&file);
    }
}
