//! `bridgehead import`: cloud CLI output in, a configuration that the config crate accepts out,
//! keys only in 0600 files.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use bh_config::{LoadCtx, MssClamp};
use bridgehead::cloud::{self, CloudError, aws, azure, gcp};

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cloud")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("bh-cloud-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn validate(out: &Path) -> bh_config::Config {
    let text = std::fs::read_to_string(out).unwrap();
    match bh_config::parse(out, &text, &LoadCtx::system()) {
        Ok(c) => c,
        Err(e) => panic!("the imported file does not validate:\n{e}\n---\n{text}"),
    }
}

#[test]
fn aws_import_writes_a_valid_config_and_0600_keys() {
    let dir = Scratch::new("aws");
    let imp = aws::import(&fixture("aws-vpn-connection.xml")).unwrap();
    let out = dir.0.join("site.toml");
    let w = cloud::write_import(&imp, &out).unwrap();
    assert_eq!(w.psk_files.len(), 2);
    assert!(w.psk_to_fill.is_empty());

    let toml = std::fs::read_to_string(&out).unwrap();
    assert!(!toml.contains("EXAMPLEkey"), "a key leaked into the TOML");
    for (f, key) in w.psk_files.iter().zip([
        "EXAMPLEkeyOne.not_a_real_secret1",
        "EXAMPLEkeyTwo.not_a_real_secret2",
    ]) {
        let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
        assert_eq!(std::fs::read_to_string(f).unwrap(), format!("{key}\n"));
    }
    assert_eq!(w.psk_files[0], dir.0.join("site.aws0.psk"));

    let cfg = validate(&out);
    assert_eq!(cfg.appliance.public_ip, Some(ip("203.0.113.10")));
    assert_eq!(cfg.tunnels.len(), 2);
    let t0 = &cfg.tunnels[0];
    // Imported tunnels carry their cloud, so its presets and checks apply.
    assert!(
        cfg.tunnels
            .iter()
            .all(|t| t.cloud == Some(bh_config::Cloud::Aws)),
        "every imported AWS tunnel has cloud = \"aws\""
    );
    assert_eq!(t0.name, "aws0");
    assert_eq!(t0.peer, ip("198.51.100.11"));
    assert_eq!(t0.inside[0].to_string(), "169.254.44.162/30");
    assert_eq!(t0.mss_clamp, MssClamp::Fixed(1379));
    let ike = t0.ike.as_ref().unwrap();
    assert_eq!(&ike.psk[..], b"EXAMPLEkeyOne.not_a_real_secret1");
    let st = &ike.settings;
    assert_eq!(
        st.proposals,
        vec![
            bh_config::ike::parse_proposal(
                "aes128-sha1-modp1024",
                bh_config::ike::ProposalKind::Ike
            )
            .unwrap()
        ]
    );
    assert_eq!(
        st.esp_proposals,
        vec![
            bh_config::ike::parse_proposal("aes128-sha1", bh_config::ike::ProposalKind::Esp)
                .unwrap()
        ]
    );
    assert_eq!(st.pfs, Some(bh_crypto::dh::DhGroup::Modp1024));
    assert!(st.initiate);
    assert!(st.ike_lifetime.as_secs() < 28_800);
    assert!(st.child_lifetime.as_secs() < 3_600);
    assert_eq!(st.dpd_interval.map(|d| d.as_secs()), Some(10));
    assert_eq!(st.dpd_timeout.as_secs(), 30);
    assert_eq!(cfg.tunnels[1].inside[0].to_string(), "169.254.45.86/30");

    let bgp = cfg.bgp.as_ref().unwrap();
    assert_eq!(bgp.asn, 65010);
    assert_eq!(bgp.neighbors.len(), 2);
    assert_eq!(bgp.neighbors[0].address, ip("169.254.44.161"));
    assert_eq!(bgp.neighbors[0].asn, 64512);
    assert_eq!(bgp.neighbors[0].hold_time, 30);
    assert_eq!(bgp.neighbors[0].tunnel.as_deref(), Some("aws0"));
    assert_eq!(bgp.neighbors[1].address, ip("169.254.45.85"));
}

#[test]
fn aws_import_over_an_existing_key_file_tightens_it() {
    let dir = Scratch::new("awsmode");
    let out = dir.0.join("site.toml");
    let old = dir.0.join("site.aws0.psk");
    std::fs::write(&old, "old").unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
    let imp = aws::import(&fixture("aws-vpn-connection.xml")).unwrap();
    cloud::write_import(&imp, &out).unwrap();
    assert_eq!(
        std::fs::metadata(&old).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read_to_string(&old).unwrap(),
        "EXAMPLEkeyOne.not_a_real_secret1\n"
    );
}

