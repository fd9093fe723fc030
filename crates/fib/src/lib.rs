//! FIB sync for bridgehead: a pure reconcile of the routes the BGP speaker wants in the kernel
//! against the routes the kernel reports, producing the add/replace/delete operations that make
//! the kernel match.
//!
//! What it does:
//! - [`reconcile`] compares a desired set of routes (prefix → ECMP next hops, usually over the
//!   tunnel devices) with the routes observed in one routing table, and returns [`Op`]s: a
//!   [`Op::Replace`] for each prefix that is missing or whose next hops differ, a [`Op::Delete`]
//!   for each of our routes that is no longer wanted (withdrawn, session lost, or left behind by
//!   an earlier run), and a [`Op::Conflict`] report where a route of another protocol already
//!   holds the same prefix and metric.
//! - Only routes carrying our `protocol` (`rtm_protocol`), in our table, at our metric are ever
//!   replaced or deleted. A route of another protocol is never touched: a desired prefix that
//!   collides with one is reported, not installed, because `NLM_F_REPLACE` would overwrite it.
//! - It is idempotent: applying the ops to the observed state and reconciling again yields no
//!   ops (checked by a property test against a model of the kernel table).
//!
//! What it does NOT do: no I/O. It does not talk to rtnetlink (the shell applies the ops with
//! `bh_sys::link`), does not watch links, does not choose best paths (that is the BGP decision
//! process), and does not order ops beyond "deletes first, then replaces" per call.

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

/// Errors building the values this crate works on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FibError {
    /// The prefix length is longer than the address family allows.
    #[error("prefix length {len} is too long for {addr}")]
    PrefixTooLong {
        /// The address given.
        addr: IpAddr,
        /// The length given.
        len: u8,
    },
    /// The address has bits set past the prefix length.
    #[error("{addr}/{len} has host bits set")]
    HostBits {
        /// The address given.
        addr: IpAddr,
        /// The length given.
        len: u8,
    },
}

/// An IP prefix with no host bits set (an IPv4 or IPv6 destination of a route).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// A prefix; fails if `len` is too long for the family or `addr` has host bits set.
    ///
    /// # Errors
    ///
    /// [`FibError::PrefixTooLong`] or [`FibError::HostBits`].
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, FibError> {
        let (bits, value) = match addr {
            IpAddr::V4(a) => (32u8, u128::from(u32::from(a)) << 96),
            IpAddr::V6(a) => (128u8, u128::from(a)),
        };
        if len > bits {
            return Err(FibError::PrefixTooLong { addr, len });
        }
        let host = u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
        if value & host != 0 {
            return Err(FibError::HostBits { addr, len });
        }
        Ok(Self { addr, len })
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether this is an IPv4 prefix.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// One next hop of a route: an output device and, optionally, a gateway on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NextHop {
    /// Output interface index (a tunnel's TUN device).
    pub ifindex: u32,
    /// Gateway address, `None` for a device route (point-to-point tunnels need none).
    pub gateway: Option<IpAddr>,
}

/// The next hops of one route; more than one makes it an ECMP (multipath) route.
pub type NextHops = BTreeSet<NextHop>;

/// The routes wanted in the kernel: prefix → next hops (an empty set means "not wanted").
pub type Desired = BTreeMap<Prefix, NextHops>;

/// A route as observed in the kernel (one dump entry; IPv6 dumps may split a multipath route
/// into one entry per next hop, which [`reconcile`] merges).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Destination.
    pub prefix: Prefix,
    /// Routing table id.
    pub table: u32,
    /// `rtm_protocol`.
    pub protocol: u8,
    /// Metric (`RTA_PRIORITY`; 0 when absent).
    pub metric: u32,
    /// Next hops (one for a single-path route).
    pub nexthops: Vec<NextHop>,
}

/// Where and how our routes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    /// The routing table our routes go into.
    pub table: u32,
    /// Our `rtm_protocol` (bridgehead uses 248).
    pub protocol: u8,
    /// The metric our routes carry.
    pub metric: u32,
}

/// One operation on the kernel's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Add the route, or replace ours in place (`NLM_F_CREATE | NLM_F_REPLACE`), with exactly
    /// these next hops (multipath when more than one).
    Replace {
        /// Destination.
        prefix: Prefix,
        /// Next hops, at least one.
        nexthops: NextHops,
    },
    /// Delete our route for the prefix (matched on table, protocol and metric).
    Delete {
        /// Destination.
        prefix: Prefix,
    },
    /// A desired prefix is held by a route of another protocol at our metric in our table; it
    /// is left alone and this is reported instead.
    Conflict {
        /// Destination.
        prefix: Prefix,
        /// The other route's protocol.
        protocol: u8,
    },
}

/// Computes the ops that make the routes of `scope` in `observed` equal to `desired`.
///
/// Entries of `observed` outside `scope.table` are ignored. Entries in the table with another
/// metric are ignored. Entries with our metric but another protocol are never touched; a desired
/// prefix they hold yields [`Op::Conflict`]. Desired prefixes with no next hops count as not
/// wanted. Deletes come before replaces, each in prefix order.
pub fn reconcile(desired: &Desired, observed: &[Observed], scope: Scope) -> Vec<Op> {
    let mut ours: BTreeMap<Prefix, NextHops> = BTreeMap::new();
    let mut foreign: BTreeMap<Prefix, u8> = BTreeMap::new();
    for o in observed {
        if o.table != scope.table || o.metric != scope.metric {
            continue;
        }
        if o.protocol == scope.protocol {
            ours.entry(o.prefix)
                .or_default()
                .extend(o.nexthops.iter().copied());
        } else {
            foreign.entry(o.prefix).or_insert(o.protocol);
        }
    }
    let mut deletes = Vec::new();
    let mut replaces = Vec::new();
    for prefix in ours.keys() {
        if desired.get(prefix).is_none_or(BTreeSet::is_empty) {
            deletes.push(Op::Delete { prefix: *prefix });
        }
    }
    for (prefix, hops) in desired {
        if hops.is_empty() {
            continue;
        }
        match ours.get(prefix) {
            Some(have) if have == hops => {}
            Some(_) => replaces.push(Op::Replace {
                prefix: *prefix,
                nexthops: hops.clone(),
            }),
            None => match foreign.get(prefix) {
                Some(&protocol) => replaces.push(Op::Conflict {
                    prefix: *prefix,
                    protocol,
                }),
                None => replaces.push(Op::Replace {
                    prefix: *prefix,
                    nexthops: hops.clone(),
                }),
            },
        }
    }
    deletes.extend(replaces);
    deletes
}

/// Removes next hops through `ifindex` from every desired route (a tunnel device went down);
/// routes left with no next hop are dropped. Returns how many prefixes changed.
pub fn without_device(desired: &mut Desired, ifindex: u32) -> usize {
    let mut changed = 0usize;
    desired.retain(|_, hops| {
        let before = hops.len();
        hops.retain(|h| h.ifindex != ifindex);
        if hops.len() != before {
            changed = changed.saturating_add(1);
        }
        !hops.is_empty()
    });
    changed
}

#[cfg(test)]
mod tests;
