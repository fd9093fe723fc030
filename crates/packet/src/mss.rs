//! TCP MSS clamping on SYN segments (the usual fix for tunnels whose MTU is below the LAN's).
//!
//! [`clamp_mss`] lowers the Maximum Segment Size option (RFC 9293 §3.7.1, kind 2, length 4) of
//! a SYN or SYN-ACK so the peers never send segments larger than the tunnel carries, and fixes
//! the TCP checksum incrementally (RFC 1624) instead of summing the segment again.
//!
//! What it does NOT do: it never adds an MSS option to a SYN that has none (the default of 536
//! or 1220 already fits any tunnel), never raises an MSS, does not touch non-SYN segments, does
//! not look past IPv6 extension headers (only packets whose Next Header is TCP are clamped) and
//! does not touch non-first IPv4 fragments. It does not verify the TCP checksum: a segment
//! with a bad checksum keeps a bad checksum.

use crate::ip::{PROTO_TCP, checksum_update16};

/// TCP option kinds (RFC 9293 §3.1).
const OPT_EOL: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;
const OPT_MSS_LEN: u8 = 4;
/// TCP header without options.
const TCP_MIN_HEADER: usize = 20;
/// SYN bit in the TCP flags octet.
const TCP_SYN: u8 = 0x02;

/// The MSS that fills a packet of `mtu` octets: `mtu` minus the IP and TCP headers without
/// options (40 for IPv4, 60 for IPv6), or 0 if `mtu` is smaller than that.
#[inline]
pub fn mss_for_mtu(mtu: u16, ipv6: bool) -> u16 {
    mtu.saturating_sub(if ipv6 { 60 } else { 40 })
}

/// If `pkt` is an IPv4 or IPv6 TCP segment with SYN set and an MSS option above `max_mss`,
/// lowers the option to `max_mss` in place and updates the TCP checksum. Returns whether the
/// packet was changed.
///
/// Anything else (other protocols, non-SYN segments, non-first IPv4 fragments, IPv6 packets
/// with extension headers before TCP, truncated or malformed headers) is left untouched. The
/// option walk stops at End of Option List, at a length below 2, and at an option running past
/// the header; every well-formed MSS option before that point is clamped.
pub fn clamp_mss(pkt: &mut [u8], max_mss: u16) -> bool {
    let Some((start, end)) = tcp_bounds(pkt) else {
        return false;
    };
    match pkt.get_mut(start..end) {
        Some(seg) => clamp_segment(seg, max_mss),
        None => false,
    }
}

