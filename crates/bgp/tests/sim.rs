//! Speakers on a simulated clock exchanging bytes in memory: OPEN negotiation, routes both ways,
//! withdraws, hold-timer expiry, collisions, a bad OPEN, graceful restart, ECMP, transit, limits.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use bh_bgp::rib::PeerId;
use bh_bgp::speaker::{
    ConnId, MaxPrefixAction, NeighborConfig, NextHop, Output, Speaker, SpeakerConfig, SpeakerEvent,
};
use bh_bgp::wire::{self, DecodeCtx, Message, Notification};
use bh_bgp::{Instant, Prefix};

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// One simulated appliance/router.
struct Node {
    addr: IpAddr,
    speaker: Speaker,
    events: Vec<(Instant, SpeakerEvent)>,
    /// NOTIFICATIONs this node sent.
    sent_notifications: Vec<Notification>,
    /// When this node opened connections (`Output::Connect`).
    connects: Vec<Instant>,
}

/// A TCP connection between two nodes: (node, conn) on each end, and who initiated it.
#[derive(Debug, Clone, Copy)]
struct Link {
    a: (usize, ConnId),
    b: (usize, ConnId),
}

struct Net {
    now: Instant,
    nodes: Vec<Node>,
    links: Vec<Link>,
    /// Nodes that are unreachable (bytes and connection attempts vanish, no FIN).
    dead: Vec<bool>,
}

impl Net {
    fn new() -> Self {
        Self {
            now: Instant::from_nanos(1_000_000_000),
            nodes: Vec::new(),
            links: Vec::new(),
            dead: Vec::new(),
        }
    }

    fn add(&mut self, addr: IpAddr, cfg: SpeakerConfig) -> usize {
        self.nodes.push(Node {
            addr,
            speaker: Speaker::new(cfg),
            events: Vec::new(),
            sent_notifications: Vec::new(),
            connects: Vec::new(),
        });
        self.dead.push(false);
        self.nodes.len() - 1
    }

    fn node_by_addr(&self, addr: IpAddr) -> Option<usize> {
        self.nodes.iter().position(|n| n.addr == addr)
    }

    fn peer_end(&self, node: usize, conn: ConnId) -> Option<(usize, ConnId)> {
        self.links.iter().find_map(|l| {
            if l.a == (node, conn) {
                Some(l.b)
            } else if l.b == (node, conn) {
                Some(l.a)
            } else {
                None
            }
        })
    }

    fn unlink(&mut self, node: usize, conn: ConnId) -> Option<(usize, ConnId)> {
        let other = self.peer_end(node, conn)?;
        self.links
            .retain(|l| l.a != (node, conn) && l.b != (node, conn));
        Some(other)
    }

    /// Delivers outputs until every speaker is quiet.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut any = false;
            for i in 0..self.nodes.len() {
                while let Some(o) = self.nodes[i].speaker.poll_output() {
                    any = true;
                    self.deliver(i, o);
                }
            }
            if !any {
                return;
            }
        }
        panic!("network did not settle");
    }

    fn deliver(&mut self, i: usize, o: Output) {
        let now = self.now;
        match o {
            Output::Connect { conn, addr, .. } => {
                self.nodes[i].connects.push(now);
                let target = self.node_by_addr(addr);
                match target {
                    Some(j) if !self.dead[j] && !self.dead[i] => {
                        let from = self.nodes[i].addr;
                        let accepted = self.nodes[j]
                            .speaker
                            .neighbor_by_addr(from)
                            .and_then(|peer| self.nodes[j].speaker.accept(now, peer));
                        match accepted {
                            Some(cj) => {
                                self.links.push(Link {
                                    a: (i, conn),
                                    b: (j, cj),
                                });
                                self.nodes[i].speaker.connected(now, conn);
                            }
                            None => self.nodes[i].speaker.closed(now, conn),
                        }
                    }
                    // Unreachable: the attempt times out (reported at once here).
                    _ => self.nodes[i].speaker.closed(now, conn),
                }
            }
            Output::Send { conn, data } => {
                // Record NOTIFICATIONs sent (type 3 decodes the same in any context).
                let mut off = 0;
                while let Ok(Some(n)) = wire::frame_len(&data[off..]) {
                    if let Ok(Message::Notification(x)) =
                        wire::decode(&data[off..off + n], &DecodeCtx::default())
                    {
                        self.nodes[i].sent_notifications.push(x);
                    }
                    off += n;
                }
                if self.dead[i] {
                    return;
                }
                if let Some((j, cj)) = self.peer_end(i, conn) {
                    if !self.dead[j] {
                        self.nodes[j].speaker.received(now, cj, &data);
                    }
                }
            }
            Output::Close { conn } => {
                if let Some((j, cj)) = self.unlink(i, conn) {
                    if !self.dead[j] && !self.dead[i] {
                        self.nodes[j].speaker.closed(now, cj);
                    }
                }
            }
            Output::Event(e) => self.nodes[i].events.push((now, e)),
        }
    }

    /// Advances the clock to `until`, firing timers in order.
    fn run_until(&mut self, until: Instant) {
        self.settle();
        for _ in 0..100_000 {
            let next = self
                .nodes
                .iter()
                .filter_map(|n| n.speaker.poll_timeout())
                .min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    for n in &mut self.nodes {
                        n.speaker.handle_timeout(now);
                    }
                    self.settle();
                }
                _ => break,
            }
        }
        self.now = until;
    }

    fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Cuts every connection of node `i` as if its TCP sessions reset (no NOTIFICATION).
    fn reset_connections(&mut self, i: usize) {
        let links: Vec<Link> = self
            .links
            .iter()
            .copied()
            .filter(|l| l.a.0 == i || l.b.0 == i)
            .collect();
        self.links.retain(|l| l.a.0 != i && l.b.0 != i);
        let now = self.now;
        for l in links {
            for (n, c) in [l.a, l.b] {
                if !self.dead[n] {
                    self.nodes[n].speaker.closed(now, c);
                }
            }
        }
        self.settle();
    }

    fn best(&self, i: usize) -> HashMap<Prefix, Vec<NextHop>> {
        self.nodes[i]
            .speaker
            .best_routes()
            .map(|(p, h)| (*p, h.to_vec()))
            .collect()
    }

    fn up_events(&self, i: usize) -> usize {
        self.nodes[i]
            .events
            .iter()
            .filter(|(_, e)| matches!(e, SpeakerEvent::PeerUp { .. }))
            .count()
    }
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn neighbor(addr: IpAddr, asn: u32, my_nh: IpAddr, hold: u16) -> NeighborConfig {
    let mut n = NeighborConfig::new(addr, asn);
    n.session.hold_time = hold;
    n.session.connect_retry = secs(5);
    if let IpAddr::V4(a) = my_nh {
        n.next_hop_v4 = Some(a);
    }
    n
}

