//! Starting and stopping the servers: `zerocloud up` (the proxy and an embedded
//! storage node in this process) and `zerocloud proxy` (in front of storage
//! nodes listed in the ring config).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use object_server::config::ExecConfig;
use object_server::{ObjectServer, ObjectServerConfig};
use proxy::config::ProxyConfig;

use crate::log::say;

pub struct Running {
    proxy: wire::serve::Server,
    object_server: Option<ObjectServer>,
    pub object_servers: Vec<String>,
    /// In front of a Swift: the exec agents jobs run on.
    pub swift_agents: Vec<proxy::swift_cluster::AgentBeside>,
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        self.proxy.addr()
    }

    /// Stops accepting on both servers, then waits for open requests to
    /// finish (at most `wire::serve::DRAIN` each, run side by side).
    pub async fn stop(self) {
        let node = async {
            if let Some(o) = self.object_server {
                o.stop().await;
            }
        };
        tokio::join!(self.proxy.stop(), node);
    }
}

/// Binds the proxy first (so a busy or bad `--bind` fails before anything is
/// created on disk), then, for `up` (`images_dir` given), starts the
/// embedded storage node with its exec agent. A data dir this start created
/// is removed again if the start fails.
pub async fn start(mut cfg: ProxyConfig, images_dir: Option<PathBuf>) -> anyhow::Result<Running> {
    let listener = wire::serve::bind(&cfg.bind).await.with_context(|| {
        format!(
            "cannot listen on {:?} (--bind, or `bind` in the config)",
            cfg.bind
        )
    })?;
    let mut object_server = None;
    if let Some(images_dir) = images_dir {
        let created = !cfg.data_dir.exists();
        let mut exec: ExecConfig = match &cfg.exec {
            Some(table) => table
                .clone()
                .try_into()
                .context("the [exec] section of the config")?,
            None => ExecConfig::default(),
        };
        exec.images_dir = Some(images_dir);
        exec.install_images = cfg.install_images;
        let ocfg = ObjectServerConfig {
            bind: "127.0.0.1:0".into(),
            data_dir: cfg.data_dir.clone(),
            fsync: cfg.fsync,
            exec,
            ..Default::default()
        };
        match object_server::start(ocfg).await {
            Ok(o) => {
                cfg.ring.object_servers = vec![o.addr().to_string()];
                // In front of a Swift: its agent runs jobs, beside no
                // object server (every input streamed to it).
                if let Some(swift) = &mut cfg.swift {
                    swift.agents.push(proxy::swift_cluster::AgentBeside {
                        agent: o.addr().to_string(),
                        object_server: None,
                    });
                }
                object_server = Some(o);
            }
            Err(e) => {
                if created {
                    remove_created(&cfg.data_dir);
                }
                return Err(e.context(format!(
                    "cannot use the data dir {} (--data-dir, or `data_dir` in the config)",
                    cfg.data_dir.display()
                )));
            }
        }
    }
    let object_servers = cfg.ring.object_servers.clone();
    let swift_agents = cfg
        .swift
        .as_ref()
        .map(|s| s.agents.clone())
        .unwrap_or_default();
    let proxy = proxy::start(cfg, listener)?;
    Ok(Running {
        proxy,
        object_server,
        object_servers,
        swift_agents,
    })
}

fn remove_created(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            say(&format!("could not remove {}: {e}", dir.display()));
        }
    }
}

/// Serves until Ctrl-C or SIGTERM, then drains open requests; a second signal
/// during the drain stops at once (exit status 130).
pub async fn stop_on_signal(running: Running) -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot watch Ctrl-C")?,
        _ = term.recv() => {}
    }
    say(&format!(
        "shutting down: finishing open requests (at most {} s; Ctrl-C again stops at once)",
        wire::serve::DRAIN.as_secs()
    ));
    tokio::select! {
        _ = running.stop() => {
            say("stopped");
            Ok(())
        }
        _ = tokio::signal::ctrl_c() => stop_at_once(),
        _ = term.recv() => stop_at_once(),
    }
}

/// A second signal during the drain: exit status 130, with what the log
/// still holds written out first.
fn stop_at_once() -> ! {
    say("stopped at once");
    crate::log::flush();
    std::process::exit(130)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_closes_both_ports() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ProxyConfig {
            bind: "127.0.0.1:0".into(),
            data_dir: dir.path().join("data"),
            fsync: false,
            install_images: false,
            ..ProxyConfig::default()
        };
        let running = start(cfg, Some(dir.path().join("images"))).await.unwrap();
        let proxy = running.addr();
        let node: SocketAddr = running.object_servers[0].parse().unwrap();
        assert!(tokio::net::TcpStream::connect(proxy).await.is_ok());
        assert!(tokio::net::TcpStream::connect(node).await.is_ok());
        running.stop().await;
        assert!(tokio::net::TcpStream::connect(proxy).await.is_err());
        assert!(tokio::net::TcpStream::connect(node).await.is_err());
    }

    #[tokio::test]
    async fn a_busy_port_leaves_no_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let cfg = ProxyConfig {
            bind: busy.local_addr().unwrap().to_string(),
            data_dir: dir.path().join("data"),
            install_images: false,
            ..ProxyConfig::default()
        };
        let err = start(cfg, Some(dir.path().join("images")))
            .await
            .err()
            .expect("the port is taken");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("--bind") && msg.contains(&busy.local_addr().unwrap().to_string()),
            "{msg}"
        );
        assert!(!dir.path().join("data").exists());
    }

    #[tokio::test]
    async fn an_unusable_data_dir_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, "x").unwrap();
        let cfg = ProxyConfig {
            bind: "127.0.0.1:0".into(),
            data_dir: file.join("data"),
            install_images: false,
            ..ProxyConfig::default()
        };
        let err = start(cfg, Some(dir.path().join("images")))
            .await
            .err()
            .expect("not a directory");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("--data-dir") && msg.contains("a-file/data"),
            "{msg}"
        );
    }
}
