//! Configuration reload in network namespaces, against real peers: strongSwan (charon with
//! kernel-libipsec) at the far end of each IKE tunnel, FRR and BIRD peering over two of them.
//!
//! ```text
//!   p1: charon + FRR  (169.254.10.1 on ipsec0) ─┐
//!   p2: charon + BIRD (169.254.11.1 on ipsec0) ─┼─ br0 172.31.0.0/24 ── us: bridgehead
//!   p3: charon        (169.254.12.1 on ipsec0) ─┘
//! ```
//!
//! What a user would check after `bridgehead reload`: the untouched tunnel kept its IKE SA
//! and Child SA (same SPIs on both ends, no Child SA came down), the untouched BGP session
//! never dropped (FRR counts one connection established and none dropped), the tunnel whose
//! PSK changed at both ends came back under new SPIs, the added tunnel carries traffic, the
//! removed neighbor was told Cease/Peer De-configured (BIRD says so), the added prefix reached
//! FRR. And a broken file changes nothing and every error comes back with file:line. Run as
//! root (CI does); the test builds and removes its own namespaces.

mod common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bridgehead::netns::Namespaces;
use bridgehead::peers::bgpd::{Bgpd, BgpdConfig, Kind, Neighbor, wait_for};
use bridgehead::peers::strongswan::{Charon, IkeSaInfo, Profile, StartAction, SwanConn};
use serde_json::Value;

const US_AS: u32 = 65010;
const FRR_AS: u32 = 64512;
const BIRD_AS: u32 = 64513;

/// PSKs in the alphabet every cloud accepts.
const PSK1: &str = "bh_Reload.Key1_0123456789abcdef";
const PSK2: &str = "bh_Reload.Key2_0123456789abcdef";
const PSK2_NEW: &str = "bh_Reload.Key2_changed_98765432";
const PSK3: &str = "bh_Reload.Key3_0123456789abcdef";

const IKE: &str = "aes256gcm16-prfsha256-ecp256";
const ESP: &str = "aes256gcm16";

/// One far end: its namespace, outer address, inside /30 (ours is .2, theirs .1) and PSK.
struct Peer {
    ns: String,
    outer: String,
    inside_net: u8,
    psk: &'static str,
}

impl Peer {
    fn conn(&self, psk: &str) -> SwanConn {
        SwanConn {
            profile: Profile::single("reload", IKE, ESP),
            local_addr: self.outer.clone(),
            local_id: self.outer.clone(),
            remote_addr: "172.31.0.1".into(),
            remote_id: "172.31.0.1".into(),
            psk: psk.into(),
            start: StartAction::None,
            ts: ("0.0.0.0/0".into(), "0.0.0.0/0".into()),
        }
    }

    fn theirs(&self) -> String {
        format!("169.254.{}.1", self.inside_net)
    }

    fn ours(&self) -> String {
        format!("169.254.{}.2", self.inside_net)
    }
}

