//! The `bridgehead` command.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use bridgehead::{control, daemon, lab, status};

/// IPsec + BGP appliance for the AWS, Azure and Google Cloud VPN gateways.
#[derive(Parser)]
#[command(name = "bridgehead", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the configured tunnels until SIGTERM.
    Daemon {
        /// Configuration file.
        #[arg(short, long, default_value = "/etc/bridgehead/bridgehead.toml")]
        config: PathBuf,
        /// Control socket path.
        #[arg(long, default_value = control::DEFAULT_PATH)]
        control: PathBuf,
        /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9474); off by default.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
    },
    /// Check a configuration file and print every error.
    Check {
        /// Configuration file.
        #[arg(short, long, default_value = "/etc/bridgehead/bridgehead.toml")]
        config: PathBuf,
        /// Show every tunnel's and neighbor's effective settings, where each came from (cloud
        /// preset, file line, default) and why, the tunnels down by design, and warnings.
        #[arg(long)]
        explain: bool,
        /// With --explain: print JSON.
        #[arg(long, requires = "explain")]
        json: bool,
    },
    /// Show tunnels, SAs and counters of the running daemon.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Control socket path.
        #[arg(long, default_value = control::DEFAULT_PATH)]
        control: PathBuf,
    },
    /// Re-read the running daemon's configuration file and apply what changed.
    ///
    /// The file is checked first, as `bridgehead check` does; with any error nothing changes
    /// and every error is printed (exit status 2). Otherwise only what changed is touched:
    /// tunnels added, removed or re-created, one tunnel's IKE SA renegotiated when its PSK,
    /// proposals, lifetimes, DPD, initiate or peer changed, routes, BGP neighbors added,
    /// removed (Cease/Peer De-configured) or reset (Cease/Other Configuration Change), export
    /// policy and advertised networks without a reset. Untouched tunnels keep their SAs and
    /// untouched BGP sessions stay up. Changes that need a restart ([dataplane], private_ip,
    /// the BGP AS, router id, table, metric, transit) are listed and not applied. Exit status 1 if a
    /// change could not be applied. SIGHUP does the same, logging the outcome.
    Reload {
        /// Control socket path.
        #[arg(long, default_value = control::DEFAULT_PATH)]
        control: PathBuf,
        /// Print the daemon's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Show the BGP neighbors: AS, state, uptime, prefixes and messages each way, last error.
    Bgp {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Control socket path.
        #[arg(long, default_value = control::DEFAULT_PATH)]
        control: PathBuf,
    },
    /// Show the BGP routes per prefix: paths learned, best (ECMP), in the kernel through which
    /// devices; and what is advertised to each neighbor.
    Routes {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Most prefixes shown (and advertised prefixes per neighbor), 1 to 10000; the rest
        /// are counted.
        #[arg(
            long,
            default_value_t = bridgehead::bgp::routes_view::DEFAULT_LIMIT as u16,
            value_parser = clap::value_parser!(u16)
                .range(1..=bridgehead::bgp::routes_view::MAX_LIMIT as i64)
        )]
        limit: u16,
        /// Control socket path.
        #[arg(long, default_value = control::DEFAULT_PATH)]
        control: PathBuf,
    },
    /// Build the three clouds (AWS, Azure, GCP gateways played by bridgehead) and the appliance
    /// in network namespaces, show its tunnels, BGP peers and routes, ping across, clean up.
    Lab {
        #[command(subcommand)]
        kind: Option<LabKind>,
    },
    /// Write a configuration from a cloud CLI's description of its VPN gateway.
    Import {
        /// The cloud.
        cloud: bridgehead::cloud::Cloud,
        /// aws: the CustomerGatewayConfiguration XML; azure: `az network vnet-gateway show`
        /// JSON; gcp: `gcloud compute vpn-tunnels|routers|vpn-gateways describe --format=json`.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The configuration to write (keys go to <stem>.<tunnel>.psk beside it, mode 0600).
        #[arg(short, long, default_value = "bridgehead.toml")]
        output: PathBuf,
        /// Our public address, when the input does not carry it (Azure).
        #[arg(long)]
        public_ip: Option<std::net::IpAddr>,
        /// Our ASN, when the input does not carry it (Azure).
        #[arg(long)]
        asn: Option<u32>,
    },
    /// Print the aws / az / gcloud commands that build the cloud side of this configuration.
    Plan {
        /// The cloud.
        cloud: bridgehead::cloud::Cloud,
        /// Configuration file.
        #[arg(short, long, default_value = "/etc/bridgehead/bridgehead.toml")]
        config: PathBuf,
        /// Tunnels to plan (default: those named after the cloud, e.g. aws0, aws1).
        #[arg(long = "tunnel")]
        tunnels: Vec<String>,
    },
}

