//! The `blackbox` command end to end: a real process on real dumps.
#![cfg(feature = "cli")]

use std::path::Path;

use assert_cmd::Command;

const FIXTURE: &str = "tests/fixtures/slow_tasks.json";

fn blackbox() -> Command {
    Command::cargo_bin("blackbox").unwrap()
}

fn stdout(args: &[&str]) -> String {
    let output = blackbox().args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn summary_of_a_fixed_dump() {
    insta::assert_snapshot!(stdout(&["summary", FIXTURE]));
}

#[test]
fn summary_reads_gzipped_dumps_too() {
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("dump.json.gz");
    blackbox()
        .args(["convert", FIXTURE, "-o", gz.to_str().unwrap()])
        .assert()
        .success();
    let plain = stdout(&["summary", FIXTURE]);
    let zipped = stdout(&["summary", gz.to_str().unwrap()]);
    // Same content but for the file name on the first line.
    assert_eq!(
        plain.lines().skip(1).collect::<Vec<_>>(),
        zipped.lines().skip(1).collect::<Vec<_>>()
    );
    // And back: byte for byte.
    let back = dir.path().join("back.json");
    blackbox()
        .args([
            "convert",
            gz.to_str().unwrap(),
            "-o",
            back.to_str().unwrap(),
        ])
        .assert()
        .success();
    assert_eq!(
        std::fs::read(&back).unwrap(),
        std::fs::read(FIXTURE).unwrap()
    );
}

#[test]
fn spans_filters_by_name_and_duration() {
    let table = stdout(&[
        "spans",
        FIXTURE,
        "--name",
        "slow_operation",
        "--min",
        "300ms",
    ]);
    let rows: Vec<&str> = table
        .lines()
        .skip(1)
        .filter(|l| l.contains("slow_operation"))
        .collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(table.contains("2 spans"));
    let json = stdout(&["spans", FIXTURE, "--min", "5ms", "--json"]);
    let spans: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        spans.len(),
        10,
        "5 slow_operation + 5 wait; prepare takes 2 ms"
    );
    assert!(
        spans
            .iter()
            .all(|s| s["duration_us"].as_f64().unwrap() >= 5000.0)
    );
    assert_eq!(spans.iter().filter(|s| s["trigger"] == true).count(), 1);
}

#[test]
fn events_filters_by_level() {
    let all = stdout(&["events", FIXTURE, "--json"]);
    let debug_and_up = all.lines().count();
    let info = stdout(&["events", FIXTURE, "--level", "info", "--json"]);
    assert!(
        info.lines().count() < debug_and_up,
        "debug events are filtered out"
    );
    for line in info.lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(event["level"], "INFO");
    }
    assert_eq!(
        stdout(&["events", FIXTURE, "--level", "error", "--json"]),
        ""
    );
}

#[test]
fn validate_passes_our_dumps_and_fails_broken_ones_with_exit_1() {
    let ok = stdout(&["validate", FIXTURE]);
    assert!(ok.contains("valid: 65 events, 5 threads"), "{ok}");
    let dir = tempfile::tempdir().unwrap();
    let overlapping = dir.path().join("overlap.json");
    std::fs::write(
        &overlapping,
        r#"{"traceEvents":[
            {"ph":"M","name":"thread_name","pid":1,"tid":1,"args":{"name":"t"}},
            {"ph":"X","name":"a","pid":1,"tid":1,"ts":0,"dur":10},
            {"ph":"X","name":"b","pid":1,"tid":1,"ts":5,"dur":10}]}"#,
    )
    .unwrap();
    let output = blackbox()
        .args(["validate", overlapping.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("invalid: event 2") && text.contains("overlaps"),
        "{text}"
    );
}

