//! The hardware-watchdog gate and the boot-loop guard.
//!
//! The frontend pets `/dev/watchdog` only while [`WatchdogGate::evaluate`] says
//! [`GateDecision::Pet`]. The gate is open during the startup grace; after it, every critical
//! agent must be healthy or still inside its recovery window, and every required critical
//! agent must have registered. Once the gate closes it stays closed (the board is going to
//! be reset; flapping would only hide the fault), unless the boot-loop guard has tripped:
//! then the gate keeps petting, in a degraded state, instead of resetting the board forever.
//!
//! [`BootLoopRecord`] is what the frontend writes to persistent storage (and fsyncs) before
//! it stops petting, and reads back on the next boot.

use crate::event::GateReason;
use crate::time::{Duration, Instant};

/// Gate settings.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GateConfig {
    /// Pet unconditionally for this long after start, while agents register.
    pub startup_grace: Duration,
    /// How long a critical agent may stay unhealthy (stalled, critical, exited) while
    /// recovery works on it before the gate closes.
    pub recovery_window: Duration,
    /// Consecutive watchdog resets blamed on the same agent before the guard trips
    /// (0 disables the guard).
    pub boot_loop_limit: u16,
    /// A run this long with the gate open clears the consecutive-reset count.
    pub stable_after: Duration,
}

impl GateConfig {
    /// Defaults: 60 s grace, 30 s recovery window, guard after 3 resets, stable after 10 min.
    pub const DEFAULT: GateConfig = GateConfig {
        startup_grace: Duration::from_secs(60),
        recovery_window: Duration::from_secs(30),
        boot_loop_limit: 3,
        stable_after: Duration::from_secs(600),
    };
}

impl Default for GateConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The health of one critical agent as the gate sees it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Health {
    /// Beating with Ok or Degraded status.
    Healthy,
    /// Stalled, Critical, terminal or exited since the given instant.
    Unhealthy {
        /// When it became unhealthy.
        since: Instant,
    },
    /// Its recovery budget ran out with the `Escalate` policy.
    Escalated,
}

/// One critical agent, as fed to the gate.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CriticalAgent {
    /// Current pid.
    pub pid: u32,
    /// A key stable across reboots (see [`agent_key`]), to recognise a repeat culprit.
    pub key: u32,
    /// Its health.
    pub health: Health,
}

/// The gate's verdict.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum GateDecision {
    /// Pet the watchdog.
    Pet,
    /// Do not pet: the board will be reset by the hardware watchdog.
    Withhold(GateReason),
    /// The boot-loop guard tripped: keep petting, but the device is degraded and alarming.
    PetDegraded(GateReason),
}

impl GateDecision {
    /// Whether the frontend should pet the watchdog.
    pub fn pets(&self) -> bool {
        !matches!(self, GateDecision::Withhold(_))
    }
}

/// A change the frontend must act on (log, event, LED, reset record).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum GateChange {
    /// Nothing changed.
    None,
    /// The gate just closed: write `record` to persistent storage, fsync, then stop petting.
    Closed {
        /// Why.
        reason: GateReason,
        /// The record to persist before the reset.
        record: BootLoopRecord,
    },
    /// The gate would have closed but the boot-loop guard tripped: stay up, degraded.
    GuardTripped {
        /// Why the gate would have closed.
        reason: GateReason,
    },
    /// The device has run stably long enough: persist `record` (count cleared).
    Stable {
        /// The cleared record to persist.
        record: BootLoopRecord,
    },
}

/// The hardware-watchdog gate.
#[derive(Clone, Debug)]
pub struct WatchdogGate {
    config: GateConfig,
    started: Instant,
    record: BootLoopRecord,
    state: GateDecision,
    stable_reported: bool,
}

impl WatchdogGate {
    /// A gate starting at `now`, with the boot-loop record carried over from the previous
    /// boot (see [`BootLoopRecord::carry_over`]).
    pub fn new(config: GateConfig, record: BootLoopRecord, now: Instant) -> Self {
        WatchdogGate {
            config,
            started: now,
            record,
            state: GateDecision::Pet,
            stable_reported: record.consecutive == 0,
        }
    }

    /// The current verdict, without re-evaluating.
    pub fn decision(&self) -> GateDecision {
        self.state
    }

    /// The boot-loop record as it stands.
    pub fn record(&self) -> BootLoopRecord {
        self.record
    }

    /// Whether the startup grace is still running at `now`.
    pub fn in_grace(&self, now: Instant) -> bool {
        now.saturating_since(self.started) < self.config.startup_grace
    }

