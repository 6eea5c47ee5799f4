//! Samples a one-line sysfs value (a gpio-sim line's level, an LED's brightness) at a fixed
//! period and prints the runs as `LEVEL:MS,LEVEL:MS,...`, for the hardware-in-the-loop suite
//! to compare against the LED patterns.
//!
//! Usage: varta-sample FILE [--every-ms 5] [--for-ms 3000]

use std::time::{Duration, Instant};

fn main() {
    let mut file = None;
    let mut every = Duration::from_millis(5);
    let mut total = Duration::from_millis(3000);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut ms = |name: &str| -> Duration {
            let v = args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("varta-sample: {name} needs a number of milliseconds");
                std::process::exit(2)
            });
            Duration::from_millis(v)
        };
        match a.as_str() {
            "--every-ms" => every = ms("--every-ms"),
            "--for-ms" => total = ms("--for-ms"),
            _ if file.is_none() => file = Some(a),
            _ => {
                eprintln!("usage: varta-sample FILE [--every-ms N] [--for-ms N]");
                std::process::exit(2)
            }
        }
    }
    let Some(file) = file else {
        eprintln!("usage: varta-sample FILE [--every-ms N] [--for-ms N]");
        std::process::exit(2)
    };
    let start = Instant::now();
    let mut runs: Vec<(String, Instant)> = Vec::new();
    let mut next = start;
    while start.elapsed() < total {
        let v = match std::fs::read_to_string(&file) {
            Ok(v) => v.trim().to_string(),
            Err(e) => {
                eprintln!("varta-sample: {file}: {e}");
                std::process::exit(1)
            }
        };
        let now = Instant::now();
        if runs.last().map(|(l, _)| l != &v).unwrap_or(true) {
            runs.push((v, now));
        }
        next += every;
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
    let end = Instant::now();
    let out: Vec<String> = runs
        .iter()
        .enumerate()
        .map(|(i, (l, t))| {
            let until = runs.get(i + 1).map_or(end, |n| n.1);
            format!("{}:{}", l, until.duration_since(*t).as_millis())
        })
        .collect();
    println!("{}", out.join(","));
}
