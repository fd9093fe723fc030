//! The `bridgehead import` and `plan` commands end to end: files written, keys never on the
//! terminal, and the imported file planned back into AWS commands.

use std::path::{Path, PathBuf};
use std::process::Command;

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bridgehead(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bridgehead"))
        .args(args)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn import_then_check_then_plan_aws() {
    let dir = Scratch(std::env::temp_dir().join(format!("bh-cloud-cli-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cloud/aws-vpn-connection.xml");
    let out = dir.0.join("site.toml");
    let out_s = out.to_str().unwrap();

    let (ok, stdout, stderr) =
        bridgehead(&["import", "aws", fixture.to_str().unwrap(), "-o", out_s]);
    assert!(ok, "{stderr}");
    assert!(
        !stdout.contains("EXAMPLEkey") && !stderr.contains("EXAMPLEkey"),
        "a key was printed"
    );
    assert!(stderr.contains("site.aws0.psk (mode 0600)"), "{stderr}");

    let (ok, stdout, stderr) = bridgehead(&["check", "-c", out_s]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("OK (2 tunnel(s))"), "{stdout}");

    let (ok, stdout, stderr) = bridgehead(&["plan", "aws", "-c", out_s]);
    assert!(ok, "{stderr}");
    assert!(
        !stdout.contains("EXAMPLEkey") && !stderr.contains("EXAMPLEkey"),
        "a key was printed"
    );
    let psk0 = dir.0.join("site.aws0.psk");
    assert!(
        stdout.contains(&format!("PSK_AWS0=\"$(cat {})\"", psk0.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains("\"TunnelInsideCidr\": \"169.254.44.160/30\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("--public-ip 203.0.113.10 --bgp-asn 65010"),
        "{stdout}"
    );
    assert!(stdout.contains("--amazon-side-asn 64512"), "{stdout}");
    // The imported proposals map back to AWS's names.
    assert!(
        stdout.contains("\"Phase1EncryptionAlgorithms\": [{\"Value\": \"AES128\"}]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\"Phase2DHGroupNumbers\": [{\"Value\": 2}]"),
        "{stdout}"
    );

    let (ok, _, stderr) = bridgehead(&["plan", "gcp", "-c", out_s]);
    assert!(!ok);
    assert!(stderr.contains("no tunnel selected for gcp"), "{stderr}");
}

#[test]
fn import_of_hostile_xml_fails_cleanly() {
    let dir = Scratch(std::env::temp_dir().join(format!("bh-cloud-cli2-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let bad = dir.0.join("bad.xml");
    std::fs::write(
        &bad,
        "<vpn_connection><ipsec_tunnel><customer_gateway/></ipsec_tunnel></vpn_connection>",
    )
    .unwrap();
    let out = dir.0.join("x.toml");
    let (ok, _, stderr) = bridgehead(&[
        "import",
        "aws",
        bad.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("ipsec_tunnel[0]: missing <vpn_gateway>"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out.exists());
}
