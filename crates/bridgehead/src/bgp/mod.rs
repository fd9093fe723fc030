//! The BGP service: the shell around the sans-IO [`bh_bgp::speaker::Speaker`].
//!
//! One thread runs an epoll loop that
//! - listens on TCP port 179 (dual-stack `[::]:179`, else `0.0.0.0:179`) and hands connections
//!   from configured neighbors to the speaker (others are closed at once);
//! - opens the connections the speaker asks for (the SYN leaves from the loop, the wait for the
//!   answer runs on a short helper thread, so a silent peer never stalls the loop), with TTL 1
//!   for directly connected IPv4 peers or the neighbor's `multihop` TTL; an attempt the speaker
//!   abandons (the peer's connection won, §6.8) is aborted at once, so no SYN retransmission
//!   reaches the peer after its session is up;
//! - signs the sessions of neighbors with `md5_password` with TCP MD5 (RFC 2385): the key is set
//!   per peer address on the listening socket (accepted connections inherit it) and on each
//!   outgoing socket before its SYN ([`bh_sys::tcp_md5`]); a kernel without
//!   `CONFIG_TCP_MD5SIG` fails the start. The kernel drops unsigned or wrongly signed segments
//!   silently, so while such a session is down its `last_error` quotes the namespace's MD5 drop
//!   counters when they moved;
//! - feeds bytes in, writes bytes out (non-blocking, with a bounded per-connection backlog),
//!   and drives the speaker's timers from a monotonic clock;
//! - keeps the kernel equal to the speaker's best routes through [`fib::FibSync`], changed
//!   prefixes only (a full reconcile at start, on device changes and after errors): routes tagged
//!   [`crate::daemon::RTPROT_BRIDGEHEAD`], in `[bgp].table` at `[bgp].metric`, ECMP over the
//!   neighbors' devices; stale routes of an earlier run are removed at start-up;
//! - watches links ([`bh_sys::link::LinkWatch`]): a device going down (a tunnel's, or the link
//!   of a neighbor reached without one) takes the next hops through it out of the kernel at
//!   once, so an ECMP route keeps only live hops (the session follows when its hold timer
//!   expires), and they come back when the device is up again.
//!
//! Neighbors over a tunnel the cloud's design keeps down ([`crate::cloud::design`]) get no
//! session (no connects through a tunnel that never comes up): they show as `Idle` with
//! `by_design: true` and the reason as their `last_error`.
//!
//! [`BgpService::status_json`] reports neighbors (AS, state, uptime, prefixes received and
//! sent, messages each way, whether TCP MD5 is on, last error) and the best routes with their installed state.
//! [`BgpService::routes_view`] answers `bridgehead routes` from the loop: a bounded per-prefix
//! view of the RIBs and the kernel ([`routes_view`]).
//!
//! Configuration reload ([`BgpService::remove_neighbors`], [`BgpService::apply`]) runs on the
//! loop's thread, woken through its eventfd: neighbors removed are stopped with Cease/Peer
//! De-configured, added ones started, changed ones reset with Cease/Other Configuration
//! Change (RFC 4486), policy and `advertise` changes sent as UPDATEs, withdrawals and
//! ROUTE-REFRESH without a reset ([`crate::reload`] decides which is which). Untouched
//! sessions keep running.
//!
//! Not done here: TCP-AO (RFC 5925), GTSM, IPv6 hop limits for multihop sessions (IPv6
//! sessions use the kernel default), changing the AS, router id, table or metric without a
//! restart, and keeping routes across a restart of bridgehead. Routes are withdrawn from the
//! kernel by [`BgpService::shutdown`] (or drop); if the process ends without either, they stay
//! until the next start removes them as stale.

pub mod fib;
pub mod routes_view;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use bh_bgp::rib::{PeerId, PrefixList, PrefixListEntry};
use bh_bgp::session::{DownReason, State};
use bh_bgp::speaker::{
    ConnId, MaxPrefixAction, NeighborConfig, Output, Speaker, SpeakerConfig, SpeakerEvent,
};
use bh_config::{Bgp, BgpNeighbor, Config};
use bh_dataplane::Dataplane;
use bh_sys::link::LinkWatch;
use bh_sys::poll::{Epoll, EventFd, Events};
use serde_json::{Value, json};

use fib::FibSync;

/// The BGP port (RFC 4271 §8.2.1).
pub const BGP_PORT: u16 = 179;
/// How long one outgoing `connect` may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// ConnectRetry for our sessions (the speaker jitters it).
const CONNECT_RETRY: Duration = Duration::from_secs(5);
/// Unsent bytes one connection may hold before it is dropped (a peer that stopped reading).
const MAX_BACKLOG: usize = 16 << 20;
/// The longest the loop sleeps (status refresh and stop checks).
const TICK: Duration = Duration::from_millis(200);
/// How long a connection closed after a NOTIFICATION is kept reading what the peer still
/// sends (see `Loop::closing`).
const LINGER: Duration = Duration::from_secs(2);
/// Most connections lingering at once; the oldest is closed for a new one.
const MAX_CLOSING: usize = 64;
/// Routes listed in the status (the count is always complete).
const STATUS_ROUTES: usize = 1000;
/// Shortest interval between two kernel syncs.
const SYNC_INTERVAL: Duration = Duration::from_millis(100);
/// How often the prefixes other protocols' routes held are tried again.
const CONFLICT_RECHECK: Duration = Duration::from_secs(10);
/// Shortest interval between two status snapshots.
const STATUS_INTERVAL: Duration = Duration::from_millis(200);

const TOKEN_WAKE: u64 = 0;
const TOKEN_LISTEN: u64 = 1;
const TOKEN_LINKS: u64 = 2;
const TOKEN_CONN: u64 = 16;

/// The running BGP service (shared with the control socket thread, so `Send + Sync`).
pub struct BgpService {
    status: Arc<Mutex<Value>>,
    /// Route view queries to the loop ([`routes_view`]); `None` without `[bgp]`.
    queries: Option<mpsc::SyncSender<routes_view::Query>>,
    stop: Arc<AtomicBool>,
    wake: Arc<EventFd>,
    thread: Mutex<Option<JoinHandle<()>>>,
    requests: Arc<Mutex<Vec<Request>>>,
}

/// A reload step for the loop.
enum Command {
    /// Stop these neighbors (Cease/Peer De-configured).
    Remove(Vec<IpAddr>),
    /// Take the new configuration and apply the rest of the plan.
    Apply(Box<Config>, crate::reload::BgpPlan),
}

/// A command and where to report what failed.
struct Request {
    command: Command,
    done: mpsc::SyncSender<Vec<String>>,
}

/// How long a reload step waits for the loop.
const APPLY_WAIT: Duration = Duration::from_secs(10);

