//! Prometheus text exposition (format 0.0.4) of a [`StatusBoard`], served on `/metrics` and
//! written to the node_exporter textfile.

use crate::status::{AgentRow, StatusBoard};
use std::fmt::Write;

/// Upper bounds (µs) of the loop busy-time histogram.
pub const BUSY_BUCKETS_US: [u64; 8] = [10, 50, 100, 500, 1_000, 5_000, 10_000, 100_000];

/// Escape a label value.
pub fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn head(s: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Render the board.
pub fn render(b: &StatusBoard) -> String {
    let mut s = String::with_capacity(1024 + b.agents.len() * 400);
    head(&mut s, "varta_agents", "gauge", "Agents tracked, by state.");
    for st in ["healthy", "stalled", "gone"] {
        let n = b.agents.iter().filter(|a| a.state == st).count();
        let _ = writeln!(s, "varta_agents{{state=\"{st}\"}} {n}");
    }
    type Family = (
        &'static str,
        &'static str,
        &'static str,
        fn(&AgentRow) -> String,
    );
    let per_agent: [Family; 5] = [
        (
            "varta_agent_beats_total",
            "counter",
            "Heartbeats accepted from the agent.",
            |a| a.beats.to_string(),
        ),
        (
            "varta_agent_stalls_total",
            "counter",
            "Stalls reported for the agent.",
            |a| a.stalls.to_string(),
        ),
        (
            "varta_agent_sessions_total",
            "counter",
            "Client sessions (restarts under the same pid).",
            |a| a.sessions.to_string(),
        ),
        (
            "varta_agent_up",
            "gauge",
            "1 while the agent beats within its threshold.",
            |a| u8::from(a.state == "healthy").to_string(),
        ),
        (
            "varta_agent_silence_seconds",
            "gauge",
            "Time since the agent's last beat.",
            |a| format!("{:.3}", a.silent_ms as f64 / 1000.0),
        ),
    ];
    for (name, kind, help, value) in per_agent {
        head(&mut s, name, kind, help);
        for a in &b.agents {
            let _ = writeln!(
                s,
                "{name}{{pid=\"{}\",name=\"{}\"}} {}",
                a.pid,
                escape(&a.name),
                value(a)
            );
        }
    }
    head(
        &mut s,
        "varta_agent_status",
        "gauge",
        "Last reported status (1 for the current one).",
    );
    for a in &b.agents {
        let _ = writeln!(
            s,
            "varta_agent_status{{pid=\"{}\",name=\"{}\",status=\"{}\"}} 1",
            a.pid,
            escape(&a.name),
            a.status
        );
    }
    head(
        &mut s,
        "varta_rejected_total",
        "counter",
        "Datagrams rejected, by reason.",
    );
    for (reason, n) in &b.rejected {
        let _ = writeln!(s, "varta_rejected_total{{reason=\"{reason}\"}} {n}");
    }
    let t = &b.tracker;
    let totals: [(&str, &str, u64); 8] = [
        (
            "varta_frames_received_total",
            "Datagrams read from all listeners.",
            b.frames_received,
        ),
        (
            "varta_beats_accepted_total",
            "Frames accepted by the tracker.",
            t.accepted,
        ),
        (
            "varta_registrations_total",
            "Agents registered.",
            t.registered,
        ),
        (
            "varta_sessions_total",
            "New client sessions from a live process.",
            t.sessions,
        ),
        (
            "varta_pid_reuse_total",
            "Pids reused by a new process.",
            t.pid_reuse,
        ),
        ("varta_stalls_total", "Stalls reported.", t.stalls),
        (
            "varta_recoveries_total",
            "Stalled agents that beat again.",
            t.recoveries,
        ),
        (
            "varta_evictions_total",
            "Agents evicted to make room.",
            t.evictions,
        ),
    ];
    for (name, help, v) in totals {
        head(&mut s, name, "counter", help);
        let _ = writeln!(s, "{name} {v}");
    }
    let c = &b.recovery.counters;
    head(
        &mut s,
        "varta_recovery_commands_total",
        "counter",
        "Recovery and escalation commands, by outcome.",
    );
    for (outcome, v) in [
        ("succeeded", c.succeeded),
        ("failed", c.failed),
        ("timed_out", c.timed_out),
        ("spawn_failed", c.spawn_failed),
    ] {
        let _ = writeln!(
            s,
            "varta_recovery_commands_total{{outcome=\"{outcome}\"}} {v}"
        );
    }
    head(
        &mut s,
        "varta_recovery_decisions_total",
        "counter",
        "Recovery triggers not run: refused for safety, folded (debounce or running), budget spent.",
    );
    for (decision, v) in [
        ("refused", c.refused),
        ("folded", c.folded),
        ("escalated", c.escalated),
        ("gave_up", c.gave_up),
    ] {
        let _ = writeln!(
            s,
            "varta_recovery_decisions_total{{decision=\"{decision}\"}} {v}"
        );
    }
    head(
        &mut s,
        "varta_recovery_running",
        "gauge",
        "Recovery commands running now.",
    );
    let _ = writeln!(s, "varta_recovery_running {}", b.recovery.running);
    if let Some((records, errors)) = b.recovery.audit {
        head(
            &mut s,
            "varta_audit_records_total",
            "counter",
            "Audit records appended.",
        );
        let _ = writeln!(s, "varta_audit_records_total {records}");
        head(
            &mut s,
            "varta_audit_errors_total",
            "counter",
            "Audit log write or fdatasync failures (records are kept and retried).",
        );
        let _ = writeln!(s, "varta_audit_errors_total {errors}");
    }
    if let Some(h) = &b.hardware {
        hardware(&mut s, h);
    }
    let l = &b.loop_stats;
    head(
        &mut s,
        "varta_loop_wakeups_total",
        "counter",
        "Event loop wake-ups.",
    );
    let _ = writeln!(s, "varta_loop_wakeups_total {}", l.iterations);
    head(
        &mut s,
        "varta_loop_paced_reads_total",
        "counter",
        "Reads of the data socket on the pacing timer (under load) instead of on readability.",
    );
    let _ = writeln!(s, "varta_loop_paced_reads_total {}", l.paced_reads);
    head(
        &mut s,
        "varta_loop_pacing_backoffs_total",
        "counter",
        "Times read pacing stopped for a while because the kernel queue was found half full.",
    );
    let _ = writeln!(s, "varta_loop_pacing_backoffs_total {}", l.pacing_backoffs);
    head(
        &mut s,
        "varta_loop_busy_seconds",
        "histogram",
        "Time spent handling one wake-up.",
    );
    let mut cum = 0u64;
    for (i, ub) in BUSY_BUCKETS_US.iter().enumerate() {
        cum += l.busy_hist[i];
        let _ = writeln!(
            s,
            "varta_loop_busy_seconds_bucket{{le=\"{}\"}} {cum}",
            *ub as f64 / 1e6
        );
    }
    cum += l.busy_hist[BUSY_BUCKETS_US.len()];
    let _ = writeln!(s, "varta_loop_busy_seconds_bucket{{le=\"+Inf\"}} {cum}");
    let _ = writeln!(
        s,
        "varta_loop_busy_seconds_sum {:.6}",
        l.busy_total.as_nanos() as f64 / 1e9
    );
    let _ = writeln!(s, "varta_loop_busy_seconds_count {cum}");
    let gauges: [(&str, &str, u64); 4] = [
        (
            "varta_loop_max_batch",
            "Most datagrams handled in one wake-up.",
            l.max_batch,
        ),
        (
            "varta_tracker_capacity",
            "Most agents the tracker holds.",
            b.capacity as u64,
        ),
        (
            "varta_pidfds",
            "Processes watched for exit with a pidfd.",
            b.pidfds as u64,
        ),
        (
            "varta_uptime_seconds",
            "Seconds since the observer started.",
            b.uptime_s,
        ),
    ];
    for (name, help, v) in gauges {
        head(&mut s, name, "gauge", help);
        let _ = writeln!(s, "{name} {v}");
    }
    s
}

fn hardware(s: &mut String, h: &crate::supervisor::HardwareStatus) {
    head(
        s,
        "varta_watchdog_info",
        "gauge",
        "The hardware watchdog owned by the observer (1), with its identity and timeout.",
    );
    let _ = writeln!(
        s,
        "varta_watchdog_info{{device=\"{}\",timeout_s=\"{}\"}} 1",
        escape(&h.watchdog),
        h.timeout_s
    );
    head(
        s,
        "varta_watchdog_gate",
        "gauge",
        "The watchdog gate's state (1 for the current one).",
    );
    for g in ["grace", "open", "closed", "degraded"] {
        let _ = writeln!(
            s,
            "varta_watchdog_gate{{state=\"{g}\"}} {}",
            u8::from(h.gate == g)
        );
    }
    head(
        s,
        "varta_watchdog_pets_total",
        "counter",
        "Keepalives sent.",
    );
    let _ = writeln!(s, "varta_watchdog_pets_total {}", h.pets);
    head(
        s,
        "varta_watchdog_pet_errors_total",
        "counter",
        "Keepalives the driver refused.",
    );
    let _ = writeln!(s, "varta_watchdog_pet_errors_total {}", h.pet_errors);
    head(
        s,
        "varta_watchdog_consecutive_resets",
        "gauge",
        "Consecutive watchdog resets blamed on the same agent (the boot-loop guard's count).",
    );
    let _ = writeln!(
        s,
        "varta_watchdog_consecutive_resets {}",
        h.consecutive_resets
    );
    head(
        s,
        "varta_last_reset_info",
        "gauge",
        "Why the board was last reset, as found at start-up.",
    );
    let _ = writeln!(
        s,
        "varta_last_reset_info{{reason=\"{}\"}} 1",
        escape(&h.last_reset)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_agents_reasons_and_histogram() {
        let mut b = StatusBoard::default();
        b.agents.push(AgentRow {
            pid: 42,
            name: "mo\"dem".into(),
            status: "ok",
            state: "healthy",
            beats: 10,
            stalls: 1,
            sessions: 2,
            silent_ms: 1500,
            threshold_ms: 2000,
            transport: "unix",
        });
        b.rejected.push(("bad_crc", 3));
        b.recovery.counters.succeeded = 5;
        b.recovery.counters.refused = 2;
        b.recovery.audit = Some((9, 0));
        b.loop_stats.busy_hist[0] = 4;
        b.loop_stats.busy_hist[8] = 1;
        let t = render(&b);
        assert!(
            t.contains("varta_agent_beats_total{pid=\"42\",name=\"mo\\\"dem\"} 10\n"),
            "{t}"
        );
        assert!(t.contains("varta_agent_silence_seconds{pid=\"42\",name=\"mo\\\"dem\"} 1.500\n"));
        assert!(t.contains("varta_rejected_total{reason=\"bad_crc\"} 3\n"));
        assert!(t.contains("varta_recovery_commands_total{outcome=\"succeeded\"} 5\n"));
        assert!(t.contains("varta_recovery_decisions_total{decision=\"refused\"} 2\n"));
        assert!(t.contains("varta_audit_records_total 9\n"));
        assert!(t.contains("varta_agents{state=\"healthy\"} 1\n"));
        assert!(
            t.contains("varta_loop_busy_seconds_bucket{le=\"0.00001\"} 4\n"),
            "{t}"
        );
        assert!(t.contains("varta_loop_busy_seconds_bucket{le=\"+Inf\"} 5\n"));
        // Every sample line belongs to a declared family.
        for line in t.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let base = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                t.contains(&format!("# TYPE {base} ")) || t.contains(&format!("# TYPE {name} ")),
                "{line}"
            );
        }
    }

    #[test]
    fn renders_the_hardware_section_only_when_present() {
        let mut b = StatusBoard::default();
        assert!(!render(&b).contains("varta_watchdog"));
        b.hardware = Some(crate::supervisor::HardwareStatus {
            watchdog: "i6300ESB timer on /dev/watchdog".into(),
            timeout_s: 3,
            gate: "closed",
            pets: 12,
            pet_errors: 0,
            led: "gate_closing",
            last_reset: "watchdog, because \"db\" lost".into(),
            consecutive_resets: 2,
        });
        let t = render(&b);
        assert!(t.contains(
            "varta_watchdog_info{device=\"i6300ESB timer on /dev/watchdog\",timeout_s=\"3\"} 1\n"
        ));
        assert!(t.contains("varta_watchdog_gate{state=\"closed\"} 1\n"));
        assert!(t.contains("varta_watchdog_gate{state=\"open\"} 0\n"));
        assert!(t.contains("varta_watchdog_pets_total 12\n"));
        assert!(t.contains("varta_watchdog_consecutive_resets 2\n"));
        assert!(
            t.contains("varta_last_reset_info{reason=\"watchdog, because \\\"db\\\" lost\"} 1\n")
        );
    }
}
