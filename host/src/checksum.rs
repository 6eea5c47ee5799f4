//! The frame checksum on this machine's CPU.
//!
//! The core's codec computes CRC-32C from tables (it runs on microcontrollers without a CRC
//! instruction): about 160 instructions for a frame's 28 bytes. On x86_64 with SSE4.2
//! (every x86_64 CPU since 2008, checked once at run time) the `crc32` instruction does it
//! in four steps. Other CPUs use the tables, as does an aarch64 build unless it is compiled
//! for a CPU with the CRC extension (`-C target-feature=+crc`).

/// CRC-32C of `bytes`, the same value as [`varta_core::wire::crc32c`].
#[inline]
pub fn crc32c(bytes: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the CPU has SSE4.2, checked just above.
        return unsafe { sse42(bytes) };
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "crc"))]
    return armv8(bytes);
    #[allow(unreachable_code)]
    varta_core::wire::crc32c(bytes)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
unsafe fn sse42(bytes: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u32, _mm_crc32_u64, _mm_crc32_u8};
    let w64 = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8"));
    if let Ok(b) = <&[u8; 28]>::try_from(bytes) {
        // A frame's checked bytes: three words and a half, no loop.
        let mut c = u64::from(u32::MAX);
        c = _mm_crc32_u64(c, w64(b, 0));
        c = _mm_crc32_u64(c, w64(b, 8));
        c = _mm_crc32_u64(c, w64(b, 16));
        let tail = u32::from_le_bytes([b[24], b[25], b[26], b[27]]);
        return !_mm_crc32_u32(c as u32, tail);
    }
    let mut words = bytes.chunks_exact(8);
    let mut c = u64::from(u32::MAX);
    for w in &mut words {
        c = _mm_crc32_u64(c, u64::from_le_bytes(w.try_into().expect("8 bytes")));
    }
    let mut c = c as u32;
    let mut rest = words.remainder();
    if rest.len() >= 4 {
        c = _mm_crc32_u32(
            c,
            u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")),
        );
        rest = &rest[4..];
    }
    for &b in rest {
        c = _mm_crc32_u8(c, b);
    }
    !c
}

#[cfg(all(target_arch = "aarch64", target_feature = "crc"))]
fn armv8(bytes: &[u8]) -> u32 {
    use std::arch::aarch64::{__crc32cb, __crc32cd};
    let mut words = bytes.chunks_exact(8);
    let mut c = u32::MAX;
    for w in &mut words {
        // SAFETY: the build targets a CPU with the CRC extension (cfg above).
        c = unsafe { __crc32cd(c, u64::from_le_bytes(w.try_into().expect("8 bytes"))) };
    }
    for &b in words.remainder() {
        // SAFETY: as above.
        c = unsafe { __crc32cb(c, b) };
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_codec() {
        // The check value of CRC-32C, and every length from 0 to 63 (the frame's 28 bytes
        // among them) with pseudo-random contents.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut buf = [0u8; 64];
        for round in 0..2000 {
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let n = round % buf.len();
            assert_eq!(
                crc32c(&buf[..n]),
                varta_core::wire::crc32c(&buf[..n]),
                "len {n}"
            );
        }
    }
}
