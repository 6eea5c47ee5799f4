//! Command-line parsing (lexopt): subcommands `run` (default), `status`, `doctor`.

use super::*;
use lexopt::prelude::*;
use std::ffi::OsString;

/// Full help text.
pub const HELP: &str = "\
varta-watch: watch processes that send VLP heartbeats; report stalls, exits and critical
states; export events and metrics.

USAGE:
    varta-watch [run] [OPTIONS]       run the observer (the default)
    varta-watch status [--json] [--control-socket PATH]
                                      show the agents of a running observer
    varta-watch doctor [--config FILE] [--socket PATH] [--tracker-capacity N]
                                      check sockets, /proc, net.unix.max_dgram_qlen against
                                      the tracker capacity, watchdog and LED devices
    varta-watch audit verify FILE...  check the hash chain of audit files, oldest first
                                      (e.g. audit.tsv.2 audit.tsv.1 audit.tsv)

OPTIONS (run):
    --config FILE              TOML file with [observer] settings and [[agent]] rules;
                               re-read on SIGHUP (rules only), flags win over the file
    --socket PATH              datagram socket agents beat to
                               [default: $XDG_RUNTIME_DIR/varta.sock, as root /run/varta/varta.sock]
    --socket-mode MODE         octal mode of the socket file [default: 0600]
    --socket-group GROUP       group of the socket file (name or gid), lets its members beat
    --allow-uid UID            also accept beats from this uid (repeatable)
    --allow-gid GID            also accept beats from this gid (repeatable)
    --control-socket PATH      status socket [default: the socket path with .ctl]
    --threshold-ms MS          silence before an agent is reported stalled [default: 2000]
    --tracker-capacity N       most agents tracked at once, 1..=65536 [default: 4096]
    --clock-source SRC         monotonic or boottime [default: monotonic]
    --udp-port PORT            also accept plain UDP frames on 127.0.0.1:PORT (never trusted)
    --udp-bind ADDR:PORT       same, on another address
    --export-file PATH         append every event as TSV: observer_ns kind pid nonce status payload
    --export-max-bytes N       rotate the export file to PATH.1 past N bytes, 0 = never [default: 64 MiB]
    --prom-addr ADDR:PORT      serve Prometheus /metrics (a bare port means loopback)
    --prom-token-file PATH     bearer token for /metrics (required when not on loopback)
    --metrics-file PATH        write node_exporter textfile metrics atomically
    --metrics-interval-ms MS   textfile rewrite interval [default: 15000]
    --agent-rate N[/BURST]     per-agent frames per second, 0 = unlimited [default: 0]
    --global-rate N            all agents' frames per second, 0 = unlimited [default: 0]
    --pidfd-limit N            most processes watched for exit with a pidfd
                               [default: the tracker capacity]
    --flood-limit N            datagrams one pid may send within 100 ms before the kernel drops
                               its ordinary frames for 200 ms (Critical and terminal frames
                               always pass), 0 = off [default: 200]
    --coalesce-ms MS           under load, read the socket on a timer, at most MS after a
                               datagram arrived, instead of waking for each one; only with a
                               kernel queue of 16 or more, beat times stay the kernel's receive
                               times, 0 = wake for every datagram, at most 100 [default: 4]
    --log-format FMT           text or json [default: text]
    --log-level LEVEL          error, warn, info, debug, trace [default: info]
    --shutdown-after-secs S    stop after S seconds (tests)

