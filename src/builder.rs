//! The fallible builder.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracing_core::Level;

use crate::config::{Config, MAX_MAX_BYTES, MIN_MAX_BYTES, check};
use crate::dump::outcome::DumpOutcome;
use crate::dump::worker::Dumper;
use crate::error::BuildError;
use crate::error::MAX_FIELD_LEN_LIMIT;
use crate::record::Recording;
use crate::record::hooks::TriggerHooks;
use crate::record::layer::FlightRecorderLayer;
use crate::record::redact::Redaction;
use crate::record::span_timing::SpanTiming;
use crate::recorder::FlightRecorder;
use crate::trigger::Triggers;

/// Configures a flight recorder; [`build`](Builder::build) returns the layer and its handle.
///
/// ```
/// use std::time::Duration;
/// let (layer, recorder) = tracing_blackbox::FlightRecorder::builder()
///     .max_bytes(4 << 20)
///     .min_age(Duration::from_secs(30))
///     .build()?;
/// # drop((layer, recorder));
/// # Ok::<(), tracing_blackbox::BuildError>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder {
    config: Config,
    /// The first bad environment variable, reported by `build`.
    env_error: Option<BuildError>,
}

/// The defaults and limits of the settings, where the settings are.
impl Builder {
    /// Default hard cap on record storage: 10 MiB, as Go's `FlightRecorder`.
    pub const DEFAULT_MAX_BYTES: usize = crate::config::DEFAULT_MAX_BYTES;
    /// Default history the recorder aims to keep: 10 s, as Go's `FlightRecorder`.
    pub const DEFAULT_MIN_AGE: Duration = crate::config::DEFAULT_MIN_AGE;
    /// Default cut-off for one field value, in bytes.
    pub const DEFAULT_MAX_FIELD_LEN: usize = crate::config::DEFAULT_MAX_FIELD_LEN;
    /// Smallest accepted `max_bytes`.
    pub const MIN_MAX_BYTES: usize = MIN_MAX_BYTES;
    /// Largest accepted `max_bytes` (1 TiB on 64-bit targets).
    pub const MAX_MAX_BYTES: usize = MAX_MAX_BYTES;
    /// Largest accepted `max_field_len`.
    pub const MAX_FIELD_LEN_LIMIT: usize = MAX_FIELD_LEN_LIMIT;
    /// Default minimum interval between two triggered dumps.
    pub const DEFAULT_COOLDOWN: Duration = crate::trigger::DEFAULT_COOLDOWN;
    /// Default directory for triggered dumps.
    pub const DEFAULT_DUMP_DIR: &'static str = crate::dump::worker::DEFAULT_DUMP_DIR;
    /// Default number of triggered dumps that may wait for the dump thread.
    pub const DEFAULT_QUEUE_CAPACITY: usize = crate::dump::worker::DEFAULT_QUEUE_CAPACITY;
}

impl FlightRecorder {
    /// Starts configuring a recorder.
    pub fn builder() -> Builder {
        Builder::default()
    }
}

