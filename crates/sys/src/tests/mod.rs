//! Tests against the real kernel, each in a fresh network namespace (they need root and fail
//! with a clear message without it; see [`crate::netns::require_root`]).

mod rawesp;
mod tun_link;
mod udp;

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::mmsg::RecvMeta;
use crate::poll::{Epoll, Events};

/// Worker threads own queues and sockets and may share the epoll / eventfd.
#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<crate::tun::TunQueue>();
    check::<crate::tun::Tun>();
    check::<crate::udp::UdpSocket>();
    check::<crate::rawesp::RawEsp>();
    check::<crate::poll::Epoll>();
    check::<crate::poll::EventFd>();
    check::<crate::link::Netlink>();
    fn check_send<T: Send>() {}
    check_send::<Events>();
}

/// Runs `ip` with `args` in the calling thread's namespace and returns its stdout.
pub(crate) fn ip(args: &[&str]) -> String {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("cannot run `ip` (iproute2)");
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Receives on `fds` (via `recv`, which returns the datagrams read into the given storage)
/// until `want` datagrams arrived or 10 seconds passed; returns (payload, meta) pairs.
pub(crate) fn recv_all<S: AsRawFd>(
    socks: &[&S],
    want: usize,
    recv: impl Fn(&S, &mut [&mut [u8]], &mut [RecvMeta]) -> std::io::Result<usize>,
) -> Vec<(Vec<u8>, RecvMeta)> {
    let ep = Epoll::new().unwrap();
    for (i, s) in socks.iter().enumerate() {
        ep.add(s.as_raw_fd(), i as u64).unwrap();
    }
    let mut events = Events::with_capacity(8);
    let mut storage = vec![vec![0u8; 65536]; crate::MAX_BATCH];
    let mut meta = [RecvMeta::default(); crate::MAX_BATCH];
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < want && Instant::now() < deadline {
        ep.wait(&mut events, 200).unwrap();
        for ev in events.iter() {
            let s = socks[ev.token as usize];
            let mut bufs: Vec<&mut [u8]> = storage.iter_mut().map(|v| v.as_mut_slice()).collect();
            let n = recv(s, &mut bufs, &mut meta).unwrap();
            for (b, m) in bufs.iter().zip(meta.iter()).take(n) {
                got.push((b[..m.len].to_vec(), *m));
            }
        }
    }
    got
}

/// The Internet checksum (RFC 1071) of `data`.
pub(crate) fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
