//! The IKEv2 service: the shell around the sans-IO engine [`bh_ike::Endpoint`].
//!
//! One thread owns the endpoint. It receives IKE on a UDP socket bound to
//! `appliance.private_ip:500`, and IKE on the ESP port (4500, NAT-T) from the dataplane's queue
//! ([`bh_dataplane::IkeDatagram`]); it sends from port 500 on its own socket and from 4500
//! through [`Dataplane::send_ike`] (which adds the non-ESP marker, RFC 3948 §2.2). Time is
//! `std::time::Instant` since the service started, handed to the engine as a value.
//!
//! Engine events drive the dataplane: `ChildSaUp` builds an [`InboundSa`] and an
//! [`OutboundSa`] from the negotiated suite and keys and installs them in the tunnel's slot of
//! the SA table, make-before-break, and points the tunnel at the SA's peer address (the NAT-T
//! port after the float). The new inbound SA is installed at once and the old one stays until
//! its `ChildSaDown` (one we rekeyed away lingers [`INBOUND_LINGER`] more for packets in flight). A first Child SA's outbound SA is used at once, and so is one from a rekey
//! we initiated (the peer installed its side before answering). From a rekey the peer
//! initiated (the SA appears while we answer a request), the outbound SA waits until the peer
//! has surely installed its inbound side: traffic arrives on the new inbound SA, the old pair
//! is deleted, or [`OUTBOUND_SWITCH`] passes. Otherwise our first packets under the new SPI can
//! overtake our response; strongSwan delays its own outbound switch as responder for the same
//! reason. `ChildSaDown` removes the
//! inbound SA; if its outbound SA was the one in use, the newest Child SA of the tunnel still
//! installed takes over (e.g. when the duplicate of a simultaneous initiation, installed last,
//! is deleted), or the tunnel has no outbound SA. [`IkeService::status_json`] shows per tunnel the
//! IKE state, SPIs, algorithms, NAT, uptime, last rekey and why it is down, and the engine's
//! COOKIE, half-open and IKE SA counts (rendered by `crate::status`).
//!
//! Once a second the thread tells the engine which tunnels received authenticated ESP since
//! the last look (`Endpoint::note_traffic`), so DPD only asks when the tunnel is quiet
//! (RFC 7296 §2.4).
//!
//! Tunnels with `initiate = true` are started at once (and restarted by the engine after
//! failures); the others wait for the peer. Tunnels the cloud's design keeps down
//! ([`crate::cloud::design::down_by_design`]) are not given to the engine at all: never
//! initiated, never answered, and shown as `down by design` with the reason. On stop, every IKE SA is deleted (INFORMATIONAL
//! DELETE, RFC 7296 §1.4.1) before the thread ends.
//!
//! Configuration reload ([`IkeService::apply`]): the thread takes [`IkeChange`]s between
//! messages. An added tunnel is configured and started (the thread and its port-500 socket
//! start with the first IKE tunnel, at start or on a reload); a removed one has its SAs
//! deleted at the peer and is forgotten; a replaced one (PSK, proposals, lifetimes, DPD,
//! initiate, peer or identities changed) has its SAs deleted at the peer and is negotiated
//! again with the new settings. Other tunnels and their SAs are not touched.
//!
//! Not done here: IPv6 IKE sockets bound separately from IPv4 (the one socket has the family
//! of `private_ip`), more than one IKE socket per appliance.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use bh_config::Config;
use bh_config::ike::{Identity, TunnelIke};
use bh_crypto::EspTransform;
use bh_dataplane::{Dataplane, IkeDatagram};
use bh_esp::{InboundSa, OutboundSa};
use bh_ike::{
    DownReason, Dpd, Endpoint, EndpointCounters, EndpointSettings, EspProposal, Event, IkeId,
    IkeProposal, Lifetimes, TunnelId, TunnelIkeConfig,
};
use serde_json::json;

mod inbox;

/// The IKE port (RFC 7296 §2).
pub const IKE_PORT: u16 = 500;

/// Longest the thread sleeps between looks at its timers and the stop flag (messages wake it
/// at once).
const TICK: Duration = Duration::from_millis(10);

/// Longest a rekeyed Child SA waits before its outbound SA replaces the old one.
pub const OUTBOUND_SWITCH: Duration = Duration::from_secs(2);

/// How long the inbound SA of a Child SA we rekeyed away keeps accepting after we send its
/// DELETE: the peer sends on it until the DELETE arrives (RFC 7296 §2.8 says nothing on
/// in-flight packets; dropping them at once loses what the peer sent in the last RTT).
pub const INBOUND_LINGER: Duration = Duration::from_secs(2);

/// How often received ESP is reported to the engine for DPD.
const TRAFFIC_CHECK: Duration = Duration::from_secs(1);

/// Largest IKE datagram read from port 500.
const MAX_DATAGRAM: usize = 65_535;

/// What the status shows about one IKE tunnel.
#[derive(Clone, Debug, Default)]
struct TunnelStatus {
    name: String,
    /// Dataplane index.
    index: usize,
    initiator: bool,
    ike_state: &'static str,
    ike_spi: Option<String>,
    ike_suite: Option<String>,
    nat: Option<bool>,
    remote: Option<String>,
    child: Option<ChildStatus>,
    down_reason: Option<String>,
    no_proposal: Option<String>,
    ike_ups: u64,
    child_ups: u64,
    /// Since when an IKE SA has been up without interruption (rekeys do not reset it).
    up_since: Option<std::time::Instant>,
    /// When an IKE or Child SA of the tunnel was last rekeyed.
    last_rekey: Option<std::time::Instant>,
    /// The cloud's design keeps the tunnel down ([`crate::cloud::design`]); it is not started.
    by_design: bool,
}

