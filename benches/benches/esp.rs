//! Micro-benchmarks of `bh-esp`'s batched seal and open against the raw AEAD of `ring`.
//!
//! For every suite in [`bh_crypto::esp::SUITE_NAMES`] this measures
//! [`OutboundSa::seal_batch`] and [`InboundSa::open_batch`] over batches of [`BATCH`]
//! [`PacketBuf`]s, each holding an inner IPv4 packet of 64, 512 or 1400 bytes. Sealing includes
//! what the dataplane pays per packet: sequence numbers, IV, padding and trailer, header and
//! counters; opening includes the anti-replay check and update, the trailer and inner-packet
//! checks and the trim to the inner packet. Beside them, `ring`'s
//! `seal_in_place_separate_tag` / `open_in_place` over the same number of buffers of the same
//! ciphertext length shows the cost of the cipher alone.
//!
//! Each timed iteration handles one batch. Refilling the buffers with fresh inner packets (for
//! seal) or with freshly sealed packets carrying new sequence numbers (for open, so that the
//! replay window accepts them) happens between iterations and is not timed.
//!
//! Criterion ids: `batch_seal/<suite>/<size>`, `batch_open/<suite>/<size>`,
//! `raw_batch_seal/<suite>/<size>`, `raw_batch_open/<suite>/<size>`, with
//! `Throughput::Bytes(BATCH * size)`, so `benches/micro` reports them per packet.
//!
//! Not measured here: I/O, SA lookup, threads contending for one SA.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bh_crypto::esp::SUITE_NAMES;
use bh_crypto::{EspSuite, EspTransform};
use bh_esp::replay::DEFAULT_WINDOW;
use bh_esp::{InboundSa, OutboundSa, PacketBuf};
use criterion::{BenchmarkId, Criterion, Throughput};
use ring::aead;

/// Packets per batch.
const BATCH: usize = 32;

/// Inner packet sizes in bytes.
const SIZES: [usize; 3] = [64, 512, 1400];

/// The AEADs of `ring` measured raw, with the ESP suite name of the same cipher.
const RAW: [(&str, &aead::Algorithm); 3] = [
    ("aes128gcm16", &aead::AES_128_GCM),
    ("aes256gcm16", &aead::AES_256_GCM),
    ("chacha20poly1305", &aead::CHACHA20_POLY1305),
];

const SPI: u32 = 0x1001;

/// An IPv4/UDP packet of `len` bytes (10.1.0.2 -> 10.2.0.2) with a valid header checksum.
fn inner_packet(len: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..len).map(|i| i as u8).collect();
    let total = u16::try_from(len).expect("bench sizes fit an IPv4 total length");
    p[..20].copy_from_slice(&[
        0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 1, 0, 2, 10, 2, 0, 2,
    ]);
    p[2..4].copy_from_slice(&total.to_be_bytes());
    let mut sum: u32 = p[..20]
        .chunks_exact(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p
}

fn key_material(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(37) ^ 0x5a)
        .collect()
}

/// Fills CBC IVs. A fixed pattern costs less than the random bytes the dataplane must use; the
/// difference is the caller's RNG, not bh-esp.
fn cbc_iv(iv: &mut [u8]) {
    iv.fill(0x42);
}

/// Length of the ciphertext ESP carries for `inner` bytes (RFC 4303 §2.4 padding and trailer).
fn body_len(suite: &EspSuite, inner: usize) -> usize {
    let align = suite.block_align();
    (inner + 2).div_ceil(align) * align
}

/// Sums the time of `iters` runs of `timed` on `state`, each after an untimed `prepare`.
fn timed_loop<S>(
    iters: u64,
    state: &mut S,
    mut prepare: impl FnMut(&mut S),
    mut timed: impl FnMut(&mut S) -> usize,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        prepare(state);
        let t = Instant::now();
        black_box(timed(black_box(&mut *state)));
        total += t.elapsed();
    }
    total
}

/// One batch of buffers and the outcome slots of seal and open.
struct Batch {
    bufs: Vec<PacketBuf>,
    sealed: Vec<Result<(), bh_esp::SealError>>,
    opened: Vec<Result<bh_esp::InnerProto, bh_esp::OpenError>>,
}

