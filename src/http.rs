//! The `/debug/trace/snapshot` HTTP endpoint (feature `http`).
//!
//! A small `tiny_http` server on threads of its own, under `NoSubscriber`. It serves one
//! snapshot at a time; a request that comes while one is being written gets 503 with
//! `Retry-After`. HTTP dumps are never rate-limited by the trigger cooldown.

use std::fmt;
use std::io::Read;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::Utc;
use tiny_http::{Header, Method, Request, Response, Server, StatusCode};

use crate::admission::Reason;
use crate::quiet::quietly;
use crate::recorder::FlightRecorder;

/// The endpoint's path.
pub const SNAPSHOT_PATH: &str = "/debug/trace/snapshot";

/// Threads answering requests: enough that a request during a snapshot gets its 503 at once.
const HANDLER_THREADS: usize = 4;

/// How [`FlightRecorder::serve_http_with`] serves.
#[derive(Clone)]
#[must_use = "a configuration does nothing until passed to `serve_http_with`"]
pub struct HttpConfig {
    addr: String,
    token: Option<String>,
    allow_non_loopback: bool,
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConfig")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("allow_non_loopback", &self.allow_non_loopback)
            .finish()
    }
}

impl HttpConfig {
    /// Serve on `addr`, for example `"127.0.0.1:6060"` (port 0 picks a free port).
    pub fn new(addr: impl Into<String>) -> Self {
        HttpConfig {
            addr: addr.into(),
            token: None,
            allow_non_loopback: false,
        }
    }

    /// Require `Authorization: Bearer <token>`; other requests get 401 and no data.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Allow an address other than loopback. A dump holds whatever spans and events record:
    /// expose it beyond this machine only on purpose, and with a token.
    pub fn allow_non_loopback(mut self, allow: bool) -> Self {
        self.allow_non_loopback = allow;
        self
    }
}

/// Why the endpoint could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum HttpError {
    /// The address does not parse or resolve.
    Address {
        /// The address given.
        addr: String,
        /// Why.
        message: String,
    },
    /// The address is not loopback, and `allow_non_loopback` was not set.
    NotLoopback {
        /// The address given.
        addr: SocketAddr,
    },
    /// [`HttpConfig::bearer_token`] was given an empty token, which would let requests with no
    /// `Authorization` header through.
    EmptyToken,
    /// The socket could not be bound (in use, no permission).
    Bind {
        /// The address given.
        addr: SocketAddr,
        /// Why.
        message: String,
    },
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Address { addr, message } => {
                write!(f, "cannot use {addr:?} as an address: {message}")
            }
            HttpError::NotLoopback { addr } => write!(
                f,
                "{addr} is not a loopback address; serving snapshots beyond this machine needs \
                 HttpConfig::allow_non_loopback(true)"
            ),
            HttpError::Bind { addr, message } => write!(f, "cannot listen on {addr}: {message}"),
            HttpError::EmptyToken => f.write_str(
                "the bearer token is empty; an empty token would admit requests without one",
            ),
        }
    }
}

impl std::error::Error for HttpError {}

/// The running endpoint. Dropping it stops the server and frees the port.
#[must_use = "the server stops when this guard is dropped"]
pub struct HttpServer {
    server: Option<Arc<Server>>,
    addr: SocketAddr,
    threads: Vec<JoinHandle<()>>,
}

