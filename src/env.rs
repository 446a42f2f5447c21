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
    Ok(())
}
