//! The recovery audit log: an append-only, hash-chained TSV file of everything the recovery
//! side did (boot, spawn, complete, refused, escalated, gave up, reset reason, rotate, stop).
//!
//! Durability: each record is one `write(2)` on an `O_APPEND` file, followed by `fdatasync`
//! (every record by default, or every N records with a time bound). A failed write is
//! rolled back to the last whole line and kept for retry, so the chain never has holes.
//! Past a size limit the file is rotated (`PATH.1` … `PATH.5`) and the new file's first
//! record links to the last record of the old one. On start the log resumes: a torn last
//! line (a crash mid-write) is truncated and the new boot record says so.

pub mod record;
pub mod verify;

pub use record::{Entry, Kind};

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use varta_core::time::{Duration, Instant};

/// Rotated generations kept (`PATH.1` newest … `PATH.5` oldest).
pub const GENERATIONS: u32 = 5;
/// Longest `detail` written (longer ones are cut and marked).
pub const MAX_DETAIL: usize = 2048;
/// Records kept in memory while the file cannot be written; beyond this the oldest are
/// dropped (and counted) rather than growing without bound.
const MAX_BACKLOG: usize = 10_000;
/// Bytes read from the end of a file to find its last record.
const TAIL: u64 = 64 << 10;

/// When records reach the disk.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SyncPolicy {
    /// `fdatasync` after this many records (1: every record).
    pub every: u32,
    /// With `every > 1`: longest a written record waits for its `fdatasync`.
    pub interval: Duration,
}

impl Default for SyncPolicy {
    fn default() -> Self {
        SyncPolicy {
            every: 1,
            interval: Duration::from_millis(1000),
        }
    }
}

/// Where and how to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditSettings {
    /// The live file.
    pub path: PathBuf,
    /// Rotate once the file reaches this size (0: never).
    pub max_bytes: u64,
    /// Sync policy.
    pub sync: SyncPolicy,
}

impl AuditSettings {
    /// `path` with the default rotation size and sync policy.
    pub fn new(path: PathBuf) -> Self {
        AuditSettings {
            path,
            max_bytes: DEFAULT_MAX_BYTES,
            sync: SyncPolicy::default(),
        }
    }
}

/// Default rotation size.
pub const DEFAULT_MAX_BYTES: u64 = 16 << 20;

/// The open log.
#[derive(Debug)]
pub struct AuditLog {
    settings: AuditSettings,
    file: File,
    size: u64,
    seq: u64,
    prev: [u8; 32],
    unsynced: u32,
    sync_due: Option<Instant>,
    backlog: VecDeque<String>,
    /// Records appended (written or queued).
    pub records: u64,
    /// Write or sync failures seen.
    pub errors: u64,
    /// Records dropped because the backlog was full.
    pub dropped: u64,
}

/// What the end of an existing file says.
#[derive(Debug, Default)]
struct Tail {
    size: u64,
    torn: u64,
    last_line: Option<String>,
}

fn read_tail(path: &Path) -> io::Result<Option<Tail>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let size = f.metadata()?.len();
    let start = size.saturating_sub(TAIL);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity((size - start) as usize);
    f.read_to_end(&mut buf)?;
    let Some(last_nl) = buf.iter().rposition(|&b| b == b'\n') else {
        // No complete line in the tail: the whole (small) file is one torn line.
        return Ok(Some(Tail {
            size,
            torn: buf.len() as u64,
            last_line: None,
        }));
    };
    let torn = (buf.len() - last_nl - 1) as u64;
    let before = &buf[..last_nl];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let last_line = String::from_utf8_lossy(&before[line_start..]).into_owned();
    Ok(Some(Tail {
        size,
        torn,
        last_line: Some(last_line),
    }))
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::CLOEXEC.bits() as i32)
        .open(path)
}

