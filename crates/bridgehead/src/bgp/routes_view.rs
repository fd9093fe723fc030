//! The per-prefix routes view behind `bridgehead routes`: for each prefix the paths learned
//! (neighbor, next hop, AS path, LOCAL_PREF, MED), which are best (the ECMP set of the
//! Loc-RIB), whether the prefix is in the kernel and through which devices, and per neighbor
//! the prefixes advertised to it.
//!
//! The control thread asks ([`BgpService::routes_view`]); the BGP loop answers between two
//! rounds of its event loop (`Loop::answer_route_queries`), so the view is one consistent
//! snapshot of the speaker's RIBs. The answer is bounded: at most `limit` prefixes (at most
//! [`MAX_LIMIT`]), each with at most one path per neighbor, and at most `limit` advertised
//! prefixes per neighbor; the totals say how many were left out. Building it walks the RIBs
//! once to count (no copy of the table).
//!
//! Not here: the rendering (`crate::views`), the neighbor table (`bridgehead bgp`), or any
//! change to the RIBs.

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::time::Duration;

use bh_bgp::rib::PeerId;
use bh_bgp::speaker::Speaker;
use bh_bgp::wire::{AsPath, SegmentKind};
use serde_json::{Value, json};

use super::{BgpService, Loop, state_name};

/// Default number of prefixes in a view.
pub const DEFAULT_LIMIT: usize = 100;
/// Most prefixes one view may hold, whatever is asked.
pub const MAX_LIMIT: usize = 10_000;
/// Queries waiting for the loop at most; more are refused at once.
pub(super) const QUERY_QUEUE: usize = 4;
/// How long the control thread waits for the loop's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// One request for the view.
pub(super) struct Query {
    limit: usize,
    reply: mpsc::SyncSender<Value>,
}

impl BgpService {
    /// The routes view with at most `limit` prefixes (capped at [`MAX_LIMIT`]); `configured:
    /// false` without `[bgp]`, an `error` when the loop does not answer in time.
    pub fn routes_view(&self, limit: usize) -> Value {
        let Some(tx) = self.queries.as_ref() else {
            return json!({ "configured": false });
        };
        let (reply, answer) = mpsc::sync_channel(1);
        let q = Query {
            limit: limit.clamp(1, MAX_LIMIT),
            reply,
        };
        if tx.try_send(q).is_err() {
            return json!({ "error": "the BGP service is busy or stopped; try again" });
        }
        let _ = self.wake.notify();
        answer
            .recv_timeout(ANSWER_TIMEOUT)
            .unwrap_or_else(|_| json!({ "error": "the BGP service did not answer in time" }))
    }
}

impl Loop {
    /// Answers the waiting route queries (at most [`QUERY_QUEUE`] per round).
    pub(super) fn answer_route_queries(&mut self) {
        for _ in 0..QUERY_QUEUE {
            let Some(q) = self.queries.as_ref().and_then(|rx| rx.try_recv().ok()) else {
                return;
            };
            let v = self.routes_view(q.limit);
            let _ = q.reply.try_send(v);
        }
    }

    /// The device names routes through `peer` leave by, as the FIB sync computes them: the
    /// tunnel's device, or the interface of the connected route towards the neighbor; none
    /// while that device is down.
    fn peer_device(&mut self, peer: PeerId) -> Option<String> {
        let (n, ifindex) = self.peers.get(&peer).and_then(|&i| self.neighbors.get(i))?;
        let (ifindex, name) = match (ifindex, &n.tunnel) {
            (Some(i), Some(t)) => (*i, Some(format!("bh-{t}"))),
            _ => {
                let addr = n.address;
                (self.fib.as_mut()?.connected_ifindex(addr)?, None)
            }
        };
        if self.down.contains(&ifindex) {
            return None;
        }
        Some(name.unwrap_or_else(|| device_name(ifindex)))
    }

