//! Text rendering of the daemon's status JSON (`bridgehead status`), readable in 80 columns:
//! the tunnels and socket counters, then the IKE section (per tunnel: IKE state, SPIs,
//! algorithms, NAT, uptime, last rekey, why down; the engine's COOKIE and half-open counts)
//! and the BGP section (per neighbor: address, AS, state, uptime, prefixes received / sent).
//! Long values are folded onto indented continuation lines. It only formats what the JSON
//! holds: a missing field shows as `?` or is left out, nothing is computed or fetched here.

use std::fmt::Write as _;

use serde_json::Value;

/// Renders `bridgehead status` as text.
pub fn render(st: &Value) -> String {
    let mut s = String::new();
    let empty = Vec::new();
    let tunnels = st["tunnels"].as_array().unwrap_or(&empty);
    if tunnels.is_empty() {
        s.push_str("no tunnels configured\n");
    }
    for t in tunnels {
        let head = format!(
            "{} ({}): {}, {} keys, peer {} ({}), mtu {}",
            t["name"].as_str().unwrap_or("?"),
            t["device"].as_str().unwrap_or("?"),
            t["state"].as_str().unwrap_or("?"),
            t["keying"].as_str().unwrap_or("?"),
            t["peer"].as_str().unwrap_or("?"),
            match t["encap"].as_str() {
                Some("udp") => "ESP in UDP",
                Some("esp") => "raw ESP",
                _ => "?",
            },
            t["mtu"],
        );
        fold(&mut s, "tunnel", &head, 4);
        let _ = writeln!(
            s,
            "  suite {}{}",
            t["suite"].as_str().unwrap_or("?"),
            if t["esn"].as_bool() == Some(true) {
                ", ESN"
            } else {
                ""
            }
        );
        let o = &t["outbound"];
        let i = &t["inbound"];
        let _ = writeln!(
            s,
            "  out spi {}  {:>12} pkts {:>15} bytes",
            o["spi"].as_str().unwrap_or("?"),
            o["packets"],
            o["bytes"]
        );
        let _ = writeln!(
            s,
            "  in  spi {}  {:>12} pkts {:>15} bytes{}",
            i["spi"].as_str().unwrap_or("?"),
            i["packets"],
            i["bytes"],
            i["worker"]
                .as_u64()
                .map(|w| format!("  worker {w}"))
                .unwrap_or_default()
        );
        let d = &i["drops"];
        let _ = writeln!(
            s,
            "  in drops: replay {}, icv {}, malformed {}",
            d["replay"], d["icv"], d["malformed"]
        );
        let u = &t["tun"];
        fold(
            &mut s,
            "  tun:",
            &format!(
                "fragmented {}, icmp too-big {}, mss clamped {}, no-sa {}, send errors {}",
                u["fragmented"], u["icmp_too_big"], u["mss_clamped"], u["no_sa"], u["send_errors"]
            ),
            4,
        );
    }
    let k = &st["socket"];
    fold(
        &mut s,
        "socket:",
        &format!(
            "{} datagrams{}; malformed {}, truncated {}, unknown spi {}, ike {}, keepalives {}",
            k["rx_datagrams"],
            match k["per_worker"].as_array() {
                Some(w) if w.len() > 1 => format!(
                    " (by worker {})",
                    w.iter()
                        .map(Value::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                _ => String::new(),
            },
            k["malformed"],
            k["truncated"],
            k["unknown_spi"],
            k["ike"],
            k["keepalives"]
        ),
        4,
    );
    if st["ike"].is_object() {
        render_ike(&mut s, &st["ike"]);
    }
    if st["bgp"].is_object() {
        render_bgp(&mut s, &st["bgp"]);
    }
    s
}

/// Widest line the rendering aims for.
const WIDTH: usize = 80;

/// Appends `head` + `text` as one line, or folded at spaces onto lines indented by `indent`
/// spaces when it would pass [`WIDTH`] (a single word longer than a line is kept whole).
fn fold(s: &mut String, head: &str, text: &str, indent: usize) {
    let mut line = head.to_string();
    // Whether a word was placed yet (a line is only broken after one; each continuation
    // line gets its word at once).
    let mut has_word = false;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let len = line.chars().count();
        if has_word && len + 1 + word.chars().count() > WIDTH {
            s.push_str(&line);
            s.push('\n');
            line = " ".repeat(indent);
        }
        if !line.is_empty() && !line.ends_with(' ') {
            line.push(' ');
        }
        line.push_str(word);
        has_word = true;
    }
    s.push_str(&line);
    s.push('\n');
}

/// A duration in seconds as `42s`, `5m07s`, `1h02m03s` or `3d04h05m`.
fn duration(secs: u64) -> String {
    let (d, h, m, sec) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h:02}h{m:02}m")
    } else if h > 0 {
        format!("{h}h{m:02}m{sec:02}s")
    } else if m > 0 {
        format!("{m}m{sec:02}s")
    } else {
        format!("{sec}s")
    }
}

/// A JSON string or number as text, `?` otherwise.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => "?".into(),
    }
}

