//! Batched datagram I/O with `recvmmsg(2)` / `sendmmsg(2)`, shared by [`crate::udp`] and
//! [`crate::rawesp`], including the UDP GSO (`UDP_SEGMENT`) and GRO (`UDP_GRO`) control
//! messages (see the kernel's `Documentation/networking/segmentation-offloads.rst`).
//!
//! All per-call state (message headers, iovecs, address and control-message storage) lives in
//! fixed-size arrays on the stack, so a call never allocates. At most [`MAX_BATCH`] messages
//! move per call.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::ptr;

use crate::addr::SockAddrBuf;
use crate::sockopt::cvt;

/// The most messages one `recv_batch` / `send_batch` call moves.
pub const MAX_BATCH: usize = 64;

/// What the kernel reported about one received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvMeta {
    /// Bytes of payload at the start of the matching buffer.
    pub len: usize,
    /// The sender (for raw ESP sockets the port is 0).
    pub src: SocketAddr,
    /// The datagram did not fit its buffer (`MSG_TRUNC`) or, on a raw IPv4 socket, carried a
    /// malformed IP header: `len` bytes are not the whole packet, so the caller should drop it.
    pub truncated: bool,
    /// Size of each datagram in the buffer. Equal to `len` unless UDP GRO is enabled
    /// ([`crate::udp::UdpSocket::enable_gro`]) and the kernel coalesced several datagrams of
    /// one sender into this buffer: then they follow each other every `stride` bytes, the last
    /// one possibly shorter. [`RecvMeta::datagrams`] splits them.
    pub stride: usize,
}

impl Default for RecvMeta {
    fn default() -> Self {
        Self {
            len: 0,
            src: SocketAddr::from(([0, 0, 0, 0], 0)),
            truncated: false,
            stride: 0,
        }
    }
}

impl RecvMeta {
    /// The datagrams in `buf` (the buffer this meta describes): one slice, or several when the
    /// kernel coalesced them (UDP GRO).
    pub fn datagrams<'a>(&self, buf: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        let data = buf.get(..self.len).unwrap_or(buf);
        let stride = if self.stride == 0 {
            data.len().max(1)
        } else {
            self.stride
        };
        data.chunks(stride)
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

/// A run of same-size datagrams to one destination, sent as one message with UDP GSO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GsoMsg<'a> {
    /// The datagrams back to back: every `segment_size` bytes a new one starts; the last may
    /// be shorter. At most [`MAX_GSO_SEGMENTS`] segments and 65,507 bytes (IPv4) in all.
    pub data: &'a [u8],
    /// The destination of every segment.
    pub dst: SocketAddr,
    /// Payload bytes per datagram (non-zero).
    pub segment_size: u16,
}

/// The most segments the kernel accepts in one GSO message (`UDP_MAX_SEGMENTS`).
pub const MAX_GSO_SEGMENTS: usize = 64;

/// `CMSG_ALIGN`: control messages are aligned to `sizeof(long)`.
const fn cmsg_align(n: usize) -> usize {
    let a = mem::size_of::<libc::c_long>();
    (n + a - 1) & !(a - 1)
}
/// Offset of a control message's data (`CMSG_LEN(0)`).
const CMSG_HDR: usize = cmsg_align(mem::size_of::<libc::cmsghdr>());

/// Room for one control message carrying an `int` (`CMSG_SPACE(sizeof(int))`), aligned for
/// `cmsghdr`.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct CmsgBuf([u8; CMSG_HDR + 8]);

impl CmsgBuf {
    const ZERO: Self = Self([0; CMSG_HDR + 8]);

    /// Writes one `SOL_UDP`/`UDP_SEGMENT` message; returns the control length.
    fn set_segment(&mut self, size: u16) -> usize {
        let len = CMSG_HDR + mem::size_of::<u16>();
        let b = &mut self.0;
        b[..mem::size_of::<usize>()].copy_from_slice(&len.to_ne_bytes());
        let lvl = mem::size_of::<usize>();
        b[lvl..lvl + 4].copy_from_slice(&libc::SOL_UDP.to_ne_bytes());
        b[lvl + 4..lvl + 8].copy_from_slice(&libc::UDP_SEGMENT.to_ne_bytes());
        b[CMSG_HDR..CMSG_HDR + 2].copy_from_slice(&size.to_ne_bytes());
        cmsg_align(len)
    }

