//! The event export: one TSV row per event, `observer_ns kind pid nonce status payload`,
//! the published observer's six columns. `-` marks a column that does not apply.
//! Rows are buffered, flushed within [`FLUSH_DELAY`] of being written and on close, and the
//! file is rotated to `PATH.1` past a size limit.

use crate::observer::AgentMeta;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use varta_core::event::Event;
use varta_core::time::{Duration, Instant};

/// Longest a written row waits in the buffer.
pub const FLUSH_DELAY: Duration = Duration::from_millis(20);

/// One column after `observer_ns kind pid`.
enum Cell {
    Dash,
    Num(u64),
    Text(&'static str),
    Owned(String),
}

/// The `nonce status payload` columns of `e`, and its pid (0 when none applies).
fn cells(e: &Event, now: Instant) -> (u32, [Cell; 3]) {
    use Cell::{Dash, Num, Owned, Text};
    match *e {
        Event::Registered { pid, status } => (pid, [Dash, Text(status.as_str()), Dash]),
        Event::Beat {
            pid,
            status,
            nonce,
            payload,
        } => (
            pid,
            [Num(nonce), Text(status.as_str()), Num(payload.into())],
        ),
        Event::NewSession { pid, nonce } => (pid, [Num(nonce), Dash, Dash]),
        Event::PidReused { pid } | Event::Exited { pid } => (pid, [Dash, Dash, Dash]),
        Event::Recovered { pid, silent_for } => {
            (pid, [Dash, Text("ok"), Num(silent_for.as_millis())])
        }
        Event::Critical { pid, payload } => (pid, [Dash, Text("critical"), Num(payload.into())]),
        Event::Terminal { pid, payload } => {
            (pid, [Num(u64::MAX), Text("critical"), Num(payload.into())])
        }
        Event::Stall { pid, last_beat, .. } => (
            pid,
            [
                Dash,
                Text("stall"),
                Num(now.saturating_since(last_beat).as_millis()),
            ],
        ),
        Event::Rejected { pid, reason } => (pid.unwrap_or(0), [Dash, Text(reason.reason()), Dash]),
        Event::Evicted { pid, reason } => {
            let r = match reason {
                varta_core::event::EvictReason::Stalled => "stalled",
                varta_core::event::EvictReason::Gone => "gone",
            };
            (pid, [Dash, Text(r), Dash])
        }
        Event::Missing { rule } => (0, [Dash, Owned(format!("rule{rule}")), Dash]),
        Event::RecoverySpawned {
            pid,
            child,
            attempt,
            trigger,
        } => (
            pid,
            [
                Num(attempt.into()),
                Text(trigger.as_str()),
                Num(child.into()),
            ],
        ),
        Event::RecoveryDone {
            pid,
            child,
            outcome,
        } => {
            use varta_core::policy::recovery::ChildOutcome;
            let detail = match outcome {
                ChildOutcome::Exited { code } => Owned(code.to_string()),
                ChildOutcome::Signaled { signal } => Owned(signal.to_string()),
                ChildOutcome::TimedOut { .. } => Dash,
                ChildOutcome::SpawnFailed { errno } => Owned(errno.to_string()),
            };
            (pid, [Num(child.into()), Text(outcome.as_str()), detail])
        }
        Event::RecoveryRefused { pid, reason } => (pid, [Dash, Text(reason.as_str()), Dash]),
        Event::Escalated { pid } | Event::GaveUp { pid } => (pid, [Dash, Dash, Dash]),
        Event::GateOpened => (0, [Dash, Dash, Dash]),
        Event::GateClosed { reason } => (0, [Dash, Owned(format!("{reason:?}")), Dash]),
    }
}

/// Append one event's row (with trailing newline) to `out`. Beats are most rows, so the
/// common columns are written without allocating.
pub fn write_row(out: &mut String, e: &Event, now: Instant) {
    let mut num = itoa::Buffer::new();
    let (pid, cols) = cells(e, now);
    out.push_str(num.format(now.as_nanos()));
    out.push('\t');
    out.push_str(e.kind());
    out.push('\t');
    out.push_str(num.format(pid));
    for c in &cols {
        out.push('\t');
        match c {
            Cell::Dash => out.push('-'),
            Cell::Num(n) => out.push_str(num.format(*n)),
            Cell::Text(t) => out.push_str(t),
            Cell::Owned(t) => out.push_str(t),
        }
    }
    out.push('\n');
}

/// Format one event as a row (with trailing newline).
pub fn row(e: &Event, now: Instant, _meta: Option<&AgentMeta>) -> String {
    let mut s = String::with_capacity(64);
    write_row(&mut s, e, now);
    s
}

/// The export file.
#[derive(Debug)]
pub struct EventLog {
    path: PathBuf,
    out: BufWriter<File>,
    size: u64,
    max_bytes: u64,
    flush_at: Option<Instant>,
    /// Write errors seen (the observer keeps running; they are logged and counted).
    pub errors: u64,
    /// Rows written.
    pub rows: u64,
    /// The row being formatted (kept to reuse its allocation).
    line: String,
}

fn open(path: &Path) -> io::Result<(BufWriter<File>, u64)> {
    let f = OpenOptions::new().create(true).append(true).open(path)?;
    let size = f.metadata()?.len();
    Ok((BufWriter::with_capacity(64 << 10, f), size))
}

impl EventLog {
    /// Open (append) `path`; rotate past `max_bytes` (0 = never).
    pub fn open(path: &Path, max_bytes: u64) -> io::Result<Self> {
        let (out, size) = open(path)?;
        Ok(EventLog {
            path: path.to_path_buf(),
            out,
            size,
            max_bytes,
            flush_at: None,
            errors: 0,
            rows: 0,
            line: String::with_capacity(128),
        })
    }

