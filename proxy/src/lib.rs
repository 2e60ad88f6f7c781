//! The zerocloud proxy: Swift v1 API with TempAuth, ring placement over storage
//! nodes, and jobs run next to the data. [`start`] serves it; `router.rs` is the
//! request pipeline and the API table, whose handlers live in `swift/` (one
//! module per resource); requests with `X-Zerovm-Execute` go to `job/`.
#![forbid(unsafe_code)]

pub mod auth;
pub mod backend;
pub mod config;
pub mod context;
pub mod cors;
pub mod endpoints;
pub mod error;
pub mod job;
pub mod metrics;
pub mod mime;
pub mod ring;
pub mod router;
pub mod storage;
pub mod swift;
pub mod swift_cluster;
pub mod swift_setuid;

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::backend::SwiftUpstream;
use crate::config::ProxyConfig;
use crate::ring::Ring;
use crate::router::Proxy;
use crate::storage::RingStorage;
use crate::swift::SwiftApi;

/// Serves the Swift API on `listener` over the storage nodes of `cfg.ring`
/// (or in front of the Swift proxy of `cfg.swift`), until the returned
/// server is stopped.
pub fn start(cfg: ProxyConfig, listener: TcpListener) -> anyhow::Result<wire::serve::Server> {
    let proxy = match &cfg.swift {
        Some(swift) => {
            let mut upstream = SwiftUpstream::new(&swift.proxy).map_err(anyhow::Error::msg)?;
            if !swift.agents.is_empty() {
                upstream = upstream.with_jobs(cfg.clone(), swift)?;
            }
            Proxy::with_backend(Box::new(upstream))
        }
        None => {
            let ring = Ring::new(
                cfg.ring.object_servers.clone(),
                cfg.ring.part_power,
                cfg.ring.hash_suffix.clone(),
            )?;
            Proxy::new(SwiftApi::new(cfg, Arc::new(RingStorage::new(ring)))?)
        }
    };
    let proxy = Arc::new(proxy);
    let opts = wire::serve::Options {
        title_case_headers: true,
    };
    Ok(wire::serve::spawn(listener, opts, move |req| {
        proxy.clone().handle(req)
    })?)
}
