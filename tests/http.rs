//! The `/debug/trace/snapshot` endpoint, with a real client against the real server.
#![cfg(feature = "http")]

mod common;

use std::io::Read;
use std::time::Duration;

use tracing::info;
use tracing_blackbox::{FlightRecorder, HttpConfig, HttpError};

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build(),
    )
}

fn body(response: &mut ureq::http::Response<ureq::Body>) -> Vec<u8> {
    response
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap()
}

fn header(response: &ureq::http::Response<ureq::Body>, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[test]
fn get_serves_a_dump_plain_and_gzipped() {
    let (dispatch, recorder) = common::recorder_with(1 << 20);
    tracing::dispatcher::with_default(&dispatch, || {
        let _span = tracing::info_span!("served").entered();
        info!("visible over http");
    });
    let server = recorder.serve_http("127.0.0.1:0").unwrap();
    let url = server.url();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/debug/trace/snapshot"));

    let mut response = agent().get(&url).call().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "application/json");
    let disposition = header(&response, "content-disposition");
    assert!(
        disposition.starts_with("attachment; filename=\"trace_")
            && disposition.ends_with(".json\""),
        "{disposition}"
    );
    let dump = common::Dump {
        json: serde_json::from_slice(&body(&mut response)).unwrap(),
    };
    common::check_invariants(&dump);
    assert_eq!(dump.other("reason"), "http");
    assert_eq!(dump.phase("i").next().unwrap()["name"], "visible over http");

    let mut response = agent().get(format!("{url}?gzip=1")).call().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "application/gzip");
    assert!(header(&response, "content-disposition").ends_with(".json.gz\""));
    assert!(
        header(&response, "content-encoding").is_empty(),
        "the body is the .gz file itself"
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(&body(&mut response)[..])
        .read_to_string(&mut text)
        .unwrap();
    let dump = common::Dump {
        json: serde_json::from_str(&text).unwrap(),
    };
    common::check_invariants(&dump);
    assert_eq!(dump.other("reason"), "http");
}

#[test]
fn tokens_methods_and_paths() {
    let (_dispatch, recorder) = common::recorder_with(1 << 20);
    let server = recorder
        .serve_http_with(HttpConfig::new("127.0.0.1:0").bearer_token("s3cret"))
        .unwrap();
    let url = server.url();
    let mut denied = agent().get(&url).call().unwrap();
    assert_eq!(denied.status(), 401);
    assert!(
        !String::from_utf8(body(&mut denied))
            .unwrap()
            .contains("traceEvents")
    );
    let wrong = agent()
        .get(&url)
        .header("Authorization", "Bearer s3cre")
        .call()
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let mut allowed = agent()
        .get(&url)
        .header("Authorization", "Bearer s3cret")
        .call()
        .unwrap();
    assert_eq!(allowed.status(), 200);
    assert!(
        String::from_utf8(body(&mut allowed))
            .unwrap()
            .contains("traceEvents")
    );
    let post = agent()
        .post(&url)
        .header("Authorization", "Bearer s3cret")
        .send("")
        .unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(header(&post, "allow"), "GET");
    let elsewhere = format!("http://{}/debug/other", server.local_addr());
    assert_eq!(agent().get(&elsewhere).call().unwrap().status(), 404);
}

/// The scheme is case-insensitive (RFC 7235); an empty token is refused at start, since it
/// would let requests without any `Authorization` header through.
#[test]
fn bearer_scheme_in_any_case_and_no_empty_token() {
    let (_dispatch, recorder) = common::recorder_with(1 << 20);
    let server = recorder
        .serve_http_with(HttpConfig::new("127.0.0.1:0").bearer_token("s3cret"))
        .unwrap();
    for value in [
        "Bearer s3cret",
        "bearer s3cret",
        "BEARER s3cret",
        "bEaReR  s3cret",
    ] {
        let response = agent()
            .get(&server.url())
            .header("Authorization", value)
            .call()
            .unwrap();
        assert_eq!(response.status(), 200, "{value}");
    }
    for wrong in [
        "Basic s3cret",
        "Bearers3cret",
        "s3cret",
        "Bearer s3cre",
        "Bearer",
    ] {
        let response = agent()
            .get(&server.url())
            .header("Authorization", wrong)
            .call()
            .unwrap();
        assert_eq!(response.status(), 401, "{wrong}");
    }
    drop(server);
    let err = recorder
        .serve_http_with(HttpConfig::new("127.0.0.1:0").bearer_token(""))
        .unwrap_err();
    assert!(matches!(err, HttpError::EmptyToken), "{err:?}");
    assert!(err.to_string().contains("empty"), "{err}");
}

