//! Configuration errors: where ([`ConfigError`]), what ([`ErrorKind`]) and how to fix it
//! ([`ErrorKind::hint`]).
//!
//! No message ever contains key material: the variants that concern keys carry lengths and
//! positions, never the text.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::cloud::{Cloud, CloudProblem};
use crate::model::Prefix;

/// Every error found in one load, in file order (errors in key files follow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The errors; never empty.
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// The number of errors.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Always false: a [`ConfigErrors`] holds at least one error.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Iterates over the errors.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.errors.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

/// One error, with its place.
///
/// Displays as `FILE:LINE:COL: PATH: message (hint)`; an error about a whole file (it cannot be
/// read) has line and column 0 and displays as `FILE: message (hint)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the error is in (the configuration or a key file).
    pub file: PathBuf,
    /// 1-based line; 0 when the error is about the whole file.
    pub line: usize,
    /// 1-based column in characters; 0 when the error is about the whole file.
    pub column: usize,
    /// The TOML path of the field, e.g. `tunnel[0].manual.suite`; empty for the whole file.
    pub path: String,
    /// What is wrong.
    pub kind: ErrorKind,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file.display())?;
        if self.line > 0 {
            write!(f, "{}:{}:", self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, " {}:", self.path)?;
        }
        write!(f, " {}", self.kind)?;
        if let Some(hint) = self.kind.hint() {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// What is wrong with a field or a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file could not be read.
    #[error("cannot read file: {reason}")]
    Io {
        /// The operating system's reason.
        reason: String,
    },
    /// The file is larger than bridgehead will read.
    #[error("file is larger than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// The file is not UTF-8.
    #[error("file is not valid UTF-8")]
    NotUtf8,
    /// The TOML does not parse (the one error that stops checking early).
    #[error("TOML syntax error: {message}")]
    Syntax {
        /// The parser's message (it never quotes the input).
        message: String,
    },
    /// A key that is not part of the format (misspelt, or in the wrong table).
    #[error("unknown key `{key}`")]
    UnknownKey {
        /// The key as written.
        key: String,
        /// A known key it is close to, if any.
        suggestion: Option<&'static str>,
        /// Every key this table accepts.
        expected: &'static [&'static str],
    },
    /// A value of the wrong TOML type.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// What the field takes, e.g. "an integer".
        expected: &'static str,
        /// What the file has.
        found: &'static str,
    },
    /// A required key is absent.
    #[error("missing required key `{key}`")]
    Missing {
        /// The key.
        key: &'static str,
    },
    /// An integer outside its range.
    #[error("{value} is out of range")]
    OutOfRange {
        /// The value in the file.
        value: i64,
        /// Smallest allowed.
        min: i64,
        /// Largest allowed.
        max: i64,
    },
    /// A string that is not one of the allowed words.
    #[error("unknown value {value:?}")]
    UnknownWord {
        /// The value in the file.
        value: String,
        /// The allowed words.
        expected: &'static [&'static str],
    },
    /// `mss_clamp` is neither a word nor a number.
    #[error("invalid mss_clamp {value:?}")]
    BadMss {
        /// The value in the file.
        value: String,
    },
    /// `mss_clamp` is larger than the explicit MTU allows.
    #[error("mss_clamp {mss} does not fit mtu {mtu}")]
    MssAboveMtu {
        /// The MSS.
        mss: u16,
        /// The MTU.
        mtu: u16,
    },
    /// Not an IPv4 or IPv6 address.
    #[error("{value:?} is not an IP address")]
    BadAddress {
        /// The value in the file.
        value: String,
    },
    /// An address that cannot be used here (unspecified, multicast, ...).
    #[error("{addr} cannot be used here: it is {what}")]
    UnusableAddress {
        /// The address.
        addr: IpAddr,
        /// Why, e.g. "multicast".
        what: &'static str,
    },
    /// The peer and the bind address are of different families.
    #[error("peer {peer} and appliance.private_ip {private} are of different address families")]
    FamilyMismatch {
        /// The tunnel's peer.
        peer: IpAddr,
        /// The bind address.
        private: IpAddr,
    },
    /// Not `ADDRESS/LENGTH`.
    #[error("{value:?} is not a prefix")]
    BadPrefix {
        /// The value in the file.
        value: String,
    },
    /// A prefix length that does not fit the address family.
    #[error("prefix length /{len} is out of range for {family}")]
    PrefixLength {
        /// The length written.
        len: u32,
        /// "IPv4" or "IPv6".
        family: &'static str,
        /// Smallest allowed here.
        min: u8,
        /// Largest allowed here.
        max: u8,
    },
    /// A route with host bits set.
    #[error("{value} has host bits set")]
    HostBits {
        /// The prefix as written.
        value: Prefix,
        /// The network it probably means.
        meant: Prefix,
    },
    /// An inside address that is the network or broadcast address of its prefix.
    #[error("{value} is the {what} address of its prefix, not a host address")]
    NotHostAddress {
        /// The prefix as written.
        value: Prefix,
        /// "network", "broadcast" or "subnet-router anycast".
        what: &'static str,
    },
    /// The same address or prefix twice.
    #[error("{value} is listed twice (also at line {first_line})")]
    DuplicatePrefix {
        /// The prefix.
        value: Prefix,
        /// Where it first appeared.
        first_line: usize,
    },
    /// A tunnel name outside `[a-z0-9-]{1,12}`.
    #[error("invalid tunnel name {value:?}: {reason}")]
    BadName {
        /// The name.
        value: String,
        /// What rule it breaks.
        reason: &'static str,
    },
    /// Two tunnels with one name.
    #[error("tunnel name {name:?} is already used at line {first_line}")]
    DuplicateName {
        /// The name.
        name: String,
        /// Where it first appeared.
        first_line: usize,
    },
    /// An ESP suite bridgehead does not know.
    #[error("unknown suite {value:?}")]
    UnknownSuite {
        /// The value in the file.
        value: String,
    },
    /// An SPI in the reserved range 0..=255 (RFC 4303 §2.1) or above 32 bits.
    #[error("SPI {value} is not allowed")]
    BadSpi {
        /// The value in the file.
        value: i64,
    },
    /// Two tunnels receiving on one SPI.
    #[error("inbound SPI {spi:#x} is already used by tunnel {other:?}")]
    DuplicateSpi {
        /// The SPI.
        spi: u32,
        /// The other tunnel's name.
        other: String,
    },
    /// A key string that is not hex.
    #[error("key is not hexadecimal: {reason}")]
    BadHex {
        /// What is wrong (never the key itself).
        reason: HexProblem,
    },
    /// A key of the wrong length for the suite.
    #[error("key is {got} bytes, {suite} needs {need} ({breakdown})")]
    KeyLength {
        /// Bytes in the file.
        got: usize,
        /// The suite's name.
        suite: &'static str,
        /// Bytes it needs.
        need: usize,
        /// How `need` is made up, e.g. "32 key + 4 salt".
        breakdown: String,
    },
    /// The same key for both directions.
    #[error("outbound_key and inbound_key are identical")]
    SameKeys,
    /// `key_file` together with inline keys.
    #[error("key_file and inline keys cannot both be set")]
    KeyFileAndInline,
    /// Neither `key_file` nor both inline keys.
    #[error("no key material: `{key}` is missing")]
    MissingKey {
        /// The absent key.
        key: &'static str,
    },
    /// A tunnel with neither IKE keying (`psk`, `psk_file`) nor `[tunnel.manual]`.
    #[error("tunnel has no keys: neither psk/psk_file (IKE) nor [tunnel.manual]")]
    NoManual,
    /// An IKE setting that is wrong ([`crate::ike::IkeProblem`]).
    #[error("{problem}")]
    Ike {
        /// What is wrong.
        problem: crate::ike::IkeProblem,
    },
    /// Something the tunnel's or neighbor's cloud would refuse ([`CloudProblem`]).
    #[error("{cloud}: {problem}")]
    Cloud {
        /// The cloud (`cloud`, set or inherited from the tunnel).
        cloud: Cloud,
        /// What it would refuse.
        problem: CloudProblem,
    },
    /// An MTU below the IPv6 minimum on a tunnel with IPv6 inside addresses.
    #[error("mtu {mtu} is below 1280, the IPv6 minimum, and inside has {addr}")]
    MtuTooSmallForIpv6 {
        /// The MTU.
        mtu: u16,
        /// The IPv6 inside address.
        addr: Prefix,
    },
    /// A file holding keys that group or others can access.
    #[error("{file} holds keys but its mode is {mode:04o}, readable beyond its owner")]
    InsecureMode {
        /// The file.
        file: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A file holding keys owned by someone else.
    #[error("{file} holds keys but is owned by uid {uid}, not by uid {euid} or root")]
    WrongOwner {
        /// The file.
        file: PathBuf,
        /// Its owner.
        uid: u32,
        /// The user bridgehead runs as.
        euid: u32,
    },
    /// A key file that cannot be read.
    #[error("cannot read key file {file}: {reason}")]
    KeyFileIo {
        /// The file.
        file: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
}

/// Why a key string is not hex. Carries positions, never characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HexProblem {
    /// Nothing after the optional `0x`.
    #[error("it is empty")]
    Empty,
    /// An odd number of digits.
    #[error("it has an odd number of digits ({0})")]
    OddLength(usize),
    /// A character that is not 0-9, a-f, A-F.
    #[error("character {0} is not a hex digit")]
    NotHexDigit(usize),
}

