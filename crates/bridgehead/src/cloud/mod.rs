//! Cloud importers and plans: `bridgehead import aws|azure|gcp` and `bridgehead plan aws|azure|gcp`.
//!
//! * Import reads what a cloud's CLI prints about its side of a VPN (AWS's
//!   CustomerGatewayConfiguration XML, `az network vnet-gateway show` JSON, `gcloud compute
//!   vpn-tunnels describe` / `routers describe` / `vpn-gateways describe` JSON) and turns it into
//!   an [`Imported`] description, which [`render_toml`] writes as a bridgehead configuration and
//!   [`write_import`] stores with each pre-shared key in its own 0600 file.
//! * Plan ([`plan()`]) reads this appliance's validated configuration and prints the `aws`, `az`
//!   or `gcloud` commands that build the matching cloud side. Keys appear only as shell
//!   variables filled from our `psk_file`s; the plan never needs cloud credentials.
//! * [`design::down_by_design`] finds the tunnels of a configuration that the cloud's design
//!   never lets come up (an Azure instance's second tunnel to our one public address), which
//!   the daemon then leaves alone and shows as such in its status.
//!
//! Not done here: calling any cloud API, reading cloud credentials, IKEv1, certificates, static
//! (non-BGP) Azure and GCP set-ups beyond a note. Secrets never go to stdout, stderr or logs.

pub mod aws;
pub mod azure;
pub mod design;
pub mod gcp;
pub mod plan;

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

pub use plan::{PlanOptions, plan};

/// Which cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Cloud {
    /// AWS Site-to-Site VPN.
    Aws,
    /// Azure VPN Gateway.
    Azure,
    /// Google Cloud HA VPN + Cloud Router.
    Gcp,
}

impl Cloud {
    /// The lower-case name, also the default tunnel name prefix.
    pub fn name(self) -> &'static str {
        match self {
            Self::Aws => "aws",
            Self::Azure => "azure",
            Self::Gcp => "gcp",
        }
    }
}

