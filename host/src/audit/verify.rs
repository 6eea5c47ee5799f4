//! `varta-watch audit verify FILE...`: check the hash chain of one or more audit files given
//! oldest first (`audit.tsv.2 audit.tsv.1 audit.tsv`), and name the first broken record.
//!
//! A chain starting at seq 1 must start from the genesis hash; one starting later (its older
//! files rotated away) is anchored at its first record's `prev`, which is reported.

use super::record::{self, hex, GENESIS};
use std::path::{Path, PathBuf};

/// A chain that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Records checked.
    pub records: u64,
    /// First and last sequence numbers.
    pub first_seq: u64,
    /// Last sequence number.
    pub last_seq: u64,
    /// `prev` of the first record (all zeros for a complete chain).
    pub anchor: [u8; 32],
    /// Hash of the last record (compare with a copy kept elsewhere to detect truncation).
    pub head: [u8; 32],
}

/// The first thing wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken {
    /// File.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// Sequence number on that line, if it could be read.
    pub seq: Option<u64>,
    /// What is wrong.
    pub why: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.line)?;
        if let Some(s) = self.seq {
            write!(f, "record seq {}: ", s)?;
        }
        f.write_str(&self.why)
    }
}

/// Verify `files` as one chain, oldest first.
pub fn verify_files(files: &[PathBuf]) -> Result<Verified, Broken> {
    let mut state: Option<(u64, [u8; 32])> = None;
    let mut out = Verified {
        records: 0,
        first_seq: 0,
        last_seq: 0,
        anchor: GENESIS,
        head: GENESIS,
    };
    for file in files {
        let broken = |line: usize, seq: Option<u64>, why: String| Broken {
            file: file.clone(),
            line,
            seq,
            why,
        };
        let bytes = std::fs::read(file).map_err(|e| broken(0, None, e.to_string()))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            broken(line, None, "not UTF-8 text".into())
        })?;
        if !text.is_empty() && !text.ends_with('\n') {
            let line = text.lines().count();
            return Err(broken(line, None, "torn last line (no newline)".into()));
        }
        let mut saw_header = false;
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            if line.starts_with('#') {
                if line != record::header().trim_end() {
                    return Err(broken(n, None, "unknown header or schema version".into()));
                }
                if n != 1 {
                    return Err(broken(n, None, "header in the middle of the file".into()));
                }
                saw_header = true;
                continue;
            }
            if !saw_header {
                return Err(broken(n, None, "missing header line".into()));
            }
            let r = record::parse(line).map_err(|e| broken(n, None, e.0))?;
            let seq = Some(r.seq);
            if r.computed != r.hash {
                return Err(broken(
                    n,
                    seq,
                    "hash does not match the record (edited)".into(),
                ));
            }
            match state {
                None => {
                    if r.seq == 1 && r.prev != GENESIS {
                        return Err(broken(
                            n,
                            seq,
                            "first record does not start the chain".into(),
                        ));
                    }
                    if r.seq == 0 {
                        return Err(broken(n, seq, "sequence numbers start at 1".into()));
                    }
                    out.first_seq = r.seq;
                    out.anchor = r.prev;
                }
                Some((last_seq, last_hash)) => {
                    if r.seq != last_seq + 1 {
                        return Err(broken(
                            n,
                            seq,
                            format!(
                                "expected seq {} (records deleted or reordered)",
                                last_seq + 1
                            ),
                        ));
                    }
                    if r.prev != last_hash {
                        return Err(broken(
                            n,
                            seq,
                            "does not link to the previous record (deleted, reordered or replaced)"
                                .into(),
                        ));
                    }
                }
            }
            state = Some((r.seq, r.hash));
            out.records += 1;
            out.last_seq = r.seq;
            out.head = r.hash;
        }
    }
    if state.is_none() {
        let file = files.last().cloned().unwrap_or_default();
        return Err(Broken {
            file,
            line: 0,
            seq: None,
            why: "no records".into(),
        });
    }
    Ok(out)
}

