//! The recovery runner: turns triggers (stall, terminal frame, exit of a required agent,
//! Critical when the rule asks) into recovery commands, through the core's policy
//! (debounce, restart budget, escalation), with the safety checks (pid reuse, untrusted
//! transport). Commands run without blocking the loop; the loop feeds SIGCHLD, output
//! readiness and timeouts back in. Every decision that matters comes back as a [`Report`]:
//! an event for the exporters and an entry for the audit log.
//!
//! Bookkeeping (debounce, budget) is per agent *name*, so an agent restarted under a new
//! pid keeps its budget; agents that share a name share one.

pub mod child;
pub mod command;

use crate::audit::{Entry, Kind};
use crate::config::AgentRule;
use child::{RunningChild, SpawnSpec};
use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use varta_core::event::Event;
use varta_core::policy::recovery::{
    child_step, ChildOutcome, ChildStep, Decision, RecoveryPolicy, RecoveryState, RefuseReason,
    Trigger,
};
use varta_core::time::{Duration, Instant};

/// Observer-wide recovery settings.
#[derive(Clone, Debug, PartialEq)]
pub struct RecoverySettings {
    /// `--recovery-exec`: the command for agents whose rule has none.
    pub exec: Option<Vec<String>>,
    /// Policy for agents without rule overrides (`--recovery-debounce-ms`, ...).
    pub policy: RecoveryPolicy,
    /// Environment variables passed through.
    pub env_allow: Vec<String>,
    /// Working directory of commands.
    pub cwd: Option<PathBuf>,
    /// Run commands as this uid/gid.
    pub user: Option<(u32, u32)>,
    /// Act on agents that beat over plain UDP (no kernel-attested identity).
    pub allow_udp: bool,
    /// Recover on the exit of any agent, not only required ones.
    pub recover_on_exit: bool,
}

impl Default for RecoverySettings {
    fn default() -> Self {
        RecoverySettings {
            exec: None,
            policy: RecoveryPolicy::DEFAULT,
            env_allow: command::DEFAULT_ENV_ALLOW
                .iter()
                .map(|s| s.to_string())
                .collect(),
            cwd: None,
            user: None,
            allow_udp: false,
            recover_on_exit: false,
        }
    }
}

/// What the runner knows about the agent a trigger is about.
#[derive(Clone, Copy, Debug)]
pub struct AgentView<'a> {
    /// pid.
    pub pid: u32,
    /// Name (rule name, else comm).
    pub name: &'a str,
    /// Matching rule.
    pub rule: Option<&'a AgentRule>,
    /// Start time recorded when the agent registered.
    pub start_time: Option<u64>,
    /// Kernel-attested identity (Unix socket).
    pub trusted: bool,
}

/// One thing the runner did: an event to route and a record for the audit log.
#[derive(Clone, Debug)]
pub struct Report {
    /// For exporters and logs.
    pub event: Event,
    /// For the audit log.
    pub audit: Entry,
    /// A command was started in this slot: poll its output fd.
    pub slot: Option<usize>,
}

/// Counters for metrics.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Commands started.
    pub spawned: u64,
    /// Commands that could not be started.
    pub spawn_failed: u64,
    /// Commands that exited 0.
    pub succeeded: u64,
    /// Commands that exited non-zero or died of a signal.
    pub failed: u64,
    /// Commands stopped on timeout.
    pub timed_out: u64,
    /// Refusals (pid reuse, untrusted, unknown identity).
    pub refused: u64,
    /// Triggers folded by debounce or a running command.
    pub folded: u64,
    /// Escalations.
    pub escalated: u64,
    /// Give-ups.
    pub gave_up: u64,
}

#[derive(Debug)]
struct Job {
    child: RunningChild,
    /// Bookkeeping key; None for escalation commands (not budgeted).
    key: Option<String>,
    agent_pid: u32,
    name: String,
    policy: RecoveryPolicy,
    next_at: Option<Instant>,
}

/// The runner.
#[derive(Debug)]
pub struct Recovery {
    settings: RecoverySettings,
    states: HashMap<String, RecoveryState>,
    jobs: Vec<Option<Job>>,
    env_source: Vec<(OsString, OsString)>,
    /// Counters.
    pub counters: Counters,
}

/// Longest the observer waits for commands at shutdown after SIGTERM, then after SIGKILL.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(2000);