/// Starts the BGP speaker for the configured neighbors; without `[bgp]` it does nothing.
pub fn start(cfg: &Config, _dp: Arc<Dataplane>) -> Result<BgpService> {
    let status = Arc::new(Mutex::new(Value::Null));
    let stop = Arc::new(AtomicBool::new(false));
    let wake = Arc::new(EventFd::new().context("eventfd")?);
    let requests = Arc::new(Mutex::new(Vec::new()));
    let Some(bgp) = cfg.bgp.clone() else {
        return Ok(BgpService {
            status,
            queries: None,
            stop,
            wake,
            thread: Mutex::new(None),
            requests,
        });
    };
    let mut lp = Loop::new(cfg, &bgp, Arc::clone(&wake), Arc::clone(&status))?;
    lp.requests = Arc::clone(&requests);
    let (queries, query_rx) = mpsc::sync_channel(routes_view::QUERY_QUEUE);
    lp.queries = Some(query_rx);
    let (stop2, ready_tx) = (Arc::clone(&stop), mpsc::sync_channel::<Result<()>>(1));
    let (ready_tx, ready_rx) = ready_tx;
    // The loop (and its netlink sockets) run in the thread's network namespace: the daemon's.
    let thread = std::thread::Builder::new()
        .name("bgp".into())
        .spawn(move || {
            let r = lp.init();
            let ok = r.is_ok();
            let _ = ready_tx.send(r);
            if ok {
                lp.run(&stop2);
            }
        })
        .context("starting the BGP thread")?;
    match ready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(anyhow!("the BGP thread ended during start-up")),
    }
    Ok(BgpService {
        status,
        queries: Some(queries),
        stop,
        wake,
        thread: Mutex::new(Some(thread)),
        requests,
    })
}

impl BgpService {
    /// Stops the sessions of these neighbors with Cease/Peer De-configured and forgets them;
    /// returns once the NOTIFICATIONs are handed to TCP. Done before the tunnels they run over
    /// change.
    pub fn remove_neighbors(&self, addrs: Vec<IpAddr>) -> Result<()> {
        if addrs.is_empty() {
            return Ok(());
        }
        self.request(Command::Remove(addrs))
    }

    /// Takes `cfg` (the running configuration after the reload) and applies `plan`: adds,
    /// resets and policy changes of neighbors, and `advertise`. Done after the tunnels changed
    /// (new devices exist). Without a running speaker it does nothing.
    pub fn apply(&self, cfg: &Config, plan: &crate::reload::BgpPlan) -> Result<()> {
        self.request(Command::Apply(Box::new(cfg.clone()), plan.clone()))
    }

    fn request(&self, command: Command) -> Result<()> {
        let running = self
            .thread
            .lock()
            .map(|t| t.as_ref().is_some_and(|t| !t.is_finished()))
            .unwrap_or(false);
        if !running {
            return Ok(());
        }
        let (done, wait) = mpsc::sync_channel(1);
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Request { command, done });
        self.wake.notify().context("waking the BGP thread")?;
        let errors = wait
            .recv_timeout(APPLY_WAIT)
            .map_err(|_| anyhow!("the BGP thread did not apply the changes in time"))?;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(anyhow!("{}", errors.join("; ")))
        }
    }
}

impl BgpService {
    /// Neighbors and routes, for `bridgehead status --json` (`null` without `[bgp]`).
    pub fn status_json(&self) -> Value {
        self.status.lock().map(|v| v.clone()).unwrap_or(Value::Null)
    }
}

impl BgpService {
    /// Stops the speaker (its TCP connections close) and takes its routes out of the kernel;
    /// returns when done. Also done on drop; calling it twice is harmless.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.wake.notify();
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = handle {
            let _ = t.join();
        }
    }
}

