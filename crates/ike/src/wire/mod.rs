//! The IKEv2 wire format (RFC 7296 §3, RFC 7383 §2.5, RFC 5282 §3): every payload decoded and
//! encoded.
//!
//! - [`Header`] and [`Message`]: the fixed header and a chain of [`Payload`]s. Lengths and
//!   Next Payload fields are computed on encode, never stored.
//! - [`Payload`]: SA (proposals, transforms, attributes), KE, IDi/IDr, CERT/CERTREQ (opaque),
//!   AUTH, Nonce, Notify, Delete, Vendor ID, TSi/TSr, SK and SKF (their encrypted bodies kept
//!   opaque; [`crate::sk`] seals and opens them), CP. Unknown payload types are kept with their
//!   critical bit; an unknown payload marked critical fails the decode with
//!   [`DecodeError::UnsupportedCritical`], which maps to UNSUPPORTED_CRITICAL_PAYLOAD.
//! - Registries ([`ExchangeType`], [`NotifyType`], ...) are newtypes, so unknown values
//!   round-trip.
//!
//! Every decode error knows the Notify the RFC wants in answer ([`DecodeError::notify`]).
//! This module does no cryptography and keeps no state.

mod reader;
mod registry;

pub use reader::Reader;
use reader::u16_len;
pub use registry::*;

/// Length of the IKE header (RFC 7296 §3.1).
pub const HEADER_LEN: usize = 28;
/// Length of the generic payload header (RFC 7296 §3.2).
pub const PAYLOAD_HEADER_LEN: usize = 4;
/// The only version this codec speaks: major 2, minor 0.
pub const VERSION_2_0: u8 = 0x20;
/// The most payloads decoded from one message (or one SK body): a bound on memory and work.
pub const MAX_PAYLOADS: usize = 64;

/// Header flag: the sender is the original initiator of the IKE SA.
pub const FLAG_INITIATOR: u8 = 0x08;
/// Header flag: the sender can speak a higher major version.
pub const FLAG_VERSION: u8 = 0x10;
/// Header flag: this message is a response.
pub const FLAG_RESPONSE: u8 = 0x20;

/// Why a message could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside a field or a length points past the end.
    #[error("truncated")]
    Truncated,
    /// A length field is inconsistent (shorter than its header, or disagrees with the data).
    #[error("bad length field")]
    BadLength,
    /// The major version is not 2.
    #[error("unsupported major version {0:#x}")]
    BadVersion(u8),
    /// A field has a value the RFC forbids (e.g. a zero nonce length, wrong SPI size).
    #[error("invalid syntax in a {0:?} payload")]
    InvalidSyntax(PayloadType),
    /// An unknown payload has the critical bit set (RFC 7296 §2.5).
    #[error("unsupported critical payload {0:?}")]
    UnsupportedCritical(PayloadType),
    /// More payloads than [`MAX_PAYLOADS`].
    #[error("too many payloads")]
    TooManyPayloads,
}

impl DecodeError {
    /// The Notify that answers this error (RFC 7296 §2.21, §3.10.1), with its data.
    pub fn notify(self) -> (NotifyType, Vec<u8>) {
        match self {
            Self::UnsupportedCritical(t) => (NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD, vec![t.0]),
            Self::BadVersion(_) => (NotifyType::INVALID_MAJOR_VERSION, vec![VERSION_2_0]),
            _ => (NotifyType::INVALID_SYNTAX, Vec::new()),
        }
    }
}

/// Why a message could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A payload or the message is longer than its length field can say.
    #[error("payload too long for its length field")]
    TooLong,
    /// A field has a value that cannot be encoded (e.g. an SPI of an unsupported size).
    #[error("field cannot be encoded")]
    Invalid,
}

