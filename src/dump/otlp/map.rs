//! From a decoded snapshot to OTLP spans: each recorded span with its fields, events, links
//! and status; trace ids per root (or from a `trace_id` field); the window's facts on roots.

use std::collections::HashMap;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, Status, span, status};
use tracing_core::{Level, Metadata};

use super::ids::{random_span_id, random_trace_id, span_id, trace_id_from_hex};
use crate::dump::context::DumpContext;
use crate::dump::snapshot::{RecordKind, Snapshot};
use crate::record::encode::{Field, FieldValue};

/// The name of the span that holds the events recorded outside any span.
const WINDOW_SPAN: &str = "blackbox.window";

/// A span being put together from its records.
struct Draft {
    metadata: Option<&'static Metadata<'static>>,
    parent: Option<u64>,
    tid: u64,
    start_ns: u64,
    end_ns: Option<u64>,
    fields: Vec<Field>,
    events: Vec<span::Event>,
    follows: Vec<u64>,
    /// The message of its first ERROR event.
    error: Option<String>,
}

impl Draft {
    fn new(tid: u64, start_ns: u64) -> Self {
        Draft {
            metadata: None,
            parent: None,
            tid,
            start_ns,
            end_ns: None,
            fields: Vec::new(),
            events: Vec::new(),
            follows: Vec::new(),
            error: None,
        }
    }
}

/// What the mapping needs besides the snapshot.
pub(crate) struct Window<'a> {
    pub(crate) snapshot: &'a Snapshot,
    pub(crate) context: &'a DumpContext,
    /// The field whose 32 hex digits, when a span has it, are its trace's id.
    pub(crate) trace_id_field: &'a str,
}

