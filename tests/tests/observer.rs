//! Black-box tests of varta-watch: spawn the binary, drive it with real agent processes,
//! read what it exports. Timing bounds here are deliberately generous; precise lateness is
//! measured by the benchmark harness, not asserted in tests.

use std::path::Path;
use std::time::{Duration, Instant};
use varta_core::wire::{Frame, Status};
use varta_tests::{run, Agent, Observer};

fn watch() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_varta-watch-uut"))
}
fn agent_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_varta-test-agent"))
}

const T: Duration = Duration::from_secs(10);

#[test]
fn beats_are_seen_and_reported_in_status() {
    let obs = Observer::start(watch(), &[]);
    let a = Agent::start(
        agent_bin(),
        &obs.socket,
        &["--beats", "5", "--interval-ms", "20", "--after", "hang"],
    );
    let pid = a.pid();
    assert!(obs
        .wait_row(T, |r| r.kind == "register" && r.pid == pid)
        .is_some());
    let beat = obs
        .wait_row(T, |r| r.kind == "beat" && r.pid == pid && r.nonce == "5")
        .expect("fifth beat exported");
    assert_eq!(beat.status, "ok");
    let st = obs.status_json();
    let agents = st["agents"].as_array().expect("agents array");
    let me = agents
        .iter()
        .find(|x| x["pid"] == pid)
        .expect("agent in status");
    assert_eq!(me["beats"], 5);
    assert_eq!(me["name"], "varta-test-agen", "name is the process comm");
}

#[test]
fn stall_fires_after_threshold_once_then_recovers() {
    let obs = Observer::start(watch(), &["--threshold-ms", "300"]);
    let a = Agent::start(
        agent_bin(),
        &obs.socket,
        &[
            "--beats",
            "3",
            "--interval-ms",
            "50",
            "--after",
            "pause",
            "--pause-ms",
            "1500",
        ],
    );
    let pid = a.pid();
    let last = obs
        .wait_row(T, |r| r.kind == "beat" && r.pid == pid && r.nonce == "3")
        .expect("third beat");
    let stall = obs
        .wait_row(T, |r| r.kind == "stall" && r.pid == pid)
        .expect("stall");
    let late = Duration::from_nanos(stall.ns - last.ns);
    assert!(
        late >= Duration::from_millis(300),
        "stall before threshold: {late:?}"
    );
    assert!(
        late < Duration::from_millis(1300),
        "stall far too late: {late:?}"
    );
    let rec = obs
        .wait_row(T, |r| r.kind == "recovered" && r.pid == pid)
        .expect("recovered");
    assert!(rec.ns > stall.ns);
    let stalls = obs
        .rows()
        .iter()
        .filter(|r| r.kind == "stall" && r.pid == pid)
        .count();
    assert_eq!(stalls, 1, "one stall per silence");
}

#[test]
fn critical_status_is_its_own_event() {
    let obs = Observer::start(watch(), &[]);
    let a = Agent::start(
        agent_bin(),
        &obs.socket,
        &[
            "--beats",
            "2",
            "--interval-ms",
            "20",
            "--after",
            "critical",
            "--payload",
            "77",
        ],
    );
    let pid = a.pid();
    let c = obs
        .wait_row(T, |r| r.kind == "critical" && r.pid == pid)
        .expect("critical");
    assert_eq!(c.payload, "77");
    assert!(obs
        .wait_row(T, |r| r.kind == "beat"
            && r.pid == pid
            && r.status == "critical")
        .is_some());
}

#[test]
fn terminal_frame_acted_on_at_once_and_never_stalls() {
    let obs = Observer::start(watch(), &["--threshold-ms", "400"]);
    let a = Agent::start(
        agent_bin(),
        &obs.socket,
        &["--beats", "2", "--interval-ms", "20", "--after", "terminal"],
    );
    let pid = a.pid();
    let last = obs
        .wait_row(T, |r| r.kind == "beat" && r.pid == pid && r.nonce == "2")
        .unwrap();
    let term = obs
        .wait_row(T, |r| r.kind == "terminal" && r.pid == pid)
        .expect("terminal");
    assert!(Duration::from_nanos(term.ns - last.ns) < Duration::from_millis(400));
    drop(a);
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        !obs.rows().iter().any(|r| r.kind == "stall" && r.pid == pid),
        "a dying agent must not be reported as a stall later"
    );
}

