//! The sans-IO IKEv2 endpoint: every IKE SA of every tunnel, driven by datagrams, timeouts
//! and commands, with transmissions and events polled out.
//!
//! Exchanges, as initiator and responder:
//! - IKE_SA_INIT (RFC 7296 §1.2) with NAT detection (§2.23), INVALID_KE_PAYLOAD retry with
//!   the requested group (§1.2), COOKIE as initiator and responder (§2.6), NO_PROPOSAL_CHOSEN reported
//!   as an [`Event::NoProposalChosen`] with both sides' proposals;
//! - IKE_AUTH with PSK (§2.15) carrying the first Child SA (§1.2), INITIAL_CONTACT, identity
//!   check of the peer;
//! - CREATE_CHILD_SA rekeying a Child SA (§1.3.3) with optional PFS, make-before-break: the
//!   new SA is announced before the old one is deleted; and rekeying the IKE SA (§1.3.2,
//!   §2.18), moving the Child SAs to the new IKE SA;
//! - CREATE_CHILD_SA creating a new Child SA (§1.3.1) when the tunnel lost its only one
//!   (the tunnel's initiator does this after the peer deleted it); further Child SAs are
//!   refused with NO_ADDITIONAL_SAS (one pair per tunnel);
//! - INFORMATIONAL: liveness (DPD, §2.4), DELETE of Child SAs and of the IKE SA (§1.4.1).
//!
//! Reliability: one request outstanding per IKE SA (window size 1), retransmitted with
//! exponential back-off and a give-up limit (§2.1); duplicate requests get the cached response
//! (§2.2); responses that do not match the outstanding request are dropped.
//!
//! Collisions: Child SA rekey collisions (§2.8.1) and IKE SA rekey collisions (§2.8.2) are
//! settled by the lowest-nonce rule; a simultaneous initiation of one tunnel from both ends
//! is settled the same way, so both ends keep one IKE SA and one Child SA pair.
//!
//! Flood protection: IKE_SA_INIT requests from addresses that are no tunnel's peer create no
//! state; once [`EndpointSettings::cookie_threshold`] half-open SAs exist, or more new
//! IKE_SA_INIT requests than that arrive within a second (from any address), requests must
//! echo a stateless COOKIE (§2.6) before any Diffie-Hellman work is done. Under that load a
//! request from an unknown address gets the COOKIE too (then is dropped), so a flood is
//! answered the same whether its sources are spoofed peers or strangers.
//!
//! IKE fragmentation (RFC 7383): announced in IKE_SA_INIT; when both ends support it, messages
//! longer than [`EndpointSettings::max_ike_message`] go as fragments, and fragments received
//! are verified one by one and reassembled (bounded to 64 fragments and 64 KiB).
//!
//! Not done (yet): more than one Child SA pair per tunnel, EAP and certificate
//! authentication, MOBIKE, configuration payloads.
//! A request for an unsupported exchange gets an error notify, never a false success.

mod sa;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use bh_crypto::{EspSuite, SecureRandom, Zeroizing};

use crate::config::{TunnelId, TunnelIkeConfig};
use crate::sk::IkeSuite;
use crate::wire::{ExchangeType, Header, NotifyType};

pub use sa::SaSnapshot;

/// A point in time, in nanoseconds from an arbitrary origin chosen by the caller (the shell
/// uses CLOCK_BOOTTIME; simulations start at zero).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(pub u64);

impl Instant {
    /// The instant `ns` nanoseconds after the origin.
    pub const fn from_nanos(ns: u64) -> Self {
        Self(ns)
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time elapsed since `earlier` (zero if `earlier` is later).
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl std::ops::Add<Duration> for Instant {
    type Output = Self;
    fn add(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        )
    }
}

/// A datagram to send. `data` is the IKE message without the non-ESP marker: the shell adds
/// the marker when `src` is the ESP port (4500).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Local address to send from.
    pub src: SocketAddr,
    /// Destination.
    pub dst: SocketAddr,
    /// The IKE message.
    pub data: Vec<u8>,
}

