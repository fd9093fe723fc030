//! Tests of loading and validation, as a user would meet them: a valid file, then one test per
//! kind of mistake with the line and TOML path it must be reported at.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use bh_config::{
    ConfigError, ConfigErrors, Encap, ErrorKind, FileMeta, HexProblem, LoadCtx, MemFiles, MssClamp,
    Prefix, parse,
};

const SRC: &str = "/etc/bridgehead/bridgehead.toml";
const KEY_FILE: &str = "/etc/bridgehead/keys/sitec.toml";
const EUID: u32 = 1000;
const OWNER_ONLY: FileMeta = FileMeta {
    mode: 0o600,
    uid: EUID,
};

fn key(byte: &str, len: usize) -> String {
    format!("0x{}", byte.repeat(len))
}

/// The golden file; tests replace single lines of it (line numbers are 1-based).
fn valid() -> String {
    format!(
        r#"[appliance]
private_ip = "10.0.1.4"
public_ip = "203.0.113.10"

[dataplane]
workers = 0
udp_port = 4500
socket_buffer = 7340032
pin_workers = true

[[tunnel]]
name = "siteb"
peer = "203.0.113.20"
peer_port = 4500
encap = "udp"
inside = ["169.254.10.1/30", "fd00:10::1/126"]
routes = ["10.2.0.0/16", "fd02::/64"]
mtu = 1400
mss_clamp = "auto"
nat_keepalive = 20
replay_window = 1024

[tunnel.manual]
suite = "aes256gcm16"
esn = false
outbound_spi = 0x1001
inbound_spi = 0x2002
outbound_key = "{}"
inbound_key = "{}"

[[tunnel]]
name = "sitec"
peer = "198.51.100.7"
encap = "esp"
inside = ["169.254.20.2/30"]
routes = ["10.3.0.0/16"]
mss_clamp = 1360

[tunnel.manual]
suite = "aes128-sha256"
esn = true
outbound_spi = 0x3003
inbound_spi = 0x4004
key_file = "keys/sitec.toml"
"#,
        key("11", 36),
        key("22", 36)
    )
}

fn key_file_text() -> String {
    format!(
        "outbound_key = \"{}\"\ninbound_key = \"{}\"\n",
        key("33", 48),
        key("44", 48)
    )
}

fn files() -> MemFiles {
    let mut f = MemFiles::new();
    f.insert(SRC, OWNER_ONLY, b"");
    f.insert(KEY_FILE, OWNER_ONLY, key_file_text().as_bytes());
    f
}

fn ctx(files: &MemFiles) -> LoadCtx<'_> {
    LoadCtx {
        online_cores: 4,
        euid: EUID,
        files,
    }
}

/// Replaces 1-based line `n` of `text`.
fn with_line(text: &str, n: usize, new: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    lines[n - 1] = new;
    lines.join("\n") + "\n"
}

fn errors_of(text: &str) -> ConfigErrors {
    errors_with(text, &files())
}

fn errors_with(text: &str, files: &MemFiles) -> ConfigErrors {
    match parse(Path::new(SRC), text, &ctx(files)) {
        Ok(_) => panic!("expected errors, the file was accepted"),
        Err(e) => e,
    }
}

/// Asserts exactly one error, at `line` and `path`, and returns it.
fn one_error(text: &str, line: usize, path: &str) -> ConfigError {
    let errs = errors_of(text);
    assert_eq!(errs.len(), 1, "expected one error, got:\n{errs}");
    let e = errs.errors.into_iter().next().unwrap();
    assert_eq!((e.line, e.path.as_str()), (line, path), "{e}");
    e
}

fn pfx(s: &str) -> Prefix {
    let (a, l) = s.split_once('/').unwrap();
    Prefix {
        addr: a.parse().unwrap(),
        len: l.parse().unwrap(),
    }
}

