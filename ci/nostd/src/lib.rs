//! Proof that the core builds and links with no `std` and no allocator: the codec, the
//! tracker, the gate and the LED driver are all pulled into one C-callable function.
#![no_std]

use core::convert::Infallible;
use embedded_hal::digital::{ErrorType, OutputPin};
use varta_core::policy::gate::{BootLoopRecord, GateConfig, WatchdogGate};
use varta_core::policy::led::LedDriver;
use varta_core::time::{Duration, Instant};
use varta_core::tracker::{Origin, Outcome, Tracker, TrackerConfig};
use varta_core::wire::Frame;

struct Pin;
impl ErrorType for Pin {
    type Error = Infallible;
}
impl OutputPin for Pin {
    fn set_low(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

/// Decode `frame` (32 bytes), record it in a fresh tracker at `now_ns`, evaluate the gate
/// and the LED; returns 1 when accepted, 0 when rejected, -1 on null or a decode error.
///
/// For C, `frame` is a `const uint8_t (*)[32]` that is null or points to 32 readable bytes
/// (`Option<&T>` has the ABI of a nullable pointer, so no `unsafe` is needed here).
#[no_mangle]
pub extern "C" fn varta_proof(frame: Option<&[u8; 32]>, now_ns: u64) -> i32 {
    let Some(bytes) = frame else {
        return -1;
    };
    let Ok(f) = Frame::decode(bytes) else {
        return -1;
    };
    let now = Instant::from_nanos(now_ns);
    let mut t: Tracker<8> = Tracker::new(TrackerConfig::new(Duration::from_millis(500)));
    let origin = Origin {
        kernel_pid: Some(f.pid),
        start_time: None,
        trusted: true,
    };
    let accepted = matches!(t.record(&f, &origin, now), Outcome::Accepted(_));
    let mut gate = WatchdogGate::new(GateConfig::DEFAULT, BootLoopRecord::CLEAR, now);
    let (decision, _) = gate.evaluate(&[], None, now);
    let mut led = LedDriver::new(Pin, false, now);
    let _ = led.update(now);
    i32::from(accepted && decision.pets() && t.next_deadline().is_some())
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
