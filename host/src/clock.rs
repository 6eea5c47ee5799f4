//! The OS clock behind the core's [`Clock`] seam.

use rustix::time::{clock_gettime, ClockId};
use varta_core::time::{Clock, ClockError, ClockSource, Instant};

/// CLOCK_MONOTONIC or CLOCK_BOOTTIME, read through vDSO.
#[derive(Copy, Clone, Debug)]
pub struct OsClock {
    source: ClockSource,
}

impl OsClock {
    /// A clock over `source`.
    pub fn new(source: ClockSource) -> Self {
        OsClock { source }
    }

    /// The rustix clock id for timers (timerfd) that must agree with this clock.
    pub fn timerfd_clock(&self) -> rustix::time::TimerfdClockId {
        match self.source {
            ClockSource::Monotonic => rustix::time::TimerfdClockId::Monotonic,
            ClockSource::Boottime => rustix::time::TimerfdClockId::Boottime,
        }
    }

    /// Current reading; the OS clocks cannot fail once the source exists.
    pub fn now_instant(&self) -> Instant {
        let id = match self.source {
            ClockSource::Monotonic => ClockId::Monotonic,
            ClockSource::Boottime => ClockId::Boottime,
        };
        let ts = clock_gettime(id);
        Instant::from_nanos(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
    }
}

impl Clock for OsClock {
    fn source(&self) -> ClockSource {
        self.source
    }
    fn now(&self) -> Result<Instant, ClockError> {
        Ok(self.now_instant())
    }
}

/// Wall-clock milliseconds since the Unix epoch (for audit and log records only).
pub fn wall_ms() -> u64 {
    wall_ns() / 1_000_000
}

/// Wall-clock nanoseconds since the Unix epoch (CLOCK_REALTIME, the clock of the kernel's
/// socket receive timestamps).
pub fn wall_ns() -> u64 {
    let ts = clock_gettime(ClockId::Realtime);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Place a receive timestamp `stamp_ns` (wall clock) on the observer's clock, given both
/// clocks read together (`now`, `wall_now_ns`): as long ago as the wall clock says, but
/// never before `floor` (the start of the read before, which left the queue empty) nor
/// after `now`, so a step of the wall clock between arrival and read cannot move a beat
/// outside the interval in which it must have arrived.
pub fn arrival(now: Instant, wall_now_ns: u64, stamp_ns: u64, floor: Instant) -> Instant {
    let ago = wall_now_ns.saturating_sub(stamp_ns);
    let at = Instant::from_nanos(now.as_nanos().saturating_sub(ago));
    at.max(floor).min(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrival_is_as_long_ago_as_the_stamp_says_within_the_read_interval() {
        let at = Instant::from_nanos;
        let (floor, now, wall) = (at(1_000_000), at(5_000_000), 1_700_000_000_000_000_000);
        // Queued 3 ms before the read.
        assert_eq!(arrival(now, wall, wall - 3_000_000, floor), at(2_000_000));
        // The wall clock stepped forward meanwhile: never before the previous read.
        assert_eq!(arrival(now, wall, wall - 60_000_000_000, floor), floor);
        // Stepped back: never in the future.
        assert_eq!(arrival(now, wall, wall + 1_000_000, floor), now);
    }
    #[test]
    fn monotonic_and_boottime_advance() {
        for s in [ClockSource::Monotonic, ClockSource::Boottime] {
            let c = OsClock::new(s);
            let a = c.now().unwrap();
            let b = c.now().unwrap();
            assert!(b >= a);
            assert!(a.as_nanos() > 0);
        }
        assert!(wall_ms() > 1_600_000_000_000);
    }
}
