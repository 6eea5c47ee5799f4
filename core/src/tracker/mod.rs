//! The per-agent tracker: fixed capacity, no allocation, O(1) per beat.
//!
//! Layout: a slab of [`Slot`]s with stable indices, a half-full open-addressing table from
//! pid to slot ([`index`]), and intrusive doubly-linked lists through the slots:
//!
//! * one list per *threshold class* (agents sharing a stall threshold), holding the healthy
//!   agents in order of their last beat. A beat moves the agent to its list's tail in O(1),
//!   so each list's head has that class's earliest deadline; the next stall deadline is the
//!   minimum over the (at most [`MAX_CLASSES`]) heads, and `expire` pops heads.
//! * one list of evictable agents (stalled or gone), in order of their last beat: its head
//!   is the longest silent, evicted first when the tracker is full.
//!
//! Nothing here scans all agents.

mod index;
mod outcome;
mod slot;

pub use outcome::{Accepted, Change, Events, Outcome, Stall};
pub use slot::{AgentState, AgentView};

use crate::event::{EvictReason, Reject};
use crate::policy::rate::{self, GlobalLimiter, RateLimit};
use crate::time::{Duration, Instant};
use crate::wire::{Frame, Status, NONCE_TERMINAL};
use index::PidIndex;
use slot::{index, link, Slot, NIL};

/// Distinct stall thresholds the tracker can hold at once.
pub const MAX_CLASSES: usize = 16;
/// Largest supported capacity.
pub const MAX_CAPACITY: usize = 65_536;

/// Tracker settings.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TrackerConfig {
    /// Threshold for agents nobody configured.
    pub default_threshold: Duration,
    /// Per-agent rate limit (burst clamped to 255 frames).
    pub agent_rate: RateLimit,
    /// Global rate limit over all agents.
    pub global_rate: RateLimit,
}

impl TrackerConfig {
    /// All zero: for `static` trackers that are configured at start-up with
    /// [`Tracker::reconfigure`] (an all-zero tracker sits in `.bss`).
    pub const ZERO: TrackerConfig = TrackerConfig {
        default_threshold: Duration::ZERO,
        agent_rate: RateLimit::UNLIMITED,
        global_rate: RateLimit::UNLIMITED,
    };

    /// Default threshold `d`, no rate limits.
    pub const fn new(default_threshold: Duration) -> Self {
        TrackerConfig {
            default_threshold,
            agent_rate: RateLimit::UNLIMITED,
            global_rate: RateLimit::UNLIMITED,
        }
    }
}

/// Where a frame came from, as far as the frontend can tell.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Origin {
    /// The kernel-attested sender pid (SO_PASSCRED); `None` for UDP.
    pub kernel_pid: Option<u32>,
    /// The sender's process start time, when the frontend read it.
    pub start_time: Option<u64>,
    /// Kernel-attested transport (recovery may act on it).
    pub trusted: bool,
}

/// Why a threshold could not be set.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ThresholdError {
    /// No such agent.
    UnknownAgent,
    /// Already [`MAX_CLASSES`] distinct thresholds in use.
    TooManyClasses,
    /// A zero threshold would stall at once.
    Zero,
}

/// Tracker-wide counters.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TrackerStats {
    /// Frames accepted.
    pub accepted: u64,
    /// Agents registered (including pid reuse).
    pub registered: u64,
    /// New client sessions.
    pub sessions: u64,
    /// Pids found reused by another process.
    pub pid_reuse: u64,
    /// Nonce gaps (frames the client sent that never arrived).
    pub gaps: u64,
    /// Stalls reported.
    pub stalls: u64,
    /// Recoveries from stall.
    pub recoveries: u64,
    /// Evictions.
    pub evictions: u64,
    /// Rejections: pid mismatch.
    pub rejected_pid_mismatch: u64,
    /// Rejections: duplicate nonce.
    pub rejected_duplicate: u64,
    /// Rejections: per-agent rate.
    pub rejected_rate: u64,
    /// Rejections: global rate.
    pub rejected_global_rate: u64,
    /// Rejections: capacity.
    pub rejected_capacity: u64,
}

#[derive(Copy, Clone, Debug)]
struct List {
    head: u32,
    tail: u32,
}

impl List {
    const EMPTY: List = List {
        head: NIL,
        tail: NIL,
    };
}

