//! Tunnels added and removed while the workers run (configuration reload), in a fresh network
//! namespace (needs root): an added tunnel carries ESP both ways on every worker, the tunnel
//! that was there keeps working, and a removed one closes its device and drops its SAs.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bh_dataplane::{Dataplane, DataplaneConfig, TunnelConfig};
use bh_esp::{InboundSa, OutboundSa, PacketBuf};
use bh_sys::netns::run_in_netns;
use bh_sys::tun::Tun;
use std::net::UdpSocket;

const WORKERS: usize = 2;
const PORT: u16 = 14510;

/// A TUN device `name` with `local/24`, up, and the tunnel config around it.
fn tunnel(name: &str, local: Ipv4Addr, peer: SocketAddr) -> TunnelConfig {
    let tun = Tun::create(name, WORKERS).expect("tun");
    let idx = bh_sys::link::ifindex(name).expect("ifindex");
    bh_sys::link::set_sysctl(&format!("net/ipv6/conf/{name}/disable_ipv6"), "1").expect("sysctl");
    bh_sys::link::add_address(idx, IpAddr::V4(local), 24).expect("address");
    bh_sys::link::set_up(idx).expect("up");
    common::udp_tunnel(name, tun.into_queues(), peer)
}

/// An IPv4/UDP packet `src` -> `dst` port 9 (checksum 0: allowed for UDP over IPv4).
fn udp_packet(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 28];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&((28 + payload.len()) as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let sum = bh_packet::ip::checksum(&p[..20]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p[20..22].copy_from_slice(&40000u16.to_be_bytes());
    p[22..24].copy_from_slice(&9u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Sends a datagram from a local app to `dst` (routed into a tunnel) and returns the SPI of
/// the ESP that `peer` receives, if any within 3 s. What `peer` had received before (e.g. the
/// ICMP port-unreachable the kernel answers delivered packets with) is discarded first.
fn out_spi(from: Ipv4Addr, dst: Ipv4Addr, peer: &UdpSocket) -> Option<u32> {
    let mut stale = [0u8; 2048];
    std::thread::sleep(Duration::from_millis(50));
    for _ in 0..64 {
        if peer.recv_from(&mut stale).is_err() {
            break;
        }
    }
    let app = UdpSocket::bind(SocketAddr::new(IpAddr::V4(from), 0)).expect("app");
    app.send_to(b"through the tunnel", SocketAddr::new(IpAddr::V4(dst), 9))
        .expect("send");
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        if let Ok((n, _)) = peer.recv_from(&mut buf) {
            if n >= 8 {
                return Some(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Seals a packet for `dst` under `spi` and sends it to the dataplane's port from `peer`.
fn send_in(peer: &UdpSocket, spi: u32, salt: u8, src: Ipv4Addr, dst: Ipv4Addr) {
    let sealer = OutboundSa::new(spi, common::transform(salt), false).unwrap();
    let mut pb = PacketBuf::new(2000);
    pb.load(&udp_packet(src, dst, b"from the peer")).unwrap();
    sealer.seal(&mut pb, &mut |_| {}).expect("seal");
    peer.send_to(
        pb.data(),
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), PORT),
    )
    .expect("send");
}

fn wait(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

#[test]
fn tunnels_added_and_removed_while_running() {
    run_in_netns(|| {
        bh_sys::link::set_up(bh_sys::link::ifindex("lo").expect("lo")).expect("lo up");
        let peer_socket = || {
            let s = UdpSocket::bind("127.0.0.1:0").expect("peer socket");
            s.set_nonblocking(true).expect("nonblocking");
            s
        };
        let (peer_a, peer_b) = (peer_socket(), peer_socket());
        let (a_local, a_far) = (Ipv4Addr::new(10, 9, 0, 1), Ipv4Addr::new(10, 9, 0, 2));
        let (b_local, b_far) = (Ipv4Addr::new(10, 9, 1, 1), Ipv4Addr::new(10, 9, 1, 2));
        let dp = Dataplane::start(
            &DataplaneConfig {
                workers: WORKERS,
                bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
                udp_port: PORT,
                socket_buffer: 1 << 20,
                pin: false,
                raw_esp: false,
                max_packet: 9216,
                ike: None,
            },
            vec![tunnel("bhl-a", a_local, peer_a.local_addr().unwrap())],
        )
        .expect("dataplane");
        let install = |idx: usize, out: u32, inb: u32, salt: u8| {
            dp.sas().set_outbound(
                idx,
                Some(Arc::new(
                    OutboundSa::new(out, common::transform(salt), false).unwrap(),
                )),
            );
            dp.sas().add_inbound(
                idx,
                Arc::new(InboundSa::new(inb, common::transform(salt ^ 0x80), false, 1024).unwrap()),
            );
        };
        install(0, 0xa001, 0xa002, 1);
        assert_eq!(out_spi(a_local, a_far, &peer_a), Some(0xa001));

        // Added while running: its own slot, both directions, on the running workers.
        let b = dp
            .add_tunnel(tunnel("bhl-b", b_local, peer_b.local_addr().unwrap()))
            .expect("add");
        assert_eq!(b, 1);
        install(b, 0xb001, 0xb002, 2);
        assert_eq!(out_spi(b_local, b_far, &peer_b), Some(0xb001));
        send_in(&peer_b, 0xb002, 2 ^ 0x80, b_far, b_local);
        assert!(
            wait(|| dp.tunnels()[b].counters.snapshot().tun_tx_packets == 1),
            "{:?}",
            dp.tunnels()[b].counters.snapshot()
        );
        assert_eq!(dp.tunnels()[b].name, "bhl-b");
        // The tunnel that was there is untouched and still works.
        assert_eq!(out_spi(a_local, a_far, &peer_a), Some(0xa001));
        send_in(&peer_a, 0xa002, 1 ^ 0x80, a_far, a_local);
        assert!(wait(
            || dp.tunnels()[0].counters.snapshot().tun_tx_packets == 1
        ));

        // Removed: its SAs leave the table, its queues close and the device goes.
        dp.remove_tunnel(b).expect("remove");
        assert!(
            bh_sys::link::ifindex("bhl-b").is_err(),
            "bhl-b still exists"
        );
        let table = dp.sas().load();
        assert!(table.outbound.get(b).cloned().flatten().is_none());
        assert!(table.inbound.values().all(|e| e.tunnel != b));
        drop(table);
        let unknown = dp.global().unknown_spi;
        send_in(&peer_b, 0xb002, 2 ^ 0x80, b_far, b_local);
        assert!(
            wait(|| dp.global().unknown_spi == unknown + 1),
            "dropped as an unknown SPI"
        );
        // Its counters stay readable; the name can be used again, in a new slot.
        assert_eq!(dp.tunnels()[b].counters.snapshot().tun_tx_packets, 1);
        let again = dp
            .add_tunnel(tunnel("bhl-b", b_local, peer_b.local_addr().unwrap()))
            .expect("add again");
        assert_eq!(again, 2);
        install(again, 0xc001, 0xc002, 3);
        assert_eq!(out_spi(b_local, b_far, &peer_b), Some(0xc001));
        assert_eq!(out_spi(a_local, a_far, &peer_a), Some(0xa001));
        dp.stop();
    });
}
