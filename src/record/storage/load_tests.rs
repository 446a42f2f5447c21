//! Hostile shapes against the storage: a burst past the budget, tens of thousands of exited
//! threads, their records expiring together. Work is counted, not timed.

use std::time::Duration;

use super::model_tests::{Real, nanos_between, record};
use super::*;
use crate::record::encode::Encoded;

/// The defect a hostile burst found: one thread writing more than the default budget within
/// `min_age` lost the middle of its records instead of the oldest ones.
#[test]
fn a_burst_past_the_budget_keeps_the_newest_records_at_every_budget() {
    for mib in [1usize, 4, 6, 10, 16, 64] {
        let limits = StorageLimits::for_budget(mib << 20, Duration::from_secs(10));
        let storage = Storage::new(limits);
        let buffer = storage.register(ThreadIdentity { tid: 1, name: None });
        let mut real = Real {
            storage,
            dropped: 0,
            held: Vec::new(),
        };
        let size = 64;
        let total = (mib << 20) / size * 3;
        for id in 1..=total as u64 {
            real.append(&buffer, &record(id, size), id, id);
        }
        let (contents, raw) = real.contents();
        let ids = &contents[0].1;
        assert_eq!(*ids.last().unwrap(), total as u64, "{mib} MiB: newest kept");
        assert!(
            ids.windows(2).all(|w| w[1] == w[0] + 1),
            "{mib} MiB: a contiguous run, no hole (first {}, {} kept)",
            ids[0],
            ids.len()
        );
        assert!(
            ids.len() * size > (mib << 20) * 3 / 4,
            "{mib} MiB: the budget is used ({} records kept)",
            ids.len()
        );
        assert_eq!(raw.written, ids.len() as u64 + raw.overwritten);
    }
}

/// Registers `count` threads that each record one record and exit.
fn exited_threads(storage: &Storage, count: u64, first_tid: u64, ts: u64) {
    let mut real_dropped = 0;
    for n in 0..count {
        let buffer = storage.register(ThreadIdentity {
            tid: first_tid + n,
            name: None,
        });
        let bytes = record(n, 48);
        let bytes = Encoded::for_storage_tests(&bytes);
        if !buffer.try_append(bytes, ts)
            && !storage.append_slow(&buffer, bytes, ts, ts, nanos_between)
        {
            real_dropped += 1;
        }
        storage.retire(&buffer);
    }
    assert_eq!(real_dropped, 0);
}

/// Thread churn: the work of any record (a thread's first one and chunk rolls included) must not
/// grow with the number of exited threads. Counted, not timed: the threads looked at while
/// choosing what to evict.
#[test]
fn record_work_does_not_grow_with_exited_threads() {
    let limits = StorageLimits::for_budget(10 << 20, Duration::from_secs(10));
    let storage = Storage::new(limits);
    exited_threads(&storage, 40_000, 1, 1_000);
    // New short-lived threads keep coming, and one long-lived thread writes a lot.
    let before = storage.victim_checks();
    exited_threads(&storage, 2_000, 100_000, 2_000);
    let per_new_thread = (storage.victim_checks() - before) / 2_000;
    assert!(
        per_new_thread <= 64,
        "a new thread's first record looked at {per_new_thread} threads"
    );
    let busy = storage.register(ThreadIdentity {
        tid: 200_000,
        name: None,
    });
    let before = storage.victim_checks();
    let records = 200_000u64;
    for id in 0..records {
        let bytes = record(id, 64);
        let bytes = Encoded::for_storage_tests(&bytes);
        if !busy.try_append(bytes, 3_000 + id) {
            assert!(storage.append_slow(&busy, bytes, 3_000 + id, 3_000 + id, nanos_between));
        }
    }
    let per_record = (storage.victim_checks() - before) as f64 / records as f64;
    assert!(
        per_record <= 1.0,
        "{per_record:.1} threads looked at per record"
    );
}

/// 20,000 exited threads' records expiring together must not stall the next record: reclaiming
/// them is spread over chunk rolls.
#[test]
fn mass_expiry_is_spread_over_chunk_rolls() {
    let min_age = Duration::from_millis(10);
    let limits = StorageLimits::for_budget(10 << 20, min_age);
    let storage = Storage::new(limits);
    exited_threads(&storage, 20_000, 1, 1_000);
    let later = 1_000 + 2 * min_age.as_nanos() as u64;
    let before = storage.victim_checks();
    exited_threads(&storage, 1, 50_000, later);
    let checks = storage.victim_checks() - before;
    assert!(
        checks <= 4 * EXPIRE_PER_ROLL as u64,
        "one new thread's first record looked at {checks} threads"
    );
    // Yet it all goes in time: every later roll reclaims its share.
    let busy = storage.register(ThreadIdentity {
        tid: 60_000,
        name: None,
    });
    for id in 0..400_000u64 {
        let bytes = record(id, 64);
        let bytes = Encoded::for_storage_tests(&bytes);
        if !busy.try_append(bytes, later + id) {
            assert!(storage.append_slow(&busy, bytes, later + id, later + id, nanos_between));
        }
    }
    let raw = storage.snapshot();
    assert!(
        raw.threads.len() < 100,
        "expired threads were reclaimed: {} left",
        raw.threads.len()
    );
}
