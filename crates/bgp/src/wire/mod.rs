//! BGP-4 messages on the wire (RFC 4271 §4): decode from and encode to bytes.
//!
//! Decoding goes through a bounds-checked reader; lengths are computed on encode, never stored.
//! A [`DecodeCtx`] says whether 4-octet AS numbers were negotiated (RFC 6793), which changes the
//! AS_PATH/AGGREGATOR encodings. Errors carry the NOTIFICATION to send; malformed UPDATE attributes
//! that RFC 7606 lets a speaker survive are reported inside the decoded [`Update`] instead.
//!
//! Not supported: ADD-PATH, extended messages (RFC 8654), extended optional parameter lengths
//! (RFC 9072); address families other than IPv4/IPv6 unicast are discarded (their capabilities
//! are kept as opaque values).

mod error;
mod open;
mod reader;
mod update;

pub use error::{
    AttrError, DecodeError, EncodeError, Rfc7606Action, header_sub, open_sub, update_sub,
};
pub use open::{Capability, GracefulRestartCap, Open};
pub use update::{
    Aggregator, AsPath, AsSegment, MpReach, MpUnreach, Origin, PathAttributes, RawAttribute,
    SegmentKind, Update, attr_flags, attr_type,
};

use reader::Reader;

/// The 16-octet all-ones marker that starts every message.
pub const MARKER: [u8; 16] = [0xff; 16];
/// Length of the fixed header (marker, length, type).
pub const HEADER_LEN: usize = 19;
/// Largest message (RFC 4271 §4.1).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// AS_TRANS, the 2-octet stand-in for a 4-octet AS number (RFC 6793).
pub const AS_TRANS: u16 = 23456;

/// NOTIFICATION error codes (RFC 4271 §4.5, RFC 7313).
pub mod code {
    /// Message Header Error.
    pub const MESSAGE_HEADER: u8 = 1;
    /// OPEN Message Error.
    pub const OPEN: u8 = 2;
    /// UPDATE Message Error.
    pub const UPDATE: u8 = 3;
    /// Hold Timer Expired.
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    /// Finite State Machine Error.
    pub const FSM: u8 = 5;
    /// Cease.
    pub const CEASE: u8 = 6;
    /// ROUTE-REFRESH Message Error (RFC 7313).
    pub const ROUTE_REFRESH: u8 = 7;
}

/// Cease subcodes (RFC 4486).
pub mod cease_sub {
    /// Maximum Number of Prefixes Reached.
    pub const MAX_PREFIXES: u8 = 1;
    /// Administrative Shutdown.
    pub const ADMIN_SHUTDOWN: u8 = 2;
    /// Peer De-configured.
    pub const PEER_DECONFIGURED: u8 = 3;
    /// Administrative Reset.
    pub const ADMIN_RESET: u8 = 4;
    /// Connection Rejected.
    pub const CONNECTION_REJECTED: u8 = 5;
    /// Other Configuration Change.
    pub const OTHER_CONFIG_CHANGE: u8 = 6;
    /// Connection Collision Resolution.
    pub const COLLISION: u8 = 7;
    /// Out of Resources.
    pub const OUT_OF_RESOURCES: u8 = 8;
}

