//! `bridgehead plan aws|azure|gcp`: the cloud CLI commands that build the other side of this
//! appliance's tunnels.
//!
//! The output is a shell script: keys are read from our `psk_file`s into variables at run time
//! and only the variable names are printed. Resources the plan cannot know (the VPC's virtual
//! private gateway, Azure's resource group and VNet gateway, Google's network and region) are
//! shell variables the user sets first. Nothing here talks to a cloud.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use bh_config::ike::{Proposal, TunnelIke};
use bh_config::{BgpNeighbor, Config, Tunnel};
use bh_crypto::dh::DhGroup;
use bh_crypto::prf::Prf;
use bh_crypto::{EspEncr, EspInteg};

use super::azure::in_apipa_range;
use super::{Cloud, CloudError, network_v4, other_host_30};

/// Which tunnels to plan.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Tunnel names; empty: those whose name starts with the cloud's name (`aws`, `azure`,
    /// `gcp`).
    pub tunnels: Vec<String>,
}

fn var(name: &str) -> String {
    format!("PSK_{}", name.to_ascii_uppercase().replace('-', "_"))
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// `psk_file` of each tunnel, as written in the configuration, resolved like the loader does.
fn psk_files(cfg: &Config, text: &str) -> Vec<(String, Option<PathBuf>)> {
    let dir = cfg.source.parent().unwrap_or(Path::new("."));
    let table: toml::Table = text.parse().unwrap_or_default();
    let mut out = Vec::new();
    if let Some(toml::Value::Array(ts)) = table.get("tunnel") {
        for t in ts {
            let name = t.get("name").and_then(|v| v.as_str()).unwrap_or("");
            let f = t.get("psk_file").and_then(|v| v.as_str()).map(|p| {
                if Path::new(p).is_relative() {
                    dir.join(p)
                } else {
                    PathBuf::from(p)
                }
            });
            out.push((name.to_owned(), f));
        }
    }
    out
}

fn encr_word(e: EspEncr) -> String {
    match e {
        EspEncr::AesCbc { key_bits } => format!("aes{key_bits}"),
        EspEncr::AesGcm16 { key_bits } => format!("aes{key_bits}gcm16"),
        EspEncr::ChaCha20Poly1305 => "chacha20poly1305".into(),
        #[allow(unreachable_patterns)]
        _ => "?".into(),
    }
}

fn aws_encr(e: EspEncr) -> Option<&'static str> {
    match e {
        EspEncr::AesCbc { key_bits: 128 } => Some("AES128"),
        EspEncr::AesCbc { key_bits: 256 } => Some("AES256"),
        EspEncr::AesGcm16 { key_bits: 128 } => Some("AES128-GCM-16"),
        EspEncr::AesGcm16 { key_bits: 256 } => Some("AES256-GCM-16"),
        _ => None,
    }
}

fn aws_integ(i: EspInteg) -> Option<&'static str> {
    match i {
        EspInteg::HmacSha1_96 => Some("SHA1"),
        EspInteg::HmacSha256_128 => Some("SHA2-256"),
        EspInteg::HmacSha384_192 => Some("SHA2-384"),
        EspInteg::HmacSha512_256 => Some("SHA2-512"),
        _ => None,
    }
}

fn aws_prf(p: Prf) -> &'static str {
    match p {
        Prf::HmacSha1 => "SHA1",
        Prf::HmacSha256 => "SHA2-256",
        Prf::HmacSha384 => "SHA2-384",
        Prf::HmacSha512 => "SHA2-512",
    }
}

fn aws_dh(g: DhGroup) -> Option<u16> {
    let n = g.id();
    (n == 2 || (14..=24).contains(&n)).then_some(n)
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

fn json_values<T: std::fmt::Display>(v: &[T], quoted: bool) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|x| {
            if quoted {
                format!("{{\"Value\": \"{x}\"}}")
            } else {
                format!("{{\"Value\": {x}}}")
            }
        })
        .collect();
    format!("[{}]", items.join(", "))
}

fn ike_of(t: &Tunnel) -> Result<&TunnelIke, CloudError> {
    t.ike.as_ref().ok_or_else(|| CloudError::Plan {
        tunnel: t.name.clone(),
        problem: "manually keyed: cloud gateways negotiate with IKEv2; give it psk_file".into(),
    })
}

fn inside_v4(t: &Tunnel) -> Option<Ipv4Addr> {
    t.inside.iter().find_map(|p| match p.addr {
        IpAddr::V4(a) if p.len == 30 => Some(a),
        _ => None,
    })
}

