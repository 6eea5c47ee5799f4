//! The status LED: one blink pattern per health state, generated from `now` so a frozen
//! observer freezes the LED (a steady light or dark LED means the observer itself is stuck).
//!
//! [`LedDriver`] drives any `embedded_hal::digital::OutputPin`, writes the pin only on an
//! edge, and tells the caller when the next edge is due so it can arm one timer for it.

use crate::time::{Duration, Instant};
use embedded_hal::digital::OutputPin;

/// What the LED shows.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LedState {
    /// Everything healthy: a heartbeat double blink once a second.
    Healthy,
    /// Some agent stalled or critical, recovery at work: slow blink.
    Degraded,
    /// The watchdog gate is closed; a reset is coming: fast flicker.
    GateClosing,
    /// The boot-loop guard tripped: long on, short off.
    BootLoopGuard,
}

/// One step of a pattern: the level and how long it lasts.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// LED lit.
    pub on: bool,
    /// Duration in milliseconds.
    pub ms: u32,
}

const fn step(on: bool, ms: u32) -> Step {
    Step { on, ms }
}

const HEARTBEAT: [Step; 4] = [
    step(true, 80),
    step(false, 120),
    step(true, 80),
    step(false, 720),
];
const SLOW: [Step; 2] = [step(true, 1000), step(false, 1000)];
const FLICKER: [Step; 2] = [step(true, 50), step(false, 50)];
const LONG_ON: [Step; 2] = [step(true, 1800), step(false, 200)];

impl LedState {
    /// The pattern, one period, starting lit.
    pub const fn pattern(self) -> &'static [Step] {
        match self {
            LedState::Healthy => &HEARTBEAT,
            LedState::Degraded => &SLOW,
            LedState::GateClosing => &FLICKER,
            LedState::BootLoopGuard => &LONG_ON,
        }
    }

    /// The period of the pattern.
    pub fn period(self) -> Duration {
        let ms: u32 = self.pattern().iter().map(|s| s.ms).sum();
        Duration::from_millis(ms as u64)
    }
}

/// The level of `state`'s pattern at `now` for a pattern started at `start`, and the
/// instant of the next edge.
pub fn level_at(state: LedState, start: Instant, now: Instant) -> (bool, Instant) {
    let steps = state.pattern();
    let period = state.period().as_nanos();
    let elapsed = now.saturating_since(start).as_nanos();
    let into = elapsed % period;
    let period_start = now.as_nanos() - into;
    let mut edge = 0u64;
    for s in steps {
        edge += Duration::from_millis(s.ms as u64).as_nanos();
        if into < edge {
            return (s.on, Instant::from_nanos(period_start + edge));
        }
    }
    // Unreachable: `into < period` = the last edge.
    (steps[0].on, Instant::from_nanos(period_start + period))
}

/// Drives an `OutputPin` with the pattern of the current [`LedState`].
#[derive(Debug)]
pub struct LedDriver<P> {
    pin: P,
    active_low: bool,
    state: LedState,
    start: Instant,
    lit: Option<bool>,
}

impl<P: OutputPin> LedDriver<P> {
    /// A driver starting in `Healthy` at `now`. `active_low`: the LED lights when the pin
    /// is driven low.
    pub fn new(pin: P, active_low: bool, now: Instant) -> Self {
        LedDriver {
            pin,
            active_low,
            state: LedState::Healthy,
            start: now,
            lit: None,
        }
    }

    /// The state shown.
    pub fn state(&self) -> LedState {
        self.state
    }

    /// Switch to `state` (restarting its pattern at `now` if it differs) and update the pin.
    /// Returns when the next edge is due.
    pub fn set_state(&mut self, state: LedState, now: Instant) -> Result<Instant, P::Error> {
        if state != self.state {
            self.state = state;
            self.start = now;
        }
        self.update(now)
    }

    /// Bring the pin to the level due at `now`; writes only on a change. Returns when the
    /// next edge is due.
    pub fn update(&mut self, now: Instant) -> Result<Instant, P::Error> {
        let (on, next) = level_at(self.state, self.start, now);
        if self.lit != Some(on) {
            if on != self.active_low {
                self.pin.set_high()?;
            } else {
                self.pin.set_low()?;
            }
            self.lit = Some(on);
        }
        Ok(next)
    }

