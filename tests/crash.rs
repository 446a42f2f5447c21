//! The crash-safe store: child processes record into a crash file and die every way a process
//! dies (SIGKILL, abort, segfault, stack overflow, allocation failure); the parent recovers a
//! valid dump holding the last record the child reported before it died.
#![cfg(all(feature = "crash", target_os = "linux"))]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tracing_blackbox::FlightRecorder;
use tracing_blackbox::recover::{self, RecoverError, RecoverOptions};
use tracing_subscriber::prelude::*;

/// The child's mode: how it dies.
const CHILD_MODE: &str = "BLACKBOX_CRASH_CHILD";
/// Where the child puts its crash file.
const CHILD_DIR: &str = "BLACKBOX_CRASH_CHILD_DIR";
/// After how many steps the child dies (or, for `kill`, is killed while it goes on).
const STEPS: u64 = 3_000;

/// The child: records spans and events on two threads, prints each step's number once it is
/// recorded, and dies as `BLACKBOX_CRASH_CHILD` says. Run only by the tests below.
#[test]
#[ignore = "the crash tests' child process"]
fn crash_child() {
    let mode = std::env::var(CHILD_MODE).expect("run by the crash tests");
    let dir = std::env::var(CHILD_DIR).expect("run by the crash tests");
    let (layer, _recorder) = FlightRecorder::builder()
        .crash_safe(dir)
        .recover_on_start(false)
        .max_bytes(256 << 10)
        .build()
        .expect("crash-safe recorder");
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).unwrap();
    std::thread::Builder::new()
        .name("background".into())
        .spawn(|| {
            for n in 0u64.. {
                tracing::debug!(n, "background work");
                std::thread::sleep(Duration::from_micros(200));
            }
        })
        .unwrap();
    let mut stdout = std::io::stdout().lock();
    for seq in 0u64.. {
        let span = tracing::info_span!("step", seq);
        let entered = span.enter();
        tracing::info!(seq, payload = "x".repeat(64).as_str(), "step done");
        drop(entered);
        drop(span);
        use std::io::Write;
        writeln!(stdout, "{seq}").unwrap();
        stdout.flush().unwrap();
        if seq == STEPS && mode != "kill" {
            die(&mode);
        }
    }
}

fn die(mode: &str) {
    match mode {
        "abort" => std::process::abort(),
        // A normal exit: the file goes with the process.
        "exit" => std::process::exit(0),
        "segfault" => {
            // SAFETY: none; the point is to crash. Test program only.
            unsafe { std::ptr::null_mut::<u64>().write_volatile(1) };
        }
        "stack_overflow" => {
            #[allow(unconditional_recursion)]
            fn deeper(depth: u64) -> u64 {
                let frame = std::hint::black_box([depth; 64]);
                deeper(frame[0] + 1) + frame[1]
            }
            std::hint::black_box(deeper(0));
        }
        "oom" => {
            // Under `ulimit -v` this allocation fails, and the allocation error aborts.
            let huge: Vec<u8> = Vec::with_capacity(64 << 30);
            std::hint::black_box(huge);
        }
        other => panic!("unknown mode {other}"),
    }
    unreachable!("the child should have died");
}

/// `command` (this test program) made the child that dies `mode`'s way, its steps on stdout.
fn as_child<'a>(command: &'a mut Command, mode: &str, dir: &Path) -> &'a mut Command {
    command
        .args(["--exact", "crash_child", "--nocapture", "--include-ignored"])
        .env(CHILD_MODE, mode)
        .env(CHILD_DIR, dir)
        .stdout(Stdio::piped())
}