RECOVERY (run):
    --recovery-exec CMD        run CMD when an agent stalls or sends its terminal frame. CMD is
                               split into words, never run by a shell: blanks separate words,
                               '...' and \"...\" group them, \\ escapes one character; {pid},
                               {name} and {status} (stall, terminal, exited, critical) are
                               substituted; without any of them the pid is appended as the
                               last argument. Rules in --config may give their own argv.
    --recovery-exec-file PATH  read CMD from the first non-comment line of PATH
    --recovery-debounce-ms MS  triggers closer than this to the last one are folded [default: 1000]
    --recovery-timeout-ms MS   SIGTERM a command running longer, SIGKILL 2 s later [default: 10000]
    --recovery-budget N        attempts per agent within the window, then give up [default: 3]
    --recovery-window-ms MS    the budget's sliding window [default: 300000]
    --recovery-allow-udp       also act on agents that beat over plain UDP (no identity)
    --recovery-audit-file PATH append every spawn, completion, refusal and escalation to a
                               hash-chained TSV audit log (created 0600)
    --recovery-audit-max-bytes N  rotate the audit log past N bytes, 5 kept [default: 16 MiB]
    --recovery-audit-sync-every N fdatasync every N records [default: 1]
    --audit-sync-interval-ms MS   with N > 1, longest a record waits for fdatasync [default: 1000]
    Commands get a cleared environment (PATH, LANG, LC_ALL, TZ and VARTA_PID, VARTA_NAME,
    VARTA_STATUS, VARTA_ATTEMPT), stdin from /dev/null, their output in the log, and run in
    their own process group. Bookkeeping is per agent name, so a restarted agent keeps its
    budget. A pid whose process start time changed is never acted on.

    -h, --help                 this text
    -V, --version              version

Critical and terminal frames are never rate limited. Exit status: 0 on SIGTERM/SIGINT,
1 on a runtime error, 2 on a configuration error.
";

/// What to do.
#[derive(Debug)]
pub enum Command {
    /// Run the observer.
    Run(Box<Settings>),
    /// Query a running observer.
    Status {
        /// Control socket.
        control: PathBuf,
        /// Raw JSON output.
        json: bool,
    },
    /// Check the system.
    Doctor {
        /// Data socket to check.
        socket: PathBuf,
        /// Tracker capacity the socket queue is judged against.
        tracker_capacity: usize,
    },
    /// Verify audit files.
    AuditVerify {
        /// Files, oldest first.
        files: Vec<PathBuf>,
    },
    /// Print help.
    Help,
    /// Print the version.
    Version,
}

fn flag_err(flag: &str, m: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("{flag}: {m}"))
}

fn value_str(p: &mut lexopt::Parser, flag: &str) -> Result<String, ConfigError> {
    let v: OsString = p.value().map_err(|e| flag_err(flag, e))?;
    v.into_string()
        .map_err(|_| flag_err(flag, "value is not valid UTF-8"))
}

fn with<T>(r: Result<T, String>, flag: &str) -> Result<T, ConfigError> {
    r.map_err(|m| flag_err(flag, m))
}

