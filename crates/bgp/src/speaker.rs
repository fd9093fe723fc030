//! The BGP speaker: neighbors (each a [`Session`], plus a second one while a connection
//! collision is resolved, RFC 4271 §6.8), the Adj-RIBs-In, the Loc-RIB with ECMP, export policy
//! and the Adj-RIBs-Out, and the graceful restart helper (RFC 4724 §4.2).
//!
//! # Driving it (the shell's loop)
//!
//! - Call [`Speaker::add_neighbor`] for each configured peer.
//! - Drain [`Speaker::poll_output`] after every call: [`Output::Connect`] (open TCP to the peer's
//!   port 179 and answer with [`Speaker::connected`] or [`Speaker::closed`]), [`Output::Send`],
//!   [`Output::Close`], and [`Output::Event`]s, among them [`SpeakerEvent::BestRoutesChanged`]
//!   for the FIB.
//! - An accepted TCP connection: find the neighbor with [`Speaker::neighbor_by_addr`], then
//!   [`Speaker::accept`] gives it a [`ConnId`] (or `None`: close it).
//! - Bytes in: [`Speaker::received`]. Connection gone: [`Speaker::closed`].
//! - Timers: sleep until [`Speaker::poll_timeout`], then [`Speaker::handle_timeout`].
//!
//! Not done here: sockets, TCP MD5/TTL options (the shell's), kernel routes (the FIB's).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use crate::rib::{self, Candidate, Path, PeerId, PrefixList};
use crate::session::{DownReason, Negotiated, Session, SessionConfig, SessionEvent, State};
use crate::wire::{
    AsPath, AttrError, MpReach, MpUnreach, Notification, Origin, PathAttributes, Rfc7606Action,
    SegmentKind, Update, attr_flags, cease_sub, code, update_sub,
};
use crate::{Family, Instant, Prefix};

/// How long a neighbor reset by [`Speaker::replace_neighbor`] waits before it connects again,
/// so that the peer has read the Cease first (see [`Session::start_after`]).
pub const RESET_RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Identifies one TCP connection, assigned by the speaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// What to do when a neighbor sends more prefixes than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxPrefixAction {
    /// Send Cease/Maximum Number of Prefixes Reached (RFC 4486) and drop the session.
    Teardown,
    /// Report it once and ignore prefixes past the limit (memory stays bounded).
    Warn,
}

/// Per-neighbor configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborConfig {
    /// The peer's address (TCP destination; matched against accepted connections).
    pub address: IpAddr,
    /// Session parameters (our AS and router id are taken from the [`SpeakerConfig`]).
    pub session: SessionConfig,
    /// Our IPv4 next hop sent to this neighbor (next-hop-self; the tunnel inside address).
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Our IPv6 next hop sent to this neighbor (MP-BGP IPv6).
    pub next_hop_v6: Option<Ipv6Addr>,
    /// Inbound prefix list (`None` = accept all).
    pub import: Option<PrefixList>,
    /// Outbound prefix list (`None` = send all that export policy allows).
    pub export: Option<PrefixList>,
    /// Extra copies of our AS prepended on export to this (eBGP) neighbor.
    pub prepend: u8,
    /// MED sent to this neighbor.
    pub med: Option<u32>,
    /// Local preference given to routes learned from this eBGP neighbor.
    pub local_pref: u32,
    /// Inbound prefix limit and what to do past it.
    pub max_prefix: Option<(usize, MaxPrefixAction)>,
    /// Most prefixes we advertise (AWS VGW accepts 100, a TGW 1000, Azure drops the session past
    /// 4000); more are held back and reported with [`SpeakerEvent::AdvertisementLimited`].
    pub max_advertised: Option<usize>,
}

impl NeighborConfig {
    /// A neighbor with permissive defaults (no lists, no prepend, local pref 100, no limits).
    /// `session.local_asn` and `session.router_id` are overwritten by the speaker.
    pub fn new(address: IpAddr, peer_asn: u32) -> Self {
        Self {
            address,
            session: SessionConfig::new(0, peer_asn, Ipv4Addr::UNSPECIFIED),
            next_hop_v4: None,
            next_hop_v6: None,
            import: None,
            export: None,
            prepend: 0,
            med: None,
            local_pref: 100,
            max_prefix: None,
            max_advertised: None,
        }
    }
}

/// Speaker-wide configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerConfig {
    /// Our AS.
    pub asn: u32,
    /// Our BGP Identifier.
    pub router_id: Ipv4Addr,
    /// Networks we originate to every neighbor.
    pub networks: Vec<Prefix>,
    /// Re-advertise learned best routes to other neighbors (be the transit between clouds).
    pub transit: bool,
    /// Most ECMP next hops per prefix.
    pub max_paths: usize,
    /// Seed for timer jitter (from the OS rng in the shell, fixed in tests).
    pub seed: u64,
    /// How long stale routes are kept after a restarted peer re-establishes, waiting for its
    /// End-of-RIB (RFC 4724 §4.2 "selection deferral"/stale timer).
    pub stale_time: Duration,
}

impl SpeakerConfig {
    /// Defaults: no networks, no transit, 4 ECMP paths, stale time 360 s.
    pub fn new(asn: u32, router_id: Ipv4Addr, seed: u64) -> Self {
        Self {
            asn,
            router_id,
            networks: Vec::new(),
            transit: false,
            max_paths: 4,
            seed,
            stale_time: Duration::from_secs(360),
        }
    }
}

/// One ECMP next hop of a best route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NextHop {
    /// The next hop address (the peer's tunnel inside address, usually).
    pub addr: IpAddr,
    /// The neighbor it was learned from.
    pub peer: PeerId,
}

