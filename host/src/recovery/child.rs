//! One running recovery command: spawned in its own process group with a cleared
//! environment, stdin from /dev/null and stdout+stderr into one non-blocking pipe that the
//! event loop reads line by line (bounded). Reaped with `try_wait` when SIGCHLD arrives;
//! stopped with SIGTERM, then SIGKILL, to the whole process group.

use rustix::process::{kill_process_group, Pid, Signal};
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use varta_core::policy::recovery::ChildOutcome;
use varta_core::time::Instant;

/// Longest output line logged (longer lines are cut).
pub const MAX_LINE: usize = 512;
/// Most output lines logged per command; the rest are counted.
pub const MAX_LINES: u32 = 100;
/// Most bytes read from one command's output per wake-up (the pipe stays readable, so the
/// rest is read on the next one, after other fds were served).
const READ_BUDGET: usize = 64 << 10;

/// How to start a command.
#[derive(Clone, Debug)]
pub struct SpawnSpec {
    /// Program and arguments, placeholders already substituted.
    pub argv: Vec<String>,
    /// The complete environment.
    pub env: Vec<(OsString, OsString)>,
    /// Working directory (None: `/`).
    pub cwd: Option<PathBuf>,
    /// Run as this uid/gid (supplementary groups are dropped).
    pub user: Option<(u32, u32)>,
}

/// A started command.
#[derive(Debug)]
pub struct RunningChild {
    child: Child,
    output: Option<OwnedFd>,
    /// When it was started.
    pub started: Instant,
    /// SIGTERM went out (timeout).
    pub term_sent: bool,
    /// SIGKILL went out.
    pub kill_sent: bool,
    label: String,
    partial: Vec<u8>,
    lines_logged: u32,
    /// Output lines not logged (over [`MAX_LINES`]).
    pub lines_dropped: u64,
    /// Output bytes read.
    pub bytes_read: u64,
}

impl RunningChild {
    /// Start `spec`. `label` prefixes its output lines in the log. Fails with the OS error of
    /// the exec (ENOENT, EACCES, ...) without leaving anything behind.
    pub fn spawn(spec: &SpawnSpec, label: String, now: Instant) -> io::Result<Self> {
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        rustix::io::ioctl_fionbio(&read, true)?;
        let write2 = rustix::io::fcntl_dupfd_cloexec(&write, 0)?;
        let program = spec
            .argv
            .first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty argv"))?;
        let mut cmd = Command::new(program);
        cmd.args(&spec.argv[1..])
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(write))
            .stderr(Stdio::from(write2))
            .current_dir(spec.cwd.as_deref().unwrap_or("/".as_ref()))
            .process_group(0);
        if let Some((uid, gid)) = spec.user {
            cmd.gid(gid).uid(uid);
        }
        let child = cmd.spawn()?;
        // `cmd` still holds our copies of the write end; drop it so EOF arrives when the
        // command (and anything it left running) closes its output.
        drop(cmd);
        Ok(RunningChild {
            child,
            output: Some(read),
            started: now,
            term_sent: false,
            kill_sent: false,
            label,
            partial: Vec::new(),
            lines_logged: 0,
            lines_dropped: 0,
            bytes_read: 0,
        })
    }

    /// The command's pid (also its process group).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The output pipe, while open.
    pub fn output_fd(&self) -> Option<BorrowedFd<'_>> {
        self.output.as_ref().map(|f| f.as_fd())
    }

    /// Read what the command wrote (up to a budget) and log complete lines. Returns false
    /// once the pipe is at EOF and has been closed (the caller stops polling it).
    pub fn read_output(&mut self) -> bool {
        let Some(fd) = self.output.take() else {
            return false;
        };
        let mut buf = [0u8; 16 << 10];
        let mut budget = READ_BUDGET;
        let mut eof = false;
        while budget > 0 {
            match rustix::io::read(&fd, &mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    self.bytes_read += n as u64;
                    self.take_lines(&buf[..n]);
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => break,
                Err(e) => {
                    log::warn!("{}: reading output: {}", self.label, e);
                    eof = true;
                    break;
                }
            }
        }
        if eof {
            if !self.partial.is_empty() {
                let rest = std::mem::take(&mut self.partial);
                self.log_line(&rest);
            }
            return false;
        }
        self.output = Some(fd);
        true
    }

    fn take_lines(&mut self, mut data: &[u8]) {
        while let Some(i) = data.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                self.log_line(&data[..i]);
            } else {
                let room = MAX_LINE.saturating_sub(self.partial.len());
                self.partial.extend_from_slice(&data[..i.min(room)]);
                let line = std::mem::take(&mut self.partial);
                self.log_line(&line);
            }
            data = &data[i + 1..];
        }
        // Keep at most MAX_LINE bytes of an unfinished line; the rest of it is cut.
        let room = MAX_LINE.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&data[..data.len().min(room)]);
    }

    fn log_line(&mut self, line: &[u8]) {
        if self.lines_logged >= MAX_LINES {
            self.lines_dropped += 1;
            return;
        }
        self.lines_logged += 1;
        let cut = &line[..line.len().min(MAX_LINE)];
        let text = String::from_utf8_lossy(cut);
        let more = if line.len() > MAX_LINE { " [...]" } else { "" };
        log::info!("{}: {}{}", self.label, text.trim_end_matches('\r'), more);
    }

    /// Reap if it has exited. The outcome says whether the observer had to stop it.
    pub fn try_reap(&mut self) -> Option<ChildOutcome> {
        let status = match self.child.try_wait() {
            Ok(Some(s)) => s,
            Ok(None) => return None,
            Err(e) => {
                // ECHILD: someone else reaped it; there is nothing left to wait for.
                log::warn!("{}: wait: {}", self.label, e);
                return Some(ChildOutcome::Signaled { signal: 0 });
            }
        };
        Some(if self.term_sent {
            ChildOutcome::TimedOut {
                killed: self.kill_sent,
            }
        } else if let Some(code) = status.code() {
            ChildOutcome::Exited { code }
        } else {
            ChildOutcome::Signaled {
                signal: status.signal().unwrap_or(0),
            }
        })
    }

    /// Send SIGTERM (`kill == false`) or SIGKILL to the command's process group.
    pub fn stop(&mut self, kill: bool) {
        let sig = if kill { Signal::KILL } else { Signal::TERM };
        if kill {
            self.kill_sent = true;
        } else {
            self.term_sent = true;
        }
        // Not yet reaped, so the pid (and the group id) cannot have been reused.
        if let Some(pgid) = Pid::from_raw(self.child.id() as i32) {
            if let Err(e) = kill_process_group(pgid, sig) {
                if e != rustix::io::Errno::SRCH {
                    log::warn!("{}: signal {:?}: {}", self.label, sig, e);
                }
            }
        }
    }

    /// Output lines logged and dropped so far.
    pub fn lines(&self) -> (u32, u64) {
        (self.lines_logged, self.lines_dropped)
    }
}
