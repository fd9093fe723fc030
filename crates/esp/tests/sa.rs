//! Outbound and inbound SAs end to end: round trips for every suite, replay, tampering,
//! truncation, dummy packets, sequence exhaustion, ESN wrap-around and concurrency.

mod common;

use bh_crypto::esp::SUITE_NAMES;
use bh_crypto::{EspSuite, EspTransform};
use bh_esp::replay::{DEFAULT_WINDOW, ReplayError};
use bh_esp::{
    CounterSnapshot, InboundSa, InnerProto, OpenError, OutboundSa, PacketBuf, SaError, SealError,
};
use common::{counter_iv, ipv4, ipv6, transform};
use std::sync::Arc;

const SPI: u32 = 0xc0ff_ee01;

fn pair(suite: EspSuite, esn: bool) -> (OutboundSa, InboundSa) {
    let out = OutboundSa::new(SPI, transform(suite, 1), esn).unwrap();
    let inb = InboundSa::new(SPI, transform(suite, 1), esn, DEFAULT_WINDOW).unwrap();
    (out, inb)
}

fn inners() -> Vec<Vec<u8>> {
    vec![
        ipv4(20, 1),
        ipv4(21, 2),
        ipv4(84, 3),
        ipv4(1400, 4),
        ipv6(40, 5),
        ipv6(41, 6),
        ipv6(1280, 7),
        ipv6(1500, 8),
    ]
}

fn bufs(pkts: &[Vec<u8>]) -> Vec<PacketBuf> {
    pkts.iter()
        .map(|p| {
            let mut b = PacketBuf::new(1500);
            b.load(p).unwrap();
            b
        })
        .collect()
}

fn seal_all(sa: &OutboundSa, pkts: &[Vec<u8>]) -> Vec<PacketBuf> {
    let mut b = bufs(pkts);
    let mut res = vec![Ok(()); b.len()];
    let n = sa.seal_batch(&mut b, &mut res, &mut counter_iv());
    assert_eq!(n, pkts.len(), "{res:?}");
    b
}

fn open_all(sa: &InboundSa, b: &mut [PacketBuf]) -> Vec<Result<InnerProto, OpenError>> {
    let mut res = vec![Err(OpenError::BadLength); b.len()];
    sa.open_batch(b, &mut res);
    res
}

#[test]
fn every_suite_round_trips_ipv4_and_ipv6_with_and_without_esn() {
    for &(name, suite) in SUITE_NAMES {
        for esn in [false, true] {
            let (out, inb) = pair(suite, esn);
            let inner = inners();
            let mut sealed = seal_all(&out, &inner);
            for (i, (b, p)) in sealed.iter().zip(&inner).enumerate() {
                let esp = b.data();
                // SPI, then the sequence numbers 1, 2, 3, ... of one batch.
                assert_eq!(&esp[..4], &SPI.to_be_bytes(), "{name}");
                assert_eq!(&esp[4..8], &(i as u32 + 1).to_be_bytes(), "{name}");
                if suite.is_aead() {
                    // RFC 4106 §3.1 / RFC 7634 §2: the IV is the 64-bit sequence number.
                    assert_eq!(&esp[8..16], &(i as u64 + 1).to_be_bytes(), "{name}");
                }
                let ct = &esp[8 + suite.iv_len()..esp.len() - suite.icv_len()];
                assert_eq!(ct.len() % suite.block_align(), 0, "{name}");
                assert_ne!(&ct[..p.len().min(ct.len())], &p[..p.len().min(ct.len())]);
            }
            let res = open_all(&inb, &mut sealed);
            for ((r, b), p) in res.iter().zip(&sealed).zip(&inner) {
                let want = if p[0] >> 4 == 4 {
                    InnerProto::Ipv4
                } else {
                    InnerProto::Ipv6
                };
                assert_eq!(*r, Ok(want), "{name} esn={esn}");
                assert_eq!(b.data(), &p[..], "{name} esn={esn}");
            }
            let total: u64 = inner.iter().map(|p| p.len() as u64).sum();
            let snap = CounterSnapshot {
                packets: inner.len() as u64,
                bytes: total,
                ..Default::default()
            };
            assert_eq!(inb.counters().snapshot(), snap, "{name}");
            assert_eq!(out.counters().snapshot(), snap, "{name}");
            assert_eq!(out.next_seq(), inner.len() as u64 + 1);
            assert_eq!(inb.highest_seq(), inner.len() as u64);
        }
    }
}

