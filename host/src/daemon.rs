//! The event loop: one thread, one epoll wait over every fd, one timerfd armed at the
//! earliest thing due (the next stall deadline, sd_notify's watchdog, the metrics file, the
//! export flush, connection deadlines, the shutdown time). With nothing to do the process
//! does not wake up at all.

use crate::audit::AuditLog;
use crate::clock::OsClock;
use crate::config::AgentRule;
use crate::control::ControlServer;
use crate::identity::ProcFs;
use crate::listener::admission::{self, FloodGuard, FloodPolicy};
use crate::listener::batch::{Batch, BATCH_LEN};
use crate::listener::udp::UdpListener;
use crate::listener::unix::{BindOptions, UnixListener};
use crate::listener::{Datagram, Sender, RECV_BUF};
use crate::observer::{Allowlist, Observer};
use crate::pidwatch::{PidWatch, Watch};
use crate::recovery::{AgentView, Recovery, Report};
use crate::sdnotify::Notifier;
use crate::signals::Signals;
use crate::status::StatusBoard;
use crate::supervisor::{AgentInfo, Notice, Supervisor};
use crate::timer::Timer;
use rustix::event::epoll;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::sync::MutexGuard;
use varta_core::event::Event;
use varta_core::policy::pacing::{PacingConfig, ReadMode, ReadPacer};
use varta_core::policy::rate::RateLimit;
use varta_core::policy::recovery::Trigger;
use varta_core::time::{ClockSource, Duration, Instant};
use varta_core::tracker::{Tracker, TrackerConfig};

/// Everything the loop needs, resolved from flags and the config file by the caller.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Data socket path.
    pub socket: PathBuf,
    /// Socket options (mode, group, receive buffer).
    pub bind: BindOptions,
    /// Control socket path (None: no control socket).
    pub control_socket: Option<PathBuf>,
    /// UDP listen address (None: off).
    pub udp: Option<std::net::SocketAddr>,
    /// Default stall threshold.
    pub threshold: Duration,
    /// Tracker settings (rate limits).
    pub tracker: TrackerConfig,
    /// Clock.
    pub clock: ClockSource,
    /// Agent rules.
    pub rules: Vec<AgentRule>,
    /// Config file to re-read on SIGHUP.
    pub config_file: Option<PathBuf>,
    /// Who may beat.
    pub allow: Allowlist,
    /// Maximum pidfds held for exit detection.
    pub pidfd_limit: usize,
    /// Kernel flood filter (limit 0: off).
    pub flood: FloodPolicy,
    /// Longest wait of a datagram in the queue under load (zero: read on every datagram);
    /// see [`varta_core::policy::pacing`].
    pub coalesce: Duration,
    /// Stop after this long (tests, benchmarks).
    pub shutdown_after: Option<Duration>,
    /// Outputs.
    pub outputs: crate::export::OutputConfig,
    /// Recovery runner settings.
    pub recovery: crate::recovery::RecoverySettings,
    /// Audit log (None: off).
    pub audit: Option<crate::audit::AuditSettings>,
}

impl RunConfig {
    /// Resolve parsed settings (flags over the config file over defaults).
    pub fn from_settings(s: crate::config::Settings) -> RunConfig {
        let mut tracker = TrackerConfig::new(s.threshold);
        tracker.agent_rate = RateLimit::new(s.agent_rate.0, s.agent_rate.1.max(1));
        tracker.global_rate = RateLimit::new(s.global_rate, s.global_rate.max(1));
        RunConfig {
            bind: BindOptions {
                mode: s.socket_mode,
                group: s.socket_group,
                ..BindOptions::default()
            },
            socket: s.socket,
            control_socket: s.control_socket,
            udp: s.udp,
            threshold: s.threshold,
            tracker,
            clock: s.clock_source,
            rules: s.rules,
            config_file: s.config_file,
            allow: Allowlist {
                own_uid: rustix::process::geteuid().as_raw(),
                uids: s.allow_uids,
                gids: s.allow_gids,
            },
            pidfd_limit: s.pidfd_limit.unwrap_or(s.tracker_capacity),
            flood: FloodPolicy {
                limit: s.flood_limit,
                ..FloodPolicy::DEFAULT
            },
            coalesce: s.coalesce,
            shutdown_after: s.shutdown_after,
            outputs: crate::export::OutputConfig {
                export_file: s.export_file,
                export_max_bytes: s.export_max_bytes,
                prom_addr: s.prom_addr,
                prom_token_file: s.prom_token_file,
                metrics_file: s.metrics_file,
                metrics_interval: s.metrics_interval,
            },
            recovery: s.recovery,
            audit: s.audit,
        }
    }
}

