//! The anti-replay window of an inbound SA (RFC 4303 §3.4.3 and Appendix A), with extended
//! sequence numbers (RFC 4303 Appendix A2, RFC 4304).
//!
//! The window is a ring of 64-bit words (the shape of RFC 6479): sliding it forward clears
//! whole words instead of shifting bits, so a jump costs at most one pass over the words and
//! the storage, sized when the window is built, never grows.
//!
//! Use it in two steps around the integrity check: [`ReplayWindow::check`] before decrypting
//! (cheap rejection, and the full sequence number the ICV needs), then
//! [`ReplayWindow::update`] only once the ICV verified. `update` checks again, so a duplicate
//! that raced through `check` (twice in one batch, or on two threads) is still refused.
//!
//! This module holds no lock and reads no clock: [`crate::sa::InboundSa`] wraps it in a mutex.

/// Smallest window accepted, in packets (RFC 4303 §3.4.3: 32 MUST, 64 SHOULD be the default).
pub const MIN_WINDOW: u32 = 64;
/// Largest window accepted, in packets.
pub const MAX_WINDOW: u32 = 4096;
/// The default window: 1024 packets, the default of the AWS gateways.
pub const DEFAULT_WINDOW: u32 = 1024;

/// Why a sequence number is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ReplayError {
    /// Already received.
    #[error("duplicate sequence number")]
    Duplicate,
    /// Left of the window, or zero (the first packet of an SA carries 1, RFC 4303 §3.3.3).
    #[error("sequence number too old for the replay window")]
    TooOld,
}

/// The window size is outside [`MIN_WINDOW`]..=[`MAX_WINDOW`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("replay window of {0} packets is outside 64..=4096")]
pub struct WindowSizeError(pub u32);

/// An anti-replay window over 32-bit or 64-bit (ESN) sequence numbers.
#[derive(Clone, Debug)]
pub struct ReplayWindow {
    /// Highest sequence number that passed [`update`](Self::update); 0 before the first.
    top: u64,
    /// Window size W in packets.
    size: u64,
    esn: bool,
    /// Ring of bits: bit `s % (64 * words)` is set when `s` was received. Its length is a power
    /// of two at least one word more than the window needs, so the word holding `top` never
    /// aliases a word still inside the window.
    bits: Box<[u64]>,
}

impl ReplayWindow {
    /// A window of `size` packets, with or without extended sequence numbers.
    pub fn new(size: u32, esn: bool) -> Result<Self, WindowSizeError> {
        if !(MIN_WINDOW..=MAX_WINDOW).contains(&size) {
            return Err(WindowSizeError(size));
        }
        let words = (size.div_ceil(64) + 1).next_power_of_two() as usize;
        Ok(Self {
            top: 0,
            size: u64::from(size),
            esn,
            bits: vec![0u64; words].into_boxed_slice(),
        })
    }

    /// The window size in packets.
    pub fn size(&self) -> u32 {
        // Built from a u32 and never changed.
        self.size as u32
    }

    /// Whether extended sequence numbers are in use.
    pub fn esn(&self) -> bool {
        self.esn
    }

    /// The highest sequence number accepted so far (0 before the first).
    pub fn top(&self) -> u64 {
        self.top
    }

    /// Infers the full sequence number of a packet that carries `seq_low` and checks it against
    /// the window, without changing anything.
    ///
    /// Without ESN the full number is `seq_low`. With ESN the high half is guessed as in
    /// RFC 4303 Appendix A2.2: the packet is taken to lie in the window or ahead of it, so a
    /// packet far behind the window is read as one from the next 2^32 block, whose ICV will
    /// then fail. The returned number is what the ICV must be computed over.
    pub fn check(&self, seq_low: u32) -> Result<u64, ReplayError> {
        let seq = self.infer(seq_low).ok_or(ReplayError::TooOld)?;
        self.check_full(seq)?;
        Ok(seq)
    }

