//! Validation: from the spanned TOML tree ([`crate::tree`]) to the model ([`crate::model`]).
//!
//! Every check runs and every failure is collected; only a TOML syntax error stops early (there
//! is no tree to check). Each error gets the file, line, column and TOML path of the field.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bh_crypto::{EspEncr, EspSuite};
use zeroize::Zeroizing;

use crate::cloud::{CLOUD_WORDS, Cloud};
use crate::ctx::{FileMeta, LoadCtx};
use crate::error::{ConfigError, ConfigErrors, ErrorKind, HexProblem};
use crate::ike::{
    Identity, IkeProblem, IkeSettings, ProposalKind, TunnelIke, check_psk, parse_identity,
    parse_pfs, parse_proposal, psk_from_file,
};
use crate::model::{
    Appliance, Config, Dataplane, Encap, ManualKeys, ManualSa, MssClamp, Prefix, Tunnel,
};
use crate::origin::FileKeys;
use crate::tree::{self, Key, Node, Value};

#[path = "bgp.rs"]
pub(crate) mod bgp;

/// Keys accepted at the top level.
const TOP_KEYS: &[&str] = &["appliance", "dataplane", "tunnel", "bgp"];
/// Keys accepted in `[appliance]`.
const APPLIANCE_KEYS: &[&str] = &["private_ip", "public_ip"];
/// Keys accepted in `[dataplane]`.
const DATAPLANE_KEYS: &[&str] = &["workers", "udp_port", "socket_buffer", "pin_workers"];
/// Keys accepted in `[[tunnel]]`.
const TUNNEL_KEYS: &[&str] = &[
    "name",
    "cloud",
    "peer",
    "peer_port",
    "encap",
    "inside",
    "routes",
    "mtu",
    "mss_clamp",
    "nat_keepalive",
    "replay_window",
    "manual",
    "psk",
    "psk_file",
    "local_id",
    "remote_id",
    "ike",
];
/// Keys accepted in `[tunnel.ike]`.
const IKE_KEYS: &[&str] = &[
    "proposals",
    "esp_proposals",
    "pfs",
    "initiate",
    "ike_lifetime",
    "child_lifetime",
    "dpd_interval",
    "dpd_timeout",
];
/// Keys accepted in `[tunnel.manual]`.
const MANUAL_KEYS: &[&str] = &[
    "suite",
    "esn",
    "outbound_spi",
    "inbound_spi",
    "outbound_key",
    "inbound_key",
    "key_file",
];
/// Keys accepted in a key file.
const KEY_FILE_KEYS: &[&str] = &["outbound_key", "inbound_key"];
const ENCAP_WORDS: &[&str] = &["udp", "esp"];

/// Default `udp_port` and `peer_port`.
pub const DEFAULT_UDP_PORT: u16 = 4500;
/// Default `socket_buffer`: 7 MiB.
pub const DEFAULT_SOCKET_BUFFER: usize = 7 << 20;
/// Default `nat_keepalive` in seconds.
pub const DEFAULT_NAT_KEEPALIVE: u64 = 20;
/// Default `replay_window` in packets.
pub const DEFAULT_REPLAY_WINDOW: u32 = 1024;

/// Outbound and inbound key material.
type KeyPair = (Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>);
/// A value and where it was.
type Placed<T> = (T, Option<Range<usize>>);

/// A file being checked: its name and text, for turning byte offsets into lines.
#[derive(Clone, Copy)]
struct Src<'a> {
    name: &'a Path,
    text: &'a str,
}

impl Src<'_> {
    /// 1-based line and character column of a byte offset (clamped to the text).
    fn pos(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset = offset.saturating_sub(1);
        }
        let before = self.text.get(..offset).unwrap_or("");
        let line = before.matches('\n').count().saturating_add(1);
        let line_start = before.rfind('\n').map_or(0, |i| i.saturating_add(1));
        let col = before
            .get(line_start..)
            .map_or(0, |s| s.chars().count())
            .saturating_add(1);
        (line, col)
    }

    fn line(&self, span: Option<&Range<usize>>) -> usize {
        span.map_or(1, |s| self.pos(s.start).0)
    }
}

/// The error list and the context the checks need.
struct Checker<'c> {
    errors: Vec<ConfigError>,
    ctx: &'c LoadCtx<'c>,
}

/// A table being checked.
struct Tbl<'n> {
    entries: &'n [(Key, Node)],
    span: Option<Range<usize>>,
    path: String,
}

