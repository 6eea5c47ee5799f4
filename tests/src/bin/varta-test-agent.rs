//! A scriptable VLP agent for black-box tests: beats over a Unix datagram socket, then does
//! what it is told (hang, exit, send a terminal frame, restart its session, flood, spoof).

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};
use varta_core::wire::{Frame, Status};

#[derive(Debug)]
struct Args {
    socket: String,
    interval: Duration,
    beats: u64,
    status: Status,
    after: String,
    spoof_pid: Option<u32>,
    start_nonce: u64,
    duration: Duration,
    payload: u32,
    pause: Duration,
    /// Retry a send the kernel refused (receive queue full) instead of dropping it.
    retry: bool,
}

fn parse() -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;
    let mut a = Args {
        socket: String::new(),
        interval: Duration::from_millis(100),
        beats: u64::MAX,
        status: Status::Ok,
        after: "exit".into(),
        spoof_pid: None,
        start_nonce: 1,
        duration: Duration::from_secs(10),
        payload: 0,
        pause: Duration::from_secs(1),
        retry: false,
    };
    let mut p = lexopt::Parser::from_env();
    while let Some(arg) = p.next()? {
        match arg {
            Long("socket") => a.socket = p.value()?.string()?,
            Long("interval-ms") => a.interval = Duration::from_millis(p.value()?.parse()?),
            Long("beats") => a.beats = p.value()?.parse()?,
            Long("status") => {
                a.status = match p.value()?.string()?.as_str() {
                    "ok" => Status::Ok,
                    "degraded" => Status::Degraded,
                    "critical" => Status::Critical,
                    other => return Err(format!("bad status {other}").into()),
                }
            }
            Long("after") => a.after = p.value()?.string()?,
            Long("spoof-pid") => a.spoof_pid = Some(p.value()?.parse()?),
            Long("start-nonce") => a.start_nonce = p.value()?.parse()?,
            Long("duration-ms") => a.duration = Duration::from_millis(p.value()?.parse()?),
            Long("payload") => a.payload = p.value()?.parse()?,
            Long("retry-eagain") => a.retry = true,
            Long("pause-ms") => a.pause = Duration::from_millis(p.value()?.parse()?),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(a)
}

struct Agent {
    sock: UnixDatagram,
    pid: u32,
    nonce: u64,
    epoch: Instant,
    sent: u64,
    dropped: u64,
    retry: bool,
}

impl Agent {
    fn send(&mut self, status: Status, nonce: u64, payload: u32, retry: bool) {
        let f = Frame {
            status,
            pid: self.pid,
            timestamp: self.epoch.elapsed().as_nanos() as u64,
            nonce,
            payload,
        };
        let bytes = f.to_bytes().expect("valid frame");
        loop {
            match self.sock.send(&bytes) {
                Ok(_) => {
                    self.sent += 1;
                    return;
                }
                Err(_) if retry => std::thread::sleep(Duration::from_micros(200)),
                Err(_) => {
                    self.dropped += 1;
                    return;
                }
            }
        }
    }
    fn beat(&mut self, status: Status, payload: u32) {
        let n = self.nonce;
        let retry = self.retry;
        self.send(status, n, payload, retry);
        self.nonce = if self.nonce == u64::MAX - 1 {
            0
        } else {
            self.nonce + 1
        };
    }
}

fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("varta-test-agent: {e}");
            std::process::exit(2);
        }
    };
    let sock = UnixDatagram::unbound().expect("socket");
    sock.connect(&a.socket).expect("connect to observer");
    sock.set_nonblocking(true).expect("nonblocking");
    let mut ag = Agent {
        sock,
        pid: a.spoof_pid.unwrap_or_else(std::process::id),
        nonce: a.start_nonce,
        epoch: Instant::now(),
        sent: 0,
        dropped: 0,
        retry: a.retry,
    };
    let mut n = 0;
    while n < a.beats {
        ag.beat(a.status, a.payload);
        n += 1;
        std::thread::sleep(a.interval);
    }
    match a.after.as_str() {
        "exit" => {}
        "hang" => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        "terminal" => {
            let p = a.payload;
            ag.send(Status::Critical, u64::MAX, p, true);
        }
        "critical" => {
            ag.beat(Status::Critical, a.payload);
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        "pause" => {
            std::thread::sleep(a.pause);
            loop {
                ag.beat(a.status, a.payload);
                std::thread::sleep(a.interval);
            }
        }
        "restart" => {
            ag.nonce = 1;
            loop {
                ag.beat(a.status, a.payload);
                std::thread::sleep(a.interval);
            }
        }
        "flood" => {
            let end = Instant::now() + a.duration;
            while Instant::now() < end {
                for _ in 0..256 {
                    ag.beat(Status::Ok, 0);
                }
            }
        }
        other => {
            eprintln!("varta-test-agent: unknown --after {other}");
            std::process::exit(2);
        }
    }
    eprintln!("sent={} dropped={}", ag.sent, ag.dropped);
}