/// Index of the evictable list in `lists` (after the class lists).
const IDLE: usize = MAX_CLASSES;

/// The tracker. `N` is the capacity: a power of two from 2 to 65 536.
pub struct Tracker<const N: usize> {
    index: PidIndex<N>,
    slots: heapless::Vec<Slot, N>,
    free: u32,
    lists: [List; MAX_CLASSES + 1],
    thresholds: heapless::Vec<Duration, MAX_CLASSES>,
    evictable: u32,
    /// [`Tracker::limit`], 0 for N.
    limit: u32,
    global: GlobalLimiter,
    cfg: TrackerConfig,
    stats: TrackerStats,
}

/// Largest per-agent bucket (u16 units of 1/256 token).
const TOKEN_CAP: u32 = u16::MAX as u32;

impl<const N: usize> Tracker<N> {
    const CHECK: () = assert!(
        N >= 2 && N <= MAX_CAPACITY && N.is_power_of_two(),
        "tracker capacity must be a power of two from 2 to 65536"
    );

    /// An empty tracker. `const`, so a large one can be a `static`.
    pub const fn new(cfg: TrackerConfig) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::CHECK;
        Tracker {
            index: PidIndex::new(),
            slots: heapless::Vec::new(),
            free: NIL,
            lists: [List::EMPTY; MAX_CLASSES + 1],
            thresholds: heapless::Vec::new(),
            evictable: 0,
            limit: 0,
            global: GlobalLimiter::new(cfg.global_rate),
            cfg,
            stats: TrackerStats {
                accepted: 0,
                registered: 0,
                sessions: 0,
                pid_reuse: 0,
                gaps: 0,
                stalls: 0,
                recoveries: 0,
                evictions: 0,
                rejected_pid_mismatch: 0,
                rejected_duplicate: 0,
                rejected_rate: 0,
                rejected_global_rate: 0,
                rejected_capacity: 0,
            },
        }
    }

    /// Change the configuration (default threshold, rate limits). Agents keep their state;
    /// those on the default threshold get the new one.
    pub fn reconfigure(&mut self, cfg: TrackerConfig) {
        self.cfg = cfg;
        self.global = GlobalLimiter::new(cfg.global_rate);
    }

    /// Storage: the most agents this tracker type can hold.
    pub const fn capacity() -> usize {
        N
    }

    /// Track at most `limit` agents (clamped to 1..=N; [`Tracker::capacity`] until set), so
    /// a frontend can honour any requested capacity with a few storage sizes. Meant for
    /// start-up; lowering it below the agents tracked evicts nobody, a new agent then only
    /// gets in by evicting one, as when full.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.clamp(1, N) as u32;
    }

    /// The most agents tracked at once.
    pub fn limit(&self) -> usize {
        if self.limit == 0 {
            N
        } else {
            self.limit as usize
        }
    }

    /// Agents tracked (in any state).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True with no agents.
    pub fn is_empty(&self) -> bool {
        self.index.len() == 0
    }

    /// Key the pid hash with `seed` (a frontend draws it at start-up, so nobody sending
    /// frames can pick pids that collide). Re-places tracked agents: O(agents).
    pub fn set_hash_seed(&mut self, seed: u64) {
        // A free slot holds pid 0, which no frame carries.
        let held = self.slots.iter().enumerate().filter(|(_, s)| s.pid != 0);
        self.index.reseed(seed, held.map(|(i, s)| (s.pid, i)));
    }

    fn find(&self, pid: u32) -> Option<u32> {
        self.index
            .find(pid, |s| self.slots[s].pid)
            .map(|s| s as u32)
    }

    fn unindex(&mut self, pid: u32) -> Option<u32> {
        let slots = &self.slots;
        self.index.remove(pid, |s| slots[s].pid).map(|s| s as u32)
    }

    /// Counters.
    pub fn stats(&self) -> &TrackerStats {
        &self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &TrackerConfig {
        &self.cfg
    }

    fn threshold_of(&self, s: &Slot) -> Duration {
        if s.class == 0 || (s.class as usize) > self.thresholds.len() {
            self.cfg.default_threshold
        } else {
            self.thresholds[s.class as usize - 1]
        }
    }

    // ---- intrusive lists ------------------------------------------------------------

    fn unlink(&mut self, i: u32, list: usize) {
        let (prev, next) = {
            let s = &self.slots[i as usize];
            (s.prev, s.next)
        };
        if prev == NIL {
            self.lists[list].head = next;
        } else {
            self.slots[index(prev)].next = next;
        }
        if next == NIL {
            self.lists[list].tail = prev;
        } else {
            self.slots[index(next)].prev = prev;
        }
        let s = &mut self.slots[i as usize];
        s.prev = NIL;
        s.next = NIL;
    }

    /// Insert keeping the list ordered by last beat: walk back from the tail (O(1) when
    /// the slot's beat is the latest, which is the case for every beat).
    fn link_sorted(&mut self, i: u32, list: usize) {
        let key = self.slots[i as usize].last_beat;
        let mut after = self.lists[list].tail;
        while after != NIL && self.slots[index(after)].last_beat > key {
            after = self.slots[index(after)].prev;
        }
        let next = if after == NIL {
            self.lists[list].head
        } else {
            self.slots[index(after)].next
        };
        {
            let s = &mut self.slots[i as usize];
            s.prev = after;
            s.next = next;
        }
        if after == NIL {
            self.lists[list].head = link(i);
        } else {
            self.slots[index(after)].next = link(i);
        }
        if next == NIL {
            self.lists[list].tail = link(i);
        } else {
            self.slots[index(next)].prev = link(i);
        }
    }

    fn list_of(s: &Slot) -> usize {
        match s.state() {
            AgentState::Healthy => s.class as usize,
            _ => IDLE,
        }
    }

    fn set_state(&mut self, i: u32, st: AgentState) {
        let old = self.slots[i as usize].state();
        if old == st {
            return;
        }
        let from = Self::list_of(&self.slots[i as usize]);
        self.unlink(i, from);
        if old == AgentState::Healthy {
            self.evictable += 1;
        }
        if st == AgentState::Healthy {
            self.evictable -= 1;
        }
        self.slots[i as usize].set_state(st);
        let to = Self::list_of(&self.slots[i as usize]);
        self.link_sorted(i, to);
    }

    // ---- slots ----------------------------------------------------------------------

    fn alloc(&mut self, s: Slot) -> u32 {
        if self.free != NIL {
            let i = index(self.free) as u32;
            self.free = self.slots[i as usize].next;
            self.slots[i as usize] = s;
            i
        } else {
            let i = self.slots.len() as u32;
            // The index map bounds the count, so there is always room here.
            let _ = self.slots.push(s);
            i
        }
    }

    fn release(&mut self, i: u32) -> Slot {
        let list = Self::list_of(&self.slots[i as usize]);
        self.unlink(i, list);
        let old = self.slots[i as usize];
        if old.state() != AgentState::Healthy {
            self.evictable -= 1;
        }
        let s = &mut self.slots[i as usize];
        *s = Slot::EMPTY;
        s.next = self.free;
        self.free = link(i);
        old
    }

    fn view(&self, s: &Slot) -> AgentView {
        AgentView {
            pid: s.pid,
            start_time: if s.start_time == 0 {
                None
            } else {
                Some(s.start_time)
            },
            status: s.status(),
            state: s.state(),
            last_beat: s.last_beat(),
            last_nonce: s.last_nonce,
            threshold: self.threshold_of(s),
            beats: s.beats,
            stalls: s.stalls,
            sessions: s.sessions,
        }
    }

    /// Remove `pid` (its process exited). Returns its last state.
    pub fn remove(&mut self, pid: u32) -> Option<AgentView> {
        let i = self.unindex(pid)?;
        let old = self.release(i);
        Some(self.view(&old))
    }

    /// Mark `pid` gone (exited, row kept for display; evictable; never stalls).
    pub fn mark_gone(&mut self, pid: u32) -> bool {
        match self.find(pid) {
            Some(i) => {
                self.set_state(i, AgentState::Gone);
                true
            }
            None => false,
        }
    }

    /// One agent.
    pub fn get(&self, pid: u32) -> Option<AgentView> {
        self.find(pid).map(|i| self.view(&self.slots[i as usize]))
    }

    /// Every agent, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = AgentView> + '_ {
        // A free slot holds pid 0, which no frame carries.
        self.slots
            .iter()
            .filter(|s| s.pid != 0)
            .map(move |s| self.view(s))
    }

    /// Give `pid` its own stall threshold (its deadline moves accordingly).
    pub fn set_threshold(&mut self, pid: u32, threshold: Duration) -> Result<(), ThresholdError> {
        if threshold == Duration::ZERO {
            return Err(ThresholdError::Zero);
        }
        let i = self.find(pid).ok_or(ThresholdError::UnknownAgent)?;
        let class = if threshold == self.cfg.default_threshold {
            0
        } else if let Some(p) = self.thresholds.iter().position(|&t| t == threshold) {
            p as u8 + 1
        } else {
            self.thresholds
                .push(threshold)
                .map_err(|_| ThresholdError::TooManyClasses)?;
            self.thresholds.len() as u8
        };
        let s = self.slots[i as usize];
        if s.class == class {
            return Ok(());
        }
        if s.state() == AgentState::Healthy {
            self.unlink(i, s.class as usize);
            self.slots[i as usize].class = class;
            self.link_sorted(i, class as usize);
        } else {
            self.slots[i as usize].class = class;
        }
        Ok(())
    }

    // ---- deadlines ------------------------------------------------------------------

    fn earliest(&self) -> Option<(usize, Instant)> {
        let mut best: Option<(usize, Instant)> = None;
        for c in 0..=self.thresholds.len() {
            let h = self.lists[c].head;
            if h == NIL {
                continue;
            }
            let s = &self.slots[index(h)];
            let d = s.last_beat() + self.threshold_of(s);
            if best.is_none_or(|(_, b)| d < b) {
                best = Some((c, d));
            }
        }
        best
    }

    /// The earliest pending stall deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.earliest().map(|(_, d)| d)
    }

    /// Report one stall whose deadline is at or before `now`; call until `None`. Each
    /// silence is reported once: the agent leaves the deadline lists until it beats again.
    pub fn expire(&mut self, now: Instant) -> Option<Stall> {
        let (c, deadline) = self.earliest()?;
        if deadline > now {
            return None;
        }
        let i = index(self.lists[c].head) as u32;
        self.set_state(i, AgentState::Stalled);
        let s = &mut self.slots[i as usize];
        s.stalls = s.stalls.saturating_add(1);
        self.stats.stalls += 1;
        core_debug!("stall pid {}", s.pid);
        Some(Stall {
            pid: s.pid,
            last_beat: s.last_beat(),
            deadline,
        })
    }

    // ---- recording ------------------------------------------------------------------

    fn reject(&mut self, r: Reject) -> Outcome {
        match r {
            Reject::PidMismatch { .. } => self.stats.rejected_pid_mismatch += 1,
            Reject::Duplicate { .. } => self.stats.rejected_duplicate += 1,
            Reject::RateLimited => self.stats.rejected_rate += 1,
            Reject::GlobalRateLimited => self.stats.rejected_global_rate += 1,
            Reject::Capacity => self.stats.rejected_capacity += 1,
            _ => {}
        }
        Outcome::Rejected(r)
    }

    fn fresh_slot(&self, frame: &Frame, origin: &Origin, now: Instant) -> Slot {
        let mut s = Slot::EMPTY;
        s.pid = frame.pid;
        s.start_time = origin.start_time.unwrap_or(0);
        s.last_nonce = frame.nonce;
        s.last_beat = now.as_nanos();
        s.beats = 1;
        s.tokens = self.cfg.agent_rate.full(TOKEN_CAP) as u16;
        s.tokens = rate::charge(
            &self.cfg.agent_rate,
            s.tokens as u32,
            Duration::ZERO,
            TOKEN_CAP,
        ) as u16;
        s.set_status(frame.status);
        s
    }

    /// Record a decoded frame received at `now`.
    pub fn record(&mut self, frame: &Frame, origin: &Origin, now: Instant) -> Outcome {
        if let Some(k) = origin.kernel_pid {
            if k != frame.pid {
                return self.reject(Reject::PidMismatch {
                    claimed: frame.pid,
                    kernel: k,
                });
            }
        }
        let must_accept = frame.status == Status::Critical;
        if must_accept {
            self.global.charge(now.as_nanos());
        } else if !self.global.admit(now.as_nanos()) {
            return self.reject(Reject::GlobalRateLimited);
        }
        let terminal = frame.is_terminal();
        match self.find(frame.pid) {
            Some(i) => self.update(i, frame, origin, now, must_accept, terminal),
            None => self.insert(frame, origin, now, terminal, Change::Inserted),
        }
    }

    fn insert(
        &mut self,
        frame: &Frame,
        origin: &Origin,
        now: Instant,
        terminal: bool,
        change: Change,
    ) -> Outcome {
        let mut evicted = None;
        if self.index.len() >= self.limit() {
            if self.evictable == 0 {
                return self.reject(Reject::Capacity);
            }
            let victim = index(self.lists[IDLE].head) as u32;
            let v = self.slots[victim as usize];
            let reason = if v.state() == AgentState::Gone {
                EvictReason::Gone
            } else {
                EvictReason::Stalled
            };
            self.unindex(v.pid);
            self.release(victim);
            self.stats.evictions += 1;
            evicted = Some((v.pid, reason));
        }
        let slot = self.fresh_slot(frame, origin, now);
        let i = self.alloc(slot);
        // Room was made above: at most N pids.
        self.index.insert(frame.pid, i as usize);
        self.link_sorted(i, 0);
        if terminal {
            self.set_state(i, AgentState::Gone);
        }
        self.stats.accepted += 1;
        self.stats.registered += 1;
        if change == Change::PidReused {
            self.stats.pid_reuse += 1;
        }
        Outcome::Accepted(Accepted {
            pid: frame.pid,
            change,
            status: frame.status,
            previous: None,
            terminal,
            evicted,
        })
    }

    fn update(
        &mut self,
        i: u32,
        frame: &Frame,
        origin: &Origin,
        now: Instant,
        must_accept: bool,
        terminal: bool,
    ) -> Outcome {
        let s = self.slots[i as usize];
        if let (Some(t), true) = (origin.start_time, s.start_time != 0) {
            if t != s.start_time {
                self.unindex(frame.pid);
                self.release(i);
                return self.insert(frame, origin, now, terminal, Change::PidReused);
            }
        }
        let last = s.last_nonce;
        let n = frame.nonce;
        let change_nonce = if terminal {
            Change::Beat
        } else if n == last {
            return self.reject(Reject::Duplicate { nonce: n });
        } else if n > last || (last == NONCE_TERMINAL - 1 && n == 0) {
            if n != last.wrapping_add(1) && !(last == NONCE_TERMINAL - 1 && n == 0) {
                self.stats.gaps += 1;
            }
            Change::Beat
        } else {
            Change::NewSession
        };
        let elapsed = now.saturating_since(s.last_beat());
        let tokens = if must_accept {
            rate::charge(&self.cfg.agent_rate, s.tokens as u32, elapsed, TOKEN_CAP)
        } else {
            match rate::admit(&self.cfg.agent_rate, s.tokens as u32, elapsed, TOKEN_CAP) {
                Some(t) => t,
                None => return self.reject(Reject::RateLimited),
            }
        };
        let previous = s.status();
        let change = match (s.state(), change_nonce) {
            (AgentState::Stalled, _) => {
                self.stats.recoveries += 1;
                Change::Recovered {
                    silent_for: elapsed,
                }
            }
            (_, c) => c,
        };
        if change_nonce == Change::NewSession {
            self.stats.sessions += 1;
        }
        if let Some(t) = origin.start_time {
            self.slots[i as usize].start_time = t;
        }
        {
            let m = &mut self.slots[i as usize];
            m.tokens = tokens as u16;
            m.last_nonce = n;
            m.last_beat = now.as_nanos();
            m.beats = m.beats.saturating_add(1);
            if change_nonce == Change::NewSession {
                m.sessions = m.sessions.saturating_add(1);
            }
            m.set_status(frame.status);
        }
        let target = if terminal {
            AgentState::Gone
        } else {
            AgentState::Healthy
        };
        if s.state() == target {
            // Same list: move to its tail (the latest beat).
            let list = Self::list_of(&self.slots[i as usize]);
            self.unlink(i, list);
            self.link_sorted(i, list);
        } else {
            self.set_state(i, target);
        }
        self.stats.accepted += 1;
        Outcome::Accepted(Accepted {
            pid: frame.pid,
            change,
            status: frame.status,
            previous: Some(previous),
            terminal,
            evicted: None,
        })
    }
}

#[cfg(test)]
mod tests;
