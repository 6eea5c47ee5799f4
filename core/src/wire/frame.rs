//! The frame type and its encoder/decoder.

use super::{crc32c, FRAME_LEN, MAGIC, NONCE_TERMINAL, VERSION};

/// An agent's self-reported health.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum Status {
    /// Working normally.
    Ok = 0,
    /// Working, but impaired (the application decides what that means).
    Degraded = 1,
    /// Failing; with the terminal nonce, dying.
    Critical = 2,
    /// Observer-side only: the agent went silent. Never valid on the wire.
    Stall = 3,
}

impl Status {
    /// The status for a wire byte, if it is one of the four defined values.
    pub const fn from_u8(b: u8) -> Option<Status> {
        match b {
            0 => Some(Status::Ok),
            1 => Some(Status::Degraded),
            2 => Some(Status::Critical),
            3 => Some(Status::Stall),
            _ => None,
        }
    }
    /// Lower-case name as used in exports (`ok`, `degraded`, `critical`, `stall`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Degraded => "degraded",
            Status::Critical => "critical",
            Status::Stall => "stall",
        }
    }
}

impl core::fmt::Display for Status {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One decoded heartbeat.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Frame {
    /// Reported health.
    pub status: Status,
    /// Sender's pid in its own pid namespace (never 0 or 1 in a valid frame).
    pub pid: u32,
    /// Sender-local monotonic value; observers carry it but never interpret it.
    pub timestamp: u64,
    /// Per-session sequence number, 1 on a session's first beat.
    pub nonce: u64,
    /// Opaque application value.
    pub payload: u32,
}

/// Why 32 bytes are not a valid frame. Variants follow the normative decode order.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DecodeError {
    /// The datagram was not exactly 32 bytes long (carries the received length; for a
    /// truncated oversized datagram, the length the kernel reported).
    BadLength(usize),
    /// Bytes 0..2 are not `56 41`.
    BadMagic,
    /// Byte 2 is not 2 (carries the byte).
    BadVersion(u8),
    /// The stored CRC does not match the computed one.
    BadCrc {
        /// CRC computed over bytes 0..28.
        expected: u32,
        /// CRC stored in bytes 28..32.
        actual: u32,
    },
    /// Status byte above 3 (carries the byte).
    BadStatus(u8),
    /// Status 3 (Stall) is observer-side only.
    StallOnWire,
    /// pid 0 or 1 (carries the pid).
    BadPid(u32),
    /// Timestamp `u64::MAX` is reserved.
    BadTimestamp,
    /// The terminal nonce with a status other than Critical.
    BadNonce,
}

impl DecodeError {
    /// Stable snake_case name, used as a metric label and in exports.
    pub const fn reason(&self) -> &'static str {
        match self {
            DecodeError::BadLength(_) => "bad_length",
            DecodeError::BadMagic => "bad_magic",
            DecodeError::BadVersion(_) => "bad_version",
            DecodeError::BadCrc { .. } => "bad_crc",
            DecodeError::BadStatus(_) => "bad_status",
            DecodeError::StallOnWire => "stall_on_wire",
            DecodeError::BadPid(_) => "bad_pid",
            DecodeError::BadTimestamp => "bad_timestamp",
            DecodeError::BadNonce => "bad_nonce",
        }
    }
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::BadLength(n) => write!(f, "datagram is {} bytes, a frame is 32", n),
            DecodeError::BadMagic => f.write_str("bad magic (not a VLP frame)"),
            DecodeError::BadVersion(v) => write!(f, "unsupported VLP version {}", v),
            DecodeError::BadCrc { expected, actual } => {
                write!(
                    f,
                    "CRC mismatch: computed {:08x}, stored {:08x}",
                    expected, actual
                )
            }
            DecodeError::BadStatus(s) => write!(f, "invalid status byte {}", s),
            DecodeError::StallOnWire => f.write_str("status Stall is observer-only"),
            DecodeError::BadPid(p) => write!(f, "invalid pid {}", p),
            DecodeError::BadTimestamp => f.write_str("reserved timestamp u64::MAX"),
            DecodeError::BadNonce => f.write_str("terminal nonce without Critical status"),
        }
    }
}

/// Why a [`Frame`] cannot be encoded: it would not decode on the other side.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EncodeError {
    /// Status Stall is never sent.
    StallOnWire,
    /// pid 0 or 1.
    BadPid(u32),
    /// Timestamp `u64::MAX`.
    BadTimestamp,
    /// Terminal nonce without Critical.
    BadNonce,
}

