//! The BGP finite state machine for one peer over one TCP connection (RFC 4271 §8), sans-IO.
//!
//! The shell tells the session when TCP connects or closes and hands it received bytes; the
//! session returns bytes to send ([`Session::poll_transmit`]), the next timer deadline
//! ([`Session::poll_timeout`]) and events ([`Session::poll_event`]): open a connection, close it,
//! established, down, UPDATE received. Time is a value passed in; the jitter of RFC 4271 §10 comes
//! from a seed the shell injects.
//!
//! Collision detection (§6.8) needs two connections and lives in [`crate::speaker`]; a `Session`
//! exposes the peer's BGP Identifier once its OPEN arrives. The graceful restart helper state
//! (stale routes) lives in the RIB; a `Session` reports the peer's capability and whether the
//! connection ended without a NOTIFICATION, the case RFC 4724 §4.2 covers.
//!
//! Not done here: TCP MD5 and multihop TTL (socket options the shell sets), DelayOpen,
//! IdleHoldTimer damping beyond a jittered ConnectRetry.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::wire::{
    self, Capability, DecodeCtx, DecodeError, GracefulRestartCap, Message, Notification, Open,
    RouteRefresh, Update, cease_sub, code, open_sub,
};
use crate::{Family, Instant};

/// Hold time used in OpenSent while waiting for the peer's OPEN (RFC 4271 §8.2.2: 4 minutes).
const LARGE_HOLD: Duration = Duration::from_secs(240);

/// Configuration of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Our AS number.
    pub local_asn: u32,
    /// The AS the peer must present in its OPEN (else NOTIFICATION 2/2).
    pub peer_asn: u32,
    /// Our BGP Identifier.
    pub router_id: Ipv4Addr,
    /// Proposed hold time in seconds: 0 (no keepalives) or at least 3. Clouds use 30, 60, 180.
    pub hold_time: u16,
    /// ConnectRetry time (jittered down to 75 %, RFC 4271 §10).
    pub connect_retry: Duration,
    /// Only wait for the peer to connect (passive open); never emit [`SessionEvent::Connect`].
    pub passive: bool,
    /// Families to advertise with the multiprotocol capability.
    pub families: Vec<Family>,
    /// Advertise the graceful restart capability (RFC 4724) with this restart time: we then act
    /// as helper (keep a restarting peer's routes). Our own families are listed so that peers
    /// keep ours while we restart.
    pub graceful_restart: Option<u16>,
    /// Set the "forwarding state preserved" bit for our families in the graceful restart
    /// capability (true when the kernel routes survive our restart).
    pub graceful_restart_forwarding: bool,
}

impl SessionConfig {
    /// A session with the defaults clouds expect: hold 90 s proposed (the smaller side wins),
    /// ConnectRetry 30 s, active open, IPv4 and IPv6 unicast, graceful restart helper (120 s).
    pub fn new(local_asn: u32, peer_asn: u32, router_id: Ipv4Addr) -> Self {
        Self {
            local_asn,
            peer_asn,
            router_id,
            hold_time: 90,
            connect_retry: Duration::from_secs(30),
            passive: false,
            families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            graceful_restart: Some(120),
            graceful_restart_forwarding: false,
        }
    }
    /// True if the peer is in our AS (iBGP).
    pub fn is_ibgp(&self) -> bool {
        self.local_asn == self.peer_asn
    }
}

/// The FSM states of RFC 4271 §8.2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not trying to connect (stopped, or waiting to restart after an error).
    Idle,
    /// Waiting for an outgoing TCP connection to complete.
    Connect,
    /// Waiting for the peer to connect to us.
    Active,
    /// OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for KEEPALIVE.
    OpenConfirm,
    /// Exchanging UPDATEs.
    Established,
}

/// What was agreed in the OPEN exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The peer's AS.
    pub peer_asn: u32,
    /// The peer's BGP Identifier.
    pub peer_id: Ipv4Addr,
    /// Hold time in seconds (the smaller of the two; 0 = none).
    pub hold_time: u16,
    /// Keepalive interval in seconds (hold / 3).
    pub keepalive: u16,
    /// Both sides support 4-octet AS numbers.
    pub four_octet_as: bool,
    /// Families both sides advertised (IPv4 unicast if neither sent multiprotocol capabilities).
    pub families: Vec<Family>,
    /// The peer supports route refresh.
    pub route_refresh: bool,
    /// The peer's graceful restart capability, if any.
    pub peer_graceful_restart: Option<GracefulRestartCap>,
}