/// Why an SA went down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DownReason {
    /// The peer did not answer (retransmissions exhausted or DPD timeout).
    Timeout,
    /// The peer deleted it.
    DeletedByPeer,
    /// We deleted it ([`Endpoint::close`]).
    DeletedLocally,
    /// It was replaced by a rekeyed SA.
    Rekeyed,
    /// The peer's AUTH or identity did not verify, or the peer refused ours.
    AuthenticationFailed,
    /// No proposal was acceptable.
    NoProposalChosen,
    /// The peer answered with this error notify.
    PeerError(NotifyType),
    /// The peer sent INITIAL_CONTACT on a new IKE SA: the old one is stale.
    InitialContact,
    /// A simultaneous initiation made two IKE SAs; this one was the redundant one.
    Duplicate,
    /// The hard lifetime (110 % of the rekey time) passed without a successful rekey.
    Expired,
}

/// What the shell must act on.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// An IKE SA is established (IKE_AUTH finished, or an IKE rekey finished).
    IkeSaUp {
        /// Tunnel.
        tunnel: TunnelId,
        /// Our SPI.
        local_spi: [u8; 8],
        /// The peer's SPI.
        remote_spi: [u8; 8],
        /// The negotiated algorithms.
        suite: IkeSuite,
        /// Whether a NAT was detected (or UDP encapsulation forced).
        nat: bool,
        /// The addresses IKE uses from now on.
        local: SocketAddr,
        /// The peer's address.
        remote: SocketAddr,
    },
    /// An IKE SA is gone.
    IkeSaDown {
        /// Tunnel.
        tunnel: TunnelId,
        /// Our SPI.
        local_spi: [u8; 8],
        /// Why.
        reason: DownReason,
    },
    /// A Child SA pair to install. With `replaces`, the older pair stays installed until its
    /// [`Event::ChildSaDown`] (make-before-break).
    ChildSaUp {
        /// Tunnel.
        tunnel: TunnelId,
        /// SPI the peer sends to (ours).
        inbound_spi: u32,
        /// SPI we send to (the peer's).
        outbound_spi: u32,
        /// ESP suite.
        suite: EspSuite,
        /// Extended sequence numbers.
        esn: bool,
        /// Inbound key material (encryption key with salt, then integrity key).
        keys_in: Zeroizing<Vec<u8>>,
        /// Outbound key material.
        keys_out: Zeroizing<Vec<u8>>,
        /// ESP in UDP (RFC 3948) because of NAT or by force.
        udp_encap: bool,
        /// Local address of the SA.
        local: SocketAddr,
        /// Peer address of the SA.
        remote: SocketAddr,
        /// Inbound SPI of the pair this one rekeys, if any.
        replaces: Option<u32>,
    },
    /// A Child SA pair to remove.
    ChildSaDown {
        /// Tunnel.
        tunnel: TunnelId,
        /// Our inbound SPI.
        inbound_spi: u32,
        /// The outbound SPI.
        outbound_spi: u32,
        /// Why.
        reason: DownReason,
    },
    /// Negotiation failed for want of a common proposal; both sides' offers, readable.
    NoProposalChosen {
        /// Tunnel.
        tunnel: TunnelId,
        /// Which exchange.
        exchange: ExchangeType,
        /// Our proposals.
        ours: String,
        /// The peer's proposals (empty when we only know that the peer refused ours).
        theirs: String,
    },
}

/// Endpoint-wide settings.
#[derive(Clone, Copy, Debug)]
pub struct EndpointSettings {
    /// First retransmission timeout (RFC 7296 §2.1).
    pub retransmit_timeout: Duration,
    /// Retransmissions before giving up; the timeout doubles each time.
    pub retransmit_tries: u32,
    /// Most IKE SAs kept (half-open ones included); further IKE_SA_INIT requests are dropped.
    pub max_sas: usize,
    /// Delay before re-initiating a tunnel that went down.
    pub restart_delay: Duration,
    /// Half-open responder SAs (or new IKE_SA_INIT requests per second) from which on
    /// IKE_SA_INIT requests must return a COOKIE (RFC 7296 §2.6) before any state or
    /// Diffie-Hellman work is spent on them.
    pub cookie_threshold: usize,
    /// The largest IKE message sent whole once fragmentation is negotiated (RFC 7383); larger
    /// ones go as fragments of at most this size (IKE octets, without UDP/IP headers).
    pub max_ike_message: usize,
    /// Inbound ESP SPIs of tunnel `t` are chosen with `SPI mod spi_lanes == t mod spi_lanes`
    /// (1: any SPI). The dataplane steers ESP in UDP to worker `SPI mod workers`, so setting
    /// this to the worker count spreads tunnels evenly over the workers. The SPI stays random
    /// in its other bits (RFC 4303 §2.1 asks only that it be unique and not 1..=255).
    pub spi_lanes: u32,
}

