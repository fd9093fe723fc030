//! Cross-check with an ESP implementation we did not write: scapy's
//! `scapy.layers.ipsec` (Python). Packets sealed here are opened by scapy and compared; packets
//! sealed by scapy are opened here and compared. Every suite scapy supports, ESN on and off
//! (with ESN across the 2^32 boundary).
//!
//! Needs python3 with scapy and cryptography (`pip install scapy cryptography`); without them
//! the test fails, it never skips.

mod common;

use bh_crypto::EspSuite;
use bh_crypto::esp::SUITE_NAMES;
use bh_crypto::{EspEncr, EspInteg};
use bh_esp::{InboundSa, InnerProto, OutboundSa, PacketBuf};
use common::{counter_iv, key, transform};
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};

const PIP_HINT: &str = "the scapy cross-check needs python3 with scapy and cryptography: \
                        run `pip install scapy cryptography`";

/// scapy's names for a suite: (CRYPT_ALGOS key, AUTH_ALGOS key or "").
fn scapy_names(suite: EspSuite) -> (&'static str, &'static str) {
    let crypt = match suite.encr {
        EspEncr::AesGcm16 { .. } => "AES-GCM",
        EspEncr::ChaCha20Poly1305 => "CHACHA20-POLY1305",
        EspEncr::AesCbc { .. } => "AES-CBC",
    };
    let auth = match suite.integ {
        EspInteg::None => "",
        EspInteg::HmacSha1_96 => "HMAC-SHA1-96",
        EspInteg::HmacSha256_128 => "SHA2-256-128",
        EspInteg::HmacSha384_192 => "SHA2-384-192",
        EspInteg::HmacSha512_256 => "SHA2-512-256",
    };
    (crypt, auth)
}

/// Inner packets with IP protocol 253 (experimental), so scapy keeps the payload raw.
fn inner(v6: bool, len: usize, tag: u8) -> Vec<u8> {
    let mut p = if v6 {
        common::ipv6(len, tag)
    } else {
        common::ipv4(len, tag)
    };
    if v6 {
        p[6] = 253;
    } else {
        p[9] = 253;
    }
    p
}

const SPI: u32 = 0x4242_0001;

fn seqs(esn: bool) -> Vec<u64> {
    if esn {
        // The first moves our receiver's window up; the rest straddle 2^32.
        vec![
            0x8000_0000,
            0xffff_fffe,
            0xffff_ffff,
            1 << 32,
            (1 << 32) + 1,
        ]
    } else {
        vec![1, 2, 3, 4, 9]
    }
}

fn packets() -> Vec<Vec<u8>> {
    vec![
        inner(false, 20, 1),
        inner(true, 40, 2),
        inner(false, 85, 3),
        inner(true, 333, 4),
        inner(false, 1400, 5),
    ]
}

struct Case {
    name: &'static str,
    suite: EspSuite,
    esn: bool,
    /// (full seq, ESP packet, inner packet) sealed by bridgehead.
    ours: Vec<(u64, Vec<u8>, Vec<u8>)>,
}

fn build_case(name: &'static str, suite: EspSuite, esn: bool) -> Case {
    let mut ours = Vec::new();
    for (seq, p) in seqs(esn).into_iter().zip(packets()) {
        let sa = OutboundSa::new(SPI, transform(suite, 9), esn)
            .unwrap()
            .with_next_seq(seq);
        let mut b = PacketBuf::new(1500);
        b.load(&p).unwrap();
        sa.seal(&mut b, &mut counter_iv()).unwrap();
        ours.push((seq, b.data().to_vec(), p));
    }
    Case {
        name,
        suite,
        esn,
        ours,
    }
}

