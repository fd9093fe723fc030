//! Per-tunnel IKE configuration and proposal matching (RFC 7296 §2.7, §3.3).
//!
//! A proposal here lists acceptable algorithms per transform type; any combination of them is
//! acceptable, exactly as one SA payload proposal means on the wire. The responder takes the
//! first of the peer's proposals (in the peer's order) that one of ours fully covers.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bh_crypto::{DhGroup, EspEncr, EspInteg, EspSuite, Prf, Zeroizing};

use crate::sk::IkeSuite;
use crate::wire::{
    IdType, Identification, Proposal, ProtocolId, Transform, TransformType, encr, integ,
};

/// Identifies a tunnel inside an [`Endpoint`](crate::Endpoint): the index given back by
/// [`Endpoint::add_tunnel`](crate::Endpoint::add_tunnel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TunnelId(pub u32);

/// An IKE identity (RFC 7296 §3.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IkeId {
    /// ID_IPV4_ADDR or ID_IPV6_ADDR.
    Addr(IpAddr),
    /// ID_FQDN.
    Fqdn(String),
}

impl IkeId {
    /// The Identification payload body.
    pub fn to_wire(&self) -> Identification {
        match self {
            Self::Addr(IpAddr::V4(a)) => Identification {
                id_type: IdType::ID_IPV4_ADDR,
                data: a.octets().to_vec(),
            },
            Self::Addr(IpAddr::V6(a)) => Identification {
                id_type: IdType::ID_IPV6_ADDR,
                data: a.octets().to_vec(),
            },
            Self::Fqdn(s) => Identification {
                id_type: IdType::ID_FQDN,
                data: s.as_bytes().to_vec(),
            },
        }
    }

    /// Whether a received Identification payload names this identity.
    pub fn matches(&self, id: &Identification) -> bool {
        self.to_wire() == *id
    }
}

impl fmt::Display for IkeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Addr(a) => write!(f, "{a}"),
            Self::Fqdn(s) => f.write_str(s),
        }
    }
}

/// One IKE SA proposal: acceptable algorithms per transform type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IkeProposal {
    /// Encryption algorithms.
    pub encr: Vec<EspEncr>,
    /// Integrity algorithms (empty with AEAD-only proposals).
    pub integ: Vec<EspInteg>,
    /// PRFs.
    pub prf: Vec<Prf>,
    /// DH groups; the first is the one the initiator's KE payload uses.
    pub dh: Vec<DhGroup>,
}

/// One Child SA (ESP) proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EspProposal {
    /// Encryption algorithms.
    pub encr: Vec<EspEncr>,
    /// Integrity algorithms (empty with AEAD-only proposals).
    pub integ: Vec<EspInteg>,
    /// Extended sequence numbers: acceptable values (`false` = no ESN).
    pub esn: Vec<bool>,
}

/// Lifetimes (RFC 7296 §2.8): rekey after `*_rekey` minus up to `jitter` of it, at random.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetimes {
    /// When to rekey the IKE SA.
    pub ike_rekey: Duration,
    /// When to rekey the Child SA.
    pub child_rekey: Duration,
    /// Fraction (percent, 0..=100) of the rekey time subtracted at random.
    pub jitter_percent: u8,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            ike_rekey: Duration::from_secs(4 * 3600),
            child_rekey: Duration::from_secs(45 * 60),
            jitter_percent: 10,
        }
    }
}

/// Dead peer detection (RFC 7296 §2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dpd {
    /// Send an empty INFORMATIONAL when nothing was received for this long.
    pub interval: Duration,
    /// Declare the peer dead when a request goes unanswered this long.
    pub timeout: Duration,
    /// Re-initiate after the peer is declared dead (initiator tunnels only).
    pub restart: bool,
}

impl Default for Dpd {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            restart: true,
        }
    }
}

