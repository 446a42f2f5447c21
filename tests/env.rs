//! Configuration from `BLACKBOX_*` variables.

mod common;

use std::time::Duration;

use tracing::info;
use tracing_blackbox::{BuildError, FlightRecorder, TriggerOutcome};

#[test]
fn every_variable_takes_effect() {
    let dir = tempfile::tempdir().unwrap();
    let dump_dir = dir.path().join("from-env");
    let (clock, time) = quanta::Clock::mock();
    let (layer, recorder) = FlightRecorder::builder()
        .with_env_from(common::vars(&[
            ("BLACKBOX", "on"),
            ("BLACKBOX_DIR", dump_dir.to_str().unwrap()),
            ("BLACKBOX_MAX_BYTES", "512KiB"),
            ("BLACKBOX_MIN_AGE", "2m"),
            ("BLACKBOX_SLOW_MS", "20"),
            ("BLACKBOX_COOLDOWN", "0"),
            ("BLACKBOX_KEEP", "2"),
        ]))
        .clock(clock)
        .build()
        .unwrap();
    assert_eq!(recorder.dump_dir(), dump_dir);
    let snapshot = recorder.snapshot();
    assert_eq!(snapshot.max_bytes, 512 << 10);
    assert_eq!(snapshot.min_age, Duration::from_secs(120));
    tracing::dispatcher::with_default(&common::dispatch(layer), || {
        for _ in 0..4 {
            // Slow (20 ms threshold), and no cooldown: each gets a dump.
            tracing::info_span!("slow").in_scope(|| time.increment(Duration::from_millis(30)));
            recorder.flush();
        }
    });
    let files = std::fs::read_dir(&dump_dir).unwrap().count();
    assert_eq!(files, 2, "BLACKBOX_KEEP=2 kept two of four");
}

#[test]
fn blackbox_off_records_nothing_and_stays_off() {
    let dir = tempfile::tempdir().unwrap();
    let (clock, time) = quanta::Clock::mock();
    let (layer, recorder) = FlightRecorder::builder()
        .dump_dir(dir.path())
        .dump_on_slow_span(Duration::from_millis(1))
        .with_env_from(common::vars(&[("BLACKBOX", "0")]))
        .clock(clock)
        .build()
        .unwrap();
    assert!(!recorder.is_recording());
    tracing::dispatcher::with_default(&common::dispatch(layer), || {
        info!("not recorded");
        recorder.start();
        assert!(!recorder.is_recording(), "a disabled recorder stays off");
        tracing::info_span!("slow").in_scope(|| time.increment(Duration::from_millis(5)));
        info!("not recorded either");
    });
    assert_eq!(recorder.trigger("anything"), TriggerOutcome::Disabled);
    recorder.flush();
    assert!(
        !std::path::Path::new(tracing_blackbox::Builder::DEFAULT_DUMP_DIR)
            .join("anything")
            .exists()
    );
    let snapshot = recorder.snapshot();
    assert!(snapshot.records.is_empty());
    assert_eq!(snapshot.counters.written, 0);
    assert_eq!(snapshot.counters.dropped, 0);
}

#[test]
fn setters_after_with_env_win_and_unset_variables_change_nothing() {
    let (_layer, recorder) = FlightRecorder::builder()
        .max_bytes(256 << 10)
        .min_age(Duration::from_secs(7))
        .with_env_from(common::vars(&[("BLACKBOX_MAX_BYTES", "1MiB")]))
        .build()
        .unwrap();
    let snapshot = recorder.snapshot();
    assert_eq!(
        snapshot.max_bytes,
        1 << 20,
        "the variable overrides the earlier setter"
    );
    assert_eq!(snapshot.min_age, Duration::from_secs(7), "unset: unchanged");
    let (_layer, recorder) = FlightRecorder::builder()
        .with_env_from(common::vars(&[("BLACKBOX_MAX_BYTES", "1MiB")]))
        .max_bytes(256 << 10)
        .build()
        .unwrap();
    assert_eq!(
        recorder.snapshot().max_bytes,
        256 << 10,
        "a later setter wins"
    );
}

#[test]
fn a_bad_value_names_the_variable_and_the_value() {
    for (variable, value) in [
        ("BLACKBOX", "maybe"),
        ("BLACKBOX_DIR", " "),
        ("BLACKBOX_MAX_BYTES", "ten megs"),
        ("BLACKBOX_MIN_AGE", "10 parsecs"),
        ("BLACKBOX_SLOW_MS", "-5"),
        ("BLACKBOX_COOLDOWN", "soon"),
        ("BLACKBOX_KEEP", "all"),
        ("BLACKBOX_GZIP", "sometimes"),
    ] {
        let err = FlightRecorder::builder()
            .with_env_from(common::vars(&[(variable, value)]))
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, BuildError::Env { variable: v, value: got, .. } if *v == variable && got == value),
            "{variable}: {err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(variable) && message.contains(value.trim()),
            "{message}"
        );
    }
    // A value that parses but is out of range is the builder's usual error.
    let err = FlightRecorder::builder()
        .with_env_from(common::vars(&[("BLACKBOX_MAX_BYTES", "1KiB")]))
        .build()
        .unwrap_err();
    assert!(matches!(
        err,
        BuildError::MaxBytesTooSmall { given: 1024, .. }
    ));
    let err = FlightRecorder::builder()
        .with_env_from(common::vars(&[("BLACKBOX_KEEP", "0")]))
        .build()
        .unwrap_err();
    assert!(matches!(
        err,
        BuildError::Zero {
            setting: "keep_files"
        }
    ));
}

#[cfg(feature = "gzip")]
#[test]
fn gzip_dumps_are_json_gz_files() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let (layer, recorder) = FlightRecorder::builder()
        .dump_dir(dir.path())
        .with_env_from(common::vars(&[("BLACKBOX_GZIP", "on")]))
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&common::dispatch(layer), || info!("compressed"));
    assert_eq!(recorder.trigger("zipped"), TriggerOutcome::Queued);
    recorder.flush();
    let manual = recorder
        .dump_to_file(dir.path().join("manual.json.gz"))
        .unwrap();
    let mut files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2);
    assert!(files.contains(&manual.path));
    for file in files {
        assert!(file.to_string_lossy().ends_with(".json.gz"), "{file:?}");
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&file).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let dump = common::Dump {
            json: serde_json::from_str(&text).unwrap(),
        };
        common::check_invariants(&dump);
        assert_eq!(dump.phase("i").next().unwrap()["name"], "compressed");
    }
}

#[test]
fn with_env_reads_the_process_environment() {
    // In a child process, so the variables are the child's alone.
    if std::env::var_os("BLACKBOX_ENV_CHILD").is_some() {
        let (_layer, recorder) = FlightRecorder::builder().with_env().build().unwrap();
        assert_eq!(
            recorder.dump_dir(),
            std::path::Path::new("/tmp/blackbox-env-test")
        );
        assert_eq!(recorder.snapshot().max_bytes, 3 << 20);
        return;
    }
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "with_env_reads_the_process_environment"])
        .env("BLACKBOX_ENV_CHILD", "1")
        .env("BLACKBOX_DIR", "/tmp/blackbox-env-test")
        .env("BLACKBOX_MAX_BYTES", "3MiB")
        .status()
        .unwrap();
    assert!(status.success());
}
