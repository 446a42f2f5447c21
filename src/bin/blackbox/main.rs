//! `blackbox`: summarize, query, validate, convert, open and export flight-recorder dumps, and
//! recover the crash files of dead processes.
//!
//! ```text
//! cargo install --path . --features cli
//! blackbox summary blackbox-dumps/slow_span_checkout_20261126T121914.123Z_3.json
//! ```
//!
//! Exit codes: 0 success, 1 `validate` found a violation, 2 the input cannot be read (or the
//! command line is wrong).

use std::fs::File;
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tracing_blackbox::analyze::{self, LoadError, TraceEvent, TraceInfo};

mod commands;
mod output;
mod runtime;
mod spans;

use output::severity;

#[derive(Parser)]
#[command(
    name = "blackbox",
    version,
    about = "Summarize, query, validate, convert, open and export tracing-blackbox dumps (and read any Chrome trace JSON)."
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
    /// Open a dump in ui.perfetto.dev (or speedscope): serve it once on 127.0.0.1 and open
    /// the browser on the link that loads it from there; ends once the trace was fetched.
    Open {
        /// A dump: `.json` or `.json.gz`.
        file: PathBuf,
        /// Open it in speedscope (www.speedscope.app) instead of Perfetto.
        #[arg(long)]
        speedscope: bool,
        /// The port to serve on. Perfetto's UI fetches local traces from 9001 only; 0 picks a
        /// free port (for speedscope, or for scripts).
        #[arg(long, default_value_t = commands::open::PERFETTO_PORT)]
        port: u16,
        /// Print the link without starting a browser.
        #[arg(long)]
        no_browser: bool,
    },
    /// Send a dump to an OpenTelemetry receiver as OTLP spans, with the mapping of a live
    /// export: for dumps written before export was on, or copied off a machine.
    Export {
        /// A dump: `.json` or `.json.gz`.
        file: PathBuf,
        /// The receiver: a base URL (`http://collector:4318`, to which `/v1/traces` is added)
        /// or the full traces URL.
        #[arg(long)]
        otlp: String,
        /// A header to send, `name=value` (repeatable): an API key, `authorization=Bearer …`.
        #[arg(long = "header", value_parser = parse_header)]
        headers: Vec<(String, String)>,
        /// `service.name` of the resource (default: the process name the dump records).
        #[arg(long)]
        service_name: Option<String>,
        /// Gzip the request.
        #[arg(long)]
        gzip: bool,
    },
    /// Turn the crash file a dead process left (a crash-safe recorder's, in /dev/shm by
    /// default) into a dump, and remove the file once the dump is written. Given a directory,
    /// recovers every crash file in it.
    Recover {
        /// A crash file (`blackbox-<exe>-<pid>-<start>.shm`) or a directory of them.
        #[arg(default_value_os_t = tracing_blackbox::recover::default_crash_dir())]
        target: PathBuf,
        /// Write the dump here (one file only) instead of a new name in --dir.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Where dumps get new names.
        #[arg(long, default_value = "blackbox-dumps")]
        dir: PathBuf,
        /// Read the file even though its process is still running.
        #[arg(long)]
        force: bool,
        /// Leave the crash file in place.
        #[arg(long)]
        keep: bool,
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

fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected name=value"))?;
    if name.trim().is_empty() {
        return Err(format!("{text:?}: the header name is empty"));
    }
    Ok((name.trim().to_owned(), value.to_owned()))
}

/// Severity, higher is more severe: trace 0 … error 4.
fn parse_level(text: &str) -> Result<u8, String> {
    severity(text).ok_or_else(|| format!("{text:?}: expected trace, debug, info, warn or error"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Summary { file, top } => commands::summary::summary(&file, top),
        Command::Spans {
            file,
            name,
            min,
            json,
        } => commands::spans::spans(&file, name.as_deref(), min, json),
        Command::Events { file, level, json } => commands::events::events(&file, level, json),
        Command::Validate { file } => return commands::validate::validate(&file),
        Command::Convert { file, output } => commands::convert::convert(&file, &output),
        Command::Export {
            file,
            otlp,
            headers,
            service_name,
            gzip,
        } => commands::export::export(&file, &otlp, headers, service_name, gzip),
        Command::Open {
            file,
            speedscope,
            port,
            no_browser,
        } => {
            let viewer = if speedscope {
                commands::open::Viewer::Speedscope
            } else {
                commands::open::Viewer::Perfetto
            };
            commands::open::open(&file, viewer, port, !no_browser)
        }
        Command::Render {
            file,
            output,
            width,
        } => commands::render::render(&file, &output, width),
        Command::Recover {
            target,
            output,
            dir,
            force,
            keep,
        } => commands::recover::recover(&commands::recover::Request {
            target,
            output,
            dump_dir: dir,
            force,
            keep,
        }),
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
        Err(Failure::Serve(err)) => {
            eprintln!("blackbox: {err}");
            ExitCode::from(2)
        }
        Err(Failure::Export(err)) => {
            eprintln!("blackbox: {err}");
            ExitCode::from(2)
        }
        Err(Failure::Recover(message)) => {
            eprintln!("blackbox: {message}");
            ExitCode::from(2)
        }
    }
}

pub(crate) enum Failure {
    Input(LoadError),
    Output(io::Error),
    /// `open` could not listen or serve.
    Serve(io::Error),
    /// `export` could not send.
    Export(tracing_blackbox::DumpError),
    /// `recover` could not recover a file (each line says which and why).
    Recover(String),
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
    let file = File::open(path).map_err(|e| LoadError::io(path, "cannot open", e))?;
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
        Err(e) => Err(LoadError::io(path, "cannot read", e)),
    };
    bar.finish_and_clear();
    result
}
