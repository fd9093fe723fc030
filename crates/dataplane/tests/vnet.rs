//! The dataplane on a TUN device opened with virtio headers, in a fresh network namespace
//! (needs root): a UDP super-packet the kernel hands over is split, sealed and sent as ESP in
//! UDP with GSO; ESP carrying consecutive TCP segments is opened, coalesced and written back as
//! one GSO super-packet; ESP carrying interleaved UDP flows is written as one USO super-packet
//! per flow.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bh_dataplane::{Dataplane, DataplaneConfig};
use bh_esp::{InboundSa, OutboundSa, PacketBuf};
use bh_sys::netns::run_in_netns;
use bh_sys::tun::{Tun, TunOptions};
use bh_sys::udp::{UdpOptions, UdpSocket};
use bh_sys::{GsoMsg, RecvMeta};

const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const REMOTE: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
const SPI_OUT: u32 = 0x1001;
const SPI_IN: u32 = 0x2002;

fn naive_csum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for w in data.chunks(2) {
        let v = u32::from(w[0]) << 8 | u32::from(*w.get(1).unwrap_or(&0));
        sum += v;
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn l4_ok(pkt: &[u8], proto: u8) -> bool {
    let mut ph = pkt[12..20].to_vec();
    ph.extend_from_slice(&[0, proto]);
    ph.extend_from_slice(&((pkt.len() - 20) as u16).to_be_bytes());
    ph.extend_from_slice(&pkt[20..]);
    naive_csum(&ph) == 0
}

/// An IPv4 TCP segment REMOTE:40000 -> LOCAL:5000 with `payload`, valid checksums.
fn tcp_segment(seq: u32, id: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 40];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&((40 + payload.len()) as u16).to_be_bytes());
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6] = 0x40;
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&REMOTE.octets());
    p[16..20].copy_from_slice(&LOCAL.octets());
    let c = naive_csum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&40000u16.to_be_bytes());
    p[22..24].copy_from_slice(&5000u16.to_be_bytes());
    p[24..28].copy_from_slice(&seq.to_be_bytes());
    p[28..32].copy_from_slice(&1u32.to_be_bytes());
    p[32] = 5 << 4;
    p[33] = 0x10;
    p[34..36].copy_from_slice(&1000u16.to_be_bytes());
    p.extend_from_slice(payload);
    let mut ph = p[12..20].to_vec();
    ph.extend_from_slice(&[0, 6]);
    ph.extend_from_slice(&((p.len() - 20) as u16).to_be_bytes());
    ph.extend_from_slice(&p[20..]);
    let c = naive_csum(&ph);
    p[36..38].copy_from_slice(&c.to_be_bytes());
    p
}

/// The device's packet counters (received from userspace, sent to it), from this
/// namespace's `/proc/thread-self/net/dev` (this thread is the one in the namespace).
fn tun_stats(name: &str) -> (u64, u64) {
    let dev = std::fs::read_to_string("/proc/thread-self/net/dev").expect("net/dev");
    let line = dev
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(&format!("{name}:")))
        .expect("device line");
    let f: Vec<u64> = line
        .split_whitespace()
        .map(|v| v.parse().expect("number"))
        .collect();
    (f[1], f[9])
}

