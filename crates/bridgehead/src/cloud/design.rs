//! Tunnels that can never come up because of how the cloud is built ("down by design").
//!
//! A cloud gateway tells its connections apart by the customer gateway's address: an Azure
//! gateway instance makes one tunnel to each local network gateway (an active-active gateway's
//! two instances each connect to every local network gateway, §2.4 of the fact sheet), an AWS
//! tunnel endpoint has one tunnel per customer gateway address (§1.4), and a GCP HA VPN
//! interface one per external peer interface (§3.4). This appliance has one IKE socket and one
//! public address, so of several `cloud` tunnels to the same peer address only the first can
//! ever be established: the others describe connections the cloud keeps for another local
//! network gateway (another public address). Initiating them anyway would present the same
//! identity to the same peer as the first tunnel, which the peer takes as a reconnect of that
//! tunnel (INITIAL_CONTACT, RFC 7296 §2.4), so the two would tear each other down in turn.
//!
//! [`down_by_design`] finds those tunnels; the IKE service neither initiates nor answers them
//! and the BGP service does not open their neighbors' sessions, and both say why in
//! `bridgehead status`. Tunnels without `cloud` are left alone (a generic IKE peer may tell
//! connections apart by identity). Not done here: appliances with several public addresses.

use std::net::IpAddr;

use bh_config::{Cloud, Config};

/// For each tunnel of `cfg` (same order), why it can never come up, or `None`.
pub fn down_by_design(cfg: &Config) -> Vec<Option<String>> {
    let ours = cfg
        .appliance
        .public_ip
        .or(cfg.appliance.private_ip)
        .map_or_else(|| "this appliance's address".to_owned(), |a| a.to_string());
    let mut out = Vec::with_capacity(cfg.tunnels.len());
    for (i, t) in cfg.tunnels.iter().enumerate() {
        let first = cfg
            .tunnels
            .iter()
            .take(i)
            .find(|u| u.ike.is_some() && u.peer == t.peer);
        let why = match (t.ike.as_ref(), t.cloud, first) {
            (Some(_), Some(cloud), Some(first)) => Some(reason(cloud, t.peer, &first.name, &ours)),
            _ => None,
        };
        out.push(why);
    }
    out
}

fn reason(cloud: Cloud, peer: IpAddr, first: &str, ours: &str) -> String {
    match cloud {
        Cloud::Azure => format!(
            "down by design: Azure gateway instance {peer} connects once to each local network \
             gateway, and this appliance's one public address {ours} is the local network \
             gateway of tunnel {first}; this tunnel belongs to another local network gateway \
             (another public address), so it is never initiated"
        ),
        Cloud::Aws => format!(
            "down by design: AWS tunnel endpoint {peer} has one tunnel per customer gateway \
             address, and {ours} already has tunnel {first}; this tunnel is never initiated"
        ),
        Cloud::Gcp => format!(
            "down by design: HA VPN interface {peer} has one tunnel per peer gateway \
             interface, and {ours} already has tunnel {first}; this tunnel is never initiated"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use bh_config::{FileMeta, LoadCtx, MemFiles};

    use super::*;

    fn load(text: &str) -> Config {
        const CONF: &str = "/etc/bridgehead/bridgehead.toml";
        let mut files = MemFiles::new();
        files.insert(
            CONF,
            FileMeta {
                mode: 0o600,
                uid: 0,
            },
            text.as_bytes(),
        );
        let ctx = LoadCtx {
            online_cores: 1,
            euid: 0,
            files: &files,
        };
        bh_config::parse(Path::new(CONF), text, &ctx).unwrap_or_else(|e| panic!("{e}"))
    }

    fn tunnel(name: &str, cloud: Option<&str>, peer: &str, inside: &str) -> String {
        let cloud = cloud
            .map(|c| format!("cloud = \"{c}\"\n"))
            .unwrap_or_default();
        format!(
            "[[tunnel]]\nname = \"{name}\"\n{cloud}peer = \"{peer}\"\ninside = [\"{inside}\"]\n\
             psk = \"bh_Design.Key_0123456789\"\n\n"
        )
    }

    const HEAD: &str = "[appliance]\nprivate_ip = \"10.0.1.4\"\npublic_ip = \"203.0.113.10\"\n\n";

    #[test]
    fn azure_active_active_with_two_local_network_gateways_has_two_tunnels_down_by_design() {
        let text = format!(
            "{HEAD}{}{}{}{}",
            tunnel("azure0", Some("azure"), "198.51.100.2", "169.254.21.2/30"),
            tunnel("azure1", Some("azure"), "198.51.100.6", "169.254.22.2/30"),
            tunnel("azure2", Some("azure"), "198.51.100.2", "169.254.21.6/30"),
            tunnel("azure3", Some("azure"), "198.51.100.6", "169.254.22.6/30"),
        );
        let d = down_by_design(&load(&text));
        assert_eq!(d.len(), 4);
        assert!(d[0].is_none() && d[1].is_none(), "{d:?}");
        let r2 = d[2].as_deref().expect("azure2 is down by design");
        assert!(r2.starts_with("down by design: Azure"), "{r2}");
        assert!(
            r2.contains("198.51.100.2") && r2.contains("tunnel azure0"),
            "{r2}"
        );
        assert!(r2.contains("203.0.113.10"), "{r2}");
        let r3 = d[3].as_deref().expect("azure3 is down by design");
        assert!(
            r3.contains("198.51.100.6") && r3.contains("tunnel azure1"),
            "{r3}"
        );
    }

    #[test]
    fn distinct_peers_and_tunnels_without_a_cloud_are_never_down_by_design() {
        let text = format!(
            "{HEAD}{}{}{}{}",
            tunnel("aws0", Some("aws"), "198.51.100.10", "169.254.10.2/30"),
            tunnel("aws1", Some("aws"), "198.51.100.14", "169.254.11.2/30"),
            tunnel("site0", None, "198.51.100.30", "169.254.30.1/30"),
            tunnel("site1", None, "198.51.100.30", "169.254.31.1/30"),
        );
        assert_eq!(down_by_design(&load(&text)), vec![None; 4]);
    }

    #[test]
    fn the_reason_names_each_cloud() {
        let text = format!(
            "{HEAD}{}{}{}{}",
            tunnel("aws0", Some("aws"), "198.51.100.10", "169.254.10.2/30"),
            tunnel("aws1", Some("aws"), "198.51.100.10", "169.254.11.2/30"),
            tunnel("gcp0", Some("gcp"), "198.51.100.18", "169.254.7.2/30"),
            tunnel("gcp1", Some("gcp"), "198.51.100.18", "169.254.8.2/30"),
        );
        let d = down_by_design(&load(&text));
        assert!(
            d[1].as_deref()
                .is_some_and(|r| r.contains("AWS tunnel endpoint")),
            "{d:?}"
        );
        assert!(
            d[3].as_deref()
                .is_some_and(|r| r.contains("HA VPN interface")),
            "{d:?}"
        );
        assert!(d[0].is_none() && d[2].is_none(), "{d:?}");
    }
}
