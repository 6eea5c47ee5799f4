//! Real agent processes (section 6): drops and false stalls at 1 000 … 10 000 agents, with
//! the observer's CPU and wake-ups over the steady window (section 4) and the stall lateness
//! of ten extra agents that go silent during it (the plot's lateness against agent count).
//!
//! Every agent is its own process (`varta-bench agent`), sending non-blocking like the
//! published clients (a refused send is a drop, never retried), at a random phase, until a
//! common CLOCK_MONOTONIC deadline; each appends one summary line (`pid sent refused`, then
//! the same two counts over the steady window alone) to a shared file when it ends. A stall the observer reports before that deadline, of any agent
//! but the ten that go silent, is false: that agent was still beating. (Stopping the
//! observer at the deadline is not enough: ten thousand processes ending at once take
//! seconds to exit and be reaped, and an observer that does not watch every pid for exit
//! rightly reports the unwatched ones stalled two seconds after their last beat.)
//!
//! Every Unix datagram socket gets the kernel queue length current when it is made
//! (`net.unix.max_dgram_qlen`, 10 by default): a full queue refuses the agents' sends. The
//! full run repeats the 1 000-agent fleets and the largest one with the queue raised to 512
//! for both observers (the value the image's sysctl drop-in sets; set before each observer
//! starts, restored after its run; root only), so the rows show what a longer queue buys
//! each of them: fewer refused sends, and for this observer batched, paced reads.

use super::Ctx;
use crate::bench::load::{mono_ns, SysctlGuard};
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
/// The kernel's queue length for Unix datagram sockets made from now on.
const QLEN: &str = "/proc/sys/net/unix/max_dgram_qlen";

/// One fleet: `agents` processes beating every `every_ms`, with the kernel queue raised to
/// `qlen` (None: left as the machine has it).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Case {
    agents: usize,
    every_ms: u64,
    qlen: Option<u64>,
}

impl Case {
    const fn new(agents: usize, every_ms: u64) -> Case {
        Case {
            agents,
            every_ms,
            qlen: None,
        }
    }

    /// How rows name it.
    fn label(&self) -> String {
        let mut l = format!("{} agents @ {} ms", self.agents, self.every_ms);
        if let Some(q) = self.qlen {
            l.push_str(&format!(", qlen {q}"));
        }
        l
    }
}

/// The fleets measured.
fn cases(quick: bool) -> Vec<Case> {
    if quick {
        vec![Case::new(200, 500)]
    } else {
        let raised = |c: Case| Case {
            qlen: Some(512),
            ..c
        };
        vec![
            Case::new(1000, 500),
            raised(Case::new(1000, 500)),
            Case::new(1000, 100),
            raised(Case::new(1000, 100)),
            Case::new(4096, 500),
            Case::new(10000, 500),
            raised(Case::new(10000, 500)),
        ]
    }
}

/// Why `case` cannot run here (None: it can). A raised queue needs root and a writable
/// sysctl: tried once here, and put back at once.
fn unrunnable(case: &Case) -> Option<String> {
    let q = case.qlen?;
    if !rustix::process::geteuid().is_root() {
        return Some(format!("raising net.unix.max_dgram_qlen to {q} needs root"));
    }
    SysctlGuard::set(QLEN, q).err().map(|e| e.to_string())
}

/// "net.unix.max_dgram_qlen = 10", from the values read as each observer started.
fn qlen_note(mut seen: Vec<String>) -> String {
    seen.sort_by_key(|v| v.parse::<u64>().unwrap_or(u64::MAX));
    seen.dedup();
    let v = if seen.is_empty() {
        qlen()
    } else {
        seen.join(" / ")
    };
    format!("net.unix.max_dgram_qlen = {v}")
}