#[test]
fn restarted_client_is_a_new_session_not_a_rejection() {
    let obs = Observer::start(watch(), &[]);
    let a = Agent::start(
        agent_bin(),
        &obs.socket,
        &["--beats", "5", "--interval-ms", "20", "--after", "restart"],
    );
    let pid = a.pid();
    assert!(obs
        .wait_row(T, |r| r.kind == "new_session" && r.pid == pid)
        .is_some());
    assert!(!obs
        .rows()
        .iter()
        .any(|r| r.kind == "rejected" && r.pid == pid));
}

#[test]
fn spoofed_pid_is_rejected_and_counted() {
    let obs = Observer::start(watch(), &[]);
    let a = Agent::start(
        agent_bin(),
        &obs.socket,
        &[
            "--beats",
            "3",
            "--interval-ms",
            "20",
            "--spoof-pid",
            "4242",
            "--after",
            "exit",
        ],
    );
    let pid = a.pid();
    let r = obs
        .wait_row(T, |r| r.kind == "rejected" && r.status == "pid_mismatch")
        .expect("rejection");
    assert_eq!(r.pid, 4242, "the claimed pid is reported");
    a.wait();
    let st = obs.status_json();
    assert_eq!(st["observer"]["rejected"]["pid_mismatch"], 3);
    assert!(!st["agents"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["pid"] == 4242 || x["pid"] == pid));
}

#[test]
fn garbage_short_and_oversized_datagrams_are_counted() {
    let obs = Observer::start(watch(), &[]);
    let s = obs.raw_sender();
    s.send(b"hello").unwrap();
    s.send(&[0u8; 32]).unwrap();
    s.send(&[0u8; 100]).unwrap();
    let mut good = Frame {
        status: Status::Ok,
        pid: std::process::id(),
        timestamp: 1,
        nonce: 1,
        payload: 0,
    }
    .to_bytes()
    .unwrap();
    good[10] ^= 1;
    s.send(&good).unwrap();
    assert!(obs
        .wait_row(T, |r| r.kind == "rejected" && r.status == "bad_crc")
        .is_some());
    let st = obs.status_json();
    assert_eq!(st["observer"]["rejected"]["bad_length"], 2, "{st}");
    assert_eq!(st["observer"]["rejected"]["bad_magic"], 1, "{st}");
    assert_eq!(st["observer"]["rejected"]["bad_crc"], 1, "{st}");
}

#[test]
fn process_exit_reported_before_threshold() {
    let obs = Observer::start(watch(), &["--threshold-ms", "5000"]);
    let a = Agent::start(
        agent_bin(),
        &obs.socket,
        &["--beats", "2", "--interval-ms", "20", "--after", "exit"],
    );
    let pid = a.pid();
    let last = obs
        .wait_row(T, |r| r.kind == "beat" && r.pid == pid && r.nonce == "2")
        .unwrap();
    let exited = obs
        .wait_row(T, |r| r.kind == "exited" && r.pid == pid)
        .expect("exit seen");
    assert!(Duration::from_nanos(exited.ns - last.ns) < Duration::from_millis(2000));
    assert!(!obs.rows().iter().any(|r| r.kind == "stall" && r.pid == pid));
}