/// What went wrong reading a cloud's output or planning. Never carries a key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CloudError {
    /// The XML is not well formed.
    #[error("the XML does not parse: {0}")]
    Xml(String),
    /// The JSON is not well formed.
    #[error("the JSON does not parse: {0}")]
    Json(String),
    /// A required element or field is missing.
    #[error("{context}: missing <{element}>")]
    Missing {
        /// Where (e.g. `ipsec_tunnel[1]/customer_gateway`).
        context: String,
        /// The element or field.
        element: &'static str,
    },
    /// An element or field holds a value we cannot use.
    #[error("{context}: <{element}> has {value:?}, {expected}")]
    BadValue {
        /// Where.
        context: String,
        /// The element or field.
        element: &'static str,
        /// The value (never a key; at most 64 characters).
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The input has nothing to import.
    #[error("{0}")]
    Nothing(String),
    /// The configuration cannot be built on this cloud as it is.
    #[error("tunnel {tunnel}: {problem}")]
    Plan {
        /// The tunnel (or `bgp`, `appliance`).
        tunnel: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// Writing the output failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Cuts a value quoted in an error to 64 characters.
pub(crate) fn quote(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The BGP side of an imported tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedNeighbor {
    /// The cloud's BGP address.
    pub address: IpAddr,
    /// The cloud's ASN.
    pub asn: u32,
    /// Hold time to offer.
    pub hold_time: u16,
    /// TTL for a peer off the tunnel's link (Azure without APIPA).
    pub multihop: Option<u8>,
}

/// One tunnel read from a cloud's output.
#[derive(Debug, Clone, Default)]
pub struct ImportedTunnel {
    /// Tunnel name (`aws0`, ...).
    pub name: String,
    /// The cloud gateway's outside address.
    pub peer: Option<IpAddr>,
    /// Our inside address and prefix length (`169.254.x.2/30`).
    pub inside: Option<(IpAddr, u8)>,
    /// Static routes through the tunnel (the /32 of an off-link BGP peer).
    pub routes: Vec<String>,
    /// The pre-shared key, when the cloud returned it.
    pub psk: Option<Zeroizing<String>>,
    /// IKE proposals in our words.
    pub proposals: Vec<String>,
    /// ESP proposals in our words.
    pub esp_proposals: Vec<String>,
    /// `pfs` word.
    pub pfs: String,
    /// Our IKE SA lifetime, seconds.
    pub ike_lifetime: u64,
    /// Our Child SA lifetime, seconds.
    pub child_lifetime: u64,
    /// DPD interval and timeout, seconds.
    pub dpd: Option<(u64, u64)>,
    /// Whether we initiate.
    pub initiate: bool,
    /// TCP MSS clamp.
    pub mss_clamp: Option<u16>,
    /// The BGP neighbor over this tunnel.
    pub neighbor: Option<ImportedNeighbor>,
    /// Comment lines put above the tunnel.
    pub comments: Vec<String>,
}

/// A configuration read from a cloud's output.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The cloud.
    pub cloud: Cloud,
    /// Our public address (the customer gateway's).
    pub public_ip: Option<IpAddr>,
    /// Our ASN.
    pub local_asn: Option<u32>,
    /// The tunnels.
    pub tunnels: Vec<ImportedTunnel>,
    /// What the input did not carry, one sentence each.
    pub missing: Vec<String>,
    /// Other remarks for the user.
    pub notes: Vec<String>,
}

/// The psk file name of a tunnel next to `out`: `<out stem>.<tunnel>.psk`.
pub fn psk_file_name(out: &Path, tunnel: &str) -> String {
    let stem = out
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("bridgehead");
    format!("{stem}.{tunnel}.psk")
}

fn toml_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(o, "\\u{:04x}", u32::from(c));
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A comment line: control characters (a newline would end the comment and let text from the
/// cloud's output become configuration) become spaces.
fn comment(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn toml_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", items.join(", "))
}

/// Renders `imp` as bridgehead TOML. Each tunnel's key is referenced as
/// `psk_file = "<out stem>.<tunnel>.psk"`, relative to the configuration's directory; no key is
/// ever written into the TOML.
pub fn render_toml(imp: &Imported, out: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Imported by `bridgehead import {}`. Check it with `bridgehead check -c FILE`.",
        imp.cloud.name()
    );
    for m in &imp.missing {
        let _ = writeln!(s, "# MISSING: {}", comment(m));
    }
    for n in &imp.notes {
        let _ = writeln!(s, "# Note: {}", comment(n));
    }
    s.push_str("\n[appliance]\n");
    match imp.public_ip {
        Some(ip) => {
            let _ = writeln!(s, "public_ip = \"{ip}\"");
        }
        None => s.push_str("# public_ip = \"\"   # MISSING: this appliance's public address\n"),
    }
    s.push_str("# private_ip = \"\"  # set it when a 1:1 NAT maps public_ip to this host\n");
    for t in &imp.tunnels {
        s.push('\n');
        for c in &t.comments {
            let _ = writeln!(s, "# {}", comment(c));
        }
        s.push_str("[[tunnel]]\n");
        let _ = writeln!(s, "name = {}", toml_str(&t.name));
        // The cloud's presets and checks (docs/configuration.md, "Cloud presets") apply to
        // every key written below as well as to the ones left out.
        let _ = writeln!(s, "cloud = \"{}\"", imp.cloud.name());
        match t.peer {
            Some(p) => {
                let _ = writeln!(s, "peer = \"{p}\"");
            }
            None => s.push_str("# peer = \"\"  # MISSING: the cloud gateway's outside address\n"),
        }
        if let Some((a, l)) = t.inside {
            let _ = writeln!(s, "inside = [\"{a}/{l}\"]");
        }
        if !t.routes.is_empty() {
            let _ = writeln!(s, "routes = {}", toml_list(&t.routes));
        }
        if let Some(m) = t.mss_clamp {
            let _ = writeln!(s, "mss_clamp = {m}");
        }
        let _ = writeln!(s, "psk_file = {}", toml_str(&psk_file_name(out, &t.name)));
        s.push_str("\n[tunnel.ike]\n");
        let _ = writeln!(s, "proposals = {}", toml_list(&t.proposals));
        let _ = writeln!(s, "esp_proposals = {}", toml_list(&t.esp_proposals));
        let _ = writeln!(s, "pfs = {}", toml_str(&t.pfs));
        let _ = writeln!(s, "initiate = {}", t.initiate);
        let _ = writeln!(s, "ike_lifetime = {}", t.ike_lifetime);
        let _ = writeln!(s, "child_lifetime = {}", t.child_lifetime);
        match t.dpd {
            Some((i, to)) => {
                let _ = writeln!(s, "dpd_interval = {i}\ndpd_timeout = {to}");
            }
            None => s.push_str("dpd_interval = 0\n"),
        }
    }
    let neighbors: Vec<(&ImportedTunnel, &ImportedNeighbor)> = imp
        .tunnels
        .iter()
        .filter_map(|t| t.neighbor.as_ref().map(|n| (t, n)))
        .collect();
    if !neighbors.is_empty() {
        s.push_str("\n[bgp]\n");
        match imp.local_asn {
            Some(a) => {
                let _ = writeln!(s, "asn = {a}");
            }
            None => s.push_str("# asn =   # MISSING: our ASN\n"),
        }
        s.push_str(
            "advertise = []  # the networks behind this appliance, e.g. [\"10.0.0.0/16\"]\n",
        );
        for (t, n) in neighbors {
            s.push_str("\n[[bgp.neighbor]]\n");
            let _ = writeln!(s, "address = \"{}\"", n.address);
            let _ = writeln!(s, "asn = {}", n.asn);
            let _ = writeln!(s, "tunnel = {}", toml_str(&t.name));
            let _ = writeln!(s, "hold_time = {}", n.hold_time);
            if let Some(h) = n.multihop {
                let _ = writeln!(s, "multihop = {h}");
            }
        }
    }
    s
}

/// What [`write_import`] wrote.
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// The configuration.
    pub config: PathBuf,
    /// Key files written (mode 0600).
    pub psk_files: Vec<PathBuf>,
    /// Key files the user must create (the cloud did not return the key).
    pub psk_to_fill: Vec<PathBuf>,
}

fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), CloudError> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let io = |source| CloudError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    // An existing file keeps its mode through open(2): tighten it before writing.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.write_all(b"\n").map_err(io)?;
    f.sync_all().map_err(io)
}

