//! Reading a crash file back, in another process: the header, the callsite log and every
//! descriptor's committed records, checked against the file's bounds. Whatever the bytes, the
//! result is an error or what could be read; never a panic.

use std::collections::HashSet;
use std::fmt;

use chrono::{DateTime, Utc};

use super::callsites::{self, CallsiteEntry};
use super::format::{
    DESCRIPTOR_BYTES, FORMAT_VERSION, HEADER_BYTES, MAGIC, PAGE_BYTES, descriptor, header,
};
use crate::record::encode::HEADER_BYTES as HEADER_RECORD_BYTES;

/// Why a file could not be read as a crash file at all.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CrashFileError {
    /// The file does not start like a crash file.
    NotACrashFile,
    /// Written by a version of the format this build does not read.
    UnsupportedVersion {
        /// The format version the file says it has.
        found: u32,
        /// The one this build reads.
        supported: u32,
        /// The crate version that wrote it, as the file says.
        written_by: String,
    },
    /// The file is shorter than its header says, or its regions do not fit in it.
    Truncated {
        /// Bytes the layout needs.
        needed: u64,
        /// Bytes the file has.
        found: u64,
    },
    /// The header's region table is inconsistent.
    BadLayout(&'static str),
}

impl fmt::Display for CrashFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrashFileError::NotACrashFile => f.write_str("not a tracing-blackbox crash file"),
            CrashFileError::UnsupportedVersion {
                found,
                supported,
                written_by,
            } => write!(
                f,
                "crash file format {found} (written by tracing-blackbox {written_by}); this \
                 build reads format {supported}: recover it with the version that wrote it"
            ),
            CrashFileError::Truncated { needed, found } => write!(
                f,
                "crash file truncated: its layout needs {needed} bytes, the file has {found}"
            ),
            CrashFileError::BadLayout(what) => write!(f, "crash file damaged: {what}"),
        }
    }
}

impl std::error::Error for CrashFileError {}

/// What a crash file holds.
#[derive(Debug)]
pub(crate) struct CrashFile {
    pub(crate) pid: u32,
    pub(crate) start_time: u64,
    pub(crate) exe: String,
    pub(crate) crate_version: String,
    pub(crate) anchor_raw: u64,
    pub(crate) anchor_wall: DateTime<Utc>,
    pub(crate) nanos_per_tick: f64,
    pub(crate) max_bytes: u64,
    pub(crate) min_age_nanos: u64,
    pub(crate) overwritten: u64,
    pub(crate) dropped: u64,
    pub(crate) unmapped_chunks: u64,
    pub(crate) callsites_lost: u64,
    pub(crate) callsites: Vec<CallsiteEntry>,
    /// The callsite log ended in an entry that did not parse.
    pub(crate) callsite_log_damaged: bool,
    /// Every descriptor's records, in no particular order.
    pub(crate) chunks: Vec<RawChunk>,
    /// Descriptors whose fields did not fit the file (skipped).
    pub(crate) bad_descriptors: u64,
    /// Chunks with bytes past their committed length where the next record would start: the
    /// process was writing a record when it died.
    pub(crate) torn_records: u64,
}

/// One descriptor's committed bytes.
#[derive(Debug)]
pub(crate) struct RawChunk {
    pub(crate) tid: u64,
    pub(crate) seq: u64,
    pub(crate) thread_name: Option<String>,
    pub(crate) bytes: Vec<u8>,
}

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u32(&self, at: usize) -> Option<u32> {
        Some(u32::from_le_bytes(self.0.get(at..at + 4)?.try_into().ok()?))
    }

    fn u64(&self, at: usize) -> Option<u64> {
        Some(u64::from_le_bytes(self.0.get(at..at + 8)?.try_into().ok()?))
    }

    /// A string stored as a length (of `len_bytes`) and at most `max` bytes.
    fn string(&self, at: usize, len_bytes: usize, max: usize) -> Option<String> {
        let len = match len_bytes {
            1 => usize::from(*self.0.get(at)?),
            _ => usize::from(u16::from_le_bytes(self.0.get(at..at + 2)?.try_into().ok()?)),
        };
        let text = self.0.get(at + len_bytes..at + len_bytes + len.min(max))?;
        Some(String::from_utf8_lossy(text).into_owned())
    }
}

