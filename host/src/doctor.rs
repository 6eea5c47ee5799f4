//! `varta-watch doctor`: a read-only report of what the observer needs from this machine.
//! It never opens a watchdog device (opening one would arm it).

use std::fmt::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Severity of one finding.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Fine.
    Ok,
    /// Worth knowing; the observer still works.
    Warn,
    /// The observer (or a configured feature) will not work.
    Fail,
}

/// One line of the report.
#[derive(Clone, Debug)]
pub struct Finding {
    /// Severity.
    pub level: Level,
    /// Area: socket, proc, sysctl, watchdog, led, gpio, systemd.
    pub area: &'static str,
    /// What was found, and what to do about it.
    pub text: String,
}

/// The filesystem roots the checks read (a seam for tests).
#[derive(Clone, Debug)]
pub struct Roots {
    /// Usually `/`.
    pub root: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            root: PathBuf::from("/"),
        }
    }
}

impl Roots {
    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }
}

fn f(level: Level, area: &'static str, text: impl Into<String>) -> Finding {
    Finding {
        level,
        area,
        text: text.into(),
    }
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned())
}

/// Run every check. `tracker_capacity` is the observer's (`--tracker-capacity`, or the
/// config file's `tracker_capacity`): the socket queue is judged against it.
pub fn run(roots: &Roots, socket: &Path, euid: u32, tracker_capacity: usize) -> Vec<Finding> {
    let mut out = Vec::new();
    check_socket(socket, euid, &mut out);
    check_proc(roots, &mut out);
    check_dgram_qlen(roots, tracker_capacity, &mut out);
    check_watchdogs(roots, &mut out);
    check_leds(roots, &mut out);
    check_gpio(roots, &mut out);
    check_systemd(roots, &mut out);
    out
}

fn check_socket(socket: &Path, euid: u32, out: &mut Vec<Finding>) {
    let dir = socket.parent().unwrap_or(Path::new("/"));
    match std::fs::metadata(dir) {
        Ok(m) => {
            let writable = euid == 0
                || (m.uid() == euid && m.permissions().mode() & 0o200 != 0)
                || m.permissions().mode() & 0o002 != 0;
            if writable {
                out.push(f(
                    Level::Ok,
                    "socket",
                    format!("{} is writable", dir.display()),
                ));
            } else {
                out.push(f(
                    Level::Fail,
                    "socket",
                    format!(
                        "{} is not writable by uid {} (mode {:o}, owner {}): pass --socket or fix its permissions",
                        dir.display(),
                        euid,
                        m.permissions().mode() & 0o7777,
                        m.uid()
                    ),
                ));
            }
        }
        Err(_) => out.push(f(
            Level::Warn,
            "socket",
            format!("{} does not exist yet; it will be created", dir.display()),
        )),
    }
    if let Ok(m) = std::fs::symlink_metadata(socket) {
        use std::os::unix::fs::FileTypeExt;
        if !m.file_type().is_socket() {
            out.push(f(
                Level::Fail,
                "socket",
                format!("{} exists and is not a socket", socket.display()),
            ));
        } else if std::os::unix::net::UnixDatagram::unbound()
            .and_then(|s| s.connect(socket))
            .is_ok()
        {
            out.push(f(
                Level::Ok,
                "socket",
                format!(
                    "an observer is listening on {} (mode {:o})",
                    socket.display(),
                    m.mode() & 0o777
                ),
            ));
        } else {
            out.push(f(
                Level::Warn,
                "socket",
                format!(
                    "{} is a stale socket; it will be replaced",
                    socket.display()
                ),
            ));
        }
    }
}

fn check_proc(roots: &Roots, out: &mut Vec<Finding>) {
    if roots.p("/proc/self/stat").exists() {
        out.push(f(
            Level::Ok,
            "proc",
            "/proc is mounted (agent identity, pid-reuse checks)",
        ));
    } else {
        out.push(f(
            Level::Fail,
            "proc",
            "/proc is not mounted: agent start times cannot be read",
        ));
    }
}

