//! Segmentation and coalescing of inner packets for TUN queues opened with `IFF_VNET_HDR`.
//!
//! With `TUNSETOFFLOAD` (TSO4/6, USO4/6, CSUM) the kernel hands a queue TCP and UDP
//! "super-packets" of up to 64 KiB, described by a `virtio_net_hdr`
//! (`include/uapi/linux/virtio_net.h`), with the L4 checksum left partial (`NEEDS_CSUM`).
//! ESP must carry ordinary packets, so [`Splitter`] cuts a super-packet into MSS-sized segments,
//! each a complete packet with its own IPv4 total length / identification / header checksum or
//! IPv6 payload length, TCP sequence number and flags (CWR only on the first segment, PSH and
//! FIN only on the last) or UDP length, and an L4 checksum computed from scratch. A packet that
//! is not GSO but has `NEEDS_CSUM` gets its checksum finished the same way.
//!
//! In the other direction, [`Coalescer`] merges consecutive opened TCP segments of one flow
//! into one super-packet (receive-side GRO, with the rules of the kernel's `tcp_gro_receive`:
//! same addresses, ports, IP header fields, ACK number and TCP options, contiguous sequence
//! numbers, equal segment sizes but a shorter last one, only ACK/PSH flags, PSH only on the
//! last), each segment's checksum verified before it is merged. One `write` then hands the
//! kernel the whole run with a `GSO_TCPV4`/`GSO_TCPV6` header. Where the kernel takes
//! `GSO_UDP_L4` from userspace (USO, Linux 6.2+), it merges UDP datagrams of one flow the same
//! way (`udp_gro_receive_segment`'s rules: same addresses, ports and IP header fields, equal
//! sizes but a shorter last one, each checksum verified; none over IPv4 is not merged).
//! [`Lanes`] keeps one such run per flow open across a batch, so interleaved flows (many UDP
//! streams, or data of one TCP connection between the ACKs of another) still coalesce; order
//! is kept within a flow, not across flows (as the kernel's GRO).
//!
//! What this does not do: no IP options or IPv6 extension headers on coalesced packets (such
//! packets are passed through one by one), no IPv4 fragments, no UDP datagrams without a
//! checksum, no allocation after construction, and no panics on malformed input (errors are
//! returned).

use bh_packet::ip::{Checksum, PROTO_TCP, PROTO_UDP};
use bh_sys::tun::{VNET_HDR_LEN, VnetHdr};

mod sum;
pub use sum::ones_sum;

/// The largest IP packet the kernel hands over or takes (IPv4 total length is 16 bits).
pub const MAX_SUPER: usize = 65_535;

/// Segments merged into one super-packet at most (what UDP GSO and most drivers accept).
pub const MAX_COALESCE: usize = 64;

const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;
const TCP_CWR: u8 = 0x80;

/// Why a packet from a vnet-header queue cannot be segmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    /// Shorter than the virtio header, or than the headers it describes.
    #[error("packet shorter than its headers")]
    Truncated,
    /// Not IPv4 or IPv6, or a header field that contradicts the virtio header.
    #[error("malformed IP or L4 header")]
    Malformed,
    /// A GSO type this code does not segment (e.g. UFO, SCTP) or a zero segment size.
    #[error("unsupported GSO type {0}")]
    Unsupported(u8),
    /// The output buffer is smaller than a segment.
    #[error("segment does not fit the output buffer")]
    NoRoom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L4 {
    Tcp,
    Udp,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(*b.get(at..)?.first_chunk::<2>()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(*b.get(at..)?.first_chunk::<4>()?))
}

fn put16(b: &mut [u8], at: usize, v: u16) -> Option<()> {
    b.get_mut(at..at.checked_add(2)?)?
        .copy_from_slice(&v.to_be_bytes());
    Some(())
}

fn put32(b: &mut [u8], at: usize, v: u32) -> Option<()> {
    b.get_mut(at..at.checked_add(4)?)?
        .copy_from_slice(&v.to_be_bytes());
    Some(())
}

