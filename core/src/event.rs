//! The one event vocabulary the frontends route to logs, exporters, recovery and the
//! watchdog gate. Events carry plain values (pids, instants, reasons); names and other
//! OS-derived facts are attached by the frontend.

use crate::policy::recovery::{ChildOutcome, RefuseReason, Trigger};
use crate::time::{Duration, Instant};
use crate::wire::{DecodeError, Status};

/// Why a datagram was not accepted. Every rejection is counted; nothing is dropped silently.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Reject {
    /// The bytes are not a valid frame (includes wrong length and truncation).
    Decode(DecodeError),
    /// The frame's pid is not the kernel-attested sender pid: a spoof.
    PidMismatch {
        /// pid written in the frame.
        claimed: u32,
        /// pid the kernel attached to the datagram.
        kernel: u32,
    },
    /// The same nonce again from the same session (duplicate or replay).
    Duplicate {
        /// The repeated nonce.
        nonce: u64,
    },
    /// Over the per-agent rate limit (never applied to Critical or terminal frames).
    RateLimited,
    /// Over the global rate limit (never applied to Critical or terminal frames).
    GlobalRateLimited,
    /// The tracker is full and no agent may be evicted (all are healthy).
    Capacity,
    /// The sender's uid/gid is not on the allow-list.
    Unauthorized {
        /// The kernel-attested uid.
        uid: u32,
    },
}

impl Reject {
    /// Stable snake_case name, used as a metric label and in exports.
    pub const fn reason(&self) -> &'static str {
        match self {
            Reject::Decode(e) => e.reason(),
            Reject::PidMismatch { .. } => "pid_mismatch",
            Reject::Duplicate { .. } => "duplicate",
            Reject::RateLimited => "rate_limited",
            Reject::GlobalRateLimited => "global_rate_limited",
            Reject::Capacity => "capacity",
            Reject::Unauthorized { .. } => "unauthorized",
        }
    }
}

impl core::fmt::Display for Reject {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Reject::Decode(e) => write!(f, "malformed frame: {}", e),
            Reject::PidMismatch { claimed, kernel } => {
                write!(f, "spoofed pid {} from process {}", claimed, kernel)
            }
            Reject::Duplicate { nonce } => write!(f, "duplicate nonce {}", nonce),
            Reject::RateLimited => f.write_str("agent over its rate limit"),
            Reject::GlobalRateLimited => f.write_str("observer over its global rate limit"),
            Reject::Capacity => f.write_str("tracker full, no agent evictable"),
            Reject::Unauthorized { uid } => write!(f, "uid {} not allowed", uid),
        }
    }
}

/// Why an agent left the tracker to make room.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EvictReason {
    /// It was stalled (silent past its threshold).
    Stalled,
    /// It had sent its terminal frame or was reported exited.
    Gone,
}

/// Why the hardware-watchdog gate withholds petting.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum GateReason {
    /// The observer loop itself missed its liveness check.
    ObserverStalled,
    /// A critical agent is unhealthy and its recovery window has run out.
    CriticalAgentLost {
        /// pid of the agent (0 if it never registered).
        pid: u32,
    },
    /// A required critical agent never registered within the startup grace.
    RequiredAgentMissing {
        /// Index of the rule that requires it.
        rule: u16,
    },
    /// Recovery escalated to a reset (budget exhausted).
    Escalated {
        /// pid of the agent whose recovery budget ran out.
        pid: u32,
    },
}

