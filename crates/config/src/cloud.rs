//! Cloud presets: what `cloud = "aws" | "azure" | "gcp"` on a `[[tunnel]]` or
//! `[[bgp.neighbor]]` fills in, and the per-cloud checks the validator runs.
//!
//! Every value here comes from the interop fact sheet (`shared/reference/cloud-gateways.md`,
//! section numbers in the comments) and is only a default: a key set explicitly in the file wins.
//! The checks ([`Cloud::check_inside`], [`Cloud::check_neighbor_address`],
//! [`Cloud::check_local_asn`], [`Cloud::check_psk`]) refuse what the cloud itself would refuse,
//! so a mistake shows up at load time instead of as a tunnel that never comes up.
//!
//! Not here: talking to a cloud API, importing a cloud's configuration (crate `bridgehead`,
//! module `cloud`), or anything the daemon does with the values.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bh_crypto::dh::DhGroup;
use bh_crypto::{EspEncr, EspInteg, EspSuite};

use crate::model::{Encap, MssClamp, Prefix};

/// A cloud's VPN gateway whose conventions a tunnel or neighbor follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cloud {
    /// AWS Site-to-Site VPN (VGW, TGW, Cloud WAN).
    Aws,
    /// Azure VPN Gateway (route-based, APIPA BGP).
    Azure,
    /// Google Cloud HA VPN with Cloud Router.
    Gcp,
}

/// The words `cloud` accepts.
pub const CLOUD_WORDS: &[&str] = &["aws", "azure", "gcp"];

impl std::fmt::Display for Cloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

/// The values a cloud preset fills in when the key is not in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preset {
    /// `[tunnel.ike] proposals`, in the cloud's order of preference.
    pub ike_proposals: &'static [&'static str],
    /// `[tunnel.ike] esp_proposals`, in the cloud's order of preference.
    pub esp_proposals: &'static [&'static str],
    /// `[tunnel.ike] pfs`; `None` neither sends nor requires a KE payload in CREATE_CHILD_SA.
    pub pfs: Option<DhGroup>,
    /// `[tunnel.ike] initiate`.
    pub initiate: bool,
    /// `[tunnel.ike] ike_lifetime` (90 % of the cloud's, so bridgehead rekeys first).
    pub ike_lifetime: Duration,
    /// `[tunnel.ike] child_lifetime` (90 % of the cloud's).
    pub child_lifetime: Duration,
    /// `[tunnel.ike] dpd_interval`.
    pub dpd_interval: Duration,
    /// `[tunnel.ike] dpd_timeout`.
    pub dpd_timeout: Duration,
    /// `[[bgp.neighbor]] hold_time`.
    pub hold_time: u16,
    /// `[[bgp.neighbor]] passive`.
    pub passive: bool,
    /// `[[bgp.neighbor]] max_advertise`: most prefixes the cloud accepts from us.
    pub max_advertise: Option<u32>,
}

/// 90 % of a cloud lifetime: far enough below it that our rekey comes first.
const fn below(cloud_secs: u64) -> Duration {
    Duration::from_secs(cloud_secs / 10 * 9)
}

/// AWS (fact sheet §1): CGW initiates by default (§1.2 Startup action `Add`), PFS required
/// (§1.2), P1 28,800 s / P2 3,600 s (§1.1, §1.2), DPD 10 s × 3 as in AWS's sample (§1.2),
/// hold 30 s (§1.3), 100 routes to a VGW (§1.3).
const AWS: Preset = Preset {
    ike_proposals: &[
        "aes256gcm16-prfsha256-modp2048-ecp256",
        "aes256-sha256-modp2048-ecp256",
        "aes128-sha1-modp2048",
    ],
    esp_proposals: &["aes256gcm16", "aes256-sha256", "aes128-sha1"],
    pfs: Some(DhGroup::Modp2048),
    initiate: true,
    ike_lifetime: below(Cloud::Aws.lifetimes().0),
    child_lifetime: below(Cloud::Aws.lifetimes().1),
    dpd_interval: Duration::from_secs(10),
    dpd_timeout: Duration::from_secs(30),
    hold_time: 30,
    passive: false,
    max_advertise: Some(100),
};

/// Azure (fact sheet §2): default IKE policy AES256/SHA1, AES256/SHA256, AES128/SHA1,
/// AES128/SHA256 with DH group 2 only (§2.1); ESP offers with PFS None and no KE on Azure's
/// rekeys (§2.2); P1 28,800 s, P2 27,000 s; DPD timeout 45 s (§2.2); behind NAT we must
/// initiate (§2.2); hold 180 s fixed, never opens towards an APIPA peer, 4,000 prefixes (§2.3).
const AZURE: Preset = Preset {
    ike_proposals: &[
        "aes256-sha1-modp1024",
        "aes256-sha256-modp1024",
        "aes128-sha1-modp1024",
        "aes128-sha256-modp1024",
    ],
    esp_proposals: &["aes256gcm16", "aes256-sha1", "aes256-sha256", "aes128-sha1"],
    pfs: None,
    initiate: true,
    ike_lifetime: below(Cloud::Azure.lifetimes().0),
    child_lifetime: below(Cloud::Azure.lifetimes().1),
    dpd_interval: Duration::from_secs(15),
    dpd_timeout: Duration::from_secs(45),
    hold_time: 180,
    passive: false,
    max_advertise: Some(4_000),
};

