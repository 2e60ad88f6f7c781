//! The all-in-one launcher: `zerocloud` (`up`, `proxy`, `image`; src/main.rs)
//! and `zvapp` (a job run locally on a private embedded store; src/bin/zvapp.rs).
//! `up.rs` starts and stops the servers, `images.rs` handles system images,
//! `zvapp.rs` runs a job locally.

pub mod images;
pub mod log;
pub mod up;
pub mod zvapp;

use std::path::{Path, PathBuf};

use anyhow::Context;
use proxy::config::ProxyConfig;

/// The config file named by `--config` (else the defaults), with `--bind` applied.
pub fn load(config: Option<&Path>, bind: Option<&str>) -> anyhow::Result<ProxyConfig> {
    let mut cfg: ProxyConfig = match config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| {
                format!("cannot read the config file {} (--config)", p.display())
            })?;
            toml::from_str(&text)
                .with_context(|| format!("the config file {} (--config)", p.display()))?
        }
        None => ProxyConfig::default(),
    };
    if let Some(b) = bind {
        cfg.bind = b.to_string();
    }
    Ok(cfg)
}

/// `p` made absolute against the current directory, once, at start-up: workers
/// and the storage node may change directory (or lose it to a namespace).
pub fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("cannot resolve the path {}", p.display()))
}
