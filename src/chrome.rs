//! Chrome Trace Event JSON output (object form), as ui.perfetto.dev and speedscope read it.
//!
//! Per thread, enter→exit intervals become `X` slices, paired with a stack; exits that come out
//! of order are repaired so slices still nest (Perfetto moves overlapping slices to another
//! track), and counted. Each span's lifetime becomes an async `b`/`e` pair whose id is the
//! span's own. Events become thread-scoped instants. See `docs/format.md`.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::io::{self, BufWriter, Write};

use serde_json::Value;

use crate::context::DumpContext;
use crate::record::{Field, FieldValue};
use crate::snapshot::{RecordKind, Snapshot};

/// Version of the dump layout, in `otherData.version`.
pub const FORMAT_VERSION: u32 = 1;

/// Name of spans whose creation was evicted before the window.
const EVICTED_SPAN_NAME: &str = "(span created before the window)";

#[derive(Default)]
struct SpanInfo<'a> {
    metadata: Option<&'static tracing_core::Metadata<'static>>,
    parent: Option<u64>,
    fields: Vec<&'a Field>,
    follows: Vec<u64>,
    opened: Option<(u64, u64)>,
    closed: Option<(u64, u64)>,
    first_seen: Option<(u64, u64)>,
}

impl SpanInfo<'_> {
    fn name(&self) -> &'static str {
        self.metadata.map_or(EVICTED_SPAN_NAME, |m| m.name())
    }

    fn category(&self) -> &'static str {
        self.metadata.map_or("tracing", |m| m.target())
    }
}

/// An output event, before sorting.
enum Out {
    Slice {
        span: u64,
        ts: u64,
        dur: u64,
        flags: SliceFlags,
    },
    Instant {
        record: usize,
    },
    Begin {
        span: u64,
        ts: u64,
    },
    End {
        span: u64,
        ts: u64,
    },
    /// A flow arrow step (`s`, `t` or `f`) bound to one of the span's slices.
    Flow {
        span: u64,
        ts: u64,
        phase: u8,
    },
}

#[derive(Default, Clone, Copy)]
struct SliceFlags {
    incomplete: bool,
    repaired: bool,
    start_evicted: bool,
}

/// An open enter→exit interval on a thread.
#[derive(Clone, Copy)]
struct Frame {
    span: u64,
    start: u64,
    /// The interval was cut by a repair and reopened at `start`.
    repaired: bool,
    /// The enter was not in the window; `start` is the thread's first retained record.
    start_evicted: bool,
}

#[derive(Default)]
struct Timeline {
    stack: Vec<Frame>,
    first_ts: u64,
    out: Vec<(u64, Out)>,
}

#[derive(Default)]
struct Repairs {
    out_of_order_exits: u64,
    evicted_enters: u64,
}

/// Writes `snapshot` as Chrome Trace Event JSON; returns the bytes written.
pub(crate) fn write<W: Write>(
    snapshot: &Snapshot,
    context: &DumpContext,
    writer: W,
) -> io::Result<u64> {
    let mut counting = CountingWriter {
        inner: writer,
        count: 0,
    };
    {
        let mut out = BufWriter::with_capacity(64 << 10, &mut counting);
        Encoder::new(snapshot, context).write(context, &mut out)?;
        out.flush()?;
    }
    Ok(counting.count)
}

struct Encoder<'a> {
    snapshot: &'a Snapshot,
    spans: HashMap<u64, SpanInfo<'a>>,
    timelines: HashMap<u64, Timeline>,
    repairs: Repairs,
    pid: u32,
    /// The span that triggered the dump, marked `"trigger": true`.
    trigger_span: Option<u64>,
}

impl<'a> Encoder<'a> {
    fn new(snapshot: &'a Snapshot, context: &DumpContext) -> Self {
        let mut encoder = Encoder {
            snapshot,
            spans: HashMap::new(),
            timelines: HashMap::new(),
            repairs: Repairs::default(),
            pid: std::process::id(),
            trigger_span: context.trigger.as_ref().map(|t| t.span_id),
        };
        encoder.collect_spans();
        encoder.build_timelines();
        encoder
    }