/// Reads a whole crash file.
pub(crate) fn read(file: &[u8]) -> Result<CrashFile, CrashFileError> {
    let bytes = Bytes(file);
    if file.len() < HEADER_BYTES || &file[..MAGIC.len()] != MAGIC {
        return Err(CrashFileError::NotACrashFile);
    }
    let field = |at| bytes.u64(at).ok_or(CrashFileError::NotACrashFile);
    let version = bytes
        .u32(header::FORMAT)
        .ok_or(CrashFileError::NotACrashFile)?;
    let crate_version = bytes
        .string(header::CRATE_VERSION, 1, header::CRATE_VERSION_MAX)
        .unwrap_or_default();
    if version != FORMAT_VERSION {
        return Err(CrashFileError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
            written_by: crate_version,
        });
    }
    let file_bytes = field(header::FILE_BYTES)?;
    if file_bytes > file.len() as u64 {
        return Err(CrashFileError::Truncated {
            needed: file_bytes,
            found: file.len() as u64,
        });
    }
    let region = |offset_at, size_at, what| -> Result<(usize, usize), CrashFileError> {
        let offset = usize::try_from(field(offset_at)?).map_err(|_| bad(what))?;
        let size = usize::try_from(field(size_at)?).map_err(|_| bad(what))?;
        match offset.checked_add(size) {
            Some(end) if end <= file.len() && offset >= HEADER_BYTES => Ok((offset, size)),
            _ => Err(bad(what)),
        }
    };
    let (descriptors_at, descriptor_count) = region(
        header::DESCRIPTORS_OFFSET,
        header::DESCRIPTOR_COUNT,
        "descriptors",
    )?;
    if descriptor_count
        .checked_mul(DESCRIPTOR_BYTES)
        .and_then(|size| descriptors_at.checked_add(size))
        .is_none_or(|end| end > file.len())
    {
        return Err(bad("descriptors"));
    }
    let (callsites_at, callsites_bytes) = region(
        header::CALLSITES_OFFSET,
        header::CALLSITES_BYTES,
        "callsites",
    )?;
    let (arena_at, arena_bytes) = region(header::ARENA_OFFSET, header::ARENA_BYTES, "arena")?;

    let committed = usize::try_from(field(header::CALLSITES_COMMITTED)?)
        .unwrap_or(usize::MAX)
        .min(callsites_bytes);
    let (callsites, complete) = callsites::decode(&file[callsites_at..callsites_at + committed]);

    // Every descriptor that holds records and whose block lies in the arena.
    let mut blocks = Vec::new();
    let mut bad_descriptors = 0;
    for index in 0..descriptor_count {
        let at = descriptors_at + index * DESCRIPTOR_BYTES;
        let committed = bytes.u32(at + descriptor::COMMITTED).unwrap_or(0) as usize;
        if committed == 0 {
            continue;
        }
        let capacity = bytes.u32(at + descriptor::CAPACITY).unwrap_or(0) as usize;
        let offset = bytes.u64(at + descriptor::OFFSET).unwrap_or(u64::MAX);
        let block = usize::try_from(offset).ok().and_then(|offset| {
            let end = offset.checked_add(capacity)?;
            (end <= arena_bytes && committed <= capacity && offset.is_multiple_of(PAGE_BYTES))
                .then_some(arena_at + offset)
        });
        match block {
            Some(start) => blocks.push((start, capacity, committed, at)),
            None => bad_descriptors += 1,
        }
    }
    // Blocks never overlap: a damaged offset that makes two overlap keeps the first.
    blocks.sort_unstable();
    let mut end_so_far = 0;
    blocks.retain(|&(start, capacity, _, _)| {
        let keep = start >= end_so_far;
        end_so_far = end_so_far.max(start + capacity);
        bad_descriptors += u64::from(!keep);
        keep
    });

    let mut chunks = Vec::with_capacity(blocks.len());
    let mut seen = HashSet::new();
    let mut torn_records = 0;
    for (start, capacity, committed, at) in blocks {
        let tid = bytes.u64(at + descriptor::TID).unwrap_or(0);
        let seq = bytes.u64(at + descriptor::SEQ).unwrap_or(0);
        // Thread ids count up from 1 in the process: anything else is damage.
        if tid == 0 || tid > u64::from(u32::MAX) {
            bad_descriptors += 1;
            continue;
        }
        // A thread's chunk moved to a smaller block when it exited: the copy and the original
        // may both be committed if the process died between the two steps.
        if !seen.insert((tid, seq)) {
            continue;
        }
        let next = &file[start + committed..start + capacity];
        if next.iter().take(HEADER_RECORD_BYTES).any(|&b| b != 0) {
            torn_records += 1;
        }
        chunks.push(RawChunk {
            tid,
            seq,
            thread_name: bytes
                .string(at + descriptor::NAME, 1, descriptor::NAME_MAX)
                .filter(|name| !name.is_empty()),
            bytes: file[start..start + committed].to_vec(),
        });
    }

    let wall_nanos = field(header::ANCHOR_WALL_NANOS)? as i64;
    Ok(CrashFile {
        pid: bytes.u32(header::PID).unwrap_or(0),
        start_time: field(header::START_TIME)?,
        exe: bytes
            .string(header::EXE, 2, header::EXE_MAX)
            .unwrap_or_default(),
        crate_version,
        anchor_raw: field(header::ANCHOR_RAW)?,
        anchor_wall: DateTime::from_timestamp_nanos(wall_nanos),
        nanos_per_tick: valid_rate(f64::from_bits(field(header::NANOS_PER_TICK)?))?,
        max_bytes: field(header::MAX_BYTES)?,
        min_age_nanos: field(header::MIN_AGE_NANOS)?,
        overwritten: field(header::OVERWRITTEN)?,
        dropped: field(header::DROPPED)?,
        unmapped_chunks: field(header::UNMAPPED_CHUNKS)?,
        callsites_lost: field(header::CALLSITES_LOST)?,
        callsites,
        callsite_log_damaged: !complete,
        chunks,
        bad_descriptors,
        torn_records,
    })
}

fn bad(what: &'static str) -> CrashFileError {
    CrashFileError::BadLayout(what)
}

/// A clock rate a reader can use: positive and finite (a tick is between a picosecond and a
/// second).
fn valid_rate(rate: f64) -> Result<f64, CrashFileError> {
    if rate.is_finite() && (1e-3..=1e9).contains(&rate) {
        Ok(rate)
    } else {
        Err(bad("clock rate"))
    }
}
