//! `Builder::with_env`: the `BLACKBOX_*` environment variables, applied over a configuration.

use std::time::Duration;

use crate::config::Config;
use crate::error::BuildError;

/// The variables `with_env` reads, in the order they are applied.
pub const ENV_VARS: [&str; 8] = [
    "BLACKBOX",
    "BLACKBOX_DIR",
    "BLACKBOX_MAX_BYTES",
    "BLACKBOX_MIN_AGE",
    "BLACKBOX_SLOW_MS",
    "BLACKBOX_COOLDOWN",
    "BLACKBOX_KEEP",
    "BLACKBOX_GZIP",
];

/// The variable `with_env` reads for the crash-safe store (feature `crash`): a directory,
/// `on` (the default one, `/dev/shm` where it exists) or `off`.
pub const CRASH_ENV_VAR: &str = "BLACKBOX_CRASH_DIR";

/// The variables `with_env` reads for the OTLP export (feature `otlp`): any endpoint turns
/// the export on (`BLACKBOX_OTLP_ENDPOINT` first, then the standard OpenTelemetry ones), and
/// `BLACKBOX_OTLP_ENDPOINT=off` keeps it off whatever the others say.
pub const OTLP_ENV_VARS: [&str; 7] = [
    "BLACKBOX_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_SERVICE_NAME",
];

fn invalid(variable: &'static str, value: &str, expected: &str) -> BuildError {
    BuildError::Env {
        variable,
        value: value.to_owned(),
        expected: expected.to_owned(),
    }
}

fn switch(variable: &'static str, value: &str) -> Result<bool, BuildError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" => Ok(false),
        _ => Err(invalid(variable, value, "1, true, on, 0, false or off")),
    }
}

fn duration(variable: &'static str, value: &str) -> Result<Duration, BuildError> {
    humantime::parse_duration(value.trim())
        .map_err(|_| invalid(variable, value, "a duration such as 10s, 500ms or 2m"))
}

fn count(variable: &'static str, value: &str) -> Result<u64, BuildError> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid(variable, value, "a whole number"))
}

