//! Recovery decisions: debounce, a restart budget of N attempts within a sliding window, and
//! the escalation ladder (restart → escalate to a reset, or give up and alarm), plus the
//! timeout ladder of one running recovery command (wait → SIGTERM → SIGKILL).
//!
//! Everything here is arithmetic over instants the caller passes in; spawning, signalling
//! and reaping are the frontend's job.

use crate::time::{Duration, Instant};
use heapless::Deque;

/// Most attempts a budget may allow within its window.
pub const MAX_BUDGET: usize = 16;

/// What to do once the restart budget is spent.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Exhausted {
    /// Stop restarting and ask for a board reset (closes the watchdog gate for critical agents).
    Escalate,
    /// Stop restarting and raise an alarm; the board keeps running.
    GiveUp,
}

/// A recovery policy for one agent rule.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RecoveryPolicy {
    /// Triggers closer together than this are folded into the first one.
    pub debounce: Duration,
    /// Attempts allowed within `window` (1..=[`MAX_BUDGET`]).
    pub budget: u16,
    /// The sliding window the budget counts over.
    pub window: Duration,
    /// What happens when the budget is spent.
    pub exhausted: Exhausted,
    /// How long a recovery command may run before it is sent SIGTERM.
    pub timeout: Duration,
    /// How long after SIGTERM before SIGKILL.
    pub kill_grace: Duration,
}

impl RecoveryPolicy {
    /// Defaults: debounce 1 s, 3 attempts within 5 minutes, then give up; command timeout 10 s,
    /// SIGKILL 2 s after SIGTERM.
    pub const DEFAULT: RecoveryPolicy = RecoveryPolicy {
        debounce: Duration::from_secs(1),
        budget: 3,
        window: Duration::from_secs(300),
        exhausted: Exhausted::GiveUp,
        timeout: Duration::from_secs(10),
        kill_grace: Duration::from_secs(2),
    };

    /// Check that the policy can work as written.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.budget == 0 || self.budget as usize > MAX_BUDGET {
            return Err(PolicyError::BudgetOutOfRange {
                budget: self.budget,
            });
        }
        if self.timeout == Duration::ZERO {
            return Err(PolicyError::ZeroTimeout);
        }
        // With triggers at least `debounce` apart, `budget` attempts span (budget-1)×debounce
        // at the very least; a shorter window would let attempts slide out before the budget
        // could ever be reached, so the budget would never bind.
        let span = self.debounce.saturating_mul(self.budget as u64);
        if self.window < span {
            return Err(PolicyError::WindowTooShort {
                window: self.window,
                needed: span,
            });
        }
        Ok(())
    }
}

impl Default for RecoveryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why a [`RecoveryPolicy`] is invalid.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PolicyError {
    /// Budget is zero or above [`MAX_BUDGET`].
    BudgetOutOfRange {
        /// The budget given.
        budget: u16,
    },
    /// The command timeout is zero.
    ZeroTimeout,
    /// The window is shorter than budget × debounce.
    WindowTooShort {
        /// The window given.
        window: Duration,
        /// budget × debounce.
        needed: Duration,
    },
}

impl core::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PolicyError::BudgetOutOfRange { budget } => {
                write!(f, "budget {} out of range 1..={}", budget, MAX_BUDGET)
            }
            PolicyError::ZeroTimeout => f.write_str("recovery timeout must be above zero"),
            PolicyError::WindowTooShort { window, needed } => write!(
                f,
                "window {} is shorter than budget x debounce ({}), so the budget could never bind",
                window, needed
            ),
        }
    }
}

