//! Applying a configuration reload to the running daemon: the I/O side of [`crate::reload`].
//!
//! Order, so that nothing is cut before it is told: BGP neighbors that go are stopped first
//! (their Cease leaves over the tunnels as they still are); then each tunnel change
//! (removed: IKE DELETE to the peer, SAs out of the table, device closed; added: device,
//! addresses, routes, dataplane slot, manual SAs or IKE; updated in place: routes, peer
//! address, manual SAs, or an IKE renegotiation); then the rest of BGP (neighbors added or
//! reset, policy, `advertise`), when new devices exist. A failed step is reported and the
//! others still run; the running configuration then records what really runs (a tunnel that
//! could not be added is left out, one whose change failed keeps its old settings), so the
//! next reload tries again. If rtnetlink cannot be opened nothing is changed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bh_config::{Config, Encap as CfgEncap, Tunnel};
use bh_sys::link::Netlink;
use serde_json::{Value, json};

use super::{Daemon, RTPROT_BRIDGEHEAD, Running, bring_up, manual_sas};
use crate::ike::IkeChange;
use crate::reload::{TunnelAction, TunnelPlan};

/// How long a removed tunnel's device may take to disappear.
const DEVICE_GONE: Duration = Duration::from_secs(3);

impl Daemon {
    /// Re-reads the configuration file and applies what changed (see the module docs).
    /// Returns `{"ok", "invalid", "errors", "applied", "needs_restart"}`. With `invalid`,
    /// `errors` holds every configuration error (`FILE:LINE:COL: PATH: message`) and nothing
    /// was changed; otherwise `errors` lists the changes that failed. Everything is logged too (SIGHUP has no one to answer).
    pub(super) fn reload(&self, trigger: &str) -> Value {
        let started = Instant::now();
        self.systemd
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reloading(&format!("reloading the configuration ({trigger})"));
        let out = self.reload_inner();
        let ok = out["ok"].as_bool().unwrap_or(false);
        for l in out["applied"].as_array().into_iter().flatten() {
            tracing::info!(change = %l.as_str().unwrap_or_default(), "reload applied");
        }
        for l in out["needs_restart"].as_array().into_iter().flatten() {
            tracing::warn!(change = %l.as_str().unwrap_or_default(), "reload: not applied, needs a restart");
        }
        for l in out["errors"].as_array().into_iter().flatten() {
            tracing::error!(error = %l.as_str().unwrap_or_default(), "reload");
        }
        let tunnels = self
            .running
            .lock()
            .map(|r| r.index.len())
            .unwrap_or_default();
        let status = if ok {
            format!("{tunnels} tunnel(s) up; configuration reloaded")
        } else {
            format!("{tunnels} tunnel(s) up; the last reload failed (see the log)")
        };
        tracing::info!(
            trigger,
            ok,
            ms = started.elapsed().as_millis(),
            "reload done"
        );
        self.systemd
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ready(&status);
        out
    }

    fn reload_inner(&self) -> Value {
        let new = match bh_config::load(&self.config_path) {
            Ok(c) => c,
            Err(errors) => {
                let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
                return json!({
                    "ok": false,
                    "invalid": true,
                    "errors": errors,
                    "applied": [],
                    "needs_restart": [],
                });
            }
        };
        let mut run = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let plan = crate::reload::plan(&run.cfg, new, run.raw_esp);
        let mut nl = match Netlink::open().context("opening rtnetlink") {
            Ok(nl) => nl,
            Err(e) => {
                return json!({
                    "ok": false,
                    "invalid": false,
                    "errors": [format!("{e:#}; nothing was changed")],
                    "applied": [],
                    "needs_restart": plan.restart,
                });
            }
        };
        let mut errors = Vec::new();
        if let Err(e) = self.bgp.remove_neighbors(plan.bgp.removed.clone()) {
            errors.push(format!("bgp: {e:#}"));
        }
        let mut effective = plan.effective.clone();
        for tp in &plan.tunnels {
            let Err(e) = self.apply_tunnel(&mut run, &mut nl, &plan.effective, tp) else {
                continue;
            };
            errors.push(format!("tunnel {}: {e:#}", tp.name));
            // The running configuration says what really runs, so the next reload retries:
            // a tunnel that is not running is left out; one still running keeps its old
            // settings.
            let old = run.cfg.tunnels.iter().find(|t| t.name == tp.name).cloned();
            effective.tunnels.retain(|t| t.name != tp.name);
            if let (true, Some(old)) = (run.index.contains_key(&tp.name), old) {
                effective.tunnels.push(old);
            }
        }
        if let Err(e) = self.bgp.apply(&effective, &plan.bgp) {
            errors.push(format!("bgp: {e:#}"));
        }
        run.cfg = effective;
        json!({
            "ok": errors.is_empty(),
            "invalid": false,
            "errors": errors,
            "applied": plan.lines(),
            "needs_restart": plan.restart,
        })
    }

