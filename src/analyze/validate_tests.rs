//! The format checker's own tests: each invariant, broken on purpose.

use super::*;
use serde_json::json;

fn named(events: Vec<Value>) -> Value {
    let mut all = vec![
        json!({"ph": "M", "name": "thread_name", "pid": 1, "tid": 1, "args": {"name": "a"}}),
        json!({"ph": "M", "name": "thread_name", "pid": 1, "tid": 2, "args": {"name": "b"}}),
    ];
    all.extend(events);
    json!({ "traceEvents": all })
}

#[test]
fn overlapping_slices_are_a_violation() {
    let trace = named(vec![
        json!({"ph": "X", "name": "a", "pid": 1, "tid": 1, "ts": 0.0, "dur": 10.0}),
        json!({"ph": "X", "name": "b", "pid": 1, "tid": 1, "ts": 5.0, "dur": 10.0}),
    ]);
    let err = check(&trace).unwrap_err();
    assert!(err.message.contains("overlaps"), "{err}");
    // Sub-microsecond overlap counts too.
    let trace = named(vec![
        json!({"ph": "X", "name": "a", "pid": 1, "tid": 1, "ts": 0.0, "dur": 10.0}),
        json!({"ph": "X", "name": "b", "pid": 1, "tid": 1, "ts": 9.999, "dur": 0.002}),
    ]);
    assert!(check(&trace).is_err());
}

#[test]
fn unnamed_threads_unbalanced_pairs_and_broken_flows_are_violations() {
    let unnamed = json!({"traceEvents": [{"ph": "i", "name": "x", "pid": 1, "tid": 9, "ts": 1.0}]});
    assert!(check(&unnamed).unwrap_err().message.contains("thread_name"));
    let e_first = named(vec![json!({"ph": "E", "pid": 1, "tid": 1, "ts": 1.0})]);
    assert!(check(&e_first).is_err());
    let two_begins = named(vec![
        json!({"ph": "b", "cat": "c", "id": "0x1", "name": "s", "pid": 1, "tid": 1, "ts": 1.0}),
        json!({"ph": "b", "cat": "c", "id": "0x1", "name": "s", "pid": 1, "tid": 1, "ts": 2.0}),
        json!({"ph": "e", "cat": "c", "id": "0x1", "name": "s", "pid": 1, "tid": 1, "ts": 3.0}),
    ]);
    assert!(check(&two_begins).is_err());
    let flow_outside = named(vec![
        json!({"ph": "X", "name": "a", "pid": 1, "tid": 1, "ts": 0.0, "dur": 1.0}),
        json!({"ph": "s", "cat": "c", "id": 7, "name": "a", "pid": 1, "tid": 1, "ts": 0.0}),
        json!({"ph": "f", "cat": "c", "id": 7, "name": "a", "pid": 1, "tid": 2, "ts": 5.0, "bp": "e"}),
    ]);
    assert!(
        check(&flow_outside)
            .unwrap_err()
            .message
            .contains("not inside")
    );
}

#[test]
fn counters_need_numbers_and_time_moving_forward_per_track() {
    let good = named(vec![
        json!({"ph": "C", "name": "process", "pid": 1, "tid": 1, "ts": 1.0, "args": {"rss": 5, "cpu": 1.5}}),
        json!({"ph": "C", "name": "process", "pid": 1, "tid": 1, "ts": 2.0, "args": {"rss": 6}}),
        json!({"ph": "C", "name": "worker 0", "pid": 1, "tid": 2, "ts": 1.0, "args": {"busy": 0.5}}),
    ]);
    let summary = check(&good).unwrap();
    assert_eq!((summary.counters, summary.counter_tracks), (3, 3));
    let text = named(vec![
        json!({"ph": "C", "name": "process", "pid": 1, "tid": 1, "ts": 1.0, "args": {"rss": "5"}}),
    ]);
    assert!(check(&text).unwrap_err().message.contains("not a number"));
    let back = named(vec![
        json!({"ph": "C", "name": "process", "pid": 1, "tid": 1, "ts": 2.0, "args": {"rss": 5}}),
        json!({"ph": "C", "name": "process", "pid": 1, "tid": 2, "ts": 1.0, "args": {"rss": 6}}),
    ]);
    assert!(check(&back).unwrap_err().message.contains("back in time"));
    let empty = named(vec![
        json!({"ph": "C", "name": "process", "pid": 1, "tid": 1, "ts": 1.0, "args": {}}),
    ]);
    assert!(check(&empty).is_err());
}

#[test]
fn a_well_formed_trace_passes_with_its_counts() {
    let trace = named(vec![
        json!({"ph": "X", "name": "a", "pid": 1, "tid": 1, "ts": 0.0, "dur": 10.0}),
        json!({"ph": "X", "name": "a2", "pid": 1, "tid": 1, "ts": 10.0, "dur": 1.0}),
        json!({"ph": "X", "name": "b", "pid": 1, "tid": 2, "ts": 20.0, "dur": 1.0}),
        json!({"ph": "s", "cat": "c", "id": 7, "name": "a", "pid": 1, "tid": 1, "ts": 0.0}),
        json!({"ph": "f", "cat": "c", "id": 7, "name": "a", "pid": 1, "tid": 2, "ts": 20.0, "bp": "e"}),
        json!({"ph": "b", "cat": "c", "id": "0x1", "name": "s", "pid": 1, "tid": 1, "ts": 0.0}),
        json!({"ph": "e", "cat": "c", "id": "0x1", "name": "s", "pid": 1, "tid": 2, "ts": 21.0}),
        json!({"ph": "i", "s": "t", "name": "x", "pid": 1, "tid": 1, "ts": 1.0}),
    ]);
    let summary = check(&trace).unwrap();
    assert_eq!(
        (
            summary.slices,
            summary.flows,
            summary.async_pairs,
            summary.instants
        ),
        (3, 1, 1, 1)
    );
    assert_eq!(summary.threads, 2);
    assert!(
        !summary.sorted_per_thread,
        "the instant comes after a later slice in the file"
    );
}