    fn routes_view(&mut self, limit: usize) -> Value {
        let Some(sp) = self.speaker.as_ref() else {
            return json!({ "configured": false });
        };
        let ids: Vec<PeerId> = sp.neighbors().map(|(id, ..)| id).collect();
        let mut devices = std::collections::HashMap::new();
        for id in &ids {
            let d = self.peer_device(*id);
            devices.insert(*id, d);
        }
        let Some(sp) = self.speaker.as_ref() else {
            return json!({ "configured": false });
        };
        let name = |peer: PeerId| -> (String, Option<String>) {
            self.peers
                .get(&peer)
                .and_then(|&i| self.neighbors.get(i))
                .map_or_else(
                    || (format!("{peer:?}"), None),
                    |(n, _)| (n.address.to_string(), n.tunnel.clone()),
                )
        };
        let (total, shown) = first_prefixes(sp, &ids, limit);
        let fib = self.fib.as_ref();
        // One cursor per sorted source, advanced in step with the (sorted) prefixes shown.
        let mut best_cur = sp.best_routes().peekable();
        let mut path_curs: Vec<_> = ids
            .iter()
            .map(|id| (*id, sp.received_routes(*id).peekable()))
            .collect();
        let mut prefixes: Vec<Value> = Vec::with_capacity(shown.len());
        for p in &shown {
            let best: &[bh_bgp::speaker::NextHop] = seek(&mut best_cur, p).unwrap_or(&[]);
            let mut paths = Vec::new();
            for (id, cur) in &mut path_curs {
                let Some(path) = seek(cur, p) else {
                    continue;
                };
                let (addr, tunnel) = name(*id);
                let a = &path.attrs;
                paths.push(json!({
                    "neighbor": addr,
                    "tunnel": tunnel,
                    "next_hop": path.next_hop(p).map(|h| h.to_string()),
                    "as_path": a.as_path.as_ref().map_or_else(String::new, as_path_text),
                    "local_pref": a.local_pref,
                    "med": a.med,
                    "best": best.iter().any(|h| h.peer == *id),
                    "stale": path.stale,
                }));
            }
            let installed = match (fib, bh_fib::Prefix::new(p.addr(), p.len())) {
                (Some(f), Ok(kp)) => f.is_installed(&kp),
                _ => false,
            };
            let mut devs: BTreeSet<String> = BTreeSet::new();
            if installed {
                devs.extend(
                    best.iter()
                        .filter_map(|h| devices.get(&h.peer).cloned().flatten()),
                );
            }
            prefixes.push(json!({
                "prefix": p.to_string(),
                "paths": paths,
                "ecmp": best.len(),
                "installed": installed,
                "devices": devs.into_iter().collect::<Vec<_>>(),
            }));
        }
        let advertised: Vec<Value> = sp
            .neighbors()
            .map(|(id, _, state, _, sent)| {
                let (addr, tunnel) = name(id);
                let list: Vec<String> = sp
                    .advertised_routes(id)
                    .take(limit)
                    .map(|(p, _)| p.to_string())
                    .collect();
                json!({
                    "neighbor": addr,
                    "tunnel": tunnel,
                    "state": state_name(state),
                    "total": sent,
                    "prefixes": list,
                    "not_shown": sent.saturating_sub(list.len()),
                })
            })
            .collect();
        let c = fib.map(super::FibSync::counters).unwrap_or_default();
        json!({
            "configured": true,
            "asn": self.bgp.asn,
            "router_id": sp.config().router_id.to_string(),
            "table": self.bgp.table,
            "limit": limit,
            "prefixes_total": total,
            "prefixes": prefixes,
            "prefixes_not_shown": total.saturating_sub(shown.len()),
            "advertised": advertised,
            "fib": { "replaced": c.replaced, "deleted": c.deleted, "conflicts": c.conflicts, "errors": c.errors },
        })
    }
}