    /// Append `e`'s row.
    pub fn write_event(&mut self, e: &Event, now: Instant) {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        write_row(&mut line, e, now);
        self.write(&line, now);
        self.line = line;
    }

    /// Append one row.
    pub fn write(&mut self, line: &str, now: Instant) {
        if self.max_bytes > 0 && self.size + line.len() as u64 > self.max_bytes && self.size > 0 {
            self.rotate();
        }
        match self.out.write_all(line.as_bytes()) {
            Ok(()) => {
                self.size += line.len() as u64;
                self.rows += 1;
                self.flush_at.get_or_insert(now + FLUSH_DELAY);
            }
            Err(e) => self.fail("write", e),
        }
    }

    fn fail(&mut self, what: &str, e: io::Error) {
        self.errors += 1;
        log::warn!("export {} {}: {}", what, self.path.display(), e);
    }

    fn rotate(&mut self) {
        self.flush();
        let old = PathBuf::from(format!("{}.1", self.path.display()));
        if let Err(e) = std::fs::rename(&self.path, &old) {
            self.fail("rotate", e);
            return;
        }
        match open(&self.path) {
            Ok((out, size)) => {
                self.out = out;
                self.size = size;
            }
            Err(e) => self.fail("reopen", e),
        }
    }

    /// When buffered rows are due to be flushed.
    pub fn next_due(&self) -> Option<Instant> {
        self.flush_at
    }

    /// Flush if due.
    pub fn on_due(&mut self, now: Instant) {
        if self.flush_at.is_some_and(|t| now >= t) {
            self.flush();
        }
    }

    /// Flush now.
    pub fn flush(&mut self) {
        self.flush_at = None;
        if let Err(e) = self.out.flush() {
            self.fail("flush", e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use varta_core::event::Reject;
    use varta_core::wire::{DecodeError, Status};

    #[test]
    fn rows_have_six_columns_and_published_values() {
        let now = Instant::from_nanos(5_000_000_000);
        let beat = row(
            &Event::Beat {
                pid: 7,
                status: Status::Degraded,
                nonce: 3,
                payload: 9,
            },
            now,
            None,
        );
        assert_eq!(beat, "5000000000\tbeat\t7\t3\tdegraded\t9\n");
        let stall = row(
            &Event::Stall {
                pid: 7,
                last_beat: Instant::from_nanos(2_000_000_000),
                deadline: now,
            },
            now,
            None,
        );
        assert_eq!(stall, "5000000000\tstall\t7\t-\tstall\t3000\n");
        let rej = row(
            &Event::Rejected {
                pid: None,
                reason: Reject::Decode(DecodeError::BadLength(5)),
            },
            now,
            None,
        );
        assert_eq!(rej, "5000000000\trejected\t0\t-\tbad_length\t-\n");
        for e in [
            Event::GateOpened,
            Event::Exited { pid: 1 },
            Event::Terminal { pid: 1, payload: 0 },
        ] {
            assert_eq!(row(&e, now, None).trim_end().split('\t').count(), 6);
        }
    }

    #[test]
    fn flush_is_timed_and_rotation_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.tsv");
        let mut log = EventLog::open(&p, 100).unwrap();
        let t0 = Instant::from_nanos(1_000);
        log.write("0123456789012345678901234567890123456789\n", t0); // 41 bytes
        assert_eq!(log.next_due(), Some(t0 + FLUSH_DELAY));
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "",
            "buffered until due"
        );
        log.on_due(t0 + FLUSH_DELAY);
        assert_eq!(std::fs::read_to_string(&p).unwrap().len(), 41);
        assert_eq!(log.next_due(), None);
        log.write("0123456789012345678901234567890123456789\n", t0);
        log.write("third-row-goes-to-a-fresh-file-000000000\n", t0); // would pass 100 bytes
        log.flush();
        let rotated = std::fs::read_to_string(dir.path().join("e.tsv.1")).unwrap();
        assert_eq!(rotated.len(), 82);
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "third-row-goes-to-a-fresh-file-000000000\n"
        );
        assert_eq!(log.rows, 3);
        assert_eq!(log.errors, 0);
    }
}