const A_ADDR: [u8; 4] = [169, 254, 21, 2];
const B_ADDR: [u8; 4] = [169, 254, 21, 1];

/// A (us, 2-octet AS 65010) and B (a cloud with 4-octet AS 4200000001), IPv4+IPv6.
fn two_nodes(a_hold: u16, b_hold: u16, b_passive: bool) -> (Net, usize, usize, PeerId, PeerId) {
    two_nodes_gr(a_hold, b_hold, b_passive, false)
}

/// As [`two_nodes`]; `a_gr_fwd` sets A's graceful restart "forwarding preserved" bit.
fn two_nodes_gr(
    a_hold: u16,
    b_hold: u16,
    b_passive: bool,
    a_gr_fwd: bool,
) -> (Net, usize, usize, PeerId, PeerId) {
    let a_ip = IpAddr::from(A_ADDR);
    let b_ip = IpAddr::from(B_ADDR);
    let mut net = Net::new();
    let mut ca = SpeakerConfig::new(65010, Ipv4Addr::new(10, 0, 0, 2), 7);
    ca.networks = vec![p("10.0.0.0/16"), p("fd10::/48")];
    let mut cb = SpeakerConfig::new(4_200_000_001, Ipv4Addr::new(10, 0, 0, 1), 8);
    cb.networks = vec![p("192.168.0.0/24"), p("fd20::/48")];
    let a = net.add(a_ip, ca);
    let b = net.add(b_ip, cb);
    let now = net.now;
    let mut na = neighbor(b_ip, 4_200_000_001, a_ip, a_hold);
    na.next_hop_v6 = Some("fd00::2".parse().unwrap());
    na.session.graceful_restart_forwarding = a_gr_fwd;
    let mut nb = neighbor(a_ip, 65010, b_ip, b_hold);
    nb.next_hop_v6 = Some("fd00::1".parse().unwrap());
    nb.session.passive = b_passive;
    let pa = net.nodes[a].speaker.add_neighbor(now, na);
    let pb = net.nodes[b].speaker.add_neighbor(now, nb);
    net.settle();
    (net, a, b, pa, pb)
}

