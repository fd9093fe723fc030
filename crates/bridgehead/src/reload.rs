//! Configuration reload, the pure part: what changed between the running configuration and
//! a newly loaded (and fully validated) one, and what that means for the running daemon.
//!
//! [`plan`] compares tunnels by `name` and BGP neighbors by `address` and sorts every change
//! into what applies live and what needs a restart:
//!
//! | change | applied as |
//! |---|---|
//! | tunnel added / removed | device `bh-<name>` created and IKE started / SAs deleted at the peer, device removed |
//! | `inside`, `mtu` (or a suite change that changes it), `mss_clamp`, `encap`, `nat_keepalive`, manual ↔ IKE keying, becoming or ceasing to be down by design ([`crate::cloud::design`]) | the tunnel is re-created (device, addresses, routes, SAs) |
//! | `psk`, `local_id`, `remote_id`, `[tunnel.ike]`, `peer`, `peer_port`, an IKE tunnel's `replay_window` | only that tunnel's IKE SA is deleted at the peer and negotiated again |
//! | `[tunnel.manual]` SPIs, keys, `esn`, a manual tunnel's `replay_window` | the tunnel's SAs are replaced; device untouched |
//! | `routes` | routes added / removed on the device |
//! | neighbor added / removed | session started / stopped with Cease/Peer De-configured |
//! | neighbor `asn`, `tunnel`, `hold_time`, `passive`, `multihop`, TCP MD5 password, `max_prefix(_action)`, its tunnel re-created | that session reset with Cease/Other Configuration Change |
//! | neighbor `import`, `export`, `prepend`, `med`, `max_advertise` | UPDATEs / withdrawals / ROUTE-REFRESH, no reset |
//! | `[bgp] advertise` | UPDATEs / withdrawals, no reset |
//!
//! Needs a restart (reported; the rest is applied, these keep their running values):
//! `[dataplane]` (`workers`, `udp_port`, `socket_buffer`, `pin_workers`),
//! `appliance.private_ip`, `[bgp]` `asn`, `router_id`, `table`, `metric`, `multipath`, `transit`,
//! adding or removing the whole `[bgp]` section, a raw-ESP tunnel (`encap = "esp"`) when
//! none ran at start (the raw socket opens only then), and more than
//! [`bh_dataplane::MAX_TUNNELS`] tunnels created over the process's life.
//!
//! The running configuration after a reload is [`Plan::effective`]: the new file with the
//! restart-only values held at the running ones, so the next reload compares against what
//! really runs. Applying the plan is the daemon's ([`crate::daemon`]); nothing here does I/O.

use std::collections::BTreeSet;
use std::net::IpAddr;

use bh_config::{BgpNeighbor, Config, Encap, Prefix, Tunnel};
use serde_json::{Value, json};
use subtle::ConstantTimeEq as _;

/// What happens to one tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelAction {
    /// New: create its device, addresses and routes, start IKE or install its manual SAs.
    Add,
    /// Gone: delete its SAs at the peer, remove its device (addresses and routes go with it).
    Remove,
    /// Device-level settings changed (the reasons): remove it and add it again.
    Recreate(Vec<&'static str>),
    /// Changed in place; the device stays.
    Update {
        /// IKE settings that changed: the IKE SA is deleted and negotiated again.
        ike: Vec<&'static str>,
        /// The manual SAs changed: they are replaced.
        manual: bool,
        /// The peer's address or port changed.
        peer: bool,
        /// Routes to add.
        routes_add: Vec<Prefix>,
        /// Routes to remove.
        routes_remove: Vec<Prefix>,
    },
}

/// One tunnel's change (unchanged tunnels are not listed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelPlan {
    /// The tunnel's name.
    pub name: String,
    /// What happens to it.
    pub action: TunnelAction,
}