/// The sysctl that bounds the receive queue of every Unix datagram socket, the observer's
/// included. The kernel reads it when a socket is created, per network namespace.
pub const QLEN_SYSCTL: &str = "net.unix.max_dgram_qlen";
/// Where [`QLEN_SYSCTL`] is read.
pub const QLEN_PROC: &str = "/proc/sys/net/unix/max_dgram_qlen";
/// The value the image's sysctl drop-in sets.
pub const QLEN_RECOMMENDED: u64 = 512;
/// The drop-in the Yocto recipe and the Buildroot package install (from
/// `boards/init/sysctl/60-varta.conf`).
pub const QLEN_DROPIN: &str = "/usr/lib/sysctl.d/60-varta.conf";

/// The queue length wanted for a tracker of `capacity` agents: room for one beat of every
/// agent that may beat within one observer wake-up. Doctor cannot know how many that is, so
/// it takes all of them (a fleet beating in step), capped at [`QLEN_RECOMMENDED`], which
/// covers thousands of agents at a few Hz with spread phases.
pub fn qlen_wanted(capacity: usize) -> u64 {
    (capacity as u64).clamp(1, QLEN_RECOMMENDED)
}

/// Judge `net.unix.max_dgram_qlen` (`None`: it could not be read) against the tracker
/// capacity; `dropin_installed` says whether [`QLEN_DROPIN`] exists. Below
/// [`qlen_wanted`] it warns: bursts of beats beyond the queue are refused to their senders
/// (EAGAIN), lost, and can look like stalls.
pub fn dgram_qlen_finding(qlen: Option<u64>, capacity: usize, dropin_installed: bool) -> Finding {
    let want = qlen_wanted(capacity);
    let Some(qlen) = qlen else {
        return f(
            Level::Warn,
            "sysctl",
            format!(
                "{QLEN_SYSCTL} unknown ({QLEN_PROC} unreadable): the observer's socket queues at most that many beats; {want} or more is wanted for tracker capacity {capacity}"
            ),
        );
    };
    if qlen >= want {
        return f(
            Level::Ok,
            "sysctl",
            format!(
                "{QLEN_SYSCTL} = {qlen} (at least {want} wanted for tracker capacity {capacity})"
            ),
        );
    }
    let how = if dropin_installed {
        format!(
            "{QLEN_DROPIN} is installed but not in effect: apply it (systemd-sysctl does at boot; by hand: sysctl -p {QLEN_DROPIN}) or look for an override in /etc/sysctl.d"
        )
    } else {
        format!(
            "install {QLEN_DROPIN} (sets {QLEN_RECOMMENDED}), or sysctl -w {QLEN_SYSCTL}={want}"
        )
    };
    let pacing = if qlen < u64::from(varta_core::policy::pacing::MIN_QUEUE) {
        format!(
            " Below {} the observer also never paces its reads under load (--coalesce-ms): it wakes for every datagram.",
            varta_core::policy::pacing::MIN_QUEUE
        )
    } else {
        String::new()
    };
    f(
        Level::Warn,
        "sysctl",
        format!(
            "{QLEN_SYSCTL} = {qlen}, below {want} (tracker capacity {capacity}): the observer's socket queues at most {qlen} datagrams; when more agents beat within one observer wake-up, their sends fail (EAGAIN), the beats are lost and agents can be reported stalled. Recommended: {want} or more, set before the observer starts (the kernel reads it when the socket is created; restart a running observer): {how}.{pacing}"
        ),
    )
}

fn check_dgram_qlen(roots: &Roots, capacity: usize, out: &mut Vec<Finding>) {
    let qlen = read_trim(&roots.p(QLEN_PROC)).and_then(|s| s.parse().ok());
    out.push(dgram_qlen_finding(
        qlen,
        capacity,
        roots.p(QLEN_DROPIN).exists(),
    ));
}