/// Parse `args` (without the program name).
pub fn parse<I>(args: I, env: &Env) -> Result<Command, ConfigError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut p = lexopt::Parser::from_args(args);
    let mut sub: Option<String> = None;
    // Flags are collected in order and applied after the config file.
    let mut flags: Vec<(String, Option<String>)> = Vec::new();
    let mut json = false;
    let mut config: Option<PathBuf> = None;
    let mut operands: Vec<OsString> = Vec::new();
    loop {
        let arg = p.next().map_err(|e| ConfigError(e.to_string()))?;
        let Some(arg) = arg else { break };
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            Value(v) if sub.is_none() && flags.is_empty() && config.is_none() => {
                let v = v
                    .string()
                    .map_err(|_| ConfigError("invalid subcommand".into()))?;
                match v.as_str() {
                    "run" | "status" | "doctor" | "audit" => sub = Some(v),
                    _ => {
                        return Err(ConfigError(format!(
                            "unknown subcommand {v:?} (run, status, doctor, audit)"
                        )))
                    }
                }
            }
            Value(v) if sub.as_deref() == Some("audit") => operands.push(v),
            Long("recovery-allow-udp") => flags.push(("--recovery-allow-udp".into(), None)),
            Long("json") if sub.as_deref() == Some("status") => json = true,
            Long("config") => config = Some(PathBuf::from(value_str(&mut p, "--config")?)),
            Long(name) => {
                let name = format!("--{name}");
                if !KNOWN.contains(&name.as_str()) {
                    return Err(ConfigError(format!("{name}: unknown flag (see --help)")));
                }
                let v = value_str(&mut p, &name)?;
                flags.push((name, Some(v)));
            }
            other => {
                return Err(ConfigError(format!(
                    "{}: unexpected argument (see --help)",
                    fmt_arg(&other)
                )))
            }
        }
    }
    let get = |name: &str| {
        flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.clone())
    };
    match sub.as_deref() {
        Some("audit") => {
            let mut it = operands.into_iter();
            match it.next().and_then(|v| v.into_string().ok()).as_deref() {
                Some("verify") => {}
                _ => {
                    return Err(ConfigError(
                        "usage: varta-watch audit verify FILE...".into(),
                    ))
                }
            }
            let files: Vec<PathBuf> = it.map(PathBuf::from).collect();
            if files.is_empty() {
                return Err(ConfigError(
                    "audit verify: give the audit files, oldest first".into(),
                ));
            }
            Ok(Command::AuditVerify { files })
        }
        Some("status") => {
            let control = match (get("--control-socket"), get("--socket")) {
                (Some(c), _) => PathBuf::from(c),
                (None, Some(s)) => control_path_for(Path::new(&s)),
                (None, None) => control_path_for(&default_socket_path(env)),
            };
            Ok(Command::Status { control, json })
        }
        Some("doctor") => {
            // The observer's socket and tracker capacity: defaults, the config file, then
            // --socket and --tracker-capacity. Other flags are accepted and not checked.
            let mut s = Settings::defaults(env);
            if let Some(path) = config {
                let f = file::load(&path)?;
                apply_file(&mut s, &path, f.observer)?;
            }
            if let Some(v) = get("--socket") {
                s.socket = PathBuf::from(v);
            }
            if let Some(v) = get("--tracker-capacity") {
                let f = "--tracker-capacity";
                let n: usize = v
                    .parse()
                    .map_err(|_| flag_err(f, format!("{v:?} is not a valid number")))?;
                s.tracker_capacity = with(check_capacity(n), f)?;
            }
            Ok(Command::Doctor {
                socket: s.socket,
                tracker_capacity: s.tracker_capacity,
            })
        }
        _ => {
            let mut s = Settings::defaults(env);
            if let Some(path) = config {
                let f = file::load(&path)?;
                apply_file(&mut s, &path, f.observer)?;
                s.rules = f.rules;
                s.config_file = Some(path);
            }
            apply_flags(&mut s, flags)?;
            Ok(Command::Run(Box::new(s)))
        }
    }
}

fn fmt_arg(a: &lexopt::Arg<'_>) -> String {
    match a {
        Short(c) => format!("-{c}"),
        Long(l) => format!("--{l}"),
        Value(v) => v.to_string_lossy().into_owned(),
    }
}

const KNOWN: &[&str] = &[
    "--socket",
    "--socket-mode",
    "--socket-group",
    "--allow-uid",
    "--allow-gid",
    "--control-socket",
    "--threshold-ms",
    "--tracker-capacity",
    "--clock-source",
    "--udp-port",
    "--udp-bind",
    "--export-file",
    "--export-max-bytes",
    "--prom-addr",
    "--prom-token-file",
    "--metrics-file",
    "--metrics-interval-ms",
    "--agent-rate",
    "--global-rate",
    "--pidfd-limit",
    "--flood-limit",
    "--coalesce-ms",
    "--log-format",
    "--log-level",
    "--shutdown-after-secs",
    "--recovery-exec",
    "--recovery-exec-file",
    "--recovery-debounce-ms",
    "--recovery-timeout-ms",
    "--recovery-budget",
    "--recovery-window-ms",
    "--recovery-audit-file",
    "--recovery-audit-max-bytes",
    "--recovery-audit-sync-every",
    "--audit-sync-interval-ms",
];

