//! IPv4 fragmentation (RFC 791 §2.3 "Fragmentation", §3.2 "An Example Fragmentation Procedure").
//!
//! [`Fragmenter`] cuts an IPv4 packet whose Don't Fragment flag is clear into fragments of at
//! most `mtu` octets, writing each into a caller buffer; [`fragment_ipv4`] does the whole job
//! into a slice of buffers. Each fragment:
//! - carries a multiple of 8 data octets, except the last;
//! - has its Fragment Offset in 8-octet units, counted from the start of the original datagram
//!   (so a fragment of a fragment keeps its place);
//! - has More Fragments set, except the last, which keeps the MF flag of the packet being cut
//!   (so cutting a middle fragment leaves MF set on all its pieces);
//! - repeats the options only if their copy flag is set (RFC 791 §3.1), except the first
//!   fragment, which keeps them all; the header is padded with End of Option List to 4 octets;
//! - has its own Total Length and Header Checksum.
//!
//! What it does NOT do: reassembly, IPv6 fragmentation (RFC 8200 §4.5 leaves that to the
//! source host), choosing Identification values (the original one is kept, as RFC 791 asks),
//! or overlapping/tiny-fragment policy for received packets.

use crate::ip::{IPV4_MIN_HEADER_LEN, Ipv4Header, checksum};

/// The most option octets an IPv4 header can hold.
const MAX_OPTIONS: usize = 40;
/// More Fragments bit in octet 6.
const FLAG_MF: u8 = 0x20;

/// Why a packet could not be fragmented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FragError {
    /// Not a well-formed IPv4 packet: short header, Total Length past the buffer, malformed
    /// options, or a fragment whose data would end past octet 65535 of its datagram.
    #[error("not a well-formed IPv4 packet")]
    Malformed,
    /// The packet is larger than the MTU and has Don't Fragment set; the caller should answer
    /// with ICMP "fragmentation needed" instead (see [`crate::icmp::too_big`]).
    #[error("packet exceeds the MTU and has Don't Fragment set")]
    DontFragment,
    /// The MTU cannot hold a fragment header plus 8 octets of data.
    #[error("MTU {mtu} cannot hold a {header_len}-octet header and 8 octets of data")]
    MtuTooSmall {
        /// The MTU asked for.
        mtu: u16,
        /// The header length of the fragment that did not fit.
        header_len: usize,
    },
    /// An output buffer is shorter than the fragment to be written into it.
    #[error("output buffer holds {got} octets, the fragment needs {need}")]
    BufferTooSmall {
        /// Octets available.
        got: usize,
        /// Octets needed.
        need: usize,
    },
    /// Fewer output buffers than fragments.
    #[error("{need} fragments needed, {got} buffers given")]
    TooManyFragments {
        /// Buffers given.
        got: usize,
        /// Fragments needed.
        need: usize,
    },
}

/// Cuts one IPv4 packet into fragments, one at a time, into caller buffers.
///
/// ```
/// # use bh_packet::frag::Fragmenter;
/// # fn send(_: &[u8]) {}
/// # fn demo(pkt: &[u8]) -> Result<(), bh_packet::FragError> {
/// let mut frags = Fragmenter::new(pkt, 1400)?;
/// let mut buf = [0u8; 1400];
/// while let Some(n) = frags.write_next(&mut buf)? {
///     send(&buf[..n]);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Fragmenter<'a> {
    /// The original header, options included.
    header: &'a [u8],
    /// The original data (up to Total Length).
    data: &'a [u8],
    /// Options to repeat in every fragment after the first, padded to 4 octets.
    copied: [u8; MAX_OPTIONS],
    copied_len: usize,
    /// Data octets in the first and in later fragments (multiples of 8).
    first_data: usize,
    rest_data: usize,
    /// Fragment Offset of the packet being cut, in 8-octet units.
    base_offset: usize,
    /// MF flag of the packet being cut.
    orig_mf: bool,
    /// Whether the packet fits and is passed through whole.
    whole: bool,
    count: usize,
    next: usize,
}

