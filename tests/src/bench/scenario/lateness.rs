//! 5. Stall lateness (last beat → stall event) and last beat → recovery command running.
//!
//! One observer run per threshold and load: 20 agents (identity pool) beat, then go silent
//! one after another at staggered times (53 ms apart, so they land on every phase of a
//! polling observer); "busy" adds 100 agents beating every 20 ms throughout. Lateness is
//! read from each observer's own export: stall row − that agent's last beat row −
//! threshold. A recovery probe (`varta-bench probe`, started by the observer's
//! `--recovery-exec`) writes CLOCK_MONOTONIC when it runs; beyond threshold + lateness,
//! what remains is the time from stall to the command running.

use super::Ctx;
use crate::bench::load::{frame, mono_ns, Sender};
use crate::bench::report::Better;
use crate::bench::subject::{RunOpts, Subject};
use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant};
use varta_core::wire::Status;

const SECTION: &str = "5. Stall lateness and recovery start";

struct Agent {
    pid: u32,
    nonce: u64,
    every: Duration,
    next: Instant,
    stop_at: Option<Instant>,
    last_sent_ns: u64,
}

/// Per-agent samples of one run: lateness (ms) and stall → recovery command running (ms).
fn one(
    ctx: &Ctx,
    s: &Subject,
    threshold_ms: u64,
    busy: bool,
    stoppers: usize,
) -> io::Result<Option<[Vec<f64>; 2]>> {
    let bg = if busy { 100 } else { 0 };
    let ids = ctx
        .ids(stoppers + bg)
        .ok_or_else(|| io::Error::other("needs root (identity pool)"))?;
    let probe_log = tempfile::NamedTempFile::new()?;
    let recovery = format!(
        "{} probe {} {{pid}}",
        ctx.exe.display(),
        probe_log.path().display()
    );
    let mut obs = s.start(&RunOpts {
        threshold_ms,
        capacity: 1024,
        export: true,
        recovery: Some(recovery),
        ..RunOpts::default()
    })?;
    let tx = Sender::connect(&obs.socket)?;
    let threshold = Duration::from_millis(threshold_ms);
    let start = Instant::now();
    let warm = (threshold * 2).max(Duration::from_millis(1000));
    let every = (threshold / 4).min(Duration::from_millis(100));
    let mut agents: Vec<Agent> = ids
        .iter()
        .enumerate()
        .map(|(i, &pid)| Agent {
            pid,
            nonce: 1,
            every: if i < stoppers {
                every
            } else {
                Duration::from_millis(20)
            },
            next: start + Duration::from_micros((i as u64 * 7919) % 20_000),
            stop_at: (i < stoppers).then(|| start + warm + Duration::from_millis(53 * i as u64)),
            last_sent_ns: 0,
        })
        .collect();
    let end = start
        + warm
        + Duration::from_millis(53 * stoppers as u64)
        + threshold
        + Duration::from_millis(700);
    while Instant::now() < end {
        let now = Instant::now();
        let mut soonest = end;
        for a in agents.iter_mut() {
            if a.stop_at.is_some_and(|t| a.next >= t) {
                continue;
            }
            if a.next <= now {
                tx.send_as(a.pid, &frame(a.pid, a.nonce, Status::Ok))?;
                a.last_sent_ns = mono_ns();
                a.nonce += 1;
                a.next += a.every;
            }
            soonest = soonest.min(a.next);
        }
        if let Some(d) = soonest.checked_duration_since(Instant::now()) {
            std::thread::sleep(d.min(Duration::from_millis(5)));
        }
    }
    // Give the recovery probes a moment, then stop (the export is flushed on stop).
    std::thread::sleep(Duration::from_millis(300));
    obs.stop();
    let rows = obs.rows();
    let probes: HashMap<u32, u64> = std::fs::read_to_string(probe_log.path())?
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
        })
        .collect();
    let mut late = Vec::new();
    let mut to_child = Vec::new();
    for a in agents.iter().take(stoppers) {
        let Some((b, st)) = super::last_beat_and_stall(&rows, a.pid) else {
            eprintln!(
                "  lateness: {} reported no stall for agent {}",
                s.name(),
                a.pid
            );
            continue;
        };
        let l = (st.saturating_sub(b)) as f64 / 1e6 - threshold_ms as f64;
        late.push(l);
        if let Some(&child) = probes.get(&a.pid) {
            let e2e = child.saturating_sub(a.last_sent_ns) as f64 / 1e6 - threshold_ms as f64;
            to_child.push(e2e - l);
        }
    }
    Ok(Some([late, to_child]))
}

/// Measure at 200 ms and 2 000 ms, idle and busy.
pub fn run(ctx: &mut Ctx) {
    if ctx.ids(120).is_none() {
        eprintln!("  lateness: skipped (needs root for the identity pool)");
        return;
    }
    // 50 per run, two runs: p99 by nearest rank is then the second-largest of 100.
    let stoppers = if ctx.quick { 8 } else { 50 };
    let reps = if ctx.quick { 1 } else { 2 };
    let thresholds: &[u64] = if ctx.quick { &[200] } else { &[200, 2000] };
    for &t in thresholds {
        for busy in [false, true] {
            let load = if busy {
                "busy (100 agents at 50 Hz)"
            } else {
                "idle"
            };
            let s = ctx.pooled(reps, "lateness", |s| one(ctx, s, t, busy, stoppers));
            let n = s[0][0].len().max(s[0][1].len());
            ctx.row(
                SECTION,
                format!("stall lateness @{t} ms, {load}"),
                "ms",
                Better::Lower,
                &s[0],
                format!("n = {n}"),
            );
            let p99 = |v: &Vec<f64>| crate::bench::stats::quantile(v, 0.99).map(|x| vec![x]);
            ctx.row(
                SECTION,
                format!("stall lateness p99 @{t} ms, {load}"),
                "ms",
                Better::Lower,
                &[
                    p99(&s[0][0]).unwrap_or_default(),
                    p99(&s[0][1]).unwrap_or_default(),
                ],
                format!("nearest rank of n = {n}; target ≤ 2 ms"),
            );
            ctx.row(
                SECTION,
                format!("stall → recovery command running @{t} ms, {load}"),
                "ms",
                Better::Lower,
                &s[1],
                "",
            );
        }
    }
}
