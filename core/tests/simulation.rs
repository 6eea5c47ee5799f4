//! Deterministic simulation: 1 500 agents beating with jitter over two simulated hours,
//! some falling silent for a while, some dying (terminal frame) and being replaced by new
//! processes, some restarting their client session. `expire` is called exactly at
//! `next_deadline()`. Every silence longer than the agent's threshold must be reported
//! exactly once, at last beat + threshold, and nothing else may be reported.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use varta_core::time::{Duration, Instant};
use varta_core::tracker::{Change, Origin, Outcome, Tracker, TrackerConfig};
use varta_core::wire::{Frame, Status};

/// xorshift64*: small, seeded, deterministic.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000 * MS;

struct Agent {
    pid: u32,
    nonce: u64,
    interval: u64,
    threshold: u64,
    last_beat: Option<u64>,
    dead: bool,
}

#[test]
fn thousands_of_agents_over_hours() {
    let agents_n = 1_500usize;
    let horizon = 2 * 3600 * SEC;
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut t: Box<Tracker<4096>> = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(|| Box::new(Tracker::new(TrackerConfig::new(Duration::from_secs(10)))))
        .unwrap()
        .join()
        .unwrap();
    let thresholds = [3 * SEC, 5 * SEC, 10 * SEC];
    let mut next_pid = 100u32;
    let mut agents: Vec<Agent> = Vec::new();
    let mut queue: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    for i in 0..agents_n {
        let threshold = thresholds[i % 3];
        agents.push(Agent {
            pid: next_pid,
            nonce: 0,
            interval: threshold / 3,
            threshold,
            last_beat: None,
            dead: false,
        });
        next_pid += 1;
        queue.push(Reverse((rng.below(SEC) + 1, i)));
    }
    let by_pid =
        |agents: &Vec<Agent>, pid: u32| agents.iter().position(|a| a.pid == pid && !a.dead);
    let mut expected: BTreeSet<(u32, u64)> = BTreeSet::new();
    let mut reported: BTreeSet<(u32, u64)> = BTreeSet::new();
    let mut reported_count = 0usize;
    let mut beats = 0u64;
    let mut deaths = 0;
    let mut silences = 0;
    let mut restarts = 0;
    let mut threshold_set: HashMap<u32, bool> = HashMap::new();
    while let Some(&Reverse((at, idx))) = queue.peek() {
        // Stalls due no later than the next beat fire first, exactly at their deadline.
        if let Some(d) = t.next_deadline() {
            if d.as_nanos() <= at {
                let now = d;
                let mut n = 0;
                while let Some(s) = t.expire(now) {
                    n += 1;
                    assert_eq!(s.deadline, now, "expired exactly at its deadline");
                    let a = by_pid(&agents, s.pid).expect("stall of a live agent");
                    assert_eq!(
                        s.deadline.as_nanos(),
                        s.last_beat.as_nanos() + agents[a].threshold
                    );
                    assert!(
                        reported.insert((s.pid, s.deadline.as_nanos())),
                        "stall reported twice"
                    );
                    reported_count += 1;
                }
                assert!(n > 0, "next_deadline promised work");
                continue;
            }
        }
        if at > horizon {
            break;
        }
        queue.pop();
        let a = &mut agents[idx];
        if a.dead {
            continue;
        }
        // The observer must report a stall for every silence of at least the threshold.
        if let Some(lb) = a.last_beat {
            if at - lb >= a.threshold {
                expected.insert((a.pid, lb + a.threshold));
            }
        }
        let roll = rng.below(10_000);
        let (status, nonce) = if roll < 3 && a.nonce >= 2 {
            a.nonce = 1;
            restarts += 1;
            (Status::Degraded, 1)
        } else if roll < 5 {
            (Status::Critical, u64::MAX)
        } else {
            a.nonce += 1;
            (Status::Ok, a.nonce)
        };
        let f = Frame {
            status,
            pid: a.pid,
            timestamp: 0,
            nonce,
            payload: 0,
        };
        let origin = Origin {
            kernel_pid: Some(a.pid),
            start_time: None,
            trusted: true,
        };
        let out = t.record(&f, &origin, Instant::from_nanos(at));
        beats += 1;
        match out {
            Outcome::Accepted(acc) => {
                if acc.change == Change::Inserted && !threshold_set.contains_key(&a.pid) {
                    t.set_threshold(a.pid, Duration::from_nanos(a.threshold))
                        .unwrap();
                    threshold_set.insert(a.pid, true);
                }
            }
            Outcome::Rejected(r) => panic!("unexpected rejection {r:?}"),
        }
        a.last_beat = Some(at);
        if f.is_terminal() {
            // Dies; a replacement process (new pid) starts a little later.
            a.dead = true;
            deaths += 1;
            let threshold = a.threshold;
            agents.push(Agent {
                pid: next_pid,
                nonce: 0,
                interval: threshold / 3,
                threshold,
                last_beat: None,
                dead: false,
            });
            next_pid += 1;
            queue.push(Reverse((at + rng.below(5 * SEC) + 1, agents.len() - 1)));
            continue;
        }
        let jitter = rng.below(a.interval / 5);
        let mut next = at + a.interval - a.interval / 10 + jitter;
        if rng.below(2_000) == 0 {
            // Falls silent well past its threshold.
            next = at + a.threshold + rng.below(3 * a.threshold) + 1;
            silences += 1;
        }
        queue.push(Reverse((next, idx)));
    }
    // Silences still open at the end of the run.
    let end = Instant::from_nanos(horizon);
    while let Some(s) = t.expire(end) {
        assert!(reported.insert((s.pid, s.deadline.as_nanos())));
        reported_count += 1;
    }
    for a in agents.iter().filter(|a| !a.dead) {
        if let Some(lb) = a.last_beat {
            if horizon - lb >= a.threshold {
                expected.insert((a.pid, lb + a.threshold));
            }
        }
    }
    assert!(beats > 1_000_000, "simulated {beats} beats");
    assert!(
        deaths > 50 && silences > 50 && restarts > 50,
        "{deaths} {silences} {restarts}"
    );
    assert_eq!(reported_count, reported.len());
    let missing: Vec<_> = expected.difference(&reported).take(5).collect();
    let spurious: Vec<_> = reported.difference(&expected).take(5).collect();
    assert!(
        missing.is_empty() && spurious.is_empty(),
        "missing {missing:?} spurious {spurious:?}"
    );
    // Jitter alone never exceeds a threshold, so every stall comes from a deliberate silence
    // (a silence that overlaps the end of the run may not have reached its deadline).
    assert!(
        expected.len() <= silences && expected.len() + 5 >= silences,
        "{} stalls for {} silences",
        expected.len(),
        silences
    );
}
