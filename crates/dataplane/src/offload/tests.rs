use super::*;

const SYN: u8 = 0x02;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const CWR: u8 = 0x80;
const ECE: u8 = 0x40;

/// RFC 1071 the slow way, independent of `bh_packet::ip::Checksum`: 16-bit words, odd octet
/// padded, end-around carry, complemented.
fn naive_csum(parts: &[&[u8]]) -> u16 {
    let mut bytes = Vec::new();
    for p in parts {
        bytes.extend_from_slice(p);
    }
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    let mut sum: u32 = 0;
    for w in bytes.chunks(2) {
        sum += u32::from(w[0]) << 8 | u32::from(w[1]);
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
    }
    !(sum as u16)
}

fn pseudo(pkt: &[u8], proto: u8, l4_len: usize) -> Vec<u8> {
    if pkt[0] >> 4 == 6 {
        let mut p = pkt[8..40].to_vec();
        p.extend_from_slice(&(l4_len as u32).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, proto]);
        p
    } else {
        let mut p = pkt[12..20].to_vec();
        p.extend_from_slice(&[0, proto]);
        p.extend_from_slice(&(l4_len as u16).to_be_bytes());
        p
    }
}

fn l4_off(pkt: &[u8]) -> usize {
    if pkt[0] >> 4 == 6 {
        40
    } else {
        usize::from(pkt[0] & 0xf) * 4
    }
}

/// Checks a packet from scratch: IPv4 header checksum and lengths, and the L4 checksum.
fn assert_valid(pkt: &[u8], proto: u8) {
    let l4 = l4_off(pkt);
    if pkt[0] >> 4 == 4 {
        assert_eq!(naive_csum(&[&pkt[..l4]]), 0, "IPv4 header checksum");
        assert_eq!(usize::from(u16::from_be_bytes([pkt[2], pkt[3]])), pkt.len());
    } else {
        assert_eq!(
            usize::from(u16::from_be_bytes([pkt[4], pkt[5]])) + 40,
            pkt.len()
        );
    }
    if proto == PROTO_UDP {
        assert_eq!(
            usize::from(u16::from_be_bytes([pkt[l4 + 4], pkt[l4 + 5]])),
            pkt.len() - l4,
            "UDP length"
        );
    }
    let ph = pseudo(pkt, proto, pkt.len() - l4);
    assert_eq!(naive_csum(&[&ph, &pkt[l4..]]), 0, "L4 checksum");
}

fn set_l4_csum_naive(pkt: &mut [u8], proto: u8) {
    let l4 = l4_off(pkt);
    let field = l4 + if proto == PROTO_TCP { 16 } else { 6 };
    pkt[field..field + 2].fill(0);
    let ph = pseudo(pkt, proto, pkt.len() - l4);
    let c = naive_csum(&[&ph, &pkt[l4..]]);
    pkt[field..field + 2].copy_from_slice(&c.to_be_bytes());
}

fn ip_header(v6: bool, proto: u8, id: u16, l4_len: usize) -> Vec<u8> {
    if v6 {
        let mut p = vec![0u8; 40];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        p[6] = proto;
        p[7] = 64;
        p[8] = 0xfd;
        p[23] = 1;
        p[24] = 0xfd;
        p[25] = 2;
        p[39] = 2;
        p
    } else {
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        p[4..6].copy_from_slice(&id.to_be_bytes());
        p[6] = 0x40;
        p[8] = 64;
        p[9] = proto;
        p[12..16].copy_from_slice(&[10, 1, 0, 2]);
        p[16..20].copy_from_slice(&[10, 2, 0, 2]);
        let c = naive_csum(&[&p]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    }
}

struct Tcp<'a> {
    v6: bool,
    id: u16,
    sport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    opts: &'a [u8],
    payload: &'a [u8],
}

impl Default for Tcp<'_> {
    fn default() -> Self {
        Self {
            v6: false,
            id: 100,
            sport: 40000,
            seq: 1_000_000,
            ack: 77,
            flags: ACK,
            window: 500,
            opts: &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2],
            payload: &[],
        }
    }
}

impl Tcp<'_> {
    fn build(&self) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&self.sport.to_be_bytes());
        t[2..4].copy_from_slice(&5201u16.to_be_bytes());
        t[4..8].copy_from_slice(&self.seq.to_be_bytes());
        t[8..12].copy_from_slice(&self.ack.to_be_bytes());
        t[12] = (((20 + self.opts.len()) / 4) as u8) << 4;
        t[13] = self.flags;
        t[14..16].copy_from_slice(&self.window.to_be_bytes());
        t.extend_from_slice(self.opts);
        t.extend_from_slice(self.payload);
        let mut p = ip_header(self.v6, PROTO_TCP, self.id, t.len());
        p.extend_from_slice(&t);
        set_l4_csum_naive(&mut p, PROTO_TCP);
        p
    }
}

fn payload(n: usize, salt: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(7) ^ salt).collect()
}