#[derive(Clone, Debug)]
struct ChildStatus {
    inbound_spi: u32,
    outbound_spi: u32,
    suite: &'static str,
    esn: bool,
    udp_encap: bool,
}

/// The running IKE service (shared with the control socket thread, so `Send + Sync`).
pub struct IkeService {
    status: Arc<Mutex<Vec<TunnelStatus>>>,
    counters: Arc<Mutex<EndpointCounters>>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Reload changes for the thread (`None` until it runs).
    commands: Mutex<Option<std::sync::mpsc::Sender<Reconfigure>>>,
    /// Until the first IKE tunnel: what the thread needs to start.
    idle: Mutex<Option<Idle>>,
}

/// What the IKE thread is started with once there is an IKE tunnel.
struct Idle {
    dp: Arc<Dataplane>,
    rx: Receiver<IkeDatagram>,
    bind_ip: IpAddr,
    esp_port: u16,
}

/// One change of the IKE tunnels on configuration reload; `index` is the tunnel's dataplane
/// index.
#[derive(Debug, Clone)]
pub enum IkeChange {
    /// A new IKE tunnel (its device and dataplane slot exist already).
    Add {
        /// Dataplane index.
        index: usize,
        /// Its configuration (`ike` is set).
        tunnel: bh_config::Tunnel,
        /// Why the cloud's design keeps it down, if it does: then it is only shown.
        down_by_design: Option<String>,
    },
    /// The tunnel goes: its SAs are deleted at the peer.
    Remove {
        /// Dataplane index.
        index: usize,
    },
    /// The tunnel's IKE settings changed: its SAs are deleted at the peer and it is
    /// negotiated again with `tunnel`'s settings.
    Replace {
        /// Dataplane index.
        index: usize,
        /// The new configuration (`ike` is set).
        tunnel: bh_config::Tunnel,
    },
}

/// A batch of changes and where to report what failed.
struct Reconfigure {
    changes: Vec<IkeChange>,
    done: std::sync::mpsc::SyncSender<Vec<String>>,
}

/// How long [`IkeService::apply`] waits for the thread.
const APPLY_WAIT: Duration = Duration::from_secs(10);

/// The state shown for a tunnel before its first IKE SA.
fn waiting_state(initiate: bool) -> &'static str {
    if initiate {
        "connecting"
    } else {
        "waiting for the peer"
    }
}

/// The status row of a tunnel the cloud's design keeps down.
fn by_design_status(index: usize, t: &bh_config::Tunnel, why: String) -> TunnelStatus {
    TunnelStatus {
        name: t.name.clone(),
        index,
        initiator: t.ike.as_ref().is_some_and(|i| i.settings.initiate),
        ike_state: "down by design",
        down_reason: Some(why),
        by_design: true,
        ..TunnelStatus::default()
    }
}

/// The engine's view of one configured tunnel.
fn tunnel_config(
    name: &str,
    local: SocketAddr,
    remote: SocketAddr,
    ike: &TunnelIke,
    force_udp: bool,
) -> TunnelIkeConfig {
    let id = |i: &Identity| match i {
        Identity::Addr(a) => IkeId::Addr(*a),
        // The engine has no ID_RFC822_ADDR; an e-mail identity goes as an FQDN string.
        Identity::Fqdn(s) | Identity::Email(s) => IkeId::Fqdn(s.clone()),
    };
    let s = &ike.settings;
    TunnelIkeConfig {
        name: name.to_owned(),
        local_addr: local,
        remote_addr: remote,
        local_id: id(&ike.local_id),
        remote_id: id(&ike.remote_id),
        psk: ike.psk.clone(),
        ike_proposals: s
            .proposals
            .iter()
            .map(|p| IkeProposal {
                encr: p.encr.clone(),
                integ: p.integ.clone(),
                prf: p.prf.clone(),
                dh: p.dh.clone(),
            })
            .collect(),
        esp_proposals: s
            .esp_proposals
            .iter()
            .map(|p| EspProposal {
                encr: p.encr.clone(),
                integ: p.integ.clone(),
                esn: p.esn.clone(),
            })
            .collect(),
        pfs_group: s.pfs,
        lifetimes: Lifetimes {
            ike_rekey: s.ike_lifetime,
            child_rekey: s.child_lifetime,
            jitter_percent: 10,
        },
        dpd: Dpd {
            interval: s.dpd_interval.unwrap_or(Duration::ZERO),
            timeout: s.dpd_timeout,
            restart: s.initiate,
        },
        initiator: s.initiate,
        force_udp_encap: force_udp,
    }
}

/// The engine's settings: the defaults, with inbound SPIs in one lane per dataplane worker,
/// so that the tunnels' ESP spreads evenly over the workers (the dataplane steers ESP in UDP
/// to worker `SPI mod workers`).
fn engine_settings(dp: &Dataplane) -> EndpointSettings {
    EndpointSettings {
        spi_lanes: u32::try_from(dp.workers()).unwrap_or(1).max(1),
        ..EndpointSettings::default()
    }
}

