//! TCP MD5 signatures (RFC 2385) for BGP sessions: `setsockopt(TCP_MD5SIG)` with Linux's
//! `struct tcp_md5sig`, and an outgoing connect that sets the key before the SYN leaves.
//!
//! What it does:
//! - [`set_key`] installs (or, with an empty key, removes) the key for one peer address on a
//!   socket: on a listening socket, accepted connections from that address inherit it; on an
//!   unconnected socket, the connection it makes is signed. A dual-stack (`AF_INET6`) socket takes
//!   an IPv4 peer as its v4-mapped address, which the kernel files as an IPv4 key.
//! - [`connect`] opens a TCP socket, sets the key, and connects within a timeout; the same in two
//!   steps, [`connect_start`] and [`connect_finish`], lets the caller abort an attempt it no
//!   longer wants before another SYN leaves.
//! - [`supported`] probes whether the kernel was built with `CONFIG_TCP_MD5SIG`.
//!
//! What it does NOT do: no TCP-AO (RFC 5925), no address-prefix keys (`TCP_MD5SIG_EXT`), no
//! reading back of keys (the kernel has no such call), and no knowledge of why a signed session
//! fails: the kernel drops unsigned or wrongly signed segments silently (it counts them in
//! `TcpExtTCPMD5Unexpected`, `TCPMD5NotFound` and `TCPMD5Failure` of `/proc/net/netstat`, see
//! [`md5_counters`]).
//!
//! The key is copied into a stack buffer for the system call and wiped afterwards; it is never
//! logged or returned in an error.
#![allow(unsafe_code)]

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::sockopt::{cvt, get_int, set_int, socket};

/// Longest key the kernel takes (`TCP_MD5SIG_MAXKEYLEN`).
pub const MAX_KEY_LEN: usize = 80;

/// `sizeof(struct __kernel_sockaddr_storage)`.
const ADDR_STORAGE: usize = 128;
/// `sizeof(struct tcp_md5sig)`: address storage, flags, prefix length, key length (u16),
/// ifindex (int), key bytes.
const CMD_LEN: usize = ADDR_STORAGE + 1 + 1 + 2 + 4 + MAX_KEY_LEN;

/// `struct tcp_md5sig` as bytes, wiped on drop because it holds the key.
struct Cmd([u8; CMD_LEN]);

impl Drop for Cmd {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: `b` is a valid, aligned `&mut u8`; the volatile write keeps the wipe from
            // being optimised away.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

/// Lays out `struct tcp_md5sig` for `peer` on a socket of `family` (`AF_INET` or `AF_INET6`).
fn command(family: i32, peer: IpAddr, key: &[u8]) -> io::Result<Cmd> {
    if key.len() > MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "TCP MD5 key longer than 80 bytes",
        ));
    }
    let mut c = Cmd([0u8; CMD_LEN]);
    let buf = &mut c.0;
    match (family, peer) {
        (libc::AF_INET, IpAddr::V4(a)) => {
            buf[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            // sin_port (2..4) stays 0; sin_addr:
            buf[4..8].copy_from_slice(&a.octets());
        }
        (libc::AF_INET6, _) => {
            let v6 = match peer {
                IpAddr::V4(a) => a.to_ipv6_mapped(),
                IpAddr::V6(a) => a,
            };
            buf[0..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            // sin6_port (2..4) and sin6_flowinfo (4..8) stay 0; sin6_addr:
            buf[8..24].copy_from_slice(&v6.octets());
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an IPv6 peer on an IPv4 socket",
            ));
        }
    }
    // tcpm_flags and tcpm_prefixlen stay 0 (no TCP_MD5SIG_EXT); tcpm_keylen:
    let len = u16::try_from(key.len()).unwrap_or(0);
    buf[ADDR_STORAGE + 2..ADDR_STORAGE + 4].copy_from_slice(&len.to_ne_bytes());
    // tcpm_ifindex stays 0; tcpm_key:
    let k = ADDR_STORAGE + 8;
    buf[k..k + key.len()].copy_from_slice(key);
    Ok(c)
}

/// Sets the TCP MD5 key for `peer` on `fd` (RFC 2385 §4.3: a key per connection end point);
/// an empty `key` removes it. Errors: `ENOENT` removing a key that is not set, `ENOPROTOOPT`
/// or `EINVAL` on a kernel without `CONFIG_TCP_MD5SIG`.
pub fn set_key(fd: &impl AsRawFd, peer: IpAddr, key: &[u8]) -> io::Result<()> {
    let family = get_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN)?;
    let cmd = command(family, peer, key)?;
    // SAFETY: the pointer and length describe a live, initialised `CMD_LEN`-byte buffer laid out
    // as Linux's `struct tcp_md5sig`; the kernel only reads it.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            cmd.0.as_ptr().cast(),
            CMD_LEN as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Whether this kernel signs TCP segments with MD5: sets and removes a key on a scratch socket.
