//! The seed's exercise end to end: run `examples/slow_tasks` and check its dumps.

mod common;

use std::path::PathBuf;
use std::process::Command;

/// `cargo test` builds the examples next to the test binaries' `deps` folder.
fn example(name: &str) -> Option<PathBuf> {
    let deps = std::env::current_exe().ok()?.parent()?.to_owned();
    let path = deps.parent()?.join("examples").join(name);
    path.exists().then_some(path)
}

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
        let dump = common::Dump {
            json: serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap(),
        };
        common::check_invariants(&dump);
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
