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
    /// The exec agent: sessions of jobs run next to this node's data.
    pub exec: ExecConfig,
}

impl Default for ObjectServerConfig {
    fn default() -> Self {
        ObjectServerConfig {
            bind: "127.0.0.1:6200".into(),
            data_dir: PathBuf::from("./zerocloud-data"),
            fsync: true,
            expirer_interval: 5.0,
            updater_interval: 5.0,
            exec: ExecConfig::default(),
        }
    }
}

/// The exec agent's `[exec]` section: its worker pool, its system images
/// and the limits every session gets (spec/zerocloud.md §5.2).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecConfig {
    /// Run sessions at all. Off: every exec request gets 503.
    pub enabled: bool,
    /// Sessions running at once: worker processes (0: one per core).
    pub workers: usize,
    /// Sessions that may wait for a worker; beyond that a session is
    /// refused with 503 `Slot not available`.
    pub queue: usize,
    /// Sessions of connected jobs (`connect`) running at once, in worker
    /// processes of their own (the `cluster` pool): they block on each
    /// other's streams more than they compute, and all sessions of a job
    /// must run together, so they neither wait in the queue nor take the
    /// default pool's workers. 32: a one-machine `zerocloud up` runs every
    /// node of a job itself, so this is the largest connected job it takes
    /// (a MapReduce over 31 objects). Only `cluster_prestart` of their
    /// worker processes start with the agent; the others start at their
    /// first session and then stay. Measured on `zerocloud up`: 18.8 MB
    /// PSS idle (6 workers); a 25-node Python MapReduce took 0.28 s the
    /// first time (21 workers started), 0.07 s by the third, and left
    /// 250 MB PSS (~10 MB per worker that ran Python).
    pub cluster_workers: usize,
    /// Workers for connected jobs started with the agent (at most
    /// `cluster_workers`).
    pub cluster_prestart: usize,
    /// The address connected sessions' listeners bind on: where the other
    /// storage nodes reach this one (loopback for a one-machine cluster).
    pub network_host: String,
    /// Seconds a reserved connected session waits to be started before its
    /// slot and listeners are given back.
    pub reservation_ttl: f64,
    /// System images (the Python image). `$ZEROCLOUD_IMAGES` overrides it;
    /// default `<data_dir>/images`.
    pub images_dir: Option<PathBuf>,
    /// Install missing system images in the background at start (a
    /// download of ~100 MB and a few minutes of compiling the first time);
    /// sessions that need one meanwhile get 503 saying how far it is.
    pub install_images: bool,
    /// The program started as `<program> --worker` for each worker
    /// process. Default: this executable (`zerocloud` and `object-server`
    /// both serve as workers).
    pub worker_program: Option<PathBuf>,
    /// Isolate workers (user, mount and network namespaces, seccomp).
    pub isolate: bool,
    /// The longest session timeout a request may ask for, in seconds.
    pub max_timeout: u64,
    /// Memory of a session (`Memory=`), bytes.
    pub memory: u64,
    /// Reads and writes per channel (`zerovm_maxiops`).
    pub max_iops: u64,
    /// Bytes a channel may read (`zerovm_maxinput`); also the largest input
    /// a request may bring.
    pub max_input: u64,
    /// Bytes a channel may write (`zerovm_maxoutput`).
    pub max_output: u64,
    /// Largest executable (wasm module) a session may bring, bytes.
    pub max_program: u64,
    /// `ip:port` of the OpenStack Swift object server this agent runs
    /// beside (docs/swift-backend.md). Set, this server is an exec agent
    /// only: it serves no storage API, reads the replicas a session is
    /// attached to from that object server, and sends attached outputs
    /// back to the proxy, which stores them through the Swift proxy.
    pub swift_object_server: Option<String>,
}

impl Default for ExecConfig {
    fn default() -> Self {
        ExecConfig {
            enabled: true,
            workers: 0,
            queue: 64,
            cluster_workers: 32,
            cluster_prestart: 4,
            network_host: "127.0.0.1".into(),
            reservation_ttl: 30.0,
            images_dir: None,
            install_images: false,
            worker_program: None,
            isolate: true,
            max_timeout: 3600,
            memory: 1 << 30,
            max_iops: 1 << 30,
            max_input: 1 << 30,
            max_output: 1 << 30,
            max_program: 256 << 20,
            swift_object_server: None,
        }
    }
}

impl ExecConfig {
    /// The images directory: `$ZEROCLOUD_IMAGES`, else `images_dir`, else
    /// `<data_dir>/images`, made absolute.
    pub fn images_dir(&self, data_dir: &std::path::Path) -> PathBuf {
        let dir = sandbox::image::images_dir_from_env()
            .or_else(|| self.images_dir.clone())
            .unwrap_or_else(|| data_dir.join("images"));
        std::path::absolute(&dir).unwrap_or(dir)
    }

    /// Worker processes: `workers`, or one per core.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_object_server_config_parses() {
        let doc = include_str!("../../docs/config.md");
        let section = doc
            .find("## `object-server`")
            .expect("the object-server section");
        let start =
            section + doc[section..].find("```toml\n").expect("a toml block") + "```toml\n".len();
        let end = start + doc[start..].find("```").expect("its end");
        // Unknown keys are refused (`deny_unknown_fields`): the document
        // names only real keys, with values of the right type.
        let cfg: ObjectServerConfig =
            toml::from_str(&doc[start..end]).expect("docs/config.md parses");
        assert_eq!(cfg.exec.queue, ExecConfig::default().queue);
        assert!(cfg.exec.enabled);
    }
}
