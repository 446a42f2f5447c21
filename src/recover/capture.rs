//! A crash file turned into a capture this process can encode: each callsite of the log
//! rebuilt as `&'static Metadata` (leaked: a handful per callsite, once per recovery), every
//! record's callsite address replaced with its rebuilt one, each thread's chunks in order.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tracing_core::callsite::{Callsite, Identifier};
use tracing_core::field::FieldSet;
use tracing_core::metadata::Kind;
use tracing_core::subscriber::Interest;
use tracing_core::{Level, Metadata};

use crate::dump::reader::RecordReader;
use crate::record::crash::callsites::CallsiteEntry;
use crate::record::crash::{CrashFile, RawChunk};
use crate::record::encode::{HEADER_BYTES, kind};
use crate::record::storage::{Chunk, StoredChunks, ThreadChunks, ThreadIdentity};
use crate::record::{Capture, Timebase};

/// A recovered file, ready to encode, and what the reader noticed.
pub(crate) struct Recovered {
    pub(crate) capture: Capture,
    pub(crate) timebase: Timebase,
    /// Records whose callsite was not in the log (named "unknown callsite").
    pub(crate) unknown_callsites: u64,
    /// Chunks cut short at a record that did not parse.
    pub(crate) damaged_chunks: u64,
}

/// Stands in for callsites the log does not have.
struct UnknownCallsite;

impl Callsite for UnknownCallsite {
    fn set_interest(&self, _: Interest) {}

    fn metadata(&self) -> &Metadata<'_> {
        &UNKNOWN
    }
}

static UNKNOWN_CALLSITE: UnknownCallsite = UnknownCallsite;
static UNKNOWN: Metadata<'static> = Metadata::new(
    "unknown callsite",
    "tracing_blackbox::recovered",
    Level::INFO,
    None,
    None,
    None,
    FieldSet::new(&[], Identifier(&UNKNOWN_CALLSITE)),
    Kind::EVENT,
);

/// A callsite of the dead process, rebuilt.
struct RecoveredCallsite(OnceLock<&'static Metadata<'static>>);

impl Callsite for RecoveredCallsite {
    fn set_interest(&self, _: Interest) {}

    fn metadata(&self) -> &Metadata<'_> {
        self.0.get().copied().unwrap_or(&UNKNOWN)
    }
}

fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

fn rebuild(entry: CallsiteEntry) -> &'static Metadata<'static> {
    let callsite: &'static RecoveredCallsite =
        Box::leak(Box::new(RecoveredCallsite(OnceLock::new())));
    let fields: &'static [&'static str] =
        Box::leak(entry.fields.into_iter().map(leak).collect::<Box<[_]>>());
    let metadata: &'static Metadata<'static> = Box::leak(Box::new(Metadata::new(
        leak(entry.name),
        leak(entry.target),
        entry.level,
        entry.file.map(leak),
        entry.line,
        entry.module_path.map(leak),
        FieldSet::new(fields, Identifier(callsite)),
        if entry.is_span {
            Kind::SPAN
        } else {
            Kind::EVENT
        },
    )));
    let _ = callsite.0.set(metadata);
    metadata
}

/// Builds the capture of a read crash file.
pub(crate) fn recover(file: CrashFile) -> Recovered {
    let ceiling = latest_possible(&file);
    let mut callsites: HashMap<u64, &'static Metadata<'static>> = HashMap::new();
    for entry in file.callsites {
        callsites
            .entry(entry.address)
            .or_insert_with(|| rebuild(entry));
    }
    let mut unknown_callsites = 0;
    let mut damaged_chunks = 0;
    let mut end_raw = file.anchor_raw;
    let mut retained_bytes = 0;
    let mut retained = 0;
    let mut by_thread: BTreeMap<u64, Vec<RawChunk>> = BTreeMap::new();
    for raw in file.chunks {
        by_thread.entry(raw.tid).or_default().push(raw);
    }
    let mut threads = Vec::with_capacity(by_thread.len());
    for (tid, mut raws) in by_thread {
        raws.sort_by_key(|raw| raw.seq);
        let name = raws.iter().rev().find_map(|raw| raw.thread_name.clone());
        // A thread's records are in time order, between the recorder's start and now: a
        // record out of that order was damaged and is left out.
        let mut floor = file.anchor_raw;
        let mut chunks = Vec::with_capacity(raws.len());
        for raw in raws {
            let mut bytes = raw.bytes;
            let walk = remap(&mut bytes, &callsites);
            unknown_callsites += walk.unknown;
            bytes.truncate(walk.len);
            let chunk = Chunk::recovered(bytes, walk.records, walk.last_ts);
            let kept = in_order(chunk, floor, ceiling);
            if walk.cut || kept.records < walk.records {
                damaged_chunks += 1;
            }
            if kept.records == 0 {
                continue;
            }
            floor = kept.last_ts;
            end_raw = end_raw.max(kept.last_ts);
            retained_bytes += kept.chunk.bytes().len();
            retained += u64::from(kept.records);
            chunks.push(kept.chunk);
        }
        let Some(current) = chunks.pop() else {
            continue;
        };
        threads.push(ThreadChunks {
            identity: ThreadIdentity { tid, name },
            sealed: chunks.into_iter().map(Arc::new).collect(),
            current,
        });
    }
    let raw = StoredChunks::recovered(
        threads,
        retained + file.overwritten,
        file.overwritten,
        retained_bytes,
    );
    Recovered {
        capture: Capture {
            raw,
            end_raw,
            dropped: file.dropped,
            max_bytes: usize::try_from(file.max_bytes).unwrap_or(usize::MAX),
            min_age: Duration::from_nanos(file.min_age_nanos),
        },
        timebase: Timebase::recovered(file.anchor_raw, file.anchor_wall, file.nanos_per_tick),
        unknown_callsites,
        damaged_chunks,
    }
}

