//! Export to OTLP against a real collector (rotel, from PyPI): what arrives, and delivery when
//! the collector is down, comes up late, or never answers.
#![cfg(feature = "otlp")]

#[path = "common/collector.rs"]
mod collector;
mod common;

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use collector::{Collector, ReceivedSpan, parse_spans};
use tracing::{error, info, info_span, warn};
use tracing_blackbox::{Destination, DumpOutcome, DumpStage, FlightRecorder, OtlpConfig};

/// The OTLP outcomes reported to `on_dump`, as they come.
fn otlp_outcomes() -> (
    impl Fn(&DumpOutcome) + Send + Sync + 'static,
    mpsc::Receiver<DumpOutcome>,
) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let callback = move |outcome: &DumpOutcome| {
        if outcome.destination == Destination::Otlp {
            let _ = tx.lock().unwrap().send(outcome.clone());
        }
    };
    (callback, rx)
}

fn spans_named<'a>(spans: &'a [ReceivedSpan], name: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|s| s.name == name).collect()
}

/// A slow request on two threads, with typed fields, a redacted one, an error, a link, a
/// span still open and events outside any span: the window arrives with its structure.
#[test]
fn a_triggered_window_arrives_whole_and_typed() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let (on_dump, outcomes) = otlp_outcomes();
    let (layer, recorder) = FlightRecorder::builder()
        .max_bytes(1 << 20)
        .dump_dir(dir.path())
        .dump_on_slow_span(Duration::from_millis(30))
        .on_dump(on_dump)
        .export_otlp(
            OtlpConfig::new(collector.endpoint())
                .service_name("checkout")
                .resource_attribute("deployment.environment", "test")
                .gzip(true),
        )
        .build()
        .unwrap();
    let dispatch = common::dispatch(layer);
    let joined = "4bf92f3577b34da6a3ce929d0e0e4736";
    let still_open = tracing::dispatcher::with_default(&dispatch, || {
        info!(phase = "before", "outside any span");
        let open = info_span!("background_sync", queue = "orders");
        let earlier = info_span!("enqueue", trace_id = joined);
        earlier.in_scope(|| info!("queued"));
        let request = info_span!(
            "request",
            path = "/checkout",
            attempt = 2u64,
            password = "hunter2",
            ok = true
        );
        request.follows_from(&earlier);
        drop(earlier);
        request.in_scope(|| {
            let query = info_span!("db_query", rows = -3i64, ratio = 0.5);
            query.in_scope(|| warn!(retry = 1u64, "slow disk"));
            drop(query);
            let handle = {
                let parent = request.clone();
                let dispatch = dispatch.clone();
                std::thread::Builder::new()
                    .name("worker-7".into())
                    .spawn(move || {
                        tracing::dispatcher::with_default(&dispatch, || {
                            info_span!(parent: &parent, "render").in_scope(|| {
                                error!(code = 500u64, "template failed");
                            });
                        })
                    })
                    .unwrap()
            };
            handle.join().unwrap();
            std::thread::sleep(Duration::from_millis(40));
        });
        drop(request);
        open
    });
    recorder.flush();
    let outcome = outcomes.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(outcome.error.is_none(), "{outcome:?}");
    assert_eq!(outcome.reason, "slow_span");
    assert!(outcome.path.to_string_lossy().ends_with("/v1/traces"));
    // The file was written as well, and the export holds its spans.
    let files = common::files_in(dir.path());
    assert_eq!(files.len(), 1);
    let dump = common::load(&files[0]);

    let output = collector.wait_for("template failed", Duration::from_secs(10));
    let spans = parse_spans(&output);
    let by_id: HashMap<&str, &ReceivedSpan> = spans.iter().map(|s| (s.id.as_str(), s)).collect();
    for name in [
        "request",
        "db_query",
        "render",
        "enqueue",
        "background_sync",
    ] {
        assert_eq!(spans_named(&spans, name).len(), 1, "{name}: {output}");
    }
    let one = |name| spans_named(&spans, name)[0];
    let (request, query, render) = (one("request"), one("db_query"), one("render"));

    // Structure: parents and one trace per root; the span with a trace_id field joins it.
    assert_eq!(query.parent_id, request.id);
    assert_eq!(render.parent_id, request.id);
    assert_eq!(query.trace_id, request.trace_id);
    assert_eq!(render.trace_id, request.trace_id);
    assert_eq!(request.parent_id, "");
    assert_eq!(one("enqueue").trace_id, joined);
    assert_ne!(request.trace_id, joined);
    assert_eq!(
        request.links,
        vec![(joined.to_owned(), one("enqueue").id.clone())]
    );
    let trace_ids: std::collections::HashSet<&str> =
        spans.iter().map(|s| s.trace_id.as_str()).collect();
    for span in &spans {
        assert_eq!(span.trace_id.len(), 32);
        assert_eq!(span.id.len(), 16);
        if !span.parent_id.is_empty() {
            let parent = by_id[span.parent_id.as_str()];
            assert_eq!(parent.trace_id, span.trace_id, "{span:?}");
        }
    }
    assert!(trace_ids.len() >= 4, "{trace_ids:?}");

    // Times: inside the window, children inside their parents.
    let anchor = chrono::DateTime::parse_from_rfc3339(dump.other("anchor").as_str().unwrap())
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap() as u64;
    let window_end = anchor + (dump.other("window_end_us").as_f64().unwrap() * 1e3) as u64;
    for span in &spans {
        assert!(span.start >= anchor && span.start <= span.end, "{span:?}");
        assert!(span.end <= window_end + 1_000, "{span:?}");
    }
    assert!(query.start >= request.start && query.end <= request.end);
    assert!(request.end - request.start >= 40_000_000);

    // Typed attributes, redaction, callsite, thread.
    assert_eq!(request.attribute("path"), "Str(/checkout)");
    assert_eq!(request.attribute("attempt"), "Int(2)");
    assert_eq!(request.attribute("ok"), "Bool(true)");
    assert_eq!(request.attribute("password"), "Str([REDACTED])");
    assert!(!output.contains("hunter2"));
    assert_eq!(query.attribute("rows"), "Int(-3)");
    assert_eq!(query.attribute("ratio"), "Double(0.5)");
    assert_eq!(request.attribute("code.filepath"), "Str(tests/otlp.rs)");
    assert!(request.attribute("code.lineno").starts_with("Int("));
    assert_eq!(request.attribute("level"), "Str(INFO)");
    assert_eq!(render.attribute("thread.name"), "Str(worker-7)");
    assert_eq!(request.attribute("blackbox.trigger"), "Bool(true)");

    // Events on their spans; an error sets the status.
    assert_eq!(query.events.len(), 1);
    assert_eq!(query.events[0].name, "slow disk");
    assert_eq!(query.events[0].attributes["retry"], "Int(1)");
    assert_eq!(query.events[0].attributes["level"], "Str(WARN)");
    assert_eq!(render.status_code, "STATUS_CODE_ERROR");
    assert_eq!(render.status_message, "template failed");
    assert_eq!(render.events[0].attributes["code"], "Int(500)");
    assert!(query.status_code.is_empty() || query.status_code == "STATUS_CODE_UNSET");

    // The window's facts on each root; the open span says so.
    assert_eq!(request.attribute("blackbox.reason"), "Str(slow_span)");
    assert_eq!(request.attribute("blackbox.threshold_ms"), "Double(30)");
    assert!(request.attribute("blackbox.written").starts_with("Int("));
    assert_eq!(query.attribute("blackbox.reason"), "");
    let open = one("background_sync");
    assert_eq!(open.attribute("blackbox.incomplete"), "Bool(true)");
    assert!(open.end >= request.end);
    let window = one("blackbox.window");
    assert_eq!(window.events[0].name, "outside any span");
    assert_eq!(window.events[0].attributes["phase"], "Str(before)");

    // Resource and the dump's own ids.
    assert_eq!(request.resource["service.name"], "Str(checkout)");
    assert_eq!(request.resource["deployment.environment"], "Str(test)");
    assert_eq!(
        request.resource["process.pid"],
        format!("Int({})", std::process::id())
    );
    assert!(request.resource.contains_key("host.name"));
    assert!(request.resource.contains_key("service.instance.id"));
    let dumped_spans = dump.phase("b").count();
    assert_eq!(
        spans.len(),
        dumped_spans + 1,
        "every span, and the window's"
    );
    drop(still_open);
}