/// A super-packet as the kernel hands it over: the checksum field holds the pseudo-header sum.
fn tso_packet(v6: bool, flags: u8, data: &[u8], gso_size: u16) -> (VnetHdr, Vec<u8>) {
    let mut p = Tcp {
        v6,
        flags,
        payload: data,
        ..Tcp::default()
    }
    .build();
    let l4 = l4_off(&p);
    let ph = pseudo(&p, PROTO_TCP, p.len() - l4);
    let partial = !naive_csum(&[&ph]);
    p[l4 + 16..l4 + 18].copy_from_slice(&partial.to_be_bytes());
    let hdr = VnetHdr {
        flags: VnetHdr::F_NEEDS_CSUM,
        gso_type: if v6 {
            VnetHdr::GSO_TCPV6
        } else {
            VnetHdr::GSO_TCPV4
        },
        hdr_len: (l4 + 32) as u16,
        gso_size,
        csum_start: l4 as u16,
        csum_offset: 16,
    };
    (hdr, p)
}

fn split_all(hdr: &VnetHdr, pkt: &[u8]) -> Vec<Vec<u8>> {
    let mut s = Splitter::new(hdr, pkt).expect("splitter");
    let mut out = Vec::new();
    let mut buf = vec![0u8; 70_000];
    while let Some(r) = s.next_into(&mut buf) {
        let n = r.expect("segment");
        out.push(buf[..n].to_vec());
    }
    assert_eq!(s.remaining(), 0);
    out
}

fn check_tcp_split(v6: bool) {
    let data = payload(4500, 3);
    let (hdr, pkt) = tso_packet(v6, ACK | PSH | FIN | CWR, &data, 1000);
    let segs = split_all(&hdr, &pkt);
    // Resuming after skipping gives the same later segments.
    for (k, want) in segs.iter().map(Some).chain([None]).enumerate() {
        let mut s = Splitter::new(&hdr, &pkt).unwrap();
        s.skip(k);
        assert_eq!(s.remaining(), 5 - k, "after skipping {k}");
        let mut buf = vec![0u8; 2000];
        match (s.next_into(&mut buf), want) {
            (Some(r), Some(want)) => assert_eq!(&buf[..r.unwrap()], &want[..]),
            (None, None) => {}
            (got, want) => panic!("skip {k}: {got:?} vs {want:?}"),
        }
    }
    assert_eq!(segs.len(), 5);
    let l4 = l4_off(&pkt);
    for (i, s) in segs.iter().enumerate() {
        let want = if i < 4 { 1000 } else { 500 };
        assert_eq!(s.len(), l4 + 32 + want, "segment {i} length");
        assert_valid(s, PROTO_TCP);
        let seq = u32::from_be_bytes(s[l4 + 4..l4 + 8].try_into().unwrap());
        assert_eq!(seq, 1_000_000 + 1000 * i as u32, "segment {i} seq");
        let flags = s[l4 + 13];
        assert_eq!(
            flags & CWR != 0,
            i == 0,
            "CWR only on the first, segment {i}"
        );
        assert_eq!(
            flags & PSH != 0,
            i == 4,
            "PSH only on the last, segment {i}"
        );
        assert_eq!(
            flags & FIN != 0,
            i == 4,
            "FIN only on the last, segment {i}"
        );
        assert!(flags & ACK != 0);
        assert_eq!(&s[l4 + 20..l4 + 32], Tcp::default().opts, "options copied");
        assert_eq!(&s[l4 + 32..], &data[i * 1000..i * 1000 + want]);
        if !v6 {
            assert_eq!(u16::from_be_bytes([s[4], s[5]]), 100 + i as u16, "IPv4 ID");
        }
    }
}

#[test]
fn tso_v4_is_cut_into_valid_segments() {
    check_tcp_split(false);
}

#[test]
fn tso_v6_is_cut_into_valid_segments() {
    check_tcp_split(true);
}

