//! RIB building blocks: the §9.1 decision process with ECMP, prefix lists, and the per-path
//! record stored in an Adj-RIB-In. The tables themselves (Adj-RIB-In per peer, Loc-RIB,
//! Adj-RIB-Out) are held by [`crate::speaker::Speaker`], which drives them.
//!
//! Not done: IGP cost to the next hop (§9.1.2.2 e; next hops are on the tunnel links),
//! always-compare-MED, route reflection, weights.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use crate::Prefix;
use crate::wire::{Origin, PathAttributes};

/// Identifies a neighbor within a [`crate::speaker::Speaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub u32);

/// A path in an Adj-RIB-In: shared attributes (one `Arc` per UPDATE, which also carries the next
/// hop) and whether it is stale (kept while the peer restarts, RFC 4724 §4.2). 16 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// Attributes as received; MP_REACH_NLRI keeps its next hop but not its prefixes, and
    /// MP_UNREACH_NLRI is dropped.
    pub attrs: Arc<PathAttributes>,
    /// Kept through a graceful restart, not yet refreshed.
    pub stale: bool,
}

impl Path {
    /// The next hop for `prefix`: NEXT_HOP for IPv4 (or an IPv4 MP_REACH next hop), the
    /// MP_REACH next hop for IPv6.
    pub fn next_hop(&self, prefix: &Prefix) -> Option<IpAddr> {
        let mp = self
            .attrs
            .mp_reach
            .as_ref()
            .filter(|m| m.family == prefix.family())
            .map(|m| m.next_hop);
        match prefix.addr() {
            IpAddr::V4(_) => self.attrs.next_hop.map(IpAddr::V4).or(mp),
            IpAddr::V6(_) => mp,
        }
    }
}

/// What the decision process needs to know about one candidate path (RFC 4271 §9.1.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The neighbor it came from.
    pub peer: PeerId,
    /// Degree of preference (LOCAL_PREF for iBGP, the neighbor's configured value for eBGP).
    pub local_pref: u32,
    /// AS_PATH length (AS_SET counts 1).
    pub as_path_len: usize,
    /// ORIGIN.
    pub origin: Origin,
    /// MED (missing = 0, the lowest, per §9.1.2.2 c).
    pub med: u32,
    /// The neighboring AS (first AS in the path); MEDs compare only within one.
    pub neighbor_as: Option<u32>,
    /// Learned over eBGP.
    pub ebgp: bool,
    /// The peer's BGP Identifier.
    pub peer_router_id: Ipv4Addr,
    /// The peer's address.
    pub peer_addr: IpAddr,
    /// The path's next hop.
    pub next_hop: IpAddr,
}

/// The §9.1.2.2 tie-breaking procedure over `cands`, plus ECMP: returns the indices of the
/// selected paths, best first, at most `max_paths` (at least 1 if `cands` is not empty).
///
/// Multipath set: the paths still equal after steps a-d (local preference, AS_PATH length,
/// ORIGIN, MED within a neighbor AS, eBGP over iBGP) that share the best path's neighbor AS,
/// one per distinct next hop, ordered by the final tie-breakers (lowest BGP Identifier, then
/// lowest peer address).
pub fn select(cands: &[Candidate], max_paths: usize) -> Vec<usize> {
    if cands.is_empty() {
        return Vec::new();
    }
    let Some(best_lp) = cands.iter().map(|c| c.local_pref).max() else {
        return Vec::new();
    };
    let mut live: Vec<usize> = (0..cands.len())
        .filter(|&i| cands[i].local_pref == best_lp)
        .collect();
    let min_len = live
        .iter()
        .map(|&i| cands[i].as_path_len)
        .min()
        .unwrap_or(0);
    live.retain(|&i| cands[i].as_path_len == min_len);
    let min_origin = live
        .iter()
        .map(|&i| cands[i].origin)
        .min()
        .unwrap_or(Origin::Igp);
    live.retain(|&i| cands[i].origin == min_origin);
    // Lowest MED per neighbor AS (few candidates: a small vector beats a map).
    let mut min_med: Vec<(Option<u32>, u32)> = Vec::new();
    for &i in &live {
        let (asn, med) = (cands[i].neighbor_as, cands[i].med);
        match min_med.iter_mut().find(|(a, _)| *a == asn) {
            Some((_, m)) => *m = (*m).min(med),
            None => min_med.push((asn, med)),
        }
    }
    live.retain(|&i| {
        min_med
            .iter()
            .find(|(a, _)| *a == cands[i].neighbor_as)
            .is_none_or(|&(_, m)| cands[i].med == m)
    });
    if live.iter().any(|&i| cands[i].ebgp) {
        live.retain(|&i| cands[i].ebgp);
    }
    live.sort_by(|&a, &b| {
        let (ca, cb) = (&cands[a], &cands[b]);
        (u32::from(ca.peer_router_id), ca.peer_addr)
            .cmp(&(u32::from(cb.peer_router_id), cb.peer_addr))
    });
    let Some(&best) = live.first() else {
        return Vec::new();
    };
    let best_as = cands[best].neighbor_as;
    let mut out = vec![best];
    for &i in live.iter().skip(1) {
        if out.len() >= max_paths.max(1) {
            break;
        }
        if cands[i].neighbor_as == best_as
            && !out.iter().any(|&j| cands[j].next_hop == cands[i].next_hop)
        {
            out.push(i);
        }
    }
    out
}

