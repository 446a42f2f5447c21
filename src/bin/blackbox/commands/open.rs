//! `blackbox open`: serves a dump once on 127.0.0.1 and opens the viewer that loads it from
//! there (ui.perfetto.dev, or speedscope), the way `go tool trace` opens a browser.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tracing_blackbox::analyze::{self, LoadError};

use crate::Failure;

/// The port Perfetto's UI fetches local traces from: its content security policy allows
/// `http://127.0.0.1:9001` and nothing else on this machine (Perfetto's `open_trace_in_ui`
/// uses it too).
pub(crate) const PERFETTO_PORT: u16 = 9001;

/// Which viewer to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Viewer {
    /// ui.perfetto.dev
    Perfetto,
    /// www.speedscope.app
    Speedscope,
}

impl Viewer {
    /// The origin allowed to read the trace (CORS): only the viewer's page, so that another
    /// site open in the browser cannot.
    fn origin(self) -> &'static str {
        match self {
            Viewer::Perfetto => "https://ui.perfetto.dev",
            Viewer::Speedscope => "https://www.speedscope.app",
        }
    }

    /// The viewer's link that loads `trace_url` (whose characters need no escaping).
    fn link(self, trace_url: &str) -> String {
        match self {
            Viewer::Perfetto => {
                format!("https://ui.perfetto.dev/#!/?url={trace_url}&referrer=blackbox")
            }
            Viewer::Speedscope => format!("https://www.speedscope.app/#profileURL={trace_url}"),
        }
    }
}

pub(crate) fn open(file: &Path, viewer: Viewer, port: u16, browser: bool) -> Result<(), Failure> {
    // Read whole, gunzipped (viewers take plain JSON), and checked: it is served from memory,
    // and a file that is not a trace is refused before any browser opens.
    let (mut reader, _) = analyze::open(file)?;
    let mut trace = Vec::new();
    reader
        .read_to_end(&mut trace)
        .map_err(|e| LoadError::io(file, "cannot read", e))?;
    analyze::read_from(&trace[..], |_| {}).map_err(|problem| LoadError::new(file, problem))?;

    let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| {
        let hint = if viewer == Viewer::Perfetto && port == PERFETTO_PORT {
            " (Perfetto's UI fetches local traces from this port only: stop what holds it, \
             such as `trace_processor --httpd`, or use --speedscope)"
        } else {
            ""
        };
        Failure::Serve(io::Error::new(
            e.kind(),
            format!("cannot listen on 127.0.0.1:{port}: {e}{hint}"),
        ))
    })?;
    let addr = listener.local_addr().map_err(Failure::Serve)?;
    let name = served_name(file);
    let trace_url = format!("http://{addr}/{name}");
    let link = viewer.link(&trace_url);
    let mut stdout = io::stdout();
    writeln!(stdout, "Serving {} at {trace_url}", file.display())?;
    writeln!(stdout, "Open {link}")?;
    writeln!(
        stdout,
        "(this ends once the viewer has fetched it; Ctrl-C stops it)"
    )?;
    stdout.flush()?;
    if browser && webbrowser::open(&link).is_err() {
        eprintln!("blackbox: could not start a browser; open the link above");
    }
    serve_once(
        listener,
        Arc::new(Served {
            path: format!("/{name}"),
            origin: viewer.origin(),
            trace: Bytes::from(trace),
        }),
    )
    .map_err(Failure::Serve)?;
    writeln!(stdout, "The viewer fetched the trace.")?;
    Ok(())
}

/// The file name the trace is served under: the dump's, plain JSON, reduced to characters that
/// need no escaping in the viewers' links.
fn served_name(file: &Path) -> String {
    let stem = file
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem.strip_suffix(".gz").unwrap_or(&stem);
    let stem = stem.strip_suffix(".json").unwrap_or(stem);
    let mut name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    if name.is_empty() {
        name.push_str("trace");
    }
    name.push_str(".json");
    name
}

struct Served {
    path: String,
    origin: &'static str,
    trace: Bytes,
}

impl Served {
    fn answer(&self, request: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::new()));
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static(self.origin),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if request.uri().path() != self.path {
            *response.status_mut() = StatusCode::NOT_FOUND;
            return response;
        }
        match *request.method() {
            Method::GET => {
                *response.body_mut() = Full::new(self.trace.clone());
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            // A preflight, should a viewer send one.
            Method::OPTIONS => {
                *response.status_mut() = StatusCode::NO_CONTENT;
                response.headers_mut().insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("GET"),
                );
            }
            _ => *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED,
        }
        response
    }
}

/// Serves until one GET of the trace has been answered in full.
fn serve_once(listener: TcpListener, served: Arc<Served>) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let (fetched_tx, mut fetched_rx) = tokio::sync::mpsc::channel::<SocketAddr>(1);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => accepted?,
                Some(_) = fetched_rx.recv() => return Ok(()),
            };
            let served = Arc::clone(&served);
            let fetched_tx = fetched_tx.clone();
            tokio::spawn(async move {
                let fetched = Arc::new(AtomicBool::new(false));
                let marked = Arc::clone(&fetched);
                let service = hyper::service::service_fn(move |request| {
                    let response = served.answer(&request);
                    if request.method() == Method::GET && response.status() == StatusCode::OK {
                        marked.store(true, Ordering::Relaxed);
                    }
                    std::future::ready(Ok::<_, std::convert::Infallible>(response))
                });
                // One request per connection: once it is answered, the connection ends, and
                // with it (for the trace) the command.
                let served = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                if served.is_ok() && fetched.load(Ordering::Relaxed) {
                    let _ = fetched_tx.send(peer).await;
                }
            });
        }
    })
}
