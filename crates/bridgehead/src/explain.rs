//! `bridgehead check --explain`: the effective settings of every tunnel and BGP neighbor after
//! the cloud presets are applied, where each value came from (`preset aws`, `set in file line
//! N`, `default`), why the presets are what they are, which tunnels stay down by design, and
//! warnings about what a cloud would do with the configuration.
//!
//! [`explain`] builds one JSON document (what `--json` prints); [`render`] turns it into text
//! readable in 80 columns. Cloud facts come from `bh_config` (presets, checks and their
//! reasons, each citing a section of the interop fact sheet) and from `cloud::plan` (Azure's
//! active-active tunnels); this module states none of its own. It never prints a key: a `psk`
//! shows as "(inline, not shown)".
//!
//! It does NOT talk to the daemon or a cloud: it explains the file, not the running state
//! (`bridgehead status` and `bridgehead bgp` show that).

use std::fmt::Write as _;

use bh_config::ike::{Identity, TunnelIke, dh_word};
use bh_config::{BgpNeighbor, Cloud, Config, Encap, MssClamp, Origin, Tunnel};
use bh_crypto::EspSuite;
use serde_json::{Value, json};

use crate::daemon::UNDERLAY_MTU;

/// Widest line [`render`] writes.
pub const WIDTH: usize = 80;

/// Where the fact sheet is; reasons cite its sections as `§N`.
pub const FACT_SHEET: &str = "shared/reference/cloud-gateways.md";

/// The explanation of `cfg` as JSON: `tunnels` and `neighbors`, each with `settings` (key,
/// value, origin), `reasons` and `warnings`; `down_by_design`; and global `warnings`.
pub fn explain(cfg: &Config) -> Value {
    let neighbors: &[BgpNeighbor] = cfg.bgp.as_ref().map_or(&[], |b| &b.neighbors[..]);
    let tunnels: Vec<Value> = cfg.tunnels.iter().map(tunnel).collect();
    let neighbors: Vec<Value> = neighbors.iter().map(|n| neighbor(cfg, n)).collect();
    json!({
        "file": cfg.source.display().to_string(),
        "fact_sheet": FACT_SHEET,
        "tunnels": tunnels,
        "neighbors": neighbors,
        "down_by_design": crate::cloud::plan::azure_down_by_design(cfg),
    })
}

/// One explained value.
fn setting(key: &str, value: Value, origin: Origin) -> Value {
    let origin_json = match origin {
        Origin::File { line } => json!({ "from": "file", "line": line }),
        Origin::Preset { cloud, section } => json!({
            "from": "preset", "cloud": cloud.word(), "source": format!("§{section}"),
        }),
        Origin::Default => json!({ "from": "default" }),
    };
    json!({ "key": key, "value": value, "origin": origin_json, "origin_text": origin.to_string() })
}

fn secs(d: std::time::Duration) -> Value {
    json!(format!("{} s", d.as_secs()))
}

fn strings<T: ToString>(v: &[T]) -> Value {
    json!(v.iter().map(ToString::to_string).collect::<Vec<_>>())
}

fn identity(i: &Identity) -> Value {
    json!(i.to_string())
}

/// The ESP suites a tunnel may end up with.
fn suites(t: &Tunnel) -> Vec<EspSuite> {
    match (&t.manual, &t.ike) {
        (Some(m), _) => vec![m.suite],
        (None, Some(ike)) => ike
            .settings
            .esp_proposals
            .iter()
            .flat_map(bh_config::ike::Proposal::esp_suites)
            .collect(),
        (None, None) => Vec::new(),
    }
}

fn suite_name(s: &EspSuite) -> &'static str {
    s.name().unwrap_or("?")
}

/// The largest inner packet that fits a 1500-byte underlay with `suite` (what the daemon
/// derives when `mtu` is not set).
fn fits_underlay(t: &Tunnel, suite: &EspSuite) -> u16 {
    bh_packet::mtu::tunnel_mtu(UNDERLAY_MTU, suite, t.encap == Encap::Udp, t.peer.is_ipv6())
}

