//! Configuration: defaults, the TOML file, then command-line flags, in that order of
//! precedence. Every error is a [`ConfigError`] naming the flag or `file:line`; the binary
//! exits with status 2 on one.

pub mod cli;
pub mod file;
pub mod rules;
pub mod syntax;

pub use rules::{match_rule, AgentFacts, AgentRule};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use varta_core::time::{ClockSource, Duration};

/// A configuration error: the message already names the flag or the file line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The parts of the process environment that pick defaults.
#[derive(Clone, Debug)]
pub struct Env {
    /// `$XDG_RUNTIME_DIR`, if set and absolute.
    pub runtime_dir: Option<PathBuf>,
    /// Effective uid.
    pub euid: u32,
}

impl Env {
    /// Read from this process.
    pub fn from_process() -> Self {
        Env {
            runtime_dir: std::env::var_os("XDG_RUNTIME_DIR")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute()),
            euid: rustix::process::geteuid().as_raw(),
        }
    }
}

/// `$XDG_RUNTIME_DIR/varta.sock`, else `/run/varta/varta.sock` for root, else
/// `/tmp/varta-<uid>/varta.sock`.
pub fn default_socket_path(env: &Env) -> PathBuf {
    match (&env.runtime_dir, env.euid) {
        (Some(d), _) => d.join("varta.sock"),
        (None, 0) => PathBuf::from("/run/varta/varta.sock"),
        (None, uid) => PathBuf::from(format!("/tmp/varta-{uid}/varta.sock")),
    }
}

/// The control socket that goes with a data socket: same directory, `.ctl` extension.
pub fn control_path_for(socket: &Path) -> PathBuf {
    socket.with_extension("ctl")
}

/// Parse a config file's agent rules (SIGHUP reload).
pub fn load_rules_file(path: &Path) -> Result<Vec<AgentRule>, ConfigError> {
    file::load(path).map(|f| f.rules)
}

/// Log format.
pub use crate::logging::Format as LogFormat;

/// Everything `varta-watch run` needs, resolved.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Data socket.
    pub socket: PathBuf,
    /// Socket file mode.
    pub socket_mode: u32,
    /// Socket file group (gid).
    pub socket_group: Option<u32>,
    /// Control socket (None: disabled).
    pub control_socket: Option<PathBuf>,
    /// Default stall threshold.
    pub threshold: Duration,
    /// Tracker capacity (agents).
    pub tracker_capacity: usize,
    /// Clock source.
    pub clock_source: ClockSource,
    /// UDP listener.
    pub udp: Option<SocketAddr>,
    /// TSV event export.
    pub export_file: Option<PathBuf>,
    /// Rotate the export file past this size (0: never).
    pub export_max_bytes: u64,
    /// node_exporter textfile.
    pub metrics_file: Option<PathBuf>,
    /// Textfile rewrite interval.
    pub metrics_interval: Duration,
    /// Prometheus HTTP listener.
    pub prom_addr: Option<SocketAddr>,
    /// Bearer token file for /metrics.
    pub prom_token_file: Option<PathBuf>,
    /// Extra uids allowed to beat.
    pub allow_uids: Vec<u32>,
    /// Extra gids allowed to beat.
    pub allow_gids: Vec<u32>,
    /// Log format.
    pub log_format: LogFormat,
    /// Log level.
    pub log_level: log::LevelFilter,
    /// Per-agent rate limit (frames/s, 0 = off) and burst.
    pub agent_rate: (u32, u32),
    /// Global rate limit (frames/s, 0 = off).
    pub global_rate: u32,
    /// Most pidfds held for exit detection (None: the tracker capacity).
    pub pidfd_limit: Option<usize>,
    /// Datagrams from one pid within the flood window before the kernel filter blocks it
    /// (0: no flood filter).
    pub flood_limit: u32,
    /// Under load, the longest a datagram waits in the socket queue before a timed read
    /// takes it (0: the socket is read whenever it is readable).
    pub coalesce: Duration,
    /// Stop after this long.
    pub shutdown_after: Option<Duration>,
    /// Config file (re-read on SIGHUP).
    pub config_file: Option<PathBuf>,
    /// Agent rules.
    pub rules: Vec<AgentRule>,
    /// Recovery runner.
    pub recovery: crate::recovery::RecoverySettings,
    /// Audit log (None: off).
    pub audit: Option<crate::audit::AuditSettings>,
}

