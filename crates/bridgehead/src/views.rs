//! `bridgehead bgp` and `bridgehead routes`: the BGP part of the daemon's status, cut out of the
//! BGP service's JSON ([`crate::bgp::BgpService::status_json`]) and rendered as tables readable
//! in 80 columns.
//!
//! - [`bgp_json`] / [`render_bgp`]: per neighbor its ASN, state, uptime, prefixes received and
//!   sent, messages received and sent, and the last error (folded under the table).
//! - [`routes_json`] / [`render_routes`]: what was learned (prefix counts per neighbor), the best
//!   routes with their next hops and whether each is installed in the kernel, and what is
//!   advertised (prefix counts per neighbor).
//!
//! Only formats what the JSON holds: a missing field shows as `-` or `?`. It does NOT list the
//! individual prefixes learned from or advertised to each neighbor (the BGP service reports
//! counts, not its Adj-RIBs), and the best-route list is as long as the service reports
//! (`routes_total` says how many exist).

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

/// The `routes` control reply: learned and advertised prefix counts per neighbor, and the best
/// routes with their kernel state, from the BGP service's status JSON.
pub fn routes_json(bgp: &Value) -> Value {
    if !bgp.is_object() {
        return json!({ "configured": false, "learned": [], "best": [], "advertised": [] });
    }
    let empty = Vec::new();
    let neighbors = bgp["neighbors"].as_array().unwrap_or(&empty);
    let per = |key: &str| -> Vec<Value> {
        neighbors
            .iter()
            .map(|n| {
                json!({
                    "neighbor": n["address"],
                    "tunnel": n["tunnel"],
                    "asn": n["asn"],
                    "state": n["state"],
                    "prefixes": n[key],
                })
            })
            .collect()
    };
    json!({
        "configured": true,
        "learned": per("prefixes_received"),
        "best": bgp.get("routes").cloned().unwrap_or_else(|| json!([])),
        "best_total": bgp["routes_total"],
        "table": bgp["table"],
        "fib": bgp["fib"],
        "advertised": per("prefixes_sent"),
    })
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

/// Renders the `routes` reply ([`routes_json`]) as tables.
pub fn render_routes(v: &Value) -> String {
    let mut s = String::new();
    if v["configured"].as_bool() == Some(false) {
        s.push_str("BGP is not configured\n");
        return s;
    }
    let empty = Vec::new();
    let best = v["best"].as_array().unwrap_or(&empty);
    let installed = best
        .iter()
        .filter(|r| r["installed"].as_bool() == Some(true))
        .count();
    let total = v["best_total"].as_u64().unwrap_or(best.len() as u64);
    let mut head = format!(
        "{total} best route(s), {installed} of the {} shown installed in the kernel",
        best.len()
    );
    if let Some(t) = v["table"].as_u64() {
        let _ = write!(head, " (table {t})");
    }
    fold(&mut s, "", &head, 2);
    let per_neighbor = |s: &mut String, title: &str, key: &str| {
        let rows = v[key].as_array().unwrap_or(&empty);
        let _ = writeln!(s, "\n{title}:");
        if rows.is_empty() {
            s.push_str("  (no neighbors)\n");
            return;
        }
        let _ = writeln!(
            s,
            "  {:<39} {:>10} {:<11} {:>8}",
            "Neighbor", "AS", "State", "Prefixes"
        );
        for r in rows {
            let mut name = text(&r["neighbor"]);
            if let Some(t) = r["tunnel"].as_str() {
                let _ = write!(name, " ({t})");
            }
            let rest = format!(
                "{:>10} {:<11} {:>8}",
                clip(&text(&r["asn"]), 10),
                clip(&text(&r["state"]), 11),
                count(&r["prefixes"])
            );
            first_column(s, &format!("  {name}"), 41, &rest);
        }
    };
    per_neighbor(&mut s, "Learned (prefixes received)", "learned");
    let _ = writeln!(s, "\nBest routes (* = installed in the kernel):");
    if best.is_empty() {
        s.push_str("  (none)\n");
    } else {
        let _ = writeln!(s, "  {:<33} {:<25} Neighbor", "Prefix", "Next hop");
        for r in best {
            let mark = if r["installed"].as_bool() == Some(true) {
                "*"
            } else {
                " "
            };
            let prefix = format!("{mark} {}", text(&r["prefix"]));
            let hops = r["next_hops"].as_array().unwrap_or(&empty);
            if hops.is_empty() {
                first_column(&mut s, &prefix, 35, "-");
            }
            for (i, h) in hops.iter().enumerate() {
                let rest = format!(
                    "{:<25} {}",
                    clip(&text(&h["address"]), 25),
                    clip(&text(&h["neighbor"]), 16)
                );
                let lead = if i == 0 { prefix.as_str() } else { "" };
                first_column(&mut s, lead, 35, rest.trim_end());
            }
        }
        if total > best.len() as u64 {
            let _ = writeln!(s, "  ... {} more not shown", total - best.len() as u64);
        }
    }
    per_neighbor(&mut s, "Advertised (prefixes sent)", "advertised");
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
            "routes_total": 4,
            "routes": [
                { "prefix": "172.16.0.0/16", "installed": true, "next_hops": [
                    { "address": "169.254.21.1", "neighbor": "aws0" },
                    { "address": "169.254.22.1", "neighbor": "aws1" } ] },
                { "prefix": "2001:db8:1234:5678:9abc:def0:1234:0/112", "installed": false,
                  "next_hops": [ { "address": "fd00:1234:5678:9abc:def0:1234:5678:9abc",
                                   "neighbor": "azure-instance-one-long-name" } ] },
                { "prefix": "10.0.1.0/24", "installed": true, "next_hops": [] },
            ],
            "fib": { "replaced": 2, "deleted": 0, "conflicts": 0, "errors": 0 },
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
    fn routes_tables_show_learned_best_installed_advertised() {
        let v = routes_json(&sample());
        assert_eq!(v["learned"][0]["prefixes"], 3);
        assert_eq!(v["advertised"][0]["prefixes"], 2);
        let out = render_routes(&v);
        assert_fits(&out);
        assert!(
            out.starts_with("4 best route(s), 2 of the 3 shown installed"),
            "{out}"
        );
        let learned = out.split("Learned").nth(1).unwrap();
        assert!(
            learned
                .lines()
                .any(|l| l.contains("169.254.21.1 (aws0)") && l.trim_end().ends_with(" 3"))
        );
        let adv = out.split("Advertised").nth(1).unwrap();
        assert!(
            adv.lines()
                .any(|l| l.contains("169.254.21.1 (aws0)") && l.trim_end().ends_with(" 2"))
        );
        let best = out.split("Best routes").nth(1).unwrap();
        let l = best.lines().find(|l| l.contains("172.16.0.0/16")).unwrap();
        assert!(
            l.starts_with("* 172.16.0.0/16") && l.contains("169.254.21.1") && l.contains("aws0")
        );
        // The ECMP second hop on its own row.
        assert!(
            best.lines()
                .any(|l| l.trim_start().starts_with("169.254.22.1") && l.contains("aws1"))
        );
        assert!(
            best.lines().any(|l| l.starts_with("  2001:db8:1234")),
            "not installed: {out}"
        );
        assert!(out.contains("1 more not shown"));
    }

    #[test]
    fn without_bgp_both_say_so() {
        assert_eq!(
            render_bgp(&bgp_json(&Value::Null)),
            "BGP is not configured\n"
        );
        assert_eq!(
            render_routes(&routes_json(&Value::Null)),
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
