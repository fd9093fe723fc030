//! Azure: import the JSON of `az network vnet-gateway show`.
//!
//! Each `bgpSettings.bgpPeeringAddresses[]` entry (one per gateway instance; two on an
//! active-active gateway) becomes a tunnel to that instance's `tunnelIpAddresses[0]`. With a
//! custom APIPA address (`customBgpIpAddresses`), our inside address is the other host of its
//! /30 and BGP runs over the tunnel's link; without one, the neighbor is the instance's
//! GatewaySubnet address (`defaultBgpIpAddresses`), reached by a /32 route and multihop.
//!
//! What the gateway's JSON does not carry, and so must come from elsewhere: the pre-shared key
//! (`az network vpn-connection shared-key show`), our public address and our ASN (they live in
//! the local network gateway, which the caller passes as options).

use std::net::{IpAddr, Ipv4Addr};

use serde_json::Value;

use super::{Cloud, CloudError, Imported, ImportedNeighbor, ImportedTunnel, other_host_30, quote};

/// Azure's fixed BGP hold time.
pub const AZURE_HOLD: u16 = 180;

/// Whether `a` is inside Azure's custom APIPA range 169.254.21.0–169.254.22.255.
pub fn in_apipa_range(a: Ipv4Addr) -> bool {
    let o = a.octets();
    o[0] == 169 && o[1] == 254 && (o[2] == 21 || o[2] == 22)
}

fn first_ip(v: &Value, field: &'static str, ctx: &str) -> Result<Option<Ipv4Addr>, CloudError> {
    match v
        .get(field)
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        None => Ok(None),
        Some(x) => {
            let s = x.as_str().unwrap_or("");
            s.parse().map(Some).map_err(|_| CloudError::BadValue {
                context: ctx.to_owned(),
                element: field,
                value: quote(s),
                expected: "expected an IPv4 address",
            })
        }
    }
}

