//! Two endpoints on a simulated clock: handshakes, loss, DPD, rekeying, INVALID_KE, errors.

mod sim;

use std::time::Duration;

use bh_crypto::{DhGroup, EspEncr, EspInteg, Prf};
use bh_ike::{DownReason, Event, TunnelId};
use sim::*;

const GCM256: EspEncr = EspEncr::AesGcm16 { key_bits: 256 };
const CBC256: EspEncr = EspEncr::AesCbc { key_bits: 256 };

fn suites() -> Vec<(
    &'static str,
    Vec<bh_ike::IkeProposal>,
    Vec<bh_ike::EspProposal>,
)> {
    vec![
        (
            "aes256gcm16-prfsha256-ecp256",
            vec![ike(GCM256, None, Prf::HmacSha256, &[DhGroup::Ecp256])],
            vec![esp(GCM256, None)],
        ),
        (
            "azure default: aes256-sha1-modp1024",
            vec![ike(
                CBC256,
                Some(EspInteg::HmacSha1_96),
                Prf::HmacSha1,
                &[DhGroup::Modp1024],
            )],
            vec![esp(CBC256, Some(EspInteg::HmacSha1_96))],
        ),
        (
            "chacha20poly1305-prfsha512-curve25519",
            vec![ike(
                EspEncr::ChaCha20Poly1305,
                None,
                Prf::HmacSha512,
                &[DhGroup::Curve25519],
            )],
            vec![esp(EspEncr::ChaCha20Poly1305, None)],
        ),
        (
            "aes128-sha256-modp2048 / esp aes128-sha512",
            vec![ike(
                EspEncr::AesCbc { key_bits: 128 },
                Some(EspInteg::HmacSha256_128),
                Prf::HmacSha256,
                &[DhGroup::Modp2048],
            )],
            vec![esp(
                EspEncr::AesCbc { key_bits: 128 },
                Some(EspInteg::HmacSha512_256),
            )],
        ),
    ]
}

fn established(nat: bool, seed: u8) -> Sim {
    let (ip, ep) = (suites()[0].1.clone(), suites()[0].2.clone());
    let (a, b) = pair(nat, ip, ep);
    let mut s = Sim::new(seed, nat, a, b);
    s.start();
    s.run_for(Duration::from_secs(1));
    assert_eq!(ike_ups(&s.events_a), 1);
    assert_eq!(ike_ups(&s.events_b), 1);
    s
}

#[test]
fn inbound_spis_fall_in_the_lane_of_their_tunnel_through_rekeys() {
    // The dataplane steers ESP to worker `SPI mod workers`; with spi_lanes = 4, every inbound
    // SPI of tunnel t must be t mod 4, on both sides and for every rekeyed Child SA.
    let (ip, ep) = (suites()[0].1.clone(), suites()[0].2.clone());
    let (mut a, b) = pair(true, ip, ep);
    a.lifetimes.child_rekey = Duration::from_secs(60);
    let mut s = Sim::with_lanes(7, true, a, b, 4);
    assert_eq!((s.ta, s.tb), (TunnelId(1), TunnelId(0)));
    s.start();
    s.run_for(Duration::from_secs(400));
    let (ca, cb) = (child_ups(&s.events_a), child_ups(&s.events_b));
    assert!(
        ca.len() >= 4,
        "A made {} Child SAs, want the first and 3+ rekeys",
        ca.len()
    );
    assert_eq!(ca.len(), cb.len());
    for c in &ca {
        assert_eq!(c.inbound % 4, 1, "A (tunnel 1): {:#010x}", c.inbound);
        assert!(c.inbound > 255);
    }
    for c in &cb {
        assert_eq!(c.inbound % 4, 0, "B (tunnel 0): {:#010x}", c.inbound);
        assert!(c.inbound > 255);
    }
    // Still random in the other bits: no two alike.
    let mut all: Vec<u32> = ca.iter().chain(&cb).map(|c| c.inbound).collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), ca.len() + cb.len());
}

#[test]
fn handshake_for_each_algorithm_set_with_and_without_nat() {
    for (i, (name, ip, ep)) in suites().into_iter().enumerate() {
        for nat in [false, true] {
            let (a, b) = pair(nat, ip.clone(), ep.clone());
            let mut s = Sim::new(u8::try_from(i).unwrap(), nat, a, b);
            s.start();
            s.run_for(Duration::from_millis(100));
            assert_eq!(
                ike_ups(&s.events_a),
                1,
                "{name} nat={nat}: {:?}",
                s.events_a
            );
            assert_eq!(
                ike_ups(&s.events_b),
                1,
                "{name} nat={nat}: {:?}",
                s.events_b
            );
            let ca = child_ups(&s.events_a);
            let cb = child_ups(&s.events_b);
            assert_eq!((ca.len(), cb.len()), (1, 1), "{name}");
            assert_children_match(&ca[0], &cb[0]);
            assert_eq!(ca[0].udp_encap, nat, "{name}");
            assert_eq!(cb[0].udp_encap, nat, "{name}");
            // Exactly four datagrams: no retransmission on a clean network.
            assert_eq!(s.wire.len(), 4, "{name}");
            // With NAT, IKE_AUTH floats to port 4500 on both ends.
            let auth = &s.wire[2];
            let want = if nat { 4500 } else { 500 };
            assert_eq!((auth.src.port(), auth.dst.port()), (want, want), "{name}");
            for e in s.events_a.iter().chain(&s.events_b) {
                if let Event::IkeSaUp { nat: n, .. } = e {
                    assert_eq!(*n, nat);
                }
            }
        }
    }
}

