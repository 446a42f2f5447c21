//! The format checker for Chrome Trace Event JSON: the invariants every dump must hold, as one
//! piece of code for the crate's tests and for tools.
//!
//! ```
//! let trace = serde_json::json!({"traceEvents": [
//!     {"ph": "M", "name": "thread_name", "pid": 1, "tid": 7, "args": {"name": "main"}},
//!     {"ph": "X", "name": "outer", "pid": 1, "tid": 7, "ts": 0.0, "dur": 10.0},
//!     {"ph": "X", "name": "inner", "pid": 1, "tid": 7, "ts": 2.0, "dur": 3.5},
//! ]});
//! let summary = tracing_blackbox::validate::check(&trace).unwrap();
//! assert_eq!(summary.slices, 2);
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use serde_json::Value;

/// What a valid trace contains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// All events, metadata included.
    pub events: usize,
    /// `X` slices.
    pub slices: usize,
    /// `B`/`E` pairs.
    pub begin_end_pairs: usize,
    /// Async `b`/`e` pairs.
    pub async_pairs: usize,
    /// Instant events (`i`, `I`).
    pub instants: usize,
    /// Flow arrows (one per `s`…`f` chain).
    pub flows: usize,
    /// Counter samples (`C`).
    pub counters: usize,
    /// Distinct counter tracks: `(pid, name, argument)`.
    pub counter_tracks: usize,
    /// Distinct `(pid, tid)` threads with events.
    pub threads: usize,
    /// Whether each thread's events appear in the file in non-decreasing `ts` order (the format
    /// does not require it; this crate's dumps do it).
    pub sorted_per_thread: bool,
}

/// The first broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Index of the offending event in `traceEvents`, when one event is to blame.
    pub event: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.event {
            Some(index) => write!(f, "event {index}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Violation {}

fn violation(event: Option<usize>, message: impl Into<String>) -> Violation {
    Violation {
        event,
        message: message.into(),
    }
}

/// `(pid, tid)`.
type Thread = (i64, i64);

/// Answers "is this instant inside some slice?" for one thread's slices in O(log n).
struct Reach {
    /// Slice starts, ascending.
    starts: Vec<i64>,
    /// For each position, the latest end among the slices up to it.
    furthest_end: Vec<i64>,
}

impl Reach {
    /// `slices`: `(ts, dur, index)` sorted by `ts`.
    fn new(slices: &[(i64, i64, usize)]) -> Self {
        let mut furthest = i64::MIN;
        let furthest_end = slices
            .iter()
            .map(|&(ts, dur, _)| {
                furthest = furthest.max(ts + dur);
                furthest
            })
            .collect();
        Reach {
            starts: slices.iter().map(|&(ts, _, _)| ts).collect(),
            furthest_end,
        }
    }

    fn covers(&self, ts: i64) -> bool {
        let started = self.starts.partition_point(|&start| start <= ts);
        started > 0 && self.furthest_end[started - 1] >= ts
    }
}
/// A flow step: `(ts, phase, event index, thread)`.
type FlowStep = (i64, u8, usize, Thread);
/// A begin or end: `(ts, is_begin, event index)`.
type Mark = (i64, bool, usize);

/// Parses `text` and [`check`]s it.
///
/// # Errors
///
/// The first [`Violation`], or text that is not JSON.
pub fn check_str(text: &str) -> Result<Summary, Violation> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| violation(None, format!("not JSON: {e}")))?;
    check(&value)
}

/// Microseconds (a trace's `ts` and `dur`) to whole nanoseconds, so comparisons are exact for
/// our three decimals.
pub(crate) fn nanos(value: f64) -> i64 {
    (value * 1000.0).round() as i64
}

/// Checks a parsed trace (object form with `traceEvents`, or a bare array):
/// - every event has a `ph`, and every timed event numeric `ts`, `pid` and `tid`;
/// - per thread, `X` slices sorted by start nest (no partial overlap), with `dur >= 0`;
/// - per thread, `B`/`E` balance;
/// - async `b`/`e`: each id is opened once and closed once, not before it opens;
/// - flows: per id one `s`, then `t` steps, then one `f`, in time order, each inside an `X`
///   slice of its thread;
/// - every thread with events is named by a `thread_name` metadata event.
///
/// # Errors
///
/// The first [`Violation`] found.
pub fn check(trace: &Value) -> Result<Summary, Violation> {
    let events = match trace {
        Value::Array(events) => events,
        Value::Object(object) => object
            .get("traceEvents")
            .and_then(Value::as_array)
            .ok_or_else(|| violation(None, "no traceEvents array"))?,
        _ => {
            return Err(violation(
                None,
                "not a trace: expected an object or an array",
            ));
        }
    };
    let mut checker = Checker::default();
    for event in events {
        checker.feed(event)?;
    }
    checker.finish()
}

