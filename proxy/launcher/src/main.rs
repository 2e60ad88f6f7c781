//! `zerocloud`: the proxy, alone or with an embedded storage node, and the
//! system-image CLI. `up.rs` starts the servers, `images.rs` handles images
//! (both in this crate's library, which `zvapp` shares).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use zerocloud::images::{self, ImageCmd};
use zerocloud::{absolute, load, up};

#[derive(Parser)]
#[command(
    version,
    about = "zerocloud: an OpenStack-Swift-compatible object store.",
    after_help = "Examples:\n  zerocloud up                                  # everything on 127.0.0.1:8080\n  zerocloud up --bind 127.0.0.1:9000 --data-dir /srv/zc\n  zerocloud proxy --object-server 127.0.0.1:6200 --object-server 127.0.0.1:6201\n  zerocloud image install python                # the Python image (into $ZEROCLOUD_IMAGES, else ./zerocloud-data/images)"
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

/// In front of an OpenStack Swift (docs/swift-backend.md).
#[derive(clap::Args)]
struct SwiftArgs {
    /// Stand in front of this OpenStack Swift proxy (http://host:port):
    /// plain Swift requests are passed to it, jobs run on exec agents
    /// (overrides the config's [swift] proxy).
    #[arg(long, value_name = "URL")]
    swift_proxy: Option<String>,
    /// With --swift-proxy: an exec agent and the Swift object server it
    /// runs beside, AGENT=OBJECT_SERVER (each ip:port, the object server as
    /// Swift's ring names it), or AGENT alone for one beside no object
    /// server; repeat for each (overrides the config's [[swift.agents]]).
    #[arg(
        long = "swift-agent",
        value_name = "AGENT[=OBJECT_SERVER]",
        requires = "swift_proxy",
        value_parser = proxy::swift_cluster::parse_agent
    )]
    swift_agents: Vec<proxy::swift_cluster::AgentBeside>,
    /// With --swift-proxy: the Swift user (account:user, a reseller admin)
    /// whose rights the setuid rule lends an app, so that anyone can run it
    /// with its owner's rights where the owner allows (overrides the
    /// config's [swift.setuid] user; without one, the rule is not honoured).
    #[arg(long, value_name = "ACCOUNT:USER", requires_all = ["swift_proxy", "swift_setuid_key"])]
    swift_setuid_user: Option<String>,
    /// Its key, for Swift's v1 auth (better kept in the config's
    /// [swift.setuid] key: a command line is visible to every local user).
    #[arg(long, value_name = "KEY", requires = "swift_setuid_user")]
    swift_setuid_key: Option<String>,
}

