//! `bridgehead lab`: the three-cloud topology of the seed article, in network namespaces.
//!
//! ```text
//!  AWS VPC 172.16.0.0/16        Azure VNet 192.168.0.0/16     GCP VPC 10.0.1.0/24
//!  awsvpc 172.16.1.10           azvnet 192.168.1.10           gcpvpc 10.0.1.10
//!   | bridge, ECMP default       | bridge, ECMP default         | default via .1
//!  aws1 .5       aws2 .6        az0 .4         az1 .5         gcprt 10.0.1.1, 169.254.7.1/30
//!  AS 64512: inside .1 of       AS 65515: APIPA .1 of          Cloud Router, AS 64514, BGP only
//!  169.254.10/30 169.254.11/30  169.254.21/30  169.254.22/30    | proxy ARP for .2, TTL kept
//!  198.51.100.11 .12            198.51.100.21  .22            gcpgw 198.51.100.31 (IKE + ESP)
//!   |             |              |              |               |
//!  inet: the internet, a bridge on 198.51.100.0/24 (router .1), and the appliance's 1:1 NAT
//!   |   203.0.113.10 <-> 10.10.0.4, raw ESP dropped
//!  appl 10.10.0.4: the appliance, AS 65010, tunnels aws1 aws2 azure0 azure1 gcp0
//!       (cloud = "aws" | "azure" | "gcp", inside .2 of each /30), BGP transit
//! ```
//!
//! Every gateway is a `bridgehead daemon` with one worker: AWS's two tunnel endpoints of a VPN
//! connection (each with its own public IP; one process each, because bridgehead tells IKE
//! peers apart by their address alone, so one process cannot answer two tunnels from the same
//! customer gateway), Azure's two active-active instances, GCP's VPN gateway (IKE and ESP
//! only) and GCP's Cloud Router (BGP only), configured as the `roles` module beside this one
//! describes. The appliance starts every IKE SA and, towards Azure, every BGP session. Each
//! cloud advertises its LAN; the appliance installs the routes (protocol 248) and passes each
//! cloud's routes on to the others, so the LANs reach each other through it.
//!
//! GCP's gateway and router are two namespaces: the router's link to the gateway carries its
//! 169.254.7.1/30, the gateway answers ARP for the appliance's .2 (proxy ARP) and sends
//! everything from the router into the tunnel (a policy rule). In Google's network the router
//! sits right at the tunnel, so the gateway namespace gives the BGP packets between .1 and .2
//! back the TTL its forwarding takes (nftables): both ends keep the TTL 1 of a directly
//! connected eBGP session, and the appliance's configuration is what it would be against GCP.
//!
//! Needs root, iproute2 and nftables; nothing runs but bridgehead (and `ping`). [`CloudLab`]
//! removes every namespace and process it made when dropped. Not modelled: IPv6, a second VPN
//! connection per cloud, Azure's GatewaySubnet BGP addresses, rekeys (the lab is shorter than
//! every lifetime), anything on the appliance's own LAN.

use std::fmt::Write as _;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use zeroize::Zeroizing;

use super::roles::{self, IkeTunnel, Neighbor};
use super::write_secret;
use crate::netns::{Namespaces, run};

/// Addresses of the three-cloud lab.
pub mod addr {
    /// The appliance's private address (what its sockets bind).
    pub const APPLIANCE_PRIVATE: &str = "10.10.0.4";
    /// The appliance's public address on the 1:1 NAT.
    pub const APPLIANCE_PUBLIC: &str = "203.0.113.10";
    /// The internet router on the public segment.
    pub const INET: &str = "198.51.100.1";
    /// AWS's VPC.
    pub const AWS_VPC: &str = "172.16.0.0/16";
    /// Azure's VNet.
    pub const AZURE_VNET: &str = "192.168.0.0/16";
    /// GCP's VPC subnet.
    pub const GCP_VPC: &str = "10.0.1.0/24";
    /// The AWS LAN host.
    pub const AWS_HOST: &str = "172.16.1.10";
    /// The Azure LAN host.
    pub const AZURE_HOST: &str = "192.168.1.10";
    /// The GCP LAN host.
    pub const GCP_HOST: &str = "10.0.1.10";
    /// The Cloud Router's BGP address (`.1` of the GCP tunnel's inside /30).
    pub const GCP_ROUTER_BGP: &str = "169.254.7.1";
}

/// AS numbers.
pub mod asn {
    /// The appliance.
    pub const APPLIANCE: u32 = 65010;
    /// AWS's default Amazon-side ASN (fact sheet §1.3).
    pub const AWS: u32 = 64512;
    /// Azure's default ASN (§2.3).
    pub const AZURE: u32 = 65515;
    /// A private ASN for the Cloud Router (§3.3).
    pub const GCP: u32 = 64514;
}

/// The cloud a gateway belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cloud {
    /// AWS.
    Aws,
    /// Azure.
    Azure,
    /// Google Cloud.
    Gcp,
}

