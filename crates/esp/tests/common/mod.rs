//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use bh_crypto::{EspSuite, EspTransform};

/// An IPv4 packet of `len` octets (>= 20) whose payload octets derive from `tag`.
pub fn ipv4(len: usize, tag: u8) -> Vec<u8> {
    assert!((20..=65535).contains(&len));
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 0, 0, 1]);
    p[16..20].copy_from_slice(&[10, 0, 0, 2]);
    for (i, b) in p[20..].iter_mut().enumerate() {
        *b = tag.wrapping_add(i as u8);
    }
    p
}

/// An IPv6 packet of `len` octets (>= 40) whose payload octets derive from `tag`.
pub fn ipv6(len: usize, tag: u8) -> Vec<u8> {
    assert!((40..=65535 + 40).contains(&len));
    let mut p = vec![0u8; len];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
    p[6] = 17;
    p[7] = 64;
    p[8] = 0xfd;
    p[24] = 0xfd;
    p[39] = 2;
    for (i, b) in p[40..].iter_mut().enumerate() {
        *b = tag.wrapping_add(i as u8);
    }
    p
}

/// Key material for `suite` derived from `seed`.
pub fn key(suite: EspSuite, seed: u8) -> Vec<u8> {
    (0..suite.key_len())
        .map(|i| seed.wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

/// A transform for `suite` keyed from `seed`.
pub fn transform(suite: EspSuite, seed: u8) -> EspTransform {
    EspTransform::new(suite, &key(suite, seed)).unwrap()
}

/// A deterministic IV source for CBC suites (tests only; production IVs are random).
pub fn counter_iv() -> impl FnMut(&mut [u8]) {
    let mut n = 0u8;
    move |iv: &mut [u8]| {
        for b in iv.iter_mut() {
            n = n.wrapping_mul(13).wrapping_add(101);
            *b = n;
        }
    }
}
