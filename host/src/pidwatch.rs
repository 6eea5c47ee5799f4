//! Process-exit detection with pidfds: a pidfd becomes readable when its process exits, so
//! an exit is reported at once instead of at the stall threshold. Bounded: beyond the limit
//! (or on kernels without pidfd_open) agents fall back to stall detection.

use rustc_hash::FxHashMap;
use rustix::io::Errno;
use rustix::process::{pidfd_open, Pid, PidfdFlags};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Descriptors kept free for everything but pidfds (sockets, the export and audit files,
/// recovery pipes, HTTP and control connections).
const OTHER_FDS: u64 = 256;

/// Raise the soft open-files limit (RLIMIT_NOFILE) so `pidfds` pidfds fit beside the
/// observer's other descriptors, up to the hard limit; returns how many pidfds fit then.
/// Service managers start daemons with a soft limit of 1 024 (systemd's default, for the
/// sake of programs using select(2); this one uses epoll), which would leave agents beyond
/// the first thousand watched for exit only by the stall threshold.
pub fn reserve_fds(pidfds: usize) -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    let soft = lim.current.unwrap_or(u64::MAX);
    let hard = lim.maximum.unwrap_or(u64::MAX);
    let (target, fit) = fd_budget(pidfds as u64, soft, hard);
    if target > soft {
        let raised = Rlimit {
            current: Some(target),
            maximum: lim.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            log::warn!("raising the open-files limit from {soft} to {target}: {e}");
            let (_, fit) = fd_budget(pidfds as u64, soft, soft);
            return fit as usize;
        }
    }
    if fit < pidfds as u64 {
        log::warn!(
            "the open-files limit (hard {hard}) leaves room for {fit} of {pidfds} pidfds: exits \
             of agents beyond that are seen at the stall threshold (raise LimitNOFILE)"
        );
    }
    fit as usize
}

/// The soft limit to ask for, and the pidfds that fit under it.
fn fd_budget(pidfds: u64, soft: u64, hard: u64) -> (u64, u64) {
    let want = pidfds.saturating_add(OTHER_FDS);
    let target = want.min(hard).max(soft);
    (target, pidfds.min(target.saturating_sub(OTHER_FDS)))
}

/// Result of asking to watch a pid.
#[derive(Debug, PartialEq, Eq)]
pub enum Watch {
    /// Watching: register the fd (returned by [`PidWatch::fd`]) for readability.
    Started,
    /// Already watched.
    Already,
    /// The process is already gone.
    Gone,
    /// Not watched (limit reached, or pidfd unsupported); stall detection still applies.
    Unavailable,
}

/// The set of pidfds the observer holds.
#[derive(Debug)]
pub struct PidWatch {
    fds: FxHashMap<u32, OwnedFd>,
    limit: usize,
    supported: bool,
}

impl PidWatch {
    /// At most `limit` pidfds at once.
    pub fn new(limit: usize) -> Self {
        PidWatch {
            fds: FxHashMap::default(),
            limit,
            supported: true,
        }
    }

    /// Start watching `pid`.
    pub fn watch(&mut self, pid: u32) -> Watch {
        if self.fds.contains_key(&pid) {
            return Watch::Already;
        }
        if !self.supported || self.fds.len() >= self.limit {
            return Watch::Unavailable;
        }
        let Some(p) = Pid::from_raw(pid as i32) else {
            return Watch::Unavailable;
        };
        match pidfd_open(p, PidfdFlags::empty()) {
            Ok(fd) => {
                self.fds.insert(pid, fd);
                Watch::Started
            }
            Err(Errno::SRCH) => Watch::Gone,
            Err(Errno::NOSYS) => {
                log::warn!("pidfd_open unsupported: process exits are detected at the threshold");
                self.supported = false;
                Watch::Unavailable
            }
            Err(e) => {
                log::debug!("pidfd_open({}) failed: {}", pid, e);
                Watch::Unavailable
            }
        }
    }

    /// The pidfd for `pid`, if watched.
    pub fn fd(&self, pid: u32) -> Option<BorrowedFd<'_>> {
        self.fds.get(&pid).map(|f| f.as_fd())
    }

    /// Stop watching (returns the fd so the caller can deregister it before it closes).
    pub fn unwatch(&mut self, pid: u32) -> Option<OwnedFd> {
        self.fds.remove(&pid)
    }

    /// Number of pidfds held.
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    /// True when none are held.
    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_budget_raises_to_what_is_needed_within_the_hard_limit() {
        // systemd's 1024/524288: raised to fit all.
        assert_eq!(fd_budget(4096, 1024, 524_288), (4096 + 256, 4096));
        // Never lowered.
        assert_eq!(fd_budget(100, 1_048_576, 1_048_576), (1_048_576, 100));
        // A low hard limit caps the pidfds.
        assert_eq!(fd_budget(4096, 1024, 2048), (2048, 2048 - 256));
        // No room at all.
        assert_eq!(fd_budget(4096, 100, 100), (100, 0));
    }

    #[test]
    fn exit_makes_pidfd_readable() {
        let mut child = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .unwrap();
        let mut w = PidWatch::new(4);
        assert_eq!(w.watch(child.id()), Watch::Started);
        assert_eq!(w.watch(child.id()), Watch::Already);
        let fd = w.fd(child.id()).unwrap();
        let mut pfd = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        assert_eq!(rustix::event::poll(&mut pfd, None).unwrap(), 1);
        child.wait().unwrap();
        assert!(w.unwatch(child.id()).is_some());
        assert!(w.is_empty());
    }

    #[test]
    fn limit_and_gone() {
        let mut w = PidWatch::new(1);
        assert_eq!(w.watch(std::process::id()), Watch::Started);
        assert_eq!(w.watch(1), Watch::Unavailable);
        let mut w = PidWatch::new(4);
        assert_eq!(w.watch(i32::MAX as u32 - 7), Watch::Gone);
    }
}
