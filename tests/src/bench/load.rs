//! Load for the benchmarks: VLP v0.2 frames, a pool of kernel identities one sender can
//! speak for, and a connected datagram sender that can wait until the observer has read
//! everything it sent.
//!
//! The identity pool: every agent an observer tracks needs its own kernel-attested pid, and
//! tens of thousands of processes cost more than the thing measured. Threads are cheaper and
//! have ids of their own: with CAP_SYS_ADMIN a sender may put any existing task id into its
//! SCM_CREDENTIALS, so one process can beat for 65 536 threads parked in holder processes,
//! and an observer sees 65 536 agents with distinct pids, each with its own
//! `/proc/<tid>/stat` start time and `comm` (the thread's name). The scenarios that are
//! about real processes (fleet) use real processes instead.

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

/// Threads per holder process. `/proc/<tid>/stat` of a thread sums over its whole thread
/// group (20 ms for a 65 536-thread process, measured), and observers read it when an agent
/// registers: small holders keep that at a real process's cost.
pub const THREADS_PER_HOLDER: usize = 512;

/// Parked threads in this process (what a `varta-bench hold` process keeps).
pub struct Parked {
    /// Task ids, in creation order.
    pub tids: Vec<u32>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Parked {
    /// Park `n` threads named `a<first>`, `a<first+1>`, … (distinct names: observers name
    /// agents by `comm`, and recovery bookkeeping is per name).
    pub fn spawn(first: usize, n: usize) -> io::Result<Parked> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        // Built up in place, so a failure half-way stops and joins what was started.
        let mut pool = Parked {
            tids: Vec::with_capacity(n),
            stop: stop.clone(),
            threads: Vec::with_capacity(n),
        };
        for i in 0..n {
            let tx = tx.clone();
            let stop = stop.clone();
            let h = std::thread::Builder::new()
                .name(format!("a{}", first + i))
                .stack_size(32 * 1024)
                .spawn(move || {
                    tx.send((i, rustix::thread::gettid().as_raw_nonzero().get() as u32))
                        .ok();
                    drop(tx);
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::park();
                    }
                })
                .map_err(|e| io::Error::new(e.kind(), format!("thread {i} of {n}: {e}")))?;
            pool.threads.push(h);
        }
        drop(tx);
        pool.tids = vec![0u32; n];
        for (i, tid) in rx {
            pool.tids[i] = tid;
        }
        Ok(pool)
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.thread().unpark();
            t.join().ok();
        }
    }
}

/// `varta-bench hold FIRST N`: park N threads, print their task ids (one a line, then
/// `ready`), and keep them until standard input closes.
pub fn hold(args: &[String]) -> i32 {
    let (Some(first), Some(n)) = (
        args.first().and_then(|v| v.parse().ok()),
        args.get(1).and_then(|v| v.parse().ok()),
    ) else {
        eprintln!("usage: varta-bench hold FIRST N");
        return 2;
    };
    let parked = match Parked::spawn(first, n) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("varta-bench hold: {e}");
            return 1;
        }
    };
    let mut out = String::with_capacity(n * 8);
    for t in &parked.tids {
        out.push_str(&t.to_string());
        out.push('\n');
    }
    out.push_str("ready\n");
    use std::io::{Read, Write};
    if std::io::stdout()
        .write_all(out.as_bytes())
        .and_then(|_| std::io::stdout().flush())
        .is_err()
    {
        return 1;
    }
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(parked);
    0
}

/// Task ids of parked threads in holder processes, which the sender speaks for.
pub struct Identities {
    /// Task ids, in order (`a0`, `a1`, …).
    pub tids: Vec<u32>,
    holders: Vec<std::process::Child>,
}

