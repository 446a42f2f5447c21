//! `blackbox render`: a self-contained SVG (or an HTML page around it) of a dump's timeline.
//!
//! One lane per thread; slices drawn as bars at their nesting depth, coloured by name; bars
//! narrower than a pixel are merged with their neighbours at the same depth into one grey bar
//! (so a 10 MiB dump stays a few thousand elements); events as ticks under the bars, red for
//! errors and orange for warnings; the trigger span outlined in red, tokio task polls of
//! [`LONG_POLL_NS`] or more in orange; one lane per counter track (a step line between its
//! minimum and maximum); a time axis with units.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io;
use std::path::Path;

use serde_json::Value;
use tracing_blackbox::analyze::{self, LoadError};

use crate::output::{Threads, format_duration, format_fields, severity};
use crate::spans::{Source, SpanBuilder};
use crate::{Failure, read};

const LABEL_WIDTH: f64 = 170.0;
const ROW: f64 = 18.0;
const AXIS: f64 = 34.0;
const LANE_GAP: f64 = 10.0;
const TICKS: f64 = 8.0;
/// Height of a counter lane.
const COUNTER_LANE: f64 = 30.0;
/// A tokio task poll this long or longer is outlined (tokio's own guidance: a poll should
/// take well under a millisecond).
const LONG_POLL_NS: i64 = 10_000_000;

/// How a bar is outlined.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    None,
    LongPoll,
    Trigger,
}

struct Bar {
    name: String,
    start: i64,
    dur: i64,
    depth: usize,
    mark: Mark,
    tooltip: String,
}

#[derive(Default)]
struct Lane {
    slices: Vec<(i64, i64, String, Mark, Value)>,
    ticks: Vec<(i64, u8, String)>,
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A stable colour per name.
fn colour(name: &str) -> String {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("hsl({},55%,62%)", hash % 360)
}

/// A round step for about `target` axis ticks over `range` ns.
fn tick_step(range: i64, target: i64) -> i64 {
    let raw = (range / target.max(1)).max(1);
    let magnitude = 10i64.pow(raw.ilog10());
    [1, 2, 5, 10]
        .iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10 * magnitude)
}