/// The name of a NOTIFICATION's error code and subcode, for people: "Cease: Administrative
/// Shutdown", "Hold Timer Expired", "OPEN Message Error: Bad Peer AS" (RFC 4271 §4.5 and §6,
/// RFC 4486, RFC 7313). Unknown values are named by number.
pub fn notification_name(error: u8, sub: u8) -> String {
    let (name, subs): (&str, &[&str]) = match error {
        code::MESSAGE_HEADER => (
            "Message Header Error",
            &[
                "",
                "Connection Not Synchronized",
                "Bad Message Length",
                "Bad Message Type",
            ],
        ),
        code::OPEN => (
            "OPEN Message Error",
            &[
                "",
                "Unsupported Version Number",
                "Bad Peer AS",
                "Bad BGP Identifier",
                "Unsupported Optional Parameter",
                "",
                "Unacceptable Hold Time",
                "Unsupported Capability",
            ],
        ),
        code::UPDATE => (
            "UPDATE Message Error",
            &[
                "",
                "Malformed Attribute List",
                "Unrecognized Well-known Attribute",
                "Missing Well-known Attribute",
                "Attribute Flags Error",
                "Attribute Length Error",
                "Invalid ORIGIN Attribute",
                "",
                "Invalid NEXT_HOP Attribute",
                "Optional Attribute Error",
                "Invalid Network Field",
                "Malformed AS_PATH",
            ],
        ),
        code::HOLD_TIMER_EXPIRED => ("Hold Timer Expired", &[]),
        code::FSM => ("Finite State Machine Error", &[]),
        code::CEASE => (
            "Cease",
            &[
                "",
                "Maximum Number of Prefixes Reached",
                "Administrative Shutdown",
                "Peer De-configured",
                "Administrative Reset",
                "Connection Rejected",
                "Other Configuration Change",
                "Connection Collision Resolution",
                "Out of Resources",
            ],
        ),
        code::ROUTE_REFRESH => (
            "ROUTE-REFRESH Message Error",
            &["", "Invalid Message Length"],
        ),
        _ => return format!("error code {error}, subcode {sub}"),
    };
    match subs.get(usize::from(sub)).copied() {
        _ if sub == 0 => name.to_owned(),
        Some(s) if !s.is_empty() => format!("{name}: {s}"),
        _ => format!("{name}: subcode {sub}"),
    }
}

/// Message type codes.
mod msg_type {
    pub(super) const OPEN: u8 = 1;
    pub(super) const UPDATE: u8 = 2;
    pub(super) const NOTIFICATION: u8 = 3;
    pub(super) const KEEPALIVE: u8 = 4;
    pub(super) const ROUTE_REFRESH: u8 = 5;
}

/// What the decoder needs to know about the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecodeCtx {
    /// Both sides advertised the 4-octet AS capability (RFC 6793): AS_PATH carries 4-octet ASNs.
    pub four_octet_as: bool,
}

/// A NOTIFICATION message (RFC 4271 §4.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Error code (see [`code`]).
    pub code: u8,
    /// Error subcode.
    pub subcode: u8,
    /// Data, meaning depends on code/subcode.
    pub data: Vec<u8>,
}

/// A ROUTE-REFRESH message (RFC 2918; the subtype octet of RFC 7313 is kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRefresh {
    /// The family to refresh.
    pub family: crate::Family,
    /// RFC 7313 message subtype (0 = normal request).
    pub subtype: u8,
}

/// Any BGP message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// OPEN.
    Open(Open),
    /// UPDATE.
    Update(Update),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH.
    RouteRefresh(RouteRefresh),
}

fn bad_length(len: u16) -> DecodeError {
    DecodeError::Header {
        subcode: header_sub::BAD_MESSAGE_LENGTH,
        data: len.to_be_bytes().to_vec(),
    }
}

/// Looks at the start of a byte stream: `Ok(Some(n))` when a whole message of `n` octets is
/// there, `Ok(None)` when more bytes are needed, or the header error (bad marker, bad length).
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    let mut r = Reader::new(buf);
    let Some(marker) = r.bytes(16) else {
        // Check the partial marker too, so garbage fails early.
        if buf.iter().any(|&b| b != 0xff) {
            return Err(DecodeError::Header {
                subcode: header_sub::CONNECTION_NOT_SYNCHRONIZED,
                data: Vec::new(),
            });
        }
        return Ok(None);
    };
    if marker != MARKER {
        return Err(DecodeError::Header {
            subcode: header_sub::CONNECTION_NOT_SYNCHRONIZED,
            data: Vec::new(),
        });
    }
    let Some(len) = r.u16() else { return Ok(None) };
    if usize::from(len) < HEADER_LEN || usize::from(len) > MAX_MESSAGE_LEN {
        return Err(bad_length(len));
    }
    if buf.len() < usize::from(len) {
        Ok(None)
    } else {
        Ok(Some(usize::from(len)))
    }
}