/// One prefix-list entry: matches prefixes inside `prefix` whose length is in
/// `prefix.len()..=max_len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixListEntry {
    /// The covering prefix.
    pub prefix: Prefix,
    /// Longest length matched (`prefix.len()` for an exact match).
    pub max_len: u8,
    /// Permit (true) or deny (false) on match.
    pub permit: bool,
}

/// An ordered prefix list: the first matching entry decides; no match denies.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrefixList {
    /// Entries, in order.
    pub entries: Vec<PrefixListEntry>,
}

impl PrefixList {
    /// A list that permits exactly these prefixes and anything more specific up to `max_len`.
    pub fn permit(prefixes: &[Prefix], max_len_v4: u8, max_len_v6: u8) -> Self {
        Self {
            entries: prefixes
                .iter()
                .map(|&prefix| PrefixListEntry {
                    prefix,
                    max_len: if prefix.addr().is_ipv4() {
                        max_len_v4
                    } else {
                        max_len_v6
                    },
                    permit: true,
                })
                .collect(),
        }
    }
    /// Whether `p` is permitted.
    pub fn permits(&self, p: &Prefix) -> bool {
        self.entries
            .iter()
            .find(|e| e.prefix.contains(p) && p.len() <= e.max_len)
            .is_some_and(|e| e.permit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(peer: u32, f: impl FnOnce(&mut Candidate)) -> Candidate {
        let mut c = Candidate {
            peer: PeerId(peer),
            local_pref: 100,
            as_path_len: 2,
            origin: Origin::Igp,
            med: 0,
            neighbor_as: Some(64512),
            ebgp: true,
            peer_router_id: Ipv4Addr::from(peer),
            peer_addr: IpAddr::V4(Ipv4Addr::from(peer)),
            next_hop: IpAddr::V4(Ipv4Addr::from(peer)),
        };
        f(&mut c);
        c
    }

    #[test]
    fn decision_steps_in_order() {
        // Local preference beats a shorter path.
        let c = [
            cand(1, |c| c.as_path_len = 1),
            cand(2, |c| c.local_pref = 200),
        ];
        assert_eq!(select(&c, 1), vec![1]);
        // Shorter AS path beats lower MED and origin.
        let c = [
            cand(1, |c| c.med = 0),
            cand(2, |c| {
                c.as_path_len = 1;
                c.med = 50;
                c.origin = Origin::Incomplete
            }),
        ];
        assert_eq!(select(&c, 1), vec![1]);
        // Origin IGP over INCOMPLETE.
        let c = [cand(1, |c| c.origin = Origin::Incomplete), cand(2, |_| {})];
        assert_eq!(select(&c, 4), vec![1]);
        // Lower MED wins within the same neighbor AS (AWS maintenance shifts MED).
        let c = [cand(1, |c| c.med = 200), cand(2, |c| c.med = 100)];
        assert_eq!(select(&c, 4), vec![1]);
        // MEDs of different neighbor ASes are not compared: tie-break by router id; no ECMP across ASes.
        let c = [
            cand(1, |c| c.med = 200),
            cand(2, |c| {
                c.med = 100;
                c.neighbor_as = Some(65515)
            }),
        ];
        assert_eq!(select(&c, 4), vec![0]);
        // eBGP over iBGP.
        let c = [cand(1, |c| c.ebgp = false), cand(2, |_| {})];
        assert_eq!(select(&c, 4), vec![1]);
    }

    #[test]
    fn ecmp_up_to_max_paths_with_distinct_next_hops() {
        let c = [
            cand(3, |_| {}),
            cand(1, |_| {}),
            cand(2, |_| {}),
            cand(4, |c| c.next_hop = IpAddr::V4(Ipv4Addr::from(1))),
        ];
        assert_eq!(
            select(&c, 8),
            vec![1, 2, 0],
            "peer 4 repeats next hop of peer 1"
        );
        assert_eq!(select(&c, 2), vec![1, 2]);
        assert_eq!(select(&c, 1), vec![1]);
        assert_eq!(select(&[], 4), Vec::<usize>::new());
    }

    #[test]
    fn prefix_list_first_match_and_default_deny() {
        let l = PrefixList {
            entries: vec![
                PrefixListEntry {
                    prefix: "10.1.0.0/16".parse().unwrap(),
                    max_len: 24,
                    permit: false,
                },
                PrefixListEntry {
                    prefix: "10.0.0.0/8".parse().unwrap(),
                    max_len: 24,
                    permit: true,
                },
            ],
        };
        assert!(l.permits(&"10.2.0.0/16".parse().unwrap()));
        assert!(!l.permits(&"10.1.2.0/24".parse().unwrap()));
        assert!(!l.permits(&"10.2.2.128/25".parse().unwrap()));
        assert!(!l.permits(&"192.168.0.0/16".parse().unwrap()));
    }
}
