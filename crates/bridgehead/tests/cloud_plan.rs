//! `bridgehead plan`: golden command text per cloud, keys only as variables, and the
//! configurations a cloud cannot take refused with the tunnel named.

use std::path::Path;

use bh_config::{FileMeta, LoadCtx, MemFiles};
use bridgehead::cloud::{Cloud, CloudError, PlanOptions, plan};

const SECRET: &[u8] = b"TestOnlyKey.0123456789abcdef";

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cloud")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn run(cloud: Cloud, text: &str) -> Result<String, CloudError> {
    let mut files = MemFiles::new();
    let meta = FileMeta {
        mode: 0o600,
        uid: 0,
    };
    for n in ["aws0", "aws1", "azure", "gcp0", "gcp1"] {
        files.insert(format!("/etc/bridgehead/psk/{n}"), meta, SECRET);
    }
    let ctx = LoadCtx {
        online_cores: 1,
        euid: 0,
        files: &files,
    };
    let src = Path::new("/etc/bridgehead/bridgehead.toml");
    let cfg = bh_config::parse(src, text, &ctx).unwrap_or_else(|e| panic!("{e}"));
    plan(cloud, &cfg, text, &PlanOptions::default())
}

fn golden(cloud: Cloud, config: &str, expected: &str) {
    let out = run(cloud, &fixture(config)).unwrap();
    assert!(
        !out.contains(std::str::from_utf8(SECRET).unwrap()),
        "the key was printed"
    );
    let want = fixture(expected);
    if out != want {
        panic!("plan differs from {expected}:\n--- got ---\n{out}--- want ---\n{want}");
    }
}

#[test]
fn aws_plan_matches_golden() {
    golden(Cloud::Aws, "plan-aws.toml", "plan-aws.expected");
}

#[test]
fn azure_plan_matches_golden() {
    golden(Cloud::Azure, "plan-azure.toml", "plan-azure.expected");
}

#[test]
fn gcp_plan_matches_golden() {
    golden(Cloud::Gcp, "plan-gcp.toml", "plan-gcp.expected");
}

#[test]
fn aws_refuses_our_inside_address_on_the_first_host() {
    let text = fixture("plan-aws.toml").replace("169.254.44.162/30", "169.254.44.161/30");
    let text = text.replace(
        "address = \"169.254.44.161\"",
        "address = \"169.254.44.162\"",
    );
    let e = run(Cloud::Aws, &text).unwrap_err().to_string();
    assert!(
        e.starts_with("tunnel aws0:") && e.contains("use 169.254.44.162/30"),
        "{e}"
    );
}

#[test]
fn aws_refuses_a_reserved_inside_cidr() {
    let text = fixture("plan-aws.toml")
        .replace("169.254.44.162/30", "169.254.3.2/30")
        .replace("169.254.44.161", "169.254.3.1");
    let e = run(Cloud::Aws, &text).unwrap_err().to_string();
    assert!(e.contains("aws0") && e.contains("169.254.3.0/30"), "{e}");
}

#[test]
fn azure_plan_one_tunnel_says_instance_1_stays_down() {
    let text = fixture("plan-azure.toml");
    // Keep only the first tunnel and its neighbor.
    let start = text.find("[[tunnel]]\nname = \"azure1\"").unwrap();
    let end = text.find("[bgp]").unwrap();
    let mut one = format!("{}{}", &text[..start], &text[end..]);
    let n1 = one
        .find("[[bgp.neighbor]]\naddress = \"169.254.22.1\"")
        .unwrap();
    one.truncate(n1);
    let out = run(Cloud::Azure, &one).unwrap();
    assert!(out.contains("instance 1 also connects"), "{out}");
    assert!(out.contains("not connected"), "{out}");
}

#[test]
fn azure_refuses_addresses_outside_the_apipa_range() {
    let text = fixture("plan-azure.toml")
        .replace("169.254.21.2/30", "169.254.30.2/30")
        .replace("169.254.21.1", "169.254.30.1");
    let e = run(Cloud::Azure, &text).unwrap_err().to_string();
    assert!(
        e.contains("azure0") && e.contains("169.254.21.0-169.254.22.255"),
        "{e}"
    );
}

#[test]
fn gcp_refuses_no_pfs() {
    let text = fixture("plan-gcp.toml").replacen("pfs = \"modp2048\"", "pfs = \"none\"", 1);
    let e = run(Cloud::Gcp, &text).unwrap_err().to_string();
    assert!(e.contains("gcp0") && e.contains("PFS"), "{e}");
}