/// Where the TCP segment lies in an IP packet eligible for clamping.
#[inline]
fn tcp_bounds(pkt: &[u8]) -> Option<(usize, usize)> {
    let first = *pkt.first()?;
    match first >> 4 {
        4 => {
            let h = pkt.first_chunk::<20>()?;
            let hlen = usize::from(first & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            // Protocol TCP, fragment offset 0 (the first fragment carries the TCP header).
            let eligible = h[9] == PROTO_TCP && (h[6] & 0x1f) == 0 && h[7] == 0;
            (eligible && hlen >= 20 && total <= pkt.len()).then_some((hlen, total))
        }
        6 => {
            let h = pkt.first_chunk::<40>()?;
            let end = 40 + usize::from(u16::from_be_bytes([h[4], h[5]]));
            (h[6] == PROTO_TCP && end <= pkt.len()).then_some((40, end))
        }
        _ => None,
    }
}

/// Clamps the MSS options of one TCP segment (header first).
fn clamp_segment(seg: &mut [u8], max_mss: u16) -> bool {
    let Some(fixed) = seg.first_chunk::<TCP_MIN_HEADER>() else {
        return false;
    };
    if fixed[13] & TCP_SYN == 0 {
        return false;
    }
    let hlen = usize::from(fixed[12] >> 4) * 4;
    if hlen <= TCP_MIN_HEADER || hlen > seg.len() {
        return false;
    }
    let mut csum = u16::from_be_bytes([fixed[16], fixed[17]]);
    let mut changed = false;
    let mut i = TCP_MIN_HEADER;
    while i < hlen {
        let kind = seg.get(i).copied().unwrap_or(OPT_EOL);
        if kind == OPT_EOL {
            break;
        }
        if kind == OPT_NOP {
            i += 1;
            continue;
        }
        let len = usize::from(seg.get(i + 1).copied().unwrap_or(0));
        if len < 2 || i + len > hlen {
            break;
        }
        if kind == OPT_MSS && len == usize::from(OPT_MSS_LEN) {
            let at = i + 2;
            if let Some(field) = seg.get_mut(at..at + 2) {
                let old = u16::from_be_bytes([field[0], field[1]]);
                if old > max_mss {
                    field.copy_from_slice(&max_mss.to_be_bytes());
                    // The segment starts at an even offset of the checksummed data (after the
                    // 12- or 40-octet pseudo-header), so `at`'s parity is the word alignment.
                    csum = if at % 2 == 0 {
                        checksum_update16(csum, old, max_mss)
                    } else {
                        checksum_update16(csum, old.swap_bytes(), max_mss.swap_bytes())
                    };
                    changed = true;
                }
            }
        }
        i += len;
    }
    if changed {
        if let Some(field) = seg.get_mut(16..18) {
            field.copy_from_slice(&csum.to_be_bytes());
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{ipv4, ipv6, tcp, tcp_checksum_ok, tcp_v4, tcp_v6};
    use proptest::prelude::*;

    const SYN: u8 = 0x02;
    const SYN_ACK: u8 = 0x12;
    const ACK: u8 = 0x10;
    const MSS_1460: [u8; 4] = [2, 4, 0x05, 0xb4];

    /// Linux-style SYN options: MSS, SACK permitted, timestamps, NOP, window scale.
    fn linux_syn_options() -> Vec<u8> {
        let mut o = MSS_1460.to_vec();
        o.extend_from_slice(&[4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]);
        o
    }

    /// The value of every MSS option found by a simple walk of the TCP header of `pkt`.
    fn mss_values(pkt: &[u8], tcp_start: usize) -> Vec<u16> {
        let t = &pkt[tcp_start..];
        let hlen = usize::from(t[12] >> 4) * 4;
        let mut out = Vec::new();
        let mut i = 20;
        while i < hlen {
            match t[i] {
                0 => break,
                1 => i += 1,
                k => {
                    let l = usize::from(t[i + 1]);
                    if k == 2 && l == 4 {
                        out.push(u16::from_be_bytes([t[i + 2], t[i + 3]]));
                    }
                    i += l;
                }
            }
        }
        out
    }

    #[test]
    fn mss_for_mtu_values() {
        assert_eq!(mss_for_mtu(1500, false), 1460);
        assert_eq!(mss_for_mtu(1500, true), 1440);
        assert_eq!(mss_for_mtu(1438, false), 1398);
        assert_eq!(mss_for_mtu(30, false), 0);
        assert_eq!(mss_for_mtu(59, true), 0);
    }

    #[test]
    fn ipv4_syn_clamped_checksum_verifies() {
        let mut p = tcp_v4(SYN, &linux_syn_options(), &[]);
        assert!(tcp_checksum_ok(&p));
        assert!(clamp_mss(&mut p, 1360));
        assert_eq!(mss_values(&p, 20), vec![1360]);
        assert!(tcp_checksum_ok(&p));
    }

    #[test]
    fn ipv4_syn_ack_clamped() {
        let mut p = tcp_v4(SYN_ACK, &MSS_1460, &[]);
        assert!(clamp_mss(&mut p, 1360));
        assert_eq!(mss_values(&p, 20), vec![1360]);
        assert!(tcp_checksum_ok(&p));
    }

    #[test]
    fn ipv6_syn_and_syn_ack_clamped() {
        for flags in [SYN, SYN_ACK] {
            let mut p = tcp_v6(flags, &linux_syn_options(), &[]);
            assert!(tcp_checksum_ok(&p));
            assert!(clamp_mss(&mut p, 1360));
            assert_eq!(mss_values(&p, 40), vec![1360]);
            assert!(tcp_checksum_ok(&p));
        }
    }

    #[test]
    fn smaller_or_equal_mss_untouched() {
        for max in [1460, 1500, u16::MAX] {
            let orig = tcp_v4(SYN, &MSS_1460, &[]);
            let mut p = orig.clone();
            assert!(!clamp_mss(&mut p, max));
            assert_eq!(p, orig);
        }
    }

    #[test]
    fn non_syn_untouched() {
        for flags in [ACK, 0x18, 0x11, 0x04] {
            let orig = tcp_v4(flags, &MSS_1460, &[]);
            let mut p = orig.clone();
            assert!(!clamp_mss(&mut p, 1360));
            assert_eq!(p, orig);
            let orig6 = tcp_v6(flags, &MSS_1460, &[]);
            let mut p6 = orig6.clone();
            assert!(!clamp_mss(&mut p6, 1360));
            assert_eq!(p6, orig6);
        }
    }

    #[test]
    fn odd_offset_mss_clamped() {
        // NOP then MSS: the MSS value sits at odd offset 23 of the TCP header.
        let mut p = tcp_v4(SYN, &[1, 2, 4, 0x05, 0xb4], &[]);
        assert!(clamp_mss(&mut p, 1360));
        assert_eq!(mss_values(&p, 20), vec![1360]);
        assert!(tcp_checksum_ok(&p));
        // Window scale (3 octets) then MSS: value at odd offset 25, over IPv6.
        let mut p = tcp_v6(SYN, &[3, 3, 7, 2, 4, 0x23, 0x28], &[]);
        assert!(clamp_mss(&mut p, 1220));
        assert_eq!(mss_values(&p, 40), vec![1220]);
        assert!(tcp_checksum_ok(&p));
    }

    #[test]
    fn mss_after_other_options_and_with_payload() {
        // SACK permitted, timestamps, then MSS; a SYN carrying data (TFO-style).
        let mut opts = vec![4, 2, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8];
        opts.extend_from_slice(&MSS_1460);
        let mut p = tcp_v4(SYN, &opts, b"hello, tunnel");
        assert!(clamp_mss(&mut p, 1300));
        assert_eq!(mss_values(&p, 20), vec![1300]);
        assert!(tcp_checksum_ok(&p));
        assert!(p.ends_with(b"hello, tunnel"));
    }

    #[test]
    fn every_mss_option_clamped() {
        let mut opts = MSS_1460.to_vec();
        opts.extend_from_slice(&[1, 2, 4, 0x20, 0x00]);
        let mut p = tcp_v4(SYN, &opts, &[]);
        assert!(clamp_mss(&mut p, 1360));
        assert_eq!(mss_values(&p, 20), vec![1360, 1360]);
        assert!(tcp_checksum_ok(&p));
    }

    #[test]
    fn walk_stops_at_eol_and_bad_lengths() {
        let cases: [&[u8]; 5] = [
            &[0, 2, 4, 0x05, 0xb4],           // EOL first
            &[8, 0, 2, 4, 0x05, 0xb4],        // zero length
            &[8, 1, 2, 4, 0x05, 0xb4],        // length 1
            &[8, 40, 2, 4, 0x05, 0xb4, 0, 0], // length past the header
            &[2, 5, 0x05, 0xb4, 0, 0, 0, 0],  // MSS with the wrong length is not an MSS
        ];
        for opts in cases {
            let orig = tcp_v4(SYN, opts, &[]);
            let mut p = orig.clone();
            assert!(!clamp_mss(&mut p, 1360), "options {opts:?}");
            assert_eq!(p, orig);
        }
    }

    #[test]
    fn truncated_option_at_header_end_untouched() {
        // The header is 24 octets: NOP NOP then an MSS whose value would lie past the header.
        let orig = tcp_v4(SYN, &[1, 1, 2, 4], &[0x05, 0xb4]);
        let mut p = orig.clone();
        assert!(!clamp_mss(&mut p, 1360));
        assert_eq!(p, orig);
    }

    #[test]
    fn truncated_packets_untouched() {
        let full = tcp_v4(SYN, &linux_syn_options(), &[]);
        for cut in 0..full.len() {
            let mut p = full[..cut].to_vec();
            assert!(!clamp_mss(&mut p, 1360), "cut at {cut}");
            assert_eq!(p, &full[..cut]);
        }
        let full6 = tcp_v6(SYN, &linux_syn_options(), &[]);
        for cut in 0..full6.len() {
            let mut p = full6[..cut].to_vec();
            assert!(!clamp_mss(&mut p, 1360), "cut at {cut}");
            assert_eq!(p, &full6[..cut]);
        }
    }

    #[test]
    fn data_offset_past_segment_untouched() {
        let mut orig = tcp_v4(SYN, &MSS_1460, &[]);
        orig[20 + 12] = 0xf0; // 60-octet header in a 24-octet segment
        let mut p = orig.clone();
        assert!(!clamp_mss(&mut p, 1360));
        assert_eq!(p, orig);
    }

    #[test]
    fn fragments() {
        let seg = {
            let p = tcp_v4(SYN, &MSS_1460, &[]);
            p[20..].to_vec()
        };
        // Non-first fragment: the "TCP header" bytes are data and must not be touched.
        let mut nonfirst = ipv4(PROTO_TCP, &[], false, 9, &seg);
        nonfirst[6] = 0x00;
        nonfirst[7] = 0x03;
        let orig = nonfirst.clone();
        assert!(!clamp_mss(&mut nonfirst, 1360));
        assert_eq!(nonfirst, orig);
        // First fragment (MF set, offset 0) carries the TCP header: clamped.
        let mut first = tcp_v4(SYN, &MSS_1460, &[]);
        first[6] = 0x20;
        assert!(clamp_mss(&mut first, 1360));
        assert_eq!(mss_values(&first, 20), vec![1360]);
        assert!(tcp_checksum_ok(&first));
    }

    #[test]
    fn ipv6_extension_header_skipped() {
        // Hop-by-hop options header (8 octets, next header TCP) then the SYN.
        let t = tcp(SYN, &MSS_1460, &[]);
        let mut payload = vec![PROTO_TCP, 0, 1, 4, 0, 0, 0, 0];
        payload.extend_from_slice(&t);
        let orig = ipv6(0, &payload);
        let mut p = orig.clone();
        assert!(!clamp_mss(&mut p, 1360));
        assert_eq!(p, orig);
    }

    #[test]
    fn other_protocols_and_versions_untouched() {
        let t = tcp(SYN, &MSS_1460, &[]);
        let mut udp = ipv4(17, &[], false, 1, &t);
        let orig = udp.clone();
        assert!(!clamp_mss(&mut udp, 1360));
        assert_eq!(udp, orig);
        let mut v5 = tcp_v4(SYN, &MSS_1460, &[]);
        v5[0] = 0x55;
        assert!(!clamp_mss(&mut v5, 1360));
        assert!(!clamp_mss(&mut [], 1360));
    }

    #[test]
    fn ipv4_with_options_clamped() {
        let t = {
            let p = tcp_v4(SYN, &MSS_1460, &[]);
            p[20..].to_vec()
        };
        // Router alert option; the TCP checksum does not cover the IP options.
        let mut p = ipv4(PROTO_TCP, &[0x94, 4, 0, 0], true, 1, &t);
        assert!(clamp_mss(&mut p, 1000));
        assert_eq!(mss_values(&p, 24), vec![1000]);
        assert!(tcp_checksum_ok(&p));
    }

    fn option_strategy() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(vec![1u8]),
            any::<u16>().prop_map(|m| vec![2, 4, (m >> 8) as u8, m as u8]),
            Just(vec![4u8, 2]),
            any::<u8>().prop_map(|s| vec![3, 3, s]),
            Just(vec![8u8, 10, 1, 2, 3, 4, 5, 6, 7, 8]),
        ]
    }

    proptest! {
        #[test]
        fn random_layouts_keep_checksum_valid(
            opts in proptest::collection::vec(option_strategy(), 0..8),
            max in any::<u16>(),
            v6 in any::<bool>(),
            payload in proptest::collection::vec(any::<u8>(), 0..20),
        ) {
            let mut flat: Vec<u8> = Vec::new();
            for o in opts.iter().filter(|o| o.len() <= 40) {
                if flat.len() + o.len() <= 40 {
                    flat.extend_from_slice(o);
                }
            }
            let mut p = if v6 { tcp_v6(SYN, &flat, &payload) } else { tcp_v4(SYN, &flat, &payload) };
            let start = if v6 { 40 } else { 20 };
            let before = mss_values(&p, start);
            let changed = clamp_mss(&mut p, max);
            let after = mss_values(&p, start);
            prop_assert!(tcp_checksum_ok(&p));
            prop_assert_eq!(changed, before.iter().any(|&m| m > max));
            let expected: Vec<u16> = before.iter().map(|&m| m.min(max)).collect();
            prop_assert_eq!(after, expected);
        }

        #[test]
        fn random_bytes_never_panic(mut data in proptest::collection::vec(any::<u8>(), 0..120), v6 in any::<bool>()) {
            if let Some(b) = data.first_mut() {
                *b = if v6 { 0x60 | (*b & 0x0f) } else { 0x40 | (*b & 0x0f) };
            }
            if v6 && data.len() > 6 { data[6] = PROTO_TCP; }
            if !v6 && data.len() > 9 { data[9] = PROTO_TCP; }
            let _ = clamp_mss(&mut data, 1000);
        }
    }
}
