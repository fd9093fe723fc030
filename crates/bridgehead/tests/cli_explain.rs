//! `bridgehead check --explain [--json]` end to end: the real binary on a fixture with one
//! tunnel per cloud (two to one active-active Azure gateway), checked for what a user reads:
//! the effective values, where each came from (preset, file line, default), why, what stays
//! down by design, and that no key is ever printed.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const KEYS: &[(&str, &str)] = &[
    ("aws0", "Aws_Generated.Key_0123456789"),
    ("azure0", "Azure+Key/0123456789="),
    ("gcp0", "Gcp+Key/0123456789-any="),
];

fn fixture_text() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/explain/clouds.toml"),
    )
    .unwrap()
}

/// The fixture (optionally edited) and its key files (mode 0600) in a fresh directory.
fn setup(tag: &str, text: &str) -> (Scratch, PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    let dir =
        Scratch(std::env::temp_dir().join(format!("bh-explain-{tag}-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(dir.0.join("psk")).unwrap();
    for (name, key) in KEYS {
        let p = dir.0.join("psk").join(name);
        std::fs::write(&p, format!("{key}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let conf = dir.0.join("clouds.toml");
    std::fs::write(&conf, text).unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).unwrap();
    (dir, conf)
}

fn bridgehead(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bridgehead"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn line_of(text: &str, from: &str, needle: &str) -> usize {
    let start = text.find(from).unwrap();
    text[..start].lines().count()
        + text[start..]
            .lines()
            .position(|l| l.contains(needle))
            .unwrap()
        + 1
}

/// The lines of the block that starts with `head`, up to the next blank line.
fn block<'a>(out: &'a str, head: &str) -> Vec<&'a str> {
    out.lines()
        .skip_while(|l| !l.starts_with(head))
        .take_while(|l| !l.is_empty())
        .collect()
}

/// A block's text as single-spaced words, so a wrapped sentence reads whole.
fn words(block: &[&str]) -> String {
    block
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn row<'a>(block: &[&'a str], key: &str) -> &'a str {
    block
        .iter()
        .find(|l| l.trim_start().starts_with(&format!("{key} ")))
        .unwrap_or_else(|| panic!("no {key} in {block:#?}"))
}

#[test]
fn text_shows_values_origins_reasons_and_down_tunnels_in_80_columns() {
    let text = fixture_text();
    let (_dir, conf) = setup("text", &text);
    let (code, out, err) = bridgehead(&["check", "-c", conf.to_str().unwrap(), "--explain"]);
    assert_eq!(code, Some(0), "{err}");
    for l in out.lines() {
        assert!(l.chars().count() <= 80, "over 80 columns: {l:?}");
    }
    for (_, key) in KEYS {
        assert!(
            !out.contains(key) && !err.contains(key),
            "a key was printed"
        );
    }

    // Azure: the default policy's MODP-1024 proposals, from the preset, and why.
    let az = block(&out, "tunnel azure0 ");
    let proposals = row(&az, "ike.proposals");
    assert!(proposals.contains("aes256-sha1-modp1024"), "{proposals}");
    assert!(proposals.ends_with("preset azure"), "{proposals}");
    assert!(row(&az, "ike.pfs").contains("none"));
    let why = words(&az);
    assert!(
        why.contains("Azure default policy accepts only MODP-1024 (DH group 2) unless a custom IPsec policy is set [§2.1"),
        "{why}"
    );
    // The override in the file, with its line.
    let child = row(&az, "ike.child_lifetime");
    let line = line_of(&text, "name = \"azure0\"", "child_lifetime");
    assert!(child.contains("3000 s"), "{child}");
    assert!(
        child.ends_with(&format!("set in file line {line}")),
        "{child}"
    );
    assert!(row(&az, "ike.ike_lifetime").ends_with("preset azure"));
    assert!(row(&az, "replay_window").ends_with("default"));
    let mtu = row(&az, "mtu");
    assert!(
        mtu.contains("1400") && mtu.ends_with("preset azure"),
        "{mtu}"
    );

    // AWS: MTU per cipher in UDP, the inside /30 convention, lifetimes below AWS's.
    let aws = block(&out, "tunnel aws0 ");
    assert!(row(&aws, "mtu").contains("1422"));
    assert!(row(&aws, "mss_clamp").contains("1379"));
    let why = words(&aws);
    assert!(
        why.contains("AWS takes .1 of the inside /30, the customer .2"),
        "{why}"
    );
    assert!(why.contains("so bridgehead drives"), "{why}");

    // GCP: a neighbor value set in the file wins over the preset, and the reason says so.
    let gcp = block(&out, "BGP neighbor 169.254.7.1");
    let hold = row(&gcp, "hold_time");
    let line = line_of(&text, "address = \"169.254.7.1\"", "hold_time");
    assert!(hold.contains("30 s") && hold.ends_with(&format!("set in file line {line}")));
    assert!(words(&gcp).contains("(overridden in the file)"));
    // Azure's BGP: bridgehead initiates, and no max_prefix is a warning.
    let azn = block(&out, "BGP neighbor 169.254.21.1");
    assert!(row(&azn, "passive").ends_with("preset azure"));
    let all = words(&azn);
    assert!(all.contains("Azure never opens BGP towards an APIPA peer, so bridgehead initiates"));
    assert!(all.contains("! no max_prefix"), "{all}");

    // The second Azure tunnel's BGP stays down by design.
    let down = block(&out, "Down by design");
    assert!(
        down.iter().any(|l| l.contains("tunnel azure1"))
            && words(&down).contains("stays down by design"),
        "{down:#?}"
    );
    // PSK alphabet warnings: the GCP key breaks AWS's and Azure's rules.
    let g = block(&out, "tunnel gcp0 ").join(" ");
    assert!(g.contains("psk: aws would refuse this key") && g.contains("psk: azure would refuse"));
}

fn setting<'a>(item: &'a Value, key: &str) -> &'a Value {
    item["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key)
        .unwrap_or_else(|| panic!("no {key}"))
}

