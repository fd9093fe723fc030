//! UPDATE (RFC 4271 §4.3) and its path attributes, with RFC 7606 error handling.
//!
//! AS_PATH is always held with 4-octet AS numbers: on a session without the 4-octet AS capability
//! the 2-octet AS_PATH and AS4_PATH (and AGGREGATOR/AS4_AGGREGATOR) are merged on decode and split
//! again on encode (RFC 6793 §4.2).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::reader::Reader;
use super::{AS_TRANS, AttrError, DecodeCtx, DecodeError, EncodeError, Rfc7606Action, update_sub};
use crate::{Afi, Family, Prefix, Safi};

/// Attribute flag bits (RFC 4271 §4.3).
pub mod attr_flags {
    /// Optional.
    pub const OPTIONAL: u8 = 0x80;
    /// Transitive.
    pub const TRANSITIVE: u8 = 0x40;
    /// Partial.
    pub const PARTIAL: u8 = 0x20;
    /// Extended Length.
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// Attribute type codes.
pub mod attr_type {
    /// ORIGIN.
    pub const ORIGIN: u8 = 1;
    /// AS_PATH.
    pub const AS_PATH: u8 = 2;
    /// NEXT_HOP.
    pub const NEXT_HOP: u8 = 3;
    /// MULTI_EXIT_DISC.
    pub const MED: u8 = 4;
    /// LOCAL_PREF.
    pub const LOCAL_PREF: u8 = 5;
    /// ATOMIC_AGGREGATE.
    pub const ATOMIC_AGGREGATE: u8 = 6;
    /// AGGREGATOR.
    pub const AGGREGATOR: u8 = 7;
    /// COMMUNITIES (RFC 1997).
    pub const COMMUNITIES: u8 = 8;
    /// MP_REACH_NLRI (RFC 4760).
    pub const MP_REACH: u8 = 14;
    /// MP_UNREACH_NLRI (RFC 4760).
    pub const MP_UNREACH: u8 = 15;
    /// AS4_PATH (RFC 6793).
    pub const AS4_PATH: u8 = 17;
    /// AS4_AGGREGATOR (RFC 6793).
    pub const AS4_AGGREGATOR: u8 = 18;
    /// LARGE_COMMUNITY (RFC 8092).
    pub const LARGE_COMMUNITIES: u8 = 32;
}

use attr_flags::{EXTENDED_LENGTH, OPTIONAL, PARTIAL, TRANSITIVE};

/// ORIGIN values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// IGP (0).
    Igp,
    /// EGP (1).
    Egp,
    /// INCOMPLETE (2).
    Incomplete,
}

/// AS_PATH segment types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentKind {
    /// AS_SET (1).
    Set,
    /// AS_SEQUENCE (2).
    Sequence,
    /// AS_CONFED_SEQUENCE (3, RFC 5065).
    ConfedSequence,
    /// AS_CONFED_SET (4, RFC 5065).
    ConfedSet,
}

impl SegmentKind {
    fn code(self) -> u8 {
        match self {
            Self::Set => 1,
            Self::Sequence => 2,
            Self::ConfedSequence => 3,
            Self::ConfedSet => 4,
        }
    }
    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            1 => Self::Set,
            2 => Self::Sequence,
            3 => Self::ConfedSequence,
            4 => Self::ConfedSet,
            _ => return None,
        })
    }
}

/// One AS_PATH segment (1 to 255 ASNs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AsSegment {
    /// Segment type.
    pub kind: SegmentKind,
    /// AS numbers.
    pub asns: Vec<u32>,
}