    /// Finds the `SOL_UDP`/`UDP_GRO` segment size among the first `len` bytes.
    fn gro_segment(&self, len: usize) -> Option<usize> {
        let b = self.0.get(..len)?;
        let mut off = 0;
        let lvl = mem::size_of::<usize>();
        while let Some(hdr) = b.get(off..off + CMSG_HDR) {
            let clen = usize::from_ne_bytes(hdr[..lvl].try_into().ok()?);
            let level = i32::from_ne_bytes(hdr[lvl..lvl + 4].try_into().ok()?);
            let ty = i32::from_ne_bytes(hdr[lvl + 4..lvl + 8].try_into().ok()?);
            if clen < CMSG_HDR {
                return None;
            }
            if level == libc::SOL_UDP && ty == libc::UDP_GRO {
                let v = b.get(off + CMSG_HDR..off + CMSG_HDR + 4)?;
                let v = i32::from_ne_bytes(v.try_into().ok()?);
                return usize::try_from(v).ok().filter(|&v| v > 0);
            }
            off = off.checked_add(cmsg_align(clen))?;
        }
        None
    }
}

/// Receives up to `min(bufs.len(), meta.len(), MAX_BATCH)` messages without blocking.
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
    let mut ctrl = [CmsgBuf::ZERO; MAX_BATCH];
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
        h.msg_control = ctrl[i].0.as_mut_ptr().cast();
        h.msg_controllen = mem::size_of::<CmsgBuf>() as _;
    }
    // SAFETY: the first `n` headers point at live, exclusively borrowed buffers, address slots
    // and control buffers of the lengths given; the kernel writes at most those lengths and
    // fills msg_len, msg_namelen, msg_controllen and msg_flags. No timeout pointer is passed.
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
        let ctrl_len = (h.msg_hdr.msg_controllen as usize).min(mem::size_of::<CmsgBuf>());
        let len = len.min(cap);
        meta[i] = RecvMeta {
            len,
            src,
            truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || h.msg_len as usize > cap,
            stride: ctrl[i].gro_segment(ctrl_len).unwrap_or(len).min(len.max(1)),
        };
    }
    Ok(got)
}

/// Sends up to `min(count, MAX_BATCH)` messages without blocking; `get(i)` gives message `i`
/// as (payload, destination, GSO segment size).
///
/// With `raw_ip` the destination port is zeroed, as raw sockets require.
/// Returns how many the kernel took (the first ones, in order); `Ok(0)` when the socket buffer
/// is full (`EAGAIN`) or on `EINTR`. An error on the first message (e.g. `EMSGSIZE`,
/// `ENETUNREACH`, or `EIO` for GSO on a device without checksum offload) is returned as `Err`;
/// the caller may drop that message and retry the rest.
fn send_impl<'a>(
    fd: RawFd,
    count: usize,
    get: impl Fn(usize) -> (&'a [u8], SocketAddr, Option<u16>),
    raw_ip: bool,
) -> io::Result<usize> {
    let n = count.min(MAX_BATCH);
    if n == 0 {
        return Ok(0);
    }
    let mut names = [SockAddrBuf::zeroed(); MAX_BATCH];
    let mut ctrl = [CmsgBuf::ZERO; MAX_BATCH];
    // SAFETY: iovec and mmsghdr are C structs of pointers and integers; all-zero is valid.
    let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { mem::zeroed() };
    // SAFETY: as above.
    let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { mem::zeroed() };
    for i in 0..n {
        let (data, mut dst, segment) = get(i);
        if raw_ip {
            dst.set_port(0);
        }
        let namelen = names[i].set(&dst);
        iovs[i] = libc::iovec {
            // The kernel only reads through this pointer on send.
            iov_base: data.as_ptr().cast_mut().cast(),
            iov_len: data.len(),
        };
        let h = &mut hdrs[i].msg_hdr;
        h.msg_name = names[i].as_mut_ptr().cast();
        h.msg_namelen = namelen;
        h.msg_iov = &mut iovs[i];
        h.msg_iovlen = 1;
        if let Some(size) = segment {
            let len = ctrl[i].set_segment(size);
            h.msg_control = ctrl[i].0.as_mut_ptr().cast();
            h.msg_controllen = len as _;
        }
    }
    // SAFETY: the first `n` headers point at live buffers, addresses and control messages of
    // the lengths given; sendmmsg only reads them (and writes msg_len in headers we own).
    let ret =
        unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT) };
    match cvt(ret) {
        Ok(sent) => Ok(usize::try_from(sent).unwrap_or(0).min(n)),
        Err(e) if is_transient(&e) => Ok(0),
        Err(e) => Err(e),
    }
}

