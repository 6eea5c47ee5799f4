//! A tiny HTTP/1.1 server for `/metrics`, driven by the event loop: non-blocking sockets,
//! bounded connections, request size and time; `Connection: close` after each response.
//! When a token is configured, `Authorization: Bearer <token>` is required and compared in
//! constant time.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use varta_core::time::{Duration, Instant};

/// Most connections served at once; more wait in the kernel backlog.
pub const MAX_CONNS: usize = 16;
/// Largest request head accepted.
pub const MAX_REQUEST: usize = 4096;
/// A connection must finish within this.
pub const DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    sent: usize,
    deadline: Instant,
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /metrics` with valid credentials.
    Metrics,
    /// A finished response (error) to send as is.
    Respond(Vec<u8>),
}

/// The server.
#[derive(Debug)]
pub struct HttpServer {
    listener: TcpListener,
    token: Option<Vec<u8>>,
    conns: Vec<Option<Conn>>,
    /// Requests answered, by status code class (2xx, 4xx).
    pub served: u64,
}

/// Compare in time independent of where the first difference is.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// An HTTP response with a text body.
pub fn response(code: u16, reason: &str, ctype: &str, body: &[u8], extra: &str) -> Vec<u8> {
    let mut v = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

fn text(code: u16, reason: &str, extra: &str) -> Vec<u8> {
    response(
        code,
        reason,
        "text/plain; charset=utf-8",
        format!("{reason}\n").as_bytes(),
        extra,
    )
}

/// Decide what a complete request head asks for.
pub fn route(head: &[u8], token: Option<&[u8]>) -> Route {
    let Ok(head) = std::str::from_utf8(head) else {
        return Route::Respond(text(400, "Bad Request", ""));
    };
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let (method, target, version) = (first.next(), first.next(), first.next());
    if !matches!(version, Some(v) if v.starts_with("HTTP/1.")) {
        return Route::Respond(text(400, "Bad Request", ""));
    }
    let path = target.unwrap_or("").split('?').next().unwrap_or("");
    if path != "/metrics" {
        return Route::Respond(text(404, "Not Found", ""));
    }
    if method != Some("GET") {
        return Route::Respond(text(405, "Method Not Allowed", "Allow: GET\r\n"));
    }
    if let Some(tok) = token {
        let given = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("authorization"))
            .map(|(_, v)| v.trim());
        let ok = given
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| ct_eq(t.trim().as_bytes(), tok));
        if !ok {
            return Route::Respond(text(401, "Unauthorized", "WWW-Authenticate: Bearer\r\n"));
        }
    }
    Route::Metrics
}

impl HttpServer {
    /// Bind `addr`. `token`: required bearer token.
    pub fn bind(addr: SocketAddr, token: Option<Vec<u8>>) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(HttpServer {
            listener,
            token,
            conns: (0..MAX_CONNS).map(|_| None).collect(),
            served: 0,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The listening fd.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// The fd of connection `id`.
    pub fn conn_fd(&self, id: usize) -> Option<BorrowedFd<'_>> {
        self.conns.get(id)?.as_ref().map(|c| c.stream.as_fd())
    }

    /// Accept what is pending (up to free slots). Returns new connection ids.
    pub fn accept(&mut self, now: Instant) -> Vec<usize> {
        let mut new = Vec::new();
        while let Some(slot) = self.conns.iter().position(Option::is_none) {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    self.conns[slot] = Some(Conn {
                        stream,
                        inbuf: Vec::new(),
                        out: Vec::new(),
                        sent: 0,
                        deadline: now + DEADLINE,
                    });
                    new.push(slot);
                }
                Err(_) => break,
            }
        }
        new
    }

    /// Progress connection `id` (readable/writable). `metrics` renders the body on demand.
    pub fn on_event(&mut self, id: usize, metrics: impl FnOnce() -> String) {
        let token = self.token.clone();
        let Some(Some(c)) = self.conns.get_mut(id) else {
            return;
        };
        if c.out.is_empty() {
            let mut buf = [0u8; 1024];
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        self.conns[id] = None;
                        return;
                    }
                    Ok(n) => {
                        c.inbuf.extend_from_slice(&buf[..n]);
                        if let Some(end) = c.inbuf.windows(4).position(|w| w == b"\r\n\r\n") {
                            c.out = match route(&c.inbuf[..end], token.as_deref()) {
                                Route::Metrics => response(
                                    200,
                                    "OK",
                                    "text/plain; version=0.0.4; charset=utf-8",
                                    metrics().as_bytes(),
                                    "",
                                ),
                                Route::Respond(r) => r,
                            };
                            self.served += 1;
                            break;
                        }
                        if c.inbuf.len() > MAX_REQUEST {
                            c.out = text(431, "Request Header Fields Too Large", "");
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        self.conns[id] = None;
                        return;
                    }
                }
            }
        }
        let Some(Some(c)) = self.conns.get_mut(id) else {
            return;
        };
        while c.sent < c.out.len() {
            match c.stream.write(&c.out[c.sent..]) {
                Ok(n) => c.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let _ = c.stream.shutdown(std::net::Shutdown::Both);
        self.conns[id] = None;
    }

    /// Earliest connection deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns.iter().flatten().map(|c| c.deadline).min()
    }

    /// Drop connections past their deadline.
    pub fn expire(&mut self, now: Instant) {
        for c in self.conns.iter_mut() {
            if c.as_ref().is_some_and(|c| now >= c.deadline) {
                *c = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: Route) -> String {
        match r {
            Route::Metrics => "metrics".into(),
            Route::Respond(v) => String::from_utf8(v).unwrap()[9..12].to_string(),
        }
    }

    #[test]
    fn routes() {
        assert_eq!(
            code(route(b"GET /metrics HTTP/1.1\r\nHost: x", None)),
            "metrics"
        );
        assert_eq!(code(route(b"GET /metrics?x=1 HTTP/1.0", None)), "metrics");
        assert_eq!(code(route(b"GET / HTTP/1.1", None)), "404");
        assert_eq!(code(route(b"POST /metrics HTTP/1.1", None)), "405");
        assert_eq!(code(route(b"GET /metrics", None)), "400");
        assert_eq!(code(route(b"\xff\xfe", None)), "400");
        let tok = Some(&b"s3cret"[..]);
        assert_eq!(code(route(b"GET /metrics HTTP/1.1", tok)), "401");
        assert_eq!(
            code(route(
                b"GET /metrics HTTP/1.1\r\nAuthorization: Bearer s3cre",
                tok
            )),
            "401"
        );
        assert_eq!(
            code(route(
                b"GET /metrics HTTP/1.1\r\nauthorization: Bearer s3cret",
                tok
            )),
            "metrics"
        );
        assert_eq!(
            code(route(
                b"GET /metrics HTTP/1.1\r\nAuthorization: Basic s3cret",
                tok
            )),
            "401"
        );
    }

    #[test]
    fn constant_time_compare_is_equality() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(b"", b"a"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn serves_over_a_real_socket_and_bounds_requests() {
        let mut srv = HttpServer::bind("127.0.0.1:0".parse().unwrap(), None).unwrap();
        let addr = srv.local_addr().unwrap();
        let now = Instant::from_nanos(1);
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut ids = Vec::new();
        for _ in 0..100 {
            ids = srv.accept(now);
            if !ids.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(ids.len(), 1);
        std::thread::sleep(std::time::Duration::from_millis(20));
        srv.on_event(ids[0], || "up 1\n".into());
        let mut body = String::new();
        c.read_to_string(&mut body).unwrap();
        assert!(body.starts_with("HTTP/1.1 200 OK\r\n"), "{body}");
        assert!(body.ends_with("\r\n\r\nup 1\n"));
        // An endless header is cut off at MAX_REQUEST.
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(&vec![b'a'; MAX_REQUEST + 10]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let ids = srv.accept(now);
        srv.on_event(ids[0], String::new);
        let mut body = String::new();
        c.read_to_string(&mut body).unwrap();
        assert!(body.starts_with("HTTP/1.1 431"), "{body}");
        // A silent client is dropped at its deadline.
        let _idle = TcpStream::connect(addr).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(srv.accept(now).len(), 1);
        assert_eq!(srv.next_deadline(), Some(now + DEADLINE));
        srv.expire(now + DEADLINE);
        assert_eq!(srv.next_deadline(), None);
    }
}
