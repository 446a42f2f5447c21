//! The owner's lock-free append racing everything else: threads append without a lock while
//! others take their current chunks away (eviction of an idle thread's chunk, under a budget
//! of four chunks) and a snapshot thread copies them. Every record must come out whole,
//! every thread's records as one run in order, and the counters exact. A third of the
//! records are enter/exit/close-shaped, appended through the in-place path.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::model_tests::nanos_between;
use super::*;
use crate::record::encode::{Encoded, SPAN_RECORD_BYTES, SpanRecord};

/// A record of `size` bytes whose every byte after its id repeats the id's low byte, so a
/// torn or overwritten record shows.
fn record(id: u64, size: usize) -> Vec<u8> {
    let mut bytes = vec![id as u8; size];
    bytes[..2].copy_from_slice(&(size as u16).to_le_bytes());
    bytes[2..10].copy_from_slice(&id.to_le_bytes());
    bytes
}

/// A span record standing for `id`: its kind byte repeats the id's low byte, its span is the
/// id. (The other records are at least 24 bytes, so the length tells them apart.)
fn span_record(id: u64, ts: u64) -> SpanRecord {
    SpanRecord::new(id as u8, ts, id)
}

/// The ids in a chunk's bytes, checking each record is whole.
fn check_records(mut bytes: &[u8], out: &mut Vec<u64>) {
    while !bytes.is_empty() {
        let len = usize::from(u16::from_le_bytes([bytes[0], bytes[1]]));
        if len == SPAN_RECORD_BYTES {
            let id = u64::from_le_bytes(bytes[12..20].try_into().unwrap());
            assert_eq!(
                (bytes[2], bytes[3]),
                (id as u8, 0),
                "span record {id} whole"
            );
            out.push(id);
            bytes = &bytes[len..];
            continue;
        }
        assert!(len >= 10 && len <= bytes.len(), "a record's length");
        let id = u64::from_le_bytes(bytes[2..10].try_into().unwrap());
        assert!(
            bytes[10..len].iter().all(|&b| b == id as u8),
            "record {id} whole"
        );
        out.push(id);
        bytes = &bytes[len..];
    }
}

/// Checks a snapshot: per thread, whole records in one increasing run of its ids; counters
/// adding up.
fn check_snapshot(raw: &StoredChunks) {
    let mut retained = 0;
    for thread in &raw.threads {
        let mut ids = Vec::new();
        for chunk in &thread.sealed {
            check_records(chunk.bytes(), &mut ids);
        }
        check_records(thread.current.bytes(), &mut ids);
        assert!(
            ids.windows(2).all(|w| w[1] == w[0] + 1),
            "thread {}: one run in order",
            thread.identity.tid
        );
        retained += ids.len() as u64;
    }
    assert_eq!(raw.written, retained + raw.overwritten, "counters exact");
}

#[test]
fn lock_free_appends_racing_evictions_and_snapshots() {
    for _ in 0..3 {
        race_once();
    }
}

fn race_once() {
    const THREADS: u64 = 4;
    const RECORDS: u64 = 60_000;
    // Four chunks of 16 KiB: every roll takes a chunk from some thread, often the current
    // chunk of one that is appending at that moment.
    let limits = StorageLimits::for_budget(64 << 10, Duration::from_secs(3600));
    let storage = Storage::new(limits);
    let done = AtomicBool::new(false);
    let mut appended = 0;
    let mut snapshots = 0;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (1..=THREADS)
            .map(|tid| {
                let storage = &storage;
                scope.spawn(move || {
                    let buffer = storage.register(ThreadIdentity { tid, name: None });
                    let mut kept = 0u64;
                    for id in 1..=RECORDS {
                        let ts = id * THREADS + tid;
                        let kept_this = if id % 3 == 0 {
                            let span = span_record(id, ts);
                            let bytes = span.to_bytes();
                            buffer.try_append_span(span)
                                || storage.append_slow(
                                    &buffer,
                                    Encoded::span(&bytes),
                                    ts,
                                    ts,
                                    nanos_between,
                                )
                        } else {
                            let bytes = record(id, 24 + (id % 200) as usize);
                            let record = Encoded::for_storage_tests(&bytes);
                            buffer.try_append(record, ts)
                                || storage.append_slow(&buffer, record, ts, ts, nanos_between)
                        };
                        if kept_this {
                            kept += 1;
                        }
                        if id % 1_000 == 0 {
                            std::thread::yield_now();
                        }
                    }
                    (buffer, kept)
                })
            })
            .collect();
        let snapshotter = scope.spawn(|| {
            let mut taken = 0;
            while !done.load(Ordering::Relaxed) {
                check_snapshot(&storage.snapshot());
                taken += 1;
            }
            taken
        });
        let buffers: Vec<(Arc<ThreadBuffer>, u64)> =
            workers.into_iter().map(|w| w.join().unwrap()).collect();
        done.store(true, Ordering::Relaxed);
        snapshots = snapshotter.join().unwrap();
        appended = buffers.iter().map(|(_, kept)| kept).sum::<u64>();
    });
    let raw = storage.snapshot();
    check_snapshot(&raw);
    assert_eq!(raw.written, appended, "every kept append counted once");
    assert!(raw.overwritten > 0 && snapshots > 0, "the race happened");
}
