//! The pathname Unix datagram listener with SO_PASSCRED.
//!
//! Binding is careful about what is already at the path: a live observer is never
//! displaced, a regular file is never deleted, a stale socket is replaced. On drop the path
//! is unlinked only if it is still the socket this process created (same device + inode).

use rustix::fs::{Gid, Mode, Uid};
use rustix::io::Errno;
use rustix::net::{
    bind, connect, socket_with, sockopt, AddressFamily, SocketAddrUnix, SocketFlags, SocketType,
};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Options for [`UnixListener::bind`].
#[derive(Clone, Debug)]
pub struct BindOptions {
    /// Permission bits of the socket file (who may connect).
    pub mode: u32,
    /// Group to give the socket file (so a group of agents may connect), if any.
    pub group: Option<u32>,
    /// Requested kernel receive buffer in bytes (the kernel may clamp it).
    pub recv_buffer: usize,
}

impl Default for BindOptions {
    fn default() -> Self {
        BindOptions {
            mode: 0o600,
            group: None,
            recv_buffer: 4 << 20,
        }
    }
}

/// Why the listener could not be set up.
#[derive(Debug)]
pub enum BindError {
    /// Another observer answers on the path.
    InUse(PathBuf),
    /// Something that is not a socket is at the path; it is never deleted.
    NotASocket(PathBuf),
    /// Any other OS error, with what was being done.
    Io(&'static str, PathBuf, io::Error),
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindError::InUse(p) => write!(
                f,
                "{}: another observer is already listening here (stop it, or pass --socket)",
                p.display()
            ),
            BindError::NotASocket(p) => write!(
                f,
                "{}: exists and is not a socket; refusing to replace it (remove it or pass --socket)",
                p.display()
            ),
            BindError::Io(what, p, e) => write!(f, "{}: {}: {}", p.display(), what, e),
        }
    }
}

impl std::error::Error for BindError {}

/// A bound, non-blocking, credential-passing datagram socket.
#[derive(Debug)]
pub struct UnixListener {
    fd: OwnedFd,
    path: PathBuf,
    identity: (u64, u64),
    recv_buffer: usize,
    queue_len: Option<u32>,
}

fn io_err<'a>(what: &'static str, p: &'a Path) -> impl FnOnce(Errno) -> BindError + 'a {
    move |e| BindError::Io(what, p.to_path_buf(), e.into())
}

