//! Minimal typed views over IPv4 and IPv6 headers, and the Internet checksum.
//!
//! The views borrow the packet bytes and decode fields on demand; constructing one checks that
//! the fixed header is present, so no accessor can index out of bounds. Nothing here allocates.
//!
//! What this module does NOT do: it does not walk IPv6 extension headers (callers that need the
//! upper-layer protocol do that themselves), it does not validate IPv4 options, and it does not
//! check that addresses make sense for routing.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Length of an IPv4 header without options.
pub const IPV4_MIN_HEADER_LEN: usize = 20;
/// Length of the fixed IPv6 header (RFC 8200 §3).
pub const IPV6_HEADER_LEN: usize = 40;

/// IP protocol number of ICMP (RFC 792).
pub const PROTO_ICMP: u8 = 1;
/// IP protocol number of TCP (RFC 9293).
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP (RFC 768).
pub const PROTO_UDP: u8 = 17;
/// IPv6 next-header value of the Fragment header (RFC 8200 §4.5).
pub const PROTO_IPV6_FRAG: u8 = 44;
/// IPv6 next-header value of ICMPv6 (RFC 4443).
pub const PROTO_ICMPV6: u8 = 58;

/// The IP version of a packet read from a TUN device: `Some(4)` or `Some(6)`, or `None` if the
/// buffer is empty or the version nibble is anything else.
///
/// Only the first nibble is looked at; use [`Ipv4Header::parse`] or [`Ipv6Header::parse`] to
/// check that the header is actually there.
#[inline]
pub fn inner_version(pkt: &[u8]) -> Option<u8> {
    match pkt.first().map(|b| b >> 4) {
        Some(v @ (4 | 6)) => Some(v),
        _ => None,
    }
}

/// A read-only view of an IPv4 header (RFC 791 §3.1).
///
/// [`Ipv4Header::parse`] checks the version, that the IHL is at least 5 and that the whole
/// header (options included) is inside the buffer. It does not require the Total Length to
/// match the buffer, so a truncated packet quoted in an ICMP error can still be viewed; use
/// [`Ipv4Header::payload`] for the strict, length-checked payload.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Header<'a> {
    fixed: &'a [u8; IPV4_MIN_HEADER_LEN],
    header: &'a [u8],
    packet: &'a [u8],
}

impl<'a> Ipv4Header<'a> {
    /// Views the IPv4 header at the start of `pkt`, or `None` if it is not a well-formed one.
    pub fn parse(pkt: &'a [u8]) -> Option<Self> {
        let fixed = pkt.first_chunk::<IPV4_MIN_HEADER_LEN>()?;
        if fixed[0] >> 4 != 4 {
            return None;
        }
        let hlen = usize::from(fixed[0] & 0x0f) * 4;
        if hlen < IPV4_MIN_HEADER_LEN {
            return None;
        }
        let header = pkt.get(..hlen)?;
        Some(Self {
            fixed,
            header,
            packet: pkt,
        })
    }