fn check_uso(v6: bool) {
    let data = payload(3000, 9);
    let mut u = vec![0u8; 8];
    u[0..2].copy_from_slice(&5000u16.to_be_bytes());
    u[2..4].copy_from_slice(&53u16.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    u.extend_from_slice(&data);
    let mut p = ip_header(v6, PROTO_UDP, 9, u.len());
    p.extend_from_slice(&u);
    let l4 = l4_off(&p);
    let hdr = VnetHdr {
        flags: VnetHdr::F_NEEDS_CSUM,
        gso_type: VnetHdr::GSO_UDP_L4,
        hdr_len: (l4 + 8) as u16,
        gso_size: 1200,
        csum_start: l4 as u16,
        csum_offset: 6,
    };
    let segs = split_all(&hdr, &p);
    assert_eq!(segs.len(), 3);
    for (i, s) in segs.iter().enumerate() {
        let want = if i < 2 { 1200 } else { 600 };
        assert_eq!(s.len(), l4 + 8 + want);
        assert_valid(s, PROTO_UDP);
        assert_eq!(&s[l4 + 8..], &data[i * 1200..i * 1200 + want]);
        assert_eq!(&s[l4..l4 + 4], &u[..4], "ports");
    }
}

#[test]
fn uso_v4_is_cut_into_valid_datagrams() {
    check_uso(false);
}

#[test]
fn uso_v6_is_cut_into_valid_datagrams() {
    check_uso(true);
}

#[test]
fn plain_packets_pass_and_partial_checksums_are_finished() {
    // Not GSO, checksum complete: copied as is.
    let pkt = Tcp {
        payload: &payload(100, 1),
        ..Tcp::default()
    }
    .build();
    assert_eq!(split_all(&VnetHdr::default(), &pkt), vec![pkt.clone()]);
    // NEEDS_CSUM on a single UDP datagram: the field holds the pseudo-header sum.
    let data = payload(33, 2);
    let mut u = vec![0, 7, 0, 53, 0, (8 + data.len()) as u8, 0, 0];
    u.extend_from_slice(&data);
    let mut p = ip_header(false, PROTO_UDP, 1, u.len());
    p.extend_from_slice(&u);
    let ph = pseudo(&p, PROTO_UDP, u.len());
    let partial = !naive_csum(&[&ph]);
    p[26..28].copy_from_slice(&partial.to_be_bytes());
    let hdr = VnetHdr {
        flags: VnetHdr::F_NEEDS_CSUM,
        csum_start: 20,
        csum_offset: 6,
        ..VnetHdr::default()
    };
    let out = split_all(&hdr, &p);
    assert_eq!(out.len(), 1);
    assert_valid(&out[0], PROTO_UDP);
    assert_eq!(&out[0][28..], &data[..]);
}

#[test]
fn malformed_input_is_refused_without_panicking() {
    let (hdr, pkt) = tso_packet(false, ACK, &payload(3000, 0), 1000);
    assert_eq!(
        Splitter::new(&hdr, &pkt[..30]).unwrap_err(),
        OffloadError::Truncated
    );
    assert_eq!(
        Splitter::new(&hdr, &[0x55; 60]).unwrap_err(),
        OffloadError::Malformed
    );
    let zero = VnetHdr { gso_size: 0, ..hdr };
    assert!(matches!(
        Splitter::new(&zero, &pkt),
        Err(OffloadError::Unsupported(_))
    ));
    let ufo = VnetHdr { gso_type: 3, ..hdr };
    assert_eq!(
        Splitter::new(&ufo, &pkt).unwrap_err(),
        OffloadError::Unsupported(3)
    );
    let v6_on_v4 = VnetHdr {
        gso_type: VnetHdr::GSO_TCPV6,
        ..hdr
    };
    assert_eq!(
        Splitter::new(&v6_on_v4, &pkt).unwrap_err(),
        OffloadError::Malformed
    );
    let bad_start = VnetHdr {
        csum_start: 10,
        ..hdr
    };
    assert_eq!(
        Splitter::new(&bad_start, &pkt).unwrap_err(),
        OffloadError::Malformed
    );
    let csum_past_end = VnetHdr {
        gso_type: 0,
        csum_start: 20,
        csum_offset: 60_000,
        ..hdr
    };
    assert_eq!(
        Splitter::new(&csum_past_end, &pkt).unwrap_err(),
        OffloadError::Malformed
    );
    let mut s = Splitter::new(&hdr, &pkt).unwrap();
    assert_eq!(s.remaining(), 3);
    assert_eq!(
        s.next_into(&mut [0u8; 100]),
        Some(Err(OffloadError::NoRoom))
    );
    assert_eq!(s.next_into(&mut [0u8; 2000]), None, "stops after an error");
    // Every prefix of a valid packet is refused or split without panicking.
    for cut in 0..pkt.len().min(200) {
        if let Ok(mut s) = Splitter::new(&hdr, &pkt[..cut]) {
            let mut buf = [0u8; 2000];
            while let Some(r) = s.next_into(&mut buf) {
                if r.is_err() {
                    break;
                }
            }
        }
    }
}

fn run(v6: bool, count: usize, seg: usize) -> Vec<Vec<u8>> {
    let mut seq = 1_000_000u32;
    (0..count)
        .map(|i| {
            let data = payload(if i + 1 == count { seg / 2 } else { seg }, i as u8);
            let p = Tcp {
                v6,
                id: 100 + i as u16,
                seq,
                flags: if i + 1 == count { ACK | PSH } else { ACK },
                payload: &data,
                ..Tcp::default()
            }
            .build();
            seq += data.len() as u32;
            p
        })
        .collect()
}

fn check_round_trip(v6: bool) {
    let pkts = run(v6, 6, 1200);
    let mut c = Coalescer::new();
    for p in &pkts {
        assert!(c.push(p), "segment taken");
    }
    assert_eq!(c.count(), 6);
    let out = c.finish().expect("a run").to_vec();
    assert!(!c.is_open());
    let hdr = VnetHdr::decode(&out).unwrap();
    let sup = &out[VNET_HDR_LEN..];
    let l4 = l4_off(sup);
    assert_eq!(
        hdr,
        VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            gso_type: if v6 {
                VnetHdr::GSO_TCPV6
            } else {
                VnetHdr::GSO_TCPV4
            },
            hdr_len: (l4 + 32) as u16,
            gso_size: 1200,
            csum_start: l4 as u16,
            csum_offset: 16,
        }
    );
    assert_eq!(sup.len(), l4 + 32 + 5 * 1200 + 600);
    if !v6 {
        assert_eq!(naive_csum(&[&sup[..20]]), 0, "IPv4 header checksum");
    }
    // The checksum field holds the folded pseudo-header sum over the whole TCP length.
    let ph = pseudo(sup, PROTO_TCP, sup.len() - l4);
    let field = u16::from_be_bytes([sup[l4 + 16], sup[l4 + 17]]);
    assert_eq!(field, !naive_csum(&[&ph]));
    assert_eq!(sup[l4 + 13], ACK | PSH, "PSH of the last segment kept");
    // What the kernel would do with it gives back exactly the packets that went in.
    assert_eq!(split_all(&hdr, sup), pkts);
}

