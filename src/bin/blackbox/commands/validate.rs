//! `blackbox validate`: checks a dump against the format's invariants (exit 1 on a violation).

use std::path::Path;
use std::process::ExitCode;

use tracing_blackbox::analyze::{self, LoadError};
use tracing_blackbox::validate::Checker;

pub(crate) fn validate(path: &Path) -> ExitCode {
    // Streamed: one event in memory at a time, checked as it comes; only the first violation
    // is kept. Whether the input is a trace at all is the reader's to say (exit 2), whether it
    // keeps the format's rules the checker's (exit 1).
    let mut checker = Checker::default();
    let mut violation = None;
    let read = analyze::open(path).and_then(|(reader, _)| {
        analyze::read_values(reader, |event| {
            if violation.is_none()
                && let Err(found) = checker.feed(&event)
            {
                violation = Some(found);
            }
        })
        .map_err(|problem| LoadError::new(path, problem))
    });
    if let Err(err) = read {
        eprintln!("blackbox: {err}");
        return ExitCode::from(2);
    }
    match violation.map_or_else(|| checker.finish(), Err) {
        Ok(summary) => {
            let counters = match summary.counters {
                0 => String::new(),
                n => format!(", {n} counter samples on {} tracks", summary.counter_tracks),
            };
            println!(
                "{}: valid: {} events, {} threads, {} slices, {} async pairs, {} flows, {} instants{counters}",
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
        Err(violation) => {
            println!("{}: invalid: {violation}", path.display());
            ExitCode::from(1)
        }
    }
}
