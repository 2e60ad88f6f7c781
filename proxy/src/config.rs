//! Proxy configuration: one TOML file, every key with a default that works for
//! `zerocloud up`. See `docs/config.md` for the annotated file.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Public address of the Swift API.
    pub bind: String,
    /// Data directory of the embedded object server (`zerocloud up`).
    pub data_dir: PathBuf,
    /// Seconds a TempAuth token stays valid.
    pub token_life: u64,
    /// fsync every write before acking it (embedded object server).
    pub fsync: bool,
    /// Seconds container/account info (existence, ACLs) is cached by the proxy.
    /// Changes made through this proxy invalidate it at once.
    pub info_cache_ttl: f64,
    /// TempAuth users; the default list is Swift's sample users.
    pub users: Vec<UserConfig>,
    pub ring: RingConfig,
    /// Where system images (the Python interpreter) live; `$ZEROCLOUD_IMAGES`
    /// overrides it, the default is `<data_dir>/images`.
    pub images_dir: Option<PathBuf>,
    /// `zerocloud up` installs missing system images in the background at
    /// start (download, verify, compile; a few minutes the first time).
    pub install_images: bool,
    /// Jobs (`X-Zerovm-Execute`): ZeroCloud's proxy options (spec §5.1).
    pub zerocloud: JobConfig,
    /// The embedded object server's exec agent (`zerocloud up`): its
    /// `[exec]` section, see the object server's keys below.
    pub exec: Option<toml::Table>,
    /// `[swift]`: stand in front of an OpenStack Swift cluster instead of
    /// our own storage nodes (docs/swift-backend.md).
    pub swift: Option<SwiftConfig>,
}

/// `[swift]`: the OpenStack Swift proxy plain Swift requests are passed to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwiftConfig {
    /// `http://host:port` of the Swift proxy server.
    pub proxy: String,
    /// The exec agents, each beside one of Swift's object servers
    /// (`object-server` with `[exec] swift_object_server`). None: jobs are
    /// refused (501), plain requests pass through.
    #[serde(default)]
    pub agents: Vec<crate::swift_cluster::AgentBeside>,
    /// `[swift.setuid]`: the user whose rights the setuid rule lends an
    /// app. None: the rule is not honoured (a job has only its caller's
    /// rights).
    #[serde(default)]
    pub setuid: Option<crate::swift_setuid::SetuidUser>,
}

/// `[zerocloud]`: how the proxy runs jobs. Names follow ZeroCloud's
/// options without their `zerovm_` prefix.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobConfig {
    /// Session timeout in seconds (`zerovm_timeout`); sent to every node
    /// as `X-Zerovm-Timeout` (a client's value is replaced).
    pub timeout: u64,
    /// Largest job description (JSON body, `.zvm` template) in bytes
    /// (`zerovm_maxconfig`); a zapp's system map is looked for in its
    /// first `max(2 * maxconfig, 128 KiB)` bytes.
    pub maxconfig: usize,
    /// Content type of stored outputs whose device names none
    /// (`zerovm_default_content_type`).
    pub default_content_type: String,
    /// Seconds a job upload (script, zapp, JSON) may take in all
    /// (`max_upload_time`).
    pub max_upload_time: u64,
    /// Seconds between two pieces of a job upload before it is given up
    /// (`client_timeout`).
    pub client_timeout: u64,
    /// Most sessions one job may have (ZeroCloud had no limit).
    pub max_sessions: u32,
    /// Job responses carry the URL container's CORS headers for a request
    /// with `Origin` (`zerovm_use_cors`; off by default, as in ZeroCloud).
    pub use_cors: bool,
    /// Seconds a chain of jobs may take in all (`chain_timeout`).
    pub chain_timeout: u64,
    /// Most jobs in one chain (ZeroCloud had no limit but time).
    pub chain_depth: u32,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            timeout: 10,
            maxconfig: 65_536,
            default_content_type: "application/octet-stream".into(),
            max_upload_time: 86_400,
            client_timeout: 60,
            max_sessions: 10_000,
            use_cors: false,
            chain_timeout: 20,
            chain_depth: 16,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// `account:user`
    pub user: String,
    pub key: String,
    /// `.admin`, `.reseller_admin`, or any group name (e.g. `service`).
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RingConfig {
    /// Internal addresses (`host:port`) of the object servers. Empty: the embedded
    /// object server started by `zerocloud up`.
    pub object_servers: Vec<String>,
    /// 2^part_power partitions, spread over the servers.
    pub part_power: u32,
    /// Secret mixed into every hash, as Swift's `swift_hash_path_suffix`.
    pub hash_suffix: String,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            object_servers: vec![],
            part_power: 10,
            hash_suffix: "zerocloud".into(),
        }
    }
}

fn user(u: &str, k: &str, groups: &[&str]) -> UserConfig {
    UserConfig {
        user: u.into(),
        key: k.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            bind: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./zerocloud-data"),
            token_life: 86_400,
            fsync: true,
            info_cache_ttl: 10.0,
            users: vec![
                user("admin:admin", "admin", &[".reseller_admin"]),
                user("test:tester", "testing", &[".admin"]),
                user("test2:tester2", "testing2", &[".admin"]),
                user("test:tester3", "testing3", &[]),
                user("test5:tester5", "testing5", &["service"]),
            ],
            ring: RingConfig::default(),
            images_dir: None,
            install_images: true,
            zerocloud: JobConfig::default(),
            exec: None,
            swift: None,
        }
    }
}

impl ProxyConfig {
    /// The images directory this configuration names (the launcher lets
    /// `$ZEROCLOUD_IMAGES` override it): `images_dir`, else `<data_dir>/images`.
    pub fn configured_images_dir(&self) -> PathBuf {
        self.images_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("images"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_config_parses() {
        let doc = include_str!("../../docs/config.md");
        let start = doc.find("```toml\n").expect("a toml block") + "```toml\n".len();
        let end = start + doc[start..].find("```").expect("its end");
        // Unknown keys are refused (`deny_unknown_fields`): the document
        // names only real keys, with values of the right type.
        let cfg: ProxyConfig = toml::from_str(&doc[start..end]).expect("docs/config.md parses");
        assert_eq!(cfg.bind, "127.0.0.1:8080");
    }
}
