//! Terminal output: durations, fields, thread names, aligned tables, percentiles.

use std::collections::HashMap;
use std::io::{self, Write};

use serde_json::Value;
use tracing_blackbox::analyze::TraceEvent;

/// A span's or event's own fields: `args.fields` in this crate's dumps; the whole `args` of
/// other tools' traces.
pub(crate) fn fields_of(args: &Value) -> Value {
    match args.get("fields") {
        Some(fields) => fields.clone(),
        None if args.get("span_id").is_some() => Value::Null,
        None => match args {
            Value::Object(_) => args.clone(),
            _ => Value::Null,
        },
    }
}

/// Thread names from `thread_name` metadata.
#[derive(Default)]
pub(crate) struct Threads(pub(crate) HashMap<(i64, i64), String>);

impl Threads {
    pub(crate) fn feed(&mut self, event: &TraceEvent) {
        if event.ph == "M"
            && event.name == "thread_name"
            && let Some(name) = event.arg_str("name")
        {
            self.0.insert((event.pid, event.tid), name.to_owned());
        }
    }

    pub(crate) fn name(&self, thread: (i64, i64)) -> String {
        self.0
            .get(&thread)
            .cloned()
            .unwrap_or_else(|| format!("tid {}", thread.1))
    }
}

pub(crate) fn format_duration(ns: i64) -> String {
    let ns = ns.max(0) as f64;
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

pub(crate) fn format_fields(fields: &Value) -> String {
    match fields {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Prints rows as columns padded to their widest cell; the last column is not padded.
pub(crate) fn table(
    out: &mut impl Write,
    header: &[&str],
    rows: &[Vec<String>],
    right: &[bool],
) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let last = cells.len() - 1;
        let mut text = String::from("  ");
        for (i, cell) in cells.into_iter().enumerate() {
            let pad = widths[i] - cell.chars().count();
            if i == last {
                text.push_str(cell);
            } else if right[i] {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
                text.push_str("  ");
            } else {
                text.push_str(cell);
                text.push_str(&" ".repeat(pad + 2));
            }
        }
        text.trim_end().to_owned()
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

/// A summary section: the table, or `(none)`.
pub(crate) fn table_or_none(
    out: &mut impl Write,
    header: &[&str],
    rows: &[Vec<String>],
    right: &[bool],
) -> io::Result<()> {
    if rows.is_empty() {
        writeln!(out, "  (none)")
    } else {
        table(out, header, rows, right)
    }
}

pub(crate) fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub(crate) fn severity(level: &str) -> Option<u8> {
    match level.to_ascii_lowercase().as_str() {
        "trace" => Some(0),
        "debug" => Some(1),
        "info" => Some(2),
        "warn" | "warning" => Some(3),
        "error" => Some(4),
        _ => None,
    }
}