/// The IKE header (RFC 7296 §3.1). The Next Payload and Length fields are not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Initiator's SPI.
    pub spi_i: [u8; 8],
    /// Responder's SPI (zero in the first IKE_SA_INIT request).
    pub spi_r: [u8; 8],
    /// Version octet (major in the high nibble).
    pub version: u8,
    /// Exchange type.
    pub exchange: ExchangeType,
    /// Flags ([`FLAG_INITIATOR`], [`FLAG_RESPONSE`], [`FLAG_VERSION`]).
    pub flags: u8,
    /// Message ID.
    pub message_id: u32,
}

impl Header {
    /// Whether the Response flag is set.
    pub fn is_response(&self) -> bool {
        self.flags & FLAG_RESPONSE != 0
    }

    /// Whether the Initiator flag is set (the sender is the original initiator).
    pub fn from_initiator(&self) -> bool {
        self.flags & FLAG_INITIATOR != 0
    }

    /// Decodes the fixed header and returns it with the first payload type and the Length field.
    pub fn decode(data: &[u8]) -> Result<(Self, PayloadType, u32), DecodeError> {
        let mut r = Reader::new(data);
        let spi_i = r.array()?;
        let spi_r = r.array()?;
        let next = PayloadType(r.u8()?);
        let version = r.u8()?;
        let exchange = ExchangeType(r.u8()?);
        let flags = r.u8()?;
        let message_id = r.u32()?;
        let length = r.u32()?;
        if version >> 4 != 2 {
            return Err(DecodeError::BadVersion(version));
        }
        Ok((
            Self {
                spi_i,
                spi_r,
                version,
                exchange,
                flags,
                message_id,
            },
            next,
            length,
        ))
    }

    /// Encodes the header with the given first payload type and total length.
    pub fn encode(
        &self,
        next: PayloadType,
        total_len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let len = u32::try_from(total_len).map_err(|_| EncodeError::TooLong)?;
        out.extend_from_slice(&self.spi_i);
        out.extend_from_slice(&self.spi_r);
        out.push(next.0);
        out.push(self.version);
        out.push(self.exchange.0);
        out.push(self.flags);
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        Ok(())
    }
}

/// A transform attribute (RFC 7296 §3.3.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attribute {
    /// Type/Value format (AF bit set): a 16-bit value, e.g. Key Length.
    Tv {
        /// Attribute type (without the AF bit).
        ty: u16,
        /// The value.
        value: u16,
    },
    /// Type/Length/Value format.
    Tlv {
        /// Attribute type (without the AF bit).
        ty: u16,
        /// The value.
        value: Vec<u8>,
    },
}

/// A transform (RFC 7296 §3.3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transform {
    /// Transform type.
    pub ty: TransformType,
    /// Transform ID within its type.
    pub id: u16,
    /// Attributes (Key Length for AES).
    pub attributes: Vec<Attribute>,
}

impl Transform {
    /// A transform without attributes.
    pub fn new(ty: TransformType, id: u16) -> Self {
        Self {
            ty,
            id,
            attributes: Vec::new(),
        }
    }

    /// A transform with a Key Length attribute.
    pub fn with_key_length(ty: TransformType, id: u16, bits: u16) -> Self {
        Self {
            ty,
            id,
            attributes: vec![Attribute::Tv {
                ty: ATTR_KEY_LENGTH,
                value: bits,
            }],
        }
    }

    /// The Key Length attribute, if present.
    pub fn key_length(&self) -> Option<u16> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Tv { ty, value } if *ty == ATTR_KEY_LENGTH => Some(*value),
            _ => None,
        })
    }
}

/// A proposal (RFC 7296 §3.3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// Proposal number (1 for the first, counting up).
    pub num: u8,
    /// Protocol.
    pub protocol: ProtocolId,
    /// SPI: empty (IKE_SA_INIT), 8 octets (IKE rekey) or 4 octets (ESP/AH).
    pub spi: Vec<u8>,
    /// Transforms.
    pub transforms: Vec<Transform>,
}

/// Key Exchange payload (RFC 7296 §3.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyExchange {
    /// Diffie-Hellman group number.
    pub group: u16,
    /// Public value.
    pub data: Vec<u8>,
}