#[test]
fn vnet_queues_split_super_packets_and_coalesce_tcp() {
    run_in_netns(|| {
        let tun = Tun::create_with("bhv0", 1, &TunOptions { vnet_hdr: true }).expect("tun");
        assert!(tun.vnet_hdr());
        let idx = bh_sys::link::ifindex("bhv0").expect("ifindex");
        // No IPv6 on the device: nothing but the test's own packets crosses it.
        bh_sys::link::set_sysctl("net/ipv6/conf/bhv0/disable_ipv6", "1").expect("sysctl");
        bh_sys::link::set_mtu(idx, 1400).expect("mtu");
        bh_sys::link::add_address(idx, IpAddr::V4(LOCAL), 24).expect("address");
        bh_sys::link::set_up(idx).expect("up");
        let lo = bh_sys::link::ifindex("lo").expect("lo");
        bh_sys::link::set_up(lo).expect("lo up");

        // The far gateway is a plain socket here, doing ESP by hand.
        let peer = UdpSocket::bind(
            "127.0.0.1:0".parse().unwrap(),
            &UdpOptions {
                reuse_port: false,
                buffer: 1 << 22,
            },
        )
        .expect("peer socket");
        let peer_addr = peer.local_addr().unwrap();
        let dp = Dataplane::start(
            &DataplaneConfig {
                workers: 1,
                bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
                udp_port: 14500,
                socket_buffer: 1 << 22,
                pin: false,
                raw_esp: false,
                max_packet: 9216,
                ike: None,
            },
            vec![common::udp_tunnel("v", tun.into_queues(), peer_addr)],
        )
        .expect("dataplane");
        dp.sas().set_outbound(
            0,
            Some(Arc::new(
                OutboundSa::new(SPI_OUT, common::transform(1), false).unwrap(),
            )),
        );
        dp.sas().add_inbound(
            0,
            Arc::new(InboundSa::new(SPI_IN, common::transform(2), false, 1024).unwrap()),
        );

        // Out: one USO super-packet of 5 x 1000 + 300 bytes from a local app.
        let app = UdpSocket::bind(
            SocketAddr::new(IpAddr::V4(LOCAL), 0),
            &UdpOptions::default(),
        )
        .unwrap();
        let data: Vec<u8> = (0..5300u32).map(|i| (i / 1000) as u8 ^ 0x5a).collect();
        let (_, tx_before) = tun_stats("bhv0");
        let msg = GsoMsg {
            data: &data,
            dst: SocketAddr::new(IpAddr::V4(REMOTE), 9),
            segment_size: 1000,
        };
        assert_eq!(app.send_gso_batch(&[msg]).unwrap(), 1);
        let opener = InboundSa::new(SPI_OUT, common::transform(1), false, 1024).unwrap();
        let mut got: Vec<Vec<u8>> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut bufs = vec![vec![0u8; 65536]; 8];
        let mut metas = [RecvMeta::default(); 8];
        while got.len() < 6 && Instant::now() < deadline {
            let n = {
                let mut slices: Vec<&mut [u8]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
                peer.recv_batch(&mut slices, &mut metas).unwrap()
            };
            if n == 0 {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            for (b, m) in bufs.iter().zip(&metas[..n]) {
                for d in m.datagrams(b) {
                    let mut pb = PacketBuf::from_slice(d);
                    opener.open(&mut pb).expect("ESP opens");
                    let p = pb.data();
                    // Only the app's datagrams (the kernel may also send, e.g., IPv6 router
                    // solicitations when the device comes up).
                    if p.first() == Some(&0x45)
                        && p.get(9) == Some(&17)
                        && p.get(16..20) == Some(&REMOTE.octets()[..])
                    {
                        got.push(p.to_vec());
                    }
                }
            }
        }
        let (_, tx_after) = tun_stats("bhv0");
        assert_eq!(
            tx_after - tx_before,
            1,
            "the kernel handed the TUN one super-packet"
        );
        assert_eq!(got.len(), 6, "six datagrams came out of the tunnel");
        for (i, p) in got.iter().enumerate() {
            let want = if i < 5 { 1000 } else { 300 };
            assert_eq!(p.len(), 28 + want, "datagram {i}");
            assert_eq!(naive_csum(&p[..20]), 0, "IPv4 header checksum {i}");
            assert!(l4_ok(p, 17), "UDP checksum {i}");
            assert_eq!(&p[28..], &data[i * 1000..i * 1000 + want]);
        }

        // In: eight consecutive TCP segments of one flow, sealed by the peer.
        let sealer = OutboundSa::new(SPI_IN, common::transform(2), false).unwrap();
        let (rx_before, _) = tun_stats("bhv0");
        let dst = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 14500);
        let mut sealed = Vec::new();
        for i in 0..8u32 {
            let payload = vec![i as u8; 1200];
            let seg = tcp_segment(1000 + i * 1200, 7 + i as u16, &payload);
            let mut pb = PacketBuf::new(2000);
            pb.load(&seg).unwrap();
            sealer.seal(&mut pb, &mut |_| {}).expect("seal");
            sealed.push(pb.data().to_vec());
        }
        let size = sealed[0].len();
        let all: Vec<u8> = sealed.concat();
        let msg = GsoMsg {
            data: &all,
            dst,
            segment_size: size as u16,
        };
        assert_eq!(peer.send_gso_batch(&[msg]).unwrap(), 1);
        let deadline = Instant::now() + Duration::from_secs(5);
        let delivered = loop {
            let st = dp.tunnels()[0].counters.snapshot();
            if st.tun_tx_packets >= 8 || Instant::now() > deadline {
                break st;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(delivered.tun_tx_packets, 8, "{delivered:?}");
        assert_eq!(delivered.tun_write_errors, 0);
        let (rx_after, _) = tun_stats("bhv0");
        assert_eq!(
            rx_after - rx_before,
            1,
            "the eight segments reached the kernel in one GSO write"
        );
        dp.stop();
    });
}

/// After a rekey the responder sends on the new SA as soon as it has answered, while the
/// initiator is still installing it. ESP for an SPI that is not installed yet waits (bounded)
/// and is delivered once the SA appears; ESP for an SPI that never appears is dropped after
/// the wait and counted as an unknown SPI.
#[test]
fn esp_arriving_just_before_its_sa_is_delivered_once_installed() {
    run_in_netns(|| {
        let tun = Tun::create_with("bhv1", 1, &TunOptions { vnet_hdr: true }).expect("tun");
        let idx = bh_sys::link::ifindex("bhv1").expect("ifindex");
        bh_sys::link::set_sysctl("net/ipv6/conf/bhv1/disable_ipv6", "1").expect("sysctl");
        bh_sys::link::add_address(idx, IpAddr::V4(LOCAL), 24).expect("address");
        bh_sys::link::set_up(idx).expect("up");
        bh_sys::link::set_up(bh_sys::link::ifindex("lo").expect("lo")).expect("lo up");
        let peer = UdpSocket::bind("127.0.0.1:0".parse().unwrap(), &UdpOptions::default())
            .expect("peer socket");
        let dp = Dataplane::start(
            &DataplaneConfig {
                workers: 1,
                bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
                udp_port: 14501,
                socket_buffer: 1 << 20,
                pin: false,
                raw_esp: false,
                max_packet: 9216,
                ike: None,
            },
            vec![common::udp_tunnel(
                "v",
                tun.into_queues(),
                peer.local_addr().unwrap(),
            )],
        )
        .expect("dataplane");
        let dst = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 14501);
        let send = |spi: u32| {
            let sealer = OutboundSa::new(spi, common::transform(3), false).unwrap();
            let mut pb = PacketBuf::new(2000);
            pb.load(&tcp_segment(1, 1, b"after the rekey")).unwrap();
            sealer.seal(&mut pb, &mut |_| {}).expect("seal");
            peer.send_to(pb.data(), dst).expect("send");
        };
        let delivered = || dp.tunnels()[0].counters.snapshot().tun_tx_packets;

        send(0x3003);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(delivered(), 0, "no SA yet: nothing delivered");
        assert_eq!(dp.global().unknown_spi, 0, "held, not dropped");
        dp.sas().add_inbound(
            0,
            Arc::new(InboundSa::new(0x3003, common::transform(3), false, 1024).unwrap()),
        );
        let deadline = Instant::now() + Duration::from_secs(2);
        while delivered() == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(delivered(), 1, "delivered once its SA was installed");

        send(0x4004);
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(
            dp.global().unknown_spi,
            1,
            "an SPI that never appears is dropped"
        );
        assert_eq!(delivered(), 1);
    });
}

/// An IPv4 UDP datagram REMOTE:`sport` -> LOCAL:`dport` with `payload`, valid checksums.
fn udp_datagram(sport: u16, dport: u16, id: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 28];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&((28 + payload.len()) as u16).to_be_bytes());
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6] = 0x40;
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&REMOTE.octets());
    p[16..20].copy_from_slice(&LOCAL.octets());
    let c = naive_csum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(payload);
    let mut ph = p[12..20].to_vec();
    ph.extend_from_slice(&[0, 17]);
    ph.extend_from_slice(&((p.len() - 20) as u16).to_be_bytes());
    ph.extend_from_slice(&p[20..]);
    let c = naive_csum(&ph);
    p[26..28].copy_from_slice(&c.to_be_bytes());
    p
}

