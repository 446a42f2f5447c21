//! A real OTLP receiver for the export tests: the `rotel` collector (PyPI package `rotel`,
//! which ships its binary), started on free loopback ports, printing what it receives.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The version `.ci/run` installs, and the tests install when it is missing.
pub const ROTEL_VERSION: &str = "0.0.1a15";

/// `rotel-agent`: `$ROTEL_AGENT`, else the installed Python package's, else installed now with
/// pip into the target directory.
pub fn rotel_agent() -> PathBuf {
    static AGENT: OnceLock<PathBuf> = OnceLock::new();
    AGENT
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("ROTEL_AGENT") {
                return PathBuf::from(path);
            }
            let installed = Command::new("python3")
                .args([
                    "-c",
                    "import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))",
                ])
                .output();
            if let Ok(out) = installed
                && out.status.success()
            {
                let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
                if path.exists() {
                    return path;
                }
            }
            let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rotel-py");
            let agent = target.join("rotel").join("rotel-agent");
            if !agent.exists() {
                let status = Command::new("python3")
                    .args(["-m", "pip", "install", "--quiet", "--target"])
                    .arg(&target)
                    .arg(format!("rotel=={ROTEL_VERSION}"))
                    .status()
                    .expect("python3 runs (the OTLP tests need it to install the rotel collector)");
                assert!(status.success(), "pip install rotel=={ROTEL_VERSION} failed");
            }
            agent
        })
        .clone()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running collector; killed when dropped.
pub struct Collector {
    child: Child,
    pub addr: SocketAddr,
    output: Arc<Mutex<String>>,
}

impl Collector {
    /// Starts a collector on a free port and waits until it accepts connections.
    pub fn start() -> Collector {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Collector {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut child = Command::new(rotel_agent())
            .args(["start", "--otlp-http-endpoint"])
            .arg(addr.to_string())
            .arg("--otlp-grpc-endpoint")
            .arg(format!("127.0.0.1:{}", free_port()))
            .args([
                "--exporter",
                "blackhole",
                "--debug-log",
                "traces",
                "--debug-log-verbosity",
                "detailed",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rotel-agent starts");
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let mut out = output.lock().unwrap();
                    out.push_str(&line);
                    out.push('\n');
                }
            });
        }
        let started = Instant::now();
        while TcpStream::connect(addr).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "rotel did not start: {}",
                output.lock().unwrap()
            );
            if let Ok(Some(status)) = child.try_wait() {
                panic!("rotel exited ({status}): {}", output.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Collector {
            child,
            addr,
            output,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What it printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits until its output contains `needle` (or `limit` passes); returns the output.
    pub fn wait_for(&self, needle: &str, limit: Duration) -> String {
        let started = Instant::now();
        loop {
            let output = self.output();
            if output.contains(needle) || started.elapsed() > limit {
                return output;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A span as the collector printed it.
#[derive(Debug, Default, Clone)]
pub struct ReceivedSpan {
    pub trace_id: String,
    pub parent_id: String,
    pub id: String,
    pub name: String,
    pub start: u64,
    pub end: u64,
    pub status_code: String,
    pub status_message: String,
    /// Values as printed: `Str(text)`, `Int(2)`, `Bool(true)`, `Double(0.5)`.
    pub attributes: std::collections::HashMap<String, String>,
    pub events: Vec<ReceivedEvent>,
    /// (trace id, span id)
    pub links: Vec<(String, String)>,
    pub resource: std::collections::HashMap<String, String>,
}

#[derive(Debug, Default, Clone)]
pub struct ReceivedEvent {
    pub name: String,
    pub timestamp: u64,
    pub attributes: std::collections::HashMap<String, String>,
}

impl ReceivedSpan {
    pub fn attribute(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
}

/// Parses the collector's detailed trace log (`--debug-log traces --debug-log-verbosity
/// detailed`) into spans.
pub fn parse_spans(output: &str) -> Vec<ReceivedSpan> {
    #[derive(PartialEq)]
    enum Section {
        None,
        Resource,
        Span,
        Event,
        Link,
    }
    let split = |rest: &str| -> Option<(String, String)> {
        let (key, value) = rest.split_once(": ")?;
        Some((key.trim().to_owned(), value.trim().to_owned()))
    };
    let mut spans: Vec<ReceivedSpan> = Vec::new();
    let mut resource = std::collections::HashMap::new();
    let mut section = Section::None;
    for line in output.lines() {
        let trimmed = line.trim();
        if line.starts_with("ResourceSpans #") {
            resource = std::collections::HashMap::new();
            section = Section::None;
        } else if line.starts_with("Resource attributes:") {
            section = Section::Resource;
        } else if line.starts_with("ScopeSpans #") {
            section = Section::None;
        } else if line.starts_with("Span #") {
            spans.push(ReceivedSpan {
                resource: resource.clone(),
                ..Default::default()
            });
            section = Section::Span;
        } else if line.starts_with("SpanEvent #") {
            if let Some(span) = spans.last_mut() {
                span.events.push(ReceivedEvent::default());
            }
            section = Section::Event;
        } else if line.starts_with("SpanLink #") {
            if let Some(span) = spans.last_mut() {
                span.links.push((String::new(), String::new()));
            }
            section = Section::Link;
        } else if line.starts_with("Attributes:") {
            section = Section::Span;
        } else if let Some(rest) = trimmed.strip_prefix("-> ") {
            let Some((key, value)) = split(rest).or_else(|| {
                rest.strip_suffix(':')
                    .map(|k| (k.to_owned(), String::new()))
            }) else {
                continue;
            };
            match section {
                Section::Resource => {
                    resource.insert(key, value);
                }
                Section::Span => {
                    if let Some(span) = spans.last_mut() {
                        span.attributes.insert(key, value);
                    }
                }
                Section::Event => {
                    let Some(event) = spans.last_mut().and_then(|s| s.events.last_mut()) else {
                        continue;
                    };
                    match (key.as_str(), line.starts_with("          ")) {
                        ("Name", false) => event.name = value,
                        ("Timestamp", false) => event.timestamp = value.parse().unwrap_or(0),
                        (_, true) => {
                            event.attributes.insert(key, value);
                        }
                        _ => {}
                    }
                }
                Section::Link => {
                    let Some(link) = spans.last_mut().and_then(|s| s.links.last_mut()) else {
                        continue;
                    };
                    match key.as_str() {
                        "Trace ID" => link.0 = value,
                        "ID" => link.1 = value,
                        _ => {}
                    }
                }
                Section::None => {}
            }
        } else if section == Section::Span || section == Section::Event || section == Section::Link
        {
            let Some(span) = spans.last_mut() else {
                continue;
            };
            let Some((key, value)) = trimmed.split_once(':') else {
                continue;
            };
            let value = value.trim().to_owned();
            match key.trim() {
                "Trace ID" => span.trace_id = value,
                "Parent ID" => span.parent_id = value,
                "ID" => span.id = value,
                "Name" => span.name = value,
                "Start time" => span.start = value.parse().unwrap_or(0),
                "End time" => span.end = value.parse().unwrap_or(0),
                "Status code" => span.status_code = value,
                "Status message" => span.status_message = value,
                _ => {}
            }
        }
    }
    spans
}