#[test]
fn golden_file_loads_with_every_value() {
    let files = files();
    let cfg = parse(Path::new(SRC), &valid(), &ctx(&files)).unwrap();
    assert_eq!(cfg.source, Path::new(SRC));
    assert_eq!(cfg.appliance.private_ip, Some("10.0.1.4".parse().unwrap()));
    assert_eq!(
        cfg.appliance.public_ip,
        Some("203.0.113.10".parse().unwrap())
    );
    assert_eq!(cfg.dataplane.workers, 4, "workers = 0 is one per core");
    assert_eq!(cfg.dataplane.udp_port, 4500);
    assert_eq!(cfg.dataplane.socket_buffer, 7 << 20);
    assert!(cfg.dataplane.pin_workers);
    assert_eq!(cfg.tunnels.len(), 2);

    let b = &cfg.tunnels[0];
    assert_eq!(b.name, "siteb");
    assert_eq!(b.peer, "203.0.113.20".parse::<IpAddr>().unwrap());
    assert_eq!(b.peer_port, 4500);
    assert_eq!(b.encap, Encap::Udp);
    assert_eq!(
        b.inside,
        vec![pfx("169.254.10.1/30"), pfx("fd00:10::1/126")]
    );
    assert_eq!(b.routes, vec![pfx("10.2.0.0/16"), pfx("fd02::/64")]);
    assert_eq!(b.mtu, Some(1400));
    assert_eq!(b.mss_clamp, MssClamp::Auto);
    assert_eq!(b.nat_keepalive, Some(Duration::from_secs(20)));
    assert_eq!(b.replay_window, 1024);
    let m = b.manual.as_ref().unwrap();
    assert_eq!(m.suite.name(), Some("aes256gcm16"));
    assert!(!m.esn);
    assert_eq!(m.outbound.spi, 0x1001);
    assert_eq!(m.inbound.spi, 0x2002);
    assert_eq!(m.outbound.key.as_slice(), &[0x11; 36][..]);
    assert_eq!(m.inbound.key.as_slice(), &[0x22; 36][..]);

    let c = &cfg.tunnels[1];
    assert_eq!(c.name, "sitec");
    assert_eq!(c.peer_port, 4500, "default");
    assert_eq!(c.encap, Encap::Esp);
    assert_eq!(c.mtu, None);
    assert_eq!(c.mss_clamp, MssClamp::Fixed(1360));
    assert_eq!(c.nat_keepalive, None, "raw ESP sends no NAT keepalives");
    assert_eq!(c.replay_window, 1024, "default");
    let m = c.manual.as_ref().unwrap();
    assert_eq!(m.suite.name(), Some("aes128-sha256"));
    assert!(m.esn);
    assert_eq!(m.outbound.key.as_slice(), &[0x33; 48][..]);
    assert_eq!(m.inbound.key.as_slice(), &[0x44; 48][..]);
}

#[test]
fn defaults_apply_when_sections_are_absent() {
    let files = files();
    let cfg = parse(Path::new(SRC), "", &ctx(&files)).unwrap();
    assert_eq!(cfg.appliance.private_ip, None);
    assert_eq!(cfg.dataplane.workers, 4);
    assert_eq!(cfg.dataplane.udp_port, 4500);
    assert_eq!(cfg.dataplane.socket_buffer, 7 * 1024 * 1024);
    assert!(cfg.dataplane.pin_workers);
    assert!(cfg.tunnels.is_empty());

    let cfg = parse(
        Path::new(SRC),
        "[dataplane]\nworkers = 3\npin_workers = false\n",
        &ctx(&files),
    )
    .unwrap();
    assert_eq!(cfg.dataplane.workers, 3);
    assert!(!cfg.dataplane.pin_workers);

    // nat_keepalive = 0 turns keepalives off; peer_port and the rest default.
    let text = with_line(&valid(), 20, "nat_keepalive = 0");
    let cfg = parse(Path::new(SRC), &text, &ctx(&files)).unwrap();
    assert_eq!(cfg.tunnels[0].nat_keepalive, None);
    let text = with_line(&valid(), 19, "mss_clamp = \"off\"");
    let cfg = parse(Path::new(SRC), &text, &ctx(&files)).unwrap();
    assert_eq!(cfg.tunnels[0].mss_clamp, MssClamp::Off);
}

