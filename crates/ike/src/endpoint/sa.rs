//! One IKE SA and its Child SAs: the exchanges of RFC 7296 as a state machine.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bh_crypto::{DhGroup, DhPrivate, Prf, Zeroizing};
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use super::{Ctx, DownReason, Event, Instant, Transmit};
use crate::config::{self, ChosenEsp, TunnelId, TunnelIkeConfig};
use crate::sk::{self, DirKeys, IkeKeys, IkeSuite};
use crate::wire::{
    Auth, AuthMethod, Delete, ExchangeType, FLAG_INITIATOR, FLAG_RESPONSE, Header, Identification,
    KeyExchange, Message, Notify, NotifyType, Payload, PayloadType, Proposal, ProtocolId,
    TrafficSelector, VERSION_2_0, find_notify,
};

/// The ESP port, where IKE floats when a NAT is detected (RFC 7296 §2.23).
const NAT_T_PORT: u16 = 4500;
/// Nonce length we send (at least half the PRF key size, RFC 7296 §2.10; 32 covers all).
const NONCE_LEN: usize = 32;

/// A summary of an IKE SA for status output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaSnapshot {
    /// Tunnel.
    pub tunnel: TunnelId,
    /// Our SPI.
    pub local_spi: [u8; 8],
    /// Whether we are the original initiator.
    pub initiator: bool,
    /// State name.
    pub state: &'static str,
    /// Negotiated suite, once known.
    pub suite: Option<IkeSuite>,
    /// Child SAs as (inbound, outbound) SPIs.
    pub children: Vec<(u32, u32)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    InitSent,
    AuthSent,
    RespInitDone,
    Established,
    Dead,
}

pub(super) struct Child {
    in_spi: [u8; 4],
    out_spi: [u8; 4],
    rekey_at: Option<Instant>,
    rekeying: bool,
    /// Hard lifetime: 110 % of the rekey time. Still here then, the rekey failed.
    expire_at: Instant,
}

/// The hard lifetime for a soft (rekey) lifetime `d`: 110 %, as strongSwan's default.
fn hard(d: Duration) -> Duration {
    d.saturating_add(d / 10)
}

/// Stands for "no Child SA" where an inbound SPI is expected: SPI 0 is reserved (RFC 4303
/// §2.1) and never allocated here, so a "rekey" of it is the creation of a new Child SA.
const NO_CHILD: [u8; 4] = [0; 4];

/// The most octets kept while reassembling one message.
const MAX_REASSEMBLY: usize = 64 * 1024;

/// A message being reassembled from fragments (RFC 7383 §2.6).
struct Reassembly {
    mid: u32,
    response: bool,
    total: u16,
    first_inner: PayloadType,
    parts: Vec<Option<Zeroizing<Vec<u8>>>>,
    bytes: usize,
}

enum Reassembled {
    Done(sk::Opened),
    Bad(crate::wire::DecodeError),
}

/// Children to move from one IKE SA to another (by our SPIs), optionally closing the source.
pub(super) struct ChildMove {
    pub(super) from: [u8; 8],
    pub(super) to: [u8; 8],
    pub(super) close_from: bool,
    /// Mark the source dead once emptied (the peer already deleted it).
    pub(super) kill_from: bool,
}

/// A peer's rekey of a Child SA that we were rekeying ourselves (RFC 7296 §2.8.1).
struct Collision {
    old_in: [u8; 4],
    ni: Vec<u8>,
    nr: Vec<u8>,
}

enum Req {
    Dpd,
    DeleteIke,
    DeleteChild([u8; 4], DownReason),
    /// Delete a Child SA we negotiated but never announced (the loser of a collision).
    DeleteRedundant([u8; 4]),
    RekeyChild([u8; 4]),
    RekeyIke,
}

enum Kind {
    Init,
    Auth {
        in_spi: [u8; 4],
    },
    Dpd,
    DeleteIke,
    DeleteChild,
    RekeyChild {
        old_in: [u8; 4],
        new_in: [u8; 4],
        ni: Vec<u8>,
        dh: Option<DhPrivate>,
    },
    RekeyIke {
        new_spi: [u8; 8],
        ni: Vec<u8>,
        dh: DhPrivate,
    },
}

struct Pending {
    mid: u32,
    /// The request's datagrams (several when fragmented, RFC 7383).
    data: Vec<Vec<u8>>,
    next_retx: Instant,
    tries: u32,
    deadline: Option<Instant>,
    kind: Kind,
}

pub(super) struct IkeSa {
    pub(super) tunnel: TunnelId,
    pub(super) initiator: bool,
    pub(super) spi_i: [u8; 8],
    pub(super) spi_r: [u8; 8],
    pub(super) initial_contact_pending: bool,
    /// When this SA object was created (IKE_SA_INIT sent or received, or rekey done).
    pub(super) created: Instant,
    /// When it became established.
    pub(super) established_at: Option<Instant>,
    /// Set when IKE_AUTH just completed: the endpoint then checks for a duplicate SA from a
    /// simultaneous initiation.
    pub(super) fresh_auth: bool,
    /// Set by the endpoint before each message is handled: another IKE SA with the same
    /// peer exists, so IKE_AUTH must not carry INITIAL_CONTACT (RFC 7296 §2.4).
    pub(super) others_with_peer: bool,
    collisions: Vec<Collision>,
    /// A peer's IKE rekey received while ours was in flight: (Ni, Nr, our SPI of that SA).
    ike_collision: Option<(Vec<u8>, Vec<u8>, [u8; 8])>,
    /// The IKE SA our own rekey created: (our SPI there, Ni, Nr).
    rekeyed_into: Option<([u8; 8], Vec<u8>, Vec<u8>)>,
    /// Children to move between IKE SAs, applied by the endpoint (IKE rekey collisions).
    pub(super) child_move: Option<ChildMove>,
    /// Whether IkeSaUp was announced (a redundant SA from a collision never is).
    announced: bool,
    /// When to try again to create a Child SA for a tunnel that lost its only one.
    new_child_at: Option<Instant>,
    /// Hard lifetime of the IKE SA (110 % of the rekey time).
    ike_expire_at: Option<Instant>,
    state: State,
    local: SocketAddr,
    remote: SocketAddr,
    nat: bool,
    ni: Vec<u8>,
    nr: Vec<u8>,
    dh: Option<DhPrivate>,
    group: DhGroup,
    cookie: Option<Vec<u8>>,
    init_req: Vec<u8>,
    init_resp: Vec<u8>,
    keys: Option<IkeKeys>,
    my_mid: u32,
    peer_mid: u32,
    last_resp: Option<(u32, Vec<Vec<u8>>)>,
    /// Both ends announced IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383 §2.3).
    frag: bool,
    /// Fragments of the message being reassembled.
    reasm: Option<Reassembly>,
    pending: Option<Pending>,
    queue: VecDeque<Req>,
    children: Vec<Child>,
    last_heard: Instant,
    ike_rekey_at: Option<Instant>,
    delete_after_reply: bool,
    replaced: bool,
    dpd_interval: Option<Duration>,
    half_open_until: Instant,
}

fn nat_hash(spi_i: &[u8; 8], spi_r: &[u8; 8], addr: SocketAddr) -> Vec<u8> {
    let mut h = Sha1::new();
    h.update(spi_i);
    h.update(spi_r);
    match addr.ip() {
        IpAddr::V4(a) => h.update(a.octets()),
        IpAddr::V6(a) => h.update(a.octets()),
    }
    h.update(addr.port().to_be_bytes());
    h.finalize().to_vec()
}

fn psk_auth(
    prf: Prf,
    psk: &[u8],
    msg: &[u8],
    nonce: &[u8],
    sk_p: &[u8],
    id: &Identification,
) -> Zeroizing<Vec<u8>> {
    // RFC 7296 §2.15: AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>),
    // SignedOctets = RealMessage | Nonce of the peer | prf(SK_p, RestOfIDPayload).
    let maced = prf.compute(sk_p, &id.body());
    let pad = prf.compute(psk, b"Key Pad for IKEv2");
    prf.compute_parts(&pad, &[msg, nonce, &maced])
}

fn jitter(ctx: &mut Ctx, d: Duration, percent: u8) -> Duration {
    let mut b = [0u8; 2];
    ctx.rng.fill(&mut b);
    let frac = u64::from(u16::from_be_bytes(b)) * u64::from(percent.min(100));
    // d * frac / (65536 * 100), in milliseconds.
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let cut = ms.saturating_mul(frac) / (65_536 * 100);
    d.saturating_sub(Duration::from_millis(cut))
}

/// A random inbound ESP SPI in the tunnel's lane: `SPI mod spi_lanes == tunnel mod spi_lanes`
/// (see [`super::EndpointSettings::spi_lanes`]).
fn new_esp_spi(ctx: &mut Ctx, tunnel: TunnelId) -> [u8; 4] {
    let lanes = ctx.settings.spi_lanes.max(1);
    let lane = tunnel.0 % lanes;
    loop {
        let mut s = [0u8; 4];
        ctx.rng.fill(&mut s);
        let v = u32::from_be_bytes(s);
        let Some(v) = (v - v % lanes).checked_add(lane) else {
            continue;
        };
        // 1..=255 are reserved (RFC 4303 §2.1).
        if v > 255 {
            return v.to_be_bytes();
        }
    }
}

fn new_ike_spi(ctx: &mut Ctx) -> [u8; 8] {
    loop {
        let mut s = [0u8; 8];
        ctx.rng.fill(&mut s);
        if s != [0; 8] {
            return s;
        }
    }
}

fn nonce(ctx: &mut Ctx) -> Vec<u8> {
    let mut n = vec![0u8; NONCE_LEN];
    ctx.rng.fill(&mut n);
    n
}

fn payload<'a, T>(ps: &'a [Payload], f: impl Fn(&'a Payload) -> Option<T>) -> Option<T> {
    ps.iter().find_map(f)
}

fn sa_of(ps: &[Payload]) -> Option<&Vec<Proposal>> {
    payload(ps, |p| {
        if let Payload::Sa(v) = p {
            Some(v)
        } else {
            None
        }
    })
}

fn ke_of(ps: &[Payload]) -> Option<&KeyExchange> {
    payload(ps, |p| {
        if let Payload::Ke(v) = p {
            Some(v)
        } else {
            None
        }
    })
}

fn nonce_of(ps: &[Payload]) -> Option<&Vec<u8>> {
    payload(ps, |p| {
        if let Payload::Nonce(v) = p {
            Some(v)
        } else {
            None
        }
    })
}

fn first_error(ps: &[Payload]) -> Option<NotifyType> {
    payload(ps, |p| match p {
        Payload::Notify(n) if n.ty.is_error() => Some(n.ty),
        _ => None,
    })
}