/// The collector down: bounded attempts, then a clear error through `on_dump` and
/// `last_dump_error`; recording goes on. Then it comes up while a later window is retried:
/// that window arrives.
#[test]
fn a_collector_that_is_down_then_comes_up() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (on_dump, outcomes) = otlp_outcomes();
    let dir = tempfile::tempdir().unwrap();
    let (layer, recorder) = FlightRecorder::builder()
        .max_bytes(1 << 20)
        .dump_dir(dir.path())
        .cooldown(Duration::ZERO)
        .on_dump(on_dump)
        .export_otlp(OtlpConfig::new(format!("http://127.0.0.1:{port}")).max_attempts(2))
        .build()
        .unwrap();
    let dispatch = common::dispatch(layer);
    tracing::dispatcher::with_default(&dispatch, || info!("before the first trigger"));
    recorder.trigger("first");
    let failed = outcomes.recv_timeout(Duration::from_secs(20)).unwrap();
    let error = failed.error.expect("the collector is down");
    assert_eq!(error.stage(), DumpStage::Export);
    let text = error.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{port}/v1/traces")),
        "{text}"
    );
    assert!(text.contains("after 2 attempts"), "{text}");
    assert_eq!(
        recorder.last_dump_error().unwrap().stage(),
        DumpStage::Export
    );
    // Recording went on, and the file dump was written all the same.
    tracing::dispatcher::with_default(&dispatch, || info!("after"));
    assert_eq!(recorder.status().dropped, 0);
    assert_eq!(recorder.status().written, 2);
    assert_eq!(common::files_in(dir.path()).len(), 1);

    // A window sent to a collector that comes up while it is being retried arrives.
    let (layer, recorder) = FlightRecorder::builder()
        .max_bytes(1 << 20)
        .write_dump_files(false)
        .export_otlp(OtlpConfig::new(format!("http://127.0.0.1:{port}")).max_attempts(10))
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&common::dispatch(layer), || {
        info!(late = true, "sent when the collector is up");
    });
    let started = Instant::now();
    recorder.trigger("second");
    std::thread::sleep(Duration::from_millis(600));
    let collector = Collector::start_on(port);
    let output = collector.wait_for("sent when the collector is up", Duration::from_secs(30));
    assert!(
        output.contains("sent when the collector is up"),
        "not delivered after {:?}: {output}",
        started.elapsed()
    );
    assert!(recorder.flush_timeout(Duration::from_secs(5)));
}

