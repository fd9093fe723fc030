//! bridgehead's IKEv2 engine (RFC 7296), sans-IO.
//!
//! - [`wire`]: every IKEv2 payload decoded and encoded (RFC 7296 §3, RFC 7383 §2.5).
//! - [`sk`]: the IKE key schedule and the Encrypted / Encrypted Fragment payloads.
//! - [`config`]: per-tunnel configuration ([`TunnelIkeConfig`]) and proposal matching.
//! - [`endpoint`]: the [`Endpoint`] state machine: IKE_SA_INIT, IKE_AUTH (PSK), CREATE_CHILD_SA
//!   (Child and IKE rekey), INFORMATIONAL (DPD, DELETE), NAT detection, cookies,
//!   fragmentation, retransmission, collisions. It hands out [`Transmit`]s and [`Event`]s.
//! - [`fuzzing`]: mutator and targets for the decoder and a responder.
//!
//! Time is an [`Instant`] given by the caller; randomness is a [`bh_crypto::SecureRandom`]
//! given at construction.
//!
//! What it does not do: no sockets, no clock, no OS randomness; no ESP processing (Child SAs
//! are handed to the shell as [`Event::ChildSaUp`] with their keys, and the shell installs
//! them); no NAT keepalives (the dataplane sends them); no certificates, EAP, MOBIKE,
//! configuration payloads or additional Child SAs beyond one pair per tunnel. Secrets (PSK,
//! SK_*, Child SA keys) live in zeroizing buffers and are never printed by `Debug`.

#![forbid(unsafe_code)]

pub mod config;
pub mod endpoint;
pub mod fuzzing;
pub mod sk;
pub mod wire;

pub use config::{Dpd, EspProposal, IkeId, IkeProposal, Lifetimes, TunnelId, TunnelIkeConfig};
pub use endpoint::{
    DownReason, Endpoint, EndpointCounters, EndpointSettings, Event, Instant, SaSnapshot, Transmit,
};
pub use sk::IkeSuite;