/// The verdict on one trigger (stall, terminal frame, exit…).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Decision {
    /// Run the recovery command now; this is attempt `attempt` (1-based) within the window.
    Run {
        /// 1-based attempt number within the window.
        attempt: u16,
    },
    /// Within the debounce of the previous trigger: do nothing.
    Debounced,
    /// A recovery command for this agent is still running: do nothing.
    Busy,
    /// The budget has just been spent: escalate to a reset. Reported once per exhaustion.
    Escalate,
    /// The budget has just been spent: give up and alarm. Reported once per exhaustion.
    GiveUp,
    /// Already exhausted and reported; stays so until attempts age out of the window.
    Suppressed,
}

/// Per-agent recovery bookkeeping (fits in a few hundred bytes; no allocation).
#[derive(Clone, Debug, Default)]
pub struct RecoveryState {
    attempts: Deque<Instant, MAX_BUDGET>,
    last_trigger: Option<Instant>,
    exhausted: bool,
    running: Option<Instant>,
}

impl RecoveryState {
    /// A fresh state.
    pub const fn new() -> Self {
        RecoveryState {
            attempts: Deque::new(),
            last_trigger: None,
            exhausted: false,
            running: None,
        }
    }

    /// Decide what to do about a trigger at `now`. On [`Decision::Run`] the attempt is counted
    /// and the command is considered running until [`RecoveryState::finished`].
    pub fn decide(&mut self, policy: &RecoveryPolicy, now: Instant) -> Decision {
        if self.running.is_some() {
            return Decision::Busy;
        }
        if let Some(last) = self.last_trigger {
            if now.saturating_since(last) < policy.debounce {
                return Decision::Debounced;
            }
        }
        self.last_trigger = Some(now);
        self.age_out(policy, now);
        let budget = (policy.budget as usize).clamp(1, MAX_BUDGET);
        if self.attempts.len() < budget {
            self.exhausted = false;
            // Cannot fail: len < budget <= capacity.
            let _ = self.attempts.push_back(now);
            self.running = Some(now);
            return Decision::Run {
                attempt: self.attempts.len() as u16,
            };
        }
        if self.exhausted {
            return Decision::Suppressed;
        }
        self.exhausted = true;
        match policy.exhausted {
            Exhausted::Escalate => Decision::Escalate,
            Exhausted::GiveUp => Decision::GiveUp,
        }
    }

    /// Drop attempts older than the window.
    fn age_out(&mut self, policy: &RecoveryPolicy, now: Instant) {
        while let Some(&t) = self.attempts.front() {
            if now.saturating_since(t) >= policy.window {
                self.attempts.pop_front();
            } else {
                break;
            }
        }
    }

    /// The recovery command ended (exited or was killed and reaped).
    pub fn finished(&mut self) {
        self.running = None;
    }

    /// When the running command started, if one is running.
    pub fn running_since(&self) -> Option<Instant> {
        self.running
    }

    /// Attempts counted in the window as of the last decision.
    pub fn attempts(&self) -> usize {
        self.attempts.len()
    }

    /// Whether the budget is spent (and the escalation/give-up was reported).
    pub fn is_exhausted(&self) -> bool {
        self.exhausted
    }

    /// When the budget frees up again (the oldest counted attempt leaves the window).
    pub fn budget_frees_at(&self, policy: &RecoveryPolicy) -> Option<Instant> {
        self.attempts.front().map(|&t| t + policy.window)
    }
}

/// What set off a recovery.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Trigger {
    /// Silent past its threshold.
    Stall,
    /// Sent its terminal frame (Critical + nonce `u64::MAX`): dying.
    Terminal,
    /// The process exited (required agents, or rules that ask for it).
    Exited,
    /// Reported Critical status (rules that ask for it).
    Critical,
}

impl Trigger {
    /// Stable lower-case name (`{status}` in recovery commands, export and audit columns).
    pub const fn as_str(self) -> &'static str {
        match self {
            Trigger::Stall => "stall",
            Trigger::Terminal => "terminal",
            Trigger::Exited => "exited",
            Trigger::Critical => "critical",
        }
    }
}

