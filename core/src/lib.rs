//! Varta core: everything about process-liveness watching that does not touch an OS.
//!
//! * [`wire`]: the VLP v0.2 heartbeat codec (32-byte frames, CRC-32C).
//! * [`time`]: nanosecond [`time::Instant`]/[`time::Duration`] and the [`time::Clock`] seam.
//! * [`tracker`]: the fixed-capacity per-agent tracker with deadline-ordered stall expiry.
//! * [`policy`]: pure decisions (rate limits, recovery budget, watchdog gate, LED pattern).
//! * [`event`]: the one event vocabulary the frontends route to logs, exporters and actions.
//!
//! The core never reads a clock: every entry point takes `now`.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[macro_use]
mod fmt;

pub mod event;
pub mod policy;
pub mod time;
pub mod tracker;
pub mod wire;

pub use event::Event;
pub use time::{Clock, ClockError, ClockSource, Duration, Instant};
pub use wire::{DecodeError, Frame, Status};
