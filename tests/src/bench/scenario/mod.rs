//! The measurements, one file each, sharing a context: both observers, the repetition count,
//! the identity pool and the report being built.

pub mod callgrind;
pub mod fleet;
pub mod footprint;
pub mod idle;
pub mod lateness;
pub mod throughput;

use super::load::Identities;
use super::report::{Better, Report, Row};
use super::stats::Stat;
use super::subject::{Kind, Subject};
use std::io;
use std::path::PathBuf;

/// Shared state of a benchmark run.
pub struct Ctx {
    /// Ours first, then the published observer.
    pub subjects: [Subject; 2],
    /// Repetitions of each timed measurement.
    pub reps: usize,
    /// Small counts and short windows (CI smoke).
    pub quick: bool,
    /// This executable (agents and recovery probes re-run it).
    pub exe: PathBuf,
    /// Parked threads whose ids the sender may speak for (root only).
    pub ids: Option<Identities>,
    /// Results.
    pub report: Report,
}

impl Ctx {
    /// Task ids to beat for, at least `n` (None: not root, or threads could not be made).
    pub fn ids(&self, n: usize) -> Option<&[u32]> {
        self.ids
            .as_ref()
            .filter(|p| p.tids.len() >= n)
            .map(|p| &p.tids[..n])
    }

    /// Run `f` for both observers, `reps` times, alternating which goes first. `f` returns
    /// K figures per run, or None where a figure does not apply to that observer; failures
    /// are reported and leave the sample out.
    pub fn interleaved<const K: usize>(
        &self,
        reps: usize,
        what: &str,
        mut f: impl FnMut(&Subject) -> io::Result<Option<[f64; K]>>,
    ) -> [[Vec<f64>; 2]; K] {
        self.pooled(reps, what, |s| Ok(f(s)?.map(|v| v.map(|x| vec![x]))))
    }

    /// [`Ctx::interleaved`] where each run gives K sets of samples, pooled over the runs.
    pub fn pooled<const K: usize>(
        &self,
        reps: usize,
        what: &str,
        mut f: impl FnMut(&Subject) -> io::Result<Option<[Vec<f64>; K]>>,
    ) -> [[Vec<f64>; 2]; K] {
        let mut out: [[Vec<f64>; 2]; K] = std::array::from_fn(|_| [Vec::new(), Vec::new()]);
        for rep in 0..reps {
            let order = if rep % 2 == 0 { [0, 1] } else { [1, 0] };
            for i in order {
                let s = &self.subjects[i];
                match f(s) {
                    Ok(Some(v)) => {
                        for (k, x) in v.into_iter().enumerate() {
                            out[k][i].extend(x);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => eprintln!("  {what}: {} run {rep} failed: {e}", s.name()),
                }
            }
        }
        out
    }

    /// Add a row from per-observer samples.
    pub fn row(
        &mut self,
        section: &'static str,
        metric: impl Into<String>,
        unit: &'static str,
        better: Better,
        samples: &[Vec<f64>; 2],
        note: impl Into<String>,
    ) {
        self.report.push(Row {
            section,
            metric: metric.into(),
            unit,
            better,
            ours: Stat::of(&samples[0]),
            theirs: Stat::of(&samples[1]),
            note: note.into(),
        });
    }
}

/// True for the published observer, whose tracker holds at most 4 096 agents.
pub fn clamps(s: &Subject, agents: usize) -> bool {
    s.kind == Kind::Published && agents > 4096
}

/// An agent's last beat and the stall that followed it (ns, from an observer's export). An
/// earlier stall, under load, was a false one the agent recovered from.
pub fn last_beat_and_stall(rows: &[crate::Row], pid: u32) -> Option<(u64, u64)> {
    let last = rows
        .iter()
        .filter(|r| r.pid == pid && r.kind == "beat")
        .map(|r| r.ns)
        .max()?;
    let stall = rows
        .iter()
        .filter(|r| r.pid == pid && r.kind == "stall" && r.ns > last)
        .map(|r| r.ns)
        .min()?;
    Some((last, stall))
}