pub fn supported() -> io::Result<bool> {
    let fd = socket(libc::AF_INET, libc::SOCK_STREAM, 0)?;
    let probe = IpAddr::from([192, 0, 2, 1]);
    match set_key(&fd, probe, b"probe") {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOPROTOOPT | libc::EINVAL)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Connects to `peer` within `timeout`, with `key` (if any) set before the SYN.
pub fn connect(peer: SocketAddr, key: Option<&[u8]>, timeout: Duration) -> io::Result<TcpStream> {
    connect_finish(connect_start(peer, key, None)?, timeout)
}

/// Starts a connection to `peer` without waiting: a non-blocking TCP socket with `key` (if any)
/// set, whose SYN has left (or which is already connected). Finish it with
/// [`connect_finish`]. A `try_clone` of the stream kept elsewhere can abort the attempt at
/// once with `shutdown(Both)`: a socket still in SYN-SENT is closed without a RST and sends no
/// more SYN retransmissions (the waiting [`connect_finish`] then fails with ECONNRESET).
/// `ttl` (IPv4 only) is set before the SYN, so every segment of the session carries it
/// (BGP: TTL 1 for a directly connected eBGP peer, or its `multihop`).
pub fn connect_start(
    peer: SocketAddr,
    key: Option<&[u8]>,
    ttl: Option<u8>,
) -> io::Result<TcpStream> {
    let family = if peer.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let fd: OwnedFd = socket(family, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0)?;
    if let Some(k) = key {
        set_key(&fd, peer.ip(), k)?;
    }
    if let (Some(t), true) = (ttl, peer.is_ipv4()) {
        set_int(&fd, libc::IPPROTO_IP, libc::IP_TTL, i32::from(t))?;
    }
    let mut sa = crate::addr::SockAddrBuf::zeroed();
    let len = sa.set(&peer);
    // SAFETY: `sa` holds a valid socket address of `len` bytes for the family of `fd`.
    let r = unsafe { libc::connect(fd.as_raw_fd(), sa.as_ptr(), len) };
    if r == -1 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    Ok(TcpStream::from(fd))
}

/// Waits up to `timeout` for a connection from [`connect_start`] to complete; returns it in
/// blocking mode, or the connect's error.
pub fn connect_finish(stream: TcpStream, timeout: Duration) -> io::Result<TcpStream> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"));
        }
        let ms = i32::try_from(left.as_millis().max(1)).unwrap_or(i32::MAX);
        let mut pfd = libc::pollfd {
            fd: stream.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid `pollfd` for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n == -1 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n > 0 {
            break;
        }
    }
    let err = get_int(&stream, libc::SOL_SOCKET, libc::SO_ERROR)?;
    if err != 0 {
        return Err(io::Error::from_raw_os_error(err));
    }
    // An attempt aborted by `shutdown` before it completed reports no error but never got
    // connected.
    stream.peer_addr()?;
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// The kernel's TCP MD5 drop counters from `/proc/net/netstat` (of the caller's network
/// namespace): segments without a signature where one was expected (`TCPMD5NotFound`), signed
/// where none was expected (`TCPMD5Unexpected`), and with a wrong signature (`TCPMD5Failure`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Md5Counters {
    /// `TCPMD5NotFound`.
    pub not_found: u64,
    /// `TCPMD5Unexpected`.
    pub unexpected: u64,
    /// `TCPMD5Failure`.
    pub failure: u64,
}

/// Reads [`Md5Counters`]; zeros where the kernel does not list a counter.
pub fn md5_counters() -> io::Result<Md5Counters> {
    let text = std::fs::read_to_string("/proc/net/netstat")?;
    Ok(parse_counters(&text))
}

