//! `bridgehead bgp` and `bridgehead routes`: the BGP part of the daemon's state rendered as
//! tables readable in 80 columns.
//!
//! - [`bgp_json`] / [`render_bgp`]: per neighbor its ASN, state, uptime, prefixes received and
//!   sent, messages received and sent, and the last error (folded under the table), cut out of
//!   the BGP service's status JSON ([`crate::bgp::BgpService::status_json`]).
//! - [`routes_request`] / [`render_routes`]: the per-prefix view the BGP service builds on
//!   request ([`crate::bgp::BgpService::routes_view`]): per prefix the paths learned (neighbor,
//!   next hop, AS path, LOCAL_PREF, MED), which are best (the ECMP set), whether the prefix is
//!   in the kernel and through which devices; per neighbor the prefixes advertised to it.
//!
//! Only formats what the JSON holds: a missing field shows as `-` or `?`. The view is bounded
//! by its `limit` (prefixes shown, and advertised prefixes per neighbor); what was left out is
//! counted, never silently dropped.

use std::fmt::Write as _;

use serde_json::{Value, json};

/// Widest line the renderers produce.
pub const WIDTH: usize = 80;

/// The `bgp` control reply: the speaker's identity and its neighbors, from the BGP service's
/// status JSON (`Null` when BGP is not configured).
pub fn bgp_json(bgp: &Value) -> Value {
    if !bgp.is_object() {
        return json!({ "configured": false, "neighbors": [] });
    }
    json!({
        "configured": true,
        "asn": bgp["asn"],
        "router_id": bgp["router_id"],
        "neighbors": bgp.get("neighbors").cloned().unwrap_or_else(|| json!([])),
    })
}

/// Parses a `routes` control request: `routes` (the default limit) or `routes N`; `None` for
/// anything else.
pub fn routes_request(req: &str) -> Option<usize> {
    let mut words = req.split_whitespace();
    if words.next()? != "routes" {
        return None;
    }
    let limit = match words.next() {
        None => crate::bgp::routes_view::DEFAULT_LIMIT,
        Some(n) => n.parse().ok()?,
    };
    words.next().is_none().then_some(limit)
}

/// Renders the `bgp` reply ([`bgp_json`]) as a table.
pub fn render_bgp(v: &Value) -> String {
    let mut s = String::new();
    if v["configured"].as_bool() == Some(false) {
        s.push_str("BGP is not configured\n");
        return s;
    }
    let empty = Vec::new();
    let neighbors = v["neighbors"].as_array().unwrap_or(&empty);
    let up = neighbors
        .iter()
        .filter(|n| n["state"].as_str() == Some("Established"))
        .count();
    fold(
        &mut s,
        "",
        &format!(
            "BGP router identifier {}, local AS {}: {} neighbor(s), {} established",
            text(&v["router_id"]),
            text(&v["asn"]),
            neighbors.len(),
            up
        ),
        2,
    );
    if neighbors.is_empty() {
        return s;
    }
    s.push('\n');
    let _ = writeln!(
        s,
        "{:<15} {:>10} {:<11} {:>8} {:>7} {:>7} {:>7} {:>7}",
        "Neighbor", "AS", "State", "Up/Down", "PfxRcd", "PfxSnt", "MsgRcvd", "MsgSent"
    );
    for n in neighbors {
        let addr = text(&n["address"]);
        let rest = format!(
            "{:>10} {:<11} {:>8} {:>7} {:>7} {:>7} {:>7}",
            clip(&text(&n["asn"]), 10),
            clip(&text(&n["state"]), 11),
            uptime(&n["uptime_secs"]),
            count(&n["prefixes_received"]),
            count(&n["prefixes_sent"]),
            count(&n["messages_received"]),
            count(&n["messages_sent"]),
        );
        first_column(&mut s, &addr, 15, &rest);
    }
    let errors: Vec<_> = neighbors
        .iter()
        .filter_map(|n| Some((text(&n["address"]), n["last_error"].as_str()?)))
        .collect();
    if !errors.is_empty() {
        s.push_str("\nLast errors:\n");
        for (addr, e) in errors {
            fold(&mut s, &format!("  {addr}:"), e, 4);
        }
    }
    s
}