/// What happens to the BGP speaker (only when `[bgp]` runs before and after).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BgpPlan {
    /// Neighbors to stop with Cease/Peer De-configured.
    pub removed: Vec<IpAddr>,
    /// Neighbors to start.
    pub added: Vec<IpAddr>,
    /// Neighbors to reset with Cease/Other Configuration Change, and why.
    pub reset: Vec<(IpAddr, Vec<&'static str>)>,
    /// Neighbors whose policy changes without a reset, and what changed.
    pub policy: Vec<(IpAddr, Vec<&'static str>)>,
    /// `[bgp] advertise` changed: (added, withdrawn).
    pub advertise: Option<(Vec<Prefix>, Vec<Prefix>)>,
}

impl BgpPlan {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty()
            && self.added.is_empty()
            && self.reset.is_empty()
            && self.policy.is_empty()
            && self.advertise.is_none()
    }
}

/// The difference between the running and the new configuration.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The configuration that runs once the plan is applied (the new one, with the
    /// restart-only values held at the running ones).
    pub effective: Config,
    /// Changes that need a restart, one sentence each (not applied).
    pub restart: Vec<String>,
    /// Tunnel changes, in the new file's order, removals first.
    pub tunnels: Vec<TunnelPlan>,
    /// BGP changes.
    pub bgp: BgpPlan,
}

impl Plan {
    /// Whether nothing is to be applied (there may still be restart-only changes).
    pub fn is_empty(&self) -> bool {
        self.tunnels.is_empty() && self.bgp.is_empty()
    }

    /// One line per change, for the CLI and the log.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.tunnels {
            let line = match &t.action {
                TunnelAction::Add => format!("tunnel {}: added", t.name),
                TunnelAction::Remove => format!("tunnel {}: removed", t.name),
                TunnelAction::Recreate(why) => {
                    format!("tunnel {}: re-created ({} changed)", t.name, why.join(", "))
                }
                TunnelAction::Update {
                    ike,
                    manual,
                    peer,
                    routes_add,
                    routes_remove,
                } => {
                    let mut parts = Vec::new();
                    if !ike.is_empty() {
                        parts.push(format!("IKE SA renegotiated ({} changed)", ike.join(", ")));
                    }
                    if *manual {
                        parts.push("manual SAs replaced".to_owned());
                    }
                    if *peer && ike.is_empty() {
                        parts.push("peer address changed".to_owned());
                    }
                    for r in routes_add {
                        parts.push(format!("route {r} added"));
                    }
                    for r in routes_remove {
                        parts.push(format!("route {r} removed"));
                    }
                    format!("tunnel {}: {}", t.name, parts.join("; "))
                }
            };
            out.push(line);
        }
        let b = &self.bgp;
        for a in &b.removed {
            out.push(format!(
                "bgp neighbor {a}: removed (Cease/Peer De-configured)"
            ));
        }
        for a in &b.added {
            out.push(format!("bgp neighbor {a}: added"));
        }
        for (a, why) in &b.reset {
            out.push(format!(
                "bgp neighbor {a}: reset with Cease/Other Configuration Change ({} changed)",
                why.join(", ")
            ));
        }
        for (a, why) in &b.policy {
            out.push(format!(
                "bgp neighbor {a}: {} applied without a reset",
                why.join(", ")
            ));
        }
        if let Some((add, del)) = &b.advertise {
            for p in add {
                out.push(format!("bgp advertise {p}: announced"));
            }
            for p in del {
                out.push(format!("bgp advertise {p}: withdrawn"));
            }
        }
        out
    }

    /// The plan as JSON: `applied` (lines) and `needs_restart` (lines).
    pub fn to_json(&self) -> Value {
        json!({ "applied": self.lines(), "needs_restart": self.restart })
    }
}

/// Compares the running configuration `old` with the validated `new` one. `raw_esp`: whether
/// the running dataplane has the raw ESP socket open.
pub fn plan(old: &Config, new: Config, raw_esp: bool) -> Plan {
    let mut effective = new;
    let mut restart = Vec::new();
    hold_restart_only(old, &mut effective, raw_esp, &mut restart);
    let tunnels = tunnel_plans(old, &effective);
    let recreated: BTreeSet<&str> = tunnels
        .iter()
        .filter(|t| matches!(t.action, TunnelAction::Recreate(_)))
        .map(|t| t.name.as_str())
        .collect();
    let bgp = match (&old.bgp, &effective.bgp) {
        (Some(o), Some(n)) => bgp_plan(o, n, &recreated),
        _ => BgpPlan::default(),
    };
    Plan {
        effective,
        restart,
        tunnels,
        bgp,
    }
}

