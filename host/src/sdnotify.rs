//! systemd's notify protocol: READY=1, WATCHDOG=1, STATUS=…, STOPPING=1 as datagrams to
//! `$NOTIFY_SOCKET` (a path, or an abstract name starting with '@').

use rustix::net::{sendto, socket, AddressFamily, SendFlags, SocketAddrUnix, SocketType};
use std::io;
use std::os::fd::OwnedFd;
use varta_core::time::Duration;

/// A connection to the service manager, or nothing when not run under systemd.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(OwnedFd, SocketAddrUnix)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From the environment: `NOTIFY_SOCKET`, and `WATCHDOG_USEC` (+ `WATCHDOG_PID` which
    /// must be ours if set). Never fails: a broken NOTIFY_SOCKET is reported and ignored.
    pub fn from_env() -> Self {
        let sock = std::env::var_os("NOTIFY_SOCKET");
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let wpid = std::env::var("WATCHDOG_PID").ok();
        Self::from_values(
            sock.as_ref().and_then(|s| s.to_str()),
            usec.as_deref(),
            wpid.as_deref(),
            std::process::id(),
        )
    }

    /// Testable core of [`Notifier::from_env`].
    pub fn from_values(
        sock: Option<&str>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
        my_pid: u32,
    ) -> Self {
        let target = sock.and_then(|s| match open(s) {
            Ok(t) => Some(t),
            Err(e) => {
                log::warn!("NOTIFY_SOCKET={} unusable: {}", s, e);
                None
            }
        });
        let pid_ok = watchdog_pid
            .map(|p| p.parse::<u32>().ok() == Some(my_pid))
            .unwrap_or(true);
        let watchdog = watchdog_usec
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|&u| u > 0 && pid_ok && target.is_some())
            .map(Duration::from_micros);
        Notifier { target, watchdog }
    }

    /// Whether a service manager is listening.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// How often to send WATCHDOG=1: half the service's WatchdogSec, if it has one.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
            .map(|d| Duration::from_nanos(d.as_nanos() / 2))
    }

    /// Send one notification (several `KEY=value` lines). Errors are returned but harmless.
    pub fn notify(&self, state: &str) -> io::Result<()> {
        if let Some((fd, addr)) = &self.target {
            sendto(fd, state.as_bytes(), SendFlags::NOSIGNAL, addr)?;
        }
        Ok(())
    }
}

fn open(path: &str) -> io::Result<(OwnedFd, SocketAddrUnix)> {
    let addr = if let Some(name) = path.strip_prefix('@') {
        SocketAddrUnix::new_abstract_name(name.as_bytes())?
    } else if path.starts_with('/') {
        SocketAddrUnix::new(path)?
    } else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not an absolute path or abstract name",
        ));
    };
    let fd = socket(AddressFamily::UNIX, SocketType::DGRAM, None)?;
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)?;
    Ok((fd, addr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn sends_to_socket_and_reads_watchdog() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notify");
        let rx = UnixDatagram::bind(&p).unwrap();
        let n = Notifier::from_values(p.to_str(), Some("3000000"), None, 1);
        assert!(n.enabled());
        assert_eq!(n.watchdog_interval(), Some(Duration::from_millis(1500)));
        n.notify("READY=1\nSTATUS=3 agents").unwrap();
        let mut buf = [0u8; 64];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=3 agents");
    }

    #[test]
    fn watchdog_for_other_pid_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notify");
        let _rx = UnixDatagram::bind(&p).unwrap();
        let n = Notifier::from_values(p.to_str(), Some("3000000"), Some("77"), 1);
        assert_eq!(n.watchdog_interval(), None);
    }

    #[test]
    fn absent_or_bad_socket_is_harmless() {
        let n = Notifier::from_values(None, Some("100"), None, 1);
        assert!(!n.enabled());
        assert_eq!(n.watchdog_interval(), None);
        n.notify("READY=1").unwrap();
        let n = Notifier::from_values(Some("relative/path"), None, None, 1);
        assert!(!n.enabled());
    }
}