    fn collect_spans(&mut self) {
        for record in &self.snapshot.records {
            let at = (record.timestamp_ns, record.tid);
            let span_of = |kind: &RecordKind| match kind {
                RecordKind::NewSpan { span, .. }
                | RecordKind::Enter { span }
                | RecordKind::Exit { span }
                | RecordKind::Close { span }
                | RecordKind::Record { span, .. }
                | RecordKind::FollowsFrom { span, .. } => Some(*span),
                RecordKind::Event { span, .. } => *span,
            };
            let Some(span) = span_of(&record.kind) else {
                continue;
            };
            let info = self.spans.entry(span).or_default();
            info.first_seen.get_or_insert(at);
            match &record.kind {
                RecordKind::NewSpan {
                    parent,
                    metadata,
                    fields,
                    ..
                } => {
                    info.metadata = Some(metadata);
                    info.parent = *parent;
                    info.opened = Some(at);
                    info.fields.extend(fields.iter());
                }
                RecordKind::Record { fields, .. } => {
                    for field in fields {
                        match info.fields.iter_mut().find(|f| f.name == field.name) {
                            Some(slot) => *slot = field,
                            None => info.fields.push(field),
                        }
                    }
                }
                RecordKind::FollowsFrom { follows, .. } => info.follows.push(*follows),
                RecordKind::Close { .. } => info.closed = Some(at),
                _ => {}
            }
        }
    }

    fn build_timelines(&mut self) {
        let window_end = self.snapshot.window_end_ns;
        for (index, record) in self.snapshot.records.iter().enumerate() {
            let ts = record.timestamp_ns;
            let timeline = self
                .timelines
                .entry(record.tid)
                .or_insert_with(|| Timeline {
                    first_ts: ts,
                    ..Timeline::default()
                });
            match record.kind {
                RecordKind::Enter { span } => timeline.stack.push(Frame {
                    span,
                    start: ts,
                    repaired: false,
                    start_evicted: false,
                }),
                RecordKind::Exit { span } => timeline.exit(span, ts, &mut self.repairs),
                RecordKind::Event {
                    span,
                    explicit_parent,
                    ..
                } => {
                    if let (Some(span), false) = (span, explicit_parent) {
                        // The event happened inside `span` on this thread.
                        timeline.ensure_open(span, &mut self.repairs);
                    }
                    timeline.out.push((ts, Out::Instant { record: index }));
                }
                _ => {}
            }
        }
        for timeline in self.timelines.values_mut() {
            while let Some(frame) = timeline.stack.pop() {
                timeline.out.push((
                    frame.start,
                    Out::Slice {
                        span: frame.span,
                        ts: frame.start,
                        dur: window_end.saturating_sub(frame.start),
                        flags: SliceFlags {
                            incomplete: true,
                            repaired: frame.repaired,
                            start_evicted: frame.start_evicted,
                        },
                    },
                ));
            }
        }
        self.add_flows();
        let window_start = self.snapshot.window_start_ns;
        for (&span, info) in &self.spans {
            let (begin_ts, begin_tid) = info
                .opened
                .unwrap_or((window_start, info.first_seen.map_or(0, |(_, tid)| tid)));
            let (end_ts, end_tid) = info.closed.unwrap_or((window_end, begin_tid));
            if let Some(timeline) = self.timelines.get_mut(&begin_tid) {
                timeline
                    .out
                    .push((begin_ts, Out::Begin { span, ts: begin_ts }));
            }
            if let Some(timeline) = self.timelines.get_mut(&end_tid) {
                timeline.out.push((end_ts, Out::End { span, ts: end_ts }));
            }
        }
        for timeline in self.timelines.values_mut() {
            // Per thread: by start, outer slices before the slices they contain.
            timeline.out.sort_by_key(|(ts, out)| {
                let (rank, dur) = match out {
                    Out::Begin { .. } => (0, 0),
                    Out::Slice { dur, .. } => (1, *dur),
                    Out::Flow { .. } => (2, 0),
                    Out::Instant { .. } => (3, 0),
                    Out::End { .. } => (4, 0),
                };
                (*ts, rank, Reverse(dur))
            });
        }
    }

