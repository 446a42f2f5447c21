//! Stage 3, the OTLP encoder beside the Chrome one (feature `otlp`): a window as one OTLP/HTTP
//! protobuf request (`map`), with its resource and scope, and the exporter thread that delivers
//! it (`deliver`). Conversion happens at dump time, from the snapshot: recording is untouched.

mod attributes;
mod deliver;
mod ids;
mod map;

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message;

#[cfg(feature = "analyze")]
pub(crate) use attributes::Callsite;
pub(crate) use deliver::{Delivered, Delivery, Exporter, send};
pub(crate) use map::Window;
#[cfg(feature = "analyze")]
pub(crate) use map::{event, facts};

/// Where and how windows are exported as OTLP spans: given to
/// [`Builder::export_otlp`](crate::Builder::export_otlp).
///
/// ```
/// # #[cfg(feature = "otlp")] {
/// use tracing_blackbox::OtlpConfig;
/// let otlp = OtlpConfig::new("http://127.0.0.1:4318")   // `/v1/traces` is added
///     .header("authorization", "Bearer …")
///     .service_name("checkout")
///     .gzip(true);
/// # }
/// ```
#[derive(Clone)]
#[must_use = "a configuration does nothing until given to `Builder::export_otlp`"]
pub struct OtlpConfig {
    pub(crate) endpoint: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) gzip: bool,
    pub(crate) timeout: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) max_queued: usize,
    pub(crate) service_name: Option<String>,
    pub(crate) resource: Vec<(String, String)>,
    pub(crate) trace_id_field: String,
}

impl fmt::Debug for OtlpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values are credentials, often.
        let headers: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("OtlpConfig")
            .field("endpoint", &self.endpoint)
            .field("headers", &headers)
            .field("gzip", &self.gzip)
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .field("max_queued", &self.max_queued)
            .field("service_name", &self.service_name)
            .field("resource", &self.resource)
            .field("trace_id_field", &self.trace_id_field)
            .finish()
    }
}

impl OtlpConfig {
    /// The path OTLP/HTTP receivers take traces at.
    pub const TRACES_PATH: &'static str = "/v1/traces";
    /// How long one attempt may take, connecting and waiting for the answer included.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Attempts per window: the first and the retries (on 429, 502, 503, 504, or no
    /// connection), with backoff.
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;
    /// Windows waiting to be sent; beyond, the oldest is dropped (and reported).
    pub const DEFAULT_MAX_QUEUED: usize = 4;

    /// Export to the OTLP/HTTP receiver at `endpoint`: a base URL such as
    /// `http://collector:4318` (`/v1/traces` is added, as for `OTEL_EXPORTER_OTLP_ENDPOINT`),
    /// or the full URL of the traces path.
    pub fn new(endpoint: impl Into<String>) -> Self {
        OtlpConfig {
            endpoint: traces_url(&endpoint.into()),
            headers: Vec::new(),
            gzip: false,
            timeout: Self::DEFAULT_TIMEOUT,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            max_queued: Self::DEFAULT_MAX_QUEUED,
            service_name: None,
            resource: Vec::new(),
            trace_id_field: "trace_id".to_owned(),
        }
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A header sent with every request, such as `authorization` or a vendor's API key.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Gzip the requests (`Content-Encoding: gzip`); off by default.
    pub fn gzip(mut self, gzip: bool) -> Self {
        self.gzip = gzip;
        self
    }

    /// How long one attempt may take (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Attempts per window, the first included (default 4); at least 1.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Windows waiting to be sent (default 4); at least 1.
    pub fn max_queued(mut self, windows: usize) -> Self {
        self.max_queued = windows;
        self
    }

    /// `service.name` of the resource (default: the executable's name).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Another resource attribute, such as `deployment.environment`.
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.resource.push((key.into(), value.into()));
        self
    }

