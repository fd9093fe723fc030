//! Keyed ESP transforms: seal and open a whole ESP packet in place.
//!
//! The packet layout handed to [`EspTransform::seal`] and [`EspTransform::open`] is the one on
//! the wire (RFC 4303 §2):
//!
//! ```text
//! | SPI (4) | Sequence Number (4) | IV (iv_len) | payload .. padding, pad len, next hdr | ICV (icv_len) |
//! ```
//!
//! - AEAD suites (RFC 4106 for AES-GCM-16, RFC 7634 for ChaCha20-Poly1305): the nonce is the
//!   4-byte salt from the key material followed by the 8-byte IV; the AAD is SPI || sequence
//!   number, or SPI || ESN high || ESN low when extended sequence numbers are in use (RFC 4106 §5).
//! - AES-CBC (RFC 3602) with HMAC (RFC 2404, RFC 4868): the ICV is the truncated HMAC over the
//!   ESP header, IV and ciphertext, followed by the high ESN bits when ESN is in use
//!   (RFC 4303 §3.3.2.1); it is verified in constant time before anything is decrypted.
//!
//! The caller owns IV generation: a unique counter for AEAD suites, unpredictable bytes for CBC.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit};
use aes_gcm::aead::AeadInPlace;
use hmac::Mac;
use ring::aead;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// Length of the ESP header (SPI and sequence number).
pub const ESP_HEADER_LEN: usize = 8;

/// An encryption transform for ESP (IANA IKEv2 Transform Type 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EspEncr {
    /// AES-GCM with a 16-octet ICV (RFC 4106); `key_bits` is 128, 192 or 256.
    AesGcm16 {
        /// Key size in bits.
        key_bits: u16,
    },
    /// ChaCha20-Poly1305 (RFC 7634).
    ChaCha20Poly1305,
    /// AES-CBC (RFC 3602); `key_bits` is 128, 192 or 256.
    AesCbc {
        /// Key size in bits.
        key_bits: u16,
    },
}

/// An integrity transform for ESP (IANA IKEv2 Transform Type 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EspInteg {
    /// No integrity transform: required with AEAD ciphers.
    None,
    /// AUTH_HMAC_SHA1_96 (RFC 2404).
    HmacSha1_96,
    /// AUTH_HMAC_SHA2_256_128 (RFC 4868).
    HmacSha256_128,
    /// AUTH_HMAC_SHA2_384_192 (RFC 4868).
    HmacSha384_192,
    /// AUTH_HMAC_SHA2_512_256 (RFC 4868).
    HmacSha512_256,
}

impl EspInteg {
    /// Length of the integrity key in octets.
    pub fn key_len(self) -> usize {
        match self {
            Self::None => 0,
            Self::HmacSha1_96 => 20,
            Self::HmacSha256_128 => 32,
            Self::HmacSha384_192 => 48,
            Self::HmacSha512_256 => 64,
        }
    }

    /// Length of the truncated ICV in octets.
    pub fn icv_len(self) -> usize {
        match self {
            Self::None => 0,
            Self::HmacSha1_96 => 12,
            Self::HmacSha256_128 => 16,
            Self::HmacSha384_192 => 24,
            Self::HmacSha512_256 => 32,
        }
    }
}

/// A complete ESP cipher suite: encryption plus integrity (none for AEAD).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EspSuite {
    /// The encryption transform.
    pub encr: EspEncr,
    /// The integrity transform; [`EspInteg::None`] for AEAD suites.
    pub integ: EspInteg,
}

