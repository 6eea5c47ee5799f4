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
    let ts = clock_gettime(ClockId::Realtime);
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;
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
