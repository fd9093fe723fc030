//! Diffie-Hellman for IKEv2 (IANA IKEv2 Transform Type 4).
//!
//! | group | what | public value | shared secret |
//! |---|---|---|---|
//! | 2, 14, 15, 16 | MODP, RFC 2409 §6.2 / RFC 3526 | g^x mod p, left-padded to the prime length (RFC 7296 §3.4) | g^xy mod p, left-padded to the prime length (RFC 7296 §2.14) |
//! | 24 | MODP with a 256-bit prime-order subgroup, RFC 5114 §2.3 | as above | as above |
//! | 19, 20, 21 | NIST P-256/384/521, RFC 5903 | x \|\| y, no 0x04 prefix (RFC 5903 §7) | the x coordinate (RFC 5903 §7) |
//! | 31 | Curve25519, RFC 8031 | the 32-octet u-coordinate (RFC 7748) | X25519 output, 32 octets |
//!
//! Modular exponentiation uses `crypto-bigint`'s fixed-width Montgomery arithmetic, whose
//! running time depends on the exponent's bit length but not on its value. The private
//! exponent is 2 × the group's security strength (RFC 3526 §8 table, upper estimate) for the
//! safe-prime groups, and uniform in [1, q-1] for group 24 (RFC 5114 §2.3, RFC 6989 §2.2).
//!
//! Peer public values are validated before use: exact length; MODP 1 < y < p-1 (RFC 6989 §2.1),
//! and y^q = 1 for group 24 (RFC 6989 §2.2); ECP points must decode on the curve (RFC 6989
//! §2.3; the identity has no x \|\| y encoding); X25519 results that are all zero are refused
//! (RFC 8031 §2). Every failure is a [`DhError`], never a panic.
//!
//! Not done here: reuse of private values across exchanges (each [`DhPrivate`] is for one
//! exchange; RFC 6989 §3 would make reuse safe only with the checks above, which is why they
//! are always on), and the weak groups 1, 5, 22, 23.

use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
use crypto_bigint::{U256, U1024, U2048, U3072, U4096, Uint, Word};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use zeroize::{Zeroize, Zeroizing};

use crate::random::{RngAdapter, SecureRandom};

/// A Diffie-Hellman group. The discriminants are the IANA Transform IDs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum DhGroup {
    /// 1024-bit MODP (RFC 2409 §6.2). Weak; kept for peers that offer nothing better.
    Modp1024 = 2,
    /// 2048-bit MODP (RFC 3526 §3).
    Modp2048 = 14,
    /// 3072-bit MODP (RFC 3526 §4).
    Modp3072 = 15,
    /// 4096-bit MODP (RFC 3526 §5).
    Modp4096 = 16,
    /// 2048-bit MODP with a 256-bit prime-order subgroup (RFC 5114 §2.3).
    Modp2048s256 = 24,
    /// 256-bit random ECP group, NIST P-256 (RFC 5903 §3.1).
    Ecp256 = 19,
    /// 384-bit random ECP group, NIST P-384 (RFC 5903 §3.2).
    Ecp384 = 20,
    /// 521-bit random ECP group, NIST P-521 (RFC 5903 §3.3).
    Ecp521 = 21,
    /// Curve25519 (RFC 8031).
    Curve25519 = 31,
}

/// Why a Diffie-Hellman operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DhError {
    /// The peer's public value does not have the group's length.
    #[error("public value is {got} octets, the group needs {want}")]
    PublicLength {
        /// Octets received.
        got: usize,
        /// Octets the group's public value has.
        want: usize,
    },
    /// The peer's public value is out of range, in the wrong subgroup, or not on the curve.
    #[error("invalid Diffie-Hellman public value")]
    InvalidPublic,
    /// The X25519 result is all zero: the peer sent a low-order point (RFC 8031 §2).
    #[error("all-zero X25519 shared secret")]
    ZeroSharedSecret,
    /// A private value given to [`DhGroup::private_from_bytes`] is out of range.
    #[error("invalid Diffie-Hellman private value")]
    InvalidPrivate,
    /// The random source kept producing unusable values (e.g. all zero).
    #[error("the random source produced no usable private value")]
    RandomFailure,
}

