//! The runtime view's own records in the output (`record/runtime.rs`): a worker's park and
//! unpark become `parked` and `busy` slices on its track (the polls it ran nest in `busy`), and
//! the sampler's counter records become `C` events, one counter track per name and argument.

use std::io::{self, Write};

use tracing_core::Metadata;

use super::json::{json_str, json_value, micros};
use super::timeline::{Out, OutKind, Repairs, Timeline};
use crate::dump::reader::{Fields, ValueRef};
use crate::record::RUNTIME_TARGET;

/// Ids of the busy and parked slices: `RUNTIME_SLICE_BIT | thread << 1 | parked`, apart from
/// span ids (below 2⁶¹), wake arrows (bit 62) and orphans (bit 63).
const RUNTIME_SLICE_BIT: u64 = 1 << 61;

/// Category of the runtime view's slices and counters.
const RUNTIME_CATEGORY: &str = "tokio::runtime";

/// Whether `metadata` is one of the runtime view's records.
pub(super) fn is_runtime_record(metadata: &Metadata<'_>) -> bool {
    metadata.target() == RUNTIME_TARGET
}

fn slice_id(thread: u32, parked: bool) -> u64 {
    RUNTIME_SLICE_BIT | u64::from(thread) << 1 | u64::from(parked)
}

/// Whether a slice id is a busy or parked slice; `Some(parked)`.
pub(super) fn runtime_slice(id: u64) -> Option<bool> {
    (id & RUNTIME_SLICE_BIT != 0 && id >> 62 == 0).then_some(id & 1 == 1)
}

/// Puts a runtime record on its thread's timeline; `false` if it is not one.
pub(super) fn add(
    timeline: &mut Timeline,
    repairs: &mut Repairs,
    metadata: &Metadata<'_>,
    thread: u32,
    ts: u64,
    location: u64,
) -> bool {
    if !is_runtime_record(metadata) {
        return false;
    }
    let (busy, parked) = (slice_id(thread, false), slice_id(thread, true));
    match metadata.name() {
        // Busy until now: since its unpark, or since before the window when the thread has
        // records before this one.
        "park" => {
            if timeline.is_open(busy) || timeline.first_ts() < ts {
                timeline.exit(busy, ts, repairs);
            }
            timeline.enter(parked, ts, 0);
        }
        "unpark" => {
            if timeline.is_open(parked) {
                timeline.exit(parked, ts, repairs);
            }
            timeline.enter(busy, ts, 0);
        }
        _ => timeline.out.push(Out {
            ts,
            value: 0,
            id: location,
            kind: OutKind::Counter,
            flags: 0,
            note: 0,
        }),
    }
    true
}

/// Writes a busy or parked slice.
pub(super) fn write_slice(
    w: &mut impl Write,
    parked: bool,
    (pid, tid): (u32, u64),
    out: &Out,
) -> io::Result<()> {
    let name = if parked { "parked" } else { "busy" };
    write!(
        w,
        "{{\"ph\":\"X\",\"name\":\"{name}\",\"cat\":\"{RUNTIME_CATEGORY}\",\"pid\":{pid},\"tid\":{tid},\"ts\":"
    )?;
    micros(w, out.ts)?;
    w.write_all(b",\"dur\":")?;
    micros(w, out.value)?;
    w.write_all(b",\"args\":{")?;
    let flags = [
        (out.flags & super::timeline::INCOMPLETE != 0, "incomplete"),
        (
            out.flags & super::timeline::START_EVICTED != 0,
            "start_evicted",
        ),
    ];
    let mut first = true;
    for (_, flag) in flags.iter().filter(|(on, _)| *on) {
        if !first {
            w.write_all(b",")?;
        }
        first = false;
        write!(w, "\"{flag}\":true")?;
    }
    w.write_all(b"}}")
}

/// Writes a counter sample: its numeric fields as the `C` event's arguments. A worker's
/// sample is named after its worker (`tokio worker 0`), which is not an argument.
pub(super) fn write_counter(
    w: &mut impl Write,
    metadata: &Metadata<'_>,
    fields: &Fields<'_>,
    (pid, tid): (u32, u64),
    ts: u64,
) -> io::Result<()> {
    w.write_all(b"{\"ph\":\"C\",\"name\":")?;
    let worker = fields.iter().find_map(|(name, value)| match (name, value) {
        ("worker", ValueRef::U64(n)) => Some(n),
        _ => None,
    });
    match worker {
        Some(n) => json_str(w, &format!("{} {n}", metadata.name()))?,
        None => json_str(w, metadata.name())?,
    }
    write!(
        w,
        ",\"cat\":\"{RUNTIME_CATEGORY}\",\"pid\":{pid},\"tid\":{tid},\"ts\":"
    )?;
    micros(w, ts)?;
    w.write_all(b",\"args\":{")?;
    let mut first = true;
    for (name, value) in fields.iter() {
        let numeric = matches!(
            value,
            ValueRef::U64(_)
                | ValueRef::I64(_)
                | ValueRef::F64(_)
                | ValueRef::U128(_)
                | ValueRef::I128(_)
        );
        if name == "worker" || !numeric {
            continue;
        }
        if !first {
            w.write_all(b",")?;
        }
        first = false;
        json_str(w, name)?;
        w.write_all(b":")?;
        json_value(w, &value)?;
    }
    w.write_all(b"}}")
}
