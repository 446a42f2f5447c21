//! `blackbox open`: a real process serving a dump once to a real HTTP client, the way
//! ui.perfetto.dev or speedscope fetch it.
#![cfg(feature = "cli")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FIXTURE: &str = "tests/fixtures/slow_tasks.json";

fn open(args: &[&str]) -> (Child, String, String) {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("blackbox"))
        .arg("open")
        .args(args)
        .args(["--no-browser", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let serving = lines.next().unwrap().unwrap();
    let link = lines.next().unwrap().unwrap();
    let trace_url = serving.rsplit(" at ").next().unwrap().to_owned();
    let link = link.strip_prefix("Open ").unwrap().to_owned();
    // Keep reading its output, so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, trace_url, link)
}

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build(),
    )
}

fn exits_within(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Perfetto: the link is Perfetto's documented `?url=` form; only ui.perfetto.dev may read the
/// trace (CORS); other paths get 404 and the command keeps waiting; one full GET ends it.
#[test]
fn open_serves_the_trace_once_to_perfetto() {
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("a dump (1).json.gz");
    let mut encoder =
        flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), Default::default());
    std::io::copy(&mut std::fs::File::open(FIXTURE).unwrap(), &mut encoder).unwrap();
    encoder.finish().unwrap();

    let (mut child, trace_url, link) = open(&[gz.to_str().unwrap()]);
    assert!(trace_url.starts_with("http://127.0.0.1:"), "{trace_url}");
    assert!(trace_url.ends_with("/a_dump__1_.json"), "{trace_url}");
    assert_eq!(
        link,
        format!("https://ui.perfetto.dev/#!/?url={trace_url}&referrer=blackbox")
    );
    let base = trace_url.rsplit_once('/').unwrap().0;

    let missing = agent().get(format!("{base}/other.json")).call().unwrap();
    assert_eq!(missing.status(), 404);
    let preflight = agent()
        .options(&trace_url)
        .header("Origin", "https://ui.perfetto.dev")
        .call()
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert!(exits_within(&mut child, Duration::from_millis(300)).is_none());

    let mut response = agent()
        .get(&trace_url)
        .header("Origin", "https://ui.perfetto.dev")
        .call()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://ui.perfetto.dev"
    );
    assert_eq!(response.headers()["content-type"], "application/json");
    let served = response.body_mut().read_to_vec().unwrap();
    // Served gunzipped, byte for byte the dump.
    assert_eq!(served, std::fs::read(FIXTURE).unwrap());
    let status = exits_within(&mut child, Duration::from_secs(5)).expect("it ends once fetched");
    assert!(status.success());
}

#[test]
fn open_for_speedscope() {
    let (mut child, trace_url, link) = open(&[FIXTURE, "--speedscope"]);
    assert_eq!(
        link,
        format!("https://www.speedscope.app/#profileURL={trace_url}")
    );
    let mut response = agent().get(&trace_url).call().unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://www.speedscope.app"
    );
    let served = response.body_mut().read_to_vec().unwrap();
    assert_eq!(served, std::fs::read(FIXTURE).unwrap());
    assert!(
        exits_within(&mut child, Duration::from_secs(5))
            .unwrap()
            .success()
    );
}

/// What is not a trace is refused before anything is served; a port in use is named.
#[test]
fn open_refuses_bad_input_and_a_busy_port() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, b"{\"not\": \"a trace\"").unwrap();
    let output = Command::new(assert_cmd::cargo::cargo_bin("blackbox"))
        .args([
            "open",
            junk.to_str().unwrap(),
            "--no-browser",
            "--port",
            "0",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("junk.json"), "{stderr}");

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let output = Command::new(assert_cmd::cargo::cargo_bin("blackbox"))
        .args(["open", FIXTURE, "--no-browser", "--port", &port])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
}