/// Runs the child in `mode`, returns the last step it reported and its exit status.
fn run_child(mode: &str, dir: &Path) -> (u64, Death) {
    let exe = std::env::current_exe().unwrap();
    let mut command = if mode == "oom" {
        let mut shell = Command::new("sh");
        shell.args(["-c", "ulimit -v 4194304 && exec \"$0\" \"$@\""]);
        shell.arg(&exe);
        shell
    } else {
        Command::new(&exe)
    };
    let mut child = as_child(&mut command, mode, dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut last = None;
    for line in stdout.lines() {
        let Ok(line) = line else { break };
        if let Ok(seq) = line.trim().parse::<u64>() {
            last = Some(seq);
            // Killed while it records, mid-loop; the lines already in the pipe still count.
            if mode == "kill" && seq == STEPS {
                child.kill().unwrap();
            }
        }
    }
    let status = child.wait().unwrap();
    let death = Death {
        signal: std::os::unix::process::ExitStatusExt::signal(&status),
        stderr: stderr.join().unwrap(),
    };
    (last.expect("the child reported steps"), death)
}

/// How a child ended.
struct Death {
    signal: Option<i32>,
    stderr: String,
}

fn only_file(dir: &Path) -> PathBuf {
    let files = recover::crash_files(dir).unwrap();
    assert_eq!(files.len(), 1, "one crash file: {files:?}");
    files.into_iter().next().unwrap()
}

/// Kills a child `mode`'s way and checks what its crash file gives back: the child must have
/// died of `signal`, saying `says` on stderr.
fn dies_and_is_recovered(mode: &str, signal: i32, says: &str) {
    let crash_dir = tempfile::tempdir().unwrap();
    let dumps = tempfile::tempdir().unwrap();
    let (last, death) = run_child(mode, crash_dir.path());
    assert_eq!(death.signal, Some(signal), "{mode}: {}", death.stderr);
    assert!(death.stderr.contains(says), "{mode}: {}", death.stderr);
    let file = only_file(crash_dir.path());
    let recovery = recover::recover_file(&file, &RecoverOptions::new().dump_dir(dumps.path()))
        .unwrap_or_else(|e| panic!("{mode}: {e}"));
    assert!(recovery.removed && !file.exists(), "{mode}: file removed");
    let dump = common::load(&recovery.dump.path);
    assert_eq!(dump.other("reason"), "crash");
    assert!(dump.counter("overwritten") > 0, "{mode}: the ring wrapped");
    assert_eq!(
        dump.other("crash")["pid"].as_u64(),
        Some(u64::from(recovery.pid))
    );
    assert_ne!(recovery.pid, std::process::id());
    let steps: Vec<u64> = dump
        .phase("i")
        .filter(|e| e["name"] == "step done")
        .map(|e| e["args"]["fields"]["seq"].as_u64().expect("numeric seq"))
        .collect();
    let newest = *steps.iter().max().expect("step events in the dump");
    assert!(
        newest >= last,
        "{mode}: the dump holds step {newest}, the child reported {last}"
    );
    // The window is the newest records: a contiguous run of steps up to the last.
    let oldest = *steps.iter().min().unwrap();
    assert_eq!(
        steps.len() as u64,
        newest - oldest + 1,
        "{mode}: no step missing"
    );
    assert!(
        dump.slices_named("step").len() as u64 >= newest - oldest,
        "{mode}: spans recovered as slices"
    );
    assert!(
        dump.events()
            .iter()
            .any(|e| e["name"] == "thread_name" && e["args"]["name"] == "background"),
        "{mode}: thread names recovered"
    );
}

#[test]
fn sigkill_leaves_a_recoverable_file() {
    dies_and_is_recovered("kill", libc::SIGKILL, "");
}

#[test]
fn abort_leaves_a_recoverable_file() {
    dies_and_is_recovered("abort", libc::SIGABRT, "");
}

#[test]
fn segfault_leaves_a_recoverable_file() {
    dies_and_is_recovered("segfault", libc::SIGSEGV, "");
}

#[test]
fn stack_overflow_leaves_a_recoverable_file() {
    dies_and_is_recovered("stack_overflow", libc::SIGABRT, "has overflowed its stack");
}

#[test]
fn allocation_failure_leaves_a_recoverable_file() {
    dies_and_is_recovered("oom", libc::SIGABRT, "memory allocation of");
}

#[test]
fn a_running_process_file_is_refused_unless_forced() {
    let crash_dir = tempfile::tempdir().unwrap();
    let dumps = tempfile::tempdir().unwrap();
    let (layer, recorder) = FlightRecorder::builder()
        .crash_safe(crash_dir.path())
        .recover_on_start(false)
        .build()
        .unwrap();
    let dispatch = common::dispatch(layer);
    tracing::dispatcher::with_default(&dispatch, || {
        for n in 0..100 {
            tracing::info!(n, "alive");
        }
    });
    let file = only_file(crash_dir.path());
    assert_eq!(recorder.status().crash_file.as_ref(), Some(&file));
    assert!(recorder.status().to_json().contains("\"crash_file\":\""));
    let options = RecoverOptions::new().dump_dir(dumps.path());
    match recover::recover_file(&file, &options) {
        Err(RecoverError::StillRunning { pid, .. }) => assert_eq!(pid, std::process::id()),
        other => panic!("expected StillRunning, got {other:?}"),
    }
    let forced = recover::recover_file(&file, &options.clone().force(true).keep_file(true))
        .expect("forced recovery");
    assert!(file.exists(), "kept");
    let dump = common::load(&forced.dump.path);
    assert_eq!(
        dump.phase("i").filter(|e| e["name"] == "alive").count(),
        100
    );
    drop(recorder);
    drop(dispatch);
    assert!(!file.exists(), "a recorder that goes away removes its file");
}

#[test]
fn a_clean_exit_leaves_no_file() {
    let crash_dir = tempfile::tempdir().unwrap();
    let (last, death) = run_child("exit", crash_dir.path());
    assert_eq!(last, STEPS);
    assert_eq!(death.signal, None, "{}", death.stderr);
    assert_eq!(
        recover::crash_files(crash_dir.path()).unwrap(),
        Vec::<PathBuf>::new()
    );
}

/// The next run of the same executable recovers what a dead run left, in the background, and
/// keeps at most `keep_crash_files` of the files it cannot recover.
#[test]
fn the_next_run_recovers_on_start_and_bounds_leftovers() {
    let crash_dir = tempfile::tempdir().unwrap();
    let dumps = tempfile::tempdir().unwrap();
    let (last, _) = run_child("abort", crash_dir.path());
    let left = only_file(crash_dir.path());
    // Files of this executable that cannot be recovered: not crash files, of dead pids.
    let name = left.file_name().unwrap().to_string_lossy().into_owned();
    let exe = name.rsplitn(3, '-').nth(2).unwrap().to_owned();
    let junk: Vec<PathBuf> = (0..5)
        .map(|n| {
            let path = crash_dir
                .path()
                .join(format!("{exe}-{}-{n}.shm", 4_000_000_000u64 + n));
            std::fs::write(&path, b"not a crash file").unwrap();
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            let age = std::time::SystemTime::now() - Duration::from_secs(100 - n);
            file.set_modified(age).unwrap();
            path
        })
        .collect();
    // Another program's file is never touched.
    let other = crash_dir
        .path()
        .join("blackbox-otherprogram-4000000001-1.shm");
    std::fs::write(&other, b"x").unwrap();

    let (outcomes_tx, outcomes) = std::sync::mpsc::channel();
    let (_layer, _recorder) = FlightRecorder::builder()
        .crash_safe(crash_dir.path())
        .dump_dir(dumps.path())
        .keep_crash_files(2)
        .on_dump(move |outcome| {
            let _ = outcomes_tx.send(outcome.clone());
        })
        .build()
        .unwrap();
    let outcome = outcomes
        .recv_timeout(Duration::from_secs(30))
        .expect("the crash was recovered on start");
    assert_eq!(outcome.reason, "crash");
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    let dump = common::load(&outcome.path);
    let newest = dump
        .phase("i")
        .filter(|e| e["name"] == "step done")
        .filter_map(|e| e["args"]["fields"]["seq"].as_u64())
        .max();
    assert!(newest >= Some(last), "{newest:?} < {last}");
    // The pass ends with the limit: wait for the junk to go down to two.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while junk.iter().filter(|path| path.exists()).count() > 2 {
        assert!(std::time::Instant::now() < deadline, "leftovers kept to 2");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!left.exists(), "the recovered file is removed");
    let kept: Vec<_> = junk.iter().filter(|path| path.exists()).collect();
    assert_eq!(kept, [&junk[3], &junk[4]], "the newest leftovers stay");
    assert!(other.exists(), "another program's file stays");
    let own = recover::crash_files(crash_dir.path()).unwrap();
    assert_eq!(
        own.len(),
        4,
        "this run's own file, the two leftovers, the other program's"
    );
}