/// The reason line for the MTU: per suite, the cloud's table value, or bridgehead's derivation
/// from the ESP overhead over a 1500-byte underlay.
fn mtu_reason(t: &Tunnel, suites: &[EspSuite]) -> String {
    let encap = match t.encap {
        Encap::Udp => "ESP in UDP",
        Encap::Esp => "raw ESP",
    };
    let list: Vec<String> = suites
        .iter()
        .map(|s| {
            let m = match t.cloud {
                Some(c) => c.tunnel_mtu(&[*s], t.encap),
                None => fits_underlay(t, s),
            };
            format!("{} {m}", suite_name(s))
        })
        .collect();
    let whose = match t.cloud {
        Some(c) => format!("{c}'s table"),
        None => format!("what fits a {UNDERLAY_MTU}-byte underlay"),
    };
    format!(
        "MTU per cipher over {encap}, {whose}: {}; the smallest wins since any may be \
         negotiated",
        list.join(", ")
    )
}

fn tunnel(t: &Tunnel) -> Value {
    let mut settings = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let o = |k: &str| t.origin(k);
    settings.push(setting("peer", json!(t.peer.to_string()), o("peer")));
    settings.push(setting(
        "encap",
        json!(match t.encap {
            Encap::Udp => "udp",
            Encap::Esp => "esp",
        }),
        o("encap"),
    ));
    if t.encap == Encap::Udp {
        settings.push(setting("peer_port", json!(t.peer_port), o("peer_port")));
    }
    settings.push(setting("inside", strings(&t.inside), o("inside")));
    if !t.routes.is_empty() {
        settings.push(setting("routes", strings(&t.routes), o("routes")));
    }
    let suites = suites(t);
    if let Some(ike) = &t.ike {
        ike_settings(t, ike, &mut settings, &mut warnings);
    }
    if let Some(m) = &t.manual {
        settings.push(setting(
            "manual.suite",
            json!(suite_name(&m.suite)),
            o("manual.suite"),
        ));
        settings.push(setting("manual.esn", json!(m.esn), o("manual.esn")));
    }
    let mtu_text = mtu_reason(t, &suites);
    let derived = suites.iter().map(|s| fits_underlay(t, s)).min();
    let mtu = t.mtu.or(derived);
    let mtu_value = match (t.mtu, derived) {
        (Some(m), _) => json!(m.to_string()),
        (None, Some(d)) => json!(format!("{d} (derived)")),
        (None, None) => json!("-"),
    };
    settings.push(setting("mtu", mtu_value, o("mtu")));
    let mss = match (t.mss_clamp, mtu) {
        (MssClamp::Auto, Some(m)) => format!(
            "auto ({})",
            bh_packet::mss::mss_for_mtu(m.min(derived.unwrap_or(m)), false)
        ),
        (MssClamp::Auto, None) => "auto".into(),
        (MssClamp::Off, _) => "off".into(),
        (MssClamp::Fixed(v), _) => v.to_string(),
    };
    settings.push(setting("mss_clamp", json!(mss), o("mss_clamp")));
    if t.encap == Encap::Udp {
        let ka = t.nat_keepalive.map_or_else(|| json!("off"), secs);
        settings.push(setting("nat_keepalive", ka, o("nat_keepalive")));
    }
    settings.push(setting(
        "replay_window",
        json!(t.replay_window),
        o("replay_window"),
    ));

    let mut reasons: Vec<Value> = Vec::new();
    if let Some(c) = t.cloud {
        for r in c.reasons() {
            if r.keys.iter().any(|k| !k.starts_with("neighbor.")) {
                let overridden = r.keys.iter().all(|k| {
                    matches!(o(k), Origin::File { .. })
                        && bh_config::cloud::TUNNEL_PRESET_KEYS.contains(k)
                });
                reasons.push(json!({
                    "keys": r.keys, "text": r.text, "source": format!("§{}", r.section),
                    "overridden": overridden,
                }));
            }
        }
    }
    let mtu_source = match t.cloud {
        Some(c) => json!(format!("§{}", bh_config::cloud::preset_section(c, "mtu"))),
        None => Value::Null,
    };
    reasons.push(json!({
        "keys": ["mtu"], "text": mtu_text, "source": mtu_source, "overridden": t.mtu.is_some()
            && matches!(o("mtu"), Origin::File { .. }),
    }));
    json!({
        "name": t.name,
        "device": t.device_name(),
        "cloud": t.cloud.map(Cloud::word),
        "keying": if t.ike.is_some() { "ike" } else { "manual" },
        "settings": settings,
        "reasons": reasons,
        "warnings": warnings,
    })
}