/// Adds the pseudo-header (RFC 9293 §3.1, RFC 8200 §8.1) of the IP packet `pkt` for an L4
/// segment of `l4_len` octets of protocol `proto`.
fn add_pseudo(c: &mut Checksum, pkt: &[u8], v6: bool, proto: u8, l4_len: usize) -> Option<()> {
    if v6 {
        c.add_bytes(pkt.get(8..40)?)
            .add_bytes(&u32::try_from(l4_len).ok()?.to_be_bytes())
            .add_u16(u16::from(proto));
    } else {
        c.add_bytes(pkt.get(12..20)?)
            .add_u16(u16::from(proto))
            .add_u16(u16::try_from(l4_len).ok()?);
    }
    Some(())
}

/// Writes the full L4 checksum of the packet `pkt` (L4 header at `l4`), computed from scratch
/// over the pseudo-header and the L4 octets.
fn set_l4_checksum(pkt: &mut [u8], v6: bool, l4: usize, kind: L4) -> Option<()> {
    let (proto, field) = match kind {
        L4::Tcp => (PROTO_TCP, l4.checked_add(16)?),
        L4::Udp => (PROTO_UDP, l4.checked_add(6)?),
    };
    put16(pkt, field, 0)?;
    let l4_len = pkt.len().checked_sub(l4)?;
    let mut c = Checksum::new();
    add_pseudo(&mut c, pkt, v6, proto, l4_len)?;
    c.add_u16(ones_sum(pkt.get(l4..)?));
    let mut sum = c.finish();
    if kind == L4::Udp && sum == 0 {
        // RFC 768: a computed zero is sent as all ones.
        sum = 0xffff;
    }
    put16(pkt, field, sum)
}

/// Recomputes the IPv4 header checksum of the `ihl`-octet header at the start of `pkt`.
fn set_ipv4_checksum(pkt: &mut [u8], ihl: usize) -> Option<()> {
    put16(pkt, 10, 0)?;
    let sum = !ones_sum(pkt.get(..ihl)?);
    put16(pkt, 10, sum)
}

/// Cuts one packet read from a vnet-header TUN queue (its virtio header already decoded) into
/// ordinary packets, one [`next_into`](Splitter::next_into) call per segment. A packet that is
/// not GSO comes out as one segment, its checksum finished if `NEEDS_CSUM` asked for it.
#[derive(Debug)]
pub struct Splitter<'a> {
    pkt: &'a [u8],
    v6: bool,
    /// Offset of the L4 header (`csum_start`); 0 when no L4 work is needed.
    l4: usize,
    /// Length of all headers copied into each segment.
    hdr_len: usize,
    kind: Option<L4>,
    gso_size: usize,
    /// Offset of the next payload byte to emit.
    next: usize,
    index: u32,
    /// Non-GSO: the checksum to finish (`csum_start`, `csum_offset`).
    finish: Option<(usize, usize)>,
    done: bool,
}

impl<'a> Splitter<'a> {
    /// Prepares to segment `pkt` (the IP packet after the virtio header `hdr`).
    pub fn new(hdr: &VnetHdr, pkt: &'a [u8]) -> Result<Self, OffloadError> {
        let v6 = match pkt.first().map(|b| b >> 4) {
            Some(4) => false,
            Some(6) => true,
            _ => return Err(OffloadError::Malformed),
        };
        let ip_len = if v6 {
            40
        } else {
            usize::from(pkt.first().copied().unwrap_or(0) & 0x0f) * 4
        };
        if ip_len < 20 || pkt.len() < ip_len {
            return Err(OffloadError::Truncated);
        }
        let needs_csum = hdr.flags & VnetHdr::F_NEEDS_CSUM != 0;
        let base = Self {
            pkt,
            v6,
            l4: 0,
            hdr_len: pkt.len(),
            kind: None,
            gso_size: 0,
            next: pkt.len(),
            index: 0,
            finish: None,
            done: false,
        };
        let gso = hdr.gso_type & !VnetHdr::GSO_ECN;
        if gso == VnetHdr::GSO_NONE {
            let finish = if needs_csum {
                let start = usize::from(hdr.csum_start);
                let field = start.checked_add(usize::from(hdr.csum_offset));
                match field {
                    Some(f) if start >= ip_len && f.saturating_add(2) <= pkt.len() => {
                        Some((start, usize::from(hdr.csum_offset)))
                    }
                    _ => return Err(OffloadError::Malformed),
                }
            } else {
                None
            };
            return Ok(Self { finish, ..base });
        }
        let kind = match gso {
            VnetHdr::GSO_TCPV4 if !v6 => L4::Tcp,
            VnetHdr::GSO_TCPV6 if v6 => L4::Tcp,
            VnetHdr::GSO_UDP_L4 => L4::Udp,
            VnetHdr::GSO_TCPV4 | VnetHdr::GSO_TCPV6 => return Err(OffloadError::Malformed),
            other => return Err(OffloadError::Unsupported(other)),
        };
        if hdr.gso_size == 0 {
            return Err(OffloadError::Unsupported(gso));
        }
        // The L4 header starts at csum_start (after IPv6 extension headers, if any); with
        // no NEEDS_CSUM the kernel gives no offset, so take the fixed IP header's length.
        let l4 = if needs_csum {
            usize::from(hdr.csum_start)
        } else {
            ip_len
        };
        if l4 < ip_len {
            return Err(OffloadError::Malformed);
        }
        if !v6
            && pkt.get(9)
                != Some(
                    &(if kind == L4::Tcp {
                        PROTO_TCP
                    } else {
                        PROTO_UDP
                    }),
                )
        {
            return Err(OffloadError::Malformed);
        }
        let l4_hdr = match kind {
            L4::Tcp => {
                let doff = pkt.get(l4 + 12).ok_or(OffloadError::Truncated)? >> 4;
                usize::from(doff) * 4
            }
            L4::Udp => 8,
        };
        if l4_hdr < if kind == L4::Tcp { 20 } else { 8 } {
            return Err(OffloadError::Malformed);
        }
        let hdr_len = l4 + l4_hdr;
        if pkt.len() < hdr_len {
            return Err(OffloadError::Truncated);
        }
        Ok(Self {
            l4,
            hdr_len,
            kind: Some(kind),
            gso_size: usize::from(hdr.gso_size),
            next: hdr_len,
            ..base
        })
    }

