//! `blackbox`: summarize, query, validate and convert flight-recorder dumps in a terminal.
//!
//! ```text
//! cargo install --path . --features cli
//! blackbox summary blackbox-dumps/slow_span_checkout_20261126T121914.123Z_3.json
//! ```
//!
//! Exit codes: 0 success, 1 `validate` found a violation, 2 the input cannot be read (or the
//! command line is wrong).

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use tracing_blackbox::analyze::{self, LoadError, TraceEvent, TraceInfo};

mod render;

#[derive(Parser)]
#[command(
    name = "blackbox",
    version,
    about = "Summarize, query, validate and convert tracing-blackbox dumps (and any Chrome trace JSON)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Why the dump was taken, its window, threads and counters, the slowest spans, latency
    /// per span name, warnings and errors.
    Summary {
        /// A dump: `.json` or `.json.gz`.
        file: PathBuf,
        /// How many of the slowest spans to list.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// List spans (each lifetime, or each slice for traces without lifetimes).
    Spans {
        /// A dump: `.json` or `.json.gz`.
        file: PathBuf,
        /// Only spans whose name contains this.
        #[arg(long)]
        name: Option<String>,
        /// Only spans that took at least this long (`100ms`, `1.5s`, `250us`).
        #[arg(long, value_parser = parse_duration)]
        min: Option<Duration>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List events.
    Events {
        /// A dump: `.json` or `.json.gz`.
        file: PathBuf,
        /// Only events at this level or more severe (`trace`, `debug`, `info`, `warn`, `error`).
        #[arg(long, value_parser = parse_level)]
        level: Option<u8>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check the format's invariants; exit 1 with the first violation.
    Validate {
        /// A dump: `.json` or `.json.gz`.
        file: PathBuf,
    },
    /// Draw the timeline as a self-contained picture: one lane per thread, spans as nested
    /// bars coloured by name, events as ticks, the trigger span outlined, a time axis.
    Render {
        /// A dump: `.json` or `.json.gz`.
        file: PathBuf,
        /// The picture: `.svg`, or `.html` for a page around it.
        #[arg(short, long)]
        output: PathBuf,
        /// Width in pixels.
        #[arg(long, default_value_t = 1600)]
        width: u32,
    },
    /// Copy a dump, gzipping or gunzipping it: the output is gzipped when its name ends in
    /// `.gz`.
    Convert {
        /// A dump: `.json` or `.json.gz`.
        file: PathBuf,
        /// Where to write.
        #[arg(short, long)]
        output: PathBuf,
    },
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = [
        ("ns", 1e-9),
        ("us", 1e-6),
        ("µs", 1e-6),
        ("ms", 1e-3),
        ("s", 1.0),
        ("m", 60.0),
    ]
    .iter()
    .find_map(|(unit, scale)| text.strip_suffix(unit).map(|n| (n, *scale)))
    .ok_or_else(|| format!("{text:?}: expected a duration such as 100ms, 1.5s or 250us"))?;
    let number: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: expected a duration such as 100ms, 1.5s or 250us"))?;
    if !(number >= 0.0 && number.is_finite()) {
        return Err(format!("{text:?}: a duration cannot be negative"));
    }
    Ok(Duration::from_secs_f64(number * scale))
}

/// Severity, higher is more severe: trace 0 … error 4.
fn parse_level(text: &str) -> Result<u8, String> {
    severity(text).ok_or_else(|| format!("{text:?}: expected trace, debug, info, warn or error"))
}

fn severity(level: &str) -> Option<u8> {
    match level.to_ascii_lowercase().as_str() {
        "trace" => Some(0),
        "debug" => Some(1),
        "info" => Some(2),
        "warn" | "warning" => Some(3),
        "error" => Some(4),
        _ => None,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Summary { file, top } => summary(&file, top),
        Command::Spans {
            file,
            name,
            min,
            json,
        } => spans(&file, name.as_deref(), min, json),
        Command::Events { file, level, json } => events(&file, level, json),
        Command::Validate { file } => return validate(&file),
        Command::Convert { file, output } => convert(&file, &output),
        Command::Render {
            file,
            output,
            width,
        } => render::render(&file, &output, width),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(err)) => {
            eprintln!("blackbox: {err}");
            ExitCode::from(2)
        }
        Err(Failure::Output(err)) if err.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(Failure::Output(err)) => {
            eprintln!("blackbox: cannot write the output: {err}");
            ExitCode::from(2)
        }
    }
}

pub(crate) enum Failure {
    Input(LoadError),
    Output(io::Error),
}

impl From<LoadError> for Failure {
    fn from(err: LoadError) -> Self {
        Failure::Input(err)
    }
}

impl From<io::Error> for Failure {
    fn from(err: io::Error) -> Self {
        Failure::Output(err)
    }
}

/// Reads `path` event by event, with a progress bar on a terminal for large files.
pub(crate) fn read(path: &Path, on_event: impl FnMut(TraceEvent)) -> Result<TraceInfo, LoadError> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size < (16 << 20) || !io::stderr().is_terminal() {
        return analyze::read_events(path, on_event);
    }
    let file = File::open(path).map_err(|e| LoadError::new(path, format!("cannot open: {e}")))?;
    let bar = indicatif::ProgressBar::new(size).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let result = match analyze::decode(bar.wrap_read(file)) {
        Ok((reader, gzipped)) => analyze::read_from(reader, on_event)
            .map(|mut info| {
                info.gzipped = gzipped;
                info
            })
            .map_err(|problem| LoadError::new(path, problem)),
        Err(e) => Err(LoadError::new(path, format!("cannot read: {e}"))),
    };
    bar.finish_and_clear();
    result
}