impl Drop for BgpService {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Counts whole BGP messages in a byte stream (RFC 4271 §4.1: length at octets 16-17, type at
/// 18) and remembers the code and subcode of the last NOTIFICATION (§4.5) in it.
#[derive(Debug, Default, Clone, Copy)]
struct MsgCounter {
    /// Bytes seen of the current message.
    pos: usize,
    /// Its length (valid once 18 bytes are seen).
    len: usize,
    /// Its first 21 bytes: header, and for a NOTIFICATION its code and subcode.
    head: [u8; 21],
    count: u64,
    last_notification: Option<(u8, u8)>,
}

impl MsgCounter {
    fn feed(&mut self, mut data: &[u8]) -> Option<(u8, u8)> {
        let mut notification = None;
        while !data.is_empty() {
            if self.pos < self.head.len() {
                let Some((&b, tail)) = data.split_first() else {
                    break;
                };
                data = tail;
                if let Some(slot) = self.head.get_mut(self.pos) {
                    *slot = b;
                }
                self.pos += 1;
                if self.pos == 18 {
                    let len = u16::from_be_bytes([self.head[16], self.head[17]]);
                    self.len = usize::from(len).max(19);
                }
            } else {
                let n = self.len.saturating_sub(self.pos).min(data.len());
                self.pos += n;
                data = data.get(n..).unwrap_or(&[]);
            }
            if self.pos >= 19 && self.pos >= self.len {
                self.count = self.count.saturating_add(1);
                if self.head[18] == 3 && self.len >= 21 {
                    let n = (self.head[19], self.head[20]);
                    self.last_notification = Some(n);
                    notification = Some(n);
                }
                self.pos = 0;
            }
        }
        notification
    }
}

/// One TCP connection.
struct Conn {
    stream: TcpStream,
    backlog: Vec<u8>,
    peer: PeerId,
}

/// What the status shows about a neighbor beyond what the speaker knows.
#[derive(Default)]
struct PeerInfo {
    up_since: Option<std::time::Instant>,
    last_error: String,
    rx: MsgCounter,
    tx: MsgCounter,
    flaps: u64,
}

/// `sent NOTIFICATION 6/2 (Cease: Administrative Shutdown)`: numbers for searching logs and
/// RFCs, the name for reading.
fn notification_text(dir: &str, code: u8, sub: u8) -> String {
    let name = bh_bgp::wire::notification_name(code, sub);
    format!("{dir} NOTIFICATION {code}/{sub} ({name})")
}

/// Records a NOTIFICATION seen on one of the neighbor's connections as its last error, except
/// Cease / Connection Collision Resolution (RFC 4486 §4): that one closes the losing one of two
/// connections opened at once, which RFC 4271 §6.8 makes a normal part of coming up (both
/// ends of a cloud tunnel connect), so it is logged, not shown as an error.
fn note_notification(i: &mut PeerInfo, dir: &str, code: u8, sub: u8) {
    let text = notification_text(dir, code, sub);
    if code == bh_bgp::wire::code::CEASE && sub == bh_bgp::wire::cease_sub::COLLISION {
        tracing::debug!(notification = %text, "connection collision resolved");
        return;
    }
    i.last_error = text;
}

struct Loop {
    bgp: Bgp,
    speaker: Option<Speaker>,
    /// Neighbor configs and the device each one's routes leave through.
    neighbors: Vec<(BgpNeighbor, Option<u32>)>,
    peers: BTreeMap<PeerId, usize>,
    info: HashMap<PeerId, PeerInfo>,
    origin: std::time::Instant,
    epoll: Epoll,
    wake: Arc<EventFd>,
    listener: Option<TcpListener>,
    links: Option<LinkWatch>,
    conns: HashMap<ConnId, Conn>,
    /// Outgoing connects in progress, with their neighbor.
    connecting: HashMap<ConnId, PeerId>,
    /// A clone of each connecting socket, to abort it when the speaker gives up on it.
    aborts: HashMap<ConnId, TcpStream>,
    /// Connections closed after a NOTIFICATION: our side is shut (FIN sent after it), and
    /// what the peer still sends is read and dropped until it closes or the deadline passes.
    /// Closing a socket with unread data makes the kernel send a RST, which can reach the
    /// peer before it has read the NOTIFICATION (FRR then logs "NSF peer closed the
    /// session" instead of the reason). At most [`MAX_CLOSING`] at once.
    closing: Vec<(TcpStream, std::time::Instant)>,
    connect_tx: mpsc::Sender<(ConnId, io::Result<TcpStream>)>,
    connect_rx: mpsc::Receiver<(ConnId, io::Result<TcpStream>)>,
    fib: Option<FibSync>,
    fib_dirty: bool,
    /// Prefixes whose best routes changed since the last sync: the incremental sync's work.
    fib_changed: BTreeSet<bh_bgp::Prefix>,
    /// The next sync must be a full reconcile (a device changed state, or a change failed).
    fib_full: bool,
    /// When the prefixes other protocols held were last tried again.
    last_recheck: std::time::Instant,
    /// When the kernel was last synced and the status last published (both rate-limited, so
    /// a large table arriving costs one dump per interval, not one per read).
    last_sync: std::time::Instant,
    last_status: std::time::Instant,
    /// A session changed state or recorded an error: publish the status without waiting.
    status_now: bool,
    down: BTreeSet<u32>,
    status: Arc<Mutex<Value>>,
    cfg: Config,
    /// TCP MD5 drop counters at the last look, see [`Loop::md5_hint`].
    md5_seen: bh_sys::tcp_md5::Md5Counters,
    /// Reload steps from [`BgpService`].
    requests: Arc<Mutex<Vec<Request>>>,
    /// Neighbors over a tunnel the cloud's design keeps down, with the reason: never started.
    by_design: Vec<(BgpNeighbor, String)>,
    /// Route view queries from the control thread ([`routes_view`]).
    queries: Option<mpsc::Receiver<routes_view::Query>>,
}

fn to_bgp_prefix(p: &bh_config::Prefix) -> Result<bh_bgp::Prefix> {
    bh_bgp::Prefix::new(p.addr, p.len).map_err(|e| anyhow!("{p}: {e:?}"))
}

fn prefix_list(rules: &[bh_config::PrefixRule]) -> Result<PrefixList> {
    Ok(PrefixList {
        entries: rules
            .iter()
            .map(|r| {
                Ok(PrefixListEntry {
                    prefix: to_bgp_prefix(&r.prefix)?,
                    max_len: r.max_len,
                    permit: r.permit,
                })
            })
            .collect::<Result<_>>()?,
    })
}

/// The local address the kernel would use towards `peer` (no packet is sent).
fn local_addr_towards(peer: IpAddr) -> Option<IpAddr> {
    let bind: SocketAddr = if peer.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = UdpSocket::bind(bind).ok()?;
    s.connect((peer, BGP_PORT)).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

/// Our BGP identifier when `router_id` is not set: an IPv4 address of this host from the
/// configuration.
fn default_router_id(cfg: &Config) -> Option<Ipv4Addr> {
    let v4 = |a: IpAddr| match a {
        IpAddr::V4(a) if !a.is_unspecified() => Some(a),
        _ => None,
    };
    cfg.appliance
        .private_ip
        .and_then(v4)
        .or_else(|| {
            cfg.tunnels
                .iter()
                .flat_map(|t| &t.inside)
                .find_map(|p| v4(p.addr))
        })
        .or_else(|| cfg.appliance.public_ip.and_then(v4))
}

impl Loop {
    fn new(cfg: &Config, bgp: &Bgp, wake: Arc<EventFd>, status: Arc<Mutex<Value>>) -> Result<Self> {
        let (connect_tx, connect_rx) = mpsc::channel();
        let mut neighbors = Vec::new();
        let design = crate::cloud::design::down_by_design(cfg);
        let mut by_design = Vec::new();
        for n in &bgp.neighbors {
            let tunnel_down = n.tunnel.as_ref().and_then(|name| {
                let i = cfg.tunnels.iter().position(|t| &t.name == name)?;
                design.get(i).cloned().flatten().map(|why| (name, why))
            });
            if let Some((name, why)) = tunnel_down {
                tracing::warn!(neighbor = %n.address, tunnel = %name, "not started: its tunnel is down by design");
                by_design.push((n.clone(), format!("not started: tunnel {name} is {why}")));
                continue;
            }
            let ifindex = match &n.tunnel {
                Some(name) => {
                    let dev = format!("bh-{name}");
                    Some(
                        bh_sys::link::ifindex(&dev)
                            .with_context(|| format!("neighbor {}: device {dev}", n.address))?,
                    )
                }
                None => None,
            };
            neighbors.push((n.clone(), ifindex));
        }
        Ok(Self {
            bgp: bgp.clone(),
            speaker: None,
            neighbors,
            peers: BTreeMap::new(),
            info: HashMap::new(),
            origin: std::time::Instant::now(),
            epoll: Epoll::new().context("epoll")?,
            wake,
            listener: None,
            links: None,
            conns: HashMap::new(),
            connecting: HashMap::new(),
            aborts: HashMap::new(),
            closing: Vec::new(),
            connect_tx,
            connect_rx,
            fib: None,
            fib_dirty: false,
            fib_changed: BTreeSet::new(),
            fib_full: false,
            last_recheck: std::time::Instant::now(),
            last_sync: std::time::Instant::now(),
            last_status: std::time::Instant::now(),
            status_now: true,
            down: BTreeSet::new(),
            status,
            cfg: cfg.clone(),
            md5_seen: bh_sys::tcp_md5::md5_counters().unwrap_or_default(),
            requests: Arc::new(Mutex::new(Vec::new())),
            by_design,
            queries: None,
        })
    }

    fn now(&self) -> bh_bgp::Instant {
        let ns = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        bh_bgp::Instant::from_nanos(ns)
    }

    /// Sockets, the start-up reconcile and the speaker; errors stop the daemon's start.
    fn init(&mut self) -> Result<()> {
        let bgp = &self.bgp;
        let router_id = bgp
            .router_id
            .or_else(|| default_router_id(&self.cfg))
            .context("[bgp] has no router_id and this host has no IPv4 address in the configuration to use")?;
        let mut fib = FibSync::open(bh_fib::Scope {
            table: bgp.table,
            protocol: crate::daemon::RTPROT_BRIDGEHEAD,
            metric: bgp.metric,
        })?;
        // Start-up: our routes from an earlier run are stale until the speaker relearns them.
        fib.sync(&bh_fib::Desired::new())
            .context("removing stale BGP routes")?;
        self.fib = Some(fib);

        let listener = TcpListener::bind((std::net::Ipv6Addr::UNSPECIFIED, BGP_PORT))
            .or_else(|_| TcpListener::bind((Ipv4Addr::UNSPECIFIED, BGP_PORT)))
            .context("listening on TCP port 179")?;
        listener.set_nonblocking(true)?;
        // RFC 2385: connections from a neighbor with a password are signed from their SYN on.
        for (n, _) in &self.neighbors {
            if let Some(pw) = &n.md5_password {
                bh_sys::tcp_md5::set_key(&listener, n.address, pw.expose()).with_context(|| {
                    format!(
                        "setting the TCP MD5 password of neighbor {} (does the kernel have CONFIG_TCP_MD5SIG?)",
                        n.address
                    )
                })?;
                tracing::info!(neighbor = %n.address, "TCP MD5 signatures required");
            }
        }
        self.epoll.add(listener.as_raw_fd(), TOKEN_LISTEN)?;
        self.listener = Some(listener);
        self.epoll.add(self.wake.as_raw_fd(), TOKEN_WAKE)?;
        match LinkWatch::open() {
            Ok(w) => {
                self.epoll.add(w.as_raw_fd(), TOKEN_LINKS)?;
                self.links = Some(w);
            }
            Err(e) => {
                tracing::warn!(error = %e, "no link watch: device state changes are not seen")
            }
        }

        let seed = {
            use std::hash::BuildHasher;
            std::collections::hash_map::RandomState::new().hash_one(self.origin)
        };
        let mut sc = SpeakerConfig::new(bgp.asn, router_id, seed);
        sc.networks = bgp
            .advertise
            .iter()
            .map(to_bgp_prefix)
            .collect::<Result<_>>()?;
        sc.max_paths = bgp.multipath;
        sc.transit = bgp.transit;
        let mut speaker = Speaker::new(sc);
        let now = self.now();
        for (i, (n, _)) in self.neighbors.iter().enumerate() {
            let nc = self.neighbor_config(n)?;
            let id = speaker.add_neighbor(now, nc);
            self.peers.insert(id, i);
            self.info.insert(id, PeerInfo::default());
            tracing::info!(neighbor = %n.address, asn = n.asn, tunnel = ?n.tunnel, "BGP neighbor configured");
        }
        self.speaker = Some(speaker);
        tracing::info!(asn = bgp.asn, %router_id, table = bgp.table, "BGP speaker started");
        self.drain();
        Ok(())
    }

    /// The speaker's configuration of neighbor `n`.
    fn neighbor_config(&self, n: &BgpNeighbor) -> Result<NeighborConfig> {
        let mut nc = NeighborConfig::new(n.address, n.asn);
        nc.session.hold_time = n.hold_time;
        nc.session.passive = n.passive;
        nc.session.connect_retry = CONNECT_RETRY;
        let local = local_addr_towards(n.address);
        let tunnel = n
            .tunnel
            .as_ref()
            .and_then(|name| self.cfg.tunnels.iter().find(|t| &t.name == name));
        let inside = |want_v4: bool| {
            tunnel.and_then(|t| {
                t.inside
                    .iter()
                    .map(|p| p.addr)
                    .find(|a| a.is_ipv4() == want_v4)
            })
        };
        nc.next_hop_v4 = match local.filter(IpAddr::is_ipv4).or_else(|| inside(true)) {
            Some(IpAddr::V4(a)) => Some(a),
            _ => None,
        };
        nc.next_hop_v6 = match local.filter(IpAddr::is_ipv6).or_else(|| inside(false)) {
            Some(IpAddr::V6(a)) => Some(a),
            _ => None,
        };
        nc.import = n.import.as_deref().map(prefix_list).transpose()?;
        nc.export = n.export.as_deref().map(prefix_list).transpose()?;
        nc.prepend = n.prepend;
        nc.med = n.med;
        nc.max_prefix = n.max_prefix.map(|m| {
            let action = match n.max_prefix_action {
                bh_config::MaxPrefixAction::Teardown => MaxPrefixAction::Teardown,
                bh_config::MaxPrefixAction::Warn => MaxPrefixAction::Warn,
            };
            (usize::try_from(m).unwrap_or(usize::MAX), action)
        });
        nc.max_advertised = n
            .max_advertise
            .map(|m| usize::try_from(m).unwrap_or(usize::MAX));
        Ok(nc)
    }

    /// Runs the reload steps queued by [`BgpService`].
    fn requests(&mut self) {
        let requests =
            std::mem::take(&mut *self.requests.lock().unwrap_or_else(|e| e.into_inner()));
        for r in requests {
            let errors = match r.command {
                Command::Remove(addrs) => {
                    self.remove(&addrs);
                    Vec::new()
                }
                Command::Apply(cfg, plan) => self.reconfigure(*cfg, &plan),
            };
            let _ = r.done.send(errors);
        }
    }

    /// Stops and forgets the neighbors at `addrs` (Cease/Peer De-configured).
    fn remove(&mut self, addrs: &[IpAddr]) {
        let now = self.now();
        for a in addrs {
            let Some(sp) = self.speaker.as_mut() else {
                return;
            };
            let Some(peer) = sp.neighbor_by_addr(*a) else {
                continue;
            };
            sp.remove_neighbor(now, peer);
            tracing::info!(neighbor = %a, "reload: BGP neighbor removed (Cease/Peer De-configured)");
            // The NOTIFICATION leaves (Output::Close writes it) while the peer is still known.
            self.drain();
            self.peers.remove(&peer);
            self.info.remove(&peer);
        }
        self.status_now = true;
    }

    /// Takes the reloaded configuration and applies `plan` (removals are done already).
    fn reconfigure(&mut self, cfg: Config, plan: &crate::reload::BgpPlan) -> Vec<String> {
        let mut errors = Vec::new();
        let Some(bgp) = cfg.bgp.clone() else {
            return errors;
        };
        // Neighbors over a tunnel the cloud's design keeps down are not run.
        let design = crate::cloud::design::down_by_design(&cfg);
        let mut by_design = Vec::new();
        let mut running = Vec::new();
        for n in &bgp.neighbors {
            let down = n.tunnel.as_ref().and_then(|name| {
                let i = cfg.tunnels.iter().position(|t| &t.name == name)?;
                design.get(i).cloned().flatten().map(|why| (name, why))
            });
            match down {
                Some((name, why)) => {
                    by_design.push((n.clone(), format!("not started: tunnel {name} is {why}")));
                }
                None => running.push(n.clone()),
            }
        }
        // Gone from the running set (removed, or now down by design).
        let gone: Vec<IpAddr> = self
            .speaker
            .as_ref()
            .map(|sp| {
                sp.neighbors()
                    .map(|(_, nc, ..)| nc.address)
                    .filter(|a| !running.iter().any(|n| n.address == *a))
                    .collect()
            })
            .unwrap_or_default();
        self.remove(&gone);
        self.by_design = by_design;
        self.cfg = cfg;
        // The neighbor list and devices of the new configuration (a re-created tunnel has a
        // new device index).
        let mut neighbors = Vec::new();
        for n in &running {
            let ifindex = n.tunnel.as_ref().and_then(|name| {
                let dev = format!("bh-{name}");
                match bh_sys::link::ifindex(&dev) {
                    Ok(i) => Some(i),
                    Err(e) => {
                        errors.push(format!("neighbor {}: device {dev}: {e}", n.address));
                        None
                    }
                }
            });
            neighbors.push((n.clone(), ifindex));
        }
        self.neighbors = neighbors;
        let find = |addr: IpAddr, list: &[(BgpNeighbor, Option<u32>)]| {
            list.iter().position(|(n, _)| n.address == addr)
        };
        let now = self.now();
        // New to the speaker (added, or no longer down by design), and those to reset.
        let fresh: Vec<IpAddr> = running
            .iter()
            .map(|n| n.address)
            .filter(|a| {
                self.speaker
                    .as_ref()
                    .is_some_and(|sp| sp.neighbor_by_addr(*a).is_none())
            })
            .collect();
        let reset = plan
            .reset
            .iter()
            .map(|(a, _)| *a)
            .filter(|a| !fresh.contains(a));
        let todo: Vec<IpAddr> = fresh.iter().copied().chain(reset).collect();
        for addr in todo {
            let Some(i) = find(addr, &self.neighbors) else {
                continue;
            };
            let n = self.neighbors[i].0.clone();
            let nc = match self.neighbor_config(&n) {
                Ok(nc) => nc,
                Err(e) => {
                    errors.push(format!("neighbor {addr}: {e:#}"));
                    continue;
                }
            };
            if let (Some(pw), Some(l)) = (&n.md5_password, &self.listener) {
                if let Err(e) = bh_sys::tcp_md5::set_key(l, n.address, pw.expose()) {
                    errors.push(format!("neighbor {addr}: TCP MD5 password: {e}"));
                }
            }
            let Some(sp) = self.speaker.as_mut() else {
                break;
            };
            let id = match sp.neighbor_by_addr(addr) {
                Some(old) => {
                    self.info.remove(&old);
                    self.peers.remove(&old);
                    tracing::info!(neighbor = %addr, "reload: BGP neighbor reset (Cease/Other Configuration Change)");
                    sp.replace_neighbor(now, old, nc)
                }
                None => {
                    tracing::info!(neighbor = %addr, asn = n.asn, "reload: BGP neighbor added");
                    sp.add_neighbor(now, nc)
                }
            };
            self.peers.insert(id, i);
            self.info.insert(id, PeerInfo::default());
            self.drain();
        }
        for (addr, why) in &plan.policy {
            let Some(i) = find(*addr, &self.neighbors) else {
                continue;
            };
            let n = self.neighbors[i].0.clone();
            match self.neighbor_config(&n) {
                Ok(nc) => {
                    if let Some(sp) = self.speaker.as_mut() {
                        if let Some(id) = sp.neighbor_by_addr(*addr) {
                            sp.set_policy(now, id, &nc);
                            tracing::info!(neighbor = %addr, changed = ?why, "reload: BGP policy applied without a reset");
                        }
                    }
                }
                Err(e) => errors.push(format!("neighbor {addr}: {e:#}")),
            }
            self.drain();
        }
        if plan.advertise.is_some() {
            match bgp
                .advertise
                .iter()
                .map(to_bgp_prefix)
                .collect::<Result<Vec<_>>>()
            {
                Ok(networks) => {
                    if let Some(sp) = self.speaker.as_mut() {
                        sp.set_networks(now, networks);
                    }
                    tracing::info!(advertise = ?bgp.advertise, "reload: advertised networks changed");
                }
                Err(e) => errors.push(format!("advertise: {e:#}")),
            }
        }
        // Every remaining neighbor's position in the new list.
        let ids: Vec<(PeerId, IpAddr)> = self
            .speaker
            .as_ref()
            .map(|sp| {
                sp.neighbors()
                    .map(|(id, nc, ..)| (id, nc.address))
                    .collect()
            })
            .unwrap_or_default();
        self.peers.clear();
        for (id, addr) in ids {
            if let Some(i) = find(addr, &self.neighbors) {
                self.peers.insert(id, i);
            }
        }
        self.bgp = bgp;
        self.fib_dirty = true;
        self.status_now = true;
        self.drain();
        errors
    }

    fn run(&mut self, stop: &AtomicBool) {
        let mut events = Events::with_capacity(64);
        while !stop.load(Ordering::SeqCst) {
            let timeout = self.wait_ms();
            if let Err(e) = self.epoll.wait(&mut events, timeout) {
                tracing::error!(error = %e, "epoll failed; BGP stops");
                break;
            }
            let ready: Vec<u64> = events.iter().map(|e| e.token).collect();
            for token in ready {
                match token {
                    TOKEN_WAKE => {
                        let _ = self.wake.drain();
                        self.connect_results();
                        self.requests();
                    }
                    TOKEN_LISTEN => self.accept_all(),
                    TOKEN_LINKS => self.link_events(),
                    t => self.readable(ConnId(t - TOKEN_CONN)),
                }
            }
            let now = self.now();
            if let Some(sp) = self.speaker.as_mut() {
                if sp.poll_timeout().is_some_and(|t| t <= now) {
                    sp.handle_timeout(now);
                }
            }
            self.drain();
            self.flush_backlogs();
            self.linger();
            self.sync_fib();
            self.publish_status();
            self.answer_route_queries();
        }
        // Stopping: close the connections and take our routes out of the kernel.
        for (_, c) in self.conns.drain() {
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
        }
        if let Some(f) = self.fib.as_mut() {
            if let Err(e) = f.sync(&bh_fib::Desired::new()) {
                tracing::warn!(error = %e, "cannot withdraw BGP routes from the kernel");
            }
        }
    }

    fn wait_ms(&self) -> i32 {
        let mut d = TICK;
        if let Some(t) = self.speaker.as_ref().and_then(Speaker::poll_timeout) {
            d = d.min(t.saturating_duration_since(self.now()));
        }
        if self.conns.values().any(|c| !c.backlog.is_empty()) {
            d = d.min(Duration::from_millis(20));
        }
        if self.fib_dirty {
            d = d.min(SYNC_INTERVAL.saturating_sub(self.last_sync.elapsed()));
        }
        if !self.closing.is_empty() {
            d = d.min(Duration::from_millis(100));
        }
        i32::try_from(d.as_millis()).unwrap_or(200)
    }

    /// Reads and drops what peers still send on connections closed after a NOTIFICATION, and
    /// closes each once the peer has closed (or failed) or [`LINGER`] has passed.
    fn linger(&mut self) {
        let mut buf = [0u8; 4096];
        self.closing.retain_mut(|(s, since)| {
            // Bounded: at most 16 reads (64 KiB) per connection per round.
            for _ in 0..16 {
                match s.read(&mut buf) {
                    Ok(0) => return false,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return false,
                }
            }
            since.elapsed() < LINGER
        });
    }

    fn accept_all(&mut self) {
        let Some(l) = self.listener.as_ref() else {
            return;
        };
        let mut accepted = Vec::new();
        loop {
            match l.accept() {
                Ok((s, from)) => accepted.push((s, from)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    break;
                }
            }
        }
        for (stream, from) in accepted {
            let ip = from.ip().to_canonical();
            let now = self.now();
            let Some(sp) = self.speaker.as_mut() else {
                return;
            };
            let Some(peer) = sp.neighbor_by_addr(ip) else {
                tracing::info!(from = %ip, "BGP connection from an unknown address closed");
                continue;
            };
            let Some(conn) = sp.accept(now, peer) else {
                tracing::debug!(from = %ip, "BGP connection refused by the session");
                continue;
            };
            if let Err(e) = self.register(conn, peer, stream) {
                tracing::warn!(error = %e, "cannot use accepted connection");
                if let Some(sp) = self.speaker.as_mut() {
                    sp.closed(now, conn);
                }
                continue;
            }
            self.abort_unanswered(peer);
        }
    }

    /// The peer's connection is in: our own attempts to it that got no answer yet (still in
    /// SYN-SENT, e.g. their SYN was lost before the tunnel came up) are aborted now, before a
    /// retransmission can reach the peer once its session is up (a graceful-restart peer takes
    /// a new connection as our restart and drops the session). The speaker sees them fail and
    /// goes on with the accepted connection. An attempt the kernel already completed is left
    /// to collision resolution (RFC 4271 §6.8).
    fn abort_unanswered(&mut self, peer: PeerId) {
        let pending: Vec<ConnId> = self
            .connecting
            .iter()
            .filter(|&(_, p)| *p == peer)
            .map(|(c, _)| *c)
            .collect();
        for c in pending {
            if let Some(s) = self.aborts.get(&c).filter(|s| s.peer_addr().is_err()) {
                tracing::debug!(neighbor = %self.neighbor_name(peer), "unanswered connect aborted: the peer's connection is in");
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    fn register(&mut self, conn: ConnId, peer: PeerId, stream: TcpStream) -> io::Result<()> {
        stream.set_nonblocking(true)?;
        let _ = stream.set_nodelay(true);
        let multihop = self
            .peers
            .get(&peer)
            .and_then(|&i| self.neighbors.get(i))
            .and_then(|(n, _)| n.multihop);
        if stream.peer_addr()?.ip().to_canonical().is_ipv4() {
            let _ = stream.set_ttl(u32::from(multihop.unwrap_or(1)));
        }
        self.epoll.add(stream.as_raw_fd(), TOKEN_CONN + conn.0)?;
        self.conns.insert(
            conn,
            Conn {
                stream,
                backlog: Vec::new(),
                peer,
            },
        );
        Ok(())
    }

    fn connect_results(&mut self) {
        while let Ok((conn, res)) = self.connect_rx.try_recv() {
            self.aborts.remove(&conn);
            let Some(peer) = self.connecting.remove(&conn) else {
                continue; // the speaker gave up on it meanwhile
            };
            let now = self.now();
            let peer = Some(peer);
            match (res, peer) {
                (Ok(stream), Some(peer)) => match self.register(conn, peer, stream) {
                    Ok(()) => {
                        if let Some(sp) = self.speaker.as_mut() {
                            sp.connected(now, conn);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "connection unusable");
                        if let Some(sp) = self.speaker.as_mut() {
                            sp.closed(now, conn);
                        }
                    }
                },
                (Err(e), _) => {
                    tracing::debug!(error = %e, "BGP connect failed");
                    if let Some(sp) = self.speaker.as_mut() {
                        sp.closed(now, conn);
                    }
                }
                (Ok(_), None) => {
                    if let Some(sp) = self.speaker.as_mut() {
                        sp.closed(now, conn);
                    }
                }
            }
        }
    }

    /// For neighbors with a TCP MD5 password that are not Established: the kernel drops
    /// segments whose signature is missing or wrong without a word, so all the session sees is a
    /// connect that never completes. When the namespace's MD5 drop counters moved since the
    /// last look, their `last_error` says so (the counters are not per peer).
    fn md5_hints(&mut self) {
        let Some(sp) = self.speaker.as_ref() else {
            return;
        };
        let waiting: Vec<PeerId> = sp
            .neighbors()
            .filter(|(id, _, state, _, _)| {
                *state != State::Established
                    && self
                        .peers
                        .get(id)
                        .and_then(|&i| self.neighbors.get(i))
                        .is_some_and(|(n, _)| n.md5_password.is_some())
            })
            .map(|(id, ..)| id)
            .collect();
        if waiting.is_empty() {
            return;
        }
        let Ok(now) = bh_sys::tcp_md5::md5_counters() else {
            return;
        };
        let before = std::mem::replace(&mut self.md5_seen, now);
        let wrong = now.failure.saturating_sub(before.failure);
        let unsigned = now.not_found.saturating_sub(before.not_found);
        if wrong == 0 && unsigned == 0 {
            return;
        }
        let why = format!(
            "not connected; the kernel dropped {wrong} segments with a wrong MD5 signature and {unsigned} without one (TCP MD5 password mismatch?)"
        );
        for peer in waiting {
            if let Some(i) = self.info.get_mut(&peer) {
                i.last_error.clone_from(&why);
            }
        }
    }

    fn readable(&mut self, conn: ConnId) {
        let mut buf = [0u8; 65536];
        let mut closed = false;
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => {
                    let data = buf.get(..n).unwrap_or(&[]);
                    let peer = c.peer;
                    if let Some(i) = self.info.get_mut(&peer) {
                        if let Some((code, sub)) = i.rx.feed(data) {
                            note_notification(i, "received", code, sub);
                            self.status_now = true;
                        }
                    }
                    let now = self.now();
                    if let Some(sp) = self.speaker.as_mut() {
                        sp.received(now, conn, data);
                    }
                    // Answer as we go, so a large table never piles up unanswered keepalives.
                    self.drain();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::debug!(error = %e, "BGP connection error");
                    closed = true;
                    break;
                }
            }
        }
        if closed {
            self.drop_conn(conn);
            let now = self.now();
            if let Some(sp) = self.speaker.as_mut() {
                sp.closed(now, conn);
            }
        }
    }

    fn drop_conn(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            let _ = self.epoll.delete(c.stream.as_raw_fd());
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Writes as much of `conn`'s backlog as the socket takes; false if the connection failed.
    fn write_out(c: &mut Conn) -> bool {
        while !c.backlog.is_empty() {
            match c.stream.write(&c.backlog) {
                Ok(0) => return false,
                Ok(n) => {
                    c.backlog.drain(..n.min(c.backlog.len()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        c.backlog.len() <= MAX_BACKLOG
    }

    fn flush_backlogs(&mut self) {
        let failed: Vec<ConnId> = self
            .conns
            .iter_mut()
            .filter(|(_, c)| !c.backlog.is_empty())
            .filter_map(|(id, c)| (!Self::write_out(c)).then_some(*id))
            .collect();
        for conn in failed {
            self.drop_conn(conn);
            let now = self.now();
            if let Some(sp) = self.speaker.as_mut() {
                sp.closed(now, conn);
            }
        }
    }

    /// Handles everything the speaker asked for.
    fn drain(&mut self) {
        while let Some(out) = self.speaker.as_mut().and_then(Speaker::poll_output) {
            match out {
                Output::Connect { conn, peer, addr } => {
                    let nbr = self.peers.get(&peer).and_then(|&i| self.neighbors.get(i));
                    let md5 = nbr.and_then(|(n, _)| n.md5_password.clone());
                    // TTL 1 (or `multihop`) from the SYN on, as `register` keeps it.
                    let ttl = Some(nbr.and_then(|(n, _)| n.multihop).unwrap_or(1));
                    // The SYN leaves here, on the loop; only the wait goes to a helper thread,
                    // and a clone of the socket stays to abort it (see `Output::Close`).
                    let to = SocketAddr::new(addr, BGP_PORT);
                    let started =
                        bh_sys::tcp_md5::connect_start(to, md5.as_ref().map(|p| p.expose()), ttl)
                            .and_then(|s| Ok((s.try_clone()?, s)));
                    drop(md5);
                    let spawned = started.and_then(|(abort, stream)| {
                        let tx = self.connect_tx.clone();
                        let wake = Arc::clone(&self.wake);
                        std::thread::Builder::new()
                            .name("bgp-connect".into())
                            .spawn(move || {
                                let r = bh_sys::tcp_md5::connect_finish(stream, CONNECT_TIMEOUT);
                                let _ = tx.send((conn, r));
                                let _ = wake.notify();
                            })?;
                        Ok(abort)
                    });
                    match spawned {
                        Ok(abort) => {
                            self.connecting.insert(conn, peer);
                            self.aborts.insert(conn, abort);
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "BGP connect failed");
                            let now = self.now();
                            if let Some(sp) = self.speaker.as_mut() {
                                sp.closed(now, conn);
                            }
                        }
                    }
                }
                Output::Send { conn, data } => {
                    let Some(c) = self.conns.get_mut(&conn) else {
                        continue;
                    };
                    if let Some(i) = self.info.get_mut(&c.peer) {
                        if let Some((code, sub)) = i.tx.feed(&data) {
                            note_notification(i, "sent", code, sub);
                            self.status_now = true;
                        }
                    }
                    c.backlog.extend_from_slice(&data);
                    if !Self::write_out(c) {
                        self.drop_conn(conn);
                        let now = self.now();
                        if let Some(sp) = self.speaker.as_mut() {
                            sp.closed(now, conn);
                        }
                    }
                }
                Output::Close { conn } => {
                    self.connecting.remove(&conn);
                    // A connect the speaker gave up on (the peer's own connection won) must
                    // send no further SYN: completed late, it would look to the peer like a
                    // restart of ours (with graceful restart, FRR drops the established
                    // session for it, RFC 4724 §4.2).
                    if let Some(s) = self.aborts.remove(&conn) {
                        let _ = s.shutdown(std::net::Shutdown::Both);
                    }
                    if let Some(mut c) = self.conns.remove(&conn) {
                        let _ = self.epoll.delete(c.stream.as_raw_fd());
                        // Give the NOTIFICATION queued before the close a moment to leave.
                        let _ = c.stream.set_nonblocking(false);
                        let _ = c.stream.set_write_timeout(Some(Duration::from_secs(1)));
                        let _ = c.stream.write_all(&c.backlog);
                        c.backlog.clear();
                        let _ = c.stream.shutdown(std::net::Shutdown::Write);
                        if c.stream.set_nonblocking(true).is_ok() {
                            if self.closing.len() >= MAX_CLOSING {
                                self.closing.remove(0);
                            }
                            self.closing.push((c.stream, std::time::Instant::now()));
                        }
                    }
                }
                Output::Event(ev) => self.event(ev),
            }
        }
    }

    fn neighbor_name(&self, peer: PeerId) -> String {
        self.peers
            .get(&peer)
            .and_then(|&i| self.neighbors.get(i))
            .map_or_else(|| format!("{peer:?}"), |(n, _)| n.address.to_string())
    }

    fn event(&mut self, ev: SpeakerEvent) {
        if !matches!(ev, SpeakerEvent::BestRoutesChanged { .. }) {
            self.status_now = true;
        }
        match ev {
            SpeakerEvent::PeerUp { peer, negotiated } => {
                tracing::info!(neighbor = %self.neighbor_name(peer), asn = negotiated.peer_asn, hold = negotiated.hold_time, families = ?negotiated.families, "BGP session established");
                if let Some(i) = self.info.get_mut(&peer) {
                    i.up_since = Some(std::time::Instant::now());
                    i.last_error.clear();
                }
            }
            SpeakerEvent::PeerDown {
                peer,
                reason,
                graceful_restart,
            } => {
                let why = match &reason {
                    DownReason::NotificationSent(n) => notification_text("sent", n.code, n.subcode),
                    DownReason::NotificationReceived(n) => {
                        notification_text("received", n.code, n.subcode)
                    }
                    DownReason::TcpClosed => "TCP connection closed".to_owned(),
                    DownReason::Stopped => "stopped".to_owned(),
                };
                tracing::warn!(neighbor = %self.neighbor_name(peer), reason = %why, graceful_restart, "BGP session down");
                if let Some(i) = self.info.get_mut(&peer) {
                    i.up_since = None;
                    i.last_error = why;
                    i.flaps = i.flaps.saturating_add(1);
                }
            }
            // The speaker's Loc-RIB holds the next hops; the kernel follows at the next sync.
            SpeakerEvent::BestRoutesChanged { prefix, .. } => {
                self.fib_changed.insert(prefix);
                self.fib_dirty = true;
            }
            SpeakerEvent::MaxPrefixExceeded {
                peer,
                limit,
                action,
            } => {
                tracing::warn!(neighbor = %self.neighbor_name(peer), limit, ?action, "neighbor sent more prefixes than max_prefix");
                if let Some(i) = self.info.get_mut(&peer) {
                    i.last_error = format!("max_prefix {limit} exceeded ({action:?})");
                }
            }
            SpeakerEvent::AdvertisementLimited { peer, limit } => {
                tracing::warn!(neighbor = %self.neighbor_name(peer), limit, "advertisements held back at max_advertise");
            }
            SpeakerEvent::UpdateError { peer, error } => {
                tracing::warn!(neighbor = %self.neighbor_name(peer), error = ?error, "malformed UPDATE handled per RFC 7606");
            }
        }
    }

    fn link_events(&mut self) {
        let Some(w) = self.links.as_mut() else {
            return;
        };
        let evs = match w.wait(Duration::from_millis(1)) {
            Ok(evs) => evs,
            Err(e) => {
                tracing::warn!(error = %e, "link notifications lost; rechecking on the next change");
                return;
            }
        };
        // Every device counts: tunnels, and the links of neighbors reached without one.
        for ev in evs {
            let changed = if ev.usable() {
                self.down.remove(&ev.ifindex)
            } else {
                self.down.insert(ev.ifindex)
            };
            if changed {
                tracing::warn!(ifindex = ev.ifindex, device = ?ev.name, usable = ev.usable(), "device state changed; routes through it follow");
                self.fib_full = true;
                self.fib_dirty = true;
            }
        }
    }

    /// The kernel next hop for a BGP next hop learned from `peer`.
    fn kernel_hop(&mut self, hop: &bh_bgp::speaker::NextHop) -> Option<bh_fib::NextHop> {
        let dev = self
            .peers
            .get(&hop.peer)
            .and_then(|&i| self.neighbors.get(i))
            .and_then(|(_, ifindex)| *ifindex);
        match dev {
            // Over a tunnel: IPv4 as a device route (point-to-point, always valid); IPv6 with
            // the gateway, which the kernel needs for IPv6 ECMP.
            Some(ifindex) => Some(bh_fib::NextHop {
                ifindex,
                gateway: hop.addr.is_ipv6().then_some(hop.addr),
            }),
            None => {
                let ifindex = self.fib.as_mut()?.connected_ifindex(hop.addr)?;
                Some(bh_fib::NextHop {
                    ifindex,
                    gateway: Some(hop.addr),
                })
            }
        }
    }

    /// The kernel next hops of one prefix's best BGP next hops, without those through devices
    /// that are down; `resolved` caches each BGP next hop's kernel hop for one sync.
    fn kernel_hops(
        &mut self,
        hops: &[bh_bgp::speaker::NextHop],
        resolved: &mut HashMap<bh_bgp::speaker::NextHop, Option<bh_fib::NextHop>>,
    ) -> bh_fib::NextHops {
        let mut set = BTreeSet::new();
        for h in hops {
            let k = match resolved.get(h) {
                Some(k) => *k,
                None => {
                    let k = self.kernel_hop(h);
                    resolved.insert(*h, k);
                    k
                }
            };
            set.extend(k);
        }
        set.retain(|h| !self.down.contains(&h.ifindex));
        set
    }

    /// Every route wanted in the kernel, for the full reconcile.
    fn desired(&mut self) -> bh_fib::Desired {
        // The speaker is set aside while its Loc-RIB is read (resolving needs `&mut self`).
        let Some(sp) = self.speaker.take() else {
            return bh_fib::Desired::new();
        };
        let mut want = bh_fib::Desired::new();
        // Next hops repeat across prefixes: resolve each once per sync.
        let mut resolved = HashMap::new();
        for (p, hops) in sp.best_routes() {
            let Ok(kp) = bh_fib::Prefix::new(p.addr(), p.len()) else {
                continue;
            };
            let set = self.kernel_hops(hops, &mut resolved);
            if !set.is_empty() {
                want.insert(kp, set);
            }
        }
        self.speaker = Some(sp);
        want
    }

    /// Applies the prefixes changed since the last sync one by one (no table-sized batch);
    /// returns whether a full reconcile is needed.
    fn apply_changes(&mut self) -> bool {
        let changed = std::mem::take(&mut self.fib_changed);
        let Some(sp) = self.speaker.take() else {
            return false;
        };
        let mut resolved = HashMap::new();
        let mut full = false;
        for p in &changed {
            let Ok(kp) = bh_fib::Prefix::new(p.addr(), p.len()) else {
                continue;
            };
            let set = match sp.best_route(p) {
                Some(hops) => self.kernel_hops(hops, &mut resolved),
                None => BTreeSet::new(),
            };
            if let Some(f) = self.fib.as_mut() {
                full |= f.apply(&kp, &set);
            }
        }
        self.speaker = Some(sp);
        full
    }

    /// Brings the kernel up to date: the changed prefixes only, or a full reconcile when one
    /// is due (see [`fib`]). Rate-limited to one sync per [`SYNC_INTERVAL`].
    fn sync_fib(&mut self) {
        let recheck = self.fib.as_ref().is_some_and(FibSync::has_conflicts)
            && self.last_recheck.elapsed() >= CONFLICT_RECHECK;
        if recheck {
            self.last_recheck = std::time::Instant::now();
            self.retry_conflicts();
        }
        if !self.fib_dirty || self.last_sync.elapsed() < SYNC_INTERVAL {
            return;
        }
        self.fib_dirty = false;
        self.last_sync = std::time::Instant::now();
        if self.fib_full {
            self.fib_full = false;
            self.fib_changed.clear();
            let want = self.desired();
            if let Some(f) = self.fib.as_mut() {
                if let Err(e) = f.sync(&want) {
                    tracing::warn!(error = %e, "FIB sync failed; retrying");
                    self.fib_full = true;
                    self.fib_dirty = true;
                }
            }
            return;
        }
        if self.apply_changes() {
            self.fib_full = true;
            self.fib_dirty = true;
        }
    }

    /// Tries again the prefixes other protocols' routes held (no dump: one exclusive add each).
    fn retry_conflicts(&mut self) {
        let Some(held) = self.fib.as_ref().map(FibSync::conflicts) else {
            return;
        };
        let Some(sp) = self.speaker.take() else {
            return;
        };
        let mut resolved = HashMap::new();
        for kp in held {
            let hops = bh_bgp::Prefix::new(kp.addr(), kp.prefix_len())
                .ok()
                .and_then(|p| sp.best_route(&p));
            let set = match hops {
                Some(h) => self.kernel_hops(h, &mut resolved),
                None => BTreeSet::new(),
            };
            if let Some(f) = self.fib.as_mut() {
                f.retry_conflict(&kp, &set);
            }
        }
        self.speaker = Some(sp);
    }

    fn publish_status(&mut self) {
        if !self.status_now && self.last_status.elapsed() < STATUS_INTERVAL {
            return;
        }
        self.status_now = false;
        self.last_status = std::time::Instant::now();
        self.md5_hints();
        let Some(sp) = self.speaker.as_ref() else {
            return;
        };
        let mut neighbors: Vec<Value> = sp
            .neighbors()
            .map(|(id, nc, state, received, sent)| {
                let info = self.info.get(&id);
                let (n, dev) = self
                    .peers
                    .get(&id)
                    .and_then(|&i| self.neighbors.get(i))
                    .map_or((None, None), |(n, d)| (Some(n), *d));
                json!({
                    "address": nc.address.to_string(),
                    "asn": nc.session.peer_asn,
                    "tunnel": n.and_then(|n| n.tunnel.clone()),
                    "tcp_md5": n.is_some_and(|n| n.md5_password.is_some()),
                    "device_up": dev.map(|d| !self.down.contains(&d)),
                    "state": state_name(state),
                    "uptime_secs": info.and_then(|i| i.up_since).map(|t| t.elapsed().as_secs()),
                    "prefixes_received": received,
                    "prefixes_sent": sent,
                    "messages_received": info.map_or(0, |i| i.rx.count),
                    "messages_sent": info.map_or(0, |i| i.tx.count),
                    "flaps": info.map_or(0, |i| i.flaps),
                    "last_error": info.map(|i| i.last_error.clone()).filter(|s| !s.is_empty()),
                })
            })
            .collect();
        neighbors.extend(self.by_design.iter().map(|(n, why)| {
            json!({
                "address": n.address.to_string(),
                "asn": n.asn,
                "tunnel": n.tunnel,
                "tcp_md5": n.md5_password.is_some(),
                // Never started: Idle in RFC 4271 terms; `by_design` and the error say why.
                "state": "Idle",
                "by_design": true,
                "prefixes_received": 0,
                "prefixes_sent": 0,
                "messages_received": 0,
                "messages_sent": 0,
                "flaps": 0,
                "last_error": why,
            })
        }));
        let fib = self.fib.as_ref();
        let routes: Vec<Value> = sp
            .best_routes()
            .take(STATUS_ROUTES)
            .map(|(p, hops)| {
                let kp = bh_fib::Prefix::new(p.addr(), p.len()).ok();
                json!({
                    "prefix": p.to_string(),
                    "next_hops": hops.iter().map(|h| json!({
                        "address": h.addr.to_string(),
                        "neighbor": self.neighbor_name(h.peer),
                    })).collect::<Vec<_>>(),
                    "installed": fib.zip(kp).is_some_and(|(f, kp)| f.is_installed(&kp)),
                })
            })
            .collect();
        let c = fib.map(FibSync::counters).unwrap_or_default();
        let v = json!({
            "asn": self.bgp.asn,
            "router_id": sp.config().router_id.to_string(),
            "table": self.bgp.table,
            "metric": self.bgp.metric,
            "neighbors": neighbors,
            "routes_total": sp.best_count(),
            "routes": routes,
            "fib": { "replaced": c.replaced, "deleted": c.deleted, "conflicts": c.conflicts, "errors": c.errors },
        });
        if let Ok(mut s) = self.status.lock() {
            *s = v;
        }
    }
}

fn state_name(s: State) -> &'static str {
    match s {
        State::Idle => "Idle",
        State::Connect => "Connect",
        State::Active => "Active",
        State::OpenSent => "OpenSent",
        State::OpenConfirm => "OpenConfirm",
        State::Established => "Established",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(len: u16) -> Vec<u8> {
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&len.to_be_bytes());
        m.resize(usize::from(len), 4);
        m
    }

    #[test]
    fn collision_resolution_is_not_a_last_error_but_other_notifications_are() {
        let mut i = PeerInfo::default();
        // Both ends of a cloud tunnel connect at once; the loser is closed with Cease 6/7.
        note_notification(&mut i, "sent", 6, 7);
        note_notification(&mut i, "received", 6, 7);
        assert_eq!(i.last_error, "");
        note_notification(&mut i, "received", 6, 2);
        assert_eq!(
            i.last_error,
            "received NOTIFICATION 6/2 (Cease: Administrative Shutdown)"
        );
        // A later collision does not hide the real error before it.
        note_notification(&mut i, "sent", 6, 7);
        assert_eq!(
            i.last_error,
            "received NOTIFICATION 6/2 (Cease: Administrative Shutdown)"
        );
    }

    #[test]
    fn message_counter_counts_across_any_split() {
        let mut stream = Vec::new();
        for len in [19u16, 29, 4096, 19, 45] {
            stream.extend(msg(len));
        }
        for chunk in [1usize, 3, 17, 18, 19, 100, 5000] {
            let mut c = MsgCounter::default();
            for part in stream.chunks(chunk) {
                c.feed(part);
            }
            assert_eq!(c.count, 5, "chunks of {chunk}");
        }
        let mut c = MsgCounter::default();
        c.feed(&stream[..stream.len() - 1]);
        assert_eq!(c.count, 4, "the last message is incomplete");
        // A NOTIFICATION (type 3) Bad Peer AS (2/2) after a KEEPALIVE, split mid-header.
        let mut n = msg(21);
        n[18] = 3;
        n[19] = 2;
        n[20] = 2;
        let mut k = msg(19);
        k[18] = 4;
        k.extend(n);
        let mut c = MsgCounter::default();
        assert_eq!(c.feed(&k[..25]), None);
        assert_eq!(c.feed(&k[25..]), Some((2, 2)));
        assert_eq!((c.count, c.last_notification), (2, Some((2, 2))));
    }
}