#[test]
fn single_packet_seal_and_open() {
    let suite = EspSuite::from_name("aes256gcm16").unwrap();
    let (out, inb) = pair(suite, false);
    let mut b = PacketBuf::new(100);
    b.load(&ipv4(60, 9)).unwrap();
    out.seal(&mut b, &mut |_: &mut [u8]| {
        unreachable!("AEAD IVs come from the counter")
    })
    .unwrap();
    assert_eq!(inb.open(&mut b), Ok(InnerProto::Ipv4));
    assert_eq!(b.data(), &ipv4(60, 9)[..]);
}

#[test]
fn cbc_ivs_come_from_the_callers_closure() {
    let suite = EspSuite::from_name("aes128-sha256").unwrap();
    let (out, inb) = pair(suite, false);
    let mut b = PacketBuf::new(100);
    b.load(&ipv6(80, 1)).unwrap();
    out.seal(&mut b, &mut |iv: &mut [u8]| iv.fill(0xab))
        .unwrap();
    assert_eq!(&b.data()[8..24], &[0xab; 16]);
    assert_eq!(inb.open(&mut b), Ok(InnerProto::Ipv6));
}

#[test]
fn replayed_packet_is_refused_and_counted() {
    for &(name, suite) in SUITE_NAMES {
        let (out, inb) = pair(suite, false);
        let sealed = seal_all(&out, &[ipv4(100, 1)]);
        let mut first = sealed.clone();
        assert_eq!(open_all(&inb, &mut first), vec![Ok(InnerProto::Ipv4)]);
        let mut again = sealed.clone();
        assert_eq!(
            open_all(&inb, &mut again),
            vec![Err(OpenError::Replay(ReplayError::Duplicate))],
            "{name}"
        );
        // The same packet twice within one batch: the second is a replay.
        let (out, inb) = pair(suite, false);
        let one = seal_all(&out, &[ipv6(100, 1)]);
        let mut twice = vec![one[0].clone(), one[0].clone()];
        let res = open_all(&inb, &mut twice);
        assert_eq!(
            res,
            vec![
                Ok(InnerProto::Ipv6),
                Err(OpenError::Replay(ReplayError::Duplicate))
            ],
            "{name}"
        );
        let snap = inb.counters().snapshot();
        assert_eq!((snap.packets, snap.replay), (1, 1), "{name}");
    }
}

#[test]
fn old_packet_left_of_the_window_is_a_replay() {
    let suite = EspSuite::from_name("aes128gcm16").unwrap();
    let out = OutboundSa::new(SPI, transform(suite, 1), false).unwrap();
    let inb = InboundSa::new(SPI, transform(suite, 1), false, 64).unwrap();
    let pkts: Vec<_> = (0..70).map(|i| ipv4(40, i)).collect();
    let mut sealed = seal_all(&out, &pkts);
    let mut old = vec![sealed[0].clone()];
    let mut newest = vec![sealed.pop().unwrap()];
    assert_eq!(open_all(&inb, &mut newest), vec![Ok(InnerProto::Ipv4)]);
    assert_eq!(
        open_all(&inb, &mut old),
        vec![Err(OpenError::Replay(ReplayError::TooOld))]
    );
    // Inside the window, out of order: accepted.
    let mut mid = vec![sealed[10].clone()];
    assert_eq!(open_all(&inb, &mut mid), vec![Ok(InnerProto::Ipv4)]);
    assert_eq!(inb.counters().snapshot().replay, 1);
}

