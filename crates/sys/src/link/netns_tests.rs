//! Multipath routes, the full route dump and the link watch against the real kernel, each test
//! in a fresh network namespace (needs root, like the crate's other kernel tests).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::netns::run_in_netns;
use crate::tun::Tun;

const PROTO: u8 = 0xbe;
const TABLE: u32 = 100;
const METRIC: u32 = 20;

fn ip(args: &[&str]) -> String {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two TUN devices, up, with 10.7N.0.1/24 and fd00:7N::1/64 (N = 1, 2).
fn two_tuns() -> (Vec<Tun>, u32, u32) {
    let mut tuns = Vec::new();
    let mut idx = Vec::new();
    for n in 1..=2u8 {
        let t = Tun::create(&format!("bh-mp{n}"), 1).unwrap();
        let i = ifindex(t.name()).unwrap();
        add_address(i, IpAddr::from([10, 70 + n, 0, 1]), 24).unwrap();
        add_address(i, format!("fd00:7{n}::1").parse().unwrap(), 64).unwrap();
        set_up(i).unwrap();
        tuns.push(t);
        idx.push(i);
    }
    (tuns, idx[0], idx[1])
}

fn dev(ifindex: u32) -> NextHop {
    NextHop {
        ifindex,
        gateway: None,
    }
}

/// Next hops of our routes to `dst/len` in TABLE, merged over dump entries.
fn hops_of(nl: &mut Netlink, dst: IpAddr, len: u8) -> BTreeSet<NextHop> {
    nl.routes_with_nexthops(libc::AF_UNSPEC, TABLE)
        .unwrap()
        .into_iter()
        .filter(|r| (r.dst, r.prefix_len, r.protocol, r.metric) == (dst, len, PROTO, METRIC))
        .flat_map(|r| r.nexthops)
        .collect()
}

#[test]
fn multipath_routes_are_replaced_dumped_and_deleted() {
    run_in_netns(|| {
        let (_tuns, a, b) = two_tuns();
        let mut nl = Netlink::open().unwrap();
        let v4: IpAddr = "10.99.0.0".parse().unwrap();
        let v6: IpAddr = "fd00:99::".parse().unwrap();

        let gw = |i, g: &str| NextHop {
            ifindex: i,
            gateway: Some(g.parse().unwrap()),
        };
        let v6_gws = [gw(a, "fd00:71::2"), gw(b, "fd00:72::2")];
        nl.replace_route(v4, 16, &[dev(a), dev(b)], TABLE, PROTO, METRIC)
            .unwrap();
        // The kernel refuses IPv6 multipath device routes (EINVAL): ECMP there needs gateways.
        let err = nl
            .replace_route(v6, 48, &[dev(a), dev(b)], TABLE, PROTO, METRIC)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
        nl.replace_route(v6, 48, &v6_gws, TABLE, PROTO, METRIC)
            .unwrap();
        let shown = ip(&["-N", "route", "show", "table", "100"]);
        assert!(
            shown.contains("10.99.0.0/16 proto 190 scope 253 metric 20"),
            "{shown}"
        );
        assert!(shown.contains("nexthop dev bh-mp1 weight 1"), "{shown}");
        assert!(shown.contains("nexthop dev bh-mp2 weight 1"), "{shown}");
        let shown6 = ip(&["-N", "-6", "route", "show", "table", "100"]);
        assert!(
            shown6.contains("fd00:99::/48 proto 190 metric 20"),
            "{shown6}"
        );
        assert!(
            shown6.contains("nexthop via fd00:71::2 dev bh-mp1")
                && shown6.contains("nexthop via fd00:72::2 dev bh-mp2"),
            "{shown6}"
        );
        assert_eq!(hops_of(&mut nl, v4, 16), [dev(a), dev(b)].into());
        assert_eq!(hops_of(&mut nl, v6, 48), v6_gws.into());

        // Replace in place with one hop, then with gateways.
        nl.replace_route(v4, 16, &[dev(b)], TABLE, PROTO, METRIC)
            .unwrap();
        nl.replace_route(v6, 48, &[dev(a)], TABLE, PROTO, METRIC)
            .unwrap();
        assert_eq!(hops_of(&mut nl, v4, 16), [dev(b)].into());
        assert_eq!(hops_of(&mut nl, v6, 48), [dev(a)].into());
        let v4_gws = [gw(a, "10.71.0.2"), gw(b, "10.72.0.2")];
        nl.replace_route(v4, 16, &v4_gws, TABLE, PROTO, METRIC)
            .unwrap();
        assert_eq!(hops_of(&mut nl, v4, 16), v4_gws.into());
        let shown = ip(&["-N", "route", "show", "table", "100"]);
        assert!(
            shown.contains("nexthop via 10.71.0.2 dev bh-mp1"),
            "{shown}"
        );
        assert_eq!(shown.matches("10.99.0.0/16").count(), 1, "{shown}");

        // A static route of another protocol is never matched by our deletes.
        let other: IpAddr = "10.98.0.0".parse().unwrap();
        ip(&[
            "route",
            "add",
            "10.98.0.0/16",
            "dev",
            "bh-mp1",
            "table",
            "100",
            "proto",
            "static",
            "metric",
            "20",
        ]);
        let err = nl
            .delete_route(other, 16, TABLE, PROTO, METRIC)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ESRCH));
        assert!(ip(&["route", "show", "table", "100"]).contains("10.98.0.0/16"));

        nl.delete_route(v4, 16, TABLE, PROTO, METRIC).unwrap();
        nl.delete_route(v6, 48, TABLE, PROTO, METRIC).unwrap();
        assert!(hops_of(&mut nl, v4, 16).is_empty());
        assert!(hops_of(&mut nl, v6, 48).is_empty());
        let again = nl.delete_route(v4, 16, TABLE, PROTO, METRIC).unwrap_err();
        assert_eq!(again.raw_os_error(), Some(libc::ESRCH));
        // The static route is still there, as the dump reports it.
        let left = nl.routes_with_nexthops(libc::AF_INET, TABLE).unwrap();
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!((left[0].dst, left[0].protocol), (other, 4));
        assert_eq!(left[0].nexthops, vec![dev(a)]);

        // Bad input is refused before the kernel sees it.
        for bad in [
            nl.replace_route(v4, 16, &[], TABLE, PROTO, METRIC),
            nl.replace_route(v4, 16, &[gw(a, "fe80::1")], TABLE, PROTO, METRIC),
            nl.replace_route(
                "10.99.1.0".parse().unwrap(),
                16,
                &[dev(a)],
                TABLE,
                PROTO,
                METRIC,
            ),
            nl.delete_route(v4, 16, TABLE, 0, METRIC),
        ] {
            assert_eq!(bad.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
        }
    });
}

