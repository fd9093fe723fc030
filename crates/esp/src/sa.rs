//! Outbound and inbound tunnel-mode SAs: sequence numbers, anti-replay, counters, and batch
//! seal/open over [`PacketBuf`]s.
//!
//! Both SAs are `Sync` and meant to be shared (e.g. in an `Arc`) by the dataplane's per-core
//! workers. Per batch, an outbound SA does one atomic read-modify-write to reserve its sequence
//! numbers; an inbound SA locks its replay window once to check the batch and once to record
//! it, and decrypts outside the lock. Counters are summed locally and added once per batch.
//!
//! An SA does not know addresses, ports, traffic selectors or lifetimes: the dataplane's SA
//! table and the IKE control plane own those.

use crate::buf::PacketBuf;
use crate::encap::{InnerProto, MAX_IV_LEN, encapsulate, strip_trailer, verify_decrypt};
use crate::error::{OpenError, SaError, SealError};
use crate::replay::ReplayWindow;
use crate::wire::{ESP_HEADER_LEN, EspHeader, MIN_SPI};
use bh_crypto::{EspSuite, EspTransform};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Packets an inbound batch handles per pair of window locks (the stack state is sized by it).
pub const OPEN_CHUNK: usize = 64;

/// Counters of one SA, updated once per batch.
#[derive(Debug, Default)]
pub struct SaCounters {
    packets: AtomicU64,
    bytes: AtomicU64,
    replay: AtomicU64,
    icv: AtomicU64,
    malformed: AtomicU64,
    dummy: AtomicU64,
    exhausted: AtomicU64,
}

/// A copy of an SA's counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CounterSnapshot {
    /// Packets sealed (outbound) or opened and delivered (inbound).
    pub packets: u64,
    /// Octets of inner packets sealed or delivered.
    pub bytes: u64,
    /// Inbound packets dropped as replays (duplicate, or left of the window).
    pub replay: u64,
    /// Inbound packets whose ICV failed.
    pub icv: u64,
    /// Packets dropped as malformed: bad length, padding, next header or inner packet (and,
    /// outbound, not IP or no room in the buffer).
    pub malformed: u64,
    /// Inbound dummy packets (next header 59) dropped quietly.
    pub dummy: u64,
    /// Outbound packets refused because the sequence numbers ran out.
    pub exhausted: u64,
}

impl SaCounters {
    /// The current values.
    pub fn snapshot(&self) -> CounterSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            packets: r(&self.packets),
            bytes: r(&self.bytes),
            replay: r(&self.replay),
            icv: r(&self.icv),
            malformed: r(&self.malformed),
            dummy: r(&self.dummy),
            exhausted: r(&self.exhausted),
        }
    }

    fn add(&self, d: &CounterSnapshot) {
        let pairs = [
            (&self.packets, d.packets),
            (&self.bytes, d.bytes),
            (&self.replay, d.replay),
            (&self.icv, d.icv),
            (&self.malformed, d.malformed),
            (&self.dummy, d.dummy),
            (&self.exhausted, d.exhausted),
        ];
        for (c, v) in pairs {
            if v != 0 {
                c.fetch_add(v, Ordering::Relaxed);
            }
        }
    }
}

impl CounterSnapshot {
    fn count_open(&mut self, r: &Result<InnerProto, OpenError>, len: usize) {
        match r {
            Ok(_) => {
                self.packets += 1;
                self.bytes += len as u64;
            }
            Err(OpenError::Replay(_)) => self.replay += 1,
            Err(OpenError::Icv) => self.icv += 1,
            Err(OpenError::Dummy) => self.dummy += 1,
            Err(_) => self.malformed += 1,
        }
    }
}

fn check_spi(spi: u32) -> Result<(), SaError> {
    if spi < MIN_SPI {
        Err(SaError::ReservedSpi(spi))
    } else {
        Ok(())
    }
}

/// The sending half of a tunnel-mode ESP SA.
#[derive(Debug)]
pub struct OutboundSa {
    spi: u32,
    transform: EspTransform,
    esn: bool,
    /// The last sequence number handed out (0: none yet; the first packet carries 1).
    last_seq: AtomicU64,
    counters: SaCounters,
}

impl OutboundSa {
    /// An SA sending with `spi` (the peer's inbound SPI), keyed by `transform`; `esn` when
    /// extended sequence numbers were negotiated (RFC 4304).
    pub fn new(spi: u32, transform: EspTransform, esn: bool) -> Result<Self, SaError> {
        check_spi(spi)?;
        Ok(Self {
            spi,
            transform,
            esn,
            last_seq: AtomicU64::new(0),
            counters: SaCounters::default(),
        })
    }

