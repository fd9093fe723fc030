//! Raw AEAD operations with an explicit 12-octet nonce and arbitrary associated data.
//!
//! ESP builds its nonce and AAD from the packet itself ([`EspTransform`](crate::EspTransform));
//! IKEv2's Encrypted payload uses the same algorithms with other AAD (RFC 5282 §5 for AES-GCM,
//! RFC 7634 §3 for ChaCha20-Poly1305), and the published test vectors use arbitrary AAD too.
//! These functions serve both: the caller forms the nonce (salt || IV, RFC 4106 §4 /
//! RFC 7634 §2) and passes the key without its salt. The tag is always 16 octets and is
//! appended to the ciphertext.
//!
//! This module does not generate nonces and does not keep keys: each call schedules the key
//! anew, which suits IKE messages but not the per-packet dataplane path.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use ring::aead;
use zeroize::Zeroizing;

use crate::esp::{CryptoError, EspEncr};

/// Length of the AEAD nonce (salt || explicit IV).
pub const NONCE_LEN: usize = 12;
/// Length of the authentication tag appended to the ciphertext.
pub const TAG_LEN: usize = 16;

enum Key {
    Ring(Box<aead::LessSafeKey>),
    Gcm192(Box<aes_gcm::AesGcm<aes::Aes192, aes_gcm::aead::consts::U12>>),
}

fn key_len(encr: EspEncr) -> Result<usize, CryptoError> {
    match encr {
        EspEncr::AesGcm16 { key_bits } if matches!(key_bits, 128 | 192 | 256) => {
            Ok(usize::from(key_bits / 8))
        }
        EspEncr::ChaCha20Poly1305 => Ok(32),
        _ => Err(CryptoError::UnsupportedSuite),
    }
}

fn make_key(encr: EspEncr, key: &[u8]) -> Result<Key, CryptoError> {
    let want = key_len(encr)?;
    if key.len() != want {
        return Err(CryptoError::KeyLength {
            got: key.len(),
            want,
        });
    }
    let ring_alg = match encr {
        EspEncr::AesGcm16 { key_bits: 128 } => &aead::AES_128_GCM,
        EspEncr::AesGcm16 { key_bits: 256 } => &aead::AES_256_GCM,
        EspEncr::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        _ => {
            let k = aes_gcm::AesGcm::<aes::Aes192, _>::new_from_slice(key)
                .map_err(|_| CryptoError::UnsupportedSuite)?;
            return Ok(Key::Gcm192(Box::new(k)));
        }
    };
    let unbound = aead::UnboundKey::new(ring_alg, key).map_err(|_| CryptoError::KeyLength {
        got: key.len(),
        want,
    })?;
    Ok(Key::Ring(Box::new(aead::LessSafeKey::new(unbound))))
}

/// Encrypts `plaintext` and returns ciphertext || 16-octet tag.
///
/// `encr` must be [`EspEncr::AesGcm16`] or [`EspEncr::ChaCha20Poly1305`]; `key` is the cipher
/// key without the 4-octet salt.
pub fn seal_raw(
    encr: EspEncr,
    key: &[u8],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let k = make_key(encr, key)?;
    let mut out = Vec::with_capacity(plaintext.len().saturating_add(TAG_LEN));
    out.extend_from_slice(plaintext);
    match k {
        Key::Ring(k) => {
            let tag = k
                .seal_in_place_separate_tag(
                    aead::Nonce::assume_unique_for_key(*nonce),
                    aead::Aad::from(aad),
                    &mut out,
                )
                .map_err(|_| CryptoError::BadLength)?;
            out.extend_from_slice(tag.as_ref());
        }
        Key::Gcm192(k) => {
            let tag = k
                .encrypt_in_place_detached(nonce.into(), aad, &mut out)
                .map_err(|_| CryptoError::BadLength)?;
            out.extend_from_slice(&tag);
        }
    }
    Ok(out)
}

/// Verifies and decrypts ciphertext || tag, returning the plaintext.
///
/// Fails with [`CryptoError::BadLength`] when the input is shorter than a tag and with
/// [`CryptoError::IcvMismatch`] when the tag does not verify.
pub fn open_raw(
    encr: EspEncr,
    key: &[u8],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let k = make_key(encr, key)?;
    let Some(ct_len) = sealed.len().checked_sub(TAG_LEN) else {
        return Err(CryptoError::BadLength);
    };
    let (ct, tag) = sealed.split_at(ct_len);
    let mut out = Zeroizing::new(ct.to_vec());
    match k {
        Key::Ring(k) => {
            let tag = aead::Tag::try_from(tag).map_err(|_| CryptoError::BadLength)?;
            k.open_in_place_separate_tag(
                aead::Nonce::assume_unique_for_key(*nonce),
                aead::Aad::from(aad),
                tag,
                &mut out,
                0..,
            )
            .map_err(|_| CryptoError::IcvMismatch)?;
        }
        Key::Gcm192(k) => {
            k.decrypt_in_place_detached(nonce.into(), aad, &mut out, tag.into())
                .map_err(|_| CryptoError::IcvMismatch)?;
        }
    }
    Ok(out)
}
