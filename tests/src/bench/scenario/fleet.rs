//! Real agent processes (section 6): drops and false stalls at 1 000 … 10 000 agents, with
//! the observer's CPU and wake-ups over the steady window (section 4) and the stall lateness
//! of ten extra agents that go silent during it (the plot's lateness against agent count).
//!
//! Every agent is its own process (`varta-bench agent`), sending non-blocking like the
//! published clients (a refused send is a drop, never retried), at a random phase, until a
//! common CLOCK_MONOTONIC deadline; each appends one summary line (`pid sent refused`) to a
//! shared file when it ends. The observer is stopped just after the deadline, before any
//! agent could look stalled, so every stall it reported of a beating agent is false.

use super::Ctx;
use crate::bench::load::mono_ns;
use crate::bench::procfs;
use crate::bench::report::{Better, PlotPoint};
use crate::bench::subject::{RunOpts, Subject};
use std::collections::HashSet;
use std::io;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const DROPS: &str = "6. Real agent processes: drops and false stalls";
const LOAD: &str = "4. Idle and steady load";
const STOPPERS: usize = 10;
const THRESHOLD_MS: u64 = 2000;

#[derive(Default)]
struct Outcome {
    cpu_pct: f64,
    wakeups_per_s: f64,
    attempts: u64,
    refused: u64,
    received: u64,
    false_stalls: u64,
    lateness: Vec<f64>,
}

