//! strongSwan charon (kernel-libipsec) as an IKEv2 peer in a namespace.
//!
//! [`Charon::start`] writes a `strongswan.conf` and a `swanctl.conf` for one connection into a
//! scratch directory, starts `charon` inside a namespace through
//! [`Namespaces::spawn`](crate::netns::Namespaces::spawn) (so it is stopped by PID), waits for
//! its vici socket and runs `swanctl --load-all`. [`Charon::list_sas`] runs
//! `swanctl --list-sas --raw` and parses the answer into [`IkeSaInfo`] / [`ChildSaInfo`].
//!
//! How charon is run here (see `shared/reference/peers-in-namespaces.md`):
//! - one charon per namespace, under a private bind mount of `/run` (charon 5.9 hard-codes
//!   `/var/run/charon.pid`), with `STRONGSWAN_CONF` pointing at the generated file;
//! - plugins loaded explicitly, `kernel-libipsec` before `kernel-netlink`: ESP is strongSwan's
//!   userspace ESP over its `ipsec0` TUN device (this kernel has no ESP of its own), always in
//!   UDP;
//! - `kernel-netlink.fwmark` so that the table-220 route libipsec installs for a 0.0.0.0/0
//!   selector only matches marked packets (there are none) and does not swallow IKE itself;
//!   routes into the tunnel are added explicitly with [`Charon::route`];
//! - `kernel-libipsec.allow_peer_ts` so no /32 exclude routes are made.
//!
//! [`Profile`] holds the proposal sets and rules of the three clouds' gateways (facts in
//! `shared/reference/cloud-gateways.md` §1–§3), so a charon can stand in for AWS, Azure or GCP.
//!
//! Several connections per charon: [`Charon::start_many`], each under its own name.
//!
//! Not done here: certificates, IKEv1, IPv6 outer addresses.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::netns::{Namespaces, run};

/// The plugins charon loads, in order: `kernel-libipsec` before `kernel-netlink`.
const PLUGINS: &str = "random nonce openssl pem pkcs1 aes sha1 sha2 hmac gcm gmp kdf \
                       kernel-libipsec kernel-netlink socket-default vici";

/// The fwmark that keeps libipsec's table-220 routes out of the way (no packet carries it).
const FWMARK: &str = "0x7e570000/0xffff0000";

/// Who starts the connection once it is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAction {
    /// Wait for the peer (responder only), strongSwan `start_action = none`.
    None,
    /// Initiate as soon as the configuration is loaded (`start_action = start`).
    Start,
    /// Initiate when traffic needs the tunnel (`start_action = trap`).
    Trap,
}

impl StartAction {
    fn word(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Start => "start",
            Self::Trap => "trap",
        }
    }
}

/// A gateway's proposal sets, lifetimes and liveness rules, in strongSwan terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// A short label for logs (`aws`, `azure`, `gcp`, or a custom one).
    pub name: String,
    /// IKE SA proposals, strongSwan syntax (`aes256gcm16-prfsha256-ecp256`), in order.
    pub ike_proposals: Vec<String>,
    /// ESP proposals; a DH group in a proposal makes PFS part of it (the first Child SA, in
    /// IKE_AUTH, never has a KE: strongSwan drops the groups there).
    pub esp_proposals: Vec<String>,
    /// IKE SA rekey time.
    pub ike_rekey: Duration,
    /// Child SA rekey time.
    pub child_rekey: Duration,
    /// DPD interval (`dpd_delay`); zero disables DPD.
    pub dpd_delay: Duration,
}

