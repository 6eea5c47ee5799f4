//! The observer proper: datagrams in, core events out. Owns the tracker, the agent rules and
//! what the host knows about each agent (name, rule, start time). No fds and no clock reads:
//! the daemon passes bytes, the sender and `now`, and routes the events this produces.

use crate::config::{match_rule, AgentFacts, AgentRule};
use crate::identity::ProcFs;
use crate::listener::{Datagram, Sender};
use rustc_hash::FxHashMap;
use std::collections::HashMap;
use std::sync::MutexGuard;
use varta_core::event::{Event, Reject};
use varta_core::time::{Duration, Instant};
use varta_core::tracker::{Accepted, Change, Origin, Outcome, Tracker};
use varta_core::wire::{DecodeError, Frame};

/// How an agent reaches us.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Unix socket, kernel-attested identity.
    Unix,
    /// Plain UDP, no identity: never trusted for recovery.
    Udp,
}

impl Transport {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Unix => "unix",
            Transport::Udp => "udp",
        }
    }
}

/// What the host knows about an agent beyond the tracker's slot. One per agent in a hash
/// map, so kept small (56 bytes): at 4 096 agents the map has 8 192 buckets of these.
#[derive(Clone, Debug)]
pub struct AgentMeta {
    /// From the matching rule, else `comm`.
    pub name: Box<str>,
    /// Process start time (clock ticks since boot), when known.
    pub start_time: Option<u64>,
    /// Kernel-attested uid (Unix transport).
    pub uid: Option<u32>,
    /// Index of the matching rule (see [`AgentMeta::rule`]).
    rule: Option<u16>,
    /// Transport.
    pub transport: Transport,
}

impl AgentMeta {
    /// Index of the matching rule.
    pub fn rule(&self) -> Option<usize> {
        self.rule.map(usize::from)
    }
}

/// Who may send beats over the Unix socket.
#[derive(Clone, Debug, Default)]
pub struct Allowlist {
    /// The observer's own effective uid (always allowed, as is root).
    pub own_uid: u32,
    /// Additional uids.
    pub uids: Vec<u32>,
    /// Additional gids.
    pub gids: Vec<u32>,
}

impl Allowlist {
    /// Whether a sender with these credentials may beat.
    pub fn allows(&self, uid: u32, gid: u32) -> bool {
        uid == 0 || uid == self.own_uid || self.uids.contains(&uid) || self.gids.contains(&gid)
    }
}

/// Host-side counters (the tracker keeps its own).
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Datagrams read from any listener.
    pub frames_received: u64,
    /// Rejections by reason label.
    pub rejected: HashMap<&'static str, u64>,
}

/// The observer state machine.
pub struct Observer<const N: usize> {
    tracker: MutexGuard<'static, Tracker<N>>,
    rules: Vec<AgentRule>,
    meta: FxHashMap<u32, AgentMeta>,
    allow: Allowlist,
    proc: ProcFs,
    default_threshold: Duration,
    counters: Counters,
    out: Vec<Event>,
    /// The events of the last accepted datagram.
    accepted: varta_core::tracker::Events,
}

impl<const N: usize> Observer<N> {
    /// A new observer. `tracker` is passed in so large capacities can be built off-stack.
    pub fn new(
        tracker: MutexGuard<'static, Tracker<N>>,
        rules: Vec<AgentRule>,
        allow: Allowlist,
        default_threshold: Duration,
        proc: ProcFs,
    ) -> Self {
        Observer {
            tracker,
            rules,
            meta: FxHashMap::default(),
            allow,
            proc,
            default_threshold,
            counters: Counters::default(),
            out: Vec::with_capacity(8),
            accepted: varta_core::tracker::Events::new(),
        }
    }

    /// Replace the agent rules (SIGHUP). Tracked agents keep their state; their rule, name
    /// and threshold are re-resolved against the new rules.
    pub fn set_rules(&mut self, rules: Vec<AgentRule>, now: Instant) {
        self.rules = rules;
        let pids: Vec<u32> = self.meta.keys().copied().collect();
        for pid in pids {
            self.resolve(pid, now);
        }
    }

    /// The rules in force.
    pub fn rules(&self) -> &[AgentRule] {
        &self.rules
    }

    /// The /proc reader (identity checks before recovery).
    pub fn proc(&self) -> &ProcFs {
        &self.proc
    }

    /// Host-side counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The tracker (read-only).
    pub fn tracker(&self) -> &Tracker<N> {
        &self.tracker
    }

    /// What the host knows about `pid`.
    pub fn meta(&self, pid: u32) -> Option<&AgentMeta> {
        self.meta.get(&pid)
    }

    /// Every agent's metadata.
    pub fn metas(&self) -> impl Iterator<Item = (&u32, &AgentMeta)> {
        self.meta.iter()
    }

    fn reject(&mut self, pid: Option<u32>, reason: Reject) -> &[Event] {
        *self.counters.rejected.entry(reason.reason()).or_insert(0) += 1;
        self.out.clear();
        self.out.push(Event::Rejected { pid, reason });
        &self.out
    }

