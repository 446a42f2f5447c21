//! The endpoint's bounds under hostile and broken clients, with real sockets on loopback:
//! slow request heads, bodies that stop, responses nobody reads; streamed responses; status.
#![cfg(feature = "http")]

mod common;

use std::io::{BufRead, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::info;
use tracing_blackbox::{FlightRecorder, HttpConfig};

fn connect(addr: SocketAddr, first_bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(first_bytes).unwrap();
    stream
}

/// Whether the server has closed `stream`: reads what it sent (at most `limit` bytes) until
/// end of file or an error; still open if nothing comes for a while.
fn closed_by_server(stream: &mut TcpStream, limit: usize) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buffer = vec![0; 64 << 10];
    let mut read = 0;
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(n) => {
                read += n;
                if read > limit {
                    return false;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// A snapshot, the way an operator takes it (`curl --retry`: a 503 is retried after its
/// `Retry-After`): the time until the whole body is in, and the dump, parsed and checked.
fn legitimate_snapshot(url: &str) -> (Duration, common::Dump) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build(),
    );
    let started = Instant::now();
    for _ in 0..10 {
        let mut response = agent.get(url).call().unwrap();
        if response.status() == 503 {
            let retry_after = response.headers()["retry-after"].to_str().unwrap();
            std::thread::sleep(Duration::from_secs(retry_after.parse().unwrap()));
            continue;
        }
        assert_eq!(response.status(), 200);
        let bytes = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap();
        let took = started.elapsed();
        let dump = common::Dump {
            json: serde_json::from_slice(&bytes).unwrap(),
        };
        common::check_invariants(&dump);
        return (took, dump);
    }
    panic!("still 503 after 10 tries");
}

/// The shape: 256 connections sending their request head a byte a second, 256 whose
/// body stops after its first bytes, 64 that ask for a snapshot and never read it. A
/// legitimate snapshot is still served in well under 2 s, every hostile connection is closed
/// by the timeouts, memory stays within the streams' bounds, and the recorder drops nothing.
#[test]
fn hostile_connections_neither_delay_a_snapshot_nor_hold_memory() {
    const SERVER: &str = "BLACKBOX_TEST_SERVER";
    let timeout = Duration::from_secs(3);
    if std::env::var_os(SERVER).is_some() {
        // The server half, in a process of its own so that its memory is measured apart
        // from the clients': a full 2 MiB buffer, served until stdin closes.
        let (layer, recorder) = FlightRecorder::builder()
            .max_bytes(2 << 20)
            .build()
            .unwrap();
        tracing::dispatcher::with_default(&common::dispatch(layer), || {
            for i in 0..100_000u64 {
                info!(i, "a full buffer");
            }
        });
        let server = recorder
            .serve_http_with(HttpConfig::new("127.0.0.1:0").timeout(timeout))
            .unwrap();
        println!("listening on {}", server.local_addr());
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        return;
    }
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "hostile_connections_neither_delay_a_snapshot_nor_hold_memory",
            "--nocapture",
        ])
        .env(SERVER, "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let server_rss = {
        let pid = child.id();
        move || common::memory_of(&format!("/proc/{pid}/status"), "VmRSS:")
    };
    let mut output = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let addr: SocketAddr = loop {
        let line = output.next().expect("the server starts").unwrap();
        if let Some(addr) = line.strip_prefix("listening on ") {
            break addr.parse().unwrap();
        }
    };
    let url = format!("http://{addr}/debug/trace/snapshot");
    // One snapshot first, so that what a snapshot costs once (allocator arenas, the encoder
    // thread's stack) is not counted as the hostile clients' doing.
    let (warm_took, warm) = legitimate_snapshot(&url);
    let dump_bytes = serde_json::to_vec(&warm.json).unwrap().len();
    drop(warm);
    println!(
        "an undisturbed snapshot: {warm_took:?}, {} KiB",
        dump_bytes >> 10
    );
    let before = server_rss();

    let mut slow_heads: Vec<TcpStream> = (0..256).map(|_| connect(addr, b"G")).collect();
    let mut stopped_bodies: Vec<TcpStream> = (0..256)
        .map(|_| {
            connect(
                addr,
                b"POST /debug/trace/snapshot HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nabc",
            )
        })
        .collect();
    let mut not_reading: Vec<TcpStream> = (0..64)
        .map(|_| {
            connect(
                addr,
                b"GET /debug/trace/snapshot HTTP/1.1\r\nHost: x\r\n\r\n",
            )
        })
        .collect();
    // The slow heads send a byte a second, "ET /debug/trace/snapshot ...", while legitimate
    // snapshots are taken.
    let head = b"ET /debug/trace/snapshot HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut next_byte = 0;
    let mut times = Vec::new();
    let mut peak = before;
    let started = Instant::now();
    while times.len() < 5 {
        for stream in &mut slow_heads {
            let _ = stream.write_all(&head[next_byte..=next_byte]);
        }
        next_byte += 1;
        std::thread::sleep(Duration::from_millis(1000));
        peak = peak.max(server_rss());
        let (took, dump) = legitimate_snapshot(&url);
        assert_eq!(dump.other("reason"), "http");
        assert!(dump.counter("retained") > 10_000);
        times.push(took);
        peak = peak.max(server_rss());
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "snapshots under 576 hostile connections: {times:?} (median {median:?}); \
         VmRSS +{} KiB at most; a dump is {} KiB",
        peak.saturating_sub(before) >> 10,
        dump_bytes >> 10
    );
    assert!(median < Duration::from_secs(2), "median {median:?}");

    // By now every hostile connection has outlived the timeout: each has been closed.
    let waited = started.elapsed();
    if waited < timeout + Duration::from_secs(1) {
        std::thread::sleep(timeout + Duration::from_secs(1) - waited);
    }
    let open = |streams: &mut Vec<TcpStream>, limit| {
        streams
            .iter_mut()
            .map(|stream| closed_by_server(stream, limit))
            .filter(|closed| !closed)
            .count()
    };
    assert_eq!(open(&mut slow_heads, 0), 0, "slow heads still open");
    assert_eq!(
        open(&mut stopped_bodies, 1 << 10),
        0,
        "stopped bodies still open"
    );
    assert_eq!(
        open(&mut not_reading, 64 << 20),
        0,
        "non-readers still open"
    );

    // Memory: the hostile clients cost their connections' buffers, and each response in
    // flight at most its queued pieces and the encoder's state (about the buffer's size);
    // never a whole dump (which is 4 times the buffer).
    let growth = peak.saturating_sub(before);
    let max_bytes = 2 << 20;
    let bound = HttpConfig::MAX_BODIES_IN_FLIGHT
        * (HttpConfig::MAX_QUEUED_RESPONSE_BYTES + max_bytes)
        + (12 << 20);
    assert!(
        growth < bound,
        "VmRSS grew by {growth} bytes (bound {bound})"
    );

    let status: Value = serde_json::from_str(
        &ureq::get(format!("http://{addr}/debug/trace/status"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(status["dropped"], 0);
    assert_eq!(status["written"], 100_000);
    drop(child.stdin.take());
    let rest: Vec<String> = output.map(Result::unwrap).collect();
    assert!(child.wait().unwrap().success(), "{rest:?}");
}

/// A client that reads slowly gets the whole dump, complete and valid, while the server holds
/// only a few pieces of it; one that stops reading is cut off with an incomplete body (never a
/// complete-looking one) once another request needs its place.
#[test]
fn responses_stream_and_a_stalled_one_gives_way() {
    let (dispatch, recorder) = common::recorder_with(4 << 20);
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..200_000u64 {
            info!(i, "a full buffer");
        }
    });
    let server = recorder.serve_http("127.0.0.1:0").unwrap();
    let addr = server.local_addr();
    // Two responses nobody reads: every place is taken.
    let mut stalled: Vec<TcpStream> = (0..HttpConfig::MAX_BODIES_IN_FLIGHT)
        .map(|_| {
            connect(
                addr,
                b"GET /debug/trace/snapshot HTTP/1.1\r\nHost: x\r\n\r\n",
            )
        })
        .collect();
    // Once they have left pieces untaken past the grace, a new request takes a place (503
    // until then, while the kernel's socket buffers still take their data).
    std::thread::sleep(HttpConfig::STALL_GRACE * 2);
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let started = Instant::now();
    let mut response = loop {
        let response = agent.get(server.url()).call().unwrap();
        if response.status() != 503 || started.elapsed() > Duration::from_secs(30) {
            break response;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("transfer-encoding").unwrap(),
        "chunked"
    );
    // Read slowly: 64 KiB at a time, with pauses.
    let mut reader = response.body_mut().as_reader();
    let mut body = Vec::new();
    let mut piece = vec![0; 64 << 10];
    loop {
        let n = reader.read(&mut piece).unwrap();
        if n == 0 {
            break;
        }
        body.extend_from_slice(&piece[..n]);
        if body.len() % (1 << 20) < n {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let dump = common::Dump {
        json: serde_json::from_slice(&body).unwrap(),
    };
    common::check_invariants(&dump);
    assert_eq!(
        dump.counter("retained"),
        recorder.snapshot().records.len() as u64
    );
    // A stalled one was cut off: its connection ended without the chunked body's last chunk.
    // (One that was not reads to its end now.)
    let cut_off = stalled
        .iter_mut()
        .map(|stream| {
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut received = Vec::new();
            let ended = stream.read_to_end(&mut received).is_ok();
            ended && !received.ends_with(b"0\r\n\r\n")
        })
        .filter(|cut| *cut)
        .count();
    assert!(cut_off >= 1, "no stalled response was cut off");
}

/// Gzipped responses stream too, and decompress to a valid dump.
#[test]
fn gzipped_responses_stream() {
    let (dispatch, recorder) = common::recorder_with(2 << 20);
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..50_000u64 {
            info!(i, "gzipped");
        }
    });
    let server = recorder.serve_http("127.0.0.1:0").unwrap();
    let mut response = ureq::get(format!("{}?gzip=1", server.url()))
        .call()
        .unwrap();
    let compressed = response
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap();
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_end(&mut text)
        .unwrap();
    assert!(compressed.len() * 4 < text.len());
    let dump = common::Dump {
        json: serde_json::from_slice(&text).unwrap(),
    };
    common::check_invariants(&dump);
    assert_eq!(
        dump.counter("retained"),
        recorder.snapshot().records.len() as u64
    );
}

/// `GET /debug/trace/status`: the recorder's state as JSON, the same as `status()`, behind the
/// same token; it follows recording, stopping and dumps.
#[test]
fn status_reports_the_recorder() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, recorder) = FlightRecorder::builder()
        .max_bytes(1 << 20)
        .dump_dir(dir.path())
        .build()
        .unwrap();
    let dispatch = common::dispatch(layer);
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..1_000u64 {
            info!(i, "counted");
        }
    });
    let server = recorder
        .serve_http_with(HttpConfig::new("127.0.0.1:0").bearer_token("sesame"))
        .unwrap();
    let get = |token: Option<&str>| {
        let mut request = ureq::get(server.status_url());
        if let Some(token) = token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        request
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .unwrap()
    };
    assert_eq!(get(None).status(), 401);
    let mut response = get(Some("sesame"));
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "application/json"
    );
    let status: Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(status["recording"], true);
    assert_eq!(status["written"], 1_000);
    assert_eq!(status["overwritten"], 0);
    assert_eq!(status["dropped"], 0);
    assert_eq!(status["threads"], 1);
    assert_eq!(status["max_bytes"], 1 << 20);
    assert!(status["allocated_bytes"].as_u64().unwrap() > 0);
    assert_eq!(status["dumps_written"], 0);
    assert_eq!(status["last_dump"], Value::Null);
    assert_eq!(status["pid"], std::process::id());

    recorder.stop();
    let written = recorder.dump_to_dir(dir.path(), "checked").unwrap();
    let status: Value =
        serde_json::from_str(&get(Some("sesame")).body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(status["recording"], false);
    assert_eq!(status["dumps_written"], 1);
    assert_eq!(status["last_dump"]["reason"], "manual");
    assert_eq!(
        status["last_dump"]["path"],
        written.path.to_string_lossy().as_ref()
    );
    assert_eq!(status["last_dump"]["bytes"], written.bytes);
    assert_eq!(status["last_dump"]["error"], Value::Null);
    // The same figures in process.
    let local = recorder.status();
    assert_eq!(local.written, 1_000);
    assert_eq!(local.dumps_written, 1);
    assert!(!local.recording);
}
