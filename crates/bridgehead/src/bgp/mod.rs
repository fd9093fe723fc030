//! The BGP service: the shell around the sans-IO BGP speaker (TCP sessions, timers, and the
//! FIB reconciler that installs routes through rtnetlink).
//!
//! Not wired yet: [`start`] does nothing.

use std::sync::Arc;

use bh_config::Config;
use bh_dataplane::Dataplane;

/// The running BGP service.
pub struct BgpService;

/// Starts the BGP speaker for the configured neighbors.
pub fn start(_cfg: &Config, _dp: Arc<Dataplane>) -> anyhow::Result<BgpService> {
    Ok(BgpService)
}

impl BgpService {
    /// Neighbors and routes, for `bridgehead bgp --json` and `bridgehead routes --json`.
    pub fn status_json(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}
