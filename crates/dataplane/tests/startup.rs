//! The dataplane as the daemon starts it (needs root: a fresh network namespace and a TUN
//! device): the workers run before the SAs are installed, and the daemon installs a manual
//! tunnel's SAs in two table updates (inbound, then outbound). ESP that the peer sends in that
//! gap waits for its SA and must be delivered once both updates are in.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bh_dataplane::{Dataplane, DataplaneConfig};
use bh_esp::{InboundSa, OutboundSa, PacketBuf};
use bh_sys::netns::run_in_netns;
use bh_sys::tun::{Tun, TunOptions};
use bh_sys::udp::{UdpOptions, UdpSocket};

const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 9, 2, 1);
const REMOTE: Ipv4Addr = Ipv4Addr::new(10, 9, 2, 2);
const SPI_IN: u32 = 0x2002;
const SPI_OUT: u32 = 0x1001;

/// An IPv4 packet REMOTE -> LOCAL of an unassigned protocol (253, RFC 3692), valid header
/// checksum, so the TUN takes it and the stack drops it quietly.
fn inner(id: u16) -> Vec<u8> {
    let mut p = vec![0u8; 48];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&48u16.to_be_bytes());
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[8] = 64;
    p[9] = 253;
    p[12..16].copy_from_slice(&REMOTE.octets());
    p[16..20].copy_from_slice(&LOCAL.octets());
    let sum = bh_packet::ip::checksum(&p[..20]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p
}

/// Several rounds, each a fresh dataplane: one ESP datagram arrives before any SA, then the
/// inbound and the outbound SA are installed back to back, as `bridgehead daemon` does. Each
/// round the datagram must reach the TUN device, and nothing may count as an unknown SPI.
#[test]
fn esp_held_before_a_manual_tunnels_sas_is_delivered_after_both_updates() {
    run_in_netns(|| {
        bh_sys::link::set_up(bh_sys::link::ifindex("lo").expect("lo")).expect("lo up");
        let peer = UdpSocket::bind("127.0.0.1:0".parse().unwrap(), &UdpOptions::default())
            .expect("peer socket");
        for round in 0..5 {
            let name = format!("bhs{round}");
            let tun = Tun::create_with(&name, 1, &TunOptions { vnet_hdr: true }).expect("tun");
            let idx = bh_sys::link::ifindex(&name).expect("ifindex");
            bh_sys::link::set_sysctl(&format!("net/ipv6/conf/{name}/disable_ipv6"), "1")
                .expect("sysctl");
            bh_sys::link::add_address(idx, IpAddr::V4(LOCAL), 24).expect("address");
            bh_sys::link::set_up(idx).expect("up");
            let dp = Dataplane::start(
                &DataplaneConfig {
                    workers: 1,
                    bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
                    udp_port: 14510,
                    socket_buffer: 1 << 20,
                    pin: false,
                    raw_esp: false,
                    max_packet: 9216,
                    ike: None,
                },
                vec![common::udp_tunnel(
                    "s",
                    tun.into_queues(),
                    peer.local_addr().unwrap(),
                )],
            )
            .expect("dataplane");
            let sealer = OutboundSa::new(SPI_IN, common::transform(3), false).unwrap();
            let mut pb = PacketBuf::new(2000);
            pb.load(&inner(round)).unwrap();
            sealer.seal(&mut pb, &mut |_| {}).expect("seal");
            let dst = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 14510);
            peer.send_to(pb.data(), dst).expect("send");
            // The worker has it (held, as its SPI is unknown) before the SAs go in.
            let deadline = Instant::now() + Duration::from_secs(2);
            while dp.global().rx_datagrams == 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(dp.global().rx_datagrams, 1, "round {round}: datagram read");
            std::thread::sleep(Duration::from_millis(20));
            dp.sas().add_inbound(
                0,
                Arc::new(InboundSa::new(SPI_IN, common::transform(3), false, 1024).unwrap()),
            );
            dp.sas().set_outbound(
                0,
                Some(Arc::new(
                    OutboundSa::new(SPI_OUT, common::transform(5), false).unwrap(),
                )),
            );
            let delivered = || dp.tunnels()[0].counters.snapshot().tun_tx_packets;
            let deadline = Instant::now() + Duration::from_secs(2);
            while delivered() == 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(
                (delivered(), dp.global().unknown_spi),
                (1, 0),
                "round {round}: the held datagram is delivered once the SAs are in, not dropped"
            );
            dp.stop();
        }
    });
}
