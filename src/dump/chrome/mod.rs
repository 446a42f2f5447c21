//! Chrome Trace Event JSON output (object form), as ui.perfetto.dev and speedscope read it.
//!
//! Encoded straight from a capture's chunks: one pass over the records in time order builds,
//! per thread, compact output entries (enter→exit pairs become `X` slices that nest; events
//! become thread-scoped instants) and a table of spans (each span's lifetime becomes an async
//! `b`/`e` pair with its own id); fields are read from the chunks again as they are written.
//! Working memory is about the size of the capture itself, not several times it. See
//! `docs/format.md`.

mod flows;
mod json;
mod other_data;
mod spans;
mod timeline;

use std::io::{self, BufWriter, Write};

use crate::atomic::CountingWriter;
use crate::dump::context::DumpContext;
use crate::dump::reader::{Body, RecordReader, ValueRef};
use crate::dump::snapshot::{Ids, RecordAt, TimeOrder};
use crate::record::encode::{FLAG_FIELDS_DROPPED, kind};
use crate::record::{Capture, Timebase};
use json::{json_str, json_value, micros, write_fields};
use spans::SpanTable;
use timeline::{INCOMPLETE, Out, OutKind, REPAIRED, Repairs, START_EVICTED, Timeline};

/// Version of the dump layout, in `otherData.version`.
pub const FORMAT_VERSION: u32 = 1;

/// Instant flag: the event named its parent explicitly.
const EXPLICIT_PARENT: u8 = 1;

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
    {
        let mut out = BufWriter::with_capacity(64 << 10, &mut counting);
        Encoder::new(capture, timebase, context).write(context, &mut out)?;
        out.flush()?;
    }
    Ok(counting.count)
}

/// The wall-clock time a dump ends at (its file name's stamp).
pub(crate) fn window_end(capture: &Capture, timebase: &Timebase) -> chrono::DateTime<chrono::Utc> {
    timebase.wall_time(timebase.nanos_since_anchor(capture.end_raw))
}

struct Encoder<'c> {
    capture: &'c Capture,
    timebase: &'c Timebase,
    spans: SpanTable,
    /// Per capture thread; `None` for threads without records.
    timelines: Vec<Option<Timeline>>,
    repairs: Repairs,
    retained: u64,
    window_start: u64,
    window_end: u64,
    pid: u32,
    /// The span that triggered the dump, marked `"trigger": true`.
    trigger_span: Option<u64>,
}

impl<'c> Encoder<'c> {
    fn new(capture: &'c Capture, timebase: &'c Timebase, context: &DumpContext) -> Self {
        let threads = &capture.raw.threads;
        let window_end = timebase.nanos_since_anchor(capture.end_raw);
        // Sized once, from a pass over the headers: growing by doubling would cost up to
        // three times the final size while copying.
        let (entries, spans) = expected_entries(capture);
        let mut encoder = Encoder {
            capture,
            timebase,
            spans: SpanTable::with_capacity(spans),
            timelines: entries.iter().map(|_| None).collect(),
            repairs: Repairs::default(),
            retained: 0,
            window_start: window_end,
            window_end,
            pid: std::process::id(),
            trigger_span: context.trigger.as_ref().map(|t| t.span_id),
        };
        for (n, record) in TimeOrder::new(timebase, threads).enumerate() {
            if n == 0 {
                encoder.window_start = record.ts_ns.min(window_end);
            }
            encoder.retained += 1;
            let thread = record.at.thread as usize;
            if encoder.timelines[thread].is_none() {
                encoder.timelines[thread] =
                    Some(Timeline::with_capacity(record.ts_ns, entries[thread]));
            }
            encoder.add(record.at, record.ts_ns, record.ids, &record.view);
        }
        encoder.finish();
        encoder
    }

    /// One record, in time order: into the span table and its thread's timeline.
    fn add(&mut self, at: RecordAt, ts: u64, ids: Ids, view: &crate::dump::reader::RecordView<'_>) {
        let thread = at.thread;
        let here = (ts, thread);
        if let Some(span) = ids.span() {
            let info = self.spans.seen(span, here);
            match ids {
                Ids::Close { .. } => info.close(here),
                Ids::NewSpan { span, parent } => {
                    if let Body::NewSpan { metadata, .. } = view.body {
                        self.spans.created(span, parent, metadata, at, here);
                    }
                }
                Ids::Record { span } => self.spans.updated(span, at, here),
                Ids::FollowsFrom { span, follows } => {
                    self.spans.follows_from(span, follows, here);
                }
                _ => {}
            }
        }
        let Some(timeline) = self.timelines[thread as usize].as_mut() else {
            return;
        };
        match ids {
            Ids::Enter { span } => timeline.enter(span, ts),
            Ids::Exit { span } => timeline.exit(span, ts, &mut self.repairs),
            Ids::Event {
                span,
                explicit_parent,
            } => {
                if let (Some(span), false) = (span, explicit_parent) {
                    // The event happened inside `span` on this thread.
                    timeline.ensure_open(span, &mut self.repairs);
                }
                timeline.out.push(Out {
                    ts,
                    value: span.unwrap_or(0),
                    id: u64::from(at.chunk) << 32 | u64::from(at.offset),
                    kind: OutKind::Instant,
                    flags: if explicit_parent { EXPLICIT_PARENT } else { 0 },
                });
            }
            _ => {}
        }
    }

