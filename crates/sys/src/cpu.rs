//! CPU count and thread pinning (`sched_setaffinity`), for one worker per core.
#![allow(unsafe_code)]

use std::io;
use std::mem;

use crate::sockopt::cvt;

/// Number of CPUs currently online (`_SC_NPROCESSORS_ONLN`), at least 1.
pub fn online_cpus() -> usize {
    // SAFETY: sysconf with a valid name has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}

/// Pins the calling thread to CPU `core`. Fails with `EINVAL` if `core` is out of range or not
/// usable by this process.
pub fn pin_current_thread(core: usize) -> io::Result<()> {
    if core >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: cpu_set_t is a plain bit array; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    // SAFETY: `core` < CPU_SETSIZE, checked above, so CPU_SET stays inside `set`.
    unsafe { libc::CPU_SET(core, &mut set) };
    // SAFETY: pid 0 means the calling thread; `set` is a live cpu_set_t of the size given.
    cvt(unsafe { libc::sched_setaffinity(0, mem::size_of::<libc::cpu_set_t>(), &set) }).map(drop)
}

/// The CPUs the calling thread may run on.
pub fn current_affinity() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is a plain bit array; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    // SAFETY: pid 0 means the calling thread; the kernel writes into `set`, of the size given.
    cvt(unsafe { libc::sched_getaffinity(0, mem::size_of::<libc::cpu_set_t>(), &mut set) })?;
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `i` < CPU_SETSIZE, so CPU_ISSET stays inside `set`.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_a_thread_to_each_allowed_core() {
        assert!(online_cpus() >= 1);
        let allowed = current_affinity().unwrap();
        assert!(!allowed.is_empty());
        for core in allowed {
            let got = std::thread::spawn(move || {
                pin_current_thread(core).unwrap();
                current_affinity().unwrap()
            })
            .join()
            .unwrap();
            assert_eq!(got, vec![core]);
        }
    }

    #[test]
    fn rejects_out_of_range_core() {
        let err = pin_current_thread(libc::CPU_SETSIZE as usize).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }
}
