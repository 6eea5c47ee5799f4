//! A snapshot of the observer for the control socket, the metrics exporters and sd_notify.

use crate::daemon::LoopStats;
use crate::observer::Observer;
use crate::pidwatch::PidWatch;
use serde_json::json;
use varta_core::time::Instant;
use varta_core::tracker::{AgentState, TrackerStats};

/// One agent in the snapshot.
#[derive(Clone, Debug)]
pub struct AgentRow {
    /// pid.
    pub pid: u32,
    /// Name (rule name, else comm).
    pub name: String,
    /// Last reported status (`ok`, `degraded`, `critical`).
    pub status: &'static str,
    /// `healthy`, `stalled` or `gone`.
    pub state: &'static str,
    /// Accepted beats.
    pub beats: u64,
    /// Stalls reported.
    pub stalls: u64,
    /// Client sessions (restarts with the same pid).
    pub sessions: u64,
    /// Time since the last beat, ms.
    pub silent_ms: u64,
    /// Its threshold, ms.
    pub threshold_ms: u64,
    /// Transport (`unix`, `udp`).
    pub transport: &'static str,
}

/// Everything the outputs render.
#[derive(Clone, Debug, Default)]
pub struct StatusBoard {
    /// Agents, by pid.
    pub agents: Vec<AgentRow>,
    /// Tracker counters.
    pub tracker: TrackerStats,
    /// Datagrams read.
    pub frames_received: u64,
    /// Rejections by reason.
    pub rejected: Vec<(&'static str, u64)>,
    /// Loop statistics.
    pub loop_stats: LoopStats,
    /// Processes watched with a pidfd.
    pub pidfds: usize,
    /// Tracker capacity.
    pub capacity: usize,
    /// Seconds since start.
    pub uptime_s: u64,
    /// Recovery runner and audit log.
    pub recovery: RecoveryStats,
    /// Hardware watchdog and LED (embedded frontend).
    pub hardware: Option<crate::supervisor::HardwareStatus>,
}

/// Recovery and audit counters.
#[derive(Clone, Debug, Default)]
pub struct RecoveryStats {
    /// The runner's counters.
    pub counters: crate::recovery::Counters,
    /// Commands running now.
    pub running: usize,
    /// Audit records appended, write/sync errors (None: no audit log).
    pub audit: Option<(u64, u64)>,
}

fn state_str(s: AgentState) -> &'static str {
    match s {
        AgentState::Healthy => "healthy",
        AgentState::Stalled => "stalled",
        AgentState::Gone => "gone",
    }
}