/// Why a session went down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// We sent this NOTIFICATION.
    NotificationSent(Notification),
    /// The peer sent this NOTIFICATION.
    NotificationReceived(Notification),
    /// The TCP connection closed or failed without a NOTIFICATION.
    TcpClosed,
    /// Stopped by the shell.
    Stopped,
}

impl DownReason {
    /// True if RFC 4724 §4.2 graceful restart helper behaviour applies (no NOTIFICATION).
    pub fn allows_graceful_restart(&self) -> bool {
        matches!(self, Self::TcpClosed)
    }
}

/// What the session asks of the shell, or tells it.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// Open a TCP connection to the peer (port 179), then call [`Session::tcp_connected`] or
    /// [`Session::tcp_closed`].
    Connect,
    /// Close the TCP connection after sending what [`Session::poll_transmit`] returned.
    Disconnect,
    /// The session reached Established.
    Established(Negotiated),
    /// The session left OpenConfirm or Established (routes from it are no longer valid unless
    /// graceful restart applies).
    Down(DownReason),
    /// An UPDATE arrived in Established (it may carry RFC 7606 errors; see [`Update::errors`]).
    Update(Update),
    /// A ROUTE-REFRESH request arrived in Established.
    RouteRefresh(RouteRefresh),
}

/// Jitter source: xorshift64*, seeded by the shell.
#[derive(Debug, Clone)]
struct Jitter(u64);

impl Jitter {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// `d` scaled by a random factor in [0.75, 1.0] (RFC 4271 §10).
    fn apply(&mut self, d: Duration) -> Duration {
        let f = 750 + self.next() % 251;
        d * u32::try_from(f).unwrap_or(1000) / 1000
    }
}

/// One BGP session over (at most) one TCP connection.
#[derive(Debug, Clone)]
pub struct Session {
    cfg: SessionConfig,
    state: State,
    jitter: Jitter,
    rx: Vec<u8>,
    tx: Vec<u8>,
    events: VecDeque<SessionEvent>,
    ctx: DecodeCtx,
    negotiated: Option<Negotiated>,
    peer_open: Option<Open>,
    auto_restart: bool,
    connect_retry_at: Option<Instant>,
    hold_at: Option<Instant>,
    keepalive_at: Option<Instant>,
}

