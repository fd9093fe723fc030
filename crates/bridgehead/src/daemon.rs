//! `bridgehead daemon`: bring up the configured tunnels and run the dataplane until stopped.
//!
//! For each tunnel it creates the multi-queue TUN device `bh-<name>`, sets its MTU from the
//! suite and encapsulation overhead, adds the inside addresses and static routes (tagged with
//! [`RTPROT_BRIDGEHEAD`]), installs the manual SAs, and serves the control socket. An IKE
//! tunnel gets its device, addresses and routes too, but no SAs: the IKE service
//! ([`crate::ike`]) installs them when its Child SA is up, and until then the tunnel drops what
//! it is given (counted as `no_sa`). The device, its addresses and its routes disappear with
//! the process.
//!
//! `bridgehead reload` (the control request `reload`) and SIGHUP re-read and validate the
//! configuration file and apply the difference without touching what did not change (see
//! [`crate::reload`] for what applies live and what needs a restart, and `daemon/apply.rs` for
//! how).
//! systemd is told `RELOADING=1` before and `READY=1` after.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow};
use bh_config::{Config, Encap as CfgEncap, MssClamp, Tunnel};
use bh_crypto::EspTransform;
use bh_dataplane::{Dataplane, DataplaneConfig, Encap, TunnelConfig};
use bh_esp::{InboundSa, OutboundSa};
use bh_sys::link::Netlink;
use bh_sys::tun::{Tun, TunOptions};
use serde_json::json;

/// `rtm_protocol` of the routes bridgehead installs, so they can be told apart from others'
/// (`ip route show proto 248`). 248 is unassigned in iproute2's and FRR's `rt_protos` tables
/// (FRR names 186-197), so `ip route` shows it as a number, not as another daemon's.
pub const RTPROT_BRIDGEHEAD: u8 = 248;

/// Underlay MTU assumed when deriving the tunnel MTU.
pub const UNDERLAY_MTU: u16 = 1500;

/// IKE messages from the ESP port queued for the IKE service before more are dropped.
const IKE_QUEUE: usize = 1024;

/// The largest packet a worker buffer holds (jumbo underlay).
const MAX_PACKET: usize = 9216;

mod apply;

/// What the daemon knows about one tunnel for status.
struct TunnelInfo {
    device: String,
    mtu: u16,
    max_inner: u16,
    /// The manual SAs (outbound, inbound); `None` for an IKE tunnel, whose SAs come and go in
    /// the dataplane's SA table.
    manual: Option<(Arc<OutboundSa>, Arc<InboundSa>)>,
}

/// What runs now: the configuration in effect and where each tunnel is in the dataplane.
struct Running {
    /// The configuration in effect (after a reload: the new file with restart-only values
    /// held at the running ones).
    cfg: Config,
    /// Dataplane index of each running tunnel, by name.
    index: HashMap<String, usize>,
    /// Status facts of each running tunnel, by dataplane index.
    infos: HashMap<usize, TunnelInfo>,
    /// Whether the raw ESP socket is open.
    raw_esp: bool,
    /// Worker threads (TUN queues per tunnel).
    workers: usize,
}

/// The running daemon, shared by the signal loop and the control socket thread.
struct Daemon {
    config_path: PathBuf,
    dp: Arc<Dataplane>,
    ike: Arc<crate::ike::IkeService>,
    bgp: Arc<crate::bgp::BgpService>,
    /// Held for the whole of a reload, so reloads never overlap.
    running: Mutex<Running>,
    systemd: Mutex<crate::systemd::Service>,
}