    /// Turn the LED off (orderly shutdown) and give the pin back.
    pub fn release(mut self) -> Result<P, P::Error> {
        if self.active_low {
            self.pin.set_high()?;
        } else {
            self.pin.set_low()?;
        }
        Ok(self.pin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::convert::Infallible;
    use embedded_hal::digital::ErrorType;
    use heapless::Vec;

    /// A pin that records every write.
    #[derive(Default)]
    struct FakePin {
        writes: Vec<bool, 64>,
    }

    impl ErrorType for FakePin {
        type Error = Infallible;
    }

    impl OutputPin for FakePin {
        fn set_low(&mut self) -> Result<(), Infallible> {
            self.writes.push(false).unwrap();
            Ok(())
        }
        fn set_high(&mut self) -> Result<(), Infallible> {
            self.writes.push(true).unwrap();
            Ok(())
        }
    }

    /// A pin that fails.
    struct BrokenPin;
    #[derive(Debug, PartialEq)]
    struct PinDead;
    impl embedded_hal::digital::Error for PinDead {
        fn kind(&self) -> embedded_hal::digital::ErrorKind {
            embedded_hal::digital::ErrorKind::Other
        }
    }
    impl ErrorType for BrokenPin {
        type Error = PinDead;
    }
    impl OutputPin for BrokenPin {
        fn set_low(&mut self) -> Result<(), PinDead> {
            Err(PinDead)
        }
        fn set_high(&mut self) -> Result<(), PinDead> {
            Err(PinDead)
        }
    }

    fn ms(n: u64) -> Instant {
        Instant::from_nanos(n * 1_000_000)
    }

    #[test]
    fn heartbeat_is_a_double_blink_per_second() {
        let st = ms(1000);
        assert_eq!(LedState::Healthy.period(), Duration::from_secs(1));
        assert_eq!(level_at(LedState::Healthy, st, ms(1000)), (true, ms(1080)));
        assert_eq!(level_at(LedState::Healthy, st, ms(1079)), (true, ms(1080)));
        assert_eq!(level_at(LedState::Healthy, st, ms(1080)), (false, ms(1200)));
        assert_eq!(level_at(LedState::Healthy, st, ms(1200)), (true, ms(1280)));
        assert_eq!(level_at(LedState::Healthy, st, ms(1280)), (false, ms(2000)));
        assert_eq!(level_at(LedState::Healthy, st, ms(5999)), (false, ms(6000)));
        assert_eq!(level_at(LedState::Healthy, st, ms(6000)), (true, ms(6080)));
    }

    #[test]
    fn patterns_differ_by_state() {
        let on_time =
            |s: LedState| -> u32 { s.pattern().iter().filter(|x| x.on).map(|x| x.ms).sum() };
        assert_eq!(LedState::Degraded.period(), Duration::from_secs(2));
        assert_eq!(LedState::GateClosing.period(), Duration::from_millis(100));
        assert!(
            on_time(LedState::BootLoopGuard) * 100
                / LedState::BootLoopGuard.period().as_millis() as u32
                >= 80
        );
        assert!(on_time(LedState::Healthy) < 200);
        for s in [
            LedState::Healthy,
            LedState::Degraded,
            LedState::GateClosing,
            LedState::BootLoopGuard,
        ] {
            assert!(s.pattern()[0].on);
            // Every pattern alternates, so every step boundary is a real edge.
            for w in s.pattern().windows(2) {
                assert_ne!(w[0].on, w[1].on);
            }
            assert_ne!(s.pattern()[0].on, s.pattern()[s.pattern().len() - 1].on);
        }
    }

    #[test]
    fn driver_writes_only_on_edges_and_reports_next_edge() {
        let mut d = LedDriver::new(FakePin::default(), false, ms(0));
        assert_eq!(d.update(ms(0)), Ok(ms(80)));
        assert_eq!(d.update(ms(10)), Ok(ms(80)));
        assert_eq!(d.update(ms(80)), Ok(ms(200)));
        assert_eq!(d.update(ms(200)), Ok(ms(280)));
        assert_eq!(d.update(ms(280)), Ok(ms(1000)));
        assert_eq!(d.pin.writes.as_slice(), &[true, false, true, false]);
    }

    #[test]
    fn state_change_restarts_pattern_and_active_low_inverts() {
        let mut d = LedDriver::new(FakePin::default(), true, ms(0));
        d.update(ms(0)).unwrap(); // lit → low
        assert_eq!(d.set_state(LedState::GateClosing, ms(500)), Ok(ms(550)));
        assert_eq!(d.update(ms(550)), Ok(ms(600)));
        assert_eq!(d.state(), LedState::GateClosing);
        // Same state again does not restart the pattern.
        assert_eq!(d.set_state(LedState::GateClosing, ms(560)), Ok(ms(600)));
        let pin = d.release().unwrap();
        // Lit (low) at 0; the flicker starts lit, as the LED already was, so no write at 500;
        // unlit (high) at 550; release turns it off (high).
        assert_eq!(pin.writes.as_slice(), &[false, true, true]);
    }

    #[test]
    fn pin_errors_are_returned() {
        let mut d = LedDriver::new(BrokenPin, false, ms(0));
        assert_eq!(d.update(ms(0)), Err(PinDead));
    }
}