/// A receiver that accepts connections and never answers: each attempt times out, the queue
/// stays at its bound (the oldest windows dropped, and reported), triggers and recording never
/// wait for it.
#[test]
fn a_collector_that_never_answers_times_out_and_the_queue_holds() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let held = std::thread::spawn(move || {
        let mut connections = Vec::new();
        for stream in silent.incoming().take(8) {
            connections.push(stream);
        }
        std::thread::sleep(Duration::from_secs(10));
    });
    let (on_dump, outcomes) = otlp_outcomes();
    let (layer, recorder) = FlightRecorder::builder()
        .max_bytes(1 << 20)
        .write_dump_files(false)
        .cooldown(Duration::ZERO)
        .on_dump(on_dump)
        .export_otlp(
            OtlpConfig::new(format!("http://{addr}"))
                .timeout(Duration::from_millis(500))
                .max_attempts(1)
                .max_queued(2),
        )
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&common::dispatch(layer), || info!("a window"));
    let started = Instant::now();
    for i in 0..6 {
        recorder.trigger(&format!("storm_{i}"));
    }
    recorder.flush();
    let queued_in = started.elapsed();
    let mut reports = Vec::new();
    while reports.len() < 6 {
        reports.push(outcomes.recv_timeout(Duration::from_secs(20)).unwrap());
    }
    let dropped = reports
        .iter()
        .filter(|o| {
            o.error
                .as_ref()
                .is_some_and(|e| e.to_string().contains("dropped"))
        })
        .count();
    let timed_out = reports
        .iter()
        .filter(|o| {
            o.error
                .as_ref()
                .is_some_and(|e| e.to_string().contains("no answer within 500ms"))
        })
        .count();
    assert_eq!(dropped + timed_out, 6, "{reports:#?}");
    // At most one being sent and two waiting at any time: at least three dropped.
    assert!(dropped >= 3, "{reports:#?}");
    assert!(
        queued_in < Duration::from_secs(2),
        "the dump thread waited {queued_in:?}"
    );
    drop(held);
}

