//! Writes the seed corpus of the `esp_udp4500` fuzz target into `fuzz/corpus/esp_udp4500/`.
//!
//! `cargo run -p bh-esp --example gen_fuzz_corpus`. The output is deterministic: fixed test
//! keys (see `bh_esp::fuzzing`), sequence numbers from 1, and CBC IVs from a counter.

use bh_esp::PacketBuf;
use bh_esp::fuzzing::{outbound_sa, params, sample_inner};
use std::path::PathBuf;

fn sealed(spi: u32, v6: bool, len: usize) -> Vec<u8> {
    let sa = outbound_sa(spi).expect("fuzz SPIs are not reserved");
    let mut b = PacketBuf::new(len);
    b.load(&sample_inner(v6, len)).expect("sized for it");
    let mut n = 0u8;
    sa.seal(&mut b, &mut |iv: &mut [u8]| {
        for x in iv {
            n = n.wrapping_add(17);
            *x = n;
        }
    })
    .expect("valid inner packet");
    b.data().to_vec()
}

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/esp_udp4500");
    std::fs::create_dir_all(&dir)?;
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for (spi, v6, len) in [
        (0x1000, false, 84),
        (0x1103, true, 60),
        (0x1004, false, 41),
        (0x110d, true, 100),
        (0x1001, true, 40),
        (0x1009, false, 20),
    ] {
        let (suite, esn) = params(spi);
        let name = suite.name().unwrap_or("suite");
        let esn = if esn { "-esn" } else { "" };
        let pkt = sealed(spi, v6, len);
        files.push((format!("valid-{name}{esn}-{spi:x}"), pkt.clone()));
        files.push((
            format!("truncated-{name}{esn}-{spi:x}"),
            pkt[..pkt.len() - 1].to_vec(),
        ));
    }
    files.push(("keepalive".into(), bh_esp::NAT_KEEPALIVE.to_vec()));
    let mut ike = vec![0u8; 4];
    // An IKE_SA_INIT header (RFC 7296 §3.1): SPIs, next payload SA, version 2.0, exchange 34.
    ike.extend_from_slice(&[
        1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0, 33, 0x20, 34, 8,
    ]);
    ike.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 28]);
    files.push(("ike-marker".into(), ike));
    files.push(("header-only".into(), vec![0, 0, 0x10, 0, 0, 0, 0, 1]));
    files.push(("short".into(), vec![0, 0, 0x10]));
    files.push(("reserved-spi".into(), vec![0, 0, 0, 5, 0, 0, 0, 1, 9, 9]));
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}