/// Starts the IKE service for the configured IKE tunnels (manual tunnels are left alone).
/// With no IKE tunnel it runs nothing and only drains the queue.
pub fn start(cfg: &Config, dp: Arc<Dataplane>, rx: Receiver<IkeDatagram>) -> Result<IkeService> {
    let bind_ip = cfg
        .appliance
        .private_ip
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let esp_port = cfg.dataplane.udp_port;
    let mut endpoint = Endpoint::new(engine_settings(&dp), Box::new(bh_crypto::OsRandom));
    let mut status = Vec::new();
    let mut ids = Vec::new();
    // Shown after the others: `status` positions follow `ids` for the engine's tunnels.
    let mut by_design = Vec::new();
    let design = crate::cloud::design::down_by_design(cfg);
    for (index, t) in cfg.tunnels.iter().enumerate() {
        let Some(ike) = &t.ike else { continue };
        if let Some(why) = design.get(index).cloned().flatten() {
            tracing::warn!(tunnel = %t.name, reason = %why, "not started");
            by_design.push(by_design_status(index, t, why));
            continue;
        }
        let local = SocketAddr::new(bind_ip, IKE_PORT);
        let remote = SocketAddr::new(t.peer, IKE_PORT);
        let force_udp = t.encap == bh_config::Encap::Udp;
        let id = endpoint.add_tunnel(tunnel_config(&t.name, local, remote, ike, force_udp));
        ids.push((id, index));
        status.push(TunnelStatus {
            name: t.name.clone(),
            index,
            initiator: ike.settings.initiate,
            ike_state: waiting_state(ike.settings.initiate),
            ..TunnelStatus::default()
        });
    }
    status.extend(by_design);
    let status = Arc::new(Mutex::new(status));
    let counters = Arc::new(Mutex::new(EndpointCounters::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let service = IkeService {
        status,
        counters,
        stop,
        thread: Mutex::new(None),
        commands: Mutex::new(None),
        idle: Mutex::new(None),
    };
    let idle = Idle {
        dp,
        rx,
        bind_ip,
        esp_port,
    };
    if ids.is_empty() {
        // Nothing to negotiate until a reload adds an IKE tunnel; until then the queue is
        // not read (its bounded backlog is dropped when full and counted as ike_dropped).
        *service.idle.lock().unwrap_or_else(|e| e.into_inner()) = Some(idle);
        return Ok(service);
    }
    let mut shell = service.shell(idle, endpoint, ids)?;
    shell.0.replay_window = cfg.tunnels.iter().map(|t| t.replay_window).collect();
    service.spawn(shell)?;
    Ok(service)
}

impl IkeService {
    /// The thread's state for `endpoint` with its tunnels `ids`, binding the port-500 socket.
    fn shell(
        &self,
        idle: Idle,
        endpoint: Endpoint,
        ids: Vec<(TunnelId, usize)>,
    ) -> Result<(Shell, std::sync::mpsc::Sender<Reconfigure>)> {
        let bind_ip = idle.bind_ip;
        let socket = UdpSocket::bind(SocketAddr::new(bind_ip, IKE_PORT))
            .with_context(|| format!("binding the IKE socket {bind_ip}:{IKE_PORT}"))?;
        socket.set_read_timeout(Some(TICK))?;
        let (cmd_tx, cmd_rx) = std::sync::mpsc::channel();
        let shell = Shell {
            endpoint,
            socket,
            bind_ip,
            dp: idle.dp,
            rx: idle.rx,
            commands: cmd_rx,
            ids,
            status: Arc::clone(&self.status),
            counters: Arc::clone(&self.counters),
            origin: std::time::Instant::now(),
            esp_port: idle.esp_port,
            replay_window: Vec::new(),
            pending: Vec::new(),
            live: Vec::new(),
            retiring: Vec::new(),
            in_response: None,
            rx_seen: Vec::new(),
            rx_checked: std::time::Instant::now(),
        };
        Ok((shell, cmd_tx))
    }

    /// Starts the thread.
    fn spawn(
        &self,
        (mut shell, commands): (Shell, std::sync::mpsc::Sender<Reconfigure>),
    ) -> Result<()> {
        let flag = Arc::clone(&self.stop);
        let thread = std::thread::Builder::new()
            .name("ike".into())
            .spawn(move || shell.run(&flag))
            .context("starting the IKE thread")?;
        *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(thread);
        *self.commands.lock().unwrap_or_else(|e| e.into_inner()) = Some(commands);
        Ok(())
    }

    /// Applies configuration changes (see [`IkeChange`]) and returns once they are applied;
    /// an error lists what could not be done (e.g. the IKE socket could not be bound for the
    /// first IKE tunnel).
    pub fn apply(&self, changes: Vec<IkeChange>) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let running = self
            .commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(commands) = running else {
            return self.apply_idle(changes);
        };
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        commands
            .send(Reconfigure { changes, done })
            .map_err(|_| anyhow::anyhow!("the IKE thread has stopped"))?;
        let errors = wait
            .recv_timeout(APPLY_WAIT)
            .map_err(|_| anyhow::anyhow!("the IKE thread did not apply the changes in time"))?;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(anyhow::anyhow!("{}", errors.join("; ")))
        }
    }

    /// Changes while no thread runs: by-design rows are kept here; the first IKE tunnel to
    /// negotiate starts the thread (which starts it).
    fn apply_idle(&self, changes: Vec<IkeChange>) -> Result<()> {
        let mut adds = Vec::new();
        for c in changes {
            match c {
                IkeChange::Add {
                    index,
                    tunnel,
                    down_by_design: Some(why),
                } => self
                    .status
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(by_design_status(index, &tunnel, why)),
                IkeChange::Add {
                    index,
                    tunnel,
                    down_by_design: None,
                } if tunnel.ike.is_some() => adds.push((index, tunnel)),
                IkeChange::Remove { index } => self
                    .status
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .retain(|s| s.index != index),
                _ => {}
            }
        }
        if adds.is_empty() {
            return Ok(());
        }
        let Some(idle) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            anyhow::bail!("the IKE service has stopped");
        };
        let endpoint = Endpoint::new(engine_settings(&idle.dp), Box::new(bh_crypto::OsRandom));
        let (dp, rx, bind_ip, esp_port) = (idle.dp, idle.rx, idle.bind_ip, idle.esp_port);
        let idle = Idle {
            dp,
            rx,
            bind_ip,
            esp_port,
        };
        let (mut shell, commands) = self.shell(idle, endpoint, Vec::new())?;
        for (index, tunnel) in &adds {
            shell.add_tunnel(*index, tunnel);
        }
        self.spawn((shell, commands))
    }
}

