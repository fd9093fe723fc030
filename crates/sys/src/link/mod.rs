//! Interface configuration over rtnetlink (RFC 3549), synchronous, plus `/proc/sys` writes.
//!
//! Each request asks for an acknowledgement (`NLM_F_ACK`) and waits for it; a negative
//! `NLMSG_ERROR` code comes back as the matching [`io::Error`] (e.g. `EEXIST`, `ESRCH`,
//! `ENODEV`), so callers can match on [`io::Error::raw_os_error`]. The free functions open a
//! socket per call; [`Netlink`] reuses one for many requests (e.g. a route reconciler).
//!
//! Routes: single-path device routes ([`Netlink::add_route`]), and routes with any number of
//! next hops, gateways and a metric ([`Netlink::replace_route`], [`Netlink::delete_route`],
//! [`Netlink::routes_with_nexthops`], ECMP via `RTA_MULTIPATH`). [`LinkWatch`] follows link
//! state changes (the `RTMGRP_LINK` multicast group).
//!
//! Does not: manage neighbours, rules or nexthop objects, set next-hop weights, or create links
//! other than through [`crate::tun`]. It must run in the network namespace to configure (the
//! socket binds to the namespace of the thread that opens it).

mod msg;
mod multipath;
mod socket;
mod watch;

#[cfg(test)]
mod netns_tests;

pub use multipath::{MAX_NEXTHOPS, NextHop, Route};
pub use watch::{LinkEvent, LinkWatch};

use std::ffi::CString;
use std::io;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

use msg::*;
use socket::NlSocket;

/// The main routing table (`RT_TABLE_MAIN`).
pub const TABLE_MAIN: u32 = 254;

/// A route as dumped from the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteEntry {
    /// Destination prefix (the unspecified address for a default route).
    pub dst: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// Routing table id.
    pub table: u32,
    /// Routing protocol (`rtm_protocol`; e.g. 2 = kernel, 3 = boot, 4 = static).
    pub protocol: u8,
    /// Scope (`rtm_scope`; 0 = universe, 253 = link, 254 = host).
    pub scope: u8,
    /// Route type (`rtm_type`; 1 = unicast, 2 = local, ...).
    pub kind: u8,
    /// Output interface index.
    pub oif: Option<u32>,
    /// Next-hop gateway.
    pub gateway: Option<IpAddr>,
    /// Metric.
    pub priority: Option<u32>,
}

/// An rtnetlink socket for a series of requests.
#[derive(Debug)]
pub struct Netlink {
    sock: NlSocket,
    seq: u32,
    buf: Vec<u8>,
}