    /// Links the consecutive slices (polls, for async code) of every span that ran on more than
    /// one thread with flow arrows: `s` on the first, `t` on the ones between, `f` on the last,
    /// each at its slice's start, so a request can be followed from thread to thread.
    fn add_flows(&mut self) {
        let mut slices: HashMap<u64, Vec<(u64, u64)>> = HashMap::new();
        for (&tid, timeline) in &self.timelines {
            for (_, out) in &timeline.out {
                if let Out::Slice { span, ts, .. } = *out {
                    slices.entry(span).or_default().push((ts, tid));
                }
            }
        }
        for (span, mut list) in slices {
            let first_tid = list[0].1;
            if list.iter().all(|&(_, tid)| tid == first_tid) {
                continue;
            }
            list.sort_unstable();
            let last = list.len() - 1;
            for (i, (ts, tid)) in list.into_iter().enumerate() {
                let phase = match i {
                    0 => b's',
                    i if i == last => b'f',
                    _ => b't',
                };
                if let Some(timeline) = self.timelines.get_mut(&tid) {
                    timeline.out.push((ts, Out::Flow { span, ts, phase }));
                }
            }
        }
    }

    /// Every span referenced is in the table; an empty entry stands in rather than a panic.
    fn span(&self, span: u64) -> &SpanInfo<'a> {
        static UNKNOWN: SpanInfo<'static> = SpanInfo {
            metadata: None,
            parent: None,
            fields: Vec::new(),
            follows: Vec::new(),
            opened: None,
            closed: None,
            first_seen: None,
        };
        self.spans.get(&span).unwrap_or(&UNKNOWN)
    }

    fn write(&self, context: &DumpContext, w: &mut impl Write) -> io::Result<()> {
        w.write_all(b"{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n")?;
        let mut first = true;
        let mut separator = |w: &mut dyn Write| -> io::Result<()> {
            if !std::mem::take(&mut first) {
                w.write_all(b",\n")?;
            }
            Ok(())
        };
        separator(w)?;
        write!(
            w,
            "{{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":{},\"args\":{{\"name\":",
            self.pid
        )?;
        json_str(w, &process_name())?;
        w.write_all(b"}}")?;
        let mut tids: Vec<u64> = self.timelines.keys().copied().collect();
        tids.sort_unstable();
        let names: HashMap<u64, &str> = self
            .snapshot
            .threads
            .iter()
            .map(|t| (t.tid, t.name.as_str()))
            .collect();
        for &tid in &tids {
            separator(w)?;
            write!(
                w,
                "{{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":{},\"tid\":{tid},\"args\":{{\"name\":",
                self.pid
            )?;
            let fallback = format!("thread-{tid}");
            json_str(w, names.get(&tid).copied().unwrap_or(&fallback))?;
            w.write_all(b"}}")?;
        }
        for &tid in &tids {
            for (_, out) in &self.timelines[&tid].out {
                separator(w)?;
                self.write_event(w, tid, out)?;
            }
        }
        w.write_all(b"\n],\n\"otherData\":")?;
        self.write_other_data(w, context)?;
        w.write_all(b"}\n")
    }

    fn write_event(&self, w: &mut impl Write, tid: u64, out: &Out) -> io::Result<()> {
        let pid = self.pid;
        match *out {
            Out::Slice {
                span,
                ts,
                dur,
                flags,
            } => {
                let info = self.span(span);
                w.write_all(b"{\"ph\":\"X\",\"name\":")?;
                json_str(w, info.name())?;
                w.write_all(b",\"cat\":")?;
                json_str(w, info.category())?;
                write!(w, ",\"pid\":{pid},\"tid\":{tid},\"ts\":")?;
                micros(w, ts)?;
                w.write_all(b",\"dur\":")?;
                micros(w, dur)?;
                write!(w, ",\"args\":{{\"span_id\":{span}")?;
                if let Some(parent) = info.parent {
                    write!(w, ",\"parent_id\":{parent}")?;
                }
                for (flag, name) in [
                    (flags.incomplete, "incomplete"),
                    (flags.repaired, "repaired"),
                    (flags.start_evicted, "start_evicted"),
                    (self.trigger_span == Some(span), "trigger"),
                ] {
                    if flag {
                        write!(w, ",\"{name}\":true")?;
                    }
                }
                write_fields(w, info.fields.iter().copied())?;
                w.write_all(b"}}")
            }
            Out::Begin { span, ts } => {
                let info = self.span(span);
                w.write_all(b"{\"ph\":\"b\",\"name\":")?;
                json_str(w, info.name())?;
                w.write_all(b",\"cat\":")?;
                json_str(w, info.category())?;
                write!(
                    w,
                    ",\"id\":\"0x{span:x}\",\"pid\":{pid},\"tid\":{tid},\"ts\":"
                )?;
                micros(w, ts)?;
                write!(w, ",\"args\":{{\"span_id\":{span}")?;
                if let Some(parent) = info.parent {
                    write!(w, ",\"parent_id\":{parent}")?;
                }
                if let Some(metadata) = info.metadata {
                    w.write_all(b",\"level\":")?;
                    json_str(w, metadata.level().as_str())?;
                    w.write_all(b",\"target\":")?;
                    json_str(w, metadata.target())?;
                    write_location(w, metadata)?;
                } else {
                    w.write_all(b",\"start_evicted\":true")?;
                }
                if self.trigger_span == Some(span) {
                    w.write_all(b",\"trigger\":true")?;
                }
                if !info.follows.is_empty() {
                    w.write_all(b",\"follows_from\":[")?;
                    for (i, follows) in info.follows.iter().enumerate() {
                        if i > 0 {
                            w.write_all(b",")?;
                        }
                        write!(w, "{follows}")?;
                    }
                    w.write_all(b"]")?;
                }
                write_fields(w, info.fields.iter().copied())?;
                w.write_all(b"}}")
            }
            Out::Flow { span, ts, phase } => {
                let info = self.span(span);
                write!(w, "{{\"ph\":\"{}\",\"name\":", char::from(phase))?;
                json_str(w, info.name())?;
                w.write_all(b",\"cat\":")?;
                json_str(w, info.category())?;
                write!(w, ",\"id\":{span},\"pid\":{pid},\"tid\":{tid},\"ts\":")?;
                micros(w, ts)?;
                if phase == b'f' {
                    w.write_all(b",\"bp\":\"e\"")?;
                }
                w.write_all(b"}")
            }
            Out::End { span, ts } => {
                let info = self.span(span);
                w.write_all(b"{\"ph\":\"e\",\"name\":")?;
                json_str(w, info.name())?;
                w.write_all(b",\"cat\":")?;
                json_str(w, info.category())?;
                write!(
                    w,
                    ",\"id\":\"0x{span:x}\",\"pid\":{pid},\"tid\":{tid},\"ts\":"
                )?;
                micros(w, ts)?;
                if info.closed.is_none() {
                    w.write_all(b",\"args\":{\"incomplete\":true}")?;
                }
                w.write_all(b"}")
            }
            Out::Instant { record } => {
                let record = &self.snapshot.records[record];
                let RecordKind::Event {
                    span,
                    explicit_parent,
                    metadata,
                    ref fields,
                } = record.kind
                else {
                    return Ok(());
                };
                let message = fields.iter().find(|f| f.name == "message");
                w.write_all(b"{\"ph\":\"i\",\"s\":\"t\",\"name\":")?;
                match message {
                    Some(Field {
                        value: FieldValue::Str(text),
                        ..
                    }) => json_str(w, text.as_str())?,
                    Some(field) => json_str(w, &field.value.to_string())?,
                    None => json_str(w, metadata.name())?,
                }
                w.write_all(b",\"cat\":")?;
                json_str(w, metadata.target())?;
                write!(w, ",\"pid\":{pid},\"tid\":{tid},\"ts\":")?;
                micros(w, record.timestamp_ns)?;
                w.write_all(b",\"args\":{\"level\":")?;
                json_str(w, metadata.level().as_str())?;
                w.write_all(b",\"target\":")?;
                json_str(w, metadata.target())?;
                write_location(w, metadata)?;
                if let Some(span) = span {
                    write!(w, ",\"span_id\":{span}")?;
                }
                if explicit_parent {
                    w.write_all(b",\"explicit_parent\":true")?;
                }
                if let Some(message) = message {
                    w.write_all(b",\"message\":")?;
                    json_value(w, &message.value)?;
                }
                if record.fields_dropped {
                    w.write_all(b",\"fields_dropped\":true")?;
                }
                write_fields(w, fields.iter().filter(|f| f.name != "message"))?;
                w.write_all(b"}}")
            }
        }
    }

    fn write_other_data(&self, w: &mut impl Write, context: &DumpContext) -> io::Result<()> {
        let s = self.snapshot;
        let rfc3339 = |ns| Value::String(s.wall_time(ns).to_rfc3339());
        let micros_value = |ns: u64| {
            serde_json::Number::from_f64(ns as f64 / 1000.0).map_or(Value::Null, Value::Number)
        };
        let mut data = serde_json::json!({
            "format": "tracing-blackbox",
            "version": FORMAT_VERSION,
            "crate_version": env!("CARGO_PKG_VERSION"),
            "reason": context.reason.as_str(),
            "anchor": s.anchor.to_rfc3339(),
            "window_start": rfc3339(s.window_start_ns),
            "window_end": rfc3339(s.window_end_ns),
            "window_start_us": micros_value(s.window_start_ns),
            "window_end_us": micros_value(s.window_end_ns),
            "max_bytes": s.max_bytes,
            "min_age_ms": u64::try_from(s.min_age.as_millis()).unwrap_or(u64::MAX),
            "allocated_bytes": s.allocated_bytes,
            "written": s.counters.written,
            "overwritten": s.counters.overwritten,
            "dropped": s.counters.dropped,
            "retained": s.counters.retained,
            "repaired_exits": self.repairs.out_of_order_exits,
            "evicted_enters": self.repairs.evicted_enters,
            "suppressed": context.suppressed,
        });
        for (key, value) in &context.extra {
            data[*key] = value.clone();
        }
        if let Some(trigger) = &context.trigger {
            let fields: serde_json::Map<String, Value> = self
                .span(trigger.span_id)
                .fields
                .iter()
                .map(|f| (f.name.to_owned(), field_json(&f.value)))
                .collect();
            data["trigger"] = serde_json::json!({
                "span": trigger.span_name,
                "span_id": trigger.span_id,
                "fields": fields,
                "duration_ms": trigger.duration_nanos as f64 / 1e6,
                "threshold_ms": trigger.threshold_nanos as f64 / 1e6,
                "timing": trigger.timing.as_str(),
            });
        }
        if let Some(event) = &context.event {
            data["trigger_event"] = trigger_event_json(event);
        }
        serde_json::to_writer(w, &data).map_err(io::Error::from)
    }
}