fn neighbor_of<'a>(cfg: &'a Config, t: &Tunnel) -> Option<&'a BgpNeighbor> {
    cfg.bgp
        .as_ref()?
        .neighbors
        .iter()
        .find(|n| n.tunnel.as_deref() == Some(t.name.as_str()))
}

fn our_public(cfg: &Config) -> Result<IpAddr, CloudError> {
    cfg.appliance
        .public_ip
        .or(cfg.appliance.private_ip)
        .ok_or_else(|| CloudError::Plan {
            tunnel: "appliance".into(),
            problem: "no public_ip (or private_ip): the cloud needs our outside address".into(),
        })
}

/// Prints the commands that build `cloud`'s side of the selected tunnels of `cfg`. `text` is
/// the configuration's TOML (for the `psk_file` paths, which the validated model does not keep).
///
/// # Errors
///
/// [`CloudError::Plan`] naming the tunnel when the configuration cannot be built on that cloud
/// as it stands (e.g. an AWS inside address that is the /30's first host), or
/// [`CloudError::Nothing`] when no tunnel is selected.
pub fn plan(
    cloud: Cloud,
    cfg: &Config,
    text: &str,
    opts: &PlanOptions,
) -> Result<String, CloudError> {
    let selected: Vec<&Tunnel> = cfg
        .tunnels
        .iter()
        .filter(|t| {
            if opts.tunnels.is_empty() {
                t.name.starts_with(cloud.name())
            } else {
                opts.tunnels.contains(&t.name)
            }
        })
        .collect();
    if selected.is_empty() {
        let names: Vec<&str> = cfg.tunnels.iter().map(|t| t.name.as_str()).collect();
        return Err(CloudError::Nothing(format!(
            "no tunnel selected for {}: name them with --tunnel (tunnels here: {})",
            cloud.name(),
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        )));
    }
    for t in &selected {
        ike_of(t)?;
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "#!/bin/sh\n# bridgehead plan {}: the cloud side of {}\n# Keys are read from our psk files into variables; they are never printed.\nset -eu",
        cloud.name(),
        cfg.source
            .display()
            .to_string()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
    );
    let files = psk_files(cfg, text);
    for t in &selected {
        let f = files
            .iter()
            .find(|(n, _)| n == &t.name)
            .and_then(|(_, f)| f.as_ref());
        match f {
            Some(p) => {
                let _ = writeln!(
                    s,
                    "{}=\"$(cat {})\"",
                    var(&t.name),
                    shell_quote(&p.display().to_string())
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "{}=\"${{{}:?set it to tunnel {}'s inline psk}}\"",
                    var(&t.name),
                    var(&t.name),
                    t.name
                );
            }
        }
    }
    match cloud {
        Cloud::Aws => aws(cfg, &selected, &mut s)?,
        Cloud::Azure => azure(cfg, &selected, &mut s)?,
        Cloud::Gcp => gcp(cfg, &selected, &mut s)?,
    }
    Ok(s)
}

