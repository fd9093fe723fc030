//! The labs in network namespaces: the three-cloud lab that `bridgehead lab` runs
//! ([`clouds`], its daemons' configurations in `roles`), and here the two-site lab
//! (`bridgehead lab two-site`): two sites joined by a manual-key tunnel.
//!
//! ```text
//!  lana ──── gwa ──────── nat ──────────── gwb ──── lanb
//!  10.1.0.2  10.1.0.1     10.0.1.1         203.0.113.20   10.2.0.1  10.2.0.2
//!  fd01::2   fd01::1      203.0.113.1                      fd02::1   fd02::2
//!            wan 10.0.1.4 1:1 NAT 10.0.1.4 <-> 203.0.113.10
//!            bridgehead   raw ESP dropped  bridgehead
//! ```
//!
//! gwa sits behind 1:1 NAT as a cloud VM does, so ESP travels in UDP (RFC 3948). Each gateway
//! runs `bridgehead daemon` with tunnel `lab` (device `bh-lab`): inside 169.254.10.1/30 and
//! fd00:10::1/126 on gwa, .2 and ::2 on gwb; each routes the far LAN into the tunnel.
//!
//! The same topology serves the interop tests and the throughput bench. Everything it made is
//! removed when the [`Lab`] is dropped.

use std::fmt::Write as _;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bh_crypto::EspSuite;

use crate::netns::{Namespaces, run};

pub mod clouds;
mod roles;

/// The five hosts of the lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    /// LAN host of site A.
    LanA,
    /// Gateway of site A, behind NAT.
    GwA,
    /// The 1:1 NAT between the sites.
    Nat,
    /// Gateway of site B, on a public address.
    GwB,
    /// LAN host of site B.
    LanB,
}

impl Host {
    fn suffix(self) -> &'static str {
        match self {
            Self::LanA => "lana",
            Self::GwA => "gwa",
            Self::Nat => "nat",
            Self::GwB => "gwb",
            Self::LanB => "lanb",
        }
    }
}

/// Addresses of the lab.
pub mod addr {
    /// LAN host A.
    pub const LANA: &str = "10.1.0.2";
    /// LAN host A, IPv6.
    pub const LANA6: &str = "fd01::2";
    /// LAN host B.
    pub const LANB: &str = "10.2.0.2";
    /// LAN host B, IPv6.
    pub const LANB6: &str = "fd02::2";
    /// gwa's private WAN address (what its sockets bind).
    pub const GWA_PRIVATE: &str = "10.0.1.4";
    /// gwa's public address on the NAT.
    pub const GWA_PUBLIC: &str = "203.0.113.10";
    /// gwb's public address.
    pub const GWB_PUBLIC: &str = "203.0.113.20";
    /// gwa's tunnel inside address.
    pub const GWA_INSIDE: &str = "169.254.10.1";
    /// gwb's tunnel inside address.
    pub const GWB_INSIDE: &str = "169.254.10.2";
}

/// What to build.
#[derive(Clone, Debug)]
pub struct LabOptions {
    /// Namespace name prefix, unique per run (e.g. `bhl1234`).
    pub prefix: String,
    /// The ESP suite of the manual-key tunnel.
    pub suite: EspSuite,
    /// Extended sequence numbers.
    pub esn: bool,
    /// Workers per daemon.
    pub workers: usize,
    /// The bridgehead binary to run in the gateways.
    pub binary: PathBuf,
    /// Extra `RUST_LOG` filter for the daemons.
    pub log: String,
    /// Carry the tunnel in raw ESP (IP protocol 50) instead of ESP in UDP; the NAT then lets
    /// protocol 50 through (1:1 NAT needs no ports).
    pub raw_esp: bool,
    /// Device MTU to configure (`mtu =`), when larger than what ESP fits; the workers then
    /// enforce the real limit themselves.
    pub device_mtu: Option<u16>,
    /// Extra arguments for both `bridgehead daemon`s (e.g. `--metrics 127.0.0.1:9474`).
    pub daemon_args: Vec<String>,
}

