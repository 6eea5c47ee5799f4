//! CRC-32C (Castagnoli), the frame checksum, from the `crc` crate's table-driven engine.

use crc::{Crc, CRC_32_ISCSI};

/// CRC-32/ISCSI is CRC-32C: poly 0x1EDC6F41 (reflected 0x82F63B78), init/xorout 0xFFFFFFFF.
const CASTAGNOLI: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

/// CRC-32C of `bytes`.
pub fn crc32c(bytes: &[u8]) -> u32 {
    CASTAGNOLI.checksum(bytes)
}