fn aws(cfg: &Config, tunnels: &[&Tunnel], s: &mut String) -> Result<(), CloudError> {
    let public = our_public(cfg)?;
    let bgp = cfg.bgp.as_ref();
    let mut notes: Vec<String> = Vec::new();
    let mut amazon_asn = None;
    for t in tunnels {
        if let Some(n) = neighbor_of(cfg, t) {
            match amazon_asn {
                None => amazon_asn = Some(n.asn),
                Some(a) if a != n.asn => {
                    return Err(CloudError::Plan {
                        tunnel: t.name.clone(),
                        problem: format!(
                            "neighbor ASN {} differs from {a}: one virtual private gateway has one ASN",
                            n.asn
                        ),
                    });
                }
                Some(_) => {}
            }
        }
    }
    s.push_str(
        "\n# The virtual private gateway of your VPC (or use --transit-gateway-id below).\n",
    );
    match amazon_asn {
        Some(a) => {
            let _ = writeln!(
                s,
                "# To create one: aws ec2 create-vpn-gateway --type ipsec.1 --amazon-side-asn {a}"
            );
        }
        None => s.push_str("# To create one: aws ec2 create-vpn-gateway --type ipsec.1\n"),
    }
    s.push_str("VGW_ID=\"${VGW_ID:?set VGW_ID to your vgw-... id}\"\n\n");
    s.push_str("CGW_ID=$(aws ec2 create-customer-gateway --type ipsec.1");
    let _ = write!(s, " --public-ip {public}");
    match bgp {
        Some(b) => {
            if !(1..=2_147_483_647).contains(&b.asn) {
                return Err(CloudError::Plan {
                    tunnel: "bgp".into(),
                    problem: format!(
                        "asn {} is outside AWS's customer gateway range 1..=2147483647",
                        b.asn
                    ),
                });
            }
            let _ = write!(s, " --bgp-asn {}", b.asn);
        }
        None => s.push_str(" --bgp-asn 65000"),
    }
    s.push_str(" --query CustomerGateway.CustomerGatewayId --output text)\n");

    for (ci, pair) in tunnels.chunks(2).enumerate() {
        let mut opts = Vec::new();
        for t in pair {
            let ike = ike_of(t)?;
            let st = &ike.settings;
            let inside = inside_v4(t).ok_or_else(|| CloudError::Plan {
                tunnel: t.name.clone(),
                problem: "no IPv4 /30 inside address: AWS needs one (e.g. 169.254.44.162/30)"
                    .into(),
            })?;
            let net = network_v4(inside, 30);
            if u32::from(inside) & 3 != 2 {
                return Err(CloudError::Plan {
                    tunnel: t.name.clone(),
                    problem: format!(
                        "inside {inside}/30: AWS takes the first host of the /30 and gives us the \
                         second; use {}/30",
                        Ipv4Addr::from(u32::from(net) + 2)
                    ),
                });
            }
            let o = inside.octets();
            if o[0] != 169 || o[1] != 254 || bh_config::cloud::AWS_RESERVED_INSIDE.contains(&net) {
                return Err(CloudError::Plan {
                    tunnel: t.name.clone(),
                    problem: format!(
                        "inside {net}/30 is not an AWS inside CIDR: a /30 in 169.254.0.0/16 other \
                         than 169.254.0-5.0/30 and 169.254.169.252/30"
                    ),
                });
            }
            if let Some(n) = neighbor_of(cfg, t) {
                if n.address != IpAddr::V4(Ipv4Addr::from(u32::from(net) + 1)) {
                    notes.push(format!(
                        "tunnel {}: neighbor {} is not AWS's address {} of the /30",
                        t.name,
                        n.address,
                        Ipv4Addr::from(u32::from(net) + 1)
                    ));
                }
            }
            let (mut e1, mut i1, mut d1) = (Vec::new(), Vec::new(), Vec::new());
            for p in &st.proposals {
                phase(p, &t.name, 1, &mut e1, &mut i1, &mut notes);
                for g in &p.dh {
                    match aws_dh(*g) {
                        Some(n) => push_unique(&mut d1, n),
                        None => notes.push(format!(
                            "tunnel {}: AWS has no DH group {} (ours: {g:?}); left out",
                            t.name,
                            g.id()
                        )),
                    }
                }
            }
            let (mut e2, mut i2) = (Vec::new(), Vec::new());
            for p in &st.esp_proposals {
                phase(p, &t.name, 2, &mut e2, &mut i2, &mut notes);
            }
            let d2: Vec<u16> = match st.pfs {
                Some(g) => aws_dh(g).into_iter().collect(),
                None => {
                    notes.push(format!(
                        "tunnel {}: pfs = \"none\", but AWS always rekeys with PFS; it is offered \
                         the IKE groups",
                        t.name
                    ));
                    d1.clone()
                }
            };
            if e1.is_empty() || i1.is_empty() || d1.is_empty() || e2.is_empty() || d2.is_empty() {
                return Err(CloudError::Plan {
                    tunnel: t.name.clone(),
                    problem: "no proposal AWS can use: AWS offers AES128/256 (CBC or GCM-16), \
                              SHA1/SHA2-256/384/512, DH 2 and 14-24"
                        .into(),
                });
            }
            let p1 = st.ike_lifetime.as_secs();
            let p2 = st.child_lifetime.as_secs();
            if p1 >= 28_800 {
                notes.push(format!(
                    "tunnel {}: ike_lifetime {p1} s is not below AWS's maximum 28800 s: AWS will \
                     rekey first",
                    t.name
                ));
            }
            if p2 >= 3_600 {
                notes.push(format!(
                    "tunnel {}: child_lifetime {p2} s is not below AWS's maximum 3600 s: AWS will \
                     rekey first",
                    t.name
                ));
            }
            let dpd = st.dpd_timeout.as_secs().max(30);
            let mut o = String::new();
            let _ = write!(o, "    {{\n      \"TunnelInsideCidr\": \"{net}/30\",\n");
            let _ = writeln!(o, "      \"PreSharedKey\": \"${}\",", var(&t.name));
            let _ = writeln!(o, "      \"IKEVersions\": [{{\"Value\": \"ikev2\"}}],");
            let _ = writeln!(
                o,
                "      \"Phase1EncryptionAlgorithms\": {},",
                json_values(&e1, true)
            );
            let _ = writeln!(
                o,
                "      \"Phase1IntegrityAlgorithms\": {},",
                json_values(&i1, true)
            );
            let _ = writeln!(
                o,
                "      \"Phase1DHGroupNumbers\": {},",
                json_values(&d1, false)
            );
            let _ = writeln!(
                o,
                "      \"Phase2EncryptionAlgorithms\": {},",
                json_values(&e2, true)
            );
            if !i2.is_empty() {
                let _ = writeln!(
                    o,
                    "      \"Phase2IntegrityAlgorithms\": {},",
                    json_values(&i2, true)
                );
            }
            let _ = writeln!(
                o,
                "      \"Phase2DHGroupNumbers\": {},",
                json_values(&d2, false)
            );
            let _ = writeln!(o, "      \"Phase1LifetimeSeconds\": 28800,");
            let _ = writeln!(o, "      \"Phase2LifetimeSeconds\": 3600,");
            let _ = writeln!(
                o,
                "      \"ReplayWindowSize\": {},",
                t.replay_window.clamp(64, 2048)
            );
            let _ = writeln!(o, "      \"DPDTimeoutSeconds\": {dpd},");
            let _ = writeln!(
                o,
                "      \"DPDTimeoutAction\": \"{}\",",
                if st.initiate { "clear" } else { "restart" }
            );
            let _ = write!(
                o,
                "      \"StartupAction\": \"{}\"\n    }}",
                if st.initiate { "add" } else { "start" }
            );
            opts.push(o);
        }
        let _ = write!(
            s,
            "\n# VPN connection {}: tunnels {}\n",
            ci + 1,
            pair.iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = write!(
            s,
            "VPN_ID_{}=$(aws ec2 create-vpn-connection --type ipsec.1 --customer-gateway-id \"$CGW_ID\" \
             --vpn-gateway-id \"$VGW_ID\" --query VpnConnection.VpnConnectionId --output text \
             --options \"$(cat <<EOF\n{{\n  \"StaticRoutesOnly\": {},\n  \"TunnelOptions\": [\n{}\n  ]\n}}\nEOF\n)\")\n",
            ci + 1,
            bgp.is_none(),
            opts.join(",\n")
        );
        if pair.len() == 1 {
            notes.push(format!(
                "connection {}: an AWS connection always has two tunnels; the second gets AWS's \
                 defaults and stays down until a tunnel here points at it",
                ci + 1
            ));
        }
    }
    if bgp.is_none() {
        notes.push(
            "no [bgp]: static routing; add `aws ec2 create-vpn-connection-route` for the networks \
             behind this appliance"
                .into(),
        );
    }
    notes.push(
        "PreSharedKey: AWS accepts 8-64 characters of A-Za-z0-9._, not starting with 0".into(),
    );
    finish_notes(s, &notes);
    Ok(())
}

fn phase(
    p: &Proposal,
    tunnel: &str,
    n: u8,
    e: &mut Vec<&'static str>,
    i: &mut Vec<&'static str>,
    notes: &mut Vec<String>,
) {
    for x in &p.encr {
        match aws_encr(*x) {
            Some(w) => push_unique(e, w),
            None => notes.push(format!(
                "tunnel {tunnel}: AWS has no phase {n} cipher {}; left out",
                encr_word(*x)
            )),
        }
    }
    if p.is_aead() {
        // GCM: AWS's phase-1 "integrity" is the PRF; phase 2 takes none.
        for f in &p.prf {
            push_unique(i, aws_prf(*f));
        }
    } else {
        for x in &p.integ {
            if let Some(w) = aws_integ(*x) {
                push_unique(i, w);
            }
        }
    }
}

fn finish_notes(s: &mut String, notes: &[String]) {
    if notes.is_empty() {
        return;
    }
    s.push_str("\n# Notes:\n");
    for n in notes {
        let _ = writeln!(s, "# - {n}");
    }
}

fn azure(cfg: &Config, tunnels: &[&Tunnel], s: &mut String) -> Result<(), CloudError> {
    let public = our_public(cfg)?;
    let bgp = cfg.bgp.as_ref().ok_or_else(|| CloudError::Plan {
        tunnel: "bgp".into(),
        problem: "no [bgp]: this plan builds a BGP connection".into(),
    })?;
    if bh_config::cloud::AZURE_RESERVED_ASNS
        .iter()
        .any(|&(lo, hi)| (lo..=hi).contains(&bgp.asn))
    {
        return Err(CloudError::Plan {
            tunnel: "bgp".into(),
            problem: format!("asn {} is reserved by Azure; pick e.g. 65010", bgp.asn),
        });
    }
    let mut notes = Vec::new();
    let first = tunnels
        .first()
        .copied()
        .ok_or_else(|| CloudError::Nothing("no tunnel".into()))?;
    let (ours, apipa) = azure_bgp_addresses(cfg, tunnels)?;
    let our_bgp = ours[0];
    let st = &ike_of(first)?.settings;
    s.push_str("\nRG=\"${RG:?set RG to the resource group}\"\nVNG=\"${VNG:?set VNG to the active-active VNet gateway}\"\n");
    s.push_str("\n# Custom APIPA BGP addresses, one per gateway instance (active-active).\n");
    let _ = write!(
        s,
        "az network vnet-gateway update --resource-group \"$RG\" --name \"$VNG\""
    );
    for (i, a) in apipa.iter().enumerate().take(2) {
        let _ = write!(
            s,
            " \\\n  --set 'bgpSettings.bgpPeeringAddresses[{i}].customBgpIpAddresses=[\"{a}\"]'"
        );
    }
    s.push('\n');
    s.push_str("\n# This appliance: one local network gateway for its one public address.\n");
    let _ = writeln!(
        s,
        "az network local-network-gateway create --resource-group \"$RG\" --name bh-{name} \\\n  --gateway-ip-address {public} --asn {asn} --bgp-peering-address {our_bgp}",
        name = first.name,
        asn = bgp.asn
    );
    let _ = writeln!(
        s,
        "\naz network vpn-connection create --resource-group \"$RG\" --name bh-{name} \\\n  --vnet-gateway1 \"$VNG\" --local-gateway2 bh-{name} --enable-bgp --shared-key \"${v}\"",
        name = first.name,
        v = var(&first.name)
    );
    // The connection picks, per instance, which custom APIPA address talks to us.
    s.push_str(
        "\n# Per instance, the APIPA address this connection uses (gatewayCustomBgpIpAddresses).\n",
    );
    let mut items = Vec::new();
    for (i, a) in apipa.iter().enumerate().take(2) {
        let _ = writeln!(
            s,
            "IPCONF{i}=$(az network vnet-gateway show --resource-group \"$RG\" --name \"$VNG\" --query 'ipConfigurations[{i}].id' --output tsv)"
        );
        items.push(format!(
            "{{\"ipConfigurationId\": \"'\"$IPCONF{i}\"'\", \"customBgpIpAddress\": \"{a}\"}}"
        ));
    }
    let _ = writeln!(
        s,
        "az network vpn-connection update --resource-group \"$RG\" --name bh-{name} \\\n  --set 'gatewayCustomBgpIpAddresses=[{items}]'",
        name = first.name,
        items = items.join(", ")
    );
    // A custom policy when ours is not Azure's default (DH 2, no PFS).
    let p = st.proposals.first();
    let esp = st.esp_proposals.first();
    if let (Some(p), Some(esp)) = (p, esp) {
        let default_policy = st.pfs.is_none() && p.dh.contains(&DhGroup::Modp1024);
        if !default_policy {
            let _ = writeln!(
                s,
                "\naz network vpn-connection ipsec-policy add --resource-group \"$RG\" --connection-name bh-{name} \\\n  --ike-encryption {ie} --ike-integrity {ii} --dh-group {dh} \\\n  --ipsec-encryption {pe} --ipsec-integrity {pi} --pfs-group {pfs} \\\n  --sa-lifetime {life} --sa-max-size 102400000",
                name = first.name,
                ie = az_encr(p.encr.first().copied(), false),
                ii = az_ike_integ(p),
                dh = az_dh(p.dh.first().copied()),
                pe = az_encr(esp.encr.first().copied(), true),
                pi = az_esp_integ(esp),
                pfs = az_pfs(st.pfs),
                life = st.child_lifetime.as_secs().max(300),
            );
        }
    }
    // Which tunnels come up.
    let _ = write!(
        s,
        "\n# Azure instance 0 connects with APIPA {} and instance 1 with {}: each instance\n# connects to every local network gateway, so the one gateway above gives two tunnels.\n",
        apipa[0],
        apipa
            .get(1)
            .map_or("(none configured)".into(), |a| a.to_string())
    );
    for (t, role) in tunnels.iter().zip(azure_roles(&ours)) {
        notes.push(azure_role_note(&t.name, role, &ours, &apipa));
    }
    let first_psk = ike_of(first)?.psk.as_slice();
    for t in tunnels.iter().skip(1) {
        // Compared in memory only; neither key is printed.
        if ike_of(t)?.psk.as_slice() != first_psk {
            notes.push(format!(
                "tunnel {}: its key differs from {}'s, but one connection has one shared key: \
                 Azure uses {}'s",
                t.name, first.name, first.name
            ));
        }
    }
    if tunnels.len() == 1 {
        notes.push(AZURE_ONE_TUNNEL.into());
    }
    notes.push("Azure never opens BGP to APIPA peers; our neighbors must not be passive".into());
    notes.push("Azure's BGP hold time is 180 s, fixed".into());
    finish_notes(s, &notes);
    Ok(())
}

/// Said when only one tunnel goes to an active-active Azure gateway (fact sheet §2.4).
const AZURE_ONE_TUNNEL: &str = "instance 1 also connects to this appliance and gets no tunnel \
     here: it shows \"not connected\" in Azure by design; add a second tunnel to its address";

/// What one tunnel to an active-active Azure VNet gateway carries: each of the gateway's two
/// instances connects to every local network gateway, and Azure peers BGP only with the local
/// network gateway's one BGP address (fact sheet §2.4, §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AzureRole {
    /// Instance 0's tunnel, with its BGP session.
    Instance0,
    /// Instance 1's tunnel, with its BGP session (same BGP address on our side).
    Instance1,
    /// Instance 1's tunnel: IPsec comes up, BGP stays down by design (another BGP address).
    Instance1BgpDown,
    /// A third or later tunnel: stays down by design.
    Spare,
}

