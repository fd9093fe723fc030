//! Where each effective value of a `[[tunnel]]` or `[[bgp.neighbor]]` came from: the file (with
//! the line of its key), a cloud preset, or bridgehead's own default. `bridgehead check
//! --explain` shows it beside every value.
//!
//! This module only records provenance. The preset values and their fact-sheet sections live in
//! [`crate::cloud`]; the defaults live with the validator; nothing here changes a value.

use std::fmt;

use crate::cloud::{Cloud, preset_section};

/// Where one effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Written in the configuration file, at this 1-based line (the line of its key).
    File {
        /// The line.
        line: usize,
    },
    /// Filled by the cloud preset of `cloud = "..."`, from this section of the interop fact
    /// sheet (`shared/reference/cloud-gateways.md`).
    Preset {
        /// The cloud.
        cloud: Cloud,
        /// The fact-sheet section, e.g. `"2.1"`.
        section: &'static str,
    },
    /// Neither: bridgehead's default (see `docs/configuration.md`).
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { line } => write!(f, "set in file line {line}"),
            Self::Preset { cloud, .. } => write!(f, "preset {cloud}"),
            Self::Default => f.write_str("default"),
        }
    }
}

/// The keys of one table that the file sets, each with the line of its key, in file order.
/// Keys of a sub-table (`[tunnel.ike]`, `[tunnel.manual]`) are `ike.<key>` / `manual.<key>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileKeys(Vec<(String, usize)>);

impl FileKeys {
    /// Records that `key` is set at `line`.
    pub(crate) fn push(&mut self, key: String, line: usize) {
        self.0.push((key, line));
    }

    /// The line where `key` is set, if the file sets it.
    pub fn line(&self, key: &str) -> Option<usize> {
        self.0.iter().find(|(k, _)| k == key).map(|&(_, l)| l)
    }

    /// Every key set, with its line, in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, usize)> {
        self.0.iter().map(|(k, l)| (k.as_str(), *l))
    }
}

/// The origin of `key`: the file if it sets the key, else the preset if it filled it, else the
/// default.
pub(crate) fn origin_of(
    set_in_file: &FileKeys,
    from_preset: &[&str],
    cloud: Option<Cloud>,
    key: &str,
) -> Origin {
    if let Some(line) = set_in_file.line(key) {
        return Origin::File { line };
    }
    match cloud {
        Some(cloud) if from_preset.contains(&key) => Origin::Preset {
            cloud,
            section: preset_section(cloud, key),
        },
        _ => Origin::Default,
    }
}

impl crate::model::Tunnel {
    /// Where the effective value of `key` came from. `key` is the TOML key relative to the
    /// `[[tunnel]]` (`"mtu"`, `"ike.pfs"`, `"manual.suite"`).
    pub fn origin(&self, key: &str) -> Origin {
        origin_of(&self.set_in_file, &self.from_preset, self.cloud, key)
    }
}

