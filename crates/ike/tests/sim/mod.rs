//! A two-endpoint simulation on a simulated clock: an in-memory network with optional 1:1
//! NAT in front of the initiator and a loss filter.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bh_crypto::{DeterministicRandom, DhGroup, EspEncr, EspInteg, Prf, Zeroizing};
use bh_ike::{
    Dpd, Endpoint, EndpointSettings, EspProposal, Event, IkeId, IkeProposal, Instant, Lifetimes,
    TunnelId, TunnelIkeConfig,
};

pub const A_PRIVATE: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 4);
pub const A_PUBLIC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
pub const B_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

pub fn ike(encr: EspEncr, integ: Option<EspInteg>, prf: Prf, dh: &[DhGroup]) -> IkeProposal {
    IkeProposal {
        encr: vec![encr],
        integ: integ.into_iter().collect(),
        prf: vec![prf],
        dh: dh.to_vec(),
    }
}

pub fn esp(encr: EspEncr, integ: Option<EspInteg>) -> EspProposal {
    EspProposal {
        encr: vec![encr],
        integ: integ.into_iter().collect(),
        esn: vec![false],
    }
}

/// Tunnel configs for A (initiator, behind NAT if `nat`) and B (responder).
pub fn pair(
    nat: bool,
    ike_p: Vec<IkeProposal>,
    esp_p: Vec<EspProposal>,
) -> (TunnelIkeConfig, TunnelIkeConfig) {
    let a_local = if nat { A_PRIVATE } else { A_PUBLIC };
    let a = TunnelIkeConfig {
        name: "a".into(),
        local_addr: SocketAddr::new(IpAddr::V4(a_local), 500),
        remote_addr: SocketAddr::new(IpAddr::V4(B_ADDR), 500),
        local_id: IkeId::Addr(IpAddr::V4(A_PUBLIC)),
        remote_id: IkeId::Addr(IpAddr::V4(B_ADDR)),
        psk: Zeroizing::new(b"correct horse battery staple".to_vec()),
        ike_proposals: ike_p,
        esp_proposals: esp_p,
        pfs_group: None,
        lifetimes: Lifetimes {
            ike_rekey: Duration::from_secs(100_000),
            child_rekey: Duration::from_secs(100_000),
            jitter_percent: 10,
        },
        dpd: Dpd {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            restart: true,
        },
        initiator: true,
        force_udp_encap: false,
    };
    let mut b = a.clone();
    b.name = "b".into();
    b.local_addr = SocketAddr::new(IpAddr::V4(B_ADDR), 500);
    b.remote_addr = SocketAddr::new(IpAddr::V4(A_PUBLIC), 500);
    b.local_id = IkeId::Addr(IpAddr::V4(B_ADDR));
    b.remote_id = IkeId::Addr(IpAddr::V4(A_PUBLIC));
    b.initiator = false;
    (a, b)
}

/// Decides whether a datagram is delivered: (packet, index among all datagrams).
pub type Filter = Box<dyn FnMut(&Packet, usize) -> bool>;

pub struct Packet {
    pub from_a: bool,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub data: Vec<u8>,
}

pub struct Sim {
    pub now: Instant,
    pub a: Endpoint,
    pub b: Endpoint,
    pub ta: TunnelId,
    pub tb: TunnelId,
    pub nat: bool,
    pub events_a: Vec<Event>,
    pub events_b: Vec<Event>,
    /// Every datagram put on the wire (after NAT), in order.
    pub wire: Vec<Packet>,
    /// Returns false to drop a datagram: (from_a, index among all datagrams).
    pub filter: Filter,
    queue: VecDeque<Packet>,
}

impl Sim {
    pub fn new(seed: u8, nat: bool, a: TunnelIkeConfig, b: TunnelIkeConfig) -> Self {
        Self::with_lanes(seed, nat, a, b, 1)
    }