impl Daemon {
    fn status_json(&self) -> serde_json::Value {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = status_json(&self.dp, &running);
        drop(running);
        st["ike"] = self.ike.status_json();
        st["bgp"] = self.bgp.status_json();
        st
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
/// With `metrics`, Prometheus text metrics ([`crate::metrics`]) are served at that address.
pub fn run(config: &Path, control: &Path, metrics: Option<SocketAddr>) -> Result<()> {
    let cfg = bh_config::load(config).map_err(|e| anyhow!("{e}"))?;
    tracing::info!(config = %config.display(), tunnels = cfg.tunnels.len(), workers = cfg.dataplane.workers, "starting");
    let (ike_tx, ike_rx) = std::sync::mpsc::sync_channel(IKE_QUEUE);
    let (dp, infos) = start(&cfg, ike_tx)?;
    let dp = Arc::new(dp);
    // Control-plane services, each in its own module; they get the dataplane to install SAs
    // and read tunnel state.
    let ike = Arc::new(crate::ike::start(&cfg, Arc::clone(&dp), ike_rx)?);
    let bgp = Arc::new(crate::bgp::start(&cfg, Arc::clone(&dp))?);
    let running = Running {
        index: cfg
            .tunnels
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect(),
        infos: infos.into_iter().enumerate().collect(),
        raw_esp: cfg.tunnels.iter().any(|t| t.encap == CfgEncap::Esp),
        workers: cfg.dataplane.workers.max(1),
        cfg: cfg.clone(),
    };
    let daemon = Arc::new(Daemon {
        config_path: config.to_owned(),
        dp: Arc::clone(&dp),
        ike: Arc::clone(&ike),
        bgp: Arc::clone(&bgp),
        running: Mutex::new(running),
        systemd: Mutex::new(crate::systemd::Service::from_env()),
    });
    let listener = crate::control::bind(control)?;
    let status_daemon = Arc::clone(&daemon);
    let full_status = Arc::new(move || status_daemon.status_json());
    let control_bgp = Arc::clone(&bgp);
    let control_status = Arc::clone(&full_status);
    let control_daemon = Arc::clone(&daemon);
    crate::control::serve(listener, control.to_owned(), move |req| match req {
        "status" => control_status().to_string(),
        "bgp" => crate::views::bgp_json(&control_bgp.status_json()).to_string(),
        "reload" => control_daemon.reload("bridgehead reload").to_string(),
        other => match crate::views::routes_request(other) {
            Some(limit) => control_bgp.routes_view(limit).to_string(),
            None => json!({
                "error": format!(
                    "unknown request {other:?}; try: status, bgp, routes [LIMIT], reload"
                )
            })
            .to_string(),
        },
    })?;
    if let Some(addr) = metrics {
        let metrics_status = Arc::clone(&full_status);
        let bound = crate::metrics::serve(addr, move || metrics_status())
            .with_context(|| format!("serving metrics on {addr}"))?;
        tracing::info!(metrics = %bound, "serving Prometheus metrics at /metrics");
    }
    drop(full_status);
    tracing::info!(control = %control.display(), "ready");
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])?;
    // systemd (Type=notify): READY once the tunnels are up, the control socket serves and the
    // signals are handled; keep-alives only while the control socket answers.
    {
        let mut systemd = daemon.systemd.lock().unwrap_or_else(|e| e.into_inner());
        let ping = control.to_owned();
        systemd.start_watchdog(crate::systemd::watchdog_period_from_env(), move || {
            crate::control::request(&ping, "status").is_ok()
        });
        systemd.ready(&format!(
            "{} tunnel(s) up; control socket {}",
            cfg.tunnels.len(),
            control.display()
        ));
    }
    for sig in signals.forever() {
        if sig == signal_hook::consts::SIGHUP {
            // The outcome is logged line by line by the reload itself.
            let _ = daemon.reload("SIGHUP");
            continue;
        }
        tracing::info!(signal = sig, "stopping");
        break;
    }
    daemon
        .systemd
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .stopping("stopping: removing tunnels");
    drop(daemon);
    // The control socket's closure still holds references: stop the services explicitly so
    // their routes leave the kernel now.
    bgp.shutdown();
    ike.stop();
    drop((ike, bgp));
    if let Ok(dp) = Arc::try_unwrap(dp) {
        dp.stop();
    }
    let _ = std::fs::remove_file(control);
    Ok(())
}

