//! Multipath (ECMP) routes and a route dump that reports every next hop (RFC 3549 §3.1.1;
//! `RTA_MULTIPATH` holds a list of `struct rtnexthop`, each followed by its own attributes, as
//! laid out in the kernel's `linux/rtnetlink.h`).
//!
//! A route with one next hop is sent as plain `RTA_OIF` / `RTA_GATEWAY`; with more, as
//! `RTA_MULTIPATH`. Routes are keyed by table, destination and metric, as the kernel keys them;
//! deletes also match the protocol, so a caller never removes another daemon's route.

use std::io;
use std::net::IpAddr;

use super::msg::*;
use super::{Netlink, TABLE_MAIN, bad_input, check_prefix, family_of};

/// One next hop of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NextHop {
    /// Output interface index.
    pub ifindex: u32,
    /// Gateway on that interface (`None`: a device route, as over a point-to-point tunnel).
    pub gateway: Option<IpAddr>,
}

/// A route as dumped, with all its next hops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix (the unspecified address for a default route).
    pub dst: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// Routing table id.
    pub table: u32,
    /// `rtm_protocol`.
    pub protocol: u8,
    /// `rtm_scope`.
    pub scope: u8,
    /// `rtm_type` (1 = unicast).
    pub kind: u8,
    /// Metric (`RTA_PRIORITY`), 0 when absent.
    pub metric: u32,
    /// Next hops: one for a single-path route, several for a multipath one; none for routes
    /// without an output device (blackhole, unreachable).
    pub nexthops: Vec<NextHop>,
    /// Next hops the kernel flags as dead or link-down (`RTNH_F_DEAD`, `RTNH_F_LINKDOWN`).
    pub dead: Vec<NextHop>,
}

/// The most next hops one request carries (the kernel's own limit is far higher; this bounds
/// the message to well under a page per hop set).
pub const MAX_NEXTHOPS: usize = 64;

impl Netlink {
    /// Adds or replaces (`NLM_F_CREATE | NLM_F_REPLACE`) the unicast route `dst/prefix_len` in
    /// `table` (0 means main) at `metric`, tagged with `protocol`, with exactly `nexthops`
    /// (ECMP when more than one). IPv4 routes whose next hops have no gateway get link scope.
    /// IPv6 metric 0 is the kernel's default 1024, so pass an explicit metric to match dumps.
    /// The kernel refuses IPv6 multipath routes whose next hops have no gateway (`EINVAL`).
    ///
    /// Fails with `InvalidInput` for an empty or too long (over [`MAX_NEXTHOPS`]) list, a
    /// gateway of the other family, or host bits in `dst`.
    pub fn replace_route(
        &mut self,
        dst: IpAddr,
        prefix_len: u8,
        nexthops: &[NextHop],
        table: u32,
        protocol: u8,
        metric: u32,
    ) -> io::Result<()> {
        let key = (dst, prefix_len, table, protocol, metric);
        self.new_route(NLM_F_CREATE | NLM_F_REPLACE, key, nexthops)
    }

    /// As [`Netlink::replace_route`], but only adds (`NLM_F_CREATE | NLM_F_EXCL`): fails with
    /// `EEXIST` when a route for `dst/prefix_len` at `metric` is already in `table`, whoever
    /// owns it, so another daemon's route is never overwritten.
    pub fn add_route_exclusive(
        &mut self,
        dst: IpAddr,
        prefix_len: u8,
        nexthops: &[NextHop],
        table: u32,
        protocol: u8,
        metric: u32,
    ) -> io::Result<()> {
        let key = (dst, prefix_len, table, protocol, metric);
        self.new_route(NLM_F_CREATE | NLM_F_EXCL, key, nexthops)
    }

    /// `RTM_NEWROUTE` with `flags` for (destination, length, table, protocol, metric).
    fn new_route(
        &mut self,
        flags: u16,
        (dst, prefix_len, table, protocol, metric): (IpAddr, u8, u32, u8, u32),
        nexthops: &[NextHop],
    ) -> io::Result<()> {
        check_prefix(dst, prefix_len)?;
        if nexthops.is_empty() || nexthops.len() > MAX_NEXTHOPS {
            return Err(bad_input("a route needs 1 to 64 next hops"));
        }
        if nexthops
            .iter()
            .any(|h| h.gateway.is_some_and(|g| g.is_ipv4() != dst.is_ipv4()))
        {
            return Err(bad_input(
                "gateway of another address family than the route",
            ));
        }
        let scope = if dst.is_ipv4() && nexthops.iter().all(|h| h.gateway.is_none()) {
            RT_SCOPE_LINK
        } else {
            RT_SCOPE_UNIVERSE
        };
        self.request(RTM_NEWROUTE, flags, |b| {
            route_header(b, dst, prefix_len, table, protocol, scope, RTN_UNICAST);
            if metric != 0 {
                b.attr_u32(RTA_PRIORITY, metric);
            }
            match nexthops {
                [one] => {
                    b.attr_u32(RTA_OIF, one.ifindex);
                    if let Some(gw) = one.gateway {
                        b.attr_ip(RTA_GATEWAY, gw);
                    }
                }
                many => {
                    b.attr(RTA_MULTIPATH, &encode_multipath(many));
                }
            }
        })
    }