impl Default for EndpointSettings {
    fn default() -> Self {
        Self {
            retransmit_timeout: Duration::from_secs(2),
            retransmit_tries: 5,
            max_sas: 1024,
            restart_delay: Duration::from_secs(5),
            cookie_threshold: 32,
            max_ike_message: 1200,
            spi_lanes: 1,
        }
    }
}

/// Endpoint-wide counters, for status output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointCounters {
    /// IKE_SA_INIT requests answered with a COOKIE notify (RFC 7296 §2.6).
    pub cookies_sent: u64,
    /// Responder IKE SAs waiting for IKE_AUTH (half-open).
    pub half_open: usize,
    /// IKE SAs kept, in any state.
    pub ike_sas: usize,
}

/// State shared by all SAs of an endpoint.
struct Ctx {
    settings: EndpointSettings,
    /// Secret for stateless cookies (RFC 7296 §2.6), drawn at creation.
    cookie_secret: [u8; 32],
    /// Whether IKE_SA_INIT requests must carry a valid cookie (too many half-open SAs).
    require_cookie: bool,
    /// COOKIE notifies sent.
    cookies_sent: u64,
    /// New IKE_SA_INIT requests seen: start of the current one-second window, the count in
    /// it, and the count in the window before.
    init_window: (Instant, u64, u64),
    rng: Box<dyn SecureRandom + Send>,
    tunnels: Vec<TunnelIkeConfig>,
    /// Per tunnel: removed by [`Endpoint::remove_tunnel`] (its id is never reused).
    removed: Vec<bool>,
    restart_at: Vec<Option<Instant>>,
    tx: VecDeque<Transmit>,
    ev: VecDeque<Event>,
}

impl Ctx {
    /// Counts a new IKE_SA_INIT request and tells whether they arrive faster than
    /// [`EndpointSettings::cookie_threshold`] per second (in this window or the one before):
    /// a flood from addresses that create no half-open SA (unknown or spoofed) must still
    /// turn cookies on (RFC 7296 §2.6).
    fn count_init_request(&mut self, now: Instant) -> bool {
        let (start, cur, prev) = self.init_window;
        let elapsed = now.saturating_duration_since(start);
        self.init_window = if elapsed >= Duration::from_secs(2) {
            (now, 1, 0)
        } else if elapsed >= Duration::from_secs(1) {
            (now, 1, cur)
        } else {
            (start, cur.saturating_add(1), prev)
        };
        let limit = u64::try_from(self.settings.cookie_threshold).unwrap_or(u64::MAX);
        self.init_window.1 > limit || self.init_window.2 > limit
    }
}

/// The IKEv2 engine for all tunnels. See the module documentation.
pub struct Endpoint {
    ctx: Ctx,
    sas: Vec<sa::IkeSa>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("tunnels", &self.ctx.tunnels.len())
            .field("sas", &self.sas.len())
            .finish_non_exhaustive()
    }
}

/// Bounds on the queues, so a flood cannot grow memory without limit.
const MAX_QUEUE: usize = 4096;

impl Endpoint {
    /// An endpoint with no tunnels.
    pub fn new(settings: EndpointSettings, mut rng: Box<dyn SecureRandom + Send>) -> Self {
        let mut cookie_secret = [0u8; 32];
        rng.fill(&mut cookie_secret);
        Self {
            ctx: Ctx {
                settings,
                cookie_secret,
                require_cookie: false,
                cookies_sent: 0,
                init_window: (Instant(0), 0, 0),
                rng,
                tunnels: Vec::new(),
                removed: Vec::new(),
                restart_at: Vec::new(),
                tx: VecDeque::new(),
                ev: VecDeque::new(),
            },
            sas: Vec::new(),
        }
    }

