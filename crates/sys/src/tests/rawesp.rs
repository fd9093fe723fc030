use std::net::{IpAddr, SocketAddr};

use super::recv_all;
use crate::mmsg::SendMsg;
use crate::netns::run_in_netns;
use crate::rawesp::RawEsp;

/// An ESP-looking packet: SPI, sequence number, then opaque bytes (RFC 4303 §2).
fn esp_packet(spi: u32, seq: u32, body_len: usize) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&spi.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend((0..body_len).map(|i| (i as u8) ^ (seq as u8)));
    p
}

fn round_trip(local: IpAddr) {
    let sock = RawEsp::bind(local, 1 << 20).unwrap();
    assert_eq!(sock.local_addr().unwrap(), local);
    let pkts: Vec<Vec<u8>> = (1..=5)
        .map(|seq| esp_packet(0x1234_5678, seq, 16 + seq as usize * 50))
        .collect();
    // The port is ignored for raw sockets; give a non-zero one to prove it.
    let dst = SocketAddr::new(local, 4500);
    let msgs: Vec<SendMsg<'_>> = pkts.iter().map(|p| SendMsg { data: p, dst }).collect();
    assert_eq!(sock.send_batch(&msgs).unwrap(), 5);
    let got = recv_all(&[&sock], 5, |s, bufs, meta| s.recv_batch(bufs, meta));
    assert_eq!(
        got.len(),
        5,
        "{local}: all ESP packets come back over loopback"
    );
    for ((data, meta), sent) in got.iter().zip(&pkts) {
        assert_eq!(
            data, sent,
            "{local}: payload is the ESP packet without any IP header"
        );
        assert_eq!(meta.src, SocketAddr::new(local, 0));
        assert!(!meta.truncated);
    }
}

#[test]
fn ipv4_raw_esp_strips_the_ip_header() {
    run_in_netns(|| round_trip("127.0.0.1".parse().unwrap()));
}

#[test]
fn ipv6_raw_esp_round_trips() {
    run_in_netns(|| round_trip("::1".parse().unwrap()));
}
