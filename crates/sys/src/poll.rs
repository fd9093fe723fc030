//! A small level-triggered epoll wrapper for readability, and an eventfd to wake a worker.
//!
//! Does not do edge-triggered or write-readiness polling, timers or signal handling.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::sockopt::cvt;

/// An epoll instance.
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

/// A reusable buffer of ready events filled by [`Epoll::wait`].
pub struct Events {
    buf: Vec<libc::epoll_event>,
    len: usize,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// One ready file descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// The token given to [`Epoll::add`].
    pub token: u64,
    /// Data (or a hang-up) is waiting to be read.
    pub readable: bool,
    /// An error or hang-up condition (`EPOLLERR` / `EPOLLHUP`).
    pub error: bool,
}

impl Events {
    /// Room for up to `capacity` events per wait (at least 1). Allocates once, here.
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, 1024);
        Self {
            buf: vec![libc::epoll_event { events: 0, u64: 0 }; capacity],
            len: 0,
        }
    }

    /// The events of the last wait.
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        self.buf.iter().take(self.len).map(|e| {
            let bits = e.events;
            Event {
                token: e.u64,
                readable: bits & (libc::EPOLLIN as u32) != 0,
                error: bits & ((libc::EPOLLERR | libc::EPOLLHUP) as u32) != 0,
            }
        })
    }

    /// How many events the last wait returned.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the last wait returned no event.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Epoll {
    /// Creates an epoll instance (`EPOLL_CLOEXEC`).
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Watches `fd` for readability (level-triggered), reporting it as `token`.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token)
    }

    /// Changes the token of a watched `fd`.
    pub fn modify(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token)
    }

    /// Stops watching `fd`.
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: a null event pointer is allowed for EPOLL_CTL_DEL since Linux 2.6.9.
        cvt(unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        })
        .map(drop)
    }

    fn ctl(&self, op: i32, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `ev` is a live epoll_event the kernel only reads.
        cvt(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) }).map(drop)
    }

    /// Waits up to `timeout_ms` (`-1`: forever, `0`: poll) for events, replacing the contents
    /// of `events`. Returns the count; `Ok(0)` on timeout or when interrupted by a signal.
    pub fn wait(&self, events: &mut Events, timeout_ms: i32) -> io::Result<usize> {
        events.len = 0;
        let max = i32::try_from(events.buf.len()).unwrap_or(i32::MAX);
        // SAFETY: the kernel writes at most `max` events into `events.buf`, which holds that many.
        let ret = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                events.buf.as_mut_ptr(),
                max,
                timeout_ms,
            )
        };
        match cvt(ret) {
            Ok(n) => {
                events.len = usize::try_from(n).unwrap_or(0).min(events.buf.len());
                Ok(events.len)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }
}

impl AsRawFd for Epoll {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// A non-blocking eventfd counter: [`EventFd::notify`] makes it readable for an [`Epoll`] until
/// [`EventFd::drain`] is called. Used to tell workers to stop or reload.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// Creates an eventfd (`EFD_NONBLOCK | EFD_CLOEXEC`) with count 0.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Adds 1 to the counter, waking anyone polling for readability.
    pub fn notify(&self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of a live u64, as eventfd requires.
        let ret = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        match crate::sockopt::cvt_size(ret) {
            Ok(_) => Ok(()),
            // The counter is at its maximum: it is readable anyway.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Reads and resets the counter; returns how many notifications were pending (0 if none).
    pub fn drain(&self) -> io::Result<u64> {
        let mut value: u64 = 0;
        // SAFETY: reads into the 8 bytes of a live u64, as eventfd requires.
        let ret = unsafe { libc::read(self.fd.as_raw_fd(), (&mut value as *mut u64).cast(), 8) };
        match crate::sockopt::cvt_size(ret) {
            Ok(_) => Ok(value),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn eventfd_wakes_epoll_from_another_thread() {
        let ep = Epoll::new().unwrap();
        let efd = Arc::new(EventFd::new().unwrap());
        ep.add(efd.as_raw_fd(), 7).unwrap();
        let mut events = Events::with_capacity(4);
        assert_eq!(ep.wait(&mut events, 0).unwrap(), 0, "nothing pending yet");
        assert!(events.is_empty());

        let e2 = Arc::clone(&efd);
        let t = std::thread::spawn(move || {
            e2.notify().unwrap();
            e2.notify().unwrap();
        });
        assert_eq!(ep.wait(&mut events, 5000).unwrap(), 1);
        let ev: Vec<Event> = events.iter().collect();
        assert_eq!(ev[0].token, 7);
        assert!(ev[0].readable && !ev[0].error);
        t.join().unwrap();
        assert_eq!(efd.drain().unwrap(), 2);
        assert_eq!(efd.drain().unwrap(), 0);
        assert_eq!(ep.wait(&mut events, 0).unwrap(), 0, "drained");

        ep.modify(efd.as_raw_fd(), 9).unwrap();
        efd.notify().unwrap();
        ep.wait(&mut events, 1000).unwrap();
        assert_eq!(events.iter().next().map(|e| e.token), Some(9));
        ep.delete(efd.as_raw_fd()).unwrap();
        assert_eq!(ep.wait(&mut events, 0).unwrap(), 0, "deleted");
    }
}