/// Reads `az network vnet-gateway show` JSON. `public_ip` and `local_asn` are ours, from the
/// local network gateway; each missing one is listed in [`Imported::missing`].
///
/// # Errors
///
/// [`CloudError::Json`], or [`CloudError::Missing`] / [`CloudError::BadValue`] naming the field.
pub fn import(
    json: &str,
    public_ip: Option<IpAddr>,
    local_asn: Option<u32>,
) -> Result<Imported, CloudError> {
    if json.len() > super::aws::MAX_XML {
        return Err(CloudError::Json("the document is larger than 1 MiB".into()));
    }
    let v: Value = serde_json::from_str(json).map_err(|e| CloudError::Json(e.to_string()))?;
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("the gateway");
    if v.get("enableBgp").and_then(Value::as_bool) == Some(false) {
        return Err(CloudError::BadValue {
            context: name.to_owned(),
            element: "enableBgp",
            value: "false".into(),
            expected: "a BGP-enabled gateway (static Azure set-ups are not imported)",
        });
    }
    let bgp = v.get("bgpSettings").ok_or_else(|| CloudError::Missing {
        context: name.to_owned(),
        element: "bgpSettings",
    })?;
    let asn = bgp
        .get("asn")
        .and_then(Value::as_u64)
        .and_then(|a| u32::try_from(a).ok())
        .ok_or_else(|| CloudError::Missing {
            context: "bgpSettings".into(),
            element: "asn",
        })?;
    let peers = bgp
        .get("bgpPeeringAddresses")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| CloudError::Missing {
            context: "bgpSettings".into(),
            element: "bgpPeeringAddresses",
        })?;
    if peers.len() > 2 {
        return Err(CloudError::BadValue {
            context: "bgpSettings".into(),
            element: "bgpPeeringAddresses",
            value: peers.len().to_string(),
            expected: "one entry per gateway instance (at most 2)",
        });
    }
    let active_active = v
        .get("activeActive")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut imp = Imported {
        cloud: Cloud::Azure,
        public_ip,
        local_asn,
        tunnels: Vec::new(),
        missing: vec![
            "the pre-shared key: `az network vnet-gateway show` does not return it; write the \
             connection's key (`az network vpn-connection shared-key show`) into each psk file"
                .into(),
        ],
        notes: Vec::new(),
    };
    if public_ip.is_none() {
        imp.missing.push(
            "this appliance's public address (the local network gateway's gatewayIpAddress): \
             pass --public-ip"
                .into(),
        );
    }
    if local_asn.is_none() {
        imp.missing
            .push("our ASN (the local network gateway's bgpSettings.asn): pass --asn".into());
    }
    if active_active {
        imp.notes.push(
            "active-active gateway: both instances connect to every local network gateway, \
             so expect one tunnel (and one BGP session) per instance"
                .into(),
        );
    }
    if peers.len() == 2 {
        imp.notes.push(
            "a local network gateway has one BGP address: with one public address (one local \
             network gateway) Azure's instance 1 also peers with azure0's inside address, so \
             azure1's BGP session stays down unless this host has a second public address \
             (see `bridgehead plan azure`)"
                .into(),
        );
    }
    for (i, p) in peers.iter().enumerate() {
        let ctx = format!("bgpSettings.bgpPeeringAddresses[{i}]");
        let peer = first_ip(p, "tunnelIpAddresses", &ctx)?.ok_or_else(|| CloudError::Missing {
            context: ctx.clone(),
            element: "tunnelIpAddresses",
        })?;
        let mut t = ImportedTunnel {
            name: format!("azure{i}"),
            peer: Some(IpAddr::V4(peer)),
            // Azure's default policy (no custom IPsec policy): DH group 2 only, CBC IKE.
            proposals: vec![
                "aes256-sha256-modp1024".into(),
                "aes256-sha1-modp1024".into(),
                "aes128-sha256-modp1024".into(),
                "aes128-sha1-modp1024".into(),
            ],
            esp_proposals: vec![
                "aes256gcm16".into(),
                "aes256-sha256".into(),
                "aes256-sha1".into(),
                "aes128-sha1".into(),
            ],
            // Azure's rekeys carry no KE.
            pfs: "none".into(),
            ike_lifetime: 27_000,
            child_lifetime: 25_000,
            dpd: Some((10, 45)),
            initiate: true,
            mss_clamp: Some(1350),
            ..ImportedTunnel::default()
        };
        t.comments.push(format!(
            "Azure gateway {} instance {i} ({peer}); default IPsec policy: DH group 2, no PFS",
            quote(name)
        ));
        if let Some(apipa) = first_ip(p, "customBgpIpAddresses", &ctx)? {
            if !in_apipa_range(apipa) {
                return Err(CloudError::BadValue {
                    context: ctx,
                    element: "customBgpIpAddresses",
                    value: apipa.to_string(),
                    expected: "an address in 169.254.21.0-169.254.22.255",
                });
            }
            let ours = other_host_30(apipa).ok_or_else(|| CloudError::BadValue {
                context: ctx.clone(),
                element: "customBgpIpAddresses",
                value: apipa.to_string(),
                expected: "a host address of a /30 (not its network or broadcast address)",
            })?;
            t.inside = Some((IpAddr::V4(ours), 30));
            t.neighbor = Some(ImportedNeighbor {
                address: IpAddr::V4(apipa),
                asn,
                hold_time: AZURE_HOLD,
                multihop: None,
            });
            t.comments.push(format!(
                "APIPA: Azure {apipa}, us {ours}; Azure never opens BGP to APIPA peers, we do"
            ));
        } else if let Some(def) = first_ip(p, "defaultBgpIpAddresses", &ctx)? {
            t.routes.push(format!("{def}/32"));
            t.neighbor = Some(ImportedNeighbor {
                address: IpAddr::V4(def),
                asn,
                hold_time: AZURE_HOLD,
                multihop: Some(2),
            });
            imp.missing.push(format!(
                "tunnel azure{i}: no custom APIPA address on instance {i}; its BGP address {def} \
                 is in the GatewaySubnet, off the tunnel's link: give the tunnel an inside \
                 address and use it as the local network gateway's --bgp-peering-address"
            ));
        } else {
            return Err(CloudError::Missing {
                context: ctx,
                element: "defaultBgpIpAddresses",
            });
        }
        imp.tunnels.push(t);
    }
    Ok(imp)
}
