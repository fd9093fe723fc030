//! Per-packet ESP encapsulation and decapsulation in tunnel mode (RFC 4303 §2, §3.3, §3.4), in
//! place in a [`PacketBuf`].
//!
//! These functions take the sequence number and IV as arguments and keep no state: the SAs in
//! [`crate::sa`] choose both, check replay and count. They are public for known-answer tests
//! and tools; a caller that picks its own IVs owns their uniqueness (an AEAD IV must never
//! repeat under one key, RFC 4106 §3.1).

use crate::buf::PacketBuf;
use crate::error::{OpenError, SealError};
use crate::wire::{
    ESP_HEADER_LEN, EspHeader, NEXT_HEADER_DUMMY, NEXT_HEADER_IPV4, NEXT_HEADER_IPV6,
};
use bh_crypto::{CryptoError, EspTransform};

/// The largest IV of any suite (AES-CBC).
pub(crate) const MAX_IV_LEN: usize = 16;

/// The inner protocol of a tunnel-mode ESP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InnerProto {
    /// IPv4 (next header 4).
    Ipv4,
    /// IPv6 (next header 41).
    Ipv6,
}

impl InnerProto {
    /// The ESP next-header value (an IP protocol number).
    pub fn next_header(self) -> u8 {
        match self {
            Self::Ipv4 => NEXT_HEADER_IPV4,
            Self::Ipv6 => NEXT_HEADER_IPV6,
        }
    }

    /// The protocol of an IP packet, from its version nibble.
    pub fn of_packet(packet: &[u8]) -> Option<Self> {
        match packet.first()? >> 4 {
            4 => Some(Self::Ipv4),
            6 => Some(Self::Ipv6),
            _ => None,
        }
    }
}

/// Turns the inner IP packet in `pkt` into an ESP packet, in place.
///
/// Appends RFC 4303 §2.4 padding (1, 2, 3, ...) up to the suite's alignment, the pad length and
/// the next header (4 or 41, from the version nibble), prepends SPI, the low 32 bits of `seq`
/// and `iv`, and seals with the high 32 bits of `seq` as ESN when `esn` is set. On success the
/// buffer holds exactly the ESP packet; on error it is unchanged.
pub fn encapsulate(
    transform: &EspTransform,
    spi: u32,
    seq: u64,
    esn: bool,
    iv: &[u8],
    pkt: &mut PacketBuf,
) -> Result<(), SealError> {
    let suite = transform.suite();
    let (iv_len, icv_len, align) = (suite.iv_len(), suite.icv_len(), suite.block_align());
    if iv.len() != iv_len {
        return Err(SealError::IvLength {
            got: iv.len(),
            want: iv_len,
        });
    }
    let proto = InnerProto::of_packet(pkt.data()).ok_or(SealError::NotIp)?;
    // Payload, padding, pad length and next header end on a multiple of `align`.
    let pad = (align - (pkt.len() + 2) % align) % align;
    let head = ESP_HEADER_LEN + iv_len;
    let tail = pad + 2 + icv_len;
    if pkt.headroom() < head || pkt.tailroom() < tail {
        return Err(SealError::NoRoom);
    }
    let trailer = pkt.append(tail).map_err(|_| SealError::NoRoom)?;
    for (i, b) in trailer.iter_mut().take(pad).enumerate() {
        // pad <= 15, so i + 1 fits.
        *b = (i + 1) as u8;
    }
    if let Some(t) = trailer.get_mut(pad..pad + 2) {
        t.copy_from_slice(&[pad as u8, proto.next_header()]);
    }
    let header = pkt.prepend(head).map_err(|_| SealError::NoRoom)?;
    let hdr = EspHeader {
        spi,
        seq: seq as u32,
    };
    // `head` = 8 + iv_len octets were just prepended.
    if let Some((h, v)) = header.split_first_chunk_mut::<ESP_HEADER_LEN>() {
        hdr.emit(h);
        v.copy_from_slice(iv);
    }
    let esn_high = esn.then_some((seq >> 32) as u32);
    if let Err(e) = transform.seal(pkt.data_mut(), esn_high) {
        // Put the inner packet back as it was.
        let _ = pkt.trim_front(head);
        let _ = pkt.trim_back(tail);
        return Err(e.into());
    }
    Ok(())
}

/// Verifies and decrypts the ESP packet in `pkt`, then strips header, IV, trailer and ICV,
/// leaving the inner packet (see [`verify_decrypt`] and [`strip_trailer`]).
pub fn decapsulate(
    transform: &EspTransform,
    esn_high: Option<u32>,
    pkt: &mut PacketBuf,
) -> Result<InnerProto, OpenError> {
    verify_decrypt(transform, esn_high, pkt)?;
    strip_trailer(transform, pkt)
}

