//! AWS: import a VPN connection's CustomerGatewayConfiguration XML (the `<vpn_connection>`
//! document in `aws ec2 describe-vpn-connections`), and the names AWS gives algorithms.
//!
//! Each `<ipsec_tunnel>` becomes one tunnel: our inside address is the customer gateway's
//! (the 2nd host of the /30; AWS takes the 1st), the BGP neighbor is the VPN gateway's inside
//! address with its ASN and hold time, the IKE and IPsec algorithms are mapped to our proposal
//! words, DPD to `dpd_interval`/`dpd_timeout`, `tcp_mss_adjustment` to `mss_clamp`.
//!
//! Not done: IKEv1 (the XML describes `main` mode, but AWS tunnels accept IKEv2 by default and
//! bridgehead speaks only IKEv2), certificate authentication, IPv6 inside addresses.

use std::net::{IpAddr, Ipv4Addr};

use roxmltree::{Document, Node, ParsingOptions};
use zeroize::Zeroizing;

use super::{
    Cloud, CloudError, Imported, ImportedNeighbor, ImportedTunnel, below, other_host_30, quote,
};

/// Largest input accepted (bytes); a real document is about 10 KiB.
pub const MAX_XML: usize = 1 << 20;

/// AWS's DH group number for our group word, or `None` when AWS does not offer it.
pub fn dh_number(word: &str) -> Option<u16> {
    Some(match word {
        "modp1024" => 2,
        "modp2048" => 14,
        "modp3072" => 15,
        "modp4096" => 16,
        "ecp256" => 19,
        "ecp384" => 20,
        "ecp521" => 21,
        "modp2048s256" => 24,
        _ => return None,
    })
}

/// Our DH group word for an AWS `groupN` / `N`, or `None` when bridgehead has no such group.
fn dh_word(v: &str) -> Option<&'static str> {
    let n = v.trim().to_ascii_lowercase();
    let n = n.strip_prefix("group").unwrap_or(&n);
    Some(match n {
        "2" => "modp1024",
        "14" => "modp2048",
        "15" => "modp3072",
        "16" => "modp4096",
        "19" => "ecp256",
        "20" => "ecp384",
        "21" => "ecp521",
        "24" => "modp2048s256",
        _ => return None,
    })
}

/// Our encryption word for an AWS name (`aes-128-cbc`, `AES256`, `aes-256-gcm-16`, ...).
fn encr_word(v: &str) -> Option<&'static str> {
    let n: String = v
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    Some(match n.as_str() {
        "aes128cbc" | "aes128" => "aes128",
        "aes256cbc" | "aes256" => "aes256",
        "aes128gcm16" | "aes128gcm" => "aes128gcm16",
        "aes256gcm16" | "aes256gcm" => "aes256gcm16",
        _ => return None,
    })
}

/// Our integrity word for an AWS name (`sha1`, `hmac-sha1-96`, `SHA2-256`, ...).
fn integ_word(v: &str) -> Option<&'static str> {
    let n: String = v
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let n = n.strip_prefix("hmac").unwrap_or(&n);
    Some(match n {
        "sha1" | "sha196" | "sha" => "sha1",
        "sha2256" | "sha256" | "sha2256128" | "sha256128" => "sha256",
        "sha2384" | "sha384" | "sha2384192" | "sha384192" => "sha384",
        "sha2512" | "sha512" | "sha2512256" | "sha512256" => "sha512",
        _ => return None,
    })
}

/// AWS's Phase 1/2 encryption name for our word.
pub fn aws_encr(word: &str) -> Option<&'static str> {
    Some(match word {
        "aes128" | "aes" => "AES128",
        "aes256" => "AES256",
        "aes128gcm16" | "aes128gcm128" => "AES128-GCM-16",
        "aes256gcm16" | "aes256gcm128" => "AES256-GCM-16",
        _ => return None,
    })
}

/// AWS's Phase 1/2 integrity name for our integrity or PRF word.
pub fn aws_integ(word: &str) -> Option<&'static str> {
    Some(match word.strip_prefix("prf").unwrap_or(word) {
        "sha1" | "sha" => "SHA1",
        "sha256" | "sha2_256" => "SHA2-256",
        "sha384" | "sha2_384" => "SHA2-384",
        "sha512" | "sha2_512" => "SHA2-512",
        _ => return None,
    })
}

fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    n.children()
        .find(|c| c.is_element() && c.has_tag_name(name))
}

fn need<'a, 'i>(
    n: Node<'a, 'i>,
    name: &'static str,
    ctx: &str,
) -> Result<Node<'a, 'i>, CloudError> {
    child(n, name).ok_or_else(|| CloudError::Missing {
        context: ctx.to_owned(),
        element: name,
    })
}

fn text<'a>(n: Node<'a, '_>, name: &'static str, ctx: &str) -> Result<&'a str, CloudError> {
    let e = need(n, name, ctx)?;
    let t = e.text().map(str::trim).unwrap_or("");
    if t.is_empty() {
        return Err(CloudError::Missing {
            context: format!("{ctx}/{name}"),
            element: "text",
        });
    }
    Ok(t)
}

fn opt_text<'a>(n: Node<'a, '_>, name: &str) -> Option<&'a str> {
    child(n, name)
        .and_then(|e| e.text())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn num<T: std::str::FromStr>(v: &str, element: &'static str, ctx: &str) -> Result<T, CloudError> {
    v.parse().map_err(|_| CloudError::BadValue {
        context: ctx.to_owned(),
        element,
        value: quote(v),
        expected: "expected a number in range",
    })
}

fn ipv4(v: &str, element: &'static str, ctx: &str) -> Result<Ipv4Addr, CloudError> {
    v.parse().map_err(|_| CloudError::BadValue {
        context: ctx.to_owned(),
        element,
        value: quote(v),
        expected: "expected an IPv4 address",
    })
}

/// Deepest element nesting accepted; the real document is 6 deep. The XML parser recurses, so
/// a hostile document must not reach it with thousands of levels.
const MAX_DEPTH: usize = 32;

/// Refuses documents nested deeper than [`MAX_DEPTH`] before parsing (a conservative scan: a
/// `<` inside a comment or CDATA can only make it refuse more, never less).
fn check_depth(xml: &str) -> Result<(), CloudError> {
    let b = xml.as_bytes();
    let mut depth: usize = 0;
    for (i, &c) in b.iter().enumerate() {
        if c != b'<' {
            continue;
        }
        match b.get(i + 1) {
            Some(b'/') => depth = depth.saturating_sub(1),
            Some(b'?' | b'!') | None => {}
            Some(_) => {
                // A self-closing tag `<x/>` does not nest.
                let end = b[i..].iter().position(|&x| x == b'>').map(|p| i + p);
                if end.is_some_and(|e| e > 0 && b.get(e - 1) == Some(&b'/')) {
                    continue;
                }
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(CloudError::Xml(format!(
                        "elements nest deeper than {MAX_DEPTH} levels"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Reads a CustomerGatewayConfiguration document.
///
/// # Errors
///
/// [`CloudError::Xml`] for malformed XML (DTDs refused, at most 100,000 nodes),
/// [`CloudError::Missing`] / [`CloudError::BadValue`] naming the element otherwise.
pub fn import(xml: &str) -> Result<Imported, CloudError> {
    if xml.len() > MAX_XML {
        return Err(CloudError::Xml(format!(
            "the document is {} bytes; at most {MAX_XML} are read",
            xml.len()
        )));
    }
    check_depth(xml)?;
    let opts = ParsingOptions {
        allow_dtd: false,
        nodes_limit: 100_000,
    };
    let doc =
        Document::parse_with_options(xml, opts).map_err(|e| CloudError::Xml(e.to_string()))?;
    let root = doc.root_element();
    if !root.has_tag_name("vpn_connection") {
        return Err(CloudError::Missing {
            context: "document".into(),
            element: "vpn_connection",
        });
    }
    let conn_id = root.attribute("id").unwrap_or("");
    let mut imp = Imported {
        cloud: Cloud::Aws,
        public_ip: None,
        local_asn: None,
        tunnels: Vec::new(),
        missing: Vec::new(),
        notes: vec![
            "AWS's document describes IKEv1 main mode; AWS tunnels accept IKEv2 by default, \
             which is what bridgehead speaks"
                .into(),
        ],
    };
    let tunnels: Vec<Node<'_, '_>> = root
        .children()
        .filter(|c| c.is_element() && c.has_tag_name("ipsec_tunnel"))
        .collect();
    if tunnels.is_empty() {
        return Err(CloudError::Missing {
            context: "vpn_connection".into(),
            element: "ipsec_tunnel",
        });
    }
    if tunnels.len() > 16 {
        return Err(CloudError::BadValue {
            context: "vpn_connection".into(),
            element: "ipsec_tunnel",
            value: tunnels.len().to_string(),
            expected: "an AWS connection has 2 tunnels",
        });
    }
    let mut static_only = false;
    for (i, tn) in tunnels.into_iter().enumerate() {
        let ctx = format!("ipsec_tunnel[{i}]");
        let cgw_ctx = format!("{ctx}/customer_gateway");
        let vgw_ctx = format!("{ctx}/vpn_gateway");
        let cgw = need(tn, "customer_gateway", &ctx)?;
        let vgw = need(tn, "vpn_gateway", &ctx)?;
        let ike = need(tn, "ike", &ctx)?;
        let ipsec = need(tn, "ipsec", &ctx)?;

        let our_out = need(cgw, "tunnel_outside_address", &cgw_ctx)?;
        let our_out = ipv4(
            text(
                our_out,
                "ip_address",
                &format!("{cgw_ctx}/tunnel_outside_address"),
            )?,
            "ip_address",
            &cgw_ctx,
        )?;
        match imp.public_ip {
            None => imp.public_ip = Some(IpAddr::V4(our_out)),
            Some(p) if p != IpAddr::V4(our_out) => {
                return Err(CloudError::BadValue {
                    context: format!("{cgw_ctx}/tunnel_outside_address"),
                    element: "ip_address",
                    value: our_out.to_string(),
                    expected: "the same customer gateway address in every tunnel",
                });
            }
            Some(_) => {}
        }
        let peer_out = need(vgw, "tunnel_outside_address", &vgw_ctx)?;
        let peer_out = ipv4(
            text(
                peer_out,
                "ip_address",
                &format!("{vgw_ctx}/tunnel_outside_address"),
            )?,
            "ip_address",
            &vgw_ctx,
        )?;

        let in_ctx = format!("{cgw_ctx}/tunnel_inside_address");
        let our_in = need(cgw, "tunnel_inside_address", &cgw_ctx)?;
        let our_in_ip = ipv4(text(our_in, "ip_address", &in_ctx)?, "ip_address", &in_ctx)?;
        let len: u8 = match opt_text(our_in, "network_cidr") {
            Some(v) => num(v, "network_cidr", &in_ctx)?,
            None => {
                let m = ipv4(
                    text(our_in, "network_mask", &in_ctx)?,
                    "network_mask",
                    &in_ctx,
                )?;
                u8::try_from(u32::from(m).leading_ones()).unwrap_or(32)
            }
        };
        if len != 30 {
            return Err(CloudError::BadValue {
                context: in_ctx,
                element: "network_cidr",
                value: len.to_string(),
                expected: "AWS inside networks are /30",
            });
        }
        let vin_ctx = format!("{vgw_ctx}/tunnel_inside_address");
        let peer_in = need(vgw, "tunnel_inside_address", &vgw_ctx)?;
        let peer_in_ip = ipv4(
            text(peer_in, "ip_address", &vin_ctx)?,
            "ip_address",
            &vin_ctx,
        )?;
        if other_host_30(our_in_ip) != Some(peer_in_ip) {
            return Err(CloudError::BadValue {
                context: vin_ctx,
                element: "ip_address",
                value: peer_in_ip.to_string(),
                expected: "the other host of the customer gateway's inside /30",
            });
        }

        let mut t = ImportedTunnel {
            name: format!("aws{i}"),
            peer: Some(IpAddr::V4(peer_out)),
            inside: Some((IpAddr::V4(our_in_ip), len)),
            initiate: true,
            ..ImportedTunnel::default()
        };
        t.comments.push(format!(
            "AWS {} tunnel {} (outside {peer_out}, inside {peer_in_ip}); AWS's default \
             startup action waits for us to initiate",
            if conn_id.is_empty() { "VPN" } else { conn_id },
            i + 1
        ));

        // BGP: absent in a static-routing connection.
        match (child(cgw, "bgp"), child(vgw, "bgp")) {
            (Some(cb), Some(vb)) => {
                let c = format!("{cgw_ctx}/bgp");
                let our_asn: u32 = num(text(cb, "asn", &c)?, "asn", &c)?;
                match imp.local_asn {
                    None => imp.local_asn = Some(our_asn),
                    Some(a) if a != our_asn => {
                        return Err(CloudError::BadValue {
                            context: c,
                            element: "asn",
                            value: our_asn.to_string(),
                            expected: "the same customer gateway ASN in every tunnel",
                        });
                    }
                    Some(_) => {}
                }
                let v = format!("{vgw_ctx}/bgp");
                let asn: u32 = num(text(vb, "asn", &v)?, "asn", &v)?;
                let hold: u16 = match opt_text(vb, "hold_time") {
                    Some(h) => num(h, "hold_time", &v)?,
                    None => 30,
                };
                if hold != 0 && hold < 3 {
                    return Err(CloudError::BadValue {
                        context: v,
                        element: "hold_time",
                        value: hold.to_string(),
                        expected: "0 or 3..=65535",
                    });
                }
                t.neighbor = Some(ImportedNeighbor {
                    address: IpAddr::V4(peer_in_ip),
                    asn,
                    hold_time: hold,
                    multihop: None,
                });
            }
            _ => static_only = true,
        }

        // IKE.
        let ictx = format!("{ctx}/ike");
        let enc_s = text(ike, "encryption_protocol", &ictx)?;
        let enc = encr_word(enc_s).ok_or_else(|| CloudError::BadValue {
            context: ictx.clone(),
            element: "encryption_protocol",
            value: quote(enc_s),
            expected: "aes-128-cbc, aes-256-cbc, aes-128-gcm-16 or aes-256-gcm-16",
        })?;
        let auth_s = text(ike, "authentication_protocol", &ictx)?;
        let auth = integ_word(auth_s).ok_or_else(|| CloudError::BadValue {
            context: ictx.clone(),
            element: "authentication_protocol",
            value: quote(auth_s),
            expected: "sha1, sha2-256, sha2-384 or sha2-512",
        })?;
        let grp_s = text(ike, "perfect_forward_secrecy", &ictx)?;
        let grp = dh_word(grp_s).ok_or_else(|| CloudError::BadValue {
            context: ictx.clone(),
            element: "perfect_forward_secrecy",
            value: quote(grp_s),
            expected: "group2, 14, 15, 16, 19, 20, 21 or 24",
        })?;
        t.proposals = vec![if enc.contains("gcm") {
            format!("{enc}-prf{auth}-{grp}")
        } else {
            format!("{enc}-{auth}-{grp}")
        }];
        let ike_life: u64 = match opt_text(ike, "lifetime") {
            Some(v) => num(v, "lifetime", &ictx)?,
            None => 28_800,
        };
        t.ike_lifetime = below(ike_life, 30);
        let psk = text(ike, "pre_shared_key", &ictx)?;
        if !(8..=64).contains(&psk.len()) {
            return Err(CloudError::BadValue {
                context: ictx,
                element: "pre_shared_key",
                value: format!("<{} bytes>", psk.len()),
                expected: "AWS keys are 8 to 64 characters",
            });
        }
        t.psk = Some(Zeroizing::new(psk.to_owned()));

        // IPsec.
        let pctx = format!("{ctx}/ipsec");
        if let Some(p) = opt_text(ipsec, "protocol") {
            if !p.eq_ignore_ascii_case("esp") {
                return Err(CloudError::BadValue {
                    context: pctx,
                    element: "protocol",
                    value: quote(p),
                    expected: "esp",
                });
            }
        }
        if let Some(m) = opt_text(ipsec, "mode") {
            if !m.eq_ignore_ascii_case("tunnel") {
                return Err(CloudError::BadValue {
                    context: pctx,
                    element: "mode",
                    value: quote(m),
                    expected: "tunnel",
                });
            }
        }
        let penc_s = text(ipsec, "encryption_protocol", &pctx)?;
        let penc = encr_word(penc_s).ok_or_else(|| CloudError::BadValue {
            context: pctx.clone(),
            element: "encryption_protocol",
            value: quote(penc_s),
            expected: "aes-128-cbc, aes-256-cbc, aes-128-gcm-16 or aes-256-gcm-16",
        })?;
        t.esp_proposals = vec![if penc.contains("gcm") {
            // AWS leaves ESP integrity empty with GCM: an HMAC next to it never negotiates.
            penc.to_owned()
        } else {
            let pa_s = text(ipsec, "authentication_protocol", &pctx)?;
            let pa = integ_word(pa_s).ok_or_else(|| CloudError::BadValue {
                context: pctx.clone(),
                element: "authentication_protocol",
                value: quote(pa_s),
                expected: "hmac-sha1-96 or hmac-sha2-256/384/512",
            })?;
            format!("{penc}-{pa}")
        }];
        let pgrp_s = text(ipsec, "perfect_forward_secrecy", &pctx)?;
        t.pfs = dh_word(pgrp_s)
            .ok_or_else(|| CloudError::BadValue {
                context: pctx.clone(),
                element: "perfect_forward_secrecy",
                value: quote(pgrp_s),
                expected: "group2, 14, 15, 16, 19, 20, 21 or 24",
            })?
            .to_owned();
        let child_life: u64 = match opt_text(ipsec, "lifetime") {
            Some(v) => num(v, "lifetime", &pctx)?,
            None => 3_600,
        };
        t.child_lifetime = below(child_life, 10).min(t.ike_lifetime);
        if let Some(m) = opt_text(ipsec, "tcp_mss_adjustment") {
            let m: u16 = num(m, "tcp_mss_adjustment", &pctx)?;
            if !(536..=9000).contains(&m) {
                return Err(CloudError::BadValue {
                    context: pctx,
                    element: "tcp_mss_adjustment",
                    value: m.to_string(),
                    expected: "536..=9000",
                });
            }
            t.mss_clamp = Some(m);
        }
        if let Some(d) = child(ipsec, "dead_peer_detection") {
            let dctx = format!("{pctx}/dead_peer_detection");
            let interval: u64 = num(text(d, "interval", &dctx)?, "interval", &dctx)?;
            let retries: u64 = num(text(d, "retries", &dctx)?, "retries", &dctx)?;
            if interval == 0 || interval > 3600 || retries == 0 || retries > 100 {
                return Err(CloudError::BadValue {
                    context: dctx,
                    element: "interval",
                    value: format!("{interval} x {retries}"),
                    expected: "an interval of 1..=3600 s and 1..=100 retries",
                });
            }
            let timeout = interval
                .saturating_mul(retries)
                .max(interval + 1)
                .clamp(5, 3600);
            t.dpd = Some((interval, timeout));
        } else {
            t.dpd = Some((10, 30));
        }
        let df = opt_text(ipsec, "clear_df_bit").is_some_and(|v| v == "true");
        let frag = opt_text(ipsec, "fragmentation_before_encryption").is_some_and(|v| v == "true");
        if df || frag {
            t.comments.push(
                "AWS asks for DF cleared and fragmentation before encryption (it has no PMTUD); \
                 the MSS clamp keeps TCP below the tunnel MTU"
                    .into(),
            );
        }
        imp.tunnels.push(t);
    }
    if static_only {
        imp.notes.push(
            "no <bgp> in the document: a static-routing connection; add each tunnel's `routes`"
                .into(),
        );
    }
    Ok(imp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map() {
        assert_eq!(encr_word("aes-128-cbc"), Some("aes128"));
        assert_eq!(encr_word("AES256-GCM-16"), Some("aes256gcm16"));
        assert_eq!(integ_word("hmac-sha1-96"), Some("sha1"));
        assert_eq!(integ_word("SHA2-256"), Some("sha256"));
        assert_eq!(integ_word("hmac-sha2-512-256"), Some("sha512"));
        assert_eq!(dh_word("group2"), Some("modp1024"));
        assert_eq!(dh_word("24"), Some("modp2048s256"));
        assert_eq!(dh_word("group5"), None);
        assert_eq!(aws_integ("prfsha256"), Some("SHA2-256"));
        assert_eq!(dh_number("curve25519"), None);
    }

    #[test]
    fn hostile_input_is_an_error() {
        assert!(matches!(import(""), Err(CloudError::Xml(_))));
        assert!(matches!(import("<a>"), Err(CloudError::Xml(_))));
        let dtd = "<!DOCTYPE x [<!ENTITY a \"aaaa\">]><vpn_connection>&a;</vpn_connection>";
        assert!(matches!(import(dtd), Err(CloudError::Xml(_))));
        let e = import("<vpn_connection/>").unwrap_err();
        assert_eq!(e.to_string(), "vpn_connection: missing <ipsec_tunnel>");
    }
}