    /// Segments still to come (at least 1 until the first call).
    pub fn remaining(&self) -> usize {
        if self.done {
            0
        } else if self.kind.is_none() {
            1
        } else {
            let left = self.pkt.len() - self.next;
            left.div_ceil(self.gso_size.max(1)).max(1)
        }
    }

    /// Skips the next `k` segments without writing them (to resume a packet that was cut
    /// across batches).
    pub fn skip(&mut self, k: usize) {
        if k == 0 || self.done {
            return;
        }
        if self.kind.is_none() {
            self.done = true;
            return;
        }
        let left = self.pkt.len() - self.next;
        let bytes = k.saturating_mul(self.gso_size);
        if bytes >= left {
            self.next = self.pkt.len();
            self.done = true;
        } else {
            self.next += bytes;
        }
        self.index = self.index.wrapping_add(k as u32);
    }

    /// The length of the largest segment this packet yields.
    pub fn max_segment_len(&self) -> usize {
        if self.kind.is_none() {
            self.pkt.len()
        } else {
            self.hdr_len + self.gso_size.min(self.pkt.len() - self.hdr_len)
        }
    }

    /// Writes the next segment to the start of `out`; returns its length, or `None` when all
    /// segments were written.
    pub fn next_into(&mut self, out: &mut [u8]) -> Option<Result<usize, OffloadError>> {
        if self.done {
            return None;
        }
        let Some(kind) = self.kind else {
            self.done = true;
            return Some(self.whole_into(out));
        };
        let left = self.pkt.len() - self.next;
        let take = left.min(self.gso_size);
        let first = self.index == 0;
        let last = self.next + take >= self.pkt.len();
        let len = self.hdr_len + take;
        let Some(dst) = out.get_mut(..len) else {
            self.done = true;
            return Some(Err(OffloadError::NoRoom));
        };
        let r = self.write_segment(dst, kind, take, first, last);
        self.next += take;
        self.index = self.index.wrapping_add(1);
        if last {
            self.done = true;
        }
        Some(r.map(|()| len).ok_or(OffloadError::Malformed))
    }

    fn whole_into(&self, out: &mut [u8]) -> Result<usize, OffloadError> {
        let len = self.pkt.len();
        let dst = out.get_mut(..len).ok_or(OffloadError::NoRoom)?;
        dst.copy_from_slice(self.pkt);
        if let Some((start, offset)) = self.finish {
            // The field holds the pseudo-header sum: summing from csum_start over it and the
            // rest of the packet gives the checksum (virtio spec, "Packet Transmission").
            let mut sum = !ones_sum(dst.get(start..).ok_or(OffloadError::Truncated)?);
            if offset == 6 && sum == 0 {
                sum = 0xffff;
            }
            put16(dst, start + offset, sum).ok_or(OffloadError::Truncated)?;
        }
        Ok(len)
    }

