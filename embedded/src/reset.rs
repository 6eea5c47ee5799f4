//! What survives a watchdog reset, in a small state directory on persistent storage:
//!
//! * `reset-reason`: written (and fsynced, with its directory) just before the gate stops
//!   petting: which agent, its pid, why, when. Read back on the next boot, reported, and
//!   renamed to `reset-reason.prev` so it is reported once.
//! * `boot-loop`: the core's 16-byte [`BootLoopRecord`] (CRC-checked): consecutive watchdog
//!   resets blamed on the same agent.
//!
//! Both are replaced atomically (temporary file, fsync, rename, fsync of the directory).

use std::io::Write;
use std::path::{Path, PathBuf};
use varta_core::policy::gate::BootLoopRecord;

/// The reset-reason record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResetReason {
    /// Wall clock, ms since the Unix epoch.
    pub wall_ms: u64,
    /// The agent blamed (rule name), empty for the observer itself.
    pub agent: String,
    /// Its pid (0 if it never registered).
    pub pid: u32,
    /// `critical_agent_lost`, `escalated`, `required_agent_missing`, `observer_stalled`.
    pub why: String,
    /// Consecutive resets blamed on this agent, this one included.
    pub consecutive: u16,
}

impl ResetReason {
    /// The file's text: one `key=value` per line.
    pub fn to_text(&self) -> String {
        format!(
            "wall_ms={}\nagent={}\npid={}\nwhy={}\nconsecutive={}\n",
            self.wall_ms,
            self.agent.replace(['\n', '\r'], " "),
            self.pid,
            self.why,
            self.consecutive
        )
    }

    /// Parse what [`ResetReason::to_text`] wrote; unknown keys are ignored, a file without
    /// `why` is not a record.
    pub fn parse(text: &str) -> Option<ResetReason> {
        let mut r = ResetReason::default();
        let mut have_why = false;
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            match k {
                "wall_ms" => r.wall_ms = v.parse().ok()?,
                "agent" => r.agent = v.to_string(),
                "pid" => r.pid = v.parse().ok()?,
                "why" => {
                    r.why = v.to_string();
                    have_why = true
                }
                "consecutive" => r.consecutive = v.parse().ok()?,
                _ => {}
            }
        }
        have_why.then_some(r)
    }

    /// "db (pid 412) critical_agent_lost".
    pub fn summary(&self) -> String {
        let who = if self.agent.is_empty() {
            "the observer".to_string()
        } else {
            format!("{} (pid {})", self.agent, self.pid)
        };
        format!("{} {}", who, self.why)
    }
}

/// The state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
}

/// What was found at start-up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// The reset-reason record left by the previous boot, if any.
    pub reason: Option<ResetReason>,
    /// The boot-loop record, if readable.
    pub record: Option<BootLoopRecord>,
    /// Why the boot-loop record was unreadable (missing is not an error).
    pub record_error: Option<String>,
}

impl StateDir {
    /// Use (and create) `dir`.
    pub fn open(dir: &Path) -> Result<StateDir, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {}", dir.display(), e))?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Read what the previous boot left, and retire the reset-reason record (renamed to
    /// `reset-reason.prev`) so it is reported once.
    pub fn take(&self) -> Found {
        let mut f = Found::default();
        let rr = self.dir.join("reset-reason");
        if let Ok(t) = std::fs::read_to_string(&rr) {
            f.reason = ResetReason::parse(&t);
            let _ = std::fs::rename(&rr, self.dir.join("reset-reason.prev"));
        }
        match std::fs::read(self.dir.join("boot-loop")) {
            Ok(b) => match BootLoopRecord::from_bytes(&b) {
                Ok(r) => f.record = Some(r),
                Err(e) => f.record_error = Some(format!("{e:?}")),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => f.record_error = Some(e.to_string()),
        }
        f
    }

    /// Persist the boot-loop record.
    pub fn write_record(&self, r: &BootLoopRecord) -> std::io::Result<()> {
        self.replace("boot-loop", &r.to_bytes())
    }

    /// Persist the reset reason (after the boot-loop record, so a reason on disk always
    /// has its count).
    pub fn write_reason(&self, r: &ResetReason) -> std::io::Result<()> {
        self.replace("reset-reason", r.to_text().as_bytes())
    }

    fn replace(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, self.dir.join(name))?;
        std::fs::File::open(&self.dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_round_trips_and_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::open(&dir.path().join("state")).unwrap();
        assert_eq!(s.take(), Found::default());
        let r = ResetReason {
            wall_ms: 1_764_000_000_000,
            agent: "modem\nd".into(),
            pid: 412,
            why: "critical_agent_lost".into(),
            consecutive: 2,
        };
        let rec = BootLoopRecord::CLEAR.blame(7, 2).blame(7, 2);
        s.write_record(&rec).unwrap();
        s.write_reason(&r).unwrap();
        let f = s.take();
        let got = f.reason.unwrap();
        assert_eq!(got.agent, "modem d");
        assert_eq!(got.pid, 412);
        assert_eq!(got.summary(), "modem d (pid 412) critical_agent_lost");
        assert_eq!(f.record, Some(rec));
        // Reported once; the count stays until cleared.
        let again = s.take();
        assert_eq!(again.reason, None);
        assert_eq!(again.record, Some(rec));
        assert!(s.path().join("reset-reason.prev").exists());
    }

    #[test]
    fn corrupt_record_is_reported_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::open(dir.path()).unwrap();
        let mut b = BootLoopRecord::CLEAR.blame(1, 2).to_bytes();
        b[7] ^= 1;
        std::fs::write(dir.path().join("boot-loop"), b).unwrap();
        let f = s.take();
        assert_eq!(f.record, None);
        assert_eq!(f.record_error.as_deref(), Some("BadChecksum"));
        assert_eq!(ResetReason::parse("garbage\n"), None);
        assert_eq!(ResetReason::parse("why=x\npid=notanumber\n"), None);
    }
}