impl Timeline {
    /// Makes sure `span` is open on this thread. A span that is found entered but whose enter
    /// is not in the window was entered before it, and has been entered ever since: it opens at
    /// the bottom of the stack, at the thread's first retained record, around everything after.
    fn ensure_open(&mut self, span: u64, repairs: &mut Repairs) -> usize {
        if let Some(position) = self.stack.iter().rposition(|f| f.span == span) {
            return position;
        }
        repairs.evicted_enters += 1;
        self.stack.insert(
            0,
            Frame {
                span,
                start: self.first_ts,
                repaired: false,
                start_evicted: true,
            },
        );
        0
    }

    /// Closes `span`'s innermost open interval at `ts`. Intervals opened inside it are closed
    /// at `ts` too and reopened there, so slices nest.
    fn exit(&mut self, span: u64, ts: u64, repairs: &mut Repairs) {
        let position = self.ensure_open(span, repairs);
        let mut closing: Vec<Frame> = self.stack.drain(position..).collect();
        let target = closing.remove(0);
        if !closing.is_empty() {
            repairs.out_of_order_exits += 1;
        }
        for inner in closing.iter().rev() {
            self.out.push((
                inner.start,
                Out::Slice {
                    span: inner.span,
                    ts: inner.start,
                    dur: ts - inner.start,
                    flags: SliceFlags {
                        repaired: true,
                        start_evicted: inner.start_evicted,
                        incomplete: false,
                    },
                },
            ));
        }
        self.out.push((
            target.start,
            Out::Slice {
                span,
                ts: target.start,
                dur: ts - target.start,
                flags: SliceFlags {
                    repaired: target.repaired || !closing.is_empty(),
                    start_evicted: target.start_evicted,
                    incomplete: false,
                },
            },
        ));
        for inner in closing {
            self.stack.push(Frame {
                start: ts,
                repaired: true,
                start_evicted: false,
                ..inner
            });
        }
    }
}