#[test]
fn display_is_file_line_col_path_message_hint() {
    let e = one_error(
        &with_line(&valid(), 24, "suite = \"aes256gcm\""),
        24,
        "tunnel[0].manual.suite",
    );
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!(
            "{SRC}:24:9: tunnel[0].manual.suite: unknown suite \"aes256gcm\" (expected one of aes128gcm16, aes192gcm16, aes256gcm16, chacha20poly1305, aes128-sha1"
        )),
        "{shown}"
    );
    assert!(shown.ends_with(')'), "{shown}");
}

#[test]
fn syntax_error_stops_early_with_its_line() {
    let mut text = with_line(&valid(), 13, "peer = \"203.0.113.20");
    text = with_line(&text, 7, "udp_port = 0"); // would be an error, but is never reached
    let errs = errors_of(&text);
    assert_eq!(errs.len(), 1, "{errs}");
    assert_eq!(errs.errors[0].line, 13);
    assert!(matches!(errs.errors[0].kind, ErrorKind::Syntax { .. }));
}

#[test]
fn unknown_key_suggests_the_near_one() {
    let e = one_error(
        &with_line(&valid(), 14, "peer_prot = 4500"),
        14,
        "tunnel[0].peer_prot",
    );
    match &e.kind {
        ErrorKind::UnknownKey {
            key, suggestion, ..
        } => {
            assert_eq!(key, "peer_prot");
            assert_eq!(*suggestion, Some("peer_port"));
        }
        k => panic!("{k:?}"),
    }
    assert!(e.to_string().contains("did you mean `peer_port`?"), "{e}");
    // An unknown section at the top.
    let text = format!("{}\n[routing]\nasn = 65010\n", valid());
    let errs = errors_of(&text);
    assert_eq!(errs.len(), 1, "{errs}");
    assert_eq!(errs.errors[0].path, "routing");
    assert_eq!(errs.errors[0].line, 46);
}

#[test]
fn wrong_type_names_both_types() {
    let e = one_error(
        &with_line(&valid(), 7, "udp_port = \"4500\""),
        7,
        "dataplane.udp_port",
    );
    assert_eq!(
        e.kind,
        ErrorKind::WrongType {
            expected: "an integer",
            found: "a string"
        }
    );
    one_error(
        &with_line(&valid(), 9, "pin_workers = 1979-05-27"),
        9,
        "dataplane.pin_workers",
    );
}

#[test]
fn tunnel_must_be_an_array_of_tables() {
    let errs = errors_of("[tunnel]\nname = \"x\"\n");
    assert_eq!(errs.len(), 1, "{errs}");
    assert_eq!(errs.errors[0].path, "tunnel");
    assert!(errs.errors[0].to_string().contains("[[tunnel]]"));
}

#[test]
fn out_of_range_gives_the_range() {
    let e = one_error(
        &with_line(&valid(), 21, "replay_window = 32"),
        21,
        "tunnel[0].replay_window",
    );
    assert_eq!(
        e.kind,
        ErrorKind::OutOfRange {
            value: 32,
            min: 64,
            max: 4096
        }
    );
    assert!(e.to_string().ends_with("(use a value in 64..=4096)"), "{e}");
    one_error(
        &with_line(&valid(), 7, "udp_port = 0"),
        7,
        "dataplane.udp_port",
    );
    one_error(&with_line(&valid(), 18, "mtu = 500"), 18, "tunnel[0].mtu");
    one_error(
        &with_line(&valid(), 37, "mss_clamp = 100"),
        37,
        "tunnel[1].mss_clamp",
    );
}

#[test]
fn missing_required_key_points_at_its_table() {
    let e = one_error(&with_line(&valid(), 13, ""), 11, "tunnel[0].peer");
    assert_eq!(e.kind, ErrorKind::Missing { key: "peer" });
    one_error(&with_line(&valid(), 40, ""), 39, "tunnel[1].manual.suite");
}

