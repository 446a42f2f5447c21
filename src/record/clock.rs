//! The recorder's clock: raw readings on the hot path (the TSC where it is invariant), turned
//! into nanoseconds and wall-clock time against one anchor at dump time.

use chrono::{DateTime, Utc};

/// The clock and its anchor: a raw reading and the wall-clock time, taken together once when
/// the recorder is built. Timestamp zero of every dump.
#[derive(Clone)]
pub(crate) struct Timebase {
    pub(crate) clock: quanta::Clock,
    pub(crate) anchor_raw: u64,
    pub(crate) anchor_wall: DateTime<Utc>,
}

impl Timebase {
    pub(crate) fn new(clock: quanta::Clock) -> Self {
        let anchor_wall = Utc::now();
        let anchor_raw = clock.raw();
        Timebase {
            clock,
            anchor_raw,
            anchor_wall,
        }
    }

    /// A raw reading (cheap: no conversion).
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.clock.raw()
    }

    /// Nanoseconds between two raw readings.
    #[inline]
    pub(crate) fn nanos_between(&self, from: u64, to: u64) -> u64 {
        self.clock.delta_as_nanos(from, to)
    }

    /// Nanoseconds from the anchor to a raw reading.
    pub(crate) fn nanos_since_anchor(&self, raw: u64) -> u64 {
        self.nanos_between(self.anchor_raw, raw)
    }

    /// Wall-clock time of a timestamp (nanoseconds since the anchor).
    pub(crate) fn wall_time(&self, timestamp_ns: u64) -> DateTime<Utc> {
        wall_time(self.anchor_wall, timestamp_ns)
    }
}

/// `anchor` plus `timestamp_ns`.
pub(crate) fn wall_time(anchor: DateTime<Utc>, timestamp_ns: u64) -> DateTime<Utc> {
    anchor + chrono::Duration::nanoseconds(timestamp_ns.min(i64::MAX as u64) as i64)
}