/// Run `audit verify`: print the result, return the exit code (0 ok, 1 broken).
pub fn run(files: &[PathBuf]) -> i32 {
    match verify_files(files) {
        Ok(v) => {
            let anchor = if v.anchor == GENESIS {
                "from the start of the chain".to_string()
            } else {
                format!(
                    "anchored at prev {} (older files rotated away)",
                    hex(&v.anchor)
                )
            };
            println!(
                "OK: {} records, seq {}..{}, {}; head {}",
                v.records,
                v.first_seq,
                v.last_seq,
                anchor,
                hex(&v.head)
            );
            0
        }
        Err(b) => {
            println!("BROKEN: {}", b);
            1
        }
    }
}

/// Whether `p` looks like an audit file (its first line is our header).
pub fn is_audit_file(p: &Path) -> bool {
    std::fs::read_to_string(p)
        .map(|t| t.starts_with("#varta-audit\t"))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::super::{AuditLog, AuditSettings, Entry, Kind, SyncPolicy};
    use super::*;
    use varta_core::time::Instant;

    fn make(dir: &Path, n: u32) -> PathBuf {
        let path = dir.join("a.tsv");
        let mut log = AuditLog::open(
            AuditSettings {
                path: path.clone(),
                max_bytes: 0,
                sync: SyncPolicy::default(),
            },
            Instant::from_nanos(1),
        )
        .unwrap();
        for i in 0..n {
            let mut e = Entry::note(Kind::Spawn, format!("run {i}"));
            e.pid = Some(i);
            log.append(&e, Instant::from_nanos(2 + i as u64));
        }
        log.close(Instant::from_nanos(1000));
        path
    }

    fn tamper(path: &Path, f: impl FnOnce(&mut Vec<String>)) -> Broken {
        let mut lines: Vec<String> = std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        f(&mut lines);
        let t = path.with_extension("t");
        std::fs::write(&t, lines.join("\n") + "\n").unwrap();
        verify_files(&[t]).unwrap_err()
    }

    #[test]
    fn every_kind_of_tampering_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let p = make(dir.path(), 20);
        let ok = verify_files(std::slice::from_ref(&p)).unwrap();
        assert_eq!(ok.records, 22);
        // Edited field.
        let b = tamper(&p, |l| l[5] = l[5].replacen("run 3", "run 9", 1));
        assert_eq!((b.line, b.seq), (6, Some(5)));
        assert!(b.why.contains("edited"), "{b}");
        // Deleted line.
        let b = tamper(&p, |l| {
            l.remove(7);
        });
        assert_eq!(b.line, 8);
        assert!(b.why.contains("expected seq 7"), "{b}");
        // Reordered lines.
        let b = tamper(&p, |l| l.swap(3, 4));
        assert_eq!(b.line, 4);
        // A deleted line whose successor was renumbered (seq fixed up): the link breaks.
        let b = tamper(&p, |l| {
            let next = l.remove(8);
            let fixed = next.replacen(&format!("{}\t", 8), &format!("{}\t", 7), 1);
            l[7] = fixed;
        });
        assert_eq!(b.line, 8);
        // A record rewritten wholesale with a recomputed hash still fails to link.
        let b = tamper(&p, |l| {
            let r = record::parse(&l[9]).unwrap();
            let e = Entry::note(Kind::Refused, "forged");
            let (line, _) = record::format(r.seq, r.wall_ms, r.mono_ns, &e, &[7u8; 32]);
            l[9] = line.trim_end().to_string();
        });
        assert_eq!(b.line, 10);
        assert!(b.why.contains("link"), "{b}");
        // Torn last line.
        let b = tamper(&p, |l| {
            let last = l.len() - 1;
            l[last].truncate(10);
        });
        assert!(b.why.contains("columns") || b.why.contains("tab"), "{b}");
        // Header removed.
        let b = tamper(&p, |l| {
            l.remove(0);
        });
        assert!(b.why.contains("header"), "{b}");
    }
}
