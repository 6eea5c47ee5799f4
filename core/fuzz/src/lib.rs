//! The fuzz properties, shared by the libFuzzer target (nightly, `cargo fuzz run decode`)
//! and the stable replay test (`cargo test` in this directory).

use varta_core::policy::gate::BootLoopRecord;
use varta_core::wire::{Frame, FRAME_LEN};

/// Decode arbitrary bytes as a datagram and as a stored boot-loop record. Panics only if a
/// property is broken: decoding never panics, and a frame that decodes re-encodes to the
/// same bytes (so nothing is lost or invented between wire and tracker).
pub fn decode_one(data: &[u8]) {
    if let Ok(frame) = Frame::decode_slice(data) {
        assert_eq!(data.len(), FRAME_LEN, "only 32-byte datagrams may decode");
        let again = frame.to_bytes().expect("a decoded frame encodes");
        assert_eq!(&again[..], data, "decode/encode round trip");
        assert_eq!(Frame::decode(&again), Ok(frame));
    }
    if let Ok(r) = BootLoopRecord::from_bytes(data) {
        assert_eq!(&r.to_bytes()[..], &data[..BootLoopRecord::LEN]);
    }
}
