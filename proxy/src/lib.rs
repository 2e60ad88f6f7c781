//! The zerocloud proxy: Swift v1 API with TempAuth, ring placement over storage
//! nodes. [`start`] serves it; `server.rs` is the router.
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod cors;
pub mod dlo;
pub mod error;
pub mod metrics;
pub mod mime;
pub mod ring;
pub mod server;
pub mod storage;
pub mod swift;

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::ProxyConfig;
use crate::metrics::Metrics;
use crate::ring::Ring;
use crate::server::Proxy;
use crate::storage::RingStorage;
use crate::swift::SwiftApi;

/// Serves the Swift API on `listener` over the storage nodes of `cfg.ring`,
/// until the returned server is stopped.
pub fn start(cfg: ProxyConfig, listener: TcpListener) -> anyhow::Result<wire::serve::Server> {
    let ring = Ring::new(
        cfg.ring.object_servers.clone(),
        cfg.ring.part_power,
        cfg.ring.hash_suffix.clone(),
    )?;
    let api = SwiftApi::new(cfg, Arc::new(RingStorage::new(ring)))?;
    let proxy = Arc::new(Proxy {
        api,
        metrics: Metrics::default(),
    });
    let opts = wire::serve::Options {
        title_case_headers: true,
    };
    Ok(wire::serve::spawn(listener, opts, move |req| {
        proxy.clone().handle(req)
    })?)
}
