//! 2. Observer CPU per beat with one blocking sender, and 3. syscalls per beat.
//!
//! CPU: the sender (this process, as itself) registers, then sends as fast as a blocking
//! socket lets it; the observer's on-CPU time over the whole burst (until it has read the
//! last frame) ÷ frames. Ours is asked afterwards how many beats it accepted, so a figure
//! never counts frames it dropped.
//!
//! Syscalls: `strace -c -f` attached to the observer while beats arrive one at a time (each
//! sent after the previous was read, so every beat is a wake-up): calls ÷ beats.

use super::Ctx;
use crate::bench::load::{frame, Sender};
use crate::bench::procfs;
use crate::bench::report::Better;
use crate::bench::subject::{Kind, RunOpts, Running, Subject};
use std::io;
use std::process::{Command, Stdio};
use std::time::Duration;
use varta_core::wire::Status;

const CPU: &str = "2. Observer CPU per beat, one blocking sender";
const SYS: &str = "3. Syscalls per beat (one beat per wake-up)";

fn opts(prom: bool) -> RunOpts {
    RunOpts {
        threshold_ms: 2000,
        capacity: 1024,
        prom_port: prom.then(|| free_port().unwrap_or(19187)),
        ..RunOpts::default()
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> Option<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()
        .map(|a| a.port())
}

/// Beats ours reports having accepted from `pid` (None for the published observer).
fn accepted(s: &Subject, obs: &Running, pid: u32) -> Option<u64> {
    if s.kind != Kind::Ours {
        return None;
    }
    let out = Command::new(&s.bin)
        .args(["status", "--json", "--control-socket"])
        .arg(&obs.control)
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["agents"]
        .as_array()?
        .iter()
        .find(|a| a["pid"].as_u64() == Some(pid as u64))?["beats"]
        .as_u64()
}

/// An observer with this process registered as its one agent (nonce 1 sent and read).
fn registered(s: &Subject, prom: bool) -> io::Result<(Running, Sender, u32)> {
    let obs = s.start(&opts(prom))?;
    let tx = Sender::connect(&obs.socket)?;
    let me = std::process::id();
    tx.send(&frame(me, 1, Status::Ok))?;
    tx.wait_read(Duration::from_secs(5));
    Ok((obs, tx, me))
}

fn burst(s: &Subject, prom: bool, frames: u64) -> io::Result<Option<[f64; 2]>> {
    let (mut obs, tx, me) = registered(s, prom)?;
    std::thread::sleep(Duration::from_millis(200));
    let u0 = procfs::usage(obs.pid())?;
    for i in 0..frames {
        tx.send(&frame(me, 2 + i, Status::Ok))?;
    }
    if !tx.wait_read(Duration::from_secs(30)) {
        return Err(io::Error::other("observer did not read the burst"));
    }
    let used = procfs::usage(obs.pid())?.since(u0);
    if let Some(n) = accepted(s, &obs, me) {
        if n != frames + 1 {
            return Err(io::Error::other(format!(
                "accepted {n} of {} beats",
                frames + 1
            )));
        }
    }
    obs.stop();
    let ns = used.cpu_ns as f64 / frames as f64;
    Ok(Some([ns / 1000.0, 1e9 / ns]))
}

fn strace_count(s: &Subject, prom: bool, beats: u64) -> io::Result<Option<[f64; 1]>> {
    let (mut obs, tx, me) = registered(s, prom)?;
    let out = obs.dir.path().join("strace.txt");
    let mut st = Command::new("strace")
        .args(["-f", "-c", "-q", "-o"])
        .arg(&out)
        .args(["-p", &obs.pid().to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..beats {
        tx.send(&frame(me, 2 + i, Status::Ok))?;
        if !tx.wait_read(Duration::from_secs(5)) {
            return Err(io::Error::other("observer stopped reading"));
        }
    }
    if let Some(pid) = rustix::process::Pid::from_raw(st.id() as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
    }
    st.wait()?;
    obs.stop();
    let text = std::fs::read_to_string(&out)?;
    let total = strace_total(&text).ok_or_else(|| io::Error::other("no strace total"))?;
    Ok(Some([total as f64 / beats as f64]))
}

/// The `calls` column of strace -c's `total` line.
pub fn strace_total(text: &str) -> Option<u64> {
    let l = text.lines().find(|l| l.trim_end().ends_with("total"))?;
    l.split_whitespace().nth(3)?.parse().ok()
}

/// Both measurements, default build and with /metrics.
pub fn run(ctx: &mut Ctx) {
    let frames = if ctx.quick { 20_000 } else { 200_000 };
    for prom in [false, true] {
        let label = if prom {
            "with /metrics"
        } else {
            "default build"
        };
        let s = ctx.interleaved(ctx.reps, "cpu per beat", |s| burst(s, prom, frames));
        ctx.row(
            CPU,
            format!("CPU per beat, {label}"),
            "µs",
            Better::Lower,
            &s[0],
            format!("{frames} frames"),
        );
        ctx.row(
            CPU,
            format!("beats per CPU-second, {label}"),
            "beats/s",
            Better::Higher,
            &s[1],
            "",
        );
    }
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("  syscalls: skipped (strace not installed)");
        return;
    }
    let beats = if ctx.quick { 300 } else { 2000 };
    for prom in [false, true] {
        let label = if prom {
            "with /metrics"
        } else {
            "default build"
        };
        let s = ctx.interleaved(ctx.reps.min(3), "syscalls", |s| {
            strace_count(s, prom, beats)
        });
        ctx.row(
            SYS,
            format!("syscalls per beat, {label}"),
            "calls",
            Better::Lower,
            &s[0],
            format!("{beats} beats, strace -c -f"),
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_strace_totals() {
        let t = "% time     seconds  usecs/call     calls    errors syscall\n\
                 ------ ----------- ----------- --------- --------- ----------------\n\
                  60.00    0.000300           1       300           recvmsg\n\
                 ------ ----------- ----------- --------- --------- ----------------\n\
                 100.00    0.000500           1       612        12 total\n";
        assert_eq!(super::strace_total(t), Some(612));
        assert_eq!(super::strace_total("nothing"), None);
    }
}
