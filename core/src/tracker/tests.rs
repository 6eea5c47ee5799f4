extern crate std;
use super::*;
use crate::event::Event;

fn ms(n: u64) -> Instant {
    Instant::from_nanos(n * 1_000_000)
}
fn f(pid: u32, nonce: u64) -> Frame {
    Frame {
        status: Status::Ok,
        pid,
        timestamp: 0,
        nonce,
        payload: 0,
    }
}
fn unix(pid: u32) -> Origin {
    Origin {
        kernel_pid: Some(pid),
        start_time: None,
        trusted: true,
    }
}
fn cfg() -> TrackerConfig {
    TrackerConfig::new(Duration::from_millis(100))
}
fn accepted(o: Outcome) -> Accepted {
    match o {
        Outcome::Accepted(a) => a,
        Outcome::Rejected(r) => panic!("rejected: {:?}", r),
    }
}

#[test]
fn memory_budget_per_agent() {
    assert!(core::mem::size_of::<Tracker<4096>>() / 4096 <= 64);
    assert!(core::mem::size_of::<Tracker<65536>>() / 65536 <= 64);
    assert_eq!(core::mem::size_of::<Slot>(), 48);
}

#[test]
fn insert_beat_and_spoof() {
    let mut t = Tracker::<8>::new(cfg());
    let a = accepted(t.record(&f(10, 1), &unix(10), ms(0)));
    assert_eq!(a.change, Change::Inserted);
    assert_eq!(a.previous, None);
    let a = accepted(t.record(&f(10, 2), &unix(10), ms(10)));
    assert_eq!(a.change, Change::Beat);
    assert_eq!(
        t.record(&f(10, 3), &unix(11), ms(20)),
        Outcome::Rejected(Reject::PidMismatch {
            claimed: 10,
            kernel: 11
        })
    );
    assert_eq!(t.get(10).unwrap().beats, 2);
    assert_eq!(t.stats().rejected_pid_mismatch, 1);
}

#[test]
fn nonce_rules() {
    let mut t = Tracker::<8>::new(cfg());
    accepted(t.record(&f(10, 5), &unix(10), ms(0)));
    assert_eq!(
        t.record(&f(10, 5), &unix(10), ms(1)),
        Outcome::Rejected(Reject::Duplicate { nonce: 5 })
    );
    assert_eq!(
        accepted(t.record(&f(10, 9), &unix(10), ms(2))).change,
        Change::Beat
    );
    assert_eq!(t.stats().gaps, 1);
    assert_eq!(
        accepted(t.record(&f(10, 1), &unix(10), ms(3))).change,
        Change::NewSession
    );
    assert_eq!(t.get(10).unwrap().sessions, 1);
    // Legal wrap u64::MAX-1 -> 0 is an ordinary beat.
    accepted(t.record(&f(11, u64::MAX - 1), &unix(11), ms(4)));
    assert_eq!(
        accepted(t.record(&f(11, 0), &unix(11), ms(5))).change,
        Change::Beat
    );
    assert_eq!(t.stats().gaps, 1);
}

#[test]
fn stall_once_at_deadline_then_recovered() {
    let mut t = Tracker::<8>::new(cfg());
    accepted(t.record(&f(10, 1), &unix(10), ms(0)));
    assert_eq!(t.next_deadline(), Some(ms(100)));
    assert_eq!(t.expire(ms(99)), None);
    let s = t.expire(ms(100)).unwrap();
    assert_eq!((s.pid, s.last_beat, s.deadline), (10, ms(0), ms(100)));
    assert_eq!(t.expire(ms(500)), None, "one stall per silence");
    assert_eq!(t.next_deadline(), None);
    let a = accepted(t.record(&f(10, 2), &unix(10), ms(700)));
    assert_eq!(
        a.change,
        Change::Recovered {
            silent_for: Duration::from_millis(700)
        }
    );
    assert_eq!(t.next_deadline(), Some(ms(800)));
}

#[test]
fn beats_push_the_deadline() {
    let mut t = Tracker::<8>::new(cfg());
    accepted(t.record(&f(10, 1), &unix(10), ms(0)));
    accepted(t.record(&f(20, 1), &unix(20), ms(30)));
    accepted(t.record(&f(10, 2), &unix(10), ms(60)));
    assert_eq!(t.next_deadline(), Some(ms(130)), "20 is now the earliest");
    assert_eq!(t.expire(ms(130)).unwrap().pid, 20);
    assert_eq!(t.next_deadline(), Some(ms(160)));
}

