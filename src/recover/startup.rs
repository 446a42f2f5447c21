//! On start, in the background: dumps of the crash files this executable's dead runs left,
//! and the limit on how many such files may stay.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{RecoverOptions, list, recover_file};
use crate::dump::outcome::{Destination, DumpOutcome};
use crate::record::crash::{self, ThisProcess};

/// What the start-up pass is told.
pub(crate) struct Startup {
    pub(crate) crash_dir: PathBuf,
    /// This process's own file, never touched.
    pub(crate) own_file: PathBuf,
    pub(crate) dump_dir: PathBuf,
    pub(crate) gzip: bool,
    /// Whether to write dumps of dead runs' files (else only the limit applies).
    pub(crate) recover: bool,
    /// Most leftover files kept (of processes still running or that could not be recovered).
    pub(crate) keep_files: usize,
}

/// Runs the pass on a thread of its own (recording nothing), reporting each dump.
pub(crate) fn spawn(startup: Startup, report: impl Fn(DumpOutcome) + Send + 'static) {
    let _ = std::thread::Builder::new()
        .name("blackbox-recover".into())
        .spawn(move || {
            crate::sync::quietly(|| run(&startup, &report));
        });
}

/// Recovers the dead runs' files, oldest first, then removes the oldest leftovers beyond
/// `keep_files` (files of running processes are never removed).
pub(crate) fn run(startup: &Startup, report: &dyn Fn(DumpOutcome)) {
    let prefix = crash::file_prefix(&crash::exe_label(&ThisProcess::get().exe));
    let Ok(files) = list(&startup.crash_dir, &prefix) else {
        return;
    };
    let options = RecoverOptions::new()
        .dump_dir(&startup.dump_dir)
        .gzip(startup.gzip);
    let mut left = Vec::new();
    for file in files.into_iter().filter(|file| *file != startup.own_file) {
        if !startup.recover {
            left.push(file);
            continue;
        }
        let started = Instant::now();
        match recover_file(&file, &options) {
            Ok(recovery) => report(DumpOutcome {
                reason: "crash".to_owned(),
                path: recovery.dump.path.clone(),
                bytes: recovery.dump.bytes,
                took: started.elapsed(),
                error: None,
                slow_span: None,
                destination: Destination::File,
            }),
            Err(super::RecoverError::Write(error)) => {
                report(DumpOutcome {
                    reason: "crash".to_owned(),
                    path: error.path().to_owned(),
                    bytes: 0,
                    took: started.elapsed(),
                    error: Some(error),
                    slow_span: None,
                    destination: Destination::File,
                });
                left.push(file);
            }
            Err(_) => left.push(file),
        }
    }
    let removable: Vec<&PathBuf> = left.iter().filter(|file| !is_running(file)).collect();
    let excess = left.len().saturating_sub(startup.keep_files);
    for file in removable.into_iter().take(excess) {
        let _ = std::fs::remove_file(file);
    }
}

/// Whether the file's name says its process is still running.
fn is_running(file: &Path) -> bool {
    let Some(name) = file
        .file_stem()
        .map(|name| name.to_string_lossy().into_owned())
    else {
        return false;
    };
    // blackbox-<exe>-<pid>-<start time>: the exe label has no '-'.
    let mut parts = name.rsplitn(3, '-');
    let start = parts.next().and_then(|s| s.parse().ok());
    let pid = parts.next().and_then(|s| s.parse().ok());
    match (pid, start) {
        (Some(pid), Some(start)) => crash::is_alive(pid, start),
        _ => false,
    }
}
