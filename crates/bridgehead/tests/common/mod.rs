//! Scaffolding shared by the namespace tests: a root check, a name prefix unique to this
//! process and call (namespaces, interfaces and daemons of parallel tests never collide), and
//! a fresh scratch directory. It builds no topology and starts nothing; each test file does
//! that for its own peers.
// why: each test file compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// Fails the test unless it runs as root, then returns `{tag}{pid}-{n}`, unique to this
/// process and call: the prefix of every namespace and file the caller makes.
pub(crate) fn unique_prefix(tag: &str) -> String {
    assert!(
        bridgehead::lab::is_root(),
        "this test builds network namespaces and must run as root (CI does)"
    );
    format!(
        "{tag}{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// An empty directory named `prefix` under the temporary directory (a leftover of an earlier
/// run with the same name is removed first).
pub(crate) fn fresh_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(prefix);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
