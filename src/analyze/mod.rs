//! Reading dumps back (feature `cli`): a streaming reader of Chrome Trace Event JSON — this
//! crate's dumps, plain or gzipped, or any tool's trace made of `X`/`B`/`E` events — for the
//! `blackbox` command and for tools.
//!
//! Events are handed over one at a time while the file is parsed, so memory stays far below
//! the file's size whatever its length.
//!
//! ```no_run
//! let mut slices = 0;
//! let trace = tracing_blackbox::analyze::read_events("trace.json", |event| {
//!     if event.ph == "X" {
//!         slices += 1;
//!     }
//! })?;
//! println!("{slices} slices, reason {:?}", trace.reason());
//! # Ok::<(), tracing_blackbox::analyze::LoadError>(())
//! ```

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

#[cfg(feature = "otlp")]
mod otlp;
#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
pub use otlp::{ExportError, export_otlp};

use crate::atomic::{FileModes, write_file};
use crate::error::DumpError;
use crate::validate::nanos;

/// One event of a trace, as read.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct TraceEvent {
    /// Phase: `X`, `B`, `E`, `b`, `e`, `i`, `M`, `s`, `t`, `f`, ….
    pub ph: String,
    /// Name (empty when absent).
    pub name: String,
    /// Category (empty when absent).
    pub cat: String,
    /// Process id (0 when absent).
    pub pid: i64,
    /// Thread id (0 when absent).
    pub tid: i64,
    /// Timestamp in nanoseconds (the file's microseconds × 1000, rounded).
    pub ts_ns: i64,
    /// Duration of an `X` slice, in nanoseconds.
    pub dur_ns: Option<i64>,
    /// The id of async and flow events, as written (`"0x1f"`, `31`).
    pub id: Option<String>,
    /// The `args` object (`Value::Null` when absent).
    pub args: Value,
}

impl TraceEvent {
    /// A string in `args` (`args.level`, `args.message`, …).
    pub fn arg_str(&self, key: &str) -> Option<&str> {
        self.args.get(key).and_then(Value::as_str)
    }
}

/// What the whole file said besides its events.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TraceInfo {
    /// `otherData`, when present (this crate's dumps always have it).
    pub other_data: Option<Value>,
    /// Events read.
    pub events: u64,
    /// Whether the file was gzipped.
    pub gzipped: bool,
}

impl TraceInfo {
    /// `otherData.reason`.
    pub fn reason(&self) -> Option<&str> {
        self.other(|o| o.get("reason")?.as_str())
    }

    /// A number in `otherData`.
    pub fn counter(&self, key: &str) -> Option<u64> {
        self.other(|o| o.get(key)?.as_u64())
    }

    fn other<'a, T: 'a>(&'a self, f: impl FnOnce(&'a Value) -> Option<T>) -> Option<T> {
        self.other_data.as_ref().and_then(f)
    }
}

/// A file that cannot be read as a trace.
#[derive(Debug)]
pub struct LoadError {
    path: PathBuf,
    problem: String,
    source: Option<io::Error>,
}

impl LoadError {
    /// An error about `path`: `problem` says what is wrong with it.
    pub fn new(path: &Path, problem: impl Into<String>) -> Self {
        LoadError {
            path: path.to_owned(),
            problem: problem.into(),
            source: None,
        }
    }

