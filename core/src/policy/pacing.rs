//! Read pacing: when the observer reads its datagram socket.
//!
//! Woken for every datagram, the observer pays one context switch per beat, and on small
//! boards and virtual machines the switch costs several times what handling the beat does.
//! Under load it may instead stop asking to be woken by the socket and read it on a timer,
//! every `delay`, taking what queued meanwhile in one batch. That is safe when
//!
//! 1. beat times come from the kernel's receive timestamps, not from the read time, so
//!    stall decisions do not change (the frontend's job);
//! 2. the socket is read before any stall is judged (the frontend's job);
//! 3. the kernel queue never fills: the delay is chosen so that the arrivals expected in
//!    one delay are an eighth of the queue, and a read that finds half the queue used goes
//!    back to reading on every datagram for [`BACKOFF`].
//!
//! Pacing starts only where it pays, when a delay would gather at least two datagrams on
//! average, and stops at the end of a [`WINDOW`] in which fewer than one came per delay
//! (arrivals are bursty: one empty read says little): an idle observer still never wakes. A Critical or terminal frame waits in the queue at most
//! `max_delay`.

use crate::time::{Duration, Instant};

/// The arrival rate is measured over windows this long.
pub const WINDOW: Duration = Duration::from_millis(50);
/// How long reading goes back to every datagram after a read found the queue half full.
pub const BACKOFF: Duration = Duration::from_secs(1);
/// Queues shorter than this are never paced: an eighth of them is under two datagrams.
pub const MIN_QUEUE: u32 = 16;

/// What pacing may do.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PacingConfig {
    /// The longest a datagram may wait in the queue; zero turns pacing off.
    pub max_delay: Duration,
    /// How many datagrams the socket's kernel queue holds.
    pub queue_len: u32,
}

/// How the socket is read.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// Whenever it is readable (the socket is in the wait set).
    OnReadable,
    /// At [`ReadPacer::next_read`] (the socket is out of the wait set).
    Paced,
}

/// The pacing state, fed every read of the socket.
#[derive(Clone, Debug)]
pub struct ReadPacer {
    cfg: PacingConfig,
    paced: bool,
    window_start: Instant,
    window_count: u64,
    delay: Duration,
    next: Instant,
    backoff_until: Instant,
    backoffs: u64,
}

impl ReadPacer {
    /// Reading on every datagram until the rate says otherwise.
    pub const fn new(cfg: PacingConfig) -> ReadPacer {
        ReadPacer {
            cfg,
            paced: false,
            window_start: Instant::ZERO,
            window_count: 0,
            delay: Duration::ZERO,
            next: Instant::ZERO,
            backoff_until: Instant::ZERO,
            backoffs: 0,
        }
    }

    /// True when this configuration can ever pace.
    pub const fn enabled(&self) -> bool {
        self.cfg.max_delay.as_nanos() > 0 && self.cfg.queue_len >= MIN_QUEUE
    }

    /// The current mode.
    pub const fn mode(&self) -> ReadMode {
        if self.paced {
            ReadMode::Paced
        } else {
            ReadMode::OnReadable
        }
    }

    /// When the socket is to be read next (None: when it is readable).
    pub fn next_read(&self) -> Option<Instant> {
        self.paced.then_some(self.next)
    }

    /// The delay between paced reads, as last chosen.
    pub const fn delay(&self) -> Duration {
        self.delay
    }

    /// How many times a read found the queue half full and pacing backed off.
    pub const fn backoffs(&self) -> u64 {
        self.backoffs
    }

    /// A read at `now` (scheduled or not) took `n` datagrams off the queue. Returns the new
    /// mode when it changed.
    pub fn on_read(&mut self, now: Instant, n: usize) -> Option<ReadMode> {
        if !self.enabled() {
            return None;
        }
        let was = self.paced;
        let n = n as u64;
        let due = now >= self.next;
        self.window_count += n;
        if 2 * n >= u64::from(self.cfg.queue_len) {
            self.backoffs += 1;
            self.backoff_until = now + BACKOFF;
            self.paced = false;
            self.restart_window(now);
        } else {
            let span = now.saturating_since(self.window_start);
            if span >= WINDOW {
                self.judge(now, span);
            }
        }
        if self.paced && (due || !was) {
            self.next = now + self.delay;
        }
        (was != self.paced).then(|| self.mode())
    }

    /// Choose the mode and delay from the rate over the window that ends at `now`.
    fn judge(&mut self, now: Instant, span: Duration) {
        let count = self.window_count;
        let span_ns = u128::from(span.as_nanos());
        // The delay in which an eighth of the queue is expected to arrive.
        let fill = u128::from(self.cfg.queue_len / 8);
        let fill_delay = span_ns * fill / u128::from(count.max(1));
        let delay = fill_delay.min(u128::from(self.cfg.max_delay.as_nanos()));
        // Datagrams one such delay gathers on average, in eighths.
        let expected_8ths = u128::from(count) * delay * 8 / span_ns.max(1);
        let wanted = if self.paced {
            expected_8ths >= 8
        } else {
            expected_8ths >= 16
        };
        self.paced = wanted && now >= self.backoff_until;
        self.delay = Duration::from_nanos(delay as u64);
        self.restart_window(now);
    }

