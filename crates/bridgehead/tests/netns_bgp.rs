//! BGP interop in network namespaces with the real daemons from Debian: BIRD 2, FRR and GoBGP,
//! started through `bridgehead::peers::bgpd`.
//!
//! - `reference_daemons_peer_and_exchange_routes` checks the harness itself: BIRD peers with FRR
//!   and with GoBGP over IPv4 and IPv6 (eBGP, a 4-octet AS), routes flow, BIRD puts what it
//!   learned in its kernel, and a withdraw at FRR takes the route out of it.
//! - `{bird,frr,gobgp}_session_routes_and_withdraw`: `bridgehead daemon` with a `[bgp]` section
//!   against each daemon over a veth: IPv4 and IPv6 sessions with our 4-octet AS, routes both
//!   ways, learned routes in our kernel with protocol 248, a withdraw honoured.
//! - `two_sessions_to_one_as_give_one_multipath_route` (GoBGP and FRR in one AS).
//! - `a_device_going_down_takes_its_next_hop_out_at_once` (the link watch, before any hold timer).
//! - `a_dead_peers_routes_leave_the_kernel_at_hold_expiry` (BIRD frozen with SIGSTOP, so no FIN).
//! - `a_wrong_as_open_is_refused_and_each_peer_sees_our_notification` (all three peers).
//! - `bird_over_a_manual_key_tunnel`: the session over a bh-* tunnel's inside addresses (two
//!   bridgehead daemons with manual keys), routes out of the TUN device.
//! - `stale_routes_go_at_start_and_nobody_elses`.
//! - `a_foreign_route_at_our_metric_is_left_alone_until_it_goes` (the incremental FIB sync's
//!   exclusive add, then the conflict recheck).
//! - `graceful_restart_keeps_gobgps_routes_across_its_restart`.
//! - `neighbor_policy_reaches_the_wire_with_bird` (export list, prepend, MED, import list).
//! - `routes_command_shows_learned_best_installed_and_advertised_prefixes` (FRR and GoBGP, one
//!   prefix from both: `bridgehead routes` text and `--json`, `--limit`).
//!
//! Needs root (CI runs as root). Namespaces are named `bhg<pid>-<n>-*` and removed on drop.

mod common;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use bridgehead::netns::Namespaces;
use bridgehead::peers::bgpd::{Bgpd, BgpdConfig, Kind, Neighbor, wait_for};

/// A test's namespaces and scratch directory.
struct World {
    nss: Namespaces,
    prefix: String,
    dir: PathBuf,
}

impl World {
    fn new() -> Self {
        let prefix = common::unique_prefix("bhg");
        let dir = common::fresh_dir(&prefix);
        Self {
            nss: Namespaces::new(),
            prefix,
            dir,
        }
    }

    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    fn add(&mut self, role: &str) -> String {
        let ns = self.ns(role);
        self.nss.add(&ns).unwrap();
        ns
    }

    /// A veth between two namespaces with `10.60.N.1/24`, `fd00:60:N::1/64` on `a` and `.2`,
    /// `::2` on `b`.
    fn link(&self, a: &str, b: &str, n: u8) {
        let (ia, ib) = (format!("v{n}a"), format!("v{n}b"));
        self.nss.veth((a, &ia), (b, &ib)).unwrap();
        self.nss.addr(a, &ia, &format!("10.60.{n}.1/24")).unwrap();
        self.nss.addr(b, &ib, &format!("10.60.{n}.2/24")).unwrap();
        self.nss
            .addr(a, &ia, &format!("fd00:60:{n}::1/64"))
            .unwrap();
        self.nss
            .addr(b, &ib, &format!("fd00:60:{n}::2/64"))
            .unwrap();
    }

