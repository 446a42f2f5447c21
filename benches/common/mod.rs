//! Helpers shared by the benches.
#![allow(dead_code)]

pub mod setups;

use std::sync::Barrier;
use std::time::{Duration, Instant};

use tracing::Dispatch;

/// Runs `event(i)` for `i` in `0..iters` on each of `threads` threads at once (all start
/// together); returns the wall time.
pub fn on_threads(dispatch: &Dispatch, threads: usize, iters: u64, event: fn(u64)) -> Duration {
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                tracing::dispatcher::with_default(dispatch, || {
                    barrier.wait();
                    for i in 0..iters {
                        event(i);
                    }
                    barrier.wait();
                })
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    })
}
