//! `varta-watch`: the Linux observer. See `varta-watch --help`.

use std::process::ExitCode;
use std::sync::Mutex;
use varta_core::tracker::{Tracker, TrackerConfig};
use varta_host::config::cli::{self, Command, HELP};
use varta_host::config::{Env, Settings};
use varta_host::daemon::{Daemon, RunConfig};

// Trackers live in statics (zero-initialised .bss: only the pages agents use become
// resident), so even 65 536 agents (~3.7 MB) never pass through the stack. Two storage
// sizes, each a copy of the observer's code; the requested capacity is the tracker's
// limit, exactly.
static T4K: Mutex<Tracker<4096>> = Mutex::new(Tracker::new(TrackerConfig::ZERO));
static T64K: Mutex<Tracker<65536>> = Mutex::new(Tracker::new(TrackerConfig::ZERO));

fn main() -> ExitCode {
    let env = Env::from_process();
    let cmd = match cli::parse(std::env::args_os().skip(1), &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("varta-watch: {e}");
            return ExitCode::from(2);
        }
    };
    match cmd {
        Command::Help => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("varta-watch {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Status { control, json } => status(&control, json),
        Command::Doctor {
            socket,
            tracker_capacity,
        } => {
            let findings =
                varta_host::doctor::run(&Default::default(), &socket, env.euid, tracker_capacity);
            let (text, failed) = varta_host::doctor::render(&findings);
            print!("{text}");
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::AuditVerify { files } => {
            ExitCode::from(varta_host::audit::verify::run(&files) as u8)
        }
        Command::Run(s) => run(*s),
    }
}

fn status(control: &std::path::Path, json: bool) -> ExitCode {
    match varta_host::control::request(control, "status", std::time::Duration::from_secs(5)) {
        Ok(bytes) => {
            if json {
                print!("{}", String::from_utf8_lossy(&bytes));
                return ExitCode::SUCCESS;
            }
            match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(v) => {
                    print!("{}", varta_host::status::render_table(&v));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("varta-watch status: unreadable answer: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("varta-watch status: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(s: Settings) -> ExitCode {
    varta_host::logging::init(s.log_format, s.log_level);
    if let Some(dir) = s.socket.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            if let Err(e) = std::fs::create_dir_all(dir) {
                eprintln!(
                    "varta-watch: cannot create socket directory {}: {e}",
                    dir.display()
                );
                return ExitCode::FAILURE;
            }
        }
    }
    let cap = s.tracker_capacity;
    let cfg = RunConfig::from_settings(s);
    let result = if cap <= 4096 {
        let mut t = T4K.lock().unwrap_or_else(|p| p.into_inner());
        t.set_limit(cap);
        serve(Daemon::new(cfg, t))
    } else {
        let mut t = T64K.lock().unwrap_or_else(|p| p.into_inner());
        t.set_limit(cap);
        serve(Daemon::new(cfg, t))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("varta-watch: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve<const N: usize>(d: Result<Daemon<N>, String>) -> Result<(), String> {
    let mut d = d?;
    d.run().map(|_| ())
}