/// Puts the running values of restart-only settings into `new`, noting each difference.
fn hold_restart_only(old: &Config, new: &mut Config, raw_esp: bool, restart: &mut Vec<String>) {
    let mut note = |what: &str, from: String, to: String| {
        restart.push(format!(
            "{what}: {from} -> {to} needs a restart (running with {from})"
        ));
    };
    let (od, nd) = (&old.dataplane, &mut new.dataplane);
    if od.workers != nd.workers {
        note(
            "dataplane.workers",
            od.workers.to_string(),
            nd.workers.to_string(),
        );
    }
    if od.udp_port != nd.udp_port {
        note(
            "dataplane.udp_port",
            od.udp_port.to_string(),
            nd.udp_port.to_string(),
        );
    }
    if od.socket_buffer != nd.socket_buffer {
        note(
            "dataplane.socket_buffer",
            od.socket_buffer.to_string(),
            nd.socket_buffer.to_string(),
        );
    }
    if od.pin_workers != nd.pin_workers {
        note(
            "dataplane.pin_workers",
            od.pin_workers.to_string(),
            nd.pin_workers.to_string(),
        );
    }
    *nd = od.clone();
    let show = |a: Option<IpAddr>| a.map_or_else(|| "unset".to_owned(), |a| a.to_string());
    if old.appliance.private_ip != new.appliance.private_ip {
        note(
            "appliance.private_ip",
            show(old.appliance.private_ip),
            show(new.appliance.private_ip),
        );
        new.appliance.private_ip = old.appliance.private_ip;
    }
    match (&old.bgp, &mut new.bgp) {
        (None, None) => {}
        (Some(_), None) => {
            restart.push(
                "[bgp]: removing the section needs a restart (the speaker keeps running)".into(),
            );
            new.bgp.clone_from(&old.bgp);
        }
        (None, Some(_)) => {
            restart.push("[bgp]: adding the section needs a restart (no speaker runs)".into());
            new.bgp = None;
        }
        (Some(o), Some(n)) => {
            let mut note = |what: &str, from: String, to: String| {
                restart.push(format!(
                    "{what}: {from} -> {to} needs a restart (running with {from})"
                ));
            };
            if o.asn != n.asn {
                note("bgp.asn", o.asn.to_string(), n.asn.to_string());
                n.asn = o.asn;
            }
            if o.router_id != n.router_id {
                let show = |r: Option<std::net::Ipv4Addr>| {
                    r.map_or_else(|| "unset".to_owned(), |r| r.to_string())
                };
                note("bgp.router_id", show(o.router_id), show(n.router_id));
                n.router_id = o.router_id;
            }
            if o.table != n.table {
                note("bgp.table", o.table.to_string(), n.table.to_string());
                n.table = o.table;
            }
            if o.metric != n.metric {
                note("bgp.metric", o.metric.to_string(), n.metric.to_string());
                n.metric = o.metric;
            }
            if o.multipath != n.multipath {
                note(
                    "bgp.multipath",
                    o.multipath.to_string(),
                    n.multipath.to_string(),
                );
                n.multipath = o.multipath;
            }
            if o.transit != n.transit {
                note("bgp.transit", o.transit.to_string(), n.transit.to_string());
                n.transit = o.transit;
            }
        }
    }
    // A raw-ESP tunnel needs the raw socket, opened only at start.
    if !raw_esp {
        let mut dropped = Vec::new();
        for t in &mut new.tunnels {
            let Some(o) = old.tunnels.iter().find(|o| o.name == t.name) else {
                if t.encap == Encap::Esp {
                    dropped.push(t.name.clone());
                }
                continue;
            };
            if t.encap == Encap::Esp && o.encap != Encap::Esp {
                restart.push(format!(
                    "tunnel {}: encap = \"esp\" needs a restart (no raw ESP socket is open; the tunnel keeps running as before)",
                    t.name
                ));
                *t = o.clone();
            }
        }
        for name in &dropped {
            restart.push(format!(
                "tunnel {name}: encap = \"esp\" needs a restart (no raw ESP socket is open; the tunnel is not added)"
            ));
        }
        new.tunnels.retain(|t| !dropped.contains(&t.name));
        if let Some(b) = &mut new.bgp {
            b.neighbors.retain(|n| {
                let keep = n.tunnel.as_ref().is_none_or(|t| !dropped.contains(t));
                if !keep {
                    restart.push(format!(
                        "bgp neighbor {}: its tunnel is not added (see above)",
                        n.address
                    ));
                }
                keep
            });
        }
    }
}

