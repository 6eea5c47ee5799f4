//! varta-beat: lets shell scripts be Varta agents.
//!
//! ```sh
//! # One long-lived agent fed by the script: one line = one beat.
//! exec 3> >(varta-beat --stdin)
//! while work; do echo ok >&3; done
//! echo "critical 42" >&3          # status and optional payload
//! ```
//!
//! A line is `ok`, `degraded` or `critical`, optionally followed by a payload (u32); an
//! empty line means `ok`. At end of input varta-beat exits (the observer sees the exit at
//! once through its pidfd) or, with `--on-eof terminal`, first sends the terminal frame.
//! Without `--stdin` it sends a single beat and exits (a reachability check).

use std::io::BufRead;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Instant;
use varta_core::wire::{Frame, Status};

const USAGE: &str =
    "usage: varta-beat [--socket PATH] [--status ok|degraded|critical] [--payload N]
       varta-beat --stdin [--socket PATH] [--on-eof exit|terminal]

Sends VLP v0.2 heartbeats to a varta-watch observer.
  --socket PATH   observer socket (default: $VARTA_SOCKET, else the observer's default path)
  --status S      status of the single beat (default ok)
  --payload N     payload of the single beat (default 0)
  --stdin         stay running; send one beat per input line (`ok`, `degraded`, `critical`,
                  each optionally followed by a payload; an empty line is `ok`)
  --on-eof MODE   at end of input: `exit` (default) or `terminal` (send the terminal frame:
                  tells the observer this agent is gone on purpose... or dying)
Exit status: 0 sent, 1 not delivered (observer absent or queue full), 2 usage error.";

fn parse_status(s: &str) -> Option<Status> {
    match s {
        "ok" | "" => Some(Status::Ok),
        "degraded" => Some(Status::Degraded),
        "critical" => Some(Status::Critical),
        _ => None,
    }
}

fn default_socket() -> PathBuf {
    if let Some(p) = std::env::var_os("VARTA_SOCKET") {
        return PathBuf::from(p);
    }
    varta_host::config::default_socket_path(&varta_host::config::Env::from_process())
}

struct Beater {
    sock: UnixDatagram,
    nonce: u64,
    epoch: Instant,
    pid: u32,
}

impl Beater {
    fn send(&mut self, status: Status, payload: u32, nonce: u64) -> std::io::Result<()> {
        let f = Frame {
            status,
            pid: self.pid,
            timestamp: self.epoch.elapsed().as_nanos() as u64,
            nonce,
            payload,
        };
        let bytes = f
            .to_bytes()
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        self.sock.send(&bytes).map(|_| ())
    }
    fn beat(&mut self, status: Status, payload: u32) -> std::io::Result<()> {
        let n = self.nonce;
        self.nonce = if n == u64::MAX - 1 { 0 } else { n + 1 };
        self.send(status, payload, n)
    }
}

fn main() {
    let mut socket = None;
    let mut status = Status::Ok;
    let mut payload = 0u32;
    let mut stdin_mode = false;
    let mut terminal_on_eof = false;
    let mut args = std::env::args().skip(1);
    let usage_err = |m: String| -> ! {
        eprintln!("varta-beat: {m}\n{USAGE}");
        std::process::exit(2)
    };
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (a.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .unwrap_or_else(|| usage_err(format!("{name} needs a value")))
        };
        match flag.as_str() {
            "--socket" => socket = Some(PathBuf::from(value("--socket"))),
            "--status" => {
                let v = value("--status");
                status = parse_status(&v).unwrap_or_else(|| usage_err(format!("bad status {v:?}")))
            }
            "--payload" => {
                let v = value("--payload");
                payload = v
                    .parse()
                    .unwrap_or_else(|_| usage_err(format!("bad payload {v:?}")))
            }
            "--stdin" => stdin_mode = true,
            "--on-eof" => match value("--on-eof").as_str() {
                "exit" => terminal_on_eof = false,
                "terminal" => terminal_on_eof = true,
                v => usage_err(format!("bad --on-eof {v:?}")),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => usage_err(format!("unknown argument {other:?}")),
        }
    }
    let path = socket.unwrap_or_else(default_socket);
    let sock = UnixDatagram::unbound().unwrap_or_else(|e| {
        eprintln!("varta-beat: socket: {e}");
        std::process::exit(1)
    });
    if let Err(e) = sock.connect(&path) {
        eprintln!(
            "varta-beat: cannot reach the observer at {}: {e}",
            path.display()
        );
        std::process::exit(1);
    }
    let _ = sock.set_nonblocking(true);
    let mut b = Beater {
        sock,
        nonce: 1,
        epoch: Instant::now(),
        pid: std::process::id(),
    };
    if !stdin_mode {
        if let Err(e) = b.beat(status, payload) {
            eprintln!("varta-beat: not delivered to {}: {e}", path.display());
            std::process::exit(1);
        }
        return;
    }
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        let s = words.next().unwrap_or("");
        let Some(st) = parse_status(s) else {
            eprintln!("varta-beat: ignoring line {line:?} (expected ok, degraded or critical)");
            continue;
        };
        let p = match words.next().map(str::parse::<u32>) {
            None => 0,
            Some(Ok(p)) => p,
            Some(Err(_)) => {
                eprintln!("varta-beat: ignoring line {line:?} (bad payload)");
                continue;
            }
        };
        if let Err(e) = b.beat(st, p) {
            eprintln!("varta-beat: beat dropped: {e}");
        }
    }
    if terminal_on_eof {
        let _ = b.send(Status::Critical, 0, u64::MAX);
    }
}
