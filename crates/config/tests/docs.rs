//! docs/configuration.md stays true: its complete example loads, and its suite table matches the
//! suites bridgehead knows.

use std::path::Path;

use bh_config::{Encap, FileMeta, LoadCtx, MemFiles, parse};

const DOC: &str = include_str!("../../../docs/configuration.md");

/// The bodies of the ```toml blocks, in order.
fn toml_blocks() -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in DOC.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn complete_example_loads() {
    let blocks = toml_blocks();
    assert!(blocks.len() >= 2, "the example and its key file");
    let meta = FileMeta {
        mode: 0o600,
        uid: 0,
    };
    let mut files = MemFiles::new();
    files.insert("/etc/bridgehead/bridgehead.toml", meta, b"");
    files.insert(
        "/etc/bridgehead/keys/sitec.toml",
        meta,
        blocks[1].as_bytes(),
    );
    let ctx = LoadCtx {
        online_cores: 2,
        euid: 0,
        files: &files,
    };
    let cfg = parse(
        Path::new("/etc/bridgehead/bridgehead.toml"),
        &blocks[0],
        &ctx,
    )
    .unwrap_or_else(|e| panic!("the documented example fails:\n{e}"));
    assert_eq!(cfg.tunnels.len(), 2);
    assert_eq!(cfg.dataplane.workers, 2);
    assert_eq!(cfg.tunnels[1].encap, Encap::Esp);
    assert_eq!(
        cfg.tunnels[1].manual.as_ref().unwrap().outbound.key.len(),
        48
    );
}

#[test]
fn suite_table_matches_the_crypto_crate() {
    let mut documented = Vec::new();
    let mut in_suites = false;
    for line in DOC.lines() {
        if line.starts_with("### Suites") {
            in_suites = true;
        } else if line.starts_with('#') {
            in_suites = false;
        } else if in_suites && line.starts_with("| `") {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let name = cells[1].trim_matches('`').to_owned();
            let len: usize = cells[2].parse().unwrap();
            documented.push((name, len));
        }
    }
    let known: Vec<(String, usize)> = bh_crypto::esp::SUITE_NAMES
        .iter()
        .map(|(n, s)| ((*n).to_owned(), s.key_len()))
        .collect();
    assert_eq!(documented, known);
}
