//! 7. Memory at 0 … 65 536 tracked agents, stripped binary sizes, clean build time.
//!
//! Memory four ways: RSS and its peak (`/proc/<pid>/status`), which count the shared C
//! library's pages in full, and PSS and private memory (USS) from `smaps_rollup`, which
//! share them out or leave them out.

use super::{clamps, Ctx};
use crate::bench::load::{frame, Sender};
use crate::bench::procfs;
use crate::bench::report::Better;
use crate::bench::subject::{RunOpts, Subject};
use std::io;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use varta_core::wire::Status;

const SECTION: &str = "7. Memory, size and build";

/// KiB → MiB.
fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// RSS, RSS peak, PSS, USS (MiB) of `s` tracking `n` agents; PSS and USS left out (with a
/// message) where `smaps_rollup` cannot be read.
fn memory(ctx: &Ctx, s: &Subject, n: usize) -> io::Result<Option<[Vec<f64>; 4]>> {
    if clamps(s, n) {
        return Ok(None);
    }
    let ids = ctx
        .ids(n)
        .ok_or_else(|| io::Error::other("needs root (identity pool)"))?;
    let mut obs = s.start(&RunOpts {
        threshold_ms: 3_600_000,
        capacity: n.max(1) as u32,
        ..RunOpts::default()
    })?;
    let tx = Sender::connect(&obs.socket)?;
    for nonce in 1..=2u64 {
        for &tid in ids {
            tx.send_as(tid, &frame(tid, nonce, Status::Ok))?;
        }
    }
    if !tx.wait_read(Duration::from_secs(60)) {
        return Err(io::Error::other("observer stopped reading"));
    }
    std::thread::sleep(Duration::from_millis(500));
    let (rss, hwm) = procfs::memory(obs.pid())?;
    let (pss, uss) = match procfs::rollup(obs.pid()) {
        Ok(r) => (vec![mib(r.pss)], vec![mib(r.private)]),
        Err(e) => {
            eprintln!("  memory: {} smaps_rollup: {e}", s.name());
            (Vec::new(), Vec::new())
        }
    };
    obs.stop();
    Ok(Some([vec![mib(rss)], vec![mib(hwm)], pss, uss]))
}

/// Size of a stripped copy of `bin`, bytes.
pub fn stripped_size(bin: &Path) -> io::Result<u64> {
    let dir = tempfile::tempdir()?;
    let copy = dir.path().join("bin");
    std::fs::copy(bin, &copy)?;
    let st = Command::new("strip").arg(&copy).status()?;
    if !st.success() {
        return Err(io::Error::other("strip failed"));
    }
    Ok(std::fs::metadata(&copy)?.len())
}

fn timed(mut c: Command) -> io::Result<f64> {
    let t = Instant::now();
    let st = c.status()?;
    if !st.success() {
        return Err(io::Error::other(format!("{c:?}: {st}")));
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Measure.
pub fn run(ctx: &mut Ctx, workspace: &Path, build_time: bool) {
    let counts: &[usize] = if ctx.quick {
        &[0, 1000]
    } else {
        &[0, 1000, 4096, 65536]
    };
    for &n in counts {
        let s = ctx.pooled(1, "memory", |s| memory(ctx, s, n));
        let note = if n > 4096 {
            "published clamps its tracker at 4 096"
        } else {
            ""
        };
        ctx.row(
            SECTION,
            format!("RSS steady, {n} agents"),
            "MiB",
            Better::Lower,
            &s[0],
            note,
        );
        ctx.row(
            SECTION,
            format!("RSS peak, {n} agents"),
            "MiB",
            Better::Lower,
            &s[1],
            note,
        );
        let with = |what: &str| {
            if note.is_empty() {
                what.to_owned()
            } else {
                format!("{what}; {note}")
            }
        };
        ctx.row(
            SECTION,
            format!("PSS steady, {n} agents"),
            "MiB",
            Better::Lower,
            &s[2],
            with("smaps_rollup Pss: shared pages divided among the processes mapping them"),
        );
        ctx.row(
            SECTION,
            format!("private memory (USS), {n} agents"),
            "MiB",
            Better::Lower,
            &s[3],
            with("smaps_rollup Private_Clean + Private_Dirty: freed when the observer stops"),
        );
    }
    let mut sizes: [[Vec<f64>; 2]; 2] = Default::default();
    for (i, s) in ctx.subjects.iter().enumerate() {
        for (k, bin) in [&s.bin, &s.prom_bin].into_iter().enumerate() {
            match stripped_size(bin) {
                Ok(b) => sizes[k][i].push(b as f64 / 1024.0),
                Err(e) => eprintln!("  size of {}: {e}", bin.display()),
            }
        }
    }
    ctx.row(
        SECTION,
        "stripped binary, default build",
        "KiB",
        Better::Lower,
        &sizes[0],
        "release profile; ours serves /metrics in the same binary",
    );
    ctx.row(
        SECTION,
        "stripped binary, with /metrics",
        "KiB",
        Better::Lower,
        &sizes[1],
        "published: --features prometheus-exporter",
    );
    if !build_time {
        return;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut t = [Vec::new(), Vec::new()];
    let scratch = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return eprintln!("  build time: {e}"),
    };
    let mut ours = Command::new(&cargo);
    ours.current_dir(workspace)
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "host",
            "--bin",
            "varta-watch",
            "--target-dir",
        ])
        .arg(scratch.path().join("ours"));
    match timed(ours) {
        Ok(s) => t[0].push(s),
        Err(e) => eprintln!("  build time (ours): {e}"),
    }
    let mut theirs =
        crate::bench::subject::cargo_install(&scratch.path().join("published-root"), None);
    theirs
        .arg("--target-dir")
        .arg(scratch.path().join("published"));
    match timed(theirs) {
        Ok(s) => t[1].push(s),
        Err(e) => eprintln!("  build time (published): {e}"),
    }
    ctx.row(
        SECTION,
        "clean release build",
        "s",
        Better::Lower,
        &t,
        "one build each, crates already downloaded",
    );
}
