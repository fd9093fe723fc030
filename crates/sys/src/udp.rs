//! Non-blocking UDP sockets with `SO_REUSEPORT`, large buffers and batched I/O.
//!
//! One socket per worker thread, all bound to the same address with `reuse_port`, lets the
//! kernel spread flows across workers: by 4-tuple hash, or, once
//! [`UdpSocket::steer_by_first_word`] is set, by the first 32-bit word of the payload (the SPI
//! of ESP in UDP), so the owner of each SPI picks the worker. UDP GSO ([`UdpSocket::send_gso_batch`]) and GRO
//! ([`UdpSocket::enable_gro`]) cut the per-datagram kernel cost. Does not do `IP_PKTINFO`,
//! ECN, timestamps or connected sockets.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::mmsg::{self, GsoMsg, RecvMeta, SendMsg};
use crate::sockopt;

/// Options for [`UdpSocket::bind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UdpOptions {
    /// Set `SO_REUSEPORT` so several sockets (one per worker) can bind the same address.
    pub reuse_port: bool,
    /// Requested receive and send buffer size in bytes; `0` keeps the kernel default.
    /// Set with `SO_RCVBUFFORCE`/`SO_SNDBUFFORCE` (needs CAP_NET_ADMIN), falling back to
    /// `SO_RCVBUF`/`SO_SNDBUF`, which the kernel caps at `net.core.{r,w}mem_max`.
    pub buffer: usize,
}

/// A non-blocking UDP socket.
#[derive(Debug)]
pub struct UdpSocket {
    fd: OwnedFd,
}

