//! The TOML configuration file: an `[observer]` table with the same settings as the flags,
//! and `[[agent]]` rules. Unknown keys are errors; every error names `file:line`.

use super::rules::{AgentRule, PolicyOverrides};
use super::syntax::{self, Fields};
use super::ConfigError;
use std::path::{Path, PathBuf};
use varta_core::policy::recovery::{Exhausted, RecoveryPolicy};
use varta_core::time::Duration;

/// `[observer]`: every key optional; flags given on the command line win.
#[derive(Debug, Default)]
pub struct ObserverToml {
    pub socket: Option<PathBuf>,
    pub socket_mode: Option<String>,
    pub socket_group: Option<String>,
    pub control_socket: Option<PathBuf>,
    pub threshold_ms: Option<u64>,
    pub tracker_capacity: Option<usize>,
    pub clock_source: Option<String>,
    pub udp_port: Option<u16>,
    pub udp_bind: Option<String>,
    pub export_file: Option<PathBuf>,
    pub export_max_bytes: Option<u64>,
    pub metrics_file: Option<PathBuf>,
    pub metrics_interval_ms: Option<u64>,
    pub prom_addr: Option<String>,
    pub prom_token_file: Option<PathBuf>,
    pub allow_uids: Option<Vec<u32>>,
    pub allow_gids: Option<Vec<u32>>,
    pub log_format: Option<String>,
    pub log_level: Option<String>,
    pub agent_rate_per_sec: Option<u32>,
    pub agent_rate_burst: Option<u32>,
    pub global_rate_per_sec: Option<u32>,
    pub pidfd_limit: Option<usize>,
    pub flood_limit: Option<u32>,
    pub coalesce_ms: Option<u64>,
    pub recovery_exec: Option<Vec<String>>,
    pub recovery_debounce_ms: Option<u64>,
    pub recovery_timeout_ms: Option<u64>,
    pub recovery_kill_grace_ms: Option<u64>,
    pub recovery_budget: Option<u16>,
    pub recovery_window_ms: Option<u64>,
    pub recovery_on_exhausted: Option<String>,
    pub recovery_env: Option<Vec<String>>,
    pub recovery_cwd: Option<PathBuf>,
    pub recovery_user: Option<String>,
    pub recovery_allow_udp: Option<bool>,
    pub recover_on_exit: Option<bool>,
    pub audit_file: Option<PathBuf>,
    pub audit_max_bytes: Option<u64>,
    pub audit_sync_every: Option<u32>,
    pub audit_sync_interval_ms: Option<u64>,
}

#[derive(Debug, Default)]
struct AgentToml {
    name: Option<String>,
    comm: Option<String>,
    exe: Option<PathBuf>,
    unit: Option<String>,
    uid: Option<u32>,
    threshold_ms: Option<u64>,
    critical: bool,
    required: bool,
    recovery: Option<Vec<String>>,
    escalation: Option<Vec<String>>,
    recover_on_critical: bool,
    recover_on_exit: bool,
    debounce_ms: Option<u64>,
    budget: Option<u16>,
    window_ms: Option<u64>,
    on_exhausted: Option<String>,
    timeout_ms: Option<u64>,
    kill_grace_ms: Option<u64>,
}

/// A parsed configuration file.
#[derive(Debug, Default)]
pub struct ConfigFile {
    /// The `[observer]` table.
    pub observer: ObserverToml,
    /// The `[[agent]]` rules, validated.
    pub rules: Vec<AgentRule>,
}