#[test]
fn tcp_v4_segments_coalesce_and_split_back_identically() {
    check_round_trip(false);
}

#[test]
fn tcp_v6_segments_coalesce_and_split_back_identically() {
    check_round_trip(true);
}

#[test]
fn a_single_segment_comes_back_unchanged_without_gso() {
    let pkts = run(false, 2, 1000);
    let mut c = Coalescer::new();
    assert!(c.push(&pkts[0]));
    let out = c.finish().unwrap();
    assert_eq!(VnetHdr::decode(out).unwrap(), VnetHdr::default());
    assert_eq!(&out[VNET_HDR_LEN..], &pkts[0][..]);
    assert!(c.finish().is_none());
}

/// The segment after `Tcp::default()` with 1000 bytes, changed by `f`.
fn next_seg(seg: &[u8], f: &dyn Fn(&mut Tcp<'_>)) -> Vec<u8> {
    let mut t = Tcp {
        payload: seg,
        id: 101,
        seq: 1_001_000,
        ..Tcp::default()
    };
    f(&mut t);
    t.build()
}

/// Starts a run with `pkts[0]` and returns whether `other` was appended.
fn joins(first: &[u8], other: &[u8]) -> bool {
    let mut c = Coalescer::new();
    assert!(c.push(first));
    c.push(other)
}

#[test]
fn coalescing_refuses_other_flows_gaps_and_different_headers() {
    static TS: [u8; 12] = [1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 2];
    static BIG: [u8; 1001] = [0; 1001];
    let seg = payload(1000, 0);
    let base = Tcp {
        payload: &seg,
        ..Tcp::default()
    };
    let first = base.build();
    let next = |f: &dyn Fn(&mut Tcp<'_>)| next_seg(&seg, f);
    assert!(
        joins(&first, &next(&|_| {})),
        "the plain next segment joins"
    );
    assert!(
        joins(&first, &next(&|t| t.window = 9)),
        "a window update does not stop coalescing"
    );
    assert!(!joins(&first, &next(&|t| t.sport = 1)), "other flow");
    assert!(!joins(&first, &next(&|t| t.seq += 1)), "gap");
    assert!(!joins(&first, &next(&|t| t.seq -= 1000)), "retransmission");
    assert!(!joins(&first, &next(&|t| t.ack += 1)), "other ACK number");
    assert!(!joins(&first, &next(&|t| t.opts = &TS)), "other options");
    assert!(
        !joins(&first, &next(&|t| t.opts = &[])),
        "other header length"
    );
    assert!(!joins(&first, &next(&|t| t.flags = ACK | SYN)), "SYN");
    assert!(
        !joins(&first, &next(&|t| t.flags = ACK | CWR)),
        "CWR after the first"
    );
    assert!(!joins(&first, &next(&|t| t.flags = ACK | ECE)), "ECE");
    assert!(!joins(&first, &next(&|t| t.v6 = true)), "other IP version");
    assert!(
        !joins(&first, &next(&|t| t.payload = &BIG)),
        "larger segment"
    );
    assert!(!joins(&first, &next(&|t| t.payload = &[])), "pure ACK");
    // Different IPv4 header fields.
    for (at, what) in [(1, "TOS"), (8, "TTL"), (15, "source")] {
        let mut p = next(&|_| {});
        p[at] ^= 1;
        p[10..12].fill(0);
        let c = naive_csum(&[&p[..20]]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        set_l4_csum_naive(&mut p, PROTO_TCP);
        assert!(!joins(&first, &p), "{what}");
    }
    // A corrupted segment (checksum no longer verifies) neither joins nor starts a run.
    let mut bad = next(&|_| {});
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert!(!joins(&first, &bad), "bad checksum");
    assert!(!Coalescer::new().push(&bad));
    // What never starts a run.
    for flags in [ACK | PSH, ACK | FIN, ACK | CWR, SYN, ACK | SYN] {
        let p = Tcp {
            flags,
            payload: &seg,
            ..Tcp::default()
        }
        .build();
        assert!(!Coalescer::new().push(&p), "flags {flags:#x}");
    }
    // IPv4 options and fragments are passed through.
    let mut frag = first.clone();
    frag[6] = 0x20;
    frag[10..12].fill(0);
    let c = naive_csum(&[&frag[..20]]);
    frag[10..12].copy_from_slice(&c.to_be_bytes());
    assert!(!Coalescer::new().push(&frag), "fragment");
    assert!(
        !Coalescer::new().push(&first[..first.len() - 1]),
        "length mismatch"
    );
    assert!(!Coalescer::new().push(&[0x45; 10]), "garbage");
}

#[test]
fn a_short_or_push_segment_ends_the_run() {
    let pkts = run(false, 3, 1000);
    // pkts[2] is short and carries PSH: it closes the run.
    let mut c = Coalescer::new();
    assert!(c.push(&pkts[0]) && c.push(&pkts[1]) && c.push(&pkts[2]));
    let seq = 1_000_000 + 2000 + 500;
    let after = Tcp {
        id: 103,
        seq,
        payload: &payload(1000, 9),
        ..Tcp::default()
    }
    .build();
    assert!(!c.push(&after), "nothing joins after the closing segment");
    let out = c.finish().unwrap().to_vec();
    assert_eq!(out.len(), VNET_HDR_LEN + 20 + 32 + 2500);
    assert!(c.push(&after), "a new run starts after finish");
}

#[test]
fn runs_stop_at_64_segments_and_64_kib() {
    let mut c = Coalescer::new();
    let data = payload(100, 0);
    let mut seq = 5u32;
    let mut taken = 0;
    for i in 0..70 {
        let p = Tcp {
            id: i,
            seq,
            payload: &data,
            ..Tcp::default()
        }
        .build();
        if !c.push(&p) {
            break;
        }
        taken += 1;
        seq += 100;
    }
    assert_eq!(taken, MAX_COALESCE);
    let mut c = Coalescer::new();
    let data = payload(1400, 0);
    let mut seq = 5u32;
    let mut bytes = 52;
    for i in 0..60 {
        let p = Tcp {
            id: i,
            seq,
            payload: &data,
            ..Tcp::default()
        }
        .build();
        if !c.push(&p) {
            break;
        }
        bytes += 1400;
        seq += 1400;
    }
    assert!(bytes <= MAX_SUPER && bytes + 1400 > MAX_SUPER, "{bytes}");
    let out = c.finish().unwrap();
    assert_valid_super_len(out, bytes);
}

fn assert_valid_super_len(out: &[u8], bytes: usize) {
    assert_eq!(out.len(), VNET_HDR_LEN + bytes);
    assert_eq!(
        usize::from(u16::from_be_bytes([
            out[VNET_HDR_LEN + 2],
            out[VNET_HDR_LEN + 3]
        ])),
        bytes
    );
}

#[test]
fn ones_sum_matches_the_naive_sum_at_every_length_and_alignment() {
    let data: Vec<u8> = (0..600u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for start in 0..9 {
        for len in 0..data.len() - start {
            let d = &data[start..start + len];
            assert_eq!(!ones_sum(d), naive_csum(&[d]), "start {start} len {len}");
            // The path a CPU without AVX2 takes gives the same sum.
            assert_eq!(
                !sum::ones_sum_portable(d),
                naive_csum(&[d]),
                "portable, start {start} len {len}"
            );
        }
    }
    // Carries out of every word: all ones stays all ones (never folds to zero).
    assert_eq!(ones_sum(&[0xff; 64]), 0xffff);
    assert_eq!(sum::ones_sum_portable(&[0xff; 64]), 0xffff);
    assert_eq!(ones_sum(&[0xff; 65_534]), 0xffff);
    assert_eq!(ones_sum(&[]), 0);
}

// ---- UDP coalescing (GSO_UDP_L4) and lanes of interleaved flows ----

struct Udp<'a> {
    v6: bool,
    id: u16,
    sport: u16,
    dport: u16,
    payload: &'a [u8],
}

impl Default for Udp<'_> {
    fn default() -> Self {
        Self {
            v6: false,
            id: 7,
            sport: 6000,
            dport: 5201,
            payload: &[],
        }
    }
}

impl Udp<'_> {
    fn build(&self) -> Vec<u8> {
        let mut u = vec![0u8; 8];
        u[0..2].copy_from_slice(&self.sport.to_be_bytes());
        u[2..4].copy_from_slice(&self.dport.to_be_bytes());
        u[4..6].copy_from_slice(&((8 + self.payload.len()) as u16).to_be_bytes());
        u.extend_from_slice(self.payload);
        let mut p = ip_header(self.v6, PROTO_UDP, self.id, u.len());
        p.extend_from_slice(&u);
        set_l4_csum_naive(&mut p, PROTO_UDP);
        p
    }
}

/// `count` datagrams of flow `sport`, each `size` bytes of payload but the last `last`.
fn udp_flow(v6: bool, sport: u16, count: usize, size: usize, last: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let data = payload(
                if i + 1 == count { last } else { size },
                i as u8 ^ sport as u8,
            );
            Udp {
                v6,
                id: i as u16,
                sport,
                payload: &data,
                ..Udp::default()
            }
            .build()
        })
        .collect()
}