#[test]
fn identity_is_the_configured_public_address_not_the_socket() {
    let s = established(true, 7);
    // A's socket is the private address; B checked IDi = A_PUBLIC and accepted it.
    assert_eq!(s.wire[0].src.ip(), std::net::IpAddr::V4(A_PUBLIC));
    assert!(s.a.tunnel(s.ta).unwrap().local_addr.ip() == std::net::IpAddr::V4(A_PRIVATE));
}

#[test]
fn force_udp_encap_without_nat() {
    let (mut a, b) = pair(false, suites()[0].1.clone(), suites()[0].2.clone());
    a.force_udp_encap = true;
    let mut s = Sim::new(3, false, a, b);
    s.start();
    s.run_for(Duration::from_millis(100));
    let ca = child_ups(&s.events_a);
    let cb = child_ups(&s.events_b);
    assert!(ca[0].udp_encap && cb[0].udp_encap);
}

#[test]
fn loss_is_recovered_by_retransmission() {
    let (a, b) = pair(true, suites()[1].1.clone(), suites()[1].2.clone());
    let mut s = Sim::new(9, true, a, b);
    // Drop the first two IKE_SA_INIT requests and the first IKE_AUTH response.
    let mut a_sent = 0;
    let mut b_sent = 0;
    s.filter = Box::new(move |p, _| {
        if p.from_a {
            a_sent += 1;
            a_sent > 2
        } else {
            b_sent += 1;
            b_sent != 2
        }
    });
    s.start();
    // Retransmissions at 1 s and 3 s (doubling); IKE_AUTH resent at 4 s. Stop before DPD.
    s.run_for(Duration::from_secs(8));
    let ca = child_ups(&s.events_a);
    let cb = child_ups(&s.events_b);
    assert_eq!(
        (ca.len(), cb.len()),
        (1, 1),
        "{:?} {:?}",
        s.events_a,
        s.events_b
    );
    assert_children_match(&ca[0], &cb[0]);
    // 3 IKE_SA_INIT + 2 IKE_AUTH from A; 1 IKE_SA_INIT + 2 IKE_AUTH (one cached resend) from B.
    let from_a = s.wire.iter().filter(|p| p.from_a).count();
    let from_b = s.wire.iter().filter(|p| !p.from_a).count();
    assert_eq!((from_a, from_b), (5, 3));
    // The duplicate IKE_AUTH request got the identical cached response.
    let resps: Vec<&Vec<u8>> = s
        .wire
        .iter()
        .filter(|p| !p.from_a)
        .map(|p| &p.data)
        .skip(1)
        .collect();
    assert_eq!(resps[0], resps[1]);
    assert!(ike_downs(&s.events_a).is_empty());
}

#[test]
fn gives_up_after_the_retransmission_limit_and_restarts() {
    let (a, b) = pair(false, suites()[0].1.clone(), suites()[0].2.clone());
    let mut s = Sim::new(11, false, a, b);
    s.filter = Box::new(|p, _| !p.from_a);
    s.start();
    // 1 + 2 + 4 + 8 + 16 = 31 s of back-off for 4 retries.
    s.run_for(Duration::from_secs(30));
    assert!(ike_downs(&s.events_a).is_empty());
    let sent = s.wire.iter().filter(|p| p.from_a).count();
    assert_eq!(sent, 5, "one send and four retransmissions");
    s.run_for(Duration::from_secs(2));
    assert_eq!(ike_downs(&s.events_a), vec![DownReason::Timeout]);
    // restart_delay later a fresh IKE_SA_INIT goes out.
    s.run_for(Duration::from_millis(4500));
    assert_eq!(s.wire.iter().filter(|p| p.from_a).count(), 6);
}

#[test]
fn dpd_detects_a_dead_peer_and_restarts() {
    let mut s = established(false, 21);
    // Liveness checks are answered while the peer lives.
    s.run_for(Duration::from_secs(35));
    assert!(ike_downs(&s.events_a).is_empty());
    let informational = s.wire.iter().skip(4).filter(|p| p.from_a).count();
    assert!(
        informational >= 3,
        "DPD every 10 s of silence, got {informational}"
    );
    // The peer dies.
    s.filter = Box::new(|_, _| false);
    s.run_for(Duration::from_secs(60));
    let downs = ike_downs(&s.events_a);
    assert_eq!(
        downs.first(),
        Some(&DownReason::Timeout),
        "{:?}",
        s.events_a
    );
    let t = s
        .events_a
        .iter()
        .position(|e| matches!(e, Event::IkeSaDown { .. }))
        .unwrap();
    // Its Child SA went down with it.
    assert!(matches!(
        s.events_a[t - 1],
        Event::ChildSaDown {
            reason: DownReason::Timeout,
            ..
        }
    ));
    // A restarts: new IKE_SA_INIT requests appear after the failure.
    let last_init = s.wire.iter().rev().find(|p| p.from_a).unwrap();
    assert_eq!(last_init.data[18], 34, "IKE_SA_INIT");
}

#[test]
fn dpd_timeout_is_bounded_by_the_configured_time() {
    let mut s = established(false, 22);
    s.filter = Box::new(|_, _| false);
    let died = s.now;
    let mut down_at = None;
    for _ in 0..100 {
        s.run_for(Duration::from_secs(1));
        if !ike_downs(&s.events_a).is_empty() {
            down_at = Some(s.now);
            break;
        }
    }
    let down_at = down_at.expect("DPD noticed the dead peer");
    let took = down_at.saturating_duration_since(died);
    assert!(took >= Duration::from_secs(10), "{took:?}");
    assert!(took <= Duration::from_secs(10 + 30 + 1), "{took:?}");
}