impl<'n> Tbl<'n> {
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    fn child(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

/// The keys `t` sets with the lines of their keys; the keys of the sub-tables named in `subs`
/// as `<sub>.<key>`.
fn file_keys(src: Src<'_>, t: &Tbl<'_>, subs: &[&str]) -> FileKeys {
    let mut out = FileKeys::default();
    for (key, node) in t.entries {
        let span = key.span.clone().or_else(|| span_or(node, t.span.as_ref()));
        out.push(key.name.clone(), src.line(span.as_ref()));
        if let (true, Value::Table(entries)) = (subs.contains(&key.name.as_str()), &node.value) {
            for (k, n) in entries {
                let span = k.span.clone().or_else(|| span_or(n, span.as_ref()));
                out.push(format!("{}.{}", key.name, k.name), src.line(span.as_ref()));
            }
        }
    }
    out
}

/// The span of a node, or of its nearest ancestor that has one.
fn span_or(node: &Node, fallback: Option<&Range<usize>>) -> Option<Range<usize>> {
    node.span.clone().or_else(|| fallback.cloned())
}

impl Checker<'_> {
    fn push(&mut self, src: Src<'_>, span: Option<&Range<usize>>, path: &str, kind: ErrorKind) {
        let (line, column) = span.map_or((1, 1), |s| src.pos(s.start));
        self.errors.push(ConfigError {
            file: src.name.to_path_buf(),
            line,
            column,
            path: path.to_owned(),
            kind,
        });
    }

    fn whole_file(&mut self, file: &Path, kind: ErrorKind) {
        self.errors.push(ConfigError {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            path: String::new(),
            kind,
        });
    }

    /// Views `node` as a table, or reports that it is not one.
    fn table<'n>(
        &mut self,
        src: Src<'_>,
        node: &'n Node,
        path: String,
        fallback: Option<&Range<usize>>,
    ) -> Option<Tbl<'n>> {
        let span = span_or(node, fallback);
        match &node.value {
            Value::Table(entries) => Some(Tbl {
                entries,
                span,
                path,
            }),
            other => {
                self.push(
                    src,
                    span.as_ref(),
                    &path,
                    ErrorKind::WrongType {
                        expected: "a table",
                        found: other.type_name(),
                    },
                );
                None
            }
        }
    }

    /// Reports every key of `t` that is not in `allowed`.
    fn check_keys(&mut self, src: Src<'_>, t: &Tbl<'_>, allowed: &'static [&'static str]) {
        for (key, node) in t.entries {
            if !allowed.contains(&key.name.as_str()) {
                let span = key.span.clone().or_else(|| span_or(node, t.span.as_ref()));
                self.push(
                    src,
                    span.as_ref(),
                    &t.child(&key.name),
                    ErrorKind::UnknownKey {
                        key: key.name.clone(),
                        suggestion: suggest(&key.name, allowed),
                        expected: allowed,
                    },
                );
            }
        }
    }

    fn wrong_type(
        &mut self,
        src: Src<'_>,
        t: &Tbl<'_>,
        key: &str,
        node: &Node,
        expected: &'static str,
    ) {
        let span = span_or(node, t.span.as_ref());
        self.push(
            src,
            span.as_ref(),
            &t.child(key),
            ErrorKind::WrongType {
                expected,
                found: node.value.type_name(),
            },
        );
    }

    fn missing(&mut self, src: Src<'_>, t: &Tbl<'_>, key: &'static str) {
        self.push(
            src,
            t.span.as_ref(),
            &t.child(key),
            ErrorKind::Missing { key },
        );
    }

    /// An integer in `min..=max`; `Ok(None)` when absent, `Err(())` when reported as wrong.
    fn int(
        &mut self,
        src: Src<'_>,
        t: &Tbl<'_>,
        key: &str,
        min: i64,
        max: i64,
    ) -> Result<Option<i64>, ()> {
        let Some(node) = t.get(key) else {
            return Ok(None);
        };
        match node.value {
            Value::Int(v) if (min..=max).contains(&v) => Ok(Some(v)),
            Value::Int(v) => {
                let span = span_or(node, t.span.as_ref());
                self.push(
                    src,
                    span.as_ref(),
                    &t.child(key),
                    ErrorKind::OutOfRange { value: v, min, max },
                );
                Err(())
            }
            _ => {
                self.wrong_type(src, t, key, node, "an integer");
                Err(())
            }
        }
    }

    fn bool(&mut self, src: Src<'_>, t: &Tbl<'_>, key: &str) -> Result<Option<bool>, ()> {
        let Some(node) = t.get(key) else {
            return Ok(None);
        };
        match node.value {
            Value::Bool(v) => Ok(Some(v)),
            _ => {
                self.wrong_type(src, t, key, node, "a boolean (true or false)");
                Err(())
            }
        }
    }

    /// A string field: the node and its text.
    fn str<'n>(
        &mut self,
        src: Src<'_>,
        t: &Tbl<'n>,
        key: &str,
    ) -> Result<Option<(&'n Node, &'n str)>, ()> {
        let Some(node) = t.get(key) else {
            return Ok(None);
        };
        match &node.value {
            Value::Str(s) => Ok(Some((node, s.as_str()))),
            _ => {
                self.wrong_type(src, t, key, node, "a string");
                Err(())
            }
        }
    }

    /// An IP address field.
    fn addr(&mut self, src: Src<'_>, t: &Tbl<'_>, key: &str) -> Result<Option<Placed<IpAddr>>, ()> {
        let Some((node, s)) = self.str(src, t, key)? else {
            return Ok(None);
        };
        let span = span_or(node, t.span.as_ref());
        match s.parse::<IpAddr>() {
            Ok(a) => Ok(Some((a, span))),
            Err(_) => {
                self.push(
                    src,
                    span.as_ref(),
                    &t.child(key),
                    ErrorKind::BadAddress { value: truncate(s) },
                );
                Err(())
            }
        }
    }
}

/// Quotes at most 64 characters of user text in a message.
fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A known key within edit distance 2 of `key`, if any.
fn suggest(key: &str, allowed: &'static [&'static str]) -> Option<&'static str> {
    if key.len() > 64 {
        return None;
    }
    allowed
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over characters (inputs are at most 64 characters).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0usize; b.len().saturating_add(1)];
    for (i, ca) in a.chars().enumerate() {
        if let Some(c0) = cur.first_mut() {
            *c0 = i.saturating_add(1);
        }
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let del = prev.get(j + 1).copied().unwrap_or(0).saturating_add(1);
            let ins = cur.get(j).copied().unwrap_or(0).saturating_add(1);
            if let Some(c) = cur.get_mut(j + 1) {
                *c = sub.min(del).min(ins);
            }
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev.last().copied().unwrap_or(0)
}

/// Checks `text` (the content of `source_name`) and builds the model.
///
/// `source_meta` is the configuration file's owner and mode when already known (from the open
/// file in [`crate::load`]); otherwise it is asked of `ctx.files` only if the file holds keys.
pub(crate) fn check(
    source_name: &Path,
    text: &str,
    source_meta: Option<FileMeta>,
    ctx: &LoadCtx<'_>,
) -> Result<Config, ConfigErrors> {
    let src = Src {
        name: source_name,
        text,
    };
    let mut c = Checker {
        errors: Vec::new(),
        ctx,
    };
    let root = match tree::parse(text) {
        Ok(root) => root,
        Err((message, span)) => {
            c.push(src, span.as_ref(), "", ErrorKind::Syntax { message });
            return Err(ConfigErrors { errors: c.errors });
        }
    };
    let config = c.config(src, &root, source_meta);
    // Errors of the configuration in line order; those of key files after, as found.
    let mut errors = c.errors;
    errors.sort_by_key(|e| {
        let main = e.file == source_name;
        (!main, if main { (e.line, e.column) } else { (0, 0) })
    });
    // Every check that rejects a value reports it, so no config means at least one error.
    debug_assert!(config.is_some() || !errors.is_empty());
    match config {
        Some(cfg) if errors.is_empty() => Ok(cfg),
        _ => Err(ConfigErrors { errors }),
    }
}

/// What is known about one tunnel for the checks across tunnels.
struct TunnelFacts {
    name: Option<(String, Option<Range<usize>>)>,
    inbound_spi: Option<(u32, Option<Range<usize>>)>,
    inside: Vec<(Prefix, Option<Range<usize>>)>,
    cloud: Option<Cloud>,
    path: String,
}

/// What a `[[bgp.neighbor]]` needs to know of the tunnels.
pub(crate) struct TunnelInfo {
    pub(crate) name: String,
    pub(crate) cloud: Option<Cloud>,
    pub(crate) inside: Vec<Prefix>,
}

/// The first place a file with inline keys was seen, for the permission check.
struct InlineKeys {
    span: Option<Range<usize>>,
    path: String,
}

