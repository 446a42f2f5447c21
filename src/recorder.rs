//! The handle: snapshots and dumps.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;

use crate::builder::Builder;
use crate::chrome::{self, DumpContext};
use crate::error::{DumpError, DumpStage};
use crate::snapshot::{Capture, Snapshot, Timebase};
use crate::storage::{Storage, StorageLimits, ThreadBuffer, lock};

/// What the builder decided.
pub(crate) struct Settings {
    pub(crate) max_bytes: usize,
    pub(crate) min_age: Duration,
    pub(crate) chunk_bytes: usize,
    pub(crate) max_field_bytes: usize,
    pub(crate) recording: bool,
}

/// State shared by the layer and every handle.
pub(crate) struct Shared {
    pub(crate) id: u64,
    pub(crate) storage: Storage,
    pub(crate) timebase: Timebase,
    pub(crate) max_field_bytes: usize,
    recording: AtomicBool,
    dropped: AtomicU64,
    /// Serializes dumps: one encodes at a time, the next waits.
    dump_lock: Mutex<()>,
}

impl Shared {
    pub(crate) fn new(settings: Settings) -> Shared {
        static NEXT_RECORDER: AtomicU64 = AtomicU64::new(1);
        let clock = quanta::Clock::new();
        let anchor_wall = Utc::now();
        let anchor_raw = clock.raw();
        Shared {
            id: NEXT_RECORDER.fetch_add(1, Ordering::Relaxed),
            storage: Storage::new(StorageLimits {
                max_bytes: settings.max_bytes,
                chunk_bytes: settings.chunk_bytes,
                min_age_nanos: u64::try_from(settings.min_age.as_nanos()).unwrap_or(u64::MAX),
            }),
            timebase: Timebase {
                clock,
                anchor_raw,
                anchor_wall,
                max_bytes: settings.max_bytes,
                min_age: settings.min_age,
            },
            max_field_bytes: settings.max_field_bytes,
            recording: AtomicBool::new(settings.recording),
            dropped: AtomicU64::new(0),
            dump_lock: Mutex::new(()),
        }
    }

    #[inline]
    pub(crate) fn is_recording(&self) -> bool {
        self.recording.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.timebase.clock.raw()
    }

    pub(crate) fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn append(&self, buffer: &ThreadBuffer, record: &[u8], ts: u64) {
        if buffer.try_append(record, ts) {
            return;
        }
        let appended = self
            .storage
            .append_slow(buffer, record, ts, self.now(), |from, to| {
                self.timebase.clock.delta_as_nanos(from, to)
            });
        if !appended {
            self.count_dropped();
        }
    }

    /// Copies the chunks and counters now; decoding comes later, on whichever thread dumps.
    pub(crate) fn capture(&self) -> Capture {
        let raw = self.storage.snapshot();
        Capture {
            raw,
            end_raw: self.now(),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot::decode(&self.timebase, self.capture())
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Threads may outlive the recorder and still hold their buffers: free the chunks now.
        self.storage.release_all();
    }
}

/// Where a dump went and how large it is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DumpInfo {
    /// The file written.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
}

/// The handle of a flight recorder: takes snapshots and writes dumps.
///
/// Cheap to clone, `Send + Sync`, and independent of the subscriber: it keeps working after
/// the subscriber is dropped, and what was recorded before still dumps.
#[derive(Clone)]
pub struct FlightRecorder {
    shared: Arc<Shared>,
}

impl fmt::Debug for FlightRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlightRecorder")
            .field("id", &self.shared.id)
            .field("recording", &self.is_recording())
            .field("max_bytes", &self.shared.storage.limits().max_bytes)
            .field("min_age", &self.shared.timebase.min_age)
            .finish_non_exhaustive()
    }
}

