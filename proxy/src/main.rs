//! `zerocloud`: the proxy, alone or with an embedded object server.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use proxy::config::ProxyConfig;

#[derive(Parser)]
#[command(
    version,
    about = "zerocloud: an OpenStack-Swift-compatible object store.",
    after_help = "Examples:\n  zerocloud up                                  # everything on 127.0.0.1:8080\n  zerocloud up --bind 127.0.0.1:9000 --data-dir /srv/zc\n  zerocloud proxy --object-server 127.0.0.1:6200 --object-server 127.0.0.1:6201"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct Common {
    /// TOML config file; see docs/config.md for every key and its default.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address of the Swift API (overrides the config).
    #[arg(long)]
    bind: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Proxy and one object server in this process.
    Up {
        #[command(flatten)]
        common: Common,
        /// Where objects and databases live (overrides the config).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Do not fsync writes (only for throwaway data).
        #[arg(long)]
        no_fsync: bool,
    },
    /// Proxy only, in front of running object servers.
    Proxy {
        #[command(flatten)]
        common: Common,
        /// Internal address of an object server; repeat for each (overrides the config).
        #[arg(long = "object-server")]
        object_servers: Vec<String>,
    },
}

fn load(common: &Common) -> anyhow::Result<ProxyConfig> {
    let mut cfg: ProxyConfig = match &common.config {
        Some(p) => toml::from_str(&std::fs::read_to_string(p)?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        None => ProxyConfig::default(),
    };
    if let Some(b) = &common.bind {
        cfg.bind = b.clone();
    }
    Ok(cfg)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cfg = match Cli::parse().cmd {
        Cmd::Up {
            common,
            data_dir,
            no_fsync,
        } => {
            let mut cfg = load(&common)?;
            cfg.ring.object_servers.clear();
            if let Some(d) = data_dir {
                cfg.data_dir = d;
            }
            if no_fsync {
                cfg.fsync = false;
            }
            cfg
        }
        Cmd::Proxy {
            common,
            object_servers,
        } => {
            let mut cfg = load(&common)?;
            if !object_servers.is_empty() {
                cfg.ring.object_servers = object_servers;
            }
            anyhow::ensure!(
                !cfg.ring.object_servers.is_empty(),
                "zerocloud proxy needs --object-server (or ring.object_servers in the config)"
            );
            cfg
        }
    };
    let users = cfg.users.clone();
    let running = proxy::launcher::start(cfg).await?;
    // Tests and scripts read these lines to learn the port.
    println!("zerocloud listening on http://{}", running.addr);
    println!("auth URL: http://{}/auth/v1.0", running.addr);
    println!("object servers: {}", running.object_servers.join(", "));
    println!("users (X-Auth-User / X-Auth-Key, groups):");
    for u in &users {
        println!("  {:<16} {:<10} {}", u.user, u.key, u.groups.join(","));
    }
    tokio::signal::ctrl_c().await?;
    eprintln!("shutting down");
    running.stop().await
}