fn ike_settings(
    t: &Tunnel,
    ike: &TunnelIke,
    settings: &mut Vec<Value>,
    warnings: &mut Vec<String>,
) {
    let o = |k: &str| t.origin(k);
    let s = &ike.settings;
    if let Origin::File { line } = o("psk_file") {
        settings.push(setting(
            "psk_file",
            json!("(key file, not shown)"),
            Origin::File { line },
        ));
    } else {
        settings.push(setting("psk", json!("(inline, not shown)"), o("psk")));
    }
    settings.push(setting("local_id", identity(&ike.local_id), o("local_id")));
    settings.push(setting(
        "remote_id",
        identity(&ike.remote_id),
        o("remote_id"),
    ));
    let words = |ps: &[bh_config::ike::Proposal]| -> Value {
        json!(
            ps.iter()
                .map(bh_config::ike::Proposal::words)
                .collect::<Vec<_>>()
        )
    };
    settings.push(setting(
        "ike.proposals",
        words(&s.proposals),
        o("ike.proposals"),
    ));
    settings.push(setting(
        "ike.esp_proposals",
        words(&s.esp_proposals),
        o("ike.esp_proposals"),
    ));
    settings.push(setting(
        "ike.pfs",
        json!(s.pfs.map_or("none", dh_word)),
        o("ike.pfs"),
    ));
    settings.push(setting(
        "ike.initiate",
        json!(s.initiate),
        o("ike.initiate"),
    ));
    settings.push(setting(
        "ike.ike_lifetime",
        secs(s.ike_lifetime),
        o("ike.ike_lifetime"),
    ));
    settings.push(setting(
        "ike.child_lifetime",
        secs(s.child_lifetime),
        o("ike.child_lifetime"),
    ));
    settings.push(setting(
        "ike.dpd_interval",
        s.dpd_interval.map_or_else(|| json!("off"), secs),
        o("ike.dpd_interval"),
    ));
    settings.push(setting(
        "ike.dpd_timeout",
        secs(s.dpd_timeout),
        o("ike.dpd_timeout"),
    ));

    // Warnings: what a cloud would do with these values.
    for c in [Cloud::Aws, Cloud::Azure, Cloud::Gcp] {
        if Some(c) == t.cloud {
            continue; // the load already refused what this tunnel's cloud would refuse
        }
        if let Err(e) = c.check_psk(&ike.psk) {
            warnings.push(format!(
                "psk: {c} would refuse this key ({e}); 32 characters of A-Za-z0-9._ not \
                 starting with 0 are valid on every cloud [§4]"
            ));
        }
    }
    if let Some(c) = t.cloud {
        let (ike_life, child_life) = c.lifetimes();
        let sections = bh_config::cloud::preset_section(c, "ike.ike_lifetime");
        if s.ike_lifetime.as_secs() >= ike_life {
            warnings.push(format!(
                "ike.ike_lifetime {} s is not below {c}'s {ike_life} s: {c} may drive the \
                 IKE rekeys [§{sections}]",
                s.ike_lifetime.as_secs()
            ));
        }
        if s.child_lifetime.as_secs() >= child_life {
            warnings.push(format!(
                "ike.child_lifetime {} s is not below {c}'s {child_life} s: {c} may drive \
                 the Child SA rekeys [§{sections}]",
                s.child_lifetime.as_secs()
            ));
        }
        let gcm = s
            .esp_proposals
            .iter()
            .any(bh_config::ike::Proposal::is_aead);
        match c {
            Cloud::Azure if s.pfs.is_some() && gcm => warnings.push(
                "ike.pfs with AES-GCM in esp_proposals: Azure accepts AES-GCM only without \
                 PFS [§2.2]"
                    .into(),
            ),
            Cloud::Aws | Cloud::Gcp if s.pfs.is_none() => warnings.push(format!(
                "ike.pfs = \"none\": {c} requires PFS on Child SA rekeys [§{}]",
                if c == Cloud::Aws { "1.2" } else { "3.2" }
            )),
            _ => {}
        }
        if c == Cloud::Azure
            && s.proposals
                .iter()
                .any(|p| p.dh.contains(&bh_crypto::dh::DhGroup::Modp1024))
        {
            warnings.push(
                "ike.proposals use MODP-1024 (weak), the only group of Azure's default \
                 policy; a custom IPsec policy on the connection allows DH 14, 24 or ECP \
                 [§2.1]"
                    .into(),
            );
        }
    }
}

