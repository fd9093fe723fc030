//! Fuzzing support: a seed corpus of valid messages, a deterministic mutator, and entry points
//! that push arbitrary bytes through the decoder and into an Established session. The stable
//! `#[test]` in `tests/fuzz.rs` replays 20,000 seeded inputs; a cargo-fuzz target can call
//! [`decode_any`] and [`Lab::inject`] directly.
//!
//! Nothing here is used by the speaker itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::rib::PeerId;
use crate::session::{Session, SessionConfig, State};
use crate::speaker::{ConnId, NeighborConfig, Output, Speaker, SpeakerConfig};
use crate::wire::{
    self, Aggregator, AsPath, AsSegment, Capability, DecodeCtx, Message, MpReach, MpUnreach,
    Notification, Open, Origin, PathAttributes, RawAttribute, RouteRefresh, SegmentKind, Update,
};
use crate::{Family, Instant, Prefix};

/// A small deterministic PRNG (xorshift64*), so fuzz runs replay exactly.
#[derive(Debug, Clone)]
pub struct FuzzRng(u64);

impl FuzzRng {
    /// Seeded generator (a zero seed is bumped to one).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform-ish value below `n` (0 if `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            usize::try_from(self.next_u64() % n as u64).unwrap_or(0)
        }
    }
    fn byte(&mut self) -> u8 {
        self.next_u64().to_le_bytes()[0]
    }
}

fn pfx(a: IpAddr, l: u8) -> Prefix {
    Prefix::new(a, l).unwrap_or_else(|_| Prefix::new(a, 0).unwrap_or_else(|_| unreachable_prefix()))
}

fn unreachable_prefix() -> Prefix {
    // Length 0 is valid for every family, so this is never reached; keep a total function anyway.
    Prefix::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).unwrap_or_else(|_| unreachable_prefix())
}

/// Valid messages covering every message type and attribute, encoded for `ctx`.
pub fn corpus(ctx: &DecodeCtx) -> Vec<Vec<u8>> {
    let v4 = |a, b, c, d, l| pfx(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), l);
    let v6 = |s: &str, l| pfx(IpAddr::V6(s.parse().unwrap_or(Ipv6Addr::UNSPECIFIED)), l);
    let full = PathAttributes {
        origin: Some(Origin::Egp),
        as_path: Some(AsPath {
            segments: vec![
                AsSegment {
                    kind: SegmentKind::Sequence,
                    asns: vec![64512, 4_200_000_001],
                },
                AsSegment {
                    kind: SegmentKind::Set,
                    asns: vec![1, 2, 3],
                },
            ],
        }),
        next_hop: Some(Ipv4Addr::new(169, 254, 21, 1)),
        med: Some(100),
        local_pref: Some(200),
        atomic_aggregate: true,
        aggregator: Some(Aggregator {
            asn: 4_200_000_001,
            addr: Ipv4Addr::new(10, 0, 0, 1),
        }),
        communities: vec![0xfde8_0001, 0xffff_ff01],
        large_communities: vec![[4_200_000_001, 1, 2]],
        mp_reach: None,
        mp_unreach: None,
        unknown: vec![RawAttribute {
            flags: 0xc0,
            type_code: 99,
            value: vec![1, 2, 3],
        }],
    };
    let msgs = [
        Message::Open(Open::new(
            65010,
            30,
            Ipv4Addr::new(10, 0, 0, 2),
            vec![
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::Multiprotocol(Family::IPV6_UNICAST),
                Capability::RouteRefresh,
                Capability::Unknown {
                    code: 70,
                    value: vec![],
                },
            ],
        )),
        Message::Keepalive,
        Message::Notification(Notification {
            code: 6,
            subcode: 2,
            data: b"bye".to_vec(),
        }),
        Message::RouteRefresh(RouteRefresh {
            family: Family::IPV6_UNICAST,
            subtype: 0,
        }),
        Message::Update(Update {
            withdrawn: vec![v4(10, 9, 0, 0, 16)],
            attrs: full.clone(),
            nlri: vec![
                v4(10, 1, 0, 0, 16),
                v4(192, 168, 7, 0, 24),
                v4(0, 0, 0, 0, 0),
            ],
            errors: vec![],
        }),
        Message::Update(Update {
            attrs: PathAttributes {
                next_hop: None,
                mp_reach: Some(MpReach {
                    family: Family::IPV6_UNICAST,
                    next_hop: IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
                    link_local: Some(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
                    nlri: vec![v6("2001:db8::", 32), v6("fd20::", 48)],
                }),
                mp_unreach: Some(MpUnreach {
                    family: Family::IPV6_UNICAST,
                    withdrawn: vec![v6("fd30::", 64)],
                }),
                ..full
            },
            ..Default::default()
        }),
        Message::Update(Update {
            withdrawn: vec![v4(10, 1, 0, 0, 16)],
            ..Default::default()
        }),
        Message::Update(Update::end_of_rib_for(Family::IPV6_UNICAST)),
    ];
    msgs.iter()
        .filter_map(|m| wire::encode_to_vec(m, ctx).ok())
        .collect()
}

