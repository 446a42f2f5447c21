//! The hot path does no I/O and starts no thread: the recording thread's system calls, traced
//! with `strace` in a child process, while its callbacks trigger dumps — slow spans whose
//! breach pushes a kept dump out (top-N), errors, a first trigger. Every file operation and
//! every thread start must happen elsewhere (the dump thread, `build()`).
#![cfg(target_os = "linux")]

mod common;

use std::process::Command;
use std::time::Duration;

use tracing_blackbox::FlightRecorder;

const CHILD: &str = "BLACKBOX_TRACED_CHILD";

/// System calls the recording thread must never make while recording.
const FORBIDDEN: &[&str] = &[
    "open",
    "openat",
    "openat2",
    "creat",
    "unlink",
    "unlinkat",
    "rename",
    "renameat",
    "renameat2",
    "mkdir",
    "mkdirat",
    "rmdir",
    "fsync",
    "fdatasync",
    "ftruncate",
    "clone",
    "clone3",
    "fork",
    "vfork",
    "execve",
];

fn the_workload(dir: &std::path::Path) {
    let (layer, recorder) = FlightRecorder::builder()
        .dump_dir(dir)
        .dump_on_slow_span(Duration::from_millis(2))
        .dump_on_error()
        .keep_slowest(1)
        .cooldown(Duration::ZERO)
        .build()
        .unwrap();
    let dispatch = common::dispatch(layer);
    tracing::dispatcher::with_default(&dispatch, || {
        // Warm up outside the traced window: the thread's slot and first chunk.
        tracing::info!("warm up");
        let tid = unsafe_free_gettid();
        eprintln!("BLACKBOX_BEGIN {tid}");
        for ms in [5u64, 10, 20] {
            // Each is slower than the last: each pushes the kept dump out.
            tracing::info_span!("request", ms).in_scope(|| {
                std::thread::sleep(Duration::from_millis(ms));
                tracing::info!("inside");
            });
            tracing::error!(ms, "and an error");
        }
        eprintln!("BLACKBOX_END {tid}");
    });
    recorder.flush();
}

/// The calling thread's kernel id, read from /proc (no `libc` needed).
fn unsafe_free_gettid() -> String {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

/// Runs `test` (this test, in the child) under strace and returns the system calls its
/// recording thread made between the workload's markers, and the child's dump directory.
fn traced_calls(test: &str) -> (Vec<(String, String)>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("strace.log");
    let dumps = dir.path().join("dumps");
    let output = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&log)
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, &dumps)
        .output()
        .expect("strace is installed (.ci/run installs it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tid = stderr
        .lines()
        .find_map(|l| l.strip_prefix("BLACKBOX_BEGIN "))
        .expect("the child ran")
        .trim()
        .to_owned();
    let trace = std::fs::read_to_string(&log).unwrap();
    // The recording thread's calls between its two markers (written with write(2)).
    let mut inside = false;
    let mut seen = Vec::new();
    for line in trace.lines() {
        let Some((pid, call)) = line.split_once(' ') else {
            continue;
        };
        if pid != tid {
            continue;
        }
        let call = call.trim_start();
        if call.contains("BLACKBOX_BEGIN") {
            inside = true;
            continue;
        }
        if call.contains("BLACKBOX_END") {
            break;
        }
        if inside {
            // strace splits a call another thread interrupted: "<... name resumed>".
            let name = match call.strip_prefix("<... ") {
                Some(rest) => rest.split(' ').next().unwrap_or(""),
                None => call.split('(').next().unwrap_or(""),
            }
            .to_owned();
            seen.push((name, call.to_owned()));
        }
    }
    assert!(
        !seen.is_empty() || inside,
        "the markers were found in the trace"
    );
    (seen, dir)
}

/// Fails on any forbidden call among `seen`.
fn assert_no_forbidden(seen: &[(String, String)]) {
    let forbidden: Vec<&String> = seen
        .iter()
        .filter(|(name, _)| FORBIDDEN.contains(&name.as_str()))
        .map(|(_, call)| call)
        .collect();
    assert!(
        forbidden.is_empty(),
        "the recording thread touched files or started threads:\n{}",
        forbidden
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn recording_callbacks_make_no_file_or_thread_system_calls() {
    if std::env::var_os(CHILD).is_some() {
        the_workload(std::path::Path::new(&std::env::var_os(CHILD).unwrap()));
        return;
    }
    let (seen, dir) = traced_calls("recording_callbacks_make_no_file_or_thread_system_calls");
    assert_no_forbidden(&seen);
    let dumps = dir.path().join("dumps");
    // And the dumps did happen, elsewhere: top-N kept the slowest breach only.
    let files = common::files_in(&dumps);
    let slow: Vec<_> = files
        .iter()
        .filter(|f| {
            f.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("slow_span")
        })
        .collect();
    assert_eq!(slow.len(), 1, "{files:?}");
    assert!(files.iter().any(|f| {
        f.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("error")
    }));
}

/// A crash-safe recorder's chunks are a shared file's pages: recording into them, through
/// chunk rolls and evictions, touches no file either. Taking a block reserves its pages
/// (`fallocate`) and freeing one gives them back (`madvise`): memory calls on tmpfs, made
/// only while the chunks grow.
#[cfg(feature = "crash")]
#[test]
fn crash_safe_recording_makes_no_file_calls_either() {
    if let Some(dir) = std::env::var_os(CHILD) {
        let (layer, recorder) = FlightRecorder::builder()
            .crash_safe(std::path::Path::new(&dir).join("shm"))
            .recover_on_start(false)
            .max_bytes(256 << 10)
            .build()
            .unwrap();
        let dispatch = common::dispatch(layer);
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::info!("warm up");
            eprintln!("BLACKBOX_BEGIN {}", unsafe_free_gettid());
            // Many times the budget: chunk rolls, growth and eviction.
            for n in 0..50_000u64 {
                tracing::info_span!("step", n).in_scope(|| tracing::info!(n, "recorded"));
            }
            eprintln!("BLACKBOX_END");
        });
        assert!(recorder.status().overwritten > 0);
        return;
    }
    let (seen, _dir) = traced_calls("crash_safe_recording_makes_no_file_calls_either");
    assert_no_forbidden(&seen);
    let allowed = [
        "write",
        "fallocate",
        "madvise",
        "futex",
        "brk",
        "mmap",
        "munmap",
    ];
    let other: Vec<&String> = seen
        .iter()
        .filter(|(name, _)| !allowed.contains(&name.as_str()))
        .map(|(_, call)| call)
        .collect();
    assert!(
        other.is_empty(),
        "unexpected calls on the recording thread: {other:?}"
    );
    let reserved = seen.iter().filter(|(name, _)| name == "fallocate").count();
    assert!(
        reserved <= 64,
        "{reserved} fallocate calls: only while chunks grow"
    );
}