#[derive(Subcommand)]
enum LabKind {
    /// The three-cloud lab (what `bridgehead lab` runs).
    Clouds,
    /// Two sites with a manual-key tunnel: pings over IPv4 and IPv6, iperf3 each way.
    TwoSite {
        /// ESP suite (e.g. aes256gcm16, chacha20poly1305, aes128-sha256).
        #[arg(long, default_value = "aes256gcm16")]
        suite: String,
        /// Use extended sequence numbers.
        #[arg(long)]
        esn: bool,
        /// Workers per gateway.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Seconds of iperf3 each way (0 to skip).
        #[arg(long, default_value_t = 5)]
        iperf: u32,
        /// Carry the tunnel in raw ESP (IP protocol 50) instead of ESP in UDP.
        #[arg(long)]
        raw_esp: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    // Under systemd the journal stamps every line itself: one line per event, no clock.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        logs.without_time().init();
    } else {
        logs.init();
    }
    if let Err(e) = run(cli) {
        eprintln!("bridgehead: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Daemon {
            config,
            control,
            metrics,
        } => daemon::run(&config, &control, metrics),
        Command::Check {
            config,
            explain,
            json,
        } => match bh_config::load(&config) {
            Ok(c) if explain => {
                let v = bridgehead::explain::explain(&c);
                if json {
                    println!("{v}");
                } else {
                    print!("{}", bridgehead::explain::render(&v));
                }
                Ok(())
            }
            Ok(c) => {
                println!("{}: OK ({} tunnel(s))", config.display(), c.tunnels.len());
                Ok(())
            }
            Err(e) => {
                eprint!("{e}");
                std::process::exit(2);
            }
        },
        Command::Status { json, control } => {
            let text = control::request(&control, "status")?;
            if json {
                println!("{text}");
            } else {
                let v: serde_json::Value = serde_json::from_str(&text)?;
                print!("{}", status::render(&v));
            }
            Ok(())
        }
        Command::Reload { control, json } => reload(&control, json),
        Command::Bgp { json, control } => {
            show(&control, "bgp", json, bridgehead::views::render_bgp)
        }
        Command::Routes {
            json,
            control,
            limit,
        } => show(
            &control,
            &format!("routes {limit}"),
            json,
            bridgehead::views::render_routes,
        ),
        Command::Lab { kind } => match kind.unwrap_or(LabKind::Clouds) {
            LabKind::Clouds => lab::clouds::run_clouds(lab::clouds::CloudLabOptions::new(
                &format!("bhc{}", std::process::id()),
            )?),
            LabKind::TwoSite {
                suite,
                esn,
                workers,
                iperf,
                raw_esp,
            } => {
                let mut opts = lab::LabOptions::new(&format!("bhl{}", std::process::id()))?;
                opts.suite = bh_crypto::EspSuite::from_name(&suite).ok_or_else(|| {
                    let names: Vec<_> = bh_crypto::esp::SUITE_NAMES
                        .iter()
                        .map(|(n, _)| *n)
                        .collect();
                    anyhow::anyhow!(
                        "unknown suite {suite:?}; expected one of {}",
                        names.join(", ")
                    )
                })?;
                opts.esn = esn;
                opts.workers = workers.max(1);
                opts.raw_esp = raw_esp;
                lab::run_lab(opts, iperf)
            }
        },
        Command::Import {
            cloud,
            files,
            output,
            public_ip,
            asn,
        } => bridgehead::cloud::run_import(cloud, &files, &output, public_ip, asn),
        Command::Plan {
            cloud,
            config,
            tunnels,
        } => bridgehead::cloud::run_plan(cloud, &config, tunnels),
    }
}

/// `bridgehead reload`: asks the daemon to reload, prints what changed, and exits 2 on
/// configuration errors (nothing changed), 1 if a change failed.
fn reload(control: &std::path::Path, json: bool) -> Result<()> {
    let text =
        control::request_with_timeout(control, "reload", std::time::Duration::from_secs(120))?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        anyhow::bail!("the daemon answered: {e}");
    }
    let lines = |key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l.as_str().map(str::to_owned))
            .collect()
    };
    let (applied, restart, errors) = (lines("applied"), lines("needs_restart"), lines("errors"));
    if json {
        println!("{text}");
    } else {
        if applied.is_empty() && errors.is_empty() {
            println!("nothing to apply");
        }
        for l in &applied {
            println!("{l}");
        }
        for l in &restart {
            println!("not applied: {l}");
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    let invalid = v["invalid"].as_bool().unwrap_or(false);
    if invalid {
        eprintln!("configuration not reloaded; the daemon keeps running the old one:");
    }
    for e in &errors {
        eprintln!("{e}");
    }
    std::process::exit(if invalid { 2 } else { 1 });
}

/// Sends `req` on the control socket and prints the reply as JSON or through `render`.
fn show(
    control: &std::path::Path,
    req: &str,
    json: bool,
    render: fn(&serde_json::Value) -> String,
) -> Result<()> {
    let text = control::request(control, req)?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        anyhow::bail!("the daemon answered: {e}");
    }
    if json {
        println!("{text}");
    } else {
        print!("{}", render(&v));
    }
    Ok(())
}
