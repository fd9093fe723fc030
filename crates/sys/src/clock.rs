//! Clock readings other code needs as numbers (std's `Instant` is opaque).
#![allow(unsafe_code)]

/// CLOCK_MONOTONIC now, in microseconds (what systemd's `MONOTONIC_USEC=` carries); 0 if the
/// clock cannot be read.
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the live, properly aligned `ts`.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if r != 0 {
        return 0;
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000).saturating_add(nanos / 1_000)
}

#[cfg(test)]
mod tests {
    #[test]
    fn monotonic_usec_moves_forward_with_std_instant() {
        let a = super::monotonic_usec();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = super::monotonic_usec();
        assert!(a > 0 && b >= a + 20_000, "{a} {b}");
    }
}
