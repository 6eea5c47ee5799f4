//! The VLP v0.2 wire format: 32-byte heartbeat frames, integers little-endian, CRC-32C.
//!
//! | offset | width | field |
//! |---:|---:|---|
//! | 0 | 2 | magic `56 41` ("VA") |
//! | 2 | 1 | version `2` |
//! | 3 | 1 | status (0 Ok, 1 Degraded, 2 Critical; 3 Stall is observer-only) |
//! | 4 | 4 | pid |
//! | 8 | 8 | timestamp (sender-local, never interpreted) |
//! | 16 | 8 | nonce (`u64::MAX` = terminal, only with Critical) |
//! | 24 | 4 | payload (opaque) |
//! | 28 | 4 | CRC-32C over bytes 0..28 |
//!
//! [`Frame::decode`] applies the checks in the normative order, so the first failing check
//! names the error, exactly as the cross-language conformance vectors expect.

mod crc32c;
mod frame;

pub use crc32c::crc32c;
pub use frame::{DecodeError, EncodeError, Frame, Status};

/// Length of every VLP frame in bytes.
pub const FRAME_LEN: usize = 32;
/// The two magic bytes, "VA".
pub const MAGIC: [u8; 2] = [0x56, 0x41];
/// The protocol version byte this codec speaks.
pub const VERSION: u8 = 2;
/// The nonce of a terminal frame (Critical only): the last frame a dying process sends.
pub const NONCE_TERMINAL: u64 = u64::MAX;