    fn restart_window(&mut self, now: Instant) {
        self.window_start = now;
        self.window_count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn pacer(max_ms: u64, queue_len: u32) -> ReadPacer {
        ReadPacer::new(PacingConfig {
            max_delay: Duration::from_millis(max_ms),
            queue_len,
        })
    }

    fn at(ns: u64) -> Instant {
        Instant::from_nanos(ns)
    }

    /// Feed reads of one datagram every `gap_ns` from `t` for `span_ns`; returns the time
    /// after the last read and the last mode change seen.
    fn on_every_datagram(
        p: &mut ReadPacer,
        mut t: u64,
        gap_ns: u64,
        span_ns: u64,
    ) -> (u64, Option<ReadMode>) {
        let end = t + span_ns;
        let mut last = None;
        while t < end {
            if let Some(m) = p.on_read(at(t), 1) {
                last = Some(m);
            }
            t += gap_ns;
        }
        (t, last)
    }

    #[test]
    fn off_when_no_delay_is_allowed_or_the_queue_is_short() {
        for mut p in [pacer(0, 512), pacer(4, 10), pacer(4, MIN_QUEUE - 1)] {
            assert!(!p.enabled());
            let (_, change) = on_every_datagram(&mut p, MS, 100_000, 500 * MS);
            assert_eq!(change, None);
            assert_eq!(p.next_read(), None);
        }
        assert!(pacer(4, MIN_QUEUE).enabled());
    }

    #[test]
    fn a_busy_socket_is_paced_at_the_longest_delay_the_queue_allows() {
        // 2 000 datagrams/s, queue 512: an eighth of it (64) takes 32 ms, so the cap wins.
        let mut p = pacer(4, 512);
        let (t, change) = on_every_datagram(&mut p, MS, 500_000, 60 * MS);
        assert_eq!(change, Some(ReadMode::Paced));
        assert_eq!(p.delay(), Duration::from_millis(4));
        let next = p.next_read().expect("paced");
        assert!(next.as_nanos() > t - 500_000 && next.as_nanos() <= t + 4 * MS);
        // 20 000/s on a queue of 64: an eighth (8) arrives in 400 µs.
        let mut p = pacer(4, 64);
        on_every_datagram(&mut p, MS, 50_000, 60 * MS);
        assert_eq!(p.mode(), ReadMode::Paced);
        let d = p.delay().as_micros();
        assert!((380..=420).contains(&d), "{d} µs");
    }

    #[test]
    fn a_trickle_is_read_on_every_datagram() {
        // 100/s with a 4 ms cap: under one datagram per delay, not worth pacing.
        let mut p = pacer(4, 512);
        let (_, change) = on_every_datagram(&mut p, MS, 10 * MS, 2_000 * MS);
        assert_eq!(change, None);
        assert_eq!(p.mode(), ReadMode::OnReadable);
    }

    #[test]
    fn paced_reads_follow_the_schedule_and_stop_after_a_quiet_window() {
        let mut p = pacer(4, 512);
        let (mut t, _) = on_every_datagram(&mut p, MS, 500_000, 60 * MS);
        assert_eq!(p.mode(), ReadMode::Paced);
        // Scheduled reads of 8 (2 000/s over 4 ms) keep it paced, one delay apart.
        for _ in 0..40 {
            t = p.next_read().unwrap().as_nanos();
            assert_eq!(p.on_read(at(t), 8), None);
            assert_eq!(p.next_read(), Some(at(t + 4 * MS)));
        }
        // An early read (a stall judged in between) leaves the schedule alone, even empty,
        // and what it took counts for the scheduled read after it.
        let next = p.next_read().unwrap();
        assert_eq!(p.on_read(at(t + MS), 0), None);
        assert_eq!(p.next_read(), Some(next));
        // Scheduled reads that find nothing: paced until the window ends, then back to
        // waking on the socket.
        let mut t = next.as_nanos();
        let mut reads = 0;
        while p.on_read(at(t), 0).is_none() {
            reads += 1;
            // At most two windows: the one the traffic stopped in may still average enough.
            assert!(
                reads <= 2 * (WINDOW.as_nanos() / (4 * MS) + 1),
                "{reads} empty reads"
            );
            t = p.next_read().unwrap().as_nanos();
        }
        assert!(reads >= 2, "one empty read does not end it");
        assert_eq!(p.mode(), ReadMode::OnReadable);
        assert_eq!(p.next_read(), None);
    }

    #[test]
    fn a_half_full_queue_backs_off_for_a_while() {
        let mut p = pacer(4, 64);
        let (t, _) = on_every_datagram(&mut p, MS, 100_000, 60 * MS);
        assert_eq!(p.mode(), ReadMode::Paced);
        // A burst: 32 of 64 queued at one read.
        assert_eq!(p.on_read(at(t), 32), Some(ReadMode::OnReadable));
        assert_eq!(p.backoffs(), 1);
        // The rate stays high, but pacing waits out the back-off...
        let (t2, change) = on_every_datagram(&mut p, t + 1, 100_000, BACKOFF.as_nanos() - MS);
        assert_eq!(change, None, "no pacing during the back-off");
        // ...and resumes after it.
        let (_, change) = on_every_datagram(&mut p, t2, 100_000, 120 * MS);
        assert_eq!(change, Some(ReadMode::Paced));
    }

    #[test]
    fn a_first_datagram_after_long_silence_does_not_start_pacing() {
        let mut p = pacer(4, 512);
        assert_eq!(p.on_read(at(3_600_000 * MS), 1), None);
        assert_eq!(p.mode(), ReadMode::OnReadable);
    }
}