#[test]
fn child_rekey_make_before_break() {
    for pfs in [None, Some(DhGroup::Modp2048)] {
        let (mut a, mut b) = pair(true, suites()[0].1.clone(), suites()[0].2.clone());
        a.lifetimes.child_rekey = Duration::from_secs(60);
        a.pfs_group = pfs;
        b.pfs_group = pfs;
        let mut s = Sim::new(31, true, a, b);
        s.start();
        s.run_for(Duration::from_secs(61));
        let ca = child_ups(&s.events_a);
        let cb = child_ups(&s.events_b);
        assert_eq!(
            (ca.len(), cb.len()),
            (2, 2),
            "pfs {pfs:?}: {:?}",
            s.events_a
        );
        assert_eq!(ca[1].replaces, Some(ca[0].inbound));
        assert_eq!(cb[1].replaces, Some(cb[0].inbound));
        assert_children_match(&ca[1], &cb[1]);
        assert_ne!(ca[1].keys_in, ca[0].keys_in);
        // The old pair went down on both sides after the new one came up.
        assert_eq!(
            child_downs(&s.events_a),
            vec![(ca[0].inbound, DownReason::Rekeyed)]
        );
        assert_eq!(
            child_downs(&s.events_b),
            vec![(cb[0].inbound, DownReason::DeletedByPeer)]
        );
        let up_pos = s
            .events_a
            .iter()
            .position(|e| {
                matches!(
                    e,
                    Event::ChildSaUp {
                        replaces: Some(_),
                        ..
                    }
                )
            })
            .unwrap();
        let down_pos = s
            .events_a
            .iter()
            .position(|e| matches!(e, Event::ChildSaDown { .. }))
            .unwrap();
        assert!(up_pos < down_pos);
        // The IKE SA survives.
        assert!(ike_downs(&s.events_a).is_empty());
    }
}

#[test]
fn responder_with_pfs_refuses_rekey_without_ke() {
    let (mut a, mut b) = pair(false, suites()[0].1.clone(), suites()[0].2.clone());
    a.lifetimes.child_rekey = Duration::from_secs(60);
    b.pfs_group = Some(DhGroup::Modp2048);
    let mut s = Sim::new(32, false, a, b);
    s.start();
    s.run_for(Duration::from_secs(61));
    assert!(s.events_b.iter().any(|e| matches!(e, Event::NoProposalChosen { exchange, .. } if *exchange == bh_ike::wire::ExchangeType::CREATE_CHILD_SA)));
    assert_eq!(child_ups(&s.events_a).len(), 1);
    // The old Child SA stays up; nothing pretends the rekey worked.
    assert!(child_downs(&s.events_a).is_empty());
}

/// `pfs = "none"` as responder: a rekey whose KE uses a group outside this tunnel's IKE
/// proposals is refused, and the old Child SA stays.
#[test]
fn responder_without_pfs_refuses_a_ke_of_an_unconfigured_group() {
    let (mut a, b) = pair(false, suites()[0].1.clone(), suites()[0].2.clone());
    a.lifetimes.child_rekey = Duration::from_secs(60);
    // B's IKE proposals offer only ECP-256; A's rekey carries a MODP-2048 KE.
    a.pfs_group = Some(DhGroup::Modp2048);
    assert_eq!(b.pfs_group, None);
    let mut s = Sim::new(33, false, a, b);
    s.start();
    s.run_for(Duration::from_secs(61));
    assert!(s.events_b.iter().any(|e| matches!(e, Event::NoProposalChosen { exchange, .. } if *exchange == bh_ike::wire::ExchangeType::CREATE_CHILD_SA)));
    assert_eq!(child_ups(&s.events_a).len(), 1);
    assert_eq!(child_ups(&s.events_b).len(), 1);
    assert!(child_downs(&s.events_a).is_empty());
    assert!(child_downs(&s.events_b).is_empty());
}

/// `pfs = "none"` as responder: a rekey without KE (Azure) and one whose KE group is among
/// the tunnel's IKE proposal groups (AWS/GCP style) are both accepted.
#[test]
fn responder_without_pfs_accepts_no_ke_and_a_ke_of_an_ike_group() {
    for initiator_pfs in [None, Some(DhGroup::Ecp256)] {
        let (mut a, b) = pair(false, suites()[0].1.clone(), suites()[0].2.clone());
        a.lifetimes.child_rekey = Duration::from_secs(60);
        a.pfs_group = initiator_pfs;
        let mut s = Sim::new(34, false, a, b);
        s.start();
        s.run_for(Duration::from_secs(61));
        assert!(
            !s.events_b
                .iter()
                .any(|e| matches!(e, Event::NoProposalChosen { .. })),
            "{initiator_pfs:?}"
        );
        let ups_a = child_ups(&s.events_a);
        let ups_b = child_ups(&s.events_b);
        assert_eq!((ups_a.len(), ups_b.len()), (2, 2), "{initiator_pfs:?}");
        assert_eq!(ups_a[1].replaces, Some(ups_a[0].inbound));
        assert_children_match(&ups_a[1], &ups_b[1]);
    }
}

