//! Pid → slot lookup: an open-addressing table with twice as many entries as the tracker
//! has slots, so it is at most half full.
//!
//! A table sized to the capacity (what a `heapless` map of capacity N is) runs at 100 %
//! load when the tracker is full, and its probe sequences, hence the cost of every beat,
//! grow with the number of agents. At half load a linear probe looks at 1.5 entries on
//! average for a hit, whatever the capacity.
//!
//! An entry is `tag << 17 | (slot + 1)` (0 is empty): the tag, 15 bits of the pid's hash
//! that did not pick the home position, rules out almost every other agent without reading
//! its slot. The hash is keyed with a seed the frontend draws at start-up: pids from UDP are
//! whatever a sender wrote, and a fixed hash would let one choose pids that all collide.
//! Removal shifts the following entries back (no tombstones), so lookups stay short however
//! long the tracker runs.

/// Slot indices fit in 17 bits (capacity up to 65 536), leaving 15 for the tag.
const SLOT_BITS: u32 = 17;
const SLOT_MASK: u32 = (1 << SLOT_BITS) - 1;

/// The table: `N` pairs of entries, addressed as one array of `2 N`.
#[derive(Debug)]
pub struct PidIndex<const N: usize> {
    entries: [[u32; 2]; N],
    len: usize,
    seed: u64,
}

impl<const N: usize> PidIndex<N> {
    /// An empty table hashing with seed 0 (see [`PidIndex::reseed`]).
    pub const fn new() -> Self {
        PidIndex {
            entries: [[0; 2]; N],
            len: 0,
            seed: 0,
        }
    }

    const MASK: usize = 2 * N - 1;

    /// Pids in the table.
    pub const fn len(&self) -> usize {
        self.len
    }

    fn hash(&self, pid: u32) -> u64 {
        // The splitmix64 finaliser: every input bit reaches every output bit.
        let mut z = (pid as u64) ^ self.seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Home position and tag of `pid`.
    fn place(&self, pid: u32) -> (usize, u32) {
        let h = self.hash(pid);
        ((h as usize) & Self::MASK, (h >> 49) as u32)
    }

    fn get(&self, j: usize) -> u32 {
        self.entries[j >> 1][j & 1]
    }

    fn set(&mut self, j: usize, v: u32) {
        self.entries[j >> 1][j & 1] = v;
    }

    /// The slot of `pid`; `pid_of` gives the pid held by a slot.
    pub fn find(&self, pid: u32, pid_of: impl Fn(usize) -> u32) -> Option<usize> {
        self.position(pid, &pid_of).map(|(_, slot)| slot)
    }

    fn position(&self, pid: u32, pid_of: &impl Fn(usize) -> u32) -> Option<(usize, usize)> {
        let (mut j, tag) = self.place(pid);
        loop {
            let v = self.get(j);
            if v == 0 {
                return None;
            }
            let slot = (v & SLOT_MASK) as usize - 1;
            if v >> SLOT_BITS == tag && pid_of(slot) == pid {
                return Some((j, slot));
            }
            j = (j + 1) & Self::MASK;
        }
    }

    /// Add `pid` at `slot` (`pid` must not be in the table; at most `N` pids).
    pub fn insert(&mut self, pid: u32, slot: usize) {
        debug_assert!(self.len < N && slot < N);
        let (mut j, tag) = self.place(pid);
        while self.get(j) != 0 {
            j = (j + 1) & Self::MASK;
        }
        self.set(j, tag << SLOT_BITS | (slot as u32 + 1));
        self.len += 1;
    }

    /// Remove `pid`; returns its slot. `pid_of` must still answer for every slot in the
    /// table, `pid`'s included.
    pub fn remove(&mut self, pid: u32, pid_of: impl Fn(usize) -> u32) -> Option<usize> {
        let (mut hole, slot) = self.position(pid, &pid_of)?;
        self.set(hole, 0);
        self.len -= 1;
        // Shift back every entry of the run after the hole that may live there: one whose
        // home is not cyclically within (hole, k].
        let mut k = (hole + 1) & Self::MASK;
        loop {
            let v = self.get(k);
            if v == 0 {
                return Some(slot);
            }
            let (home, _) = self.place(pid_of((v & SLOT_MASK) as usize - 1));
            if (k.wrapping_sub(home) & Self::MASK) >= (k.wrapping_sub(hole) & Self::MASK) {
                self.set(hole, v);
                self.set(k, 0);
                hole = k;
            }
            k = (k + 1) & Self::MASK;
        }
    }

    /// Hash with `seed` from now on. The table is emptied and `occupants` (every pid it
    /// held, with its slot) placed again; done in place, as a copy of a 65 536-agent table
    /// would be half a megabyte of stack.
    pub fn reseed(&mut self, seed: u64, occupants: impl Iterator<Item = (u32, usize)>) {
        // An empty table is all zero already: leave its pages untouched (a tracker in .bss
        // keeps them off the resident set until agents arrive).
        if self.len > 0 {
            for pair in self.entries.iter_mut() {
                *pair = [0; 2];
            }
        }
        self.seed = seed;
        self.len = 0;
        for (pid, slot) in occupants {
            self.insert(pid, slot);
        }
    }
}

impl<const N: usize> Default for PidIndex<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::collections::HashMap;
    use std::vec::Vec;