    /// When the verdict could next change on time alone (end of grace, a recovery window
    /// running out, the stability mark), so the frontend can arm a timer for it.
    pub fn next_check<'a>(
        &self,
        agents: impl IntoIterator<Item = &'a CriticalAgent>,
        now: Instant,
    ) -> Option<Instant> {
        if !matches!(self.state, GateDecision::Pet) {
            return None;
        }
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| {
            if t > now {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        consider(self.started + self.config.startup_grace);
        if !self.stable_reported {
            consider(self.started + self.config.stable_after);
        }
        for a in agents {
            if let Health::Unhealthy { since } = a.health {
                consider(since + self.config.recovery_window);
            }
        }
        next
    }

    /// Evaluate the gate at `now`. `missing_required` names a required critical rule with no
    /// registered agent, if any. Returns the verdict and what changed.
    pub fn evaluate<'a>(
        &mut self,
        agents: impl IntoIterator<Item = &'a CriticalAgent>,
        missing_required: Option<u16>,
        now: Instant,
    ) -> (GateDecision, GateChange) {
        if let GateDecision::Withhold(_) = self.state {
            return (self.state, GateChange::None); // closed for good
        }
        if self.in_grace(now) {
            return (self.state, GateChange::None);
        }
        let culprit = self.find_culprit(agents, missing_required, now);
        match (culprit, self.state) {
            (None, GateDecision::Pet) => {
                if !self.stable_reported
                    && now.saturating_since(self.started) >= self.config.stable_after
                {
                    self.stable_reported = true;
                    self.record = BootLoopRecord::CLEAR;
                    return (
                        self.state,
                        GateChange::Stable {
                            record: self.record,
                        },
                    );
                }
                (self.state, GateChange::None)
            }
            (None, _) | (Some(_), GateDecision::PetDegraded(_)) => (self.state, GateChange::None),
            (Some((reason, key)), _) => {
                let next = self.record.blame(key, reason_code(&reason));
                let limit = self.config.boot_loop_limit;
                if limit != 0 && next.consecutive > limit {
                    self.state = GateDecision::PetDegraded(reason);
                    (self.state, GateChange::GuardTripped { reason })
                } else {
                    self.record = next;
                    self.state = GateDecision::Withhold(reason);
                    (
                        self.state,
                        GateChange::Closed {
                            reason,
                            record: next,
                        },
                    )
                }
            }
        }
    }

    fn find_culprit<'a>(
        &self,
        agents: impl IntoIterator<Item = &'a CriticalAgent>,
        missing_required: Option<u16>,
        now: Instant,
    ) -> Option<(GateReason, u32)> {
        for a in agents {
            match a.health {
                Health::Healthy => {}
                Health::Escalated => return Some((GateReason::Escalated { pid: a.pid }, a.key)),
                Health::Unhealthy { since } => {
                    if now.saturating_since(since) >= self.config.recovery_window {
                        return Some((GateReason::CriticalAgentLost { pid: a.pid }, a.key));
                    }
                }
            }
        }
        missing_required.map(|rule| {
            (
                GateReason::RequiredAgentMissing { rule },
                0x8000_0000 | rule as u32,
            )
        })
    }

    /// The observer's own loop missed its liveness check: close the gate at once (no
    /// boot-loop guard: a wedged observer cannot be trusted to keep the board safe).
    pub fn observer_stalled(&mut self) -> (GateDecision, GateChange) {
        if let GateDecision::Withhold(_) = self.state {
            return (self.state, GateChange::None);
        }
        let reason = GateReason::ObserverStalled;
        self.record = self.record.blame(0, reason_code(&reason));
        self.state = GateDecision::Withhold(reason);
        (
            self.state,
            GateChange::Closed {
                reason,
                record: self.record,
            },
        )
    }
}

fn reason_code(r: &GateReason) -> u8 {
    match r {
        GateReason::ObserverStalled => 1,
        GateReason::CriticalAgentLost { .. } => 2,
        GateReason::RequiredAgentMissing { .. } => 3,
        GateReason::Escalated { .. } => 4,
    }
}

/// A stable 32-bit key for an agent name (FNV-1a), to recognise the same culprit across
/// reboots when pids differ.
pub fn agent_key(name: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in name {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// What survives a reset: which agent the last gate closure blamed, why, and how many
/// consecutive watchdog resets it has caused.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BootLoopRecord {
    /// Consecutive watchdog resets blamed on `culprit`.
    pub consecutive: u16,
    /// [`agent_key`] of the agent blamed (0 for the observer itself).
    pub culprit: u32,
    /// Reason code of the last closure (1 observer, 2 agent lost, 3 missing, 4 escalated).
    pub reason: u8,
}

/// Why a stored record could not be read.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RecordError {
    /// Shorter than [`BootLoopRecord::LEN`].
    Short,
    /// Not a record of ours.
    BadMagic,
    /// A format version this build does not know.
    BadVersion,
    /// The checksum does not match (torn write, flash corruption).
    BadChecksum,
}

