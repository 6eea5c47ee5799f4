//! The tracker against a reference model on std collections: long random sequences of
//! beats, silences, client restarts, pid reuse, terminal frames, removals and capacity
//! pressure must give the same outcomes and the same stalls in the same order.

use proptest::prelude::*;
use std::collections::HashMap;
use varta_core::event::{EvictReason, Reject};
use varta_core::time::{Duration, Instant, ManualClock};
use varta_core::tracker::{Change, Origin, Outcome, Tracker, TrackerConfig};
use varta_core::wire::{Frame, Status};

const CAP: usize = 8;
const PIDS: u32 = 12;
const THRESHOLD_MS: u64 = 100;

#[derive(Clone, Copy, Debug, PartialEq)]
enum St {
    Healthy,
    Stalled,
    Gone,
}

#[derive(Clone, Debug)]
struct MAgent {
    start: u64,
    last_nonce: u64,
    last_beat: u64,
    state: St,
}

#[derive(Default)]
struct Model {
    agents: HashMap<u32, MAgent>,
}

#[derive(Debug, PartialEq)]
enum Out {
    Acc(Change, Option<(u32, EvictReason)>, bool),
    Rej(Reject),
}

impl Model {
    fn record(&mut self, f: &Frame, start: u64, now: u64) -> Out {
        let terminal = f.is_terminal();
        let mut change = Change::Inserted;
        if let Some(a) = self.agents.get(&f.pid) {
            if a.start != start {
                self.agents.remove(&f.pid);
                change = Change::PidReused;
            }
        }
        if let Some(a) = self.agents.get_mut(&f.pid) {
            let n = f.nonce;
            let nonce_change = if terminal {
                Change::Beat
            } else if n == a.last_nonce {
                return Out::Rej(Reject::Duplicate { nonce: n });
            } else if n > a.last_nonce || (a.last_nonce == u64::MAX - 1 && n == 0) {
                Change::Beat
            } else {
                Change::NewSession
            };
            let change = if a.state == St::Stalled {
                Change::Recovered {
                    silent_for: Duration::from_nanos(now - a.last_beat),
                }
            } else {
                nonce_change
            };
            a.last_nonce = n;
            a.last_beat = now;
            a.state = if terminal { St::Gone } else { St::Healthy };
            return Out::Acc(change, None, terminal);
        }
        let mut evicted = None;
        if self.agents.len() == CAP {
            let victim = self
                .agents
                .iter()
                .filter(|(_, a)| a.state != St::Healthy)
                .min_by_key(|(_, a)| a.last_beat)
                .map(|(p, a)| (*p, a.state));
            match victim {
                None => return Out::Rej(Reject::Capacity),
                Some((p, st)) => {
                    self.agents.remove(&p);
                    evicted = Some((
                        p,
                        if st == St::Gone {
                            EvictReason::Gone
                        } else {
                            EvictReason::Stalled
                        },
                    ));
                }
            }
        }
        self.agents.insert(
            f.pid,
            MAgent {
                start,
                last_nonce: f.nonce,
                last_beat: now,
                state: if terminal { St::Gone } else { St::Healthy },
            },
        );
        Out::Acc(change, evicted, terminal)
    }

    fn expire(&mut self, now: u64) -> Vec<(u32, u64)> {
        let mut out = Vec::new();
        loop {
            let next = self
                .agents
                .iter()
                .filter(|(_, a)| a.state == St::Healthy)
                .min_by_key(|(_, a)| a.last_beat)
                .map(|(p, a)| (*p, a.last_beat));
            match next {
                Some((p, lb)) if lb + THRESHOLD_MS * 1_000_000 <= now => {
                    self.agents.get_mut(&p).unwrap().state = St::Stalled;
                    out.push((p, lb));
                }
                _ => return out,
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Beat(u32),
    Restart(u32),
    Duplicate(u32),
    Reuse(u32),
    Terminal(u32),
    Remove(u32),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let pid = 2u32..(2 + PIDS);
    prop_oneof![
        8 => pid.clone().prop_map(Op::Beat),
        1 => pid.clone().prop_map(Op::Restart),
        1 => pid.clone().prop_map(Op::Duplicate),
        1 => pid.clone().prop_map(Op::Reuse),
        1 => pid.clone().prop_map(Op::Terminal),
        1 => pid.prop_map(Op::Remove),
        4 => (1u64..250).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn tracker_matches_model(ops in proptest::collection::vec(op(), 1..400)) {
        let mut t = Tracker::<CAP>::new(TrackerConfig::new(Duration::from_millis(THRESHOLD_MS)));
        let mut m = Model::default();
        let clock = ManualClock::new(Instant::from_nanos(1));
        let mut nonces: HashMap<u32, u64> = HashMap::new();
        let mut starts: HashMap<u32, u64> = HashMap::new();
        for op in ops {
            // Every operation happens at a distinct instant (no ties in last-beat order).
            clock.advance(Duration::from_nanos(1));
            let now = clock.get();
            let frame_for = |pid: u32, nonce: u64, status: Status| Frame { status, pid, timestamp: 0, nonce, payload: 0 };
            let (frame, pid) = match op {
                Op::Advance(ms) => {
                    clock.advance(Duration::from_millis(ms));
                    let now = clock.get();
                    let mut got = Vec::new();
                    while let Some(s) = t.expire(now) { got.push((s.pid, s.last_beat.as_nanos())); }
                    prop_assert_eq!(got, m.expire(now.as_nanos()));
                    prop_assert_eq!(t.len(), m.agents.len());
                    continue;
                }
                Op::Remove(pid) => {
                    prop_assert_eq!(t.remove(pid).is_some(), m.agents.remove(&pid).is_some());
                    continue;
                }
                Op::Beat(pid) => { let n = nonces.entry(pid).or_insert(0); *n += 1; (frame_for(pid, *n, Status::Ok), pid) }
                Op::Restart(pid) => { nonces.insert(pid, 1); (frame_for(pid, 1, Status::Degraded), pid) }
                Op::Duplicate(pid) => { let n = *nonces.entry(pid).or_insert(1); (frame_for(pid, n, Status::Ok), pid) }
                Op::Reuse(pid) => { *starts.entry(pid).or_insert(1) += 1; nonces.insert(pid, 1); (frame_for(pid, 1, Status::Ok), pid) }
                Op::Terminal(pid) => (frame_for(pid, u64::MAX, Status::Critical), pid),
            };
            let start = *starts.entry(pid).or_insert(1);
            let origin = Origin { kernel_pid: Some(pid), start_time: Some(start), trusted: true };
            let got = match t.record(&frame, &origin, now) {
                Outcome::Accepted(a) => Out::Acc(a.change, a.evicted, a.terminal),
                Outcome::Rejected(r) => Out::Rej(r),
            };
            let want = m.record(&frame, start, now.as_nanos());
            prop_assert_eq!(got, want, "op on pid {} at {:?}", pid, now);
            prop_assert_eq!(t.len(), m.agents.len());
            prop_assert!(t.len() <= CAP);
        }
        // Final state agrees agent by agent.
        for (pid, a) in &m.agents {
            let v = t.get(*pid).expect("agent in tracker");
            prop_assert_eq!(v.last_nonce, a.last_nonce);
            prop_assert_eq!(v.last_beat.as_nanos(), a.last_beat);
        }
    }
}
