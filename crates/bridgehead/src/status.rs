//! Text rendering of the daemon's status JSON, readable in 80 columns.

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
        let _ = writeln!(
            s,
            "tunnel {} ({}): {}, {} keys, peer {} ({}), mtu {}",
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
            "  in  spi {}  {:>12} pkts {:>15} bytes",
            i["spi"].as_str().unwrap_or("?"),
            i["packets"],
            i["bytes"]
        );
        let d = &i["drops"];
        let _ = writeln!(
            s,
            "  in drops: replay {}, icv {}, malformed {}",
            d["replay"], d["icv"], d["malformed"]
        );
        let u = &t["tun"];
        let _ = writeln!(
            s,
            "  tun: fragmented {}, icmp too-big {}, mss clamped {}, no-sa {}, send errors {}",
            u["fragmented"], u["icmp_too_big"], u["mss_clamped"], u["no_sa"], u["send_errors"]
        );
    }
    let k = &st["socket"];
    let _ = writeln!(
        s,
        "socket: {} datagrams; malformed {}, truncated {}, unknown spi {}, ike {}, keepalives {}",
        k["rx_datagrams"],
        k["malformed"],
        k["truncated"],
        k["unknown_spi"],
        k["ike"],
        k["keepalives"]
    );
    s
}