fn parse_counters(text: &str) -> Md5Counters {
    let mut out = Md5Counters::default();
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        if !names.starts_with("TcpExt:") {
            continue;
        }
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
            let v = v.parse().unwrap_or(0);
            match n {
                "TCPMD5NotFound" => out.not_found = v,
                "TCPMD5Unexpected" => out.unexpected = v,
                "TCPMD5Failure" => out.failure = v,
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, TcpListener};

    use super::*;

    #[test]
    fn layout_matches_struct_tcp_md5sig() {
        assert_eq!(CMD_LEN, 216);
        let c = command(libc::AF_INET, IpAddr::from([10, 1, 2, 3]), b"abc").unwrap();
        assert_eq!(&c.0[0..2], &(libc::AF_INET as u16).to_ne_bytes());
        assert_eq!(&c.0[4..8], &[10, 1, 2, 3]);
        assert_eq!(&c.0[130..132], &3u16.to_ne_bytes());
        assert_eq!(&c.0[136..139], b"abc");
        assert!(c.0[139..].iter().all(|&b| b == 0));
        // An IPv4 peer on a dual-stack socket is its v4-mapped address.
        let c = command(libc::AF_INET6, IpAddr::from([10, 1, 2, 3]), b"k").unwrap();
        assert_eq!(
            &c.0[8..24],
            &Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped().octets()
        );
        assert!(command(libc::AF_INET, "fd00::1".parse().unwrap(), b"k").is_err());
        assert!(command(libc::AF_INET, IpAddr::from([1, 1, 1, 1]), &[0u8; 81]).is_err());
    }

    #[test]
    fn counters_parse_from_netstat() {
        let text = "TcpExt: SyncookiesSent TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure\n\
                    TcpExt: 1 7 8 9\nIpExt: InNoRoutes\nIpExt: 3\n";
        assert_eq!(
            parse_counters(text),
            Md5Counters {
                not_found: 7,
                unexpected: 8,
                failure: 9
            }
        );
    }

    /// The TTL asked for is on the socket before `connect`, so the SYN carries it too; IPv4
    /// only, and no TTL leaves the kernel default.
    #[test]
    fn connect_start_sets_the_ttl_before_the_syn() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let s = connect_start(addr, None, Some(1)).unwrap();
        assert_eq!(get_int(&s, libc::IPPROTO_IP, libc::IP_TTL).unwrap(), 1);
        let s = connect_finish(s, Duration::from_secs(2)).unwrap();
        assert_eq!(s.ttl().unwrap(), 1);
        let d = connect_start(addr, None, None).unwrap();
        assert_ne!(get_int(&d, libc::IPPROTO_IP, libc::IP_TTL).unwrap(), 1);
    }

    /// An attempt whose SYN goes unanswered (a listener that wants a signature it does not
    /// get drops it) is aborted at once through a clone of the stream: the wait fails well
    /// before its timeout, with a connection error rather than a timeout.
    #[test]
    fn a_pending_connect_is_aborted_through_a_clone() {
        if !supported().unwrap() {
            return; // no silent SYN drop to wait on without MD5; covered by the test above
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        set_key(&listener, IpAddr::from([127, 0, 0, 1]), b"Wanted.Key").unwrap();
        let s = connect_start(addr, None, None).unwrap();
        let abort = s.try_clone().unwrap();
        let started = Instant::now();
        let waiter = std::thread::spawn(move || connect_finish(s, Duration::from_secs(20)));
        std::thread::sleep(Duration::from_millis(100));
        abort.shutdown(std::net::Shutdown::Both).unwrap();
        let r = waiter.join().unwrap();
        let e = r.expect_err("an aborted attempt does not connect");
        assert_ne!(
            e.kind(),
            io::ErrorKind::TimedOut,
            "{e} after {:?}",
            started.elapsed()
        );
        // Two steps connect like one when nothing aborts.
        set_key(&listener, IpAddr::from([127, 0, 0, 1]), b"").unwrap();
        let c = connect_finish(
            connect_start(addr, None, None).unwrap(),
            Duration::from_secs(2),
        );
        assert!(c.is_ok(), "{c:?}");
    }

    /// Over loopback: matching keys connect and carry data; a listener expecting a key never
    /// completes the handshake of an unsigned SYN, and one with another key neither.
    #[test]
    fn signed_connections_need_the_same_key_on_both_ends() {
        if !supported().unwrap() {
            // The kernel has no CONFIG_TCP_MD5SIG: setting a key must fail, not silently pass.
            let fd = socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
            assert!(set_key(&fd, IpAddr::from([127, 0, 0, 1]), b"k").is_err());
            return;
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        set_key(&listener, IpAddr::from([127, 0, 0, 1]), b"Same.Secret").unwrap();
        let before = md5_counters().unwrap();

        let mut c = connect(addr, Some(b"Same.Secret"), Duration::from_secs(2)).unwrap();
        let (mut s, _) = listener.accept().unwrap();
        c.write_all(b"hi").unwrap();
        let mut got = [0u8; 2];
        s.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hi");

        let short = Duration::from_millis(300);
        let e = connect(addr, Some(b"Other.Secret"), short).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        let e = connect(addr, None, short).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        let after = md5_counters().unwrap();
        assert!(
            after.failure > before.failure && after.not_found > before.not_found,
            "{before:?} -> {after:?}"
        );
        // Removing the key lets an unsigned connection in again.
        set_key(&listener, IpAddr::from([127, 0, 0, 1]), b"").unwrap();
        let _plain = connect(addr, None, Duration::from_secs(2)).unwrap();
    }
}