#[test]
fn terminal_never_stalls_and_is_evictable() {
    let mut t = Tracker::<2>::new(cfg());
    accepted(t.record(&f(10, 1), &unix(10), ms(0)));
    let term = Frame {
        status: Status::Critical,
        nonce: u64::MAX,
        ..f(10, 0)
    };
    let a = accepted(t.record(&term, &unix(10), ms(5)));
    assert!(a.terminal);
    assert_eq!(t.get(10).unwrap().state, AgentState::Gone);
    assert_eq!(t.next_deadline(), None);
    assert_eq!(t.expire(ms(10_000)), None);
    accepted(t.record(&f(20, 1), &unix(20), ms(6)));
    let a = accepted(t.record(&f(30, 1), &unix(30), ms(7)));
    assert_eq!(a.evicted, Some((10, EvictReason::Gone)));
}

#[test]
fn capacity_evicts_longest_silent_never_healthy() {
    let mut t = Tracker::<4>::new(cfg());
    for (k, pid) in [10u32, 11, 12, 13].iter().enumerate() {
        accepted(t.record(&f(*pid, 1), &unix(*pid), ms(k as u64)));
    }
    assert_eq!(
        t.record(&f(99, 1), &unix(99), ms(5)),
        Outcome::Rejected(Reject::Capacity)
    );
    // 11 and 12 stall (10 and 13 keep beating).
    accepted(t.record(&f(10, 2), &unix(10), ms(90)));
    accepted(t.record(&f(13, 2), &unix(13), ms(90)));
    assert_eq!(t.expire(ms(102)).unwrap().pid, 11);
    assert_eq!(t.expire(ms(102)).unwrap().pid, 12);
    let a = accepted(t.record(&f(99, 1), &unix(99), ms(103)));
    assert_eq!(
        a.evicted,
        Some((11, EvictReason::Stalled)),
        "longest silent first"
    );
    assert!(t.get(11).is_none());
    let a = accepted(t.record(&f(98, 1), &unix(98), ms(104)));
    assert_eq!(a.evicted, Some((12, EvictReason::Stalled)));
    assert_eq!(
        t.record(&f(97, 1), &unix(97), ms(105)),
        Outcome::Rejected(Reject::Capacity)
    );
    assert_eq!(t.len(), 4);
}

#[test]
fn a_limit_below_the_storage_is_the_capacity() {
    let mut t = Tracker::<16>::new(cfg());
    assert_eq!(t.limit(), 16);
    t.set_limit(3);
    assert_eq!(t.limit(), 3);
    for (k, pid) in [10u32, 11, 12].iter().enumerate() {
        accepted(t.record(&f(*pid, 1), &unix(*pid), ms(k as u64)));
    }
    assert_eq!(
        t.record(&f(99, 1), &unix(99), ms(5)),
        Outcome::Rejected(Reject::Capacity)
    );
    accepted(t.record(&f(11, 2), &unix(11), ms(50)));
    accepted(t.record(&f(12, 2), &unix(12), ms(50)));
    assert_eq!(t.expire(ms(101)).unwrap().pid, 10);
    let a = accepted(t.record(&f(99, 1), &unix(99), ms(102)));
    assert_eq!(a.evicted, Some((10, EvictReason::Stalled)));
    assert_eq!(t.len(), 3);
    // Clamped to the storage either way.
    t.set_limit(0);
    assert_eq!(t.limit(), 1);
    t.set_limit(1 << 20);
    assert_eq!(t.limit(), 16);
}

#[test]
fn pid_reuse_is_a_new_agent() {
    let mut t = Tracker::<8>::new(cfg());
    let o1 = Origin {
        start_time: Some(100),
        ..unix(10)
    };
    accepted(t.record(&f(10, 7), &o1, ms(0)));
    let o2 = Origin {
        start_time: Some(200),
        ..unix(10)
    };
    let a = accepted(t.record(&f(10, 1), &o2, ms(1)));
    assert_eq!(a.change, Change::PidReused);
    let v = t.get(10).unwrap();
    assert_eq!((v.beats, v.start_time), (1, Some(200)));
    assert_eq!(t.stats().pid_reuse, 1);
}

