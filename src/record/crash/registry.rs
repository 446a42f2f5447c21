//! The crash files this process has open, removed when it exits normally (`exit`, or `main`
//! returning), since a global subscriber is never dropped. A process that dies any other way
//! leaves its file for `blackbox recover`.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

static OPEN_FILES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes `path` when the process exits normally.
pub(crate) fn remove_at_exit(path: &Path) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // SAFETY: registers a plain `extern "C"` function with no arguments; it only touches
        // a static.
        unsafe {
            libc::atexit(remove_open_files);
        }
    });
    if let Ok(mut files) = OPEN_FILES.lock() {
        files.push(path.to_owned());
    }
}

/// The file was removed already (the recorder went away).
pub(crate) fn forget(path: &Path) {
    if let Ok(mut files) = OPEN_FILES.lock() {
        files.retain(|open| open != path);
    }
}

extern "C" fn remove_open_files() {
    // `try_lock`: an exit from inside a locked section must not hang.
    if let Ok(files) = OPEN_FILES.try_lock() {
        for path in files.iter() {
            let _ = std::fs::remove_file(path);
        }
    }
}