    /// Header length in octets (IHL × 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.header.len()
    }

    /// The Type of Service octet (DSCP and ECN, RFC 2474 / RFC 3168).
    #[inline]
    pub fn tos(&self) -> u8 {
        self.fixed[1]
    }

    /// The Total Length field: header plus data, in octets.
    #[inline]
    pub fn total_len(&self) -> u16 {
        u16::from_be_bytes([self.fixed[2], self.fixed[3]])
    }

    /// The Identification field.
    #[inline]
    pub fn identification(&self) -> u16 {
        u16::from_be_bytes([self.fixed[4], self.fixed[5]])
    }

    /// The Don't Fragment flag.
    #[inline]
    pub fn dont_fragment(&self) -> bool {
        self.fixed[6] & 0x40 != 0
    }

    /// The More Fragments flag.
    #[inline]
    pub fn more_fragments(&self) -> bool {
        self.fixed[6] & 0x20 != 0
    }

    /// The Fragment Offset, in units of 8 octets.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        u16::from_be_bytes([self.fixed[6] & 0x1f, self.fixed[7]])
    }

    /// Whether this is a fragment (first or later) of a larger datagram.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.more_fragments() || self.frag_offset() != 0
    }

    /// The Time to Live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.fixed[8]
    }

    /// The Protocol field (e.g. [`PROTO_TCP`]).
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.fixed[9]
    }

    /// The Header Checksum field as stored.
    #[inline]
    pub fn header_checksum(&self) -> u16 {
        u16::from_be_bytes([self.fixed[10], self.fixed[11]])
    }

    /// The source address.
    #[inline]
    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::new(
            self.fixed[12],
            self.fixed[13],
            self.fixed[14],
            self.fixed[15],
        )
    }

    /// The destination address.
    #[inline]
    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::new(
            self.fixed[16],
            self.fixed[17],
            self.fixed[18],
            self.fixed[19],
        )
    }

    /// The whole header, options included.
    #[inline]
    pub fn header(&self) -> &'a [u8] {
        self.header
    }

    /// The options (possibly empty), between the fixed header and the data.
    #[inline]
    pub fn options(&self) -> &'a [u8] {
        self.header.get(IPV4_MIN_HEADER_LEN..).unwrap_or_default()
    }

    /// Whether the header checksum verifies (RFC 791 §3.1: the ones' complement sum over the
    /// header, checksum field included, is all ones).
    #[inline]
    pub fn checksum_ok(&self) -> bool {
        checksum(self.header) == 0
    }

    /// The data after the header, up to Total Length; `None` if Total Length is shorter than
    /// the header or longer than the buffer. Octets past Total Length (link padding) are left out.
    pub fn payload(&self) -> Option<&'a [u8]> {
        self.packet
            .get(self.header_len()..usize::from(self.total_len()))
    }

    /// The packet up to Total Length (header and data), with the same checks as
    /// [`Ipv4Header::payload`].
    pub fn packet(&self) -> Option<&'a [u8]> {
        let total = usize::from(self.total_len());
        if total < self.header_len() {
            return None;
        }
        self.packet.get(..total)
    }
}

/// Recomputes the IPv4 header checksum of the packet at the start of `pkt` in place.
/// Returns `false`, leaving `pkt` untouched, if there is no well-formed IPv4 header.
pub fn set_ipv4_checksum(pkt: &mut [u8]) -> bool {
    let Some(hlen) = Ipv4Header::parse(pkt).map(|h| h.header_len()) else {
        return false;
    };
    let Some(header) = pkt.get_mut(..hlen) else {
        return false;
    };
    header[10] = 0;
    header[11] = 0;
    let c = checksum(header);
    header[10..12].copy_from_slice(&c.to_be_bytes());
    true
}

/// A read-only view of the fixed IPv6 header (RFC 8200 §3).
///
/// [`Ipv6Header::parse`] checks the version and that the 40-octet header is present; it does
/// not look at extension headers.
#[derive(Clone, Copy, Debug)]
pub struct Ipv6Header<'a> {
    fixed: &'a [u8; IPV6_HEADER_LEN],
    packet: &'a [u8],
}

impl<'a> Ipv6Header<'a> {
    /// Views the IPv6 header at the start of `pkt`, or `None` if it is not one.
    pub fn parse(pkt: &'a [u8]) -> Option<Self> {
        let fixed = pkt.first_chunk::<IPV6_HEADER_LEN>()?;
        if fixed[0] >> 4 != 6 {
            return None;
        }
        Some(Self { fixed, packet: pkt })
    }

    /// The Traffic Class octet.
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.fixed[0] << 4) | (self.fixed[1] >> 4)
    }

    /// The 20-bit Flow Label.
    #[inline]
    pub fn flow_label(&self) -> u32 {
        u32::from_be_bytes([0, self.fixed[1] & 0x0f, self.fixed[2], self.fixed[3]])
    }

    /// The Payload Length field: octets after the fixed header, extension headers included.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        u16::from_be_bytes([self.fixed[4], self.fixed[5]])
    }

    /// The Next Header field.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.fixed[6]
    }

    /// The Hop Limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.fixed[7]
    }

    /// The source address.
    #[inline]
    pub fn src(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.fixed[8..24]);
        Ipv6Addr::from(a)
    }

    /// The destination address.
    #[inline]
    pub fn dst(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.fixed[24..40]);
        Ipv6Addr::from(a)
    }

    /// The 40-octet fixed header.
    #[inline]
    pub fn header(&self) -> &'a [u8] {
        self.fixed
    }

    /// The octets after the fixed header, up to Payload Length; `None` if the buffer is shorter.
    /// A jumbogram (Payload Length 0, RFC 2675) yields an empty payload.
    pub fn payload(&self) -> Option<&'a [u8]> {
        self.packet
            .get(IPV6_HEADER_LEN..IPV6_HEADER_LEN + usize::from(self.payload_len()))
    }

    /// The packet up to Payload Length (header and payload), with the same check as
    /// [`Ipv6Header::payload`].
    pub fn packet(&self) -> Option<&'a [u8]> {
        self.packet
            .get(..IPV6_HEADER_LEN + usize::from(self.payload_len()))
    }
}