/// Loop statistics exported as metrics.
#[derive(Clone, Debug, Default)]
pub struct LoopStats {
    /// Loop iterations (wake-ups).
    pub iterations: u64,
    /// Time spent handling wake-ups, histogram buckets in µs (upper bounds in
    /// [`crate::export::BUSY_BUCKETS_US`]).
    pub busy_hist: [u64; crate::export::BUSY_BUCKETS_US.len() + 1],
    /// Sum of busy time.
    pub busy_total: Duration,
    /// Datagrams handled per wake-up, max.
    pub max_batch: u64,
    /// Reads of the data socket on the pacing timer rather than on readability.
    pub paced_reads: u64,
    /// Times pacing stopped because a read found the kernel queue half full.
    pub pacing_backoffs: u64,
}

const TOK_UNIX: u64 = 1;
const TOK_UDP: u64 = 2;
const TOK_TIMER: u64 = 3;
const TOK_SIGNAL: u64 = 4;
const TOK_CONTROL: u64 = 5;
const TOK_HTTP: u64 = 6;
const TOK_CONTROL_CONN: u64 = 0x100;
const TOK_HTTP_CONN: u64 = 0x1_0000;
const TOK_PIDFD: u64 = 1 << 32;
const TOK_CHILD: u64 = 1 << 33;

/// Longest run of datagrams read from one socket before the loop looks at other fds and
/// due stalls (the socket stays readable, so it is served again next iteration).
const BATCH: usize = 4096;

/// Why [`run`] returned.
#[derive(Debug)]
pub enum Exit {
    /// SIGTERM/SIGINT.
    Signal,
    /// `shutdown_after` elapsed.
    Timeout,
}

/// The running observer, with an optional [`Supervisor`] (the embedded frontend's
/// hardware watchdog and LED; `()` on the host).
pub struct Daemon<const N: usize, S: Supervisor = ()> {
    cfg: RunConfig,
    clock: OsClock,
    epoll: std::os::fd::OwnedFd,
    timer: Timer,
    signals: Signals,
    unix: UnixListener,
    udp: Option<UdpListener>,
    control: Option<ControlServer>,
    pidwatch: PidWatch,
    notifier: Notifier,
    observer: Observer<N>,
    outputs: crate::export::Outputs,
    recovery: Recovery,
    audit: Option<AuditLog>,
    stats: LoopStats,
    started: Instant,
    supervisor: S,
    notices: Vec<Notice>,
    flood: Option<FloodGuard>,
    /// The receive batch; `None` only while [`Daemon::drain_unix`] hands its frames out.
    batch: Option<Batch>,
    /// When the data socket is read: on readability, or on a timer under load (None: on
    /// readability always, pacing being off or the kernel queue too short for it).
    pacer: Option<ReadPacer>,
    /// When the last read of the data socket started: no datagram it left queued can
    /// have arrived before it (the floor for receive timestamps).
    last_read: Instant,
    /// Something other than a plain beat happened since the last [`Daemon::on_due`]: an
    /// event was routed, or an fd other than a datagram socket was served.
    dirty: bool,
    next_sd_watchdog: Option<Instant>,
    shutdown_at: Option<Instant>,
}

/// A seed for the tracker's pid hash, from the per-process random keys std draws from the
/// OS for its own hash maps.
fn hash_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0x0076_6172_7461_u64)
}

fn add(
    ep: &std::os::fd::OwnedFd,
    fd: BorrowedFd<'_>,
    tok: u64,
    flags: epoll::EventFlags,
) -> io::Result<()> {
    epoll::add(ep, fd, epoll::EventData::new_u64(tok), flags).map_err(io::Error::from)
}