fn apply_flags(s: &mut Settings, flags: Vec<(String, Option<String>)>) -> Result<(), ConfigError> {
    let mut explicit_control = false;
    for (name, v) in flags {
        let v = v.unwrap_or_default();
        let f = name.as_str();
        let n = |v: &str| -> Result<u64, ConfigError> {
            v.parse()
                .map_err(|_| flag_err(f, format!("{v:?} is not a valid number")))
        };
        match f {
            "--socket" => {
                s.socket = PathBuf::from(&v);
                if !explicit_control {
                    s.control_socket = Some(control_path_for(&s.socket));
                }
            }
            "--control-socket" => {
                explicit_control = true;
                s.control_socket = if v.is_empty() || v == "none" {
                    None
                } else {
                    Some(PathBuf::from(&v))
                };
            }
            "--socket-mode" => s.socket_mode = with(parse_mode(&v), f)?,
            "--socket-group" => s.socket_group = Some(with(parse_group(&v), f)?),
            "--allow-uid" => s.allow_uids.push(n(&v)? as u32),
            "--allow-gid" => s.allow_gids.push(n(&v)? as u32),
            "--threshold-ms" => {
                let ms = n(&v)?;
                if ms == 0 {
                    return Err(flag_err(f, "must be above 0"));
                }
                s.threshold = Duration::from_millis(ms);
            }
            "--tracker-capacity" => s.tracker_capacity = with(check_capacity(n(&v)? as usize), f)?,
            "--clock-source" => s.clock_source = with(parse_clock(&v), f)?,
            "--udp-port" => {
                let port = u16::try_from(n(&v)?).map_err(|_| flag_err(f, "port out of range"))?;
                s.udp = Some(SocketAddr::from(([127, 0, 0, 1], port)));
            }
            "--udp-bind" => s.udp = Some(with(parse_addr(&v), f)?),
            "--export-file" => s.export_file = Some(PathBuf::from(&v)),
            "--export-max-bytes" => s.export_max_bytes = n(&v)?,
            "--prom-addr" => s.prom_addr = Some(with(parse_addr(&v), f)?),
            "--prom-token-file" => s.prom_token_file = Some(PathBuf::from(&v)),
            "--metrics-file" => s.metrics_file = Some(PathBuf::from(&v)),
            "--metrics-interval-ms" => {
                let ms = n(&v)?;
                if ms < 100 {
                    return Err(flag_err(f, "must be at least 100"));
                }
                s.metrics_interval = Duration::from_millis(ms);
            }
            "--agent-rate" => {
                let (rate, burst) = match v.split_once('/') {
                    Some((r, b)) => (n(r)?, n(b)?),
                    None => {
                        let r = n(&v)?;
                        (r, r.max(1))
                    }
                };
                s.agent_rate = (rate as u32, burst as u32);
            }
            "--global-rate" => s.global_rate = n(&v)? as u32,
            "--pidfd-limit" => s.pidfd_limit = Some(n(&v)? as usize),
            "--flood-limit" => {
                s.flood_limit = with(u32::try_from(n(&v)?).map_err(|e| e.to_string()), f)?
            }
            "--coalesce-ms" => s.coalesce = with(parse_coalesce(n(&v)?), f)?,
            "--log-format" => s.log_format = with(parse_log_format(&v), f)?,
            "--log-level" => s.log_level = with(parse_log_level(&v), f)?,
            "--shutdown-after-secs" => s.shutdown_after = Some(Duration::from_secs(n(&v)?)),
            "--recovery-exec" => {
                s.recovery.exec = Some(with(crate::recovery::command::parse_exec_flag(&v), f)?)
            }
            "--recovery-exec-file" => s.recovery.exec = Some(with(read_exec_file(&v), f)?),
            "--recovery-debounce-ms" => s.recovery.policy.debounce = Duration::from_millis(n(&v)?),
            "--recovery-timeout-ms" => {
                let ms = n(&v)?;
                if ms == 0 {
                    return Err(flag_err(f, "must be above 0"));
                }
                s.recovery.policy.timeout = Duration::from_millis(ms);
            }
            "--recovery-budget" => {
                s.recovery.policy.budget =
                    u16::try_from(n(&v)?).map_err(|_| flag_err(f, "out of range"))?
            }
            "--recovery-window-ms" => s.recovery.policy.window = Duration::from_millis(n(&v)?),
            "--recovery-allow-udp" => s.recovery.allow_udp = true,
            "--recovery-audit-file" => audit_mut(s).path = PathBuf::from(&v),
            "--recovery-audit-max-bytes" => audit_mut(s).max_bytes = n(&v)?,
            "--recovery-audit-sync-every" => {
                let k = n(&v)?;
                if k == 0 || k > u32::MAX as u64 {
                    return Err(flag_err(f, "must be 1 or more"));
                }
                audit_mut(s).sync.every = k as u32;
            }
            "--audit-sync-interval-ms" => {
                let ms = n(&v)?;
                if ms == 0 {
                    return Err(flag_err(f, "must be above 0"));
                }
                audit_mut(s).sync.interval = Duration::from_millis(ms);
            }
            _ => return Err(flag_err(f, "unknown flag (see --help)")),
        }
    }
    finish(s)?;
    if let Some(a) = s.prom_addr {
        if !a.ip().is_loopback() && s.prom_token_file.is_none() {
            return Err(flag_err(
                "--prom-addr",
                format!(
                    "{a} is not loopback: give --prom-token-file so /metrics needs a bearer token"
                ),
            ));
        }
    }
    Ok(())
}