fn spawn_agent(
    ctx: &Ctx,
    socket: &std::path::Path,
    interval_ms: u64,
    until: u64,
    silent_at: Option<u64>,
    report: &std::path::Path,
) -> io::Result<Child> {
    let mut c = Command::new(&ctx.exe);
    c.arg("agent")
        .arg("--socket")
        .arg(socket)
        .args([
            "--interval-ms",
            &interval_ms.to_string(),
            "--until-ns",
            &until.to_string(),
        ])
        .arg("--report")
        .arg(report);
    if let Some(t) = silent_at {
        c.args(["--silent-at-ns", &t.to_string()]);
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

fn one(
    ctx: &Ctx,
    s: &Subject,
    agents: usize,
    interval_ms: u64,
    window: Duration,
) -> io::Result<Outcome> {
    let mut obs = s.start(&RunOpts {
        threshold_ms: THRESHOLD_MS,
        capacity: (agents + STOPPERS) as u32,
        export: true,
        ..RunOpts::default()
    })?;
    let report = obs.dir.path().join("agents.txt");
    // Spawning 10 000 processes takes a while: the deadline is set from a measured rate.
    let spawn_budget = Duration::from_millis(200 + agents as u64 * 3);
    let until = mono_ns() + (spawn_budget + Duration::from_secs(2) + window).as_nanos() as u64;
    let mut children = Vec::with_capacity(agents + STOPPERS);
    for _ in 0..agents {
        children.push(spawn_agent(
            ctx,
            &obs.socket,
            interval_ms,
            until,
            None,
            &report,
        )?);
    }
    let spawned = mono_ns();
    let window_start = until - window.as_nanos() as u64;
    if spawned + 1_000_000_000 > window_start {
        return Err(io::Error::other(format!(
            "spawning {agents} agents took too long"
        )));
    }
    let mut stopper_pids = HashSet::new();
    for i in 0..STOPPERS {
        // Silent from early in the window, so each stall falls inside it.
        let step = (window.as_nanos() as u64).saturating_sub((THRESHOLD_MS + 500) * 1_000_000)
            / STOPPERS as u64;
        let at = window_start + i as u64 * step;
        let c = spawn_agent(
            ctx,
            &obs.socket,
            interval_ms.min(THRESHOLD_MS / 4),
            until,
            Some(at),
            &report,
        )?;
        stopper_pids.insert(c.id());
        children.push(c);
    }
    std::thread::sleep(Duration::from_nanos(window_start.saturating_sub(mono_ns())));
    let u0 = procfs::usage(obs.pid())?;
    let t0 = mono_ns();
    std::thread::sleep(Duration::from_nanos(until.saturating_sub(mono_ns())));
    let u = procfs::usage(obs.pid())?.since(u0);
    let secs = (mono_ns() - t0) as f64 / 1e9;
    for c in children.iter_mut() {
        c.wait()?;
    }
    // Everything sent is queued by now; let the observer read it, then stop it well
    // before the threshold could pass for anyone.
    std::thread::sleep(Duration::from_millis(300));
    obs.stop();
    let mut o = Outcome {
        cpu_pct: u.cpu_ns as f64 / (secs * 1e7),
        wakeups_per_s: u.wakeups as f64 / secs,
        ..Outcome::default()
    };
    for l in std::fs::read_to_string(&report)?.lines() {
        let w: Vec<u64> = l
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if w.len() == 3 {
            o.attempts += w[1] + w[2];
            o.refused += w[2];
        }
    }
    let rows = obs.rows();
    for r in &rows {
        match r.kind.as_str() {
            "beat" => o.received += 1,
            "stall" if !stopper_pids.contains(&r.pid) => o.false_stalls += 1,
            _ => {}
        }
    }
    for &pid in &stopper_pids {
        let last = rows
            .iter()
            .filter(|r| r.pid == pid && r.kind == "beat")
            .map(|r| r.ns)
            .max();
        let stall = rows
            .iter()
            .filter(|r| r.pid == pid && r.kind == "stall")
            .map(|r| r.ns)
            .min();
        if let (Some(b), Some(st)) = (last, stall) {
            o.lateness
                .push(st.saturating_sub(b) as f64 / 1e6 - THRESHOLD_MS as f64);
        }
    }
    Ok(o)
}

/// Measure each fleet size.
pub fn run(ctx: &mut Ctx) {
    let cases: &[(usize, u64)] = if ctx.quick {
        &[(200, 500)]
    } else {
        &[(1000, 500), (1000, 100), (4096, 500), (10000, 500)]
    };
    let window = Duration::from_secs(if ctx.quick { 3 } else { 10 });
    for &(n, every) in cases {
        let mut plot = [Vec::new(), Vec::new()];
        let s = ctx.pooled(1, "fleet", |s| {
            let o = one(ctx, s, n, every, window)?;
            let lost = o.attempts.saturating_sub(o.received);
            let i = usize::from(s.kind != crate::bench::subject::Kind::Ours);
            plot[i].push((o.cpu_pct, o.lateness.clone()));
            Ok(Some([
                vec![o.cpu_pct],
                vec![o.wakeups_per_s],
                vec![100.0 * lost as f64 / o.attempts.max(1) as f64],
                vec![o.refused as f64],
                vec![o.false_stalls as f64],
                o.lateness,
            ]))
        });
        let case = format!("{n} agents @ {every} ms");
        let w = format!("{} s window, threshold {THRESHOLD_MS} ms", window.as_secs());
        ctx.row(
            LOAD,
            format!("CPU, {case}"),
            "% core",
            Better::Lower,
            &s[0],
            w.clone(),
        );
        ctx.row(
            LOAD,
            format!("wake-ups per second, {case}"),
            "1/s",
            Better::Lower,
            &s[1],
            "",
        );
        ctx.row(
            DROPS,
            format!("beats lost, {case}"),
            "% of sent",
            Better::Lower,
            &s[2],
            "refused by the kernel or never reported",
        );
        ctx.row(
            DROPS,
            format!("sends refused (EAGAIN), {case}"),
            "sends",
            Better::Lower,
            &s[3],
            format!("net.unix.max_dgram_qlen = {}", qlen()),
        );
        ctx.row(
            DROPS,
            format!("false stalls, {case}"),
            "stalls",
            Better::Lower,
            &s[4],
            w,
        );
        ctx.row(
            DROPS,
            format!("stall lateness under load, {case}"),
            "ms",
            Better::Lower,
            &s[5],
            format!("{STOPPERS} agents go silent"),
        );
        if every == 500 {
            for (i, runs) in plot.iter().enumerate() {
                for (cpu, late) in runs {
                    ctx.report.plot.push(PlotPoint {
                        agents: n as u32,
                        ours: i == 0,
                        lateness_ms: crate::bench::stats::Stat::of(late).map(|s| s.median),
                        cpu_pct: Some(*cpu),
                    });
                }
            }
        }
    }
}

fn qlen() -> String {
    std::fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".into())
}