/// What walking a chunk's records found.
struct Walk {
    /// Bytes of whole records with a known layout; the rest is cut.
    len: usize,
    /// Whether anything was cut.
    cut: bool,
    records: u32,
    last_ts: u64,
    unknown: u64,
}

/// Replaces each record's callsite address with this process's rebuilt metadata (or the
/// unknown callsite's), stopping at the first record whose header or kind is not right.
fn remap(bytes: &mut [u8], callsites: &HashMap<u64, &'static Metadata<'static>>) -> Walk {
    let mut walk = Walk {
        len: 0,
        cut: false,
        records: 0,
        last_ts: 0,
        unknown: 0,
    };
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + HEADER_BYTES) {
        let len = usize::from(u16::from_le_bytes([header[0], header[1]]));
        let record_kind = header[2];
        let ts = u64::from_le_bytes(header[4..12].try_into().unwrap_or_default());
        if len < HEADER_BYTES || at + len > bytes.len() {
            break;
        }
        // Where the callsite's address sits in the body, for the kinds that have one.
        let address_at = match record_kind {
            kind::NEW_SPAN => Some(24),
            kind::VALUES => Some(8),
            kind::EVENT => Some(0),
            kind::ENTER | kind::EXIT | kind::CLOSE | kind::FOLLOWS_FROM => None,
            _ => break,
        };
        if let Some(offset) = address_at {
            let start = at + HEADER_BYTES + offset;
            if start + 8 > at + len {
                break;
            }
            let address =
                u64::from_le_bytes(bytes[start..start + 8].try_into().unwrap_or_default());
            // A `Span::record` without its span's callsite keeps zero.
            if !(record_kind == kind::VALUES && address == 0) {
                let metadata = callsites.get(&address).copied().unwrap_or_else(|| {
                    walk.unknown += 1;
                    &UNKNOWN
                });
                let local = metadata as *const Metadata<'static> as usize as u64;
                bytes[start..start + 8].copy_from_slice(&local.to_le_bytes());
            }
        }
        at += len;
        walk.len = at;
        walk.records += 1;
        walk.last_ts = walk.last_ts.max(ts);
    }
    walk.cut = walk.len < bytes.len();
    walk
}

/// The latest clock reading the process can have written: it died before now, so no record
/// is later than the anchor plus the wall time since (doubled, plus a minute, for clock
/// adjustments). Damaged timestamps beyond it are left out.
fn latest_possible(file: &CrashFile) -> u64 {
    let since = (chrono::Utc::now() - file.anchor_wall)
        .to_std()
        .unwrap_or_default();
    let nanos = since.as_secs_f64() * 2.0 + 60e9;
    let ticks = nanos / file.nanos_per_tick;
    file.anchor_raw
        .saturating_add(ticks.min(u64::MAX as f64) as u64)
}

/// The records of a chunk kept for the dump.
struct Kept {
    chunk: Chunk,
    records: u32,
    last_ts: u64,
}

/// The records of `chunk` a reader reads (it stops at the first malformed one) whose times
/// are in order: none before `floor` (the thread's previous record) or after `ceiling`, and
/// none later than the record after it unless that one is itself out of order (a damaged
/// timestamp stands out from both neighbours; the record is left out, not the rest). The
/// chunk itself when every record is kept (the usual case), else a copy of those kept.
fn in_order(chunk: Chunk, floor: u64, ceiling: u64) -> Kept {
    let bytes = chunk.bytes();
    let records: Vec<(usize, usize, u64)> = RecordReader::new(&chunk)
        .map(|(offset, view)| {
            let at = offset as usize;
            let len = usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]));
            (at, len, view.ts)
        })
        .collect();
    let mut kept = Vec::with_capacity(records.len());
    let mut last_ts = floor;
    for (index, &(at, len, ts)) in records.iter().enumerate() {
        if ts < last_ts || ts > ceiling {
            continue;
        }
        let next = records.get(index + 1).map(|&(_, _, next)| next);
        if next.is_some_and(|next| next < ts && next >= last_ts) {
            continue;
        }
        kept.push(at..at + len);
        last_ts = ts;
    }
    let count = kept.len() as u32;
    let whole = kept.len() == records.len() && kept.last().is_none_or(|r| r.end == bytes.len());
    let chunk = if whole {
        chunk
    } else {
        let copy = kept
            .iter()
            .flat_map(|range| &bytes[range.clone()])
            .copied()
            .collect();
        Chunk::recovered(copy, count, last_ts)
    };
    Kept {
        chunk,
        records: count,
        last_ts,
    }
}