#[test]
fn ike_rekey_moves_children_and_keeps_working() {
    let (mut a, b) = pair(true, suites()[1].1.clone(), suites()[1].2.clone());
    a.lifetimes.ike_rekey = Duration::from_secs(100);
    a.lifetimes.jitter_percent = 0;
    let mut s = Sim::new(41, true, a, b);
    s.start();
    s.run_for(Duration::from_secs(101));
    assert_eq!(ike_ups(&s.events_a), 2, "{:?}", s.events_a);
    assert_eq!(ike_ups(&s.events_b), 2, "{:?}", s.events_b);
    assert_eq!(ike_downs(&s.events_a), vec![DownReason::Rekeyed]);
    assert_eq!(ike_downs(&s.events_b), vec![DownReason::Rekeyed]);
    // No Child SA went down: they moved to the new IKE SA.
    assert!(child_downs(&s.events_a).is_empty() && child_downs(&s.events_b).is_empty());
    assert_eq!(s.a.snapshot().len(), 1);
    assert_eq!(s.a.snapshot()[0].children.len(), 1);
    // The new IKE SA answers DPD and can rekey the Child SA.
    s.run_for(Duration::from_secs(60));
    assert_eq!(ike_downs(&s.events_a).len(), 1);
}

#[test]
fn invalid_ke_is_retried_with_the_requested_group() {
    let ip_a = vec![ike(
        GCM256,
        None,
        Prf::HmacSha256,
        &[DhGroup::Ecp256, DhGroup::Modp2048],
    )];
    let ip_b = vec![ike(GCM256, None, Prf::HmacSha256, &[DhGroup::Modp2048])];
    let (a, mut b) = pair(false, ip_a, suites()[0].2.clone());
    b.ike_proposals = ip_b;
    let mut s = Sim::new(51, false, a, b);
    s.start();
    s.run_for(Duration::from_secs(1));
    assert_eq!(ike_ups(&s.events_a), 1, "{:?}", s.events_a);
    let suite = s.events_a.iter().find_map(|e| match e {
        Event::IkeSaUp { suite, .. } => Some(*suite),
        _ => None,
    });
    assert_eq!(suite.unwrap().dh, DhGroup::Modp2048);
    // INIT, INVALID_KE, INIT, INIT response, AUTH, AUTH response.
    assert_eq!(s.wire.len(), 6);
}

#[test]
fn no_proposal_chosen_reports_both_sides() {
    let (a, mut b) = pair(false, suites()[0].1.clone(), suites()[0].2.clone());
    b.ike_proposals = suites()[1].1.clone();
    let mut s = Sim::new(61, false, a, b);
    s.start();
    s.run_for(Duration::from_secs(1));
    let theirs = s.events_b.iter().find_map(|e| match e {
        Event::NoProposalChosen { ours, theirs, .. } => Some((ours.clone(), theirs.clone())),
        _ => None,
    });
    let (ours, theirs) = theirs.expect("responder reports");
    assert!(ours.contains("aes256") && ours.contains("dh2"), "{ours}");
    assert!(
        theirs.contains("aes256gcm16") && theirs.contains("dh19"),
        "{theirs}"
    );
    assert!(
        s.events_a
            .iter()
            .any(|e| matches!(e, Event::NoProposalChosen { .. }))
    );
    assert_eq!(ike_downs(&s.events_a), vec![DownReason::NoProposalChosen]);
    assert_eq!(ike_ups(&s.events_b), 0);
}

#[test]
fn wrong_psk_fails_authentication_on_both_sides() {
    let (a, mut b) = pair(false, suites()[0].1.clone(), suites()[0].2.clone());
    b.psk = bh_crypto::Zeroizing::new(b"another key".to_vec());
    let mut s = Sim::new(71, false, a, b);
    s.start();
    s.run_for(Duration::from_secs(1));
    assert_eq!(ike_ups(&s.events_a) + ike_ups(&s.events_b), 0);
    assert_eq!(
        ike_downs(&s.events_b),
        vec![DownReason::AuthenticationFailed]
    );
    assert_eq!(
        ike_downs(&s.events_a),
        vec![DownReason::AuthenticationFailed]
    );
    assert!(child_ups(&s.events_a).is_empty() && child_ups(&s.events_b).is_empty());
}

#[test]
fn wrong_peer_identity_is_refused() {
    let (mut a, b) = pair(false, suites()[0].1.clone(), suites()[0].2.clone());
    a.local_id = bh_ike::IkeId::Fqdn("impostor.example".into());
    let mut s = Sim::new(72, false, a, b);
    s.start();
    s.run_for(Duration::from_secs(1));
    assert_eq!(
        ike_downs(&s.events_b),
        vec![DownReason::AuthenticationFailed]
    );
}

#[test]
fn duplicate_request_gets_the_cached_response_and_changes_nothing() {
    let mut s = established(false, 81);
    let auth_req = s.wire[2].data.clone();
    let (src, dst) = (s.wire[2].src, s.wire[2].dst);
    let before = s.events_b.len();
    s.b.handle_datagram(s.now, src, dst, &auth_req);
    let resend = s.b.poll_transmit().expect("cached response resent");
    assert_eq!(resend.data, s.wire[3].data);
    assert!(s.b.poll_event().is_none());
    assert_eq!(s.events_b.len(), before);
}

#[test]
fn close_deletes_on_both_sides() {
    let mut s = established(false, 91);
    s.a.close(s.now, s.ta);
    s.run_for(Duration::from_secs(1));
    assert_eq!(ike_downs(&s.events_a), vec![DownReason::DeletedLocally]);
    assert_eq!(ike_downs(&s.events_b), vec![DownReason::DeletedByPeer]);
    assert_eq!(child_downs(&s.events_b).len(), 1);
    assert!(s.a.snapshot().is_empty());
}