fn start(
    cfg: &Config,
    ike: std::sync::mpsc::SyncSender<bh_dataplane::IkeDatagram>,
) -> Result<(Dataplane, Vec<TunnelInfo>)> {
    let workers = cfg.dataplane.workers.max(1);
    let mut nl = Netlink::open().context("opening rtnetlink")?;
    let mut tunnels = Vec::new();
    let mut pending = Vec::new();
    for t in &cfg.tunnels {
        let (tc, info) = bring_up(&mut nl, t, workers)
            .with_context(|| format!("tunnel {}: bringing up bh-{}", t.name, t.name))?;
        tunnels.push(tc);
        pending.push(info);
    }
    let bind = cfg
        .appliance
        .private_ip
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let dp = Dataplane::start(
        &DataplaneConfig {
            workers,
            bind,
            udp_port: cfg.dataplane.udp_port,
            socket_buffer: cfg.dataplane.socket_buffer,
            pin: cfg.dataplane.pin_workers,
            raw_esp: cfg.tunnels.iter().any(|t| t.encap == CfgEncap::Esp),
            max_packet: MAX_PACKET,
            ike: Some(ike),
        },
        tunnels,
    )
    .context("starting the dataplane")?;
    for (i, info) in pending.iter().enumerate() {
        let Some((out, inb)) = &info.manual else {
            tracing::info!(
                tunnel = %cfg.tunnels[i].name,
                device = %info.device,
                mtu = info.mtu,
                "device up; SAs come from IKE"
            );
            continue;
        };
        dp.sas().add_inbound(i, Arc::clone(inb));
        dp.sas().set_outbound(i, Some(Arc::clone(out)));
        tracing::info!(
            tunnel = %cfg.tunnels[i].name,
            device = %info.device,
            mtu = info.mtu,
            suite = out.suite().name().unwrap_or("?"),
            out_spi = %format_args!("{:#010x}", out.spi()),
            in_spi = %format_args!("{:#010x}", inb.spi()),
            "manual SAs installed"
        );
    }
    Ok((dp, pending))
}

fn bring_up(nl: &mut Netlink, t: &Tunnel, workers: usize) -> Result<(TunnelConfig, TunnelInfo)> {
    let device = format!("bh-{}", t.name);
    let udp = t.encap == CfgEncap::Udp;
    let max_inner =
        max_inner(t).context("the tunnel has neither [tunnel.manual] nor IKE ESP proposals")?;
    let mtu = t.mtu.unwrap_or(max_inner);
    // Virtio headers let the kernel hand over TSO/USO super-packets and take coalesced ones:
    // 5-7x the throughput at a seventh of the CPU per GB (issue 6 measurements). The dataplane
    // checks per queue whether the kernel granted them.
    let tun = Tun::create_with(&device, workers, &TunOptions { vnet_hdr: true })
        .with_context(|| format!("creating TUN {device}"))?;
    let idx = bh_sys::link::ifindex(&device)?;
    nl.set_mtu(idx, u32::from(mtu))?;
    for p in &t.inside {
        nl.add_address(idx, p.addr, p.len)
            .with_context(|| format!("adding {p} to {device}"))?;
    }
    nl.set_up(idx)?;
    // Reverse-path filtering would drop what arrives on the tunnel for prefixes routed
    // elsewhere; the SA already authenticates the traffic.
    let _ = bh_sys::link::set_sysctl(&format!("net/ipv4/conf/{device}/rp_filter"), "0");
    for r in &t.routes {
        nl.add_route(r.addr, r.len, idx, 0, RTPROT_BRIDGEHEAD)
            .with_context(|| format!("adding route {r} via {device}"))?;
    }
    let mss = match t.mss_clamp {
        MssClamp::Auto => Some(bh_packet::mss::mss_for_mtu(mtu.min(max_inner), false)),
        MssClamp::Off => None,
        MssClamp::Fixed(v) => Some(v),
    };
    let manual = manual_sas(t)?;
    let tc = TunnelConfig {
        name: t.name.clone(),
        queues: tun.into_queues(),
        peer: SocketAddr::new(t.peer, t.peer_port),
        encap: match t.encap {
            CfgEncap::Udp => Encap::Udp,
            CfgEncap::Esp => Encap::Esp,
        },
        mtu: mtu.min(max_inner),
        mss,
        icmp_src_v4: t
            .inside
            .iter()
            .filter(|p| p.addr.is_ipv4())
            .find_map(far_end),
        icmp_src_v6: t
            .inside
            .iter()
            .filter(|p| p.addr.is_ipv6())
            .find_map(far_end),
        keepalive: if udp { t.nat_keepalive } else { None },
    };
    let info = TunnelInfo {
        device,
        mtu,
        max_inner: mtu.min(max_inner),
        manual,
    };
    Ok((tc, info))
}

