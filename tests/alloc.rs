//! The hot path allocates nothing in steady state: counted by a global allocator, on this
//! test's own thread only, with Registry + our layer as the whole subscriber.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt;

use tracing::{debug, info, info_span, warn};
use tracing_blackbox::FlightRecorder;
use tracing_subscriber::layer::SubscriberExt;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: forwards to the system allocator; the bookkeeping touches only thread-locals
// with const initializers, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn count_allocations(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    f();
    COUNTING.with(|on| on.set(false));
    ALLOCATIONS.with(|n| n.get())
}

#[derive(Debug)]
#[allow(dead_code)]
struct Order {
    id: u64,
    items: [u16; 4],
}

struct Display3;

impl fmt::Display for Display3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("three")
    }
}

fn workload(round: u64) {
    let order = Order {
        id: round,
        items: [1, 2, 3, 4],
    };
    info!(a = round, b = true, "static message");
    info!(
        user = "ada",
        password = "redacted before it is stored",
        "login"
    );
    debug!(name = "a string field", ?order, shown = %Display3, "formatted {}", round);
    let span = info_span!("request", id = round, path = "/users");
    {
        let _guard = span.enter();
        warn!(attempt = 2i64, ratio = 0.5f64, "inside");
        span.record("id", round + 1);
        let inner = info_span!("inner", n = 1u64);
        inner.follows_from(&span);
        let _inner = inner.enter();
    }
    drop(span);
}

#[test]
fn steady_state_recording_allocates_nothing() {
    steady_state(FlightRecorder::builder());
}

#[test]
fn steady_state_with_latency_thresholds_allocates_nothing() {
    // Every span is timed (wall and busy), none breaches.
    steady_state(
        FlightRecorder::builder()
            .dump_on_slow_span(std::time::Duration::from_secs(3600))
            .slow_span_threshold("inner", std::time::Duration::from_secs(3600))
            .slow_span_timing(tracing_blackbox::SpanTiming::Busy),
    );
}

fn steady_state(builder: tracing_blackbox::Builder) {
    let max_bytes = 64 << 10;
    let (layer, recorder) = builder.max_bytes(max_bytes).build().unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        // Warm up: fill the buffer several times over, so storage is at max_bytes and every
        // chunk from here on is recycled.
        let mut round = 0;
        while recorder.snapshot().counters.overwritten < 20_000 {
            for _ in 0..1000 {
                workload(round);
                round += 1;
            }
        }
        assert!(recorder.allocated_bytes() > max_bytes / 2);
        let allocations = count_allocations(|| {
            for _ in 0..20_000 {
                workload(round);
                round += 1;
            }
        });
        assert_eq!(
            allocations, 0,
            "allocations in 20,000 rounds of steady-state recording"
        );
        // The counter works: a snapshot allocates.
        assert!(count_allocations(|| drop(recorder.snapshot())) > 0);
        assert!(recorder.allocated_bytes() <= max_bytes);
    });
}

/// A trigger that cannot be queued copies nothing: with the dump thread busy and the queue
/// full, error events allocate nothing of their own (no snapshot is taken only to be thrown
/// away). Recording itself may still allocate a chunk or two: the queued snapshot pins the
/// chunks it shares, so the recorder cannot reuse them.
#[test]
fn a_trigger_that_cannot_be_queued_copies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let wait = std::sync::Mutex::new(wait);
    let (layer, recorder) = FlightRecorder::builder()
        .dump_dir(dir.path())
        .dump_on_error()
        .cooldown(std::time::Duration::ZERO)
        .max_queued_dumps(1)
        .on_dump(move |_| {
            // Hold the dump thread until the test is done.
            let _ = wait.lock().unwrap().recv();
        })
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        for round in 0..2_000u64 {
            info!(round, "warm up");
        }
        // The first error is admitted (queued, then held in the callback): the queue is full.
        tracing::error!("first");
        let allocations = count_allocations(|| {
            for round in 0..1_000u64 {
                tracing::error!(round, "storm");
            }
        });
        assert!(
            allocations < 20,
            "{allocations} allocations for 1,000 suppressed triggers"
        );
    });
    release.send(()).unwrap();
    recorder.flush();
    assert_eq!(common_files(dir.path()), 1);
}

fn common_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| entries.count())
}
