//! `[bgp]` and `[[bgp.neighbor]]`: the BGP speaker's settings, their model and their checks.
//!
//! The model types ([`Bgp`], [`BgpNeighbor`], [`PrefixRule`]) are re-exported at the crate root.
//! The checks follow the rest of the validator: every problem is reported with its file, line,
//! column and TOML path, and checking goes on after the first one.
//!
//! A neighbor's TCP MD5 password (RFC 2385) comes from `md5_password_file` (mode 0600 or
//! stricter, owned by us or root, one trailing newline cut) or an inline `md5_password`, which
//! makes the configuration file itself a secret file that must be 0600; 1 to 80 bytes (the
//! kernel's limit), held in a wiped buffer and never shown by `Debug` or an error.
//!
//! Not checked here: whether a neighbor without `multihop` is really on its tunnel's link (that
//! needs the routing table), and anything the peer has to agree with (hold time, AS).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;

use zeroize::Zeroizing;

use super::{
    Checker, InlineKeys, Src, Tbl, TunnelInfo, file_keys, host_bits, parse_prefix, span_or,
    truncate, unusable,
};
use crate::cloud::Cloud;
use crate::error::ErrorKind;
use crate::model::Prefix;
use crate::tree::{Node, Value};

/// Keys accepted in `[bgp]`.
pub(crate) const BGP_KEYS: &[&str] = &[
    "asn",
    "router_id",
    "advertise",
    "table",
    "metric",
    "multipath",
    "transit",
    "neighbor",
];
/// Keys accepted in `[[bgp.neighbor]]`.
pub(crate) const NEIGHBOR_KEYS: &[&str] = &[
    "address",
    "cloud",
    "asn",
    "tunnel",
    "hold_time",
    "passive",
    "multihop",
    "prepend",
    "med",
    "import",
    "export",
    "max_prefix",
    "max_prefix_action",
    "max_advertise",
    "md5_password",
    "md5_password_file",
];
const MAX_PREFIX_ACTIONS: &[&str] = &["teardown", "warn"];

/// Default `table`: the main routing table.
pub const DEFAULT_BGP_TABLE: u32 = 254;
/// Default `metric` of the routes BGP installs (IPv6 treats 0 as 1024, so it is never 0).
pub const DEFAULT_BGP_METRIC: u32 = 20;
/// Default `multipath`: most ECMP next hops per prefix.
pub const DEFAULT_MULTIPATH: usize = 4;
/// Longest TCP MD5 password the kernel takes (`TCP_MD5SIG_MAXKEYLEN`; RFC 2385 sets no limit).
pub(crate) const MAX_MD5_PASSWORD_LEN: usize = 80;
/// Default `hold_time` offered, seconds (RFC 4271 §10 suggests 90; the smaller side wins).
pub const DEFAULT_HOLD_TIME: u16 = 90;

/// `[bgp]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bgp {
    /// Our AS (`asn`, 1..=4294967295; 4-octet, RFC 6793).
    pub asn: u32,
    /// BGP identifier (`router_id`, IPv4); `None`: the daemon picks one of its IPv4 addresses.
    pub router_id: Option<Ipv4Addr>,
    /// Networks originated to every neighbor (`advertise`).
    pub advertise: Vec<Prefix>,
    /// Routing table learned routes go into (`table`, default 254 = main).
    pub table: u32,
    /// Metric of the installed routes (`metric`, default 20).
    pub metric: u32,
    /// Most ECMP next hops per prefix (`multipath`, 1..=64, default 4; 1 turns ECMP off).
    pub multipath: usize,
    /// Re-advertise the best route learned from one neighbor to the others (`transit`, default
    /// false): the appliance becomes the transit between the clouds. Without it only
    /// `advertise` is sent. AS-path loop detection (RFC 4271 §9.1.2) keeps a cloud from getting
    /// its own routes back.
    pub transit: bool,
    /// `[[bgp.neighbor]]`, in file order.
    pub neighbors: Vec<BgpNeighbor>,
}

/// What to do when a neighbor sends more than `max_prefix` prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxPrefixAction {
    /// Send a Cease NOTIFICATION and drop the session (`"teardown"`, the default).
    Teardown,
    /// Log it and ignore the prefixes past the limit (`"warn"`).
    Warn,
}

/// A TCP MD5 signature password (RFC 2385), held in a wiped buffer; `Debug` never shows it,
/// and equality is decided in constant time.
#[derive(Clone)]
pub struct Md5Password(Zeroizing<Vec<u8>>);