#[test]
fn flipped_icv_or_ciphertext_is_an_icv_drop_and_leaves_the_window_alone() {
    for &(name, suite) in SUITE_NAMES {
        let (out, inb) = pair(suite, true);
        let sealed = seal_all(&out, &[ipv4(200, 1), ipv4(200, 2)]);
        let mut bad = sealed.clone();
        let last = bad[0].len() - 1;
        bad[0].data_mut()[last] ^= 1;
        bad[1].data_mut()[20] ^= 0x40;
        assert_eq!(
            open_all(&inb, &mut bad),
            vec![Err(OpenError::Icv), Err(OpenError::Icv)],
            "{name}"
        );
        assert_eq!(inb.highest_seq(), 0, "{name}");
        let snap = inb.counters().snapshot();
        assert_eq!((snap.icv, snap.packets), (2, 0), "{name}");
        // The genuine packets still open: the forgeries did not consume their numbers.
        let mut good = sealed.clone();
        assert_eq!(
            open_all(&inb, &mut good),
            vec![Ok(InnerProto::Ipv4), Ok(InnerProto::Ipv4)],
            "{name}"
        );
    }
}

#[test]
fn truncated_and_foreign_packets_are_malformed() {
    for &(name, suite) in SUITE_NAMES {
        let (out, inb) = pair(suite, false);
        let sealed = seal_all(&out, &[ipv4(64, 1)]);
        let full = sealed[0].data().to_vec();
        let mut cases: Vec<PacketBuf> = [0, 3, 8, 8 + suite.iv_len(), full.len() - 1]
            .iter()
            .map(|&n| PacketBuf::from_slice(&full[..n]))
            .collect();
        let res = open_all(&inb, &mut cases);
        for r in &res {
            assert!(
                matches!(r, Err(OpenError::BadLength) | Err(OpenError::Icv)),
                "{name}: {r:?}"
            );
        }
        // Cut to a length that is still block-aligned: the ICV catches it; otherwise length.
        let snap = inb.counters().snapshot();
        assert_eq!(snap.malformed + snap.icv, 5, "{name}");
        assert!(snap.malformed >= 4, "{name}: {snap:?}");
        let mut foreign = vec![PacketBuf::from_slice(&full)];
        foreign[0].data_mut()[3] ^= 1;
        assert_eq!(
            open_all(&inb, &mut foreign),
            vec![Err(OpenError::WrongSpi(SPI ^ 1))]
        );
    }
}

/// Seals a raw ESP body (payload .. pad length, next header) with `t` by hand.
fn seal_raw(t: &EspTransform, seq: u32, body: &[u8]) -> PacketBuf {
    let s = t.suite();
    let mut p = SPI.to_be_bytes().to_vec();
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend(std::iter::repeat_n(7u8, s.iv_len()));
    p.extend_from_slice(body);
    p.extend(std::iter::repeat_n(0u8, s.icv_len()));
    t.seal(&mut p, None).unwrap();
    PacketBuf::from_slice(&p)
}

#[test]
fn dummy_packets_are_dropped_quietly_and_authentic_junk_is_malformed() {
    let suite = EspSuite::from_name("aes128-sha1").unwrap();
    let t = transform(suite, 1);
    let inb = InboundSa::new(SPI, transform(suite, 1), false, 64).unwrap();
    // 14 octets of junk, pad length 0, next header 59 (RFC 4303 §2.6).
    let mut dummy_body = vec![0u8; 14];
    dummy_body.extend_from_slice(&[0, 59]);
    // Bad padding (2, 1 instead of 1, 2), next header 4.
    let mut bad_pad = ipv4(28, 1);
    bad_pad.extend_from_slice(&[2, 1, 2, 4]);
    // Next header 17 (transport mode UDP): not for a tunnel SA.
    let mut udp = ipv4(30, 1);
    udp.extend_from_slice(&[0, 17]);
    // IPv6 packet announced as IPv4.
    let mut v6as4 = ipv6(46, 1);
    v6as4.extend_from_slice(&[0, 4]);
    let mut pkts = vec![
        seal_raw(&t, 1, &dummy_body),
        seal_raw(&t, 2, &bad_pad),
        seal_raw(&t, 3, &udp),
        seal_raw(&t, 4, &v6as4),
    ];
    let res = open_all(&inb, &mut pkts);
    assert_eq!(
        res,
        vec![
            Err(OpenError::Dummy),
            Err(OpenError::BadPadding),
            Err(OpenError::NextHeader(17)),
            Err(OpenError::BadInner),
        ]
    );
    let snap = inb.counters().snapshot();
    assert_eq!((snap.dummy, snap.malformed, snap.packets), (1, 3, 0));
    // They were authentic, so their numbers are now taken.
    assert_eq!(inb.highest_seq(), 4);
}

