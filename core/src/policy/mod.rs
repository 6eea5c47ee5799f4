//! Pure policies: decisions over state and `now`, no I/O.
//!
//! * [`rate`]: per-agent and global rate limits (never applied to Critical/terminal frames).
//! * [`recovery`]: debounce, restart budget and the escalation ladder.
//! * [`gate`]: the hardware-watchdog gate and the boot-loop guard.
//! * [`led`]: LED pattern generation over `embedded_hal::digital::OutputPin`.
//! * [`pet`]: the hardware watchdog device trait and the keepalive schedule.
//! * [`pacing`]: when the observer reads its socket (on every datagram, or on a timer under load).

pub mod gate;
pub mod led;
pub mod pacing;
pub mod pet;
pub mod rate;
pub mod recovery;