/// An AS_PATH with 4-octet AS numbers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AsPath {
    /// Segments, first = most recent.
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    /// A path of one AS_SEQUENCE.
    pub fn sequence(asns: Vec<u32>) -> Self {
        if asns.is_empty() {
            return Self::default();
        }
        Self {
            segments: vec![AsSegment {
                kind: SegmentKind::Sequence,
                asns,
            }],
        }
    }
    /// Path length for the decision process (RFC 4271 §9.1.2.2 a): an AS_SET counts 1,
    /// confederation segments count 0.
    pub fn path_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentKind::Sequence => s.asns.len(),
                SegmentKind::Set => 1,
                _ => 0,
            })
            .sum()
    }
    /// The neighbouring AS: the first AS of a leading AS_SEQUENCE.
    pub fn first_as(&self) -> Option<u32> {
        let s = self.segments.first()?;
        if s.kind == SegmentKind::Sequence {
            s.asns.first().copied()
        } else {
            None
        }
    }
    /// True if `asn` appears anywhere (loop detection, §9.1.2).
    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| s.asns.contains(&asn))
    }
    /// Prepends `asn` `count` times to the leading AS_SEQUENCE (§5.1.2).
    pub fn prepend(&mut self, asn: u32, count: usize) {
        for _ in 0..count {
            match self.segments.first_mut() {
                Some(s) if s.kind == SegmentKind::Sequence && s.asns.len() < 255 => {
                    s.asns.insert(0, asn)
                }
                _ => self.segments.insert(
                    0,
                    AsSegment {
                        kind: SegmentKind::Sequence,
                        asns: vec![asn],
                    },
                ),
            }
        }
    }
    fn needs_as4(&self) -> bool {
        self.segments
            .iter()
            .any(|s| s.asns.iter().any(|&a| a > 0xffff))
    }
}

/// AGGREGATOR with a 4-octet AS (merged with AS4_AGGREGATOR on 2-octet sessions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Aggregator {
    /// The aggregating AS.
    pub asn: u32,
    /// The aggregating speaker's address.
    pub addr: Ipv4Addr,
}

/// MP_REACH_NLRI (RFC 4760 §3) for IPv4 or IPv6 unicast.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpReach {
    /// The family of the NLRI.
    pub family: Family,
    /// The next hop (IPv4 or global IPv6).
    pub next_hop: IpAddr,
    /// The IPv6 link-local next hop, when 32 octets of next hop were sent (RFC 2545 §3).
    pub link_local: Option<Ipv6Addr>,
    /// Reachable prefixes.
    pub nlri: Vec<Prefix>,
}

/// MP_UNREACH_NLRI (RFC 4760 §4) for IPv4 or IPv6 unicast.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpUnreach {
    /// The family of the withdrawn prefixes.
    pub family: Family,
    /// Withdrawn prefixes.
    pub withdrawn: Vec<Prefix>,
}

/// An attribute this codec does not interpret (optional transitive ones are passed on).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    /// Flags (Optional, Transitive, Partial; Extended Length is recomputed on encode).
    pub flags: u8,
    /// Type code.
    pub type_code: u8,
    /// Value.
    pub value: Vec<u8>,
}

/// The path attributes of an UPDATE.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PathAttributes {
    /// ORIGIN.
    pub origin: Option<Origin>,
    /// AS_PATH (merged with AS4_PATH), 4-octet.
    pub as_path: Option<AsPath>,
    /// NEXT_HOP (IPv4 NLRI).
    pub next_hop: Option<Ipv4Addr>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE.
    pub atomic_aggregate: bool,
    /// AGGREGATOR (merged with AS4_AGGREGATOR).
    pub aggregator: Option<Aggregator>,
    /// COMMUNITIES.
    pub communities: Vec<u32>,
    /// LARGE_COMMUNITY values (global admin, local 1, local 2).
    pub large_communities: Vec<[u32; 3]>,
    /// MP_REACH_NLRI.
    pub mp_reach: Option<MpReach>,
    /// MP_UNREACH_NLRI.
    pub mp_unreach: Option<MpUnreach>,
    /// Unrecognized optional transitive attributes, in order received.
    pub unknown: Vec<RawAttribute>,
}

