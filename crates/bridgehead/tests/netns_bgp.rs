//! BGP interop in network namespaces with the real daemons from Debian: BIRD 2, FRR and GoBGP,
//! started through `bridgehead::peers::bgpd`.
//!
//! `reference_daemons_peer_and_exchange_routes` checks the harness itself: BIRD peers with FRR
//! and with GoBGP over IPv4 and IPv6 (eBGP, a 4-octet AS), routes flow both ways, BIRD puts
//! what it learned in its kernel, and a withdraw at FRR takes the route out of BIRD's kernel.
//! `fib_sync_installs_ecmp_from_two_peers` runs bridgehead's FIB path (the `bh_fib` reconcile
//! applied through `bh_sys::link`, as the BGP service does) on the best paths that FRR and
//! GoBGP report, and checks the single multipath kernel route and its removal.
//!
//! Needs root (CI runs as root). Namespaces are named `bhg<pid>-<n>-*` and removed on drop.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bridgehead::netns::Namespaces;
use bridgehead::peers::bgpd::{Bgpd, BgpdConfig, Kind, Neighbor, wait_for};

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A test's namespaces and scratch directory.
struct World {
    nss: Namespaces,
    prefix: String,
    dir: PathBuf,
}

impl World {
    fn new() -> Self {
        assert!(
            bridgehead::lab::is_root(),
            "this test builds network namespaces and must run as root (CI does)"
        );
        let prefix = format!(
            "bhg{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(&prefix);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
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
