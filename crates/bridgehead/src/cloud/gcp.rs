//! Google Cloud: import the JSON of `gcloud compute vpn-tunnels describe`, `routers describe`
//! and (for Google's outside addresses) `vpn-gateways describe`, each `--format=json`.
//!
//! Objects are told apart by `kind` (`compute#vpnTunnel`, `compute#router`,
//! `compute#vpnGateway`); a file may hold one object or an array. A tunnel's Google-side address
//! is the HA VPN gateway interface it uses (`vpnGatewayInterface` → `vpnInterfaces[].ipAddress`);
//! its BGP session is the router's `bgpPeers[]` entry whose interface is linked to the tunnel
//! (`interfaces[].linkedVpnTunnel`): `peerIpAddress` is ours, `ipAddress` Google's, `peerAsn` ours.
//!
//! Google never returns the shared secret (only `sharedSecretHash`): its psk file is left to fill.

use std::net::{IpAddr, Ipv4Addr};

use serde_json::Value;

use super::{Cloud, CloudError, Imported, ImportedNeighbor, ImportedTunnel, quote};

fn last_segment(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

fn str_field<'a>(v: &'a Value, f: &str) -> Option<&'a str> {
    v.get(f).and_then(Value::as_str)
}

fn ip_field(v: &Value, f: &'static str, ctx: &str) -> Result<Option<Ipv4Addr>, CloudError> {
    match str_field(v, f) {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| CloudError::BadValue {
            context: ctx.to_owned(),
            element: f,
            value: quote(s),
            expected: "expected an IPv4 address",
        }),
    }
}