fn family_of(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

fn bad_input(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

/// Checks `prefix_len` against the family and that no host bits are set in `dst`.
fn check_prefix(dst: IpAddr, prefix_len: u8) -> io::Result<()> {
    let (bits, value) = match dst {
        IpAddr::V4(a) => (32, u128::from(u32::from(a)) << 96),
        IpAddr::V6(a) => (128, u128::from(a)),
    };
    if prefix_len > bits {
        return Err(bad_input("prefix length too long for the address family"));
    }
    let host_mask = u128::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0);
    if value & host_mask != 0 {
        return Err(bad_input("destination has bits set past the prefix length"));
    }
    Ok(())
}

impl Netlink {
    /// Opens an rtnetlink socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        Ok(Self {
            sock: NlSocket::open()?,
            seq: 1,
            buf: vec![0; 64 * 1024],
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends a request built by `build` and waits for its acknowledgement.
    fn request(
        &mut self,
        ty: u16,
        flags: u16,
        build: impl FnOnce(&mut MsgBuilder),
    ) -> io::Result<()> {
        let seq = self.next_seq();
        let mut b = MsgBuilder::new(ty, NLM_F_REQUEST | NLM_F_ACK | flags, seq);
        build(&mut b);
        self.sock.send(&b.finish())?;
        loop {
            let n = self.sock.recv(&mut self.buf)?;
            for m in messages(self.buf.get(..n).unwrap_or(&[])) {
                let m = m?;
                if m.seq != seq {
                    continue; // a stale reply to an earlier, abandoned request
                }
                if m.ty == NLMSG_ERROR {
                    return parse_error(m.payload);
                }
            }
        }
    }

    /// Sets the MTU of interface `ifindex`.
    pub fn set_mtu(&mut self, ifindex: u32, mtu: u32) -> io::Result<()> {
        self.request(RTM_NEWLINK, 0, |b| {
            b.bytes(&ifinfomsg(ifindex, 0, 0)).attr_u32(IFLA_MTU, mtu);
        })
    }

    /// Sets interface `ifindex` administratively up.
    pub fn set_up(&mut self, ifindex: u32) -> io::Result<()> {
        let up = libc::IFF_UP as u32;
        self.request(RTM_NEWLINK, 0, |b| {
            b.bytes(&ifinfomsg(ifindex, up, up));
        })
    }

    /// Sets interface `ifindex` administratively down.
    pub fn set_down(&mut self, ifindex: u32) -> io::Result<()> {
        let up = libc::IFF_UP as u32;
        self.request(RTM_NEWLINK, 0, |b| {
            b.bytes(&ifinfomsg(ifindex, 0, up));
        })
    }

    /// Adds (or replaces) address `addr/prefix_len` on `ifindex`. IPv6 addresses get
    /// `IFA_F_NODAD`, so they are usable at once instead of after duplicate address detection.
    pub fn add_address(&mut self, ifindex: u32, addr: IpAddr, prefix_len: u8) -> io::Result<()> {
        self.address(
            RTM_NEWADDR,
            NLM_F_CREATE | NLM_F_REPLACE,
            ifindex,
            addr,
            prefix_len,
        )
    }

    /// Removes address `addr/prefix_len` from `ifindex`.
    pub fn del_address(&mut self, ifindex: u32, addr: IpAddr, prefix_len: u8) -> io::Result<()> {
        self.address(RTM_DELADDR, 0, ifindex, addr, prefix_len)
    }

    fn address(
        &mut self,
        ty: u16,
        flags: u16,
        ifindex: u32,
        addr: IpAddr,
        prefix_len: u8,
    ) -> io::Result<()> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix_len > max {
            return Err(bad_input("prefix length too long for the address family"));
        }
        let ifa_flags = if addr.is_ipv6() { IFA_F_NODAD } else { 0 };
        self.request(ty, flags, |b| {
            let mut hdr = [0u8; 8];
            hdr[0] = family_of(addr);
            hdr[1] = prefix_len;
            hdr[2] = ifa_flags as u8;
            hdr[3] = RT_SCOPE_UNIVERSE;
            hdr[4..8].copy_from_slice(&ifindex.to_ne_bytes());
            b.bytes(&hdr);
            if addr.is_ipv4() {
                b.attr_ip(IFA_LOCAL, addr);
            }
            b.attr_ip(IFA_ADDRESS, addr).attr_u32(IFA_FLAGS, ifa_flags);
        })
    }

    /// Adds or replaces (`NLM_F_CREATE | NLM_F_REPLACE`) a unicast route `dst/prefix_len` out of
    /// `ifindex` in `table` (0 means main) tagged with `protocol` (`rtm_protocol`, so routes
    /// installed by bridgehead can be told apart). IPv4 routes get link scope.
    pub fn add_route(
        &mut self,
        dst: IpAddr,
        prefix_len: u8,
        ifindex: u32,
        table: u32,
        protocol: u8,
    ) -> io::Result<()> {
        check_prefix(dst, prefix_len)?;
        let scope = if dst.is_ipv4() {
            RT_SCOPE_LINK
        } else {
            RT_SCOPE_UNIVERSE
        };
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, |b| {
            route_body(
                b,
                dst,
                prefix_len,
                ifindex,
                table,
                protocol,
                scope,
                RTN_UNICAST,
            );
        })
    }

    /// Deletes route `dst/prefix_len` out of `ifindex` in `table` (0 means main). A non-zero
    /// `protocol` only matches routes with that `rtm_protocol`. Fails with `ESRCH` if no route
    /// matched.
    pub fn del_route(
        &mut self,
        dst: IpAddr,
        prefix_len: u8,
        ifindex: u32,
        table: u32,
        protocol: u8,
    ) -> io::Result<()> {
        check_prefix(dst, prefix_len)?;
        self.request(RTM_DELROUTE, 0, |b| {
            route_body(
                b,
                dst,
                prefix_len,
                ifindex,
                table,
                protocol,
                RT_SCOPE_NOWHERE,
                0,
            );
        })
    }

    /// Dumps the routes of `family` (`libc::AF_INET`, `libc::AF_INET6`, or `libc::AF_UNSPEC`
    /// for both) in `table` (0: all tables).
    pub fn routes(&mut self, family: i32, table: u32) -> io::Result<Vec<RouteEntry>> {
        let mut out = Vec::new();
        self.dump_routes(family, |payload| {
            if let Some(r) = parse_route(payload) {
                if table == 0 || r.table == table {
                    out.push(r);
                }
            }
        })?;
        Ok(out)
    }

    /// Runs an `RTM_GETROUTE` dump of `family` and hands each `RTM_NEWROUTE` payload to `each`.
    fn dump_routes(&mut self, family: i32, mut each: impl FnMut(&[u8])) -> io::Result<()> {
        let seq = self.next_seq();
        let mut b = MsgBuilder::new(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq);
        let mut hdr = [0u8; 12];
        hdr[0] = u8::try_from(family).map_err(|_| bad_input("unknown address family"))?;
        b.bytes(&hdr);
        self.sock.send(&b.finish())?;
        loop {
            let n = self.sock.recv(&mut self.buf)?;
            for m in messages(self.buf.get(..n).unwrap_or(&[])) {
                let m = m?;
                if m.seq != seq {
                    continue;
                }
                match m.ty {
                    NLMSG_DONE => {
                        // A dump that failed part-way carries a negative errno here.
                        if let Some(code) = u32_at(m.payload, 0).map(|c| c as i32) {
                            if code < 0 {
                                return Err(io::Error::from_raw_os_error(code.saturating_neg()));
                            }
                        }
                        return Ok(());
                    }
                    NLMSG_ERROR => parse_error(m.payload)?,
                    NLMSG_NOOP => {}
                    RTM_NEWROUTE => each(m.payload),
                    _ => {}
                }
                if m.flags & NLM_F_MULTI == 0 && m.ty != RTM_NEWROUTE {
                    return Ok(());
                }
            }
        }
    }
}