fn check_watchdogs(roots: &Roots, out: &mut Vec<Finding>) {
    let class = roots.p("/sys/class/watchdog");
    let mut names: Vec<_> = std::fs::read_dir(&class)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    if names.is_empty() {
        out.push(f(
            Level::Warn,
            "watchdog",
            "no hardware watchdog in /sys/class/watchdog (load the SoC's driver, or softdog for testing)",
        ));
        return;
    }
    for n in names {
        let d = class.join(&n);
        let identity = read_trim(&d.join("identity")).unwrap_or_else(|| "?".into());
        let timeout = read_trim(&d.join("timeout")).unwrap_or_else(|| "?".into());
        let state = read_trim(&d.join("state")).unwrap_or_else(|| "?".into());
        let nowayout = read_trim(&d.join("nowayout")).unwrap_or_else(|| "?".into());
        let mut text = format!(
            "{}: {} timeout {}s state {} nowayout {}",
            n, identity, timeout, state, nowayout
        );
        if let (Some(min), Some(max)) = (
            read_trim(&d.join("min_timeout")),
            read_trim(&d.join("max_timeout")),
        ) {
            let _ = write!(text, " range {}..{}s", min, max);
        }
        let dev = roots.p(&format!("/dev/{}", n));
        match std::fs::metadata(&dev) {
            Ok(m) => {
                let _ = write!(
                    text,
                    "; {} mode {:o} uid {}",
                    dev.display(),
                    m.mode() & 0o777,
                    m.uid()
                );
            }
            Err(_) => {
                let _ = write!(text, "; {} missing", dev.display());
            }
        }
        let level = if state == "active" {
            Level::Warn
        } else {
            Level::Ok
        };
        if state == "active" {
            text.push_str(" — already running: another process owns it (systemd RuntimeWatchdogSec, procd, watchdog(8)?)");
        }
        if nowayout == "1" {
            text.push_str(" — nowayout: once opened it cannot be stopped, even by magic close");
        }
        out.push(f(level, "watchdog", text));
    }
}

fn check_leds(roots: &Roots, out: &mut Vec<Finding>) {
    let class = roots.p("/sys/class/leds");
    let mut names: Vec<_> = std::fs::read_dir(&class)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    if names.is_empty() {
        out.push(f(
            Level::Warn,
            "led",
            "no LED-class devices in /sys/class/leds",
        ));
    } else {
        for n in names {
            let trig = read_trim(&class.join(&n).join("trigger"))
                .and_then(|t| t.split(' ').find(|w| w.starts_with('[')).map(str::to_owned))
                .unwrap_or_else(|| "?".into());
            out.push(f(Level::Ok, "led", format!("{} (trigger {})", n, trig)));
        }
    }
}