fn ours(c: &mut Criterion) {
    for &(name, suite) in SUITE_NAMES {
        let km = key_material(suite.key_len());
        let keyed = || EspTransform::new(suite, &km).expect("every listed suite can be keyed");
        for size in SIZES {
            let inner = inner_packet(size);
            let mut st = Batch {
                bufs: (0..BATCH).map(|_| PacketBuf::new(1500)).collect(),
                sealed: vec![Ok(()); BATCH],
                opened: vec![Err(bh_esp::OpenError::BadLength); BATCH],
            };

            let mut g = c.benchmark_group("batch_seal");
            g.throughput(Throughput::Bytes((BATCH * size) as u64));
            let out_sa = OutboundSa::new(SPI, keyed(), false).expect("valid SPI");
            g.bench_function(BenchmarkId::new(name, size), |b| {
                b.iter_custom(|iters| {
                    timed_loop(
                        iters,
                        &mut st,
                        |st| {
                            for buf in st.bufs.iter_mut() {
                                buf.load(&inner).expect("sized for the packet");
                            }
                        },
                        |st| out_sa.seal_batch(&mut st.bufs, &mut st.sealed, &mut cbc_iv),
                    )
                })
            });
            g.finish();
            assert!(st.sealed.iter().all(Result::is_ok), "{name}: seal failed");
            assert_eq!(out_sa.counters().snapshot().malformed, 0);

            // Open: a fresh outbound SA feeds new sequence numbers to a matching inbound SA.
            let mut g = c.benchmark_group("batch_open");
            g.throughput(Throughput::Bytes((BATCH * size) as u64));
            let out_sa = OutboundSa::new(SPI, keyed(), false).expect("valid SPI");
            let in_sa = InboundSa::new(SPI, keyed(), false, DEFAULT_WINDOW).expect("valid SA");
            g.bench_function(BenchmarkId::new(name, size), |b| {
                b.iter_custom(|iters| {
                    timed_loop(
                        iters,
                        &mut st,
                        |st| {
                            for buf in st.bufs.iter_mut() {
                                buf.load(&inner).expect("sized for the packet");
                            }
                            let n = out_sa.seal_batch(&mut st.bufs, &mut st.sealed, &mut cbc_iv);
                            assert_eq!(n, BATCH, "{name}: seal failed");
                        },
                        |st| {
                            in_sa.open_batch(&mut st.bufs, &mut st.opened);
                            BATCH
                        },
                    )
                })
            });
            g.finish();
            // What was measured were successful opens, not early rejections.
            let s = in_sa.counters().snapshot();
            assert_eq!(
                (s.replay, s.icv, s.malformed, s.dummy),
                (0, 0, 0, 0),
                "{name}: open failed"
            );
            // A benchmark left out by a criterion id filter never ran; the rest applies to one
            // that did.
            if s.packets > 0 {
                assert!(st.opened.iter().all(Result::is_ok));
                assert_eq!(st.bufs[0].data(), &inner[..]);
            }
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
            let mut sealed_one = plain.clone();
            key.seal_in_place_append_tag(nonce(), aead::Aad::from(aad), &mut sealed_one)
                .expect("seal");
            let tag_len = alg.tag_len();

            let mut g = c.benchmark_group("raw_batch_seal");
            g.throughput(Throughput::Bytes((BATCH * size) as u64));
            let mut bufs: Vec<Vec<u8>> = vec![sealed_one.clone(); BATCH];
            g.bench_function(BenchmarkId::new(name, size), |b| {
                b.iter_custom(|iters| {
                    timed_loop(
                        iters,
                        &mut bufs,
                        |bufs| {
                            for buf in bufs.iter_mut() {
                                buf[..body].copy_from_slice(&plain);
                            }
                        },
                        |bufs| {
                            for buf in bufs.iter_mut() {
                                let (data, icv) = buf.split_at_mut(body);
                                let tag = key
                                    .seal_in_place_separate_tag(nonce(), aead::Aad::from(aad), data)
                                    .expect("seal");
                                icv[..tag_len].copy_from_slice(tag.as_ref());
                            }
                            BATCH
                        },
                    )
                })
            });
            g.finish();

            let mut g = c.benchmark_group("raw_batch_open");
            g.throughput(Throughput::Bytes((BATCH * size) as u64));
            g.bench_function(BenchmarkId::new(name, size), |b| {
                b.iter_custom(|iters| {
                    timed_loop(
                        iters,
                        &mut bufs,
                        |bufs| {
                            for buf in bufs.iter_mut() {
                                buf.copy_from_slice(&sealed_one);
                            }
                        },
                        |bufs| {
                            let mut opened = 0;
                            for buf in bufs.iter_mut() {
                                opened += key
                                    .open_in_place(nonce(), aead::Aad::from(aad), buf)
                                    .map(|pt| usize::from(!pt.is_empty()))
                                    .expect("sealed buffer opens");
                            }
                            opened
                        },
                    )
                })
            });
            g.finish();
        }
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1000))
        .sample_size(30)
}

// What `criterion_group!`/`criterion_main!` expand to, written out so the generated public
// function does not trip the workspace's `missing_docs` lint.
fn main() {
    let mut c = config().configure_from_args();
    ours(&mut c);
    raw(&mut c);
    c.final_summary();
}
