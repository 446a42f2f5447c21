//! Answering one request: routing, the bearer token, and the snapshot itself (encoded on a
//! blocking thread, one at a time, with a bounded number of responses in flight).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use chrono::Utc;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::{MAX_BODIES_IN_FLIGHT, SNAPSHOT_PATH};
use crate::atomic::encode_gzip;
use crate::dump::context::Reason;
use crate::recorder::FlightRecorder;
use crate::sync::quietly;

pub(super) struct Endpoint {
    recorder: FlightRecorder,
    token: Option<String>,
    /// A snapshot is being encoded.
    busy: AtomicBool,
    /// Snapshot responses being sent.
    bodies: Arc<AtomicUsize>,
}

/// A response body; a snapshot's holds its place among the bodies in flight until it is sent
/// or its connection is gone.
pub(super) struct ResponseBody {
    inner: Full<Bytes>,
    _slot: Option<BodySlot>,
}

struct BodySlot(Arc<AtomicUsize>);

impl Drop for BodySlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Endpoint {
    pub(super) fn new(recorder: FlightRecorder, token: Option<String>) -> Self {
        Endpoint {
            recorder,
            token,
            busy: AtomicBool::new(false),
            bodies: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub(super) async fn answer(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Response<ResponseBody> {
        if request.uri().path() != SNAPSHOT_PATH {
            return text(StatusCode::NOT_FOUND, "not found\n");
        }
        if request.method() != Method::GET {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET"));
            return response;
        }
        if !self.authorized(&request) {
            let mut response = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
        let Some(slot) = self.take_body_slot() else {
            return busy();
        };
        if self.busy.swap(true, Ordering::AcqRel) {
            return busy();
        }
        let gzip = request
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .any(|pair| pair == "gzip=1" || pair == "gzip=true");
        let endpoint = Arc::clone(&self);
        let encoded = tokio::task::spawn_blocking(move || quietly(|| endpoint.encode(gzip))).await;
        self.busy.store(false, Ordering::Release);
        match encoded {
            Ok(Ok(body)) => snapshot_response(body, gzip, slot),
            _ => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the snapshot could not be encoded\n",
            ),
        }
    }

    fn take_body_slot(&self) -> Option<BodySlot> {
        let taken = self
            .bodies
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_BODIES_IN_FLIGHT).then_some(n + 1)
            })
            .is_ok();
        taken.then(|| BodySlot(Arc::clone(&self.bodies)))
    }

    fn encode(&self, gzip: bool) -> std::io::Result<Vec<u8>> {
        let mut body = Vec::new();
        if gzip {
            encode_gzip(&mut body, |w| self.recorder.write_for(Reason::Http, w))?;
        } else {
            self.recorder.write_for(Reason::Http, &mut body)?;
        }
        Ok(body)
    }

    /// Compares the bearer token in constant time.
    fn authorized(&self, request: &Request<Incoming>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(bearer_credentials)
            .unwrap_or("");
        let (a, b) = (given.as_bytes(), token.as_bytes());
        let mut difference = a.len() ^ b.len();
        for (i, byte) in b.iter().enumerate() {
            difference |= usize::from(a.get(i).copied().unwrap_or(0) ^ byte);
        }
        difference == 0
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

fn snapshot_response(body: Vec<u8>, gzip: bool, slot: BodySlot) -> Response<ResponseBody> {
    let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let (content_type, extension) = if gzip {
        ("application/gzip", "json.gz")
    } else {
        ("application/json", "json")
    };
    let mut response = Response::new(ResponseBody {
        inner: Full::new(Bytes::from(body)),
        _slot: Some(slot),
    });
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!(
        "attachment; filename=\"trace_{stamp}.{extension}\""
    )) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn busy() -> Response<ResponseBody> {
    let mut response = text(
        StatusCode::SERVICE_UNAVAILABLE,
        "a snapshot is being written; retry shortly\n",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody {
        inner: Full::new(Bytes::from_static(body.as_bytes())),
        _slot: None,
    });
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
