use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use super::{inet_checksum, ip};
use crate::link::{self, Netlink};
use crate::netns::run_in_netns;
use crate::poll::{Epoll, Events};
use crate::tun::{Tun, TunOptions, TunQueue, VNET_HDR_LEN, VnetHdr};
use crate::udp::{UdpOptions, UdpSocket};

const TUN_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

/// Polls all `queues` for up to 10 s and returns the first packet (with the queue it came from)
/// for which `want` holds. Other traffic (IPv6 router solicitations, MLD) is skipped.
fn read_matching(
    queues: &[TunQueue],
    skip: usize,
    buf_len: usize,
    want: impl Fn(&[u8]) -> bool,
) -> (usize, Vec<u8>) {
    let ep = Epoll::new().unwrap();
    for (i, q) in queues.iter().enumerate() {
        ep.add(q.as_raw_fd(), i as u64).unwrap();
    }
    let mut events = Events::with_capacity(4);
    let mut buf = vec![0u8; buf_len];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        ep.wait(&mut events, 200).unwrap();
        for ev in events.iter() {
            let q = &queues[ev.token as usize];
            loop {
                let n = q.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                if buf.get(skip..n).is_some_and(&want) {
                    return (ev.token as usize, buf[skip..n].to_vec());
                }
            }
        }
    }
    panic!("no matching packet on any TUN queue within 10 s");
}

fn ipv4_src(p: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(p[12], p[13], p[14], p[15])
}

fn ipv4_dst(p: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(p[16], p[17], p[18], p[19])
}

/// An IPv4 ICMP echo request (RFC 792) from `src` to `dst`.
fn icmp_echo(src: Ipv4Addr, dst: Ipv4Addr, id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0];
    icmp.extend_from_slice(&id.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(data);
    let c = inet_checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let total = (20 + icmp.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 1, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = inet_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&icmp);
    ip
}

/// Sets up `name` with MTU 1380, 10.77.0.1/24, fd00:77::1/64, up; returns its index.
fn configure(name: &str) -> u32 {
    let idx = link::ifindex(name).unwrap();
    link::set_mtu(idx, 1380).unwrap();
    link::add_address(idx, TUN_ADDR.into(), 24).unwrap();
    link::add_address(idx, "fd00:77::1".parse().unwrap(), 64).unwrap();
    link::set_up(idx).unwrap();
    idx
}

#[test]
fn tun_with_two_queues_carries_udp_out_and_answers_icmp_echo() {
    run_in_netns(|| {
        let tun = Tun::create("bh-test0", 2).unwrap();
        assert!(
            !tun.queues()[0].vnet_hdr().unwrap(),
            "plain queues have no virtio header"
        );
        assert_eq!(tun.name(), "bh-test0");
        assert_eq!(tun.queues().len(), 2);
        assert!(!tun.vnet_hdr());
        let idx = configure("bh-test0");

        let l = ip(&["-o", "link", "show", "bh-test0"]);
        assert!(l.contains("mtu 1380"), "{l}");
        assert!(l.contains(",UP"), "{l}");
        let a = ip(&["-o", "addr", "show", "dev", "bh-test0"]);
        assert!(a.contains("inet 10.77.0.1/24"), "{a}");
        assert!(a.contains("inet6 fd00:77::1/64"), "{a}");
        // Only our address: the kernel's own random fe80:: address may briefly show as
        // tentative until its (skipped) DAD work item runs.
        let ours = a.lines().find(|l| l.contains("fd00:77::1/64")).unwrap();
        assert!(!ours.contains("tentative"), "usable at once: {ours}");
        assert!(
            a.contains("fd00:77::1/64 scope global nodad"),
            "IFA_F_NODAD set: {a}"
        );
        assert_eq!(link::ifindex("bh-test0").unwrap(), idx);

        link::set_sysctl("net/ipv4/conf/bh-test0/rp_filter", "0").unwrap();
        assert_eq!(
            link::get_sysctl("/proc/sys/net/ipv4/conf/bh-test0/rp_filter").unwrap(),
            "0"
        );
        link::set_sysctl("net/ipv4/ip_forward", "1").unwrap();
        assert_eq!(link::get_sysctl("net/ipv4/ip_forward").unwrap(), "1");

        let queues = tun.into_queues();

        // A datagram to an address routed to the TUN comes out of one of its queues.
        let sock =
            UdpSocket::bind(SocketAddr::new(TUN_ADDR.into(), 0), &UdpOptions::default()).unwrap();
        let sport = sock.local_addr().unwrap().port();
        let sent = sock
            .send_to(b"hello tun", SocketAddr::new(PEER.into(), 9999))
            .unwrap();
        assert_eq!(sent, 9);
        let (_, pkt) = read_matching(&queues, 0, 65536, |p| {
            p.len() >= 28 && p[0] >> 4 == 4 && p[9] == 17 && ipv4_dst(p) == PEER
        });
        let ihl = usize::from(pkt[0] & 0xf) * 4;
        assert_eq!(ipv4_src(&pkt), TUN_ADDR);
        assert_eq!(u16::from_be_bytes([pkt[ihl], pkt[ihl + 1]]), sport);
        assert_eq!(u16::from_be_bytes([pkt[ihl + 2], pkt[ihl + 3]]), 9999);
        assert_eq!(&pkt[ihl + 8..], b"hello tun");

        // An echo request written into a queue is answered by the kernel, out of the TUN.
        let req = icmp_echo(PEER, TUN_ADDR, 0xbeef, 7, b"bridgehead");
        assert_eq!(queues[0].write(&req).unwrap(), req.len());
        let (_, reply) = read_matching(&queues, 0, 65536, |p| {
            p.len() >= 28 && p[0] >> 4 == 4 && p[9] == 1 && p[20] == 0
        });
        assert_eq!(ipv4_src(&reply), TUN_ADDR);
        assert_eq!(ipv4_dst(&reply), PEER);
        assert_eq!(&reply[24..26], &0xbeefu16.to_be_bytes());
        assert_eq!(&reply[26..28], &7u16.to_be_bytes());
        assert_eq!(&reply[28..], b"bridgehead");
        assert_eq!(inet_checksum(&reply[20..]), 0, "valid ICMP checksum");

        // The device is not persistent: closing the last queue removes it.
        drop(queues);
        let gone = link::ifindex("bh-test0").unwrap_err();
        assert_eq!(gone.raw_os_error(), Some(libc::ENODEV));
    });
}