impl Checker<'_> {
    fn config(
        &mut self,
        src: Src<'_>,
        root: &Node,
        source_meta: Option<FileMeta>,
    ) -> Option<Config> {
        let top = self.table(src, root, String::new(), None)?;
        self.check_keys(src, &top, TOP_KEYS);

        let appliance = match top.get("appliance") {
            Some(n) => self.appliance(src, n, top.span.as_ref()),
            None => Some(Appliance::default()),
        };
        let dataplane = match top.get("dataplane") {
            Some(n) => self.dataplane(src, n, top.span.as_ref()),
            None => Some(Dataplane {
                workers: self.ctx.online_cores.max(1),
                udp_port: DEFAULT_UDP_PORT,
                socket_buffer: DEFAULT_SOCKET_BUFFER,
                pin_workers: true,
            }),
        };

        let mut tunnels = Some(Vec::new());
        let mut facts = Vec::new();
        let mut inline: Option<InlineKeys> = None;
        if let Some(node) = top.get("tunnel") {
            match &node.value {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let path = format!("tunnel[{i}]");
                        let private = appliance.as_ref().and_then(|a| a.private_ip);
                        let public = appliance.as_ref().and_then(|a| a.public_ip);
                        let (tunnel, f) = self.tunnel(
                            src,
                            item,
                            path,
                            node.span.as_ref(),
                            (private, public),
                            &mut inline,
                        );
                        facts.push(f);
                        match (tunnel, tunnels.as_mut()) {
                            (Some(t), Some(list)) => list.push(t),
                            _ => tunnels = None,
                        }
                    }
                }
                other => {
                    self.push(
                        src,
                        node.span.as_ref(),
                        "tunnel",
                        ErrorKind::WrongType {
                            expected: "an array of tables ([[tunnel]])",
                            found: other.type_name(),
                        },
                    );
                    tunnels = None;
                }
            }
        }
        self.across_tunnels(src, &facts);
        let tunnel_names: Vec<TunnelInfo> = facts
            .iter()
            .filter_map(|f| {
                f.name.as_ref().map(|(n, _)| TunnelInfo {
                    name: n.clone(),
                    cloud: f.cloud,
                    inside: f.inside.iter().map(|(p, _)| *p).collect(),
                })
            })
            .collect();
        let bgp = match top.get("bgp") {
            Some(n) => self
                .bgp(src, n, top.span.as_ref(), &tunnel_names, &mut inline)
                .map(Some),
            None => Some(None),
        };

        if let Some(inline) = inline {
            let meta = match source_meta {
                Some(m) => Some(m),
                None => match self.ctx.files.metadata(src.name) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        self.push(
                            src,
                            inline.span.as_ref(),
                            &inline.path,
                            ErrorKind::Io {
                                reason: format!(
                                    "cannot check the permissions of a file holding keys: {e}"
                                ),
                            },
                        );
                        None
                    }
                },
            };
            if let Some(meta) = meta {
                if let Some(kind) = self.secret_file_problem(src.name, meta) {
                    self.push(src, inline.span.as_ref(), &inline.path, kind);
                }
            }
        }

        Some(Config {
            source: src.name.to_path_buf(),
            appliance: appliance?,
            dataplane: dataplane?,
            tunnels: tunnels?,
            bgp: bgp?,
        })
    }

    /// Mode 0600 or stricter, owned by us or root.
    /// Reads a file that holds a secret, named by `value` in the configuration (a relative
    /// path is taken from the configuration's directory), and checks its mode and owner. Every
    /// problem is reported at `span` and `path`.
    fn read_secret_file(
        &mut self,
        src: Src<'_>,
        span: Option<&Range<usize>>,
        path: &str,
        value: &str,
    ) -> Option<(PathBuf, crate::FileContent)> {
        let file = match src.name.parent() {
            Some(dir) if Path::new(value).is_relative() && !value.is_empty() => dir.join(value),
            _ => PathBuf::from(value),
        };
        let content = match self.ctx.files.read(&file) {
            Ok(c) => c,
            Err(e) => {
                self.push(
                    src,
                    span,
                    path,
                    ErrorKind::KeyFileIo {
                        file,
                        reason: e.to_string(),
                    },
                );
                return None;
            }
        };
        if let Some(kind) = self.secret_file_problem(&file, content.meta) {
            self.push(src, span, path, kind);
            return None;
        }
        Some((file, content))
    }

    fn secret_file_problem(&self, file: &Path, meta: FileMeta) -> Option<ErrorKind> {
        if meta.mode & 0o077 != 0 {
            Some(ErrorKind::InsecureMode {
                file: file.to_path_buf(),
                mode: meta.mode,
            })
        } else if self.ctx.euid != 0 && meta.uid != self.ctx.euid && meta.uid != 0 {
            // The owner check protects an unprivileged daemon from keys another user could
            // rewrite. Root (e.g. `bridgehead check` run by an admin on files that belong to
            // the service user) may read any owner's 0600 file; the mode check still applies.
            Some(ErrorKind::WrongOwner {
                file: file.to_path_buf(),
                uid: meta.uid,
                euid: self.ctx.euid,
            })
        } else {
            None
        }
    }

    fn appliance(
        &mut self,
        src: Src<'_>,
        node: &Node,
        fallback: Option<&Range<usize>>,
    ) -> Option<Appliance> {
        let t = self.table(src, node, "appliance".into(), fallback)?;
        self.check_keys(src, &t, APPLIANCE_KEYS);
        let mut ok = true;
        let mut get = |c: &mut Self, key: &str, allow_unspecified: bool| -> Option<IpAddr> {
            match c.addr(src, &t, key) {
                Ok(Some((a, span))) => {
                    if let Some(what) = unusable(a, allow_unspecified) {
                        c.push(
                            src,
                            span.as_ref(),
                            &t.child(key),
                            ErrorKind::UnusableAddress { addr: a, what },
                        );
                        ok = false;
                    }
                    Some(a)
                }
                Ok(None) => None,
                Err(()) => {
                    ok = false;
                    None
                }
            }
        };
        let private_ip = get(self, "private_ip", true);
        let public_ip = get(self, "public_ip", false);
        ok.then_some(Appliance {
            private_ip,
            public_ip,
        })
    }

    fn dataplane(
        &mut self,
        src: Src<'_>,
        node: &Node,
        fallback: Option<&Range<usize>>,
    ) -> Option<Dataplane> {
        let t = self.table(src, node, "dataplane".into(), fallback)?;
        self.check_keys(src, &t, DATAPLANE_KEYS);
        let workers = self.int(src, &t, "workers", 0, 1024);
        let udp_port = self.int(src, &t, "udp_port", 1, 65535);
        let socket_buffer = self.int(src, &t, "socket_buffer", 65536, 1 << 30);
        let pin_workers = self.bool(src, &t, "pin_workers");
        let workers = match workers.ok()?.unwrap_or(0) {
            0 => self.ctx.online_cores.max(1),
            n => usize::try_from(n).ok()?,
        };
        Some(Dataplane {
            workers,
            udp_port: u16::try_from(udp_port.ok()?.unwrap_or(i64::from(DEFAULT_UDP_PORT))).ok()?,
            socket_buffer: usize::try_from(
                socket_buffer
                    .ok()?
                    .unwrap_or(i64::try_from(DEFAULT_SOCKET_BUFFER).unwrap_or(i64::MAX)),
            )
            .ok()?,
            pin_workers: pin_workers.ok()?.unwrap_or(true),
        })
    }
}

/// Why `a` cannot be used as a unicast endpoint, if it cannot.
fn unusable(a: IpAddr, allow_unspecified: bool) -> Option<&'static str> {
    if a.is_unspecified() && !allow_unspecified {
        Some("the unspecified address")
    } else if a.is_multicast() {
        Some("multicast")
    } else if a == IpAddr::V4(Ipv4Addr::BROADCAST) {
        Some("the broadcast address")
    } else {
        None
    }
}

/// Parses `ADDRESS/LENGTH`.
fn parse_prefix(s: &str) -> Option<(IpAddr, u32)> {
    let (addr, len) = s.split_once('/')?;
    if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((addr.parse().ok()?, len.parse().ok()?))
}

/// The bits of `addr` outside the first `len` bits: (host part is zero, host part is all ones).
fn host_bits(addr: IpAddr, len: u8) -> (bool, bool, IpAddr) {
    match addr {
        IpAddr::V4(a) => {
            let v = u32::from(a);
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            (
                v & !mask == 0,
                v | mask == u32::MAX,
                IpAddr::V4(Ipv4Addr::from(v & mask)),
            )
        }
        IpAddr::V6(a) => {
            let v = u128::from(a);
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            (
                v & !mask == 0,
                v | mask == u128::MAX,
                IpAddr::V6(Ipv6Addr::from(v & mask)),
            )
        }
    }
}