pub(crate) fn render(path: &Path, output: &Path, width: u32) -> Result<(), Failure> {
    let mut threads = Threads::default();
    let mut lanes: BTreeMap<(i64, i64), Lane> = BTreeMap::new();
    let mut spans = SpanBuilder::default();
    let mut counters: BTreeMap<(String, String), Vec<(i64, f64)>> = BTreeMap::new();
    let (mut t0, mut t1) = (i64::MAX, i64::MIN);
    let info = read(path, |event| {
        threads.feed(&event);
        if event.ph == "M" {
            return;
        }
        t0 = t0.min(event.ts_ns);
        t1 = t1.max(event.ts_ns + event.dur_ns.unwrap_or(0));
        if event.ph == "C" {
            for (arg, value) in event.args.as_object().into_iter().flatten() {
                if let Some(value) = value.as_f64() {
                    counters
                        .entry((event.name.clone(), arg.clone()))
                        .or_default()
                        .push((event.ts_ns, value));
                }
            }
            return;
        }
        let long_poll = event.ph == "X"
            && event.cat == "tokio::task"
            && event.dur_ns.unwrap_or(0) >= LONG_POLL_NS;
        let lane = lanes.entry((event.pid, event.tid)).or_default();
        if matches!(event.ph.as_str(), "i" | "I") {
            let level = event.arg_str("level").unwrap_or("INFO");
            let mark = match severity(level) {
                Some(4..) => 2,
                Some(3) => 1,
                _ => 0,
            };
            let message = event.arg_str("message").unwrap_or(&event.name).to_owned();
            lane.ticks
                .push((event.ts_ns, mark, format!("{level} {message}")));
            return;
        }
        spans.feed(event, |source, span| {
            if source == Source::Slice {
                let mark = match (span.trigger, long_poll) {
                    (true, _) => Mark::Trigger,
                    (false, true) => Mark::LongPoll,
                    (false, false) => Mark::None,
                };
                lanes.entry(span.tid).or_default().slices.push((
                    span.start_ns,
                    span.dur_ns,
                    span.name,
                    mark,
                    span.fields,
                ));
            }
        });
    })?;
    if lanes.is_empty() || t0 > t1 {
        return Err(Failure::Input(LoadError::new(
            path,
            "nothing to draw: the trace has no events",
        )));
    }
    let range = (t1 - t0).max(1);
    let plot = f64::from(width.max(400)) - LABEL_WIDTH - 10.0;
    let x = |ts: i64| LABEL_WIDTH + (ts - t0) as f64 / range as f64 * plot;

    let mut body = String::new();
    let mut y = AXIS;
    // Lanes in thread-name order (`task-1`, `task-2`, …), not in the order threads appeared.
    let mut order: Vec<(i64, i64)> = lanes.keys().copied().collect();
    order.sort_by_key(|&thread| (threads.name(thread), thread));
    for thread in order {
        let Some(lane) = lanes.get_mut(&thread) else {
            continue;
        };
        lane.slices
            .sort_by_key(|&(start, dur, ..)| (start, std::cmp::Reverse(dur)));
        // Depth from nesting: a stack of open ends.
        let mut stack: Vec<i64> = Vec::new();
        let mut bars: Vec<Bar> = Vec::with_capacity(lane.slices.len());
        for (start, dur, name, mark, fields) in &lane.slices {
            while stack.last().is_some_and(|&end| end <= *start) {
                stack.pop();
            }
            let depth = stack.len();
            stack.push(start + dur);
            let mut tooltip = format!("{name} — {}", format_duration(*dur));
            if *mark == Mark::LongPoll {
                tooltip.push_str(" (long poll)");
            }
            let fields = format_fields(fields);
            if !fields.is_empty() {
                tooltip.push('\n');
                tooltip.push_str(&fields);
            }
            bars.push(Bar {
                name: name.clone(),
                start: *start,
                dur: *dur,
                depth,
                mark: *mark,
                tooltip,
            });
        }
        let depth = bars.iter().map(|b| b.depth + 1).max().unwrap_or(1);
        let height = depth as f64 * ROW + TICKS;
        let _ = writeln!(
            body,
            "<g class=\"lane\" data-thread=\"{}\"><rect x=\"0\" y=\"{y:.1}\" width=\"{}\" height=\"{height:.1}\" fill=\"#f6f6f6\"/><text x=\"6\" y=\"{:.1}\" class=\"thread\">{}</text>",
            escape(&threads.name(thread)),
            width,
            y + 13.0,
            escape(&threads.name(thread)),
        );
        // Bars narrower than a pixel merge with their neighbours at the same depth.
        let mut merged: HashMap<usize, (f64, f64, usize)> = HashMap::new();
        let flush = |body: &mut String, depth: usize, (left, right, count): (f64, f64, usize)| {
            let top = y + depth as f64 * ROW + 1.0;
            let _ = writeln!(
                body,
                "<rect x=\"{left:.2}\" y=\"{top:.1}\" width=\"{:.2}\" height=\"{:.1}\" fill=\"#b9b9b9\"><title>{count} short slices</title></rect>",
                (right - left).max(0.6),
                ROW - 2.0
            );
        };
        for bar in &bars {
            let (left, right) = (x(bar.start), x(bar.start + bar.dur));
            if right - left < 1.0 {
                let entry = merged.entry(bar.depth).or_insert((left, right, 0));
                if left - entry.1 > 1.0 {
                    let done = *entry;
                    *entry = (left, right, 0);
                    flush(&mut body, bar.depth, done);
                }
                entry.1 = entry.1.max(right);
                entry.2 += 1;
                continue;
            }
            let top = y + bar.depth as f64 * ROW + 1.0;
            let stroke = match bar.mark {
                Mark::Trigger => " stroke=\"#d00000\" stroke-width=\"2.5\"",
                Mark::LongPoll => " stroke=\"#e08000\" stroke-width=\"2\"",
                Mark::None => "",
            };
            let _ = write!(
                body,
                "<g><rect x=\"{left:.2}\" y=\"{top:.1}\" width=\"{:.2}\" height=\"{:.1}\" rx=\"2\" fill=\"{}\"{stroke}/><title>{}</title>",
                right - left,
                ROW - 2.0,
                colour(&bar.name),
                escape(&bar.tooltip)
            );
            let room = ((right - left - 6.0) / 6.5).floor() as usize;
            if room >= 3 {
                let label: String = if bar.name.chars().count() > room {
                    bar.name
                        .chars()
                        .take(room.saturating_sub(1))
                        .chain(['…'])
                        .collect()
                } else {
                    bar.name.clone()
                };
                let _ = write!(
                    body,
                    "<text x=\"{:.2}\" y=\"{:.1}\" class=\"label\">{}</text>",
                    left + 3.0,
                    top + 12.0,
                    escape(&label)
                );
            }
            let _ = writeln!(body, "</g>");
        }
        for (depth, pending) in merged {
            flush(&mut body, depth, pending);
        }
        let tick_top = y + depth as f64 * ROW;
        lane.ticks.sort_by_key(|t| t.0);
        let mut last_x = f64::MIN;
        for (ts, severity, text) in &lane.ticks {
            let at = x(*ts);
            // One tick per pixel is all the eye can tell apart; errors always show.
            if at - last_x < 1.0 && *severity == 0 {
                continue;
            }
            last_x = at;
            let colour = ["#666666", "#e08000", "#d00000"][usize::from(*severity)];
            let _ = writeln!(
                body,
                "<line x1=\"{at:.2}\" x2=\"{at:.2}\" y1=\"{tick_top:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-width=\"1.2\"><title>{}</title></line>",
                tick_top + TICKS - 1.0,
                escape(text)
            );
        }
        let _ = writeln!(body, "</g>");
        y += height + LANE_GAP;
    }

    for ((name, arg), samples) in &counters {
        y = draw_counter(
            &mut body,
            &format!("{name} {arg}"),
            samples,
            y,
            width,
            &x,
            t1,
        );
    }

    // The time axis: round steps, labelled with units.
    let mut axis = String::new();
    let step = tick_step(range, 10);
    let mut tick = 0i64;
    while tick <= range {
        let at = x(t0 + tick);
        let _ = writeln!(
            axis,
            "<line x1=\"{at:.2}\" x2=\"{at:.2}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#dddddd\"/><text x=\"{at:.2}\" y=\"18\" class=\"axis\">{}</text>",
            AXIS - 8.0,
            y,
            escape(&format!("+{}", format_duration(tick)))
        );
        tick += step;
    }
    let height = y + 4.0;
    let title = format!(
        "{} — {} — {}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        info.reason().unwrap_or("trace"),
        format_duration(range)
    );
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height:.0}\" viewBox=\"0 0 {width} {height:.0}\" font-family=\"sans-serif\" font-size=\"11\">\n<title>{}</title>\n<style>.thread{{font-weight:bold;fill:#333}} .label{{fill:#111}} .axis{{fill:#555;text-anchor:middle}}</style>\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{axis}{body}</svg>\n",
        escape(&title)
    );
    let document = if output
        .extension()
        .is_some_and(|e| e == "html" || e == "htm")
    {
        format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n<body style=\"margin:0\">\n{svg}</body></html>\n",
            escape(&title)
        )
    } else {
        svg
    };
    write_atomically(output, document.as_bytes())
}