/// Verifies the ICV of the ESP packet in `pkt` and decrypts it in place. `esn_high` is the
/// inferred high half of the sequence number when ESN is in use.
///
/// Only after this succeeds may the replay window be updated (RFC 4303 §3.4.3).
pub fn verify_decrypt(
    transform: &EspTransform,
    esn_high: Option<u32>,
    pkt: &mut PacketBuf,
) -> Result<(), OpenError> {
    let suite = transform.suite();
    // Header, IV, at least pad length and next header, and the ICV.
    if pkt.len() < ESP_HEADER_LEN + suite.iv_len() + 2 + suite.icv_len() {
        return Err(OpenError::BadLength);
    }
    transform
        .open(pkt.data_mut(), esn_high)
        .map_err(|e| match e {
            CryptoError::IcvMismatch => OpenError::Icv,
            _ => OpenError::BadLength,
        })
}

/// After [`verify_decrypt`]: checks the padding (RFC 4303 §2.4), the next header and the inner
/// packet's version and length field, and trims `pkt` to the inner packet (dropping any
/// traffic-flow-confidentiality padding after it, RFC 4303 §2.7).
pub fn strip_trailer(
    transform: &EspTransform,
    pkt: &mut PacketBuf,
) -> Result<InnerProto, OpenError> {
    let suite = transform.suite();
    let head = ESP_HEADER_LEN + suite.iv_len();
    let icv_len = suite.icv_len();
    let data = pkt.data();
    let body_end = data
        .len()
        .checked_sub(icv_len)
        .ok_or(OpenError::BadLength)?;
    let body = data.get(head..body_end).ok_or(OpenError::BadLength)?;
    let [payload_and_pad @ .., pad_len, next_header] = body else {
        return Err(OpenError::BadLength);
    };
    let (pad_len, next_header) = (usize::from(*pad_len), *next_header);
    let inner_len = payload_and_pad
        .len()
        .checked_sub(pad_len)
        .ok_or(OpenError::BadPadding)?;
    let (inner, padding) = payload_and_pad.split_at(inner_len);
    if !padding.iter().zip(1u8..).all(|(&b, want)| b == want) {
        return Err(OpenError::BadPadding);
    }
    let proto = match next_header {
        NEXT_HEADER_IPV4 => InnerProto::Ipv4,
        NEXT_HEADER_IPV6 => InnerProto::Ipv6,
        NEXT_HEADER_DUMMY => return Err(OpenError::Dummy),
        other => return Err(OpenError::NextHeader(other)),
    };
    let ip_len = inner_ip_len(proto, inner).ok_or(OpenError::BadInner)?;
    // ip_len <= inner_len, so these trims fit.
    let tail = data.len() - head - ip_len;
    pkt.trim_front(head).map_err(|_| OpenError::BadLength)?;
    pkt.trim_back(tail).map_err(|_| OpenError::BadLength)?;
    Ok(proto)
}