/// The checks of [`check`], one event at a time, for traces too large to hold: feed every
/// event in file order, then [`finish`](Self::finish). Memory: a few words per slice and
/// begin/end, not the events themselves.
#[derive(Debug)]
pub struct Checker {
    summary: Summary,
    named: HashSet<Thread>,
    /// (ts, dur, event index) per thread.
    slices: BTreeMap<Thread, Vec<(i64, i64, usize)>>,
    /// (ts, is_begin, event index) per thread, and per (category, id).
    begin_end: HashMap<Thread, Vec<Mark>>,
    asyncs: HashMap<(String, String), Vec<Mark>>,
    /// Flow steps per (category, id): (ts, phase, event index, thread).
    flows: HashMap<(String, String), Vec<FlowStep>>,
    last_ts: HashMap<Thread, i64>,
    /// Last `ts` per counter track `(pid, name, argument)`.
    counter_tracks: HashMap<(i64, String, String), i64>,
}

impl Default for Checker {
    fn default() -> Self {
        Checker {
            summary: Summary {
                sorted_per_thread: true,
                ..Summary::default()
            },
            named: HashSet::new(),
            slices: BTreeMap::new(),
            begin_end: HashMap::new(),
            asyncs: HashMap::new(),
            flows: HashMap::new(),
            last_ts: HashMap::new(),
            counter_tracks: HashMap::new(),
        }
    }
}