/// Export on demand, and the configurations that cannot work.
#[test]
fn export_now_and_refused_configurations() {
    let collector = Collector::start();
    let (layer, recorder) = FlightRecorder::builder()
        .max_bytes(1 << 20)
        .export_otlp(OtlpConfig::new(collector.endpoint()))
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&common::dispatch(layer), || {
        info_span!("on_demand").in_scope(|| info!("now"));
    });
    let sent = recorder.export_otlp_now("operator").unwrap();
    assert_eq!(sent.spans, 1);
    assert!(sent.bytes > 100);
    let output = collector.wait_for("on_demand", Duration::from_secs(10));
    let spans = parse_spans(&output);
    assert_eq!(spans[0].attribute("blackbox.reason"), "Str(operator)");

    let (_, plain) = FlightRecorder::builder().build().unwrap();
    let err = plain.export_otlp_now("x").unwrap_err();
    assert_eq!(err.stage(), DumpStage::Export);
    assert!(err.to_string().contains("export_otlp"), "{err}");

    for builder in [
        FlightRecorder::builder().write_dump_files(false),
        FlightRecorder::builder().export_otlp(OtlpConfig::new("collector:4318")),
        FlightRecorder::builder().export_otlp(OtlpConfig::new("http://c").max_queued(0)),
    ] {
        let err = builder.build().unwrap_err();
        assert!(
            matches!(err, tracing_blackbox::BuildError::Export { .. }),
            "{err:?}"
        );
    }
}

/// The standard OpenTelemetry variables turn the export on and shape it;
/// `BLACKBOX_OTLP_ENDPOINT` comes first, and `off` keeps it off.
#[test]
fn environment_variables_configure_the_export() {
    let collector = Collector::start();
    let (layer, recorder) = FlightRecorder::builder()
        .with_env_from(common::vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint()),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-team=core%20infra,authorization=Bearer%20t",
            ),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "5000"),
            ("OTEL_SERVICE_NAME", "from-env"),
        ]))
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&common::dispatch(layer), || {
        info_span!("configured_by_env").in_scope(|| info!("hello"));
    });
    recorder.export_otlp_now("env").unwrap();
    let output = collector.wait_for("configured_by_env", Duration::from_secs(10));
    let spans = parse_spans(&output);
    assert_eq!(spans[0].resource["service.name"], "Str(from-env)");

    // The blackbox variable wins over the standard ones; `off` turns the export off.
    let (_, recorder) = FlightRecorder::builder()
        .export_otlp(OtlpConfig::new("http://127.0.0.1:1"))
        .with_env_from(common::vars(&[
            ("BLACKBOX_OTLP_ENDPOINT", "off"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint()),
        ]))
        .build()
        .unwrap();
    let err = recorder.export_otlp_now("x").unwrap_err();
    assert!(err.to_string().contains("no OTLP endpoint"), "{err}");
    let (_, recorder) = FlightRecorder::builder()
        .with_env_from(common::vars(&[
            (
                "BLACKBOX_OTLP_ENDPOINT",
                &format!("{}/v1/traces", collector.endpoint()),
            ),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1"),
        ]))
        .build()
        .unwrap();
    assert!(recorder.export_otlp_now("x").is_ok());

    for (variable, value) in [
        ("BLACKBOX_OTLP_ENDPOINT", "collector:4318"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "no-equals-sign"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "ten"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://collector"),
    ] {
        let err = FlightRecorder::builder()
            .with_env_from(common::vars(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                (variable, value),
            ]))
            .build()
            .unwrap_err();
        match err {
            tracing_blackbox::BuildError::Env {
                variable: named, ..
            } => assert_eq!(named, variable),
            other => panic!("{variable}={value}: {other:?}"),
        }
    }
}

