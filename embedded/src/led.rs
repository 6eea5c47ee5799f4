//! The status LED's pin: a GPIO character-device line (by chip and offset, or by line
//! name) through `gpiocdev`, or an LED-class device (`/sys/class/leds/NAME/brightness`).
//! Both implement `embedded_hal::digital::OutputPin`, which the core's pattern generator
//! drives.

use embedded_hal::digital::{ErrorKind, ErrorType, OutputPin};
use std::io::Write;
use std::path::PathBuf;

/// Where the LED is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LedSpec {
    /// A GPIO line on `chip` (`gpiochip0` or a path) at `offset`.
    GpioOffset {
        /// Chip name or path.
        chip: String,
        /// Line offset.
        offset: u32,
    },
    /// A GPIO line found by its name (from the device tree `gpio-line-names`).
    GpioName(String),
    /// An LED-class device name under `/sys/class/leds`.
    LedClass(String),
}

impl std::fmt::Display for LedSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LedSpec::GpioOffset { chip, offset } => write!(f, "GPIO {chip} line {offset}"),
            LedSpec::GpioName(n) => write!(f, "GPIO line \"{n}\""),
            LedSpec::LedClass(n) => write!(f, "LED /sys/class/leds/{n}"),
        }
    }
}

/// A pin error (the OS error, kept for the log).
#[derive(Debug)]
pub struct PinError(pub String);

impl embedded_hal::digital::Error for PinError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

impl std::fmt::Display for PinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An opened LED.
#[derive(Debug)]
pub enum LedPin {
    /// A requested GPIO output line.
    Gpio {
        /// The line request (held for the process's life).
        req: gpiocdev::Request,
        /// Its offset.
        offset: u32,
    },
    /// An LED-class brightness file, and the brightness to write for "on".
    Class {
        /// The open brightness file.
        file: std::fs::File,
        /// `max_brightness`.
        on: u32,
    },
}

const CONSUMER: &str = "varta-watchd";

fn chip_path(chip: &str) -> PathBuf {
    if chip.contains('/') {
        PathBuf::from(chip)
    } else {
        PathBuf::from("/dev").join(chip)
    }
}

impl LedPin {
    /// Open the LED, initially off.
    pub fn open(spec: &LedSpec) -> Result<LedPin, String> {
        let gpio = |chip: PathBuf, offset: u32| -> Result<LedPin, String> {
            let req = gpiocdev::Request::builder()
                .on_chip(&chip)
                .with_consumer(CONSUMER)
                .with_line(offset)
                .as_output(gpiocdev::line::Value::Inactive)
                .request()
                .map_err(|e| format!("{} line {}: {}", chip.display(), offset, e))?;
            Ok(LedPin::Gpio { req, offset })
        };
        match spec {
            LedSpec::GpioOffset { chip, offset } => gpio(chip_path(chip), *offset),
            LedSpec::GpioName(name) => {
                let found = gpiocdev::find_named_line(name)
                    .ok_or_else(|| format!("no GPIO line named \"{name}\" on any chip"))?;
                gpio(found.chip, found.info.offset)
            }
            LedSpec::LedClass(name) => {
                let dir = PathBuf::from("/sys/class/leds").join(name);
                let max = std::fs::read_to_string(dir.join("max_brightness"))
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok())
                    .unwrap_or(1)
                    .max(1);
                // Take the LED from any kernel trigger (heartbeat, mmc0...) first.
                let _ = std::fs::write(dir.join("trigger"), "none");
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(dir.join("brightness"))
                    .map_err(|e| format!("{}: {}", dir.join("brightness").display(), e))?;
                Ok(LedPin::Class { file, on: max })
            }
        }
    }

    fn set(&mut self, high: bool) -> Result<(), PinError> {
        match self {
            LedPin::Gpio { req, offset } => {
                let v = if high {
                    gpiocdev::line::Value::Active
                } else {
                    gpiocdev::line::Value::Inactive
                };
                req.set_value(*offset, v)
                    .map(|_| ())
                    .map_err(|e| PinError(e.to_string()))
            }
            LedPin::Class { file, on } => {
                let v = if high { *on } else { 0 };
                file.write_all(format!("{v}\n").as_bytes())
                    .map_err(|e| PinError(e.to_string()))
            }
        }
    }
}

impl ErrorType for LedPin {
    type Error = PinError;
}

impl OutputPin for LedPin {
    fn set_low(&mut self) -> Result<(), PinError> {
        self.set(false)
    }
    fn set_high(&mut self) -> Result<(), PinError> {
        self.set(true)
    }
}

/// Parse `--led`: `gpio:CHIP:OFFSET`, `gpio-name:NAME` or `class:NAME`.
pub fn parse_spec(s: &str) -> Result<LedSpec, String> {
    let bad = || {
        format!("{s:?}: expected gpio:CHIP:OFFSET, gpio-name:NAME or class:NAME (e.g. gpio:gpiochip0:3)")
    };
    let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
    match kind {
        "gpio" => {
            let (chip, off) = rest.rsplit_once(':').ok_or_else(bad)?;
            let offset = off.parse().map_err(|_| bad())?;
            if chip.is_empty() {
                return Err(bad());
            }
            Ok(LedSpec::GpioOffset {
                chip: chip.to_string(),
                offset,
            })
        }
        "gpio-name" if !rest.is_empty() => Ok(LedSpec::GpioName(rest.to_string())),
        "class" if !rest.is_empty() && !rest.contains('/') => {
            Ok(LedSpec::LedClass(rest.to_string()))
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn led_specs_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!(
            parse_spec("gpio:gpiochip0:3").unwrap(),
            LedSpec::GpioOffset {
                chip: "gpiochip0".into(),
                offset: 3
            }
        );
        assert_eq!(
            parse_spec("gpio:/dev/gpiochip2:17").unwrap(),
            LedSpec::GpioOffset {
                chip: "/dev/gpiochip2".into(),
                offset: 17
            }
        );
        assert_eq!(
            parse_spec("gpio-name:status-led").unwrap(),
            LedSpec::GpioName("status-led".into())
        );
        assert_eq!(
            parse_spec("class:led0").unwrap(),
            LedSpec::LedClass("led0".into())
        );
        for bad in [
            "",
            "gpio",
            "gpio:chip",
            "gpio::3",
            "gpio:c:x",
            "class:",
            "class:../x",
            "x:y",
        ] {
            let e = parse_spec(bad).unwrap_err();
            assert!(e.contains("gpio:CHIP:OFFSET"), "{bad}: {e}");
        }
    }

    #[test]
    fn led_class_pin_writes_brightness() {
        // The LED class needs sysfs; exercise the file half with a plain file instead.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("brightness");
        std::fs::write(&p, "").unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        let mut pin = LedPin::Class { file, on: 255 };
        pin.set_high().unwrap();
        pin.set_low().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "255\n0\n");
    }

    #[test]
    fn missing_gpio_chip_is_a_clear_error() {
        let e = LedPin::open(&LedSpec::GpioOffset {
            chip: "/nonexistent/gpiochip9".into(),
            offset: 1,
        })
        .unwrap_err();
        assert!(e.contains("/nonexistent/gpiochip9 line 1"), "{e}");
    }
}