    /// Deletes the route `dst/prefix_len` in `table` (0 means main) at `metric` whose
    /// `rtm_protocol` is `protocol`, with all its next hops. `protocol` and `metric` must be
    /// non-zero, so the delete can never match a route of another protocol (or any metric).
    /// Fails with `ESRCH` if no such route exists.
    pub fn delete_route(
        &mut self,
        dst: IpAddr,
        prefix_len: u8,
        table: u32,
        protocol: u8,
        metric: u32,
    ) -> io::Result<()> {
        check_prefix(dst, prefix_len)?;
        if protocol == 0 || metric == 0 {
            return Err(bad_input(
                "delete_route needs a non-zero protocol and metric",
            ));
        }
        self.request(RTM_DELROUTE, 0, |b| {
            route_header(b, dst, prefix_len, table, protocol, RT_SCOPE_NOWHERE, 0);
            b.attr_u32(RTA_PRIORITY, metric);
        })
    }

    /// Dumps the routes of `family` (`libc::AF_INET`, `libc::AF_INET6` or `libc::AF_UNSPEC`)
    /// in `table` (0: all tables), each with all its next hops.
    pub fn routes_with_nexthops(&mut self, family: i32, table: u32) -> io::Result<Vec<Route>> {
        let mut out = Vec::new();
        self.dump_routes(family, |payload| {
            if let Some(r) = parse_route_full(payload) {
                if table == 0 || r.table == table {
                    out.push(r);
                }
            }
        })?;
        Ok(out)
    }
}

/// The fixed `rtmsg` header plus `RTA_DST` and `RTA_TABLE`, shared by single-hop and
/// multipath routes.
pub(super) fn route_header(
    b: &mut MsgBuilder,
    dst: IpAddr,
    prefix_len: u8,
    table: u32,
    protocol: u8,
    scope: u8,
    kind: u8,
) {
    let table = if table == 0 { TABLE_MAIN } else { table };
    let mut hdr = [0u8; 12];
    hdr[0] = family_of(dst);
    hdr[1] = prefix_len;
    hdr[4] = u8::try_from(table).unwrap_or(0); // RT_TABLE_UNSPEC: RTA_TABLE carries it
    hdr[5] = protocol;
    hdr[6] = scope;
    hdr[7] = kind;
    b.bytes(&hdr);
    if prefix_len > 0 {
        b.attr_ip(RTA_DST, dst);
    }
    b.attr_u32(RTA_TABLE, table);
}

/// The payload of `RTA_MULTIPATH`: per hop an 8-byte `rtnexthop` (length, flags, hops =
/// weight - 1, ifindex) and an optional `RTA_GATEWAY`, each padded to 4 bytes.
fn encode_multipath(hops: &[NextHop]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hops.len() * 28);
    for h in hops {
        let gw: Vec<u8> = match h.gateway {
            None => Vec::new(),
            Some(IpAddr::V4(a)) => a.octets().to_vec(),
            Some(IpAddr::V6(a)) => a.octets().to_vec(),
        };
        let attr_len = if gw.is_empty() { 0 } else { 4 + gw.len() };
        let len = u16::try_from(8 + attr_len).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_ne_bytes());
        out.push(0); // rtnh_flags
        out.push(0); // rtnh_hops: weight 1, equal cost
        out.extend_from_slice(&h.ifindex.to_ne_bytes());
        if !gw.is_empty() {
            let alen = u16::try_from(4 + gw.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&alen.to_ne_bytes());
            out.extend_from_slice(&RTA_GATEWAY.to_ne_bytes());
            out.extend_from_slice(&gw);
        }
    }
    out
}

/// Decodes an `RTA_MULTIPATH` payload into (next hop, rtnh_flags) pairs; stops at the first
/// malformed entry.
fn decode_multipath(family: u8, mut data: &[u8]) -> Vec<(NextHop, u8)> {
    let mut out = Vec::new();
    while data.len() >= 8 {
        let len = usize::from(u16::from_ne_bytes([data[0], data[1]]));
        if len < 8 || len > data.len() {
            break;
        }
        let flags = data[2];
        let Some(ifindex) = u32_at(data, 4) else {
            break;
        };
        let mut hop = NextHop {
            ifindex,
            gateway: None,
        };
        for (ty, v) in attrs(data.get(8..len).unwrap_or(&[])) {
            if ty == RTA_GATEWAY {
                hop.gateway = ip_from(family, v);
            }
        }
        out.push((hop, flags));
        let next = (len + 3) & !3;
        data = data.get(next.min(data.len())..).unwrap_or(&[]);
    }
    out
}