/// The first line of `path` that is neither blank nor a `#` comment, split as a command.
fn read_exec_file(path: &str) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| format!("{path}: no command in the file"))?;
    crate::recovery::command::parse_exec_flag(line).map_err(|m| format!("{path}: {m}"))
}

/// The audit settings, created with defaults on first use (the path is set by the caller).
fn audit_mut(s: &mut Settings) -> &mut crate::audit::AuditSettings {
    s.audit
        .get_or_insert_with(|| crate::audit::AuditSettings::new(PathBuf::new()))
}

/// Checks that need every setting: recovery policies that cannot work, audit options
/// without a file.
fn finish(s: &Settings) -> Result<(), ConfigError> {
    s.recovery.policy.validate().map_err(|e| {
        ConfigError(format!(
            "recovery policy (--recovery-debounce-ms, --recovery-budget, --recovery-window-ms): {e}"
        ))
    })?;
    for r in &s.rules {
        r.policy(&s.recovery.policy)
            .validate()
            .map_err(|e| ConfigError(format!("agent rule {}: recovery policy: {e}", r.label())))?;
    }
    if let Some(a) = &s.audit {
        if a.path.as_os_str().is_empty() {
            return Err(ConfigError(
                "--recovery-audit-*: audit options given without --recovery-audit-file".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env {
            runtime_dir: Some("/run/user/7".into()),
            euid: 7,
        }
    }

    fn run(args: &[&str]) -> Result<Settings, ConfigError> {
        match parse(args.iter().copied(), &env())? {
            Command::Run(s) => Ok(*s),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_flags_gives_working_defaults() {
        let s = run(&[]).unwrap();
        assert_eq!(s.socket, Path::new("/run/user/7/varta.sock"));
        assert_eq!(
            s.control_socket.as_deref(),
            Some(Path::new("/run/user/7/varta.ctl"))
        );
        assert_eq!(s.threshold, Duration::from_millis(2000));
    }

    #[test]
    fn published_flags_keep_their_meaning() {
        let s = run(&[
            "--socket",
            "/tmp/x.sock",
            "--threshold-ms",
            "300",
            "--socket-mode",
            "0660",
            "--export-file",
            "/tmp/e.tsv",
            "--prom-addr",
            "127.0.0.1:9000",
            "--tracker-capacity",
            "128",
            "--clock-source",
            "boottime",
            "--udp-port",
            "7000",
            "--shutdown-after-secs",
            "5",
        ])
        .unwrap();
        assert_eq!(s.socket, Path::new("/tmp/x.sock"));
        assert_eq!(s.control_socket.as_deref(), Some(Path::new("/tmp/x.ctl")));
        assert_eq!(s.threshold, Duration::from_millis(300));
        assert_eq!(s.socket_mode, 0o660);
        assert_eq!(s.tracker_capacity, 128);
        assert_eq!(s.clock_source, ClockSource::Boottime);
        assert_eq!(s.udp.unwrap().to_string(), "127.0.0.1:7000");
        assert_eq!(s.shutdown_after, Some(Duration::from_secs(5)));
    }

    #[test]
    fn errors_name_the_flag() {
        let e = run(&["--threshold-ms", "soon"]).unwrap_err().0;
        assert!(e.starts_with("--threshold-ms:"), "{e}");
        assert!(run(&["--no-such-flag"])
            .unwrap_err()
            .0
            .contains("--no-such-flag"));
        assert!(run(&["--threshold-ms"])
            .unwrap_err()
            .0
            .contains("--threshold-ms"));
        assert!(run(&["--prom-addr", "0.0.0.0:9000"])
            .unwrap_err()
            .0
            .contains("--prom-token-file"));
        assert!(run(&["--recovery-exec", "'unterminated"])
            .unwrap_err()
            .0
            .starts_with("--recovery-exec: unterminated"));
        assert!(run(&["--tracker-capacity", "0"]).is_err());
        let e = run(&[
            "--recovery-budget",
            "5",
            "--recovery-debounce-ms",
            "1000",
            "--recovery-window-ms",
            "2000",
        ])
        .unwrap_err()
        .0;
        assert!(e.contains("budget could never bind"), "{e}");
        assert!(run(&["--recovery-audit-sync-every", "0"]).is_err());
        let e = run(&["--recovery-audit-max-bytes", "10"]).unwrap_err().0;
        assert!(e.contains("without --recovery-audit-file"), "{e}");
    }

    #[test]
    fn recovery_flags() {
        let s = run(&[
            "--recovery-exec",
            "/usr/bin/restart --fast",
            "--recovery-debounce-ms",
            "5000",
            "--recovery-timeout-ms",
            "3000",
            "--recovery-allow-udp",
            "--recovery-audit-file",
            "/var/lib/varta/audit.tsv",
            "--recovery-audit-sync-every",
            "8",
        ])
        .unwrap();
        let r = &s.recovery;
        assert_eq!(
            r.exec.as_deref().unwrap(),
            ["/usr/bin/restart", "--fast", "{pid}"]
        );
        assert_eq!(r.policy.debounce, Duration::from_millis(5000));
        assert_eq!(r.policy.timeout, Duration::from_millis(3000));
        assert!(r.allow_udp);
        let a = s.audit.unwrap();
        assert_eq!(a.path, Path::new("/var/lib/varta/audit.tsv"));
        assert_eq!(a.sync.every, 8);
        assert_eq!(a.max_bytes, DEFAULT_AUDIT_MAX_BYTES);
        match parse(["audit", "verify", "a.1", "a"], &env()).unwrap() {
            Command::AuditVerify { files } => assert_eq!(files, [Path::new("a.1"), Path::new("a")]),
            other => panic!("{other:?}"),
        }
        assert!(parse(["audit"], &env()).is_err());
        assert!(parse(["audit", "verify"], &env()).is_err());
    }

    #[test]
    fn doctor_takes_socket_and_capacity_from_the_config_then_flags() {
        let t = tempfile::tempdir().unwrap();
        let cfg = t.path().join("varta.toml");
        std::fs::write(
            &cfg,
            "[observer]\nsocket = \"/run/x/v.sock\"\ntracker_capacity = 100\n",
        )
        .unwrap();
        let cfg = cfg.to_str().unwrap();
        let doctor = |args: &[&str]| match parse(args.iter().copied(), &env()).unwrap() {
            Command::Doctor {
                socket,
                tracker_capacity,
            } => (socket, tracker_capacity),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            doctor(&["doctor", "--config", cfg]),
            (PathBuf::from("/run/x/v.sock"), 100)
        );
        assert_eq!(
            doctor(&[
                "doctor",
                "--config",
                cfg,
                "--socket",
                "/s",
                "--tracker-capacity",
                "20000"
            ]),
            (PathBuf::from("/s"), 20000)
        );
    }

    #[test]
    fn subcommands() {
        match parse(["status", "--json", "--control-socket", "/c"], &env()).unwrap() {
            Command::Status { control, json } => {
                assert_eq!(control, Path::new("/c"));
                assert!(json);
            }
            other => panic!("{other:?}"),
        }
        match parse(["doctor"], &env()).unwrap() {
            Command::Doctor {
                socket,
                tracker_capacity,
            } => {
                assert_eq!(socket, default_socket_path(&env()));
                assert_eq!(tracker_capacity, 4096);
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(["doctor", "--tracker-capacity", "0"], &env()).is_err());
        assert!(parse(["doctor", "--tracker-capacity", "many"], &env()).is_err());
        assert!(matches!(parse(["--help"], &env()).unwrap(), Command::Help));
        assert!(parse(["frobnicate"], &env()).is_err());
    }
}
