//! Writing a file so that it is complete or absent: encoded (optionally gzipped) into a
//! temporary file beside it (named `.<name, at most 64 bytes>.<random>.tmp`, never the real
//! name), counted, synced, then renamed into place. Used by dumps and by the `blackbox` tool.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::error::{DumpError, DumpStage};

/// Permissions of new files and of the directories created for them (unix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileModes {
    pub(crate) file: u32,
    pub(crate) dir: u32,
}

impl Default for FileModes {
    fn default() -> Self {
        // A dump holds whatever spans and events record: owner only.
        FileModes {
            file: 0o600,
            dir: 0o700,
        }
    }
}

/// Longest part of the destination's name kept in a temporary file's name: whatever the
/// destination, `.<name>.<random>.tmp` stays far below the 255-byte limit of file names.
const MAX_TEMP_STEM_BYTES: usize = 64;

/// Encodes into a temporary file in `dir`, syncs it, and returns it with its length.
pub(crate) fn write_temp<R>(
    dir: &Path,
    meant_for: &Path,
    gzip: bool,
    modes: FileModes,
    encode: impl FnOnce(&mut dyn Write) -> io::Result<R>,
) -> Result<(tempfile::NamedTempFile, u64), DumpError> {
    create_dir(dir, modes).map_err(|e| DumpError::new(DumpStage::CreateDir, dir, e))?;
    let name = meant_for
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut cut = name.len().min(MAX_TEMP_STEM_BYTES);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let stem = &name[..cut];
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{stem}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| DumpError::new(DumpStage::CreateTemp, meant_for, e))?;
    set_mode(temp.as_file(), modes)
        .map_err(|e| DumpError::new(DumpStage::CreateTemp, meant_for, e))?;
    let written = (|| {
        let file = temp.as_file_mut();
        let mut counting = CountingWriter {
            inner: BufWriter::with_capacity(64 << 10, file),
            count: 0,
        };
        if gzip {
            encode_gzip(&mut counting, encode)?;
        } else {
            encode(&mut counting)?;
        }
        counting.flush()?;
        let count = counting.count;
        drop(counting);
        temp.as_file().sync_all()?;
        Ok(count)
    })();
    let len = written.map_err(|e| DumpError::new(DumpStage::Write, meant_for, e))?;
    Ok((temp, len))
}

/// Writes what `encode` writes, gzipped (fast level: dumps are written while the
/// application runs).
#[cfg(feature = "gzip")]
pub(crate) fn encode_gzip<R>(
    out: &mut dyn Write,
    encode: impl FnOnce(&mut dyn Write) -> io::Result<R>,
) -> io::Result<()> {
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    encode(&mut gz)?;
    gz.finish()?;
    Ok(())
}

/// Without the `gzip` feature nothing asks for gzip (the builder refuses it).
#[cfg(not(feature = "gzip"))]
pub(crate) fn encode_gzip<R>(
    out: &mut dyn Write,
    encode: impl FnOnce(&mut dyn Write) -> io::Result<R>,
) -> io::Result<()> {
    // The builder only enables gzip with the feature on.
    encode(out).map(drop)
}

/// Writes exactly `path`, replacing a file there, gzipped if it ends in `.gz`; returns the bytes
/// written.
pub(crate) fn write_file<R>(
    path: &Path,
    modes: FileModes,
    encode: impl FnOnce(&mut dyn Write) -> io::Result<R>,
) -> Result<u64, DumpError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let gzip = path.extension().is_some_and(|ext| ext == "gz") && cfg!(feature = "gzip");
    let (temp, bytes) = write_temp(dir, path, gzip, modes, encode)?;
    // On failure the temp file comes back in the error and is removed when dropped.
    temp.persist(path)
        .map_err(|e| DumpError::new(DumpStage::Persist, path, e.error))?;
    Ok(bytes)
}

/// Creates `dir` and its missing parents, new ones with `modes.dir` (unix).
fn create_dir(dir: &Path, modes: FileModes) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, modes.dir);
    #[cfg(not(unix))]
    let _ = modes;
    builder.create(dir)
}

/// Gives a new file `modes.file` (unix).
fn set_mode(file: &fs::File, modes: FileModes) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(modes.file))
    }
    #[cfg(not(unix))]
    {
        let _ = (file, modes);
        Ok(())
    }
}

/// Counts the bytes that reach `inner`.
pub(crate) struct CountingWriter<W> {
    pub(crate) inner: W,
    pub(crate) count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
