//! IKE SA key schedule (RFC 7296 §2.14, §2.17, §2.18) and the Encrypted payload (RFC 7296
//! §3.14 for AES-CBC with HMAC, RFC 5282 for AES-GCM, RFC 7634 for ChaCha20-Poly1305).
//!
//! Sealing builds the whole datagram: header, clear payloads, then the SK payload with IV,
//! ciphertext (inner payloads || padding || pad length) and ICV; the ICV (CBC) or AEAD tag
//! covers everything from the IKE header on. Opening checks the ICV in constant time before
//! anything is decrypted. [`seal_fragments`] and [`open_fragment`] do the same per
//! Encrypted Fragment payload (RFC 7383 §2.5); reassembly is the endpoint's.

use bh_crypto::{DhGroup, EspEncr, EspInteg, Prf, SecureRandom, Zeroizing, aead, aes_cbc, integ};

use crate::wire::{
    self, DecodeError, EncodeError, HEADER_LEN, Header, Message, PAYLOAD_HEADER_LEN, Payload,
    PayloadType,
};

/// The four algorithms of an IKE SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IkeSuite {
    /// Encryption (AES-CBC, AES-GCM-16 or ChaCha20-Poly1305).
    pub encr: EspEncr,
    /// Integrity ([`EspInteg::None`] with AEAD).
    pub integ: EspInteg,
    /// PRF.
    pub prf: Prf,
    /// Diffie-Hellman group.
    pub dh: DhGroup,
}

impl IkeSuite {
    fn is_aead(&self) -> bool {
        !matches!(self.encr, EspEncr::AesCbc { .. })
    }

    /// Encryption key length including the 4-octet salt of AEAD ciphers (RFC 5282 §7.1,
    /// RFC 7634 §4).
    pub fn encr_key_len(&self) -> usize {
        match self.encr {
            EspEncr::AesCbc { key_bits } => usize::from(key_bits / 8),
            EspEncr::AesGcm16 { key_bits } => usize::from(key_bits / 8) + 4,
            EspEncr::ChaCha20Poly1305 => 36,
        }
    }

    fn iv_len(&self) -> usize {
        if self.is_aead() {
            8
        } else {
            aes_cbc::BLOCK_LEN
        }
    }

    fn icv_len(&self) -> usize {
        if self.is_aead() {
            aead::TAG_LEN
        } else {
            self.integ.icv_len()
        }
    }
}