impl FlightRecorder {
    /// Starts configuring a recorder.
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        FlightRecorder { shared }
    }

    /// The recorded past, decoded: every retained record in time order, with the recorder's
    /// own span ids. For tests and tools; dumps use the same data.
    pub fn snapshot(&self) -> Snapshot {
        self.shared.snapshot()
    }

    /// Writes the recent past as Chrome Trace Event JSON; returns the bytes written.
    ///
    /// Recording threads never wait for this: each thread's buffer is locked only long enough
    /// to copy it. Concurrent dumps are serialized; the second waits for the first.
    pub fn write_to<W: Write>(&self, writer: W) -> io::Result<u64> {
        self.write_with(writer, &DumpContext::manual())
    }

    pub(crate) fn write_with<W: Write>(&self, writer: W, context: &DumpContext) -> io::Result<u64> {
        let _serialized = lock(&self.shared.dump_lock);
        let snapshot = self.shared.snapshot();
        chrome::write(&snapshot, context, writer)
    }

    /// Writes a dump to `path`, atomically: the trace goes to a temporary file beside it
    /// (whose name does not end in `.json`), which is renamed into place once complete.
    /// Missing directories are created. On failure nothing is left behind and recording goes
    /// on. An existing file at `path` is replaced.
    pub fn dump_to_file(&self, path: impl AsRef<Path>) -> Result<DumpInfo, DumpError> {
        let path = path.as_ref();
        let mut file = self.write_temp(path, &DumpContext::manual())?;
        file.bytes.persist(path).map_err(|e| {
            // Dropping the returned temp file removes it.
            DumpError::new(DumpStage::Persist, path, e.error)
        })?;
        Ok(DumpInfo {
            path: path.to_owned(),
            bytes: std::mem::take(&mut file.len),
        })
    }

    /// Writes a dump into `dir` under a new name, `<label>_<UTC time>_<seq>.json` (for example
    /// `slow_span_worker_20261126T121914.123Z_1.json`), never replacing a file. The label is
    /// reduced to `[A-Za-z0-9._-]` and at most 64 characters, so it cannot leave `dir`.
    pub fn dump_to_dir(&self, dir: impl AsRef<Path>, label: &str) -> Result<DumpInfo, DumpError> {
        let dir = dir.as_ref();
        let label = sanitize_label(label);
        let stamp = Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let file = self.write_temp(&dir.join(format!("{label}.json")), &DumpContext::manual())?;
        let mut temp = file.bytes;
        loop {
            let seq = next_dump_seq();
            let path = dir.join(format!("{label}_{stamp}_{seq}.json"));
            match temp.persist_noclobber(&path) {
                Ok(_) => {
                    return Ok(DumpInfo {
                        path,
                        bytes: file.len,
                    });
                }
                Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => temp = e.file,
                Err(e) => return Err(DumpError::new(DumpStage::Persist, path, e.error)),
            }
        }
    }

    /// Encodes a dump into a temporary file in `path`'s directory.
    fn write_temp(&self, path: &Path, context: &DumpContext) -> Result<TempDump, DumpError> {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        fs::create_dir_all(dir).map_err(|e| DumpError::new(DumpStage::CreateDir, dir, e))?;
        let stem = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut temp = tempfile::Builder::new()
            .prefix(&format!(".{stem}."))
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| DumpError::new(DumpStage::CreateTemp, path, e))?;
        let len = self
            .write_with(&mut temp, context)
            .and_then(|len| temp.as_file().sync_all().map(|()| len))
            .map_err(|e| DumpError::new(DumpStage::Write, path, e))?;
        Ok(TempDump { bytes: temp, len })
    }

    /// Stops recording. The buffer is kept: a dump after `stop` still shows the past.
    pub fn stop(&self) {
        self.shared.recording.store(false, Ordering::Relaxed);
    }

    /// Resumes recording after [`stop`](Self::stop).
    pub fn start(&self) {
        self.shared.recording.store(true, Ordering::Relaxed);
    }

    /// Whether the recorder is recording now.
    pub fn is_recording(&self) -> bool {
        self.shared.is_recording()
    }

    /// Record storage allocated now, in bytes; never more than `max_bytes`.
    pub fn allocated_bytes(&self) -> usize {
        self.shared.storage.allocated_bytes()
    }
}

struct TempDump {
    bytes: tempfile::NamedTempFile,
    len: u64,
}

fn next_dump_seq() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Reduces a label to `[A-Za-z0-9._-]`, at most 64 characters, never empty and never
/// starting with a dot.
pub(crate) fn sanitize_label(label: &str) -> String {
    let clean: String = label
        .trim_start_matches('.')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if clean.is_empty() {
        "dump".to_owned()
    } else {
        clean
    }
}