/// Renders the routes view ([`crate::bgp::BgpService::routes_view`]) as text.
pub fn render_routes(v: &Value) -> String {
    let mut s = String::new();
    if v["configured"].as_bool() == Some(false) {
        s.push_str("BGP is not configured\n");
        return s;
    }
    let empty = Vec::new();
    let prefixes = v["prefixes"].as_array().unwrap_or(&empty);
    let installed = prefixes
        .iter()
        .filter(|p| p["installed"].as_bool() == Some(true))
        .count();
    fold(
        &mut s,
        "",
        &format!(
            "Local AS {}, table {}: {} prefix(es), {} shown, {installed} in the kernel",
            text(&v["asn"]),
            text(&v["table"]),
            text(&v["prefixes_total"]),
            prefixes.len(),
        ),
        2,
    );
    s.push_str("* = in the kernel (through the devices listed), > = best path (ECMP set)\n");
    for p in prefixes {
        let mark = if p["installed"].as_bool() == Some(true) {
            "*"
        } else {
            " "
        };
        let devices: Vec<String> = p["devices"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .map(text)
            .collect();
        let mut head = text(&p["prefix"]);
        if !devices.is_empty() {
            let _ = write!(head, " via {}", devices.join(", "));
        }
        if p["ecmp"].as_u64().is_some_and(|n| n > 1) {
            let _ = write!(head, " (ECMP {})", text(&p["ecmp"]));
        }
        s.push('\n');
        fold(&mut s, &format!("{mark} "), &head, 4);
        for path in p["paths"].as_array().unwrap_or(&empty) {
            let best = if path["best"].as_bool() == Some(true) {
                ">"
            } else {
                " "
            };
            let mut from = text(&path["neighbor"]);
            if let Some(t) = path["tunnel"].as_str() {
                let _ = write!(from, " ({t})");
            }
            let as_path = match path["as_path"].as_str() {
                Some("") => "(empty)".to_owned(),
                _ => text(&path["as_path"]),
            };
            let mut body = format!(
                "{from}: next hop {}, AS path {as_path}",
                text(&path["next_hop"])
            );
            if !path["local_pref"].is_null() {
                let _ = write!(body, ", LOCAL_PREF {}", text(&path["local_pref"]));
            }
            if !path["med"].is_null() {
                let _ = write!(body, ", MED {}", text(&path["med"]));
            }
            if path["stale"].as_bool() == Some(true) {
                body.push_str(", stale (graceful restart)");
            }
            fold(&mut s, &format!("    {best}"), &body, 6);
        }
    }
    if let Some(n) = v["prefixes_not_shown"].as_u64().filter(|n| *n > 0) {
        let _ = writeln!(s, "\n... {n} more prefix(es) not shown (raise --limit)");
    }
    s.push_str("\nAdvertised:\n");
    let advertised = v["advertised"].as_array().unwrap_or(&empty);
    if advertised.is_empty() {
        s.push_str("  (no neighbors)\n");
    }
    for a in advertised {
        let mut name = text(&a["neighbor"]);
        if let Some(t) = a["tunnel"].as_str() {
            let _ = write!(name, " ({t})");
        }
        fold(
            &mut s,
            "",
            &format!(
                "  {name}, {}: {} prefix(es)",
                text(&a["state"]),
                text(&a["total"])
            ),
            4,
        );
        let list: Vec<String> = a["prefixes"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .map(text)
            .collect();
        if !list.is_empty() {
            fold(&mut s, "   ", &list.join(" "), 4);
        }
        if let Some(n) = a["not_shown"].as_u64().filter(|n| *n > 0) {
            let _ = writeln!(s, "    ... {n} more not shown");
        }
    }
    s
}

/// A JSON scalar as text: strings bare, `null` or missing as `-`.
fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A counter in at most 7 columns: exact below ten million, else with a k/M/G suffix.
fn count(v: &Value) -> String {
    let Some(n) = v.as_u64() else {
        return text(v);
    };
    if n < 10_000_000 {
        return n.to_string();
    }
    let (div, unit) = if n < 10_000_000_000 {
        (1_000_000, "M")
    } else if n < 10_000_000_000_000 {
        (1_000_000_000, "G")
    } else {
        (1_000_000_000_000, "T")
    };
    clip(&format!("{}{unit}", n / div), 7)
}

/// Seconds as `hh:mm:ss` below a day, `NdHHhMMm` below 100 days, else `Nd`; `never` for null.
fn uptime(v: &Value) -> String {
    let Some(s) = v.as_u64() else {
        return "never".into();
    };
    let (d, h, m) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
    if d == 0 {
        format!("{h:02}:{m:02}:{:02}", s % 60)
    } else if d < 100 {
        format!("{d}d{h:02}h{m:02}m")
    } else {
        clip(&format!("{d}d"), 8)
    }
}

/// `s` cut to `w` characters, the last one replaced by `~` when it was cut.
fn clip(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(w.saturating_sub(1)).collect();
    out.push('~');
    out
}

/// One table row: `first` padded to `w` then `rest`; a longer `first` gets its own line and
/// `rest` goes on the next one, indented to the same column.
fn first_column(s: &mut String, first: &str, w: usize, rest: &str) {
    if first.chars().count() > w {
        let _ = writeln!(s, "{}", clip(first, WIDTH));
        let _ = writeln!(s, "{:w$} {rest}", "");
    } else {
        let _ = writeln!(s, "{first:<w$} {rest}");
    }
}

/// Writes `label value`, folding `value` at spaces onto lines indented by `indent` so that no
/// line passes [`WIDTH`]; a word longer than a line is cut.
fn fold(s: &mut String, label: &str, value: &str, indent: usize) {
    let mut line = label.to_owned();
    let mut has_word = false;
    for word in value.split_whitespace() {
        let word = clip(word, WIDTH.saturating_sub(indent + 1).max(1));
        let sep = usize::from(!(line.is_empty() || line.ends_with(' ')));
        if has_word && line.chars().count() + sep + word.chars().count() > WIDTH {
            let _ = writeln!(s, "{line}");
            line = " ".repeat(indent);
        }
        if !(line.is_empty() || line.ends_with(' ')) {
            line.push(' ');
        }
        line.push_str(&word);
        has_word = true;
    }
    if has_word || !label.is_empty() {
        let _ = writeln!(s, "{}", clip(&line, WIDTH));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "asn": 65000, "router_id": "10.255.0.1", "table": 254, "metric": 20,
            "neighbors": [
                { "address": "169.254.21.1", "asn": 64512, "tunnel": "aws0", "tcp_md5": false,
                  "device_up": true, "state": "Established", "uptime_secs": 93784,
                  "prefixes_received": 3, "prefixes_sent": 2, "messages_received": 123456789,
                  "messages_sent": 4567, "flaps": 1, "last_error": null },
                { "address": "fd00:1234:5678:9abc:def0:1234:5678:9abc", "asn": 4294967295u64,
                  "tunnel": "azure-instance-one-long-name", "state": "Active", "uptime_secs": null,
                  "prefixes_received": 0, "prefixes_sent": 0, "messages_received": 0,
                  "messages_sent": 12, "flaps": 0,
                  "last_error": "hold timer expired after 90 s without a KEEPALIVE; the peer at the far end of the tunnel may have lost its session, see its logs for the NOTIFICATION it sent" },
            ],
        })
    }

    fn view() -> Value {
        json!({
            "configured": true, "asn": 65000, "router_id": "10.255.0.1", "table": 254,
            "limit": 3, "prefixes_total": 4, "prefixes_not_shown": 1,
            "prefixes": [
                { "prefix": "172.16.0.0/16", "installed": true, "ecmp": 2,
                  "devices": ["bh-aws0", "bh-aws1"], "paths": [
                    { "neighbor": "169.254.21.1", "tunnel": "aws0", "next_hop": "169.254.21.1",
                      "as_path": "64512", "local_pref": null, "med": 100, "best": true,
                      "stale": false },
                    { "neighbor": "169.254.22.1", "tunnel": "aws1", "next_hop": "169.254.22.1",
                      "as_path": "64512", "local_pref": 200, "med": 100, "best": true,
                      "stale": true } ] },
                { "prefix": "2001:db8:1234:5678:9abc:def0:1234:0/112", "installed": false,
                  "ecmp": 1, "devices": [], "paths": [
                    { "neighbor": "fd00:1234:5678:9abc:def0:1234:5678:9abc",
                      "tunnel": "azure-instance-one-long-name",
                      "next_hop": "fd00:1234:5678:9abc:def0:1234:5678:9abc",
                      "as_path": "65515 65515 65515 65515 65515 65515 65515 65515 65515 65515 65515 12076",
                      "local_pref": null, "med": null, "best": false, "stale": false } ] },
                { "prefix": "10.1.0.0/16", "installed": false, "ecmp": 0, "devices": [],
                  "paths": [] },
            ],
            "advertised": [
                { "neighbor": "169.254.21.1", "tunnel": "aws0", "state": "Established",
                  "total": 40, "prefixes": (0..30).map(|i| format!("10.{i}.0.0/16")).collect::<Vec<_>>(),
                  "not_shown": 10 },
            ],
        })
    }

    fn assert_fits(out: &str) {
        for line in out.lines() {
            assert!(
                line.chars().count() <= WIDTH,
                "line over {WIDTH} columns: {line:?}"
            );
        }
    }

    #[test]
    fn bgp_table_shows_each_neighbor_and_fits_80_columns() {
        let out = render_bgp(&bgp_json(&sample()));
        assert_fits(&out);
        assert!(
            out.starts_with(
                "BGP router identifier 10.255.0.1, local AS 65000: 2 neighbor(s), 1 established\n"
            ),
            "{out}"
        );
        let row = out.lines().find(|l| l.starts_with("169.254.21.1")).unwrap();
        let cols: Vec<_> = row.split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "169.254.21.1",
                "64512",
                "Established",
                "1d02h03m",
                "3",
                "2",
                "123M",
                "4567"
            ]
        );
        // The long IPv6 address gets its own line; its numbers follow on the next one.
        let i = out
            .lines()
            .position(|l| l.starts_with("fd00:1234"))
            .unwrap();
        let next: Vec<_> = out.lines().nth(i + 1).unwrap().split_whitespace().collect();
        assert_eq!(next, ["4294967295", "Active", "never", "0", "0", "0", "12"]);
        assert!(out.contains("Last errors:"));
        assert!(out.contains("hold timer expired"));
        assert!(
            out.contains("NOTIFICATION it sent"),
            "folded, not cut: {out}"
        );
    }

    #[test]
    fn routes_view_lists_paths_best_kernel_and_advertised_in_80_columns() {
        let out = render_routes(&view());
        assert_fits(&out);
        assert!(
            out.starts_with("Local AS 65000, table 254: 4 prefix(es), 3 shown, 1 in the kernel"),
            "{out}"
        );
        assert!(
            out.contains("* 172.16.0.0/16 via bh-aws0, bh-aws1 (ECMP 2)"),
            "{out}"
        );
        assert!(out.contains(
            "    > 169.254.22.1 (aws1): next hop 169.254.22.1, AS path 64512, LOCAL_PREF 200,\n      MED 100,"
        ), "{out}");
        assert!(out.contains("stale (graceful restart)"), "{out}");
        // A long IPv6 path folds under its line, not cut.
        assert!(
            out.contains("  2001:db8:1234:5678:9abc:def0:1234:0/112\n"),
            "{out}"
        );
        assert!(out.contains("12076"), "{out}");
        assert!(out.contains("     fd00:1234"), "not best: {out}");
        assert!(out.contains("1 more prefix(es) not shown"), "{out}");
        let adv = out.split("Advertised:").nth(1).unwrap();
        assert!(adv.contains("169.254.21.1 (aws0), Established: 40 prefix(es)"));
        assert!(adv.contains("10.29.0.0/16") && !adv.contains("10.30.0.0/16"));
        assert!(adv.contains("... 10 more not shown"));
    }

    #[test]
    fn routes_requests_parse() {
        assert_eq!(
            routes_request("routes"),
            Some(crate::bgp::routes_view::DEFAULT_LIMIT)
        );
        assert_eq!(routes_request("routes 5"), Some(5));
        assert_eq!(routes_request("routes x"), None);
        assert_eq!(routes_request("routes 5 6"), None);
        assert_eq!(routes_request("status"), None);
    }

    #[test]
    fn without_bgp_both_say_so() {
        assert_eq!(
            render_bgp(&bgp_json(&Value::Null)),
            "BGP is not configured\n"
        );
        assert_eq!(
            render_routes(&json!({ "configured": false })),
            "BGP is not configured\n"
        );
    }

    #[test]
    fn helpers_bound_their_width() {
        assert_eq!(uptime(&json!(59)), "00:00:59");
        assert_eq!(uptime(&json!(86_400 * 250)), "250d");
        assert_eq!(count(&json!(u64::MAX)).chars().count(), 7);
        assert_eq!(clip("abcdef", 4), "abc~");
        let mut s = String::new();
        fold(&mut s, "x:", &"word ".repeat(60), 4);
        assert!(s.lines().count() > 3);
        assert_fits(&s);
        assert!(s.starts_with("x: word"));
    }
}
