//! Batched datagram I/O with `recvmmsg(2)` / `sendmmsg(2)`, shared by [`crate::udp`] and
//! [`crate::rawesp`].
//!
//! All per-call state (message headers, iovecs, address storage) lives in fixed-size arrays on
//! the stack, so a call never allocates. At most [`MAX_BATCH`] datagrams move per call.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::ptr;

use crate::addr::SockAddrBuf;
use crate::sockopt::cvt;

/// The most datagrams one `recv_batch` / `send_batch` call moves.
pub const MAX_BATCH: usize = 64;

/// What the kernel reported about one received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvMeta {
    /// Bytes of payload at the start of the matching buffer.
    pub len: usize,
    /// The sender (for raw ESP sockets the port is 0).
    pub src: SocketAddr,
    /// The datagram did not fit its buffer (`MSG_TRUNC`) or, on a raw IPv4 socket, carried a
    /// malformed IP header: `len` bytes are not the whole packet, so the caller should drop it.
    pub truncated: bool,
}

impl Default for RecvMeta {
    fn default() -> Self {
        Self {
            len: 0,
            src: SocketAddr::from(([0, 0, 0, 0], 0)),
            truncated: false,
        }
    }
}

/// One datagram to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendMsg<'a> {
    /// The payload.
    pub data: &'a [u8],
    /// The destination (for raw ESP sockets the port is ignored).
    pub dst: SocketAddr,
}

/// Receives up to `min(bufs.len(), meta.len(), MAX_BATCH)` datagrams without blocking.
///
/// Returns how many arrived; `Ok(0)` when none was waiting (`EAGAIN`) or on `EINTR`.
pub(crate) fn recv_batch(
    fd: RawFd,
    bufs: &mut [&mut [u8]],
    meta: &mut [RecvMeta],
) -> io::Result<usize> {
    let n = bufs.len().min(meta.len()).min(MAX_BATCH);
    if n == 0 {
        return Ok(0);
    }
    let mut names = [SockAddrBuf::zeroed(); MAX_BATCH];
    // SAFETY: iovec and mmsghdr are C structs of pointers and integers; all-zero is valid.
    let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { mem::zeroed() };
    // SAFETY: as above.
    let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { mem::zeroed() };
    for (i, buf) in bufs.iter_mut().take(n).enumerate() {
        iovs[i] = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let h = &mut hdrs[i].msg_hdr;
        h.msg_name = names[i].as_mut_ptr().cast();
        h.msg_namelen = SockAddrBuf::CAPACITY;
        h.msg_iov = &mut iovs[i];
        h.msg_iovlen = 1;
    }
    // SAFETY: the first `n` headers point at live, exclusively borrowed buffers and address
    // slots of the lengths given; the kernel writes at most those lengths and fills msg_len,
    // msg_namelen and msg_flags. No timeout pointer is passed.
    let ret = unsafe {
        libc::recvmmsg(
            fd,
            hdrs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT,
            ptr::null_mut(),
        )
    };
    let got = match cvt(ret) {
        Ok(got) => usize::try_from(got).unwrap_or(0).min(n),
        Err(e) if is_transient(&e) => return Ok(0),
        Err(e) => return Err(e),
    };
    for i in 0..got {
        let h = &hdrs[i];
        let cap = bufs[i].len();
        let len = h.msg_len as usize;
        let src = names[i]
            .get(h.msg_hdr.msg_namelen)
            .unwrap_or_else(|| RecvMeta::default().src);
        meta[i] = RecvMeta {
            len: len.min(cap),
            src,
            truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || len > cap,
        };
    }
    Ok(got)
}

/// Sends up to `min(msgs.len(), MAX_BATCH)` datagrams without blocking.
///
/// With `raw_ip` the destination port is zeroed, as raw sockets require.
/// Returns how many the kernel took (the first ones, in order); `Ok(0)` when the socket buffer
/// is full (`EAGAIN`) or on `EINTR`. An error on the first datagram (e.g. `EMSGSIZE`,
/// `ENETUNREACH`) is returned as `Err`; the caller may drop that datagram and retry the rest.
pub(crate) fn send_batch(fd: RawFd, msgs: &[SendMsg<'_>], raw_ip: bool) -> io::Result<usize> {
    let n = msgs.len().min(MAX_BATCH);
    if n == 0 {
        return Ok(0);
    }
    let mut names = [SockAddrBuf::zeroed(); MAX_BATCH];
    // SAFETY: iovec and mmsghdr are C structs of pointers and integers; all-zero is valid.
    let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { mem::zeroed() };
    // SAFETY: as above.
    let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { mem::zeroed() };
    for (i, m) in msgs.iter().take(n).enumerate() {
        let mut dst = m.dst;
        if raw_ip {
            dst.set_port(0);
        }
        let namelen = names[i].set(&dst);
        iovs[i] = libc::iovec {
            // The kernel only reads through this pointer on send.
            iov_base: m.data.as_ptr().cast_mut().cast(),
            iov_len: m.data.len(),
        };
        let h = &mut hdrs[i].msg_hdr;
        h.msg_name = names[i].as_mut_ptr().cast();
        h.msg_namelen = namelen;
        h.msg_iov = &mut iovs[i];
        h.msg_iovlen = 1;
    }
    // SAFETY: the first `n` headers point at live buffers and addresses of the lengths given;
    // sendmmsg only reads them (and writes msg_len in the headers we own).
    let ret =
        unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT) };
    match cvt(ret) {
        Ok(sent) => Ok(usize::try_from(sent).unwrap_or(0).min(n)),
        Err(e) if is_transient(&e) => Ok(0),
        Err(e) => Err(e),
    }
}

/// `EAGAIN`/`EWOULDBLOCK` and `EINTR`: nothing happened, try again later.
pub(crate) fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}