/// Identification payload (RFC 7296 §3.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identification {
    /// ID type.
    pub id_type: IdType,
    /// ID data.
    pub data: Vec<u8>,
}

impl Identification {
    /// The body as it enters the AUTH computation (RestOfInitIDPayload, RFC 7296 §2.15).
    pub fn body(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(4 + self.data.len());
        v.extend_from_slice(&[self.id_type.0, 0, 0, 0]);
        v.extend_from_slice(&self.data);
        v
    }
}

/// CERT or CERTREQ payload (RFC 7296 §3.6, §3.7), kept opaque.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cert {
    /// Certificate encoding.
    pub encoding: CertEncoding,
    /// The certificate data or CA hashes.
    pub data: Vec<u8>,
}

/// Authentication payload (RFC 7296 §3.8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Auth {
    /// Auth method.
    pub method: AuthMethod,
    /// Authentication data.
    pub data: Vec<u8>,
}

/// Notify payload (RFC 7296 §3.10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notify {
    /// Protocol the SPI belongs to.
    pub protocol: ProtocolId,
    /// SPI (may be empty).
    pub spi: Vec<u8>,
    /// Notify message type.
    pub ty: NotifyType,
    /// Notification data.
    pub data: Vec<u8>,
}

impl Notify {
    /// A notify about the IKE SA (no protocol, no SPI).
    pub fn new(ty: NotifyType, data: Vec<u8>) -> Self {
        Self {
            protocol: ProtocolId::NONE,
            spi: Vec::new(),
            ty,
            data,
        }
    }
}

/// Delete payload (RFC 7296 §3.11).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delete {
    /// Protocol.
    pub protocol: ProtocolId,
    /// SPI size (0 for IKE, 4 for ESP/AH).
    pub spi_size: u8,
    /// The SPIs, each `spi_size` octets.
    pub spis: Vec<Vec<u8>>,
}

/// A traffic selector (RFC 7296 §3.13.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrafficSelector {
    /// TS type.
    pub ts_type: TsType,
    /// IP protocol (0 = any).
    pub ip_protocol: u8,
    /// Start port.
    pub start_port: u16,
    /// End port.
    pub end_port: u16,
    /// Start address (4 or 16 octets for the known types; opaque otherwise).
    pub start_addr: Vec<u8>,
    /// End address.
    pub end_addr: Vec<u8>,
}

impl TrafficSelector {
    /// 0.0.0.0/0, all protocols and ports.
    pub fn ipv4_any() -> Self {
        Self {
            ts_type: TsType::TS_IPV4_ADDR_RANGE,
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            start_addr: vec![0; 4],
            end_addr: vec![255; 4],
        }
    }

    /// ::/0, all protocols and ports.
    pub fn ipv6_any() -> Self {
        Self {
            ts_type: TsType::TS_IPV6_ADDR_RANGE,
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            start_addr: vec![0; 16],
            end_addr: vec![255; 16],
        }
    }
}

/// A configuration attribute (RFC 7296 §3.15.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CfgAttribute {
    /// Attribute type (15 bits).
    pub ty: u16,
    /// Value.
    pub value: Vec<u8>,
}

/// Configuration payload (RFC 7296 §3.15).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// CFG type.
    pub cfg_type: CfgType,
    /// Attributes.
    pub attributes: Vec<CfgAttribute>,
}

/// An Encrypted and Authenticated payload (RFC 7296 §3.14), body still sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encrypted {
    /// The type of the first payload inside.
    pub first_inner: PayloadType,
    /// IV || ciphertext || ICV.
    pub body: Vec<u8>,
}

/// An Encrypted and Authenticated Fragment payload (RFC 7383 §2.5), body still sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptedFragment {
    /// The type of the first inner payload (fragment 1 only; 0 in others).
    pub first_inner: PayloadType,
    /// Fragment number, from 1.
    pub number: u16,
    /// Total fragments.
    pub total: u16,
    /// IV || ciphertext || ICV.
    pub body: Vec<u8>,
}

