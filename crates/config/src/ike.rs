//! IKEv2 settings of a tunnel: the model ([`TunnelIke`], [`IkeSettings`], [`Proposal`],
//! [`Identity`]) and the pure parsers the validator uses (strongSwan-style proposal names,
//! identities, pre-shared keys), with the problems they report ([`IkeProblem`]).
//!
//! A tunnel is keyed by IKE when it has `psk` or `psk_file` (and optionally `[tunnel.ike]`);
//! the validator in `validate.rs` places every problem at its file, line and TOML path.
//!
//! Not here: negotiation (crate `bh-ike`), certificates, EAP. Cloud presets are in
//! [`crate::cloud`]; [`IkeSettings::for_cloud`] gives their defaults.

use std::net::IpAddr;
use std::time::Duration;

use bh_crypto::dh::DhGroup;
use bh_crypto::prf::Prf;
use bh_crypto::{EspEncr, EspInteg};
use zeroize::Zeroizing;

/// Default `[tunnel.ike] proposals`: AES-GCM-256 or AES-CBC-256/SHA-256 with ECP-256 or
/// MODP-2048, which AWS and GCP accept.
pub const DEFAULT_IKE_PROPOSALS: &[&str] = &[
    "aes256gcm16-prfsha256-ecp256-modp2048",
    "aes256-sha256-ecp256-modp2048",
];
/// Default `[tunnel.ike] esp_proposals`.
pub const DEFAULT_ESP_PROPOSALS: &[&str] = &["aes256gcm16", "aes256-sha256"];
/// Default `pfs` group (AWS and GCP want PFS; Azure's default policy needs `pfs = "none"`).
pub const DEFAULT_PFS: DhGroup = DhGroup::Ecp256;
/// Default IKE SA lifetime, below every cloud's (AWS and Azure 28,800 s), so we rekey first.
pub const DEFAULT_IKE_LIFETIME: Duration = Duration::from_secs(28_000);
/// Default Child SA lifetime, below AWS's 3,600 s.
pub const DEFAULT_CHILD_LIFETIME: Duration = Duration::from_secs(3_000);
/// Default DPD interval (AWS's own configuration uses 10 s × 3).
pub const DEFAULT_DPD_INTERVAL: Duration = Duration::from_secs(10);
/// Default DPD timeout.
pub const DEFAULT_DPD_TIMEOUT: Duration = Duration::from_secs(30);
/// Shortest pre-shared key accepted (AWS's minimum).
pub const MIN_PSK_LEN: usize = 8;
/// Longest pre-shared key accepted.
pub const MAX_PSK_LEN: usize = 512;

/// IKE keying of one tunnel.
#[derive(Clone)]
pub struct TunnelIke {
    /// The pre-shared key (from `psk` or `psk_file`), RFC 7296 §2.15.
    pub psk: Zeroizing<Vec<u8>>,
    /// Our identity (`local_id`; default `appliance.public_ip`, else `private_ip`).
    pub local_id: Identity,
    /// The identity the peer must present (`remote_id`; default the `peer` address).
    pub remote_id: Identity,
    /// `[tunnel.ike]`.
    pub settings: IkeSettings,
}

impl std::fmt::Debug for TunnelIke {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelIke")
            .field("psk", &"<redacted>")
            .field("local_id", &self.local_id)
            .field("remote_id", &self.remote_id)
            .field("settings", &self.settings)
            .finish()
    }
}

/// `[tunnel.ike]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSettings {
    /// IKE SA proposals, in order of preference (`proposals`).
    pub proposals: Vec<Proposal>,
    /// Child SA (ESP) proposals, in order of preference (`esp_proposals`).
    pub esp_proposals: Vec<Proposal>,
    /// The DH group of the KE payload in CREATE_CHILD_SA (`pfs`); `None` for `"none"`.
    pub pfs: Option<DhGroup>,
    /// Whether we start the IKE SA (`initiate`, default true) or only answer.
    pub initiate: bool,
    /// IKE SA lifetime (`ike_lifetime`, seconds).
    pub ike_lifetime: Duration,
    /// Child SA lifetime (`child_lifetime`, seconds).
    pub child_lifetime: Duration,
    /// Liveness check interval (`dpd_interval`, seconds); `None` when 0.
    pub dpd_interval: Option<Duration>,
    /// How long without an answer before the peer is declared dead (`dpd_timeout`, seconds).
    pub dpd_timeout: Duration,
}

impl Default for IkeSettings {
    fn default() -> Self {
        Self {
            proposals: DEFAULT_IKE_PROPOSALS
                .iter()
                .filter_map(|s| parse_proposal(s, ProposalKind::Ike).ok())
                .collect(),
            esp_proposals: DEFAULT_ESP_PROPOSALS
                .iter()
                .filter_map(|s| parse_proposal(s, ProposalKind::Esp).ok())
                .collect(),
            pfs: Some(DEFAULT_PFS),
            initiate: true,
            ike_lifetime: DEFAULT_IKE_LIFETIME,
            child_lifetime: DEFAULT_CHILD_LIFETIME,
            dpd_interval: Some(DEFAULT_DPD_INTERVAL),
            dpd_timeout: DEFAULT_DPD_TIMEOUT,
        }
    }
}