#[test]
fn bad_addresses() {
    one_error(
        &with_line(&valid(), 2, "private_ip = \"10.0.1\""),
        2,
        "appliance.private_ip",
    );
    let e = one_error(
        &with_line(&valid(), 33, "peer = \"224.0.0.1\""),
        33,
        "tunnel[1].peer",
    );
    assert!(matches!(
        e.kind,
        ErrorKind::UnusableAddress {
            what: "multicast",
            ..
        }
    ));
    let e = one_error(
        &with_line(&valid(), 33, "peer = \"2001:db8::7\""),
        33,
        "tunnel[1].peer",
    );
    assert!(matches!(e.kind, ErrorKind::FamilyMismatch { .. }));
}

#[test]
fn prefixes_must_parse_and_fit() {
    let e = one_error(
        &with_line(&valid(), 17, "routes = [\"10.2.0.0/16\", \"fd02::\"]"),
        17,
        "tunnel[0].routes[1]",
    );
    assert!(matches!(e.kind, ErrorKind::BadPrefix { .. }));
    let e = one_error(
        &with_line(
            &valid(),
            16,
            "inside = [\"169.254.10.1/33\", \"fd00:10::1/126\"]",
        ),
        16,
        "tunnel[0].inside[0]",
    );
    assert!(matches!(
        e.kind,
        ErrorKind::PrefixLength {
            len: 33,
            family: "IPv4",
            ..
        }
    ));
}

#[test]
fn route_with_host_bits_says_which_prefix_was_meant() {
    let e = one_error(
        &with_line(&valid(), 17, "routes = [\"10.2.3.4/16\", \"fd02::/64\"]"),
        17,
        "tunnel[0].routes[0]",
    );
    assert_eq!(
        e.kind,
        ErrorKind::HostBits {
            value: pfx("10.2.3.4/16"),
            meant: pfx("10.2.0.0/16")
        }
    );
    assert!(
        e.to_string().ends_with("(did you mean 10.2.0.0/16?)"),
        "{e}"
    );
    let e = one_error(
        &with_line(&valid(), 17, "routes = [\"10.2.0.0/16\", \"fd02::1/64\"]"),
        17,
        "tunnel[0].routes[1]",
    );
    assert!(e.to_string().contains("did you mean fd02::/64?"), "{e}");
}

#[test]
fn inside_must_be_a_host_address_and_unique() {
    let e = one_error(
        &with_line(&valid(), 35, "inside = [\"169.254.20.0/30\"]"),
        35,
        "tunnel[1].inside[0]",
    );
    assert!(matches!(
        e.kind,
        ErrorKind::NotHostAddress {
            what: "network",
            ..
        }
    ));
    let e = one_error(
        &with_line(&valid(), 35, "inside = [\"169.254.20.3/30\"]"),
        35,
        "tunnel[1].inside[0]",
    );
    assert!(matches!(
        e.kind,
        ErrorKind::NotHostAddress {
            what: "broadcast",
            ..
        }
    ));
    // /31 (RFC 3021) has no network or broadcast address.
    let files = files();
    let text = with_line(&valid(), 35, "inside = [\"169.254.20.0/31\"]");
    assert!(parse(Path::new(SRC), &text, &ctx(&files)).is_ok());
    // The same inside address on two tunnels.
    let e = one_error(
        &with_line(&valid(), 35, "inside = [\"169.254.10.1/30\"]"),
        35,
        "tunnel[1].inside[0]",
    );
    assert!(matches!(
        e.kind,
        ErrorKind::DuplicatePrefix { first_line: 16, .. }
    ));
}

#[test]
fn tunnel_names() {
    let e = one_error(
        &with_line(&valid(), 12, "name = \"Site_B\""),
        12,
        "tunnel[0].name",
    );
    assert!(matches!(e.kind, ErrorKind::BadName { .. }));
    one_error(
        &with_line(&valid(), 12, "name = \"abcdefghijklm\""),
        12,
        "tunnel[0].name",
    );
    one_error(
        &with_line(&valid(), 12, "name = \"\""),
        12,
        "tunnel[0].name",
    );
    let e = one_error(
        &with_line(&valid(), 32, "name = \"siteb\""),
        32,
        "tunnel[1].name",
    );
    assert_eq!(
        e.kind,
        ErrorKind::DuplicateName {
            name: "siteb".into(),
            first_line: 12
        }
    );
}