    /// Adds a tunnel and returns its id.
    pub fn add_tunnel(&mut self, cfg: TunnelIkeConfig) -> TunnelId {
        let id = TunnelId(u32::try_from(self.ctx.tunnels.len()).unwrap_or(u32::MAX));
        self.ctx.tunnels.push(cfg);
        self.ctx.removed.push(false);
        self.ctx.restart_at.push(None);
        id
    }

    /// Replaces the configuration of `tunnel` (configuration reload): its IKE SAs and Child
    /// SAs are deleted at the peer (INFORMATIONAL DELETE, RFC 7296 §1.4.1) and reported down,
    /// and the next negotiation uses `cfg`. The caller starts it with
    /// [`initiate`](Self::initiate) when `cfg.initiator`; otherwise the tunnel waits for the
    /// peer. Does nothing for an unknown or removed tunnel.
    pub fn replace_tunnel(&mut self, now: Instant, tunnel: TunnelId, cfg: TunnelIkeConfig) {
        let i = tunnel.0 as usize;
        if self.ctx.removed.get(i).is_none_or(|r| *r) {
            return;
        }
        self.close(now, tunnel);
        if let Some(slot) = self.ctx.tunnels.get_mut(i) {
            *slot = cfg;
        }
    }

    /// Removes `tunnel` (configuration reload): its SAs are deleted at the peer as by
    /// [`close`](Self::close), requests from its peer are no longer answered, and it is never
    /// started again. Its id is not reused.
    pub fn remove_tunnel(&mut self, now: Instant, tunnel: TunnelId) {
        self.close(now, tunnel);
        if let Some(r) = self.ctx.removed.get_mut(tunnel.0 as usize) {
            *r = true;
        }
    }

    /// The configuration of a tunnel.
    pub fn tunnel(&self, id: TunnelId) -> Option<&TunnelIkeConfig> {
        self.ctx.tunnels.get(id.0 as usize)
    }

    /// Starts IKE_SA_INIT for `tunnel`. Does nothing for an unknown or removed tunnel.
    pub fn initiate(&mut self, now: Instant, tunnel: TunnelId) {
        if self.ctx.removed.get(tunnel.0 as usize).is_none_or(|r| *r) {
            return;
        }
        if let Some(slot) = self.ctx.restart_at.get_mut(tunnel.0 as usize) {
            *slot = None;
        } else {
            return;
        }
        if self.sas.len() >= self.ctx.settings.max_sas {
            return;
        }
        if let Some(sa) = sa::IkeSa::initiate(&mut self.ctx, now, tunnel, None) {
            self.sas.push(sa);
        }
    }

    /// Deletes the IKE SA(s) of `tunnel` (INFORMATIONAL with DELETE); the tunnel is not
    /// restarted.
    pub fn close(&mut self, now: Instant, tunnel: TunnelId) {
        if let Some(slot) = self.ctx.restart_at.get_mut(tunnel.0 as usize) {
            *slot = None;
        }
        for sa in self.sas.iter_mut().filter(|s| s.tunnel == tunnel) {
            sa.close(&mut self.ctx, now, DownReason::DeletedLocally);
        }
        self.gc(now);
    }

    /// Tells the engine that authenticated ESP arrived on `tunnel`, so DPD need not ask
    /// (RFC 7296 §2.4: liveness checks are for when nothing protected is received).
    pub fn note_traffic(&mut self, now: Instant, tunnel: TunnelId) {
        for sa in self
            .sas
            .iter_mut()
            .filter(|s| s.tunnel == tunnel && s.is_live())
        {
            sa.note_traffic(now);
        }
    }

    /// Deletes the Child SA(s) of `tunnel` but keeps the IKE SA (INFORMATIONAL with DELETE).
    /// The peer, if it initiates this tunnel, may negotiate a new Child SA.
    pub fn delete_child(&mut self, now: Instant, tunnel: TunnelId) {
        for sa in self
            .sas
            .iter_mut()
            .filter(|s| s.tunnel == tunnel && s.is_live())
        {
            sa.delete_children(&mut self.ctx, now);
        }
    }