#[test]
fn snapshots_beyond_the_bodies_in_flight_get_503() {
    let (dispatch, recorder) = common::recorder_with(8 << 20);
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..150_000u64 {
            info!(
                i,
                text = "filling the buffer so a dump takes a while",
                "filler"
            );
        }
    });
    let server = recorder.serve_http("127.0.0.1:0").unwrap();
    let url = server.url();
    let statuses: Vec<(u16, String)> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..6)
            .map(|_| {
                let url = url.clone();
                scope.spawn(move || {
                    let mut response = agent().get(&url).call().unwrap();
                    let retry = header(&response, "retry-after");
                    let _ = body(&mut response);
                    (response.status().as_u16(), retry)
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    assert!(statuses.iter().any(|(s, _)| *s == 200), "{statuses:?}");
    assert!(statuses.iter().any(|(s, _)| *s == 503), "{statuses:?}");
    for (status, retry) in &statuses {
        assert!(
            *status == 200 || (*status == 503 && retry == "1"),
            "{statuses:?}"
        );
    }
}

#[test]
fn dropping_the_guard_frees_the_port() {
    let (_dispatch, recorder) = common::recorder_with(1 << 20);
    let server = recorder.serve_http("127.0.0.1:0").unwrap();
    let addr = server.local_addr();
    assert_eq!(agent().get(server.url()).call().unwrap().status(), 200);
    drop(server);
    std::net::TcpListener::bind(addr).expect("the port is free again");
}

#[test]
fn only_loopback_unless_asked() {
    let (_dispatch, recorder) = common::recorder_with(1 << 20);
    let err = recorder.serve_http("0.0.0.0:0").unwrap_err();
    assert!(matches!(err, HttpError::NotLoopback { .. }));
    assert!(err.to_string().contains("allow_non_loopback"), "{err}");
    let server = recorder
        .serve_http_with(HttpConfig::new("0.0.0.0:0").allow_non_loopback(true))
        .unwrap();
    let url = format!(
        "http://127.0.0.1:{}/debug/trace/snapshot",
        server.local_addr().port()
    );
    assert_eq!(agent().get(&url).call().unwrap().status(), 200);
    assert!(matches!(
        recorder.serve_http("not an address").unwrap_err(),
        HttpError::Address { .. }
    ));
    let taken = recorder.serve_http("127.0.0.1:0").unwrap();
    let again = recorder
        .serve_http(&taken.local_addr().to_string())
        .unwrap_err();
    assert!(matches!(again, HttpError::Bind { .. }), "{again}");
}

#[test]
fn http_dumps_ignore_the_trigger_cooldown() {
    let dir = tempfile::tempdir().unwrap();
    let (_layer, recorder) = FlightRecorder::builder()
        .dump_dir(dir.path())
        .build()
        .unwrap();
    recorder.trigger("starts the cooldown");
    assert_eq!(
        recorder.trigger("within the cooldown"),
        tracing_blackbox::TriggerOutcome::Suppressed
    );
    let server = recorder.serve_http("127.0.0.1:0").unwrap();
    for _ in 0..3 {
        let mut response = agent().get(server.url()).call().unwrap();
        assert_eq!(response.status(), 200);
        // Read to the end: a response dropped unread holds its place among the
        // `MAX_BODIES_IN_FLIGHT` until the encoder notices, and a third request could get 503.
        assert!(!body(&mut response).is_empty());
    }
    recorder.flush();
    assert_eq!(
        common::files_in(dir.path()).len(),
        1,
        "only the first trigger wrote a file"
    );
}

#[test]
fn errors_never_echo_the_token_or_the_path() {
    let (_dispatch, recorder) = common::recorder_with(1 << 20);
    let server = recorder
        .serve_http_with(HttpConfig::new("127.0.0.1:0").bearer_token("the-real-token"))
        .unwrap();
    let base = format!("http://{}", server.local_addr());
    let mut wrong = agent()
        .get(server.url())
        .header("Authorization", "Bearer guessed-token-xyz")
        .call()
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let text = String::from_utf8(body(&mut wrong)).unwrap();
    assert!(
        !text.contains("guessed-token-xyz") && !text.contains("the-real-token"),
        "{text}"
    );
    let mut missing = agent()
        .get(format!("{base}/secret-looking/path%3Cscript%3E"))
        .call()
        .unwrap();
    assert_eq!(missing.status(), 404);
    let text = String::from_utf8(body(&mut missing)).unwrap();
    assert!(
        !text.contains("secret-looking") && !text.contains("script"),
        "{text}"
    );
}

fn vm_rss_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<usize>().ok()? * 1024)
}

#[test]
fn many_connections_and_huge_headers_leave_the_server_up() {
    // VmRSS is the whole process's: measure away from the tests running in parallel.
    if !common::in_own_process("many_connections_and_huge_headers_leave_the_server_up") {
        return;
    }
    let (dispatch, recorder) = common::recorder_with(1 << 20);
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..10_000u64 {
            info!(i, "before the hostile clients");
        }
    });
    let server = recorder.serve_http("127.0.0.1:0").unwrap();
    let rss_before = vm_rss_bytes();
    // 64 idle connections that never send a request.
    let idle: Vec<_> = (0..64)
        .map(|_| std::net::TcpStream::connect(server.local_addr()).unwrap())
        .collect();
    // A request with a 1 MiB header (past the 16 KiB limit), on the side while the idle
    // connections are open.
    let url = server.url();
    let huge_request = std::thread::spawn(move || {
        let huge = "x".repeat(1 << 20);
        agent()
            .get(&url)
            .header("X-Huge", &huge)
            .call()
            .map(|r| r.status())
    });
    std::thread::sleep(Duration::from_millis(200));
    drop(idle);
    // Refused (431) or cut off, it ends.
    let _ = huge_request.join().unwrap();
    // 20 snapshots in a row afterwards: the server is up and serving.
    for _ in 0..20 {
        let mut response = agent().get(server.url()).call().unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            String::from_utf8(body(&mut response))
                .unwrap()
                .contains("traceEvents")
        );
    }
    if let (Some(before), Some(after)) = (rss_before, vm_rss_bytes()) {
        // One snapshot at a time: memory is bounded by one dump, not by the clients.
        let growth = after.saturating_sub(before);
        eprintln!("VmRSS growth under hostile clients: {growth} bytes");
        assert!(growth < 64 << 20, "VmRSS grew by {growth} bytes");
    }
    // The recorder is unaffected: still recording, nothing dropped.
    tracing::dispatcher::with_default(&dispatch, || info!("after"));
    let snapshot = recorder.snapshot();
    assert_eq!(snapshot.counters.dropped, 0);
    assert_eq!(snapshot.counters.written, 10_001);
}

