//! The tunnel list as workers see it, growable while they run (configuration reload).
//!
//! [`TunnelSlots`] is a fixed array of write-once slots: a tunnel added at run time takes the
//! next free slot, and a reader gets `&TunnelState` with one atomic load, no lock and no
//! reference count, so the per-packet path costs what a `Vec` index did. A removed tunnel's
//! slot is never reused: its index stays valid (its counters can still be read) and nothing
//! is sent through it any more (its SAs and TUN queues are gone). [`MAX_TUNNELS`] bounds the
//! tunnels added over a process's lifetime; past it a reload reports that a restart is needed.
//!
//! [`TunQueues`] is a worker's own TUN queue per tunnel index, changed only by the worker
//! itself when it applies a [`Command`] from its [`Mailbox`] (woken through an eventfd in its
//! epoll set).
//!
//! Not here: deciding which tunnels exist (the daemon's reload does), SAs (the SA table).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Mutex, OnceLock};

use bh_sys::poll::EventFd;
use bh_sys::tun::TunQueue;

use crate::TunnelState;

/// The most tunnels one dataplane holds over its lifetime (started with, plus added by
/// reloads; a tunnel re-created by a reload counts again).
pub const MAX_TUNNELS: usize = 1024;

/// Write-once slots of [`TunnelState`], indexed by tunnel index. See the module docs.
pub struct TunnelSlots {
    slots: Box<[OnceLock<Box<TunnelState>>]>,
    len: AtomicUsize,
    /// Serialises [`TunnelSlots::push`].
    writer: Mutex<()>,
}

impl std::fmt::Debug for TunnelSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl TunnelSlots {
    pub(crate) fn new() -> Self {
        Self {
            slots: (0..MAX_TUNNELS).map(|_| OnceLock::new()).collect(),
            len: AtomicUsize::new(0),
            writer: Mutex::new(()),
        }
    }

    /// The tunnel with index `i`, if one was ever added there.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&TunnelState> {
        self.slots.get(i)?.get().map(|b| &**b)
    }

    /// How many slots are taken (removed tunnels included).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether no tunnel was ever added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every tunnel ever added, in index order.
    pub fn iter(&self) -> impl Iterator<Item = &TunnelState> {
        self.slots.iter().map_while(|s| s.get().map(|b| &**b))
    }

    /// Stores `st` in the next free slot and returns its index; `None` when all
    /// [`MAX_TUNNELS`] are taken.
    pub(crate) fn push(&self, st: TunnelState) -> Option<usize> {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let i = self.len.load(Ordering::Acquire);
        self.slots.get(i)?.set(Box::new(st)).ok()?;
        self.len.store(i + 1, Ordering::Release);
        Some(i)
    }
}

impl std::ops::Index<usize> for TunnelSlots {
    type Output = TunnelState;

    /// Panics when no tunnel has index `i` (use [`TunnelSlots::get`] otherwise).
    fn index(&self, i: usize) -> &TunnelState {
        self.get(i).expect("no tunnel at this index")
    }
}

/// A worker's TUN queue per tunnel index (`None`: removed, or not this dataplane's yet).
#[derive(Default)]
pub(crate) struct TunQueues(Vec<Option<TunQueue>>);

impl TunQueues {
    pub(crate) fn new(queues: Vec<TunQueue>) -> Self {
        Self(queues.into_iter().map(Some).collect())
    }

    /// The queue of tunnel `t`.
    #[inline]
    pub(crate) fn get(&self, t: usize) -> Option<&TunQueue> {
        self.0.get(t)?.as_ref()
    }

    /// Slots, removed ones included.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Puts `q` at index `t` (growing the list).
    pub(crate) fn set(&mut self, t: usize, q: TunQueue) {
        if self.0.len() <= t {
            self.0.resize_with(t + 1, || None);
        }
        if let Some(slot) = self.0.get_mut(t) {
            *slot = Some(q);
        }
    }

    /// Takes the queue of tunnel `t` out (dropping it closes the descriptor).
    pub(crate) fn take(&mut self, t: usize) -> Option<TunQueue> {
        self.0.get_mut(t)?.take()
    }
}

/// A change to a worker's tunnel list.
pub(crate) enum Command {
    /// Serve `queue` as tunnel `index`'s; `keepalive`: send its NAT keepalives (worker 0).
    Add {
        index: usize,
        queue: TunQueue,
        keepalive: bool,
    },
    /// Stop serving tunnel `index` and close its queue; `done` is told when it is closed.
    Remove { index: usize, done: SyncSender<()> },
}

/// Commands for one worker, and the eventfd that wakes it.
pub(crate) struct Mailbox {
    pub(crate) commands: Mutex<Vec<Command>>,
    pub(crate) wake: EventFd,
}

impl Mailbox {
    pub(crate) fn new() -> std::io::Result<Self> {
        Ok(Self {
            commands: Mutex::new(Vec::new()),
            wake: EventFd::new()?,
        })
    }

    /// Queues `c` and wakes the worker.
    pub(crate) fn send(&self, c: Command) -> std::io::Result<()> {
        self.commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(c);
        self.wake.notify()
    }

    /// Everything queued so far.
    pub(crate) fn take(&self) -> Vec<Command> {
        let _ = self.wake.drain();
        std::mem::take(&mut *self.commands.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
