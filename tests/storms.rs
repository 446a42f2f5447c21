//! Memory under trigger storms and hostile dumps: peak RSS stays within a bound set by the
//! budget, whatever the trigger rate. Each test runs in a process of its own (VmHWM is
//! process-wide).

mod common;

use std::time::{Duration, Instant};

use tracing::info;
use tracing_blackbox::FlightRecorder;

/// Errors as fast as the recorder accepts them, with no cooldown, while two threads record
/// without pause: queued snapshots pin chunks that recording then cannot reuse, so the
/// recorder must stop admitting dumps once they hold a budget's worth.
#[test]
fn an_error_storm_without_cooldown_stays_within_the_memory_bound() {
    if !common::in_own_process("an_error_storm_without_cooldown_stays_within_the_memory_bound") {
        return;
    }
    let max_bytes = 4 << 20;
    let dir = tempfile::tempdir().unwrap();
    let (layer, recorder) = FlightRecorder::builder()
        .max_bytes(max_bytes)
        .dump_dir(dir.path())
        .dump_on_error()
        .cooldown(Duration::ZERO)
        .keep_files(4)
        .build()
        .unwrap();
    let dispatch = common::dispatch(layer);
    // Fill the buffer first: the bound is about what dumps add.
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..200_000u64 {
            info!(i, text = "some payload to fill the buffer", "warm up");
        }
    });
    let before = common::peak_rss();
    let stop = Instant::now() + Duration::from_millis(1500);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let dispatch = dispatch.clone();
            scope.spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    let mut i = 0u64;
                    while Instant::now() < stop {
                        info!(i, text = "some payload to fill the buffer", "busy");
                        i += 1;
                    }
                })
            });
        }
        let dispatch = dispatch.clone();
        scope.spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || {
                while Instant::now() < stop {
                    tracing::error!("something failed");
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        });
    });
    recorder.flush();
    let growth = common::peak_rss().saturating_sub(before);
    let bound = 4 * max_bytes + (8 << 20);
    println!("error storm: peak grew by {growth} bytes (bound {bound})");
    assert!(
        growth <= bound,
        "peak grew by {growth} bytes (bound {bound})"
    );
    // Dumps were written, and they are whole.
    let files = common::files_in(dir.path());
    assert!(!files.is_empty());
    for file in files {
        common::load(&file);
    }
}

/// One dump of a buffer full of 100,000 distinct span callsites: the encoder's working memory
/// is about the buffer's size, not several times it.
#[test]
fn a_dump_of_many_distinct_spans_stays_within_the_memory_bound() {
    if !common::in_own_process("a_dump_of_many_distinct_spans_stays_within_the_memory_bound") {
        return;
    }
    use tracing_core::callsite::DefaultCallsite;
    use tracing_core::field::FieldSet;
    use tracing_core::{Kind, Level, Metadata};

    /// A span callsite's metadata, without fields.
    const fn span_metadata(name: &'static str) -> Metadata<'static> {
        Metadata::new(
            name,
            "storms",
            Level::INFO,
            None,
            None,
            None,
            FieldSet::new(&[], tracing_core::identify_callsite!(&CALLSITE)),
            Kind::SPAN,
        )
    }
    static CALLSITE: DefaultCallsite = DefaultCallsite::new(&META);
    static META: Metadata<'static> = span_metadata("span");
    let max_bytes = tracing_blackbox::Builder::DEFAULT_MAX_BYTES;
    let (layer, recorder) = FlightRecorder::builder().build().unwrap();
    let dispatch = common::dispatch(layer);
    tracing::dispatcher::with_default(&dispatch, || {
        for n in 0..100_000u64 {
            let name: &'static str = Box::leak(format!("span_{n}").into_boxed_str());
            let metadata: &'static Metadata<'static> = Box::leak(Box::new(span_metadata(name)));
            let span = tracing::Span::new(metadata, &metadata.fields().value_set(&[]));
            let _entered = span.enter();
        }
    });
    let before = common::peak_rss();
    let written = recorder.write_to(std::io::sink()).unwrap();
    let growth = common::peak_rss().saturating_sub(before);
    let bound = 3 * max_bytes;
    println!(
        "distinct spans: a {written}-byte dump grew the peak by {growth} bytes (bound {bound})"
    );
    assert!(written > 10 << 20, "the dump is big: {written} bytes");
    assert!(
        growth <= bound,
        "peak grew by {growth} bytes (bound {bound})"
    );
}