    /// Handles one received IKE message (without the non-ESP marker).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        local: SocketAddr,
        data: &[u8],
    ) {
        let Ok((header, _, _)) = Header::decode(data) else {
            return;
        };
        if header.exchange == ExchangeType::IKE_SA_INIT && !header.is_response() {
            if let Some(sa) = self
                .sas
                .iter_mut()
                .find(|s| !s.initiator && s.spi_i == header.spi_i && s.remote_ip() == remote.ip())
            {
                sa.handle(&mut self.ctx, now, remote, local, &header, data);
                return;
            }
            if self.sas.len() >= self.ctx.settings.max_sas {
                return;
            }
            let half_open = self.sas.iter().filter(|s| s.is_half_open()).count();
            let busy = self.ctx.count_init_request(now);
            self.ctx.require_cookie = half_open >= self.ctx.settings.cookie_threshold || busy;
            if let Some(sa) =
                sa::IkeSa::respond_init(&mut self.ctx, now, remote, local, &header, data)
            {
                self.sas.push(sa);
            }
        } else {
            // The sender's role tells which SPI is ours (RFC 7296 §2.6).
            let ours = if header.from_initiator() {
                header.spi_r
            } else {
                header.spi_i
            };
            let Some(i) = self
                .sas
                .iter()
                .position(|s| s.local_spi() == ours && s.matches_peer_spi(&header))
            else {
                return;
            };
            let mut sa = self.sas.swap_remove(i);
            sa.others_with_peer = self.sas.iter().any(|o| {
                !o.is_dead() && (o.tunnel == sa.tunnel || o.remote_ip() == sa.remote_ip())
            });
            let spawned = sa.handle(&mut self.ctx, now, remote, local, &header, data);
            self.sas.push(sa);
            if let Some(new) = spawned {
                self.sas.push(new);
            }
            if self.sas.iter().any(|s| s.initial_contact_pending) {
                self.initial_contact(now);
            }
            if self.sas.iter().any(|s| s.fresh_auth) {
                self.dedupe(now);
            }
            self.apply_child_moves(now);
        }
        self.gc(now);
    }

    /// Handles expired timers: retransmissions, DPD, rekeying, restarts.
    pub fn handle_timeout(&mut self, now: Instant) {
        for sa in &mut self.sas {
            sa.handle_timeout(&mut self.ctx, now);
        }
        for t in 0..self.ctx.restart_at.len() {
            if self.ctx.restart_at[t].is_some_and(|at| at <= now) {
                self.initiate(now, TunnelId(u32::try_from(t).unwrap_or(u32::MAX)));
            }
        }
        self.gc(now);
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.ctx.tx.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.ctx.ev.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let sas = self.sas.iter().filter_map(sa::IkeSa::next_timeout);
        let restarts = self.ctx.restart_at.iter().flatten().copied();
        sas.chain(restarts).min()
    }

    /// Endpoint-wide counters (cookies sent, half-open and total IKE SAs), for status output.
    pub fn counters(&self) -> EndpointCounters {
        EndpointCounters {
            cookies_sent: self.ctx.cookies_sent,
            half_open: self.sas.iter().filter(|s| s.is_half_open()).count(),
            ike_sas: self.sas.len(),
        }
    }

    /// A summary of every IKE SA, for status output.
    pub fn snapshot(&self) -> Vec<SaSnapshot> {
        self.sas.iter().map(sa::IkeSa::snapshot).collect()
    }

    /// Seals `inner` as the next request of the first established IKE SA of `tunnel`,
    /// without tracking it (for [`crate::fuzzing`]).
    pub(crate) fn craft_request(
        &mut self,
        tunnel: TunnelId,
        exchange: ExchangeType,
        inner: &[crate::wire::Payload],
    ) -> Option<Transmit> {
        let sa = self
            .sas
            .iter_mut()
            .find(|s| s.tunnel == tunnel && s.snapshot().state == "established")?;
        sa.craft_request(&mut self.ctx, exchange, inner)
    }

    /// INITIAL_CONTACT (RFC 7296 §2.4): IKE SAs of the same tunnel that were established
    /// before the new one was begun are stale and go. SAs negotiated at the same time (a
    /// simultaneous initiation) are left to [`Self::dedupe`].
    fn initial_contact(&mut self, now: Instant) {
        let fresh: Vec<(TunnelId, [u8; 8], Instant)> = self
            .sas
            .iter_mut()
            .filter(|s| s.initial_contact_pending)
            .map(|s| {
                s.initial_contact_pending = false;
                (s.tunnel, s.local_spi(), s.created)
            })
            .collect();
        for (t, spi, created) in fresh {
            for sa in self.sas.iter_mut().filter(|s| {
                s.tunnel == t
                    && s.local_spi() != spi
                    && s.established_at.is_some_and(|e| e < created)
            }) {
                sa.kill(&mut self.ctx, now, DownReason::InitialContact, false);
            }
        }
    }

    /// Simultaneous initiation: when two IKE SAs of one tunnel were negotiated at the same
    /// time, the one created with the lowest nonce is redundant (the rule RFC 7296 §2.8.2
    /// gives for rekey collisions) and is deleted with its Child SAs, so both ends keep the
    /// same single IKE SA and Child SA pair. A half-open initiation of ours is abandoned as
    /// soon as the peer's initiation of the same tunnel is established.
    fn dedupe(&mut self, now: Instant) {
        let fresh: Vec<usize> = (0..self.sas.len())
            .filter(|&i| self.sas[i].fresh_auth)
            .collect();
        for i in fresh {
            self.sas[i].fresh_auth = false;
            let (t, created_i, est_i) = (
                self.sas[i].tunnel,
                self.sas[i].created,
                self.sas[i].established_at,
            );
            let Some(est_i) = est_i else { continue };
            // The peer's initiation of this tunnel succeeded: our own IKE_SA_INIT still
            // waiting for an answer (e.g. its first message was lost) would only make a
            // duplicate, so it is abandoned before it gets that far.
            if !self.sas[i].initiator {
                for o in self
                    .sas
                    .iter_mut()
                    .filter(|o| o.tunnel == t && o.is_initiating())
                {
                    o.kill(&mut self.ctx, now, DownReason::Duplicate, false);
                }
            }
            for j in 0..self.sas.len() {
                if i == j {
                    continue;
                }
                let o = &self.sas[j];
                let overlap = o.tunnel == t
                    && o.is_live()
                    && o.established_at.is_some_and(|e| e >= created_i)
                    && o.created <= est_i;
                if !overlap || !self.sas[i].is_live() {
                    continue;
                }
                let loser = if self.sas[i].min_nonce() < o.min_nonce() {
                    i
                } else {
                    j
                };
                // Both ends pick the same loser, and each deletes it whatever its role:
                // a peer that does not apply this rule (strongSwan) then still ends with
                // one IKE SA, and two DELETEs crossing for one SA are harmless (§1.4.1).
                self.sas[loser].close(&mut self.ctx, now, DownReason::Duplicate);
            }
        }
    }

    /// Moves Child SAs between IKE SAs as an IKE rekey collision was settled.
    fn apply_child_moves(&mut self, now: Instant) {
        let moves: Vec<sa::ChildMove> = self
            .sas
            .iter_mut()
            .filter_map(|s| s.child_move.take())
            .collect();
        for m in moves {
            let Some(fi) = self.sas.iter().position(|s| s.local_spi() == m.from) else {
                continue;
            };
            let children = self.sas[fi].take_children();
            if let Some(to) = self.sas.iter_mut().find(|s| s.local_spi() == m.to) {
                to.adopt_children(children);
            }
            if m.close_from {
                self.sas[fi].close(&mut self.ctx, now, DownReason::Duplicate);
            } else if m.kill_from {
                self.sas[fi].kill(&mut self.ctx, now, DownReason::Rekeyed, false);
            }
        }
    }

    fn gc(&mut self, _now: Instant) {
        self.sas.retain(|s| !s.is_dead());
        // A tunnel with a live IKE SA needs no restart (e.g. the loser of a duplicate went).
        for s in &self.sas {
            if s.is_live() {
                if let Some(slot) = self.ctx.restart_at.get_mut(s.tunnel.0 as usize) {
                    *slot = None;
                }
            }
        }
        let c = &mut self.ctx;
        while c.tx.len() > MAX_QUEUE {
            c.tx.pop_front();
        }
        while c.ev.len() > MAX_QUEUE {
            c.ev.pop_front();
        }
    }
}