fn tunnel_plans(old: &Config, new: &Config) -> Vec<TunnelPlan> {
    let mut out = Vec::new();
    // Whether the cloud's design keeps a tunnel down can change with the others (the first
    // of several tunnels to one peer is the one that runs): such a tunnel is re-created.
    let design = |cfg: &Config, name: &str| {
        let i = cfg.tunnels.iter().position(|t| t.name == name)?;
        crate::cloud::design::down_by_design(cfg)
            .get(i)
            .cloned()
            .flatten()
    };
    for o in &old.tunnels {
        if !new.tunnels.iter().any(|n| n.name == o.name) {
            out.push(TunnelPlan {
                name: o.name.clone(),
                action: TunnelAction::Remove,
            });
        }
    }
    for n in &new.tunnels {
        let Some(o) = old.tunnels.iter().find(|o| o.name == n.name) else {
            out.push(TunnelPlan {
                name: n.name.clone(),
                action: TunnelAction::Add,
            });
            continue;
        };
        let mut device = device_changes(o, n);
        if design(old, &n.name).is_some() != design(new, &n.name).is_some() {
            device.push("down by design");
        }
        if !device.is_empty() {
            out.push(TunnelPlan {
                name: n.name.clone(),
                action: TunnelAction::Recreate(device),
            });
            continue;
        }
        let ike = ike_changes(o, n);
        let manual = manual_changed(o, n);
        let peer = o.peer != n.peer || o.peer_port != n.peer_port;
        let (old_r, new_r): (BTreeSet<String>, BTreeSet<String>) = (
            o.routes.iter().map(ToString::to_string).collect(),
            n.routes.iter().map(ToString::to_string).collect(),
        );
        let routes_add: Vec<Prefix> = n
            .routes
            .iter()
            .filter(|r| !old_r.contains(&r.to_string()))
            .copied()
            .collect();
        let routes_remove: Vec<Prefix> = o
            .routes
            .iter()
            .filter(|r| !new_r.contains(&r.to_string()))
            .copied()
            .collect();
        if ike.is_empty() && !manual && !peer && routes_add.is_empty() && routes_remove.is_empty() {
            continue;
        }
        out.push(TunnelPlan {
            name: n.name.clone(),
            action: TunnelAction::Update {
                ike,
                manual,
                peer,
                routes_add,
                routes_remove,
            },
        });
    }
    out
}

