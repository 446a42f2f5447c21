//! Async timelines on tokio: a poll is a slice on the worker that ran it, a span's lifetime one
//! async slice of its own, flows link the polls of a span across threads.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::future::join_all;
use tracing::{Instrument, info, info_span, instrument};
use tracing_blackbox::FlightRecorder;

fn runtime(dispatch: &tracing::Dispatch, workers: usize) -> tokio::runtime::Runtime {
    let dispatch = dispatch.clone();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_time()
        .on_thread_start(move || {
            // The worker's default for its whole life.
            std::mem::forget(tracing::dispatcher::set_default(&dispatch));
        })
        .build()
        .unwrap()
}

#[instrument]
async fn child(request: u64, n: u64) {
    for step in 0..5u64 {
        info!(step, "child step");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[instrument]
async fn request(id: u64) {
    info!("start");
    join_all((0..3).map(|n| child(id, n))).await;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        tokio::task::yield_now().await;
    }
}

#[test]
fn tokio_tasks_give_per_poll_slices_own_lifetimes_and_flows() {
    let (dispatch, recorder) = common::recorder_with(8 << 20);
    let rt = runtime(&dispatch, 4);
    let _default = tracing::dispatcher::set_default(&dispatch);
    rt.block_on(async {
        let tasks: Vec<_> = (0..16u64).map(|id| tokio::spawn(request(id))).collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    drop(rt);
    let dump = common::dump(&recorder); // nesting, balance, unique ids, flows: all checked

    // Each request's children are separate async slices: own ids, overlapping in time.
    let begins: Vec<_> = dump.phase("b").filter(|b| b["name"] == "child").collect();
    assert_eq!(begins.len(), 48);
    let ids: HashSet<_> = begins.iter().map(|b| b["id"].clone()).collect();
    assert_eq!(
        ids.len(),
        48,
        "every child has its own async id, never its root's"
    );
    let ends: HashMap<String, f64> = dump
        .phase("e")
        .filter(|e| e["name"] == "child")
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_owned(),
                e["ts"].as_f64().unwrap(),
            )
        })
        .collect();
    let mut by_parent: HashMap<u64, Vec<(f64, f64)>> = HashMap::new();
    for b in &begins {
        let end = ends[b["id"].as_str().unwrap()];
        by_parent
            .entry(b["args"]["parent_id"].as_u64().unwrap())
            .or_default()
            .push((b["ts"].as_f64().unwrap(), end));
    }
    assert_eq!(by_parent.len(), 16);
    for children in by_parent.values() {
        assert_eq!(children.len(), 3);
        let (a, b) = (children[0], children[1]);
        assert!(
            a.0 < b.1 && b.0 < a.1,
            "join_all children run side by side: {children:?}"
        );
    }

    // Polls are slices on the worker that ran them; some spans hopped between workers, and
    // their polls are linked by flows in time order.
    let mut polls: HashMap<u64, Vec<(f64, u64)>> = HashMap::new();
    for x in dump.phase("X") {
        polls
            .entry(x["args"]["span_id"].as_u64().unwrap())
            .or_default()
            .push((x["ts"].as_f64().unwrap(), x["tid"].as_u64().unwrap()));
    }
    let hopped: Vec<u64> = polls
        .iter()
        .filter(|(_, p)| p.iter().map(|&(_, tid)| tid).collect::<HashSet<_>>().len() >= 2)
        .map(|(&span, _)| span)
        .collect();
    assert!(
        !hopped.is_empty(),
        "with 4 workers and 16 requests, some span ran on two workers"
    );
    for span in hopped {
        let mut slices = polls[&span].clone();
        slices.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut steps: Vec<_> = dump
            .events()
            .iter()
            .filter(|e| ["s", "t", "f"].contains(&e["ph"].as_str().unwrap()) && e["id"] == span)
            .map(|e| {
                (
                    e["ts"].as_f64().unwrap(),
                    e["tid"].as_u64().unwrap(),
                    e["ph"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        steps.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert_eq!(steps.len(), slices.len(), "one flow step per poll");
        for (i, (step, slice)) in steps.iter().zip(&slices).enumerate() {
            assert_eq!((step.0, step.1), *slice, "step {i} sits on poll {i}");
        }
        assert_eq!(steps.first().unwrap().2, "s");
        assert_eq!(steps.last().unwrap().2, "f");
    }
}

#[test]
fn a_current_thread_runtime_interleaves_and_still_nests() {
    let (dispatch, recorder) = common::recorder_with(4 << 20);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        rt.block_on(async {
            // Guards held across .await: spans of concurrent futures interleave on one thread.
            let a = async {
                let _guard = info_span!("held_a").entered();
                tokio::time::sleep(Duration::from_millis(1)).await;
                info!("a resumed");
            };
            let b = async {
                let _guard = info_span!("held_b").entered();
                tokio::time::sleep(Duration::from_millis(5)).await;
                info!("b resumed");
            };
            futures::join!(a, b);
            join_all((0..3).map(|n| child(0, n)))
                .instrument(info_span!("parent"))
                .await;
        })
    });
    let dump = common::dump(&recorder);
    assert!(
        dump.counter("repaired_exits") >= 1,
        "interleaved guards were repaired"
    );
    assert_eq!(dump.phase("b").filter(|b| b["name"] == "child").count(), 3);
}

#[test]
fn the_latency_threshold_dumps_a_slow_async_request_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, recorder) = FlightRecorder::builder()
        .dump_dir(dir.path())
        .cooldown(Duration::ZERO)
        .slow_span_threshold("request", Duration::from_millis(30))
        .build()
        .unwrap();
    let dispatch = common::dispatch(layer);
    let rt = runtime(&dispatch, 2);
    let _default = tracing::dispatcher::set_default(&dispatch);
    rt.block_on(async {
        tokio::spawn(request(1)).await.unwrap();
        tokio::spawn(
            async {
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            .instrument(info_span!("request", id = 2u64)),
        )
        .await
        .unwrap();
    });
    recorder.flush();
    drop(rt);
    let files = common::files_in(dir.path());
    let slow: Vec<_> = files.iter().map(|f| common::load(f)).collect();
    let ids: Vec<u64> = slow
        .iter()
        .map(|d| d.other("trigger")["fields"]["id"].as_u64().unwrap())
        .collect();
    assert!(ids.contains(&2), "the slow request dumped: {ids:?}");
    let dump = slow
        .iter()
        .find(|d| d.other("trigger")["fields"]["id"] == 2)
        .unwrap();
    let begin = dump
        .phase("b")
        .find(|b| b["args"]["trigger"] == true)
        .unwrap();
    let end = dump.phase("e").find(|e| e["id"] == begin["id"]).unwrap();
    assert!(
        end.get("args").is_none(),
        "the slow request is whole (closed) in its dump"
    );
    assert!(end["ts"].as_f64().unwrap() - begin["ts"].as_f64().unwrap() >= 40_000.0);
}