#[test]
fn per_agent_thresholds() {
    let mut t = Tracker::<8>::new(cfg());
    accepted(t.record(&f(10, 1), &unix(10), ms(0)));
    accepted(t.record(&f(20, 1), &unix(20), ms(0)));
    t.set_threshold(10, Duration::from_millis(1000)).unwrap();
    t.set_threshold(20, Duration::from_millis(30)).unwrap();
    assert_eq!(t.next_deadline(), Some(ms(30)));
    assert_eq!(t.expire(ms(30)).unwrap().pid, 20);
    assert_eq!(t.next_deadline(), Some(ms(1000)));
    assert_eq!(
        t.set_threshold(99, Duration::from_millis(5)),
        Err(ThresholdError::UnknownAgent)
    );
    assert_eq!(
        t.set_threshold(10, Duration::ZERO),
        Err(ThresholdError::Zero)
    );
    for k in 0..20u32 {
        let r = t.set_threshold(10, Duration::from_millis(2000 + k as u64));
        if k < (MAX_CLASSES as u32 - 2) {
            assert!(r.is_ok());
        } else {
            assert_eq!(r, Err(ThresholdError::TooManyClasses));
        }
    }
}

#[test]
fn rate_limits_never_drop_critical() {
    let mut c = cfg();
    c.agent_rate = RateLimit::new(10, 2);
    let mut t = Tracker::<8>::new(c);
    accepted(t.record(&f(10, 1), &unix(10), ms(0)));
    accepted(t.record(&f(10, 2), &unix(10), ms(0)));
    assert_eq!(
        t.record(&f(10, 3), &unix(10), ms(0)),
        Outcome::Rejected(Reject::RateLimited)
    );
    let crit = Frame {
        status: Status::Critical,
        ..f(10, 3)
    };
    assert_eq!(
        accepted(t.record(&crit, &unix(10), ms(0))).status,
        Status::Critical
    );
    let term = Frame {
        status: Status::Critical,
        nonce: u64::MAX,
        ..f(10, 4)
    };
    assert!(accepted(t.record(&term, &unix(10), ms(0))).terminal);
    let mut c = cfg();
    c.global_rate = RateLimit::new(1, 1);
    let mut t = Tracker::<8>::new(c);
    accepted(t.record(&f(10, 1), &unix(10), ms(0)));
    assert_eq!(
        t.record(&f(11, 1), &unix(11), ms(1)),
        Outcome::Rejected(Reject::GlobalRateLimited)
    );
    accepted(t.record(&crit, &unix(10), ms(2)));
}

#[test]
fn events_for_outcomes() {
    let mut t = Tracker::<8>::new(cfg());
    let fr = f(10, 1);
    let ev = t.record(&fr, &unix(10), ms(0)).events(&fr);
    assert_eq!(
        ev[0],
        Event::Registered {
            pid: 10,
            status: Status::Ok
        }
    );
    assert!(matches!(
        ev[1],
        Event::Beat {
            pid: 10,
            nonce: 1,
            ..
        }
    ));
    let crit = Frame {
        status: Status::Critical,
        payload: 7,
        ..f(10, 2)
    };
    let ev = t.record(&crit, &unix(10), ms(1)).events(&crit);
    assert_eq!(ev.len(), 2);
    assert_eq!(
        ev[1],
        Event::Critical {
            pid: 10,
            payload: 7
        }
    );
    let crit2 = Frame { nonce: 3, ..crit };
    assert_eq!(
        t.record(&crit2, &unix(10), ms(2)).events(&crit2).len(),
        1,
        "critical reported on entry only"
    );
}

static BIG: std::sync::Mutex<Tracker<65536>> =
    std::sync::Mutex::new(Tracker::new(TrackerConfig::ZERO));

#[test]
fn empty_tracker_state_is_zero() {
    // A `static` tracker lands in .bss (no binary size, no memory until touched) only if
    // its initial state is all zero bytes. The heapless containers start zeroed (len 0,
    // `None` indices); check our own fields.
    let t = Tracker::<16>::new(TrackerConfig::ZERO);
    assert_eq!(t.free, 0);
    assert!(t.lists.iter().all(|l| l.head == 0 && l.tail == 0));
    assert_eq!(t.evictable, 0);
    assert_eq!(t.cfg, TrackerConfig::ZERO);
    assert_eq!(*t.stats(), TrackerStats::default());
}

#[test]
fn large_tracker_static() {
    let mut guard = BIG.lock().unwrap();
    let t = &mut *guard;
    t.reconfigure(cfg());
    for pid in 2..(2 + 65536u32) {
        accepted(t.record(&f(pid, 1), &unix(pid), ms(pid as u64)));
    }
    assert_eq!(t.len(), 65536);
    assert_eq!(
        t.record(&f(1_000_000, 1), &unix(1_000_000), ms(70_000)),
        Outcome::Rejected(Reject::Capacity)
    );
    assert_eq!(t.expire(ms(102)).unwrap().pid, 2);
    assert_eq!(
        accepted(t.record(&f(1_000_000, 1), &unix(1_000_000), ms(70_001))).evicted,
        Some((2, EvictReason::Stalled))
    );
}