/// Produces one fuzz input: a mutated corpus message, several messages glued together, or
/// random bytes behind a valid header.
pub fn mutate(rng: &mut FuzzRng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let pick = |rng: &mut FuzzRng| {
        corpus
            .get(rng.below(corpus.len()))
            .cloned()
            .unwrap_or_default()
    };
    let mut m = pick(rng);
    match rng.below(7) {
        0 => {
            for _ in 0..=rng.below(4) {
                let i = rng.below(m.len());
                if let Some(b) = m.get_mut(i) {
                    *b ^= 1 << rng.below(8);
                }
            }
        }
        1 => {
            // Flip bytes in the body only, keeping the header valid.
            for _ in 0..=rng.below(8) {
                let i = 19 + rng.below(m.len().saturating_sub(19));
                let v = rng.byte();
                if let Some(b) = m.get_mut(i) {
                    *b = v;
                }
            }
        }
        2 => {
            let keep = rng.below(m.len() + 1);
            m.truncate(keep);
            fix_len(&mut m);
        }
        3 => {
            for _ in 0..rng.below(40) {
                m.push(rng.byte());
            }
            fix_len(&mut m);
        }
        4 => {
            // Lie in the message length.
            let l = u16::try_from(rng.below(5000)).unwrap_or(0);
            if let Some(s) = m.get_mut(16..18) {
                s.copy_from_slice(&l.to_be_bytes());
            }
        }
        5 => {
            let mut n = pick(rng);
            m.append(&mut n);
        }
        _ => {
            let ty = u8::try_from(1 + rng.below(5)).unwrap_or(1);
            let mut body: Vec<u8> = (0..rng.below(120)).map(|_| rng.byte()).collect();
            m = wire::MARKER.to_vec();
            m.extend_from_slice(&[0, 0, ty]);
            m.append(&mut body);
            fix_len(&mut m);
        }
    }
    m
}

fn fix_len(m: &mut [u8]) {
    if let (Ok(l), Some(s)) = (u16::try_from(m.len()), m.get_mut(16..18)) {
        s.copy_from_slice(&l.to_be_bytes());
    }
}

/// Runs bytes through framing and decoding in both contexts, and re-encodes what decodes.
/// Returns how many messages decoded. Must never panic.
pub fn decode_any(data: &[u8]) -> usize {
    let mut ok = 0;
    for ctx in [
        DecodeCtx {
            four_octet_as: false,
        },
        DecodeCtx {
            four_octet_as: true,
        },
    ] {
        let mut off = 0usize;
        while let Ok(Some(n)) = wire::frame_len(data.get(off..).unwrap_or_default()) {
            let Some(msg) = data.get(off..off + n) else {
                break;
            };
            if let Ok(m) = wire::decode(msg, &ctx) {
                ok += 1;
                let _ = wire::encode_to_vec(&m, &ctx);
            }
            off += n;
        }
        let _ = wire::decode(data, &ctx);
    }
    ok
}

/// A speaker under test ("us") with two neighbors driven by plain [`Session`]s: garbage is
/// injected on the first neighbor's connection while the second carries a route that must
/// survive.
#[derive(Debug)]
pub struct Lab {
    /// The clock.
    pub now: Instant,
    /// The speaker under test.
    pub us: Speaker,
    peers: Vec<(PeerId, Session, Option<ConnId>)>,
    /// Events the speaker emitted, oldest first (bounded: cleared past 10,000).
    pub events: Vec<crate::speaker::SpeakerEvent>,
    /// UPDATEs the neighbors received from the speaker: (neighbor index 0 or 1, UPDATE),
    /// bounded like `events`.
    pub peer_updates: Vec<(usize, Update)>,
}

/// The route the second neighbor announces.
pub fn lab_route() -> Prefix {
    pfx(IpAddr::V4(Ipv4Addr::new(172, 16, 0, 0)), 12)
}

impl Lab {
    /// Brings up both neighbors and has the second announce [`lab_route`].
    pub fn new(seed: u64) -> Self {
        Self::with_transit(seed, false)
    }

