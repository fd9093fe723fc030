//! bridgehead's configuration: one TOML file, validated into [`Config`].
//!
//! Every error names the file, line, and TOML path of the field, says what is wrong and how to fix
//! it, and all errors are reported together, not only the first.

#![forbid(unsafe_code)]

pub mod model;

pub use model::*;