struct World {
    nss: Namespaces,
    dir: PathBuf,
    us: String,
    /// Our daemon's PID (for SIGHUP).
    us_pid: u32,
    peers: Vec<Peer>,
    charons: Vec<Charon>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.nss.teardown();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl World {
    /// The namespaces, the bridge, the three charons with their inside address on `ipsec0`.
    fn build() -> Self {
        let prefix = common::unique_prefix("bhrl");
        let dir = common::fresh_dir(&prefix);
        let mut w = Self {
            nss: Namespaces::new(),
            dir,
            us: format!("{prefix}-us"),
            us_pid: 0,
            peers: Vec::new(),
            charons: Vec::new(),
        };
        let us = w.us.clone();
        w.nss.add(&us).unwrap();
        w.nss
            .ip(&us, &["link", "add", "br0", "type", "bridge"])
            .unwrap();
        w.nss.ip(&us, &["link", "set", "br0", "up"]).unwrap();
        w.nss.addr(&us, "br0", "172.31.0.1/24").unwrap();
        for (i, psk) in [(1u8, PSK1), (2, PSK2), (3, PSK3)] {
            let ns = format!("{prefix}-p{i}");
            w.nss.add(&ns).unwrap();
            let port = format!("u{i}");
            w.nss.veth((&us, &port), (&ns, "e0")).unwrap();
            w.nss
                .ip(&us, &["link", "set", &port, "master", "br0"])
                .unwrap();
            let outer = format!("172.31.0.1{i}");
            w.nss.addr(&ns, "e0", &format!("{outer}/24")).unwrap();
            let peer = Peer {
                ns,
                outer,
                inside_net: 9 + i,
                psk,
            };
            let label = format!("charon-p{i}");
            let c = Charon::start(
                &mut w.nss,
                &peer.ns,
                &label,
                &w.dir.join(&label),
                &peer.conn(peer.psk),
                Duration::from_secs(10),
            )
            .expect("charon starts");
            // libipsec's ipsec0 carries everything for the tunnel; the inside /30 lives on it.
            wait_for(Duration::from_secs(10), "ipsec0", || {
                Ok(w.nss.ip(&peer.ns, &["link", "show", "ipsec0"]).is_ok())
            })
            .unwrap();
            w.nss
                .addr(&peer.ns, "ipsec0", &format!("{}/30", peer.theirs()))
                .unwrap();
            w.charons.push(c);
            w.peers.push(peer);
        }
        w
    }

    /// FRR in p1 (announcing 10.61.0.0/24) and BIRD in p2 (10.62.0.0/24), each peering with
    /// our inside address of its tunnel; FRR's directory for vtysh.
    fn bgp_peers(&mut self) -> (Bgpd, PathBuf, Bgpd) {
        let (p1_ns, p2_ns) = (self.peers[0].ns.clone(), self.peers[1].ns.clone());
        let frr_dir = self.dir.join("frr-p1");
        let frr = Bgpd::start(
            &mut self.nss,
            Kind::Frr,
            &p1_ns,
            &frr_dir,
            "frr-p1",
            &BgpdConfig {
                asn: FRR_AS,
                router_id: "172.31.0.11".parse().unwrap(),
                neighbors: vec![neighbor(&self.peers[0].ours(), US_AS)],
                announce: vec!["10.61.0.0/24".into()],
                kernel: false,
                graceful_restart: None,
            },
        )
        .unwrap();
        let bird = Bgpd::start(
            &mut self.nss,
            Kind::Bird,
            &p2_ns,
            &self.dir.join("bird-p2"),
            "bird-p2",
            &BgpdConfig {
                asn: BIRD_AS,
                router_id: "172.31.0.12".parse().unwrap(),
                neighbors: vec![neighbor(&self.peers[1].ours(), US_AS)],
                announce: vec!["10.62.0.0/24".into()],
                kernel: false,
                graceful_restart: None,
            },
        )
        .unwrap();
        (frr, frr_dir, bird)
    }

    /// Waits until our session with `addr` has been Established for 6 s, longer than one
    /// connect attempt may take (5 s), so the "before" picture is of a settled session.
    fn wait_settled(&self, addr: &str) -> Value {
        let mut last = Value::Null;
        wait_for(Duration::from_secs(60), "our session up for 6 s", || {
            last = our_neighbor(self, addr);
            Ok(last["state"] == "Established"
                && last["uptime_secs"].as_u64().is_some_and(|u| u >= 6))
        })
        .unwrap_or_else(|e| panic!("{addr}: {e:#}: {last:#}\n{}", self.log()));
        last
    }

    fn control(&self) -> PathBuf {
        self.dir.join("us.sock")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("us.toml")
    }

    /// Writes our configuration (mode 0600: it holds PSKs).
    fn write_config(&self, text: &str) {
        bridgehead::lab::write_secret(&self.config_path(), text).unwrap();
    }

    fn start_us(&mut self) {
        let log = std::fs::File::create(self.dir.join("us.log")).unwrap();
        let mut c = self.nss.exec(&self.us, env!("CARGO_BIN_EXE_bridgehead"));
        c.arg("daemon")
            .arg("-c")
            .arg(self.config_path())
            .arg("--control")
            .arg(self.control())
            .env("RUST_LOG", "info,bridgehead=debug")
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.us_pid = self.nss.spawn("us-bridgehead", c).unwrap();
        let sock = self.control();
        wait_for(
            Duration::from_secs(20),
            "bridgehead's control socket",
            || Ok(bridgehead::control::request(&sock, "status").is_ok()),
        )
        .unwrap_or_else(|e| panic!("{e:#}\n{}", self.log()));
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("us.log")).unwrap_or_default()
    }

