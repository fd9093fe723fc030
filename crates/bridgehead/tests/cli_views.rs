//! `bridgehead bgp`, `bridgehead routes` and `bridgehead status --json` end to end over a
//! control socket: a stand-in daemon in this process answers the requests the way the real
//! one does (the `bgp` and `routes` replies cut out of the BGP service's JSON by
//! `bridgehead::views`), and the real binary is run against it.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bgp_status() -> Value {
    json!({
        "asn": 65010, "router_id": "192.0.2.1", "table": 254, "metric": 20,
        "neighbors": [
            { "address": "169.254.10.1", "asn": 64512, "tunnel": "aws0", "state": "Established",
              "uptime_secs": 3725, "prefixes_received": 2, "prefixes_sent": 1,
              "messages_received": 77, "messages_sent": 78, "last_error": null },
            { "address": "169.254.21.1", "asn": 65515, "tunnel": "azure0", "state": "Connect",
              "uptime_secs": null, "prefixes_received": 0, "prefixes_sent": 0,
              "messages_received": 0, "messages_sent": 3,
              "last_error": "connect: No route to host (os error 113)" },
        ],
        "routes_total": 2,
        "routes": [
            { "prefix": "172.16.0.0/16", "installed": true,
              "next_hops": [ { "address": "169.254.10.1", "neighbor": "aws0" } ] },
            { "prefix": "172.17.0.0/16", "installed": false,
              "next_hops": [ { "address": "169.254.10.1", "neighbor": "aws0" } ] },
        ],
        "fib": { "replaced": 1, "deleted": 0, "conflicts": 0, "errors": 0 },
    })
}

/// A routes view as the BGP service answers it (`BgpService::routes_view`), `limit` honoured
/// the way the service does: prefixes past it are counted, not listed.
fn routes_view(limit: usize) -> Value {
    let all = [
        json!({ "prefix": "172.16.0.0/16", "installed": true, "ecmp": 2,
                "devices": ["bh-aws0", "bh-aws1"],
                "paths": [
                    { "neighbor": "169.254.10.1", "tunnel": "aws0", "next_hop": "169.254.10.1",
                      "as_path": "64512", "local_pref": null, "med": 100, "best": true,
                      "stale": false },
                    { "neighbor": "169.254.11.1", "tunnel": "aws1", "next_hop": "169.254.11.1",
                      "as_path": "64512", "local_pref": null, "med": 100, "best": true,
                      "stale": false } ] }),
        json!({ "prefix": "172.17.0.0/16", "installed": false, "ecmp": 1, "devices": [],
                "paths": [
                    { "neighbor": "169.254.10.1", "tunnel": "aws0", "next_hop": "169.254.10.1",
                      "as_path": "64512 64512", "local_pref": null, "med": null, "best": true,
                      "stale": false } ] }),
    ];
    let shown: Vec<Value> = all.iter().take(limit).cloned().collect();
    json!({
        "configured": true, "asn": 65010, "router_id": "192.0.2.1", "table": 254,
        "limit": limit, "prefixes_total": all.len(), "prefixes_not_shown": all.len() - shown.len(),
        "prefixes": shown,
        "advertised": [
            { "neighbor": "169.254.10.1", "tunnel": "aws0", "state": "Established", "total": 1,
              "prefixes": ["10.0.1.0/24"], "not_shown": 0 },
            { "neighbor": "169.254.21.1", "tunnel": "azure0", "state": "Connect", "total": 0,
              "prefixes": [], "not_shown": 0 },
        ],
        "fib": { "replaced": 1, "deleted": 0, "conflicts": 0, "errors": 0 },
    })
}