/// Decodes one whole message (header included), as delimited by [`frame_len`].
pub fn decode(msg: &[u8], ctx: &DecodeCtx) -> Result<Message, DecodeError> {
    match frame_len(msg)? {
        Some(n) if n == msg.len() => {}
        _ => {
            let len = u16::try_from(msg.len()).unwrap_or(u16::MAX);
            return Err(bad_length(len));
        }
    }
    let mut r = Reader::new(msg);
    r.bytes(16);
    let len = r.u16().unwrap_or(0);
    let ty = r.u8().ok_or_else(|| bad_length(len))?;
    let body = r.rest();
    let len_us = usize::from(len);
    match ty {
        msg_type::OPEN => {
            if len_us < HEADER_LEN + 10 {
                return Err(bad_length(len));
            }
            Ok(Message::Open(open::decode_open(body)?))
        }
        msg_type::UPDATE => {
            if len_us < HEADER_LEN + 4 {
                return Err(bad_length(len));
            }
            Ok(Message::Update(update::decode_update(body, ctx)?))
        }
        msg_type::NOTIFICATION => {
            let mut r = Reader::new(body);
            let (Some(code), Some(subcode)) = (r.u8(), r.u8()) else {
                return Err(bad_length(len));
            };
            Ok(Message::Notification(Notification {
                code,
                subcode,
                data: r.rest().to_vec(),
            }))
        }
        msg_type::KEEPALIVE => {
            if len_us != HEADER_LEN {
                return Err(bad_length(len));
            }
            Ok(Message::Keepalive)
        }
        msg_type::ROUTE_REFRESH => {
            let mut r = Reader::new(body);
            match (r.u16(), r.u8(), r.u8(), r.is_empty()) {
                (Some(afi), Some(subtype), Some(safi), true) => {
                    Ok(Message::RouteRefresh(RouteRefresh {
                        family: crate::Family {
                            afi: crate::Afi(afi),
                            safi: crate::Safi(safi),
                        },
                        subtype,
                    }))
                }
                _ => Err(DecodeError::RouteRefresh { data: msg.to_vec() }),
            }
        }
        other => Err(DecodeError::Header {
            subcode: header_sub::BAD_MESSAGE_TYPE,
            data: vec![other],
        }),
    }
}

/// Encodes a message (header included) onto the end of `out`.
pub fn encode(msg: &Message, ctx: &DecodeCtx, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&MARKER);
    out.extend_from_slice(&[0, 0]);
    let res = match msg {
        Message::Open(o) => {
            out.push(msg_type::OPEN);
            open::encode_open(o, out)
        }
        Message::Update(u) => {
            out.push(msg_type::UPDATE);
            update::encode_update(u, ctx, out)
        }
        Message::Notification(n) => {
            out.push(msg_type::NOTIFICATION);
            out.push(n.code);
            out.push(n.subcode);
            out.extend_from_slice(&n.data);
            Ok(())
        }
        Message::Keepalive => {
            out.push(msg_type::KEEPALIVE);
            Ok(())
        }
        Message::RouteRefresh(rr) => {
            out.push(msg_type::ROUTE_REFRESH);
            out.extend_from_slice(&rr.family.afi.0.to_be_bytes());
            out.push(rr.subtype);
            out.push(rr.family.safi.0);
            Ok(())
        }
    };
    let len = out.len() - start;
    if let Err(e) = res {
        out.truncate(start);
        return Err(e);
    }
    if len > MAX_MESSAGE_LEN {
        out.truncate(start);
        return Err(EncodeError::TooLong(len));
    }
    let len16 = u16::try_from(len).map_err(|_| EncodeError::TooLong(len))?;
    if let Some(slot) = out.get_mut(start + 16..start + 18) {
        slot.copy_from_slice(&len16.to_be_bytes());
    }
    Ok(())
}

/// Encodes a message into a fresh vector.
pub fn encode_to_vec(msg: &Message, ctx: &DecodeCtx) -> Result<Vec<u8>, EncodeError> {
    let mut v = Vec::new();
    encode(msg, ctx, &mut v)?;
    Ok(v)
}

#[cfg(test)]
mod tests;
