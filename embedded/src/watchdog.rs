//! The Linux watchdog API (`/dev/watchdog`, Documentation/watchdog/watchdog-api.rst) over
//! rustix ioctls: identity and options, status and boot status, timeout set and read back,
//! pretimeout, keepalive, and the magic close.

use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::ioctl::{ioctl, opcode, Getter, Updater};
use std::ffi::c_int;
use std::path::{Path, PathBuf};
use varta_core::policy::pet::Watchdog;
use varta_core::time::Duration;

/// `struct watchdog_info` from `<linux/watchdog.h>`.
#[repr(C)]
#[derive(Copy, Clone)]
struct WatchdogInfo {
    options: u32,
    firmware_version: u32,
    identity: [u8; 32],
}

const GETSUPPORT: rustix::ioctl::Opcode = opcode::read::<WatchdogInfo>(b'W', 0);
const GETSTATUS: rustix::ioctl::Opcode = opcode::read::<c_int>(b'W', 1);
const GETBOOTSTATUS: rustix::ioctl::Opcode = opcode::read::<c_int>(b'W', 2);
const KEEPALIVE: rustix::ioctl::Opcode = opcode::read::<c_int>(b'W', 5);
const SETTIMEOUT: rustix::ioctl::Opcode = opcode::read_write::<c_int>(b'W', 6);
const GETTIMEOUT: rustix::ioctl::Opcode = opcode::read::<c_int>(b'W', 7);
const SETPRETIMEOUT: rustix::ioctl::Opcode = opcode::read_write::<c_int>(b'W', 8);

/// `WDIOF_*` option and status bits.
pub mod flags {
    /// Reset due to CPU overheat.
    pub const OVERHEAT: u32 = 0x0001;
    /// Fan failed.
    pub const FANFAULT: u32 = 0x0002;
    /// External relay 1.
    pub const EXTERN1: u32 = 0x0004;
    /// External relay 2.
    pub const EXTERN2: u32 = 0x0008;
    /// Power bad/power fault.
    pub const POWERUNDER: u32 = 0x0010;
    /// The card (the watchdog) previously reset the CPU.
    pub const CARDRESET: u32 = 0x0020;
    /// Power over voltage.
    pub const POWEROVER: u32 = 0x0040;
    /// The timeout can be set.
    pub const SETTIMEOUT: u32 = 0x0080;
    /// Supports the magic close character.
    pub const MAGICCLOSE: u32 = 0x0100;
    /// Supports a pretimeout.
    pub const PRETIMEOUT: u32 = 0x0200;
    /// Reports only, does not reset.
    pub const ALARMONLY: u32 = 0x0400;
    /// Keepalive ioctl supported.
    pub const KEEPALIVEPING: u32 = 0x8000;

    /// Names of the bits set in `v`.
    pub fn names(v: u32) -> String {
        const ALL: [(u32, &str); 12] = [
            (OVERHEAT, "overheat"),
            (FANFAULT, "fanfault"),
            (EXTERN1, "extern1"),
            (EXTERN2, "extern2"),
            (POWERUNDER, "powerunder"),
            (CARDRESET, "cardreset"),
            (POWEROVER, "powerover"),
            (SETTIMEOUT, "settimeout"),
            (MAGICCLOSE, "magicclose"),
            (PRETIMEOUT, "pretimeout"),
            (ALARMONLY, "alarmonly"),
            (KEEPALIVEPING, "keepaliveping"),
        ];
        let v: Vec<&str> = ALL
            .iter()
            .filter(|(b, _)| v & b != 0)
            .map(|(_, n)| *n)
            .collect();
        if v.is_empty() {
            "none".into()
        } else {
            v.join(",")
        }
    }
}

/// What the driver says about itself at open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// Device path.
    pub path: PathBuf,
    /// Driver identity (`i6300ESB timer`).
    pub identity: String,
    /// Supported options (`WDIOF_*`).
    pub options: u32,
    /// Firmware version.
    pub firmware_version: u32,
    /// Status bits now.
    pub status: u32,
    /// Why the last boot happened, as the hardware saw it (`WDIOF_*`).
    pub boot_status: u32,
    /// The timeout the driver runs with, seconds.
    pub timeout_s: u32,
    /// The pretimeout, if set.
    pub pretimeout_s: Option<u32>,
    /// The driver cannot be stopped once started (from sysfs; None when unknown).
    pub nowayout: Option<bool>,
}

impl Facts {
    /// Whether the hardware says the last reset was the watchdog's.
    pub fn watchdog_reset(&self) -> bool {
        self.boot_status & flags::CARDRESET != 0
    }

