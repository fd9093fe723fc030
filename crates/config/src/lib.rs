//! bridgehead's configuration: one TOML file, validated into [`Config`].
//!
//! [`load`] reads the file and [`parse`] checks text already in memory. Every error names the
//! file, line, column and TOML path of the field, says what is wrong and how to fix it, and all
//! errors are reported together, not only the first ([`ConfigErrors`]). Files that hold keys
//! (the configuration with inline keys, or a `key_file`) must be mode 0600 or stricter and owned
//! by the running user or root.
//!
//! This crate does no I/O beyond reading the configuration and its key files (and their
//! metadata); it does not watch files, apply anything to the system, or talk to peers. A tunnel
//! is keyed either by IKE (`psk` or `psk_file`, optional `[tunnel.ike]`, see [`ike`]) or by
//! `[tunnel.manual]`. `cloud = "aws" | "azure" | "gcp"` fills in that cloud's defaults and
//! turns on its checks ([`cloud`]); the model always holds the effective values. The format is described in `docs/configuration.md`.
//!
//! Secrets: file bytes are read into wiped buffers, every string the TOML parser hands over is
//! moved into a wiped buffer, and keys are decoded from there straight into
//! [`zeroize::Zeroizing`] buffers; no error or `Debug` output shows a key. Two copies are outside
//! this crate's reach: a key string written with TOML escapes is assembled by the parser in its
//! own growing buffer, and on a TOML *syntax* error `toml` keeps a copy of the whole text to quote
//! from (this crate only uses the error's message and span, never that quote).

#![forbid(unsafe_code)]

pub mod cloud;
mod ctx;
mod error;
pub mod ike;
pub mod model;
pub mod origin;
pub mod reasons;
mod tree;
mod validate;

use std::path::Path;

pub use cloud::{Cloud, CloudProblem, Preset, PresetSource, preset_sources};
pub use ctx::{DiskFiles, FileContent, FileMeta, FileSource, LoadCtx, MAX_FILE_SIZE, MemFiles};
pub use error::{ConfigError, ConfigErrors, ErrorKind, HexProblem};
pub use model::*;
pub use origin::{FileKeys, Origin};
pub use reasons::PresetReason;
pub use validate::bgp::{
    Bgp, BgpNeighbor, DEFAULT_BGP_METRIC, DEFAULT_BGP_TABLE, DEFAULT_HOLD_TIME, DEFAULT_MULTIPATH,
    MaxPrefixAction, Md5Password, PrefixRule,
};
pub use validate::{
    DEFAULT_NAT_KEEPALIVE, DEFAULT_REPLAY_WINDOW, DEFAULT_SOCKET_BUFFER, DEFAULT_UDP_PORT,
};

/// Reads and validates the configuration at `path`, using [`LoadCtx::system`].
///
/// # Errors
///
/// Every problem found, each with its file, line, column and TOML path.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with(path, &LoadCtx::system())
}

/// Reads `path` through `ctx.files` and validates it.
///
/// # Errors
///
/// As [`load`].
pub fn load_with(path: &Path, ctx: &LoadCtx<'_>) -> Result<Config, ConfigErrors> {
    let whole_file = |kind| ConfigErrors {
        errors: vec![ConfigError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            path: String::new(),
            kind,
        }],
    };
    let content = ctx.files.read(path).map_err(|e| {
        whole_file(if e.kind() == std::io::ErrorKind::FileTooLarge {
            ErrorKind::TooLarge { max: MAX_FILE_SIZE }
        } else {
            ErrorKind::Io {
                reason: e.to_string(),
            }
        })
    })?;
    let text = std::str::from_utf8(&content.bytes).map_err(|_| whole_file(ErrorKind::NotUtf8))?;
    validate::check(path, text, Some(content.meta), ctx)
}

/// Validates configuration `text` as if read from `source_name`.
///
/// `source_name` names the file in errors, anchors relative `key_file` paths, and, when the text
/// holds inline keys, is looked up in `ctx.files` for its owner and mode.
///
/// # Errors
///
/// As [`load`].
pub fn parse(source_name: &Path, text: &str, ctx: &LoadCtx<'_>) -> Result<Config, ConfigErrors> {
    validate::check(source_name, text, None, ctx)
}