#[test]
fn open_negotiation_four_octet_as_and_ipv6_routes_both_ways() {
    let (net, a, b, pa, pb) = two_nodes(90, 30, true);
    let up = net.nodes[a].events.iter().find_map(|(_, e)| match e {
        SpeakerEvent::PeerUp { negotiated, .. } => Some(negotiated.clone()),
        _ => None,
    });
    let neg = up.expect("A reached Established");
    assert!(neg.four_octet_as);
    assert_eq!(neg.peer_asn, 4_200_000_001);
    assert_eq!(neg.hold_time, 30, "smallest hold time wins");
    assert_eq!(neg.keepalive, 10);
    assert!(neg.families.contains(&bh_bgp::Family::IPV6_UNICAST));
    // Routes both ways, IPv4 and IPv6, with the advertised next hops.
    let ra = net.best(a);
    assert_eq!(
        ra[&p("192.168.0.0/24")],
        vec![NextHop {
            addr: IpAddr::from(B_ADDR),
            peer: pa
        }]
    );
    assert_eq!(
        ra[&p("fd20::/48")],
        vec![NextHop {
            addr: "fd00::1".parse::<Ipv6Addr>().unwrap().into(),
            peer: pa
        }]
    );
    let rb = net.best(b);
    assert_eq!(
        rb[&p("10.0.0.0/16")],
        vec![NextHop {
            addr: IpAddr::from(A_ADDR),
            peer: pb
        }]
    );
    assert!(rb.contains_key(&p("fd10::/48")));
    // B sees A's AS path as [65010] (eBGP prepend of our AS).
    let (_, path) = net.nodes[b]
        .speaker
        .received_routes(pb)
        .find(|(pf, _)| **pf == p("10.0.0.0/16"))
        .unwrap();
    assert_eq!(
        path.attrs.as_path.as_ref().unwrap().segments[0].asns,
        vec![65010]
    );
    assert_eq!(net.nodes[a].speaker.advertised_routes(pa).count(), 2);
}

#[test]
fn withdraw_reaches_the_peer_and_its_fib_event() {
    let (mut net, a, b, _, _) = two_nodes(90, 90, true);
    let now = net.now;
    net.nodes[a].speaker.set_networks(now, vec![p("fd10::/48")]);
    net.settle();
    assert!(!net.best(b).contains_key(&p("10.0.0.0/16")));
    assert!(net.best(b).contains_key(&p("fd10::/48")));
    assert!(net.nodes[b].events.iter().any(|(_, e)| matches!(e,
        SpeakerEvent::BestRoutesChanged { prefix, next_hops } if *prefix == p("10.0.0.0/16") && next_hops.is_empty())));
}

#[test]
fn keepalives_hold_the_session_for_hours() {
    let (mut net, a, b, _, _) = two_nodes(30, 30, true);
    net.run_for(secs(3 * 3600));
    assert_eq!(net.up_events(a), 1);
    assert_eq!(net.up_events(b), 1);
    assert_eq!(net.best(a).len(), 2);
}

#[test]
fn hold_timer_expiry_removes_the_dead_peers_routes() {
    let (mut net, a, b, _, _) = two_nodes(30, 30, true);
    assert!(net.best(b).contains_key(&p("10.0.0.0/16")));
    let killed_at = net.now;
    net.dead[a] = true; // A vanishes without a FIN
    net.run_for(secs(60));
    let gone_at = net.nodes[b]
        .events
        .iter()
        .find_map(|(t, e)| match e {
            SpeakerEvent::BestRoutesChanged { prefix, next_hops }
                if *prefix == p("10.0.0.0/16") && next_hops.is_empty() =>
            {
                Some(*t)
            }
            _ => None,
        })
        .expect("route withdrawn after hold expiry");
    let after = gone_at.saturating_duration_since(killed_at);
    assert!(after <= secs(30) && after >= secs(20), "{after:?}");
    assert!(
        net.nodes[b].sent_notifications.iter().any(|n| n.code == 4),
        "B sent Hold Timer Expired"
    );
    assert!(net.best(b).is_empty());
}

#[test]
fn bad_peer_as_yields_open_error_2_2() {
    let a_ip = IpAddr::from(A_ADDR);
    let b_ip = IpAddr::from(B_ADDR);
    let mut net = Net::new();
    let a = net.add(
        a_ip,
        SpeakerConfig::new(65010, Ipv4Addr::new(10, 0, 0, 2), 1),
    );
    let b = net.add(
        b_ip,
        SpeakerConfig::new(64512, Ipv4Addr::new(10, 0, 0, 1), 2),
    );
    let now = net.now;
    net.nodes[a]
        .speaker
        .add_neighbor(now, neighbor(b_ip, 64512, a_ip, 90));
    // B expects AS 65099 from A.
    let mut nb = neighbor(a_ip, 65099, b_ip, 90);
    nb.session.passive = true;
    net.nodes[b].speaker.add_neighbor(now, nb);
    net.settle();
    let n = &net.nodes[b].sent_notifications;
    assert!(n.iter().any(|n| (n.code, n.subcode) == (2, 2)), "{n:?}");
    assert_eq!(net.up_events(a), 0);
    assert_eq!(net.up_events(b), 0);
    // A retries, and is refused again, without ever coming up.
    net.run_for(secs(60));
    assert!(
        net.nodes[b]
            .sent_notifications
            .iter()
            .filter(|n| (n.code, n.subcode) == (2, 2))
            .count()
            >= 2
    );
    assert_eq!(net.up_events(a), 0);
}

