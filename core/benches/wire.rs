//! Codec benchmarks: `cargo bench -p core --bench wire`. Target: decode ≤ 20 ns.

use divan::black_box;
use varta_core::wire::{Frame, Status};

fn main() {
    divan::main();
}

fn frame() -> [u8; 32] {
    Frame {
        status: Status::Ok,
        pid: 4242,
        timestamp: 123_456_789,
        nonce: 77,
        payload: 3,
    }
    .to_bytes()
    .unwrap()
}

#[divan::bench]
fn decode_valid(b: divan::Bencher) {
    let f = frame();
    b.bench(|| Frame::decode(black_box(&f)));
}

#[divan::bench]
fn decode_bad_crc(b: divan::Bencher) {
    let mut f = frame();
    f[20] ^= 0x40;
    b.bench(|| Frame::decode(black_box(&f)));
}

#[divan::bench]
fn encode(b: divan::Bencher) {
    let fr = Frame::decode(&frame()).unwrap();
    let mut out = [0u8; 32];
    b.bench_local(|| black_box(&fr).encode(black_box(&mut out)));
}