impl IkeSettings {
    /// The defaults of a tunnel with `cloud` (the plain defaults for `None`).
    pub fn for_cloud(cloud: Option<crate::cloud::Cloud>) -> Self {
        let Some(cloud) = cloud else {
            return Self::default();
        };
        let p = cloud.preset();
        let list = |names: &[&str], kind| {
            names
                .iter()
                .filter_map(|s| parse_proposal(s, kind).ok())
                .collect()
        };
        Self {
            proposals: list(p.ike_proposals, ProposalKind::Ike),
            esp_proposals: list(p.esp_proposals, ProposalKind::Esp),
            pfs: p.pfs,
            initiate: p.initiate,
            ike_lifetime: p.ike_lifetime,
            child_lifetime: p.child_lifetime,
            dpd_interval: Some(p.dpd_interval),
            dpd_timeout: p.dpd_timeout,
        }
    }
}

/// One proposal: every listed transform of each type is acceptable (RFC 7296 §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Encryption algorithms (all AEAD or all not).
    pub encr: Vec<EspEncr>,
    /// Integrity algorithms; empty with AEAD.
    pub integ: Vec<EspInteg>,
    /// PRFs (IKE only; derived from the integrity algorithms when not named).
    pub prf: Vec<Prf>,
    /// DH groups (IKE only; ESP uses the tunnel's `pfs`).
    pub dh: Vec<DhGroup>,
    /// Extended sequence numbers offered (ESP only): `[false]` unless `esn` is named.
    pub esn: Vec<bool>,
}

impl Proposal {
    /// Whether the encryption is AEAD (AES-GCM, ChaCha20-Poly1305).
    pub fn is_aead(&self) -> bool {
        self.encr.first().is_some_and(|e| is_aead(*e))
    }

    /// Every ESP suite this proposal can end in (encryption × integrity).
    pub fn esp_suites(&self) -> Vec<bh_crypto::EspSuite> {
        let mut out = Vec::new();
        for &encr in &self.encr {
            if is_aead(encr) {
                out.push(bh_crypto::EspSuite::aead(encr));
            } else {
                for &integ in &self.integ {
                    out.push(bh_crypto::EspSuite { encr, integ });
                }
            }
        }
        out
    }
}

impl Proposal {
    /// The proposal in the words of the configuration, `-`-joined (`aes256-sha1-modp1024`):
    /// encryption, integrity, PRF only where it is not the one the integrity implies, DH
    /// groups, and `esn` when offered.
    pub fn words(&self) -> String {
        let mut w: Vec<&str> = Vec::new();
        w.extend(self.encr.iter().filter_map(|e| word_of(ENCR_WORDS, e)));
        w.extend(self.integ.iter().filter_map(|i| word_of(INTEG_WORDS, i)));
        let implied: Vec<Prf> = self.integ.iter().filter_map(|i| prf_for(*i)).collect();
        if self.prf != implied {
            w.extend(self.prf.iter().filter_map(|p| word_of(PRF_WORDS, p)));
        }
        w.extend(self.dh.iter().filter_map(|g| word_of(DH_WORDS, g)));
        if self.esn.contains(&true) {
            w.push("esn");
        }
        w.join("-")
    }
}

/// The configuration's word for a DH group (`modp1024`, `ecp256`, ...).
pub fn dh_word(g: DhGroup) -> &'static str {
    word_of(DH_WORDS, &g).unwrap_or("?")
}

fn word_of<T: PartialEq>(table: &[(&'static str, T)], v: &T) -> Option<&'static str> {
    table.iter().find(|(_, x)| x == v).map(|&(w, _)| w)
}

fn is_aead(e: EspEncr) -> bool {
    matches!(e, EspEncr::AesGcm16 { .. } | EspEncr::ChaCha20Poly1305)
}

/// An IKE identity (RFC 7296 §3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// ID_IPV4_ADDR or ID_IPV6_ADDR.
    Addr(IpAddr),
    /// ID_FQDN.
    Fqdn(String),
    /// ID_RFC822_ADDR (has an `@`).
    Email(String),
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Addr(a) => write!(f, "{a}"),
            Self::Fqdn(s) | Self::Email(s) => f.write_str(s),
        }
    }
}

/// Which kind of SA a proposal is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposalKind {
    /// An IKE SA: encryption, integrity (unless AEAD), PRF and DH.
    Ike,
    /// A Child SA: encryption, integrity (unless AEAD), optional `esn`.
    Esp,
}