impl LabOptions {
    /// Defaults: AES-GCM-256, no ESN, 2 workers, this binary.
    pub fn new(prefix: &str) -> Result<Self> {
        Ok(Self {
            prefix: prefix.to_owned(),
            suite: EspSuite::from_name("aes256gcm16").context("suite table")?,
            esn: false,
            workers: 2,
            binary: std::env::current_exe().context("locating the bridgehead binary")?,
            log: "info".into(),
            raw_esp: false,
            device_mtu: None,
            daemon_args: Vec::new(),
        })
    }
}

/// A built lab. Dropping it removes everything it made.
pub struct Lab {
    /// The namespaces and processes of the run.
    pub ns: Namespaces,
    /// What it was built with.
    pub opts: LabOptions,
    /// Scratch directory holding configs and control sockets (mode 0700).
    pub dir: PathBuf,
}

impl Lab {
    /// The namespace name of `host`.
    pub fn name(&self, host: Host) -> String {
        format!("{}-{}", self.opts.prefix, host.suffix())
    }

    /// The control socket of a gateway's daemon.
    pub fn control(&self, host: Host) -> PathBuf {
        self.dir.join(format!("{}.sock", host.suffix()))
    }

    /// Builds the namespaces, links, addresses, routes and NAT; no daemons yet.
    pub fn build(opts: LabOptions) -> Result<Self> {
        let dir = std::env::temp_dir().join(&opts.prefix);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        let mut lab = Self {
            ns: Namespaces::new(),
            opts,
            dir,
        };
        lab.wire().context("building the lab topology")?;
        lab.settle_ipv6(Duration::from_secs(5));
        Ok(lab)
    }