fn entry(kind: Kind, pid: u32, name: &str, detail: String) -> Entry {
    Entry {
        kind,
        pid: Some(pid),
        name: name.to_string(),
        child: None,
        attempt: None,
        detail,
    }
}

fn describe(outcome: ChildOutcome) -> String {
    match outcome {
        ChildOutcome::Exited { code } => format!("exited with code {code}"),
        ChildOutcome::Signaled { signal } => format!("killed by signal {signal}"),
        ChildOutcome::TimedOut { killed: false } => "timed out, stopped by SIGTERM".into(),
        ChildOutcome::TimedOut { killed: true } => "timed out, killed by SIGKILL".into(),
        ChildOutcome::SpawnFailed { errno } => {
            format!(
                "could not be started: {}",
                io::Error::from_raw_os_error(errno)
            )
        }
    }
}

impl Recovery {
    /// A runner with these settings; commands inherit the allow-listed part of this
    /// process's environment.
    pub fn new(settings: RecoverySettings) -> Self {
        Recovery {
            settings,
            states: HashMap::new(),
            jobs: Vec::new(),
            env_source: std::env::vars_os().collect(),
            counters: Counters::default(),
        }
    }

    /// Settings in force.
    pub fn settings(&self) -> &RecoverySettings {
        &self.settings
    }

    /// Whether any recovery can ever run (a global command or some rule's).
    pub fn enabled(&self, rules: &[AgentRule]) -> bool {
        self.settings.exec.is_some() || rules.iter().any(|r| r.recovery.is_some())
    }

    /// Commands running now.
    pub fn running(&self) -> usize {
        self.jobs.iter().flatten().count()
    }

    /// Handle a trigger. `current_start` reads the pid's start time now (from /proc).
    pub fn trigger(
        &mut self,
        a: &AgentView<'_>,
        trigger: Trigger,
        current_start: impl FnOnce(u32) -> io::Result<u64>,
        now: Instant,
    ) -> Vec<Report> {
        let rule = a.rule;
        let wants = match trigger {
            Trigger::Stall | Trigger::Terminal => true,
            Trigger::Exited => {
                self.settings.recover_on_exit
                    || rule.is_some_and(|r| r.required || r.recover_on_exit)
            }
            Trigger::Critical => rule.is_some_and(|r| r.recover_on_critical),
        };
        let template = rule
            .and_then(|r| r.recovery.clone())
            .or_else(|| self.settings.exec.clone());
        let Some(template) = template.filter(|_| wants) else {
            return Vec::new();
        };
        if let Some(reason) = self.refusal(a, current_start) {
            self.counters.refused += 1;
            log::warn!(
                "recovery for {} ({}) on {} refused: {}",
                a.name,
                a.pid,
                trigger.as_str(),
                reason.as_str()
            );
            return vec![Report {
                event: Event::RecoveryRefused { pid: a.pid, reason },
                audit: entry(
                    Kind::Refused,
                    a.pid,
                    a.name,
                    format!("trigger={} reason={}", trigger.as_str(), reason.as_str()),
                ),
                slot: None,
            }];
        }
        let policy = rule.map_or(self.settings.policy, |r| r.policy(&self.settings.policy));
        let state = self.states.entry(a.name.to_string()).or_default();
        match state.decide(&policy, now) {
            Decision::Run { attempt } => {
                let r = self.start(a, trigger, &template, Some(attempt), policy, now);
                if matches!(r.event, Event::RecoveryDone { .. }) {
                    if let Some(s) = self.states.get_mut(a.name) {
                        s.finished();
                    }
                }
                vec![r]
            }
            Decision::Debounced | Decision::Busy | Decision::Suppressed => {
                self.counters.folded += 1;
                log::debug!(
                    "recovery for {} ({}) on {}: not run (debounce, running or exhausted)",
                    a.name,
                    a.pid,
                    trigger.as_str()
                );
                Vec::new()
            }
            Decision::Escalate => {
                self.counters.escalated += 1;
                log::error!(
                    "agent {} ({}): restart budget spent ({} within {}); escalating",
                    a.name,
                    a.pid,
                    policy.budget,
                    policy.window
                );
                let mut out = vec![Report {
                    event: Event::Escalated { pid: a.pid },
                    audit: entry(
                        Kind::Escalated,
                        a.pid,
                        a.name,
                        format!(
                            "trigger={} budget={} window_ms={}",
                            trigger.as_str(),
                            policy.budget,
                            policy.window.as_millis()
                        ),
                    ),
                    slot: None,
                }];
                if let Some(esc) = rule.and_then(|r| r.escalation.clone()) {
                    out.push(self.start(a, trigger, &esc, None, policy, now));
                }
                out
            }
            Decision::GiveUp => {
                self.counters.gave_up += 1;
                log::error!(
                    "ALARM: agent {} ({}): restart budget spent ({} within {}); giving up",
                    a.name,
                    a.pid,
                    policy.budget,
                    policy.window
                );
                vec![Report {
                    event: Event::GaveUp { pid: a.pid },
                    audit: entry(
                        Kind::GaveUp,
                        a.pid,
                        a.name,
                        format!("trigger={} budget={}", trigger.as_str(), policy.budget),
                    ),
                    slot: None,
                }]
            }
        }
    }