/// An UPDATE message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    /// Withdrawn IPv4 prefixes.
    pub withdrawn: Vec<Prefix>,
    /// Path attributes.
    pub attrs: PathAttributes,
    /// Announced IPv4 prefixes.
    pub nlri: Vec<Prefix>,
    /// Attribute errors found on decode that RFC 7606 lets the session survive (treat-as-withdraw
    /// or attribute discard). Ignored on encode.
    pub errors: Vec<AttrError>,
}

impl Update {
    /// True if RFC 7606 says to treat the announced routes as withdrawn.
    pub fn treat_as_withdraw(&self) -> bool {
        self.errors
            .iter()
            .any(|e| e.action == Rfc7606Action::TreatAsWithdraw)
    }
    /// The End-of-RIB marker's family, if this UPDATE is one (RFC 4724 §2).
    pub fn end_of_rib(&self) -> Option<Family> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        let a = &self.attrs;
        if *a == PathAttributes::default() {
            return Some(Family::IPV4_UNICAST);
        }
        let only_unreach = PathAttributes {
            mp_unreach: a.mp_unreach.clone(),
            ..Default::default()
        };
        match &a.mp_unreach {
            Some(u) if u.withdrawn.is_empty() && *a == only_unreach => Some(u.family),
            _ => None,
        }
    }
    /// The End-of-RIB marker for `family`.
    pub fn end_of_rib_for(family: Family) -> Self {
        if family == Family::IPV4_UNICAST {
            return Self::default();
        }
        Self {
            attrs: PathAttributes {
                mp_unreach: Some(MpUnreach {
                    family,
                    withdrawn: Vec::new(),
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }
}

fn reset(subcode: u8, data: Vec<u8>) -> DecodeError {
    DecodeError::Update(AttrError {
        subcode,
        data,
        action: Rfc7606Action::SessionReset,
    })
}

/// Decodes a run of NLRI prefixes (RFC 4271 §4.3 / RFC 4760 §5).
fn decode_prefixes(buf: &[u8], afi: Afi) -> Option<Vec<Prefix>> {
    let mut r = Reader::new(buf);
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = r.u8()?;
        let nbytes = usize::from(len).div_ceil(8);
        let bytes = r.bytes(nbytes)?;
        let addr = if afi == Afi::IPV4 {
            let mut a = [0u8; 4];
            a.get_mut(..nbytes)?.copy_from_slice(bytes);
            IpAddr::V4(Ipv4Addr::from(a))
        } else {
            let mut a = [0u8; 16];
            a.get_mut(..nbytes)?.copy_from_slice(bytes);
            IpAddr::V6(Ipv6Addr::from(a))
        };
        out.push(Prefix::new(addr, len).ok()?);
    }
    Some(out)
}

fn encode_prefixes(ps: &[Prefix], out: &mut Vec<u8>) {
    for p in ps {
        out.push(p.len());
        let n = usize::from(p.len()).div_ceil(8);
        match p.addr() {
            IpAddr::V4(a) => out.extend_from_slice(a.octets().get(..n).unwrap_or_default()),
            IpAddr::V6(a) => out.extend_from_slice(a.octets().get(..n).unwrap_or_default()),
        }
    }
}

fn decode_as_path(v: &[u8], four: bool) -> Option<AsPath> {
    let mut r = Reader::new(v);
    let mut segments = Vec::new();
    while !r.is_empty() {
        let kind = SegmentKind::from_code(r.u8()?)?;
        let n = r.u8()?;
        if n == 0 {
            return None;
        }
        let mut asns = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            asns.push(if four { r.u32()? } else { u32::from(r.u16()?) });
        }
        segments.push(AsSegment { kind, asns });
    }
    Some(AsPath { segments })
}

fn encode_as_path(p: &AsPath, four: bool, skip_confed: bool, out: &mut Vec<u8>) {
    for s in &p.segments {
        if skip_confed && matches!(s.kind, SegmentKind::ConfedSequence | SegmentKind::ConfedSet) {
            continue;
        }
        for chunk in s.asns.chunks(255) {
            out.push(s.kind.code());
            out.push(u8::try_from(chunk.len()).unwrap_or(u8::MAX));
            for &a in chunk {
                if four {
                    out.extend_from_slice(&a.to_be_bytes());
                } else {
                    out.extend_from_slice(&u16::try_from(a).unwrap_or(AS_TRANS).to_be_bytes());
                }
            }
        }
    }
}

/// RFC 6793 §4.2.3: rebuild the path from AS_PATH and AS4_PATH.
fn merge_as4(as_path: AsPath, as4: AsPath) -> AsPath {
    let n2 = as_path.path_len();
    let n4 = as4.path_len();
    if n2 < n4 {
        return as_path;
    }
    let mut keep = n2 - n4;
    let mut segments = Vec::new();
    for s in as_path.segments {
        if keep == 0 {
            break;
        }
        match s.kind {
            SegmentKind::Sequence => {
                let take = keep.min(s.asns.len());
                keep -= take;
                segments.push(AsSegment {
                    kind: s.kind,
                    asns: s.asns.into_iter().take(take).collect(),
                });
            }
            SegmentKind::Set => {
                keep -= 1;
                segments.push(s);
            }
            _ => segments.push(s),
        }
    }
    segments.extend(as4.segments);
    AsPath { segments }
}

fn decode_ip_next_hop(v: &[u8], family: Family) -> Option<(IpAddr, Option<Ipv6Addr>)> {
    match (family.afi, v.len()) {
        (Afi::IPV4, 4) => Some((
            IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(v).ok()?)),
            None,
        )),
        (Afi::IPV6, 16) => Some((
            IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(v).ok()?)),
            None,
        )),
        (Afi::IPV6, 32) => {
            let g: [u8; 16] = v.get(..16)?.try_into().ok()?;
            let l: [u8; 16] = v.get(16..)?.try_into().ok()?;
            Some((IpAddr::V6(Ipv6Addr::from(g)), Some(Ipv6Addr::from(l))))
        }
        _ => None,
    }
}

