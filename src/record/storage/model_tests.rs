//! Model-based tests of the storage: random operations applied side by side to the real
//! [`Storage`] and to a plain reference model (per-thread queues of chunks of records, linear
//! scans, a mock clock); after every step both must hold the same records and counters.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::record::encode::{Encoded, MAX_RECORD_BYTES};

/// Our test records: `[length: u16][id: u64][padding]`; the storage treats them as opaque.
const RECORD_HEADER: usize = 10;

pub(super) fn record(id: u64, size: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; size];
    bytes[..2].copy_from_slice(&(size as u16).to_le_bytes());
    bytes[2..10].copy_from_slice(&id.to_le_bytes());
    bytes
}

pub(super) fn ids_in(mut bytes: &[u8], out: &mut Vec<u64>) {
    while bytes.len() >= RECORD_HEADER {
        let len = u16::from_le_bytes([bytes[0], bytes[1]]) as usize;
        out.push(u64::from_le_bytes(bytes[2..10].try_into().unwrap()));
        bytes = &bytes[len..];
    }
}

pub(super) fn nanos_between(from: u64, to: u64) -> u64 {
    to.saturating_sub(from)
}

// ---------------------------------------------------------------------------------------------
// The reference model: what the storage promises, written as plainly as possible.
// ---------------------------------------------------------------------------------------------

struct ModelChunk {
    id: u64,
    capacity: usize,
    used: usize,
    records: Vec<u64>,
    last_ts: u64,
}

struct ModelThread {
    tid: u64,
    sealed: VecDeque<ModelChunk>,
    current: Option<ModelChunk>,
    next_chunk_bytes: usize,
}

struct Model {
    limits: StorageLimits,
    threads: Vec<ModelThread>,
    allocated: usize,
    written: u64,
    overwritten: u64,
    dropped: u64,
    /// Per held snapshot: the chunk ids it shares (sealed chunks) and the bytes it copied
    /// (current chunks).
    held: Vec<(HashSet<u64>, usize)>,
    /// Chunks evicted while a held snapshot shared them: their capacity, until released.
    detached: HashMap<u64, usize>,
    next_chunk_id: u64,
    /// The capacity of an exited thread's chunk once shrunk to `used` bytes.
    compacted_capacity: fn(usize) -> usize,
}

impl Model {
    fn new(limits: StorageLimits, compacted_capacity: fn(usize) -> usize) -> Self {
        Model {
            compacted_capacity,
            limits,
            threads: Vec::new(),
            allocated: 0,
            written: 0,
            overwritten: 0,
            dropped: 0,
            held: Vec::new(),
            detached: HashMap::new(),
            next_chunk_id: 0,
        }
    }

    fn register(&mut self, tid: u64) -> usize {
        self.threads.push(ModelThread {
            tid,
            sealed: VecDeque::new(),
            current: None,
            next_chunk_bytes: FIRST_CHUNK_BYTES.min(self.limits.chunk_bytes),
        });
        self.threads.len() - 1
    }

    fn new_chunk(&mut self, capacity: usize) -> ModelChunk {
        self.next_chunk_id += 1;
        ModelChunk {
            id: self.next_chunk_id,
            capacity,
            used: 0,
            records: Vec::new(),
            last_ts: 0,
        }
    }

    fn push(chunk: &mut ModelChunk, id: u64, size: usize, ts: u64) {
        chunk.used += size;
        chunk.records.push(id);
        chunk.last_ts = ts;
    }

    fn append(&mut self, thread: usize, id: u64, size: usize, ts: u64, now: u64) {
        let t = &mut self.threads[thread];
        if let Some(current) = &mut t.current
            && current.capacity - current.used >= size
        {
            Self::push(current, id, size, ts);
            self.written += 1;
            return;
        }
        if let Some(full) = t.current.take() {
            t.sealed.push_back(full);
        }
        let wanted = t.next_chunk_bytes;
        t.next_chunk_bytes = (wanted * 2).min(self.limits.chunk_bytes);
        match self.make_room(thread, wanted, now) {
            Some(capacity) => {
                let mut chunk = self.new_chunk(capacity);
                Self::push(&mut chunk, id, size, ts);
                self.threads[thread].current = Some(chunk);
                self.written += 1;
            }
            None => self.dropped += 1,
        }
    }

