//! `blackbox export`: sends a dump to an OpenTelemetry receiver as OTLP spans.

use std::io::Write;
use std::path::Path;

use tracing_blackbox::OtlpConfig;
use tracing_blackbox::analyze::{self, ExportError};

use crate::Failure;

pub(crate) fn export(
    file: &Path,
    endpoint: &str,
    headers: Vec<(String, String)>,
    service_name: Option<String>,
    gzip: bool,
) -> Result<(), Failure> {
    let mut config = OtlpConfig::new(endpoint).gzip(gzip);
    if let Some(name) = service_name {
        config = config.service_name(name);
    }
    for (name, value) in headers {
        config = config.header(name, value);
    }
    match analyze::export_otlp(file, &config) {
        Ok(sent) => {
            writeln!(
                std::io::stdout(),
                "Sent {} spans ({} bytes) to {}",
                sent.spans,
                sent.bytes,
                sent.endpoint
            )?;
            Ok(())
        }
        Err(ExportError::Load(err)) => Err(Failure::Input(err)),
        Err(ExportError::Send(err)) => Err(Failure::Export(err)),
        Err(other) => Err(Failure::Serve(std::io::Error::other(other.to_string()))),
    }
}
