//! `varta-bench`: this project's observer against the published `varta-watch` 0.2.0, in the
//! same run, with the same load, repetitions interleaved. See `ci/bench.sh` and BENCHMARKS.md.
//!
//! Subcommands used by the harness itself: `agent` (one real agent process of a fleet) and
//! `probe` (the recovery command whose start time is measured).

pub mod load;
pub mod procfs;
pub mod report;
pub mod scenario;
pub mod stats;
pub mod subject;

use scenario::Ctx;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;
use subject::{Kind, Subject};

const HELP: &str = "\
varta-bench: measure varta-watch against the published varta-watch 0.2.0

USAGE:
    varta-bench [--quick] [--reps N] [--only LIST] [--write FILE.md] [--build-time]
                [--ours BIN] [--published-root DIR]

    --quick              small counts and short windows (CI smoke, ~3 minutes)
    --reps N             repetitions of each timed measurement [default: 5, quick: 2]
    --only LIST          comma-separated: callgrind,cpu,idle,lateness,fleet,memory
    --write FILE.md      also write the table there, with the plot as FILE.svg beside it
    --build-time         also time a clean release build of each (slow; cargo may reuse
                         cached artifacts for the published crate, read with care)
    --gate               exit 1 unless, under callgrind, ours costs fewer instructions per
                         beat than the published observer at every agent count measured,
                         and its cost at every count is within 1.2x of its cost at the
                         smallest (a beat must stay O(1) in the number of agents)
    --ours BIN           our observer [default: varta-watch next to this binary]
    --published-root DIR where `cargo install` puts the published observer
                         [default: <target>/bench/published-0.2.0]

Run as root: most scenarios speak for thousands of agents through SCM_CREDENTIALS, which
needs CAP_SYS_ADMIN; without it they are skipped. Needs valgrind (callgrind) and strace.
";

struct Opts {
    quick: bool,
    reps: Option<usize>,
    only: Option<Vec<String>>,
    write: Option<PathBuf>,
    build_time: bool,
    gate: bool,
    ours: Option<PathBuf>,
    published_root: Option<PathBuf>,
}

fn parse(args: Vec<String>) -> Result<Opts, String> {
    let mut o = Opts {
        quick: false,
        reps: None,
        only: None,
        write: None,
        build_time: false,
        gate: false,
        ours: None,
        published_root: None,
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--quick" => o.quick = true,
            "--reps" => o.reps = Some(val("--reps")?.parse().map_err(|e| format!("--reps: {e}"))?),
            "--only" => o.only = Some(val("--only")?.split(',').map(str::to_owned).collect()),
            "--write" => o.write = Some(val("--write")?.into()),
            "--build-time" => o.build_time = true,
            "--gate" => o.gate = true,
            "--ours" => o.ours = Some(val("--ours")?.into()),
            "--published-root" => o.published_root = Some(val("--published-root")?.into()),
            "-h" | "--help" => {
                print!("{HELP}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    if let Some(only) = &o.only {
        for w in only {
            if !["callgrind", "cpu", "idle", "lateness", "fleet", "memory"].contains(&w.as_str()) {
                return Err(format!("--only: unknown measurement {w:?}"));
            }
        }
    }
    Ok(o)
}

fn context(ctx: &Ctx) -> Vec<String> {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "?".into())
    };
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    vec![
        format!(
            "machine: {cores} cores ({cpu}), Linux {}",
            read("/proc/sys/kernel/osrelease")
        ),
        format!(
            "net.unix.max_dgram_qlen = {} (the kernel queue every Unix datagram socket gets){}",
            read("/proc/sys/net/unix/max_dgram_qlen"),
            if ctx.quick {
                ""
            } else {
                "; the fleet case marked \"qlen 512\" raises it to 512 for its own observers"
            }
        ),
        format!(
            "ours: {}; published: {} and {} (cargo install varta-watch {})",
            ctx.subjects[0].bin.display(),
            ctx.subjects[1].bin.display(),
            ctx.subjects[1].prom_bin.display(),
            subject::PUBLISHED
        ),
        format!(
            "published run with --max-beat-rate 0 --global-beat-rate 0 --tracker-capacity ≤ 4096; \
             ours with --flood-limit 0 (kernel flood filter off) and the same capacity; \
             repetitions: {}{}",
            ctx.reps,
            if ctx.quick {
                " (quick mode: small counts, short windows)"
            } else {
                ""
            }
        ),
    ]
}

