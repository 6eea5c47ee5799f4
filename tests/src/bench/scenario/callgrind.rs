//! 1. User-space instructions per beat under callgrind, at 1 … 65 536 tracked agents.
//!
//! The observer runs under `valgrind --tool=callgrind`. All agents register first (one beat
//! each, from the identity pool); then the counters are zeroed (`callgrind_control -z`), a
//! fixed number of beats is sent round-robin over the agents, one at a time (the next only
//! after the observer has read the previous one, so every beat is one wake-up in both
//! observers), and the counters are dumped (`callgrind_control -d`). Instructions ÷ beats.
//! Registration runs with instrumentation off (`--instr-atstart=no`, switched on with
//! `callgrind_control --instr=on` before the measured beats).
//! The count repeats exactly for the same binaries and load, so one run per point suffices.
//!
//! Ours is measured from a build with rustix's libc backend (`--cfg=rustix_use_libc`, made
//! here in `<target>/bench/callgrind-build`): rustix's own vDSO lookup reads memory that
//! valgrind does not map, and the observer would crash under callgrind otherwise. The
//! libc backend goes through glibc, as the published observer does.

use super::{clamps, Ctx};
use crate::bench::load::{frame, Sender};
use crate::bench::report::Better;
use crate::bench::subject::{Kind, RunOpts, Subject};
use std::io;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use varta_core::wire::Status;

const SECTION: &str = "1. User-space instructions per beat (callgrind)";

/// Build ours with rustix's libc backend (a no-op when current).
fn callgrind_build(workspace: &Path) -> io::Result<std::path::PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("bench/callgrind-build");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let st = Command::new(cargo)
        .current_dir(workspace)
        .env("RUSTFLAGS", "--cfg=rustix_use_libc")
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "host",
            "--bin",
            "varta-watch",
            "--target-dir",
        ])
        .arg(&target)
        .status()?;
    if !st.success() {
        return Err(io::Error::other(format!(
            "building the callgrind build of varta-watch: {st}"
        )));
    }
    Ok(target.join("release/varta-watch"))
}

/// Run the measurement for each agent count.
pub fn run(ctx: &mut Ctx, workspace: &Path) {
    let ours = match callgrind_build(workspace) {
        Ok(b) => b,
        Err(e) => return eprintln!("  callgrind: skipped: {e}"),
    };
    let counts: &[usize] = if ctx.quick {
        &[1, 100]
    } else {
        &[1, 100, 1000, 4096, 65536]
    };
    let beats = if ctx.quick { 300 } else { 2000 };
    for &n in counts {
        if ctx.ids(n).is_none() {
            eprintln!("  callgrind @{n}: skipped (needs root and {n} identity threads)");
            continue;
        }
        let s = ctx.interleaved(1, "callgrind", |s| {
            if clamps(s, n) {
                return Ok(None);
            }
            let ids = ctx.ids(n).expect("checked");
            let s = match s.kind {
                Kind::Ours => Subject {
                    bin: ours.clone(),
                    ..s.clone()
                },
                Kind::Published => s.clone(),
            };
            per_beat(&s, ids, beats).map(|x| Some([x]))
        });
        let note = if n > 4096 {
            "published clamps its tracker at 4 096"
        } else {
            ""
        };
        ctx.row(
            SECTION,
            format!("@{n} agents"),
            "instr/beat",
            Better::Lower,
            &s[0],
            note,
        );
    }
}

fn callgrind_control(arg: &str, pid: u32) -> io::Result<()> {
    let out = Command::new("callgrind_control")
        .arg(arg)
        .arg(pid.to_string())
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "callgrind_control {arg}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Total instructions in the newest dump in `dir`.
fn dumped_total(dir: &Path) -> io::Result<u64> {
    let mut newest: Option<(std::time::SystemTime, std::path::PathBuf)> = None;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("cg.") {
            continue;
        }
        let t = e.metadata()?.modified()?;
        if newest.as_ref().is_none_or(|(nt, _)| t > *nt) {
            newest = Some((t, e.path()));
        }
    }
    let (_, p) = newest.ok_or_else(|| io::Error::other("no callgrind dump"))?;
    let text = std::fs::read_to_string(&p)?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no totals in {}", p.display())))
}

fn per_beat(s: &Subject, ids: &[u32], beats: usize) -> io::Result<f64> {
    let cg = tempfile::Builder::new().prefix("varta-cg").tempdir()?;
    let wrapper = vec![
        "valgrind".into(),
        "--tool=callgrind".into(),
        "--quiet".into(),
        format!("--callgrind-out-file={}/cg.%p", cg.path().display()),
        "--dump-instr=no".into(),
        "--dump-line=no".into(),
        // Registration runs uninstrumented (65 536 registrations would take most of an
        // hour counted); counting starts just before the measured beats.
        "--instr-atstart=no".into(),
    ];
    let mut obs = s.start(&RunOpts {
        threshold_ms: 3_600_000,
        capacity: ids.len() as u32,
        wrapper,
        ..RunOpts::default()
    })?;
    let tx = Sender::connect(&obs.socket)?;
    let patience = Duration::from_secs(120);
    for (i, &tid) in ids.iter().enumerate() {
        tx.send_as(tid, &frame(tid, 1, Status::Ok))?;
        if i % 8 == 7 && !tx.wait_read(patience) {
            return Err(io::Error::other(
                "observer stopped reading during registration",
            ));
        }
    }
    if !tx.wait_read(patience) {
        return Err(io::Error::other("observer stopped reading"));
    }
    // Let the loop settle after the last registration before counting.
    std::thread::sleep(Duration::from_millis(300));
    callgrind_control("--instr=on", obs.pid())?;
    callgrind_control("-z", obs.pid())?;
    for b in 0..beats {
        let tid = ids[b % ids.len()];
        let nonce = 2 + (b / ids.len()) as u64;
        tx.send_as(tid, &frame(tid, nonce, Status::Ok))?;
        if !tx.wait_read(patience) {
            return Err(io::Error::other("observer stopped reading"));
        }
    }
    callgrind_control("-d", obs.pid())?;
    let total = dumped_total(cg.path())?;
    obs.stop();
    Ok(total as f64 / beats as f64)
}
