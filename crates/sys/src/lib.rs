//! Linux system interfaces for bridgehead: the only crate in the workspace with `unsafe`.
//!
//! What it does:
//! - [`tun`]: multi-queue TUN devices (`IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE`), one non-blocking
//!   file descriptor per queue, with an optional `IFF_VNET_HDR` + `TUNSETOFFLOAD` probe and a
//!   codec for the `virtio_net_hdr` ([`tun::VnetHdr`]).
//! - [`udp`]: non-blocking UDP sockets (IPv4, or IPv6 with `IPV6_V6ONLY`) with `SO_REUSEPORT`,
//!   forced buffer sizes and batched `recvmmsg`/`sendmmsg` of up to [`MAX_BATCH`] datagrams,
//!   optionally with UDP GSO (`UDP_SEGMENT`) on send and GRO (`UDP_GRO`) on receive.
//! - [`rawesp`]: raw IP protocol 50 (ESP, RFC 4303) sockets with the same batch API; the IPv4
//!   header is stripped on receive.
//! - [`link`]: synchronous rtnetlink requests (link MTU/up, addresses, routes, route dump) and
//!   `/proc/sys` writes.
//! - [`poll`]: a small epoll wrapper and an eventfd for waking workers.
//! - [`cpu`]: online CPU count and thread pinning.
//! - `netns` (tests, or the `testing` feature): run a closure in a fresh network namespace.
//!
//! What it does NOT do: no protocol logic (ESP, IKE, BGP live elsewhere), no async runtime
//! integration, no heap allocation on the per-packet paths (`recv_batch`, `send_batch`,
//! `TunQueue::read`/`write`), no persistent TUN devices (a device disappears when its last queue
//! is closed), no segmentation or coalescing of TUN vnet-header packets (callers do that with
//! [`tun::VnetHdr`]), no `IP_PKTINFO`, no netlink change notifications, and no platform other
//! than Linux.
//!
//! Every fallible call returns [`std::io::Result`]; errors carry the kernel's errno, so callers
//! can match on [`std::io::Error::raw_os_error`] or [`std::io::ErrorKind`].

#![cfg(target_os = "linux")]

mod addr;
mod mmsg;
mod sockopt;

pub mod clock;
pub mod cpu;
pub mod link;
pub mod poll;
pub mod rawesp;
pub mod tcp_md5;
pub mod tun;
pub mod udp;

#[cfg(any(test, feature = "testing"))]
pub mod netns;

pub use mmsg::{GsoMsg, MAX_BATCH, MAX_GSO_SEGMENTS, RecvMeta, SendMsg};

#[cfg(test)]
mod tests;
