//! Decoding: raw chunks into time-ordered records with the recorder's own span ids.
//!
//! The registry reuses span ids once a span closes, so records keep the registry's id and this
//! pass resolves them: walking all threads' records merged in time order, a `NewSpan` binds its
//! registry id to the unique id it was given at creation, and a `Close` unbinds it. A record
//! whose span was created before the window (its `NewSpan` evicted) gets a fresh id of its own,
//! with the high bit set.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing_core::Metadata;

use crate::dump::reader::{Body, RecordReader, RecordView};
use crate::record::clock::wall_time;
use crate::record::encode::{FLAG_EXPLICIT_PARENT, FLAG_FIELDS_DROPPED, Field, kind};
use crate::record::storage::ThreadChunks;
use crate::record::{Capture, Timebase};

/// High bit of ids given to spans whose creation was evicted before the snapshot.
pub const ORPHAN_SPAN_BIT: u64 = 1 << 63;

/// A recording thread.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ThreadInfo {
    /// The thread's id in dumps (`tid`), unique in the process.
    pub tid: u64,
    /// The thread's name, or `thread-<tid>` for an unnamed thread.
    pub name: String,
}

/// The record counters of a recorder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Records written since the recorder was built.
    pub written: u64,
    /// Records evicted to make room or because they were older than `min_age`.
    pub overwritten: u64,
    /// Records not taken: re-entrant callbacks, callbacks during thread teardown, no room.
    pub dropped: u64,
    /// Records in this snapshot; `written == retained + overwritten`.
    pub retained: u64,
}

/// What a record says.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RecordKind {
    /// A span was created.
    NewSpan {
        /// The recorder's id for the span, unique for the process lifetime.
        span: u64,
        /// The parent span, if any (and if recorded by this recorder).
        parent: Option<u64>,
        /// The span's callsite: name, target, level, file and line.
        metadata: &'static Metadata<'static>,
        /// The span's fields at creation.
        fields: Vec<Field>,
    },
    /// A thread entered a span.
    Enter {
        /// The span.
        span: u64,
    },
    /// A thread exited a span.
    Exit {
        /// The span.
        span: u64,
    },
    /// A span closed.
    Close {
        /// The span.
        span: u64,
    },
    /// `Span::record` gave a span new field values.
    Record {
        /// The span.
        span: u64,
        /// The values recorded.
        fields: Vec<Field>,
    },
    /// `Span::follows_from` linked two spans.
    FollowsFrom {
        /// The span that follows.
        span: u64,
        /// The span it follows from.
        follows: u64,
    },
    /// An event.
    Event {
        /// The span the event happened in, if any.
        span: Option<u64>,
        /// The event named its span explicitly (`parent: &span`, or `parent: None`) instead of
        /// happening in the thread's current span.
        explicit_parent: bool,
        /// The event's callsite: level, target, file and line.
        metadata: &'static Metadata<'static>,
        /// The event's fields; the message is the field named `message`.
        fields: Vec<Field>,
    },
}

/// One recorded callback.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Record {
    /// The thread it happened on.
    pub tid: u64,
    /// Nanoseconds since the recorder's anchor ([`Snapshot::anchor`]).
    pub timestamp_ns: u64,
    /// What happened.
    pub kind: RecordKind,
    /// Some fields did not fit the record size limit and were left out.
    pub fields_dropped: bool,
}

/// The decoded content of a recorder at one instant.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Snapshot {
    /// Every thread that has records in the window.
    pub threads: Vec<ThreadInfo>,
    /// The records, in time order (ties keep each thread's order).
    pub records: Vec<Record>,
    /// Counters at the snapshot.
    pub counters: Counters,
    /// Wall-clock time of timestamp zero.
    pub anchor: DateTime<Utc>,
    /// Timestamp of the oldest retained record of any thread (the window's start).
    pub window_start_ns: u64,
    /// Timestamp of the snapshot (the window's end).
    pub window_end_ns: u64,
    /// The recorder's `max_bytes`.
    pub max_bytes: usize,
    /// The recorder's `min_age`.
    pub min_age: Duration,
    /// Record storage allocated at the snapshot.
    pub allocated_bytes: usize,
}