#[inline(always)]
fn le_u32(b: &[u8; FRAME_LEN], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline(always)]
fn le_u64(b: &[u8; FRAME_LEN], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

impl Frame {
    /// True for the terminal frame: Critical with nonce `u64::MAX`, sent by a dying process.
    pub const fn is_terminal(&self) -> bool {
        self.nonce == NONCE_TERMINAL && matches!(self.status, Status::Critical)
    }

    /// Decode a datagram of any length: anything but 32 bytes is [`DecodeError::BadLength`].
    pub fn decode_slice(buf: &[u8]) -> Result<Frame, DecodeError> {
        Frame::decode_slice_with(buf, crc32c)
    }

    /// [`Frame::decode_slice`] with another CRC-32C engine (see [`Frame::decode_with`]).
    #[inline]
    pub fn decode_slice_with(
        buf: &[u8],
        crc: impl FnOnce(&[u8]) -> u32,
    ) -> Result<Frame, DecodeError> {
        match <&[u8; FRAME_LEN]>::try_from(buf) {
            Ok(arr) => Frame::decode_with(arr, crc),
            Err(_) => Err(DecodeError::BadLength(buf.len())),
        }
    }

    /// Decode 32 bytes, checking in the normative order (magic, version, CRC, status,
    /// stall, pid, timestamp, nonce).
    pub fn decode(b: &[u8; FRAME_LEN]) -> Result<Frame, DecodeError> {
        Frame::decode_with(b, crc32c)
    }

    /// [`Frame::decode`] with another CRC-32C engine (a frontend's hardware instruction,
    /// for one). `crc` must compute CRC-32C: the codec's own [`crc32c`] is the reference.
    #[inline]
    pub fn decode_with(
        b: &[u8; FRAME_LEN],
        crc: impl FnOnce(&[u8]) -> u32,
    ) -> Result<Frame, DecodeError> {
        if b[0] != MAGIC[0] || b[1] != MAGIC[1] {
            return Err(DecodeError::BadMagic);
        }
        if b[2] != VERSION {
            return Err(DecodeError::BadVersion(b[2]));
        }
        let expected = crc(&b[..28]);
        let actual = le_u32(b, 28);
        if expected != actual {
            return Err(DecodeError::BadCrc { expected, actual });
        }
        let status = match Status::from_u8(b[3]) {
            None => return Err(DecodeError::BadStatus(b[3])),
            Some(Status::Stall) => return Err(DecodeError::StallOnWire),
            Some(s) => s,
        };
        let pid = le_u32(b, 4);
        if pid <= 1 {
            return Err(DecodeError::BadPid(pid));
        }
        let timestamp = le_u64(b, 8);
        if timestamp == u64::MAX {
            return Err(DecodeError::BadTimestamp);
        }
        let nonce = le_u64(b, 16);
        if nonce == NONCE_TERMINAL && status != Status::Critical {
            return Err(DecodeError::BadNonce);
        }
        Ok(Frame {
            status,
            pid,
            timestamp,
            nonce,
            payload: le_u32(b, 24),
        })
    }

    /// Check that this frame would decode; the same rules as [`Frame::decode`].
    pub fn validate(&self) -> Result<(), EncodeError> {
        if self.status == Status::Stall {
            return Err(EncodeError::StallOnWire);
        }
        if self.pid <= 1 {
            return Err(EncodeError::BadPid(self.pid));
        }
        if self.timestamp == u64::MAX {
            return Err(EncodeError::BadTimestamp);
        }
        if self.nonce == NONCE_TERMINAL && self.status != Status::Critical {
            return Err(EncodeError::BadNonce);
        }
        Ok(())
    }

    /// Encode into the caller's buffer. Refuses frames that would not decode.
    pub fn encode(&self, out: &mut [u8; FRAME_LEN]) -> Result<(), EncodeError> {
        self.validate()?;
        self.encode_unchecked(out);
        Ok(())
    }

    /// Encode without validation (for producing deliberately invalid frames in tests and
    /// fuzzing; the CRC is still correct).
    pub fn encode_unchecked(&self, out: &mut [u8; FRAME_LEN]) {
        out[0..2].copy_from_slice(&MAGIC);
        out[2] = VERSION;
        out[3] = self.status as u8;
        out[4..8].copy_from_slice(&self.pid.to_le_bytes());
        out[8..16].copy_from_slice(&self.timestamp.to_le_bytes());
        out[16..24].copy_from_slice(&self.nonce.to_le_bytes());
        out[24..28].copy_from_slice(&self.payload.to_le_bytes());
        let crc = crc32c(&out[..28]);
        out[28..32].copy_from_slice(&crc.to_le_bytes());
    }

    /// Encode into a fresh array.
    pub fn to_bytes(&self) -> Result<[u8; FRAME_LEN], EncodeError> {
        let mut out = [0u8; FRAME_LEN];
        self.encode(&mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_frame() -> Frame {
        Frame {
            status: Status::Ok,
            pid: 2,
            timestamp: 0,
            nonce: 1,
            payload: 0,
        }
    }

    #[test]
    fn spec_worked_example() {
        let b = ok_frame().to_bytes().unwrap();
        assert_eq!(
            b[28..],
            [0xe4, 0x11, 0x6b, 0xaa],
            "CRC of the spec's first worked example"
        );
        assert_eq!(Frame::decode(&b), Ok(ok_frame()));
    }

    #[test]
    fn encoder_refuses_what_decoder_rejects() {
        let mut f = ok_frame();
        f.status = Status::Stall;
        assert_eq!(f.to_bytes(), Err(EncodeError::StallOnWire));
        let mut f = ok_frame();
        f.nonce = NONCE_TERMINAL;
        assert_eq!(f.to_bytes(), Err(EncodeError::BadNonce));
        f.status = Status::Critical;
        assert!(f.to_bytes().is_ok());
        assert!(f.is_terminal());
    }

    #[test]
    fn wrong_lengths() {
        assert_eq!(
            Frame::decode_slice(&[0; 31]),
            Err(DecodeError::BadLength(31))
        );
        assert_eq!(
            Frame::decode_slice(&[0; 33]),
            Err(DecodeError::BadLength(33))
        );
        assert_eq!(Frame::decode_slice(&[]), Err(DecodeError::BadLength(0)));
    }
}