/// Something the shell should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpeakerEvent {
    /// A neighbor reached Established.
    PeerUp {
        /// The neighbor.
        peer: PeerId,
        /// What was negotiated.
        negotiated: Negotiated,
    },
    /// A neighbor left Established.
    PeerDown {
        /// The neighbor.
        peer: PeerId,
        /// Why.
        reason: DownReason,
        /// Its routes are kept as stale while it restarts (RFC 4724).
        graceful_restart: bool,
    },
    /// The best route for a prefix changed; an empty `next_hops` means it is gone.
    BestRoutesChanged {
        /// The prefix.
        prefix: Prefix,
        /// ECMP next hops, best first.
        next_hops: Vec<NextHop>,
    },
    /// A neighbor passed its inbound prefix limit.
    MaxPrefixExceeded {
        /// The neighbor.
        peer: PeerId,
        /// The limit.
        limit: usize,
        /// What was done.
        action: MaxPrefixAction,
    },
    /// Export to a neighbor was cut at its advertisement limit.
    AdvertisementLimited {
        /// The neighbor.
        peer: PeerId,
        /// The limit.
        limit: usize,
    },
    /// A malformed UPDATE was survived per RFC 7606 (treat-as-withdraw or attribute discard).
    UpdateError {
        /// The neighbor.
        peer: PeerId,
        /// The error.
        error: AttrError,
    },
}

/// What the speaker asks the shell to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Open a TCP connection to `addr` port 179 for `peer`; report with
    /// [`Speaker::connected`] or [`Speaker::closed`] using `conn`.
    Connect {
        /// The new connection's id.
        conn: ConnId,
        /// The neighbor.
        peer: PeerId,
        /// Where to connect.
        addr: IpAddr,
    },
    /// Send these bytes on `conn`.
    Send {
        /// The connection.
        conn: ConnId,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Close `conn` (after sending what was queued for it).
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// An event.
    Event(SpeakerEvent),
}

/// A session and its connection.
#[derive(Debug)]
struct Slot {
    session: Session,
    conn: Option<ConnId>,
}

#[derive(Debug)]
struct Neighbor {
    cfg: NeighborConfig,
    main: Slot,
    /// An accepted connection racing `main` (§6.8).
    other: Option<Slot>,
    up: Option<Negotiated>,
    adj_in: BTreeMap<Prefix, Path>,
    adj_out: BTreeMap<Prefix, Arc<PathAttributes>>,
    max_prefix_warned: bool,
    adv_limited: bool,
    /// Stale routes are dropped at this time (restart timer, then stale timer).
    gr_deadline: Option<Instant>,
}

/// The sans-IO BGP speaker.
#[derive(Debug)]
pub struct Speaker {
    cfg: SpeakerConfig,
    neighbors: BTreeMap<PeerId, Neighbor>,
    conns: HashMap<ConnId, PeerId>,
    next_peer: u32,
    next_conn: u64,
    /// Best routes. Next-hop sets are shared (`Arc`) between prefixes: most prefixes of a table
    /// have the same set, so this costs one pointer per prefix.
    loc_rib: BTreeMap<Prefix, Arc<[NextHop]>>,
    /// The last next-hop set stored, reused when the next one is equal.
    last_hops: Option<Arc<[NextHop]>>,
    /// `cfg.networks` as a set, for lookups.
    networks: BTreeSet<Prefix>,
    /// Prefixes whose Loc-RIB entry or export may have changed since the last flush.
    dirty: BTreeSet<Prefix>,
    out: VecDeque<Output>,
}

