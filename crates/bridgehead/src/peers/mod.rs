//! Real third-party peers run inside lab namespaces for interop tests, the lab and the benches:
//! strongSwan (charon with kernel-libipsec), BIRD 2, FRR and GoBGP from Debian packages.
//!
//! Each launcher writes the peer's configuration into a scratch directory, starts it through
//! [`crate::netns::Namespaces::spawn`] (so it is stopped by PID with the namespace), and offers
//! the peer's own view of its state (for example `swanctl --list-sas`, `birdc show protocols`)
//! for tests to assert on.

pub mod bgpd;
pub mod strongswan;
