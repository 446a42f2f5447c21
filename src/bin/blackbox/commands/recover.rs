//! `blackbox recover`: turns the crash files dead processes left into dumps.

use std::io::Write;
use std::path::{Path, PathBuf};

use tracing_blackbox::recover::{self, RecoverOptions};

use crate::Failure;

/// What `recover` is asked to do.
pub(crate) struct Request {
    pub(crate) target: PathBuf,
    pub(crate) output: Option<PathBuf>,
    pub(crate) dump_dir: PathBuf,
    pub(crate) force: bool,
    pub(crate) keep: bool,
}

/// Recovers one file, or every crash file in a directory; fails if any could not be.
pub(crate) fn recover(request: &Request) -> Result<(), Failure> {
    let files = if request.target.is_dir() {
        if request.output.is_some() {
            return Err(Failure::Recover(
                "-o names one dump: give a file, not a directory".to_owned(),
            ));
        }
        recover::crash_files(&request.target)
            .map_err(|e| Failure::Recover(format!("{}: {e}", request.target.display())))?
    } else {
        vec![request.target.clone()]
    };
    let mut options = RecoverOptions::new()
        .dump_dir(&request.dump_dir)
        .force(request.force)
        .keep_file(request.keep);
    if let Some(output) = &request.output {
        options = options.output(output);
    }
    let mut failures = Vec::new();
    let mut stdout = std::io::stdout().lock();
    for file in &files {
        match recover::recover_file(file, &options) {
            Ok(recovery) => {
                writeln!(
                    stdout,
                    "{} -> {} (pid {}, {} records, {} threads{})",
                    file.display(),
                    recovery.dump.path.display(),
                    recovery.pid,
                    recovery.records,
                    recovery.threads,
                    if recovery.removed {
                        "; file removed"
                    } else {
                        ""
                    }
                )?;
                for warning in &recovery.warnings {
                    writeln!(stdout, "  warning: {warning}")?;
                }
            }
            Err(error) => failures.push(error.to_string()),
        }
    }
    if files.is_empty() {
        writeln!(stdout, "no crash files in {}", display(&request.target))?;
    }
    match failures.is_empty() {
        true => Ok(()),
        false => Err(Failure::Recover(failures.join("\n"))),
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
