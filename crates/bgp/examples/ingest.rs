//! Full-table ingest in memory: speaker A originates N IPv4 /24s, speaker B learns them over an
//! in-memory session fed in 64 KiB reads. Prints B's ingest time and the process's peak RSS.
//!
//! `cargo run --release -p bh-bgp --example ingest -- 1000000`
//!
//! The wall clock is read here on purpose: measuring it is the point of this example.
#![allow(clippy::disallowed_methods)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bh_bgp::speaker::{NeighborConfig, Output, Speaker, SpeakerConfig};
use bh_bgp::{Instant, Prefix};

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_else(|| "?".into())
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000)
        .min(1 << 24);
    let now = Instant::from_nanos(1);
    let a_ip = IpAddr::V4(Ipv4Addr::new(169, 254, 0, 2));
    let b_ip = IpAddr::V4(Ipv4Addr::new(169, 254, 0, 1));
    let mut ca = SpeakerConfig::new(65010, Ipv4Addr::new(10, 0, 0, 2), 1);
    ca.networks = (0..n)
        .filter_map(|k| {
            Prefix::new(
                IpAddr::V4(Ipv4Addr::from(0x0100_0000u32.wrapping_add(k << 8))),
                24,
            )
            .ok()
        })
        .collect();
    let mut a = Speaker::new(ca);
    let mut na = NeighborConfig::new(b_ip, 64512);
    na.next_hop_v4 = Some(Ipv4Addr::new(169, 254, 0, 2));
    a.add_neighbor(now, na);
    let mut b = Speaker::new(SpeakerConfig::new(64512, Ipv4Addr::new(10, 0, 0, 1), 2));
    let mut nb = NeighborConfig::new(a_ip, 65010);
    nb.session.passive = true;
    let Some(pb) = Some(b.add_neighbor(now, nb)) else {
        return;
    };
    let (mut a_conn, mut b_conn) = (None, None);
    let mut ingest = Duration::ZERO;
    let mut fib_events = 0usize;
    let mut pending: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut moved = false;
        while let Some(o) = a.poll_output() {
            moved = true;
            match o {
                Output::Connect { conn, .. } => {
                    b_conn = b.accept(now, pb);
                    a_conn = Some(conn);
                    a.connected(now, conn);
                }
                Output::Send { data, .. } => pending.push(data),
                _ => {}
            }
        }
        let (Some(ac), Some(bc)) = (a_conn, b_conn) else {
            break;
        };
        for d in pending.drain(..) {
            for chunk in d.chunks(65_536) {
                let t = std::time::Instant::now();
                b.received(now, bc, chunk);
                while let Some(o) = b.poll_output() {
                    match o {
                        Output::Send { data, .. } => {
                            moved = true;
                            a.received(now, ac, &data);
                        }
                        Output::Event(bh_bgp::speaker::SpeakerEvent::BestRoutesChanged {
                            ..
                        }) => fib_events += 1,
                        _ => {}
                    }
                }
                ingest += t.elapsed();
            }
        }
        while let Some(o) = b.poll_output() {
            if let Output::Send { data, .. } = o {
                moved = true;
                a.received(now, ac, &data);
            }
        }
        if !moved {
            break;
        }
    }
    println!(
        "{} prefixes in B's Loc-RIB ({fib_events} FIB events) in {:.2?} of B's time; peak RSS of both speakers {}",
        b.best_routes().count(),
        ingest,
        peak_rss()
    );
}
