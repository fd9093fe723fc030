//! The SA table the control plane publishes and the workers read without locks.
//!
//! Workers load an [`arc_swap`] guard once per batch. Writers (the control plane) build a new
//! table from the current one and swap it in; a mutex serialises writers only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use bh_esp::{InboundSa, OutboundSa};

/// An inbound SA and the tunnel whose TUN device receives what it opens.
#[derive(Clone)]
pub struct InboundEntry {
    /// The SA.
    pub sa: Arc<InboundSa>,
    /// Index of the tunnel.
    pub tunnel: usize,
}

/// One published generation of SAs.
#[derive(Clone, Default)]
pub struct SaTable {
    /// Inbound SAs by SPI. Several may map to one tunnel during a rekey.
    pub inbound: HashMap<u32, InboundEntry>,
    /// The outbound SA of each tunnel, by tunnel index; `None` while the tunnel is down.
    pub outbound: Vec<Option<Arc<OutboundSa>>>,
}

/// The shared, swappable table.
pub struct SaTableHandle {
    current: ArcSwap<SaTable>,
    writer: Mutex<()>,
}

impl SaTableHandle {
    /// An empty table for `tunnels` tunnels.
    pub fn new(tunnels: usize) -> Self {
        Self {
            current: ArcSwap::from_pointee(SaTable {
                inbound: HashMap::new(),
                outbound: vec![None; tunnels],
            }),
            writer: Mutex::new(()),
        }
    }

    /// The current generation (for workers: once per batch).
    pub fn load(&self) -> arc_swap::Guard<Arc<SaTable>> {
        self.current.load()
    }

    /// Applies `edit` to a copy of the table and publishes it.
    pub fn update(&self, edit: impl FnOnce(&mut SaTable)) {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = SaTable::clone(&self.current.load());
        edit(&mut next);
        self.current.store(Arc::new(next));
    }

    /// Installs an inbound SA for `tunnel`. The old SAs stay until removed, so packets still in
    /// flight under them are accepted (make-before-break).
    pub fn add_inbound(&self, tunnel: usize, sa: Arc<InboundSa>) {
        self.update(|t| {
            t.inbound.insert(sa.spi(), InboundEntry { sa, tunnel });
        });
    }

    /// Removes the inbound SA with `spi`.
    pub fn remove_inbound(&self, spi: u32) {
        self.update(|t| {
            t.inbound.remove(&spi);
        });
    }

    /// Removes every SA of `tunnel` (it is being removed).
    pub fn remove_tunnel(&self, tunnel: usize) {
        self.update(|t| {
            t.inbound.retain(|_, e| e.tunnel != tunnel);
            if let Some(slot) = t.outbound.get_mut(tunnel) {
                *slot = None;
            }
        });
    }

    /// Sets (or clears) the outbound SA of `tunnel` (a tunnel added at run time grows the
    /// table, up to [`crate::MAX_TUNNELS`]).
    pub fn set_outbound(&self, tunnel: usize, sa: Option<Arc<OutboundSa>>) {
        self.update(|t| {
            if t.outbound.len() <= tunnel && tunnel < crate::MAX_TUNNELS {
                t.outbound.resize(tunnel + 1, None);
            }
            if let Some(slot) = t.outbound.get_mut(tunnel) {
                *slot = sa;
            }
        });
    }
}