fn neighbor(cfg: &Config, n: &BgpNeighbor) -> Value {
    let o = |k: &str| n.origin(k);
    let mut settings = vec![
        setting("asn", json!(n.asn), o("asn")),
        setting("tunnel", json!(n.tunnel), o("tunnel")),
        setting(
            "hold_time",
            json!(format!("{} s", n.hold_time)),
            o("hold_time"),
        ),
        setting("passive", json!(n.passive), o("passive")),
        setting("max_advertise", json!(n.max_advertise), o("max_advertise")),
        setting("max_prefix", json!(n.max_prefix), o("max_prefix")),
    ];
    if let Some(m) = n.multihop {
        settings.push(setting("multihop", json!(m), o("multihop")));
    }
    if n.prepend > 0 {
        settings.push(setting("prepend", json!(n.prepend), o("prepend")));
    }
    if let Some(m) = n.med {
        settings.push(setting("med", json!(m), o("med")));
    }
    for (key, rules) in [("import", &n.import), ("export", &n.export)] {
        let v = match rules {
            None => json!(if key == "import" {
                "accept all"
            } else {
                "send all"
            }),
            Some(r) => json!(format!("{} rule(s)", r.len())),
        };
        settings.push(setting(key, v, o(key)));
    }
    let mut reasons = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    if let Some(c) = n.cloud {
        for r in c.reasons() {
            if r.keys.iter().any(|k| k.starts_with("neighbor.")) {
                let overridden = r.keys.iter().all(|k| {
                    let k = k.trim_start_matches("neighbor.");
                    matches!(o(k), Origin::File { .. })
                        && bh_config::cloud::NEIGHBOR_PRESET_KEYS.contains(&k)
                });
                reasons.push(json!({
                    "keys": r.keys, "text": r.text, "source": format!("§{}", r.section),
                    "overridden": overridden,
                }));
            }
        }
        if let (Some(limit), Some(ours)) = (c.preset().max_advertise, n.max_advertise) {
            if ours > limit {
                warnings.push(format!(
                    "max_advertise {ours} is above {c}'s limit of {limit} [§{}]",
                    bh_config::cloud::preset_section(c, "max_advertise")
                ));
            }
        }
        if c == Cloud::Azure && n.passive {
            warnings.push(
                "passive: Azure never opens BGP towards an APIPA peer, so this session waits \
                 forever [§2.3]"
                    .into(),
            );
        }
    }
    // Prefix guards.
    if n.max_prefix.is_none() {
        warnings.push(format!(
            "no max_prefix: nothing bounds how many prefixes {} may send",
            n.address
        ));
    }
    let advertised = cfg.bgp.as_ref().map_or(0, |b| b.advertise.len());
    if let Some(limit) = n.max_advertise {
        if u32::try_from(advertised).unwrap_or(u32::MAX) > limit {
            warnings.push(format!(
                "[bgp] advertise lists {advertised} prefixes, more than max_advertise {limit}: \
                 only {limit} are sent"
            ));
        }
    }
    json!({
        "address": n.address.to_string(),
        "asn": n.asn,
        "tunnel": n.tunnel,
        "cloud": n.cloud.map(Cloud::word),
        "settings": settings,
        "reasons": reasons,
        "warnings": warnings,
    })
}

// ---- text ----

