//! Signals as a pollable fd: handlers set a flag and write a byte to a non-blocking pipe
//! (signal-hook's async-signal-safe primitives); the loop drains the pipe and reads flags.

use rustix::pipe::{pipe_with, PipeFlags};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Which signals arrived since the last [`Signals::take`].
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Pending {
    /// SIGTERM or SIGINT: orderly stop.
    pub stop: bool,
    /// SIGHUP: reload configuration.
    pub reload: bool,
    /// SIGCHLD: a child changed state.
    pub child: bool,
}

/// The registered handlers and the read end of their wake-up pipe.
#[derive(Debug)]
pub struct Signals {
    read: OwnedFd,
    _write: OwnedFd,
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
    child: Arc<AtomicBool>,
    ids: Vec<signal_hook::SigId>,
}

impl Signals {
    /// Install handlers for SIGTERM, SIGINT, SIGHUP and SIGCHLD.
    pub fn install() -> io::Result<Self> {
        use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
        let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        let stop = Arc::new(AtomicBool::new(false));
        let reload = Arc::new(AtomicBool::new(false));
        let child = Arc::new(AtomicBool::new(false));
        let mut ids = Vec::new();
        for (sig, flag) in [
            (SIGTERM, &stop),
            (SIGINT, &stop),
            (SIGHUP, &reload),
            (SIGCHLD, &child),
        ] {
            ids.push(signal_hook::flag::register(sig, Arc::clone(flag))?);
            // register_raw takes ownership of the fd and closes it when unregistered, so
            // each registration gets its own duplicate of the write end.
            let dup = rustix::io::fcntl_dupfd_cloexec(&write, 0)?;
            ids.push(signal_hook::low_level::pipe::register_raw(
                sig,
                std::os::fd::IntoRawFd::into_raw_fd(dup),
            )?);
        }
        Ok(Signals {
            read,
            _write: write,
            stop,
            reload,
            child,
            ids,
        })
    }

    /// The fd to register for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Drain the pipe and return (and clear) the pending flags.
    pub fn take(&self) -> Pending {
        let mut buf = [0u8; 64];
        while let Ok(n) = rustix::io::read(&self.read, &mut buf) {
            if n == 0 {
                break;
            }
        }
        Pending {
            stop: self.stop.swap(false, Ordering::SeqCst),
            reload: self.reload.swap(false, Ordering::SeqCst),
            child: self.child.swap(false, Ordering::SeqCst),
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}