impl Session {
    /// A session in Idle. `seed` feeds the timer jitter (take it from the OS rng in the shell).
    pub fn new(cfg: SessionConfig, seed: u64) -> Self {
        Self {
            cfg,
            state: State::Idle,
            jitter: Jitter(seed | 1),
            rx: Vec::new(),
            tx: Vec::new(),
            events: VecDeque::new(),
            ctx: DecodeCtx::default(),
            negotiated: None,
            peer_open: None,
            auto_restart: false,
            connect_retry_at: None,
            hold_at: None,
            keepalive_at: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }
    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }
    /// What was negotiated, once Established (or OpenConfirm).
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }
    /// The peer's BGP Identifier, once its OPEN arrived (for collision detection, §6.8).
    pub fn peer_id(&self) -> Option<Ipv4Addr> {
        self.peer_open.as_ref().map(|o| o.bgp_id)
    }
    /// Changes passive/active open (used when an accepted connection takes over a neighbor).
    pub fn set_passive(&mut self, passive: bool) {
        self.cfg.passive = passive;
    }
    /// The codec context of this session (4-octet AS or not).
    pub fn decode_ctx(&self) -> DecodeCtx {
        self.ctx
    }

    /// ManualStart / AutomaticStart (§8.1.2): leave Idle and connect (or wait, if passive).
    /// Restarts automatically after errors until [`Session::stop`].
    pub fn start(&mut self, now: Instant) {
        self.auto_restart = true;
        if self.state != State::Idle {
            return;
        }
        self.connect_retry_at = Some(now + self.jitter.apply(self.cfg.connect_retry));
        if self.cfg.passive {
            self.state = State::Active;
        } else {
            self.state = State::Connect;
            self.events.push_back(SessionEvent::Connect);
        }
    }

    /// As [`Session::start`], but the first outgoing connection waits `delay`: meanwhile the
    /// session waits in Active and takes a connection the peer makes (a passive session
    /// starts as usual).
    // why: after we reset a session (Cease), a connection of ours that reaches the peer
    // before it has read the Cease is taken by a graceful-restart peer as our restart: FRR
    // then drops the old session as "NSF peer closed the session" without reading the Cease.
    pub fn start_after(&mut self, now: Instant, delay: Duration) {
        if self.cfg.passive || self.state != State::Idle {
            self.start(now);
            return;
        }
        self.auto_restart = true;
        self.state = State::Active;
        self.connect_retry_at = Some(now + delay);
    }

    /// ManualStop (§8.1.2): send a Cease if a connection is open, close, go Idle; no restart.
    pub fn stop(&mut self, now: Instant, cease_subcode: u8) {
        self.auto_restart = false;
        match self.state {
            State::OpenSent | State::OpenConfirm | State::Established => {
                let n = Notification {
                    code: code::CEASE,
                    subcode: cease_subcode,
                    data: Vec::new(),
                };
                self.send_notification(&n);
                self.go_down(now, DownReason::Stopped);
            }
            State::Connect | State::Active => self.go_down(now, DownReason::Stopped),
            State::Idle => {}
        }
        self.connect_retry_at = None;
    }

    /// The TCP connection (outgoing or accepted) is up: send OPEN (§8.2.2, Connect/Active).
    /// Returns false (and does nothing) if the session is not waiting for a connection.
    pub fn tcp_connected(&mut self, now: Instant) -> bool {
        if !matches!(self.state, State::Connect | State::Active) {
            return false;
        }
        self.connect_retry_at = None;
        self.rx.clear();
        let mut caps: Vec<Capability> = self
            .cfg
            .families
            .iter()
            .map(|f| Capability::Multiprotocol(*f))
            .collect();
        caps.push(Capability::RouteRefresh);
        if let Some(t) = self.cfg.graceful_restart {
            caps.push(Capability::GracefulRestart(GracefulRestartCap {
                flags: 0,
                restart_time: t.min(4095),
                families: self
                    .cfg
                    .families
                    .iter()
                    .map(|f| (*f, self.cfg.graceful_restart_forwarding))
                    .collect(),
            }));
        }
        let open = Open::new(
            self.cfg.local_asn,
            self.hold_time(),
            self.cfg.router_id,
            caps,
        );
        self.send(&Message::Open(open));
        self.state = State::OpenSent;
        self.hold_at = Some(now + LARGE_HOLD);
        true
    }

    /// The TCP connection closed or could not be made.
    pub fn tcp_closed(&mut self, now: Instant) {
        match self.state {
            State::Idle => {}
            State::Connect | State::Active => {
                // §8.2.2: wait in Active; ConnectRetry expiry makes the next attempt.
                self.state = State::Active;
                self.connect_retry_at = Some(now + self.jitter.apply(self.cfg.connect_retry));
            }
            _ => self.go_down(now, DownReason::TcpClosed),
        }
    }

    /// Bytes received on the connection.
    pub fn handle_bytes(&mut self, now: Instant, data: &[u8]) {
        if !matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        ) {
            return;
        }
        self.rx.extend_from_slice(data);
        let mut off = 0usize;
        loop {
            let buf = self.rx.get(off..).unwrap_or_default();
            match wire::frame_len(buf) {
                Ok(None) => break,
                Ok(Some(n)) => {
                    let msg = buf.get(..n).map(|m| wire::decode(m, &self.ctx));
                    off += n;
                    match msg {
                        Some(Ok(m)) => self.handle_message(now, m),
                        Some(Err(e)) => self.decode_error(now, &e),
                        None => break,
                    }
                }
                Err(e) => {
                    self.decode_error(now, &e);
                }
            }
            if !matches!(
                self.state,
                State::OpenSent | State::OpenConfirm | State::Established
            ) {
                self.rx.clear();
                return;
            }
        }
        self.rx.drain(..off.min(self.rx.len()));
        if self.rx.capacity() > 1 << 20 && self.rx.len() < wire::MAX_MESSAGE_LEN {
            self.rx.shrink_to(64 * 1024);
        }
    }

    /// Timers: ConnectRetry, Hold, Keepalive.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.hold_at.is_some_and(|t| t <= now) {
            self.hold_at = None;
            let n = Notification {
                code: code::HOLD_TIMER_EXPIRED,
                subcode: 0,
                data: Vec::new(),
            };
            self.send_notification(&n);
            self.go_down(now, DownReason::NotificationSent(n));
        }
        if self.keepalive_at.is_some_and(|t| t <= now) {
            self.send(&Message::Keepalive);
            self.arm_keepalive(now);
        }
        if self.connect_retry_at.is_some_and(|t| t <= now) {
            self.connect_retry_at = Some(now + self.jitter.apply(self.cfg.connect_retry));
            match self.state {
                State::Idle if self.auto_restart => {
                    self.state = State::Idle;
                    self.connect_retry_at = None;
                    self.start(now);
                }
                State::Connect | State::Active if !self.cfg.passive => {
                    self.state = State::Connect;
                    self.events.push_back(SessionEvent::Connect);
                }
                State::Active | State::Connect => {}
                _ => self.connect_retry_at = None,
            }
        }
    }

    /// The earliest deadline at which [`Session::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.connect_retry_at, self.hold_at, self.keepalive_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// Bytes to send on the connection, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.tx.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.tx))
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        let e = self.events.pop_front();
        if e.is_none() && self.events.capacity() > 4096 {
            self.events.shrink_to(64);
        }
        e
    }

    /// Sends an UPDATE (Established only). Fails if it does not fit one message.
    pub fn send_update(&mut self, now: Instant, u: &Update) -> Result<(), wire::EncodeError> {
        if self.state != State::Established {
            return Ok(());
        }
        wire::encode(&Message::Update(u.clone()), &self.ctx, &mut self.tx)?;
        self.arm_keepalive(now);
        Ok(())
    }

    /// Asks the peer to resend its routes for `family` (RFC 2918), if it supports it.
    pub fn send_route_refresh(&mut self, family: Family) {
        if self.state == State::Established
            && self.negotiated.as_ref().is_some_and(|n| n.route_refresh)
        {
            self.send(&Message::RouteRefresh(RouteRefresh { family, subtype: 0 }));
        }
    }

    /// Sends a NOTIFICATION and tears the session down (e.g. max-prefix, collision).
    pub fn send_notification_and_close(&mut self, now: Instant, n: Notification) {
        if matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        ) {
            self.send_notification(&n);
        }
        if self.state != State::Idle {
            self.go_down(now, DownReason::NotificationSent(n));
        }
    }

    /// Our proposed hold time: RFC 4271 §4.2 forbids 1 and 2 s, so those become 3.
    fn hold_time(&self) -> u16 {
        match self.cfg.hold_time {
            1 | 2 => 3,
            h => h,
        }
    }

    fn send(&mut self, m: &Message) {
        // Only fixed-size or bounded messages come through here; an encode error cannot happen
        // for them, and dropping one would be caught by the peer's hold timer.
        let _ = wire::encode(m, &self.ctx, &mut self.tx);
    }

    fn send_notification(&mut self, n: &Notification) {
        self.send(&Message::Notification(n.clone()));
    }

    fn arm_keepalive(&mut self, now: Instant) {
        self.keepalive_at = match &self.negotiated {
            Some(n) if n.keepalive > 0 && self.state != State::OpenSent => Some(
                now + self
                    .jitter
                    .apply(Duration::from_secs(u64::from(n.keepalive))),
            ),
            _ => None,
        };
    }

    fn arm_hold(&mut self, now: Instant) {
        self.hold_at = match &self.negotiated {
            Some(n) if n.hold_time > 0 => Some(now + Duration::from_secs(u64::from(n.hold_time))),
            _ => None,
        };
    }

    fn go_down(&mut self, now: Instant, reason: DownReason) {
        let was_up = matches!(self.state, State::OpenConfirm | State::Established);
        let had_conn = !matches!(self.state, State::Idle);
        self.state = State::Idle;
        self.hold_at = None;
        self.keepalive_at = None;
        self.negotiated = None;
        self.peer_open = None;
        self.ctx = DecodeCtx::default();
        self.rx.clear();
        if had_conn {
            self.events.push_back(SessionEvent::Disconnect);
        }
        if was_up {
            self.events.push_back(SessionEvent::Down(reason));
        }
        self.connect_retry_at = if self.auto_restart {
            Some(now + self.jitter.apply(self.cfg.connect_retry))
        } else {
            None
        };
    }

    fn decode_error(&mut self, now: Instant, e: &DecodeError) {
        let n = e.notification();
        self.send_notification(&n);
        self.go_down(now, DownReason::NotificationSent(n));
    }

    fn fsm_error(&mut self, now: Instant) {
        // RFC 6608 subcodes: 1 OpenSent, 2 OpenConfirm, 3 Established.
        let subcode = match self.state {
            State::OpenSent => 1,
            State::OpenConfirm => 2,
            _ => 3,
        };
        let n = Notification {
            code: code::FSM,
            subcode,
            data: Vec::new(),
        };
        self.send_notification(&n);
        self.go_down(now, DownReason::NotificationSent(n));
    }

    fn validate_open(&self, o: &Open) -> Result<Negotiated, Notification> {
        let err = |subcode: u8, data: Vec<u8>| Notification {
            code: code::OPEN,
            subcode,
            data,
        };
        if o.version != 4 {
            return Err(err(open_sub::UNSUPPORTED_VERSION, vec![0, 4]));
        }
        if o.asn() != self.cfg.peer_asn {
            return Err(err(open_sub::BAD_PEER_AS, Vec::new()));
        }
        if o.hold_time == 1 || o.hold_time == 2 {
            return Err(err(open_sub::UNACCEPTABLE_HOLD_TIME, Vec::new()));
        }
        if o.bgp_id.is_unspecified() || (self.cfg.is_ibgp() && o.bgp_id == self.cfg.router_id) {
            return Err(err(open_sub::BAD_BGP_IDENTIFIER, Vec::new()));
        }
        let hold_time = o.hold_time.min(self.hold_time());
        let peer_fams: Vec<Family> = o.families().collect();
        let families = if peer_fams.is_empty() {
            // RFC 4760 §8: without the capability, IPv4 unicast is implied.
            vec![Family::IPV4_UNICAST]
        } else {
            self.cfg
                .families
                .iter()
                .copied()
                .filter(|f| peer_fams.contains(f))
                .collect()
        };
        Ok(Negotiated {
            peer_asn: o.asn(),
            peer_id: o.bgp_id,
            hold_time,
            keepalive: hold_time / 3,
            four_octet_as: o.four_octet_as().is_some(),
            families,
            route_refresh: o.route_refresh(),
            peer_graceful_restart: o.graceful_restart().cloned(),
        })
    }

    fn handle_message(&mut self, now: Instant, m: Message) {
        match (self.state, m) {
            (_, Message::Notification(n)) => {
                // §6.2 / §8.2.2: a NOTIFICATION closes the connection, nothing is sent back.
                self.go_down(now, DownReason::NotificationReceived(n));
            }
            (State::OpenSent, Message::Open(o)) => match self.validate_open(&o) {
                Ok(neg) => {
                    self.ctx = DecodeCtx {
                        four_octet_as: neg.four_octet_as,
                    };
                    self.negotiated = Some(neg);
                    self.peer_open = Some(o);
                    self.state = State::OpenConfirm;
                    self.send(&Message::Keepalive);
                    self.arm_hold(now);
                    self.arm_keepalive(now);
                }
                Err(n) => {
                    self.send_notification(&n);
                    self.go_down(now, DownReason::NotificationSent(n));
                }
            },
            (State::OpenConfirm, Message::Keepalive) => {
                self.state = State::Established;
                self.arm_hold(now);
                if let Some(n) = self.negotiated.clone() {
                    self.events.push_back(SessionEvent::Established(n));
                }
            }
            (State::Established, Message::Keepalive) => self.arm_hold(now),
            (State::Established, Message::Update(u)) => {
                self.arm_hold(now);
                self.events.push_back(SessionEvent::Update(u));
            }
            (State::Established, Message::RouteRefresh(r)) => {
                self.arm_hold(now);
                self.events.push_back(SessionEvent::RouteRefresh(r));
            }
            _ => self.fsm_error(now),
        }
    }
}