impl<'a> Fragmenter<'a> {
    /// Prepares to fragment `pkt` (an IPv4 packet; octets past Total Length are ignored) for
    /// `mtu`. A packet that already fits yields one "fragment": itself, unchanged, even with
    /// DF set.
    pub fn new(pkt: &'a [u8], mtu: u16) -> Result<Self, FragError> {
        let h = Ipv4Header::parse(pkt).ok_or(FragError::Malformed)?;
        let pkt = h.packet().ok_or(FragError::Malformed)?;
        let header = h.header();
        let data = h.payload().ok_or(FragError::Malformed)?;
        let mut this = Self {
            header,
            data,
            copied: [0; MAX_OPTIONS],
            copied_len: 0,
            first_data: data.len(),
            rest_data: data.len(),
            base_offset: usize::from(h.frag_offset()),
            orig_mf: h.more_fragments(),
            whole: true,
            count: 1,
            next: 0,
        };
        if pkt.len() <= usize::from(mtu) {
            return Ok(this);
        }
        if h.dont_fragment() {
            return Err(FragError::DontFragment);
        }
        // RFC 791: a datagram is at most 65535 octets, so no fragment may end past that.
        if this.base_offset * 8 + data.len() > usize::from(u16::MAX) {
            return Err(FragError::Malformed);
        }
        this.copied_len = copied_options(h.options(), &mut this.copied)?;
        let room = |hlen: usize| {
            let n = usize::from(mtu).saturating_sub(hlen) / 8 * 8;
            if n == 0 {
                Err(FragError::MtuTooSmall {
                    mtu,
                    header_len: hlen,
                })
            } else {
                Ok(n)
            }
        };
        this.first_data = room(header.len())?;
        this.rest_data = room(IPV4_MIN_HEADER_LEN + this.copied_len)?;
        // `data` is longer than `first_data`, since the packet does not fit.
        let after_first = data.len().saturating_sub(this.first_data);
        this.count = 1 + after_first.div_ceil(this.rest_data);
        this.whole = false;
        Ok(this)
    }

    /// How many fragments the packet is cut into (1 if it fits as it is).
    pub fn count(&self) -> usize {
        self.count
    }

    /// How many fragments are still to be written.
    pub fn remaining(&self) -> usize {
        self.count - self.next
    }

    /// Data range and header length of fragment `i`.
    fn layout(&self, i: usize) -> Option<(usize, usize, usize)> {
        if i >= self.count {
            return None;
        }
        if i == 0 {
            let end = self.first_data.min(self.data.len());
            return Some((0, end, self.header.len()));
        }
        let start = self.first_data + (i - 1) * self.rest_data;
        let end = (start + self.rest_data).min(self.data.len());
        Some((start, end, IPV4_MIN_HEADER_LEN + self.copied_len))
    }

    /// The length in octets of fragment `i` (0-based), or `None` past the last.
    pub fn fragment_len(&self, i: usize) -> Option<usize> {
        self.layout(i).map(|(s, e, h)| h + e - s)
    }

    /// Writes the next fragment to the start of `out` and returns its length, or `Ok(None)`
    /// when all fragments have been written. On [`FragError::BufferTooSmall`] nothing is
    /// consumed: the same fragment can be written into a bigger buffer.
    pub fn write_next(&mut self, out: &mut [u8]) -> Result<Option<usize>, FragError> {
        let Some((start, end, hlen)) = self.layout(self.next) else {
            return Ok(None);
        };
        let len = hlen + end - start;
        let got = out.len();
        let buf = out
            .get_mut(..len)
            .ok_or(FragError::BufferTooSmall { got, need: len })?;
        let (hdr, body) = buf.split_at_mut(hlen);
        body.copy_from_slice(self.data.get(start..end).ok_or(FragError::Malformed)?);
        if self.whole {
            hdr.copy_from_slice(self.header);
        } else {
            self.write_header(hdr, start, end)?;
        }
        self.next += 1;
        Ok(Some(len))
    }

    /// Fills in the header of the fragment carrying data `start..end`.
    fn write_header(&self, hdr: &mut [u8], start: usize, end: usize) -> Result<(), FragError> {
        let fixed = self
            .header
            .get(..IPV4_MIN_HEADER_LEN)
            .ok_or(FragError::Malformed)?;
        let (base, opts) = hdr
            .split_first_chunk_mut::<IPV4_MIN_HEADER_LEN>()
            .ok_or(FragError::Malformed)?;
        base.copy_from_slice(fixed);
        if start == 0 {
            opts.copy_from_slice(self.header.get(IPV4_MIN_HEADER_LEN..).unwrap_or_default());
        } else {
            opts.copy_from_slice(self.copied.get(..self.copied_len).unwrap_or_default());
        }
        let hlen = IPV4_MIN_HEADER_LEN + opts.len();
        let ihl = u8::try_from(hlen / 4).map_err(|_| FragError::Malformed)?;
        let total = u16::try_from(hlen + end - start).map_err(|_| FragError::Malformed)?;
        let offset = u16::try_from(self.base_offset + start / 8)
            .ok()
            .filter(|&o| o <= 0x1fff)
            .ok_or(FragError::Malformed)?;
        let last = end >= self.data.len();
        let mf = if last { self.orig_mf } else { true };
        base[0] = 0x40 | ihl;
        base[2..4].copy_from_slice(&total.to_be_bytes());
        let [off_hi, off_lo] = offset.to_be_bytes();
        // Keep the reserved bit and DF (clear here) as they were; set MF and the offset.
        base[6] = (base[6] & !(FLAG_MF | 0x1f)) | if mf { FLAG_MF } else { 0 } | off_hi;
        base[7] = off_lo;
        base[10] = 0;
        base[11] = 0;
        let c = checksum(hdr);
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        Ok(())
    }
}