#[test]
fn connection_collision_keeps_the_higher_identifiers_connection() {
    // Both sides active: each connects to the other at the same time.
    let (mut net, a, b, _, _) = two_nodes(90, 90, false);
    net.run_for(secs(5));
    assert_eq!(net.links.len(), 1, "one connection survives");
    let l = net.links[0];
    // A has the higher BGP Identifier (10.0.0.2), so A's outgoing connection is kept.
    assert_eq!(l.a.0, a, "kept connection was initiated by A");
    let cease7 = |i: usize| {
        net.nodes[i]
            .sent_notifications
            .iter()
            .filter(|n| (n.code, n.subcode) == (6, 7))
            .count()
    };
    assert_eq!(
        cease7(a) + cease7(b),
        1,
        "one Cease/Connection Collision Resolution"
    );
    assert_eq!(net.up_events(a), 1);
    assert_eq!(net.up_events(b), 1);
    assert!(net.best(a).contains_key(&p("192.168.0.0/24")));
    assert!(net.best(b).contains_key(&p("10.0.0.0/16")));
    net.run_for(secs(600));
    assert_eq!(net.up_events(a), 1, "no flap afterwards");
}

#[test]
fn graceful_restart_helper_keeps_routes_until_end_of_rib() {
    let (mut net, a, b, _, _) = two_nodes_gr(90, 90, true, true);
    let events_before = net.nodes[b].events.len();
    // A's process restarts: TCP resets, no NOTIFICATION. It comes back without 10.0.0.0/16.
    net.reset_connections(a);
    let down = net.nodes[b].events[events_before..]
        .iter()
        .find_map(|(_, e)| match e {
            SpeakerEvent::PeerDown {
                graceful_restart, ..
            } => Some(*graceful_restart),
            _ => None,
        });
    assert_eq!(down, Some(true));
    assert!(
        net.best(b).contains_key(&p("10.0.0.0/16")),
        "stale route kept during restart"
    );
    let mut ca = SpeakerConfig::new(65010, Ipv4Addr::new(10, 0, 0, 2), 9);
    ca.networks = vec![p("fd10::/48")];
    net.nodes[a].speaker = Speaker::new(ca);
    let now = net.now;
    let mut na = neighbor(
        IpAddr::from(B_ADDR),
        4_200_000_001,
        IpAddr::from(A_ADDR),
        90,
    );
    na.next_hop_v6 = Some("fd00::2".parse().unwrap());
    na.session.graceful_restart_forwarding = true;
    net.nodes[a].speaker.add_neighbor(now, na);
    net.run_for(secs(10));
    // fd10::/48 never left B's Loc-RIB (no withdraw event for it during the restart).
    assert!(!net.nodes[b].events.iter().any(|(_, e)| matches!(e,
        SpeakerEvent::BestRoutesChanged { prefix, next_hops } if *prefix == p("fd10::/48") && next_hops.is_empty())));
    // After A's End-of-RIB, the stale prefix it no longer announces is gone, the other stays.
    assert!(!net.best(b).contains_key(&p("10.0.0.0/16")));
    assert!(net.best(b).contains_key(&p("fd10::/48")));
    assert_eq!(net.up_events(b), 2);
}

#[test]
fn graceful_restart_stale_routes_expire_with_the_restart_time() {
    let (mut net, a, b, _, _) = two_nodes_gr(90, 90, true, true);
    let t0 = net.now;
    net.dead[a] = true;
    net.reset_connections(a);
    net.run_for(secs(100));
    assert!(
        net.best(b).contains_key(&p("10.0.0.0/16")),
        "kept within the 120 s restart time"
    );
    net.run_for(secs(30));
    assert!(net.best(b).is_empty(), "dropped after the restart time");
    let gone = net.nodes[b]
        .events
        .iter()
        .rev()
        .find_map(|(t, e)| matches!(e, SpeakerEvent::BestRoutesChanged { .. }).then_some(*t))
        .unwrap();
    assert_eq!(gone.saturating_duration_since(t0), secs(120));
}

/// Three nodes: `us` peers with two cloud gateways in the same AS.
fn ecmp_net(max_paths: usize) -> (Net, usize) {
    let mut net = Net::new();
    let us_ip = v4(169, 254, 10, 2);
    let mut cfg = SpeakerConfig::new(65010, Ipv4Addr::new(10, 0, 0, 9), 3);
    cfg.max_paths = max_paths;
    let us = net.add(us_ip, cfg);
    for (k, ip) in [v4(169, 254, 10, 1), v4(169, 254, 11, 1)]
        .into_iter()
        .enumerate()
    {
        let mut c = SpeakerConfig::new(
            64512,
            Ipv4Addr::new(10, 0, 1, u8::try_from(k).unwrap() + 1),
            4 + k as u64,
        );
        c.networks = vec![p("172.31.0.0/16")];
        let g = net.add(ip, c);
        let now = net.now;
        let mut n = neighbor(us_ip, 65010, ip, 30);
        n.session.passive = true;
        net.nodes[g].speaker.add_neighbor(now, n);
        net.nodes[us]
            .speaker
            .add_neighbor(now, neighbor(ip, 64512, us_ip, 30));
    }
    net.settle();
    (net, us)
}

