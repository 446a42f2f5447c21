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
        // The default hook's backtraces would take more memory than the dumps measured here.
        .env("RUST_BACKTRACE", "0")
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

/// Sixteen threads panicking at once share one panic dump (panics during it, or within a
/// second after it, name its file): one snapshot, one file, and peak memory bounded by one dump
/// instead of sixteen.
#[test]
fn a_panic_storm_shares_one_dump() {
    let max_bytes = 2 << 20;
    if let Some((_, dir)) = child_mode() {
        let (layer, _recorder) = FlightRecorder::builder()
            .max_bytes(max_bytes)
            .dump_dir(&dir)
            .dump_on_panic()
            .build()
            .unwrap();
        tracing::dispatcher::set_global_default(common::dispatch(layer)).unwrap();
        for i in 0..100_000u64 {
            info!(i, "filling the buffer");
        }
        let before = common::peak_rss();
        let barrier = std::sync::Barrier::new(16);
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..16)
                .map(|n| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        barrier.wait();
                        panic!("worker {n} failed");
                    })
                })
                .collect();
            for worker in workers {
                assert!(worker.join().is_err());
            }
        });
        println!("PEAK_GROWTH {}", common::peak_rss().saturating_sub(before));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = child("a_panic_storm_shares_one_dump", "storm", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{stderr}");
    let saved = stderr
        .matches("tracing-blackbox: panic: trace saved to")
        .count();
    assert_eq!(saved, 16, "every panic names the dump: {stderr}");
    let shared = stderr.matches("(with a concurrent panic)").count();
    assert_eq!(shared, 15, "{stderr}");
    let files = common::files_in(dir.path());
    assert_eq!(files.len(), 1, "one dump, not one per panic: {files:?}");
    common::load(&files[0]);
    let growth: usize = stdout
        .lines()
        .find_map(|l| l.split_once("PEAK_GROWTH ").map(|(_, n)| n))
        .unwrap_or_else(|| panic!("{stdout}{stderr}"))
        .trim()
        .parse()
        .unwrap();
    let bound = 8 * max_bytes + (16 << 20);
    assert!(
        growth <= bound,
        "peak grew by {growth} bytes (bound {bound})"
    );
}

/// An `on_dump` callback that panics while a panic dump is written must not abort the process
/// ("panicked while processing panic"): the application's panic goes on as it would have.
#[test]
fn a_panicking_callback_during_a_panic_dump_does_not_abort() {
    if let Some((_, dir)) = child_mode() {
        let (layer, _recorder) = FlightRecorder::builder()
            .dump_dir(&dir)
            .dump_on_panic()
            .on_dump(|outcome| panic!("callback failed for {}", outcome.reason))
            .build()
            .unwrap();
        tracing::dispatcher::set_global_default(common::dispatch(layer)).unwrap();
        info!("before the panic");
        panic!("the application panicked");
    }
    let dir = tempfile::tempdir().unwrap();
    let output = child(
        "a_panicking_callback_during_a_panic_dump_does_not_abort",
        "callback",
        dir.path(),
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(101),
        "an ordinary panic exit, not an abort: {:?}\n{stderr}",
        output.status
    );
    assert!(stderr.contains("the application panicked"), "{stderr}");
    assert!(stderr.contains("trace saved to"), "{stderr}");
    let files = common::files_in(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    common::load(&files[0]);
}

/// Logs an error while being formatted: under a global default, that error re-enters the
/// layer and cannot be recorded.
struct LogsAnError;

impl fmt::Debug for LogsAnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        tracing::error!(code = 7u64, "failure inside a Debug impl");
        f.write_str("LogsAnError")
    }
}

/// An error event that could not be recorded still names itself in the dump it triggers.
#[test]
fn an_error_that_could_not_be_recorded_is_named_by_its_dump() {
    if let Some((_, dir)) = child_mode() {
        let (layer, recorder) = FlightRecorder::builder()
            .dump_dir(&dir)
            .dump_on_error()
            .build()
            .unwrap();
        tracing::dispatcher::set_global_default(common::dispatch(layer)).unwrap();
        info!(value = ?LogsAnError, "formatting this logs an error");
        recorder.flush();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = child(
        "an_error_that_could_not_be_recorded_is_named_by_its_dump",
        "dropped",
        dir.path(),
    )
    .output()
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let files = common::files_in(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let dump = common::load(&files[0]);
    assert_eq!(dump.other("reason"), "error");
    assert!(dump.counter("dropped") >= 1, "the error was dropped");
    assert!(
        !dump
            .phase("i")
            .any(|e| e["name"] == "failure inside a Debug impl"),
        "not among the records"
    );
    let event = dump.other("trigger_event");
    assert_eq!(event["message"], "failure inside a Debug impl");
    assert_eq!(event["fields"]["code"], 7);
    assert_eq!(event["recorded"], false);
}
