//! The recorder's clock: raw readings on the hot path (the TSC where it is invariant), turned
//! into nanoseconds and wall-clock time against one anchor at dump time.

use chrono::{DateTime, Utc};

/// The clock and its anchor: a raw reading and the wall-clock time, taken together once when
/// the recorder is built. Timestamp zero of every dump.
#[derive(Clone)]
pub(crate) struct Timebase {
    clock: quanta::Clock,
    /// `clock` reads the TSC itself (quanta chose it: invariant TSC), so the hot path reads it
    /// inline rather than through a call and a match on the clock's kind.
    reads_tsc: bool,
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
            reads_tsc: reads_tsc(&clock),
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
            reads_tsc: false,
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
        #[cfg(target_arch = "x86_64")]
        if self.reads_tsc {
            // SAFETY: `rdtsc` exists on every x86_64 CPU; `reads_tsc` says quanta reads it too,
            // so the readings are the same as `clock.raw()`'s and its calibration applies.
            return unsafe { core::arch::x86_64::_rdtsc() };
        }
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

/// Whether `clock.raw()` returns the TSC: a TSC reading falls between two of its readings,
/// three times in a row (a monotonic clock counts nanoseconds from another origin, a mock
/// clock whatever a test set, so neither brackets it).
fn reads_tsc(clock: &quanta::Clock) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        (0..3).all(|_| {
            let before = clock.raw();
            // SAFETY: `rdtsc` exists on every x86_64 CPU.
            let tsc = unsafe { core::arch::x86_64::_rdtsc() };
            let after = clock.raw();
            before <= tsc && tsc <= after
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = clock;
        false
    }
}

/// `anchor` plus `timestamp_ns`.
pub(crate) fn wall_time(anchor: DateTime<Utc>, timestamp_ns: u64) -> DateTime<Utc> {
    anchor + chrono::Duration::nanoseconds(timestamp_ns.min(i64::MAX as u64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inline_reading_is_the_clocks_own() {
        let (mock_clock, mock) = quanta::Clock::mock();
        mock.increment(1_000);
        let mocked = Timebase::new(mock_clock);
        assert!(!mocked.reads_tsc, "a mock clock is read through quanta");
        assert_eq!(mocked.now(), 1_000);
        mock.increment(5);
        assert_eq!(mocked.now(), 1_005);

        let real = Timebase::new(quanta::Clock::new());
        let (a, b, c) = (real.clock.raw(), real.now(), real.clock.raw());
        assert!(
            a <= b && b <= c,
            "{a} {b} {c}: one clock, whichever way it is read"
        );
    }
}
