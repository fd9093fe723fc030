//! BIRD 2, FRR bgpd and GoBGP as BGP peers in a namespace.
//!
//! [`Bgpd::start`] writes the daemon's configuration for one [`BgpdConfig`] into a scratch
//! directory, starts it inside a namespace through
//! [`Namespaces::spawn`](crate::netns::Namespaces::spawn) (so it is stopped by PID with the
//! namespace), and the query methods ask the daemon itself about its state: `birdc`,
//! `vtysh ... json` and the `gobgp` CLI. How each is run (from
//! `shared/reference/peers-in-namespaces.md`):
//! - BIRD 2: `bird -f -c CONF -s SOCKET -P PIDFILE`; announcements are static routes, changed by
//!   rewriting the file and `birdc configure`; learned routes go to the kernel when asked.
//! - FRR 8.4: `zebra` and `bgpd` with `-u frr -g frr` and their own zserv, vty and pid paths;
//!   `no bgp ebgp-requires-policy`, so eBGP routes flow without route maps; announcements are
//!   `network` statements, changed through `vtysh`.
//! - GoBGP 3: `gobgpd -f CONF` (its API on 127.0.0.1 of the namespace); announcements with
//!   `gobgp global rib add`. GoBGP never installs routes in the kernel (its zebra client does
//!   not work with FRR 8.4).
//!
//! Not done here: iBGP route reflection, MD5, graceful restart knobs, route maps or filters
//! beyond "announce these prefixes" and "accept everything".

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::netns::{Namespaces, run};

/// Which daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// BIRD 2.
    Bird,
    /// FRR (zebra + bgpd).
    Frr,
    /// GoBGP.
    Gobgp,
}

impl Kind {
    /// A short name for labels and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bird => "bird",
            Self::Frr => "frr",
            Self::Gobgp => "gobgp",
        }
    }
}

/// One BGP neighbor of the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbor {
    /// The neighbor's address (IPv4 or IPv6; the session carries that family's unicast routes).
    pub address: IpAddr,
    /// The neighbor's AS (4-octet).
    pub asn: u32,
    /// Hold time offered, seconds (keepalive is a third of it).
    pub hold_time: u16,
    /// Only wait for the neighbor to connect.
    pub passive: bool,
    /// TCP MD5 signature password (RFC 2385), written into the daemon's configuration.
    pub md5_password: Option<String>,
}

/// What the daemon runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgpdConfig {
    /// Own AS (4-octet).
    pub asn: u32,
    /// BGP identifier.
    pub router_id: Ipv4Addr,
    /// Neighbors.
    pub neighbors: Vec<Neighbor>,
    /// Prefixes to originate (`"10.1.0.0/24"`, `"fd00:1::/48"`).
    pub announce: Vec<String>,
    /// Install learned routes into the namespace's kernel table main (BIRD and FRR only).
    pub kernel: bool,
    /// Advertise the graceful restart capability (RFC 4724) with this restart time, seconds.
    pub graceful_restart: Option<u16>,
}

/// A running daemon.
#[derive(Debug)]
pub struct Bgpd {
    kind: Kind,
    ns: String,
    dir: PathBuf,
    cfg: BgpdConfig,
    /// The BGP daemon's PID (FRR: bgpd's).
    pid: u32,
}

/// A neighbor's session as the daemon reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerState {
    /// The FSM state, normalised to RFC 4271 names (`Idle`, `Connect`, `Active`, `OpenSent`,
    /// `OpenConfirm`, `Established`).
    pub state: String,
    /// The daemon's own words about the last error or reset (for example "Received: Bad peer
    /// AS" in BIRD), empty when it says nothing.
    pub last_error: String,
    /// NOTIFICATION messages received from the neighbor, where the daemon counts them (GoBGP;
    /// it does not log the code of a NOTIFICATION that arrives before Established).
    pub notifications_received: Option<u64>,
}

fn bird_sock(dir: &Path) -> PathBuf {
    dir.join("bird.ctl")
}

