//! `blackbox events`: the events of a dump, filtered by level, as a table or JSON lines.

use std::io::{self, Write};
use std::path::Path;

use serde_json::{Value, json};
use tracing_blackbox::analyze::TraceEvent;

use crate::output::{Threads, fields_of, format_duration, format_fields, severity, table};
use crate::{Failure, read};

pub(crate) fn events(path: &Path, level: Option<u8>, as_json: bool) -> Result<(), Failure> {
    let mut threads = Threads::default();
    let mut selected: Vec<TraceEvent> = Vec::new();
    let mut origin = i64::MAX;
    read(path, |event| {
        threads.feed(&event);
        if event.ph != "M" {
            origin = origin.min(event.ts_ns);
        }
        if matches!(event.ph.as_str(), "i" | "I" | "n") {
            let severity = event.arg_str("level").and_then(severity).unwrap_or(2);
            if level.is_none_or(|min| severity >= min) {
                selected.push(event);
            }
        }
    })?;
    selected.sort_by_key(|e| e.ts_ns);
    let mut out = io::stdout().lock();
    if as_json {
        for event in &selected {
            let row = json!({
                "ts_us": event.ts_ns as f64 / 1e3,
                "level": event.arg_str("level"),
                "thread": threads.name((event.pid, event.tid)),
                "tid": event.tid,
                "target": event.arg_str("target").unwrap_or(&event.cat),
                "message": event.arg_str("message").unwrap_or(&event.name),
                "fields": fields_of(&event.args).get("fields").cloned().unwrap_or_else(|| event.args.get("fields").cloned().unwrap_or(Value::Null)),
                "span_id": event.args.get("span_id"),
            });
            writeln!(out, "{row}")?;
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = selected
        .iter()
        .map(|event| {
            let fields = event
                .args
                .get("fields")
                .map(format_fields)
                .unwrap_or_default();
            let message = event.arg_str("message").unwrap_or(&event.name);
            vec![
                format!("+{}", format_duration(event.ts_ns - origin)),
                event.arg_str("level").unwrap_or("").to_owned(),
                threads.name((event.pid, event.tid)),
                if fields.is_empty() {
                    message.to_owned()
                } else {
                    format!("{message}  {fields}")
                },
            ]
        })
        .collect();
    table(
        &mut out,
        &["at", "level", "thread", "message"],
        &rows,
        &[true, false, false, false],
    )?;
    writeln!(out, "  {} events", rows.len())?;
    Ok(())
}
