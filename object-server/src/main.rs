//! `object-server`: one storage node serving the proxy over the internal API.

use std::path::PathBuf;

use clap::Parser;
use object_server::ObjectServerConfig;

#[derive(Parser)]
#[command(
    version,
    about = "A zerocloud storage node: objects and account/container DBs on local disk.",
    after_help = "Example:\n  object-server --bind 127.0.0.1:6200 --data-dir /srv/node1"
)]
struct Args {
    /// TOML config file (bind, data_dir, fsync, expirer_interval, updater_interval, and the
    /// exec agent's [exec] section; docs/config.md has every key).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on (overrides the config); port 0 picks a free one.
    #[arg(long)]
    bind: Option<String>,
    /// Data directory (overrides the config).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Run as an exec agent beside this OpenStack Swift object server
    /// (ip:port): no storage of its own; sessions read their replicas from
    /// it (overrides the config's [exec] swift_object_server;
    /// docs/swift-backend.md).
    #[arg(long)]
    swift_object_server: Option<String>,
}

fn main() -> std::process::ExitCode {
    // Hidden: a worker process of the exec agent's pool (`sandbox::worker`);
    // this binary is its own worker program.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--worker") {
        return sandbox::worker::main(&args[1..]);
    }
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(serve()));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("object-server: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut cfg: ObjectServerConfig = match &args.config {
        Some(p) => toml::from_str(&std::fs::read_to_string(p)?)?,
        None => ObjectServerConfig::default(),
    };
    if let Some(b) = args.bind {
        cfg.bind = b;
    }
    if let Some(d) = args.data_dir {
        cfg.data_dir = d;
    }
    if let Some(s) = args.swift_object_server {
        cfg.exec.swift_object_server = Some(s);
    }
    let server = object_server::start(cfg).await?;
    // Tests and scripts read this line to learn the port.
    println!("object-server listening on {}", server.addr());
    tokio::signal::ctrl_c().await?;
    eprintln!(
        "object-server: shutting down: finishing open requests (at most {} s)",
        wire::serve::DRAIN.as_secs()
    );
    server.stop().await;
    Ok(())
}
