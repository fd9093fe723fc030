//! The configuration of every bridgehead in the three-cloud lab ([`super::clouds`]): the
//! appliance, and the instances that play the clouds' gateways.
//!
//! The appliance's tunnels and neighbors only say `cloud = "aws" | "azure" | "gcp"`, their
//! addresses and the PSK: everything else comes from bh-config's presets, as on a real
//! appliance. The cloud side is written out in full from the interop fact sheet
//! (`shared/reference/cloud-gateways.md`, sections cited beside each value), not from the
//! presets, so the presets are checked against what each cloud really proposes and accepts.
//! Every cloud-side instance only responds to IKE (AWS's default startup action waits for the
//! customer gateway, §1.2; Azure wants the side behind NAT to start, §2.2; GCP answers either
//! way, §0), so the appliance's `initiate = true` presets are what bring the tunnels up.
//!
//! Algorithms bridgehead does not implement (3DES, AES-XCBC/CMAC, MODP groups 1, 5, 17, 18,
//! 22, 23) are left out of the cloud-side lists; the intersection with the presets is unchanged.
//!
//! This module only writes TOML text; it starts nothing.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::clouds::addr;

/// One IKE tunnel of a configuration.
pub(super) struct IkeTunnel {
    /// `name` (device `bh-<name>`).
    pub name: &'static str,
    /// `peer`.
    pub peer: &'static str,
    /// `inside` (`None`: no address).
    pub inside: Option<String>,
    /// The PSK file (mode 0600).
    pub psk_file: PathBuf,
}

/// One BGP neighbor of a configuration.
pub(super) struct Neighbor {
    /// `address`.
    pub address: String,
    /// `asn`.
    pub asn: u32,
    /// `tunnel`, if the session runs over one of this instance's tunnels.
    pub tunnel: Option<&'static str>,
}

/// `[appliance]` and `[dataplane]`: one worker, not pinned (seven daemons share the cores).
fn head(s: &mut String, role: &str, private_ip: &str, public_ip: Option<&str>) {
    let _ = writeln!(s, "# bridgehead lab: {role} (generated)\n\n[appliance]");
    let _ = writeln!(s, "private_ip = \"{private_ip}\"");
    if let Some(p) = public_ip {
        let _ = writeln!(s, "public_ip = \"{p}\"");
    }
    s.push_str("\n[dataplane]\nworkers = 1\npin_workers = false\n");
}

fn list(v: &[&str]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", items.join(", "))
}

fn tunnel(s: &mut String, t: &IkeTunnel, cloud: Option<&str>) {
    let _ = writeln!(s, "\n[[tunnel]]\nname = \"{}\"", t.name);
    if let Some(c) = cloud {
        let _ = writeln!(s, "cloud = \"{c}\"");
    }
    let inside: Vec<&str> = t.inside.iter().map(String::as_str).collect();
    let _ = writeln!(
        s,
        "peer = \"{}\"\ninside = {}\npsk_file = \"{}\"",
        t.peer,
        list(&inside),
        t.psk_file.display()
    );
}

fn neighbor(s: &mut String, n: &Neighbor, extra: &str) {
    let _ = writeln!(
        s,
        "\n[[bgp.neighbor]]\naddress = \"{}\"\nasn = {}",
        n.address, n.asn
    );
    if let Some(t) = n.tunnel {
        let _ = writeln!(s, "tunnel = \"{t}\"");
    }
    s.push_str(extra);
}

/// The appliance behind its 1:1 NAT: five tunnels, each only `cloud`, addresses and PSK; one BGP
/// neighbor per tunnel taking the tunnel's cloud; `transit` so each cloud learns the others.
pub(super) fn appliance(tunnels: &[(IkeTunnel, &str)], neighbors: &[Neighbor]) -> String {
    let mut s = String::new();
    head(
        &mut s,
        "the appliance, behind 1:1 NAT",
        addr::APPLIANCE_PRIVATE,
        Some(addr::APPLIANCE_PUBLIC),
    );
    for (t, cloud) in tunnels {
        tunnel(&mut s, t, Some(cloud));
    }
    let _ = writeln!(
        s,
        "\n[bgp]\nasn = {}\ntransit = true",
        super::clouds::asn::APPLIANCE
    );
    for n in neighbors {
        neighbor(&mut s, n, "");
    }
    s
}

/// The `[tunnel.ike]` of a cloud-side instance, as the cloud itself configures its end.
struct CloudIke {
    proposals: &'static [&'static str],
    esp_proposals: &'static [&'static str],
    pfs: &'static str,
    ike_lifetime: u32,
    child_lifetime: u32,
    dpd_interval: u32,
    dpd_timeout: u32,
}

impl CloudIke {
    fn write(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n[tunnel.ike]\nproposals = {}\nesp_proposals = {}\npfs = \"{}\"\ninitiate = false\n\
             ike_lifetime = {}\nchild_lifetime = {}\ndpd_interval = {}\ndpd_timeout = {}",
            list(self.proposals),
            list(self.esp_proposals),
            self.pfs,
            self.ike_lifetime,
            self.child_lifetime,
            self.dpd_interval,
            self.dpd_timeout
        );
    }
}

/// AWS's end of a tunnel (fact sheet §1): IKE AES128/256 and AES-GCM-16, SHA-1/SHA-2, DH 2 and
/// 14-24 (§1.1); ESP the same, PFS required (§1.2, group 14 here); P1 28,800 s, P2 3,600 s;
/// DPD timeout 40 s (§1.2).
const AWS_IKE: CloudIke = CloudIke {
    proposals: &[
        "aes128gcm16-aes256gcm16-prfsha1-prfsha256-prfsha384-prfsha512-modp1024-modp2048-modp3072-modp4096-modp2048s256-ecp256-ecp384-ecp521",
        "aes128-aes256-sha1-sha256-sha384-sha512-modp1024-modp2048-modp3072-modp4096-modp2048s256-ecp256-ecp384-ecp521",
    ],
    esp_proposals: &[
        "aes128gcm16-aes256gcm16",
        "aes128-aes256-sha1-sha256-sha384-sha512",
    ],
    pfs: "modp2048",
    ike_lifetime: 28_800,
    child_lifetime: 3_600,
    dpd_interval: 10,
    dpd_timeout: 40,
};

