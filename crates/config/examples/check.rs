//! Checks a configuration file and prints every error, one per line:
//! `cargo run -p bh-config --example check -- /etc/bridgehead/bridgehead.toml`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: check FILE");
        return ExitCode::from(2);
    };
    match bh_config::load(&path) {
        Ok(cfg) => {
            println!("{}: OK, {} tunnel(s)", path.display(), cfg.tunnels.len());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::FAILURE
        }
    }
}
