//! Stable fuzz replay: 20,000 seeded random and mutated messages through the decoder and into an
//! Established session. Nothing may panic; garbage may tear down only the session it arrived on.

use std::time::Duration;

use bh_bgp::fuzzing::{FuzzRng, Lab, corpus, decode_any, mutate};
use bh_bgp::session::State;
use bh_bgp::wire::DecodeCtx;

#[test]
fn twenty_thousand_inputs_no_panic_and_only_the_sender_is_torn_down() {
    let mut seeds = corpus(&DecodeCtx {
        four_octet_as: true,
    });
    seeds.extend(corpus(&DecodeCtx {
        four_octet_as: false,
    }));
    assert!(
        decode_any(&seeds.concat()) >= seeds.len(),
        "the corpus itself decodes"
    );
    let mut rng = FuzzRng::new(0x6267_7020_6675_7a7a);
    let mut lab = Lab::new(1);
    assert!(lab.bystander_intact());
    assert_eq!(lab.target_state(), Some(State::Established));
    let (mut teardowns, mut decoded) = (0usize, 0usize);
    for i in 0..20_000u32 {
        let input = mutate(&mut rng, &seeds);
        decoded += decode_any(&input);
        lab.inject(&input);
        assert!(
            lab.bystander_intact(),
            "input {i} harmed the other session: {}",
            hex(&input)
        );
        if lab.target_state() != Some(State::Established) {
            teardowns += 1;
            // Let the target reconnect (ConnectRetry, jittered) before the next input.
            for _ in 0..40 {
                if lab.target_state() == Some(State::Established) {
                    break;
                }
                lab.advance(Duration::from_secs(5));
            }
            assert_eq!(
                lab.target_state(),
                Some(State::Established),
                "target recovers after input {i}"
            );
        }
    }
    // The mix must exercise both outcomes.
    assert!(teardowns > 1000, "teardowns {teardowns}");
    assert!(decoded > 1000, "decoded {decoded}");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

mod semantic {
    use std::net::Ipv4Addr;

    use bh_bgp::Prefix;
    use bh_bgp::fuzzing::Lab;
    use bh_bgp::speaker::SpeakerEvent;
    use bh_bgp::wire::{
        AsPath, AsSegment, Origin, PathAttributes, SegmentKind, Update, update_sub,
    };

    fn update(first_as: u32, nh: Ipv4Addr, prefix: &str) -> Update {
        Update {
            attrs: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::sequence(vec![first_as, 65000])),
                next_hop: Some(nh),
                ..Default::default()
            },
            nlri: vec![prefix.parse().unwrap()],
            ..Default::default()
        }
    }

    fn has(lab: &Lab, p: &str) -> bool {
        let p: Prefix = p.parse().unwrap();
        lab.us.best_routes().any(|(x, _)| *x == p)
    }

    fn error_subcodes(lab: &Lab) -> Vec<u8> {
        lab.events
            .iter()
            .filter_map(|e| match e {
                SpeakerEvent::UpdateError { error, .. } => Some(error.subcode),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn wrong_first_as_and_bad_next_hops_are_treated_as_withdraw() {
        let mut lab = Lab::new(5);
        let good_nh = Ipv4Addr::new(169, 254, 1, 1);
        lab.announce_from_first(&update(64512, good_nh, "10.50.0.0/16"));
        assert!(has(&lab, "10.50.0.0/16"));
        // The same prefix again with a leftmost AS that is not the peer's: withdrawn.
        lab.announce_from_first(&update(64999, good_nh, "10.50.0.0/16"));
        assert!(!has(&lab, "10.50.0.0/16"));
        assert_eq!(error_subcodes(&lab), vec![update_sub::MALFORMED_AS_PATH]);
        // NEXT_HOP 0.0.0.0, and our own address: not installed.
        lab.announce_from_first(&update(64512, Ipv4Addr::UNSPECIFIED, "10.51.0.0/16"));
        lab.announce_from_first(&update(
            64512,
            Ipv4Addr::new(169, 254, 1, 2),
            "10.52.0.0/16",
        ));
        assert!(!has(&lab, "10.51.0.0/16") && !has(&lab, "10.52.0.0/16"));
        assert_eq!(
            error_subcodes(&lab)[1..],
            [update_sub::INVALID_NEXT_HOP, update_sub::INVALID_NEXT_HOP]
        );
        // The session survived all of it.
        assert_eq!(
            lab.target_state(),
            Some(bh_bgp::session::State::Established)
        );
        // A route looping through our own AS is ignored too.
        lab.announce_from_first(&Update {
            attrs: PathAttributes {
                as_path: Some(AsPath::sequence(vec![64512, 65010])),
                ..update(64512, good_nh, "10.53.0.0/16").attrs
            },
            nlri: vec!["10.53.0.0/16".parse().unwrap()],
            ..Default::default()
        });
        assert!(!has(&lab, "10.53.0.0/16"));
        // Confederation segments from an eBGP peer: treat-as-withdraw.
        lab.announce_from_first(&Update {
            attrs: PathAttributes {
                as_path: Some(AsPath {
                    segments: vec![
                        AsSegment {
                            kind: SegmentKind::Sequence,
                            asns: vec![64512],
                        },
                        AsSegment {
                            kind: SegmentKind::ConfedSequence,
                            asns: vec![65100],
                        },
                    ],
                }),
                ..update(64512, good_nh, "10.54.0.0/16").attrs
            },
            nlri: vec!["10.54.0.0/16".parse().unwrap()],
            ..Default::default()
        });
        assert!(!has(&lab, "10.54.0.0/16"));
        assert_eq!(
            error_subcodes(&lab).last(),
            Some(&update_sub::MALFORMED_AS_PATH)
        );
    }
}

#[test]
fn unknown_optional_transitive_attribute_is_passed_on_with_the_partial_bit() {
    use std::net::Ipv4Addr;

    use bh_bgp::wire::{AsPath, Origin, PathAttributes, RawAttribute, Update, attr_flags};

    let mut lab = Lab::with_transit(3, true);
    let unknown = RawAttribute {
        flags: attr_flags::OPTIONAL | attr_flags::TRANSITIVE,
        type_code: 99,
        value: vec![7, 7],
    };
    let non_transitive = RawAttribute {
        flags: attr_flags::OPTIONAL,
        type_code: 98,
        value: vec![1],
    };
    lab.announce_from_first(&Update {
        attrs: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(vec![64512])),
            next_hop: Some(Ipv4Addr::new(169, 254, 1, 1)),
            unknown: vec![unknown, non_transitive],
            ..Default::default()
        },
        nlri: vec!["10.60.0.0/16".parse().unwrap()],
        ..Default::default()
    });
    let to_second: Vec<&Update> = lab
        .peer_updates
        .iter()
        .filter(|(i, u)| *i == 1 && u.nlri.contains(&"10.60.0.0/16".parse().unwrap()))
        .map(|(_, u)| u)
        .collect();
    assert_eq!(to_second.len(), 1, "re-advertised to the other neighbor");
    let a = &to_second[0].attrs;
    assert_eq!(
        a.unknown,
        vec![RawAttribute {
            flags: attr_flags::OPTIONAL | attr_flags::TRANSITIVE | attr_flags::PARTIAL,
            type_code: 99,
            value: vec![7, 7]
        }],
        "transitive kept with Partial set, non-transitive dropped"
    );
    assert_eq!(a.as_path, Some(AsPath::sequence(vec![65010, 64512])));
    assert_eq!(
        a.next_hop,
        Some(Ipv4Addr::new(169, 254, 2, 2)),
        "next hop self toward the second neighbor"
    );
    assert!(
        !lab.peer_updates
            .iter()
            .any(|(i, u)| *i == 0 && u.nlri.contains(&"10.60.0.0/16".parse().unwrap())),
        "not sent back"
    );
}