/// Entry point of `varta-bench`.
pub fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("agent") => std::process::exit(agent(args.split_off(1))),
        Some("probe") => std::process::exit(probe(&args[1..])),
        Some("hold") => std::process::exit(load::hold(&args[1..])),
        _ => {}
    }
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("varta-bench: {e}");
            std::process::exit(2);
        }
    };
    let exe = std::env::current_exe().expect("own path");
    let bin_dir = exe.parent().expect("bin dir").to_path_buf();
    let ours = o
        .ours
        .clone()
        .unwrap_or_else(|| bin_dir.join("varta-watch"));
    if !ours.exists() {
        eprintln!(
            "varta-bench: {} not found: build it first (cargo build --release -p host --bin varta-watch) or pass --ours",
            ours.display()
        );
        std::process::exit(2);
    }
    let root = o.published_root.clone().unwrap_or_else(|| {
        bin_dir
            .parent()
            .unwrap_or(&bin_dir)
            .join("bench")
            .join(format!("published-{}", subject::PUBLISHED))
    });
    let (pub_bin, pub_prom) = match subject::install_published(&root) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("varta-bench: {e}");
            std::process::exit(1);
        }
    };
    let root_user = rustix::process::geteuid().is_root();
    let max_ids = if o.quick { 1000 } else { 65536 };
    let ids = if root_user {
        let room = load::ensure_sysctl("/proc/sys/kernel/pid_max", (2 * max_ids as u64).max(32768))
            .and_then(|_| {
                load::ensure_sysctl(
                    "/proc/sys/kernel/threads-max",
                    (2 * max_ids as u64).max(32768),
                )
            });
        match room.and_then(|_| load::Identities::spawn(&exe, max_ids)) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("varta-bench: identity pool: {e}");
                None
            }
        }
    } else {
        eprintln!("varta-bench: not root: scenarios that speak for many agents are skipped");
        None
    };
    let mut ctx = Ctx {
        subjects: [
            Subject {
                kind: Kind::Ours,
                bin: ours.clone(),
                prom_bin: ours,
            },
            Subject {
                kind: Kind::Published,
                bin: pub_bin,
                prom_bin: pub_prom,
            },
        ],
        reps: o.reps.unwrap_or(if o.quick { 2 } else { 5 }).max(1),
        quick: o.quick,
        exe,
        ids,
        report: report::Report::default(),
    };
    ctx.report.context = context(&ctx);
    for c in &ctx.report.context {
        println!("# {c}");
    }
    let want = |w: &str| o.only.as_ref().is_none_or(|l| l.iter().any(|x| x == w));
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf();
    type Step<'a> = (&'a str, &'a dyn Fn(&mut Ctx));
    let steps: [Step; 6] = [
        ("callgrind", &|c: &mut Ctx| {
            scenario::callgrind::run(c, &workspace)
        }),
        ("cpu", &scenario::throughput::run),
        ("idle", &scenario::idle::run),
        ("lateness", &scenario::lateness::run),
        ("fleet", &scenario::fleet::run),
        ("memory", &|c: &mut Ctx| {
            scenario::footprint::run(c, &workspace, o.build_time)
        }),
    ];
    for (name, f) in steps {
        if want(name) {
            println!("== {name}");
            let t = std::time::Instant::now();
            f(&mut ctx);
            println!("   ({name}: {:.0} s)", t.elapsed().as_secs_f64());
        }
    }
    println!("{}", ctx.report.text());
    if let Some(md) = &o.write {
        let svg_path = md.with_extension("svg");
        let svg = ctx.report.svg();
        if let Some(svg) = &svg {
            std::fs::write(&svg_path, svg).expect("write plot");
        }
        let name = svg
            .as_ref()
            .and_then(|_| svg_path.file_name())
            .map(|n| n.to_string_lossy().into_owned());
        // Hand-written analysis below the marker in an existing file is kept.
        let kept = std::fs::read_to_string(md)
            .ok()
            .and_then(|old| report::kept_notes(&old).map(str::to_owned));
        let mut text = ctx.report.markdown(name.as_deref());
        if let Some(k) = kept {
            text.push('\n');
            text.push_str(&k);
        }
        std::fs::write(md, text).expect("write report");
        println!(
            "wrote {}{}",
            md.display(),
            if name.is_some() {
                format!(" and {}", svg_path.display())
            } else {
                String::new()
            }
        );
    }
    let measured = ctx.report.rows.iter().filter(|r| r.ours.is_some()).count();
    let compared = ctx
        .report
        .rows
        .iter()
        .filter(|r| r.ours.is_some() && r.theirs.is_some())
        .count();
    let missing = ctx.report.rows.len() - measured;
    println!("{measured} figures measured, {compared} compared with the published observer, {missing} missing");
    if measured == 0 || missing > 0 {
        std::process::exit(1);
    }
    if o.gate {
        match gate(&ctx.report) {
            Ok(msg) => println!("gate passed: {msg}"),
            Err(msg) => {
                println!("gate FAILED: {msg}");
                std::process::exit(1);
            }
        }
    }
}

