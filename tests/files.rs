//! Dump files: atomic writes, directories, names, failures, concurrency; builder errors.

mod common;

use std::time::Duration;

use common::recorder_with;
use tracing::info;
use tracing_blackbox::{BuildError, DumpStage, FlightRecorder};

fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn check_file(path: &std::path::Path) -> common::Dump {
    common::load(path)
}

#[test]
fn dump_to_file_creates_directories_and_leaves_no_temp_file() {
    let (dispatch, recorder) = recorder_with(1 << 20);
    tracing::dispatcher::with_default(&dispatch, || info!("saved"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/trace.json");
    let info = recorder.dump_to_file(&path).unwrap();
    assert_eq!(info.path, path);
    assert_eq!(info.bytes, std::fs::metadata(&path).unwrap().len());
    assert_eq!(entries(&dir.path().join("a/b")), ["trace.json"]);
    let dump = check_file(&path);
    assert_eq!(dump.phase("i").next().unwrap()["name"], "saved");
    // Replacing an existing file works too.
    recorder.dump_to_file(&path).unwrap();
    assert_eq!(entries(&dir.path().join("a/b")), ["trace.json"]);
}

#[test]
fn a_dump_that_cannot_be_written_reports_and_recording_goes_on() {
    let (dispatch, recorder) = recorder_with(1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not_a_dir");
    std::fs::write(&blocker, b"file").unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        info!("one");
        let err = recorder
            .dump_to_file(blocker.join("trace.json"))
            .unwrap_err();
        assert_eq!(err.stage(), DumpStage::CreateDir);
        assert!(err.to_string().contains("not_a_dir"), "{err}");
        assert!(std::error::Error::source(&err).is_some());
        // A directory where the file should go: the rename fails, the temp file is removed.
        std::fs::create_dir(dir.path().join("taken.json")).unwrap();
        std::fs::write(dir.path().join("taken.json/inside"), b"x").unwrap();
        let err = recorder
            .dump_to_file(dir.path().join("taken.json"))
            .unwrap_err();
        assert_eq!(err.stage(), DumpStage::Persist);
        info!("two");
    });
    assert_eq!(
        entries(dir.path()),
        ["not_a_dir", "taken.json"],
        "no temp file left"
    );
    let dump = common::dump(&recorder);
    assert_eq!(dump.phase("i").count(), 2);
}

/// Makes a directory immutable for as long as it lives (root ignores permission bits).
#[cfg(unix)]
struct Immutable(std::path::PathBuf);

#[cfg(unix)]
impl Immutable {
    fn new(dir: &std::path::Path) -> Option<Self> {
        let status = std::process::Command::new("chattr")
            .arg("+i")
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Immutable(dir.to_owned()))
    }
}

#[cfg(unix)]
impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}

#[cfg(unix)]
#[test]
fn a_read_only_directory_fails_cleanly() {
    use std::os::unix::fs::PermissionsExt;
    let (dispatch, recorder) = recorder_with(1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let _immutable = if std::fs::write(ro.join("probe"), b"").is_ok() {
        // Running as root: permission bits do not stop it; an immutable directory does.
        std::fs::remove_file(ro.join("probe")).unwrap();
        match Immutable::new(&ro) {
            Some(guard) => Some(guard),
            None => {
                eprintln!("skipped: running as root and chattr +i is not available here");
                return;
            }
        }
    } else {
        None
    };
    tracing::dispatcher::with_default(&dispatch, || info!("before"));
    let err = recorder.dump_to_file(ro.join("trace.json")).unwrap_err();
    assert_eq!(err.stage(), DumpStage::CreateTemp);
    let err = recorder.dump_to_dir(&ro, "x").unwrap_err();
    assert_eq!(err.stage(), DumpStage::CreateTemp);
    assert!(entries(&ro).is_empty());
    tracing::dispatcher::with_default(&dispatch, || info!("after"));
    assert_eq!(
        common::dump(&recorder).phase("i").count(),
        2,
        "recording went on"
    );
}

#[test]
fn dump_to_dir_names_are_sanitized_and_never_collide() {
    let (dispatch, recorder) = recorder_with(1 << 20);
    tracing::dispatcher::with_default(&dispatch, || info!("x"));
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for label in [
        "slow_span_GET /users",
        "../../escape",
        "",
        "same",
        "same",
        "same",
    ] {
        let info = recorder.dump_to_dir(dir.path(), label).unwrap();
        assert_eq!(
            info.path.parent().unwrap(),
            dir.path(),
            "stays in the directory"
        );
        paths.push(info.path);
    }
    let names = entries(dir.path());
    assert_eq!(names.len(), 6, "{names:?}");
    for name in &names {
        assert!(name.ends_with(".json"));
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
            "{name}"
        );
        assert!(!name.starts_with('.'));
        // <label>_<YYYYMMDDTHHMMSS.mmmZ>_<seq>.json
        let stem = name.trim_end_matches(".json");
        let mut parts = stem.rsplitn(3, '_');
        let seq = parts.next().unwrap();
        let stamp = parts.next().unwrap();
        assert!(seq.parse::<u64>().is_ok(), "{name}");
        assert!(
            chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%.3fZ").is_ok(),
            "{name}"
        );
    }
    assert!(names.iter().any(|n| n.starts_with("slow_span_GET__users_")));
    assert!(names.iter().any(|n| n.starts_with("dump_")));
    for path in &paths {
        check_file(path);
    }
}

