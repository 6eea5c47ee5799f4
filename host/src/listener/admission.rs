//! Kernel-side admission for the Unix socket: a classic BPF socket filter that drops frames
//! from agents caught flooding, before they take a slot in the socket's receive queue.
//!
//! Why in the kernel: a Unix datagram socket queues at most `net.unix.max_dgram_qlen`
//! datagrams (often 10). A sender spinning as fast as it can keeps that queue full, and the
//! kernel then refuses other agents' sends (EAGAIN) before the observer could read them,
//! however fast it drains. The receiver's filter runs in `unix_dgram_sendmsg` before the
//! queue-full check, so a filtered frame never occupies the queue and the well-behaved
//! agents' beats get in.
//!
//! What is dropped: frames of the right length whose pid field names a blocked agent, except
//! Critical frames and terminal frames (never lost). Anything else (other lengths, garbage)
//! passes, so the observer still counts it. An agent is blocked when it sends more than
//! `limit` datagrams within `window`, for `block_for`; then it is let in again (and blocked
//! again if it still floods), so it keeps beating often enough never to look stalled.

use rustc_hash::FxHashMap;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use varta_core::time::{Duration, Instant};

/// Flood detection settings.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FloodPolicy {
    /// Counting window.
    pub window: Duration,
    /// Datagrams from one pid within a window above which it is blocked (0: off).
    pub limit: u32,
    /// How long a flooding pid is blocked in the kernel.
    pub block_for: Duration,
}

impl FloodPolicy {
    /// 100 ms windows, more than 200 datagrams (2 000/s, twenty times a 100 Hz agent)
    /// blocks for 200 ms.
    pub const DEFAULT: FloodPolicy = FloodPolicy {
        window: Duration::from_millis(100),
        limit: 200,
        block_for: Duration::from_millis(200),
    };
}

/// At most this many pids are blocked at once (the filter stays short).
pub const MAX_BLOCKED: usize = 32;

/// Who is flooding, from the datagrams seen.
#[derive(Debug)]
pub struct FloodGuard {
    policy: FloodPolicy,
    counts: FxHashMap<u32, (Instant, u32)>,
    blocked: Vec<(u32, Instant)>,
    /// Times a pid was blocked.
    pub blocks: u64,
}

impl FloodGuard {
    /// A guard with `policy`.
    pub fn new(policy: FloodPolicy) -> Self {
        FloodGuard {
            policy,
            counts: FxHashMap::default(),
            blocked: Vec::new(),
            blocks: 0,
        }
    }

    /// A datagram from `pid` at `now`. True when `pid` has just been blocked (the filter
    /// must be re-attached).
    pub fn note(&mut self, pid: u32, now: Instant) -> bool {
        if self.policy.limit == 0 || self.blocked.iter().any(|(p, _)| *p == pid) {
            return false;
        }
        let e = self.counts.entry(pid).or_insert((now, 0));
        if now.saturating_since(e.0) >= self.policy.window {
            *e = (now, 0);
        }
        e.1 += 1;
        if e.1 <= self.policy.limit || self.blocked.len() >= MAX_BLOCKED {
            return false;
        }
        self.counts.remove(&pid);
        self.blocked.push((pid, now + self.policy.block_for));
        self.blocks += 1;
        true
    }

    /// When the next block ends.
    pub fn next_due(&self) -> Option<Instant> {
        self.blocked.iter().map(|(_, t)| *t).min()
    }

    /// Lift blocks that ended by `now`; true if any did (re-attach the filter). Also drops
    /// counters of pids that went quiet, so the map does not grow with every pid ever seen.
    pub fn expire(&mut self, now: Instant) -> bool {
        let before = self.blocked.len();
        self.blocked.retain(|(_, until)| *until > now);
        let window = self.policy.window;
        if self.counts.len() > 1024 {
            self.counts
                .retain(|_, (start, _)| now.saturating_since(*start) < window);
        }
        self.blocked.len() != before
    }

    /// The pids blocked now.
    pub fn blocked(&self) -> Vec<u32> {
        self.blocked.iter().map(|(p, _)| *p).collect()
    }
}

const LD_W_LEN: u16 = 0x80;
const LD_W_ABS: u16 = 0x20;
const LD_B_ABS: u16 = 0x30;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;
const ACCEPT: u32 = 0xffff_ffff;