#[test]
fn spis() {
    let e = one_error(
        &with_line(&valid(), 26, "outbound_spi = 255"),
        26,
        "tunnel[0].manual.outbound_spi",
    );
    assert_eq!(e.kind, ErrorKind::BadSpi { value: 255 });
    one_error(
        &with_line(&valid(), 26, "outbound_spi = 0x100000000"),
        26,
        "tunnel[0].manual.outbound_spi",
    );
    let e = one_error(
        &with_line(&valid(), 43, "inbound_spi = 0x2002"),
        43,
        "tunnel[1].manual.inbound_spi",
    );
    assert_eq!(
        e.kind,
        ErrorKind::DuplicateSpi {
            spi: 0x2002,
            other: "siteb".into()
        }
    );
}

#[test]
fn key_hex_and_length() {
    let bad = format!("outbound_key = \"0x11{}zz\"", "11".repeat(34));
    let e = one_error(
        &with_line(&valid(), 28, &bad),
        28,
        "tunnel[0].manual.outbound_key",
    );
    assert_eq!(
        e.kind,
        ErrorKind::BadHex {
            reason: HexProblem::NotHexDigit(73)
        }
    );
    let odd = format!("outbound_key = \"{}1\"", "11".repeat(36));
    let e = one_error(
        &with_line(&valid(), 28, &odd),
        28,
        "tunnel[0].manual.outbound_key",
    );
    assert_eq!(
        e.kind,
        ErrorKind::BadHex {
            reason: HexProblem::OddLength(73)
        }
    );
    let short = format!("outbound_key = \"{}\"", key("11", 16));
    let e = one_error(
        &with_line(&valid(), 28, &short),
        28,
        "tunnel[0].manual.outbound_key",
    );
    assert!(
        e.to_string()
            .contains("key is 16 bytes, aes256gcm16 needs 36 (32 key + 4 salt)"),
        "{e}"
    );
    let same = format!("inbound_key = \"{}\"", key("11", 36));
    let e = one_error(
        &with_line(&valid(), 29, &same),
        29,
        "tunnel[0].manual.inbound_key",
    );
    assert_eq!(e.kind, ErrorKind::SameKeys);
}

#[test]
fn key_file_and_inline_keys_are_exclusive_and_one_is_needed() {
    let e = one_error(
        &with_line(&valid(), 29, "key_file = \"keys/sitec.toml\""),
        29,
        "tunnel[0].manual.key_file",
    );
    assert_eq!(e.kind, ErrorKind::KeyFileAndInline);
    let e = one_error(
        &with_line(&valid(), 29, ""),
        23,
        "tunnel[0].manual.inbound_key",
    );
    assert_eq!(e.kind, ErrorKind::MissingKey { key: "inbound_key" });
}

#[test]
fn tunnel_without_keys_is_refused() {
    let text: String = valid().lines().take(21).map(|l| format!("{l}\n")).collect();
    let e = one_error(&text, 11, "tunnel[0].manual");
    assert_eq!(e.kind, ErrorKind::NoManual);
    assert!(
        e.to_string()
            .contains("set psk_file (IKE), or add [tunnel.manual]")
    );
}

#[test]
fn mtu_mss_and_encap() {
    let e = one_error(&with_line(&valid(), 18, "mtu = 1200"), 18, "tunnel[0].mtu");
    assert!(matches!(
        e.kind,
        ErrorKind::MtuTooSmallForIpv6 { mtu: 1200, .. }
    ));
    // Still checked when another inside address is wrong.
    let text = with_line(&valid(), 18, "mtu = 1200");
    let text = with_line(
        &text,
        16,
        "inside = [\"169.254.10.0/30\", \"fd00:10::1/126\"]",
    );
    let errs = errors_of(&text);
    let got: Vec<(usize, &str)> = errs.iter().map(|e| (e.line, e.path.as_str())).collect();
    assert_eq!(
        got,
        [(16, "tunnel[0].inside[0]"), (18, "tunnel[0].mtu")],
        "{errs}"
    );
    let e = one_error(
        &with_line(&valid(), 19, "mss_clamp = 1380"),
        19,
        "tunnel[0].mss_clamp",
    );
    assert_eq!(
        e.kind,
        ErrorKind::MssAboveMtu {
            mss: 1380,
            mtu: 1400
        }
    );
    one_error(
        &with_line(&valid(), 19, "mss_clamp = \"on\""),
        19,
        "tunnel[0].mss_clamp",
    );
    let e = one_error(
        &with_line(&valid(), 15, "encap = \"tcp\""),
        15,
        "tunnel[0].encap",
    );
    assert!(e.to_string().ends_with("(expected one of udp, esp)"), "{e}");
    // encap = "esp" with nat_keepalive set is accepted and ignored.
    let files = files();
    let text = with_line(&valid(), 34, "encap = \"esp\"\nnat_keepalive = 30");
    let cfg = parse(Path::new(SRC), &text, &ctx(&files)).unwrap();
    assert_eq!(cfg.tunnels[1].nat_keepalive, None);
}