impl ObserverToml {
    fn read(f: &mut Fields<'_>) -> Result<Self, syntax::Error> {
        Ok(ObserverToml {
            socket: f.path("socket")?,
            socket_mode: f.str("socket_mode")?,
            socket_group: f.str("socket_group")?,
            control_socket: f.path("control_socket")?,
            threshold_ms: f.uint("threshold_ms")?,
            tracker_capacity: f.uint("tracker_capacity")?,
            clock_source: f.str("clock_source")?,
            udp_port: f.uint("udp_port")?,
            udp_bind: f.str("udp_bind")?,
            export_file: f.path("export_file")?,
            export_max_bytes: f.uint("export_max_bytes")?,
            metrics_file: f.path("metrics_file")?,
            metrics_interval_ms: f.uint("metrics_interval_ms")?,
            prom_addr: f.str("prom_addr")?,
            prom_token_file: f.path("prom_token_file")?,
            allow_uids: f.uints("allow_uids")?,
            allow_gids: f.uints("allow_gids")?,
            log_format: f.str("log_format")?,
            log_level: f.str("log_level")?,
            agent_rate_per_sec: f.uint("agent_rate_per_sec")?,
            agent_rate_burst: f.uint("agent_rate_burst")?,
            global_rate_per_sec: f.uint("global_rate_per_sec")?,
            pidfd_limit: f.uint("pidfd_limit")?,
            flood_limit: f.uint("flood_limit")?,
            coalesce_ms: f.uint("coalesce_ms")?,
            recovery_exec: f.strs("recovery_exec")?,
            recovery_debounce_ms: f.uint("recovery_debounce_ms")?,
            recovery_timeout_ms: f.uint("recovery_timeout_ms")?,
            recovery_kill_grace_ms: f.uint("recovery_kill_grace_ms")?,
            recovery_budget: f.uint("recovery_budget")?,
            recovery_window_ms: f.uint("recovery_window_ms")?,
            recovery_on_exhausted: f.str("recovery_on_exhausted")?,
            recovery_env: f.strs("recovery_env")?,
            recovery_cwd: f.path("recovery_cwd")?,
            recovery_user: f.str("recovery_user")?,
            recovery_allow_udp: f.bool("recovery_allow_udp")?,
            recover_on_exit: f.bool("recover_on_exit")?,
            audit_file: f.path("audit_file")?,
            audit_max_bytes: f.uint("audit_max_bytes")?,
            audit_sync_every: f.uint("audit_sync_every")?,
            audit_sync_interval_ms: f.uint("audit_sync_interval_ms")?,
        })
    }
}

impl AgentToml {
    fn read(f: &mut Fields<'_>) -> Result<Self, syntax::Error> {
        Ok(AgentToml {
            name: f.str("name")?,
            comm: f.str("comm")?,
            exe: f.path("exe")?,
            unit: f.str("unit")?,
            uid: f.uint("uid")?,
            threshold_ms: f.uint("threshold_ms")?,
            critical: f.bool("critical")?.unwrap_or(false),
            required: f.bool("required")?.unwrap_or(false),
            recovery: f.strs("recovery")?,
            escalation: f.strs("escalation")?,
            recover_on_critical: f.bool("recover_on_critical")?.unwrap_or(false),
            recover_on_exit: f.bool("recover_on_exit")?.unwrap_or(false),
            debounce_ms: f.uint("debounce_ms")?,
            budget: f.uint("budget")?,
            window_ms: f.uint("window_ms")?,
            on_exhausted: f.str("on_exhausted")?,
            timeout_ms: f.uint("timeout_ms")?,
            kill_grace_ms: f.uint("kill_grace_ms")?,
        })
    }
}

/// Parse and validate `text` read from `path`.
pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
    let at = |e: syntax::Error| ConfigError(format!("{}:{}: {}", path.display(), e.line, e.msg));
    let doc = syntax::parse(text).map_err(at)?;
    if let Some(e) = doc.root.first() {
        return Err(at(syntax::Error {
            line: e.line,
            msg: format!("`{}` outside a table: put it under [observer]", e.key),
        }));
    }
    let mut file = ConfigFile::default();
    for t in &doc.tables {
        let mut f = Fields::new(&t.entries);
        match (t.name.as_str(), t.array) {
            ("observer", false) => {
                file.observer = ObserverToml::read(&mut f).map_err(at)?;
                f.finish("[observer]").map_err(at)?;
            }
            ("agent", true) => {
                let a = AgentToml::read(&mut f).map_err(at)?;
                f.finish("[[agent]]").map_err(at)?;
                let rule =
                    to_rule(a, t.line).map_err(|msg| at(syntax::Error { line: t.line, msg }))?;
                file.rules.push(rule);
            }
            (name, array) => {
                let (o, c) = if array { ("[[", "]]") } else { ("[", "]") };
                return Err(at(syntax::Error {
                    line: t.line,
                    msg: format!("unknown table {o}{name}{c}: expected [observer] or [[agent]]"),
                }));
            }
        }
    }
    Ok(file)
}

/// Check a command argv from the file: program first, no NUL bytes.
pub fn check_argv(argv: &[String]) -> Result<(), String> {
    if argv.is_empty() || argv[0].trim().is_empty() {
        return Err("must be a non-empty argv list, program first".into());
    }
    if argv.iter().any(|s| s.contains('\0')) {
        return Err("argument contains a NUL byte".into());
    }
    Ok(())
}

/// Read and parse the file at `path`.
pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{}: {}", path.display(), e)))?;
    parse(path, &text)
}

