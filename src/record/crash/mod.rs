//! The crash-safe store (feature `crash`): chunks kept in a file-backed shared mapping that
//! outlives the process, so SIGKILL, an OOM kill, `abort` or a segfault do not lose them; and
//! reading such a file back in another process. See `docs/format.md` for the file layout.

pub(crate) mod callsites;
mod format;
mod process;
mod read;
mod registry;
mod store;

pub(crate) use format::{exe_label, file_prefix};
pub(crate) use process::{ThisProcess, is_alive};
pub use read::CrashFileError;
pub(crate) use read::{CrashFile, RawChunk, read};
pub(crate) use store::{CrashFileConfig, CrashStore, MappedBlock};

/// Where crash files go unless told otherwise: `/dev/shm` (memory; survives the process, not
/// a reboot) where it exists, else the temporary directory.
pub fn default_crash_dir() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}