/// Everything that happens to agents and to the observer, in one type.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Event {
    /// The first accepted frame from a new agent.
    Registered {
        /// Agent pid.
        pid: u32,
        /// Its reported status.
        status: Status,
    },
    /// An accepted heartbeat.
    Beat {
        /// Agent pid.
        pid: u32,
        /// Reported status.
        status: Status,
        /// Frame nonce.
        nonce: u64,
        /// Frame payload.
        payload: u32,
    },
    /// The nonce went backwards from the same live process: a restarted client session.
    NewSession {
        /// Agent pid.
        pid: u32,
        /// Nonce the new session started at.
        nonce: u64,
    },
    /// A reused pid: the process start time changed, so this is a new agent.
    PidReused {
        /// The pid now held by another process.
        pid: u32,
    },
    /// A stalled agent beat again.
    Recovered {
        /// Agent pid.
        pid: u32,
        /// How long it had been silent.
        silent_for: Duration,
    },
    /// The agent reported Critical (an operational alarm, not dying).
    Critical {
        /// Agent pid.
        pid: u32,
        /// Frame payload (often an error code).
        payload: u32,
    },
    /// The terminal frame: Critical + nonce u64::MAX. The agent is dying; act now.
    Terminal {
        /// Agent pid.
        pid: u32,
        /// Frame payload.
        payload: u32,
    },
    /// The agent went silent past its threshold. Reported once per silence.
    Stall {
        /// Agent pid.
        pid: u32,
        /// When it last beat.
        last_beat: Instant,
        /// When the stall became due (last beat + threshold).
        deadline: Instant,
    },
    /// The process exited (pidfd readable, or reaped).
    Exited {
        /// Agent pid.
        pid: u32,
    },
    /// A datagram was rejected.
    Rejected {
        /// Sender pid if known (kernel-attested or from the frame).
        pid: Option<u32>,
        /// Why.
        reason: Reject,
    },
    /// An agent was evicted to make room for a new one.
    Evicted {
        /// Agent pid.
        pid: u32,
        /// Why it was evictable.
        reason: EvictReason,
    },
    /// A required agent did not register within the startup grace.
    Missing {
        /// Index of the rule that requires it.
        rule: u16,
    },
    /// A recovery command was started for an agent.
    RecoverySpawned {
        /// Agent pid.
        pid: u32,
        /// The command's pid (0 when it could not be started).
        child: u32,
        /// 1-based attempt within the budget window.
        attempt: u16,
        /// What set it off.
        trigger: Trigger,
    },
    /// A recovery command ended (or could not be started).
    RecoveryDone {
        /// Agent pid.
        pid: u32,
        /// The command's pid (0 when it could not be started).
        child: u32,
        /// How it ended.
        outcome: ChildOutcome,
    },
    /// A recovery was refused for safety.
    RecoveryRefused {
        /// Agent pid.
        pid: u32,
        /// Why.
        reason: RefuseReason,
    },
    /// The restart budget is spent and the rule escalates (to a board reset on the embedded
    /// frontend, to the escalation command on the host). Reported once per exhaustion.
    Escalated {
        /// Agent pid.
        pid: u32,
    },
    /// The restart budget is spent and the rule gives up (alarm only). Reported once.
    GaveUp {
        /// Agent pid.
        pid: u32,
    },
    /// The hardware-watchdog gate opened (petting resumed or started).
    GateOpened,
    /// The hardware-watchdog gate closed: petting stops.
    GateClosed {
        /// Why.
        reason: GateReason,
    },
}

impl Event {
    /// Stable snake_case kind, used as the export `kind` column and metric label.
    pub const fn kind(&self) -> &'static str {
        match self {
            Event::Registered { .. } => "register",
            Event::Beat { .. } => "beat",
            Event::NewSession { .. } => "new_session",
            Event::PidReused { .. } => "pid_reused",
            Event::Recovered { .. } => "recovered",
            Event::Critical { .. } => "critical",
            Event::Terminal { .. } => "terminal",
            Event::Stall { .. } => "stall",
            Event::Exited { .. } => "exited",
            Event::Rejected { .. } => "rejected",
            Event::Evicted { .. } => "evicted",
            Event::Missing { .. } => "missing",
            Event::RecoverySpawned { .. } => "recovery_spawn",
            Event::RecoveryDone { .. } => "recovery_done",
            Event::RecoveryRefused { .. } => "recovery_refused",
            Event::Escalated { .. } => "escalated",
            Event::GaveUp { .. } => "gave_up",
            Event::GateOpened => "gate_opened",
            Event::GateClosed { .. } => "gate_closed",
        }
    }

    /// The agent the event is about, if any.
    pub const fn pid(&self) -> Option<u32> {
        match *self {
            Event::Registered { pid, .. }
            | Event::Beat { pid, .. }
            | Event::NewSession { pid, .. }
            | Event::PidReused { pid }
            | Event::Recovered { pid, .. }
            | Event::Critical { pid, .. }
            | Event::Terminal { pid, .. }
            | Event::Stall { pid, .. }
            | Event::Exited { pid }
            | Event::Evicted { pid, .. }
            | Event::RecoverySpawned { pid, .. }
            | Event::RecoveryDone { pid, .. }
            | Event::RecoveryRefused { pid, .. }
            | Event::Escalated { pid }
            | Event::GaveUp { pid } => Some(pid),
            Event::Rejected { pid, .. } => pid,
            Event::Missing { .. } | Event::GateOpened | Event::GateClosed { .. } => None,
        }
    }
}