impl IkeService {
    /// Status of the IKE tunnels, for `bridgehead status --json`: per tunnel its IKE state,
    /// SPIs, algorithms, NAT, uptime, last rekey, and why it is down; and the engine's
    /// counters (COOKIE notifies sent, half-open and total IKE SAs).
    pub fn status_json(&self) -> serde_json::Value {
        let c = *self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let st = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let tunnels: Vec<_> = st
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "tunnel_index": t.index,
                    "role": if t.initiator { "initiator" } else { "responder" },
                    "state": t.ike_state,
                    "ike_spi": t.ike_spi,
                    "ike_suite": t.ike_suite,
                    "nat": t.nat,
                    "remote": t.remote,
                    "child": t.child.as_ref().map(|c| json!({
                        "inbound_spi": format!("{:#010x}", c.inbound_spi),
                        "outbound_spi": format!("{:#010x}", c.outbound_spi),
                        "suite": c.suite,
                        "esn": c.esn,
                        "udp_encap": c.udp_encap,
                    })),
                    "down_reason": t.down_reason,
                    "by_design": t.by_design,
                    "no_proposal_chosen": t.no_proposal,
                    "ike_sas_up": t.ike_ups,
                    "child_sas_up": t.child_ups,
                    "uptime_secs": t.up_since.map(|u| u.elapsed().as_secs()),
                    "last_rekey_secs_ago": t.last_rekey.map(|u| u.elapsed().as_secs()),
                })
            })
            .collect();
        json!({
            "tunnels": tunnels,
            "cookies_sent": c.cookies_sent,
            "half_open": c.half_open,
            "ike_sas": c.ike_sas,
        })
    }
}

impl IkeService {
    /// Stops the service: every IKE SA is deleted at its peer (INFORMATIONAL DELETE) and the
    /// thread ends. Idempotent; also done on drop. The daemon calls it on shutdown, since other
    /// threads may still hold the service.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for IkeService {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The thread's state.
struct Shell {
    endpoint: Endpoint,
    socket: UdpSocket,
    bind_ip: IpAddr,
    dp: Arc<Dataplane>,
    rx: Receiver<IkeDatagram>,
    /// Configuration changes from [`IkeService::apply`].
    commands: Receiver<Reconfigure>,
    /// Engine tunnel id → dataplane tunnel index.
    ids: Vec<(TunnelId, usize)>,
    status: Arc<Mutex<Vec<TunnelStatus>>>,
    /// The engine's counters as of the last flush.
    counters: Arc<Mutex<EndpointCounters>>,
    origin: std::time::Instant,
    esp_port: u16,
    /// Anti-replay window per dataplane index.
    replay_window: Vec<u32>,
    /// Rekeyed outbound SAs waiting to replace the old ones (see the module documentation).
    pending: Vec<PendingOutbound>,
    /// Installed Child SAs, oldest first.
    live: Vec<LiveChild>,
    /// Inbound SPIs of Child SAs rekeyed away, removed from the dataplane at the instant
    /// ([`INBOUND_LINGER`] after their DELETE).
    retiring: Vec<(u32, std::time::Instant)>,
    /// While handling a datagram: whether it is an IKE response (R flag, RFC 7296 §3.1).
    in_response: Option<bool>,
    /// Packets received on each tunnel's inbound SAs at the last look, by position in `ids`.
    rx_seen: Vec<u64>,
    /// When inbound traffic was last looked at.
    rx_checked: std::time::Instant,
}

/// A Child SA installed and not yet removed: the outbound SA to fall back to when the one in
/// use goes while this one stays (e.g. the duplicate of a simultaneous initiation is deleted
/// after it was installed last).
struct LiveChild {
    /// Dataplane tunnel index.
    idx: usize,
    inbound_spi: u32,
    out: Arc<OutboundSa>,
    status: ChildStatus,
}

/// Most Child SAs remembered for fallback (each is removed again by its `ChildSaDown`).
const MAX_LIVE_CHILDREN: usize = 4096;

/// A rekeyed Child SA whose outbound SA is not in use yet.
struct PendingOutbound {
    /// Dataplane tunnel index.
    idx: usize,
    /// The new outbound SA.
    out: Arc<OutboundSa>,
    /// The new inbound SA (traffic on it means the peer switched).
    inb: Arc<InboundSa>,
    /// The inbound SPI of the pair it replaces.
    replaces: u32,
    /// When to switch regardless.
    deadline: std::time::Instant,
}

impl Shell {
    fn now(&self) -> bh_ike::Instant {
        bh_ike::Instant(u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn run(&mut self, stop: &AtomicBool) {
        let now = self.now();
        let starters: Vec<TunnelId> = self
            .ids
            .iter()
            .filter(|(id, _)| self.endpoint.tunnel(*id).is_some_and(|c| c.initiator))
            .map(|(id, _)| *id)
            .collect();
        for id in starters {
            self.endpoint.initiate(now, id);
        }
        self.flush();
        // Port 500 and the dataplane's port-4500 queue both feed one inbox that this thread
        // blocks on, so a message is handled when it arrives, not at the next tick.
        let socket = match self.socket.try_clone() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "IKE socket clone failed; IKE stops");
                return;
            }
        };
        let (inbox_tx, inbox) = std::sync::mpsc::sync_channel(inbox::INBOX);
        let queue = std::mem::replace(&mut self.rx, inbox);
        let done = AtomicBool::new(false);
        let closing = std::thread::scope(|s| {
            let (tx, done_ref) = (inbox_tx.clone(), &done);
            s.spawn(move || inbox::read_port500(&socket, &tx, done_ref));
            s.spawn(move || inbox::forward_queue(&queue, &inbox_tx, done_ref));
            let closing = self.serve(stop, &done);
            done.store(true, Ordering::Relaxed);
            closing
        });
        if !closing {
            return;
        }
        // Stopping: delete every IKE SA so the peers do not wait for DPD.
        let now = self.now();
        for (id, _) in self.ids.clone() {
            self.endpoint.close(now, id);
        }
        self.flush();
        self.retire_inbound(true);
    }

