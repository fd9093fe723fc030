//! Prometheus metrics: the daemon's status JSON rendered in the text exposition format 0.0.4,
//! served over HTTP on a local address (`bridgehead daemon --metrics 127.0.0.1:9474`).
//!
//! [`render`] turns the `status` JSON (tunnels, socket counters, `ike` and `bgp` sections) into
//! metric families, each with `# HELP` and `# TYPE`: per tunnel bytes and packets in and out,
//! drops by reason and whether its SAs are up; the socket's counters; the IKE SA count; per BGP
//! neighbor its state, prefixes received and sent and messages each way. Label values are
//! escaped (`\\`, `\"`, `\n`).
//!
//! [`serve`] answers on one thread, one connection at a time: a request is read up to
//! [`MAX_REQUEST`] bytes with a 2 s timeout, only `GET /metrics` gets the metrics, anything else
//! a 404 (or 400 when it is not HTTP). It does NOT do TLS, authentication, keep-alive or
//! compression: bind it to loopback or a management address.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// The longest request head read, in bytes; a longer one gets a 400.
pub const MAX_REQUEST: usize = 4096;

/// Read and write timeout per connection.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One metric family being built.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Vec<(String, f64)>,
}

/// The families in output order.
#[derive(Default)]
struct Families(Vec<Family>);

impl Families {
    /// Adds a sample to family `name` (created on first use); a non-numeric `v` is skipped.
    fn add(
        &mut self,
        name: &'static str,
        kind: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        v: &Value,
    ) {
        let value = match v {
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            other => other.as_f64(),
        };
        let idx = match self.0.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                self.0.push(Family {
                    name,
                    help,
                    kind,
                    samples: Vec::new(),
                });
                self.0.len() - 1
            }
        };
        let (Some(value), Some(f)) = (value, self.0.get_mut(idx)) else {
            return;
        };
        let mut l = String::new();
        for (i, (k, v)) in labels.iter().enumerate() {
            let _ = write!(l, "{}{k}=\"{}\"", if i == 0 { "" } else { "," }, escape(v));
        }
        f.samples.push((l, value));
    }

    fn text(&self) -> String {
        let mut s = String::new();
        for f in &self.0 {
            let _ = writeln!(s, "# HELP {} {}", f.name, f.help);
            let _ = writeln!(s, "# TYPE {} {}", f.name, f.kind);
            for (labels, v) in &f.samples {
                if labels.is_empty() {
                    let _ = writeln!(s, "{} {v}", f.name);
                } else {
                    let _ = writeln!(s, "{}{{{labels}}} {v}", f.name);
                }
            }
        }
        s
    }
}

/// Escapes a label value (exposition format 0.0.4: backslash, double quote, line feed).
pub fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

const BGP_STATES: [&str; 6] = [
    "Idle",
    "Connect",
    "Active",
    "OpenSent",
    "OpenConfirm",
    "Established",
];

