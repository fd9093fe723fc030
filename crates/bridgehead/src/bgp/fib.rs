//! Kernel route sync for the BGP service, two ways:
//! - [`FibSync::sync`], the full reconcile: dumps our table through `bh_sys::link`, asks
//!   [`bh_fib::reconcile`] what to change, and applies the ops. At start-up, after a device
//!   changed state, after an error, and now and then while conflicts are pending.
//! - [`FibSync::apply`], the incremental one: only the prefixes whose best routes changed, with
//!   no dump, against the set of prefixes it installed. A prefix new to us is added with
//!   `NLM_F_EXCL`, so a route someone else holds is never overwritten; the unexpected `EEXIST`
//!   asks for a full reconcile, which sorts ours from theirs.
//!
//! Only routes with [`crate::daemon::RTPROT_BRIDGEHEAD`], in the configured table, at the
//! configured metric are ever replaced or deleted; a prefix held by another protocol's route at
//! that metric is reported as a conflict and left alone.

use std::collections::BTreeSet;
use std::net::IpAddr;

use anyhow::{Context, Result};
use bh_fib::{Desired, NextHop, Observed, Op, Prefix, Scope};
use bh_sys::link::{self, Netlink};

/// Counters of what the sync did, for status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FibCounters {
    /// Routes added or replaced.
    pub replaced: u64,
    /// Routes deleted.
    pub deleted: u64,
    /// Desired prefixes held by another protocol (last sync).
    pub conflicts: u64,
    /// Kernel requests that failed.
    pub errors: u64,
}

/// Our routes in one table, kept equal to a desired set.
#[derive(Debug)]
pub struct FibSync {
    nl: Netlink,
    scope: Scope,
    counters: FibCounters,
    /// Prefixes we installed (as of the last sync or change).
    installed: BTreeSet<Prefix>,
    /// Desired prefixes held by another protocol's route (as of the last full sync).
    conflicts: BTreeSet<Prefix>,
    warned: BTreeSet<Prefix>,
}

impl FibSync {
    /// Opens rtnetlink in the calling thread's namespace.
    pub fn open(scope: Scope) -> Result<Self> {
        Ok(Self {
            nl: Netlink::open().context("opening rtnetlink for the FIB")?,
            scope,
            counters: FibCounters::default(),
            installed: BTreeSet::new(),
            conflicts: BTreeSet::new(),
            warned: BTreeSet::new(),
        })
    }

    /// The table, protocol and metric managed.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// Counters so far.
    pub fn counters(&self) -> FibCounters {
        self.counters
    }

    /// Whether `prefix` is installed (as of the last sync).
    pub fn is_installed(&self, prefix: &Prefix) -> bool {
        self.installed.contains(prefix)
    }

    /// Whether desired prefixes are held by other protocols' routes (a full sync notices when
    /// they go).
    pub fn has_conflicts(&self) -> bool {
        !self.conflicts.is_empty()
    }