    fn write_segment(
        &self,
        dst: &mut [u8],
        kind: L4,
        take: usize,
        first: bool,
        last: bool,
    ) -> Option<()> {
        let h = self.hdr_len;
        dst.get_mut(..h)?.copy_from_slice(self.pkt.get(..h)?);
        dst.get_mut(h..)?
            .copy_from_slice(self.pkt.get(self.next..self.next + take)?);
        let len = dst.len();
        if self.v6 {
            put16(dst, 4, u16::try_from(len - 40).ok()?)?;
        } else {
            put16(dst, 2, u16::try_from(len).ok()?)?;
            let id = be16(dst, 4)?.wrapping_add(self.index as u16);
            put16(dst, 4, id)?;
            set_ipv4_checksum(dst, usize::from(dst.first()? & 0x0f) * 4)?;
        }
        let l4 = self.l4;
        match kind {
            L4::Tcp => {
                let offset = u32::try_from(self.next - h).ok()?;
                let seq = be32(dst, l4 + 4)?.wrapping_add(offset);
                put32(dst, l4 + 4, seq)?;
                let flags = dst.get_mut(l4 + 13)?;
                if !last {
                    *flags &= !(TCP_PSH | TCP_FIN);
                }
                if !first {
                    *flags &= !TCP_CWR;
                }
            }
            L4::Udp => put16(dst, l4 + 4, u16::try_from(len - l4).ok()?)?,
        }
        set_l4_checksum(dst, self.v6, l4, kind)
    }
}

/// Whether the TCP or UDP checksum of the IP packet `pkt` (L4 header at `l4`) verifies.
fn l4_checksum_ok(pkt: &[u8], v6: bool, l4: usize, kind: L4) -> bool {
    let Some(seg) = pkt.get(l4..) else {
        return false;
    };
    let proto = match kind {
        L4::Tcp => PROTO_TCP,
        L4::Udp => PROTO_UDP,
    };
    let mut c = Checksum::new();
    if add_pseudo(&mut c, pkt, v6, proto, seg.len()).is_none() {
        return false;
    }
    c.add_u16(ones_sum(seg)).folded() == 0xffff
}

/// What identifies a TCP or UDP packet for coalescing: the headers that must match.
#[derive(Debug, Clone, Copy)]
struct View {
    kind: L4,
    v6: bool,
    /// Offset of the L4 header (the IP header length).
    l4: usize,
    /// Offset of the payload.
    payload: usize,
    /// TCP sequence number (0 for UDP).
    seq: u32,
    /// TCP flags (0 for UDP).
    flags: u8,
}

/// The offset of the L4 header of `pkt` and its protocol if `pkt` may take part in
/// coalescing: IPv4 without options and not a fragment, or IPv6 whose next header is the
/// L4 protocol (no extension headers); whole (the IP length agrees with the buffer).
fn plain_l4(pkt: &[u8]) -> Option<(bool, usize, u8)> {
    match pkt.first()? >> 4 {
        4 => {
            let frag = be16(pkt, 6)?;
            if pkt.first()? & 0x0f != 5
                || frag & 0x3fff != 0
                || usize::from(be16(pkt, 2)?) != pkt.len()
            {
                return None;
            }
            Some((false, 20, *pkt.get(9)?))
        }
        6 => {
            if usize::from(be16(pkt, 4)?).checked_add(40)? != pkt.len() {
                return None;
            }
            Some((true, 40, *pkt.get(6)?))
        }
        _ => None,
    }
}

