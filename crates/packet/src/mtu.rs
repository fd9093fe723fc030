//! Tunnel MTU: the largest inner packet an ESP tunnel carries without outer fragmentation.
//!
//! An inner packet of `n` octets becomes (RFC 4303 §2, RFC 3948 §2.1):
//!
//! ```text
//! outer IP (20 | 40) + UDP (8, NAT-T only) + ESP header (8) + IV
//!   + align_up(n + 2, block_align)   (payload, padding, Pad Length, Next Header)
//!   + ICV
//! ```
//!
//! What this module does NOT do: it assumes no outer IPv4 options or IPv6 extension headers,
//! no TFC padding (RFC 4303 §2.7) and no extra padding beyond the minimum; it does not apply the
//! IPv6 minimum MTU of 1280 (a caller that gets less than that for IPv6 traffic must decide what
//! to do), and it keeps no path-MTU state.

use bh_crypto::EspSuite;

/// Outer IPv4 header without options.
const OUTER_IPV4: usize = 20;
/// Outer IPv6 header without extension headers.
const OUTER_IPV6: usize = 40;
/// UDP encapsulation header (RFC 3948 §2.1).
const UDP_HEADER: usize = 8;
/// ESP header: SPI and Sequence Number (RFC 4303 §2).
const ESP_HEADER: usize = 8;
/// ESP trailer: Pad Length and Next Header (RFC 4303 §2.4, §2.6).
const ESP_TRAILER: usize = 2;

/// Octets around the ciphertext: outer IP, optional UDP, ESP header, IV and ICV.
fn fixed_overhead(suite: &EspSuite, udp_encap: bool, outer_ipv6: bool) -> usize {
    let ip = if outer_ipv6 { OUTER_IPV6 } else { OUTER_IPV4 };
    let udp = if udp_encap { UDP_HEADER } else { 0 };
    ip + udp + ESP_HEADER + suite.iv_len() + suite.icv_len()
}

/// The length of the outer packet that carries an inner packet of `inner_len` octets, with the
/// minimum padding the suite needs.
pub fn esp_outer_len(
    inner_len: usize,
    suite: &EspSuite,
    udp_encap: bool,
    outer_ipv6: bool,
) -> usize {
    let align = suite.block_align().max(1);
    let ciphertext = (inner_len + ESP_TRAILER).div_ceil(align) * align;
    fixed_overhead(suite, udp_encap, outer_ipv6) + ciphertext
}

/// The largest inner packet such that the ESP packet carrying it fits in `underlay_mtu`
/// (see the module docs for the layout). Returns 0 if not even an empty inner packet fits.
pub fn tunnel_mtu(underlay_mtu: u16, suite: &EspSuite, udp_encap: bool, outer_ipv6: bool) -> u16 {
    let align = suite.block_align().max(1);
    let Some(room) =
        usize::from(underlay_mtu).checked_sub(fixed_overhead(suite, udp_encap, outer_ipv6))
    else {
        return 0;
    };
    // The ciphertext is a multiple of `align`; the largest that fits, minus the 2-octet trailer.
    let inner = (room / align * align).saturating_sub(ESP_TRAILER);
    u16::try_from(inner).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bh_crypto::esp::SUITE_NAMES;
    use bh_crypto::{EspEncr, EspInteg};
    use proptest::prelude::*;

    fn gcm256() -> EspSuite {
        EspSuite::aead(EspEncr::AesGcm16 { key_bits: 256 })
    }

    fn cbc256_sha1() -> EspSuite {
        EspSuite::cbc(256, EspInteg::HmacSha1_96)
    }

    #[test]
    fn gcm256_udp_ipv4_over_1500() {
        // 20 (IPv4) + 8 (UDP) + 8 (ESP) + 8 (IV) + 16 (ICV) = 60 fixed, leaving 1440 for the
        // ciphertext. 1440 is already a multiple of 4, so the inner packet may be 1440 - 2 = 1438.
        assert_eq!(tunnel_mtu(1500, &gcm256(), true, false), 1438);
        assert_eq!(esp_outer_len(1438, &gcm256(), true, false), 1500);
        // One more octet needs 1441 -> 1444 of ciphertext: 1504 on the wire.
        assert_eq!(esp_outer_len(1439, &gcm256(), true, false), 1504);
    }

    #[test]
    fn cbc256_sha1_udp_ipv4_over_1500() {
        // 20 + 8 + 8 + 16 (IV) + 12 (HMAC-SHA1-96) = 64 fixed, leaving 1436; the ciphertext must
        // be a multiple of 16, so at most 1424, and the inner packet 1424 - 2 = 1422.
        assert_eq!(tunnel_mtu(1500, &cbc256_sha1(), true, false), 1422);
        assert_eq!(esp_outer_len(1422, &cbc256_sha1(), true, false), 1488);
        assert_eq!(esp_outer_len(1423, &cbc256_sha1(), true, false), 1504);
    }

    #[test]
    fn other_worked_examples() {
        // Raw ESP over IPv6, AES-GCM: 40 + 8 + 8 + 16 = 72 fixed, 1428 left (multiple of 4): 1426.
        assert_eq!(tunnel_mtu(1500, &gcm256(), false, true), 1426);
        // CBC + SHA-256 over IPv6 with UDP: 40 + 8 + 8 + 16 + 16 = 88, 1412 left, 1408 aligned: 1406.
        let cbc_sha256 = EspSuite::cbc(128, EspInteg::HmacSha256_128);
        assert_eq!(tunnel_mtu(1500, &cbc_sha256, true, true), 1406);
        // A jumbo-frame underlay: 9001 - 60 = 8941 -> 8940 aligned to 4 -> 8938.
        assert_eq!(tunnel_mtu(9001, &gcm256(), true, false), 8938);
    }

    #[test]
    fn tiny_underlay_gives_zero() {
        assert_eq!(tunnel_mtu(0, &gcm256(), true, true), 0);
        assert_eq!(tunnel_mtu(59, &gcm256(), true, false), 0);
        // 60 fixed + 4 (smallest ciphertext) = 64 carries an inner packet of 2 octets.
        assert_eq!(tunnel_mtu(63, &gcm256(), true, false), 0);
        assert_eq!(tunnel_mtu(64, &gcm256(), true, false), 2);
    }

    proptest! {
        #[test]
        fn result_is_the_largest_that_fits(
            underlay in 0u16..=u16::MAX,
            idx in any::<prop::sample::Index>(),
            udp in any::<bool>(),
            v6 in any::<bool>(),
        ) {
            let suite = SUITE_NAMES[idx.index(SUITE_NAMES.len())].1;
            let m = tunnel_mtu(underlay, &suite, udp, v6);
            let u = usize::from(underlay);
            if m > 0 {
                prop_assert!(esp_outer_len(usize::from(m), &suite, udp, v6) <= u);
            }
            prop_assert!(esp_outer_len(usize::from(m) + 1, &suite, udp, v6) > u);
        }
    }
}