#[test]
fn secrets_files_must_be_private() {
    // A key file readable by others: the error points at key_file and says how to fix it.
    let mut f = files();
    f.insert(
        KEY_FILE,
        FileMeta {
            mode: 0o644,
            uid: EUID,
        },
        key_file_text().as_bytes(),
    );
    let errs = errors_with(&valid(), &f);
    assert_eq!(errs.len(), 1, "{errs}");
    let e = &errs.errors[0];
    assert_eq!((e.line, e.path.as_str()), (44, "tunnel[1].manual.key_file"));
    assert!(
        e.to_string().ends_with(&format!("(chmod 600 {KEY_FILE})")),
        "{e}"
    );

    // Owned by someone else.
    f.insert(
        KEY_FILE,
        FileMeta {
            mode: 0o600,
            uid: 4242,
        },
        key_file_text().as_bytes(),
    );
    let errs = errors_with(&valid(), &f);
    assert!(matches!(
        errs.errors[0].kind,
        ErrorKind::WrongOwner { uid: 4242, .. }
    ));
    // Root checking it (an admin running `bridgehead check` on the service user's files) may
    // read any owner's 0600 file.
    let root = LoadCtx {
        online_cores: 4,
        euid: 0,
        files: &f,
    };
    assert!(parse(Path::new(SRC), &valid(), &root).is_ok());
    // Root may own it.
    f.insert(
        KEY_FILE,
        FileMeta {
            mode: 0o400,
            uid: 0,
        },
        key_file_text().as_bytes(),
    );
    assert!(parse(Path::new(SRC), &valid(), &ctx(&f)).is_ok());

    // The configuration itself, when it holds inline keys.
    f.insert(
        SRC,
        FileMeta {
            mode: 0o640,
            uid: EUID,
        },
        b"",
    );
    let errs = errors_with(&valid(), &f);
    assert_eq!(errs.len(), 1, "{errs}");
    let e = &errs.errors[0];
    assert_eq!(
        (e.line, e.path.as_str()),
        (28, "tunnel[0].manual.outbound_key")
    );
    assert!(
        e.to_string().ends_with(&format!("(chmod 600 {SRC})")),
        "{e}"
    );
    // ... but a configuration without inline keys may be world-readable.
    let text: String = valid()
        .lines()
        .enumerate()
        .filter(|(i, _)| *i < 10 || *i >= 30)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    assert!(parse(Path::new(SRC), &text, &ctx(&f)).is_ok());
}

#[test]
fn key_file_problems() {
    let mut f = files();
    f.insert(
        KEY_FILE,
        OWNER_ONLY,
        format!(
            "outbound_key = \"{}\"\ninbound_key = \"0x1234\"\n",
            key("33", 48)
        )
        .as_bytes(),
    );
    let errs = errors_with(&valid(), &f);
    assert_eq!(errs.len(), 1, "{errs}");
    let e = &errs.errors[0];
    assert_eq!(e.file, Path::new(KEY_FILE));
    assert_eq!((e.line, e.path.as_str()), (2, "inbound_key"));
    assert!(
        e.to_string().contains(
            "key is 2 bytes, aes128-sha256 needs 48 (16 encryption key + 32 integrity key)"
        ),
        "{e}"
    );

    let empty = MemFiles::new();
    let mut f = empty;
    f.insert(SRC, OWNER_ONLY, b"");
    let errs = errors_with(&valid(), &f);
    assert_eq!(errs.len(), 1, "{errs}");
    assert!(matches!(errs.errors[0].kind, ErrorKind::KeyFileIo { .. }));
    assert_eq!(errs.errors[0].line, 44);
}

