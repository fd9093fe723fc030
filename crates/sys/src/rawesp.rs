//! Raw IP protocol 50 (ESP, RFC 4303 §2) sockets for peers that do not use UDP encapsulation.
//!
//! The kernel builds the outer IP header on send (no `IP_HDRINCL`). On receive, an IPv4 raw
//! socket hands over the whole IP datagram: its header (IHL × 4 bytes, RFC 791 §3.1) is removed
//! here so that callers always see the ESP packet at the start of the buffer, as they do for
//! IPv6. The kernel delivers every ESP packet addressed to this host to every raw ESP socket;
//! this module does not filter by SPI. Does not handle IPv4 fragments (the kernel reassembles)
//! or IPv6 extension headers in the payload (the kernel consumes them).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::mmsg::{self, RecvMeta, SendMsg};
use crate::sockopt;

/// IP protocol number of ESP (IANA "Assigned Internet Protocol Numbers").
const IPPROTO_ESP: i32 = 50;

/// A non-blocking raw ESP socket bound to one local address.
#[derive(Debug)]
pub struct RawEsp {
    fd: OwnedFd,
    v4: bool,
}

impl RawEsp {
    /// Opens a raw ESP socket for `local`'s family, binds it to `local`, and sets both buffer
    /// sizes to `buffer` bytes (forced where permitted; `0` keeps the default). Needs
    /// CAP_NET_RAW.
    pub fn bind(local: IpAddr, buffer: usize) -> io::Result<Self> {
        let domain = match local {
            IpAddr::V4(_) => libc::AF_INET,
            IpAddr::V6(_) => libc::AF_INET6,
        };
        let fd = sockopt::socket(domain, libc::SOCK_RAW | libc::SOCK_NONBLOCK, IPPROTO_ESP)?;
        if buffer > 0 {
            sockopt::set_buffer(&fd, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, buffer)?;
            sockopt::set_buffer(&fd, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, buffer)?;
        }
        sockopt::bind(&fd, &SocketAddr::new(local, 0))?;
        Ok(Self {
            fd,
            v4: local.is_ipv4(),
        })
    }

    /// Receives up to `min(bufs.len(), meta.len(), MAX_BATCH)` ESP packets without blocking.
    ///
    /// Packet `i` (without any IPv4 header) starts at `bufs[i][0]`; `meta[i].src` carries the
    /// sender with port 0. A buffer must hold the IPv4 header too (up to 60 bytes) while
    /// receiving. Returns the count, `Ok(0)` if nothing was waiting.
    pub fn recv_batch(&self, bufs: &mut [&mut [u8]], meta: &mut [RecvMeta]) -> io::Result<usize> {
        let got = mmsg::recv_batch(self.fd.as_raw_fd(), bufs, meta)?;
        if self.v4 {
            for (buf, m) in bufs.iter_mut().zip(meta.iter_mut()).take(got) {
                strip_ipv4_header(buf, m);
            }
        }
        Ok(got)
    }

    /// Sends up to `min(msgs.len(), MAX_BATCH)` ESP packets (the port of `dst` is ignored).
    ///
    /// Returns how many of the first packets were sent; `Ok(0)` if the socket buffer is full.
    pub fn send_batch(&self, msgs: &[SendMsg<'_>]) -> io::Result<usize> {
        mmsg::send_batch(self.fd.as_raw_fd(), msgs, true)
    }

    /// The address the socket is bound to (port 0).
    pub fn local_addr(&self) -> io::Result<IpAddr> {
        sockopt::local_addr(self.fd.as_raw_fd()).map(|a| a.ip())
    }
}

/// Moves the payload of the IPv4 datagram in `buf[..m.len]` to the front and fixes `m.len`.
/// A header that is not IPv4 or does not fit marks the packet truncated (to be dropped).
fn strip_ipv4_header(buf: &mut [u8], m: &mut RecvMeta) {
    let len = m.len.min(buf.len());
    let ihl = match buf.first() {
        Some(&b) if b >> 4 == 4 => usize::from(b & 0x0f) * 4,
        _ => 0,
    };
    if ihl < 20 || ihl > len {
        m.truncated = true;
        m.len = 0;
        m.stride = 0;
        return;
    }
    buf.copy_within(ihl..len, 0);
    m.len = len - ihl;
    m.stride = m.len;
}

impl AsRawFd for RawEsp {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for RawEsp {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_header_with_options() {
        let mut pkt = vec![0u8; 24 + 8];
        pkt[0] = 0x46; // IPv4, IHL 6 (24 bytes)
        pkt[24..].copy_from_slice(&[1, 2, 3, 4, 0, 0, 0, 9]);
        let mut m = RecvMeta {
            len: pkt.len(),
            ..RecvMeta::default()
        };
        strip_ipv4_header(&mut pkt, &mut m);
        assert_eq!(m.len, 8);
        assert_eq!(m.stride, 8);
        assert!(!m.truncated);
        assert_eq!(&pkt[..8], &[1, 2, 3, 4, 0, 0, 0, 9]);
    }

    #[test]
    fn malformed_headers_are_flagged_not_panicking() {
        for first in [0x45u8, 0x4f, 0x60, 0x41] {
            let mut pkt = vec![first; 16];
            let mut m = RecvMeta {
                len: 16,
                ..RecvMeta::default()
            };
            strip_ipv4_header(&mut pkt, &mut m);
            assert!(m.truncated, "first byte {first:#x}");
            assert_eq!(m.len, 0);
        }
        let mut empty: [u8; 0] = [];
        let mut m = RecvMeta::default();
        strip_ipv4_header(&mut empty, &mut m);
        assert!(m.truncated);
    }
}