fn check_gpio(roots: &Roots, out: &mut Vec<Finding>) {
    let mut chips: Vec<_> = std::fs::read_dir(roots.p("/dev"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("gpiochip"))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    chips.sort();
    if chips.is_empty() {
        out.push(f(
            Level::Warn,
            "gpio",
            "no GPIO character devices (/dev/gpiochip*)",
        ));
    }
    for c in chips {
        let name = c.file_name().unwrap().to_string_lossy().into_owned();
        let label = read_trim(&roots.p(&format!("/sys/bus/gpio/devices/{}/label", name)))
            .unwrap_or_else(|| "?".into());
        let mode = std::fs::metadata(&c).map(|m| m.mode() & 0o777).unwrap_or(0);
        out.push(f(
            Level::Ok,
            "gpio",
            format!("{} label {} mode {:o}", c.display(), label, mode),
        ));
    }
}

/// The effective `RuntimeWatchdogSec=` from systemd's config (main file, then drop-ins).
pub fn runtime_watchdog_sec(roots: &Roots) -> Option<String> {
    let mut files = vec![roots.p("/etc/systemd/system.conf")];
    for dir in [
        "/usr/lib/systemd/system.conf.d",
        "/etc/systemd/system.conf.d",
        "/run/systemd/system.conf.d",
    ] {
        let mut v: Vec<_> = std::fs::read_dir(roots.p(dir))
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "conf"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        files.extend(v);
    }
    let mut value = None;
    for file in files {
        if let Ok(s) = std::fs::read_to_string(&file) {
            for line in s.lines() {
                let line = line.trim();
                if let Some(v) = line.strip_prefix("RuntimeWatchdogSec=") {
                    value = Some(v.trim().to_owned());
                }
            }
        }
    }
    value
}

fn check_systemd(roots: &Roots, out: &mut Vec<Finding>) {
    match runtime_watchdog_sec(roots) {
        Some(v) if !matches!(v.as_str(), "0" | "off" | "" | "infinity") => out.push(f(
            Level::Warn,
            "systemd",
            format!(
                "RuntimeWatchdogSec={} : systemd owns the hardware watchdog; set RuntimeWatchdogSec=0 if varta-watchd should own it",
                v
            ),
        )),
        Some(v) => out.push(f(Level::Ok, "systemd", format!("RuntimeWatchdogSec={}", v))),
        None => out.push(f(Level::Ok, "systemd", "RuntimeWatchdogSec not set (systemd does not use the watchdog)")),
    }
}

/// Render the report as text; returns it and whether anything failed.
pub fn render(findings: &[Finding]) -> (String, bool) {
    let mut s = String::new();
    for x in findings {
        let tag = match x.level {
            Level::Ok => " ok ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        let _ = writeln!(s, "[{}] {:<8} {}", tag, x.area, x.text);
    }
    let failed = findings.iter().any(|x| x.level == Level::Fail);
    (s, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    #[test]
    fn fake_sysfs_report() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(
            r,
            "sys/class/watchdog/watchdog0/identity",
            "i6300ESB timer\n",
        );
        write(r, "sys/class/watchdog/watchdog0/timeout", "30\n");
        write(r, "sys/class/watchdog/watchdog0/state", "active\n");
        write(r, "sys/class/watchdog/watchdog0/nowayout", "1\n");
        write(
            r,
            "sys/class/leds/status/trigger",
            "none [heartbeat] timer\n",
        );
        write(
            r,
            "etc/systemd/system.conf",
            "[Manager]\nRuntimeWatchdogSec=30s\n",
        );
        write(
            r,
            "etc/systemd/system.conf.d/10-varta.conf",
            "[Manager]\nRuntimeWatchdogSec=0\n",
        );
        let roots = Roots {
            root: r.to_path_buf(),
        };
        let sock = r.join("run/varta/varta.sock");
        let findings = run(&roots, &sock, 0, 4096);
        let (text, failed) = render(&findings);
        assert!(
            text.contains("watchdog0: i6300ESB timer timeout 30s state active nowayout 1"),
            "{text}"
        );
        assert!(text.contains("another process owns it"), "{text}");
        assert!(text.contains("nowayout"), "{text}");
        assert!(text.contains("status (trigger [heartbeat])"), "{text}");
        assert!(
            text.contains("RuntimeWatchdogSec=0"),
            "drop-in overrides main file: {text}"
        );
        assert!(
            text.contains("FAIL] proc"),
            "no proc in the fake root: {text}"
        );
        assert!(
            text.contains("[warn] sysctl   net.unix.max_dgram_qlen unknown"),
            "no /proc/sys in the fake root: {text}"
        );
        assert!(failed);
    }

    #[test]
    fn qlen_wanted_follows_capacity_up_to_the_drop_in() {
        assert_eq!(qlen_wanted(1), 1);
        assert_eq!(qlen_wanted(100), 100);
        assert_eq!(qlen_wanted(512), 512);
        assert_eq!(qlen_wanted(4096), QLEN_RECOMMENDED);
        assert_eq!(qlen_wanted(65536), QLEN_RECOMMENDED);
    }

    #[test]
    fn kernel_default_qlen_warns() {
        let x = dgram_qlen_finding(Some(10), 4096, false);
        assert_eq!(x.level, Level::Warn);
        assert_eq!(x.area, "sysctl");
        for want in [
            "net.unix.max_dgram_qlen = 10, below 512 (tracker capacity 4096)",
            "queues at most 10 datagrams",
            "EAGAIN",
            "Recommended: 512 or more, set before the observer starts",
            "restart a running observer",
            "install /usr/lib/sysctl.d/60-varta.conf (sets 512)",
            "sysctl -w net.unix.max_dgram_qlen=512",
            "Below 16 the observer also never paces its reads under load",
        ] {
            assert!(x.text.contains(want), "{want:?} missing: {}", x.text);
        }
        // Long enough to pace, too short for the capacity: no word about pacing.
        let x = dgram_qlen_finding(Some(64), 4096, false);
        assert_eq!(x.level, Level::Warn);
        assert!(!x.text.contains("paces"), "{}", x.text);
    }

    #[test]
    fn qlen_from_the_drop_in_is_ok() {
        let x = dgram_qlen_finding(Some(512), 4096, true);
        assert_eq!(x.level, Level::Ok);
        assert_eq!(
            x.text,
            "net.unix.max_dgram_qlen = 512 (at least 512 wanted for tracker capacity 4096)"
        );
        assert_eq!(
            dgram_qlen_finding(Some(100_000), 65536, false).level,
            Level::Ok
        );
    }

    #[test]
    fn small_tracker_needs_a_queue_of_its_capacity() {
        assert_eq!(dgram_qlen_finding(Some(10), 8, false).level, Level::Ok);
        assert_eq!(dgram_qlen_finding(Some(10), 10, false).level, Level::Ok);
        let x = dgram_qlen_finding(Some(64), 100, false);
        assert_eq!(x.level, Level::Warn);
        assert!(
            x.text.contains("below 100 (tracker capacity 100)"),
            "{}",
            x.text
        );
        assert!(x.text.contains("Recommended: 100 or more"), "{}", x.text);
        assert!(
            x.text.contains("sysctl -w net.unix.max_dgram_qlen=100"),
            "{}",
            x.text
        );
    }

    #[test]
    fn installed_drop_in_not_in_effect() {
        let x = dgram_qlen_finding(Some(10), 4096, true);
        assert_eq!(x.level, Level::Warn);
        assert!(
            x.text
                .contains("/usr/lib/sysctl.d/60-varta.conf is installed but not in effect"),
            "{}",
            x.text
        );
        assert!(
            x.text.contains("sysctl -p /usr/lib/sysctl.d/60-varta.conf"),
            "{}",
            x.text
        );
        assert!(!x.text.contains("sysctl -w"), "{}", x.text);
    }

    #[test]
    fn unreadable_qlen_warns() {
        let x = dgram_qlen_finding(None, 4096, false);
        assert_eq!(x.level, Level::Warn);
        assert!(
            x.text.contains("net.unix.max_dgram_qlen unknown"),
            "{}",
            x.text
        );
        assert!(x.text.contains("512 or more"), "{}", x.text);
    }

    #[test]
    fn qlen_read_from_proc_and_drop_in_seen() {
        let t = tempfile::tempdir().unwrap();
        let roots = Roots {
            root: t.path().to_path_buf(),
        };
        let run_check = || {
            let mut out = Vec::new();
            check_dgram_qlen(&roots, 4096, &mut out);
            out.remove(0)
        };
        assert!(run_check().text.contains("unknown"));
        write(t.path(), "proc/sys/net/unix/max_dgram_qlen", "10\n");
        let x = run_check();
        assert_eq!(x.level, Level::Warn);
        assert!(x.text.contains("= 10, below 512"), "{}", x.text);
        assert!(x.text.contains("install /usr/lib/sysctl.d"), "{}", x.text);
        write(
            t.path(),
            "usr/lib/sysctl.d/60-varta.conf",
            "net.unix.max_dgram_qlen = 512\n",
        );
        assert!(run_check().text.contains("installed but not in effect"));
        write(t.path(), "proc/sys/net/unix/max_dgram_qlen", "512\n");
        assert_eq!(run_check().level, Level::Ok);
    }

    #[test]
    fn shipped_drop_in_sets_the_recommended_value() {
        let text = include_str!("../../boards/init/sysctl/60-varta.conf");
        let settings: Vec<_> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        assert_eq!(
            settings,
            [format!("{QLEN_SYSCTL} = {QLEN_RECOMMENDED}")],
            "boards/init/sysctl/60-varta.conf and QLEN_RECOMMENDED disagree"
        );
    }

    #[test]
    fn runtime_watchdog_warns() {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            "etc/systemd/system.conf",
            "RuntimeWatchdogSec=20s\n",
        );
        let roots = Roots {
            root: t.path().to_path_buf(),
        };
        let mut out = Vec::new();
        check_systemd(&roots, &mut out);
        assert_eq!(out[0].level, Level::Warn);
        assert!(out[0].text.contains("20s"));
    }

    #[test]
    fn non_socket_at_path_fails() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("file.sock");
        std::fs::write(&p, "x").unwrap();
        let mut out = Vec::new();
        check_socket(&p, rustix::process::geteuid().as_raw(), &mut out);
        assert!(out
            .iter()
            .any(|x| x.level == Level::Fail && x.text.contains("not a socket")));
    }
}
