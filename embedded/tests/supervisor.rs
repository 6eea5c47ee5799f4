//! The hardware supervisor over fake devices: what it pets, persists and shows, driven by
//! the events and times the observer loop would give it.

use std::cell::RefCell;
use std::rc::Rc;
use varta_core::event::{Event, GateReason};
use varta_core::policy::gate::{agent_key, BootLoopRecord, GateConfig, GateDecision};
use varta_core::policy::led::LedState;
use varta_core::policy::pet::Watchdog;
use varta_core::time::{Duration, Instant};
use varta_core::Status;
use varta_embedded::reset::ResetReason;
use varta_embedded::supervisor::{Hardware, Persist, Settings};
use varta_host::config::AgentRule;
use varta_host::supervisor::{AgentInfo, Notice, Supervisor};

type Log = Rc<RefCell<Vec<String>>>;

struct FakeWd(Log);
impl Watchdog for FakeWd {
    type Error = ();
    fn keepalive(&mut self) -> Result<(), ()> {
        self.0.borrow_mut().push("pet".into());
        Ok(())
    }
    fn timeout(&self) -> Duration {
        Duration::from_secs(3)
    }
    fn disarm(&mut self) -> Result<(), ()> {
        self.0.borrow_mut().push("disarm".into());
        Ok(())
    }
}

struct FakePin(Log);
impl embedded_hal::digital::ErrorType for FakePin {
    type Error = core::convert::Infallible;
}
impl embedded_hal::digital::OutputPin for FakePin {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        self.0.borrow_mut().push("led0".into());
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Self::Error> {
        self.0.borrow_mut().push("led1".into());
        Ok(())
    }
}

struct FakeStore(Log, Rc<RefCell<Vec<(BootLoopRecord, ResetReason)>>>);
impl Persist for FakeStore {
    fn closing(&mut self, record: &BootLoopRecord, reason: &ResetReason) -> std::io::Result<()> {
        self.0.borrow_mut().push("persist".into());
        self.1.borrow_mut().push((*record, reason.clone()));
        Ok(())
    }
    fn stable(&mut self, _record: &BootLoopRecord) -> std::io::Result<()> {
        self.0.borrow_mut().push("stable".into());
        Ok(())
    }
}