    /// Records `seq` (a value [`check`](Self::check) returned) after its ICV verified.
    ///
    /// Fails, changing nothing, when `seq` was recorded meanwhile or has slid out of the
    /// window: the packet must then be dropped as a replay.
    pub fn update(&mut self, seq: u64) -> Result<(), ReplayError> {
        self.check_full(seq)?;
        if seq > self.top {
            self.advance(seq);
        }
        let (word, bit) = self.slot(seq);
        if let Some(w) = self.bits.get_mut(word) {
            *w |= bit;
        }
        Ok(())
    }

    fn check_full(&self, seq: u64) -> Result<(), ReplayError> {
        if seq == 0 {
            return Err(ReplayError::TooOld);
        }
        if seq > self.top {
            return Ok(());
        }
        if self.top - seq >= self.size {
            return Err(ReplayError::TooOld);
        }
        let (word, bit) = self.slot(seq);
        match self.bits.get(word) {
            Some(w) if w & bit == 0 => Ok(()),
            _ => Err(ReplayError::Duplicate),
        }
    }

    /// RFC 4303 Appendix A2.2. `None` when the guess falls outside 1..2^64 (before the first
    /// 2^32 block, or past the last).
    fn infer(&self, seq_low: u32) -> Option<u64> {
        if !self.esn {
            return Some(u64::from(seq_low));
        }
        let top_low = self.top as u32;
        let top_high = (self.top >> 32) as u32;
        // W <= 4096, so it fits a u32.
        let w = self.size as u32;
        // The bottom of the window, modulo 2^32.
        let bottom = top_low.wrapping_sub(w - 1);
        let high = if top_low >= w - 1 {
            // Case A: the window lies inside one 2^32 block.
            if seq_low >= bottom {
                top_high
            } else {
                top_high.checked_add(1)?
            }
        } else if seq_low >= bottom {
            // Case B: the window straddles a block boundary; `seq_low` is in the older block.
            top_high.checked_sub(1)?
        } else {
            top_high
        };
        Some((u64::from(high) << 32) | u64::from(seq_low))
    }

    fn slot(&self, seq: u64) -> (usize, u64) {
        let mask = self.bits.len() - 1;
        (((seq >> 6) as usize) & mask, 1u64 << (seq & 63))
    }

