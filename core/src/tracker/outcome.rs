//! What `Tracker::record` reports, and its translation into core events.

use crate::event::{Event, EvictReason, Reject};
use crate::time::{Duration, Instant};
use crate::wire::{Frame, Status};

/// How the agent's tracked state changed with an accepted frame.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Change {
    /// First frame from this agent.
    Inserted,
    /// An ordinary beat.
    Beat,
    /// The nonce went backwards from the same process: a restarted client session.
    NewSession,
    /// The pid now belongs to another process (start time changed): a new agent.
    PidReused,
    /// It had stalled and beats again.
    Recovered {
        /// How long it was silent.
        silent_for: Duration,
    },
}

/// An accepted frame.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Accepted {
    /// Agent pid.
    pub pid: u32,
    /// What changed.
    pub change: Change,
    /// Status in this frame.
    pub status: Status,
    /// Status of the previous frame (None for a new agent).
    pub previous: Option<Status>,
    /// Critical + nonce u64::MAX: the agent is dying.
    pub terminal: bool,
    /// An agent evicted to make room (only with `Inserted`).
    pub evicted: Option<(u32, EvictReason)>,
}

/// The result of `Tracker::record`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Outcome {
    /// Recorded.
    Accepted(Accepted),
    /// Not recorded, with the reason.
    Rejected(Reject),
}

/// A stall reported by `Tracker::expire`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Stall {
    /// Agent pid.
    pub pid: u32,
    /// When it last beat.
    pub last_beat: Instant,
    /// last_beat + threshold.
    pub deadline: Instant,
}

impl From<Stall> for Event {
    fn from(s: Stall) -> Event {
        Event::Stall {
            pid: s.pid,
            last_beat: s.last_beat,
            deadline: s.deadline,
        }
    }
}

/// Up to six events for one frame, in the order they happened.
pub type Events = heapless::Vec<Event, 6>;

impl Accepted {
    /// The events this acceptance stands for: an eviction first, then identity changes
    /// (registered, pid reused, new session, recovered), the beat, and Critical/Terminal.
    pub fn events(&self, frame: &Frame) -> Events {
        let mut v = Events::new();
        self.events_into(frame, &mut v);
        v
    }

    /// [`Accepted::events`] written into `v` (cleared first), which a caller keeps to
    /// avoid building and copying a fresh list per frame.
    pub fn events_into(&self, frame: &Frame, v: &mut Events) {
        v.clear();
        let pid = self.pid;
        // Capacity 6 is enough for the longest sequence (5); pushes cannot fail.
        if let Some((epid, reason)) = self.evicted {
            let _ = v.push(Event::Evicted { pid: epid, reason });
        }
        match self.change {
            Change::Inserted => {
                let _ = v.push(Event::Registered {
                    pid,
                    status: self.status,
                });
            }
            Change::PidReused => {
                let _ = v.push(Event::PidReused { pid });
                let _ = v.push(Event::Registered {
                    pid,
                    status: self.status,
                });
            }
            Change::NewSession => {
                let _ = v.push(Event::NewSession {
                    pid,
                    nonce: frame.nonce,
                });
            }
            Change::Recovered { silent_for } => {
                let _ = v.push(Event::Recovered { pid, silent_for });
            }
            Change::Beat => {}
        }
        let _ = v.push(Event::Beat {
            pid,
            status: self.status,
            nonce: frame.nonce,
            payload: frame.payload,
        });
        if self.terminal {
            let _ = v.push(Event::Terminal {
                pid,
                payload: frame.payload,
            });
        } else if self.status == Status::Critical && self.previous != Some(Status::Critical) {
            let _ = v.push(Event::Critical {
                pid,
                payload: frame.payload,
            });
        }
    }
}

impl Outcome {
    /// The events for this outcome (a rejection gives one `Rejected`).
    pub fn events(&self, frame: &Frame) -> Events {
        match self {
            Outcome::Accepted(a) => a.events(frame),
            Outcome::Rejected(r) => {
                let mut v = Events::new();
                let _ = v.push(Event::Rejected {
                    pid: Some(frame.pid),
                    reason: *r,
                });
                v
            }
        }
    }
}
