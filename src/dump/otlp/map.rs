//! From a decoded snapshot to OTLP spans: each recorded span with its fields, events, links
//! and status; trace ids per root (or from a `trace_id` field); the window's facts on roots.

use std::borrow::Cow;
use std::collections::HashMap;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::{Span, span};

use super::attributes::{
    Callsite, boolean, callsite_attributes, double, error_status, field_attribute, int, string,
};
use super::ids::{random_span_id, random_trace_id, span_id, trace_id_from_hex};
use crate::dump::context::DumpContext;
use crate::dump::snapshot::{RecordKind, TimeOrder};
use crate::record::encode::{Field, FieldValue};
use crate::record::{Capture, Timebase};

/// The name of the span that holds the events recorded outside any span.
const WINDOW_SPAN: &str = "blackbox.window";

/// A span being put together from what was recorded of it.
#[derive(Default)]
pub(crate) struct Draft {
    /// `None` when its creation is not in the window (it started before).
    pub(crate) callsite: Option<Callsite>,
    pub(crate) parent: Option<u64>,
    pub(crate) tid: u64,
    pub(crate) start_ns: u64,
    /// `None` while still open at the snapshot.
    pub(crate) end_ns: Option<u64>,
    /// Names borrowed from the callsite (a live window) or owned (read from a file).
    pub(crate) fields: Vec<(Cow<'static, str>, FieldValue)>,
    pub(crate) events: Vec<span::Event>,
    pub(crate) follows: Vec<u64>,
    /// The message of its first ERROR event.
    pub(crate) error: Option<String>,
}

/// A window, from a snapshot or from a dump file: its spans by the recorder's ids, the events
/// outside any span, and the facts about it. Timestamps are nanoseconds since the anchor.
#[derive(Default)]
pub(crate) struct Window {
    pub(crate) anchor_unix_ns: u64,
    pub(crate) window_start_ns: u64,
    pub(crate) window_end_ns: u64,
    pub(crate) drafts: HashMap<u64, Draft>,
    /// Span ids in the order they were first seen.
    pub(crate) order: Vec<u64>,
    pub(crate) orphans: Vec<span::Event>,
    pub(crate) orphan_error: Option<String>,
    pub(crate) threads: HashMap<u64, String>,
    /// The trigger and the counters, for the root of every trace.
    pub(crate) facts: Vec<KeyValue>,
    pub(crate) trigger_span: Option<u64>,
}

impl Window {
    /// The draft of span `id`, created (as started before the window) if not seen yet.
    pub(crate) fn draft(&mut self, id: u64, tid: u64) -> &mut Draft {
        let start = self.window_start_ns;
        let order = &mut self.order;
        self.drafts.entry(id).or_insert_with(|| {
            order.push(id);
            Draft {
                tid,
                start_ns: start,
                ..Draft::default()
            }
        })
    }

    /// An event: on its span, or among those outside any span.
    pub(crate) fn add_event(
        &mut self,
        span: Option<u64>,
        tid: u64,
        event: (span::Event, Option<String>),
    ) {
        let (event, error) = event;
        match span {
            Some(span) => {
                let draft = self.draft(span, tid);
                if draft.error.is_none() {
                    draft.error = error;
                }
                draft.events.push(event);
            }
            None => {
                if self.orphan_error.is_none() {
                    self.orphan_error = error;
                }
                self.orphans.push(event);
            }
        }
    }