fn ifinfomsg(ifindex: u32, flags: u32, change: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0] = libc::AF_UNSPEC as u8;
    h[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    h[8..12].copy_from_slice(&flags.to_ne_bytes());
    h[12..16].copy_from_slice(&change.to_ne_bytes());
    h
}

/// A unicast route out of one interface: the shared `rtmsg` header, `RTA_DST`, `RTA_TABLE`,
/// and `RTA_OIF`.
fn route_body(
    b: &mut MsgBuilder,
    dst: IpAddr,
    prefix_len: u8,
    ifindex: u32,
    table: u32,
    protocol: u8,
    scope: u8,
    kind: u8,
) {
    multipath::route_header(b, dst, prefix_len, table, protocol, scope, kind);
    b.attr_u32(RTA_OIF, ifindex);
}

fn parse_route(p: &[u8]) -> Option<RouteEntry> {
    let hdr = p.get(..12)?;
    let family = hdr[0];
    let mut r = RouteEntry {
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
        oif: None,
        gateway: None,
        priority: None,
    };
    for (ty, v) in attrs(p.get(12..)?) {
        match ty {
            RTA_DST => r.dst = ip_from(family, v)?,
            RTA_OIF => r.oif = u32_at(v, 0),
            RTA_GATEWAY => r.gateway = ip_from(family, v),
            RTA_PRIORITY => r.priority = u32_at(v, 0),
            RTA_TABLE => r.table = u32_at(v, 0).unwrap_or(r.table),
            _ => {}
        }
    }
    Some(r)
}

/// The index of interface `name` in the calling thread's network namespace (`ENODEV` if none).
pub fn ifindex(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| bad_input("interface name contains NUL"))?;
    let idx = if_nametoindex(&c);
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx)
    }
}

#[allow(unsafe_code)]
fn if_nametoindex(name: &std::ffi::CStr) -> u32 {
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    unsafe { libc::if_nametoindex(name.as_ptr()) }
}

/// Sets the MTU of `ifindex` (one-shot socket; see [`Netlink::set_mtu`]).
pub fn set_mtu(ifindex: u32, mtu: u32) -> io::Result<()> {
    Netlink::open()?.set_mtu(ifindex, mtu)
}

/// Sets `ifindex` up (one-shot socket; see [`Netlink::set_up`]).
pub fn set_up(ifindex: u32) -> io::Result<()> {
    Netlink::open()?.set_up(ifindex)
}