#[cfg(feature = "cli")]
#[test]
fn blackbox_recover_from_the_shell() {
    use assert_cmd::Command;
    let crash_dir = tempfile::tempdir().unwrap();
    let dumps = tempfile::tempdir().unwrap();
    let (last, _) = run_child("segfault", crash_dir.path());
    let blackbox = || Command::cargo_bin("blackbox").unwrap();

    // `-o` names one dump: a directory is refused, and nothing is touched.
    let refused = blackbox()
        .args(["recover", "-o", "x.json"])
        .arg(crash_dir.path())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("-o names one dump"));
    let file = only_file(crash_dir.path());

    let output = blackbox()
        .arg("recover")
        .arg(crash_dir.path())
        .arg("--dir")
        .arg(dumps.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("file removed"), "{stdout}");
    assert!(!file.exists());
    let dump_path = common::files_in(dumps.path()).pop().expect("a dump");
    let dump = common::load(&dump_path);
    let newest = dump
        .phase("i")
        .filter_map(|e| e["args"]["fields"]["seq"].as_u64())
        .max();
    assert!(newest >= Some(last));

    let summary = blackbox().arg("summary").arg(&dump_path).output().unwrap();
    let summary = String::from_utf8_lossy(&summary.stdout);
    assert!(summary.contains("reason    crash"), "{summary}");
    assert!(summary.contains("crashed   pid"), "{summary}");

    let again = blackbox()
        .arg("recover")
        .arg(crash_dir.path())
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("no crash files"));

    // A running process's file: refused, then read with --force, kept with --keep.
    let (_layer, _recorder) = FlightRecorder::builder()
        .crash_safe(crash_dir.path())
        .recover_on_start(false)
        .build()
        .unwrap();
    let live = only_file(crash_dir.path());
    let refused = blackbox().arg("recover").arg(&live).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("is still running"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let out = dumps.path().join("live.json");
    let forced = blackbox()
        .args(["recover", "--force", "--keep", "-o"])
        .arg(&out)
        .arg(&live)
        .output()
        .unwrap();
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert!(live.exists() && out.exists());
    common::load(&out);
}

