//! One timerfd, armed at an absolute instant on the observer's clock.

use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdFlags, TimerfdTimerFlags, Timespec,
};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use varta_core::time::Instant;

use crate::clock::OsClock;

/// A non-blocking timerfd on the same clock as [`OsClock`].
#[derive(Debug)]
pub struct Timer {
    fd: OwnedFd,
    armed: Option<Instant>,
}

const fn ts(ns: u64) -> Timespec {
    Timespec {
        tv_sec: (ns / 1_000_000_000) as i64,
        tv_nsec: (ns % 1_000_000_000) as _,
    }
}

impl Timer {
    /// A disarmed timer on `clock`'s clock id.
    pub fn new(clock: &OsClock) -> io::Result<Self> {
        let fd = timerfd_create(
            clock.timerfd_clock(),
            TimerfdFlags::CLOEXEC | TimerfdFlags::NONBLOCK,
        )?;
        Ok(Timer { fd, armed: None })
    }

    /// The fd to register for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// When the timer is armed for, if at all.
    pub fn armed(&self) -> Option<Instant> {
        self.armed
    }

    /// Make sure the timer fires no later than `at` (absolute). The loop calls this every
    /// iteration with its earliest due time, so it costs a syscall only when that time moved
    /// *earlier* than what is armed (or nothing is armed). When it moved later — the usual
    /// case: an agent's beat pushes its own deadline back — the earlier expiry stays: the
    /// loop wakes once, finds nothing due, and arms the later time then. That trades one
    /// early wake-up per deadline for a timerfd_settime on every beat. `None` (nothing due
    /// at all) leaves an armed timer alone for the same reason.
    pub fn set(&mut self, at: Option<Instant>) -> io::Result<()> {
        let Some(at) = at else { return Ok(()) };
        if self.armed.is_some_and(|armed| armed <= at) {
            return Ok(());
        }
        // An absolute expiry of 0 would disarm: clamp to 1 ns (already due).
        let spec = Itimerspec {
            it_interval: ts(0),
            it_value: ts(at.as_nanos().max(1)),
        };
        timerfd_settime(&self.fd, TimerfdTimerFlags::ABSTIME, &spec)?;
        self.armed = Some(at);
        Ok(())
    }

    /// Acknowledge an expiry (drain the counter). The timer is disarmed afterwards.
    pub fn acknowledge(&mut self) {
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&self.fd, &mut buf);
        self.armed = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use varta_core::time::{ClockSource, Duration};

    #[test]
    fn fires_at_absolute_time() {
        let clock = OsClock::new(ClockSource::Monotonic);
        let mut t = Timer::new(&clock).unwrap();
        let start = clock.now_instant();
        t.set(Some(start + Duration::from_millis(20))).unwrap();
        let mut pfd = [rustix::event::PollFd::new(
            &t.fd,
            rustix::event::PollFlags::IN,
        )];
        let n = rustix::event::poll(&mut pfd, None).unwrap();
        assert_eq!(n, 1);
        let waited = clock.now_instant() - start;
        assert!(waited >= Duration::from_millis(20), "{waited}");
        t.acknowledge();
        assert_eq!(t.armed(), None);
    }

    #[test]
    fn rearms_only_when_due_earlier() {
        let clock = OsClock::new(ClockSource::Monotonic);
        let mut t = Timer::new(&clock).unwrap();
        let start = clock.now_instant();
        let early = start + Duration::from_millis(30);
        t.set(Some(start + Duration::from_secs(3600))).unwrap();
        t.set(Some(early)).unwrap();
        assert_eq!(t.armed(), Some(early));
        // Later or nothing: the earlier expiry stays, and it does fire.
        t.set(Some(start + Duration::from_secs(7200))).unwrap();
        t.set(None).unwrap();
        assert_eq!(t.armed(), Some(early));
        let mut pfd = [rustix::event::PollFd::new(
            &t.fd,
            rustix::event::PollFlags::IN,
        )];
        let timeout = rustix::time::Timespec {
            tv_sec: 5,
            tv_nsec: 0,
        };
        assert_eq!(rustix::event::poll(&mut pfd, Some(&timeout)).unwrap(), 1);
        assert!(clock.now_instant() >= early);
        t.acknowledge();
        t.set(Some(start + Duration::from_secs(7200))).unwrap();
        assert_eq!(t.armed(), Some(start + Duration::from_secs(7200)));
    }
}