/// Writes the configuration to `out` and each returned key to `<dir>/<stem>.<tunnel>.psk`
/// (mode 0600). Keys the cloud did not return are listed in [`Written::psk_to_fill`].
///
/// # Errors
///
/// [`CloudError::Io`].
pub fn write_import(imp: &Imported, out: &Path) -> Result<Written, CloudError> {
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut w = Written {
        config: out.to_path_buf(),
        ..Written::default()
    };
    for t in &imp.tunnels {
        let p = dir.join(psk_file_name(out, &t.name));
        match &t.psk {
            Some(k) => {
                write_secret(&p, k.as_bytes())?;
                w.psk_files.push(p);
            }
            None => w.psk_to_fill.push(p),
        }
    }
    std::fs::write(out, render_toml(imp, out)).map_err(|source| CloudError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(w)
}

fn read_input(path: &Path) -> anyhow::Result<String> {
    use std::io::Read as _;
    let f = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut text = String::new();
    f.take(aws::MAX_XML as u64 + 1)
        .read_to_string(&mut text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(text)
}

/// `bridgehead import CLOUD FILE... -o OUT`: reads the cloud's output, writes the configuration
/// and key files, and tells on stderr what was written and what is missing (never a key).
///
/// # Errors
///
/// Unreadable input, a [`CloudError`], or a write failure.
pub fn run_import(
    cloud: Cloud,
    files: &[PathBuf],
    out: &Path,
    public_ip: Option<IpAddr>,
    asn: Option<u32>,
) -> anyhow::Result<()> {
    let mut texts = Vec::new();
    for f in files {
        texts.push(Zeroizing::new(read_input(f)?));
    }
    let first = texts
        .first()
        .ok_or_else(|| anyhow::anyhow!("no input file"))?;
    let ctx = |e: CloudError| anyhow::anyhow!("{}: {e}", files[0].display());
    let mut imp = match cloud {
        Cloud::Aws => {
            if texts.len() > 1 {
                anyhow::bail!("import aws reads one CustomerGatewayConfiguration document");
            }
            aws::import(first).map_err(ctx)?
        }
        Cloud::Azure => {
            if texts.len() > 1 {
                anyhow::bail!("import azure reads one `az network vnet-gateway show` document");
            }
            azure::import(first, public_ip, asn).map_err(ctx)?
        }
        Cloud::Gcp => {
            let docs: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
            gcp::import(&docs).map_err(|e| anyhow::anyhow!("{e}"))?
        }
    };
    if cloud != Cloud::Azure {
        if let Some(p) = public_ip {
            imp.public_ip = Some(p);
        }
        if let Some(a) = asn {
            imp.local_asn = Some(a);
        }
    }
    let w = write_import(&imp, out)?;
    eprintln!(
        "wrote {} ({} tunnel(s))",
        w.config.display(),
        imp.tunnels.len()
    );
    for p in &w.psk_files {
        eprintln!("wrote {} (mode 0600)", p.display());
    }
    for p in &w.psk_to_fill {
        eprintln!(
            "missing: {}: write the tunnel's pre-shared key into it (chmod 600)",
            p.display()
        );
    }
    for m in &imp.missing {
        eprintln!("missing: {m}");
    }
    for n in &imp.notes {
        eprintln!("note: {n}");
    }
    Ok(())
}

/// `bridgehead plan CLOUD -c CONFIG`: loads and validates the configuration and prints the plan.
///
/// # Errors
///
/// An invalid configuration, or a [`CloudError`].
pub fn run_plan(cloud: Cloud, config: &Path, tunnels: Vec<String>) -> anyhow::Result<()> {
    let cfg = bh_config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let text = Zeroizing::new(read_input(config)?);
    let s = plan(cloud, &cfg, &text, &PlanOptions { tunnels })?;
    print!("{s}");
    Ok(())
}

/// The other host of the IPv4 /30 that holds `a`, or `None` when `a` is its network or
/// broadcast address.
pub fn other_host_30(a: Ipv4Addr) -> Option<Ipv4Addr> {
    let n = u32::from(a);
    match n & 3 {
        1 => Some(Ipv4Addr::from(n + 1)),
        2 => Some(Ipv4Addr::from(n - 1)),
        _ => None,
    }
}

/// The network address of `a`/`len`.
pub fn network_v4(a: Ipv4Addr, len: u8) -> Ipv4Addr {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    };
    Ipv4Addr::from(u32::from(a) & mask)
}

/// Our lifetime for a cloud's: 10 % shorter, so we rekey first (and never below the
/// configuration's minimum).
pub(crate) fn below(cloud_lifetime: u64, min: u64) -> u64 {
    cloud_lifetime
        .saturating_sub(cloud_lifetime / 10)
        .clamp(min, 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_a_30() {
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(other_host_30(a("169.254.21.1")), Some(a("169.254.21.2")));
        assert_eq!(other_host_30(a("169.254.21.6")), Some(a("169.254.21.5")));
        assert_eq!(other_host_30(a("169.254.21.4")), None);
        assert_eq!(other_host_30(a("169.254.21.7")), None);
        assert_eq!(network_v4(a("169.254.44.162"), 30), a("169.254.44.160"));
    }

    #[test]
    fn comments_cannot_break_out() {
        let imp = Imported {
            cloud: Cloud::Azure,
            public_ip: None,
            local_asn: None,
            tunnels: vec![ImportedTunnel {
                name: "azure0".into(),
                comments: vec!["gw\n[appliance]\npublic_ip = \"1.2.3.4\"".into()],
                proposals: vec!["aes256-sha256-modp2048".into()],
                esp_proposals: vec!["aes256gcm16".into()],
                pfs: "none".into(),
                ike_lifetime: 100,
                child_lifetime: 50,
                ..ImportedTunnel::default()
            }],
            missing: vec!["a\rb".into()],
            notes: vec![],
        };
        let text = render_toml(&imp, Path::new("x.toml"));
        assert!(text.contains("# gw [appliance] public_ip"), "{text}");
        assert!(!text.lines().any(|l| l.starts_with("public_ip")), "{text}");
        assert!(text.contains("# MISSING: a b"));
    }

    #[test]
    fn toml_strings_escape() {
        assert_eq!(toml_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