    /// Slides the window so that `new_top` is its right edge, clearing the words that enter it.
    fn advance(&mut self, new_top: u64) {
        let words = self.bits.len() as u64;
        let old_word = self.top >> 6;
        let new_word = new_top >> 6;
        let steps = new_word - old_word;
        if steps >= words {
            self.bits.fill(0);
        } else {
            let mask = self.bits.len() - 1;
            for i in 1..=steps {
                if let Some(w) = self.bits.get_mut(((old_word + i) as usize) & mask) {
                    *w = 0;
                }
            }
        }
        self.top = new_top;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// The naive model: a set of every accepted number and its maximum.
    struct Model {
        seen: BTreeSet<u64>,
        size: u64,
    }

    impl Model {
        fn accepts(&self, seq: u64) -> Result<(), ReplayError> {
            let top = self.seen.last().copied().unwrap_or(0);
            if seq == 0 || (seq <= top && top - seq >= self.size) {
                Err(ReplayError::TooOld)
            } else if self.seen.contains(&seq) {
                Err(ReplayError::Duplicate)
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn window_size_is_bounded() {
        assert_eq!(
            ReplayWindow::new(63, false).err(),
            Some(WindowSizeError(63))
        );
        assert_eq!(
            ReplayWindow::new(4097, true).err(),
            Some(WindowSizeError(4097))
        );
        assert_eq!(ReplayWindow::new(64, false).unwrap().size(), 64);
        assert_eq!(ReplayWindow::new(4096, false).unwrap().size(), 4096);
    }

    #[test]
    fn basic_window_behaviour() {
        let mut w = ReplayWindow::new(64, false).unwrap();
        assert_eq!(w.check(0), Err(ReplayError::TooOld));
        assert_eq!(w.check(1), Ok(1));
        w.update(1).unwrap();
        assert_eq!(w.check(1), Err(ReplayError::Duplicate));
        assert_eq!(w.update(1), Err(ReplayError::Duplicate));
        w.update(100).unwrap();
        assert_eq!(w.check(36), Err(ReplayError::TooOld));
        assert_eq!(w.check(37), Ok(37));
        assert_eq!(w.check(99), Ok(99));
        w.update(99).unwrap();
        assert_eq!(w.check(99), Err(ReplayError::Duplicate));
        // A jump far ahead forgets everything behind the new window.
        w.update(1_000_000).unwrap();
        assert_eq!(w.check(999_937), Ok(999_937));
        assert_eq!(w.check(999_936), Err(ReplayError::TooOld));
        assert_eq!(w.top(), 1_000_000);
    }

    #[test]
    fn non_esn_stops_at_the_32_bit_edge() {
        let mut w = ReplayWindow::new(64, false).unwrap();
        w.update(u64::from(u32::MAX)).unwrap();
        assert_eq!(w.check(u32::MAX), Err(ReplayError::Duplicate));
        // Without ESN there is nothing after 2^32 - 1: a small number is just old.
        assert_eq!(w.check(5), Err(ReplayError::TooOld));
    }

    #[test]
    fn esn_infers_the_next_block_after_a_wrap() {
        let mut w = ReplayWindow::new(1024, true).unwrap();
        w.update(0xffff_fff0).unwrap();
        // Case A: top_low >= W - 1; a low number below the window is in the next block.
        assert_eq!(w.check(5), Ok((1 << 32) | 5));
        assert_eq!(w.check(0xffff_ffff), Ok(0xffff_ffff));
        assert_eq!(w.check(0xffff_fc00), Ok(0xffff_fc00));
        w.update((1 << 32) | 5).unwrap();
        assert_eq!(w.top(), (1 << 32) | 5);
        // Case B: top_low < W - 1; a high low-half is in the previous block, inside the window.
        assert_eq!(w.check(0xffff_fff8), Ok(0xffff_fff8));
        assert_eq!(w.check(0xffff_fff0), Err(ReplayError::Duplicate));
        assert_eq!(w.check(3), Ok((1 << 32) | 3));
        assert_eq!(w.check(5), Err(ReplayError::Duplicate));
        // The bottom of the window is 2^32 + 5 - 1023.
        let bottom = ((1u64 << 32) + 5 - 1023) as u32;
        assert_eq!(w.check(bottom), Ok(u64::from(bottom)));
        // Below the window in case B: read as ahead, in the current block.
        assert_eq!(w.check(bottom - 1), Ok((1 << 32) | u64::from(bottom - 1)));
        w.update(0xffff_fff8).unwrap();
        assert_eq!(w.check(0xffff_fff8), Err(ReplayError::Duplicate));
    }

    #[test]
    fn esn_before_the_first_block_is_too_old() {
        let mut w = ReplayWindow::new(64, true).unwrap();
        // top = 0, case B: a number in the "previous block" does not exist.
        assert_eq!(w.check(u32::MAX), Err(ReplayError::TooOld));
        assert_eq!(w.check(0), Err(ReplayError::TooOld));
        assert_eq!(w.check(1), Ok(1));
        w.update(10).unwrap();
        assert_eq!(w.check(u32::MAX - 10), Err(ReplayError::TooOld));
    }

    #[test]
    fn esn_last_block_does_not_overflow() {
        let mut w = ReplayWindow::new(64, true).unwrap();
        w.update(u64::MAX - 1).unwrap();
        assert_eq!(w.check(u32::MAX), Ok(u64::MAX));
        // Below the window, case A, would be block 2^32: it does not exist.
        assert_eq!(w.check(3), Err(ReplayError::TooOld));
    }

    fn op_strategy() -> impl Strategy<Value = (i64, bool)> {
        // (offset from the current top, whether the ICV "verifies").
        let delta = prop_oneof![
            6 => -80i64..80,
            3 => -5000i64..5000,
            1 => -(1i64 << 33)..(1i64 << 33),
        ];
        (delta, prop::bool::weighted(0.9))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Without ESN the window agrees with the set model on every check and update.
        #[test]
        fn matches_model_without_esn(
            size in prop_oneof![Just(64u32), Just(100), Just(1024), Just(4096), 64u32..=4096],
            ops in prop::collection::vec(op_strategy(), 1..400),
        ) {
            let mut w = ReplayWindow::new(size, false).unwrap();
            let mut m = Model { seen: BTreeSet::new(), size: u64::from(size) };
            for (delta, icv_ok) in ops {
                let top = m.seen.last().copied().unwrap_or(0) as i64;
                let seq = (top + delta).clamp(0, i64::from(u32::MAX)) as u64;
                let expected = m.accepts(seq);
                let got = w.check(seq as u32);
                prop_assert_eq!(got.map(|_| ()), expected);
                if let Ok(full) = got {
                    prop_assert_eq!(full, seq);
                    if icv_ok {
                        prop_assert_eq!(w.update(full), Ok(()));
                        m.seen.insert(full);
                    }
                }
                prop_assert_eq!(w.top(), m.seen.last().copied().unwrap_or(0));
            }
        }

        /// With ESN, every number in the RFC 4303 A2.2 inference range (from the bottom of the
        /// window to 2^32 - W past the top) is inferred exactly and judged as the model
        /// judges it. Anything else is refused or read as another number, whose ICV fails.
        #[test]
        fn matches_model_with_esn(
            size in prop_oneof![Just(64u32), Just(1024), 64u32..=4096],
            start in prop_oneof![Just(0u64), Just(0xffff_f000u64), 0u64..(1 << 40)],
            ops in prop::collection::vec(op_strategy(), 1..400),
        ) {
            let mut w = ReplayWindow::new(size, true).unwrap();
            let mut m = Model { seen: BTreeSet::new(), size: u64::from(size) };
            if start > 0 {
                w.update(start).unwrap();
                m.seen.insert(start);
            }
            for (delta, icv_ok) in ops {
                let top = m.seen.last().copied().unwrap_or(0);
                let seq = (top as i128 + i128::from(delta)).max(0) as u64;
                let lo = top.saturating_sub(u64::from(size) - 1);
                let hi = top + (1u64 << 32) - u64::from(size);
                let got = w.check(seq as u32);
                if (lo..=hi).contains(&seq) && (top > 0 || seq < 1 << 32) {
                    prop_assert_eq!(got.map(|_| ()), m.accepts(seq));
                    if let Ok(full) = got {
                        prop_assert_eq!(full, seq);
                    }
                } else if let Ok(full) = got {
                    prop_assert_ne!(full, seq);
                    // The ICV would fail: the window must not move.
                    continue;
                }
                if let Ok(full) = got {
                    if icv_ok {
                        prop_assert_eq!(w.update(full), Ok(()));
                        m.seen.insert(full);
                    }
                }
                prop_assert_eq!(w.top(), m.seen.last().copied().unwrap_or(0));
            }
        }

        /// Packets of one batch that all passed `check` before any `update`: duplicates among
        /// them are caught by `update`.
        #[test]
        fn update_rechecks(seqs in prop::collection::vec(1u64..300, 1..64)) {
            let mut w = ReplayWindow::new(64, false).unwrap();
            let mut m = Model { seen: BTreeSet::new(), size: 64 };
            let checked: Vec<u64> = seqs.iter().filter_map(|&s| w.check(s as u32).ok()).collect();
            for s in checked {
                prop_assert_eq!(w.update(s), m.accepts(s));
                if m.accepts(s).is_ok() {
                    m.seen.insert(s);
                }
            }
        }
    }
}
