//! One tracked agent.

use crate::time::{Duration, Instant};
use crate::wire::Status;

/// Link value meaning "no neighbour". Links store `index + 1`, so that an empty tracker is
/// all zero bytes and a large `static` one lives in `.bss` (no binary size, no RSS until used).
pub(crate) const NIL: u32 = 0;

/// Link value for slot index `i`.
#[inline(always)]
pub(crate) const fn link(i: u32) -> u32 {
    i + 1
}

/// Slot index for a non-NIL link.
#[inline(always)]
pub(crate) const fn index(l: u32) -> usize {
    (l - 1) as usize
}

/// Where an agent stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AgentState {
    /// Beating within its threshold; has a pending stall deadline.
    Healthy,
    /// Silent past its threshold (reported once). Evictable.
    Stalled,
    /// Sent its terminal frame, or reported exited. Evictable; never stalls.
    Gone,
}

/// A tracker slot. 48 bytes: the tracker's budget is 64 bytes per agent including the pid
/// index (see the size test in `tracker`).
#[derive(Copy, Clone, Debug)]
pub(crate) struct Slot {
    pub start_time: u64,
    pub last_nonce: u64,
    pub last_beat: u64,
    pub pid: u32,
    pub prev: u32,
    pub next: u32,
    pub beats: u32,
    pub stalls: u16,
    pub sessions: u16,
    pub tokens: u16,
    pub class: u8,
    /// Low 2 bits: status; bits 2-3: state.
    pub flags: u8,
}

impl Slot {
    pub const EMPTY: Slot = Slot {
        start_time: 0,
        last_nonce: 0,
        last_beat: 0,
        pid: 0,
        prev: NIL,
        next: NIL,
        beats: 0,
        stalls: 0,
        sessions: 0,
        tokens: 0,
        class: 0,
        flags: 0,
    };

    pub fn status(&self) -> Status {
        Status::from_u8(self.flags & 0b11).unwrap_or(Status::Ok)
    }

    pub fn set_status(&mut self, s: Status) {
        self.flags = (self.flags & !0b11) | s as u8;
    }

    pub fn state(&self) -> AgentState {
        match (self.flags >> 2) & 0b11 {
            0 => AgentState::Healthy,
            1 => AgentState::Stalled,
            _ => AgentState::Gone,
        }
    }

    pub fn set_state(&mut self, s: AgentState) {
        let v = match s {
            AgentState::Healthy => 0,
            AgentState::Stalled => 1,
            AgentState::Gone => 2,
        };
        self.flags = (self.flags & 0b11) | (v << 2);
    }

    pub fn last_beat(&self) -> Instant {
        Instant::from_nanos(self.last_beat)
    }
}

/// A read-only copy of an agent's tracker state.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AgentView {
    /// Agent pid.
    pub pid: u32,
    /// Process start time, when the frontend supplied it.
    pub start_time: Option<u64>,
    /// Last reported status (`Stall` is never stored: see `state`).
    pub status: Status,
    /// Healthy, stalled or gone.
    pub state: AgentState,
    /// When it last beat.
    pub last_beat: Instant,
    /// Last accepted nonce.
    pub last_nonce: u64,
    /// Its stall threshold.
    pub threshold: Duration,
    /// Accepted beats (saturating).
    pub beats: u32,
    /// Stalls reported (saturating).
    pub stalls: u16,
    /// Client sessions after the first (saturating).
    pub sessions: u16,
}
