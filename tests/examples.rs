//! The seed's exercise end to end: run `examples/slow_tasks` and check its dumps.

#[cfg(feature = "otlp")]
#[path = "common/collector.rs"]
mod collector;
mod common;

use std::process::Command;

use common::example;

#[test]
fn slow_tasks_dumps_each_slow_task() {
    let Some(binary) = example("slow_tasks") else {
        panic!("examples/slow_tasks was not built; run `cargo test` (which builds examples)");
    };
    let dir = tempfile::tempdir().unwrap();
    // Seed 1 waits 488, 346, 214, 87 and 127 ms: two tasks are slow.
    let output = Command::new(&binary)
        .args(["--seed", "1"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Starting Flight Recorder"));
    for wait in [488, 346, 214, 87, 127] {
        assert!(stdout.contains(&format!("waiting {wait}ms")), "{stdout}");
    }
    let detected = stdout
        .lines()
        .filter(|l| l.contains("Slow operation detected:"))
        .count();
    let saved: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_once("Trace saved to: ").map(|(_, p)| p))
        .collect();
    assert_eq!(detected, 2, "{stdout}");
    assert_eq!(saved.len(), 2, "one dump per detection");

    for path in saved {
        let path = dir.path().join(path);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("slow_span_slow_operation_") && name.ends_with(".json"));
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        );
        let dump = common::load(&path);
        // The built-in trigger fired for this slow task; its span is complete and marked.
        assert_eq!(dump.other("reason"), "slow_span");
        let trigger = dump.other("trigger");
        assert_eq!(trigger["span"], "slow_operation");
        assert!(trigger["duration_ms"].as_f64().unwrap() >= 300.0);
        let marked: Vec<_> = dump
            .slices_named("slow_operation")
            .into_iter()
            .filter(|x| x["args"]["trigger"] == true)
            .collect();
        assert_eq!(marked.len(), 1, "{name}: one slice of the slow span");
        let slow = marked[0];
        assert_eq!(slow["args"]["span_id"], trigger["span_id"]);
        assert!(slow["args"]["fields"]["wait_ms"].as_u64().unwrap() >= 300);
        assert!(
            slow["args"].get("incomplete").is_none(),
            "{name} holds the slow span complete"
        );
        assert!(slow["dur"].as_f64().unwrap() >= 300_000.0);
        assert_eq!(
            dump.slices_named("wait").len(),
            5,
            "every task's wait is there"
        );
    }
    let files = std::fs::read_dir(dir.path().join("blackbox-dumps"))
        .unwrap()
        .count();
    assert_eq!(files, 2, "no temp files left behind");
}

fn dumps(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    common::files_in(&dir.join("blackbox-dumps"))
}

#[test]
fn error_dump_leaves_an_error_dump() {
    let binary = example("error_dump").expect("examples are built by `cargo test`");
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(&binary)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let files = dumps(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(stdout.contains(&format!(
        "Trace saved to: {}",
        files[0].strip_prefix(dir.path()).unwrap().display()
    )));
    let dump = common::load(&files[0]);
    assert_eq!(dump.other("reason"), "error");
    let last = dump.phase("i").last().unwrap();
    assert_eq!(last["name"], "order failed");
    assert_eq!(last["args"]["level"], "ERROR");
    assert!(dump.phase("i").any(|e| e["name"] == "payment gateway slow"));
}

#[test]
fn panic_dump_leaves_a_panic_dump() {
    let binary = example("panic_dump").expect("examples are built by `cargo test`");
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(&binary)
        .current_dir(dir.path())
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "it exits by panicking");
    let files = dumps(dir.path());
    assert_eq!(files.len(), 1, "{files:?}\n{stderr}");
    assert!(
        stderr.contains("trace saved to blackbox-dumps/panic_"),
        "{stderr}"
    );
    assert!(stderr.contains("the config line is a number"), "{stderr}");
    let dump = common::load(&files[0]);
    assert_eq!(dump.other("reason"), "panic");
    assert!(
        dump.other("panic")["message"]
            .as_str()
            .unwrap()
            .contains("the config line is a number")
    );
    let parse = dump.slices_named("parse_config");
    assert_eq!(parse.last().unwrap()["args"]["fields"]["line"], "thirty");
    assert_eq!(parse.last().unwrap()["args"]["incomplete"], true);
}