/// Every suite bridgehead supports, by its strongSwan-style name.
pub const SUITE_NAMES: &[(&str, EspSuite)] = &[
    (
        "aes128gcm16",
        EspSuite::aead(EspEncr::AesGcm16 { key_bits: 128 }),
    ),
    (
        "aes192gcm16",
        EspSuite::aead(EspEncr::AesGcm16 { key_bits: 192 }),
    ),
    (
        "aes256gcm16",
        EspSuite::aead(EspEncr::AesGcm16 { key_bits: 256 }),
    ),
    (
        "chacha20poly1305",
        EspSuite::aead(EspEncr::ChaCha20Poly1305),
    ),
    ("aes128-sha1", EspSuite::cbc(128, EspInteg::HmacSha1_96)),
    ("aes192-sha1", EspSuite::cbc(192, EspInteg::HmacSha1_96)),
    ("aes256-sha1", EspSuite::cbc(256, EspInteg::HmacSha1_96)),
    (
        "aes128-sha256",
        EspSuite::cbc(128, EspInteg::HmacSha256_128),
    ),
    (
        "aes192-sha256",
        EspSuite::cbc(192, EspInteg::HmacSha256_128),
    ),
    (
        "aes256-sha256",
        EspSuite::cbc(256, EspInteg::HmacSha256_128),
    ),
    (
        "aes128-sha384",
        EspSuite::cbc(128, EspInteg::HmacSha384_192),
    ),
    (
        "aes256-sha384",
        EspSuite::cbc(256, EspInteg::HmacSha384_192),
    ),
    (
        "aes128-sha512",
        EspSuite::cbc(128, EspInteg::HmacSha512_256),
    ),
    (
        "aes256-sha512",
        EspSuite::cbc(256, EspInteg::HmacSha512_256),
    ),
];

impl EspSuite {
    /// An AEAD suite (no separate integrity transform).
    pub const fn aead(encr: EspEncr) -> Self {
        Self {
            encr,
            integ: EspInteg::None,
        }
    }

    /// An AES-CBC suite with the given key size and HMAC.
    pub const fn cbc(key_bits: u16, integ: EspInteg) -> Self {
        Self {
            encr: EspEncr::AesCbc { key_bits },
            integ,
        }
    }

    /// Looks a suite up by its strongSwan-style name, e.g. `aes256gcm16` or `aes128-sha256`.
    pub fn from_name(name: &str) -> Option<Self> {
        SUITE_NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, s)| s)
    }

    /// The strongSwan-style name of this suite, if it is one bridgehead supports.
    pub fn name(&self) -> Option<&'static str> {
        SUITE_NAMES.iter().find(|(_, s)| s == self).map(|&(n, _)| n)
    }

    /// Whether the encryption transform is an AEAD.
    pub fn is_aead(&self) -> bool {
        matches!(
            self.encr,
            EspEncr::AesGcm16 { .. } | EspEncr::ChaCha20Poly1305
        )
    }

    /// Length of the encryption key in octets, including the 4-octet salt of AEAD suites.
    pub fn encr_key_len(&self) -> usize {
        match self.encr {
            EspEncr::AesGcm16 { key_bits } => usize::from(key_bits / 8) + 4,
            EspEncr::ChaCha20Poly1305 => 32 + 4,
            EspEncr::AesCbc { key_bits } => usize::from(key_bits / 8),
        }
    }

    /// Total key material: encryption key (with salt) followed by the integrity key
    /// (RFC 7296 §2.17 order).
    pub fn key_len(&self) -> usize {
        self.encr_key_len() + self.integ.key_len()
    }

    /// Length of the explicit IV carried in each packet.
    pub fn iv_len(&self) -> usize {
        match self.encr {
            EspEncr::AesGcm16 { .. } | EspEncr::ChaCha20Poly1305 => 8,
            EspEncr::AesCbc { .. } => 16,
        }
    }

    /// Length of the ICV at the end of each packet.
    pub fn icv_len(&self) -> usize {
        if self.is_aead() {
            16
        } else {
            self.integ.icv_len()
        }
    }

    /// The alignment the ciphertext (payload, padding, pad length, next header) must reach.
    pub fn block_align(&self) -> usize {
        match self.encr {
            EspEncr::AesGcm16 { .. } | EspEncr::ChaCha20Poly1305 => 4,
            EspEncr::AesCbc { .. } => 16,
        }
    }

    fn validate(&self) -> Result<(), CryptoError> {
        let bits_ok = |b: u16| matches!(b, 128 | 192 | 256);
        let ok = match self.encr {
            EspEncr::AesGcm16 { key_bits } => bits_ok(key_bits) && self.integ == EspInteg::None,
            EspEncr::ChaCha20Poly1305 => self.integ == EspInteg::None,
            EspEncr::AesCbc { key_bits } => bits_ok(key_bits) && self.integ != EspInteg::None,
        };
        if ok {
            Ok(())
        } else {
            Err(CryptoError::UnsupportedSuite)
        }
    }
}

