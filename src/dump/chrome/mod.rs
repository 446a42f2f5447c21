//! Chrome Trace Event JSON output (object form), as ui.perfetto.dev and speedscope read it.
//!
//! Encoded straight from a capture's chunks: one pass over the records in time order builds,
//! per thread, compact output entries (enter→exit pairs become `X` slices that nest; events
//! become thread-scoped instants) and a table of spans (each span's lifetime becomes an async
//! `b`/`e` pair with its own id); fields are read from the chunks again as they are written.
//! Working memory is about the size of the capture itself, not several times it. See
//! `docs/format.md`.

mod events;
mod flows;
mod json;
mod other_data;
mod runtime;
mod spans;
mod stream;
mod tasks;
mod timeline;

use std::borrow::Borrow;

use crate::dump::context::DumpContext;
use crate::dump::reader::{Body, RecordReader};
use crate::dump::snapshot::{Ids, RecordAt, TimeOrder};
use crate::record::encode::kind;
use crate::record::storage::ThreadChunks;
use crate::record::{Capture, Timebase};
use spans::SpanTable;
use tasks::TaskTable;
use timeline::{Out, OutKind, Repairs, Timeline};

#[cfg(feature = "http")]
pub(crate) use stream::ChromeStream;
pub(crate) use stream::write;

/// Version of the dump layout, in `otherData.version`.
pub const FORMAT_VERSION: u32 = 1;

/// Instant flag: the event named its parent explicitly.
const EXPLICIT_PARENT: u8 = 1;

/// The wall-clock time a dump ends at (its file name's stamp).
pub(crate) fn window_end(capture: &Capture, timebase: &Timebase) -> chrono::DateTime<chrono::Utc> {
    timebase.wall_time(timebase.nanos_since_anchor(capture.end_raw))
}

/// The capture, its spans and per-thread timelines, built in one pass and then only read:
/// writing it out is [`ChromeStream`]'s job. `C` is the capture, owned (a stream served over
/// HTTP outlives the request that took it) or borrowed (a file written on the spot).
struct Encoder<C> {
    capture: C,
    timebase: Timebase,
    context: DumpContext,
    layout: Layout,
    pid: u32,
    /// The span that triggered the dump, marked `"trigger": true`.
    trigger_span: Option<u64>,
}

impl<C: Borrow<Capture>> Encoder<C> {
    fn new(capture: C, timebase: &Timebase, context: DumpContext) -> Self {
        let trigger_span = context.trigger.as_ref().map(|t| t.span_id);
        let pid = context
            .process
            .as_ref()
            .map_or_else(std::process::id, |(pid, _)| *pid);
        Encoder {
            layout: Layout::build(capture.borrow(), timebase),
            capture,
            timebase: timebase.clone(),
            context,
            pid,
            trigger_span,
        }
    }

    fn capture(&self) -> &Capture {
        self.capture.borrow()
    }
}

/// What the pass over the records builds: the encoder's working state.
struct Layout {
    spans: SpanTable,
    /// tokio's tasks, from their `runtime.spawn` spans.
    tasks: TaskTable,
    /// Per capture thread; `None` for threads without records.
    timelines: Vec<Option<Timeline>>,
    repairs: Repairs,
    retained: u64,
    window_start: u64,
    window_end: u64,
}

impl Layout {
    fn build(capture: &Capture, timebase: &Timebase) -> Self {
        let threads = &capture.raw.threads;
        let window_end = timebase.nanos_since_anchor(capture.end_raw);
        // Sized once, from a pass over the headers: growing by doubling would cost up to
        // three times the final size while copying.
        let (entries, spans) = expected_entries(capture);
        let mut layout = Layout {
            spans: SpanTable::with_capacity(spans),
            tasks: TaskTable::default(),
            timelines: entries.iter().map(|_| None).collect(),
            repairs: Repairs::default(),
            retained: 0,
            window_start: window_end,
            window_end,
        };
        let mut order = TimeOrder::new(timebase, threads);
        while let Some(record) = order.next() {
            if layout.retained == 0 {
                layout.window_start = record.ts_ns.min(window_end);
            }
            layout.retained += 1;
            let thread = record.at.thread as usize;
            if layout.timelines[thread].is_none() {
                layout.timelines[thread] =
                    Some(Timeline::with_capacity(record.ts_ns, entries[thread]));
            }
            if let Body::Event {
                metadata, fields, ..
            } = &record.view.body
                && tasks::is_waker_event(metadata)
                && let Some(task) = tasks::woken_task(fields).and_then(|id| order.live_span(id))
            {
                let in_slice = layout.timelines[thread]
                    .as_ref()
                    .is_some_and(Timeline::in_slice);
                let at = (record.ts_ns, record.at.thread);
                layout.tasks.woken(task, at, in_slice);
            }
            layout.add(record.at, record.ts_ns, record.ids, &record.view);
        }
        layout.finish(threads);
        layout
    }

    /// One record, in time order: into the span table and its thread's timeline.
    fn add(&mut self, at: RecordAt, ts: u64, ids: Ids, view: &crate::dump::reader::RecordView<'_>) {
        let thread = at.thread;
        let here = (ts, thread);
        if let Some(span) = ids.span() {
            let info = self.spans.seen(span, here);
            match ids {
                Ids::Close { .. } => {
                    info.close(here);
                    self.tasks.closed(span);
                }
                Ids::NewSpan { span, parent } => {
                    if let Body::NewSpan {
                        metadata, fields, ..
                    } = view.body
                    {
                        self.spans.created(span, parent, metadata, at, here);
                        if tasks::is_task_span(metadata) {
                            self.tasks.spawned(span, metadata, &fields, here);
                        }
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
        // The runtime view's park, unpark and counters are not instants.
        if let Body::Event { metadata, .. } = view.body
            && runtime::add(
                timeline,
                &mut self.repairs,
                metadata,
                thread,
                ts,
                u64::from(at.chunk) << 32 | u64::from(at.offset),
            )
        {
            return;
        }
        match ids {
            Ids::Enter { span } => {
                let (note, flow) = self.tasks.poll_started(span, ts);
                timeline.enter(span, ts, note);
                if let Some(flow) = flow {
                    self.add_wake_flow(&flow, (ts, thread));
                }
            }
            Ids::Exit { span } => {
                timeline.exit(span, ts, &mut self.repairs);
                self.tasks.poll_ended(span, here);
            }
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
                    note: 0,
                });
            }
            _ => {}
        }
    }

    /// Closes what is open, adds flows and lifetimes, and puts each thread's entries in order.
    fn finish(&mut self, threads: &[ThreadChunks]) {
        for timeline in self.timelines.iter_mut().flatten() {
            timeline.finish(self.window_end);
        }
        self.add_flows(threads);
        // Tasks still waiting to be polled: an async slice from when they became ready.
        for (span, since, thread) in self.tasks.waiting() {
            if let Some(Some(timeline)) = self.timelines.get_mut(thread as usize) {
                for (ts, kind) in [
                    (since, OutKind::WaitBegin),
                    (self.window_end, OutKind::WaitEnd),
                ] {
                    timeline.out.push(Out {
                        ts: ts.min(self.window_end),
                        value: self.window_end.saturating_sub(since),
                        id: span,
                        kind,
                        flags: 0,
                        note: 0,
                    });
                }
            }
        }
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
                        note: 0,
                    });
                }
            }
        }
        for timeline in self.timelines.iter_mut().flatten() {
            timeline.sort();
        }
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

pub(super) fn process_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|path| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "tracing-blackbox".to_owned())
}
