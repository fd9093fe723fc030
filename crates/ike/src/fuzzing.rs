//! Fuzzing support: a seeded mutator, a decoder target and a responder target, shared by the
//! stable corpus test (`#[test]` below) and any external fuzzer.
//!
//! - [`decode_target`]: [`Message::decode`] on arbitrary bytes; whatever decodes must
//!   re-encode, and decode again to the same message.
//! - [`ResponderTarget`]: a responder [`Endpoint`] fed arbitrary datagrams, mutated real
//!   messages, and random payload lists sealed with valid keys of an established IKE SA (so
//!   that the code behind the integrity check is reached too). After any input the responder
//!   must keep its SA count and queues bounded, and the established SA must still work.
//!
//! Not provided: a cargo-fuzz crate (the targets here are what it would call) and a
//! no-security crypto provider (structure-aware sealing with real keys serves instead).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bh_crypto::{DeterministicRandom, DhGroup, EspEncr, EspInteg, Prf, SecureRandom, Zeroizing};

use crate::config::{Dpd, EspProposal, IkeId, IkeProposal, Lifetimes, TunnelId, TunnelIkeConfig};
use crate::endpoint::{Endpoint, EndpointSettings, Instant, Transmit};
use crate::wire::{
    self, Delete, ExchangeType, KeyExchange, Message, Notify, NotifyType, Payload, ProtocolId,
    TrafficSelector,
};

/// A small seeded generator for mutation decisions (not for keys).
#[derive(Debug)]
pub struct Mutator {
    rng: DeterministicRandom,
}

impl Mutator {
    /// A mutator whose choices follow `seed`.
    pub fn new(seed: u64) -> Self {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&seed.to_le_bytes());
        Self {
            rng: DeterministicRandom::from_seed(s),
        }
    }

    /// A value below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        let mut b = [0u8; 8];
        self.rng.fill(&mut b);
        let v = u64::from_le_bytes(b);
        if n == 0 {
            0
        } else {
            usize::try_from(v % u64::try_from(n).unwrap_or(u64::MAX)).unwrap_or(0)
        }
    }

    /// `n` random octets.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.rng.fill(&mut v);
        v
    }

    /// A mutated copy of `input`: bit flips, interesting values at random offsets (length
    /// fields included), truncation, insertion, duplication of a slice, or pure noise.
    pub fn mutate(&mut self, input: &[u8]) -> Vec<u8> {
        let mut v = input.to_vec();
        let rounds = 1 + self.below(4);
        for _ in 0..rounds {
            let len = v.len();
            match self.below(7) {
                0 if len > 0 => {
                    let i = self.below(len);
                    v[i] ^= 1 << self.below(8);
                }
                1 if len > 0 => {
                    let i = self.below(len);
                    v[i] = [0u8, 1, 0x7f, 0x80, 0xff, 4, 8][self.below(7)];
                }
                2 if len > 1 => {
                    let i = self.below(len - 1);
                    let x = [0u16, 1, 4, 8, 0xffff, 0x8000][self.below(6)].to_be_bytes();
                    v[i] = x[0];
                    v[i + 1] = x[1];
                }
                3 => v.truncate(self.below(len + 1)),
                4 => {
                    let i = self.below(len + 1);
                    let n = 1 + self.below(16);
                    let ins = self.bytes(n);
                    v.splice(i..i, ins);
                }
                5 if len > 0 => {
                    let a = self.below(len);
                    let b = a + self.below(len - a);
                    let chunk = v[a..b].to_vec();
                    let at = self.below(v.len() + 1);
                    v.splice(at..at, chunk);
                }
                _ => {
                    let n = self.below(200);
                    v = self.bytes(n);
                }
            }
            // Bound the size so inputs stay datagram-like.
            v.truncate(4096);
        }
        v
    }

    /// A random payload of any kind.
    pub fn payload(&mut self) -> Payload {
        let n = self.below(40);
        let spi_len = [0, 4, 8][self.below(3)];
        let small = self.below(4);
        let nonce_len = 16 + self.below(32);
        match self.below(12) {
            0 => Payload::Notify(Notify {
                protocol: ProtocolId(u8::try_from(self.below(4)).unwrap_or(0)),
                spi: self.bytes(spi_len),
                ty: NotifyType([16393u16, 17, 24, 14, 16384, 16390, 44, 7][self.below(8)]),
                data: self.bytes(small),
            }),
            1 => Payload::Delete(Delete {
                protocol: ProtocolId(u8::try_from(self.below(4)).unwrap_or(0)),
                spi_size: 4,
                spis: (0..self.below(4)).map(|_| self.bytes(4)).collect(),
            }),
            2 => Payload::Delete(Delete {
                protocol: ProtocolId::IKE,
                spi_size: 0,
                spis: vec![],
            }),
            3 => Payload::Nonce(self.bytes(nonce_len)),
            4 => Payload::Ke(KeyExchange {
                group: [14u16, 19, 31, 2, 0, 999][self.below(6)],
                data: self.bytes(n * 4),
            }),
            5 => Payload::Sa(vec![fuzz_esp().to_wire(1, [1, 2, 3, 4], None)]),
            6 => Payload::Sa(vec![fuzz_ike().to_wire(1, self.bytes(8), None)]),
            7 => Payload::TsI(vec![TrafficSelector::ipv4_any()]),
            8 => Payload::TsR(vec![TrafficSelector::ipv6_any()]),
            9 => Payload::VendorId(self.bytes(n)),
            10 => Payload::Unknown {
                ty: wire::PayloadType(u8::try_from(100 + self.below(100)).unwrap_or(200)),
                critical: self.below(2) == 1,
                data: self.bytes(n),
            },
            _ => Payload::Auth(wire::Auth {
                method: wire::AuthMethod::SHARED_KEY_MIC,
                data: self.bytes(n),
            }),
        }
    }
}