#[test]
fn simultaneous_initiation_ends_with_one_ike_sa_and_one_child_pair() {
    for seed in 0..8u8 {
        let (a, mut b) = pair(false, suites()[0].1.clone(), suites()[0].2.clone());
        b.initiator = true;
        let mut s = Sim::new(seed, false, a, b);
        s.a.initiate(s.now, s.ta);
        s.b.initiate(s.now, s.tb);
        s.run_for(Duration::from_secs(30));
        let sa = s.a.snapshot();
        let sb = s.b.snapshot();
        assert_eq!((sa.len(), sb.len()), (1, 1), "seed {seed}: {sa:?} {sb:?}");
        assert_eq!(sa[0].state, "established");
        assert_eq!(sa[0].children.len(), 1);
        assert_eq!(sb[0].children.len(), 1);
        let (ai, ao) = sa[0].children[0];
        let (bi, bo) = sb[0].children[0];
        assert_eq!((ai, ao), (bo, bi), "seed {seed}");
        // One pair was announced twice and withdrawn once on each side, as a duplicate.
        assert_eq!(child_ups(&s.events_a).len(), 2);
        assert_eq!(child_downs(&s.events_a).len(), 1);
        assert_eq!(child_downs(&s.events_b).len(), 1);
        // The surviving pair's keys match.
        let up_a = child_ups(&s.events_a)
            .into_iter()
            .find(|c| c.inbound == ai)
            .unwrap();
        let up_b = child_ups(&s.events_b)
            .into_iter()
            .find(|c| c.inbound == bi)
            .unwrap();
        assert_children_match(&up_a, &up_b);
        assert!(!s.events_a.iter().any(|e| matches!(
            e,
            Event::IkeSaDown {
                reason: DownReason::Timeout,
                ..
            }
        )));
    }
}

/// The interleaving seen against strongSwan: A's first IKE_SA_INIT is lost, B's initiation
/// completes (A as responder), then A's retransmission would start a second IKE SA whose
/// IKE_AUTH carried INITIAL_CONTACT and made B drop the SA in use. A must abandon its
/// half-open initiation, and both ends keep exactly one IKE SA and one Child SA pair.
#[test]
fn simultaneous_initiation_with_the_first_message_lost_ends_with_one_sa() {
    for seed in 0..8u8 {
        let (a, mut b) = pair(false, suites()[0].1.clone(), suites()[0].2.clone());
        b.initiator = true;
        let mut s = Sim::new(seed, false, a, b);
        let mut dropped = false;
        s.filter = Box::new(move |p, _| {
            if p.from_a && !dropped {
                dropped = true;
                return false;
            }
            true
        });
        s.a.initiate(s.now, s.ta);
        s.b.initiate(s.now, s.tb);
        s.run_for(Duration::from_secs(60));
        let sa = s.a.snapshot();
        let sb = s.b.snapshot();
        assert_eq!((sa.len(), sb.len()), (1, 1), "seed {seed}: {sa:?} {sb:?}");
        assert_eq!(sa[0].state, "established", "seed {seed}");
        assert_eq!(sb[0].state, "established", "seed {seed}");
        assert_eq!((sa[0].children.len(), sb[0].children.len()), (1, 1));
        let (ai, ao) = sa[0].children[0];
        let (bi, bo) = sb[0].children[0];
        assert_eq!((ai, ao), (bo, bi), "seed {seed}");
        // Nothing was torn down by INITIAL_CONTACT, a timeout or DPD.
        for (who, ev) in [("a", &s.events_a), ("b", &s.events_b)] {
            let bad: Vec<_> = ike_downs(ev)
                .into_iter()
                .filter(|r| {
                    matches!(
                        r,
                        DownReason::InitialContact
                            | DownReason::Timeout
                            | DownReason::DeletedByPeer
                    )
                })
                .collect();
            assert!(bad.is_empty(), "seed {seed}: {who} lost an SA: {bad:?}");
        }
        // One IKE SA was ever established on each side: the half-open initiation went.
        assert_eq!(ike_ups(&s.events_a), 1, "seed {seed}");
        assert_eq!(ike_ups(&s.events_b), 1, "seed {seed}");
        let up_a = child_ups(&s.events_a)
            .into_iter()
            .find(|c| c.inbound == ai)
            .unwrap();
        let up_b = child_ups(&s.events_b)
            .into_iter()
            .find(|c| c.inbound == bi)
            .unwrap();
        assert_children_match(&up_a, &up_b);
    }
}

#[test]
fn child_rekey_collision_leaves_one_pair() {
    for seed in 0..6u8 {
        let (mut a, mut b) = pair(false, suites()[1].1.clone(), suites()[1].2.clone());
        for c in [&mut a, &mut b] {
            c.lifetimes.child_rekey = Duration::from_secs(60);
            c.lifetimes.jitter_percent = 0;
            c.dpd.interval = Duration::from_secs(1000);
        }
        let mut s = Sim::new(seed, false, a, b);
        s.start();
        s.run_for(Duration::from_secs(65));
        let sa = s.a.snapshot();
        let sb = s.b.snapshot();
        assert_eq!((sa.len(), sb.len()), (1, 1));
        assert_eq!(
            sa[0].children.len(),
            1,
            "seed {seed}: {:?} / {:?}",
            s.events_a,
            s.events_b
        );
        assert_eq!(sb[0].children.len(), 1, "seed {seed}");
        let (ai, ao) = sa[0].children[0];
        assert_eq!(sb[0].children[0], (ao, ai), "seed {seed}");
        // Both rekeyed at once: the original pair is gone on both sides.
        let first = child_ups(&s.events_a)[0].inbound;
        assert_ne!(ai, first);
        let up_a = child_ups(&s.events_a)
            .into_iter()
            .find(|c| c.inbound == ai)
            .unwrap();
        let up_b = child_ups(&s.events_b)
            .into_iter()
            .find(|c| c.inbound == ao)
            .unwrap();
        assert_children_match(&up_a, &up_b);
        // Every pair announced up and no longer present was announced down.
        for (ev, snap) in [(&s.events_a, &sa[0]), (&s.events_b, &sb[0])] {
            let ups = child_ups(ev).len();
            let downs = child_downs(ev).len();
            assert_eq!(ups - downs, snap.children.len(), "seed {seed}");
        }
    }
}