/// Azure's default policy (fact sheet §2): IKE AES256/SHA1, AES256/SHA256, AES128/SHA1,
/// AES128/SHA256 with DH group 2 only (§2.1); ESP offers GCM-256, AES256/SHA1, AES256/SHA256,
/// AES128/SHA1 with PFS none (§2.2); P1 28,800 s, P2 27,000 s; DPD timeout 45 s (§2.2).
const AZURE_IKE: CloudIke = CloudIke {
    proposals: &[
        "aes256-sha1-modp1024",
        "aes256-sha256-modp1024",
        "aes128-sha1-modp1024",
        "aes128-sha256-modp1024",
    ],
    esp_proposals: &["aes256gcm16", "aes256-sha1", "aes256-sha256", "aes128-sha1"],
    pfs: "none",
    ike_lifetime: 28_800,
    child_lifetime: 27_000,
    dpd_interval: 15,
    dpd_timeout: 45,
};

/// GCP HA VPN (fact sheet §3): IKE AES-GCM-16 128/192/256 or AES-CBC 128/192/256 with SHA-1 and
/// SHA-2, DH 14, 24, 15, 16, 2, 19, 20, 21, 31 in GCP's order (§3.1); ESP GCM 128/256/192 or CBC
/// with SHA-256/512/1, PFS required (§3.2, group 14 here); P1 36,000 s, P2 10,800 s.
const GCP_IKE: CloudIke = CloudIke {
    proposals: &[
        "aes128gcm16-aes192gcm16-aes256gcm16-prfsha1-prfsha256-prfsha384-prfsha512-modp2048-modp2048s256-modp3072-modp4096-modp1024-ecp256-ecp384-ecp521-curve25519",
        "aes128-aes192-aes256-sha1-sha256-sha384-sha512-modp2048-modp2048s256-modp3072-modp4096-modp1024-ecp256-ecp384-ecp521-curve25519",
    ],
    esp_proposals: &[
        "aes128gcm16-aes256gcm16-aes192gcm16",
        "aes128-aes256-aes192-sha256-sha512-sha1",
    ],
    pfs: "modp2048",
    ike_lifetime: 36_000,
    child_lifetime: 10_800,
    dpd_interval: 10,
    dpd_timeout: 40,
};

/// One of AWS's two tunnel endpoints of a VPN connection (each its own public IP): the tunnel
/// with AWS's `.1` of the inside /30 (§1.3), BGP as ASN 64512 with hold time 30 s (§1.3),
/// advertising the VPC.
pub(super) fn aws_endpoint(public_ip: &str, t: &IkeTunnel, n: &Neighbor) -> String {
    let mut s = String::new();
    head(&mut s, "AWS VPN tunnel endpoint", public_ip, None);
    tunnel(&mut s, t, None);
    AWS_IKE.write(&mut s);
    let _ = writeln!(
        s,
        "\n[bgp]\nasn = {}\nadvertise = [\"{}\"]",
        super::clouds::asn::AWS,
        addr::AWS_VPC
    );
    neighbor(&mut s, n, "hold_time = 30\n");
    s
}

/// One instance of an active-active Azure VPN gateway: its custom APIPA BGP address `.1` in
/// 169.254.21.0-169.254.22.255 (§2.3), ASN 65515, hold time 180 s fixed, and it never opens the
/// session towards an APIPA peer (`passive`, §2.3), advertising the VNet.
pub(super) fn azure_instance(public_ip: &str, t: &IkeTunnel, n: &Neighbor) -> String {
    let mut s = String::new();
    head(&mut s, "Azure VPN gateway instance", public_ip, None);
    tunnel(&mut s, t, None);
    AZURE_IKE.write(&mut s);
    let _ = writeln!(
        s,
        "\n[bgp]\nasn = {}\nadvertise = [\"{}\"]",
        super::clouds::asn::AZURE,
        addr::AZURE_VNET
    );
    neighbor(&mut s, n, "hold_time = 180\npassive = true\n");
    s
}

/// GCP's HA VPN gateway: IKE and ESP only, no BGP (the Cloud Router does that).
pub(super) fn gcp_gateway(public_ip: &str, t: &IkeTunnel) -> String {
    let mut s = String::new();
    head(
        &mut s,
        "GCP HA VPN gateway (IKE and ESP only)",
        public_ip,
        None,
    );
    tunnel(&mut s, t, None);
    GCP_IKE.write(&mut s);
    s
}

/// GCP's Cloud Router: BGP only, no tunnel, its link-local `.1` as the session address and
/// router ID, a private ASN and hold time 60 s (3 x keepalive 20 s, §3.3), advertising the VPC.
pub(super) fn gcp_router(n: &Neighbor) -> String {
    let mut s = String::new();
    head(
        &mut s,
        "GCP Cloud Router (BGP only)",
        addr::GCP_ROUTER_BGP,
        None,
    );
    let _ = writeln!(
        s,
        "\n[bgp]\nasn = {}\nrouter_id = \"{}\"\nadvertise = [\"{}\"]",
        super::clouds::asn::GCP,
        addr::GCP_ROUTER_BGP,
        addr::GCP_VPC
    );
    neighbor(&mut s, n, "hold_time = 60\n");
    s
}