/// A running ones' complement sum for the Internet checksum (RFC 1071).
///
/// Chunks may have any length: an odd-length chunk is continued correctly by the next one.
#[derive(Clone, Copy, Debug, Default)]
pub struct Checksum {
    sum: u64,
    odd: bool,
}

impl Checksum {
    /// An empty sum.
    #[inline]
    pub const fn new() -> Self {
        Self { sum: 0, odd: false }
    }

    /// Adds `data` as if it followed the bytes added so far.
    pub fn add_bytes(&mut self, mut data: &[u8]) -> &mut Self {
        if self.odd {
            if let Some((&b, rest)) = data.split_first() {
                self.sum += u64::from(b);
                data = rest;
                self.odd = false;
            }
        }
        let mut words = data.chunks_exact(4);
        for w in &mut words {
            self.sum += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
        }
        let mut rest = words.remainder();
        if let Some((pair, tail)) = rest.split_first_chunk::<2>() {
            self.sum += u64::from(u16::from_be_bytes(*pair));
            rest = tail;
        }
        if let Some(&b) = rest.first() {
            self.sum += u64::from(b) << 8;
            self.odd = true;
        }
        self
    }

    /// Adds one 16-bit word. It must fall at an even position, i.e. after an even number of
    /// octets have been added, as it does in every header and pseudo-header.
    #[inline]
    pub fn add_u16(&mut self, v: u16) -> &mut Self {
        self.sum += u64::from(v);
        self
    }

    /// Adds the IPv4 pseudo-header used by TCP, UDP (RFC 9293 §3.1, RFC 768).
    pub fn add_pseudo_v4(
        &mut self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: u8,
        len: u16,
    ) -> &mut Self {
        self.add_bytes(&src.octets())
            .add_bytes(&dst.octets())
            .add_u16(u16::from(proto))
            .add_u16(len)
    }

    /// Adds the IPv6 pseudo-header used by TCP, UDP and ICMPv6 (RFC 8200 §8.1).
    pub fn add_pseudo_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr, next: u8, len: u32) -> &mut Self {
        self.add_bytes(&src.octets())
            .add_bytes(&dst.octets())
            .add_bytes(&len.to_be_bytes())
            .add_u16(u16::from(next))
    }

    /// The ones' complement sum folded to 16 bits (not complemented).
    #[inline]
    pub fn folded(&self) -> u16 {
        fold(self.sum)
    }

    /// The checksum to store: the complement of the folded sum. Over data that includes a
    /// correct checksum field this is 0.
    #[inline]
    pub fn finish(&self) -> u16 {
        !self.folded()
    }
}

#[inline]
fn fold(mut s: u64) -> u16 {
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    // After three 16-bit folds of a value below 2^33 the high bits are gone.
    (s & 0xffff) as u16
}

/// The Internet checksum of `data` (RFC 1071): the complement of the 16-bit ones' complement
/// sum. Computing it over data whose checksum field is correct gives 0.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    Checksum::new().add_bytes(data).finish()
}