impl AuditLog {
    /// Open (or create) the log, resume its chain and write a boot record.
    pub fn open(settings: AuditSettings, now: Instant) -> Result<Self, String> {
        let path = settings.path.clone();
        let what = |e: io::Error| format!("audit log {}: {}", path.display(), e);
        let tail = read_tail(&path).map_err(what)?;
        let mut notes: Vec<String> = Vec::new();
        // The chain continues from this file's last record, or from PATH.1's when the live
        // file is missing or empty (a crash between rotation steps).
        let mut anchor_line = tail.as_ref().and_then(|t| t.last_line.clone());
        let live_has_records = anchor_line.as_deref().is_some_and(|l| !l.starts_with('#'));
        if !live_has_records {
            let prev = rotated(&path, 1);
            if let Some(t) = read_tail(&prev).map_err(what)? {
                if t.last_line.as_deref().is_some_and(|l| !l.starts_with('#')) {
                    notes.push(format!("chain continues from {}", prev.display()));
                    anchor_line = t.last_line;
                }
            }
        }
        let file = open_append(&path).map_err(what)?;
        let mut size = tail.as_ref().map_or(0, |t| t.size);
        if let Some(t) = &tail {
            if t.torn > 0 {
                size -= t.torn;
                file.set_len(size).map_err(what)?;
                file.sync_data().map_err(what)?;
                notes.push(format!(
                    "truncated a torn last line ({} bytes) left by a crash",
                    t.torn
                ));
            }
        }
        let (mut seq, mut prev) = (0, record::GENESIS);
        match anchor_line.as_deref() {
            Some(l) if !l.starts_with('#') => match record::parse(l) {
                Ok(r) => {
                    if r.computed != r.hash {
                        notes.push(format!("last record seq {} does not verify", r.seq));
                    }
                    if r.kind != Kind::Stop {
                        notes.push("previous run ended without a stop record".into());
                    }
                    notes.push(format!("resumed after seq {}", r.seq));
                    seq = r.seq;
                    prev = r.hash;
                }
                Err(e) => notes.push(format!("last line is not a record ({}); new chain", e.0)),
            },
            _ => notes.insert(0, "new log".into()),
        }
        let mut log = AuditLog {
            settings,
            file,
            size,
            seq,
            prev,
            unsynced: 0,
            sync_due: None,
            backlog: VecDeque::new(),
            records: 0,
            errors: 0,
            dropped: 0,
        };
        if log.size == 0 {
            log.write_raw(record::header().as_bytes()).map_err(what)?;
        }
        let detail = format!(
            "varta-watch {} pid {}; {}",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            notes.join("; ")
        );
        log.append(&Entry::note(Kind::Boot, detail), now);
        log.sync(now);
        sync_dir(&log.settings.path);
        Ok(log)
    }

    /// The live file's path.
    pub fn path(&self) -> &Path {
        &self.settings.path
    }

