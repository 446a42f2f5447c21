//! The storage with its chunks in a crash file, driven by the model tests' random operations:
//! besides matching the model, after every step the file read as a dead process's (descriptors
//! and committed lengths only) must hold exactly what a snapshot holds, thread by thread.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::model_tests::{ids_in, limits, ops, run_model_on};
use super::*;
use crate::record::Timebase;
use crate::record::crash::{CrashFileConfig, CrashStore, read};

fn cases() -> u32 {
    std::env::var("BLACKBOX_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(300, |cases: u32| cases / 4)
}

/// What the file says each thread holds (its chunks in order, their records' ids), and how
/// many chunks had to be kept out of it.
fn file_contents(path: &std::path::Path) -> (Vec<(u64, Vec<u64>)>, u64) {
    let file = std::fs::File::open(path).unwrap();
    // SAFETY: the file belongs to this test; nothing truncates it while mapped.
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    let crash = read(&map).expect("the file reads");
    assert_eq!(
        crash.torn_records, 0,
        "no record half-written between steps"
    );
    let unmapped = crash.unmapped_chunks;
    let mut chunks: BTreeMap<u64, Vec<(u64, Vec<u64>)>> = BTreeMap::new();
    for chunk in crash.chunks {
        let mut ids = Vec::new();
        ids_in(&chunk.bytes, &mut ids);
        chunks.entry(chunk.tid).or_default().push((chunk.seq, ids));
    }
    let threads = chunks
        .into_iter()
        .map(|(tid, mut chunks)| {
            chunks.sort_by_key(|(seq, _)| *seq);
            (tid, chunks.into_iter().flat_map(|(_, ids)| ids).collect())
        })
        .filter(|(_, ids): &(u64, Vec<u64>)| !ids.is_empty())
        .collect();
    (threads, unmapped)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn the_crash_file_holds_what_a_snapshot_holds(
        (limits, ops) in limits().prop_flat_map(|limits| (Just(limits), ops(limits)))
    ) {
        let dir = tempfile::tempdir_in(crate::record::crash::default_crash_dir()).unwrap();
        let config = CrashFileConfig {
            dir: dir.path().to_owned(),
            max_bytes: limits.max_bytes,
            min_age_nanos: limits.min_age_nanos,
        };
        let store = CrashStore::create(&config, &Timebase::new(quanta::Clock::new())).unwrap();
        let path = store.path().to_owned();
        let storage = Storage::with_crash_store(limits, Arc::clone(&store));
        drop(store);
        // The file's blocks are powers of two of pages.
        let blocks = CrashStore::block_bytes;
        // Snapshots that hold evicted chunks keep their blocks: only then may the arena run
        // out, and a chunk live in ordinary memory (counted; lost in a crash).
        let holds = ops.iter().any(|op| matches!(op, super::model_tests::Op::Hold));
        run_model_on(limits, storage, blocks, ops, |contents| {
            let (in_file, unmapped) = file_contents(&path);
            let sizes = |threads: &[(u64, Vec<u64>)]| {
                threads.iter().map(|(t, ids)| (*t, ids.len())).collect::<Vec<_>>()
            };
            if unmapped == 0 {
                prop_assert!(
                    in_file == contents,
                    "file {:?} vs snapshot {:?}",
                    sizes(&in_file),
                    sizes(contents)
                );
            } else {
                prop_assert!(holds, "{} chunks out of the file with no snapshot held", unmapped);
                for (tid, ids) in &in_file {
                    let held = contents.iter().find(|(t, _)| t == tid).map(|(_, ids)| ids);
                    prop_assert!(
                        held.is_some_and(|held| ids.iter().all(|id| held.contains(id))),
                        "thread {}: the file holds records the storage does not",
                        tid
                    );
                }
            }
            Ok(())
        })?;
        prop_assert!(!path.exists(), "the storage gone, its file is removed");
    }
}