/// The regression gate on callgrind's deterministic counts (see `--gate`).
pub fn gate(r: &report::Report) -> Result<String, String> {
    let points: Vec<(u64, f64, Option<f64>)> = r
        .rows
        .iter()
        .filter(|row| row.unit == "instr/beat")
        .filter_map(|row| {
            let n: u64 = row
                .metric
                .trim_start_matches('@')
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some((n, row.ours?.median, row.theirs.map(|t| t.median)))
        })
        .collect();
    let Some(base) = points.iter().min_by_key(|p| p.0) else {
        return Err("no callgrind figure".into());
    };
    for &(n, ours, theirs) in &points {
        if let Some(t) = theirs {
            if ours >= t {
                return Err(format!("@{n} agents ours costs {ours:.0} instructions per beat, the published observer {t:.0}"));
            }
        }
        if ours > FLAT * base.1 {
            return Err(format!("@{n} agents ours costs {ours:.0} instructions per beat, more than {FLAT}x its {:.0} @{}", base.1, base.0));
        }
    }
    Ok(format!(
        "{} agent counts, ours below the published observer at each and flat (within {FLAT}x)",
        points.len()
    ))
}

/// How much a beat may cost at the largest agent count relative to the smallest (the
/// instruction count is deterministic; 20 % leaves room for code changes, not for O(N)).
const FLAT: f64 = 1.2;

/// `varta-bench probe FILE PID`: append `PID CLOCK_MONOTONIC_NS` to FILE.
fn probe(args: &[String]) -> i32 {
    let now = load::mono_ns();
    let (Some(file), Some(pid)) = (args.first(), args.get(1)) else {
        eprintln!("usage: varta-bench probe FILE PID");
        return 2;
    };
    append_line(Path::new(file), &format!("{pid} {now}\n"))
}

/// Append `line` to `path` (created if missing) in one write; exit status 0, else 1.
fn append_line(path: &Path, line: &str) -> i32 {
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        Ok(mut f) => f.write_all(line.as_bytes()).map(|_| 0).unwrap_or(1),
        Err(_) => 1,
    }
}