    /// The span field whose value (32 hex digits, a W3C trace id) makes a span and its
    /// children part of that trace, so that the window joins a trace the backend already has
    /// (default `trace_id`).
    pub fn trace_id_field(mut self, field: impl Into<String>) -> Self {
        self.trace_id_field = field.into();
        self
    }

    /// Why this configuration cannot work, if it cannot.
    pub(crate) fn problem(&self) -> Option<String> {
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            return Some(format!(
                "the OTLP endpoint {:?} is not an http:// or https:// URL",
                self.endpoint
            ));
        }
        if self.max_attempts == 0 || self.max_queued == 0 {
            return Some("OTLP max_attempts and max_queued must be at least 1".to_owned());
        }
        None
    }
}

/// `base` with the traces path, unless it already ends with it.
fn traces_url(base: &str) -> String {
    let base = base.trim();
    if base
        .trim_end_matches('/')
        .ends_with(OtlpConfig::TRACES_PATH)
    {
        return base.trim_end_matches('/').to_owned();
    }
    format!("{}{}", base.trim_end_matches('/'), OtlpConfig::TRACES_PATH)
}

/// A window, encoded: the request body and what it holds.
pub(crate) struct Encoded {
    pub(crate) body: Vec<u8>,
    pub(crate) spans: usize,
}

/// The body as sent: gzipped when configured.
pub(crate) fn request_body(config: &OtlpConfig, encoded: Vec<u8>) -> std::io::Result<Vec<u8>> {
    if !config.gzip {
        return Ok(encoded);
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &encoded)?;
    gz.finish()
}

/// A window as one `ExportTraceServiceRequest`, protobuf-encoded.
pub(crate) fn encode(window: &mut Window, config: &OtlpConfig) -> Encoded {
    let spans = window.spans(&config.trace_id_field);
    let count = spans.len();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource(config)),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: env!("CARGO_PKG_NAME").to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Encoded {
        body: request.encode_to_vec(),
        spans: count,
    }
}

fn resource(config: &OtlpConfig) -> Resource {
    let executable = std::env::current_exe()
        .ok()
        .and_then(|path| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown".to_owned());
    let mut attributes = vec![
        attributes::string(
            "service.name",
            config.service_name.as_deref().unwrap_or(&executable),
        ),
        attributes::string("service.instance.id", instance_id()),
        attributes::int("process.pid", u64::from(std::process::id())),
        attributes::string("process.executable.name", &executable),
        attributes::string("telemetry.sdk.name", env!("CARGO_PKG_NAME")),
        attributes::string("telemetry.sdk.language", "rust"),
        attributes::string("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
    ];
    if let Some(host) = host_name() {
        attributes.push(attributes::string("host.name", &host));
    }
    for (key, value) in &config.resource {
        attributes.retain(|kv| kv.key != *key);
        attributes.push(attributes::string(key, value));
    }
    Resource {
        attributes,
        ..Default::default()
    }
}

/// This process's `service.instance.id`: random, the same for all its windows.
fn instance_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        ids::random_trace_id()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}

fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_the_traces_path_once() {
        for (given, url) in [
            ("http://c:4318", "http://c:4318/v1/traces"),
            ("http://c:4318/", "http://c:4318/v1/traces"),
            ("http://c:4318/v1/traces", "http://c:4318/v1/traces"),
            (
                "https://api.example/otlp",
                "https://api.example/otlp/v1/traces",
            ),
        ] {
            assert_eq!(OtlpConfig::new(given).endpoint(), url);
        }
        assert!(OtlpConfig::new("c:4318").problem().is_some());
        assert!(
            OtlpConfig::new("http://c")
                .max_attempts(0)
                .problem()
                .is_some()
        );
        assert!(OtlpConfig::new("http://c").problem().is_none());
    }

    #[test]
    fn header_values_stay_out_of_debug() {
        let config = OtlpConfig::new("http://c").header("authorization", "Bearer secret");
        let shown = format!("{config:?}");
        assert!(shown.contains("authorization") && !shown.contains("secret"));
    }
}