    /// Handle one datagram. Returns the events it caused (valid until the next call).
    pub fn on_datagram(&mut self, bytes: &[u8], d: &Datagram, now: Instant) -> &[Event] {
        self.counters.frames_received += 1;
        let kernel_pid = match d.sender {
            Some(Sender::Unix { pid, .. }) => Some(pid),
            _ => None,
        };
        if let Some(Sender::Unix { uid, gid, pid }) = d.sender {
            if !self.allow.allows(uid, gid) {
                return self.reject(Some(pid), Reject::Unauthorized { uid });
            }
        }
        if d.wire_len != d.len || d.len != varta_core::wire::FRAME_LEN {
            return self.reject(
                kernel_pid,
                Reject::Decode(DecodeError::BadLength(d.wire_len)),
            );
        }
        let frame = match Frame::decode_slice_with(&bytes[..d.len], crate::checksum::crc32c) {
            Ok(f) => f,
            Err(e) => return self.reject(kernel_pid, Reject::Decode(e)),
        };
        let transport = match d.sender {
            Some(Sender::Udp(_)) | None => Transport::Udp,
            Some(Sender::Unix { .. }) => Transport::Unix,
        };
        let uid = match d.sender {
            Some(Sender::Unix { uid, .. }) => Some(uid),
            _ => None,
        };
        let origin = Origin {
            kernel_pid,
            start_time: None,
            trusted: transport == Transport::Unix,
        };
        let mut outcome = self.tracker.record(&frame, &origin, now);
        // A new session from a pid we cannot watch with a pidfd may really be a new process
        // that reused the pid: compare start times (one /proc read, only on session change).
        if let Outcome::Accepted(a) = &outcome {
            if a.change == Change::NewSession && transport == Transport::Unix {
                let known = self.meta.get(&frame.pid).and_then(|m| m.start_time);
                let current = self.proc.start_time(frame.pid).ok();
                if known.is_some() && current.is_some() && known != current {
                    self.tracker.remove(frame.pid);
                    self.meta.remove(&frame.pid);
                    outcome = self.tracker.record(&frame, &origin, now);
                    if let Outcome::Accepted(a) = &mut outcome {
                        a.change = Change::PidReused;
                    }
                }
            }
        }
        match outcome {
            Outcome::Rejected(r) => self.reject(Some(frame.pid), r),
            Outcome::Accepted(a) => {
                self.after_accept(&a, transport, uid, now);
                a.events_into(&frame, &mut self.accepted);
                if let Some((pid, _)) = a.evicted {
                    self.meta.remove(&pid);
                }
                &self.accepted
            }
        }
    }

    fn after_accept(&mut self, a: &Accepted, transport: Transport, uid: Option<u32>, now: Instant) {
        if matches!(a.change, Change::Inserted | Change::PidReused)
            || !self.meta.contains_key(&a.pid)
        {
            self.meta.insert(
                a.pid,
                AgentMeta {
                    name: Box::default(),
                    rule: None,
                    start_time: None,
                    uid,
                    transport,
                },
            );
            self.resolve(a.pid, now);
        }
    }

    /// Read /proc for `pid` (Unix agents) and apply the first matching rule.
    fn resolve(&mut self, pid: u32, _now: Instant) {
        let Some(m) = self.meta.get_mut(&pid) else {
            return;
        };
        let facts = if m.transport == Transport::Unix {
            self.proc.facts(pid).ok()
        } else {
            None
        };
        if let Some(f) = &facts {
            m.start_time = Some(f.start_time);
        }
        let comm = facts.as_ref().map(|f| f.comm.clone()).unwrap_or_default();
        let rule = facts.as_ref().and_then(|f| {
            match_rule(
                &self.rules,
                &AgentFacts {
                    comm: &f.comm,
                    exe: f.exe.as_deref(),
                    unit: f.unit.as_deref(),
                    uid: m.uid.unwrap_or(u32::MAX),
                },
            )
        });
        // More than 65 535 rules cannot be configured in practice; such a rule is ignored.
        let rule = rule.filter(|&i| i <= usize::from(u16::MAX));
        m.rule = rule.and_then(|i| u16::try_from(i).ok());
        m.name = match rule.and_then(|i| self.rules[i].name.clone()) {
            Some(n) => n,
            None if !comm.is_empty() => comm,
            None => format!("{}:{}", m.transport.as_str(), pid),
        }
        .into_boxed_str();
        let threshold = rule
            .and_then(|i| self.rules[i].threshold)
            .unwrap_or(self.default_threshold);
        if let Err(e) = self.tracker.set_threshold(pid, threshold) {
            log::warn!(
                "agent {} ({}): threshold {} not applied: {:?}",
                m.name,
                pid,
                threshold,
                e
            );
        }
    }

    /// The earliest instant at which [`Observer::expire`] has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.tracker.next_deadline()
    }

    /// Report every stall due at `now`.
    pub fn expire(&mut self, now: Instant) -> &[Event] {
        self.out.clear();
        while let Some(s) = self.tracker.expire(now) {
            self.out.push(Event::Stall {
                pid: s.pid,
                last_beat: s.last_beat,
                deadline: s.deadline,
            });
        }
        &self.out
    }

    /// The process behind `pid` exited (pidfd readable). The agent is forgotten.
    pub fn on_exit(&mut self, pid: u32) -> &[Event] {
        self.out.clear();
        if self.tracker.remove(pid).is_some() {
            self.out.push(Event::Exited { pid });
        }
        &self.out
    }

    /// Forget the metadata of an agent that left the tracker (exited).
    pub fn forget(&mut self, pid: u32) -> Option<AgentMeta> {
        self.meta.remove(&pid)
    }
}

#[cfg(test)]
mod tests {
    /// One per agent in a map of twice as many buckets: every byte here is two per agent.
    #[test]
    fn metadata_stays_small() {
        assert!(std::mem::size_of::<super::AgentMeta>() <= 56);
    }
}
