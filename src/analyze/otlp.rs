//! Dump files to OTLP (features `analyze` and `otlp`): a dump written earlier, or copied off a
//! machine, read back into a window and sent with the same mapping as a live export.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

use serde_json::Value;

use super::{LoadError, TraceEvent, read_events};
use crate::dump::export::ExportInfo;
use crate::dump::otlp::{self, Callsite, OtlpConfig, Window};
use crate::error::DumpError;
use crate::record::encode::FieldValue;

/// Why [`export_otlp`] did not send a dump.
#[derive(Debug)]
#[non_exhaustive]
pub enum ExportError {
    /// The file cannot be read as a trace.
    Load(LoadError),
    /// The receiver could not be reached or refused it
    /// ([`DumpStage::Export`](crate::DumpStage::Export)).
    Send(DumpError),
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::Load(err) => err.fmt(f),
            ExportError::Send(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for ExportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExportError::Load(err) => Some(err),
            ExportError::Send(err) => Some(err),
        }
    }
}

/// Sends the dump at `path` (`.json` or `.json.gz`, this crate's format) to the OTLP receiver
/// of `config`, as the export of a triggered dump would have (`blackbox export` does this):
/// spans with their fields, events, links and status, the window's facts on the roots. The
/// `service.name` is the dump's process name unless `config` names one. (What a dump does
/// not keep is not sent: `record()` updates are already merged into the span's fields, and
/// fields are typed as JSON types them.)
///
/// # Errors
///
/// [`ExportError::Load`] when the file is not a readable dump; [`ExportError::Send`] when the
/// receiver could not be reached or refused it (after `max_attempts`).
pub fn export_otlp(path: impl AsRef<Path>, config: &OtlpConfig) -> Result<ExportInfo, ExportError> {
    let path = path.as_ref();
    if let Some(problem) = config.problem() {
        return Err(ExportError::Send(DumpError::new(
            crate::error::DumpStage::Export,
            config.endpoint(),
            std::io::Error::other(problem),
        )));
    }
    let mut window = Window::default();
    let mut process = None;
    let info = read_events(path, |event| {
        if event.ph == "M" && event.name == "process_name" {
            process = event.arg_str("name").map(str::to_owned);
        }
        add(&mut window, &event);
    })
    .map_err(ExportError::Load)?;
    // The service is the process that wrote the dump, unless told otherwise.
    let named;
    let config = match (&config.service_name, process) {
        (None, Some(process)) => {
            named = config.clone().service_name(process);
            &named
        }
        _ => config,
    };
    let other = info.other_data.unwrap_or(Value::Null);
    finish(&mut window, &other)
        .map_err(|problem| ExportError::Load(LoadError::new(path, problem)))?;
    let encoded = otlp::encode(&mut window, config);
    let body = otlp::request_body(config, encoded.body).map_err(|e| {
        ExportError::Send(DumpError::new(
            crate::error::DumpStage::Export,
            config.endpoint(),
            e,
        ))
    })?;
    otlp::send(config, &body, |pause| {
        std::thread::sleep(pause);
        true
    })
    .map_err(|message| {
        ExportError::Send(DumpError::new(
            crate::error::DumpStage::Export,
            config.endpoint(),
            std::io::Error::other(message),
        ))
    })?;
    Ok(ExportInfo {
        endpoint: config.endpoint().to_owned(),
        spans: encoded.spans,
        bytes: body.len() as u64,
    })
}

/// One event of the dump, into the window (times still relative to the anchor).
fn add(window: &mut Window, event: &TraceEvent) {
    let tid = u64::try_from(event.tid).unwrap_or(0);
    let ts = u64::try_from(event.ts_ns).unwrap_or(0);
    let args = &event.args;
    let number = |key: &str| args.get(key).and_then(Value::as_u64);
    match event.ph.as_str() {
        "M" if event.name == "thread_name" => {
            if let Some(name) = event.arg_str("name") {
                window.threads.insert(tid, name.to_owned());
            }
        }
        "b" => {
            let Some(span) = number("span_id") else {
                return;
            };
            let evicted = args.get("start_evicted").and_then(Value::as_bool) == Some(true);
            let draft = window.draft(span, tid);
            draft.tid = tid;
            draft.parent = number("parent_id");
            draft.fields = fields(args);
            if let Some(follows) = args.get("follows_from").and_then(Value::as_array) {
                draft.follows = follows.iter().filter_map(Value::as_u64).collect();
            }
            if !evicted {
                draft.callsite = Some(callsite(&event.name, args));
                draft.start_ns = ts;
            }
        }
        // A tokio task's wait to be polled is not a span.
        "e" if event.cat == "tokio::task::ready" => {}
        "e" => {
            let incomplete = args.get("incomplete").and_then(Value::as_bool) == Some(true);
            let Some(span) = event.id.as_deref().and_then(async_id) else {
                return;
            };
            if !incomplete {
                window.draft(span, tid).end_ns = Some(ts);
            }
        }
        "i" => {
            let callsite = callsite(&event.name, args);
            let fields = fields(args);
            let event = otlp::event(event.name.clone(), &callsite, &fields, ts, tid);
            window.add_event(number("span_id"), tid, event);
        }
        _ => {}
    }
}