/// The window's spans as OTLP spans, parents before children where both are in the window.
pub(crate) fn spans(window: &Window<'_>) -> Vec<Span> {
    let snapshot = window.snapshot;
    let anchor = u64::try_from(snapshot.anchor.timestamp_nanos_opt().unwrap_or(0)).unwrap_or(0);
    let unix = |ns: u64| anchor.saturating_add(ns);
    let mut drafts: HashMap<u64, Draft> = HashMap::new();
    let mut order: Vec<u64> = Vec::new();
    let mut orphans: Vec<span::Event> = Vec::new();
    let mut orphan_error = None;
    let window_start = snapshot.window_start_ns;
    let mut draft = |drafts: &mut HashMap<u64, Draft>, id: u64, tid: u64| {
        drafts.entry(id).or_insert_with(|| {
            order.push(id);
            // Seen before its creation: it started before the window opened.
            Draft::new(tid, window_start)
        });
    };
    for record in &snapshot.records {
        let ts = record.timestamp_ns;
        match &record.kind {
            RecordKind::NewSpan {
                span,
                parent,
                metadata,
                fields,
            } => {
                draft(&mut drafts, *span, record.tid);
                let d = drafts.get_mut(span).expect("just inserted");
                d.metadata = Some(metadata);
                d.parent = *parent;
                d.tid = record.tid;
                d.start_ns = ts;
                d.fields.clone_from(fields);
            }
            RecordKind::Record { span, fields } => {
                draft(&mut drafts, *span, record.tid);
                let d = drafts.get_mut(span).expect("just inserted");
                for field in fields {
                    match d.fields.iter_mut().find(|f| f.name == field.name) {
                        Some(old) => old.value = field.value.clone(),
                        None => d.fields.push(field.clone()),
                    }
                }
            }
            RecordKind::Close { span } => {
                draft(&mut drafts, *span, record.tid);
                drafts.get_mut(span).expect("just inserted").end_ns = Some(ts);
            }
            RecordKind::FollowsFrom { span, follows } => {
                draft(&mut drafts, *span, record.tid);
                drafts
                    .get_mut(span)
                    .expect("just inserted")
                    .follows
                    .push(*follows);
            }
            RecordKind::Enter { span } | RecordKind::Exit { span } => {
                draft(&mut drafts, *span, record.tid);
            }
            RecordKind::Event {
                span,
                metadata,
                fields,
                ..
            } => {
                let (event, error) = event(metadata, fields, unix(ts), record.tid);
                match span {
                    Some(span) => {
                        draft(&mut drafts, *span, record.tid);
                        let d = drafts.get_mut(span).expect("just inserted");
                        if d.error.is_none() {
                            d.error = error;
                        }
                        d.events.push(event);
                    }
                    None => {
                        if orphan_error.is_none() {
                            orphan_error = error;
                        }
                        orphans.push(event);
                    }
                }
            }
        }
    }

    let threads: HashMap<u64, &str> = snapshot
        .threads
        .iter()
        .map(|t| (t.tid, t.name.as_str()))
        .collect();
    let trace_ids = assign_trace_ids(&drafts, &order, window.trace_id_field);
    let window_attributes = window_attributes(window);
    let trigger_span = window.context.trigger.as_ref().map(|t| t.span_id);
    let window_end = snapshot.window_end_ns;
    let mut out = Vec::with_capacity(order.len() + 1);
    for id in &order {
        let d = &drafts[id];
        let parent = d.parent.filter(|p| drafts.contains_key(p));
        let mut attributes: Vec<KeyValue> = d.fields.iter().map(field_attribute).collect();
        attributes.push(int("blackbox.span_id", *id));
        attributes.push(int("thread.id", d.tid));
        if let Some(name) = threads.get(&d.tid) {
            attributes.push(string("thread.name", name));
        }
        match d.metadata {
            Some(metadata) => attributes.extend(callsite(metadata)),
            None => attributes.push(boolean("blackbox.start_evicted", true)),
        }
        if d.end_ns.is_none() {
            attributes.push(boolean("blackbox.incomplete", true));
        }
        if trigger_span == Some(*id) {
            attributes.push(boolean("blackbox.trigger", true));
        }
        if parent.is_none() {
            attributes.extend(window_attributes.iter().cloned());
        }
        out.push(Span {
            trace_id: trace_ids[id].to_vec(),
            span_id: span_id(*id).to_vec(),
            parent_span_id: parent.map(|p| span_id(p).to_vec()).unwrap_or_default(),
            name: d
                .metadata
                .map_or("(started before the window)", |m| m.name())
                .to_owned(),
            kind: span::SpanKind::Internal as i32,
            start_time_unix_nano: unix(d.start_ns),
            end_time_unix_nano: unix(d.end_ns.unwrap_or(window_end).max(d.start_ns)),
            attributes,
            events: d.events.clone(),
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
            status: d.error.as_ref().map(|message| error_status(message)),
            ..Default::default()
        });
    }
    if !orphans.is_empty() {
        let mut attributes = vec![string(
            "blackbox.note",
            "events recorded outside any span, in the window they were recorded in",
        )];
        attributes.extend(window_attributes);
        out.push(Span {
            trace_id: random_trace_id().to_vec(),
            span_id: random_span_id().to_vec(),
            name: WINDOW_SPAN.to_owned(),
            kind: span::SpanKind::Internal as i32,
            start_time_unix_nano: unix(window_start),
            end_time_unix_nano: unix(window_end.max(window_start)),
            attributes,
            events: orphans,
            status: orphan_error.as_ref().map(|message| error_status(message)),
            ..Default::default()
        });
    }
    out
}

