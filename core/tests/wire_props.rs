//! Codec properties over arbitrary input.

use proptest::prelude::*;
use varta_core::wire::{DecodeError, Frame, Status};

fn valid_frame() -> impl Strategy<Value = Frame> {
    (0u8..3, 2u32.., 0u64..u64::MAX, any::<u64>(), any::<u32>()).prop_map(
        |(s, pid, ts, nonce, payload)| {
            let status = Status::from_u8(s).unwrap();
            let nonce = if nonce == u64::MAX && status != Status::Critical {
                0
            } else {
                nonce
            };
            Frame {
                status,
                pid,
                timestamp: ts,
                nonce,
                payload,
            }
        },
    )
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in any::<[u8; 32]>()) {
        let _ = Frame::decode(&bytes);
    }

    #[test]
    fn decode_slice_any_length(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let r = Frame::decode_slice(&bytes);
        if bytes.len() != 32 {
            prop_assert_eq!(r, Err(DecodeError::BadLength(bytes.len())));
        }
    }

    #[test]
    fn roundtrip(f in valid_frame()) {
        let b = f.to_bytes().unwrap();
        prop_assert_eq!(Frame::decode(&b), Ok(f));
    }

    #[test]
    fn accepted_frames_reencode_identically(bytes in any::<[u8; 32]>()) {
        if let Ok(f) = Frame::decode(&bytes) {
            prop_assert_eq!(f.to_bytes().unwrap(), bytes);
        }
    }

    #[test]
    fn every_single_bit_flip_is_rejected(f in valid_frame(), bit in 0usize..256) {
        let mut b = f.to_bytes().unwrap();
        b[bit / 8] ^= 1 << (bit % 8);
        let r = Frame::decode(&b);
        prop_assert!(r.is_err(), "flip of bit {} accepted", bit);
        match bit / 8 {
            0 | 1 => prop_assert_eq!(r, Err(DecodeError::BadMagic)),
            2 => prop_assert!(matches!(r, Err(DecodeError::BadVersion(_))), "got {:?}", r),
            _ => prop_assert!(matches!(r, Err(DecodeError::BadCrc { .. })), "got {:?}", r),
        }
    }
}