/// A span's lifetime (from `b`/`e`) or a slice (from `X`, or a `B`/`E` pair).
#[derive(Clone)]
struct Span {
    name: String,
    tid: (i64, i64),
    start_ns: i64,
    dur_ns: i64,
    fields: Value,
    trigger: bool,
    incomplete: bool,
}

/// Where a span came from: a lifetime (`b`/`e`, this crate's dumps) or a slice (`X`, or a
/// `B`/`E` pair, any trace). Lifetimes are preferred when a trace has them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Lifetime,
    Slice,
}

/// Turns events into spans as they stream by, keeping only what is still open.
#[derive(Default)]
struct SpanBuilder {
    open_async: HashMap<(String, String), TraceEvent>,
    open_b: HashMap<(i64, i64), Vec<TraceEvent>>,
}

impl SpanBuilder {
    fn feed(&mut self, event: TraceEvent, mut on_span: impl FnMut(Source, Span)) {
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
struct Stats {
    top: usize,
    by_name: BTreeMap<String, Vec<i64>>,
    slowest: BinaryHeap<std::cmp::Reverse<Ranked>>,
    seen: u64,
}

/// A span ordered by duration, then by arrival (earlier first among equals).
struct Ranked(i64, std::cmp::Reverse<u64>, Span);

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
    fn new(top: usize) -> Self {
        Stats {
            top,
            by_name: BTreeMap::new(),
            slowest: BinaryHeap::new(),
            seen: 0,
        }
    }

    fn add(&mut self, span: Span) {
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
    fn slowest(self) -> (Vec<Span>, BTreeMap<String, Vec<i64>>) {
        let mut ranked: Vec<Ranked> = self.slowest.into_iter().map(|r| r.0).collect();
        ranked.sort_by(|a, b| b.cmp(a));
        (ranked.into_iter().map(|r| r.2).collect(), self.by_name)
    }
}

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
pub(crate) struct Threads(HashMap<(i64, i64), String>);

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
fn table(
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
fn table_or_none(
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

fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(path: &Path, top: usize) -> Result<(), Failure> {
    let mut threads = Threads::default();
    let mut spans = SpanBuilder::default();
    let mut lifetimes = Stats::new(top);
    let mut slices = Stats::new(top);
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
            trigger["span"].as_str().unwrap_or("?"),
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

fn spans(
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

fn events(path: &Path, level: Option<u8>, as_json: bool) -> Result<(), Failure> {
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

fn validate(path: &Path) -> ExitCode {
    let parsed = analyze::open(path).and_then(|(mut reader, _)| {
        let mut text = Vec::new();
        reader
            .read_to_end(&mut text)
            .map_err(|e| LoadError::new(path, format!("cannot read: {e}")))?;
        serde_json::from_slice::<Value>(&text)
            .map_err(|e| LoadError::new(path, format!("not valid JSON: {e}")))
    });
    let trace = match parsed {
        Ok(trace) => trace,
        Err(err) => {
            eprintln!("blackbox: {err}");
            return ExitCode::from(2);
        }
    };
    match tracing_blackbox::validate::check(&trace) {
        Ok(summary) => {
            println!(
                "{}: valid: {} events, {} threads, {} slices, {} async pairs, {} flows, {} instants",
                path.display(),
                summary.events,
                summary.threads,
                summary.slices,
                summary.async_pairs,
                summary.flows,
                summary.instants
            );
            ExitCode::SUCCESS
        }
        Err(violation)
            if violation.message.starts_with("not a trace")
                || violation.message.starts_with("no traceEvents") =>
        {
            eprintln!(
                "blackbox: {}: JSON that is not a trace: {}",
                path.display(),
                violation.message
            );
            ExitCode::from(2)
        }
        Err(violation) => {
            println!("{}: invalid: {violation}", path.display());
            ExitCode::from(1)
        }
    }
}

/// Copies while the copy is parsed, so a file that is not a trace is refused.
struct Tee<R, W> {
    reader: R,
    writer: W,
    error: Option<io::Error>,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.reader.read(buf)?;
        if let Err(e) = self.writer.write_all(&buf[..n]) {
            let message = e.to_string();
            self.error = Some(e);
            return Err(io::Error::other(message));
        }
        Ok(n)
    }
}

fn convert(input: &Path, output: &Path) -> Result<(), Failure> {
    let (reader, _) = analyze::open(input)?;
    let dir = match output.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let temp = tempfile::Builder::new()
        .prefix(".blackbox-convert.")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    let gzip = output.extension().is_some_and(|e| e == "gz");
    let file = io::BufWriter::new(temp.as_file().try_clone()?);
    let writer = if gzip {
        Output::Gzip(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::default(),
        ))
    } else {
        Output::Plain(file)
    };
    let mut tee = Tee {
        reader,
        writer,
        error: None,
    };
    let parsed = analyze::read_from(&mut tee, |_| {});
    if let Some(e) = tee.error.take() {
        return Err(Failure::Output(e));
    }
    parsed.map_err(|problem| LoadError::new(input, problem))?;
    // Finish the gzip stream and flush before the file goes into place.
    let Tee { writer, .. } = tee;
    writer.finish()?;
    temp.as_file().sync_all()?;
    temp.persist(output).map_err(|e| Failure::Output(e.error))?;
    Ok(())
}

enum Output {
    Plain(io::BufWriter<File>),
    Gzip(flate2::write::GzEncoder<io::BufWriter<File>>),
}

impl Output {
    /// Writes the gzip trailer, if any, and flushes.
    fn finish(self) -> io::Result<()> {
        match self {
            Output::Plain(mut file) => file.flush(),
            Output::Gzip(gz) => gz.finish()?.flush(),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Plain(w) => w.write(buf),
            Output::Gzip(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Plain(w) => w.flush(),
            Output::Gzip(w) => w.flush(),
        }
    }
}
