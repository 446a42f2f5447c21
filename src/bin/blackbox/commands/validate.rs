//! `blackbox validate`: checks a dump against the format's invariants (exit 1 on a violation).

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use serde_json::Value;
use tracing_blackbox::analyze::{self, LoadError};

pub(crate) fn validate(path: &Path) -> ExitCode {
    let parsed = analyze::open(path).and_then(|(mut reader, _)| {
        let mut text = Vec::new();
        reader
            .read_to_end(&mut text)
            .map_err(|e| LoadError::io(path, "cannot read", e))?;
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
