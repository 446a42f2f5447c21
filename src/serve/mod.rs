//! Stage 4, the `/debug/trace/snapshot` and `/debug/trace/status` HTTP endpoints (feature
//! `http`): hyper on a small runtime thread of its own, with hard bounds. Takes a handle; the
//! handle knows nothing of it.
//!
//! Bounds that hold whatever clients do: request heads at most `MAX_HEADER_BYTES` and
//! `MAX_HEADERS` lines (431 beyond); a client that does not finish its request head within
//! the timeout, or stops reading a response for that long, is disconnected; a request with a
//! body is answered without reading it, and its connection closed; at most `max_connections`
//! connections (more are closed at once); `MAX_BODIES_IN_FLIGHT` snapshot responses at once
//! (503 with `Retry-After` beyond, unless one has stalled: it is cut off for the newcomer).
//! Snapshots are streamed by one encoder thread, recording nothing (`Dispatch::none()`), a piece at a time as the
//! client takes them; the runtime thread only moves bytes, so one slow client never holds up
//! another. HTTP dumps are never rate-limited by the trigger cooldown.

mod endpoint;
mod stream;

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use hyper::Request;
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Notify, Semaphore};
use tokio_io_timeout::TimeoutStream;

use crate::recorder::FlightRecorder;
use endpoint::Endpoint;
use stream::EncoderThread;

/// The snapshot endpoint's path.
pub const SNAPSHOT_PATH: &str = "/debug/trace/snapshot";
/// The status endpoint's path: [`FlightRecorder::status`] as JSON.
pub const STATUS_PATH: &str = "/debug/trace/status";

/// Largest request head (request line and headers) accepted; larger ones get 431.
pub(crate) const MAX_HEADER_BYTES: usize = 16 << 10;
/// Most header lines accepted in one request; more get 431.
pub(crate) const MAX_HEADERS: usize = 64;
/// Snapshot responses being sent at once.
pub(crate) const MAX_BODIES_IN_FLIGHT: usize = 2;