    /// The chunk to evict: the one whose newest record is oldest (ties: the older thread), a
    /// thread's oldest sealed chunk, or its current one if it has none sealed and is not the
    /// thread asking for room.
    fn victim(&self, requester: usize) -> Option<(usize, u64)> {
        self.threads
            .iter()
            .enumerate()
            .filter_map(|(index, t)| {
                let key = match (t.sealed.front(), &t.current) {
                    (Some(chunk), _) => chunk.last_ts,
                    (None, Some(chunk)) if index != requester => chunk.last_ts,
                    _ => return None,
                };
                Some((index, key, t.tid))
            })
            .min_by_key(|&(_, key, tid)| (key, tid))
            .map(|(index, key, _)| (index, key))
    }

    /// Evicts expired chunks (a bounded number per roll) and, oldest first, as many as the
    /// budget needs; returns the capacity of the chunk the requester gets.
    fn make_room(&mut self, requester: usize, wanted: usize, now: u64) -> Option<usize> {
        let mut reuse = None;
        let mut expiries_left = EXPIRE_PER_ROLL;
        loop {
            let need_room = self.allocated + reuse.map_or(wanted, |_| 0) > self.limits.max_bytes;
            let Some((victim, key)) = self.victim(requester) else {
                break;
            };
            let expired = nanos_between(key, now) > self.limits.min_age_nanos && expiries_left > 0;
            if !need_room && !expired {
                break;
            }
            if !need_room {
                expiries_left -= 1;
            }
            let t = &mut self.threads[victim];
            let chunk = match t.sealed.pop_front() {
                Some(chunk) => chunk,
                None => t.current.take().expect("the victim has a chunk"),
            };
            self.overwritten += chunk.records.len() as u64;
            let held = self.held.iter().any(|(set, _)| set.contains(&chunk.id));
            if held {
                self.detached.insert(chunk.id, chunk.capacity);
                self.allocated -= chunk.capacity;
            } else if reuse.is_none() && chunk.capacity >= wanted {
                reuse = Some(chunk.capacity);
            } else {
                self.allocated -= chunk.capacity;
            }
        }
        if reuse.is_some() {
            return reuse;
        }
        if self.allocated + wanted > self.limits.max_bytes {
            return None;
        }
        self.allocated += wanted;
        Some(wanted)
    }

    fn retire(&mut self, thread: usize) {
        let t = &mut self.threads[thread];
        if let Some(mut current) = t.current.take() {
            let compacted = (self.compacted_capacity)(current.used);
            self.allocated -= current.capacity - compacted;
            current.capacity = compacted;
            t.sealed.push_back(current);
        }
    }

    fn hold(&mut self) {
        let set = self
            .threads
            .iter()
            .flat_map(|t| t.sealed.iter().map(|c| c.id))
            .collect();
        let copied = self
            .threads
            .iter()
            .filter_map(|t| t.current.as_ref())
            .map(|c| c.used)
            .sum();
        self.held.push((set, copied));
    }

    fn release(&mut self, index: usize) {
        self.held.remove(index);
        let held = &self.held;
        self.detached
            .retain(|id, _| held.iter().any(|(set, _)| set.contains(id)));
    }

    /// Bytes snapshots keep alive beyond the budget.
    fn held_bytes(&self) -> usize {
        self.detached.values().sum::<usize>()
            + self.held.iter().map(|(_, copied)| copied).sum::<usize>()
    }

