//! Model test: the decision process (`rib::select`) against a naive, literal transcription of
//! RFC 4271 §9.1.2.2 (quadratic MED rule, one filter per step).

use std::net::{IpAddr, Ipv4Addr};

use bh_bgp::rib::{Candidate, PeerId, select};
use bh_bgp::wire::Origin;
use proptest::prelude::*;

fn naive_survivors(c: &[Candidate]) -> Vec<usize> {
    let mut s: Vec<usize> = (0..c.len()).collect();
    // §9.1.2.1: highest degree of preference.
    let best = s.iter().map(|&i| c[i].local_pref).max().unwrap();
    s.retain(|&i| c[i].local_pref == best);
    // a) shortest AS_PATH.
    let best = s.iter().map(|&i| c[i].as_path_len).min().unwrap();
    s.retain(|&i| c[i].as_path_len == best);
    // b) lowest ORIGIN.
    let best = s.iter().map(|&i| c[i].origin).min().unwrap();
    s.retain(|&i| c[i].origin == best);
    // c) remove a route if another from the same neighbor AS has a lower MED.
    let before = s.clone();
    s.retain(|&m| {
        !before
            .iter()
            .any(|&n| c[n].neighbor_as == c[m].neighbor_as && c[n].med < c[m].med)
    });
    // d) prefer eBGP.
    if s.iter().any(|&i| c[i].ebgp) {
        s.retain(|&i| c[i].ebgp);
    }
    s
}

fn naive_best(c: &[Candidate]) -> usize {
    let s = naive_survivors(c);
    // f), g) lowest BGP Identifier, then lowest peer address.
    *s.iter()
        .min_by_key(|&&i| (u32::from(c[i].peer_router_id), c[i].peer_addr))
        .unwrap()
}

fn arb_candidates() -> impl Strategy<Value = Vec<Candidate>> {
    prop::collection::vec(
        (
            prop_oneof![Just(100u32), Just(200)],
            1usize..4,
            0u8..3,
            0u32..3,
            prop::option::of(64512u32..64515),
            any::<bool>(),
            0u8..4,
        ),
        1..12,
    )
    .prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (lp, len, origin, med, nas, ebgp, nh))| {
                let i = u8::try_from(i).unwrap();
                Candidate {
                    peer: PeerId(u32::from(i)),
                    local_pref: lp,
                    as_path_len: len,
                    origin: [Origin::Igp, Origin::Egp, Origin::Incomplete][usize::from(origin)],
                    med,
                    neighbor_as: nas,
                    ebgp,
                    // Distinct identifiers, not in index order.
                    peer_router_id: Ipv4Addr::new(10, 0, 0, 200 - i),
                    peer_addr: IpAddr::V4(Ipv4Addr::new(169, 254, 0, i)),
                    next_hop: IpAddr::V4(Ipv4Addr::new(169, 254, 1, nh)),
                }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn best_path_matches_the_literal_rfc_procedure(c in arb_candidates()) {
        prop_assert_eq!(select(&c, 1), vec![naive_best(&c)]);
    }

    #[test]
    fn multipath_set_matches_the_model(c in arb_candidates(), k in 1usize..6) {
        let best = naive_best(&c);
        let mut eligible: Vec<usize> = naive_survivors(&c)
            .into_iter()
            .filter(|&i| c[i].neighbor_as == c[best].neighbor_as)
            .collect();
        eligible.sort_by_key(|&i| (u32::from(c[i].peer_router_id), c[i].peer_addr));
        let mut want: Vec<usize> = Vec::new();
        for i in eligible {
            if want.len() < k && !want.iter().any(|&j| c[j].next_hop == c[i].next_hop) {
                want.push(i);
            }
        }
        prop_assert_eq!(select(&c, k), want);
    }
}