const KEY_W: usize = 19;
const VALUE_W: usize = 37;
const ORIGIN_W: usize = WIDTH - 2 - KEY_W - 1 - VALUE_W - 1;

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Writes `body` after `first` (the first line's prefix), wrapped at [`WIDTH`], later lines
/// indented by `indent` spaces. A word longer than the room stays whole on its own line.
fn fold(s: &mut String, first: &str, body: &str, indent: usize) {
    let mut line = first.to_owned();
    let mut empty = true;
    for word in body.split_whitespace() {
        let len = line.chars().count();
        if !empty && len + 1 + word.chars().count() > WIDTH {
            s.push_str(line.trim_end());
            s.push('\n');
            line = " ".repeat(indent);
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    s.push_str(line.trim_end());
    s.push('\n');
}

/// One setting: key, value(s) one per line, origin on the first line.
fn row(s: &mut String, st: &Value) {
    let key = text(&st["key"]);
    let origin = text(&st["origin_text"]);
    let values: Vec<String> = match &st["value"] {
        Value::Array(a) if a.is_empty() => vec!["(none)".into()],
        Value::Array(a) => a.iter().map(text).collect(),
        v => vec![text(v)],
    };
    for (i, v) in values.iter().enumerate() {
        let k = if i == 0 { key.as_str() } else { "" };
        let o = if i == 0 { origin.as_str() } else { "" };
        let line = if k.chars().count() <= KEY_W && v.chars().count() <= VALUE_W {
            format!("  {k:<KEY_W$} {v:<VALUE_W$} {o:>ORIGIN_W$}")
        } else {
            // Too wide for the columns: the value on its own, the origin under it.
            let mut l = format!("  {k:<KEY_W$} {v}");
            if !o.is_empty() {
                let _ = write!(l, "\n  {:>w$}", o, w = WIDTH - 2);
            }
            l
        };
        s.push_str(line.trim_end());
        s.push('\n');
    }
}

fn reasons_and_warnings(s: &mut String, item: &Value) {
    let empty = Vec::new();
    let reasons = item["reasons"].as_array().unwrap_or(&empty);
    if !reasons.is_empty() {
        s.push_str("  why:\n");
        for r in reasons {
            let mut body = text(&r["text"]);
            if let Some(src) = r["source"].as_str() {
                let _ = write!(body, " [{src}]");
            }
            if r["overridden"].as_bool() == Some(true) {
                body.push_str(" (overridden in the file)");
            }
            fold(s, "  - ", &body, 4);
        }
    }
    let warnings = item["warnings"].as_array().unwrap_or(&empty);
    if !warnings.is_empty() {
        s.push_str("  warnings:\n");
        for w in warnings {
            fold(s, "  ! ", &text(w), 4);
        }
    }
}

/// Renders [`explain`]'s JSON as text in 80 columns.
pub fn render(v: &Value) -> String {
    let mut s = String::new();
    let empty = Vec::new();
    let tunnels = v["tunnels"].as_array().unwrap_or(&empty);
    let neighbors = v["neighbors"].as_array().unwrap_or(&empty);
    fold(
        &mut s,
        "",
        &format!(
            "{}: OK ({} tunnel(s), {} BGP neighbor(s)). Origins: \"preset <cloud>\", \"set in \
             file line N\" or \"default\"; [§N] cites the interop fact sheet ({}).",
            text(&v["file"]),
            tunnels.len(),
            neighbors.len(),
            text(&v["fact_sheet"])
        ),
        0,
    );
    for t in tunnels {
        let cloud = t["cloud"]
            .as_str()
            .map_or("no cloud preset".into(), |c| format!("cloud {c}"));
        let keying = if t["keying"] == "ike" {
            "IKEv2"
        } else {
            "manual keys"
        };
        s.push('\n');
        fold(
            &mut s,
            "",
            &format!(
                "tunnel {} ({}): {cloud}, {keying}",
                text(&t["name"]),
                text(&t["device"])
            ),
            2,
        );
        for st in t["settings"].as_array().unwrap_or(&empty) {
            row(&mut s, st);
        }
        reasons_and_warnings(&mut s, t);
    }
    for n in neighbors {
        let cloud = n["cloud"]
            .as_str()
            .map_or("no cloud preset".into(), |c| format!("cloud {c}"));
        s.push('\n');
        fold(
            &mut s,
            "",
            &format!("BGP neighbor {}: {cloud}", text(&n["address"])),
            2,
        );
        for st in n["settings"].as_array().unwrap_or(&empty) {
            row(&mut s, st);
        }
        reasons_and_warnings(&mut s, n);
    }
    let down = v["down_by_design"].as_array().unwrap_or(&empty);
    if !down.is_empty() {
        s.push_str("\nDown by design (Azure active-active) [§2.4]:\n");
        for d in down {
            fold(&mut s, "  - ", &text(d), 4);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::fold;

    #[test]
    fn fold_wraps_at_80_and_keeps_long_words_whole() {
        let mut s = String::new();
        let long = "x".repeat(90);
        fold(
            &mut s,
            "  - ",
            &format!("{} a b {long} c", "word ".repeat(30)),
            4,
        );
        let lines: Vec<&str> = s.lines().collect();
        assert!(
            lines
                .iter()
                .all(|l| l.chars().count() <= 80 || l.trim() == long)
        );
        assert!(lines.iter().any(|l| l.trim() == long));
        assert!(lines[1..].iter().all(|l| l.starts_with("    ")));
    }
}