/// One IKEv2 payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Security Association.
    Sa(Vec<Proposal>),
    /// Key Exchange.
    Ke(KeyExchange),
    /// Identification - Initiator.
    IdI(Identification),
    /// Identification - Responder.
    IdR(Identification),
    /// Certificate.
    Cert(Cert),
    /// Certificate Request.
    CertReq(Cert),
    /// Authentication.
    Auth(Auth),
    /// Nonce.
    Nonce(Vec<u8>),
    /// Notify.
    Notify(Notify),
    /// Delete.
    Delete(Delete),
    /// Vendor ID.
    VendorId(Vec<u8>),
    /// Traffic Selector - Initiator.
    TsI(Vec<TrafficSelector>),
    /// Traffic Selector - Responder.
    TsR(Vec<TrafficSelector>),
    /// Encrypted and Authenticated (always the last payload).
    Sk(Encrypted),
    /// Encrypted and Authenticated Fragment (always the last payload).
    Skf(EncryptedFragment),
    /// Configuration.
    Cp(Config),
    /// A payload this codec does not interpret (EAP included), kept as it is.
    Unknown {
        /// Payload type.
        ty: PayloadType,
        /// The critical bit as received.
        critical: bool,
        /// The body after the generic header.
        data: Vec<u8>,
    },
}

impl Payload {
    /// The payload type.
    pub fn ty(&self) -> PayloadType {
        match self {
            Self::Sa(_) => PayloadType::SA,
            Self::Ke(_) => PayloadType::KE,
            Self::IdI(_) => PayloadType::IDI,
            Self::IdR(_) => PayloadType::IDR,
            Self::Cert(_) => PayloadType::CERT,
            Self::CertReq(_) => PayloadType::CERTREQ,
            Self::Auth(_) => PayloadType::AUTH,
            Self::Nonce(_) => PayloadType::NONCE,
            Self::Notify(_) => PayloadType::NOTIFY,
            Self::Delete(_) => PayloadType::DELETE,
            Self::VendorId(_) => PayloadType::VENDOR_ID,
            Self::TsI(_) => PayloadType::TSI,
            Self::TsR(_) => PayloadType::TSR,
            Self::Sk(_) => PayloadType::SK,
            Self::Skf(_) => PayloadType::SKF,
            Self::Cp(_) => PayloadType::CP,
            Self::Unknown { ty, .. } => *ty,
        }
    }

    /// The Next Payload value this payload's own header carries when it is the last of a
    /// chain: for SK/SKF it is the first inner payload, otherwise NONE.
    fn own_next(&self) -> Option<PayloadType> {
        match self {
            Self::Sk(e) => Some(e.first_inner),
            Self::Skf(f) => Some(f.first_inner),
            _ => None,
        }
    }

