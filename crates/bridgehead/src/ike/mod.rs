//! The IKEv2 service: the shell around the sans-IO IKE engine (sockets, timers, SA install).
//!
//! Not wired yet: [`start`] takes the queue of IKE messages that the dataplane receives on the
//! ESP port and drops it, so they are counted as `ike_dropped` in `bridgehead status`.

use std::sync::Arc;
use std::sync::mpsc::Receiver;

use bh_config::Config;
use bh_dataplane::{Dataplane, IkeDatagram};

/// The running IKE service (shared with the control socket thread, so `Send + Sync`).
pub struct IkeService;

/// Starts the IKE service for the configured tunnels.
pub fn start(
    _cfg: &Config,
    _dp: Arc<Dataplane>,
    rx: Receiver<IkeDatagram>,
) -> anyhow::Result<IkeService> {
    drop(rx);
    Ok(IkeService)
}

impl IkeService {
    /// Status of the IKE SAs, for `bridgehead status --json`.
    pub fn status_json(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}