impl Snapshot {
    pub(crate) fn decode(timebase: &Timebase, capture: Capture) -> Self {
        let order = TimeOrder::new(timebase, &capture.raw.threads);
        let threads = order.threads();
        let window_end_ns = timebase.nanos_since_anchor(capture.end_raw);
        let mut records = Vec::new();
        for merged in order {
            records.push(Record {
                tid: capture.raw.threads[merged.at.thread as usize].identity.tid,
                timestamp_ns: merged.ts_ns,
                kind: merged.kind(),
                fields_dropped: merged.view.flags & FLAG_FIELDS_DROPPED != 0,
            });
        }
        let window_start_ns = records
            .first()
            .map_or(window_end_ns, |r| r.timestamp_ns.min(window_end_ns));
        let retained = records.len() as u64;
        Snapshot {
            threads,
            records,
            counters: Counters {
                written: capture.raw.written,
                overwritten: capture.raw.overwritten,
                dropped: capture.dropped,
                retained,
            },
            anchor: timebase.anchor_wall,
            window_start_ns,
            window_end_ns,
            max_bytes: capture.max_bytes,
            min_age: capture.min_age,
            allocated_bytes: capture.raw.allocated_bytes,
        }
    }

    /// Wall-clock time of a timestamp.
    pub fn wall_time(&self, timestamp_ns: u64) -> DateTime<Utc> {
        wall_time(self.anchor, timestamp_ns)
    }
}

/// Where a record is in a capture: its thread's index, its chunk's, and its byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordAt {
    pub(crate) thread: u32,
    pub(crate) chunk: u32,
    pub(crate) offset: u32,
}

impl RecordAt {
    /// The record, read again from the capture's chunks.
    pub(crate) fn read(self, threads: &[ThreadChunks]) -> Option<RecordView<'_>> {
        let chunk = threads
            .get(self.thread as usize)?
            .chunk(self.chunk as usize)?;
        RecordReader::at(chunk, self.offset)
    }
}

/// A record's span references, resolved to the recorder's own ids.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ids {
    NewSpan {
        span: u64,
        parent: Option<u64>,
    },
    Enter {
        span: u64,
    },
    Exit {
        span: u64,
    },
    Close {
        span: u64,
    },
    Record {
        span: u64,
    },
    FollowsFrom {
        span: u64,
        follows: u64,
    },
    Event {
        span: Option<u64>,
        explicit_parent: bool,
    },
}

impl Ids {
    /// The span the record is about (for an event: the one it happened in).
    pub(crate) fn span(self) -> Option<u64> {
        match self {
            Ids::NewSpan { span, .. }
            | Ids::Enter { span }
            | Ids::Exit { span }
            | Ids::Close { span }
            | Ids::Record { span }
            | Ids::FollowsFrom { span, .. } => Some(span),
            Ids::Event { span, .. } => span,
        }
    }
}

/// A record met in time order.
pub(crate) struct Merged<'a> {
    pub(crate) at: RecordAt,
    /// Nanoseconds since the anchor, non-decreasing per thread.
    pub(crate) ts_ns: u64,
    pub(crate) view: RecordView<'a>,
    pub(crate) ids: Ids,
}

impl Merged<'_> {
    /// The record as the public [`RecordKind`], fields decoded.
    pub(crate) fn kind(&self) -> RecordKind {
        match (self.ids, self.view.body) {
            (
                Ids::NewSpan { span, parent },
                Body::NewSpan {
                    metadata, fields, ..
                },
            ) => RecordKind::NewSpan {
                span,
                parent,
                metadata,
                fields: fields.decode(),
            },
            (Ids::Record { span }, Body::Record { fields, .. }) => RecordKind::Record {
                span,
                fields: fields.decode(),
            },
            (
                Ids::Event {
                    span,
                    explicit_parent,
                },
                Body::Event {
                    metadata, fields, ..
                },
            ) => RecordKind::Event {
                span,
                explicit_parent,
                metadata,
                fields: fields.decode(),
            },
            (Ids::FollowsFrom { span, follows }, _) => RecordKind::FollowsFrom { span, follows },
            (Ids::Enter { span }, _) => RecordKind::Enter { span },
            (Ids::Exit { span }, _) => RecordKind::Exit { span },
            (Ids::Close { span } | Ids::Record { span } | Ids::NewSpan { span, .. }, _) => {
                RecordKind::Close { span }
            }
            (Ids::Event { .. }, _) => unreachable_kind(),
        }
    }
}

/// `Ids` are made from the same record's body, so the pairs above always match.
#[cold]
fn unreachable_kind() -> RecordKind {
    RecordKind::Close { span: 0 }
}

/// One thread's records in order, timestamps clamped to be non-decreasing (the counter can
/// step back on a core migration).
struct ThreadCursor<'a> {
    thread: &'a ThreadChunks,
    index: u32,
    chunk: u32,
    reader: Option<RecordReader<'a>>,
    last_ts: u64,
}

impl<'a> ThreadCursor<'a> {
    fn next(&mut self) -> Option<(RecordAt, RecordView<'a>)> {
        loop {
            if let Some(reader) = &mut self.reader
                && let Some((offset, mut view)) = reader.next()
            {
                view.ts = view.ts.max(self.last_ts);
                self.last_ts = view.ts;
                let at = RecordAt {
                    thread: self.index,
                    chunk: self.chunk - 1,
                    offset,
                };
                return Some((at, view));
            }
            let chunk = self.thread.chunk(self.chunk as usize)?;
            self.reader = Some(RecordReader::new(chunk));
            self.chunk += 1;
        }
    }
}

