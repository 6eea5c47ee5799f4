//! Tracker benchmarks: `cargo bench -p core --bench tracker`.
//! Targets: `record` ≤ 60 ns and flat from 1 to 65 536 agents.

use divan::black_box;
use std::sync::Mutex;
use varta_core::time::{Duration, Instant};
use varta_core::tracker::{Origin, Tracker, TrackerConfig};
use varta_core::wire::{Frame, Status};

fn main() {
    divan::main();
}

// Statics: a 65 536-agent tracker is ~4 MB, too big to build on a bench thread's stack.
static SMALL: Mutex<Tracker<4096>> = Mutex::new(Tracker::new(TrackerConfig::ZERO));
static BIG: Mutex<Tracker<65536>> = Mutex::new(Tracker::new(TrackerConfig::ZERO));

fn frame(pid: u32, nonce: u64) -> Frame {
    Frame {
        status: Status::Ok,
        pid,
        timestamp: 0,
        nonce,
        payload: 0,
    }
}

fn origin(pid: u32) -> Origin {
    Origin {
        kernel_pid: Some(pid),
        start_time: None,
        trusted: true,
    }
}

/// Steady state: `agents` registered, then beats round-robin over them.
fn steady<const N: usize>(t: &mut Tracker<N>, agents: u32, b: divan::Bencher) {
    *t = Tracker::new(TrackerConfig::new(Duration::from_secs(3600)));
    let mut now = 1u64;
    for pid in 0..agents {
        t.record(
            &frame(pid + 2, 1),
            &origin(pid + 2),
            Instant::from_nanos(now),
        );
        now += 1;
    }
    let mut i = 0u32;
    let mut nonce = 2u64;
    b.bench_local(|| {
        let pid = i + 2;
        i += 1;
        if i == agents {
            i = 0;
            nonce += 1;
        }
        now += 1;
        black_box(t.record(
            black_box(&frame(pid, nonce)),
            &origin(pid),
            Instant::from_nanos(now),
        ))
    });
}

#[divan::bench(args = [1, 100, 1000, 4096])]
fn record_4096(b: divan::Bencher, agents: u32) {
    steady(&mut SMALL.lock().unwrap(), agents, b);
}

#[divan::bench(args = [4096, 65536])]
fn record_65536(b: divan::Bencher, agents: u32) {
    steady(&mut BIG.lock().unwrap(), agents, b);
}

#[divan::bench]
fn next_deadline_4096(b: divan::Bencher) {
    let mut t = SMALL.lock().unwrap();
    *t = Tracker::new(TrackerConfig::new(Duration::from_secs(1)));
    for pid in 0..4096u32 {
        t.record(
            &frame(pid + 2, 1),
            &origin(pid + 2),
            Instant::from_nanos(pid as u64 + 1),
        );
    }
    b.bench_local(|| black_box(t.next_deadline()));
}

#[divan::bench]
fn expire_one_of_4096(b: divan::Bencher) {
    let mut t = SMALL.lock().unwrap();
    *t = Tracker::new(TrackerConfig::new(Duration::from_millis(1)));
    for pid in 0..4096u32 {
        t.record(
            &frame(pid + 2, 1),
            &origin(pid + 2),
            Instant::from_nanos(pid as u64 + 1),
        );
    }
    let mut now = 10_000_000u64;
    let mut nonce = 2;
    let mut pid = 2u32;
    b.bench_local(|| {
        // Expire the oldest, then bring it back so the tracker stays full of candidates.
        now += 1;
        let s = t.expire(Instant::from_nanos(now));
        if let Some(s) = s {
            pid = s.pid;
        }
        nonce += 1;
        t.record(
            &frame(pid, nonce),
            &origin(pid),
            Instant::from_nanos(now - 5_000_000),
        );
        black_box(s)
    });
}