/// `varta-bench agent --socket S --interval-ms MS --until-ns T [--silent-at-ns T]
/// [--window-from-ns T] --report FILE`: beat non-blocking at a random phase until T
/// (CLOCK_MONOTONIC), stop beating at the silent time, then append `pid sent refused
/// window_sent window_refused` to FILE (the last two count only sends from the window
/// start on: the steady state, without the fleet's spawn storm).
fn agent(args: Vec<String>) -> i32 {
    let mut socket = None;
    let mut interval = Duration::from_millis(500);
    let mut until = 0u64;
    let mut silent = u64::MAX;
    let mut window_from = 0u64;
    let mut report = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let v = it.next().unwrap_or_default();
        match a.as_str() {
            "--socket" => socket = Some(PathBuf::from(v)),
            "--interval-ms" => interval = Duration::from_millis(v.parse().unwrap_or(500)),
            "--until-ns" => until = v.parse().unwrap_or(0),
            "--silent-at-ns" => silent = v.parse().unwrap_or(u64::MAX),
            "--window-from-ns" => window_from = v.parse().unwrap_or(0),
            "--report" => report = Some(PathBuf::from(v)),
            _ => return 2,
        }
    }
    let (Some(socket), Some(report)) = (socket, report) else {
        return 2;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return 1;
    };
    if sock.connect(&socket).is_err() || sock.set_nonblocking(true).is_err() {
        return 1;
    }
    let pid = std::process::id();
    // A phase from the pid, so a fleet's beats spread over the interval.
    let phase = Duration::from_nanos(
        (pid as u64).wrapping_mul(2_654_435_761) % interval.as_nanos().max(1) as u64,
    );
    std::thread::sleep(phase);
    let (mut sent, mut refused, mut nonce) = (0u64, 0u64, 1u64);
    let (mut w_sent, mut w_refused) = (0u64, 0u64);
    let mut next = load::mono_ns();
    loop {
        let now = load::mono_ns();
        if now >= until {
            break;
        }
        if now < silent {
            let ok = sock
                .send(&load::frame(pid, nonce, varta_core::wire::Status::Ok))
                .is_ok();
            sent += u64::from(ok);
            refused += u64::from(!ok);
            if now >= window_from {
                w_sent += u64::from(ok);
                w_refused += u64::from(!ok);
            }
            nonce += 1;
        }
        next += interval.as_nanos() as u64;
        let wake = next.min(until);
        std::thread::sleep(Duration::from_nanos(wake.saturating_sub(load::mono_ns())));
    }
    append_line(
        &report,
        &format!("{pid} {sent} {refused} {w_sent} {w_refused}\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::report::{Better, Report, Row};
    use super::stats::Stat;

    fn report(points: &[(u32, f64, Option<f64>)]) -> Report {
        let mut r = Report::default();
        for &(n, o, t) in points {
            r.rows.push(Row {
                section: "1",
                metric: format!("@{n} agents"),
                unit: "instr/beat",
                better: Better::Lower,
                ours: Stat::of(&[o]),
                theirs: t.and_then(|t| Stat::of(&[t])),
                note: String::new(),
            });
        }
        r
    }

    #[test]
    fn gate_passes_flat_and_cheaper() {
        let r = report(&[
            (1, 780.0, Some(1400.0)),
            (100, 790.0, Some(2800.0)),
            (65536, 800.0, None),
        ]);
        assert!(super::gate(&r).is_ok(), "{:?}", super::gate(&r));
    }

    #[test]
    fn gate_fails_when_dearer_or_growing() {
        let dearer = report(&[(1, 1500.0, Some(1400.0)), (100, 1500.0, Some(2800.0))]);
        assert!(super::gate(&dearer).is_err());
        let growing = report(&[(1, 800.0, Some(1400.0)), (65536, 1000.0, None)]);
        assert!(super::gate(&growing).is_err());
        assert!(super::gate(&report(&[])).is_err(), "no figure at all");
    }
}
