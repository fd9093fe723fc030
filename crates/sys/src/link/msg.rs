//! rtnetlink message encoding and decoding (RFC 3549 §2.3; layouts from the kernel's
//! `linux/netlink.h`, `linux/rtnetlink.h`, `linux/if_addr.h`). Safe code over byte slices:
//! every read is bounds-checked, so a malformed reply yields an error, never a panic.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub(super) const NLMSG_HDR_LEN: usize = 16;

pub(super) const NLMSG_NOOP: u16 = 1;
pub(super) const NLMSG_ERROR: u16 = 2;
pub(super) const NLMSG_DONE: u16 = 3;

pub(super) const NLM_F_REQUEST: u16 = 0x1;
pub(super) const NLM_F_MULTI: u16 = 0x2;
pub(super) const NLM_F_ACK: u16 = 0x4;
pub(super) const NLM_F_REPLACE: u16 = 0x100;
pub(super) const NLM_F_DUMP: u16 = 0x300;
pub(super) const NLM_F_CREATE: u16 = 0x400;
/// `NLM_F_EXCL`: fail with `EEXIST` if the object exists (`linux/netlink.h`).
pub(super) const NLM_F_EXCL: u16 = 0x200;

pub(super) const RTM_NEWLINK: u16 = 16;
pub(super) const RTM_DELLINK: u16 = 17;
pub(super) const RTM_NEWADDR: u16 = 20;
pub(super) const RTM_DELADDR: u16 = 21;
pub(super) const RTM_NEWROUTE: u16 = 24;
pub(super) const RTM_DELROUTE: u16 = 25;
pub(super) const RTM_GETROUTE: u16 = 26;

pub(super) const IFLA_IFNAME: u16 = 3;
pub(super) const IFLA_MTU: u16 = 4;
pub(super) const IFA_ADDRESS: u16 = 1;
pub(super) const IFA_LOCAL: u16 = 2;
pub(super) const IFA_FLAGS: u16 = 8;
pub(super) const IFA_F_NODAD: u32 = 0x02;
pub(super) const RTA_DST: u16 = 1;
pub(super) const RTA_OIF: u16 = 4;
pub(super) const RTA_GATEWAY: u16 = 5;
pub(super) const RTA_PRIORITY: u16 = 6;
pub(super) const RTA_MULTIPATH: u16 = 9;
pub(super) const RTA_TABLE: u16 = 15;

/// `RTMGRP_LINK`: the multicast group of link changes.
pub(super) const RTMGRP_LINK: u32 = 1;
/// `RTNH_F_DEAD` and `RTNH_F_LINKDOWN`: flags of a next hop the kernel will not use.
pub(super) const RTNH_F_DEAD: u8 = 1;
pub(super) const RTNH_F_LINKDOWN: u8 = 16;

pub(super) const RT_SCOPE_UNIVERSE: u8 = 0;
pub(super) const RT_SCOPE_LINK: u8 = 253;
pub(super) const RT_SCOPE_NOWHERE: u8 = 255;
pub(super) const RTN_UNICAST: u8 = 1;

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Builds one netlink request: header, fixed family header, attributes.
pub(super) struct MsgBuilder {
    buf: Vec<u8>,
}

impl MsgBuilder {
    pub(super) fn new(ty: u16, flags: u16, seq: u32) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched in finish()
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
        Self { buf }
    }

    /// Appends raw bytes of a fixed header (callers pass 4-byte multiples).
    pub(super) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self.pad();
        self
    }

    /// Appends one `rtattr`.
    pub(super) fn attr(&mut self, ty: u16, payload: &[u8]) -> &mut Self {
        let len = u16::try_from(4 + payload.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
        self
    }

    pub(super) fn attr_u32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.attr(ty, &v.to_ne_bytes())
    }

    pub(super) fn attr_ip(&mut self, ty: u16, ip: IpAddr) -> &mut Self {
        match ip {
            IpAddr::V4(a) => self.attr(ty, &a.octets()),
            IpAddr::V6(a) => self.attr(ty, &a.octets()),
        }
    }

    fn pad(&mut self) {
        let want = align4(self.buf.len());
        self.buf.resize(want, 0);
    }

    pub(super) fn finish(mut self) -> Vec<u8> {
        let len = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// One message out of a received datagram.
pub(super) struct NlMsg<'a> {
    pub(super) ty: u16,
    pub(super) flags: u16,
    pub(super) seq: u32,
    pub(super) payload: &'a [u8],
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at.checked_add(2)?)
        .map(|s| u16::from_ne_bytes([s[0], s[1]]))
}