    /// Encodes the payload body (everything after the generic header).
    pub fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Self::Sa(props) => encode_sa(props, out)?,
            Self::Ke(ke) => {
                out.extend_from_slice(&ke.group.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&ke.data);
            }
            Self::IdI(id) | Self::IdR(id) => out.extend_from_slice(&id.body()),
            Self::Cert(c) | Self::CertReq(c) => {
                out.push(c.encoding.0);
                out.extend_from_slice(&c.data);
            }
            Self::Auth(a) => {
                out.extend_from_slice(&[a.method.0, 0, 0, 0]);
                out.extend_from_slice(&a.data);
            }
            Self::Nonce(n) | Self::VendorId(n) => out.extend_from_slice(n),
            Self::Notify(n) => {
                out.push(n.protocol.0);
                out.push(u8::try_from(n.spi.len()).map_err(|_| EncodeError::Invalid)?);
                out.extend_from_slice(&n.ty.0.to_be_bytes());
                out.extend_from_slice(&n.spi);
                out.extend_from_slice(&n.data);
            }
            Self::Delete(d) => {
                out.push(d.protocol.0);
                out.push(d.spi_size);
                out.extend_from_slice(&u16_len(d.spis.len())?);
                for s in &d.spis {
                    if s.len() != usize::from(d.spi_size) {
                        return Err(EncodeError::Invalid);
                    }
                    out.extend_from_slice(s);
                }
            }
            Self::TsI(ts) | Self::TsR(ts) => {
                out.push(u8::try_from(ts.len()).map_err(|_| EncodeError::TooLong)?);
                out.extend_from_slice(&[0, 0, 0]);
                for t in ts {
                    let len = 8usize
                        .checked_add(t.start_addr.len())
                        .and_then(|l| l.checked_add(t.end_addr.len()))
                        .ok_or(EncodeError::TooLong)?;
                    out.push(t.ts_type.0);
                    out.push(t.ip_protocol);
                    out.extend_from_slice(&u16_len(len)?);
                    out.extend_from_slice(&t.start_port.to_be_bytes());
                    out.extend_from_slice(&t.end_port.to_be_bytes());
                    out.extend_from_slice(&t.start_addr);
                    out.extend_from_slice(&t.end_addr);
                }
            }
            Self::Sk(e) => out.extend_from_slice(&e.body),
            Self::Skf(f) => {
                out.extend_from_slice(&f.number.to_be_bytes());
                out.extend_from_slice(&f.total.to_be_bytes());
                out.extend_from_slice(&f.body);
            }
            Self::Cp(c) => {
                out.extend_from_slice(&[c.cfg_type.0, 0, 0, 0]);
                for a in &c.attributes {
                    out.extend_from_slice(&(a.ty & 0x7fff).to_be_bytes());
                    out.extend_from_slice(&u16_len(a.value.len())?);
                    out.extend_from_slice(&a.value);
                }
            }
            Self::Unknown { data, .. } => out.extend_from_slice(data),
        }
        Ok(())
    }

    /// Decodes a payload body of type `ty`. `Ok(None)` means an unknown, non-critical type.
    fn decode_body(
        ty: PayloadType,
        critical: bool,
        next: PayloadType,
        body: &[u8],
    ) -> Result<Self, DecodeError> {
        let syntax = || DecodeError::InvalidSyntax(ty);
        let mut r = Reader::new(body);
        let p = match ty {
            PayloadType::SA => Self::Sa(decode_sa(body)?),
            PayloadType::KE => {
                let group = r.u16().map_err(|_| syntax())?;
                r.u16().map_err(|_| syntax())?;
                Self::Ke(KeyExchange {
                    group,
                    data: r.rest().to_vec(),
                })
            }
            PayloadType::IDI | PayloadType::IDR => {
                let id_type = IdType(r.u8().map_err(|_| syntax())?);
                r.bytes(3).map_err(|_| syntax())?;
                let id = Identification {
                    id_type,
                    data: r.rest().to_vec(),
                };
                if ty == PayloadType::IDI {
                    Self::IdI(id)
                } else {
                    Self::IdR(id)
                }
            }
            PayloadType::CERT | PayloadType::CERTREQ => {
                let encoding = CertEncoding(r.u8().map_err(|_| syntax())?);
                let c = Cert {
                    encoding,
                    data: r.rest().to_vec(),
                };
                if ty == PayloadType::CERT {
                    Self::Cert(c)
                } else {
                    Self::CertReq(c)
                }
            }
            PayloadType::AUTH => {
                let method = AuthMethod(r.u8().map_err(|_| syntax())?);
                r.bytes(3).map_err(|_| syntax())?;
                Self::Auth(Auth {
                    method,
                    data: r.rest().to_vec(),
                })
            }
            PayloadType::NONCE => {
                // RFC 7296 §3.9: 16 to 256 octets.
                if !(16..=256).contains(&body.len()) {
                    return Err(syntax());
                }
                Self::Nonce(body.to_vec())
            }
            PayloadType::NOTIFY => {
                let protocol = ProtocolId(r.u8().map_err(|_| syntax())?);
                let spi_size = r.u8().map_err(|_| syntax())?;
                let nty = NotifyType(r.u16().map_err(|_| syntax())?);
                let spi = r
                    .bytes(usize::from(spi_size))
                    .map_err(|_| syntax())?
                    .to_vec();
                Self::Notify(Notify {
                    protocol,
                    spi,
                    ty: nty,
                    data: r.rest().to_vec(),
                })
            }
            PayloadType::DELETE => {
                let protocol = ProtocolId(r.u8().map_err(|_| syntax())?);
                let spi_size = r.u8().map_err(|_| syntax())?;
                let n = r.u16().map_err(|_| syntax())?;
                let want = usize::from(n)
                    .checked_mul(usize::from(spi_size))
                    .ok_or_else(syntax)?;
                if want != r.remaining() {
                    return Err(syntax());
                }
                let mut spis = Vec::with_capacity(usize::from(n).min(MAX_PAYLOADS * 4));
                for _ in 0..n {
                    spis.push(
                        r.bytes(usize::from(spi_size))
                            .map_err(|_| syntax())?
                            .to_vec(),
                    );
                }
                Self::Delete(Delete {
                    protocol,
                    spi_size,
                    spis,
                })
            }
            PayloadType::VENDOR_ID => Self::VendorId(body.to_vec()),
            PayloadType::TSI | PayloadType::TSR => {
                let n = r.u8().map_err(|_| syntax())?;
                r.bytes(3).map_err(|_| syntax())?;
                let mut ts = Vec::new();
                for _ in 0..n {
                    let ts_type = TsType(r.u8().map_err(|_| syntax())?);
                    let ip_protocol = r.u8().map_err(|_| syntax())?;
                    let len = usize::from(r.u16().map_err(|_| syntax())?);
                    let rest_len = len.checked_sub(4).ok_or_else(syntax)?;
                    let mut t = Reader::new(r.bytes(rest_len).map_err(|_| syntax())?);
                    let start_port = t.u16().map_err(|_| syntax())?;
                    let end_port = t.u16().map_err(|_| syntax())?;
                    let addr_len = t.remaining() / 2;
                    if t.remaining() % 2 != 0
                        || (ts_type == TsType::TS_IPV4_ADDR_RANGE && addr_len != 4)
                        || (ts_type == TsType::TS_IPV6_ADDR_RANGE && addr_len != 16)
                    {
                        return Err(syntax());
                    }
                    let start_addr = t.bytes(addr_len).map_err(|_| syntax())?.to_vec();
                    let end_addr = t.rest().to_vec();
                    ts.push(TrafficSelector {
                        ts_type,
                        ip_protocol,
                        start_port,
                        end_port,
                        start_addr,
                        end_addr,
                    });
                }
                if !r.is_empty() || ts.is_empty() {
                    return Err(syntax());
                }
                if ty == PayloadType::TSI {
                    Self::TsI(ts)
                } else {
                    Self::TsR(ts)
                }
            }
            PayloadType::SK => Self::Sk(Encrypted {
                first_inner: next,
                body: body.to_vec(),
            }),
            PayloadType::SKF => {
                let number = r.u16().map_err(|_| syntax())?;
                let total = r.u16().map_err(|_| syntax())?;
                if number == 0 || total == 0 || number > total {
                    return Err(syntax());
                }
                Self::Skf(EncryptedFragment {
                    first_inner: next,
                    number,
                    total,
                    body: r.rest().to_vec(),
                })
            }
            PayloadType::CP => {
                let cfg_type = CfgType(r.u8().map_err(|_| syntax())?);
                r.bytes(3).map_err(|_| syntax())?;
                let mut attributes = Vec::new();
                while !r.is_empty() {
                    let aty = r.u16().map_err(|_| syntax())? & 0x7fff;
                    let len = r.u16().map_err(|_| syntax())?;
                    let value = r.bytes(usize::from(len)).map_err(|_| syntax())?.to_vec();
                    attributes.push(CfgAttribute { ty: aty, value });
                }
                Self::Cp(Config {
                    cfg_type,
                    attributes,
                })
            }
            _ => {
                if critical {
                    return Err(DecodeError::UnsupportedCritical(ty));
                }
                Self::Unknown {
                    ty,
                    critical,
                    data: body.to_vec(),
                }
            }
        };
        Ok(p)
    }
}

