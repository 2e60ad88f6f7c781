//! A real OpenStack Swift for the tests of our Swift backend, from
//! ../shared/tools (Swift's installer, the all-in-one peer) and
//! `tests/swift/` (a three-object-server cluster).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// ../shared/tools (or $SHARED_TOOLS): Swift's installer and peer scripts.
pub fn tools() -> PathBuf {
    let dir = std::env::var_os("SHARED_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/tools"));
    assert!(
        dir.join("swift-peer-up.sh").exists(),
        "no swift-peer-up.sh in {} (set SHARED_TOOLS)",
        dir.display()
    );
    dir
}

fn cluster_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("swift")
        .join(name)
}

/// A real Swift with three object servers and three replicas
/// (`tests/swift/swift-cluster-up.sh`); stopped on drop.
pub struct SwiftCluster {
    home: tempfile::TempDir,
    /// `http://127.0.0.1:PORT` of its proxy.
    pub proxy: String,
    /// `127.0.0.1:PORT` of object servers 1, 2 and 3.
    pub object_servers: Vec<String>,
}

impl SwiftCluster {
    pub fn start() -> SwiftCluster {
        let home = tempfile::tempdir().expect("tempdir");
        let out = Command::new(cluster_script("swift-cluster-up.sh"))
            .env("SWIFT_CLUSTER_HOME", home.path())
            .env("SHARED_TOOLS", tools())
            .output()
            .expect("run swift-cluster-up.sh");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "swift-cluster-up.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let proxy = stdout
            .lines()
            .find_map(|l| l.strip_prefix("PROXY="))
            .expect("PROXY= line")
            .trim()
            .to_string();
        let object_servers = (1..=3)
            .map(|n| {
                stdout
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("OBJECT_SERVER_{n}=")))
                    .and_then(|l| l.split_whitespace().next())
                    .expect("OBJECT_SERVER_n= line")
                    .to_string()
            })
            .collect();
        SwiftCluster {
            home,
            proxy,
            object_servers,
        }
    }

    /// Runs `script` (`swift-cluster-down.sh` or `swift-cluster-up.sh`)
    /// for object server `n` (1..3) alone.
    pub fn object_server(&self, script: &str, n: u8) {
        let out = Command::new(cluster_script(script))
            .args(["--object-server", &n.to_string()])
            .env("SWIFT_CLUSTER_HOME", self.home.path())
            .env("SHARED_TOOLS", tools())
            .output()
            .expect("run the cluster script");
        assert!(
            out.status.success(),
            "{script} --object-server {n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for SwiftCluster {
    fn drop(&mut self) {
        let _ = Command::new(cluster_script("swift-cluster-down.sh"))
            .env("SWIFT_CLUSTER_HOME", self.home.path())
            .stderr(Stdio::null())
            .status();
    }
}