impl SwiftArgs {
    /// The flags over the config's `[swift]`.
    fn apply(self, cfg: &mut proxy::config::ProxyConfig) {
        if let Some(url) = self.swift_proxy {
            let (agents, setuid) = match cfg.swift.take() {
                Some(s) => (s.agents, s.setuid),
                None => (Vec::new(), None),
            };
            let agents = if self.swift_agents.is_empty() {
                agents
            } else {
                self.swift_agents
            };
            let setuid = match (self.swift_setuid_user, self.swift_setuid_key) {
                (Some(user), Some(key)) => Some(proxy::swift_setuid::SetuidUser {
                    user,
                    key,
                    auth_url: setuid.and_then(|s| s.auth_url),
                }),
                _ => setuid,
            };
            cfg.swift = Some(proxy::config::SwiftConfig {
                proxy: url,
                agents,
                setuid,
            });
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Proxy and one object server in this process; with --swift-proxy,
    /// the proxy in front of that Swift and one exec agent, beside no
    /// object server (every input streamed to it).
    Up {
        #[command(flatten)]
        common: Common,
        /// Where objects and databases live (overrides the config).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Do not fsync writes (only for throwaway data).
        #[arg(long)]
        no_fsync: bool,
        /// Do not install missing system images in the background.
        #[arg(long)]
        no_image_install: bool,
        #[command(flatten)]
        swift: SwiftArgs,
    },
    /// Proxy only, in front of running object servers, or of an OpenStack Swift proxy.
    Proxy {
        #[command(flatten)]
        common: Common,
        /// Internal address of an object server; repeat for each (overrides the config).
        #[arg(long = "object-server", conflicts_with = "swift_proxy")]
        object_servers: Vec<String>,
        #[command(flatten)]
        swift: SwiftArgs,
    },
    /// System images: the interpreters jobs run in (see docs/images.md).
    Image {
        #[command(subcommand)]
        cmd: ImageCmd,
    },
}

fn main() -> std::process::ExitCode {
    // Hidden: a worker process of the exec agent's pool (`sandbox::worker`):
    // this binary is its own worker program, so `zerocloud up` needs no other.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--worker") {
        return sandbox::worker::main(&args[1..]);
    }
    let cli = Cli::parse();
    // A server's log (a line per request) goes out in batches.
    let writer = match cli.cmd {
        Cmd::Image { .. } => zerocloud::log::Batched::direct(),
        _ => zerocloud::log::Batched::start(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer)
        .init();
    let result = match cli.cmd {
        // Blocking work, alone in the process: no runtime needed.
        Cmd::Image { cmd } => images::command(cmd),
        cmd => tokio::runtime::Runtime::new()
            .context("cannot start the async runtime")
            .and_then(|rt| rt.block_on(serve(cmd))),
    };
    match result {
        Ok(()) => {
            zerocloud::log::flush();
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            zerocloud::log::say(&format!("{e:#}"));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(cmd: Cmd) -> anyhow::Result<()> {
    let (mut cfg, up, data_dir_given) = match cmd {
        Cmd::Image { .. } => unreachable!("handled before the runtime starts"),
        Cmd::Up {
            swift,
            common,
            data_dir,
            no_fsync,
            no_image_install,
        } => {
            let mut cfg = load(common.config.as_deref(), common.bind.as_deref())?;
            swift.apply(&mut cfg);
            cfg.ring.object_servers.clear();
            let data_dir_given = data_dir.is_some();
            if let Some(d) = data_dir {
                cfg.data_dir = d;
            }
            if no_fsync {
                cfg.fsync = false;
            }
            if no_image_install {
                cfg.install_images = false;
            }
            (cfg, true, data_dir_given)
        }
        Cmd::Proxy {
            common,
            object_servers,
            swift,
        } => {
            let mut cfg = load(common.config.as_deref(), common.bind.as_deref())?;
            if !object_servers.is_empty() {
                cfg.ring.object_servers = object_servers;
                cfg.swift = None;
            }
            swift.apply(&mut cfg);
            anyhow::ensure!(
                !cfg.ring.object_servers.is_empty() || cfg.swift.is_some(),
                "zerocloud proxy needs --object-server or --swift-proxy (or ring.object_servers, or [swift] proxy, in the config)"
            );
            (cfg, false, false)
        }
    };
    // The images dir is made absolute where it is chosen (images::dir).
    cfg.data_dir = absolute(&cfg.data_dir)?;
    let users = cfg.users.clone();
    let swift = cfg.swift.as_ref().map(|s| {
        let setuid = s.setuid.as_ref().map(|u| u.user.clone());
        (s.proxy.clone(), setuid)
    });
    // Jobs run beside the embedded object server, whose agent installs
    // missing images in the background (`install_images`).
    let images_dir = up.then(|| images::store(&cfg, data_dir_given).dir().to_path_buf());
    let running = up::start(cfg, images_dir).await?;
    let addr = running.addr();
    // Tests and scripts read these lines to learn the port.
    println!("zerocloud listening on http://{addr}");
    println!("auth URL: http://{addr}/auth/v1.0");
    match swift {
        Some((url, setuid)) => {
            println!("swift proxy: {url} (its auth and users)");
            match setuid {
                Some(user) => println!("setuid rule: apps lend rights as {user}"),
                None => println!("setuid rule: off (no --swift-setuid-user)"),
            }
            let agents: Vec<String> = running
                .swift_agents
                .iter()
                .map(|a| match &a.object_server {
                    Some(o) => format!("{} beside {o}", a.agent),
                    None => format!("{} (inputs streamed to it)", a.agent),
                })
                .collect();
            match agents.is_empty() {
                true => println!("exec agents: none (jobs get 501)"),
                false => println!("exec agents: {}", agents.join(", ")),
            }
        }
        None => {
            println!("object servers: {}", running.object_servers.join(", "));
            println!("users (X-Auth-User / X-Auth-Key, groups):");
            for u in &users {
                println!("  {:<16} {:<10} {}", u.user, u.key, u.groups.join(","));
            }
        }
    }
    up::stop_on_signal(running).await
}