    /// Applies `changes` (prefix → next hops; no next hops: not wanted any more) without a
    /// dump. Returns whether a full [`FibSync::sync`] is needed: a kernel request failed, or a
    /// prefix we never installed is already held (by a route of ours left from an error, or by
    /// another protocol's).
    pub fn apply(&mut self, changes: &Desired) -> bool {
        let Scope {
            table,
            protocol,
            metric,
        } = self.scope;
        let mut full = false;
        for (prefix, nexthops) in changes {
            let (dst, len) = (prefix.addr(), prefix.prefix_len());
            if nexthops.is_empty() {
                self.conflicts.remove(prefix);
                if !self.installed.remove(prefix) {
                    continue;
                }
                match self.nl.delete_route(dst, len, table, protocol, metric) {
                    Ok(()) => {
                        self.counters.deleted = self.counters.deleted.saturating_add(1);
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                    Err(e) => {
                        self.counters.errors = self.counters.errors.saturating_add(1);
                        tracing::warn!(%prefix, error = %e, "cannot remove route");
                        full = true;
                    }
                }
                continue;
            }
            if self.conflicts.contains(prefix) {
                continue;
            }
            let hops: Vec<link::NextHop> = nexthops
                .iter()
                .map(|h| link::NextHop {
                    ifindex: h.ifindex,
                    gateway: h.gateway,
                })
                .collect();
            let ours = self.installed.contains(prefix);
            let r = if ours {
                self.nl
                    .replace_route(dst, len, &hops, table, protocol, metric)
            } else {
                self.nl
                    .add_route_exclusive(dst, len, &hops, table, protocol, metric)
            };
            match r {
                Ok(()) => {
                    self.counters.replaced = self.counters.replaced.saturating_add(1);
                    self.installed.insert(*prefix);
                }
                Err(e) if !ours && e.raw_os_error() == Some(libc::EEXIST) => full = true,
                Err(e) => {
                    self.counters.errors = self.counters.errors.saturating_add(1);
                    tracing::warn!(%prefix, error = %e, "cannot install route");
                    full = true;
                }
            }
        }
        full
    }

    fn observe(&mut self) -> Result<Vec<Observed>> {
        let routes = self
            .nl
            .routes_with_nexthops(libc::AF_UNSPEC, self.scope.table)
            .context("dumping routes")?;
        Ok(routes
            .into_iter()
            .filter_map(|r| {
                let prefix = Prefix::new(r.dst, r.prefix_len).ok()?;
                // Dead next hops are still part of the kernel's route.
                let nexthops = r
                    .nexthops
                    .iter()
                    .chain(&r.dead)
                    .map(|h| NextHop {
                        ifindex: h.ifindex,
                        gateway: h.gateway,
                    })
                    .collect();
                Some(Observed {
                    prefix,
                    table: r.table,
                    protocol: r.protocol,
                    metric: r.metric,
                    nexthops,
                })
            })
            .collect())
    }

    /// Makes our routes equal to `desired` (one dump, then the ops). Errors of single routes
    /// are counted and logged, not returned; a failed dump is returned.
    pub fn sync(&mut self, desired: &Desired) -> Result<()> {
        let observed = self.observe()?;
        let ops = bh_fib::reconcile(desired, &observed, self.scope);
        let Scope {
            table,
            protocol,
            metric,
        } = self.scope;
        let mut conflicts = 0u64;
        for op in ops {
            match op {
                Op::Replace { prefix, nexthops } => {
                    let hops: Vec<link::NextHop> = nexthops
                        .iter()
                        .map(|h| link::NextHop {
                            ifindex: h.ifindex,
                            gateway: h.gateway,
                        })
                        .collect();
                    match self.nl.replace_route(
                        prefix.addr(),
                        prefix.prefix_len(),
                        &hops,
                        table,
                        protocol,
                        metric,
                    ) {
                        Ok(()) => {
                            self.counters.replaced = self.counters.replaced.saturating_add(1);
                            tracing::debug!(%prefix, hops = hops.len(), "route installed");
                        }
                        Err(e) => {
                            self.counters.errors = self.counters.errors.saturating_add(1);
                            tracing::warn!(%prefix, error = %e, "cannot install route");
                        }
                    }
                }
                Op::Delete { prefix } => {
                    match self.nl.delete_route(
                        prefix.addr(),
                        prefix.prefix_len(),
                        table,
                        protocol,
                        metric,
                    ) {
                        Ok(()) => {
                            self.counters.deleted = self.counters.deleted.saturating_add(1);
                            tracing::debug!(%prefix, "route removed");
                        }
                        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                        Err(e) => {
                            self.counters.errors = self.counters.errors.saturating_add(1);
                            tracing::warn!(%prefix, error = %e, "cannot remove route");
                        }
                    }
                }
                Op::Conflict { prefix, protocol } => {
                    conflicts = conflicts.saturating_add(1);
                    if self.warned.insert(prefix) {
                        tracing::warn!(%prefix, other_protocol = protocol, "a route of another protocol holds this prefix at our metric; not installed");
                    }
                }
            }
        }
        self.counters.conflicts = conflicts;
        self.conflicts.clear();
        self.installed = desired
            .iter()
            .filter(|(_, h)| !h.is_empty())
            .map(|(p, _)| *p)
            .collect();
        if conflicts > 0 {
            let held: BTreeSet<Prefix> = observed
                .iter()
                .filter(|o| o.table == table && o.metric == metric && o.protocol != protocol)
                .map(|o| o.prefix)
                .collect();
            self.installed.retain(|p| !held.contains(p));
            self.conflicts = desired
                .keys()
                .filter(|p| held.contains(p))
                .copied()
                .collect();
        }
        Ok(())
    }

    /// The interface whose connected route holds `addr` (longest match in table main), for a
    /// next hop that is not reached through a configured tunnel.
    pub fn connected_ifindex(&mut self, addr: IpAddr) -> Option<u32> {
        let family = if addr.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        let routes = self
            .nl
            .routes_with_nexthops(family, link::TABLE_MAIN)
            .ok()?;
        routes
            .iter()
            .filter(|r| r.nexthops.len() == 1 && r.nexthops[0].gateway.is_none())
            .filter(|r| r.prefix_len > 0 && contains(r.dst, r.prefix_len, addr))
            .max_by_key(|r| r.prefix_len)
            .map(|r| r.nexthops[0].ifindex)
    }
}

/// Whether `dst/len` holds `addr`.
fn contains(dst: IpAddr, len: u8, addr: IpAddr) -> bool {
    let (a, b, bits) = match (dst, addr) {
        (IpAddr::V4(d), IpAddr::V4(x)) => (
            u128::from(u32::from(d)) << 96,
            u128::from(u32::from(x)) << 96,
            32u8,
        ),
        (IpAddr::V6(d), IpAddr::V6(x)) => (u128::from(d), u128::from(x), 128u8),
        _ => return false,
    };
    if len > bits {
        return false;
    }
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    a & mask == b & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containment() {
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(contains(a("10.0.0.0"), 8, a("10.200.1.1")));
        assert!(!contains(a("10.0.0.0"), 8, a("11.0.0.1")));
        assert!(contains(a("fd00:60:1::"), 64, a("fd00:60:1::2")));
        assert!(!contains(a("fd00:60:1::"), 64, a("10.0.0.1")));
        assert!(contains(a("0.0.0.0"), 0, a("1.2.3.4")));
    }
}
