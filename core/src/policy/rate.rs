//! Rate limits as token buckets in fixed point (1/256 token), small enough to live in a
//! tracker slot. Critical and terminal frames are never limited: callers bypass [`admit`]
//! for them and use [`charge`] so the bucket still accounts for them.

use crate::time::Duration;

/// Fixed-point scale: one token is 256 units.
pub const UNIT: u32 = 256;

/// A limit of `per_sec` frames per second with bursts of `burst` frames. `per_sec == 0`
/// means unlimited.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RateLimit {
    /// Sustained frames per second (0 = unlimited).
    pub per_sec: u32,
    /// Largest burst in frames (at least 1 when limited).
    pub burst: u32,
}

impl RateLimit {
    /// No limit.
    pub const UNLIMITED: RateLimit = RateLimit {
        per_sec: 0,
        burst: 0,
    };

    /// `per_sec` with a burst of `burst` frames.
    pub const fn new(per_sec: u32, burst: u32) -> Self {
        RateLimit { per_sec, burst }
    }

    /// Whether this limit is active.
    pub const fn is_limited(&self) -> bool {
        self.per_sec > 0
    }

    /// Full bucket in units, clamped to what `cap` can hold.
    pub fn full(&self, cap: u32) -> u32 {
        (self.burst.max(1).saturating_mul(UNIT)).min(cap)
    }

    /// Tokens (units) after `elapsed` has refilled `tokens`, clamped to the burst and `cap`.
    pub fn refill(&self, tokens: u32, elapsed: Duration, cap: u32) -> u32 {
        let add = (elapsed.as_nanos() as u128 * self.per_sec as u128 * UNIT as u128
            / 1_000_000_000u128)
            .min(u32::MAX as u128) as u32;
        tokens.saturating_add(add).min(self.full(cap))
    }
}

/// Try to take one token. Returns the new bucket level, or `None` when over the limit (the
/// caller then stores nothing: the refill is recomputed from the same baseline next time).
pub fn admit(limit: &RateLimit, tokens: u32, elapsed: Duration, cap: u32) -> Option<u32> {
    if !limit.is_limited() {
        return Some(tokens);
    }
    let now = limit.refill(tokens, elapsed, cap);
    now.checked_sub(UNIT)
}

/// Take a token if there is one, never refusing (for Critical and terminal frames).
pub fn charge(limit: &RateLimit, tokens: u32, elapsed: Duration, cap: u32) -> u32 {
    if !limit.is_limited() {
        return tokens;
    }
    limit.refill(tokens, elapsed, cap).saturating_sub(UNIT)
}

/// A global limiter over all agents (one bucket for the whole observer).
#[derive(Copy, Clone, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GlobalLimiter {
    limit: RateLimit,
    tokens: u32,
    last: u64,
}

impl GlobalLimiter {
    /// A full bucket for `limit`.
    pub const fn new(limit: RateLimit) -> Self {
        GlobalLimiter {
            limit,
            tokens: limit.burst.saturating_mul(UNIT),
            last: 0,
        }
    }

    /// The configured limit.
    pub const fn limit(&self) -> RateLimit {
        self.limit
    }

    fn elapsed(&self, now_ns: u64) -> Duration {
        Duration::from_nanos(now_ns.saturating_sub(self.last))
    }

    /// Admit one ordinary frame at `now_ns`.
    pub fn admit(&mut self, now_ns: u64) -> bool {
        if !self.limit.is_limited() {
            return true;
        }
        match admit(&self.limit, self.tokens, self.elapsed(now_ns), u32::MAX) {
            Some(t) => {
                self.tokens = t;
                self.last = now_ns;
                true
            }
            None => false,
        }
    }

    /// Account for a frame that may not be refused (Critical, terminal).
    pub fn charge(&mut self, now_ns: u64) {
        if self.limit.is_limited() {
            self.tokens = charge(&self.limit, self.tokens, self.elapsed(now_ns), u32::MAX);
            self.last = now_ns;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_always_admits() {
        assert_eq!(admit(&RateLimit::UNLIMITED, 0, Duration::ZERO, 0), Some(0));
        let mut g = GlobalLimiter::new(RateLimit::UNLIMITED);
        assert!((0..1000).all(|_| g.admit(0)));
    }

    #[test]
    fn burst_then_sustained_rate() {
        let l = RateLimit::new(10, 3);
        let cap = u16::MAX as u32;
        let mut t = l.full(cap);
        for _ in 0..3 {
            t = admit(&l, t, Duration::ZERO, cap).expect("burst");
        }
        assert_eq!(admit(&l, t, Duration::ZERO, cap), None);
        // 50 ms = half a token at 10/s: still refused; 100 ms = one token.
        assert_eq!(admit(&l, t, Duration::from_millis(50), cap), None);
        assert!(admit(&l, t, Duration::from_millis(100), cap).is_some());
    }

    #[test]
    fn fractional_refill_is_not_lost() {
        // Frames every 60 ms against 10/s: over 6 s (100 frames) about 60 are admitted.
        // (Burst 2: with burst 1 the bucket is full at each refused frame and clamps.)
        let l = RateLimit::new(10, 2);
        let cap = u16::MAX as u32;
        let mut t = l.full(cap);
        let mut since = Duration::ZERO;
        let mut ok = 0;
        for _ in 0..100 {
            match admit(&l, t, since, cap) {
                Some(n) => {
                    t = n;
                    since = Duration::from_millis(60);
                    ok += 1;
                }
                None => since = since + Duration::from_millis(60),
            }
        }
        assert!((59..=63).contains(&ok), "admitted {}", ok);
    }

    #[test]
    fn global_limiter_charge_never_refuses() {
        let mut g = GlobalLimiter::new(RateLimit::new(1, 1));
        assert!(g.admit(0));
        assert!(!g.admit(1));
        g.charge(2);
        g.charge(3);
        assert!(!g.admit(4));
        assert!(g.admit(1_000_000_004));
    }
}
