//! `blackbox convert`: rewrites a dump plain or gzipped, checking that it parses, atomically.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use tracing_blackbox::analyze::{self, LoadError};

use crate::Failure;

/// Copies while the copy is parsed, so a file that is not a trace is refused.
pub(crate) struct Tee<R, W> {
    reader: R,
    writer: W,
    error: Option<io::Error>,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.reader.read(buf)?;
        if let Err(e) = self.writer.write_all(&buf[..n]) {
            let message = e.to_string();
            self.error = Some(e);
            return Err(io::Error::other(message));
        }
        Ok(n)
    }
}

pub(crate) fn convert(input: &Path, output: &Path) -> Result<(), Failure> {
    let (reader, _) = analyze::open(input)?;
    let dir = match output.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let temp = tempfile::Builder::new()
        .prefix(".blackbox-convert.")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    let gzip = output.extension().is_some_and(|e| e == "gz");
    let file = io::BufWriter::new(temp.as_file().try_clone()?);
    let writer = if gzip {
        Output::Gzip(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::default(),
        ))
    } else {
        Output::Plain(file)
    };
    let mut tee = Tee {
        reader,
        writer,
        error: None,
    };
    let parsed = analyze::read_from(&mut tee, |_| {});
    if let Some(e) = tee.error.take() {
        return Err(Failure::Output(e));
    }
    parsed.map_err(|problem| LoadError::new(input, problem))?;
    // Finish the gzip stream and flush before the file goes into place.
    let Tee { writer, .. } = tee;
    writer.finish()?;
    temp.as_file().sync_all()?;
    temp.persist(output).map_err(|e| Failure::Output(e.error))?;
    Ok(())
}

pub(crate) enum Output {
    Plain(io::BufWriter<File>),
    Gzip(flate2::write::GzEncoder<io::BufWriter<File>>),
}

impl Output {
    /// Writes the gzip trailer, if any, and flushes.
    fn finish(self) -> io::Result<()> {
        match self {
            Output::Plain(mut file) => file.flush(),
            Output::Gzip(gz) => gz.finish()?.flush(),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Plain(w) => w.write(buf),
            Output::Gzip(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Plain(w) => w.flush(),
            Output::Gzip(w) => w.flush(),
        }
    }
}
