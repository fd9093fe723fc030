use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::recv_all;
use crate::mmsg::{GsoMsg, MAX_BATCH, RecvMeta, SendMsg};
use crate::netns::run_in_netns;
use crate::udp::{UdpOptions, UdpSocket};

const BUF: usize = 4 << 20;

fn payload(i: usize) -> Vec<u8> {
    vec![i as u8; 100 + i * 37]
}

#[test]
fn reuse_port_pair_receives_a_batch_of_32_with_lengths_and_source() {
    run_in_netns(|| {
        let opts = UdpOptions {
            reuse_port: true,
            buffer: BUF,
        };
        let a = UdpSocket::bind("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        let port = a.local_addr().unwrap().port();
        assert_ne!(port, 0);
        let dst: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
        let b = UdpSocket::bind(dst, &opts).expect("second SO_REUSEPORT bind");
        assert_eq!(b.local_addr().unwrap(), dst);
        let no_reuse = UdpSocket::bind(dst, &UdpOptions::default()).unwrap_err();
        assert_eq!(no_reuse.raw_os_error(), Some(libc::EADDRINUSE));

        // SO_RCVBUFFORCE/SO_SNDBUFFORCE took effect: the kernel reports twice the request,
        // far above the default rmem_max/wmem_max cap that plain SO_RCVBUF would hit.
        for s in [&a, &b] {
            assert!(s.recv_buffer_size().unwrap() >= BUF, "rcvbuf");
            assert!(s.send_buffer_size().unwrap() >= BUF, "sndbuf");
        }

        let tx = UdpSocket::bind("127.0.0.1:0".parse().unwrap(), &UdpOptions::default()).unwrap();
        let txaddr = tx.local_addr().unwrap();
        let datas: Vec<Vec<u8>> = (0..32).map(payload).collect();
        let msgs: Vec<SendMsg<'_>> = datas.iter().map(|d| SendMsg { data: d, dst }).collect();
        assert_eq!(tx.send_batch(&msgs).unwrap(), 32);

        let got = recv_all(&[&a, &b], 32, |s, bufs, meta| s.recv_batch(bufs, meta));
        assert_eq!(got.len(), 32, "all 32 datagrams arrive across the pair");
        let mut by_index = BTreeMap::new();
        for (data, meta) in got {
            assert_eq!(meta.src, txaddr);
            assert!(!meta.truncated);
            assert_eq!(meta.len, data.len());
            by_index.insert(data[0] as usize, data);
        }
        for (i, d) in by_index.iter() {
            assert_eq!(d, &payload(*i), "datagram {i}");
        }
        assert_eq!(by_index.len(), 32);

        // Nothing left: EAGAIN comes back as Ok(0).
        let mut storage = [[0u8; 64]; 2];
        let mut bufs: Vec<&mut [u8]> = storage.iter_mut().map(|b| b.as_mut_slice()).collect();
        let mut meta = [RecvMeta::default(); 2];
        assert_eq!(a.recv_batch(&mut bufs, &mut meta).unwrap(), 0);
        assert_eq!(b.recv_batch(&mut bufs, &mut meta).unwrap(), 0);
    });
}

#[test]
fn truncation_is_flagged_and_batches_cap_at_max() {
    run_in_netns(|| {
        let rx = UdpSocket::bind("127.0.0.1:0".parse().unwrap(), &UdpOptions::default()).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0".parse().unwrap(), &UdpOptions::default()).unwrap();
        let dst = rx.local_addr().unwrap();
        assert_eq!(tx.send_to(&[7u8; 3000], dst).unwrap(), 3000);
        let got = recv_all(&[&rx], 1, |s, bufs, meta| {
            let mut small = [0u8; 1000];
            let mut one: [&mut [u8]; 1] = [&mut small];
            let n = s.recv_batch(&mut one, meta)?;
            bufs[0][..1000].copy_from_slice(&small);
            Ok(n)
        });
        assert_eq!(got.len(), 1);
        assert!(got[0].1.truncated, "3000-byte datagram into 1000 bytes");
        assert_eq!(got[0].1.len, 1000);

        // More than MAX_BATCH messages: one call sends exactly MAX_BATCH.
        let data = [1u8; 10];
        let msgs = vec![SendMsg { data: &data, dst }; MAX_BATCH + 6];
        assert_eq!(tx.send_batch(&msgs).unwrap(), MAX_BATCH);
        let got = recv_all(&[&rx], MAX_BATCH, |s, bufs, meta| s.recv_batch(bufs, meta));
        assert_eq!(got.len(), MAX_BATCH);
    });
}

#[test]
fn ipv6_socket_is_v6only_and_batches() {
    run_in_netns(|| {
        let opts = UdpOptions {
            reuse_port: false,
            buffer: 1 << 20,
        };
        let rx = UdpSocket::bind("[::1]:0".parse().unwrap(), &opts).unwrap();
        let tx = UdpSocket::bind("[::1]:0".parse().unwrap(), &opts).unwrap();
        let v6only = crate::sockopt::get_int(&rx, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY).unwrap();
        assert_eq!(v6only, 1);
        let dst = rx.local_addr().unwrap();
        let datas: Vec<Vec<u8>> = (0..4).map(payload).collect();
        let msgs: Vec<SendMsg<'_>> = datas.iter().map(|d| SendMsg { data: d, dst }).collect();
        assert_eq!(tx.send_batch(&msgs).unwrap(), 4);
        let got = recv_all(&[&rx], 4, |s, bufs, meta| s.recv_batch(bufs, meta));
        assert_eq!(got.len(), 4);
        for (i, (data, meta)) in got.iter().enumerate() {
            assert_eq!(data, &payload(i), "order is kept on one socket");
            assert_eq!(meta.src, tx.local_addr().unwrap());
        }
    });
}

/// 10 full segments and a short last one.
fn gso_payload() -> Vec<u8> {
    (0..10_500u32).map(|i| (i / 1000) as u8).collect()
}

#[test]
fn gso_send_arrives_as_separate_datagrams_without_gro() {
    run_in_netns(|| {
        let opts = UdpOptions {
            reuse_port: false,
            buffer: 1 << 20,
        };
        let rx = UdpSocket::bind("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        let data = gso_payload();
        let msg = GsoMsg {
            data: &data,
            dst: rx.local_addr().unwrap(),
            segment_size: 1000,
        };
        assert_eq!(tx.send_gso_batch(&[msg]).unwrap(), 1);
        let got = recv_all(&[&rx], 11, |s, bufs, meta| s.recv_batch(bufs, meta));
        assert_eq!(
            got.len(),
            11,
            "the kernel split the GSO message into 11 datagrams"
        );
        for (i, (d, m)) in got.iter().enumerate() {
            let want = if i < 10 { 1000 } else { 500 };
            assert_eq!((d.len(), m.stride), (want, want), "datagram {i}");
            assert!(d.iter().all(|&b| b == i as u8), "datagram {i} content");
            assert_eq!(m.src, tx.local_addr().unwrap());
        }
        let zero = GsoMsg {
            segment_size: 0,
            ..msg
        };
        let err = tx.send_gso_batch(&[zero]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    });
}

#[test]
fn gro_receive_coalesces_and_datagrams_splits_back() {
    run_in_netns(|| {
        let rx = UdpSocket::bind("127.0.0.1:0".parse().unwrap(), &UdpOptions::default()).unwrap();
        rx.enable_gro().unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0".parse().unwrap(), &UdpOptions::default()).unwrap();
        let data = gso_payload();
        let dst = rx.local_addr().unwrap();
        let msg = GsoMsg {
            data: &data,
            dst,
            segment_size: 1000,
        };
        assert_eq!(tx.send_gso_batch(&[msg]).unwrap(), 1);
        let got = recv_all(&[&rx], 1, |s, bufs, meta| s.recv_batch(bufs, meta));
        assert_eq!(got.len(), 1);
        let (buf, m) = &got[0];
        assert!(!m.truncated);
        assert_eq!((m.len, m.stride), (10_500, 1000), "one coalesced buffer");
        assert_eq!(buf.len(), 10_500);
        let parts: Vec<&[u8]> = m.datagrams(buf).collect();
        assert_eq!(parts.len(), 11);
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(p.len(), if i < 10 { 1000 } else { 500 });
            assert!(p.iter().all(|&b| b == i as u8), "segment {i}");
        }
    });
}

#[test]
fn gso_parts_are_gathered_then_cut_at_segment_boundaries() {
    run_in_netns(|| {
        let opts = UdpOptions {
            reuse_port: false,
            buffer: 1 << 20,
        };
        let rx = UdpSocket::bind("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        let dst = rx.local_addr().unwrap();
        // Three 1000-byte datagrams and a 300-byte one, handed over as five unaligned parts.
        let data: Vec<u8> = (0..3300u32).map(|i| (i / 1000) as u8).collect();
        let parts = [
            &data[..10],
            &data[10..1500],
            &data[1500..2000],
            &data[2000..3299],
            &data[3299..],
        ];
        assert!(tx.send_gso_parts(&parts, dst, Some(1000)).unwrap());
        let got = recv_all(&[&rx], 4, |s, bufs, meta| s.recv_batch(bufs, meta));
        assert_eq!(got.len(), 4);
        for (i, (d, _)) in got.iter().enumerate() {
            assert_eq!(d.len(), if i < 3 { 1000 } else { 300 }, "datagram {i}");
            assert!(d.iter().all(|&b| b == i as u8), "datagram {i} content");
        }
        // Without a segment size the parts make one datagram.
        assert!(tx.send_gso_parts(&[b"ab", b"cd"], dst, None).unwrap());
        let got = recv_all(&[&rx], 1, |s, bufs, meta| s.recv_batch(bufs, meta));
        assert_eq!(got[0].0, b"abcd");
        let err = tx.send_gso_parts(&[], dst, None).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        let err = tx.send_gso_parts(&[b"x"], dst, Some(0)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    });
}

#[test]
fn steering_by_first_word_sends_each_spi_to_the_socket_it_names() {
    run_in_netns(|| {
        let opts = UdpOptions {
            reuse_port: true,
            buffer: BUF,
        };
        let a = UdpSocket::bind("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        let dst = a.local_addr().unwrap();
        let b = UdpSocket::bind(dst, &opts).unwrap();
        b.steer_by_first_word(2).expect("SO_ATTACH_REUSEPORT_CBPF");
        assert!(a.steer_by_first_word(0).is_err(), "zero sockets is refused");

        // From many source ports, so the 4-tuple hash alone would spread them over both.
        let mut expect = BTreeMap::new();
        for i in 0..24u32 {
            let tx =
                UdpSocket::bind("127.0.0.1:0".parse().unwrap(), &UdpOptions::default()).unwrap();
            let spi = 0x1000_0100 + i;
            let mut data = spi.to_be_bytes().to_vec();
            data.extend_from_slice(&[0xab; 60]);
            tx.send_to(&data, dst).unwrap();
            expect.insert(data, (spi % 2) as usize);
            // An IKE message on 4500 (non-ESP marker) and a NAT keepalive: socket 0.
            let mut ike = vec![0u8; 4];
            ike.extend_from_slice(&i.to_be_bytes());
            tx.send_to(&ike, dst).unwrap();
            expect.insert(ike, 0);
        }
        let tx = UdpSocket::bind("127.0.0.1:0".parse().unwrap(), &UdpOptions::default()).unwrap();
        tx.send_to(&[0xff], dst).unwrap();
        expect.insert(vec![0xff], 0);

        // Each socket read on its own, so the test knows which one got what (bounded: 10 s).
        let mut got = BTreeMap::new();
        let mut storage = vec![vec![0u8; 2048]; MAX_BATCH];
        let mut meta = [RecvMeta::default(); MAX_BATCH];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while got.len() < expect.len() && std::time::Instant::now() < deadline {
            for (i, s) in [&a, &b].into_iter().enumerate() {
                let mut bufs: Vec<&mut [u8]> =
                    storage.iter_mut().map(|v| v.as_mut_slice()).collect();
                let n = match s.recv_batch(&mut bufs, &mut meta) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                    Err(e) => panic!("recv: {e}"),
                };
                for (b, m) in bufs.iter().zip(meta.iter()).take(n) {
                    got.insert(b[..m.len].to_vec(), i);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(got, expect, "datagram -> index of the socket that got it");
    });
}