/// Parses `pkt` as a TCP packet, or (if `udp`) a UDP datagram, that may take part in
/// coalescing (see [`plain_l4`]). A UDP datagram must have a length field that agrees with
/// the IP length and a checksum (a zero one, "none" over IPv4, is not coalesced).
fn view(pkt: &[u8], udp: bool) -> Option<View> {
    let (v6, l4, proto) = plain_l4(pkt)?;
    match proto {
        PROTO_TCP => {
            let doff = usize::from(pkt.get(l4 + 12)? >> 4) * 4;
            let payload = l4.checked_add(doff)?;
            if doff < 20 || payload > pkt.len() {
                return None;
            }
            Some(View {
                kind: L4::Tcp,
                v6,
                l4,
                payload,
                seq: be32(pkt, l4 + 4)?,
                flags: *pkt.get(l4 + 13)?,
            })
        }
        PROTO_UDP if udp => {
            let payload = l4 + 8;
            if payload > pkt.len()
                || usize::from(be16(pkt, l4 + 4)?) != pkt.len() - l4
                || be16(pkt, l4 + 6)? == 0
            {
                return None;
            }
            Some(View {
                kind: L4::Udp,
                v6,
                l4,
                payload,
                seq: 0,
                flags: 0,
            })
        }
        _ => None,
    }
}

/// Merges consecutive TCP segments (and, if enabled, UDP datagrams) of one flow into a
/// super-packet with a virtio header, ready for one `write` to a vnet-header TUN queue. Owns
/// one 64 KiB buffer, allocated once.
pub struct Coalescer {
    buf: Box<[u8]>,
    /// Bytes used in `buf` (virtio header included); 0 when no run is open.
    len: usize,
    view: Option<View>,
    gso_size: usize,
    next_seq: u32,
    count: usize,
    closed: bool,
    /// UDP datagrams are coalesced too (the queue takes `GSO_UDP_L4`).
    udp: bool,
    /// The flow of the open run.
    key: Option<FlowKey>,
}

impl std::fmt::Debug for Coalescer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer")
            .field("len", &self.len)
            .field("count", &self.count)
            .field("udp", &self.udp)
            .finish()
    }
}

impl Default for Coalescer {
    fn default() -> Self {
        Self::new()
    }
}

impl Coalescer {
    /// An empty coalescer for TCP only.
    pub fn new() -> Self {
        Self {
            buf: vec![0u8; VNET_HDR_LEN + MAX_SUPER].into_boxed_slice(),
            len: 0,
            view: None,
            gso_size: 0,
            next_seq: 0,
            count: 0,
            closed: false,
            udp: false,
            key: None,
        }
    }

    /// An empty coalescer for TCP, and for UDP if `udp` (only for a queue whose kernel
    /// accepts `GSO_UDP_L4` from userspace: `TUN_F_USO4|6`, Linux 6.2 and later).
    pub fn with_udp(udp: bool) -> Self {
        Self { udp, ..Self::new() }
    }

    /// Stops (or starts) coalescing UDP: once stopped, no UDP datagram joins or starts a run
    /// (an open UDP run can still be finished).
    pub fn set_udp(&mut self, udp: bool) {
        self.udp = udp;
    }

    /// Whether a run is open.
    pub fn is_open(&self) -> bool {
        self.view.is_some()
    }

    /// Segments in the open run.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Adds `pkt` to the open run if it continues it, or else, when no run is open, starts
    /// one with it if it can be coalesced. Returns whether `pkt` was taken; when it was not,
    /// call [`finish`](Self::finish) (if a run is open) and push it again, or send it alone.
    pub fn push(&mut self, pkt: &[u8]) -> bool {
        let Some(v) = view(pkt, self.udp) else {
            return false;
        };
        let payload = pkt.len() - v.payload;
        if self.view.is_none() {
            return self.start(pkt, v, payload);
        }
        self.append(pkt, v, payload)
    }

    /// Whether the open run is of the flow of `key` (see [`FlowKey::matches`]).
    fn holds(&self, key: &FlowKey) -> bool {
        self.view.is_some() && self.key.is_some_and(|k| k.matches(key))
    }

    fn start(&mut self, pkt: &[u8], v: View, payload: usize) -> bool {
        // TCP: only plain data segments (ACK, no PSH/FIN/SYN/RST/URG/ECE/CWR) start a run;
        // PSH or FIN may only end one, CWR stays on a packet of its own.
        if payload == 0
            || (v.kind == L4::Tcp && v.flags != TCP_ACK)
            || !l4_checksum_ok(pkt, v.v6, v.l4, v.kind)
        {
            return false;
        }
        let Some(dst) = self.buf.get_mut(VNET_HDR_LEN..VNET_HDR_LEN + pkt.len()) else {
            return false;
        };
        dst.copy_from_slice(pkt);
        self.len = VNET_HDR_LEN + pkt.len();
        self.view = Some(v);
        self.key = FlowKey::of(pkt);
        self.gso_size = payload;
        self.next_seq = v.seq.wrapping_add(payload as u32);
        self.count = 1;
        self.closed = false;
        true
    }