/// Collects the options whose copy flag is set (RFC 791 §3.1: the high bit of the type octet)
/// into `out`, padded with End of Option List to a multiple of 4, and returns their length.
fn copied_options(opts: &[u8], out: &mut [u8; MAX_OPTIONS]) -> Result<usize, FragError> {
    let mut i = 0;
    let mut n = 0;
    while let Some(&kind) = opts.get(i) {
        match kind {
            0 => break,
            1 => i += 1,
            _ => {
                let len = usize::from(*opts.get(i + 1).ok_or(FragError::Malformed)?);
                let opt = opts
                    .get(i..i + len)
                    .filter(|_| len >= 2)
                    .ok_or(FragError::Malformed)?;
                if kind & 0x80 != 0 {
                    out.get_mut(n..n + len)
                        .ok_or(FragError::Malformed)?
                        .copy_from_slice(opt);
                    n += len;
                }
                i += len;
            }
        }
    }
    let padded = n.div_ceil(4) * 4;
    out.get_mut(n..padded).ok_or(FragError::Malformed)?.fill(0);
    Ok(padded)
}

/// Fragments `pkt` for `mtu` (see [`Fragmenter`]) into `out[0]`, `out[1]`, … and returns how
/// many fragments were written. Each fragment starts at the beginning of its buffer; its length
/// is its IPv4 Total Length (or [`Fragmenter::fragment_len`]).
///
/// Every buffer is checked before anything is written, so on error `out` is untouched.
pub fn fragment_ipv4(pkt: &[u8], mtu: u16, out: &mut [&mut [u8]]) -> Result<usize, FragError> {
    let mut f = Fragmenter::new(pkt, mtu)?;
    if f.count() > out.len() {
        return Err(FragError::TooManyFragments {
            got: out.len(),
            need: f.count(),
        });
    }
    for (i, buf) in out.iter().enumerate().take(f.count()) {
        let need = f.fragment_len(i).unwrap_or(0);
        if buf.len() < need {
            return Err(FragError::BufferTooSmall {
                got: buf.len(),
                need,
            });
        }
    }
    let mut written = 0;
    for buf in out.iter_mut() {
        if f.write_next(buf)?.is_none() {
            break;
        }
        written += 1;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::PROTO_UDP;
    use crate::testutil::ipv4;
    use proptest::prelude::*;

    /// Don't Fragment bit in octet 6.
    const FLAG_DF: u8 = 0x40;

    /// Data of `len` octets that differs at every position modulo 251.
    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// A packet with DF clear.
    fn packet(options: &[u8], len: usize) -> Vec<u8> {
        ipv4(PROTO_UDP, options, false, 0xbeef, &data(len))
    }

    /// Fragments into owned buffers with the iterator form.
    fn cut(pkt: &[u8], mtu: u16) -> Result<Vec<Vec<u8>>, FragError> {
        let mut f = Fragmenter::new(pkt, mtu)?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; usize::from(mtu).max(pkt.len())];
        while let Some(n) = f.write_next(&mut buf)? {
            out.push(buf[..n].to_vec());
        }
        assert_eq!(out.len(), f.count());
        assert_eq!(f.remaining(), 0);
        Ok(out)
    }

    /// What a receiver would rebuild: checks every fragment and returns (first-fragment header,
    /// offset in octets of the first data octet, data, MF of the last fragment).
    fn reassemble(orig: &[u8], frags: &[Vec<u8>], mtu: u16) -> (Vec<u8>, usize, Vec<u8>, bool) {
        let o = Ipv4Header::parse(orig).expect("orig");
        let mut pieces = Vec::new();
        for (i, f) in frags.iter().enumerate() {
            assert!(
                f.len() <= usize::from(mtu),
                "fragment {i} is {} > {mtu}",
                f.len()
            );
            let h = Ipv4Header::parse(f).expect("fragment header");
            assert!(h.checksum_ok(), "fragment {i} header checksum");
            assert_eq!(usize::from(h.total_len()), f.len());
            assert_eq!(h.identification(), o.identification());
            assert_eq!(h.protocol(), o.protocol());
            assert_eq!(
                (h.src(), h.dst(), h.ttl(), h.tos()),
                (o.src(), o.dst(), o.ttl(), o.tos())
            );
            assert!(!h.dont_fragment());
            let last = i + 1 == frags.len();
            if !last {
                assert!(h.more_fragments(), "fragment {i} lacks MF");
                assert_eq!(h.payload().expect("data").len() % 8, 0);
            }
            pieces.push((
                usize::from(h.frag_offset()) * 8,
                h.payload().expect("data").to_vec(),
            ));
        }
        let start = pieces[0].0;
        let mut rebuilt = Vec::new();
        for (off, d) in &pieces {
            assert_eq!(*off, start + rebuilt.len(), "gap or overlap");
            rebuilt.extend_from_slice(d);
        }
        let first = Ipv4Header::parse(&frags[0]).expect("first");
        let last_mf = Ipv4Header::parse(frags.last().expect("last"))
            .expect("h")
            .more_fragments();
        (first.header().to_vec(), start, rebuilt, last_mf)
    }

    #[test]
    fn classic_1500_into_576() {
        let orig = packet(&[], 1480);
        let frags = cut(&orig, 576).expect("fragments");
        // (576 - 20) / 8 * 8 = 552 data octets per fragment: 552 + 552 + 376.
        let lens: Vec<usize> = frags.iter().map(Vec::len).collect();
        assert_eq!(lens, vec![572, 572, 396]);
        let (_, start, rebuilt, last_mf) = reassemble(&orig, &frags, 576);
        assert_eq!(start, 0);
        assert_eq!(rebuilt, data(1480));
        assert!(!last_mf);
    }

    #[test]
    fn fitting_packet_is_passed_whole() {
        let orig = packet(&[], 100);
        assert_eq!(cut(&orig, 120).expect("one"), vec![orig.clone()]);
        // Even with DF set, since nothing needs cutting.
        let df = ipv4(PROTO_UDP, &[], true, 1, &data(100));
        assert_eq!(cut(&df, 120).expect("one"), vec![df.clone()]);
        // Link padding past Total Length is not copied.
        let mut padded = orig.clone();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(cut(&padded, 1500).expect("one"), vec![orig]);
    }

    #[test]
    fn dont_fragment_refused() {
        let df = ipv4(PROTO_UDP, &[], true, 1, &data(1000));
        assert_eq!(cut(&df, 576), Err(FragError::DontFragment));
    }

    #[test]
    fn smallest_mtu() {
        let orig = packet(&[], 30);
        assert_eq!(
            cut(&orig, 27),
            Err(FragError::MtuTooSmall {
                mtu: 27,
                header_len: 20
            })
        );
        let frags = cut(&orig, 28).expect("8-octet fragments");
        assert_eq!(frags.len(), 4);
        assert_eq!(reassemble(&orig, &frags, 28).2, data(30));
    }

    #[test]
    fn rfc791_minimum_68_with_full_options() {
        // 40 option octets: a copied option of 38 octets and two NOPs.
        let mut opts = vec![0x83, 38, 4];
        opts.extend_from_slice(&[0; 35]);
        opts.extend_from_slice(&[1, 1]);
        let orig = packet(&opts, 200);
        assert!(matches!(
            cut(&orig, 67),
            Err(FragError::MtuTooSmall { header_len: 60, .. })
        ));
        let frags = cut(&orig, 68).expect("fragments");
        assert!(frags.iter().all(|f| f.len() <= 68));
        assert_eq!(reassemble(&orig, &frags, 68).2, data(200));
    }

    #[test]
    fn only_copied_options_repeat() {
        // NOP, Record Route (7: copy flag clear, 11 octets), Security-style 0x82 (copy flag set,
        // 4 octets), LSRR 0x83 (copied, 7 octets), EOL.
        let rr = [7u8, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0];
        let sec = [0x82u8, 4, 0xab, 0xcd];
        let lsrr = [0x83u8, 7, 4, 192, 0, 2, 1];
        let mut opts = vec![1u8];
        opts.extend_from_slice(&rr);
        opts.extend_from_slice(&sec);
        opts.extend_from_slice(&lsrr);
        opts.push(0);
        let orig = packet(&opts, 1000);
        let o = Ipv4Header::parse(&orig).expect("orig");
        let frags = cut(&orig, 300).expect("fragments");
        let (first_header, _, rebuilt, _) = reassemble(&orig, &frags, 300);
        assert_eq!(rebuilt, data(1000));
        // The first fragment keeps every option.
        assert_eq!(&first_header[20..], o.options());
        // Later ones carry only 0x82 and 0x83, padded with EOL to 12 octets.
        let mut expect = sec.to_vec();
        expect.extend_from_slice(&lsrr);
        expect.push(0);
        for f in &frags[1..] {
            let h = Ipv4Header::parse(f).expect("fragment");
            assert_eq!(h.options(), &expect[..]);
            assert_eq!(h.header_len(), 32);
        }
    }

    #[test]
    fn no_copied_options_gives_bare_headers() {
        let orig = packet(&[7, 7, 4, 0, 0, 0, 0, 1], 500);
        let frags = cut(&orig, 200).expect("fragments");
        assert_eq!(Ipv4Header::parse(&frags[0]).expect("h").header_len(), 28);
        for f in &frags[1..] {
            assert_eq!(Ipv4Header::parse(f).expect("h").header_len(), 20);
        }
        assert_eq!(reassemble(&orig, &frags, 200).2, data(500));
    }

    #[test]
    fn fragments_of_a_middle_fragment() {
        // A middle fragment: offset 100 (800 octets), MF set.
        let mut orig = packet(&[], 1200);
        orig[6] = 0x20;
        orig[7] = 100;
        crate::ip::set_ipv4_checksum(&mut orig);
        let frags = cut(&orig, 500).expect("fragments");
        let (_, start, rebuilt, last_mf) = reassemble(&orig, &frags, 500);
        assert_eq!(start, 800);
        assert_eq!(rebuilt, data(1200));
        assert!(last_mf, "a middle fragment's pieces all keep MF");
    }

    #[test]
    fn fragments_of_a_last_fragment() {
        let mut orig = packet(&[], 1200);
        orig[6] = 0x00;
        orig[7] = 185;
        crate::ip::set_ipv4_checksum(&mut orig);
        let frags = cut(&orig, 500).expect("fragments");
        let (_, start, rebuilt, last_mf) = reassemble(&orig, &frags, 500);
        assert_eq!(start, 185 * 8);
        assert_eq!(rebuilt, data(1200));
        assert!(!last_mf);
    }

    #[test]
    fn datagram_past_65535_refused() {
        let mut orig = packet(&[], 1200);
        orig[6] = 0x1f;
        orig[7] = 0xa4; // offset 8100 (64800 octets) + 1200 > 65535
        crate::ip::set_ipv4_checksum(&mut orig);
        assert_eq!(cut(&orig, 500), Err(FragError::Malformed));
        // Offset 8000 (64000 octets) + 1200 = 65200 still fits and is cut.
        orig[7] = 0x40;
        crate::ip::set_ipv4_checksum(&mut orig);
        let frags = cut(&orig, 500).expect("fragments");
        assert_eq!(reassemble(&orig, &frags, 500).2, data(1200));
    }

    #[test]
    fn malformed_refused() {
        let orig = packet(&[], 100);
        assert_eq!(cut(&orig[..50], 60).err(), Some(FragError::Malformed));
        assert_eq!(cut(&orig[..10], 60).err(), Some(FragError::Malformed));
        // An option whose length runs past the header.
        let bad = packet(&[0x83, 9, 4, 0], 100);
        assert_eq!(cut(&bad, 60).err(), Some(FragError::Malformed));
        // An option of length 1.
        let bad = packet(&[0x83, 1, 0, 0], 100);
        assert_eq!(cut(&bad, 60).err(), Some(FragError::Malformed));
    }

    #[test]
    fn slice_form_and_its_errors() {
        let orig = packet(&[], 1480);
        let mut bufs = [[0u8; 576]; 4];
        {
            let mut out: Vec<&mut [u8]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
            assert_eq!(fragment_ipv4(&orig, 576, &mut out), Ok(3));
        }
        let frags: Vec<Vec<u8>> = bufs[..3]
            .iter()
            .map(|b| {
                let n = usize::from(Ipv4Header::parse(b).expect("h").total_len());
                b[..n].to_vec()
            })
            .collect();
        assert_eq!(frags, cut(&orig, 576).expect("same as iterator form"));
        assert_eq!(bufs[3], [0u8; 576], "unused buffer untouched");

        let mut two = [[0u8; 576]; 2];
        let mut out: Vec<&mut [u8]> = two.iter_mut().map(|b| &mut b[..]).collect();
        assert_eq!(
            fragment_ipv4(&orig, 576, &mut out),
            Err(FragError::TooManyFragments { got: 2, need: 3 })
        );
        let mut a = [0u8; 576];
        let mut b = [0u8; 576];
        let mut c = [0u8; 100];
        let mut out: [&mut [u8]; 3] = [&mut a, &mut b, &mut c];
        assert_eq!(
            fragment_ipv4(&orig, 576, &mut out),
            Err(FragError::BufferTooSmall {
                got: 100,
                need: 396
            })
        );
        assert_eq!(a, [0u8; 576], "nothing written on error");
    }

    #[test]
    fn small_buffer_can_be_retried() {
        let orig = packet(&[], 1000);
        let mut f = Fragmenter::new(&orig, 600).expect("fragmenter");
        let mut small = [0u8; 100];
        assert!(matches!(
            f.write_next(&mut small),
            Err(FragError::BufferTooSmall { .. })
        ));
        assert_eq!(f.remaining(), 2);
        let mut big = [0u8; 600];
        assert_eq!(f.write_next(&mut big), Ok(Some(596)));
        assert_eq!(f.fragment_len(1), Some(20 + 1000 - 576));
        assert_eq!(f.fragment_len(2), None);
    }

    fn option_strategy() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(vec![1u8]),
            (3usize..10).prop_map(|n| {
                let mut o = vec![7u8, u8::try_from(n).expect("n"), 4];
                o.resize(n, 0);
                o
            }),
            (2usize..10).prop_map(|n| {
                let mut o = vec![0x83u8, u8::try_from(n).expect("n")];
                o.resize(n, 9);
                o
            }),
            Just(vec![0x94u8, 4, 0, 0]),
        ]
    }

    proptest! {
        #[test]
        fn reassembly_matches_original(
            len in 0usize..3000,
            mtu in 68u16..1600,
            opts in proptest::collection::vec(option_strategy(), 0..5),
            base in 0u16..200,
            mf in any::<bool>(),
        ) {
            let mut flat = Vec::new();
            for o in opts {
                if flat.len() + o.len() <= MAX_OPTIONS {
                    flat.extend_from_slice(&o);
                }
            }
            let mut orig = packet(&flat, len);
            let [hi, lo] = base.to_be_bytes();
            orig[6] = hi | if mf { 0x20 } else { 0 };
            orig[7] = lo;
            crate::ip::set_ipv4_checksum(&mut orig);
            let frags = cut(&orig, mtu).expect("fragments");
            if orig.len() <= usize::from(mtu) {
                prop_assert_eq!(&frags, &vec![orig.clone()]);
            } else {
                let (first_header, start, rebuilt, last_mf) = reassemble(&orig, &frags, mtu);
                prop_assert_eq!(start, usize::from(base) * 8);
                prop_assert_eq!(rebuilt, data(len));
                prop_assert_eq!(last_mf, mf);
                // The first fragment keeps the whole original header, options included,
                // apart from Total Length, flags/offset and checksum.
                let oh = Ipv4Header::parse(&orig).expect("h").header().to_vec();
                prop_assert_eq!(first_header.len(), oh.len());
                for (k, (a, b)) in first_header.iter().zip(&oh).enumerate() {
                    if !matches!(k, 2 | 3 | 6 | 7 | 10 | 11) {
                        prop_assert_eq!(a, b, "octet {}", k);
                    }
                }
            }
        }

        #[test]
        fn random_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..200), mtu in 0u16..300) {
            if let Some(b) = bytes.first_mut() {
                *b = 0x40 | (*b & 0x0f);
            }
            if bytes.len() > 6 {
                bytes[6] &= !FLAG_DF;
            }
            if let Ok(mut f) = Fragmenter::new(&bytes, mtu) {
                let mut buf = [0u8; 300];
                let mut n = 0;
                while let Ok(Some(_)) = f.write_next(&mut buf) {
                    n += 1;
                    prop_assert!(n <= f.count());
                }
            }
        }
    }
}
