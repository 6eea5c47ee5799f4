//! Plain UDP listener: 32-byte frames with no sender identity (never trusted for recovery).

use super::{Datagram, Sender, RECV_BUF};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};

/// A non-blocking UDP socket.
#[derive(Debug)]
pub struct UdpListener {
    sock: UdpSocket,
}

impl UdpListener {
    /// Bind to `addr` (e.g. `127.0.0.1:9000`).
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let sock = UdpSocket::bind(addr)?;
        sock.set_nonblocking(true)?;
        Ok(UdpListener { sock })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// The fd to register for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// Receive one datagram; `Ok(None)` when the queue is empty. Oversized datagrams are
    /// reported with a `wire_len` above the buffer (MSG_TRUNC).
    pub fn recv(&self, buf: &mut [u8; RECV_BUF]) -> io::Result<Option<Datagram>> {
        use rustix::net::{recvfrom, RecvFlags};
        match recvfrom(
            &self.sock,
            &mut buf[..],
            RecvFlags::TRUNC | RecvFlags::DONTWAIT,
        ) {
            Ok((_, wire_len, addr)) => {
                let sender = addr
                    .and_then(|a| SocketAddr::try_from(a).ok())
                    .map(Sender::Udp);
                Ok(Some(Datagram {
                    len: wire_len.min(RECV_BUF),
                    wire_len,
                    sender,
                    stamp_ns: None,
                }))
            }
            Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receives_and_reports_oversize() {
        let l = UdpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(&[9u8; 32], l.local_addr().unwrap()).unwrap();
        tx.send_to(&[9u8; 200], l.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; RECV_BUF];
        std::thread::sleep(std::time::Duration::from_millis(20));
        let d = l.recv(&mut buf).unwrap().unwrap();
        assert_eq!((d.len, d.wire_len), (32, 32));
        assert_eq!(d.sender, Some(Sender::Udp(tx.local_addr().unwrap())));
        let d = l.recv(&mut buf).unwrap().unwrap();
        assert_eq!((d.len, d.wire_len), (RECV_BUF, 200));
        assert!(l.recv(&mut buf).unwrap().is_none());
    }
}
