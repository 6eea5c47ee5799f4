//! varta-watchd as a black box on a machine without a watchdog: its errors, and the observer
//! loop with the hardware supervisor attached (the QEMU suite in ci/hil covers real devices).

use std::path::Path;
use std::time::Duration;
use varta_tests::{run, Agent, Observer};

const WATCHD: &str = env!("CARGO_BIN_EXE_varta-watchd-uut");
const WATCH: &str = env!("CARGO_BIN_EXE_varta-watch-uut");
const AGENT: &str = env!("CARGO_BIN_EXE_varta-test-agent");

fn stderr_of(args: &[&str]) -> (i32, String) {
    let out = run(Path::new(WATCHD), args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn configuration_errors_exit_2_and_name_the_problem() {
    let (rc, e) = stderr_of(&["--board", "nope"]);
    assert_eq!(rc, 2);
    assert!(
        e.contains("unknown board \"nope\"") && e.contains("raspberrypi4"),
        "{e}"
    );
    let (rc, e) = stderr_of(&["--board", "raspberrypi4", "--watchdog-timeout", "30"]);
    assert_eq!(rc, 2);
    assert!(e.contains("outside what bcm2835-wdt allows"), "{e}");
    let (rc, e) = stderr_of(&["--led", "gpio:chip"]);
    assert_eq!(rc, 2);
    assert!(e.contains("--led") && e.contains("gpio:CHIP:OFFSET"), "{e}");
    let (rc, e) = stderr_of(&["--threshold-ms", "soon"]);
    assert_eq!(rc, 2);
    assert!(e.contains("--threshold-ms"), "{e}");
}

#[test]
fn a_missing_watchdog_device_is_a_clear_startup_failure() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (rc, e) = stderr_of(&[
        "--watchdog",
        "/nonexistent/watchdog7",
        "--state-dir",
        state.to_str().unwrap(),
        "--socket",
        dir.path().join("s.sock").to_str().unwrap(),
    ]);
    assert_eq!(rc, 1);
    assert!(
        e.contains("/nonexistent/watchdog7") && e.contains("driver loaded"),
        "{e}"
    );
    // Nothing was bound: the watchdog is opened first.
    assert!(!dir.path().join("s.sock").exists());
    let (rc, e) = stderr_of(&["--socket", dir.path().join("t.sock").to_str().unwrap()]);
    assert_eq!(rc, 1);
    assert!(e.contains("--no-watchdog"), "{e}");
}

#[test]
fn the_loop_drives_the_supervisor_and_status_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    // A reason left by a "previous boot": with no watchdog to ask, it is not trusted, but it
    // is retired so it is reported once.
    std::fs::write(
        state.join("reset-reason"),
        "wall_ms=1\nagent=db\npid=9\nwhy=critical_agent_lost\nconsecutive=1\n",
    )
    .unwrap();
    let cfg = dir.path().join("varta.toml");
    std::fs::write(
        &cfg,
        "[[agent]]\nname = \"varta-test-agent\"\ncritical = true\n",
    )
    .unwrap();
    let mut obs = Observer::start(
        Path::new(WATCHD),
        &[
            "--no-watchdog",
            "--no-led",
            "--state-dir",
            state.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            "--startup-grace-ms",
            "200",
            "--recovery-window-ms",
            "300",
            "--threshold-ms",
            "300",
        ],
    );
    assert!(state.join("reset-reason.prev").exists());
    assert!(!state.join("reset-reason").exists());
    let agent = Agent::start(
        Path::new(AGENT),
        &obs.socket,
        &["--interval-ms", "50", "--beats", "10", "--after", "hang"],
    );
    obs.bin = WATCH.into();
    std::thread::sleep(Duration::from_millis(200));
    let v = obs.status_json();
    assert_eq!(v["hardware"]["gate"], "open", "{v}");
    assert_eq!(v["hardware"]["last_reset"], "unknown (no watchdog)", "{v}");
    assert_eq!(v["hardware"]["led"], "off", "{v}");
    // The critical agent hangs: stall at ~0.8 s, window 0.3 s, then the gate closes and
    // the reason is persisted, exported and audited.
    let closed = obs.wait_row(Duration::from_secs(10), |r| r.kind == "gate_closed");
    assert!(closed.is_some(), "no gate_closed row: {:?}", obs.rows());
    let reason = std::fs::read_to_string(state.join("reset-reason")).unwrap();
    assert!(reason.contains("agent=varta-test-agent"), "{reason}");
    assert!(reason.contains(&format!("pid={}", agent.pid())), "{reason}");
    assert!(reason.contains("why=critical_agent_lost"), "{reason}");
    assert_eq!(std::fs::read(state.join("boot-loop")).unwrap().len(), 16);
    let v = obs.status_json();
    assert_eq!(v["hardware"]["gate"], "closed", "{v}");
    assert_eq!(v["hardware"]["consecutive_resets"], 1, "{v}");
    drop(agent);
    obs.stop();
}

#[test]
fn privileges_are_dropped_after_the_socket_is_bound() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to drop privileges");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let obs = Observer::start(
        Path::new(WATCHD),
        &[
            "--no-watchdog",
            "--no-led",
            "--state-dir",
            state.to_str().unwrap(),
            "--user",
            "nobody",
        ],
    );
    // The socket was bound as root; the process then runs as nobody, and the state
    // directory (written after the drop) was handed over first.
    std::thread::sleep(Duration::from_millis(200));
    let pid = obs.child.id();
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = st.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let gid_line = st.lines().find(|l| l.starts_with("Gid:")).unwrap();
    let groups = st.lines().find(|l| l.starts_with("Groups:")).unwrap();
    assert_eq!(
        uid_line.split_whitespace().skip(1).collect::<Vec<_>>(),
        ["65534"; 4],
        "{uid_line}"
    );
    assert!(
        !gid_line.split_whitespace().skip(1).any(|g| g == "0"),
        "{gid_line}"
    );
    assert_eq!(
        groups.trim(),
        "Groups:",
        "supplementary groups kept: {groups}"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&state).unwrap().uid(), 65534);
    let (rc, e) = stderr_of(&["--no-watchdog", "--user", "no-such-user-here"]);
    assert_eq!(rc, 2, "{e}");
    assert!(e.contains("--user"), "{e}");
}

#[test]
fn the_shipped_default_config_and_every_board_profile_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let f = varta_host::config::file::load(&root.join("boards/init/varta.toml"))
        .unwrap_or_else(|e| panic!("{}", e.0));
    assert_eq!(f.observer.threshold_ms, Some(2000));
    assert!(f.rules.is_empty(), "the example rules are commented out");
    // A profile path works as --board (what /etc/default/varta may hold).
    let board = root.join("boards/raspberrypi4.toml");
    let (rc, e) = stderr_of(&[
        "--board",
        board.to_str().unwrap(),
        "--watchdog-timeout",
        "16",
    ]);
    assert_eq!(rc, 2);
    assert!(e.contains("outside what bcm2835-wdt allows"), "{e}");
}