/// Why a seal or open failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The key material does not have the length the suite needs.
    #[error("key material is {got} octets, the suite needs {want}")]
    KeyLength {
        /// Octets given.
        got: usize,
        /// Octets needed.
        want: usize,
    },
    /// The combination of transforms is not supported (e.g. AEAD with an HMAC).
    #[error("unsupported combination of transforms")]
    UnsupportedSuite,
    /// The packet is shorter than header, IV and ICV, or the ciphertext is not block-aligned.
    #[error("packet too short or misaligned for this suite")]
    BadLength,
    /// The ICV did not verify. Nothing was decrypted in place for CBC suites.
    #[error("integrity check failed")]
    IcvMismatch,
}

enum Cipher {
    Ring(aead::LessSafeKey),
    Gcm192(Box<aes_gcm::AesGcm<aes::Aes192, aes_gcm::aead::consts::U12>>),
    Cbc128(aes::Aes128),
    Cbc192(aes::Aes192),
    Cbc256(aes::Aes256),
}

#[derive(Clone)]
enum Integ {
    None,
    Sha1(hmac::Hmac<sha1::Sha1>),
    Sha256(hmac::Hmac<sha2::Sha256>),
    Sha384(hmac::Hmac<sha2::Sha384>),
    Sha512(hmac::Hmac<sha2::Sha512>),
}

/// A keyed ESP transform for one direction of one SA.
pub struct EspTransform {
    suite: EspSuite,
    cipher: Cipher,
    integ: Integ,
    salt: [u8; 4],
}

impl std::fmt::Debug for EspTransform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("EspTransform")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl Drop for EspTransform {
    fn drop(&mut self) {
        // The AES key schedules zeroize themselves (the `zeroize` feature of `aes`/`aes-gcm`);
        // the salt is part of the key material too.
        self.salt.zeroize();
    }
}

impl EspTransform {
    /// Keys a transform. `keymat` is the encryption key (with its 4-octet salt for AEAD
    /// suites) followed by the integrity key, as RFC 7296 §2.17 draws it from KEYMAT.
    pub fn new(suite: EspSuite, keymat: &[u8]) -> Result<Self, CryptoError> {
        suite.validate()?;
        if keymat.len() != suite.key_len() {
            return Err(CryptoError::KeyLength {
                got: keymat.len(),
                want: suite.key_len(),
            });
        }
        let (ekey, ikey) = keymat.split_at(suite.encr_key_len());
        let mut salt = [0u8; 4];
        let cipher = match suite.encr {
            EspEncr::AesGcm16 { key_bits } => {
                let (k, s) = ekey.split_at(ekey.len() - 4);
                salt.copy_from_slice(s);
                match key_bits {
                    128 => ring_key(&aead::AES_128_GCM, k)?,
                    192 => Cipher::Gcm192(Box::new(
                        aes_gcm::AesGcm::<aes::Aes192, _>::new_from_slice(k).map_err(kl)?,
                    )),
                    _ => ring_key(&aead::AES_256_GCM, k)?,
                }
            }
            EspEncr::ChaCha20Poly1305 => {
                let (k, s) = ekey.split_at(32);
                salt.copy_from_slice(s);
                ring_key(&aead::CHACHA20_POLY1305, k)?
            }
            EspEncr::AesCbc { key_bits } => match key_bits {
                128 => Cipher::Cbc128(aes::Aes128::new_from_slice(ekey).map_err(kl)?),
                192 => Cipher::Cbc192(aes::Aes192::new_from_slice(ekey).map_err(kl)?),
                _ => Cipher::Cbc256(aes::Aes256::new_from_slice(ekey).map_err(kl)?),
            },
        };
        let integ = match suite.integ {
            EspInteg::None => Integ::None,
            EspInteg::HmacSha1_96 => Integ::Sha1(Mac::new_from_slice(ikey).map_err(kl)?),
            EspInteg::HmacSha256_128 => Integ::Sha256(Mac::new_from_slice(ikey).map_err(kl)?),
            EspInteg::HmacSha384_192 => Integ::Sha384(Mac::new_from_slice(ikey).map_err(kl)?),
            EspInteg::HmacSha512_256 => Integ::Sha512(Mac::new_from_slice(ikey).map_err(kl)?),
        };
        Ok(Self {
            suite,
            cipher,
            integ,
            salt,
        })
    }

