//! What the kernel tells about a process under test: CPU time and wake-ups summed over its
//! threads, and its memory.

use std::fs;
use std::io;

/// CPU time and wake-ups of a process so far.
#[derive(Copy, Clone, Debug, Default)]
pub struct Usage {
    /// On-CPU time of all its threads, ns (`/proc/<pid>/task/*/schedstat`).
    pub cpu_ns: u64,
    /// Times its threads went to sleep and were woken (`voluntary_ctxt_switches`).
    pub wakeups: u64,
}

impl Usage {
    /// `self − earlier`.
    pub fn since(self, earlier: Usage) -> Usage {
        Usage {
            cpu_ns: self.cpu_ns.saturating_sub(earlier.cpu_ns),
            wakeups: self.wakeups.saturating_sub(earlier.wakeups),
        }
    }
}

fn status_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Usage of `pid` now.
pub fn usage(pid: u32) -> io::Result<Usage> {
    let mut u = Usage::default();
    for t in fs::read_dir(format!("/proc/{pid}/task"))? {
        let t = t?.path();
        // A thread may end between the listing and the read: skip it.
        if let Ok(s) = fs::read_to_string(t.join("schedstat")) {
            u.cpu_ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
        if let Ok(s) = fs::read_to_string(t.join("status")) {
            u.wakeups += status_field(&s, "voluntary_ctxt_switches:").unwrap_or(0);
        }
    }
    Ok(u)
}

/// Resident set size now and its peak, KiB.
pub fn memory(pid: u32) -> io::Result<(u64, u64)> {
    let s = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = status_field(&s, "VmRSS:").unwrap_or(0);
    let hwm = status_field(&s, "VmHWM:").unwrap_or(0);
    Ok((rss, hwm))
}

/// Memory of a process with shared pages accounted for, KiB, from
/// `/proc/<pid>/smaps_rollup` (Linux 4.14+; reading another process's needs ptrace access,
/// which root has).
///
/// RSS counts every resident page mapped, so the C library's file pages, shared with every
/// other process, count in full; PSS divides each shared page by the number of processes
/// mapping it; USS (private) is what the process alone holds, what stopping it frees.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Rollup {
    /// `Rss:`.
    pub rss: u64,
    /// `Pss:`.
    pub pss: u64,
    /// `Private_Clean:` + `Private_Dirty:` (USS).
    pub private: u64,
}

/// Parse the text of `smaps_rollup` (None: a field missing).
pub fn parse_rollup(text: &str) -> Option<Rollup> {
    Some(Rollup {
        rss: status_field(text, "Rss:")?,
        pss: status_field(text, "Pss:")?,
        private: status_field(text, "Private_Clean:")? + status_field(text, "Private_Dirty:")?,
    })
}

/// [`Rollup`] of `pid` now.
pub fn rollup(pid: u32) -> io::Result<Rollup> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let s = fs::read_to_string(&path)?;
    parse_rollup(&s).ok_or_else(|| io::Error::other(format!("{path}: no Rss/Pss/Private_* fields")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_usage_and_memory() {
        let a = usage(std::process::id()).unwrap();
        // Spin for 30 ms of wall time: on-CPU time must grow by a good part of that.
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
        }
        let b = usage(std::process::id()).unwrap();
        let grew = b.since(a).cpu_ns;
        assert!(
            grew >= 5_000_000,
            "CPU time grew by only {grew} ns while spinning 30 ms"
        );
        let (rss, hwm) = memory(std::process::id()).unwrap();
        assert!(rss > 0 && hwm >= rss);
    }

    #[test]
    fn parses_smaps_rollup() {
        // As Linux 6.x prints it (the Pss_* lines must not be taken for Pss).
        let s = "\
55d4c3de1000-7ffe43b91000 ---p 00000000 00:00 0                          [rollup]
Rss:                1736 kB
Pss:                 499 kB
Pss_Dirty:           112 kB
Pss_Anon:            112 kB
Pss_File:            387 kB
Pss_Shmem:             0 kB
Shared_Clean:       1576 kB
Shared_Dirty:          0 kB
Private_Clean:        48 kB
Private_Dirty:       112 kB
Referenced:         1736 kB
Anonymous:           112 kB
Swap:                  0 kB
SwapPss:               0 kB
";
        assert_eq!(
            parse_rollup(s),
            Some(Rollup {
                rss: 1736,
                pss: 499,
                private: 160
            })
        );
        assert_eq!(parse_rollup("Rss: 1 kB\nPss_Dirty: 2 kB\n"), None);
    }

    #[test]
    fn reads_own_rollup() {
        if !std::path::Path::new("/proc/self/smaps_rollup").exists() {
            return; // before Linux 4.14
        }
        let r = rollup(std::process::id()).unwrap();
        assert!(
            r.private > 0 && r.private <= r.pss && r.pss <= r.rss,
            "{r:?}"
        );
    }

    #[test]
    fn parses_status_fields() {
        let s = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nvoluntary_ctxt_switches:\t7\n";
        assert_eq!(status_field(s, "VmRSS:"), Some(1024));
        assert_eq!(status_field(s, "voluntary_ctxt_switches:"), Some(7));
        assert_eq!(status_field(s, "Missing:"), None);
    }
}
