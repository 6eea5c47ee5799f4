//! Stable-toolchain replay of the fuzz target: every corpus seed, every single-bit flip of
//! every seed, and pseudo-random and mutated inputs from a fixed-seed generator. CI runs it
//! when libFuzzer (nightly) is unavailable; it runs in every `cargo test` here anyway.

use std::path::Path;

fn seeds() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/decode");
    let mut v: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .expect("corpus directory")
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    v.sort();
    assert!(v.len() >= 5, "corpus has {} seeds", v.len());
    v
}

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn replay_corpus_flips_and_random_inputs() {
    let iters: usize = std::env::var("FUZZ_REPLAY_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let seeds = seeds();
    let mut valid = 0;
    for s in &seeds {
        core_fuzz::decode_one(s);
        if varta_core::wire::Frame::decode_slice(s).is_ok() {
            valid += 1;
        }
        for bit in 0..s.len() * 8 {
            let mut m = s.clone();
            m[bit / 8] ^= 1 << (bit % 8);
            core_fuzz::decode_one(&m);
        }
    }
    assert!(valid >= 1, "the corpus holds valid frames");
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut buf = Vec::new();
    for i in 0..iters {
        buf.clear();
        let r = rng.next();
        if i % 2 == 0 {
            // Mutate a seed: a few random byte writes, sometimes a length change.
            buf.extend_from_slice(&seeds[(r as usize) % seeds.len()]);
            for _ in 0..1 + (r >> 8) % 4 {
                let x = rng.next();
                if !buf.is_empty() {
                    let at = (x as usize) % buf.len();
                    buf[at] = (x >> 32) as u8;
                }
            }
            match (r >> 16) % 8 {
                0 => buf.truncate(((r >> 20) % 33) as usize),
                1 => buf.push((r >> 24) as u8),
                _ => {}
            }
        } else {
            let len = ((r >> 8) % 70) as usize;
            for _ in 0..len {
                buf.push(rng.next() as u8);
            }
        }
        core_fuzz::decode_one(&buf);
    }
    println!(
        "replayed {} seeds ({} valid), their bit flips, and {} generated inputs",
        seeds.len(),
        valid,
        iters
    );
}