    fn status(&self) -> Value {
        let text = bridgehead::control::request(&self.control(), "status").unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Our IKE status of tunnel `name`.
    fn ike(&self, name: &str) -> Value {
        let st = self.status();
        st["ike"]["tunnels"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Waits until our tunnel `name` has an installed Child SA; returns its IKE status.
    fn wait_child(&self, name: &str) -> Value {
        let mut last = Value::Null;
        let r = wait_for(Duration::from_secs(30), "our Child SA", || {
            last = self.ike(name);
            Ok(!last["child"].is_null())
        });
        r.unwrap_or_else(|e| panic!("{name}: {e:#}: {last:#}\n{}", self.log()));
        last
    }

    /// `bridgehead reload` as a user runs it: exit code, stdout, stderr.
    fn reload_cli(&self) -> (i32, String, String) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bridgehead"))
            .arg("reload")
            .arg("--control")
            .arg(self.control())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// charon's established IKE SA of peer `i` (0-based).
    fn swan_sa(&self, i: usize) -> IkeSaInfo {
        let sas = self.charons[i]
            .wait_sas(&self.nss, Duration::from_secs(30), |s| {
                s.iter().any(IkeSaInfo::is_up)
            })
            .unwrap();
        sas.into_iter().find(IkeSaInfo::is_up).unwrap()
    }

    /// Asserts that `dst` answers 3 pings from our namespace, retrying (bounded, 20 s) since a
    /// loaded machine may lose one.
    fn assert_pings(&self, dst: &str, what: &str) {
        let mut got = 0;
        let ok = wait_for(Duration::from_secs(20), what, || {
            got = self.ping(dst, 3);
            Ok(got == 3)
        });
        assert!(
            ok.is_ok(),
            "{what}: {got}/3 replies from {dst}\n{}",
            self.log()
        );
    }

    /// Pings `dst` from our namespace, `n` packets; returns the replies.
    fn ping(&self, dst: &str, n: u32) -> u32 {
        let out = self
            .nss
            .exec(&self.us, "ping")
            .args([
                "-n",
                "-q",
                "-c",
                &n.to_string(),
                "-i",
                "0.1",
                "-W",
                "5",
                dst,
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find(|l| l.contains("transmitted"))
            .and_then(|l| l.split(", ").nth(1))
            .and_then(|p| p.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

/// Our configuration: tunnels (name, peer index, PSK), neighbors (peer index, AS), networks.
fn config(
    tunnels: &[(&str, &Peer, &str)],
    neighbors: &[(&Peer, &str, u32)],
    advertise: &[&str],
) -> String {
    let mut s = String::from(
        "[appliance]\nprivate_ip = \"172.31.0.1\"\npublic_ip = \"172.31.0.1\"\n\n[dataplane]\nworkers = 2\n\n",
    );
    for (name, p, psk) in tunnels {
        s.push_str(&format!(
            "[[tunnel]]\nname = \"{name}\"\npeer = \"{}\"\ninside = [\"{}/30\"]\npsk = \"{psk}\"\n\n\
             [tunnel.ike]\nproposals = [\"{IKE}\"]\nesp_proposals = [\"{ESP}\"]\npfs = \"none\"\ninitiate = true\n\n",
            p.outer,
            p.ours()
        ));
    }
    let list = |v: &[&str]| {
        v.iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    s.push_str(&format!(
        "[bgp]\nasn = {US_AS}\nrouter_id = \"172.31.0.1\"\nadvertise = [{}]\n\n",
        list(advertise)
    ));
    for (p, tunnel, asn) in neighbors {
        s.push_str(&format!(
            "[[bgp.neighbor]]\naddress = \"{}\"\nasn = {asn}\ntunnel = \"{tunnel}\"\nhold_time = 30\n\n",
            p.theirs()
        ));
    }
    s
}

/// FRR's JSON about its neighbor `addr`.
fn frr_neighbor(w: &World, frr_ns: &str, frr_dir: &Path, addr: &str) -> Value {
    let out = w
        .nss
        .exec(frr_ns, "vtysh")
        .arg("--vty_socket")
        .arg(frr_dir)
        .args(["-c", &format!("show bgp neighbors {addr} json")])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v[addr].clone()
}

/// Our BGP status of neighbor `addr`.
fn our_neighbor(w: &World, addr: &str) -> Value {
    w.status()["bgp"]["neighbors"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["address"] == addr)
        .cloned()
        .unwrap_or(Value::Null)
}

fn neighbor(addr: &str, asn: u32) -> Neighbor {
    Neighbor {
        address: addr.parse::<IpAddr>().unwrap(),
        asn,
        hold_time: 30,
        passive: false,
        md5_password: None,
    }
}

/// One scenario, in order: start with t1 (FRR over it) and t2 (BIRD over it); a broken file
/// changes nothing; then change t2's PSK (at both ends), add t3, remove BIRD's neighbor and
/// announce one more prefix, in one reload.
#[test]
fn reload_applies_only_what_changed() {
    let mut w = World::build();
    let (frr, frr_dir, bird) = w.bgp_peers();
    let p1_ns = w.peers[0].ns.clone();
    let (p1, p2, p3) = (&w.peers[0], &w.peers[1], &w.peers[2]);
    let v1 = config(
        &[("t1", p1, PSK1), ("t2", p2, PSK2)],
        &[(p1, "t1", FRR_AS), (p2, "t2", BIRD_AS)],
        &["10.70.0.0/24"],
    );
    let v2 = config(
        &[("t1", p1, PSK1), ("t2", p2, PSK2_NEW), ("t3", p3, PSK3)],
        &[(p1, "t1", FRR_AS)],
        &["10.70.0.0/24", "10.77.0.0/24"],
    );
    let (p1_ours, p2_ours) = (p1.ours(), p2.ours());
    let (p1_theirs, p2_theirs, p3_theirs) = (p1.theirs(), p2.theirs(), p3.theirs());
    let p2_conn_new = p2.conn(PSK2_NEW);
    w.write_config(&v1);
    w.start_us();

    // Everything up: both tunnels, both sessions, routes both ways.
    let t1_before = w.wait_child("t1");
    let t2_before = w.wait_child("t2");
    let t = Duration::from_secs(60);
    frr.wait_established(&w.nss, p1_ours.parse().unwrap(), t)
        .unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", frr.log(), w.log()));
    bird.wait_established(&w.nss, p2_ours.parse().unwrap(), t)
        .unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", bird.log(), w.log()));
    wait_for(t, "FRR learns 10.70.0.0/24", || {
        Ok(frr.learned(&w.nss)?.contains(&"10.70.0.0/24".to_owned()))
    })
    .unwrap();
    let ours_before = w.wait_settled(&p1_theirs);
    let swan1_before = w.swan_sa(0);
    let swan2_before = w.swan_sa(1);
    let frr_before = frr_neighbor(&w, &p1_ns, &frr_dir, &p1_ours);
    assert_eq!(frr_before["bgpState"], "Established", "{frr_before:#}");
    w.assert_pings(&p1_theirs, "t1 carries traffic");

    // 1. A broken file: every error with file:line, exit 2, nothing touched.
    let broken = v2
        .replacen(
            "inside = [\"169.254.10.2/30\"]",
            "inside = [\"169.254.10.2/30\"]\nreplay_window = 5",
            1,
        )
        .replace("hold_time = 30", "hold_time = 2");
    w.write_config(&broken);
    let (code, stdout, stderr) = w.reload_cli();
    assert_eq!(code, 2, "stdout: {stdout}\nstderr: {stderr}");
    let cfg = w.config_path().display().to_string();
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with(&format!("{cfg}:")))
        .collect();
    assert_eq!(errors.len(), 2, "{stderr}");
    assert!(errors[0].contains("tunnel[0].replay_window"), "{stderr}");
    assert!(errors[1].contains("bgp.neighbor[0].hold_time"), "{stderr}");
    for e in &errors {
        // FILE:LINE:COL: ...
        let rest = &e[cfg.len() + 1..];
        let line: String = rest.chars().take_while(char::is_ascii_digit).collect();
        assert!(!line.is_empty(), "no line number in {e}");
    }
    let t1_after_broken = w.ike("t1");
    assert_eq!(t1_after_broken["ike_spi"], t1_before["ike_spi"]);
    assert_eq!(t1_after_broken["child"], t1_before["child"]);
    assert_eq!(w.ike("t2")["child"], t2_before["child"]);
    assert!(w.ike("t3").is_null(), "nothing added");
    assert_eq!(
        bird.peer_state(&w.nss, p2_ours.parse().unwrap())
            .unwrap()
            .state,
        "Established"
    );

    // 2. The real change. The peer of t2 gets its new PSK first, as an operator would do it.
    std::fs::write(
        w.dir.join("charon-p2/swanctl/swanctl.conf"),
        p2_conn_new.swanctl_conf(),
    )
    .unwrap();
    bridgehead::netns::run(
        &mut w.charons[1].swanctl(&w.nss, &["--load-creds", "--clear", "--noprompt"]),
    )
    .unwrap();
    w.write_config(&v2);
    let started = Instant::now();
    let (code, stdout, stderr) = w.reload_cli();
    let reload_ms = started.elapsed().as_millis();
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}\n{}", w.log());
    for want in [
        "tunnel t2: IKE SA renegotiated (psk changed)",
        "tunnel t3: added",
        &format!("bgp neighbor {p2_theirs}: removed (Cease/Peer De-configured)"),
        "bgp advertise 10.77.0.0/24: announced",
    ] {
        assert!(
            stdout.lines().any(|l| l == want),
            "{want:?} not in:\n{stdout}"
        );
    }
    assert!(!stdout.contains("t1"), "t1 is untouched:\n{stdout}");

    // The removed neighbor was told why (BIRD: "Received: Peer de-configured").
    let mut last = None;
    wait_for(t, "BIRD hears Cease/Peer De-configured", || {
        let st = bird.peer_state(&w.nss, p2_ours.parse().unwrap())?;
        let ok =
            st.state != "Established" && st.last_error.to_lowercase().contains("de-configured");
        last = Some(st);
        Ok(ok)
    })
    .unwrap_or_else(|e| panic!("{e:#}: {last:?}\n{}", bird.log()));

    // t2 came back with the new PSK, under new SPIs, at both ends.
    let mut t2_after = Value::Null;
    wait_for(t, "t2 back up under new SPIs", || {
        t2_after = w.ike("t2");
        Ok(!t2_after["child"].is_null() && t2_after["child"] != t2_before["child"])
    })
    .unwrap_or_else(|e| panic!("{e:#}: {t2_after:#}\n{}", w.log()));
    assert_ne!(t2_after["ike_spi"], t2_before["ike_spi"]);
    let swan2_after = w.swan_sa(1);
    assert_ne!(swan2_after.get("uniqueid"), swan2_before.get("uniqueid"));
    assert_eq!(
        format!("0x{}", swan2_after.installed_child().unwrap().get("spi-in")),
        t2_after["child"]["outbound_spi"].as_str().unwrap()
    );

    // t3 is up and carries traffic.
    w.wait_child("t3");
    w.assert_pings(&p3_theirs, "t3 carries traffic");

    // FRR learns the new prefix over the untouched session.
    wait_for(t, "FRR learns 10.77.0.0/24", || {
        Ok(frr.learned(&w.nss)?.contains(&"10.77.0.0/24".to_owned()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", w.log()));

    // t1 untouched: same IKE SA and Child SA at both ends, no Child SA came and went.
    let t1_after = w.ike("t1");
    assert_eq!(t1_after["ike_spi"], t1_before["ike_spi"]);
    assert_eq!(t1_after["child"], t1_before["child"]);
    assert_eq!(t1_after["child_sas_up"], t1_before["child_sas_up"]);
    assert_eq!(t1_after["state"], "established");
    let swan1_after = w.swan_sa(0);
    assert_eq!(swan1_after.get("uniqueid"), swan1_before.get("uniqueid"));
    assert_eq!(
        swan1_after.installed_child().unwrap().get("spi-in"),
        swan1_before.installed_child().unwrap().get("spi-in")
    );
    w.assert_pings(&p1_theirs, "t1 still carries traffic");
    // The BGP session over t1 never dropped: FRR's own counters, and ours.
    let frr_after = frr_neighbor(&w, &p1_ns, &frr_dir, &p1_ours);
    assert_eq!(frr_after["bgpState"], "Established", "{frr_after:#}");
    for key in ["connectionsEstablished", "connectionsDropped"] {
        assert_eq!(frr_after[key], frr_before[key], "{key}: {frr_after:#}");
    }
    let ours = our_neighbor(&w, &p1_theirs);
    assert_eq!(ours["state"], "Established", "{ours:#}");
    assert_eq!(ours["flaps"], ours_before["flaps"], "{ours:#}");
    assert!(
        ours["uptime_secs"].as_u64() >= ours_before["uptime_secs"].as_u64(),
        "{ours:#}"
    );
    eprintln!("reload with 4 changes took {reload_ms} ms (bridgehead reload, end to end)");
}

/// SIGHUP with a removed tunnel, a re-created one (its MTU changed), a static route added and
/// a neighbor's hold time changed: the removed tunnel is deleted at the peer and its device
/// is gone, the re-created one comes back with the new MTU and its BGP session re-forms, the
/// changed neighbor is reset with Cease/Other Configuration Change, the route is in the
/// kernel, and the untouched tunnel keeps its SAs.
#[test]
fn sighup_removes_recreates_and_resets_what_changed() {
    let mut w = World::build();
    let (frr, _frr_dir, bird) = w.bgp_peers();
    let (p1, p2, p3) = (&w.peers[0], &w.peers[1], &w.peers[2]);
    let v1 = config(
        &[("t1", p1, PSK1), ("t2", p2, PSK2), ("t3", p3, PSK3)],
        &[(p1, "t1", FRR_AS), (p2, "t2", BIRD_AS)],
        &["10.70.0.0/24"],
    );
    let v2 = config(
        &[("t1", p1, PSK1), ("t2", p2, PSK2)],
        &[(p1, "t1", FRR_AS), (p2, "t2", BIRD_AS)],
        &["10.70.0.0/24"],
    )
    .replacen(
        "inside = [\"169.254.10.2/30\"]",
        "inside = [\"169.254.10.2/30\"]\nroutes = [\"10.99.0.0/24\"]",
        1,
    )
    .replacen(
        "inside = [\"169.254.11.2/30\"]",
        "inside = [\"169.254.11.2/30\"]\nmtu = 1300",
        1,
    )
    .replacen(
        "asn = 64512\ntunnel = \"t1\"\nhold_time = 30",
        "asn = 64512\ntunnel = \"t1\"\nhold_time = 60",
        1,
    );
    let (p1_ours, p2_ours) = (p1.ours(), p2.ours());
    let (p1_theirs, p2_theirs, p3_theirs) = (p1.theirs(), p2.theirs(), p3.theirs());
    w.write_config(&v1);
    w.start_us();
    let t1_before = w.wait_child("t1");
    let t2_before = w.wait_child("t2");
    w.wait_child("t3");
    let t = Duration::from_secs(60);
    frr.wait_established(&w.nss, p1_ours.parse().unwrap(), t)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", w.log()));
    bird.wait_established(&w.nss, p2_ours.parse().unwrap(), t)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", w.log()));
    w.wait_settled(&p1_theirs);
    w.wait_settled(&p2_theirs);
    w.assert_pings(&p3_theirs, "t3 carries traffic");
    w.swan_sa(2);

    w.write_config(&v2);
    bridgehead::netns::run(
        std::process::Command::new("kill").args(["-HUP", &w.us_pid.to_string()]),
    )
    .unwrap();
    wait_for(Duration::from_secs(20), "the reload to finish", || {
        Ok(w.log().contains("reload done trigger=\"SIGHUP\""))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", w.log()));
    let log = w.log();
    assert!(
        log.contains("reload done trigger=\"SIGHUP\" ok=true"),
        "{log}"
    );
    for want in [
        "change=tunnel t3: removed",
        "change=tunnel t2: re-created (mtu changed)",
        "change=tunnel t1: route 10.99.0.0/24 added",
        &format!(
            "change=bgp neighbor {p1_theirs}: reset with Cease/Other Configuration Change (hold_time changed)"
        ),
        &format!(
            "change=bgp neighbor {p2_theirs}: reset with Cease/Other Configuration Change (its tunnel changed)"
        ),
    ] {
        assert!(log.contains(want), "{want:?} not logged:\n{log}");
    }

    // t3: deleted at the peer, device gone with its address.
    w.charons[2]
        .wait_sas(&w.nss, Duration::from_secs(20), |s| {
            !s.iter().any(IkeSaInfo::is_up)
        })
        .unwrap();
    assert!(
        w.nss.ip(&w.us, &["link", "show", "bh-t3"]).is_err(),
        "bh-t3 outlived its tunnel"
    );
    assert!(w.ike("t3").is_null());
    // t1: the route is ours, through its device; its SAs are the same.
    let route = w
        .nss
        .ip(&w.us, &["-N", "route", "show", "10.99.0.0/24"])
        .unwrap();
    assert!(route.contains("dev bh-t1 proto 248"), "{route}");
    let t1_after = w.ike("t1");
    assert_eq!(t1_after["ike_spi"], t1_before["ike_spi"]);
    assert_eq!(t1_after["child"], t1_before["child"]);
    // t2: a new device with MTU 1300, new SAs, traffic.
    let link = w.nss.ip(&w.us, &["link", "show", "bh-t2"]).unwrap();
    assert!(link.contains("mtu 1300"), "{link}");
    let mut t2_after = Value::Null;
    wait_for(t, "t2 back up under new SPIs", || {
        t2_after = w.ike("t2");
        Ok(!t2_after["child"].is_null() && t2_after["child"] != t2_before["child"])
    })
    .unwrap_or_else(|e| panic!("{e:#}: {t2_after:#}\n{}", w.log()));
    w.assert_pings(&p2_theirs, "t2 carries traffic again");
    // FRR was told why its session was reset: its reset reason or its log has our Cease.
    // (Our new connection waits 1 s after the reset: when it reached FRR before FRR had read
    // the Cease, FRR, which sees our graceful-restart capability, took it as our restart and
    // dropped the old session as "NSF peer closed the session" unread, in about 1 run in 5.)
    let told = |log: &str| {
        log.lines().any(|l| {
            l.contains(&format!(
                "NOTIFICATION: received from neighbor {p1_ours} 6/6"
            )) && l.contains("Other Configuration Change")
        })
    };
    let reason = |w: &World| {
        frr.peer_state(&w.nss, p1_ours.parse().unwrap())
            .is_ok_and(|st| {
                st.last_error
                    .to_lowercase()
                    .contains("other configuration change")
            })
    };
    wait_for(Duration::from_secs(5), "FRR logs our Cease", || {
        Ok(reason(&w) || told(&frr.log()))
    })
    .unwrap_or_else(|e| {
        let st = frr.peer_state(&w.nss, p1_ours.parse().unwrap());
        panic!(
            "{e:#}: FRR did not log our Cease/Other Configuration Change: {st:?}\n{}",
            w.log()
        )
    });
    frr.wait_established(&w.nss, p1_ours.parse().unwrap(), t)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", w.log()));
    bird.wait_established(&w.nss, p2_ours.parse().unwrap(), t)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", w.log()));
}

/// The two-site lab (two bridgehead daemons, a manual-key tunnel through a NAT): new SPIs and
/// keys at both ends and a route removed, applied with `bridgehead reload` on each. The SAs
/// are replaced in place (same device, same ifindex), the route leaves the kernel, and
/// traffic flows under the new SPIs.
#[test]
fn manual_keys_and_routes_change_in_place() {
    use bridgehead::lab::{Host, Lab, LabOptions, addr};
    let prefix = common::unique_prefix("bhrm");
    let mut opts = LabOptions::new(&prefix).unwrap();
    opts.binary = env!("CARGO_BIN_EXE_bridgehead").into();
    opts.workers = 2;
    let mut lab = Lab::build(opts).expect("lab topology");
    lab.start_daemons().expect("daemons start");
    // Both ways, every ping answered; retried (bounded) since a loaded machine may lose one.
    let pings = |lab: &Lab| {
        let mut last = Vec::new();
        let ok = wait_for(Duration::from_secs(20), "pings both ways", || {
            last = [(Host::LanA, addr::LANB), (Host::LanB, addr::LANA)]
                .into_iter()
                .map(|(from, dst)| lab.ping(from, dst, 3, 56).unwrap_or(0))
                .collect();
            Ok(last == [3, 3])
        });
        assert!(ok.is_ok(), "replies {last:?}\n{}", lab.log(Host::GwA));
    };
    pings(&lab);
    let device = lab.status(Host::GwA).unwrap()["tunnels"][0]["device"]
        .as_str()
        .unwrap()
        .to_owned();
    let ifindex = |lab: &Lab| {
        lab.ns
            .ip(
                &lab.name(Host::GwA),
                &["-o", "link", "show", "dev", &device],
            )
            .unwrap()
            .split(':')
            .next()
            .unwrap()
            .to_owned()
    };
    let index_before = ifindex(&lab);

    // New SPIs and keys, consistently at both ends; gwa drops its IPv6 route.
    let path = |h: Host| {
        lab.dir.join(if h == Host::GwA {
            "gwa.toml"
        } else {
            "gwb.toml"
        })
    };
    let a = std::fs::read_to_string(path(Host::GwA)).unwrap();
    let key = |text: &str, field: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{field} = \"")))
            .and_then(|v| v.strip_suffix('"'))
            .unwrap()
            .to_owned()
    };
    let (k1, k2) = (key(&a, "outbound_key"), key(&a, "inbound_key"));
    let flip = |k: &str| k.chars().rev().collect::<String>();
    for h in [Host::GwA, Host::GwB] {
        let text = std::fs::read_to_string(path(h))
            .unwrap()
            .replace("0x1001", "0x1101")
            .replace("0x2002", "0x2202")
            .replace(&k1, &flip(&k1))
            .replace(&k2, &flip(&k2))
            .replace(", \"fd02::/64\"]", "]");
        bridgehead::lab::write_secret(&path(h), &text).unwrap();
    }
    for h in [Host::GwA, Host::GwB] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bridgehead"))
            .arg("reload")
            .arg("--control")
            .arg(lab.control(h))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{h:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("tunnel lab: manual SAs replaced"),
            "{h:?}: {stdout}"
        );
    }
    let st = lab.status(Host::GwA).unwrap();
    assert_eq!(st["tunnels"][0]["outbound"]["spi"], "0x00001101", "{st:#}");
    assert_eq!(st["tunnels"][0]["inbound"]["spi"], "0x00002202", "{st:#}");
    assert_eq!(ifindex(&lab), index_before, "the device was not re-created");
    let route = lab
        .ns
        .ip(&lab.name(Host::GwA), &["-6", "route", "show", "fd02::/64"])
        .unwrap();
    assert!(
        route.trim().is_empty(),
        "the removed route is still there: {route}"
    );
    pings(&lab);
    let st = lab.status(Host::GwA).unwrap();
    assert!(
        st["tunnels"][0]["outbound"]["packets"].as_u64().unwrap() >= 3,
        "{st:#}"
    );
}
