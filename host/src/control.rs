//! The control socket: a Unix stream socket next to the data socket. A client sends one
//! request line (`status`), the observer answers with one JSON document and closes.
//! Served from the event loop without blocking: bounded connections, bounded request size,
//! a per-connection deadline, partial writes resumed on EPOLLOUT (edge-triggered).

use crate::listener::unix::{clear_stale, BindError};
use rustix::fs::Mode;
use rustix::io::Errno;
use rustix::net::{
    accept_with, bind, listen, socket_with, AddressFamily, SocketAddrUnix, SocketFlags, SocketType,
};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;
use varta_core::time::{Duration, Instant};

/// Longest request line accepted.
pub const MAX_REQUEST: usize = 256;
/// Connections served at once; further ones wait in the kernel backlog.
pub const MAX_CONNS: usize = 8;
/// A client must send its request and read the answer within this time.
pub const CONN_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Conn {
    fd: OwnedFd,
    request: Vec<u8>,
    response: Option<Vec<u8>>,
    written: usize,
    deadline: Instant,
}

/// What happened on a connection after an event.
#[derive(Debug, PartialEq, Eq)]
pub enum ConnState {
    /// Still open; waiting for more input or output space.
    Open,
    /// Done and closed.
    Closed,
}

/// The listening control socket and its connections.
#[derive(Debug)]
pub struct ControlServer {
    fd: OwnedFd,
    path: PathBuf,
    identity: (u64, u64),
    conns: Vec<Option<Conn>>,
}

impl ControlServer {
    /// Bind and listen at `path` with permission bits `mode`.
    pub fn bind(path: &Path, mode: u32) -> Result<Self, BindError> {
        let ioe = |what: &'static str| {
            let p = path.to_path_buf();
            move |e: Errno| BindError::Io(what, p, e.into())
        };
        clear_stale(path, SocketType::STREAM)?;
        let fd = socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )
        .map_err(ioe("socket"))?;
        let addr = SocketAddrUnix::new(path).map_err(ioe("socket address"))?;
        bind(&fd, &addr).map_err(|e| {
            if e == Errno::ADDRINUSE {
                BindError::InUse(path.to_path_buf())
            } else {
                BindError::Io("bind", path.to_path_buf(), e.into())
            }
        })?;
        let meta = std::fs::symlink_metadata(path)
            .map_err(|e| BindError::Io("stat", path.to_path_buf(), e))?;
        let me = ControlServer {
            fd,
            path: path.to_path_buf(),
            identity: (meta.dev(), meta.ino()),
            conns: (0..MAX_CONNS).map(|_| None).collect(),
        };
        rustix::fs::chmod(path, Mode::from_raw_mode(mode)).map_err(ioe("chmod"))?;
        listen(&me.fd, 16).map_err(ioe("listen"))?;
        Ok(me)
    }

    /// The listening fd (register for readability).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accept what is pending, up to the connection limit. Returns the slots of new
    /// connections: register `conn_fd(slot)` for IN|OUT edge-triggered.
    pub fn accept(&mut self, now: Instant) -> Vec<usize> {
        let mut new = Vec::new();
        while let Some(slot) = self.conns.iter().position(Option::is_none) {
            match accept_with(&self.fd, SocketFlags::CLOEXEC | SocketFlags::NONBLOCK) {
                Ok(fd) => {
                    self.conns[slot] = Some(Conn {
                        fd,
                        request: Vec::new(),
                        response: None,
                        written: 0,
                        deadline: now + CONN_DEADLINE,
                    });
                    new.push(slot);
                }
                Err(Errno::AGAIN) | Err(Errno::INTR) => break,
                Err(e) => {
                    log::warn!("control socket accept: {}", e);
                    break;
                }
            }
        }
        new
    }

    /// The fd of connection `slot`.
    pub fn conn_fd(&self, slot: usize) -> Option<BorrowedFd<'_>> {
        self.conns.get(slot)?.as_ref().map(|c| c.fd.as_fd())
    }

    /// Progress connection `slot`: read the request, call `handle` once with the request
    /// line, write the answer. Closes on completion, error, or an oversized request.
    pub fn on_event(&mut self, slot: usize, mut handle: impl FnMut(&str) -> Vec<u8>) -> ConnState {
        let Some(Some(conn)) = self.conns.get_mut(slot) else {
            return ConnState::Closed;
        };
        let done = progress(conn, &mut handle);
        if done {
            self.conns[slot] = None;
            ConnState::Closed
        } else {
            ConnState::Open
        }
    }

    /// Earliest connection deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns.iter().flatten().map(|c| c.deadline).min()
    }

    /// Close connections past their deadline; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut n = 0;
        for c in self.conns.iter_mut() {
            if c.as_ref().is_some_and(|c| c.deadline <= now) {
                *c = None;
                n += 1;
            }
        }
        n
    }
}