/// Reads gcloud JSON documents (each one object or an array of objects).
///
/// # Errors
///
/// [`CloudError::Json`], [`CloudError::Nothing`] without a `compute#vpnTunnel`, or
/// [`CloudError::Missing`] / [`CloudError::BadValue`] naming the field.
pub fn import(docs: &[String]) -> Result<Imported, CloudError> {
    let mut objs: Vec<Value> = Vec::new();
    for d in docs {
        if d.len() > super::aws::MAX_XML {
            return Err(CloudError::Json("a document is larger than 1 MiB".into()));
        }
        match serde_json::from_str(d).map_err(|e| CloudError::Json(e.to_string()))? {
            Value::Array(a) => objs.extend(a),
            o => objs.push(o),
        }
    }
    let of_kind = |k: &str| -> Vec<&Value> {
        objs.iter()
            .filter(|o| str_field(o, "kind") == Some(k))
            .collect()
    };
    let tunnels = of_kind("compute#vpnTunnel");
    let routers = of_kind("compute#router");
    let gateways = of_kind("compute#vpnGateway");
    if tunnels.is_empty() {
        return Err(CloudError::Nothing(
            "no object of kind compute#vpnTunnel: pass `gcloud compute vpn-tunnels describe \
             NAME --region REGION --format=json` output"
                .into(),
        ));
    }
    if tunnels.len() > 8 {
        return Err(CloudError::BadValue {
            context: "input".into(),
            element: "compute#vpnTunnel",
            value: tunnels.len().to_string(),
            expected: "at most 8 tunnels",
        });
    }
    let mut imp = Imported {
        cloud: Cloud::Gcp,
        public_ip: None,
        local_asn: None,
        tunnels: Vec::new(),
        missing: vec![
            "the shared secret: Google returns only its hash; write each tunnel's key into its \
             psk file"
                .into(),
        ],
        notes: Vec::new(),
    };
    if routers.is_empty() {
        imp.missing.push(
            "the Cloud Router: pass `gcloud compute routers describe NAME --region REGION \
             --format=json` for inside addresses and BGP"
                .into(),
        );
    }
    for (i, t) in tunnels.into_iter().enumerate() {
        let tname = str_field(t, "name").unwrap_or("");
        let ctx = format!("vpnTunnel {}", quote(tname));
        let our_ip = ip_field(t, "peerIp", &ctx)?.ok_or_else(|| CloudError::Missing {
            context: ctx.clone(),
            element: "peerIp",
        })?;
        match imp.public_ip {
            None => imp.public_ip = Some(IpAddr::V4(our_ip)),
            Some(p) if p != IpAddr::V4(our_ip) => imp.notes.push(format!(
                "tunnel {tname} uses another peer address, {our_ip}: give this host that \
                 address too and set local_id"
            )),
            Some(_) => {}
        }
        if let Some(v) = t.get("ikeVersion").and_then(Value::as_u64) {
            if v != 2 {
                return Err(CloudError::BadValue {
                    context: ctx,
                    element: "ikeVersion",
                    value: v.to_string(),
                    expected: "2 (bridgehead speaks IKEv2 only)",
                });
            }
        }
        let mut tun = ImportedTunnel {
            name: format!("gcp{i}"),
            // Google advises one cipher per role; these are in its supported lists.
            proposals: vec!["aes256gcm16-prfsha256-modp2048".into()],
            esp_proposals: vec!["aes256gcm16".into()],
            pfs: "modp2048".into(),
            ike_lifetime: super::below(36_000, 30),
            child_lifetime: super::below(10_800, 10),
            dpd: Some((10, 30)),
            initiate: true,
            ..ImportedTunnel::default()
        };
        tun.comments.push(format!("Google tunnel {}", quote(tname)));
        // Google's address: the HA gateway interface this tunnel uses.
        let gw_name = str_field(t, "vpnGateway").map(last_segment);
        let iface = t.get("vpnGatewayInterface").and_then(Value::as_u64);
        let gw = gateways
            .iter()
            .find(|g| gw_name.is_some() && str_field(g, "name") == gw_name);
        match (gw, iface) {
            (Some(g), Some(n)) => {
                let ip = g
                    .get("vpnInterfaces")
                    .and_then(Value::as_array)
                    .and_then(|a| {
                        a.iter()
                            .find(|x| x.get("id").and_then(Value::as_u64).unwrap_or(0) == n)
                    })
                    .and_then(|x| str_field(x, "ipAddress"))
                    .ok_or_else(|| CloudError::Missing {
                        context: format!("vpnGateway {}", quote(gw_name.unwrap_or(""))),
                        element: "vpnInterfaces[].ipAddress",
                    })?;
                let ip: Ipv4Addr = ip.parse().map_err(|_| CloudError::BadValue {
                    context: "vpnGateway".into(),
                    element: "vpnInterfaces[].ipAddress",
                    value: quote(ip),
                    expected: "expected an IPv4 address",
                })?;
                tun.peer = Some(IpAddr::V4(ip));
            }
            _ => imp.missing.push(format!(
                "tunnel gcp{i}: Google's outside address: the tunnel names gateway {} interface \
                 {}; pass `gcloud compute vpn-gateways describe {} --region REGION --format=json`",
                quote(gw_name.unwrap_or("?")),
                iface.map_or("?".into(), |n| n.to_string()),
                quote(gw_name.unwrap_or("NAME"))
            )),
        }
        // Inside addresses and BGP from the router.
        let router_name = str_field(t, "router").map(last_segment);
        let router = routers
            .iter()
            .find(|r| router_name.is_none() || str_field(r, "name") == router_name);
        if let Some(r) = router {
            let rctx = format!("router {}", quote(str_field(r, "name").unwrap_or("")));
            let interface = r.get("interfaces").and_then(Value::as_array).and_then(|a| {
                a.iter()
                    .find(|x| str_field(x, "linkedVpnTunnel").map(last_segment) == Some(tname))
            });
            let Some(interface) = interface else {
                imp.missing.push(format!(
                    "tunnel gcp{i}: router has no interface linked to {}: run `gcloud compute \
                     routers add-interface`",
                    quote(tname)
                ));
                imp.tunnels.push(tun);
                continue;
            };
            let if_name = str_field(interface, "name").unwrap_or("");
            let len: u8 = str_field(interface, "ipRange")
                .and_then(|r| r.split_once('/'))
                .and_then(|(_, l)| l.parse().ok())
                .filter(|l| (1..=32).contains(l))
                .ok_or_else(|| CloudError::Missing {
                    context: format!("{rctx} interface {}", quote(if_name)),
                    element: "ipRange",
                })?;
            let peer = r.get("bgpPeers").and_then(Value::as_array).and_then(|a| {
                a.iter()
                    .find(|p| str_field(p, "interfaceName") == Some(if_name))
            });
            if let Some(p) = peer {
                let pctx = format!(
                    "{rctx} bgpPeer {}",
                    quote(str_field(p, "name").unwrap_or(""))
                );
                let ours =
                    ip_field(p, "peerIpAddress", &pctx)?.ok_or_else(|| CloudError::Missing {
                        context: pctx.clone(),
                        element: "peerIpAddress",
                    })?;
                let theirs =
                    ip_field(p, "ipAddress", &pctx)?.ok_or_else(|| CloudError::Missing {
                        context: pctx.clone(),
                        element: "ipAddress",
                    })?;
                let our_asn = p
                    .get("peerAsn")
                    .and_then(Value::as_u64)
                    .and_then(|a| u32::try_from(a).ok())
                    .ok_or_else(|| CloudError::Missing {
                        context: pctx.clone(),
                        element: "peerAsn",
                    })?;
                imp.local_asn.get_or_insert(our_asn);
                let bgp = r.get("bgp");
                let asn = bgp
                    .and_then(|b| b.get("asn"))
                    .and_then(Value::as_u64)
                    .and_then(|a| u32::try_from(a).ok())
                    .ok_or_else(|| CloudError::Missing {
                        context: rctx.clone(),
                        element: "bgp.asn",
                    })?;
                let keepalive = bgp
                    .and_then(|b| b.get("keepaliveInterval"))
                    .and_then(Value::as_u64)
                    .unwrap_or(20)
                    .clamp(1, 21_845);
                tun.inside = Some((IpAddr::V4(ours), len));
                tun.neighbor = Some(ImportedNeighbor {
                    address: IpAddr::V4(theirs),
                    asn,
                    hold_time: u16::try_from(keepalive * 3).unwrap_or(u16::MAX).max(3),
                    multihop: None,
                });
            } else {
                imp.missing.push(format!(
                    "tunnel gcp{i}: router has no BGP peer on interface {}: run `gcloud compute \
                     routers add-bgp-peer`",
                    quote(if_name)
                ));
            }
        }
        imp.tunnels.push(tun);
    }
    Ok(imp)
}