#[test]
fn routes_are_added_replaced_dumped_and_deleted() {
    run_in_netns(|| {
        let tun = Tun::create("bh-test0", 1).unwrap();
        let idx = configure(tun.name());
        let mut nl = Netlink::open().unwrap();
        let v4: IpAddr = "10.99.0.0".parse().unwrap();
        let v6: IpAddr = "fd00:99::".parse().unwrap();
        nl.add_route(v4, 16, idx, 100, 250).unwrap();
        nl.add_route(v4, 16, idx, 100, 250)
            .expect("NLM_F_REPLACE makes a repeat add succeed");
        nl.add_route(v6, 48, idx, 100, 250).unwrap();

        let shown = ip(&["route", "show", "table", "100"]);
        assert!(
            shown.contains("10.99.0.0/16 dev bh-test0 proto 250 scope link"),
            "{shown}"
        );
        assert_eq!(shown.lines().count(), 1, "{shown}");
        let shown6 = ip(&["-6", "route", "show", "table", "100"]);
        assert!(
            shown6.contains("fd00:99::/48 dev bh-test0 proto 250"),
            "{shown6}"
        );

        let dumped = nl.routes(libc::AF_UNSPEC, 100).unwrap();
        let mut ours: Vec<_> = dumped.iter().map(|r| (r.dst, r.prefix_len)).collect();
        ours.sort();
        assert_eq!(ours, vec![(v4, 16), (v6, 48)]);
        for r in &dumped {
            assert_eq!(
                (r.table, r.protocol, r.oif, r.kind),
                (100, 250, Some(idx), 1)
            );
        }
        // The connected route of the address lives in main, not in table 100.
        let main = link::routes(libc::AF_INET, link::TABLE_MAIN).unwrap();
        let connected = IpAddr::from([10, 77, 0, 0]);
        assert!(
            main.iter()
                .any(|r| (r.dst, r.prefix_len, r.oif) == (connected, 24, Some(idx))),
            "{main:?}"
        );

        // Deleting with another protocol matches nothing.
        let err = nl.del_route(v4, 16, idx, 100, 251).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ESRCH));
        link::del_route(v4, 16, idx, 100, 250).unwrap();
        link::del_route(v6, 48, idx, 100, 250).unwrap();
        assert_eq!(ip(&["route", "show", "table", "100"]).trim(), "");
        assert_eq!(ip(&["-6", "route", "show", "table", "100"]).trim(), "");
        assert!(nl.routes(libc::AF_UNSPEC, 100).unwrap().is_empty());
        let again = nl.del_route(v4, 16, idx, 100, 250).unwrap_err();
        assert_eq!(again.raw_os_error(), Some(libc::ESRCH));

        // Host bits past the prefix are refused before reaching the kernel.
        let bad = nl
            .add_route("10.99.1.0".parse().unwrap(), 16, idx, 100, 250)
            .unwrap_err();
        assert_eq!(bad.kind(), std::io::ErrorKind::InvalidInput);
        // Kernel errors come back as errno: no such interface.
        let nodev = nl.add_route(v4, 16, 999_999, 100, 250).unwrap_err();
        assert_eq!(nodev.raw_os_error(), Some(libc::ENODEV));
    });
}