impl Profile {
    /// AWS Site-to-Site VPN (§1): AES-CBC/GCM 128/256, SHA1/SHA2, DH 2 and 14–24 for IKE, the
    /// same ciphers for ESP with PFS required (every ESP proposal names DH groups), 28,800 s /
    /// 3,600 s, DPD 10 s.
    pub fn aws() -> Self {
        let dh = "modp1024-modp2048-modp3072-modp4096-modp6144-modp8192-ecp256-ecp384-ecp521-\
                  modp1024s160-modp2048s224-modp2048s256-ecp192-ecp224";
        Self {
            name: "aws".into(),
            ike_proposals: vec![
                format!("aes128-aes256-sha1-sha256-sha384-sha512-{dh}"),
                format!("aes128gcm16-aes256gcm16-prfsha1-prfsha256-prfsha384-prfsha512-{dh}"),
            ],
            esp_proposals: vec![
                format!("aes128-aes256-sha1-sha256-sha384-sha512-{dh}"),
                format!("aes128gcm16-aes256gcm16-{dh}"),
            ],
            ike_rekey: Duration::from_secs(28_800),
            child_rekey: Duration::from_secs(3_600),
            dpd_delay: Duration::from_secs(10),
        }
    }

    /// Azure VPN Gateway, default route-based policy (§2): IKE AES-CBC-256/128 with SHA1 or
    /// SHA-256 and MODP-1024 only; ESP without PFS (GCM-256, AES-256/SHA1, AES-256/SHA-256,
    /// AES-128/SHA1), exactly what Azure offers when it initiates or rekeys (no KE payload);
    /// 28,800 s / 27,000 s, DPD 45 s. (Azure's responder also accepts PFS offers; this profile
    /// does not, so a customer that requires PFS on rekeys fails here as it would against an
    /// Azure-initiated rekey.)
    pub fn azure_default() -> Self {
        Self {
            name: "azure".into(),
            ike_proposals: vec![
                "aes256-sha1-modp1024".into(),
                "aes256-sha256-modp1024".into(),
                "aes128-sha1-modp1024".into(),
                "aes128-sha256-modp1024".into(),
            ],
            esp_proposals: vec![
                "aes256gcm16".into(),
                "aes256-sha1".into(),
                "aes256-sha256".into(),
                "aes128-sha1".into(),
            ],
            ike_rekey: Duration::from_secs(28_800),
            child_rekey: Duration::from_secs(27_000),
            dpd_delay: Duration::from_secs(45),
        }
    }

    /// GCP HA VPN (§3): IKE AES-GCM or AES-CBC with SHA2/SHA1, DH 14, 19, 20, 15, 16, 2 …;
    /// ESP AES-GCM or AES-CBC with SHA-256/512/SHA1 and PFS required (DH in every ESP
    /// proposal); 36,000 s / 10,800 s; aggressive DPD.
    pub fn gcp() -> Self {
        let dh = "modp2048-ecp256-ecp384-modp2048s256-modp3072-modp4096-modp1024";
        Self {
            name: "gcp".into(),
            ike_proposals: vec![
                format!("aes128gcm16-aes256gcm16-prfsha256-prfsha384-prfsha512-prfsha1-{dh}"),
                format!("aes128-aes256-sha256-sha384-sha512-sha1-{dh}"),
            ],
            esp_proposals: vec![
                format!("aes128gcm16-aes256gcm16-{dh}"),
                format!("aes128-aes256-sha256-sha512-sha1-{dh}"),
            ],
            ike_rekey: Duration::from_secs(36_000),
            child_rekey: Duration::from_secs(10_800),
            dpd_delay: Duration::from_secs(10),
        }
    }

    /// A customer gateway that offers exactly one set: `ike` (e.g.
    /// `aes256gcm16-prfsha256-ecp256`) and `esp` (e.g. `aes256gcm16-ecp256`), as Google advises.
    pub fn single(name: &str, ike: &str, esp: &str) -> Self {
        Self {
            name: name.into(),
            ike_proposals: vec![ike.into()],
            esp_proposals: vec![esp.into()],
            ike_rekey: Duration::from_secs(3_600),
            child_rekey: Duration::from_secs(1_200),
            dpd_delay: Duration::from_secs(10),
        }
    }
}