fn supported(f: Family) -> bool {
    f == Family::IPV4_UNICAST || f == Family::IPV6_UNICAST
}

/// The expected (optional, transitive) flags of a known attribute.
fn expected_flags(t: u8) -> Option<u8> {
    use attr_type::*;
    Some(match t {
        ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF | ATOMIC_AGGREGATE => TRANSITIVE,
        MED | MP_REACH | MP_UNREACH => OPTIONAL,
        AGGREGATOR | COMMUNITIES | AS4_PATH | AS4_AGGREGATOR | LARGE_COMMUNITIES => {
            OPTIONAL | TRANSITIVE
        }
        _ => return None,
    })
}

pub(super) fn decode_update(body: &[u8], ctx: &DecodeCtx) -> Result<Update, DecodeError> {
    let malformed = || reset(update_sub::MALFORMED_ATTRIBUTE_LIST, Vec::new());
    let mut r = Reader::new(body);
    let wlen = r.u16().ok_or_else(malformed)?;
    let wbytes = r.bytes(usize::from(wlen)).ok_or_else(malformed)?;
    let alen = r.u16().ok_or_else(malformed)?;
    let abytes = r.bytes(usize::from(alen)).ok_or_else(malformed)?;
    let nlri_bytes = r.rest();
    let withdrawn = decode_prefixes(wbytes, Afi::IPV4)
        .ok_or_else(|| reset(update_sub::INVALID_NETWORK_FIELD, Vec::new()))?;
    let nlri = decode_prefixes(nlri_bytes, Afi::IPV4)
        .ok_or_else(|| reset(update_sub::INVALID_NETWORK_FIELD, Vec::new()))?;

    let mut attrs = PathAttributes::default();
    let mut errors: Vec<AttrError> = Vec::new();
    let mut seen = [false; 256];
    let mut as_path2: Option<AsPath> = None;
    let mut as4_path: Option<AsPath> = None;
    let mut aggregator2: Option<(u32, Ipv4Addr)> = None;
    let mut as4_aggregator: Option<Aggregator> = None;
    let mut ar = Reader::new(abytes);
    let twd = |subcode: u8, data: Vec<u8>| AttrError {
        subcode,
        data,
        action: Rfc7606Action::TreatAsWithdraw,
    };
    let discard = |subcode: u8, data: Vec<u8>| AttrError {
        subcode,
        data,
        action: Rfc7606Action::AttributeDiscard,
    };

    while !ar.is_empty() {
        let whole_start = ar.rest();
        let (Some(flags), Some(t)) = (ar.u8(), ar.u8()) else {
            // RFC 7606 §4: a truncated attribute header is an overrun: treat-as-withdraw.
            errors.push(twd(update_sub::MALFORMED_ATTRIBUTE_LIST, Vec::new()));
            break;
        };
        let len = if flags & EXTENDED_LENGTH != 0 {
            ar.u16().map(usize::from)
        } else {
            ar.u8().map(usize::from)
        };
        let Some(v) = len.and_then(|l| ar.bytes(l)) else {
            errors.push(twd(update_sub::ATTRIBUTE_LENGTH, Vec::new()));
            break;
        };
        let hdr = if flags & EXTENDED_LENGTH != 0 { 4 } else { 3 };
        let data = whole_start
            .get(..hdr + v.len())
            .unwrap_or_default()
            .to_vec();
        let seen_slot = &mut seen[usize::from(t)];
        if *seen_slot {
            if t == attr_type::MP_REACH || t == attr_type::MP_UNREACH {
                return Err(reset(update_sub::MALFORMED_ATTRIBUTE_LIST, Vec::new()));
            }
            // RFC 7606 §3 g: discard all but the first.
            errors.push(discard(update_sub::MALFORMED_ATTRIBUTE_LIST, data));
            continue;
        }
        *seen_slot = true;
        if let Some(exp) = expected_flags(t) {
            if flags & (OPTIONAL | TRANSITIVE) != exp {
                // RFC 7606 §3 c.
                if t == attr_type::MP_REACH || t == attr_type::MP_UNREACH {
                    return Err(reset(update_sub::ATTRIBUTE_FLAGS, data));
                }
                errors.push(twd(update_sub::ATTRIBUTE_FLAGS, data));
                continue;
            }
        }
        let mut vr = Reader::new(v);
        match t {
            attr_type::ORIGIN => match (v.len(), v.first()) {
                (1, Some(0)) => attrs.origin = Some(Origin::Igp),
                (1, Some(1)) => attrs.origin = Some(Origin::Egp),
                (1, Some(2)) => attrs.origin = Some(Origin::Incomplete),
                (1, _) => errors.push(twd(update_sub::INVALID_ORIGIN, data)),
                _ => errors.push(twd(update_sub::ATTRIBUTE_LENGTH, data)),
            },
            attr_type::AS_PATH => match decode_as_path(v, ctx.four_octet_as) {
                Some(p) => as_path2 = Some(p),
                None => errors.push(twd(update_sub::MALFORMED_AS_PATH, data)),
            },
            attr_type::NEXT_HOP => match vr.array::<4>() {
                Some(a) if v.len() == 4 => attrs.next_hop = Some(Ipv4Addr::from(a)),
                _ => errors.push(twd(update_sub::ATTRIBUTE_LENGTH, data)),
            },
            attr_type::MED => match vr.u32() {
                Some(m) if v.len() == 4 => attrs.med = Some(m),
                _ => errors.push(twd(update_sub::ATTRIBUTE_LENGTH, data)),
            },
            attr_type::LOCAL_PREF => match vr.u32() {
                Some(m) if v.len() == 4 => attrs.local_pref = Some(m),
                _ => errors.push(twd(update_sub::ATTRIBUTE_LENGTH, data)),
            },
            attr_type::ATOMIC_AGGREGATE => {
                if v.is_empty() {
                    attrs.atomic_aggregate = true;
                } else {
                    errors.push(discard(update_sub::ATTRIBUTE_LENGTH, data));
                }
            }
            attr_type::AGGREGATOR => {
                let want = if ctx.four_octet_as { 8 } else { 6 };
                let asn = if ctx.four_octet_as {
                    vr.u32()
                } else {
                    vr.u16().map(u32::from)
                };
                match (asn, vr.array::<4>()) {
                    (Some(asn), Some(a)) if v.len() == want => {
                        aggregator2 = Some((asn, Ipv4Addr::from(a)))
                    }
                    _ => errors.push(discard(update_sub::ATTRIBUTE_LENGTH, data)),
                }
            }
            attr_type::COMMUNITIES => {
                if v.is_empty() || v.len() % 4 != 0 {
                    errors.push(twd(update_sub::OPTIONAL_ATTRIBUTE, data));
                } else {
                    while let Some(c) = vr.u32() {
                        attrs.communities.push(c);
                    }
                }
            }
            attr_type::LARGE_COMMUNITIES => {
                if v.is_empty() || v.len() % 12 != 0 {
                    errors.push(twd(update_sub::OPTIONAL_ATTRIBUTE, data));
                } else {
                    while let (Some(a), Some(b), Some(c)) = (vr.u32(), vr.u32(), vr.u32()) {
                        attrs.large_communities.push([a, b, c]);
                    }
                }
            }
            attr_type::AS4_PATH => {
                // RFC 6793 §6: a malformed AS4_PATH is discarded; a NEW speaker ignores it.
                match decode_as_path(v, true) {
                    Some(p) if !ctx.four_octet_as => as4_path = Some(p),
                    Some(_) => {}
                    None => errors.push(discard(update_sub::OPTIONAL_ATTRIBUTE, data)),
                }
            }
            attr_type::AS4_AGGREGATOR => match (vr.u32(), vr.array::<4>()) {
                (Some(asn), Some(a)) if v.len() == 8 => {
                    if !ctx.four_octet_as {
                        as4_aggregator = Some(Aggregator {
                            asn,
                            addr: Ipv4Addr::from(a),
                        });
                    }
                }
                _ => errors.push(discard(update_sub::OPTIONAL_ATTRIBUTE, data)),
            },
            attr_type::MP_REACH => {
                let bad = || reset(update_sub::OPTIONAL_ATTRIBUTE, data.clone());
                let afi = vr.u16().ok_or_else(bad)?;
                let safi = vr.u8().ok_or_else(bad)?;
                let family = Family {
                    afi: Afi(afi),
                    safi: Safi(safi),
                };
                let nhl = vr.u8().ok_or_else(bad)?;
                let nh = vr.bytes(usize::from(nhl)).ok_or_else(bad)?;
                let _reserved = vr.u8().ok_or_else(bad)?;
                if !supported(family) {
                    errors.push(discard(update_sub::OPTIONAL_ATTRIBUTE, data));
                    continue;
                }
                let (next_hop, link_local) = decode_ip_next_hop(nh, family).ok_or_else(bad)?;
                let nlri = decode_prefixes(vr.rest(), family.afi).ok_or_else(bad)?;
                attrs.mp_reach = Some(MpReach {
                    family,
                    next_hop,
                    link_local,
                    nlri,
                });
            }
            attr_type::MP_UNREACH => {
                let bad = || reset(update_sub::OPTIONAL_ATTRIBUTE, data.clone());
                let afi = vr.u16().ok_or_else(bad)?;
                let safi = vr.u8().ok_or_else(bad)?;
                let family = Family {
                    afi: Afi(afi),
                    safi: Safi(safi),
                };
                if !supported(family) {
                    errors.push(discard(update_sub::OPTIONAL_ATTRIBUTE, data));
                    continue;
                }
                let withdrawn = decode_prefixes(vr.rest(), family.afi).ok_or_else(bad)?;
                attrs.mp_unreach = Some(MpUnreach { family, withdrawn });
            }
            _ => {
                if flags & OPTIONAL == 0 {
                    return Err(reset(update_sub::UNRECOGNIZED_WELL_KNOWN, data));
                }
                if flags & TRANSITIVE != 0 && attrs.unknown.len() < 64 {
                    attrs.unknown.push(RawAttribute {
                        flags: flags & (OPTIONAL | TRANSITIVE | PARTIAL),
                        type_code: t,
                        value: v.to_vec(),
                    });
                }
            }
        }
    }

    // RFC 6793 §4.2.3: AGGREGATOR other than AS_TRANS means AS4_* are ignored.
    let mut use_as4 = true;
    if let Some((asn, addr)) = aggregator2 {
        if !ctx.four_octet_as && asn != u32::from(AS_TRANS) {
            use_as4 = false;
        }
        attrs.aggregator = Some(Aggregator { asn, addr });
        if use_as4 {
            if let Some(a4) = as4_aggregator {
                attrs.aggregator = Some(a4);
            }
        }
    }
    attrs.as_path = match (as_path2, as4_path) {
        (Some(p), Some(p4)) if use_as4 => Some(merge_as4(p, p4)),
        (p, _) => p,
    };

    // RFC 7606 §3 d: missing well-known attributes when routes are announced.
    let announces = !nlri.is_empty() || attrs.mp_reach.is_some();
    if announces {
        let missing: &[(bool, u8)] = &[
            (
                attrs.origin.is_none() && !seen[usize::from(attr_type::ORIGIN)],
                attr_type::ORIGIN,
            ),
            (
                attrs.as_path.is_none() && !seen[usize::from(attr_type::AS_PATH)],
                attr_type::AS_PATH,
            ),
            (
                !nlri.is_empty()
                    && attrs.next_hop.is_none()
                    && !seen[usize::from(attr_type::NEXT_HOP)],
                attr_type::NEXT_HOP,
            ),
        ];
        for &(m, t) in missing {
            if m {
                errors.push(twd(update_sub::MISSING_WELL_KNOWN, vec![t]));
            }
        }
    }
    Ok(Update {
        withdrawn,
        attrs,
        nlri,
        errors,
    })
}

