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

/// An exec agent beside one of a Swift's object servers.
pub struct AgentBeside {
    pub server: crate::ObjectServer,
    /// The object server (`ip:port`) it runs beside.
    pub beside: String,
}

impl AgentBeside {
    /// Its `--swift-agent` value: `AGENT=OBJECT_SERVER`.
    pub fn flag(&self) -> String {
        format!("{}={}", self.server.addr, self.beside)
    }
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
    /// The proxy's flags for the setuid rule: tempauth's reseller admin
    /// of `swift-cluster-up.sh` (`admin:admin`), the user it lends.
    pub fn setuid_flags() -> Vec<String> {
        [
            "--swift-setuid-user",
            "admin:admin",
            "--swift-setuid-key",
            "admin",
        ]
        .map(String::from)
        .to_vec()
    }

    pub fn start() -> SwiftCluster {
        // The script picks free ports, which another cluster starting at
        // the same moment (tests run in parallel) may take first: a new
        // try, on new ports, after tearing the half-started one down.
        let mut attempt = 0;
        let (home, out) = loop {
            attempt += 1;
            let home = tempfile::tempdir().expect("tempdir");
            let out = Command::new(cluster_script("swift-cluster-up.sh"))
                .env("SWIFT_CLUSTER_HOME", home.path())
                .env("SHARED_TOOLS", tools())
                .output()
                .expect("run swift-cluster-up.sh");
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            if out.status.success() {
                break (home, out);
            }
            let _ = Command::new(cluster_script("swift-cluster-down.sh"))
                .env("SWIFT_CLUSTER_HOME", home.path())
                .stderr(Stdio::null())
                .status();
            assert!(
                attempt < 3 && stderr.contains("is taken by something else"),
                "swift-cluster-up.sh failed:\n{stderr}"
            );
        };
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
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

    /// The object servers (`ip:port`) holding `/a/c/o`'s primaries, in the
    /// order our placement tries them: `list_endpoints`' order (asked of
    /// the Swift proxy directly, blocking) rotated by the partition.
    pub fn primaries(&self, a: &str, c: &str, o: &str) -> Vec<String> {
        use std::io::{Read, Write};
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let host = self.proxy.trim_start_matches("http://");
        let mut conn = std::net::TcpStream::connect(host).expect("the Swift proxy");
        write!(
            conn,
            "GET /endpoints/v2/{}/{}/{} HTTP/1.0\r\nHost: {host}\r\n\r\n",
            enc(a),
            enc(c),
            enc(o)
        )
        .expect("ask list_endpoints");
        let mut answer = String::new();
        conn.read_to_string(&mut answer)
            .expect("list_endpoints' answer");
        let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        let v: serde_json::Value = serde_json::from_str(body).expect("list_endpoints JSON");
        // (server, partition) of each primary, in Swift's order; then
        // rotated by the partition, as our placement tries them.
        let primaries: Vec<(String, usize)> = v["endpoints"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|e| {
                let mut parts = e.as_str()?.strip_prefix("http://")?.split('/');
                let server = parts.next()?.to_string();
                let part = parts.nth(1)?.parse().ok()?;
                Some((server, part))
            })
            .collect();
        let n = primaries.len().max(1);
        let part = primaries.first().map_or(0, |p| p.1);
        (0..primaries.len())
            .map(|i| primaries[(part + i) % n].0.clone())
            .collect()
    }

    /// `n` exec agents (`object-server` with `node_config`, its TOML, and
    /// `[exec] swift_object_server`) beside object servers 1, 2, 3, 1, ...,
    /// their data dirs in `dir`.
    pub fn start_agents(&self, n: usize, node_config: &str, dir: &Path) -> Vec<AgentBeside> {
        (0..n)
            .map(|i| {
                let beside = self.object_servers[i % self.object_servers.len()].clone();
                let mut config: toml::Table = toml::from_str(node_config).expect("node config");
                if let toml::Value::Table(exec) = config
                    .entry("exec")
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                {
                    exec.insert(
                        "swift_object_server".into(),
                        toml::Value::String(beside.clone()),
                    );
                }
                let config = toml::to_string(&config).expect("agent config");
                let server = crate::ObjectServer::start_with(
                    &dir.join(format!("agent{i}")),
                    "127.0.0.1:0",
                    &config,
                );
                AgentBeside { server, beside }
            })
            .collect()
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
