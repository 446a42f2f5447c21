//! What the output needs to know of each span: its callsite, parent, where its fields are
//! (the `NewSpan` record and any `record()` updates, read again when written), when and where
//! it opened and closed, and what it follows from. 72 bytes a span, plus the map's own.

use std::collections::HashMap;

use tracing_core::Metadata;

use crate::dump::reader::{Body, ValueRef};
use crate::dump::snapshot::RecordAt;
use crate::record::storage::ThreadChunks;

/// Name of spans whose creation was evicted before the window.
const EVICTED_SPAN_NAME: &str = "(span created before the window)";

/// Where a lifetime begins or ends: a timestamp on a thread (capture index).
pub(super) type At = (u64, u32);

/// No thread (capture index).
const NONE: u32 = u32::MAX;

pub(super) struct SpanInfo {
    pub(super) metadata: Option<&'static Metadata<'static>>,
    /// 0: none (span ids are never 0).
    parent: u64,
    opened_ts: u64,
    closed_ts: u64,
    opened_thread: u32,
    closed_thread: u32,
    /// The thread of the first record about the span: where its lifetime starts when its
    /// creation was evicted.
    pub(super) first_seen_thread: u32,
    /// The `NewSpan` record, whose fields are the span's first values (thread NONE: evicted).
    created: RecordAt,
    /// The thread its slices are on, or `MANY_THREADS`.
    pub(super) slice_thread: u32,
    /// Whether `record()` updates are in the side table.
    updated: bool,
}

/// `slice_thread` of a span with slices on two threads or more.
pub(super) const MANY_THREADS: u32 = u32::MAX - 1;

impl Default for SpanInfo {
    fn default() -> Self {
        SpanInfo::UNKNOWN
    }
}

impl SpanInfo {
    /// A span nothing is known of yet.
    const UNKNOWN: SpanInfo = SpanInfo {
        metadata: None,
        parent: 0,
        opened_ts: 0,
        closed_ts: 0,
        opened_thread: NONE,
        closed_thread: NONE,
        first_seen_thread: NONE,
        created: RecordAt {
            thread: NONE,
            chunk: 0,
            offset: 0,
        },
        slice_thread: NONE,
        updated: false,
    };

    pub(super) fn parent(&self) -> Option<u64> {
        (self.parent != 0).then_some(self.parent)
    }

    pub(super) fn opened(&self) -> Option<At> {
        (self.opened_thread != NONE).then_some((self.opened_ts, self.opened_thread))
    }

    pub(super) fn closed(&self) -> Option<At> {
        (self.closed_thread != NONE).then_some((self.closed_ts, self.closed_thread))
    }

    pub(super) fn close(&mut self, at: At) {
        (self.closed_ts, self.closed_thread) = at;
    }

    /// Notes a slice of the span on `thread`; true once it has slices on two threads.
    pub(super) fn sliced_on(&mut self, thread: u32) {
        if self.slice_thread == NONE {
            self.slice_thread = thread;
        } else if self.slice_thread != thread {
            self.slice_thread = MANY_THREADS;
        }
    }

    pub(super) fn name(&self) -> &'static str {
        self.metadata.map_or(EVICTED_SPAN_NAME, |m| m.name())
    }

    pub(super) fn category(&self) -> &'static str {
        self.metadata.map_or("tracing", |m| m.target())
    }
}

/// Every span the window mentions.
#[derive(Default)]
pub(super) struct SpanTable {
    spans: HashMap<u64, SpanInfo>,
    /// `record()` updates, in time order, of the spans that have any.
    updates: HashMap<u64, Vec<RecordAt>>,
    follows: HashMap<u64, Vec<u64>>,
}

impl SpanTable {
    pub(super) fn with_capacity(spans: usize) -> Self {
        SpanTable {
            spans: HashMap::with_capacity(spans),
            ..SpanTable::default()
        }
    }

    /// Notes a record about `span` at `at`.
    pub(super) fn seen(&mut self, span: u64, at: At) -> &mut SpanInfo {
        let info = self.spans.entry(span).or_default();
        if info.first_seen_thread == NONE {
            info.first_seen_thread = at.1;
        }
        info
    }

    pub(super) fn get_mut(&mut self, span: u64) -> Option<&mut SpanInfo> {
        self.spans.get_mut(&span)
    }

    pub(super) fn created(
        &mut self,
        span: u64,
        parent: Option<u64>,
        metadata: &'static Metadata<'static>,
        record: RecordAt,
        at: At,
    ) {
        let info = self.seen(span, at);
        info.metadata = Some(metadata);
        info.parent = parent.unwrap_or(0);
        (info.opened_ts, info.opened_thread) = at;
        info.created = record;
    }

    pub(super) fn updated(&mut self, span: u64, record: RecordAt, at: At) {
        self.seen(span, at).updated = true;
        self.updates.entry(span).or_default().push(record);
    }

    pub(super) fn follows_from(&mut self, span: u64, follows: u64, at: At) {
        self.seen(span, at);
        self.follows.entry(span).or_default().push(follows);
    }

    /// Every span referenced is in the table; an empty entry stands in rather than a panic.
    pub(super) fn get(&self, span: u64) -> &SpanInfo {
        static UNKNOWN: SpanInfo = SpanInfo::UNKNOWN;
        self.spans.get(&span).unwrap_or(&UNKNOWN)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (u64, &SpanInfo)> {
        self.spans.iter().map(|(&span, info)| (span, info))
    }

    pub(super) fn follows(&self, span: u64) -> &[u64] {
        self.follows.get(&span).map_or(&[], Vec::as_slice)
    }

    /// The span's fields, with later `record()` values applied (a later value replaces an
    /// earlier one of the same name, in place), read from the capture's chunks.
    pub(super) fn fields<'c>(
        &self,
        span: u64,
        threads: &'c [ThreadChunks],
        out: &mut Vec<(&'static str, ValueRef<'c>)>,
    ) {
        out.clear();
        let info = self.get(span);
        if let Some(view) = info.created.read(threads)
            && let Body::NewSpan { fields, .. } = view.body
        {
            out.extend(fields.iter());
        }
        if !info.updated {
            return;
        }
        for view in self.updates[&span].iter().filter_map(|at| at.read(threads)) {
            let Body::Record { fields, .. } = view.body else {
                continue;
            };
            for (name, value) in fields.iter() {
                match out.iter_mut().find(|(n, _)| *n == name) {
                    Some(slot) => slot.1 = value,
                    None => out.push((name, value)),
                }
            }
        }
    }
}
