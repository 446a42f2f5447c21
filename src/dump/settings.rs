//! What the builder sets for dumps: where they go (files, an OTLP receiver), how many may
//! wait, retention, the callback, file modes.

use std::fmt;
use std::path::PathBuf;

use crate::atomic::FileModes;
use crate::dump::callback::OnDump;
#[cfg(feature = "otlp")]
use crate::dump::otlp::OtlpConfig;

/// Default directory for triggered dumps.
pub(crate) const DEFAULT_DUMP_DIR: &str = "blackbox-dumps";
/// Default number of triggered dumps that may wait for the dump thread.
pub(crate) const DEFAULT_QUEUE_CAPACITY: usize = 16;
/// Dump settings from the builder.
#[derive(Clone)]
pub(crate) struct DumpConfig {
    pub(crate) dir: PathBuf,
    pub(crate) queue_capacity: usize,
    pub(crate) keep_files: Option<usize>,
    pub(crate) keep_bytes: Option<u64>,
    pub(crate) gzip: bool,
    pub(crate) on_dump: Option<OnDump>,
    pub(crate) modes: FileModes,
    /// Triggered dumps are written as files (off only when they are exported instead).
    pub(crate) files: bool,
    #[cfg(feature = "otlp")]
    pub(crate) otlp: Option<OtlpConfig>,
}

impl fmt::Debug for DumpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DumpConfig")
            .field("dir", &self.dir)
            .field("queue_capacity", &self.queue_capacity)
            .field("keep_files", &self.keep_files)
            .field("keep_bytes", &self.keep_bytes)
            .field("gzip", &self.gzip)
            .field("on_dump", &self.on_dump.is_some())
            .field("modes", &self.modes)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl Default for DumpConfig {
    fn default() -> Self {
        DumpConfig {
            dir: PathBuf::from(DEFAULT_DUMP_DIR),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            keep_files: None,
            keep_bytes: None,
            gzip: false,
            on_dump: None,
            modes: FileModes::default(),
            files: true,
            #[cfg(feature = "otlp")]
            otlp: None,
        }
    }
}