    /// The thread's loop until `stop`; false if the dataplane went away (`done` set by the
    /// forwarder), true to close the IKE SAs.
    fn serve(&mut self, stop: &AtomicBool, done: &AtomicBool) -> bool {
        while !stop.load(Ordering::Relaxed) {
            if done.load(Ordering::Relaxed) {
                return false;
            }
            let now = self.now();
            let wait = self
                .endpoint
                .poll_timeout()
                .map_or(TICK, |t| Duration::from_nanos(t.0.saturating_sub(now.0)))
                .min(TICK);
            match self.rx.recv_timeout(wait) {
                Ok(d) => self.datagram(d.src, d.local, &d.data),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return false,
            }
            while let Ok(d) = self.rx.try_recv() {
                self.datagram(d.src, d.local, &d.data);
            }
            while let Ok(req) = self.commands.try_recv() {
                let errors = self.reconfigure(req.changes);
                let _ = req.done.send(errors);
            }
            let now = self.now();
            if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
                self.endpoint.handle_timeout(now);
            }
            self.flush();
            self.switch_outbound(None);
            self.retire_inbound(false);
            if self.rx_checked.elapsed() >= TRAFFIC_CHECK {
                self.note_traffic();
            }
        }
        true
    }

    /// Configures IKE tunnel `t` (dataplane index `index`) in the engine, its status row placed
    /// after the engine's other tunnels (before the by-design rows). Does not start it.
    fn add_tunnel(&mut self, index: usize, t: &bh_config::Tunnel) -> Option<TunnelId> {
        let ike = t.ike.as_ref()?;
        let id = self.endpoint.add_tunnel(self.engine_config(t, ike));
        let pos = self.ids.len();
        self.ids.push((id, index));
        if self.replay_window.len() <= index {
            self.replay_window.resize(index + 1, 1024);
        }
        if let Some(w) = self.replay_window.get_mut(index) {
            *w = t.replay_window;
        }
        let mut st = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let at = pos.min(st.len());
        st.insert(
            at,
            TunnelStatus {
                name: t.name.clone(),
                index,
                initiator: ike.settings.initiate,
                ike_state: waiting_state(ike.settings.initiate),
                ..TunnelStatus::default()
            },
        );
        Some(id)
    }

    /// The engine's configuration of `t`.
    fn engine_config(&self, t: &bh_config::Tunnel, ike: &TunnelIke) -> TunnelIkeConfig {
        let local = SocketAddr::new(self.bind_ip, IKE_PORT);
        let remote = SocketAddr::new(t.peer, IKE_PORT);
        let force_udp = t.encap == bh_config::Encap::Udp;
        tunnel_config(&t.name, local, remote, ike, force_udp)
    }

    /// Applies reload changes; returns what failed.
    fn reconfigure(&mut self, changes: Vec<IkeChange>) -> Vec<String> {
        for c in changes {
            let now = self.now();
            match c {
                IkeChange::Add {
                    index,
                    tunnel,
                    down_by_design: Some(why),
                } => {
                    tracing::warn!(tunnel = %tunnel.name, reason = %why, "reload: not started");
                    self.status
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(by_design_status(index, &tunnel, why));
                }
                IkeChange::Add {
                    index,
                    tunnel,
                    down_by_design: None,
                } => {
                    if let Some(id) = self.add_tunnel(index, &tunnel) {
                        tracing::info!(tunnel = %tunnel.name, "reload: IKE tunnel added");
                        if tunnel.ike.as_ref().is_some_and(|i| i.settings.initiate) {
                            self.endpoint.initiate(now, id);
                        }
                    }
                }
                IkeChange::Remove { index } => {
                    let Some(pos) = self.ids.iter().position(|(_, i)| *i == index) else {
                        // Not negotiating (down by design): only its status row goes.
                        self.status
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .retain(|s| s.index != index);
                        continue;
                    };
                    let (id, _) = self.ids[pos];
                    self.endpoint.remove_tunnel(now, id);
                    // The SAs' down events are handled while the tunnel is still known.
                    self.flush();
                    self.ids.remove(pos);
                    if pos < self.rx_seen.len() {
                        self.rx_seen.remove(pos);
                    }
                    {
                        let mut st = self.status.lock().unwrap_or_else(|e| e.into_inner());
                        if pos < st.len() {
                            st.remove(pos);
                        }
                    }
                    self.pending.retain(|p| p.idx != index);
                    self.live.retain(|l| l.idx != index);
                    tracing::info!(tunnel = index, "reload: IKE tunnel removed");
                }
                IkeChange::Replace { index, tunnel } => {
                    let Some(ike) = &tunnel.ike else { continue };
                    let Some(pos) = self.ids.iter().position(|(_, i)| *i == index) else {
                        continue;
                    };
                    let (id, _) = self.ids[pos];
                    let cfg = self.engine_config(&tunnel, ike);
                    self.endpoint.replace_tunnel(now, id, cfg);
                    self.flush();
                    self.pending.retain(|p| p.idx != index);
                    if let Some(w) = self.replay_window.get_mut(index) {
                        *w = tunnel.replay_window;
                    }
                    let initiate = ike.settings.initiate;
                    self.with_status(pos, |s| {
                        s.initiator = initiate;
                        s.ike_state = waiting_state(initiate);
                        s.ike_spi = None;
                        s.child = None;
                        s.up_since = None;
                        s.no_proposal = None;
                        s.down_reason = Some("configuration changed".into());
                    });
                    if initiate {
                        self.endpoint.initiate(now, id);
                    }
                    tracing::info!(tunnel = %tunnel.name, "reload: IKE tunnel replaced; negotiating again");
                }
            }
        }
        self.flush();
        Vec::new()
    }

    /// Hands one IKE message to the engine and acts on what it produces.
    fn datagram(&mut self, src: SocketAddr, local: SocketAddr, data: &[u8]) {
        /// Offset of the flags octet in the IKE header (RFC 7296 §3.1).
        const FLAGS: usize = 19;
        /// The Response flag.
        const RESPONSE: u8 = 0x20;
        let now = self.now();
        self.in_response = data.get(FLAGS).map(|f| f & RESPONSE != 0);
        self.endpoint.handle_datagram(now, src, local, data);
        self.flush();
        self.in_response = None;
    }

    /// Sends what the engine queued and acts on its events.
    fn flush(&mut self) {
        while let Some(t) = self.endpoint.poll_transmit() {
            let r = if t.src.port() == self.esp_port {
                self.dp.send_ike(t.dst, &t.data)
            } else {
                self.socket.send_to(&t.data, t.dst).map(|_| ())
            };
            if let Err(e) = r {
                tracing::warn!(dst = %t.dst, error = %e, "sending IKE failed");
            }
        }
        while let Some(ev) = self.endpoint.poll_event() {
            self.event(ev);
        }
        let c = self.endpoint.counters();
        *self.counters.lock().unwrap_or_else(|e| e.into_inner()) = c;
    }

    /// Tells the engine about tunnels whose inbound SAs received packets since the last look.
    fn note_traffic(&mut self) {
        self.rx_checked = std::time::Instant::now();
        let table = self.dp.sas().load();
        self.rx_seen.resize(self.ids.len(), 0);
        let now = self.now();
        for (pos, (id, idx)) in self.ids.iter().enumerate() {
            let packets: u64 = table
                .inbound
                .values()
                .filter(|e| e.tunnel == *idx)
                .map(|e| e.sa.counters().snapshot().packets)
                .fold(0, u64::saturating_add);
            if let Some(seen) = self.rx_seen.get_mut(pos) {
                // Any change counts: a rekey replaces the SAs and their counters.
                if packets != *seen && packets > 0 {
                    self.endpoint.note_traffic(now, *id);
                }
                *seen = packets;
            }
        }
    }

    /// Puts pending outbound SAs in use: those whose inbound SA has seen traffic or whose
    /// deadline passed, and the one replacing inbound SPI `deleted` (its old pair is going).
    fn switch_outbound(&mut self, deleted: Option<u32>) {
        let now = std::time::Instant::now();
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| {
                deleted == Some(p.replaces)
                    || p.inb.counters().snapshot().packets > 0
                    || now >= p.deadline
            });
        self.pending = waiting;
        for p in ready {
            tracing::debug!(
                tunnel = p.idx,
                out_spi = %format_args!("{:#010x}", p.out.spi()),
                "rekeyed outbound SA in use"
            );
            self.dp.sas().set_outbound(p.idx, Some(p.out));
        }
    }

    /// Removes the lingering inbound SAs whose time is up (all of them when `all`).
    fn retire_inbound(&mut self, all: bool) {
        if self.retiring.is_empty() {
            return;
        }
        let now = std::time::Instant::now();
        let dp = &self.dp;
        self.retiring.retain(|&(spi, at)| {
            let keep = !all && now < at;
            if !keep {
                dp.sas().remove_inbound(spi);
            }
            keep
        });
    }

    fn index(&self, id: TunnelId) -> Option<(usize, usize)> {
        self.ids
            .iter()
            .position(|(t, _)| *t == id)
            .and_then(|pos| self.ids.get(pos).map(|(_, idx)| (pos, *idx)))
    }

    fn with_status(&self, pos: usize, f: impl FnOnce(&mut TunnelStatus)) {
        let mut st = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = st.get_mut(pos) {
            f(s);
        }
    }

    fn event(&mut self, ev: Event) {
        match ev {
            Event::IkeSaUp {
                tunnel,
                local_spi,
                suite,
                nat,
                remote,
                ..
            } => {
                let Some((pos, _)) = self.index(tunnel) else {
                    return;
                };
                // In the configuration's words (`aes256gcm16-prfsha256-modp2048`), as a user
                // writes `proposals`.
                let suite = bh_config::ike::Proposal {
                    encr: vec![suite.encr],
                    integ: vec![suite.integ]
                        .into_iter()
                        .filter(|i| *i != bh_crypto::EspInteg::None)
                        .collect(),
                    prf: vec![suite.prf],
                    dh: vec![suite.dh],
                    esn: vec![false],
                }
                .words();
                tracing::info!(tunnel = tunnel.0, %remote, nat, suite = %suite, "IKE SA up");
                self.with_status(pos, |s| {
                    let now = std::time::Instant::now();
                    if s.ike_state == "established" {
                        // A new IKE SA while one is up: an IKE rekey (or a duplicate).
                        s.last_rekey = Some(now);
                    } else {
                        s.up_since = Some(now);
                    }
                    s.ike_state = "established";
                    s.ike_spi = Some(hex::encode(local_spi));
                    s.ike_suite = Some(suite);
                    s.nat = Some(nat);
                    s.remote = Some(remote.to_string());
                    s.down_reason = None;
                    s.ike_ups = s.ike_ups.saturating_add(1);
                });
            }
            Event::IkeSaDown {
                tunnel,
                local_spi,
                reason,
            } => {
                let Some((pos, _)) = self.index(tunnel) else {
                    return;
                };
                tracing::info!(tunnel = tunnel.0, spi = %hex::encode(local_spi), ?reason, "IKE SA down");
                let spi = hex::encode(local_spi);
                self.with_status(pos, |s| {
                    // A rekeyed IKE SA is replaced by the new one already reported up.
                    if s.ike_spi.as_deref() == Some(spi.as_str()) {
                        s.ike_state = "down";
                        s.ike_spi = None;
                        s.up_since = None;
                        s.down_reason = Some(format!("{reason:?}"));
                    }
                });
            }
            Event::ChildSaUp {
                tunnel,
                inbound_spi,
                outbound_spi,
                suite,
                esn,
                keys_in,
                keys_out,
                udp_encap,
                remote,
                replaces,
                ..
            } => {
                let Some((pos, idx)) = self.index(tunnel) else {
                    return;
                };
                let window = self.replay_window.get(idx).copied().unwrap_or(1024);
                let built = (|| -> Result<(InboundSa, OutboundSa)> {
                    let inb = InboundSa::new(
                        inbound_spi,
                        EspTransform::new(suite, &keys_in)?,
                        esn,
                        window,
                    )?;
                    let out =
                        OutboundSa::new(outbound_spi, EspTransform::new(suite, &keys_out)?, esn)?;
                    Ok((inb, out))
                })();
                let (inb, out) = match built {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(tunnel = tunnel.0, error = %e, "cannot build the Child SA");
                        return;
                    }
                };
                // New inbound first, so the peer's first packets under it are accepted; the old
                // inbound stays until deleted.
                let inb = Arc::new(inb);
                let out = Arc::new(out);
                let name = suite.name().unwrap_or("?");
                let child_status = ChildStatus {
                    inbound_spi,
                    outbound_spi,
                    suite: name,
                    esn,
                    udp_encap,
                };
                if self.live.len() >= MAX_LIVE_CHILDREN {
                    self.live.remove(0);
                }
                self.live.push(LiveChild {
                    idx,
                    inbound_spi,
                    out: Arc::clone(&out),
                    status: child_status.clone(),
                });
                self.dp.sas().add_inbound(idx, Arc::clone(&inb));
                if let Some(t) = self.dp.tunnels().get(idx) {
                    let peer = if udp_encap {
                        remote
                    } else {
                        SocketAddr::new(remote.ip(), 0)
                    };
                    t.peer.store(Arc::new(peer));
                }
                // A newer rekey supersedes a pending one of the same tunnel.
                self.pending.retain(|p| p.idx != idx);
                let has_outbound = self
                    .dp
                    .sas()
                    .load()
                    .outbound
                    .get(idx)
                    .is_some_and(Option::is_some);
                // Only a rekey the peer initiated (we are answering its request) waits.
                match replaces {
                    Some(old) if has_outbound && self.in_response == Some(false) => {
                        self.pending.push(PendingOutbound {
                            idx,
                            out,
                            inb,
                            replaces: old,
                            deadline: std::time::Instant::now() + OUTBOUND_SWITCH,
                        });
                    }
                    _ => self.dp.sas().set_outbound(idx, Some(out)),
                }
                tracing::info!(
                    tunnel = tunnel.0,
                    in_spi = %format_args!("{inbound_spi:#010x}"),
                    out_spi = %format_args!("{outbound_spi:#010x}"),
                    suite = name,
                    esn,
                    udp_encap,
                    replaces = ?replaces.map(|s| format!("{s:#010x}")),
                    "Child SA installed"
                );
                self.with_status(pos, |s| {
                    s.child = Some(child_status);
                    s.child_ups = s.child_ups.saturating_add(1);
                    s.down_reason = None;
                    if replaces.is_some() {
                        s.last_rekey = Some(std::time::Instant::now());
                    }
                });
            }
            Event::ChildSaDown {
                tunnel,
                inbound_spi,
                outbound_spi,
                reason,
            } => {
                let Some((pos, idx)) = self.index(tunnel) else {
                    return;
                };
                // Its replacement's outbound SA goes into use before it goes.
                self.switch_outbound(Some(inbound_spi));
                self.pending
                    .retain(|p| !(p.idx == idx && p.inb.spi() == inbound_spi));
                // A pair we rekeyed away: the peer may still be sending on it until our
                // DELETE arrives, so its inbound SA lingers; any other end is immediate.
                if reason == DownReason::Rekeyed && self.retiring.len() < MAX_LIVE_CHILDREN {
                    self.retiring
                        .push((inbound_spi, std::time::Instant::now() + INBOUND_LINGER));
                } else {
                    self.dp.sas().remove_inbound(inbound_spi);
                }
                self.live.retain(|l| l.inbound_spi != inbound_spi);
                let current = self
                    .dp
                    .sas()
                    .load()
                    .outbound
                    .get(idx)
                    .cloned()
                    .flatten()
                    .map(|o| o.spi());
                // The outbound SA in use went: the newest Child SA of the tunnel still
                // installed (if any) carries the traffic from now on.
                let fallback = self.live.iter().rev().find(|l| l.idx == idx);
                if current == Some(outbound_spi) {
                    self.dp
                        .sas()
                        .set_outbound(idx, fallback.map(|l| Arc::clone(&l.out)));
                }
                let fallback = fallback.map(|l| l.status.clone());
                tracing::info!(
                    tunnel = tunnel.0,
                    in_spi = %format_args!("{inbound_spi:#010x}"),
                    ?reason,
                    "Child SA removed"
                );
                self.with_status(pos, |s| {
                    if s.child
                        .as_ref()
                        .is_some_and(|c| c.inbound_spi == inbound_spi)
                    {
                        s.child = fallback;
                        if s.child.is_none() {
                            s.down_reason = Some(format!("Child SA: {reason:?}"));
                        }
                    }
                });
            }
            Event::NoProposalChosen {
                tunnel,
                exchange,
                ours,
                theirs,
            } => {
                tracing::warn!(tunnel = tunnel.0, ?exchange, ours = %ours, theirs = %theirs, "no proposal chosen");
                if let Some((pos, _)) = self.index(tunnel) {
                    self.with_status(pos, |s| {
                        s.no_proposal = Some(format!("{exchange:?}: ours {ours}; theirs {theirs}"));
                        s.down_reason = Some("no proposal chosen".into());
                    });
                }
            }
            other => tracing::debug!(event = ?other, "IKE event"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bh_config::ike::{IkeSettings, ProposalKind, parse_proposal};
    use bh_crypto::{DhGroup, EspEncr, EspInteg, Prf};

    #[test]
    fn tunnel_config_carries_the_configured_ike_settings() {
        let settings = IkeSettings {
            proposals: vec![parse_proposal("aes256-sha1-modp1024", ProposalKind::Ike).unwrap()],
            esp_proposals: vec![parse_proposal("aes256gcm16-esn", ProposalKind::Esp).unwrap()],
            pfs: None,
            initiate: false,
            ike_lifetime: Duration::from_secs(600),
            child_lifetime: Duration::from_secs(60),
            dpd_interval: None,
            dpd_timeout: Duration::from_secs(30),
        };
        let ike = TunnelIke {
            psk: bh_crypto::Zeroizing::new(b"0123456789".to_vec()),
            local_id: Identity::Addr("203.0.113.10".parse().unwrap()),
            remote_id: Identity::Fqdn("vpn.example.com".into()),
            settings,
        };
        let local: SocketAddr = "10.0.1.4:500".parse().unwrap();
        let remote: SocketAddr = "198.51.100.1:500".parse().unwrap();
        let c = tunnel_config("az", local, remote, &ike, true);
        assert_eq!((c.local_addr, c.remote_addr), (local, remote));
        assert_eq!(c.local_id, IkeId::Addr("203.0.113.10".parse().unwrap()));
        assert_eq!(c.remote_id, IkeId::Fqdn("vpn.example.com".into()));
        assert_eq!(c.psk.as_slice(), b"0123456789");
        assert_eq!(
            c.ike_proposals,
            vec![IkeProposal {
                encr: vec![EspEncr::AesCbc { key_bits: 256 }],
                integ: vec![EspInteg::HmacSha1_96],
                prf: vec![Prf::HmacSha1],
                dh: vec![DhGroup::Modp1024],
            }]
        );
        assert_eq!(
            c.esp_proposals,
            vec![EspProposal {
                encr: vec![EspEncr::AesGcm16 { key_bits: 256 }],
                integ: vec![],
                esn: vec![true],
            }]
        );
        assert_eq!(c.pfs_group, None);
        assert!(!c.initiator);
        assert!(!c.dpd.restart);
        assert_eq!(c.dpd.interval, Duration::ZERO);
        assert_eq!(c.lifetimes.ike_rekey, Duration::from_secs(600));
        assert_eq!(c.lifetimes.child_rekey, Duration::from_secs(60));
        assert!(c.force_udp_encap);
    }
}
