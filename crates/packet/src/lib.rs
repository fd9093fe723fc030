//! Pure functions over inner IP packets: the plaintext IPv4 and IPv6 packets that a TUN device
//! hands to the ESP dataplane and that come back out of a tunnel.
//!
//! What it does:
//! - [`ip`]: bounds-checked typed views of IPv4 and IPv6 headers, [`inner_version`], and the
//!   Internet checksum with incremental update (RFC 1071, RFC 1624).
//! - [`mtu`]: the largest inner packet that fits an ESP tunnel over a given underlay MTU.
//! - [`mss`]: TCP MSS clamping on SYN segments, in place, with an incremental checksum fix.
//! - [`icmp`]: ICMPv4 "fragmentation needed" and ICMPv6 "Packet Too Big" replies.
//! - [`frag`]: RFC 791 fragmentation of IPv4 packets that allow it.
//!
//! What it does NOT do: any I/O, any allocation on the per-packet paths (everything writes into
//! caller-provided buffers), reassembly, IPv6 fragmentation (RFC 8200 leaves that to the
//! source), path MTU discovery state, or any decision about *when* to clamp, fragment or reply:
//! the dataplane makes those. Malformed input is reported as `None`, `false` or an error, never
//! a panic.

#![forbid(unsafe_code)]

pub mod frag;
pub mod icmp;
pub mod ip;
pub mod mss;
pub mod mtu;

#[cfg(test)]
mod testutil;

pub use frag::{FragError, Fragmenter, fragment_ipv4};
pub use icmp::too_big;
pub use ip::{Checksum, Ipv4Header, Ipv6Header, checksum, checksum_update16, inner_version};
pub use mss::{clamp_mss, mss_for_mtu};
pub use mtu::{esp_outer_len, tunnel_mtu};