/// Why protecting or unprotecting a message failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SkError {
    /// The message does not decode.
    #[error("decode: {0}")]
    Decode(#[from] DecodeError),
    /// The message does not encode.
    #[error("encode: {0}")]
    Encode(#[from] EncodeError),
    /// No SK payload where one is required, or it is malformed (too short, bad padding).
    #[error("missing or malformed Encrypted payload")]
    Malformed,
    /// The message is authentic but its inner payloads do not decode: answer with
    /// [`DecodeError::notify`] (RFC 7296 §2.21.2).
    #[error("inner payloads: {0}")]
    InnerDecode(DecodeError),
    /// The ICV or AEAD tag did not verify.
    #[error("integrity check failed")]
    Integrity,
    /// The negotiated algorithms cannot be used (a bug or an unsupported suite).
    #[error("cipher failure")]
    Cipher,
    /// prf+ could not produce enough key material.
    #[error("key derivation failure")]
    Kdf,
}

/// The keys of one direction of an IKE SA.
pub struct DirKeys {
    /// SK_e (with salt for AEAD).
    pub encr: Zeroizing<Vec<u8>>,
    /// SK_a (empty for AEAD).
    pub integ: Zeroizing<Vec<u8>>,
}

/// All keys of an IKE SA (RFC 7296 §2.14).
pub struct IkeKeys {
    /// The negotiated suite.
    pub suite: IkeSuite,
    /// SK_d, for Child SA keys and IKE rekey.
    pub sk_d: Zeroizing<Vec<u8>>,
    /// Keys protecting messages sent by the original initiator.
    pub initiator: DirKeys,
    /// Keys protecting messages sent by the original responder.
    pub responder: DirKeys,
    /// SK_pi.
    pub sk_pi: Zeroizing<Vec<u8>>,
    /// SK_pr.
    pub sk_pr: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for IkeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IkeKeys")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl IkeKeys {
    /// Derives the keys from SKEYSEED (RFC 7296 §2.14):
    /// `{SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)`.
    pub fn derive(
        suite: IkeSuite,
        skeyseed: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
    ) -> Result<Self, SkError> {
        let pl = suite.prf.key_len();
        let al = if suite.is_aead() {
            0
        } else {
            suite.integ.key_len()
        };
        let el = suite.encr_key_len();
        let total = 3 * pl + 2 * al + 2 * el;
        let km = suite
            .prf
            .prf_plus_parts(skeyseed, &[ni, nr, spi_i, spi_r], total)
            .map_err(|_| SkError::Kdf)?;
        let mut off = 0usize;
        let mut take = |n: usize| {
            let v = Zeroizing::new(km.get(off..off + n).unwrap_or_default().to_vec());
            off += n;
            v
        };
        let sk_d = take(pl);
        let ai = take(al);
        let ar = take(al);
        let ei = take(el);
        let er = take(el);
        let sk_pi = take(pl);
        let sk_pr = take(pl);
        Ok(Self {
            suite,
            sk_d,
            initiator: DirKeys {
                encr: ei,
                integ: ai,
            },
            responder: DirKeys {
                encr: er,
                integ: ar,
            },
            sk_pi,
            sk_pr,
        })
    }

    /// Keys for the initial exchange: SKEYSEED = prf(Ni | Nr, g^ir) (RFC 7296 §2.14).
    pub fn initial(
        suite: IkeSuite,
        shared: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
    ) -> Result<Self, SkError> {
        let mut key = Zeroizing::new(Vec::with_capacity(ni.len() + nr.len()));
        key.extend_from_slice(ni);
        key.extend_from_slice(nr);
        let skeyseed = suite.prf.compute(&key, shared);
        Self::derive(suite, &skeyseed, ni, nr, spi_i, spi_r)
    }

    /// Keys for a rekeyed IKE SA: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)
    /// (RFC 7296 §2.18). The new SA's PRF is used for prf+, the old one for SKEYSEED.
    pub fn rekeyed(
        old_prf: Prf,
        old_sk_d: &[u8],
        suite: IkeSuite,
        shared: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
    ) -> Result<Self, SkError> {
        let skeyseed = old_prf.compute_parts(old_sk_d, &[shared, ni, nr]);
        Self::derive(suite, &skeyseed, ni, nr, spi_i, spi_r)
    }
}

/// Key material for both directions: (initiator to responder, responder to initiator).
pub type KeyPair = (Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>);

/// Child SA key material (RFC 7296 §2.17): `KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr)`;
/// the initiator-to-responder keys come first. Returns (i→r, r→i), each `len` octets.
pub fn child_keymat(
    prf: Prf,
    sk_d: &[u8],
    shared: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
    len: usize,
) -> Result<KeyPair, SkError> {
    let mut seed: Vec<&[u8]> = Vec::with_capacity(3);
    if let Some(s) = shared {
        seed.push(s);
    }
    seed.push(ni);
    seed.push(nr);
    let km = prf
        .prf_plus_parts(sk_d, &seed, len.checked_mul(2).ok_or(SkError::Kdf)?)
        .map_err(|_| SkError::Kdf)?;
    let (a, b) = km.split_at(len);
    Ok((Zeroizing::new(a.to_vec()), Zeroizing::new(b.to_vec())))
}

fn aead_nonce(key: &[u8], iv: &[u8]) -> Result<([u8; aead::NONCE_LEN], usize), SkError> {
    let klen = key.len().checked_sub(4).ok_or(SkError::Cipher)?;
    let mut nonce = [0u8; aead::NONCE_LEN];
    nonce
        .get_mut(..4)
        .ok_or(SkError::Cipher)?
        .copy_from_slice(key.get(klen..).ok_or(SkError::Cipher)?);
    nonce
        .get_mut(4..)
        .ok_or(SkError::Cipher)?
        .copy_from_slice(iv.get(..8).ok_or(SkError::Cipher)?);
    Ok((nonce, klen))
}

/// Encodes `header` + `clear` payloads + an SK payload carrying `inner`, protected with `keys`.
pub fn seal(
    header: &Header,
    clear: &[Payload],
    inner: &[Payload],
    suite: &IkeSuite,
    keys: &DirKeys,
    rng: &mut dyn SecureRandom,
) -> Result<Vec<u8>, SkError> {
    let mut plain = Zeroizing::new(Vec::new());
    let first_inner = wire::encode_payloads(inner, &mut plain)?;
    pad(&mut plain, suite)?;

    let mut iv = vec![0u8; suite.iv_len()];
    rng.fill(&mut iv);
    let sk_len = PAYLOAD_HEADER_LEN + iv.len() + plain.len() + suite.icv_len();

    let mut clear_bytes = Vec::new();
    let first = wire::encode_payloads(clear, &mut clear_bytes)?;
    // Fix the last clear payload's Next Payload to SK.
    let mut off = 0usize;
    let mut last_hdr = None;
    while off < clear_bytes.len() {
        last_hdr = Some(off);
        let len = clear_bytes
            .get(off + 2..off + 4)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            .ok_or(SkError::Malformed)?;
        off += len.max(PAYLOAD_HEADER_LEN);
    }
    if let Some(h) = last_hdr.and_then(|h| clear_bytes.get_mut(h)) {
        *h = PayloadType::SK.0;
    }
    let first = if clear.is_empty() {
        PayloadType::SK
    } else {
        first
    };
    let total = HEADER_LEN + clear_bytes.len() + sk_len;
    let mut out = Vec::with_capacity(total);
    header.encode(first, total, &mut out)?;
    out.extend_from_slice(&clear_bytes);
    out.push(first_inner.0);
    out.push(0);
    out.extend_from_slice(
        &u16::try_from(sk_len)
            .map_err(|_| SkError::Encode(EncodeError::TooLong))?
            .to_be_bytes(),
    );
    protect_body(&mut out, &iv, plain, suite, keys)?;
    Ok(out)
}

/// Appends IV || ciphertext || ICV to `out`, which holds everything before the IV (the AAD
/// for AEAD, the start of the ICV coverage for CBC).
fn protect_body(
    out: &mut Vec<u8>,
    iv: &[u8],
    mut plain: Zeroizing<Vec<u8>>,
    suite: &IkeSuite,
    keys: &DirKeys,
) -> Result<(), SkError> {
    if suite.is_aead() {
        let aad = out.clone();
        let (nonce, klen) = aead_nonce(&keys.encr, iv)?;
        let key = keys.encr.get(..klen).ok_or(SkError::Cipher)?;
        let ct =
            aead::seal_raw(suite.encr, key, &nonce, &aad, &plain).map_err(|_| SkError::Cipher)?;
        out.extend_from_slice(iv);
        out.extend_from_slice(&ct);
    } else {
        aes_cbc::encrypt(&keys.encr, iv, &mut plain).map_err(|_| SkError::Cipher)?;
        out.extend_from_slice(iv);
        out.extend_from_slice(&plain);
        let icv = integ::compute(suite.integ, &keys.integ, out).map_err(|_| SkError::Cipher)?;
        out.extend_from_slice(&icv);
    }
    Ok(())
}

/// Pads `plain` for `suite` (RFC 7296 §3.14: CBC to the block size including the Pad Length
/// octet; AEAD none, RFC 5282 §3) and appends the Pad Length.
fn pad(plain: &mut Zeroizing<Vec<u8>>, suite: &IkeSuite) -> Result<(), SkError> {
    let pad = if suite.is_aead() {
        0
    } else {
        (aes_cbc::BLOCK_LEN - (plain.len() + 1) % aes_cbc::BLOCK_LEN) % aes_cbc::BLOCK_LEN
    };
    plain.extend(std::iter::repeat_n(0u8, pad));
    plain.push(u8::try_from(pad).map_err(|_| SkError::Cipher)?);
    Ok(())
}

/// Verifies and decrypts `body` (IV || ciphertext || ICV), the last `body.len()` octets of
/// `data`, and strips the padding.
fn unprotect(
    data: &[u8],
    body: &[u8],
    suite: &IkeSuite,
    keys: &DirKeys,
) -> Result<Zeroizing<Vec<u8>>, SkError> {
    let body_len = body.len();
    let body_start = data.len().checked_sub(body_len).ok_or(SkError::Malformed)?;
    let iv_len = suite.iv_len();
    let icv_len = suite.icv_len();
    if body_len < iv_len + icv_len + 1 {
        return Err(SkError::Malformed);
    }
    let iv = body.get(..iv_len).ok_or(SkError::Malformed)?;
    let mut plain = if suite.is_aead() {
        let aad = data.get(..body_start).ok_or(SkError::Malformed)?;
        let (nonce, klen) = aead_nonce(&keys.encr, iv)?;
        let key = keys.encr.get(..klen).ok_or(SkError::Cipher)?;
        let sealed = body.get(iv_len..).ok_or(SkError::Malformed)?;
        aead::open_raw(suite.encr, key, &nonce, aad, sealed).map_err(|_| SkError::Integrity)?
    } else {
        let icv_at = data.len() - icv_len;
        let (covered, icv) = data.split_at(icv_at);
        integ::verify(suite.integ, &keys.integ, covered, icv).map_err(|_| SkError::Integrity)?;
        let mut ct = Zeroizing::new(
            body.get(iv_len..body_len - icv_len)
                .ok_or(SkError::Malformed)?
                .to_vec(),
        );
        aes_cbc::decrypt(&keys.encr, iv, &mut ct).map_err(|_| SkError::Malformed)?;
        ct
    };
    let pad = usize::from(*plain.last().ok_or(SkError::Malformed)?);
    let inner_len = plain.len().checked_sub(pad + 1).ok_or(SkError::Malformed)?;
    plain.truncate(inner_len);
    Ok(plain)
}

/// The most fragments a message is split into or reassembled from.
pub const MAX_FRAGMENTS: u16 = 64;

/// Seals `inner` as Encrypted Fragment payloads (RFC 7383 §2.5), each datagram at most
/// `max_len` octets (the IKE message, without UDP/IP headers or the non-ESP marker).
pub fn seal_fragments(
    header: &Header,
    inner: &[Payload],
    suite: &IkeSuite,
    keys: &DirKeys,
    rng: &mut dyn SecureRandom,
    max_len: usize,
) -> Result<Vec<Vec<u8>>, SkError> {
    let mut all = Zeroizing::new(Vec::new());
    let first_inner = wire::encode_payloads(inner, &mut all)?;
    // Header, SKF header (generic + number + total), IV, ICV, worst-case padding.
    let overhead =
        HEADER_LEN + PAYLOAD_HEADER_LEN + 4 + suite.iv_len() + suite.icv_len() + aes_cbc::BLOCK_LEN;
    let chunk = max_len.saturating_sub(overhead).max(64);
    let total = u16::try_from(all.len().div_ceil(chunk).max(1))
        .map_err(|_| SkError::Encode(EncodeError::TooLong))?;
    if total > MAX_FRAGMENTS {
        return Err(SkError::Encode(EncodeError::TooLong));
    }
    let mut out = Vec::with_capacity(usize::from(total));
    for (i, c) in all.chunks(chunk).enumerate() {
        let number = u16::try_from(i + 1).map_err(|_| SkError::Encode(EncodeError::TooLong))?;
        let mut plain = Zeroizing::new(c.to_vec());
        pad(&mut plain, suite)?;
        let mut iv = vec![0u8; suite.iv_len()];
        rng.fill(&mut iv);
        let skf_len = PAYLOAD_HEADER_LEN + 4 + iv.len() + plain.len() + suite.icv_len();
        let mut d = Vec::with_capacity(HEADER_LEN + skf_len);
        header.encode(PayloadType::SKF, HEADER_LEN + skf_len, &mut d)?;
        d.push(if i == 0 { first_inner.0 } else { 0 });
        d.push(0);
        d.extend_from_slice(
            &u16::try_from(skf_len)
                .map_err(|_| SkError::Encode(EncodeError::TooLong))?
                .to_be_bytes(),
        );
        d.extend_from_slice(&number.to_be_bytes());
        d.extend_from_slice(&total.to_be_bytes());
        protect_body(&mut d, &iv, plain, suite, keys)?;
        out.push(d);
    }
    Ok(out)
}

/// One authenticated, decrypted fragment.
#[derive(Debug)]
pub struct OpenedFragment {
    /// The header.
    pub header: Header,
    /// Fragment number, from 1.
    pub number: u16,
    /// Total fragments.
    pub total: u16,
    /// First inner payload type (meaningful in fragment 1).
    pub first_inner: PayloadType,
    /// The decrypted fragment content, padding removed.
    pub plain: Zeroizing<Vec<u8>>,
}

/// Verifies and decrypts a message made of one SKF payload (RFC 7383 §2.5).
pub fn open_fragment(
    data: &[u8],
    suite: &IkeSuite,
    keys: &DirKeys,
) -> Result<OpenedFragment, SkError> {
    let msg = Message::decode(data)?;
    let [Payload::Skf(f)] = msg.payloads.as_slice() else {
        return Err(SkError::Malformed);
    };
    if f.total > MAX_FRAGMENTS {
        return Err(SkError::Malformed);
    }
    let plain = unprotect(data, &f.body, suite, keys)?;
    Ok(OpenedFragment {
        header: msg.header,
        number: f.number,
        total: f.total,
        first_inner: f.first_inner,
        plain,
    })
}

/// A decoded protected message: header, clear payloads (ending with the SK payload, whose
/// body is dropped) and the decrypted inner payloads.
#[derive(Debug)]
pub struct Opened {
    /// The header.
    pub header: Header,
    /// Payloads before the SK payload.
    pub clear: Vec<Payload>,
    /// Payloads inside the SK payload.
    pub inner: Vec<Payload>,
}

/// Verifies and decrypts a message whose last payload is SK.
pub fn open(data: &[u8], suite: &IkeSuite, keys: &DirKeys) -> Result<Opened, SkError> {
    let msg = Message::decode(data)?;
    let mut clear = msg.payloads;
    let Some(Payload::Sk(sk)) = clear.pop() else {
        return Err(SkError::Malformed);
    };
    let plain = unprotect(data, &sk.body, suite, keys)?;
    let inner = wire::decode_payloads(sk.first_inner, &plain).map_err(SkError::InnerDecode)?;
    Ok(Opened {
        header: msg.header,
        clear,
        inner,
    })
}

#[cfg(test)]
mod tests {
    use bh_crypto::DeterministicRandom;

    use super::*;
    use crate::wire::{ExchangeType, FLAG_INITIATOR, Notify, NotifyType, VERSION_2_0};

    fn suites() -> Vec<IkeSuite> {
        vec![
            IkeSuite {
                encr: EspEncr::AesCbc { key_bits: 256 },
                integ: EspInteg::HmacSha1_96,
                prf: Prf::HmacSha1,
                dh: DhGroup::Modp1024,
            },
            IkeSuite {
                encr: EspEncr::AesGcm16 { key_bits: 256 },
                integ: EspInteg::None,
                prf: Prf::HmacSha256,
                dh: DhGroup::Ecp256,
            },
            IkeSuite {
                encr: EspEncr::ChaCha20Poly1305,
                integ: EspInteg::None,
                prf: Prf::HmacSha512,
                dh: DhGroup::Curve25519,
            },
        ]
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let mut rng = DeterministicRandom::from_seed([1; 32]);
        for suite in suites() {
            let keys =
                IkeKeys::initial(suite, &[5; 32], &[1; 32], &[2; 32], &[3; 8], &[4; 8]).unwrap();
            let header = Header {
                spi_i: [3; 8],
                spi_r: [4; 8],
                version: VERSION_2_0,
                exchange: ExchangeType::INFORMATIONAL,
                flags: FLAG_INITIATOR,
                message_id: 7,
            };
            let inner = vec![Payload::Notify(Notify::new(
                NotifyType::INITIAL_CONTACT,
                vec![],
            ))];
            let bytes = seal(&header, &[], &inner, &suite, &keys.initiator, &mut rng).unwrap();
            let opened = open(&bytes, &suite, &keys.initiator).unwrap();
            assert_eq!(opened.inner, inner);
            assert_eq!(opened.header, header);
            // Wrong direction's keys fail.
            assert_eq!(
                open(&bytes, &suite, &keys.responder).unwrap_err(),
                SkError::Integrity
            );
            // Any flipped bit after the header fails the integrity check.
            for i in [HEADER_LEN + 5, bytes.len() - 1, 20] {
                let mut t = bytes.clone();
                t[i] ^= 1;
                assert!(
                    open(&t, &suite, &keys.initiator).is_err(),
                    "{suite:?} byte {i}"
                );
            }
        }
    }

    #[test]
    fn fragments_round_trip_and_are_each_authenticated() {
        let mut rng = DeterministicRandom::from_seed([2; 32]);
        for suite in suites() {
            let keys =
                IkeKeys::initial(suite, &[5; 32], &[1; 32], &[2; 32], &[3; 8], &[4; 8]).unwrap();
            let header = Header {
                spi_i: [3; 8],
                spi_r: [4; 8],
                version: VERSION_2_0,
                exchange: ExchangeType::IKE_AUTH,
                flags: FLAG_INITIATOR,
                message_id: 1,
            };
            let inner = vec![
                Payload::VendorId(vec![0x42; 700]),
                Payload::Notify(Notify::new(NotifyType::INITIAL_CONTACT, vec![])),
            ];
            let frags =
                seal_fragments(&header, &inner, &suite, &keys.initiator, &mut rng, 300).unwrap();
            assert!(frags.len() >= 3, "{}", frags.len());
            let mut all = Vec::new();
            let mut first = PayloadType::NONE;
            for (i, f) in frags.iter().enumerate() {
                assert!(f.len() <= 300, "{}", f.len());
                let o = open_fragment(f, &suite, &keys.initiator).unwrap();
                assert_eq!(usize::from(o.number), i + 1);
                assert_eq!(usize::from(o.total), frags.len());
                if i == 0 {
                    first = o.first_inner;
                }
                all.extend_from_slice(&o.plain);
                let mut t = f.clone();
                let last = t.len() - 1;
                t[last] ^= 0x80;
                assert!(open_fragment(&t, &suite, &keys.initiator).is_err());
            }
            assert_eq!(crate::wire::decode_payloads(first, &all).unwrap(), inner);
        }
    }

    #[test]
    fn key_lengths_follow_the_suite() {
        let s = suites()[0];
        let k = IkeKeys::initial(s, &[5; 128], &[1; 32], &[2; 32], &[3; 8], &[4; 8]).unwrap();
        assert_eq!(k.sk_d.len(), 20);
        assert_eq!(k.initiator.integ.len(), 20);
        assert_eq!(k.initiator.encr.len(), 32);
        assert_ne!(*k.initiator.encr, *k.responder.encr);
        let g = suites()[1];
        let k = IkeKeys::initial(g, &[5; 32], &[1; 32], &[2; 32], &[3; 8], &[4; 8]).unwrap();
        assert_eq!(k.initiator.encr.len(), 36);
        assert!(k.initiator.integ.is_empty());
    }
}