    /// The suite this transform was keyed for.
    pub fn suite(&self) -> EspSuite {
        self.suite
    }

    /// Encrypts and authenticates `packet` in place.
    ///
    /// `packet` is the whole ESP packet: header, IV (already written by the caller), the
    /// plaintext with its padding, pad length and next header, and `icv_len` octets at the end
    /// that this call fills in. `esn_high` carries the high 32 bits of the sequence number when
    /// extended sequence numbers are in use.
    pub fn seal(&self, packet: &mut [u8], esn_high: Option<u32>) -> Result<(), CryptoError> {
        let (iv_len, icv_len) = (self.suite.iv_len(), self.suite.icv_len());
        let body_start = ESP_HEADER_LEN + iv_len;
        let Some(body_end) = packet.len().checked_sub(icv_len) else {
            return Err(CryptoError::BadLength);
        };
        if body_end < body_start || (body_end - body_start) % self.suite.block_align() != 0 {
            return Err(CryptoError::BadLength);
        }
        let (head, rest) = packet.split_at_mut(body_start);
        let (body, icv) = rest.split_at_mut(body_end - body_start);
        match &self.cipher {
            Cipher::Ring(key) => {
                let aad = Aad12::new(head, esn_high);
                let nonce = self.nonce(&head[ESP_HEADER_LEN..]);
                let tag = key
                    .seal_in_place_separate_tag(nonce, aead::Aad::from(aad.as_ref()), body)
                    .map_err(|_| CryptoError::BadLength)?;
                icv.copy_from_slice(tag.as_ref());
            }
            Cipher::Gcm192(key) => {
                let aad = Aad12::new(head, esn_high);
                let nonce = self.nonce_bytes(&head[ESP_HEADER_LEN..]);
                let tag = key
                    .encrypt_in_place_detached((&nonce).into(), aad.as_ref(), body)
                    .map_err(|_| CryptoError::BadLength)?;
                icv.copy_from_slice(&tag);
            }
            Cipher::Cbc128(c) => cbc_encrypt(c, &head[ESP_HEADER_LEN..], body)?,
            Cipher::Cbc192(c) => cbc_encrypt(c, &head[ESP_HEADER_LEN..], body)?,
            Cipher::Cbc256(c) => cbc_encrypt(c, &head[ESP_HEADER_LEN..], body)?,
        }
        if !self.suite.is_aead() {
            let mac = self.mac(head, body, esn_high);
            icv.copy_from_slice(&mac[..icv_len]);
        }
        Ok(())
    }

