//! Raw truncated HMACs as ESP and IKEv2 use them for integrity (IANA IKEv2 Transform Type 3).
//!
//! [`compute`] is the one-shot primitive behind [`EspTransform`](crate::EspTransform)'s ICV:
//! HMAC (RFC 2104) over the data, truncated to the transform's ICV length
//! (AUTH_HMAC_SHA1_96: RFC 2404; AUTH_HMAC_SHA2_256_128 / 384_192 / 512_256: RFC 4868 §2.3).
//! IKEv2 uses the same transforms for the integrity checksum of its Encrypted payload
//! (RFC 7296 §3.14). [`verify`] compares in constant time.
//!
//! This module does not enforce the key length an SA negotiates ([`EspInteg::key_len`]):
//! HMAC accepts keys of any length, and the published test vectors use several. The keyed ESP
//! path ([`EspTransform::new`](crate::EspTransform::new)) does enforce it.

use hmac::Mac;
use subtle::ConstantTimeEq;

use crate::esp::{CryptoError, EspInteg};

/// Computes the truncated ICV of `data` under `key` for `alg`.
///
/// The output is [`EspInteg::icv_len`] octets long. [`EspInteg::None`] has no ICV and is
/// refused with [`CryptoError::UnsupportedSuite`].
pub fn compute(alg: EspInteg, key: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    compute_parts(alg, key, &[data])
}

/// Like [`compute`], over the concatenation of `parts` (no copy is made).
pub fn compute_parts(alg: EspInteg, key: &[u8], parts: &[&[u8]]) -> Result<Vec<u8>, CryptoError> {
    fn run<M: Mac + hmac::digest::KeyInit>(
        key: &[u8],
        parts: &[&[u8]],
        len: usize,
    ) -> Result<Vec<u8>, CryptoError> {
        let mut m = <M as Mac>::new_from_slice(key).map_err(|_| CryptoError::UnsupportedSuite)?;
        for p in parts {
            m.update(p);
        }
        let full = m.finalize().into_bytes();
        full.get(..len)
            .map(<[u8]>::to_vec)
            .ok_or(CryptoError::UnsupportedSuite)
    }
    let len = alg.icv_len();
    match alg {
        EspInteg::None => Err(CryptoError::UnsupportedSuite),
        EspInteg::HmacSha1_96 => run::<hmac::Hmac<sha1::Sha1>>(key, parts, len),
        EspInteg::HmacSha256_128 => run::<hmac::Hmac<sha2::Sha256>>(key, parts, len),
        EspInteg::HmacSha384_192 => run::<hmac::Hmac<sha2::Sha384>>(key, parts, len),
        EspInteg::HmacSha512_256 => run::<hmac::Hmac<sha2::Sha512>>(key, parts, len),
    }
}

/// Recomputes the ICV of `data` and compares it with `icv` in constant time.
///
/// Returns [`CryptoError::IcvMismatch`] when they differ (including when `icv` has the wrong
/// length).
pub fn verify(alg: EspInteg, key: &[u8], data: &[u8], icv: &[u8]) -> Result<(), CryptoError> {
    let want = compute(alg, key, data)?;
    if want.len() == icv.len() && bool::from(want.ct_eq(icv)) {
        Ok(())
    } else {
        Err(CryptoError::IcvMismatch)
    }
}
