//! The node_exporter textfile: the same metrics as `/metrics`, written atomically (temporary
//! file in the same directory, then rename) on a timer, for gateways with no open port.

use crate::status::StatusBoard;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use varta_core::time::{Duration, Instant};

/// The textfile writer.
#[derive(Debug)]
pub struct Textfile {
    path: PathBuf,
    tmp: PathBuf,
    interval: Duration,
    next: Instant,
    /// Write failures (logged, counted, retried next interval).
    pub errors: u64,
}

impl Textfile {
    /// Write to `path` every `interval`, first at `now`. The directory must exist.
    pub fn new(path: &Path, interval: Duration, now: Instant) -> Result<Self, String> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(format!(
                "{}: directory {} does not exist",
                path.display(),
                dir.display()
            ));
        }
        let name = path
            .file_name()
            .ok_or_else(|| format!("{}: not a file path", path.display()))?;
        let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
        Ok(Textfile {
            path: path.to_path_buf(),
            tmp,
            interval,
            next: now,
            errors: 0,
        })
    }

    /// When the next write is due.
    pub fn next_due(&self) -> Instant {
        self.next
    }

    /// Write if due.
    pub fn on_due(&mut self, now: Instant, board: &StatusBoard) {
        if now >= self.next {
            self.write(board, now);
        }
    }

    /// Write now.
    pub fn write(&mut self, board: &StatusBoard, now: Instant) {
        self.next = now + self.interval;
        if let Err(e) = self.try_write(board) {
            self.errors += 1;
            log::warn!("metrics file {}: {}", self.path.display(), e);
        }
    }

    fn try_write(&self, board: &StatusBoard) -> io::Result<()> {
        let text = super::prometheus::render(board);
        let mut f = std::fs::File::create(&self.tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_data()?;
        std::fs::rename(&self.tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_atomically_on_its_interval() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("varta.prom");
        let t0 = Instant::from_nanos(10);
        let mut t = Textfile::new(&p, Duration::from_secs(15), t0).unwrap();
        assert_eq!(t.next_due(), t0);
        let mut b = StatusBoard {
            frames_received: 7,
            ..Default::default()
        };
        t.on_due(t0, &b);
        assert!(std::fs::read_to_string(&p)
            .unwrap()
            .contains("varta_frames_received_total 7\n"));
        assert_eq!(t.next_due(), t0 + Duration::from_secs(15));
        b.frames_received = 8;
        t.on_due(t0 + Duration::from_secs(1), &b);
        assert!(std::fs::read_to_string(&p)
            .unwrap()
            .contains("varta_frames_received_total 7\n"));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file left behind: {names:?}");
        assert!(
            Textfile::new(&dir.path().join("nope/x.prom"), Duration::from_secs(1), t0).is_err()
        );
    }
}
