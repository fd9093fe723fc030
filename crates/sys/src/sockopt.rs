//! Thin safe wrappers over `socket`, `setsockopt`, `getsockopt`, `bind` and `getsockname`.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::addr::SockAddrBuf;

/// Turns a `-1` return into the thread's errno.
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Turns a `-1` return of a size-returning call into the thread's errno.
pub(crate) fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

/// `socket(domain, ty | SOCK_CLOEXEC, protocol)`.
pub(crate) fn socket(domain: i32, ty: i32, protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = cvt(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) })?;
    // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt` with an `int` value.
pub(crate) fn set_int(fd: &impl AsRawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: the pointer and length describe a live `c_int` on the stack.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            mem::size_of::<i32>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `setsockopt(SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF)` with the classic BPF program `prog`.
pub(crate) fn attach_reuseport_cbpf(
    fd: &impl AsRawFd,
    prog: &[libc::sock_filter],
) -> io::Result<()> {
    let len = u16::try_from(prog.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "BPF program too long"))?;
    let fprog = libc::sock_fprog {
        len,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `len` live instructions for the duration of the call; the
    // kernel copies the program and never writes through the pointer.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&fprog as *const libc::sock_fprog).cast(),
            mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `getsockopt` of an `int` value.
pub(crate) fn get_int(fd: &impl AsRawFd, level: i32, name: i32) -> io::Result<i32> {
    let mut value: i32 = 0;
    let mut len = mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: the pointer and length describe a live `c_int` the kernel may write.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut i32).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// Sets `SO_RCVTIMEO`, so a blocking receive fails with `EAGAIN` after `timeout`.
pub(crate) fn set_recv_timeout(fd: &impl AsRawFd, timeout: std::time::Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_usec: libc::suseconds_t::from(timeout.subsec_micros() as i32),
    };
    // SAFETY: the pointer and length describe a live `timeval` on the stack.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `bind(fd, addr)`.
pub(crate) fn bind(fd: &impl AsRawFd, addr: &SocketAddr) -> io::Result<()> {
    let mut buf = SockAddrBuf::zeroed();
    let len = buf.set(addr);
    // SAFETY: `buf` holds a valid sockaddr of `len` bytes.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), buf.as_ptr(), len) }).map(drop)
}

/// `getsockname(fd)`.
pub(crate) fn local_addr(fd: RawFd) -> io::Result<SocketAddr> {
    let mut buf = SockAddrBuf::zeroed();
    let mut len = SockAddrBuf::CAPACITY;
    // SAFETY: `buf` has `len` writable bytes; the kernel updates `len`.
    cvt(unsafe { libc::getsockname(fd, buf.as_mut_ptr(), &mut len) })?;
    buf.get(len)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected address family"))
}

/// Sets a buffer size with the `*FORCE` option (needs CAP_NET_ADMIN, ignores `rmem_max` /
/// `wmem_max`), falling back to the plain option when that is not permitted.
pub(crate) fn set_buffer(fd: &impl AsRawFd, force: i32, plain: i32, size: usize) -> io::Result<()> {
    let size = i32::try_from(size).unwrap_or(i32::MAX / 2);
    match set_int(fd, libc::SOL_SOCKET, force, size) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            set_int(fd, libc::SOL_SOCKET, plain, size)
        }
        Err(e) => Err(e),
    }
}
