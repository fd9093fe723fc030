//! The IKE thread's inbox: port-500 datagrams and the dataplane's port-4500 IKE messages are
//! moved by two small threads into one bounded channel that the IKE thread blocks on, so a
//! message wakes it at once instead of waiting for its next tick. It does not parse or
//! handle messages, and drops port-500 datagrams when the inbox is full.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};

use bh_dataplane::IkeDatagram;

use super::{IKE_PORT, MAX_DATAGRAM, TICK};

/// IKE messages waiting for the thread (port 500 and the dataplane's port 4500 together).
pub(super) const INBOX: usize = 1024;

/// Feeds port-500 datagrams into the IKE thread's inbox until `done` (the socket's read
/// timeout, [`TICK`], bounds how late it sees it).
pub(super) fn read_port500(socket: &UdpSocket, inbox: &SyncSender<IkeDatagram>, done: &AtomicBool) {
    let local500 = socket.local_addr().ok();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !done.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, src)) => {
                let local = local500.unwrap_or_else(|| SocketAddr::new(src.ip(), IKE_PORT));
                let Some(data) = buf.get(..n) else { continue };
                let d = IkeDatagram {
                    src,
                    local,
                    data: data.to_vec(),
                };
                match inbox.try_send(d) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        tracing::debug!(%src, "IKE inbox full; datagram dropped");
                    }
                    Err(TrySendError::Disconnected(_)) => return,
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => tracing::warn!(error = %e, "IKE socket receive failed"),
        }
    }
}

/// Moves the dataplane's port-4500 IKE messages into the inbox until `done`; sets `done` when
/// the dataplane dropped its end (the IKE thread then ends, as it did before the inbox).
///
/// Neither feeder looks at the service's stop flag: the inbox must stay connected until the
/// IKE thread has seen the flag itself, or it would take the disconnection for the
/// dataplane's and skip deleting its SAs.
pub(super) fn forward_queue(
    queue: &Receiver<IkeDatagram>,
    inbox: &SyncSender<IkeDatagram>,
    done: &AtomicBool,
) {
    while !done.load(Ordering::Relaxed) {
        match queue.recv_timeout(TICK) {
            Ok(d) => {
                if inbox.send(d).is_err() {
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                done.store(true, Ordering::Relaxed);
                return;
            }
        }
    }
}