/// One IKEv2 connection with a pre-shared key, route-based (0.0.0.0/0 both ways).
#[derive(Clone)]
pub struct SwanConn {
    /// The gateway's rules.
    pub profile: Profile,
    /// The address charon uses (`local_addrs`).
    pub local_addr: String,
    /// The local identity (ID_IPV4_ADDR when it is an address).
    pub local_id: String,
    /// The peer's address (`remote_addrs`).
    pub remote_addr: String,
    /// The identity the peer must present.
    pub remote_id: String,
    /// The pre-shared key (written to the 0600 `swanctl.conf` only).
    pub psk: String,
    /// Who starts.
    pub start: StartAction,
    /// Child SA traffic selectors (`local_ts`, `remote_ts`).
    pub ts: (String, String),
}

impl std::fmt::Debug for SwanConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwanConn")
            .field("profile", &self.profile.name)
            .field("local", &(&self.local_addr, &self.local_id))
            .field("remote", &(&self.remote_addr, &self.remote_id))
            .field("psk", &"<redacted>")
            .field("start", &self.start)
            .finish()
    }
}

impl SwanConn {
    /// The connection and Child SA name in `swanctl.conf`.
    pub const NAME: &'static str = "bh";

    /// The generated `swanctl.conf` (it holds the PSK).
    pub fn swanctl_conf(&self) -> String {
        self.swanctl_conf_named(Self::NAME)
    }

    /// The `swanctl.conf` of this connection under `name` (connection, Child SA and secret):
    /// several of them concatenated load as several connections, since strongSwan merges
    /// sections of the same name.
    pub fn swanctl_conf_named(&self, name: &str) -> String {
        let p = &self.profile;
        let mut s = String::new();
        let _ = write!(
            s,
            "# generated by bridgehead::peers::strongswan ({profile})\n\
             connections {{\n  {n} {{\n    version = 2\n    local_addrs = {la}\n    remote_addrs = {ra}\n\
             \x20   proposals = {ike}\n    rekey_time = {ir}s\n    over_time = {io}s\n    dpd_delay = {dpd}s\n\
             \x20   mobike = no\n    encap = no\n\
             \x20   local {{\n      auth = psk\n      id = {lid}\n    }}\n\
             \x20   remote {{\n      auth = psk\n      id = {rid}\n    }}\n\
             \x20   children {{\n      {n} {{\n        local_ts = {lts}\n        remote_ts = {rts}\n\
             \x20       esp_proposals = {esp}\n        rekey_time = {cr}s\n        life_time = {cl}s\n\
             \x20       start_action = {start}\n        dpd_action = restart\n        close_action = none\n\
             \x20     }}\n    }}\n  }}\n}}\n\
             secrets {{\n  ike-{n} {{\n    id-local = {lid}\n    id-remote = {rid}\n    secret = \"{psk}\"\n  }}\n}}\n",
            profile = p.name,
            n = name,
            la = self.local_addr,
            ra = self.remote_addr,
            ike = p.ike_proposals.join(","),
            ir = p.ike_rekey.as_secs(),
            io = margin(p.ike_rekey),
            dpd = p.dpd_delay.as_secs(),
            lid = self.local_id,
            rid = self.remote_id,
            lts = self.ts.0,
            rts = self.ts.1,
            esp = p.esp_proposals.join(","),
            cr = p.child_rekey.as_secs(),
            cl = p
                .child_rekey
                .as_secs()
                .saturating_add(margin(p.child_rekey)),
            start = self.start.word(),
            psk = self.psk.replace('\\', "\\\\").replace('"', "\\\""),
        );
        s
    }
}

/// The hard-lifetime margin after a rekey time: 10 %, at least 5 s. (strongSwan's own default
/// of 10 % rounds down to nothing for rekey times under 10 s, so an SA would expire instead of
/// being rekeyed.)
fn margin(rekey: Duration) -> u64 {
    (rekey.as_secs() / 10).max(5)
}

/// A charon running in a namespace.
pub struct Charon {
    netns: String,
    label: String,
    dir: PathBuf,
    pid: u32,
}