fn push_attr(out: &mut Vec<u8>, flags: u8, t: u8, value: &[u8]) -> Result<(), EncodeError> {
    let flags = flags & (OPTIONAL | TRANSITIVE | PARTIAL);
    if let Ok(l) = u8::try_from(value.len()) {
        out.extend_from_slice(&[flags, t, l]);
    } else {
        let l = u16::try_from(value.len()).map_err(|_| EncodeError::FieldTooLong("attribute"))?;
        out.extend_from_slice(&[flags | EXTENDED_LENGTH, t]);
        out.extend_from_slice(&l.to_be_bytes());
    }
    out.extend_from_slice(value);
    Ok(())
}

fn encode_attrs(a: &PathAttributes, ctx: &DecodeCtx, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    use attr_type::*;
    let mut v = Vec::new();
    // RFC 7606 §5.1: MP_REACH/MP_UNREACH first.
    if let Some(m) = &a.mp_reach {
        v.clear();
        v.extend_from_slice(&m.family.afi.0.to_be_bytes());
        v.push(m.family.safi.0);
        let nh_at = v.len();
        v.push(0);
        match m.next_hop {
            IpAddr::V4(x) => v.extend_from_slice(&x.octets()),
            IpAddr::V6(x) => v.extend_from_slice(&x.octets()),
        }
        if let Some(ll) = m.link_local {
            v.extend_from_slice(&ll.octets());
        }
        let nhl = v.len() - nh_at - 1;
        if let Some(b) = v.get_mut(nh_at) {
            *b = u8::try_from(nhl).unwrap_or(0);
        }
        v.push(0);
        encode_prefixes(&m.nlri, &mut v);
        push_attr(out, OPTIONAL, MP_REACH, &v)?;
    }
    if let Some(m) = &a.mp_unreach {
        v.clear();
        v.extend_from_slice(&m.family.afi.0.to_be_bytes());
        v.push(m.family.safi.0);
        encode_prefixes(&m.withdrawn, &mut v);
        push_attr(out, OPTIONAL, MP_UNREACH, &v)?;
    }
    if let Some(o) = a.origin {
        let b = match o {
            Origin::Igp => 0,
            Origin::Egp => 1,
            Origin::Incomplete => 2,
        };
        push_attr(out, TRANSITIVE, ORIGIN, &[b])?;
    }
    if let Some(p) = &a.as_path {
        v.clear();
        encode_as_path(p, ctx.four_octet_as, false, &mut v);
        push_attr(out, TRANSITIVE, AS_PATH, &v)?;
    }
    if let Some(nh) = a.next_hop {
        push_attr(out, TRANSITIVE, NEXT_HOP, &nh.octets())?;
    }
    if let Some(m) = a.med {
        push_attr(out, OPTIONAL, MED, &m.to_be_bytes())?;
    }
    if let Some(m) = a.local_pref {
        push_attr(out, TRANSITIVE, LOCAL_PREF, &m.to_be_bytes())?;
    }
    if a.atomic_aggregate {
        push_attr(out, TRANSITIVE, ATOMIC_AGGREGATE, &[])?;
    }
    if let Some(ag) = a.aggregator {
        v.clear();
        if ctx.four_octet_as {
            v.extend_from_slice(&ag.asn.to_be_bytes());
        } else {
            v.extend_from_slice(&u16::try_from(ag.asn).unwrap_or(AS_TRANS).to_be_bytes());
        }
        v.extend_from_slice(&ag.addr.octets());
        push_attr(out, OPTIONAL | TRANSITIVE, AGGREGATOR, &v)?;
    }
    if !a.communities.is_empty() {
        v.clear();
        for c in &a.communities {
            v.extend_from_slice(&c.to_be_bytes());
        }
        push_attr(out, OPTIONAL | TRANSITIVE, COMMUNITIES, &v)?;
    }
    if !ctx.four_octet_as {
        if let Some(p) = a.as_path.as_ref().filter(|p| p.needs_as4()) {
            v.clear();
            encode_as_path(p, true, true, &mut v);
            push_attr(out, OPTIONAL | TRANSITIVE, AS4_PATH, &v)?;
        }
        if let Some(ag) = a.aggregator.filter(|g| g.asn > 0xffff) {
            v.clear();
            v.extend_from_slice(&ag.asn.to_be_bytes());
            v.extend_from_slice(&ag.addr.octets());
            push_attr(out, OPTIONAL | TRANSITIVE, AS4_AGGREGATOR, &v)?;
        }
    }
    if !a.large_communities.is_empty() {
        v.clear();
        for c in &a.large_communities {
            for x in c {
                v.extend_from_slice(&x.to_be_bytes());
            }
        }
        push_attr(out, OPTIONAL | TRANSITIVE, LARGE_COMMUNITIES, &v)?;
    }
    for u in &a.unknown {
        push_attr(out, u.flags, u.type_code, &u.value)?;
    }
    Ok(())
}

pub(super) fn encode_update(
    u: &Update,
    ctx: &DecodeCtx,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let wl_at = out.len();
    out.extend_from_slice(&[0, 0]);
    encode_prefixes(&u.withdrawn, out);
    let wl = u16::try_from(out.len() - wl_at - 2)
        .map_err(|_| EncodeError::FieldTooLong("withdrawn routes"))?;
    let al_at = out.len();
    out.extend_from_slice(&[0, 0]);
    encode_attrs(&u.attrs, ctx, out)?;
    let al = u16::try_from(out.len() - al_at - 2)
        .map_err(|_| EncodeError::FieldTooLong("path attributes"))?;
    encode_prefixes(&u.nlri, out);
    if let Some(s) = out.get_mut(wl_at..wl_at + 2) {
        s.copy_from_slice(&wl.to_be_bytes());
    }
    if let Some(s) = out.get_mut(al_at..al_at + 2) {
        s.copy_from_slice(&al.to_be_bytes());
    }
    Ok(())
}