    /// Closes what is open, adds flows and lifetimes, and puts each thread's entries in order.
    fn finish(&mut self) {
        for timeline in self.timelines.iter_mut().flatten() {
            timeline.finish(self.window_end);
        }
        self.add_flows();
        let mut lifetimes: Vec<(u64, u64, u32, u64, u32)> = self
            .spans
            .iter()
            .map(|(span, info)| {
                let (begin_ts, begin_thread) = info
                    .opened()
                    .unwrap_or((self.window_start, info.first_seen_thread));
                let (end_ts, end_thread) = info.closed().unwrap_or((self.window_end, begin_thread));
                (span, begin_ts, begin_thread, end_ts, end_thread)
            })
            .collect();
        lifetimes.sort_unstable();
        for (span, begin_ts, begin_thread, end_ts, end_thread) in lifetimes {
            for (thread, ts, kind) in [
                (begin_thread, begin_ts, OutKind::Begin),
                (end_thread, end_ts, OutKind::End),
            ] {
                if let Some(Some(timeline)) = self.timelines.get_mut(thread as usize) {
                    timeline.out.push(Out {
                        ts,
                        value: 0,
                        id: span,
                        kind,
                        flags: 0,
                    });
                }
            }
        }
        for timeline in self.timelines.iter_mut().flatten() {
            timeline.sort();
        }
    }

    fn write(&self, context: &DumpContext, w: &mut impl Write) -> io::Result<()> {
        let threads = &self.capture.raw.threads;
        w.write_all(b"{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n")?;
        write!(
            w,
            "{{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":{},\"args\":{{\"name\":",
            self.pid
        )?;
        json_str(w, &process_name())?;
        w.write_all(b"}}")?;
        // Threads by tid (the capture lists them so).
        let with_records = || {
            self.timelines
                .iter()
                .enumerate()
                .filter_map(|(thread, timeline)| Some((&threads[thread], timeline.as_ref()?)))
        };
        for (thread, _) in with_records() {
            let tid = thread.identity.tid;
            write!(
                w,
                ",\n{{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":{},\"tid\":{tid},\"args\":{{\"name\":",
                self.pid
            )?;
            match &thread.identity.name {
                Some(name) => json_str(w, name)?,
                None => json_str(w, &format!("thread-{tid}"))?,
            }
            w.write_all(b"}}")?;
        }
        let mut fields = Vec::new();
        for (thread, timeline) in with_records() {
            for out in &timeline.out {
                w.write_all(b",\n")?;
                self.write_event(w, thread, out, &mut fields)?;
            }
        }
        w.write_all(b"\n],\n\"otherData\":")?;
        self.write_other_data(w, context)?;
        w.write_all(b"}\n")
    }

