//! The runtime view in `blackbox summary`: tokio's tasks (longest polls, longest scheduled
//! delays, busiest tasks), the workers' busy ratio from their busy and parked slices, and each
//! counter's range.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

use tracing_blackbox::analyze::TraceEvent;

use crate::output::{Threads, format_duration, table};

/// A poll kept for the top-N tables.
struct Poll {
    task: String,
    thread: (i64, i64),
    dur_ns: i64,
    delay_ns: i64,
}

/// What a dump says about the runtime, gathered as events stream by.
pub(crate) struct RuntimeStats {
    top: usize,
    polls: Vec<Poll>,
    /// Per task: polls, total poll time, longest scheduled delay.
    tasks: HashMap<String, (u64, i64, i64)>,
    /// Per worker thread: busy and parked time.
    workers: BTreeMap<(i64, i64), (i64, i64)>,
    /// Per counter track (`name`, argument): min, max, last, samples.
    counters: BTreeMap<(String, String), (f64, f64, f64, u64)>,
}

impl RuntimeStats {
    pub(crate) fn new(top: usize) -> Self {
        RuntimeStats {
            top,
            polls: Vec::new(),
            tasks: HashMap::new(),
            workers: BTreeMap::new(),
            counters: BTreeMap::new(),
        }
    }

    pub(crate) fn feed(&mut self, event: &TraceEvent) {
        let thread = (event.pid, event.tid);
        match (event.ph.as_str(), event.cat.as_str()) {
            // Async tasks' polls (blocking tasks, the workers themselves among them, run
            // for as long as they like).
            ("X", "tokio::task") => {
                let dur_ns = event.dur_ns.unwrap_or(0);
                let delay_ns = event
                    .args
                    .get("scheduled_delay_us")
                    .and_then(serde_json::Value::as_f64)
                    .map_or(0, |us| (us * 1000.0) as i64);
                let task = self.tasks.entry(event.name.clone()).or_default();
                task.0 += 1;
                task.1 += dur_ns;
                task.2 = task.2.max(delay_ns);
                self.polls.push(Poll {
                    task: event.name.clone(),
                    thread,
                    dur_ns,
                    delay_ns,
                });
                // Bounded memory: keep the polls that can still make either top list.
                if self.polls.len() > self.top.max(1) * 64 {
                    self.prune();
                }
            }
            ("X", "tokio::runtime") => {
                let worker = self.workers.entry(thread).or_default();
                let dur_ns = event.dur_ns.unwrap_or(0);
                if event.name == "parked" {
                    worker.1 += dur_ns;
                } else {
                    worker.0 += dur_ns;
                }
            }
            ("C", _) => {
                let Some(args) = event.args.as_object() else {
                    return;
                };
                for (arg, value) in args {
                    let Some(value) = value.as_f64() else {
                        continue;
                    };
                    let entry = self
                        .counters
                        .entry((event.name.clone(), arg.clone()))
                        .or_insert((value, value, value, 0));
                    entry.0 = entry.0.min(value);
                    entry.1 = entry.1.max(value);
                    entry.2 = value;
                    entry.3 += 1;
                }
            }
            _ => {}
        }
    }

    /// Keeps the `top` longest polls and the `top` longest delays.
    fn prune(&mut self) {
        let top = self.top.max(1);
        let mut by_dur: Vec<usize> = (0..self.polls.len()).collect();
        by_dur.sort_by_key(|&i| std::cmp::Reverse(self.polls[i].dur_ns));
        let mut by_delay: Vec<usize> = (0..self.polls.len()).collect();
        by_delay.sort_by_key(|&i| std::cmp::Reverse(self.polls[i].delay_ns));
        let mut keep = vec![false; self.polls.len()];
        for &i in by_dur.iter().take(top).chain(by_delay.iter().take(top)) {
            keep[i] = true;
        }
        let mut index = 0;
        self.polls.retain(|_| {
            index += 1;
            keep[index - 1]
        });
    }

    /// Prints the sections the dump has data for.
    pub(crate) fn print(mut self, out: &mut impl Write, threads: &Threads) -> io::Result<()> {
        let top = self.top.max(1);
        if !self.polls.is_empty() {
            self.prune();
            writeln!(out)?;
            writeln!(out, "tokio tasks: {} polled", self.tasks.len())?;
            for (title, header, measure) in [
                (
                    "longest polls",
                    "poll",
                    (|p: &Poll| p.dur_ns) as fn(&Poll) -> i64,
                ),
                (
                    "longest scheduled delays (ready → polled)",
                    "delay",
                    |p: &Poll| p.delay_ns,
                ),
            ] {
                self.polls.sort_by_key(|p| std::cmp::Reverse(measure(p)));
                let rows: Vec<Vec<String>> = self
                    .polls
                    .iter()
                    .take(top)
                    .filter(|p| measure(p) > 0)
                    .map(|p| {
                        vec![
                            format_duration(measure(p)),
                            p.task.clone(),
                            threads.name(p.thread),
                        ]
                    })
                    .collect();
                writeln!(out, "{title}")?;
                table(
                    out,
                    &[header, "task", "worker"],
                    &rows,
                    &[true, false, false],
                )?;
            }
            let mut busiest: Vec<(&String, &(u64, i64, i64))> = self.tasks.iter().collect();
            busiest.sort_by_key(|(name, (_, busy, _))| (std::cmp::Reverse(*busy), *name));
            let rows: Vec<Vec<String>> = busiest
                .into_iter()
                .take(top)
                .map(|(name, (polls, busy, delay))| {
                    vec![
                        format_duration(*busy),
                        polls.to_string(),
                        format_duration(*delay),
                        name.clone(),
                    ]
                })
                .collect();
            writeln!(out, "busiest tasks")?;
            table(
                out,
                &["polling", "polls", "max delay", "task"],
                &rows,
                &[true, true, true, false],
            )?;
        }
        if !self.workers.is_empty() {
            writeln!(out)?;
            writeln!(out, "workers (from park/unpark)")?;
            let rows: Vec<Vec<String>> = self
                .workers
                .iter()
                .map(|(thread, (busy, parked))| {
                    let total = (busy + parked).max(1);
                    vec![
                        threads.name(*thread),
                        format!("{:.0} %", *busy as f64 * 100.0 / total as f64),
                        format_duration(*busy),
                        format_duration(*parked),
                    ]
                })
                .collect();
            table(
                out,
                &["worker", "busy", "busy time", "parked time"],
                &rows,
                &[false, true, true, true],
            )?;
        }
        if !self.counters.is_empty() {
            writeln!(out)?;
            writeln!(out, "counters")?;
            let number = |v: f64| {
                if v.fract() == 0.0 && v.abs() < 1e15 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.3}")
                }
            };
            let rows: Vec<Vec<String>> = self
                .counters
                .iter()
                .map(|((name, arg), (min, max, last, samples))| {
                    vec![
                        format!("{name} {arg}"),
                        number(*min),
                        number(*max),
                        number(*last),
                        samples.to_string(),
                    ]
                })
                .collect();
            table(
                out,
                &["counter", "min", "max", "last", "samples"],
                &rows,
                &[false, true, true, true, true],
            )?;
        }
        Ok(())
    }
}