/// Renders the daemon's `status` JSON as Prometheus text (format 0.0.4).
pub fn render(st: &Value) -> String {
    let mut m = Families::default();
    let empty = Vec::new();
    for t in st["tunnels"].as_array().unwrap_or(&empty) {
        let name = t["name"].as_str().unwrap_or("?");
        m.add(
            "bridgehead_tunnel_up",
            "gauge",
            "1 when the tunnel has SAs installed (up), 0 when down.",
            &[("tunnel", name)],
            &Value::Bool(t["state"].as_str() == Some("up")),
        );
        for (dir, sa) in [("in", &t["inbound"]), ("out", &t["outbound"])] {
            m.add(
                "bridgehead_tunnel_bytes_total",
                "counter",
                "ESP payload bytes through the tunnel's SA in use, per direction.",
                &[("tunnel", name), ("direction", dir)],
                &sa["bytes"],
            );
            m.add(
                "bridgehead_tunnel_packets_total",
                "counter",
                "ESP packets through the tunnel's SA in use, per direction.",
                &[("tunnel", name), ("direction", dir)],
                &sa["packets"],
            );
        }
        let drops = [
            ("replay", &t["inbound"]["drops"]["replay"]),
            ("icv", &t["inbound"]["drops"]["icv"]),
            ("malformed", &t["inbound"]["drops"]["malformed"]),
            ("dummy", &t["inbound"]["drops"]["dummy"]),
            ("seq_exhausted", &t["outbound"]["drops"]["exhausted"]),
            ("no_sa", &t["tun"]["no_sa"]),
            ("invalid", &t["tun"]["invalid"]),
            ("oversize", &t["tun"]["oversize_dropped"]),
            ("send_error", &t["tun"]["send_errors"]),
            ("tun_write_error", &t["tun"]["write_errors"]),
        ];
        for (reason, v) in drops {
            m.add(
                "bridgehead_tunnel_drops_total",
                "counter",
                "Packets the tunnel dropped, by reason.",
                &[("tunnel", name), ("reason", reason)],
                v,
            );
        }
        for (what, key) in [
            ("fragmented", "fragmented"),
            ("icmp_too_big", "icmp_too_big"),
            ("mss_clamped", "mss_clamped"),
            ("keepalive_sent", "keepalives_sent"),
        ] {
            m.add(
                "bridgehead_tunnel_events_total",
                "counter",
                "Packets the tunnel fragmented, answered with ICMP too-big, MSS-clamped, and NAT-T keepalives sent.",
                &[("tunnel", name), ("event", what)],
                &t["tun"][key],
            );
        }
    }
    let k = &st["socket"];
    m.add(
        "bridgehead_socket_datagrams_total",
        "counter",
        "Datagrams received on the ESP socket.",
        &[],
        &k["rx_datagrams"],
    );
    if let Some(per_worker) = k["per_worker"].as_array() {
        for (w, v) in per_worker.iter().enumerate() {
            m.add(
                "bridgehead_worker_datagrams_total",
                "counter",
                "Datagrams received by each worker's ESP socket (ESP is steered by SPI).",
                &[("worker", &w.to_string())],
                v,
            );
        }
    }
    for (reason, key) in [
        ("malformed", "malformed"),
        ("truncated", "truncated"),
        ("unknown_spi", "unknown_spi"),
        ("ike_queue_full", "ike_dropped"),
    ] {
        m.add(
            "bridgehead_socket_drops_total",
            "counter",
            "Datagrams the ESP socket dropped, by reason.",
            &[("reason", reason)],
            &k[key],
        );
    }
    m.add(
        "bridgehead_socket_ike_total",
        "counter",
        "IKE messages received on the ESP socket (non-ESP marker) and passed to IKE.",
        &[],
        &k["ike"],
    );
    m.add(
        "bridgehead_socket_keepalives_total",
        "counter",
        "NAT-T keepalives received.",
        &[],
        &k["keepalives"],
    );
    let ike = &st["ike"];
    if ike.is_object() {
        m.add(
            "bridgehead_ike_sas",
            "gauge",
            "IKE SAs established.",
            &[],
            &ike["ike_sas"],
        );
        m.add(
            "bridgehead_ike_half_open",
            "gauge",
            "Half-open IKE SAs (IKE_SA_INIT answered, IKE_AUTH not yet).",
            &[],
            &ike["half_open"],
        );
        m.add(
            "bridgehead_ike_cookies_sent_total",
            "counter",
            "COOKIE notifications sent (RFC 7296 section 2.6).",
            &[],
            &ike["cookies_sent"],
        );
        for t in ike["tunnels"].as_array().unwrap_or(&empty) {
            let name = t["name"].as_str().unwrap_or("?");
            m.add(
                "bridgehead_ike_sa_up",
                "gauge",
                "1 when the tunnel's IKE SA is established.",
                &[("tunnel", name)],
                &Value::Bool(t["state"].as_str() == Some("established")),
            );
            m.add(
                "bridgehead_ike_child_sa_up",
                "gauge",
                "1 when the tunnel has a Child SA.",
                &[("tunnel", name)],
                &Value::Bool(t["child"].is_object()),
            );
        }
    }
    let bgp = &st["bgp"];
    if bgp.is_object() {
        m.add(
            "bridgehead_bgp_routes",
            "gauge",
            "Best routes in the BGP table.",
            &[],
            &bgp["routes_total"],
        );
        for n in bgp["neighbors"].as_array().unwrap_or(&empty) {
            let addr = n["address"].as_str().unwrap_or("?");
            let tunnel = n["tunnel"].as_str().unwrap_or("");
            let state = n["state"].as_str().unwrap_or("");
            for s in BGP_STATES {
                m.add(
                    "bridgehead_bgp_neighbor_state",
                    "gauge",
                    "1 for the neighbor's current BGP FSM state (RFC 4271 section 8), 0 for the others.",
                    &[("neighbor", addr), ("tunnel", tunnel), ("state", s)],
                    &Value::Bool(state == s),
                );
            }
            let l = [("neighbor", addr), ("tunnel", tunnel)];
            m.add(
                "bridgehead_bgp_neighbor_up",
                "gauge",
                "1 when the session is Established.",
                &l,
                &Value::Bool(state == "Established"),
            );
            m.add(
                "bridgehead_bgp_prefixes_received",
                "gauge",
                "Prefixes received from the neighbor.",
                &l,
                &n["prefixes_received"],
            );
            m.add(
                "bridgehead_bgp_prefixes_sent",
                "gauge",
                "Prefixes advertised to the neighbor.",
                &l,
                &n["prefixes_sent"],
            );
            m.add(
                "bridgehead_bgp_messages_received_total",
                "counter",
                "BGP messages received from the neighbor.",
                &l,
                &n["messages_received"],
            );
            m.add(
                "bridgehead_bgp_messages_sent_total",
                "counter",
                "BGP messages sent to the neighbor.",
                &l,
                &n["messages_sent"],
            );
        }
    }
    m.text()
}