    fn append(&mut self, pkt: &[u8], v: View, payload: usize) -> bool {
        let Some(head) = self.view else {
            return false;
        };
        let allowed = TCP_ACK | TCP_PSH | TCP_FIN;
        if self.closed
            || self.count >= MAX_COALESCE
            || payload == 0
            || payload > self.gso_size
            || v.kind != head.kind
            || v.v6 != head.v6
            || v.payload != head.payload
            || self.len + payload > VNET_HDR_LEN + MAX_SUPER
        {
            return false;
        }
        if v.kind == L4::Tcp
            && (v.seq != self.next_seq || v.flags & !allowed != 0 || v.flags & TCP_ACK == 0)
        {
            return false;
        }
        let Some(h) = self.buf.get(VNET_HDR_LEN..VNET_HDR_LEN + head.payload) else {
            return false;
        };
        let Some(p) = pkt.get(..head.payload) else {
            return false;
        };
        if !same_flow_headers(h, p, head) || !l4_checksum_ok(pkt, v.v6, v.l4, v.kind) {
            return false;
        }
        let Some(dst) = self.buf.get_mut(self.len..self.len + payload) else {
            return false;
        };
        let Some(src) = pkt.get(v.payload..) else {
            return false;
        };
        dst.copy_from_slice(src);
        self.len += payload;
        self.count += 1;
        self.next_seq = self.next_seq.wrapping_add(payload as u32);
        if v.kind == L4::Tcp {
            if let Some(f) = self.buf.get_mut(VNET_HDR_LEN + head.l4 + 13) {
                *f |= v.flags & (TCP_PSH | TCP_FIN);
            }
        }
        // A short segment, PSH or FIN ends the run (the kernel's GRO flushes there too).
        if payload < self.gso_size || v.flags & (TCP_PSH | TCP_FIN) != 0 {
            self.closed = true;
        }
        true
    }

    /// Closes the open run and returns it with its virtio header in front, ready to write:
    /// one segment is returned as it came (`GSO_NONE`); several become one super-packet with
    /// fixed IP lengths (and UDP length), a partial L4 checksum and
    /// `GSO_TCPV4`/`GSO_TCPV6`/`GSO_UDP_L4`. `None` if no run was open.
    pub fn finish(&mut self) -> Option<&[u8]> {
        let v = self.view.take()?;
        let len = std::mem::take(&mut self.len);
        let count = std::mem::take(&mut self.count);
        let pkt = self.buf.get_mut(VNET_HDR_LEN..len)?;
        let hdr = if count <= 1 {
            VnetHdr::default()
        } else {
            let plen = pkt.len();
            if v.v6 {
                put16(pkt, 4, u16::try_from(plen - 40).ok()?)?;
            } else {
                put16(pkt, 2, u16::try_from(plen).ok()?)?;
                set_ipv4_checksum(pkt, 20)?;
            }
            let l4_len = plen - v.l4;
            let (proto, field, gso_type) = match (v.kind, v.v6) {
                (L4::Tcp, false) => (PROTO_TCP, 16, VnetHdr::GSO_TCPV4),
                (L4::Tcp, true) => (PROTO_TCP, 16, VnetHdr::GSO_TCPV6),
                (L4::Udp, _) => (PROTO_UDP, 6, VnetHdr::GSO_UDP_L4),
            };
            if v.kind == L4::Udp {
                // The kernel's UDP segmentation takes the whole length here and adjusts
                // the checksum field for each segment's own length.
                put16(pkt, v.l4 + 4, u16::try_from(l4_len).ok()?)?;
            }
            // CHECKSUM_PARTIAL convention: the field holds the folded pseudo-header sum (not
            // complemented) over the whole L4 length; the kernel finishes each segment.
            let mut c = Checksum::new();
            add_pseudo(&mut c, pkt, v.v6, proto, l4_len)?;
            put16(pkt, v.l4 + field, c.folded())?;
            VnetHdr {
                flags: VnetHdr::F_NEEDS_CSUM,
                gso_type,
                hdr_len: u16::try_from(v.payload).ok()?,
                gso_size: u16::try_from(self.gso_size).ok()?,
                csum_start: u16::try_from(v.l4).ok()?,
                csum_offset: field as u16,
            }
        };
        self.buf
            .get_mut(..VNET_HDR_LEN)?
            .copy_from_slice(&hdr.encode());
        self.buf.get(..len)
    }
}

