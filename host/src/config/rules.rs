//! Agent rules: how an agent is recognised (comm, executable, systemd unit, uid) and what
//! applies to it (name, threshold, critical, required, recovery).

use std::path::PathBuf;
use varta_core::policy::recovery::{Exhausted, RecoveryPolicy};
use varta_core::time::Duration;

/// Recovery settings a rule gives; the rest come from the observer-wide policy
/// (`--recovery-debounce-ms`, `--recovery-timeout-ms`, `[observer] recovery_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyOverrides {
    /// Debounce.
    pub debounce: Option<Duration>,
    /// Attempts allowed within the window.
    pub budget: Option<u16>,
    /// Budget window.
    pub window: Option<Duration>,
    /// What happens when the budget is spent.
    pub exhausted: Option<Exhausted>,
    /// Command timeout (then SIGTERM).
    pub timeout: Option<Duration>,
    /// SIGTERM to SIGKILL.
    pub kill_grace: Option<Duration>,
}

impl PolicyOverrides {
    /// The effective policy on top of `base`.
    pub fn apply(&self, base: &RecoveryPolicy) -> RecoveryPolicy {
        RecoveryPolicy {
            debounce: self.debounce.unwrap_or(base.debounce),
            budget: self.budget.unwrap_or(base.budget),
            window: self.window.unwrap_or(base.window),
            exhausted: self.exhausted.unwrap_or(base.exhausted),
            timeout: self.timeout.unwrap_or(base.timeout),
            kill_grace: self.kill_grace.unwrap_or(base.kill_grace),
        }
    }
}

/// One `[[agent]]` rule, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentRule {
    /// Display name; also matched against `comm` when no other matcher is given.
    pub name: Option<String>,
    /// Match on the process `comm` (first 15 bytes of the executable name).
    pub comm: Option<String>,
    /// Match on the executable path (`/proc/<pid>/exe`).
    pub exe: Option<PathBuf>,
    /// Match on the systemd unit from the cgroup.
    pub unit: Option<String>,
    /// Match on the kernel-attested uid.
    pub uid: Option<u32>,
    /// Stall threshold for matching agents.
    pub threshold: Option<Duration>,
    /// Gates the hardware watchdog (embedded frontend).
    pub critical: bool,
    /// Must register within the startup grace, else reported missing.
    pub required: bool,
    /// Recovery command argv (`{pid}`, `{name}`, `{status}` substituted).
    pub recovery: Option<Vec<String>>,
    /// Run once when the budget is spent and the rule escalates (host frontend).
    pub escalation: Option<Vec<String>>,
    /// Recover when the agent reports Critical (not only on stall, terminal frame or exit).
    pub recover_on_critical: bool,
    /// Recover when the process exits (always so for required agents).
    pub recover_on_exit: bool,
    /// Debounce, budget and escalation of the recovery command (over the observer's).
    pub overrides: PolicyOverrides,
    /// Line in the config file (for messages).
    pub line: usize,
}

impl AgentRule {
    /// A rule matching nothing, with default settings.
    pub fn empty() -> Self {
        AgentRule {
            name: None,
            comm: None,
            exe: None,
            unit: None,
            uid: None,
            threshold: None,
            critical: false,
            required: false,
            recovery: None,
            escalation: None,
            recover_on_critical: false,
            recover_on_exit: false,
            overrides: PolicyOverrides::default(),
            line: 0,
        }
    }

    /// Whether the rule matches an agent with these facts. All matchers given must match;
    /// a rule with only a name matches on `comm` (truncated to 15 bytes, as the kernel does).
    pub fn matches(&self, f: &AgentFacts<'_>) -> bool {
        let explicit =
            self.comm.is_some() || self.exe.is_some() || self.unit.is_some() || self.uid.is_some();
        if !explicit {
            return match &self.name {
                Some(n) => comm_matches(n, f.comm),
                None => false,
            };
        }
        self.comm.as_deref().is_none_or(|c| comm_matches(c, f.comm))
            && self.exe.as_deref().is_none_or(|e| f.exe == Some(e))
            && self.unit.as_deref().is_none_or(|u| f.unit == Some(u))
            && self.uid.is_none_or(|u| f.uid == u)
    }
}

/// `comm` is the executable name cut to 15 bytes.
fn comm_matches(want: &str, comm: &str) -> bool {
    let b = want.as_bytes();
    let cut = &b[..b.len().min(15)];
    cut == comm.as_bytes()
}

impl AgentRule {
    /// The rule's recovery policy over the observer-wide `base`.
    pub fn policy(&self, base: &RecoveryPolicy) -> RecoveryPolicy {
        self.overrides.apply(base)
    }

    /// Label for messages: `name (line N)`.
    pub fn label(&self) -> String {
        let n = self
            .name
            .as_deref()
            .or(self.comm.as_deref())
            .unwrap_or("[[agent]]");
        format!("{} (line {})", n, self.line)
    }
}

/// What is known about a live agent process.
#[derive(Clone, Copy, Debug)]
pub struct AgentFacts<'a> {
    /// `/proc/<pid>/comm`.
    pub comm: &'a str,
    /// `/proc/<pid>/exe`.
    pub exe: Option<&'a std::path::Path>,
    /// systemd unit.
    pub unit: Option<&'a str>,
    /// Kernel-attested uid.
    pub uid: u32,
}

/// Index of the first rule matching `facts`.
pub fn match_rule(rules: &[AgentRule], facts: &AgentFacts<'_>) -> Option<usize> {
    rules.iter().position(|r| r.matches(facts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn facts<'a>(
        comm: &'a str,
        exe: Option<&'a Path>,
        unit: Option<&'a str>,
        uid: u32,
    ) -> AgentFacts<'a> {
        AgentFacts {
            comm,
            exe,
            unit,
            uid,
        }
    }

    #[test]
    fn name_only_rule_matches_comm_with_kernel_truncation() {
        let r = AgentRule {
            name: Some("very-long-daemon-name".into()),
            ..AgentRule::empty()
        };
        assert!(r.matches(&facts("very-long-daemo", None, None, 0)));
        assert!(!r.matches(&facts("other", None, None, 0)));
    }

    #[test]
    fn explicit_matchers_all_must_hold_and_first_rule_wins() {
        let exe = Path::new("/usr/bin/modemd");
        let rules = vec![
            AgentRule {
                name: Some("modem".into()),
                exe: Some(exe.into()),
                uid: Some(100),
                ..AgentRule::empty()
            },
            AgentRule {
                unit: Some("net.service".into()),
                ..AgentRule::empty()
            },
            AgentRule {
                uid: Some(100),
                ..AgentRule::empty()
            },
        ];
        assert_eq!(
            match_rule(&rules, &facts("modemd", Some(exe), None, 100)),
            Some(0)
        );
        assert_eq!(
            match_rule(&rules, &facts("modemd", Some(exe), None, 5)),
            None
        );
        assert_eq!(
            match_rule(&rules, &facts("x", None, Some("net.service"), 100)),
            Some(1)
        );
        assert_eq!(match_rule(&rules, &facts("x", None, None, 100)), Some(2));
        assert!(!AgentRule::empty().matches(&facts("x", None, None, 0)));
    }
}