/// Default for `--coalesce-ms`.
pub const DEFAULT_COALESCE_MS: u64 = 4;
/// Largest `--coalesce-ms` accepted: it is also the extra latency of a Critical frame.
pub const MAX_COALESCE_MS: u64 = 100;

/// `--coalesce-ms` / `coalesce_ms`, checked.
fn parse_coalesce(ms: u64) -> Result<Duration, String> {
    if ms > MAX_COALESCE_MS {
        return Err(format!("must be at most {MAX_COALESCE_MS}"));
    }
    Ok(Duration::from_millis(ms))
}

/// Default audit log rotation size.
pub const DEFAULT_AUDIT_MAX_BYTES: u64 = crate::audit::DEFAULT_MAX_BYTES;

impl Settings {
    /// Defaults for this environment.
    pub fn defaults(env: &Env) -> Self {
        let socket = default_socket_path(env);
        Settings {
            control_socket: Some(control_path_for(&socket)),
            socket,
            socket_mode: 0o600,
            socket_group: None,
            threshold: Duration::from_millis(2000),
            tracker_capacity: 4096,
            clock_source: ClockSource::Monotonic,
            udp: None,
            export_file: None,
            export_max_bytes: 64 << 20,
            metrics_file: None,
            metrics_interval: Duration::from_secs(15),
            prom_addr: None,
            prom_token_file: None,
            allow_uids: Vec::new(),
            allow_gids: Vec::new(),
            log_format: LogFormat::Text,
            log_level: log::LevelFilter::Info,
            agent_rate: (0, 0),
            global_rate: 0,
            pidfd_limit: None,
            flood_limit: 200,
            coalesce: Duration::from_millis(DEFAULT_COALESCE_MS),
            shutdown_after: None,
            config_file: None,
            rules: Vec::new(),
            recovery: crate::recovery::RecoverySettings::default(),
            audit: None,
        }
    }
}

/// Parse an octal file mode such as `0660` or `660`.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let t = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(t, 8) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => Err(format!("{s:?} is not an octal file mode (e.g. 0660)")),
    }
}

/// Parse a clock source name.
pub fn parse_clock(s: &str) -> Result<ClockSource, String> {
    match s {
        "monotonic" => Ok(ClockSource::Monotonic),
        "boottime" => Ok(ClockSource::Boottime),
        _ => Err(format!("{s:?}: expected monotonic or boottime")),
    }
}

/// Parse a log format name.
pub fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("{s:?}: expected text or json")),
    }
}

/// Parse a log level name.
pub fn parse_log_level(s: &str) -> Result<log::LevelFilter, String> {
    s.parse()
        .map_err(|_| format!("{s:?}: expected off, error, warn, info, debug or trace"))
}

/// Parse `HOST:PORT`; a bare port means loopback.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|_| format!("{s:?} is not HOST:PORT (e.g. 127.0.0.1:9187)"))
}

/// Resolve a group name or number to a gid (via /etc/group).
pub fn parse_group(s: &str) -> Result<u32, String> {
    if let Ok(g) = s.parse() {
        return Ok(g);
    }
    let text = std::fs::read_to_string("/etc/group").map_err(|e| format!("/etc/group: {e}"))?;
    text.lines()
        .filter_map(|l| {
            let mut it = l.split(':');
            let name = it.next()?;
            it.next();
            let gid = it.next()?.parse().ok()?;
            (name == s).then_some(gid)
        })
        .next()
        .ok_or_else(|| format!("no group named {s:?}"))
}

