//! Decode and encode errors, shaped like the NOTIFICATION they cause (RFC 4271 §6) and, for
//! UPDATE attributes, the RFC 7606 action they call for.

use super::{Notification, code};

/// What RFC 7606 says to do about a malformed UPDATE (§2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rfc7606Action {
    /// Treat the UPDATE's announced routes as withdrawn; keep the session (§2, "treat-as-withdraw").
    TreatAsWithdraw,
    /// Drop only the bad attribute and process the rest (§2, "attribute discard").
    AttributeDiscard,
    /// Send a NOTIFICATION and reset the session (§2, "session reset").
    SessionReset,
}

/// One malformed UPDATE attribute (or field): its UPDATE Message Error subcode (RFC 4271 §6.3),
/// the NOTIFICATION data, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrError {
    /// UPDATE Message Error subcode (see [`update_sub`]).
    pub subcode: u8,
    /// NOTIFICATION data (usually the offending attribute), bounded by the message size.
    pub data: Vec<u8>,
    /// The RFC 7606 action.
    pub action: Rfc7606Action,
}

/// UPDATE Message Error subcodes (RFC 4271 §4.5).
pub mod update_sub {
    /// Malformed Attribute List.
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    /// Unrecognized Well-known Attribute.
    pub const UNRECOGNIZED_WELL_KNOWN: u8 = 2;
    /// Missing Well-known Attribute.
    pub const MISSING_WELL_KNOWN: u8 = 3;
    /// Attribute Flags Error.
    pub const ATTRIBUTE_FLAGS: u8 = 4;
    /// Attribute Length Error.
    pub const ATTRIBUTE_LENGTH: u8 = 5;
    /// Invalid ORIGIN Attribute.
    pub const INVALID_ORIGIN: u8 = 6;
    /// Invalid NEXT_HOP Attribute.
    pub const INVALID_NEXT_HOP: u8 = 8;
    /// Optional Attribute Error.
    pub const OPTIONAL_ATTRIBUTE: u8 = 9;
    /// Invalid Network Field.
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    /// Malformed AS_PATH.
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// OPEN Message Error subcodes (RFC 4271 §4.5, RFC 5492).
pub mod open_sub {
    /// Unspecific.
    pub const UNSPECIFIC: u8 = 0;
    /// Unsupported Version Number.
    pub const UNSUPPORTED_VERSION: u8 = 1;
    /// Bad Peer AS.
    pub const BAD_PEER_AS: u8 = 2;
    /// Bad BGP Identifier.
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    /// Unsupported Optional Parameter.
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    /// Unacceptable Hold Time.
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    /// Unsupported Capability (RFC 5492).
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
}

/// Message Header Error subcodes (RFC 4271 §4.5).
pub mod header_sub {
    /// Connection Not Synchronized (bad marker).
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    /// Bad Message Length.
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    /// Bad Message Type.
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// A message that cannot be accepted. Each variant maps to the NOTIFICATION to send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Message Header Error (code 1).
    #[error("message header error, subcode {subcode}")]
    Header {
        /// Subcode, see [`header_sub`].
        subcode: u8,
        /// NOTIFICATION data.
        data: Vec<u8>,
    },
    /// OPEN Message Error (code 2).
    #[error("OPEN message error, subcode {subcode}")]
    Open {
        /// Subcode, see [`open_sub`].
        subcode: u8,
        /// NOTIFICATION data.
        data: Vec<u8>,
    },
    /// UPDATE Message Error (code 3) whose RFC 7606 action is session reset.
    #[error("UPDATE message error, subcode {}", .0.subcode)]
    Update(AttrError),
    /// ROUTE-REFRESH Message Error (code 7, RFC 7313): invalid message length.
    #[error("ROUTE-REFRESH message error, invalid length")]
    RouteRefresh {
        /// NOTIFICATION data (the message).
        data: Vec<u8>,
    },
}

impl DecodeError {
    /// The NOTIFICATION error code.
    pub fn code(&self) -> u8 {
        match self {
            Self::Header { .. } => code::MESSAGE_HEADER,
            Self::Open { .. } => code::OPEN,
            Self::Update(_) => code::UPDATE,
            Self::RouteRefresh { .. } => code::ROUTE_REFRESH,
        }
    }
    /// The NOTIFICATION error subcode.
    pub fn subcode(&self) -> u8 {
        match self {
            Self::Header { subcode, .. } | Self::Open { subcode, .. } => *subcode,
            Self::Update(e) => e.subcode,
            Self::RouteRefresh { .. } => 1,
        }
    }
    /// The NOTIFICATION to send in answer (data truncated so that it fits one message).
    pub fn notification(&self) -> Notification {
        let data = match self {
            Self::Header { data, .. } | Self::Open { data, .. } | Self::RouteRefresh { data } => {
                data
            }
            Self::Update(e) => &e.data,
        };
        let mut data = data.clone();
        data.truncate(super::MAX_MESSAGE_LEN - super::HEADER_LEN - 2);
        Notification {
            code: self.code(),
            subcode: self.subcode(),
            data,
        }
    }
}

/// A message that cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The message would exceed the 4096-octet maximum (RFC 4271 §4.1).
    #[error("message of {0} octets exceeds the maximum of 4096")]
    TooLong(usize),
    /// A field does not fit its wire width (e.g. over 255 octets of capabilities).
    #[error("{0} does not fit its length field")]
    FieldTooLong(&'static str),
}