#[test]
fn ike_rekey_collision_leaves_one_ike_sa_with_the_children() {
    for seed in 0..8u8 {
        let (mut a, mut b) = pair(false, suites()[0].1.clone(), suites()[0].2.clone());
        for c in [&mut a, &mut b] {
            c.lifetimes.ike_rekey = Duration::from_secs(100);
            c.lifetimes.jitter_percent = 0;
            c.dpd.interval = Duration::from_secs(30);
        }
        let mut s = Sim::new(seed, false, a, b);
        s.start();
        s.run_for(Duration::from_secs(105));
        let sa = s.a.snapshot();
        let sb = s.b.snapshot();
        assert_eq!((sa.len(), sb.len()), (1, 1), "seed {seed}: {sa:?} {sb:?}");
        assert_eq!(sa[0].children.len(), 1, "seed {seed}: {sa:?} {sb:?}");
        assert_eq!(sb[0].children.len(), 1, "seed {seed}: {sa:?} {sb:?}");
        // The same IKE SA on both sides.
        let up_a: Vec<[u8; 8]> = s
            .events_a
            .iter()
            .filter_map(|e| match e {
                Event::IkeSaUp {
                    local_spi,
                    remote_spi,
                    ..
                } if *local_spi == sa[0].local_spi => Some(*remote_spi),
                _ => None,
            })
            .collect();
        assert_eq!(up_a, vec![sb[0].local_spi], "seed {seed}");
        // The collision happened: the winning side announced its own new SA and the peer's
        // (later deleted), the other side only the winner: 2 + 3 IkeSaUp in all.
        assert_eq!(
            ike_ups(&s.events_a) + ike_ups(&s.events_b),
            5,
            "seed {seed}"
        );
        // No Child SA went down, and the original pair is the one kept.
        assert!(
            child_downs(&s.events_a).is_empty() && child_downs(&s.events_b).is_empty(),
            "seed {seed}"
        );
        // It keeps working: DPD for a while, no timeouts.
        s.run_for(Duration::from_secs(90));
        assert!(
            !ike_downs(&s.events_a).contains(&DownReason::Timeout),
            "seed {seed}"
        );
        assert_eq!(s.a.snapshot().len(), 1);
    }
}

#[test]
fn ike_rekey_collision_when_the_peers_request_arrives_late() {
    for seed in 0..8u8 {
        let (mut a, mut b) = pair(false, suites()[2].1.clone(), suites()[2].2.clone());
        for c in [&mut a, &mut b] {
            c.lifetimes.ike_rekey = Duration::from_secs(100);
            c.lifetimes.jitter_percent = 0;
            c.dpd.interval = Duration::from_secs(30);
        }
        let mut s = Sim::new(seed, false, a, b);
        // B's first CREATE_CHILD_SA request is lost: its retransmission reaches A after A's
        // own rekey finished.
        let mut dropped = false;
        s.filter = Box::new(move |p, _| {
            let req = p.data.get(18) == Some(&36) && p.data.get(19).is_some_and(|f| f & 0x20 == 0);
            if !p.from_a && req && !dropped {
                dropped = true;
                return false;
            }
            true
        });
        s.start();
        s.run_for(Duration::from_secs(110));
        let sa = s.a.snapshot();
        let sb = s.b.snapshot();
        assert_eq!((sa.len(), sb.len()), (1, 1), "seed {seed}: {sa:?} {sb:?}");
        assert_eq!(
            (sa[0].children.len(), sb[0].children.len()),
            (1, 1),
            "seed {seed}: {sa:?} {sb:?}"
        );
        let remote_of_a: Vec<[u8; 8]> = s
            .events_a
            .iter()
            .filter_map(|e| match e {
                Event::IkeSaUp {
                    local_spi,
                    remote_spi,
                    ..
                } if *local_spi == sa[0].local_spi => Some(*remote_spi),
                _ => None,
            })
            .collect();
        assert_eq!(remote_of_a, vec![sb[0].local_spi], "seed {seed}");
        assert!(
            child_downs(&s.events_a).is_empty() && child_downs(&s.events_b).is_empty(),
            "seed {seed}"
        );
        s.run_for(Duration::from_secs(90));
        assert!(
            !ike_downs(&s.events_a).contains(&DownReason::Timeout),
            "seed {seed}"
        );
        assert!(
            !ike_downs(&s.events_b).contains(&DownReason::Timeout),
            "seed {seed}"
        );
    }
}

#[test]
fn cookies_when_half_open_sas_pile_up() {
    let (a, b) = pair(false, suites()[0].1.clone(), suites()[0].2.clone());
    let mut s = Sim::new(101, false, a, b.clone());
    // Rebuild B with cookies always required.
    let settings = bh_ike::EndpointSettings {
        cookie_threshold: 0,
        ..bh_ike::EndpointSettings::default()
    };
    s.b = bh_ike::Endpoint::new(
        settings,
        Box::new(bh_crypto::DeterministicRandom::from_seed([5; 32])),
    );
    s.tb = s.b.add_tunnel(b);
    s.start();
    s.run_for(Duration::from_secs(1));
    assert_eq!(ike_ups(&s.events_a), 1, "{:?}", s.events_a);
    assert_eq!(child_ups(&s.events_b).len(), 1);
    // INIT, COOKIE, INIT with cookie, response, AUTH, response.
    assert_eq!(s.wire.len(), 6);
    // The second request is the first one with a COOKIE notify in front and nothing else
    // changed (RFC 7296 §2.6).
    let first = bh_ike::wire::Message::decode(&s.wire[0].data).unwrap();
    let second = bh_ike::wire::Message::decode(&s.wire[2].data).unwrap();
    assert!(
        matches!(&second.payloads[0], bh_ike::wire::Payload::Notify(n) if n.ty == bh_ike::wire::NotifyType::COOKIE)
    );
    assert_eq!(&second.payloads[1..], &first.payloads[..]);
    // The status counters show the one COOKIE and no half-open SA left.
    let c = s.b.counters();
    assert_eq!((c.cookies_sent, c.half_open, c.ike_sas), (1, 0, 1));
}