/// The manual SA pair of `t` (outbound, inbound); `None` for an IKE tunnel.
fn manual_sas(t: &Tunnel) -> Result<Option<(Arc<OutboundSa>, Arc<InboundSa>)>> {
    let Some(manual) = &t.manual else {
        return Ok(None);
    };
    Ok(Some((
        Arc::new(OutboundSa::new(
            manual.outbound.spi,
            EspTransform::new(manual.suite, &manual.outbound.key)?,
            manual.esn,
        )?),
        Arc::new(InboundSa::new(
            manual.inbound.spi,
            EspTransform::new(manual.suite, &manual.inbound.key)?,
            manual.esn,
            t.replay_window,
        )?),
    )))
}

/// The largest inner packet whose ESP packet fits the underlay: what the workers enforce (DF:
/// ICMP too-big; IPv4 without DF: fragmented before encryption), over every suite the tunnel
/// may end up with (the manual one, or every one its IKE ESP proposals allow). The device MTU
/// is the same unless the configuration sets a larger one. `None` without any suite.
pub(crate) fn max_inner(t: &Tunnel) -> Option<u16> {
    let suites: Vec<bh_crypto::EspSuite> = match (&t.manual, &t.ike) {
        (Some(m), _) => vec![m.suite],
        (None, Some(ike)) => ike
            .settings
            .esp_proposals
            .iter()
            .flat_map(bh_config::ike::Proposal::esp_suites)
            .collect(),
        (None, None) => Vec::new(),
    };
    let udp = t.encap == CfgEncap::Udp;
    suites
        .iter()
        .map(|s| bh_packet::mtu::tunnel_mtu(UNDERLAY_MTU, s, udp, t.peer.is_ipv6()))
        .min()
}

/// The other host address of a point-to-point inside prefix (/30 or /31, /126 or /127): the
/// tunnel's far end. ICMP errors about the tunnel are sent from it, as from the router at the
/// other end of the link; our own address would be dropped as a martian source on the way in.
fn far_end(p: &bh_config::Prefix) -> Option<IpAddr> {
    match p.addr {
        IpAddr::V4(a) => {
            let a = u32::from(a);
            let other = match p.len {
                31 => a ^ 1,
                30 => match a & 3 {
                    1 => a + 1,
                    2 => a - 1,
                    _ => return None,
                },
                _ => return None,
            };
            Some(IpAddr::V4(other.into()))
        }
        IpAddr::V6(a) => {
            let a = u128::from(a);
            let other = match p.len {
                127 => a ^ 1,
                126 => match a & 3 {
                    1 => a + 1,
                    2 => a - 1,
                    _ => return None,
                },
                _ => return None,
            };
            Some(IpAddr::V6(other.into()))
        }
    }
}

