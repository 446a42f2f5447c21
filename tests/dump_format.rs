//! What a dump contains: slices, lifetimes, events, fields, metadata and `otherData`.

mod common;

use common::{dump, recorder_with};
use tracing::{debug, info, info_span, instrument, warn};

#[instrument(fields(order_id = order))]
fn handle(order: u64, customer: &str) {
    info!(items = 3u64, paid = true, "handling order");
    validate(order);
}

#[instrument]
fn validate(order: u64) {
    debug!(order, "validated");
}

#[test]
fn instrumented_spans_become_nested_slices_with_fields() {
    let (dispatch, recorder) = recorder_with(1 << 20);
    tracing::dispatcher::with_default(&dispatch, || {
        handle(42, "ada");
        handle(43, "grace");
    });
    let dump = dump(&recorder);

    let handles = dump.slices_named("handle");
    assert_eq!(handles.len(), 2);
    assert_eq!(handles[0]["args"]["fields"]["order_id"], 42);
    assert_eq!(handles[0]["args"]["fields"]["customer"], "ada");
    assert_eq!(handles[1]["args"]["fields"]["order_id"], 43);
    assert_ne!(handles[0]["args"]["span_id"], handles[1]["args"]["span_id"]);

    let validates = dump.slices_named("validate");
    assert_eq!(validates.len(), 2);
    for (outer, inner) in handles.iter().zip(&validates) {
        assert_eq!(inner["args"]["parent_id"], outer["args"]["span_id"]);
        let (o_ts, o_dur) = (
            outer["ts"].as_f64().unwrap(),
            outer["dur"].as_f64().unwrap(),
        );
        let (i_ts, i_dur) = (
            inner["ts"].as_f64().unwrap(),
            inner["dur"].as_f64().unwrap(),
        );
        assert!(
            o_ts <= i_ts && i_ts + i_dur <= o_ts + o_dur,
            "validate nests in handle"
        );
        assert!(outer.get("incomplete").is_none() && outer["args"].get("incomplete").is_none());
    }

    let events: Vec<_> = dump.phase("i").collect();
    assert_eq!(events.len(), 4);
    assert_eq!(events[0]["name"], "handling order");
    assert_eq!(events[0]["s"], "t");
    assert_eq!(events[0]["args"]["level"], "INFO");
    assert_eq!(events[0]["args"]["fields"]["items"], 3);
    assert_eq!(events[0]["args"]["fields"]["paid"], true);
    assert_eq!(events[0]["args"]["span_id"], handles[0]["args"]["span_id"]);
    assert!(
        events[0]["args"]["location"]
            .as_str()
            .unwrap()
            .contains("dump_format.rs:")
    );
    assert_eq!(
        events[1]["args"]["span_id"],
        validates[0]["args"]["span_id"]
    );

    // Lifetimes: one b/e pair per span, closed ones not incomplete.
    assert_eq!(dump.phase("b").count(), 4);
    assert_eq!(dump.phase("e").count(), 4);
    assert!(dump.phase("e").all(|e| e.get("args").is_none()));
    let b = dump.phase("b").find(|b| b["name"] == "handle").unwrap();
    assert_eq!(b["args"]["level"], "INFO");
    assert_eq!(b["cat"], "dump_format");

    // Metadata: process and thread names.
    let meta: Vec<_> = dump.phase("M").collect();
    assert!(meta.iter().any(|m| m["name"] == "process_name"));
    let thread_name = meta.iter().find(|m| m["name"] == "thread_name").unwrap();
    let this_thread = std::thread::current();
    assert_eq!(thread_name["args"]["name"], this_thread.name().unwrap());

    assert_eq!(dump.other("reason"), "manual");
    assert_eq!(dump.other("format"), "tracing-blackbox");
    assert_eq!(dump.counter("written"), dump.counter("retained"));
    assert_eq!(dump.counter("written"), 4 * 4 + 4);
}

