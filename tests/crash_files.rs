//! Damaged crash files: truncated or overwritten at random offsets, or written by another
//! format version. Recovery gives a clear error or a valid (partial) dump; it never panics.
#![cfg(all(feature = "crash", target_os = "linux"))]

mod common;

use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use tracing_blackbox::FlightRecorder;
use tracing_blackbox::recover::{self, CrashFileError, RecoverError, RecoverOptions};

/// The bytes of a crash file holding spans, events and several threads, recorded once.
fn pristine() -> &'static [u8] {
    static FILE: OnceLock<Vec<u8>> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (layer, recorder) = FlightRecorder::builder()
            .crash_safe(dir.path())
            .recover_on_start(false)
            .max_bytes(256 << 10)
            .build()
            .unwrap();
        let dispatch = common::dispatch(layer);
        let work = |thread: u64| {
            for n in 0..150u64 {
                let span = tracing::info_span!("request", thread, n);
                let _entered = span.enter();
                tracing::info!(n, text = "some text", "handled");
                if n % 50 == 0 {
                    tracing::warn!(n, "slow");
                }
            }
        };
        tracing::dispatcher::with_default(&dispatch, || {
            work(0);
            std::thread::scope(|scope| {
                let threads: Vec<_> = (1..3)
                    .map(|thread| {
                        let dispatch = dispatch.clone();
                        scope.spawn(move || {
                            tracing::dispatcher::with_default(&dispatch, || work(thread));
                        })
                    })
                    .collect();
                // Joined one by one: the end of a scope waits for the threads' closures only,
                // not for their thread-local destructors, where an exiting thread's last chunk
                // is compacted into the file. Reading the file before that is done can catch a
                // chunk half-written (which recovery reports as damaged, rightly).
                for thread in threads {
                    thread.join().unwrap();
                }
            });
        });
        let files = recover::crash_files(dir.path()).unwrap();
        let bytes = std::fs::read(&files[0]).unwrap();
        drop(recorder);
        bytes
    })
}

/// Recovers `bytes` written to a file of their own (forced: the writer is this process).
fn recover_bytes(bytes: &[u8]) -> (Result<recover::Recovery, RecoverError>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blackbox-test-1-1.shm");
    std::fs::write(&path, bytes).unwrap();
    let options = RecoverOptions::new()
        .dump_dir(dir.path().join("dumps"))
        .force(true);
    (recover::recover_file(&path, &options), dir)
}

/// An error that says what is wrong, or a dump in the format. With `strict`, the dump must
/// also keep every promise our dumps make (events inside their spans' slices, ids unique…):
/// bytes overwritten inside records can turn them into other well-formed records (an exit
/// into an enter, one span id into another), which no reader can tell without checksums.
fn check_outcome(result: Result<recover::Recovery, RecoverError>, strict: bool) -> Option<u64> {
    match result {
        Ok(recovery) => {
            let json: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&recovery.dump.path).unwrap()).unwrap();
            if let Err(violation) = tracing_blackbox::validate::check(&json) {
                panic!("the dump breaks the format: {violation}");
            }
            let dump = common::Dump { json };
            if strict {
                common::check_invariants(&dump);
            }
            assert_eq!(dump.other("reason"), "crash");
            Some(recovery.records)
        }
        Err(RecoverError::Format { source, .. }) => {
            assert!(!source.to_string().is_empty());
            None
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[test]
fn an_intact_file_recovers_every_thread() {
    let (result, _dir) = recover_bytes(pristine());
    let recovery = result.unwrap();
    assert_eq!(recovery.threads, 3);
    assert!(recovery.warnings.is_empty(), "{:?}", recovery.warnings);
    let dump = common::load(&recovery.dump.path);
    assert!(!dump.slices_named("request").is_empty());
    assert_eq!(dump.counter("overwritten"), 0, "everything fits");
    assert_eq!(
        dump.slices_named("request").len(),
        450,
        "every span of every thread"
    );
}

#[test]
fn another_format_version_is_a_clear_error() {
    let mut bytes = pristine().to_vec();
    bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
    let (result, _dir) = recover_bytes(&bytes);
    match result {
        Err(RecoverError::Format {
            source:
                CrashFileError::UnsupportedVersion {
                    found, supported, ..
                },
            ..
        }) => {
            assert_eq!((found, supported), (7, 1));
        }
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
    let message = recover_bytes(&bytes).0.unwrap_err().to_string();
    assert!(message.contains("format 7"), "{message}");
}

#[test]
fn a_file_that_is_not_a_crash_file_is_a_clear_error() {
    for bytes in [&b""[..], b"{\"traceEvents\":[]}", &[0u8; 8192]] {
        match recover_bytes(bytes).0 {
            Err(RecoverError::Format {
                source: CrashFileError::NotACrashFile,
                ..
            }) => {}
            other => panic!("expected NotACrashFile, got {other:?}"),
        }
    }
}

#[test]
fn a_missing_file_is_a_read_error_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let result = recover::recover_file(
        dir.path().join("absent.shm"),
        &RecoverOptions::new().dump_dir(dir.path()),
    );
    assert!(
        matches!(result, Err(RecoverError::Read { .. })),
        "{result:?}"
    );
    assert_eq!(common::files_in(dir.path()).len(), 0);
}

/// 64 damaged files per shape; `BLACKBOX_DAMAGE_CASES` for a longer soak.
fn cases() -> u32 {
    std::env::var("BLACKBOX_DAMAGE_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn a_truncated_file_gives_an_error_or_a_valid_dump(cut in 0usize..=1_000_000) {
        let bytes = pristine();
        let cut = cut * bytes.len() / 1_000_000;
        let (result, _dir) = recover_bytes(&bytes[..cut]);
        check_outcome(result, true);
    }

    #[test]
    fn overwritten_bytes_give_an_error_or_a_valid_dump(
        damage in proptest::collection::vec((0usize..=1_000_000, any::<u8>(), 1usize..64), 1..16)
    ) {
        let mut bytes = pristine().to_vec();
        let len = bytes.len();
        for (at, value, run) in damage {
            let at = at * (len - 1) / 1_000_000;
            for byte in &mut bytes[at..(at + run).min(len)] {
                *byte = value;
            }
        }
        let (result, _dir) = recover_bytes(&bytes);
        check_outcome(result, false);
    }

    /// Damage aimed where it matters: the header, the descriptors and the callsite log.
    #[test]
    fn damaged_metadata_gives_an_error_or_a_valid_dump(
        damage in proptest::collection::vec((0usize..65_536, any::<u8>()), 1..32)
    ) {
        let mut bytes = pristine().to_vec();
        for (at, value) in damage {
            let at = at % bytes.len();
            bytes[at] = value;
        }
        let (result, _dir) = recover_bytes(&bytes);
        check_outcome(result, false);
    }
}

#[test]
fn the_file_of_this_process_is_where_it_says() {
    let dir = tempfile::tempdir().unwrap();
    let (_layer, _recorder) = FlightRecorder::builder()
        .crash_safe(dir.path())
        .recover_on_start(false)
        .build()
        .unwrap();
    let files = recover::crash_files(dir.path()).unwrap();
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    let pid = std::process::id().to_string();
    assert!(
        name.starts_with("blackbox-") && name.ends_with(".shm"),
        "{name}"
    );
    assert!(name.contains(&format!("-{pid}-")), "{name}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&files[0]).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "owner only");
    assert!(Path::new(&files[0]).exists());
}
