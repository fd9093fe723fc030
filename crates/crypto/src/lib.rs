//! The crypto provider of bridgehead.
//!
//! One place for every algorithm that IKEv2 and ESP negotiate with the AWS, Azure and Google Cloud
//! gateways, behind small, explicit APIs:
//!
//! - [`esp`]: keyed ESP transforms that seal and open a whole ESP packet in place: AES-GCM-16
//!   (RFC 4106), ChaCha20-Poly1305 (RFC 7634), AES-CBC (RFC 3602) with HMAC-SHA1-96 (RFC 2404)
//!   or HMAC-SHA2 (RFC 4868), with or without extended sequence numbers.
//! - [`aead`], [`aes_cbc`], [`integ`]: the same primitives unbound from the ESP packet layout,
//!   for IKEv2's Encrypted payload and for known-answer tests.
//! - [`prf`]: PRF_HMAC_SHA1 / PRF_HMAC_SHA2_256/384/512 and prf+ (RFC 7296 §2.13), bounded to
//!   255 blocks.
//! - [`dh`]: Diffie-Hellman groups 2, 14, 15, 16, 24 (constant-time MODP on `crypto-bigint`),
//!   19, 20, 21 (NIST curves) and 31 (Curve25519), with peer public values validated
//!   (RFC 6989, RFC 8031).
//! - [`random`]: the [`SecureRandom`] trait every consumer takes, the OS source, a seeded
//!   generator for tests and simulations, and a per-thread fast generator for per-packet IVs.
//!
//! What it does not do: no I/O and no clock; no IV or nonce management (callers own
//! uniqueness: a counter for AEAD, [`FastRng`] for CBC); no sequence numbers or anti-replay
//! (the `esp` crate); no IKE key schedule beyond prf/prf+ (the `ike` crate slices the output);
//! no signatures or certificates; no groups or ciphers weaker than the ones listed (no DES,
//! 3DES, MD5, MODP 768/1536). MACs are compared in constant time; key material is held in
//! zeroizing containers where the underlying libraries allow it (ring's key schedules and the
//! `hmac` states are not zeroized on drop). Errors are enums; no function panics on
//! peer-supplied bytes.

#![forbid(unsafe_code)]

pub mod aead;
pub mod aes_cbc;
pub mod dh;
pub mod esp;
pub mod integ;
pub mod prf;
pub mod random;

pub use dh::{DhError, DhGroup, DhPrivate};
pub use esp::{
    CryptoError, ESP_HEADER_LEN, EspEncr, EspInteg, EspSuite, EspTransform, SUITE_NAMES,
};
pub use prf::{Prf, PrfError};
pub use random::{DeterministicRandom, FastRng, OsRandom, SecureRandom};
/// The zeroize-on-drop wrapper the shared secrets and PRF outputs come in.
pub use zeroize::Zeroizing;
