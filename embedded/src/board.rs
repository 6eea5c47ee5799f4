//! Board profiles (`boards/<name>.toml`): the watchdog device and the timeout range its
//! driver allows, the LED, and observer defaults. The profiles in the repository's
//! `boards/` are built in; `--board-file` reads any other.

use crate::led::{parse_spec, LedSpec};
use std::path::{Path, PathBuf};
use varta_host::config::syntax::{self, Fields};

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
        let at = |e: syntax::Error| format!("{origin}:{}: {}", e.line, e.msg);
        let doc = syntax::parse(text).map_err(at)?;
        let err = |m: String| format!("{origin}: {m}");
        if let Some(e) = doc.root.first() {
            return Err(format!("{origin}:{}: `{}` outside a table", e.line, e.key));
        }
        let table = |name: &str| doc.tables.iter().find(|t| t.name == name && !t.array);
        for t in &doc.tables {
            if t.array || !["board", "watchdog", "led", "observer"].contains(&t.name.as_str()) {
                return Err(format!(
                    "{origin}:{}: unknown table {}: expected [board], [watchdog], [led], [observer]",
                    t.line, t.name
                ));
            }
        }
        let required = |name: &str| table(name).ok_or_else(|| err(format!("missing [{name}]")));
        let empty = Vec::new();
        let need = |v: Option<String>, key: &str| v.ok_or_else(|| err(format!("missing {key}")));

        let mut m = Fields::new(&required("board")?.entries);
        let name = need(m.str("name").map_err(at)?, "board.name")?;
        let description = need(m.str("description").map_err(at)?, "board.description")?;
        let sources = m.strs("sources").map_err(at)?.unwrap_or_default();
        m.finish("[board]").map_err(at)?;

        let mut w = Fields::new(&required("watchdog")?.entries);
        let device = need(w.str("device").map_err(at)?, "watchdog.device")?;
        let driver = need(w.str("driver").map_err(at)?, "watchdog.driver")?;
        let num = |v: Option<u32>, key: &str| v.ok_or_else(|| err(format!("missing {key}")));
        let timeout_s = num(w.uint("timeout_s").map_err(at)?, "watchdog.timeout_s")?;
        let min_t = num(
            w.uint("min_timeout_s").map_err(at)?,
            "watchdog.min_timeout_s",
        )?;
        let max_t = num(
            w.uint("max_timeout_s").map_err(at)?,
            "watchdog.max_timeout_s",
        )?;
        let pretimeout_s = w.uint("pretimeout_s").map_err(at)?;
        let pet_interval_ms = w.uint::<u64>("pet_interval_ms").map_err(at)?;
        let magic_close = w.bool("magic_close").map_err(at)?.unwrap_or(false);
        w.finish("[watchdog]").map_err(at)?;

        let (led, led_active_low) = match table("led") {
            Some(t) => {
                let mut l = Fields::new(&t.entries);
                let line = need(l.str("line").map_err(at)?, "led.line")?;
                let low = l.bool("active_low").map_err(at)?.unwrap_or(false);
                l.finish("[led]").map_err(at)?;
                let spec = parse_spec(&line).map_err(|e| err(format!("led.line: {e}")))?;
                (Some(spec), low)
            }
            None => (None, false),
        };

        let mut o = Fields::new(table("observer").map_or(&empty, |t| &t.entries));
        let socket = o.path("socket").map_err(at)?;
        let threshold_ms = o.uint("threshold_ms").map_err(at)?;
        let state_dir = o.path("state_dir").map_err(at)?;
        let startup_grace_s = o.uint("startup_grace_s").map_err(at)?;
        let recovery_window_s = o.uint("recovery_window_s").map_err(at)?;
        let boot_loop_limit = o.uint("boot_loop_limit").map_err(at)?;
        let stable_after_s = o.uint("stable_after_s").map_err(at)?;
        o.finish("[observer]").map_err(at)?;

        if min_t == 0 || min_t > max_t {
            return Err(err(format!(
                "watchdog timeout range {min_t}..{max_t} s is empty"
            )));
        }
        if sources.is_empty() {
            return Err(err("board.sources: say where the facts come from".into()));
        }
        let b = Board {
            name,
            description,
            sources,
            watchdog_device: PathBuf::from(device),
            watchdog_driver: driver,
            timeout_s,
            timeout_range: (min_t, max_t),
            pretimeout_s,
            pet_interval_ms: pet_interval_ms.unwrap_or(u64::from(timeout_s) * 1000 / 3),
            magic_close,
            led,
            led_active_low,
            socket,
            threshold_ms,
            state_dir: state_dir.unwrap_or_else(|| PathBuf::from("/var/lib/varta")),
            startup_grace_s: startup_grace_s.unwrap_or(60),
            recovery_window_s: recovery_window_s.unwrap_or(30),
            boot_loop_limit: boot_loop_limit.unwrap_or(3),
            stable_after_s: stable_after_s.unwrap_or(600),
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