/// Everything IKE needs to know about one tunnel.
#[derive(Clone)]
pub struct TunnelIkeConfig {
    /// Name for logs and events.
    pub name: String,
    /// The local socket address IKE is sent from (port 500; the float goes to 4500 on the
    /// same IP). May be a private address behind 1:1 NAT.
    pub local_addr: SocketAddr,
    /// The peer's address (port 500).
    pub remote_addr: SocketAddr,
    /// Our identity, e.g. the public IP as ID_IPV4_ADDR, independent of `local_addr`.
    pub local_id: IkeId,
    /// The identity the peer must present.
    pub remote_id: IkeId,
    /// Pre-shared key.
    pub psk: Zeroizing<Vec<u8>>,
    /// IKE SA proposals, in preference order.
    pub ike_proposals: Vec<IkeProposal>,
    /// ESP proposals, in preference order.
    pub esp_proposals: Vec<EspProposal>,
    /// PFS group for CREATE_CHILD_SA; `None` = no KE (the first Child SA never has one).
    pub pfs_group: Option<DhGroup>,
    /// Lifetimes.
    pub lifetimes: Lifetimes,
    /// Dead peer detection.
    pub dpd: Dpd,
    /// Whether this side starts the tunnel ([`Endpoint::initiate`](crate::Endpoint::initiate)
    /// is still the caller's call).
    pub initiator: bool,
    /// Pretend a NAT is present so that ESP goes in UDP (RFC 7296 §2.23 allows faking the
    /// NAT_DETECTION_SOURCE_IP hash).
    pub force_udp_encap: bool,
}

impl fmt::Debug for TunnelIkeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunnelIkeConfig")
            .field("name", &self.name)
            .field("local_addr", &self.local_addr)
            .field("remote_addr", &self.remote_addr)
            .field("local_id", &self.local_id)
            .field("remote_id", &self.remote_id)
            .field("ike_proposals", &self.ike_proposals)
            .field("esp_proposals", &self.esp_proposals)
            .field("pfs_group", &self.pfs_group)
            .field("initiator", &self.initiator)
            .finish_non_exhaustive()
    }
}

fn encr_transform(e: EspEncr) -> Transform {
    match e {
        EspEncr::AesCbc { key_bits } => {
            Transform::with_key_length(TransformType::ENCR, encr::AES_CBC, key_bits)
        }
        EspEncr::AesGcm16 { key_bits } => {
            Transform::with_key_length(TransformType::ENCR, encr::AES_GCM_16, key_bits)
        }
        EspEncr::ChaCha20Poly1305 => Transform::new(TransformType::ENCR, encr::CHACHA20_POLY1305),
    }
}

fn integ_id(i: EspInteg) -> u16 {
    match i {
        EspInteg::None => integ::NONE,
        EspInteg::HmacSha1_96 => integ::HMAC_SHA1_96,
        EspInteg::HmacSha256_128 => integ::HMAC_SHA2_256_128,
        EspInteg::HmacSha384_192 => integ::HMAC_SHA2_384_192,
        EspInteg::HmacSha512_256 => integ::HMAC_SHA2_512_256,
    }
}

fn parse_encr(t: &Transform) -> Option<EspEncr> {
    let bits_ok = |b: u16| matches!(b, 128 | 192 | 256);
    match t.id {
        encr::AES_CBC => t
            .key_length()
            .filter(|b| bits_ok(*b))
            .map(|key_bits| EspEncr::AesCbc { key_bits }),
        encr::AES_GCM_16 => t
            .key_length()
            .filter(|b| bits_ok(*b))
            .map(|key_bits| EspEncr::AesGcm16 { key_bits }),
        encr::CHACHA20_POLY1305 if t.attributes.is_empty() => Some(EspEncr::ChaCha20Poly1305),
        _ => None,
    }
}

fn parse_integ(id: u16) -> Option<EspInteg> {
    match id {
        integ::NONE => Some(EspInteg::None),
        integ::HMAC_SHA1_96 => Some(EspInteg::HmacSha1_96),
        integ::HMAC_SHA2_256_128 => Some(EspInteg::HmacSha256_128),
        integ::HMAC_SHA2_384_192 => Some(EspInteg::HmacSha384_192),
        integ::HMAC_SHA2_512_256 => Some(EspInteg::HmacSha512_256),
        _ => None,
    }
}

fn is_aead(e: EspEncr) -> bool {
    !matches!(e, EspEncr::AesCbc { .. })
}

