//! 4a. Idle: wake-ups per second and CPU with no agents at all. (4b, 1 000 real agents
//! beating every 500 ms, is measured by the fleet scenario.)

use super::Ctx;
use crate::bench::procfs;
use crate::bench::report::Better;
use crate::bench::subject::RunOpts;
use std::time::Duration;

const SECTION: &str = "4. Idle and steady load";

/// Measure.
pub fn run(ctx: &mut Ctx) {
    let window = Duration::from_secs(if ctx.quick { 3 } else { 10 });
    let s = ctx.interleaved(ctx.reps, "idle", |s| {
        let obs = s.start(&RunOpts {
            threshold_ms: 2000,
            capacity: 1024,
            ..RunOpts::default()
        })?;
        std::thread::sleep(Duration::from_secs(1));
        let u0 = procfs::usage(obs.pid())?;
        std::thread::sleep(window);
        let u = procfs::usage(obs.pid())?.since(u0);
        let secs = window.as_secs_f64();
        Ok(Some([
            u.wakeups as f64 / secs,
            u.cpu_ns as f64 / (secs * 1e7),
        ]))
    });
    let note = format!("{} s window", window.as_secs());
    ctx.row(
        SECTION,
        "wake-ups per second, 0 agents",
        "1/s",
        Better::Lower,
        &s[0],
        note.clone(),
    );
    ctx.row(
        SECTION,
        "CPU, 0 agents",
        "% core",
        Better::Lower,
        &s[1],
        note,
    );
}