/// What only `otherData` says: the anchor, the window, the trigger and the counters. Times
/// become Unix times; spans that started before the window start with it.
fn finish(window: &mut Window, other: &Value) -> Result<(), String> {
    let anchor = other
        .get("anchor")
        .and_then(Value::as_str)
        .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
        .and_then(|time| time.timestamp_nanos_opt())
        .ok_or("no otherData.anchor: not a tracing-blackbox dump (its times cannot be placed)")?;
    let micros = |key: &str| {
        other
            .get(key)
            .and_then(Value::as_f64)
            .map_or(0, |us| (us * 1e3).round() as u64)
    };
    window.anchor_unix_ns = u64::try_from(anchor).unwrap_or(0);
    window.window_start_ns = micros("window_start_us");
    window.window_end_ns = micros("window_end_us");
    let counter = |key: &str| other.get(key).and_then(Value::as_u64).unwrap_or(0);
    let trigger = other.get("trigger").and_then(|t| {
        Some((
            t.get("span_id")?.as_u64()?,
            t.get("threshold_ms")?.as_f64()?,
            t.get("duration_ms")?.as_f64()?,
        ))
    });
    window.trigger_span = trigger.map(|(span, _, _)| span);
    window.facts = otlp::facts(
        other
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("unknown"),
        [
            counter("written"),
            counter("overwritten"),
            counter("dropped"),
            counter("suppressed"),
        ],
        trigger,
    );
    let (anchor, start) = (window.anchor_unix_ns, window.window_start_ns);
    for draft in window.drafts.values_mut() {
        if draft.callsite.is_none() {
            draft.start_ns = start;
        }
        for event in &mut draft.events {
            event.time_unix_nano = event.time_unix_nano.saturating_add(anchor);
        }
    }
    for event in &mut window.orphans {
        event.time_unix_nano = event.time_unix_nano.saturating_add(anchor);
    }
    Ok(())
}

fn callsite(name: &str, args: &Value) -> Callsite {
    let text = |key: &str| args.get(key).and_then(Value::as_str).unwrap_or("");
    let location = text("location");
    let (file, line) = match location.rsplit_once(':') {
        Some((file, line)) if line.parse::<u32>().is_ok() => (file, line.parse().ok()),
        _ => (location, None),
    };
    Callsite {
        name: name.to_owned(),
        level: text("level").to_owned(),
        target: text("target").to_owned(),
        file: (!file.is_empty()).then(|| file.to_owned()),
        line,
    }
}

/// `args.fields`, typed back: integers, floats, booleans, text.
fn fields(args: &Value) -> Vec<(Cow<'static, str>, FieldValue)> {
    let Some(fields) = args.get("fields").and_then(Value::as_object) else {
        return Vec::new();
    };
    fields
        .iter()
        .map(|(name, value)| {
            let value = match value {
                Value::Bool(b) => FieldValue::Bool(*b),
                Value::Number(n) => n
                    .as_i64()
                    .map(FieldValue::I64)
                    .or_else(|| n.as_u64().map(FieldValue::U64))
                    .unwrap_or_else(|| FieldValue::F64(n.as_f64().unwrap_or(f64::NAN))),
                Value::String(s) => FieldValue::Str(s.clone()),
                other => FieldValue::Str(other.to_string()),
            };
            (Cow::Owned(name.clone()), value)
        })
        .collect()
}

/// An async event's id as written, `"0x1f"` or `31`.
fn async_id(id: &str) -> Option<u64> {
    match id.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => id.parse().ok(),
    }
}