#[test]
fn json_carries_the_same_facts() {
    let text = fixture_text();
    let (_dir, conf) = setup("json", &text);
    let (code, out, err) =
        bridgehead(&["check", "-c", conf.to_str().unwrap(), "--explain", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let tunnels = v["tunnels"].as_array().unwrap();
    let names: Vec<&str> = tunnels.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["aws0", "azure0", "azure1", "gcp0"]);
    let az = &tunnels[1];
    assert_eq!(az["cloud"], "azure");
    let p = setting(az, "ike.proposals");
    assert!(
        p["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w.as_str().unwrap().ends_with("modp1024")),
        "{p}"
    );
    assert_eq!(p["origin"]["from"], "preset");
    assert_eq!(p["origin"]["cloud"], "azure");
    assert_eq!(p["origin"]["source"], "§2.1");
    let c = setting(az, "ike.child_lifetime");
    assert_eq!(c["value"], "3000 s");
    assert_eq!(c["origin"]["from"], "file");
    assert_eq!(
        c["origin"]["line"],
        line_of(&text, "name = \"azure0\"", "child_lifetime")
    );
    assert_eq!(setting(az, "replay_window")["origin"]["from"], "default");
    assert!(az["reasons"].as_array().unwrap().iter().any(|r| {
        r["text"]
            .as_str()
            .unwrap()
            .contains("only MODP-1024 (DH group 2)")
            && r["source"].as_str().unwrap().starts_with("§2.1")
    }));
    let down = v["down_by_design"].as_array().unwrap();
    assert_eq!(down.len(), 1, "{down:?}");
    assert!(down[0].as_str().unwrap().starts_with("tunnel azure1:"));
    let n = &v["neighbors"][1];
    assert_eq!(n["address"], "169.254.21.1");
    assert_eq!(setting(n, "hold_time")["value"], "180 s");
    assert_eq!(setting(n, "passive")["origin"]["cloud"], "azure");
    for (_, key) in KEYS {
        assert!(!out.contains(key), "a key was printed");
    }
}

#[test]
fn explain_of_a_broken_file_prints_the_errors_and_json_needs_explain() {
    // An AWS inside address that is AWS's end, not ours.
    let text = fixture_text().replace("169.254.10.2/30", "169.254.10.1/30");
    let (_dir, conf) = setup("broken", &text);
    let (code, out, err) = bridgehead(&["check", "-c", conf.to_str().unwrap(), "--explain"]);
    assert_eq!(code, Some(2));
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("tunnel[0].inside[0]") && err.contains("use 169.254.10.2/30"),
        "{err}"
    );
    let (code, _, err) = bridgehead(&["check", "-c", conf.to_str().unwrap(), "--json"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("--explain"), "{err}");
}

#[test]
fn a_tunnel_without_cloud_shows_defaults_and_the_derived_mtu() {
    let text = "[[tunnel]]\nname = \"m0\"\npeer = \"198.51.100.1\"\nencap = \"esp\"\n\n\
                [tunnel.manual]\nsuite = \"aes128-sha256\"\noutbound_spi = 0x1001\n\
                inbound_spi = 0x2002\n\
                outbound_key = \"0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f\"\n\
                inbound_key = \"0x100102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f\"\n";
    let (_dir, conf) = setup("manual", text);
    let (code, out, err) = bridgehead(&["check", "-c", conf.to_str().unwrap(), "--explain"]);
    assert_eq!(code, Some(0), "{err}");
    let t = block(&out, "tunnel m0 ");
    assert!(
        t[0].contains("no cloud preset") && t[0].contains("manual keys"),
        "{t:#?}"
    );
    let suite = row(&t, "manual.suite");
    assert!(suite.contains("aes128-sha256") && suite.ends_with("set in file line 7"));
    let mtu = row(&t, "mtu");
    assert!(
        mtu.contains("(derived)") && mtu.ends_with("default"),
        "{mtu}"
    );
    assert!(words(&t).contains("over raw ESP, what fits a 1500-byte underlay"));
    assert!(!out.contains("0x0001020304") && !out.contains("why:\n  - AWS"));
}
