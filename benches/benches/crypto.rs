//! Micro-benchmarks of bridgehead's ESP transforms against the raw AEAD of `ring`.
//!
//! For every suite in [`bh_crypto::esp::SUITE_NAMES`] this measures [`EspTransform::seal`] and
//! [`EspTransform::open`] of one whole ESP packet (header, IV, payload, padding, trailer, ICV)
//! carrying an inner packet of 64, 512 and 1400 bytes. Beside them it measures
//! `ring::aead::LessSafeKey::seal_in_place_separate_tag` and `open_in_place` for AES-128-GCM,
//! AES-256-GCM and ChaCha20-Poly1305 over the same ciphertext length (inner packet, padding and
//! the 2-byte ESP trailer) with the same 8-byte AAD, so the cost of our layer above the cipher
//! shows as the difference.
//!
//! Criterion ids (what `benches/micro` reads back from `target/criterion`):
//! `seal/<suite>/<size>`, `open/<suite>/<size>`, `raw_seal/<suite>/<size>`,
//! `raw_open/<suite>/<size>`, where a raw `<suite>` is the ESP suite name of the same cipher.
//!
//! It does not measure I/O, batching, sequence numbers or anti-replay: see `esp.rs` and the
//! end-to-end `benches/throughput` for those.

use std::hint::black_box;
use std::time::Duration;

use bh_crypto::esp::{ESP_HEADER_LEN, SUITE_NAMES};
use bh_crypto::{EspSuite, EspTransform};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use ring::aead;

/// Inner packet sizes in bytes.
const SIZES: [usize; 3] = [64, 512, 1400];

/// The AEADs of `ring` measured raw, with the ESP suite name of the same cipher.
const RAW: [(&str, &aead::Algorithm); 3] = [
    ("aes128gcm16", &aead::AES_128_GCM),
    ("aes256gcm16", &aead::AES_256_GCM),
    ("chacha20poly1305", &aead::CHACHA20_POLY1305),
];

/// Length of the ciphertext ESP carries for an inner packet of `inner` bytes: the packet, the
/// 2-byte trailer (pad length, next header) and padding up to the suite's alignment
/// (RFC 4303 §2.4).
fn body_len(suite: &EspSuite, inner: usize) -> usize {
    let align = suite.block_align();
    (inner + 2).div_ceil(align) * align
}

/// A whole ESP packet for `inner` bytes of payload, not yet sealed: header, IV, payload with
/// padding and trailer, and room for the ICV.
fn plain_packet(suite: &EspSuite, inner: usize) -> Vec<u8> {
    let (iv, icv, body) = (suite.iv_len(), suite.icv_len(), body_len(suite, inner));
    let mut p = vec![0u8; ESP_HEADER_LEN + iv + body + icv];
    p[..ESP_HEADER_LEN].copy_from_slice(&[0, 0, 0x10, 0x01, 0, 0, 0, 1]);
    for (i, b) in p[ESP_HEADER_LEN..ESP_HEADER_LEN + iv]
        .iter_mut()
        .enumerate()
    {
        *b = i as u8;
    }
    let start = ESP_HEADER_LEN + iv;
    for (i, b) in p[start..start + inner].iter_mut().enumerate() {
        *b = i as u8;
    }
    // Self-describing padding 1, 2, 3, ... then pad length and next header (4 = IPv4).
    let pad = body - inner - 2;
    for (i, b) in p[start + inner..start + inner + pad].iter_mut().enumerate() {
        *b = (i + 1) as u8;
    }
    p[start + body - 2] = pad as u8;
    p[start + body - 1] = 4;
    p
}

fn key_material(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(37) ^ 0x5a)
        .collect()
}

fn ours(c: &mut Criterion) {
    for &(name, suite) in SUITE_NAMES {
        let t = EspTransform::new(suite, &key_material(suite.key_len()))
            .expect("every listed suite can be keyed");
        for size in SIZES {
            let plain = plain_packet(&suite, size);
            let mut sealed = plain.clone();
            t.seal(&mut sealed, None)
                .expect("seal of a well-formed packet");
            // The benchmark must measure a successful open, not an early rejection.
            let mut check = sealed.clone();
            t.open(&mut check, None).expect("open of a sealed packet");
            assert_eq!(
                check[..plain.len() - suite.icv_len()],
                plain[..plain.len() - suite.icv_len()]
            );

            let mut g = c.benchmark_group("seal");
            g.throughput(Throughput::Bytes(size as u64));
            let mut buf = plain.clone();
            g.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
                // Sealing over the previous ciphertext costs the same as over plaintext.
                b.iter(|| t.seal(black_box(&mut buf), None))
            });
            g.finish();

            let mut g = c.benchmark_group("open");
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
                b.iter_batched_ref(
                    || sealed.clone(),
                    |p| t.open(black_box(p), None).expect("sealed packet opens"),
                    BatchSize::SmallInput,
                )
            });
            g.finish();
        }
    }
}

fn raw(c: &mut Criterion) {
    for (name, alg) in RAW {
        let suite = EspSuite::from_name(name).expect("raw ciphers map to listed suites");
        let key = aead::LessSafeKey::new(
            aead::UnboundKey::new(alg, &key_material(alg.key_len())).expect("key length"),
        );
        let nonce = || aead::Nonce::assume_unique_for_key([7u8; 12]);
        let aad = [0u8, 0, 0x10, 0x01, 0, 0, 0, 1];
        for size in SIZES {
            let body = body_len(&suite, size);
            let plain: Vec<u8> = (0..body).map(|i| i as u8).collect();
            let mut sealed = plain.clone();
            key.seal_in_place_append_tag(nonce(), aead::Aad::from(aad), &mut sealed)
                .expect("seal");

            let mut g = c.benchmark_group("raw_seal");
            g.throughput(Throughput::Bytes(size as u64));
            let mut buf = plain.clone();
            g.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
                b.iter(|| {
                    key.seal_in_place_separate_tag(
                        nonce(),
                        aead::Aad::from(aad),
                        black_box(&mut buf[..]),
                    )
                })
            });
            g.finish();

            let mut g = c.benchmark_group("raw_open");
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
                b.iter_batched_ref(
                    || sealed.clone(),
                    |p| {
                        key.open_in_place(nonce(), aead::Aad::from(aad), black_box(p))
                            .map(|pt| pt.len())
                            .expect("sealed buffer opens")
                    },
                    BatchSize::SmallInput,
                )
            });
            g.finish();
        }
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(50)
}

// What `criterion_group!`/`criterion_main!` expand to, written out so the generated public
// function does not trip the workspace's `missing_docs` lint.
fn main() {
    let mut c = config().configure_from_args();
    ours(&mut c);
    raw(&mut c);
    c.final_summary();
}