    fn apply_tunnel(
        &self,
        run: &mut Running,
        nl: &mut Netlink,
        cfg: &Config,
        tp: &TunnelPlan,
    ) -> Result<()> {
        let pos = cfg.tunnels.iter().position(|t| t.name == tp.name);
        let new = pos.and_then(|i| cfg.tunnels.get(i));
        let design = pos.and_then(|i| {
            crate::cloud::design::down_by_design(cfg)
                .get(i)
                .cloned()
                .flatten()
        });
        match (&tp.action, new) {
            (TunnelAction::Remove, _) => self.remove_tunnel(run, &tp.name),
            (TunnelAction::Add, Some(t)) => self.add_tunnel(run, nl, t, design),
            (TunnelAction::Recreate(_), Some(t)) => {
                self.remove_tunnel(run, &tp.name)?;
                self.add_tunnel(run, nl, t, design)
            }
            (
                TunnelAction::Update {
                    ike,
                    manual,
                    peer,
                    routes_add,
                    routes_remove,
                },
                Some(t),
            ) => {
                let idx = *run
                    .index
                    .get(&t.name)
                    .context("the tunnel is not running")?;
                let device = t.device_name();
                if !routes_add.is_empty() || !routes_remove.is_empty() {
                    let ifindex = bh_sys::link::ifindex(&device)?;
                    for r in routes_remove {
                        nl.del_route(r.addr, r.len, ifindex, 0, RTPROT_BRIDGEHEAD)
                            .with_context(|| format!("removing route {r} via {device}"))?;
                    }
                    for r in routes_add {
                        nl.add_route(r.addr, r.len, ifindex, 0, RTPROT_BRIDGEHEAD)
                            .with_context(|| format!("adding route {r} via {device}"))?;
                    }
                }
                if *peer {
                    if let Some(st) = self.dp.tunnels().get(idx) {
                        st.peer
                            .store(Arc::new(SocketAddr::new(t.peer, t.peer_port)));
                    }
                }
                if *manual {
                    let Some((out, inb)) = manual_sas(t)? else {
                        bail!("no manual SAs");
                    };
                    let old = run.infos.get(&idx).and_then(|i| i.manual.clone());
                    let sas = self.dp.sas();
                    sas.add_inbound(idx, Arc::clone(&inb));
                    sas.set_outbound(idx, Some(Arc::clone(&out)));
                    if let Some((_, old_in)) = old {
                        if old_in.spi() != inb.spi() {
                            sas.remove_inbound(old_in.spi());
                        }
                    }
                    if let Some(i) = run.infos.get_mut(&idx) {
                        i.manual = Some((out, inb));
                    }
                }
                if !ike.is_empty() {
                    self.ike.apply(vec![IkeChange::Replace {
                        index: idx,
                        tunnel: t.clone(),
                    }])?;
                }
                Ok(())
            }
            (_, None) => bail!("not in the new configuration"),
        }
    }

    /// Deletes the tunnel's SAs at the peer, takes it out of the dataplane and waits for its
    /// device (with addresses and routes) to disappear.
    fn remove_tunnel(&self, run: &mut Running, name: &str) -> Result<()> {
        let idx = *run.index.get(name).context("the tunnel is not running")?;
        self.ike.apply(vec![IkeChange::Remove { index: idx }])?;
        self.dp
            .remove_tunnel(idx)
            .context("taking the tunnel out of the dataplane")?;
        run.index.remove(name);
        run.infos.remove(&idx);
        let device = format!("bh-{name}");
        let deadline = Instant::now() + DEVICE_GONE;
        while bh_sys::link::ifindex(&device).is_ok() {
            if Instant::now() > deadline {
                bail!("device {device} still exists after its queues were closed");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        tracing::info!(tunnel = name, "reload: tunnel removed");
        Ok(())
    }

    /// Creates the tunnel's device, addresses and routes, gives it to the dataplane, and
    /// installs its manual SAs or starts IKE.
    /// `design`: why the cloud's design keeps it down, if it does (then IKE only shows it).
    fn add_tunnel(
        &self,
        run: &mut Running,
        nl: &mut Netlink,
        t: &Tunnel,
        design: Option<String>,
    ) -> Result<()> {
        if self.dp.tunnels().len() >= bh_dataplane::MAX_TUNNELS {
            bail!(
                "{} tunnels were created since the start; a restart is needed to add more",
                bh_dataplane::MAX_TUNNELS
            );
        }
        if t.encap == CfgEncap::Esp && !run.raw_esp {
            bail!("encap = \"esp\" needs a restart (no raw ESP socket is open)");
        }
        let (tc, info) =
            bring_up(nl, t, run.workers).with_context(|| format!("bringing up bh-{}", t.name))?;
        // On failure `tc` is dropped: its queues close and the device goes.
        let idx = self
            .dp
            .add_tunnel(tc)
            .context("adding the tunnel to the dataplane")?;
        if let Some((out, inb)) = &info.manual {
            self.dp.sas().add_inbound(idx, Arc::clone(inb));
            self.dp.sas().set_outbound(idx, Some(Arc::clone(out)));
        }
        run.index.insert(t.name.clone(), idx);
        run.infos.insert(idx, info);
        if t.ike.is_some() {
            self.ike.apply(vec![IkeChange::Add {
                index: idx,
                tunnel: t.clone(),
                down_by_design: design,
            }])?;
        }
        tracing::info!(tunnel = %t.name, index = idx, "reload: tunnel added");
        Ok(())
    }
}
