//! The plain configuration value a recorder is built from: the builder fills it, the
//! `BLACKBOX_*` variables override it, `check` refuses what cannot work, and `build` hands
//! each stage its part.

use std::time::Duration;

use crate::dump::worker::DumpConfig;
use crate::error::{BuildError, MAX_FIELD_LEN_LIMIT};
use crate::record::RecordingConfig;
use crate::record::redact::Redaction;
use crate::record::span_timing::SlowSpanConfig;
use crate::trigger::TriggerConfig;

/// Default hard cap on record storage: 10 MiB, as Go's `FlightRecorder`.
pub(crate) const DEFAULT_MAX_BYTES: usize = 10 << 20;
/// Default history the recorder aims to keep: 10 s, as Go's `FlightRecorder`.
pub(crate) const DEFAULT_MIN_AGE: Duration = Duration::from_secs(10);
/// Default cut-off for one field value, in bytes.
pub(crate) const DEFAULT_MAX_FIELD_LEN: usize = 256;

/// Everything a recorder is built from: each stage's part, and the triggers installed beside.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) record: RecordingConfig,
    pub(crate) dumps: DumpConfig,
    pub(crate) triggers: TriggerConfig,
    pub(crate) dump_on_panic: bool,
    #[cfg(all(unix, feature = "signal"))]
    pub(crate) dump_on_signal: bool,
    /// What a crash-safe recorder does on start with files earlier runs left.
    #[cfg(feature = "crash")]
    pub(crate) crash: CrashSettings,
}

/// Start-up handling of crash files (feature `crash`).
#[cfg(feature = "crash")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct CrashSettings {
    pub(crate) recover_on_start: bool,
    pub(crate) keep_files: usize,
}

/// Default number of unrecovered crash files left in the crash directory.
#[cfg(feature = "crash")]
pub(crate) const DEFAULT_KEEP_CRASH_FILES: usize = 4;

impl Default for Config {
    fn default() -> Self {
        Config {
            record: RecordingConfig {
                max_bytes: DEFAULT_MAX_BYTES,
                min_age: DEFAULT_MIN_AGE,
                max_field_bytes: DEFAULT_MAX_FIELD_LEN,
                recording: true,
                enabled: true,
                redaction: Redaction::default(),
                slow_spans: SlowSpanConfig::default(),
                error_level: None,
                clock: None,
                #[cfg(feature = "crash")]
                crash_dir: None,
                #[cfg(feature = "tokio")]
                tasks: crate::record::tasks::TaskTriggerConfig::default(),
            },
            dumps: DumpConfig::default(),
            triggers: TriggerConfig::default(),
            dump_on_panic: false,
            #[cfg(all(unix, feature = "signal"))]
            dump_on_signal: false,
            #[cfg(feature = "crash")]
            crash: CrashSettings {
                recover_on_start: true,
                keep_files: DEFAULT_KEEP_CRASH_FILES,
            },
        }
    }
}

/// Smallest accepted `max_bytes`.
pub(crate) const MIN_MAX_BYTES: usize = 64 << 10;
/// Largest accepted `max_bytes` (1 TiB on 64-bit targets).
pub(crate) const MAX_MAX_BYTES: usize = if usize::BITS >= 64 { 1 << 40 } else { 1 << 30 };

const MAX_MIN_AGE: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Refuses a configuration that cannot work, naming the setting and the value.
pub(crate) fn check(config: &Config) -> Result<(), BuildError> {
    if config.record.max_bytes < MIN_MAX_BYTES {
        return Err(BuildError::MaxBytesTooSmall {
            given: config.record.max_bytes,
            min: MIN_MAX_BYTES,
        });
    }
    if config.record.max_bytes > MAX_MAX_BYTES {
        return Err(BuildError::MaxBytesTooLarge {
            given: config.record.max_bytes,
            max: MAX_MAX_BYTES,
        });
    }
    if config.record.min_age.is_zero() || config.record.min_age > MAX_MIN_AGE {
        return Err(BuildError::InvalidMinAge {
            given: config.record.min_age,
        });
    }
    for (setting, value) in [
        ("max_queued_dumps", Some(config.dumps.queue_capacity)),
        ("keep_files", config.dumps.keep_files),
        ("keep_slowest", config.triggers.keep_slowest),
    ] {
        if value == Some(0) {
            return Err(BuildError::Zero { setting });
        }
    }
    if config.dumps.keep_bytes == Some(0) {
        return Err(BuildError::Zero {
            setting: "keep_bytes",
        });
    }
    check_export(config)?;
    if config.record.max_field_bytes == 0 || config.record.max_field_bytes > MAX_FIELD_LEN_LIMIT {
        return Err(BuildError::InvalidMaxFieldLen {
            given: config.record.max_field_bytes,
        });
    }
    Ok(())
}

/// Dumps must go somewhere, and an OTLP configuration must be able to work.
fn check_export(config: &Config) -> Result<(), BuildError> {
    #[cfg(feature = "otlp")]
    if let Some(otlp) = &config.dumps.otlp {
        return match otlp.problem() {
            Some(message) => Err(BuildError::Export { message }),
            None => Ok(()),
        };
    }
    if !config.dumps.files {
        return Err(BuildError::Export {
            message: "write_dump_files(false) needs export_otlp: triggered dumps would go \
                      nowhere"
                .to_owned(),
        });
    }
    Ok(())
}
