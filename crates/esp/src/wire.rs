//! ESP on the wire: the header (RFC 4303 §2) and the demultiplexing of UDP port 4500
//! (RFC 3948 §2).
//!
//! This module only reads and writes fixed headers in byte slices. It does not decrypt, check
//! sequence numbers or look SAs up: [`crate::sa`] does that.

/// Length of the ESP header: SPI (4 octets) and sequence number (4 octets), RFC 4303 §2.
pub use bh_crypto::ESP_HEADER_LEN;

/// The NAT-keepalive packet, a single 0xFF octet (RFC 3948 §2.3).
pub const NAT_KEEPALIVE: [u8; 1] = [0xff];

/// The non-ESP marker that precedes IKE messages on port 4500 (RFC 3948 §2.2).
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// SPIs 1..=255 are reserved by IANA and 0 is never sent on the wire (RFC 4303 §2.1).
pub const MIN_SPI: u32 = 256;

/// IP protocol number of IPv4-in-ESP (tunnel mode), the next header of an inner IPv4 packet.
pub const NEXT_HEADER_IPV4: u8 = 4;
/// IP protocol number of IPv6-in-ESP (tunnel mode), the next header of an inner IPv6 packet.
pub const NEXT_HEADER_IPV6: u8 = 41;
/// "No next header": a dummy packet for traffic flow confidentiality (RFC 4303 §2.6).
pub const NEXT_HEADER_DUMMY: u8 = 59;

/// The ESP header: SPI and the low 32 bits of the sequence number (RFC 4303 §2.1, §2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EspHeader {
    /// Security Parameters Index.
    pub spi: u32,
    /// Sequence number as sent: the low 32 bits when extended sequence numbers are in use.
    pub seq: u32,
}

impl EspHeader {
    /// Reads the header at the start of `packet`; `None` when it is shorter than 8 octets.
    pub fn parse(packet: &[u8]) -> Option<Self> {
        let spi = packet.get(0..4)?;
        let seq = packet.get(4..8)?;
        Some(Self {
            spi: u32::from_be_bytes(spi.try_into().ok()?),
            seq: u32::from_be_bytes(seq.try_into().ok()?),
        })
    }

    /// Writes the header into its 8 octets.
    pub fn emit(&self, out: &mut [u8; ESP_HEADER_LEN]) {
        out[..4].copy_from_slice(&self.spi.to_be_bytes());
        out[4..].copy_from_slice(&self.seq.to_be_bytes());
    }
}

/// Why a datagram received on UDP port 4500 is neither IKE, a keepalive nor ESP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum MalformedReason {
    /// A zero-length datagram.
    #[error("empty datagram")]
    Empty,
    /// Shorter than an ESP header (and not a keepalive), or a non-ESP marker with nothing after.
    #[error("datagram too short")]
    Truncated,
    /// An SPI in the reserved range 1..=255 (RFC 4303 §2.1).
    #[error("reserved SPI {0}")]
    ReservedSpi(u32),
}

/// What a datagram received on UDP port 4500 carries (RFC 3948 §2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Udp4500<'a> {
    /// An IKE message: the bytes after the 4-octet non-ESP marker.
    Ike(&'a [u8]),
    /// A NAT-keepalive (RFC 3948 §2.3): to be ignored.
    NatKeepalive,
    /// An ESP packet, starting at its SPI, at least 8 octets with an SPI of 256 or more.
    Esp(&'a [u8]),
    /// Anything else: to be dropped.
    Malformed(MalformedReason),
}

impl<'a> Udp4500<'a> {
    /// Classifies the payload of a UDP datagram received on port 4500.
    pub fn classify(datagram: &'a [u8]) -> Self {
        if datagram.is_empty() {
            return Self::Malformed(MalformedReason::Empty);
        }
        if datagram == NAT_KEEPALIVE {
            return Self::NatKeepalive;
        }
        match datagram.split_first_chunk::<4>() {
            None => Self::Malformed(MalformedReason::Truncated),
            Some((marker, rest)) if *marker == NON_ESP_MARKER => {
                if rest.is_empty() {
                    Self::Malformed(MalformedReason::Truncated)
                } else {
                    Self::Ike(rest)
                }
            }
            Some((spi, _)) => {
                let spi = u32::from_be_bytes(*spi);
                if datagram.len() < ESP_HEADER_LEN {
                    Self::Malformed(MalformedReason::Truncated)
                } else if spi < MIN_SPI {
                    Self::Malformed(MalformedReason::ReservedSpi(spi))
                } else {
                    Self::Esp(datagram)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let h = EspHeader {
            spi: 0x0102_0304,
            seq: 0xfffe_fdfc,
        };
        let mut out = [0u8; 8];
        h.emit(&mut out);
        assert_eq!(out, [1, 2, 3, 4, 0xff, 0xfe, 0xfd, 0xfc]);
        assert_eq!(EspHeader::parse(&out), Some(h));
        assert_eq!(EspHeader::parse(&out[..7]), None);
    }

    #[test]
    fn classifies_port_4500_datagrams() {
        assert_eq!(Udp4500::classify(&[0xff]), Udp4500::NatKeepalive);
        assert_eq!(
            Udp4500::classify(&[]),
            Udp4500::Malformed(MalformedReason::Empty)
        );
        assert_eq!(
            Udp4500::classify(&[0xfe]),
            Udp4500::Malformed(MalformedReason::Truncated)
        );
        assert_eq!(
            Udp4500::classify(&[0, 0, 0]),
            Udp4500::Malformed(MalformedReason::Truncated)
        );
        assert_eq!(
            Udp4500::classify(&[0, 0, 0, 0]),
            Udp4500::Malformed(MalformedReason::Truncated)
        );
        let ike = [0, 0, 0, 0, 0xaa, 0xbb];
        assert_eq!(Udp4500::classify(&ike), Udp4500::Ike(&[0xaa, 0xbb]));
        let esp = [0, 0, 1, 0, 0, 0, 0, 1];
        assert_eq!(Udp4500::classify(&esp), Udp4500::Esp(&esp));
        assert_eq!(
            Udp4500::classify(&esp[..7]),
            Udp4500::Malformed(MalformedReason::Truncated)
        );
        assert_eq!(
            Udp4500::classify(&[0, 0, 0, 0xff, 0, 0, 0, 1]),
            Udp4500::Malformed(MalformedReason::ReservedSpi(255))
        );
    }
}