    fn refusal(
        &self,
        a: &AgentView<'_>,
        current_start: impl FnOnce(u32) -> io::Result<u64>,
    ) -> Option<RefuseReason> {
        if !a.trusted {
            return (!self.settings.allow_udp).then_some(RefuseReason::Untrusted);
        }
        let known = match a.start_time {
            Some(t) => t,
            None => return Some(RefuseReason::UnknownIdentity),
        };
        match current_start(a.pid) {
            Ok(now) if now != known => Some(RefuseReason::PidReused),
            // Gone: nothing can be hit by mistake through this pid right now; the command
            // restarts the service by name.
            _ => None,
        }
    }

    /// Spawn `template` for agent `a`. `attempt` None: an escalation command (unbudgeted).
    fn start(
        &mut self,
        a: &AgentView<'_>,
        trigger: Trigger,
        template: &[String],
        attempt: Option<u16>,
        policy: RecoveryPolicy,
        now: Instant,
    ) -> Report {
        let vars = command::Vars {
            pid: a.pid,
            name: a.name,
            status: trigger.as_str(),
        };
        let argv = command::render(template, &vars);
        let spec = SpawnSpec {
            env: command::environment(
                &self.settings.env_allow,
                self.env_source.iter().cloned(),
                &vars,
                attempt.unwrap_or(0),
            ),
            argv,
            cwd: self.settings.cwd.clone(),
            user: self.settings.user,
        };
        let what = if attempt.is_some() {
            "recovery"
        } else {
            "escalation"
        };
        let label = format!("{} for {} ({})", what, a.name, a.pid);
        let argv_text = format!("{:?}", spec.argv);
        match RunningChild::spawn(&spec, label.clone(), now) {
            Ok(child) => {
                self.counters.spawned += 1;
                let child_pid = child.pid();
                log::warn!(
                    "{} on {}: started {} as pid {}{}",
                    label,
                    trigger.as_str(),
                    argv_text,
                    child_pid,
                    attempt.map_or(String::new(), |n| format!(
                        " (attempt {n} of {})",
                        policy.budget
                    ))
                );
                let job = Job {
                    next_at: Some(child.started + policy.timeout),
                    child,
                    key: attempt.map(|_| a.name.to_string()),
                    agent_pid: a.pid,
                    name: a.name.to_string(),
                    policy,
                };
                let slot = match self.jobs.iter().position(Option::is_none) {
                    Some(i) => {
                        self.jobs[i] = Some(job);
                        i
                    }
                    None => {
                        self.jobs.push(Some(job));
                        self.jobs.len() - 1
                    }
                };
                Report {
                    event: Event::RecoverySpawned {
                        pid: a.pid,
                        child: child_pid,
                        attempt: attempt.unwrap_or(0),
                        trigger,
                    },
                    audit: Entry {
                        kind: Kind::Spawn,
                        pid: Some(a.pid),
                        name: a.name.to_string(),
                        child: Some(child_pid),
                        attempt,
                        detail: format!("{} trigger={} argv={}", what, trigger.as_str(), argv_text),
                    },
                    slot: Some(slot),
                }
            }
            Err(e) => {
                self.counters.spawn_failed += 1;
                let outcome = ChildOutcome::SpawnFailed {
                    errno: e.raw_os_error().unwrap_or(0),
                };
                log::error!(
                    "{} on {}: {} {}",
                    label,
                    trigger.as_str(),
                    argv_text,
                    describe(outcome)
                );
                Report {
                    event: Event::RecoveryDone {
                        pid: a.pid,
                        child: 0,
                        outcome,
                    },
                    audit: Entry {
                        kind: Kind::Complete,
                        pid: Some(a.pid),
                        name: a.name.to_string(),
                        child: None,
                        attempt,
                        detail: format!(
                            "{} trigger={} argv={} {}",
                            what,
                            trigger.as_str(),
                            argv_text,
                            describe(outcome)
                        ),
                    },
                    slot: None,
                }
            }
        }
    }