#[test]
fn two_sessions_to_one_as_give_one_multipath_route() {
    let (net, us) = ecmp_net(4);
    let hops = &net.best(us)[&p("172.31.0.0/16")];
    let addrs: Vec<IpAddr> = hops.iter().map(|h| h.addr).collect();
    assert_eq!(addrs, vec![v4(169, 254, 10, 1), v4(169, 254, 11, 1)]);
    let (net, us) = ecmp_net(1);
    assert_eq!(net.best(us)[&p("172.31.0.0/16")].len(), 1);
}

#[test]
fn losing_one_ecmp_path_keeps_the_other() {
    let (mut net, us) = ecmp_net(4);
    net.dead[1] = true;
    net.run_for(secs(40));
    let hops = &net.best(us)[&p("172.31.0.0/16")];
    assert_eq!(
        hops.iter().map(|h| h.addr).collect::<Vec<_>>(),
        vec![v4(169, 254, 11, 1)]
    );
}

#[test]
fn transit_readvertises_learned_routes_with_our_as_prepended() {
    // cloud1 (64512) -- us (65010, transit, prepend 2 toward cloud2) -- cloud2 (65515)
    let mut net = Net::new();
    let us_ip1 = v4(169, 254, 21, 2);
    let us_ip2 = v4(169, 254, 22, 2);
    let c1_ip = v4(169, 254, 21, 1);
    let c2_ip = v4(169, 254, 22, 1);
    let mut cu = SpeakerConfig::new(65010, Ipv4Addr::new(10, 0, 0, 9), 1);
    cu.transit = true;
    let us = net.add(us_ip1, cu);
    let mut c1c = SpeakerConfig::new(64512, Ipv4Addr::new(10, 0, 0, 1), 2);
    c1c.networks = vec![p("10.100.0.0/16")];
    let c1 = net.add(c1_ip, c1c);
    let c2 = net.add(
        c2_ip,
        SpeakerConfig::new(65515, Ipv4Addr::new(10, 0, 0, 2), 3),
    );
    let now = net.now;
    net.nodes[us]
        .speaker
        .add_neighbor(now, neighbor(c1_ip, 64512, us_ip1, 30));
    let mut to_c2 = neighbor(c2_ip, 65515, us_ip2, 30);
    to_c2.prepend = 2;
    to_c2.med = Some(50);
    net.nodes[us].speaker.add_neighbor(now, to_c2);
    let mut n1 = neighbor(us_ip1, 65010, c1_ip, 30);
    n1.session.passive = true;
    net.nodes[c1].speaker.add_neighbor(now, n1);
    // The harness knows one address per node, so c2 reaches us at us_ip1.
    let mut n2 = neighbor(us_ip1, 65010, c2_ip, 30);
    n2.address = us_ip1;
    net.nodes[c2].speaker.add_neighbor(now, n2);
    net.settle();
    let _ = net.nodes[us].speaker.neighbor_by_addr(c2_ip).unwrap();
    let best = net.best(c2);
    let hop = &best
        .get(&p("10.100.0.0/16"))
        .expect("c2 learned c1's route through us")[0];
    assert_eq!(hop.addr, us_ip2);
    let (_, path) = net.nodes[c2]
        .speaker
        .received_routes(hop.peer)
        .next()
        .unwrap();
    assert_eq!(
        path.attrs.as_path.as_ref().unwrap().segments[0].asns,
        vec![65010, 65010, 65010, 64512]
    );
    assert_eq!(path.attrs.med, Some(50));
    // The route is not sent back to c1.
    assert!(net.best(c1).is_empty());
}