impl AzureRole {
    /// Whether the tunnel or its BGP session stays down by design.
    pub fn down_by_design(self) -> bool {
        matches!(self, Self::Instance1BgpDown | Self::Spare)
    }
}

/// Per tunnel, our BGP address (its inside address) and Azure's (the neighbor, else the other
/// host of the /30); both must be in Azure's APIPA range (fact sheet §2.3).
fn azure_bgp_addresses(
    cfg: &Config,
    tunnels: &[&Tunnel],
) -> Result<(Vec<Ipv4Addr>, Vec<Ipv4Addr>), CloudError> {
    let mut ours = Vec::new();
    let mut apipa = Vec::new();
    for t in tunnels {
        let a = inside_v4(t).ok_or_else(|| CloudError::Plan {
            tunnel: t.name.clone(),
            problem:
                "no IPv4 /30 inside address: Azure's APIPA needs one in 169.254.21.0-169.254.22.255"
                    .into(),
        })?;
        let azure_side = match neighbor_of(cfg, t).map(|n| n.address) {
            Some(IpAddr::V4(n)) => n,
            _ => other_host_30(a).ok_or_else(|| CloudError::Plan {
                tunnel: t.name.clone(),
                problem: format!("inside {a}/30 is not a host address"),
            })?,
        };
        if !in_apipa_range(azure_side) || !in_apipa_range(a) {
            return Err(CloudError::Plan {
                tunnel: t.name.clone(),
                problem: format!(
                    "{a} / {azure_side}: Azure's custom APIPA addresses must be in \
                     169.254.21.0-169.254.22.255"
                ),
            });
        }
        ours.push(a);
        apipa.push(azure_side);
    }
    Ok((ours, apipa))
}

