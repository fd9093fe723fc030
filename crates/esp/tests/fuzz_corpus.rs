//! Replays the `esp_udp4500` fuzz corpus and 20,000 seeded pseudo-random and mutated inputs
//! through `bh_esp::fuzzing::open_datagram` on every `cargo test`: nothing may panic, valid
//! packets must open, and no altered packet may ever open.

use bh_crypto::esp::SUITE_NAMES;
use bh_esp::fuzzing::{open_datagram, outbound_sa, sample_inner};
use bh_esp::{OpenError, PacketBuf};
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/esp_udp4500")
}

/// xorshift64*: a fixed-seed generator, so every run tries the same inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Valid sealed packets for every suite, with and without ESN.
fn fresh_valid() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for idx in 0..SUITE_NAMES.len() as u32 {
        for esn_bit in [0, 0x100] {
            let spi = 0x2000 | esn_bit | idx;
            let sa = outbound_sa(spi).unwrap();
            let v6 = idx % 2 == 1;
            let mut b = PacketBuf::new(200);
            b.load(&sample_inner(v6, 40 + idx as usize * 9)).unwrap();
            sa.seal(&mut b, &mut |iv: &mut [u8]| iv.fill(idx as u8))
                .unwrap();
            out.push(b.data().to_vec());
        }
    }
    out
}

#[test]
fn corpus_files_replay() {
    let mut seen = 0;
    for entry in std::fs::read_dir(corpus_dir()).expect("fuzz/corpus/esp_udp4500 exists") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(&path).unwrap();
        let r = open_datagram(&data);
        if name.starts_with("valid-") {
            assert!(matches!(r, Some(Ok(_))), "{name}: {r:?}");
        } else if name == "keepalive" || name.starts_with("ike") {
            assert_eq!(r, None, "{name}");
        } else {
            assert!(!matches!(r, Some(Ok(_))), "{name}: {r:?}");
        }
        seen += 1;
    }
    assert!(seen >= 10, "corpus has only {seen} files");
}

#[test]
fn fresh_packets_for_every_suite_open() {
    for p in fresh_valid() {
        assert!(matches!(open_datagram(&p), Some(Ok(_))), "{}", p.len());
    }
}

#[test]
fn random_and_mutated_inputs() {
    let mut seeds: Vec<Vec<u8>> = fresh_valid();
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        seeds.push(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let valid: std::collections::HashSet<Vec<u8>> = seeds
        .iter()
        .filter(|s| matches!(open_datagram(s), Some(Ok(_))))
        .cloned()
        .collect();
    assert!(valid.len() >= 2 * SUITE_NAMES.len());
    let mut rng = Rng(0x5eed_e5b0_0000_0001);
    let (mut esp, mut errors) = (0, 0);
    for i in 0..20_000 {
        let input = if i % 4 == 0 {
            // Pure noise, sometimes behind a valid-looking SPI or the non-ESP marker.
            let len = rng.below(300);
            let mut v: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            match rng.below(3) {
                0 if v.len() >= 4 => v[..4].copy_from_slice(&[0, 0, 0x20, rng.below(256) as u8]),
                1 if v.len() >= 4 => v[..4].fill(0),
                _ => {}
            }
            v
        } else {
            let mut v = seeds[rng.below(seeds.len())].clone();
            for _ in 0..=rng.below(3) {
                match rng.below(6) {
                    0 if !v.is_empty() => {
                        let at = rng.below(v.len());
                        v[at] ^= 1 << rng.below(8);
                    }
                    1 => v.truncate(rng.below(v.len() + 1)),
                    2 => v.extend((0..rng.below(40)).map(|_| rng.next() as u8)),
                    3 if !v.is_empty() => {
                        let at = rng.below(v.len());
                        v[at] = rng.next() as u8;
                    }
                    4 if v.len() > 8 => {
                        let at = 8 + rng.below(v.len() - 8);
                        v.remove(at);
                    }
                    _ if v.len() >= 4 => {
                        v[..4].copy_from_slice(&(0x2000u32 | rng.below(512) as u32).to_be_bytes())
                    }
                    _ => {}
                }
            }
            v
        };
        match open_datagram(&input) {
            Some(Ok(_)) => assert!(
                valid.contains(&input),
                "an altered packet opened: {}",
                input.iter().map(|b| format!("{b:02x}")).collect::<String>()
            ),
            Some(Err(e)) => {
                esp += 1;
                if !matches!(e, OpenError::Replay(_)) {
                    errors += 1;
                }
            }
            None => {}
        }
    }
    // The inputs reached the ESP path, not just the classifier.
    assert!(esp > 10_000, "{esp}");
    assert!(errors > 10_000, "{errors}");
}
