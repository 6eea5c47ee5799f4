//! Load for the benchmarks: VLP v0.2 frames, a pool of kernel identities one sender can
//! speak for, and a connected datagram sender that can wait until the observer has read
//! everything it sent.
//!
//! The identity pool: every agent an observer tracks needs its own kernel-attested pid, and
//! tens of thousands of processes cost more than the thing measured. Threads are cheaper and
//! have ids of their own: with CAP_SYS_ADMIN a sender may put any existing task id into its
//! SCM_CREDENTIALS, so one process can beat for 65 536 parked threads, and an observer sees
//! 65 536 agents with distinct pids, each with its own `/proc/<tid>/stat` start time and
//! `comm` (the thread's name). The scenarios that are about real processes (fleet) use real
//! processes instead.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use varta_core::wire::{Frame, Status, FRAME_LEN};

/// An encoded frame for `pid` with `nonce`.
pub fn frame(pid: u32, nonce: u64, status: Status) -> [u8; FRAME_LEN] {
    Frame {
        status,
        pid,
        timestamp: 0,
        nonce,
        payload: 0,
    }
    .to_bytes()
    .expect("valid frame")
}

/// CLOCK_MONOTONIC now, in ns (the clock both our observer's export and the probes use).
pub fn mono_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Parked threads whose task ids serve as agent pids.
pub struct Identities {
    /// Task ids, in creation order.
    pub tids: Vec<u32>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Identities {
    /// Park `n` threads named `a0`, `a1`, … (distinct names: the observer names agents by
    /// `comm`, and recovery bookkeeping is per name).
    pub fn spawn(n: usize) -> io::Result<Identities> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let tx = tx.clone();
            let stop = stop.clone();
            let h = std::thread::Builder::new()
                .name(format!("a{i}"))
                .stack_size(32 * 1024)
                .spawn(move || {
                    tx.send((i, rustix::thread::gettid().as_raw_nonzero().get() as u32))
                        .ok();
                    drop(tx);
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::park();
                    }
                })?;
            threads.push(h);
        }
        drop(tx);
        let mut tids = vec![0u32; n];
        for (i, tid) in rx {
            tids[i] = tid;
        }
        Ok(Identities {
            tids,
            stop,
            threads,
        })
    }
}

impl Drop for Identities {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.thread().unpark();
            t.join().ok();
        }
    }
}

/// A blocking datagram socket connected to an observer.
pub struct Sender {
    sock: UnixDatagram,
    uid: rustix::process::Uid,
    gid: rustix::process::Gid,
}

impl Sender {
    /// Connect to `socket`.
    pub fn connect(socket: &Path) -> io::Result<Sender> {
        let sock = UnixDatagram::unbound()?;
        sock.connect(socket)?;
        Ok(Sender {
            sock,
            uid: rustix::process::geteuid(),
            gid: rustix::process::getegid(),
        })
    }

    /// Send `bytes` as ourselves (blocks while the observer's queue is full).
    pub fn send(&self, bytes: &[u8]) -> io::Result<()> {
        self.sock.send(bytes).map(drop)
    }

    /// Send `bytes` with `pid` in the credentials (needs CAP_SYS_ADMIN for another task).
    pub fn send_as(&self, pid: u32, bytes: &[u8]) -> io::Result<()> {
        use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, UCred};
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmCredentials(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        let pid = rustix::process::Pid::from_raw(pid as i32)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pid 0"))?;
        control.push(SendAncillaryMessage::ScmCredentials(UCred {
            pid,
            uid: self.uid,
            gid: self.gid,
        }));
        rustix::net::sendmsg(
            &self.sock,
            &[io::IoSlice::new(bytes)],
            &mut control,
            SendFlags::empty(),
        )?;
        Ok(())
    }

    /// Bytes we sent that the observer has not read yet (SIOCOUTQ: a Unix datagram stays
    /// charged to its sender until the receiver frees it).
    pub fn unread(&self) -> usize {
        let mut n: libc::c_int = 0;
        // SAFETY: SIOCOUTQ (== TIOCOUTQ) writes one int through the pointer, which is valid
        // for the duration of the call; the fd is our open socket.
        let r = unsafe { libc::ioctl(self.sock.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
        if r < 0 {
            0
        } else {
            n as usize
        }
    }

    /// Wait until the observer has read everything we sent; false after `timeout`.
    pub fn wait_read(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        let mut spins = 0u32;
        while self.unread() > 0 {
            if Instant::now() > end {
                return false;
            }
            spins += 1;
            if spins < 200 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        true
    }
}