/// RFC 2409 §6.2, Second Oakley Group (IKEv2 group 2): 2^1024 - 2^960 - 1 + 2^64 * ([2^894 pi] + 129093).
const MODP1024_P: U1024 = U1024::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF",
));

/// RFC 3526 §3, 2048-bit MODP Group (IKEv2 group 14): 2^2048 - 2^1984 - 1 + 2^64 * ([2^1918 pi] + 124476).
const MODP2048_P: U2048 = U2048::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
));

/// RFC 3526 §4, 3072-bit MODP Group (IKEv2 group 15): 2^3072 - 2^3008 - 1 + 2^64 * ([2^2942 pi] + 1690314).
const MODP3072_P: U3072 = U3072::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33",
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864",
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2",
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
));

/// RFC 3526 §5, 4096-bit MODP Group (IKEv2 group 16): 2^4096 - 2^4032 - 1 + 2^64 * ([2^3966 pi] + 240904).
const MODP4096_P: U4096 = U4096::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33",
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864",
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2",
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D7",
    "88719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8",
    "DBBBC2DB04DE8EF92E8EFC141FBECAA6287C59474E6BC05D99B2964FA090C3A2",
    "233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA9",
    "93B4EA988D8FDDC186FFB7DC90A6C08F4DF435C934063199FFFFFFFFFFFFFFFF",
));

/// RFC 5114 §2.3, 2048-bit MODP Group with 256-bit Prime Order Subgroup (IKEv2 group 24): p.
const MODP2048S256_P: U2048 = U2048::from_be_hex(concat!(
    "87A8E61DB4B6663CFFBBD19C651959998CEEF608660DD0F25D2CEED4435E3B00",
    "E00DF8F1D61957D4FAF7DF4561B2AA3016C3D91134096FAA3BF4296D830E9A7C",
    "209E0C6497517ABD5A8A9D306BCF67ED91F9E6725B4758C022E0B1EF4275BF7B",
    "6C5BFC11D45F9088B941F54EB1E59BB8BC39A0BF12307F5C4FDB70C581B23F76",
    "B63ACAE1CAA6B7902D52526735488A0EF13C6D9A51BFA4AB3AD8347796524D8E",
    "F6A167B5A41825D967E144E5140564251CCACB83E6B486F6B3CA3F7971506026",
    "C0B857F689962856DED4010ABD0BE621C3A3960A54E710C375F26375D7014103",
    "A4B54330C198AF126116D2276E11715F693877FAD7EF09CADB094AE91E1A1597",
));

/// RFC 5114 §2.3: generator g of the order-q subgroup.
const MODP2048S256_G: U2048 = U2048::from_be_hex(concat!(
    "3FB32C9B73134D0B2E77506660EDBD484CA7B18F21EF205407F4793A1A0BA125",
    "10DBC15077BE463FFF4FED4AAC0BB555BE3A6C1B0C6B47B1BC3773BF7E8C6F62",
    "901228F8C28CBB18A55AE31341000A650196F931C77A57F2DDF463E5E9EC144B",
    "777DE62AAAB8A8628AC376D282D6ED3864E67982428EBC831D14348F6F2F9193",
    "B5045AF2767164E1DFC967C1FB3F2E55A4BD1BFFE83B9C80D052B985D182EA0A",
    "DB2A3B7313D3FE14C8484B1E052588B9B7D2BBD2DF016199ECD06E1557CD0915",
    "B3353BBB64E0EC377FD028370DF92B52C7891428CDC67EB6184B523D1DB246C3",
    "2F63078490F00EF8D647D148D47954515E2327CFEF98C582664B4C0F6CC41659",
));

/// RFC 5114 §2.3: the 256-bit prime order q of the subgroup.
const MODP2048S256_Q: U256 =
    U256::from_be_hex("8CF83642A709A097B447997640129DA299B1A47D1EB3750BA308B0FE64F5FBD3");

/// How many draws [`DhGroup::generate`] makes before giving up on a broken random source.
const MAX_DRAWS: usize = 64;

impl DhGroup {
    /// Every supported group.
    pub const ALL: [Self; 9] = [
        Self::Modp1024,
        Self::Modp2048,
        Self::Modp3072,
        Self::Modp4096,
        Self::Modp2048s256,
        Self::Ecp256,
        Self::Ecp384,
        Self::Ecp521,
        Self::Curve25519,
    ];