#[test]
fn five_mistakes_give_five_errors_in_line_order() {
    let mut text = valid();
    text = with_line(&text, 3, "public_ip = \"nope\"");
    text = with_line(&text, 8, "socket_buffer = 10");
    text = with_line(&text, 21, "replay_windw = 1024");
    text = with_line(&text, 24, "suite = \"aes256\"");
    text = with_line(&text, 36, "routes = [\"10.3.0.1/16\"]");
    let errs = errors_of(&text);
    let got: Vec<(usize, &str)> = errs.iter().map(|e| (e.line, e.path.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (3, "appliance.public_ip"),
            (8, "dataplane.socket_buffer"),
            (21, "tunnel[0].replay_windw"),
            (24, "tunnel[0].manual.suite"),
            (36, "tunnel[1].routes[0]"),
        ],
        "{errs}"
    );
    assert_eq!(errs.to_string().lines().count(), 5);
}

#[test]
fn no_key_bytes_in_debug_or_errors() {
    let files = files();
    let cfg = parse(Path::new(SRC), &valid(), &ctx(&files)).unwrap();
    let dbg = format!("{cfg:?}");
    assert!(dbg.contains("<redacted>"), "{dbg}");
    for needle in [
        "17, 17", "34, 34", "51, 51", "68, 68", "1111", "2222", "0x11", "[17", "[34",
    ] {
        assert!(!dbg.contains(needle), "{needle} in {dbg}");
    }
    // A key with one bad digit: the message names the position, never the text.
    let bad = format!("outbound_key = \"{}zz\"", "ab".repeat(35));
    let errs = errors_of(&with_line(&valid(), 28, &bad));
    assert!(!errs.to_string().contains("abab"), "{errs}");
    assert!(!format!("{errs:?}").contains("abab"));
    // A syntax error on a key line quotes the parser's message, not the line.
    let unterminated = format!("outbound_key = \"{}", "ab".repeat(36));
    let errs = errors_of(&with_line(&valid(), 28, &unterminated));
    assert!(
        matches!(errs.errors[0].kind, ErrorKind::Syntax { .. }),
        "{errs}"
    );
    assert_eq!(errs.errors[0].line, 28);
    assert!(!errs.to_string().contains("abab"), "{errs}");
}

#[test]
fn dotted_keys_and_inline_tables_work_like_sections() {
    let text = String::from(
        "[[tunnel]]\nname = \"x\"\npeer = \"192.0.2.1\"\nmanual.suite = \"aes128gcm16\"\n\
         manual.outbound_spi = 256\nmanual = { inbound_spi = 257 }\n",
    );
    // A table may not be both dotted and inline: that is TOML's rule, a syntax error.
    assert!(matches!(
        errors_of(&text).errors[0].kind,
        ErrorKind::Syntax { .. }
    ));
    let text = format!(
        "[[tunnel]]\nname = \"x\"\npeer = \"192.0.2.1\"\nmanual.suite = \"aes128gcm16\"\n\
         manual.outbound_spi = 256\nmanual.inbound_spi = 257\nmanual.outbound_key = \"{}\"\n\
         manual.inbound_key = \"{}\"\nmanual.esm = true\n",
        key("01", 20),
        key("02", 20)
    );
    // The implicit `manual` table has no span of its own: errors in it still get their line.
    let e = one_error(&text, 9, "tunnel[0].manual.esm");
    assert!(e.to_string().contains("did you mean `esn`?"), "{e}");
    let files = files();
    let text = text.replace("manual.esm = true\n", "");
    let cfg = parse(Path::new(SRC), &text, &ctx(&files)).unwrap();
    assert_eq!(cfg.tunnels[0].manual.as_ref().unwrap().inbound.spi, 257);
    assert_eq!(cfg.tunnels[0].device_name(), "bh-x");
}