    /// The output fd of the command in `slot`.
    pub fn output_fd(&self, slot: usize) -> Option<BorrowedFd<'_>> {
        self.jobs.get(slot)?.as_ref()?.child.output_fd()
    }

    /// The command in `slot` has output to read. Returns false once its pipe is closed.
    pub fn on_output(&mut self, slot: usize) -> bool {
        match self.jobs.get_mut(slot).and_then(Option::as_mut) {
            Some(j) => j.child.read_output(),
            None => false,
        }
    }

    /// When a running command's timeout step is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.jobs.iter().flatten().filter_map(|j| j.next_at).min()
    }

    /// Stop commands that overran: SIGTERM at the timeout, SIGKILL after the grace.
    pub fn on_due(&mut self, now: Instant) {
        for j in self.jobs.iter_mut().flatten() {
            if j.next_at.is_none_or(|t| now < t) {
                continue;
            }
            let p = &j.policy;
            match child_step(p, j.child.started, j.child.term_sent, now) {
                ChildStep::WaitUntil(t) => j.next_at = Some(t),
                ChildStep::Terminate { next } => {
                    log::warn!(
                        "recovery for {} ({}): command pid {} still running after {}; SIGTERM",
                        j.name,
                        j.agent_pid,
                        j.child.pid(),
                        p.timeout
                    );
                    j.child.stop(false);
                    j.next_at = Some(next);
                }
                ChildStep::Kill => {
                    log::warn!(
                        "recovery for {} ({}): command pid {} ignored SIGTERM for {}; SIGKILL",
                        j.name,
                        j.agent_pid,
                        j.child.pid(),
                        p.kill_grace
                    );
                    j.child.stop(true);
                    j.next_at = None;
                }
            }
        }
    }

    /// Reap every command that exited (call on SIGCHLD).
    pub fn reap(&mut self, now: Instant) -> Vec<Report> {
        let mut out = Vec::new();
        for slot in 0..self.jobs.len() {
            let Some(j) = self.jobs[slot].as_mut() else {
                continue;
            };
            let Some(outcome) = j.child.try_reap() else {
                continue;
            };
            let j = self.jobs[slot].take().expect("slot checked above");
            out.push(self.finish(j, outcome, now));
        }
        out
    }

    fn finish(&mut self, mut j: Job, outcome: ChildOutcome, now: Instant) -> Report {
        // Log what is still in the pipe (bounded), then close it.
        for _ in 0..4 {
            if !j.child.read_output() {
                break;
            }
        }
        match outcome {
            ChildOutcome::Exited { code: 0 } => self.counters.succeeded += 1,
            ChildOutcome::TimedOut { .. } => self.counters.timed_out += 1,
            _ => self.counters.failed += 1,
        }
        if let Some(key) = &j.key {
            if let Some(s) = self.states.get_mut(key) {
                s.finished();
            }
        }
        let took = now.saturating_since(j.child.started);
        let (logged, dropped) = j.child.lines();
        let detail = format!(
            "{} after {} ms; output {} lines logged, {} dropped, {} bytes",
            describe(outcome),
            took.as_millis(),
            logged,
            dropped,
            j.child.bytes_read
        );
        if outcome.succeeded() {
            log::info!(
                "recovery for {} ({}): command {}",
                j.name,
                j.agent_pid,
                detail
            );
        } else {
            log::warn!(
                "recovery for {} ({}): command {}",
                j.name,
                j.agent_pid,
                detail
            );
        }
        let child = j.child.pid();
        Report {
            event: Event::RecoveryDone {
                pid: j.agent_pid,
                child,
                outcome,
            },
            audit: Entry {
                kind: Kind::Complete,
                pid: Some(j.agent_pid),
                name: j.name.clone(),
                child: Some(child),
                attempt: None,
                detail,
            },
            slot: None,
        }
    }

    /// Orderly stop: SIGTERM every running command, wait a little, SIGKILL the rest, reap.
    pub fn shutdown(&mut self, clock: impl Fn() -> Instant) -> Vec<Report> {
        if self.running() == 0 {
            return Vec::new();
        }
        for j in self.jobs.iter_mut().flatten() {
            j.child.stop(false);
        }
        let mut out = Vec::new();
        for kill in [false, true] {
            if kill {
                for j in self.jobs.iter_mut().flatten() {
                    j.child.stop(true);
                }
            }
            let until = clock() + SHUTDOWN_GRACE;
            while self.running() > 0 && clock() < until {
                out.extend(self.reap(clock()));
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            out.extend(self.reap(clock()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner(allow_udp: bool) -> Recovery {
        Recovery::new(RecoverySettings {
            exec: Some(vec!["/bin/true".into()]),
            allow_udp,
            ..RecoverySettings::default()
        })
    }

    fn view<'a>(rule: Option<&'a AgentRule>, trusted: bool, start: Option<u64>) -> AgentView<'a> {
        AgentView {
            pid: 4242,
            name: "modem",
            rule,
            start_time: start,
            trusted,
        }
    }

    fn at(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    fn kinds(r: &[Report]) -> Vec<&'static str> {
        r.iter().map(|r| r.event.kind()).collect()
    }

    fn reap_all(r: &mut Recovery) {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while r.running() > 0 && std::time::Instant::now() < end {
            r.reap(at(0));
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(r.running(), 0);
    }

    #[test]
    fn untrusted_and_unidentified_agents_are_refused() {
        let mut r = runner(false);
        let out = r.trigger(&view(None, false, None), Trigger::Stall, |_| Ok(1), at(0));
        assert!(matches!(
            out[0].event,
            Event::RecoveryRefused {
                reason: RefuseReason::Untrusted,
                ..
            }
        ));
        assert_eq!(out[0].audit.kind, Kind::Refused);
        let out = r.trigger(&view(None, true, None), Trigger::Stall, |_| Ok(1), at(0));
        assert!(matches!(
            out[0].event,
            Event::RecoveryRefused {
                reason: RefuseReason::UnknownIdentity,
                ..
            }
        ));
        let out = r.trigger(&view(None, true, Some(7)), Trigger::Stall, |_| Ok(8), at(0));
        assert!(matches!(
            out[0].event,
            Event::RecoveryRefused {
                reason: RefuseReason::PidReused,
                ..
            }
        ));
        assert_eq!(r.counters.refused, 3);
        assert_eq!(r.counters.spawned, 0);
        // Opted in: UDP agents are acted on.
        let mut r = runner(true);
        let out = r.trigger(&view(None, false, None), Trigger::Stall, |_| Ok(1), at(0));
        assert_eq!(kinds(&out), ["recovery_spawn"]);
        reap_all(&mut r);
    }

    #[test]
    fn a_gone_process_does_not_block_recovery() {
        let mut r = runner(false);
        let gone = |_| Err(io::Error::from_raw_os_error(2));
        let out = r.trigger(&view(None, true, Some(7)), Trigger::Stall, gone, at(0));
        assert_eq!(kinds(&out), ["recovery_spawn"]);
        reap_all(&mut r);
    }

    #[test]
    fn triggers_follow_the_rule() {
        let mut r = runner(false);
        let plain = AgentRule {
            name: Some("modem".into()),
            ..AgentRule::empty()
        };
        let v = view(Some(&plain), true, Some(7));
        assert!(r.trigger(&v, Trigger::Exited, |_| Ok(7), at(0)).is_empty());
        assert!(r
            .trigger(&v, Trigger::Critical, |_| Ok(7), at(0))
            .is_empty());
        let strict = AgentRule {
            required: true,
            recover_on_critical: true,
            ..plain.clone()
        };
        let v = view(Some(&strict), true, Some(7));
        assert_eq!(
            kinds(&r.trigger(&v, Trigger::Exited, |_| Ok(7), at(0))),
            ["recovery_spawn"]
        );
        reap_all(&mut r);
        assert_eq!(
            kinds(&r.trigger(&v, Trigger::Critical, |_| Ok(7), at(5000))),
            ["recovery_spawn"]
        );
        reap_all(&mut r);
        // Nothing configured at all: nothing happens.
        let mut none = Recovery::new(RecoverySettings::default());
        assert!(none
            .trigger(&v, Trigger::Stall, |_| Ok(7), at(0))
            .is_empty());
        assert!(!none.enabled(&[plain]));
    }
}