    /// Starts numbering at `next` instead of 1. For known-answer tests and interop checks
    /// only: a sequence number sent twice under one key reuses an AEAD nonce, so never call
    /// this on an SA that has sent.
    pub fn with_next_seq(self, next: u64) -> Self {
        self.last_seq
            .store(next.saturating_sub(1), Ordering::Relaxed);
        self
    }

    /// The SPI this SA sends.
    pub fn spi(&self) -> u32 {
        self.spi
    }

    /// The cipher suite.
    pub fn suite(&self) -> EspSuite {
        self.transform.suite()
    }

    /// Whether extended sequence numbers are in use.
    pub fn esn(&self) -> bool {
        self.esn
    }

    /// The sequence number the next packet will carry (it may be past the last valid one).
    pub fn next_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Relaxed).saturating_add(1)
    }

    /// The counters.
    pub fn counters(&self) -> &SaCounters {
        &self.counters
    }

    /// The largest valid sequence number (RFC 4303 §3.3.3).
    fn seq_limit(&self) -> u64 {
        if self.esn {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        }
    }

    /// Seals one packet; see [`seal_batch`](Self::seal_batch).
    pub fn seal(
        &self,
        pkt: &mut PacketBuf,
        iv: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), SealError> {
        let mut out = [Ok(())];
        self.seal_batch(std::slice::from_mut(pkt), &mut out, iv);
        let [r] = out;
        r
    }

    /// Seals each buffer holding an inner IPv4 or IPv6 packet into an ESP packet in place,
    /// writing each outcome to `out` and returning how many were sealed. Handles the first
    /// `min(pkts.len(), out.len())` buffers.
    ///
    /// Sequence numbers for the whole batch are reserved with one atomic operation. The IV of
    /// an AEAD suite is the 64-bit sequence number, unique per key as RFC 4106 §3.1 and
    /// RFC 7634 §2 require; for AES-CBC, `iv` fills each IV with unpredictable octets
    /// (RFC 3602 §3). A failed buffer is left as it was; its sequence number is not reused.
    pub fn seal_batch(
        &self,
        pkts: &mut [PacketBuf],
        out: &mut [Result<(), SealError>],
        iv: &mut dyn FnMut(&mut [u8]),
    ) -> usize {
        let n = pkts.len().min(out.len());
        if n == 0 {
            return 0;
        }
        // One read-modify-write per batch. It saturates rather than wraps, so that no number
        // is ever handed out twice, even past exhaustion (RFC 4303 §3.3.3).
        let base = match self
            .last_seq
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some(c.saturating_add(n as u64))
            }) {
            Ok(prev) | Err(prev) => prev,
        };
        let limit = self.seq_limit();
        let suite = self.transform.suite();
        let iv_len = suite.iv_len();
        let mut tally = CounterSnapshot::default();
        let mut iv_buf = [0u8; MAX_IV_LEN];
        for (i, (pkt, slot)) in pkts.iter_mut().zip(out.iter_mut()).enumerate() {
            let seq = base.checked_add(i as u64 + 1).filter(|&s| s <= limit);
            let Some(seq) = seq else {
                *slot = Err(SealError::SeqExhausted);
                tally.exhausted += 1;
                continue;
            };
            let Some(iv_bytes) = iv_buf.get_mut(..iv_len) else {
                *slot = Err(SealError::IvLength {
                    got: MAX_IV_LEN,
                    want: iv_len,
                });
                tally.malformed += 1;
                continue;
            };
            if suite.is_aead() {
                iv_bytes.copy_from_slice(&seq.to_be_bytes());
            } else {
                iv(iv_bytes);
            }
            let inner_len = pkt.len();
            *slot = encapsulate(&self.transform, self.spi, seq, self.esn, iv_bytes, pkt);
            match slot {
                Ok(()) => {
                    tally.packets += 1;
                    tally.bytes += inner_len as u64;
                }
                Err(_) => tally.malformed += 1,
            }
        }
        self.counters.add(&tally);
        tally.packets as usize
    }
}

/// The receiving half of a tunnel-mode ESP SA, with its anti-replay window.
#[derive(Debug)]
pub struct InboundSa {
    spi: u32,
    transform: EspTransform,
    esn: bool,
    window: Mutex<ReplayWindow>,
    counters: SaCounters,
}

impl InboundSa {
    /// An SA receiving `spi` (our inbound SPI), keyed by `transform`, with extended sequence
    /// numbers when `esn`, and an anti-replay window of `replay_window` packets (64..=4096;
    /// [`crate::replay::DEFAULT_WINDOW`] is 1024).
    pub fn new(
        spi: u32,
        transform: EspTransform,
        esn: bool,
        replay_window: u32,
    ) -> Result<Self, SaError> {
        check_spi(spi)?;
        Ok(Self {
            spi,
            transform,
            esn,
            window: Mutex::new(ReplayWindow::new(replay_window, esn)?),
            counters: SaCounters::default(),
        })
    }