    /// The group with IANA Transform ID `id`, if supported.
    pub fn from_id(id: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.id() == id)
    }

    /// The IANA Transform ID (the Key Exchange payload's "Diffie-Hellman Group Num").
    pub fn id(self) -> u16 {
        self as u16
    }

    /// Length of the public value in a Key Exchange payload.
    pub fn public_len(self) -> usize {
        match self {
            Self::Modp1024 => 128,
            Self::Modp2048 | Self::Modp2048s256 => 256,
            Self::Modp3072 => 384,
            Self::Modp4096 => 512,
            Self::Ecp256 => 64,
            Self::Ecp384 => 96,
            Self::Ecp521 => 132,
            Self::Curve25519 => 32,
        }
    }

    /// Length of the shared secret g^ir.
    pub fn shared_secret_len(self) -> usize {
        match self {
            Self::Ecp256 | Self::Ecp384 | Self::Ecp521 => self.public_len() / 2,
            _ => self.public_len(),
        }
    }

    /// Private exponent length in octets for the MODP groups.
    fn modp_exp_len(self) -> usize {
        match self {
            // 2 × 128-bit strength; RFC 2409 gives no figure, RFC 3526 §8 none for 1024.
            Self::Modp1024 => 32,
            // RFC 3526 §8: 2048 → 320 bits, 3072 → 420 (rounded to 448), 4096 → 480 (to 512).
            Self::Modp2048 => 40,
            Self::Modp3072 => 56,
            Self::Modp4096 => 64,
            // RFC 5114 §2.3: the exponent is taken modulo q, 256 bits.
            _ => 32,
        }
    }

    /// Draws a fresh private value from `rng` and computes its public value.
    pub fn generate(self, rng: &mut dyn SecureRandom) -> Result<DhPrivate, DhError> {
        match self {
            Self::Ecp256 => {
                Ok(self.finish(Secret::P256(p256::SecretKey::random(&mut RngAdapter(rng)))))
            }
            Self::Ecp384 => {
                Ok(self.finish(Secret::P384(p384::SecretKey::random(&mut RngAdapter(rng)))))
            }
            Self::Ecp521 => {
                Ok(self.finish(Secret::P521(p521::SecretKey::random(&mut RngAdapter(rng)))))
            }
            Self::Curve25519 => {
                let mut k = Zeroizing::new([0u8; 32]);
                rng.fill(&mut k[..]);
                Ok(self.finish(Secret::X25519(x25519_dalek::StaticSecret::from(*k))))
            }
            _ => {
                let mut x = Zeroizing::new(vec![0u8; self.modp_exp_len()]);
                for _ in 0..MAX_DRAWS {
                    rng.fill(&mut x);
                    if modp_private_ok(self, &x) {
                        return Ok(self.finish(Secret::Modp(x)));
                    }
                }
                Err(DhError::RandomFailure)
            }
        }
    }

    /// A private value from its big-endian encoding, for known-answer tests and deterministic
    /// simulations.
    ///
    /// MODP: the exponent, 1 to prime-length octets, not zero (and less than q for group 24).
    /// ECP: the scalar, exactly the field length (32, 48 or 66 octets), in [1, n-1].
    /// Curve25519: the 32-octet scalar (clamped by X25519 as RFC 7748 §5 says).
    pub fn private_from_bytes(self, secret: &[u8]) -> Result<DhPrivate, DhError> {
        let bad = |_| DhError::InvalidPrivate;
        let s = match self {
            Self::Ecp256 | Self::Ecp384 | Self::Ecp521
                if secret.len() != self.shared_secret_len() =>
            {
                return Err(DhError::InvalidPrivate);
            }
            Self::Ecp256 => Secret::P256(p256::SecretKey::from_slice(secret).map_err(bad)?),
            Self::Ecp384 => Secret::P384(p384::SecretKey::from_slice(secret).map_err(bad)?),
            Self::Ecp521 => Secret::P521(p521::SecretKey::from_slice(secret).map_err(bad)?),
            Self::Curve25519 => {
                let k: [u8; 32] = secret.try_into().map_err(|_| DhError::InvalidPrivate)?;
                Secret::X25519(x25519_dalek::StaticSecret::from(k))
            }
            _ => {
                if secret.is_empty()
                    || secret.len() > self.public_len()
                    || !modp_private_ok(self, secret)
                {
                    return Err(DhError::InvalidPrivate);
                }
                Secret::Modp(Zeroizing::new(secret.to_vec()))
            }
        };
        Ok(self.finish(s))
    }

    fn finish(self, secret: Secret) -> DhPrivate {
        let public = match &secret {
            Secret::Modp(x) => match self {
                Self::Modp1024 => modp_pow_g(&MODP1024_P, &U1024::from_u8(2), x),
                Self::Modp2048 => modp_pow_g(&MODP2048_P, &U2048::from_u8(2), x),
                Self::Modp3072 => modp_pow_g(&MODP3072_P, &U3072::from_u8(2), x),
                Self::Modp4096 => modp_pow_g(&MODP4096_P, &U4096::from_u8(2), x),
                _ => modp_pow_g(&MODP2048S256_P, &MODP2048S256_G, x),
            },
            Secret::P256(k) => xy(k.public_key().to_encoded_point(false).as_bytes()),
            Secret::P384(k) => xy(k.public_key().to_encoded_point(false).as_bytes()),
            Secret::P521(k) => xy(k.public_key().to_encoded_point(false).as_bytes()),
            Secret::X25519(k) => x25519_dalek::PublicKey::from(k).as_bytes().to_vec(),
        };
        DhPrivate {
            group: self,
            public,
            secret,
        }
    }
}