/// Adds an address (one-shot socket; see [`Netlink::add_address`]).
pub fn add_address(ifindex: u32, addr: IpAddr, prefix_len: u8) -> io::Result<()> {
    Netlink::open()?.add_address(ifindex, addr, prefix_len)
}

/// Adds or replaces a route (one-shot socket; see [`Netlink::add_route`]).
pub fn add_route(
    dst: IpAddr,
    prefix_len: u8,
    ifindex: u32,
    table: u32,
    protocol: u8,
) -> io::Result<()> {
    Netlink::open()?.add_route(dst, prefix_len, ifindex, table, protocol)
}

/// Deletes a route (one-shot socket; see [`Netlink::del_route`]).
pub fn del_route(
    dst: IpAddr,
    prefix_len: u8,
    ifindex: u32,
    table: u32,
    protocol: u8,
) -> io::Result<()> {
    Netlink::open()?.del_route(dst, prefix_len, ifindex, table, protocol)
}

/// Dumps routes (one-shot socket; see [`Netlink::routes`]).
pub fn routes(family: i32, table: u32) -> io::Result<Vec<RouteEntry>> {
    Netlink::open()?.routes(family, table)
}

fn sysctl_path(path: &str) -> io::Result<PathBuf> {
    let rel = path.strip_prefix("/proc/sys/").unwrap_or(path);
    let rel = Path::new(rel);
    if rel.as_os_str().is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(bad_input(
            "sysctl path must be a plain path below /proc/sys",
        ));
    }
    Ok(Path::new("/proc/sys").join(rel))
}

/// Writes `value` to a sysctl, given as a path below `/proc/sys` (`"net/ipv4/ip_forward"`,
/// `"/proc/sys/net/ipv4/conf/all/rp_filter"`). Paths with `..` are refused. Network sysctls
/// apply to the calling thread's network namespace.
pub fn set_sysctl(path: &str, value: &str) -> io::Result<()> {
    std::fs::write(sysctl_path(path)?, value.as_bytes())
}

/// Reads a sysctl (same paths as [`set_sysctl`]), without the trailing newline.
pub fn get_sysctl(path: &str) -> io::Result<String> {
    let mut s = std::fs::read_to_string(sysctl_path(path)?)?;
    s.truncate(s.trim_end().len());
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_checks() {
        assert!(check_prefix("10.0.0.0".parse().unwrap(), 8).is_ok());
        assert!(check_prefix("0.0.0.0".parse().unwrap(), 0).is_ok());
        assert!(check_prefix("10.0.0.1".parse().unwrap(), 32).is_ok());
        assert!(check_prefix("10.0.0.1".parse().unwrap(), 24).is_err());
        assert!(check_prefix("10.0.0.0".parse().unwrap(), 33).is_err());
        assert!(check_prefix("2001:db8::".parse().unwrap(), 32).is_ok());
        assert!(check_prefix("2001:db8::1".parse().unwrap(), 64).is_err());
        assert!(check_prefix("::".parse().unwrap(), 129).is_err());
    }

    #[test]
    fn sysctl_paths_stay_below_proc_sys() {
        assert_eq!(
            sysctl_path("net/ipv4/ip_forward").unwrap(),
            Path::new("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            sysctl_path("/proc/sys/net/ipv4/conf/all/rp_filter").unwrap(),
            Path::new("/proc/sys/net/ipv4/conf/all/rp_filter")
        );
        for bad in [
            "",
            "../etc/passwd",
            "net/../../etc",
            "/etc/passwd",
            "/proc/sys/",
        ] {
            assert!(sysctl_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn route_dump_entry_parses_and_short_input_is_rejected() {
        let mut b = MsgBuilder::new(RTM_NEWROUTE, 0, 1);
        route_body(
            &mut b,
            "10.9.0.0".parse().unwrap(),
            16,
            5,
            1000,
            99,
            RT_SCOPE_LINK,
            1,
        );
        let m = b.finish();
        let r = parse_route(&m[16..]).unwrap();
        assert_eq!(r.dst, "10.9.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(
            (r.prefix_len, r.table, r.protocol, r.oif),
            (16, 1000, 99, Some(5))
        );
        assert_eq!(parse_route(&m[16..20]), None);
    }
}