/// Apply the `[observer]` table of a config file over `s`.
pub fn apply_file(s: &mut Settings, path: &Path, o: file::ObserverToml) -> Result<(), ConfigError> {
    let e =
        |key: &str, m: String| ConfigError(format!("{}: [observer] {key}: {m}", path.display()));
    apply_recovery(s, &o, &e)?;
    if let Some(v) = o.socket {
        s.control_socket = Some(control_path_for(&v));
        s.socket = v;
    }
    if let Some(v) = o.socket_mode {
        s.socket_mode = parse_mode(&v).map_err(|m| e("socket_mode", m))?;
    }
    if let Some(v) = o.socket_group {
        s.socket_group = Some(parse_group(&v).map_err(|m| e("socket_group", m))?);
    }
    if let Some(v) = o.control_socket {
        s.control_socket = Some(v);
    }
    if let Some(v) = o.threshold_ms {
        if v == 0 {
            return Err(e("threshold_ms", "must be above 0".into()));
        }
        s.threshold = Duration::from_millis(v);
    }
    if let Some(v) = o.tracker_capacity {
        s.tracker_capacity = check_capacity(v).map_err(|m| e("tracker_capacity", m))?;
    }
    if let Some(v) = o.clock_source {
        s.clock_source = parse_clock(&v).map_err(|m| e("clock_source", m))?;
    }
    if let Some(v) = o.udp_bind {
        s.udp = Some(parse_addr(&v).map_err(|m| e("udp_bind", m))?);
    } else if let Some(p) = o.udp_port {
        s.udp = Some(SocketAddr::from(([127, 0, 0, 1], p)));
    }
    s.export_file = o.export_file.or(s.export_file.take());
    if let Some(v) = o.export_max_bytes {
        s.export_max_bytes = v;
    }
    s.metrics_file = o.metrics_file.or(s.metrics_file.take());
    if let Some(v) = o.metrics_interval_ms {
        if v < 100 {
            return Err(e("metrics_interval_ms", "must be at least 100".into()));
        }
        s.metrics_interval = Duration::from_millis(v);
    }
    if let Some(v) = o.prom_addr {
        s.prom_addr = Some(parse_addr(&v).map_err(|m| e("prom_addr", m))?);
    }
    s.prom_token_file = o.prom_token_file.or(s.prom_token_file.take());
    if let Some(v) = o.allow_uids {
        s.allow_uids = v;
    }
    if let Some(v) = o.allow_gids {
        s.allow_gids = v;
    }
    if let Some(v) = o.log_format {
        s.log_format = parse_log_format(&v).map_err(|m| e("log_format", m))?;
    }
    if let Some(v) = o.log_level {
        s.log_level = parse_log_level(&v).map_err(|m| e("log_level", m))?;
    }
    if let Some(v) = o.agent_rate_per_sec {
        s.agent_rate.0 = v;
    }
    if let Some(v) = o.agent_rate_burst {
        s.agent_rate.1 = v;
    }
    if let Some(v) = o.global_rate_per_sec {
        s.global_rate = v;
    }
    if let Some(v) = o.pidfd_limit {
        s.pidfd_limit = Some(v);
    }
    if let Some(v) = o.flood_limit {
        s.flood_limit = v;
    }
    if let Some(v) = o.coalesce_ms {
        s.coalesce = parse_coalesce(v).map_err(|m| e("coalesce_ms", m))?;
    }
    Ok(())
}

