//! The crypto provider of bridgehead.
//!
//! One place for every algorithm that IKEv2 and ESP negotiate with the AWS, Azure and Google Cloud
//! gateways:
//!
//! - [`esp`]: keyed ESP transforms that seal and open a whole ESP packet in place: AES-GCM-16
//!   (RFC 4106), ChaCha20-Poly1305 (RFC 7634), AES-CBC (RFC 3602) with HMAC-SHA1-96 or
//!   HMAC-SHA2 (RFC 4868).
//!
//! This crate performs no I/O and never reads the clock. MACs are compared in constant time and
//! key material is zeroized on drop.

#![forbid(unsafe_code)]

pub mod aead;
pub mod aes_cbc;
pub mod dh;
pub mod esp;
pub mod integ;
pub mod prf;
pub mod random;

pub use esp::{CryptoError, EspEncr, EspInteg, EspSuite, EspTransform};
