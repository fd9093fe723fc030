//! Unit tests and a property test against a model of one kernel routing table.

use std::collections::BTreeMap;
use std::net::IpAddr;

use proptest::prelude::*;

use super::*;

const SCOPE: Scope = Scope {
    table: 100,
    protocol: 0xbe,
    metric: 20,
};

fn p(s: &str) -> Prefix {
    let (a, l) = s.split_once('/').unwrap();
    Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap()
}

fn dev(ifindex: u32) -> NextHop {
    NextHop {
        ifindex,
        gateway: None,
    }
}

fn obs(prefix: &str, table: u32, protocol: u8, metric: u32, hops: &[u32]) -> Observed {
    Observed {
        prefix: p(prefix),
        table,
        protocol,
        metric,
        nexthops: hops.iter().map(|&i| dev(i)).collect(),
    }
}

#[test]
fn prefixes_reject_host_bits_and_long_lengths() {
    assert!(Prefix::new("10.0.0.0".parse().unwrap(), 8).is_ok());
    assert_eq!(
        Prefix::new("10.0.0.1".parse().unwrap(), 8),
        Err(FibError::HostBits {
            addr: "10.0.0.1".parse().unwrap(),
            len: 8
        })
    );
    assert!(matches!(
        Prefix::new("10.0.0.0".parse().unwrap(), 33),
        Err(FibError::PrefixTooLong { .. })
    ));
    assert!(Prefix::new("::".parse().unwrap(), 0).is_ok());
    assert!(Prefix::new("2001:db8::1".parse().unwrap(), 128).is_ok());
    assert!(Prefix::new("2001:db8::1".parse().unwrap(), 127).is_err());
    assert_eq!(p("10.1.0.0/16").to_string(), "10.1.0.0/16");
}

#[test]
fn new_routes_are_added_and_equal_ones_left_alone() {
    let mut want = Desired::new();
    want.insert(p("10.1.0.0/16"), [dev(5), dev(6)].into());
    want.insert(p("10.2.0.0/16"), [dev(5)].into());
    let have = vec![obs("10.2.0.0/16", 100, 0xbe, 20, &[5])];
    assert_eq!(
        reconcile(&want, &have, SCOPE),
        vec![Op::Replace {
            prefix: p("10.1.0.0/16"),
            nexthops: [dev(5), dev(6)].into()
        }]
    );
}

#[test]
fn changed_next_hops_are_replaced_and_unwanted_routes_deleted() {
    let mut want = Desired::new();
    want.insert(p("10.1.0.0/16"), [dev(5)].into());
    want.insert(p("10.3.0.0/16"), NextHops::new());
    let have = vec![
        obs("10.1.0.0/16", 100, 0xbe, 20, &[5, 6]),
        obs("10.3.0.0/16", 100, 0xbe, 20, &[6]),
        obs("10.4.0.0/16", 100, 0xbe, 20, &[6]),
    ];
    assert_eq!(
        reconcile(&want, &have, SCOPE),
        vec![
            Op::Delete {
                prefix: p("10.3.0.0/16")
            },
            Op::Delete {
                prefix: p("10.4.0.0/16")
            },
            Op::Replace {
                prefix: p("10.1.0.0/16"),
                nexthops: [dev(5)].into()
            },
        ]
    );
}

#[test]
fn other_protocols_tables_and_metrics_are_never_touched() {
    let mut want = Desired::new();
    want.insert(p("10.1.0.0/16"), [dev(5)].into());
    want.insert(p("10.9.0.0/16"), [dev(5)].into());
    let have = vec![
        // A static route on the desired prefix, same table and metric: a conflict.
        obs("10.1.0.0/16", 100, 4, 20, &[2]),
        // Our protocol but another table or metric: not ours to manage.
        obs("10.5.0.0/16", 254, 0xbe, 20, &[5]),
        obs("10.6.0.0/16", 100, 0xbe, 0, &[5]),
        // A foreign route elsewhere in our table, not wanted by us: left alone.
        obs("10.7.0.0/16", 100, 186, 20, &[5]),
        // A foreign route at another metric does not block ours.
        obs("10.9.0.0/16", 100, 4, 100, &[2]),
    ];
    assert_eq!(
        reconcile(&want, &have, SCOPE),
        vec![
            Op::Conflict {
                prefix: p("10.1.0.0/16"),
                protocol: 4
            },
            Op::Replace {
                prefix: p("10.9.0.0/16"),
                nexthops: [dev(5)].into()
            },
        ]
    );
}

#[test]
fn split_multipath_dump_entries_are_merged() {
    let mut want = Desired::new();
    want.insert(p("fd00:1::/48"), [dev(5), dev(6)].into());
    let have = vec![
        obs("fd00:1::/48", 100, 0xbe, 20, &[5]),
        obs("fd00:1::/48", 100, 0xbe, 20, &[6]),
    ];
    assert!(reconcile(&want, &have, SCOPE).is_empty());
}