    /// Waits until duplicate address detection has finished for the link-local addresses of
    /// the new veths; until then IPv6 neighbour discovery and ICMPv6 errors are unreliable.
    fn settle_ipv6(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let busy = self.ns.names().iter().any(|n| {
                self.ns
                    .ip(n, &["-6", "addr", "show", "tentative"])
                    .map(|o| !o.trim().is_empty())
                    .unwrap_or(false)
            });
            if !busy {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wire(&mut self) -> Result<()> {
        let [lana, gwa, nat, gwb, lanb] =
            [Host::LanA, Host::GwA, Host::Nat, Host::GwB, Host::LanB].map(|h| self.name(h));
        for n in [&lana, &gwa, &nat, &gwb, &lanb] {
            self.ns.add(n)?;
        }
        let ns = &self.ns;
        ns.veth((&lana, "eth0"), (&gwa, "lan0"))?;
        ns.veth((&gwa, "wan0"), (&nat, "a0"))?;
        ns.veth((&nat, "b0"), (&gwb, "wan0"))?;
        ns.veth((&gwb, "lan0"), (&lanb, "eth0"))?;

        ns.addr(&lana, "eth0", "10.1.0.2/24")?;
        ns.addr(&lana, "eth0", "fd01::2/64")?;
        ns.ip(&lana, &["route", "add", "default", "via", "10.1.0.1"])?;
        ns.ip(&lana, &["-6", "route", "add", "default", "via", "fd01::1"])?;

        ns.addr(&gwa, "lan0", "10.1.0.1/24")?;
        ns.addr(&gwa, "lan0", "fd01::1/64")?;
        ns.addr(&gwa, "wan0", "10.0.1.4/24")?;
        ns.ip(&gwa, &["route", "add", "default", "via", "10.0.1.1"])?;

        ns.addr(&nat, "a0", "10.0.1.1/24")?;
        ns.addr(&nat, "b0", "203.0.113.1/24")?;
        ns.addr(&nat, "b0", "203.0.113.10/32")?;

        ns.addr(&gwb, "wan0", "203.0.113.20/24")?;
        ns.addr(&gwb, "lan0", "10.2.0.1/24")?;
        ns.addr(&gwb, "lan0", "fd02::1/64")?;
        ns.ip(&gwb, &["route", "add", "default", "via", "203.0.113.1"])?;

        ns.addr(&lanb, "eth0", "10.2.0.2/24")?;
        ns.addr(&lanb, "eth0", "fd02::2/64")?;
        ns.ip(&lanb, &["route", "add", "default", "via", "10.2.0.1"])?;
        ns.ip(&lanb, &["-6", "route", "add", "default", "via", "fd02::1"])?;

        for n in [&gwa, &nat, &gwb] {
            ns.sysctl(n, "net.ipv4.ip_forward", "1")?;
            ns.sysctl(n, "net.ipv6.conf.all.forwarding", "1")?;
            ns.sysctl(n, "net.ipv4.conf.all.rp_filter", "0")?;
            ns.sysctl(n, "net.ipv4.conf.default.rp_filter", "0")?;
        }
        // 1:1 NAT in front of gwa, as a cloud VM's public IP; raw ESP does not pass unless the
        // lab runs the tunnel over it.
        let esp_rule = if self.opts.raw_esp {
            ""
        } else {
            " ip protocol esp drop;"
        };
        let rules = format!(
            "table ip nat {{\n\
              chain pre {{ type nat hook prerouting priority dstnat; ip daddr 203.0.113.10 dnat to 10.0.1.4; }}\n\
              chain post {{ type nat hook postrouting priority srcnat; ip saddr 10.0.1.4 snat to 203.0.113.10; }}\n\
            }}\n\
            table ip filt {{\n\
              chain forward {{ type filter hook forward priority 0;{esp_rule} }}\n\
            }}\n"
        );
        let path = self.dir.join("nat.nft");
        std::fs::write(&path, rules)?;
        run(ns.exec(&nat, "nft").arg("-f").arg(&path))?;
        Ok(())
    }

    /// Writes both gateways' configs with fresh random keys and starts the daemons.
    pub fn start_daemons(&mut self) -> Result<()> {
        let s = self.opts.suite;
        let suite = s.name().context("suite has no name")?;
        let k1 = random_hex(s.key_len())?;
        let k2 = random_hex(s.key_len())?;
        let w = self.opts.workers;
        let esn = self.opts.esn;
        let encap = if self.opts.raw_esp { "esp" } else { "udp" };
        let mtu_line = self
            .opts
            .device_mtu
            .map(|m| format!("mtu = {m}\n"))
            .unwrap_or_default();
        let a = gateway_config(
            encap,
            addr::GWA_PRIVATE,
            addr::GWB_PUBLIC,
            &["169.254.10.1/30", "fd00:10::1/126"],
            &["10.2.0.0/16", "fd02::/64"],
            w,
            suite,
            esn,
            (0x1001, &k1),
            (0x2002, &k2),
        );
        let b = gateway_config(
            encap,
            addr::GWB_PUBLIC,
            addr::GWA_PUBLIC,
            &["169.254.10.2/30", "fd00:10::2/126"],
            &["10.1.0.0/16", "fd01::/64"],
            w,
            suite,
            esn,
            (0x2002, &k2),
            (0x1001, &k1),
        );
        for (host, mut text) in [(Host::GwA, a), (Host::GwB, b)] {
            text = text.replacen(
                "[tunnel.manual]",
                &format!("{mtu_line}\n[tunnel.manual]"),
                1,
            );
            let cfg = self.dir.join(format!("{}.toml", host.suffix()));
            write_secret(&cfg, &text)?;
            let log = std::fs::File::create(self.dir.join(format!("{}.log", host.suffix())))?;
            let mut cmd = self
                .ns
                .exec(&self.name(host), &self.opts.binary.to_string_lossy());
            cmd.arg("daemon")
                .arg("-c")
                .arg(&cfg)
                .arg("--control")
                .arg(self.control(host))
                .args(&self.opts.daemon_args)
                .env("RUST_LOG", &self.opts.log)
                .stdout(log.try_clone()?)
                .stderr(log);
            self.ns.spawn(host.suffix(), cmd)?;
        }
        for host in [Host::GwA, Host::GwB] {
            self.wait_ready(host, Duration::from_secs(10))?;
        }
        Ok(())
    }

    fn wait_ready(&mut self, host: Host, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if crate::control::request(&self.control(host), "status").is_ok() {
                return Ok(());
            }
            if !self.ns.is_running(host.suffix()) {
                bail!(
                    "bridgehead in {} exited:\n{}",
                    self.name(host),
                    self.log(host)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "bridgehead in {} not ready after {limit:?}:\n{}",
                    self.name(host),
                    self.log(host)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The daemon log of a gateway.
    pub fn log(&self, host: Host) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}.log", host.suffix()))).unwrap_or_default()
    }

    /// The daemon's status as JSON.
    pub fn status(&self, host: Host) -> Result<serde_json::Value> {
        let text = crate::control::request(&self.control(host), "status")?;
        serde_json::from_str(&text).context("status is not JSON")
    }

    /// Pings `dst` from `from`, `count` packets of `size` bytes; returns how many came back.
    pub fn ping(&self, from: Host, dst: &str, count: u32, size: u32) -> Result<u32> {
        let out = self
            .ns
            .exec(&self.name(from), "ping")
            .args(["-n", "-q", "-c", &count.to_string(), "-i", "0.05"])
            .args(["-W", "2", "-s", &size.to_string(), dst])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        // "3 packets transmitted, 3 received, ..."
        let received = text
            .lines()
            .find(|l| l.contains("transmitted"))
            .and_then(|l| l.split(", ").nth(1))
            .and_then(|p| p.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Ok(received)
    }

    /// Runs a bounded iperf3 TCP test from lana to lanb; returns (Gbit/s, retransmits).
    pub fn iperf(&mut self, seconds: u32, reverse: bool) -> Result<(f64, u64)> {
        let server = self.name(Host::LanB);
        let mut srv = self.ns.exec(&server, "iperf3");
        srv.args(["-s", "-1", "-B", addr::LANB])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        self.ns.spawn("iperf3-server", srv)?;
        std::thread::sleep(Duration::from_millis(300));
        let mut cli = self.ns.exec(&self.name(Host::LanA), "timeout");
        cli.args([
            &(seconds + 15).to_string(),
            "iperf3",
            "-c",
            addr::LANB,
            "-t",
            &seconds.to_string(),
            "-J",
        ]);
        if reverse {
            cli.arg("-R");
        }
        let out = run(&mut cli);
        self.ns.stop("iperf3-server", Duration::from_secs(1));
        let v: serde_json::Value = serde_json::from_str(&out?).context("iperf3 -J output")?;
        let end = &v["end"];
        let bps = end["sum_received"]["bits_per_second"]
            .as_f64()
            .context("iperf3 gave no sum_received")?;
        let retr = end["sum_sent"]["retransmits"].as_u64().unwrap_or(0);
        Ok((bps / 1e9, retr))
    }

    /// Sends raw bytes as one UDP datagram from inside `from` to `dst:port` (test traffic).
    pub fn send_udp(&self, from: Host, dst: &str, port: u16, payload: &[u8]) -> Result<()> {
        let script = "import socket,sys\n\
            s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
            s.sendto(bytes.fromhex(sys.argv[1]),(sys.argv[2],int(sys.argv[3])))\n";
        run(self.ns.exec(&self.name(from), "python3").args([
            "-c",
            script,
            &hex::encode(payload),
            dst,
            &port.to_string(),
        ]))?;
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.ns.teardown();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes a file that holds secrets: created with mode 0600.
pub fn write_secret(path: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

fn random_hex(len: usize) -> Result<zeroize::Zeroizing<String>> {
    let mut buf = zeroize::Zeroizing::new(vec![0u8; len]);
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(zeroize::Zeroizing::new(hex::encode(&*buf)))
}

fn gateway_config(
    encap: &str,
    bind: &str,
    peer: &str,
    inside: &[&str],
    routes: &[&str],
    workers: usize,
    suite: &str,
    esn: bool,
    out: (u32, &str),
    inb: (u32, &str),
) -> String {
    let list = |v: &[&str]| {
        v.iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut s = String::new();
    let _ = write!(
        s,
        "# bridgehead lab gateway (generated)\n\
         [appliance]\nprivate_ip = \"{bind}\"\n\n\
         [dataplane]\nworkers = {workers}\n\n\
         [[tunnel]]\nname = \"lab\"\npeer = \"{peer}\"\nencap = \"{encap}\"\n\
         inside = [{}]\nroutes = [{}]\n\n\
         [tunnel.manual]\nsuite = \"{suite}\"\nesn = {esn}\n\
         outbound_spi = {:#x}\ninbound_spi = {:#x}\n\
         outbound_key = \"{}\"\ninbound_key = \"{}\"\n",
        list(inside),
        list(routes),
        out.0,
        inb.0,
        out.1,
        inb.1,
    );
    s
}

/// `bridgehead lab two-site`: build, start, measure, print, clean up.
pub fn run_lab(opts: LabOptions, iperf_seconds: u32) -> Result<()> {
    if !is_root() {
        bail!("bridgehead lab needs root (it creates network namespaces)");
    }
    for tool in ["ip", "nft", "ping"] {
        if run(Command::new("which").arg(tool)).is_err() {
            bail!("bridgehead lab needs `{tool}`; run: sudo bash .ci/install-deps");
        }
    }
    println!(
        "bridgehead lab: two sites, manual-key tunnel {} (ESN {}, {}), {} worker(s) per gateway, gwa behind 1:1 NAT",
        opts.suite.name().unwrap_or("?"),
        if opts.esn { "on" } else { "off" },
        if opts.raw_esp {
            "raw ESP"
        } else {
            "ESP in UDP"
        },
        opts.workers
    );
    let mut lab = Lab::build(opts)?;
    println!("  namespaces: {}", lab.ns.names().join(" "));
    lab.start_daemons()?;
    println!(
        "  daemons up in {} and {}",
        lab.name(Host::GwA),
        lab.name(Host::GwB)
    );

    let mut failures = 0;
    for (label, from, dst) in [
        ("IPv4 lana -> lanb", Host::LanA, addr::LANB),
        ("IPv4 lanb -> lana", Host::LanB, addr::LANA),
        ("IPv6 lana -> lanb", Host::LanA, addr::LANB6),
        ("IPv6 lanb -> lana", Host::LanB, addr::LANA6),
    ] {
        let got = lab.ping(from, dst, 5, 56)?;
        println!("  ping {label:<18} {got}/5 replies");
        if got == 0 {
            failures += 1;
        }
    }
    let got = lab.ping(Host::LanA, addr::LANB, 3, 3000)?;
    println!("  ping 3000-byte (fragmented) lana -> lanb: {got}/3 replies");
    if iperf_seconds > 0 {
        if run(Command::new("which").arg("iperf3")).is_ok() {
            let (g, r) = lab.iperf(iperf_seconds, false)?;
            println!(
                "  iperf3 TCP lana -> lanb, {iperf_seconds} s: {g:.2} Gbit/s ({r} retransmits)"
            );
            let (g, r) = lab.iperf(iperf_seconds, true)?;
            println!(
                "  iperf3 TCP lanb -> lana, {iperf_seconds} s: {g:.2} Gbit/s ({r} retransmits)"
            );
        } else {
            println!("  iperf3 not installed: throughput not measured");
        }
    }
    for host in [Host::GwA, Host::GwB] {
        let st = lab.status(host)?;
        println!("\n  status of {}:", lab.name(host));
        for line in crate::status::render(&st).lines() {
            println!("    {line}");
        }
    }
    drop(lab);
    println!("\n  cleaned up: namespaces deleted, daemons stopped");
    if failures > 0 {
        bail!("{failures} ping direction(s) failed");
    }
    Ok(())
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}