impl Bgpd {
    /// Writes the configuration into `dir` (created if needed) and starts `kind` in `ns`,
    /// registered in `nss` as `label`. Waits until its control interface answers (10 s).
    pub fn start(
        nss: &mut Namespaces,
        kind: Kind,
        ns: &str,
        dir: &Path,
        label: &str,
        cfg: &BgpdConfig,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut me = Self {
            kind,
            ns: ns.to_owned(),
            dir: dir.to_owned(),
            cfg: cfg.clone(),
            pid: 0,
        };
        match kind {
            Kind::Bird => {
                me.write_bird()?;
                let mut c = nss.exec(ns, "bird");
                c.arg("-f")
                    .arg("-c")
                    .arg(dir.join("bird.conf"))
                    .arg("-s")
                    .arg(bird_sock(dir))
                    .arg("-P")
                    .arg(dir.join("bird.pid"));
                c.stdout(log_file(dir, "bird.out")?)
                    .stderr(log_file(dir, "bird.err")?);
                me.pid = nss.spawn(label, c)?;
            }
            Kind::Frr => {
                // FRR drops to user frr: its files must be writable by it.
                run(Command::new("chown").arg("frr:frr").arg(dir))?;
                std::fs::write(dir.join("zebra.conf"), format!("hostname {label}\n"))?;
                std::fs::write(dir.join("bgpd.conf"), me.frr_conf())?;
                run(Command::new("chown")
                    .arg("frr:frr")
                    .arg(dir.join("zebra.conf"))
                    .arg(dir.join("bgpd.conf")))?;
                for (daemon, conf) in [("zebra", "zebra.conf"), ("bgpd", "bgpd.conf")] {
                    let mut c = nss.exec(ns, &format!("/usr/lib/frr/{daemon}"));
                    c.args(["-u", "frr", "-g", "frr", "-f"])
                        .arg(dir.join(conf))
                        .arg("-z")
                        .arg(dir.join("zserv.api"))
                        .arg("-i")
                        .arg(dir.join(format!("{daemon}.pid")))
                        .arg("--vty_socket")
                        .arg(dir)
                        .args(["-P", "0"]); // no vty on TCP: vtysh uses the socket
                    c.stdout(log_file(dir, &format!("{daemon}.out"))?)
                        .stderr(log_file(dir, &format!("{daemon}.err"))?);
                    me.pid = nss.spawn(&format!("{label}-{daemon}"), c)?;
                    if daemon == "zebra" {
                        wait_for(Duration::from_secs(10), "zebra's zserv socket", || {
                            Ok(dir.join("zserv.api").exists())
                        })?;
                    }
                }
            }
            Kind::Gobgp => {
                std::fs::write(dir.join("gobgpd.toml"), me.gobgp_conf())?;
                let mut c = nss.exec(ns, "gobgpd");
                c.arg("-f")
                    .arg(dir.join("gobgpd.toml"))
                    .args(["-l", "debug", "--log-plain"]);
                c.stdout(log_file(dir, "gobgpd.log")?)
                    .stderr(log_file(dir, "gobgpd.err")?);
                me.pid = nss.spawn(label, c)?;
                for p in &cfg.announce {
                    // The API comes up a moment after start.
                    wait_for(Duration::from_secs(10), "gobgpd's API", || {
                        Ok(me.gobgp(nss, &["global"]).is_ok())
                    })?;
                    me.gobgp(
                        nss,
                        &["global", "rib", "add", "-a", afi(p), p, "origin", "igp"],
                    )?;
                }
            }
        }
        wait_for(
            Duration::from_secs(10),
            "the daemon's control interface",
            || Ok(me.ctl(nss).is_ok()),
        )
        .with_context(|| format!("{} did not come up; see {}", kind.name(), dir.display()))?;
        Ok(me)
    }

    /// The daemon.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The PID of the BGP daemon (for FRR, of bgpd), started by [`Bgpd::start`].
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// A cheap query that succeeds once the daemon answers.
    fn ctl(&self, nss: &Namespaces) -> Result<String> {
        match self.kind {
            Kind::Bird => self.birdc(nss, &["show", "status"]),
            Kind::Frr => self.vtysh(nss, "show bgp summary json"),
            Kind::Gobgp => self.gobgp(nss, &["global"]),
        }
    }

    fn birdc(&self, nss: &Namespaces, args: &[&str]) -> Result<String> {
        run(nss
            .exec(&self.ns, "birdc")
            .arg("-s")
            .arg(bird_sock(&self.dir))
            .args(args))
    }