#[test]
fn timestamps_have_nanosecond_decimals_and_wall_clock_window() {
    let (dispatch, recorder) = recorder_with(1 << 20);
    tracing::dispatcher::with_default(&dispatch, || {
        let span = info_span!("work");
        let _guard = span.enter();
        info!("inside");
    });
    let mut bytes = Vec::new();
    recorder.write_to(&mut bytes).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let ts_re = text
        .split("\"ts\":")
        .skip(1)
        .map(|rest| rest.split([',', '}']).next().unwrap());
    for ts in ts_re {
        let (_, decimals) = ts.split_once('.').expect("ts has decimals");
        assert_eq!(decimals.len(), 3, "µs with three decimals: {ts}");
    }
    let dump = common::Dump {
        json: serde_json::from_str(&text).unwrap(),
    };
    let start =
        chrono::DateTime::parse_from_rfc3339(dump.other("window_start").as_str().unwrap()).unwrap();
    let end =
        chrono::DateTime::parse_from_rfc3339(dump.other("window_end").as_str().unwrap()).unwrap();
    let anchor =
        chrono::DateTime::parse_from_rfc3339(dump.other("anchor").as_str().unwrap()).unwrap();
    assert!(anchor <= start && start <= end);
    assert!((chrono::Utc::now() - end.to_utc()).num_seconds().abs() < 60);
}

#[test]
fn open_spans_are_incomplete_and_closed_ones_are_not() {
    let (dispatch, recorder) = recorder_with(1 << 20);
    let dump = tracing::dispatcher::with_default(&dispatch, || {
        drop(info_span!("closed").entered());
        let open = info_span!("still_open", step = 1u64);
        let _guard = open.enter();
        open.record("step", 2u64);
        warn!("while open");
        dump(&recorder)
    });
    let open = dump.slices_named("still_open");
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["args"]["incomplete"], true);
    assert_eq!(
        open[0]["args"]["fields"]["step"], 2,
        "record() updates show in args"
    );
    let e = dump.phase("e").find(|e| e["name"] == "still_open").unwrap();
    assert_eq!(e["args"]["incomplete"], true);
    let closed = dump.slices_named("closed");
    assert!(closed[0]["args"].get("incomplete").is_none());
    assert!(
        dump.phase("e")
            .find(|e| e["name"] == "closed")
            .unwrap()
            .get("args")
            .is_none()
    );
}

#[test]
fn follows_from_is_listed_in_the_lifetime_args() {
    let (dispatch, recorder) = recorder_with(1 << 20);
    tracing::dispatcher::with_default(&dispatch, || {
        let cause = info_span!("cause");
        let effect = info_span!("effect");
        effect.follows_from(&cause);
    });
    let dump = dump(&recorder);
    let cause = dump.phase("b").find(|b| b["name"] == "cause").unwrap();
    let effect = dump.phase("b").find(|b| b["name"] == "effect").unwrap();
    assert_eq!(effect["args"]["follows_from"][0], cause["args"]["span_id"]);
}

#[test]
fn long_values_are_cut_with_a_visible_marker() {
    let (layer, recorder) = tracing_blackbox::FlightRecorder::builder()
        .max_bytes(1 << 20)
        .max_field_len(16)
        .build()
        .unwrap();
    let dispatch = common::dispatch(layer);
    let long = "é".repeat(40);
    tracing::dispatcher::with_default(&dispatch, || {
        info!(text = long.as_str(), debug = ?vec![1u8; 50], short = "ok", "m");
    });
    let dump = dump(&recorder);
    let event = dump.phase("i").next().unwrap();
    let text = event["args"]["fields"]["text"].as_str().unwrap();
    assert!(text.ends_with(tracing_blackbox::TRUNCATION_MARKER));
    assert_eq!(
        text.trim_end_matches(tracing_blackbox::TRUNCATION_MARKER),
        "é".repeat(8)
    );
    let debug = event["args"]["fields"]["debug"].as_str().unwrap();
    assert!(debug.starts_with("[1, 1, 1") && debug.ends_with(tracing_blackbox::TRUNCATION_MARKER));
    assert_eq!(event["args"]["fields"]["short"], "ok");
}

