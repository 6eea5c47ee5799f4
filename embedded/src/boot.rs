//! Why the board last booted, as varta-watchd reports it at start-up ("last reset: ..."):
//! the watchdog driver's boot status (`WDIOC_GETBOOTSTATUS`, its `WDIOF_CARDRESET` bit) read
//! together with the reset-reason record the previous boot left in the state directory
//! ([`crate::reset`]), and whether that boot counts as a watchdog reset for the boot-loop
//! guard.

use crate::reset::ResetReason;
use crate::watchdog::Facts;

/// The last boot, as found at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastReset {
    /// Counts as a watchdog reset for the boot-loop guard.
    pub by_watchdog: bool,
    /// The sentence logged after "last reset: " and shown in the status.
    pub text: String,
}

impl LastReset {
    fn new(by_watchdog: bool, text: impl Into<String>) -> Self {
        LastReset {
            by_watchdog,
            text: text.into(),
        }
    }
}

/// What the driver (`None`: no watchdog is open) and the reset-reason record say about the
/// last boot. A record that was missing or could not be parsed is `None`.
pub fn describe(facts: Option<&Facts>, reason: Option<&ResetReason>) -> LastReset {
    let Some(f) = facts else {
        return LastReset::new(false, "unknown (no watchdog)");
    };
    match (f.watchdog_reset(), reason) {
        (true, Some(r)) => LastReset::new(true, format!("watchdog, because {}", r.summary())),
        (true, None) => LastReset::new(
            true,
            "watchdog, with no reason recorded (the observer was killed or the system hung)",
        ),
        // The driver cannot tell: a reason on disk means the gate closed and, with no
        // orderly stop since, the watchdog is the likeliest cause.
        (false, Some(r)) if !f.reports_boot_cause() => LastReset::new(
            true,
            format!(
                "watchdog (by the record; this driver does not report the boot cause), \
                 because {}",
                r.summary()
            ),
        ),
        (false, Some(r)) => LastReset::new(
            false,
            format!(
                "not the watchdog (the gate had closed for {}, but the board was reset \
                 another way first)",
                r.summary()
            ),
        ),
        (false, None) if f.reports_boot_cause() => LastReset::new(false, "not the watchdog"),
        (false, None) => {
            LastReset::new(false, "unknown (the driver does not report the boot cause)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reset::StateDir;
    use crate::watchdog::flags;

    /// A driver that reports the boot cause (imx2_wdt, omap_wdt, ...), with `boot_status`.
    fn reporting(boot_status: u32) -> Facts {
        Facts {
            options: flags::SETTIMEOUT
                | flags::MAGICCLOSE
                | flags::KEEPALIVEPING
                | flags::CARDRESET,
            boot_status,
            ..Facts::default()
        }
    }

    /// A driver that cannot tell (i6300esb: SETTIMEOUT|KEEPALIVEPING|MAGICCLOSE).
    fn silent() -> Facts {
        Facts {
            options: flags::SETTIMEOUT | flags::MAGICCLOSE | flags::KEEPALIVEPING,
            ..Facts::default()
        }
    }

    fn crit() -> ResetReason {
        ResetReason {
            wall_ms: 1_764_000_000_000,
            agent: "crit-agent".into(),
            pid: 77,
            why: "critical_agent_lost".into(),
            consecutive: 3,
        }
    }

    #[test]
    fn cardreset_with_a_record_names_the_agent_and_the_reason() {
        let got = describe(Some(&reporting(flags::CARDRESET)), Some(&crit()));
        assert_eq!(
            got,
            LastReset::new(
                true,
                "watchdog, because crit-agent (pid 77) critical_agent_lost"
            )
        );
        // Other boot-status bits beside CARDRESET change nothing.
        let got = describe(
            Some(&reporting(flags::CARDRESET | flags::OVERHEAT)),
            Some(&crit()),
        );
        assert_eq!(
            got.text,
            "watchdog, because crit-agent (pid 77) critical_agent_lost"
        );
    }

    #[test]
    fn a_reset_blamed_on_the_observer_says_so() {
        let r = ResetReason {
            agent: String::new(),
            why: "observer_stalled".into(),
            ..crit()
        };
        let got = describe(Some(&reporting(flags::CARDRESET)), Some(&r));
        assert_eq!(
            got,
            LastReset::new(true, "watchdog, because the observer observer_stalled")
        );
    }

    #[test]
    fn cardreset_without_a_record() {
        let got = describe(Some(&reporting(flags::CARDRESET)), None);
        assert_eq!(
            got,
            LastReset::new(
                true,
                "watchdog, with no reason recorded (the observer was killed or the system hung)"
            )
        );
    }

    #[test]
    fn record_without_cardreset_falls_back_to_the_record_when_the_driver_cannot_tell() {
        let got = describe(Some(&silent()), Some(&crit()));
        assert_eq!(
            got,
            LastReset::new(
                true,
                "watchdog (by the record; this driver does not report the boot cause), \
                 because crit-agent (pid 77) critical_agent_lost"
            )
        );
    }

    #[test]
    fn record_without_cardreset_from_a_driver_that_reports_is_not_the_watchdog() {
        // The gate had closed, but the hardware says the board came up another way (a
        // power cut or reboot within the timeout): not counted for the boot-loop guard.
        for boot_status in [0, flags::POWERUNDER, flags::OVERHEAT] {
            let got = describe(Some(&reporting(boot_status)), Some(&crit()));
            assert_eq!(
                got,
                LastReset::new(
                    false,
                    "not the watchdog (the gate had closed for crit-agent (pid 77) \
                     critical_agent_lost, but the board was reset another way first)"
                ),
                "boot status {boot_status:#x}"
            );
        }
    }

    #[test]
    fn neither_cardreset_nor_a_record() {
        assert_eq!(
            describe(Some(&reporting(0)), None),
            LastReset::new(false, "not the watchdog")
        );
        assert_eq!(
            describe(Some(&silent()), None),
            LastReset::new(false, "unknown (the driver does not report the boot cause)")
        );
    }

    #[test]
    fn no_watchdog_ignores_the_record() {
        assert_eq!(
            describe(None, Some(&crit())),
            LastReset::new(false, "unknown (no watchdog)")
        );
        assert_eq!(
            describe(None, None),
            LastReset::new(false, "unknown (no watchdog)")
        );
    }

    #[test]
    fn corrupt_or_missing_record_from_the_state_directory_is_no_record() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::open(dir.path()).unwrap();
        let cases: [(&str, Option<&[u8]>); 5] = [
            ("missing", None),
            ("garbage", Some(b"\0\x7fnot a record\n")),
            (
                "no why",
                Some(b"wall_ms=1\nagent=crit-agent\npid=77\nconsecutive=1\n"),
            ),
            (
                "bad pid",
                Some(b"agent=crit-agent\npid=seventy\nwhy=critical_agent_lost\n"),
            ),
            (
                "not UTF-8",
                Some(b"agent=crit-\xff\nwhy=critical_agent_lost\n"),
            ),
        ];
        for (what, text) in cases {
            if let Some(t) = text {
                std::fs::write(dir.path().join("reset-reason"), t).unwrap();
            }
            let found = s.take();
            assert_eq!(found.reason, None, "{what}");
            let reason = found.reason.as_ref();
            assert_eq!(
                describe(Some(&reporting(flags::CARDRESET)), reason),
                LastReset::new(
                    true,
                    "watchdog, with no reason recorded (the observer was killed or the system hung)"
                ),
                "{what}"
            );
            assert_eq!(
                describe(Some(&reporting(0)), reason),
                LastReset::new(false, "not the watchdog"),
                "{what}"
            );
            assert_eq!(
                describe(Some(&silent()), reason),
                LastReset::new(false, "unknown (the driver does not report the boot cause)"),
                "{what}"
            );
        }
        // A corrupt boot-loop record next to a good reason: the reason still counts.
        std::fs::write(dir.path().join("boot-loop"), b"VRBL\x01garbage").unwrap();
        std::fs::write(dir.path().join("reset-reason"), crit().to_text()).unwrap();
        let found = s.take();
        assert!(found.record.is_none() && found.record_error.is_some());
        assert_eq!(
            describe(Some(&reporting(flags::CARDRESET)), found.reason.as_ref()).text,
            "watchdog, because crit-agent (pid 77) critical_agent_lost"
        );
    }
}