    fn start(&mut self, kind: Kind, ns: &str, cfg: &BgpdConfig) -> Bgpd {
        let label = format!("{ns}-{}", kind.name());
        let dir = self.dir.join(&label);
        Bgpd::start(&mut self.nss, kind, ns, &dir, &label, cfg).unwrap()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.nss.teardown();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn a(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn nbr(addr: &str, asn: u32) -> Neighbor {
    Neighbor {
        address: a(addr),
        asn,
        hold_time: 9,
        passive: false,
        md5_password: None,
    }
}

const BIRD_AS: u32 = 4_200_000_001;
const FRR_AS: u32 = 65002;
const GOBGP_AS: u32 = 65003;

/// `ip -N route show` output inside `ns` for `dst` (IPv4 or IPv6).
fn kernel_route(w: &World, ns: &str, dst: &str) -> String {
    let fam = if dst.contains(':') { "-6" } else { "-4" };
    w.nss
        .ip(ns, &["-N", fam, "route", "show", dst])
        .unwrap_or_default()
}

#[test]
fn reference_daemons_peer_and_exchange_routes() {
    let mut w = World::new();
    let (r, f, g) = (w.add("bird"), w.add("frr"), w.add("gobgp"));
    w.link(&r, &f, 1);
    w.link(&r, &g, 2);
    let bird = w.start(
        Kind::Bird,
        &r,
        &BgpdConfig {
            asn: BIRD_AS,
            router_id: "10.60.0.1".parse().unwrap(),
            neighbors: vec![
                nbr("10.60.1.2", FRR_AS),
                nbr("fd00:60:1::2", FRR_AS),
                nbr("10.60.2.2", GOBGP_AS),
                nbr("fd00:60:2::2", GOBGP_AS),
            ],
            announce: vec!["10.61.0.0/24".into(), "fd00:61::/48".into()],
            kernel: true,
            graceful_restart: None,
        },
    );
    let mut frr = w.start(
        Kind::Frr,
        &f,
        &BgpdConfig {
            asn: FRR_AS,
            router_id: "10.60.0.2".parse().unwrap(),
            neighbors: vec![nbr("10.60.1.1", BIRD_AS), nbr("fd00:60:1::1", BIRD_AS)],
            announce: vec!["10.62.0.0/24".into(), "fd00:62::/48".into()],
            kernel: false,
            graceful_restart: None,
        },
    );
    let gobgp = w.start(
        Kind::Gobgp,
        &g,
        &BgpdConfig {
            asn: GOBGP_AS,
            router_id: "10.60.0.3".parse().unwrap(),
            neighbors: vec![nbr("10.60.2.1", BIRD_AS), nbr("fd00:60:2::1", BIRD_AS)],
            announce: vec!["10.63.0.0/24".into(), "fd00:63::/48".into()],
            kernel: false,
            graceful_restart: None,
        },
    );
    let t = Duration::from_secs(30);
    for n in ["10.60.1.2", "fd00:60:1::2", "10.60.2.2", "fd00:60:2::2"] {
        bird.wait_established(&w.nss, a(n), t)
            .unwrap_or_else(|e| panic!("{e:#}\n{}", bird.log()));
    }
    frr.wait_established(&w.nss, a("10.60.1.1"), t).unwrap();
    frr.wait_established(&w.nss, a("fd00:60:1::1"), t).unwrap();
    gobgp.wait_established(&w.nss, a("10.60.2.1"), t).unwrap();
    gobgp
        .wait_established(&w.nss, a("fd00:60:2::1"), t)
        .unwrap();

    // BIRD learns both peers' prefixes and installs them; each peer learns BIRD's own (BIRD
    // exports only its static routes, so it is no transit between them).
    let want_bird = [
        "10.62.0.0/24",
        "10.63.0.0/24",
        "fd00:62::/48",
        "fd00:63::/48",
    ];
    wait_for(t, "BIRD to learn every prefix", || {
        let l = bird.learned(&w.nss)?;
        Ok(want_bird.iter().all(|p| l.iter().any(|x| x == p)))
    })
    .unwrap_or_else(|e| panic!("{e:#}: {:?}", bird.learned(&w.nss)));
    for p in want_bird {
        wait_for(t, "BIRD's kernel route", || {
            Ok(kernel_route(&w, &r, p).contains("proto 12"))
        })
        .unwrap_or_else(|e| panic!("{p}: {e:#}: {}", kernel_route(&w, &r, p)));
    }
    for (d, want) in [
        (&frr, ["10.61.0.0/24", "fd00:61::/48"]),
        (&gobgp, ["10.61.0.0/24", "fd00:61::/48"]),
    ] {
        wait_for(t, "a peer to learn BIRD's prefixes, and only them", || {
            Ok(d.learned(&w.nss)? == want)
        })
        .unwrap_or_else(|e| panic!("{:?}: {e:#}: {:?}", d.kind(), d.learned(&w.nss)));
    }

    // A withdraw at FRR leaves BIRD's RIB and kernel.
    frr.withdraw(&w.nss, "10.62.0.0/24").unwrap();
    wait_for(t, "the withdraw to reach BIRD's kernel", || {
        Ok(kernel_route(&w, &r, "10.62.0.0/24").trim().is_empty())
    })
    .unwrap();
    assert!(
        !bird
            .learned(&w.nss)
            .unwrap()
            .contains(&"10.62.0.0/24".to_owned())
    );
    // And the announcement comes back.
    frr.announce(&w.nss, "10.62.0.0/24").unwrap();
    wait_for(t, "the re-announcement to reach BIRD's kernel", || {
        Ok(kernel_route(&w, &r, "10.62.0.0/24").contains("proto 12"))
    })
    .unwrap();
}

// ---- bridgehead's own speaker against each daemon -------------------------------------------
//
// The BGP sessions below run directly over veth links (10.60.N.0/24, fd00:60:N::/64), without
// tunnels: the speaker, its TCP shell and the FIB path are what is under test here, and the
// tunnels have their own interop tests (netns_manual, netns_ike).

const US_AS: u32 = 4_200_000_010;
const RTPROT: &str = "proto 248";

impl World {
    /// Starts `bridgehead daemon` in `ns` with `bgp` (TOML) as its whole configuration after
    /// a one-worker `[dataplane]`; returns its control socket.
    fn start_us(&mut self, ns: &str, bgp: &str) -> PathBuf {
        let conf = self.dir.join(format!("{ns}.toml"));
        let sock = self.dir.join(format!("{ns}.sock"));
        std::fs::write(&conf, format!("[dataplane]\nworkers = 1\n\n{bgp}")).unwrap();
        let mut c = self.nss.exec(ns, env!("CARGO_BIN_EXE_bridgehead"));
        c.arg("daemon")
            .arg("--config")
            .arg(&conf)
            .arg("--control")
            .arg(&sock)
            .env("RUST_LOG", "info,bridgehead=debug")
            .stdout(std::fs::File::create(self.dir.join(format!("{ns}.log"))).unwrap())
            .stderr(std::fs::File::create(self.dir.join(format!("{ns}.err"))).unwrap());
        self.nss.spawn(&format!("{ns}-bridgehead"), c).unwrap();
        let s = sock.clone();
        wait_for(
            Duration::from_secs(20),
            "bridgehead's control socket",
            || Ok(bridgehead::control::request(&s, "status").is_ok()),
        )
        .unwrap_or_else(|e| panic!("{e:#}\n{}", self.our_log(ns)));
        sock
    }

    fn our_log(&self, ns: &str) -> String {
        let f = |n: String| std::fs::read_to_string(self.dir.join(n)).unwrap_or_default();
        format!("{}{}", f(format!("{ns}.log")), f(format!("{ns}.err")))
    }
}

fn bgp_status(sock: &std::path::Path) -> serde_json::Value {
    let text = bridgehead::control::request(sock, "status").unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["bgp"].clone()
}

fn our_neighbor(sock: &std::path::Path, addr: &str) -> serde_json::Value {
    bgp_status(sock)["neighbors"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["address"] == addr)
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

/// `[[bgp.neighbor]]` lines for `addr` in AS `asn` with hold time 9.
fn our_nbr(addr: &str, asn: u32) -> String {
    format!("[[bgp.neighbor]]\naddress = \"{addr}\"\nasn = {asn}\nhold_time = 9\n\n")
}

fn our_bgp(neighbors: &[(&str, u32)]) -> String {
    let mut s = format!(
        "[bgp]\nasn = {US_AS}\nrouter_id = \"10.60.0.10\"\nadvertise = [\"10.70.0.0/24\", \"fd00:70::/48\"]\n\n"
    );
    for (a, asn) in neighbors {
        s.push_str(&our_nbr(a, *asn));
    }
    s
}

/// Sessions over IPv4 and IPv6 with one daemon of `kind` (AS 65002), routes both ways, the
/// learned ones in our kernel with our protocol number, and a withdraw that takes one out.
fn session_routes_and_withdraw(kind: Kind) {
    let mut w = World::new();
    let (us, peer) = (w.add("us"), w.add("peer"));
    w.link(&us, &peer, 1);
    let mut d = w.start(
        kind,
        &peer,
        &BgpdConfig {
            asn: FRR_AS,
            router_id: "10.60.0.2".parse().unwrap(),
            neighbors: vec![nbr("10.60.1.1", US_AS), nbr("fd00:60:1::1", US_AS)],
            announce: vec!["10.62.0.0/24".into(), "fd00:62::/48".into()],
            kernel: false,
            graceful_restart: None,
        },
    );
    let sock = w.start_us(
        &us,
        &our_bgp(&[("10.60.1.2", FRR_AS), ("fd00:60:1::2", FRR_AS)]),
    );
    let t = Duration::from_secs(40);
    for n in ["10.60.1.1", "fd00:60:1::1"] {
        d.wait_established(&w.nss, a(n), t)
            .unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", d.log(), w.our_log(&us)));
    }
    for n in ["10.60.1.2", "fd00:60:1::2"] {
        wait_for(t, "our side Established", || {
            Ok(our_neighbor(&sock, n)["state"] == "Established")
        })
        .unwrap_or_else(|e| panic!("{e:#}: {}", our_neighbor(&sock, n)));
    }
    let st = our_neighbor(&sock, "10.60.1.2");
    assert_eq!(st["asn"], FRR_AS);

    // Their routes in our kernel, through them, tagged with our protocol.
    for (p, via) in [
        ("10.62.0.0/24", "via 10.60.1.2"),
        ("fd00:62::/48", "via fd00:60:1::2"),
    ] {
        wait_for(t, "a learned route in our kernel", || {
            let r = kernel_route(&w, &us, p);
            Ok(r.contains(RTPROT) && r.contains(via))
        })
        .unwrap_or_else(|e| {
            panic!(
                "{p}: {e:#}: {:?}\n{}",
                kernel_route(&w, &us, p),
                w.our_log(&us)
            )
        });
    }
    // Ours at theirs.
    wait_for(t, "the peer to learn our networks", || {
        Ok(d.learned(&w.nss)? == ["10.70.0.0/24", "fd00:70::/48"])
    })
    .unwrap_or_else(|e| panic!("{e:#}: {:?}", d.learned(&w.nss)));
    // Our status counts them (it is refreshed every 200 ms).
    let counted = |st: &serde_json::Value| {
        st["prefixes_received"].as_u64() >= Some(1)
            && st["prefixes_sent"].as_u64() >= Some(1)
            && st["messages_received"].as_u64() >= Some(3)
            && st["messages_sent"].as_u64() >= Some(3)
    };
    wait_for(Duration::from_secs(5), "our status counters", || {
        Ok(counted(&our_neighbor(&sock, "10.60.1.2")))
    })
    .unwrap_or_else(|e| panic!("{e:#}: {}", our_neighbor(&sock, "10.60.1.2")));

    // A withdraw leaves our kernel; the other family stays.
    d.withdraw(&w.nss, "10.62.0.0/24").unwrap();
    wait_for(t, "the withdrawn route to leave our kernel", || {
        Ok(kernel_route(&w, &us, "10.62.0.0/24").trim().is_empty())
    })
    .unwrap_or_else(|e| panic!("{e:#}: {}", kernel_route(&w, &us, "10.62.0.0/24")));
    assert!(kernel_route(&w, &us, "fd00:62::/48").contains(RTPROT));
}

#[test]
fn bird_session_routes_and_withdraw() {
    session_routes_and_withdraw(Kind::Bird);
}

#[test]
fn frr_session_routes_and_withdraw() {
    session_routes_and_withdraw(Kind::Frr);
}

#[test]
fn gobgp_session_routes_and_withdraw() {
    session_routes_and_withdraw(Kind::Gobgp);
}

/// Two neighbors in one AS announcing the same prefix: one kernel route with both next hops.
#[test]
fn two_sessions_to_one_as_give_one_multipath_route() {
    let mut w = World::new();
    let (us, p1, p2) = (w.add("us"), w.add("g1"), w.add("g2"));
    w.link(&us, &p1, 1);
    w.link(&us, &p2, 2);
    for (ns, n, kind) in [(&p1, 1, Kind::Gobgp), (&p2, 2, Kind::Frr)] {
        w.start(
            kind,
            ns,
            &BgpdConfig {
                asn: FRR_AS,
                router_id: format!("10.60.0.{}", 20 + n).parse().unwrap(),
                neighbors: vec![nbr(&format!("10.60.{n}.1"), US_AS)],
                announce: vec!["10.65.0.0/24".into()],
                kernel: false,
                graceful_restart: None,
            },
        );
    }
    let sock = w.start_us(
        &us,
        &our_bgp(&[("10.60.1.2", FRR_AS), ("10.60.2.2", FRR_AS)]),
    );
    let t = Duration::from_secs(40);
    wait_for(t, "one route with two next hops", || {
        let r = kernel_route(&w, &us, "10.65.0.0/24");
        Ok(r.contains(RTPROT)
            && r.contains("nexthop via 10.60.1.2 dev v1a")
            && r.contains("nexthop via 10.60.2.2 dev v2a"))
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}: {:?}\n{}\n{}",
            kernel_route(&w, &us, "10.65.0.0/24"),
            bgp_status(&sock),
            w.our_log(&us)
        )
    });
    assert_eq!(
        kernel_route(&w, &us, "10.65.0.0/24")
            .matches("10.65.0.0/24")
            .count(),
        1
    );
}

/// A device going down takes its next hop out of the ECMP route at once (the kernel alone would
/// keep it as a dead hop until the session's hold timer), and the hop returns when it is up.
#[test]
fn a_device_going_down_takes_its_next_hop_out_at_once() {
    let mut w = World::new();
    let (us, p1, p2) = (w.add("us"), w.add("g1"), w.add("g2"));
    w.link(&us, &p1, 1);
    w.link(&us, &p2, 2);
    for (ns, n) in [(&p1, 1), (&p2, 2)] {
        w.start(
            Kind::Gobgp,
            ns,
            &BgpdConfig {
                asn: FRR_AS,
                router_id: format!("10.60.0.{}", 40 + n).parse().unwrap(),
                neighbors: vec![Neighbor {
                    hold_time: 60,
                    ..nbr(&format!("10.60.{n}.1"), US_AS)
                }],
                announce: vec!["10.65.0.0/24".into()],
                kernel: false,
                graceful_restart: None,
            },
        );
    }
    let mut conf = our_bgp(&[]);
    for n in ["10.60.1.2", "10.60.2.2"] {
        conf.push_str(&our_nbr(n, FRR_AS).replace("hold_time = 9", "hold_time = 60"));
    }
    let sock = w.start_us(&us, &conf);
    let t = Duration::from_secs(40);
    let both = |w: &World| {
        let r = kernel_route(w, &us, "10.65.0.0/24");
        r.contains("nexthop via 10.60.1.2 dev v1a") && r.contains("nexthop via 10.60.2.2 dev v2a")
    };
    wait_for(t, "the ECMP route", || Ok(both(&w)))
        .unwrap_or_else(|e| panic!("{e:#}: {}", bgp_status(&sock)));

    w.nss.ip(&us, &["link", "set", "v2a", "down"]).unwrap();
    let down = std::time::Instant::now();
    // The link watch, not the 60 s hold timer, takes the hop away (the bound is generous for a
    // loaded machine but far below the hold time).
    wait_for(Duration::from_secs(20), "the hop through v2a to go", || {
        let r = kernel_route(&w, &us, "10.65.0.0/24");
        Ok(r.contains("10.65.0.0/24 via 10.60.1.2 dev v1a") && !r.contains("v2a"))
    })
    .unwrap_or_else(|e| panic!("{e:#}: {:?}", kernel_route(&w, &us, "10.65.0.0/24")));
    eprintln!("the hop left {:?} after the link went down", down.elapsed());
    // Well within the 60 s hold time: the session through v2a is still up.
    assert_eq!(our_neighbor(&sock, "10.60.2.2")["state"], "Established");

    w.nss.ip(&us, &["link", "set", "v2a", "up"]).unwrap();
    wait_for(
        Duration::from_secs(10),
        "the hop through v2a to return",
        || Ok(both(&w)),
    )
    .unwrap_or_else(|e| panic!("{e:#}: {:?}", kernel_route(&w, &us, "10.65.0.0/24")));
}

/// A peer that stops answering (its process frozen, so no FIN is ever sent) loses its routes
/// from our kernel when the 9 s hold timer expires, not before and not much later.
#[test]
fn a_dead_peers_routes_leave_the_kernel_at_hold_expiry() {
    let mut w = World::new();
    let (us, peer) = (w.add("us"), w.add("peer"));
    w.link(&us, &peer, 1);
    let bird = w.start(
        Kind::Bird,
        &peer,
        &BgpdConfig {
            asn: FRR_AS,
            router_id: "10.60.0.2".parse().unwrap(),
            neighbors: vec![nbr("10.60.1.1", US_AS)],
            announce: vec!["10.62.0.0/24".into()],
            kernel: false,
            graceful_restart: None,
        },
    );
    let sock = w.start_us(&us, &our_bgp(&[("10.60.1.2", FRR_AS)]));
    let t = Duration::from_secs(40);
    wait_for(t, "the learned route", || {
        Ok(kernel_route(&w, &us, "10.62.0.0/24").contains(RTPROT))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", w.our_log(&us)));

    let pid = bird.pid().to_string();
    bridgehead::netns::run(std::process::Command::new("kill").args(["-STOP", &pid])).unwrap();
    let frozen = std::time::Instant::now();
    wait_for(
        Duration::from_secs(30),
        "the route to leave at hold expiry",
        || Ok(kernel_route(&w, &us, "10.62.0.0/24").trim().is_empty()),
    )
    .unwrap();
    let took = frozen.elapsed();
    // Let BIRD run again so it can be stopped normally.
    bridgehead::netns::run(std::process::Command::new("kill").args(["-CONT", &pid])).unwrap();
    // Not before the hold timer can have expired (the last KEEPALIVE came at most 3 s before the
    // freeze); the upper bound is the wait above, generous for a loaded machine.
    eprintln!("the route left {took:?} after the freeze, hold time 9 s");
    assert!(
        took >= Duration::from_secs(5),
        "route left after {took:?}, before the 9 s hold time could expire"
    );
    let st = our_neighbor(&sock, "10.60.1.2");
    assert_ne!(st["state"], "Established", "{st}");
    assert_eq!(
        st["last_error"], "sent NOTIFICATION 4/0 (Hold Timer Expired)",
        "{st}"
    );
}

/// We expect AS 65099 where the peers are AS 65002: each of BIRD, FRR and GoBGP shows the
/// OPEN Message Error / Bad Peer AS (2/2) NOTIFICATION we sent, in its own state or log.
#[test]
fn a_wrong_as_open_is_refused_and_each_peer_sees_our_notification() {
    let mut w = World::new();
    let us = w.add("us");
    let mut peers = Vec::new();
    for (n, kind) in [(1u8, Kind::Bird), (2, Kind::Frr), (3, Kind::Gobgp)] {
        let ns = w.add(kind.name());
        w.link(&us, &ns, n);
        let d = w.start(
            kind,
            &ns,
            &BgpdConfig {
                asn: FRR_AS,
                router_id: format!("10.60.0.{}", 30 + n).parse().unwrap(),
                neighbors: vec![nbr(&format!("10.60.{n}.1"), US_AS)],
                announce: vec!["10.62.0.0/24".into()],
                kernel: false,
                graceful_restart: None,
            },
        );
        peers.push((n, d));
    }
    let sock = w.start_us(
        &us,
        &our_bgp(&[
            ("10.60.1.2", 65099),
            ("10.60.2.2", 65099),
            ("10.60.3.2", 65099),
        ]),
    );
    let t = Duration::from_secs(40);
    for (n, d) in &peers {
        let addr = a(&format!("10.60.{n}.1"));
        wait_for(t, "the peer to record our Bad Peer AS", || {
            Ok(match d.kind() {
                Kind::Bird => d
                    .peer_state(&w.nss, addr)?
                    .last_error
                    .contains("Bad peer AS"),
                Kind::Frr => {
                    let st = d.peer_state(&w.nss, addr)?;
                    st.last_error.contains("Bad Peer AS")
                }
                // GoBGP counts the NOTIFICATION but, before Established, logs only that a
                // message other than KEEPALIVE ended OpenConfirm ("invalid-msg").
                Kind::Gobgp => {
                    d.peer_state(&w.nss, addr)?.notifications_received >= Some(1)
                        && d.log()
                            .contains("old=BGP_FSM_OPENCONFIRM reason=invalid-msg")
                }
            })
        })
        .unwrap_or_else(|e| {
            panic!(
                "{:?}: {e:#}: {:?}\n{}",
                d.kind(),
                d.peer_state(&w.nss, addr),
                d.log()
            )
        });
        let ours = our_neighbor(&sock, &format!("10.60.{n}.2"));
        assert_ne!(ours["state"], "Established", "{ours}");
        assert_eq!(
            ours["last_error"], "sent NOTIFICATION 2/2 (OPEN Message Error: Bad Peer AS)",
            "{ours}"
        );
    }
    assert_eq!(kernel_route(&w, &us, "10.62.0.0/24").trim(), "");
}

/// The cloud case: the session runs over the inside addresses of a bh-* tunnel (manual keys,
/// ESP in UDP between two bridgehead daemons), with BIRD behind the far gateway as the peer.
/// Learned routes go out of the TUN device: IPv4 as a device route, IPv6 via the peer's inside
/// address.
#[test]
fn bird_over_a_manual_key_tunnel() {
    let mut w = World::new();
    let (us, site) = (w.add("us"), w.add("site"));
    let (ia, ib) = ("u0", "u1");
    w.nss.veth((&us, ia), (&site, ib)).unwrap();
    w.nss.addr(&us, ia, "192.0.2.1/24").unwrap();
    w.nss.addr(&site, ib, "192.0.2.2/24").unwrap();
    let k1 = "11".repeat(36);
    let k2 = "22".repeat(36);
    let tunnel = |bind: &str, peer: &str, inside: [&str; 2], out: (u32, &str), inb: (u32, &str)| {
        format!(
            "[appliance]\nprivate_ip = \"{bind}\"\n\n[dataplane]\nworkers = 1\n\n\
             [[tunnel]]\nname = \"t0\"\npeer = \"{peer}\"\ninside = [\"{}\", \"{}\"]\n\n\
             [tunnel.manual]\nsuite = \"aes256gcm16\"\noutbound_spi = {:#x}\ninbound_spi = {:#x}\n\
             outbound_key = \"{}\"\ninbound_key = \"{}\"\n\n",
            inside[0], inside[1], out.0, inb.0, out.1, inb.1
        )
    };
    let ours = tunnel(
        "192.0.2.1",
        "192.0.2.2",
        ["169.254.30.1/30", "fd00:30::1/126"],
        (0x1001, &k1),
        (0x2002, &k2),
    ) + &format!(
        "[bgp]\nasn = {US_AS}\nadvertise = [\"10.70.0.0/24\"]\n\n\
         [[bgp.neighbor]]\naddress = \"169.254.30.2\"\nasn = {FRR_AS}\ntunnel = \"t0\"\nhold_time = 9\n\n\
         [[bgp.neighbor]]\naddress = \"fd00:30::2\"\nasn = {FRR_AS}\ntunnel = \"t0\"\nhold_time = 9\n"
    );
    let theirs = tunnel(
        "192.0.2.2",
        "192.0.2.1",
        ["169.254.30.2/30", "fd00:30::2/126"],
        (0x2002, &k2),
        (0x1001, &k1),
    );
    // The far gateway: a bridgehead daemon with the tunnel only.
    let conf = w.dir.join("site.toml");
    bridgehead::lab::write_secret(&conf, &theirs).unwrap();
    let site_sock = w.dir.join("site.sock");
    let mut c = w.nss.exec(&site, env!("CARGO_BIN_EXE_bridgehead"));
    c.arg("daemon")
        .arg("--config")
        .arg(&conf)
        .arg("--control")
        .arg(&site_sock)
        .stdout(std::fs::File::create(w.dir.join("site.log")).unwrap())
        .stderr(std::fs::File::create(w.dir.join("site.err")).unwrap());
    w.nss.spawn("site-bridgehead", c).unwrap();
    let s = site_sock.clone();
    wait_for(Duration::from_secs(20), "the far gateway", || {
        Ok(bridgehead::control::request(&s, "status").is_ok())
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", w.our_log("site")));
    let bird = w.start(
        Kind::Bird,
        &site,
        &BgpdConfig {
            asn: FRR_AS,
            router_id: "10.60.0.50".parse().unwrap(),
            neighbors: vec![nbr("169.254.30.1", US_AS), nbr("fd00:30::1", US_AS)],
            announce: vec!["10.66.0.0/24".into(), "fd00:66::/48".into()],
            kernel: true,
            graceful_restart: None,
        },
    );
    // Our daemon: the tunnel plus the speaker. Its config holds keys: mode 0600.
    let conf = w.dir.join("us-tunnel.toml");
    bridgehead::lab::write_secret(&conf, &ours).unwrap();
    let sock = w.dir.join("us-tunnel.sock");
    let mut c = w.nss.exec(&us, env!("CARGO_BIN_EXE_bridgehead"));
    c.arg("daemon")
        .arg("--config")
        .arg(&conf)
        .arg("--control")
        .arg(&sock)
        .stdout(std::fs::File::create(w.dir.join(format!("{us}.log"))).unwrap())
        .stderr(std::fs::File::create(w.dir.join(format!("{us}.err"))).unwrap());
    w.nss.spawn("us-bridgehead", c).unwrap();

    let t = Duration::from_secs(40);
    for n in ["169.254.30.1", "fd00:30::1"] {
        bird.wait_established(&w.nss, a(n), t)
            .unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", bird.log(), w.our_log(&us)));
    }
    let st = bgp_status(&sock);
    assert_eq!(
        st["router_id"], "192.0.2.1",
        "router_id defaults to appliance.private_ip when it is IPv4"
    );
    assert_eq!(our_neighbor(&sock, "169.254.30.2")["tunnel"], "t0");
    for (p, want) in [
        (
            "10.66.0.0/24",
            "10.66.0.0/24 dev bh-t0 proto 248 scope 253 metric 20",
        ),
        (
            "fd00:66::/48",
            "fd00:66::/48 via fd00:30::2 dev bh-t0 proto 248 metric 20",
        ),
    ] {
        wait_for(t, "the learned route over the tunnel", || {
            Ok(kernel_route(&w, &us, p).contains(want))
        })
        .unwrap_or_else(|e| {
            panic!(
                "{p}: {e:#}: {:?}\n{}",
                kernel_route(&w, &us, p),
                bgp_status(&sock)
            )
        });
    }
    // BIRD learned ours over the tunnel and put it in its kernel, towards our inside address.
    wait_for(t, "BIRD's kernel route to our network", || {
        let r = kernel_route(&w, &site, "10.70.0.0/24");
        Ok(r.contains("via 169.254.30.1 dev bh-t0") && r.contains("proto 12"))
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}: {:?}\n{}",
            kernel_route(&w, &site, "10.70.0.0/24"),
            bird.log()
        )
    });
}

/// At start-up our stale routes (protocol 248, our table and metric) are removed and nobody
/// else's are touched, also after a daemon that had learned routes ended.
#[test]
fn stale_routes_go_at_start_and_nobody_elses() {
    let mut w = World::new();
    let (us, peer) = (w.add("us"), w.add("peer"));
    w.link(&us, &peer, 1);
    w.start(
        Kind::Gobgp,
        &peer,
        &BgpdConfig {
            asn: FRR_AS,
            router_id: "10.60.0.2".parse().unwrap(),
            neighbors: vec![nbr("10.60.1.1", US_AS)],
            announce: vec!["10.62.0.0/24".into()],
            kernel: false,
            graceful_restart: None,
        },
    );
    let route = |args: &[&str]| {
        let mut a = vec!["route", "add"];
        a.extend_from_slice(args);
        w.nss.ip(&us, &a).unwrap();
    };
    route(&["10.99.0.0/16", "dev", "v1a", "proto", "248", "metric", "20"]); // ours, stale
    route(&[
        "10.98.0.0/16",
        "dev",
        "v1a",
        "proto",
        "static",
        "metric",
        "20",
    ]);
    route(&["10.97.0.0/16", "dev", "v1a", "proto", "248", "metric", "5"]); // not our metric
    route(&[
        "10.62.0.0/24",
        "dev",
        "v1a",
        "proto",
        "static",
        "metric",
        "100",
    ]);
    let sock = w.start_us(&us, &our_bgp(&[("10.60.1.2", FRR_AS)]));
    let t = Duration::from_secs(40);
    wait_for(t, "the learned route", || {
        Ok(kernel_route(&w, &us, "10.62.0.0/24").contains("via 10.60.1.2 dev v1a proto 248"))
    })
    .unwrap_or_else(|e| panic!("{e:#}: {}", bgp_status(&sock)));
    assert_eq!(
        kernel_route(&w, &us, "10.99.0.0/16").trim(),
        "",
        "stale route of ours"
    );
    for kept in ["10.98.0.0/16", "10.97.0.0/16"] {
        assert!(
            !kernel_route(&w, &us, kept).trim().is_empty(),
            "{kept} was removed"
        );
    }
    // The static 10.62.0.0/24 at metric 100 lives beside ours.
    assert!(kernel_route(&w, &us, "10.62.0.0/24").contains("proto 4 scope 253 metric 100"));

    // A daemon that ends leaves its routes (the daemon keeps the service alive until exit);
    // the next start with no neighbor removes them as stale, and only them.
    w.nss
        .stop(&format!("{us}-bridgehead"), Duration::from_secs(10));
    let conf = w.dir.join("us-again.toml");
    std::fs::write(
        &conf,
        format!("[bgp]\nasn = {US_AS}\nrouter_id = \"10.60.0.10\"\n"),
    )
    .unwrap();
    let sock2 = w.dir.join("us-again.sock");
    let mut c = w.nss.exec(&us, env!("CARGO_BIN_EXE_bridgehead"));
    c.arg("daemon")
        .arg("--config")
        .arg(&conf)
        .arg("--control")
        .arg(&sock2);
    w.nss.spawn("us-again", c).unwrap();
    let s2 = sock2.clone();
    wait_for(Duration::from_secs(20), "the second daemon", || {
        Ok(bridgehead::control::request(&s2, "status").is_ok())
    })
    .unwrap();
    let r = kernel_route(&w, &us, "10.62.0.0/24");
    assert!(
        !r.contains("proto 248"),
        "a stale route of ours survived a start: {r}"
    );
    assert!(r.contains("proto 4"), "{r}");
    assert!(!kernel_route(&w, &us, "10.98.0.0/16").trim().is_empty());
    assert!(!kernel_route(&w, &us, "10.97.0.0/16").trim().is_empty());
}

/// Graceful restart (RFC 4724) with GoBGP: its process dies (TCP closes, no NOTIFICATION), its
/// routes stay in our kernel as stale while it restarts, and are still there once the new
/// session is up.
#[test]
fn graceful_restart_keeps_gobgps_routes_across_its_restart() {
    let mut w = World::new();
    let (us, peer) = (w.add("us"), w.add("peer"));
    w.link(&us, &peer, 1);
    let cfg = BgpdConfig {
        asn: FRR_AS,
        router_id: "10.60.0.2".parse().unwrap(),
        neighbors: vec![nbr("10.60.1.1", US_AS)],
        announce: vec!["10.62.0.0/24".into()],
        kernel: false,
        graceful_restart: Some(60),
    };
    let g = w.start(Kind::Gobgp, &peer, &cfg);
    let sock = w.start_us(&us, &our_bgp(&[("10.60.1.2", FRR_AS)]));
    let t = Duration::from_secs(40);
    let learned = |w: &World| kernel_route(w, &us, "10.62.0.0/24").contains(RTPROT);
    wait_for(t, "the learned route", || Ok(learned(&w)))
        .unwrap_or_else(|e| panic!("{e:#}: {}", bgp_status(&sock)));

    let pid = g.pid().to_string();
    bridgehead::netns::run(std::process::Command::new("kill").args(["-KILL", &pid])).unwrap();
    wait_for(
        Duration::from_secs(15),
        "our side to see the session go",
        || Ok(our_neighbor(&sock, "10.60.1.2")["state"] != "Established"),
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        learned(&w),
        "the route went with the session: {}",
        bgp_status(&sock)
    );

    // The restarted GoBGP (label and files of its own) re-establishes and re-announces.
    let label = format!("{peer}-gobgp-restarted");
    let dir = w.dir.join(&label);
    let g2 = Bgpd::start(&mut w.nss, Kind::Gobgp, &peer, &dir, &label, &cfg).unwrap();
    g2.wait_established(&w.nss, a("10.60.1.1"), t)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", g2.log()));
    wait_for(t, "our side Established again", || {
        Ok(our_neighbor(&sock, "10.60.1.2")["state"] == "Established")
    })
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(learned(&w), "{}", bgp_status(&sock));
    assert!(our_neighbor(&sock, "10.60.1.2")["flaps"].as_u64() >= Some(1));
}

/// Per-neighbor policy from the configuration reaches the wire: the export list, AS-path
/// prepend and MED as BIRD sees them, and the import list in our kernel.
#[test]
fn neighbor_policy_reaches_the_wire_with_bird() {
    let mut w = World::new();
    let (us, peer) = (w.add("us"), w.add("peer"));
    w.link(&us, &peer, 1);
    let bird = w.start(
        Kind::Bird,
        &peer,
        &BgpdConfig {
            asn: FRR_AS,
            router_id: "10.60.0.2".parse().unwrap(),
            neighbors: vec![nbr("10.60.1.1", US_AS)],
            announce: vec!["10.62.0.0/24".into(), "10.63.0.0/24".into()],
            kernel: false,
            graceful_restart: None,
        },
    );
    let conf = format!(
        "[bgp]\nasn = {US_AS}\nrouter_id = \"10.60.0.10\"\n\
         advertise = [\"10.70.0.0/24\", \"10.71.0.0/24\"]\n\n\
         [[bgp.neighbor]]\naddress = \"10.60.1.2\"\nasn = {FRR_AS}\nhold_time = 9\n\
         export = [\"10.70.0.0/24\"]\nprepend = 2\nmed = 50\n\
         import = [\"deny 10.62.0.0/24\", \"10.0.0.0/8 le 32\"]\n"
    );
    let sock = w.start_us(&us, &conf);
    let t = Duration::from_secs(40);
    wait_for(t, "BIRD to learn our exported network", || {
        Ok(bird.learned(&w.nss)? == ["10.70.0.0/24"])
    })
    .unwrap_or_else(|e| panic!("{e:#}: {:?}\n{}", bird.learned(&w.nss), w.our_log(&us)));
    let detail = bird.route_detail(&w.nss, "10.70.0.0/24").unwrap();
    assert!(
        detail.contains(&format!("BGP.as_path: {US_AS} {US_AS} {US_AS}")),
        "{detail}"
    );
    assert!(detail.contains("BGP.med: 50"), "{detail}");

    wait_for(t, "the imported route", || {
        Ok(kernel_route(&w, &us, "10.63.0.0/24").contains(RTPROT))
    })
    .unwrap_or_else(|e| panic!("{e:#}: {}", bgp_status(&sock)));
    assert_eq!(
        kernel_route(&w, &us, "10.62.0.0/24").trim(),
        "",
        "import denied it"
    );
    wait_for(
        Duration::from_secs(5),
        "our count of accepted prefixes",
        || Ok(our_neighbor(&sock, "10.60.1.2")["prefixes_received"] == 1),
    )
    .unwrap_or_else(|e| panic!("{e:#}: {}", our_neighbor(&sock, "10.60.1.2")));
}

/// TCP MD5 (RFC 2385): FRR and GoBGP with the same password as ours come up and FRR's route
/// reaches our kernel; BIRD with another password never gets past the TCP handshake, and our status says
/// the kernel dropped its wrongly signed segments.
#[test]
fn tcp_md5_same_password_comes_up_and_a_wrong_one_does_not() {
    use std::os::unix::fs::PermissionsExt;
    assert!(
        bh_sys::tcp_md5::supported().unwrap(),
        "this kernel has no CONFIG_TCP_MD5SIG (setsockopt(TCP_MD5SIG) fails)"
    );
    let mut w = World::new();
    let (us, frr, bird, gobgp) = (w.add("us"), w.add("frr"), w.add("bird"), w.add("gobgp"));
    w.link(&us, &frr, 1);
    w.link(&us, &bird, 2);
    w.link(&us, &gobgp, 3);
    let with_pw = |addr: &str, pw: &str| Neighbor {
        md5_password: Some(pw.into()),
        ..nbr(addr, US_AS)
    };
    let f = w.start(
        Kind::Frr,
        &frr,
        &BgpdConfig {
            asn: FRR_AS,
            router_id: "10.60.0.2".parse().unwrap(),
            neighbors: vec![with_pw("10.60.1.1", "Right.Md5-Secret")],
            announce: vec!["10.66.0.0/24".into()],
            kernel: false,
            graceful_restart: None,
        },
    );
    let b = w.start(
        Kind::Bird,
        &bird,
        &BgpdConfig {
            asn: BIRD_AS,
            router_id: "10.60.0.3".parse().unwrap(),
            neighbors: vec![with_pw("10.60.2.1", "Wrong.Md5-Secret")],
            announce: vec!["10.67.0.0/24".into()],
            kernel: false,
            graceful_restart: None,
        },
    );
    let g = w.start(
        Kind::Gobgp,
        &gobgp,
        &BgpdConfig {
            asn: GOBGP_AS,
            router_id: "10.60.0.4".parse().unwrap(),
            neighbors: vec![with_pw("10.60.3.1", "Right.Md5-Secret")],
            announce: vec![],
            kernel: false,
            graceful_restart: None,
        },
    );
    let key = w.dir.join("peers.key");
    std::fs::write(&key, "Right.Md5-Secret\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut conf = our_bgp(&[]);
    for (n, asn) in [
        ("10.60.1.2", FRR_AS),
        ("10.60.2.2", BIRD_AS),
        ("10.60.3.2", GOBGP_AS),
    ] {
        conf.push_str(&format!(
            "{}\nmd5_password_file = \"{}\"\n\n",
            our_nbr(n, asn).trim_end(),
            key.display()
        ));
    }
    let sock = w.start_us(&us, &conf);
    let t = Duration::from_secs(40);
    f.wait_established(&w.nss, a("10.60.1.1"), t)
        .unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", f.log(), w.our_log(&us)));
    wait_for(t, "our side Established with FRR", || {
        Ok(our_neighbor(&sock, "10.60.1.2")["state"] == "Established")
    })
    .unwrap_or_else(|e| panic!("{e:#}: {}", our_neighbor(&sock, "10.60.1.2")));
    assert_eq!(our_neighbor(&sock, "10.60.1.2")["tcp_md5"], true);
    wait_for(t, "FRR's route in our kernel", || {
        Ok(kernel_route(&w, &us, "10.66.0.0/24").contains(RTPROT))
    })
    .unwrap();
    wait_for(t, "FRR to learn our network", || {
        Ok(f.learned(&w.nss)?.contains(&"10.70.0.0/24".to_owned()))
    })
    .unwrap();
    g.wait_established(&w.nss, a("10.60.3.1"), t)
        .unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", g.log(), w.our_log(&us)));
    // The password is in no log line of ours.
    assert!(!w.our_log(&us).contains("Right.Md5"), "password logged");

    // BIRD, with the wrong password, stays down on both sides for several connect rounds
    // (ours every 5 s, BIRD's every 2 s), and our status says why.
    wait_for(
        Duration::from_secs(25),
        "our status to name the MD5 drops",
        || {
            let st = our_neighbor(&sock, "10.60.2.2");
            Ok(st["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("wrong MD5 signature")))
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}: {}\n{}",
            our_neighbor(&sock, "10.60.2.2"),
            w.our_log(&us)
        )
    });
    assert_ne!(our_neighbor(&sock, "10.60.2.2")["state"], "Established");
    let st = b.peer_state(&w.nss, a("10.60.2.1")).unwrap();
    assert_ne!(st.state, "Established", "{st:?}");
    assert!(!kernel_route(&w, &us, "10.67.0.0/24").contains(RTPROT));
    // FRR's session stayed up throughout.
    assert_eq!(our_neighbor(&sock, "10.60.1.2")["state"], "Established");
}

/// `bridgehead routes` against FRR and GoBGP in one AS: each announces a prefix of its own and
/// one both share. The view lists every prefix with its path from the right neighbor (AS path,
/// next hop), marks the best ones (both for the shared prefix: ECMP), says each is in the
/// kernel through the veth it came over, lists ours as advertised to both, and `--limit`
/// bounds it with the rest counted. Over IPv4 sessions only our IPv4 network is advertised.
#[test]
fn routes_command_shows_learned_best_installed_and_advertised_prefixes() {
    let mut w = World::new();
    let (us, p1, p2) = (w.add("us"), w.add("g1"), w.add("g2"));
    w.link(&us, &p1, 1);
    w.link(&us, &p2, 2);
    for (ns, n, kind) in [(&p1, 1u8, Kind::Frr), (&p2, 2, Kind::Gobgp)] {
        w.start(
            kind,
            ns,
            &BgpdConfig {
                asn: FRR_AS,
                router_id: format!("10.60.0.{}", 30 + n).parse().unwrap(),
                neighbors: vec![nbr(&format!("10.60.{n}.1"), US_AS)],
                announce: vec!["10.65.0.0/24".into(), format!("10.66.{n}.0/24")],
                kernel: false,
                graceful_restart: None,
            },
        );
    }
    let sock = w.start_us(
        &us,
        &our_bgp(&[("10.60.1.2", FRR_AS), ("10.60.2.2", FRR_AS)]),
    );
    let ctl = sock.to_str().unwrap().to_owned();
    let routes = |extra: &[&str]| -> (bool, String, String) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bridgehead"))
            .arg("routes")
            .args(extra)
            .args(["--control", &ctl])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let view = || -> serde_json::Value {
        let (ok, out, err) = routes(&["--json"]);
        assert!(ok, "{err}");
        serde_json::from_str(&out).unwrap()
    };
    let find = |v: &serde_json::Value, p: &str| -> serde_json::Value {
        v["prefixes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["prefix"] == p)
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    };
    // Everything learned, best and in the kernel (the FIB sync runs every 100 ms or so).
    let ready = |v: &serde_json::Value| {
        v["prefixes_total"] == 3
            && ["10.65.0.0/24", "10.66.1.0/24", "10.66.2.0/24"]
                .iter()
                .all(|p| find(v, p)["installed"] == true)
            && find(v, "10.65.0.0/24")["ecmp"] == 2
            && v["advertised"]
                .as_array()
                .is_some_and(|a| a.iter().all(|n| n["total"] == 1))
    };
    wait_for(
        Duration::from_secs(40),
        "all prefixes learned and installed",
        || Ok(ready(&view())),
    )
    .unwrap_or_else(|e| panic!("{e:#}: {}\n{}", view(), w.our_log(&us)));
    let v = view();
    // The prefix only FRR sent: one path, from 10.60.1.2, best, out of v1a.
    let own = find(&v, "10.66.1.0/24");
    let paths = own["paths"].as_array().unwrap();
    assert_eq!(paths.len(), 1, "{own}");
    assert_eq!(paths[0]["neighbor"], "10.60.1.2");
    assert_eq!(paths[0]["next_hop"], "10.60.1.2");
    assert_eq!(paths[0]["as_path"], FRR_AS.to_string());
    assert_eq!(paths[0]["best"], true);
    assert_eq!(own["devices"], serde_json::json!(["v1a"]), "{own}");
    // The shared one: both paths best (ECMP), in the kernel through both veths, as the
    // kernel itself says.
    let shared = find(&v, "10.65.0.0/24");
    let from: Vec<_> = shared["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["neighbor"].as_str().unwrap().to_owned(),
                p["best"].clone(),
            )
        })
        .collect();
    assert_eq!(
        from,
        [
            ("10.60.1.2".to_owned(), serde_json::json!(true)),
            ("10.60.2.2".to_owned(), serde_json::json!(true))
        ]
    );
    assert_eq!(
        shared["devices"],
        serde_json::json!(["v1a", "v2a"]),
        "{shared}"
    );
    let k = kernel_route(&w, &us, "10.65.0.0/24");
    assert!(
        k.contains(RTPROT) && k.contains("dev v1a") && k.contains("dev v2a"),
        "{k}"
    );
    // Ours, advertised to both (IPv4 sessions: the IPv6 network is not sent over them).
    for n in v["advertised"].as_array().unwrap() {
        let list: Vec<&str> = n["prefixes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p.as_str())
            .collect();
        assert_eq!(list, ["10.70.0.0/24"], "{n}");
        assert_eq!(n["state"], "Established");
    }

    // The same as text, in 80 columns.
    let (ok, out, err) = routes(&[]);
    assert!(ok, "{err}");
    for l in out.lines() {
        assert!(l.chars().count() <= 80, "over 80 columns: {l:?}");
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("* 10.65.0.0/24 via v1a, v2a (ECMP 2)")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("    > 10.60.2.2: next hop 10.60.2.2, AS path 65002")),
        "{out}"
    );
    let adv = out.split("Advertised:").nth(1).unwrap_or_default();
    assert!(
        adv.contains("10.60.1.2, Established: 1 prefix(es)") && adv.contains("10.70.0.0/24"),
        "{out}"
    );

    // Bounded: one prefix shown, the other two counted.
    let (ok, out, err) = routes(&["--limit", "1", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["prefixes"].as_array().unwrap().len(), 1);
    assert_eq!(v["prefixes"][0]["prefix"], "10.65.0.0/24");
    assert_eq!(v["prefixes_not_shown"], 2);
    assert_eq!(v["prefixes_total"], 3);
}

/// A static route at our metric holds a prefix we learn: the incremental sync's exclusive add
/// leaves it alone (a conflict, in the status and the routes view), the other learned prefix
/// goes in, and once the static route is deleted ours takes its place at the next conflict
/// recheck (every 10 s).
#[test]
fn a_foreign_route_at_our_metric_is_left_alone_until_it_goes() {
    let mut w = World::new();
    let (us, peer) = (w.add("us"), w.add("peer"));
    w.link(&us, &peer, 1);
    // Our daemon first (its start-up reconcile must not see the foreign route), then the
    // foreign route, then the peer that announces its prefix.
    let sock = w.start_us(&us, &our_bgp(&[("10.60.1.2", FRR_AS)]));
    w.nss
        .ip(
            &us,
            &[
                "route",
                "add",
                "10.62.0.0/24",
                "dev",
                "v1a",
                "proto",
                "static",
                "metric",
                "20",
            ],
        )
        .unwrap();
    w.start(
        Kind::Gobgp,
        &peer,
        &BgpdConfig {
            asn: FRR_AS,
            router_id: "10.60.0.2".parse().unwrap(),
            neighbors: vec![nbr("10.60.1.1", US_AS)],
            announce: vec!["10.62.0.0/24".into(), "10.63.0.0/24".into()],
            kernel: false,
            graceful_restart: None,
        },
    );
    let t = Duration::from_secs(40);
    wait_for(t, "the other learned prefix in the kernel", || {
        Ok(kernel_route(&w, &us, "10.63.0.0/24").contains(RTPROT))
    })
    .unwrap_or_else(|e| panic!("{e:#}: {}\n{}", bgp_status(&sock), w.our_log(&us)));
    let r = kernel_route(&w, &us, "10.62.0.0/24");
    assert!(
        r.contains("proto 4") && !r.contains(RTPROT),
        "overwritten: {r}"
    );
    wait_for(
        Duration::from_secs(10),
        "the conflict in the status",
        || Ok(bgp_status(&sock)["fib"]["conflicts"] == 1),
    )
    .unwrap_or_else(|e| panic!("{e:#}: {}", bgp_status(&sock)));
    let view: serde_json::Value =
        serde_json::from_str(&bridgehead::control::request(&sock, "routes").unwrap()).unwrap();
    let p = view["prefixes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["prefix"] == "10.62.0.0/24")
        .cloned()
        .unwrap_or_default();
    assert_eq!(p["installed"], false, "{view}");
    assert_eq!(p["paths"][0]["best"], true, "{view}");

    // The static route goes; ours follows within a recheck.
    w.nss
        .ip(
            &us,
            &[
                "route",
                "del",
                "10.62.0.0/24",
                "proto",
                "static",
                "metric",
                "20",
            ],
        )
        .unwrap();
    wait_for(
        Duration::from_secs(45),
        "our route once the foreign one is gone",
        || Ok(kernel_route(&w, &us, "10.62.0.0/24").contains("via 10.60.1.2 dev v1a proto 248")),
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}: {:?}\n{}",
            kernel_route(&w, &us, "10.62.0.0/24"),
            bgp_status(&sock)
        )
    });
    wait_for(Duration::from_secs(10), "no conflict left", || {
        Ok(bgp_status(&sock)["fib"]["conflicts"] == 0)
    })
    .unwrap_or_else(|e| panic!("{e:#}: {}", bgp_status(&sock)));
}