    /// The window of a capture, read in time order straight from its chunks (each record's
    /// fields moved into the window, never copied twice).
    pub(crate) fn from_capture(
        timebase: &Timebase,
        capture: &Capture,
        context: &DumpContext,
    ) -> Self {
        let order = TimeOrder::new(timebase, &capture.raw.threads);
        let window_end = timebase.nanos_since_anchor(capture.end_raw);
        let mut window = Window {
            anchor_unix_ns: u64::try_from(timebase.anchor_wall.timestamp_nanos_opt().unwrap_or(0))
                .unwrap_or(0),
            window_start_ns: window_end,
            window_end_ns: window_end,
            threads: order
                .threads()
                .into_iter()
                .map(|t| (t.tid, t.name))
                .collect(),
            facts: facts(
                context.reason.as_str(),
                [
                    capture.raw.written,
                    capture.raw.overwritten,
                    capture.dropped,
                    context.suppressed,
                ],
                context.trigger.as_ref().map(|t| {
                    (
                        t.span_id,
                        t.threshold_nanos as f64 / 1e6,
                        t.duration_nanos as f64 / 1e6,
                    )
                }),
            ),
            trigger_span: context.trigger.as_ref().map(|t| t.span_id),
            ..Window::default()
        };
        let borrowed = |fields: Vec<Field>| -> Vec<(Cow<'static, str>, FieldValue)> {
            fields
                .into_iter()
                .map(|f| (Cow::Borrowed(f.name), f.value))
                .collect()
        };
        for (n, merged) in order.enumerate() {
            let ts = merged.ts_ns;
            if n == 0 {
                window.window_start_ns = ts.min(window_end);
            }
            let tid = capture.raw.threads[merged.at.thread as usize].identity.tid;
            match merged.kind() {
                RecordKind::NewSpan {
                    span,
                    parent,
                    metadata,
                    fields,
                } => {
                    let d = window.draft(span, tid);
                    d.callsite = Some(Callsite::of(metadata));
                    d.parent = parent;
                    d.tid = tid;
                    d.start_ns = ts;
                    d.fields = borrowed(fields);
                }
                RecordKind::Record { span, fields } => {
                    let d = window.draft(span, tid);
                    for (name, value) in borrowed(fields) {
                        match d.fields.iter_mut().find(|(n, _)| *n == name) {
                            Some(old) => old.1 = value,
                            None => d.fields.push((name, value)),
                        }
                    }
                }
                RecordKind::Close { span } => window.draft(span, tid).end_ns = Some(ts),
                RecordKind::FollowsFrom { span, follows } => {
                    window.draft(span, tid).follows.push(follows);
                }
                RecordKind::Enter { span } | RecordKind::Exit { span } => {
                    window.draft(span, tid);
                }
                RecordKind::Event {
                    span,
                    metadata,
                    mut fields,
                    ..
                } => {
                    let name = match fields.iter().position(|f| f.name == "message") {
                        Some(at) => match fields.remove(at).value {
                            FieldValue::Str(text) => text,
                            other => other.to_string(),
                        },
                        None => metadata.name().to_owned(),
                    };
                    let unix = window.anchor_unix_ns.saturating_add(ts);
                    let event = event(name, &Callsite::of(metadata), &borrowed(fields), unix, tid);
                    window.add_event(span, tid, event);
                }
            }
        }
        window
    }

