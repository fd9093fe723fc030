//! The sender: `--flows` UDP sockets (one kernel-chosen source port each, so one flow each)
//! take turns, each sending `--batch` datagrams per `sendmmsg` call, until `--time` is up.
//!
//! Consecutive datagrams on the wire therefore come in runs of `--batch` per flow, the flows
//! round-robin. It does not use UDP GSO (every datagram is its own `sendmmsg` message), does
//! not connect its sockets, and does not number its datagrams (the receiver only counts).
//! A full socket buffer (`EAGAIN`) or `ENOBUFS` is counted and answered with a short sleep
//! that doubles up to 1 ms, so it never spins on a stuck socket.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::thread;
use std::time::{Duration, Instant};

use bh_sys::SendMsg;
use bh_sys::udp::{UdpOptions, UdpSocket};

use crate::args::SendArgs;

/// Longest sleep after a full socket buffer, an error, or while waiting for rate tokens.
const MAX_BACKOFF: Duration = Duration::from_millis(1);
/// First sleep after a full socket buffer or an error.
const MIN_BACKOFF: Duration = Duration::from_micros(20);
/// Socket send buffer asked for (forced when privileged, else capped by `wmem_max`).
const SEND_BUFFER: usize = 1 << 20;

/// What a send run did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SendReport {
    /// Datagrams the kernel accepted.
    pub(crate) sent: u64,
    /// `sendmmsg` calls that failed on their first datagram (that datagram was not sent).
    pub(crate) errors: u64,
    /// Calls that found the socket buffer full and sent nothing.
    pub(crate) blocked: u64,
    /// Seconds from the first call until the loop ended.
    pub(crate) seconds: f64,
    /// The last error, for the report.
    pub(crate) last_error: Option<String>,
}

impl SendReport {
    /// Datagrams per second.
    pub(crate) fn pps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.sent as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
#[derive(Debug)]
struct Pacer {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Pacer {
    fn new(rate: u64, batch: usize, now: Instant) -> Self {
        let rate = rate as f64;
        // About 1 ms of tokens, and never less than one batch, so pacing does not cut batches.
        let burst = (rate / 1000.0).max(batch as f64);
        Self {
            rate,
            burst,
            tokens: batch as f64,
            last: now,
        }
    }

    /// Takes up to `want` tokens.
    fn take(&mut self, want: usize, now: Instant) -> usize {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        let n = (self.tokens.floor() as usize).min(want);
        self.tokens -= n as f64;
        n
    }

    /// Gives back tokens taken but not used.
    fn refund(&mut self, n: usize) {
        self.tokens = (self.tokens + n as f64).min(self.burst);
    }

    /// How long until one token is there, at most [`MAX_BACKOFF`].
    fn wait(&self) -> Duration {
        let need = (1.0 - self.tokens).max(0.0) / self.rate;
        Duration::from_secs_f64(need.min(MAX_BACKOFF.as_secs_f64()))
    }
}

/// Opens one socket per flow, bound to the unspecified address of `dst`'s family with a port
/// the kernel picks.
pub(crate) fn open_flows(dst: SocketAddr, flows: usize) -> io::Result<Vec<UdpSocket>> {
    let any = match dst {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    let opts = UdpOptions {
        reuse_port: false,
        buffer: SEND_BUFFER,
    };
    (0..flows).map(|_| UdpSocket::bind(any, &opts)).collect()
}

/// Sends until `args.time` has passed; see the module docs.
pub(crate) fn run(args: &SendArgs) -> io::Result<SendReport> {
    let socks = open_flows(args.dst, args.flows)?;
    let payload: Vec<u8> = (0..args.size).map(|i| (i % 251) as u8).collect();
    let msgs = vec![
        SendMsg {
            data: &payload,
            dst: args.dst,
        };
        args.batch
    ];
    let start = Instant::now();
    let deadline = start + args.time;
    let mut pacer = args.rate.map(|r| Pacer::new(r, args.batch, start));
    let mut rep = SendReport {
        sent: 0,
        errors: 0,
        blocked: 0,
        seconds: 0.0,
        last_error: None,
    };
    let mut backoff = MIN_BACKOFF;
    'run: loop {
        for sock in &socks {
            let now = Instant::now();
            if now >= deadline {
                break 'run;
            }
            let want = match pacer.as_mut() {
                Some(p) => match p.take(args.batch, now) {
                    0 => {
                        thread::sleep(p.wait().min(deadline - now));
                        continue;
                    }
                    n => n,
                },
                None => args.batch,
            };
            let sent = match sock.send_batch(&msgs[..want]) {
                Ok(0) => {
                    rep.blocked += 1;
                    0
                }
                Ok(n) => n,
                Err(e) => {
                    rep.errors += 1;
                    rep.last_error = Some(e.to_string());
                    0
                }
            };
            if let Some(p) = pacer.as_mut() {
                p.refund(want - sent.min(want));
            }
            if sent == 0 {
                thread::sleep(backoff.min(deadline - now));
                backoff = (backoff * 2).min(MAX_BACKOFF);
            } else {
                rep.sent += sent as u64;
                backoff = MIN_BACKOFF;
            }
        }
    }
    rep.seconds = Instant::now()
        .saturating_duration_since(start)
        .as_secs_f64();
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_gives_rate_times_time_and_caps_the_burst() {
        let t0 = Instant::now();
        let mut p = Pacer::new(10_000, 8, t0);
        assert_eq!(p.take(64, t0), 8, "starts with one batch");
        assert_eq!(p.take(64, t0), 0);
        assert!(p.wait() > Duration::ZERO && p.wait() <= MAX_BACKOFF);
        // 1 ms later: 10 tokens.
        assert_eq!(p.take(64, t0 + Duration::from_millis(1)), 10);
        // A long pause saves up only the burst (max(10, 8) tokens), not 10,000.
        assert_eq!(p.take(64, t0 + Duration::from_secs(1)), 10);
        p.refund(4);
        assert_eq!(p.take(3, t0 + Duration::from_secs(1)), 3);
        assert_eq!(p.take(64, t0 + Duration::from_secs(1)), 1);
    }
}