    fn write_event(
        &self,
        w: &mut impl Write,
        thread: &'c crate::record::storage::ThreadChunks,
        out: &Out,
        fields: &mut Vec<(&'static str, ValueRef<'c>)>,
    ) -> io::Result<()> {
        let (pid, tid) = (self.pid, thread.identity.tid);
        let threads = &self.capture.raw.threads;
        let span = out.id;
        let info = self.spans.get(span);
        let head = |w: &mut dyn Write, ph: &str| -> io::Result<()> {
            write!(w, "{{\"ph\":\"{ph}\",\"name\":")?;
            json_str(w, info.name())?;
            w.write_all(b",\"cat\":")?;
            json_str(w, info.category())
        };
        match out.kind {
            OutKind::Slice => {
                head(w, "X")?;
                write!(w, ",\"pid\":{pid},\"tid\":{tid},\"ts\":")?;
                micros(w, out.ts)?;
                w.write_all(b",\"dur\":")?;
                micros(w, out.value)?;
                write!(w, ",\"args\":{{\"span_id\":{span}")?;
                if let Some(parent) = info.parent() {
                    write!(w, ",\"parent_id\":{parent}")?;
                }
                for (flag, name) in [
                    (out.flags & INCOMPLETE != 0, "incomplete"),
                    (out.flags & REPAIRED != 0, "repaired"),
                    (out.flags & START_EVICTED != 0, "start_evicted"),
                    (self.trigger_span == Some(span), "trigger"),
                ] {
                    if flag {
                        write!(w, ",\"{name}\":true")?;
                    }
                }
                self.spans.fields(span, threads, fields);
                write_fields(w, fields.iter().copied())?;
                w.write_all(b"}}")
            }
            OutKind::Begin => {
                head(w, "b")?;
                write!(
                    w,
                    ",\"id\":\"0x{span:x}\",\"pid\":{pid},\"tid\":{tid},\"ts\":"
                )?;
                micros(w, out.ts)?;
                write!(w, ",\"args\":{{\"span_id\":{span}")?;
                if let Some(parent) = info.parent() {
                    write!(w, ",\"parent_id\":{parent}")?;
                }
                if let Some(metadata) = info.metadata {
                    w.write_all(b",\"level\":")?;
                    json_str(w, metadata.level().as_str())?;
                    w.write_all(b",\"target\":")?;
                    json_str(w, metadata.target())?;
                    json::write_location(w, metadata)?;
                } else {
                    w.write_all(b",\"start_evicted\":true")?;
                }
                if self.trigger_span == Some(span) {
                    w.write_all(b",\"trigger\":true")?;
                }
                let follows = self.spans.follows(span);
                if !follows.is_empty() {
                    w.write_all(b",\"follows_from\":[")?;
                    for (i, follows) in follows.iter().enumerate() {
                        if i > 0 {
                            w.write_all(b",")?;
                        }
                        write!(w, "{follows}")?;
                    }
                    w.write_all(b"]")?;
                }
                self.spans.fields(span, threads, fields);
                write_fields(w, fields.iter().copied())?;
                w.write_all(b"}}")
            }
            OutKind::Flow => {
                head(w, &char::from(out.value as u8).to_string())?;
                write!(w, ",\"id\":{span},\"pid\":{pid},\"tid\":{tid},\"ts\":")?;
                micros(w, out.ts)?;
                if out.value == u64::from(b'f') {
                    w.write_all(b",\"bp\":\"e\"")?;
                }
                w.write_all(b"}")
            }
            OutKind::End => {
                head(w, "e")?;
                write!(
                    w,
                    ",\"id\":\"0x{span:x}\",\"pid\":{pid},\"tid\":{tid},\"ts\":"
                )?;
                micros(w, out.ts)?;
                if info.closed().is_none() {
                    w.write_all(b",\"args\":{\"incomplete\":true}")?;
                }
                w.write_all(b"}")
            }
            OutKind::Instant => self.write_instant(w, thread, out),
        }
    }

    fn write_instant(
        &self,
        w: &mut impl Write,
        thread: &crate::record::storage::ThreadChunks,
        out: &Out,
    ) -> io::Result<()> {
        let at = RecordAt {
            thread: 0,
            chunk: (out.id >> 32) as u32,
            offset: out.id as u32,
        };
        let Some(view) = thread
            .chunk(at.chunk as usize)
            .and_then(|chunk| RecordReader::at(chunk, at.offset))
        else {
            return Ok(());
        };
        let Body::Event {
            metadata, fields, ..
        } = view.body
        else {
            return Ok(());
        };
        let (pid, tid) = (self.pid, thread.identity.tid);
        let message = fields.iter().find(|(name, _)| *name == "message");
        w.write_all(b"{\"ph\":\"i\",\"s\":\"t\",\"name\":")?;
        match &message {
            Some((_, value)) => match value.text() {
                Some(text) => json_str(w, &text)?,
                None => json_str(w, &value.to_field_value().to_string())?,
            },
            None => json_str(w, metadata.name())?,
        }
        w.write_all(b",\"cat\":")?;
        json_str(w, metadata.target())?;
        write!(w, ",\"pid\":{pid},\"tid\":{tid},\"ts\":")?;
        micros(w, out.ts)?;
        w.write_all(b",\"args\":{\"level\":")?;
        json_str(w, metadata.level().as_str())?;
        w.write_all(b",\"target\":")?;
        json_str(w, metadata.target())?;
        json::write_location(w, metadata)?;
        if out.value != 0 {
            write!(w, ",\"span_id\":{}", out.value)?;
        }
        if out.flags & EXPLICIT_PARENT != 0 {
            w.write_all(b",\"explicit_parent\":true")?;
        }
        if let Some((_, value)) = &message {
            w.write_all(b",\"message\":")?;
            json_value(w, value)?;
        }
        if view.flags & FLAG_FIELDS_DROPPED != 0 {
            w.write_all(b",\"fields_dropped\":true")?;
        }
        write_fields(w, fields.iter().filter(|(name, _)| *name != "message"))?;
        w.write_all(b"}}")
    }
}

/// Per thread, the output entries its records make (a slice per enter, an instant per event, a
/// lifetime end per creation and close), and the number of spans created: capacities.
fn expected_entries(capture: &Capture) -> (Vec<usize>, usize) {
    let mut spans = 0;
    let entries = capture
        .raw
        .threads
        .iter()
        .map(|thread| {
            let mut count = 0;
            let mut index = 0;
            while let Some(chunk) = thread.chunk(index) {
                for (_, view) in RecordReader::new(chunk) {
                    match view.kind {
                        kind::NEW_SPAN => {
                            spans += 1;
                            count += 1;
                        }
                        kind::ENTER | kind::EVENT | kind::CLOSE => count += 1,
                        _ => {}
                    }
                }
                index += 1;
            }
            count
        })
        .collect();
    (entries, spans)
}

fn process_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|path| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "tracing-blackbox".to_owned())
}