impl PartialEq for Md5Password {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq as _;
        bool::from(self.0.as_slice().ct_eq(other.0.as_slice()))
    }
}

impl Eq for Md5Password {}

impl Md5Password {
    /// The password's bytes (1 to 80 of them), for `setsockopt(TCP_MD5SIG)` only.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Md5Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Md5Password(<redacted>)")
    }
}

/// One `[[bgp.neighbor]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpNeighbor {
    /// The peer's address (`address`), usually the far end of a tunnel's inside prefix.
    pub address: IpAddr,
    /// The peer's AS (`asn`).
    pub asn: u32,
    /// The tunnel the session runs over (`tunnel`, a `[[tunnel]]` name); learned routes go out
    /// of its device.
    pub tunnel: Option<String>,
    /// `cloud`, set here or inherited from the tunnel: whose preset filled the keys not set.
    pub cloud: Option<Cloud>,
    /// The keys whose value came from the `cloud` preset (`"hold_time"`, `"passive"`,
    /// `"max_advertise"`); empty without `cloud`.
    pub from_preset: Vec<&'static str>,
    /// The keys the file sets, with their lines (for [`BgpNeighbor::origin`]).
    pub set_in_file: crate::origin::FileKeys,
    /// Hold time offered (`hold_time`, 0 or 3..=65535 seconds, default 90 or the cloud's).
    pub hold_time: u16,
    /// Only wait for the peer to connect (`passive`, default false or the cloud's).
    pub passive: bool,
    /// TTL for a peer more than one hop away (`multihop`, 1..=255); `None`: directly connected.
    pub multihop: Option<u8>,
    /// Extra copies of our AS prepended on export (`prepend`, 0..=10).
    pub prepend: u8,
    /// MED sent to this neighbor (`med`).
    pub med: Option<u32>,
    /// Inbound prefix list (`import`); `None` accepts everything.
    pub import: Option<Vec<PrefixRule>>,
    /// Outbound prefix list (`export`); `None` sends everything export policy allows.
    pub export: Option<Vec<PrefixRule>>,
    /// Most prefixes accepted from the neighbor (`max_prefix`).
    pub max_prefix: Option<u32>,
    /// `max_prefix_action = "teardown" | "warn"`.
    pub max_prefix_action: MaxPrefixAction,
    /// Most prefixes advertised to the neighbor (`max_advertise`; AWS accepts 100, Azure 4000).
    pub max_advertise: Option<u32>,
    /// TCP MD5 signature password (RFC 2385), from `md5_password_file` (mode 0600) or an inline
    /// `md5_password` (then the configuration file itself must be 0600).
    pub md5_password: Option<Md5Password>,
}

/// One prefix-list entry: `"[deny ]PREFIX[ le N]"`. It matches `prefix` and, with `le N`, every
/// prefix inside it up to length N. The first matching entry decides; no match denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixRule {
    /// The covering prefix.
    pub prefix: Prefix,
    /// Longest length matched (`prefix.len` for an exact match).
    pub max_len: u8,
    /// Permit (true) or deny (`deny ...`, false).
    pub permit: bool,
}

/// Parses `"[deny ]PREFIX[ le N]"` into (permit, prefix text, le).
fn split_rule(s: &str) -> Option<(bool, &str, Option<u32>)> {
    let mut words = s.split_whitespace();
    let mut first = words.next()?;
    let permit = if first == "deny" {
        first = words.next()?;
        false
    } else {
        if first == "permit" {
            first = words.next()?;
        }
        true
    };
    let le = match (words.next(), words.next()) {
        (None, _) => None,
        (Some("le"), Some(n)) if n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()) => {
            Some(n.parse().ok()?)
        }
        _ => return None,
    };
    if words.next().is_some() {
        return None;
    }
    Some((permit, first, le))
}

