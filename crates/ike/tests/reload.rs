//! Configuration reload in the engine, on a simulated clock: a tunnel whose settings are
//! replaced is deleted at the peer and negotiated again with the new settings; a removed
//! tunnel is deleted at the peer and no longer answered.

mod sim;

use std::time::Duration;

use bh_crypto::{DhGroup, EspEncr, Prf};
use bh_ike::DownReason;
use sim::*;

const GCM256: EspEncr = EspEncr::AesGcm16 { key_bits: 256 };

fn up() -> Sim {
    let (a, b) = pair(
        false,
        vec![ike(GCM256, None, Prf::HmacSha256, &[DhGroup::Ecp256])],
        vec![esp(GCM256, None)],
    );
    let mut s = Sim::new(7, false, a, b);
    s.start();
    s.run_for(Duration::from_millis(100));
    assert_eq!(child_ups(&s.events_a).len(), 1, "{:?}", s.events_a);
    s
}

#[test]
fn a_replaced_tunnel_is_deleted_and_comes_back_with_the_new_psk() {
    let mut s = up();
    let first = child_ups(&s.events_a).remove(0).inbound;
    let new_psk = bh_crypto::Zeroizing::new(b"a brand new pre-shared key".to_vec());
    // The peer learns the new key first (as an operator would change both ends).
    let mut b = s.b.tunnel(s.tb).unwrap().clone();
    b.psk = new_psk.clone();
    let now = s.now;
    s.b.replace_tunnel(now, s.tb, b);
    // B's SAs went with a DELETE to A.
    assert_eq!(ike_downs(&s.events_b), vec![]);
    s.run_for(Duration::from_millis(100));
    assert_eq!(
        ike_downs(&s.events_b),
        vec![DownReason::DeletedLocally],
        "{:?}",
        s.events_b
    );
    assert_eq!(ike_downs(&s.events_a), vec![DownReason::DeletedByPeer]);
    // A is replaced too, with the new key, and initiates again.
    let mut a = s.a.tunnel(s.ta).unwrap().clone();
    a.psk = new_psk;
    let (now, ta) = (s.now, s.ta);
    s.a.replace_tunnel(now, ta, a);
    s.a.initiate(now, ta);
    s.run_for(Duration::from_secs(1));
    let ups = child_ups(&s.events_a);
    assert_eq!(ups.len(), 2, "{:?}", s.events_a);
    assert_ne!(ups[1].inbound, first, "a new Child SA");
    assert_children_match(&ups[1], &child_ups(&s.events_b)[1]);
    assert_eq!(
        s.a.tunnel(s.ta).unwrap().psk.as_slice(),
        b"a brand new pre-shared key"
    );
}

#[test]
fn a_replaced_tunnel_with_a_psk_the_peer_lacks_does_not_come_up() {
    let mut s = up();
    let mut a = s.a.tunnel(s.ta).unwrap().clone();
    a.psk = bh_crypto::Zeroizing::new(b"only one side has this key".to_vec());
    let (now, ta) = (s.now, s.ta);
    s.a.replace_tunnel(now, ta, a);
    s.a.initiate(now, ta);
    s.run_for(Duration::from_secs(2));
    assert_eq!(child_ups(&s.events_a).len(), 1, "{:?}", s.events_a);
    assert_eq!(ike_ups(&s.events_a), 1);
}

#[test]
fn a_removed_tunnel_is_deleted_at_the_peer_and_not_answered_any_more() {
    let mut s = up();
    let (now, tb) = (s.now, s.tb);
    s.b.remove_tunnel(now, tb);
    s.run_for(Duration::from_millis(100));
    assert_eq!(ike_downs(&s.events_a), vec![DownReason::DeletedByPeer]);
    assert_eq!(child_downs(&s.events_a).len(), 1);
    // A tries again: B no longer answers, so nothing comes up.
    let (now, ta) = (s.now, s.ta);
    s.a.initiate(now, ta);
    s.run_for(Duration::from_secs(3));
    assert_eq!(ike_ups(&s.events_a), 1, "{:?}", s.events_a);
    assert_eq!(ike_ups(&s.events_b), 1, "{:?}", s.events_b);
    // And B never starts it again itself.
    let before = s.wire.len();
    let now = s.now;
    s.b.initiate(now, tb);
    s.run_for(Duration::from_millis(10));
    assert!(
        s.wire[before..].iter().all(|p| p.from_a),
        "B sent after removal"
    );
}