/// The length an inner packet declares, when its version is `proto`'s and the length fits.
fn inner_ip_len(proto: InnerProto, inner: &[u8]) -> Option<usize> {
    if InnerProto::of_packet(inner)? != proto {
        return None;
    }
    let len = match proto {
        InnerProto::Ipv4 => {
            let ihl = usize::from(inner.first()? & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([*inner.get(2)?, *inner.get(3)?]));
            if ihl < 20 || total < ihl {
                return None;
            }
            total
        }
        InnerProto::Ipv6 => {
            let payload = usize::from(u16::from_be_bytes([*inner.get(4)?, *inner.get(5)?]));
            40 + payload
        }
    };
    (len <= inner.len()).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bh_crypto::EspSuite;

    fn chacha() -> EspTransform {
        let keymat = hex::decode(
            "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f\
             a0a1a2a3",
        )
        .unwrap();
        EspTransform::new(EspSuite::from_name("chacha20poly1305").unwrap(), &keymat).unwrap()
    }

    // RFC 7634 Appendix A: a tunnel-mode ESP packet (SPI 0x01020304, sequence number 5,
    // IV 0x1011121314151617) carrying an 84-octet IPv4 ICMP echo request.
    const RFC7634_INNER: &str = "45000054a6f200004001e778c6336405c000020508005b7a3a080000553bec10\
        000736270809 0a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b\
        2c2d2e2f3031323334353637";
    const RFC7634_ESP: &str = "0102030400000005 1011121314151617\
        24039428b97f417e3c13753a4f05087b67c352e6a7fab1b982d466ef407ae5c6\
        14ee8099d52844eb61aa95dfab4c02f72aa71e7c4c4f64c9befe2facc638e8f3\
        cbec163fac469b502773f6fb94e664da9165b82829f641e0\
        76aaa8266b7fb0f7b11b369907e1ad43";

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn rfc7634_appendix_a_opens() {
        let t = chacha();
        let mut pkt = PacketBuf::from_slice(&unhex(RFC7634_ESP));
        assert_eq!(decapsulate(&t, None, &mut pkt), Ok(InnerProto::Ipv4));
        assert_eq!(pkt.data(), unhex(RFC7634_INNER));
    }

    #[test]
    fn rfc7634_appendix_a_seals_to_the_published_bytes() {
        let t = chacha();
        let mut pkt = PacketBuf::from_slice(&unhex(RFC7634_INNER));
        let iv = unhex("1011121314151617");
        encapsulate(&t, 0x0102_0304, 5, false, &iv, &mut pkt).unwrap();
        assert_eq!(hex::encode(pkt.data()), hex::encode(unhex(RFC7634_ESP)));
    }

    #[test]
    fn rfc7634_tampered_is_refused() {
        let t = chacha();
        let mut bytes = unhex(RFC7634_ESP);
        bytes[20] ^= 0x80;
        let mut pkt = PacketBuf::from_slice(&bytes);
        assert_eq!(decapsulate(&t, None, &mut pkt), Err(OpenError::Icv));
        // Seen as ESN with a high half of 0, the AAD differs: refused too.
        let mut pkt = PacketBuf::from_slice(&unhex(RFC7634_ESP));
        assert_eq!(decapsulate(&t, Some(0), &mut pkt), Err(OpenError::Icv));
    }

    #[test]
    fn padding_reaches_the_suite_alignment() {
        for &(name, suite) in bh_crypto::esp::SUITE_NAMES {
            let key = vec![7u8; suite.key_len()];
            let t = EspTransform::new(suite, &key).unwrap();
            for len in 40..60usize {
                let mut inner = vec![0u8; len];
                inner[0] = 0x60;
                inner[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
                let mut pkt = PacketBuf::from_slice(&inner);
                let iv = vec![1u8; suite.iv_len()];
                encapsulate(&t, 300, 1, false, &iv, &mut pkt).unwrap();
                let body = pkt.len() - 8 - suite.iv_len() - suite.icv_len();
                assert_eq!(body % suite.block_align(), 0, "{name} {len}");
                assert!(body - len - 2 < suite.block_align(), "{name} {len}");
                assert_eq!(decapsulate(&t, None, &mut pkt), Ok(InnerProto::Ipv6));
                assert_eq!(pkt.data(), &inner[..]);
            }
        }
    }

    #[test]
    fn seal_refuses_without_changing_the_buffer() {
        let t = chacha();
        let mut pkt = PacketBuf::from_slice(&[0x10, 0, 0, 0]);
        assert_eq!(
            encapsulate(&t, 300, 1, false, &[0; 8], &mut pkt),
            Err(SealError::NotIp)
        );
        let mut pkt = PacketBuf::from_slice(&[]);
        assert_eq!(
            encapsulate(&t, 300, 1, false, &[0; 8], &mut pkt),
            Err(SealError::NotIp)
        );
        let mut pkt = PacketBuf::from_slice(&[0x45; 20]);
        assert_eq!(
            encapsulate(&t, 300, 1, false, &[0; 16], &mut pkt),
            Err(SealError::IvLength { got: 16, want: 8 })
        );
        // Fill the tailroom: no room for the trailer.
        let mut pkt = PacketBuf::new(20);
        pkt.load(&[0x45; 20 + crate::buf::TAILROOM]).unwrap();
        let before = pkt.clone();
        assert_eq!(
            encapsulate(&t, 300, 1, false, &[0; 8], &mut pkt),
            Err(SealError::NoRoom)
        );
        assert_eq!(pkt, before);
    }

    /// Builds a verified-and-decrypted body by hand to check the trailer rules.
    fn strip(body: &[u8]) -> (Result<InnerProto, OpenError>, Vec<u8>) {
        let t = chacha();
        let mut bytes = vec![0u8; 16];
        bytes.extend_from_slice(body);
        bytes.extend_from_slice(&[0u8; 16]);
        let mut pkt = PacketBuf::from_slice(&bytes);
        let r = strip_trailer(&t, &mut pkt);
        (r, pkt.data().to_vec())
    }

    #[test]
    fn trailer_rules() {
        let mut v4 = vec![0x45, 0, 0, 20];
        v4.resize(20, 0);
        let with = |tail: &[u8]| {
            let mut b = v4.clone();
            b.extend_from_slice(tail);
            b
        };
        assert_eq!(
            strip(&with(&[1, 2, 2, 4])),
            (Ok(InnerProto::Ipv4), v4.clone())
        );
        assert_eq!(strip(&with(&[1, 3, 2, 4])).0, Err(OpenError::BadPadding));
        assert_eq!(strip(&with(&[0, 4])).0, Ok(InnerProto::Ipv4));
        assert_eq!(strip(&[1, 200, 4]).0, Err(OpenError::BadPadding));
        assert_eq!(strip(&with(&[0, 59])).0, Err(OpenError::Dummy));
        assert_eq!(strip(&with(&[0, 17])).0, Err(OpenError::NextHeader(17)));
        // Version does not match the next header.
        assert_eq!(strip(&with(&[0, 41])).0, Err(OpenError::BadInner));
        // Length field beyond the payload.
        let mut long = v4.clone();
        long[3] = 21;
        long.extend_from_slice(&[0, 4]);
        assert_eq!(strip(&long).0, Err(OpenError::BadInner));
        // Traffic-flow padding after the inner packet is dropped.
        let mut tfc = v4.clone();
        tfc.extend_from_slice(&[9, 9, 9, 0, 4]);
        assert_eq!(strip(&tfc), (Ok(InnerProto::Ipv4), v4.clone()));
        assert_eq!(strip(&[4]).0, Err(OpenError::BadLength));
    }
}
