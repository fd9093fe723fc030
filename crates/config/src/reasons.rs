//! Why each cloud preset value and check is what it is: one line per reason, with the section
//! of the interop fact sheet (`shared/reference/cloud-gateways.md`) it rests on. `bridgehead
//! check --explain` prints them beside the effective values.
//!
//! The values themselves are in [`crate::cloud`] (presets and checks); this module holds only
//! the explanations, and states no fact the fact sheet does not.

use crate::cloud::Cloud;

/// One reason behind a preset value or a cloud check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresetReason {
    /// The keys it explains: tunnel keys (`"ike.pfs"`, `"mtu"`, `"inside"`, `"psk"`) or
    /// neighbor keys (`"neighbor.hold_time"`, `"neighbor.address"`).
    pub keys: &'static [&'static str],
    /// The reason, one line.
    pub text: &'static str,
    /// The fact-sheet section(s), e.g. `"2.1"`.
    pub section: &'static str,
}

const fn r(
    keys: &'static [&'static str],
    text: &'static str,
    section: &'static str,
) -> PresetReason {
    PresetReason {
        keys,
        text,
        section,
    }
}

const AWS: &[PresetReason] = &[
    r(
        &["ike.proposals", "ike.esp_proposals"],
        "AWS accepts AES-CBC and AES-GCM-16 with SHA-1/SHA-2 and DH 2, 14-24; with AES-GCM \
         AWS leaves ESP integrity empty",
        "1.1, 1.2, 5 item 13",
    ),
    r(
        &["ike.pfs"],
        "AWS lists PFS as a customer gateway requirement: bridgehead sends and requires a KE \
         on Child SA rekeys",
        "1.2",
    ),
    r(
        &["ike.initiate"],
        "AWS's default startup action (Add) waits for the customer gateway, so bridgehead \
         initiates",
        "1.2",
    ),
    r(
        &["ike.ike_lifetime", "ike.child_lifetime"],
        "lifetimes below the cloud's (AWS 28,800 s / 3,600 s) so bridgehead drives the rekeys",
        "1.1, 1.2, 5 item 8",
    ),
    r(
        &["ike.dpd_interval", "ike.dpd_timeout"],
        "DPD 10 s / 30 s as in AWS's generated strongSwan configuration",
        "1.2",
    ),
    r(
        &["mtu", "mss_clamp"],
        "AWS does no PMTUD: MTU from AWS's per-cipher table, MSS 1379 as in AWS's samples",
        "1.2, 1.4",
    ),
    r(
        &["inside"],
        "AWS takes .1 of the inside /30, the customer .2; 7 /30s are reserved",
        "1.3",
    ),
    r(
        &["psk"],
        "AWS keys: 8-64 characters of A-Za-z0-9._, not starting with 0",
        "1.2",
    ),
    r(
        &["neighbor.address"],
        "AWS's BGP address is .1 of the tunnel's inside /30",
        "1.3",
    ),
    r(
        &["neighbor.hold_time"],
        "AWS's BGP hold time is 30 s (keepalive 10 s)",
        "1.3",
    ),
    r(
        &["neighbor.max_advertise"],
        "an AWS VGW accepts at most 100 prefixes from us, not adjustable (a TGW 1,000)",
        "1.3",
    ),
];