/// Updates checksum `csum` after a 16-bit word covered by it changed from `old` to `new`
/// (RFC 1624 §3, eqn. 3: `HC' = ~(~HC + ~m + m')`).
///
/// The word must sit at an even offset from the start of the checksummed data; for a word at an
/// odd offset pass `old.swap_bytes()` and `new.swap_bytes()` (RFC 1071 §2(B), byte-order
/// independence).
#[inline]
pub fn checksum_update16(csum: u16, old: u16, new: u16) -> u16 {
    let s = u64::from(!csum) + u64::from(!old) + u64::from(new);
    !fold(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A straightforward RFC 1071 reference: 16-bit big-endian words, odd byte padded with zero.
    fn reference_checksum(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for pair in data.chunks(2) {
            let w = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(w);
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    /// The example header from many textbooks (checksum 0xb861).
    const SAMPLE_V4: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    #[test]
    fn rfc1071_example_sum() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (ones' complement).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(Checksum::new().add_bytes(&data).folded(), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn known_ipv4_header_checksum() {
        let h = Ipv4Header::parse(&SAMPLE_V4).expect("valid header");
        assert!(h.checksum_ok());
        assert_eq!(h.header_checksum(), 0xb861);
        let mut copy = SAMPLE_V4;
        copy[10] = 0;
        copy[11] = 0;
        assert_eq!(checksum(&copy), 0xb861);
        assert!(set_ipv4_checksum(&mut copy));
        assert_eq!(copy, SAMPLE_V4);
    }

    #[test]
    fn ipv4_fields() {
        let h = Ipv4Header::parse(&SAMPLE_V4).expect("valid header");
        assert_eq!(h.header_len(), 20);
        assert_eq!(h.total_len(), 0x73);
        assert!(h.dont_fragment());
        assert!(!h.more_fragments());
        assert_eq!(h.frag_offset(), 0);
        assert!(!h.is_fragment());
        assert_eq!(h.ttl(), 64);
        assert_eq!(h.protocol(), PROTO_UDP);
        assert_eq!(h.src(), Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(h.dst(), Ipv4Addr::new(192, 168, 0, 199));
        assert!(h.options().is_empty());
        // Total Length 0x73 exceeds the 20-octet buffer: the strict payload is refused.
        assert!(h.payload().is_none());
        assert!(h.packet().is_none());
    }

    #[test]
    fn ipv4_fragment_fields() {
        let mut b = SAMPLE_V4;
        b[6] = 0x20 | 0x01; // MF, offset high bits 1
        b[7] = 0x02;
        let h = Ipv4Header::parse(&b).expect("valid header");
        assert!(h.more_fragments());
        assert!(!h.dont_fragment());
        assert_eq!(h.frag_offset(), 0x102);
        assert!(h.is_fragment());
    }

    #[test]
    fn ipv4_rejects_malformed() {
        assert!(Ipv4Header::parse(&[]).is_none());
        assert!(Ipv4Header::parse(&SAMPLE_V4[..19]).is_none());
        let mut b = SAMPLE_V4;
        b[0] = 0x44; // IHL 4
        assert!(Ipv4Header::parse(&b).is_none());
        b[0] = 0x46; // IHL 6 but only 20 octets present
        assert!(Ipv4Header::parse(&b).is_none());
        b[0] = 0x65; // version 6
        assert!(Ipv4Header::parse(&b).is_none());
        let mut short = [0u8; 3];
        assert!(!set_ipv4_checksum(&mut short));
        assert_eq!(short, [0u8; 3]);
    }

    #[test]
    fn ipv4_payload_and_options() {
        let mut b = [0u8; 32];
        b[0] = 0x46;
        b[3] = 28; // total length 28: 24 header + 4 data, 4 octets of link padding after
        b[20] = 0x01; // NOP option
        b[24..28].copy_from_slice(b"data");
        let h = Ipv4Header::parse(&b).expect("valid header");
        assert_eq!(h.header_len(), 24);
        assert_eq!(h.options(), &[1, 0, 0, 0]);
        assert_eq!(h.payload(), Some(&b"data"[..]));
        assert_eq!(h.packet().map(<[u8]>::len), Some(28));
        b[3] = 10; // total length shorter than the header
        let h = Ipv4Header::parse(&b).expect("header itself is fine");
        assert!(h.payload().is_none());
        assert!(h.packet().is_none());
    }

    #[test]
    fn ipv6_fields() {
        let mut b = [0u8; 44];
        b[0] = 0x6a;
        b[1] = 0xbc;
        b[2] = 0xde;
        b[3] = 0xf0;
        b[5] = 4;
        b[6] = PROTO_TCP;
        b[7] = 63;
        b[8] = 0x20;
        b[9] = 0x01;
        b[23] = 1;
        b[24] = 0xfe;
        b[25] = 0x80;
        b[39] = 2;
        b[40..44].copy_from_slice(b"abcd");
        let h = Ipv6Header::parse(&b).expect("valid header");
        assert_eq!(h.traffic_class(), 0xab);
        assert_eq!(h.flow_label(), 0xcdef0);
        assert_eq!(h.payload_len(), 4);
        assert_eq!(h.next_header(), PROTO_TCP);
        assert_eq!(h.hop_limit(), 63);
        assert_eq!(h.src(), "2001::1".parse::<Ipv6Addr>().expect("addr"));
        assert_eq!(h.dst(), "fe80::2".parse::<Ipv6Addr>().expect("addr"));
        assert_eq!(h.payload(), Some(&b"abcd"[..]));
        assert!(Ipv6Header::parse(&b[..39]).is_none());
        b[5] = 5;
        assert!(Ipv6Header::parse(&b).expect("header").payload().is_none());
        b[0] = 0x4a;
        assert!(Ipv6Header::parse(&b).is_none());
    }

    #[test]
    fn inner_version_cases() {
        assert_eq!(inner_version(&[]), None);
        assert_eq!(inner_version(&[0x45]), Some(4));
        assert_eq!(inner_version(&[0x60, 0]), Some(6));
        assert_eq!(inner_version(&[0x50]), None);
        assert_eq!(inner_version(&[0x00]), None);
    }

    #[test]
    fn pseudo_header_v6_matches_layout() {
        let src: Ipv6Addr = "2001:db8::1".parse().expect("addr");
        let dst: Ipv6Addr = "2001:db8::2".parse().expect("addr");
        let mut flat = Vec::new();
        flat.extend_from_slice(&src.octets());
        flat.extend_from_slice(&dst.octets());
        flat.extend_from_slice(&1234u32.to_be_bytes());
        flat.extend_from_slice(&[0, 0, 0, 58]);
        let mut c = Checksum::new();
        c.add_pseudo_v6(src, dst, 58, 1234);
        assert_eq!(c.finish(), reference_checksum(&flat));
    }

    proptest! {
        #[test]
        fn checksum_matches_reference(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(checksum(&data), reference_checksum(&data));
        }

        #[test]
        fn chunked_sum_matches_whole(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            cuts in proptest::collection::vec(0usize..300, 0..6),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut c = Checksum::new();
            let mut start = 0;
            for cut in cuts {
                c.add_bytes(&data[start..cut]);
                start = cut;
            }
            c.add_bytes(&data[start..]);
            prop_assert_eq!(c.finish(), checksum(&data));
        }

        #[test]
        fn incremental_update_matches_recompute(
            words in proptest::collection::vec(any::<u16>(), 2..64),
            idx in any::<prop::sample::Index>(),
            new in any::<u16>(),
            odd_start in any::<bool>(),
        ) {
            // Data is `words` with an optional leading pad octet, so the changed word may sit
            // at an odd offset; the checksum lives outside the data.
            let pad = usize::from(odd_start);
            let mut data = vec![0u8; pad];
            for w in &words {
                data.extend_from_slice(&w.to_be_bytes());
            }
            let i = idx.index(words.len());
            let off = pad + 2 * i;
            let old = u16::from_be_bytes([data[off], data[off + 1]]);
            let before = checksum(&data);
            data[off..off + 2].copy_from_slice(&new.to_be_bytes());
            let after = checksum(&data);
            let (o, n) = if off % 2 == 1 { (old.swap_bytes(), new.swap_bytes()) } else { (old, new) };
            let updated = checksum_update16(before, o, n);
            // 0x0000 and 0xffff are the same value in ones' complement; both verify.
            prop_assert!(updated == after || (updated ^ after) == 0xffff && (after == 0 || after == 0xffff),
                "updated {updated:#06x} recomputed {after:#06x}");
        }

        #[test]
        fn parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Some(h) = Ipv4Header::parse(&data) {
                let _ = (h.payload(), h.packet(), h.options(), h.checksum_ok(), h.src(), h.dst());
            }
            if let Some(h) = Ipv6Header::parse(&data) {
                let _ = (h.payload(), h.packet(), h.src(), h.dst(), h.flow_label());
            }
            let mut d = data.clone();
            let _ = set_ipv4_checksum(&mut d);
            let _ = inner_version(&data);
        }
    }
}