/// ESP carrying two UDP flows interleaved datagram by datagram is opened and each flow is
/// written to the TUN as one UDP super-packet (`GSO_UDP_L4`) when the kernel accepts USO, and
/// the local sockets get every datagram intact and in order; a datagram whose UDP checksum
/// is wrong is written alone and dropped by the kernel.
#[test]
fn vnet_queue_coalesces_interleaved_udp_flows_into_uso_writes() {
    run_in_netns(|| {
        let tun = Tun::create_with("bhv2", 1, &TunOptions { vnet_hdr: true }).expect("tun");
        let uso = libc::TUN_F_USO4 | libc::TUN_F_USO6;
        let has_uso = tun.offloads() & uso == uso;
        assert_eq!(tun.queues()[0].offloads(), tun.offloads());
        let idx = bh_sys::link::ifindex("bhv2").expect("ifindex");
        bh_sys::link::set_sysctl("net/ipv6/conf/bhv2/disable_ipv6", "1").expect("sysctl");
        bh_sys::link::add_address(idx, IpAddr::V4(LOCAL), 24).expect("address");
        bh_sys::link::set_up(idx).expect("up");
        bh_sys::link::set_up(bh_sys::link::ifindex("lo").expect("lo")).expect("lo up");
        let apps: Vec<std::net::UdpSocket> = [7001u16, 7002]
            .iter()
            .map(|&p| {
                let s = std::net::UdpSocket::bind((LOCAL, p)).expect("app socket");
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                s
            })
            .collect();
        let peer = UdpSocket::bind("127.0.0.1:0".parse().unwrap(), &UdpOptions::default())
            .expect("peer socket");
        let dp = Dataplane::start(
            &DataplaneConfig {
                workers: 1,
                bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
                udp_port: 14502,
                socket_buffer: 1 << 22,
                pin: false,
                raw_esp: false,
                max_packet: 9216,
                ike: None,
            },
            vec![common::udp_tunnel(
                "v",
                tun.into_queues(),
                peer.local_addr().unwrap(),
            )],
        )
        .expect("dataplane");
        dp.sas().add_inbound(
            0,
            Arc::new(InboundSa::new(SPI_IN, common::transform(2), false, 1024).unwrap()),
        );
        let sealer = OutboundSa::new(SPI_IN, common::transform(2), false).unwrap();
        let seal = |p: &[u8]| {
            let mut pb = PacketBuf::new(2000);
            pb.load(p).unwrap();
            sealer.seal(&mut pb, &mut |_| {}).expect("seal");
            pb.data().to_vec()
        };
        let payload = |flow: usize, i: usize| -> Vec<u8> {
            (0..1000).map(|k| (k + 31 * i + 7 * flow) as u8).collect()
        };
        let mut sealed = Vec::new();
        for i in 0..6 {
            for (flow, dport) in [7001u16, 7002].iter().enumerate() {
                let d = udp_datagram(40000 + flow as u16, *dport, i as u16, &payload(flow, i));
                sealed.push(seal(&d));
            }
        }
        let (rx_before, _) = tun_stats("bhv2");
        let size = sealed[0].len();
        let all: Vec<u8> = sealed.concat();
        let dst = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 14502);
        let msg = GsoMsg {
            data: &all,
            dst,
            segment_size: size as u16,
        };
        assert_eq!(peer.send_gso_batch(&[msg]).unwrap(), 1);
        let mut buf = [0u8; 2048];
        for (flow, app) in apps.iter().enumerate() {
            for i in 0..6 {
                let n = app.recv(&mut buf).expect("datagram delivered");
                assert_eq!(&buf[..n], &payload(flow, i)[..], "flow {flow} datagram {i}");
            }
        }
        let (rx_after, _) = tun_stats("bhv2");
        // The worker counts a batch after writing it: the sockets may have it first.
        let deadline = Instant::now() + Duration::from_secs(5);
        let st = loop {
            let st = dp.tunnels()[0].counters.snapshot();
            if st.tun_tx_packets >= 12 || Instant::now() > deadline {
                break st;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(st.tun_tx_packets, 12, "{st:?}");
        assert_eq!(st.tun_write_errors, 0);
        assert_eq!(
            rx_after - rx_before,
            if has_uso { 2 } else { 12 },
            "one write per flow with USO (USO accepted: {has_uso})"
        );

        // A datagram whose UDP checksum is wrong (sealed as is, so ESP authenticates it) is
        // not merged into anything: the kernel sees it alone and drops it, and the next good
        // one arrives.
        let mut bad = udp_datagram(40000, 7001, 50, &payload(0, 50));
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let good = udp_datagram(40000, 7001, 51, &payload(0, 51));
        let two = [seal(&bad), seal(&good)].concat();
        let msg = GsoMsg {
            data: &two,
            dst,
            segment_size: size as u16,
        };
        assert_eq!(peer.send_gso_batch(&[msg]).unwrap(), 1);
        let n = apps[0].recv(&mut buf).expect("the good datagram");
        assert_eq!(&buf[..n], &payload(0, 51)[..], "the bad one was dropped");
        dp.stop();
    });
}
