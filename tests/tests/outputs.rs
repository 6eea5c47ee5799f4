//! Black-box tests of varta-watch's other doors: sd_notify, the UDP listener, the uid/gid
//! allow-list and the node_exporter textfile.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};
use varta_core::wire::{Frame, Status};
use varta_tests::{Agent, Observer};

fn watch() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_varta-watch-uut"))
}
fn agent_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_varta-test-agent"))
}
const T: Duration = Duration::from_secs(10);

fn recv_all(sock: &UnixDatagram, until: Instant) -> Vec<(Instant, String)> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    while Instant::now() < until {
        if let Ok(n) = sock.recv(&mut buf) {
            out.push((
                Instant::now(),
                String::from_utf8_lossy(&buf[..n]).into_owned(),
            ));
        }
    }
    out
}

#[test]
fn sd_notify_ready_watchdog_status_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sd = UnixDatagram::bind(&path).unwrap();
    let obs = Observer::start_with_env(
        watch(),
        &["--threshold-ms", "300"],
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let _agent = Agent::start(
        agent_bin(),
        &obs.socket,
        &["--interval-ms", "50", "--beats", "20", "--after", "hang"],
    );
    let msgs = recv_all(&sd, Instant::now() + Duration::from_millis(2500));
    assert!(msgs[0].1.starts_with("READY=1"), "{msgs:?}");
    let dogs: Vec<&(Instant, String)> =
        msgs.iter().filter(|m| m.1.contains("WATCHDOG=1")).collect();
    // Half of WATCHDOG_USEC: every 200 ms, so ~12 in 2.5 s (generous bounds).
    assert!(
        (6..=20).contains(&dogs.len()),
        "{} keepalives: {msgs:?}",
        dogs.len()
    );
    assert!(
        dogs.iter()
            .any(|m| m.1.contains("STATUS=1 agents, 0 stalled")),
        "{msgs:?}"
    );
    // The agent hung after 1 s: the summary says so.
    assert!(
        dogs.iter()
            .any(|m| m.1.contains("STATUS=1 agents, 1 stalled")),
        "{msgs:?}"
    );
    obs.stop();
    let rest = recv_all(&sd, Instant::now() + Duration::from_millis(300));
    assert!(rest.iter().any(|m| m.1.contains("STOPPING=1")), "{rest:?}");
}

#[test]
fn udp_frames_are_tracked_but_marked_untrusted() {
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let obs = Observer::start(watch(), &["--udp-port", &port.to_string()]);
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let pid = 4_000_001; // UDP has no kernel identity: the frame's pid is all there is
    for nonce in 1..=3 {
        let f = Frame {
            status: Status::Ok,
            pid,
            timestamp: nonce,
            nonce,
            payload: 0,
        };
        u.send_to(&f.to_bytes().unwrap(), ("127.0.0.1", port))
            .unwrap();
    }
    u.send_to(b"short", ("127.0.0.1", port)).unwrap();
    assert!(obs
        .wait_row(T, |r| r.kind == "beat" && r.pid == pid && r.nonce == "3")
        .is_some());
    let st = obs.status_json();
    let a = st["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["pid"] == pid)
        .cloned()
        .unwrap();
    assert_eq!(a["transport"], "udp", "{st}");
    // Its pid is not a local process: it must not be reported as exited.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !obs.rows().iter().any(|r| r.kind == "exited"),
        "{:?}",
        obs.rows()
    );
    assert_eq!(st["observer"]["rejected"]["bad_length"], 1, "{st}");
}

#[test]
fn other_users_are_refused_unless_allowed_by_uid_or_gid() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to run an agent as another user");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    // A copy of the agent any user can run, and a socket any user can reach.
    let bin_dir = tempfile::tempdir().unwrap();
    let bin = bin_dir.path().join("agent");
    std::fs::copy(agent_bin(), &bin).unwrap();
    std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let run_as_nobody = |obs: &Observer, gid: u32| {
        std::fs::set_permissions(obs.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::process::Command::new(&bin)
            .args(["--socket", obs.socket.to_str().unwrap()])
            .args(["--interval-ms", "50", "--beats", "5"])
            .uid(65534)
            .gid(gid)
            .output()
            .unwrap()
    };
    for (flags, gid, allowed) in [
        (vec![], 65534, false),
        (vec!["--allow-uid", "65534"], 65534, true),
        (vec!["--allow-gid", "4242"], 4242, true),
    ] {
        let mut args = vec!["--socket-mode", "0666"];
        args.extend(flags.iter().copied());
        let obs = Observer::start(watch(), &args);
        let out = run_as_nobody(&obs, gid);
        assert!(out.status.success(), "{out:?}");
        std::thread::sleep(Duration::from_millis(200));
        let st = obs.status_json();
        // The agent has exited by now (and was reported so): judge by the counters.
        let o = &st["observer"];
        let refused = o["rejected"]["unauthorized"].as_u64().unwrap_or(0);
        if allowed {
            assert_eq!(
                (o["registered"].as_u64(), o["accepted"].as_u64()),
                (Some(1), Some(5)),
                "{flags:?}: {st}"
            );
            assert_eq!(refused, 0, "{flags:?}: {st}");
        } else {
            assert_eq!(
                (o["registered"].as_u64(), o["accepted"].as_u64()),
                (Some(0), Some(0)),
                "{flags:?}: {st}"
            );
            assert_eq!(refused, 5, "{flags:?}: {st}");
        }
    }
}

#[test]
fn textfile_is_rewritten_atomically_on_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let prom = dir.path().join("varta.prom");
    let obs = Observer::start(
        watch(),
        &[
            "--metrics-file",
            prom.to_str().unwrap(),
            "--metrics-interval-ms",
            "200",
        ],
    );
    let _agent = Agent::start(agent_bin(), &obs.socket, &["--interval-ms", "20"]);
    let frames = |text: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("varta_frames_received_total "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let mut seen = Vec::new();
    let end = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < end {
        if let Ok(t) = std::fs::read_to_string(&prom) {
            // Never a torn file: always whole, ending in a newline.
            assert!(t.ends_with('\n'), "torn textfile: {t:?}");
            seen.push(frames(&t));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    seen.dedup();
    // 1.5 s at 200 ms: several distinct, growing snapshots.
    assert!(seen.len() >= 4, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    // No temporary files left next to it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}
