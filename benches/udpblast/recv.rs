//! The receiver: one UDP socket with UDP GRO on, drained with `recvmmsg` in batches of up to
//! 64 buffers of 64 KiB, counting datagrams (a GRO buffer counts as `len / gso_size` rounded
//! up) and payload bytes until `--time` is up or, with `--idle-exit`, until nothing arrived for
//! that long after the first datagram.
//!
//! It never blocks: when the socket is empty it sleeps (50 us, doubling up to 1 ms while it
//! stays empty), so it never waits past its deadline. It deliberately does not wait in `epoll`
//! or `poll`: a socket in an epoll set makes every arriving datagram run the epoll wake-up
//! callback (`sock_def_readable` -> `ep_poll_callback`), which on this VM cost about 11 % of
//! the CPU of the sender-side kernel path in a 200k pps run. It does not check payloads,
//! sequence numbers or senders: every datagram to the port counts.

use std::io;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use bh_sys::udp::{UdpOptions, UdpSocket};
use bh_sys::{MAX_BATCH, RecvMeta};

use crate::args::RecvArgs;

/// Room per receive buffer: a whole GRO train (at most 64 segments, 64 KiB in all).
const BUF_SIZE: usize = 1 << 16;
/// Socket receive buffer asked for (forced when privileged, else capped by `rmem_max`).
const RECV_BUFFER: usize = 32 << 20;
/// First sleep when the socket is found empty.
const MIN_IDLE_SLEEP: Duration = Duration::from_micros(50);
/// Longest sleep while the socket stays empty.
const MAX_IDLE_SLEEP: Duration = Duration::from_millis(1);
/// Most `recvmmsg` calls in a row before the deadline is looked at again.
const DRAIN_CALLS: usize = 1024;

/// What a receive run counted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RecvReport {
    /// Datagrams received (GRO buffers counted by segment).
    pub(crate) received: u64,
    /// Payload bytes received.
    pub(crate) bytes: u64,
    /// Receive buffers that held more than one datagram (GRO coalesced them).
    pub(crate) gro_buffers: u64,
    /// Messages the kernel cut short (should stay 0: buffers hold 64 KiB).
    pub(crate) truncated: u64,
    /// Seconds from the first datagram to the last.
    pub(crate) seconds: f64,
    /// Whether UDP GRO could be enabled on the socket.
    pub(crate) gro: bool,
}

impl RecvReport {
    /// Datagrams per second between the first and the last.
    pub(crate) fn pps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.received as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// How many datagrams one received buffer of `len` bytes holds when the kernel reports
/// segments of `stride` bytes (UDP GRO; `stride == len` without it): `len / stride` rounded up,
/// the last segment possibly shorter. An empty datagram, or a stride of 0, is one datagram.
pub(crate) fn segments(len: usize, stride: usize) -> u64 {
    if len == 0 || stride == 0 {
        return 1;
    }
    len.div_ceil(stride) as u64
}

/// A bound receiver, ready to [`Receiver::run`].
#[derive(Debug)]
pub(crate) struct Receiver {
    sock: UdpSocket,
    gro: bool,
}

impl Receiver {
    /// Binds `addr` and turns UDP GRO on if the kernel has it.
    pub(crate) fn bind(addr: SocketAddr) -> io::Result<Self> {
        let opts = UdpOptions {
            reuse_port: false,
            buffer: RECV_BUFFER,
        };
        let sock = UdpSocket::bind(addr, &opts)?;
        let gro = sock.enable_gro().is_ok();
        Ok(Self { sock, gro })
    }

    /// The bound address (with the port the kernel chose for port 0).
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// Counts datagrams until `args.time` is up or the idle time passes; see the module docs.
    pub(crate) fn run(&self, args: &RecvArgs) -> io::Result<RecvReport> {
        let mut store = vec![0u8; BUF_SIZE * MAX_BATCH];
        let mut bufs: Vec<&mut [u8]> = store.chunks_mut(BUF_SIZE).collect();
        let mut meta = [RecvMeta::default(); MAX_BATCH];
        let mut rep = RecvReport {
            received: 0,
            bytes: 0,
            gro_buffers: 0,
            truncated: 0,
            seconds: 0.0,
            gro: self.gro,
        };
        let start = Instant::now();
        let deadline = start + args.time;
        let mut first: Option<Instant> = None;
        let mut last = start;
        let mut idle_sleep = MIN_IDLE_SLEEP;
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if let (Some(idle), Some(_)) = (args.idle_exit, first) {
                if now.saturating_duration_since(last) >= idle {
                    break;
                }
            }
            let mut empty = true;
            for _ in 0..DRAIN_CALLS {
                let got = self.sock.recv_batch(&mut bufs, &mut meta)?;
                if got == 0 {
                    break;
                }
                empty = false;
                let t = Instant::now();
                first.get_or_insert(t);
                last = t;
                for m in meta.iter().take(got) {
                    let n = segments(m.len, m.stride);
                    rep.received += n;
                    rep.bytes += m.len as u64;
                    rep.gro_buffers += u64::from(n > 1);
                    rep.truncated += u64::from(m.truncated);
                }
            }
            if empty {
                thread::sleep(idle_sleep.min(deadline.saturating_duration_since(now)));
                idle_sleep = (idle_sleep * 2).min(MAX_IDLE_SLEEP);
            } else {
                idle_sleep = MIN_IDLE_SLEEP;
            }
        }
        if let Some(f) = first {
            rep.seconds = last.saturating_duration_since(f).as_secs_f64();
        }
        Ok(rep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gro_segments_round_up_the_short_last_one() {
        assert_eq!(segments(1372, 1372), 1, "one plain datagram");
        assert_eq!(segments(1372 * 44, 1372), 44, "a full GRO train");
        assert_eq!(segments(1372 * 3 + 100, 1372), 4, "short last segment");
        assert_eq!(segments(65_535, 1), 65_535);
        assert_eq!(segments(0, 0), 1, "an empty datagram is one");
        assert_eq!(segments(0, 1372), 1);
        assert_eq!(segments(500, 0), 1, "no stride: one datagram");
        assert_eq!(segments(500, 9000), 1, "stride past len");
    }
}
