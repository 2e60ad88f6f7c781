//! Storage node configuration: a TOML file whose every key has a default that
//! works for the embedded run.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectServerConfig {
    /// Address of the internal API. Port 0 picks a free port.
    pub bind: String,
    /// Where objects, databases and pending updates live.
    pub data_dir: PathBuf,
    /// fsync object files, their directories and SQLite commits before acking a
    /// write. Turn off only for throwaway data (tests on tmpfs, benchmarks).
    pub fsync: bool,
    /// Seconds between passes of the expirer, which deletes objects whose
    /// X-Delete-At has passed (they already read as 404 before that).
    pub expirer_interval: f64,
    /// Seconds between retries of container/account updates that failed.
    pub updater_interval: f64,
}

impl Default for ObjectServerConfig {
    fn default() -> Self {
        ObjectServerConfig {
            bind: "127.0.0.1:6200".into(),
            data_dir: PathBuf::from("./zerocloud-data"),
            fsync: true,
            expirer_interval: 5.0,
            updater_interval: 5.0,
        }
    }
}