    /// Verifies and decrypts `packet` in place (same layout as [`seal`](Self::seal)).
    ///
    /// On success the plaintext, with its padding and trailer, stands where the ciphertext was:
    /// `packet[8 + iv_len .. len - icv_len]`. On [`CryptoError::IcvMismatch`] the caller must
    /// drop the packet and must not update its replay window.
    pub fn open(&self, packet: &mut [u8], esn_high: Option<u32>) -> Result<(), CryptoError> {
        let (iv_len, icv_len) = (self.suite.iv_len(), self.suite.icv_len());
        let body_start = ESP_HEADER_LEN + iv_len;
        let Some(body_end) = packet.len().checked_sub(icv_len) else {
            return Err(CryptoError::BadLength);
        };
        if body_end < body_start || (body_end - body_start) % self.suite.block_align() != 0 {
            return Err(CryptoError::BadLength);
        }
        let (head, rest) = packet.split_at_mut(body_start);
        let (body, icv) = rest.split_at_mut(body_end - body_start);
        if !self.suite.is_aead() {
            // Verify before decrypting (RFC 4303 §3.4.4.1), in constant time.
            let mac = self.mac(head, body, esn_high);
            if !bool::from(mac[..icv_len].ct_eq(icv)) {
                return Err(CryptoError::IcvMismatch);
            }
        }
        match &self.cipher {
            Cipher::Ring(key) => {
                let aad = Aad12::new(head, esn_high);
                let nonce = self.nonce(&head[ESP_HEADER_LEN..]);
                let tag = aead::Tag::try_from(&*icv).map_err(|_| CryptoError::BadLength)?;
                key.open_in_place_separate_tag(
                    nonce,
                    aead::Aad::from(aad.as_ref()),
                    tag,
                    body,
                    0..,
                )
                .map_err(|_| CryptoError::IcvMismatch)?;
            }
            Cipher::Gcm192(key) => {
                let aad = Aad12::new(head, esn_high);
                let nonce = self.nonce_bytes(&head[ESP_HEADER_LEN..]);
                key.decrypt_in_place_detached((&nonce).into(), aad.as_ref(), body, (&*icv).into())
                    .map_err(|_| CryptoError::IcvMismatch)?;
            }
            Cipher::Cbc128(c) => cbc_decrypt(c, &head[ESP_HEADER_LEN..], body)?,
            Cipher::Cbc192(c) => cbc_decrypt(c, &head[ESP_HEADER_LEN..], body)?,
            Cipher::Cbc256(c) => cbc_decrypt(c, &head[ESP_HEADER_LEN..], body)?,
        }
        Ok(())
    }

    fn nonce_bytes(&self, iv: &[u8]) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&self.salt);
        n[4..].copy_from_slice(&iv[..8]);
        n
    }

    fn nonce(&self, iv: &[u8]) -> aead::Nonce {
        aead::Nonce::assume_unique_for_key(self.nonce_bytes(iv))
    }

    /// HMAC over ESP header || IV || ciphertext (|| ESN high), untruncated.
    fn mac(&self, head: &[u8], body: &[u8], esn_high: Option<u32>) -> MacOut {
        fn run<M: Mac + Clone>(m: &M, head: &[u8], body: &[u8], hi: Option<u32>) -> MacOut {
            let mut m = m.clone();
            m.update(head);
            m.update(body);
            if let Some(hi) = hi {
                m.update(&hi.to_be_bytes());
            }
            let out = m.finalize().into_bytes();
            let mut buf = MacOut([0u8; 64], out.len());
            buf.0[..out.len()].copy_from_slice(&out);
            buf
        }
        match &self.integ {
            Integ::None => MacOut([0u8; 64], 0),
            Integ::Sha1(m) => run(m, head, body, esn_high),
            Integ::Sha256(m) => run(m, head, body, esn_high),
            Integ::Sha384(m) => run(m, head, body, esn_high),
            Integ::Sha512(m) => run(m, head, body, esn_high),
        }
    }
}

struct MacOut([u8; 64], usize);

impl std::ops::Deref for MacOut {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0[..self.1]
    }
}

/// The AEAD additional data: SPI || seq (8 octets) or SPI || ESN high || ESN low (12 octets).
struct Aad12([u8; 12], usize);

impl Aad12 {
    fn new(head: &[u8], esn_high: Option<u32>) -> Self {
        let mut a = [0u8; 12];
        a[..4].copy_from_slice(&head[..4]);
        match esn_high {
            Some(hi) => {
                a[4..8].copy_from_slice(&hi.to_be_bytes());
                a[8..12].copy_from_slice(&head[4..8]);
                Self(a, 12)
            }
            None => {
                a[4..8].copy_from_slice(&head[4..8]);
                Self(a, 8)
            }
        }
    }
}