#[test]
fn sequence_numbers_run_out_instead_of_wrapping() {
    let suite = EspSuite::from_name("chacha20poly1305").unwrap();
    let out = OutboundSa::new(SPI, transform(suite, 1), false)
        .unwrap()
        .with_next_seq(u64::from(u32::MAX) - 1);
    let mut b = bufs(&[ipv4(40, 1), ipv4(40, 2), ipv4(40, 3)]);
    let mut res = vec![Ok(()); 3];
    assert_eq!(out.seal_batch(&mut b, &mut res, &mut counter_iv()), 2);
    assert_eq!(res[2], Err(SealError::SeqExhausted));
    assert_eq!(&b[1].data()[4..8], &[0xff; 4]);
    // The refused buffer still holds its inner packet.
    assert_eq!(b[2].data(), &ipv4(40, 3)[..]);
    let mut one = bufs(&[ipv4(40, 4)]);
    assert_eq!(
        out.seal(&mut one[0], &mut counter_iv()),
        Err(SealError::SeqExhausted)
    );
    assert_eq!(out.counters().snapshot().exhausted, 2);

    // With ESN the last number is 2^64 - 1, and the counter never wraps to reuse one.
    let out = OutboundSa::new(SPI, transform(suite, 1), true)
        .unwrap()
        .with_next_seq(u64::MAX);
    let mut b = bufs(&[ipv4(40, 1), ipv4(40, 2)]);
    let mut res = vec![Ok(()); 2];
    assert_eq!(out.seal_batch(&mut b, &mut res, &mut counter_iv()), 1);
    assert_eq!(res[1], Err(SealError::SeqExhausted));
    for _ in 0..3 {
        let mut b = bufs(&[ipv4(40, 1), ipv4(40, 2)]);
        assert_eq!(out.seal_batch(&mut b, &mut res, &mut counter_iv()), 0);
    }
}

#[test]
fn esn_wraps_into_the_next_block_on_both_sides() {
    for &(name, suite) in SUITE_NAMES {
        let inb = InboundSa::new(SPI, transform(suite, 2), true, 128).unwrap();
        // Move the receiver's window up to the middle of the first block.
        let early = OutboundSa::new(SPI, transform(suite, 2), true)
            .unwrap()
            .with_next_seq(0x8000_0000);
        let mut b = seal_all(&early, &[ipv4(40, 0)]);
        assert_eq!(open_all(&inb, &mut b), vec![Ok(InnerProto::Ipv4)]);

        let out = OutboundSa::new(SPI, transform(suite, 2), true)
            .unwrap()
            .with_next_seq(0xffff_fffe);
        let pkts: Vec<_> = (0..4).map(|i| ipv6(60, i)).collect();
        let mut sealed = seal_all(&out, &pkts);
        // On the wire only the low halves: ...fffe, ...ffff, 0, 1.
        let lows: Vec<_> = sealed.iter().map(|b| b.data()[4..8].to_vec()).collect();
        assert_eq!(lows[2], [0, 0, 0, 0]);
        assert_eq!(lows[3], [0, 0, 0, 1]);
        // Out of order across the wrap: 2^32 + 1 first, then the rest.
        sealed.swap(0, 3);
        let res = open_all(&inb, &mut sealed);
        assert!(
            res.iter().all(|r| *r == Ok(InnerProto::Ipv6)),
            "{name}: {res:?}"
        );
        assert_eq!(inb.highest_seq(), (1 << 32) + 1, "{name}");
        // The high half is authenticated: a receiver that infers another one refuses them.
        let other = InboundSa::new(SPI, transform(suite, 2), true, 128).unwrap();
        let mut again = seal_all(
            &OutboundSa::new(SPI, transform(suite, 2), true)
                .unwrap()
                .with_next_seq((1 << 32) + 5),
            &pkts[..1],
        );
        assert_eq!(
            open_all(&other, &mut again),
            vec![Err(OpenError::Icv)],
            "{name}"
        );
    }
}

