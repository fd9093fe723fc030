//! One dataplane worker: its TUN queue of every tunnel, its UDP socket, and the shared raw ESP
//! socket, polled with epoll and moved in batches: TUN super-packets split before sealing, UDP
//! GSO out and GRO in, opened TCP (and UDP where the TUN takes USO) coalesced per flow before
//! the TUN write, one run per flow open until the receive call ends (see the crate docs).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd as _;
use std::sync::Arc;
use std::time::Instant;

use bh_crypto::random::{FastRng, SecureRandom};
use bh_esp::{InnerProto, NAT_KEEPALIVE, OpenError, PacketBuf, SealError, Udp4500};
use bh_packet::frag::Fragmenter;
use bh_packet::ip::Ipv4Header;
use bh_sys::poll::{Epoll, EventFd, Events};
use bh_sys::rawesp::RawEsp;
use bh_sys::tun::{TunQueue, VNET_HDR_LEN, VnetHdr};
use bh_sys::udp::UdpSocket;
use bh_sys::{MAX_GSO_SEGMENTS, RecvMeta, SendMsg};

use crate::counters::{GlobalSnapshot, TunnelSnapshot};
use crate::offload::{Lanes, MAX_SUPER, Splitter};
use crate::slots::{Mailbox, TunQueues};
use crate::{BATCH, Encap, IkeDatagram, SaTable, Shared};

mod commands;

const TOKEN_STOP: u64 = 0;
const TOKEN_UDP: u64 = 1;
const TOKEN_RAW: u64 = 2;
const TOKEN_CMD: u64 = 3;
const TOKEN_TUN: u64 = 16;

/// ESP datagrams whose SPI is not installed yet, held per worker (see [`Parked`]).
const PARK_SLOTS: usize = 16;

/// How long a parked datagram waits for its SA before it is dropped as an unknown SPI.
const PARK_TTL: std::time::Duration = std::time::Duration::from_millis(200);

/// How often a worker with parked datagrams looks for a new SA table.
const PARK_POLL_MS: i32 = 2;

/// Batches handled per readiness event before the worker looks at its other descriptors.
const ROUNDS: usize = 8;

/// Slots kept free in a TX batch for the fragments of one packet (a 9000-byte packet into a
/// 1280-byte MTU makes 8).
const MAX_FRAGMENTS: usize = 8;

/// Room for an ICMP error and for the copy of a packet being fragmented.
const SCRATCH: usize = 65_536;

/// Buffers of one `recvmmsg` with UDP GRO, each holding up to 64 coalesced datagrams.
// why: 8 x 64 KiB keeps a worker's receive buffers within its L2; one GRO buffer already
// carries ~44 full-size ESP packets, so 8 per call is up to ~350 packets per syscall.
const GRO_BUFFERS: usize = 8;

/// Size of one GRO receive buffer (the most a coalesced UDP payload can be).
const GRO_BUFFER: usize = 65_536;

/// Bytes of ESP payload one UDP GSO send may carry (the largest UDP payload over IPv4 is
/// 65,507; keep clear of it for IPv6 and IP options).
const GSO_MAX_BYTES: usize = 65_000;

/// Flows coalesced at once per worker on the TUN write side (one 64 KiB buffer each, touched
/// only when used).
// why: with 8 UDP flows interleaved in a batch, one run at a time wrote every packet alone;
// a lane per flow lets each flow's packets of the batch go out in one write.
const LANES: usize = 16;

/// An ESP datagram that arrived before its SA. After a rekey the responder switches to the new
/// SA as soon as it has answered, while the initiator still has to process that answer (DH,
/// key derivation) and install the SA: packets in that gap would be lost. They wait here,
/// bounded in count and age, and are opened once the SA table changes.
struct Parked {
    buf: PacketBuf,
    src: std::net::SocketAddr,
    raw: bool,
    since: Option<Instant>,
}

pub(crate) struct Worker {
    id: usize,
    shared: Arc<Shared>,
    tun: TunQueues,
    /// Tunnels added or removed while running (see [`crate::slots`]).
    mailbox: Arc<Mailbox>,
    udp: Arc<UdpSocket>,
    raw: Option<Arc<RawEsp>>,
    _stop: Arc<EventFd>,
    epoll: Epoll,
    bufs: Vec<PacketBuf>,
    metas: [RecvMeta; BATCH],
    scratch: Box<[u8]>,
    max_packet: usize,
    next_keepalive: Vec<Option<Instant>>,
    /// Per tunnel: its queue carries virtio headers (TSO/USO super-packets in, GSO out).
    vnet: Vec<bool>,
    /// Per tunnel: its queue takes `GSO_UDP_L4` super-packets (USO accepted, cleared on the
    /// first write the kernel refuses).
    uso: Vec<bool>,
    /// One packet read from a vnet-header queue, virtio header first.
    tun_rx: Box<[u8]>,
    /// The packet in `tun_rx` still being cut: (tunnel, length, segments already taken).
    pending: Option<(usize, usize, usize)>,
    /// UDP GSO works on this socket (cleared on the first EIO/EINVAL).
    gso: bool,
    /// UDP GRO is on for this socket.
    gro: bool,
    gro_bufs: Vec<Box<[u8]>>,
    gro_metas: [RecvMeta; GRO_BUFFERS],
    lanes: Lanes,
    /// The tunnel whose opened packets `lanes` holds (written by [`Worker::flush_lanes`]).
    lanes_tunnel: Option<usize>,
    parked: Vec<Parked>,
    /// The SA table the parked datagrams were last tried against, kept alive while anything
    /// is parked so that its address cannot be reused by a newer table (a freed table's
    /// allocation is typically handed to the next one, which would look unchanged).
    parked_table: Option<Arc<SaTable>>,
}

