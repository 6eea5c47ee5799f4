//! Time as the core sees it: nanosecond instants on one monotonic clock, passed in by callers.
//!
//! The core never reads a clock. Frontends implement [`Clock`] over the OS (or a hardware
//! timer) and hand `now` to every entry point; tests use [`ManualClock`].

use core::cell::Cell;
use core::ops::{Add, AddAssign, Sub};

/// A point on the observer's clock, in nanoseconds since the clock's epoch (boot, usually).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Instant(u64);

/// A span of time in nanoseconds. Arithmetic saturates rather than wrapping or panicking.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Duration(u64);

impl Instant {
    /// The clock's epoch.
    pub const ZERO: Instant = Instant(0);
    /// The latest representable instant; used as "never".
    pub const MAX: Instant = Instant(u64::MAX);

    /// An instant `nanos` after the epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Instant(nanos)
    }
    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub const fn saturating_since(self, earlier: Instant) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
    /// `self + d`, or `None` on overflow.
    pub const fn checked_add(self, d: Duration) -> Option<Instant> {
        match self.0.checked_add(d.0) {
            Some(n) => Some(Instant(n)),
            None => None,
        }
    }
    /// `self + d`, clamped at [`Instant::MAX`].
    pub const fn saturating_add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d.0))
    }
}

impl Duration {
    /// No time at all.
    pub const ZERO: Duration = Duration(0);
    /// The longest representable span.
    pub const MAX: Duration = Duration(u64::MAX);

    /// From nanoseconds.
    pub const fn from_nanos(n: u64) -> Self {
        Duration(n)
    }
    /// From microseconds (saturating).
    pub const fn from_micros(us: u64) -> Self {
        Duration(us.saturating_mul(1_000))
    }
    /// From milliseconds (saturating).
    pub const fn from_millis(ms: u64) -> Self {
        Duration(ms.saturating_mul(1_000_000))
    }
    /// From seconds (saturating).
    pub const fn from_secs(s: u64) -> Self {
        Duration(s.saturating_mul(1_000_000_000))
    }
    /// Whole nanoseconds.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// Whole microseconds (truncated).
    pub const fn as_micros(self) -> u64 {
        self.0 / 1_000
    }
    /// Whole milliseconds (truncated).
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }
    /// Whole seconds (truncated).
    pub const fn as_secs(self) -> u64 {
        self.0 / 1_000_000_000
    }
    /// `self * k`, clamped at [`Duration::MAX`].
    pub const fn saturating_mul(self, k: u64) -> Duration {
        Duration(self.0.saturating_mul(k))
    }
    /// `self - other`, zero if `other` is longer.
    pub const fn saturating_sub(self, other: Duration) -> Duration {
        Duration(self.0.saturating_sub(other.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    /// Saturating: adding to [`Instant::MAX`] stays there ("never" stays "never").
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturating: an earlier minus a later instant is zero.
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_since(earlier)
    }
}

impl Add for Duration {
    type Output = Duration;
    fn add(self, o: Duration) -> Duration {
        Duration(self.0.saturating_add(o.0))
    }
}

impl core::fmt::Display for Duration {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let ns = self.0;
        if ns >= 1_000_000_000 {
            write!(f, "{}.{:03}s", ns / 1_000_000_000, (ns / 1_000_000) % 1000)
        } else if ns >= 1_000_000 {
            write!(f, "{}.{:03}ms", ns / 1_000_000, (ns / 1_000) % 1000)
        } else if ns >= 1_000 {
            write!(f, "{}.{:03}us", ns / 1_000, ns % 1000)
        } else {
            write!(f, "{}ns", ns)
        }
    }
}

/// Which OS clock a frontend reads. Both are monotonic; `Boottime` keeps counting through
/// system suspend, so an agent frozen by suspend is seen as silent for the suspended time.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ClockSource {
    /// CLOCK_MONOTONIC: stops during suspend.
    Monotonic,
    /// CLOCK_BOOTTIME: includes time spent suspended.
    Boottime,
}

/// Why a clock could not be read.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ClockError {
    /// The clock source does not exist on this system.
    Unsupported,
    /// The OS returned an error code.
    Os(i32),
}

impl core::fmt::Display for ClockError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ClockError::Unsupported => f.write_str("clock source not supported"),
            ClockError::Os(e) => write!(f, "clock read failed (errno {})", e),
        }
    }
}

/// A monotonic time source. Implementations must never go backwards.
pub trait Clock {
    /// Which clock this is.
    fn source(&self) -> ClockSource;
    /// The current instant.
    fn now(&self) -> Result<Instant, ClockError>;
}

/// A clock that moves only when told to: the deterministic seam for tests and simulations.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: Cell<u64>,
}

impl ManualClock {
    /// A clock reading `start`.
    pub const fn new(start: Instant) -> Self {
        ManualClock {
            now: Cell::new(start.0),
        }
    }
    /// Move forward by `d` (saturating).
    pub fn advance(&self, d: Duration) {
        self.now.set(self.now.get().saturating_add(d.0));
    }
    /// Jump to `t`. Panics if `t` is earlier than the current reading (clocks are monotonic).
    pub fn set(&self, t: Instant) {
        assert!(t.0 >= self.now.get(), "ManualClock must not go backwards");
        self.now.set(t.0);
    }
    /// The current reading, infallibly.
    pub fn get(&self) -> Instant {
        Instant(self.now.get())
    }
}

impl Clock for ManualClock {
    fn source(&self) -> ClockSource {
        ClockSource::Monotonic
    }
    fn now(&self) -> Result<Instant, ClockError> {
        Ok(self.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
        assert_eq!(
            Instant::from_nanos(5) - Instant::from_nanos(9),
            Duration::ZERO
        );
        assert_eq!(Duration::from_secs(u64::MAX), Duration::MAX);
        assert_eq!(Duration::from_millis(1500).as_secs(), 1);
    }

    #[test]
    fn manual_clock_moves_only_forward() {
        let c = ManualClock::new(Instant::from_nanos(10));
        c.advance(Duration::from_nanos(5));
        assert_eq!(c.now(), Ok(Instant::from_nanos(15)));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            c.set(Instant::from_nanos(1))
        }));
        assert!(r.is_err());
        assert_eq!(c.get(), Instant::from_nanos(15));
    }

    extern crate std;
}
