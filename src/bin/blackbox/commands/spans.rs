//! `blackbox spans`: the spans of a dump, filtered by name and duration, as a table or JSON lines.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::output::{Threads, format_duration, format_fields, table};
use crate::spans::{Source, SpanBuilder};
use crate::{Failure, read};

pub(crate) fn spans(
    path: &Path,
    name: Option<&str>,
    min: Option<Duration>,
    as_json: bool,
) -> Result<(), Failure> {
    let mut threads = Threads::default();
    let mut builder = SpanBuilder::default();
    let mut origin = i64::MAX;
    let min_ns = min.map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let (mut lifetimes, mut slices, mut any_lifetime) = (Vec::new(), Vec::new(), false);
    read(path, |event| {
        threads.feed(&event);
        if event.ph != "M" {
            origin = origin.min(event.ts_ns);
        }
        builder.feed(event, |source, span| {
            any_lifetime |= source == Source::Lifetime;
            if name.is_none_or(|n| span.name.contains(n)) && span.dur_ns >= min_ns {
                match source {
                    Source::Lifetime => lifetimes.push(span),
                    Source::Slice => slices.push(span),
                }
            }
        });
    })?;
    let mut selected = if any_lifetime { lifetimes } else { slices };
    selected.sort_by_key(|s| (s.start_ns, s.tid));
    let mut out = io::stdout().lock();
    if as_json {
        for span in &selected {
            let row = json!({
                "name": span.name,
                "thread": threads.name(span.tid),
                "tid": span.tid.1,
                "start_us": span.start_ns as f64 / 1e3,
                "duration_us": span.dur_ns as f64 / 1e3,
                "fields": span.fields,
                "trigger": span.trigger,
                "incomplete": span.incomplete,
            });
            writeln!(out, "{row}")?;
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = selected
        .iter()
        .map(|span| {
            vec![
                format!("+{}", format_duration(span.start_ns - origin)),
                format_duration(span.dur_ns),
                span.name.clone(),
                threads.name(span.tid),
                format_fields(&span.fields),
            ]
        })
        .collect();
    table(
        &mut out,
        &["start", "duration", "name", "thread", "fields"],
        &rows,
        &[true, true, false, false, false],
    )?;
    writeln!(out, "  {} spans", rows.len())?;
    Ok(())
}