fn process_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|path| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "tracing-blackbox".to_owned())
}

fn write_location(w: &mut impl Write, metadata: &tracing_core::Metadata<'_>) -> io::Result<()> {
    if let Some(file) = metadata.file() {
        w.write_all(b",\"location\":")?;
        match metadata.line() {
            Some(line) => json_str(w, &format!("{file}:{line}")),
            None => json_str(w, file),
        }?;
    }
    Ok(())
}

fn write_fields<'f>(w: &mut impl Write, fields: impl Iterator<Item = &'f Field>) -> io::Result<()> {
    let mut fields = fields.peekable();
    if fields.peek().is_none() {
        return Ok(());
    }
    w.write_all(b",\"fields\":{")?;
    for (i, field) in fields.enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        json_str(w, field.name)?;
        w.write_all(b":")?;
        json_value(w, &field.value)?;
    }
    w.write_all(b"}")
}

/// JSON has no NaN or infinities: they are written as the strings `"NaN"`, `"inf"` and
/// `"-inf"` (JSON `null` would lose them).
fn non_finite(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v.is_infinite() {
        Some(if v > 0.0 { "inf" } else { "-inf" })
    } else {
        None
    }
}

fn json_value(w: &mut impl Write, value: &FieldValue) -> io::Result<()> {
    let result = match value {
        FieldValue::U64(v) => serde_json::to_writer(w, v),
        FieldValue::I64(v) => serde_json::to_writer(w, v),
        FieldValue::U128(v) => serde_json::to_writer(w, v),
        FieldValue::I128(v) => serde_json::to_writer(w, v),
        FieldValue::F64(v) => match non_finite(*v) {
            Some(text) => serde_json::to_writer(w, text),
            None => serde_json::to_writer(w, v),
        },
        FieldValue::Bool(v) => serde_json::to_writer(w, v),
        FieldValue::Str(v) => serde_json::to_writer(w, v),
    };
    result.map_err(io::Error::from)
}