    /// Whether the driver can tell a watchdog reset from another boot at all.
    pub fn reports_boot_cause(&self) -> bool {
        self.options & flags::CARDRESET != 0
    }
}

/// Why the device could not be opened or configured.
#[derive(Debug)]
pub struct OpenError {
    /// Device path.
    pub path: PathBuf,
    /// The error.
    pub errno: Errno,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.errno)?;
        match self.errno {
            Errno::BUSY => write!(
                f,
                " (another process owns the watchdog: systemd's RuntimeWatchdogSec in \
                 /etc/systemd/system.conf, OpenWrt's procd, or the watchdog(8) daemon; \
                 only one may hold it)"
            ),
            Errno::NOENT => write!(
                f,
                " (no such device: is the driver loaded? see /sys/class/watchdog)"
            ),
            Errno::ACCESS | Errno::PERM => {
                write!(f, " (start as root; privileges are dropped after opening)")
            }
            _ => Ok(()),
        }
    }
}

static STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The daemon is up (devices open, socket bound, privileges dropped). Before this, a
/// [`LinuxWatchdog`] that is dropped (start-up failed: the socket is taken, the LED is
/// missing...) disarms itself with the magic close, so the init system can restart the
/// daemon instead of the board resetting over a configuration mistake. After it, dropping
/// leaves the countdown running.
pub fn startup_complete() {
    STARTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// An open, running watchdog device. Once start-up is complete, dropping it without
/// [`LinuxWatchdog::disarm`] leaves the countdown running (the kernel logs "watchdog did not
/// stop!"): the board resets unless another owner takes over.
#[derive(Debug)]
pub struct LinuxWatchdog {
    fd: Option<OwnedFd>,
    facts: Facts,
}

fn get_int(fd: &OwnedFd, op: rustix::ioctl::Opcode) -> Result<c_int, Errno> {
    // SAFETY (each opcode below): the Linux watchdog API defines these as reading one
    // `int`, which is what `Getter<_, c_int>` provides.
    match op {
        GETSTATUS => unsafe { ioctl(fd, Getter::<GETSTATUS, c_int>::new()) },
        GETBOOTSTATUS => unsafe { ioctl(fd, Getter::<GETBOOTSTATUS, c_int>::new()) },
        GETTIMEOUT => unsafe { ioctl(fd, Getter::<GETTIMEOUT, c_int>::new()) },
        _ => Err(Errno::INVAL),
    }
}

impl LinuxWatchdog {
    /// Open `path` (this starts the countdown on most drivers), read what the driver
    /// supports and why the last boot happened, ask for `timeout_s` (and `pretimeout_s`)
    /// and read back what the driver achieved.
    pub fn open(
        path: &Path,
        timeout_s: Option<u32>,
        pretimeout_s: Option<u32>,
    ) -> Result<Self, OpenError> {
        let err = |errno| OpenError {
            path: path.to_path_buf(),
            errno,
        };
        let fd =
            rustix::fs::open(path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty()).map_err(err)?;
        // SAFETY: WDIOC_GETSUPPORT fills a `struct watchdog_info`.
        let info = unsafe { ioctl(&fd, Getter::<GETSUPPORT, WatchdogInfo>::new()) }.map_err(err)?;
        let identity =
            String::from_utf8_lossy(info.identity.split(|&b| b == 0).next().unwrap_or_default())
                .trim()
                .to_string();
        let status = get_int(&fd, GETSTATUS).unwrap_or(0) as u32;
        let boot_status = get_int(&fd, GETBOOTSTATUS).unwrap_or(0) as u32;
        if let Some(t) = timeout_s {
            if info.options & flags::SETTIMEOUT != 0 {
                let mut v = t as c_int;
                // SAFETY: WDIOC_SETTIMEOUT reads and writes back one `int`.
                if let Err(e) = unsafe { ioctl(&fd, Updater::<SETTIMEOUT, c_int>::new(&mut v)) } {
                    log::warn!("{}: cannot set timeout {} s: {}", path.display(), t, e);
                }
            } else {
                log::warn!(
                    "{}: driver cannot change its timeout; asked {} s",
                    path.display(),
                    t
                );
            }
        }
        let timeout = get_int(&fd, GETTIMEOUT).map_err(err)?;
        if let Some(t) = timeout_s {
            if t as c_int != timeout {
                log::warn!(
                    "{}: asked for a {} s timeout, the driver runs with {} s",
                    path.display(),
                    t,
                    timeout
                );
            }
        }
        let mut pretimeout = None;
        if let Some(p) = pretimeout_s {
            if info.options & flags::PRETIMEOUT != 0 {
                let mut v = p as c_int;
                // SAFETY: WDIOC_SETPRETIMEOUT reads and writes back one `int`.
                match unsafe { ioctl(&fd, Updater::<SETPRETIMEOUT, c_int>::new(&mut v)) } {
                    Ok(()) => pretimeout = Some(v as u32),
                    Err(e) => log::warn!("{}: pretimeout {} s: {}", path.display(), p, e),
                }
            } else {
                log::info!("{}: driver has no pretimeout", path.display());
            }
        }
        let facts = Facts {
            path: path.to_path_buf(),
            identity,
            options: info.options,
            firmware_version: info.firmware_version,
            status,
            boot_status,
            timeout_s: timeout.max(0) as u32,
            pretimeout_s: pretimeout,
            nowayout: nowayout_of(path),
        };
        Ok(LinuxWatchdog {
            fd: Some(fd),
            facts,
        })
    }

    /// What the driver reported at open.
    pub fn facts(&self) -> &Facts {
        &self.facts
    }
}

/// `/sys/class/watchdog/<dev>/nowayout`, for the device node `path` (following
/// `/dev/watchdog` to the watchdog0 it aliases).
fn nowayout_of(path: &Path) -> Option<bool> {
    let name = path.file_name()?.to_str()?;
    let name = if name == "watchdog" {
        "watchdog0"
    } else {
        name
    };
    let v = std::fs::read_to_string(format!("/sys/class/watchdog/{name}/nowayout")).ok()?;
    Some(v.trim() == "1")
}

impl Watchdog for LinuxWatchdog {
    type Error = Errno;

    fn keepalive(&mut self) -> Result<(), Errno> {
        let Some(fd) = &self.fd else {
            return Err(Errno::BADF);
        };
        // SAFETY: WDIOC_KEEPALIVE is defined as reading an `int` the kernel ignores.
        unsafe { ioctl(fd, Getter::<KEEPALIVE, c_int>::new()) }.map(|_| ())
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.facts.timeout_s as u64)
    }

    /// Write the magic 'V' and close. The driver stops the countdown unless it is built
    /// `nowayout` (then the board resets after the timeout regardless).
    fn disarm(&mut self) -> Result<(), Errno> {
        let Some(fd) = self.fd.take() else {
            return Ok(());
        };
        rustix::io::write(&fd, b"V")?;
        drop(fd);
        Ok(())
    }
}