#[test]
fn spoofed_init_flood_creates_no_state_beyond_the_cookie_threshold() {
    let (a, b) = pair(false, suites()[0].1.clone(), suites()[0].2.clone());
    let settings = bh_ike::EndpointSettings {
        cookie_threshold: 4,
        ..bh_ike::EndpointSettings::default()
    };
    let mut victim = bh_ike::Endpoint::new(
        settings,
        Box::new(bh_crypto::DeterministicRandom::from_seed([6; 32])),
    );
    victim.add_tunnel(b);
    // A real initiator whose IKE_SA_INIT requests are replayed with fresh SPIs from the
    // peer's (spoofable) address.
    let mut init = bh_ike::Endpoint::new(
        settings,
        Box::new(bh_crypto::DeterministicRandom::from_seed([7; 32])),
    );
    let t = init.add_tunnel(a);
    init.initiate(bh_ike::Instant::from_nanos(1), t);
    let req = init.poll_transmit().unwrap();
    let mut answered_with_cookie = 0;
    for i in 0..200u32 {
        let mut d = req.data.clone();
        d[..4].copy_from_slice(&i.to_be_bytes());
        victim.handle_datagram(bh_ike::Instant::from_nanos(2), req.src, req.dst, &d);
        while let Some(t) = victim.poll_transmit() {
            let m = bh_ike::wire::Message::decode(&t.data).unwrap();
            if m.notify(bh_ike::wire::NotifyType::COOKIE).is_some() {
                answered_with_cookie += 1;
            }
        }
    }
    assert_eq!(victim.snapshot().len(), 4);
    assert_eq!(answered_with_cookie, 196);
}

/// A flood of IKE_SA_INIT from 200 addresses that are no tunnel's peer, while a tunnel is
/// up: past the threshold they get COOKIEs, none creates state, and the established SA
/// keeps working (DPD answered, no timeout).
#[test]
fn init_flood_from_many_unknown_addresses_gets_cookies_and_no_state() {
    let mut s = established(false, 77);
    let b_settings_threshold = 8; // Sim::new's cookie_threshold
    // A well-formed IKE_SA_INIT request (from a throwaway initiator), resent with fresh SPIs
    // from 200 addresses, 10 each, within two simulated seconds.
    let (a, _) = pair(false, suites()[0].1.clone(), suites()[0].2.clone());
    let mut init = bh_ike::Endpoint::new(
        bh_ike::EndpointSettings::default(),
        Box::new(bh_crypto::DeterministicRandom::from_seed([9; 32])),
    );
    let t = init.add_tunnel(a);
    init.initiate(s.now, t);
    let req = init.poll_transmit().unwrap();
    let before = s.b.counters();
    let mut max_half_open = 0;
    for i in 0..2000u32 {
        let src = std::net::SocketAddr::new(
            std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, (i % 200) as u8 + 1)),
            500,
        );
        let mut d = req.data.clone();
        d[..4].copy_from_slice(&i.to_be_bytes());
        let at = s.now + Duration::from_millis(u64::from(i));
        s.b.handle_datagram(at, src, req.dst, &d);
        max_half_open = max_half_open.max(s.b.counters().half_open);
    }
    let mut cookies_to_flooders = 0;
    while let Some(t) = s.b.poll_transmit() {
        let m = bh_ike::wire::Message::decode(&t.data).unwrap();
        if m.notify(bh_ike::wire::NotifyType::COOKIE).is_some()
            && t.dst.ip() != std::net::IpAddr::V4(A_PUBLIC)
        {
            cookies_to_flooders += 1;
        }
    }
    let after = s.b.counters();
    s.now = s.now + Duration::from_secs(2);
    // Each one-second window lets the first `threshold` through (dropped, no tunnel) and
    // answers the rest with a COOKIE.
    assert!(
        cookies_to_flooders >= 2000 - 3 * b_settings_threshold,
        "{cookies_to_flooders} cookies"
    );
    assert_eq!(
        after.cookies_sent - before.cookies_sent,
        cookies_to_flooders
    );
    assert_eq!(max_half_open, 0);
    assert_eq!(after.ike_sas, before.ike_sas);
    // The established SA is untouched and keeps working past several DPD rounds.
    s.run_for(Duration::from_secs(120));
    assert!(ike_downs(&s.events_a).is_empty() && ike_downs(&s.events_b).is_empty());
    assert_eq!(s.a.snapshot().len(), 1);
    assert_eq!(s.b.snapshot()[0].children.len(), 1);
}