/// Sends plain datagrams; see [`send_impl`].
pub(crate) fn send_batch(fd: RawFd, msgs: &[SendMsg<'_>], raw_ip: bool) -> io::Result<usize> {
    send_impl(
        fd,
        msgs.len(),
        |i| (msgs[i].data, msgs[i].dst, None),
        raw_ip,
    )
}

/// Sends GSO messages; see [`send_impl`].
pub(crate) fn send_gso_batch(fd: RawFd, msgs: &[GsoMsg<'_>]) -> io::Result<usize> {
    if msgs.iter().take(MAX_BATCH).any(|m| m.segment_size == 0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "GSO segment size must be non-zero",
        ));
    }
    send_impl(
        fd,
        msgs.len(),
        |i| (msgs[i].data, msgs[i].dst, Some(msgs[i].segment_size)),
        false,
    )
}

/// Sends one datagram gathered from `parts` (`sendmsg` with one iovec per part, at most
/// [`MAX_GSO_SEGMENTS`] parts) without blocking. With `segment`, a `UDP_SEGMENT` control message
/// asks the kernel to cut the gathered bytes into datagrams of that size (UDP GSO): the parts
/// need not be aligned to segments, the kernel cuts the concatenation.
///
/// Returns `Ok(true)` when sent, `Ok(false)` when the socket buffer is full or on `EINTR`.
pub(crate) fn send_parts(
    fd: RawFd,
    parts: &[&[u8]],
    dst: SocketAddr,
    segment: Option<u16>,
) -> io::Result<bool> {
    if parts.is_empty() || parts.len() > MAX_GSO_SEGMENTS || segment == Some(0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "1 to 64 parts and a non-zero segment size",
        ));
    }
    let mut name = SockAddrBuf::zeroed();
    let namelen = name.set(&dst);
    let mut ctrl = CmsgBuf::ZERO;
    // SAFETY: iovec is a C struct of a pointer and a length; all-zero is valid.
    let mut iovs: [libc::iovec; MAX_GSO_SEGMENTS] = unsafe { mem::zeroed() };
    for (iov, part) in iovs.iter_mut().zip(parts) {
        // The kernel only reads through this pointer on send.
        iov.iov_base = part.as_ptr().cast_mut().cast();
        iov.iov_len = part.len();
    }
    // SAFETY: msghdr is a C struct of pointers and integers; all-zero is valid.
    let mut h: libc::msghdr = unsafe { mem::zeroed() };
    h.msg_name = name.as_mut_ptr().cast();
    h.msg_namelen = namelen;
    h.msg_iov = iovs.as_mut_ptr();
    h.msg_iovlen = parts.len() as _;
    if let Some(size) = segment {
        let len = ctrl.set_segment(size);
        h.msg_control = ctrl.0.as_mut_ptr().cast();
        h.msg_controllen = len as _;
    }
    // SAFETY: `h` points at live iovecs (over live borrowed slices), an address and a control
    // message of the lengths given; sendmsg only reads them.
    let ret = unsafe { libc::sendmsg(fd, &h, libc::MSG_DONTWAIT) };
    match crate::sockopt::cvt_size(ret) {
        Ok(_) => Ok(true),
        Err(e) if is_transient(&e) => Ok(false),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_cmsg_round_trips_through_the_parser_shape() {
        let mut c = CmsgBuf::ZERO;
        let len = c.set_segment(1424);
        assert_eq!(len, cmsg_align(CMSG_HDR + 2));
        // Same layout with type UDP_GRO and an int payload parses back.
        let lvl = mem::size_of::<usize>();
        c.0[lvl + 4..lvl + 8].copy_from_slice(&libc::UDP_GRO.to_ne_bytes());
        c.0[CMSG_HDR..CMSG_HDR + 4].copy_from_slice(&1424i32.to_ne_bytes());
        assert_eq!(c.gro_segment(mem::size_of::<CmsgBuf>()), Some(1424));
        assert_eq!(c.gro_segment(CMSG_HDR), None, "data cut off");
        assert_eq!(CmsgBuf::ZERO.gro_segment(mem::size_of::<CmsgBuf>()), None);
    }

    #[test]
    fn datagrams_split_by_stride() {
        let buf: Vec<u8> = (0..25).collect();
        let m = RecvMeta {
            len: 25,
            stride: 10,
            ..RecvMeta::default()
        };
        let parts: Vec<&[u8]> = m.datagrams(&buf).collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2], &[20, 21, 22, 23, 24]);
        let whole = RecvMeta {
            len: 5,
            stride: 5,
            ..RecvMeta::default()
        };
        assert_eq!(whole.datagrams(&buf).collect::<Vec<_>>(), vec![&buf[..5]]);
        let odd = RecvMeta {
            len: 99,
            stride: 0,
            ..RecvMeta::default()
        };
        assert_eq!(
            odd.datagrams(&buf).count(),
            1,
            "len past the buffer is clamped"
        );
    }
}