impl Checker {
    /// Checks one event (they come in file order); the first violation ends the check.
    ///
    /// # Errors
    ///
    /// A [`Violation`] this event alone shows.
    pub fn feed(&mut self, event: &Value) -> Result<(), Violation> {
        let index = self.summary.events;
        self.summary.events += 1;
        let at = Some(index);
        let object = event
            .as_object()
            .ok_or_else(|| violation(at, "not an object"))?;
        let ph = object
            .get("ph")
            .and_then(Value::as_str)
            .ok_or_else(|| violation(at, "missing ph"))?;
        let pid = object.get("pid").and_then(Value::as_i64).unwrap_or(0);
        if ph == "M" {
            if object.get("name").and_then(Value::as_str) == Some("thread_name") {
                let tid = object
                    .get("tid")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| violation(at, "thread_name without a numeric tid"))?;
                self.named.insert((pid, tid));
            }
            return Ok(());
        }
        let tid = object
            .get("tid")
            .and_then(Value::as_i64)
            .ok_or_else(|| violation(at, "missing numeric tid"))?;
        let ts = object
            .get("ts")
            .and_then(Value::as_f64)
            .map(nanos)
            .ok_or_else(|| violation(at, "missing numeric ts"))?;
        let thread = (pid, tid);
        if let Some(&last) = self.last_ts.get(&thread)
            && ts < last
        {
            self.summary.sorted_per_thread = false;
        }
        self.last_ts.insert(thread, ts);
        match ph {
            "X" => {
                let dur = object
                    .get("dur")
                    .and_then(Value::as_f64)
                    .map(nanos)
                    .ok_or_else(|| violation(at, "X without a numeric dur"))?;
                if dur < 0 {
                    return Err(violation(at, "negative dur"));
                }
                self.slices
                    .entry(thread)
                    .or_default()
                    .push((ts, dur, index));
            }
            "B" | "E" => self
                .begin_end
                .entry(thread)
                .or_default()
                .push((ts, ph == "B", index)),
            "b" | "e" => {
                let id = object
                    .get("id")
                    .or_else(|| object.get("id2"))
                    .map(Value::to_string)
                    .ok_or_else(|| violation(at, "async event without an id"))?;
                let category = object
                    .get("cat")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                self.asyncs
                    .entry((category, id))
                    .or_default()
                    .push((ts, ph == "b", index));
            }
            "s" | "t" | "f" => {
                let id = object
                    .get("id")
                    .map(Value::to_string)
                    .ok_or_else(|| violation(at, "flow event without an id"))?;
                let category = object
                    .get("cat")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                self.flows.entry((category, id)).or_default().push((
                    ts,
                    ph.as_bytes()[0],
                    index,
                    thread,
                ));
            }
            "i" | "I" | "n" => self.summary.instants += 1,
            "C" => self.counter(object, pid, ts, index)?,
            _ => {}
        }
        Ok(())
    }

    /// A counter sample: numeric arguments only, and each of its tracks later than its
    /// previous sample in the file.
    fn counter(
        &mut self,
        object: &serde_json::Map<String, Value>,
        pid: i64,
        ts: i64,
        index: usize,
    ) -> Result<(), Violation> {
        let at = Some(index);
        let name = object
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| violation(at, "C without a name"))?;
        let args = object
            .get("args")
            .and_then(Value::as_object)
            .filter(|args| !args.is_empty())
            .ok_or_else(|| violation(at, "C without arguments"))?;
        for (arg, value) in args {
            if !value.is_number() {
                return Err(violation(
                    at,
                    format!("counter {name:?} argument {arg:?} is not a number: {value}"),
                ));
            }
            let track = (pid, name.to_owned(), arg.clone());
            if let Some(&last) = self.counter_tracks.get(&track)
                && ts <= last
            {
                return Err(violation(
                    at,
                    format!(
                        "counter track {name:?} {arg:?} goes back in time or repeats a timestamp"
                    ),
                ));
            }
            self.counter_tracks.insert(track, ts);
        }
        self.summary.counters += 1;
        Ok(())
    }

    /// The checks that need every event: nesting, balance, flows, thread names.
    ///
    /// # Errors
    ///
    /// The first [`Violation`] found.
    pub fn finish(mut self) -> Result<Summary, Violation> {
        for (&(pid, tid), list) in &mut self.slices {
            list.sort_by_key(|&(ts, dur, _)| (ts, std::cmp::Reverse(dur)));
            let mut open: Vec<(i64, usize)> = Vec::new();
            for &(ts, dur, index) in list.iter() {
                while open.last().is_some_and(|&(end, _)| end <= ts) {
                    open.pop();
                }
                if let Some(&(end, parent)) = open.last()
                    && ts + dur > end
                {
                    return Err(violation(
                        Some(index),
                        format!(
                            "slice on pid {pid} tid {tid} overlaps slice {parent} without nesting in it"
                        ),
                    ));
                }
                open.push((ts + dur, index));
                self.summary.slices += 1;
            }
        }

        let reach: HashMap<Thread, Reach> = self
            .slices
            .iter()
            .map(|(&thread, list)| (thread, Reach::new(list)))
            .collect();
        for ((category, id), list) in &mut self.flows {
            list.sort_by_key(|&(ts, phase, index, _)| (ts, phase != b's', phase == b'f', index));
            let starts = list.iter().filter(|f| f.1 == b's').count();
            let finishes = list.iter().filter(|f| f.1 == b'f').count();
            if starts != 1 || finishes != 1 || list[0].1 != b's' || list[list.len() - 1].1 != b'f' {
                return Err(violation(
                    Some(list[0].2),
                    format!(
                        "flow {id} (cat {category:?}) must be one s, then t steps, then one f in time order"
                    ),
                ));
            }
            for &(ts, _, index, thread) in list.iter() {
                if !reach.get(&thread).is_some_and(|r| r.covers(ts)) {
                    return Err(violation(
                        Some(index),
                        format!("flow {id} step is not inside a slice on its thread"),
                    ));
                }
            }
            self.summary.flows += 1;
        }

        for (&(pid, tid), list) in &mut self.begin_end {
            list.sort_by_key(|&(ts, _, index)| (ts, index));
            let mut depth: usize = 0;
            for &(_, begin, index) in list.iter() {
                if begin {
                    depth += 1;
                } else if depth == 0 {
                    return Err(violation(
                        Some(index),
                        format!("E without a B on pid {pid} tid {tid}"),
                    ));
                } else {
                    depth -= 1;
                    self.summary.begin_end_pairs += 1;
                }
            }
            if depth != 0 {
                return Err(violation(
                    None,
                    format!("{depth} B event(s) without an E on pid {pid} tid {tid}"),
                ));
            }
        }

        for ((category, id), list) in &mut self.asyncs {
            list.sort_by_key(|&(ts, begin, index)| (ts, !begin, index));
            let begins = list.iter().filter(|e| e.1).count();
            let ends = list.len() - begins;
            if begins != 1 || ends != 1 {
                return Err(violation(
                    Some(list[0].2),
                    format!(
                        "async id {id} (cat {category:?}) has {begins} b and {ends} e events; expected one of each"
                    ),
                ));
            }
            if !list[0].1 {
                return Err(violation(
                    Some(list[0].2),
                    format!("async id {id} ends before it begins"),
                ));
            }
            self.summary.async_pairs += 1;
        }

        for thread in self.last_ts.keys() {
            if !self.named.contains(thread) {
                return Err(violation(
                    None,
                    format!(
                        "pid {} tid {} has events but no thread_name metadata",
                        thread.0, thread.1
                    ),
                ));
            }
        }
        self.summary.threads = self.last_ts.len();
        self.summary.counter_tracks = self.counter_tracks.len();
        Ok(self.summary)
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