impl Cloud {
    /// The `cloud = "..."` word.
    pub fn word(self) -> &'static str {
        match self {
            Self::Aws => "aws",
            Self::Azure => "azure",
            Self::Gcp => "gcp",
        }
    }
}

/// One tunnel of the appliance and the cloud-side instance at its other end.
#[derive(Clone, Copy, Debug)]
pub struct TunnelPlan {
    /// The appliance's tunnel name (device `bh-<name>`).
    pub name: &'static str,
    /// The cloud.
    pub cloud: Cloud,
    /// The namespace suffix of the cloud-side bridgehead holding the tunnel.
    pub gateway: &'static str,
    /// The gateway's public address.
    pub public_ip: &'static str,
    /// The inside /30's network address; the cloud takes `.1`, the appliance `.2`.
    pub inside_net: [u8; 4],
    /// The cloud's BGP ASN.
    pub asn: u32,
}

impl TunnelPlan {
    fn host(&self, last: u8) -> String {
        let [a, b, c, d] = self.inside_net;
        format!("{a}.{b}.{c}.{}", d.saturating_add(last))
    }

    /// The cloud's inside address (its BGP address).
    pub fn cloud_inside(&self) -> String {
        self.host(1)
    }

    /// The appliance's inside address.
    pub fn appliance_inside(&self) -> String {
        self.host(2)
    }
}

/// The appliance's five tunnels.
pub const TUNNELS: [TunnelPlan; 5] = [
    TunnelPlan {
        name: "aws1",
        cloud: Cloud::Aws,
        gateway: "aws1",
        public_ip: "198.51.100.11",
        inside_net: [169, 254, 10, 0],
        asn: asn::AWS,
    },
    TunnelPlan {
        name: "aws2",
        cloud: Cloud::Aws,
        gateway: "aws2",
        public_ip: "198.51.100.12",
        inside_net: [169, 254, 11, 0],
        asn: asn::AWS,
    },
    TunnelPlan {
        name: "azure0",
        cloud: Cloud::Azure,
        gateway: "az0",
        public_ip: "198.51.100.21",
        inside_net: [169, 254, 21, 0],
        asn: asn::AZURE,
    },
    TunnelPlan {
        name: "azure1",
        cloud: Cloud::Azure,
        gateway: "az1",
        public_ip: "198.51.100.22",
        inside_net: [169, 254, 22, 0],
        asn: asn::AZURE,
    },
    TunnelPlan {
        name: "gcp0",
        cloud: Cloud::Gcp,
        gateway: "gcpgw",
        public_ip: "198.51.100.31",
        inside_net: [169, 254, 7, 0],
        asn: asn::GCP,
    },
];

/// A LAN of one cloud: its host's namespace suffix, address and the prefix advertised.
#[derive(Clone, Copy, Debug)]
pub struct Lan {
    /// The cloud.
    pub cloud: Cloud,
    /// Namespace suffix of the LAN host.
    pub host: &'static str,
    /// The LAN host's address.
    pub addr: &'static str,
    /// The prefix the cloud advertises.
    pub prefix: &'static str,
}

/// The three LANs.
pub const LANS: [Lan; 3] = [
    Lan {
        cloud: Cloud::Azure,
        host: "azvnet",
        addr: addr::AZURE_HOST,
        prefix: addr::AZURE_VNET,
    },
    Lan {
        cloud: Cloud::Aws,
        host: "awsvpc",
        addr: addr::AWS_HOST,
        prefix: addr::AWS_VPC,
    },
    Lan {
        cloud: Cloud::Gcp,
        host: "gcpvpc",
        addr: addr::GCP_HOST,
        prefix: addr::GCP_VPC,
    },
];

/// The bridgehead daemons, by namespace suffix: the appliance, then the cloud side.
pub const DAEMONS: [&str; 7] = ["appl", "aws1", "aws2", "az0", "az1", "gcpgw", "gcprt"];

/// The GCP gateway's device towards the Cloud Router, and the policy table that sends all the
/// router's traffic into the tunnel.
const GCP_GW_ROUTER_DEV: &str = "rt0";
const GCP_GW_TABLE: &str = "100";
/// The cloud-side tunnel's name (device `bh-onprem`).
const CLOUD_TUNNEL: &str = "onprem";

/// How long every BGP session must have been Established before the lab counts it. When both
/// ends open a connection at once (AWS and GCP do, like the appliance), RFC 4271 §6.8 has each
/// side close one of the two; if one side had already reached Established on the connection
/// the other closes (Cease, Connection Collision Resolution), the session goes down and comes
/// back a ConnectRetry later. That happens within milliseconds of Established.
pub const SETTLE: Duration = Duration::from_secs(2);

/// What to build.
#[derive(Clone, Debug)]
pub struct CloudLabOptions {
    /// Namespace name prefix, unique per run (e.g. `bhc1234`).
    pub prefix: String,
    /// The bridgehead binary to run in every namespace.
    pub binary: PathBuf,
    /// `RUST_LOG` for the daemons.
    pub log: String,
    /// Longest wait for tunnels, sessions and routes.
    pub converge: Duration,
    /// Set (by a signal handler) to end the wait early; the lab then cleans up and fails.
    pub interrupt: Arc<AtomicBool>,
}