impl AsRef<[u8]> for Aad12 {
    fn as_ref(&self) -> &[u8] {
        &self.0[..self.1]
    }
}

fn ring_key(alg: &'static aead::Algorithm, key: &[u8]) -> Result<Cipher, CryptoError> {
    // No intermediate copy of the key: ring expands it straight from the caller's slice.
    let unbound = aead::UnboundKey::new(alg, key).map_err(|_| CryptoError::KeyLength {
        got: key.len(),
        want: alg.key_len(),
    })?;
    Ok(Cipher::Ring(aead::LessSafeKey::new(unbound)))
}

fn kl<E>(_: E) -> CryptoError {
    CryptoError::UnsupportedSuite
}

fn cbc_encrypt<C>(c: &C, iv: &[u8], body: &mut [u8]) -> Result<(), CryptoError>
where
    C: aes::cipher::BlockEncrypt + aes::cipher::BlockCipher + Clone,
    cbc::Encryptor<C>: InnerIvInit<Inner = C>,
{
    let mut enc = cbc::Encryptor::<C>::inner_iv_slice_init(c.clone(), iv)
        .map_err(|_| CryptoError::BadLength)?;
    for block in body.chunks_exact_mut(16) {
        enc.encrypt_block_mut(block.into());
    }
    Ok(())
}

fn cbc_decrypt<C>(c: &C, iv: &[u8], body: &mut [u8]) -> Result<(), CryptoError>
where
    C: aes::cipher::BlockDecrypt + aes::cipher::BlockCipher + Clone,
    cbc::Decryptor<C>: InnerIvInit<Inner = C>,
{
    let mut dec = cbc::Decryptor::<C>::inner_iv_slice_init(c.clone(), iv)
        .map_err(|_| CryptoError::BadLength)?;
    for block in body.chunks_exact_mut(16) {
        dec.decrypt_block_mut(block.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(suite: EspSuite, esn: Option<u32>) {
        let key: Vec<u8> = (0..suite.key_len() as u8).collect();
        let t = EspTransform::new(suite, &key).unwrap();
        let (iv, icv) = (suite.iv_len(), suite.icv_len());
        let body = 64;
        let mut p = vec![0u8; 8 + iv + body + icv];
        p[..8].copy_from_slice(&[1, 2, 3, 4, 0, 0, 0, 9]);
        for (i, b) in p[8 + iv..8 + iv + body].iter_mut().enumerate() {
            *b = i as u8;
        }
        let orig = p.clone();
        t.seal(&mut p, esn).unwrap();
        assert_ne!(p[8 + iv..8 + iv + body], orig[8 + iv..8 + iv + body]);
        let mut q = p.clone();
        t.open(&mut q, esn).unwrap();
        assert_eq!(q[..8 + iv + body], orig[..8 + iv + body]);
        // A flipped bit anywhere authenticated is refused.
        let mut r = p.clone();
        r[5] ^= 1;
        assert_eq!(t.open(&mut r, esn), Err(CryptoError::IcvMismatch));
        // A different ESN high half is refused.
        let mut r = p.clone();
        let other = Some(esn.map_or(1, |h| h ^ 1));
        assert_eq!(t.open(&mut r, other), Err(CryptoError::IcvMismatch));
    }

    #[test]
    fn every_suite_round_trips_and_rejects_tampering() {
        for &(name, suite) in SUITE_NAMES {
            assert_eq!(EspSuite::from_name(name), Some(suite));
            roundtrip(suite, None);
            roundtrip(suite, Some(7));
        }
    }

    #[test]
    fn wrong_key_length_is_an_error() {
        let s = EspSuite::from_name("aes256gcm16").unwrap();
        assert_eq!(
            EspTransform::new(s, &[0; 10]).err(),
            Some(CryptoError::KeyLength { got: 10, want: 36 })
        );
    }
}