fn apply_recovery(
    s: &mut Settings,
    o: &file::ObserverToml,
    e: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    let r = &mut s.recovery;
    if let Some(argv) = &o.recovery_exec {
        file::check_argv(argv).map_err(|m| e("recovery_exec", m))?;
        r.exec = Some(argv.clone());
    }
    let ms = Duration::from_millis;
    if let Some(v) = o.recovery_debounce_ms {
        r.policy.debounce = ms(v);
    }
    if let Some(v) = o.recovery_timeout_ms {
        if v == 0 {
            return Err(e("recovery_timeout_ms", "must be above 0".into()));
        }
        r.policy.timeout = ms(v);
    }
    if let Some(v) = o.recovery_kill_grace_ms {
        r.policy.kill_grace = ms(v);
    }
    if let Some(v) = o.recovery_budget {
        r.policy.budget = v;
    }
    if let Some(v) = o.recovery_window_ms {
        r.policy.window = ms(v);
    }
    if let Some(v) = &o.recovery_on_exhausted {
        r.policy.exhausted = match v.as_str() {
            "escalate" => varta_core::policy::recovery::Exhausted::Escalate,
            "give_up" => varta_core::policy::recovery::Exhausted::GiveUp,
            other => {
                return Err(e(
                    "recovery_on_exhausted",
                    format!("{other:?}: expected \"escalate\" or \"give_up\""),
                ))
            }
        };
    }
    if let Some(v) = &o.recovery_env {
        r.env_allow = v.clone();
    }
    if let Some(v) = &o.recovery_cwd {
        if !v.is_absolute() {
            return Err(e("recovery_cwd", "must be an absolute path".into()));
        }
        r.cwd = Some(v.clone());
    }
    if let Some(v) = &o.recovery_user {
        r.user = Some(parse_user(v).map_err(|m| e("recovery_user", m))?);
    }
    if let Some(v) = o.recovery_allow_udp {
        r.allow_udp = v;
    }
    if let Some(v) = o.recover_on_exit {
        r.recover_on_exit = v;
    }
    if let Some(p) = &o.audit_file {
        let a = s
            .audit
            .get_or_insert_with(|| crate::audit::AuditSettings::new(p.clone()));
        a.path = p.clone();
        if let Some(v) = o.audit_max_bytes {
            a.max_bytes = v;
        }
        if let Some(v) = o.audit_sync_every {
            if v == 0 {
                return Err(e("audit_sync_every", "must be 1 or more".into()));
            }
            a.sync.every = v;
        }
        if let Some(v) = o.audit_sync_interval_ms {
            if v == 0 {
                return Err(e("audit_sync_interval_ms", "must be above 0".into()));
            }
            a.sync.interval = ms(v);
        }
    } else if o.audit_max_bytes.is_some()
        || o.audit_sync_every.is_some()
        || o.audit_sync_interval_ms.is_some()
    {
        return Err(e(
            "audit_file",
            "audit_* settings given without audit_file".into(),
        ));
    }
    Ok(())
}

/// Resolve a user name or number to (uid, gid) via /etc/passwd; a bare number keeps gid = uid.
pub fn parse_user(s: &str) -> Result<(u32, u32), String> {
    if let Ok(u) = s.parse() {
        return Ok((u, u));
    }
    let text = std::fs::read_to_string("/etc/passwd").map_err(|e| format!("/etc/passwd: {e}"))?;
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 || f[0] != s {
                return None;
            }
            Some((f[2].parse().ok()?, f[3].parse().ok()?))
        })
        .next()
        .ok_or_else(|| format!("no user named {s:?}"))
}

/// Largest tracker the observer can build.
pub const MAX_CAPACITY: usize = 65536;

/// Check a requested tracker capacity.
pub fn check_capacity(n: usize) -> Result<usize, String> {
    if n == 0 || n > MAX_CAPACITY {
        Err(format!("{n}: expected 1..={MAX_CAPACITY}"))
    } else {
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_socket_follows_runtime_dir_then_root() {
        let env = Env {
            runtime_dir: Some("/run/user/1000".into()),
            euid: 1000,
        };
        assert_eq!(
            default_socket_path(&env),
            Path::new("/run/user/1000/varta.sock")
        );
        let env = Env {
            runtime_dir: None,
            euid: 0,
        };
        assert_eq!(
            default_socket_path(&env),
            Path::new("/run/varta/varta.sock")
        );
        assert_eq!(
            control_path_for(Path::new("/run/varta/varta.sock")),
            Path::new("/run/varta/varta.ctl")
        );
    }

    #[test]
    fn value_parsers() {
        assert_eq!(parse_mode("0660"), Ok(0o660));
        assert_eq!(parse_mode("660"), Ok(0o660));
        assert!(parse_mode("0999").is_err());
        assert_eq!(parse_addr("9187").unwrap().to_string(), "127.0.0.1:9187");
        assert_eq!(parse_addr("0.0.0.0:1").unwrap().to_string(), "0.0.0.0:1");
        assert!(parse_addr("localhost").is_err());
        assert_eq!(parse_group("0"), Ok(0));
        assert_eq!(parse_group("root"), Ok(0));
        assert!(parse_group("no-such-group-here").is_err());
        assert!(check_capacity(65537).is_err());
    }
}