#[test]
fn aws_hostile_input_names_the_element() {
    let good = fixture("aws-vpn-connection.xml");
    // Cut in the middle: a parse error, not a panic.
    let cut = &good[..good.len() / 2];
    assert!(matches!(aws::import(cut), Err(CloudError::Xml(_))));

    let no_key = good.replacen(
        "<pre_shared_key>EXAMPLEkeyOne.not_a_real_secret1</pre_shared_key>",
        "",
        1,
    );
    let e = aws::import(&no_key).unwrap_err().to_string();
    assert_eq!(e, "ipsec_tunnel[0]/ike: missing <pre_shared_key>");

    let bad_ip = good.replacen("198.51.100.11", "198.51.100.999", 1);
    let e = aws::import(&bad_ip).unwrap_err().to_string();
    assert!(
        e.contains("ipsec_tunnel[0]/vpn_gateway") && e.contains("ip_address"),
        "{e}"
    );

    let bad_group = good.replacen(
        "<perfect_forward_secrecy>group2</perfect_forward_secrecy>",
        "<perfect_forward_secrecy>group5</perfect_forward_secrecy>",
        1,
    );
    let e = aws::import(&bad_group).unwrap_err().to_string();
    assert!(
        e.contains("perfect_forward_secrecy") && e.contains("group5"),
        "{e}"
    );

    let wrong_peer = good.replacen("169.254.44.161", "169.254.44.165", 1);
    let e = aws::import(&wrong_peer).unwrap_err().to_string();
    assert!(e.contains("tunnel_inside_address"), "{e}");

    // Deep nesting and entity tricks are refused without a panic.
    let deep = format!("{}{}", "<a>".repeat(5000), "</a>".repeat(5000));
    assert!(aws::import(&deep).is_err());
    let bomb = "<!DOCTYPE v [<!ENTITY a \"xxxxxxxx\"><!ENTITY b \"&a;&a;&a;&a;\">]><vpn_connection>&b;</vpn_connection>";
    assert!(matches!(aws::import(bomb), Err(CloudError::Xml(_))));
    // The key never appears in an error.
    let short = good.replacen("EXAMPLEkeyOne.not_a_real_secret1", "abc", 1);
    let e = aws::import(&short).unwrap_err().to_string();
    assert!(e.contains("pre_shared_key") && !e.contains("abc"), "{e}");
}