/// A span's trace: from its own `trace_id` field, else its parent's (when in the window),
/// else a new random one for a root.
fn assign_trace_ids(
    drafts: &HashMap<u64, Draft>,
    order: &[u64],
    field: &str,
) -> HashMap<u64, [u8; 16]> {
    let mut ids: HashMap<u64, [u8; 16]> = HashMap::with_capacity(order.len());
    for &start in order {
        // The chain up to a span whose id is known or a root; then down again.
        let mut chain = Vec::new();
        let mut at = start;
        let known = loop {
            if let Some(id) = ids.get(&at) {
                break *id;
            }
            chain.push(at);
            let d = &drafts[&at];
            if let Some(id) = own_trace_id(d, field) {
                chain.pop();
                ids.insert(at, id);
                break id;
            }
            match d
                .parent
                .filter(|p| drafts.contains_key(p) && !chain.contains(p))
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
        for span in chain {
            ids.insert(span, known);
        }
    }
    ids
}

fn own_trace_id(draft: &Draft, field: &str) -> Option<[u8; 16]> {
    draft
        .fields
        .iter()
        .find(|f| f.name == field)
        .and_then(|f| match &f.value {
            FieldValue::Str(text) => trace_id_from_hex(text),
            FieldValue::U128(v) if *v != 0 => Some(v.to_be_bytes()),
            _ => None,
        })
}

/// An event as a span event; the message of an ERROR event, for the span's status.
fn event(
    metadata: &'static Metadata<'static>,
    fields: &[Field],
    time_unix_nano: u64,
    tid: u64,
) -> (span::Event, Option<String>) {
    let message = fields.iter().find(|f| f.name == "message");
    let name = message.map_or_else(|| metadata.name().to_owned(), |f| f.value.to_string());
    let mut attributes: Vec<KeyValue> = fields
        .iter()
        .filter(|f| f.name != "message")
        .map(field_attribute)
        .collect();
    attributes.extend(callsite(metadata));
    attributes.push(int("thread.id", tid));
    let error = (*metadata.level() == Level::ERROR).then(|| name.clone());
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

/// The trigger and the counters, on the root of every trace of the window.
fn window_attributes(window: &Window<'_>) -> Vec<KeyValue> {
    let snapshot = window.snapshot;
    let context = window.context;
    let mut attributes = vec![
        string("blackbox.reason", context.reason.as_str()),
        int("blackbox.written", snapshot.counters.written),
        int("blackbox.overwritten", snapshot.counters.overwritten),
        int("blackbox.dropped", snapshot.counters.dropped),
        int("blackbox.suppressed", context.suppressed),
    ];
    if let Some(trigger) = &context.trigger {
        attributes.push(double(
            "blackbox.threshold_ms",
            trigger.threshold_nanos as f64 / 1e6,
        ));
        attributes.push(double(
            "blackbox.duration_ms",
            trigger.duration_nanos as f64 / 1e6,
        ));
        attributes.push(int("blackbox.trigger_span_id", trigger.span_id));
    }
    attributes
}

fn callsite(metadata: &'static Metadata<'static>) -> Vec<KeyValue> {
    let mut attributes = vec![
        string("level", metadata.level().as_str()),
        string("code.namespace", metadata.target()),
    ];
    if let Some(file) = metadata.file() {
        attributes.push(string("code.filepath", file));
    }
    if let Some(line) = metadata.line() {
        attributes.push(int("code.lineno", u64::from(line)));
    }
    attributes
}

fn error_status(message: &str) -> Status {
    Status {
        message: message.to_owned(),
        code: status::StatusCode::Error as i32,
    }
}

/// A field as a typed attribute: integers that fit as integers, the others as text.
fn field_attribute(field: &Field) -> KeyValue {
    let value = match &field.value {
        FieldValue::U64(v) => match i64::try_from(*v) {
            Ok(v) => any_value::Value::IntValue(v),
            Err(_) => any_value::Value::StringValue(v.to_string()),
        },
        FieldValue::I64(v) => any_value::Value::IntValue(*v),
        FieldValue::F64(v) => any_value::Value::DoubleValue(*v),
        FieldValue::Bool(v) => any_value::Value::BoolValue(*v),
        FieldValue::Str(v) => any_value::Value::StringValue(v.clone()),
        other => any_value::Value::StringValue(other.to_string()),
    };
    key_value(field.name, value)
}

pub(crate) fn key_value(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

pub(crate) fn string(key: &str, value: &str) -> KeyValue {
    key_value(key, any_value::Value::StringValue(value.to_owned()))
}

pub(crate) fn int(key: &str, value: u64) -> KeyValue {
    key_value(
        key,
        i64::try_from(value).map_or_else(
            |_| any_value::Value::StringValue(value.to_string()),
            any_value::Value::IntValue,
        ),
    )
}

fn double(key: &str, value: f64) -> KeyValue {
    key_value(key, any_value::Value::DoubleValue(value))
}

fn boolean(key: &str, value: bool) -> KeyValue {
    key_value(key, any_value::Value::BoolValue(value))
}