/// An IPv4/UDP packet from `src` to `dst` carrying `payload`, with a valid IP header checksum
/// and, in the UDP checksum field, `udp_csum`.
fn ipv4_udp(src: SocketAddr, dst: SocketAddr, payload: &[u8], udp_csum: u16) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src.ip(), dst.ip()) else {
        panic!("IPv4 only")
    };
    let udp_len = (8 + payload.len()) as u16;
    let mut p = vec![0x45, 0, 0, 0, 0, 2, 0x40, 0, 64, 17, 0, 0];
    p[2..4].copy_from_slice(&(20 + udp_len).to_be_bytes());
    p.extend_from_slice(&s.octets());
    p.extend_from_slice(&d.octets());
    let c = inet_checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&src.port().to_be_bytes());
    p.extend_from_slice(&dst.port().to_be_bytes());
    p.extend_from_slice(&udp_len.to_be_bytes());
    p.extend_from_slice(&udp_csum.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// The folded, uncomplemented IPv4 pseudo-header sum for UDP (what NEEDS_CSUM expects in the
/// checksum field).
fn udp_pseudo_sum(src: Ipv4Addr, dst: Ipv4Addr, udp_len: u16) -> u16 {
    let mut ph = Vec::new();
    ph.extend_from_slice(&src.octets());
    ph.extend_from_slice(&dst.octets());
    ph.extend_from_slice(&[0, 17]);
    ph.extend_from_slice(&udp_len.to_be_bytes());
    !inet_checksum(&ph)
}

#[test]
fn vnet_hdr_queues_get_offloads_and_a_virtio_header() {
    run_in_netns(|| {
        let tun = Tun::create_with("bh-test1", 1, &TunOptions { vnet_hdr: true }).unwrap();
        assert!(tun.vnet_hdr());
        assert!(
            tun.queues()[0].vnet_hdr().unwrap(),
            "TUNGETIFF reports IFF_VNET_HDR"
        );
        let all = libc::TUN_F_CSUM
            | libc::TUN_F_TSO4
            | libc::TUN_F_TSO6
            | libc::TUN_F_USO4
            | libc::TUN_F_USO6;
        assert_eq!(
            tun.offloads(),
            all,
            "this kernel (>= 6.2) takes every offload"
        );
        configure(tun.name());

        // Read path: a locally sent datagram arrives with a checksum left to finish.
        let sock =
            UdpSocket::bind(SocketAddr::new(TUN_ADDR.into(), 0), &UdpOptions::default()).unwrap();
        sock.send_to(b"vnet", SocketAddr::new(PEER.into(), 9))
            .unwrap();
        let (_, raw) = read_matching(tun.queues(), 0, 65536, |p| {
            p.len() >= VNET_HDR_LEN + 28
                && p[VNET_HDR_LEN] >> 4 == 4
                && p[VNET_HDR_LEN + 9] == 17
                && ipv4_dst(&p[VNET_HDR_LEN..]) == PEER
        });
        let hdr = VnetHdr::decode(&raw).unwrap();
        assert_eq!(hdr.gso_type, VnetHdr::GSO_NONE);
        assert_eq!(
            hdr.flags & VnetHdr::F_NEEDS_CSUM,
            VnetHdr::F_NEEDS_CSUM,
            "{hdr:?}"
        );
        assert_eq!(
            (hdr.csum_start, hdr.csum_offset),
            (20, 6),
            "UDP checksum field"
        );
        assert!(raw.ends_with(b"vnet"));

        // Write path (USO): one 3-segment UDP super-packet becomes three datagrams.
        let rx =
            UdpSocket::bind(SocketAddr::new(TUN_ADDR.into(), 0), &UdpOptions::default()).unwrap();
        let from = SocketAddr::new(PEER.into(), 5555);
        let payload: Vec<u8> = (0..250u32).map(|i| (i / 100) as u8).collect();
        let udp_len = (8 + payload.len()) as u16;
        let csum = udp_pseudo_sum(PEER, TUN_ADDR, udp_len);
        let mut frame = VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            gso_type: VnetHdr::GSO_UDP_L4,
            hdr_len: 28,
            gso_size: 100,
            csum_start: 20,
            csum_offset: 6,
        }
        .encode()
        .to_vec();
        frame.extend(ipv4_udp(from, rx.local_addr().unwrap(), &payload, csum));
        assert_eq!(tun.queues()[0].write(&frame).unwrap(), frame.len());
        let got = super::recv_all(&[&rx], 3, |s, bufs, meta| s.recv_batch(bufs, meta));
        let sizes: Vec<usize> = got.iter().map(|(d, _)| d.len()).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        for (i, (d, m)) in got.iter().enumerate() {
            assert!(d.iter().all(|&b| b == i as u8), "segment {i}");
            assert_eq!(m.src, from);
        }
    });
}

#[test]
fn short_buffer_read_is_bounded_by_the_buffer() {
    run_in_netns(|| {
        let tun = Tun::create("bh-test2", 1).unwrap();
        configure(tun.name());
        let sock =
            UdpSocket::bind(SocketAddr::new(TUN_ADDR.into(), 0), &UdpOptions::default()).unwrap();
        sock.send_to(&[5u8; 1000], SocketAddr::new(PEER.into(), 9))
            .unwrap();
        let (_, head) = read_matching(tun.queues(), 0, 100, |p| {
            // Only the first 100 bytes arrive; the IP total length tells the truth.
            p.len() == 100 && p[0] == 0x45 && p[9] == 17 && u16::from_be_bytes([p[2], p[3]]) == 1028
        });
        assert_eq!(head.len(), 100);
    });
}