    /// The window's spans as OTLP spans; trace ids from `trace_id_field` where a span has it.
    /// (The events move into the spans: the window is left without them.)
    pub(crate) fn spans(&mut self, trace_id_field: &str) -> Vec<Span> {
        let mut events: HashMap<u64, Vec<span::Event>> = self
            .drafts
            .iter_mut()
            .map(|(id, d)| (*id, std::mem::take(&mut d.events)))
            .collect();
        let orphans = std::mem::take(&mut self.orphans);
        let unix = |ns: u64| self.anchor_unix_ns.saturating_add(ns);
        let drafts = &self.drafts;
        let trace_ids = assign_trace_ids(drafts, &self.order, trace_id_field);
        let mut out = Vec::with_capacity(self.order.len() + 1);
        for id in &self.order {
            let d = &drafts[id];
            let parent = d.parent.filter(|p| drafts.contains_key(p));
            let mut attributes: Vec<KeyValue> = d
                .fields
                .iter()
                .map(|(name, value)| field_attribute(name, value))
                .collect();
            attributes.push(int("blackbox.span_id", *id));
            attributes.push(int("thread.id", d.tid));
            if let Some(name) = self.threads.get(&d.tid) {
                attributes.push(string("thread.name", name));
            }
            match &d.callsite {
                Some(callsite) => attributes.extend(callsite_attributes(callsite)),
                None => attributes.push(boolean("blackbox.start_evicted", true)),
            }
            if d.end_ns.is_none() {
                attributes.push(boolean("blackbox.incomplete", true));
            }
            if self.trigger_span == Some(*id) {
                attributes.push(boolean("blackbox.trigger", true));
            }
            if parent.is_none() {
                attributes.extend(self.facts.iter().cloned());
            }
            out.push(Span {
                trace_id: trace_ids[id].to_vec(),
                span_id: span_id(*id).to_vec(),
                parent_span_id: parent.map(|p| span_id(p).to_vec()).unwrap_or_default(),
                name: d
                    .callsite
                    .as_ref()
                    .map_or("(started before the window)", |c| c.name.as_str())
                    .to_owned(),
                kind: span::SpanKind::Internal as i32,
                start_time_unix_nano: unix(d.start_ns),
                end_time_unix_nano: unix(d.end_ns.unwrap_or(self.window_end_ns).max(d.start_ns)),
                attributes,
                events: events.remove(id).unwrap_or_default(),
                links: d
                    .follows
                    .iter()
                    .filter_map(|f| {
                        Some(span::Link {
                            trace_id: trace_ids.get(f)?.to_vec(),
                            span_id: span_id(*f).to_vec(),
                            ..Default::default()
                        })
                    })
                    .collect(),
                status: d.error.as_deref().map(error_status),
                ..Default::default()
            });
        }
        if !orphans.is_empty() {
            let mut attributes = vec![string(
                "blackbox.note",
                "events recorded outside any span, in the window they were recorded in",
            )];
            attributes.extend(self.facts.iter().cloned());
            out.push(Span {
                trace_id: random_trace_id().to_vec(),
                span_id: random_span_id().to_vec(),
                name: WINDOW_SPAN.to_owned(),
                kind: span::SpanKind::Internal as i32,
                start_time_unix_nano: unix(self.window_start_ns),
                end_time_unix_nano: unix(self.window_end_ns.max(self.window_start_ns)),
                attributes,
                events: orphans,
                status: self.orphan_error.as_deref().map(error_status),
                ..Default::default()
            });
        }
        out
    }
}

/// A span's trace: from its own `trace_id` field, else its parent's (when in the window),
/// else a new random one for a root.
fn assign_trace_ids(
    drafts: &HashMap<u64, Draft>,
    order: &[u64],
    field: &str,
) -> HashMap<u64, [u8; 16]> {
    let mut ids: HashMap<u64, [u8; 16]> = HashMap::with_capacity(order.len());
    let mut chain = Vec::new();
    let mut on_chain = std::collections::HashSet::new();
    for &start in order {
        // The chain up to a span whose id is known or a root; then down again. (A parent
        // loop, possible only in a crafted dump file, ends the chain where it closes.)
        chain.clear();
        on_chain.clear();
        let mut at = start;
        let known = loop {
            if let Some(id) = ids.get(&at) {
                break *id;
            }
            chain.push(at);
            on_chain.insert(at);
            let d = &drafts[&at];
            if let Some(id) = own_trace_id(d, field) {
                chain.pop();
                ids.insert(at, id);
                break id;
            }
            match d
                .parent
                .filter(|p| drafts.contains_key(p) && !on_chain.contains(p))
            {
                Some(parent) => at = parent,
                None => {
                    let id = random_trace_id();
                    chain.pop();
                    ids.insert(at, id);
                    break id;
                }
            }
        };
        for &span in &chain {
            ids.insert(span, known);
        }
    }
    ids
}

fn own_trace_id(draft: &Draft, field: &str) -> Option<[u8; 16]> {
    draft
        .fields
        .iter()
        .find(|(name, _)| *name == field)
        .and_then(|(_, value)| match value {
            FieldValue::Str(text) => trace_id_from_hex(text),
            FieldValue::U128(v) if *v != 0 => Some(v.to_be_bytes()),
            _ => None,
        })
}

/// An event as a span event; the message of an ERROR event, for the span's status.
pub(crate) fn event(
    name: String,
    callsite: &Callsite,
    fields: &[(Cow<'static, str>, FieldValue)],
    time_unix_nano: u64,
    tid: u64,
) -> (span::Event, Option<String>) {
    let mut attributes: Vec<KeyValue> = fields
        .iter()
        .map(|(name, value)| field_attribute(name, value))
        .collect();
    attributes.extend(callsite_attributes(callsite));
    attributes.push(int("thread.id", tid));
    let error = callsite
        .level
        .eq_ignore_ascii_case("ERROR")
        .then(|| name.clone());
    (
        span::Event {
            time_unix_nano,
            name,
            attributes,
            ..Default::default()
        },
        error,
    )
}

/// The trigger and the counters (written, overwritten, dropped, suppressed), for the root of
/// every trace of the window; the trigger as (span id, threshold ms, duration ms).
pub(crate) fn facts(
    reason: &str,
    counters: [u64; 4],
    trigger: Option<(u64, f64, f64)>,
) -> Vec<KeyValue> {
    let [written, overwritten, dropped, suppressed] = counters;
    let mut attributes = vec![
        string("blackbox.reason", reason),
        int("blackbox.written", written),
        int("blackbox.overwritten", overwritten),
        int("blackbox.dropped", dropped),
        int("blackbox.suppressed", suppressed),
    ];
    if let Some((span, threshold_ms, duration_ms)) = trigger {
        attributes.push(double("blackbox.threshold_ms", threshold_ms));
        attributes.push(double("blackbox.duration_ms", duration_ms));
        attributes.push(int("blackbox.trigger_span_id", span));
    }
    attributes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window_of(parents: &[(u64, Option<u64>)]) -> Window {
        let mut window = Window::default();
        for &(id, parent) in parents {
            let draft = window.draft(id, 1);
            draft.parent = parent;
            draft.end_ns = Some(1);
        }
        window
    }

    /// Every span of a chain shares its root's trace, however deep, in time linear in the
    /// depth; a parent loop (a crafted file) still ends, with one trace for the loop.
    #[test]
    fn trace_ids_follow_deep_chains_and_survive_loops() {
        let depth = 100_000u64;
        let chain: Vec<(u64, Option<u64>)> = (1..=depth)
            .rev()
            .map(|id| (id, (id > 1).then(|| id - 1)))
            .collect();
        let mut window = window_of(&chain);
        let spans = window.spans("trace_id");
        assert_eq!(spans.len(), depth as usize);
        assert!(spans.iter().all(|s| s.trace_id == spans[0].trace_id));

        let mut window = window_of(&[(1, Some(3)), (2, Some(1)), (3, Some(2)), (4, None)]);
        let spans = window.spans("trace_id");
        assert_eq!(spans.len(), 4);
        let loop_ids: Vec<_> = spans[..3].iter().map(|s| s.trace_id.clone()).collect();
        assert!(loop_ids.iter().all(|id| *id == loop_ids[0]));
        assert_ne!(spans[3].trace_id, loop_ids[0]);
    }
}