/// The role of each tunnel, in order, from our BGP address per tunnel.
fn azure_roles(ours: &[Ipv4Addr]) -> Vec<AzureRole> {
    ours.iter()
        .enumerate()
        .map(|(i, a)| match i {
            0 => AzureRole::Instance0,
            1 if Some(a) == ours.first() => AzureRole::Instance1,
            1 => AzureRole::Instance1BgpDown,
            _ => AzureRole::Spare,
        })
        .collect()
}

/// The plan's note for one tunnel in `role`.
fn azure_role_note(name: &str, role: AzureRole, ours: &[Ipv4Addr], apipa: &[Ipv4Addr]) -> String {
    let at = |v: &[Ipv4Addr], i: usize| v.get(i).map_or("?".into(), ToString::to_string);
    match role {
        AzureRole::Instance0 => format!(
            "tunnel {name}: instance 0's tunnel; BGP {} <-> {}",
            at(ours, 0),
            at(apipa, 0)
        ),
        AzureRole::Instance1 => format!(
            "tunnel {name}: instance 1's tunnel; BGP {} <-> {}",
            at(ours, 1),
            at(apipa, 1)
        ),
        AzureRole::Instance1BgpDown => format!(
            "tunnel {name}: instance 1's tunnel comes up, but Azure peers BGP only with the local \
             network gateway's address {}, not {}: its BGP session stays down by \
             design (a second public address and local network gateway would carry it)",
            at(ours, 0),
            at(ours, 1)
        ),
        AzureRole::Spare => format!(
            "tunnel {name}: stays down by design: a VNet gateway has two instances and this \
             appliance one local network gateway"
        ),
    }
}