pub(super) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at.checked_add(4)?)
        .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

/// Iterates over the messages of one datagram.
pub(super) fn messages(mut data: &[u8]) -> impl Iterator<Item = io::Result<NlMsg<'_>>> {
    std::iter::from_fn(move || {
        if data.is_empty() {
            return None;
        }
        let parsed = (|| {
            let len = u32_at(data, 0).ok_or_else(|| invalid("short netlink header"))? as usize;
            if len < NLMSG_HDR_LEN || len > data.len() {
                return Err(invalid("bad netlink message length"));
            }
            let msg = NlMsg {
                ty: u16_at(data, 4).unwrap_or(0),
                flags: u16_at(data, 6).unwrap_or(0),
                seq: u32_at(data, 8).unwrap_or(0),
                payload: data.get(NLMSG_HDR_LEN..len).unwrap_or(&[]),
            };
            Ok((msg, align4(len).min(data.len())))
        })();
        match parsed {
            Ok((msg, next)) => {
                data = data.get(next..).unwrap_or(&[]);
                Some(Ok(msg))
            }
            Err(e) => {
                data = &[];
                Some(Err(e))
            }
        }
    })
}

/// The errno of an `NLMSG_ERROR` payload: `Ok(())` for an ack (error 0).
pub(super) fn parse_error(payload: &[u8]) -> io::Result<()> {
    let code = u32_at(payload, 0).ok_or_else(|| invalid("short NLMSG_ERROR"))? as i32;
    if code == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(code.saturating_neg()))
    }
}

/// Iterates over `rtattr`s as (type without flag bits, payload).
pub(super) fn attrs(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16_at(data, 0)?);
        let ty = u16_at(data, 2)? & 0x3fff; // strip NLA_F_NESTED / NLA_F_NET_BYTEORDER
        if len < 4 || len > data.len() {
            data = &[];
            return None;
        }
        let payload = data.get(4..len)?;
        data = data.get(align4(len).min(data.len())..).unwrap_or(&[]);
        Some((ty, payload))
    })
}

/// Reads an address attribute of the given family.
pub(super) fn ip_from(family: u8, b: &[u8]) -> Option<IpAddr> {
    match i32::from(family) {
        libc::AF_INET => <[u8; 4]>::try_from(b)
            .ok()
            .map(|o| Ipv4Addr::from(o).into()),
        libc::AF_INET6 => <[u8; 16]>::try_from(b)
            .ok()
            .map(|o| Ipv6Addr::from(o).into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_pads_and_sets_length() {
        let mut b = MsgBuilder::new(RTM_NEWROUTE, NLM_F_REQUEST, 7);
        b.bytes(&[1, 2, 3, 4]).attr(RTA_DST, &[10, 0, 0]);
        let m = b.finish();
        assert_eq!(m.len(), 16 + 4 + 8);
        assert_eq!(u32_at(&m, 0), Some(28));
        let parsed: Vec<_> = messages(&m).collect::<io::Result<_>>().unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!((parsed[0].ty, parsed[0].seq), (RTM_NEWROUTE, 7));
        let a: Vec<_> = attrs(&parsed[0].payload[4..]).collect();
        assert_eq!(a, vec![(RTA_DST, &[10u8, 0, 0][..])]);
    }

    #[test]
    fn error_payload_maps_to_errno() {
        let mut p = (-libc::EEXIST).to_ne_bytes().to_vec();
        p.extend_from_slice(&[0; 16]);
        assert_eq!(
            parse_error(&p).unwrap_err().raw_os_error(),
            Some(libc::EEXIST)
        );
        assert!(parse_error(&0i32.to_ne_bytes()).is_ok());
        assert!(parse_error(&[1, 2]).is_err());
    }

    #[test]
    fn malformed_input_does_not_panic() {
        for data in [
            &[][..],
            &[1, 0, 0, 0][..],
            &[0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
            &[16, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 9][..],
        ] {
            let _ = messages(data).count();
            let _ = attrs(data).count();
        }
        assert_eq!(attrs(&[2, 0, 1, 0]).count(), 0, "rta_len below header size");
        assert_eq!(attrs(&[8, 0, 1, 0, 1]).count(), 0, "rta_len past end");
    }
}
