//! Harness for black-box tests: spawn an observer binary in a scratch directory, drive it
//! with test agents, and read back what it exported.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// One row of the event export (TSV: observer_ns kind pid nonce status payload).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Observer clock, ns.
    pub ns: u64,
    /// Event kind.
    pub kind: String,
    /// Agent pid (0 when none).
    pub pid: u32,
    /// Nonce column as written.
    pub nonce: String,
    /// Status column (status name or reject reason).
    pub status: String,
    /// Payload column as written.
    pub payload: String,
}

/// Parse an export file (missing file: no rows).
pub fn read_rows(path: &Path) -> Vec<Row> {
    let Ok(f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            if c.len() != 6 {
                return None;
            }
            Some(Row {
                ns: c[0].parse().ok()?,
                kind: c[1].to_owned(),
                pid: c[2].parse().unwrap_or(0),
                nonce: c[3].to_owned(),
                status: c[4].to_owned(),
                payload: c[5].to_owned(),
            })
        })
        .collect()
}

/// A running observer under test. Killed (SIGTERM, then SIGKILL) on drop.
pub struct Observer {
    /// The process.
    pub child: Child,
    /// Scratch directory holding its socket, control socket and export file.
    pub dir: tempfile::TempDir,
    /// Data socket.
    pub socket: PathBuf,
    /// Control socket.
    pub control: PathBuf,
    /// Event export file.
    pub export: PathBuf,
    /// The binary.
    pub bin: PathBuf,
}

impl Observer {
    /// Start `bin` with `--socket`, `--control-socket`, `--export-file` in a fresh
    /// directory plus `extra` flags, and wait until its socket exists.
    pub fn start(bin: &Path, extra: &[&str]) -> Observer {
        Self::start_with_env(bin, extra, &[])
    }

    /// [`Observer::start`] with extra environment variables.
    pub fn start_with_env(bin: &Path, extra: &[&str], env: &[(&str, &str)]) -> Observer {
        Self::start_via(&[], bin, extra, env)
    }

    /// [`Observer::start`] in a network namespace of its own whose Unix datagram sockets
    /// queue `qlen` datagrams (`net.unix.max_dgram_qlen` is per namespace, and a pathname
    /// socket is reachable from every namespace). Needs root and util-linux `unshare`;
    /// `None` without them.
    pub fn start_with_qlen(bin: &Path, qlen: u32, extra: &[&str]) -> Option<Observer> {
        let usable = rustix::process::geteuid().is_root()
            && Command::new("unshare")
                .args(["--net", "true"])
                .status()
                .is_ok_and(|s| s.success());
        if !usable {
            return None;
        }
        let script =
            format!("echo {qlen} > /proc/sys/net/unix/max_dgram_qlen && exec \"$0\" \"$@\"");
        let prefix = ["unshare", "--net", "--", "sh", "-c", script.as_str()];
        Some(Self::start_via(&prefix, bin, extra, &[]))
    }

    /// Start `bin` as the last word of `prefix` (a wrapper command), or directly.
    fn start_via(prefix: &[&str], bin: &Path, extra: &[&str], env: &[(&str, &str)]) -> Observer {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("varta.sock");
        let control = dir.path().join("varta.ctl");
        let export = dir.path().join("events.tsv");
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = cmd
            .arg("--socket")
            .arg(&socket)
            .arg("--control-socket")
            .arg(&control)
            .arg("--export-file")
            .arg(&export)
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn observer");
        let obs = Observer {
            child,
            dir,
            socket,
            control,
            export,
            bin: bin.to_path_buf(),
        };
        obs.wait_ready();
        obs
    }

    fn wait_ready(&self) {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if self.socket.exists() && self.control.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "observer did not create {} within 10 s",
            self.socket.display()
        );
    }

    /// Everything exported so far.
    pub fn rows(&self) -> Vec<Row> {
        read_rows(&self.export)
    }

    /// Wait until a row matching `pred` is exported (the export is flushed promptly).
    pub fn wait_row(&self, timeout: Duration, pred: impl Fn(&Row) -> bool) -> Option<Row> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(r) = self.rows().into_iter().find(|r| pred(r)) {
                return Some(r);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `status --json` through the control socket, parsed.
    pub fn status_json(&self) -> serde_json::Value {
        let out = Command::new(&self.bin)
            .args(["status", "--json", "--control-socket"])
            .arg(&self.control)
            .output()
            .expect("run status");
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    /// A datagram socket connected to the observer (for hand-made frames).
    pub fn raw_sender(&self) -> UnixDatagram {
        let s = UnixDatagram::unbound().unwrap();
        s.connect(&self.socket).unwrap();
        s
    }

    /// Rows of `kind`.
    pub fn rows_of(&self, kind: &str) -> Vec<Row> {
        self.rows().into_iter().filter(|r| r.kind == kind).collect()
    }

    /// SIGKILL, no cleanup (crash tests).
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stop with SIGTERM and wait (at most 10 s) for the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!("observer ignored SIGTERM for 10 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let pid = rustix::process::Pid::from_child(&self.child);
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            std::thread::sleep(Duration::from_millis(50));
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A spawned test agent, killed on drop.
pub struct Agent {
    /// The process.
    pub child: Child,
}

impl Agent {
    /// Start `bin` (varta-test-agent) against `socket` with `args`.
    pub fn start(bin: &Path, socket: &Path, args: &[&str]) -> Agent {
        let child = Command::new(bin)
            .arg("--socket")
            .arg(socket)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn agent");
        Agent { child }
    }

    /// The agent's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for it to exit and return its stderr.
    pub fn wait(mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut s);
        }
        let _ = self.child.wait();
        s
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `bin` with `args` to completion (for CLI error tests).
pub fn run(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run binary")
}

pub mod bench;