/// How [`FlightRecorder::serve_http_with`] serves.
#[derive(Clone)]
#[must_use = "a configuration does nothing until passed to `serve_http_with`"]
pub struct HttpConfig {
    addr: String,
    token: Option<String>,
    allow_non_loopback: bool,
    timeout: Duration,
    max_connections: usize,
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConfig")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("allow_non_loopback", &self.allow_non_loopback)
            .field("timeout", &self.timeout)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl HttpConfig {
    /// Largest request head (request line and headers) accepted; larger ones get 431.
    pub const MAX_HEADER_BYTES: usize = MAX_HEADER_BYTES;
    /// Most header lines accepted in one request; more get 431.
    pub const MAX_HEADERS: usize = MAX_HEADERS;
    /// Snapshot responses being sent at once; a further request gets 503 until one is done,
    /// unless one has stalled.
    pub const MAX_BODIES_IN_FLIGHT: usize = MAX_BODIES_IN_FLIGHT;
    /// The most a snapshot response holds encoded and not yet taken by its client, in bytes:
    /// memory per response beyond the encoder's own state, whatever the buffer's size.
    pub const MAX_QUEUED_RESPONSE_BYTES: usize = stream::PIECES_QUEUED * stream::PIECE_BYTES;
    /// How long a snapshot response's client may leave it unread before a new request may
    /// take its place (cutting it off).
    pub const STALL_GRACE: Duration = stream::STALL_GRACE;
    /// How long a client may take to send its request head, or leave a response unread.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Connections served at once.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

    /// Serve on `addr`, for example `"127.0.0.1:6060"` (port 0 picks a free port).
    pub fn new(addr: impl Into<String>) -> Self {
        HttpConfig {
            addr: addr.into(),
            token: None,
            allow_non_loopback: false,
            timeout: Self::DEFAULT_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
        }
    }

    /// Require `Authorization: Bearer <token>`; other requests get 401 and no data. An empty
    /// token is refused when the server starts ([`HttpError::EmptyToken`]).
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

    /// How long a client may take to send its request head, and how long a response may wait
    /// for a client that stopped reading (default 10 s); then it is disconnected.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connections served at once (default 1024); further ones are closed as they come. Each
    /// costs a task and a read buffer (8 to 16 KiB) until the timeout closes it.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections;
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
    /// The socket could not be bound (in use, no permission), or the server's thread could
    /// not be started.
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
    addr: SocketAddr,
    shutdown: Arc<Notify>,
    thread: Option<JoinHandle<()>>,
    /// Stopped after the server thread, once no request can reach it.
    _encoder: EncoderThread,
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

    /// The status URL: `http://<addr>/debug/trace/status`.
    pub fn status_url(&self) -> String {
        format!("http://{}{STATUS_PATH}", self.addr)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        // The accept loop closes the listening socket and the runtime drops every connection;
        // once the thread is joined, the port is free.
        self.shutdown.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl FlightRecorder {
    /// Serves snapshots over HTTP on `addr` (loopback only; see
    /// [`serve_http_with`](Self::serve_http_with)): `GET /debug/trace/snapshot` answers with a
    /// dump (`otherData.reason` = `http`), `?gzip=1` with it gzipped, streamed as it is
    /// encoded; `GET /debug/trace/status` answers with [`status`](Self::status) as JSON.
    /// Dropping the returned guard stops the server.
    ///
    /// ```text
    /// curl http://127.0.0.1:6060/debug/trace/snapshot > trace.json
    /// curl -o trace.json.gz 'http://127.0.0.1:6060/debug/trace/snapshot?gzip=1'
    /// curl http://127.0.0.1:6060/debug/trace/status
    /// ```
    ///
    /// # Errors
    ///
    /// [`HttpError`]: the address does not resolve, is not loopback, or cannot be bound.
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn serve_http(&self, addr: &str) -> Result<HttpServer, HttpError> {
        serve(self, HttpConfig::new(addr))
    }

    /// [`serve_http`](Self::serve_http) with a bearer token, or on a non-loopback address.
    ///
    /// # Errors
    ///
    /// [`HttpError`]: the address does not resolve, is not loopback (unless allowed), cannot
    /// be bound, or the token is empty.
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn serve_http_with(&self, config: HttpConfig) -> Result<HttpServer, HttpError> {
        serve(self, config)
    }
}

fn serve(recorder: &FlightRecorder, config: HttpConfig) -> Result<HttpServer, HttpError> {
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
    let bind_error = |e: std::io::Error| HttpError::Bind {
        addr,
        message: e.to_string(),
    };
    let listener = std::net::TcpListener::bind(addr).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .max_blocking_threads(2)
        .thread_name("blackbox-http")
        .build()
        .map_err(bind_error)?;
    let shutdown = Arc::new(Notify::new());
    let encoder = EncoderThread::start().map_err(bind_error)?;
    let endpoint = Arc::new(Endpoint::new(
        recorder.clone(),
        config.token,
        encoder.handle(),
    ));
    let server = Server {
        endpoint,
        timeout: config.timeout,
        connections: Arc::new(Semaphore::new(config.max_connections)),
        shutdown: Arc::clone(&shutdown),
    };
    let thread = std::thread::Builder::new()
        .name("blackbox-http".to_owned())
        .spawn(move || {
            runtime.block_on(server.run(listener));
            // Connections still open are dropped; an encoding in flight finishes on its own.
            runtime.shutdown_timeout(Duration::from_millis(100));
        })
        .map_err(bind_error)?;
    Ok(HttpServer {
        addr,
        shutdown,
        thread: Some(thread),
        _encoder: encoder,
    })
}

struct Server {
    endpoint: Arc<Endpoint>,
    timeout: Duration,
    connections: Arc<Semaphore>,
    shutdown: Arc<Notify>,
}

impl Server {
    async fn run(self, listener: std::net::TcpListener) {
        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
            return;
        };
        loop {
            let accepted = tokio::select! {
                () = self.shutdown.notified() => return,
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors, say: wait a moment rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Over the cap, the connection is closed as it comes.
            let Ok(permit) = Arc::clone(&self.connections).try_acquire_owned() else {
                continue;
            };
            let mut stream = TimeoutStream::new(stream);
            stream.set_write_timeout(Some(self.timeout));
            let endpoint = Arc::clone(&self.endpoint);
            let timeout = self.timeout;
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let mut response = endpoint.answer(&request);
                    // The body is never read: rather than wait for it (from a client that may
                    // never send it), the connection closes after the response.
                    if !request.body().is_end_stream() {
                        response
                            .headers_mut()
                            .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    }
                    std::future::ready(Ok::<_, std::convert::Infallible>(response))
                });
                let _ = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(timeout)
                    .max_buf_size(MAX_HEADER_BYTES)
                    .max_header_size(MAX_HEADER_BYTES)
                    .max_headers(MAX_HEADERS)
                    .serve_connection(TokioIo::new(Box::pin(stream)), service)
                    .await;
                drop(permit);
            });
        }
    }
}