fn encode_sa(props: &[Proposal], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    for (pi, p) in props.iter().enumerate() {
        let start = out.len();
        let last = pi + 1 == props.len();
        out.extend_from_slice(&[if last { 0 } else { 2 }, 0, 0, 0]);
        out.push(p.num);
        out.push(p.protocol.0);
        out.push(u8::try_from(p.spi.len()).map_err(|_| EncodeError::Invalid)?);
        out.push(u8::try_from(p.transforms.len()).map_err(|_| EncodeError::TooLong)?);
        out.extend_from_slice(&p.spi);
        for (ti, t) in p.transforms.iter().enumerate() {
            let tstart = out.len();
            let tlast = ti + 1 == p.transforms.len();
            out.extend_from_slice(&[if tlast { 0 } else { 3 }, 0, 0, 0]);
            out.push(t.ty.0);
            out.push(0);
            out.extend_from_slice(&t.id.to_be_bytes());
            for a in &t.attributes {
                match a {
                    Attribute::Tv { ty, value } => {
                        out.extend_from_slice(&(0x8000 | (ty & 0x7fff)).to_be_bytes());
                        out.extend_from_slice(&value.to_be_bytes());
                    }
                    Attribute::Tlv { ty, value } => {
                        out.extend_from_slice(&(ty & 0x7fff).to_be_bytes());
                        out.extend_from_slice(&u16_len(value.len())?);
                        out.extend_from_slice(value);
                    }
                }
            }
            let tlen = u16_len(out.len() - tstart)?;
            out[tstart + 2..tstart + 4].copy_from_slice(&tlen);
        }
        let plen = u16_len(out.len() - start)?;
        out[start + 2..start + 4].copy_from_slice(&plen);
    }
    Ok(())
}

