//! bridgehead: one Linux userspace program that terminates the site-to-site VPN gateways of AWS,
//! Azure and Google Cloud.
//!
//! This crate is the binary's shell: the daemon (devices, routes, dataplane, control socket),
//! the CLI, and the lab in network namespaces. Protocol logic lives in the other crates.

#![forbid(unsafe_code)]

pub mod bgp;
pub mod cloud;
pub mod control;
pub mod daemon;
pub mod explain;
pub mod ike;
pub mod lab;
pub mod metrics;
pub mod netns;
pub mod peers;
pub mod reload;
pub mod status;
pub mod systemd;
pub mod views;
