//! CRC-32C (Castagnoli), the frame checksum, from the `crc` crate.
//!
//! The engine is chosen by measurement (`cargo bench -p core --bench wire`): the crate's
//! slice-by-16 table decodes a frame in about half the time of the byte-wise table, at the
//! cost of a 16 KiB table in read-only data. The `small-crc` feature picks the 1 KiB
//! byte-wise table for flash-constrained targets.

use crc::{Crc, CRC_32_ISCSI};

#[cfg(not(feature = "small-crc"))]
type Engine = crc::Table<16>;
#[cfg(feature = "small-crc")]
type Engine = crc::Table<1>;

/// CRC-32/ISCSI is CRC-32C: poly 0x1EDC6F41 (reflected 0x82F63B78), init/xorout 0xFFFFFFFF.
const CASTAGNOLI: Crc<u32, Engine> = Crc::<u32, Engine>::new(&CRC_32_ISCSI);

/// CRC-32C of `bytes`.
pub fn crc32c(bytes: &[u8]) -> u32 {
    CASTAGNOLI.checksum(bytes)
}