/// What stays down by design among the tunnels with `cloud = "azure"` (for `check --explain`):
/// the plan's notes for those tunnels, or why the plan cannot tell.
pub fn azure_down_by_design(cfg: &Config) -> Vec<String> {
    let tunnels: Vec<&Tunnel> = cfg
        .tunnels
        .iter()
        .filter(|t| t.cloud == Some(bh_config::Cloud::Azure))
        .collect();
    if tunnels.is_empty() {
        return Vec::new();
    }
    let (ours, apipa) = match azure_bgp_addresses(cfg, &tunnels) {
        Ok(v) => v,
        Err(e) => return vec![format!("cannot tell which Azure tunnels come up: {e}")],
    };
    let mut out: Vec<String> = tunnels
        .iter()
        .zip(azure_roles(&ours))
        .filter(|(_, r)| r.down_by_design())
        .map(|(t, r)| azure_role_note(&t.name, r, &ours, &apipa))
        .collect();
    if tunnels.len() == 1 {
        out.push(AZURE_ONE_TUNNEL.into());
    }
    out
}

fn az_encr(e: Option<EspEncr>, esp: bool) -> &'static str {
    match e {
        Some(EspEncr::AesGcm16 { key_bits: 256 }) => "GCMAES256",
        Some(EspEncr::AesGcm16 { key_bits: 128 }) => "GCMAES128",
        Some(EspEncr::AesGcm16 { .. }) => "GCMAES192",
        Some(EspEncr::AesCbc { key_bits: 128 }) => "AES128",
        Some(EspEncr::AesCbc { key_bits: 192 }) => "AES192",
        _ if esp => "AES256",
        _ => "AES256",
    }
}

