//! Writing an encoder's output a piece at a time: a cursor over the trace's parts, so that a
//! file is written through a small buffer and an HTTP response is produced only as fast as
//! its client takes it.

use std::borrow::Borrow;
use std::io::{self, Write};

use super::json::json_str;
use super::{Encoder, process_name};
use crate::atomic::CountingWriter;
use crate::dump::context::DumpContext;
use crate::record::{Capture, Timebase};

/// How much [`write`] produces before handing it to the writer.
const PIECE_BYTES: usize = 64 << 10;

/// Writes the capture as Chrome Trace Event JSON; returns the bytes written.
pub(crate) fn write<W: Write>(
    capture: &Capture,
    timebase: &Timebase,
    context: &DumpContext,
    writer: W,
) -> io::Result<u64> {
    let mut counting = CountingWriter {
        inner: writer,
        count: 0,
    };
    let mut stream = ChromeStream::new(capture, timebase, context.clone());
    let mut piece = Vec::with_capacity(PIECE_BYTES + (PIECE_BYTES >> 2));
    loop {
        let done = stream.fill(&mut piece, PIECE_BYTES)?;
        counting.write_all(&piece)?;
        piece.clear();
        if done {
            break;
        }
    }
    counting.flush()?;
    Ok(counting.count)
}

/// A dump being written: the encoder's state (built once, then only read) and where the
/// output has got to. Each [`fill`](Self::fill) appends the next part.
pub(crate) struct ChromeStream<C> {
    encoder: Encoder<C>,
    cursor: Cursor,
}

/// Where the output has got to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cursor {
    /// The opening and the process's name.
    Head,
    /// The name of the capture's thread at this index, or a later one with records.
    ThreadName(usize),
    /// Entry `index` of the timeline of the capture's thread `thread`.
    Entry {
        thread: usize,
        index: usize,
    },
    /// The closing and `otherData`.
    Tail,
    Done,
}

impl<C: Borrow<Capture>> ChromeStream<C> {
    /// Builds the encoder's state from `capture`: one pass over its records.
    pub(crate) fn new(capture: C, timebase: &Timebase, context: DumpContext) -> Self {
        ChromeStream {
            encoder: Encoder::new(capture, timebase, context),
            cursor: Cursor::Head,
        }
    }

    /// Appends the next parts of the trace to `out` until it holds at least `target` bytes or
    /// the trace is complete; returns whether it is. An entry is never split, so `out` can
    /// pass `target` by one entry's size.
    pub(crate) fn fill(&mut self, out: &mut Vec<u8>, target: usize) -> io::Result<bool> {
        let encoder = &self.encoder;
        let threads = &encoder.capture().raw.threads;
        let mut fields = Vec::new();
        while out.len() < target {
            self.cursor = match self.cursor {
                Cursor::Head => {
                    out.extend_from_slice(b"{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n");
                    write!(
                        out,
                        "{{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":{},\"args\":{{\"name\":",
                        encoder.pid
                    )?;
                    match &encoder.context.process {
                        Some((_, name)) => json_str(out, name)?,
                        None => json_str(out, &process_name())?,
                    }
                    out.extend_from_slice(b"}}");
                    Cursor::ThreadName(0)
                }
                Cursor::ThreadName(from) => match encoder.next_thread(from) {
                    // Threads by tid (the capture lists them so).
                    Some(index) => {
                        let identity = &threads[index].identity;
                        let tid = identity.tid;
                        write!(
                            out,
                            ",\n{{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":{},\"tid\":{tid},\"args\":{{\"name\":",
                            encoder.pid
                        )?;
                        match &identity.name {
                            Some(name) => json_str(out, name)?,
                            None => json_str(out, &format!("thread-{tid}"))?,
                        }
                        out.extend_from_slice(b"}}");
                        Cursor::ThreadName(index + 1)
                    }
                    None => match encoder.next_thread(0) {
                        Some(thread) => Cursor::Entry { thread, index: 0 },
                        None => Cursor::Tail,
                    },
                },
                Cursor::Entry { thread, index } => {
                    let entries = encoder.layout.timelines[thread]
                        .as_ref()
                        .map_or(&[][..], |timeline| &timeline.out[..]);
                    match entries.get(index) {
                        Some(entry) => {
                            out.extend_from_slice(b",\n");
                            encoder.write_event(out, &threads[thread], entry, &mut fields)?;
                            Cursor::Entry {
                                thread,
                                index: index + 1,
                            }
                        }
                        None => match encoder.next_thread(thread + 1) {
                            Some(thread) => Cursor::Entry { thread, index: 0 },
                            None => Cursor::Tail,
                        },
                    }
                }
                Cursor::Tail => {
                    out.extend_from_slice(b"\n],\n\"otherData\":");
                    encoder.write_other_data(out)?;
                    out.extend_from_slice(b"}\n");
                    Cursor::Done
                }
                Cursor::Done => break,
            };
        }
        Ok(self.cursor == Cursor::Done)
    }
}

impl<C: Borrow<Capture>> Encoder<C> {
    /// The first capture thread at `from` or after it that has records.
    fn next_thread(&self, from: usize) -> Option<usize> {
        (from..self.layout.timelines.len()).find(|&thread| self.layout.timelines[thread].is_some())
    }
}