/// `blackbox export` sends a dump file with the mapping of a live export: the same spans,
/// parents, attributes, events and status as `export_otlp_now` of the same recording.
#[cfg(feature = "cli")]
#[test]
fn a_dump_file_exports_like_the_live_window() {
    let live = Collector::start();
    let from_file = Collector::start();
    let (layer, recorder) = FlightRecorder::builder()
        .max_bytes(1 << 20)
        .export_otlp(OtlpConfig::new(live.endpoint()).service_name("shop"))
        .build()
        .unwrap();
    let dispatch = common::dispatch(layer);
    tracing::dispatcher::with_default(&dispatch, || {
        info!(phase = 1u64, "outside any span");
        let linked = info_span!("linked", trace_id = "0af7651916cd43dd8448eb211c80319c");
        let request = info_span!("request", path = "/a", n = 3u64, big = u64::MAX, ok = false);
        request.follows_from(&linked);
        request.in_scope(|| {
            info_span!("child", ratio = 0.25, neg = -7i64).in_scope(|| {
                warn!(retry = 2u64, "slow");
                error!("broken");
            });
        });
        request.record("path", "/b");
    });
    recorder.stop();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("window.json.gz");
    recorder.dump_to_file(&file).unwrap();
    recorder.export_otlp_now("manual").unwrap();

    let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("blackbox"))
        .args([
            "export",
            file.to_str().unwrap(),
            "--otlp",
            &from_file.endpoint(),
        ])
        .args([
            "--service-name",
            "shop",
            "--header",
            "x-api-key=k",
            "--gzip",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("Sent 4 spans ("), "{stdout}");

    let key = |s: &ReceivedSpan| s.attribute("blackbox.span_id").to_owned();
    let live_spans = parse_spans(&live.wait_for("broken", Duration::from_secs(10)));
    let file_spans = parse_spans(&from_file.wait_for("broken", Duration::from_secs(10)));
    assert_eq!(live_spans.len(), 4);
    assert_eq!(file_spans.len(), 4);
    let by_key: HashMap<String, &ReceivedSpan> = file_spans.iter().map(|s| (key(s), s)).collect();
    for span in &live_spans {
        let other = by_key[&key(span)];
        assert_eq!(other.name, span.name);
        if span.name != "blackbox.window" {
            // (The window's own span has a random id.)
            assert_eq!(other.id, span.id);
        }
        assert_eq!(other.parent_id, span.parent_id);
        assert_eq!(other.status_code, span.status_code);
        assert_eq!(other.status_message, span.status_message);
        assert_eq!(other.start, span.start, "{}", span.name);
        let mut a = span.attributes.clone();
        let mut b = other.attributes.clone();
        // The reason and the time of the snapshot are the only differences.
        for map in [&mut a, &mut b] {
            map.remove("blackbox.reason");
        }
        assert_eq!(a, b, "{}", span.name);
        let names = |s: &ReceivedSpan| {
            s.events
                .iter()
                .map(|e| (e.name.clone(), e.timestamp, e.attributes.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(other), names(span), "{}", span.name);
        assert_eq!(other.links, span.links);
        if span.name == "linked" {
            assert_eq!(span.trace_id, "0af7651916cd43dd8448eb211c80319c");
            assert_eq!(other.trace_id, span.trace_id);
        }
    }
    let request = by_key[&key(spans_named(&live_spans, "request")[0])];
    assert_eq!(request.attribute("path"), "Str(/b)");
    assert_eq!(request.attribute("big"), format!("Str({})", u64::MAX));
    assert_eq!(request.resource["service.name"], "Str(shop)");

    // Not a dump, and a receiver that is not there: one line each, exit 2.
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "[]").unwrap();
    for (file, endpoint, expected) in [
        (
            junk.to_str().unwrap(),
            from_file.endpoint(),
            "otherData.anchor",
        ),
        (
            file.to_str().unwrap(),
            "http://127.0.0.1:1".to_owned(),
            "cannot send to the OTLP receiver",
        ),
    ] {
        let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("blackbox"))
            .args(["export", file, "--otlp", &endpoint])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

/// A panic's dump is also exported, best effort: the hook waits for it briefly, so the window
/// arrives even though the process is ending.
#[test]
fn a_panic_sends_its_window_before_the_process_ends() {
    const CHILD: &str = "BLACKBOX_OTLP_PANIC_CHILD";
    if let Ok(endpoint) = std::env::var(CHILD) {
        let dir = tempfile::tempdir().unwrap();
        let (layer, _recorder) = FlightRecorder::builder()
            .max_bytes(1 << 20)
            .dump_dir(dir.path())
            .dump_on_panic()
            .export_otlp(OtlpConfig::new(endpoint))
            .build()
            .unwrap();
        tracing::subscriber::set_global_default(tracing_subscriber::layer::SubscriberExt::with(
            tracing_subscriber::registry(),
            layer,
        ))
        .unwrap();
        let _span = info_span!("doomed_request", id = 7u64).entered();
        info!("about to fail");
        panic!("the last straw");
    }
    let collector = Collector::start();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_panic_sends_its_window_before_the_process_ends",
            "--nocapture",
        ])
        .env(CHILD, collector.endpoint())
        .output()
        .unwrap();
    assert!(!output.status.success(), "the child panics");
    let received = collector.wait_for("about to fail", Duration::from_secs(10));
    let spans = parse_spans(&received);
    let doomed = spans_named(&spans, "doomed_request");
    assert_eq!(doomed.len(), 1, "{received}");
    assert_eq!(doomed[0].attribute("blackbox.reason"), "Str(panic)");
    assert_eq!(doomed[0].attribute("blackbox.incomplete"), "Bool(true)");
    assert_eq!(doomed[0].events[0].name, "about to fail");
}

