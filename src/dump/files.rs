//! Dump files on disk: named `<label>_<UTC time>_<seq>.json[.gz]`, never replacing a file,
//! written atomically (`atomic`) with owner-only permissions; and recognising those names
//! again, so retention counts the dumps a previous run left.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};

use crate::atomic::{self, FileModes, write_temp};
use crate::error::{DumpError, DumpStage};

/// Where a dump went and how large it is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DumpInfo {
    /// The file written.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
}

/// Writes a dump to exactly `path`, replacing a file there (gzipped if it ends in `.gz`).
pub(crate) fn write_file(
    path: &Path,
    modes: FileModes,
    encode: impl FnOnce(&mut dyn Write) -> io::Result<u64>,
) -> Result<DumpInfo, DumpError> {
    atomic::write_file(path, modes, encode).map(|bytes| DumpInfo {
        path: path.to_owned(),
        bytes,
    })
}

/// Writes a dump into `dir` as `<label>_<stamp>_<seq>.json[.gz]`, never replacing a file.
pub(crate) fn write_new_file(
    dir: &Path,
    label: &str,
    stamp: DateTime<Utc>,
    gzip: bool,
    modes: FileModes,
    encode: impl FnOnce(&mut dyn Write) -> io::Result<u64>,
) -> Result<DumpInfo, DumpError> {
    let label = sanitize_label(label);
    let stamp = stamp.format("%Y%m%dT%H%M%S%.3fZ");
    let extension = if gzip { "json.gz" } else { "json" };
    let meant_for = dir.join(format!("{label}_{stamp}.{extension}"));
    let (mut temp, bytes) = write_temp(dir, &meant_for, gzip, modes, encode)?;
    loop {
        let seq = next_dump_seq();
        let path = dir.join(format!("{label}_{stamp}_{seq}.{extension}"));
        match temp.persist_noclobber(&path) {
            Ok(_) => return Ok(DumpInfo { path, bytes }),
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => temp = e.file,
            Err(e) => return Err(DumpError::new(DumpStage::Persist, path, e.error)),
        }
    }
}

fn next_dump_seq() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Longest label kept in a file name.
const MAX_LABEL_CHARS: usize = 64;

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
        .take(MAX_LABEL_CHARS)
        .collect();
    if clean.is_empty() {
        "dump".to_owned()
    } else {
        clean
    }
}

/// The name's parts if it is a dump file name this crate gives: `<label>_<stamp>_<seq>.json`
/// or `.json.gz`, with the label as [`sanitize_label`] makes it. The key sorts by time.
fn dump_name_key(name: &str) -> Option<(String, u64)> {
    let stem = name
        .strip_suffix(".json.gz")
        .or_else(|| name.strip_suffix(".json"))?;
    let (rest, seq) = stem.rsplit_once('_')?;
    let (label, stamp) = rest.rsplit_once('_')?;
    let label_ok = !label.is_empty()
        && label.len() <= MAX_LABEL_CHARS
        && !label.starts_with('.')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    let stamp_ok = stamp.len() == 20
        && stamp.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'T',
            15 => b == b'.',
            19 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    let seq_ok = !seq.is_empty() && seq.len() <= 20 && seq.bytes().all(|b| b.is_ascii_digit());
    (label_ok && stamp_ok && seq_ok).then(|| (stamp.to_owned(), seq.parse().unwrap_or(u64::MAX)))
}

/// The dump files in `dir` that this crate named (regular files only), oldest first, with
/// their sizes: what an earlier run left, for retention.
pub(crate) fn existing_dumps(dir: &Path) -> Vec<(PathBuf, u64)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<((String, u64), PathBuf, u64)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let key = dump_name_key(entry.file_name().to_str()?)?;
            let metadata = entry.metadata().ok()?;
            metadata
                .file_type()
                .is_file()
                .then(|| (key, entry.path(), metadata.len()))
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .map(|(_, path, bytes)| (path, bytes))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_this_crate_gives_are_recognised() {
        for name in [
            "slow_span_GET__users_20261126T121914.123Z_3.json",
            "error_20261126T121914.123Z_17.json.gz",
            "x_20990101T000000.000Z_1.json",
        ] {
            assert!(dump_name_key(name).is_some(), "{name}");
        }
        for name in [
            "notes.json",
            "error_20261126T121914.123Z.json",
            "error_20261126T121914.123_3.json",
            ".error_20261126T121914.123Z_3.json",
            ".error_20261126T121914.123Z_3.json.abc123.tmp",
            "error_20261126T121914.123Z_3.json.bak",
            "err or_20261126T121914.123Z_3.json",
            "error_2026112XT121914.123Z_3.json",
            "_20261126T121914.123Z_3.json",
        ] {
            assert!(dump_name_key(name).is_none(), "{name}");
        }
    }

    #[test]
    fn the_key_orders_by_time_then_sequence() {
        let mut names = [
            "b_20261126T121914.124Z_1.json",
            "a_20261126T121914.123Z_10.json",
            "c_20261126T121914.123Z_9.json",
        ];
        names.sort_by_key(|n| dump_name_key(n));
        assert_eq!(
            names,
            [
                "c_20261126T121914.123Z_9.json",
                "a_20261126T121914.123Z_10.json",
                "b_20261126T121914.124Z_1.json"
            ]
        );
    }
}