/// Advances a sorted `(prefix, value)` cursor past the prefixes before `p` and returns the
/// value at `p`, if the source has it.
fn seek<'a, K: Ord + 'a, V: 'a, I: Iterator<Item = (&'a K, V)>>(
    cur: &mut std::iter::Peekable<I>,
    p: &K,
) -> Option<V> {
    while cur.next_if(|(k, _)| *k < p).is_some() {}
    cur.next_if(|(k, _)| *k == p).map(|(_, v)| v)
}

/// How many distinct prefixes the Loc-RIB and the Adj-RIBs-In hold together, and the first
/// `limit` of them in order. Every source is sorted, so the first `limit` of the union are
/// among the first `limit` of each; the count is a merge that allocates nothing per prefix.
fn first_prefixes(sp: &Speaker, peers: &[PeerId], limit: usize) -> (usize, Vec<bh_bgp::Prefix>) {
    let mut first: BTreeSet<bh_bgp::Prefix> = BTreeSet::new();
    first.extend(sp.best_routes().take(limit).map(|(p, _)| *p));
    for id in peers {
        first.extend(sp.received_routes(*id).take(limit).map(|(p, _)| *p));
    }
    let shown: Vec<bh_bgp::Prefix> = first.into_iter().take(limit).collect();
    // The k-way merge: advance every source past the smallest head, count it once.
    let mut heads: Vec<Box<dyn Iterator<Item = &bh_bgp::Prefix> + '_>> =
        Vec::with_capacity(peers.len() + 1);
    heads.push(Box::new(sp.best_routes().map(|(p, _)| p)));
    for id in peers {
        heads.push(Box::new(sp.received_routes(*id).map(|(p, _)| p)));
    }
    let mut cur: Vec<Option<&bh_bgp::Prefix>> = heads.iter_mut().map(Iterator::next).collect();
    let mut total = 0usize;
    while let Some(min) = cur.iter().flatten().min().copied() {
        total = total.saturating_add(1);
        for (head, it) in cur.iter_mut().zip(heads.iter_mut()) {
            if *head == Some(min) {
                *head = it.next();
            }
        }
    }
    (total, shown)
}

/// An AS_PATH as text: sequences as numbers, sets in braces, confederation segments in
/// parentheses (the usual notation).
fn as_path_text(p: &AsPath) -> String {
    let segs: Vec<String> = p
        .segments
        .iter()
        .map(|s| {
            let asns: Vec<String> = s.asns.iter().map(ToString::to_string).collect();
            match s.kind {
                SegmentKind::Sequence => asns.join(" "),
                SegmentKind::Set => format!("{{{}}}", asns.join(",")),
                SegmentKind::ConfedSequence => format!("({})", asns.join(" ")),
                SegmentKind::ConfedSet => format!("({{{}}})", asns.join(",")),
            }
        })
        .collect();
    segs.join(" ")
}

/// The name of interface `ifindex` from sysfs of the calling namespace, else `ifindex N`.
fn device_name(ifindex: u32) -> String {
    let found = std::fs::read_dir("/sys/class/net").ok().and_then(|dir| {
        dir.flatten().find_map(|e| {
            let idx = std::fs::read_to_string(e.path().join("ifindex")).ok()?;
            (idx.trim().parse::<u32>().ok()? == ifindex)
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
    });
    found.unwrap_or_else(|| format!("ifindex {ifindex}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bh_bgp::wire::AsSegment;

    #[test]
    fn as_paths_in_the_usual_notation() {
        let p = AsPath {
            segments: vec![
                AsSegment {
                    kind: SegmentKind::Sequence,
                    asns: vec![64512, 4_200_000_001],
                },
                AsSegment {
                    kind: SegmentKind::Set,
                    asns: vec![1, 2],
                },
            ],
        };
        assert_eq!(as_path_text(&p), "64512 4200000001 {1,2}");
        assert_eq!(as_path_text(&AsPath::default()), "");
    }
}