impl fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl HttpServer {
    /// The address it listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The snapshot URL, for printing: `http://<addr>/debug/trace/snapshot`.
    pub fn url(&self) -> String {
        format!("http://{}{SNAPSHOT_PATH}", self.addr)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            for _ in &self.threads {
                server.unblock();
            }
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        drop(self.server.take());
        // tiny_http closes its listening socket on its own accept thread, a moment after the
        // server is dropped: wait (up to a second) until connections are refused, so that the
        // port is free once this returns.
        let mut probe = self.addr;
        if probe.ip().is_unspecified() {
            probe.set_ip(match probe {
                SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
            });
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline
            && TcpStream::connect_timeout(&probe, Duration::from_millis(100)).is_ok()
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

pub(crate) fn serve(
    recorder: &FlightRecorder,
    config: HttpConfig,
) -> Result<HttpServer, HttpError> {
    let addr = config
        .addr
        .to_socket_addrs()
        .map_err(|e| HttpError::Address {
            addr: config.addr.clone(),
            message: e.to_string(),
        })?
        .next()
        .ok_or_else(|| HttpError::Address {
            addr: config.addr.clone(),
            message: "it resolves to nothing".to_owned(),
        })?;
    if config.token.as_deref() == Some("") {
        return Err(HttpError::EmptyToken);
    }
    if !addr.ip().is_loopback() && !config.allow_non_loopback {
        return Err(HttpError::NotLoopback { addr });
    }
    let server = Server::http(addr).map_err(|e| HttpError::Bind {
        addr,
        message: e.to_string(),
    })?;
    let addr = server.server_addr().to_ip().unwrap_or(addr);
    let server = Arc::new(server);
    let shared = Arc::new(Endpoint {
        recorder: recorder.clone(),
        token: config.token,
        busy: AtomicBool::new(false),
    });
    let mut threads = Vec::with_capacity(HANDLER_THREADS);
    for n in 0..HANDLER_THREADS {
        let thread_server = Arc::clone(&server);
        let endpoint = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name(format!("blackbox-http-{n}"))
            .spawn(move || {
                // `recv` fails once the server is unblocked for shutdown.
                while let Ok(request) = thread_server.recv() {
                    quietly(|| endpoint.answer(request));
                }
            });
        match spawned {
            Ok(thread) => threads.push(thread),
            Err(e) => {
                let stopping = HttpServer {
                    server: Some(server),
                    addr,
                    threads,
                };
                drop(stopping);
                return Err(HttpError::Bind {
                    addr,
                    message: format!("cannot start a server thread: {e}"),
                });
            }
        }
    }
    Ok(HttpServer {
        server: Some(server),
        addr,
        threads,
    })
}

struct Endpoint {
    recorder: FlightRecorder,
    token: Option<String>,
    busy: AtomicBool,
}

/// Adds a header; ours are ASCII constants and timestamps, which always parse.
fn with_header<R: Read>(response: Response<R>, name: &str, value: &str) -> Response<R> {
    match Header::from_bytes(name.as_bytes(), value.as_bytes()) {
        Ok(header) => response.with_header(header),
        Err(()) => response,
    }
}

impl Endpoint {
    fn answer(&self, request: Request) {
        let (path, query) = match request.url().split_once('?') {
            Some((path, query)) => (path.to_owned(), query.to_owned()),
            None => (request.url().to_owned(), String::new()),
        };
        let response = if path != SNAPSHOT_PATH {
            text(404, "not found\n")
        } else if *request.method() != Method::Get {
            with_header(text(405, "only GET\n"), "Allow", "GET")
        } else if !self.authorized(&request) {
            with_header(text(401, "unauthorized\n"), "WWW-Authenticate", "Bearer")
        } else if self.busy.swap(true, Ordering::AcqRel) {
            with_header(
                text(503, "a snapshot is being written; retry shortly\n"),
                "Retry-After",
                "1",
            )
        } else {
            let gzip = query
                .split('&')
                .any(|pair| pair == "gzip=1" || pair == "gzip=true");
            let response = self.snapshot(gzip);
            self.busy.store(false, Ordering::Release);
            response
        };
        // The client may have gone away; nothing to do about it.
        let _ = request.respond(response);
    }

    /// Compares the bearer token in constant time.
    fn authorized(&self, request: &Request) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let given = request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Authorization"))
            .and_then(|h| bearer_credentials(h.value.as_str()))
            .unwrap_or("");
        let (a, b) = (given.as_bytes(), token.as_bytes());
        let mut difference = a.len() ^ b.len();
        for (i, byte) in b.iter().enumerate() {
            difference |= usize::from(a.get(i).copied().unwrap_or(0) ^ byte);
        }
        difference == 0
    }

    fn snapshot(&self, gzip: bool) -> Response<std::io::Cursor<Vec<u8>>> {
        let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let mut body = Vec::new();
        let written = if gzip {
            let mut encoder = flate2::write::GzEncoder::new(&mut body, flate2::Compression::fast());
            self.recorder
                .write_for(Reason::Http, &mut encoder)
                .and_then(|_| encoder.finish().map(drop))
        } else {
            self.recorder.write_for(Reason::Http, &mut body).map(drop)
        };
        if written.is_err() {
            return text(500, "the snapshot could not be encoded\n");
        }
        let (content_type, extension) = if gzip {
            ("application/gzip", "json.gz")
        } else {
            ("application/json", "json")
        };
        let response = with_header(Response::from_data(body), "Content-Type", content_type);
        let response = with_header(
            response,
            "Content-Disposition",
            &format!("attachment; filename=\"trace_{stamp}.{extension}\""),
        );
        with_header(response, "Cache-Control", "no-store")
    }
}

/// The token of `Bearer <token>`; the scheme is case-insensitive (RFC 7235) and followed by
/// one or more spaces.
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_matches(' '))
        .filter(|token| !token.is_empty())
}

fn text(status: u16, body: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    let response =
        Response::from_data(body.as_bytes().to_vec()).with_status_code(StatusCode(status));
    with_header(response, "Content-Type", "text/plain; charset=utf-8")
}
