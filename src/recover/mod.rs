//! After a crash (feature `crash`): turning the crash file a dead process left into a normal
//! dump.
//!
//! A recorder built with [`Builder::crash_safe`](crate::Builder::crash_safe) keeps its chunks
//! in a file-backed shared mapping (by default under `/dev/shm`), so they outlive the
//! process however it dies. [`recover_file`] reads such a file, writes a dump with reason
//! `crash` holding the last records of every thread, and removes the file once the dump is
//! written. The `blackbox recover` command does the same from the shell, and a crash-safe
//! recorder does it on start for files its executable's earlier runs left.
//!
//! ```no_run
//! use tracing_blackbox::recover::{self, RecoverOptions};
//!
//! for file in recover::crash_files(recover::default_crash_dir())? {
//!     match recover::recover_file(&file, &RecoverOptions::new().dump_dir("crash-dumps")) {
//!         Ok(recovery) => println!("{} -> {}", file.display(), recovery.dump.path.display()),
//!         Err(error) => eprintln!("{error}"),
//!     }
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

mod capture;
pub(crate) mod startup;

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::atomic::FileModes;
use crate::dump::chrome;
use crate::dump::context::{DumpContext, Reason};
use crate::dump::files::{self, DumpInfo};
use crate::error::DumpError;
use crate::record::crash;
use capture::Recovered;

pub use crate::record::crash::CrashFileError;

pub use crate::record::crash::default_crash_dir;

/// The crash files in `dir` (named `blackbox-<exe>-<pid>-<start time>.shm`), oldest first.
///
/// # Errors
///
/// `dir` cannot be listed.
pub fn crash_files(dir: impl AsRef<Path>) -> io::Result<Vec<PathBuf>> {
    list(dir.as_ref(), "blackbox-")
}

pub(crate) fn list(dir: &Path, prefix: &str) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.starts_with(prefix) && name.ends_with(".shm")
        })
        .filter_map(|entry| {
            let meta = entry.metadata().ok()?;
            meta.is_file().then(|| {
                (
                    meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                    entry.path(),
                )
            })
        })
        .collect();
    files.sort();
    Ok(files.into_iter().map(|(_, path)| path).collect())
}

/// How [`recover_file`] writes its dump.
#[derive(Debug, Clone)]
pub struct RecoverOptions {
    output: Option<PathBuf>,
    dump_dir: PathBuf,
    force: bool,
    keep_file: bool,
    gzip: bool,
}

impl Default for RecoverOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl RecoverOptions {
    /// Dumps go into `./blackbox-dumps` as `crash_<UTC time>_<seq>.json`; the crash file is
    /// removed once its dump is written; a file whose process still runs is refused.
    pub fn new() -> Self {
        RecoverOptions {
            output: None,
            dump_dir: PathBuf::from(crate::dump::settings::DEFAULT_DUMP_DIR),
            force: false,
            keep_file: false,
            gzip: false,
        }
    }

    /// Writes the dump to exactly `path` (replacing a file there; gzipped if it ends in `.gz`)
    /// instead of a new name in the dump directory.
    #[must_use]
    pub fn output(mut self, path: impl Into<PathBuf>) -> Self {
        self.output = Some(path.into());
        self
    }

    /// The directory dumps get new names in (default `./blackbox-dumps`).
    #[must_use]
    pub fn dump_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dump_dir = dir.into();
        self
    }

    /// Reads the file even if the process that writes it is still running (its newest
    /// records may be torn; they are left out and counted).
    #[must_use]
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// Leaves the crash file in place after its dump is written.
    #[must_use]
    pub fn keep_file(mut self, keep: bool) -> Self {
        self.keep_file = keep;
        self
    }

    /// Gzips dumps written into the dump directory (`.json.gz`; feature `gzip`).
    #[must_use]
    pub fn gzip(mut self, gzip: bool) -> Self {
        self.gzip = gzip;
        self
    }
}

/// What a recovery wrote and found.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Recovery {
    /// The crash file read.
    pub source: PathBuf,
    /// The dump written.
    pub dump: DumpInfo,
    /// The pid of the process that wrote the file.
    pub pid: u32,
    /// Its executable, as the file says.
    pub exe: String,
    /// Threads with records.
    pub threads: usize,
    /// Records in the dump.
    pub records: u64,
    /// What the dump warns about (also in its `otherData.warnings`): a record the process was
    /// writing when it died, records of callsites the file does not name, damaged chunks.
    pub warnings: Vec<String>,
    /// Whether the crash file was removed.
    pub removed: bool,
}

/// Why a crash file could not be recovered. The file is left in place.
#[derive(Debug)]
#[non_exhaustive]
pub enum RecoverError {
    /// The file could not be opened or read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is not a crash file this build reads.
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: CrashFileError,
    },
    /// The process that writes the file is still running (use `force` to read it anyway).
    StillRunning {
        /// The file.
        path: PathBuf,
        /// The process.
        pid: u32,
    },
    /// The dump could not be written.
    Write(DumpError),
}

impl fmt::Display for RecoverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoverError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            RecoverError::Format { path, source } => write!(f, "{}: {source}", path.display()),
            RecoverError::StillRunning { path, pid } => write!(
                f,
                "{}: process {pid} is still running (recover it with --force to read it anyway)",
                path.display()
            ),
            RecoverError::Write(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for RecoverError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RecoverError::Read { source, .. } => Some(source),
            RecoverError::Format { source, .. } => Some(source),
            RecoverError::StillRunning { .. } => None,
            RecoverError::Write(error) => Some(error),
        }
    }
}

