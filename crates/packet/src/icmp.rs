//! ICMP "packet too big" replies for inner packets that do not fit the tunnel.
//!
//! [`too_big`] builds, into a caller buffer, either an ICMPv4 Destination Unreachable with code
//! 4 "fragmentation needed and DF set" carrying the next-hop MTU (RFC 792, RFC 1191 §4), or an
//! ICMPv6 Packet Too Big (RFC 4443 §3.2). The reply goes from `router_src` (an address of the
//! tunnel interface) back to the source of the offending packet, which it quotes.
//!
//! It refuses (returns `None`) where the RFCs forbid an ICMP error: in reply to an ICMP error
//! (RFC 1122 §3.2.2, RFC 1812 §4.3.2.7, RFC 4443 §2.4(e.1)), to a non-first IPv4 fragment or an
//! IPv4 packet sent to a broadcast or multicast address (RFC 1122 §3.2.2), and to a source that
//! does not name a single host: unspecified, loopback, multicast, broadcast or class E (RFC 1812
//! §4.3.2.7, RFC 4443 §2.4(e.5)). IPv6 Packet Too Big may answer a packet sent to a multicast
//! address (RFC 4443 §2.4(e.2) exception).
//!
//! What it does NOT do: it does not rate-limit (RFC 4443 §2.4(f): the caller must), does not
//! check that the packet really exceeds `mtu` or has DF set (the caller decides when to reply),
//! and does not clamp `mtu` to the IPv6 minimum of 1280.

