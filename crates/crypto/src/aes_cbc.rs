//! Raw AES-CBC (RFC 3602) without padding, in place.
//!
//! ESP CBC suites go through [`EspTransform`](crate::EspTransform); these functions serve IKEv2's
//! Encrypted payload with ENCR_AES_CBC (RFC 7296 §3.14) and the RFC 3602 §4 known-answer tests.
//! The data must already be a whole number of 16-octet blocks: padding is the protocol's job
//! (ESP trailer, IKE Pad Length), not this module's. CBC alone gives no integrity: pair it with
//! [`integ`](crate::integ) and verify before decrypting.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};

use crate::esp::CryptoError;

/// The AES block size and the CBC IV length.
pub const BLOCK_LEN: usize = 16;

fn check(key: &[u8], iv: &[u8], data: &[u8]) -> Result<(), CryptoError> {
    if !matches!(key.len(), 16 | 24 | 32) {
        return Err(CryptoError::KeyLength {
            got: key.len(),
            want: 16,
        });
    }
    if iv.len() != BLOCK_LEN || data.len() % BLOCK_LEN != 0 {
        return Err(CryptoError::BadLength);
    }
    Ok(())
}

fn enc<C>(key: &[u8], iv: &[u8], data: &mut [u8]) -> Result<(), CryptoError>
where
    cbc::Encryptor<C>: KeyIvInit + BlockEncryptMut,
    C: aes::cipher::BlockCipher + aes::cipher::BlockEncrypt,
{
    let mut e =
        cbc::Encryptor::<C>::new_from_slices(key, iv).map_err(|_| CryptoError::BadLength)?;
    for block in data.chunks_exact_mut(BLOCK_LEN) {
        e.encrypt_block_mut(block.into());
    }
    Ok(())
}

fn dec<C>(key: &[u8], iv: &[u8], data: &mut [u8]) -> Result<(), CryptoError>
where
    cbc::Decryptor<C>: KeyIvInit + BlockDecryptMut,
    C: aes::cipher::BlockCipher + aes::cipher::BlockDecrypt,
{
    let mut d =
        cbc::Decryptor::<C>::new_from_slices(key, iv).map_err(|_| CryptoError::BadLength)?;
    for block in data.chunks_exact_mut(BLOCK_LEN) {
        d.decrypt_block_mut(block.into());
    }
    Ok(())
}

/// Encrypts `data` in place with AES-CBC. `key` is 16, 24 or 32 octets; `iv` is 16 octets;
/// `data` is a multiple of 16 octets.
pub fn encrypt(key: &[u8], iv: &[u8], data: &mut [u8]) -> Result<(), CryptoError> {
    check(key, iv, data)?;
    match key.len() {
        16 => enc::<aes::Aes128>(key, iv, data),
        24 => enc::<aes::Aes192>(key, iv, data),
        _ => enc::<aes::Aes256>(key, iv, data),
    }
}

/// Decrypts `data` in place with AES-CBC (same lengths as [`encrypt`]).
pub fn decrypt(key: &[u8], iv: &[u8], data: &mut [u8]) -> Result<(), CryptoError> {
    check(key, iv, data)?;
    match key.len() {
        16 => dec::<aes::Aes128>(key, iv, data),
        24 => dec::<aes::Aes192>(key, iv, data),
        _ => dec::<aes::Aes256>(key, iv, data),
    }
}