/// The `ike` section: one block per IKE tunnel.
fn render_ike(s: &mut String, ike: &Value) {
    let empty = Vec::new();
    let tunnels = ike["tunnels"].as_array().unwrap_or(&empty);
    let _ = writeln!(
        s,
        "ike: {} IKE SAs, {} half-open, {} cookies sent",
        text(&ike["ike_sas"]),
        text(&ike["half_open"]),
        text(&ike["cookies_sent"]),
    );
    for t in tunnels {
        let nat = match t["nat"].as_bool() {
            Some(true) => ", NAT detected",
            Some(false) => ", no NAT",
            None => "",
        };
        let remote = t["remote"]
            .as_str()
            .map(|r| format!(", peer {r}"))
            .unwrap_or_default();
        fold(
            s,
            "ike tunnel",
            &format!(
                "{}: {} ({}){remote}{nat}",
                text(&t["name"]),
                text(&t["state"]),
                text(&t["role"]),
            ),
            4,
        );
        if let Some(spi) = t["ike_spi"].as_str() {
            fold(
                s,
                "  ike spi",
                &format!("{spi}, {}", t["ike_suite"].as_str().unwrap_or("?")),
                4,
            );
        }
        let c = &t["child"];
        if c.is_object() {
            let mut flags = String::new();
            if c["esn"].as_bool() == Some(true) {
                flags.push_str(", ESN");
            }
            if c["udp_encap"].as_bool() == Some(true) {
                flags.push_str(", ESP in UDP");
            }
            fold(
                s,
                "  child in",
                &format!(
                    "{} out {}, {}{flags}",
                    text(&c["inbound_spi"]),
                    text(&c["outbound_spi"]),
                    text(&c["suite"]),
                ),
                4,
            );
        }
        let mut times = Vec::new();
        if let Some(u) = t["uptime_secs"].as_u64() {
            times.push(format!("up {}", duration(u)));
        }
        match t["last_rekey_secs_ago"].as_u64() {
            Some(r) => times.push(format!("last rekey {} ago", duration(r))),
            None => times.push("not rekeyed".into()),
        }
        times.push(format!(
            "{} IKE SAs and {} Child SAs made",
            text(&t["ike_sas_up"]),
            text(&t["child_sas_up"])
        ));
        fold(s, "  ", &times.join(", "), 4);
        if let Some(why) = t["down_reason"].as_str() {
            fold(s, "  down:", why, 4);
        }
        if let Some(np) = t["no_proposal_chosen"].as_str() {
            fold(s, "  no proposal chosen:", np, 4);
        }
    }
}