impl IkeProposal {
    /// The SA payload proposal with number `num` and the given SPI (empty in IKE_SA_INIT,
    /// 8 octets in an IKE rekey). `dh_first` puts that group first.
    pub fn to_wire(&self, num: u8, spi: Vec<u8>, dh_first: Option<DhGroup>) -> Proposal {
        let mut t: Vec<Transform> = self.encr.iter().map(|e| encr_transform(*e)).collect();
        t.extend(
            self.prf
                .iter()
                .map(|p| Transform::new(TransformType::PRF, p.id())),
        );
        t.extend(
            self.integ
                .iter()
                .filter(|i| **i != EspInteg::None)
                .map(|i| Transform::new(TransformType::INTEG, integ_id(*i))),
        );
        let mut groups = self.dh.clone();
        if let Some(g) = dh_first {
            groups.retain(|x| *x != g);
            groups.insert(0, g);
        }
        t.extend(
            groups
                .iter()
                .map(|g| Transform::new(TransformType::DH, g.id())),
        );
        Proposal {
            num,
            protocol: ProtocolId::IKE,
            spi,
            transforms: t,
        }
    }

    /// Whether this proposal allows `suite`.
    pub fn allows(&self, s: &IkeSuite) -> bool {
        self.encr.contains(&s.encr)
            && self.prf.contains(&s.prf)
            && self.dh.contains(&s.dh)
            && (is_aead(s.encr) || self.integ.contains(&s.integ))
    }
}

impl EspProposal {
    /// The SA payload proposal with number `num`, SPI `spi` and, for PFS, a DH transform.
    pub fn to_wire(&self, num: u8, spi: [u8; 4], pfs: Option<DhGroup>) -> Proposal {
        let mut t: Vec<Transform> = self.encr.iter().map(|e| encr_transform(*e)).collect();
        t.extend(
            self.integ
                .iter()
                .filter(|i| **i != EspInteg::None)
                .map(|i| Transform::new(TransformType::INTEG, integ_id(*i))),
        );
        if let Some(g) = pfs {
            t.push(Transform::new(TransformType::DH, g.id()));
        }
        for e in &self.esn {
            t.push(Transform::new(TransformType::ESN, u16::from(*e)));
        }
        Proposal {
            num,
            protocol: ProtocolId::ESP,
            spi: spi.to_vec(),
            transforms: t,
        }
    }
}

/// What a responder picked from the peer's ESP proposals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChosenEsp {
    /// The suite.
    pub suite: EspSuite,
    /// ESN on or off.
    pub esn: bool,
    /// The PFS group, when the proposal had one.
    pub dh: Option<DhGroup>,
    /// The peer's SPI.
    pub peer_spi: [u8; 4],
    /// The proposal number.
    pub num: u8,
}

struct Parsed {
    encr: Vec<EspEncr>,
    integ: Vec<EspInteg>,
    prf: Vec<Prf>,
    dh: Vec<Option<DhGroup>>,
    esn: Vec<bool>,
    unknown_mandatory: bool,
}

fn parse(p: &Proposal) -> Parsed {
    let mut out = Parsed {
        encr: vec![],
        integ: vec![],
        prf: vec![],
        dh: vec![],
        esn: vec![],
        unknown_mandatory: false,
    };
    // Transforms of an unknown type mean the proposal cannot be accepted (RFC 7296 §3.3.6).
    for t in &p.transforms {
        match t.ty {
            TransformType::ENCR => out.encr.extend(parse_encr(t)),
            TransformType::INTEG => out.integ.extend(parse_integ(t.id)),
            TransformType::PRF => out.prf.extend(Prf::from_id(t.id)),
            TransformType::DH => {
                if t.id == 0 {
                    out.dh.push(None);
                } else if let Some(g) = DhGroup::from_id(t.id) {
                    out.dh.push(Some(g));
                }
            }
            TransformType::ESN => match t.id {
                0 => out.esn.push(false),
                1 => out.esn.push(true),
                _ => {}
            },
            _ => out.unknown_mandatory = true,
        }
    }
    out
}

/// Whether the proposal has any transform of `ty`.
fn has(p: &Proposal, ty: TransformType) -> bool {
    p.transforms.iter().any(|t| t.ty == ty)
}