#[test]
fn link_watch_reports_a_device_going_down_and_away() {
    run_in_netns(|| {
        let (mut tuns, a, b) = two_tuns();
        let mut watch = LinkWatch::open().unwrap();
        let mut nl = Netlink::open().unwrap();
        let v4: IpAddr = "10.99.0.0".parse().unwrap();
        nl.replace_route(v4, 16, &[dev(a), dev(b)], TABLE, PROTO, METRIC)
            .unwrap();

        nl.set_down(b).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = None;
        while seen.is_none() && Instant::now() < deadline {
            for ev in watch.wait(Duration::from_millis(200)).unwrap() {
                if ev.ifindex == b && !ev.up {
                    seen = Some(ev);
                }
            }
        }
        let ev = seen.expect("no RTM_NEWLINK for the device set down within 10 s");
        assert_eq!(ev.name.as_deref(), Some("bh-mp2"));
        assert!(!ev.usable());
        // The kernel keeps the multipath route but no longer uses the hop through the down
        // device: the dump reports it apart.
        let r = nl
            .routes_with_nexthops(libc::AF_INET, TABLE)
            .unwrap()
            .into_iter()
            .find(|r| r.dst == v4)
            .unwrap();
        assert_eq!(r.nexthops, vec![dev(a)]);
        assert_eq!(r.dead, vec![dev(b)]);

        // Closing the last queue removes the TUN device: RTM_DELLINK.
        drop(tuns.pop());
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut removed = false;
        while !removed && Instant::now() < deadline {
            removed = watch
                .wait(Duration::from_millis(200))
                .unwrap()
                .iter()
                .any(|ev| ev.ifindex == b && ev.removed);
        }
        assert!(removed, "no RTM_DELLINK within 10 s");
    });
}
