//! Stand-ins for the HTTP and textfile exporters in builds without the `metrics` feature
//! (the embedded frontend): the types have no values, so the loop's code for them is
//! compiled out, and asking for them is a clear error.

use crate::status::StatusBoard;
use std::io;
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::path::Path;
use varta_core::time::{Duration, Instant};

const OFF: &str = "this build has no metrics exporter (built without the `metrics` feature)";

/// No HTTP server in this build.
#[derive(Debug)]
pub enum HttpServer {}

impl HttpServer {
    /// Always an error.
    pub fn bind(_addr: SocketAddr, _token: Option<Vec<u8>>) -> io::Result<Self> {
        Err(io::Error::other(OFF))
    }
    /// Unreachable.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match *self {}
    }
    /// Unreachable.
    pub fn fd(&self) -> BorrowedFd<'_> {
        match *self {}
    }
    /// Unreachable.
    pub fn conn_fd(&self, _id: usize) -> Option<BorrowedFd<'_>> {
        match *self {}
    }
    /// Unreachable.
    pub fn accept(&mut self, _now: Instant) -> Vec<usize> {
        match *self {}
    }
    /// Unreachable.
    pub fn on_event(&mut self, _id: usize, _metrics: impl FnOnce() -> String) {
        match *self {}
    }
    /// Unreachable.
    pub fn next_deadline(&self) -> Option<Instant> {
        match *self {}
    }
    /// Unreachable.
    pub fn expire(&mut self, _now: Instant) {
        match *self {}
    }
}

/// No textfile writer in this build.
#[derive(Debug)]
pub enum Textfile {}

impl Textfile {
    /// Always an error.
    pub fn new(_path: &Path, _interval: Duration, _now: Instant) -> Result<Self, String> {
        Err(OFF.into())
    }
    /// Unreachable.
    pub fn next_due(&self) -> Instant {
        match *self {}
    }
    /// Unreachable.
    pub fn on_due(&mut self, _now: Instant, _board: &StatusBoard) {
        match *self {}
    }
    /// Unreachable.
    pub fn write(&mut self, _board: &StatusBoard, _now: Instant) {
        match *self {}
    }
}
