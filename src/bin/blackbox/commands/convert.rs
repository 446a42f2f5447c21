//! `blackbox convert`: rewrites a dump plain or gzipped, checking that it parses, atomically.

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
    let mut not_a_trace = None;
    let written = analyze::write_atomically(output, |writer| {
        let mut tee = Tee {
            reader,
            writer,
            error: None,
        };
        let parsed = analyze::read_from(&mut tee, |_| {});
        if let Some(e) = tee.error.take() {
            return Err(e);
        }
        parsed.map(drop).map_err(|problem| {
            not_a_trace = Some(problem);
            io::Error::other("the input is not a trace")
        })
    });
    match (written, not_a_trace) {
        (Ok(_), _) => Ok(()),
        (Err(_), Some(problem)) => Err(Failure::Input(LoadError::new(input, problem))),
        (Err(err), None) => Err(Failure::Output(io::Error::new(
            err.io_error().kind(),
            err.to_string(),
        ))),
    }
}