/// Cease subcode used when the shell stops a session by configuration.
pub const STOP_SUBCODE: u8 = cease_sub::ADMIN_SHUTDOWN;

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> Instant {
        Instant::from_nanos(s * 1_000_000_000)
    }

    fn drain(s: &mut Session) -> Vec<SessionEvent> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    /// Runs two sessions against each other in memory until quiet.
    fn pump(
        a: &mut Session,
        b: &mut Session,
        now: Instant,
    ) -> (Vec<SessionEvent>, Vec<SessionEvent>) {
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        for _ in 0..20 {
            let mut moved = false;
            if let Some(x) = a.poll_transmit() {
                b.handle_bytes(now, &x);
                moved = true;
            }
            if let Some(x) = b.poll_transmit() {
                a.handle_bytes(now, &x);
                moved = true;
            }
            ea.extend(drain(a));
            eb.extend(drain(b));
            if !moved {
                break;
            }
        }
        (ea, eb)
    }

    fn pair(hold_a: u16, hold_b: u16) -> (Session, Session) {
        let mut ca = SessionConfig::new(65001, 4_200_000_002, Ipv4Addr::new(10, 0, 0, 1));
        ca.hold_time = hold_a;
        let mut cb = SessionConfig::new(4_200_000_002, 65001, Ipv4Addr::new(10, 0, 0, 2));
        cb.hold_time = hold_b;
        cb.passive = true;
        (Session::new(ca, 1), Session::new(cb, 2))
    }

    #[test]
    fn establishes_and_negotiates_smallest_hold_time() {
        for (ha, hb, want) in [(90, 30, 30), (180, 180, 180), (60, 180, 60), (0, 30, 0)] {
            let (mut a, mut b) = pair(ha, hb);
            a.start(t(0));
            b.start(t(0));
            assert_eq!(drain(&mut a), vec![SessionEvent::Connect]);
            assert!(a.tcp_connected(t(0)));
            assert!(b.tcp_connected(t(0)));
            let (ea, eb) = pump(&mut a, &mut b, t(0));
            assert_eq!(a.state(), State::Established);
            assert_eq!(b.state(), State::Established);
            let SessionEvent::Established(n) = &ea[0] else {
                panic!("{ea:?}")
            };
            assert_eq!(n.hold_time, want);
            assert_eq!(n.keepalive, want / 3);
            assert!(n.four_octet_as);
            assert_eq!(n.peer_asn, 4_200_000_002);
            assert!(matches!(&eb[0], SessionEvent::Established(n) if n.peer_asn == 65001));
            if want == 0 {
                assert_eq!(
                    a.poll_timeout(),
                    None,
                    "hold 0: no keepalive and no hold timer"
                );
            } else {
                // Keepalive within [0.75, 1] x hold/3.
                let k = a.poll_timeout().unwrap().saturating_duration_since(t(0));
                assert!(k >= Duration::from_secs(u64::from(want) / 3) * 3 / 4);
                assert!(k <= Duration::from_secs(u64::from(want) / 3));
            }
        }
    }

    #[test]
    fn keepalives_keep_the_session_and_silence_expires_the_hold_timer() {
        let (mut a, mut b) = pair(30, 30);
        a.start(t(0));
        b.start(t(0));
        a.tcp_connected(t(0));
        b.tcp_connected(t(0));
        pump(&mut a, &mut b, t(0));
        // Drive both for 120 s of simulated time with keepalives flowing.
        let mut now = t(0);
        while now < t(120) {
            now = now + Duration::from_secs(1);
            a.handle_timeout(now);
            b.handle_timeout(now);
            pump(&mut a, &mut b, now);
        }
        assert_eq!(a.state(), State::Established);
        // Now b goes silent: a's hold timer fires within 30 s and sends 4/0.
        let mut events = Vec::new();
        while now < t(160) && a.state() == State::Established {
            now = now + Duration::from_secs(1);
            a.handle_timeout(now);
            events.extend(drain(&mut a));
        }
        assert_eq!(a.state(), State::Idle);
        assert!(now <= t(151), "hold expired at {now:?}");
        let sent = a.poll_transmit().unwrap();
        let n = sent.len();
        assert_eq!(&sent[n - 2..], &[4, 0]);
        assert!(events.contains(&SessionEvent::Disconnect));
        assert!(events.iter().any(
            |e| matches!(e, SessionEvent::Down(DownReason::NotificationSent(n)) if n.code == 4)
        ));
    }

    fn notification_for_bad_open(mutate: impl Fn(&mut Open)) -> Notification {
        let (mut a, _) = pair(90, 90);
        a.start(t(0));
        a.tcp_connected(t(0));
        a.poll_transmit();
        let mut o = Open::new(4_200_000_002, 90, Ipv4Addr::new(10, 0, 0, 2), vec![]);
        mutate(&mut o);
        a.handle_bytes(
            t(0),
            &wire::encode_to_vec(&Message::Open(o), &DecodeCtx::default()).unwrap(),
        );
        let sent = a.poll_transmit().unwrap();
        let Ok(Message::Notification(n)) = wire::decode(&sent, &DecodeCtx::default()) else {
            panic!()
        };
        assert_eq!(a.state(), State::Idle);
        n
    }

    #[test]
    fn bad_opens_get_the_right_notification() {
        let n = notification_for_bad_open(|o| *o = Open::new(65099, 90, o.bgp_id, vec![]));
        assert_eq!((n.code, n.subcode), (2, 2));
        let n = notification_for_bad_open(|o| o.version = 3);
        assert_eq!((n.code, n.subcode, n.data), (2, 1, vec![0, 4]));
        let n = notification_for_bad_open(|o| o.hold_time = 2);
        assert_eq!((n.code, n.subcode), (2, 6));
        let n = notification_for_bad_open(|o| o.bgp_id = Ipv4Addr::UNSPECIFIED);
        assert_eq!((n.code, n.subcode), (2, 3));
    }

    #[test]
    fn connect_retry_is_jittered_and_restarts_after_failure() {
        let (mut a, _) = pair(90, 90);
        a.start(t(0));
        assert_eq!(drain(&mut a), vec![SessionEvent::Connect]);
        a.tcp_closed(t(1));
        let at = a.poll_timeout().unwrap();
        assert!(
            at >= t(1) + Duration::from_millis(22_500) && at <= t(31),
            "{at:?}"
        );
        a.handle_timeout(at);
        assert_eq!(drain(&mut a), vec![SessionEvent::Connect]);
        assert_eq!(a.state(), State::Connect);
        a.stop(at, STOP_SUBCODE);
        assert_eq!(a.state(), State::Idle);
        assert_eq!(a.poll_timeout(), None);
    }

    #[test]
    fn a_configured_hold_time_of_two_is_proposed_as_three() {
        let (mut a, _) = pair(2, 90);
        a.start(t(0));
        a.tcp_connected(t(0));
        let sent = a.poll_transmit().unwrap();
        let Ok(Message::Open(o)) = wire::decode(&sent, &DecodeCtx::default()) else {
            panic!()
        };
        assert_eq!(o.hold_time, 3);
    }

    #[test]
    fn update_before_established_is_an_fsm_error() {
        let (mut a, _) = pair(90, 90);
        a.start(t(0));
        a.tcp_connected(t(0));
        a.poll_transmit();
        a.handle_bytes(
            t(0),
            &wire::encode_to_vec(&Message::Update(Update::default()), &DecodeCtx::default())
                .unwrap(),
        );
        let sent = a.poll_transmit().unwrap();
        assert_eq!(&sent[sent.len() - 2..], &[5, 1]);
    }
}