struct Rig {
    hw: Hardware<FakeWd, FakePin, FakeStore>,
    log: Log,
    saved: Rc<RefCell<Vec<(BootLoopRecord, ResetReason)>>>,
    t0: Instant,
    crit: AgentRule,
    plain: AgentRule,
    notices: Vec<Notice>,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn rig(record: BootLoopRecord, magic_close: bool, rules: &[AgentRule]) -> Rig {
    let log: Log = Rc::default();
    let saved = Rc::default();
    let t0 = Instant::from_nanos(1_000_000_000);
    let cfg = Settings {
        gate: GateConfig {
            startup_grace: ms(2_000),
            recovery_window: ms(3_000),
            boot_loop_limit: 2,
            stable_after: Duration::from_secs(600),
        },
        pet_interval: ms(500),
        magic_close,
        led_active_low: false,
        watchdog_name: "fake".into(),
        nowayout: Some(false),
        last_reset: "not the watchdog".into(),
    };
    let mut hw = Hardware::new(
        cfg,
        Some(FakeWd(log.clone())),
        Some(FakePin(log.clone())),
        FakeStore(log.clone(), Rc::clone(&saved)),
        record,
        t0,
    );
    hw.set_rules(rules, t0);
    let mut crit = AgentRule::empty();
    crit.name = Some("modem".into());
    crit.critical = true;
    Rig {
        hw,
        log,
        saved,
        t0,
        crit,
        plain: AgentRule::empty(),
        notices: Vec::new(),
    }
}

impl Rig {
    fn at(&self, ms_: u64) -> Instant {
        self.t0 + ms(ms_)
    }
    /// Run the loop's wake-ups from `from` to `to` ms, waking exactly when asked.
    fn run(&mut self, to: u64) {
        let end = self.at(to);
        while let Some(t) = self.hw.next_due() {
            if t > end {
                break;
            }
            self.hw.on_due(t, &mut self.notices);
        }
    }
    fn event(&mut self, e: Event, critical: bool, at: u64) {
        let rule = if critical { &self.crit } else { &self.plain };
        let info = AgentInfo {
            pid: e.pid().unwrap(),
            name: if critical { "modem" } else { "logger" },
            rule: Some(rule),
        };
        let now = self.at(at);
        self.hw.on_event(&e, Some(info), now);
        self.hw.on_due(now, &mut self.notices);
    }
    fn register(&mut self, pid: u32, critical: bool, at: u64) {
        let e = Event::Registered {
            pid,
            status: Status::Ok,
        };
        self.event(e, critical, at);
    }
    fn pets(&self) -> usize {
        self.log.borrow().iter().filter(|s| *s == "pet").count()
    }
}

#[test]
fn grace_then_healthy_agents_keep_the_watchdog_petted() {
    let mut r = rig(BootLoopRecord::CLEAR, false, &[]);
    r.register(10, true, 100);
    r.run(10_000);
    // One pet at start, then every 500 ms for 10 s.
    assert!((20..=22).contains(&r.pets()), "{} pets", r.pets());
    assert_eq!(r.hw.decision(), GateDecision::Pet);
    assert_eq!(r.hw.led_state(), Some(LedState::Healthy));
    // The LED blinks (edges were written), driven by the same wake-ups.
    assert!(r.log.borrow().iter().filter(|s| *s == "led1").count() >= 15);
}

#[test]
fn a_critical_stall_past_the_window_persists_the_reason_then_stops_petting() {
    let mut r = rig(BootLoopRecord::CLEAR, true, &[]);
    r.register(10, true, 100);
    r.run(4_000);
    r.event(
        Event::Stall {
            pid: 10,
            last_beat: Instant::from_nanos(1),
            deadline: Instant::from_nanos(2),
        },
        true,
        4_000,
    );
    assert_eq!(r.hw.led_state(), Some(LedState::Degraded));
    r.run(6_900); // inside the 3 s window: still petting
    let before = r.pets();
    assert!(before > 10);
    assert!(r.saved.borrow().is_empty());
    r.run(20_000);
    let log = r.log.borrow().clone();
    let persisted = log.iter().position(|s| s == "persist").expect("persisted");
    let last_pet = log.iter().rposition(|s| s == "pet").unwrap();
    assert!(
        last_pet < persisted,
        "petted after the reason was persisted"
    );
    // Closed at 7 s (stall at 4 s + 3 s window): pets until then, none after.
    assert!(
        r.pets() - before <= 1,
        "{} pets after the window",
        r.pets() - before
    );
    let (rec, why) = r.saved.borrow()[0].clone();
    assert_eq!(rec.consecutive, 1);
    assert_eq!(rec.culprit, agent_key(b"modem"));
    assert_eq!((why.agent.as_str(), why.pid), ("modem", 10));
    assert_eq!(why.why, "critical_agent_lost");
    assert_eq!(
        r.hw.decision(),
        GateDecision::Withhold(GateReason::CriticalAgentLost { pid: 10 })
    );
    assert_eq!(r.hw.led_state(), Some(LedState::GateClosing));
    assert!(r.notices.iter().any(|n| matches!(
        n.event,
        Some(Event::GateClosed {
            reason: GateReason::CriticalAgentLost { pid: 10 }
        })
    )));
    // An orderly stop with the gate closed must not disarm (the reset has to happen).
    let mut out = Vec::new();
    r.hw.stop(r.at(21_000), &mut out);
    assert!(!r.log.borrow().iter().any(|s| s == "disarm"));
}

#[test]
fn a_restarted_critical_agent_within_the_window_keeps_the_gate_open() {
    let mut r = rig(BootLoopRecord::CLEAR, false, &[]);
    r.register(10, true, 100);
    r.event(Event::Exited { pid: 10 }, true, 3_000);
    r.run(5_000);
    r.register(11, true, 5_000);
    r.run(20_000);
    assert_eq!(r.hw.decision(), GateDecision::Pet);
    assert!(r.saved.borrow().is_empty());
    assert_eq!(r.hw.led_state(), Some(LedState::Healthy));
}

#[test]
fn a_non_critical_stall_never_resets_but_shows_degraded() {
    let mut r = rig(BootLoopRecord::CLEAR, false, &[]);
    r.register(20, false, 100);
    r.run(2_500);
    r.event(
        Event::Stall {
            pid: 20,
            last_beat: Instant::from_nanos(1),
            deadline: Instant::from_nanos(2),
        },
        false,
        2_500,
    );
    r.run(30_000);
    assert_eq!(r.hw.decision(), GateDecision::Pet);
    assert_eq!(r.hw.led_state(), Some(LedState::Degraded));
    assert!(r.pets() >= 59, "{} pets", r.pets());
    r.event(
        Event::Recovered {
            pid: 20,
            silent_for: ms(28_000),
        },
        false,
        30_000,
    );
    assert_eq!(r.hw.led_state(), Some(LedState::Healthy));
}

#[test]
fn escalation_closes_the_gate_at_once() {
    let mut r = rig(BootLoopRecord::CLEAR, false, &[]);
    r.register(10, true, 100);
    r.run(3_000);
    r.event(Event::Escalated { pid: 10 }, true, 3_000);
    assert_eq!(
        r.hw.decision(),
        GateDecision::Withhold(GateReason::Escalated { pid: 10 })
    );
    assert_eq!(r.saved.borrow()[0].1.why, "escalated");
}

#[test]
fn a_missing_required_critical_agent_closes_the_gate_after_the_grace() {
    let mut rule = AgentRule::empty();
    rule.name = Some("db".into());
    rule.critical = true;
    rule.required = true;
    let mut r = rig(BootLoopRecord::CLEAR, false, &[AgentRule::empty(), rule]);
    r.run(1_900);
    assert_eq!(r.hw.decision(), GateDecision::Pet);
    r.run(2_100);
    assert_eq!(
        r.hw.decision(),
        GateDecision::Withhold(GateReason::RequiredAgentMissing { rule: 1 })
    );
    let (_, why) = r.saved.borrow()[0].clone();
    assert_eq!((why.agent.as_str(), why.pid), ("db", 0));
    assert_eq!(why.why, "required_agent_missing");
}

#[test]
fn the_boot_loop_guard_keeps_petting_degraded_instead_of_resetting_again() {
    let culprit = agent_key(b"modem");
    let record = BootLoopRecord::CLEAR.blame(culprit, 2).blame(culprit, 2);
    let mut r = rig(record, false, &[]);
    r.register(10, true, 100);
    r.run(2_500);
    r.event(
        Event::Stall {
            pid: 10,
            last_beat: Instant::from_nanos(1),
            deadline: Instant::from_nanos(2),
        },
        true,
        2_500,
    );
    r.run(30_000);
    assert!(matches!(r.hw.decision(), GateDecision::PetDegraded(_)));
    assert!(r.saved.borrow().is_empty(), "no reset record: no reset");
    assert!(r.pets() >= 59, "{} pets", r.pets());
    assert_eq!(r.hw.led_state(), Some(LedState::BootLoopGuard));
    let st = r.hw.status().unwrap();
    assert_eq!((st.gate, st.led), ("degraded", "boot_loop_guard"));
}

#[test]
fn orderly_stop_disarms_only_when_configured() {
    for magic in [false, true] {
        let mut r = rig(BootLoopRecord::CLEAR, magic, &[]);
        r.run(3_000);
        let mut out = Vec::new();
        r.hw.stop(r.at(3_100), &mut out);
        assert_eq!(r.log.borrow().iter().any(|s| s == "disarm"), magic);
        // The start-up report reached the audit trail.
        assert!(out.iter().chain(r.notices.iter()).any(|n| n
            .audit
            .as_ref()
            .is_some_and(|a| a.detail == "not the watchdog")));
    }
}
