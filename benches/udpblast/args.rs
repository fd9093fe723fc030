//! Command-line parsing for `udpblast`: turns the argument list into a [`Command`] or a
//! [`ArgError`] with a message for the user. It only checks ranges; it opens no socket.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// Longest run `--time` accepts, so a forgotten process ends on its own.
pub(crate) const MAX_TIME: Duration = Duration::from_secs(600);
/// Most flows (sockets) one sender opens.
pub(crate) const MAX_FLOWS: usize = 1024;
/// Largest UDP payload over IPv4 (65,535 - 20 - 8).
pub(crate) const MAX_SIZE: usize = 65_507;

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    /// `udpblast send ...`
    Send(SendArgs),
    /// `udpblast recv ...`
    Recv(RecvArgs),
    /// `udpblast --help`
    Help,
}

/// Options of `udpblast send`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SendArgs {
    /// Where every datagram goes.
    pub(crate) dst: SocketAddr,
    /// UDP sockets, each bound to its own (kernel-chosen) source port: one flow each.
    pub(crate) flows: usize,
    /// UDP payload bytes per datagram.
    pub(crate) size: usize,
    /// How long to send.
    pub(crate) time: Duration,
    /// Datagrams of one flow per `sendmmsg` call (1..=64).
    pub(crate) batch: usize,
    /// Datagrams per second over all flows; `None` sends as fast as the kernel takes them.
    pub(crate) rate: Option<u64>,
}

/// Options of `udpblast recv`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RecvArgs {
    /// Address and port to receive on.
    pub(crate) bind: SocketAddr,
    /// Longest time to listen.
    pub(crate) time: Duration,
    /// Stop once nothing arrived for this long after the first datagram.
    pub(crate) idle_exit: Option<Duration>,
}

/// A bad command line: the message says which argument and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArgError(pub(crate) String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, ArgError> {
    Err(ArgError(msg.into()))
}

/// Parses the arguments after the program name.
pub(crate) fn parse(args: &[String]) -> Result<Command, ArgError> {
    let Some((mode, rest)) = args.split_first() else {
        return err("missing mode: send or recv");
    };
    match mode.as_str() {
        "send" => parse_send(rest).map(Command::Send),
        "recv" => parse_recv(rest).map(Command::Recv),
        "-h" | "--help" | "help" => Ok(Command::Help),
        other => err(format!("unknown mode {other:?}: send or recv")),
    }
}

/// Splits `--name value` pairs, rejecting unknown names, repeats and missing values.
fn pairs<'a>(args: &'a [String], known: &[&str]) -> Result<Vec<(&'a str, &'a str)>, ArgError> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    let mut it = args.iter();
    while let Some(name) = it.next() {
        if !known.contains(&name.as_str()) {
            return err(format!("unknown argument {name:?}"));
        }
        let Some(value) = it.next() else {
            return err(format!("{name} needs a value"));
        };
        if out.iter().any(|(n, _)| *n == name.as_str()) {
            return err(format!("{name} given twice"));
        }
        out.push((name.as_str(), value.as_str()));
    }
    Ok(out)
}

fn get<'a>(pairs: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

fn addr(name: &str, v: &str) -> Result<SocketAddr, ArgError> {
    v.parse()
        .or_else(|_| err(format!("{name}: {v:?} is not ADDRESS:PORT")))
}

fn int(name: &str, v: &str, min: u64, max: u64) -> Result<u64, ArgError> {
    match v.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => err(format!(
            "{name}: {v:?} is not a whole number in {min}..={max}"
        )),
    }
}

fn count(name: &str, v: &str, min: usize, max: usize) -> Result<usize, ArgError> {
    let n = int(name, v, min as u64, max as u64)?;
    usize::try_from(n).or_else(|_| err(format!("{name}: {v:?} is too large")))
}

/// Seconds, fractional allowed, greater than 0 and at most [`MAX_TIME`].
fn secs(name: &str, v: &str) -> Result<Duration, ArgError> {
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= MAX_TIME.as_secs_f64() => {
            Ok(Duration::from_secs_f64(s))
        }
        _ => err(format!(
            "{name}: {v:?} is not a number of seconds in (0, {}]",
            MAX_TIME.as_secs()
        )),
    }
}

fn parse_send(args: &[String]) -> Result<SendArgs, ArgError> {
    let p = pairs(
        args,
        &["--dst", "--flows", "--size", "--time", "--batch", "--rate"],
    )?;
    let dst = addr(
        "--dst",
        get(&p, "--dst").ok_or_else(|| ArgError("send needs --dst ADDRESS:PORT".into()))?,
    )?;
    if dst.port() == 0 || dst.ip().is_unspecified() {
        return err("--dst needs a real address and a non-zero port");
    }
    let time = secs(
        "--time",
        get(&p, "--time").ok_or_else(|| ArgError("send needs --time SECONDS".into()))?,
    )?;
    let flows = get(&p, "--flows").map_or(Ok(1), |v| count("--flows", v, 1, MAX_FLOWS))?;
    let size = get(&p, "--size").map_or(Ok(1372), |v| count("--size", v, 1, MAX_SIZE))?;
    let batch = get(&p, "--batch").map_or(Ok(8), |v| count("--batch", v, 1, bh_sys::MAX_BATCH))?;
    let rate = get(&p, "--rate")
        .map(|v| int("--rate", v, 1, 100_000_000))
        .transpose()?;
    Ok(SendArgs {
        dst,
        flows,
        size,
        time,
        batch,
        rate,
    })
}