impl Drop for LinuxWatchdog {
    fn drop(&mut self) {
        if !STARTED.load(std::sync::atomic::Ordering::SeqCst) && self.fd.is_some() {
            match self.disarm() {
                Ok(()) => log::warn!(
                    "start-up failed: {} disarmed with the magic close{}",
                    self.facts.path.display(),
                    if self.facts.nowayout == Some(true) {
                        " (but the driver is nowayout: the board resets anyway)"
                    } else {
                        ""
                    }
                ),
                Err(e) => log::warn!(
                    "start-up failed and {} could not be disarmed ({e}): the board resets",
                    self.facts.path.display()
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_match_the_kernel_header() {
        // Values from <linux/watchdog.h> as compiled on x86_64 and aarch64.
        assert_eq!(u64::from(GETSUPPORT), 0x8028_5700);
        assert_eq!(u64::from(GETSTATUS), 0x8004_5701);
        assert_eq!(u64::from(GETBOOTSTATUS), 0x8004_5702);
        assert_eq!(u64::from(KEEPALIVE), 0x8004_5705);
        assert_eq!(u64::from(SETTIMEOUT), 0xc004_5706);
        assert_eq!(u64::from(GETTIMEOUT), 0x8004_5707);
        assert_eq!(u64::from(SETPRETIMEOUT), 0xc004_5708);
    }

    #[test]
    fn flag_names_and_boot_cause() {
        assert_eq!(flags::names(0), "none");
        assert_eq!(
            flags::names(flags::SETTIMEOUT | flags::MAGICCLOSE | flags::KEEPALIVEPING),
            "settimeout,magicclose,keepaliveping"
        );
        let f = Facts {
            options: flags::CARDRESET,
            boot_status: flags::CARDRESET,
            ..Facts::default()
        };
        assert!(f.watchdog_reset() && f.reports_boot_cause());
    }

    #[test]
    fn open_errors_name_the_usual_owners() {
        let e = OpenError {
            path: "/dev/watchdog".into(),
            errno: Errno::BUSY,
        };
        let s = e.to_string();
        assert!(
            s.contains("RuntimeWatchdogSec") && s.contains("procd") && s.contains("watchdog(8)")
        );
        let e = LinuxWatchdog::open(Path::new("/nonexistent/watchdog9"), None, None).unwrap_err();
        assert_eq!(e.errno, Errno::NOENT);
        assert!(e.to_string().contains("driver loaded"));
    }
}