/// A small deterministic generator for the mutation test.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn random_mutations_never_panic() {
    let files = files();
    let base = valid().into_bytes();
    let pieces: &[&[u8]] = &[
        b"\"",
        b"[",
        b"]",
        b"[[",
        b"=",
        b"\n",
        b"0x",
        b"/",
        b".",
        b"-",
        b"9999999999999999999",
        b"-1",
        b"{",
        b"}",
        b",",
        b"'",
        b"\"\"\"",
        b"#",
        b"\\",
        b"\xc3\xa9",
        b"manual.",
        b"::",
        b"1979-05-27T07:32:00Z",
        b"inf",
        b"nan",
        b"true",
        b" ",
        b"tunnel",
        b"/0",
        b"/128",
    ];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut rejected = 0;
    for _ in 0..5000 {
        let mut text = base.clone();
        for _ in 0..=rng.below(3) {
            let at = rng.below(text.len() + 1);
            match rng.below(4) {
                0 => {
                    let end = (at + rng.below(8)).min(text.len());
                    text.drain(at..end);
                }
                1 => {
                    let p = pieces[rng.below(pieces.len())];
                    text.splice(at..at, p.iter().copied());
                }
                2 => {
                    if let Some(b) = text.get_mut(at) {
                        let alphabet = b" 0123456789abcdefxyz=\"[].,/:-_";
                        *b = alphabet[rng.below(alphabet.len())];
                    }
                }
                _ => {
                    let end = (at + rng.below(40)).min(text.len());
                    let copy: Vec<u8> = text[at..end].to_vec();
                    let to = rng.below(text.len() + 1);
                    text.splice(to..to, copy);
                }
            }
        }
        let Ok(text) = String::from_utf8(text) else {
            continue;
        };
        if let Err(errs) = parse(Path::new(SRC), &text, &ctx(&files)) {
            rejected += 1;
            assert!(!errs.is_empty(), "rejected without an error:\n{text}");
            let lines = text.lines().count() + 1;
            for e in &errs {
                assert!(e.line >= 1 && e.line <= lines, "{e} in\n{text}");
                assert!(e.column >= 1);
                assert!(!e.to_string().is_empty());
            }
        }
    }
    assert!(
        rejected > 1000,
        "mutations should mostly be caught: {rejected}"
    );
}

#[test]
fn load_from_disk_refuses_a_world_readable_key_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bridgehead.toml");
    let keys = dir.path().join("sitec.toml");
    // The configuration without inline keys (lines 11..=30 hold the inline-key tunnel).
    let text: String = valid()
        .lines()
        .enumerate()
        .filter(|(i, _)| *i < 10 || *i >= 30)
        .map(|(_, l)| l.replace("keys/sitec.toml", "sitec.toml") + "\n")
        .collect();
    std::fs::write(&conf, text).unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&keys, key_file_text()).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).unwrap();

    let errs = bh_config::load(&conf).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs}");
    let e = &errs.errors[0];
    assert_eq!(e.file, conf);
    assert_eq!((e.line, e.path.as_str()), (24, "tunnel[0].manual.key_file"));
    assert!(
        matches!(e.kind, ErrorKind::InsecureMode { mode: 0o644, .. }),
        "{e}"
    );
    assert!(
        e.to_string()
            .ends_with(&format!("(chmod 600 {})", keys.display())),
        "{e}"
    );

    // After the fix the same files load, with the keys from the key file.
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = bh_config::load(&conf).unwrap();
    let m = cfg.tunnels[0].manual.as_ref().unwrap();
    assert_eq!(m.outbound.key.as_slice(), &[0x33; 48][..]);
    assert_eq!(cfg.source, conf);
}

#[test]
fn load_reports_a_missing_file() {
    let errs = bh_config::load(Path::new("/nonexistent/bridgehead.toml")).unwrap_err();
    assert_eq!(errs.len(), 1);
    let shown = errs.to_string();
    assert!(
        shown.starts_with("/nonexistent/bridgehead.toml: cannot read file:"),
        "{shown}"
    );
}
