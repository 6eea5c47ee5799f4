//! The hardware supervisor the observer loop drives: it keeps the health of every critical
//! agent from the loop's events, asks the core's gate whether to pet, pets on the core's
//! schedule, persists the reset reason before it stops petting, and drives the LED with the
//! core's patterns. Devices are traits (the core's [`Watchdog`], `OutputPin`, [`Persist`]),
//! so all of this is tested with fakes; the QEMU suite tests it on real drivers.

use crate::reset::{ResetReason, StateDir};
use embedded_hal::digital::OutputPin;
use std::collections::HashSet;
use varta_core::event::{Event, GateReason};
use varta_core::policy::gate::{
    agent_key, BootLoopRecord, CriticalAgent, GateChange, GateConfig, GateDecision, Health,
    WatchdogGate,
};
use varta_core::policy::led::{LedDriver, LedState};
use varta_core::policy::pet::{PetSchedule, Watchdog};
use varta_core::time::{Duration, Instant};
use varta_core::Status;
use varta_host::audit::record::{Entry, Kind};
use varta_host::config::AgentRule;
use varta_host::supervisor::{AgentInfo, HardwareStatus, Notice, Supervisor};

/// Where the supervisor persists what must survive a reset.
pub trait Persist {
    /// The gate closed: persist the count and the reason, durably, before petting stops.
    fn closing(&mut self, record: &BootLoopRecord, reason: &ResetReason) -> std::io::Result<()>;
    /// The device ran stably: persist the cleared count.
    fn stable(&mut self, record: &BootLoopRecord) -> std::io::Result<()>;
}

impl Persist for StateDir {
    fn closing(&mut self, record: &BootLoopRecord, reason: &ResetReason) -> std::io::Result<()> {
        self.write_record(record)?;
        self.write_reason(reason)
    }
    fn stable(&mut self, record: &BootLoopRecord) -> std::io::Result<()> {
        self.write_record(record)
    }
}

/// Supervisor settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Gate settings (grace, recovery window, boot-loop limit).
    pub gate: GateConfig,
    /// Wanted pet interval (clamped to half the achieved timeout).
    pub pet_interval: Duration,
    /// Disarm with the magic close on an orderly stop.
    pub magic_close: bool,
    /// LED is lit when the pin is low.
    pub led_active_low: bool,
    /// The watchdog's description for status (`i6300ESB timer on /dev/watchdog`).
    pub watchdog_name: String,
    /// The driver is `nowayout` (cannot be disarmed).
    pub nowayout: Option<bool>,
    /// "last reset: ..." as found at start-up.
    pub last_reset: String,
}

struct Critical {
    name: String,
    pid: u32,
    health: Health,
}

/// The hardware supervisor.
pub struct Hardware<W: Watchdog, P: OutputPin, S: Persist> {
    cfg: Settings,
    gate: WatchdogGate,
    wd: Option<W>,
    schedule: Option<PetSchedule>,
    led: Option<LedDriver<P>>,
    led_next: Option<Instant>,
    led_failed: bool,
    store: S,
    critical: Vec<Critical>,
    required: Vec<(u16, String)>,
    unhealthy: HashSet<u32>,
    pending: Vec<Notice>,
    pets: u64,
    pet_errors: u64,
    closed: bool,
    last_now: Instant,
}

fn why(r: &GateReason) -> &'static str {
    match r {
        GateReason::ObserverStalled => "observer_stalled",
        GateReason::CriticalAgentLost { .. } => "critical_agent_lost",
        GateReason::RequiredAgentMissing { .. } => "required_agent_missing",
        GateReason::Escalated { .. } => "escalated",
    }
}

