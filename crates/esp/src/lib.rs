//! ESP for bridgehead: the wire format, anti-replay and batched seal/open of tunnel-mode
//! Encapsulating Security Payload packets (RFC 4303), ESP-in-UDP demultiplexing (RFC 3948)
//! and extended sequence numbers (RFC 4304).
//!
//! What it does:
//!
//! - [`wire`]: the ESP header, and the classification of a UDP port 4500 datagram as IKE,
//!   NAT-keepalive or ESP.
//! - [`replay`]: the anti-replay window, 64 to 4096 packets, with ESN inference.
//! - [`buf`]: [`PacketBuf`], a reusable buffer with headroom and tailroom for in-place work.
//! - [`encap`]: per-packet padding, trailer, header and IV around an inner IPv4/IPv6 packet,
//!   and the checks when removing them.
//! - [`sa`]: [`OutboundSa`] and [`InboundSa`], which number, seal, check, open and count over
//!   batches: one atomic operation per outbound batch for sequence numbers, two window locks
//!   per inbound batch (per [`sa::OPEN_CHUNK`] = 64 packets), decryption outside the lock,
//!   counters added once per batch, and no allocation per packet.
//! - [`fuzzing`]: the entry point of the fuzz target and its corpus test.
//!
//! What it does not do: no I/O (no sockets, no TUN, no clock, no OS randomness: CBC IVs come
//! from a closure the caller passes); no SA table or SPI lookup, no traffic selectors,
//! lifetimes or rekeying (the dataplane and the IKE control plane own those); no IKE; no
//! transport mode; no fragmentation or MTU handling of inner packets (see `bh-packet`).
//! The ciphers are `bh-crypto`'s [`bh_crypto::EspTransform`].

#![forbid(unsafe_code)]

pub mod buf;
pub mod encap;
pub mod error;
pub mod fuzzing;
pub mod replay;
pub mod sa;
pub mod wire;

pub use buf::{HEADROOM, PacketBuf, TAILROOM};
pub use encap::InnerProto;
pub use error::{OpenError, SaError, SealError};
pub use replay::{ReplayError, ReplayWindow};
pub use sa::{CounterSnapshot, InboundSa, OutboundSa, SaCounters};
pub use wire::{NAT_KEEPALIVE, Udp4500};
