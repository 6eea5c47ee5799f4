//! Agent identity from /proc: process start time (pid-reuse detection), comm, exe and the
//! systemd unit from the cgroup path.
//!
//! These reads happen when an agent is first seen or starts a new session, never per beat.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What the observer knows about a process, read from `/proc/<pid>/`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessFacts {
    /// Start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
    pub start_time: u64,
    /// `comm` (at most 15 bytes, as the kernel truncates it).
    pub comm: String,
    /// Executable path, if readable (needs same uid or CAP_SYS_PTRACE).
    pub exe: Option<PathBuf>,
    /// systemd unit (`*.service` or `*.scope`) from `/proc/<pid>/cgroup`, if any.
    pub unit: Option<String>,
}

/// Where `/proc` is (a seam for tests).
#[derive(Clone, Debug)]
pub struct ProcFs {
    root: PathBuf,
}

impl Default for ProcFs {
    fn default() -> Self {
        ProcFs {
            root: PathBuf::from("/proc"),
        }
    }
}

impl ProcFs {
    /// A proc tree rooted elsewhere (tests).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        ProcFs { root: root.into() }
    }

    fn path(&self, pid: u32, leaf: &str) -> PathBuf {
        self.root.join(pid.to_string()).join(leaf)
    }

    /// The process start time alone (the cheap check before acting on a pid).
    pub fn start_time(&self, pid: u32) -> io::Result<u64> {
        let stat = fs::read(self.path(pid, "stat"))?;
        parse_stat_start_time(&stat)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed /proc stat"))
    }

    /// Everything we identify an agent by. Only the start time is mandatory.
    pub fn facts(&self, pid: u32) -> io::Result<ProcessFacts> {
        let stat = fs::read(self.path(pid, "stat"))?;
        let start_time = parse_stat_start_time(&stat)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed /proc stat"))?;
        let comm = parse_stat_comm(&stat).unwrap_or_default();
        let exe = fs::read_link(self.path(pid, "exe")).ok();
        let unit = fs::read_to_string(self.path(pid, "cgroup"))
            .ok()
            .and_then(|c| unit_from_cgroup(&c));
        Ok(ProcessFacts {
            start_time,
            comm,
            exe,
            unit,
        })
    }
}

/// `comm` is between the first '(' and the LAST ')': it may itself contain spaces and ')'.
fn parse_stat_comm(stat: &[u8]) -> Option<String> {
    let open = stat.iter().position(|&b| b == b'(')?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    if close <= open {
        return None;
    }
    Some(String::from_utf8_lossy(&stat[open + 1..close]).into_owned())
}

/// Field 22 (starttime). Fields after comm start at field 3 (state).
fn parse_stat_start_time(stat: &[u8]) -> Option<u64> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
    // rest = " S ppid ..." ; state is field 3, so starttime (22) is index 19 here.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// The innermost `*.service` or `*.scope` component of the unified (or name=systemd)
/// cgroup path, e.g. `0::/system.slice/modem.service` → `modem.service`.
pub fn unit_from_cgroup(cgroup: &str) -> Option<String> {
    let mut best: Option<&str> = None;
    for line in cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_id, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
        if !(ctrl.is_empty() || ctrl == "name=systemd") {
            continue;
        }
        for comp in path.split('/') {
            if comp.ends_with(".service") || comp.ends_with(".scope") {
                best = Some(comp);
            }
        }
    }
    best.map(str::to_owned)
}

/// True if `path` names an existing proc root (used by `doctor`).
pub fn proc_available(root: &Path) -> bool {
    root.join("self/stat").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &[u8] = b"4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";

    #[test]
    fn stat_with_parens_in_comm() {
        assert_eq!(parse_stat_comm(STAT).as_deref(), Some("my (odd) prog"));
        assert_eq!(parse_stat_start_time(STAT), Some(987654));
    }

    #[test]
    fn malformed_stat() {
        assert_eq!(parse_stat_start_time(b"garbage"), None);
        assert_eq!(parse_stat_start_time(b"1 (x) S 1"), None);
    }

    #[test]
    fn cgroup_units() {
        assert_eq!(
            unit_from_cgroup("0::/system.slice/modem.service\n").as_deref(),
            Some("modem.service")
        );
        assert_eq!(
            unit_from_cgroup(
                "0::/user.slice/user-1000.slice/user@1000.service/app.slice/run-u5.scope\n"
            )
            .as_deref(),
            Some("run-u5.scope")
        );
        assert_eq!(
            unit_from_cgroup("12:cpu:/foo.service\n1:name=systemd:/system.slice/a.service\n")
                .as_deref(),
            Some("a.service")
        );
        assert_eq!(unit_from_cgroup("0::/\n"), None);
    }

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        let facts = ProcFs::default().facts(me).unwrap();
        assert!(facts.start_time > 0);
        assert!(!facts.comm.is_empty());
        assert_eq!(ProcFs::default().start_time(me).unwrap(), facts.start_time);
        assert!(ProcFs::default().facts(u32::MAX - 1).is_err());
    }
}