/// Parses one `RTM_NEWROUTE` payload with all its next hops.
pub(super) fn parse_route_full(p: &[u8]) -> Option<Route> {
    let hdr = p.get(..12)?;
    let family = hdr[0];
    let mut r = Route {
        dst: match i32::from(family) {
            libc::AF_INET => IpAddr::from([0u8; 4]),
            libc::AF_INET6 => IpAddr::from([0u8; 16]),
            _ => return None,
        },
        prefix_len: hdr[1],
        table: u32::from(hdr[4]),
        protocol: hdr[5],
        scope: hdr[6],
        kind: hdr[7],
        metric: 0,
        nexthops: Vec::new(),
        dead: Vec::new(),
    };
    let rtm_flags = u32_at(hdr, 8).unwrap_or(0);
    let (mut oif, mut gateway) = (None, None);
    for (ty, v) in attrs(p.get(12..)?) {
        match ty {
            RTA_DST => r.dst = ip_from(family, v)?,
            RTA_OIF => oif = u32_at(v, 0),
            RTA_GATEWAY => gateway = ip_from(family, v),
            RTA_PRIORITY => r.metric = u32_at(v, 0).unwrap_or(0),
            RTA_TABLE => r.table = u32_at(v, 0).unwrap_or(r.table),
            RTA_MULTIPATH => {
                for (hop, flags) in decode_multipath(family, v) {
                    if flags & (RTNH_F_DEAD | RTNH_F_LINKDOWN) != 0 {
                        r.dead.push(hop);
                    } else {
                        r.nexthops.push(hop);
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(ifindex) = oif {
        let hop = NextHop { ifindex, gateway };
        if rtm_flags & u32::from(RTNH_F_DEAD | RTNH_F_LINKDOWN) != 0 {
            r.dead.push(hop);
        } else {
            r.nexthops.push(hop);
        }
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(i: u32, gw: Option<&str>) -> NextHop {
        NextHop {
            ifindex: i,
            gateway: gw.map(|g| g.parse().unwrap()),
        }
    }

    #[test]
    fn multipath_payload_round_trips() {
        let v4 = [hop(3, None), hop(4, Some("169.254.0.1"))];
        let enc = encode_multipath(&v4);
        assert_eq!(enc.len(), 8 + 16);
        let dec: Vec<_> = decode_multipath(libc::AF_INET as u8, &enc)
            .into_iter()
            .map(|(h, _)| h)
            .collect();
        assert_eq!(dec, v4);
        let v6 = [hop(3, Some("fe80::1")), hop(9, None)];
        let enc = encode_multipath(&v6);
        let dec: Vec<_> = decode_multipath(libc::AF_INET6 as u8, &enc)
            .into_iter()
            .map(|(h, _)| h)
            .collect();
        assert_eq!(dec, v6);
    }

    #[test]
    fn malformed_multipath_stops_without_panic() {
        for data in [
            &[][..],
            &[4, 0, 0, 0, 1, 0, 0, 0][..],
            &[200, 0, 0, 0, 1, 0, 0, 0][..],
            &[8, 0, 0, 0, 1, 0, 0][..],
            &[12, 0, 0, 0, 1, 0, 0, 0, 9, 0, 5, 0][..],
        ] {
            let _ = decode_multipath(libc::AF_INET as u8, data);
        }
        assert_eq!(
            decode_multipath(libc::AF_INET as u8, &[8, 0, 0, 0, 7, 0, 0, 0, 1, 2]).len(),
            1
        );
    }

    #[test]
    fn dumped_multipath_route_parses_dead_hops_apart() {
        let mut b = MsgBuilder::new(RTM_NEWROUTE, 0, 1);
        route_header(
            &mut b,
            "10.9.0.0".parse().unwrap(),
            16,
            1000,
            0xbe,
            RT_SCOPE_LINK,
            RTN_UNICAST,
        );
        b.attr_u32(RTA_PRIORITY, 20);
        let mut mp = encode_multipath(&[hop(5, None), hop(6, None)]);
        mp[8 + 2] = RTNH_F_LINKDOWN; // second hop's flags
        b.attr(RTA_MULTIPATH, &mp);
        let m = b.finish();
        let r = parse_route_full(&m[16..]).unwrap();
        assert_eq!(
            (r.prefix_len, r.table, r.protocol, r.metric),
            (16, 1000, 0xbe, 20)
        );
        assert_eq!(r.nexthops, vec![hop(5, None)]);
        assert_eq!(r.dead, vec![hop(6, None)]);
        assert_eq!(parse_route_full(&m[16..24]), None);
    }
}