impl Charon {
    /// Writes the configuration into `dir` (created, mode 0700), starts charon in `netns` as
    /// process `label` of `ns`, waits up to `limit` for its vici socket and loads `conn`.
    pub fn start(
        ns: &mut Namespaces,
        netns: &str,
        label: &str,
        dir: &Path,
        conn: &SwanConn,
        limit: Duration,
    ) -> Result<Self> {
        Self::start_many(ns, netns, label, dir, &[(SwanConn::NAME, conn)], limit)
    }

    /// As [`Self::start`], with several connections, each under its name (connection and
    /// Child SA): for example an Azure gateway instance with one connection per local network
    /// gateway. [`Self::list_sas`] tells them apart by [`IkeSaInfo::name`].
    pub fn start_many(
        ns: &mut Namespaces,
        netns: &str,
        label: &str,
        dir: &Path,
        conns: &[(&str, &SwanConn)],
        limit: Duration,
    ) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir.join("run"))?;
        std::fs::create_dir_all(dir.join("swanctl"))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        let vici = dir.join("charon.vici");
        let log = dir.join("charon.log");
        let conf = format!(
            "# generated by bridgehead::peers::strongswan\n\
             charon {{\n  load = {PLUGINS}\n  install_routes = no\n\
             \x20 filelog {{\n    bh {{\n      path = {log}\n      default = 1\n      ike = 2\n      cfg = 2\n      time_format = %T\n      flush_line = yes\n    }}\n  }}\n\
             \x20 plugins {{\n    vici {{\n      socket = unix://{vici}\n    }}\n\
             \x20   kernel-netlink {{\n      fwmark = {FWMARK}\n    }}\n\
             \x20   kernel-libipsec {{\n      allow_peer_ts = yes\n    }}\n  }}\n}}\n\
             swanctl {{\n  load = random openssl pem pkcs1\n  socket = unix://{vici}\n}}\n",
            log = log.display(),
            vici = vici.display(),
        );
        std::fs::write(dir.join("strongswan.conf"), conf)?;
        let swanctl: String = conns
            .iter()
            .map(|(name, c)| c.swanctl_conf_named(name))
            .collect();
        crate::lab::write_secret(&dir.join("swanctl/swanctl.conf"), &swanctl)?;

        let out = std::fs::File::create(dir.join("charon.stdout"))?;
        let mut cmd = ns.exec(netns, "sh");
        cmd.arg("-c")
            .arg(format!(
                "mount --bind '{}' /run && exec /usr/lib/ipsec/charon",
                dir.join("run").display()
            ))
            .env("STRONGSWAN_CONF", dir.join("strongswan.conf"))
            .stdout(out.try_clone()?)
            .stderr(out);
        let pid = ns.spawn(label, cmd)?;
        let charon = Self {
            netns: netns.to_owned(),
            label: label.to_owned(),
            dir: dir.to_owned(),
            pid,
        };
        let deadline = Instant::now() + limit;
        while !vici.exists() {
            if !ns.is_running(label) {
                bail!("charon in {netns} exited:\n{}", charon.log());
            }
            if Instant::now() > deadline {
                bail!(
                    "charon in {netns}: no vici socket after {limit:?}:\n{}",
                    charon.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The socket appears a moment before vici accepts; retry the load briefly.
        let mut last = None;
        while Instant::now() < deadline {
            match run(&mut charon.swanctl(ns, &["--load-all", "--noprompt"])) {
                Ok(_) => return Ok(charon),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("swanctl --load-all timed out")))
            .with_context(|| format!("loading the configuration into charon in {netns}"))
    }

    /// `swanctl ARGS...` against this charon.
    pub fn swanctl(&self, ns: &Namespaces, args: &[&str]) -> Command {
        let mut c = ns.exec(&self.netns, "swanctl");
        c.args(args)
            .env("STRONGSWAN_CONF", self.dir.join("strongswan.conf"))
            .env("SWANCTL_DIR", self.dir.join("swanctl"));
        c
    }

    /// The process label in [`Namespaces`].
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Kills charon with SIGKILL, as a crash: no DELETE reaches the peer, which must notice
    /// by itself (DPD). Only the PID this launcher started is signalled.
    pub fn kill(&self, ns: &mut Namespaces) -> Result<()> {
        run(Command::new("kill").args(["-KILL", &self.pid.to_string()]))?;
        ns.stop(&self.label, Duration::from_secs(1));
        Ok(())
    }

    /// charon's log (IKE at level 2).
    pub fn log(&self) -> String {
        let mut s = std::fs::read_to_string(self.dir.join("charon.stdout")).unwrap_or_default();
        s.push_str(&std::fs::read_to_string(self.dir.join("charon.log")).unwrap_or_default());
        s
    }

    /// `swanctl --initiate --child bh`, waiting up to `timeout` seconds for the result.
    pub fn initiate(&self, ns: &Namespaces, timeout: u32) -> Result<String> {
        run(&mut self.swanctl(
            ns,
            &[
                "--initiate",
                "--child",
                SwanConn::NAME,
                "--timeout",
                &timeout.to_string(),
            ],
        ))
    }

    /// `swanctl --rekey --child bh` (or `--ike bh` when `ike`), returning at once.
    pub fn rekey(&self, ns: &Namespaces, ike: bool) -> Result<String> {
        let which = if ike { "--ike" } else { "--child" };
        run(&mut self.swanctl(ns, &["--rekey", which, SwanConn::NAME]))
    }

    /// `swanctl --terminate --child bh`: deletes the Child SA (INFORMATIONAL DELETE), keeps
    /// the IKE SA.
    pub fn terminate_child(&self, ns: &Namespaces) -> Result<String> {
        run(&mut self.swanctl(
            ns,
            &["--terminate", "--child", SwanConn::NAME, "--timeout", "5"],
        ))
    }

    /// The IKE SAs and their Child SAs, from `swanctl --list-sas --raw`.
    pub fn list_sas(&self, ns: &Namespaces) -> Result<Vec<IkeSaInfo>> {
        let out = run(&mut self.swanctl(ns, &["--list-sas", "--raw"]))?;
        parse_list_sas(&out)
    }

    /// Polls [`Self::list_sas`] until `pred` holds or `limit` passes; returns the last list.
    pub fn wait_sas(
        &self,
        ns: &Namespaces,
        limit: Duration,
        pred: impl Fn(&[IkeSaInfo]) -> bool,
    ) -> Result<Vec<IkeSaInfo>> {
        let deadline = Instant::now() + limit;
        loop {
            let sas = self.list_sas(ns)?;
            if pred(&sas) {
                return Ok(sas);
            }
            if Instant::now() > deadline {
                bail!(
                    "charon in {}: SAs not as expected after {limit:?}: {sas:#?}\n{}",
                    self.netns,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Routes `prefix` into libipsec's `ipsec0` device (waiting up to 5 s for it to appear).
    pub fn route(&self, ns: &Namespaces, prefix: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while ns.ip(&self.netns, &["link", "show", "ipsec0"]).is_err() {
            if Instant::now() > deadline {
                bail!("charon in {}: no ipsec0 device", self.netns);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        ns.ip(&self.netns, &["route", "add", prefix, "dev", "ipsec0"])?;
        Ok(())
    }
}

/// One IKE SA from `swanctl --list-sas --raw`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IkeSaInfo {
    /// The connection name.
    pub name: String,
    /// `ESTABLISHED`, `CONNECTING`, `REKEYING`, …
    pub state: String,
    /// Whether the local side initiated the IKE SA.
    pub initiator: bool,
    /// Every `key=value` of the IKE SA (lists joined by spaces).
    pub fields: BTreeMap<String, String>,
    /// Its Child SAs.
    pub children: Vec<ChildSaInfo>,
}

/// One Child SA from `swanctl --list-sas --raw`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChildSaInfo {
    /// The Child SA's configured name.
    pub name: String,
    /// `INSTALLED`, `REKEYED`, …
    pub state: String,
    /// Every `key=value` of the Child SA (lists joined by spaces).
    pub fields: BTreeMap<String, String>,
}

impl IkeSaInfo {
    /// A field, or `""`.
    pub fn get(&self, key: &str) -> &str {
        self.fields.get(key).map_or("", String::as_str)
    }

    /// Whether this IKE SA is ESTABLISHED with a Child SA INSTALLED.
    pub fn is_up(&self) -> bool {
        self.state == "ESTABLISHED" && self.children.iter().any(|c| c.state == "INSTALLED")
    }

    /// The first INSTALLED Child SA.
    pub fn installed_child(&self) -> Option<&ChildSaInfo> {
        self.children.iter().find(|c| c.state == "INSTALLED")
    }
}

impl ChildSaInfo {
    /// A field, or `""`.
    pub fn get(&self, key: &str) -> &str {
        self.fields.get(key).map_or("", String::as_str)
    }
}

/// A node of vici's raw dump: `key=value`, `key=[a b]`, `key {...}`.
#[derive(Debug, Default)]
struct Section {
    values: BTreeMap<String, String>,
    sections: Vec<(String, Self)>,
}

/// Tokens of the raw dump: words (`a`, `key=value`, `key=[`), `{`, `}`, `]`.
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in text.chars() {
        match ch {
            '{' | '}' | ']' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                out.push(ch.to_string());
            }
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => {
                cur.push(c);
                if cur.ends_with("=[") {
                    out.push(std::mem::take(&mut cur));
                }
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Parses the body of a section from `toks[*i..]` up to its closing `}` (depth-bounded).
fn section(toks: &[String], i: &mut usize, depth: usize) -> Result<Section> {
    if depth > 16 {
        bail!("vici dump nested too deeply");
    }
    let mut s = Section::default();
    let mut pending: Option<String> = None;
    while let Some(t) = toks.get(*i) {
        *i += 1;
        match t.as_str() {
            "}" => return Ok(s),
            "{" => {
                let name = pending.take().unwrap_or_default();
                let child = section(toks, i, depth + 1)?;
                s.sections.push((name, child));
            }
            t if t.ends_with("=[") => {
                let key = t.trim_end_matches("=[").to_owned();
                let mut items = Vec::new();
                while let Some(x) = toks.get(*i) {
                    *i += 1;
                    if x == "]" {
                        break;
                    }
                    items.push(x.clone());
                }
                s.values.insert(key, items.join(" "));
            }
            t => {
                if let Some((k, v)) = t.split_once('=') {
                    s.values.insert(k.to_owned(), v.to_owned());
                } else {
                    pending = Some(t.to_owned());
                }
            }
        }
    }
    Ok(s)
}

/// Parses the output of `swanctl --list-sas --raw`: one `list-sa event {NAME {...}}` line per
/// IKE SA, then `list-sas reply {}`.
pub fn parse_list_sas(text: &str) -> Result<Vec<IkeSaInfo>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(body) = line.trim().strip_prefix("list-sa event") else {
            continue;
        };
        let toks = tokens(body);
        let mut i = 0;
        if toks.first().map(String::as_str) != Some("{") {
            bail!("unexpected list-sa event: {line}");
        }
        i += 1;
        let top = section(&toks, &mut i, 0)?;
        for (name, ike) in top.sections {
            let mut children = Vec::new();
            for (_, group) in ike.sections.iter().filter(|(n, _)| n == "child-sas") {
                for (_, c) in &group.sections {
                    children.push(ChildSaInfo {
                        name: c.values.get("name").cloned().unwrap_or_default(),
                        state: c.values.get("state").cloned().unwrap_or_default(),
                        fields: c.values.clone(),
                    });
                }
            }
            out.push(IkeSaInfo {
                name,
                state: ike.values.get("state").cloned().unwrap_or_default(),
                initiator: ike.values.get("initiator").is_some_and(|v| v == "yes"),
                fields: ike.values,
                children,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "list-sa event {bh {uniqueid=1 version=2 state=ESTABLISHED local-host=203.0.113.20 local-port=4500 local-id=203.0.113.20 remote-host=203.0.113.10 remote-port=4500 remote-id=203.0.113.10 initiator-spi=be74adaff4c329ce responder-spi=342deae7b468428f nat-remote=yes nat-any=yes encr-alg=AES_GCM_16 encr-keysize=256 prf-alg=PRF_HMAC_SHA2_256 dh-group=ECP_256 established=0 rekey-time=13271 child-sas {bh-1 {name=bh uniqueid=1 reqid=1 state=INSTALLED mode=TUNNEL protocol=ESP encap=yes spi-in=7d86ddac spi-out=84c97671 encr-alg=AES_GCM_16 encr-keysize=256 bytes-in=0 packets-in=0 bytes-out=0 packets-out=0 rekey-time=3434 life-time=3960 install-time=0 local-ts=[0.0.0.0/0] remote-ts=[0.0.0.0/0 ::/0]}}}}\nlist-sas reply {}\n";

    #[test]
    fn parses_a_list_sas_dump() {
        let sas = parse_list_sas(DUMP).unwrap();
        assert_eq!(sas.len(), 1);
        let ike = &sas[0];
        assert_eq!(ike.name, "bh");
        assert_eq!(ike.state, "ESTABLISHED");
        assert!(!ike.initiator);
        assert_eq!(ike.get("encr-alg"), "AES_GCM_16");
        assert_eq!(ike.get("dh-group"), "ECP_256");
        assert_eq!(ike.get("nat-remote"), "yes");
        assert!(ike.is_up());
        let c = ike.installed_child().unwrap();
        assert_eq!(c.name, "bh");
        assert_eq!(c.get("spi-in"), "7d86ddac");
        assert_eq!(c.get("encap"), "yes");
        assert_eq!(c.get("remote-ts"), "0.0.0.0/0 ::/0");
        assert_eq!(c.get("missing"), "");
    }

    #[test]
    fn empty_and_odd_dumps() {
        assert!(parse_list_sas("list-sas reply {}\n").unwrap().is_empty());
        assert!(parse_list_sas("").unwrap().is_empty());
        assert!(parse_list_sas("list-sa event garbage").is_err());
        // Unbalanced input ends without a panic.
        let sas = parse_list_sas("list-sa event {x {state=CONNECTING child-sas {").unwrap();
        assert_eq!(sas[0].state, "CONNECTING");
        assert!(!sas[0].is_up());
        let deep = format!("list-sa event {}", "{a ".repeat(40));
        assert!(parse_list_sas(&deep).is_err());
    }

    #[test]
    fn swanctl_conf_carries_the_profile() {
        let conn = SwanConn {
            profile: Profile::azure_default(),
            local_addr: "203.0.113.20".into(),
            local_id: "203.0.113.20".into(),
            remote_addr: "203.0.113.10".into(),
            remote_id: "203.0.113.10".into(),
            psk: "a\"b".into(),
            start: StartAction::None,
            ts: ("0.0.0.0/0".into(), "0.0.0.0/0".into()),
        };
        let s = conn.swanctl_conf();
        assert!(s.contains("proposals = aes256-sha1-modp1024,aes256-sha256-modp1024"));
        assert!(s.contains("esp_proposals = aes256gcm16,aes256-sha1,"));
        assert!(s.contains("rekey_time = 27000s"));
        assert!(s.contains("start_action = none"));
        assert!(s.contains("secret = \"a\\\"b\""));
        assert!(!format!("{conn:?}").contains("a\\\"b"));
        // Under another name: its own connection, Child SA and secret sections.
        let named = conn.swanctl_conf_named("lng2");
        assert!(named.contains("connections {\n  lng2 {"), "{named}");
        assert!(named.contains("children {\n      lng2 {"), "{named}");
        assert!(named.contains("ike-lng2 {"), "{named}");
        assert!(!named.contains(" bh {"), "{named}");
    }
}