/// Serves the control socket at a fresh path like the daemon does; returns its scratch dir.
fn fake_daemon(tag: &str) -> (Scratch, PathBuf) {
    let dir =
        Scratch(std::env::temp_dir().join(format!("bh-cli-views-{tag}-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let sock = dir.0.join("control.sock");
    let listener = bridgehead::control::bind(&sock).unwrap();
    bridgehead::control::serve(listener, sock.clone(), |req| match req {
        "status" => json!({ "tunnels": [], "socket": {}, "bgp": bgp_status() }).to_string(),
        "bgp" => bridgehead::views::bgp_json(&bgp_status()).to_string(),
        other => match bridgehead::views::routes_request(other) {
            Some(limit) => routes_view(limit).to_string(),
            None => json!({ "error": format!("unknown request {other:?}") }).to_string(),
        },
    })
    .unwrap();
    (dir, sock)
}

fn bridgehead(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bridgehead"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_80(text: &str) {
    for line in text.lines() {
        assert!(line.chars().count() <= 80, "over 80 columns: {line:?}");
    }
}

#[test]
fn bgp_command_prints_the_neighbor_table_and_json() {
    let (_dir, sock) = fake_daemon("bgp");
    let sock = sock.to_str().unwrap();
    let (ok, out, err) = bridgehead(&["bgp", "--control", sock]);
    assert!(ok, "{err}");
    assert_80(&out);
    let row: Vec<_> = out
        .lines()
        .find(|l| l.starts_with("169.254.10.1"))
        .unwrap_or_else(|| panic!("{out}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        row,
        [
            "169.254.10.1",
            "64512",
            "Established",
            "01:02:05",
            "2",
            "1",
            "77",
            "78"
        ]
    );
    let row: Vec<_> = out
        .lines()
        .find(|l| l.starts_with("169.254.21.1"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        row,
        [
            "169.254.21.1",
            "65515",
            "Connect",
            "never",
            "0",
            "0",
            "0",
            "3"
        ]
    );
    assert!(out.contains("No route to host"), "{out}");

    let (ok, out, err) = bridgehead(&["bgp", "--json", "--control", sock]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["asn"], 65010);
    assert_eq!(v["neighbors"][1]["state"], "Connect");
}

#[test]
fn routes_command_prints_prefixes_paths_kernel_and_advertised() {
    let (_dir, sock) = fake_daemon("routes");
    let sock = sock.to_str().unwrap();
    let (ok, out, err) = bridgehead(&["routes", "--control", sock]);
    assert!(ok, "{err}");
    assert_80(&out);
    assert!(
        out.starts_with("Local AS 65010, table 254: 2 prefix(es), 2 shown, 1 in the kernel"),
        "{out}"
    );
    let head = out
        .lines()
        .find(|l| l.starts_with("* 172.16.0.0/16"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        head.contains("via bh-aws0, bh-aws1") && head.contains("(ECMP 2)"),
        "{head}"
    );
    assert!(
        out.lines().any(|l| l.starts_with(
            "    > 169.254.11.1 (aws1): next hop 169.254.11.1, AS path 64512, MED 100"
        )),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("  172.17.0.0/16")),
        "not installed: {out}"
    );
    let adv = out.split("Advertised:").nth(1).unwrap();
    assert!(
        adv.contains("169.254.10.1 (aws0), Established: 1 prefix(es)"),
        "{adv}"
    );
    assert!(adv.contains("10.0.1.0/24"), "{adv}");

    // --limit reaches the daemon; the rest is counted.
    let (ok, out, err) = bridgehead(&["routes", "--limit", "1", "--control", sock]);
    assert!(ok, "{err}");
    assert!(!out.contains("172.17.0.0/16"), "{out}");
    assert!(out.contains("1 more prefix(es) not shown"), "{out}");
    let (ok, _, err) = bridgehead(&["routes", "--limit", "0", "--control", sock]);
    assert!(!ok && err.contains("--limit"), "{err}");

    let (ok, out, err) = bridgehead(&["routes", "--json", "--control", sock]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["prefixes"][0]["installed"], true);
    assert_eq!(v["prefixes"][0]["paths"][1]["best"], true);
    assert_eq!(v["advertised"][0]["prefixes"][0], "10.0.1.0/24");
    assert_eq!(v["limit"], 100);
}

#[test]
fn status_json_passes_the_reply_through() {
    let (_dir, sock) = fake_daemon("status");
    let (ok, out, err) = bridgehead(&["status", "--json", "--control", sock.to_str().unwrap()]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["bgp"]["neighbors"][0]["address"], "169.254.10.1");
}

#[test]
fn without_a_daemon_the_commands_fail_with_a_hint() {
    let (ok, _, err) = bridgehead(&["bgp", "--control", "/nonexistent/bh-cli-views.sock"]);
    assert!(!ok);
    assert!(err.contains("is the daemon running?"), "{err}");
}

#[test]
fn daemon_takes_a_metrics_address() {
    let (ok, out, err) = bridgehead(&["daemon", "--help"]);
    assert!(ok, "{err}");
    assert!(out.contains("--metrics <ADDR>"), "{out}");
    let (ok, _, err) = bridgehead(&["daemon", "--metrics", "not-an-address"]);
    assert!(!ok);
    assert!(err.contains("--metrics"), "{err}");
}

/// Fetches `url` from inside namespace `ns` with curl; returns the HTTP status and the body.
fn http_get_in(lab: &bridgehead::lab::Lab, ns: &str, url: &str) -> (String, String) {
    let out = lab
        .ns
        .exec(ns, "curl")
        .args(["-s", "-m", "5", "-w", "\n%{http_code}", url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.to_owned(), body.to_owned())
}

/// A real daemon with `--metrics`: the counters of a tunnel that carried pings show up in
/// Prometheus format, and the CLI's `bgp` / `routes` say BGP is not configured there.
#[test]
fn daemon_serves_metrics_of_a_live_tunnel() {
    use bridgehead::lab::{Host, Lab, LabOptions, addr, is_root};
    assert!(
        is_root(),
        "this test builds network namespaces and must run as root (CI does)"
    );
    let mut opts = LabOptions::new(&format!("bhcv{}", std::process::id())).unwrap();
    opts.binary = env!("CARGO_BIN_EXE_bridgehead").into();
    opts.workers = 1;
    opts.daemon_args = vec!["--metrics".into(), "127.0.0.1:9474".into()];
    let mut lab = Lab::build(opts).expect("lab topology");
    lab.start_daemons().expect("daemons start");
    assert_eq!(lab.ping(Host::LanA, addr::LANB, 3, 200).unwrap(), 3);

    let gwa = lab.name(Host::GwA);
    let (code, body) = http_get_in(&lab, &gwa, "http://127.0.0.1:9474/metrics");
    assert_eq!(code, "200", "{body}\n{}", lab.log(Host::GwA));
    let sample = |name: &str| -> f64 {
        body.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit_once(' '))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{body}"))
    };
    assert_eq!(
        sample(r#"bridgehead_tunnel_up{tunnel="lab"}"#),
        1.0,
        "{body}"
    );
    for dir in ["in", "out"] {
        let p = sample(&format!(
            r#"bridgehead_tunnel_packets_total{{tunnel="lab",direction="{dir}"}}"#
        ));
        assert!(p >= 3.0, "{dir}: {p}\n{body}");
        let b = sample(&format!(
            r#"bridgehead_tunnel_bytes_total{{tunnel="lab",direction="{dir}"}}"#
        ));
        assert!(b >= 3.0 * 200.0, "{dir}: {b}\n{body}");
    }
    assert!(body.contains("# TYPE bridgehead_tunnel_drops_total counter"));
    assert!(sample("bridgehead_socket_datagrams_total") >= 3.0);
    let (code, _) = http_get_in(&lab, &gwa, "http://127.0.0.1:9474/");
    assert_eq!(code, "404");

    let control = lab.control(Host::GwA);
    let (ok, out, err) = bridgehead(&["bgp", "--control", control.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(out, "BGP is not configured\n");
    let (ok, out, err) = bridgehead(&["status", "--json", "--control", control.to_str().unwrap()]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["tunnels"][0]["state"], "up");
}