fn op(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The filter program dropping ordinary frames whose pid is in `blocked`
/// (at most [`MAX_BLOCKED`]).
pub fn program(blocked: &[u32]) -> Vec<libc::sock_filter> {
    let blocked = &blocked[..blocked.len().min(MAX_BLOCKED)];
    let n = blocked.len() as u8;
    let mut p = vec![
        op(LD_W_LEN, 0, 0, 0),
        // Not a 32-byte frame: let the observer see (and count) it.
        op(JEQ_K, 0, 1 + n, varta_core::wire::FRAME_LEN as u32),
        // The pid field, bytes 4..8, little-endian on the wire; BPF loads big-endian.
        op(LD_W_ABS, 0, 0, 4),
    ];
    for (i, pid) in blocked.iter().enumerate() {
        p.push(op(JEQ_K, n - i as u8, 0, pid.swap_bytes()));
    }
    p.extend([
        op(RET_K, 0, 0, ACCEPT),
        // A blocked pid: still admit Critical (status byte 3 == 2) and terminal frames
        // (nonce, bytes 16..24, all ones).
        op(LD_B_ABS, 0, 0, 3),
        op(JEQ_K, 5, 0, varta_core::wire::Status::Critical as u32),
        op(LD_W_ABS, 0, 0, 16),
        op(JEQ_K, 0, 2, 0xffff_ffff),
        op(LD_W_ABS, 0, 0, 20),
        op(JEQ_K, 1, 0, 0xffff_ffff),
        op(RET_K, 0, 0, 0),
        op(RET_K, 0, 0, ACCEPT),
    ]);
    p
}

/// Attach (or replace, atomically) the filter for `blocked` on `fd`.
pub fn attach(fd: BorrowedFd<'_>, blocked: &[u32]) -> io::Result<()> {
    let prog = program(blocked);
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` points at `prog`, alive for the call; the kernel copies the program.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &fprog as *const libc::sock_fprog as *const libc::c_void,
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixDatagram;
    use varta_core::wire::{Frame, Status};

    fn frame(pid: u32, status: Status, nonce: u64) -> [u8; 32] {
        Frame {
            status,
            pid,
            timestamp: 1,
            nonce,
            payload: 0,
        }
        .to_bytes()
        .unwrap()
    }

    #[test]
    fn the_kernel_drops_only_ordinary_frames_of_blocked_pids() {
        let (rx, tx) = UnixDatagram::pair().unwrap();
        rx.set_nonblocking(true).unwrap();
        attach(rx.as_fd(), &[7, 9]).unwrap();
        let sent: Vec<(&str, Vec<u8>, bool)> = vec![
            ("blocked ok", frame(7, Status::Ok, 1).to_vec(), false),
            (
                "blocked degraded",
                frame(9, Status::Degraded, 2).to_vec(),
                false,
            ),
            (
                "blocked critical",
                frame(7, Status::Critical, 3).to_vec(),
                true,
            ),
            (
                "blocked terminal",
                frame(9, Status::Critical, u64::MAX).to_vec(),
                true,
            ),
            ("other pid", frame(8, Status::Ok, 1).to_vec(), true),
            ("short garbage", b"hello".to_vec(), true),
            ("long garbage", vec![7u8; 64], true),
        ];
        for (_, bytes, _) in &sent {
            // A dropped frame still "succeeds" for the sender: it never took a queue slot.
            assert_eq!(tx.send(bytes).unwrap(), bytes.len());
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 128];
        while let Ok(n) = rx.recv(&mut buf) {
            got.push(buf[..n].to_vec());
        }
        let want: Vec<Vec<u8>> = sent
            .iter()
            .filter(|(_, _, pass)| *pass)
            .map(|(_, b, _)| b.clone())
            .collect();
        assert_eq!(got, want);
        // Lifting the block lets everything through again.
        attach(rx.as_fd(), &[]).unwrap();
        tx.send(&frame(7, Status::Ok, 4)).unwrap();
        assert_eq!(rx.recv(&mut buf).unwrap(), 32);
    }

    #[test]
    fn a_flooding_pid_is_blocked_for_a_while_then_let_in_again() {
        let t0 = Instant::from_nanos(1_000_000_000);
        let mut g = FloodGuard::new(FloodPolicy::DEFAULT);
        // A 100 Hz agent is never blocked.
        for i in 0..300u64 {
            assert!(!g.note(5, t0 + Duration::from_millis(i * 10)));
        }
        // 201 datagrams within 100 ms block it.
        let t1 = t0 + Duration::from_secs(10);
        let newly: Vec<bool> = (0..201).map(|_| g.note(6, t1)).collect();
        assert_eq!(newly.iter().filter(|b| **b).count(), 1);
        assert!(newly[200]);
        assert_eq!(g.blocked(), vec![6]);
        assert_eq!(g.next_due(), Some(t1 + Duration::from_millis(200)));
        assert!(!g.expire(t1 + Duration::from_millis(199)));
        assert!(g.expire(t1 + Duration::from_millis(200)));
        assert!(g.blocked().is_empty());
        // Off with limit 0.
        let mut off = FloodGuard::new(FloodPolicy {
            limit: 0,
            ..FloodPolicy::DEFAULT
        });
        assert!((0..10_000).all(|_| !off.note(6, t1)));
    }
}