#[test]
fn concurrent_batches_deliver_each_packet_once() {
    let suite = EspSuite::from_name("aes128gcm16").unwrap();
    let (out, inb) = pair(suite, false);
    let pkts: Vec<_> = (0..256).map(|i| ipv4(60 + (i % 50), i as u8)).collect();
    let sealed = seal_all(&out, &pkts);
    let inb = Arc::new(inb);
    let threads: Vec<_> = (0..4)
        .map(|k| {
            let inb = Arc::clone(&inb);
            let mut mine = sealed.clone();
            // Each thread sees every packet, in its own order.
            mine.rotate_left(k * 37);
            std::thread::spawn(move || {
                let res = open_all(&inb, &mut mine);
                res.iter().filter(|r| r.is_ok()).count()
            })
        })
        .collect();
    let delivered: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(delivered, 256);
    let snap = inb.counters().snapshot();
    assert_eq!((snap.packets, snap.replay), (256, 3 * 256));
}

#[test]
fn concurrent_sealers_never_share_a_sequence_number() {
    let suite = EspSuite::from_name("aes256gcm16").unwrap();
    let out = Arc::new(OutboundSa::new(SPI, transform(suite, 1), false).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let out = Arc::clone(&out);
            std::thread::spawn(move || {
                let mut seqs = Vec::new();
                for _ in 0..20 {
                    let pkts: Vec<_> = (0..16).map(|i| ipv4(40, i)).collect();
                    for b in seal_all(&out, &pkts) {
                        seqs.push(u32::from_be_bytes(b.data()[4..8].try_into().unwrap()));
                    }
                }
                seqs
            })
        })
        .collect();
    let mut all: Vec<u32> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (1..=4 * 20 * 16).collect::<Vec<u32>>());
}

#[test]
fn reserved_spis_and_window_sizes_are_refused() {
    let suite = EspSuite::from_name("aes128gcm16").unwrap();
    assert_eq!(
        OutboundSa::new(255, transform(suite, 1), false).err(),
        Some(SaError::ReservedSpi(255))
    );
    assert!(matches!(
        InboundSa::new(SPI, transform(suite, 1), false, 32),
        Err(SaError::Window(_))
    ));
    assert!(InboundSa::new(SPI, transform(suite, 1), false, 4096).is_ok());
}

#[test]
fn no_room_and_non_ip_are_counted_on_the_outbound_side() {
    let suite = EspSuite::from_name("aes128-sha512").unwrap();
    let out = OutboundSa::new(SPI, transform(suite, 1), false).unwrap();
    let mut b = vec![PacketBuf::from_slice(&[0x00; 30]), PacketBuf::new(10)];
    // A full buffer: no tailroom for padding and a 32-octet ICV.
    let full = ipv4(10 + bh_esp::TAILROOM, 0);
    b[1].load(&full).unwrap();
    let mut res = vec![Ok(()); 2];
    assert_eq!(out.seal_batch(&mut b, &mut res, &mut counter_iv()), 0);
    assert_eq!(res, vec![Err(SealError::NotIp), Err(SealError::NoRoom)]);
    assert_eq!(out.counters().snapshot().malformed, 2);
}

#[test]
fn a_full_size_packet_seals_in_its_buffer_and_its_datagram_fits_a_receive_buffer() {
    for &(name, suite) in SUITE_NAMES {
        for v6 in [false, true] {
            let (out, inb) = pair(suite, false);
            let p = if v6 { ipv6(1500, 3) } else { ipv4(1500, 3) };
            let mut tx = PacketBuf::new(1500);
            tx.load(&p).unwrap();
            out.seal(&mut tx, &mut counter_iv()).unwrap();
            let mut rx = PacketBuf::new(1500);
            let room = rx.reset_for_read();
            assert!(
                room.len() >= tx.len(),
                "{name}: {} < {}",
                room.len(),
                tx.len()
            );
            room[..tx.len()].copy_from_slice(tx.data());
            rx.set_len(tx.len()).unwrap();
            assert!(inb.open(&mut rx).is_ok(), "{name}");
            assert_eq!(rx.data(), &p[..], "{name}");
        }
    }
}