/// How a recovery command ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ChildOutcome {
    /// It exited by itself with this code.
    Exited {
        /// Exit code.
        code: i32,
    },
    /// It died of a signal it was not sent by the observer.
    Signaled {
        /// Signal number.
        signal: i32,
    },
    /// It overran its timeout and was stopped by the observer.
    TimedOut {
        /// Whether SIGKILL was needed (SIGTERM was not enough within the grace).
        killed: bool,
    },
    /// It could not be started at all.
    SpawnFailed {
        /// The OS error number (ENOENT, EACCES, ...).
        errno: i32,
    },
}

impl ChildOutcome {
    /// Whether the command did its job (exit code 0).
    pub const fn succeeded(self) -> bool {
        matches!(self, ChildOutcome::Exited { code: 0 })
    }

    /// Stable lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ChildOutcome::Exited { .. } => "exited",
            ChildOutcome::Signaled { .. } => "signaled",
            ChildOutcome::TimedOut { killed: false } => "timeout_term",
            ChildOutcome::TimedOut { killed: true } => "timeout_kill",
            ChildOutcome::SpawnFailed { .. } => "spawn_failed",
        }
    }
}

/// Why the observer refused to run a recovery command.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RefuseReason {
    /// The pid now belongs to another process (start time changed).
    PidReused,
    /// The agent came over an unauthenticated transport (plain UDP).
    Untrusted,
    /// The agent's identity (start time) could not be established.
    UnknownIdentity,
}

impl RefuseReason {
    /// Stable snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            RefuseReason::PidReused => "pid_reused",
            RefuseReason::Untrusted => "untrusted_transport",
            RefuseReason::UnknownIdentity => "unknown_identity",
        }
    }
}

/// What to do with a running recovery command at `now`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ChildStep {
    /// Nothing yet; look again at this instant (or when it exits).
    WaitUntil(Instant),
    /// Send SIGTERM now; look again at the instant given.
    Terminate {
        /// When to look again (SIGKILL is due then).
        next: Instant,
    },
    /// Send SIGKILL now.
    Kill,
}