#[test]
fn stalled_clients_neither_break_the_server_nor_hold_up_shutdown() {
    use std::io::Write;
    let (_dispatch, recorder) = common::recorder_with(1 << 20);
    let server = recorder.serve_http("127.0.0.1:0").unwrap();
    // Four clients that send half a request and stall.
    let stalled: Vec<_> = (0..4)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(server.local_addr()).unwrap();
            stream
                .write_all(b"GET /debug/trace/snapshot HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
            stream
        })
        .collect();
    // A request meanwhile is served; the stalled ones wait for their header-read timeout.
    let url = server.url();
    let request = std::thread::spawn(move || {
        let mut response = agent().get(&url).call().unwrap();
        (
            response.status(),
            String::from_utf8(body(&mut response)).unwrap(),
        )
    });
    std::thread::sleep(Duration::from_millis(200));
    drop(stalled);
    let (status, text) = request.join().unwrap();
    assert_eq!(status, 200);
    assert!(text.contains("traceEvents"));
    // Stalled clients do not hold up shutdown either.
    let _stalled_again = std::net::TcpStream::connect(server.local_addr())
        .and_then(|mut s| s.write_all(b"GET / HTTP/1.1\r\n").map(|()| s))
        .unwrap();
    let stopping = std::time::Instant::now();
    drop(server);
    assert!(stopping.elapsed() < Duration::from_secs(5));
}