/// The names of the checks that are true, in order: what changed.
fn changed(checks: &[(bool, &'static str)]) -> Vec<&'static str> {
    checks.iter().filter(|(c, _)| *c).map(|&(_, n)| n).collect()
}

/// Settings baked into the device or the dataplane's view of the tunnel.
fn device_changes(o: &Tunnel, n: &Tunnel) -> Vec<&'static str> {
    let mtu = |t: &Tunnel| {
        let max = crate::daemon::max_inner(t);
        (t.mtu.or(max), max)
    };
    changed(&[
        (o.encap != n.encap, "encap"),
        (o.inside != n.inside, "inside"),
        (mtu(o) != mtu(n), "mtu"),
        (o.mss_clamp != n.mss_clamp, "mss_clamp"),
        (o.nat_keepalive != n.nat_keepalive, "nat_keepalive"),
        (
            o.manual.is_some() != n.manual.is_some(),
            "keying (manual / IKE)",
        ),
    ])
}

/// IKE settings that changed (both tunnels use IKE); the PSK is compared in constant time.
fn ike_changes(o: &Tunnel, n: &Tunnel) -> Vec<&'static str> {
    let (Some(oi), Some(ni)) = (&o.ike, &n.ike) else {
        return Vec::new();
    };
    let (os, ns) = (&oi.settings, &ni.settings);
    changed(&[
        (o.peer != n.peer, "peer"),
        (o.peer_port != n.peer_port, "peer_port"),
        (
            !bool::from(oi.psk.as_slice().ct_eq(ni.psk.as_slice())),
            "psk",
        ),
        (oi.local_id != ni.local_id, "local_id"),
        (oi.remote_id != ni.remote_id, "remote_id"),
        (os.proposals != ns.proposals, "ike.proposals"),
        (os.esp_proposals != ns.esp_proposals, "ike.esp_proposals"),
        (os.pfs != ns.pfs, "ike.pfs"),
        (os.initiate != ns.initiate, "ike.initiate"),
        (
            os.ike_lifetime != ns.ike_lifetime || os.child_lifetime != ns.child_lifetime,
            "ike lifetimes",
        ),
        (
            os.dpd_interval != ns.dpd_interval || os.dpd_timeout != ns.dpd_timeout,
            "ike DPD",
        ),
        (o.replay_window != n.replay_window, "replay_window"),
    ])
}

/// Whether a manual tunnel's SAs changed (keys compared in constant time).
fn manual_changed(o: &Tunnel, n: &Tunnel) -> bool {
    let (Some(om), Some(nm)) = (&o.manual, &n.manual) else {
        return false;
    };
    let same_key = |a: &bh_config::ManualSa, b: &bh_config::ManualSa| {
        a.spi == b.spi && bool::from(a.key.as_slice().ct_eq(b.key.as_slice()))
    };
    om.suite != nm.suite
        || om.esn != nm.esn
        || !same_key(&om.outbound, &nm.outbound)
        || !same_key(&om.inbound, &nm.inbound)
        || o.replay_window != n.replay_window
}

/// How one neighbor changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NeighborChange {
    /// Nothing.
    Same,
    /// Only policy: applied without a reset.
    Policy(Vec<&'static str>),
    /// Session parameters: the session is reset.
    Reset(Vec<&'static str>),
}

/// Compares two configurations of the neighbor with one address.
pub fn neighbor_change(o: &BgpNeighbor, n: &BgpNeighbor) -> NeighborChange {
    // `Md5Password` compares in constant time.
    let reset = changed(&[
        (o.asn != n.asn, "asn"),
        (o.tunnel != n.tunnel, "tunnel"),
        (o.hold_time != n.hold_time, "hold_time"),
        (o.passive != n.passive, "passive"),
        (o.multihop != n.multihop, "multihop"),
        (o.md5_password != n.md5_password, "TCP MD5 password"),
        (
            o.max_prefix != n.max_prefix || o.max_prefix_action != n.max_prefix_action,
            "max_prefix",
        ),
    ]);
    if !reset.is_empty() {
        return NeighborChange::Reset(reset);
    }
    let policy = changed(&[
        (o.import != n.import, "import"),
        (o.export != n.export, "export"),
        (o.prepend != n.prepend, "prepend"),
        (o.med != n.med, "med"),
        (o.max_advertise != n.max_advertise, "max_advertise"),
    ]);
    if policy.is_empty() {
        NeighborChange::Same
    } else {
        NeighborChange::Policy(policy)
    }
}

fn bgp_plan(o: &bh_config::Bgp, n: &bh_config::Bgp, recreated: &BTreeSet<&str>) -> BgpPlan {
    let mut plan = BgpPlan::default();
    for on in &o.neighbors {
        if !n.neighbors.iter().any(|x| x.address == on.address) {
            plan.removed.push(on.address);
        }
    }
    for nn in &n.neighbors {
        let Some(on) = o.neighbors.iter().find(|x| x.address == nn.address) else {
            plan.added.push(nn.address);
            continue;
        };
        let over_recreated = nn.tunnel.as_deref().is_some_and(|t| recreated.contains(t));
        match neighbor_change(on, nn) {
            NeighborChange::Reset(mut why) => {
                if over_recreated {
                    why.push("its tunnel");
                }
                plan.reset.push((nn.address, why));
            }
            _ if over_recreated => plan.reset.push((nn.address, vec!["its tunnel"])),
            NeighborChange::Policy(why) => plan.policy.push((nn.address, why)),
            NeighborChange::Same => {}
        }
    }
    let key = |p: &Prefix| p.to_string();
    let old: BTreeSet<String> = o.advertise.iter().map(key).collect();
    let new: BTreeSet<String> = n.advertise.iter().map(key).collect();
    if old != new {
        plan.advertise = Some((
            n.advertise
                .iter()
                .filter(|p| !old.contains(&key(p)))
                .copied()
                .collect(),
            o.advertise
                .iter()
                .filter(|p| !new.contains(&key(p)))
                .copied()
                .collect(),
        ));
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const PSK_A: &str = "bh_Interop.Key_0123456789abcdefgh";

    fn load(text: &str) -> Config {
        const SRC: &str = "/etc/bridgehead/bridgehead.toml";
        let meta = bh_config::FileMeta {
            mode: 0o600,
            uid: 1000,
        };
        let mut files = bh_config::MemFiles::new();
        files.insert(SRC, meta, b"");
        let ctx = bh_config::LoadCtx {
            online_cores: 2,
            euid: 1000,
            files: &files,
        };
        bh_config::parse(Path::new(SRC), text, &ctx).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Two IKE tunnels, a manual one, BGP with two neighbors; `edit` changes the text.
    fn base() -> String {
        format!(
            "[appliance]\nprivate_ip = \"10.0.1.4\"\npublic_ip = \"203.0.113.10\"\n\n\
             [dataplane]\nworkers = 2\n\n\
             [[tunnel]]\nname = \"a\"\npeer = \"198.51.100.1\"\ninside = [\"169.254.10.2/30\"]\n\
             routes = [\"10.2.0.0/16\"]\npsk = \"{PSK_A}\"\n\n\
             [[tunnel]]\nname = \"b\"\npeer = \"198.51.100.2\"\ninside = [\"169.254.11.2/30\"]\n\
             psk = \"{PSK_A}\"\n\n\
             [[tunnel]]\nname = \"m\"\npeer = \"198.51.100.3\"\ninside = [\"169.254.12.2/30\"]\n\n\
             [tunnel.manual]\nsuite = \"aes256gcm16\"\noutbound_spi = 0x1001\ninbound_spi = 0x2002\n\
             outbound_key = \"{k1}\"\ninbound_key = \"{k2}\"\n\n\
             [bgp]\nasn = 65010\nadvertise = [\"10.0.0.0/16\"]\n\n\
             [[bgp.neighbor]]\naddress = \"169.254.10.1\"\nasn = 64512\ntunnel = \"a\"\n\n\
             [[bgp.neighbor]]\naddress = \"169.254.11.1\"\nasn = 64513\ntunnel = \"b\"\n",
            k1 = "11".repeat(36),
            k2 = "22".repeat(36),
        )
    }

    fn diff(new: &str) -> Plan {
        plan(&load(&base()), load(new), false)
    }

    #[test]
    fn the_same_file_changes_nothing() {
        let p = diff(&base());
        assert!(p.is_empty(), "{:?}", p.lines());
        assert!(p.restart.is_empty());
    }

    #[test]
    fn a_psk_change_renegotiates_only_that_tunnel() {
        let text = base().replacen(
            &format!("psk = \"{PSK_A}\"\n\n[[tunnel]]\nname = \"m\""),
            "psk = \"another_Key.0123456789\"\n\n[[tunnel]]\nname = \"m\"",
            1,
        );
        let p = diff(&text);
        assert_eq!(
            p.tunnels,
            vec![TunnelPlan {
                name: "b".into(),
                action: TunnelAction::Update {
                    ike: vec!["psk"],
                    manual: false,
                    peer: false,
                    routes_add: vec![],
                    routes_remove: vec![],
                },
            }]
        );
        assert!(p.bgp.is_empty(), "the session over b is not reset");
        assert_eq!(
            p.lines(),
            vec!["tunnel b: IKE SA renegotiated (psk changed)"]
        );
    }

    #[test]
    fn proposals_lifetimes_dpd_initiate_and_peer_renegotiate() {
        let text = base().replacen(
            "psk = \"bh_Interop.Key_0123456789abcdefgh\"\n\n[[tunnel]]\nname = \"b\"",
            "psk = \"bh_Interop.Key_0123456789abcdefgh\"\n\n[tunnel.ike]\nproposals = [\"aes128gcm16-prfsha256-ecp256\"]\n\
             child_lifetime = 600\ndpd_interval = 5\ninitiate = false\n\n[[tunnel]]\nname = \"b\"",
            1,
        );
        let text = text.replace("198.51.100.1", "198.51.100.9");
        let p = diff(&text);
        let TunnelAction::Update { ike, peer, .. } = &p.tunnels[0].action else {
            panic!("{:?}", p.tunnels)
        };
        assert_eq!(p.tunnels[0].name, "a");
        assert!(*peer);
        for want in [
            "peer",
            "ike.proposals",
            "ike lifetimes",
            "ike DPD",
            "ike.initiate",
        ] {
            assert!(ike.contains(&want), "{want}: {ike:?}");
        }
        assert!(!ike.contains(&"psk"));
    }

    #[test]
    fn tunnels_added_removed_and_recreated() {
        // b removed (with its neighbor), c added, a's inside changed.
        let mut text = base();
        let b_start = text.find("[[tunnel]]\nname = \"b\"").unwrap();
        let b_end = text.find("[[tunnel]]\nname = \"m\"").unwrap();
        text.replace_range(
            b_start..b_end,
            &format!(
                "[[tunnel]]\nname = \"c\"\npeer = \"198.51.100.7\"\ninside = [\"169.254.13.2/30\"]\npsk = \"{PSK_A}\"\n\n"
            ),
        );
        let n_start = text
            .find("[[bgp.neighbor]]\naddress = \"169.254.11.1\"")
            .unwrap();
        text.truncate(n_start);
        let text = text.replace("169.254.10.2/30", "169.254.10.6/30");
        let p = diff(&text);
        let actions: Vec<(&str, &TunnelAction)> = p
            .tunnels
            .iter()
            .map(|t| (t.name.as_str(), &t.action))
            .collect();
        assert_eq!(
            actions,
            vec![
                ("b", &TunnelAction::Remove),
                ("a", &TunnelAction::Recreate(vec!["inside"])),
                ("c", &TunnelAction::Add),
            ]
        );
        assert_eq!(
            p.bgp.removed,
            vec!["169.254.11.1".parse::<IpAddr>().unwrap()]
        );
        // The neighbor over the re-created tunnel is reset.
        assert_eq!(
            p.bgp.reset,
            vec![("169.254.10.1".parse().unwrap(), vec!["its tunnel"])]
        );
    }

    #[test]
    fn routes_and_manual_keys_change_in_place() {
        let text = base()
            .replace("routes = [\"10.2.0.0/16\"]", "routes = [\"10.3.0.0/16\"]")
            .replace("inbound_spi = 0x2002", "inbound_spi = 0x2003");
        let p = diff(&text);
        assert_eq!(
            p.lines(),
            vec![
                "tunnel a: route 10.3.0.0/16 added; route 10.2.0.0/16 removed",
                "tunnel m: manual SAs replaced",
            ]
        );
    }

    #[test]
    fn neighbor_changes_reset_or_apply_policy_and_advertise_is_live() {
        let text = base()
            .replace(
                "asn = 64512\ntunnel = \"a\"\n",
                "asn = 64512\ntunnel = \"a\"\nexport = [\"10.0.0.0/8 le 24\"]\nprepend = 2\n",
            )
            .replace(
                "asn = 64513\ntunnel = \"b\"\n",
                "asn = 64513\ntunnel = \"b\"\nhold_time = 30\n",
            )
            .replace(
                "advertise = [\"10.0.0.0/16\"]",
                "advertise = [\"10.0.0.0/16\", \"10.77.0.0/24\"]",
            )
            + "\n[[bgp.neighbor]]\naddress = \"169.254.12.1\"\nasn = 64514\ntunnel = \"m\"\n";
        let p = diff(&text);
        assert!(p.tunnels.is_empty());
        let b = &p.bgp;
        assert_eq!(b.added, vec!["169.254.12.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            b.reset,
            vec![("169.254.11.1".parse().unwrap(), vec!["hold_time"])]
        );
        assert_eq!(
            b.policy,
            vec![("169.254.10.1".parse().unwrap(), vec!["export", "prepend"])]
        );
        assert_eq!(
            b.advertise,
            Some((
                vec![Prefix {
                    addr: "10.77.0.0".parse().unwrap(),
                    len: 24
                }],
                vec![]
            ))
        );
    }

    #[test]
    fn restart_only_settings_are_reported_and_held() {
        let text = base()
            .replace("workers = 2", "workers = 3")
            .replace("private_ip = \"10.0.1.4\"", "private_ip = \"10.0.1.5\"")
            .replace("asn = 65010", "asn = 65011\ntransit = true")
            .replace(
                "routes = [\"10.2.0.0/16\"]",
                "routes = [\"10.2.0.0/16\"]\nencap = \"esp\"",
            )
            + "\n";
        let p = diff(&text);
        assert_eq!(p.restart.len(), 5, "{:#?}", p.restart);
        assert!(p.restart[0].starts_with("dataplane.workers: 2 -> 3 needs a restart"));
        assert!(p.restart[1].starts_with("appliance.private_ip: 10.0.1.4 -> 10.0.1.5"));
        assert!(p.restart[2].starts_with("bgp.asn: 65010 -> 65011"));
        assert!(p.restart[3].starts_with("bgp.transit: false -> true"));
        assert!(p.restart[4].starts_with("tunnel a: encap = \"esp\" needs a restart"));
        // Held at the running values, and nothing else changes.
        assert_eq!(p.effective.dataplane.workers, 2);
        assert_eq!(p.effective.bgp.as_ref().unwrap().asn, 65010);
        assert!(!p.effective.bgp.as_ref().unwrap().transit);
        assert_eq!(p.effective.tunnels[0].encap, Encap::Udp);
        assert!(p.is_empty(), "{:?}", p.lines());
        // With the raw socket open, the encapsulation change re-creates the tunnel.
        let p = plan(&load(&base()), load(&text), true);
        assert_eq!(
            p.tunnels[0].action,
            TunnelAction::Recreate(vec!["encap", "mtu", "nat_keepalive"])
        );
    }

    #[test]
    fn a_tunnel_that_stops_being_down_by_design_is_recreated() {
        // Two Azure tunnels to one instance: only the first can come up. Removing it lets the
        // second run, so that one is re-created (started) although its own keys are the same.
        let head = "[appliance]\nprivate_ip = \"10.0.1.4\"\npublic_ip = \"203.0.113.10\"\n\n";
        let t = |name: &str, inside: &str| {
            format!(
                "[[tunnel]]\nname = \"{name}\"\ncloud = \"azure\"\npeer = \"198.51.100.2\"\n\
                 inside = [\"{inside}\"]\npsk = \"bh_Design.Key_0123456789\"\n\n"
            )
        };
        let both = format!(
            "{head}{}{}",
            t("azure0", "169.254.21.2/30"),
            t("azure2", "169.254.21.6/30")
        );
        let second = format!("{head}{}", t("azure2", "169.254.21.6/30"));
        let p = plan(&load(&both), load(&second), false);
        assert_eq!(
            p.tunnels,
            vec![
                TunnelPlan {
                    name: "azure0".into(),
                    action: TunnelAction::Remove
                },
                TunnelPlan {
                    name: "azure2".into(),
                    action: TunnelAction::Recreate(vec!["down by design"])
                },
            ]
        );
    }

    #[test]
    fn adding_or_removing_bgp_needs_a_restart() {
        let text = base();
        let no_bgp = &text[..text.find("[bgp]").unwrap()];
        let p = diff(no_bgp);
        assert_eq!(p.restart.len(), 1);
        assert!(p.effective.bgp.is_some());
        assert!(p.is_empty());
        let p = plan(&load(no_bgp), load(&text), false);
        assert_eq!(p.restart.len(), 1);
        assert!(p.effective.bgp.is_none());
    }
}