#[test]
fn concurrent_dumps_are_serialized_and_all_succeed() {
    let (dispatch, recorder) = recorder_with(1 << 20);
    let dir = tempfile::tempdir().unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            tracing::dispatcher::with_default(&dispatch, || {
                for i in 0..20_000u64 {
                    info!(i, "while dumping");
                }
            })
        });
        for n in 0..4 {
            let recorder = recorder.clone();
            let dir = dir.path().to_owned();
            scope.spawn(move || {
                for k in 0..3 {
                    recorder
                        .dump_to_file(dir.join(format!("d{n}_{k}.json")))
                        .unwrap();
                    let mut sink = Vec::new();
                    recorder.write_to(&mut sink).unwrap();
                }
            });
        }
    });
    let names = entries(dir.path());
    assert_eq!(names.len(), 12);
    for name in names {
        check_file(&dir.path().join(name));
    }
}

#[test]
fn invalid_configuration_is_an_error_not_a_panic() {
    let err = FlightRecorder::builder().max_bytes(0).build().unwrap_err();
    assert!(matches!(err, BuildError::MaxBytesTooSmall { given: 0, .. }));
    assert!(err.to_string().contains("max_bytes"));
    let err = FlightRecorder::builder()
        .max_bytes(usize::MAX)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::MaxBytesTooLarge { .. }));
    let err = FlightRecorder::builder()
        .min_age(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::InvalidMinAge { .. }));
    let err = FlightRecorder::builder()
        .max_field_len(0)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("max_field_len"));
    let err = FlightRecorder::builder()
        .max_field_len(1 << 20)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::InvalidMaxFieldLen { .. }));
    let _: &dyn std::error::Error = &err;
    assert!(
        FlightRecorder::builder()
            .max_bytes(tracing_blackbox::Builder::MIN_MAX_BYTES)
            .build()
            .is_ok()
    );
}

#[test]
fn handles_are_send_sync_clone() {
    fn assert_traits<T: Send + Sync + Clone + 'static>() {}
    assert_traits::<FlightRecorder>();
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<tracing_blackbox::FlightRecorderLayer>();
    let recorder = FlightRecorder::builder()
        .recording(false)
        .build()
        .unwrap()
        .1;
    assert!(!recorder.is_recording());
    assert!(format!("{recorder:?}").contains("FlightRecorder"));
}

#[test]
fn a_dump_file_is_complete_whenever_it_is_visible() {
    let (dispatch, recorder) = recorder_with(4 << 20);
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..30_000u64 {
            info!(i, text = "some payload to make the dump larger", "filler");
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let checked = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut checked = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                for name in entries(dir.path()) {
                    if name.ends_with(".json") {
                        // Anything that looks like a dump parses whole.
                        let bytes = std::fs::read(dir.path().join(&name)).unwrap();
                        serde_json::from_slice::<serde_json::Value>(&bytes)
                            .unwrap_or_else(|e| panic!("{name} visible but incomplete: {e}"));
                        checked += 1;
                    } else {
                        assert!(name.ends_with(".tmp"), "unexpected file {name}");
                    }
                }
            }
            checked
        });
        for n in 0..5 {
            recorder
                .dump_to_dir(dir.path(), &format!("run{n}"))
                .unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        watcher.join().unwrap()
    });
    assert!(checked > 0, "the watcher saw finished dumps");
    assert_eq!(entries(dir.path()).len(), 5);
}

#[cfg(unix)]
#[test]
fn dumps_are_private_by_default_and_modes_are_configurable() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let (_layer, recorder) = FlightRecorder::builder().build().unwrap();
    let info = recorder
        .dump_to_dir(dir.path().join("new/deeper"), "private")
        .unwrap();
    assert_eq!(mode(&info.path), 0o600);
    assert_eq!(mode(&dir.path().join("new")), 0o700);
    assert_eq!(mode(&dir.path().join("new/deeper")), 0o700);
    let file = recorder
        .dump_to_file(dir.path().join("direct/trace.json"))
        .unwrap();
    assert_eq!(mode(&file.path), 0o600);
    assert_eq!(mode(&dir.path().join("direct")), 0o700);

    let (_layer, recorder) = FlightRecorder::builder()
        .dump_file_mode(0o640)
        .dump_dir_mode(0o750)
        .build()
        .unwrap();
    let info = recorder
        .dump_to_dir(dir.path().join("shared"), "team")
        .unwrap();
    assert_eq!(mode(&info.path), 0o640);
    assert_eq!(mode(&dir.path().join("shared")), 0o750);
}

/// A valid file name near the 255-byte limit: the temporary name beside it must stay valid too.
#[test]
fn a_long_but_valid_file_name_dumps() {
    let (dispatch, recorder) = recorder_with(1 << 20);
    tracing::dispatcher::with_default(&dispatch, || info!("long name"));
    let dir = tempfile::tempdir().unwrap();
    for len in [200usize, 245, 250, 255] {
        let name = format!("{}.json", "n".repeat(len - 5));
        let path = dir.path().join(&name);
        let info = recorder
            .dump_to_file(&path)
            .unwrap_or_else(|e| panic!("a {len}-byte name: {e}"));
        assert_eq!(info.path, path);
        check_file(&path);
    }
    // Multi-byte characters are cut at a boundary, never inside one.
    let name = format!("{}.json", "é".repeat(120));
    recorder.dump_to_file(dir.path().join(&name)).unwrap();
    assert!(entries(dir.path()).iter().all(|n| !n.ends_with(".tmp")));
}