/// Picks an IKE suite from the peer's proposals (responder side, RFC 7296 §2.7).
/// Returns the suite and the accepted proposal number.
pub fn select_ike(ours: &[IkeProposal], theirs: &[Proposal]) -> Option<(IkeSuite, u8)> {
    for p in theirs.iter().filter(|p| p.protocol == ProtocolId::IKE) {
        let t = parse(p);
        if t.unknown_mandatory {
            continue;
        }
        for o in ours {
            let Some(encr) = t.encr.iter().copied().find(|e| o.encr.contains(e)) else {
                continue;
            };
            let integ = if is_aead(encr) {
                if has(p, TransformType::INTEG) && !t.integ.contains(&EspInteg::None) {
                    continue;
                }
                EspInteg::None
            } else {
                match t
                    .integ
                    .iter()
                    .copied()
                    .find(|i| *i != EspInteg::None && o.integ.contains(i))
                {
                    Some(i) => i,
                    None => continue,
                }
            };
            let Some(prf) = t.prf.iter().copied().find(|x| o.prf.contains(x)) else {
                continue;
            };
            let Some(dh) = t.dh.iter().flatten().copied().find(|x| o.dh.contains(x)) else {
                continue;
            };
            return Some((
                IkeSuite {
                    encr,
                    integ,
                    prf,
                    dh,
                },
                p.num,
            ));
        }
    }
    None
}

/// Picks an ESP suite from the peer's proposals. `pfs` is the group we require (`None` = we
/// accept only proposals without a DH transform or with NONE).
pub fn select_esp(
    ours: &[EspProposal],
    theirs: &[Proposal],
    pfs: Option<DhGroup>,
) -> Option<ChosenEsp> {
    for p in theirs.iter().filter(|p| p.protocol == ProtocolId::ESP) {
        let t = parse(p);
        let Ok(peer_spi) = <[u8; 4]>::try_from(p.spi.as_slice()) else {
            continue;
        };
        if t.unknown_mandatory {
            continue;
        }
        let dh = match pfs {
            Some(g) => {
                if !t.dh.contains(&Some(g)) {
                    continue;
                }
                Some(g)
            }
            None => {
                if has(p, TransformType::DH) && !t.dh.contains(&None) {
                    continue;
                }
                None
            }
        };
        for o in ours {
            let Some(encr) = t.encr.iter().copied().find(|e| o.encr.contains(e)) else {
                continue;
            };
            let integ = if is_aead(encr) {
                if has(p, TransformType::INTEG) && !t.integ.contains(&EspInteg::None) {
                    continue;
                }
                EspInteg::None
            } else {
                match t
                    .integ
                    .iter()
                    .copied()
                    .find(|i| *i != EspInteg::None && o.integ.contains(i))
                {
                    Some(i) => i,
                    None => continue,
                }
            };
            // No ESN transform at all means no ESN.
            let peer_esn = if t.esn.is_empty() {
                vec![false]
            } else {
                t.esn.clone()
            };
            let Some(esn) = peer_esn.iter().copied().find(|e| o.esn.contains(e)) else {
                continue;
            };
            return Some(ChosenEsp {
                suite: EspSuite { encr, integ },
                esn,
                dh,
                peer_spi,
                num: p.num,
            });
        }
    }
    None
}

/// Reads back the single proposal a responder chose (initiator side), checking it is one we
/// offered. Returns the IKE suite.
pub fn accept_ike_choice(ours: &[IkeProposal], chosen: &[Proposal]) -> Option<IkeSuite> {
    let [p] = chosen else { return None };
    let (suite, _) = select_ike(ours, std::slice::from_ref(p))?;
    // The responder must return exactly one transform per type.
    let t = parse(p);
    (t.encr.len() == 1 && t.prf.len() == 1 && t.dh.len() == 1).then_some(suite)
}

/// Like [`accept_ike_choice`] for ESP.
pub fn accept_esp_choice(
    ours: &[EspProposal],
    chosen: &[Proposal],
    pfs: Option<DhGroup>,
) -> Option<ChosenEsp> {
    let [p] = chosen else { return None };
    let c = select_esp(ours, std::slice::from_ref(p), pfs)?;
    let t = parse(p);
    (t.encr.len() == 1 && t.esn.len() <= 1).then_some(c)
}