#[test]
fn ike_fragmentation_both_ways_with_loss_of_a_fragment() {
    let (mut a, mut b) = pair(true, suites()[1].1.clone(), suites()[1].2.clone());
    for c in [&mut a, &mut b] {
        c.lifetimes.child_rekey = Duration::from_secs(60);
        c.lifetimes.jitter_percent = 0;
    }
    b.lifetimes.child_rekey = Duration::from_secs(1000);
    let mut s = Sim::new(111, true, a.clone(), b.clone());
    let settings = bh_ike::EndpointSettings {
        retransmit_timeout: Duration::from_secs(1),
        max_ike_message: 160,
        ..bh_ike::EndpointSettings::default()
    };
    s.a = bh_ike::Endpoint::new(
        settings,
        Box::new(bh_crypto::DeterministicRandom::from_seed([1; 32])),
    );
    s.b = bh_ike::Endpoint::new(
        settings,
        Box::new(bh_crypto::DeterministicRandom::from_seed([2; 32])),
    );
    s.ta = s.a.add_tunnel(a);
    s.tb = s.b.add_tunnel(b);
    // Lose the second fragment of the first IKE_AUTH request once.
    let mut seen_frag = 0;
    s.filter = Box::new(move |p, _| {
        if p.from_a && p.data.get(16) == Some(&53) {
            seen_frag += 1;
            return seen_frag != 2;
        }
        true
    });
    s.start();
    s.run_for(Duration::from_secs(70));
    let skf = s
        .wire
        .iter()
        .filter(|p| p.data.get(16) == Some(&53))
        .count();
    assert!(skf >= 6, "fragments on the wire: {skf}");
    assert!(
        s.wire
            .iter()
            .all(|p| p.data.len() <= 160 || p.data[18] == 34),
        "only IKE_SA_INIT may exceed the limit"
    );
    let ca = child_ups(&s.events_a);
    let cb = child_ups(&s.events_b);
    assert_eq!((ca.len(), cb.len()), (2, 2), "{:?}", s.events_a);
    assert_children_match(&ca[0], &cb[0]);
    assert_children_match(&ca[1], &cb[1]);
}

#[test]
fn a_deleted_child_sa_is_renegotiated_by_the_initiator() {
    let mut s = established(false, 121);
    let first = child_ups(&s.events_a)[0].inbound;
    // The responder's side deletes the Child SA (as a gateway's "clear" would).
    s.b.delete_child(s.now, s.tb);
    s.run_for(Duration::from_secs(1));
    assert_eq!(
        child_downs(&s.events_a),
        vec![(first, DownReason::DeletedByPeer)]
    );
    assert_eq!(child_downs(&s.events_b).len(), 1);
    // A (the tunnel's initiator) made a new pair with CREATE_CHILD_SA, without REKEY_SA.
    let ca = child_ups(&s.events_a);
    let cb = child_ups(&s.events_b);
    assert_eq!((ca.len(), cb.len()), (2, 2), "{:?}", s.events_a);
    assert_eq!(ca[1].replaces, None);
    assert_children_match(&ca[1], &cb[1]);
    assert_eq!(s.a.snapshot()[0].children.len(), 1);
    assert_eq!(s.b.snapshot()[0].children.len(), 1);
    assert!(ike_downs(&s.events_a).is_empty());
}

#[test]
fn a_locally_deleted_child_sa_is_not_renegotiated() {
    let mut s = established(false, 122);
    // Deleting on purpose leaves the tunnel without a Child SA (and says so); B is not the
    // tunnel's initiator, so it does not negotiate a new one.
    s.a.delete_child(s.now, s.ta);
    s.run_for(Duration::from_secs(1));
    assert_eq!(child_downs(&s.events_a).len(), 1);
    assert_eq!(child_downs(&s.events_b).len(), 1);
    assert_eq!(
        child_ups(&s.events_b).len(),
        1,
        "B is not the initiator: no new pair"
    );
    assert!(s.a.snapshot()[0].children.is_empty());
}

#[test]
fn a_child_sa_whose_rekey_keeps_failing_expires_and_the_tunnel_restarts() {
    let (mut a, mut b) = pair(false, suites()[0].1.clone(), suites()[0].2.clone());
    a.lifetimes.child_rekey = Duration::from_secs(100);
    a.lifetimes.jitter_percent = 0;
    a.pfs_group = Some(DhGroup::Modp2048);
    // B refuses every rekey: it wants another PFS group.
    b.pfs_group = Some(DhGroup::Ecp256);
    b.lifetimes.child_rekey = Duration::from_secs(10_000);
    a.dpd.interval = Duration::from_secs(1000);
    b.dpd.interval = Duration::from_secs(1000);
    let mut s = Sim::new(131, false, a, b);
    s.start();
    s.run_for(Duration::from_secs(109));
    assert!(ike_downs(&s.events_a).is_empty());
    s.run_for(Duration::from_secs(2));
    assert_eq!(ike_downs(&s.events_a), vec![DownReason::Expired]);
    assert_eq!(child_downs(&s.events_a).len(), 1);
    // The peer was told, and the tunnel comes back with a fresh IKE SA.
    assert_eq!(ike_downs(&s.events_b), vec![DownReason::DeletedByPeer]);
    s.run_for(Duration::from_secs(6));
    assert_eq!(ike_ups(&s.events_a), 2);
    assert_eq!(child_ups(&s.events_a).len(), 2);
}

#[test]
fn traffic_defers_dpd() {
    let mut s = established(false, 141);
    let sent_before = s.wire.len();
    for _ in 0..30 {
        s.a.note_traffic(s.now, s.ta);
        s.b.note_traffic(s.now, s.tb);
        s.run_for(Duration::from_secs(1));
    }
    assert_eq!(s.wire.len(), sent_before, "no DPD while traffic flows");
    s.run_for(Duration::from_secs(11));
    assert!(s.wire.len() > sent_before, "DPD once traffic stops");
}
