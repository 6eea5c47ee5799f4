//! `varta-watchd`: the embedded-Linux observer that owns the hardware watchdog and a status
//! LED. See `varta-watchd --help`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use varta_core::policy::gate::{BootLoopRecord, GateConfig};
use varta_core::time::{Clock, Duration};
use varta_core::tracker::{Tracker, TrackerConfig};
use varta_embedded::board::{Board, BUILT_IN};
use varta_embedded::led::{parse_spec, LedPin, LedSpec};
use varta_embedded::reset::StateDir;
use varta_embedded::supervisor::{Hardware, Settings as HwSettings};
use varta_embedded::watchdog::{flags, LinuxWatchdog};
use varta_host::config::cli::{self, Command};
use varta_host::config::{Env, Settings};
use varta_host::daemon::{Daemon, RunConfig};

const HELP: &str = "\
varta-watchd: the VLP observer for embedded Linux that owns the hardware watchdog

Usage: varta-watchd [--board NAME | --board-file PATH] [OPTIONS] [OBSERVER OPTIONS]

Board and hardware:
    --board NAME|PATH          built-in board profile (--list-boards), or a profile file
    --board-file PATH          board profile file (see boards/*.toml)
    --list-boards              print the built-in profiles and exit
    --watchdog DEVICE          watchdog device (over the profile's)
    --no-watchdog              do not open a watchdog (LED and observer only)
    --watchdog-timeout SECS    timeout to ask the driver for (checked against the profile)
    --pretimeout SECS          pretimeout to ask for, where the driver has one
    --pet-interval-ms MS       keepalive interval (clamped to half the achieved timeout)
    --magic-close              disarm with the magic close on an orderly stop
    --led SPEC                 gpio:CHIP:OFFSET, gpio-name:NAME or class:NAME
    --led-active-low           the LED lights when the line is low
    --no-led                   no status LED
    --state-dir DIR            persistent directory for the reset reason and boot-loop count
    --startup-grace-ms MS      pet unconditionally this long while agents register
    --recovery-window-ms MS    how long a critical agent may stay unhealthy before reset
    --boot-loop-limit N        consecutive resets blamed on one agent before the guard
                               keeps the board up, degraded (0: never)
    --user USER                drop to this user after opening the devices and socket
    -h, --help                 this text
    -V, --version              version

Observer options are varta-watch's (--config, --socket, --threshold-ms, --recovery-exec,
--export-file, --prom-addr, ... see varta-watch --help). Agents whose [[agent]] rule says
`critical = true` gate the watchdog; `required = true` ones must register within the grace.
";

static TRACKER: Mutex<Tracker<256>> = Mutex::new(Tracker::new(TrackerConfig::ZERO));

#[derive(Default)]
struct Opts {
    board: Option<Board>,
    watchdog: Option<PathBuf>,
    no_watchdog: bool,
    timeout_s: Option<u32>,
    pretimeout_s: Option<u32>,
    pet_interval_ms: Option<u64>,
    magic_close: bool,
    led: Option<LedSpec>,
    led_active_low: bool,
    no_led: bool,
    state_dir: Option<PathBuf>,
    grace_ms: Option<u64>,
    window_ms: Option<u64>,
    boot_loop_limit: Option<u16>,
    user: Option<(u32, u32)>,
}

enum Parsed {
    Run(Box<Opts>, Box<Settings>),
    Exit(ExitCode),
}

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{flag}: {v:?} is not a valid number"))
}

fn parse(args: Vec<OsString>, env: &Env) -> Result<Parsed, String> {
    use lexopt::prelude::*;
    let mut o = Opts::default();
    let mut rest: Vec<OsString> = vec!["run".into()];
    let mut p = lexopt::Parser::from_args(args);
    loop {
        let arg = match p.next().map_err(|e| e.to_string())? {
            None => break,
            Some(Short(c)) => format!("-{c}"),
            Some(Long(l)) => format!("--{l}"),
            Some(Value(v)) => {
                return Err(format!(
                    "{}: unexpected argument (see --help)",
                    v.to_string_lossy()
                ))
            }
        };
        let mut val = |flag: &str| -> Result<String, String> {
            p.value()
                .map_err(|_| format!("{flag}: missing value"))?
                .into_string()
                .map_err(|_| format!("{flag}: not valid UTF-8"))
        };
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(Parsed::Exit(ExitCode::SUCCESS));
            }
            "-V" | "--version" => {
                println!("varta-watchd {}", env!("CARGO_PKG_VERSION"));
                return Ok(Parsed::Exit(ExitCode::SUCCESS));
            }
            "--list-boards" => {
                for (n, _) in BUILT_IN {
                    let b = Board::built_in(n)?;
                    println!("{:<18} {}", n, b.description);
                }
                return Ok(Parsed::Exit(ExitCode::SUCCESS));
            }
            "--board" => {
                // A path names a profile file (handy in /etc/default/varta).
                let v = val("--board")?;
                o.board = Some(if v.contains('/') {
                    Board::from_file(std::path::Path::new(&v))?
                } else {
                    Board::built_in(&v)?
                })
            }
            "--board-file" => {
                o.board = Some(Board::from_file(
                    PathBuf::from(val("--board-file")?).as_path(),
                )?)
            }
            "--watchdog" => o.watchdog = Some(val("--watchdog")?.into()),
            "--no-watchdog" => o.no_watchdog = true,
            "--watchdog-timeout" => {
                o.timeout_s = Some(num("--watchdog-timeout", &val("--watchdog-timeout")?)?)
            }
            "--pretimeout" => o.pretimeout_s = Some(num("--pretimeout", &val("--pretimeout")?)?),
            "--pet-interval-ms" => {
                o.pet_interval_ms = Some(num("--pet-interval-ms", &val("--pet-interval-ms")?)?)
            }
            "--magic-close" => o.magic_close = true,
            "--led" => o.led = Some(parse_spec(&val("--led")?).map_err(|e| format!("--led: {e}"))?),
            "--led-active-low" => o.led_active_low = true,
            "--no-led" => o.no_led = true,
            "--state-dir" => o.state_dir = Some(val("--state-dir")?.into()),
            "--startup-grace-ms" => {
                o.grace_ms = Some(num("--startup-grace-ms", &val("--startup-grace-ms")?)?)
            }
            "--recovery-window-ms" => {
                o.window_ms = Some(num("--recovery-window-ms", &val("--recovery-window-ms")?)?)
            }
            "--boot-loop-limit" => {
                o.boot_loop_limit = Some(num("--boot-loop-limit", &val("--boot-loop-limit")?)?)
            }
            "--user" => {
                let u = val("--user")?;
                o.user =
                    Some(varta_host::config::parse_user(&u).map_err(|e| format!("--user: {e}"))?)
            }
            flag if flag.starts_with("--") => {
                rest.push(flag.into());
                if flag != "--recovery-allow-udp" {
                    rest.push(p.value().map_err(|_| format!("{flag}: missing value"))?);
                }
            }
            other => return Err(format!("{other}: unknown flag (see --help)")),
        }
    }
    let mut s = match cli::parse(rest, env).map_err(|e| e.0)? {
        Command::Run(s) => s,
        _ => return Err("unexpected subcommand".into()),
    };
    if let Some(b) = &o.board {
        // The profile's observer defaults apply where neither a flag nor --config set one.
        let defaults = Settings::defaults(env);
        if let Some(sock) = &b.socket {
            if s.socket == defaults.socket {
                s.socket = sock.clone();
                s.control_socket = Some(varta_host::config::control_path_for(sock));
            }
        }
        if let Some(t) = b.threshold_ms {
            if s.threshold == defaults.threshold {
                s.threshold = Duration::from_millis(t);
            }
        }
        if let Some(t) = o.timeout_s {
            b.check_timeout(t)
                .map_err(|e| format!("--watchdog-timeout: {e}"))?;
        }
    }
    Ok(Parsed::Run(Box::new(o), s))
}

fn main() -> ExitCode {
    let env = Env::from_process();
    let (o, s) = match parse(std::env::args_os().skip(1).collect(), &env) {
        Ok(Parsed::Run(o, s)) => (o, s),
        Ok(Parsed::Exit(c)) => return c,
        Err(e) => {
            eprintln!("varta-watchd: {e}");
            return ExitCode::from(2);
        }
    };
    varta_host::logging::init(s.log_format, s.log_level);
    match run(*o, *s) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("varta-watchd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(o: Opts, s: Settings) -> Result<(), String> {
    let b = o.board.as_ref();
    let user = o.user;
    // The watchdog first: from here on the countdown runs and the loop must pet it.
    let device = o
        .watchdog
        .clone()
        .or_else(|| b.map(|b| b.watchdog_device.clone()));
    let wd = match (&device, o.no_watchdog) {
        (Some(dev), false) => {
            let timeout = o.timeout_s.or(b.map(|b| b.timeout_s));
            let pre = o.pretimeout_s.or(b.and_then(|b| b.pretimeout_s));
            Some(LinuxWatchdog::open(dev, timeout, pre).map_err(|e| e.to_string())?)
        }
        (None, false) => {
            return Err("no watchdog: give --board, --board-file or --watchdog \
                        (or --no-watchdog to run without one)"
                .into())
        }
        (_, true) => None,
    };
    let clock = varta_host::clock::OsClock::new(s.clock_source);
    let now = clock.now().map_err(|e| format!("clock: {e:?}"))?;
    let state_dir = o
        .state_dir
        .clone()
        .or(b.map(|b| b.state_dir.clone()))
        .unwrap_or_else(|| PathBuf::from("/var/lib/varta"));
    let store = StateDir::open(&state_dir)?;
    if let Some((uid, gid)) = user {
        // The state directory is written after privileges are dropped (the reset reason).
        rustix::fs::chown(
            &state_dir,
            Some(rustix::process::Uid::from_raw(uid)),
            Some(rustix::process::Gid::from_raw(gid)),
        )
        .map_err(|e| format!("--user: cannot hand {} over: {e}", state_dir.display()))?;
    }
    let found = store.take();
    if let Some(e) = &found.record_error {
        log::warn!(
            "{}/boot-loop unreadable ({e}): starting the count afresh",
            state_dir.display()
        );
    }
    if let Some(w) = &wd {
        let f = w.facts();
        log::info!(
            "watchdog {}: \"{}\" firmware {}, options {}, status {}, boot status {}, \
             timeout {} s{}{}",
            f.path.display(),
            f.identity,
            f.firmware_version,
            flags::names(f.options),
            flags::names(f.status),
            flags::names(f.boot_status),
            f.timeout_s,
            f.pretimeout_s
                .map(|p| format!(", pretimeout {p} s"))
                .unwrap_or_default(),
            match f.nowayout {
                Some(true) => ", nowayout",
                _ => "",
            }
        );
    }
    let last =
        varta_embedded::boot::describe(wd.as_ref().map(|w| w.facts()), found.reason.as_ref());
    log::info!("last reset: {}", last.text);
    let record = BootLoopRecord::carry_over(found.record, last.by_watchdog);
    if record.consecutive > 0 {
        log::warn!(
            "{} consecutive watchdog reset(s) blamed on the same agent so far",
            record.consecutive
        );
    }
    let led_spec = if o.no_led {
        None
    } else {
        o.led.clone().or(b.and_then(|b| b.led.clone()))
    };
    let led = match &led_spec {
        Some(spec) => match LedPin::open(spec) {
            Ok(p) => {
                log::info!("status LED: {spec}");
                Some(p)
            }
            Err(e) => {
                log::error!("status LED {spec}: {e} (continuing without it)");
                None
            }
        },
        None => None,
    };
    let ms = |v: Option<u64>, secs: Option<u64>, def: u64| {
        Duration::from_millis(v.unwrap_or(secs.map_or(def, |s| s * 1000)))
    };
    let gate = GateConfig {
        startup_grace: ms(o.grace_ms, b.map(|b| b.startup_grace_s), 60_000),
        recovery_window: ms(o.window_ms, b.map(|b| b.recovery_window_s), 30_000),
        boot_loop_limit: o
            .boot_loop_limit
            .or(b.map(|b| b.boot_loop_limit))
            .unwrap_or(3),
        stable_after: Duration::from_secs(b.map_or(600, |b| b.stable_after_s)),
    };
    let hw = HwSettings {
        gate,
        pet_interval: Duration::from_millis(
            o.pet_interval_ms
                .or(b.map(|b| b.pet_interval_ms))
                .unwrap_or(1000),
        ),
        magic_close: o.magic_close || b.is_some_and(|b| b.magic_close),
        led_active_low: o.led_active_low || b.is_some_and(|b| b.led_active_low),
        watchdog_name: wd
            .as_ref()
            .map(|w| format!("{} on {}", w.facts().identity, w.facts().path.display()))
            .unwrap_or_default(),
        nowayout: wd.as_ref().and_then(|w| w.facts().nowayout),
        last_reset: last.text,
    };
    if hw.magic_close && hw.nowayout == Some(true) {
        log::warn!("magic close configured, but the driver is nowayout: it cannot be disarmed");
    }
    let hardware = Hardware::new(hw, wd, led, store, record, now);
    if let Some(dir) = s.socket.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("socket directory {}: {e}", dir.display()))?;
        }
    }
    let cfg = RunConfig::from_settings(s);
    let tracker = TRACKER.lock().unwrap_or_else(|p| p.into_inner());
    let mut d = Daemon::with_supervisor(cfg, tracker, hardware)?;
    if let Some((uid, gid)) = user {
        drop_privileges(uid, gid)?;
    }
    varta_embedded::watchdog::startup_complete();
    d.run().map(|_| ())
}

fn drop_privileges(uid: u32, gid: u32) -> Result<(), String> {
    // One thread here (signals arrive on a signalfd), so the per-thread calls suffice.
    rustix::thread::set_thread_groups(&[])
        .map_err(|e| format!("--user: dropping supplementary groups: {e}"))?;
    rustix::thread::set_thread_gid(rustix::process::Gid::from_raw(gid))
        .map_err(|e| format!("--user: setgid {gid}: {e}"))?;
    rustix::thread::set_thread_uid(rustix::process::Uid::from_raw(uid))
        .map_err(|e| format!("--user: setuid {uid}: {e}"))?;
    log::info!("running as uid {uid} gid {gid}");
    Ok(())
}