#[test]
fn all_value_kinds_round_trip() {
    let (dispatch, recorder) = recorder_with(1 << 20);
    tracing::dispatcher::with_default(&dispatch, || {
        let err = std::io::Error::other("disk on fire");
        info!(
            u = 7u64,
            i = -7i64,
            f = 1.5f64,
            b = false,
            big = u128::MAX,
            neg = i128::MIN,
            s = "str",
            d = ?("tuple", 1),
            e = &err as &(dyn std::error::Error + 'static),
            "kinds"
        );
    });
    let snapshot = recorder.snapshot();
    let tracing_blackbox::RecordKind::Event { fields, .. } = &snapshot.records[0].kind else {
        panic!("expected an event");
    };
    use tracing_blackbox::FieldValue::*;
    let get = |name: &str| {
        fields
            .iter()
            .find(|f| f.name == name)
            .unwrap()
            .value
            .clone()
    };
    assert_eq!(get("u"), U64(7));
    assert_eq!(get("i"), I64(-7));
    assert_eq!(get("f"), F64(1.5));
    assert_eq!(get("b"), Bool(false));
    assert_eq!(get("big"), U128(u128::MAX));
    assert_eq!(get("neg"), I128(i128::MIN));
    assert_eq!(get("s"), Str("str".into()));
    assert_eq!(get("d"), Str("(\"tuple\", 1)".into()));
    assert_eq!(get("e"), Str("disk on fire".into()));
    assert_eq!(get("message"), Str("kinds".into()));
    let dump = dump(&recorder);
    assert_eq!(dump.phase("i").next().unwrap()["args"]["fields"]["f"], 1.5);
}

#[test]
fn many_fields_beyond_the_record_limit_are_flagged_not_lost_silently() {
    let (layer, recorder) = tracing_blackbox::FlightRecorder::builder()
        .max_field_len(4096)
        .build()
        .unwrap();
    let dispatch = common::dispatch(layer);
    let big = "x".repeat(4096);
    tracing::dispatcher::with_default(&dispatch, || {
        info!(
            a = big.as_str(),
            b = big.as_str(),
            c = big.as_str(),
            n = 1u64,
            "too big"
        );
    });
    let dump = dump(&recorder);
    let event = dump.phase("i").next().unwrap();
    assert_eq!(event["args"]["fields_dropped"], true);
    assert_eq!(event["args"]["fields"]["a"].as_str().unwrap().len(), 4096);
}

#[test]
fn events_with_an_explicit_parent_say_so() {
    let (dispatch, recorder) = recorder_with(1 << 20);
    tracing::dispatcher::with_default(&dispatch, || {
        let job = info_span!("job");
        job.in_scope(|| info!("inside"));
        info!(parent: &job, "about the job, from outside it");
        let _other = info_span!("other").entered();
        info!(parent: None, "a root event");
    });
    let dump = dump(&recorder);
    let events: Vec<_> = dump.phase("i").collect();
    let job_id = &dump.slices_named("job")[0]["args"]["span_id"];
    assert_eq!(&events[0]["args"]["span_id"], job_id);
    assert!(events[0]["args"].get("explicit_parent").is_none());
    assert_eq!(&events[1]["args"]["span_id"], job_id);
    assert_eq!(events[1]["args"]["explicit_parent"], true);
    assert!(events[2]["args"].get("span_id").is_none());
    assert_eq!(events[2]["args"]["explicit_parent"], true);
}

/// JSON has no NaN or infinities; `null` would lose them, so they are written as strings.
#[test]
fn non_finite_floats_round_trip_as_strings() {
    let (dispatch, recorder) = common::recorder_with(1 << 20);
    tracing::dispatcher::with_default(&dispatch, || {
        let span = tracing::info_span!("ratio", value = f64::NAN);
        span.record("value", f64::NEG_INFINITY);
        let _entered = span.enter();
        tracing::info!(
            nan = f64::NAN,
            inf = f64::INFINITY,
            ninf = f64::NEG_INFINITY,
            ok = 1.5,
            "floats"
        );
    });
    let dump = common::dump(&recorder);
    let event = dump.phase("i").find(|e| e["name"] == "floats").unwrap();
    let fields = &event["args"]["fields"];
    assert_eq!(fields["nan"], "NaN");
    assert_eq!(fields["inf"], "inf");
    assert_eq!(fields["ninf"], "-inf");
    assert_eq!(fields["ok"], 1.5);
    let slice = &dump.slices_named("ratio")[0];
    assert_eq!(
        slice["args"]["fields"]["value"], "-inf",
        "record() updates too"
    );
}
