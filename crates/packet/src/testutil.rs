//! Packet builders and from-scratch checksum verifiers shared by the unit tests.

use crate::ip::{Checksum, Ipv4Header, Ipv6Header, PROTO_TCP, checksum};
use std::net::{Ipv4Addr, Ipv6Addr};

pub(crate) const V4_SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub(crate) const V4_DST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

pub(crate) fn v6_src() -> Ipv6Addr {
    "2001:db8::1".parse().expect("addr")
}

pub(crate) fn v6_dst() -> Ipv6Addr {
    "2001:db8:1::9".parse().expect("addr")
}

/// An IPv4 packet with the given options (padded to 4 octets with EOL), flags octet bits and
/// payload, and a correct header checksum.
pub(crate) fn ipv4(proto: u8, options: &[u8], df: bool, id: u16, payload: &[u8]) -> Vec<u8> {
    let mut opts = options.to_vec();
    while opts.len() % 4 != 0 {
        opts.push(0);
    }
    let hlen = 20 + opts.len();
    let total = hlen + payload.len();
    let mut p = vec![0u8; 20];
    p[0] = 0x40 | u8::try_from(hlen / 4).expect("ihl");
    p[1] = 0x10;
    p[2..4].copy_from_slice(&u16::try_from(total).expect("len").to_be_bytes());
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6] = if df { 0x40 } else { 0 };
    p[8] = 64;
    p[9] = proto;
    p[12..16].copy_from_slice(&V4_SRC.octets());
    p[16..20].copy_from_slice(&V4_DST.octets());
    p.extend_from_slice(&opts);
    let c = checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// An IPv6 packet with the given next header and payload.
pub(crate) fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 40];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&u16::try_from(payload.len()).expect("len").to_be_bytes());
    p[6] = next;
    p[7] = 64;
    p[8..24].copy_from_slice(&v6_src().octets());
    p[24..40].copy_from_slice(&v6_dst().octets());
    p.extend_from_slice(payload);
    p
}

/// A TCP header with the given flags and options (padded with EOL to 4 octets) and payload;
/// the checksum is left 0.
pub(crate) fn tcp(flags: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut opts = options.to_vec();
    while opts.len() % 4 != 0 {
        opts.push(0);
    }
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&40000u16.to_be_bytes());
    t[2..4].copy_from_slice(&443u16.to_be_bytes());
    t[4..8].copy_from_slice(&0x0102_0304u32.to_be_bytes());
    t[12] = u8::try_from((20 + opts.len()) / 4).expect("doff") << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    t.extend_from_slice(&opts);
    t.extend_from_slice(payload);
    t
}

/// A complete IPv4 TCP packet with correct IP and TCP checksums.
pub(crate) fn tcp_v4(flags: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut t = tcp(flags, options, payload);
    let mut c = Checksum::new();
    c.add_pseudo_v4(
        V4_SRC,
        V4_DST,
        PROTO_TCP,
        u16::try_from(t.len()).expect("len"),
    )
    .add_bytes(&t);
    t[16..18].copy_from_slice(&c.finish().to_be_bytes());
    ipv4(PROTO_TCP, &[], true, 7, &t)
}

/// A complete IPv6 TCP packet with a correct TCP checksum.
pub(crate) fn tcp_v6(flags: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut t = tcp(flags, options, payload);
    let mut c = Checksum::new();
    c.add_pseudo_v6(
        v6_src(),
        v6_dst(),
        PROTO_TCP,
        u32::try_from(t.len()).expect("len"),
    )
    .add_bytes(&t);
    t[16..18].copy_from_slice(&c.finish().to_be_bytes());
    ipv6(PROTO_TCP, &t)
}

/// Verifies the TCP checksum of an IPv4 or IPv6 TCP packet from scratch.
pub(crate) fn tcp_checksum_ok(pkt: &[u8]) -> bool {
    let mut c = Checksum::new();
    if let Some(h) = Ipv4Header::parse(pkt) {
        let seg = h.payload().expect("payload");
        c.add_pseudo_v4(
            h.src(),
            h.dst(),
            h.protocol(),
            u16::try_from(seg.len()).expect("len"),
        )
        .add_bytes(seg);
    } else {
        let h = Ipv6Header::parse(pkt).expect("ip packet");
        let seg = h.payload().expect("payload");
        c.add_pseudo_v6(
            h.src(),
            h.dst(),
            h.next_header(),
            u32::try_from(seg.len()).expect("len"),
        )
        .add_bytes(seg);
    }
    c.finish() == 0
}