impl UnixListener {
    /// Bind at `path`, creating its directory (mode 0755) if missing.
    pub fn bind(path: &Path, opts: &BindOptions) -> Result<Self, BindError> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    BindError::Io("creating socket directory", dir.to_path_buf(), e)
                })?;
                let _ = rustix::fs::chmod(dir, Mode::from_raw_mode(0o755));
            }
        }
        clear_stale(path, SocketType::DGRAM)?;
        // The kernel gives a socket the queue length current when it is made.
        let queue_len = std::fs::read_to_string(crate::doctor::QLEN_PROC)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let fd = socket_with(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )
        .map_err(io_err("socket", path))?;
        let addr = SocketAddrUnix::new(path).map_err(io_err("socket address", path))?;
        bind(&fd, &addr).map_err(|e| {
            if e == Errno::ADDRINUSE {
                BindError::InUse(path.to_path_buf())
            } else {
                BindError::Io("bind", path.to_path_buf(), e.into())
            }
        })?;
        let meta = std::fs::symlink_metadata(path)
            .map_err(|e| BindError::Io("stat", path.to_path_buf(), e))?;
        let me = UnixListener {
            fd,
            path: path.to_path_buf(),
            identity: (meta.dev(), meta.ino()),
            recv_buffer: 0,
            queue_len,
        };
        rustix::fs::chmod(path, Mode::from_raw_mode(opts.mode)).map_err(io_err("chmod", path))?;
        if let Some(g) = opts.group {
            rustix::fs::chown(path, None::<Uid>, Some(Gid::from_raw(g)))
                .map_err(io_err("chown to group", path))?;
        }
        sockopt::set_socket_passcred(&me.fd, true).map_err(io_err("SO_PASSCRED", path))?;
        let mut me = me;
        me.recv_buffer = set_recv_buffer(&me.fd, opts.recv_buffer);
        Ok(me)
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The receive buffer the kernel granted (bytes, as getsockopt reports it).
    pub fn recv_buffer(&self) -> usize {
        self.recv_buffer
    }

    /// How many datagrams the kernel queues on this socket (`net.unix.max_dgram_qlen` when
    /// it was made; None: unreadable).
    pub fn queue_len(&self) -> Option<u32> {
        self.queue_len
    }

    /// Have the kernel stamp each datagram queued from now on with the time it was queued
    /// (SO_TIMESTAMPNS), so that a datagram read late still says when it arrived; or stop.
    pub fn set_timestamps(&self, on: bool) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let v = libc::c_int::from(on);
        // SAFETY: a valid socket fd and a pointer to an int of the size passed.
        let r = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// The fd to register for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for UnixListener {
    fn drop(&mut self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.identity {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Try the biggest receive buffer we may have: SO_RCVBUFFORCE as root, else SO_RCVBUF
/// (clamped by net.core.rmem_max). Returns what the kernel reports.
fn set_recv_buffer(fd: &OwnedFd, want: usize) -> usize {
    if want > 0 && sockopt::set_socket_recv_buffer_size_force(fd, want).is_err() {
        let _ = sockopt::set_socket_recv_buffer_size(fd, want);
    }
    sockopt::socket_recv_buffer_size(fd).unwrap_or(0)
}

/// Remove a stale socket at `path`; refuse a live one or a non-socket. `kind` is the type
/// of socket expected there (the probe must match it to connect).
pub(crate) fn clear_stale(path: &Path, kind: SocketType) -> Result<(), BindError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(BindError::Io("stat", path.to_path_buf(), e)),
    };
    if !meta.file_type().is_socket() {
        return Err(BindError::NotASocket(path.to_path_buf()));
    }
    let probe = socket_with(AddressFamily::UNIX, kind, SocketFlags::CLOEXEC, None)
        .map_err(io_err("socket", path))?;
    let addr = SocketAddrUnix::new(path).map_err(io_err("socket address", path))?;
    match connect(&probe, &addr) {
        Ok(()) => Err(BindError::InUse(path.to_path_buf())),
        Err(Errno::CONNREFUSED) | Err(Errno::NOENT) | Err(Errno::PROTOTYPE) => {
            log::info!("{}: replacing stale socket", path.display());
            std::fs::remove_file(path)
                .map_err(|e| BindError::Io("removing stale socket", path.to_path_buf(), e))
        }
        Err(e) => Err(BindError::Io(
            "probing existing socket",
            path.to_path_buf(),
            e.into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn socket_mode_applied() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.sock");
        let opts = BindOptions {
            mode: 0o660,
            ..BindOptions::default()
        };
        let _l = UnixListener::bind(&p, &opts).unwrap();
        let mode = std::fs::metadata(&p).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o660);
    }

    #[test]
    fn live_observer_refused_stale_replaced_file_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.sock");
        let first = UnixListener::bind(&p, &BindOptions::default()).unwrap();
        let err = UnixListener::bind(&p, &BindOptions::default()).unwrap_err();
        assert!(matches!(err, BindError::InUse(_)), "{err}");
        // Stale: a socket file nobody listens on.
        std::mem::forget(first); // keep the file (no unlink), close nothing... then:
        let stale = dir.path().join("stale.sock");
        drop(UnixDatagram::bind(&stale).unwrap());
        assert!(stale.exists());
        let l = UnixListener::bind(&stale, &BindOptions::default()).unwrap();
        drop(l);
        assert!(!stale.exists(), "our own socket is unlinked on drop");
        // A regular file is never replaced.
        let f = dir.path().join("file");
        std::fs::write(&f, b"precious").unwrap();
        let err = UnixListener::bind(&f, &BindOptions::default()).unwrap_err();
        assert!(matches!(err, BindError::NotASocket(_)), "{err}");
        assert_eq!(std::fs::read(&f).unwrap(), b"precious");
    }

    #[test]
    fn unlink_on_drop_only_if_still_ours() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.sock");
        let l = UnixListener::bind(&p, &BindOptions::default()).unwrap();
        std::fs::remove_file(&p).unwrap();
        let other = UnixDatagram::bind(&p).unwrap();
        drop(l);
        assert!(p.exists(), "someone else's socket must survive our exit");
        drop(other);
    }
}