#[test]
fn a_device_going_down_drops_its_next_hops() {
    let mut want = Desired::new();
    want.insert(p("10.1.0.0/16"), [dev(5), dev(6)].into());
    want.insert(p("10.2.0.0/16"), [dev(6)].into());
    want.insert(p("10.3.0.0/16"), [dev(7)].into());
    assert_eq!(without_device(&mut want, 6), 2);
    assert_eq!(want.len(), 2);
    assert_eq!(want[&p("10.1.0.0/16")], [dev(5)].into());
    assert!(!want.contains_key(&p("10.2.0.0/16")));
    assert_eq!(without_device(&mut want, 6), 0);
}

/// A kernel routing table keyed as the kernel keys it: (table, prefix, metric).
type Kernel = BTreeMap<(u32, Prefix, u32), (u8, NextHops)>;

fn apply(kernel: &mut Kernel, ops: &[Op], scope: Scope) {
    for op in ops {
        let key = |prefix| (scope.table, prefix, scope.metric);
        match op {
            Op::Replace { prefix, nexthops } => {
                // What NLM_F_REPLACE would do: overwrite whatever holds the key.
                kernel.insert(key(*prefix), (scope.protocol, nexthops.clone()));
            }
            Op::Delete { prefix } => {
                let k = key(*prefix);
                assert_eq!(
                    kernel.get(&k).map(|(proto, _)| *proto),
                    Some(scope.protocol),
                    "delete of a route that is not ours"
                );
                kernel.remove(&k);
            }
            Op::Conflict { .. } => {}
        }
    }
}

fn dump(kernel: &Kernel) -> Vec<Observed> {
    kernel
        .iter()
        .map(|(&(table, prefix, metric), (protocol, hops))| Observed {
            prefix,
            table,
            protocol: *protocol,
            metric,
            nexthops: hops.iter().copied().collect(),
        })
        .collect()
}

fn arb_prefix() -> impl Strategy<Value = Prefix> {
    prop_oneof![
        (0u8..8).prop_map(|i| Prefix::new(IpAddr::from([10, i, 0, 0]), 16).unwrap()),
        (0u16..8)
            .prop_map(|i| Prefix::new(IpAddr::from([0xfd00, i, 0, 0, 0, 0, 0, 0]), 32).unwrap()),
    ]
}

fn arb_hops() -> impl Strategy<Value = NextHops> {
    proptest::collection::btree_set(
        (1u32..5, proptest::option::of(0u8..3)).prop_map(|(ifindex, gw)| NextHop {
            ifindex,
            gateway: gw.map(|g| IpAddr::from([169, 254, 0, g])),
        }),
        0..4,
    )
}

fn arb_kernel() -> impl Strategy<Value = Kernel> {
    proptest::collection::btree_map(
        (
            prop_oneof![Just(100u32), Just(254u32)],
            arb_prefix(),
            prop_oneof![Just(20u32), Just(0u32)],
        ),
        (
            prop_oneof![Just(0xbeu8), Just(4u8), Just(186u8)],
            arb_hops().prop_filter("non-empty", |h| !h.is_empty()),
        ),
        0..12,
    )
}

proptest! {
    #[test]
    fn reconcile_converges_in_one_step_and_spares_others(
        desired in proptest::collection::btree_map(arb_prefix(), arb_hops(), 0..10),
        kernel in arb_kernel(),
    ) {
        let before = kernel.clone();
        let mut k = kernel;
        let ops = reconcile(&desired, &dump(&k), SCOPE);
        apply(&mut k, &ops, SCOPE);
        // Idempotent: a second pass changes nothing.
        let again = reconcile(&desired, &dump(&k), SCOPE);
        prop_assert!(again.iter().all(|op| matches!(op, Op::Conflict { .. })), "{again:?}");
        // Every route not ours (protocol, table or metric) is exactly as it was.
        for (key, val) in &before {
            let ours = val.0 == SCOPE.protocol && key.0 == SCOPE.table && key.2 == SCOPE.metric;
            if !ours {
                prop_assert_eq!(k.get(key), Some(val));
            }
        }
        // Our routes are exactly the desired ones that no foreign route blocks.
        for (prefix, hops) in &desired {
            let key = (SCOPE.table, *prefix, SCOPE.metric);
            match before.get(&key) {
                Some((proto, _)) if *proto != SCOPE.protocol => {}
                _ if hops.is_empty() => prop_assert!(!k.contains_key(&key)),
                _ => prop_assert_eq!(k.get(&key), Some(&(SCOPE.protocol, hops.clone()))),
            }
        }
        for (key, (proto, _)) in &k {
            if *proto == SCOPE.protocol && key.0 == SCOPE.table && key.2 == SCOPE.metric {
                prop_assert!(desired.get(&key.1).is_some_and(|h| !h.is_empty()));
            }
        }
    }
}
