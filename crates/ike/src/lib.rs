//! bridgehead's IKEv2 engine (RFC 7296), sans-IO.
//!
//! - [`wire`]: every IKEv2 payload decoded and encoded.
//!
//! What it does not do: no sockets, no clock, no OS randomness (the caller passes time and a
//! [`bh_crypto::SecureRandom`]); no ESP processing (Child SAs are handed to the shell as
//! events).

#![forbid(unsafe_code)]

pub mod config;
pub mod endpoint;
pub mod fuzzing;
pub mod sk;
pub mod wire;

pub use config::{Dpd, EspProposal, IkeId, IkeProposal, Lifetimes, TunnelId, TunnelIkeConfig};
pub use endpoint::{DownReason, Endpoint, EndpointSettings, Event, Instant, SaSnapshot, Transmit};
pub use sk::IkeSuite;