/// One counter track's lane: a step line from each sample to the next (the last one to the
/// trace's end), scaled between the track's minimum and maximum, which the label shows.
fn draw_counter(
    body: &mut String,
    label: &str,
    samples: &[(i64, f64)],
    y: f64,
    width: u32,
    x: &impl Fn(i64) -> f64,
    end: i64,
) -> f64 {
    let (min, max) = samples
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &(_, v)| {
            (lo.min(v), hi.max(v))
        });
    let span = (max - min).max(f64::EPSILON);
    let level = |v: f64| y + COUNTER_LANE - 3.0 - (v - min) / span * (COUNTER_LANE - 8.0);
    let mut points = String::new();
    for (i, &(ts, value)) in samples.iter().enumerate() {
        let next = samples.get(i + 1).map_or(end, |&(next, _)| next);
        let _ = write!(
            points,
            "{:.2},{:.1} {:.2},{:.1} ",
            x(ts),
            level(value),
            x(next),
            level(value)
        );
    }
    let number = |v: f64| {
        if v.fract() == 0.0 && v.abs() < 1e15 {
            format!("{v:.0}")
        } else {
            format!("{v:.3}")
        }
    };
    let _ = writeln!(
        body,
        "<g class=\"counter\" data-counter=\"{}\"><rect x=\"0\" y=\"{y:.1}\" width=\"{width}\" height=\"{COUNTER_LANE:.1}\" fill=\"#f3f7fb\"/><text x=\"6\" y=\"{:.1}\" class=\"thread\">{}</text><text x=\"6\" y=\"{:.1}\" class=\"axis\" style=\"text-anchor:start\">{} … {}</text><polyline fill=\"none\" stroke=\"#2060c0\" stroke-width=\"1.2\" points=\"{}\"><title>{}: {} samples</title></polyline></g>",
        escape(label),
        y + 12.0,
        escape(label),
        y + 25.0,
        number(min),
        number(max),
        points.trim_end(),
        escape(label),
        samples.len()
    );
    y + COUNTER_LANE + LANE_GAP
}

fn write_atomically(output: &Path, bytes: &[u8]) -> Result<(), Failure> {
    analyze::write_atomically(output, |w| w.write_all(bytes))
        .map(drop)
        .map_err(|err| Failure::Output(io::Error::new(err.io_error().kind(), err.to_string())))
}