impl Speaker {
    /// A speaker with no neighbors.
    pub fn new(cfg: SpeakerConfig) -> Self {
        let dirty = cfg.networks.iter().copied().collect();
        let networks = cfg.networks.iter().copied().collect();
        Self {
            networks,
            cfg,
            neighbors: BTreeMap::new(),
            conns: HashMap::new(),
            next_peer: 1,
            next_conn: 1,
            loc_rib: BTreeMap::new(),
            last_hops: None,
            dirty,
            out: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SpeakerConfig {
        &self.cfg
    }

    /// Adds a neighbor and starts its session (connecting unless passive).
    pub fn add_neighbor(&mut self, now: Instant, cfg: NeighborConfig) -> PeerId {
        self.insert_neighbor(now, cfg, None)
    }

    /// [`add_neighbor`](Self::add_neighbor), the first outgoing connection after `delay` if
    /// given (see [`Session::start_after`]).
    fn insert_neighbor(
        &mut self,
        now: Instant,
        mut cfg: NeighborConfig,
        delay: Option<Duration>,
    ) -> PeerId {
        cfg.session.local_asn = self.cfg.asn;
        cfg.session.router_id = self.cfg.router_id;
        let id = PeerId(self.next_peer);
        self.next_peer = self.next_peer.saturating_add(1);
        let seed = self.cfg.seed ^ u64::from(id.0).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut session = Session::new(cfg.session.clone(), seed);
        match delay {
            Some(d) => session.start_after(now, d),
            None => session.start(now),
        }
        self.neighbors.insert(
            id,
            Neighbor {
                cfg,
                main: Slot {
                    session,
                    conn: None,
                },
                other: None,
                up: None,
                adj_in: BTreeMap::new(),
                adj_out: BTreeMap::new(),
                max_prefix_warned: false,
                adv_limited: false,
                gr_deadline: None,
            },
        );
        self.pump(now, id);
        id
    }

    /// Stops and forgets a neighbor (Cease/Peer De-configured); its routes are withdrawn.
    pub fn remove_neighbor(&mut self, now: Instant, peer: PeerId) {
        if let Some(n) = self.neighbors.get_mut(&peer) {
            n.main.session.stop(now, cease_sub::PEER_DECONFIGURED);
            if let Some(o) = n.other.as_mut() {
                o.session.stop(now, cease_sub::PEER_DECONFIGURED);
            }
        }
        self.pump(now, peer);
        if let Some(n) = self.neighbors.remove(&peer) {
            self.dirty.extend(n.adj_in.keys().copied());
        }
        self.conns.retain(|_, p| *p != peer);
        self.flush(now);
    }

    /// Replaces a neighbor's configuration by resetting its session (configuration reload,
    /// for changes a running session cannot take: AS, hold time, address, ...): the session
    /// is stopped with Cease/Other Configuration Change (RFC 4486 §3), its routes are
    /// withdrawn, and a new neighbor with `cfg` starts; its first connection waits
    /// [`RESET_RECONNECT_DELAY`] (it takes one from the peer before that). Returns the new
    /// neighbor's id.
    pub fn replace_neighbor(&mut self, now: Instant, peer: PeerId, cfg: NeighborConfig) -> PeerId {
        if let Some(n) = self.neighbors.get_mut(&peer) {
            n.main.session.stop(now, cease_sub::OTHER_CONFIG_CHANGE);
            if let Some(o) = n.other.as_mut() {
                o.session.stop(now, cease_sub::OTHER_CONFIG_CHANGE);
            }
        }
        self.pump(now, peer);
        if let Some(n) = self.neighbors.remove(&peer) {
            self.dirty.extend(n.adj_in.keys().copied());
        }
        self.conns.retain(|_, p| *p != peer);
        self.flush(now);
        // The peer reads our Cease before our next connection reaches it.
        self.insert_neighbor(now, cfg, Some(RESET_RECONNECT_DELAY))
    }

    /// Changes a neighbor's policy without resetting its session (configuration reload):
    /// `export`, `prepend`, `med` and `max_advertised` are applied by sending UPDATEs and
    /// withdrawals for what changed; a changed `import` drops the routes it now denies and asks
    /// the neighbor to send its routes again with ROUTE-REFRESH (RFC 2918), so the ones it now
    /// permits are learned. The other fields of `cfg` are ignored (they need
    /// [`replace_neighbor`](Self::replace_neighbor)).
    pub fn set_policy(&mut self, now: Instant, peer: PeerId, cfg: &NeighborConfig) {
        let Some(n) = self.neighbors.get_mut(&peer) else {
            return;
        };
        let import_changed = n.cfg.import != cfg.import;
        n.cfg.export.clone_from(&cfg.export);
        n.cfg.prepend = cfg.prepend;
        n.cfg.med = cfg.med;
        n.cfg.max_advertised = cfg.max_advertised;
        n.adv_limited = false;
        if import_changed {
            n.cfg.import.clone_from(&cfg.import);
            let denied: Vec<Prefix> = n
                .adj_in
                .keys()
                .filter(|p| n.cfg.import.as_ref().is_some_and(|l| !l.permits(p)))
                .copied()
                .collect();
            for p in denied {
                n.adj_in.remove(&p);
                self.dirty.insert(p);
            }
        }
        // Everything we might send or have sent is looked at again.
        let mut all: BTreeSet<Prefix> = self.networks.clone();
        if self.cfg.transit {
            all.extend(self.loc_rib.keys().copied());
        }
        all.extend(n.adj_out.keys().copied());
        self.flush(now);
        self.export(now, peer, all.into_iter());
        if import_changed {
            self.request_refresh(now, peer);
        }
    }

    /// Replaces the originated networks.
    pub fn set_networks(&mut self, now: Instant, networks: Vec<Prefix>) {
        self.dirty.extend(self.cfg.networks.iter().copied());
        self.dirty.extend(networks.iter().copied());
        self.networks = networks.iter().copied().collect();
        self.cfg.networks = networks;
        self.flush(now);
    }

    /// The neighbor configured with this address.
    pub fn neighbor_by_addr(&self, addr: IpAddr) -> Option<PeerId> {
        self.neighbors
            .iter()
            .find(|(_, n)| n.cfg.address == addr)
            .map(|(id, _)| *id)
    }

    /// Ids, configurations, states and prefix counts (received, advertised) of all neighbors.
    pub fn neighbors(
        &self,
    ) -> impl Iterator<Item = (PeerId, &NeighborConfig, State, usize, usize)> {
        self.neighbors.iter().map(|(id, n)| {
            (
                *id,
                &n.cfg,
                n.main.session.state(),
                n.adj_in.len(),
                n.adj_out.len(),
            )
        })
    }

    /// The Loc-RIB: every prefix with a best route, with its ECMP next hops.
    pub fn best_routes(&self) -> impl Iterator<Item = (&Prefix, &[NextHop])> {
        self.loc_rib.iter().map(|(p, v)| (p, &**v))
    }

    /// The best next hops of `prefix` (its Loc-RIB entry), if it has a best route.
    pub fn best_route(&self, prefix: &Prefix) -> Option<&[NextHop]> {
        self.loc_rib.get(prefix).map(|v| &**v)
    }

    /// How many prefixes have a best route (the size of the Loc-RIB).
    pub fn best_count(&self) -> usize {
        self.loc_rib.len()
    }

    /// Routes received from a neighbor (its Adj-RIB-In after import policy).
    pub fn received_routes(&self, peer: PeerId) -> impl Iterator<Item = (&Prefix, &Path)> {
        self.neighbors
            .get(&peer)
            .into_iter()
            .flat_map(|n| n.adj_in.iter())
    }

    /// Routes advertised to a neighbor (its Adj-RIB-Out).
    pub fn advertised_routes(
        &self,
        peer: PeerId,
    ) -> impl Iterator<Item = (&Prefix, &PathAttributes)> {
        self.neighbors
            .get(&peer)
            .into_iter()
            .flat_map(|n| n.adj_out.iter().map(|(p, a)| (p, &**a)))
    }

    /// An outgoing connection completed.
    pub fn connected(&mut self, now: Instant, conn: ConnId) {
        let Some(&peer) = self.conns.get(&conn) else {
            return;
        };
        if let Some(n) = self.neighbors.get_mut(&peer) {
            if n.main.conn == Some(conn) {
                n.main.session.tcp_connected(now);
            }
        }
        self.pump(now, peer);
    }

    /// An incoming connection from `peer` was accepted: returns its id, or `None` if the
    /// neighbor cannot take it (the shell closes it).
    pub fn accept(&mut self, now: Instant, peer: PeerId) -> Option<ConnId> {
        let conn = ConnId(self.next_conn);
        let n = self.neighbors.get_mut(&peer)?;
        match n.main.session.state() {
            State::Idle | State::Active => {
                if n.main.session.state() == State::Idle {
                    // Start without an outgoing attempt: this connection is the one.
                    n.main.session.set_passive(true);
                    n.main.session.start(now);
                    n.main.session.set_passive(n.cfg.session.passive);
                }
                if !n.main.session.tcp_connected(now) {
                    return None;
                }
                n.main.conn = Some(conn);
            }
            State::Connect | State::OpenSent | State::OpenConfirm if n.other.is_none() => {
                let mut cfg = n.cfg.session.clone();
                cfg.passive = true;
                let mut s = Session::new(cfg, self.cfg.seed.rotate_left(17) ^ conn.0);
                s.start(now);
                s.tcp_connected(now);
                n.other = Some(Slot {
                    session: s,
                    conn: Some(conn),
                });
            }
            _ => return None,
        }
        self.next_conn += 1;
        self.conns.insert(conn, peer);
        self.pump(now, peer);
        Some(conn)
    }

    /// A connection closed, or an outgoing one failed.
    pub fn closed(&mut self, now: Instant, conn: ConnId) {
        let Some(peer) = self.conns.remove(&conn) else {
            return;
        };
        if let Some(n) = self.neighbors.get_mut(&peer) {
            if n.main.conn == Some(conn) {
                n.main.conn = None;
                n.main.session.tcp_closed(now);
            } else if n.other.as_ref().is_some_and(|o| o.conn == Some(conn)) {
                n.other = None;
            }
        }
        self.pump(now, peer);
    }

    /// Bytes arrived on `conn`.
    pub fn received(&mut self, now: Instant, conn: ConnId, data: &[u8]) {
        let Some(&peer) = self.conns.get(&conn) else {
            return;
        };
        if let Some(n) = self.neighbors.get_mut(&peer) {
            if n.main.conn == Some(conn) {
                n.main.session.handle_bytes(now, data);
            } else if let Some(o) = n.other.as_mut().filter(|o| o.conn == Some(conn)) {
                o.session.handle_bytes(now, data);
            }
        }
        self.pump(now, peer);
    }

    /// Asks a neighbor to resend its routes (RFC 2918), for every negotiated family.
    pub fn request_refresh(&mut self, now: Instant, peer: PeerId) {
        if let Some(n) = self.neighbors.get_mut(&peer) {
            let fams =
                n.up.as_ref()
                    .map(|u| u.families.clone())
                    .unwrap_or_default();
            for f in fams {
                n.main.session.send_route_refresh(f);
            }
        }
        self.pump(now, peer);
    }

    /// Runs due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        let ids: Vec<PeerId> = self.neighbors.keys().copied().collect();
        for id in ids {
            if let Some(n) = self.neighbors.get_mut(&id) {
                n.main.session.handle_timeout(now);
                if let Some(o) = n.other.as_mut() {
                    o.session.handle_timeout(now);
                }
                if n.gr_deadline.is_some_and(|t| t <= now) {
                    n.gr_deadline = None;
                    let stale: Vec<Prefix> = n
                        .adj_in
                        .iter()
                        .filter(|(_, p)| p.stale)
                        .map(|(k, _)| *k)
                        .collect();
                    for p in stale {
                        n.adj_in.remove(&p);
                        self.dirty.insert(p);
                    }
                }
            }
            self.pump(now, id);
        }
        self.flush(now);
    }

    /// The earliest deadline for [`Speaker::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.neighbors
            .values()
            .flat_map(|n| {
                [
                    n.main.session.poll_timeout(),
                    n.other.as_ref().and_then(|o| o.session.poll_timeout()),
                    n.gr_deadline,
                ]
            })
            .flatten()
            .min()
    }