impl Worker {
    pub(crate) fn new(
        id: usize,
        shared: Arc<Shared>,
        tun: Vec<TunQueue>,
        udp: Arc<UdpSocket>,
        raw: Option<Arc<RawEsp>>,
        stop: Arc<EventFd>,
        max_packet: usize,
        mailbox: Arc<Mailbox>,
    ) -> io::Result<Self> {
        let epoll = Epoll::new()?;
        epoll.add(stop.as_raw_fd(), TOKEN_STOP)?;
        epoll.add(mailbox.wake.as_raw_fd(), TOKEN_CMD)?;
        epoll.add(udp.as_raw_fd(), TOKEN_UDP)?;
        if let Some(r) = &raw {
            epoll.add(r.as_raw_fd(), TOKEN_RAW)?;
        }
        for (i, q) in tun.iter().enumerate() {
            epoll.add(q.as_raw_fd(), TOKEN_TUN + i as u64)?;
        }
        let now = Instant::now();
        let next_keepalive = shared
            .tunnels
            .iter()
            .map(|t| match (t.encap, t.keepalive) {
                (Encap::Udp, Some(_)) if id == 0 => Some(now),
                _ => None,
            })
            .collect();
        let vnet: Vec<bool> = tun.iter().map(|q| q.vnet_hdr().unwrap_or(false)).collect();
        let uso_flags = libc::TUN_F_USO4 | libc::TUN_F_USO6;
        let uso = tun
            .iter()
            .zip(&vnet)
            .map(|(q, &v)| v && q.offloads() & uso_flags == uso_flags)
            .collect();
        let any_vnet = vnet.iter().any(|&v| v);
        // why: GRO cut the receive side's per-datagram kernel cost (perf-anchors §3.1: 1 us
        // -> 0.34 us per packet); without it (kernels before 5.0) datagrams come one by one.
        let gro = udp.enable_gro().is_ok();
        Ok(Self {
            id,
            shared,
            tun: TunQueues::new(tun),
            mailbox,
            udp,
            raw,
            _stop: stop,
            epoll,
            bufs: (0..BATCH).map(|_| PacketBuf::new(max_packet)).collect(),
            metas: [RecvMeta::default(); BATCH],
            scratch: vec![0u8; SCRATCH].into_boxed_slice(),
            max_packet,
            next_keepalive,
            parked: (0..PARK_SLOTS)
                .map(|_| Parked {
                    buf: PacketBuf::new(max_packet),
                    src: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
                    raw: false,
                    since: None,
                })
                .collect(),
            parked_table: None,
            vnet,
            uso,
            tun_rx: vec![
                0u8;
                if any_vnet {
                    VNET_HDR_LEN + MAX_SUPER
                } else {
                    0
                }
            ]
            .into_boxed_slice(),
            pending: None,
            gso: true,
            gro,
            gro_bufs: (0..if gro { GRO_BUFFERS } else { 0 })
                .map(|_| vec![0u8; GRO_BUFFER].into_boxed_slice())
                .collect(),
            gro_metas: [RecvMeta::default(); GRO_BUFFERS],
            lanes: Lanes::new(LANES, false),
            lanes_tunnel: None,
        })
    }

    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(16 + self.tun.len());
        tracing::debug!(worker = self.id, "worker running");
        loop {
            let timeout = self.keepalive_timeout_ms();
            if let Err(e) = self.epoll.wait(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!(worker = self.id, error = %e, "epoll failed; worker stops");
                    return;
                }
            }
            for ev in events.iter() {
                match ev.token {
                    TOKEN_STOP => return,
                    TOKEN_UDP => self.receive(false),
                    TOKEN_RAW => self.receive(true),
                    TOKEN_CMD => self.apply_commands(),
                    t => {
                        if let Some(i) = t.checked_sub(TOKEN_TUN) {
                            self.transmit(i as usize);
                        }
                    }
                }
            }
            self.send_keepalives();
            self.retry_parked();
        }
    }

    fn keepalive_timeout_ms(&self) -> i32 {
        let now = Instant::now();
        let ms = self
            .next_keepalive
            .iter()
            .flatten()
            .map(|t| t.saturating_duration_since(now).as_millis())
            .min()
            .map_or(1000, |ms| ms.min(1000) as i32);
        if self.parked.iter().any(|p| p.since.is_some()) {
            ms.min(PARK_POLL_MS)
        } else {
            ms
        }
    }

    /// Keeps datagram `i` (ESP for an SPI not installed yet) for [`PARK_TTL`], replacing the
    /// oldest parked one when all slots are taken. Returns whether a datagram was lost (the
    /// displaced one, or this one if it could not be kept), for the unknown-SPI counter.
    fn park(&mut self, i: usize, raw: bool) -> bool {
        let (Some(buf), Some(meta)) = (self.bufs.get(i), self.metas.get(i)) else {
            return true;
        };
        let slot = self
            .parked
            .iter()
            .position(|p| p.since.is_none())
            .or_else(|| (0..self.parked.len()).min_by_key(|&k| self.parked[k].since));
        let Some(slot) = slot.and_then(|k| self.parked.get_mut(k)) else {
            return true;
        };
        let displaced = slot.since.is_some();
        if slot.buf.load(buf.data()).is_err() {
            slot.since = None;
            return true;
        }
        slot.src = meta.src;
        slot.raw = raw;
        slot.since = Some(Instant::now());
        displaced
    }

    /// Opens parked datagrams whose SA has appeared since they arrived; drops those that have
    /// waited [`PARK_TTL`] (counted as unknown SPIs). Rare path: only while something is parked.
    fn retry_parked(&mut self) {
        if self.parked.iter().all(|p| p.since.is_none()) {
            // Do not keep an old table (and its SAs) alive for nothing.
            self.parked_table = None;
            return;
        }
        let table = self.shared.table.load();
        let now = Instant::now();
        let mut expired = 0;
        for p in &mut self.parked {
            if p.since.is_some_and(|t| now.duration_since(t) >= PARK_TTL) {
                p.since = None;
                expired += 1;
            }
        }
        if expired > 0 {
            self.shared.global.add(&GlobalSnapshot {
                unknown_spi: expired,
                ..Default::default()
            });
        }
        // why: comparing table addresses alone missed updates: the daemon installs a manual
        // tunnel's inbound and outbound SA in two updates, and the second table usually lands
        // where the first-but-one was freed, so datagrams held at startup were never retried.
        if self
            .parked_table
            .as_ref()
            .is_some_and(|t| Arc::ptr_eq(t, &table))
        {
            return;
        }
        self.parked_table = Some(Arc::clone(&table));
        drop(table);
        // Move the ones whose SPI is now known into the batch buffers, per socket kind, and
        // run them through the normal receive path.
        for raw in [false, true] {
            let mut k = 0;
            for p in &mut self.parked {
                if p.since.is_none() || p.raw != raw || k >= self.bufs.len() {
                    continue;
                }
                let known = {
                    let esp = p.buf.data();
                    let esp = if raw {
                        Some(esp)
                    } else {
                        match Udp4500::classify(esp) {
                            Udp4500::Esp(e) => Some(e),
                            _ => None,
                        }
                    };
                    esp.and_then(|e| e.first_chunk::<4>())
                        .map(|s| u32::from_be_bytes(*s))
                        .is_some_and(|spi| self.shared.table.load().inbound.contains_key(&spi))
                };
                if !known {
                    continue;
                }
                if self.bufs[k].load(p.buf.data()).is_ok() {
                    self.metas[k] = RecvMeta {
                        len: p.buf.len(),
                        src: p.src,
                        truncated: false,
                        ..RecvMeta::default()
                    };
                    k += 1;
                }
                p.since = None;
            }
            if k > 0 {
                self.open_and_deliver(k, raw, false);
                self.flush_lanes();
            }
        }
    }

    /// RFC 3948 §2.3: a one-octet 0xFF datagram keeps the NAT mapping open.
    fn send_keepalives(&mut self) {
        let now = Instant::now();
        for (i, slot) in self.next_keepalive.iter_mut().enumerate() {
            let Some(due) = *slot else { continue };
            if due > now {
                continue;
            }
            let Some(t) = self.shared.tunnels.get(i) else {
                continue;
            };
            let peer = **t.peer.load();
            if self.udp.send_to(&NAT_KEEPALIVE, peer).is_ok() {
                t.counters.add(&TunnelSnapshot {
                    keepalives_sent: 1,
                    ..Default::default()
                });
            }
            *slot = t.keepalive.map(|k| now + k);
        }
    }

    /// TUN queue of tunnel `t` is readable: read, check, seal and send batches.
    fn transmit(&mut self, t: usize) {
        let vnet = self.vnet.get(t).copied().unwrap_or(false);
        let mut round = 0;
        loop {
            let mut tally = TunnelSnapshot::default();
            let mut n = 0;
            let mut drained = false;
            while n + MAX_FRAGMENTS <= BATCH {
                let got = if vnet {
                    // Past ROUNDS only the half-cut super-packet is finished, so the other
                    // descriptors get their turn.
                    self.next_segment(t, n, round < ROUNDS, &mut tally)
                } else {
                    self.read_plain(t, n)
                };
                match got {
                    Some(true) => {
                        tally.tun_rx_packets += 1;
                        n += self.prepare_outbound(t, n, &mut tally);
                    }
                    Some(false) => {}
                    None => {
                        drained = true;
                        break;
                    }
                }
            }
            if n > 0 {
                self.seal_and_send(t, n, &mut tally);
            }
            if let Some(st) = self.shared.tunnels.get(t) {
                st.counters.add(&tally);
            }
            round += 1;
            // A super-packet half cut stays in `tun_rx`, which the next tunnel would reuse:
            // finish it first.
            if (drained || round >= ROUNDS) && self.pending.is_none() {
                return;
            }
        }
    }

    /// Reads one packet of a plain queue into slot `n`: `Some(true)` if one came, `None` when
    /// the queue is empty.
    fn read_plain(&mut self, t: usize, n: usize) -> Option<bool> {
        let q = self.tun.get(t)?;
        let buf = self.bufs.get_mut(n)?;
        let room = buf.reset_for_read();
        let cap = self.max_packet.min(room.len());
        match q.read(&mut room[..cap]) {
            Ok(len) if len > 0 => {
                let _ = buf.set_len(len);
                Some(true)
            }
            Ok(_) => None,
            Err(e) => {
                if e.kind() != io::ErrorKind::WouldBlock {
                    tracing::warn!(worker = self.id, error = %e, "TUN read failed");
                }
                None
            }
        }
    }

    /// Puts the next segment of tunnel `t`'s vnet-header queue into slot `n`, reading a new
    /// (super-)packet when the last one is used up. `Some(true)`: a segment is in the slot;
    /// `Some(false)`: a packet was dropped as malformed; `None`: the queue is empty.
    fn next_segment(
        &mut self,
        t: usize,
        n: usize,
        may_read: bool,
        tally: &mut TunnelSnapshot,
    ) -> Option<bool> {
        let (len, done) = match self.pending {
            Some((pt, len, done)) if pt == t => (len, done),
            _ => {
                if !may_read {
                    return None;
                }
                let q = self.tun.get(t)?;
                // why: one read returns a whole TSO/USO super-packet (up to ~45 segments), so
                // the per-packet kernel cost of the TUN is paid once per 64 KiB.
                match q.read(&mut self.tun_rx) {
                    Ok(len) if len > VNET_HDR_LEN => (len, 0),
                    Ok(0) => return None,
                    Ok(_) => {
                        tally.tun_rx_invalid += 1;
                        return Some(false);
                    }
                    Err(e) => {
                        if e.kind() != io::ErrorKind::WouldBlock {
                            tracing::warn!(worker = self.id, error = %e, "TUN read failed");
                        }
                        return None;
                    }
                }
            }
        };
        let cap = self.max_packet;
        let (rx, bufs) = (&self.tun_rx, &mut self.bufs);
        let hdr = VnetHdr::decode(rx);
        let pkt = rx.get(VNET_HDR_LEN..len);
        let (got, remaining) = match (hdr, pkt) {
            (Some(hdr), Some(pkt)) => match Splitter::new(&hdr, pkt) {
                Ok(mut sp) => {
                    sp.skip(done);
                    let buf = bufs.get_mut(n)?;
                    let room = buf.reset_for_read();
                    let cap = cap.min(room.len());
                    let got = match sp.next_into(&mut room[..cap]) {
                        Some(Ok(l)) => buf.set_len(l).is_ok(),
                        _ => false,
                    };
                    (got, sp.remaining())
                }
                Err(_) => (false, 0),
            },
            _ => (false, 0),
        };
        self.pending = (remaining > 0).then_some((t, len, done + 1));
        if !got {
            tally.tun_rx_invalid += 1;
        }
        Some(got)
    }

    /// Checks the inner packet in slot `n` against the tunnel MTU and clamps its MSS. Returns
    /// how many slots from `n` now hold packets to seal: 0 (dropped or answered with ICMP),
    /// 1, or the number of IPv4 fragments.
    fn prepare_outbound(&mut self, t: usize, n: usize, tally: &mut TunnelSnapshot) -> usize {
        let Some(st) = self.shared.tunnels.get(t) else {
            return 0;
        };
        let (mtu, mss) = (usize::from(st.mtu), st.mss);
        let Some(buf) = self.bufs.get_mut(n) else {
            return 0;
        };
        let version = bh_packet::ip::inner_version(buf.data());
        let len = buf.len();
        match version {
            Some(4) if len > mtu => {
                let df = Ipv4Header::parse(buf.data()).is_some_and(|h| h.dont_fragment());
                if df {
                    self.answer_too_big(t, n, tally);
                    return 0;
                }
                self.fragment(t, n, tally)
            }
            Some(6) if len > mtu => {
                self.answer_too_big(t, n, tally);
                0
            }
            Some(v @ (4 | 6)) => {
                if let Some(mss) = mss {
                    let mss = if v == 6 { mss.saturating_sub(20) } else { mss };
                    if bh_packet::mss::clamp_mss(buf.data_mut(), mss) {
                        tally.mss_clamped += 1;
                    }
                }
                1
            }
            _ => {
                tally.tun_rx_invalid += 1;
                0
            }
        }
    }

    /// RFC 1191 / RFC 8201: tell the sender the tunnel MTU.
    fn answer_too_big(&mut self, t: usize, n: usize, tally: &mut TunnelSnapshot) {
        let Some(st) = self.shared.tunnels.get(t) else {
            return;
        };
        let (Some(buf), Some(q)) = (self.bufs.get(n), self.tun.get(t)) else {
            return;
        };
        let src = match bh_packet::ip::inner_version(buf.data()) {
            Some(4) => st.icmp_src_v4,
            _ => st.icmp_src_v6,
        };
        // A vnet-header queue takes a (zero: no offload) virtio header before the packet.
        let off = if self.vnet.get(t).copied().unwrap_or(false) {
            VNET_HDR_LEN
        } else {
            0
        };
        if let Some(h) = self.scratch.get_mut(..off) {
            h.fill(0);
        }
        let written = src.and_then(|src| {
            let out = self.scratch.get_mut(off..)?;
            bh_packet::icmp::too_big(buf.data(), st.mtu, src, out)
        });
        match written.and_then(|len| self.scratch.get(..off + len)) {
            Some(icmp) if q.write(icmp).is_ok() => tally.icmp_too_big += 1,
            _ => tally.oversize_dropped += 1,
        }
    }

    /// RFC 791 fragmentation before encryption, for IPv4 packets with DF clear.
    fn fragment(&mut self, t: usize, n: usize, tally: &mut TunnelSnapshot) -> usize {
        let Some(st) = self.shared.tunnels.get(t) else {
            return 0;
        };
        let mtu = st.mtu;
        let Some(buf) = self.bufs.get(n) else {
            return 0;
        };
        let len = buf.len();
        let Some(copy) = self.scratch.get_mut(..len) else {
            tally.oversize_dropped += 1;
            return 0;
        };
        copy.copy_from_slice(buf.data());
        let Ok(mut frag) = Fragmenter::new(copy, mtu) else {
            tally.oversize_dropped += 1;
            return 0;
        };
        if frag.count() > MAX_FRAGMENTS {
            tally.oversize_dropped += 1;
            return 0;
        }
        let mut made = 0;
        while let Some(slot) = self.bufs.get_mut(n + made) {
            let room = slot.reset_for_read();
            match frag.write_next(room) {
                Ok(Some(flen)) => {
                    let _ = slot.set_len(flen);
                    made += 1;
                }
                Ok(None) => break,
                Err(_) => {
                    tally.oversize_dropped += 1;
                    return 0;
                }
            }
        }
        tally.fragmented += 1;
        made
    }

    fn seal_and_send(&mut self, t: usize, n: usize, tally: &mut TunnelSnapshot) {
        let table = self.shared.table.load();
        let Some(sa) = table.outbound.get(t).and_then(Option::as_ref) else {
            tally.no_sa += n as u64;
            return;
        };
        let Some(st) = self.shared.tunnels.get(t) else {
            return;
        };
        let mut results: [Result<(), SealError>; BATCH] = std::array::from_fn(|_| Ok(()));
        let mut rng = FastRng::new();
        sa.seal_batch(&mut self.bufs[..n], &mut results[..n], &mut |iv| {
            rng.fill(iv)
        });
        let peer = **st.peer.load();
        if st.encap == Encap::Udp && self.gso {
            self.send_gso(n, &results, peer, tally);
            return;
        }
        let mut msgs = [SendMsg {
            data: &[],
            dst: peer,
        }; BATCH];
        let mut m = 0;
        for (buf, r) in self.bufs[..n].iter().zip(&results[..n]) {
            if r.is_ok() {
                msgs[m].data = buf.data();
                m += 1;
            }
        }
        let mut off = 0;
        while off < m {
            let sent = match (st.encap, &self.raw) {
                (Encap::Esp, Some(raw)) => raw.send_batch(&msgs[off..m]),
                _ => self.udp.send_batch(&msgs[off..m]),
            };
            match sent {
                Ok(k) if k > 0 => off += k,
                Ok(_) => break,
                Err(e) => {
                    tracing::debug!(worker = self.id, error = %e, "ESP send failed");
                    break;
                }
            }
        }
        tally.send_errors += (m - off) as u64;
    }

    /// Sends the sealed packets of slots `..n` as runs of equal-size datagrams, one `sendmsg`
    /// with UDP GSO per run, gathering the slots without copying them.
    // why: perf-anchors §3.1: UDP_SEGMENT turns ~5 us of stack traversal per datagram into
    // ~0.35 us; segments of one TSO super-packet are equal-size, so runs are long.
    fn send_gso(
        &mut self,
        n: usize,
        results: &[Result<(), SealError>],
        peer: SocketAddr,
        tally: &mut TunnelSnapshot,
    ) {
        let mut i = 0;
        while i < n {
            if results.get(i).is_none_or(Result::is_err) {
                i += 1;
                continue;
            }
            let size = self.bufs.get(i).map_or(0, PacketBuf::len);
            let mut parts: [&[u8]; MAX_GSO_SEGMENTS] = [&[]; MAX_GSO_SEGMENTS];
            let mut k = 0;
            let mut total = 0;
            let start = i;
            while i < n && k < MAX_GSO_SEGMENTS {
                let (Some(buf), Some(Ok(()))) = (self.bufs.get(i), results.get(i)) else {
                    break;
                };
                let len = buf.len();
                if len > size || total + len > GSO_MAX_BYTES || (k > 0 && len == 0) {
                    break;
                }
                parts[k] = buf.data();
                k += 1;
                total += len;
                i += 1;
                if len < size {
                    // A shorter datagram can only end a GSO run.
                    break;
                }
            }
            if k == 0 {
                i = start + 1;
                continue;
            }
            let segment = u16::try_from(size).ok().filter(|_| k > 1);
            match self.udp.send_gso_parts(&parts[..k], peer, segment) {
                Ok(true) => {}
                Ok(false) => tally.send_errors += k as u64,
                Err(e)
                    if segment.is_some()
                        && matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL)) =>
                {
                    // EIO: the egress device cannot checksum GSO, so send this run, and all
                    // later ones, one datagram at a time (quinn-udp and wireguard-go fall back
                    // alike). EINVAL: this run did not suit GSO (e.g. larger than the path
                    // MTU); send it datagram by datagram and keep GSO for the next.
                    if e.raw_os_error() == Some(libc::EIO) {
                        tracing::info!(worker = self.id, error = %e, "UDP GSO refused; sending without it");
                        self.gso = false;
                    }
                    for part in &parts[..k] {
                        if !matches!(self.udp.send_to(part, peer), Ok(l) if l > 0) {
                            tally.send_errors += 1;
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(worker = self.id, error = %e, "ESP send failed");
                    tally.send_errors += k as u64;
                }
            }
        }
    }

    /// A socket is readable: receive, demultiplex, open and deliver batches.
    fn receive(&mut self, raw: bool) {
        if !raw && self.gro {
            self.receive_gro();
            return;
        }
        for _ in 0..ROUNDS {
            let got = {
                let mut it = self.bufs.iter_mut();
                let mut slices: [&mut [u8]; BATCH] = std::array::from_fn(|_| {
                    it.next().map(PacketBuf::reset_for_read).unwrap_or_default()
                });
                match (raw, &self.raw) {
                    (true, Some(r)) => r.recv_batch(&mut slices, &mut self.metas),
                    _ => self.udp.recv_batch(&mut slices, &mut self.metas),
                }
            };
            let m = match got {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!(worker = self.id, error = %e, "ESP receive failed");
                    return;
                }
            };
            if m == 0 {
                return;
            }
            for (buf, meta) in self.bufs.iter_mut().zip(&self.metas[..m]) {
                let _ = buf.set_len(meta.len);
            }
            self.open_and_deliver(m, raw, true);
            self.flush_lanes();
            if m < BATCH {
                return;
            }
        }
    }

    /// The UDP socket is readable and has GRO on: receive coalesced buffers, cut them into
    /// datagrams (one copy each, into the packet slots), then open and deliver as usual.
    fn receive_gro(&mut self) {
        for _ in 0..ROUNDS {
            let got = {
                let mut it = self.gro_bufs.iter_mut();
                let mut slices: [&mut [u8]; GRO_BUFFERS] =
                    std::array::from_fn(|_| it.next().map(|b| &mut b[..]).unwrap_or_default());
                self.udp.recv_batch(&mut slices, &mut self.gro_metas)
            };
            let m = match got {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!(worker = self.id, error = %e, "ESP receive failed");
                    return;
                }
            };
            if m == 0 {
                return;
            }
            let mut n = 0;
            for b in 0..m {
                let meta = self.gro_metas[b];
                let stride = if meta.stride == 0 {
                    meta.len.max(1)
                } else {
                    meta.stride
                };
                let mut off = 0;
                if meta.len == 0 {
                    // An empty datagram: one empty slot, counted as malformed downstream.
                    if n == BATCH {
                        self.open_and_deliver(n, false, true);
                        n = 0;
                    }
                    if let Some(slot) = self.bufs.get_mut(n) {
                        slot.reset_for_read();
                        self.metas[n] = RecvMeta { stride: 0, ..meta };
                        n += 1;
                    }
                }
                while off < meta.len {
                    if n == BATCH {
                        self.open_and_deliver(n, false, true);
                        n = 0;
                    }
                    let end = meta.len.min(off.saturating_add(stride));
                    let (Some(src), Some(slot)) = (
                        self.gro_bufs.get(b).and_then(|g| g.get(off..end)),
                        self.bufs.get_mut(n),
                    ) else {
                        break;
                    };
                    let room = slot.reset_for_read();
                    let fits = src.len() <= room.len();
                    if let Some(dst) = room.get_mut(..src.len()) {
                        dst.copy_from_slice(src);
                    }
                    let _ = slot.set_len(if fits { src.len() } else { 0 });
                    self.metas[n] = RecvMeta {
                        len: src.len(),
                        src: meta.src,
                        truncated: meta.truncated || !fits,
                        stride: src.len(),
                    };
                    n += 1;
                    off = end;
                }
            }
            if n > 0 {
                self.open_and_deliver(n, false, true);
            }
            // why: runs stay open across the batches of one receive call (up to ~350
            // datagrams), so a flow's run is cut by the 64 KiB limit, not by BATCH.
            self.flush_lanes();
            if m < GRO_BUFFERS {
                return;
            }
        }
    }

    /// Opens and delivers datagrams `0..m` of the batch; `fresh` is false when they are
    /// parked datagrams already counted on arrival.
    fn open_and_deliver(&mut self, m: usize, raw: bool, fresh: bool) {
        let table = self.shared.table.load();
        let mut g = GlobalSnapshot {
            rx_datagrams: if fresh { m as u64 } else { 0 },
            ..Default::default()
        };
        if fresh && !raw {
            if let Some(c) = self.shared.worker_rx.get(self.id) {
                c.fetch_add(m as u64, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let mut results: [Result<InnerProto, OpenError>; BATCH] =
            std::array::from_fn(|_| Err(OpenError::BadLength));
        let mut i = 0;
        while i < m {
            let Some(spi) = self.esp_spi(i, raw, &mut g) else {
                i += 1;
                continue;
            };
            let Some(entry) = table.inbound.get(&spi) else {
                // Perhaps the SA of a rekey that is being installed right now: keep it briefly.
                if !fresh || self.park(i, raw) {
                    g.unknown_spi += 1;
                }
                i += 1;
                continue;
            };
            // The run of datagrams for the same SA is opened as one batch.
            let mut j = i + 1;
            while j < m && self.peek_spi(j, raw) == Some(spi) {
                j += 1;
            }
            entry
                .sa
                .open_batch(&mut self.bufs[i..j], &mut results[i..j]);
            let vnet = self.vnet.get(entry.tunnel).copied().unwrap_or(false);
            if vnet && self.lanes_tunnel != Some(entry.tunnel) {
                self.flush_lanes();
                self.lanes_tunnel = Some(entry.tunnel);
            }
            let Some(st) = self.shared.tunnels.get(entry.tunnel) else {
                i = j;
                continue;
            };
            let mut tally = TunnelSnapshot::default();
            let mut uso = self.uso.get(entry.tunnel).copied().unwrap_or(false);
            self.lanes.set_udp(uso);
            let mut authenticated_src = None;
            let opened = self.bufs[i..j]
                .iter_mut()
                .zip(&results[i..j])
                .zip(&self.metas[i..j]);
            let Some(q) = self.tun.get(entry.tunnel) else {
                i = j;
                continue;
            };
            let scratch = &mut self.scratch;
            for ((buf, result), meta) in opened {
                if result.is_err() {
                    continue;
                }
                authenticated_src = Some(meta.src);
                if let Some(mss) = st.mss {
                    let v6 = bh_packet::ip::inner_version(buf.data()) == Some(6);
                    let mss = if v6 { mss.saturating_sub(20) } else { mss };
                    if bh_packet::mss::clamp_mss(buf.data_mut(), mss) {
                        tally.mss_clamped += 1;
                    }
                }
                if !vnet {
                    match q.write(buf.data()) {
                        Ok(_) => tally.tun_tx_packets += 1,
                        _ => tally.tun_write_errors += 1,
                    }
                    continue;
                }
                // why: one write of a coalesced run replaces up to 64 per-packet trips through
                // the TUN and the stack (perf-anchors §3.1: TUN write ~5.5 us per packet);
                // lanes keep a run per flow open across the batch.
                let taken = self.lanes.push(buf.data(), &mut |out, count| {
                    write_run(q, out, count, scratch, &mut uso, &mut tally);
                });
                if taken {
                    continue;
                }
                // Alone, behind a zero virtio header (no offload; the kernel checks the
                // checksum), written in place in the headroom.
                match buf.prepend(VNET_HDR_LEN) {
                    Ok(h) => {
                        h.fill(0);
                        match q.write(buf.data()) {
                            Ok(_) => tally.tun_tx_packets += 1,
                            _ => tally.tun_write_errors += 1,
                        }
                    }
                    Err(_) => tally.tun_write_errors += 1,
                }
            }
            if !uso {
                if let Some(u) = self.uso.get_mut(entry.tunnel) {
                    *u = false;
                }
            }
            if let Some(src) = authenticated_src {
                self.follow_peer(entry.tunnel, src, raw);
            }
            st.counters.add(&tally);
            i = j;
        }
        self.shared.global.add(&g);
    }

    /// Writes the runs `lanes` holds to their tunnel's queue and counts them. Called after
    /// each receive call and before runs of another tunnel start.
    fn flush_lanes(&mut self) {
        let Some(t) = self.lanes_tunnel.take() else {
            return;
        };
        let (Some(q), Some(st)) = (self.tun.get(t), self.shared.tunnels.get(t)) else {
            self.lanes.flush(&mut |_, _| {});
            return;
        };
        let mut tally = TunnelSnapshot::default();
        let mut uso = self.uso.get(t).copied().unwrap_or(false);
        let scratch = &mut self.scratch;
        self.lanes.flush(&mut |out, count| {
            write_run(q, out, count, scratch, &mut uso, &mut tally);
        });
        if !uso {
            if let Some(u) = self.uso.get_mut(t) {
                *u = false;
            }
        }
        st.counters.add(&tally);
    }

    /// The SPI of datagram `i` if it is ESP; counts what it is otherwise.
    fn esp_spi(&self, i: usize, raw: bool, g: &mut GlobalSnapshot) -> Option<u32> {
        if self.metas[i].truncated {
            g.truncated += 1;
            return None;
        }
        let data = self.bufs[i].data();
        if raw {
            return match data.first_chunk::<4>().map(|s| u32::from_be_bytes(*s)) {
                Some(spi) if data.len() >= 8 && spi >= 256 => Some(spi),
                _ => {
                    g.malformed += 1;
                    None
                }
            };
        }
        match Udp4500::classify(data) {
            Udp4500::Esp(esp) => esp.first_chunk::<4>().map(|s| u32::from_be_bytes(*s)),
            Udp4500::Ike(msg) => {
                g.ike += 1;
                let handed = self.shared.ike.as_ref().is_some_and(|sink| {
                    sink.try_send(IkeDatagram {
                        src: self.metas[i].src,
                        local: self.shared.local,
                        data: msg.to_vec(),
                    })
                    .is_ok()
                });
                if !handed {
                    g.ike_dropped += 1;
                }
                None
            }
            Udp4500::NatKeepalive => {
                g.keepalives += 1;
                None
            }
            Udp4500::Malformed(_) => {
                g.malformed += 1;
                None
            }
        }
    }

    fn peek_spi(&self, i: usize, raw: bool) -> Option<u32> {
        if self.metas[i].truncated {
            return None;
        }
        let data = self.bufs[i].data();
        let esp = if raw {
            data
        } else {
            match Udp4500::classify(data) {
                Udp4500::Esp(esp) => esp,
                _ => return None,
            }
        };
        esp.first_chunk::<4>()
            .map(|s| u32::from_be_bytes(*s))
            .filter(|_| esp.len() >= 8)
    }

    /// NAT rebinding: authenticated ESP from a new address moves the tunnel's peer there.
    fn follow_peer(&self, t: usize, src: SocketAddr, raw: bool) {
        let Some(st) = self.shared.tunnels.get(t) else {
            return;
        };
        let cur = **st.peer.load();
        let new = if raw {
            SocketAddr::new(src.ip(), cur.port())
        } else {
            src
        };
        if new != cur && !is_unspecified(new.ip()) {
            tracing::info!(tunnel = %st.name, from = %cur, to = %new, "peer address changed");
            st.peer.store(Arc::new(new));
        }
    }
}

/// Writes one coalesced run of `count` packets (virtio header first) to `q` and counts them.
/// A `GSO_UDP_L4` run the kernel refuses (EINVAL: no USO on this kernel after all) is cut
/// back into datagrams in `scratch` and written one by one, and `uso` is cleared so later
/// batches do not coalesce UDP.
fn write_run(
    q: &TunQueue,
    out: &[u8],
    count: usize,
    scratch: &mut [u8],
    uso: &mut bool,
    tally: &mut TunnelSnapshot,
) {
    let count = count as u64;
    match q.write(out) {
        Ok(_) => {
            tally.tun_tx_packets += count;
            return;
        }
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
        Err(_) => {
            tally.tun_write_errors += count;
            return;
        }
    }
    let hdr = VnetHdr::decode(out).filter(|h| h.gso_type == VnetHdr::GSO_UDP_L4);
    let (Some(hdr), Some(pkt)) = (hdr, out.get(VNET_HDR_LEN..)) else {
        tally.tun_write_errors += count;
        return;
    };
    if *uso {
        tracing::info!("TUN refused a UDP super-packet (GSO_UDP_L4); writing UDP one by one");
        *uso = false;
    }
    let Ok(mut split) = Splitter::new(&hdr, pkt) else {
        tally.tun_write_errors += count;
        return;
    };
    let mut written = 0;
    if let Some(head) = scratch.get_mut(..VNET_HDR_LEN) {
        // Zero virtio header: no offload, the checksum is complete.
        head.fill(0);
    }
    while let Some(Some(Ok(len))) = scratch
        .get_mut(VNET_HDR_LEN..)
        .map(|room| split.next_into(room))
    {
        let one = scratch.get(..VNET_HDR_LEN + len);
        if one.is_some_and(|p| q.write(p).is_ok_and(|n| n > 0)) {
            tally.tun_tx_packets += 1;
        } else {
            tally.tun_write_errors += 1;
        }
        written += 1;
    }
    tally.tun_write_errors += count.saturating_sub(written);
}

fn is_unspecified(ip: IpAddr) -> bool {
    ip.is_unspecified()
}
