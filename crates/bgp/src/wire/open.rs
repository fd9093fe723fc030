//! OPEN (RFC 4271 §4.2) and capabilities (RFC 5492): multiprotocol (RFC 4760), route refresh
//! (RFC 2918), 4-octet AS (RFC 6793), graceful restart (RFC 4724). Unknown capabilities are kept.

use std::net::Ipv4Addr;

use super::reader::Reader;
use super::{AS_TRANS, DecodeError, EncodeError, open_sub};
use crate::{Afi, Family, Safi};

/// Optional parameter type for capabilities (RFC 5492).
const PARAM_CAPABILITIES: u8 = 2;

mod cap_code {
    pub(super) const MULTIPROTOCOL: u8 = 1;
    pub(super) const ROUTE_REFRESH: u8 = 2;
    pub(super) const GRACEFUL_RESTART: u8 = 64;
    pub(super) const FOUR_OCTET_AS: u8 = 65;
}

/// The graceful restart capability (RFC 4724 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracefulRestartCap {
    /// The 4 Restart Flags bits (0x8 = Restart State "R", 0x4 = Notification "N" of RFC 8538).
    pub flags: u8,
    /// Restart Time in seconds (12 bits).
    pub restart_time: u16,
    /// Families with their "forwarding state preserved" bit.
    pub families: Vec<(Family, bool)>,
}

/// One capability (RFC 5492).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// Multiprotocol extensions for a family (RFC 4760 §8).
    Multiprotocol(Family),
    /// Route refresh (RFC 2918).
    RouteRefresh,
    /// 4-octet AS number support with our AS (RFC 6793).
    FourOctetAs(u32),
    /// Graceful restart (RFC 4724).
    GracefulRestart(GracefulRestartCap),
    /// Any other capability, kept as-is.
    Unknown {
        /// Capability code.
        code: u8,
        /// Capability value.
        value: Vec<u8>,
    },
}

/// An OPEN message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// BGP version (4).
    pub version: u8,
    /// The 2-octet "My Autonomous System" field (AS_TRANS when the AS needs 4 octets).
    pub my_as: u16,
    /// Proposed hold time in seconds.
    pub hold_time: u16,
    /// BGP Identifier.
    pub bgp_id: Ipv4Addr,
    /// Capabilities, in order received (flattened over optional parameters).
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// Builds a version-4 OPEN for `asn`, setting My AS (AS_TRANS if needed) and adding the
    /// 4-octet AS capability in front of `capabilities`.
    pub fn new(asn: u32, hold_time: u16, bgp_id: Ipv4Addr, capabilities: Vec<Capability>) -> Self {
        let my_as = u16::try_from(asn).unwrap_or(AS_TRANS);
        let mut caps = vec![Capability::FourOctetAs(asn)];
        caps.extend(
            capabilities
                .into_iter()
                .filter(|c| !matches!(c, Capability::FourOctetAs(_))),
        );
        Self {
            version: 4,
            my_as,
            hold_time,
            bgp_id,
            capabilities: caps,
        }
    }
    /// The sender's AS: from the 4-octet AS capability if present, else My AS.
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(u32::from(self.my_as))
    }
    /// The AS in the 4-octet AS capability, if advertised.
    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs(a) => Some(*a),
            _ => None,
        })
    }
    /// Families advertised with the multiprotocol capability.
    pub fn families(&self) -> impl Iterator<Item = Family> + '_ {
        self.capabilities.iter().filter_map(|c| match c {
            Capability::Multiprotocol(f) => Some(*f),
            _ => None,
        })
    }
    /// True if route refresh is advertised.
    pub fn route_refresh(&self) -> bool {
        self.capabilities
            .iter()
            .any(|c| matches!(c, Capability::RouteRefresh))
    }
    /// The graceful restart capability, if advertised.
    pub fn graceful_restart(&self) -> Option<&GracefulRestartCap> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(g) => Some(g),
            _ => None,
        })
    }
}

fn open_err(subcode: u8) -> DecodeError {
    DecodeError::Open {
        subcode,
        data: Vec::new(),
    }
}

pub(super) fn decode_open(body: &[u8]) -> Result<Open, DecodeError> {
    let mut r = Reader::new(body);
    let short = || open_err(open_sub::UNSPECIFIC);
    let version = r.u8().ok_or_else(short)?;
    let my_as = r.u16().ok_or_else(short)?;
    let hold_time = r.u16().ok_or_else(short)?;
    let bgp_id = Ipv4Addr::from(r.array::<4>().ok_or_else(short)?);
    let opt_len = r.u8().ok_or_else(short)?;
    if usize::from(opt_len) != r.remaining() {
        return Err(short());
    }
    let mut capabilities = Vec::new();
    while !r.is_empty() {
        let ty = r.u8().ok_or_else(short)?;
        let len = r.u8().ok_or_else(short)?;
        let val = r.bytes(usize::from(len)).ok_or_else(short)?;
        if ty != PARAM_CAPABILITIES {
            return Err(DecodeError::Open {
                subcode: open_sub::UNSUPPORTED_OPTIONAL_PARAMETER,
                data: Vec::new(),
            });
        }
        let mut c = Reader::new(val);
        while !c.is_empty() {
            let code = c.u8().ok_or_else(short)?;
            let clen = c.u8().ok_or_else(short)?;
            let v = c.bytes(usize::from(clen)).ok_or_else(short)?;
            capabilities.push(decode_capability(code, v)?);
        }
    }
    Ok(Open {
        version,
        my_as,
        hold_time,
        bgp_id,
        capabilities,
    })
}

