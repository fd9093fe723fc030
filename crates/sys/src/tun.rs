//! Multi-queue TUN devices: one non-blocking file descriptor per queue, one queue per worker.
//!
//! Devices are created with `IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE` (see the kernel's
//! `Documentation/networking/tuntap.rst`): each read yields one IP packet with no extra header,
//! and the kernel spreads flows across queues by hash. Devices are not made persistent: the
//! interface disappears when the last queue is closed. Optionally (`TunOptions::vnet_hdr`) each
//! packet is prefixed by a `virtio_net_hdr` of [`VNET_HDR_LEN`] bytes and checksum/segmentation
//! offloads are enabled; this module does not parse or build that header, nor segment packets.
//! Interface configuration (MTU, addresses, up) is in [`crate::link`].
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::sockopt::{cvt, cvt_size};

/// Length of the `virtio_net_hdr` prefixed to each packet when `vnet_hdr` is on (the kernel's
/// default `TUNSETVNETHDRSZ`).
pub const VNET_HDR_LEN: usize = 10;

/// The most queues a TUN device may have (the kernel's `MAX_TAP_QUEUES`).
pub const MAX_QUEUES: usize = 256;

/// Offloads tried first with `vnet_hdr`: checksum, TCP and UDP segmentation for v4 and v6.
const OFFLOADS_FULL: u32 =
    libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_USO4 | libc::TUN_F_USO6;
/// Fallback for kernels before 6.2, which have no UDP segmentation offload on TUN.
const OFFLOADS_TCP: u32 = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;

/// The `virtio_net_hdr` that precedes each packet on a `vnet_hdr` queue (the kernel's
/// `include/uapi/linux/virtio_net.h`; fields in host byte order, as the kernel uses for TUN
/// unless `TUNSETVNETBE`/`TUNSETVNETLE` is set, which this crate never does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VnetHdr {
    /// [`VnetHdr::F_NEEDS_CSUM`] / [`VnetHdr::F_DATA_VALID`].
    pub flags: u8,
    /// One of the `GSO_*` constants, possibly with [`VnetHdr::GSO_ECN`].
    pub gso_type: u8,
    /// Length of the headers to copy into each segment (IP + TCP/UDP).
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Offset where checksumming starts (the L4 header).
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start` (16 for TCP, 6 for UDP).
    pub csum_offset: u16,
}

impl VnetHdr {
    /// The L4 checksum is partial (pseudo-header sum only): finish it at
    /// `csum_start + csum_offset`.
    pub const F_NEEDS_CSUM: u8 = 1;
    /// The checksum was already verified.
    pub const F_DATA_VALID: u8 = 2;
    /// Not a GSO packet.
    pub const GSO_NONE: u8 = 0;
    /// TCP over IPv4 segmentation (TSO).
    pub const GSO_TCPV4: u8 = 1;
    /// TCP over IPv6 segmentation (TSO).
    pub const GSO_TCPV6: u8 = 4;
    /// UDP segmentation (USO, `TUN_F_USO4`/`TUN_F_USO6`).
    pub const GSO_UDP_L4: u8 = 5;
    /// Flag: the TCP ECN CWR bit is set in the original packet.
    pub const GSO_ECN: u8 = 0x80;

    /// Reads the header from the first [`VNET_HDR_LEN`] bytes of `b`.
    pub fn decode(b: &[u8]) -> Option<Self> {
        let b = b.get(..VNET_HDR_LEN)?;
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Some(Self {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        })
    }

    /// The [`VNET_HDR_LEN`] bytes of the header.
    pub fn encode(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }
}

/// Options for [`Tun::create_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TunOptions {
    /// Open the queues with `IFF_VNET_HDR` and enable offloads with `TUNSETOFFLOAD`
    /// (all of `TUN_F_CSUM|TSO4|TSO6|USO4|USO6`, else without USO, else checksum only).
    pub vnet_hdr: bool,
}

/// A TUN device and its queues.
#[derive(Debug)]
pub struct Tun {
    name: String,
    queues: Vec<TunQueue>,
    vnet_hdr: bool,
    offloads: u32,
}