fn to_rule(a: AgentToml, line: usize) -> Result<AgentRule, String> {
    let label = a.name.clone().unwrap_or_else(|| "[[agent]]".into());
    if a.name.is_none()
        && a.comm.is_none()
        && a.exe.is_none()
        && a.unit.is_none()
        && a.uid.is_none()
    {
        return Err("agent rule matches nothing: give name, comm, exe, unit or uid".into());
    }
    if a.threshold_ms == Some(0) {
        return Err(format!("agent {label}: threshold_ms must be above 0"));
    }
    for (key, argv) in [("recovery", &a.recovery), ("escalation", &a.escalation)] {
        if let Some(argv) = argv {
            check_argv(argv).map_err(|m| format!("agent {label}: {key}: {m}"))?;
        }
    }
    if let Some(exe) = &a.exe {
        if !exe.is_absolute() {
            return Err(format!("agent {label}: exe must be an absolute path"));
        }
    }
    let exhausted = match a.on_exhausted.as_deref() {
        None => None,
        Some("escalate") => Some(Exhausted::Escalate),
        Some("give_up") => Some(Exhausted::GiveUp),
        Some(other) => {
            return Err(format!(
                "agent {label}: on_exhausted = {other:?}: expected \"escalate\" or \"give_up\""
            ))
        }
    };
    let ms = |v: Option<u64>| v.map(Duration::from_millis);
    let overrides = PolicyOverrides {
        debounce: ms(a.debounce_ms),
        budget: a.budget,
        window: ms(a.window_ms),
        exhausted,
        timeout: ms(a.timeout_ms),
        kill_grace: ms(a.kill_grace_ms),
    };
    // Checked again against the observer-wide policy once flags are known.
    overrides
        .apply(&RecoveryPolicy::DEFAULT)
        .validate()
        .map_err(|e| format!("agent {label}: {e}"))?;
    Ok(AgentRule {
        name: a.name,
        comm: a.comm,
        exe: a.exe,
        unit: a.unit,
        uid: a.uid,
        threshold: a.threshold_ms.map(Duration::from_millis),
        critical: a.critical,
        required: a.required,
        recovery: a.recovery,
        escalation: a.escalation,
        recover_on_critical: a.recover_on_critical,
        recover_on_exit: a.recover_on_exit,
        overrides,
        line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(Path::new("v.toml"), text).unwrap_err().0
    }

    #[test]
    fn full_file_parses() {
        let f = parse(
            Path::new("v.toml"),
            r#"
[observer]
socket = "/run/varta/varta.sock"
threshold_ms = 1500
allow_gids = [20]

[[agent]]
name = "modem"
exe = "/usr/bin/modemd"
threshold_ms = 500
critical = true
recovery = ["systemctl", "restart", "modem.service"]
budget = 2
window_ms = 60000
on_exhausted = "escalate"
"#,
        )
        .unwrap();
        assert_eq!(f.observer.threshold_ms, Some(1500));
        assert_eq!(f.rules.len(), 1);
        let r = &f.rules[0];
        assert_eq!(r.line, 7);
        assert!(r.critical);
        assert_eq!(r.threshold, Some(Duration::from_millis(500)));
        let p = r.policy(&RecoveryPolicy::DEFAULT);
        assert_eq!(p.exhausted, Exhausted::Escalate);
        assert_eq!(p.budget, 2);
        assert_eq!(p.debounce, RecoveryPolicy::DEFAULT.debounce);
    }

    #[test]
    fn unknown_key_names_its_line() {
        let e = err("[[agent]]\nname = \"a\"\nthreshold_ms = 100\nbogus = 1\n");
        assert!(e.starts_with("v.toml:4:"), "{e}");
        assert!(e.contains("bogus"), "{e}");
        let e = err("[observer]\nthreshold = 5\n");
        assert!(e.starts_with("v.toml:2:"), "{e}");
    }

    #[test]
    fn wrong_types_and_syntax_name_their_line() {
        assert!(err("[observer]\n\nthreshold_ms = \"soon\"\n").starts_with("v.toml:3:"));
        assert!(err("[observer\n").starts_with("v.toml:1:"));
    }

    #[test]
    fn unworkable_rules_are_refused_with_the_rule_line() {
        let e =
            err("\n[[agent]]\nname = \"a\"\nbudget = 5\ndebounce_ms = 1000\nwindow_ms = 2000\n");
        assert!(e.starts_with("v.toml:2:") && e.contains("window"), "{e}");
        assert!(err("[[agent]]\nname = \"a\"\nrecovery = []\n").contains("non-empty argv"));
        assert!(err("[[agent]]\nthreshold_ms = 5\n").contains("matches nothing"));
        assert!(err("[[agent]]\nname = \"a\"\non_exhausted = \"explode\"\n").contains("escalate"));
        assert!(err("[[agent]]\nname = \"a\"\nexe = \"bin/x\"\n").contains("absolute"));
    }
}