/// The flow an IP packet belongs to, as far as ordering goes: IP version, addresses, and
/// (when the packet shows them) L4 protocol and ports. Packets that share a key keep their
/// order through [`Lanes`]; packets of different keys may be reordered against each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FlowKey {
    v6: bool,
    /// Source then destination address (8 octets of IPv4 or 32 of IPv6).
    addrs: [u8; 32],
    /// The L4 protocol; `None` for IPv6 with extension headers (the protocol is unknown).
    proto: Option<u8>,
    /// Source and destination port; `None` for IPv4 fragments and other protocols.
    ports: Option<[u8; 4]>,
}

impl FlowKey {
    /// The key of `pkt`; `None` if it is not IPv4 or IPv6 with a whole fixed header.
    fn of(pkt: &[u8]) -> Option<Self> {
        let mut addrs = [0u8; 32];
        let (v6, proto, l4) = match pkt.first()? >> 4 {
            4 => {
                addrs.get_mut(..8)?.copy_from_slice(pkt.get(12..20)?);
                let ihl = usize::from(pkt.first()? & 0x0f) * 4;
                let fragment = be16(pkt, 6)? & 0x3fff != 0;
                (false, Some(*pkt.get(9)?), (!fragment).then_some(ihl))
            }
            6 => {
                addrs.copy_from_slice(pkt.get(8..40)?);
                let next = *pkt.get(6)?;
                if next == PROTO_TCP || next == PROTO_UDP {
                    (true, Some(next), Some(40))
                } else {
                    (true, None, None)
                }
            }
            _ => return None,
        };
        let ports = match (proto, l4) {
            (Some(PROTO_TCP | PROTO_UDP), Some(l4)) => pkt.get(l4..)?.first_chunk::<4>().copied(),
            _ => None,
        };
        Some(Self {
            v6,
            addrs,
            proto,
            ports,
        })
    }

    /// Whether a run of flow `self` (a coalesced TCP or UDP flow) must be written before a
    /// packet of key `other`: same addresses and, as far as `other` shows them, protocol
    /// and ports.
    fn matches(&self, other: &Self) -> bool {
        self.v6 == other.v6
            && self.addrs == other.addrs
            && other.proto.is_none_or(|p| self.proto == Some(p))
            && other.ports.is_none_or(|p| self.ports == Some(p))
    }
}

/// Runs of several flows open at once: receive-side GRO over a batch in which flows
/// interleave (many UDP flows, or TCP data of one flow between the ACKs of another). Each
/// lane is a [`Coalescer`]; a packet joins its flow's lane, and a packet that cannot join
/// first has its flow's lane written, so order within a flow is kept. When every lane is
/// busy, the lane opened first is written to make room.
#[derive(Debug)]
pub struct Lanes {
    lanes: Vec<Coalescer>,
    /// When each lane's run was opened (a counter), to pick the oldest to write.
    opened: Vec<u64>,
    clock: u64,
}

impl Lanes {
    /// `n` lanes (at least one) of 64 KiB each; UDP is coalesced if `udp` (see
    /// [`Coalescer::with_udp`]).
    pub fn new(n: usize, udp: bool) -> Self {
        let n = n.max(1);
        Self {
            lanes: (0..n).map(|_| Coalescer::with_udp(udp)).collect(),
            opened: vec![0; n],
            clock: 0,
        }
    }

    /// Stops (or starts) coalescing UDP; open UDP runs take no more datagrams but are still
    /// written by [`flush`](Self::flush), or before the next packet of their flow.
    pub fn set_udp(&mut self, udp: bool) {
        for l in &mut self.lanes {
            l.set_udp(udp);
        }
    }

