//! Conversions between `std::net` addresses and the kernel's `sockaddr_in` / `sockaddr_in6`.
//!
//! Only `AF_INET` and `AF_INET6` are handled; anything else reads back as `None`.
#![allow(unsafe_code)]

use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Storage large enough for an IPv4 or IPv6 socket address (28 bytes, 4-aligned).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) union SockAddrBuf {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

impl SockAddrBuf {
    /// An all-zero buffer (family `AF_UNSPEC`).
    pub(crate) const fn zeroed() -> Self {
        // SAFETY: both union members are plain C structs of integers and byte arrays, for which
        // the all-zero bit pattern is valid.
        unsafe { mem::zeroed() }
    }

    /// Stores `addr` and returns the length to pass to the kernel.
    pub(crate) fn set(&mut self, addr: &SocketAddr) -> libc::socklen_t {
        match addr {
            SocketAddr::V4(a) => {
                self.v4 = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
            }
            SocketAddr::V6(a) => {
                self.v6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo().to_be(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
            }
        }
    }

    /// Reads back an address the kernel wrote, `len` being the length it reported.
    pub(crate) fn get(&self, len: libc::socklen_t) -> Option<SocketAddr> {
        let len = len as usize;
        if len < mem::size_of::<libc::sa_family_t>() {
            return None;
        }
        // SAFETY: every member starts with a `sa_family_t`, and all bit patterns of the union's
        // integer fields are valid, so reading any member of an initialised buffer is sound.
        let family = unsafe { self.v4.sin_family };
        match i32::from(family) {
            libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: as above; the family says the kernel wrote a sockaddr_in.
                let a = unsafe { self.v4 };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes()),
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above; the family says the kernel wrote a sockaddr_in6.
                let a = unsafe { self.v6 };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                    u32::from_be(a.sin6_flowinfo),
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    /// Pointer for the kernel to read from or write into.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut libc::sockaddr {
        (self as *mut Self).cast()
    }

    /// Pointer for the kernel to read from.
    pub(crate) fn as_ptr(&self) -> *const libc::sockaddr {
        (self as *const Self).cast()
    }

    /// Capacity in bytes, to pass as `msg_namelen` / `addrlen` on receive.
    pub(crate) const CAPACITY: libc::socklen_t = mem::size_of::<Self>() as libc::socklen_t;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_v4_and_v6() {
        let addrs: [SocketAddr; 3] = [
            "192.0.2.7:4500".parse().unwrap(),
            "[2001:db8::1]:500".parse().unwrap(),
            SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 9, 0x12345, 3)),
        ];
        for a in addrs {
            let mut buf = SockAddrBuf::zeroed();
            let len = buf.set(&a);
            assert_eq!(buf.get(len), Some(a));
        }
    }

    #[test]
    fn rejects_short_or_unknown() {
        let mut buf = SockAddrBuf::zeroed();
        assert_eq!(buf.get(SockAddrBuf::CAPACITY), None, "AF_UNSPEC");
        let len = buf.set(&"192.0.2.7:1".parse().unwrap());
        assert_eq!(buf.get(len - 1), None, "truncated sockaddr_in");
        assert_eq!(buf.get(0), None);
    }
}
