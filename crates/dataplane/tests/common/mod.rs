//! What the dataplane's integration tests share: the test key's transform and an ESP-in-UDP
//! tunnel with the usual settings. It creates no device and starts no dataplane.
// why: each test file compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use std::net::SocketAddr;

use bh_crypto::{EspEncr, EspSuite, EspTransform};
use bh_dataplane::{Encap, TunnelConfig};
use bh_sys::tun::TunQueue;

/// AES-GCM-128 with a key made from `salt` (each direction of a test uses its own salt).
pub(crate) fn transform(salt: u8) -> EspTransform {
    let suite = EspSuite::aead(EspEncr::AesGcm16 { key_bits: 128 });
    let key: Vec<u8> = (0..suite.key_len()).map(|i| i as u8 ^ salt).collect();
    EspTransform::new(suite, &key).expect("key")
}

/// Tunnel `name` over `queues` to `peer`: ESP in UDP, MTU 1400, no MSS clamp, no ICMP
/// source, no keepalives.
pub(crate) fn udp_tunnel(name: &str, queues: Vec<TunQueue>, peer: SocketAddr) -> TunnelConfig {
    TunnelConfig {
        name: name.into(),
        queues,
        peer,
        encap: Encap::Udp,
        mtu: 1400,
        mss: None,
        icmp_src_v4: None,
        icmp_src_v6: None,
        keepalive: None,
    }
}