/// Decoder target: must not panic; whatever decodes round-trips semantically.
/// Returns whether `data` decoded.
pub fn decode_target(data: &[u8]) -> bool {
    let Ok(m) = Message::decode(data) else {
        return false;
    };
    // A decoded message re-encodes unless a field is out of range for encode (it never is
    // after a decode), and decodes to the same value.
    if let Ok(again) = m.encode() {
        assert_eq!(
            Message::decode(&again).as_ref(),
            Ok(&m),
            "re-decode differs"
        );
    }
    true
}

fn fuzz_ike() -> IkeProposal {
    IkeProposal {
        encr: vec![EspEncr::AesGcm16 { key_bits: 128 }],
        integ: vec![],
        prf: vec![Prf::HmacSha256],
        dh: vec![DhGroup::Curve25519],
    }
}

fn fuzz_esp() -> EspProposal {
    EspProposal {
        encr: vec![EspEncr::AesCbc { key_bits: 128 }],
        integ: vec![EspInteg::HmacSha256_128],
        esn: vec![false, true],
    }
}

fn addr(last: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)), port)
}

fn tunnel_cfg(initiator: bool) -> TunnelIkeConfig {
    let (me, peer) = if initiator { (1, 2) } else { (2, 1) };
    TunnelIkeConfig {
        name: "fuzz".into(),
        local_addr: addr(me, 500),
        remote_addr: addr(peer, 500),
        local_id: IkeId::Addr(addr(me, 0).ip()),
        remote_id: IkeId::Addr(addr(peer, 0).ip()),
        psk: Zeroizing::new(b"fuzz".to_vec()),
        ike_proposals: vec![fuzz_ike()],
        esp_proposals: vec![fuzz_esp()],
        pfs_group: None,
        lifetimes: Lifetimes::default(),
        dpd: Dpd::default(),
        initiator,
        force_udp_encap: false,
    }
}

/// A responder endpoint with one established IKE SA to a scripted initiator, ready to be fed.
pub struct ResponderTarget {
    now: Instant,
    /// The responder under test.
    pub responder: Endpoint,
    initiator: Endpoint,
    tunnel_i: TunnelId,
    /// Real messages seen during the handshake, as mutation seeds.
    pub seeds: Vec<Vec<u8>>,
    /// Datagrams the responder sent in answer to fuzz input.
    pub answered: usize,
}

impl std::fmt::Debug for ResponderTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponderTarget").finish_non_exhaustive()
    }
}

impl ResponderTarget {
    /// Builds the pair and runs the handshake.
    pub fn new(seed: u8) -> Self {
        let settings = EndpointSettings {
            max_sas: 32,
            ..EndpointSettings::default()
        };
        let mut initiator = Endpoint::new(
            settings,
            Box::new(DeterministicRandom::from_seed([seed; 32])),
        );
        let mut responder = Endpoint::new(
            settings,
            Box::new(DeterministicRandom::from_seed([seed ^ 0x55; 32])),
        );
        let tunnel_i = initiator.add_tunnel(tunnel_cfg(true));
        responder.add_tunnel(tunnel_cfg(false));
        let mut t = Self {
            now: Instant::from_nanos(1),
            responder,
            initiator,
            tunnel_i,
            seeds: Vec::new(),
            answered: 0,
        };
        t.initiator.initiate(t.now, t.tunnel_i);
        t.exchange();
        t
    }