    /// Sequence number of the last record appended.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.file.write_all(bytes) {
            Ok(()) => {
                self.size += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Roll back a partial line so a retry does not leave a torn record behind.
                let _ = self.file.set_len(self.size);
                Err(e)
            }
        }
    }

    /// Append a record. It is on disk when this returns if the policy syncs every record
    /// (the default); otherwise within the policy's interval ([`AuditLog::next_due`]).
    pub fn append(&mut self, e: &Entry, now: Instant) {
        let mut e = e.clone();
        if e.detail.len() > MAX_DETAIL {
            let mut cut = MAX_DETAIL;
            while !e.detail.is_char_boundary(cut) {
                cut -= 1;
            }
            e.detail.truncate(cut);
            e.detail.push_str(" [cut]");
        }
        self.seq += 1;
        let (line, hash) = record::format(self.seq, wall_ms(), now.as_nanos(), &e, &self.prev);
        self.prev = hash;
        self.records += 1;
        if self.backlog.len() >= MAX_BACKLOG {
            self.backlog.pop_front();
            self.dropped += 1;
        }
        self.backlog.push_back(line);
        self.flush_backlog();
        self.unsynced += 1;
        if self.unsynced >= self.settings.sync.every.max(1) {
            self.sync(now);
        } else if self.sync_due.is_none() {
            self.sync_due = Some(now + self.settings.sync.interval);
        }
        self.maybe_rotate(now);
    }

    fn flush_backlog(&mut self) {
        while let Some(line) = self.backlog.front().cloned() {
            if let Err(e) = self.write_raw(line.as_bytes()) {
                self.errors += 1;
                log::error!(
                    "audit log {}: {} ({} records waiting to be written)",
                    self.settings.path.display(),
                    e,
                    self.backlog.len()
                );
                return;
            }
            self.backlog.pop_front();
        }
    }

    /// `fdatasync` what was written.
    pub fn sync(&mut self, _now: Instant) {
        self.flush_backlog();
        if let Err(e) = self.file.sync_data() {
            self.errors += 1;
            log::error!(
                "audit log {}: fdatasync: {}",
                self.settings.path.display(),
                e
            );
            return;
        }
        self.unsynced = 0;
        self.sync_due = None;
    }

    /// When a batched sync (or a retry of unwritten records) is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.sync_due
    }

    /// Do what is due at `now`.
    pub fn on_due(&mut self, now: Instant) {
        if self.sync_due.is_some_and(|t| now >= t) {
            self.sync(now);
            if !self.backlog.is_empty() {
                self.sync_due = Some(now + self.settings.sync.interval);
            }
        }
    }

    fn maybe_rotate(&mut self, now: Instant) {
        if self.settings.max_bytes == 0 || self.size < self.settings.max_bytes {
            return;
        }
        if let Err(e) = self.rotate(now) {
            self.errors += 1;
            log::error!(
                "audit log {}: rotation failed, still writing to the current file: {}",
                self.settings.path.display(),
                e
            );
        }
    }

    fn rotate(&mut self, now: Instant) -> io::Result<()> {
        self.sync(now);
        let path = self.settings.path.clone();
        for n in (1..GENERATIONS).rev() {
            let from = rotated(&path, n);
            if from.exists() {
                std::fs::rename(&from, rotated(&path, n + 1))?;
            }
        }
        std::fs::rename(&path, rotated(&path, 1))?;
        self.file = open_append(&path)?;
        self.size = 0;
        sync_dir(&path);
        self.write_raw(record::header().as_bytes())?;
        let note = format!(
            "continues from {} (seq {})",
            rotated(&path, 1).display(),
            self.seq
        );
        self.append(&Entry::note(Kind::Rotate, note), now);
        self.sync(now);
        Ok(())
    }

    /// Write a stop record and sync (orderly shutdown).
    pub fn close(&mut self, now: Instant) {
        self.append(&Entry::note(Kind::Stop, "orderly stop"), now);
        self.sync(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path, max_bytes: u64) -> AuditSettings {
        AuditSettings {
            path: dir.join("audit.tsv"),
            max_bytes,
            sync: SyncPolicy::default(),
        }
    }

    fn spawn(i: u32) -> Entry {
        Entry {
            kind: Kind::Spawn,
            pid: Some(100 + i),
            name: format!("agent{i}"),
            child: Some(5000 + i),
            attempt: Some(1),
            detail: "argv=[\"/bin/true\"]".into(),
        }
    }

    fn now(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn new_log_has_header_boot_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path(), 0);
        let mut log = AuditLog::open(s.clone(), now(1)).unwrap();
        for i in 0..10 {
            log.append(&spawn(i), now(2 + i as u64));
        }
        log.close(now(50));
        let text = std::fs::read_to_string(&s.path).unwrap();
        assert!(text.starts_with("#varta-audit\tv1\tseq"));
        assert_eq!(text.lines().count(), 1 + 1 + 10 + 1);
        let v = verify::verify_files(std::slice::from_ref(&s.path)).unwrap();
        assert_eq!((v.first_seq, v.last_seq, v.records), (1, 12, 12));
        assert!(text.lines().nth(1).unwrap().contains("\tboot\t"));
    }

    #[test]
    fn resume_truncates_a_torn_line_and_continues_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path(), 0);
        let mut log = AuditLog::open(s.clone(), now(1)).unwrap();
        log.append(&spawn(1), now(2));
        drop(log); // no stop record: a crash
        let mut f = OpenOptions::new().append(true).open(&s.path).unwrap();
        f.write_all(b"3\t17000\t5\tspawn\t1").unwrap();
        drop(f);
        let mut log = AuditLog::open(s.clone(), now(10)).unwrap();
        log.append(&spawn(2), now(11));
        log.close(now(12));
        let text = std::fs::read_to_string(&s.path).unwrap();
        let boot2 = text.lines().find(|l| l.starts_with("3\t")).unwrap();
        assert!(boot2.contains("torn last line (17 bytes)"), "{boot2}");
        assert!(boot2.contains("without a stop record"), "{boot2}");
        assert!(boot2.contains("resumed after seq 2"), "{boot2}");
        let v = verify::verify_files(std::slice::from_ref(&s.path)).unwrap();
        assert_eq!(v.last_seq, 5);
    }

    #[test]
    fn rotation_carries_the_chain_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path(), 2000);
        let mut log = AuditLog::open(s.clone(), now(1)).unwrap();
        for i in 0..100 {
            log.append(&spawn(i), now(2 + i as u64));
        }
        log.close(now(500));
        let mut files: Vec<PathBuf> = (1..=GENERATIONS)
            .rev()
            .map(|n| rotated(&s.path, n))
            .filter(|p| p.exists())
            .collect();
        assert_eq!(
            files.len(),
            GENERATIONS as usize,
            "oldest generations dropped"
        );
        files.push(s.path.clone());
        let v = verify::verify_files(&files).unwrap();
        assert_eq!(v.last_seq, log.seq());
        assert!(v.first_seq > 1, "the oldest files were rotated away");
        // Each file alone verifies too, anchored at its first record.
        for f in &files {
            verify::verify_files(std::slice::from_ref(f)).unwrap();
        }
        // Out of order they do not.
        files.swap(0, 1);
        assert!(verify::verify_files(&files).is_err());
    }

    #[test]
    fn a_missing_live_file_continues_from_the_rotated_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path(), 0);
        let mut log = AuditLog::open(s.clone(), now(1)).unwrap();
        log.append(&spawn(1), now(2));
        drop(log);
        std::fs::rename(&s.path, rotated(&s.path, 1)).unwrap();
        let mut log = AuditLog::open(s.clone(), now(3)).unwrap();
        log.close(now(4));
        verify::verify_files(&[rotated(&s.path, 1), s.path.clone()]).unwrap();
    }
}
