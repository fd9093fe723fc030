//! The validated configuration that the rest of bridgehead consumes.
//!
//! These types carry no serde or TOML: [`crate::load`] builds them from the file after every
//! check has passed. Secrets are held in [`Zeroizing`] buffers.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use bh_crypto::EspSuite;
use zeroize::Zeroizing;

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was loaded from.
    pub source: PathBuf,
    /// `[appliance]`.
    pub appliance: Appliance,
    /// `[dataplane]`.
    pub dataplane: Dataplane,
    /// `[[tunnel]]`, in file order.
    pub tunnels: Vec<Tunnel>,
    /// `[bgp]`; `None` when the file has no BGP section (no speaker runs).
    pub bgp: Option<crate::Bgp>,
}

/// `[appliance]`: addresses of this host.
#[derive(Debug, Clone, Default)]
pub struct Appliance {
    /// The address sockets bind to (`private_ip`); `None` binds the wildcard address.
    pub private_ip: Option<IpAddr>,
    /// The public (1:1 NAT) address, used as IKE identity (`public_ip`).
    pub public_ip: Option<IpAddr>,
}

/// `[dataplane]`: worker and socket settings shared by all tunnels.
#[derive(Debug, Clone)]
pub struct Dataplane {
    /// Worker threads, each with its own TUN queue per tunnel and its own UDP socket
    /// (`workers`; 0 in the file means one per online core, resolved at load time).
    pub workers: usize,
    /// Local UDP port for ESP in UDP and IKE NAT-T (`udp_port`, default 4500).
    pub udp_port: u16,
    /// SO_RCVBUF / SO_SNDBUF in bytes (`socket_buffer`, default 7 MiB).
    pub socket_buffer: usize,
    /// Pin each worker to one core (`pin_workers`, default true).
    pub pin_workers: bool,
}

/// How ESP leaves the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encap {
    /// ESP in UDP (RFC 3948), to the peer's `peer_port`. Needed through NAT.
    Udp,
    /// Raw ESP, IP protocol 50, when no NAT is in the path.
    Esp,
}

/// TCP MSS clamping on the tunnel path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MssClamp {
    /// Clamp to the tunnel MTU minus the IP and TCP headers.
    Auto,
    /// Do not touch the MSS option.
    Off,
    /// Clamp to this value.
    Fixed(u16),
}

/// An IP prefix, e.g. `10.1.0.0/16`, or an interface address with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    /// The address.
    pub addr: IpAddr,
    /// Prefix length in bits.
    pub len: u8,
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// One `[[tunnel]]`.
#[derive(Debug, Clone)]
pub struct Tunnel {
    /// Name; the TUN device is `bh-<name>` (so at most 12 characters).
    pub name: String,
    /// `cloud = "aws" | "azure" | "gcp"`: whose preset filled the keys not set in the file.
    pub cloud: Option<crate::cloud::Cloud>,
    /// The keys whose value came from the `cloud` preset, not the file (`"mtu"`,
    /// `"ike.pfs"`, ...); empty without `cloud`.
    pub from_preset: Vec<&'static str>,
    /// The keys the file sets, with their lines (for [`Tunnel::origin`]).
    pub set_in_file: crate::origin::FileKeys,
    /// The peer's outer (public) address.
    pub peer: IpAddr,
    /// The peer's UDP port for ESP in UDP (`peer_port`, default 4500).
    pub peer_port: u16,
    /// `encap = "udp" | "esp"` (default `udp`).
    pub encap: Encap,
    /// Addresses put on the TUN device (`inside`), e.g. the 169.254.x.x/30 of the cloud.
    pub inside: Vec<Prefix>,
    /// Static routes through the tunnel (`routes`).
    pub routes: Vec<Prefix>,
    /// Tunnel MTU (`mtu`, or the cloud preset's for the suites and encapsulation); `None`
    /// derives it from the suite and encapsulation.
    pub mtu: Option<u16>,
    /// `mss_clamp = "auto" | "off" | <number>` (default `auto`, or the cloud preset's).
    pub mss_clamp: MssClamp,
    /// NAT keepalive interval for ESP in UDP (`nat_keepalive`, seconds, default 20, 0 = off).
    pub nat_keepalive: Option<Duration>,
    /// Anti-replay window in packets (`replay_window`, 64..=4096, default 1024).
    pub replay_window: u32,
    /// Fixed SAs (`[tunnel.manual]`), like `ip xfrm state`.
    pub manual: Option<ManualKeys>,
    /// IKE keying (`psk`/`psk_file`, `local_id`, `remote_id`, `[tunnel.ike]`); exactly one of
    /// `manual` and `ike` is set.
    pub ike: Option<crate::ike::TunnelIke>,
}

impl Tunnel {
    /// The TUN device's name, `bh-<name>` (at most 15 characters, as Linux requires).
    pub fn device_name(&self) -> String {
        format!("bh-{}", self.name)
    }
}

/// `[tunnel.manual]`: a pair of fixed SAs.
#[derive(Debug, Clone)]
pub struct ManualKeys {
    /// `suite`, a strongSwan-style name such as `aes256gcm16` or `aes128-sha256`.
    pub suite: EspSuite,
    /// `esn`: extended sequence numbers (RFC 4304), default false.
    pub esn: bool,
    /// The SA we send with.
    pub outbound: ManualSa,
    /// The SA we receive with.
    pub inbound: ManualSa,
}

/// One direction of a manual-key tunnel.
#[derive(Clone)]
pub struct ManualSa {
    /// The SPI (never 0..=255, RFC 4303 §2.1).
    pub spi: u32,
    /// Key material: encryption key (with salt for AEAD) then integrity key.
    pub key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ManualSa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManualSa")
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("key", &"<redacted>")
            .finish()
    }
}
