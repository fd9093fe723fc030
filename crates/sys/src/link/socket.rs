//! The `NETLINK_ROUTE` socket: open, send a request, receive datagrams.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::sockopt::{self, cvt, cvt_size};

/// How long to wait for one netlink reply datagram before giving up with `TimedOut`.
const RECV_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A blocking `AF_NETLINK` / `NETLINK_ROUTE` socket bound to a kernel-assigned port id.
#[derive(Debug)]
pub(super) struct NlSocket {
    fd: OwnedFd,
}

impl NlSocket {
    pub(super) fn open() -> io::Result<Self> {
        Self::open_groups(0)
    }

    /// Opens a socket that also receives the multicast `groups` (`RTMGRP_*` bit mask).
    pub(super) fn open_groups(groups: u32) -> io::Result<Self> {
        let fd = sockopt::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)?;
        // Larger buffer so big route dumps are not dropped (best effort).
        let _ = sockopt::set_buffer(&fd, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, 1 << 20);
        // The kernel always answers; the timeout only guards against a wedged socket.
        sockopt::set_recv_timeout(&fd, RECV_TIMEOUT)?;
        // Ask for extended acks; older kernels without it still send plain acks.
        let _ = sockopt::set_int(&fd, libc::SOL_NETLINK, libc::NETLINK_EXT_ACK, 1);
        // SAFETY: sockaddr_nl is a plain C struct; all-zero is valid (pid 0 = kernel assigns).
        let mut sa: libc::sockaddr_nl = unsafe { mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        sa.nl_groups = groups;
        // SAFETY: `sa` is a live sockaddr_nl of the length given.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_nl).cast(),
                mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        })?;
        Ok(Self { fd })
    }

    /// Sets how long [`Self::recv`] waits for a datagram before failing with `TimedOut`.
    pub(super) fn set_timeout(&self, timeout: std::time::Duration) -> io::Result<()> {
        sockopt::set_recv_timeout(&self.fd, timeout)
    }

    /// The socket's file descriptor, for polling.
    pub(super) fn raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }

    /// Sends one request to the kernel (port id 0).
    pub(super) fn send(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_nl is a plain C struct; all-zero is the kernel's address.
        let mut sa: libc::sockaddr_nl = unsafe { mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `msg` and `sa` are live buffers of the lengths given; the kernel only reads.
        let sent = cvt_size(unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&sa as *const libc::sockaddr_nl).cast(),
                mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        })?;
        if sent != msg.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short netlink send",
            ));
        }
        Ok(())
    }

    /// Receives one datagram into `buf`, retrying on `EINTR`. Fails if it did not fit.
    pub(super) fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: `buf` is a live, exclusively borrowed buffer of `buf.len()` bytes.
            let ret = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_TRUNC,
                )
            };
            match cvt_size(ret) {
                Ok(n) if n > buf.len() => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "netlink message larger than the receive buffer",
                    ));
                }
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no netlink message within the receive timeout",
                    ));
                }
                Err(e) => return Err(e),
            }
        }
    }
}