fn status_json(dp: &Dataplane, running: &Running) -> serde_json::Value {
    let g = dp.global();
    // The SAs as the workers see them: the manual pair, or what IKE installed.
    let table = dp.sas().load();
    // Running tunnels in the configuration's order.
    let tunnels: Vec<_> = running
        .cfg
        .tunnels
        .iter()
        .filter_map(|c| {
            let idx = *running.index.get(&c.name)?;
            Some((idx, (dp.tunnels().get(idx)?, running.infos.get(&idx)?)))
        })
        .map(|(idx, (t, i))| {
            let c = t.counters.snapshot();
            let out = table.outbound.get(idx).cloned().flatten();
            // During a rekey two inbound SAs exist: show the one in use (most packets).
            let inb = table
                .inbound
                .values()
                .filter(|e| e.tunnel == idx)
                .max_by_key(|e| (e.sa.counters().snapshot().packets, e.sa.spi()))
                .map(|e| Arc::clone(&e.sa));
            let inbound_sas = table.inbound.values().filter(|e| e.tunnel == idx).count();
            let keying = if i.manual.is_some() { "manual" } else { "ike" };
            let (Some(out), Some(inb)) = (out, inb) else {
                return json!({
                    "name": t.name,
                    "device": i.device,
                    "peer": t.peer.load().to_string(),
                    "encap": match t.encap { Encap::Udp => "udp", Encap::Esp => "esp" },
                    "mtu": i.mtu,
                    "max_inner": i.max_inner,
                    "mss": t.mss,
                    "keying": keying,
                    "state": "down",
                    "tun": { "rx_packets": c.tun_rx_packets, "no_sa": c.no_sa },
                });
            };
            let o = out.counters().snapshot();
            let n = inb.counters().snapshot();
            json!({
                "name": t.name,
                "device": i.device,
                "peer": t.peer.load().to_string(),
                "encap": match t.encap { Encap::Udp => "udp", Encap::Esp => "esp" },
                "mtu": i.mtu,
                "max_inner": i.max_inner,
                "mss": t.mss,
                "keying": keying,
                "state": "up",
                "suite": out.suite().name().unwrap_or("?"),
                "esn": out.esn(),
                "inbound_sas": inbound_sas,
                "outbound": {
                    "spi": format!("{:#010x}", out.spi()),
                    "packets": o.packets, "bytes": o.bytes,
                    "next_seq": out.next_seq(),
                    "drops": { "exhausted": o.exhausted },
                },
                "inbound": {
                    "spi": format!("{:#010x}", inb.spi()),
                    "worker": (matches!(t.encap, Encap::Udp) && dp.workers() > 1)
                        .then(|| bh_dataplane::worker_of_spi(inb.spi(), dp.workers())),
                    "packets": n.packets, "bytes": n.bytes,
                    "highest_seq": inb.highest_seq(),
                    "drops": { "replay": n.replay, "icv": n.icv, "malformed": n.malformed, "dummy": n.dummy },
                },
                "tun": {
                    "rx_packets": c.tun_rx_packets, "tx_packets": c.tun_tx_packets,
                    "invalid": c.tun_rx_invalid, "no_sa": c.no_sa, "fragmented": c.fragmented,
                    "icmp_too_big": c.icmp_too_big, "oversize_dropped": c.oversize_dropped,
                    "mss_clamped": c.mss_clamped, "send_errors": c.send_errors,
                    "write_errors": c.tun_write_errors, "keepalives_sent": c.keepalives_sent,
                },
            })
        })
        .collect();
    json!({
        "tunnels": tunnels,
        "socket": {
            "rx_datagrams": g.rx_datagrams, "per_worker": dp.worker_rx(),
            "malformed": g.malformed, "truncated": g.truncated,
            "unknown_spi": g.unknown_spi, "ike": g.ike, "ike_dropped": g.ike_dropped, "keepalives": g.keepalives,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> bh_config::Prefix {
        let (a, l) = s.split_once('/').unwrap();
        bh_config::Prefix {
            addr: a.parse().unwrap(),
            len: l.parse().unwrap(),
        }
    }

    #[test]
    fn far_end_of_point_to_point_prefixes() {
        let f = |s| far_end(&p(s)).map(|a| a.to_string());
        assert_eq!(f("169.254.21.2/30").as_deref(), Some("169.254.21.1"));
        assert_eq!(f("169.254.21.1/30").as_deref(), Some("169.254.21.2"));
        assert_eq!(f("10.0.0.4/31").as_deref(), Some("10.0.0.5"));
        assert_eq!(f("10.0.0.1/24"), None);
        assert_eq!(f("fd00:10::1/126").as_deref(), Some("fd00:10::2"));
        assert_eq!(f("fd00:10::3/127").as_deref(), Some("fd00:10::2"));
        assert_eq!(f("fd00::1/64"), None);
    }
}