impl Identities {
    /// `n` identities in holder processes of [`THREADS_PER_HOLDER`] threads, each a run of
    /// `exe hold FIRST N`.
    pub fn spawn(exe: &Path, n: usize) -> io::Result<Identities> {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let mut pool = Identities {
            tids: Vec::with_capacity(n),
            holders: Vec::new(),
        };
        let mut first = 0;
        while first < n {
            let count = THREADS_PER_HOLDER.min(n - first);
            let mut c = Command::new(exe)
                .args(["hold", &first.to_string(), &count.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()?;
            let out = c.stdout.take().expect("piped");
            pool.holders.push(c);
            let mut got = 0;
            for line in std::io::BufReader::new(out).lines() {
                let line = line?;
                if line == "ready" {
                    break;
                }
                pool.tids.push(line.parse().map_err(io::Error::other)?);
                got += 1;
            }
            if got != count {
                return Err(io::Error::other(format!(
                    "holder of a{first}…: {got} of {count} threads"
                )));
            }
            first += count;
        }
        Ok(pool)
    }
}

impl Drop for Identities {
    fn drop(&mut self) {
        for h in &mut self.holders {
            drop(h.stdin.take());
        }
        for h in &mut self.holders {
            let _ = h.wait();
        }
    }
}

/// Make sure the sysctl at `path` (under /proc/sys) is at least `min`, raising it when we
/// may (root); says what it did. Each identity thread is a task id (kernel.pid_max) and
/// takes a few memory mappings (vm.max_map_count).
pub fn ensure_sysctl(path: &str, min: u64) -> io::Result<()> {
    let cur: u64 = std::fs::read_to_string(path)?
        .trim()
        .parse()
        .map_err(io::Error::other)?;
    if cur >= min {
        return Ok(());
    }
    std::fs::write(path, min.to_string())
        .map_err(|e| io::Error::new(e.kind(), format!("{path} is {cur}, {min} needed: {e}")))?;
    println!("# raised {path} from {cur} to {min} for the identity pool");
    Ok(())
}

/// A sysctl (a file under /proc/sys) set to a value for a while: the value it had is
/// written back when the guard is dropped, on every way out of the scope that holds it
/// (return, `?`, panic; not a kill of the harness).
#[derive(Debug)]
pub struct SysctlGuard {
    path: std::path::PathBuf,
    previous: String,
}

impl SysctlGuard {
    /// Set `path` to `value` and check it reads back so (root only for /proc/sys).
    pub fn set(path: impl Into<std::path::PathBuf>, value: u64) -> io::Result<SysctlGuard> {
        let path = path.into();
        let previous = std::fs::read_to_string(&path)?.trim().to_owned();
        // A refused write changed nothing: no guard, nothing to restore.
        std::fs::write(&path, value.to_string()).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("writing {value} to {}: {e}", path.display()),
            )
        })?;
        let guard = SysctlGuard { path, previous };
        let now = guard.current()?;
        if now != value.to_string() {
            // `guard` drops here and writes the old value back.
            return Err(io::Error::other(format!(
                "{} reads {now} after writing {value}",
                guard.path.display()
            )));
        }
        Ok(guard)
    }

    /// The value it had before.
    pub fn previous(&self) -> &str {
        &self.previous
    }

    /// What it reads now.
    pub fn current(&self) -> io::Result<String> {
        Ok(std::fs::read_to_string(&self.path)?.trim().to_owned())
    }
}

impl Drop for SysctlGuard {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(&self.path, &self.previous) {
            eprintln!(
                "varta-bench: could not restore {} to {}: {e}",
                self.path.display(),
                self.previous
            );
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

#[cfg(test)]
mod tests {
    use super::SysctlGuard;

    #[test]
    fn sysctl_guard_restores_the_old_value() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("max_dgram_qlen");
        let read = || std::fs::read_to_string(&f).unwrap();
        std::fs::write(&f, "10\n").unwrap();
        {
            let g = SysctlGuard::set(&f, 512).unwrap();
            assert_eq!(g.previous(), "10");
            assert_eq!(g.current().unwrap(), "512");
            assert_eq!(read(), "512");
        }
        assert_eq!(read(), "10");
        // An early return with `?` restores it too.
        let early = || -> std::io::Result<()> {
            let _g = SysctlGuard::set(&f, 512)?;
            assert_eq!(read(), "512");
            Err(std::io::Error::other("the case failed"))
        };
        assert!(early().is_err());
        assert_eq!(read(), "10");
        // So does a panic.
        let r = std::panic::catch_unwind(|| {
            let _g = SysctlGuard::set(&f, 512).unwrap();
            panic!("the case panicked");
        });
        assert!(r.is_err());
        assert_eq!(read(), "10");
    }

    #[test]
    fn sysctl_guard_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        assert!(SysctlGuard::set(dir.path().join("missing"), 512).is_err());
        // A directory reads and writes as an error: nothing to restore, nothing created.
        assert!(SysctlGuard::set(dir.path(), 512).is_err());
    }
}
