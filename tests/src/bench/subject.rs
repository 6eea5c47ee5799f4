//! The two observers under test, how each is started with the same settings, and how the
//! published one is installed from crates.io into a scratch directory.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The published release compared against.
pub const PUBLISHED: &str = "0.2.0";

/// Which observer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// This project's `varta-watch`.
    Ours,
    /// The published `varta-watch` 0.2.0.
    Published,
}

/// An observer binary.
#[derive(Clone, Debug)]
pub struct Subject {
    /// Which one.
    pub kind: Kind,
    /// Binary (default build).
    pub bin: PathBuf,
    /// Binary able to serve /metrics (ours: the same; published: `prometheus-exporter`).
    pub prom_bin: PathBuf,
}

/// How to run an observer for one measurement.
#[derive(Clone, Debug, Default)]
pub struct RunOpts {
    /// Stall threshold, ms.
    pub threshold_ms: u64,
    /// Agents to make room for.
    pub capacity: u32,
    /// Write the event export.
    pub export: bool,
    /// Serve /metrics on this loopback port (with a bearer token).
    pub prom_port: Option<u16>,
    /// Recovery command (split on blanks by both observers; `{pid}` substituted).
    pub recovery: Option<String>,
    /// Prefix the command (e.g. valgrind).
    pub wrapper: Vec<String>,
}

/// 64 hex characters: the bearer token the published observer insists on.
pub const TOKEN: &str = "5f3c9a1e7b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a";

/// A running observer; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Running {
    /// The process (valgrind's when wrapped; it is the same pid as the observer).
    pub child: Child,
    /// Scratch directory.
    pub dir: tempfile::TempDir,
    /// Data socket.
    pub socket: PathBuf,
    /// Event export (if asked for).
    pub export: PathBuf,
    /// Control socket (ours only).
    pub control: PathBuf,
    /// Log (stderr) of the observer.
    pub log: PathBuf,
}

impl Subject {
    /// Short name for tables.
    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Ours => "varta",
            Kind::Published => "published",
        }
    }

    /// Start with `o`; waits until the socket exists.
    pub fn start(&self, o: &RunOpts) -> io::Result<Running> {
        let dir = tempfile::Builder::new().prefix("varta-bench").tempdir()?;
        let socket = dir.path().join("v.sock");
        let export = dir.path().join("events.tsv");
        let control = dir.path().join("v.ctl");
        let log = dir.path().join("observer.log");
        let bin = if o.prom_port.is_some() {
            &self.prom_bin
        } else {
            &self.bin
        };
        let mut args: Vec<String> = Vec::new();
        args.extend(o.wrapper.iter().cloned());
        args.push(bin.display().to_string());
        let s = |p: &Path| p.display().to_string();
        args.extend([
            "--socket".into(),
            s(&socket),
            "--threshold-ms".into(),
            o.threshold_ms.to_string(),
        ]);
        match self.kind {
            Kind::Ours => {
                // The capacity asked for (exact); the kernel flood filter is off
                // so a blocking sender's frames all reach the observer (speed, not policy).
                args.extend([
                    "--tracker-capacity".into(),
                    o.capacity.max(1).to_string(),
                    "--flood-limit".into(),
                    "0".into(),
                    "--control-socket".into(),
                    s(&control),
                    "--log-level".into(),
                    "warn".into(),
                ]);
            }
            Kind::Published => {
                // Its limiters off, its capacity at the 4 096 it clamps to anyway.
                args.extend([
                    "--tracker-capacity".into(),
                    o.capacity.clamp(1, 4096).to_string(),
                    "--max-beat-rate".into(),
                    "0".into(),
                    "--global-beat-rate".into(),
                    "0".into(),
                ]);
            }
        }
        if o.export {
            args.extend(["--export-file".into(), s(&export)]);
        }
        if let Some(port) = o.prom_port {
            let token = dir.path().join("token");
            std::fs::write(&token, TOKEN)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600))?;
            args.extend([
                "--prom-addr".into(),
                format!("127.0.0.1:{port}"),
                "--prom-token-file".into(),
                s(&token),
            ]);
        }
        if let Some(cmd) = &o.recovery {
            args.extend(["--recovery-exec".into(), cmd.clone()]);
        }
        let child = Command::new(&args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        let mut r = Running {
            child,
            dir,
            socket,
            export,
            control,
            log,
        };
        // valgrind takes a while to start a program.
        let end = Instant::now() + Duration::from_secs(if o.wrapper.is_empty() { 10 } else { 120 });
        while !r.socket.exists() {
            if let Ok(Some(st)) = r.child.try_wait() {
                let log = std::fs::read_to_string(&r.log).unwrap_or_default();
                return Err(io::Error::other(format!(
                    "{} exited ({st}) before binding: {log}",
                    self.name()
                )));
            }
            if Instant::now() > end {
                r.stop();
                return Err(io::Error::other(format!(
                    "{} did not bind its socket",
                    self.name()
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(r)
    }
}

impl Running {
    /// Observer pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, wait (both flush their export on an orderly stop), SIGKILL after 20 s.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Rows of the export file (call after [`Running::stop`]).
    pub fn rows(&self) -> Vec<crate::Row> {
        crate::read_rows(&self.export)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
        // VARTA_BENCH_KEEP=1 keeps each run's directory (export, log) for a closer look.
        if std::env::var_os("VARTA_BENCH_KEEP").is_some() {
            let dir = std::mem::replace(&mut self.dir, tempfile::TempDir::new().expect("tempdir"));
            eprintln!("  kept {}", dir.keep().display());
        }
    }
}

/// The published observer's binaries under `root`, installed with `cargo install` when
/// missing (default build in `root/default`, with /metrics in `root/prom`).
pub fn install_published(root: &Path) -> io::Result<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for (dir, features) in [("default", None), ("prom", Some("prometheus-exporter"))] {
        let r = root.join(dir);
        let bin = r.join("bin/varta-watch");
        if !bin.exists() {
            eprintln!(
                "installing the published varta-watch {PUBLISHED} ({dir}) into {}",
                r.display()
            );
            let mut c = cargo_install(&r, features);
            let st = c.status()?;
            if !st.success() || !bin.exists() {
                return Err(io::Error::other(format!(
                    "cargo install varta-watch {PUBLISHED} failed ({st})"
                )));
            }
        }
        out.push(bin);
    }
    Ok((out[0].clone(), out[1].clone()))
}

/// `cargo install` of the published observer into `root` (with `features`, if any).
pub fn cargo_install(root: &Path, features: Option<&str>) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut c = Command::new(cargo);
    c.args([
        "install",
        "--locked",
        "varta-watch",
        "--version",
        PUBLISHED,
        "--root",
    ])
    .arg(root);
    if let Some(f) = features {
        c.args(["--features", f]);
    }
    c
}