fn request(cases: &[Case]) -> Value {
    let cases: Vec<Value> = cases
        .iter()
        .map(|c| {
            let k = key(c.suite, 9);
            let (ek, ik) = k.split_at(c.suite.encr_key_len());
            let (crypt, auth) = scapy_names(c.suite);
            json!({
                "name": c.name,
                "crypt_algo": crypt,
                // scapy takes AEAD keys with the 4-octet salt at the end, as KEYMAT has them.
                "crypt_key": hex::encode(ek),
                "auth_algo": auth,
                "auth_key": hex::encode(ik),
                "spi": SPI,
                "esn": c.esn,
                "open": c.ours.iter().map(|(s, e, i)| json!({
                    "seq": s, "esp": hex::encode(e), "inner": hex::encode(i),
                })).collect::<Vec<_>>(),
                "seal": seqs(c.esn).into_iter().zip(packets()).map(|(s, i)| json!({
                    "seq": s, "inner": hex::encode(i),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "cases": cases })
}

fn run_scapy(req: &Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scapy_esp.py");
    let probe = Command::new("python3")
        .args(["-c", "import scapy.layers.ipsec, cryptography"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!("{PIP_HINT}\n{}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => panic!("{PIP_HINT} (python3: {e})"),
    }
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{PIP_HINT} (python3: {e})"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(req.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "scapy_esp.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("scapy_esp.py prints JSON")
}

#[test]
fn scapy_opens_ours_and_we_open_scapys() {
    let mut cases = Vec::new();
    for &(name, suite) in SUITE_NAMES {
        for esn in [false, true] {
            cases.push(build_case(name, suite, esn));
        }
    }
    let resp = run_scapy(&request(&cases));
    let results = resp["cases"].as_array().expect("cases");
    assert_eq!(results.len(), cases.len());
    let mut checked = Vec::new();
    for (c, r) in cases.iter().zip(results) {
        assert_eq!(r["name"], c.name);
        if r["supported"] != true {
            // Only ChaCha20-Poly1305 is missing from some scapy versions.
            assert_eq!(c.suite.encr, EspEncr::ChaCha20Poly1305, "{}", c.name);
            continue;
        }
        // scapy opened what we sealed, and found the same inner packet and next header.
        let opened = r["open"].as_array().unwrap();
        assert_eq!(opened.len(), c.ours.len());
        for (o, (seq, _, p)) in opened.iter().zip(&c.ours) {
            assert_eq!(o["ok"], true, "{} esn={} seq={seq:#x}: {o}", c.name, c.esn);
            assert_eq!(o["inner"].as_str().unwrap(), hex::encode(p));
            let nh = if p[0] >> 4 == 4 { 4 } else { 41 };
            assert_eq!(o["nh"], nh, "{}", c.name);
            let padlen = o["padlen"].as_u64().unwrap() as usize;
            assert!(
                padlen < c.suite.block_align(),
                "{}: minimal padding",
                c.name
            );
        }
        // We open what scapy sealed, in order, through one inbound SA with its replay window.
        let inb = InboundSa::new(SPI, transform(c.suite, 9), c.esn, 1024).unwrap();
        let sealed = r["seal"].as_array().unwrap();
        for (s, (seq, p)) in sealed.iter().zip(seqs(c.esn).into_iter().zip(packets())) {
            let esp = hex::decode(s["esp"].as_str().unwrap()).unwrap();
            assert_eq!(&esp[..4], &SPI.to_be_bytes());
            assert_eq!(&esp[4..8], &(seq as u32).to_be_bytes());
            let mut b = PacketBuf::from_slice(&esp);
            let want = if p[0] >> 4 == 4 {
                InnerProto::Ipv4
            } else {
                InnerProto::Ipv6
            };
            assert_eq!(
                inb.open(&mut b),
                Ok(want),
                "{} esn={} seq={seq:#x}",
                c.name,
                c.esn
            );
            assert_eq!(b.data(), &p[..], "{}", c.name);
        }
        assert_eq!(inb.highest_seq(), *seqs(c.esn).last().unwrap());
        checked.push((c.name, c.esn));
    }
    // AES-GCM and AES-CBC with every HMAC are in every scapy with ESP support.
    for must in [
        "aes128gcm16",
        "aes256gcm16",
        "aes128-sha1",
        "aes128-sha256",
        "aes128-sha384",
        "aes256-sha512",
    ] {
        assert!(
            checked.contains(&(must, false)) && checked.contains(&(must, true)),
            "{must}"
        );
    }
}