#[cfg(all(unix, feature = "signal"))]
#[test]
fn signal_dump_dumps_on_each_sigusr1() {
    use std::io::BufRead;
    use std::time::{Duration, Instant};
    let binary = example("signal_dump").expect("examples are built by `cargo test`");
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(&binary)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut command = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some((_, cmd)) = line.split_once("Ask for a dump with:") {
            command = cmd.trim().to_owned();
            break;
        }
    }
    assert_eq!(
        command,
        format!("kill -USR1 {}", child.id()),
        "prints the exact command"
    );
    for expected in 1..=2 {
        let args: Vec<&str> = command.split_whitespace().collect();
        assert!(
            Command::new(args[0])
                .args(&args[1..])
                .status()
                .unwrap()
                .success()
        );
        let until = Instant::now() + Duration::from_secs(10);
        while dumps(dir.path())
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .count()
            < expected
        {
            assert!(Instant::now() < until, "no dump after signal {expected}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let saved: Vec<String> = lines
        .map_while(Result::ok)
        .filter(|l| l.contains("Trace saved to"))
        .collect();
    assert_eq!(saved.len(), 2, "{saved:?}");
    for file in dumps(dir.path()) {
        let dump = common::load(&file);
        assert_eq!(dump.other("reason"), "signal");
        assert!(!dump.slices_named("job").is_empty());
    }
}

#[cfg(feature = "http")]
#[test]
fn http_snapshot_serves_its_traces() {
    use std::io::BufRead;
    let binary = example("http_snapshot").expect("examples are built by `cargo test`");
    // A free port, released just before the example binds it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(&binary)
        .args(["--port", &port.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut curl = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.trim_start().starts_with("curl http") {
            curl = line.trim().to_owned();
            break;
        }
    }
    let url = format!("http://127.0.0.1:{port}/debug/trace/snapshot");
    assert_eq!(
        curl,
        format!("curl {url} > trace.json"),
        "prints the curl command"
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    let dump = common::fetch_dump(&url);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(dump.other("reason"), "http");
    assert!(!dump.slices_named("step").is_empty());
}

#[test]
fn axum_service_dumps_slow_requests_with_their_spans() {
    use std::io::BufRead;
    use std::time::{Duration, Instant};
    let binary = example("axum_service").expect("examples are built by `cargo test`");
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(&binary)
        .args(["--port", &port.to_string()])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().starts_with("Listening on"));
    // Load from a real client: 24 requests on 6 threads; users 10 and 20 are slow.
    let ids: Vec<u64> = (1..=24).collect();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let clients: Vec<_> = ids
            .chunks(4)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|id| {
                            let url = format!("http://127.0.0.1:{port}/users/{id}");
                            ureq::get(&url).call().unwrap().status().as_u16()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let until = Instant::now() + Duration::from_secs(15);
    while dumps(dir.path()).len() < 2 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The app's own snapshot route works too.
    let whole = common::fetch_dump(&format!("http://127.0.0.1:{port}/debug/trace/snapshot"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        whole
            .phase("b")
            .filter(|b| b["name"] == "load_user")
            .count(),
        24,
        "one lifetime per request's load_user (polled several times each)"
    );

    let files = dumps(dir.path());
    assert_eq!(files.len(), 2, "only the slow requests dumped: {files:?}");
    for (file, id) in files.iter().zip([10u64, 20]) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(&format!("slow_request_GET__users_{id}_")),
            "{name}"
        );
        let dump = common::load(file);
        let path = format!("/users/{id}");
        let request = dump
            .slices_named("request")
            .into_iter()
            .filter(|x| x["args"]["fields"]["path"] == path.as_str())
            .collect::<Vec<_>>();
        assert!(!request.is_empty(), "{name} holds its request's span");
        let begin = dump
            .phase("b")
            .find(|b| b["name"] == "request" && b["args"]["fields"]["path"] == path.as_str())
            .unwrap();
        let end = dump.phase("e").find(|e| e["id"] == begin["id"]).unwrap();
        assert!(
            end.get("args").is_none(),
            "{name}: the slow request is complete"
        );
        assert!(end["ts"].as_f64().unwrap() - begin["ts"].as_f64().unwrap() >= 500_000.0);
        assert!(
            dump.slices_named("load_user")
                .iter()
                .any(|x| x["args"]["fields"]["id"] == id)
        );
    }
}

/// The exercise shipped to a real collector: each slow task's window arrives as spans of the
/// service `slow_tasks`, and its file is written too.
#[cfg(feature = "otlp")]
#[test]
fn otlp_export_sends_each_slow_tasks_window() {
    let binary = example("otlp_export").expect("examples are built by `cargo test`");
    let collector = collector::Collector::start();
    let dir = tempfile::tempdir().unwrap();
    // Seed 1 waits 488, 346, 214, 87 and 127 ms: two tasks are slow.
    let output = Command::new(&binary)
        .args(["--seed", "1", "--endpoint", &collector.endpoint()])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.matches("📤 Window sent to").count(), 2, "{stdout}");
    assert_eq!(stdout.matches("📝 Trace saved to").count(), 2, "{stdout}");
    // Both windows: the collector prints each as it comes.
    let is_trigger = |s: &&collector::ReceivedSpan| {
        s.name == "slow_operation" && s.attribute("blackbox.trigger") == "Bool(true)"
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (received, spans) = loop {
        let received = collector.wait_for("task-2", std::time::Duration::from_secs(10));
        let spans = collector::parse_spans(&received);
        if spans.iter().filter(is_trigger).count() >= 2 || std::time::Instant::now() > deadline {
            break (received, spans);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let slow: Vec<_> = spans.iter().filter(is_trigger).collect();
    assert_eq!(slow.len(), 2, "{received}");
    for span in slow {
        assert_eq!(span.resource["service.name"], "Str(slow_tasks)");
        assert!(span.end - span.start >= 300_000_000, "{span:?}");
        assert_eq!(span.attribute("blackbox.reason"), "Str(slow_span)");
    }
}

#[cfg(all(feature = "crash", target_os = "linux"))]
#[test]
fn crash_safe_recovers_the_aborted_run() {
    let binary = example("crash_safe").expect("examples are built by `cargo test`");
    let dir = tempfile::tempdir().unwrap();
    let crash_dir = dir.path().join("shm");
    let output = Command::new(&binary)
        .current_dir(dir.path())
        .env("CRASH_DIR", &crash_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("run 1 ended: signal: 6 (SIGABRT)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("run 2: the crash's dump is blackbox-dumps/crash_"),
        "{stdout}"
    );
    let files = dumps(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let dump = common::load(&files[0]);
    assert_eq!(dump.other("reason"), "crash");
    let requests = dump.slices_named("request");
    assert_eq!(requests.len(), 7, "requests 1 to 7");
    assert_eq!(requests.last().unwrap()["args"]["fields"]["request"], 7);
    assert_eq!(requests.last().unwrap()["args"]["incomplete"], true);
    assert!(
        dump.phase("i")
            .any(|e| e["name"] == "a C library corrupts the heap")
    );
    assert_eq!(
        std::fs::read_dir(&crash_dir).unwrap().count(),
        0,
        "the crash file was removed, and run 2's own at its exit"
    );
}
