//! `blackbox summary`: why a dump was written, its window, counters, the slowest spans and
//! per-name durations, and the runtime view (tokio's tasks, workers, counter tracks).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use serde_json::Value;

use crate::output::{
    Threads, format_duration, format_fields, percentile, severity, table, table_or_none,
};
use crate::runtime::RuntimeStats;
use crate::spans::{Source, SpanBuilder, Stats};
use crate::{Failure, read};

pub(crate) fn summary(path: &Path, top: usize) -> Result<(), Failure> {
    let mut threads = Threads::default();
    let mut spans = SpanBuilder::default();
    let mut lifetimes = Stats::new(top);
    let mut slices = Stats::new(top);
    let mut runtime = RuntimeStats::new(top);
    let mut phases: BTreeMap<String, u64> = BTreeMap::new();
    let mut notable: Vec<(u8, i64, (i64, i64), String)> = Vec::new();
    let mut notable_counts = [0u64; 2];
    let (mut first_ts, mut last_ts) = (i64::MAX, i64::MIN);
    let info = read(path, |event| {
        threads.feed(&event);
        match phases.get_mut(&event.ph) {
            Some(count) => *count += 1,
            None => {
                phases.insert(event.ph.clone(), 1);
            }
        }
        if event.ph != "M" {
            first_ts = first_ts.min(event.ts_ns);
            last_ts = last_ts.max(event.ts_ns + event.dur_ns.unwrap_or(0));
        }
        if matches!(event.ph.as_str(), "i" | "I") {
            let level = event.arg_str("level").and_then(severity).unwrap_or(2);
            if level >= 3 {
                notable_counts[usize::from(level - 3)] += 1;
                if notable.len() < 20 {
                    let message = event.arg_str("message").unwrap_or(&event.name).to_owned();
                    notable.push((level, event.ts_ns, (event.pid, event.tid), message));
                }
            }
        }
        runtime.feed(&event);
        spans.feed(event, |source, span| match source {
            Source::Lifetime => lifetimes.add(span),
            Source::Slice => slices.add(span),
        });
    })?;
    let (slowest, mut by_name) = if lifetimes.seen > 0 {
        lifetimes.slowest()
    } else {
        slices.slowest()
    };
    let mut out = io::stdout().lock();
    writeln!(out, "{}", path.display())?;
    let other = info.other_data.clone().unwrap_or(Value::Null);
    let reason = info
        .reason()
        .unwrap_or("unknown (not a tracing-blackbox dump)");
    match other.get("trigger") {
        Some(trigger) => writeln!(
            out,
            "  reason    {reason}: {} (span {}) took {:.1} ms > {:.1} ms ({} time){}",
            trigger["task"]
                .as_str()
                .map(|task| format!("task {task}"))
                .or_else(|| trigger["span"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "?".to_owned()),
            trigger["span_id"],
            trigger["duration_ms"].as_f64().unwrap_or(0.0),
            trigger["threshold_ms"].as_f64().unwrap_or(0.0),
            trigger["timing"].as_str().unwrap_or("wall"),
            match format_fields(&trigger["fields"]) {
                f if f.is_empty() => String::new(),
                f => format!(", {f}"),
            }
        )?,
        None => writeln!(out, "  reason    {reason}")?,
    }
    if let Some(crash) = other.get("crash") {
        writeln!(
            out,
            "  crashed   pid {} ({}), recovered from {}",
            crash["pid"],
            crash["exe"].as_str().unwrap_or("?"),
            crash["file"].as_str().unwrap_or("?")
        )?;
        for warning in other["warnings"].as_array().into_iter().flatten() {
            writeln!(out, "  warning   {}", warning.as_str().unwrap_or("?"))?;
        }
    }
    if let Some(event) = other.get("trigger_event") {
        writeln!(
            out,
            "  error     {} {}: {}{}{} at {}",
            event["level"].as_str().unwrap_or("?"),
            event["target"].as_str().unwrap_or("?"),
            match &event["message"] {
                Value::String(message) => message.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            },
            match format_fields(&event["fields"]) {
                f if f.is_empty() => String::new(),
                f => format!(", {f}"),
            },
            if event["recorded"] == Value::Bool(false) {
                " (not among the records: it could not be recorded)"
            } else {
                ""
            },
            event["location"].as_str().unwrap_or("?")
        )?;
    }
    if let Some(panic) = other.get("panic") {
        writeln!(
            out,
            "  panic     {} at {}",
            panic["message"].as_str().unwrap_or("?"),
            panic["location"].as_str().unwrap_or("?")
        )?;
    }
    match (other["window_start"].as_str(), other["window_end"].as_str()) {
        (Some(start), Some(end)) => {
            let span_ns = ((other["window_end_us"].as_f64().unwrap_or(0.0)
                - other["window_start_us"].as_f64().unwrap_or(0.0))
                * 1000.0) as i64;
            writeln!(
                out,
                "  window    {start} → {end} ({})",
                format_duration(span_ns)
            )?;
        }
        _ if first_ts <= last_ts => writeln!(
            out,
            "  window    {} of trace time",
            format_duration(last_ts - first_ts)
        )?,
        _ => writeln!(out, "  window    empty")?,
    }
    let mut names: Vec<String> = threads.0.values().cloned().collect();
    names.sort();
    writeln!(out, "  threads   {} ({})", names.len(), names.join(", "))?;
    if let Some(written) = info.counter("written") {
        writeln!(
            out,
            "  records   written {written}, retained {}, overwritten {}, dropped {}, suppressed triggers {}",
            info.counter("retained").unwrap_or(0),
            info.counter("overwritten").unwrap_or(0),
            info.counter("dropped").unwrap_or(0),
            info.counter("suppressed").unwrap_or(0),
        )?;
    }
    writeln!(
        out,
        "  events    {} ({})",
        info.events,
        phases
            .iter()
            .map(|(ph, n)| format!("{ph} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    )?;

    writeln!(out)?;
    writeln!(out, "slowest spans")?;
    let rows: Vec<Vec<String>> = slowest
        .iter()
        .map(|span| {
            let mut name = span.name.clone();
            if span.trigger {
                name.push_str(" (trigger)");
            }
            if span.incomplete {
                name.push_str(" (open)");
            }
            vec![
                format_duration(span.dur_ns),
                name,
                threads.name(span.tid),
                format_fields(&span.fields),
            ]
        })
        .collect();
    table_or_none(
        &mut out,
        &["duration", "name", "thread", "fields"],
        &rows,
        &[true, false, false, false],
    )?;

    writeln!(out)?;
    writeln!(out, "by name")?;
    let rows: Vec<Vec<String>> = by_name
        .iter_mut()
        .map(|(name, durations)| {
            durations.sort_unstable();
            vec![
                name.clone(),
                durations.len().to_string(),
                format_duration(percentile(durations, 0.5)),
                format_duration(percentile(durations, 0.99)),
                format_duration(*durations.last().unwrap_or(&0)),
            ]
        })
        .collect();
    table_or_none(
        &mut out,
        &["name", "count", "p50", "p99", "max"],
        &rows,
        &[false, true, true, true, true],
    )?;

    runtime.print(&mut out, &threads)?;

    writeln!(out)?;
    writeln!(
        out,
        "warnings and errors: {} warnings, {} errors",
        notable_counts[0], notable_counts[1]
    )?;
    let origin = first_ts.min(last_ts);
    let rows: Vec<Vec<String>> = notable
        .iter()
        .map(|(level, ts, thread, message)| {
            vec![
                format!("+{}", format_duration(ts - origin)),
                if *level == 4 { "ERROR" } else { "WARN" }.to_owned(),
                threads.name(*thread),
                message.clone(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        table(
            &mut out,
            &["at", "level", "thread", "message"],
            &rows,
            &[true, false, false, false],
        )?;
    }
    Ok(())
}