/// Reads the crash file at `path`, writes its records as a dump (reason `crash`), and then
/// removes the file (unless told to keep it).
///
/// # Errors
///
/// A [`RecoverError`]: the file cannot be read, is not a crash file (or one of another
/// format version), belongs to a running process, or the dump cannot be written. The file is
/// left in place.
pub fn recover_file(
    path: impl AsRef<Path>,
    options: &RecoverOptions,
) -> Result<Recovery, RecoverError> {
    let path = path.as_ref();
    let read_error = |source| RecoverError::Read {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    // SAFETY: the file is a crash file whose writer has died (checked below before anything
    // is trusted, unless forced); nobody truncates crash files, and the bytes are only read
    // and checked, never trusted as references.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(read_error)?;
    let crash_file = crash::read(&map).map_err(|source| RecoverError::Format {
        path: path.to_owned(),
        source,
    })?;
    if !options.force && crash::is_alive(crash_file.pid, crash_file.start_time) {
        return Err(RecoverError::StillRunning {
            path: path.to_owned(),
            pid: crash_file.pid,
        });
    }
    let facts = Facts::of(&crash_file, path);
    let recovered = capture::recover(crash_file);
    drop(map);
    let (context, warnings) = facts.context(&recovered);
    let dump = write_dump(&recovered, &context, options)?;
    let removed = !options.keep_file && std::fs::remove_file(path).is_ok();
    let raw = &recovered.capture.raw;
    Ok(Recovery {
        source: path.to_owned(),
        dump,
        pid: facts.pid,
        exe: facts.exe,
        threads: raw
            .threads
            .iter()
            .filter(|thread| !thread.sealed.is_empty() || !thread.current.bytes().is_empty())
            .count(),
        records: raw.written - raw.overwritten,
        warnings,
        removed,
    })
}

fn write_dump(
    recovered: &Recovered,
    context: &DumpContext,
    options: &RecoverOptions,
) -> Result<DumpInfo, RecoverError> {
    let encode =
        |w: &mut dyn io::Write| chrome::write(&recovered.capture, &recovered.timebase, context, w);
    let modes = FileModes::default();
    match &options.output {
        Some(path) => files::write_file(path, modes, encode),
        None => files::write_new_file(
            &options.dump_dir,
            "crash",
            chrome::window_end(&recovered.capture, &recovered.timebase),
            options.gzip,
            modes,
            encode,
        ),
    }
    .map_err(RecoverError::Write)
}

/// What the file says of itself, kept for the dump's `otherData`.
struct Facts {
    pid: u32,
    exe: String,
    crate_version: String,
    source: PathBuf,
    torn_records: u64,
    bad_descriptors: u64,
    unmapped_chunks: u64,
    callsites_lost: u64,
    callsite_log_damaged: bool,
}

impl Facts {
    fn of(file: &crash::CrashFile, source: &Path) -> Facts {
        Facts {
            pid: file.pid,
            exe: file.exe.clone(),
            crate_version: file.crate_version.clone(),
            source: source.to_owned(),
            torn_records: file.torn_records,
            bad_descriptors: file.bad_descriptors,
            unmapped_chunks: file.unmapped_chunks,
            callsites_lost: file.callsites_lost,
            callsite_log_damaged: file.callsite_log_damaged,
        }
    }

    fn context(&self, recovered: &Recovered) -> (DumpContext, Vec<String>) {
        let mut warnings = Vec::new();
        if self.torn_records > 0 {
            warnings.push(format!(
                "the process was writing when it died: {} incomplete record(s) left out",
                self.torn_records
            ));
        }
        if recovered.unknown_callsites > 0 || self.callsites_lost > 0 || self.callsite_log_damaged {
            warnings.push(format!(
                "{} record(s) name a callsite the file does not describe (shown as \"unknown \
                 callsite\")",
                recovered.unknown_callsites
            ));
        }
        if recovered.damaged_chunks + self.bad_descriptors > 0 {
            warnings.push(format!(
                "{} chunk(s) damaged: cut at the first record that did not read",
                recovered.damaged_chunks + self.bad_descriptors
            ));
        }
        if self.unmapped_chunks > 0 {
            warnings.push(format!(
                "{} chunk(s) did not fit the file and were kept in memory only: lost",
                self.unmapped_chunks
            ));
        }
        let name = Path::new(&self.exe).file_stem().map_or_else(
            || "crashed process".to_owned(),
            |s| s.to_string_lossy().into_owned(),
        );
        let mut context = DumpContext::new(Reason::Crash);
        context.process = Some((self.pid, name));
        context.extra = vec![(
            "crash",
            json!({
                "pid": self.pid,
                "exe": self.exe,
                "written_by": self.crate_version,
                "file": self.source.display().to_string(),
                "torn_records": self.torn_records,
                "unknown_callsites": recovered.unknown_callsites,
                "damaged_chunks": recovered.damaged_chunks + self.bad_descriptors,
                "unmapped_chunks": self.unmapped_chunks,
            }),
        )];
        context.extra.push((
            "warnings",
            Value::Array(warnings.iter().cloned().map(Value::String).collect()),
        ));
        (context, warnings)
    }
}