    /// Both endpoints with `spi_lanes = lanes`; with more than one lane, A holds a spare
    /// tunnel (a responder that nobody contacts) before the real one, so `ta` is tunnel 1
    /// and `tb` tunnel 0.
    pub fn with_lanes(
        seed: u8,
        nat: bool,
        a: TunnelIkeConfig,
        b: TunnelIkeConfig,
        lanes: u32,
    ) -> Self {
        let settings = EndpointSettings {
            retransmit_timeout: Duration::from_secs(1),
            retransmit_tries: 4,
            max_sas: 64,
            restart_delay: Duration::from_secs(5),
            cookie_threshold: 8,
            max_ike_message: 1200,
            spi_lanes: lanes,
        };
        let mut ea = Endpoint::new(
            settings,
            Box::new(DeterministicRandom::from_seed([seed; 32])),
        );
        let mut eb = Endpoint::new(
            settings,
            Box::new(DeterministicRandom::from_seed([seed.wrapping_add(100); 32])),
        );
        if lanes > 1 {
            let mut spare = a.clone();
            spare.name = "spare".into();
            spare.initiator = false;
            spare.remote_addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 99)), 500);
            spare.remote_id = IkeId::Addr(spare.remote_addr.ip());
            ea.add_tunnel(spare);
        }
        let ta = ea.add_tunnel(a);
        let tb = eb.add_tunnel(b);
        Self {
            now: Instant::from_nanos(1_000_000_000),
            a: ea,
            b: eb,
            ta,
            tb,
            nat,
            events_a: Vec::new(),
            events_b: Vec::new(),
            wire: Vec::new(),
            filter: Box::new(|_, _| true),
            queue: VecDeque::new(),
        }
    }

    fn collect(&mut self) {
        while let Some(t) = self.a.poll_transmit() {
            let mut src = t.src;
            if self.nat && src.ip() == IpAddr::V4(A_PRIVATE) {
                src.set_ip(IpAddr::V4(A_PUBLIC));
            }
            self.queue.push_back(Packet {
                from_a: true,
                src,
                dst: t.dst,
                data: t.data,
            });
        }
        while let Some(t) = self.b.poll_transmit() {
            let mut dst = t.dst;
            if self.nat && dst.ip() == IpAddr::V4(A_PUBLIC) {
                dst.set_ip(IpAddr::V4(A_PRIVATE));
            }
            self.queue.push_back(Packet {
                from_a: false,
                src: t.src,
                dst,
                data: t.data,
            });
        }
        while let Some(e) = self.a.poll_event() {
            self.events_a.push(e);
        }
        while let Some(e) = self.b.poll_event() {
            self.events_b.push(e);
        }
    }

    /// Runs until `until` (simulated), delivering datagrams at once and firing timers.
    pub fn run_until(&mut self, until: Instant) {
        for _ in 0..100_000 {
            self.collect();
            if let Some(p) = self.queue.pop_front() {
                let idx = self.wire.len();
                let keep = (self.filter)(&p, idx);
                if keep {
                    if p.from_a {
                        self.b.handle_datagram(self.now, p.src, p.dst, &p.data);
                    } else {
                        self.a.handle_datagram(self.now, p.src, p.dst, &p.data);
                    }
                }
                self.wire.push(p);
                continue;
            }
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= until => {
                    if t > self.now {
                        self.now = t;
                    }
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                }
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
        panic!("simulation did not settle");
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    pub fn start(&mut self) {
        self.a.initiate(self.now, self.ta);
    }
}

/// The Child SAs announced (inbound, outbound, keys_in, keys_out, replaces, udp_encap, suite).
pub struct ChildUp {
    pub inbound: u32,
    pub outbound: u32,
    pub keys_in: Vec<u8>,
    pub keys_out: Vec<u8>,
    pub replaces: Option<u32>,
    pub udp_encap: bool,
    pub suite: bh_crypto::EspSuite,
}

pub fn child_ups(events: &[Event]) -> Vec<ChildUp> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaUp {
                inbound_spi,
                outbound_spi,
                keys_in,
                keys_out,
                replaces,
                udp_encap,
                suite,
                ..
            } => Some(ChildUp {
                inbound: *inbound_spi,
                outbound: *outbound_spi,
                keys_in: keys_in.to_vec(),
                keys_out: keys_out.to_vec(),
                replaces: *replaces,
                udp_encap: *udp_encap,
                suite: *suite,
            }),
            _ => None,
        })
        .collect()
}

pub fn child_downs(events: &[Event]) -> Vec<(u32, bh_ike::DownReason)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaDown {
                inbound_spi,
                reason,
                ..
            } => Some((*inbound_spi, *reason)),
            _ => None,
        })
        .collect()
}

pub fn ike_ups(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::IkeSaUp { .. }))
        .count()
}

pub fn ike_downs(events: &[Event]) -> Vec<bh_ike::DownReason> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaDown { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

/// Checks that the two sides' newest Child SAs mirror each other.
pub fn assert_children_match(a: &ChildUp, b: &ChildUp) {
    assert_eq!(a.inbound, b.outbound);
    assert_eq!(a.outbound, b.inbound);
    assert_eq!(a.keys_in, b.keys_out);
    assert_eq!(a.keys_out, b.keys_in);
    assert_ne!(a.keys_in, a.keys_out);
    assert_eq!(a.suite, b.suite);
    assert_eq!(a.keys_in.len(), a.suite.key_len());
    // The keys work: what A seals, B opens.
    let ta = bh_crypto::EspTransform::new(a.suite, &a.keys_out).unwrap();
    let tb = bh_crypto::EspTransform::new(b.suite, &b.keys_in).unwrap();
    let iv = a.suite.iv_len();
    let mut pkt = vec![0u8; 8 + iv + 32 + a.suite.icv_len()];
    pkt[..4].copy_from_slice(&a.outbound.to_be_bytes());
    pkt[7] = 1;
    ta.seal(&mut pkt, None).unwrap();
    tb.open(&mut pkt, None).unwrap();
}