    /// An error about `path` caused by an I/O error, kept as the [`source`](std::error::Error::source).
    pub fn io(path: &Path, doing: &str, source: io::Error) -> Self {
        LoadError {
            path: path.to_owned(),
            problem: format!("{doing}: {source}"),
            source: Some(source),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.problem)
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Writes `path` so that it is complete or absent, as the recorder writes its dumps: into a
/// temporary file beside it, synced, renamed into place; gzipped if the name ends in `.gz`;
/// readable by its owner only. Returns the bytes written (after compression).
///
/// # Errors
///
/// A [`DumpError`] saying which step failed (creating the directory or the temporary file,
/// writing — including an error `write` returns —, moving it into place); nothing is left
/// behind.
pub fn write_atomically(
    path: impl AsRef<Path>,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<u64, DumpError> {
    write_file(path.as_ref(), FileModes::default(), write)
}

/// Opens `path` — gzipped or not, told by its first bytes — for reading.
///
/// # Errors
///
/// A [`LoadError`] when the file cannot be opened or read.
pub fn open(path: impl AsRef<Path>) -> Result<(Box<dyn Read>, bool), LoadError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| LoadError::io(path, "cannot open", e))?;
    decode(file).map_err(|e| LoadError::io(path, "cannot read", e))
}

/// Wraps `reader` so it yields JSON: gunzipped if it starts like a gzip stream. Returns
/// whether it was gzipped.
///
/// # Errors
///
/// The reader's error while looking at the first bytes.
pub fn decode(reader: impl Read + 'static) -> io::Result<(Box<dyn Read>, bool)> {
    let mut reader = BufReader::with_capacity(256 << 10, reader);
    let gzipped = reader.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    if gzipped {
        Ok((
            Box::new(BufReader::new(flate2::bufread::MultiGzDecoder::new(reader))),
            true,
        ))
    } else {
        Ok((Box::new(reader), false))
    }
}

/// Parses the trace in `path`, calling `on_event` for every event in file order.
///
/// # Errors
///
/// A [`LoadError`]: the file cannot be read, or is not a trace (one line says why).
pub fn read_events(
    path: impl AsRef<Path>,
    on_event: impl FnMut(TraceEvent),
) -> Result<TraceInfo, LoadError> {
    let path = path.as_ref();
    let (reader, gzipped) = open(path)?;
    let mut info = read_from(reader, on_event).map_err(|problem| LoadError::new(path, problem))?;
    info.gzipped = gzipped;
    Ok(info)
}

/// [`read_events`] from any reader; the error is the problem, without a file name.
///
/// # Errors
///
/// What is wrong with the input, in one line.
pub fn read_from(
    reader: impl Read,
    mut on_event: impl FnMut(TraceEvent),
) -> Result<TraceInfo, String> {
    read_elements(reader, |raw: RawEvent| on_event(raw.into()))
}

/// [`read_from`] giving each event as it stands in the file, as JSON: for tools that check
/// events rather than read them (`blackbox validate` feeds them to
/// [`validate::Checker`](crate::validate::Checker)). One event in memory at a time.
///
/// # Errors
///
/// What is wrong with the input, in one line.
pub fn read_values(reader: impl Read, on_event: impl FnMut(Value)) -> Result<TraceInfo, String> {
    read_elements(reader, on_event)
}

fn read_elements<T: serde::de::DeserializeOwned>(
    reader: impl Read,
    mut on_event: impl FnMut(T),
) -> Result<TraceInfo, String> {
    let mut root = Root {
        on_event: &mut on_event,
        info: TraceInfo::default(),
        saw_events: false,
        element: std::marker::PhantomData,
    };
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    (&mut root)
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end())
        .map_err(|e| describe(&e))?;
    if !root.saw_events {
        return Err("JSON that is not a trace: no traceEvents array".to_owned());
    }
    Ok(root.info)
}

fn describe(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match error.classify() {
        Category::Io => format!("cannot read: {error}"),
        Category::Eof => format!("truncated: the JSON ends early ({error})"),
        Category::Syntax => format!("not valid JSON: {error}"),
        Category::Data => format!("JSON that is not a trace: {error}"),
    }
}

struct Root<'f, F, T> {
    on_event: &'f mut F,
    info: TraceInfo,
    saw_events: bool,
    element: std::marker::PhantomData<T>,
}

impl<'de, F: FnMut(T), T: serde::de::DeserializeOwned> DeserializeSeed<'de>
    for &mut Root<'_, F, T>
{
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, F: FnMut(T), T: serde::de::DeserializeOwned> Visitor<'de> for &mut Root<'_, F, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a trace: an object with traceEvents, or an array of events")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "traceEvents" => {
                    self.saw_events = true;
                    map.next_value_seed(Events {
                        on_event: &mut *self.on_event,
                        count: &mut self.info.events,
                        element: std::marker::PhantomData,
                    })?;
                }
                "otherData" => self.info.other_data = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        self.saw_events = true;
        Events {
            on_event: &mut *self.on_event,
            count: &mut self.info.events,
            element: std::marker::PhantomData,
        }
        .visit_seq(seq)
    }
}

struct Events<'f, F, T> {
    on_event: &'f mut F,
    count: &'f mut u64,
    element: std::marker::PhantomData<T>,
}

impl<'de, F: FnMut(T), T: serde::de::DeserializeOwned> DeserializeSeed<'de> for Events<'_, F, T> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(T), T: serde::de::DeserializeOwned> Visitor<'de> for Events<'_, F, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of trace events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(element) = seq.next_element::<T>()? {
            *self.count += 1;
            (self.on_event)(element);
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(default)]
    ph: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    cat: Option<String>,
    #[serde(default)]
    pid: Option<Value>,
    #[serde(default)]
    tid: Option<Value>,
    #[serde(default)]
    ts: Option<f64>,
    #[serde(default)]
    dur: Option<f64>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    args: Option<Value>,
}

fn integer(value: Option<Value>) -> i64 {
    match value {
        Some(Value::Number(n)) => n.as_i64().unwrap_or_default(),
        Some(Value::String(s)) => s.parse().unwrap_or_default(),
        _ => 0,
    }
}

impl From<RawEvent> for TraceEvent {
    fn from(raw: RawEvent) -> Self {
        TraceEvent {
            ph: raw.ph.unwrap_or_default(),
            name: raw.name.unwrap_or_default(),
            cat: raw.cat.unwrap_or_default(),
            pid: integer(raw.pid),
            tid: integer(raw.tid),
            ts_ns: raw.ts.map_or(0, nanos),
            dur_ns: raw.dur.map(nanos),
            id: raw.id.map(|id| match id {
                Value::String(s) => s,
                other => other.to_string(),
            }),
            args: raw.args.unwrap_or(Value::Null),
        }
    }
}