/// What is wrong with an IKE setting. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IkeProblem {
    /// A proposal word bridgehead does not know.
    #[error("proposal {proposal:?}: unknown algorithm {word:?}")]
    UnknownAlgorithm {
        /// The proposal.
        proposal: String,
        /// The word.
        word: String,
    },
    /// A proposal that breaks a rule of RFC 7296 §3.3.
    #[error("proposal {proposal:?}: {rule}")]
    BadProposal {
        /// The proposal.
        proposal: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// An empty proposal list.
    #[error("the list of proposals is empty")]
    NoProposals,
    /// An unknown `pfs` group.
    #[error("unknown DH group {value:?}")]
    UnknownGroup {
        /// The value.
        value: String,
    },
    /// A pre-shared key that is too short or too long (its length only).
    #[error("the pre-shared key is {len} bytes; {MIN_PSK_LEN}..={MAX_PSK_LEN} are accepted")]
    PskLength {
        /// Its length.
        len: usize,
    },
    /// Both `psk` and `psk_file`.
    #[error("psk and psk_file cannot both be set")]
    PskAndPskFile,
    /// IKE keys next to `[tunnel.manual]`.
    #[error("a tunnel is keyed either manually or by IKE, not both")]
    ManualAndIke,
    /// `[tunnel.ike]` without a key.
    #[error("[tunnel.ike] needs psk or psk_file")]
    NoPsk,
    /// No `local_id` and no address to default it to.
    #[error("no local_id, and no appliance.public_ip or private_ip to use instead")]
    NoLocalId,
    /// An empty identity.
    #[error("the identity is empty")]
    EmptyIdentity,
    /// DPD timeout not longer than the interval.
    #[error("dpd_timeout {timeout} s is not longer than dpd_interval {interval} s")]
    DpdTimeout {
        /// The timeout.
        timeout: u64,
        /// The interval.
        interval: u64,
    },
    /// A Child SA that would outlive its IKE SA.
    #[error("child_lifetime {child} s is longer than ike_lifetime {ike} s")]
    ChildOutlivesIke {
        /// Child SA lifetime.
        child: u64,
        /// IKE SA lifetime.
        ike: u64,
    },
}