    /// The SPI this SA receives.
    pub fn spi(&self) -> u32 {
        self.spi
    }

    /// The cipher suite.
    pub fn suite(&self) -> EspSuite {
        self.transform.suite()
    }

    /// Whether extended sequence numbers are in use.
    pub fn esn(&self) -> bool {
        self.esn
    }

    /// The counters.
    pub fn counters(&self) -> &SaCounters {
        &self.counters
    }

    /// The highest sequence number accepted so far (0 before the first).
    pub fn highest_seq(&self) -> u64 {
        self.window().top()
    }

    fn window(&self) -> MutexGuard<'_, ReplayWindow> {
        // Nothing panics while holding the lock; if something did, the window is still valid.
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens one packet; see [`open_batch`](Self::open_batch).
    pub fn open(&self, pkt: &mut PacketBuf) -> Result<InnerProto, OpenError> {
        let mut out = [Err(OpenError::BadLength)];
        self.open_batch(std::slice::from_mut(pkt), &mut out);
        let [r] = out;
        r
    }

    /// Opens each buffer holding an ESP packet (from its SPI to its ICV), writing each outcome
    /// to `out`. Handles the first `min(pkts.len(), out.len())` buffers. On `Ok` the buffer
    /// holds exactly the inner packet; on `Err` its contents are unspecified.
    ///
    /// Per chunk of [`OPEN_CHUNK`] packets: the replay window is locked once to check every
    /// sequence number (RFC 4303 §3.4.3), the packets are verified and decrypted outside the
    /// lock, and the window is locked once more to record those whose ICV verified; a packet
    /// recorded meanwhile (a duplicate in the batch or on another thread) is then dropped as a
    /// replay. A packet whose ICV verified is recorded even if its contents are then refused.
    pub fn open_batch(&self, pkts: &mut [PacketBuf], out: &mut [Result<InnerProto, OpenError>]) {
        let n = pkts.len().min(out.len());
        let mut tally = CounterSnapshot::default();
        for (pkts, out) in pkts[..n]
            .chunks_mut(OPEN_CHUNK)
            .zip(out[..n].chunks_mut(OPEN_CHUNK))
        {
            self.open_chunk(pkts, out);
            for (pkt, r) in pkts.iter().zip(out.iter()) {
                tally.count_open(r, pkt.len());
            }
        }
        self.counters.add(&tally);
    }

    fn open_chunk(&self, pkts: &mut [PacketBuf], out: &mut [Result<InnerProto, OpenError>]) {
        let suite = self.transform.suite();
        let min_len = ESP_HEADER_LEN + suite.iv_len() + 2 + suite.icv_len();
        // The sent (low) sequence number of each packet that passed the header step.
        let mut low = [None::<u32>; OPEN_CHUNK];
        for ((pkt, slot), l) in pkts.iter().zip(out.iter_mut()).zip(low.iter_mut()) {
            match EspHeader::parse(pkt.data()) {
                Some(h) if h.spi != self.spi => *slot = Err(OpenError::WrongSpi(h.spi)),
                Some(h) if pkt.len() >= min_len => *l = Some(h.seq),
                _ => *slot = Err(OpenError::BadLength),
            }
        }
        if low.iter().all(Option::is_none) {
            return;
        }
        // The full sequence number of each packet still in play; 0 (never valid) when out.
        let mut seqs = [0u64; OPEN_CHUNK];
        {
            let window = self.window();
            for ((slot, s), l) in out.iter_mut().zip(seqs.iter_mut()).zip(low.iter()) {
                if let Some(l) = *l {
                    match window.check(l) {
                        Ok(full) => *s = full,
                        Err(e) => *slot = Err(OpenError::Replay(e)),
                    }
                }
            }
        }
        let mut verified = false;
        for ((pkt, slot), s) in pkts.iter_mut().zip(out.iter_mut()).zip(seqs.iter_mut()) {
            if *s == 0 {
                continue;
            }
            let esn_high = self.esn.then_some((*s >> 32) as u32);
            match verify_decrypt(&self.transform, esn_high, pkt) {
                Ok(()) => {
                    *slot = strip_trailer(&self.transform, pkt);
                    verified = true;
                }
                Err(e) => {
                    *slot = Err(e);
                    *s = 0;
                }
            }
        }
        if !verified {
            return;
        }
        let mut window = self.window();
        for (slot, s) in out.iter_mut().zip(seqs.iter()) {
            if *s != 0 {
                if let Err(e) = window.update(*s) {
                    *slot = Err(OpenError::Replay(e));
                }
            }
        }
    }
}