/// Cuts what a lane or coalescer wrote back into packets, as the kernel would.
fn unwrap_run(out: &[u8]) -> Vec<Vec<u8>> {
    let hdr = VnetHdr::decode(out).expect("virtio header");
    let pkt = &out[VNET_HDR_LEN..];
    if hdr.gso_type == VnetHdr::GSO_NONE {
        assert_eq!(hdr, VnetHdr::default(), "a lone packet has a zero header");
        return vec![pkt.to_vec()];
    }
    split_all(&hdr, pkt)
}

fn check_udp_round_trip(v6: bool) {
    let pkts = udp_flow(v6, 6000, 5, 1372, 700);
    let mut c = Coalescer::with_udp(true);
    for p in &pkts {
        assert!(c.push(p), "datagram taken");
    }
    assert_eq!(c.count(), 5);
    let out = c.finish().expect("a run").to_vec();
    let hdr = VnetHdr::decode(&out).unwrap();
    let sup = &out[VNET_HDR_LEN..];
    let l4 = l4_off(sup);
    assert_eq!(
        hdr,
        VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            gso_type: VnetHdr::GSO_UDP_L4,
            hdr_len: (l4 + 8) as u16,
            gso_size: 1372,
            csum_start: l4 as u16,
            csum_offset: 6,
        }
    );
    assert_eq!(sup.len(), l4 + 8 + 4 * 1372 + 700);
    if !v6 {
        assert_eq!(naive_csum(&[&sup[..20]]), 0, "IPv4 header checksum");
    }
    // UDP length covers the whole run; the checksum field holds the pseudo-header sum.
    assert_eq!(
        usize::from(u16::from_be_bytes([sup[l4 + 4], sup[l4 + 5]])),
        sup.len() - l4
    );
    let ph = pseudo(sup, PROTO_UDP, sup.len() - l4);
    assert_eq!(
        u16::from_be_bytes([sup[l4 + 6], sup[l4 + 7]]),
        !naive_csum(&[&ph])
    );
    let back = split_all(&hdr, sup);
    for p in &back {
        assert_valid(p, PROTO_UDP);
    }
    // The IPv4 identification of a segment is the head's plus its index, as the kernel's
    // segmentation does; everything else comes back byte for byte.
    assert_eq!(back, pkts);
}

