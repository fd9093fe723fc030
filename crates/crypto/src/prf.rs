//! IKEv2 pseudorandom functions and prf+ (IANA IKEv2 Transform Type 2).
//!
//! - [`Prf`]: PRF_HMAC_SHA1 (RFC 7296 §3.3.2, RFC 2104) and PRF_HMAC_SHA2_256/384/512
//!   (RFC 4868 §2.1). HMAC accepts keys of any length, so SKEYSEED = prf(Ni | Nr, g^ir) works
//!   with the nonces as they come (RFC 7296 §2.14).
//! - [`Prf::prf_plus`]: prf+ of RFC 7296 §2.13,
//!   `T1 = prf(K, S | 0x01)`, `Tn = prf(K, Tn-1 | S | n)`, which can produce at most
//!   255 blocks; longer requests are an error, never a wrap of the counter.
//!
//! Outputs are key material and come back in [`Zeroizing`] buffers. This module does not
//! know which keys IKE derives (SK_d, SK_ai, ...): the `ike` crate slices the prf+ stream.

use hmac::Mac;
use zeroize::Zeroizing;

/// A negotiated IKEv2 PRF. The discriminants are the IANA Transform IDs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Prf {
    /// PRF_HMAC_SHA1 (Transform ID 2).
    HmacSha1 = 2,
    /// PRF_HMAC_SHA2_256 (Transform ID 5).
    HmacSha256 = 5,
    /// PRF_HMAC_SHA2_384 (Transform ID 6).
    HmacSha384 = 6,
    /// PRF_HMAC_SHA2_512 (Transform ID 7).
    HmacSha512 = 7,
}

/// The most blocks prf+ can produce: its counter is one octet (RFC 7296 §2.13).
pub const PRF_PLUS_MAX_BLOCKS: usize = 255;

/// Why a PRF computation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrfError {
    /// prf+ was asked for more than 255 blocks of output.
    #[error("prf+ asked for {requested} octets, at most {max} are possible")]
    TooLong {
        /// Octets requested.
        requested: usize,
        /// The most this PRF can give (255 × its output length).
        max: usize,
    },
}

impl Prf {
    /// The PRF with IANA Transform ID `id`, if supported.
    pub fn from_id(id: u16) -> Option<Self> {
        match id {
            2 => Some(Self::HmacSha1),
            5 => Some(Self::HmacSha256),
            6 => Some(Self::HmacSha384),
            7 => Some(Self::HmacSha512),
            _ => None,
        }
    }

    /// The IANA Transform ID.
    pub fn id(self) -> u16 {
        self as u16
    }

    /// Length of one PRF output block in octets.
    pub fn output_len(self) -> usize {
        match self {
            Self::HmacSha1 => 20,
            Self::HmacSha256 => 32,
            Self::HmacSha384 => 48,
            Self::HmacSha512 => 64,
        }
    }

    /// The preferred key length (RFC 7296 §2.13: the output length for HMAC PRFs), which is
    /// the length of SK_d, SK_pi and SK_pr.
    pub fn key_len(self) -> usize {
        self.output_len()
    }

    /// The most octets [`prf_plus`](Self::prf_plus) can produce.
    pub fn prf_plus_max(self) -> usize {
        PRF_PLUS_MAX_BLOCKS * self.output_len()
    }

    /// `prf(key, data)`.
    pub fn compute(self, key: &[u8], data: &[u8]) -> Zeroizing<Vec<u8>> {
        self.compute_parts(key, &[data])
    }

    /// `prf(key, parts[0] | parts[1] | ...)`, without concatenating the parts first.
    pub fn compute_parts(self, key: &[u8], parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(vec![0u8; self.output_len()]);
        self.compute_into(key, parts, &mut out);
        out
    }

    /// Writes `prf(key, concat(parts))` into `out`, which must be `output_len` octets
    /// (shorter outputs are truncated, longer ones left untouched past the output).
    fn compute_into(self, key: &[u8], parts: &[&[u8]], out: &mut [u8]) {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]], out: &mut [u8]) {
            // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
            let Ok(mut m) = <M as Mac>::new_from_slice(key) else {
                return;
            };
            for p in parts {
                m.update(p);
            }
            let tag = m.finalize().into_bytes();
            let n = out.len().min(tag.len());
            out[..n].copy_from_slice(&tag[..n]);
        }
        match self {
            Self::HmacSha1 => run::<hmac::Hmac<sha1::Sha1>>(key, parts, out),
            Self::HmacSha256 => run::<hmac::Hmac<sha2::Sha256>>(key, parts, out),
            Self::HmacSha384 => run::<hmac::Hmac<sha2::Sha384>>(key, parts, out),
            Self::HmacSha512 => run::<hmac::Hmac<sha2::Sha512>>(key, parts, out),
        }
    }

    /// `prf+(key, seed)` truncated to `len` octets (RFC 7296 §2.13).
    ///
    /// Fails with [`PrfError::TooLong`] when `len` exceeds 255 output blocks.
    pub fn prf_plus(
        self,
        key: &[u8],
        seed: &[u8],
        len: usize,
    ) -> Result<Zeroizing<Vec<u8>>, PrfError> {
        self.prf_plus_parts(key, &[seed], len)
    }

    /// [`prf_plus`](Self::prf_plus) with the seed given as parts to concatenate
    /// (e.g. `Ni | Nr | SPIi | SPIr`).
    pub fn prf_plus_parts(
        self,
        key: &[u8],
        seed: &[&[u8]],
        len: usize,
    ) -> Result<Zeroizing<Vec<u8>>, PrfError> {
        let max = self.prf_plus_max();
        if len > max {
            return Err(PrfError::TooLong {
                requested: len,
                max,
            });
        }
        let block = self.output_len();
        let mut out = Zeroizing::new(vec![0u8; len]);
        let mut prev = Zeroizing::new(vec![0u8; block]);
        let mut have_prev = false;
        for (i, chunk) in out.chunks_mut(block).enumerate() {
            // At most 255 chunks (checked above), so the counter 1..=255 fits one octet.
            let counter = [u8::try_from(i + 1).unwrap_or(u8::MAX)];
            let mut parts: Vec<&[u8]> = Vec::with_capacity(seed.len() + 2);
            if have_prev {
                parts.push(&prev);
            }
            parts.extend_from_slice(seed);
            parts.push(&counter);
            let mut t = Zeroizing::new(vec![0u8; block]);
            self.compute_into(key, &parts, &mut t);
            chunk.copy_from_slice(&t[..chunk.len()]);
            prev = t;
            have_prev = true;
        }
        Ok(out)
    }
}