impl<const N: usize> Daemon<N, ()> {
    /// Set everything up: listeners first (so a second observer fails fast), then timers.
    pub fn new(cfg: RunConfig, tracker: MutexGuard<'static, Tracker<N>>) -> Result<Self, String> {
        Self::with_supervisor(cfg, tracker, ())
    }
}

impl<const N: usize, S: Supervisor> Daemon<N, S> {
    /// [`Daemon::new`] with a supervisor, told the rules before the first wake-up.
    pub fn with_supervisor(
        cfg: RunConfig,
        mut tracker: MutexGuard<'static, Tracker<N>>,
        mut supervisor: S,
    ) -> Result<Self, String> {
        tracker.reconfigure(cfg.tracker);
        tracker.set_hash_seed(hash_seed());
        let clock = OsClock::new(cfg.clock);
        let unix = UnixListener::bind(&cfg.socket, &cfg.bind).map_err(|e| e.to_string())?;
        let udp = match cfg.udp {
            Some(a) => Some(UdpListener::bind(a).map_err(|e| format!("UDP {}: {}", a, e))?),
            None => None,
        };
        let control = match &cfg.control_socket {
            Some(p) => Some(ControlServer::bind(p, 0o600).map_err(|e| e.to_string())?),
            None => None,
        };
        let now = clock.now_instant();
        // The audit log first: a recovery must never run unrecorded.
        let audit = match &cfg.audit {
            Some(a) => Some(AuditLog::open(a.clone(), now)?),
            None => None,
        };
        let outputs = crate::export::Outputs::open(&cfg.outputs, now)?;
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| format!("epoll: {e}"))?;
        let timer = Timer::new(&clock).map_err(|e| format!("timerfd: {e}"))?;
        let signals = Signals::install().map_err(|e| format!("signals: {e}"))?;
        let io = |e: io::Error| format!("epoll_ctl: {e}");
        let lvl = epoll::EventFlags::IN;
        add(&ep, unix.fd(), TOK_UNIX, lvl).map_err(io)?;
        if let Some(u) = &udp {
            add(&ep, u.fd(), TOK_UDP, lvl).map_err(io)?;
        }
        add(&ep, timer.fd(), TOK_TIMER, lvl).map_err(io)?;
        add(&ep, signals.fd(), TOK_SIGNAL, lvl).map_err(io)?;
        if let Some(c) = &control {
            add(&ep, c.fd(), TOK_CONTROL, lvl).map_err(io)?;
        }
        if let Some(fd) = outputs.http_listener_fd() {
            add(&ep, fd, TOK_HTTP, lvl).map_err(io)?;
        }
        let notifier = Notifier::from_env();
        let observer = Observer::new(
            tracker,
            cfg.rules.clone(),
            cfg.allow.clone(),
            cfg.threshold,
            ProcFs::default(),
        );
        let recovery = Recovery::new(cfg.recovery.clone());
        if recovery.enabled(&cfg.rules) && audit.is_none() {
            log::info!("recovery commands configured without --recovery-audit-file: no audit log");
        }
        supervisor.set_rules(&cfg.rules, now);
        // The kernel-side flood filter starts empty; without it (an old kernel, a seccomp
        // policy) the observer still works, only without admission control.
        let flood = match cfg.flood.limit {
            0 => None,
            _ => match admission::attach(unix.fd(), &[]) {
                Ok(()) => Some(FloodGuard::new(cfg.flood)),
                Err(e) => {
                    log::warn!("no kernel flood filter on the socket ({e}): a flooding agent can crowd others out");
                    None
                }
            },
        };
        let pacer = ReadPacer::new(PacingConfig {
            max_delay: cfg.coalesce,
            queue_len: unix.queue_len().unwrap_or(0),
        });
        if cfg.coalesce > Duration::ZERO && !pacer.enabled() {
            log::info!(
                "kernel socket queue {}: too short to pace reads under load, every datagram wakes the observer (raise net.unix.max_dgram_qlen)",
                unix.queue_len().map_or("unknown".to_string(), |q| q.to_string())
            );
        }
        let pacer = pacer.enabled().then_some(pacer);
        Ok(Daemon {
            pacer,
            last_read: now,
            batch: Some(Batch::new()),
            dirty: true,
            flood,
            supervisor,
            notices: Vec::new(),
            recovery,
            audit,
            next_sd_watchdog: notifier.watchdog_interval().map(|_| now),
            shutdown_at: cfg.shutdown_after.map(|d| now + d),
            pidwatch: PidWatch::new(crate::pidwatch::reserve_fds(cfg.pidfd_limit)),
            cfg,
            clock,
            epoll: ep,
            timer,
            signals,
            unix,
            udp,
            control,
            notifier,
            observer,
            outputs,
            stats: LoopStats::default(),
            started: now,
        })
    }

    /// The bound data socket path.
    pub fn socket_path(&self) -> &std::path::Path {
        self.unix.path()
    }

    fn next_wakeup(&self) -> Option<Instant> {
        [
            self.observer.next_deadline(),
            self.control.as_ref().and_then(|c| c.next_deadline()),
            self.outputs.next_due(),
            self.recovery.next_due(),
            self.audit.as_ref().and_then(|a| a.next_due()),
            self.next_sd_watchdog,
            self.shutdown_at,
            self.supervisor.next_due(),
            self.flood.as_ref().and_then(|f| f.next_due()),
            self.pacer.as_ref().and_then(|p| p.next_read()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Run until a stop signal or the shutdown time.
    pub fn run(&mut self) -> Result<Exit, String> {
        let _ = self.notifier.notify("READY=1\nSTATUS=listening, 0 agents");
        log::info!(
            "listening on {} (threshold {}, capacity {})",
            self.unix.path().display(),
            self.cfg.threshold,
            self.observer.tracker().limit()
        );
        let mut events = Vec::with_capacity(64);
        loop {
            // A wake-up that only read plain beats, with nothing due, leaves every due time
            // where it was or later (a beat only pushes its own agent's deadline back), so
            // the armed timer is still early enough and there is nothing to recompute.
            if self.dirty {
                self.timer
                    .set(self.next_wakeup())
                    .map_err(|e| format!("timerfd: {e}"))?;
                self.dirty = false;
            }
            events.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                None,
            ) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(format!("epoll_wait: {e}")),
            }
            let woke = self.clock.now_instant();
            self.stats.iterations += 1;
            let mut exit = None;
            // The data socket first: what an agent sent before it exited must be handled
            // before its exit is (a terminal frame followed by the exit, read in the same
            // wake-up). Paced, the socket is not in the wait set, so an exit is the cue to
            // read it early. One call site, so the hot path stays inlined in the loop.
            let readable = events.iter().any(|e| e.data.u64() == TOK_UNIX);
            let exits = || events.iter().any(|e| e.data.u64() & TOK_PIDFD != 0);
            if readable || self.paced_read_due(woke) || (self.paced() && exits()) {
                self.drain_unix(woke);
            }
            for ev in events.iter() {
                let tok = ev.data.u64();
                if tok != TOK_UNIX && tok != TOK_UDP {
                    self.dirty = true;
                }
                match tok {
                    TOK_UNIX => {}
                    TOK_UDP => self.drain_udp(),
                    TOK_TIMER => self.timer.acknowledge(),
                    TOK_SIGNAL => {
                        let p = self.signals.take();
                        if p.stop {
                            exit = Some(Exit::Signal);
                        }
                        if p.reload {
                            self.reload();
                        }
                        if p.child {
                            let now = self.clock.now_instant();
                            let reports = self.recovery.reap(now);
                            self.report(reports, now);
                        }
                    }
                    TOK_CONTROL => self.accept_control(),
                    TOK_HTTP => {
                        let now = self.clock.now_instant();
                        for id in self.outputs.http_accept(now) {
                            if let Some(fd) = self.outputs.http_conn_fd(id) {
                                let _ = add(
                                    &self.epoll,
                                    fd,
                                    TOK_HTTP_CONN | id as u64,
                                    epoll::EventFlags::IN
                                        | epoll::EventFlags::OUT
                                        | epoll::EventFlags::ET,
                                );
                            }
                        }
                    }
                    t if t & TOK_CHILD != 0 => {
                        self.recovery.on_output((t & 0xffff_ffff) as usize);
                    }
                    t if t & TOK_PIDFD != 0 => self.on_pidfd((t & 0xffff_ffff) as u32),
                    t if t & TOK_HTTP_CONN != 0 => {
                        let board = self.board();
                        self.outputs.http_event((t & 0xffff) as usize, || board);
                    }
                    t if t & TOK_CONTROL_CONN != 0 => self.control_event((t & 0xff) as usize),
                    _ => {}
                }
            }
            // Handling the events took microseconds: what is due is judged at the wake-up
            // time (a deadline passed meanwhile re-arms the timer as already due).
            let now = woke;
            if self.dirty || self.timer.armed().is_some_and(|at| now >= at) {
                self.dirty = true;
                self.on_due(now);
                if let Some(at) = self.shutdown_at {
                    if now >= at {
                        exit.get_or_insert(Exit::Timeout);
                    }
                }
            }
            let busy = self.clock.now_instant() - woke;
            self.note_busy(busy);
            if let Some(e) = exit {
                self.shutdown();
                return Ok(e);
            }
        }
    }

    /// True while the data socket is read on the pacing timer.
    fn paced(&self) -> bool {
        self.pacer
            .as_ref()
            .is_some_and(|p| p.mode() == ReadMode::Paced)
    }

    /// Paced, the socket holds what arrived since the last read: it is read when the read
    /// is due (counted), and before anyone is judged stalled (its beats carry the kernel's
    /// receive times, so a beat queued before a deadline counts).
    fn paced_read_due(&mut self, now: Instant) -> bool {
        let Some(at) = self.pacer.as_ref().and_then(|p| p.next_read()) else {
            return false;
        };
        let due = now >= at;
        self.stats.paced_reads += u64::from(due);
        due || self.observer.next_deadline().is_some_and(|d| now >= d)
    }

    fn note_busy(&mut self, busy: Duration) {
        let us = busy.as_micros();
        let i = crate::export::BUSY_BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(crate::export::BUSY_BUCKETS_US.len());
        self.stats.busy_hist[i] += 1;
        self.stats.busy_total = self.stats.busy_total + busy;
    }

    fn drain_unix(&mut self, woke: Instant) {
        let Some(mut batch) = self.batch.take() else {
            return;
        };
        let floor = std::mem::replace(&mut self.last_read, woke);
        let mut n = 0u64;
        while n < BATCH as u64 {
            let got = match batch.recv(self.unix.fd()) {
                Ok(g) => g,
                Err(e) => {
                    log::warn!("receive on {}: {}", self.unix.path().display(), e);
                    break;
                }
            };
            // One clock reading per batch (the wake-up time for the first): a batch is read
            // in one call, and handling 32 frames takes microseconds.
            let now = if n == 0 {
                woke
            } else {
                self.clock.now_instant()
            };
            // Receive timestamps are wall-clock times: both clocks are read together once
            // per batch to place them on the observer's clock.
            let mut clocks = None;
            for i in 0..got {
                let (bytes, d) = batch.get(i);
                let at = match d.stamp_ns {
                    Some(stamp) => {
                        let clock = self.clock;
                        let (m, w) = *clocks
                            .get_or_insert_with(|| (clock.now_instant(), crate::clock::wall_ns()));
                        crate::clock::arrival(m, w, stamp, floor)
                    }
                    None => now,
                };
                if let (Some(f), Some(Sender::Unix { pid, .. })) = (&mut self.flood, d.sender) {
                    if f.note(pid, now) {
                        log::warn!(
                            "pid {pid} floods the socket: its ordinary frames are dropped in the \
                             kernel for a while (Critical and terminal frames still pass)"
                        );
                        self.refilter();
                    }
                }
                self.on_datagram(bytes, &d, at);
            }
            n += got as u64;
            if got < BATCH_LEN {
                break;
            }
        }
        self.batch = Some(batch);
        self.stats.max_batch = self.stats.max_batch.max(n);
        if let Some(p) = &mut self.pacer {
            let change = p.on_read(woke, n as usize);
            self.stats.pacing_backoffs = p.backoffs();
            if let Some(mode) = change {
                log::debug!(
                    "socket read {mode:?} after a read of {n}, delay {}",
                    p.delay()
                );
                self.set_read_mode(mode);
            }
        }
    }

    /// Paced: receive timestamps on (a datagram is read up to the delay after it came),
    /// the data socket out of the wait set. Reading on readability: the other way round
    /// (the wake-up time is the arrival time, give or take the wake-up latency, and a
    /// stamp costs the kernel a clock reading per datagram and the loop a control message).
    /// Should either step fail, pacing is turned off and every datagram wakes the loop.
    fn set_read_mode(&mut self, mode: ReadMode) {
        self.dirty = true;
        let paced = mode == ReadMode::Paced;
        let flags = if paced {
            epoll::EventFlags::empty()
        } else {
            epoll::EventFlags::IN
        };
        let data = epoll::EventData::new_u64(TOK_UNIX);
        let done = self
            .unix
            .set_timestamps(paced)
            .map_err(|e| format!("SO_TIMESTAMPNS: {e}"))
            .and_then(|()| {
                epoll::modify(&self.epoll, self.unix.fd(), data, flags)
                    .map_err(|e| format!("epoll_ctl: {e}"))
            });
        if let Err(e) = done {
            log::warn!("pacing reads of the data socket: {e}; reading on every datagram");
            let _ = epoll::modify(&self.epoll, self.unix.fd(), data, epoll::EventFlags::IN);
            self.pacer = None;
        }
    }

    fn drain_udp(&mut self) {
        let mut buf = [0u8; RECV_BUF];
        for _ in 0..BATCH {
            let Some(u) = &self.udp else { return };
            match u.recv(&mut buf) {
                Ok(Some(d)) => {
                    let now = self.clock.now_instant();
                    self.on_datagram(&buf, &d, now);
                }
                Ok(None) => break,
                Err(e) => {
                    log::warn!("UDP receive: {}", e);
                    break;
                }
            }
        }
    }

    fn on_datagram(&mut self, buf: &[u8; RECV_BUF], d: &Datagram, now: Instant) {
        // Events are copied out (they are small and Copy) so routing can borrow self; a
        // datagram causes one event but for the rare registration, eviction or rejection.
        match self.observer.on_datagram(&buf[..], d, now) {
            [] => {}
            [e] => {
                let e = *e;
                self.route(&e, now);
            }
            many => {
                let copied = many.to_vec();
                for e in &copied {
                    self.route(e, now);
                }
            }
        }
    }

    /// Re-attach the kernel filter for the pids blocked now.
    fn refilter(&mut self) {
        let Some(f) = &self.flood else { return };
        if let Err(e) = admission::attach(self.unix.fd(), &f.blocked()) {
            log::warn!("kernel flood filter: {e}; admission control off");
            let _ = admission::attach(self.unix.fd(), &[]);
            self.flood = None;
        }
    }

    fn on_due(&mut self, now: Instant) {
        if self.flood.as_mut().is_some_and(|f| f.expire(now)) {
            self.refilter();
        }
        let stalls: Vec<Event> = self.observer.expire(now).to_vec();
        for e in &stalls {
            self.route(e, now);
        }
        if let Some(c) = &mut self.control {
            c.expire(now);
        }
        self.recovery.on_due(now);
        self.supervisor.on_due(now, &mut self.notices);
        self.flush_notices(now);
        if let Some(a) = &mut self.audit {
            a.on_due(now);
        }
        let board = self.outputs.wants_board(now).then(|| self.board_at(now));
        self.outputs.on_due(now, board.as_ref());
        if let (Some(at), Some(iv)) = (self.next_sd_watchdog, self.notifier.watchdog_interval()) {
            if now >= at {
                let (agents, stalled) = self.board_at(now).summary();
                let _ = self.notifier.notify(&format!(
                    "WATCHDOG=1\nSTATUS={} agents, {} stalled",
                    agents, stalled
                ));
                self.next_sd_watchdog = Some(now + iv);
            }
        }
    }

    /// Send one event to every consumer: pid watching, outputs (export, log, metrics).
    fn route(&mut self, e: &Event, now: Instant) {
        if !matches!(e, Event::Beat { .. }) {
            self.dirty = true;
        }
        // Only a Unix-socket agent's pid is a local, kernel-attested process: a UDP frame's
        // pid is whatever the sender wrote (often another host's), never watched for exit.
        let local = |me: &Self, pid: u32| {
            me.observer
                .meta(pid)
                .is_some_and(|m| m.transport == crate::observer::Transport::Unix)
        };
        match *e {
            Event::Registered { pid, .. } if local(self, pid) => self.watch_pid(pid, now),
            Event::PidReused { pid } if local(self, pid) => {
                self.unwatch_pid(pid);
                self.watch_pid(pid, now);
            }
            Event::Evicted { pid, .. } => {
                self.unwatch_pid(pid);
            }
            _ => {}
        }
        self.tell_supervisor(e, now);
        // A beat is never logged by name: skip the lookup on the hot path.
        let meta = match e {
            Event::Beat { .. } => None,
            _ => e.pid().and_then(|p| self.observer.meta(p)),
        };
        self.outputs.event(e, meta, now);
        let trigger = match *e {
            Event::Stall { pid, .. } => Some((pid, Trigger::Stall)),
            Event::Terminal { pid, .. } => Some((pid, Trigger::Terminal)),
            Event::Exited { pid } => Some((pid, Trigger::Exited)),
            Event::Critical { pid, .. } => Some((pid, Trigger::Critical)),
            _ => None,
        };
        if let Some((pid, t)) = trigger {
            self.recover(pid, t, now);
        }
        if let Event::Exited { pid } = *e {
            self.unwatch_pid(pid);
            self.observer.forget(pid);
        }
    }

    /// Hand a trigger to the recovery runner and record what it did.
    fn recover(&mut self, pid: u32, t: Trigger, now: Instant) {
        let Some(m) = self.observer.meta(pid) else {
            return;
        };
        let view = AgentView {
            pid,
            name: &m.name,
            rule: m.rule().and_then(|i| self.observer.rules().get(i)),
            start_time: m.start_time,
            trusted: m.transport == crate::observer::Transport::Unix,
        };
        let proc = self.observer.proc();
        let reports = self.recovery.trigger(&view, t, |p| proc.start_time(p), now);
        self.report(reports, now);
    }

    /// Audit first (synced by default), then export: a recovery that shows up anywhere is
    /// already in the audit log.
    fn report(&mut self, reports: Vec<Report>, now: Instant) {
        for r in reports {
            if let Some(a) = &mut self.audit {
                a.append(&r.audit, now);
            }
            if let Some(slot) = r.slot {
                if let Some(fd) = self.recovery.output_fd(slot) {
                    if let Err(e) = add(
                        &self.epoll,
                        fd,
                        TOK_CHILD | slot as u64,
                        epoll::EventFlags::IN,
                    ) {
                        log::warn!("polling recovery output: {}", e);
                    }
                }
            }
            self.tell_supervisor(&r.event, now);
            let meta = r.event.pid().and_then(|p| self.observer.meta(p));
            self.outputs.event(&r.event, meta, now);
        }
    }

    fn tell_supervisor(&mut self, e: &Event, now: Instant) {
        if !S::ACTIVE {
            return;
        }
        // The supervisor (hardware watchdog gate, LED) may change its own due times or queue
        // notices on any event: the loop looks at it again this iteration.
        self.dirty = true;
        let info = e.pid().and_then(|pid| {
            self.observer.meta(pid).map(|m| AgentInfo {
                pid,
                name: &m.name,
                rule: m.rule().and_then(|i| self.observer.rules().get(i)),
            })
        });
        self.supervisor.on_event(e, info, now);
    }

    /// Audit, then export, what the supervisor reported (same order as recovery reports).
    fn flush_notices(&mut self, now: Instant) {
        let notices = std::mem::take(&mut self.notices);
        for n in &notices {
            if let (Some(a), Some(entry)) = (&mut self.audit, &n.audit) {
                a.append(entry, now);
            }
            if let Some(e) = &n.event {
                let meta = e.pid().and_then(|p| self.observer.meta(p));
                self.outputs.event(e, meta, now);
            }
        }
        self.notices = notices;
        self.notices.clear();
    }

    fn watch_pid(&mut self, pid: u32, now: Instant) {
        match self.pidwatch.watch(pid) {
            Watch::Started => {
                if let Some(fd) = self.pidwatch.fd(pid) {
                    if let Err(e) = add(
                        &self.epoll,
                        fd,
                        TOK_PIDFD | pid as u64,
                        epoll::EventFlags::IN,
                    ) {
                        log::warn!("watching pid {}: {}", pid, e);
                        self.pidwatch.unwatch(pid);
                    }
                }
            }
            Watch::Gone => {
                let evs: Vec<Event> = self.observer.on_exit(pid).to_vec();
                for e in &evs {
                    self.route(e, now);
                }
            }
            Watch::Already | Watch::Unavailable => {}
        }
    }

    fn unwatch_pid(&mut self, pid: u32) {
        if let Some(fd) = self.pidwatch.unwatch(pid) {
            let _ = epoll::delete(&self.epoll, fd.as_fd());
        }
    }

    fn on_pidfd(&mut self, pid: u32) {
        let now = self.clock.now_instant();
        self.unwatch_pid(pid);
        let evs: Vec<Event> = self.observer.on_exit(pid).to_vec();
        for e in &evs {
            self.route(e, now);
        }
        if evs.is_empty() {
            self.observer.forget(pid);
        }
    }

    fn accept_control(&mut self) {
        let now = self.clock.now_instant();
        let Some(c) = &mut self.control else { return };
        let slots = c.accept(now);
        for slot in slots {
            let Some(c) = &self.control else { return };
            if let Some(fd) = c.conn_fd(slot) {
                let _ = add(
                    &self.epoll,
                    fd,
                    TOK_CONTROL_CONN | slot as u64,
                    epoll::EventFlags::IN | epoll::EventFlags::OUT | epoll::EventFlags::ET,
                );
            }
            self.control_event(slot);
        }
    }

    fn control_event(&mut self, slot: usize) {
        let board = self.board();
        let Some(c) = &mut self.control else { return };
        c.on_event(slot, |req| crate::status::answer(req, &board));
    }

    fn board(&self) -> StatusBoard {
        self.board_at(self.clock.now_instant())
    }

    fn board_at(&self, now: Instant) -> StatusBoard {
        let mut b = StatusBoard::collect(
            &self.observer,
            &self.stats,
            &self.pidwatch,
            now,
            self.started,
        );
        b.recovery = crate::status::RecoveryStats {
            counters: self.recovery.counters.clone(),
            running: self.recovery.running(),
            audit: self.audit.as_ref().map(|a| (a.records, a.errors)),
        };
        b.hardware = self.supervisor.status();
        b
    }

    fn reload(&mut self) {
        let Some(path) = self.cfg.config_file.clone() else {
            log::info!("SIGHUP: no config file to reload");
            return;
        };
        let base = self.cfg.recovery.policy;
        let loaded = crate::config::load_rules_file(&path).and_then(|rules| {
            for r in &rules {
                r.policy(&base).validate().map_err(|e| {
                    crate::config::ConfigError(format!(
                        "{}: agent rule {}: recovery policy: {}",
                        path.display(),
                        r.label(),
                        e
                    ))
                })?;
            }
            Ok(rules)
        });
        match loaded {
            Ok(rules) => {
                let now = self.clock.now_instant();
                let n = rules.len();
                self.supervisor.set_rules(&rules, now);
                self.observer.set_rules(rules, now);
                log::info!("reloaded {}: {} agent rules", path.display(), n);
            }
            Err(e) => log::error!("reload failed, keeping the previous rules: {}", e),
        }
    }

    fn shutdown(&mut self) {
        let _ = self.notifier.notify("STOPPING=1");
        let clock = self.clock;
        let reports = self.recovery.shutdown(|| clock.now_instant());
        let now = self.clock.now_instant();
        self.report(reports, now);
        self.supervisor.stop(now, &mut self.notices);
        self.flush_notices(now);
        if let Some(a) = &mut self.audit {
            a.close(now);
        }
        let board = self.board_at(now);
        self.outputs.close(now, &board);
        log::info!("stopped");
    }
}