#[test]
fn published_client_interop() {
    let obs = Observer::start(watch(), &[]);
    let mut agent = varta_client::Varta::connect(&obs.socket).expect("connect");
    for _ in 0..3 {
        let _ = agent.beat(varta_client::Status::Ok, 0);
        std::thread::sleep(Duration::from_millis(10));
    }
    let me = std::process::id();
    assert!(obs
        .wait_row(T, |r| r.kind == "beat" && r.pid == me && r.nonce == "3")
        .is_some());
    let st = obs.status_json();
    let row = st["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["pid"] == me)
        .cloned()
        .expect("in status");
    assert_eq!(row["beats"], 3);
}

#[test]
fn flood_does_not_cause_false_stalls_or_lose_critical() {
    let obs = Observer::start(watch(), &["--threshold-ms", "1000"]);
    let flood = Agent::start(
        agent_bin(),
        &obs.socket,
        &["--beats", "0", "--after", "flood", "--duration-ms", "10000"],
    );
    // The kernel queue of a Unix datagram socket is short (net.unix.max_dgram_qlen, often
    // 10): without the observer's kernel-side filter the flooder keeps it full and the
    // well-behaved agent's sends are refused. It does not retry: a refused send is a beat
    // lost, as with the published clients.
    let good = Agent::start(
        agent_bin(),
        &obs.socket,
        &[
            "--interval-ms",
            "200",
            "--beats",
            "50",
            "--after",
            "critical",
            "--payload",
            "9",
        ],
    );
    let gpid = good.pid();
    let started = Instant::now();
    let c = obs.wait_row(Duration::from_secs(30), |r| {
        r.kind == "critical" && r.pid == gpid
    });
    assert!(c.is_some(), "critical after normal beats must be recorded");
    assert!(started.elapsed() >= Duration::from_secs(9));
    let rows = obs.rows();
    assert!(
        !rows.iter().any(|r| r.kind == "stall" && r.pid == gpid),
        "false stall under flood"
    );
    let good_beats = rows
        .iter()
        .filter(|r| r.kind == "beat" && r.pid == gpid)
        .count();
    assert!(
        good_beats >= 45,
        "well-behaved agent lost beats: {good_beats}"
    );
    let flood_beats = rows
        .iter()
        .filter(|r| r.kind == "beat" && r.pid == flood.pid())
        .count();
    assert!(flood_beats > 1000, "the flood did flood ({flood_beats})");
    eprintln!(
        "flood: {good_beats} of 50 beats seen from the agent, {flood_beats} from the flooder"
    );
    drop(flood);
}

#[test]
fn malformed_flags_are_clear_errors_with_exit_2() {
    let out = run(watch(), &["--threshold-ms", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--threshold-ms"), "{err}");
    let out = run(watch(), &["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
}

#[test]
fn bad_config_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("varta.toml");
    std::fs::write(
        &cfg,
        "[[agent]]\nname = \"a\"\nthreshold_ms = 100\nbogus = 1\n",
    )
    .unwrap();
    let out = run(
        watch(),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--socket",
            dir.path().join("s").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("varta.toml:4"),
        "error must name the line: {err}"
    );
}

#[test]
fn socket_taken_by_live_observer_or_regular_file_is_refused() {
    let obs = Observer::start(watch(), &[]);
    let dir = tempfile::tempdir().unwrap();
    let ctl = dir.path().join("other.ctl");
    let out = run(
        watch(),
        &[
            "--socket",
            obs.socket.to_str().unwrap(),
            "--control-socket",
            ctl.to_str().unwrap(),
        ],
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another observer"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = dir.path().join("plain");
    std::fs::write(&file, "keep me").unwrap();
    let out = run(
        watch(),
        &[
            "--socket",
            file.to_str().unwrap(),
            "--control-socket",
            ctl.to_str().unwrap(),
        ],
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a socket"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    // The first observer is unaffected.
    let a = Agent::start(
        agent_bin(),
        &obs.socket,
        &["--beats", "1", "--after", "hang"],
    );
    let pid = a.pid();
    assert!(obs
        .wait_row(T, |r| r.kind == "register" && r.pid == pid)
        .is_some());
}

#[test]
fn defaults_with_no_flags_use_xdg_runtime_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(watch())
        .env("XDG_RUNTIME_DIR", dir.path())
        .env_remove("NOTIFY_SOCKET")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let sock = dir.path().join("varta.sock");
    let end = Instant::now() + T;
    while !sock.exists() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    let exists = sock.exists();
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    );
    let status = child.wait().unwrap();
    assert!(exists, "default socket under $XDG_RUNTIME_DIR");
    assert!(status.success(), "orderly exit on SIGTERM: {status:?}");
    assert!(!sock.exists(), "socket removed on exit");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16, raw: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    c.write_all(raw).unwrap();
    let mut s = String::new();
    let _ = c.read_to_string(&mut s);
    s
}

#[test]
fn metrics_served_without_blocking_the_loop() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let obs = Observer::start(watch(), &["--prom-addr", &addr]);
    let mut agent = varta_client::Varta::connect(&obs.socket).expect("connect");
    let me = std::process::id();
    // A client that connects and never sends must not hold up anyone.
    let _slow = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    for _ in 0..3 {
        let _ = agent.beat(varta_client::Status::Ok, 0);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(obs
        .wait_row(T, |r| r.kind == "beat" && r.pid == me && r.nonce == "3")
        .is_some());
    let body = http_get(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    let line = format!("varta_agent_beats_total{{pid=\"{me}\",name=");
    let row = body
        .lines()
        .find(|l| l.starts_with(&line))
        .unwrap_or_else(|| panic!("no beats row: {body}"));
    assert!(row.ends_with(" 3"), "{row}");
    assert!(http_get(port, b"GET /other HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    let huge = vec![b'a'; 5_000]; // just over the 4 KiB limit, all of it read before the answer
    assert!(http_get(port, &huge).starts_with("HTTP/1.1 431"));
    // The loop kept serving agents throughout.
    let _ = agent.beat(varta_client::Status::Ok, 0);
    assert!(obs
        .wait_row(T, |r| r.kind == "beat" && r.pid == me && r.nonce == "4")
        .is_some());
}

#[test]
fn sighup_reloads_rules_keeps_agents_and_survives_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("varta.toml");
    std::fs::write(&cfg, "[[agent]]\nname = \"varta-test-agent\"\n").unwrap();
    let obs = Observer::start(watch(), &["--config", cfg.to_str().unwrap()]);
    let a = Agent::start(
        agent_bin(),
        &obs.socket,
        &["--interval-ms", "20", "--duration-ms", "30000"],
    );
    let pid = a.pid();
    let agent = |obs: &Observer| {
        obs.status_json()["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["pid"] == pid)
            .cloned()
    };
    let before = wait_until(|| agent(&obs).filter(|x| x["beats"].as_u64() > Some(5)));
    assert_eq!(before["name"], "varta-test-agent");
    let hup = |obs: &Observer| {
        let p = rustix::process::Pid::from_child(&obs.child);
        rustix::process::kill_process(p, rustix::process::Signal::HUP).unwrap();
    };
    std::fs::write(
        &cfg,
        "[[agent]]\ncomm = \"varta-test-agen\"\nname = \"renamed\"\nthreshold_ms = 750\n",
    )
    .unwrap();
    hup(&obs);
    let after = wait_until(|| agent(&obs).filter(|x| x["name"] == "renamed"));
    assert_eq!(after["threshold_ms"], 750);
    assert!(
        after["beats"].as_u64() >= before["beats"].as_u64(),
        "tracked state kept: {before} -> {after}"
    );
    // A broken file: the old rules stay and the observer keeps running.
    std::fs::write(&cfg, "[[agent]]\nname = \"x\"\nbogus = 1\n").unwrap();
    hup(&obs);
    std::thread::sleep(Duration::from_millis(300));
    let still = agent(&obs).expect("agent still tracked");
    assert_eq!(still["name"], "renamed");
    assert_eq!(still["threshold_ms"], 750);
    assert!(
        obs.rows_of("register")
            .iter()
            .filter(|r| r.pid == pid)
            .count()
            == 1
    );
}

fn wait_until<V>(mut f: impl FnMut() -> Option<V>) -> V {
    let end = Instant::now() + T;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "condition not met within {T:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn paced_reads_keep_the_kernel_receive_times_and_judge_stalls_on_them() {
    // Pacing needs a kernel queue of 16 or more; the test gets one in a network namespace
    // of its own (root only), so the machine's setting is left alone.
    let Some(obs) = Observer::start_with_qlen(
        watch(),
        512,
        &[
            "--threshold-ms",
            "300",
            "--coalesce-ms",
            "20",
            "--flood-limit",
            "0",
        ],
    ) else {
        eprintln!("skipped: needs root and unshare(1) for a network namespace");
        return;
    };
    // One agent (this process) beating 4 000 times a second: far more than one datagram
    // per 20 ms, so the observer reads on its timer, 64 datagrams (an eighth of the queue)
    // at a time, 16 ms apart.
    let s = obs.raw_sender();
    let pid = std::process::id();
    let beats = 4000u64;
    let mut sent = Vec::with_capacity(beats as usize);
    let mut quitter = None;
    for nonce in 1..=beats {
        sent.push(varta_tests::bench::load::mono_ns());
        s.send(&varta_tests::bench::load::frame(pid, nonce, Status::Ok))
            .expect("the queue never fills");
        std::thread::sleep(Duration::from_micros(250));
        if nonce == beats / 4 {
            // Meanwhile, paced: an agent beats a while (registered, its exit watched),
            // then sends its terminal frame and exits at once. The exit is seen at once
            // (pidfd), the frame only at a read: the frame must still come first.
            quitter = Some(Agent::start(
                agent_bin(),
                &obs.socket,
                &["--beats", "5", "--interval-ms", "50", "--after", "terminal"],
            ));
        }
    }
    let quitter = quitter.unwrap();
    let qpid = quitter.pid();
    quitter.wait();
    let last = *sent.last().unwrap();
    let stall = obs
        .wait_row(T, |r| r.kind == "stall" && r.pid == pid)
        .expect("stall after the last beat");
    let st = obs.status_json();
    let rows = obs.rows();
    let mut delays: Vec<i64> = rows
        .iter()
        .filter(|r| r.kind == "beat" && r.pid == pid)
        .filter_map(|r| {
            let n: usize = r.nonce.parse().ok()?;
            Some(r.ns as i64 - sent[n - 1] as i64)
        })
        .collect();
    assert_eq!(delays.len() as u64, beats, "every beat is exported");
    let paced = st["observer"]["paced_reads"].as_u64().expect("paced_reads");
    assert!(paced > 10, "the observer read on its timer ({paced} reads)");
    // Stamped with the time read, beats would be ~8 ms late on average (half of the 16 ms
    // between reads); with the kernel's receive times they are on time.
    delays.sort_unstable();
    assert!(
        delays[0] > -1_000_000,
        "a beat placed {} ns before it was sent",
        -delays[0]
    );
    let median = Duration::from_nanos(delays[delays.len() / 2].max(0) as u64);
    assert!(
        median < Duration::from_millis(2),
        "beat times are the read times, not the arrival times (median {median:?})"
    );
    let late = Duration::from_nanos(stall.ns.saturating_sub(last));
    assert!(
        late >= Duration::from_millis(299) && late < Duration::from_millis(800),
        "stall {late:?} after the last beat was sent (threshold 300 ms)"
    );
    let of_quitter: Vec<&str> = rows
        .iter()
        .filter(|r| r.pid == qpid)
        .map(|r| r.kind.as_str())
        .filter(|k| *k != "beat")
        .collect();
    assert_eq!(
        of_quitter,
        ["register", "terminal", "exited"],
        "the terminal frame is handled before the exit that followed it"
    );
    eprintln!(
        "paced: {paced} timed reads, beat delay min {} ns, median {median:?}, max {} ns, stall after {late:?}",
        delays[0],
        delays[delays.len() - 1]
    );
}
