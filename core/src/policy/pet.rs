//! The hardware watchdog as a device trait, and when to pet it.
//!
//! [`Watchdog`] is what a frontend implements over its platform (the Linux watchdog API on
//! the embedded frontend, a fake in tests). [`PetSchedule`] decides when the next keepalive
//! is due: at a fixed interval, never longer than half the timeout the driver achieved, so
//! one late wake-up of the loop does not reset the board.

use crate::time::{Duration, Instant};

/// A hardware watchdog that has been started (opening it usually starts it).
pub trait Watchdog {
    /// Device error.
    type Error;
    /// Restart the countdown.
    fn keepalive(&mut self) -> Result<(), Self::Error>;
    /// The timeout the device runs with (what the driver achieved, not what was asked).
    fn timeout(&self) -> Duration;
    /// Disarm on close (the "magic close"); drivers built `nowayout` ignore it.
    fn disarm(&mut self) -> Result<(), Self::Error>;
}

/// When to pet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PetSchedule {
    interval: Duration,
    next: Instant,
}

impl PetSchedule {
    /// Pet every `wanted`, clamped to at most half of `timeout` (and at least 10 ms); the
    /// first pet is due at `now`.
    pub fn new(wanted: Duration, timeout: Duration, now: Instant) -> Self {
        let half = Duration::from_nanos(timeout.as_nanos() / 2);
        let interval = wanted.min(half).max(Duration::from_millis(10));
        PetSchedule {
            interval,
            next: now,
        }
    }

    /// The interval in use.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// When the next pet is due.
    pub fn next_due(&self) -> Instant {
        self.next
    }

    /// Whether a pet is due at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// A pet happened at `now`.
    pub fn petted(&mut self, now: Instant) {
        self.next = now + self.interval;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_is_clamped_to_half_the_timeout() {
        let t0 = Instant::from_nanos(1_000);
        let s = PetSchedule::new(Duration::from_secs(5), Duration::from_secs(3), t0);
        assert_eq!(s.interval(), Duration::from_millis(1500));
        let s = PetSchedule::new(Duration::from_millis(500), Duration::from_secs(3), t0);
        assert_eq!(s.interval(), Duration::from_millis(500));
        let s = PetSchedule::new(Duration::from_millis(1), Duration::from_millis(4), t0);
        assert_eq!(s.interval(), Duration::from_millis(10));
    }

    #[test]
    fn first_pet_is_due_at_once_then_every_interval() {
        let t0 = Instant::from_nanos(1_000);
        let mut s = PetSchedule::new(Duration::from_secs(1), Duration::from_secs(10), t0);
        assert!(s.is_due(t0));
        s.petted(t0);
        assert!(!s.is_due(t0 + Duration::from_millis(999)));
        assert!(s.is_due(t0 + Duration::from_secs(1)));
        // A late wake-up pets once and schedules from the actual pet, not a catch-up burst.
        let late = t0 + Duration::from_millis(2_700);
        s.petted(late);
        assert_eq!(s.next_due(), late + Duration::from_secs(1));
    }
}