#[derive(Default)]
struct Outcome {
    cpu_pct: f64,
    wakeups_per_s: f64,
    attempts: u64,
    refused: u64,
    window_attempts: u64,
    window_refused: u64,
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
    window_from: u64,
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
            "--window-from-ns",
            &window_from.to_string(),
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
    let window_start = until - window.as_nanos() as u64;
    let mut children = Vec::with_capacity(agents + STOPPERS);
    for _ in 0..agents {
        children.push(spawn_agent(
            ctx,
            &obs.socket,
            interval_ms,
            until,
            None,
            window_start,
            &report,
        )?);
    }
    let spawned = mono_ns();
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
            window_start,
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
        if w.len() == 5 {
            o.attempts += w[1] + w[2];
            o.refused += w[2];
            o.window_attempts += w[3] + w[4];
            o.window_refused += w[4];
        }
    }
    let rows = obs.rows();
    for r in &rows {
        match r.kind.as_str() {
            "beat" => o.received += 1,
            // A stall reported after the common deadline may be of an agent that ended
            // there (exits an observer does not watch are seen at the threshold): only
            // stalls before it are of agents certainly still beating.
            "stall" if !stopper_pids.contains(&r.pid) && r.ns < until => o.false_stalls += 1,
            _ => {}
        }
    }
    for &pid in &stopper_pids {
        if let Some((b, st)) = super::last_beat_and_stall(&rows, pid) {
            o.lateness
                .push(st.saturating_sub(b) as f64 / 1e6 - THRESHOLD_MS as f64);
        }
    }
    Ok(o)
}

/// Measure each fleet size.
pub fn run(ctx: &mut Ctx) {
    let window = Duration::from_secs(if ctx.quick { 3 } else { 10 });
    for c in cases(ctx.quick) {
        let (n, every) = (c.agents, c.every_ms);
        let case = c.label();
        if let Some(why) = unrunnable(&c) {
            println!("  fleet: {case} skipped: {why}");
            continue;
        }
        let mut plot = [Vec::new(), Vec::new()];
        let mut qlens = Vec::new();
        let s = ctx.pooled(1, "fleet", |s| {
            // Held until this observer's run is over, whichever way it ends.
            let _raised = c.qlen.map(|q| SysctlGuard::set(QLEN, q)).transpose()?;
            // The value this observer's socket is made with.
            qlens.push(qlen());
            let o = one(ctx, s, n, every, window)?;
            let lost = o.attempts.saturating_sub(o.received);
            let i = usize::from(s.kind != crate::bench::subject::Kind::Ours);
            plot[i].push((o.cpu_pct, o.lateness.clone()));
            Ok(Some([
                vec![o.cpu_pct],
                vec![o.wakeups_per_s],
                vec![100.0 * lost as f64 / o.attempts.max(1) as f64],
                vec![o.refused as f64],
                vec![100.0 * o.window_refused as f64 / o.window_attempts.max(1) as f64],
                vec![o.false_stalls as f64],
                o.lateness,
            ]))
        });
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
            qlen_note(qlens),
        );
        ctx.row(
            DROPS,
            format!("sends refused in the steady window, {case}"),
            "% of sent",
            Better::Lower,
            &s[4],
            "after the spawn storm",
        );
        ctx.row(
            DROPS,
            format!("false stalls, {case}"),
            "stalls",
            Better::Lower,
            &s[5],
            w,
        );
        ctx.row(
            DROPS,
            format!("stall lateness under load, {case}"),
            "ms",
            Better::Lower,
            &s[6],
            format!("{STOPPERS} agents go silent"),
        );
        // The plot is against agent count at the machine's queue length.
        if every == 500 && c.qlen.is_none() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_raised_queue_case_is_full_run_only_and_says_its_length() {
        assert!(cases(true).iter().all(|c| c.qlen.is_none()));
        let full = cases(false);
        let raised: Vec<_> = full.iter().filter(|c| c.qlen.is_some()).collect();
        let labels: Vec<String> = raised.iter().map(|c| c.label()).collect();
        assert_eq!(
            labels,
            [
                "1000 agents @ 500 ms, qlen 512",
                "1000 agents @ 100 ms, qlen 512",
                "10000 agents @ 500 ms, qlen 512"
            ]
        );
        assert_eq!(Case::new(1000, 100).label(), "1000 agents @ 100 ms");
        assert_eq!(unrunnable(&Case::new(1000, 100)), None);
    }

    #[test]
    fn the_note_states_the_values_used() {
        assert_eq!(
            qlen_note(vec!["512".into(), "512".into()]),
            "net.unix.max_dgram_qlen = 512"
        );
        assert_eq!(
            qlen_note(vec!["512".into(), "10".into(), "512".into()]),
            "net.unix.max_dgram_qlen = 10 / 512"
        );
        assert!(qlen_note(Vec::new()).starts_with("net.unix.max_dgram_qlen = "));
    }
}