/// Sends `head` then streams `filler` until the server closes the connection (or `limit` bytes
/// went out); returns the status line it answered with, if any.
fn hostile_request(addr: std::net::SocketAddr, head: &[u8], filler: &[u8], limit: usize) -> String {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(head);
    let mut sent = 0;
    while sent < limit && stream.write_all(filler).is_ok() {
        sent += filler.len();
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

/// A 64 MiB header line, and two million header lines: 431 (or the connection closed), and the
/// server's memory does not follow what the client sends.
#[test]
fn huge_and_countless_headers_get_431_and_cost_no_memory() {
    if !common::in_own_process("huge_and_countless_headers_get_431_and_cost_no_memory") {
        return;
    }
    let (_dispatch, recorder) = common::recorder_with(1 << 20);
    let server = recorder.serve_http("127.0.0.1:0").unwrap();
    let before = vm_rss_bytes().unwrap();
    let huge = hostile_request(
        server.local_addr(),
        b"GET /debug/trace/snapshot HTTP/1.1\r\nHost: x\r\nX-Huge: ",
        &[b'x'; 64 << 10],
        64 << 20,
    );
    assert!(
        huge.is_empty() || huge.contains("431"),
        "a 64 MiB header line: {huge:?}"
    );
    let countless = hostile_request(
        server.local_addr(),
        b"GET /debug/trace/snapshot HTTP/1.1\r\nHost: x\r\n",
        &b"X-A: b\r\n".repeat(8 << 10),
        2_000_000 * 8,
    );
    assert!(
        countless.is_empty() || countless.contains("431"),
        "two million header lines: {countless:?}"
    );
    // Just over the line count: a clear 431.
    let mut request = agent().get(server.url());
    for n in 0..HttpConfig::MAX_HEADERS + 1 {
        request = request.header(format!("X-Header-{n}"), "v");
    }
    assert_eq!(request.call().unwrap().status(), 431);
    let long = "v".repeat(HttpConfig::MAX_HEADER_BYTES);
    let response = agent().get(server.url()).header("X-Long", &long).call();
    assert_eq!(response.unwrap().status(), 431);
    let growth = vm_rss_bytes().unwrap().saturating_sub(before);
    println!("hostile headers: VmRSS grew by {growth} bytes");
    assert!(growth < 8 << 20, "VmRSS grew by {growth} bytes");
    assert_eq!(agent().get(server.url()).call().unwrap().status(), 200);
}

/// Clients that ask for a full buffer's snapshot and never read it: they hold at most
/// `MAX_BODIES_IN_FLIGHT` responses, each only a few pieces of its dump; a legitimate request
/// is answered at once (503 while they are still taking data, 200 once they have stalled past
/// the grace), and once the timeout drops them, snapshots are served again.
#[test]
fn clients_that_never_read_hold_neither_memory_nor_the_endpoint() {
    if !common::in_own_process("clients_that_never_read_hold_neither_memory_nor_the_endpoint") {
        return;
    }
    use std::io::Write;
    let (layer, recorder) = FlightRecorder::builder().build().unwrap();
    tracing::dispatcher::with_default(&common::dispatch(layer), || {
        for i in 0..400_000u64 {
            info!(i, "a full default buffer");
        }
    });
    let timeout = Duration::from_secs(3);
    let server = recorder
        .serve_http_with(HttpConfig::new("127.0.0.1:0").timeout(timeout))
        .unwrap();
    let before = vm_rss_bytes().unwrap();
    let stalled: Vec<_> = (0..4)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(server.local_addr()).unwrap();
            stream
                .write_all(b"GET /debug/trace/snapshot HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            std::thread::sleep(Duration::from_millis(100));
            stream
        })
        .collect();
    // A legitimate request meanwhile is answered, not left waiting.
    let asked = std::time::Instant::now();
    let status = agent().get(server.url()).call().unwrap().status();
    assert!(
        asked.elapsed() < Duration::from_secs(2) || status == 200,
        "answered after {:?} with {status}",
        asked.elapsed()
    );
    // Once the timeout has dropped the clients that stopped reading, snapshots are served.
    std::thread::sleep(timeout + Duration::from_secs(1));
    let mut response = agent().get(server.url()).call().unwrap();
    assert_eq!(response.status(), 200);
    let dump = body(&mut response);
    assert!(dump.len() > 10 << 20);
    let growth = vm_rss_bytes().unwrap().saturating_sub(before);
    println!(
        "stalled readers: VmRSS grew by {growth} bytes, a dump is {} bytes",
        dump.len()
    );
    // This process's own copy of the dump, plus per response in flight its queued pieces and
    // the encoder's state (about the buffer's size): never a whole dump per response.
    let bound = dump.len()
        + HttpConfig::MAX_BODIES_IN_FLIGHT
            * (HttpConfig::MAX_QUEUED_RESPONSE_BYTES
                + tracing_blackbox::Builder::DEFAULT_MAX_BYTES)
        + (8 << 20);
    assert!(
        growth < bound,
        "VmRSS grew by {growth} bytes (bound {bound})"
    );
    drop(stalled);
}