    /// As [`Lab::new`], with the speaker re-advertising learned routes if `transit`.
    pub fn with_transit(seed: u64, transit: bool) -> Self {
        let now = Instant::from_nanos(1);
        let mut cfg = SpeakerConfig::new(65010, Ipv4Addr::new(10, 0, 0, 9), seed);
        cfg.transit = transit;
        cfg.networks = vec![pfx(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 16)];
        let mut us = Speaker::new(cfg);
        let mut peers = Vec::new();
        // Two clouds: AS 64512 and 64513 (in one AS, transit would send neither the other's
        // routes, their AS being in the path).
        for k in 1..=2u8 {
            let addr = Ipv4Addr::new(169, 254, k, 1);
            let asn = 64511 + u32::from(k);
            let mut n = NeighborConfig::new(IpAddr::V4(addr), asn);
            n.next_hop_v4 = Some(Ipv4Addr::new(169, 254, k, 2));
            n.max_prefix = Some((1000, crate::speaker::MaxPrefixAction::Teardown));
            let id = us.add_neighbor(now, n);
            let mut pc = SessionConfig::new(asn, 65010, Ipv4Addr::new(10, 0, 1, k));
            pc.passive = true;
            let mut s = Session::new(pc, seed ^ u64::from(k));
            s.start(now);
            peers.push((id, s, None));
        }
        let mut lab = Self {
            now,
            us,
            peers,
            events: Vec::new(),
            peer_updates: Vec::new(),
        };
        lab.pump();
        let u = Update {
            attrs: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::sequence(vec![64513])),
                next_hop: Some(Ipv4Addr::new(169, 254, 2, 1)),
                ..Default::default()
            },
            nlri: vec![lab_route()],
            ..Default::default()
        };
        if let Some((_, s, _)) = lab.peers.get_mut(1) {
            let _ = s.send_update(now, &u);
        }
        lab.pump();
        lab
    }

    /// Moves bytes between the speaker and the two peer sessions until quiet.
    pub fn pump(&mut self) {
        for _ in 0..64 {
            let mut moved = false;
            while let Some(o) = self.us.poll_output() {
                moved = true;
                match o {
                    Output::Connect { conn, peer, .. } => {
                        if let Some((_, s, c)) =
                            self.peers.iter_mut().find(|(id, _, _)| *id == peer)
                        {
                            if s.tcp_connected(self.now) {
                                *c = Some(conn);
                                self.us.connected(self.now, conn);
                            } else {
                                self.us.closed(self.now, conn);
                            }
                        }
                    }
                    Output::Send { conn, data } => {
                        if let Some((_, s, _)) =
                            self.peers.iter_mut().find(|(_, _, c)| *c == Some(conn))
                        {
                            s.handle_bytes(self.now, &data);
                        }
                    }
                    Output::Close { conn } => {
                        if let Some((_, s, c)) =
                            self.peers.iter_mut().find(|(_, _, c)| *c == Some(conn))
                        {
                            s.tcp_closed(self.now);
                            *c = None;
                        }
                    }
                    Output::Event(e) => {
                        if self.events.len() >= 10_000 {
                            self.events.clear();
                        }
                        self.events.push(e);
                    }
                }
            }
            for i in 0..self.peers.len() {
                let Some((_, s, c)) = self.peers.get_mut(i) else {
                    continue;
                };
                let conn = *c;
                while let Some(e) = s.poll_event() {
                    if let crate::session::SessionEvent::Update(u) = e {
                        if self.peer_updates.len() >= 10_000 {
                            self.peer_updates.clear();
                        }
                        self.peer_updates.push((i, u));
                    }
                }
                if let Some(data) = s.poll_transmit() {
                    moved = true;
                    if let Some(conn) = conn {
                        self.us.received(self.now, conn, &data);
                    }
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// Sends `data` to the speaker as if the first neighbor had written it on its connection.
    pub fn inject(&mut self, data: &[u8]) {
        if let Some(conn) = self.peers.first().and_then(|p| p.2) {
            self.us.received(self.now, conn, data);
        }
        self.pump();
    }

    /// Has the first neighbor send a well-formed UPDATE.
    pub fn announce_from_first(&mut self, u: &Update) {
        let now = self.now;
        if let Some((_, s, _)) = self.peers.first_mut() {
            let _ = s.send_update(now, u);
        }
        self.pump();
    }

    /// Advances the clock and runs timers.
    pub fn advance(&mut self, d: Duration) {
        self.now = self.now + d;
        self.us.handle_timeout(self.now);
        for (_, s, _) in &mut self.peers {
            s.handle_timeout(self.now);
        }
        self.pump();
    }

    /// True if the second neighbor is still Established and its route is in the Loc-RIB.
    pub fn bystander_intact(&self) -> bool {
        let peer2 = self.peers.get(1).map(|p| p.0);
        let up = self
            .us
            .neighbors()
            .any(|(id, _, st, _, _)| Some(id) == peer2 && st == State::Established);
        let route = self
            .us
            .best_routes()
            .any(|(p, hops)| *p == lab_route() && hops.iter().any(|h| Some(h.peer) == peer2));
        up && route
    }

    /// State of the first neighbor's session as the speaker sees it.
    pub fn target_state(&self) -> Option<State> {
        let peer1 = self.peers.first().map(|p| p.0)?;
        self.us
            .neighbors()
            .find(|(id, ..)| *id == peer1)
            .map(|(_, _, st, _, _)| st)
    }
}