#[test]
fn udp_v4_datagrams_coalesce_and_split_back_identically() {
    check_udp_round_trip(false);
}

#[test]
fn udp_v6_datagrams_coalesce_and_split_back_identically() {
    check_udp_round_trip(true);
}

#[test]
fn udp_is_only_coalesced_when_enabled() {
    let pkts = udp_flow(false, 6000, 2, 1000, 1000);
    assert!(!Coalescer::new().push(&pkts[0]), "TCP-only coalescer");
    let mut c = Coalescer::with_udp(true);
    assert!(c.push(&pkts[0]));
    c.set_udp(false);
    assert!(!c.push(&pkts[1]), "no UDP joins once disabled");
    assert_eq!(unwrap_run(c.finish().unwrap()), vec![pkts[0].clone()]);
    assert!(!c.push(&pkts[0]), "no new UDP run once disabled");
}

fn with_ipv4_header_change(p: &[u8], f: &dyn Fn(&mut [u8])) -> Vec<u8> {
    let mut p = p.to_vec();
    f(&mut p);
    p[10..12].fill(0);
    let c = naive_csum(&[&p[..20]]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    set_l4_csum_naive(&mut p, PROTO_UDP);
    p
}

fn joins_udp(first: &[u8], other: &[u8]) -> bool {
    let mut c = Coalescer::with_udp(true);
    assert!(c.push(first));
    c.push(other)
}

#[test]
fn udp_coalescing_refuses_hostile_and_foreign_datagrams() {
    let pkts = udp_flow(false, 6000, 3, 1000, 1000);
    let (first, next) = (&pkts[0], &pkts[1]);
    assert!(joins_udp(first, next), "the plain next datagram joins");
    let other_port = Udp {
        sport: 6001,
        payload: &payload(1000, 1),
        ..Udp::default()
    }
    .build();
    assert!(!joins_udp(first, &other_port), "other flow");
    let other_dport = Udp {
        dport: 1,
        payload: &payload(1000, 1),
        ..Udp::default()
    }
    .build();
    assert!(!joins_udp(first, &other_dport), "other destination port");
    let bigger = Udp {
        payload: &payload(1001, 1),
        ..Udp::default()
    }
    .build();
    assert!(!joins_udp(first, &bigger), "larger datagram");
    let v6 = udp_flow(true, 6000, 1, 1000, 1000);
    assert!(!joins_udp(first, &v6[0]), "other IP version");
    for (at, what) in [(1, "TOS"), (8, "TTL"), (19, "destination")] {
        let p = with_ipv4_header_change(next, &|p| p[at] ^= 1);
        assert!(!joins_udp(first, &p), "{what}");
    }
    // Corrupted payload: the checksum no longer verifies.
    let mut bad = next.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x5a;
    assert!(!joins_udp(first, &bad), "bad checksum joins");
    assert!(!Coalescer::with_udp(true).push(&bad), "bad checksum starts");
    // A zero checksum (none, over IPv4) cannot be verified.
    let mut none = next.clone();
    none[26..28].fill(0);
    assert!(!Coalescer::with_udp(true).push(&none), "no checksum");
    assert!(!joins_udp(first, &none), "no checksum joins");
    // Lengths that disagree: UDP length, IP length, buffer.
    let mut ulen = next.clone();
    ulen[24..26].copy_from_slice(&900u16.to_be_bytes());
    assert!(!Coalescer::with_udp(true).push(&ulen), "UDP length");
    assert!(
        !Coalescer::with_udp(true).push(&next[..next.len() - 1]),
        "cut"
    );
    let mut longer = next.clone();
    longer.push(0);
    assert!(!Coalescer::with_udp(true).push(&longer), "trailing octet");
    assert!(
        !Coalescer::with_udp(true).push(&next[..27]),
        "truncated header"
    );
    // Fragments: first (MF), later (offset), and options.
    for (what, f) in [
        ("MF", &(|p: &mut [u8]| p[6] |= 0x20) as &dyn Fn(&mut [u8])),
        ("offset", &|p: &mut [u8]| p[7] = 1),
    ] {
        let p = with_ipv4_header_change(first, f);
        assert!(!Coalescer::with_udp(true).push(&p), "fragment {what}");
        assert!(
            !joins_udp(first, &with_ipv4_header_change(next, f)),
            "{what}"
        );
    }
    let mut opts = first[..20].to_vec();
    opts[0] = 0x46;
    opts.extend_from_slice(&[1, 1, 1, 0]);
    opts.extend_from_slice(&first[20..]);
    let opts = with_ipv4_header_change(&opts, &|p| {
        let len = p.len() as u16;
        p[2..4].copy_from_slice(&len.to_be_bytes());
    });
    assert!(!Coalescer::with_udp(true).push(&opts), "IPv4 options");
    // IPv6 with an extension header (fragment header) in front of UDP.
    let mut v6frag = v6[0].clone();
    v6frag[6] = 44;
    assert!(!Coalescer::with_udp(true).push(&v6frag), "IPv6 fragment");
    assert!(!Coalescer::with_udp(true).push(&[0x45; 30]), "garbage");
    assert!(!Coalescer::with_udp(true).push(&[]), "empty");
    // An empty datagram neither starts nor joins.
    let empty = Udp::default().build();
    assert!(!Coalescer::with_udp(true).push(&empty), "empty payload");
    assert!(!joins_udp(first, &empty), "empty payload joins");
}

#[test]
fn a_short_udp_datagram_ends_the_run_and_runs_stop_at_64() {
    let pkts = udp_flow(false, 6000, 3, 1000, 400);
    let mut c = Coalescer::with_udp(true);
    assert!(c.push(&pkts[0]) && c.push(&pkts[1]) && c.push(&pkts[2]));
    assert!(!c.push(&pkts[0]), "nothing joins after the short one");
    let mut c = Coalescer::with_udp(true);
    let many = udp_flow(false, 6000, 70, 100, 100);
    let taken = many.iter().take_while(|p| c.push(p)).count();
    assert_eq!(taken, MAX_COALESCE);
    let out = c.finish().unwrap().to_vec();
    assert_eq!(unwrap_run(&out), many[..MAX_COALESCE].to_vec());
    let mut c = Coalescer::with_udp(true);
    let big = udp_flow(false, 6000, 60, 1400, 1400);
    let taken = big.iter().take_while(|p| c.push(p)).count();
    assert!(28 + taken * 1400 <= MAX_SUPER);
    assert!(28 + (taken + 1) * 1400 > MAX_SUPER, "{taken}");
}

/// Pushes `input` through `lanes` and returns what reached the TUN, in order: every packet
/// of every run (cut back) and every packet written alone.
fn through_lanes(lanes: &mut Lanes, input: &[Vec<u8>]) -> (Vec<Vec<u8>>, usize) {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut writes = 0;
    for p in input {
        let mut emitted = Vec::new();
        let taken = lanes.push(p, &mut |run, count| {
            let pkts = unwrap_run(run);
            assert_eq!(pkts.len(), count, "count matches the run");
            emitted.extend(pkts);
        });
        writes += usize::from(!emitted.is_empty());
        out.extend(emitted);
        if !taken {
            out.push(p.clone());
            writes += 1;
        }
    }
    lanes.flush(&mut |run, count| {
        let pkts = unwrap_run(run);
        assert_eq!(pkts.len(), count);
        out.extend(pkts);
        writes += 1;
    });
    (out, writes)
}

/// The packets of `all` whose flow (ports, or for fragments the addresses) is `sport`'s.
fn of_flow(all: &[Vec<u8>], sport: u16) -> Vec<Vec<u8>> {
    all.iter()
        .filter(|p| {
            let l4 = l4_off(p);
            p.len() >= l4 + 2 && u16::from_be_bytes([p[l4], p[l4 + 1]]) == sport
        })
        .cloned()
        .collect()
}

#[test]
fn lanes_coalesce_interleaved_udp_flows_each_in_order() {
    let flows: Vec<Vec<Vec<u8>>> = (0..6)
        .map(|f| udp_flow(f % 2 == 1, 7000 + f as u16, 10, 1372, 1372))
        .collect();
    // Round-robin, as many iperf3 streams arrive.
    let mut input = Vec::new();
    for i in 0..10 {
        for f in &flows {
            input.push(f[i].clone());
        }
    }
    let mut lanes = Lanes::new(8, true);
    let (out, writes) = through_lanes(&mut lanes, &input);
    assert_eq!(out.len(), input.len(), "every datagram once");
    assert_eq!(writes, 6, "one write per flow");
    for (f, flow) in flows.iter().enumerate() {
        assert_eq!(&of_flow(&out, 7000 + f as u16), flow, "flow {f} in order");
    }
}

#[test]
fn lanes_keep_tcp_data_runs_open_across_other_flows_acks() {
    let data = run(false, 8, 1200);
    let mut input = Vec::new();
    for (i, d) in data.iter().enumerate() {
        input.push(d.clone());
        // The ACK of the reverse-direction flow of another connection.
        input.push(
            Tcp {
                sport: 41000,
                seq: 9,
                ack: 1000 + i as u32,
                ..Tcp::default()
            }
            .build(),
        );
    }
    let mut lanes = Lanes::new(4, false);
    let (out, writes) = through_lanes(&mut lanes, &input);
    assert_eq!(out.len(), input.len());
    assert_eq!(writes, 8 + 1, "8 lone ACKs and one run of data");
    assert_eq!(of_flow(&out, 40000), data, "data in order");
}

#[test]
fn lanes_write_a_flows_run_before_a_packet_of_it_that_cannot_join() {
    let a = udp_flow(false, 7000, 4, 1000, 1000);
    let b = udp_flow(false, 7001, 4, 1000, 1000);
    let mut lanes = Lanes::new(4, true);
    let log: std::cell::RefCell<Vec<(u16, usize)>> = std::cell::RefCell::default();
    let mut note = |run: &[u8], count: usize| {
        let p = &run[VNET_HDR_LEN..];
        log.borrow_mut()
            .push((u16::from_be_bytes([p[20], p[21]]), count));
    };
    for p in [&a[0], &b[0], &a[1], &b[1]] {
        assert!(lanes.push(p, &mut note));
    }
    // A corrupted datagram of flow a: a's run goes first, b's stays open.
    let mut bad = a[2].clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(!lanes.push(&bad, &mut note));
    assert_eq!(*log.borrow(), vec![(7000, 2)]);
    // A fragment between the same addresses shows no ports: every run of them goes.
    let frag = with_ipv4_header_change(&a[3], &|p| p[6] |= 0x20);
    assert!(!lanes.push(&frag, &mut note));
    assert_eq!(*log.borrow(), vec![(7000, 2), (7001, 2)]);
    // ICMP between other addresses, and non-IP, leave runs alone.
    assert!(lanes.push(&b[2], &mut note));
    let mut icmp = ip_header(false, 1, 1, 8);
    icmp[12] = 192;
    icmp.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, 0]);
    assert!(!lanes.push(&icmp, &mut note));
    assert!(!lanes.push(&[0x00; 40], &mut note));
    assert_eq!(log.borrow().len(), 2);
    lanes.flush(&mut note);
    assert_eq!(*log.borrow(), vec![(7000, 2), (7001, 2), (7001, 1)]);
}

