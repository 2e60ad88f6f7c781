//! Starting a proxy: with the embedded object server (`zerocloud up`) or in front
//! of object servers listed in the ring config (`zerocloud proxy`).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::ProxyConfig;
use crate::metrics::Metrics;
use crate::ring::Ring;
use crate::server::{self, Proxy};
use crate::storage::RingStorage;
use crate::swift::SwiftApi;

pub struct Running {
    pub addr: SocketAddr,
    pub object_servers: Vec<String>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Stops accepting, waits for in-flight requests (at most 10 s).
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.task.await?
    }
}

pub async fn start(mut cfg: ProxyConfig) -> anyhow::Result<Running> {
    if cfg.ring.object_servers.is_empty() {
        let ocfg = object_server::ObjectServerConfig {
            bind: "127.0.0.1:0".into(),
            data_dir: cfg.data_dir.clone(),
            fsync: cfg.fsync,
            ..Default::default()
        };
        let (_node, addr) = object_server::serve(ocfg).await?;
        cfg.ring.object_servers = vec![addr.to_string()];
    }
    let ring = Ring::new(
        cfg.ring.object_servers.clone(),
        cfg.ring.part_power,
        cfg.ring.hash_suffix.clone(),
    )?;
    let object_servers = cfg.ring.object_servers.clone();
    let listener = TcpListener::bind(&cfg.bind).await?;
    let addr = listener.local_addr()?;
    let api = SwiftApi::new(cfg, Arc::new(RingStorage::new(ring)))?;
    let proxy = Arc::new(Proxy {
        api,
        metrics: Metrics::default(),
    });
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(server::serve(listener, proxy, rx));
    Ok(Running {
        addr,
        object_servers,
        shutdown: tx,
        task,
    })
}
