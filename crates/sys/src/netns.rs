//! Test helper: run a closure in a fresh, private network namespace on a new thread.
//!
//! `unshare(CLONE_NEWNET)` moves only the calling thread, so each call spawns a thread, moves it
//! into a new namespace (with only a down `lo`), runs the closure there and joins it. When the
//! thread ends and its sockets and TUN queues close, the namespace and everything in it go away:
//! tests need no cleanup. Threads spawned inside the closure (e.g. dataplane workers) and child
//! processes spawned from the closure (e.g. `ip route`) inherit the
//! namespace. Needs root (CAP_SYS_ADMIN). Only built for tests or with the `testing` feature.
#![allow(unsafe_code)]

use std::io;

/// Panics with a clear message unless the process runs as root: tests that need root must fail,
/// not skip, when run without it.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "this test needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_NET_RAW): run `cargo test` as \
         root, as CI does (euid is {euid})"
    );
}

/// Moves the calling thread into a new network namespace.
fn unshare_net() -> io::Result<()> {
    // SAFETY: plain syscall; CLONE_NEWNET affects only the calling thread.
    crate::sockopt::cvt(unsafe { libc::unshare(libc::CLONE_NEWNET) }).map(drop)
}

/// Runs `f` on a new thread inside a fresh network namespace whose `lo` is up, and returns its
/// result. A panic in `f` is propagated. Panics (after [`require_root`]) if the namespace cannot
/// be created.
pub fn run_in_netns<T, F>(f: F) -> T
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    require_root();
    std::thread::scope(|s| {
        let handle = s.spawn(|| {
            unshare_net().expect("unshare(CLONE_NEWNET) failed");
            let lo = crate::link::ifindex("lo").expect("no lo in the new namespace");
            crate::link::set_up(lo).expect("cannot set lo up");
            f()
        });
        match handle.join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current_netns() -> std::path::PathBuf {
        std::fs::read_link("/proc/thread-self/ns/net").unwrap()
    }

    #[test]
    fn closure_runs_in_a_new_namespace_with_lo_up() {
        let outer = current_netns();
        let (inner, lo_flags, main_routes) = run_in_netns(|| {
            let flags = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap();
            (
                current_netns(),
                flags,
                crate::link::routes(libc::AF_INET, crate::link::TABLE_MAIN).unwrap(),
            )
        });
        assert_ne!(inner, outer, "closure ran in the caller's namespace");
        assert_eq!(current_netns(), outer, "caller's thread was moved");
        // /proc/thread-self/net/dev lists the namespace's interfaces: only lo.
        let ifaces: Vec<&str> = lo_flags
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .map(str::trim)
            .collect();
        assert_eq!(ifaces, vec!["lo"]);
        assert!(main_routes.is_empty(), "fresh main table: {main_routes:?}");
    }

    #[test]
    fn network_sysctls_apply_to_the_namespace_only() {
        let key = "net/ipv4/ip_forward";
        let outer = crate::link::get_sysctl(key).unwrap();
        let flipped = if outer == "1" { "0" } else { "1" };
        let inner = run_in_netns(|| {
            crate::link::set_sysctl(key, flipped).unwrap();
            crate::link::get_sysctl(key).unwrap()
        });
        assert_eq!(inner, flipped);
        let after = crate::link::get_sysctl(key).unwrap();
        if after != outer {
            // Put the host back before failing.
            let _ = crate::link::set_sysctl(key, &outer);
        }
        assert_eq!(after, outer, "the caller's namespace was changed");
    }

    #[test]
    fn panics_propagate() {
        let r = std::panic::catch_unwind(|| run_in_netns(|| panic!("inner boom")));
        assert!(r.is_err());
    }
}