fn az_ike_integ(p: &Proposal) -> &'static str {
    let prf = p.prf.first().copied();
    match prf {
        Some(Prf::HmacSha1) => "SHA1",
        Some(Prf::HmacSha384) => "SHA384",
        _ => "SHA256",
    }
}

fn az_esp_integ(p: &Proposal) -> &'static str {
    match (p.encr.first(), p.integ.first()) {
        (Some(EspEncr::AesGcm16 { key_bits: 256 }), _) => "GCMAES256",
        (Some(EspEncr::AesGcm16 { key_bits: 128 }), _) => "GCMAES128",
        (Some(EspEncr::AesGcm16 { .. }), _) => "GCMAES192",
        (_, Some(EspInteg::HmacSha1_96)) => "SHA1",
        _ => "SHA256",
    }
}

fn az_dh(g: Option<DhGroup>) -> &'static str {
    match g {
        Some(DhGroup::Modp1024) => "DHGroup2",
        Some(DhGroup::Ecp256) => "ECP256",
        Some(DhGroup::Ecp384) => "ECP384",
        Some(DhGroup::Modp2048s256) => "DHGroup24",
        _ => "DHGroup14",
    }
}

fn az_pfs(g: Option<DhGroup>) -> &'static str {
    match g {
        None => "None",
        Some(DhGroup::Modp1024) => "PFS2",
        Some(DhGroup::Ecp256) => "ECP256",
        Some(DhGroup::Ecp384) => "ECP384",
        Some(DhGroup::Modp2048s256) => "PFS24",
        _ => "PFS2048",
    }
}