fn parse_recv(args: &[String]) -> Result<RecvArgs, ArgError> {
    let p = pairs(args, &["--bind", "--time", "--idle-exit"])?;
    let bind = addr(
        "--bind",
        get(&p, "--bind").ok_or_else(|| ArgError("recv needs --bind ADDRESS:PORT".into()))?,
    )?;
    let time = secs(
        "--time",
        get(&p, "--time").ok_or_else(|| ArgError("recv needs --time SECONDS".into()))?,
    )?;
    let idle_exit = get(&p, "--idle-exit")
        .map(|v| secs("--idle-exit", v))
        .transpose()?;
    Ok(RecvArgs {
        bind,
        time,
        idle_exit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn send_with_every_option() {
        let c = parse(&argv(
            "send --dst 10.2.0.2:9000 --flows 64 --size 1372 --time 8 --batch 16 --rate 250000",
        ))
        .unwrap();
        assert_eq!(
            c,
            Command::Send(SendArgs {
                dst: "10.2.0.2:9000".parse().unwrap(),
                flows: 64,
                size: 1372,
                time: Duration::from_secs(8),
                batch: 16,
                rate: Some(250_000),
            })
        );
    }

    #[test]
    fn send_defaults() {
        let Command::Send(s) = parse(&argv("send --time 0.5 --dst [::1]:7")).unwrap() else {
            panic!("not send");
        };
        assert_eq!(
            (s.flows, s.size, s.batch, s.rate),
            (1, 1372, 8, None),
            "defaults"
        );
        assert_eq!(s.time, Duration::from_millis(500));
        assert!(s.dst.is_ipv6());
    }

    #[test]
    fn recv_with_and_without_idle_exit() {
        let c = parse(&argv("recv --bind 10.2.0.2:9000 --time 20 --idle-exit 2")).unwrap();
        assert_eq!(
            c,
            Command::Recv(RecvArgs {
                bind: "10.2.0.2:9000".parse().unwrap(),
                time: Duration::from_secs(20),
                idle_exit: Some(Duration::from_secs(2)),
            })
        );
        let Command::Recv(r) = parse(&argv("recv --time 1 --bind 0.0.0.0:0")).unwrap() else {
            panic!("not recv");
        };
        assert_eq!(r.idle_exit, None);
    }

    #[test]
    fn help() {
        assert_eq!(parse(&argv("--help")).unwrap(), Command::Help);
    }

    #[test]
    fn bad_input_is_an_error_naming_the_argument() {
        let cases = [
            ("", "missing mode"),
            ("blast", "unknown mode"),
            ("send --time 1", "--dst"),
            ("send --dst 10.0.0.1:9 ", "--time"),
            ("send --dst 10.0.0.1 --time 1", "ADDRESS:PORT"),
            ("send --dst 10.0.0.1:0 --time 1", "non-zero port"),
            ("send --dst 0.0.0.0:9 --time 1", "real address"),
            ("send --dst 10.0.0.1:9 --time 0", "--time"),
            ("send --dst 10.0.0.1:9 --time -3", "--time"),
            ("send --dst 10.0.0.1:9 --time NaN", "--time"),
            ("send --dst 10.0.0.1:9 --time inf", "--time"),
            ("send --dst 10.0.0.1:9 --time 601", "--time"),
            ("send --dst 10.0.0.1:9 --time 1 --flows 0", "--flows"),
            ("send --dst 10.0.0.1:9 --time 1 --flows 1025", "--flows"),
            (
                "send --dst 10.0.0.1:9 --time 1 --flows 99999999999999999999999",
                "--flows",
            ),
            ("send --dst 10.0.0.1:9 --time 1 --size 65508", "--size"),
            ("send --dst 10.0.0.1:9 --time 1 --size 0", "--size"),
            ("send --dst 10.0.0.1:9 --time 1 --batch 65", "--batch"),
            ("send --dst 10.0.0.1:9 --time 1 --batch x", "--batch"),
            ("send --dst 10.0.0.1:9 --time 1 --rate 0", "--rate"),
            ("send --dst 10.0.0.1:9 --time 1 --flows", "needs a value"),
            ("send --dst 10.0.0.1:9 --time 1 --time 2", "twice"),
            (
                "send --dst 10.0.0.1:9 --time 1 --bind 1.2.3.4:5",
                "unknown argument",
            ),
            ("recv --bind 10.0.0.1:9", "--time"),
            ("recv --time 1", "--bind"),
            (
                "recv --bind 10.0.0.1:9 --time 1 --idle-exit 0",
                "--idle-exit",
            ),
            (
                "recv --bind 10.0.0.1:9 --time 1 --flows 2",
                "unknown argument",
            ),
        ];
        for (line, want) in cases {
            let e = parse(&argv(line)).expect_err(line);
            assert!(e.0.contains(want), "{line:?}: {e} should mention {want}");
        }
    }
}