impl Builder {
    /// Hard cap on the recorder's allocated record storage, in bytes (default 10 MiB). Memory
    /// is allocated as history needs it, in chunks (`max_bytes / 64` rounded up to a power of
    /// two, between 16 KiB and 1 MiB; 256 KiB for the default); when the cap is reached the
    /// oldest chunk of any thread is reused.
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.config.record.max_bytes = bytes;
        self
    }

    /// How much history to aim for (default 10 s). Older records may be discarded, and their
    /// memory freed; younger ones are kept unless `max_bytes` forces them out.
    pub fn min_age(mut self, age: Duration) -> Self {
        self.config.record.min_age = age;
        self
    }

    /// Longest field value kept, in bytes (default 256). Longer strings and `Debug` output are
    /// cut at a character boundary and end with [`TRUNCATION_MARKER`](crate::TRUNCATION_MARKER).
    pub fn max_field_len(mut self, bytes: usize) -> Self {
        self.config.record.max_field_bytes = bytes;
        self
    }

    /// Whether the recorder records from the start (default `true`); see
    /// [`FlightRecorder::start`].
    pub fn recording(mut self, on: bool) -> Self {
        self.config.record.recording = on;
        self
    }

    /// Dumps when any span closes more than `threshold` after it was created (see
    /// [`slow_span_timing`](Self::slow_span_timing) for busy time). The snapshot is taken at
    /// that moment, so the dump ends with the slow span complete; the closing thread pays only
    /// for the copy, and the dump thread writes the file. Subject to the cooldown.
    pub fn dump_on_slow_span(mut self, threshold: Duration) -> Self {
        self.config.record.slow_spans.default = Some(threshold);
        self
    }

    /// A threshold for spans with this name, or else this target (for example `"db_query"`
    /// or `"my_app::db"`); it takes precedence over
    /// [`dump_on_slow_span`](Self::dump_on_slow_span).
    pub fn slow_span_threshold(
        mut self,
        name_or_target: impl Into<String>,
        threshold: Duration,
    ) -> Self {
        let name = name_or_target.into();
        self.config
            .record
            .slow_spans
            .by_name
            .retain(|(n, _)| *n != name);
        self.config
            .record
            .slow_spans
            .by_name
            .push((name, threshold));
        self
    }

    /// How span latency is measured for the slow-span trigger: wall time from creation to
    /// close (default), or busy time summed over enter→exit.
    pub fn slow_span_timing(mut self, timing: SpanTiming) -> Self {
        self.config.record.slow_spans.timing = timing;
        self
    }

    /// Dumps when an event at ERROR is recorded (the level can be changed with
    /// [`error_level`](Self::error_level)). The snapshot is taken right after the event, on
    /// the thread that emitted it; the dump thread writes it. Subject to the cooldown.
    pub fn dump_on_error(mut self) -> Self {
        self.config.record.error_level.get_or_insert(Level::ERROR);
        self
    }

    /// Dumps on events at `level` or more severe (`Level::WARN`: warnings and errors); implies
    /// [`dump_on_error`](Self::dump_on_error).
    pub fn error_level(mut self, level: Level) -> Self {
        self.config.record.error_level = Some(level);
        self
    }

    /// Dumps when one poll of a tokio task runs longer than `threshold`: the task blocked its
    /// worker (a `std::thread::sleep`, a blocking call or a long computation inside `async`
    /// code). The dump's reason is `long_poll`; `otherData.trigger` names the task and where
    /// it was spawned. Needs tokio's own task instrumentation (`--cfg tokio_unstable` and
    /// tokio's `tracing` feature) reaching this layer: see [`crate::tokio`]. Subject to the
    /// cooldown.
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn dump_on_long_poll(mut self, threshold: Duration) -> Self {
        self.config.record.tasks.long_poll = Some(threshold);
        self
    }

    /// Dumps when a tokio task is woken (or spawned) and not polled within `threshold`: its
    /// worker was busy or blocked, or the runtime starved. Reason `scheduled_delay`; the
    /// snapshot is taken as the late poll starts. Same requirements as
    /// [`dump_on_long_poll`](Self::dump_on_long_poll). Subject to the cooldown.
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn dump_on_scheduled_delay(mut self, threshold: Duration) -> Self {
        self.config.record.tasks.scheduled_delay = Some(threshold);
        self
    }

    /// Installs a panic hook that writes a dump (reason `panic`, with the panic's message and
    /// location) synchronously, then calls the hook that was there before. It never waits on a
    /// lock the panicking thread may hold: a dump that cannot be taken safely is skipped, and
    /// says why on stderr.
    pub fn dump_on_panic(mut self) -> Self {
        self.config.dump_on_panic = true;
        self
    }

    /// Dumps on SIGUSR1 (`kill -USR1 <pid>`), never rate-limited. The handler, installed
    /// through `signal-hook`, only wakes a thread of the recorder's; that thread takes the
    /// snapshot and queues the dump.
    #[cfg(all(unix, feature = "signal"))]
    #[cfg_attr(docsrs, doc(cfg(all(unix, feature = "signal"))))]
    pub fn dump_on_signal(mut self) -> Self {
        self.config.dump_on_signal = true;
        self
    }

    /// Directory for triggered dumps (default `./blackbox-dumps`), created when needed.
    pub fn dump_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.dumps.dir = dir.into();
        self
    }

    /// At most one triggered dump per `interval` (default 1 minute; zero turns the limit off).
    /// Triggers within the interval are counted, and the next dump reports how many in
    /// `otherData.suppressed`. Manual, signal and HTTP dumps are never limited.
    pub fn cooldown(mut self, interval: Duration) -> Self {
        self.config.triggers.cooldown = interval;
        self
    }

    /// How many triggered dumps may wait for the dump thread (default 16). Triggers beyond
    /// that are counted as suppressed, never silently lost.
    pub fn max_queued_dumps(mut self, dumps: usize) -> Self {
        self.config.dumps.queue_capacity = dumps;
        self
    }

    /// Keeps at most `files` of this recorder's dumps in a directory, deleting the oldest
    /// (never the one just written, never a file the recorder did not write).
    pub fn keep_files(mut self, files: usize) -> Self {
        self.config.dumps.keep_files = Some(files);
        self
    }

    /// Keeps the records in a file in `dir` that outlives the process (feature `crash`): a
    /// shared mapping, so a process killed by SIGKILL or the OOM killer, or dying of `abort`,
    /// a segfault or a stack overflow, leaves its last records behind. `blackbox recover` (or
    /// [`recover::recover_file`](crate::recover::recover_file)) turns the file into a dump;
    /// by default the next run of the same executable does so on start (see
    /// [`recover_on_start`](Self::recover_on_start)). Use
    /// [`recover::default_crash_dir`](crate::recover::default_crash_dir) for `/dev/shm` (memory:
    /// no disk I/O, survives the process, not a reboot); a directory on disk survives a reboot
    /// at the cost of page-cache writeback. The file is named
    /// `blackbox-<exe>-<pid>-<start time>.shm`, is readable by the owner only, and is removed
    /// on a clean exit. Recording costs the same; `build` fails if the file cannot be made.
    #[cfg(feature = "crash")]
    #[cfg_attr(docsrs, doc(cfg(feature = "crash")))]
    pub fn crash_safe(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.record.crash_dir = Some(dir.into());
        self
    }

    /// Whether a crash-safe recorder turns the files earlier runs of its executable left
    /// (processes that are gone) into dumps in the dump directory, in the background on
    /// start, and removes them (default `true`). Files that stay (those of running processes
    /// or that could not be read) are kept up to [`keep_crash_files`](Self::keep_crash_files).
    #[cfg(feature = "crash")]
    #[cfg_attr(docsrs, doc(cfg(feature = "crash")))]
    pub fn recover_on_start(mut self, on: bool) -> Self {
        self.config.crash.recover_on_start = on;
        self
    }

    /// Most crash files of dead runs left in the crash directory (default 4); the oldest
    /// beyond go on start.
    #[cfg(feature = "crash")]
    #[cfg_attr(docsrs, doc(cfg(feature = "crash")))]
    pub fn keep_crash_files(mut self, files: usize) -> Self {
        self.config.crash.keep_files = files;
        self
    }

    /// Keeps at most `bytes` of this recorder's dumps in a directory, deleting the oldest
    /// (never the one just written, never a file the recorder did not write).
    pub fn keep_bytes(mut self, bytes: u64) -> Self {
        self.config.dumps.keep_bytes = Some(bytes);
        self
    }

    /// Keeps only the dumps of the `n` slowest slow-span breaches seen: a breach faster than
    /// all `n` kept is not dumped (counted as suppressed), a slower one replaces the fastest.
    pub fn keep_slowest(mut self, n: usize) -> Self {
        self.config.triggers.keep_slowest = Some(n);
        self
    }

    /// Also sends every triggered dump's window (slow span, error, signal, user trigger; a
    /// panic's best effort) to an OpenTelemetry receiver as OTLP spans (feature `otlp`), from
    /// an exporter thread of its own: see [`OtlpConfig`](crate::OtlpConfig) and the guide.
    /// Manual dumps and HTTP snapshots are not sent;
    /// [`FlightRecorder::export_otlp_now`](crate::FlightRecorder::export_otlp_now) sends one
    /// on demand.
    #[cfg(feature = "otlp")]
    #[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
    pub fn export_otlp(mut self, config: crate::OtlpConfig) -> Self {
        self.config.dumps.otlp = Some(config);
        self
    }

    /// Whether triggered dumps are written as files (default `true`). Turning files off makes
    /// sense only with [`export_otlp`](Self::export_otlp), which `build` then requires.
    pub fn write_dump_files(mut self, on: bool) -> Self {
        self.config.dumps.files = on;
        self
    }

    /// Writes dump files gzipped, as `.json.gz` (Perfetto opens them as they are).
    #[cfg(feature = "gzip")]
    #[cfg_attr(docsrs, doc(cfg(feature = "gzip")))]
    pub fn gzip(mut self, on: bool) -> Self {
        self.config.dumps.gzip = on;
        self
    }

    /// Permissions of dump files (unix; default `0o600`: a dump holds whatever spans and
    /// events record).
    #[cfg(unix)]
    pub fn dump_file_mode(mut self, mode: u32) -> Self {
        self.config.dumps.modes.file = mode;
        self
    }

    /// Permissions of the directories created for dumps (unix; default `0o700`). A directory
    /// that already exists keeps its own.
    #[cfg(unix)]
    pub fn dump_dir_mode(mut self, mode: u32) -> Self {
        self.config.dumps.modes.dir = mode;
        self
    }

    /// Calls `callback` after every dump file, written or failed: path, bytes, reason, time
    /// taken and error. Triggered dumps call it on the dump thread; keep it short.
    pub fn on_dump(mut self, callback: impl Fn(&DumpOutcome) + Send + Sync + 'static) -> Self {
        self.config.dumps.on_dump = Some(Arc::new(callback));
        self
    }

    /// Replaces the list of field names whose values are recorded as `[REDACTED]` (default:
    /// [`DEFAULT_REDACTED_FIELDS`](crate::DEFAULT_REDACTED_FIELDS)); an empty list turns
    /// redaction off. Redaction happens at record time, in events, span fields and
    /// `record()` updates alike, whatever the value's form (`?`, `%`, plain): the secret never
    /// enters the buffer. It does not look into message text or other fields' values, and does
    /// nothing for other layers (a `fmt` layer beside this one still prints the value).
    pub fn redact_fields<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let case_sensitive = self.config.record.redaction.case_sensitive();
        self.config.record.redaction =
            Redaction::new(names.into_iter().map(Into::into), case_sensitive);
        self
    }

    /// Adds one field name to redact, keeping the others.
    pub fn redact_field(mut self, name: impl Into<String>) -> Self {
        self.config.record.redaction.add(name.into());
        self
    }

    /// Compare redacted names exactly (default: without regard to ASCII case).
    pub fn redact_case_sensitive(mut self, on: bool) -> Self {
        self.config.record.redaction.set_case_sensitive(on);
        self
    }

    /// The clock records are timed with (default: `quanta::Clock::new()`, the TSC where it is
    /// invariant). For tests that fast-forward time with `quanta::Clock::mock()`; not part of
    /// the stable API.
    #[doc(hidden)]
    pub fn clock(mut self, clock: quanta::Clock) -> Self {
        self.config.record.clock = Some(clock);
        self
    }

    /// Whether the recorder exists at all (default `true`). A disabled recorder's layer
    /// records nothing and costs close to nothing; it installs no hook or signal handler, and
    /// [`FlightRecorder::start`] does not wake it. Meant for `BLACKBOX=0`.
    pub fn enabled(mut self, on: bool) -> Self {
        self.config.record.enabled = on;
        self
    }

    /// Applies the `BLACKBOX_*` environment variables over what was set before in the chain
    /// (setters after it win); unset variables change nothing. A bad value is reported by
    /// [`build`](Self::build), naming the variable and the value.
    ///
    /// | variable | values | effect |
    /// |---|---|---|
    /// | `BLACKBOX` | `1`/`true`/`on`, `0`/`false`/`off` | [`enabled`](Self::enabled) |
    /// | `BLACKBOX_DIR` | path | [`dump_dir`](Self::dump_dir) |
    /// | `BLACKBOX_MAX_BYTES` | `10MiB`, `512KiB`, `1GiB`, plain bytes | [`max_bytes`](Self::max_bytes) |
    /// | `BLACKBOX_MIN_AGE` | `10s`, `500ms`, `2m` | [`min_age`](Self::min_age) |
    /// | `BLACKBOX_SLOW_MS` | integer | [`dump_on_slow_span`](Self::dump_on_slow_span) |
    /// | `BLACKBOX_COOLDOWN` | duration as above, `0` = off | [`cooldown`](Self::cooldown) |
    /// | `BLACKBOX_KEEP` | integer | [`keep_files`](Self::keep_files) |
    /// | `BLACKBOX_GZIP` | on/off | `gzip` (feature `gzip`) |
    /// | `BLACKBOX_CRASH_DIR` | a directory, `on` (the default one), `off` | `crash_safe` (feature `crash`) |
    pub fn with_env(self) -> Self {
        self.with_env_from(|name| std::env::var(name).ok())
    }

    /// [`with_env`](Self::with_env) with the variables from `lookup` instead of the process
    /// environment: for tests, or configuration read from elsewhere.
    pub fn with_env_from(mut self, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut config = self.config.clone();
        match crate::env::apply(&mut config, lookup) {
            Ok(()) => self.config = config,
            Err(err) => {
                self.env_error.get_or_insert(err);
            }
        }
        self
    }

    /// Checks the configuration and creates the layer and its handle.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] naming the setting or environment variable that is out of range, or
    /// why the dump thread or the signal handler could not start.
    pub fn build(self) -> Result<(FlightRecorderLayer, FlightRecorder), BuildError> {
        if let Some(err) = self.env_error {
            return Err(err);
        }
        let config = self.config;
        check(&config)?;
        let enabled = config.record.enabled;
        #[cfg(feature = "crash")]
        let crash_dir = config.record.crash_dir.clone().filter(|_| enabled);
        let recording =
            Arc::new(
                Recording::new(config.record).map_err(|e| BuildError::CrashFile {
                    message: e.to_string(),
                })?,
            );
        #[cfg(feature = "crash")]
        let startup = crash_dir.map(|crash_dir| crate::recover::startup::Startup {
            crash_dir,
            own_file: recording
                .storage
                .crash_store()
                .map(|store| store.path().to_owned())
                .unwrap_or_default(),
            dump_dir: config.dumps.dir.clone(),
            gzip: config.dumps.gzip,
            recover: config.crash.recover_on_start,
            keep_files: config.crash.keep_files,
        });
        let dumper = Arc::new(
            Dumper::new(config.dumps, recording.timebase.clone()).map_err(|e| {
                BuildError::DumpThread {
                    message: e.to_string(),
                }
            })?,
        );
        #[cfg(feature = "crash")]
        if let Some(startup) = startup {
            let reports = Arc::clone(&dumper);
            crate::recover::startup::spawn(startup, move |outcome| reports.report(&outcome));
        }
        let triggers = Arc::new(Triggers::new(
            Arc::clone(&recording),
            dumper,
            &config.triggers,
        ));
        #[cfg(all(unix, feature = "signal"))]
        if config.dump_on_signal && enabled {
            crate::trigger::signal::install(&triggers).map_err(|e| BuildError::Signal {
                message: e.to_string(),
            })?;
        }
        if config.dump_on_panic && enabled {
            crate::trigger::panic::install(&triggers);
        }
        // The layer calls the triggers only when it has something to report.
        let reports = recording.error_level.is_some() || recording.slow.is_some();
        #[cfg(feature = "tokio")]
        let reports = reports || recording.tasks.is_some();
        let hooks = reports.then(|| Arc::clone(&triggers) as Arc<dyn TriggerHooks>);
        Ok((
            FlightRecorderLayer::new(Arc::clone(&recording), hooks),
            FlightRecorder::new(recording, triggers),
        ))
    }
}