#[test]
fn max_prefix_teardown_and_warn_and_advertisement_guard() {
    for action in [MaxPrefixAction::Teardown, MaxPrefixAction::Warn] {
        let a_ip = IpAddr::from(A_ADDR);
        let b_ip = IpAddr::from(B_ADDR);
        let mut net = Net::new();
        let mut ca = SpeakerConfig::new(65010, Ipv4Addr::new(10, 0, 0, 2), 1);
        ca.networks = (0..10u8)
            .map(|i| Prefix::new(v4(10, i, 0, 0), 16).unwrap())
            .collect();
        let a = net.add(a_ip, ca);
        let b = net.add(
            b_ip,
            SpeakerConfig::new(64512, Ipv4Addr::new(10, 0, 0, 1), 2),
        );
        let now = net.now;
        let mut na = neighbor(b_ip, 64512, a_ip, 90);
        na.max_advertised = Some(8); // AWS VGW would be 100
        net.nodes[a].speaker.add_neighbor(now, na);
        let mut nb = neighbor(a_ip, 65010, b_ip, 90);
        nb.session.passive = true;
        nb.max_prefix = Some((5, action));
        net.nodes[b].speaker.add_neighbor(now, nb);
        net.settle();
        assert!(
            net.nodes[a]
                .events
                .iter()
                .any(|(_, e)| matches!(e, SpeakerEvent::AdvertisementLimited { limit: 8, .. }))
        );
        assert!(
            net.nodes[b]
                .events
                .iter()
                .any(|(_, e)| matches!(e, SpeakerEvent::MaxPrefixExceeded { limit: 5, .. }))
        );
        match action {
            MaxPrefixAction::Teardown => {
                assert!(
                    net.nodes[b]
                        .sent_notifications
                        .iter()
                        .any(|n| (n.code, n.subcode) == (6, 1))
                );
                assert!(net.best(b).is_empty());
            }
            MaxPrefixAction::Warn => {
                assert_eq!(
                    net.best(b).len(),
                    5,
                    "kept up to the limit, ignored the rest"
                );
                assert_eq!(net.up_events(b), 1);
            }
        }
    }
}

#[test]
fn import_and_export_prefix_lists() {
    use bh_bgp::rib::PrefixList;
    let a_ip = IpAddr::from(A_ADDR);
    let b_ip = IpAddr::from(B_ADDR);
    let mut net = Net::new();
    let mut ca = SpeakerConfig::new(65010, Ipv4Addr::new(10, 0, 0, 2), 1);
    ca.networks = vec![p("10.1.0.0/16"), p("10.2.0.0/16"), p("10.3.0.0/16")];
    let a = net.add(a_ip, ca);
    let b = net.add(
        b_ip,
        SpeakerConfig::new(64512, Ipv4Addr::new(10, 0, 0, 1), 2),
    );
    let now = net.now;
    let mut na = neighbor(b_ip, 64512, a_ip, 90);
    na.export = Some(PrefixList::permit(
        &[p("10.1.0.0/16"), p("10.2.0.0/16")],
        24,
        64,
    ));
    net.nodes[a].speaker.add_neighbor(now, na);
    let mut nb = neighbor(a_ip, 65010, b_ip, 90);
    nb.session.passive = true;
    nb.import = Some(PrefixList::permit(&[p("10.2.0.0/15")], 24, 64));
    net.nodes[b].speaker.add_neighbor(now, nb);
    net.settle();
    let got: Vec<Prefix> = net.best(b).into_keys().collect();
    assert_eq!(got, vec![p("10.2.0.0/16")]);
}

#[test]
fn graceful_restart_without_forwarding_bit_drops_stale_routes_on_reconnect() {
    let (mut net, a, b, _, _) = two_nodes(90, 90, true);
    net.reset_connections(a);
    assert!(
        net.best(b).contains_key(&p("10.0.0.0/16")),
        "kept while the peer restarts"
    );
    // A comes back announcing nothing and never sends routes for 10.0.0.0/16 again: since it did
    // not preserve forwarding state, B drops the stale route as soon as the session is back.
    let mut ca = SpeakerConfig::new(65010, Ipv4Addr::new(10, 0, 0, 2), 9);
    ca.networks = vec![];
    net.nodes[a].speaker = Speaker::new(ca);
    let now = net.now;
    net.nodes[a].speaker.add_neighbor(
        now,
        neighbor(
            IpAddr::from(B_ADDR),
            4_200_000_001,
            IpAddr::from(A_ADDR),
            90,
        ),
    );
    net.run_for(secs(10));
    assert!(net.best(b).is_empty());
}

#[test]
fn a_notification_means_no_graceful_restart() {
    let (mut net, a, b, pa, _) = two_nodes_gr(90, 90, true, true);
    let now = net.now;
    net.nodes[a].speaker.remove_neighbor(now, pa); // Cease/Peer De-configured
    net.settle();
    assert!(
        net.best(b).is_empty(),
        "routes withdrawn at once after a NOTIFICATION"
    );
}

#[test]
fn a_larger_table_arrives_whole_and_leaves_whole() {
    let (mut net, a, b, _, _) = two_nodes(90, 90, true);
    let n: u32 = 20_000;
    let table: Vec<Prefix> = (0..n)
        .map(|i| Prefix::new(IpAddr::V4(Ipv4Addr::from(0x0b00_0000 | (i << 8))), 24).unwrap())
        .collect();
    let now = net.now;
    net.nodes[a].speaker.set_networks(now, table.clone());
    net.settle();
    let best = net.best(b);
    assert!(table.iter().all(|p| {
        best.get(p)
            .is_some_and(|h| h[0].addr == IpAddr::from(A_ADDR))
    }));
    assert_eq!(
        best.len(),
        table.len(),
        "A's earlier networks were replaced"
    );
    net.nodes[a].speaker.set_networks(now, vec![]);
    net.settle();
    assert!(net.best(b).is_empty());
}

