//! Answering one request: routing, the bearer token, the status, and the start of a snapshot
//! response (which the encoder thread streams).

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use chrono::Utc;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::runtime::Handle;

use super::stream::{self, Slots, SnapshotBody};
use super::{SNAPSHOT_PATH, STATUS_PATH};
use crate::recorder::FlightRecorder;
use crate::sync::quietly;

pub(super) struct Endpoint {
    recorder: FlightRecorder,
    token: Option<String>,
    /// The encoder thread's runtime, which snapshot responses are encoded on.
    encoder: Handle,
    slots: Arc<Slots>,
}

/// A response body: a short text or JSON, or a snapshot streamed from the encoder thread.
pub(super) enum ResponseBody {
    Whole(Full<Bytes>),
    Snapshot(SnapshotBody),
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            ResponseBody::Whole(whole) => Pin::new(whole)
                .poll_frame(cx)
                .map_err(|never: Infallible| match never {}),
            ResponseBody::Snapshot(snapshot) => Pin::new(snapshot).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Whole(whole) => whole.is_end_stream(),
            ResponseBody::Snapshot(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Whole(whole) => whole.size_hint(),
            ResponseBody::Snapshot(snapshot) => snapshot.size_hint(),
        }
    }
}

impl Endpoint {
    pub(super) fn new(recorder: FlightRecorder, token: Option<String>, encoder: Handle) -> Self {
        Endpoint {
            recorder,
            token,
            encoder,
            slots: Arc::new(Slots::new()),
        }
    }

    pub(super) fn answer(&self, request: &Request<Incoming>) -> Response<ResponseBody> {
        let path = request.uri().path();
        if path != SNAPSHOT_PATH && path != STATUS_PATH {
            return text(StatusCode::NOT_FOUND, "not found\n");
        }
        if request.method() != Method::GET {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET"));
            return response;
        }
        if !self.authorized(request) {
            let mut response = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
        if path == STATUS_PATH {
            let status = quietly(|| self.recorder.status().to_json());
            let mut response = Response::new(ResponseBody::Whole(Full::new(Bytes::from(status))));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return response;
        }
        let Some(slot) = self.slots.take() else {
            return busy();
        };
        let gzip = request
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .any(|pair| pair == "gzip=1" || pair == "gzip=true");
        let body = stream::start(
            &self.encoder,
            &self.slots,
            slot,
            self.recorder.clone(),
            gzip,
        );
        snapshot_response(body, gzip)
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

fn snapshot_response(body: SnapshotBody, gzip: bool) -> Response<ResponseBody> {
    let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let (content_type, extension) = if gzip {
        ("application/gzip", "json.gz")
    } else {
        ("application/json", "json")
    };
    let mut response = Response::new(ResponseBody::Snapshot(body));
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
        "snapshots are being sent to other clients; retry shortly\n",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::Whole(Full::new(Bytes::from_static(
        body.as_bytes(),
    ))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
