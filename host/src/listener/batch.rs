//! Many datagrams, each with its sender's kernel credentials, in one recvmmsg(2).
//!
//! The loop wakes for a readable socket and reads until the queue is empty. One datagram
//! at a time costs two recvmsg calls per wake-up (the second only to learn the queue is
//! empty) and rustix's generic ancillary-buffer handling on each; a batch reads up to
//! [`BATCH_LEN`] in one call, and a short count already says the queue is empty.
//!
//! The headers point into buffers of the same heap allocation, set up once: between calls
//! only the fields the kernel wrote for the slots used are reset.

use super::{Datagram, Sender, RECV_BUF};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Datagrams read per call at most.
pub const BATCH_LEN: usize = 32;

/// Room for an SCM_TIMESTAMPNS message (the kernel puts it first; CMSG_SPACE(16) is 32 on
/// 64-bit Linux) and an SCM_CREDENTIALS one (CMSG_SPACE(12), 32), with a spare third: a
/// control buffer too short truncates the credentials, so it is never cut to the bone.
const CMSG_WORDS: usize = 12;

struct Slots {
    bufs: [[u8; RECV_BUF]; BATCH_LEN],
    cmsg: [[u64; CMSG_WORDS]; BATCH_LEN],
    iovs: [libc::iovec; BATCH_LEN],
    hdrs: [libc::mmsghdr; BATCH_LEN],
}

/// A reusable receive batch.
pub struct Batch {
    s: Box<Slots>,
    got: usize,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").field("got", &self.got).finish()
    }
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        // SAFETY: every field of Slots is plain old data (bytes, integers, raw pointers) for
        // which all-zero is a valid value.
        let mut s: Box<Slots> = unsafe { Box::new(std::mem::zeroed()) };
        for i in 0..BATCH_LEN {
            s.iovs[i].iov_base = s.bufs[i].as_mut_ptr().cast();
            s.iovs[i].iov_len = RECV_BUF;
            let iov: *mut libc::iovec = &mut s.iovs[i];
            let ctl: *mut libc::c_void = s.cmsg[i].as_mut_ptr().cast();
            let h = &mut s.hdrs[i].msg_hdr;
            h.msg_iov = iov;
            h.msg_iovlen = 1;
            h.msg_control = ctl;
            h.msg_controllen = (CMSG_WORDS * 8) as _;
        }
        Batch { s, got: 0 }
    }

    /// Datagrams read by the last [`Batch::recv`].
    pub fn len(&self) -> usize {
        self.got
    }

    /// True when the last receive got nothing.
    pub fn is_empty(&self) -> bool {
        self.got == 0
    }

    /// Read what is queued on `fd` (non-blocking), up to [`BATCH_LEN`] datagrams. A count
    /// below [`BATCH_LEN`] means the queue was emptied.
    pub fn recv(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        for h in &mut self.s.hdrs[..self.got] {
            h.msg_hdr.msg_controllen = (CMSG_WORDS * 8) as _;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        self.got = 0;
        let flags = libc::MSG_DONTWAIT | libc::MSG_TRUNC | libc::MSG_CMSG_CLOEXEC;
        // SAFETY: the headers point at iovecs and control buffers inside the same boxed
        // allocation, which lives as long as self and is not moved; the kernel writes at
        // most iov_len / msg_controllen bytes into them. A null timeout is allowed.
        let n = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                self.s.hdrs.as_mut_ptr(),
                BATCH_LEN as _,
                flags as _,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        self.got = n as usize;
        Ok(self.got)
    }

    /// Datagram `i` of the last receive: its bytes and what the kernel said about it.
    pub fn get(&self, i: usize) -> (&[u8; RECV_BUF], Datagram) {
        let h = &self.s.hdrs[i];
        let bytes = h.msg_len as usize;
        let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        let d = Datagram {
            len: bytes.min(RECV_BUF),
            wire_len: if truncated {
                bytes.max(RECV_BUF + 1)
            } else {
                bytes
            },
            sender: None,
            stamp_ns: None,
        };
        (&self.s.bufs[i], ancillary(&h.msg_hdr, d))
    }
}