use crate::ip::{
    Checksum, IPV4_MIN_HEADER_LEN, IPV6_HEADER_LEN, Ipv4Header, Ipv6Header, PROTO_ICMP,
    PROTO_ICMPV6, PROTO_IPV6_FRAG, checksum, inner_version,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Largest ICMPv4 error datagram: RFC 1812 §4.3.2.3 allows up to 576 octets.
pub const ICMPV4_MAX_LEN: usize = 576;
/// Largest ICMPv6 error packet: the IPv6 minimum MTU (RFC 4443 §2.4(c), RFC 8200 §5).
pub const ICMPV6_MAX_LEN: usize = 1280;
/// ICMP and ICMPv6 error header: type, code, checksum and 4 octets.
const ICMP_HEADER_LEN: usize = 8;
/// Octets of the original data that must be quoted after its IP header (RFC 792).
const MIN_QUOTED_DATA: usize = 8;
/// TTL / Hop Limit of the replies.
const REPLY_TTL: u8 = 64;
/// Precedence 6 (internetwork control) for ICMP errors (RFC 1812 §4.3.2.5).
const REPLY_TOS: u8 = 0xc0;

/// Builds an ICMP "too big" reply to `orig` into `out` and returns its length, or `None` if no
/// reply may be sent (see the module docs), `orig` is not a whole well-formed IPv4 or IPv6
/// packet, `router_src` is of the other family or not a unicast address, or `out` cannot hold
/// the headers plus the original IP header and 8 octets of its data.
///
/// The reply quotes as much of `orig` as fits in `out` and in 576 octets (ICMPv4) or 1280
/// octets (ICMPv6). For IPv4 the MTU is the 16-bit Next-Hop MTU field of RFC 1191 §4; for
/// IPv6 it is the 32-bit MTU field of RFC 4443 §3.2. Both checksums (IPv4 header and ICMP, or
/// ICMPv6 with its pseudo-header) are filled in.
pub fn too_big(orig: &[u8], mtu: u16, router_src: IpAddr, out: &mut [u8]) -> Option<usize> {
    match (inner_version(orig)?, router_src) {
        (4, IpAddr::V4(from)) => too_big_v4(orig, mtu, from, out),
        (6, IpAddr::V6(from)) => too_big_v6(orig, mtu, from, out),
        _ => None,
    }
}

/// Whether an IPv4 address names a single host (RFC 1812 §4.3.2.7).
fn is_host_v4(a: Ipv4Addr) -> bool {
    let first = a.octets()[0];
    // 0/8 "this network", 127/8 loopback, 224/4 multicast, 240/4 class E and broadcast.
    first != 0 && first != 127 && first < 224
}

/// Whether an IPv6 address may be the source or destination of an ICMPv6 error.
fn is_host_v6(a: Ipv6Addr) -> bool {
    !(a.is_unspecified() || a.is_multicast() || a.is_loopback())
}

/// ICMPv4 error types (RFC 792, RFC 1122 §3.2.2): Destination Unreachable, Source Quench,
/// Redirect, Time Exceeded, Parameter Problem.
fn is_icmpv4_error(icmp_type: u8) -> bool {
    matches!(icmp_type, 3 | 4 | 5 | 11 | 12)
}

fn too_big_v4(orig: &[u8], mtu: u16, from: Ipv4Addr, out: &mut [u8]) -> Option<usize> {
    let h = Ipv4Header::parse(orig)?;
    let pkt = h.packet()?;
    if !is_host_v4(from) || !is_host_v4(h.src()) {
        return None;
    }
    if h.dst().is_multicast() || h.dst().is_broadcast() || h.frag_offset() != 0 {
        return None;
    }
    if h.protocol() == PROTO_ICMP {
        // An ICMP packet with no type octet cannot be told apart from an error: stay silent.
        if is_icmpv4_error(*h.payload()?.first()?) {
            return None;
        }
    }
    let fixed = IPV4_MIN_HEADER_LEN + ICMP_HEADER_LEN;
    let quote = pkt
        .len()
        .min(ICMPV4_MAX_LEN - fixed)
        .min(out.len().checked_sub(fixed)?);
    if quote < pkt.len().min(h.header_len() + MIN_QUOTED_DATA) {
        return None;
    }
    let total = fixed + quote;
    let total16 = u16::try_from(total).ok()?;
    let reply = out.get_mut(..total)?;
    let (ip, rest) = reply.split_first_chunk_mut::<IPV4_MIN_HEADER_LEN>()?;
    let (icmp, quoted) = rest.split_first_chunk_mut::<ICMP_HEADER_LEN>()?;

    // ICMP message (RFC 792 "Destination Unreachable Message", RFC 1191 §4 Next-Hop MTU).
    let [mtu_hi, mtu_lo] = mtu.to_be_bytes();
    *icmp = [3, 4, 0, 0, 0, 0, mtu_hi, mtu_lo];
    quoted.copy_from_slice(pkt.get(..quote)?);
    let c = Checksum::new().add_bytes(icmp).add_bytes(quoted).finish();
    icmp[2..4].copy_from_slice(&c.to_be_bytes());

    // IPv4 header: no options; DF set with ID 0 is an atomic datagram (RFC 6864 §4.1).
    ip[..12].copy_from_slice(&[
        0x45, REPLY_TOS, 0, 0, 0, 0, 0x40, 0, REPLY_TTL, PROTO_ICMP, 0, 0,
    ]);
    ip[12..16].copy_from_slice(&from.octets());
    ip[16..20].copy_from_slice(&h.src().octets());
    ip[2..4].copy_from_slice(&total16.to_be_bytes());
    let c = checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    Some(total)
}

/// Whether the packet (a whole IPv6 packet) carries an ICMPv6 error: `Some(true)` if so,
/// `Some(false)` if not or if that cannot be known (a non-first fragment), `None` if the
/// extension header chain is truncated or too long to walk.
fn carries_icmpv6_error(pkt: &[u8], first_next: u8) -> Option<bool> {
    let mut next = first_next;
    let mut off = IPV6_HEADER_LEN;
    // RFC 8200 §4.1 recommends at most one of each header; 8 covers every legitimate chain.
    for _ in 0..8 {
        match next {
            PROTO_ICMPV6 => return Some(*pkt.get(off)? < 128),
            // Hop-by-Hop, Routing, Destination Options (RFC 8200 §4.3-4.6).
            0 | 43 | 60 => {
                next = *pkt.get(off)?;
                off += (usize::from(*pkt.get(off + 1)?) + 1) * 8;
            }
            // Authentication Header (RFC 4302 §2.2): length in 4-octet units minus 2.
            51 => {
                next = *pkt.get(off)?;
                off += (usize::from(*pkt.get(off + 1)?) + 2) * 4;
            }
            PROTO_IPV6_FRAG => {
                let frag = pkt.get(off..off + 8)?;
                if u16::from_be_bytes([frag[2], frag[3]]) & 0xfff8 != 0 {
                    // A later fragment: its upper-layer header is elsewhere.
                    return Some(false);
                }
                next = frag[0];
                off += 8;
            }
            _ => return Some(false),
        }
    }
    None
}

fn too_big_v6(orig: &[u8], mtu: u16, from: Ipv6Addr, out: &mut [u8]) -> Option<usize> {
    let h = Ipv6Header::parse(orig)?;
    let pkt = h.packet()?;
    if !is_host_v6(from) || !is_host_v6(h.src()) {
        return None;
    }
    if carries_icmpv6_error(pkt, h.next_header())? {
        return None;
    }
    let fixed = IPV6_HEADER_LEN + ICMP_HEADER_LEN;
    let quote = pkt
        .len()
        .min(ICMPV6_MAX_LEN - fixed)
        .min(out.len().checked_sub(fixed)?);
    if quote < pkt.len().min(IPV6_HEADER_LEN + MIN_QUOTED_DATA) {
        return None;
    }
    let total = fixed + quote;
    let icmp_len = ICMP_HEADER_LEN + quote;
    let icmp_len16 = u16::try_from(icmp_len).ok()?;
    let reply = out.get_mut(..total)?;
    let (ip, rest) = reply.split_first_chunk_mut::<IPV6_HEADER_LEN>()?;
    let (icmp, quoted) = rest.split_first_chunk_mut::<ICMP_HEADER_LEN>()?;
    let dst = h.src();

    // ICMPv6 Packet Too Big (RFC 4443 §3.2): type 2, code 0, 32-bit MTU.
    let [_, _, mtu_hi, mtu_lo] = u32::from(mtu).to_be_bytes();
    *icmp = [2, 0, 0, 0, 0, 0, mtu_hi, mtu_lo];
    quoted.copy_from_slice(pkt.get(..quote)?);
    let c = Checksum::new()
        .add_pseudo_v6(from, dst, PROTO_ICMPV6, u32::from(icmp_len16))
        .add_bytes(icmp)
        .add_bytes(quoted)
        .finish();
    icmp[2..4].copy_from_slice(&c.to_be_bytes());

    // IPv6 header (RFC 8200 §3).
    ip[..4].copy_from_slice(&[0x60, 0, 0, 0]);
    ip[4..6].copy_from_slice(&icmp_len16.to_be_bytes());
    ip[6] = PROTO_ICMPV6;
    ip[7] = REPLY_TTL;
    ip[8..24].copy_from_slice(&from.octets());
    ip[24..40].copy_from_slice(&dst.octets());
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{V4_SRC, ipv4, ipv6, tcp_v4, tcp_v6, v6_src};
    use proptest::prelude::*;

    const ROUTER4: Ipv4Addr = Ipv4Addr::new(169, 254, 21, 2);

    fn router6() -> Ipv6Addr {
        "fd00::1".parse().expect("addr")
    }

    /// A big TCP packet (1500 octets) over IPv4.
    fn big_v4() -> Vec<u8> {
        let payload: Vec<u8> = (0..1460u32).map(|i| (i * 7) as u8).collect();
        tcp_v4(0x10, &[], &payload)
    }

    fn big_v6() -> Vec<u8> {
        let payload: Vec<u8> = (0..1440u32).map(|i| (i * 13) as u8).collect();
        tcp_v6(0x10, &[], &payload)
    }

    /// Parses an ICMPv4 too-big reply; returns (next-hop MTU, quoted bytes).
    fn parse_v4(reply: &[u8], to: Ipv4Addr) -> (u16, Vec<u8>) {
        let h = Ipv4Header::parse(reply).expect("ipv4 header");
        assert!(h.checksum_ok(), "IPv4 header checksum");
        assert_eq!(usize::from(h.total_len()), reply.len());
        assert_eq!(h.protocol(), PROTO_ICMP);
        assert_eq!(h.src(), ROUTER4);
        assert_eq!(h.dst(), to);
        assert!(h.ttl() > 0);
        let icmp = h.payload().expect("icmp");
        assert_eq!(checksum(icmp), 0, "ICMP checksum");
        assert_eq!((icmp[0], icmp[1]), (3, 4));
        assert_eq!(&icmp[4..6], &[0, 0], "unused field");
        (u16::from_be_bytes([icmp[6], icmp[7]]), icmp[8..].to_vec())
    }

    /// Parses an ICMPv6 Packet Too Big; returns (MTU, quoted bytes).
    fn parse_v6(reply: &[u8], to: Ipv6Addr) -> (u32, Vec<u8>) {
        let h = Ipv6Header::parse(reply).expect("ipv6 header");
        assert_eq!(usize::from(h.payload_len()) + 40, reply.len());
        assert_eq!(h.next_header(), PROTO_ICMPV6);
        assert_eq!(h.src(), router6());
        assert_eq!(h.dst(), to);
        let icmp = h.payload().expect("icmp");
        let mut c = Checksum::new();
        c.add_pseudo_v6(
            h.src(),
            h.dst(),
            PROTO_ICMPV6,
            u32::try_from(icmp.len()).expect("len"),
        )
        .add_bytes(icmp);
        assert_eq!(c.finish(), 0, "ICMPv6 checksum");
        assert_eq!((icmp[0], icmp[1]), (2, 0));
        (
            u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]]),
            icmp[8..].to_vec(),
        )
    }

    #[test]
    fn v4_reply_for_big_packet() {
        let orig = big_v4();
        let mut out = [0u8; 2048];
        let n = too_big(&orig, 1438, IpAddr::V4(ROUTER4), &mut out).expect("reply");
        assert_eq!(n, ICMPV4_MAX_LEN);
        let (mtu, quoted) = parse_v4(&out[..n], V4_SRC);
        assert_eq!(mtu, 1438);
        assert_eq!(quoted, &orig[..576 - 28]);
        let h = Ipv4Header::parse(&out[..n]).expect("header");
        assert_eq!(h.tos(), 0xc0);
        assert!(h.dont_fragment());
    }

    #[test]
    fn v4_small_packet_quoted_whole() {
        let orig = tcp_v4(0x02, &[2, 4, 5, 0xb4], b"x");
        let mut out = [0u8; 600];
        let n = too_big(&orig, 1400, IpAddr::V4(ROUTER4), &mut out).expect("reply");
        assert_eq!(n, 28 + orig.len());
        let (_, quoted) = parse_v4(&out[..n], V4_SRC);
        assert_eq!(quoted, orig);
    }

    #[test]
    fn v4_link_padding_not_quoted() {
        let orig = tcp_v4(0x10, &[], b"abc");
        let mut padded = orig.clone();
        padded.extend_from_slice(&[0xee; 10]);
        let mut out = [0u8; 600];
        let n = too_big(&padded, 1400, IpAddr::V4(ROUTER4), &mut out).expect("reply");
        assert_eq!(parse_v4(&out[..n], V4_SRC).1, orig);
    }

    #[test]
    fn v4_out_buffer_limits_quote() {
        let orig = big_v4();
        // Exactly room for the headers plus the original IP header and 8 octets.
        let mut out = [0u8; 28 + 28];
        let n = too_big(&orig, 1400, IpAddr::V4(ROUTER4), &mut out).expect("reply");
        assert_eq!(n, 56);
        assert_eq!(parse_v4(&out[..n], V4_SRC).1, &orig[..28]);
        let mut small = [0u8; 55];
        assert_eq!(too_big(&orig, 1400, IpAddr::V4(ROUTER4), &mut small), None);
        assert_eq!(too_big(&orig, 1400, IpAddr::V4(ROUTER4), &mut []), None);
    }

    #[test]
    fn v6_reply_for_big_packet() {
        let orig = big_v6();
        let mut out = [0u8; 2048];
        let n = too_big(&orig, 1406, IpAddr::V6(router6()), &mut out).expect("reply");
        assert_eq!(n, ICMPV6_MAX_LEN);
        let (mtu, quoted) = parse_v6(&out[..n], v6_src());
        assert_eq!(mtu, 1406);
        assert_eq!(quoted, &orig[..1280 - 48]);
    }

    #[test]
    fn v6_small_packet_and_small_buffer() {
        let orig = tcp_v6(0x10, &[], b"hello");
        let mut out = [0u8; 1500];
        let n = too_big(&orig, 1300, IpAddr::V6(router6()), &mut out).expect("reply");
        assert_eq!(parse_v6(&out[..n], v6_src()).1, orig);
        let big = big_v6();
        let mut out = [0u8; 48 + 48];
        let n = too_big(&big, 1300, IpAddr::V6(router6()), &mut out).expect("reply");
        assert_eq!(parse_v6(&out[..n], v6_src()).1, &big[..48]);
        let mut small = [0u8; 95];
        assert_eq!(too_big(&big, 1300, IpAddr::V6(router6()), &mut small), None);
    }

    #[test]
    fn v6_answers_multicast_destination() {
        let mut orig = ipv6(17, &[0u8; 16]);
        orig[24] = 0xff;
        orig[25] = 0x0e;
        let mut out = [0u8; 1280];
        assert!(too_big(&orig, 1300, IpAddr::V6(router6()), &mut out).is_some());
    }

    #[test]
    fn never_answers_icmp_errors_v4() {
        let mut out = [0u8; 600];
        for t in [3u8, 4, 5, 11, 12] {
            let orig = ipv4(PROTO_ICMP, &[], true, 1, &[t, 0, 0, 0, 0, 0, 0, 0]);
            assert_eq!(
                too_big(&orig, 1400, IpAddr::V4(ROUTER4), &mut out),
                None,
                "type {t}"
            );
        }
        // An echo request is not an error: it gets a reply.
        let echo = ipv4(PROTO_ICMP, &[], true, 1, &[8, 0, 0, 0, 0, 0, 0, 0]);
        assert!(too_big(&echo, 1400, IpAddr::V4(ROUTER4), &mut out).is_some());
        // ICMP without even a type octet: silent.
        let empty = ipv4(PROTO_ICMP, &[], true, 1, &[]);
        assert_eq!(too_big(&empty, 1400, IpAddr::V4(ROUTER4), &mut out), None);
    }

    #[test]
    fn never_answers_icmp_errors_v6() {
        let mut out = [0u8; 1280];
        for t in [1u8, 2, 3, 4, 127] {
            let orig = ipv6(PROTO_ICMPV6, &[t, 0, 0, 0, 0, 0, 0, 0]);
            assert_eq!(
                too_big(&orig, 1300, IpAddr::V6(router6()), &mut out),
                None,
                "type {t}"
            );
        }
        let echo = ipv6(PROTO_ICMPV6, &[128, 0, 0, 0, 0, 0, 0, 0]);
        assert!(too_big(&echo, 1300, IpAddr::V6(router6()), &mut out).is_some());
        // An error behind Hop-by-Hop and Destination Options headers is still an error.
        let mut chain = vec![60, 0, 1, 4, 0, 0, 0, 0];
        chain.extend_from_slice(&[PROTO_ICMPV6, 0, 1, 4, 0, 0, 0, 0]);
        chain.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        let behind = ipv6(0, &chain);
        assert_eq!(
            too_big(&behind, 1300, IpAddr::V6(router6()), &mut out),
            None
        );
        // Echo request behind a first-fragment header: replied to.
        let frag = [PROTO_ICMPV6, 0, 0, 1, 0, 0, 0, 9, 128, 0, 0, 0, 0, 0, 0, 0];
        assert!(
            too_big(
                &ipv6(PROTO_IPV6_FRAG, &frag),
                1300,
                IpAddr::V6(router6()),
                &mut out
            )
            .is_some()
        );
        // A truncated chain cannot be judged: silent.
        let cut = ipv6(0, &[PROTO_ICMPV6, 3, 1, 4, 0, 0, 0, 0]);
        assert_eq!(too_big(&cut, 1300, IpAddr::V6(router6()), &mut out), None);
    }

    #[test]
    fn bad_sources_v4() {
        let mut out = [0u8; 600];
        for src in [
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.5",
            "239.1.2.3",
            "127.0.0.1",
            "240.0.0.1",
        ] {
            let mut orig = big_v4();
            let a: Ipv4Addr = src.parse().expect("addr");
            orig[12..16].copy_from_slice(&a.octets());
            assert_eq!(
                too_big(&orig, 1400, IpAddr::V4(ROUTER4), &mut out),
                None,
                "src {src}"
            );
        }
        for dst in ["255.255.255.255", "224.0.0.251"] {
            let mut orig = big_v4();
            let a: Ipv4Addr = dst.parse().expect("addr");
            orig[16..20].copy_from_slice(&a.octets());
            assert_eq!(
                too_big(&orig, 1400, IpAddr::V4(ROUTER4), &mut out),
                None,
                "dst {dst}"
            );
        }
        // Router source must be unicast and of the same family.
        let orig = big_v4();
        assert_eq!(
            too_big(&orig, 1400, IpAddr::V4(Ipv4Addr::UNSPECIFIED), &mut out),
            None
        );
        assert_eq!(too_big(&orig, 1400, IpAddr::V6(router6()), &mut out), None);
    }

    #[test]
    fn bad_sources_v6() {
        let mut out = [0u8; 1280];
        for src in ["::", "ff02::1", "::1"] {
            let mut orig = big_v6();
            let a: Ipv6Addr = src.parse().expect("addr");
            orig[8..24].copy_from_slice(&a.octets());
            assert_eq!(
                too_big(&orig, 1300, IpAddr::V6(router6()), &mut out),
                None,
                "src {src}"
            );
        }
        let orig = big_v6();
        assert_eq!(too_big(&orig, 1300, IpAddr::V4(ROUTER4), &mut out), None);
        assert_eq!(
            too_big(&orig, 1300, IpAddr::V6(Ipv6Addr::UNSPECIFIED), &mut out),
            None
        );
    }

    #[test]
    fn non_first_fragment_v4_silent() {
        let mut orig = big_v4();
        orig[6] = 0x20;
        orig[7] = 0x10;
        let mut out = [0u8; 600];
        assert_eq!(too_big(&orig, 1400, IpAddr::V4(ROUTER4), &mut out), None);
        // The first fragment (offset 0, MF) is answered.
        orig[7] = 0;
        assert!(too_big(&orig, 1400, IpAddr::V4(ROUTER4), &mut out).is_some());
    }

    #[test]
    fn truncated_originals_silent() {
        let mut out = [0u8; 1500];
        let v4 = big_v4();
        for cut in [0, 1, 19, 20, 100, v4.len() - 1] {
            assert_eq!(
                too_big(&v4[..cut], 1400, IpAddr::V4(ROUTER4), &mut out),
                None
            );
        }
        let v6 = big_v6();
        for cut in [0, 39, 40, 100, v6.len() - 1] {
            assert_eq!(
                too_big(&v6[..cut], 1300, IpAddr::V6(router6()), &mut out),
                None
            );
        }
    }

    proptest! {
        #[test]
        fn random_input_never_panics(
            mut data in proptest::collection::vec(any::<u8>(), 0..200),
            v6 in any::<bool>(),
            out_len in 0usize..1400,
            fix_len in any::<bool>(),
        ) {
            if let Some(b) = data.first_mut() {
                *b = if v6 { 0x60 | (*b & 0x0f) } else { 0x45 };
            }
            // Make the length fields agree with the buffer most of the time, so that the
            // reply path is exercised and not only the refusals.
            let len = u16::try_from(data.len()).expect("small");
            if fix_len && !v6 && data.len() >= 20 {
                data[2..4].copy_from_slice(&len.to_be_bytes());
            }
            if fix_len && v6 && data.len() >= 40 {
                data[4..6].copy_from_slice(&(len - 40).to_be_bytes());
            }
            let mut out = vec![0u8; out_len];
            let from = if v6 { IpAddr::V6(router6()) } else { IpAddr::V4(ROUTER4) };
            if let Some(n) = too_big(&data, 1300, from, &mut out) {
                prop_assert!(n <= out_len);
                let orig_src = if v6 {
                    IpAddr::V6(Ipv6Header::parse(&data).expect("parsed").src())
                } else {
                    IpAddr::V4(Ipv4Header::parse(&data).expect("parsed").src())
                };
                match orig_src {
                    IpAddr::V4(a) => { parse_v4(&out[..n], a); }
                    IpAddr::V6(a) => { parse_v6(&out[..n], a); }
                }
            }
        }
    }
}