/// The timeout ladder of one running command: at `started + timeout` SIGTERM, at
/// `started + timeout + kill_grace` SIGKILL. `term_sent` says whether SIGTERM went out.
pub fn child_step(
    policy: &RecoveryPolicy,
    started: Instant,
    term_sent: bool,
    now: Instant,
) -> ChildStep {
    let term_at = started + policy.timeout;
    let kill_at = term_at + policy.kill_grace;
    if now < term_at {
        ChildStep::WaitUntil(term_at)
    } else if now >= kill_at && term_sent {
        ChildStep::Kill
    } else if !term_sent {
        ChildStep::Terminate {
            next: (now + policy.kill_grace).max(kill_at),
        }
    } else {
        ChildStep::WaitUntil(kill_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Instant {
        Instant::from_nanos(n * 1_000_000)
    }

    fn policy(budget: u16, window_ms: u64, exhausted: Exhausted) -> RecoveryPolicy {
        RecoveryPolicy {
            debounce: Duration::from_millis(100),
            budget,
            window: Duration::from_millis(window_ms),
            exhausted,
            timeout: Duration::from_millis(1000),
            kill_grace: Duration::from_millis(500),
        }
    }

    #[test]
    fn validate_rejects_unworkable_policies() {
        assert_eq!(RecoveryPolicy::DEFAULT.validate(), Ok(()));
        let mut p = policy(3, 10_000, Exhausted::GiveUp);
        assert_eq!(p.validate(), Ok(()));
        p.budget = 0;
        assert!(matches!(
            p.validate(),
            Err(PolicyError::BudgetOutOfRange { budget: 0 })
        ));
        p.budget = 17;
        assert!(p.validate().is_err());
        p.budget = 3;
        p.window = Duration::from_millis(299);
        assert_eq!(
            p.validate(),
            Err(PolicyError::WindowTooShort {
                window: Duration::from_millis(299),
                needed: Duration::from_millis(300)
            })
        );
        p.window = Duration::from_millis(300);
        assert_eq!(p.validate(), Ok(()));
        p.timeout = Duration::ZERO;
        assert_eq!(p.validate(), Err(PolicyError::ZeroTimeout));
    }

    #[test]
    fn debounce_folds_close_triggers() {
        let p = policy(3, 10_000, Exhausted::GiveUp);
        let mut s = RecoveryState::new();
        assert_eq!(s.decide(&p, ms(0)), Decision::Run { attempt: 1 });
        s.finished();
        assert_eq!(s.decide(&p, ms(99)), Decision::Debounced);
        assert_eq!(s.attempts(), 1);
        assert_eq!(s.decide(&p, ms(100)), Decision::Run { attempt: 2 });
    }

    #[test]
    fn running_command_makes_triggers_busy() {
        let p = policy(3, 10_000, Exhausted::GiveUp);
        let mut s = RecoveryState::new();
        assert_eq!(s.decide(&p, ms(0)), Decision::Run { attempt: 1 });
        assert_eq!(s.running_since(), Some(ms(0)));
        assert_eq!(s.decide(&p, ms(500)), Decision::Busy);
        s.finished();
        assert_eq!(s.decide(&p, ms(600)), Decision::Run { attempt: 2 });
    }

    #[test]
    fn budget_exhaustion_escalates_once_then_suppresses() {
        let p = policy(2, 10_000, Exhausted::Escalate);
        let mut s = RecoveryState::new();
        for (t, want) in [
            (0, Decision::Run { attempt: 1 }),
            (1000, Decision::Run { attempt: 2 }),
            (2000, Decision::Escalate),
            (3000, Decision::Suppressed),
            (4000, Decision::Suppressed),
        ] {
            assert_eq!(s.decide(&p, ms(t)), want, "at {} ms", t);
            s.finished();
        }
        assert!(s.is_exhausted());
        assert_eq!(s.budget_frees_at(&p), Some(ms(10_000)));
    }

    #[test]
    fn give_up_and_budget_frees_as_attempts_age_out() {
        let p = policy(2, 10_000, Exhausted::GiveUp);
        let mut s = RecoveryState::new();
        assert_eq!(s.decide(&p, ms(0)), Decision::Run { attempt: 1 });
        s.finished();
        assert_eq!(s.decide(&p, ms(5000)), Decision::Run { attempt: 2 });
        s.finished();
        assert_eq!(s.decide(&p, ms(6000)), Decision::GiveUp);
        assert_eq!(s.decide(&p, ms(9800)), Decision::Suppressed);
        // The first attempt leaves the window at 10 s: one attempt is free again.
        assert_eq!(s.decide(&p, ms(10_000)), Decision::Run { attempt: 2 });
        assert!(!s.is_exhausted());
        s.finished();
        assert_eq!(s.decide(&p, ms(11_000)), Decision::GiveUp);
    }

    #[test]
    fn child_ladder_term_then_kill() {
        let p = policy(1, 1000, Exhausted::GiveUp);
        let start = ms(100);
        assert_eq!(
            child_step(&p, start, false, ms(100)),
            ChildStep::WaitUntil(ms(1100))
        );
        assert_eq!(
            child_step(&p, start, false, ms(1099)),
            ChildStep::WaitUntil(ms(1100))
        );
        assert_eq!(
            child_step(&p, start, false, ms(1100)),
            ChildStep::Terminate { next: ms(1600) }
        );
        assert_eq!(
            child_step(&p, start, true, ms(1300)),
            ChildStep::WaitUntil(ms(1600))
        );
        assert_eq!(child_step(&p, start, true, ms(1600)), ChildStep::Kill);
        // A late look (loop was busy) still sends SIGTERM first and gives the grace from then.
        assert_eq!(
            child_step(&p, start, false, ms(5000)),
            ChildStep::Terminate { next: ms(5500) }
        );
    }
}