impl UdpSocket {
    /// Creates a socket, applies `opts` and binds it to `addr`.
    ///
    /// IPv6 sockets are `IPV6_V6ONLY`: bind an IPv4 socket separately for IPv4 peers.
    pub fn bind(addr: SocketAddr, opts: &UdpOptions) -> io::Result<Self> {
        let domain = match addr {
            SocketAddr::V4(_) => libc::AF_INET,
            SocketAddr::V6(_) => libc::AF_INET6,
        };
        let fd = sockopt::socket(domain, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, 0)?;
        if addr.is_ipv6() {
            sockopt::set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
        }
        if opts.reuse_port {
            sockopt::set_int(&fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
        }
        if opts.buffer > 0 {
            sockopt::set_buffer(&fd, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, opts.buffer)?;
            sockopt::set_buffer(&fd, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, opts.buffer)?;
        }
        sockopt::bind(&fd, &addr)?;
        Ok(Self { fd })
    }

    /// Receives up to `min(bufs.len(), meta.len(), MAX_BATCH)` datagrams without blocking
    /// (`recvmmsg` with `MSG_DONTWAIT`).
    ///
    /// Datagram `i` lands at the start of `bufs[i]` and is described by `meta[i]`; check
    /// [`RecvMeta::truncated`]. Returns the count, `Ok(0)` if nothing was waiting.
    pub fn recv_batch(&self, bufs: &mut [&mut [u8]], meta: &mut [RecvMeta]) -> io::Result<usize> {
        mmsg::recv_batch(self.fd.as_raw_fd(), bufs, meta)
    }

    /// Sends up to `min(msgs.len(), MAX_BATCH)` datagrams without blocking (`sendmmsg`).
    ///
    /// Returns how many of the first messages were sent; `Ok(0)` if the socket buffer is full.
    /// An error on the first message is returned as `Err` (drop it and retry the rest).
    pub fn send_batch(&self, msgs: &[SendMsg<'_>]) -> io::Result<usize> {
        mmsg::send_batch(self.fd.as_raw_fd(), msgs, false)
    }

    /// Sends up to `min(msgs.len(), MAX_BATCH)` GSO messages (`sendmmsg` with a `UDP_SEGMENT`
    /// control message each): the kernel splits each into datagrams of `segment_size` bytes.
    ///
    /// Returns how many of the first messages were sent; `Ok(0)` if the socket buffer is full.
    /// `EIO` means the egress device cannot checksum-offload: fall back to [`Self::send_batch`].
    /// `EINVAL` means a message had too many segments or bytes (see [`GsoMsg`]).
    pub fn send_gso_batch(&self, msgs: &[GsoMsg<'_>]) -> io::Result<usize> {
        mmsg::send_gso_batch(self.fd.as_raw_fd(), msgs)
    }

    /// Sends the concatenation of `parts` (1 to [`crate::MAX_GSO_SEGMENTS`] slices, gathered
    /// with one iovec each, no copy) to `dst` with one `sendmsg`. With `segment_size`, the
    /// kernel cuts it into datagrams of that many bytes (UDP GSO; the last may be shorter);
    /// without, it is one datagram.
    ///
    /// Returns `Ok(true)` when sent, `Ok(false)` if the socket buffer is full. `EIO` means the
    /// egress device cannot checksum-offload GSO (send without `segment_size`); `EINVAL` means
    /// too many segments or bytes.
    pub fn send_gso_parts(
        &self,
        parts: &[&[u8]],
        dst: SocketAddr,
        segment_size: Option<u16>,
    ) -> io::Result<bool> {
        mmsg::send_parts(self.fd.as_raw_fd(), parts, dst, segment_size)
    }

    /// Turns on UDP GRO (`UDP_GRO`, Linux 5.0+): the kernel may then deliver up to
    /// [`crate::MAX_GSO_SEGMENTS`] same-size datagrams of one sender in one buffer, described
    /// by [`RecvMeta::stride`]. Receive buffers should then hold 64 KiB, or coalesced data is
    /// truncated.
    pub fn enable_gro(&self) -> io::Result<()> {
        sockopt::set_int(&self.fd, libc::SOL_UDP, libc::UDP_GRO, 1)
    }

    /// Makes the kernel pick the socket of this socket's `SO_REUSEPORT` group for each
    /// datagram by its payload's first 32-bit word (network order) modulo `sockets`: the
    /// socket that joined the group `i`-th (counting from 0, in bind order) gets the
    /// datagrams whose word is `i` modulo `sockets`. For ESP in UDP the word is the SPI
    /// (RFC 3948 §2.2); IKE's non-ESP marker is zero and so goes to socket 0, and a datagram
    /// shorter than four octets (a NAT keepalive) goes to socket 0 too.
    ///
    /// A classic BPF program (`SO_ATTACH_REUSEPORT_CBPF`): load word 0 of the payload, take
    /// it modulo `sockets`, return it. The kernel falls back to its 4-tuple hash where the
    /// program's answer is not a socket of the group (while fewer than `sockets` are bound).
    /// It holds for the whole group, whichever member sets it.
    pub fn steer_by_first_word(&self, sockets: u32) -> io::Result<()> {
        if sockets == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "steering needs at least one socket",
            ));
        }
        let prog = [
            // A = 32-bit word at payload offset 0 (a short datagram ends the program with 0).
            libc::sock_filter {
                code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
                jt: 0,
                jf: 0,
                k: 0,
            },
            // A %= sockets
            libc::sock_filter {
                code: (libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K) as u16,
                jt: 0,
                jf: 0,
                k: sockets,
            },
            // return A: the index of the socket in the group
            libc::sock_filter {
                code: (libc::BPF_RET | libc::BPF_A) as u16,
                jt: 0,
                jf: 0,
                k: 0,
            },
        ];
        sockopt::attach_reuseport_cbpf(&self.fd, &prog)
    }

    /// Sends one datagram without blocking; `Ok(0)` if the socket buffer is full.
    pub fn send_to(&self, data: &[u8], dst: SocketAddr) -> io::Result<usize> {
        let sent = self.send_batch(&[SendMsg { data, dst }])?;
        Ok(if sent == 1 { data.len() } else { 0 })
    }

    /// The address the socket is bound to (with the kernel-chosen port if `0` was asked).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        sockopt::local_addr(self.fd.as_raw_fd())
    }

    /// The receive buffer size the kernel reports (`SO_RCVBUF`, which is twice the size
    /// requested, to account for bookkeeping overhead).
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        let v = sockopt::get_int(&self.fd, libc::SOL_SOCKET, libc::SO_RCVBUF)?;
        Ok(usize::try_from(v).unwrap_or(0))
    }

    /// The send buffer size the kernel reports (`SO_SNDBUF`, doubled like the receive size).
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        let v = sockopt::get_int(&self.fd, libc::SOL_SOCKET, libc::SO_SNDBUF)?;
        Ok(usize::try_from(v).unwrap_or(0))
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
