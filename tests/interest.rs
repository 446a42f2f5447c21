//! The recorder's background work must not slow the application's `tracing` calls: running
//! it "unrecorded" must not leave every callsite's cached interest at "sometimes" (which
//! makes every later event ask each subscriber `enabled` again).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tracing_blackbox::FlightRecorder;
use tracing_subscriber::prelude::*;

/// Counts how often the subscriber is asked whether a callsite is enabled.
struct CountEnabled(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountEnabled {
    fn enabled(
        &self,
        _: &tracing::Metadata<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        self.0.fetch_add(1, Ordering::Relaxed);
        true
    }
}

fn event(n: u64) {
    tracing::info!(n, "application event");
}

#[test]
fn dumps_leave_the_callsites_interest_alone() {
    if !common::in_own_process("dumps_leave_the_callsites_interest_alone") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let asked = Arc::new(AtomicUsize::new(0));
    let (layer, recorder) = FlightRecorder::builder()
        .dump_dir(dir.path())
        .cooldown(std::time::Duration::ZERO)
        .build()
        .unwrap();
    tracing_subscriber::registry()
        .with(layer)
        .with(CountEnabled(Arc::clone(&asked)))
        .init();
    event(0);
    let before = asked.load(Ordering::Relaxed);
    for n in 0..100 {
        event(n);
    }
    assert_eq!(
        asked.load(Ordering::Relaxed),
        before,
        "interest cached as always"
    );
    // Background work: a triggered dump on the dump thread, and a manual one.
    recorder.trigger("background");
    recorder.flush();
    recorder.dump_to_dir(dir.path(), "manual").unwrap();
    let after_dumps = asked.load(Ordering::Relaxed);
    for n in 0..100 {
        event(n);
    }
    assert_eq!(
        asked.load(Ordering::Relaxed) - after_dumps,
        0,
        "after dumps, events still skip `enabled`"
    );
}
