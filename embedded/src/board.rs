//! Board profiles (`boards/<name>.toml`): the watchdog device and the timeout range its
//! driver allows, the LED, and observer defaults. The profiles in the repository's
//! `boards/` are built in; `--board-file` reads any other.

use crate::led::{parse_spec, LedSpec};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The profiles shipped in `boards/`, built in.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("qemu-x86_64", include_str!("../../boards/qemu-x86_64.toml")),
    (
        "qemu-aarch64-virt",
        include_str!("../../boards/qemu-aarch64-virt.toml"),
    ),
    (
        "raspberrypi4",
        include_str!("../../boards/raspberrypi4.toml"),
    ),
    (
        "beaglebone-black",
        include_str!("../../boards/beaglebone-black.toml"),
    ),
    ("imx8mm-evk", include_str!("../../boards/imx8mm-evk.toml")),
    ("stm32mp157", include_str!("../../boards/stm32mp157.toml")),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BoardToml {
    board: Meta,
    watchdog: WatchdogToml,
    led: Option<LedToml>,
    #[serde(default)]
    observer: ObserverToml,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    name: String,
    description: String,
    sources: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchdogToml {
    device: String,
    driver: String,
    timeout_s: u32,
    min_timeout_s: u32,
    max_timeout_s: u32,
    pretimeout_s: Option<u32>,
    pet_interval_ms: Option<u64>,
    #[serde(default)]
    magic_close: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LedToml {
    /// `gpio:CHIP:OFFSET`, `gpio-name:NAME` or `class:NAME`.
    line: String,
    #[serde(default)]
    active_low: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ObserverToml {
    socket: Option<PathBuf>,
    threshold_ms: Option<u64>,
    state_dir: Option<PathBuf>,
    startup_grace_s: Option<u64>,
    recovery_window_s: Option<u64>,
    boot_loop_limit: Option<u16>,
    stable_after_s: Option<u64>,
}

/// A validated board profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Board {
    /// Profile name.
    pub name: String,
    /// One line about the board.
    pub description: String,
    /// Where the profile's facts come from.
    pub sources: Vec<String>,
    /// Watchdog device node.
    pub watchdog_device: PathBuf,
    /// Kernel driver expected behind it.
    pub watchdog_driver: String,
    /// Timeout to ask for, seconds.
    pub timeout_s: u32,
    /// The driver's allowed range, seconds.
    pub timeout_range: (u32, u32),
    /// Pretimeout to ask for.
    pub pretimeout_s: Option<u32>,
    /// Wanted pet interval, ms (default: a third of the timeout).
    pub pet_interval_ms: u64,
    /// Magic close on an orderly stop.
    pub magic_close: bool,
    /// The LED, if the board has one for us.
    pub led: Option<LedSpec>,
    /// LED lit when the line is low.
    pub led_active_low: bool,
    /// Observer socket.
    pub socket: Option<PathBuf>,
    /// Default stall threshold, ms.
    pub threshold_ms: Option<u64>,
    /// Persistent state directory.
    pub state_dir: PathBuf,
    /// Startup grace, s.
    pub startup_grace_s: u64,
    /// Recovery window for critical agents, s.
    pub recovery_window_s: u64,
    /// Boot-loop guard limit (0: off).
    pub boot_loop_limit: u16,
    /// Stable run that clears the count, s.
    pub stable_after_s: u64,
}

impl Board {
    /// Parse and validate a profile; `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Board, String> {
        let t: BoardToml = toml::from_str(text).map_err(|e| format!("{origin}: {e}"))?;
        let err = |m: String| format!("{origin}: {m}");
        let w = &t.watchdog;
        if w.min_timeout_s == 0 || w.min_timeout_s > w.max_timeout_s {
            return Err(err(format!(
                "watchdog timeout range {}..{} s is empty",
                w.min_timeout_s, w.max_timeout_s
            )));
        }
        if t.board.sources.is_empty() {
            return Err(err("board.sources: say where the facts come from".into()));
        }
        let led = match &t.led {
            Some(l) => Some(parse_spec(&l.line).map_err(|e| err(format!("led.line: {e}")))?),
            None => None,
        };
        let o = &t.observer;
        let b = Board {
            name: t.board.name.clone(),
            description: t.board.description.clone(),
            sources: t.board.sources.clone(),
            watchdog_device: PathBuf::from(&w.device),
            watchdog_driver: w.driver.clone(),
            timeout_s: w.timeout_s,
            timeout_range: (w.min_timeout_s, w.max_timeout_s),
            pretimeout_s: w.pretimeout_s,
            pet_interval_ms: w
                .pet_interval_ms
                .unwrap_or(u64::from(w.timeout_s) * 1000 / 3),
            magic_close: w.magic_close,
            led,
            led_active_low: t.led.as_ref().is_some_and(|l| l.active_low),
            socket: o.socket.clone(),
            threshold_ms: o.threshold_ms,
            state_dir: o
                .state_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("/var/lib/varta")),
            startup_grace_s: o.startup_grace_s.unwrap_or(60),
            recovery_window_s: o.recovery_window_s.unwrap_or(30),
            boot_loop_limit: o.boot_loop_limit.unwrap_or(3),
            stable_after_s: o.stable_after_s.unwrap_or(600),
        };
        b.check_timeout(b.timeout_s).map_err(err)?;
        Ok(b)
    }

    /// Whether `t` seconds is within what this board's driver allows.
    pub fn check_timeout(&self, t: u32) -> Result<(), String> {
        let (lo, hi) = self.timeout_range;
        if t < lo || t > hi {
            return Err(format!(
                "watchdog timeout {t} s is outside what {} allows on {} ({lo}..{hi} s)",
                self.watchdog_driver, self.name
            ));
        }
        Ok(())
    }

    /// A built-in profile by name.
    pub fn built_in(name: &str) -> Result<Board, String> {
        match BUILT_IN.iter().find(|(n, _)| *n == name) {
            Some((n, text)) => Board::parse(&format!("board {n}"), text),
            None => Err(format!(
                "unknown board {name:?} (built in: {}; or --board-file PATH)",
                BUILT_IN
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// A profile from a file.
    pub fn from_file(path: &Path) -> Result<Board, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("{}: {}", path.display(), e))?;
        Board::parse(&path.display().to_string(), &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_profile_parses_and_matches_its_name() {
        for (name, _) in BUILT_IN {
            let b = Board::built_in(name).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&b.name, name);
            assert!(!b.sources.is_empty());
            assert!(
                b.pet_interval_ms * 2 <= u64::from(b.timeout_s) * 1000,
                "{name}"
            );
        }
        let e = Board::built_in("nope").unwrap_err();
        assert!(
            e.contains("qemu-x86_64") && e.contains("--board-file"),
            "{e}"
        );
    }

    #[test]
    fn profiles_are_validated_with_the_origin_named() {
        let base = |wd: &str, led: &str| {
            format!(
                "[board]\nname = \"x\"\ndescription = \"d\"\nsources = [\"s\"]\n\
                 [watchdog]\ndevice = \"/dev/watchdog\"\ndriver = \"drv\"\n{wd}\n{led}"
            )
        };
        let ok = base(
            "timeout_s = 10\nmin_timeout_s = 1\nmax_timeout_s = 15",
            "[led]\nline = \"class:led0\"",
        );
        let b = Board::parse("f.toml", &ok).unwrap();
        assert_eq!(b.led, Some(LedSpec::LedClass("led0".into())));
        assert_eq!(b.pet_interval_ms, 3333);
        let e = Board::parse(
            "f.toml",
            &base("timeout_s = 30\nmin_timeout_s = 1\nmax_timeout_s = 15", ""),
        )
        .unwrap_err();
        assert!(
            e.starts_with("f.toml: watchdog timeout 30 s is outside"),
            "{e}"
        );
        let e = Board::parse(
            "f.toml",
            &base(
                "timeout_s = 10\nmin_timeout_s = 1\nmax_timeout_s = 15",
                "[led]\nline = \"gpio:x\"",
            ),
        )
        .unwrap_err();
        assert!(e.contains("led.line"), "{e}");
        let e = Board::parse(
            "f.toml",
            &base(
                "timeout_s = 10\nmin_timeout_s = 1\nmax_timeout_s = 15\nbogus = 1",
                "",
            ),
        )
        .unwrap_err();
        assert!(e.contains("bogus"), "{e}");
    }
}
