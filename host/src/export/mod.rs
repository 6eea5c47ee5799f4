//! Where events and metrics go: the TSV event export, Prometheus `/metrics`, the
//! node_exporter textfile, and the log. [`Outputs`] owns them for the event loop.

#[cfg(not(feature = "metrics"))]
mod disabled;
#[cfg(not(feature = "metrics"))]
use disabled as http;
#[cfg(not(feature = "metrics"))]
use disabled as textfile;
#[cfg(feature = "metrics")]
pub mod http;
pub mod prometheus;
#[cfg(feature = "metrics")]
pub mod textfile;
pub mod tsv;

pub use prometheus::BUSY_BUCKETS_US;

use crate::observer::AgentMeta;
use crate::status::StatusBoard;
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use varta_core::event::Event;
use varta_core::time::{Duration, Instant};

/// Output settings.
#[derive(Clone, Debug, Default)]
pub struct OutputConfig {
    /// TSV event export.
    pub export_file: Option<PathBuf>,
    /// Rotate past this size (0 = never).
    pub export_max_bytes: u64,
    /// Prometheus listener.
    pub prom_addr: Option<SocketAddr>,
    /// Bearer token file.
    pub prom_token_file: Option<PathBuf>,
    /// node_exporter textfile.
    pub metrics_file: Option<PathBuf>,
    /// Textfile interval.
    pub metrics_interval: Duration,
}

/// The open outputs.
#[derive(Debug)]
pub struct Outputs {
    log: Option<tsv::EventLog>,
    http: Option<http::HttpServer>,
    textfile: Option<textfile::Textfile>,
}

fn read_token(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let t = std::fs::read_to_string(path)
        .map_err(|e| format!("--prom-token-file {}: {e}", path.display()))?;
    let t = t.trim();
    if t.len() < 16 {
        return Err(format!(
            "--prom-token-file {}: token shorter than 16 characters",
            path.display()
        ));
    }
    Ok(t.as_bytes().to_vec())
}

impl Outputs {
    /// Open everything configured.
    pub fn open(cfg: &OutputConfig, now: Instant) -> Result<Self, String> {
        let log = match &cfg.export_file {
            Some(p) => Some(
                tsv::EventLog::open(p, cfg.export_max_bytes)
                    .map_err(|e| format!("--export-file {}: {e}", p.display()))?,
            ),
            None => None,
        };
        let http = match cfg.prom_addr {
            Some(a) => {
                let token = cfg.prom_token_file.as_deref().map(read_token).transpose()?;
                let s = http::HttpServer::bind(a, token)
                    .map_err(|e| format!("--prom-addr {a}: {e}"))?;
                log::info!(
                    "serving /metrics on {}",
                    s.local_addr().map(|a| a.to_string()).unwrap_or_default()
                );
                Some(s)
            }
            None => None,
        };
        let textfile = match &cfg.metrics_file {
            Some(p) => Some(
                textfile::Textfile::new(p, cfg.metrics_interval, now)
                    .map_err(|e| format!("--metrics-file: {e}"))?,
            ),
            None => None,
        };
        Ok(Outputs {
            log,
            http,
            textfile,
        })
    }

    /// Route one event to the export file and the log.
    pub fn event(&mut self, e: &Event, meta: Option<&AgentMeta>, now: Instant) {
        if let Some(l) = &mut self.log {
            l.write_event(e, now);
        }
        if matches!(e, Event::Beat { .. }) {
            return;
        }
        let name = meta.map(|m| &*m.name).unwrap_or("?");
        match *e {
            Event::Registered { pid, .. } => log::info!("agent {name} ({pid}) registered"),
            Event::Stall { pid, last_beat, .. } => {
                log::warn!(
                    "agent {name} ({pid}) stalled: silent for {}",
                    now.saturating_since(last_beat)
                )
            }
            Event::Recovered { pid, silent_for } => {
                log::info!("agent {name} ({pid}) recovered after {silent_for}")
            }
            Event::Critical { pid, payload } => {
                log::warn!("agent {name} ({pid}) reports critical (payload {payload})")
            }
            Event::Terminal { pid, payload } => {
                log::warn!("agent {name} ({pid}) is dying (terminal frame, payload {payload})")
            }
            Event::Exited { pid } => log::info!("agent {name} ({pid}) exited"),
            Event::NewSession { pid, .. } => {
                log::info!("agent {name} ({pid}) started a new session")
            }
            Event::PidReused { pid } => log::info!("pid {pid} reused by a new process"),
            Event::Evicted { pid, reason } => {
                log::warn!("agent {name} ({pid}) evicted ({reason:?}) to make room")
            }
            Event::Rejected { pid, reason } => {
                log::debug!("rejected datagram from {pid:?}: {reason}")
            }
            _ => {}
        }
    }

    /// Earliest time something here is due.
    pub fn next_due(&self) -> Option<Instant> {
        [
            self.log.as_ref().and_then(|l| l.next_due()),
            self.http.as_ref().and_then(|h| h.next_deadline()),
            self.textfile.as_ref().map(|t| t.next_due()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Whether the textfile is due (so the caller only builds a board when needed).
    pub fn wants_board(&self, now: Instant) -> bool {
        self.textfile.as_ref().is_some_and(|t| now >= t.next_due())
    }

    /// Do what is due: flush the export, drop stale HTTP connections, write the textfile.
    pub fn on_due(&mut self, now: Instant, board: Option<&StatusBoard>) {
        if let Some(l) = &mut self.log {
            l.on_due(now);
        }
        if let Some(h) = &mut self.http {
            h.expire(now);
        }
        if let (Some(t), Some(b)) = (&mut self.textfile, board) {
            t.on_due(now, b);
        }
    }

    /// The HTTP listener fd.
    pub fn http_listener_fd(&self) -> Option<BorrowedFd<'_>> {
        self.http.as_ref().map(|h| h.fd())
    }

    /// Accept HTTP connections; returns their ids.
    pub fn http_accept(&mut self, now: Instant) -> Vec<usize> {
        self.http
            .as_mut()
            .map(|h| h.accept(now))
            .unwrap_or_default()
    }

    /// The fd of HTTP connection `id`.
    pub fn http_conn_fd(&self, id: usize) -> Option<BorrowedFd<'_>> {
        self.http.as_ref().and_then(|h| h.conn_fd(id))
    }

    /// Progress HTTP connection `id`.
    pub fn http_event(&mut self, id: usize, board: impl FnOnce() -> StatusBoard) {
        if let Some(h) = &mut self.http {
            h.on_event(id, || prometheus::render(&board()));
        }
    }

    /// Flush and write everything one last time.
    pub fn close(&mut self, now: Instant, board: &StatusBoard) {
        if let Some(l) = &mut self.log {
            l.flush();
        }
        if let Some(t) = &mut self.textfile {
            t.write(board, now);
        }
    }
}