    /// Delivers datagrams both ways until quiet, keeping the initiator's as seeds.
    fn exchange(&mut self) {
        for _ in 0..16 {
            let mut moved = false;
            while let Some(Transmit { src, dst, data }) = self.initiator.poll_transmit() {
                if self.seeds.len() < 32 {
                    self.seeds.push(data.clone());
                }
                self.responder.handle_datagram(self.now, src, dst, &data);
                moved = true;
            }
            while let Some(Transmit { src, dst, data }) = self.responder.poll_transmit() {
                self.initiator.handle_datagram(self.now, src, dst, &data);
                moved = true;
            }
            while self.initiator.poll_event().is_some() {}
            if !moved {
                break;
            }
        }
    }

    /// Whether the responder has an established SA.
    pub fn established(&self) -> bool {
        self.responder
            .snapshot()
            .iter()
            .any(|s| s.state == "established" && s.children.len() == 1)
    }

    /// Feeds one datagram to the responder from the initiator's address (or a random one).
    pub fn feed(&mut self, data: &[u8], from_peer: bool, port: u16) {
        let src = if from_peer {
            addr(1, port)
        } else {
            addr(99, port)
        };
        self.responder
            .handle_datagram(self.now, src, addr(2, port), data);
        self.drain();
    }

    /// Seals `inner` with the established SA's keys as the initiator's next request and
    /// feeds it.
    pub fn feed_sealed(&mut self, exchange: ExchangeType, inner: &[Payload]) {
        if let Some(t) = self.initiator.craft_request(self.tunnel_i, exchange, inner) {
            self.responder
                .handle_datagram(self.now, t.src, t.dst, &t.data);
        }
        self.drain();
    }

    /// Advances the clock and fires the responder's timers.
    pub fn tick(&mut self, d: Duration) {
        self.now = self.now + d;
        self.responder.handle_timeout(self.now);
        self.drain();
    }

    fn drain(&mut self) {
        while self.responder.poll_transmit().is_some() {
            self.answered += 1;
        }
        while let Some(e) = self.responder.poll_event() {
            drop(e);
        }
    }

    /// Checks the invariants: bounded SA count.
    pub fn check_bounded(&self) {
        assert!(self.responder.snapshot().len() <= 32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 20,000 seeded inputs: random and mutated datagrams to the decoder and the responder,
    /// and random payload lists sealed with valid keys.
    #[test]
    fn corpus_replay_20000() {
        let mut m = Mutator::new(0x1ce);
        let mut target = ResponderTarget::new(7);
        assert!(target.established(), "handshake before fuzzing");
        let seeds = target.seeds.clone();
        assert!(seeds.len() >= 2);
        let mut decoded = 0usize;
        let mut sealed = 0usize;
        for i in 0..20_000usize {
            let input = match m.below(3) {
                0 => {
                    let n = m.below(300);
                    m.bytes(n)
                }
                _ => {
                    let s = &seeds[m.below(seeds.len())];
                    m.mutate(s)
                }
            };
            if decode_target(&input) {
                decoded += 1;
            }
            // Port 500 and 4500; from the real peer or a stranger.
            let port = if m.below(2) == 0 { 500 } else { 4500 };
            target.feed(&input, m.below(4) != 0, port);
            if i % 50 == 0 {
                let exch = [ExchangeType::INFORMATIONAL, ExchangeType::CREATE_CHILD_SA][m.below(2)];
                let n = m.below(6);
                let inner: Vec<Payload> = (0..n).map(|_| m.payload()).collect();
                // Keep the IKE SA itself alive: no IKE DELETE in the sealed fuzz.
                let inner: Vec<Payload> = inner
                    .into_iter()
                    .filter(|p| !matches!(p, Payload::Delete(d) if d.protocol == ProtocolId::IKE))
                    .collect();
                let before = target.answered;
                target.feed_sealed(exch, &inner);
                // An authentic request in sequence always gets an answer.
                assert_eq!(target.answered, before + 1, "no answer to {inner:?}");
                sealed += 1;
            }
            if i % 1000 == 0 {
                target.tick(Duration::from_millis(500));
            }
            target.check_bounded();
        }
        // The generator reached the decoder's success path, not only its error paths.
        assert!(decoded > 500, "{decoded}");
        assert_eq!(sealed, 400);
        // The established IKE SA survived everything.
        assert!(
            target
                .responder
                .snapshot()
                .iter()
                .any(|s| s.state == "established"),
            "{:?}",
            target.responder.snapshot()
        );
    }
}