/// Applies every variable `lookup` knows over `config`.
pub(crate) fn apply(
    config: &mut Config,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(), BuildError> {
    for variable in ENV_VARS {
        let Some(value) = lookup(variable) else {
            continue;
        };
        match variable {
            "BLACKBOX" => config.record.enabled = switch(variable, &value)?,
            "BLACKBOX_DIR" => {
                if value.trim().is_empty() {
                    return Err(invalid(variable, &value, "a directory path"));
                }
                config.dumps.dir = value.into();
            }
            "BLACKBOX_MAX_BYTES" => {
                let bytes = parse_size::parse_size(value.trim()).map_err(|_| {
                    invalid(
                        variable,
                        &value,
                        "a size such as 10MiB, 512KiB, 1GiB or bytes",
                    )
                })?;
                config.record.max_bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
            }
            "BLACKBOX_MIN_AGE" => config.record.min_age = duration(variable, &value)?,
            "BLACKBOX_SLOW_MS" => {
                config.record.slow_spans.default =
                    Some(Duration::from_millis(count(variable, &value)?));
            }
            "BLACKBOX_COOLDOWN" => config.triggers.cooldown = duration(variable, &value)?,
            "BLACKBOX_KEEP" => {
                let files = count(variable, &value)?;
                config.dumps.keep_files = Some(usize::try_from(files).unwrap_or(usize::MAX));
            }
            "BLACKBOX_GZIP" => {
                let on = switch(variable, &value)?;
                if on && !cfg!(feature = "gzip") {
                    return Err(invalid(
                        variable,
                        &value,
                        "off (this build lacks the `gzip` feature)",
                    ));
                }
                config.dumps.gzip = on;
            }
            _ => {}
        }
    }
    if let Some(value) = lookup(CRASH_ENV_VAR) {
        crash_dir(config, CRASH_ENV_VAR, &value)?;
    }
    apply_otlp(config, &lookup)
}

/// `BLACKBOX_CRASH_DIR`: a directory, `on` (the default one) or `off`.
fn crash_dir(config: &mut Config, variable: &'static str, value: &str) -> Result<(), BuildError> {
    let trimmed = value.trim();
    let off = matches!(trimmed, "0" | "off" | "false" | "no");
    #[cfg(feature = "crash")]
    {
        config.record.crash_dir = match trimmed {
            "" => return Err(invalid(variable, value, "a directory, `on` or `off`")),
            _ if off => None,
            "1" | "on" | "true" | "yes" => Some(crate::recover::default_crash_dir()),
            _ => Some(trimmed.into()),
        };
        Ok(())
    }
    #[cfg(not(feature = "crash"))]
    {
        let _ = config;
        if off {
            Ok(())
        } else {
            Err(invalid(
                variable,
                value,
                "off (this build lacks the `crash` feature)",
            ))
        }
    }
}

/// The OTLP variables: an endpoint turns the export on; the others adjust it.
#[cfg(feature = "otlp")]
fn apply_otlp(
    config: &mut Config,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(), BuildError> {
    use crate::OtlpConfig;
    let own = lookup("BLACKBOX_OTLP_ENDPOINT");
    if own
        .as_deref()
        .is_some_and(|v| matches!(v.trim(), "0" | "off" | "false" | "no"))
    {
        config.dumps.otlp = None;
        return Ok(());
    }
    // The traces endpoint is a full URL; the general one a base that gets `/v1/traces`.
    let endpoint = [
        ("BLACKBOX_OTLP_ENDPOINT", own),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            lookup("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            lookup("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ),
    ]
    .into_iter()
    .find_map(|(variable, value)| Some((variable, value.filter(|v| !v.trim().is_empty())?)));
    if let Some((variable, endpoint)) = endpoint {
        let base = config
            .dumps
            .otlp
            .take()
            .unwrap_or_else(|| OtlpConfig::new(""));
        let mut otlp = OtlpConfig::new(endpoint.trim());
        otlp.headers = base.headers;
        otlp.gzip = base.gzip;
        otlp.timeout = base.timeout;
        otlp.max_attempts = base.max_attempts;
        otlp.max_queued = base.max_queued;
        otlp.service_name = base.service_name;
        otlp.resource = base.resource;
        otlp.trace_id_field = base.trace_id_field;
        if let Some(problem) = otlp.problem() {
            return Err(invalid(variable, &endpoint, &problem));
        }
        config.dumps.otlp = Some(otlp);
    }
    let Some(otlp) = config.dumps.otlp.as_mut() else {
        return Ok(());
    };
    if let Some(value) = lookup("OTEL_EXPORTER_OTLP_HEADERS") {
        for pair in value.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, header) = pair.split_once('=').ok_or_else(|| {
                invalid(
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    &value,
                    "name=value pairs separated by commas",
                )
            })?;
            let header = percent_encoding::percent_decode_str(header.trim()).decode_utf8_lossy();
            otlp.headers
                .retain(|(n, _)| !n.eq_ignore_ascii_case(name.trim()));
            otlp.headers
                .push((name.trim().to_owned(), header.into_owned()));
        }
    }
    if let Some(value) = lookup("OTEL_EXPORTER_OTLP_COMPRESSION") {
        otlp.gzip = match value.trim() {
            "gzip" => true,
            "none" | "" => false,
            _ => {
                return Err(invalid(
                    "OTEL_EXPORTER_OTLP_COMPRESSION",
                    &value,
                    "gzip or none",
                ));
            }
        };
    }
    if let Some(value) = lookup("OTEL_EXPORTER_OTLP_TIMEOUT") {
        otlp.timeout = Duration::from_millis(count("OTEL_EXPORTER_OTLP_TIMEOUT", &value)?);
    }
    if let Some(value) = lookup("OTEL_SERVICE_NAME").filter(|v| !v.trim().is_empty()) {
        otlp.service_name = Some(value.trim().to_owned());
    }
    Ok(())
}

/// Without the `otlp` feature, only a `BLACKBOX_OTLP_ENDPOINT` that asks for the export is an
/// error; the standard variables are left to whatever else reads them.
#[cfg(not(feature = "otlp"))]
fn apply_otlp(
    _config: &mut Config,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(), BuildError> {
    match lookup("BLACKBOX_OTLP_ENDPOINT") {
        Some(value) if !matches!(value.trim(), "" | "0" | "off" | "false" | "no") => Err(invalid(
            "BLACKBOX_OTLP_ENDPOINT",
            &value,
            "off (this build lacks the `otlp` feature)",
        )),
        _ => Ok(()),
    }
}