/// How a suite's key material is made up, for the key-length message.
fn key_breakdown(suite: &EspSuite) -> String {
    let encr = suite.encr_key_len();
    match suite.encr {
        EspEncr::AesGcm16 { .. } | EspEncr::ChaCha20Poly1305 => {
            format!("{} key + 4 salt", encr.saturating_sub(4))
        }
        EspEncr::AesCbc { .. } => {
            format!(
                "{encr} encryption key + {} integrity key",
                suite.integ.key_len()
            )
        }
    }
}

/// Decodes hex (optional `0x`) straight into a wiped buffer; reports only positions.
fn decode_hex(s: &str) -> Result<Zeroizing<Vec<u8>>, HexProblem> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let offset = s.len() - digits.len();
    if digits.is_empty() {
        return Err(HexProblem::Empty);
    }
    if let Some(i) = digits.chars().position(|c| !c.is_ascii_hexdigit()) {
        return Err(HexProblem::NotHexDigit(
            i.saturating_add(offset).saturating_add(1),
        ));
    }
    if digits.len() % 2 != 0 {
        return Err(HexProblem::OddLength(digits.len()));
    }
    let mut out = Zeroizing::new(vec![0u8; digits.len() / 2]);
    hex::decode_to_slice(digits, &mut out).map_err(|_| HexProblem::NotHexDigit(1))?;
    Ok(out)
}