/// A readable rendering of SA payload proposals, for NO_PROPOSAL_CHOSEN reports.
pub fn describe(props: &[Proposal]) -> String {
    let mut s = String::new();
    for (i, p) in props.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&format!("#{} {}:", p.num, p.protocol));
        for t in &p.transforms {
            let name = match t.ty {
                TransformType::ENCR => match parse_encr(t) {
                    Some(EspEncr::AesCbc { key_bits }) => format!("aes{key_bits}"),
                    Some(EspEncr::AesGcm16 { key_bits }) => format!("aes{key_bits}gcm16"),
                    Some(EspEncr::ChaCha20Poly1305) => "chacha20poly1305".into(),
                    None => format!("encr{}", t.id),
                },
                TransformType::INTEG => match parse_integ(t.id) {
                    Some(EspInteg::HmacSha1_96) => "sha1".into(),
                    Some(EspInteg::HmacSha256_128) => "sha256".into(),
                    Some(EspInteg::HmacSha384_192) => "sha384".into(),
                    Some(EspInteg::HmacSha512_256) => "sha512".into(),
                    _ => format!("integ{}", t.id),
                },
                TransformType::PRF => match Prf::from_id(t.id) {
                    Some(Prf::HmacSha1) => "prfsha1".into(),
                    Some(Prf::HmacSha256) => "prfsha256".into(),
                    Some(Prf::HmacSha384) => "prfsha384".into(),
                    Some(Prf::HmacSha512) => "prfsha512".into(),
                    None => format!("prf{}", t.id),
                },
                TransformType::DH => format!("dh{}", t.id),
                TransformType::ESN => {
                    if t.id == 1 {
                        "esn".into()
                    } else {
                        "noesn".into()
                    }
                }
                other => format!("{other}:{}", t.id),
            };
            s.push(' ');
            s.push_str(&name);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn azure_ike() -> IkeProposal {
        IkeProposal {
            encr: vec![EspEncr::AesCbc { key_bits: 256 }],
            integ: vec![EspInteg::HmacSha1_96],
            prf: vec![Prf::HmacSha1],
            dh: vec![DhGroup::Modp1024],
        }
    }

    #[test]
    fn ike_selection_takes_the_peers_first_acceptable() {
        let gcm = IkeProposal {
            encr: vec![EspEncr::AesGcm16 { key_bits: 256 }],
            integ: vec![],
            prf: vec![Prf::HmacSha256],
            dh: vec![DhGroup::Ecp256],
        };
        let theirs = vec![
            gcm.to_wire(1, vec![], None),
            azure_ike().to_wire(2, vec![], None),
        ];
        let (s, n) = select_ike(&[azure_ike()], &theirs).unwrap();
        assert_eq!(n, 2);
        assert_eq!(s.dh, DhGroup::Modp1024);
        let (s, n) = select_ike(&[azure_ike(), gcm.clone()], &theirs).unwrap();
        assert_eq!((n, s.encr), (1, EspEncr::AesGcm16 { key_bits: 256 }));
        assert_eq!(s.integ, EspInteg::None);
        assert!(select_ike(&[gcm], &[azure_ike().to_wire(1, vec![], None)]).is_none());
        let d = describe(&theirs);
        assert!(
            d.contains("aes256gcm16") && d.contains("dh2") && d.contains("prfsha1"),
            "{d}"
        );
    }

    #[test]
    fn esp_selection_and_pfs() {
        let ours = EspProposal {
            encr: vec![EspEncr::AesGcm16 { key_bits: 256 }],
            integ: vec![],
            esn: vec![false],
        };
        let no_pfs = ours.to_wire(1, [1, 2, 3, 4], None);
        let c = select_esp(
            std::slice::from_ref(&ours),
            std::slice::from_ref(&no_pfs),
            None,
        )
        .unwrap();
        assert_eq!(c.peer_spi, [1, 2, 3, 4]);
        assert!(!c.esn);
        assert_eq!(c.dh, None);
        // We require PFS; a proposal without DH is refused.
        assert!(
            select_esp(
                std::slice::from_ref(&ours),
                std::slice::from_ref(&no_pfs),
                Some(DhGroup::Modp2048)
            )
            .is_none()
        );
        let pfs = ours.to_wire(1, [1, 2, 3, 4], Some(DhGroup::Modp2048));
        let c = select_esp(
            std::slice::from_ref(&ours),
            std::slice::from_ref(&pfs),
            Some(DhGroup::Modp2048),
        )
        .unwrap();
        assert_eq!(c.dh, Some(DhGroup::Modp2048));
        // We do not want PFS; a proposal that insists on DH is refused.
        assert!(select_esp(&[ours], &[pfs], None).is_none());
    }
}