    /// Each thread's retained records, oldest first, by tid (threads holding none left out).
    fn contents(&self) -> Vec<(u64, Vec<u64>)> {
        let mut out: Vec<(u64, Vec<u64>)> = self
            .threads
            .iter()
            .map(|t| {
                let ids = t
                    .sealed
                    .iter()
                    .chain(&t.current)
                    .flat_map(|c| c.records.iter().copied())
                    .collect();
                (t.tid, ids)
            })
            .filter(|(_, ids): &(u64, Vec<u64>)| !ids.is_empty())
            .collect();
        out.sort_unstable();
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The real storage, driven the way the layer drives it.
// ---------------------------------------------------------------------------------------------

pub(super) struct Real {
    pub(super) storage: Storage,
    pub(super) dropped: u64,
    pub(super) held: Vec<StoredChunks>,
}

impl Real {
    pub(super) fn append(&mut self, buffer: &Arc<ThreadBuffer>, record: &[u8], ts: u64, now: u64) {
        let record = Encoded::for_storage_tests(record);
        if !buffer.try_append(record, ts)
            && !self
                .storage
                .append_slow(buffer, record, ts, now, nanos_between)
        {
            self.dropped += 1;
        }
    }

    pub(super) fn contents(&self) -> (Vec<(u64, Vec<u64>)>, StoredChunks) {
        let raw = self.storage.snapshot();
        let mut out: Vec<(u64, Vec<u64>)> = raw
            .threads
            .iter()
            .map(|t| {
                let mut ids = Vec::new();
                for chunk in &t.sealed {
                    ids_in(chunk.bytes(), &mut ids);
                }
                ids_in(t.current.bytes(), &mut ids);
                (t.identity.tid, ids)
            })
            .filter(|(_, ids)| !ids.is_empty())
            .collect();
        out.sort_unstable();
        (out, raw)
    }
}

/// Per thread: (tid, first id, last id, count), for readable failures.
fn summary(contents: &[(u64, Vec<u64>)]) -> Vec<(u64, u64, u64, usize)> {
    contents
        .iter()
        .map(|(tid, ids)| (*tid, ids[0], ids[ids.len() - 1], ids.len()))
        .collect()
}

#[derive(Debug, Clone)]
pub(super) enum Op {
    /// `count` records of `size` bytes from one thread, back to back.
    Append {
        thread: usize,
        size: usize,
        count: usize,
    },
    /// The clock moves on.
    Advance { nanos: u64 },
    /// The thread exits; the next append from that slot is a new thread.
    Exit { thread: usize },
    /// A snapshot is taken and kept, sharing the sealed chunks.
    Hold,
    /// A kept snapshot is dropped.
    Release { index: usize },
}

const THREADS: usize = 4;

/// Budgets from 64 KiB to 64 MiB (log-uniform), with `min_age` from 1 ms to 10 s.
pub(super) fn limits() -> impl Strategy<Value = StorageLimits> {
    (16u32..=26, 0u64..=4).prop_map(|(budget_log2, age_log10)| {
        StorageLimits::for_budget(
            1 << budget_log2,
            Duration::from_millis(10u64.pow(age_log10 as u32)),
        )
    })
}

/// Operations scaled to the budget: records large enough that a few bursts fill it.
pub(super) fn ops(limits: StorageLimits) -> impl Strategy<Value = Vec<Op>> {
    let min_size = (limits.max_bytes / 4_000).clamp(RECORD_HEADER, MAX_RECORD_BYTES);
    let burst = (limits.max_bytes / min_size).max(1);
    let min_age = limits.min_age_nanos;
    let op = prop_oneof![
        6 => (0..THREADS, min_size..=MAX_RECORD_BYTES.min(min_size * 8), 1..=burst / 2)
            .prop_map(|(thread, size, count)| Op::Append { thread, size, count }),
        6 => (0..THREADS, min_size..=MAX_RECORD_BYTES)
            .prop_map(|(thread, size)| Op::Append { thread, size, count: 1 }),
        3 => (0..=min_age * 2).prop_map(|nanos| Op::Advance { nanos }),
        1 => (0..THREADS).prop_map(|thread| Op::Exit { thread }),
        1 => Just(Op::Hold),
        1 => (0usize..4).prop_map(|index| Op::Release { index }),
    ];
    proptest::collection::vec(op, 1..40)
}

fn cases() -> u32 {
    std::env::var("BLACKBOX_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

fn run_model(limits: StorageLimits, ops: Vec<Op>) -> Result<(), TestCaseError> {
    run_model_on(limits, Storage::new(limits), |used| used, ops, |_| Ok(()))
}

/// Drives `storage` (made for `limits`, shrinking an exited thread's chunk to
/// `compacted_capacity`) and the model with `ops`; after every step, checks
/// them against each other and hands the real storage's contents per thread to `also`.
pub(super) fn run_model_on(
    limits: StorageLimits,
    storage: Storage,
    compacted_capacity: fn(usize) -> usize,
    ops: Vec<Op>,
    also: impl Fn(&[(u64, Vec<u64>)]) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    let mut model = Model::new(limits, compacted_capacity);
    let mut real = Real {
        storage,
        dropped: 0,
        held: Vec::new(),
    };
    // Per slot: the live thread (its real buffer and model index), if any.
    let mut slots: Vec<Option<(Arc<ThreadBuffer>, usize)>> = vec![None; THREADS];
    let mut appended: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut next_tid = 0u64;
    let mut next_id = 0u64;
    let mut now = 1_000u64;
    for op in ops {
        match op {
            Op::Append {
                thread,
                size,
                count,
            } => {
                let (buffer, index) = slots[thread].get_or_insert_with(|| {
                    next_tid += 1;
                    let buffer = real.storage.register(ThreadIdentity {
                        tid: next_tid,
                        name: None,
                    });
                    (buffer, model.register(next_tid))
                });
                for _ in 0..count {
                    next_id += 1;
                    real.append(buffer, &record(next_id, size), now, now);
                    model.append(*index, next_id, size, now, now);
                    appended
                        .entry(buffer.identity.tid)
                        .or_default()
                        .push(next_id);
                }
            }
            Op::Advance { nanos } => now += nanos,
            Op::Exit { thread } => {
                if let Some((buffer, index)) = slots[thread].take() {
                    real.storage.retire(&buffer);
                    model.retire(index);
                }
            }
            Op::Hold => {
                real.held.push(real.storage.snapshot());
                model.hold();
            }
            Op::Release { index } => {
                if index < real.held.len() {
                    real.held.remove(index);
                    model.release(index);
                }
            }
        }

        let (contents, raw) = real.contents();
        let expected = model.contents();
        prop_assert!(
            contents == expected,
            "retained records per thread: real {:?}, model {:?}",
            summary(&contents),
            summary(&expected)
        );
        prop_assert_eq!(raw.written, model.written, "written");
        prop_assert_eq!(raw.overwritten, model.overwritten, "overwritten");
        prop_assert_eq!(real.dropped, model.dropped, "dropped");
        prop_assert_eq!(raw.allocated_bytes, model.allocated, "allocated bytes");
        let allocated = raw.allocated_bytes;
        drop(raw);
        prop_assert_eq!(real.storage.held_bytes(), model.held_bytes(), "held bytes");
        // The promises themselves, whatever the policy's details.
        prop_assert!(allocated <= limits.max_bytes, "within the budget");
        let retained: u64 = contents.iter().map(|(_, ids)| ids.len() as u64).sum();
        prop_assert_eq!(model.written, retained + model.overwritten);
        for (tid, ids) in &contents {
            let all = &appended[tid];
            prop_assert_eq!(
                &all[all.len() - ids.len()..],
                &ids[..],
                "thread {}: a contiguous run ending at its newest record",
                tid
            );
        }
        also(&contents)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn storage_matches_the_reference_model(
        (limits, ops) in limits().prop_flat_map(|limits| (Just(limits), ops(limits)))
    ) {
        run_model(limits, ops)?;
    }
}
