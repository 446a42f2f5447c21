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
    /// Set for the clock of a process that is gone (read back from its crash file): raw
    /// readings convert at this rate instead of through `clock`'s calibration.
    nanos_per_tick: Option<f64>,
}

impl Timebase {
    pub(crate) fn new(clock: quanta::Clock) -> Self {
        let anchor_wall = Utc::now();
        let anchor_raw = clock.raw();
        Timebase {
            clock,
            anchor_raw,
            anchor_wall,
            nanos_per_tick: None,
        }
    }

    /// The timebase of another process, from what its crash file says of its clock.
    #[cfg(feature = "crash")]
    pub(crate) fn recovered(
        anchor_raw: u64,
        anchor_wall: DateTime<Utc>,
        nanos_per_tick: f64,
    ) -> Self {
        Timebase {
            clock: quanta::Clock::new(),
            anchor_raw,
            anchor_wall,
            nanos_per_tick: Some(nanos_per_tick),
        }
    }

    /// Nanoseconds per raw tick, for a reader in another process.
    #[cfg(feature = "crash")]
    pub(crate) fn nanos_per_tick(&self) -> f64 {
        const SPAN: u64 = 1 << 32;
        match self.nanos_per_tick {
            Some(rate) => rate,
            None => self.clock.delta_as_nanos(0, SPAN) as f64 / SPAN as f64,
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
        if let Some(rate) = self.nanos_per_tick {
            return (to.saturating_sub(from) as f64 * rate) as u64;
        }
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
