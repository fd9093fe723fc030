//! Randomness: one trait, the OS source, a seeded generator for tests, and a fast per-thread
//! generator for the dataplane.
//!
//! - [`SecureRandom`]: what every consumer in bridgehead takes (`&mut dyn SecureRandom`), so that
//!   sans-IO cores (IKE nonces, SPIs, DH private values) never touch the OS source themselves and
//!   simulations can be replayed byte for byte.
//! - [`OsRandom`]: the kernel's getrandom(2). The only place in bridgehead that reads it.
//! - [`DeterministicRandom`]: ChaCha20 keyed with a 32-octet seed. For tests and simulations
//!   only: anyone who knows the seed knows every output.
//! - [`FastRng`]: a per-thread ChaCha20 generator seeded from [`OsRandom`] and reseeded every
//!   [`FAST_RNG_RESEED_BYTES`] octets, for values needed per packet (AES-CBC IVs must be
//!   unpredictable, RFC 3602 §2.1) without a system call per packet.
//!
//! Not provided: fork safety for [`FastRng`] (bridgehead never forks after start; a forked child
//! would repeat its parent's stream until the next reseed), and zeroization of the ChaCha20
//! state held by `rand_chacha` when a generator is dropped.

use std::cell::RefCell;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// A cryptographically secure source of random octets.
pub trait SecureRandom {
    /// Fills `buf` entirely with random octets.
    fn fill(&mut self, buf: &mut [u8]);
}

impl<T: SecureRandom + ?Sized> SecureRandom for &mut T {
    fn fill(&mut self, buf: &mut [u8]) {
        (**self).fill(buf);
    }
}

impl<T: SecureRandom + ?Sized> SecureRandom for Box<T> {
    fn fill(&mut self, buf: &mut [u8]) {
        (**self).fill(buf);
    }
}

/// The operating system's random source (getrandom(2) on Linux).
#[derive(Clone, Copy, Debug, Default)]
pub struct OsRandom;

impl SecureRandom for OsRandom {
    /// # Panics
    ///
    /// If the kernel refuses to provide randomness. On Linux getrandom(2) only blocks until the
    /// pool is initialised and does not fail afterwards; carrying on without randomness would
    /// be worse than stopping.
    #[expect(
        clippy::disallowed_methods,
        reason = "OsRandom is the one sanctioned reader of the OS random source"
    )]
    fn fill(&mut self, buf: &mut [u8]) {
        if let Err(e) = getrandom::getrandom(buf) {
            panic!("the operating system random source failed: {e}");
        }
    }
}

/// A ChaCha20 stream keyed by a 32-octet seed: reproducible randomness for tests and
/// simulations. Never use it for real keys.
#[derive(Clone)]
pub struct DeterministicRandom(ChaCha20Rng);

impl DeterministicRandom {
    /// The generator for `seed`: the same seed always yields the same stream.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(ChaCha20Rng::from_seed(seed))
    }
}

impl std::fmt::Debug for DeterministicRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeterministicRandom")
            .finish_non_exhaustive()
    }
}

impl SecureRandom for DeterministicRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        self.0.fill_bytes(buf);
    }
}

/// How many octets [`FastRng`] hands out on a thread before it reseeds from [`OsRandom`].
pub const FAST_RNG_RESEED_BYTES: u64 = 1 << 20;

struct FastState {
    rng: ChaCha20Rng,
    since_reseed: u64,
}

thread_local! {
    static FAST: RefCell<Option<FastState>> = const { RefCell::new(None) };
}

/// A per-thread ChaCha20 CSPRNG seeded from [`OsRandom`], reseeded every
/// [`FAST_RNG_RESEED_BYTES`] octets. Cheap to create (zero-sized) and to call; each thread has
/// its own independent state, so dataplane workers never contend.
#[derive(Clone, Copy, Debug, Default)]
pub struct FastRng;

impl FastRng {
    /// A handle to the calling thread's generator.
    pub fn new() -> Self {
        Self
    }
}

impl SecureRandom for FastRng {
    fn fill(&mut self, buf: &mut [u8]) {
        FAST.with(|cell| {
            let mut slot = cell.borrow_mut();
            let need_seed = slot
                .as_ref()
                .is_none_or(|s| s.since_reseed >= FAST_RNG_RESEED_BYTES);
            if need_seed {
                let mut seed = zeroize::Zeroizing::new([0u8; 32]);
                OsRandom.fill(&mut seed[..]);
                *slot = Some(FastState {
                    rng: ChaCha20Rng::from_seed(*seed),
                    since_reseed: 0,
                });
            }
            if let Some(state) = slot.as_mut() {
                state.rng.fill_bytes(buf);
                let n = u64::try_from(buf.len()).unwrap_or(u64::MAX);
                state.since_reseed = state.since_reseed.saturating_add(n);
            }
        });
    }
}

/// Adapts a `&mut dyn SecureRandom` to the `rand_core` traits the elliptic-curve crates take.
pub(crate) struct RngAdapter<'a>(pub(crate) &'a mut dyn SecureRandom);

impl RngCore for RngAdapter<'_> {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.0.fill(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.0.fill(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.fill(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for RngAdapter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_random_is_chacha20_keyed_by_the_seed() {
        // ChaCha20Rng with an all-zero seed is the ChaCha20 keystream for key 0, nonce 0,
        // block counter 0: RFC 8439 Appendix A.1, test vector #1 (first 32 octets shown).
        let mut r = DeterministicRandom::from_seed([0; 32]);
        let mut out = [0u8; 32];
        r.fill(&mut out);
        assert_eq!(
            hex(&out),
            "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
        );
        // Same seed, same stream; different seed, different stream.
        let mut a = DeterministicRandom::from_seed([7; 32]);
        let mut b = DeterministicRandom::from_seed([7; 32]);
        let mut c = DeterministicRandom::from_seed([8; 32]);
        let (mut x, mut y, mut z) = ([0u8; 64], [0u8; 64], [0u8; 64]);
        a.fill(&mut x);
        b.fill(&mut y);
        c.fill(&mut z);
        assert_eq!(x, y);
        assert_ne!(x, z);
    }

    #[test]
    fn os_random_fills_and_differs() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        OsRandom.fill(&mut a);
        OsRandom.fill(&mut b);
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
    }

    #[test]
    fn fast_rng_reseeds_and_never_repeats_across_threads() {
        let mut r = FastRng::new();
        let mut first = [0u8; 16];
        r.fill(&mut first);
        // Push past a reseed boundary and make sure output keeps flowing.
        let mut big = vec![0u8; usize::try_from(FAST_RNG_RESEED_BYTES).unwrap() + 100];
        r.fill(&mut big);
        let mut after = [0u8; 16];
        r.fill(&mut after);
        assert_ne!(first, after);
        let since = FAST.with(|c| c.borrow().as_ref().map(|s| s.since_reseed));
        assert_eq!(since, Some(16), "the big fill must have triggered a reseed");
        // Another thread gets its own, differently seeded state.
        let other = std::thread::spawn(|| {
            let mut b = [0u8; 16];
            FastRng.fill(&mut b);
            b
        })
        .join()
        .unwrap();
        assert_ne!(other, first);
        assert_ne!(other, after);
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