/// All threads' records merged in time order (ties keep each thread's order, then thread
/// order), span ids resolved on the way. Memory: one pending record per thread and the map of
/// live spans, whatever the number of records.
pub(crate) struct TimeOrder<'a> {
    timebase: &'a Timebase,
    threads: &'a [ThreadChunks],
    cursors: Vec<ThreadCursor<'a>>,
    pending: Vec<Option<(RecordAt, RecordView<'a>)>>,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    resolver: SpanResolver,
}

impl<'a> TimeOrder<'a> {
    pub(crate) fn new(timebase: &'a Timebase, threads: &'a [ThreadChunks]) -> Self {
        let mut cursors: Vec<ThreadCursor<'a>> = threads
            .iter()
            .enumerate()
            .map(|(index, thread)| ThreadCursor {
                thread,
                index: index as u32,
                chunk: 0,
                reader: None,
                last_ts: 0,
            })
            .collect();
        let pending: Vec<_> = cursors.iter_mut().map(ThreadCursor::next).collect();
        let heap = pending
            .iter()
            .enumerate()
            .filter_map(|(index, next)| next.map(|(_, view)| Reverse((view.ts, index as u32))))
            .collect();
        TimeOrder {
            timebase,
            threads,
            cursors,
            pending,
            heap,
            resolver: SpanResolver::default(),
        }
    }

    /// The threads that have records, in capture order.
    pub(crate) fn threads(&self) -> Vec<ThreadInfo> {
        self.threads
            .iter()
            .zip(&self.pending)
            .filter(|(_, first)| first.is_some())
            .map(|(thread, _)| ThreadInfo {
                tid: thread.identity.tid,
                name: thread
                    .identity
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("thread-{}", thread.identity.tid)),
            })
            .collect()
    }
}

impl<'a> Iterator for TimeOrder<'a> {
    type Item = Merged<'a>;

    fn next(&mut self) -> Option<Merged<'a>> {
        let Reverse((_, index)) = self.heap.pop()?;
        let (at, view) = self.pending[index as usize].take()?;
        let following = self.cursors[index as usize].next();
        if let Some((_, next)) = following {
            self.heap.push(Reverse((next.ts, index)));
        }
        self.pending[index as usize] = following;
        Some(Merged {
            at,
            ts_ns: self.timebase.nanos_since_anchor(view.ts),
            ids: self.resolver.resolve(&view),
            view,
        })
    }
}

impl TimeOrder<'_> {
    /// The recorder's id of the span the registry calls `registry_id` now, if it is open.
    pub(crate) fn live_span(&self, registry_id: u64) -> Option<u64> {
        self.resolver.live.get(&registry_id).copied()
    }
}

/// Maps registry ids to the recorder's span ids while walking records in time order.
#[derive(Default)]
struct SpanResolver {
    live: HashMap<u64, u64>,
    next_orphan: u64,
}

impl SpanResolver {
    fn id(&mut self, registry_id: u64) -> u64 {
        let next_orphan = &mut self.next_orphan;
        *self.live.entry(registry_id).or_insert_with(|| {
            *next_orphan += 1;
            ORPHAN_SPAN_BIT | *next_orphan
        })
    }

    fn optional(&mut self, registry_id: u64) -> Option<u64> {
        (registry_id != 0).then(|| self.id(registry_id))
    }

    fn resolve(&mut self, view: &RecordView<'_>) -> Ids {
        match view.body {
            Body::NewSpan {
                registry_id,
                key,
                parent,
                ..
            } => {
                let parent = self.optional(parent);
                self.live.insert(registry_id, key);
                Ids::NewSpan { span: key, parent }
            }
            Body::Span { registry_id } => {
                let span = self.id(registry_id);
                match view.kind {
                    kind::ENTER => Ids::Enter { span },
                    kind::EXIT => Ids::Exit { span },
                    _ => {
                        self.live.remove(&registry_id);
                        Ids::Close { span }
                    }
                }
            }
            Body::Record { registry_id, .. } => Ids::Record {
                span: self.id(registry_id),
            },
            Body::FollowsFrom {
                registry_id,
                follows,
            } => Ids::FollowsFrom {
                span: self.id(registry_id),
                follows: self.id(follows),
            },
            Body::Event { span, .. } => Ids::Event {
                span: self.optional(span),
                explicit_parent: view.flags & FLAG_EXPLICIT_PARENT != 0,
            },
        }
    }
}