impl crate::BgpNeighbor {
    /// Where the effective value of `key` (`"hold_time"`, `"passive"`, ...) came from.
    pub fn origin(&self, key: &str) -> Origin {
        origin_of(&self.set_in_file, &self.from_preset, self.cloud, key)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::Origin;
    use crate::{Cloud, Config, FileMeta, LoadCtx, MemFiles};

    fn load(text: &str) -> Config {
        const CONF: &str = "/etc/bridgehead/bridgehead.toml";
        let mut files = MemFiles::new();
        let meta = FileMeta {
            mode: 0o600,
            uid: 0,
        };
        files.insert(CONF, meta, text.as_bytes());
        let ctx = LoadCtx {
            online_cores: 1,
            euid: 0,
            files: &files,
        };
        crate::parse(Path::new(CONF), text, &ctx).unwrap_or_else(|e| panic!("{e}"))
    }

    fn line_of(text: &str, needle: &str) -> usize {
        text.lines().position(|l| l.contains(needle)).unwrap() + 1
    }

    const AZURE: &str = r#"[appliance]
public_ip = "203.0.113.10"

[[tunnel]]
name = "azure0"
cloud = "azure"
peer = "198.51.100.20"
inside = ["169.254.21.2/30"]
psk = "Azure+Key/0123456789="
mtu = 1380

[tunnel.ike]
child_lifetime = 3000

[bgp]
asn = 65010

[[bgp.neighbor]]
address = "169.254.21.1"
asn = 65515
tunnel = "azure0"
max_advertise = 500
"#;

    #[test]
    fn file_preset_and_default_are_told_apart() {
        let cfg = load(AZURE);
        let t = &cfg.tunnels[0];
        assert_eq!(
            t.origin("ike.child_lifetime"),
            Origin::File {
                line: line_of(AZURE, "child_lifetime")
            }
        );
        assert_eq!(
            t.origin("mtu"),
            Origin::File {
                line: line_of(AZURE, "mtu = 1380")
            }
        );
        assert_eq!(
            t.origin("ike.proposals"),
            Origin::Preset {
                cloud: Cloud::Azure,
                section: "2.1"
            }
        );
        assert_eq!(t.origin("ike.pfs").to_string(), "preset azure");
        // The MSS preset follows the MTU set in the file: still the preset's rule.
        assert!(matches!(t.origin("mss_clamp"), Origin::Preset { .. }));
        assert_eq!(t.origin("replay_window"), Origin::Default);
        assert_eq!(t.origin("name").to_string(), "set in file line 5");
        let n = &cfg.bgp.as_ref().unwrap().neighbors[0];
        assert_eq!(
            n.origin("max_advertise"),
            Origin::File {
                line: line_of(AZURE, "max_advertise")
            }
        );
        assert_eq!(
            n.origin("hold_time"),
            Origin::Preset {
                cloud: Cloud::Azure,
                section: "2.3"
            }
        );
        assert_eq!(n.origin("prepend"), Origin::Default);
        // Every key of the file is there, in order, sub-table keys with their prefix.
        let keys: Vec<&str> = t.set_in_file.iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "name",
                "cloud",
                "peer",
                "inside",
                "psk",
                "mtu",
                "ike",
                "ike.child_lifetime"
            ]
        );
    }

    #[test]
    fn without_cloud_everything_unset_is_default() {
        let text = AZURE.replace("cloud = \"azure\"\n", "");
        let cfg = load(&text);
        let t = &cfg.tunnels[0];
        assert_eq!(t.origin("ike.proposals"), Origin::Default);
        assert_eq!(t.origin("ike.pfs"), Origin::Default);
        assert_eq!(
            t.origin("ike.child_lifetime"),
            Origin::File {
                line: line_of(&text, "child_lifetime")
            }
        );
        let n = &cfg.bgp.as_ref().unwrap().neighbors[0];
        assert_eq!(n.origin("hold_time"), Origin::Default);
    }

    #[test]
    fn inline_sub_tables_and_manual_keys_have_their_lines() {
        let text = "[appliance]\npublic_ip = \"203.0.113.10\"\n\n[[tunnel]]\nname = \"m0\"\npeer = \"198.51.100.1\"\n\n\
                    [tunnel.manual]\nsuite = \"aes256gcm16\"\noutbound_spi = 0x1001\n\
                    inbound_spi = 0x2002\n\
                    outbound_key = \"0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223\"\n\
                    inbound_key = \"0x100102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223\"\n\n\
                    [[tunnel]]\nname = \"i0\"\npeer = \"198.51.100.2\"\npsk = \"Generated_Key.0123456789abcdef\"\n\
                    ike = { pfs = \"none\", initiate = false }\n";
        let cfg = load(text);
        assert_eq!(
            cfg.tunnels[0].origin("manual.suite"),
            Origin::File {
                line: line_of(text, "suite")
            }
        );
        let inline = line_of(text, "ike = {");
        assert_eq!(
            cfg.tunnels[1].origin("ike.pfs"),
            Origin::File { line: inline }
        );
        assert_eq!(
            cfg.tunnels[1].origin("ike.initiate"),
            Origin::File { line: inline }
        );
        assert_eq!(cfg.tunnels[1].origin("ike.dpd_interval"), Origin::Default);
    }
}