#[test]
fn ibgp_pair_exchanges_networks_with_local_pref_and_prefers_ebgp() {
    // Two appliances of an HA pair (AS 65010) over iBGP; the second also hears the same
    // prefix from a cloud over eBGP.
    let mut net = Net::new();
    let h1_ip = v4(10, 0, 0, 1);
    let h2_ip = v4(10, 0, 0, 2);
    let cloud_ip = v4(169, 254, 30, 1);
    let mut c1 = SpeakerConfig::new(65010, Ipv4Addr::new(10, 0, 0, 1), 1);
    c1.networks = vec![p("172.20.0.0/16")];
    let h1 = net.add(h1_ip, c1);
    let h2 = net.add(
        h2_ip,
        SpeakerConfig::new(65010, Ipv4Addr::new(10, 0, 0, 2), 2),
    );
    let mut cc = SpeakerConfig::new(64512, Ipv4Addr::new(10, 9, 9, 9), 3);
    cc.networks = vec![p("172.20.0.0/16")];
    let cloud = net.add(cloud_ip, cc);
    let now = net.now;
    net.nodes[h1]
        .speaker
        .add_neighbor(now, neighbor(h2_ip, 65010, h1_ip, 30));
    let mut n = neighbor(h1_ip, 65010, h2_ip, 30);
    n.session.passive = true;
    let via_h1 = net.nodes[h2].speaker.add_neighbor(now, n);
    net.settle();
    let (_, path) = net.nodes[h2]
        .speaker
        .received_routes(via_h1)
        .next()
        .expect("iBGP route");
    assert_eq!(
        path.attrs.as_path,
        Some(bh_bgp::wire::AsPath::default()),
        "no prepend on iBGP"
    );
    assert_eq!(path.attrs.local_pref, Some(100));
    assert_eq!(net.best(h2)[&p("172.20.0.0/16")][0].addr, h1_ip);
    // The cloud announces the same prefix to h2 over eBGP. eBGP-over-iBGP comes only after AS
    // path length (§9.1.2.2), so the iBGP path (length 0) still beats the cloud's (length 1).
    let mut nc = neighbor(cloud_ip, 64512, h2_ip, 30);
    nc.session.passive = true;
    net.nodes[h2].speaker.add_neighbor(now, nc);
    net.nodes[cloud]
        .speaker
        .add_neighbor(now, neighbor(h2_ip, 65010, cloud_ip, 30));
    net.settle();
    assert_eq!(net.best(h2)[&p("172.20.0.0/16")].len(), 1);
    assert_eq!(
        net.best(h2)[&p("172.20.0.0/16")][0].addr,
        h1_ip,
        "shorter AS path first"
    );
    // When h1 stops originating it, the cloud's eBGP path takes over.
    net.nodes[h1].speaker.set_networks(now, vec![]);
    net.settle();
    assert_eq!(net.best(h2)[&p("172.20.0.0/16")][0].addr, cloud_ip);
}

/// Configuration reload: a neighbor whose session parameters change is reset with
/// Cease/Other Configuration Change (RFC 4486 subcode 6) and comes back; a removed one gets
/// Cease/Peer De-configured (subcode 3).
#[test]
fn replacing_a_neighbor_resets_it_with_other_configuration_change() {
    let (mut net, a, b, pa, _) = two_nodes(90, 90, true);
    assert_eq!(net.up_events(a), 1);
    let now = net.now;
    let mut cfg = neighbor(
        IpAddr::from(B_ADDR),
        4_200_000_001,
        IpAddr::from(A_ADDR),
        30,
    );
    cfg.next_hop_v6 = Some("fd00::2".parse().unwrap());
    let new = net.nodes[a].speaker.replace_neighbor(now, pa, cfg);
    let before = net.nodes[a].connects.len();
    net.run_for(secs(10));
    // Its next connection waited, so that B read the Cease before it (a graceful-restart
    // peer takes a new connection during an established session as our restart).
    let first = net.nodes[a].connects.get(before).copied();
    assert!(
        first.is_some_and(|t| t >= now + bh_bgp::speaker::RESET_RECONNECT_DELAY),
        "reconnected at {first:?}, reset at {now:?}"
    );
    let sent: Vec<(u8, u8)> = net.nodes[a]
        .sent_notifications
        .iter()
        .map(|n| (n.code, n.subcode))
        .collect();
    assert_eq!(sent, vec![(6, 6)]);
    assert_eq!(net.up_events(a), 2, "the session came back");
    let (_, cfg, state, _, _) = net.nodes[a].speaker.neighbors().next().unwrap();
    assert_eq!(
        (cfg.session.hold_time, state),
        (30, bh_bgp::session::State::Established)
    );
    assert!(
        net.best(a)[&p("192.168.0.0/24")]
            .iter()
            .all(|h| h.peer == new)
    );
    assert!(net.best(b).contains_key(&p("10.0.0.0/16")));

    let now = net.now;
    net.nodes[a].speaker.remove_neighbor(now, new);
    net.run_for(secs(1));
    assert_eq!(
        net.nodes[a]
            .sent_notifications
            .last()
            .map(|n| (n.code, n.subcode)),
        Some((6, 3))
    );
    assert!(net.best(a).is_empty());
}