fn one_of(words: &[&str]) -> String {
    words.join(", ")
}

impl ErrorKind {
    /// How to fix it, when there is something useful to say.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Self::Io { .. } => "check the path and that bridgehead may read it".into(),
            Self::TooLarge { .. } | Self::NotUtf8 | Self::Syntax { .. } => return None,
            Self::UnknownKey {
                suggestion,
                expected,
                ..
            } => match suggestion {
                Some(s) => format!("did you mean `{s}`? expected one of {}", one_of(expected)),
                None => format!("expected one of {}", one_of(expected)),
            },
            Self::WrongType { .. } | Self::Missing { .. } => return None,
            Self::OutOfRange { min, max, .. } => format!("use a value in {min}..={max}"),
            Self::UnknownWord { expected, .. } => format!("expected one of {}", one_of(expected)),
            Self::BadMss { .. } => "use \"auto\", \"off\" or a number in 536..=9000".into(),
            Self::MssAboveMtu { mtu, .. } => format!(
                "the MSS must leave room for 40 bytes of IPv4 and TCP headers: at most {}",
                mtu.saturating_sub(40)
            ),
            Self::BadAddress { .. } => {
                "write an IPv4 (192.0.2.1) or IPv6 (2001:db8::1) address".into()
            }
            Self::UnusableAddress { .. } => "use a unicast address".into(),
            Self::FamilyMismatch { .. } => {
                "sockets bind to private_ip, so the peer must be of the same family".into()
            }
            Self::BadPrefix { .. } => "write ADDRESS/LENGTH, e.g. 10.2.0.0/16 or fd00::/64".into(),
            Self::PrefixLength { min, max, .. } => format!("use a length in {min}..={max}"),
            Self::HostBits { meant, .. } => format!("did you mean {meant}?"),
            Self::NotHostAddress { .. } => {
                "use an address inside the prefix, e.g. .1 or .2 of a /30".into()
            }
            Self::DuplicatePrefix { .. } => "remove one of them".into(),
            Self::BadName { .. } => "use 1 to 12 characters from a-z, 0-9 and -".into(),
            Self::DuplicateName { .. } => "give every tunnel its own name".into(),
            Self::UnknownSuite { .. } => format!(
                "expected one of {}",
                one_of(
                    &bh_crypto::esp::SUITE_NAMES
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                )
            ),
            Self::BadSpi { .. } => {
                "SPIs 0..=255 are reserved by RFC 4303 section 2.1; use 256..=0xffffffff".into()
            }
            Self::DuplicateSpi { .. } => "every tunnel needs its own inbound SPI".into(),
            Self::BadHex { .. } => "write the key as hex digits, optionally prefixed by 0x".into(),
            Self::KeyLength { need, .. } => {
                format!("generate {need} random bytes, e.g. `openssl rand -hex {need}`")
            }
            Self::SameKeys => "each direction needs its own key; reusing one repeats nonces".into(),
            Self::KeyFileAndInline => {
                "keep key_file, or outbound_key and inbound_key, not both".into()
            }
            Self::MissingKey { .. } => "set key_file, or both outbound_key and inbound_key".into(),
            Self::NoManual => {
                "set psk_file (IKE), or add [tunnel.manual] with suite, SPIs and keys".into()
            }
            Self::Ike { problem } => problem.hint(),
            Self::Cloud { problem, .. } => problem.hint(),
            Self::MtuTooSmallForIpv6 { .. } => "raise mtu to at least 1280".into(),
            Self::InsecureMode { file, .. } => format!("chmod 600 {}", file.display()),
            Self::WrongOwner { file, euid, .. } => format!("chown {euid} {}", file.display()),
            Self::KeyFileIo { .. } => {
                "check the path; a relative key_file is taken from the configuration's directory"
                    .into()
            }
        })
    }
}
