//! Link state notifications: a netlink socket in the `RTMGRP_LINK` group, decoded into
//! [`LinkEvent`]s (`RTM_NEWLINK` / `RTM_DELLINK`, `struct ifinfomsg` from `linux/rtnetlink.h`).
//!
//! Does not: dump the current links (subscribe first, then read the state you need), or
//! recover lost notifications by itself: when the socket's buffer overflowed, [`LinkWatch::wait`]
//! fails with `ENOBUFS` and the caller has to re-read the state it cares about.

use std::io;
use std::time::Duration;

use super::msg::*;
use super::socket::NlSocket;

/// One link change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEvent {
    /// Interface index.
    pub ifindex: u32,
    /// Interface name (`IFLA_IFNAME`), when the message carried it.
    pub name: Option<String>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Carrier present (`IFF_LOWER_UP`); a TUN device has it while a queue is open.
    pub lower_up: bool,
    /// The link was deleted (`RTM_DELLINK`).
    pub removed: bool,
}

impl LinkEvent {
    /// Whether traffic can leave through this link: present, up and with carrier.
    pub fn usable(&self) -> bool {
        !self.removed && self.up && self.lower_up
    }
}

/// A subscription to link changes in the calling thread's network namespace.
#[derive(Debug)]
pub struct LinkWatch {
    sock: NlSocket,
    buf: Vec<u8>,
}

impl LinkWatch {
    /// Subscribes to link changes.
    pub fn open() -> io::Result<Self> {
        Ok(Self {
            sock: NlSocket::open_groups(RTMGRP_LINK)?,
            buf: vec![0; 64 * 1024],
        })
    }

    /// The socket, to poll for readability.
    pub fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.sock.raw_fd()
    }

    /// Waits up to `timeout` (at least 1 ms) for one notification datagram and returns the link
    /// events in it; an empty list when nothing came. Fails with `ENOBUFS` when notifications
    /// were lost.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<Vec<LinkEvent>> {
        self.sock
            .set_timeout(timeout.max(Duration::from_millis(1)))?;
        let n = match self.sock.recv(&mut self.buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for m in messages(self.buf.get(..n).unwrap_or(&[])) {
            let m = m?;
            if m.ty == RTM_NEWLINK || m.ty == RTM_DELLINK {
                if let Some(ev) = parse_link(m.payload, m.ty == RTM_DELLINK) {
                    out.push(ev);
                }
            }
        }
        Ok(out)
    }
}

/// Decodes an `ifinfomsg` and its `IFLA_IFNAME`.
fn parse_link(p: &[u8], removed: bool) -> Option<LinkEvent> {
    let ifindex = u32_at(p, 4)?;
    let flags = u32_at(p, 8)?;
    let mut name = None;
    for (ty, v) in attrs(p.get(16..)?) {
        if ty == IFLA_IFNAME {
            let v = v.split(|&c| c == 0).next().unwrap_or(&[]);
            name = std::str::from_utf8(v).ok().map(str::to_owned);
        }
    }
    Some(LinkEvent {
        ifindex,
        name,
        up: flags & libc::IFF_UP as u32 != 0,
        lower_up: flags & libc::IFF_LOWER_UP as u32 != 0,
        removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_message_decodes_and_short_input_is_refused() {
        let mut b = MsgBuilder::new(RTM_NEWLINK, 0, 0);
        let mut hdr = [0u8; 16];
        hdr[4..8].copy_from_slice(&7u32.to_ne_bytes());
        hdr[8..12].copy_from_slice(&(libc::IFF_UP as u32).to_ne_bytes());
        b.bytes(&hdr).attr(IFLA_IFNAME, b"bh-aws0\0");
        let m = b.finish();
        let ev = parse_link(&m[16..], false).unwrap();
        assert_eq!(ev.ifindex, 7);
        assert_eq!(ev.name.as_deref(), Some("bh-aws0"));
        assert!(ev.up && !ev.lower_up && !ev.removed && !ev.usable());
        assert_eq!(parse_link(&m[16..24], false), None);
    }
}