fn decode_sa(body: &[u8]) -> Result<Vec<Proposal>, DecodeError> {
    let syntax = || DecodeError::InvalidSyntax(PayloadType::SA);
    let mut r = Reader::new(body);
    let mut props = Vec::new();
    loop {
        if props.len() >= MAX_PAYLOADS {
            return Err(DecodeError::TooManyPayloads);
        }
        let more = r.u8().map_err(|_| syntax())?;
        r.u8().map_err(|_| syntax())?;
        let len = usize::from(r.u16().map_err(|_| syntax())?);
        let mut p = Reader::new(
            r.bytes(len.checked_sub(4).ok_or_else(syntax)?)
                .map_err(|_| syntax())?,
        );
        let num = p.u8().map_err(|_| syntax())?;
        let protocol = ProtocolId(p.u8().map_err(|_| syntax())?);
        let spi_size = p.u8().map_err(|_| syntax())?;
        let ntrans = p.u8().map_err(|_| syntax())?;
        let spi = p
            .bytes(usize::from(spi_size))
            .map_err(|_| syntax())?
            .to_vec();
        let mut transforms = Vec::with_capacity(usize::from(ntrans));
        for i in 0..ntrans {
            let tmore = p.u8().map_err(|_| syntax())?;
            p.u8().map_err(|_| syntax())?;
            let tlen = usize::from(p.u16().map_err(|_| syntax())?);
            let mut t = Reader::new(
                p.bytes(tlen.checked_sub(4).ok_or_else(syntax)?)
                    .map_err(|_| syntax())?,
            );
            let ty = TransformType(t.u8().map_err(|_| syntax())?);
            t.u8().map_err(|_| syntax())?;
            let id = t.u16().map_err(|_| syntax())?;
            let mut attributes = Vec::new();
            while !t.is_empty() {
                let aty = t.u16().map_err(|_| syntax())?;
                if aty & 0x8000 != 0 {
                    attributes.push(Attribute::Tv {
                        ty: aty & 0x7fff,
                        value: t.u16().map_err(|_| syntax())?,
                    });
                } else {
                    let alen = t.u16().map_err(|_| syntax())?;
                    attributes.push(Attribute::Tlv {
                        ty: aty,
                        value: t.bytes(usize::from(alen)).map_err(|_| syntax())?.to_vec(),
                    });
                }
            }
            let last = i + 1 == ntrans;
            if (last && tmore != 0) || (!last && tmore != 3) {
                return Err(syntax());
            }
            transforms.push(Transform { ty, id, attributes });
        }
        if !p.is_empty() {
            return Err(syntax());
        }
        props.push(Proposal {
            num,
            protocol,
            spi,
            transforms,
        });
        match more {
            0 if r.is_empty() => return Ok(props),
            2 if !r.is_empty() => {}
            _ => return Err(syntax()),
        }
    }
}