#[test]
fn lanes_with_more_flows_than_lanes_and_hostile_packets_lose_and_reorder_nothing() {
    // A fixed pseudo-random interleaving of 12 flows (TCP and UDP, v4 and v6) over 3 lanes,
    // with corrupted, cut and fragmented packets mixed in.
    let mut flows: Vec<Vec<Vec<u8>>> = Vec::new();
    for f in 0..12u16 {
        let v6 = f % 3 == 0;
        if f % 2 == 0 {
            flows.push(udp_flow(v6, 8000 + f, 12, 900, 300));
        } else {
            let mut seq = 1u32;
            flows.push(
                (0..12)
                    .map(|i| {
                        let data = payload(900, i as u8);
                        let p = Tcp {
                            v6,
                            id: i,
                            sport: 8000 + f,
                            seq,
                            ..Tcp::default()
                        };
                        seq += 900;
                        Tcp {
                            payload: &data,
                            ..p
                        }
                        .build()
                    })
                    .collect(),
            );
        }
    }
    let mut next = vec![0usize; flows.len()];
    let mut x = 0x2545_f491u32;
    let mut input = Vec::new();
    while next.iter().zip(&flows).any(|(n, f)| *n < f.len()) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let f = (x as usize) % flows.len();
        let Some(p) = flows[f].get(next[f]) else {
            continue;
        };
        let mut p = p.clone();
        match x % 11 {
            0 => {
                let last = p.len() - 1;
                p[last] ^= 0x80;
            }
            1 => {
                p.pop();
            }
            _ => {}
        }
        input.push(p);
        next[f] += 1;
    }
    let mut lanes = Lanes::new(3, true);
    let (out, _) = through_lanes(&mut lanes, &input);
    assert_eq!(out.len(), input.len(), "nothing lost or doubled");
    for f in 0..12u16 {
        assert_eq!(
            of_flow(&out, 8000 + f),
            of_flow(&input, 8000 + f),
            "flow {f} in order"
        );
    }
}