/// Binds `addr` and serves `GET /metrics` on its own thread until the process exits; each
/// request renders `status()` with [`render`]. Returns the bound address (useful with port 0).
pub fn serve<F>(addr: SocketAddr, status: F) -> std::io::Result<SocketAddr>
where
    F: Fn() -> Value + Send + 'static,
{
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(conn) => handle(conn, &status),
                    // Out of descriptors or the like: back off instead of spinning.
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        })?;
    Ok(local)
}

/// Answers one connection.
fn handle<F: Fn() -> Value>(mut conn: TcpStream, status: &F) {
    let _ = conn.set_read_timeout(Some(TIMEOUT));
    let _ = conn.set_write_timeout(Some(TIMEOUT));
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut len = 0;
    let complete = loop {
        let Some(free) = buf.get_mut(len..) else {
            break false;
        };
        if free.is_empty() {
            break false;
        }
        match conn.read(free) {
            Ok(0) | Err(_) => break false,
            Ok(n) => len += n,
        }
        let head = buf.get(..len).unwrap_or(&[]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break true;
        }
    };
    let head = buf.get(..len).unwrap_or(&[]);
    let line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let (method, path, version) = (words.next(), words.next(), words.next());
    let reply = match (complete, method, path, version) {
        (true, Some("GET"), Some(p), Some(v)) if v.starts_with("HTTP/") => {
            if p == "/metrics" || p.starts_with("/metrics?") {
                response("200 OK", CONTENT_TYPE, &render(&status()))
            } else {
                response("404 Not Found", "text/plain", "only /metrics is served\n")
            }
        }
        (true, Some(_), Some(_), Some(v)) if v.starts_with("HTTP/") => response(
            "404 Not Found",
            "text/plain",
            "only GET /metrics is served\n",
        ),
        _ => response("400 Bad Request", "text/plain", "bad request\n"),
    };
    let _ = conn.write_all(reply.as_bytes());
    let _ = conn.flush();
}

