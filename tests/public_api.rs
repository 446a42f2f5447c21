//! The public API, named item by item: a restructure that removes, renames or retypes any of
//! them fails to compile here. Adding an item is fine; removing one is a decision, taken here.
#![allow(clippy::type_complexity)]

use std::path::Path;
use std::time::Duration;

use tracing_blackbox::*;

#[test]
fn every_public_item_is_still_there() {
    // Defaults and limits, where the settings are.
    let _: usize = Builder::DEFAULT_MAX_BYTES;
    let _: Duration = Builder::DEFAULT_MIN_AGE;
    let _: usize = Builder::DEFAULT_MAX_FIELD_LEN;
    let _: usize = Builder::MIN_MAX_BYTES;
    let _: usize = Builder::MAX_MAX_BYTES;
    let _: usize = Builder::MAX_FIELD_LEN_LIMIT;
    let _: Duration = Builder::DEFAULT_COOLDOWN;
    let _: &str = Builder::DEFAULT_DUMP_DIR;
    let _: usize = Builder::DEFAULT_QUEUE_CAPACITY;
    // The same at the root, deprecated but still there.
    #[allow(deprecated)]
    let _: usize = DEFAULT_MAX_BYTES;
    #[allow(deprecated)]
    let _: Duration = DEFAULT_MIN_AGE;
    #[allow(deprecated)]
    let _: usize = DEFAULT_MAX_FIELD_LEN;
    #[allow(deprecated)]
    let _: usize = MIN_MAX_BYTES;
    #[allow(deprecated)]
    let _: usize = MAX_MAX_BYTES;
    #[allow(deprecated)]
    let _: usize = MAX_FIELD_LEN_LIMIT;
    #[allow(deprecated)]
    let _: Duration = DEFAULT_COOLDOWN;
    #[allow(deprecated)]
    let _: &str = DEFAULT_DUMP_DIR;
    #[allow(deprecated)]
    let _: usize = DEFAULT_QUEUE_CAPACITY;
    let _: &[&str] = &DEFAULT_REDACTED_FIELDS;
    let _: &str = REDACTED;
    let _: &str = TRUNCATION_MARKER;
    let _: u64 = ORPHAN_SPAN_BIT;
    let _: u32 = FORMAT_VERSION;
    let _: [&str; 8] = ENV_VARS;

    // The builder: every setter.
    let _: fn() -> Builder = FlightRecorder::builder;
    let builder = FlightRecorder::builder()
        .max_bytes(1 << 20)
        .min_age(Duration::from_secs(1))
        .max_field_len(64)
        .recording(true)
        .dump_on_slow_span(Duration::from_secs(1))
        .slow_span_threshold("name", Duration::from_secs(1))
        .slow_span_timing(SpanTiming::Busy)
        .dump_on_error()
        .error_level(tracing::Level::WARN)
        .dump_on_panic()
        .dump_dir("dumps")
        .cooldown(Duration::ZERO)
        .max_queued_dumps(4)
        .keep_files(4)
        .keep_bytes(1 << 20)
        .keep_slowest(2)
        .on_dump(|outcome: &DumpOutcome| {
            let DumpOutcome {
                reason,
                path,
                bytes,
                took,
                error,
                slow_span,
                destination,
                ..
            } = outcome;
            let _: (&String, &std::path::PathBuf, &u64, &Duration) = (reason, path, bytes, took);
            let _ = matches!(destination, Destination::File | Destination::Otlp);
            let _: &Option<DumpError> = error;
            if let Some(SlowSpan {
                name,
                id,
                duration,
                threshold,
                ..
            }) = slow_span
            {
                let _: (&&str, &u64, &Duration, &Duration) = (name, id, duration, threshold);
            }
        })
        .redact_fields(["a"])
        .redact_field("b")
        .redact_case_sensitive(false)
        .enabled(true)
        .with_env_from(|_| None);
    #[cfg(unix)]
    let builder = builder.dump_file_mode(0o600).dump_dir_mode(0o700);
    #[cfg(all(unix, feature = "signal"))]
    let builder = builder.dump_on_signal();
    #[cfg(feature = "gzip")]
    let builder = builder.gzip(false);
    let _: fn(Builder) -> Builder = Builder::with_env;
    let _: fn(Builder) -> Result<(FlightRecorderLayer, FlightRecorder), BuildError> =
        Builder::build;
    drop(builder);

    // The handle.
    let _: fn(&FlightRecorder) -> Snapshot = FlightRecorder::snapshot;
    let _: fn(&FlightRecorder, Vec<u8>) -> std::io::Result<u64> = FlightRecorder::write_to;
    let _ = |r: &FlightRecorder, p: &Path| -> Result<DumpInfo, DumpError> { r.dump_to_file(p) };
    let _ = |r: &FlightRecorder, p: &Path, l: &str| -> Result<DumpInfo, DumpError> {
        r.dump_to_dir(p, l)
    };
    let _: fn(&FlightRecorder, &str) -> TriggerOutcome = FlightRecorder::trigger;
    let _: fn(&FlightRecorder) = FlightRecorder::flush;
    let _: fn(&FlightRecorder, Duration) -> bool = FlightRecorder::flush_timeout;
    let _: fn(&FlightRecorder) -> Option<DumpError> = FlightRecorder::last_dump_error;
    let _: fn(&FlightRecorder) -> &Path = FlightRecorder::dump_dir;
    let _: fn(&FlightRecorder) = FlightRecorder::stop;
    let _: fn(&FlightRecorder) = FlightRecorder::start;
    let _: fn(&FlightRecorder) -> bool = FlightRecorder::is_recording;
    let _: fn(&FlightRecorder) -> usize = FlightRecorder::allocated_bytes;
    let _: fn(&FlightRecorder) -> RecorderStatus = FlightRecorder::status;
    let _ = |s: RecorderStatus| -> String {
        let RecorderStatus {
            recording,
            max_bytes,
            allocated_bytes,
            threads,
            written,
            overwritten,
            dropped,
            suppressed,
            dumps_written,
            dumps_failed,
            last_dump,
            ..
        } = s.clone();
        let _: (bool, usize, usize, usize) = (recording, max_bytes, allocated_bytes, threads);
        let _: (u64, u64, u64, u64, u64, u64) = (
            written,
            overwritten,
            dropped,
            suppressed,
            dumps_written,
            dumps_failed,
        );
        let _: Option<(std::time::SystemTime, DumpOutcome)> = last_dump;
        s.to_json()
    };

    // What comes back.
    let _ = |info: DumpInfo| -> (std::path::PathBuf, u64) { (info.path, info.bytes) };
    fn parts(e: &DumpError) -> (DumpStage, &Path, &std::io::Error) {
        (e.stage(), e.path(), e.io_error())
    }
    let _ = parts;
    for stage in [
        DumpStage::CreateDir,
        DumpStage::CreateTemp,
        DumpStage::Write,
        DumpStage::Persist,
        DumpStage::Callback,
        DumpStage::Export,
    ] {
        assert!(!stage.to_string().is_empty());
    }
    for outcome in [
        TriggerOutcome::Queued,
        TriggerOutcome::Suppressed,
        TriggerOutcome::Disabled,
    ] {
        let _ = format!("{outcome:?}");
    }
    let errors = [
        BuildError::MaxBytesTooSmall { given: 0, min: 1 },
        BuildError::MaxBytesTooLarge { given: 2, max: 1 },
        BuildError::InvalidMinAge {
            given: Duration::ZERO,
        },
        BuildError::InvalidMaxFieldLen { given: 0 },
        BuildError::Zero { setting: "x" },
        BuildError::Env {
            variable: "BLACKBOX",
            value: "x".into(),
            expected: "y".into(),
        },
        BuildError::Signal {
            message: "x".into(),
        },
        BuildError::DumpThread {
            message: "x".into(),
        },
        BuildError::Export {
            message: "x".into(),
        },
    ];
    assert!(errors.iter().all(|e| !e.to_string().is_empty()));

    // Snapshots.
    let _ = |s: Snapshot| {
        let Snapshot {
            threads,
            records,
            counters,
            anchor,
            window_start_ns,
            window_end_ns,
            max_bytes,
            min_age,
            allocated_bytes,
            ..
        } = s;
        let _: (Vec<ThreadInfo>, Vec<Record>, Counters) = (threads, records, counters);
        let _: (
            chrono::DateTime<chrono::Utc>,
            u64,
            u64,
            usize,
            Duration,
            usize,
        ) = (
            anchor,
            window_start_ns,
            window_end_ns,
            max_bytes,
            min_age,
            allocated_bytes,
        );
    };
    let _: fn(&Snapshot, u64) -> chrono::DateTime<chrono::Utc> = Snapshot::wall_time;
    let _ = |c: Counters| (c.written, c.overwritten, c.dropped, c.retained);
    let _ = |t: ThreadInfo| (t.tid, t.name);
    let _ = |r: Record| (r.tid, r.timestamp_ns, r.kind, r.fields_dropped);
    let _ = |k: RecordKind| match k {
        RecordKind::NewSpan {
            span,
            parent,
            metadata,
            fields,
        } => (span, parent.is_some(), metadata.name(), fields.len()),
        RecordKind::Enter { span }
        | RecordKind::Exit { span }
        | RecordKind::Close { span }
        | RecordKind::FollowsFrom { span, .. } => (span, false, "", 0),
        RecordKind::Record { span, fields } => (span, false, "", fields.len()),
        RecordKind::Event {
            span,
            explicit_parent,
            metadata,
            fields,
        } => (
            span.unwrap_or(0),
            explicit_parent,
            metadata.name(),
            fields.len(),
        ),
        _ => (0, false, "", 0),
    };
    let _ = |f: Field| -> (&'static str, FieldValue) { (f.name, f.value) };
    for value in [
        FieldValue::U64(1),
        FieldValue::I64(-1),
        FieldValue::U128(1),
        FieldValue::I128(-1),
        FieldValue::F64(1.5),
        FieldValue::Bool(true),
        FieldValue::Str("s".into()),
    ] {
        assert!(!value.to_string().is_empty());
    }
    let _ = [SpanTiming::Wall, SpanTiming::Busy];

    // The format checker.
    let _: fn(&serde_json::Value) -> Result<validate::Summary, validate::Violation> =
        validate::check;
    let _: fn(&str) -> Result<validate::Summary, validate::Violation> = validate::check_str;
    let mut checker = validate::Checker::default();
    let _: Result<(), validate::Violation> = checker.feed(&serde_json::json!({"ph": "M"}));
    let _: Result<validate::Summary, validate::Violation> = checker.finish();
}

#[cfg(feature = "otlp")]
#[test]
fn the_otlp_api_is_still_there() {
    let _: &str = OtlpConfig::TRACES_PATH;
    let _: Duration = OtlpConfig::DEFAULT_TIMEOUT;
    let _: u32 = OtlpConfig::DEFAULT_MAX_ATTEMPTS;
    let _: usize = OtlpConfig::DEFAULT_MAX_QUEUED;
    let _: [&str; 7] = OTLP_ENV_VARS;
    let config = OtlpConfig::new("http://127.0.0.1:4318")
        .header("authorization", "Bearer t")
        .gzip(true)
        .timeout(Duration::from_secs(1))
        .max_attempts(2)
        .max_queued(2)
        .service_name("s")
        .resource_attribute("k", "v")
        .trace_id_field("trace_id");
    let _: &str = config.endpoint();
    let _ = Builder::default()
        .export_otlp(config)
        .write_dump_files(false);
    let _: fn(&FlightRecorder, &str) -> Result<ExportInfo, DumpError> =
        FlightRecorder::export_otlp_now;
    let _ = |info: ExportInfo| -> (String, usize, u64) { (info.endpoint, info.spans, info.bytes) };
}

#[cfg(feature = "crash")]
#[test]
fn the_crash_api_is_still_there() {
    use tracing_blackbox::recover::{self, CrashFileError, RecoverError, RecoverOptions, Recovery};
    let _: &str = tracing_blackbox::CRASH_ENV_VAR;
    let _ = Builder::default()
        .crash_safe(recover::default_crash_dir())
        .recover_on_start(true)
        .keep_crash_files(4);
    let _: fn() -> std::path::PathBuf = recover::default_crash_dir;
    let _: fn(&'static str) -> std::io::Result<Vec<std::path::PathBuf>> = recover::crash_files;
    let options = RecoverOptions::new()
        .output("x.json")
        .dump_dir("d")
        .force(false)
        .keep_file(false)
        .gzip(false);
    let _: fn(&'static str, &RecoverOptions) -> Result<Recovery, RecoverError> =
        recover::recover_file;
    let _ = options;
    let _ = |r: Recovery| -> (
        std::path::PathBuf,
        DumpInfo,
        u32,
        String,
        usize,
        u64,
        Vec<String>,
        bool,
    ) {
        (
            r.source, r.dump, r.pid, r.exe, r.threads, r.records, r.warnings, r.removed,
        )
    };
    let _ = |e: CrashFileError| match e {
        CrashFileError::NotACrashFile => 0,
        CrashFileError::UnsupportedVersion { found, .. } => found,
        CrashFileError::Truncated { .. } => 1,
        CrashFileError::BadLayout(_) => 2,
        _ => 3,
    };
    let _ = |e: BuildError| matches!(e, BuildError::CrashFile { .. });
}

#[cfg(feature = "http")]
#[test]
fn the_endpoint_api_is_still_there() {
    let _: &str = SNAPSHOT_PATH;
    let _: &str = STATUS_PATH;
    let _: usize = HttpConfig::MAX_QUEUED_RESPONSE_BYTES;
    let _: Duration = HttpConfig::STALL_GRACE;
    let _: fn(&HttpServer) -> String = HttpServer::status_url;
    let _: usize = HttpConfig::MAX_HEADER_BYTES;
    let _: usize = HttpConfig::MAX_HEADERS;
    let _: usize = HttpConfig::MAX_BODIES_IN_FLIGHT;
    let _: Duration = HttpConfig::DEFAULT_TIMEOUT;
    let _: usize = HttpConfig::DEFAULT_MAX_CONNECTIONS;
    let config = HttpConfig::new("127.0.0.1:0")
        .bearer_token("t")
        .allow_non_loopback(false)
        .timeout(Duration::from_secs(1))
        .max_connections(8);
    let _: fn(&FlightRecorder, &str) -> Result<HttpServer, HttpError> = FlightRecorder::serve_http;
    let _: fn(&FlightRecorder, HttpConfig) -> Result<HttpServer, HttpError> =
        FlightRecorder::serve_http_with;
    let _: fn(&HttpServer) -> std::net::SocketAddr = HttpServer::local_addr;
    let _: fn(&HttpServer) -> String = HttpServer::url;
    let _ = |e: HttpError| match e {
        HttpError::Address { addr, message } => addr + &message,
        HttpError::NotLoopback { addr } => addr.to_string(),
        HttpError::EmptyToken => String::new(),
        HttpError::Bind { addr, message } => addr.to_string() + &message,
        _ => String::new(),
    };
    drop(config);
}

#[cfg(feature = "analyze")]
#[test]
fn the_reader_api_is_still_there() {
    use tracing_blackbox::analyze::{self, LoadError, TraceEvent, TraceInfo};
    let _ = |p: &Path| -> Result<(Box<dyn std::io::Read>, bool), LoadError> { analyze::open(p) };
    let _ = |f: std::fs::File| -> std::io::Result<(Box<dyn std::io::Read>, bool)> {
        analyze::decode(f)
    };
    let _ =
        |p: &Path| -> Result<TraceInfo, LoadError> { analyze::read_events(p, |_: TraceEvent| {}) };
    let _ = |b: &[u8]| -> Result<TraceInfo, String> { analyze::read_from(b, |_: TraceEvent| {}) };
    let _ = |b: &[u8]| -> Result<TraceInfo, String> {
        analyze::read_values(b, |_: serde_json::Value| {})
    };
    let _ = |p: &Path| -> Result<u64, DumpError> { analyze::write_atomically(p, |_| Ok(())) };
    let _ = |info: TraceInfo| info.gzipped;
    let _ = |e: LoadError| e.to_string();
    let _ = |p: &Path| LoadError::io(p, "cannot read", std::io::Error::other("x"));
}