/// Returns true when the connection is finished.
fn progress(conn: &mut Conn, handle: &mut impl FnMut(&str) -> Vec<u8>) -> bool {
    if conn.response.is_none() {
        let mut buf = [0u8; MAX_REQUEST];
        loop {
            match rustix::io::read(&conn.fd, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    conn.request.extend_from_slice(&buf[..n]);
                    if conn.request.len() > MAX_REQUEST {
                        conn.response = Some(b"{\"error\":\"request too long\"}\n".to_vec());
                        break;
                    }
                    if conn.request.contains(&b'\n') {
                        break;
                    }
                }
                Err(Errno::AGAIN) => break,
                Err(Errno::INTR) => continue,
                Err(_) => return true,
            }
        }
        if conn.response.is_none() {
            let Some(end) = conn.request.iter().position(|&b| b == b'\n') else {
                return false;
            };
            let line = String::from_utf8_lossy(&conn.request[..end])
                .trim()
                .to_owned();
            conn.response = Some(handle(&line));
        }
    }
    let resp = conn.response.as_ref().expect("response set above");
    while conn.written < resp.len() {
        match rustix::io::write(&conn.fd, &resp[conn.written..]) {
            Ok(n) => conn.written += n,
            Err(Errno::AGAIN) => return false,
            Err(Errno::INTR) => continue,
            Err(_) => return true,
        }
    }
    true
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.identity {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Client side: send `request`, return the answer (used by `varta-watch status`).
pub fn request(path: &Path, request: &str, timeout: StdDuration) -> io::Result<Vec<u8>> {
    let mut s = UnixStream::connect(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot reach the observer's control socket {}: {} (is varta-watch running? pass --control-socket)",
                path.display(),
                e
            ),
        )
    })?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(request.as_bytes())?;
    s.write_all(b"\n")?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_until_closed(srv: &mut ControlServer, slot: usize) {
        for _ in 0..200 {
            if srv.on_event(slot, |req| format!("echo:{req}").into_bytes()) == ConnState::Closed {
                return;
            }
            std::thread::sleep(StdDuration::from_millis(5));
        }
        panic!("connection never completed");
    }

    #[test]
    fn request_response_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.ctl");
        let mut srv = ControlServer::bind(&p, 0o600).unwrap();
        let p2 = p.clone();
        let client = std::thread::spawn(move || request(&p2, "status", StdDuration::from_secs(5)));
        let mut slots = Vec::new();
        for _ in 0..200 {
            slots = srv.accept(Instant::ZERO);
            if !slots.is_empty() {
                break;
            }
            std::thread::sleep(StdDuration::from_millis(5));
        }
        assert_eq!(slots.len(), 1);
        serve_until_closed(&mut srv, slots[0]);
        assert_eq!(client.join().unwrap().unwrap(), b"echo:status");
    }

    #[test]
    fn slow_client_expires_and_oversized_request_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.ctl");
        let mut srv = ControlServer::bind(&p, 0o600).unwrap();
        let _slow = UnixStream::connect(&p).unwrap();
        let mut big = UnixStream::connect(&p).unwrap();
        big.write_all(&[b'x'; MAX_REQUEST + 10]).unwrap();
        std::thread::sleep(StdDuration::from_millis(20));
        let slots = srv.accept(Instant::ZERO);
        assert_eq!(slots.len(), 2);
        assert_eq!(srv.on_event(slots[0], |_| unreachable!()), ConnState::Open);
        assert_eq!(
            srv.on_event(slots[1], |_| unreachable!()),
            ConnState::Closed
        );
        let mut answer = String::new();
        big.read_to_string(&mut answer).unwrap();
        assert!(answer.contains("too long"));
        assert_eq!(srv.next_deadline(), Some(Instant::ZERO + CONN_DEADLINE));
        assert_eq!(srv.expire(Instant::ZERO + CONN_DEADLINE), 1);
        assert_eq!(srv.next_deadline(), None);
    }

    #[test]
    fn unreachable_socket_error_says_what_to_do() {
        let e = request(
            Path::new("/nonexistent/x.ctl"),
            "status",
            StdDuration::from_secs(1),
        )
        .unwrap_err();
        assert!(e.to_string().contains("is varta-watch running"), "{e}");
    }
}