impl CloudLabOptions {
    /// Defaults: this binary, log level info, 60 s to converge.
    pub fn new(prefix: &str) -> Result<Self> {
        Ok(Self {
            prefix: prefix.to_owned(),
            binary: std::env::current_exe().context("locating the bridgehead binary")?,
            log: "info".into(),
            converge: Duration::from_secs(60),
            interrupt: Arc::new(AtomicBool::new(false)),
        })
    }
}

/// A built three-cloud lab. Dropping it stops every daemon and deletes every namespace.
pub struct CloudLab {
    /// The namespaces and processes of the run.
    pub ns: Namespaces,
    /// What it was built with.
    pub opts: CloudLabOptions,
    /// Scratch directory with configs, PSK files, logs and control sockets (mode 0700).
    pub dir: PathBuf,
}

/// What the lab waits for, and what it found when it stopped waiting.
#[derive(Clone, Debug, Default)]
pub struct Convergence {
    /// Things not up yet, each named for a reader ("appliance tunnel aws1 down: ...").
    pub missing: Vec<String>,
}

/// One cell of the ping matrix.
#[derive(Clone, Debug)]
pub struct PingResult {
    /// The sending LAN.
    pub from: Lan,
    /// The LAN pinged.
    pub to: Lan,
    /// Echo requests sent.
    pub sent: u32,
    /// Replies received.
    pub received: u32,
}