/// GCP (fact sheet §3): GCP's order (AES-GCM-16-128 before 256, then CBC; Group-14 first,
/// §3.1, §3.2); PFS required (§3.2); P1 36,000 s, P2 10,800 s; "aggressive" DPD and
/// Start = auto (§3.2); hold = 3 × keepalive 20 s (§3.3); no documented prefix limit.
const GCP: Preset = Preset {
    ike_proposals: &[
        "aes128gcm16-prfsha256-modp2048",
        "aes256gcm16-prfsha256-modp2048",
        "aes128-sha256-modp2048",
        "aes256-sha256-modp2048",
    ],
    esp_proposals: &[
        "aes128gcm16",
        "aes256gcm16",
        "aes128-sha256",
        "aes256-sha256",
    ],
    pfs: Some(DhGroup::Modp2048),
    initiate: true,
    ike_lifetime: below(Cloud::Gcp.lifetimes().0),
    child_lifetime: below(Cloud::Gcp.lifetimes().1),
    dpd_interval: Duration::from_secs(5),
    dpd_timeout: Duration::from_secs(20),
    hold_time: 60,
    passive: false,
    max_advertise: None,
};

/// The `[[tunnel]]` keys a preset fills (those under `[tunnel.ike]` as `ike.<key>`).
pub const TUNNEL_PRESET_KEYS: &[&str] = &[
    "mtu",
    "mss_clamp",
    "ike.proposals",
    "ike.esp_proposals",
    "ike.pfs",
    "ike.initiate",
    "ike.ike_lifetime",
    "ike.child_lifetime",
    "ike.dpd_interval",
    "ike.dpd_timeout",
];

/// The `[[bgp.neighbor]]` keys a preset fills.
pub const NEIGHBOR_PRESET_KEYS: &[&str] = &["hold_time", "passive", "max_advertise"];

/// One value that came from a cloud preset rather than the file (for `bridgehead check
/// --explain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresetSource {
    /// The TOML path of the key, e.g. `tunnel[0].ike.pfs` or `bgp.neighbor[1].hold_time`.
    pub path: String,
    /// The cloud whose preset gave the value.
    pub cloud: Cloud,
    /// The section of the interop fact sheet the value comes from.
    pub section: &'static str,
}

/// The fact-sheet section behind a preset key for `cloud`.
pub fn preset_section(cloud: Cloud, key: &str) -> &'static str {
    let (aws, azure, gcp) = match key {
        "ike.proposals" => ("1.1", "2.1", "3.1"),
        "ike.ike_lifetime" | "ike.child_lifetime" => {
            ("0, 6.1 item 6", "0, 6.1 item 6", "0, 6.1 item 6")
        }
        "mtu" | "mss_clamp" => ("1.4", "2.2", "3.4"),
        "hold_time" | "passive" | "max_advertise" => ("1.3", "2.3", "3.3"),
        _ => ("1.2", "2.2", "3.2"),
    };
    match cloud {
        Cloud::Aws => aws,
        Cloud::Azure => azure,
        Cloud::Gcp => gcp,
    }
}

/// Every value of `config` that came from a cloud preset, in file order: tunnels, then
/// neighbors.
pub fn preset_sources(config: &crate::Config) -> Vec<PresetSource> {
    let mut out = Vec::new();
    for (i, t) in config.tunnels.iter().enumerate() {
        if let Some(cloud) = t.cloud {
            for k in &t.from_preset {
                out.push(PresetSource {
                    path: format!("tunnel[{i}].{k}"),
                    cloud,
                    section: preset_section(cloud, k),
                });
            }
        }
    }
    for (i, n) in config
        .bgp
        .iter()
        .flat_map(|b| b.neighbors.iter())
        .enumerate()
    {
        if let Some(cloud) = n.cloud {
            for k in &n.from_preset {
                out.push(PresetSource {
                    path: format!("bgp.neighbor[{i}].{k}"),
                    cloud,
                    section: preset_section(cloud, k),
                });
            }
        }
    }
    out
}

/// AWS's reserved inside /30s (fact sheet §1.3).
pub const AWS_RESERVED_INSIDE: &[Ipv4Addr] = &[
    Ipv4Addr::new(169, 254, 0, 0),
    Ipv4Addr::new(169, 254, 1, 0),
    Ipv4Addr::new(169, 254, 2, 0),
    Ipv4Addr::new(169, 254, 3, 0),
    Ipv4Addr::new(169, 254, 4, 0),
    Ipv4Addr::new(169, 254, 5, 0),
    Ipv4Addr::new(169, 254, 169, 252),
];

/// ASNs Azure refuses on the customer side (fact sheet §2.3, §6.3 item 15), as inclusive ranges.
pub const AZURE_RESERVED_ASNS: &[(u32, u32)] = &[
    (8074, 8075),
    (12076, 12076),
    (23456, 23456),
    (64496, 64511),
    (65515, 65515),
    (65517, 65520),
    (65535, 65551),
];

