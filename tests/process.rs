//! Triggers that need a process of their own: panics and signals. Each test re-runs this test
//! binary as a child (selected by an environment variable) and inspects what it left behind.

mod common;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tracing::info;
use tracing_blackbox::FlightRecorder;

const CHILD: &str = "BLACKBOX_TEST_CHILD";
const DIR: &str = "BLACKBOX_TEST_DIR";

/// Runs `test` of this binary as a child with `mode`; returns the child.
fn child(test: &str, mode: &str, dir: &Path) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, mode)
        .env(DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn child_mode() -> Option<(String, PathBuf)> {
    let mode = std::env::var(CHILD).ok()?;
    Some((mode, PathBuf::from(std::env::var_os(DIR)?)))
}

struct Panicky;

impl fmt::Debug for Panicky {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        panic!("Debug impl panics inside the layer");
    }
}

#[test]
fn a_panic_leaves_a_dump() {
    if let Some((mode, dir)) = child_mode() {
        let (layer, _recorder) = FlightRecorder::builder()
            .dump_dir(&dir)
            .dump_on_panic()
            .build()
            .unwrap();
        tracing::dispatcher::set_global_default(common::dispatch(layer)).unwrap();
        let _span = tracing::info_span!("doomed_request", id = 7u64).entered();
        info!("about to fail");
        match mode.as_str() {
            "plain" => panic!("the application panicked"),
            _ => info!(value = ?Panicky, "formatting this panics inside the layer"),
        }
        unreachable!();
    }
    for (mode, message) in [
        ("plain", "the application panicked"),
        ("debug", "Debug impl panics inside the layer"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let output = child("a_panic_leaves_a_dump", mode, dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "the child panicked");
        assert!(
            stderr.contains(message),
            "the previous hook still ran: {stderr}"
        );
        assert!(
            stderr.contains("tracing-blackbox: panic: trace saved to"),
            "{stderr}"
        );
        let files = common::files_in(dir.path());
        assert_eq!(files.len(), 1, "{mode}: {files:?}\n{stderr}");
        assert!(
            files[0]
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("panic_")
        );
        let dump = common::load(&files[0]);
        assert_eq!(dump.other("reason"), "panic");
        assert_eq!(dump.other("panic")["message"], message);
        assert!(
            dump.other("panic")["location"]
                .as_str()
                .unwrap()
                .contains("process.rs")
        );
        assert!(dump.phase("i").any(|e| e["name"] == "about to fail"));
        let open = dump.slices_named("doomed_request");
        assert_eq!(open.len(), 1);
        assert_eq!(
            open[0]["args"]["incomplete"], true,
            "the span was still open"
        );
    }
}

#[cfg(all(unix, feature = "signal"))]
#[test]
fn sigusr1_leaves_a_dump_per_signal() {
    use std::time::{Duration, Instant};
    if let Some((_, dir)) = child_mode() {
        let (layer, recorder) = FlightRecorder::builder()
            .dump_dir(&dir)
            .dump_on_signal()
            .build()
            .unwrap();
        tracing::dispatcher::set_global_default(common::dispatch(layer)).unwrap();
        println!("ready");
        // Work until two dumps exist (or give up after 20 s).
        let until = Instant::now() + Duration::from_secs(20);
        let mut n = 0u64;
        while common::files_in(&dir)
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .count()
            < 2
            && Instant::now() < until
        {
            info!(n, "working");
            n += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        recorder.flush();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut process = child("sigusr1_leaves_a_dump_per_signal", "signal", dir.path())
        .spawn()
        .unwrap();
    let pid = process.id().to_string();
    // Wait for the child to be ready, then signal it twice, waiting for each dump.
    let mut stdout = std::io::BufReader::new(process.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("ready") {
        line.clear();
        assert!(
            std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() > 0,
            "child ended early"
        );
    }
    for expected in 1..=2 {
        let status = Command::new("kill").args(["-USR1", &pid]).status().unwrap();
        assert!(status.success());
        let until = Instant::now() + Duration::from_secs(10);
        while common::files_in(dir.path())
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .count()
            < expected
        {
            assert!(Instant::now() < until, "no dump after signal {expected}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert!(process.wait().unwrap().success());
    let files = common::files_in(dir.path());
    assert_eq!(files.len(), 2, "{files:?}");
    for file in files {
        assert!(
            file.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("signal_")
        );
        let dump = common::load(&file);
        assert_eq!(dump.other("reason"), "signal");
        assert!(dump.phase("i").any(|e| e["name"] == "working"));
    }
}

/// A full disk, as a file-size limit: `sh` ignores SIGXFSZ (the disposition survives `exec`)
/// and caps files at 64 blocks, then runs the child.
#[cfg(unix)]
#[test]
fn a_full_disk_reports_an_error_leaves_nothing_and_recording_goes_on() {
    if let Some((_, dir)) = child_mode() {
        let outcomes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (layer, recorder) = FlightRecorder::builder()
            .dump_dir(&dir)
            .cooldown(std::time::Duration::ZERO)
            .on_dump({
                let outcomes = std::sync::Arc::clone(&outcomes);
                move |o| outcomes.lock().unwrap().push(o.error.is_some())
            })
            .build()
            .unwrap();
        let dispatch = common::dispatch(layer);
        // Far more than the file-size limit once encoded.
        tracing::dispatcher::with_default(&dispatch, || {
            for i in 0..20_000u64 {
                info!(i, payload = "some text to make the dump large", "filler");
            }
        });
        recorder.trigger("too_big");
        recorder.flush();
        let error = recorder.last_dump_error().expect("the write failed");
        assert_eq!(error.stage(), tracing_blackbox::DumpStage::Write, "{error}");
        assert_eq!(*outcomes.lock().unwrap(), [true]);
        assert!(
            common::files_in(&dir).is_empty(),
            "no partial file, no temp file"
        );
        // Recording went on, and a small dump still fits.
        let (small_layer, small) = FlightRecorder::builder().build().unwrap();
        tracing::dispatcher::with_default(&common::dispatch(small_layer), || info!("small"));
        let info = small.dump_to_dir(&dir, "small").unwrap();
        assert!(info.bytes < 32 << 10);
        tracing::dispatcher::with_default(&dispatch, || info!("after the failure"));
        assert!(recorder.snapshot().records.len() > 1);
        println!("child ok");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let output = Command::new("sh")
        .args([
            "-c",
            "trap '' XFSZ; ulimit -f 64; exec \"$0\" --exact a_full_disk_reports_an_error_leaves_nothing_and_recording_goes_on --nocapture --test-threads=1",
        ])
        .arg(&exe)
        .env(CHILD, "full-disk")
        .env(DIR, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("child ok"), "{stdout}");
    assert_eq!(common::files_in(dir.path()).len(), 1, "only the small dump");
}