fn fill_psks(w: &cloud::Written) {
    for p in &w.psk_to_fill {
        std::fs::write(p, "FilledByTheTest.0123456789\n").unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[test]
fn azure_import_active_active_apipa() {
    let dir = Scratch::new("azure");
    let imp = azure::import(
        &fixture("azure-vnet-gateway.json"),
        Some(ip("203.0.113.10")),
        Some(65010),
    )
    .unwrap();
    assert!(imp.missing.iter().any(|m| m.contains("pre-shared key")));
    let out = dir.0.join("az.toml");
    let w = cloud::write_import(&imp, &out).unwrap();
    assert!(w.psk_files.is_empty());
    assert_eq!(w.psk_to_fill.len(), 2);
    fill_psks(&w);
    let cfg = validate(&out);
    assert_eq!(cfg.tunnels.len(), 2);
    assert_eq!(cfg.tunnels[0].peer, ip("20.50.1.2"));
    assert_eq!(cfg.tunnels[0].cloud, Some(bh_config::Cloud::Azure));
    assert_eq!(cfg.tunnels[1].peer, ip("20.50.1.3"));
    assert_eq!(cfg.tunnels[0].inside[0].to_string(), "169.254.21.2/30");
    assert_eq!(cfg.tunnels[1].inside[0].to_string(), "169.254.22.2/30");
    let st = &cfg.tunnels[0].ike.as_ref().unwrap().settings;
    assert_eq!(st.pfs, None, "Azure's default policy rekeys without PFS");
    assert!(
        st.proposals
            .iter()
            .all(|p| p.dh == vec![bh_crypto::dh::DhGroup::Modp1024])
    );
    let bgp = cfg.bgp.unwrap();
    assert_eq!(bgp.asn, 65010);
    assert_eq!(bgp.neighbors[0].address, ip("169.254.21.1"));
    assert_eq!(bgp.neighbors[1].address, ip("169.254.22.1"));
    assert!(
        bgp.neighbors
            .iter()
            .all(|n| n.asn == 65515 && n.hold_time == 180 && !n.passive)
    );
}

#[test]
fn azure_import_says_what_is_missing() {
    let imp = azure::import(&fixture("azure-vnet-gateway.json"), None, None).unwrap();
    assert!(imp.missing.iter().any(|m| m.contains("--public-ip")));
    assert!(imp.missing.iter().any(|m| m.contains("--asn")));
    let text = cloud::render_toml(&imp, Path::new("az.toml"));
    assert!(text.contains("# MISSING: this appliance's public address"));

    // Without APIPA: the GatewaySubnet address, off-link, by multihop and a /32 route.
    let no_apipa = fixture("azure-vnet-gateway.json").replace(
        "\"customBgpIpAddresses\": [\"169.254.21.1\"]",
        "\"customBgpIpAddresses\": []",
    );
    let imp = azure::import(&no_apipa, Some(ip("203.0.113.10")), Some(65010)).unwrap();
    let n = imp.tunnels[0].neighbor.as_ref().unwrap();
    assert_eq!(n.address, ip("10.1.255.4"));
    assert_eq!(n.multihop, Some(2));
    assert_eq!(imp.tunnels[0].routes, vec!["10.1.255.4/32".to_owned()]);
    assert!(
        imp.missing
            .iter()
            .any(|m| m.contains("azure0") && m.contains("GatewaySubnet"))
    );

    let outside = fixture("azure-vnet-gateway.json").replace("169.254.22.1", "169.254.30.1");
    let e = azure::import(&outside, None, None).unwrap_err().to_string();
    assert!(
        e.contains("customBgpIpAddresses") && e.contains("169.254.30.1"),
        "{e}"
    );
    assert!(matches!(
        azure::import("{\"bgpSettings\": 3", None, None),
        Err(CloudError::Json(_))
    ));
}

#[test]
fn gcp_import_tunnels_router_and_gateway() {
    let dir = Scratch::new("gcp");
    let docs = vec![
        fixture("gcp-vpn-tunnels.json"),
        fixture("gcp-router.json"),
        fixture("gcp-vpn-gateway.json"),
    ];
    let imp = gcp::import(&docs).unwrap();
    assert!(imp.missing.iter().any(|m| m.contains("shared secret")));
    let out = dir.0.join("gcp.toml");
    let w = cloud::write_import(&imp, &out).unwrap();
    assert_eq!(w.psk_to_fill.len(), 2, "Google never returns the secret");
    fill_psks(&w);
    let cfg = validate(&out);
    assert_eq!(cfg.appliance.public_ip, Some(ip("203.0.113.10")));
    assert_eq!(cfg.tunnels[0].peer, ip("35.242.10.1"));
    assert_eq!(cfg.tunnels[0].cloud, Some(bh_config::Cloud::Gcp));
    assert_eq!(cfg.tunnels[1].peer, ip("35.220.20.2"));
    assert_eq!(cfg.tunnels[0].inside[0].to_string(), "169.254.0.2/30");
    assert_eq!(cfg.tunnels[1].inside[0].to_string(), "169.254.1.2/30");
    assert!(
        cfg.tunnels[0].ike.as_ref().unwrap().settings.pfs.is_some(),
        "Google requires PFS"
    );
    let bgp = cfg.bgp.unwrap();
    assert_eq!(bgp.asn, 65010);
    assert_eq!(bgp.neighbors[0].address, ip("169.254.0.1"));
    assert_eq!(bgp.neighbors[1].address, ip("169.254.1.1"));
    assert!(
        bgp.neighbors
            .iter()
            .all(|n| n.asn == 64514 && n.hold_time == 60)
    );
}

#[test]
fn gcp_import_without_the_gateway_says_which_command_to_run() {
    let docs = vec![fixture("gcp-vpn-tunnels.json"), fixture("gcp-router.json")];
    let imp = gcp::import(&docs).unwrap();
    assert!(imp.tunnels.iter().all(|t| t.peer.is_none()));
    assert!(
        imp.missing
            .iter()
            .any(|m| m.contains("vpn-gateways describe ha-vpn-1")),
        "{:?}",
        imp.missing
    );
    let e = gcp::import(&[fixture("gcp-router.json")]).unwrap_err();
    assert!(e.to_string().contains("compute#vpnTunnel"));
}