fn decode_capability(code: u8, v: &[u8]) -> Result<Capability, DecodeError> {
    let mut r = Reader::new(v);
    let bad = || open_err(open_sub::UNSPECIFIC);
    Ok(match code {
        cap_code::MULTIPROTOCOL => {
            let afi = r.u16().ok_or_else(bad)?;
            let _reserved = r.u8().ok_or_else(bad)?;
            let safi = r.u8().ok_or_else(bad)?;
            if !r.is_empty() {
                return Err(bad());
            }
            Capability::Multiprotocol(Family {
                afi: Afi(afi),
                safi: Safi(safi),
            })
        }
        cap_code::ROUTE_REFRESH if v.is_empty() => Capability::RouteRefresh,
        cap_code::FOUR_OCTET_AS => {
            let a = r.u32().ok_or_else(bad)?;
            if !r.is_empty() {
                return Err(bad());
            }
            Capability::FourOctetAs(a)
        }
        cap_code::GRACEFUL_RESTART => {
            let ft = r.u16().ok_or_else(bad)?;
            let mut families = Vec::new();
            while !r.is_empty() {
                let afi = r.u16().ok_or_else(bad)?;
                let safi = r.u8().ok_or_else(bad)?;
                let flags = r.u8().ok_or_else(bad)?;
                families.push((
                    Family {
                        afi: Afi(afi),
                        safi: Safi(safi),
                    },
                    flags & 0x80 != 0,
                ));
            }
            Capability::GracefulRestart(GracefulRestartCap {
                flags: (ft >> 12) as u8,
                restart_time: ft & 0x0fff,
                families,
            })
        }
        _ => Capability::Unknown {
            code,
            value: v.to_vec(),
        },
    })
}

fn encode_capability(c: &Capability, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0, 0]);
    let code = match c {
        Capability::Multiprotocol(f) => {
            out.extend_from_slice(&f.afi.0.to_be_bytes());
            out.push(0);
            out.push(f.safi.0);
            cap_code::MULTIPROTOCOL
        }
        Capability::RouteRefresh => cap_code::ROUTE_REFRESH,
        Capability::FourOctetAs(a) => {
            out.extend_from_slice(&a.to_be_bytes());
            cap_code::FOUR_OCTET_AS
        }
        Capability::GracefulRestart(g) => {
            let ft = (u16::from(g.flags & 0x0f) << 12) | (g.restart_time & 0x0fff);
            out.extend_from_slice(&ft.to_be_bytes());
            for (f, fwd) in &g.families {
                out.extend_from_slice(&f.afi.0.to_be_bytes());
                out.push(f.safi.0);
                out.push(if *fwd { 0x80 } else { 0 });
            }
            cap_code::GRACEFUL_RESTART
        }
        Capability::Unknown { code, value } => {
            out.extend_from_slice(value);
            *code
        }
    };
    let len =
        u8::try_from(out.len() - start - 2).map_err(|_| EncodeError::FieldTooLong("capability"))?;
    if let Some(h) = out.get_mut(start..start + 2) {
        h.copy_from_slice(&[code, len]);
    }
    Ok(())
}

pub(super) fn encode_open(o: &Open, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    out.push(o.version);
    out.extend_from_slice(&o.my_as.to_be_bytes());
    out.extend_from_slice(&o.hold_time.to_be_bytes());
    out.extend_from_slice(&o.bgp_id.octets());
    if o.capabilities.is_empty() {
        out.push(0);
        return Ok(());
    }
    let opt_len_at = out.len();
    out.extend_from_slice(&[0, PARAM_CAPABILITIES, 0]);
    for c in &o.capabilities {
        encode_capability(c, out)?;
    }
    let param_len = u8::try_from(out.len() - opt_len_at - 3)
        .map_err(|_| EncodeError::FieldTooLong("capabilities parameter"))?;
    let opt_len = param_len
        .checked_add(2)
        .ok_or(EncodeError::FieldTooLong("optional parameters"))?;
    if let Some(h) = out.get_mut(opt_len_at..opt_len_at + 3) {
        h.copy_from_slice(&[opt_len, PARAM_CAPABILITIES, param_len]);
    }
    Ok(())
}