/// The `bgp` section: the speaker, then a table of neighbors.
fn render_bgp(s: &mut String, bgp: &Value) {
    let empty = Vec::new();
    let neighbors = bgp["neighbors"].as_array().unwrap_or(&empty);
    let _ = writeln!(
        s,
        "bgp: AS {}, router id {}, {} routes",
        text(&bgp["asn"]),
        text(&bgp["router_id"]),
        text(&bgp["routes_total"]),
    );
    if neighbors.is_empty() {
        s.push_str("  no neighbors\n");
        return;
    }
    /// Address column width; a longer address (IPv6) gets a line of its own.
    const ADDR: usize = 22;
    let _ = writeln!(
        s,
        "  {:<ADDR$} {:>10} {:<11} {:>10} {:>8} {:>8}",
        "neighbor", "AS", "state", "uptime", "rcvd", "sent"
    );
    for n in neighbors {
        let addr = text(&n["address"]);
        let uptime = n["uptime_secs"]
            .as_u64()
            .map_or_else(|| "-".to_string(), duration);
        let cols = format!(
            "{:>10} {:<11} {:>10} {:>8} {:>8}",
            text(&n["asn"]),
            text(&n["state"]),
            uptime,
            text(&n["prefixes_received"]),
            text(&n["prefixes_sent"]),
        );
        if addr.chars().count() > ADDR {
            let _ = writeln!(s, "  {addr}");
            let _ = writeln!(s, "  {:<ADDR$} {cols}", "");
        } else {
            let _ = writeln!(s, "  {addr:<ADDR$} {cols}");
        }
        if let Some(e) = n["last_error"].as_str() {
            fold(s, "    last error:", e, 6);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        serde_json::json!({
            "tunnels": [{
                "name": "gcp-tunnel-with-a-long-name", "device": "bh-gcp-tunnel0",
                "state": "up", "keying": "ike",
                "peer": "2001:db8:1234:5678:9abc:def0:1234:5678", "encap": "udp", "mtu": 1400,
                "suite": "aes256gcm16", "esn": true,
                "outbound": {"spi": "0x0badf00d", "packets": 123456789012u64,
                             "bytes": 123456789012345u64},
                "inbound": {"spi": "0xc0ffee01", "worker": 1, "packets": 123456789012u64,
                            "bytes": 123456789012345u64,
                            "drops": {"replay": 1234567, "icv": 1234567, "malformed": 1234567}},
                "tun": {"fragmented": 1234567890, "icmp_too_big": 1234567890,
                        "mss_clamped": 1234567890, "no_sa": 1234567890,
                        "send_errors": 1234567890}
            }],
            "socket": {"rx_datagrams": 10, "per_worker": [4, 6], "malformed": 0, "truncated": 0,
                       "unknown_spi": 0, "ike": 4, "keepalives": 1},
            "ike": {
                "cookies_sent": 1500, "half_open": 32, "ike_sas": 33,
                "tunnels": [{
                    "name": "aws-1", "tunnel_index": 0, "role": "initiator",
                    "state": "established", "ike_spi": "0123456789abcdef",
                    "ike_suite": "aes256gcm16-prfsha256-ecp256",
                    "nat": true, "remote": "203.0.113.20:4500",
                    "child": {"inbound_spi": "0xc0ffee01", "outbound_spi": "0x0badf00d",
                              "suite": "aes256gcm16", "esn": false, "udp_encap": true},
                    "down_reason": null, "no_proposal_chosen": null,
                    "ike_sas_up": 3, "child_sas_up": 7,
                    "uptime_secs": 3723, "last_rekey_secs_ago": 65
                }, {
                    "name": "azure", "tunnel_index": 1, "role": "responder",
                    "state": "down", "ike_spi": null, "ike_suite": null, "nat": null,
                    "remote": null, "child": null, "down_reason": "Timeout",
                    "no_proposal_chosen": "ours: aes256gcm16-prfsha256-ecp256 theirs: \
                        aes256-sha1-prfsha1-modp1024, aes128-sha1-prfsha1-modp1024, \
                        3des-sha1-prfsha1-modp1024",
                    "ike_sas_up": 0, "child_sas_up": 0,
                    "uptime_secs": null, "last_rekey_secs_ago": null
                }]
            },
            "bgp": {
                "asn": 65000, "router_id": "10.1.0.1", "routes_total": 12,
                "neighbors": [{
                    "address": "169.254.10.2", "asn": 64512, "state": "Established",
                    "uptime_secs": 90061, "prefixes_received": 10, "prefixes_sent": 2,
                    "last_error": null
                }, {
                    "address": "fd00:1234:5678:9abc:def0:1234:5678:9abc", "asn": 4200000000u64,
                    "state": "Active", "uptime_secs": null, "prefixes_received": 0,
                    "prefixes_sent": 0, "last_error": "hold timer expired"
                }]
            }
        })
    }

    #[test]
    fn ike_and_bgp_sections_fit_80_columns_and_show_what_a_user_checks() {
        let out = render(&sample());
        for line in out.lines() {
            assert!(line.chars().count() <= WIDTH, "too wide: {line:?}\n{out}");
        }
        let has = |want: &str| assert!(out.contains(want), "missing {want:?} in\n{out}");
        has("in  spi 0xc0ffee01  123456789012 pkts 123456789012345 bytes  worker 1");
        has("socket: 10 datagrams (by worker 4, 6); malformed 0");
        has("send errors 1234567890");
        has("ike: 33 IKE SAs, 32 half-open, 1500 cookies sent");
        has("ike tunnel aws-1: established (initiator), peer 203.0.113.20:4500, NAT detected");
        has("  ike spi 0123456789abcdef, aes256gcm16-prfsha256-ecp256");
        has("  child in 0xc0ffee01 out 0x0badf00d, aes256gcm16, ESP in UDP");
        has("up 1h02m03s, last rekey 1m05s ago, 3 IKE SAs and 7 Child SAs made");
        has("ike tunnel azure: down (responder)");
        has("  down: Timeout");
        // The long proposal list is folded, not cut: every proposal is there.
        has("3des-sha1-prfsha1-modp1024");
        has("bgp: AS 65000, router id 10.1.0.1, 12 routes");
        let row = out
            .lines()
            .find(|l| l.contains("169.254.10.2"))
            .expect("neighbor row");
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "169.254.10.2",
                "64512",
                "Established",
                "1d01h01m",
                "10",
                "2"
            ]
        );
        // The IPv6 neighbor's columns continue on the next line.
        let i = out
            .lines()
            .position(|l| l.trim() == "fd00:1234:5678:9abc:def0:1234:5678:9abc")
            .expect("IPv6 address on its own line");
        let next: Vec<&str> = out.lines().nth(i + 1).unwrap().split_whitespace().collect();
        assert_eq!(next, ["4200000000", "Active", "-", "0", "0"]);
        has("    last error: hold timer expired");
    }

    #[test]
    fn without_ike_or_bgp_sections_nothing_is_invented() {
        let mut st = sample();
        st.as_object_mut().unwrap().remove("ike");
        st.as_object_mut().unwrap().remove("bgp");
        let out = render(&st);
        assert!(!out.contains("ike:") && !out.contains("bgp:"), "{out}");
        assert!(out.contains("tunnel gcp-tunnel-with-a-long-name (bh-gcp-tunnel0): up"));
    }

    #[test]
    fn durations() {
        assert_eq!(duration(42), "42s");
        assert_eq!(duration(307), "5m07s");
        assert_eq!(duration(3723), "1h02m03s");
        assert_eq!(duration(273_900), "3d04h05m");
    }
}