const AZURE: &[PresetReason] = &[
    r(
        &["ike.proposals"],
        "Azure default policy accepts only MODP-1024 (DH group 2) unless a custom IPsec \
         policy is set",
        "2.1, 5 item 2",
    ),
    r(
        &["ike.esp_proposals"],
        "Azure's default ESP offers, all with PFS None; Azure accepts AES-GCM only without PFS",
        "2.2",
    ),
    r(
        &["ike.pfs"],
        "Azure rekeys Child SAs without a KE payload, so bridgehead neither sends nor requires \
         one",
        "2.2, 5 item 1",
    ),
    r(
        &["ike.initiate"],
        "behind NAT the on-premises side must initiate IKE towards Azure",
        "2.2",
    ),
    r(
        &["ike.ike_lifetime", "ike.child_lifetime"],
        "lifetimes below the cloud's (Azure 28,800 s / 27,000 s) so bridgehead drives the \
         rekeys",
        "2.1, 2.2, 5 item 8",
    ),
    r(
        &["ike.dpd_interval", "ike.dpd_timeout"],
        "Azure's DPD timeout is 45 s",
        "2.2",
    ),
    r(
        &["mtu", "mss_clamp"],
        "Azure asks for tunnel MTU 1400 or TCP MSS 1350",
        "2.2",
    ),
    r(
        &["inside", "neighbor.address"],
        "Azure's custom APIPA BGP addresses must be in 169.254.21.0-169.254.22.255",
        "2.3",
    ),
    r(
        &["psk"],
        "Azure keys: printable ASCII except space, - and ~",
        "2.2",
    ),
    r(
        &["neighbor.passive"],
        "Azure never opens BGP towards an APIPA peer, so bridgehead initiates",
        "2.3, 6.3 item 17",
    ),
    r(
        &["neighbor.hold_time"],
        "Azure's BGP timers are keepalive 60 s / hold 180 s, fixed",
        "2.3",
    ),
    r(
        &["neighbor.max_advertise"],
        "Azure drops the BGP session past 4,000 prefixes",
        "2.3",
    ),
];

const GCP: &[PresetReason] = &[
    r(
        &["ike.proposals", "ike.esp_proposals"],
        "proposals in GCP's order (AES-GCM-16-128 first, Group-14); Google advises one cipher \
         per role",
        "3.1, 3.2",
    ),
    r(&["ike.pfs"], "GCP requires PFS on Child SAs", "3.2"),
    r(
        &["ike.initiate", "ike.dpd_interval", "ike.dpd_timeout"],
        "Google asks the peer for Start = auto and aggressive DPD",
        "3.2",
    ),
    r(
        &["ike.ike_lifetime", "ike.child_lifetime"],
        "lifetimes below the cloud's (GCP 36,000 s / 10,800 s) so bridgehead drives the rekeys",
        "3.1, 3.2, 5 item 8",
    ),
    r(
        &["mtu", "mss_clamp"],
        "GCP's payload MTU: 1406 AEAD, 1390 CBC + SHA-1/SHA-256, 1374 CBC + SHA-512; GCP does \
         not fragment after encapsulation",
        "3.2, 3.4",
    ),
    r(
        &["inside"],
        "GCP takes any /30 in 169.254.0.0/16; Google's examples use .1 for Google",
        "3.3",
    ),
    r(
        &["neighbor.hold_time"],
        "Cloud Router's keepalive is 20 s and its hold time 3 x keepalive",
        "3.3",
    ),
    r(
        &["neighbor.max_advertise"],
        "Cloud Router's learned-prefix quota is not documented in the fact sheet: no limit is \
         preset",
        "3.3",
    ),
];

impl Cloud {
    /// Why this cloud's preset values and checks are what they are.
    pub fn reasons(self) -> &'static [PresetReason] {
        match self {
            Self::Aws => AWS,
            Self::Azure => AZURE,
            Self::Gcp => GCP,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::{NEIGHBOR_PRESET_KEYS, TUNNEL_PRESET_KEYS};

    /// Every preset key of every cloud has a reason, so `--explain` never shows a preset value
    /// without its why.
    #[test]
    fn every_preset_key_has_a_reason() {
        for cloud in [Cloud::Aws, Cloud::Azure, Cloud::Gcp] {
            let keys: Vec<String> = TUNNEL_PRESET_KEYS
                .iter()
                .map(|k| (*k).to_owned())
                .chain(NEIGHBOR_PRESET_KEYS.iter().map(|k| format!("neighbor.{k}")))
                .collect();
            for k in keys {
                if cloud != Cloud::Azure && k == "neighbor.passive" {
                    continue; // `passive = false` is the plain default there
                }
                assert!(
                    cloud.reasons().iter().any(|r| r.keys.contains(&k.as_str())),
                    "{cloud}: no reason for {k}"
                );
            }
            for r in cloud.reasons() {
                assert!(!r.section.is_empty() && r.text.len() < 120, "{r:?}");
            }
        }
    }
}
