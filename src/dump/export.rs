//! Windows to OTLP (feature `otlp`): a capture's window encoded on the dump thread and queued
//! for the exporter, or sent at once for `export_otlp_now`; what the exporter reports, as dump
//! outcomes.

use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::dump::context::{DumpContext, Reason};
use crate::dump::otlp::{self, Delivered, Delivery, Exporter, OtlpConfig};
use crate::dump::outcome::{Destination, DumpOutcome};
use crate::error::{DumpError, DumpStage};
use crate::record::{Capture, Timebase};

/// What [`FlightRecorder::export_otlp_now`](crate::FlightRecorder::export_otlp_now) sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportInfo {
    /// The receiver's URL.
    pub endpoint: String,
    /// Spans in the request (the window's spans, and one for events outside any span).
    pub spans: usize,
    /// Bytes of the request body (protobuf, gzipped if configured).
    pub bytes: u64,
}

/// Whether a dump with this reason is exported: triggers yes; a manual dump or an HTTP
/// snapshot, which an operator asked for where they are, no.
pub(crate) fn exported(reason: &Reason) -> bool {
    !matches!(reason, Reason::Manual | Reason::Http)
}

/// Encodes the window and queues it for the exporter thread.
pub(crate) fn queue(
    exporter: &Exporter,
    timebase: &Timebase,
    context: &DumpContext,
    capture: Capture,
) -> Result<(), DumpError> {
    let queued = Instant::now();
    let (body, _) = encode(exporter.config(), timebase, context, capture)?;
    exporter.submit(Delivery {
        reason: context.reason.as_str().to_owned(),
        body,
        queued,
    });
    Ok(())
}

/// Encodes the window and sends it now, on this thread (retries included).
pub(crate) fn send_now(
    config: &OtlpConfig,
    timebase: &Timebase,
    context: &DumpContext,
    capture: Capture,
) -> (Result<ExportInfo, DumpError>, DumpOutcome) {
    let started = Instant::now();
    let sent = encode(config, timebase, context, capture).and_then(|(body, spans)| {
        otlp::send(config, &body, |pause| {
            std::thread::sleep(pause);
            true
        })
        .map_err(|message| export_error(config, message))
        .map(|()| ExportInfo {
            endpoint: config.endpoint().to_owned(),
            spans,
            bytes: body.len() as u64,
        })
    });
    let outcome = DumpOutcome {
        reason: context.reason.as_str().to_owned(),
        path: PathBuf::from(config.endpoint()),
        bytes: sent.as_ref().map_or(0, |info| info.bytes),
        took: started.elapsed(),
        error: sent.as_ref().err().cloned(),
        slow_span: None,
        destination: Destination::Otlp,
    };
    (sent, outcome)
}

/// What the exporter thread reports, as a dump outcome.
pub(crate) fn outcome(endpoint: &str, delivered: Delivered) -> DumpOutcome {
    DumpOutcome {
        reason: delivered.reason,
        path: PathBuf::from(endpoint),
        bytes: if delivered.error.is_none() {
            delivered.bytes
        } else {
            0
        },
        took: delivered.took,
        error: delivered
            .error
            .map(|message| DumpError::new(DumpStage::Export, endpoint, io::Error::other(message))),
        slow_span: None,
        destination: Destination::Otlp,
    }
}

/// The error of an export that was never tried because export is not configured.
pub(crate) fn not_configured() -> DumpError {
    DumpError::new(
        DumpStage::Export,
        "",
        io::Error::other("no OTLP endpoint is configured (Builder::export_otlp)"),
    )
}

/// How long a panic dump waits for its export, at most.
pub(crate) const PANIC_EXPORT_WAIT: Duration = Duration::from_secs(2);

fn encode(
    config: &OtlpConfig,
    timebase: &Timebase,
    context: &DumpContext,
    capture: Capture,
) -> Result<(Vec<u8>, usize), DumpError> {
    let mut window = otlp::Window::from_capture(timebase, &capture, context);
    drop(capture);
    let encoded = otlp::encode(&mut window, config);
    drop(window);
    let body = otlp::request_body(config, encoded.body)
        .map_err(|e| DumpError::new(DumpStage::Export, config.endpoint(), e))?;
    Ok((body, encoded.spans))
}

fn export_error(config: &OtlpConfig, message: String) -> DumpError {
    DumpError::new(
        DumpStage::Export,
        config.endpoint(),
        io::Error::other(message),
    )
}
