//! The layer's per-thread slots against a plain model: random sequences of recorders made,
//! recorded into (alone, or between two others stacked on one subscriber), switched between
//! and dropped, on one thread. The layer caches the slot of the last recorder a thread used;
//! whatever the order, each live recorder must hold exactly the events the model says, in
//! order, with nothing dropped. (Re-entrant calls are `recording.rs`'s.)

mod common;

use proptest::prelude::*;
use tracing::info;
use tracing_blackbox::FlightRecorder;
use tracing_subscriber::layer::SubscriberExt;

#[derive(Debug, Clone)]
enum Op {
    /// A new recorder, with its own subscriber.
    Make,
    /// An event through recorder `n` (modulo the live ones).
    Record(usize),
    /// Two new recorders stacked on one subscriber, recording two events (the second with
    /// step `m`) around an event through recorder `n`.
    RecordBoth(usize, usize),
    /// Recorder `n` and its subscriber dropped.
    Drop(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Make),
        6 => any::<usize>().prop_map(Op::Record),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(n, m)| Op::RecordBoth(n, m)),
        1 => any::<usize>().prop_map(Op::Drop),
    ]
}

struct Live {
    recorder: FlightRecorder,
    layer_dispatch: tracing::Dispatch,
    /// The model: the events this recorder must hold, in order.
    expected: Vec<u64>,
}

fn make() -> Live {
    let (layer, recorder) = FlightRecorder::builder()
        .max_bytes(1 << 20)
        .build()
        .unwrap();
    Live {
        recorder,
        layer_dispatch: common::dispatch(layer),
        expected: Vec::new(),
    }
}

fn run(ops: &[Op]) {
    let mut live: Vec<Live> = vec![make()];
    for (step, op) in ops.iter().enumerate() {
        let step = step as u64;
        match *op {
            Op::Make => live.push(make()),
            _ if live.is_empty() => live.push(make()),
            Op::Record(n) => {
                let n = n % live.len();
                tracing::dispatcher::with_default(&live[n].layer_dispatch, || info!(step, "event"));
                live[n].expected.push(step);
            }
            Op::RecordBoth(n, m) => {
                // Two fresh recorders stacked on one subscriber, with recorder `n` used in
                // between: the thread switches slots on every callback.
                let n = n % live.len();
                let (first, first_rec) = FlightRecorder::builder().build().unwrap();
                let (second, second_rec) = FlightRecorder::builder().build().unwrap();
                let both = tracing_subscriber::registry().with(first).with(second);
                tracing::subscriber::with_default(both, || {
                    info!(step, "stacked");
                    tracing::dispatcher::with_default(&live[n].layer_dispatch, || {
                        info!(step, "event")
                    });
                    info!(step = m as u64, "stacked");
                });
                live[n].expected.push(step);
                for stacked in [first_rec, second_rec] {
                    let steps: Vec<u64> = common::dump(&stacked)
                        .phase("i")
                        .map(|e| e["args"]["fields"]["step"].as_u64().unwrap())
                        .collect();
                    assert_eq!(steps, [step, m as u64], "each stacked recorder holds both");
                }
            }
            Op::Drop(n) => {
                let n = n % live.len();
                check(&live[n]);
                live.swap_remove(n);
            }
        }
    }
    for recorder in &live {
        check(recorder);
    }
}

fn check(live: &Live) {
    let dump = common::dump(&live.recorder);
    let steps: Vec<u64> = dump
        .phase("i")
        .map(|e| e["args"]["fields"]["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, live.expected, "exactly its own events, in order");
    assert_eq!(live.recorder.status().dropped, 0, "nothing dropped");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn slots_follow_the_recorders_a_thread_uses(ops in prop::collection::vec(op(), 1..60)) {
        run(&ops);
    }
}
