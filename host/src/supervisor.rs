//! A hook for whatever the loop supervises beyond agents: on the embedded frontend, the
//! hardware watchdog and the status LED. The loop feeds it every event with the agent's
//! name and rule, asks when it next needs a wake-up, and calls it when that time comes, so a
//! frozen loop freezes the supervisor too (no pets, no LED edges): that is the point.

use crate::audit::record::Entry;
use crate::config::AgentRule;
use varta_core::event::Event;
use varta_core::time::Instant;

/// The agent an event is about, as the loop knows it.
#[derive(Copy, Clone, Debug)]
pub struct AgentInfo<'a> {
    /// Kernel pid.
    pub pid: u32,
    /// Rule name, else `comm`.
    pub name: &'a str,
    /// The matching rule.
    pub rule: Option<&'a AgentRule>,
}

/// Something the supervisor wants exported and/or audited.
#[derive(Clone, Debug)]
pub struct Notice {
    /// An event for the exporters and the log.
    pub event: Option<Event>,
    /// A record for the audit log (written, and synced, before the event is exported).
    pub audit: Option<Entry>,
}

/// A one-line view of the supervised hardware for `status` and `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct HardwareStatus {
    /// Watchdog identity and device (`i6300ESB timer on /dev/watchdog`), empty if none.
    pub watchdog: String,
    /// The timeout the driver achieved, seconds.
    pub timeout_s: u32,
    /// `open`, `closed` (petting stopped) or `degraded` (the boot-loop guard keeps petting).
    pub gate: &'static str,
    /// Keepalives sent.
    pub pets: u64,
    /// Keepalive errors.
    pub pet_errors: u64,
    /// What the LED shows (`healthy`, `degraded`, `gate_closing`, `boot_loop_guard`, `off`).
    pub led: &'static str,
    /// Why the board was last reset, as reported at start-up.
    pub last_reset: String,
    /// Consecutive watchdog resets blamed on the same agent.
    pub consecutive_resets: u16,
}

/// The hook. Every method has a do-nothing default; `()` is the host's (no hardware).
pub trait Supervisor {
    /// False for a supervisor that ignores events, so the loop skips resolving the agent
    /// for each of them (every beat would pay a lookup for nothing).
    const ACTIVE: bool = true;
    /// The rules in force (at start and after every reload).
    fn set_rules(&mut self, _rules: &[AgentRule], _now: Instant) {}
    /// An event the loop routed (agent events and recovery reports alike).
    fn on_event(&mut self, _e: &Event, _agent: Option<AgentInfo<'_>>, _now: Instant) {}
    /// When the supervisor next needs the loop (a pet, an LED edge, a gate check).
    fn next_due(&self) -> Option<Instant> {
        None
    }
    /// Called on every wake-up; does what is due and appends what it wants reported.
    fn on_due(&mut self, _now: Instant, _out: &mut Vec<Notice>) {}
    /// Orderly stop (SIGTERM or the shutdown time).
    fn stop(&mut self, _now: Instant, _out: &mut Vec<Notice>) {}
    /// For `status` and `/metrics`.
    fn status(&self) -> Option<HardwareStatus> {
        None
    }
}

impl Supervisor for () {
    const ACTIVE: bool = false;
}