impl IkeProblem {
    /// How to fix it.
    pub fn hint(&self) -> String {
        match self {
            Self::UnknownAlgorithm { .. } => format!(
                "known words: {} (strongSwan names, joined by -)",
                ALGORITHM_WORDS.join(", ")
            ),
            Self::BadProposal { .. } => {
                "e.g. \"aes256gcm16-prfsha256-ecp256\" or \"aes256-sha256-modp2048\" for IKE, \
                 \"aes256gcm16\" or \"aes256-sha256\" for ESP"
                    .into()
            }
            Self::NoProposals => "list at least one proposal, or remove the key".into(),
            Self::UnknownGroup { .. } => format!(
                "use \"none\" or one of {}",
                DH_WORDS
                    .iter()
                    .map(|(w, _)| *w)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Self::PskLength { .. } => {
                "use the key the cloud generated; AWS accepts 8 to 64 of A-Za-z0-9._".into()
            }
            Self::PskAndPskFile => "keep one of them".into(),
            Self::ManualAndIke => {
                "remove [tunnel.manual], or remove psk, psk_file and [tunnel.ike]".into()
            }
            Self::NoPsk => "set psk_file = \"/etc/bridgehead/psk/<tunnel>\" (mode 0600)".into(),
            Self::NoLocalId => {
                "set appliance.public_ip (the NATed address the peer knows us by) or local_id"
                    .into()
            }
            Self::EmptyIdentity => "write an IP address, a host name or user@domain".into(),
            Self::DpdTimeout { .. } => "e.g. dpd_interval = 10 and dpd_timeout = 30".into(),
            Self::ChildOutlivesIke { .. } => {
                "rekeying needs the IKE SA: keep child_lifetime at most ike_lifetime".into()
            }
        }
    }
}

/// DH group words, strongSwan names.
pub const DH_WORDS: &[(&str, DhGroup)] = &[
    ("modp1024", DhGroup::Modp1024),
    ("modp2048", DhGroup::Modp2048),
    ("modp3072", DhGroup::Modp3072),
    ("modp4096", DhGroup::Modp4096),
    ("modp2048s256", DhGroup::Modp2048s256),
    ("ecp256", DhGroup::Ecp256),
    ("ecp384", DhGroup::Ecp384),
    ("ecp521", DhGroup::Ecp521),
    ("curve25519", DhGroup::Curve25519),
    ("x25519", DhGroup::Curve25519),
];

const ENCR_WORDS: &[(&str, EspEncr)] = &[
    ("aes128", EspEncr::AesCbc { key_bits: 128 }),
    ("aes192", EspEncr::AesCbc { key_bits: 192 }),
    ("aes256", EspEncr::AesCbc { key_bits: 256 }),
    ("aes", EspEncr::AesCbc { key_bits: 128 }),
    ("aes128gcm16", EspEncr::AesGcm16 { key_bits: 128 }),
    ("aes192gcm16", EspEncr::AesGcm16 { key_bits: 192 }),
    ("aes256gcm16", EspEncr::AesGcm16 { key_bits: 256 }),
    ("aes128gcm128", EspEncr::AesGcm16 { key_bits: 128 }),
    ("aes192gcm128", EspEncr::AesGcm16 { key_bits: 192 }),
    ("aes256gcm128", EspEncr::AesGcm16 { key_bits: 256 }),
    ("chacha20poly1305", EspEncr::ChaCha20Poly1305),
];

const INTEG_WORDS: &[(&str, EspInteg)] = &[
    ("sha1", EspInteg::HmacSha1_96),
    ("sha", EspInteg::HmacSha1_96),
    ("sha256", EspInteg::HmacSha256_128),
    ("sha2_256", EspInteg::HmacSha256_128),
    ("sha384", EspInteg::HmacSha384_192),
    ("sha2_384", EspInteg::HmacSha384_192),
    ("sha512", EspInteg::HmacSha512_256),
    ("sha2_512", EspInteg::HmacSha512_256),
];

const PRF_WORDS: &[(&str, Prf)] = &[
    ("prfsha1", Prf::HmacSha1),
    ("prfsha256", Prf::HmacSha256),
    ("prfsha384", Prf::HmacSha384),
    ("prfsha512", Prf::HmacSha512),
];

/// Every algorithm word, for the hint.
const ALGORITHM_WORDS: &[&str] = &[
    "aes128",
    "aes192",
    "aes256",
    "aes128gcm16",
    "aes192gcm16",
    "aes256gcm16",
    "chacha20poly1305",
    "sha1",
    "sha256",
    "sha384",
    "sha512",
    "prfsha1",
    "prfsha256",
    "prfsha384",
    "prfsha512",
    "modp1024",
    "modp2048",
    "modp3072",
    "modp4096",
    "modp2048s256",
    "ecp256",
    "ecp384",
    "ecp521",
    "curve25519",
    "esn",
    "noesn",
];

fn lookup<T: Copy>(table: &[(&str, T)], word: &str) -> Option<T> {
    table.iter().find(|(w, _)| *w == word).map(|&(_, v)| v)
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// The PRF that goes with an integrity algorithm when a proposal names none (strongSwan does
/// the same).
fn prf_for(integ: EspInteg) -> Option<Prf> {
    match integ {
        EspInteg::HmacSha1_96 => Some(Prf::HmacSha1),
        EspInteg::HmacSha256_128 => Some(Prf::HmacSha256),
        EspInteg::HmacSha384_192 => Some(Prf::HmacSha384),
        EspInteg::HmacSha512_256 => Some(Prf::HmacSha512),
        EspInteg::None => None,
    }
}

/// Parses a strongSwan-style proposal such as `aes256gcm16-prfsha256-ecp256` (IKE) or
/// `aes256-sha256` (ESP).
///
/// # Errors
///
/// [`IkeProblem::UnknownAlgorithm`] for a word it does not know, [`IkeProblem::BadProposal`]
/// for a combination RFC 7296 §3.3 does not allow (AEAD with an integrity algorithm, CBC
/// without, an IKE proposal without a DH group, a DH group in an ESP proposal, ...).
pub fn parse_proposal(s: &str, kind: ProposalKind) -> Result<Proposal, IkeProblem> {
    let quoted: String = s.chars().take(64).collect();
    let bad = |rule| IkeProblem::BadProposal {
        proposal: quoted.clone(),
        rule,
    };
    let mut p = Proposal {
        encr: Vec::new(),
        integ: Vec::new(),
        prf: Vec::new(),
        dh: Vec::new(),
        esn: Vec::new(),
    };
    if s.trim().is_empty() {
        return Err(bad("it is empty"));
    }
    for word in s.split('-') {
        let w = word.trim().to_ascii_lowercase();
        if let Some(e) = lookup(ENCR_WORDS, &w) {
            push_unique(&mut p.encr, e);
        } else if let Some(i) = lookup(INTEG_WORDS, &w) {
            push_unique(&mut p.integ, i);
        } else if let Some(f) = lookup(PRF_WORDS, &w) {
            push_unique(&mut p.prf, f);
        } else if let Some(g) = lookup(DH_WORDS, &w) {
            push_unique(&mut p.dh, g);
        } else if w == "esn" || w == "noesn" {
            if kind == ProposalKind::Ike {
                return Err(bad("esn and noesn belong in ESP proposals"));
            }
            push_unique(&mut p.esn, w == "esn");
        } else {
            return Err(IkeProblem::UnknownAlgorithm {
                proposal: quoted,
                word: word.chars().take(32).collect(),
            });
        }
    }
    if p.encr.is_empty() {
        return Err(bad("it names no encryption algorithm"));
    }
    let aead = p.encr.iter().filter(|e| is_aead(**e)).count();
    if aead != 0 && aead != p.encr.len() {
        return Err(bad(
            "AEAD and non-AEAD ciphers cannot share a proposal; write two proposals",
        ));
    }
    if aead != 0 && !p.integ.is_empty() {
        return Err(bad(
            "an AEAD cipher takes no integrity algorithm (RFC 5282 §8)",
        ));
    }
    if aead == 0 && p.integ.is_empty() {
        return Err(bad(
            "a CBC cipher needs an integrity algorithm, e.g. sha256",
        ));
    }
    match kind {
        ProposalKind::Ike => {
            if p.dh.is_empty() {
                return Err(bad("an IKE proposal needs a DH group, e.g. ecp256"));
            }
            if p.prf.is_empty() {
                if aead != 0 {
                    return Err(bad("an AEAD IKE proposal needs a PRF, e.g. prfsha256"));
                }
                for i in p.integ.clone() {
                    if let Some(f) = prf_for(i) {
                        push_unique(&mut p.prf, f);
                    }
                }
            }
        }
        ProposalKind::Esp => {
            if !p.prf.is_empty() {
                return Err(bad("an ESP proposal takes no PRF"));
            }
            if !p.dh.is_empty() {
                return Err(bad(
                    "put the PFS group in the tunnel's pfs key, not in esp_proposals",
                ));
            }
            if p.esn.is_empty() {
                p.esn.push(false);
            }
        }
    }
    Ok(p)
}

/// Parses `pfs`: `"none"` or a DH group name.
///
/// # Errors
///
/// [`IkeProblem::UnknownGroup`].
pub fn parse_pfs(s: &str) -> Result<Option<DhGroup>, IkeProblem> {
    let w = s.trim().to_ascii_lowercase();
    if w == "none" {
        return Ok(None);
    }
    lookup(DH_WORDS, &w)
        .map(Some)
        .ok_or_else(|| IkeProblem::UnknownGroup {
            value: s.chars().take(32).collect(),
        })
}

/// Parses an identity: an IP address, `user@domain` or a host name.
///
/// # Errors
///
/// [`IkeProblem::EmptyIdentity`].
pub fn parse_identity(s: &str) -> Result<Identity, IkeProblem> {
    let s = s.trim();
    if s.is_empty() {
        return Err(IkeProblem::EmptyIdentity);
    }
    Ok(if let Ok(a) = s.parse::<IpAddr>() {
        Identity::Addr(a)
    } else if s.contains('@') {
        Identity::Email(s.to_owned())
    } else {
        Identity::Fqdn(s.to_owned())
    })
}

/// Checks a pre-shared key's length; a key file's one trailing newline (`\n` or `\r\n`) is
/// not part of the key and is cut before calling this.
///
/// # Errors
///
/// [`IkeProblem::PskLength`].
pub fn check_psk(psk: &[u8]) -> Result<(), IkeProblem> {
    if (MIN_PSK_LEN..=MAX_PSK_LEN).contains(&psk.len()) {
        Ok(())
    } else {
        Err(IkeProblem::PskLength { len: psk.len() })
    }
}

/// The bytes of a PSK file without its trailing newline, in a wiped buffer.
pub fn psk_from_file(bytes: &[u8]) -> Zeroizing<Vec<u8>> {
    let end = bytes
        .strip_suffix(b"\r\n")
        .or_else(|| bytes.strip_suffix(b"\n"))
        .unwrap_or(bytes);
    Zeroizing::new(end.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_print_back_in_their_words() {
        for (text, kind) in [
            ("aes256-sha1-modp1024", ProposalKind::Ike),
            ("aes256gcm16-prfsha256-modp2048-ecp256", ProposalKind::Ike),
            ("aes128-sha256-prfsha384-modp2048", ProposalKind::Ike),
            ("aes256gcm16", ProposalKind::Esp),
            ("aes128-sha1-esn", ProposalKind::Esp),
        ] {
            assert_eq!(parse_proposal(text, kind).unwrap().words(), text);
        }
        assert_eq!(dh_word(DhGroup::Modp1024), "modp1024");
    }

    #[test]
    fn ike_proposals() {
        let p = parse_proposal("aes256gcm16-prfsha256-ecp256", ProposalKind::Ike).unwrap();
        assert_eq!(p.encr, vec![EspEncr::AesGcm16 { key_bits: 256 }]);
        assert!(p.integ.is_empty());
        assert_eq!(p.prf, vec![Prf::HmacSha256]);
        assert_eq!(p.dh, vec![DhGroup::Ecp256]);
        assert!(p.is_aead());
        // The PRF follows the integrity algorithms when none is named.
        let p = parse_proposal("aes256-aes128-sha1-sha256-modp1024", ProposalKind::Ike).unwrap();
        assert_eq!(p.prf, vec![Prf::HmacSha1, Prf::HmacSha256]);
        assert_eq!(p.encr.len(), 2);
        assert_eq!(p.dh, vec![DhGroup::Modp1024]);
        let err = |s| parse_proposal(s, ProposalKind::Ike).unwrap_err();
        assert!(matches!(
            err("aes256gcm16-ecp256"),
            IkeProblem::BadProposal { .. }
        ));
        assert!(matches!(
            err("aes256-sha256"),
            IkeProblem::BadProposal { .. }
        ));
        assert!(matches!(
            err("aes256-modp2048"),
            IkeProblem::BadProposal { .. }
        ));
        assert!(matches!(
            err("aes256gcm16-sha256-prfsha256-ecp256"),
            IkeProblem::BadProposal { .. }
        ));
        assert!(matches!(
            err("aes256-aes256gcm16-sha1-modp2048"),
            IkeProblem::BadProposal { .. }
        ));
        assert!(matches!(
            err("aes256-sha256-esn-modp2048"),
            IkeProblem::BadProposal { .. }
        ));
        assert_eq!(
            err("3des-sha1-modp1024"),
            IkeProblem::UnknownAlgorithm {
                proposal: "3des-sha1-modp1024".into(),
                word: "3des".into()
            }
        );
        assert!(matches!(err(""), IkeProblem::BadProposal { .. }));
        assert!(matches!(err("--"), IkeProblem::UnknownAlgorithm { .. }));
    }

    #[test]
    fn esp_proposals() {
        let p = parse_proposal("aes256gcm16", ProposalKind::Esp).unwrap();
        assert_eq!(p.esn, vec![false]);
        assert_eq!(
            p.esp_suites(),
            vec![bh_crypto::EspSuite::from_name("aes256gcm16").unwrap()]
        );
        let p = parse_proposal("aes128-aes256-sha1-sha256-esn-noesn", ProposalKind::Esp).unwrap();
        assert_eq!(p.esn, vec![true, false]);
        assert_eq!(p.esp_suites().len(), 4);
        let err = |s| parse_proposal(s, ProposalKind::Esp).unwrap_err();
        assert!(
            matches!(err("aes256gcm16-ecp256"), IkeProblem::BadProposal { rule, .. } if rule.contains("pfs"))
        );
        assert!(matches!(
            err("aes256-sha256-prfsha256"),
            IkeProblem::BadProposal { .. }
        ));
        assert!(matches!(err("aes256"), IkeProblem::BadProposal { .. }));
    }

    #[test]
    fn defaults_parse() {
        let d = IkeSettings::default();
        assert_eq!(d.proposals.len(), DEFAULT_IKE_PROPOSALS.len());
        assert_eq!(d.esp_proposals.len(), DEFAULT_ESP_PROPOSALS.len());
        assert!(d.child_lifetime < d.ike_lifetime);
    }

    #[test]
    fn pfs_identity_and_psk() {
        assert_eq!(parse_pfs("none").unwrap(), None);
        assert_eq!(parse_pfs("ECP256").unwrap(), Some(DhGroup::Ecp256));
        assert!(parse_pfs("modp768").is_err());
        assert_eq!(
            parse_identity("203.0.113.10").unwrap(),
            Identity::Addr("203.0.113.10".parse().unwrap())
        );
        assert_eq!(
            parse_identity("vpn@example.com").unwrap(),
            Identity::Email("vpn@example.com".into())
        );
        assert_eq!(
            parse_identity("gw.example.com").unwrap(),
            Identity::Fqdn("gw.example.com".into())
        );
        assert_eq!(parse_identity(" "), Err(IkeProblem::EmptyIdentity));
        assert!(check_psk(b"12345678").is_ok());
        assert_eq!(check_psk(b"short"), Err(IkeProblem::PskLength { len: 5 }));
        assert_eq!(psk_from_file(b"abc\n").as_slice(), b"abc");
        assert_eq!(psk_from_file(b"abc\r\n").as_slice(), b"abc");
        assert_eq!(psk_from_file(b"abc\n\n").as_slice(), b"abc\n");
        let t = TunnelIke {
            psk: Zeroizing::new(b"secretsecret".to_vec()),
            local_id: Identity::Fqdn("a".into()),
            remote_id: Identity::Fqdn("b".into()),
            settings: IkeSettings::default(),
        };
        assert!(!format!("{t:?}").contains("secretsecret"));
    }

    use crate::{ConfigErrors, ErrorKind, FileMeta, LoadCtx, MemFiles};

    const CONF: &str = "/etc/bridgehead/bridgehead.toml";
    const PSK_FILE: &str = "/etc/bridgehead/psk/aws0";

    fn load(text: &str, conf_mode: u32, psk_mode: u32) -> Result<crate::Config, ConfigErrors> {
        let mut files = MemFiles::new();
        files.insert(
            CONF,
            FileMeta {
                mode: conf_mode,
                uid: 0,
            },
            text.as_bytes(),
        );
        files.insert(
            PSK_FILE,
            FileMeta {
                mode: psk_mode,
                uid: 0,
            },
            b"Aws_Generated.Key_0123456789\n",
        );
        let ctx = LoadCtx {
            online_cores: 1,
            euid: 0,
            files: &files,
        };
        crate::parse(std::path::Path::new(CONF), text, &ctx)
    }

    const IKE_CONF: &str = r#"[appliance]
private_ip = "10.0.1.4"
public_ip = "203.0.113.10"

[[tunnel]]
name = "aws0"
peer = "34.236.200.191"
inside = ["169.254.21.2/30"]
psk_file = "/etc/bridgehead/psk/aws0"

[tunnel.ike]
proposals = ["aes256gcm16-prfsha256-ecp256", "aes256-sha256-modp2048"]
esp_proposals = ["aes256gcm16", "aes128-sha1"]
pfs = "modp2048"
initiate = false
ike_lifetime = 28000
child_lifetime = 3000
dpd_interval = 10
dpd_timeout = 40

[[tunnel]]
name = "azure0"
peer = "20.1.2.3"
psk_file = "/etc/bridgehead/psk/aws0"
local_id = "cgw.example.com"
remote_id = "20.1.2.3"
ike = { proposals = ["aes256-sha1-modp1024"], esp_proposals = ["aes256-sha1"], pfs = "none" }
"#;

    #[test]
    fn ike_tunnels_load_with_defaults() {
        let cfg = load(IKE_CONF, 0o644, 0o600).unwrap_or_else(|e| panic!("{e}"));
        let t = &cfg.tunnels[0];
        assert!(t.manual.is_none());
        let ike = t.ike.as_ref().unwrap();
        assert_eq!(ike.psk.as_slice(), b"Aws_Generated.Key_0123456789");
        assert_eq!(
            ike.local_id,
            Identity::Addr("203.0.113.10".parse().unwrap())
        );
        assert_eq!(
            ike.remote_id,
            Identity::Addr("34.236.200.191".parse().unwrap())
        );
        let s = &ike.settings;
        assert_eq!(s.proposals.len(), 2);
        assert_eq!(s.proposals[1].prf, vec![Prf::HmacSha256]);
        assert_eq!(s.esp_proposals[1].integ, vec![EspInteg::HmacSha1_96]);
        assert_eq!(s.pfs, Some(DhGroup::Modp2048));
        assert!(!s.initiate);
        assert_eq!(s.dpd_timeout, Duration::from_secs(40));
        let az = cfg.tunnels[1].ike.as_ref().unwrap();
        assert_eq!(az.local_id, Identity::Fqdn("cgw.example.com".into()));
        assert_eq!(az.settings.pfs, None);
        assert_eq!(az.settings.proposals[0].dh, vec![DhGroup::Modp1024]);
        // Defaults for what [tunnel.ike] leaves out.
        assert!(az.settings.initiate);
        assert_eq!(az.settings.child_lifetime, DEFAULT_CHILD_LIFETIME);
    }

    fn problems(e: &ConfigErrors) -> Vec<(usize, String, Option<IkeProblem>)> {
        e.iter()
            .map(|e| {
                let p = match &e.kind {
                    ErrorKind::Ike { problem } => Some(problem.clone()),
                    _ => None,
                };
                (e.line, e.path.clone(), p)
            })
            .collect()
    }

    #[test]
    fn every_ike_mistake_is_reported_with_its_place() {
        let text = IKE_CONF
            .replace("\"aes256-sha256-modp2048\"]", "\"aes256-sha256-modp768\"]")
            .replace("pfs = \"modp2048\"", "pfs = \"dh5\"")
            .replace("dpd_timeout = 40", "dpd_timeout = 10")
            .replace("local_id = \"cgw.example.com\"", "local_id = \"\"")
            .replace(
                "esp_proposals = [\"aes256-sha1\"]",
                "esp_proposals = [\"aes256-sha1-modp1024\"]",
            );
        let e = load(&text, 0o644, 0o600).unwrap_err();
        let got = problems(&e);
        assert_eq!(got.len(), 5, "{e}");
        assert_eq!(got[0].0, 12);
        assert_eq!(got[0].1, "tunnel[0].ike.proposals[1]");
        assert!(
            matches!(&got[0].2, Some(IkeProblem::UnknownAlgorithm { word, .. }) if word == "modp768")
        );
        assert_eq!((got[1].0, got[1].1.as_str()), (14, "tunnel[0].ike.pfs"));
        assert_eq!(
            (got[2].0, got[2].1.as_str()),
            (19, "tunnel[0].ike.dpd_timeout")
        );
        assert_eq!(
            got[2].2,
            Some(IkeProblem::DpdTimeout {
                timeout: 10,
                interval: 10
            })
        );
        assert_eq!((got[3].0, got[3].1.as_str()), (25, "tunnel[1].local_id"));
        assert_eq!(got[4].1, "tunnel[1].ike.esp_proposals[0]");
        // Each message carries its hint.
        let text = e.to_string();
        assert!(
            text.contains("/etc/bridgehead/bridgehead.toml:12:"),
            "{text}"
        );
        assert!(text.contains("known words:"), "{text}");
        assert!(text.contains("pfs key"), "{text}");
    }

    /// The IKE example of docs/configuration.md loads and means what the text says.
    #[test]
    fn documented_ike_example_loads() {
        let doc = include_str!("../../../docs/configuration.md");
        let block: String = doc
            .split("```toml ike\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("the IKE example block")
            .to_owned();
        let mut files = MemFiles::new();
        let meta = FileMeta {
            mode: 0o600,
            uid: 0,
        };
        files.insert(CONF, meta, block.as_bytes());
        files.insert(PSK_FILE, meta, b"Aws_Generated.Key_0123456789");
        files.insert(
            "/etc/bridgehead/psk/azure0",
            meta,
            b"Azure.Key_0123456789\n",
        );
        let ctx = LoadCtx {
            online_cores: 1,
            euid: 0,
            files: &files,
        };
        let cfg = crate::parse(std::path::Path::new(CONF), &block, &ctx)
            .unwrap_or_else(|e| panic!("the documented IKE example fails:\n{e}"));
        let az = cfg.tunnels[1].ike.as_ref().unwrap();
        assert_eq!(az.settings.pfs, None);
        assert_eq!(az.settings.proposals[0].dh, vec![DhGroup::Modp1024]);
        assert_eq!(az.settings.child_lifetime, Duration::from_secs(27_000));
        assert_eq!(az.psk.as_slice(), b"Azure.Key_0123456789");
        assert_eq!(
            cfg.tunnels[0].ike.as_ref().unwrap().local_id,
            Identity::Addr("203.0.113.10".parse().unwrap())
        );
    }

    #[test]
    fn psk_sources_and_permissions() {
        // A world-readable PSK file is refused.
        let e = load(IKE_CONF, 0o644, 0o644).unwrap_err();
        assert!(
            e.iter()
                .all(|e| matches!(e.kind, ErrorKind::InsecureMode { .. })),
            "{e}"
        );
        assert_eq!(e.len(), 2);
        // An inline psk makes the configuration a secret file.
        let inline = IKE_CONF.replacen(
            "psk_file = \"/etc/bridgehead/psk/aws0\"",
            "psk = \"Inline_Key_012345\"",
            1,
        );
        let e = load(&inline, 0o644, 0o600).unwrap_err();
        assert_eq!(e.len(), 1, "{e}");
        assert_eq!(e.errors[0].path, "tunnel[0].psk");
        assert!(matches!(e.errors[0].kind, ErrorKind::InsecureMode { .. }));
        let cfg = load(&inline, 0o600, 0o600).unwrap();
        assert_eq!(
            cfg.tunnels[0].ike.as_ref().unwrap().psk.as_slice(),
            b"Inline_Key_012345"
        );
        // Both, too short, and IKE next to manual keys.
        let both = IKE_CONF.replacen("psk_file = ", "psk = \"Inline_Key_012345\"\npsk_file = ", 1);
        let e = load(&both, 0o600, 0o600).unwrap_err();
        assert_eq!(problems(&e)[0].2, Some(IkeProblem::PskAndPskFile));
        let short = IKE_CONF.replacen(
            "psk_file = \"/etc/bridgehead/psk/aws0\"",
            "psk = \"short\"",
            1,
        );
        let e = load(&short, 0o600, 0o600).unwrap_err();
        assert_eq!(problems(&e)[0].2, Some(IkeProblem::PskLength { len: 5 }));
        assert!(!e.to_string().contains("short\""));
        let manual = IKE_CONF.replacen(
            "\n[tunnel.ike]",
            "[tunnel.manual]\nsuite = \"aes128gcm16\"\noutbound_spi = 0x1001\ninbound_spi = 0x2002\noutbound_key = \"0x0101010101010101010101010101010101010101\"\ninbound_key = \"0x0202020202020202020202020202020202020202\"\n\n[tunnel.ike]",
            1,
        );
        let e = load(&manual, 0o600, 0o600).unwrap_err();
        assert!(
            problems(&e)
                .iter()
                .any(|p| p.2 == Some(IkeProblem::ManualAndIke)),
            "{e}"
        );
        // No address to take local_id from.
        let no_addr = IKE_CONF
            .replace("public_ip = \"203.0.113.10\"\n", "")
            .replace("private_ip = \"10.0.1.4\"\n", "");
        let e = load(&no_addr, 0o600, 0o600).unwrap_err();
        assert_eq!(problems(&e)[0].2, Some(IkeProblem::NoLocalId));
        assert_eq!(problems(&e)[0].1, "tunnel[0].local_id");
    }
}