    /// The next thing for the shell to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        let o = self.out.pop_front();
        if o.is_none() && self.out.capacity() > 65_536 {
            // A full-table burst grew the queue; give the memory back once it is drained.
            self.out.shrink_to(1024);
        }
        o
    }

    // ---- internals ----

    /// Moves a neighbor's session outputs to the speaker's queue and reacts to session events.
    fn pump(&mut self, now: Instant, peer: PeerId) {
        for _ in 0..16 {
            let Some(n) = self.neighbors.get_mut(&peer) else {
                return;
            };
            Self::resolve_collision(n, now);
            if n.up.is_none() && n.main.session.state() == State::Established {
                if let Some(neg) = n.main.session.negotiated().cloned() {
                    self.peer_up(now, peer, neg);
                    continue;
                }
            }
            let mut events: Vec<(bool, SessionEvent)> = Vec::new();
            for (is_main, slot) in [(true, Some(&mut n.main)), (false, n.other.as_mut())] {
                let Some(slot) = slot else { continue };
                if let (Some(data), Some(conn)) = (slot.session.poll_transmit(), slot.conn) {
                    self.out.push_back(Output::Send { conn, data });
                }
                while let Some(e) = slot.session.poll_event() {
                    events.push((is_main, e));
                }
            }
            if events.is_empty() {
                if n.other
                    .as_ref()
                    .is_some_and(|o| o.session.state() == State::Idle && o.conn.is_none())
                {
                    n.other = None;
                }
                break;
            }
            for (is_main, e) in events {
                self.on_session_event(now, peer, is_main, e);
            }
        }
        self.flush(now);
    }

    /// §6.8: when both connections have the peer's OPEN, keep the one opened by the side with
    /// the higher BGP Identifier.
    fn resolve_collision(n: &mut Neighbor, now: Instant) {
        let Some(other) = n.other.as_mut() else {
            return;
        };
        if other.session.state() == State::Idle {
            return;
        }
        let main_state = n.main.session.state();
        if main_state == State::Established {
            // An established session wins over a new connection.
            other.session.send_notification_and_close(now, collision());
            return;
        }
        let (Some(_), Some(remote)) = (n.main.session.peer_id(), other.session.peer_id()) else {
            let other_has_open = other.session.peer_id().is_some();
            let main_waiting = matches!(main_state, State::Idle | State::Active);
            if main_waiting || (other_has_open && main_state == State::Connect) {
                // No competing OPEN from the outgoing side: the accepted connection takes over.
                promote(n, now);
            }
            return;
        };
        let local = n.cfg.session.router_id;
        if u32::from(local) < u32::from(remote) {
            // Close the connection we initiated (main), keep the accepted one.
            n.main.session.send_notification_and_close(now, collision());
            promote(n, now);
        } else {
            other.session.send_notification_and_close(now, collision());
        }
    }

    fn on_session_event(&mut self, now: Instant, peer: PeerId, is_main: bool, e: SessionEvent) {
        let Some(n) = self.neighbors.get_mut(&peer) else {
            return;
        };
        let slot_conn = if is_main {
            n.main.conn
        } else {
            n.other.as_ref().and_then(|o| o.conn)
        };
        match e {
            SessionEvent::Connect => {
                if !is_main {
                    return;
                }
                let conn = ConnId(self.next_conn);
                self.next_conn += 1;
                if let Some(old) = n.main.conn.replace(conn) {
                    self.conns.remove(&old);
                    self.out.push_back(Output::Close { conn: old });
                }
                self.conns.insert(conn, peer);
                self.out.push_back(Output::Connect {
                    conn,
                    peer,
                    addr: n.cfg.address,
                });
            }
            SessionEvent::Disconnect => {
                if let Some(c) = slot_conn {
                    self.out.push_back(Output::Close { conn: c });
                    self.conns.remove(&c);
                }
                if is_main {
                    n.main.conn = None;
                } else if let Some(o) = n.other.as_mut() {
                    o.conn = None;
                }
            }
            SessionEvent::Established(neg) => {
                // An accepted connection is promoted by collision resolution first.
                if is_main && n.up.is_none() {
                    self.peer_up(now, peer, neg);
                }
            }
            SessionEvent::Down(reason) => {
                if is_main && n.up.is_some() {
                    self.peer_down(now, peer, reason);
                }
            }
            SessionEvent::Update(u) => {
                if is_main {
                    self.handle_update(now, peer, u);
                }
            }
            SessionEvent::RouteRefresh(r) => {
                if is_main {
                    if let Some(n) = self.neighbors.get_mut(&peer) {
                        let fam = r.family;
                        n.adj_out.retain(|p, _| p.family() != fam);
                        self.export_all(now, peer);
                    }
                }
            }
        }
    }

    fn peer_up(&mut self, now: Instant, peer: PeerId, neg: Negotiated) {
        let Some(n) = self.neighbors.get_mut(&peer) else {
            return;
        };
        n.up = Some(neg.clone());
        n.adj_out.clear();
        n.adv_limited = false;
        // RFC 4724 §4.2: stale routes wait for End-of-RIB (bounded by the stale timer) only in
        // the families whose forwarding state the peer says it preserved; others go now.
        if n.adj_in.values().any(|p| p.stale) {
            let kept: Vec<Family> = neg
                .peer_graceful_restart
                .as_ref()
                .map(|g| {
                    g.families
                        .iter()
                        .filter(|(_, fwd)| *fwd)
                        .map(|(f, _)| *f)
                        .collect()
                })
                .unwrap_or_default();
            for f in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
                if !kept.contains(&f) {
                    drop_stale(n, &mut self.dirty, Some(f));
                }
            }
            n.gr_deadline = if n.adj_in.values().any(|p| p.stale) {
                Some(now + self.cfg.stale_time)
            } else {
                None
            };
        }
        self.out.push_back(Output::Event(SpeakerEvent::PeerUp {
            peer,
            negotiated: neg.clone(),
        }));
        self.export_all(now, peer);
        if let Some(n) = self.neighbors.get_mut(&peer) {
            for f in &neg.families {
                let _ = n.main.session.send_update(now, &Update::end_of_rib_for(*f));
            }
            if let Some(data) = n.main.session.poll_transmit() {
                if let Some(conn) = n.main.conn {
                    self.out.push_back(Output::Send { conn, data });
                }
            }
        }
    }

    fn peer_down(&mut self, now: Instant, peer: PeerId, reason: DownReason) {
        let Some(n) = self.neighbors.get_mut(&peer) else {
            return;
        };
        let neg = n.up.take();
        n.adj_out.clear();
        // RFC 4724 §4.2: without a NOTIFICATION, keep the routes of the families the peer listed
        // in its graceful restart capability, as stale, for its restart time.
        let peer_gr = neg.as_ref().and_then(|g| g.peer_graceful_restart.clone());
        let gr_families: Vec<Family> = peer_gr
            .as_ref()
            .filter(|g| g.restart_time > 0)
            .map(|g| g.families.iter().map(|(f, _)| *f).collect())
            .unwrap_or_default();
        let gr = reason.allows_graceful_restart()
            && n.cfg.session.graceful_restart.is_some()
            && !gr_families.is_empty();
        if gr {
            let t = peer_gr.map_or(0, |g| g.restart_time);
            let dirty = &mut self.dirty;
            n.adj_in.retain(|p, path| {
                if gr_families.contains(&p.family()) {
                    path.stale = true;
                    true
                } else {
                    dirty.insert(*p);
                    false
                }
            });
            n.gr_deadline = Some(now + Duration::from_secs(u64::from(t)));
        } else {
            self.dirty.extend(n.adj_in.keys().copied());
            n.adj_in.clear();
            n.gr_deadline = None;
        }
        self.out.push_back(Output::Event(SpeakerEvent::PeerDown {
            peer,
            reason,
            graceful_restart: gr,
        }));
        // Exports to others may change (transit routes from this peer).
        self.flush(now);
    }

    fn handle_update(&mut self, now: Instant, peer: PeerId, u: Update) {
        let local_asn = self.cfg.asn;
        let Some(n) = self.neighbors.get_mut(&peer) else {
            return;
        };
        for e in &u.errors {
            self.out.push_back(Output::Event(SpeakerEvent::UpdateError {
                peer,
                error: e.clone(),
            }));
        }
        if let Some(f) = u.end_of_rib() {
            drop_stale(n, &mut self.dirty, Some(f));
            if !n.adj_in.values().any(|p| p.stale) {
                n.gr_deadline = None;
            }
            self.flush(now);
            return;
        }
        let mut withdrawn: Vec<Prefix> = u.withdrawn.clone();
        if let Some(m) = &u.attrs.mp_unreach {
            withdrawn.extend(m.withdrawn.iter().copied());
        }
        let mut announced: Vec<(Prefix, IpAddr)> = Vec::new();
        if let Some(nh) = u.attrs.next_hop {
            announced.extend(u.nlri.iter().map(|p| (*p, IpAddr::V4(nh))));
        }
        if let Some(m) = &u.attrs.mp_reach {
            announced.extend(m.nlri.iter().map(|p| (*p, m.next_hop)));
        }
        let ebgp = !n.cfg.session.is_ibgp();
        let looped = u
            .attrs
            .as_path
            .as_ref()
            .is_some_and(|p| ebgp && p.contains(local_asn));
        // RFC 4271 §6.3 with RFC 7606 §7.2/§7.3: from an eBGP peer the leftmost AS must be the
        // peer's, and a NEXT_HOP must be a usable unicast address that is not ours; otherwise
        // treat-as-withdraw.
        let mut semantic: Option<AttrError> = None;
        if ebgp
            && !announced.is_empty()
            && u.attrs.as_path.as_ref().and_then(AsPath::first_as) != Some(n.cfg.session.peer_asn)
        {
            semantic = Some(AttrError {
                subcode: update_sub::MALFORMED_AS_PATH,
                data: Vec::new(),
                action: Rfc7606Action::TreatAsWithdraw,
            });
        }
        // RFC 7606 §7.2 / RFC 5065 §5.3: confederation segments from an eBGP peer.
        if ebgp
            && u.attrs.as_path.as_ref().is_some_and(|p| {
                p.segments
                    .iter()
                    .any(|s| matches!(s.kind, SegmentKind::ConfedSequence | SegmentKind::ConfedSet))
            })
        {
            semantic = Some(AttrError {
                subcode: update_sub::MALFORMED_AS_PATH,
                data: Vec::new(),
                action: Rfc7606Action::TreatAsWithdraw,
            });
        }
        if let Some(nh) = u.attrs.next_hop.filter(|_| !u.nlri.is_empty()) {
            if nh.is_unspecified()
                || nh.is_multicast()
                || nh.is_broadcast()
                || Some(nh) == n.cfg.next_hop_v4
            {
                semantic = Some(AttrError {
                    subcode: update_sub::INVALID_NEXT_HOP,
                    data: nh.octets().to_vec(),
                    action: Rfc7606Action::TreatAsWithdraw,
                });
            }
        }
        if let Some(e) = &semantic {
            self.out.push_back(Output::Event(SpeakerEvent::UpdateError {
                peer,
                error: e.clone(),
            }));
        }
        if u.treat_as_withdraw() || looped || semantic.is_some() {
            withdrawn.extend(announced.drain(..).map(|(p, _)| p));
            withdrawn.extend(u.nlri.iter().copied());
        }
        for p in withdrawn {
            if n.adj_in.remove(&p).is_some() {
                self.dirty.insert(p);
            }
        }
        if !announced.is_empty() {
            let mp_reach = u.attrs.mp_reach.clone().map(|m| MpReach {
                nlri: Vec::new(),
                ..m
            });
            let attrs = Arc::new(PathAttributes {
                mp_reach,
                mp_unreach: None,
                ..u.attrs
            });
            let families =
                n.up.as_ref()
                    .map(|g| g.families.clone())
                    .unwrap_or_default();
            for (p, _) in announced {
                if !families.contains(&p.family()) {
                    continue;
                }
                if n.cfg.import.as_ref().is_some_and(|l| !l.permits(&p)) {
                    if n.adj_in.remove(&p).is_some() {
                        self.dirty.insert(p);
                    }
                    continue;
                }
                if let Some((limit, action)) = n.cfg.max_prefix {
                    if !n.adj_in.contains_key(&p) && n.adj_in.len() >= limit {
                        match action {
                            MaxPrefixAction::Warn => {
                                if !n.max_prefix_warned {
                                    n.max_prefix_warned = true;
                                    self.out.push_back(Output::Event(
                                        SpeakerEvent::MaxPrefixExceeded {
                                            peer,
                                            limit,
                                            action,
                                        },
                                    ));
                                }
                                continue;
                            }
                            MaxPrefixAction::Teardown => {
                                let mut data = Vec::new();
                                data.extend_from_slice(&p.family().afi.0.to_be_bytes());
                                data.push(p.family().safi.0);
                                data.extend_from_slice(
                                    &u32::try_from(limit).unwrap_or(u32::MAX).to_be_bytes(),
                                );
                                self.out.push_back(Output::Event(
                                    SpeakerEvent::MaxPrefixExceeded {
                                        peer,
                                        limit,
                                        action,
                                    },
                                ));
                                let notif = Notification {
                                    code: code::CEASE,
                                    subcode: cease_sub::MAX_PREFIXES,
                                    data,
                                };
                                n.main.session.send_notification_and_close(now, notif);
                                // The session's Down event (handled in pump) clears the routes.
                                return;
                            }
                        }
                    }
                }
                n.adj_in.insert(
                    p,
                    Path {
                        attrs: Arc::clone(&attrs),
                        stale: false,
                    },
                );
                self.dirty.insert(p);
            }
        }
        self.flush(now);
    }

    fn candidate(&self, peer: PeerId, n: &Neighbor, prefix: &Prefix, path: &Path) -> Candidate {
        let ebgp = !n.cfg.session.is_ibgp();
        let a = &path.attrs;
        Candidate {
            peer,
            local_pref: if ebgp {
                n.cfg.local_pref
            } else {
                a.local_pref.unwrap_or(100)
            },
            as_path_len: a.as_path.as_ref().map_or(0, AsPath::path_len),
            origin: a.origin.unwrap_or(Origin::Incomplete),
            med: a.med.unwrap_or(0),
            neighbor_as: a.as_path.as_ref().and_then(AsPath::first_as),
            ebgp,
            peer_router_id: n.up.as_ref().map_or(Ipv4Addr::UNSPECIFIED, |g| g.peer_id),
            peer_addr: n.cfg.address,
            next_hop: path
                .next_hop(prefix)
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        }
    }

    /// Recomputes the Loc-RIB for the dirty prefixes, emits `BestRoutesChanged`, and updates
    /// every established neighbor's Adj-RIB-Out.
    fn flush(&mut self, now: Instant) {
        if self.dirty.is_empty() {
            return;
        }
        let dirty = std::mem::take(&mut self.dirty);
        let mut cands = Vec::new();
        for p in &dirty {
            cands.clear();
            for (id, n) in &self.neighbors {
                if let Some(path) = n.adj_in.get(p) {
                    cands.push(self.candidate(*id, n, p, path));
                }
            }
            let sel = rib::select(&cands, self.cfg.max_paths);
            let hops: Vec<NextHop> = sel
                .iter()
                .filter_map(|&i| cands.get(i))
                .map(|c| NextHop {
                    addr: c.next_hop,
                    peer: c.peer,
                })
                .collect();
            let old = self.loc_rib.get(p);
            if old.map(|o| &**o).unwrap_or_default() != hops.as_slice() {
                if hops.is_empty() {
                    self.loc_rib.remove(p);
                } else {
                    let shared = match &self.last_hops {
                        Some(l) if **l == *hops => Arc::clone(l),
                        _ => {
                            let a: Arc<[NextHop]> = Arc::from(hops.as_slice());
                            self.last_hops = Some(Arc::clone(&a));
                            a
                        }
                    };
                    self.loc_rib.insert(*p, shared);
                }
                self.out
                    .push_back(Output::Event(SpeakerEvent::BestRoutesChanged {
                        prefix: *p,
                        next_hops: hops,
                    }));
            }
        }
        let peers: Vec<PeerId> = self.neighbors.keys().copied().collect();
        for peer in peers {
            self.export(now, peer, dirty.iter().copied());
        }
    }

    fn export_all(&mut self, now: Instant, peer: PeerId) {
        let mut all: BTreeSet<Prefix> = self.networks.clone();
        if self.cfg.transit {
            all.extend(self.loc_rib.keys().copied());
        }
        self.export(now, peer, all.into_iter());
    }

    /// What we would advertise for `p` to `to`, per export policy.
    fn desired(&self, to: PeerId, p: &Prefix) -> Option<PathAttributes> {
        let n = self.neighbors.get(&to)?;
        let neg = n.up.as_ref()?;
        if !neg.families.contains(&p.family()) {
            return None;
        }
        if n.cfg.export.as_ref().is_some_and(|l| !l.permits(p)) {
            return None;
        }
        let ibgp = n.cfg.session.is_ibgp();
        let mut attrs = if self.networks.contains(p) {
            PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::default()),
                ..Default::default()
            }
        } else if self.cfg.transit {
            let best = self.loc_rib.get(p)?.first()?;
            if best.peer == to {
                return None;
            }
            let from = self.neighbors.get(&best.peer)?;
            if ibgp && from.cfg.session.is_ibgp() {
                return None; // §9.2: iBGP-learned routes are not sent to iBGP peers
            }
            let path = from.adj_in.get(p)?;
            // Sender-side loop check: an eBGP peer whose AS is in the path drops the route
            // (RFC 4271 §9.1.2), and a cloud counts it against its advertised-prefix limit
            // (AWS: 100 per VGW), so it is not sent at all.
            if !ibgp
                && path
                    .attrs
                    .as_path
                    .as_ref()
                    .is_some_and(|ap| ap.contains(n.cfg.session.peer_asn))
            {
                return None;
            }
            let mut a = (*path.attrs).clone();
            a.mp_reach = None;
            // Unknown optional transitive attributes pass on with the Partial bit (§5).
            for u in &mut a.unknown {
                u.flags |= attr_flags::PARTIAL;
            }
            if !from.cfg.session.is_ibgp() {
                a.local_pref = Some(from.cfg.local_pref);
            }
            a
        } else {
            return None;
        };
        if ibgp {
            attrs.local_pref = Some(attrs.local_pref.unwrap_or(100));
        } else {
            attrs.local_pref = None;
            attrs.med = None;
            let mut path = attrs.as_path.take().unwrap_or_default();
            path.prepend(self.cfg.asn, 1 + usize::from(n.cfg.prepend));
            attrs.as_path = Some(path);
        }
        if let Some(m) = n.cfg.med {
            attrs.med = Some(m);
        }
        match p.addr() {
            IpAddr::V4(_) => attrs.next_hop = Some(n.cfg.next_hop_v4?),
            IpAddr::V6(_) => {
                attrs.next_hop = None;
                attrs.mp_reach = Some(MpReach {
                    family: Family::IPV6_UNICAST,
                    next_hop: IpAddr::V6(n.cfg.next_hop_v6?),
                    link_local: None,
                    nlri: Vec::new(),
                });
            }
        }
        Some(attrs)
    }

    /// Brings a neighbor's Adj-RIB-Out up to date for `prefixes`, in batches so that the
    /// transient memory stays small even for a full table.
    fn export(&mut self, now: Instant, peer: PeerId, prefixes: impl Iterator<Item = Prefix>) {
        if self.neighbors.get(&peer).is_none_or(|n| n.up.is_none()) {
            return;
        }
        let mut prefixes = prefixes.peekable();
        while prefixes.peek().is_some() {
            let batch: Vec<Prefix> = prefixes.by_ref().take(4096).collect();
            self.export_batch(now, peer, &batch);
        }
    }

    fn export_batch(&mut self, now: Instant, peer: PeerId, prefixes: &[Prefix]) {
        let mut withdraw: Vec<Prefix> = Vec::new();
        // Attributes are interned: prefixes sharing attributes share one Arc in the Adj-RIB-Out.
        let mut announce: HashMap<PathAttributes, (Arc<PathAttributes>, Vec<Prefix>)> =
            HashMap::new();
        let mut limited = false;
        let wanted: Vec<(Prefix, Option<PathAttributes>)> = prefixes
            .iter()
            .map(|p| (*p, self.desired(peer, p)))
            .collect();
        let Some(n) = self.neighbors.get_mut(&peer) else {
            return;
        };
        for (p, want) in wanted {
            match want {
                None => {
                    if n.adj_out.remove(&p).is_some() {
                        withdraw.push(p);
                    }
                }
                Some(a) => {
                    if n.adj_out.get(&p).is_some_and(|old| **old == a) {
                        continue;
                    }
                    if !n.adj_out.contains_key(&p)
                        && n.cfg.max_advertised.is_some_and(|m| n.adj_out.len() >= m)
                    {
                        limited = true;
                        continue;
                    }
                    let e = announce
                        .entry(a)
                        .or_insert_with_key(|k| (Arc::new(k.clone()), Vec::new()));
                    n.adj_out.insert(p, Arc::clone(&e.0));
                    e.1.push(p);
                }
            }
        }
        if limited && !n.adv_limited {
            n.adv_limited = true;
            let limit = n.cfg.max_advertised.unwrap_or(0);
            self.out
                .push_back(Output::Event(SpeakerEvent::AdvertisementLimited {
                    peer,
                    limit,
                }));
        }
        let s = &mut n.main.session;
        let (w4, w6): (Vec<Prefix>, Vec<Prefix>) =
            withdraw.into_iter().partition(|p| p.addr().is_ipv4());
        for chunk in w4.chunks(800) {
            let _ = s.send_update(
                now,
                &Update {
                    withdrawn: chunk.to_vec(),
                    ..Default::default()
                },
            );
        }
        for chunk in w6.chunks(200) {
            let u = Update {
                attrs: PathAttributes {
                    mp_unreach: Some(MpUnreach {
                        family: Family::IPV6_UNICAST,
                        withdrawn: chunk.to_vec(),
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            let _ = s.send_update(now, &u);
        }
        let mut groups: Vec<(PathAttributes, Vec<Prefix>)> =
            announce.into_iter().map(|(a, (_, ps))| (a, ps)).collect();
        groups.sort_by(|a, b| a.1.first().cmp(&b.1.first()));
        for (attrs, prefixes) in groups {
            let attr_len = crate::wire::encode_to_vec(
                &crate::wire::Message::Update(Update {
                    attrs: attrs.clone(),
                    ..Default::default()
                }),
                &s.decode_ctx(),
            )
            .map_or(4096, |v| v.len());
            let v6 = attrs.mp_reach.is_some();
            let per = if v6 { 17 } else { 5 };
            let room = 4096usize.saturating_sub(attr_len + 16) / per;
            for chunk in prefixes.chunks(room.max(1)) {
                let mut a = attrs.clone();
                let u = if let Some(m) = a.mp_reach.as_mut() {
                    m.nlri = chunk.to_vec();
                    Update {
                        attrs: a,
                        ..Default::default()
                    }
                } else {
                    Update {
                        attrs: a,
                        nlri: chunk.to_vec(),
                        ..Default::default()
                    }
                };
                let _ = s.send_update(now, &u);
            }
        }
        if let (Some(data), Some(conn)) = (s.poll_transmit(), n.main.conn) {
            self.out.push_back(Output::Send { conn, data });
        }
    }
}

fn collision() -> Notification {
    Notification {
        code: code::CEASE,
        subcode: cease_sub::COLLISION,
        data: Vec::new(),
    }
}

/// Makes the accepted connection the neighbor's main one; the old main is stopped and drained
/// (its queued NOTIFICATION and Disconnect still reach the shell) and then dropped.
fn promote(n: &mut Neighbor, now: Instant) {
    if let Some(mut o) = n.other.take() {
        o.session.set_passive(n.cfg.session.passive);
        std::mem::swap(&mut n.main, &mut o);
        o.session.stop(now, cease_sub::COLLISION);
        n.other = Some(o);
    }
}

/// Drops stale paths (of one family, or all).
fn drop_stale(n: &mut Neighbor, dirty: &mut BTreeSet<Prefix>, fam: Option<Family>) {
    let stale: Vec<Prefix> = n
        .adj_in
        .iter()
        .filter(|(p, path)| path.stale && fam.is_none_or(|f| p.family() == f))
        .map(|(p, _)| *p)
        .collect();
    for p in stale {
        n.adj_in.remove(&p);
        dirty.insert(p);
    }
}