fn field_json(value: &FieldValue) -> Value {
    match value {
        FieldValue::U64(v) => Value::from(*v),
        FieldValue::I64(v) => Value::from(*v),
        FieldValue::U128(v) => serde_json::to_value(v).unwrap_or(Value::Null),
        FieldValue::I128(v) => serde_json::to_value(v).unwrap_or(Value::Null),
        FieldValue::F64(v) => non_finite(*v).map_or_else(|| Value::from(*v), Value::from),
        FieldValue::Bool(v) => Value::from(*v),
        FieldValue::Str(v) => Value::from(v.as_str()),
    }
}

/// `otherData.trigger_event`: the event an error dump is for.
fn trigger_event_json(event: &crate::context::TriggerEvent) -> Value {
    let metadata = event.metadata;
    let message = event.fields.iter().find(|f| f.name == "message");
    let fields: serde_json::Map<String, Value> = event
        .fields
        .iter()
        .filter(|f| f.name != "message")
        .map(|f| (f.name.to_owned(), field_json(&f.value)))
        .collect();
    serde_json::json!({
        "level": metadata.level().as_str(),
        "target": metadata.target(),
        "name": metadata.name(),
        "location": match (metadata.file(), metadata.line()) {
            (Some(file), Some(line)) => Value::from(format!("{file}:{line}")),
            (Some(file), None) => Value::from(file),
            _ => Value::Null,
        },
        "message": message.map_or(Value::Null, |m| field_json(&m.value)),
        "fields": fields,
        "recorded": event.recorded,
    })
}

fn json_str(w: &mut impl Write, text: &str) -> io::Result<()> {
    serde_json::to_writer(w, text).map_err(io::Error::from)
}

/// Nanoseconds as microseconds with three decimals, exactly.
fn micros(w: &mut impl Write, nanos: u64) -> io::Result<()> {
    write!(w, "{}.{:03}", nanos / 1000, nanos % 1000)
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