impl CloudLab {
    /// The namespace name of `suffix` (a member of [`DAEMONS`], a LAN host, `inet`).
    pub fn name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.opts.prefix)
    }

    /// The control socket of the daemon in namespace `suffix`.
    pub fn control(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("{suffix}.sock"))
    }

    /// The log of the daemon in namespace `suffix`.
    pub fn log(&self, suffix: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{suffix}.log"))).unwrap_or_default()
    }

    /// Sends `req` (`status`, `bgp`, `routes`) to a daemon's control socket; the JSON reply.
    pub fn request(&self, suffix: &str, req: &str) -> Result<serde_json::Value> {
        let text = crate::control::request(&self.control(suffix), req)?;
        serde_json::from_str(&text).with_context(|| format!("{req} reply is not JSON"))
    }

    /// The IPv4 routes with protocol 248 (bridgehead's) in namespace `suffix`, as `ip route`
    /// prints them.
    pub fn kernel_routes(&self, suffix: &str) -> Result<String> {
        self.ns
            .ip(&self.name(suffix), &["-4", "route", "show", "proto", "248"])
    }

    /// Builds namespaces, links, addresses, routes and the NAT; no daemons yet.
    pub fn build(opts: CloudLabOptions) -> Result<Self> {
        let dir = std::env::temp_dir().join(&opts.prefix);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        let mut lab = Self {
            ns: Namespaces::new(),
            opts,
            dir,
        };
        lab.wire().context("building the three-cloud topology")?;
        Ok(lab)
    }

    fn wire(&mut self) -> Result<()> {
        let all = [
            "inet", "appl", "aws1", "aws2", "awsvpc", "az0", "az1", "azvnet", "gcpgw", "gcprt",
            "gcpvpc",
        ];
        for s in all {
            let n = self.name(s);
            self.ns.add(&n)?;
        }
        let n = |s: &str| self.name(s);
        let ns = &self.ns;
        let (inet, appl) = (n("inet"), n("appl"));
        for s in all {
            let name = n(s);
            ns.sysctl(&name, "net.ipv4.ip_forward", "1")?;
            ns.sysctl(&name, "net.ipv4.conf.all.rp_filter", "0")?;
            ns.sysctl(&name, "net.ipv4.conf.default.rp_filter", "0")?;
        }

        // The internet: one segment (a bridge in `inet`) for every cloud gateway's public IP.
        ns.ip(&inet, &["link", "add", "br0", "type", "bridge"])?;
        ns.ip(&inet, &["link", "set", "br0", "up"])?;
        ns.addr(&inet, "br0", &format!("{}/24", addr::INET))?;
        for t in TUNNELS {
            let gw = n(t.gateway);
            let port = format!("p-{}", t.gateway);
            ns.veth((&inet, &port), (&gw, "wan0"))?;
            ns.ip(&inet, &["link", "set", &port, "master", "br0"])?;
            ns.addr(&gw, "wan0", &format!("{}/24", t.public_ip))?;
            ns.ip(&gw, &["route", "add", "default", "via", addr::INET])?;
        }

        // The appliance behind 1:1 NAT, as a cloud VM behind its public IP.
        ns.veth((&inet, "a0"), (&appl, "wan0"))?;
        ns.addr(&inet, "a0", "10.10.0.1/24")?;
        ns.addr(&appl, "wan0", &format!("{}/24", addr::APPLIANCE_PRIVATE))?;
        ns.ip(&appl, &["route", "add", "default", "via", "10.10.0.1"])?;
        let rules = format!(
            "table ip nat {{\n\
              chain pre {{ type nat hook prerouting priority dstnat; ip daddr {pub_ip} dnat to {priv_ip}; }}\n\
              chain post {{ type nat hook postrouting priority srcnat; ip saddr {priv_ip} snat to {pub_ip}; }}\n\
            }}\n\
            table ip filt {{\n\
              chain forward {{ type filter hook forward priority 0; ip protocol esp drop; }}\n\
            }}\n",
            pub_ip = addr::APPLIANCE_PUBLIC,
            priv_ip = addr::APPLIANCE_PRIVATE,
        );
        self.nft("inet", &rules)?;

        // AWS and Azure: the LAN host bridges its two gateways and spreads its flows over both
        // (ECMP), as the VPC and VNet route tables reach both tunnels.
        for (host, host_ip, gws) in [
            (
                "awsvpc",
                addr::AWS_HOST,
                [("aws1", "172.16.1.5"), ("aws2", "172.16.1.6")],
            ),
            (
                "azvnet",
                addr::AZURE_HOST,
                [("az0", "192.168.1.4"), ("az1", "192.168.1.5")],
            ),
        ] {
            let h = n(host);
            ns.ip(&h, &["link", "add", "br0", "type", "bridge"])?;
            ns.ip(&h, &["link", "set", "br0", "up"])?;
            ns.addr(&h, "br0", &format!("{host_ip}/24"))?;
            for (gw, gw_ip) in gws {
                let port = format!("p-{gw}");
                ns.veth((&h, &port), (&n(gw), "lan0"))?;
                ns.ip(&h, &["link", "set", &port, "master", "br0"])?;
                ns.addr(&n(gw), "lan0", &format!("{gw_ip}/24"))?;
            }
            ns.ip(
                &h,
                &[
                    "route", "add", "default", "nexthop", "via", gws[0].1, "nexthop", "via",
                    gws[1].1,
                ],
            )?;
        }

        // GCP: host -> Cloud Router -> VPN gateway -> tunnel.
        let (gw, rt, vpc) = (n("gcpgw"), n("gcprt"), n("gcpvpc"));
        ns.veth((&vpc, "eth0"), (&rt, "lan0"))?;
        ns.addr(&vpc, "eth0", &format!("{}/24", addr::GCP_HOST))?;
        ns.ip(&vpc, &["route", "add", "default", "via", "10.0.1.1"])?;
        ns.addr(&rt, "lan0", "10.0.1.1/24")?;
        ns.veth((&rt, "gw0"), (&gw, GCP_GW_ROUTER_DEV))?;
        ns.addr(&rt, "gw0", &format!("{}/30", addr::GCP_ROUTER_BGP))?;
        let dev = GCP_GW_ROUTER_DEV;
        ns.ip(
            &gw,
            &[
                "route",
                "add",
                &format!("{}/32", addr::GCP_ROUTER_BGP),
                "dev",
                dev,
            ],
        )?;
        ns.ip(
            &gw,
            &[
                "route",
                "add",
                addr::GCP_VPC,
                "via",
                addr::GCP_ROUTER_BGP,
                "dev",
                dev,
            ],
        )?;
        ns.sysctl(&gw, &format!("net.ipv4.conf.{dev}.proxy_arp"), "1")?;
        ns.sysctl(&gw, &format!("net.ipv4.neigh.{dev}.proxy_delay"), "0")?;
        ns.ip(
            &gw,
            &[
                "rule",
                "add",
                "iif",
                dev,
                "lookup",
                GCP_GW_TABLE,
                "priority",
                "100",
            ],
        )?;
        let rules = format!(
            "table ip gcp {{\n\
              chain pre {{ type filter hook prerouting priority mangle; \
                ip saddr {net} ip daddr {net} ip ttl 1 ip ttl set 2; }}\n\
            }}\n",
            net = "169.254.7.0/30"
        );
        self.nft("gcpgw", &rules)?;
        Ok(())
    }

    fn nft(&self, suffix: &str, rules: &str) -> Result<()> {
        let path = self.dir.join(format!("{suffix}.nft"));
        std::fs::write(&path, rules)?;
        run(self.ns.exec(&self.name(suffix), "nft").arg("-f").arg(&path))?;
        Ok(())
    }

    /// Writes every configuration ([`write_configs`]), starts the seven daemons and waits for
    /// their control sockets; then routes the GCP gateway's traffic from the Cloud Router into
    /// its tunnel.
    pub fn start_daemons(&mut self) -> Result<()> {
        write_configs(&self.dir)?;
        for suffix in DAEMONS {
            let cfg = self.dir.join(format!("{suffix}.toml"));
            let log = std::fs::File::create(self.dir.join(format!("{suffix}.log")))?;
            let mut cmd = self
                .ns
                .exec(&self.name(suffix), &self.opts.binary.to_string_lossy());
            cmd.arg("daemon")
                .arg("-c")
                .arg(&cfg)
                .arg("--control")
                .arg(self.control(suffix))
                .env("RUST_LOG", &self.opts.log)
                .stdout(log.try_clone()?)
                .stderr(log);
            self.ns.spawn(suffix, cmd)?;
        }
        for suffix in DAEMONS {
            self.wait_ready(suffix, Duration::from_secs(20))?;
        }
        let gw = self.name("gcpgw");
        self.ns.ip(
            &gw,
            &[
                "route",
                "add",
                "default",
                "dev",
                &format!("bh-{CLOUD_TUNNEL}"),
                "table",
                GCP_GW_TABLE,
            ],
        )?;
        Ok(())
    }

    fn wait_ready(&mut self, suffix: &str, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if crate::control::request(&self.control(suffix), "status").is_ok() {
                return Ok(());
            }
            if !self.ns.is_running(suffix) {
                bail!(
                    "bridgehead in {} exited:\n{}",
                    self.name(suffix),
                    self.log(suffix)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "bridgehead in {} not ready after {limit:?}:\n{}",
                    self.name(suffix),
                    self.log(suffix)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What is not up yet: appliance tunnels with a Child SA, BGP sessions Established on the
    /// appliance for at least [`SETTLE`], each LAN prefix in the appliance's kernel (protocol 248), and in every cloud
    /// router's kernel the other clouds' prefixes. Empty when the lab has converged.
    pub fn check(&self) -> Convergence {
        let mut missing = Vec::new();
        match self.request("appl", "status") {
            Ok(st) => {
                for t in TUNNELS {
                    let tun = st["tunnels"]
                        .as_array()
                        .and_then(|a| a.iter().find(|x| x["name"] == t.name));
                    if tun.is_none_or(|x| x["state"] != "up") {
                        let why = st["ike"]["tunnels"]
                            .as_array()
                            .and_then(|a| a.iter().find(|x| x["name"] == t.name))
                            .map(|x| {
                                let state = x["state"].as_str().unwrap_or("?");
                                match x["down_reason"].as_str() {
                                    Some(r) => format!("IKE {state}, {r}"),
                                    None => format!("IKE {state}"),
                                }
                            })
                            .unwrap_or_else(|| "not in the IKE status".into());
                        missing.push(format!("appliance tunnel {} down ({why})", t.name));
                    }
                }
                let empty = Vec::new();
                let neighbors = st["bgp"]["neighbors"].as_array().unwrap_or(&empty);
                for t in TUNNELS {
                    let ip = t.cloud_inside();
                    let n = neighbors.iter().find(|n| n["address"] == ip.as_str());
                    let state = n.and_then(|n| n["state"].as_str()).unwrap_or("missing");
                    let up = n.and_then(|n| n["uptime_secs"].as_u64()).unwrap_or(0);
                    if state == "Established" && up < SETTLE.as_secs() {
                        missing.push(format!(
                            "appliance BGP session to {ip} (tunnel {}) Established for only {up} s",
                            t.name
                        ));
                    } else if state != "Established" {
                        let err = n
                            .and_then(|n| n["last_error"].as_str())
                            .map(|e| format!(", last error: {e}"))
                            .unwrap_or_default();
                        missing.push(format!(
                            "appliance BGP session to {ip} (AS {}, tunnel {}) {state}{err}",
                            t.asn, t.name
                        ));
                    }
                }
            }
            Err(e) => missing.push(format!("appliance status: {e:#}")),
        }
        let prefixes_in = |suffix: &str| -> Vec<String> {
            self.kernel_routes(suffix)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
                .collect()
        };
        let have = prefixes_in("appl");
        for lan in LANS {
            if !have.iter().any(|p| p == lan.prefix) {
                missing.push(format!(
                    "appliance kernel has no route to {} ({}) with proto 248",
                    lan.prefix,
                    lan.cloud.word()
                ));
            }
        }
        // The cloud side: every gateway that routes for its LAN knows the other two LANs.
        for (suffix, own) in [
            ("aws1", Cloud::Aws),
            ("aws2", Cloud::Aws),
            ("az0", Cloud::Azure),
            ("az1", Cloud::Azure),
            ("gcprt", Cloud::Gcp),
        ] {
            let have = prefixes_in(suffix);
            for lan in LANS.iter().filter(|l| l.cloud != own) {
                if !have.iter().any(|p| p == lan.prefix) {
                    missing.push(format!(
                        "{suffix} ({}) has not learned {} from the appliance",
                        own.word(),
                        lan.prefix
                    ));
                }
            }
        }
        Convergence { missing }
    }

    /// Waits up to `opts.converge` for [`CloudLab::check`] to come back empty; the error lists
    /// what did not come up.
    pub fn wait_converged(&self) -> Result<Duration> {
        let start = Instant::now();
        let deadline = start + self.opts.converge;
        loop {
            let c = self.check();
            if c.missing.is_empty() {
                return Ok(start.elapsed());
            }
            if self.opts.interrupt.load(Ordering::Relaxed) {
                bail!("interrupted; not up yet:\n  {}", c.missing.join("\n  "));
            }
            for suffix in DAEMONS {
                // A daemon that died will not come up: say so at once.
                if crate::control::request(&self.control(suffix), "status").is_err() {
                    bail!(
                        "the bridgehead in {} stopped answering:\n{}",
                        self.name(suffix),
                        tail(&self.log(suffix), 30)
                    );
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "not converged after {:?}:\n  {}",
                    self.opts.converge,
                    c.missing.join("\n  ")
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Pings every LAN host from every other, all pairs at once: `count` echo requests each,
    /// 0.2 s apart, 2 s for the last reply, 10 s at most in all.
    pub fn ping_matrix(&self, count: u32) -> Vec<PingResult> {
        let mut running = Vec::new();
        for from in LANS {
            for to in LANS.iter().filter(|t| t.cloud != from.cloud) {
                let child = self
                    .ns
                    .exec(&self.name(from.host), "ping")
                    .args(["-n", "-q", "-c", &count.to_string(), "-i", "0.2"])
                    .args(["-W", "2", "-w", "10", to.addr])
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::null())
                    .spawn();
                running.push((from, *to, child));
            }
        }
        running
            .into_iter()
            .map(|(from, to, child)| {
                let out = child.and_then(std::process::Child::wait_with_output);
                let received = out.map_or(0, |o| replies(&String::from_utf8_lossy(&o.stdout)));
                PingResult {
                    from,
                    to,
                    sent: count,
                    received,
                }
            })
            .collect()
    }

    /// The appliance's views, as the CLI prints them: `bridgehead status`, `bridgehead bgp`,
    /// `bridgehead routes` (the same renderers, over the control socket), and its kernel's
    /// protocol-248 routes.
    pub fn views(&self) -> Result<String> {
        let mut s = String::new();
        let status = self.request("appl", "status")?;
        let bgp = self.request("appl", "bgp")?;
        let routes = self.request("appl", "routes")?;
        for (title, body) in [
            ("bridgehead status", crate::status::render(&status)),
            ("bridgehead bgp", crate::views::render_bgp(&bgp)),
            ("bridgehead routes", crate::views::render_routes(&routes)),
            ("ip route show proto 248", self.kernel_routes("appl")?),
        ] {
            let _ = writeln!(s, "\n== appliance: {title}");
            s.push_str(&body);
        }
        Ok(s)
    }
}

/// Writes the configuration of every daemon and the PSK files (fresh random keys, mode 0600)
/// into `dir` as `<namespace suffix>.toml`, and loads each back with the config loader, so a
/// mistake in the lab's own files stops it before anything starts. Returns the paths in
/// [`DAEMONS`] order.
pub fn write_configs(dir: &Path) -> Result<Vec<(&'static str, PathBuf)>> {
    let mut configs: Vec<(&'static str, String)> = Vec::new();
    // One key per tunnel, in a file at each end.
    for t in TUNNELS {
        let psk = random_psk()?;
        let line = Zeroizing::new(format!("{}\n", psk.as_str()));
        for side in ["appl", t.gateway] {
            write_secret(&dir.join(format!("{side}-{}.psk", t.name)), &line)?;
        }
    }
    let psk = |side: &str, t: &TunnelPlan| dir.join(format!("{side}-{}.psk", t.name));

    // The appliance: per tunnel only the cloud, the peer, our .2 and the key.
    let tunnels: Vec<(IkeTunnel, &str)> = TUNNELS
        .iter()
        .map(|t| {
            let tunnel = IkeTunnel {
                name: t.name,
                peer: t.public_ip,
                inside: Some(format!("{}/30", t.appliance_inside())),
                psk_file: psk("appl", t),
            };
            (tunnel, t.cloud.word())
        })
        .collect();
    let neighbors: Vec<Neighbor> = TUNNELS
        .iter()
        .map(|t| Neighbor {
            address: t.cloud_inside(),
            asn: t.asn,
            tunnel: Some(t.name),
        })
        .collect();
    configs.push(("appl", roles::appliance(&tunnels, &neighbors)));

    // The cloud side of each tunnel: the cloud's .1, our public IP as the peer.
    for t in &TUNNELS {
        let mut tunnel = IkeTunnel {
            name: CLOUD_TUNNEL,
            peer: addr::APPLIANCE_PUBLIC,
            inside: Some(format!("{}/30", t.cloud_inside())),
            psk_file: psk(t.gateway, t),
        };
        let mut to_appliance = Neighbor {
            address: t.appliance_inside(),
            asn: asn::APPLIANCE,
            tunnel: Some(CLOUD_TUNNEL),
        };
        let text = match t.cloud {
            Cloud::Aws => roles::aws_endpoint(t.public_ip, &tunnel, &to_appliance),
            Cloud::Azure => roles::azure_instance(t.public_ip, &tunnel, &to_appliance),
            Cloud::Gcp => {
                // The .1 is the Cloud Router's, one link behind the gateway, whose tunnel has
                // no inside address.
                to_appliance.tunnel = None;
                configs.push(("gcprt", roles::gcp_router(&to_appliance)));
                tunnel.inside = None;
                roles::gcp_gateway(t.public_ip, &tunnel)
            }
        };
        configs.push((t.gateway, text));
    }

    let mut paths = Vec::new();
    for (suffix, text) in &configs {
        let path = dir.join(format!("{suffix}.toml"));
        write_secret(&path, text)?;
        bh_config::load(&path).map_err(|e| {
            anyhow::anyhow!("the lab wrote an invalid configuration for {suffix}:\n{e}")
        })?;
        paths.push((*suffix, path));
    }
    paths.sort_by_key(|(s, _)| DAEMONS.iter().position(|d| d == s));
    Ok(paths)
}

impl Drop for CloudLab {
    fn drop(&mut self) {
        self.ns.teardown();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The replies counted in `ping -q`'s summary ("3 packets transmitted, 3 received, ...").
fn replies(summary: &str) -> u32 {
    summary
        .lines()
        .find(|l| l.contains("transmitted"))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|p| p.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A PSK every cloud accepts (fact sheet §4): 32 characters of `A-Za-z0-9._`, not starting
/// with `0`. The alphabet has 64 characters, so a byte's low six bits pick one without bias.
fn random_psk() -> Result<Zeroizing<String>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._";
    let mut bytes = Zeroizing::new([0u8; 64]);
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes[..])?;
    let mut psk = Zeroizing::new(String::with_capacity(32));
    for &b in bytes.iter() {
        let c = char::from(ALPHABET[usize::from(b & 63)]);
        if psk.is_empty() && c == '0' {
            continue;
        }
        psk.push(c);
        if psk.len() == 32 {
            return Ok(psk);
        }
    }
    bail!("not enough random bytes for a PSK")
}

/// `bridgehead lab`: builds the three clouds and the appliance, waits until every tunnel,
/// session and route is up, prints the appliance's views and the ping matrix, cleans up.
/// Fails if anything did not come up or a ping got no reply.
pub fn run_clouds(opts: CloudLabOptions) -> Result<()> {
    if !super::is_root() {
        bail!("bridgehead lab needs root (it creates network namespaces)");
    }
    for tool in ["ip", "nft", "ping"] {
        if run(Command::new("which").arg(tool)).is_err() {
            bail!("bridgehead lab needs `{tool}`; run: sudo bash .ci/install-deps");
        }
    }
    // Ctrl-C or SIGTERM ends the run through the clean-up below instead of leaving the
    // namespaces behind (the daemons, in our process group, stop on Ctrl-C themselves).
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&opts.interrupt))
            .context("installing the signal handler")?;
    }
    let interrupted = Arc::clone(&opts.interrupt);
    let started = Instant::now();
    println!(
        "bridgehead lab: the appliance (AS {}) behind 1:1 NAT, and three clouds played by bridgehead:",
        asn::APPLIANCE
    );
    println!(
        "  AWS   VPC  {:<15} 2 tunnel endpoints, AS {}, inside .1 of 169.254.10.0/30, 169.254.11.0/30",
        addr::AWS_VPC,
        asn::AWS
    );
    println!(
        "  Azure VNet {:<15} 2 active-active instances, AS {}, APIPA 169.254.21.1, 169.254.22.1",
        addr::AZURE_VNET,
        asn::AZURE
    );
    println!(
        "  GCP   VPC  {:<15} HA VPN gateway + Cloud Router (AS {}) at 169.254.7.1",
        addr::GCP_VPC,
        asn::GCP
    );
    let mut lab = CloudLab::build(opts)?;
    println!(
        "  {} namespaces ({}-*), starting {} daemons",
        lab.ns.names().len(),
        lab.opts.prefix,
        DAEMONS.len()
    );
    lab.start_daemons()?;
    let took = lab.wait_converged();
    let took = match took {
        Ok(t) => t,
        Err(e) if interrupted.load(Ordering::Relaxed) => {
            drop(lab);
            return Err(e.context("cleaned up"));
        }
        Err(e) => {
            // Show what the appliance saw before cleaning up.
            if let Ok(v) = lab.views() {
                print!("{v}");
            }
            println!(
                "\n  appliance log (last lines):\n{}",
                tail(&lab.log("appl"), 20)
            );
            drop(lab);
            return Err(e);
        }
    };
    println!(
        "  converged in {:.1} s: {n} tunnels up, {n} BGP sessions established, {} LAN prefixes installed",
        took.as_secs_f64(),
        LANS.len(),
        n = TUNNELS.len(),
    );
    print!("{}", lab.views()?);
    if interrupted.load(Ordering::Relaxed) {
        drop(lab);
        bail!("interrupted; cleaned up");
    }
    println!("\n== ping matrix (LAN host to LAN host, through the appliance)");
    let pings = lab.ping_matrix(3);
    let mut failed = 0;
    for p in &pings {
        let ok = p.received > 0;
        if !ok {
            failed += 1;
        }
        println!(
            "  {:<5} {:<14} -> {:<5} {:<14} {}/{} replies {}",
            p.from.cloud.word(),
            p.from.addr,
            p.to.cloud.word(),
            p.to.addr,
            p.received,
            p.sent,
            if ok { "ok" } else { "FAILED" }
        );
    }
    drop(lab);
    println!(
        "\n  cleaned up: daemons stopped, namespaces deleted ({:.1} s in all)",
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        bail!("{failed} of {} ping directions got no reply", pings.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory (mode 0700) removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!("bhc-unit-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
            Self(p)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn ping_summaries_are_read() {
        let ok = "--- 10.0.1.10 ping statistics ---\n\
                  3 packets transmitted, 3 received, 0% packet loss, time 402ms\n\
                  rtt min/avg/max/mdev = 0.912/1.040/1.208/0.123 ms\n";
        assert_eq!(replies(ok), 3);
        let lost = "3 packets transmitted, 1 received, +2 errors, 66.6667% packet loss";
        assert_eq!(replies(lost), 1);
        assert_eq!(replies("connect: Network is unreachable\n"), 0);
    }

    #[test]
    fn generated_psks_are_accepted_by_every_cloud() {
        for _ in 0..200 {
            let psk = random_psk().unwrap();
            assert_eq!(psk.len(), 32);
            for cloud in [
                bh_config::Cloud::Aws,
                bh_config::Cloud::Azure,
                bh_config::Cloud::Gcp,
            ] {
                assert!(
                    cloud.check_psk(psk.as_bytes()).is_ok(),
                    "{cloud} refuses a generated key"
                );
            }
        }
    }

    #[test]
    fn the_configurations_load_and_the_appliance_takes_the_cloud_presets() {
        let dir = Scratch::new("cfg");
        let paths = write_configs(&dir.0).unwrap();
        let names: Vec<&str> = paths.iter().map(|(s, _)| *s).collect();
        assert_eq!(names, DAEMONS);
        let load = |suffix: &str| {
            let (_, p) = paths.iter().find(|(s, _)| *s == suffix).unwrap();
            bh_config::load(p).unwrap_or_else(|e| panic!("{suffix}: {e}"))
        };

        let appl = load("appl");
        assert_eq!(appl.tunnels.len(), TUNNELS.len());
        for (t, plan) in appl.tunnels.iter().zip(TUNNELS) {
            assert_eq!(t.name, plan.name);
            assert_eq!(t.cloud.map(bh_config::Cloud::word), Some(plan.cloud.word()));
            // The IKE settings are the preset's, not written in the file.
            assert!(t.from_preset.contains(&"ike.proposals"), "{}", t.name);
            let ike = t.ike.as_ref().expect("IKE tunnel");
            assert!(ike.settings.initiate, "{}: the appliance initiates", t.name);
        }
        let bgp = appl.bgp.as_ref().expect("[bgp]");
        assert!(
            bgp.transit,
            "the appliance passes routes between the clouds"
        );
        assert_eq!(bgp.neighbors.len(), TUNNELS.len());
        for (n, plan) in bgp.neighbors.iter().zip(TUNNELS) {
            assert_eq!(n.address.to_string(), plan.cloud_inside());
            assert_eq!(n.asn, plan.asn);
            // Inherited from the tunnel's cloud: AWS 30 s, Azure 180 s, GCP 60 s; never passive.
            let hold = match plan.cloud {
                Cloud::Aws => 30,
                Cloud::Azure => 180,
                Cloud::Gcp => 60,
            };
            assert_eq!((n.hold_time, n.passive), (hold, false), "{}", n.address);
        }

        // The cloud side: responders; Azure waits for the appliance's BGP session; GCP's
        // gateway has no BGP and its router no tunnel.
        for plan in TUNNELS {
            let c = load(plan.gateway);
            let t = &c.tunnels[0];
            assert!(t.cloud.is_none(), "the cloud side is written out in full");
            assert!(!t.ike.as_ref().unwrap().settings.initiate);
            let passive = c.bgp.as_ref().map(|b| b.neighbors[0].passive);
            let want = match plan.cloud {
                Cloud::Aws => Some(false),
                Cloud::Azure => Some(true),
                Cloud::Gcp => None,
            };
            assert_eq!(passive, want, "{}", plan.gateway);
        }
        let rt = load("gcprt");
        assert!(rt.tunnels.is_empty());
        assert_eq!(rt.bgp.unwrap().asn, asn::GCP);

        // Both ends of each tunnel hold the same key, in files only their owner reads.
        for plan in TUNNELS {
            let read = |side: &str| {
                let p = dir.0.join(format!("{side}-{}.psk", plan.name));
                let mode = std::fs::metadata(&p).unwrap().permissions().mode();
                assert_eq!(mode & 0o077, 0, "{} is readable by others", p.display());
                std::fs::read(&p).unwrap()
            };
            assert_eq!(read("appl"), read(plan.gateway), "{}", plan.name);
        }
    }
}
