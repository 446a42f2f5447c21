//! The plain configuration value a recorder is built from: the builder fills it, the
//! `BLACKBOX_*` variables override it, `build` checks it and hands each stage its part.

use std::time::Duration;

use crate::dump::worker::DumpConfig;
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
}

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
            },
            dumps: DumpConfig::default(),
            triggers: TriggerConfig::default(),
            dump_on_panic: false,
            #[cfg(all(unix, feature = "signal"))]
            dump_on_signal: false,
        }
    }
}