/// What a cloud would refuse. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloudProblem {
    /// An inside address outside the cloud's link-local range.
    #[error("inside address {value} is outside {range}")]
    InsideRange {
        /// The address.
        value: Prefix,
        /// The allowed range, as text.
        range: &'static str,
    },
    /// An inside prefix that is not a /30.
    #[error("inside address {value} is not a /30")]
    InsideNot30 {
        /// The address.
        value: Prefix,
    },
    /// One of AWS's reserved /30s.
    #[error("inside address {value} is in one of AWS's reserved /30s")]
    AwsReserved {
        /// The address.
        value: Prefix,
    },
    /// On AWS, the customer side is the second host (.2 of the /30).
    #[error("inside address {value} is not the second host of its /30 (AWS takes the first)")]
    AwsNotSecondHost {
        /// The address.
        value: Prefix,
    },
    /// On AWS, the neighbor is the first host of the tunnel's /30.
    #[error("neighbor {addr} is not the first host of the tunnel's inside /30 ({expected})")]
    AwsNeighborNotFirstHost {
        /// The neighbor address.
        addr: IpAddr,
        /// The address it should be.
        expected: Ipv4Addr,
    },
    /// An Azure APIPA neighbor outside 169.254.21.0–169.254.22.255.
    #[error("neighbor {addr} is an APIPA address outside 169.254.21.0-169.254.22.255")]
    AzureApipaRange {
        /// The neighbor address.
        addr: IpAddr,
    },
    /// An ASN Azure reserves.
    #[error("AS {asn} is reserved by Azure and cannot be the on-premises AS")]
    AzureReservedAsn {
        /// The ASN.
        asn: u32,
    },
    /// A pre-shared key the cloud would refuse (only the rule, never the key).
    #[error("the pre-shared key breaks the cloud's rule: {rule}")]
    PskAlphabet {
        /// The rule broken.
        rule: &'static str,
    },
}

impl CloudProblem {
    /// How to fix it.
    pub fn hint(&self) -> String {
        match self {
            Self::InsideRange { range, .. } => format!("pick a /30 inside {range}"),
            Self::InsideNot30 { .. } => {
                "cloud inside addresses are /30s, e.g. 169.254.21.2/30".into()
            }
            Self::AwsReserved { .. } => "AWS reserves 169.254.0.0/30 to 169.254.5.0/30 and \
                 169.254.169.252/30; pick another /30"
                .into(),
            Self::AwsNotSecondHost { value } => match value.addr {
                IpAddr::V4(a) => {
                    let o = a.octets();
                    format!("use {}.{}.{}.{}/30", o[0], o[1], o[2], (o[3] & 0xfc) | 2)
                }
                IpAddr::V6(_) => "use the second host of the /30".into(),
            },
            Self::AwsNeighborNotFirstHost { expected, .. } => format!("use {expected}"),
            Self::AzureApipaRange { .. } => {
                "Azure's custom APIPA BGP addresses must be in 169.254.21.0-169.254.22.255".into()
            }
            Self::AzureReservedAsn { .. } => {
                "pick a private AS such as 64512-65514 or 65521-65534".into()
            }
            Self::PskAlphabet { .. } => {
                "use the key the cloud generated, or 32 characters of A-Za-z0-9._ not starting \
                 with 0 (valid on every cloud)"
                    .into()
            }
        }
    }
}

/// The link-local range, for APIPA checks.
fn in_range(a: Ipv4Addr, lo: Ipv4Addr, hi: Ipv4Addr) -> bool {
    (u32::from(lo)..=u32::from(hi)).contains(&u32::from(a))
}

fn host_of_30(a: Ipv4Addr) -> (Ipv4Addr, u32) {
    let n = u32::from(a);
    (Ipv4Addr::from(n & !3), n & 3)
}

impl Cloud {
    /// Parses a `cloud` word.
    pub fn from_word(s: &str) -> Option<Self> {
        match s {
            "aws" => Some(Self::Aws),
            "azure" => Some(Self::Azure),
            "gcp" => Some(Self::Gcp),
            _ => None,
        }
    }

