//! Datagram listeners: the Unix socket (kernel-attested sender identity) and plain UDP.

pub mod admission;
pub mod batch;
pub mod udp;
pub mod unix;

/// Receive buffer size: one byte more than a frame would suffice, but a larger buffer lets
/// the kernel report the true length of an oversized datagram with MSG_TRUNC.
pub const RECV_BUF: usize = 64;

/// Who sent a datagram, as far as the transport can tell.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Sender {
    /// Unix socket with SO_PASSCRED: kernel-attested.
    Unix {
        /// Sender pid (in the observer's pid namespace).
        pid: u32,
        /// Sender uid.
        uid: u32,
        /// Sender gid.
        gid: u32,
    },
    /// UDP: an address, no identity.
    Udp(std::net::SocketAddr),
}

/// One received datagram.
#[derive(Copy, Clone, Debug)]
pub struct Datagram {
    /// Bytes in the buffer (at most [`RECV_BUF`]).
    pub len: usize,
    /// The datagram's real length (larger than `len` when truncated).
    pub wire_len: usize,
    /// Who sent it.
    pub sender: Option<Sender>,
    /// When the kernel queued it, in CLOCK_REALTIME nanoseconds (SO_TIMESTAMPNS; None when
    /// the socket does not stamp, or for UDP).
    pub stamp_ns: Option<u64>,
}