impl Checker<'_> {
    /// `[bgp]`; `tunnels` are the `[[tunnel]]`s, for the neighbors' `tunnel` and `cloud`.
    pub(super) fn bgp(
        &mut self,
        src: Src<'_>,
        node: &Node,
        fallback: Option<&Range<usize>>,
        tunnels: &[TunnelInfo],
        inline: &mut Option<InlineKeys>,
    ) -> Option<Bgp> {
        let t = self.table(src, node, "bgp".into(), fallback)?;
        self.check_keys(src, &t, BGP_KEYS);
        let mut ok = true;
        let asn = self.int(src, &t, "asn", 1, i64::from(u32::MAX));
        if matches!(asn, Ok(None)) {
            self.missing(src, &t, "asn");
            ok = false;
        }
        let router_id = match self.addr(src, &t, "router_id") {
            Ok(Some((IpAddr::V4(a), span))) => {
                if a.is_unspecified() || a.is_multicast() || a.is_broadcast() {
                    self.push(
                        src,
                        span.as_ref(),
                        &t.child("router_id"),
                        ErrorKind::UnusableAddress {
                            addr: a.into(),
                            what: "not a unicast IPv4 address (a BGP identifier must be one)",
                        },
                    );
                    ok = false;
                }
                Some(a)
            }
            Ok(Some((a, span))) => {
                self.push(
                    src,
                    span.as_ref(),
                    &t.child("router_id"),
                    ErrorKind::UnusableAddress {
                        addr: a,
                        what: "IPv6 (a BGP identifier is an IPv4 address, RFC 4271 §4.2)",
                    },
                );
                ok = false;
                None
            }
            Ok(None) => None,
            Err(()) => {
                ok = false;
                None
            }
        };
        let advertise = self.prefix_rules(src, &t, "advertise", false);
        let table = self.int(src, &t, "table", 1, i64::from(u32::MAX));
        let metric = self.int(src, &t, "metric", 1, i64::from(u32::MAX));
        let multipath = self.int(src, &t, "multipath", 1, 64);
        let transit = self.bool(src, &t, "transit");

        let mut neighbors = Some(Vec::new());
        // The clouds of the neighbors, also of those with errors, for the check of `asn`.
        let mut neighbor_clouds: Vec<Cloud> = Vec::new();
        if let Some(node) = t.get("neighbor") {
            match &node.value {
                Value::Array(items) => {
                    let mut seen: BTreeMap<IpAddr, usize> = BTreeMap::new();
                    let clouds = &mut neighbor_clouds;
                    for (i, item) in items.iter().enumerate() {
                        let path = format!("bgp.neighbor[{i}]");
                        let n = self.neighbor(
                            src,
                            item,
                            path,
                            node.span.as_ref(),
                            (tunnels, clouds),
                            inline,
                        );
                        if let Some((n, span)) = &n {
                            let line = src.line(span.as_ref());
                            if let Some(&first_line) = seen.get(&n.address) {
                                let len = if n.address.is_ipv4() { 32 } else { 128 };
                                self.push(
                                    src,
                                    span.as_ref(),
                                    &format!("bgp.neighbor[{i}].address"),
                                    ErrorKind::DuplicatePrefix {
                                        value: Prefix {
                                            addr: n.address,
                                            len,
                                        },
                                        first_line,
                                    },
                                );
                                ok = false;
                            } else {
                                seen.insert(n.address, line);
                            }
                        }
                        match (n, neighbors.as_mut()) {
                            (Some((n, _)), Some(list)) => list.push(n),
                            _ => neighbors = None,
                        }
                    }
                }
                other => {
                    self.push(
                        src,
                        node.span.as_ref(),
                        "bgp.neighbor",
                        ErrorKind::WrongType {
                            expected: "an array of tables ([[bgp.neighbor]])",
                            found: other.type_name(),
                        },
                    );
                    neighbors = None;
                }
            }
        }
        // Our AS against every cloud one of the neighbors is on (Azure reserves some).
        if let Ok(Some(asn)) = asn {
            let asn32 = u32::try_from(asn).unwrap_or(0);
            let mut clouds = neighbor_clouds;
            clouds.sort_by_key(|c| c.word());
            clouds.dedup();
            let span = t.get("asn").and_then(|n| span_or(n, t.span.as_ref()));
            for c in clouds {
                if let Err(problem) = c.check_local_asn(asn32) {
                    self.push(
                        src,
                        span.as_ref(),
                        &t.child("asn"),
                        ErrorKind::Cloud { cloud: c, problem },
                    );
                    ok = false;
                    break;
                }
            }
        }
        let advertise = advertise?.into_iter().map(|r| r.prefix).collect::<Vec<_>>();
        let bgp = Bgp {
            asn: u32::try_from(asn.ok()??).ok()?,
            router_id,
            advertise,
            table: u32::try_from(table.ok()?.unwrap_or(i64::from(DEFAULT_BGP_TABLE))).ok()?,
            metric: u32::try_from(metric.ok()?.unwrap_or(i64::from(DEFAULT_BGP_METRIC))).ok()?,
            multipath: usize::try_from(multipath.ok()?.unwrap_or(4)).ok()?,
            transit: transit.ok()?.unwrap_or(false),
            neighbors: neighbors?,
        };
        ok.then_some(bgp)
    }

    fn neighbor(
        &mut self,
        src: Src<'_>,
        node: &Node,
        path: String,
        fallback: Option<&Range<usize>>,
        (tunnels, clouds): (&[TunnelInfo], &mut Vec<Cloud>),
        inline: &mut Option<InlineKeys>,
    ) -> Option<(BgpNeighbor, Option<Range<usize>>)> {
        let t = self.table(src, node, path, fallback)?;
        self.check_keys(src, &t, NEIGHBOR_KEYS);
        let mut ok = true;
        let address = match self.addr(src, &t, "address") {
            Ok(Some((a, span))) => {
                if let Some(what) =
                    unusable(a, false).or_else(|| a.is_loopback().then_some("loopback"))
                {
                    self.push(
                        src,
                        span.as_ref(),
                        &t.child("address"),
                        ErrorKind::UnusableAddress { addr: a, what },
                    );
                    ok = false;
                }
                Some((a, span))
            }
            Ok(None) => {
                self.missing(src, &t, "address");
                None
            }
            Err(()) => None,
        };
        let asn = self.int(src, &t, "asn", 1, i64::from(u32::MAX));
        if matches!(asn, Ok(None)) {
            self.missing(src, &t, "asn");
            ok = false;
        }
        let mut tunnel_info = None;
        let tunnel = match self.str(src, &t, "tunnel") {
            Ok(Some((node, name))) => {
                tunnel_info = tunnels.iter().find(|i| i.name == name);
                if tunnel_info.is_none() {
                    let span = span_or(node, t.span.as_ref());
                    self.push(
                        src,
                        span.as_ref(),
                        &t.child("tunnel"),
                        ErrorKind::BadName {
                            value: truncate(name),
                            reason: "no [[tunnel]] has this name",
                        },
                    );
                    ok = false;
                }
                Some(name.to_owned())
            }
            Ok(None) => None,
            Err(()) => {
                ok = false;
                None
            }
        };
        // `cloud` here, else the tunnel's.
        let cloud = match self.cloud(src, &t) {
            Ok(c) => c.or_else(|| tunnel_info.and_then(|i| i.cloud)),
            Err(()) => {
                ok = false;
                None
            }
        };
        clouds.extend(cloud);
        let preset = cloud.map(Cloud::preset);
        if let (Some(c), Some((a, span))) = (cloud, &address) {
            let inside = tunnel_info.map_or(&[][..], |i| &i.inside[..]);
            if let Err(problem) = c.check_neighbor_address(inside, *a) {
                self.push(
                    src,
                    span.as_ref(),
                    &t.child("address"),
                    ErrorKind::Cloud { cloud: c, problem },
                );
                ok = false;
            }
        }
        let hold_time = match self.int(src, &t, "hold_time", 0, 65535) {
            Ok(Some(v @ 1..=2)) => {
                let span = t.get("hold_time").and_then(|n| span_or(n, t.span.as_ref()));
                self.push(
                    src,
                    span.as_ref(),
                    &t.child("hold_time"),
                    ErrorKind::OutOfRange {
                        value: v,
                        min: 3,
                        max: 65535,
                    },
                );
                Err(())
            }
            other => other,
        };
        let passive = self.bool(src, &t, "passive");
        let multihop = self.int(src, &t, "multihop", 1, 255);
        let prepend = self.int(src, &t, "prepend", 0, 10);
        let med = self.int(src, &t, "med", 0, i64::from(u32::MAX));
        let import = match t.get("import") {
            Some(_) => self.prefix_rules(src, &t, "import", true).map(Some),
            None => Some(None),
        };
        let export = match t.get("export") {
            Some(_) => self.prefix_rules(src, &t, "export", true).map(Some),
            None => Some(None),
        };
        let max_prefix = self.int(src, &t, "max_prefix", 1, i64::from(u32::MAX));
        let max_advertise = self.int(src, &t, "max_advertise", 1, i64::from(u32::MAX));
        let action = match self.str(src, &t, "max_prefix_action") {
            Ok(Some((_, "teardown"))) | Ok(None) => Some(MaxPrefixAction::Teardown),
            Ok(Some((_, "warn"))) => Some(MaxPrefixAction::Warn),
            Ok(Some((node, other))) => {
                let span = span_or(node, t.span.as_ref());
                self.push(
                    src,
                    span.as_ref(),
                    &t.child("max_prefix_action"),
                    ErrorKind::UnknownWord {
                        value: truncate(other),
                        expected: MAX_PREFIX_ACTIONS,
                    },
                );
                None
            }
            Err(()) => None,
        };
        let md5_password = self.md5_password(src, &t, inline);
        let u32_of = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
        let (address, span) = address?;
        let n = BgpNeighbor {
            address,
            asn: u32_of(asn.ok()?)?,
            tunnel,
            cloud,
            from_preset: if cloud.is_some() {
                crate::cloud::NEIGHBOR_PRESET_KEYS
                    .iter()
                    .copied()
                    .filter(|k| t.get(k).is_none())
                    .collect()
            } else {
                Vec::new()
            },
            set_in_file: file_keys(src, &t, &[]),
            hold_time: u16::try_from(
                hold_time
                    .ok()?
                    .unwrap_or(i64::from(preset.map_or(DEFAULT_HOLD_TIME, |p| p.hold_time))),
            )
            .ok()?,
            passive: passive.ok()?.unwrap_or(preset.is_some_and(|p| p.passive)),
            multihop: multihop.ok()?.and_then(|v| u8::try_from(v).ok()),
            prepend: u8::try_from(prepend.ok()?.unwrap_or(0)).ok()?,
            med: u32_of(med.ok()?),
            import: import?,
            export: export?,
            max_prefix: u32_of(max_prefix.ok()?),
            max_prefix_action: action?,
            max_advertise: u32_of(max_advertise.ok()?).or(preset.and_then(|p| p.max_advertise)),
            md5_password: md5_password?,
        };
        ok.then_some((n, span.or_else(|| t.span.clone())))
    }

    /// `md5_password` (inline: the configuration becomes a file holding keys) or
    /// `md5_password_file` (mode 0600 or stricter, one trailing newline cut); not both.
    fn md5_password(
        &mut self,
        src: Src<'_>,
        t: &Tbl<'_>,
        inline: &mut Option<InlineKeys>,
    ) -> Option<Option<Md5Password>> {
        let key = match (t.get("md5_password"), t.get("md5_password_file")) {
            (None, None) => return Some(None),
            (Some(_), Some(f)) => {
                let span = span_or(f, t.span.as_ref());
                self.push(
                    src,
                    span.as_ref(),
                    &t.child("md5_password_file"),
                    ErrorKind::KeyFileAndInline,
                );
                return None;
            }
            (Some(n), None) => {
                if inline.is_none() {
                    *inline = Some(InlineKeys {
                        span: span_or(n, t.span.as_ref()),
                        path: t.child("md5_password"),
                    });
                }
                let Value::Str(s) = &n.value else {
                    self.wrong_type(src, t, "md5_password", n, "a string");
                    return None;
                };
                (Zeroizing::new(s.as_bytes().to_vec()), n, "md5_password")
            }
            (None, Some(f)) => {
                let span = span_or(f, t.span.as_ref());
                let path = t.child("md5_password_file");
                let Value::Str(s) = &f.value else {
                    self.wrong_type(src, t, "md5_password_file", f, "a string (a file path)");
                    return None;
                };
                let (_, content) = self.read_secret_file(src, span.as_ref(), &path, s.as_str())?;
                (
                    crate::ike::psk_from_file(&content.bytes),
                    f,
                    "md5_password_file",
                )
            }
        };
        let (bytes, node, name) = key;
        if bytes.is_empty() || bytes.len() > MAX_MD5_PASSWORD_LEN {
            let span = span_or(node, t.span.as_ref());
            self.push(
                src,
                span.as_ref(),
                &t.child(name),
                ErrorKind::KeyLength {
                    got: bytes.len(),
                    suite: "TCP MD5 (RFC 2385)",
                    need: MAX_MD5_PASSWORD_LEN,
                    breakdown: "1 to 80 bytes, the kernel's limit".into(),
                },
            );
            return None;
        }
        Some(Some(Md5Password(bytes)))
    }

    /// An array of networks (`advertise`) or of prefix-list entries (`import`, `export`, where
    /// `deny` and `le N` are allowed). Absent is an empty list.
    fn prefix_rules(
        &mut self,
        src: Src<'_>,
        t: &Tbl<'_>,
        key: &str,
        rules: bool,
    ) -> Option<Vec<PrefixRule>> {
        let Some(node) = t.get(key) else {
            return Some(Vec::new());
        };
        let Value::Array(items) = &node.value else {
            self.wrong_type(src, t, key, node, "an array of strings");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut seen: std::collections::HashMap<(Prefix, u8, bool), usize> =
            std::collections::HashMap::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let path = format!("{}[{i}]", t.child(key));
            let span = span_or(item, node.span.as_ref().or(t.span.as_ref()));
            let Value::Str(s) = &item.value else {
                self.push(
                    src,
                    span.as_ref(),
                    &path,
                    ErrorKind::WrongType {
                        expected: "a string",
                        found: item.value.type_name(),
                    },
                );
                ok = false;
                continue;
            };
            let parsed = if rules {
                split_rule(s)
            } else {
                Some((true, s.as_str(), None))
            };
            let Some((permit, text, le)) = parsed else {
                self.push(
                    src,
                    span.as_ref(),
                    &path,
                    ErrorKind::BadPrefix { value: truncate(s) },
                );
                ok = false;
                continue;
            };
            let Some((addr, len)) = parse_prefix(text) else {
                self.push(
                    src,
                    span.as_ref(),
                    &path,
                    ErrorKind::BadPrefix { value: truncate(s) },
                );
                ok = false;
                continue;
            };
            let (family, max) = if addr.is_ipv4() {
                ("IPv4", 32u8)
            } else {
                ("IPv6", 128u8)
            };
            let Some(len) = u8::try_from(len).ok().filter(|l| *l <= max) else {
                self.push(
                    src,
                    span.as_ref(),
                    &path,
                    ErrorKind::PrefixLength {
                        len,
                        family,
                        min: 0,
                        max,
                    },
                );
                ok = false;
                continue;
            };
            let max_len = match le {
                None => len,
                Some(le) => match u8::try_from(le).ok().filter(|l| (len..=max).contains(l)) {
                    Some(l) => l,
                    None => {
                        self.push(
                            src,
                            span.as_ref(),
                            &path,
                            ErrorKind::PrefixLength {
                                len: le,
                                family,
                                min: len,
                                max,
                            },
                        );
                        ok = false;
                        continue;
                    }
                },
            };
            let value = Prefix { addr, len };
            let (zero, _, network) = host_bits(addr, len);
            if !zero {
                self.push(
                    src,
                    span.as_ref(),
                    &path,
                    ErrorKind::HostBits {
                        value,
                        meant: Prefix { addr: network, len },
                    },
                );
                ok = false;
                continue;
            }
            let line = src.line(span.as_ref());
            if let Some(&first_line) = seen.get(&(value, max_len, permit)) {
                self.push(
                    src,
                    span.as_ref(),
                    &path,
                    ErrorKind::DuplicatePrefix { value, first_line },
                );
                ok = false;
                continue;
            }
            seen.insert((value, max_len, permit), line);
            out.push(PrefixRule {
                prefix: value,
                max_len,
                permit,
            });
        }
        ok.then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::{FileMeta, LoadCtx, MemFiles};

    fn parse(text: &str) -> Result<crate::Config, crate::ConfigErrors> {
        // The tunnel has inline keys: the file must look private.
        let mut files = MemFiles::new();
        let meta = FileMeta {
            mode: 0o600,
            uid: 0,
        };
        files.insert("bh.toml", meta, text.as_bytes());
        let ctx = LoadCtx {
            online_cores: 2,
            euid: 0,
            files: &files,
        };
        crate::parse(Path::new("bh.toml"), text, &ctx)
    }

    const TUNNEL: &str = r#"
[[tunnel]]
name = "aws0"
peer = "198.51.100.1"
inside = ["169.254.21.2/30"]
[tunnel.manual]
suite = "aes256gcm16"
outbound_spi = 0x1000
inbound_spi = 0x2000
outbound_key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00010203"
inbound_key = "101112131415161718191a1b1c1d1e1f000102030405060708090a0b0c0d0e0f10111213"
"#;

    #[test]
    fn a_full_bgp_section_loads_with_defaults_filled_in() {
        let text = format!(
            "{TUNNEL}
[bgp]
asn = 4200000010
router_id = \"10.0.1.4\"
advertise = [\"10.0.0.0/16\", \"fd00:10::/48\"]
table = 100
multipath = 8
transit = true

[[bgp.neighbor]]
address = \"169.254.21.1\"
asn = 64512
tunnel = \"aws0\"
hold_time = 30
prepend = 2
med = 50
import = [\"10.1.0.0/16 le 24\", \"deny 0.0.0.0/0\"]
export = [\"10.0.0.0/16\"]
max_prefix = 1000
max_prefix_action = \"warn\"
max_advertise = 100

[[bgp.neighbor]]
address = \"fd00:21::1\"
asn = 64512
passive = true
multihop = 2
"
        );
        let cfg = parse(&text).unwrap_or_else(|e| panic!("{e}"));
        let b = cfg.bgp.expect("bgp section");
        assert_eq!(b.asn, 4_200_000_010);
        assert_eq!(b.router_id, Some("10.0.1.4".parse().unwrap()));
        assert_eq!(b.advertise.len(), 2);
        assert_eq!((b.table, b.metric, b.multipath), (100, 20, 8));
        assert!(b.transit);
        let n = &b.neighbors[0];
        assert_eq!(n.tunnel.as_deref(), Some("aws0"));
        assert_eq!((n.hold_time, n.prepend, n.med), (30, 2, Some(50)));
        let import = n.import.as_ref().unwrap();
        assert_eq!(import.len(), 2);
        assert_eq!(
            (import[0].prefix.len, import[0].max_len, import[0].permit),
            (16, 24, true)
        );
        assert_eq!(
            (import[1].prefix.len, import[1].max_len, import[1].permit),
            (0, 0, false)
        );
        assert_eq!(n.max_prefix_action, super::MaxPrefixAction::Warn);
        assert_eq!((n.max_prefix, n.max_advertise), (Some(1000), Some(100)));
        let n = &b.neighbors[1];
        assert_eq!((n.hold_time, n.passive, n.multihop), (90, true, Some(2)));
        assert_eq!((n.import.as_ref(), n.tunnel.as_ref()), (None, None));
        assert_eq!(n.max_prefix_action, super::MaxPrefixAction::Teardown);
    }

    #[test]
    fn transit_is_off_unless_asked_and_must_be_a_boolean() {
        let cfg =
            parse(&format!("{TUNNEL}\n[bgp]\nasn = 65010\n")).unwrap_or_else(|e| panic!("{e}"));
        assert!(!cfg.bgp.expect("bgp section").transit);
        let e = parse(&format!(
            "{TUNNEL}\n[bgp]\nasn = 65010\ntransit = \"yes\"\n"
        ))
        .expect_err("a string is not a boolean")
        .to_string();
        assert!(e.contains("bgp.transit"), "{e}");
    }

    #[test]
    fn no_bgp_section_means_no_speaker() {
        assert!(parse(TUNNEL).unwrap().bgp.is_none());
    }

    #[test]
    fn every_bgp_error_is_reported_with_its_path() {
        let text = format!(
            "{TUNNEL}
[bgp]
router_id = \"fd00::1\"
advertise = [\"10.0.0.1/16\", \"10.0.0.0/33\"]
multipath = 0
colour = 1

[[bgp.neighbor]]
address = \"169.254.21.1\"
asn = 64512
tunnel = \"azure0\"
hold_time = 2
import = [\"10.0.0.0/8 le 7\", \"10.0.0.0/8 ge 9\"]
max_prefix_action = \"drop\"

[[bgp.neighbor]]
address = \"169.254.21.1\"
"
        );
        let errs = parse(&text).unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        for want in [
            "bgp.asn",
            "bgp.router_id",
            "bgp.advertise[0]",
            "bgp.advertise[1]",
            "bgp.multipath",
            "bgp.colour",
            "bgp.neighbor[0].tunnel",
            "bgp.neighbor[0].hold_time",
            "bgp.neighbor[0].import[0]",
            "bgp.neighbor[0].import[1]",
            "bgp.neighbor[0].max_prefix_action",
            "bgp.neighbor[1].asn",
        ] {
            assert!(paths.contains(&want), "no error at {want}: {errs}");
        }
        let shown = errs.to_string();
        assert!(shown.contains("did you mean 10.0.0.0/16?"), "{shown}");
        assert!(shown.contains("no [[tunnel]] has this name"), "{shown}");
        assert!(shown.contains("bh.toml:"), "{shown}");
        // Every error carries a line and column.
        assert!(errs.iter().all(|e| e.line > 0 && e.column > 0), "{shown}");
    }

    #[test]
    fn duplicate_neighbors_are_reported() {
        let text = format!(
            "{TUNNEL}
[bgp]
asn = 65000
[[bgp.neighbor]]
address = \"169.254.21.1\"
asn = 64512
[[bgp.neighbor]]
address = \"169.254.21.1\"
asn = 64513
"
        );
        let errs = parse(&text).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs}");
        assert!(errs.to_string().contains("listed twice"), "{errs}");
    }

    /// Loads a `[bgp]` section (no tunnel) with one neighbor with `md5`, the configuration
    /// file at mode `conf_mode` and a password file at mode `key_mode`.
    fn load_md5(
        md5: &str,
        conf_mode: u32,
        key_mode: u32,
        key: &[u8],
    ) -> Result<crate::Config, crate::ConfigErrors> {
        let text = format!(
            "[bgp]
asn = 65000
[[bgp.neighbor]]
address = \"169.254.21.1\"
asn = 64512
{md5}
"
        );
        let mut files = MemFiles::new();
        files.insert(
            "bh.toml",
            FileMeta {
                mode: conf_mode,
                uid: 0,
            },
            text.as_bytes(),
        );
        files.insert(
            "/etc/bridgehead/bgp/aws0.key",
            FileMeta {
                mode: key_mode,
                uid: 0,
            },
            key,
        );
        let ctx = LoadCtx {
            online_cores: 2,
            euid: 0,
            files: &files,
        };
        crate::parse(Path::new("bh.toml"), &text, &ctx)
    }

    #[test]
    fn md5_password_from_a_private_file_or_inline_in_a_private_config() {
        let file = "md5_password_file = \"/etc/bridgehead/bgp/aws0.key\"";
        let cfg =
            load_md5(file, 0o600, 0o600, b"Tcp-Md5.Secret\n").unwrap_or_else(|e| panic!("{e}"));
        let n = &cfg.bgp.unwrap().neighbors[0];
        let pw = n.md5_password.as_ref().expect("password");
        assert_eq!(pw.expose(), b"Tcp-Md5.Secret");
        // Debug output of the neighbor never shows the password.
        let shown = format!("{n:?}");
        assert!(!shown.contains("Tcp-Md5"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");

        // The password file readable by others is refused, and so is the error without the key.
        let e = load_md5(file, 0o644, 0o644, b"Tcp-Md5.Secret").unwrap_err();
        assert_eq!(e.errors[0].path, "bgp.neighbor[0].md5_password_file", "{e}");
        assert!(e.to_string().contains("0644"), "{e}");
        assert!(!e.to_string().contains("Tcp-Md5"), "{e}");

        // Inline: fine in a 0600 configuration, refused in a 0644 one.
        let inline = "md5_password = \"Inline.Md5\"";
        let cfg = load_md5(inline, 0o600, 0o600, b"").unwrap_or_else(|e| panic!("{e}"));
        let n = &cfg.bgp.unwrap().neighbors[0];
        assert_eq!(n.md5_password.as_ref().unwrap().expose(), b"Inline.Md5");
        let e = load_md5(inline, 0o644, 0o600, b"").unwrap_err();
        assert_eq!(e.errors[0].path, "bgp.neighbor[0].md5_password", "{e}");
        assert!(!e.to_string().contains("Inline.Md5"), "{e}");

        // No password: none set.
        let cfg = load_md5("", 0o644, 0o644, b"").unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg.bgp.unwrap().neighbors[0].md5_password.is_none());
    }

    #[test]
    fn md5_password_errors() {
        let both = "md5_password = \"a\"\nmd5_password_file = \"/etc/bridgehead/bgp/aws0.key\"";
        let e = load_md5(both, 0o600, 0o600, b"b").unwrap_err();
        assert!(e.to_string().contains("cannot both be set"), "{e}");
        let long = format!("md5_password = \"{}\"", "x".repeat(81));
        let e = load_md5(&long, 0o600, 0o600, b"").unwrap_err();
        assert_eq!(e.errors[0].path, "bgp.neighbor[0].md5_password", "{e}");
        assert!(e.to_string().contains("81 bytes"), "{e}");
        let exactly = format!("md5_password = \"{}\"", "x".repeat(80));
        assert!(load_md5(&exactly, 0o600, 0o600, b"").is_ok());
        let empty = "md5_password_file = \"/etc/bridgehead/bgp/aws0.key\"";
        let e = load_md5(empty, 0o600, 0o600, b"\n").unwrap_err();
        assert!(e.to_string().contains("0 bytes"), "{e}");
        let missing = "md5_password_file = \"/etc/bridgehead/bgp/none.key\"";
        let e = load_md5(missing, 0o600, 0o600, b"k").unwrap_err();
        assert!(e.to_string().contains("cannot read key file"), "{e}");
    }

    #[test]
    fn prefix_rule_syntax() {
        use super::split_rule;
        assert_eq!(split_rule("10.0.0.0/8"), Some((true, "10.0.0.0/8", None)));
        assert_eq!(
            split_rule("deny 10.0.0.0/8 le 24"),
            Some((false, "10.0.0.0/8", Some(24)))
        );
        assert_eq!(
            split_rule("permit fd00::/8 le 64"),
            Some((true, "fd00::/8", Some(64)))
        );
        for bad in [
            "",
            "deny",
            "10.0.0.0/8 le",
            "10.0.0.0/8 ge 9",
            "a b c d",
            "x le 1000",
        ] {
            assert_eq!(split_rule(bad), None, "{bad}");
        }
    }
}