/// Configuration reload: export policy, prepend and import changes apply to the running
/// session with UPDATEs, withdrawals and a ROUTE-REFRESH, with no reset.
#[test]
fn policy_changes_apply_without_a_reset() {
    use bh_bgp::rib::PrefixList;
    let (mut net, a, b, pa, pb) = two_nodes(90, 90, true);
    assert!(net.best(b).contains_key(&p("10.0.0.0/16")));
    // Export: A stops sending 10.0.0.0/16 (fd10::/48 stays) and prepends twice.
    let now = net.now;
    let mut cfg = neighbor(
        IpAddr::from(B_ADDR),
        4_200_000_001,
        IpAddr::from(A_ADDR),
        90,
    );
    cfg.export = Some(PrefixList::permit(&[p("fd10::/48")], 64, 64));
    cfg.prepend = 2;
    net.nodes[a].speaker.set_policy(now, pa, &cfg);
    net.settle();
    assert!(!net.best(b).contains_key(&p("10.0.0.0/16")));
    let (_, path) = net.nodes[b]
        .speaker
        .received_routes(pb)
        .find(|(pf, _)| **pf == p("fd10::/48"))
        .unwrap();
    assert_eq!(
        path.attrs.as_path.as_ref().unwrap().segments[0].asns,
        vec![65010, 65010, 65010]
    );
    // Import: A denies 192.168.0.0/24, then permits it again (learned by ROUTE-REFRESH).
    cfg.import = Some(PrefixList::permit(&[p("fd20::/48")], 64, 64));
    let now = net.now;
    net.nodes[a].speaker.set_policy(now, pa, &cfg);
    net.settle();
    assert!(!net.best(a).contains_key(&p("192.168.0.0/24")));
    assert!(net.best(a).contains_key(&p("fd20::/48")));
    cfg.import = None;
    let now = net.now;
    net.nodes[a].speaker.set_policy(now, pa, &cfg);
    net.settle();
    assert!(net.best(a).contains_key(&p("192.168.0.0/24")));
    assert_eq!(net.up_events(a), 1, "no reset");
    assert_eq!(net.up_events(b), 1, "no reset");
    assert!(net.nodes[a].sent_notifications.is_empty());
    assert!(net.nodes[b].sent_notifications.is_empty());
}

/// With transit on, a route learned from one AWS tunnel (AS 64512) is not sent to the other
/// tunnel to the same AS: the cloud would drop it (its AS is in the path) and count it against
/// its prefix limit. A neighbor in another AS still gets it.
#[test]
fn transit_sends_no_route_to_a_neighbor_whose_as_is_in_the_path() {
    let mut net = Net::new();
    let us_ip = v4(169, 254, 10, 2);
    let mut cfg = SpeakerConfig::new(65010, Ipv4Addr::new(10, 0, 0, 9), 3);
    cfg.transit = true;
    let us = net.add(us_ip, cfg);
    let gws = [
        (v4(169, 254, 10, 1), 64512, vec![p("172.16.0.0/16")]),
        (v4(169, 254, 11, 1), 64512, vec![]),
        (v4(169, 254, 21, 1), 65515, vec![]),
    ];
    for (k, (ip, asn, networks)) in gws.iter().enumerate() {
        let mut c = SpeakerConfig::new(
            *asn,
            Ipv4Addr::new(10, 0, 1, u8::try_from(k).unwrap() + 1),
            4 + k as u64,
        );
        c.networks = networks.clone();
        let g = net.add(*ip, c);
        let now = net.now;
        let mut n = neighbor(us_ip, 65010, *ip, 30);
        n.session.passive = true;
        net.nodes[g].speaker.add_neighbor(now, n);
        net.nodes[us]
            .speaker
            .add_neighbor(now, neighbor(*ip, *asn, us_ip, 30));
    }
    net.settle();
    let sent_to = |ip: IpAddr| -> Vec<Prefix> {
        let peer = net.nodes[us].speaker.neighbor_by_addr(ip).unwrap();
        net.nodes[us]
            .speaker
            .advertised_routes(peer)
            .map(|(p, _)| *p)
            .collect()
    };
    assert!(sent_to(gws[1].0).is_empty(), "{:?}", sent_to(gws[1].0));
    assert_eq!(sent_to(gws[2].0), vec![p("172.16.0.0/16")]);
}
