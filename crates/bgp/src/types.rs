//! Shared value types: time, prefixes, address families.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Add;
use std::time::Duration;

/// A point in time on the shell's monotonic clock (nanoseconds since an arbitrary origin).
///
/// The library never reads a clock: the shell passes `Instant`s in (CLOCK_BOOTTIME in the daemon,
/// a simulated clock in tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The instant `nanos` nanoseconds after the clock's origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }
    /// Nanoseconds since the clock's origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// Time elapsed from `earlier` to `self` (zero if `earlier` is later).
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Self;
    fn add(self, d: Duration) -> Self {
        let n = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(n))
    }
}

/// Address Family Identifier (IANA), as used by MP-BGP (RFC 4760).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Afi(pub u16);

impl Afi {
    /// IPv4.
    pub const IPV4: Self = Self(1);
    /// IPv6.
    pub const IPV6: Self = Self(2);
}

/// Subsequent Address Family Identifier (RFC 4760).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Safi(pub u8);

impl Safi {
    /// Unicast.
    pub const UNICAST: Self = Self(1);
}

/// An (AFI, SAFI) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Family {
    /// The address family.
    pub afi: Afi,
    /// The subsequent address family.
    pub safi: Safi,
}

impl Family {
    /// IPv4 unicast.
    pub const IPV4_UNICAST: Self = Self {
        afi: Afi::IPV4,
        safi: Safi::UNICAST,
    };
    /// IPv6 unicast.
    pub const IPV6_UNICAST: Self = Self {
        afi: Afi::IPV6,
        safi: Safi::UNICAST,
    };
}

/// Why a prefix could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// The length exceeds the address width.
    #[error("prefix length {0} too long for the address family")]
    TooLong(u8),
}

/// An IP prefix with its host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// Builds a prefix, clearing host bits. Fails if `len` is longer than the address.
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, PrefixError> {
        match addr {
            IpAddr::V4(a) => {
                if len > 32 {
                    return Err(PrefixError::TooLong(len));
                }
                let mask = if len == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(len))
                };
                Ok(Self {
                    addr: IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask)),
                    len,
                })
            }
            IpAddr::V6(a) => {
                if len > 128 {
                    return Err(PrefixError::TooLong(len));
                }
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(len))
                };
                Ok(Self {
                    addr: IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask)),
                    len,
                })
            }
        }
    }
    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }
    /// The prefix length in bits.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u8 {
        self.len
    }
    /// True for a default route (length 0).
    pub fn is_default(&self) -> bool {
        self.len == 0
    }
    /// The address family of the prefix.
    pub fn family(&self) -> Family {
        match self.addr {
            IpAddr::V4(_) => Family::IPV4_UNICAST,
            IpAddr::V6(_) => Family::IPV6_UNICAST,
        }
    }
    /// True if `other` lies within this prefix (same family, at least as long, same leading bits).
    pub fn contains(&self, other: &Self) -> bool {
        if other.len < self.len {
            return false;
        }
        match Self::new(other.addr, self.len) {
            Ok(p) => p.addr == self.addr && self.family() == other.family(),
            Err(_) => false,
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl std::str::FromStr for Prefix {
    type Err = ParsePrefixError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, l) = s.split_once('/').ok_or(ParsePrefixError)?;
        let addr: IpAddr = a.parse().map_err(|_| ParsePrefixError)?;
        let len: u8 = l.parse().map_err(|_| ParsePrefixError)?;
        Self::new(addr, len).map_err(|_| ParsePrefixError)
    }
}

/// A string was not `address/length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a prefix (expected address/length)")]
pub struct ParsePrefixError;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_masks_host_bits_and_contains() {
        let p: Prefix = "10.1.2.3/16".parse().unwrap();
        assert_eq!(p.to_string(), "10.1.0.0/16");
        assert!(p.contains(&"10.1.200.0/24".parse().unwrap()));
        assert!(!p.contains(&"10.2.0.0/24".parse().unwrap()));
        assert!(!p.contains(&"10.0.0.0/8".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Prefix>().is_err());
        let v6: Prefix = "fd00::1/126".parse().unwrap();
        assert_eq!(v6.to_string(), "fd00::/126");
        assert!(!v6.contains(&"10.0.0.0/8".parse().unwrap()));
    }
}
