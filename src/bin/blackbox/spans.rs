//! Spans rebuilt from a dump's trace events — lifetimes from `b`/`e`, slices from `X` and
//! `B`/`E` pairs — and per-name duration statistics with a bounded top-N.

use std::collections::{BTreeMap, BinaryHeap, HashMap};

use serde_json::Value;
use tracing_blackbox::analyze::TraceEvent;

use crate::output::fields_of;

/// A span's lifetime (from `b`/`e`) or a slice (from `X`, or a `B`/`E` pair).
#[derive(Clone)]
pub(crate) struct Span {
    pub(crate) name: String,
    pub(crate) tid: (i64, i64),
    pub(crate) start_ns: i64,
    pub(crate) dur_ns: i64,
    pub(crate) fields: Value,
    pub(crate) trigger: bool,
    pub(crate) incomplete: bool,
}

/// Where a span came from: a lifetime (`b`/`e`, this crate's dumps) or a slice (`X`, or a
/// `B`/`E` pair, any trace). Lifetimes are preferred when a trace has them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Lifetime,
    Slice,
}

/// Turns events into spans as they stream by, keeping only what is still open.
#[derive(Default)]
pub(crate) struct SpanBuilder {
    pub(crate) open_async: HashMap<(String, String), TraceEvent>,
    pub(crate) open_b: HashMap<(i64, i64), Vec<TraceEvent>>,
}

impl SpanBuilder {
    pub(crate) fn feed(&mut self, event: TraceEvent, mut on_span: impl FnMut(Source, Span)) {
        let thread = (event.pid, event.tid);
        match event.ph.as_str() {
            "X" => on_span(
                Source::Slice,
                Span {
                    tid: thread,
                    start_ns: event.ts_ns,
                    dur_ns: event.dur_ns.unwrap_or(0),
                    fields: fields_of(&event.args),
                    trigger: event.args.get("trigger") == Some(&Value::Bool(true)),
                    incomplete: event.args.get("incomplete") == Some(&Value::Bool(true)),
                    name: event.name,
                },
            ),
            "B" => self.open_b.entry(thread).or_default().push(event),
            "E" => {
                if let Some(begin) = self.open_b.get_mut(&thread).and_then(Vec::pop) {
                    on_span(
                        Source::Slice,
                        Span {
                            tid: thread,
                            start_ns: begin.ts_ns,
                            dur_ns: event.ts_ns - begin.ts_ns,
                            fields: fields_of(&begin.args),
                            trigger: false,
                            incomplete: false,
                            name: begin.name,
                        },
                    );
                }
            }
            "b" => {
                let key = (event.cat.clone(), event.id.clone().unwrap_or_default());
                self.open_async.insert(key, event);
            }
            "e" => {
                let key = (event.cat.clone(), event.id.clone().unwrap_or_default());
                if let Some(begin) = self.open_async.remove(&key) {
                    on_span(
                        Source::Lifetime,
                        Span {
                            tid: (begin.pid, begin.tid),
                            start_ns: begin.ts_ns,
                            dur_ns: event.ts_ns - begin.ts_ns,
                            fields: fields_of(&begin.args),
                            trigger: begin.args.get("trigger") == Some(&Value::Bool(true)),
                            incomplete: event.args.get("incomplete") == Some(&Value::Bool(true)),
                            name: begin.name,
                        },
                    );
                }
            }
            _ => {}
        }
    }
}

/// Per source: durations by name, and the `top` slowest spans whole.
pub(crate) struct Stats {
    pub(crate) top: usize,
    pub(crate) by_name: BTreeMap<String, Vec<i64>>,
    pub(crate) slowest: BinaryHeap<std::cmp::Reverse<Ranked>>,
    pub(crate) seen: u64,
}

/// A span ordered by duration, then by arrival (earlier first among equals).
pub(crate) struct Ranked(i64, std::cmp::Reverse<u64>, Span);

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        (self.0, self.1) == (other.0, other.1)
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0, self.1).cmp(&(other.0, other.1))
    }
}

impl Stats {
    pub(crate) fn new(top: usize) -> Self {
        Stats {
            top,
            by_name: BTreeMap::new(),
            slowest: BinaryHeap::new(),
            seen: 0,
        }
    }

    pub(crate) fn add(&mut self, span: Span) {
        match self.by_name.get_mut(&span.name) {
            Some(durations) => durations.push(span.dur_ns),
            None => {
                self.by_name.insert(span.name.clone(), vec![span.dur_ns]);
            }
        }
        self.seen += 1;
        self.slowest.push(std::cmp::Reverse(Ranked(
            span.dur_ns,
            std::cmp::Reverse(self.seen),
            span,
        )));
        if self.slowest.len() > self.top {
            self.slowest.pop();
        }
    }

    /// The slowest spans, slowest first, and the durations by name.
    pub(crate) fn slowest(self) -> (Vec<Span>, BTreeMap<String, Vec<i64>>) {
        let mut ranked: Vec<Ranked> = self.slowest.into_iter().map(|r| r.0).collect();
        ranked.sort_by(|a, b| b.cmp(a));
        (ranked.into_iter().map(|r| r.2).collect(), self.by_name)
    }
}
