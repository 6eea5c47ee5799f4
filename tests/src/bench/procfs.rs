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
    fn parses_status_fields() {
        let s = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nvoluntary_ctxt_switches:\t7\n";
        assert_eq!(status_field(s, "VmRSS:"), Some(1024));
        assert_eq!(status_field(s, "voluntary_ctxt_switches:"), Some(7));
        assert_eq!(status_field(s, "Missing:"), None);
    }
}