    /// The word the configuration uses.
    pub fn word(self) -> &'static str {
        match self {
            Self::Aws => "aws",
            Self::Azure => "azure",
            Self::Gcp => "gcp",
        }
    }

    /// The cloud's own IKE SA and Child SA lifetimes in seconds, when left alone: AWS
    /// 28,800 / 3,600 (fact sheet §1.1, §1.2), Azure 28,800 / 27,000 (§2.1, §2.2), GCP
    /// 36,000 / 10,800 (§3.1, §3.2). The presets stay below them.
    pub const fn lifetimes(self) -> (u64, u64) {
        match self {
            Self::Aws => (28_800, 3_600),
            Self::Azure => (28_800, 27_000),
            Self::Gcp => (36_000, 10_800),
        }
    }

    /// The preset values.
    pub fn preset(self) -> &'static Preset {
        match self {
            Self::Aws => &AWS,
            Self::Azure => &AZURE,
            Self::Gcp => &GCP,
        }
    }

    /// Checks one of a tunnel's `inside` addresses. IPv6 inside addresses are not checked
    /// (AWS TGW uses fd00::/126, GCP fdff:1::/64; neither is constrained further here).
    ///
    /// # Errors
    ///
    /// What the cloud would refuse.
    pub fn check_inside(self, value: Prefix) -> Result<(), CloudProblem> {
        let IpAddr::V4(a) = value.addr else {
            return Ok(());
        };
        let (range, lo, hi) = match self {
            Self::Azure => (
                "169.254.21.0-169.254.22.255",
                Ipv4Addr::new(169, 254, 21, 0),
                Ipv4Addr::new(169, 254, 22, 255),
            ),
            Self::Aws | Self::Gcp => (
                "169.254.0.0/16",
                Ipv4Addr::new(169, 254, 0, 0),
                Ipv4Addr::new(169, 254, 255, 255),
            ),
        };
        if !in_range(a, lo, hi) {
            return Err(CloudProblem::InsideRange { value, range });
        }
        if value.len != 30 {
            return Err(CloudProblem::InsideNot30 { value });
        }
        if self == Self::Aws {
            let (net, host) = host_of_30(a);
            if AWS_RESERVED_INSIDE.contains(&net) {
                return Err(CloudProblem::AwsReserved { value });
            }
            if host != 2 {
                return Err(CloudProblem::AwsNotSecondHost { value });
            }
        }
        Ok(())
    }

    /// Checks a BGP neighbor's address against its tunnel's `inside` addresses.
    ///
    /// # Errors
    ///
    /// AWS: the neighbor is not the first host of the tunnel's inside /30. Azure: an APIPA
    /// neighbor outside Azure's range (a GatewaySubnet address is fine).
    pub fn check_neighbor_address(
        self,
        inside: &[Prefix],
        addr: IpAddr,
    ) -> Result<(), CloudProblem> {
        let IpAddr::V4(a) = addr else {
            return Ok(());
        };
        match self {
            Self::Aws => {
                let mut expected = None;
                for p in inside {
                    if let IpAddr::V4(ours) = p.addr {
                        if p.len == 30 {
                            let (net, _) = host_of_30(ours);
                            let first = Ipv4Addr::from(u32::from(net) | 1);
                            if first == a {
                                return Ok(());
                            }
                            expected.get_or_insert(first);
                        }
                    }
                }
                match expected {
                    Some(expected) => Err(CloudProblem::AwsNeighborNotFirstHost { addr, expected }),
                    None => Ok(()),
                }
            }
            Self::Azure => {
                let apipa = a.is_link_local();
                let ok = in_range(
                    a,
                    Ipv4Addr::new(169, 254, 21, 0),
                    Ipv4Addr::new(169, 254, 22, 255),
                );
                if apipa && !ok {
                    Err(CloudProblem::AzureApipaRange { addr })
                } else {
                    Ok(())
                }
            }
            Self::Gcp => Ok(()),
        }
    }

    /// Checks our own AS (`[bgp] asn`) when a neighbor is on this cloud.
    ///
    /// # Errors
    ///
    /// Azure: one of the ASNs Azure reserves.
    pub fn check_local_asn(self, asn: u32) -> Result<(), CloudProblem> {
        if self == Self::Azure
            && AZURE_RESERVED_ASNS
                .iter()
                .any(|&(lo, hi)| (lo..=hi).contains(&asn))
        {
            return Err(CloudProblem::AzureReservedAsn { asn });
        }
        Ok(())
    }

    /// Checks a pre-shared key against the cloud's alphabet (fact sheet §1.2, §2.2, §3.2).
    ///
    /// # Errors
    ///
    /// The rule broken; the key itself is never part of the error.
    pub fn check_psk(self, psk: &[u8]) -> Result<(), CloudProblem> {
        let rule = match self {
            Self::Aws => {
                if !(8..=64).contains(&psk.len()) {
                    Some("AWS accepts 8 to 64 characters")
                } else if !psk
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'_')
                {
                    Some("AWS accepts only A-Z, a-z, 0-9, '.' and '_'")
                } else if psk.first() == Some(&b'0') {
                    Some("AWS refuses a key that starts with 0")
                } else {
                    None
                }
            }
            Self::Azure => (!psk
                .iter()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'-' | b'~')))
            .then_some("Azure accepts printable ASCII except space, '-' and '~'"),
            Self::Gcp => None,
        };
        match rule {
            Some(rule) => Err(CloudProblem::PskAlphabet { rule }),
            None => Ok(()),
        }
    }

    /// The tunnel MTU for this cloud with these ESP suites (the smallest over all of them,
    /// since any may be negotiated) and encapsulation: AWS's per-cipher table (fact sheet
    /// §1.4, the NAT-T column for ESP in UDP), Azure's 1400 (§2.2), GCP's payload MTU per
    /// cipher (§3.4).
    pub fn tunnel_mtu(self, suites: &[EspSuite], encap: Encap) -> u16 {
        let udp = encap == Encap::Udp;
        suites
            .iter()
            .map(|s| {
                let aead = matches!(s.encr, EspEncr::AesGcm16 { .. } | EspEncr::ChaCha20Poly1305);
                match self {
                    Self::Aws => match (aead, s.integ, udp) {
                        (true, _, false) => 1446,
                        (true, _, true) => 1438,
                        (false, EspInteg::HmacSha384_192, _) => 1422,
                        (false, EspInteg::HmacSha512_256, false) => 1422,
                        (false, EspInteg::HmacSha512_256, true) => 1406,
                        (false, _, false) => 1438,
                        (false, _, true) => 1422,
                    },
                    Self::Azure => 1400,
                    Self::Gcp => match (aead, s.integ) {
                        (true, _) => 1406,
                        (false, EspInteg::HmacSha512_256 | EspInteg::HmacSha384_192) => 1374,
                        (false, _) => 1390,
                    },
                }
            })
            .min()
            .unwrap_or(match self {
                Self::Aws => 1399,
                Self::Azure => 1400,
                Self::Gcp => 1374,
            })
    }

    /// The TCP MSS clamp for this cloud at tunnel MTU `mtu`: AWS's sample 1379 (§1.4), Azure's
    /// 1350 (§2.2), each lowered to `mtu - 40` when the MTU is smaller; GCP clamps from the MTU.
    pub fn mss_clamp(self, mtu: u16) -> MssClamp {
        let room = mtu.saturating_sub(40);
        match self {
            Self::Aws => MssClamp::Fixed(room.min(1379)),
            Self::Azure => MssClamp::Fixed(room.min(1350)),
            Self::Gcp => MssClamp::Auto,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::path::Path;
    use std::time::Duration;

    use bh_crypto::dh::DhGroup;
    use bh_crypto::{EspEncr, EspInteg, EspSuite};

    use super::{Cloud, CloudProblem};
    use crate::model::{Encap, MssClamp, Prefix};
    use crate::{Config, ConfigErrors, ErrorKind, FileMeta, LoadCtx, MemFiles};

    const CONF: &str = "/etc/bridgehead/bridgehead.toml";

    fn load(text: &str) -> Result<Config, ConfigErrors> {
        let mut files = MemFiles::new();
        let meta = FileMeta {
            mode: 0o600,
            uid: 0,
        };
        files.insert(CONF, meta, text.as_bytes());
        let ctx = LoadCtx {
            online_cores: 1,
            euid: 0,
            files: &files,
        };
        crate::parse(Path::new(CONF), text, &ctx)
    }

    /// One tunnel on `cloud` with only the keys a user must write, and a neighbor over it.
    fn minimal(cloud: &str, inside: &str, neighbor: &str) -> String {
        format!(
            "[appliance]\npublic_ip = \"203.0.113.10\"\n\n\
             [[tunnel]]\nname = \"t0\"\ncloud = \"{cloud}\"\npeer = \"198.51.100.1\"\n\
             inside = [\"{inside}\"]\npsk = \"Generated_Key.0123456789abcdef\"\n\n\
             [bgp]\nasn = 65000\n\n[[bgp.neighbor]]\naddress = \"{neighbor}\"\nasn = 64512\n\
             tunnel = \"t0\"\n"
        )
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn aws_minimal_tunnel_gets_the_aws_preset() {
        let cfg = load(&minimal("aws", "169.254.10.2/30", "169.254.10.1")).unwrap();
        let t = &cfg.tunnels[0];
        assert_eq!(t.cloud, Some(Cloud::Aws));
        let s = &t.ike.as_ref().unwrap().settings;
        assert_eq!(
            (s.ike_lifetime, s.child_lifetime),
            (secs(25_920), secs(3_240))
        );
        assert!(s.ike_lifetime < secs(28_800) && s.child_lifetime < secs(3_600));
        assert_eq!(s.pfs, Some(DhGroup::Modp2048));
        assert!(s.initiate);
        assert_eq!((s.dpd_interval, s.dpd_timeout), (Some(secs(10)), secs(30)));
        assert_eq!(
            s.proposals[0].encr,
            vec![EspEncr::AesGcm16 { key_bits: 256 }]
        );
        assert_eq!(s.esp_proposals.len(), 3);
        // AES-CBC with SHA-1/SHA-256 over NAT-T is AWS's 1422 (GCM alone would be 1438).
        assert_eq!(t.mtu, Some(1422));
        assert_eq!(t.mss_clamp, MssClamp::Fixed(1379));
        let n = &cfg.bgp.as_ref().unwrap().neighbors[0];
        assert_eq!(n.cloud, Some(Cloud::Aws), "inherited from the tunnel");
        assert_eq!(
            (n.hold_time, n.passive, n.max_advertise),
            (30, false, Some(100))
        );
    }

    #[test]
    fn azure_minimal_tunnel_gets_the_azure_preset() {
        let cfg = load(&minimal("azure", "169.254.21.2/30", "169.254.21.1")).unwrap();
        let t = &cfg.tunnels[0];
        let s = &t.ike.as_ref().unwrap().settings;
        assert_eq!(s.pfs, None, "Azure rekeys without KE");
        assert!(s.proposals.iter().all(|p| p.dh == vec![DhGroup::Modp1024]));
        assert_eq!(s.proposals[0].integ, vec![EspInteg::HmacSha1_96]);
        assert_eq!(
            (s.ike_lifetime, s.child_lifetime),
            (secs(25_920), secs(24_300))
        );
        assert_eq!(s.dpd_timeout, secs(45));
        assert!(s.initiate);
        assert_eq!((t.mtu, t.mss_clamp), (Some(1400), MssClamp::Fixed(1350)));
        let n = &cfg.bgp.as_ref().unwrap().neighbors[0];
        assert_eq!(
            (n.hold_time, n.passive, n.max_advertise),
            (180, false, Some(4000))
        );
    }

    #[test]
    fn gcp_minimal_tunnel_gets_the_gcp_preset() {
        let cfg = load(&minimal("gcp", "169.254.7.2/30", "169.254.7.1")).unwrap();
        let t = &cfg.tunnels[0];
        let s = &t.ike.as_ref().unwrap().settings;
        assert_eq!(s.pfs, Some(DhGroup::Modp2048), "GCP requires PFS");
        assert_eq!(
            s.proposals[0].encr,
            vec![EspEncr::AesGcm16 { key_bits: 128 }],
            "GCP's order puts AES-GCM-128 first"
        );
        assert_eq!(
            (s.ike_lifetime, s.child_lifetime),
            (secs(32_400), secs(9_720))
        );
        assert_eq!((s.dpd_interval, s.dpd_timeout), (Some(secs(5)), secs(20)));
        // AES-CBC + SHA-256 ESP is GCP's 1390 payload MTU; the MSS follows the MTU.
        assert_eq!((t.mtu, t.mss_clamp), (Some(1390), MssClamp::Auto));
        let n = &cfg.bgp.as_ref().unwrap().neighbors[0];
        assert_eq!((n.hold_time, n.passive, n.max_advertise), (60, false, None));
    }

    #[test]
    fn no_cloud_keeps_the_plain_defaults() {
        let text =
            minimal("aws", "169.254.10.2/30", "169.254.10.1").replace("cloud = \"aws\"\n", "");
        let cfg = load(&text).unwrap();
        let t = &cfg.tunnels[0];
        assert_eq!((t.cloud, t.mtu, t.mss_clamp), (None, None, MssClamp::Auto));
        assert_eq!(
            t.ike.as_ref().unwrap().settings,
            crate::ike::IkeSettings::default()
        );
        let n = &cfg.bgp.as_ref().unwrap().neighbors[0];
        assert_eq!(
            (n.hold_time, n.max_advertise),
            (crate::DEFAULT_HOLD_TIME, None)
        );
    }

    #[test]
    fn explicit_values_override_the_preset() {
        let text = "[appliance]\npublic_ip = \"203.0.113.10\"\n\n\
             [[tunnel]]\nname = \"t0\"\ncloud = \"aws\"\npeer = \"198.51.100.1\"\n\
             inside = [\"169.254.10.2/30\"]\npsk = \"Generated_Key.0123456789abcdef\"\n\
             mtu = 1300\nmss_clamp = \"off\"\n\
             [tunnel.ike]\npfs = \"none\"\nchild_lifetime = 1800\ninitiate = false\n\
             esp_proposals = [\"aes256gcm16\"]\n\n\
             [bgp]\nasn = 65000\n\n[[bgp.neighbor]]\naddress = \"169.254.10.1\"\nasn = 64512\n\
             tunnel = \"t0\"\nhold_time = 90\npassive = true\nmax_advertise = 50\n";
        let cfg = load(text).unwrap();
        let t = &cfg.tunnels[0];
        assert_eq!((t.mtu, t.mss_clamp), (Some(1300), MssClamp::Off));
        let s = &t.ike.as_ref().unwrap().settings;
        assert_eq!((s.pfs, s.initiate), (None, false));
        assert_eq!(s.child_lifetime, secs(1_800));
        assert_eq!(s.esp_proposals.len(), 1);
        // Keys not set keep the preset.
        assert_eq!(
            (s.ike_lifetime, s.dpd_interval),
            (secs(25_920), Some(secs(10)))
        );
        let n = &cfg.bgp.as_ref().unwrap().neighbors[0];
        assert_eq!(
            (n.hold_time, n.passive, n.max_advertise),
            (90, true, Some(50))
        );

        // Only the MTU set: the MSS preset follows it; only GCM: AWS's GCM MTU.
        let text = minimal("aws", "169.254.10.2/30", "169.254.10.1")
            .replace("inside =", "mtu = 1400\ninside =");
        let t = &load(&text).unwrap().tunnels[0];
        assert_eq!((t.mtu, t.mss_clamp), (Some(1400), MssClamp::Fixed(1360)));
        // A neighbor's own `cloud` wins over its tunnel's.
        let text = minimal("aws", "169.254.10.2/30", "169.254.10.1")
            .replace("tunnel = \"t0\"\n", "tunnel = \"t0\"\ncloud = \"gcp\"\n");
        let n = &load(&text).unwrap().bgp.unwrap().neighbors[0];
        assert_eq!(
            (n.cloud, n.hold_time, n.max_advertise),
            (Some(Cloud::Gcp), 60, None)
        );
    }

    /// Every cloud error, each at the line of its value and its TOML path.
    #[test]
    fn every_cloud_error_is_reported_at_its_line_and_path() {
        let text = r#"[appliance]
public_ip = "203.0.113.10"

[[tunnel]]
name = "aws0"
cloud = "aws"
peer = "198.51.100.1"
inside = ["169.254.169.254/30"]
psk = "0tooearly_but_otherwise_fine"

[[tunnel]]
name = "aws1"
cloud = "aws"
peer = "198.51.100.2"
inside = ["169.254.11.1/30"]
psk = "has+plus_sign_in_it"

[[tunnel]]
name = "aws2"
cloud = "aws"
peer = "198.51.100.3"
inside = ["169.254.12.2/30"]
psk = "Generated_Key.0123456789abcdef"

[[tunnel]]
name = "az0"
cloud = "azure"
peer = "198.51.100.4"
inside = ["169.254.30.2/30"]
psk = "not-allowed-dashes"

[[tunnel]]
name = "gcp0"
cloud = "gcp"
peer = "198.51.100.5"
inside = ["169.254.40.2/29"]
psk = "any+thing/goes=for-gcp"

[[tunnel]]
name = "x0"
cloud = "oracle"
peer = "198.51.100.6"
psk = "Generated_Key.0123456789abcdef"

[bgp]
asn = 65515

[[bgp.neighbor]]
address = "169.254.12.5"
asn = 64512
tunnel = "aws2"

[[bgp.neighbor]]
address = "169.254.30.1"
asn = 65515
cloud = "azure"
"#;
        let e = load(text).unwrap_err();
        let line_of = |needle: &str| {
            text.lines()
                .position(|l| l.contains(needle))
                .map(|i| i + 1)
                .unwrap()
        };
        let got: Vec<(usize, &str)> = e.iter().map(|e| (e.line, e.path.as_str())).collect();
        let want = vec![
            (line_of("169.254.169.254/30"), "tunnel[0].inside[0]"),
            (line_of("0tooearly"), "tunnel[0].psk"),
            (line_of("169.254.11.1/30"), "tunnel[1].inside[0]"),
            (line_of("has+plus"), "tunnel[1].psk"),
            (line_of("169.254.30.2/30"), "tunnel[3].inside[0]"),
            (line_of("not-allowed"), "tunnel[3].psk"),
            (line_of("169.254.40.2/29"), "tunnel[4].inside[0]"),
            (line_of("oracle"), "tunnel[5].cloud"),
            (line_of("asn = 65515"), "bgp.asn"),
            (line_of("169.254.12.5"), "bgp.neighbor[0].address"),
            (line_of("169.254.30.1"), "bgp.neighbor[1].address"),
        ];
        assert_eq!(got, want, "{e}");
        let problems: Vec<Option<&CloudProblem>> = e
            .iter()
            .map(|e| match &e.kind {
                ErrorKind::Cloud { problem, .. } => Some(problem),
                _ => None,
            })
            .collect();
        assert!(matches!(
            problems[0],
            Some(CloudProblem::AwsReserved { .. })
        ));
        assert!(matches!(
            problems[2],
            Some(CloudProblem::AwsNotSecondHost { .. })
        ));
        assert!(matches!(
            problems[4],
            Some(CloudProblem::InsideRange { .. })
        ));
        assert!(matches!(
            problems[6],
            Some(CloudProblem::InsideNot30 { .. })
        ));
        assert!(matches!(
            problems[8],
            Some(CloudProblem::AzureReservedAsn { asn: 65515 })
        ));
        assert!(matches!(
            problems[9],
            Some(CloudProblem::AwsNeighborNotFirstHost { .. })
        ));
        assert!(matches!(
            problems[10],
            Some(CloudProblem::AzureApipaRange { .. })
        ));
        let shown = e.to_string();
        // Hints say how to fix it; no key appears in any message.
        assert!(shown.contains("use 169.254.11.2/30"), "{shown}");
        assert!(shown.contains("use 169.254.12.1"), "{shown}");
        assert!(shown.contains("expected one of aws, azure, gcp"), "{shown}");
        for key in ["0tooearly", "has+plus", "not-allowed"] {
            assert!(!shown.contains(key), "a key leaked: {shown}");
        }
    }

    /// The example of "Cloud presets" in docs/configuration.md loads with the values its table
    /// promises.
    #[test]
    fn documented_cloud_example_loads() {
        let doc = include_str!("../../../docs/configuration.md");
        let block = doc
            .split("```toml cloud\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("the cloud example block");
        let mut files = MemFiles::new();
        let meta = FileMeta {
            mode: 0o600,
            uid: 0,
        };
        files.insert(CONF, meta, block.as_bytes());
        for (name, key) in [
            ("aws0", &b"Aws_Generated.Key_0123456789\n"[..]),
            ("azure0", b"Azure+Key/0123456789=\n"),
            ("gcp0", b"Gcp+Key/0123456789-any=\n"),
        ] {
            files.insert(format!("/etc/bridgehead/psk/{name}"), meta, key);
        }
        let ctx = LoadCtx {
            online_cores: 1,
            euid: 0,
            files: &files,
        };
        let cfg = crate::parse(Path::new(CONF), block, &ctx)
            .unwrap_or_else(|e| panic!("the documented cloud example fails:\n{e}"));
        let clouds: Vec<_> = cfg.tunnels.iter().map(|t| t.cloud).collect();
        assert_eq!(
            clouds,
            [Some(Cloud::Aws), Some(Cloud::Azure), Some(Cloud::Gcp)]
        );
        let az = &cfg.tunnels[1].ike.as_ref().unwrap().settings;
        assert_eq!((az.pfs, az.child_lifetime), (None, secs(3_000)));
        assert_eq!(az.ike_lifetime, secs(25_920));
        let n = &cfg.bgp.as_ref().unwrap().neighbors;
        let got: Vec<_> = n.iter().map(|n| (n.hold_time, n.max_advertise)).collect();
        assert_eq!(got, [(30, Some(100)), (180, Some(4000)), (30, None)]);

        // What came from the presets, and what the file set itself.
        let sources = super::preset_sources(&cfg);
        let paths: Vec<&str> = sources.iter().map(|s| s.path.as_str()).collect();
        assert!(paths.contains(&"tunnel[0].ike.pfs"), "{paths:?}");
        assert!(paths.contains(&"tunnel[1].ike.ike_lifetime"), "{paths:?}");
        assert!(
            !paths.contains(&"tunnel[1].ike.child_lifetime"),
            "set in the file"
        );
        assert!(paths.contains(&"bgp.neighbor[1].hold_time"), "{paths:?}");
        assert!(
            !paths.contains(&"bgp.neighbor[2].hold_time"),
            "set in the file"
        );
        let mtu = sources.iter().find(|s| s.path == "tunnel[2].mtu").unwrap();
        assert_eq!((mtu.cloud, mtu.section), (Cloud::Gcp, "3.4"));
        assert_eq!(paths.len(), 3 * 10 - 1 + 3 * 3 - 1);
    }

    #[test]
    fn checks_one_by_one() {
        let p = |s: &str| {
            let (a, l) = s.split_once('/').unwrap();
            Prefix {
                addr: a.parse().unwrap(),
                len: l.parse().unwrap(),
            }
        };
        for reserved in ["169.254.0.2/30", "169.254.5.2/30", "169.254.169.254/30"] {
            assert!(
                matches!(
                    Cloud::Aws.check_inside(p(reserved)),
                    Err(CloudProblem::AwsReserved { .. })
                ),
                "{reserved}"
            );
        }
        assert!(Cloud::Aws.check_inside(p("169.254.6.2/30")).is_ok());
        assert!(Cloud::Azure.check_inside(p("169.254.22.254/30")).is_ok());
        assert!(Cloud::Azure.check_inside(p("169.254.23.2/30")).is_err());
        assert!(Cloud::Gcp.check_inside(p("169.254.200.2/30")).is_ok());
        assert!(Cloud::Gcp.check_inside(p("10.0.0.2/30")).is_err());
        assert!(Cloud::Aws.check_inside(p("fd00::2/126")).is_ok());
        // Azure's peer may be a GatewaySubnet address (not APIPA).
        let gw: IpAddr = "10.1.255.30".parse().unwrap();
        assert!(Cloud::Azure.check_neighbor_address(&[], gw).is_ok());
        for asn in [8074, 8075, 12076, 65515, 65517, 65520] {
            assert!(Cloud::Azure.check_local_asn(asn).is_err(), "{asn}");
        }
        for asn in [65516, 65521, 64512, 65000] {
            assert!(Cloud::Azure.check_local_asn(asn).is_ok(), "{asn}");
        }
        assert!(Cloud::Aws.check_local_asn(65515).is_ok());
        assert!(Cloud::Aws.check_psk(b"Abc.def_12").is_ok());
        assert!(Cloud::Aws.check_psk(b"Abc.de7").is_err(), "7 characters");
        assert!(Cloud::Aws.check_psk(&[b'a'; 65]).is_err(), "65 characters");
        assert!(Cloud::Azure.check_psk(b"Abc+def/123=").is_ok());
        assert!(Cloud::Azure.check_psk(b"has space").is_err());
        assert!(Cloud::Azure.check_psk(b"tilde~here").is_err());
        assert!(Cloud::Gcp.check_psk(b"a b-c~d").is_ok());
        let gcm = EspSuite::aead(EspEncr::AesGcm16 { key_bits: 256 });
        let sha512 = EspSuite {
            encr: EspEncr::AesCbc { key_bits: 256 },
            integ: EspInteg::HmacSha512_256,
        };
        assert_eq!(Cloud::Aws.tunnel_mtu(&[gcm], Encap::Esp), 1446);
        assert_eq!(Cloud::Aws.tunnel_mtu(&[gcm], Encap::Udp), 1438);
        assert_eq!(Cloud::Aws.tunnel_mtu(&[gcm, sha512], Encap::Udp), 1406);
        assert_eq!(Cloud::Gcp.tunnel_mtu(&[gcm], Encap::Udp), 1406);
        assert_eq!(Cloud::Gcp.tunnel_mtu(&[sha512], Encap::Udp), 1374);
        assert_eq!(Cloud::Aws.mss_clamp(1406), MssClamp::Fixed(1366));
    }
}