/// Encodes a chain of payloads, computing each Next Payload and Length field. Returns the
/// type of the first payload (NONE for an empty chain).
pub fn encode_payloads(
    payloads: &[Payload],
    out: &mut Vec<u8>,
) -> Result<PayloadType, EncodeError> {
    for (i, p) in payloads.iter().enumerate() {
        let next = match payloads.get(i + 1) {
            Some(n) => n.ty(),
            None => p.own_next().unwrap_or(PayloadType::NONE),
        };
        let start = out.len();
        let critical = matches!(p, Payload::Unknown { critical: true, .. });
        out.extend_from_slice(&[next.0, if critical { 0x80 } else { 0 }, 0, 0]);
        p.encode_body(out)?;
        let len = u16_len(out.len() - start)?;
        out[start + 2..start + 4].copy_from_slice(&len);
    }
    Ok(payloads.first().map_or(PayloadType::NONE, Payload::ty))
}

/// Decodes a chain of payloads starting with type `first`. SK and SKF end the chain (their
/// Next Payload names the first inner payload).
pub fn decode_payloads(first: PayloadType, data: &[u8]) -> Result<Vec<Payload>, DecodeError> {
    let mut r = Reader::new(data);
    let mut ty = first;
    let mut out = Vec::new();
    while ty != PayloadType::NONE {
        if out.len() >= MAX_PAYLOADS {
            return Err(DecodeError::TooManyPayloads);
        }
        let next = PayloadType(r.u8()?);
        let critical = r.u8()? & 0x80 != 0;
        let len = usize::from(r.u16()?);
        let body_len = len
            .checked_sub(PAYLOAD_HEADER_LEN)
            .ok_or(DecodeError::BadLength)?;
        let body = r.bytes(body_len)?;
        let p = Payload::decode_body(ty, critical, next, body)?;
        let ends = matches!(p, Payload::Sk(_) | Payload::Skf(_));
        out.push(p);
        if ends {
            break;
        }
        ty = next;
    }
    if !r.is_empty() {
        return Err(DecodeError::BadLength);
    }
    Ok(out)
}

/// A whole IKE message: header and payload chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Header.
    pub header: Header,
    /// Payloads in order.
    pub payloads: Vec<Payload>,
}

impl Message {
    /// Decodes a message; the header's Length must equal the datagram length.
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let (header, first, length) = Header::decode(data)?;
        if usize::try_from(length).ok() != Some(data.len()) {
            return Err(DecodeError::BadLength);
        }
        let body = data.get(HEADER_LEN..).ok_or(DecodeError::Truncated)?;
        let payloads = decode_payloads(first, body)?;
        Ok(Self { header, payloads })
    }

    /// Encodes the message.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut body = Vec::new();
        let first = encode_payloads(&self.payloads, &mut body)?;
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        self.header
            .encode(first, HEADER_LEN + body.len(), &mut out)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// The first Notify of type `ty`.
    pub fn notify(&self, ty: NotifyType) -> Option<&Notify> {
        find_notify(&self.payloads, ty)
    }
}

/// The first Notify of type `ty` among `payloads`.
pub fn find_notify(payloads: &[Payload], ty: NotifyType) -> Option<&Notify> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.ty == ty => Some(n),
        _ => None,
    })
}

#[cfg(test)]
mod tests;