fn response(status: &str, ctype: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "tunnels": [
                { "name": "aws0", "state": "up",
                  "outbound": { "packets": 10, "bytes": 1500, "drops": { "exhausted": 0 } },
                  "inbound": { "packets": 7, "bytes": 700,
                               "drops": { "replay": 2, "icv": 1, "malformed": 0, "dummy": 0 } },
                  "tun": { "rx_packets": 10, "no_sa": 3, "invalid": 0, "oversize_dropped": 0,
                           "send_errors": 0, "write_errors": 0, "fragmented": 4,
                           "icmp_too_big": 0, "mss_clamped": 5, "keepalives_sent": 6 } },
                { "name": "we\"ird\\na\nme", "state": "down", "tun": { "rx_packets": 1, "no_sa": 9 } },
            ],
            "socket": { "rx_datagrams": 100, "per_worker": [40, 60], "malformed": 1, "truncated": 0, "unknown_spi": 2,
                        "ike": 5, "ike_dropped": 0, "keepalives": 1 },
            "ike": { "ike_sas": 1, "half_open": 0, "cookies_sent": 0, "tunnels": [
                { "name": "aws0", "state": "established", "child": { "suite": "aes256gcm16" } } ] },
            "bgp": { "routes_total": 3, "neighbors": [
                { "address": "169.254.21.1", "tunnel": "aws0", "state": "Established",
                  "prefixes_received": 3, "prefixes_sent": 2, "messages_received": 40,
                  "messages_sent": 41 } ] },
        })
    }

    /// Checks every line: comments are HELP/TYPE, samples parse as `name{labels} value`, and
    /// every sample's family has HELP and TYPE before it. Returns the samples.
    fn parse(text: &str) -> Vec<(String, String, f64)> {
        let mut helped = std::collections::HashSet::new();
        let mut typed = std::collections::HashSet::new();
        let mut out = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                helped.insert(rest.split(' ').next().unwrap().to_owned());
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(["counter", "gauge"].contains(&kind), "{line}");
                typed.insert(name.to_owned());
                continue;
            }
            assert!(!line.starts_with('#'), "unexpected comment {line:?}");
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("value of {line:?}"));
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.strip_suffix('}').expect("closing brace")),
                None => (series, ""),
            };
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "{line}"
            );
            // Labels: name="value" pairs, values with only escaped quotes inside.
            let mut rest = labels;
            while !rest.is_empty() {
                let (k, r) = rest.split_once("=\"").expect("label =\"");
                assert!(
                    k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{line}"
                );
                let mut chars = r.char_indices();
                let end = loop {
                    match chars.next().expect("unterminated label value") {
                        (_, '\\') => {
                            let (_, e) = chars.next().unwrap();
                            assert!(['\\', '"', 'n'].contains(&e), "bad escape in {line}");
                        }
                        (_, '\n') => panic!("raw newline"),
                        (i, '"') => break i,
                        _ => {}
                    }
                };
                rest = &r[end + 1..];
                rest = rest.strip_prefix(',').unwrap_or(rest);
            }
            assert!(
                helped.contains(name) && typed.contains(name),
                "no HELP/TYPE for {name}"
            );
            out.push((name.to_owned(), labels.to_owned(), value));
        }
        out
    }

    fn find(samples: &[(String, String, f64)], name: &str, labels: &str) -> Option<f64> {
        samples
            .iter()
            .find(|(n, l, _)| n == name && l == labels)
            .map(|s| s.2)
    }

    #[test]
    fn renders_every_family_in_exposition_format() {
        let text = render(&sample());
        let s = parse(&text);
        let get =
            |n: &str, l: &str| find(&s, n, l).unwrap_or_else(|| panic!("{n}{{{l}}} in\n{text}"));
        assert_eq!(
            get(
                "bridgehead_tunnel_bytes_total",
                r#"tunnel="aws0",direction="in""#
            ),
            700.0
        );
        assert_eq!(
            get(
                "bridgehead_tunnel_bytes_total",
                r#"tunnel="aws0",direction="out""#
            ),
            1500.0
        );
        assert_eq!(
            get(
                "bridgehead_tunnel_packets_total",
                r#"tunnel="aws0",direction="out""#
            ),
            10.0
        );
        assert_eq!(
            get(
                "bridgehead_tunnel_drops_total",
                r#"tunnel="aws0",reason="replay""#
            ),
            2.0
        );
        assert_eq!(get("bridgehead_tunnel_up", r#"tunnel="aws0""#), 1.0);
        assert_eq!(
            get("bridgehead_socket_drops_total", r#"reason="unknown_spi""#),
            2.0
        );
        assert_eq!(get("bridgehead_socket_datagrams_total", ""), 100.0);
        assert_eq!(
            get("bridgehead_worker_datagrams_total", r#"worker="1""#),
            60.0
        );
        assert_eq!(get("bridgehead_ike_sas", ""), 1.0);
        assert_eq!(get("bridgehead_ike_sa_up", r#"tunnel="aws0""#), 1.0);
        let n = r#"neighbor="169.254.21.1",tunnel="aws0""#;
        assert_eq!(get("bridgehead_bgp_prefixes_received", n), 3.0);
        assert_eq!(get("bridgehead_bgp_prefixes_sent", n), 2.0);
        assert_eq!(get("bridgehead_bgp_neighbor_up", n), 1.0);
        assert_eq!(
            get(
                "bridgehead_bgp_neighbor_state",
                &format!("{n},state=\"Established\"")
            ),
            1.0
        );
        assert_eq!(
            get(
                "bridgehead_bgp_neighbor_state",
                &format!("{n},state=\"Idle\"")
            ),
            0.0
        );
        // The down tunnel with a hostile name: escaped, down, its no_sa drops counted, and no
        // bytes sample for the SAs it does not have.
        let weird = r#"tunnel="we\"ird\\na\nme""#;
        assert_eq!(get("bridgehead_tunnel_up", weird), 0.0);
        assert_eq!(
            get(
                "bridgehead_tunnel_drops_total",
                &format!("{weird},reason=\"no_sa\"")
            ),
            9.0
        );
        assert!(
            find(
                &s,
                "bridgehead_tunnel_bytes_total",
                &format!("{weird},direction=\"in\"")
            )
            .is_none()
        );
        // Each family's HELP and TYPE appear once.
        assert_eq!(
            text.matches("# TYPE bridgehead_tunnel_drops_total ")
                .count(),
            1
        );
    }

    #[test]
    fn without_ike_and_bgp_only_dataplane_families() {
        let text = render(&json!({ "tunnels": [], "socket": { "rx_datagrams": 0 } }));
        parse(&text);
        assert!(!text.contains("bridgehead_bgp_"));
        assert!(!text.contains("bridgehead_ike_"));
        assert!(text.contains("bridgehead_socket_datagrams_total 0"));
    }

    fn get(addr: SocketAddr, req: &[u8]) -> String {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(req).unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn http_serves_only_get_metrics() {
        let addr = serve("127.0.0.1:0".parse().unwrap(), sample).unwrap();
        let ok = get(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("Content-Type: text/plain; version=0.0.4"));
        let (head, body) = ok.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert_eq!(body, render(&sample()));
        parse(body);
        let nf = get(addr, b"GET / HTTP/1.1\r\n\r\n");
        assert!(nf.starts_with("HTTP/1.1 404 "), "{nf}");
        let post = get(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert!(post.starts_with("HTTP/1.1 404 "), "{post}");
        // A request head past the bound is refused without waiting for its end.
        let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_REQUEST, b'a');
        let bad = get(addr, &big);
        assert!(bad.starts_with("HTTP/1.1 400 "), "{bad}");
        // A client that sends nothing is dropped after the timeout; the next one is served.
        let idle = TcpStream::connect(addr).unwrap();
        let ok = get(addr, b"GET /metrics HTTP/1.0\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK"));
        drop(idle);
    }
}
