//! A fixed amount of recording work, for instruction counts under valgrind (stable where
//! times are not): `setup`'s layer as the default, a full buffer, then `n` operations.
//!
//! ```text
//! cargo bench --features crash --bench instructions --no-run
//! for n in 200000 400000; do
//!   valgrind --tool=callgrind --callgrind-out-file=cg.$n \
//!     target/release/deps/instructions-* blackbox event_static $n
//! done
//! # (total at 400,000 − total at 200,000) / 200,000 = instructions per operation
//! ```
//! Setups are those of `benches/overhead.rs` (`floor`, `blackbox`, `blackbox_crash`, …);
//! workloads `event_static`, `event_formatted`, `span_lifecycle`, `instrumented_future`.

mod common;

use common::setups::{
    SETUPS, VARIANTS, event_formatted, event_static, instrumented_future, setup, span_lifecycle,
};

fn main() {
    let mut args = std::env::args().skip(1).filter(|arg| arg != "--bench");
    let (Some(name), Some(workload), Some(n)) = (args.next(), args.next(), args.next()) else {
        // `cargo bench` runs every bench target with `--bench`: nothing to count here.
        return;
    };
    let name: &'static str = SETUPS
        .iter()
        .chain(VARIANTS)
        .copied()
        .find(|known| *known == name)
        .unwrap_or_else(|| panic!("unknown setup {name}"));
    let n: u64 = n.parse().expect("an operation count");
    let work: fn(u64) = match workload.as_str() {
        "event_static" => |_| event_static(),
        "event_formatted" => event_formatted,
        "span_lifecycle" => span_lifecycle,
        "instrumented_future" => instrumented_future,
        other => panic!("unknown workload {other}"),
    };
    let setup = setup(name);
    tracing::dispatcher::with_default(&setup.dispatch, || {
        // Fill the buffer first, so chunk rolls and eviction are in the steady state.
        for i in 0..200_000 {
            event_formatted(i);
        }
        for i in 0..n {
            work(std::hint::black_box(i));
        }
    });
}
