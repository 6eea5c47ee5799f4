//! A recovery command for black-box tests: records how it was started (argv, environment,
//! working directory, pid) as one JSON line, then does what it is told: exit with a code,
//! sleep, ignore SIGTERM, or flood its stdout.
//!
//! varta-recovery-probe [--log FILE] [--exit N] [--sleep-ms MS] [--ignore-term] [--flood] [ARGS...]

use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let mut log: Option<String> = None;
    let mut code = 0;
    let mut sleep = Duration::ZERO;
    let mut ignore_term = false;
    let mut flood = false;
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--log" => log = it.next().cloned(),
            "--exit" => code = it.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            "--sleep-ms" => {
                sleep = Duration::from_millis(it.next().and_then(|v| v.parse().ok()).unwrap_or(0))
            }
            "--ignore-term" => ignore_term = true,
            "--flood" => flood = true,
            _ => {}
        }
    }
    if ignore_term {
        // A handler that only sets a flag: SIGTERM no longer ends the process.
        let _ = signal_hook::flag::register(
            signal_hook::consts::SIGTERM,
            Arc::new(AtomicBool::new(false)),
        );
    }
    if let Some(path) = log {
        let mut env: Vec<(String, String)> = std::env::vars().collect();
        env.sort();
        let rec = serde_json::json!({
            "argv": argv,
            "env": env.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect::<serde_json::Map<_, _>>(),
            "cwd": std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default(),
            "pid": std::process::id(),
            "pgid": rustix::process::getpgrp().as_raw_nonzero().get(),
            "uid": rustix::process::getuid().as_raw(),
            "gid": rustix::process::getgid().as_raw(),
        });
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("open probe log");
        // One write per record so concurrent probes do not interleave.
        f.write_all(format!("{rec}\n").as_bytes())
            .expect("write probe log");
    }
    println!("probe started");
    eprintln!("probe stderr line");
    if flood {
        let out = std::io::stdout();
        let mut out = out.lock();
        let line = "flood flood flood flood flood flood flood flood flood flood flood flood\n";
        loop {
            if out.write_all(line.as_bytes()).is_err() {
                std::process::exit(3);
            }
        }
    }
    if !sleep.is_zero() {
        let end = std::time::Instant::now() + sleep;
        while std::time::Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    std::process::exit(code);
}
