//! Messages captured from BIRD 2.0.12 (tests/captures/capture-bird.sh): our decoder reads them,
//! finds what BIRD was configured to send, and re-encodes them to the same meaning.

use std::net::{IpAddr, Ipv4Addr};

use bh_bgp::wire::{self, AsPath, Capability, DecodeCtx, Message, Origin, Update};
use bh_bgp::{Family, Prefix};

fn load(text: &str) -> Vec<Vec<u8>> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| hex::decode(l).unwrap())
        .collect()
}

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn check(text: &str, four: bool) {
    let ctx = DecodeCtx {
        four_octet_as: four,
    };
    let raw = load(text);
    let msgs: Vec<Message> = raw.iter().map(|m| wire::decode(m, &ctx).unwrap()).collect();
    // Same meaning after our encoder.
    for m in &msgs {
        assert_eq!(
            &wire::decode(&wire::encode_to_vec(m, &ctx).unwrap(), &ctx).unwrap(),
            m
        );
    }
    let Message::Open(o) = &msgs[0] else {
        panic!("first is OPEN")
    };
    assert_eq!(o.my_as, 23456, "AS_TRANS in My AS for a 4-octet AS");
    assert_eq!(o.asn(), 4_200_000_010);
    assert_eq!(o.hold_time, 30);
    assert_eq!(o.bgp_id, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(
        o.families().collect::<Vec<_>>(),
        vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    );
    assert!(o.route_refresh());
    let gr = o.graceful_restart().unwrap();
    assert_eq!(gr.restart_time, 120);
    assert_eq!(gr.families.len(), 2);
    assert!(
        o.capabilities
            .iter()
            .any(|c| matches!(c, Capability::Unknown { code: 70, .. })),
        "enhanced route refresh kept"
    );
    assert_eq!(
        wire::encode_to_vec(&msgs[0], &ctx).unwrap(),
        raw[0],
        "OPEN re-encodes byte for byte"
    );
    assert_eq!(msgs[1], Message::Keepalive);

    let updates: Vec<&Update> = msgs
        .iter()
        .filter_map(|m| {
            if let Message::Update(u) = m {
                Some(u)
            } else {
                None
            }
        })
        .collect();
    let v4 = updates
        .iter()
        .find(|u| !u.nlri.is_empty())
        .expect("an IPv4 UPDATE");
    assert!(v4.errors.is_empty(), "{:?}", v4.errors);
    assert_eq!(v4.nlri, vec![p("10.10.0.0/16"), p("10.20.30.0/24")]);
    assert_eq!(v4.attrs.origin, Some(Origin::Igp));
    assert_eq!(
        v4.attrs.as_path,
        Some(AsPath::sequence(vec![4_200_000_010])),
        "AS4_PATH merged on a 2-octet session"
    );
    assert_eq!(v4.attrs.next_hop, Some(Ipv4Addr::new(127, 0, 0, 1)));
    assert_eq!(v4.attrs.med, Some(50));
    assert_eq!(v4.attrs.communities, vec![(65001 << 16) | 100]);
    assert_eq!(v4.attrs.large_communities, vec![[4_200_000_010, 1, 2]]);
    let v6 = updates
        .iter()
        .find(|u| u.attrs.mp_reach.is_some())
        .expect("an IPv6 UPDATE");
    let r = v6.attrs.mp_reach.as_ref().unwrap();
    assert_eq!(r.next_hop, "fd00::1".parse::<IpAddr>().unwrap());
    assert_eq!(r.nlri, vec![p("fd10::/48"), p("2001:db8:1::/64")]);
    let eors: Vec<Family> = updates.iter().filter_map(|u| u.end_of_rib()).collect();
    assert_eq!(eors, vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
}

#[test]
fn bird_on_a_four_octet_session() {
    check(include_str!("captures/bird-4octet.hex"), true);
}

#[test]
fn bird_on_a_two_octet_session_sends_as_trans_and_as4_path() {
    let text = include_str!("captures/bird-2octet.hex");
    // The raw AS_PATH carries AS_TRANS (0x5ba0) and an AS4_PATH (type 0x11) follows.
    assert!(text.contains("40020402015ba0") && text.contains("c011060201fa56ea0a"));
    check(text, false);
}

#[test]
fn gobgp_on_a_four_octet_session() {
    let ctx = DecodeCtx {
        four_octet_as: true,
    };
    let raw = load(include_str!("captures/gobgp-4octet.hex"));
    let msgs: Vec<Message> = raw.iter().map(|m| wire::decode(m, &ctx).unwrap()).collect();
    for m in &msgs {
        assert_eq!(
            &wire::decode(&wire::encode_to_vec(m, &ctx).unwrap(), &ctx).unwrap(),
            m
        );
    }
    let Message::Open(o) = &msgs[0] else {
        panic!("first is OPEN")
    };
    assert_eq!(
        (o.asn(), o.hold_time, o.bgp_id),
        (4_200_000_020, 60, Ipv4Addr::new(10, 0, 0, 3))
    );
    assert_eq!(
        o.families().collect::<Vec<_>>(),
        vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    );
    // GoBGP's FQDN (73) and extended next hop (5) capabilities are kept as unknown.
    assert!(
        o.capabilities
            .iter()
            .any(|c| matches!(c, Capability::Unknown { code: 73, .. }))
    );
    assert!(
        o.capabilities
            .iter()
            .any(|c| matches!(c, Capability::Unknown { code: 5, .. }))
    );
    let Message::Update(u4) = &msgs[2] else {
        panic!()
    };
    assert!(u4.errors.is_empty());
    assert_eq!(u4.nlri, vec![p("10.30.0.0/16")]);
    assert_eq!(u4.attrs.origin, Some(Origin::Incomplete));
    assert_eq!(
        u4.attrs.as_path,
        Some(AsPath::sequence(vec![4_200_000_020]))
    );
    assert_eq!(u4.attrs.med, Some(70));
    assert_eq!(u4.attrs.communities, vec![(65001 << 16) | 200]);
    let Message::Update(u6) = &msgs[3] else {
        panic!()
    };
    let r = u6.attrs.mp_reach.as_ref().unwrap();
    assert_eq!(
        (r.next_hop, r.nlri.clone()),
        ("fd00::3".parse::<IpAddr>().unwrap(), vec![p("fd30::/48")])
    );
}

#[test]
fn frr_on_a_four_octet_session() {
    let ctx = DecodeCtx {
        four_octet_as: true,
    };
    let raw = load(include_str!("captures/frr-4octet.hex"));
    let msgs: Vec<Message> = raw.iter().map(|m| wire::decode(m, &ctx).unwrap()).collect();
    for m in &msgs {
        assert_eq!(
            &wire::decode(&wire::encode_to_vec(m, &ctx).unwrap(), &ctx).unwrap(),
            m
        );
    }
    // FRR sends one capability per optional parameter; we read them all.
    let Message::Open(o) = &msgs[0] else {
        panic!("first is OPEN")
    };
    assert_eq!(
        (o.asn(), o.hold_time, o.bgp_id),
        (4_200_000_030, 30, Ipv4Addr::new(10, 0, 0, 4))
    );
    assert_eq!(
        o.families().collect::<Vec<_>>(),
        vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    );
    assert!(o.route_refresh());
    let gr = o.graceful_restart().unwrap();
    assert_eq!(
        (gr.flags, gr.restart_time),
        (0xc, 120),
        "Restart and Notification bits, 120 s"
    );
    assert!(
        o.capabilities
            .iter()
            .any(|c| matches!(c, Capability::Unknown { code: 128, .. })),
        "old Cisco route refresh kept"
    );
    let Message::Update(u4) = &msgs[2] else {
        panic!()
    };
    assert!(u4.errors.is_empty());
    assert_eq!(u4.nlri, vec![p("10.40.0.0/16")]);
    assert_eq!(
        u4.attrs.as_path,
        Some(AsPath::sequence(vec![4_200_000_030])),
        "AS_PATH with the extended length bit"
    );
    assert_eq!(u4.attrs.med, Some(0));
    let Message::Update(u6) = &msgs[3] else {
        panic!()
    };
    let r = u6.attrs.mp_reach.as_ref().unwrap();
    // Over an IPv4 session without an IPv6 address FRR sends an IPv4-mapped next hop.
    assert_eq!(r.next_hop, "::ffff:127.0.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(r.nlri, vec![p("fd40::/48")]);
}