    fn vtysh(&self, nss: &Namespaces, cmd: &str) -> Result<String> {
        run(nss
            .exec(&self.ns, "vtysh")
            .arg("--vty_socket")
            .arg(&self.dir)
            .args(["-c", cmd]))
    }

    /// FRR only: applies `lines` in `configure terminal` through vtysh (for what
    /// [`BgpdConfig`] does not express, e.g. `neighbor X ebgp-multihop 2`).
    pub fn configure(&self, nss: &Namespaces, lines: &[String]) -> Result<String> {
        if self.kind != Kind::Frr {
            bail!("configure: only FRR takes vtysh configuration lines");
        }
        self.vtysh_conf(nss, lines)
    }

    fn vtysh_conf(&self, nss: &Namespaces, lines: &[String]) -> Result<String> {
        let mut c = nss.exec(&self.ns, "vtysh");
        c.arg("--vty_socket")
            .arg(&self.dir)
            .args(["-c", "configure terminal"]);
        for l in lines {
            c.args(["-c", l]);
        }
        run(&mut c)
    }

    fn gobgp(&self, nss: &Namespaces, args: &[&str]) -> Result<String> {
        run(nss.exec(&self.ns, "gobgp").args(args))
    }

    /// The session with `neighbor` as the daemon reports it.
    pub fn peer_state(&self, nss: &Namespaces, neighbor: IpAddr) -> Result<PeerState> {
        match self.kind {
            Kind::Bird => {
                let name = bird_proto_name(neighbor);
                let out = self.birdc(nss, &["show", "protocols", "all", &name])?;
                // "n_10_0_0_1 BGP --- up 12:00:00 Established" and "Last error: ..." lines.
                let state = out
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("BGP state:"))
                    .map(|s| s.trim().to_owned())
                    .unwrap_or_default();
                let last_error = out
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("Last error:"))
                    .map(|s| s.trim().to_owned())
                    .unwrap_or_default();
                Ok(PeerState {
                    state,
                    last_error,
                    notifications_received: None,
                })
            }
            Kind::Frr => {
                let out = self.vtysh(nss, &format!("show bgp neighbors {neighbor} json"))?;
                let v: Value = serde_json::from_str(&out).context("vtysh json")?;
                let n = &v[neighbor.to_string()];
                let state = n["bgpState"].as_str().unwrap_or_default().to_owned();
                let mut last_error = String::new();
                for key in [
                    "lastNotificationReason",
                    "lastResetDueTo",
                    "lastErrorCodeSubcode",
                ] {
                    if let Some(s) = n[key].as_str() {
                        if !last_error.is_empty() {
                            last_error.push_str("; ");
                        }
                        last_error.push_str(s);
                    }
                }
                Ok(PeerState {
                    state: normalise_state(&state),
                    last_error,
                    notifications_received: None,
                })
            }
            Kind::Gobgp => {
                let out = self.gobgp(nss, &["neighbor", &neighbor.to_string(), "-j"])?;
                let v: Value = serde_json::from_str(&out).context("gobgp json")?;
                let st = &v["state"]["session_state"];
                let state = match st.as_u64() {
                    Some(1) => "Idle".to_owned(),
                    Some(2) => "Connect".to_owned(),
                    Some(3) => "Active".to_owned(),
                    Some(4) => "OpenSent".to_owned(),
                    Some(5) => "OpenConfirm".to_owned(),
                    Some(6) => "Established".to_owned(),
                    _ => normalise_state(st.as_str().unwrap_or_default()),
                };
                let received = &v["state"]["messages"]["received"];
                Ok(PeerState {
                    state,
                    last_error: String::new(),
                    notifications_received: received["notification"].as_u64(),
                })
            }
        }
    }

    /// Waits until the session with `neighbor` is Established (or `timeout` passes).
    pub fn wait_established(
        &self,
        nss: &Namespaces,
        neighbor: IpAddr,
        timeout: Duration,
    ) -> Result<()> {
        let mut last = None;
        let r = wait_for(timeout, "Established", || {
            let st = self.peer_state(nss, neighbor)?;
            let ok = st.state == "Established";
            last = Some(st);
            Ok(ok)
        });
        r.with_context(|| format!("{} session with {neighbor}: {last:?}", self.kind.name()))
    }

    /// The prefixes in the daemon's RIB that it learned over BGP (best paths), sorted.
    pub fn learned(&self, nss: &Namespaces) -> Result<Vec<String>> {
        let mut out = Vec::new();
        match self.kind {
            Kind::Bird => {
                let text =
                    self.birdc(nss, &["show", "route", "where", "source", "=", "RTS_BGP"])?;
                for l in text.lines() {
                    let first = l.split_whitespace().next().unwrap_or_default();
                    if first.contains('/') && first.parse::<PrefixText>().is_ok() {
                        out.push(first.to_owned());
                    }
                }
            }
            Kind::Frr => {
                for af in ["ipv4", "ipv6"] {
                    let text = self.vtysh(nss, &format!("show bgp {af} unicast json"))?;
                    let v: Value = serde_json::from_str(&text).context("vtysh json")?;
                    if let Some(routes) = v["routes"].as_object() {
                        for (p, paths) in routes {
                            let learned = paths.as_array().is_some_and(|a| {
                                a.iter()
                                    .any(|p| p["peerId"].as_str().is_some_and(|s| s != "(unspec)"))
                            });
                            if learned {
                                out.push(p.clone());
                            }
                        }
                    }
                }
            }
            Kind::Gobgp => {
                for af in ["ipv4", "ipv6"] {
                    let text = self.gobgp(nss, &["global", "rib", "-a", af, "-j"])?;
                    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    if let Some(map) = v.as_object() {
                        for (p, paths) in map {
                            let learned = paths.as_array().is_some_and(|a| {
                                a.iter()
                                    .any(|p| p["source-id"].as_str().is_some_and(|s| s != "<nil>"))
                            });
                            if learned {
                                out.push(p.clone());
                            }
                        }
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The daemon's own description of its route(s) to `prefix` with all attributes, as text
    /// (`birdc show route all`, `vtysh show bgp ... json`, `gobgp global rib ... -j`).
    pub fn route_detail(&self, nss: &Namespaces, prefix: &str) -> Result<String> {
        match self.kind {
            Kind::Bird => self.birdc(nss, &["show", "route", "all", "for", prefix]),
            Kind::Frr => self.vtysh(
                nss,
                &format!("show bgp {} unicast {prefix} json", afi(prefix)),
            ),
            Kind::Gobgp => self.gobgp(nss, &["global", "rib", "-a", afi(prefix), prefix, "-j"]),
        }
    }

    /// Starts originating `prefix`.
    pub fn announce(&mut self, nss: &Namespaces, prefix: &str) -> Result<()> {
        if !self.cfg.announce.iter().any(|p| p == prefix) {
            self.cfg.announce.push(prefix.to_owned());
        }
        self.apply_announce(nss, prefix, true)
    }

    /// Stops originating `prefix`.
    pub fn withdraw(&mut self, nss: &Namespaces, prefix: &str) -> Result<()> {
        self.cfg.announce.retain(|p| p != prefix);
        self.apply_announce(nss, prefix, false)
    }

    fn apply_announce(&self, nss: &Namespaces, prefix: &str, add: bool) -> Result<()> {
        match self.kind {
            Kind::Bird => {
                self.write_bird()?;
                let out = self.birdc(nss, &["configure"])?;
                if !out.contains("Reconfigured") && !out.contains("Reconfiguration in progress") {
                    bail!("birdc configure: {out}");
                }
            }
            Kind::Frr => {
                let no = if add { "" } else { "no " };
                self.vtysh_conf(
                    nss,
                    &[
                        format!("router bgp {}", self.cfg.asn),
                        format!("address-family {} unicast", afi(prefix)),
                        format!("{no}network {prefix}"),
                    ],
                )?;
            }
            Kind::Gobgp => {
                if add {
                    // ORIGIN IGP, as BIRD's and FRR's own networks have.
                    self.gobgp(
                        nss,
                        &[
                            "global",
                            "rib",
                            "add",
                            "-a",
                            afi(prefix),
                            prefix,
                            "origin",
                            "igp",
                        ],
                    )?;
                } else {
                    self.gobgp(nss, &["global", "rib", "del", "-a", afi(prefix), prefix])?;
                }
            }
        }
        Ok(())
    }

    /// The daemon's log so far (for failure messages and for finding a NOTIFICATION).
    pub fn log(&self) -> String {
        let files: &[&str] = match self.kind {
            Kind::Bird => &["bird.log", "bird.err"],
            Kind::Frr => &["bgpd.log", "bgpd.err", "zebra.err"],
            Kind::Gobgp => &["gobgpd.log", "gobgpd.err"],
        };
        let mut s = String::new();
        for f in files {
            if let Ok(t) = std::fs::read_to_string(self.dir.join(f)) {
                let _ = writeln!(s, "== {f}\n{t}");
            }
        }
        s
    }

    fn write_bird(&self) -> Result<()> {
        std::fs::write(self.dir.join("bird.conf"), self.bird_conf()).context("writing bird.conf")
    }

    fn bird_conf(&self) -> String {
        let c = &self.cfg;
        let mut s = String::new();
        let _ = writeln!(s, "log \"{}\" all;", self.dir.join("bird.log").display());
        let _ = writeln!(s, "router id {};", c.router_id);
        let _ = writeln!(s, "debug protocols {{ states, events }};");
        s.push_str("protocol device { scan time 2; }\n");
        for (v, af) in [("4", "ipv4"), ("6", "ipv6")] {
            if c.kernel {
                let _ = writeln!(
                    s,
                    "protocol kernel k{v} {{ {af} {{ import none; export where source = RTS_BGP; }}; merge paths on; }}"
                );
            }
            let _ = writeln!(s, "protocol static s{v} {{ {af};");
            for p in c.announce.iter().filter(|p| afi(p) == af) {
                let _ = writeln!(s, "  route {p} blackhole;");
            }
            s.push_str("}\n");
        }
        for n in &c.neighbors {
            let af = if n.address.is_ipv4() { "ipv4" } else { "ipv6" };
            let _ = writeln!(s, "protocol bgp {} {{", bird_proto_name(n.address));
            let _ = writeln!(s, "  local as {};", c.asn);
            let _ = writeln!(s, "  neighbor {} as {};", n.address, n.asn);
            let _ = writeln!(s, "  hold time {};", n.hold_time);
            let _ = writeln!(s, "  keepalive time {};", (n.hold_time / 3).max(1));
            let _ = writeln!(s, "  connect retry time 2;");
            let _ = writeln!(s, "  error wait time 1, 5;");
            if let Some(pw) = &n.md5_password {
                let _ = writeln!(s, "  password \"{pw}\";");
            }
            if n.passive {
                s.push_str("  passive on;\n");
            }
            if let Some(t) = c.graceful_restart {
                let _ = writeln!(s, "  graceful restart on;\n  graceful restart time {t};");
            }
            let _ = writeln!(
                s,
                "  {af} {{ import all; export where source = RTS_STATIC; }};"
            );
            s.push_str("}\n");
        }
        s
    }

    fn frr_conf(&self) -> String {
        let c = &self.cfg;
        let mut s = String::new();
        s.push_str("frr defaults traditional\nhostname bgpd\n");
        let _ = writeln!(
            s,
            "log file {} debugging",
            self.dir.join("bgpd.log").display()
        );
        s.push_str("debug bgp neighbor-events\n");
        let _ = writeln!(s, "router bgp {}", c.asn);
        let _ = writeln!(s, " bgp router-id {}", c.router_id);
        s.push_str(" no bgp ebgp-requires-policy\n no bgp network import-check\n");
        s.push_str(" no bgp default ipv4-unicast\n bgp bestpath as-path multipath-relax\n");
        if let Some(t) = c.graceful_restart {
            let _ = writeln!(
                s,
                " bgp graceful-restart\n bgp graceful-restart restart-time {t}"
            );
        }
        for n in &c.neighbors {
            let _ = writeln!(s, " neighbor {} remote-as {}", n.address, n.asn);
            let _ = writeln!(
                s,
                " neighbor {} timers {} {}",
                n.address,
                (n.hold_time / 3).max(1),
                n.hold_time
            );
            let _ = writeln!(s, " neighbor {} timers connect 2", n.address);
            if let Some(pw) = &n.md5_password {
                let _ = writeln!(s, " neighbor {} password {pw}", n.address);
            }
            if n.passive {
                let _ = writeln!(s, " neighbor {} passive", n.address);
            }
        }
        for af in ["ipv4", "ipv6"] {
            let _ = writeln!(s, " address-family {af} unicast");
            for p in c.announce.iter().filter(|p| afi(p) == af) {
                let _ = writeln!(s, "  network {p}");
            }
            s.push_str("  maximum-paths 8\n");
            for n in &c.neighbors {
                if (af == "ipv4") == n.address.is_ipv4() {
                    let _ = writeln!(s, "  neighbor {} activate", n.address);
                }
            }
            s.push_str(" exit-address-family\n");
        }
        if !c.kernel {
            // Routes still go to zebra; keep them out of the kernel by giving zebra no say.
            s.push_str("!\n");
        }
        s
    }

    fn gobgp_conf(&self) -> String {
        let c = &self.cfg;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "[global.config]\n  as = {}\n  router-id = \"{}\"\n  port = 179\n",
            c.asn, c.router_id
        );
        for n in &c.neighbors {
            let af = if n.address.is_ipv4() {
                "ipv4-unicast"
            } else {
                "ipv6-unicast"
            };
            let _ = writeln!(
                s,
                "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {}",
                n.address, n.asn
            );
            if let Some(pw) = &n.md5_password {
                let _ = writeln!(s, "    auth-password = \"{pw}\"");
            }
            let _ = writeln!(
                s,
                "  [neighbors.timers.config]\n    hold-time = {}\n    keepalive-interval = {}\n    connect-retry = 2",
                n.hold_time,
                (n.hold_time / 3).max(1)
            );
            let _ = writeln!(
                s,
                "  [neighbors.transport.config]\n    passive-mode = {}",
                n.passive
            );
            if let Some(t) = c.graceful_restart {
                let _ = writeln!(
                    s,
                    "  [neighbors.graceful-restart.config]\n    enabled = true\n    restart-time = {t}"
                );
            }
            let _ = writeln!(
                s,
                "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{af}\""
            );
            if c.graceful_restart.is_some() {
                s.push_str(
                    "    [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n",
                );
            }
            s.push('\n');
        }
        s
    }
}

/// `ipv4` or `ipv6` for a prefix in text.
fn afi(prefix: &str) -> &'static str {
    if prefix.contains(':') { "ipv6" } else { "ipv4" }
}

/// BIRD's protocol name for a neighbor: `n_` and the address with separators replaced.
fn bird_proto_name(a: IpAddr) -> String {
    format!("n_{}", a.to_string().replace(['.', ':'], "_"))
}

/// RFC 4271 spelling of the FSM states as daemons print them.
fn normalise_state(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    match lower.as_str() {
        "idle" => "Idle",
        "connect" => "Connect",
        "active" => "Active",
        "opensent" => "OpenSent",
        "openconfirm" => "OpenConfirm",
        "established" => "Established",
        _ => s,
    }
    .to_owned()
}

/// A prefix in text, for recognising route lines.
struct PrefixText;

impl std::str::FromStr for PrefixText {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (a, l) = s.split_once('/').ok_or(())?;
        a.parse::<IpAddr>().map_err(drop)?;
        l.parse::<u8>().map_err(drop)?;
        Ok(Self)
    }
}

fn log_file(dir: &Path, name: &str) -> Result<Stdio> {
    let f = std::fs::File::create(dir.join(name))
        .with_context(|| format!("creating {}", dir.join(name).display()))?;
    Ok(Stdio::from(f))
}

/// Polls `cond` every 200 ms until it holds or `timeout` passes.
pub fn wait_for(
    timeout: Duration,
    what: &str,
    mut cond: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match cond() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() >= deadline {
            match last_err {
                Some(e) => bail!("timed out after {timeout:?} waiting for {what}: {e:#}"),
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BgpdConfig {
        BgpdConfig {
            asn: 4_200_000_001,
            router_id: Ipv4Addr::new(10, 0, 0, 1),
            neighbors: vec![
                Neighbor {
                    address: "10.0.0.2".parse().unwrap(),
                    asn: 65002,
                    hold_time: 9,
                    passive: true,
                    md5_password: Some("Md5.Secret".into()),
                },
                Neighbor {
                    address: "fd00::2".parse().unwrap(),
                    asn: 65002,
                    hold_time: 30,
                    passive: false,
                    md5_password: None,
                },
            ],
            announce: vec!["10.1.0.0/24".into(), "fd00:1::/48".into()],
            kernel: true,
            graceful_restart: None,
        }
    }

    fn bgpd(kind: Kind) -> Bgpd {
        Bgpd {
            kind,
            ns: "x".into(),
            dir: "/tmp/x".into(),
            cfg: cfg(),
            pid: 0,
        }
    }

    #[test]
    fn frr_config_activates_each_neighbor_in_its_family_and_needs_no_policy() {
        let c = bgpd(Kind::Frr).frr_conf();
        assert!(c.contains("router bgp 4200000001\n"), "{c}");
        assert!(c.contains(" no bgp ebgp-requires-policy\n"), "{c}");
        assert!(c.contains(" neighbor 10.0.0.2 timers 3 9\n"), "{c}");
        assert!(c.contains(" neighbor 10.0.0.2 passive\n"), "{c}");
        assert!(!c.contains("fd00::2 passive"), "{c}");
        let v4 = c.split(" address-family ipv6").next().unwrap();
        assert!(v4.contains("  neighbor 10.0.0.2 activate") && !v4.contains("fd00::2 activate"));
        assert!(v4.contains("  network 10.1.0.0/24") && !v4.contains("fd00:1::/48"));
        let v6 = c.split(" address-family ipv6").nth(1).unwrap();
        assert!(v6.contains("  neighbor fd00::2 activate") && v6.contains("network fd00:1::/48"));
    }

    #[test]
    fn gobgp_config_names_families_and_timers() {
        let c = bgpd(Kind::Gobgp).gobgp_conf();
        assert!(c.contains("[global.config]\n  as = 4200000001\n"), "{c}");
        assert_eq!(c.matches("[[neighbors]]").count(), 2, "{c}");
        assert!(
            c.contains("neighbor-address = \"10.0.0.2\"\n    peer-as = 65002"),
            "{c}"
        );
        assert!(
            c.contains("hold-time = 9\n    keepalive-interval = 3"),
            "{c}"
        );
        assert!(c.contains("passive-mode = true"), "{c}");
        assert!(c.contains("afi-safi-name = \"ipv6-unicast\""), "{c}");
    }

    #[test]
    fn md5_password_is_set_for_its_neighbor_only_in_each_daemon() {
        let f = bgpd(Kind::Frr).frr_conf();
        assert!(
            f.contains(" neighbor 10.0.0.2 password Md5.Secret\n"),
            "{f}"
        );
        assert_eq!(f.matches("password").count(), 1, "{f}");
        let g = bgpd(Kind::Gobgp).gobgp_conf();
        assert_eq!(
            g.matches("auth-password = \"Md5.Secret\"").count(),
            1,
            "{g}"
        );
        let b = bgpd(Kind::Bird).bird_conf();
        assert_eq!(b.matches("  password \"Md5.Secret\";").count(), 1, "{b}");
    }

    #[test]
    fn graceful_restart_is_configured_in_each_daemon_when_asked() {
        let mut d = bgpd(Kind::Gobgp);
        assert!(!d.gobgp_conf().contains("graceful-restart"));
        d.cfg.graceful_restart = Some(60);
        let g = d.gobgp_conf();
        assert_eq!(g.matches("restart-time = 60").count(), 2, "{g}");
        assert_eq!(
            g.matches("[neighbors.afi-safis.mp-graceful-restart.config]")
                .count(),
            2
        );
        let f = d.frr_conf();
        assert!(f.contains(" bgp graceful-restart restart-time 60\n"), "{f}");
    }

    #[test]
    fn states_and_names() {
        assert_eq!(normalise_state("ESTABLISHED"), "Established");
        assert_eq!(normalise_state("opensent"), "OpenSent");
        assert_eq!(bird_proto_name("fd00::2".parse().unwrap()), "n_fd00__2");
        assert!("10.0.0.0/8".parse::<PrefixText>().is_ok());
        assert!("Table".parse::<PrefixText>().is_err());
        assert_eq!(afi("fd00::/8"), "ipv6");
    }
}