impl StatusBoard {
    /// Collect a snapshot at `now`.
    pub fn collect<const N: usize>(
        obs: &Observer<N>,
        stats: &LoopStats,
        pids: &PidWatch,
        now: Instant,
        started: Instant,
    ) -> Self {
        let mut agents: Vec<AgentRow> = obs
            .tracker()
            .iter()
            .map(|a| {
                let meta = obs.meta(a.pid);
                AgentRow {
                    pid: a.pid,
                    name: meta.map(|m| m.name.to_string()).unwrap_or_default(),
                    status: a.status.as_str(),
                    state: state_str(a.state),
                    beats: a.beats as u64,
                    stalls: a.stalls as u64,
                    sessions: a.sessions as u64,
                    silent_ms: now.saturating_since(a.last_beat).as_millis(),
                    threshold_ms: a.threshold.as_millis(),
                    transport: meta.map(|m| m.transport.as_str()).unwrap_or("unix"),
                }
            })
            .collect();
        agents.sort_by_key(|a| a.pid);
        let mut rejected: Vec<(&'static str, u64)> = obs
            .counters()
            .rejected
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        rejected.sort();
        StatusBoard {
            agents,
            tracker: *obs.tracker().stats(),
            frames_received: obs.counters().frames_received,
            rejected,
            loop_stats: stats.clone(),
            pidfds: pids.len(),
            capacity: obs.tracker().limit(),
            uptime_s: now.saturating_since(started).as_secs(),
            recovery: RecoveryStats::default(),
            hardware: None,
        }
    }

    /// (agents, stalled) for sd_notify STATUS.
    pub fn summary(&self) -> (usize, usize) {
        let stalled = self.agents.iter().filter(|a| a.state == "stalled").count();
        (self.agents.len(), stalled)
    }

    /// The JSON document `varta-watch status --json` prints.
    pub fn to_json(&self) -> serde_json::Value {
        let agents: Vec<_> = self
            .agents
            .iter()
            .map(|a| {
                json!({
                    "pid": a.pid, "name": a.name, "status": a.status, "state": a.state,
                    "beats": a.beats, "stalls": a.stalls, "sessions": a.sessions,
                    "silent_ms": a.silent_ms, "threshold_ms": a.threshold_ms,
                    "transport": a.transport,
                })
            })
            .collect();
        let rejected: serde_json::Map<String, serde_json::Value> = self
            .rejected
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let t = &self.tracker;
        let hardware = self.hardware.as_ref().map(|h| {
            json!({
                "watchdog": h.watchdog, "timeout_s": h.timeout_s, "gate": h.gate,
                "pets": h.pets, "pet_errors": h.pet_errors, "led": h.led,
                "last_reset": h.last_reset, "consecutive_resets": h.consecutive_resets,
            })
        });
        json!({
            "hardware": hardware,
            "agents": agents,
            "observer": {
                "uptime_s": self.uptime_s,
                "capacity": self.capacity,
                "frames_received": self.frames_received,
                "accepted": t.accepted,
                "registered": t.registered,
                "sessions": t.sessions,
                "pid_reuse": t.pid_reuse,
                "stalls": t.stalls,
                "recoveries": t.recoveries,
                "evictions": t.evictions,
                "rejected": rejected,
                "pidfds": self.pidfds,
                "loop_iterations": self.loop_stats.iterations,
                "paced_reads": self.loop_stats.paced_reads,
                "pacing_backoffs": self.loop_stats.pacing_backoffs,
            },
            "recovery": {
                "spawned": self.recovery.counters.spawned,
                "succeeded": self.recovery.counters.succeeded,
                "failed": self.recovery.counters.failed,
                "timed_out": self.recovery.counters.timed_out,
                "spawn_failed": self.recovery.counters.spawn_failed,
                "refused": self.recovery.counters.refused,
                "folded": self.recovery.counters.folded,
                "escalated": self.recovery.counters.escalated,
                "gave_up": self.recovery.counters.gave_up,
                "running": self.recovery.running,
                "audit_records": self.recovery.audit.map(|a| a.0),
                "audit_errors": self.recovery.audit.map(|a| a.1),
            }
        })
    }
}

/// Answer a control request. Requests: `status` (JSON), `ping`.
pub fn answer(req: &str, board: &StatusBoard) -> Vec<u8> {
    match req.trim() {
        "status" => {
            let mut v = serde_json::to_vec(&board.to_json()).unwrap_or_default();
            v.push(b'\n');
            v
        }
        "ping" => b"pong\n".to_vec(),
        other => format!(
            "{{\"error\":\"unknown request {:?}\"}}\n",
            other.chars().take(32).collect::<String>()
        )
        .into_bytes(),
    }
}

/// Render the status JSON as the table `varta-watch status` prints.
pub fn render_table(v: &serde_json::Value) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let o = &v["observer"];
    let _ = writeln!(
        s,
        "observer: up {}s, {} agents (capacity {}), {} frames, {} stalls, {} evictions",
        o["uptime_s"],
        v["agents"].as_array().map_or(0, |a| a.len()),
        o["capacity"],
        o["frames_received"],
        o["stalls"],
        o["evictions"]
    );
    let h = &v["hardware"];
    if h.is_object() {
        let _ = writeln!(
            s,
            "watchdog: {} (timeout {}s), gate {}, {} pets, LED {}",
            h["watchdog"].as_str().unwrap_or("-"),
            h["timeout_s"],
            h["gate"].as_str().unwrap_or("-"),
            h["pets"],
            h["led"].as_str().unwrap_or("-")
        );
        let _ = writeln!(s, "last reset: {}", h["last_reset"].as_str().unwrap_or("-"));
    }
    if let Some(r) = o["rejected"].as_object() {
        if !r.is_empty() {
            let parts: Vec<String> = r.iter().map(|(k, n)| format!("{k}={n}")).collect();
            let _ = writeln!(s, "rejected: {}", parts.join(" "));
        }
    }
    let _ = writeln!(
        s,
        "{:>8}  {:<16} {:<9} {:<8} {:>10} {:>7} {:>9} {:>10}",
        "PID", "NAME", "STATE", "STATUS", "BEATS", "STALLS", "SESSIONS", "SILENT_MS"
    );
    for a in v["agents"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "{:>8}  {:<16} {:<9} {:<8} {:>10} {:>7} {:>9} {:>10}",
            a["pid"],
            a["name"].as_str().unwrap_or(""),
            a["state"].as_str().unwrap_or(""),
            a["status"].as_str().unwrap_or(""),
            a["beats"],
            a["stalls"],
            a["sessions"],
            a["silent_ms"]
        );
    }
    s
}