fn bad_input(path: &Path, expected: &str) {
    for command in [
        "summary", "spans", "events", "validate", "render", "convert",
    ] {
        let mut args = vec![command, path.to_str().unwrap()];
        if command == "render" || command == "convert" {
            args.extend(["-o", "/tmp/blackbox-cli-test-never-written.out"]);
        }
        let output = blackbox().args(&args).output().unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(2), "{command}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{command}: one line: {stderr}");
        assert!(
            stderr.contains(path.to_str().unwrap()),
            "{command} names the file: {stderr}"
        );
        assert!(stderr.contains(expected), "{command}: {stderr}");
        assert!(!stderr.contains("panicked"));
    }
    assert!(!Path::new("/tmp/blackbox-cli-test-never-written.out").exists());
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    bad_input(&dir.path().join("missing.json"), "cannot open");
    let truncated = dir.path().join("truncated.json");
    let fixture = std::fs::read(FIXTURE).unwrap();
    std::fs::write(&truncated, &fixture[..fixture.len() / 2]).unwrap();
    bad_input(&truncated, "");
    let not_a_trace = dir.path().join("config.json");
    std::fs::write(
        &not_a_trace,
        br#"{"name": "not a trace", "values": [1, 2, 3]}"#,
    )
    .unwrap();
    bad_input(&not_a_trace, "not a trace");
    let corrupt = dir.path().join("corrupt.json.gz");
    std::fs::write(&corrupt, [0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap();
    bad_input(&corrupt, "");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, b"plain text, not JSON").unwrap();
    bad_input(&text, "JSON");
}

#[test]
fn render_draws_one_lane_per_thread_as_well_formed_svg() {
    let dir = tempfile::tempdir().unwrap();
    let svg_path = dir.path().join("timeline.svg");
    blackbox()
        .args(["render", FIXTURE, "-o", svg_path.to_str().unwrap()])
        .assert()
        .success();
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let document = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    let lanes: Vec<_> = root
        .descendants()
        .filter(|n| n.attribute("class") == Some("lane"))
        .map(|n| n.attribute("data-thread").unwrap().to_owned())
        .collect();
    assert_eq!(lanes, ["task-1", "task-2", "task-3", "task-4", "task-5"]);
    let outlined = root
        .descendants()
        .filter(|n| n.attribute("stroke") == Some("#d00000"))
        .count();
    assert_eq!(outlined, 1, "the trigger span is outlined");
    assert!(svg.contains("+300.0 ms"), "a time axis with units");
    let html_path = dir.path().join("timeline.html");
    blackbox()
        .args(["render", FIXTURE, "-o", html_path.to_str().unwrap()])
        .assert()
        .success();
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<svg"));
}

#[test]
fn render_stays_small_for_a_big_dump() {
    use tracing_subscriber::layer::SubscriberExt;
    let (layer, recorder) = tracing_blackbox::FlightRecorder::builder()
        .max_bytes(8 << 20)
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..60_000u64 {
            let _outer = tracing::info_span!("outer", i).entered();
            let _inner = tracing::info_span!("inner").entered();
            tracing::info!(i, "tick");
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("big.json");
    recorder.dump_to_file(&dump).unwrap();
    let svg_path = dir.path().join("big.svg");
    blackbox()
        .args([
            "render",
            dump.to_str().unwrap(),
            "-o",
            svg_path.to_str().unwrap(),
        ])
        .assert()
        .success();
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let dump_size = std::fs::metadata(&dump).unwrap().len();
    assert!(
        (svg.len() as u64) < dump_size / 20,
        "merged: {} bytes from a {dump_size}-byte dump",
        svg.len()
    );
    assert!(svg.contains("short slices"));
}

/// An error dump: the summary names the error it is for; non-finite floats read back as the
/// strings they were written as.
#[test]
fn summary_names_the_error_and_floats_read_back() {
    use tracing_subscriber::layer::SubscriberExt;
    let dir = tempfile::tempdir().unwrap();
    let (layer, recorder) = tracing_blackbox::FlightRecorder::builder()
        .dump_dir(dir.path())
        .dump_on_error()
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info!(ratio = f64::NAN, limit = f64::INFINITY, "measured");
        tracing::error!(code = 502u64, "payment failed");
    });
    recorder.flush();
    let dump = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let dump = dump.to_str().unwrap();
    let summary = stdout(&["summary", dump]);
    assert!(
        summary.contains("  error     ERROR cli: payment failed, code=502 at tests/cli.rs:"),
        "{summary}"
    );
    let events = stdout(&["events", dump, "--json"]);
    let measured: serde_json::Value = events
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|e| e["message"] == "measured")
        .unwrap_or_else(|| panic!("{events}"));
    assert_eq!(measured["fields"]["ratio"], "NaN", "{measured}");
    assert_eq!(measured["fields"]["limit"], "inf", "{measured}");
    stdout(&["validate", dump]);
}