    /// Random inserts and removals against a std map, with few home positions so runs
    /// wrap around the table's end and removals shift entries back.
    #[test]
    fn matches_a_map_under_churn() {
        const N: usize = 64;
        for seed in [0u64, 1, 0xDEAD_BEEF, u64::MAX] {
            let mut t = PidIndex::<N>::new();
            t.reseed(seed, core::iter::empty());
            let mut pids = [0u32; N];
            let mut model: HashMap<u32, usize> = HashMap::new();
            let mut free: Vec<usize> = (0..N).rev().collect();
            let mut x = 0x2545_F491_4F6C_DD1Du64 ^ seed;
            for step in 0..20_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let pid = 2 + (x % 200) as u32;
                match model.get(&pid).copied() {
                    Some(slot) if x & 1 == 0 => {
                        assert_eq!(t.remove(pid, |s| pids[s]), Some(slot), "step {step}");
                        pids[slot] = 0;
                        model.remove(&pid);
                        free.push(slot);
                    }
                    Some(slot) => assert_eq!(t.find(pid, |s| pids[s]), Some(slot)),
                    None => {
                        assert_eq!(t.find(pid, |s| pids[s]), None);
                        if let Some(slot) = free.pop() {
                            pids[slot] = pid;
                            t.insert(pid, slot);
                            model.insert(pid, slot);
                        }
                    }
                }
                assert_eq!(t.len(), model.len());
                if step % 5000 == 4999 {
                    let held = pids.iter().enumerate().filter(|(_, &p)| p != 0);
                    t.reseed(x, held.map(|(s, &p)| (p, s)));
                }
            }
            for (&pid, &slot) in &model {
                assert_eq!(t.find(pid, |s| pids[s]), Some(slot));
            }
        }
    }

    /// Full (N pids in 2N entries), every pid is found within a few probes.
    #[test]
    fn full_table_probes_stay_short() {
        const N: usize = 4096;
        let mut t = PidIndex::<N>::new();
        t.reseed(0x1234_5678, core::iter::empty());
        let pids: Vec<u32> = (0..N as u32).map(|i| 1000 + i).collect();
        for (slot, &pid) in pids.iter().enumerate() {
            t.insert(pid, slot);
        }
        let mut total = 0usize;
        for &pid in &pids {
            let (mut j, _) = t.place(pid);
            let mut probes = 1;
            while (t.get(j) & SLOT_MASK) as usize - 1 != (pid - 1000) as usize {
                j = (j + 1) & PidIndex::<N>::MASK;
                probes += 1;
            }
            total += probes;
        }
        // Linear probing at half load: 1.5 probes per hit on average.
        assert!(total < 2 * N, "{} probes for {} pids", total, N);
    }
}
