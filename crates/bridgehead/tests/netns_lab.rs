//! The three-cloud lab (`bridgehead lab`), run through its library entry point
//! ([`bridgehead::lab::clouds`]) in network namespaces: the appliance behind 1:1 NAT, AWS's two
//! tunnel endpoints, Azure's two active-active instances, GCP's VPN gateway and Cloud Router,
//! all played by bridgehead with each cloud's proposals.
//!
//! It checks what a user of the lab checks: every tunnel of the appliance up with the algorithms
//! the cloud's preset and the cloud's own proposals agree on, every BGP session Established (the
//! appliance opened Azure's, as Azure never opens towards an APIPA peer), each cloud's LAN in
//! the appliance's kernel with protocol 248 over the right tunnels, pings between every pair of
//! LANs both ways, and nothing left behind. Needs root (CI runs it as root).

use std::time::Duration;

use bridgehead::lab::clouds::{CloudLab, CloudLabOptions, LANS, TUNNELS};
use bridgehead::lab::is_root;

fn start() -> CloudLab {
    assert!(
        is_root(),
        "this test builds network namespaces and must run as root (CI does)"
    );
    let mut opts = CloudLabOptions::new(&format!("bhlt{}", std::process::id())).unwrap();
    opts.binary = env!("CARGO_BIN_EXE_bridgehead").into();
    // The lab converges in about a second here; CI shares two cores among all tests.
    opts.converge = Duration::from_secs(90);
    let mut lab = CloudLab::build(opts).expect("lab topology");
    lab.start_daemons().expect("daemons");
    if let Err(e) = lab.wait_converged() {
        panic!(
            "{e:#}\n--- appliance log:\n{}\n--- appliance views:{}",
            lab.log("appl"),
            lab.views().unwrap_or_default()
        );
    }
    lab
}

#[test]
fn three_clouds_route_to_each_other_through_the_appliance() {
    let lab = start();
    let prefix = lab.opts.prefix.clone();

    // Tunnels: all five up, the appliance initiated each through the NAT, and the Child SA
    // is what the cloud's preset and the cloud's proposals have in common (AES-GCM-256 first
    // for AWS and Azure, GCP's order puts AES-GCM-128 first).
    let st = lab.request("appl", "status").unwrap();
    for plan in TUNNELS {
        let t = st["tunnels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == plan.name)
            .unwrap_or_else(|| panic!("tunnel {} missing: {st:#}", plan.name));
        assert_eq!(t["state"], "up", "{}: {t:#}", plan.name);
        let ike = st["ike"]["tunnels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == plan.name)
            .unwrap();
        assert_eq!(ike["state"], "established", "{}: {ike:#}", plan.name);
        assert_eq!(ike["role"], "initiator", "{}", plan.name);
        assert_eq!(
            ike["nat"], true,
            "{}: the appliance is behind NAT",
            plan.name
        );
        let want = if plan.name == "gcp0" {
            "aes128gcm16"
        } else {
            "aes256gcm16"
        };
        assert_eq!(ike["child"]["suite"], want, "{}: {ike:#}", plan.name);
        assert_eq!(ike["child"]["udp_encap"], true, "{}", plan.name);
    }

    // BGP: five sessions Established, each neighbor sent its cloud's one prefix.
    let bgp = lab.request("appl", "bgp").unwrap();
    for plan in TUNNELS {
        let n = bgp["neighbors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["address"] == plan.cloud_inside().as_str())
            .unwrap_or_else(|| panic!("neighbor of {} missing: {bgp:#}", plan.name));
        assert_eq!(n["state"], "Established", "{}: {n:#}", plan.name);
        assert_eq!(n["asn"], plan.asn, "{}", plan.name);
        assert_eq!(n["prefixes_received"], 1, "{}: {n:#}", plan.name);
    }
    // Azure never opens a session towards an APIPA peer: on both instances the session's
    // TCP connection is one they accepted on port 179.
    for (gw, local) in [("az0", "169.254.21.1:179"), ("az1", "169.254.22.1:179")] {
        let out = lab
            .ns
            .exec(&lab.name(gw), "ss")
            .args(["-Htn", "state", "established"])
            .output()
            .unwrap();
        let ss = String::from_utf8_lossy(&out.stdout);
        // The listener is dual-stack: IPv4 shows as [::ffff:a.b.c.d]:port.
        let unmapped = |a: &str| a.replace("[::ffff:", "").replace(']', "");
        assert!(
            ss.lines()
                .any(|l| l.split_whitespace().nth(2).map(unmapped).as_deref() == Some(local)),
            "{gw}: the BGP session is not one Azure accepted on {local}:\n{ss}"
        );
    }

    // The kernel: each LAN prefix with protocol 248, over the tunnels to its cloud (ECMP over
    // AWS's two tunnels and Azure's two instances).
    let routes = lab.kernel_routes("appl").unwrap();
    for (prefix, devices) in [
        ("172.16.0.0/16", &["bh-aws1", "bh-aws2"][..]),
        ("192.168.0.0/16", &["bh-azure0", "bh-azure1"][..]),
        ("10.0.1.0/24", &["bh-gcp0"][..]),
    ] {
        let text = lab
            .ns
            .ip(
                &lab.name("appl"),
                &["-4", "route", "show", "proto", "248", prefix],
            )
            .unwrap();
        assert!(
            text.starts_with(prefix),
            "{prefix} not installed with proto 248:\n{routes}"
        );
        for dev in devices {
            assert!(
                text.contains(&format!("dev {dev} ")),
                "{prefix} does not leave through {dev}:\n{text}"
            );
        }
    }

    // Pings between every pair of LANs, both ways.
    let pings = lab.ping_matrix(3);
    assert_eq!(pings.len(), LANS.len() * (LANS.len() - 1));
    let failed: Vec<String> = pings
        .iter()
        .filter(|p| p.received == 0)
        .map(|p| format!("{} -> {}", p.from.addr, p.to.addr))
        .collect();
    assert!(
        failed.is_empty(),
        "no replies: {failed:?}\n{}",
        lab.views().unwrap_or_default()
    );

    // Clean-up: no namespace of the run is left.
    drop(lab);
    let left = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(
        !left.lines().any(|l| l.starts_with(&format!("{prefix}-"))),
        "namespaces left behind:\n{left}"
    );
}