/// One queue of a TUN device: a non-blocking file descriptor that reads and writes whole IP
/// packets (prefixed by a virtio header if the device was opened with `vnet_hdr`).
#[derive(Debug)]
pub struct TunQueue {
    fd: OwnedFd,
    /// The device's accepted `TUN_F_*` offloads, as [`Tun::offloads`] (0 when unknown).
    offloads: u32,
}

/// `struct ifreq` as used by TUNSETIFF: the name, the flags, and the rest of the 40-byte union.
#[repr(C)]
struct IfReqFlags {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

impl Tun {
    /// Creates (or attaches to) TUN device `name` with `queues` queues, without vnet headers.
    ///
    /// `name` may be a pattern such as `"bh%d"`; [`Tun::name`] gives the name the kernel chose.
    pub fn create(name: &str, queues: usize) -> io::Result<Self> {
        Self::create_with(name, queues, &TunOptions::default())
    }

    /// Creates TUN device `name` with `queues` queues and the given options.
    pub fn create_with(name: &str, queues: usize, opts: &TunOptions) -> io::Result<Self> {
        if name.is_empty()
            || name.len() >= libc::IFNAMSIZ
            || name
                .bytes()
                .any(|b| b == 0 || b == b'/' || b.is_ascii_whitespace())
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "interface name must be 1-15 bytes without NUL, '/' or whitespace",
            ));
        }
        if queues == 0 || queues > MAX_QUEUES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "queue count must be between 1 and 256",
            ));
        }
        let mut flags = libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE;
        if opts.vnet_hdr {
            flags |= libc::IFF_VNET_HDR;
        }
        let mut actual = name.to_owned();
        let mut list = Vec::with_capacity(queues);
        for i in 0..queues {
            // After the first queue, attach by the name the kernel chose (a pattern would
            // otherwise create a new device).
            let (q, got) = TunQueue::open(if i == 0 { name } else { &actual }, flags)?;
            actual = got;
            list.push(q);
        }
        let mut offloads = 0;
        if opts.vnet_hdr {
            let first = list.first().map(|q| q.fd.as_raw_fd()).unwrap_or(-1);
            for candidate in [OFFLOADS_FULL, OFFLOADS_TCP, libc::TUN_F_CSUM] {
                match set_offload(first, candidate) {
                    Ok(()) => {
                        offloads = candidate;
                        for q in &mut list {
                            q.offloads = candidate;
                        }
                        break;
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => continue,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(Self {
            name: actual,
            queues: list,
            vnet_hdr: opts.vnet_hdr,
            offloads,
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The queues, in the order they were opened.
    pub fn queues(&self) -> &[TunQueue] {
        &self.queues
    }

    /// Hands the queues over (to one worker each). The device lives while any queue is open.
    pub fn into_queues(self) -> Vec<TunQueue> {
        self.queues
    }

    /// Whether packets carry a `virtio_net_hdr` of [`VNET_HDR_LEN`] bytes.
    pub fn vnet_hdr(&self) -> bool {
        self.vnet_hdr
    }

    /// The `TUN_F_*` offloads accepted by the kernel (0 without `vnet_hdr`).
    pub fn offloads(&self) -> u32 {
        self.offloads
    }
}

fn set_offload(fd: RawFd, offloads: u32) -> io::Result<()> {
    // SAFETY: TUNSETOFFLOAD takes its argument by value; `fd` is an open TUN descriptor.
    cvt(unsafe { libc::ioctl(fd, libc::TUNSETOFFLOAD, libc::c_ulong::from(offloads)) }).map(drop)
}

impl TunQueue {
    /// Opens /dev/net/tun and attaches it to `name` with `flags`; returns the queue and the
    /// device name the kernel reports.
    fn open(name: &str, flags: libc::c_int) -> io::Result<(Self, String)> {
        let path = c"/dev/net/tun";
        // SAFETY: `path` is a NUL-terminated string; plain syscall.
        let fd = cvt(unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut req = IfReqFlags {
            name: [0; libc::IFNAMSIZ],
            flags: flags as libc::c_short,
            _pad: [0; 22],
        };
        // The caller checked that `name` is shorter than IFNAMSIZ, so a NUL always follows.
        for (dst, &b) in req.name.iter_mut().zip(name.as_bytes()) {
            *dst = b as libc::c_char;
        }
        // SAFETY: `req` is a live 40-byte ifreq-shaped struct that TUNSETIFF reads and updates.
        cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req) })?;
        // Force termination in case the kernel filled every byte.
        req.name[libc::IFNAMSIZ - 1] = 0;
        // SAFETY: `req.name` is NUL-terminated (set just above) and lives for this call.
        let got = unsafe { CStr::from_ptr(req.name.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        Ok((Self { fd, offloads: 0 }, got))
    }

    /// Reads one packet into `buf` without blocking. Returns its length (never more than
    /// `buf.len()`), or `Ok(0)` if no packet was waiting.
    ///
    /// The kernel cuts a packet longer than `buf` without saying so: give at least the MTU
    /// (plus [`VNET_HDR_LEN`], and 64 KiB with segmentation offloads), and trust the IP header's
    /// length over the returned one when in doubt.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is a live, exclusively borrowed buffer of `buf.len()` bytes.
        let ret = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match cvt_size(ret) {
            Ok(n) => Ok(n.min(buf.len())),
            Err(e) if crate::mmsg::is_transient(&e) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Writes one packet to the kernel. Returns the bytes written, `Ok(0)` if the queue was
    /// momentarily full.
    pub fn write(&self, pkt: &[u8]) -> io::Result<usize> {
        // SAFETY: `pkt` is a live buffer of `pkt.len()` bytes that the kernel only reads.
        let ret = unsafe { libc::write(self.fd.as_raw_fd(), pkt.as_ptr().cast(), pkt.len()) };
        match cvt_size(ret) {
            Ok(n) => Ok(n),
            Err(e) if crate::mmsg::is_transient(&e) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Whether packets on this queue carry a `virtio_net_hdr` (the device's `IFF_VNET_HDR`
    /// flag, read back with `TUNGETIFF`), e.g. for a queue handed over by another component.
    pub fn vnet_hdr(&self) -> io::Result<bool> {
        let mut req = IfReqFlags {
            name: [0; libc::IFNAMSIZ],
            flags: 0,
            _pad: [0; 22],
        };
        // SAFETY: `req` is a live 40-byte ifreq-shaped struct that TUNGETIFF fills.
        cvt(unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::TUNGETIFF, &mut req) })?;
        Ok(req.flags & (libc::IFF_VNET_HDR as libc::c_short) != 0)
    }

    /// The `TUN_F_*` offloads the kernel accepted for this queue's device when it was created
    /// by [`Tun::create_with`]. With `TUN_F_USO4|TUN_F_USO6` the kernel (6.2 and later) also
    /// takes `GSO_UDP_L4` super-packets written to the queue.
    pub fn offloads(&self) -> u32 {
        self.offloads
    }

    /// The raw descriptor, for [`crate::poll::Epoll::add`].
    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsRawFd for TunQueue {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for TunQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vnet_hdr_round_trips_and_rejects_short_input() {
        let h = VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            gso_type: VnetHdr::GSO_UDP_L4,
            hdr_len: 28,
            gso_size: 1396,
            csum_start: 20,
            csum_offset: 6,
        };
        assert_eq!(VnetHdr::decode(&h.encode()), Some(h));
        assert_eq!(VnetHdr::decode(&[0; VNET_HDR_LEN - 1]), None);
    }

    #[test]
    fn rejects_bad_names_and_queue_counts() {
        for name in ["", "0123456789abcdef", "a/b", "a b", "a\0b"] {
            let err = Tun::create(name, 1).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{name:?}");
        }
        for q in [0, MAX_QUEUES + 1] {
            let err = Tun::create("bh-x", q).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{q} queues");
        }
    }
}
