//! Decoding: raw chunks into time-ordered records with the recorder's own span ids.
//!
//! The registry reuses span ids once a span closes, so records keep the registry's id and this
//! pass resolves them: walking all threads' records merged in time order, a `NewSpan` binds its
//! registry id to the unique id it was given at creation, and a `Close` unbinds it. A record
//! whose span was created before the window (its `NewSpan` evicted) gets a fresh id of its own,
//! with the high bit set.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing_core::Metadata;

use crate::record::{
    FLAG_EXPLICIT_PARENT, FLAG_FIELDS_DROPPED, Field, RawBody, RawRecord, RecordReader, kind,
};
use crate::storage::RawSnapshot;

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

/// What decoding needs besides the chunks: the clock, the anchor and the configuration.
#[derive(Clone)]
pub(crate) struct Timebase {
    pub(crate) clock: quanta::Clock,
    /// Clock reading and wall-clock time taken together once: timestamp zero of every dump.
    pub(crate) anchor_raw: u64,
    pub(crate) anchor_wall: DateTime<Utc>,
    pub(crate) max_bytes: usize,
    pub(crate) min_age: Duration,
}

impl Timebase {
    /// Nanoseconds from the anchor to a raw clock reading.
    pub(crate) fn nanos_since_anchor(&self, raw: u64) -> u64 {
        self.clock.delta_as_nanos(self.anchor_raw, raw)
    }
}

/// Chunks and counters copied at one instant, not yet decoded.
pub(crate) struct Capture {
    pub(crate) raw: RawSnapshot,
    /// Clock reading of the snapshot.
    pub(crate) end_raw: u64,
    pub(crate) dropped: u64,
}

impl Snapshot {
    pub(crate) fn decode(timebase: &Timebase, capture: Capture) -> Self {
        let Capture {
            raw,
            end_raw,
            dropped,
        } = capture;
        let mut per_thread: Vec<Vec<Option<RawRecord>>> = Vec::with_capacity(raw.threads.len());
        let mut threads = Vec::with_capacity(raw.threads.len());
        for thread in &raw.threads {
            let mut records: Vec<RawRecord> = thread
                .sealed
                .iter()
                .flat_map(|chunk| RecordReader::new(chunk.bytes()))
                .chain(RecordReader::new(&thread.current))
                .collect();
            // Keep each thread's clock non-decreasing even if the counter stepped back on a
            // core migration.
            let mut last = 0;
            for record in &mut records {
                record.ts = record.ts.max(last);
                last = record.ts;
            }
            if records.is_empty() {
                continue;
            }
            threads.push(ThreadInfo {
                tid: thread.identity.tid,
                name: thread
                    .identity
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("thread-{}", thread.identity.tid)),
            });
            per_thread.push(records.into_iter().map(Some).collect());
        }

        let mut order: Vec<(u64, usize, usize)> = per_thread
            .iter()
            .enumerate()
            .flat_map(|(t, records)| {
                records
                    .iter()
                    .enumerate()
                    .filter_map(move |(i, r)| r.as_ref().map(|r| (r.ts, t, i)))
            })
            .collect();
        order.sort_unstable();

        let mut resolver = SpanResolver::default();
        let mut records = Vec::with_capacity(order.len());
        for (ts, t, i) in order {
            let Some(raw_record) = per_thread[t][i].take() else {
                continue;
            };
            let flags = raw_record.flags;
            let fields_dropped = flags & FLAG_FIELDS_DROPPED != 0;
            records.push(Record {
                tid: threads[t].tid,
                timestamp_ns: timebase.nanos_since_anchor(ts),
                kind: resolver.resolve(raw_record, flags),
                fields_dropped,
            });
        }

        let window_end_ns = timebase.nanos_since_anchor(end_raw);
        let window_start_ns = records
            .first()
            .map_or(window_end_ns, |r| r.timestamp_ns.min(window_end_ns));
        let retained = records.len() as u64;
        Snapshot {
            threads,
            records,
            counters: Counters {
                written: raw.written,
                overwritten: raw.overwritten,
                dropped,
                retained,
            },
            anchor: timebase.anchor_wall,
            window_start_ns,
            window_end_ns,
            max_bytes: timebase.max_bytes,
            min_age: timebase.min_age,
            allocated_bytes: raw.allocated_bytes,
        }
    }

    /// Wall-clock time of a timestamp.
    pub fn wall_time(&self, timestamp_ns: u64) -> DateTime<Utc> {
        self.anchor + chrono::Duration::nanoseconds(timestamp_ns.min(i64::MAX as u64) as i64)
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

    fn resolve(&mut self, record: RawRecord, flags: u8) -> RecordKind {
        match record.body {
            RawBody::NewSpan {
                registry_id,
                key,
                parent,
                metadata,
                fields,
            } => {
                let parent = self.optional(parent);
                self.live.insert(registry_id, key);
                RecordKind::NewSpan {
                    span: key,
                    parent,
                    metadata,
                    fields,
                }
            }
            RawBody::Span { registry_id } => {
                let span = self.id(registry_id);
                match record.kind {
                    kind::ENTER => RecordKind::Enter { span },
                    kind::EXIT => RecordKind::Exit { span },
                    _ => {
                        self.live.remove(&registry_id);
                        RecordKind::Close { span }
                    }
                }
            }
            RawBody::Record {
                registry_id,
                fields,
            } => RecordKind::Record {
                span: self.id(registry_id),
                fields,
            },
            RawBody::FollowsFrom {
                registry_id,
                follows,
            } => RecordKind::FollowsFrom {
                span: self.id(registry_id),
                follows: self.id(follows),
            },
            RawBody::Event {
                metadata,
                span,
                fields,
            } => RecordKind::Event {
                span: self.optional(span),
                explicit_parent: flags & FLAG_EXPLICIT_PARENT != 0,
                metadata,
                fields,
            },
        }
    }
}