/// Fill in the sender's credentials and the kernel's receive time from the control
/// messages of `h`. The kernel writes the timestamp first and the credentials after it, so
/// the walk ends at the credentials (a later kernel that changed the order would only cost
/// paced reads their timestamps: beats would be timed at the read, which the receive-time
/// test catches).
fn ancillary(h: &libc::msghdr, mut d: Datagram) -> Datagram {
    // cmsg_len is a usize on 64-bit glibc, a u32 elsewhere (musl, 32-bit).
    #[allow(clippy::unnecessary_cast)]
    let fits = |c: *const libc::cmsghdr, size: usize| {
        // SAFETY: only called with a non-null header CMSG_FIRSTHDR/CMSG_NXTHDR returned.
        unsafe { (*c).cmsg_len as usize >= libc::CMSG_LEN(size as u32) as usize }
    };
    // SAFETY: `h` was filled by recvmmsg: msg_control points at our buffer and
    // msg_controllen says how much of it the kernel wrote, which is all CMSG_FIRSTHDR and
    // CMSG_NXTHDR look at. CMSG_DATA of an SCM_CREDENTIALS message holds a struct ucred, of
    // SCM_TIMESTAMPNS a struct timespec (as the C library defines it, which is the layout
    // the kernel uses for this option value); both are read unaligned, after checking the
    // message is long enough.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET {
                let ty = (*c).cmsg_type;
                if ty == libc::SCM_CREDENTIALS && fits(c, std::mem::size_of::<libc::ucred>()) {
                    let u: libc::ucred = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    d.sender = Some(Sender::Unix {
                        pid: u.pid as u32,
                        uid: u.uid,
                        gid: u.gid,
                    });
                    break;
                } else if ty == libc::SCM_TIMESTAMPNS
                    && fits(c, std::mem::size_of::<libc::timespec>())
                {
                    let t: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    d.stamp_ns = u64::try_from(t.tv_sec)
                        .ok()
                        .and_then(|s| s.checked_mul(1_000_000_000))
                        .and_then(|ns| ns.checked_add(t.tv_nsec as u64));
                }
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener::unix::{BindOptions, UnixListener};
    use std::os::unix::net::UnixDatagram;

    /// A bound listener and a sender connected to it (the directory keeps the socket).
    fn pair() -> (tempfile::TempDir, UnixListener, UnixDatagram) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.sock");
        let l = UnixListener::bind(&p, &BindOptions::default()).unwrap();
        let tx = UnixDatagram::unbound().unwrap();
        tx.connect(&p).unwrap();
        (dir, l, tx)
    }

    #[test]
    fn receives_with_credentials_and_detects_truncation() {
        let (_dir, l, tx) = pair();
        tx.send(&[7u8; 32]).unwrap();
        tx.send(&[1u8; 100]).unwrap();
        tx.send(&[]).unwrap();
        let mut b = Batch::new();
        assert_eq!(b.recv(l.fd()).unwrap(), 3);
        let (_, d) = b.get(0);
        assert_eq!((d.len, d.wire_len), (32, 32));
        match d.sender {
            Some(Sender::Unix { pid, uid, .. }) => {
                assert_eq!(pid, std::process::id());
                assert_eq!(uid, rustix::process::getuid().as_raw());
            }
            other => panic!("no credentials: {:?}", other),
        }
        let (_, d) = b.get(1);
        assert_eq!((d.len, d.wire_len), (RECV_BUF, 100));
        let (_, d) = b.get(2);
        assert_eq!((d.len, d.wire_len), (0, 0));
        assert_eq!(b.recv(l.fd()).unwrap(), 0);
    }

    #[test]
    fn stamps_with_the_receive_time_and_keeps_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.sock");
        let l = UnixListener::bind(&p, &BindOptions::default()).unwrap();
        l.set_timestamps(true).unwrap();
        let tx = UnixDatagram::unbound().unwrap();
        tx.connect(&p).unwrap();
        let before = crate::clock::wall_ns();
        tx.send(&[3u8; 32]).unwrap();
        let after = crate::clock::wall_ns();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut b = Batch::new();
        assert_eq!(b.recv(l.fd()).unwrap(), 1);
        let (_, d) = b.get(0);
        let stamp = d.stamp_ns.expect("a receive timestamp");
        assert!(
            (before..=after).contains(&stamp),
            "{before} <= {stamp} <= {after}: the time it was queued, not read"
        );
        assert!(matches!(d.sender, Some(Sender::Unix { pid, .. }) if pid == std::process::id()));
        // Turned off, datagrams queued from then on carry no stamp.
        l.set_timestamps(false).unwrap();
        tx.send(&[3u8; 32]).unwrap();
        assert_eq!(b.recv(l.fd()).unwrap(), 1);
        assert_eq!(b.get(0).1.stamp_ns, None);
    }

    #[test]
    fn reads_many_with_credentials_and_reports_truncation() {
        let (_dir, l, tx) = pair();
        let mut b = Batch::new();
        assert_eq!(b.recv(l.fd()).unwrap(), 0, "empty queue");
        tx.send(&[7u8; 32]).unwrap();
        tx.send(&[1u8; 5]).unwrap();
        tx.send(&[2u8; 200]).unwrap();
        assert_eq!(b.recv(l.fd()).unwrap(), 3);
        let me = std::process::id();
        let uid = rustix::process::geteuid().as_raw();
        let (buf, d) = b.get(0);
        assert_eq!((d.len, d.wire_len), (32, 32));
        assert_eq!(buf[..32], [7u8; 32]);
        assert!(
            matches!(d.sender, Some(Sender::Unix { pid, uid: u, .. }) if pid == me && u == uid)
        );
        assert_eq!((b.get(1).1.len, b.get(1).1.wire_len), (5, 5));
        let (_, big) = b.get(2);
        assert_eq!(big.len, RECV_BUF);
        assert!(big.wire_len > RECV_BUF, "truncation must be visible");
        // Slots are reused: a second round reads fresh data and fresh credentials (as many
        // as the kernel queue takes: net.unix.max_dgram_qlen may be as low as 10).
        tx.set_nonblocking(true).unwrap();
        let sent = (0..BATCH_LEN as u8)
            .take_while(|&i| tx.send(&[i; 32]).is_ok())
            .count();
        assert!(sent > 0);
        let first = b.recv(l.fd()).unwrap();
        assert_eq!(first, sent);
        for i in 0..first {
            let (buf, d) = b.get(i);
            assert_eq!(buf[0], i as u8);
            assert_eq!(d.len, 32);
            assert!(matches!(d.sender, Some(Sender::Unix { pid, .. }) if pid == me));
        }
    }
}