/// Whether `x` (big-endian) is a usable private exponent for MODP `group`: not zero, and for
/// group 24 less than q.
fn modp_private_ok(group: DhGroup, x: &[u8]) -> bool {
    let nonzero = x.iter().fold(0u8, |acc, b| acc | b) != 0;
    if group != DhGroup::Modp2048s256 {
        return nonzero;
    }
    match uint_from_be::<{ U256::LIMBS }>(x) {
        Some(v) => nonzero && *v < MODP2048S256_Q,
        None => false,
    }
}

enum Secret {
    Modp(Zeroizing<Vec<u8>>),
    P256(p256::SecretKey),
    P384(p384::SecretKey),
    P521(p521::SecretKey),
    X25519(x25519_dalek::StaticSecret),
}

/// One side's private value and public value for one exchange. The private value is zeroized
/// on drop and never printed.
pub struct DhPrivate {
    group: DhGroup,
    public: Vec<u8>,
    secret: Secret,
}

impl std::fmt::Debug for DhPrivate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhPrivate")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl DhPrivate {
    /// The group this value belongs to.
    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// The public value to send in the Key Exchange payload ([`DhGroup::public_len`] octets).
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// Validates the peer's public value and computes the shared secret g^ir
    /// ([`DhGroup::shared_secret_len`] octets).
    pub fn shared_secret(&self, peer_public: &[u8]) -> Result<Zeroizing<Vec<u8>>, DhError> {
        let want = self.group.public_len();
        if peer_public.len() != want {
            return Err(DhError::PublicLength {
                got: peer_public.len(),
                want,
            });
        }
        match &self.secret {
            Secret::Modp(x) => match self.group {
                DhGroup::Modp1024 => modp_shared(&MODP1024_P, peer_public, x, false),
                DhGroup::Modp2048 => modp_shared(&MODP2048_P, peer_public, x, false),
                DhGroup::Modp3072 => modp_shared(&MODP3072_P, peer_public, x, false),
                DhGroup::Modp4096 => modp_shared(&MODP4096_P, peer_public, x, false),
                _ => modp_shared(&MODP2048S256_P, peer_public, x, true),
            },
            Secret::P256(k) => {
                let pk = p256::PublicKey::from_sec1_bytes(&sec1(peer_public))
                    .map_err(|_| DhError::InvalidPublic)?;
                let ss = p256::ecdh::diffie_hellman(k.to_nonzero_scalar(), pk.as_affine());
                Ok(Zeroizing::new(ss.raw_secret_bytes().to_vec()))
            }
            Secret::P384(k) => {
                let pk = p384::PublicKey::from_sec1_bytes(&sec1(peer_public))
                    .map_err(|_| DhError::InvalidPublic)?;
                let ss = p384::ecdh::diffie_hellman(k.to_nonzero_scalar(), pk.as_affine());
                Ok(Zeroizing::new(ss.raw_secret_bytes().to_vec()))
            }
            Secret::P521(k) => {
                let pk = p521::PublicKey::from_sec1_bytes(&sec1(peer_public))
                    .map_err(|_| DhError::InvalidPublic)?;
                let ss = p521::ecdh::diffie_hellman(k.to_nonzero_scalar(), pk.as_affine());
                Ok(Zeroizing::new(ss.raw_secret_bytes().to_vec()))
            }
            Secret::X25519(k) => {
                let u: [u8; 32] = peer_public.try_into().map_err(|_| DhError::InvalidPublic)?;
                let ss = k.diffie_hellman(&x25519_dalek::PublicKey::from(u));
                if !ss.was_contributory() {
                    return Err(DhError::ZeroSharedSecret);
                }
                Ok(Zeroizing::new(ss.as_bytes().to_vec()))
            }
        }
    }
}