/// Constant-time equality of two keys.
fn same_key(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Checker<'_> {
    #[allow(clippy::too_many_lines)]
    fn tunnel(
        &mut self,
        src: Src<'_>,
        node: &Node,
        path: String,
        fallback: Option<&Range<usize>>,
        (private_ip, public_ip): (Option<IpAddr>, Option<IpAddr>),
        inline: &mut Option<InlineKeys>,
    ) -> (Option<Tunnel>, TunnelFacts) {
        let mut facts = TunnelFacts {
            name: None,
            inbound_spi: None,
            inside: Vec::new(),
            cloud: None,
            path: path.clone(),
        };
        let Some(t) = self.table(src, node, path, fallback) else {
            return (None, facts);
        };
        self.check_keys(src, &t, TUNNEL_KEYS);
        let mut ok = true;

        let cloud = self.cloud(src, &t);
        let preset_cloud = cloud.unwrap_or(None);
        facts.cloud = preset_cloud;

        // name
        let name = match self.str(src, &t, "name") {
            Ok(Some((n, s))) => {
                let span = span_or(n, t.span.as_ref());
                let reason = if s.is_empty() {
                    Some("it is empty")
                } else if s.chars().count() > 12 {
                    Some("it is longer than 12 characters (the device is bh-<name>, at most 15)")
                } else if !s
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                {
                    Some("only a-z, 0-9 and - are allowed")
                } else {
                    None
                };
                if let Some(reason) = reason {
                    self.push(
                        src,
                        span.as_ref(),
                        &t.child("name"),
                        ErrorKind::BadName {
                            value: truncate(s),
                            reason,
                        },
                    );
                    None
                } else {
                    facts.name = Some((s.to_owned(), span));
                    Some(s.to_owned())
                }
            }
            Ok(None) => {
                self.missing(src, &t, "name");
                None
            }
            Err(()) => None,
        };

        // peer
        let peer = match self.addr(src, &t, "peer") {
            Ok(Some((a, span))) => {
                if let Some(what) = unusable(a, false) {
                    self.push(
                        src,
                        span.as_ref(),
                        &t.child("peer"),
                        ErrorKind::UnusableAddress { addr: a, what },
                    );
                    ok = false;
                } else if let Some(p) = private_ip {
                    if p.is_ipv4() != a.is_ipv4() {
                        self.push(
                            src,
                            span.as_ref(),
                            &t.child("peer"),
                            ErrorKind::FamilyMismatch {
                                peer: a,
                                private: p,
                            },
                        );
                        ok = false;
                    }
                }
                Some(a)
            }
            Ok(None) => {
                self.missing(src, &t, "peer");
                None
            }
            Err(()) => None,
        };

        let peer_port = self.int(src, &t, "peer_port", 1, 65535);

        let encap = match self.str(src, &t, "encap") {
            Ok(Some((_, "udp"))) | Ok(None) => Some(Encap::Udp),
            Ok(Some((_, "esp"))) => Some(Encap::Esp),
            Ok(Some((n, s))) => {
                let span = span_or(n, t.span.as_ref());
                self.push(
                    src,
                    span.as_ref(),
                    &t.child("encap"),
                    ErrorKind::UnknownWord {
                        value: truncate(s),
                        expected: ENCAP_WORDS,
                    },
                );
                None
            }
            Err(()) => None,
        };

        let inside = self.prefixes(src, &t, "inside", true, preset_cloud, &mut facts);
        let routes = self.prefixes(src, &t, "routes", false, None, &mut facts);

        // mtu
        let mtu = match self.int(src, &t, "mtu", 576, 9000) {
            Ok(Some(v)) => {
                let mtu = u16::try_from(v).ok();
                // Against every inside address that is valid, even if another one is not.
                if let Some(mtu) = mtu {
                    if let Some((v6, _)) = facts.inside.iter().find(|(p, _)| p.addr.is_ipv6()) {
                        if mtu < 1280 {
                            let span = t.get("mtu").and_then(|n| span_or(n, t.span.as_ref()));
                            self.push(
                                src,
                                span.as_ref(),
                                &t.child("mtu"),
                                ErrorKind::MtuTooSmallForIpv6 { mtu, addr: *v6 },
                            );
                            ok = false;
                        }
                    }
                }
                Some(mtu)
            }
            Ok(None) => Some(None),
            Err(()) => None,
        };

        // mss_clamp
        let mss_clamp = match t.get("mss_clamp") {
            None => Some(MssClamp::Auto),
            Some(n) => {
                let span = span_or(n, t.span.as_ref());
                match &n.value {
                    Value::Str(s) if s.as_str() == "auto" => Some(MssClamp::Auto),
                    Value::Str(s) if s.as_str() == "off" => Some(MssClamp::Off),
                    Value::Str(s) => {
                        self.push(
                            src,
                            span.as_ref(),
                            &t.child("mss_clamp"),
                            ErrorKind::BadMss { value: truncate(s) },
                        );
                        None
                    }
                    Value::Int(_) => match self.int(src, &t, "mss_clamp", 536, 9000) {
                        Ok(Some(v)) => {
                            let mss = u16::try_from(v).unwrap_or(u16::MAX);
                            if let Some(Some(mtu)) = mtu {
                                if mss > mtu.saturating_sub(40) {
                                    self.push(
                                        src,
                                        span.as_ref(),
                                        &t.child("mss_clamp"),
                                        ErrorKind::MssAboveMtu { mss, mtu },
                                    );
                                    ok = false;
                                }
                            }
                            Some(MssClamp::Fixed(mss))
                        }
                        _ => None,
                    },
                    _ => {
                        self.wrong_type(src, &t, "mss_clamp", n, "\"auto\", \"off\" or an integer");
                        None
                    }
                }
            }
        };

        let nat_keepalive = self.int(src, &t, "nat_keepalive", 0, 3600);
        let replay_window = self.int(src, &t, "replay_window", 64, 4096);

        // Keying: IKE (psk, psk_file, [tunnel.ike]) or [tunnel.manual], exactly one.
        let ike_key = ["psk", "psk_file", "ike"]
            .into_iter()
            .find(|k| t.get(k).is_some());
        let manual = match (t.get("manual"), ike_key) {
            (Some(n), ike_key) => {
                if let Some(k) = ike_key {
                    let span = t.get(k).and_then(|n| span_or(n, t.span.as_ref()));
                    self.push(
                        src,
                        span.as_ref(),
                        &t.child(k),
                        ErrorKind::Ike {
                            problem: IkeProblem::ManualAndIke,
                        },
                    );
                    ok = false;
                }
                self.manual(
                    src,
                    n,
                    t.child("manual"),
                    t.span.as_ref(),
                    &mut facts,
                    inline,
                )
                .map(Some)
            }
            (None, Some(_)) => Some(None),
            (None, None) => {
                self.push(
                    src,
                    t.span.as_ref(),
                    &t.child("manual"),
                    ErrorKind::NoManual,
                );
                None
            }
        };
        let ike = match (&manual, ike_key) {
            (Some(None), Some(_)) => self
                .tunnel_ike(
                    src,
                    &t,
                    public_ip.or(private_ip),
                    peer,
                    preset_cloud,
                    inline,
                )
                .map(Some),
            _ => Some(None),
        };

        let build = || -> Option<Tunnel> {
            let encap = encap?;
            let cloud = cloud.ok()?;
            let ike: Option<TunnelIke> = ike?;
            let manual: Option<ManualKeys> = manual?;
            // A cloud's MTU and MSS for the suites this tunnel may use, unless set in the file.
            let suites: Vec<EspSuite> = match (&ike, &manual) {
                (Some(i), _) => i
                    .settings
                    .esp_proposals
                    .iter()
                    .flat_map(crate::ike::Proposal::esp_suites)
                    .collect(),
                (None, Some(m)) => vec![m.suite],
                (None, None) => Vec::new(),
            };
            let mtu: Option<u16> = match (mtu?, cloud) {
                (None, Some(c)) => Some(c.tunnel_mtu(&suites, encap)),
                (m, _) => m,
            };
            let mss_clamp = match (t.get("mss_clamp"), cloud, mtu) {
                (None, Some(c), Some(m)) => c.mss_clamp(m),
                _ => mss_clamp?,
            };
            let keepalive = nat_keepalive.ok()?.unwrap_or(DEFAULT_NAT_KEEPALIVE as i64);
            // Which keys the preset filled, for `preset_sources`.
            let mut from_preset = Vec::new();
            if cloud.is_some() {
                let ike_keys: &[(Key, Node)] = match t.get("ike").map(|n| &n.value) {
                    Some(Value::Table(entries)) => entries,
                    _ => &[],
                };
                for k in crate::cloud::TUNNEL_PRESET_KEYS {
                    let set = match k.strip_prefix("ike.") {
                        Some(sub) => {
                            ike.is_none() || ike_keys.iter().any(|(key, _)| key.name == sub)
                        }
                        None => t.get(k).is_some(),
                    };
                    if !set {
                        from_preset.push(*k);
                    }
                }
            }
            Some(Tunnel {
                name: name?,
                cloud,
                from_preset,
                set_in_file: file_keys(src, &t, &["ike", "manual"]),
                peer: peer?,
                peer_port: u16::try_from(peer_port.ok()?.unwrap_or(i64::from(DEFAULT_UDP_PORT)))
                    .ok()?,
                encap,
                inside: inside?,
                routes: routes?,
                mtu,
                mss_clamp,
                // Keepalives exist only for ESP in UDP (RFC 3948 §2.3); raw ESP ignores the key.
                nat_keepalive: match (encap, u64::try_from(keepalive).ok()?) {
                    (Encap::Esp, _) | (_, 0) => None,
                    (Encap::Udp, s) => Some(Duration::from_secs(s)),
                },
                replay_window: u32::try_from(
                    replay_window
                        .ok()?
                        .unwrap_or(i64::from(DEFAULT_REPLAY_WINDOW)),
                )
                .ok()?,
                manual,
                ike,
            })
        };
        let tunnel = build();
        (if ok { tunnel } else { None }, facts)
    }

    /// `inside` (host addresses) or `routes` (networks): an array of `ADDRESS/LENGTH` strings.
    fn prefixes(
        &mut self,
        src: Src<'_>,
        t: &Tbl<'_>,
        key: &str,
        inside: bool,
        cloud: Option<Cloud>,
        facts: &mut TunnelFacts,
    ) -> Option<Vec<Prefix>> {
        let Some(node) = t.get(key) else {
            return Some(Vec::new());
        };
        let Value::Array(items) = &node.value else {
            self.wrong_type(src, t, key, node, "an array of strings");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut seen: Vec<(Prefix, usize)> = Vec::new();
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
            let Some((addr, len)) = parse_prefix(s) else {
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
            let min = u8::from(inside);
            let Some(len) = u8::try_from(len).ok().filter(|l| (min..=max).contains(l)) else {
                self.push(
                    src,
                    span.as_ref(),
                    &path,
                    ErrorKind::PrefixLength {
                        len,
                        family,
                        min,
                        max,
                    },
                );
                ok = false;
                continue;
            };
            let value = Prefix { addr, len };
            let (zero, ones, network) = host_bits(addr, len);
            let problem = if inside {
                if let Some(what) =
                    unusable(addr, false).or_else(|| addr.is_loopback().then_some("loopback"))
                {
                    Some(ErrorKind::UnusableAddress { addr, what })
                } else if zero && (addr.is_ipv4() && len <= 30 || addr.is_ipv6() && len <= 126) {
                    let what = if addr.is_ipv4() {
                        "network"
                    } else {
                        "subnet-router anycast"
                    };
                    Some(ErrorKind::NotHostAddress { value, what })
                } else if ones && addr.is_ipv4() && len <= 30 {
                    Some(ErrorKind::NotHostAddress {
                        value,
                        what: "broadcast",
                    })
                } else {
                    cloud.and_then(|c| {
                        c.check_inside(value)
                            .err()
                            .map(|problem| ErrorKind::Cloud { cloud: c, problem })
                    })
                }
            } else if !zero {
                Some(ErrorKind::HostBits {
                    value,
                    meant: Prefix { addr: network, len },
                })
            } else {
                None
            };
            if let Some(kind) = problem {
                self.push(src, span.as_ref(), &path, kind);
                ok = false;
                continue;
            }
            let line = src.line(span.as_ref());
            if let Some(&(_, first_line)) = seen.iter().find(|(p, _)| *p == value) {
                self.push(
                    src,
                    span.as_ref(),
                    &path,
                    ErrorKind::DuplicatePrefix { value, first_line },
                );
                ok = false;
                continue;
            }
            seen.push((value, line));
            if inside {
                facts.inside.push((value, span));
            }
            out.push(value);
        }
        ok.then_some(out)
    }

    /// `[tunnel.manual]`.
    fn manual(
        &mut self,
        src: Src<'_>,
        node: &Node,
        path: String,
        fallback: Option<&Range<usize>>,
        facts: &mut TunnelFacts,
        inline: &mut Option<InlineKeys>,
    ) -> Option<ManualKeys> {
        let t = self.table(src, node, path, fallback)?;
        self.check_keys(src, &t, MANUAL_KEYS);

        let suite = match self.str(src, &t, "suite") {
            Ok(Some((n, s))) => match EspSuite::from_name(s) {
                Some(suite) => Some(suite),
                None => {
                    let span = span_or(n, t.span.as_ref());
                    self.push(
                        src,
                        span.as_ref(),
                        &t.child("suite"),
                        ErrorKind::UnknownSuite { value: truncate(s) },
                    );
                    None
                }
            },
            Ok(None) => {
                self.missing(src, &t, "suite");
                None
            }
            Err(()) => None,
        };
        let esn = self.bool(src, &t, "esn");

        let spi = |c: &mut Self, key: &'static str| -> Option<(u32, Option<Range<usize>>)> {
            let node = t.get(key);
            match node.map(|n| &n.value) {
                None => {
                    c.missing(src, &t, key);
                    None
                }
                Some(Value::Int(v)) => {
                    let span = node.and_then(|n| span_or(n, t.span.as_ref()));
                    match u32::try_from(*v).ok().filter(|v| *v >= 256) {
                        Some(v) => Some((v, span)),
                        None => {
                            c.push(
                                src,
                                span.as_ref(),
                                &t.child(key),
                                ErrorKind::BadSpi { value: *v },
                            );
                            None
                        }
                    }
                }
                Some(_) => {
                    if let Some(n) = node {
                        c.wrong_type(src, &t, key, n, "an integer");
                    }
                    None
                }
            }
        };
        let outbound_spi = spi(self, "outbound_spi");
        let inbound_spi = spi(self, "inbound_spi");
        facts.inbound_spi.clone_from(&inbound_spi);

        // Key material: inline, or from key_file, never both.
        let out_node = t.get("outbound_key");
        let in_node = t.get("inbound_key");
        let file_node = t.get("key_file");
        // The file holds keys whenever an inline key is written, even next to key_file.
        if inline.is_none() {
            if let Some(n) = out_node.or(in_node) {
                let key = if out_node.is_some() {
                    "outbound_key"
                } else {
                    "inbound_key"
                };
                *inline = Some(InlineKeys {
                    span: span_or(n, t.span.as_ref()),
                    path: t.child(key),
                });
            }
        }
        let keys = if let Some(file_node) = file_node {
            if out_node.is_some() || in_node.is_some() {
                let span = span_or(file_node, t.span.as_ref());
                self.push(
                    src,
                    span.as_ref(),
                    &t.child("key_file"),
                    ErrorKind::KeyFileAndInline,
                );
                None
            } else {
                self.key_file(src, &t, file_node, suite)
            }
        } else {
            self.key_pair(src, &t, suite)
        };

        Some(ManualKeys {
            suite: suite?,
            esn: esn.ok()?.unwrap_or(false),
            outbound: ManualSa {
                spi: outbound_spi?.0,
                key: keys.as_ref()?.0.clone(),
            },
            inbound: ManualSa {
                spi: inbound_spi?.0,
                key: keys?.1,
            },
        })
    }

    /// `outbound_key` and `inbound_key` of table `t` (the manual section or a key file).
    fn key_pair(&mut self, src: Src<'_>, t: &Tbl<'_>, suite: Option<EspSuite>) -> Option<KeyPair> {
        let one = |c: &mut Self, key: &'static str| -> Option<Zeroizing<Vec<u8>>> {
            let Some(node) = t.get(key) else {
                c.push(
                    src,
                    t.span.as_ref(),
                    &t.child(key),
                    ErrorKind::MissingKey { key },
                );
                return None;
            };
            let span = span_or(node, t.span.as_ref());
            let Value::Str(s) = &node.value else {
                c.wrong_type(src, t, key, node, "a string of hex digits");
                return None;
            };
            let bytes = match decode_hex(s) {
                Ok(b) => b,
                Err(reason) => {
                    c.push(
                        src,
                        span.as_ref(),
                        &t.child(key),
                        ErrorKind::BadHex { reason },
                    );
                    return None;
                }
            };
            if let Some(suite) = suite {
                if bytes.len() != suite.key_len() {
                    c.push(
                        src,
                        span.as_ref(),
                        &t.child(key),
                        ErrorKind::KeyLength {
                            got: bytes.len(),
                            suite: suite.name().unwrap_or("this suite"),
                            need: suite.key_len(),
                            breakdown: key_breakdown(&suite),
                        },
                    );
                    return None;
                }
            }
            Some(bytes)
        };
        let outbound = one(self, "outbound_key");
        let inbound = one(self, "inbound_key");
        let (outbound, inbound) = (outbound?, inbound?);
        if same_key(&outbound, &inbound) {
            let span = t
                .get("inbound_key")
                .and_then(|n| span_or(n, t.span.as_ref()));
            self.push(
                src,
                span.as_ref(),
                &t.child("inbound_key"),
                ErrorKind::SameKeys,
            );
            return None;
        }
        Some((outbound, inbound))
    }

    /// Reads, checks and parses a `key_file`.
    fn key_file(
        &mut self,
        src: Src<'_>,
        t: &Tbl<'_>,
        node: &Node,
        suite: Option<EspSuite>,
    ) -> Option<KeyPair> {
        let span = span_or(node, t.span.as_ref());
        let path_str = t.child("key_file");
        let Value::Str(s) = &node.value else {
            self.wrong_type(src, t, "key_file", node, "a string (a file path)");
            return None;
        };
        if s.is_empty() {
            self.push(
                src,
                span.as_ref(),
                &path_str,
                ErrorKind::KeyFileIo {
                    file: PathBuf::new(),
                    reason: "the path is empty".into(),
                },
            );
            return None;
        }
        let (file, content) = self.read_secret_file(src, span.as_ref(), &path_str, s.as_str())?;
        let Ok(text) = std::str::from_utf8(&content.bytes) else {
            self.whole_file(&file, ErrorKind::NotUtf8);
            return None;
        };
        let ksrc = Src { name: &file, text };
        let root = match tree::parse(text) {
            Ok(r) => r,
            Err((message, span)) => {
                self.push(ksrc, span.as_ref(), "", ErrorKind::Syntax { message });
                return None;
            }
        };
        let kt = self.table(ksrc, &root, String::new(), None)?;
        self.check_keys(ksrc, &kt, KEY_FILE_KEYS);
        self.key_pair(ksrc, &kt, suite)
    }

    /// Unique names, unique inbound SPIs, and no inside address on two tunnels.
    fn across_tunnels(&mut self, src: Src<'_>, facts: &[TunnelFacts]) {
        for (i, f) in facts.iter().enumerate() {
            let earlier = facts.get(..i).unwrap_or(&[]);
            if let Some((name, span)) = &f.name {
                if let Some((_, first)) = earlier
                    .iter()
                    .filter_map(|e| e.name.as_ref())
                    .find(|(n, _)| n == name)
                {
                    let first_line = src.line(first.as_ref());
                    self.push(
                        src,
                        span.as_ref(),
                        &format!("{}.name", f.path),
                        ErrorKind::DuplicateName {
                            name: name.clone(),
                            first_line,
                        },
                    );
                }
            }
            if let Some((spi, span)) = &f.inbound_spi {
                if let Some(other) = earlier
                    .iter()
                    .find(|e| e.inbound_spi.as_ref().is_some_and(|(s, _)| s == spi))
                {
                    let other = other
                        .name
                        .as_ref()
                        .map_or_else(|| other.path.clone(), |(n, _)| n.clone());
                    self.push(
                        src,
                        span.as_ref(),
                        &format!("{}.manual.inbound_spi", f.path),
                        ErrorKind::DuplicateSpi { spi: *spi, other },
                    );
                }
            }
            for (j, (p, span)) in f.inside.iter().enumerate() {
                if let Some((_, first)) = earlier
                    .iter()
                    .flat_map(|e| e.inside.iter())
                    .find(|(q, _)| q.addr == p.addr)
                {
                    let first_line = src.line(first.as_ref());
                    self.push(
                        src,
                        span.as_ref(),
                        &format!("{}.inside[{j}]", f.path),
                        ErrorKind::DuplicatePrefix {
                            value: *p,
                            first_line,
                        },
                    );
                }
            }
        }
    }
}

