//! `udpblast`: a small-packet UDP load generator and counter for `benches/packets` (issue 6).
//!
//! `udpblast send` offers many flows of fixed-size datagrams with `sendmmsg` (no GSO, so no
//! offload can merge them back into large packets); `udpblast recv` counts what arrives with
//! `recvmmsg` and UDP GRO. Both print one JSON line when done. Exit codes: 0 done, 1 a socket
//! error, 2 a bad command line.
//!
//! It is a measuring tool, not a test: it checks no payloads and keeps no per-packet state.

mod args;
mod recv;
mod send;

use std::net::SocketAddr;
use std::process::ExitCode;

use args::{Command, SendArgs};

const USAGE: &str = "\
usage: udpblast send --dst ADDR:PORT --time SECS [--flows N] [--size BYTES] [--batch B] [--rate PPS]
       udpblast recv --bind ADDR:PORT --time SECS [--idle-exit SECS]

send  N flows (UDP sockets on distinct kernel-chosen source ports, default 1, at most 1024)
      take turns; each sends B datagrams (default 8, at most 64) of BYTES UDP payload (default
      1372: 1400-byte IPv4 packets) per sendmmsg call, no GSO. --rate paces all flows together
      to PPS datagrams/s (token bucket). Stops after SECS (at most 600).
recv  counts datagrams to ADDR:PORT (UDP GRO buffers by segment) until SECS have passed, or
      until nothing arrived for --idle-exit SECS after the first datagram.
Both print one JSON line: counts, seconds (send: the whole loop; recv: first to last
datagram) and pps.
";

fn send_json(a: &SendArgs, r: &send::SendReport) -> String {
    let err = r
        .last_error
        .as_deref()
        .map_or_else(|| "null".to_string(), |e| format!("{e:?}"));
    format!(
        "{{\"mode\":\"send\",\"dst\":\"{}\",\"flows\":{},\"size\":{},\"batch\":{},\"rate\":{},\
         \"sent\":{},\"send_errors\":{},\"blocked\":{},\"seconds\":{:.6},\"pps\":{:.0},\"last_error\":{err}}}",
        a.dst,
        a.flows,
        a.size,
        a.batch,
        a.rate.unwrap_or(0),
        r.sent,
        r.errors,
        r.blocked,
        r.seconds,
        r.pps(),
    )
}

fn recv_json(bound: SocketAddr, r: &recv::RecvReport) -> String {
    format!(
        "{{\"mode\":\"recv\",\"bind\":\"{}\",\"gro\":{},\"received\":{},\"bytes\":{},\
         \"gro_buffers\":{},\"truncated\":{},\"seconds\":{:.6},\"pps\":{:.0}}}",
        bound,
        r.gro,
        r.received,
        r.bytes,
        r.gro_buffers,
        r.truncated,
        r.seconds,
        r.pps(),
    )
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match args::parse(&argv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("udpblast: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let out = match &cmd {
        Command::Help => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Command::Send(a) => send::run(a).map(|r| send_json(a, &r)),
        Command::Recv(a) => recv::Receiver::bind(a.bind).and_then(|rx| {
            let bound = rx.local_addr()?;
            rx.run(a).map(|r| recv_json(bound, &r))
        }),
    };
    match out {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("udpblast: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::thread;
    use std::time::Duration;

    use super::*;
    use crate::args::RecvArgs;

    #[test]
    fn send_and_recv_over_loopback() {
        let rx = recv::Receiver::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let dst = rx.local_addr().unwrap();
        let rargs = RecvArgs {
            bind: dst,
            time: Duration::from_secs(20),
            idle_exit: Some(Duration::from_secs(2)),
        };
        let counter = thread::spawn(move || rx.run(&rargs).unwrap());
        let sargs = SendArgs {
            dst,
            flows: 4,
            size: 1372,
            time: Duration::from_secs(1),
            batch: 8,
            rate: None,
        };
        let sent = send::run(&sargs).unwrap();
        let got = counter.join().unwrap();
        let line = send_json(&sargs, &sent);
        assert!(
            line.starts_with("{\"mode\":\"send\"") && line.ends_with('}'),
            "{line}"
        );
        assert!(sent.sent > 0, "nothing sent: {line}");
        assert!(got.received > 0, "nothing received of {}", sent.sent);
        assert!(
            got.received <= sent.sent,
            "received {} > sent {}",
            got.received,
            sent.sent
        );
        assert_eq!(got.bytes, got.received * 1372, "whole datagrams only");
        assert_eq!(got.truncated, 0);
    }

    #[test]
    fn paced_send_stays_near_its_rate_bound() {
        // Not a timing assertion: a paced sender can never send more than rate * time + burst.
        let rx = recv::Receiver::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let sargs = SendArgs {
            dst: rx.local_addr().unwrap(),
            flows: 2,
            size: 100,
            time: Duration::from_millis(500),
            batch: 4,
            rate: Some(2000),
        };
        let sent = send::run(&sargs).unwrap();
        assert!(sent.sent > 0);
        let bound = 2000.0 * sent.seconds + 8.0;
        assert!(
            sent.sent as f64 <= bound,
            "{} sent in {} s",
            sent.sent,
            sent.seconds
        );
    }
}
