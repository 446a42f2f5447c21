//! Errors of the builder and of dumps.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Largest accepted `max_field_len` (see [`Builder::MAX_FIELD_LEN_LIMIT`](crate::Builder::MAX_FIELD_LEN_LIMIT)):
/// defined here, beside the error that names it, so that this module needs no other.
pub(crate) const MAX_FIELD_LEN_LIMIT: usize = 4096;

/// Why [`Builder::build`](crate::Builder::build) refused a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// `max_bytes` is below [`Builder::MIN_MAX_BYTES`](crate::Builder::MIN_MAX_BYTES).
    MaxBytesTooSmall {
        /// The value given.
        given: usize,
        /// The smallest accepted value.
        min: usize,
    },
    /// `max_bytes` is above [`Builder::MAX_MAX_BYTES`](crate::Builder::MAX_MAX_BYTES).
    MaxBytesTooLarge {
        /// The value given.
        given: usize,
        /// The largest accepted value.
        max: usize,
    },
    /// `min_age` is zero or longer than a year.
    InvalidMinAge {
        /// The value given.
        given: Duration,
    },
    /// `max_field_len` is zero or above [`Builder::MAX_FIELD_LEN_LIMIT`](crate::Builder::MAX_FIELD_LEN_LIMIT).
    InvalidMaxFieldLen {
        /// The value given.
        given: usize,
    },
    /// A count that must be at least one was zero.
    Zero {
        /// The builder setting.
        setting: &'static str,
    },
    /// An environment variable read by [`with_env`](crate::Builder::with_env) has a value that
    /// does not parse.
    Env {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// What it should look like.
        expected: String,
    },
    /// The SIGUSR1 handler could not be installed.
    Signal {
        /// Why.
        message: String,
    },
    /// The OTLP export cannot work as configured (feature `otlp`): the endpoint is not an
    /// http(s) URL, a count is zero, or dump files are off with nothing else to send dumps to.
    Export {
        /// Why.
        message: String,
    },
    /// The dump thread could not be started.
    DumpThread {
        /// Why.
        message: String,
    },
    /// The crash file could not be created (feature `crash`): the directory is missing and
    /// cannot be made, is not writable, or has no room.
    CrashFile {
        /// Why, naming the directory.
        message: String,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::MaxBytesTooSmall { given, min } => write!(
                f,
                "max_bytes is {given} bytes; the flight recorder needs at least {min} bytes"
            ),
            BuildError::MaxBytesTooLarge { given, max } => write!(
                f,
                "max_bytes is {given} bytes; at most {max} bytes of record storage are supported"
            ),
            BuildError::InvalidMinAge { given } => write!(
                f,
                "min_age is {given:?}; it must be more than zero and at most a year"
            ),
            BuildError::InvalidMaxFieldLen { given } => write!(
                f,
                "max_field_len is {given} bytes; it must be between 1 and {}",
                MAX_FIELD_LEN_LIMIT
            ),
            BuildError::Zero { setting } => write!(f, "{setting} must be at least 1"),
            BuildError::Env {
                variable,
                value,
                expected,
            } => write!(f, "{variable}={value:?} is not valid: expected {expected}"),
            BuildError::Signal { message } => {
                write!(f, "cannot install the SIGUSR1 handler: {message}")
            }
            BuildError::DumpThread { message } => {
                write!(f, "cannot start the dump thread: {message}")
            }
            BuildError::CrashFile { message } => {
                write!(f, "cannot create the crash file: {message}")
            }
            BuildError::Export { message } => f.write_str(message),
        }
    }
}

impl std::error::Error for BuildError {}

/// What a dump was doing when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DumpStage {
    /// Creating the directory the dump goes into.
    CreateDir,
    /// Creating the temporary file next to the destination.
    CreateTemp,
    /// Encoding and writing the trace.
    Write,
    /// Renaming the finished file into place.
    Persist,
    /// The dump was written, but the `on_dump` callback panicked (the error says how); the
    /// path is the dump's.
    Callback,
    /// The window could not be sent to the OTLP receiver (feature `otlp`); the path is the
    /// receiver's URL, the error says what it answered or why there was no answer.
    Export,
}

impl fmt::Display for DumpStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DumpStage::CreateDir => "cannot create the dump directory",
            DumpStage::CreateTemp => "cannot create a temporary file",
            DumpStage::Write => "cannot write the trace",
            DumpStage::Persist => "cannot move the finished dump into place",
            DumpStage::Callback => "the dump was written, but its on_dump callback failed",
            DumpStage::Export => "cannot export the window to the OTLP receiver",
        })
    }
}

/// A dump that could not be written. Nothing is left behind: no temporary file, no partial
/// dump; recording goes on.
#[derive(Debug, Clone)]
pub struct DumpError {
    stage: DumpStage,
    path: PathBuf,
    source: Arc<io::Error>,
}

impl DumpError {
    pub(crate) fn new(stage: DumpStage, path: impl Into<PathBuf>, source: io::Error) -> Self {
        DumpError {
            stage,
            path: path.into(),
            source: Arc::new(source),
        }
    }

    /// The step that failed.
    pub fn stage(&self) -> DumpStage {
        self.stage
    }

    /// The path the dump was meant for (or the directory, when that could not be created).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying I/O error.
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }
}

impl fmt::Display for DumpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.stage,
            self.path.display(),
            self.source
        )
    }
}

impl std::error::Error for DumpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}