fn gcp(cfg: &Config, tunnels: &[&Tunnel], s: &mut String) -> Result<(), CloudError> {
    let public = our_public(cfg)?;
    let bgp = cfg.bgp.as_ref().ok_or_else(|| CloudError::Plan {
        tunnel: "bgp".into(),
        problem: "no [bgp]: HA VPN routes with Cloud Router BGP".into(),
    })?;
    let mut notes = Vec::new();
    let mut google_asn = None;
    for t in tunnels {
        let n = neighbor_of(cfg, t).ok_or_else(|| CloudError::Plan {
            tunnel: t.name.clone(),
            problem: "no [[bgp.neighbor]] with this tunnel: Cloud Router needs a BGP peer".into(),
        })?;
        match google_asn {
            None => google_asn = Some(n.asn),
            Some(a) if a != n.asn => {
                return Err(CloudError::Plan {
                    tunnel: t.name.clone(),
                    problem: format!(
                        "neighbor ASN {} differs from {a}: one Cloud Router has one ASN",
                        n.asn
                    ),
                });
            }
            Some(_) => {}
        }
        let st = &ike_of(t)?.settings;
        if st.pfs.is_none() {
            return Err(CloudError::Plan {
                tunnel: t.name.clone(),
                problem: "pfs = \"none\": Google requires PFS; set pfs = \"modp2048\"".into(),
            });
        }
    }
    let google_asn = google_asn.unwrap_or(64512);
    s.push_str("\nREGION=\"${REGION:?set REGION}\"\nNETWORK=\"${NETWORK:?set NETWORK to the VPC network}\"\n");
    s.push_str("\n# Google's side: an HA VPN gateway (two interfaces) and a Cloud Router.\n");
    s.push_str("gcloud compute vpn-gateways create bh-ha-vpn --network \"$NETWORK\" --region \"$REGION\"\n");
    let _ = writeln!(
        s,
        "gcloud compute routers create bh-router --network \"$NETWORK\" --region \"$REGION\" --asn {google_asn}"
    );
    s.push_str("\n# This appliance: one external gateway interface per public address.\n");
    let _ = writeln!(
        s,
        "gcloud compute external-vpn-gateways create bh-peer --interfaces 0={public}"
    );
    for (i, t) in tunnels.iter().enumerate() {
        let n = neighbor_of(cfg, t).ok_or_else(|| CloudError::Nothing("neighbor".into()))?;
        let ours = t
            .inside
            .iter()
            .find(|p| p.addr.is_ipv4())
            .ok_or_else(|| CloudError::Plan {
                tunnel: t.name.clone(),
                problem: "no IPv4 inside address: Cloud Router needs a link-local /30".into(),
            })?;
        let (IpAddr::V4(ours_v4), IpAddr::V4(google)) = (ours.addr, n.address) else {
            return Err(CloudError::Plan {
                tunnel: t.name.clone(),
                problem: "IPv4 inside and neighbor addresses needed".into(),
            });
        };
        if !ours_v4.is_link_local() || network_v4(ours_v4, ours.len) != network_v4(google, ours.len)
        {
            return Err(CloudError::Plan {
                tunnel: t.name.clone(),
                problem: format!(
                    "inside {ours} and neighbor {google} must share a 169.254.0.0/16 prefix"
                ),
            });
        }
        let iface = i % 2;
        let _ = writeln!(
            s,
            "\n# Tunnel {name}: HA VPN interface {iface}\ngcloud compute vpn-tunnels create bh-{name} --region \"$REGION\" \\\n  --vpn-gateway bh-ha-vpn --interface {iface} \\\n  --peer-external-gateway bh-peer --peer-external-gateway-interface 0 \\\n  --ike-version 2 --shared-secret \"${v}\" --router bh-router\ngcloud compute routers add-interface bh-router --region \"$REGION\" \\\n  --interface-name bh-{name} --vpn-tunnel bh-{name} --ip-address {google} --mask-length {len}\ngcloud compute routers add-bgp-peer bh-router --region \"$REGION\" \\\n  --peer-name bh-{name} --interface bh-{name} --peer-ip-address {ours_v4} --peer-asn {asn}",
            name = t.name,
            v = var(&t.name),
            len = ours.len,
            asn = bgp.asn,
        );
        notes.push(format!(
            "tunnel {}: its peer {} must be HA VPN interface {iface}'s address: check with \
             `gcloud compute vpn-gateways describe bh-ha-vpn --region \"$REGION\"`",
            t.name, t.peer
        ));
    }
    if tunnels.len() == 1 {
        notes.push("one tunnel: the 99.99 % SLA needs a tunnel on each HA VPN interface".into());
    }
    notes.push(
        "Google keeps its default cipher lists; our proposals must include one of them (e.g. \
         aes256gcm16-prfsha256-modp2048)"
            .into(),
    );
    notes.push("Cloud Router's hold time is 60 s (3 x keepalive 20 s)".into());
    finish_notes(s, &notes);
    Ok(())
}