/// A killed process its parent has not reaped yet (a zombie) is dead: its file is recovered
/// without `force`.
#[test]
fn a_zombie_is_dead() {
    let crash_dir = tempfile::tempdir().unwrap();
    let dumps = tempfile::tempdir().unwrap();
    let mut command = Command::new(std::env::current_exe().unwrap());
    let mut child = as_child(&mut command, "kill", crash_dir.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while lines
        .next()
        .is_some_and(|line| line.unwrap().trim() != "100")
    {}
    child.kill().unwrap();
    let stat = format!("/proc/{}/stat", child.id());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&stat).unwrap().contains(") Z ") {
        assert!(
            std::time::Instant::now() < deadline,
            "the child became a zombie"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let file = only_file(crash_dir.path());
    let recovery = recover::recover_file(&file, &RecoverOptions::new().dump_dir(dumps.path()))
        .expect("a zombie's file is recovered");
    assert_eq!(recovery.pid, child.id());
    child.wait().unwrap();
}

#[test]
fn blackbox_crash_dir_switches_it_from_the_environment() {
    let crash_dir = tempfile::tempdir().unwrap();
    let dir = crash_dir.path().to_str().unwrap();
    let build = |value: &str| {
        FlightRecorder::builder()
            .recover_on_start(false)
            .with_env_from(common::vars(&[(tracing_blackbox::CRASH_ENV_VAR, value)]))
            .build()
    };
    let (_layer, recorder) = build(dir).unwrap();
    assert_eq!(recover::crash_files(dir).unwrap().len(), 1);
    assert!(recorder.status().crash_file.is_some());
    drop((_layer, recorder));
    assert_eq!(
        recover::crash_files(dir).unwrap().len(),
        0,
        "removed with the recorder"
    );
    let (_layer, recorder) = build("off").unwrap();
    assert!(recorder.status().crash_file.is_none());
    let (_layer, recorder) = build("on").unwrap();
    let file = recorder.status().crash_file.expect("the default directory");
    assert_eq!(file.parent(), Some(recover::default_crash_dir().as_path()));
    match build("") {
        Err(tracing_blackbox::BuildError::Env { variable, .. }) => {
            assert_eq!(variable, "BLACKBOX_CRASH_DIR");
        }
        other => panic!("expected an Env error, got {other:?}"),
    }
    // A directory that cannot be made: a clear error naming it.
    let blocked = crash_dir.path().join("a-file");
    std::fs::write(&blocked, b"").unwrap();
    let error = build(blocked.join("sub").to_str().unwrap()).unwrap_err();
    assert!(matches!(
        error,
        tracing_blackbox::BuildError::CrashFile { .. }
    ));
    assert!(error.to_string().contains("a-file"), "{error}");
}