impl Checker<'_> {
    /// `cloud` of table `t`: `Ok(None)` when absent, `Err(())` when reported as wrong.
    pub(crate) fn cloud(&mut self, src: Src<'_>, t: &Tbl<'_>) -> Result<Option<Cloud>, ()> {
        match self.str(src, t, "cloud")? {
            None => Ok(None),
            Some((n, s)) => match Cloud::from_word(s) {
                Some(c) => Ok(Some(c)),
                None => {
                    let span = span_or(n, t.span.as_ref());
                    self.push(
                        src,
                        span.as_ref(),
                        &t.child("cloud"),
                        ErrorKind::UnknownWord {
                            value: truncate(s),
                            expected: CLOUD_WORDS,
                        },
                    );
                    Err(())
                }
            },
        }
    }

    fn ike_problem(
        &mut self,
        src: Src<'_>,
        span: Option<&Range<usize>>,
        path: &str,
        problem: IkeProblem,
    ) {
        self.push(src, span, path, ErrorKind::Ike { problem });
    }

    /// IKE keying of tunnel `t`: `psk` or `psk_file`, `local_id` (default `default_local`, the
    /// appliance's public or private address), `remote_id` (default `peer`), `[tunnel.ike]`.
    fn tunnel_ike(
        &mut self,
        src: Src<'_>,
        t: &Tbl<'_>,
        default_local: Option<IpAddr>,
        peer: Option<IpAddr>,
        cloud: Option<Cloud>,
        inline: &mut Option<InlineKeys>,
    ) -> Option<TunnelIke> {
        let psk_node = t.get("psk");
        let file_node = t.get("psk_file");
        if inline.is_none() {
            if let Some(n) = psk_node {
                *inline = Some(InlineKeys {
                    span: span_or(n, t.span.as_ref()),
                    path: t.child("psk"),
                });
            }
        }
        let psk = match (psk_node, file_node) {
            (Some(_), Some(f)) => {
                let span = span_or(f, t.span.as_ref());
                self.ike_problem(
                    src,
                    span.as_ref(),
                    &t.child("psk_file"),
                    IkeProblem::PskAndPskFile,
                );
                None
            }
            (Some(n), None) => match &n.value {
                Value::Str(s) => {
                    let key = Zeroizing::new(s.as_bytes().to_vec());
                    match check_psk(&key) {
                        Ok(()) => Some(key),
                        Err(problem) => {
                            let span = span_or(n, t.span.as_ref());
                            self.ike_problem(src, span.as_ref(), &t.child("psk"), problem);
                            None
                        }
                    }
                }
                _ => {
                    self.wrong_type(src, t, "psk", n, "a string");
                    None
                }
            },
            (None, Some(f)) => self.psk_file(src, t, f),
            (None, None) => {
                self.ike_problem(
                    src,
                    t.span.as_ref(),
                    &t.child("psk_file"),
                    IkeProblem::NoPsk,
                );
                None
            }
        };

        // The cloud's alphabet, reported at psk or psk_file (never showing the key).
        let psk = match (psk, cloud) {
            (Some(key), Some(c)) => match c.check_psk(&key) {
                Ok(()) => Some(key),
                Err(problem) => {
                    let key_name = if psk_node.is_some() {
                        "psk"
                    } else {
                        "psk_file"
                    };
                    let span = t.get(key_name).and_then(|n| span_or(n, t.span.as_ref()));
                    self.push(
                        src,
                        span.as_ref(),
                        &t.child(key_name),
                        ErrorKind::Cloud { cloud: c, problem },
                    );
                    None
                }
            },
            (psk, _) => psk,
        };

        let identity =
            |c: &mut Self, key: &str, default: Option<IpAddr>, missing: Option<IkeProblem>| {
                match c.str(src, t, key) {
                    Ok(Some((n, s))) => match parse_identity(s) {
                        Ok(id) => Some(id),
                        Err(problem) => {
                            let span = span_or(n, t.span.as_ref());
                            c.ike_problem(src, span.as_ref(), &t.child(key), problem);
                            None
                        }
                    },
                    Ok(None) => match (default, missing) {
                        (Some(a), _) => Some(Identity::Addr(a)),
                        (None, Some(problem)) => {
                            c.ike_problem(src, t.span.as_ref(), &t.child(key), problem);
                            None
                        }
                        // The peer is missing or wrong, which is reported already.
                        (None, None) => None,
                    },
                    Err(()) => None,
                }
            };
        let local_id = identity(self, "local_id", default_local, Some(IkeProblem::NoLocalId));
        let remote_id = identity(self, "remote_id", peer, None);

        let settings = match t.get("ike") {
            Some(n) => self.ike_settings(src, n, t.child("ike"), t.span.as_ref(), cloud),
            None => Some(IkeSettings::for_cloud(cloud)),
        };
        Some(TunnelIke {
            psk: psk?,
            local_id: local_id?,
            remote_id: remote_id?,
            settings: settings?,
        })
    }

    /// Reads and checks a `psk_file`: mode 0600 or stricter, one trailing newline cut.
    fn psk_file(&mut self, src: Src<'_>, t: &Tbl<'_>, node: &Node) -> Option<Zeroizing<Vec<u8>>> {
        let span = span_or(node, t.span.as_ref());
        let path_str = t.child("psk_file");
        let Value::Str(s) = &node.value else {
            self.wrong_type(src, t, "psk_file", node, "a string (a file path)");
            return None;
        };
        if s.is_empty() {
            self.push(
                src,
                span.as_ref(),
                &path_str,
                ErrorKind::KeyFileIo {
                    file: PathBuf::new(),
                    reason: "the path is empty".into(),
                },
            );
            return None;
        }
        let (_, content) = self.read_secret_file(src, span.as_ref(), &path_str, s.as_str())?;
        let psk = psk_from_file(&content.bytes);
        if let Err(problem) = check_psk(&psk) {
            self.ike_problem(src, span.as_ref(), &path_str, problem);
            return None;
        }
        Some(psk)
    }

    /// `[tunnel.ike]`.
    fn ike_settings(
        &mut self,
        src: Src<'_>,
        node: &Node,
        path: String,
        fallback: Option<&Range<usize>>,
        cloud: Option<Cloud>,
    ) -> Option<IkeSettings> {
        let t = self.table(src, node, path, fallback)?;
        self.check_keys(src, &t, IKE_KEYS);
        let d = IkeSettings::for_cloud(cloud);
        let proposals = self.proposals(src, &t, "proposals", ProposalKind::Ike);
        let esp_proposals = self.proposals(src, &t, "esp_proposals", ProposalKind::Esp);
        let pfs = match self.str(src, &t, "pfs") {
            Ok(Some((n, s))) => match parse_pfs(s) {
                Ok(g) => Some(g),
                Err(problem) => {
                    let span = span_or(n, t.span.as_ref());
                    self.ike_problem(src, span.as_ref(), &t.child("pfs"), problem);
                    None
                }
            },
            Ok(None) => Some(d.pfs),
            Err(()) => None,
        };
        let initiate = self.bool(src, &t, "initiate");
        let secs = |c: &mut Self, key: &str, min: i64, max: i64| {
            c.int(src, &t, key, min, max)
                .map(|v| v.and_then(|v| u64::try_from(v).ok()))
        };
        let ike_lifetime = secs(self, "ike_lifetime", 30, 86_400);
        let child_lifetime = secs(self, "child_lifetime", 10, 86_400);
        let dpd_interval = secs(self, "dpd_interval", 0, 3_600);
        let dpd_timeout = secs(self, "dpd_timeout", 5, 3_600);
        let ike_s = ike_lifetime.ok()?.unwrap_or(d.ike_lifetime.as_secs());
        let child_s = child_lifetime.ok()?.unwrap_or(d.child_lifetime.as_secs());
        let interval_s = dpd_interval
            .ok()?
            .unwrap_or(d.dpd_interval.map_or(0, |i| i.as_secs()));
        let timeout_s = dpd_timeout.ok()?.unwrap_or(d.dpd_timeout.as_secs());
        let mut ok = true;
        if child_s > ike_s {
            let key = if t.get("child_lifetime").is_some() {
                "child_lifetime"
            } else {
                "ike_lifetime"
            };
            let span = t.get(key).and_then(|n| span_or(n, t.span.as_ref()));
            self.ike_problem(
                src,
                span.as_ref(),
                &t.child(key),
                IkeProblem::ChildOutlivesIke {
                    child: child_s,
                    ike: ike_s,
                },
            );
            ok = false;
        }
        if interval_s > 0 && timeout_s <= interval_s {
            let key = if t.get("dpd_timeout").is_some() {
                "dpd_timeout"
            } else {
                "dpd_interval"
            };
            let span = t.get(key).and_then(|n| span_or(n, t.span.as_ref()));
            self.ike_problem(
                src,
                span.as_ref(),
                &t.child(key),
                IkeProblem::DpdTimeout {
                    timeout: timeout_s,
                    interval: interval_s,
                },
            );
            ok = false;
        }
        let settings = IkeSettings {
            proposals: proposals?.unwrap_or(d.proposals),
            esp_proposals: esp_proposals?.unwrap_or(d.esp_proposals),
            pfs: pfs?,
            initiate: initiate.ok()?.unwrap_or(d.initiate),
            ike_lifetime: Duration::from_secs(ike_s),
            child_lifetime: Duration::from_secs(child_s),
            dpd_interval: (interval_s > 0).then(|| Duration::from_secs(interval_s)),
            dpd_timeout: Duration::from_secs(timeout_s),
        };
        ok.then_some(settings)
    }

    /// A list of proposals; `Some(None)` when absent, `None` when reported as wrong.
    fn proposals(
        &mut self,
        src: Src<'_>,
        t: &Tbl<'_>,
        key: &str,
        kind: ProposalKind,
    ) -> Option<Option<Vec<crate::ike::Proposal>>> {
        let Some(node) = t.get(key) else {
            return Some(None);
        };
        let Value::Array(items) = &node.value else {
            self.wrong_type(src, t, key, node, "an array of strings");
            return None;
        };
        if items.is_empty() {
            let span = span_or(node, t.span.as_ref());
            self.ike_problem(src, span.as_ref(), &t.child(key), IkeProblem::NoProposals);
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
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
            match parse_proposal(s, kind) {
                Ok(p) => out.push(p),
                Err(problem) => {
                    self.ike_problem(src, span.as_ref(), &path, problem);
                    ok = false;
                }
            }
        }
        ok.then_some(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters_not_bytes() {
        let src = Src {
            name: Path::new("f"),
            text: "a = 1\n# é é\nb = 2",
        };
        assert_eq!(src.pos(0), (1, 1));
        assert_eq!(src.pos(6), (2, 1));
        // "# é é" is 7 bytes; `b` starts at byte 14.
        assert_eq!(src.pos(14), (3, 1));
        // The second é (byte 11) is the 5th character of line 2.
        assert_eq!(src.pos(11), (2, 5));
        // Inside a multi-byte character or past the end: clamped, never a panic.
        assert_eq!(src.pos(9), (2, 3));
        assert_eq!(src.pos(1000), (3, 6));
    }

    #[test]
    fn hex_decoding() {
        assert_eq!(decode_hex("0x0aFf").unwrap().as_slice(), &[0x0a, 0xff]);
        assert_eq!(decode_hex("0X00").unwrap().as_slice(), &[0]);
        assert_eq!(decode_hex("abcd").unwrap().as_slice(), &[0xab, 0xcd]);
        assert_eq!(decode_hex("0x"), Err(HexProblem::Empty));
        assert_eq!(decode_hex(""), Err(HexProblem::Empty));
        assert_eq!(decode_hex("0xabc"), Err(HexProblem::OddLength(3)));
        assert_eq!(decode_hex("0xab:cd"), Err(HexProblem::NotHexDigit(5)));
        assert_eq!(decode_hex("éé"), Err(HexProblem::NotHexDigit(1)));
    }

    #[test]
    fn host_bits_and_networks() {
        let a: IpAddr = "10.2.3.4".parse().unwrap();
        assert_eq!(
            host_bits(a, 16),
            (false, false, "10.2.0.0".parse().unwrap())
        );
        assert_eq!(host_bits(a, 32), (true, true, a));
        assert_eq!(host_bits(a, 0).2, "0.0.0.0".parse::<IpAddr>().unwrap());
        let b: IpAddr = "169.254.10.3".parse().unwrap();
        assert_eq!(
            host_bits(b, 30),
            (false, true, "169.254.10.0".parse().unwrap())
        );
        let c: IpAddr = "fd02::1".parse().unwrap();
        assert_eq!(host_bits(c, 64), (false, false, "fd02::".parse().unwrap()));
        assert_eq!(host_bits(c, 128), (true, true, c));
    }

    #[test]
    fn suggestions_are_close_keys_only() {
        assert_eq!(suggest("peer_prot", TUNNEL_KEYS), Some("peer_port"));
        assert_eq!(suggest("rotues", TUNNEL_KEYS), Some("routes"));
        assert_eq!(suggest("bgp", TUNNEL_KEYS), None);
        assert_eq!(suggest(&"x".repeat(100), TUNNEL_KEYS), None);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn same_key_compares_whole_keys() {
        assert!(same_key(&[1, 2, 3], &[1, 2, 3]));
        assert!(!same_key(&[1, 2, 3], &[1, 2, 4]));
        assert!(!same_key(&[1, 2], &[1, 2, 3]));
    }
}