#[test]
fn no_tunnel_for_the_cloud_lists_the_tunnels() {
    let e = run(Cloud::Gcp, &fixture("plan-aws.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("aws0, aws1") && e.contains("--tunnel"), "{e}");
}

/// The AWS plan runs under `sh` (stub `aws`), and the --options it passes is JSON with each
/// tunnel's key taken from its variable.
#[test]
fn aws_plan_runs_in_sh_and_passes_valid_json() {
    let script = run(Cloud::Aws, &fixture("plan-aws.toml"))
        .unwrap()
        .replace("cat /etc/bridgehead/psk/aws0", "echo Key.Zero")
        .replace("cat /etc/bridgehead/psk/aws1", "echo Key.One");
    let full = format!(
        "aws() {{ for a in \"$@\"; do printf '%s\\n' \"$a\"; done; }}\nVGW_ID=vgw-1\n{script}\nprintf '%s' \"$VPN_ID_1\""
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&full)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let json = &text[text.find('{').unwrap()..];
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let t = v["TunnelOptions"].as_array().unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0]["PreSharedKey"], "Key.Zero");
    assert_eq!(t[1]["PreSharedKey"], "Key.One");
    assert_eq!(t[1]["TunnelInsideCidr"], "169.254.45.84/30");
    assert_eq!(t[0]["Phase2DHGroupNumbers"][0]["Value"], 19);
    assert_eq!(v["StaticRoutesOnly"], false);
    assert!(text.contains("--vpn-gateway-id\nvgw-1\n"));
}

#[test]
fn azure_plan_notes_different_keys_without_printing_them() {
    let mut files = MemFiles::new();
    let meta = FileMeta {
        mode: 0o600,
        uid: 0,
    };
    files.insert("/etc/bridgehead/psk/azure", meta, SECRET);
    files.insert(
        "/etc/bridgehead/psk/azure1",
        meta,
        b"OtherTestKey.0123456789",
    );
    let ctx = LoadCtx {
        online_cores: 1,
        euid: 0,
        files: &files,
    };
    let text = fixture("plan-azure.toml");
    // Point azure1 (the second psk_file line) at the other key.
    let second = text.rfind("psk_file = \"psk/azure\"").unwrap();
    let text = format!(
        "{}psk_file = \"psk/azure1\"{}",
        &text[..second],
        &text[second + "psk_file = \"psk/azure\"".len()..]
    );
    let src = Path::new("/etc/bridgehead/bridgehead.toml");
    let cfg = bh_config::parse(src, &text, &ctx).unwrap_or_else(|e| panic!("{e}"));
    let out = plan(Cloud::Azure, &cfg, &text, &PlanOptions::default()).unwrap();
    assert!(
        out.contains("tunnel azure1: its key differs from azure0's"),
        "{out}"
    );
    assert!(!out.contains("OtherTestKey") && !out.contains("TestOnlyKey"));
}

/// The Azure plan runs under `sh` (stub `az`), and the connection's custom BGP list it sets is
/// JSON naming each instance's IP configuration and APIPA address.
#[test]
fn azure_plan_runs_in_sh_and_sets_valid_json() {
    let script = run(Cloud::Azure, &fixture("plan-azure.toml"))
        .unwrap()
        .replace("cat /etc/bridgehead/psk/azure", "echo Key.Azure");
    let full = format!(
        "az() {{ if [ \"$3\" = show ]; then echo \"/ipConfigurations/$(echo \"$9\" | tr -dc 0-9)\"; \
         else for a in \"$@\"; do printf '%s\\n' \"$a\"; done; fi; }}\nRG=rg\nVNG=vng\n{script}"
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&full)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let set = text
        .lines()
        .find_map(|l| l.strip_prefix("gatewayCustomBgpIpAddresses="))
        .unwrap_or_else(|| panic!("{text}"));
    let v: serde_json::Value = serde_json::from_str(set).unwrap();
    assert_eq!(v[0]["ipConfigurationId"], "/ipConfigurations/0");
    assert_eq!(v[0]["customBgpIpAddress"], "169.254.21.1");
    assert_eq!(v[1]["ipConfigurationId"], "/ipConfigurations/1");
    assert_eq!(v[1]["customBgpIpAddress"], "169.254.22.1");
    assert!(text.contains("--shared-key\nKey.Azure\n"), "{text}");
}