impl BootLoopRecord {
    /// Encoded size.
    pub const LEN: usize = 16;
    const MAGIC: [u8; 4] = *b"VRBL";
    const VERSION: u8 = 1;

    /// No resets counted.
    pub const CLEAR: BootLoopRecord = BootLoopRecord {
        consecutive: 0,
        culprit: 0,
        reason: 0,
    };

    /// The record after one more closure blamed on `culprit`.
    pub fn blame(&self, culprit: u32, reason: u8) -> BootLoopRecord {
        let consecutive = if self.consecutive > 0 && self.culprit == culprit {
            self.consecutive.saturating_add(1)
        } else {
            1
        };
        BootLoopRecord {
            consecutive,
            culprit,
            reason,
        }
    }

    /// What to start this boot with, given the stored record (if readable) and whether the
    /// hardware says the last reset was the watchdog's. Any other kind of boot (power-on,
    /// orderly reboot) breaks the chain.
    pub fn carry_over(stored: Option<BootLoopRecord>, watchdog_reset: bool) -> BootLoopRecord {
        match stored {
            Some(r) if watchdog_reset => r,
            _ => BootLoopRecord::CLEAR,
        }
    }

    /// Encode: magic, version, reason, consecutive (LE), culprit (LE), pad, CRC-32C (LE).
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0..4].copy_from_slice(&Self::MAGIC);
        b[4] = Self::VERSION;
        b[5] = self.reason;
        b[6..8].copy_from_slice(&self.consecutive.to_le_bytes());
        b[8..12].copy_from_slice(&self.culprit.to_le_bytes());
        let crc = crate::wire::crc32c(&b[0..12]);
        b[12..16].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decode what [`BootLoopRecord::to_bytes`] wrote.
    pub fn from_bytes(b: &[u8]) -> Result<BootLoopRecord, RecordError> {
        if b.len() < Self::LEN {
            return Err(RecordError::Short);
        }
        if b[0..4] != Self::MAGIC {
            return Err(RecordError::BadMagic);
        }
        if b[4] != Self::VERSION {
            return Err(RecordError::BadVersion);
        }
        let crc = u32::from_le_bytes([b[12], b[13], b[14], b[15]]);
        if crc != crate::wire::crc32c(&b[0..12]) {
            return Err(RecordError::BadChecksum);
        }
        Ok(BootLoopRecord {
            reason: b[5],
            consecutive: u16::from_le_bytes([b[6], b[7]]),
            culprit: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Instant {
        Instant::from_nanos(n * 1_000_000_000)
    }

    fn cfg() -> GateConfig {
        GateConfig {
            startup_grace: Duration::from_secs(10),
            recovery_window: Duration::from_secs(5),
            boot_loop_limit: 2,
            stable_after: Duration::from_secs(100),
        }
    }

    fn agent(pid: u32, health: Health) -> CriticalAgent {
        CriticalAgent {
            pid,
            key: agent_key(b"modem"),
            health,
        }
    }

    #[test]
    fn grace_pets_unconditionally() {
        let mut g = WatchdogGate::new(cfg(), BootLoopRecord::CLEAR, s(0));
        let dead = [agent(7, Health::Unhealthy { since: s(0) })];
        assert_eq!(g.evaluate(&dead, Some(0), s(9)).0, GateDecision::Pet);
        assert!(g.in_grace(s(9)));
        assert_eq!(g.next_check(&dead, s(9)), Some(s(10)));
    }

    #[test]
    fn unhealthy_critical_agent_closes_after_recovery_window() {
        let mut g = WatchdogGate::new(cfg(), BootLoopRecord::CLEAR, s(0));
        let healthy = [agent(7, Health::Healthy)];
        assert_eq!(
            g.evaluate(&healthy, None, s(20)),
            (GateDecision::Pet, GateChange::None)
        );
        let sick = [agent(7, Health::Unhealthy { since: s(20) })];
        assert_eq!(g.evaluate(&sick, None, s(24)).0, GateDecision::Pet);
        assert_eq!(g.next_check(&sick, s(24)), Some(s(25)));
        let (d, c) = g.evaluate(&sick, None, s(25));
        let reason = GateReason::CriticalAgentLost { pid: 7 };
        assert_eq!(d, GateDecision::Withhold(reason));
        assert_eq!(
            c,
            GateChange::Closed {
                reason,
                record: BootLoopRecord {
                    consecutive: 1,
                    culprit: agent_key(b"modem"),
                    reason: 2
                }
            }
        );
        // Closed for good, even if the agent comes back.
        assert_eq!(g.evaluate(&healthy, None, s(26)), (d, GateChange::None));
        assert!(!g.decision().pets());
    }

    #[test]
    fn escalation_and_missing_required_close_the_gate() {
        let mut g = WatchdogGate::new(cfg(), BootLoopRecord::CLEAR, s(0));
        let esc = [agent(9, Health::Escalated)];
        assert_eq!(
            g.evaluate(&esc, None, s(11)).0,
            GateDecision::Withhold(GateReason::Escalated { pid: 9 })
        );
        let mut g = WatchdogGate::new(cfg(), BootLoopRecord::CLEAR, s(0));
        assert_eq!(
            g.evaluate(&[], Some(3), s(11)).0,
            GateDecision::Withhold(GateReason::RequiredAgentMissing { rule: 3 })
        );
    }

    #[test]
    fn boot_loop_guard_trips_after_limit_for_same_culprit() {
        let sick = [agent(7, Health::Unhealthy { since: s(0) })];
        let mut record = BootLoopRecord::CLEAR;
        // Two resets blamed on the same agent are allowed (limit 2)…
        for boot in 1..=2u16 {
            let mut g = WatchdogGate::new(cfg(), record, s(0));
            match g.evaluate(&sick, None, s(11)).1 {
                GateChange::Closed { record: r, .. } => {
                    assert_eq!(r.consecutive, boot);
                    // persisted, the board resets, and the next boot reads it back
                    let stored = BootLoopRecord::from_bytes(&r.to_bytes()).unwrap();
                    record = BootLoopRecord::carry_over(Some(stored), true);
                }
                other => panic!("boot {}: {:?}", boot, other),
            }
        }
        // …the third keeps petting, degraded.
        let mut g = WatchdogGate::new(cfg(), record, s(0));
        let (d, c) = g.evaluate(&sick, None, s(11));
        let reason = GateReason::CriticalAgentLost { pid: 7 };
        assert_eq!(d, GateDecision::PetDegraded(reason));
        assert!(d.pets());
        assert_eq!(c, GateChange::GuardTripped { reason });
        assert_eq!(g.evaluate(&sick, None, s(12)).1, GateChange::None);
    }

    #[test]
    fn other_culprit_or_power_on_restarts_the_count() {
        let r = BootLoopRecord::CLEAR.blame(1, 2).blame(1, 2);
        assert_eq!(r.consecutive, 2);
        assert_eq!(r.blame(5, 2).consecutive, 1);
        assert_eq!(
            BootLoopRecord::carry_over(Some(r), false),
            BootLoopRecord::CLEAR
        );
        assert_eq!(
            BootLoopRecord::carry_over(None, true),
            BootLoopRecord::CLEAR
        );
    }

    #[test]
    fn stable_run_clears_the_count_once() {
        let r = BootLoopRecord::CLEAR.blame(1, 2);
        let mut g = WatchdogGate::new(cfg(), r, s(0));
        assert_eq!(g.next_check(&[], s(50)), Some(s(100)));
        assert_eq!(g.evaluate(&[], None, s(99)).1, GateChange::None);
        assert_eq!(
            g.evaluate(&[], None, s(100)).1,
            GateChange::Stable {
                record: BootLoopRecord::CLEAR
            }
        );
        assert_eq!(g.evaluate(&[], None, s(101)).1, GateChange::None);
    }

    #[test]
    fn observer_stall_closes_without_guard() {
        let mut g = WatchdogGate::new(cfg(), BootLoopRecord::CLEAR.blame(0, 1).blame(0, 1), s(0));
        let (d, _) = g.observer_stalled();
        assert_eq!(d, GateDecision::Withhold(GateReason::ObserverStalled));
    }

    #[test]
    fn record_bytes_round_trip_and_reject_damage() {
        let r = BootLoopRecord {
            consecutive: 513,
            culprit: 0xdead_beef,
            reason: 4,
        };
        let b = r.to_bytes();
        assert_eq!(BootLoopRecord::from_bytes(&b), Ok(r));
        assert_eq!(
            BootLoopRecord::from_bytes(&b[..15]),
            Err(RecordError::Short)
        );
        for i in 0..BootLoopRecord::LEN {
            let mut d = b;
            d[i] ^= 0x10;
            assert!(
                BootLoopRecord::from_bytes(&d).is_err(),
                "flip in byte {}",
                i
            );
        }
        let mut v = b;
        v[4] = 9;
        assert_eq!(BootLoopRecord::from_bytes(&v), Err(RecordError::BadVersion));
        let mut m = b;
        m[0] = b'X';
        assert_eq!(BootLoopRecord::from_bytes(&m), Err(RecordError::BadMagic));
    }
}
