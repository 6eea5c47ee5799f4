//! Stable-toolchain replay of the host fuzz targets: every corpus seed, every single-bit
//! flip of every seed, and fixed-seed random mutations. CI runs it in every fuzz smoke.

use std::path::Path;

fn seeds(dir: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(dir);
    let mut v: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .expect("corpus directory")
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    v.sort();
    assert!(v.len() >= 3, "{} has {} seeds", dir.display(), v.len());
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

fn replay(dir: &str, f: fn(&[u8])) {
    let iters: usize = std::env::var("FUZZ_REPLAY_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(|n: usize| n / 20)
        .unwrap_or(20_000);
    let seeds = seeds(dir);
    for s in &seeds {
        f(s);
        for bit in 0..s.len() * 8 {
            let mut m = s.clone();
            m[bit / 8] ^= 1 << (bit % 8);
            f(&m);
        }
    }
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    // Bytes that matter to these grammars, to reach deeper than uniform noise does.
    const SPECIAL: &[u8] = b"\t\n\r '\"\\[]=#:{}/ 0123456789";
    for _ in 0..iters {
        let r = rng.next();
        let mut buf = seeds[(r as usize) % seeds.len()].clone();
        for _ in 0..1 + (r >> 8) % 6 {
            let x = rng.next();
            let pick = (x >> 40) as usize;
            let byte = if x & 1 == 0 {
                SPECIAL[pick % SPECIAL.len()]
            } else {
                (x >> 32) as u8
            };
            match (x >> 4) % 3 {
                0 if !buf.is_empty() => {
                    let at = (x as usize >> 8) % buf.len();
                    buf[at] = byte;
                }
                1 => {
                    let at = (x as usize >> 8) % (buf.len() + 1);
                    buf.insert(at, byte);
                }
                _ if !buf.is_empty() => {
                    let at = (x as usize >> 8) % buf.len();
                    buf.truncate(at);
                }
                _ => {}
            }
        }
        f(&buf);
    }
}

#[test]
fn http_request() {
    replay("http", host_fuzz::http_request);
}

#[test]
fn audit_line() {
    replay("audit", host_fuzz::audit_line);
}

#[test]
fn exec_split() {
    replay("exec", host_fuzz::exec_split);
}

#[test]
fn config_file() {
    replay("config", host_fuzz::config_file);
}
