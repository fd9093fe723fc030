//! Entry points for fuzzing and for the corpus replay test.
//!
//! Every datagram is classified as if received on UDP port 4500; ESP goes through an
//! [`InboundSa`] built for its SPI with a fixed, public test key, so that sealed corpus
//! entries reach the code behind the ICV check. The suite and ESN setting follow from the SPI
//! (see [`params`]). Nothing here is for production: the keys are not secret.

use crate::encap::InnerProto;
use crate::error::OpenError;
use crate::replay::DEFAULT_WINDOW;
use crate::sa::{InboundSa, OutboundSa};
use crate::wire::Udp4500;
use crate::{PacketBuf, wire::MIN_SPI};
use bh_crypto::esp::SUITE_NAMES;
use bh_crypto::{EspSuite, EspTransform};

/// The suite and ESN setting of the fuzzing SA for `spi`: suite `SUITE_NAMES[spi % 256 %
/// SUITE_NAMES.len()]`, ESN when bit 8 of the SPI is set.
pub fn params(spi: u32) -> (EspSuite, bool) {
    let idx = (spi & 0xff) as usize % SUITE_NAMES.len().max(1);
    let suite = SUITE_NAMES.get(idx).map_or(
        EspSuite::aead(bh_crypto::EspEncr::ChaCha20Poly1305),
        |&(_, s)| s,
    );
    (suite, spi & 0x100 != 0)
}

/// The fixed test key material for `suite`: octet `i` is `i * 7 + 3` (mod 256).
pub fn test_key(suite: EspSuite) -> Vec<u8> {
    (0..suite.key_len()).map(|i| (i * 7 + 3) as u8).collect()
}

fn transform(spi: u32) -> Option<(EspTransform, bool)> {
    let (suite, esn) = params(spi);
    EspTransform::new(suite, &test_key(suite))
        .ok()
        .map(|t| (t, esn))
}

/// The inbound SA the fuzzer uses for `spi` (`None` for a reserved SPI).
pub fn inbound_sa(spi: u32) -> Option<InboundSa> {
    let (t, esn) = transform(spi)?;
    InboundSa::new(spi, t, esn, DEFAULT_WINDOW).ok()
}

/// The outbound SA matching [`inbound_sa`], to build valid corpus entries.
pub fn outbound_sa(spi: u32) -> Option<OutboundSa> {
    if spi < MIN_SPI {
        return None;
    }
    let (t, esn) = transform(spi)?;
    OutboundSa::new(spi, t, esn).ok()
}

/// A well-formed inner IPv4 (`v6 = false`, `len >= 20`) or IPv6 (`len >= 40`) packet of
/// `len` octets for seeds and tests: octet `i` is `i`, then the version, and the length field.
/// Shorter lengths give a truncated header (which a seal still accepts, and an open refuses).
pub fn sample_inner(v6: bool, len: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..len).map(|i| i as u8).collect();
    let (at, field) = if v6 {
        (4, len.saturating_sub(40))
    } else {
        (2, len)
    };
    if let Some(first) = p.first_mut() {
        *first = if v6 { 0x60 } else { 0x45 };
    }
    if let Some(f) = p.get_mut(at..at + 2) {
        f.copy_from_slice(&(field as u16).to_be_bytes());
    }
    p
}

/// Classifies `data` as a datagram received on UDP port 4500 and opens any ESP packet in it.
/// `None` when it is not ESP (IKE, keepalive or malformed).
pub fn open_datagram(data: &[u8]) -> Option<Result<InnerProto, OpenError>> {
    let Udp4500::Esp(esp) = Udp4500::classify(data) else {
        return None;
    };
    let spi = crate::wire::EspHeader::parse(esp)?.spi;
    let sa = inbound_sa(spi)?;
    let mut pkt = PacketBuf::from_slice(esp);
    let r = sa.open(&mut pkt);
    if let Ok(proto) = r {
        // What open hands on must be a whole inner packet of the announced version.
        debug_assert_eq!(InnerProto::of_packet(pkt.data()), Some(proto));
    }
    Some(r)
}