    /// Takes `pkt` into its flow's run, writing runs with `emit(super_packet, segments)` as
    /// needed. Returns false when `pkt` was not taken: the caller writes it alone, and may
    /// do so at once (every run of its flow has been written already).
    pub fn push(&mut self, pkt: &[u8], emit: &mut dyn FnMut(&[u8], usize)) -> bool {
        let Some(key) = FlowKey::of(pkt) else {
            return false;
        };
        if let Some(i) = self.lanes.iter().position(|l| l.holds(&key)) {
            let Some(lane) = self.lanes.get_mut(i) else {
                return false;
            };
            if lane.push(pkt) {
                return true;
            }
            let count = lane.count();
            if let Some(out) = lane.finish() {
                emit(out, count);
            }
            // Another lane might hold the same addresses with other ports when `pkt` shows
            // no ports (a fragment): write those as well.
            if key.ports.is_none() {
                self.flush_matching(&key, emit);
            }
            return self.start(i, pkt);
        }
        let free = match self.lanes.iter().position(|l| !l.is_open()) {
            Some(i) => i,
            None => {
                let oldest =
                    (0..self.lanes.len()).min_by_key(|&i| self.opened.get(i).copied().unwrap_or(0));
                let Some((i, lane)) = oldest.and_then(|i| Some((i, self.lanes.get_mut(i)?))) else {
                    return false;
                };
                if view(pkt, lane.udp).is_none() {
                    // It would not start a run anyway: no need to write one for it.
                    return false;
                }
                let count = lane.count();
                if let Some(out) = lane.finish() {
                    emit(out, count);
                }
                i
            }
        };
        self.start(free, pkt)
    }

    fn start(&mut self, i: usize, pkt: &[u8]) -> bool {
        let (Some(lane), Some(at)) = (self.lanes.get_mut(i), self.opened.get_mut(i)) else {
            return false;
        };
        if lane.push(pkt) {
            self.clock += 1;
            *at = self.clock;
            true
        } else {
            false
        }
    }

    fn flush_matching(&mut self, key: &FlowKey, emit: &mut dyn FnMut(&[u8], usize)) {
        for lane in &mut self.lanes {
            if lane.holds(key) {
                let count = lane.count();
                if let Some(out) = lane.finish() {
                    emit(out, count);
                }
            }
        }
    }

    /// Writes every open run, oldest first.
    pub fn flush(&mut self, emit: &mut dyn FnMut(&[u8], usize)) {
        let mut order: [(u64, usize); MAX_LANES] = [(0, 0); MAX_LANES];
        let mut k = 0;
        for (i, lane) in self.lanes.iter().enumerate() {
            if lane.is_open() && k < MAX_LANES {
                order[k] = (self.opened.get(i).copied().unwrap_or(0), i);
                k += 1;
            }
        }
        let order = &mut order[..k];
        order.sort_unstable();
        for &(_, i) in order.iter() {
            if let Some(lane) = self.lanes.get_mut(i) {
                let count = lane.count();
                if let Some(out) = lane.finish() {
                    emit(out, count);
                }
            }
        }
        // Lanes past MAX_LANES (never made by `new`'s callers here, but possible).
        for lane in self.lanes.iter_mut().skip(MAX_LANES) {
            let count = lane.count();
            if let Some(out) = lane.finish() {
                emit(out, count);
            }
        }
    }
}

/// The most lanes [`Lanes::flush`] orders by age (more still work, written after).
pub const MAX_LANES: usize = 32;

/// Whether the headers (up to the payload) of `p` match the run's head `h` where they must:
/// everything but the IPv4 total length, identification and checksum (or IPv6 payload
/// length), the TCP sequence number, flags, window and checksum (UDP: length and checksum).
fn same_flow_headers(h: &[u8], p: &[u8], v: View) -> bool {
    let l4 = v.l4;
    let ip_same = if v.v6 {
        // Version, traffic class, flow label; next header, hop limit; addresses.
        h.get(..4) == p.get(..4) && h.get(6..40) == p.get(6..40)
    } else {
        // Version/IHL, TOS; flags (DF); TTL, protocol; addresses.
        h.get(..2) == p.get(..2)
            && h.get(6) == p.get(6)
            && h.get(8..10) == p.get(8..10)
            && h.get(12..20) == p.get(12..20)
    };
    // Ports; for TCP also the acknowledgment number, data offset, urgent pointer, options
    // (a UDP header has nothing else that must match).
    ip_same
        && h.get(l4..l4 + 4) == p.get(l4..l4 + 4)
        && (v.kind == L4::Udp
            || (h.get(l4 + 8..l4 + 13) == p.get(l4 + 8..l4 + 13)
                && h.get(l4 + 18..v.payload) == p.get(l4 + 18..v.payload)))
}

#[cfg(test)]
mod tests;
