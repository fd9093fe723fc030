//! A worker applying tunnel additions and removals from its [`Mailbox`](crate::slots::Mailbox)
//! between batches (never inside the packet path): it registers or drops the TUN queue in its
//! epoll set and resizes its per-tunnel state.

use std::time::Instant;

use bh_sys::tun::VNET_HDR_LEN;

use super::{TOKEN_TUN, Worker};
use crate::offload::MAX_SUPER;
use crate::slots::Command;

impl Worker {
    /// Applies every queued [`Command`].
    pub(super) fn apply_commands(&mut self) {
        for c in self.mailbox.take() {
            match c {
                Command::Add {
                    index,
                    queue,
                    keepalive,
                } => {
                    let vnet = queue.vnet_hdr().unwrap_or(false);
                    // As at start (`Worker::new`): UDP super-packets only where the kernel took
                    // USO for the device.
                    let uso_flags = libc::TUN_F_USO4 | libc::TUN_F_USO6;
                    let uso = vnet && queue.offloads() & uso_flags == uso_flags;
                    if let Err(e) = self.epoll.add(queue.as_raw_fd(), TOKEN_TUN + index as u64) {
                        tracing::error!(worker = self.id, tunnel = index, error = %e, "cannot poll the new tunnel's queue");
                        continue;
                    }
                    self.tun.set(index, queue);
                    if self.vnet.len() <= index {
                        self.vnet.resize(index + 1, false);
                    }
                    if self.uso.len() <= index {
                        self.uso.resize(index + 1, false);
                    }
                    if let Some(u) = self.uso.get_mut(index) {
                        *u = uso;
                    }
                    if self.next_keepalive.len() <= index {
                        self.next_keepalive.resize(index + 1, None);
                    }
                    if let Some(v) = self.vnet.get_mut(index) {
                        *v = vnet;
                    }
                    if let Some(k) = self.next_keepalive.get_mut(index) {
                        *k = keepalive.then(Instant::now);
                    }
                    // The first vnet-header queue of this worker needs the super-packet buffer.
                    if vnet && self.tun_rx.is_empty() {
                        self.tun_rx = vec![0u8; VNET_HDR_LEN + MAX_SUPER].into_boxed_slice();
                    }
                    tracing::debug!(worker = self.id, tunnel = index, vnet, "tunnel queue added");
                }
                Command::Remove { index, done } => {
                    if let Some(q) = self.tun.take(index) {
                        let _ = self.epoll.delete(q.as_raw_fd());
                    }
                    if let Some(v) = self.vnet.get_mut(index) {
                        *v = false;
                    }
                    if let Some(u) = self.uso.get_mut(index) {
                        *u = false;
                    }
                    if let Some(k) = self.next_keepalive.get_mut(index) {
                        *k = None;
                    }
                    if self.pending.is_some_and(|(t, _, _)| t == index) {
                        self.pending = None;
                    }
                    tracing::debug!(worker = self.id, tunnel = index, "tunnel queue removed");
                    let _ = done.send(());
                }
            }
        }
    }
}