fn ts_of(ps: &[Payload]) -> (Vec<TrafficSelector>, Vec<TrafficSelector>) {
    let i = payload(ps, |p| {
        if let Payload::TsI(v) = p {
            Some(v.clone())
        } else {
            None
        }
    });
    let r = payload(ps, |p| {
        if let Payload::TsR(v) = p {
            Some(v.clone())
        } else {
            None
        }
    });
    (i.unwrap_or_default(), r.unwrap_or_default())
}

fn default_ts() -> Vec<TrafficSelector> {
    vec![TrafficSelector::ipv4_any(), TrafficSelector::ipv6_any()]
}

impl IkeSa {
    fn cfg<'a>(&self, ctx: &'a Ctx) -> Option<&'a TunnelIkeConfig> {
        ctx.tunnels.get(self.tunnel.0 as usize)
    }

    pub(super) fn local_spi(&self) -> [u8; 8] {
        if self.initiator {
            self.spi_i
        } else {
            self.spi_r
        }
    }

    pub(super) fn matches_peer_spi(&self, h: &Header) -> bool {
        if self.initiator {
            // The IKE_SA_INIT response brings the responder's SPI for the first time.
            self.spi_r == h.spi_r
                || (self.state == State::InitSent && h.exchange == ExchangeType::IKE_SA_INIT)
        } else {
            self.spi_i == h.spi_i
        }
    }

    pub(super) fn remote_ip(&self) -> IpAddr {
        self.remote.ip()
    }

    /// Deletes every Child SA of this IKE SA (INFORMATIONAL DELETE), announcing each down.
    pub(super) fn delete_children(&mut self, ctx: &mut Ctx, now: Instant) {
        for c in &self.children {
            self.queue
                .push_back(Req::DeleteChild(c.in_spi, DownReason::DeletedLocally));
        }
        self.pump(ctx, now);
    }

    /// Authenticated traffic arrived for this SA's tunnel: the peer is alive (RFC 7296 §2.4).
    pub(super) fn note_traffic(&mut self, now: Instant) {
        if now > self.last_heard {
            self.last_heard = now;
        }
    }

    /// Takes the Child SAs away (they move to another IKE SA); this SA is then replaced.
    pub(super) fn take_children(&mut self) -> Vec<Child> {
        self.replaced = true;
        self.ike_rekey_at = None;
        std::mem::take(&mut self.children)
    }

    /// Adopts Child SAs moved from another IKE SA.
    pub(super) fn adopt_children(&mut self, children: Vec<Child>) {
        self.children.extend(children);
    }

    /// Whether this is a responder SA waiting for IKE_AUTH.
    pub(super) fn is_half_open(&self) -> bool {
        self.state == State::RespInitDone
    }

    /// Whether this is our own IKE_SA_INIT still waiting for its response (nothing of it is
    /// established at the peer yet).
    pub(super) fn is_initiating(&self) -> bool {
        self.initiator && self.state == State::InitSent
    }

    /// Whether the SA is established and not replaced by a rekey.
    pub(super) fn is_live(&self) -> bool {
        self.state == State::Established && !self.replaced
    }

    /// The lower of the two nonces of the exchange that created this SA.
    pub(super) fn min_nonce(&self) -> &[u8] {
        if self.ni <= self.nr {
            &self.ni
        } else {
            &self.nr
        }
    }

    pub(super) fn is_dead(&self) -> bool {
        self.state == State::Dead
    }

    pub(super) fn snapshot(&self) -> SaSnapshot {
        SaSnapshot {
            tunnel: self.tunnel,
            local_spi: self.local_spi(),
            initiator: self.initiator,
            state: match self.state {
                State::InitSent => "init-sent",
                State::AuthSent => "auth-sent",
                State::RespInitDone => "init-done",
                State::Established => "established",
                State::Dead => "dead",
            },
            suite: self.keys.as_ref().map(|k| k.suite),
            children: self
                .children
                .iter()
                .map(|c| (u32::from_be_bytes(c.in_spi), u32::from_be_bytes(c.out_spi)))
                .collect(),
        }
    }

    fn blank(
        tunnel: TunnelId,
        initiator: bool,
        local: SocketAddr,
        remote: SocketAddr,
        now: Instant,
        group: DhGroup,
    ) -> Self {
        Self {
            tunnel,
            initiator,
            spi_i: [0; 8],
            spi_r: [0; 8],
            initial_contact_pending: false,
            created: now,
            established_at: None,
            fresh_auth: false,
            others_with_peer: false,
            collisions: Vec::new(),
            ike_collision: None,
            rekeyed_into: None,
            child_move: None,
            announced: false,
            new_child_at: None,
            ike_expire_at: None,
            state: State::InitSent,
            local,
            remote,
            nat: false,
            ni: Vec::new(),
            nr: Vec::new(),
            dh: None,
            group,
            cookie: None,
            init_req: Vec::new(),
            init_resp: Vec::new(),
            keys: None,
            my_mid: 0,
            peer_mid: 0,
            last_resp: None,
            frag: false,
            reasm: None,
            pending: None,
            queue: VecDeque::new(),
            children: Vec::new(),
            last_heard: now,
            ike_rekey_at: None,
            delete_after_reply: false,
            replaced: false,
            dpd_interval: None,
            half_open_until: now + Duration::from_secs(60),
        }
    }

    // ----- sending helpers -----

    fn send(&self, ctx: &mut Ctx, data: Vec<u8>) {
        ctx.tx.push_back(Transmit {
            src: self.local,
            dst: self.remote,
            data,
        });
    }

    fn out_keys(&self) -> Option<(&IkeSuite, &DirKeys)> {
        let k = self.keys.as_ref()?;
        Some((
            &k.suite,
            if self.initiator {
                &k.initiator
            } else {
                &k.responder
            },
        ))
    }

    fn in_keys(&self) -> Option<(&IkeSuite, &DirKeys)> {
        let k = self.keys.as_ref()?;
        Some((
            &k.suite,
            if self.initiator {
                &k.responder
            } else {
                &k.initiator
            },
        ))
    }

    fn header(&self, exchange: ExchangeType, response: bool, mid: u32) -> Header {
        let mut flags = if self.initiator { FLAG_INITIATOR } else { 0 };
        if response {
            flags |= FLAG_RESPONSE;
        }
        Header {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            version: VERSION_2_0,
            exchange,
            flags,
            message_id: mid,
        }
    }

    fn seal(&self, ctx: &mut Ctx, h: &Header, inner: &[Payload]) -> Option<Vec<u8>> {
        let (suite, keys) = self.out_keys()?;
        sk::seal(h, &[], inner, suite, keys, ctx.rng.as_mut()).ok()
    }

    /// Sends a protected request and keeps it for retransmission.
    /// Seals `inner` as this side's next request without tracking it (fuzzing support:
    /// lets a harness reach the peer's handling of decrypted payloads).
    pub(super) fn craft_request(
        &mut self,
        ctx: &mut Ctx,
        exchange: ExchangeType,
        inner: &[Payload],
    ) -> Option<Transmit> {
        let h = self.header(exchange, false, self.my_mid);
        let data = self.seal(ctx, &h, inner)?;
        self.my_mid = self.my_mid.wrapping_add(1);
        Some(Transmit {
            src: self.local,
            dst: self.remote,
            data,
        })
    }

    /// Seals a message, as fragments when negotiated and needed (RFC 7383 §2.5).
    fn seal_datagrams(&self, ctx: &mut Ctx, h: &Header, inner: &[Payload]) -> Option<Vec<Vec<u8>>> {
        let whole = self.seal(ctx, h, inner)?;
        let max = ctx.settings.max_ike_message;
        if !self.frag || whole.len() <= max {
            return Some(vec![whole]);
        }
        let (suite, keys) = self.out_keys()?;
        sk::seal_fragments(h, inner, suite, keys, ctx.rng.as_mut(), max).ok()
    }

    fn send_all(&self, ctx: &mut Ctx, data: &[Vec<u8>]) {
        for d in data {
            self.send(ctx, d.clone());
        }
    }

    fn request(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        exchange: ExchangeType,
        inner: &[Payload],
        kind: Kind,
        deadline: Option<Instant>,
    ) {
        let mid = self.my_mid;
        let h = self.header(exchange, false, mid);
        let Some(data) = self.seal_datagrams(ctx, &h, inner) else {
            return;
        };
        self.my_mid = self.my_mid.wrapping_add(1);
        self.send_all(ctx, &data);
        self.pending = Some(Pending {
            mid,
            data,
            next_retx: now + ctx.settings.retransmit_timeout,
            tries: 0,
            deadline,
            kind,
        });
    }

    /// Sends a protected response and caches it for duplicate requests.
    fn respond(&mut self, ctx: &mut Ctx, exchange: ExchangeType, mid: u32, inner: &[Payload]) {
        let h = self.header(exchange, true, mid);
        if let Some(data) = self.seal_datagrams(ctx, &h, inner) {
            self.send_all(ctx, &data);
            self.last_resp = Some((mid, data));
        }
    }

    // ----- IKE_SA_INIT -----

    pub(super) fn initiate(
        ctx: &mut Ctx,
        now: Instant,
        tunnel: TunnelId,
        group: Option<DhGroup>,
    ) -> Option<Self> {
        let cfg = ctx.tunnels.get(tunnel.0 as usize)?;
        let group = group.or_else(|| {
            cfg.ike_proposals
                .first()
                .and_then(|p| p.dh.first().copied())
        })?;
        let mut sa = Self::blank(tunnel, true, cfg.local_addr, cfg.remote_addr, now, group);
        sa.spi_i = new_ike_spi(ctx);
        sa.send_init(ctx, now);
        Some(sa)
    }

    /// Sends (or, after COOKIE, resends unchanged but for the cookie: RFC 7296 §2.6) the
    /// IKE_SA_INIT request. A new DH value is drawn when there is none for the current group
    /// (first send, or INVALID_KE_PAYLOAD retry).
    fn send_init(&mut self, ctx: &mut Ctx, now: Instant) {
        let dh = match self.dh.take() {
            Some(d) if d.group() == self.group => d,
            _ => match self.group.generate(ctx.rng.as_mut()) {
                Ok(d) => d,
                Err(_) => {
                    self.state = State::Dead;
                    return;
                }
            },
        };
        if self.ni.is_empty() {
            self.ni = nonce(ctx);
        }
        let Some(cfg) = self.cfg(ctx).cloned() else {
            return;
        };
        let props: Vec<Proposal> = cfg
            .ike_proposals
            .iter()
            .enumerate()
            .map(|(i, p)| {
                p.to_wire(
                    u8::try_from(i + 1).unwrap_or(u8::MAX),
                    vec![],
                    Some(self.group),
                )
            })
            .collect();
        let force = cfg.force_udp_encap;
        let mut ps = Vec::new();
        if let Some(c) = &self.cookie {
            ps.push(Payload::Notify(Notify::new(NotifyType::COOKIE, c.clone())));
        }
        ps.push(Payload::Sa(props));
        ps.push(Payload::Ke(KeyExchange {
            group: self.group.id(),
            data: dh.public().to_vec(),
        }));
        ps.push(Payload::Nonce(self.ni.clone()));
        let src_hash = if force {
            let mut r = vec![0u8; 20];
            ctx.rng.fill(&mut r);
            r
        } else {
            nat_hash(&self.spi_i, &[0; 8], self.local)
        };
        ps.push(Payload::Notify(Notify::new(
            NotifyType::NAT_DETECTION_SOURCE_IP,
            src_hash,
        )));
        ps.push(Payload::Notify(Notify::new(
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            nat_hash(&self.spi_i, &[0; 8], self.remote),
        )));
        ps.push(Payload::Notify(Notify::new(
            NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
            vec![],
        )));
        self.dh = Some(dh);
        let msg = Message {
            header: self.header(ExchangeType::IKE_SA_INIT, false, 0),
            payloads: ps,
        };
        let Ok(data) = msg.encode() else { return };
        self.init_req = data.clone();
        self.my_mid = 1;
        self.state = State::InitSent;
        self.send(ctx, data.clone());
        self.pending = Some(Pending {
            mid: 0,
            data: vec![data],
            next_retx: now + ctx.settings.retransmit_timeout,
            tries: 0,
            deadline: None,
            kind: Kind::Init,
        });
    }

    pub(super) fn respond_init(
        ctx: &mut Ctx,
        now: Instant,
        remote: SocketAddr,
        local: SocketAddr,
        header: &Header,
        data: &[u8],
    ) -> Option<Self> {
        if header.message_id != 0 || header.spi_r != [0; 8] {
            return None;
        }
        let tidx = ctx
            .tunnels
            .iter()
            .zip(&ctx.removed)
            .position(|(t, removed)| !removed && t.remote_addr.ip() == remote.ip());
        // A request from an address of no tunnel is dropped, but under load it first gets
        // the stateless COOKIE like any other (RFC 7296 §2.6), so a flood from many
        // (spoofed) addresses costs one hash each and a real peer is not told apart.
        if tidx.is_none() && !ctx.require_cookie {
            return None;
        }
        let msg = match Message::decode(data) {
            Ok(m) => m,
            Err(e) => {
                if tidx.is_some() {
                    let (ty, d) = e.notify();
                    send_clear_error(ctx, header, remote, local, ty, d);
                }
                return None;
            }
        };
        let ps = &msg.payloads;
        if ctx.require_cookie {
            // RFC 7296 §2.6: Cookie = <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>),
            // checked before any state or DH work.
            let want = nonce_of(ps).map(|ni| cookie(ctx, ni, remote.ip(), &header.spi_i));
            let got = match ps.first() {
                Some(Payload::Notify(n)) if n.ty == NotifyType::COOKIE => Some(n.data.as_slice()),
                _ => None,
            };
            match (want, got) {
                (Some(w), Some(g)) if bool::from(w.as_slice().ct_eq(g)) => {}
                (Some(w), _) => {
                    ctx.cookies_sent = ctx.cookies_sent.saturating_add(1);
                    send_clear_error(ctx, header, remote, local, NotifyType::COOKIE, w);
                    return None;
                }
                (None, _) => return None,
            }
        }
        let tidx = tidx?;
        let tunnel = TunnelId(u32::try_from(tidx).ok()?);
        let (Some(props), Some(ke), Some(ni)) = (sa_of(ps), ke_of(ps), nonce_of(ps)) else {
            send_clear_error(
                ctx,
                header,
                remote,
                local,
                NotifyType::INVALID_SYNTAX,
                vec![],
            );
            return None;
        };
        let cfg = ctx.tunnels.get(tidx)?.clone();
        let Some((mut suite, num)) = config::select_ike(&cfg.ike_proposals, props) else {
            let ours: Vec<Proposal> = cfg
                .ike_proposals
                .iter()
                .enumerate()
                .map(|(i, p)| p.to_wire(u8::try_from(i + 1).unwrap_or(u8::MAX), vec![], None))
                .collect();
            ctx.ev.push_back(Event::NoProposalChosen {
                tunnel,
                exchange: ExchangeType::IKE_SA_INIT,
                ours: config::describe(&ours),
                theirs: config::describe(props),
            });
            send_clear_error(
                ctx,
                header,
                remote,
                local,
                NotifyType::NO_PROPOSAL_CHOSEN,
                vec![],
            );
            return None;
        };
        // Prefer the group the initiator already sent a KE for, if acceptable (RFC 7296 §1.2).
        if let Some(g) = DhGroup::from_id(ke.group) {
            let peer_offers = props.iter().find(|p| p.num == num).is_some_and(|p| {
                p.transforms
                    .iter()
                    .any(|t| t.ty == crate::wire::TransformType::DH && t.id == ke.group)
            });
            let cand = IkeSuite { dh: g, ..suite };
            if peer_offers && cfg.ike_proposals.iter().any(|o| o.allows(&cand)) {
                suite = cand;
            }
        }
        if ke.group != suite.dh.id() {
            send_clear_error(
                ctx,
                header,
                remote,
                local,
                NotifyType::INVALID_KE_PAYLOAD,
                suite.dh.id().to_be_bytes().to_vec(),
            );
            return None;
        }
        let force = cfg.force_udp_encap;
        let mut sa = Self::blank(tunnel, false, local, remote, now, suite.dh);
        sa.half_open_until = now + give_up(ctx);
        sa.spi_i = header.spi_i;
        sa.spi_r = new_ike_spi(ctx);
        let dh = suite.dh.generate(ctx.rng.as_mut()).ok()?;
        let Ok(shared) = dh.shared_secret(&ke.data) else {
            send_clear_error(
                ctx,
                header,
                remote,
                local,
                NotifyType::INVALID_SYNTAX,
                vec![],
            );
            return None;
        };
        sa.ni = ni.clone();
        sa.nr = nonce(ctx);
        // NAT detection (RFC 7296 §2.23).
        let src_ok = find_notify(ps, NotifyType::NAT_DETECTION_SOURCE_IP)
            .is_some_and(|n| n.data == nat_hash(&header.spi_i, &[0; 8], remote));
        let dst_ok = find_notify(ps, NotifyType::NAT_DETECTION_DESTINATION_IP)
            .is_some_and(|n| n.data == nat_hash(&header.spi_i, &[0; 8], local));
        let has_natd = find_notify(ps, NotifyType::NAT_DETECTION_SOURCE_IP).is_some();
        sa.nat = force || (has_natd && (!src_ok || !dst_ok));
        let chosen = Proposal {
            num,
            ..cfg.ike_proposals_wire_for(&suite)
        };
        let src_hash = if force {
            let mut r = vec![0u8; 20];
            ctx.rng.fill(&mut r);
            r
        } else {
            nat_hash(&sa.spi_i, &sa.spi_r, local)
        };
        let mut out = vec![
            Payload::Sa(vec![chosen]),
            Payload::Ke(KeyExchange {
                group: suite.dh.id(),
                data: dh.public().to_vec(),
            }),
            Payload::Nonce(sa.nr.clone()),
        ];
        if has_natd {
            out.push(Payload::Notify(Notify::new(
                NotifyType::NAT_DETECTION_SOURCE_IP,
                src_hash,
            )));
            out.push(Payload::Notify(Notify::new(
                NotifyType::NAT_DETECTION_DESTINATION_IP,
                nat_hash(&sa.spi_i, &sa.spi_r, remote),
            )));
        }
        if find_notify(ps, NotifyType::IKEV2_FRAGMENTATION_SUPPORTED).is_some() {
            sa.frag = true;
            out.push(Payload::Notify(Notify::new(
                NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
                vec![],
            )));
        }
        let resp = Message {
            header: sa.header(ExchangeType::IKE_SA_INIT, true, 0),
            payloads: out,
        };
        let bytes = resp.encode().ok()?;
        sa.keys =
            Some(IkeKeys::initial(suite, &shared, &sa.ni, &sa.nr, &sa.spi_i, &sa.spi_r).ok()?);
        sa.init_req = data.to_vec();
        sa.init_resp = bytes.clone();
        sa.state = State::RespInitDone;
        sa.peer_mid = 1;
        sa.send(ctx, bytes);
        Some(sa)
    }

    fn handle_init_response(&mut self, ctx: &mut Ctx, now: Instant, header: &Header, data: &[u8]) {
        let Some(Pending {
            kind: Kind::Init, ..
        }) = self.pending
        else {
            return;
        };
        let Ok(msg) = Message::decode(data) else {
            return;
        };
        let ps = &msg.payloads;
        if let Some(n) = find_notify(ps, NotifyType::INVALID_KE_PAYLOAD) {
            let g = <[u8; 2]>::try_from(n.data.as_slice())
                .ok()
                .and_then(|b| DhGroup::from_id(u16::from_be_bytes(b)));
            let ok = g.is_some_and(|g| {
                self.cfg(ctx)
                    .is_some_and(|c| c.ike_proposals.iter().any(|p| p.dh.contains(&g)))
            });
            if let (Some(g), true) = (g, ok) {
                if g != self.group {
                    self.group = g;
                    self.pending = None;
                    self.send_init(ctx, now);
                    return;
                }
            }
            self.fail(
                ctx,
                now,
                DownReason::PeerError(NotifyType::INVALID_KE_PAYLOAD),
            );
            return;
        }
        if let Some(n) = find_notify(ps, NotifyType::COOKIE) {
            if self.cookie.is_none() && n.data.len() <= 64 {
                self.cookie = Some(n.data.clone());
                self.pending = None;
                self.send_init(ctx, now);
            }
            return;
        }
        if let Some(e) = first_error(ps) {
            if e == NotifyType::NO_PROPOSAL_CHOSEN {
                let ours = self.cfg(ctx).map(|c| {
                    let w: Vec<Proposal> = c
                        .ike_proposals
                        .iter()
                        .map(|p| p.to_wire(1, vec![], None))
                        .collect();
                    config::describe(&w)
                });
                ctx.ev.push_back(Event::NoProposalChosen {
                    tunnel: self.tunnel,
                    exchange: ExchangeType::IKE_SA_INIT,
                    ours: ours.unwrap_or_default(),
                    theirs: String::new(),
                });
                self.fail(ctx, now, DownReason::NoProposalChosen);
            } else {
                self.fail(ctx, now, DownReason::PeerError(e));
            }
            return;
        }
        let Some(cfg) = self.cfg(ctx).cloned() else {
            return;
        };
        let (Some(props), Some(ke), Some(nr)) = (sa_of(ps), ke_of(ps), nonce_of(ps)) else {
            return;
        };
        let Some(suite) = config::accept_ike_choice(&cfg.ike_proposals, props) else {
            self.fail(ctx, now, DownReason::NoProposalChosen);
            return;
        };
        if suite.dh != self.group || ke.group != self.group.id() || header.spi_r == [0; 8] {
            self.fail(ctx, now, DownReason::NoProposalChosen);
            return;
        }
        let Some(shared) = self
            .dh
            .as_ref()
            .and_then(|d| d.shared_secret(&ke.data).ok())
        else {
            self.fail(ctx, now, DownReason::PeerError(NotifyType::INVALID_SYNTAX));
            return;
        };
        let force = cfg.force_udp_encap;
        self.spi_r = header.spi_r;
        self.nr = nr.clone();
        let has_natd = find_notify(ps, NotifyType::NAT_DETECTION_SOURCE_IP).is_some();
        let src_ok = find_notify(ps, NotifyType::NAT_DETECTION_SOURCE_IP)
            .is_some_and(|n| n.data == nat_hash(&self.spi_i, &self.spi_r, self.remote));
        let dst_ok = find_notify(ps, NotifyType::NAT_DETECTION_DESTINATION_IP)
            .is_some_and(|n| n.data == nat_hash(&self.spi_i, &self.spi_r, self.local));
        self.nat = force || (has_natd && (!src_ok || !dst_ok));
        self.frag = find_notify(ps, NotifyType::IKEV2_FRAGMENTATION_SUPPORTED).is_some();
        let Ok(keys) =
            IkeKeys::initial(suite, &shared, &self.ni, &self.nr, &self.spi_i, &self.spi_r)
        else {
            self.fail(ctx, now, DownReason::NoProposalChosen);
            return;
        };
        self.keys = Some(keys);
        self.init_resp = data.to_vec();
        self.dh = None;
        self.pending = None;
        if self.nat {
            // Float to port 4500 (RFC 7296 §2.23).
            self.local.set_port(NAT_T_PORT);
            self.remote.set_port(NAT_T_PORT);
        }
        self.send_auth(ctx, now);
    }

    // ----- IKE_AUTH -----

    fn send_auth(&mut self, ctx: &mut Ctx, now: Instant) {
        let in_spi = new_esp_spi(ctx, self.tunnel);
        let Some(cfg) = self.cfg(ctx).cloned() else {
            return;
        };
        let Some(keys) = self.keys.as_ref() else {
            return;
        };
        let idi = cfg.local_id.to_wire();
        let auth = psk_auth(
            keys.suite.prf,
            &cfg.psk,
            &self.init_req,
            &self.nr,
            &keys.sk_pi,
            &idi,
        );
        let props: Vec<Proposal> = cfg
            .esp_proposals
            .iter()
            .enumerate()
            .map(|(i, p)| p.to_wire(u8::try_from(i + 1).unwrap_or(u8::MAX), in_spi, None))
            .collect();
        let mut inner = vec![Payload::IdI(idi)];
        // INITIAL_CONTACT only when this is the sole IKE SA with the peer (RFC 7296 §2.4):
        // otherwise the peer would drop an SA that is in use, e.g. the one it initiated.
        if !self.others_with_peer {
            inner.push(Payload::Notify(Notify::new(
                NotifyType::INITIAL_CONTACT,
                vec![],
            )));
        }
        inner.extend([
            Payload::IdR(cfg.remote_id.to_wire()),
            Payload::Auth(Auth {
                method: AuthMethod::SHARED_KEY_MIC,
                data: auth.to_vec(),
            }),
            Payload::Sa(props),
            Payload::TsI(default_ts()),
            Payload::TsR(default_ts()),
        ]);
        self.state = State::AuthSent;
        self.request(
            ctx,
            now,
            ExchangeType::IKE_AUTH,
            &inner,
            Kind::Auth { in_spi },
            None,
        );
    }

    fn handle_auth_request(&mut self, ctx: &mut Ctx, now: Instant, mid: u32, inner: &[Payload]) {
        let Some(cfg) = self.cfg(ctx).cloned() else {
            return;
        };
        let Some(keys) = self.keys.as_ref() else {
            return;
        };
        let idi = payload(inner, |p| {
            if let Payload::IdI(v) = p {
                Some(v)
            } else {
                None
            }
        });
        let auth = payload(inner, |p| {
            if let Payload::Auth(v) = p {
                Some(v)
            } else {
                None
            }
        });
        let (Some(idi), Some(auth)) = (idi, auth) else {
            self.respond(
                ctx,
                ExchangeType::IKE_AUTH,
                mid,
                &[Payload::Notify(Notify::new(
                    NotifyType::INVALID_SYNTAX,
                    vec![],
                ))],
            );
            self.kill(ctx, now, DownReason::AuthenticationFailed, false);
            return;
        };
        let want = psk_auth(
            keys.suite.prf,
            &cfg.psk,
            &self.init_req,
            &self.nr,
            &keys.sk_pi,
            idi,
        );
        let ok = cfg.remote_id.matches(idi)
            && auth.method == AuthMethod::SHARED_KEY_MIC
            && want.len() == auth.data.len()
            && bool::from(want.ct_eq(&auth.data));
        if !ok {
            self.respond(
                ctx,
                ExchangeType::IKE_AUTH,
                mid,
                &[Payload::Notify(Notify::new(
                    NotifyType::AUTHENTICATION_FAILED,
                    vec![],
                ))],
            );
            self.kill(ctx, now, DownReason::AuthenticationFailed, false);
            return;
        }
        let idr = cfg.local_id.to_wire();
        let my_auth = psk_auth(
            keys.suite.prf,
            &cfg.psk,
            &self.init_resp,
            &self.ni,
            &keys.sk_pr,
            &idr,
        );
        let mut out = vec![
            Payload::IdR(idr),
            Payload::Auth(Auth {
                method: AuthMethod::SHARED_KEY_MIC,
                data: my_auth.to_vec(),
            }),
        ];
        let chosen =
            sa_of(inner).and_then(|props| config::select_esp(&cfg.esp_proposals, props, None));
        let child = match (sa_of(inner), chosen) {
            (Some(_), Some(c)) => {
                let in_spi = new_esp_spi(ctx, self.tunnel);
                let (tsi, tsr) = ts_of(inner);
                out.push(Payload::Sa(vec![esp_choice_wire(&c, in_spi)]));
                out.push(Payload::TsI(if tsi.is_empty() {
                    default_ts()
                } else {
                    tsi
                }));
                out.push(Payload::TsR(if tsr.is_empty() {
                    default_ts()
                } else {
                    tsr
                }));
                Some((c, in_spi))
            }
            (Some(props), None) => {
                let ours: Vec<Proposal> = cfg
                    .esp_proposals
                    .iter()
                    .map(|p| p.to_wire(1, [0; 4], None))
                    .collect();
                ctx.ev.push_back(Event::NoProposalChosen {
                    tunnel: self.tunnel,
                    exchange: ExchangeType::IKE_AUTH,
                    ours: config::describe(&ours),
                    theirs: config::describe(props),
                });
                out.push(Payload::Notify(Notify::new(
                    NotifyType::NO_PROPOSAL_CHOSEN,
                    vec![],
                )));
                None
            }
            (None, _) => None,
        };
        if find_notify(inner, NotifyType::INITIAL_CONTACT).is_some() {
            self.initial_contact_pending = true;
        }
        self.respond(ctx, ExchangeType::IKE_AUTH, mid, &out);
        self.establish(ctx, now);
        self.fresh_auth = true;
        if let Some((c, in_spi)) = child {
            let (ni, nr) = (self.ni.clone(), self.nr.clone());
            self.install_child(ctx, now, &c, in_spi, None, &ni, &nr, false, None);
        }
    }

    fn handle_auth_response(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        in_spi: [u8; 4],
        inner: &[Payload],
    ) {
        if let Some(e @ (NotifyType::AUTHENTICATION_FAILED | NotifyType::INVALID_SYNTAX)) =
            first_error(inner)
        {
            self.fail(
                ctx,
                now,
                if e == NotifyType::AUTHENTICATION_FAILED {
                    DownReason::AuthenticationFailed
                } else {
                    DownReason::PeerError(e)
                },
            );
            return;
        }
        let Some(cfg) = self.cfg(ctx).cloned() else {
            return;
        };
        let Some(keys) = self.keys.as_ref() else {
            return;
        };
        let idr = payload(inner, |p| {
            if let Payload::IdR(v) = p {
                Some(v)
            } else {
                None
            }
        });
        let auth = payload(inner, |p| {
            if let Payload::Auth(v) = p {
                Some(v)
            } else {
                None
            }
        });
        let ok = match (idr, auth) {
            (Some(idr), Some(auth)) => {
                let want = psk_auth(
                    keys.suite.prf,
                    &cfg.psk,
                    &self.init_resp,
                    &self.ni,
                    &keys.sk_pr,
                    idr,
                );
                cfg.remote_id.matches(idr)
                    && auth.method == AuthMethod::SHARED_KEY_MIC
                    && want.len() == auth.data.len()
                    && bool::from(want.ct_eq(&auth.data))
            }
            _ => false,
        };
        if !ok {
            self.fail(ctx, now, DownReason::AuthenticationFailed);
            return;
        }
        let chosen =
            sa_of(inner).and_then(|p| config::accept_esp_choice(&cfg.esp_proposals, p, None));
        let err = first_error(inner);
        let ours_desc = {
            let w: Vec<Proposal> = cfg
                .esp_proposals
                .iter()
                .map(|p| p.to_wire(1, [0; 4], None))
                .collect();
            config::describe(&w)
        };
        self.establish(ctx, now);
        self.fresh_auth = true;
        match chosen {
            Some(c) => {
                let (ni, nr) = (self.ni.clone(), self.nr.clone());
                self.install_child(ctx, now, &c, in_spi, None, &ni, &nr, true, None);
            }
            None => {
                if err == Some(NotifyType::NO_PROPOSAL_CHOSEN) {
                    ctx.ev.push_back(Event::NoProposalChosen {
                        tunnel: self.tunnel,
                        exchange: ExchangeType::IKE_AUTH,
                        ours: ours_desc,
                        theirs: String::new(),
                    });
                }
                // No Child SA: an IKE SA without one is useless for a tunnel; delete it.
                self.queue.push_back(Req::DeleteIke);
                self.pump(ctx, now);
            }
        }
    }

    fn establish(&mut self, ctx: &mut Ctx, now: Instant) {
        self.state = State::Established;
        self.established_at = Some(now);
        self.last_heard = now;
        self.dh = None;
        let (ike_rekey, pct) = self.cfg(ctx).map_or((Duration::from_secs(3600), 0), |c| {
            (c.lifetimes.ike_rekey, c.lifetimes.jitter_percent)
        });
        let d = jitter(ctx, ike_rekey, pct);
        self.ike_rekey_at = Some(now + d);
        self.ike_expire_at = Some(now + hard(ike_rekey));
        self.dpd_interval = self.cfg(ctx).map(|c| c.dpd.interval);
        self.announced = true;
        if let Some(k) = &self.keys {
            ctx.ev.push_back(Event::IkeSaUp {
                tunnel: self.tunnel,
                local_spi: self.local_spi(),
                remote_spi: if self.initiator {
                    self.spi_r
                } else {
                    self.spi_i
                },
                suite: k.suite,
                nat: self.nat,
                local: self.local,
                remote: self.remote,
            });
        }
    }

    /// Derives Child SA keys and announces the pair. `exchange_initiator`: whether we started
    /// the exchange that created it (its i→r keys are our outbound keys, RFC 7296 §2.17).
    #[allow(clippy::too_many_arguments)]
    fn install_child(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        c: &ChosenEsp,
        in_spi: [u8; 4],
        shared: Option<&[u8]>,
        ni: &[u8],
        nr: &[u8],
        exchange_initiator: bool,
        replaces: Option<[u8; 4]>,
    ) {
        let Some(keys) = self.keys.as_ref() else {
            return;
        };
        let Ok((i2r, r2i)) = sk::child_keymat(
            keys.suite.prf,
            &keys.sk_d,
            shared,
            ni,
            nr,
            c.suite.key_len(),
        ) else {
            return;
        };
        let (keys_out, keys_in) = if exchange_initiator {
            (i2r, r2i)
        } else {
            (r2i, i2r)
        };
        let (rekey, pct) = self.cfg(ctx).map_or((Duration::from_secs(3600), 0), |c| {
            (c.lifetimes.child_rekey, c.lifetimes.jitter_percent)
        });
        let d = jitter(ctx, rekey, pct);
        self.children.push(Child {
            in_spi,
            out_spi: c.peer_spi,
            rekey_at: Some(now + d),
            rekeying: false,
            expire_at: now + hard(rekey),
        });
        ctx.ev.push_back(Event::ChildSaUp {
            tunnel: self.tunnel,
            inbound_spi: u32::from_be_bytes(in_spi),
            outbound_spi: u32::from_be_bytes(c.peer_spi),
            suite: c.suite,
            esn: c.esn,
            keys_in,
            keys_out,
            udp_encap: self.nat,
            local: self.local,
            remote: self.remote,
            replaces: replaces.map(u32::from_be_bytes),
        });
    }

    // ----- dispatch -----

    /// Takes one Encrypted Fragment (RFC 7383 §2.6): verifies it, keeps it, and returns the
    /// whole message once every fragment is in. Fragments of a duplicate request make the
    /// cached response go out again (once, on fragment 1).
    fn reassemble(&mut self, ctx: &mut Ctx, header: &Header, data: &[u8]) -> Option<Reassembled> {
        let f = {
            let (suite, keys) = self.in_keys()?;
            sk::open_fragment(data, suite, keys).ok()?
        };
        let mid = header.message_id;
        let response = header.is_response();
        let wanted = if response {
            self.pending.as_ref().is_some_and(|p| p.mid == mid)
        } else if mid.wrapping_add(1) == self.peer_mid {
            if f.number == 1 {
                if let Some((m, d)) = &self.last_resp {
                    if *m == mid {
                        let d = d.clone();
                        self.send_all(ctx, &d);
                    }
                }
            }
            false
        } else {
            mid == self.peer_mid
        };
        if !wanted || f.number == 0 || f.number > f.total {
            return None;
        }
        let fresh = !self
            .reasm
            .as_ref()
            .is_some_and(|r| r.mid == mid && r.response == response && r.total == f.total);
        if fresh {
            self.reasm = Some(Reassembly {
                mid,
                response,
                total: f.total,
                first_inner: PayloadType::NONE,
                parts: vec![None; usize::from(f.total)],
                bytes: 0,
            });
        }
        let r = self.reasm.as_mut()?;
        let slot = r.parts.get_mut(usize::from(f.number) - 1)?;
        if slot.is_none() {
            r.bytes = r.bytes.saturating_add(f.plain.len());
            if r.bytes > MAX_REASSEMBLY {
                self.reasm = None;
                return None;
            }
            if f.number == 1 {
                r.first_inner = f.first_inner;
            }
            *slot = Some(f.plain);
        }
        if r.parts.iter().any(Option::is_none) {
            return None;
        }
        let r = self.reasm.take()?;
        let mut all = Zeroizing::new(Vec::with_capacity(r.bytes));
        for p in r.parts.into_iter().flatten() {
            all.extend_from_slice(&p);
        }
        Some(match crate::wire::decode_payloads(r.first_inner, &all) {
            Ok(inner) => Reassembled::Done(sk::Opened {
                header: *header,
                clear: Vec::new(),
                inner,
            }),
            Err(e) => Reassembled::Bad(e),
        })
    }

    /// Handles a message for this SA. Returns a new IKE SA when an IKE rekey completed.
    pub(super) fn handle(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        remote: SocketAddr,
        local: SocketAddr,
        header: &Header,
        data: &[u8],
    ) -> Option<Self> {
        if self.state == State::Dead {
            return None;
        }
        if header.exchange == ExchangeType::IKE_SA_INIT {
            if header.is_response() && self.initiator && self.state == State::InitSent {
                self.handle_init_response(ctx, now, header, data);
            } else if !header.is_response()
                && !self.initiator
                && header.message_id == 0
                && data == self.init_req.as_slice()
            {
                // A retransmitted IKE_SA_INIT request: the same answer again.
                let d = self.init_resp.clone();
                self.send(ctx, d);
            }
            return None;
        }
        // Everything else is protected.
        let opened = if data.get(16) == Some(&PayloadType::SKF.0) {
            match self.reassemble(ctx, header, data)? {
                Reassembled::Done(o) => Ok(o),
                Reassembled::Bad(e) => Err(sk::SkError::InnerDecode(e)),
            }
        } else {
            let (suite, keys) = self.in_keys()?;
            sk::open(data, suite, keys)
        };
        let opened = match opened {
            Ok(o) => o,
            Err(sk::SkError::InnerDecode(e)) => {
                // Authentic but malformed: a request in sequence gets the RFC's error notify
                // (RFC 7296 §2.21.2); nothing else changes.
                if !header.is_response() && header.message_id == self.peer_mid {
                    self.peer_mid = self.peer_mid.wrapping_add(1);
                    let (ty, d) = e.notify();
                    self.respond(
                        ctx,
                        header.exchange,
                        header.message_id,
                        &[Payload::Notify(Notify::new(ty, d))],
                    );
                }
                return None;
            }
            Err(_) => return None,
        };
        self.last_heard = now;
        if self.nat {
            // Follow the peer's NAT mapping on authenticated messages (RFC 7296 §2.23).
            self.remote = remote;
            self.local = local;
        } else if local.port() == NAT_T_PORT {
            self.local = local;
            self.remote = remote;
        }
        let mid = header.message_id;
        if header.is_response() {
            let matches = self.pending.as_ref().is_some_and(|p| p.mid == mid);
            if !matches {
                return None;
            }
            let p = self.pending.take()?;
            let spawned = self.handle_response(ctx, now, header.exchange, p.kind, &opened.inner);
            self.pump(ctx, now);
            return spawned;
        }
        // A request.
        if mid.wrapping_add(1) == self.peer_mid {
            if let Some((m, d)) = &self.last_resp {
                if *m == mid {
                    let d = d.clone();
                    self.send_all(ctx, &d);
                }
            }
            return None;
        }
        if mid != self.peer_mid {
            return None;
        }
        self.peer_mid = self.peer_mid.wrapping_add(1);
        let spawned = match header.exchange {
            ExchangeType::IKE_AUTH if self.state == State::RespInitDone => {
                self.handle_auth_request(ctx, now, mid, &opened.inner);
                None
            }
            ExchangeType::INFORMATIONAL if self.state == State::Established => {
                self.handle_informational(ctx, now, mid, &opened.inner);
                None
            }
            ExchangeType::CREATE_CHILD_SA if self.state == State::Established => {
                self.handle_create_child(ctx, now, mid, &opened.inner)
            }
            ex => {
                // Not expected in this state: refuse without pretending success.
                self.respond(
                    ctx,
                    ex,
                    mid,
                    &[Payload::Notify(Notify::new(
                        NotifyType::INVALID_SYNTAX,
                        vec![],
                    ))],
                );
                None
            }
        };
        if self.delete_after_reply {
            self.state = State::Dead;
        }
        self.pump(ctx, now);
        spawned
    }

    fn handle_response(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        exchange: ExchangeType,
        kind: Kind,
        inner: &[Payload],
    ) -> Option<Self> {
        match (kind, exchange) {
            (Kind::Auth { in_spi }, ExchangeType::IKE_AUTH) => {
                self.handle_auth_response(ctx, now, in_spi, inner)
            }
            (Kind::Dpd, ExchangeType::INFORMATIONAL) => {}
            (Kind::DeleteIke, ExchangeType::INFORMATIONAL) => {
                let reason = if self.rekeyed_away() {
                    DownReason::Rekeyed
                } else {
                    DownReason::DeletedLocally
                };
                self.kill(ctx, now, reason, false);
            }
            (Kind::DeleteChild, ExchangeType::INFORMATIONAL) => {}
            (
                Kind::RekeyChild {
                    old_in,
                    new_in,
                    ni,
                    dh,
                },
                ExchangeType::CREATE_CHILD_SA,
            ) => {
                self.finish_child_rekey(ctx, now, old_in, new_in, &ni, dh, inner);
            }
            (Kind::RekeyIke { new_spi, ni, dh }, ExchangeType::CREATE_CHILD_SA) => {
                return self.finish_ike_rekey(ctx, now, new_spi, &ni, &dh, inner);
            }
            _ => {}
        }
        None
    }

    fn rekeyed_away(&self) -> bool {
        self.replaced
    }

    fn handle_informational(&mut self, ctx: &mut Ctx, now: Instant, mid: u32, inner: &[Payload]) {
        let mut out = Vec::new();
        let mut delete_ike = false;
        for p in inner {
            let Payload::Delete(d) = p else { continue };
            if d.protocol == ProtocolId::IKE {
                delete_ike = true;
            } else if d.protocol == ProtocolId::ESP {
                let mut ours = Vec::new();
                for spi in &d.spis {
                    let Ok(s) = <[u8; 4]>::try_from(spi.as_slice()) else {
                        continue;
                    };
                    if let Some(i) = self.children.iter().position(|c| c.out_spi == s) {
                        let c = self.children.swap_remove(i);
                        ours.push(c.in_spi.to_vec());
                        ctx.ev.push_back(Event::ChildSaDown {
                            tunnel: self.tunnel,
                            inbound_spi: u32::from_be_bytes(c.in_spi),
                            outbound_spi: u32::from_be_bytes(c.out_spi),
                            reason: DownReason::DeletedByPeer,
                        });
                    }
                }
                if !ours.is_empty() {
                    out.push(Payload::Delete(Delete {
                        protocol: ProtocolId::ESP,
                        spi_size: 4,
                        spis: ours,
                    }));
                }
            }
        }
        if delete_ike {
            self.respond(ctx, ExchangeType::INFORMATIONAL, mid, &[]);
            if let Some((_, _, np_spi)) = self.ike_collision.take() {
                // The peer finished its rekey (it never saw ours) and deleted this SA: its
                // successor is the SA we created answering the peer, and the children go
                // there. Our own rekey request dies with this SA.
                self.child_move = Some(ChildMove {
                    from: self.local_spi(),
                    to: np_spi,
                    close_from: false,
                    kill_from: true,
                });
                self.replaced = true;
                return;
            }
            let reason = if self.rekeyed_away() {
                DownReason::Rekeyed
            } else {
                DownReason::DeletedByPeer
            };
            self.kill(ctx, now, reason, true);
            return;
        }
        let deleted_some = !out.is_empty();
        self.respond(ctx, ExchangeType::INFORMATIONAL, mid, &out);
        if deleted_some && self.children.is_empty() && self.cfg(ctx).is_some_and(|c| c.initiator) {
            // The peer removed the tunnel's only Child SA: make a new one (RFC 7296 §1.3.1).
            self.queue.push_back(Req::RekeyChild(NO_CHILD));
        }
    }

    // ----- CREATE_CHILD_SA -----

    fn handle_create_child(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        mid: u32,
        inner: &[Payload],
    ) -> Option<Self> {
        let refuse = |sa: &mut Self, ctx: &mut Ctx, ty: NotifyType| {
            sa.respond(
                ctx,
                ExchangeType::CREATE_CHILD_SA,
                mid,
                &[Payload::Notify(Notify::new(ty, vec![]))],
            );
        };
        let (Some(props), Some(ni)) = (sa_of(inner), nonce_of(inner)) else {
            refuse(self, ctx, NotifyType::INVALID_SYNTAX);
            return None;
        };
        let cfg = self.cfg(ctx)?.clone();
        if props.iter().any(|p| p.protocol == ProtocolId::IKE) {
            return self.respond_ike_rekey(ctx, now, mid, &cfg, props, ni, inner);
        }
        let rekey = find_notify(inner, NotifyType::REKEY_SA)
            .filter(|n| n.protocol == ProtocolId::ESP)
            .and_then(|n| <[u8; 4]>::try_from(n.spi.as_slice()).ok());
        let old_in = match rekey {
            Some(old_out) => self
                .children
                .iter()
                .find(|c| c.out_spi == old_out)
                .map(|c| c.in_spi),
            // A new Child SA: accepted when the tunnel has none (one pair per tunnel).
            None if self.children.is_empty() => Some(NO_CHILD),
            None => {
                refuse(self, ctx, NotifyType::NO_ADDITIONAL_SAS);
                return None;
            }
        };
        let Some(old_in) = old_in else {
            let old_out = rekey.unwrap_or_default();
            let n = Notify {
                protocol: ProtocolId::ESP,
                spi: old_out.to_vec(),
                ty: NotifyType::CHILD_SA_NOT_FOUND,
                data: vec![],
            };
            self.respond(
                ctx,
                ExchangeType::CREATE_CHILD_SA,
                mid,
                &[Payload::Notify(n)],
            );
            return None;
        };
        // PFS (RFC 7296 §1.3.1, §1.3.3). With a configured group, insist on it (AWS and GCP
        // require PFS). Without one (`pfs = "none"`, Azure's rekeys carry no KE), accept a
        // rekey without KE, and one with KE only if its group is one of this tunnel's IKE
        // proposals' groups: a group we never configured is refused (NO_PROPOSAL_CHOSEN).
        let ke = ke_of(inner);
        let pfs = match (cfg.pfs_group, ke) {
            (Some(g), _) => Some(g),
            (None, Some(k)) => DhGroup::from_id(k.group)
                .filter(|g| cfg.ike_proposals.iter().any(|p| p.dh.contains(g))),
            (None, None) => None,
        };
        let Some(c) = config::select_esp(&cfg.esp_proposals, props, pfs) else {
            let ours: Vec<Proposal> = cfg
                .esp_proposals
                .iter()
                .map(|p| p.to_wire(1, [0; 4], cfg.pfs_group))
                .collect();
            ctx.ev.push_back(Event::NoProposalChosen {
                tunnel: self.tunnel,
                exchange: ExchangeType::CREATE_CHILD_SA,
                ours: config::describe(&ours),
                theirs: config::describe(props),
            });
            refuse(self, ctx, NotifyType::NO_PROPOSAL_CHOSEN);
            return None;
        };
        let mut shared = None;
        let mut my_ke = None;
        if let Some(g) = c.dh {
            let Some(k) = ke.filter(|k| k.group == g.id()) else {
                self.respond(
                    ctx,
                    ExchangeType::CREATE_CHILD_SA,
                    mid,
                    &[Payload::Notify(Notify::new(
                        NotifyType::INVALID_KE_PAYLOAD,
                        g.id().to_be_bytes().to_vec(),
                    ))],
                );
                return None;
            };
            let dh = g.generate(ctx.rng.as_mut()).ok()?;
            let Ok(s) = dh.shared_secret(&k.data) else {
                refuse(self, ctx, NotifyType::INVALID_SYNTAX);
                return None;
            };
            shared = Some(s);
            my_ke = Some(KeyExchange {
                group: g.id(),
                data: dh.public().to_vec(),
            });
        }
        let in_spi = new_esp_spi(ctx, self.tunnel);
        let nr = nonce(ctx);
        let (tsi, tsr) = ts_of(inner);
        let mut out = vec![
            Payload::Sa(vec![esp_choice_wire(&c, in_spi)]),
            Payload::Nonce(nr.clone()),
        ];
        if let Some(k) = my_ke {
            out.push(Payload::Ke(k));
        }
        out.push(Payload::TsI(if tsi.is_empty() {
            default_ts()
        } else {
            tsi
        }));
        out.push(Payload::TsR(if tsr.is_empty() {
            default_ts()
        } else {
            tsr
        }));
        self.respond(ctx, ExchangeType::CREATE_CHILD_SA, mid, &out);
        if let Some(old) = self.children.iter_mut().find(|c| c.in_spi == old_in) {
            // The initiator of the rekey deletes the old pair; do not rekey it ourselves.
            old.rekey_at = None;
            if old.rekeying && self.collisions.len() < 8 {
                // Our own rekey of it is under way: a collision, settled when our
                // response arrives.
                self.collisions.push(Collision {
                    old_in,
                    ni: ni.to_vec(),
                    nr: nr.clone(),
                });
            }
        }
        self.install_child(
            ctx,
            now,
            &c,
            in_spi,
            shared.as_deref().map(|s| &s[..]),
            ni,
            &nr,
            false,
            (old_in != NO_CHILD).then_some(old_in),
        );
        None
    }

    fn start_child_rekey(&mut self, ctx: &mut Ctx, now: Instant, old_in: [u8; 4]) {
        let Some(cfg) = self.cfg(ctx).cloned() else {
            return;
        };
        if old_in != NO_CHILD {
            let Some(old) = self.children.iter_mut().find(|c| c.in_spi == old_in) else {
                return;
            };
            old.rekeying = true;
            old.rekey_at = None;
        }
        let new_in = new_esp_spi(ctx, self.tunnel);
        let ni = nonce(ctx);
        let dh = match cfg.pfs_group {
            Some(g) => match g.generate(ctx.rng.as_mut()) {
                Ok(d) => Some(d),
                Err(_) => return,
            },
            None => None,
        };
        let props: Vec<Proposal> = cfg
            .esp_proposals
            .iter()
            .enumerate()
            .map(|(i, p)| {
                p.to_wire(
                    u8::try_from(i + 1).unwrap_or(u8::MAX),
                    new_in,
                    cfg.pfs_group,
                )
            })
            .collect();
        let mut inner = Vec::new();
        if old_in != NO_CHILD {
            inner.push(Payload::Notify(Notify {
                protocol: ProtocolId::ESP,
                spi: old_in.to_vec(),
                ty: NotifyType::REKEY_SA,
                data: vec![],
            }));
        }
        inner.push(Payload::Sa(props));
        inner.push(Payload::Nonce(ni.clone()));
        if let Some(d) = &dh {
            inner.push(Payload::Ke(KeyExchange {
                group: d.group().id(),
                data: d.public().to_vec(),
            }));
        }
        inner.push(Payload::TsI(default_ts()));
        inner.push(Payload::TsR(default_ts()));
        self.request(
            ctx,
            now,
            ExchangeType::CREATE_CHILD_SA,
            &inner,
            Kind::RekeyChild {
                old_in,
                new_in,
                ni,
                dh,
            },
            None,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_child_rekey(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        old_in: [u8; 4],
        new_in: [u8; 4],
        ni: &[u8],
        dh: Option<DhPrivate>,
        inner: &[Payload],
    ) {
        let Some(cfg) = self.cfg(ctx).cloned() else {
            return;
        };
        let retry_later = |sa: &mut Self, ctx: &mut Ctx| {
            if old_in == NO_CHILD {
                sa.new_child_at = Some(now + ctx.settings.restart_delay);
            }
            if let Some(old) = sa.children.iter_mut().find(|c| c.in_spi == old_in) {
                old.rekeying = false;
                old.rekey_at = Some(now + ctx.settings.restart_delay);
            }
        };
        if let Some(e) = first_error(inner) {
            if e == NotifyType::NO_PROPOSAL_CHOSEN {
                let ours: Vec<Proposal> = cfg
                    .esp_proposals
                    .iter()
                    .map(|p| p.to_wire(1, [0; 4], cfg.pfs_group))
                    .collect();
                ctx.ev.push_back(Event::NoProposalChosen {
                    tunnel: self.tunnel,
                    exchange: ExchangeType::CREATE_CHILD_SA,
                    ours: config::describe(&ours),
                    theirs: String::new(),
                });
            }
            retry_later(self, ctx);
            return;
        }
        let (Some(props), Some(nr)) = (sa_of(inner), nonce_of(inner)) else {
            retry_later(self, ctx);
            return;
        };
        let Some(c) = config::accept_esp_choice(&cfg.esp_proposals, props, cfg.pfs_group) else {
            retry_later(self, ctx);
            return;
        };
        let shared = match (&dh, ke_of(inner)) {
            (Some(d), Some(k)) if k.group == d.group().id() => match d.shared_secret(&k.data) {
                Ok(s) => Some(s),
                Err(_) => {
                    retry_later(self, ctx);
                    return;
                }
            },
            (None, None) => None,
            _ => {
                retry_later(self, ctx);
                return;
            }
        };
        let nr = nr.clone();
        if let Some(pos) = self.collisions.iter().position(|x| x.old_in == old_in) {
            // RFC 7296 §2.8.1: the new SA created with the lowest of the four nonces is
            // redundant and is deleted by the side that created it; the winner's initiator
            // deletes the old SA.
            let col = self.collisions.swap_remove(pos);
            let ours = std::cmp::min(ni, nr.as_slice());
            let theirs = std::cmp::min(col.ni.as_slice(), col.nr.as_slice());
            if ours < theirs {
                if let Some(old) = self.children.iter_mut().find(|c| c.in_spi == old_in) {
                    old.rekeying = false;
                }
                self.queue.push_back(Req::DeleteRedundant(new_in));
                return;
            }
        }
        self.install_child(
            ctx,
            now,
            &c,
            new_in,
            shared.as_deref().map(|s| &s[..]),
            ni,
            &nr,
            true,
            (old_in != NO_CHILD).then_some(old_in),
        );
        // Make-before-break: the new pair is announced; now delete the old one.
        if old_in != NO_CHILD {
            self.queue
                .push_back(Req::DeleteChild(old_in, DownReason::Rekeyed));
        }
    }

    fn start_ike_rekey(&mut self, ctx: &mut Ctx, now: Instant) {
        let Some(cfg) = self.cfg(ctx).cloned() else {
            return;
        };
        let Some(keys) = &self.keys else { return };
        let group = keys.suite.dh;
        let Ok(dh) = group.generate(ctx.rng.as_mut()) else {
            return;
        };
        let new_spi = new_ike_spi(ctx);
        let ni = nonce(ctx);
        let props: Vec<Proposal> = cfg
            .ike_proposals
            .iter()
            .enumerate()
            .map(|(i, p)| {
                p.to_wire(
                    u8::try_from(i + 1).unwrap_or(u8::MAX),
                    new_spi.to_vec(),
                    Some(group),
                )
            })
            .collect();
        let inner = vec![
            Payload::Sa(props),
            Payload::Nonce(ni.clone()),
            Payload::Ke(KeyExchange {
                group: group.id(),
                data: dh.public().to_vec(),
            }),
        ];
        self.ike_rekey_at = None;
        self.request(
            ctx,
            now,
            ExchangeType::CREATE_CHILD_SA,
            &inner,
            Kind::RekeyIke { new_spi, ni, dh },
            None,
        );
    }

    fn finish_ike_rekey(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        new_spi: [u8; 8],
        ni: &[u8],
        dh: &DhPrivate,
        inner: &[Payload],
    ) -> Option<Self> {
        let cfg = self.cfg(ctx)?.clone();
        let retry = |sa: &mut Self, ctx: &mut Ctx| {
            sa.ike_rekey_at = Some(now + ctx.settings.restart_delay);
        };
        let got = (|| {
            if first_error(inner).is_some() {
                return None;
            }
            let props = sa_of(inner)?;
            let nr = nonce_of(inner)?;
            let ke = ke_of(inner)?;
            let suite = config::accept_ike_choice(&cfg.ike_proposals, props)?;
            let peer_spi = <[u8; 8]>::try_from(props.first()?.spi.as_slice()).ok()?;
            if suite.dh != dh.group() || ke.group != dh.group().id() || peer_spi == [0; 8] {
                return None;
            }
            let shared = dh.shared_secret(&ke.data).ok()?;
            Some((suite, peer_spi, nr.clone(), shared))
        })();
        let Some((suite, peer_spi, nr, shared)) = got else {
            retry(self, ctx);
            return None;
        };
        let old = self.keys.as_ref()?;
        let keys = IkeKeys::rekeyed(
            old.suite.prf,
            &old.sk_d,
            suite,
            &shared,
            ni,
            &nr,
            &new_spi,
            &peer_spi,
        )
        .ok()?;
        let mut new = Self::blank(self.tunnel, true, self.local, self.remote, now, suite.dh);
        new.spi_i = new_spi;
        new.spi_r = peer_spi;
        new.ni = ni.to_vec();
        new.nr = nr;
        new.nat = self.nat;
        new.keys = Some(keys);
        if let Some((ni_p, nr_l, np_spi)) = self.ike_collision.take() {
            // RFC 7296 §2.8.2: the new IKE SA with the lowest of the four nonces is
            // redundant; its initiator deletes it, and the winner's initiator deletes the old.
            let ours = std::cmp::min(ni, new.nr.as_slice());
            let theirs = std::cmp::min(ni_p.as_slice(), nr_l.as_slice());
            if ours < theirs {
                new.state = State::Established;
                new.established_at = Some(now);
                new.replaced = true;
                new.queue.push_back(Req::DeleteIke);
                new.pump(ctx, now);
                self.child_move = Some(ChildMove {
                    from: self.local_spi(),
                    to: np_spi,
                    close_from: false,
                    kill_from: false,
                });
                self.replaced = true;
                self.ike_rekey_at = None;
                self.queue.clear();
                return Some(new);
            }
        }
        new.children = std::mem::take(&mut self.children);
        new.establish(ctx, now);
        // The old SA goes: delete it (RFC 7296 §2.18), without Child SA events.
        self.rekeyed_into = Some((new_spi, new.ni.clone(), new.nr.clone()));
        self.replaced = true;
        self.queue.clear();
        self.queue.push_back(Req::DeleteIke);
        Some(new)
    }

    #[allow(clippy::too_many_arguments)]
    fn respond_ike_rekey(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        mid: u32,
        cfg: &TunnelIkeConfig,
        props: &[Proposal],
        ni: &[u8],
        inner: &[Payload],
    ) -> Option<Self> {
        let refuse = |sa: &mut Self, ctx: &mut Ctx, ty: NotifyType, data: Vec<u8>| {
            sa.respond(
                ctx,
                ExchangeType::CREATE_CHILD_SA,
                mid,
                &[Payload::Notify(Notify::new(ty, data))],
            );
        };
        let Some((suite, num)) = config::select_ike(&cfg.ike_proposals, props) else {
            refuse(self, ctx, NotifyType::NO_PROPOSAL_CHOSEN, vec![]);
            return None;
        };
        let Some(peer_spi) = props
            .iter()
            .find(|p| p.num == num && p.protocol == ProtocolId::IKE)
            .and_then(|p| <[u8; 8]>::try_from(p.spi.as_slice()).ok())
        else {
            refuse(self, ctx, NotifyType::INVALID_SYNTAX, vec![]);
            return None;
        };
        let Some(ke) = ke_of(inner).filter(|k| k.group == suite.dh.id()) else {
            refuse(
                self,
                ctx,
                NotifyType::INVALID_KE_PAYLOAD,
                suite.dh.id().to_be_bytes().to_vec(),
            );
            return None;
        };
        let dh = suite.dh.generate(ctx.rng.as_mut()).ok()?;
        let Ok(shared) = dh.shared_secret(&ke.data) else {
            refuse(self, ctx, NotifyType::INVALID_SYNTAX, vec![]);
            return None;
        };
        let new_spi = new_ike_spi(ctx);
        let nr = nonce(ctx);
        let old = self.keys.as_ref()?;
        let keys = IkeKeys::rekeyed(
            old.suite.prf,
            &old.sk_d,
            suite,
            &shared,
            ni,
            &nr,
            &peer_spi,
            &new_spi,
        )
        .ok()?;
        let chosen = Proposal {
            num,
            spi: new_spi.to_vec(),
            ..cfg.ike_proposals_wire_for(&suite)
        };
        self.respond(
            ctx,
            ExchangeType::CREATE_CHILD_SA,
            mid,
            &[
                Payload::Sa(vec![chosen]),
                Payload::Nonce(nr.clone()),
                Payload::Ke(KeyExchange {
                    group: suite.dh.id(),
                    data: dh.public().to_vec(),
                }),
            ],
        );
        let mut new = Self::blank(self.tunnel, false, self.local, self.remote, now, suite.dh);
        new.spi_i = peer_spi;
        new.spi_r = new_spi;
        new.ni = ni.to_vec();
        new.nr = nr;
        new.nat = self.nat;
        new.keys = Some(keys);
        if matches!(
            self.pending,
            Some(Pending {
                kind: Kind::RekeyIke { .. },
                ..
            })
        ) {
            // Our own rekey is in flight: a collision, settled when its response arrives.
            self.ike_collision = Some((ni.to_vec(), new.nr.clone(), new_spi));
            new.establish(ctx, now);
            return Some(new);
        }
        if let Some((no_spi, ni_o, nr_o)) = self.rekeyed_into.clone() {
            // Our rekey finished first, but the peer's crossed it (RFC 7296 §2.8.2).
            new.establish(ctx, now);
            let ours = std::cmp::min(ni_o, nr_o);
            let theirs = std::cmp::min(ni.to_vec(), new.nr.clone());
            if ours < theirs {
                self.child_move = Some(ChildMove {
                    from: no_spi,
                    to: new_spi,
                    close_from: true,
                    kill_from: false,
                });
            }
            return Some(new);
        }
        new.children = std::mem::take(&mut self.children);
        new.establish(ctx, now);
        // The old SA now only waits for the peer's DELETE; it rekeys nothing itself.
        self.replaced = true;
        self.ike_rekey_at = None;
        self.queue.clear();
        Some(new)
    }

    // ----- timers and requests -----

    /// Sends the next queued request if none is outstanding.
    fn pump(&mut self, ctx: &mut Ctx, now: Instant) {
        if self.pending.is_some() || self.state != State::Established {
            return;
        }
        let Some(req) = self.queue.pop_front() else {
            return;
        };
        match req {
            Req::Dpd => {
                let deadline = self.cfg(ctx).map(|c| now + c.dpd.timeout);
                self.request(
                    ctx,
                    now,
                    ExchangeType::INFORMATIONAL,
                    &[],
                    Kind::Dpd,
                    deadline,
                );
            }
            Req::DeleteIke => {
                let d = Payload::Delete(Delete {
                    protocol: ProtocolId::IKE,
                    spi_size: 0,
                    spis: vec![],
                });
                self.request(
                    ctx,
                    now,
                    ExchangeType::INFORMATIONAL,
                    &[d],
                    Kind::DeleteIke,
                    None,
                );
            }
            Req::DeleteChild(in_spi, reason) => {
                let Some(i) = self.children.iter().position(|c| c.in_spi == in_spi) else {
                    return self.pump(ctx, now);
                };
                let c = self.children.swap_remove(i);
                ctx.ev.push_back(Event::ChildSaDown {
                    tunnel: self.tunnel,
                    inbound_spi: u32::from_be_bytes(c.in_spi),
                    outbound_spi: u32::from_be_bytes(c.out_spi),
                    reason,
                });
                let d = Payload::Delete(Delete {
                    protocol: ProtocolId::ESP,
                    spi_size: 4,
                    spis: vec![in_spi.to_vec()],
                });
                self.request(
                    ctx,
                    now,
                    ExchangeType::INFORMATIONAL,
                    &[d],
                    Kind::DeleteChild,
                    None,
                );
            }
            Req::DeleteRedundant(in_spi) => {
                let d = Payload::Delete(Delete {
                    protocol: ProtocolId::ESP,
                    spi_size: 4,
                    spis: vec![in_spi.to_vec()],
                });
                self.request(
                    ctx,
                    now,
                    ExchangeType::INFORMATIONAL,
                    &[d],
                    Kind::DeleteChild,
                    None,
                );
            }
            Req::RekeyChild(old_in) => self.start_child_rekey(ctx, now, old_in),
            Req::RekeyIke => self.start_ike_rekey(ctx, now),
        }
    }

    pub(super) fn handle_timeout(&mut self, ctx: &mut Ctx, now: Instant) {
        if self.state == State::Dead {
            return;
        }
        if let Some(p) = &mut self.pending {
            let expired = p.deadline.is_some_and(|d| now >= d);
            if now >= p.next_retx || expired {
                if p.tries >= ctx.settings.retransmit_tries || expired {
                    self.fail(ctx, now, DownReason::Timeout);
                    return;
                }
                p.tries += 1;
                let backoff = ctx
                    .settings
                    .retransmit_timeout
                    .saturating_mul(1u32 << p.tries.min(16));
                p.next_retx = now + backoff;
                let d = p.data.clone();
                self.send_all(ctx, &d);
            }
        }
        if self.state != State::Established {
            // A half-open responder SA that never sees IKE_AUTH goes after the give-up time.
            if self.state == State::RespInitDone && now >= self.half_open_until {
                self.state = State::Dead;
            }
            return;
        }
        // Hard lifetimes: a rekey that has not succeeded by then means starting over.
        let expired = (!self.replaced && self.ike_expire_at.is_some_and(|t| now >= t))
            || self.children.iter().any(|c| now >= c.expire_at);
        if expired {
            self.close(ctx, now, DownReason::Expired);
            let restart = self.cfg(ctx).is_some_and(|c| c.initiator && c.dpd.restart);
            if restart {
                let delay = ctx.settings.restart_delay;
                if let Some(slot) = ctx.restart_at.get_mut(self.tunnel.0 as usize) {
                    *slot = Some(now + delay);
                }
            }
            return;
        }
        if self.ike_rekey_at.is_some_and(|t| now >= t)
            && !self.queue.iter().any(|r| matches!(r, Req::RekeyIke))
        {
            self.ike_rekey_at = None;
            self.queue.push_back(Req::RekeyIke);
        }
        let due: Vec<[u8; 4]> = self
            .children
            .iter()
            .filter(|c| !c.rekeying && c.rekey_at.is_some_and(|t| now >= t))
            .map(|c| c.in_spi)
            .collect();
        for spi in due {
            if let Some(c) = self.children.iter_mut().find(|c| c.in_spi == spi) {
                c.rekey_at = None;
            }
            self.queue.push_back(Req::RekeyChild(spi));
        }
        if self.new_child_at.is_some_and(|t| now >= t) {
            self.new_child_at = None;
            if self.children.is_empty() {
                self.queue.push_back(Req::RekeyChild(NO_CHILD));
            }
        }
        let interval = self.cfg(ctx).map(|c| c.dpd.interval);
        if let Some(iv) = interval {
            if self.pending.is_none() && self.queue.is_empty() && now >= self.last_heard + iv {
                self.queue.push_back(Req::Dpd);
            }
        }
        self.pump(ctx, now);
    }

    pub(super) fn next_timeout(&self) -> Option<Instant> {
        if self.state == State::Dead {
            return None;
        }
        let mut t: Vec<Instant> = Vec::new();
        if let Some(p) = &self.pending {
            t.push(p.next_retx);
            t.extend(p.deadline);
        }
        if self.state == State::RespInitDone {
            t.push(self.half_open_until);
        }
        if self.state == State::Established {
            t.extend(self.ike_rekey_at);
            t.extend(self.new_child_at);
            if !self.replaced {
                t.extend(self.ike_expire_at);
            }
            t.extend(self.children.iter().map(|c| c.expire_at));
            t.extend(
                self.children
                    .iter()
                    .filter(|c| !c.rekeying)
                    .filter_map(|c| c.rekey_at),
            );
            if let (None, true, Some(iv)) =
                (&self.pending, self.queue.is_empty(), self.dpd_interval)
            {
                t.push(self.last_heard + iv);
            }
        }
        t.into_iter().min()
    }

    /// Local close: delete the IKE SA (the peer drops its Child SAs with it).
    pub(super) fn close(&mut self, ctx: &mut Ctx, now: Instant, reason: DownReason) {
        if self.state != State::Established {
            self.kill(ctx, now, reason, false);
            return;
        }
        for c in std::mem::take(&mut self.children) {
            ctx.ev.push_back(Event::ChildSaDown {
                tunnel: self.tunnel,
                inbound_spi: u32::from_be_bytes(c.in_spi),
                outbound_spi: u32::from_be_bytes(c.out_spi),
                reason,
            });
        }
        self.queue.clear();
        self.pending = None;
        self.ike_rekey_at = None;
        let d = Payload::Delete(Delete {
            protocol: ProtocolId::IKE,
            spi_size: 0,
            spis: vec![],
        });
        // One best-effort DELETE; the SA is gone locally at once.
        let h = self.header(ExchangeType::INFORMATIONAL, false, self.my_mid);
        if let Some(data) = self.seal(ctx, &h, &[d]) {
            self.send(ctx, data);
        }
        self.kill(ctx, now, reason, false);
    }

    /// The SA failed: tear down and, for initiator tunnels with restart, schedule a restart.
    fn fail(&mut self, ctx: &mut Ctx, now: Instant, reason: DownReason) {
        self.kill(ctx, now, reason, true);
    }

    /// Marks the SA dead, announcing its Child SAs and itself as down.
    pub(super) fn kill(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        reason: DownReason,
        may_restart: bool,
    ) {
        if self.state == State::Dead {
            return;
        }
        for c in std::mem::take(&mut self.children) {
            ctx.ev.push_back(Event::ChildSaDown {
                tunnel: self.tunnel,
                inbound_spi: u32::from_be_bytes(c.in_spi),
                outbound_spi: u32::from_be_bytes(c.out_spi),
                reason,
            });
        }
        if self.announced || self.state != State::Established {
            ctx.ev.push_back(Event::IkeSaDown {
                tunnel: self.tunnel,
                local_spi: self.local_spi(),
                reason,
            });
        }
        self.state = State::Dead;
        self.pending = None;
        let restart = may_restart
            && reason != DownReason::Rekeyed
            && self.cfg(ctx).is_some_and(|c| c.initiator && c.dpd.restart);
        if restart {
            let delay = ctx.settings.restart_delay;
            if let Some(slot) = ctx.restart_at.get_mut(self.tunnel.0 as usize) {
                *slot = Some(now + delay);
            }
        }
    }
}

fn cookie(ctx: &Ctx, ni: &[u8], ip: IpAddr, spi_i: &[u8; 8]) -> Vec<u8> {
    let mut h = Sha1::new();
    h.update(ni);
    match ip {
        IpAddr::V4(a) => h.update(a.octets()),
        IpAddr::V6(a) => h.update(a.octets()),
    }
    h.update(spi_i);
    h.update(ctx.cookie_secret);
    let mut out = vec![0u8];
    out.extend_from_slice(&h.finalize());
    out
}

fn give_up(ctx: &Ctx) -> Duration {
    let s = &ctx.settings;
    s.retransmit_timeout
        .saturating_mul(1u32 << s.retransmit_tries.min(16))
}

fn esp_choice_wire(c: &ChosenEsp, spi: [u8; 4]) -> Proposal {
    let p = config::EspProposal {
        encr: vec![c.suite.encr],
        integ: if c.suite.is_aead() {
            vec![]
        } else {
            vec![c.suite.integ]
        },
        esn: vec![c.esn],
    };
    p.to_wire(c.num, spi, c.dh)
}

/// Sends an unprotected error notify in answer to an IKE_SA_INIT request (RFC 7296 §2.21.1).
fn send_clear_error(
    ctx: &mut Ctx,
    req: &Header,
    remote: SocketAddr,
    local: SocketAddr,
    ty: NotifyType,
    data: Vec<u8>,
) {
    let msg = Message {
        header: Header {
            spi_i: req.spi_i,
            spi_r: [0; 8],
            version: VERSION_2_0,
            exchange: req.exchange,
            flags: FLAG_RESPONSE,
            message_id: req.message_id,
        },
        payloads: vec![Payload::Notify(Notify::new(ty, data))],
    };
    if let Ok(d) = msg.encode() {
        ctx.tx.push_back(Transmit {
            src: local,
            dst: remote,
            data: d,
        });
    }
}

impl TunnelIkeConfig {
    /// The single-transform proposal that names `suite` (responder's answer), number 1.
    fn ike_proposals_wire_for(&self, suite: &IkeSuite) -> Proposal {
        let p = config::IkeProposal {
            encr: vec![suite.encr],
            integ: if matches!(suite.encr, bh_crypto::EspEncr::AesCbc { .. }) {
                vec![suite.integ]
            } else {
                vec![]
            },
            prf: vec![suite.prf],
            dh: vec![suite.dh],
        };
        p.to_wire(1, vec![], None)
    }
}