/// An audit record about the board's reset, blaming `name` (`pid`).
fn reset_entry(pid: u32, name: String, detail: String) -> Entry {
    Entry {
        kind: Kind::ResetReason,
        pid: Some(pid),
        name,
        child: None,
        attempt: None,
        detail,
    }
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl<W: Watchdog, P: OutputPin, S: Persist> Hardware<W, P, S> {
    /// A supervisor starting at `now` with the boot-loop record carried over from the
    /// previous boot. `wd` None: no watchdog (LED only).
    pub fn new(
        cfg: Settings,
        wd: Option<W>,
        led: Option<P>,
        store: S,
        record: BootLoopRecord,
        now: Instant,
    ) -> Self {
        let schedule = wd
            .as_ref()
            .map(|w| PetSchedule::new(cfg.pet_interval, w.timeout(), now));
        let led = led.map(|p| LedDriver::new(p, cfg.led_active_low, now));
        let mut h = Hardware {
            gate: WatchdogGate::new(cfg.gate, record, now),
            cfg,
            wd,
            schedule,
            led,
            led_next: None,
            led_failed: false,
            store,
            critical: Vec::new(),
            required: Vec::new(),
            unhealthy: HashSet::new(),
            pending: Vec::new(),
            pets: 0,
            pet_errors: 0,
            closed: false,
            last_now: now,
        };
        h.pending.push(Notice {
            event: None,
            audit: Some(Entry::note(Kind::ResetReason, h.cfg.last_reset.clone())),
        });
        h.tick(now);
        h
    }

    /// The gate's verdict now.
    pub fn decision(&self) -> GateDecision {
        self.gate.decision()
    }

    /// What the LED shows.
    pub fn led_state(&self) -> Option<LedState> {
        self.led.as_ref().map(|l| l.state())
    }

    /// Keepalives sent.
    pub fn pets(&self) -> u64 {
        self.pets
    }

    /// The watchdog (tests inspect the fake).
    pub fn watchdog(&self) -> Option<&W> {
        self.wd.as_ref()
    }

    /// The persistence (tests inspect the fake).
    pub fn store(&self) -> &S {
        &self.store
    }

    fn agents(&self) -> Vec<CriticalAgent> {
        self.critical
            .iter()
            .map(|c| CriticalAgent {
                pid: c.pid,
                key: agent_key(c.name.as_bytes()),
                health: c.health,
            })
            .collect()
    }

    fn missing_required(&self) -> Option<u16> {
        self.required
            .iter()
            .find(|(_, n)| !self.critical.iter().any(|c| &c.name == n))
            .map(|(i, _)| *i)
    }

    fn culprit(&self, r: &GateReason) -> (String, u32) {
        let pid = match *r {
            GateReason::CriticalAgentLost { pid } | GateReason::Escalated { pid } => pid,
            _ => 0,
        };
        if let GateReason::RequiredAgentMissing { rule } = *r {
            let name = self
                .required
                .iter()
                .find(|(i, _)| *i == rule)
                .map(|(_, n)| n.clone())
                .unwrap_or_default();
            return (name, 0);
        }
        let name = self
            .critical
            .iter()
            .find(|c| c.pid == pid)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        (name, pid)
    }

    /// Evaluate the gate, pet if due and allowed, move the LED.
    fn tick(&mut self, now: Instant) {
        self.last_now = now;
        let agents = self.agents();
        let missing = self.missing_required();
        let (decision, change) = self.gate.evaluate(agents.iter(), missing, now);
        match change {
            GateChange::None => {}
            GateChange::Closed { reason, record } => self.on_closed(reason, record),
            GateChange::GuardTripped { reason } => {
                let (name, pid) = self.culprit(&reason);
                let rec = self.gate.record();
                log::error!(
                    "ALARM boot-loop guard: {} resets in a row blamed on {} ({}); keeping the \
                     board up, degraded, instead of resetting again",
                    rec.consecutive,
                    if name.is_empty() {
                        "the observer"
                    } else {
                        &name
                    },
                    why(&reason)
                );
                self.pending.push(Notice {
                    event: None,
                    audit: Some(reset_entry(
                        pid,
                        name,
                        format!(
                            "boot-loop guard tripped after {} resets: {}; not resetting",
                            rec.consecutive,
                            why(&reason)
                        ),
                    )),
                });
            }
            GateChange::Stable { record } => {
                log::info!("stable run: boot-loop count cleared");
                if let Err(e) = self.store.stable(&record) {
                    log::warn!("cannot persist the cleared boot-loop count: {e}");
                }
            }
        }
        if decision.pets() {
            self.pet(now);
        }
        self.led_to(self.wanted_led(decision), now);
    }

    fn on_closed(&mut self, reason: GateReason, record: BootLoopRecord) {
        self.closed = true;
        let (name, pid) = self.culprit(&reason);
        let rr = ResetReason {
            wall_ms: wall_ms(),
            agent: name.clone(),
            pid,
            why: why(&reason).to_string(),
            consecutive: record.consecutive,
        };
        // Durably first: the next boot must be able to say why.
        if let Err(e) = self.store.closing(&record, &rr) {
            log::error!("cannot persist the reset reason: {e} (resetting anyway)");
        }
        match self.wd.as_ref().map(|w| w.timeout().as_secs()) {
            Some(t) => log::error!(
                "watchdog gate closed: {}; petting stops, the board resets within {} s",
                rr.summary(),
                t
            ),
            None => log::error!(
                "watchdog gate closed: {}; no watchdog is open, so nothing resets the board",
                rr.summary()
            ),
        }
        self.pending.push(Notice {
            event: Some(Event::GateClosed { reason }),
            audit: Some(reset_entry(
                pid,
                name,
                format!(
                    "gate closed: {} (reset {} in a row)",
                    rr.why, record.consecutive
                ),
            )),
        });
    }

    fn pet(&mut self, now: Instant) {
        let (Some(wd), Some(s)) = (&mut self.wd, &mut self.schedule) else {
            return;
        };
        if !s.is_due(now) {
            return;
        }
        match wd.keepalive() {
            Ok(()) => self.pets += 1,
            Err(_) => {
                self.pet_errors += 1;
                if self.pet_errors == 1 || self.pet_errors.is_power_of_two() {
                    log::warn!("watchdog keepalive failed ({} times)", self.pet_errors);
                }
            }
        }
        s.petted(now);
    }

    fn wanted_led(&self, d: GateDecision) -> LedState {
        match d {
            GateDecision::Withhold(_) => LedState::GateClosing,
            GateDecision::PetDegraded(_) => LedState::BootLoopGuard,
            GateDecision::Pet => {
                let sick = !self.unhealthy.is_empty()
                    || self
                        .critical
                        .iter()
                        .any(|c| !matches!(c.health, Health::Healthy));
                if sick {
                    LedState::Degraded
                } else {
                    LedState::Healthy
                }
            }
        }
    }

    fn led_to(&mut self, state: LedState, now: Instant) {
        let Some(led) = &mut self.led else { return };
        match led.set_state(state, now) {
            Ok(next) => {
                self.led_next = Some(next);
                self.led_failed = false;
            }
            Err(e) => {
                if !self.led_failed {
                    log::warn!("LED: {e:?}");
                }
                self.led_failed = true;
                self.led_next = Some(now + Duration::from_secs(1));
            }
        }
    }

    fn critical_mut(&mut self, name: &str, pid: u32) -> &mut Critical {
        let i = match self.critical.iter().position(|c| c.name == name) {
            Some(i) => i,
            None => {
                self.critical.push(Critical {
                    name: name.to_string(),
                    pid,
                    health: Health::Healthy,
                });
                self.critical.len() - 1
            }
        };
        let c = &mut self.critical[i];
        c.pid = pid;
        c
    }
}

#[derive(Copy, Clone, PartialEq, Eq)]
enum Turn {
    Well,
    Ill,
    Escalated,
    Same,
}

fn turn(e: &Event) -> Turn {
    match *e {
        Event::Registered { status, .. } | Event::Beat { status, .. } => match status {
            Status::Critical => Turn::Same,
            _ => Turn::Well,
        },
        Event::Recovered { .. } | Event::NewSession { .. } => Turn::Well,
        Event::Stall { .. }
        | Event::Critical { .. }
        | Event::Terminal { .. }
        | Event::Exited { .. } => Turn::Ill,
        Event::Escalated { .. } => Turn::Escalated,
        _ => Turn::Same,
    }
}

impl<W: Watchdog, P: OutputPin, S: Persist> Supervisor for Hardware<W, P, S> {
    fn set_rules(&mut self, rules: &[AgentRule], _now: Instant) {
        self.required = rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.critical && r.required)
            .filter_map(|(i, r)| r.name.clone().map(|n| (i as u16, n)))
            .collect();
    }

    fn on_event(&mut self, e: &Event, agent: Option<AgentInfo<'_>>, now: Instant) {
        let Some(a) = agent else { return };
        let t = turn(e);
        if t == Turn::Same {
            return;
        }
        if a.rule.is_some_and(|r| r.critical) {
            let c = self.critical_mut(a.name, a.pid);
            c.health = match (t, c.health) {
                (Turn::Well, _) => Health::Healthy,
                (Turn::Escalated, _) => Health::Escalated,
                (Turn::Ill, Health::Healthy) => Health::Unhealthy { since: now },
                (_, h) => h,
            };
        } else if t == Turn::Ill && !matches!(e, Event::Exited { .. }) {
            self.unhealthy.insert(a.pid);
        } else {
            self.unhealthy.remove(&a.pid);
        }
    }

    fn next_due(&self) -> Option<Instant> {
        let agents = self.agents();
        let pet = if self.gate.decision().pets() {
            self.schedule.map(|s| s.next_due())
        } else {
            None
        };
        [
            pet,
            self.led_next,
            self.gate.next_check(agents.iter(), self.last_now),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn on_due(&mut self, now: Instant, out: &mut Vec<Notice>) {
        self.tick(now);
        out.append(&mut self.pending);
    }

    fn stop(&mut self, now: Instant, out: &mut Vec<Notice>) {
        self.tick(now);
        out.append(&mut self.pending);
        if let Some(wd) = &mut self.wd {
            if self.closed {
                log::warn!("stopping with the gate closed: the watchdog stays armed");
            } else if self.cfg.magic_close {
                match wd.disarm() {
                    Ok(()) if self.cfg.nowayout == Some(true) => log::warn!(
                        "magic close sent, but the driver is nowayout: the board resets in {} s",
                        wd.timeout().as_secs()
                    ),
                    Ok(()) => log::info!("watchdog disarmed (magic close)"),
                    Err(_) => log::warn!("magic close failed: the watchdog stays armed"),
                }
            } else {
                log::warn!(
                    "stopping without magic close (not configured): the board resets in {} s \
                     unless another owner takes the watchdog",
                    wd.timeout().as_secs()
                );
            }
        }
        if let Some(led) = &mut self.led {
            let _ = led.set_state(LedState::Healthy, now);
        }
        if let Some(led) = self.led.take() {
            let _ = led.release();
        }
    }

    fn status(&self) -> Option<HardwareStatus> {
        Some(HardwareStatus {
            watchdog: self.cfg.watchdog_name.clone(),
            timeout_s: self.wd.as_ref().map_or(0, |w| w.timeout().as_secs() as u32),
            gate: match self.gate.decision() {
                GateDecision::Withhold(_) => "closed",
                GateDecision::PetDegraded(_) => "degraded",
                GateDecision::Pet => "open",
            },
            pets: self.pets,
            pet_errors: self.pet_errors,
            led: match self.led.as_ref().map(|l| l.state()) {
                None => "off",
                Some(LedState::Healthy) => "healthy",
                Some(LedState::Degraded) => "degraded",
                Some(LedState::GateClosing) => "gate_closing",
                Some(LedState::BootLoopGuard) => "boot_loop_guard",
            },
            last_reset: self.cfg.last_reset.clone(),
            consecutive_resets: self.gate.record().consecutive,
        })
    }
}