/// x || y from a SEC 1 uncompressed point 0x04 || x || y.
fn xy(sec1_point: &[u8]) -> Vec<u8> {
    sec1_point.get(1..).map(<[u8]>::to_vec).unwrap_or_default()
}

/// 0x04 || x || y: the SEC 1 uncompressed encoding of an RFC 5903 public value.
fn sec1(xy: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(xy.len() + 1);
    v.push(0x04);
    v.extend_from_slice(xy);
    v
}

/// A big-endian value of at most `L` words, left-padded; `None` if it is longer.
fn uint_from_be<const L: usize>(bytes: &[u8]) -> Option<Zeroizing<Uint<L>>> {
    let size = L * std::mem::size_of::<Word>();
    let pad = size.checked_sub(bytes.len())?;
    let mut buf = Zeroizing::new(vec![0u8; size]);
    buf.get_mut(pad..)?.copy_from_slice(bytes);
    // `from_be_slice` asserts the exact length, which `buf` has.
    Some(Zeroizing::new(Uint::<L>::from_be_slice(&buf)))
}

/// The big-endian encoding of `v`, `L` words long (the prime's length for every MODP group).
fn uint_to_be<const L: usize>(v: &Uint<L>) -> Vec<u8> {
    let mut out = Vec::with_capacity(L * std::mem::size_of::<Word>());
    for w in v.as_words().iter().rev() {
        out.extend_from_slice(&w.to_be_bytes());
    }
    out
}

/// base^x mod p, with the exponent's length (not value) setting the running time.
fn modp_pow<const L: usize>(p: &Uint<L>, base: &Uint<L>, x: &[u8]) -> Option<Zeroizing<Uint<L>>> {
    let exp = uint_from_be::<L>(x)?;
    let params = DynResidueParams::new(p);
    let r = DynResidue::new(base, params).pow_bounded_exp(&*exp, x.len() * 8);
    Some(Zeroizing::new(r.retrieve()))
}

fn modp_pow_g<const L: usize>(p: &Uint<L>, g: &Uint<L>, x: &[u8]) -> Vec<u8> {
    // The exponent length was checked when the private value was made.
    modp_pow(p, g, x).map_or_else(Vec::new, |y| uint_to_be(&*y))
}

fn modp_shared<const L: usize>(
    p: &Uint<L>,
    peer: &[u8],
    x: &[u8],
    check_subgroup: bool,
) -> Result<Zeroizing<Vec<u8>>, DhError> {
    let y = uint_from_be::<L>(peer).ok_or(DhError::InvalidPublic)?;
    // RFC 6989 §2.1: 1 < y < p-1.
    if *y <= Uint::ONE || *y >= p.wrapping_sub(&Uint::ONE) {
        return Err(DhError::InvalidPublic);
    }
    if check_subgroup {
        // RFC 6989 §2.2: y^q = 1 mod p, so y lies in the order-q subgroup.
        let params = DynResidueParams::new(p);
        let yq = DynResidue::new(&y, params).pow(&MODP2048S256_Q).retrieve();
        if yq != Uint::ONE {
            return Err(DhError::InvalidPublic);
        }
    }
    let mut z = modp_pow(p, &y, x).ok_or(DhError::InvalidPrivate)?;
    let out = Zeroizing::new(uint_to_be(&*z));
    z.zeroize();
    Ok(out)
}
