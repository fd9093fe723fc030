//! Errors of sealing and opening ESP packets, and of building SAs.

use crate::replay::{ReplayError, WindowSizeError};
use bh_crypto::CryptoError;

/// Why an outbound packet was not sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The buffer does not hold an IPv4 or IPv6 packet (empty, or another version nibble).
    #[error("not an IPv4 or IPv6 packet")]
    NotIp,
    /// Not enough headroom for the ESP header and IV, or tailroom for the trailer and ICV.
    #[error("no room in the buffer for ESP header or trailer")]
    NoRoom,
    /// The SA has used its last sequence number (2^32 - 1, or 2^64 - 1 with ESN); it must be
    /// rekeyed (RFC 4303 §3.3.3). Sequence numbers never wrap.
    #[error("sequence numbers exhausted; the SA must be rekeyed")]
    SeqExhausted,
    /// The IV handed in does not have the suite's IV length.
    #[error("IV of {got} octets, the suite needs {want}")]
    IvLength {
        /// Octets given.
        got: usize,
        /// Octets needed.
        want: usize,
    },
    /// The transform refused the packet.
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
}

/// Why an inbound packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The packet carries another SPI than this SA's.
    #[error("SPI {0:#x} is not this SA's")]
    WrongSpi(u32),
    /// Shorter than header, IV, trailer and ICV, or the ciphertext is not block-aligned.
    #[error("ESP packet too short or misaligned")]
    BadLength,
    /// The sequence number was seen already or is left of the window (RFC 4303 §3.4.3).
    #[error("replay: {0}")]
    Replay(#[from] ReplayError),
    /// The ICV did not verify (RFC 4303 §3.4.4): forged, corrupted, or another key.
    #[error("integrity check failed")]
    Icv,
    /// Pad length beyond the payload, or padding that is not 1, 2, 3, ... (RFC 4303 §2.4).
    #[error("bad ESP padding")]
    BadPadding,
    /// A next header other than IPv4 (4) or IPv6 (41): this is a tunnel-mode SA.
    #[error("unsupported next header {0}")]
    NextHeader(u8),
    /// The inner packet's version does not match the next header, or its length field does
    /// not fit in what was decrypted.
    #[error("malformed inner IP packet")]
    BadInner,
    /// A dummy packet (next header 59, RFC 4303 §2.6): dropped quietly.
    #[error("dummy packet")]
    Dummy,
}

/// Why an SA could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SaError {
    /// SPIs 0..=255 are reserved (RFC 4303 §2.1).
    #[error("SPI {0} is reserved")]
    ReservedSpi(u32),
    /// The replay window size is out of range.
    #[error(transparent)]
    Window(#[from] WindowSizeError),
}