/// Against a receiver that answers 503 (with `Retry-After`), then 429, then 200: retried,
/// and sent; one that answers 400 is not retried, and its answer is in the error.
#[test]
fn busy_answers_are_retried_and_refusals_are_not() {
    use std::io::{BufRead, BufReader, Read, Write};
    /// A request as the peer saw it: its header lines (lowercased) and its body.
    type Seen = (Vec<String>, Vec<u8>);
    fn scripted(answers: Vec<&'static str>) -> (String, std::thread::JoinHandle<Vec<Seen>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for answer in answers {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream);
                let mut length = 0;
                let mut headers = Vec::new();
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                    let line = line.trim_end().to_ascii_lowercase();
                    if let Some(value) = line.strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap();
                    }
                    headers.push(line);
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                seen.push((headers, body));
                reader.get_mut().write_all(answer.as_bytes()).unwrap();
            }
            seen
        });
        (endpoint, server)
    }
    let ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let busy = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let slow_down =
        "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let refused =
        "HTTP/1.1 400 Bad Request\r\nContent-Length: 13\r\nConnection: close\r\n\r\nbad resource!";

    let (endpoint, server) = scripted(vec![busy, slow_down, ok]);
    let (layer, recorder) = FlightRecorder::builder()
        .max_bytes(1 << 20)
        .export_otlp(
            OtlpConfig::new(endpoint)
                .header("Authorization", "Bearer s3cret")
                .header("x-team", "core")
                .gzip(true),
        )
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&common::dispatch(layer), || info!("retried"));
    let started = Instant::now();
    let sent = recorder.export_otlp_now("retry").unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    let seen = server.join().unwrap();
    assert_eq!(seen.len(), 3, "tried three times");
    for (headers, body) in &seen {
        assert_eq!(body, &seen[0].1, "the same request each time");
        assert_eq!(body.len() as u64, sent.bytes);
        for expected in [
            "post /v1/traces http/1.1",
            "content-type: application/x-protobuf",
            "content-encoding: gzip",
            "authorization: bearer s3cret",
            "x-team: core",
        ] {
            assert!(
                headers.iter().any(|h| h == expected),
                "{expected}: {headers:?}"
            );
        }
    }
    // The body is the window: gzipped protobuf of an ExportTraceServiceRequest.
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    let mut protobuf = Vec::new();
    flate2::read::GzDecoder::new(&seen[0].1[..])
        .read_to_end(&mut protobuf)
        .unwrap();
    let request = ExportTraceServiceRequest::decode(&protobuf[..]).unwrap();
    let spans = &request.resource_spans[0].scope_spans[0].spans;
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].events[0].name, "retried");

    // Headers from the environment arrive percent-decoded.
    let (endpoint, server) = scripted(vec![ok]);
    let (_, recorder) = FlightRecorder::builder()
        .with_env_from(common::vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-team=core%20infra,x-key=a%3Db",
            ),
        ]))
        .build()
        .unwrap();
    recorder.export_otlp_now("env").unwrap();
    let (headers, _) = &server.join().unwrap()[0];
    assert!(
        headers.iter().any(|h| h == "x-team: core infra"),
        "{headers:?}"
    );
    assert!(headers.iter().any(|h| h == "x-key: a=b"), "{headers:?}");

    let (endpoint, server) = scripted(vec![refused]);
    let (layer, recorder) = FlightRecorder::builder()
        .max_bytes(1 << 20)
        .export_otlp(OtlpConfig::new(endpoint))
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&common::dispatch(layer), || info!("refused"));
    let err = recorder.export_otlp_now("refused").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("answered 400: bad resource!"), "{text}");
    assert!(!text.contains("attempts"), "not retried: {text}");
    assert_eq!(server.join().unwrap().len(), 1);
}
