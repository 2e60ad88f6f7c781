//! Test harness: starts the real `zerocloud` and `object-server` binaries on
//! ephemeral loopback ports, and a small HTTP client to talk to them. Every process
//! started here is killed when its handle drops.

pub mod swift;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

/// Where the binaries are: $ZC_BIN_DIR, else target/release, else target/debug.
pub fn bin(name: &str) -> PathBuf {
    if let Ok(d) = std::env::var("ZC_BIN_DIR") {
        return Path::new(&d).join(name);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target");
    for profile in ["release", "debug"] {
        let p = root.join(profile).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("binary {name} not built: run `cargo build --release --bins` (scripts/test.sh does)");
}

/// Starts a binary and waits for the line that starts with `marker`; returns the
/// child and the rest of that line. Its log (stderr) is dropped, unless
/// `ZC_TEST_SERVER_LOGS` is set (to debug a test: with `--nocapture`).
fn spawn_until(mut cmd: Command, marker: &str) -> (Child, String) {
    let logs = match std::env::var_os("ZC_TEST_SERVER_LOGS") {
        Some(_) => Stdio::inherit(),
        None => Stdio::null(),
    };
    cmd.stdout(Stdio::piped()).stderr(logs);
    wait_for_marker(cmd.spawn().expect("spawn server"), marker)
}

/// Reads `child`'s stdout until the line that starts with `marker`.
fn wait_for_marker(mut child: Child, marker: &str) -> (Child, String) {
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) => {
                if let Some(rest) = l.strip_prefix(marker) {
                    let rest = rest.trim().to_string();
                    // Keep draining stdout so the child never blocks on a full pipe.
                    std::thread::spawn(move || for _ in lines {});
                    return (child, rest);
                }
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("server exited before printing {marker:?}");
            }
        }
    }
}

/// A running `zerocloud` (embedded object server, or proxy in front of a cluster).
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    /// On Swift (`ZC_TEST_BACKEND=swift`): the Swift and the agents beside
    /// its object servers, stopped after this server.
    _swift: Option<Box<(swift::SwiftCluster, Vec<swift::AgentBeside>)>>,
}

impl Server {
    /// `zerocloud up` on a fresh data dir. With `ZC_TEST_BACKEND=swift`,
    /// `zerocloud up --swift-proxy` in front of a real Swift (three object
    /// servers, three replicas) with an exec agent beside each object
    /// server (`--swift-agent`), besides its own.
    pub fn start() -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        if on_swift() {
            let cluster = swift::SwiftCluster::start();
            let agents = cluster.start_agents(3, "", tmp.path());
            let mut args = vec!["--swift-proxy".to_string(), cluster.proxy.clone()];
            for a in &agents {
                args.extend(["--swift-agent".to_string(), a.flag()]);
            }
            args.extend(swift::SwiftCluster::setuid_flags());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut s = Server::start_at(&data, &args);
            s._tmp = Some(tmp);
            s._swift = Some(Box::new((cluster, agents)));
            return s;
        }
        let mut s = Server::start_at(&data, &[]);
        s._tmp = Some(tmp);
        s
    }

    /// `zerocloud up --data-dir <data> --no-image-install <extra...>` (the
    /// background image install has its own tests, `tests/images_up.rs`;
    /// elsewhere it would only compete for the cores).
    pub fn start_at(data: &Path, extra: &[&str]) -> Server {
        let mut cmd = Command::new(bin("zerocloud"));
        cmd.args([
            "up",
            "--bind",
            "127.0.0.1:0",
            "--no-image-install",
            "--data-dir",
        ])
        .arg(data)
        .args(extra);
        let (child, url) = spawn_until(cmd, "zerocloud listening on");
        Server {
            child,
            url,
            data_dir: data.to_path_buf(),
            _tmp: None,
            _swift: None,
        }
    }

    /// `zerocloud up --data-dir <data>` with its background image install
    /// on and `env` added to its environment; each line it prints on stderr
    /// arrives on the receiver.
    pub fn start_installing(
        data: &Path,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> (Server, std::sync::mpsc::Receiver<String>) {
        let mut cmd = Command::new(bin("zerocloud"));
        cmd.args(["up", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .envs(env.iter().copied());
        Server::start_with_log(cmd, data)
    }

    /// `zerocloud up --data-dir <data> --no-image-install` with `env` added
    /// to its environment (`RUST_LOG=debug`, say); every stderr line (the
    /// log) arrives on the receiver.
    pub fn start_logging(
        data: &Path,
        env: &[(&str, &str)],
    ) -> (Server, std::sync::mpsc::Receiver<String>) {
        let mut cmd = Command::new(bin("zerocloud"));
        cmd.args([
            "up",
            "--bind",
            "127.0.0.1:0",
            "--no-image-install",
            "--data-dir",
        ])
        .arg(data)
        .envs(env.iter().copied());
        Server::start_with_log(cmd, data)
    }

    /// Starts `cmd` (a `zerocloud up`), sending each stderr line to the receiver.
    fn start_with_log(
        mut cmd: Command,
        data: &Path,
    ) -> (Server, std::sync::mpsc::Receiver<String>) {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn server");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (child, url) = wait_for_marker(child, "zerocloud listening on");
        let server = Server {
            child,
            url,
            data_dir: data.to_path_buf(),
            _tmp: None,
            _swift: None,
        };
        (server, rx)
    }

    /// Sends `signal` (`"INT"`, `"TERM"`) to the server process.
    pub fn signal(&self, signal: &str) {
        let st = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(st.success(), "kill -{signal}");
    }

    /// `zerocloud proxy` in front of the given object servers.
    pub fn proxy(object_servers: &[String]) -> Server {
        Server::proxy_with(object_servers, None)
    }

    /// [`Server::proxy`] with a `--config` file.
    pub fn proxy_with(object_servers: &[String], config: Option<&Path>) -> Server {
        let args = object_servers
            .iter()
            .flat_map(|o| ["--object-server".to_string(), o.clone()]);
        Server::zerocloud_proxy(args, config)
    }

    /// `zerocloud proxy --bind 127.0.0.1:0 [--config FILE] ARGS...`.
    fn zerocloud_proxy(args: impl IntoIterator<Item = String>, config: Option<&Path>) -> Server {
        let mut cmd = Command::new(bin("zerocloud"));
        cmd.args(["proxy", "--bind", "127.0.0.1:0"]);
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        cmd.args(args);
        let (child, url) = spawn_until(cmd, "zerocloud listening on");
        Server {
            child,
            url,
            data_dir: PathBuf::new(),
            _tmp: None,
            _swift: None,
        }
    }

    /// `zerocloud proxy --swift-proxy <swift>`: in front of an OpenStack
    /// Swift proxy (`http://host:port`).
    pub fn swift_front(swift: &str) -> Server {
        Server::swift_front_with(swift, &[])
    }

    /// [`Server::swift_front`] with exec agents: each of `agents` is a
    /// `--swift-agent` value (`AGENT=OBJECT_SERVER`, or `AGENT`).
    pub fn swift_front_with(swift: &str, agents: &[String]) -> Server {
        Server::swift_front_config(swift, agents, &[], None)
    }

    /// [`Server::swift_front_with`], more flags (`extra`) and a `--config` file.
    pub fn swift_front_config(
        swift: &str,
        agents: &[String],
        extra: &[String],
        config: Option<&Path>,
    ) -> Server {
        let mut args = vec!["--swift-proxy".to_string(), swift.to_string()];
        for a in agents {
            args.extend(["--swift-agent".to_string(), a.clone()]);
        }
        args.extend(extra.iter().cloned());
        Server::zerocloud_proxy(args, config)
    }

    pub fn auth_url(&self) -> String {
        format!("{}/auth/v1.0", self.url)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) for the process to exit on its own.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Logs in as a default user; returns (storage URL, token).
    pub async fn login(&self, user: &str, key: &str) -> (String, String) {
        let r = Http::new()
            .req(
                Method::GET,
                &self.auth_url(),
                &[("x-auth-user", user), ("x-auth-key", key)],
                "",
            )
            .await;
        assert_eq!(r.status, 200, "login as {user}");
        (
            r.header("x-storage-url").to_string(),
            r.header("x-auth-token").to_string(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `object-server`.
pub struct ObjectServer {
    child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    pub data_dir: PathBuf,
}

impl ObjectServer {
    /// Starts one on `data` at `bind` (use "127.0.0.1:0" for any port).
    pub fn start(data: &Path, bind: &str) -> ObjectServer {
        ObjectServer::start_with(data, bind, "")
    }

    /// [`ObjectServer::start`] with `config` (TOML, may be empty) as its
    /// `--config` file, written beside `data`.
    pub fn start_with(data: &Path, bind: &str, config: &str) -> ObjectServer {
        let mut cmd = Command::new(bin("object-server"));
        cmd.args(["--bind", bind, "--data-dir"]).arg(data);
        if !config.is_empty() {
            let file = data.with_extension("toml");
            std::fs::write(&file, config).expect("object-server config");
            cmd.arg("--config").arg(file);
        }
        let (child, addr) = spawn_until(cmd, "object-server listening on");
        ObjectServer {
            child,
            addr,
            data_dir: data.to_path_buf(),
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ObjectServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A proxy in front of `n` object servers, each with its own data dir; or,
/// with `ZC_TEST_BACKEND=swift`, in front of a real OpenStack Swift (three
/// object servers, three replicas) with `n` exec agents beside its object
/// servers (docs/swift-backend.md): the same tests, the other backend.
pub struct Cluster {
    /// Our object servers, or the agents beside Swift's.
    pub nodes: Vec<ObjectServer>,
    pub proxy: Server,
    pub tmp: tempfile::TempDir,
    /// The Swift under the agents (`ZC_TEST_BACKEND=swift`).
    pub swift: Option<swift::SwiftCluster>,
}

/// Whether `Cluster`s stand in front of a real OpenStack Swift
/// (`ZC_TEST_BACKEND=swift`) rather than our own object servers.
pub fn on_swift() -> bool {
    std::env::var("ZC_TEST_BACKEND").is_ok_and(|v| v == "swift")
}

impl Cluster {
    pub fn start(n: usize) -> Cluster {
        Cluster::start_with(n, "", "")
    }

    /// `n` object servers with `node_config` and a proxy with
    /// `proxy_config` (TOML; empty for the defaults). On Swift: `n` agents
    /// with `node_config` (its `[exec]` section), beside object servers
    /// 1, 2, 3, 1, ...
    pub fn start_with(n: usize, node_config: &str, proxy_config: &str) -> Cluster {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = (!proxy_config.is_empty()).then(|| {
            let file = tmp.path().join("proxy.toml");
            std::fs::write(&file, proxy_config).expect("proxy config");
            file
        });
        if on_swift() {
            let swift = swift::SwiftCluster::start();
            let agents = swift.start_agents(n, node_config, tmp.path());
            let flags: Vec<String> = agents.iter().map(swift::AgentBeside::flag).collect();
            let proxy = Server::swift_front_config(
                &swift.proxy,
                &flags,
                &swift::SwiftCluster::setuid_flags(),
                config.as_deref(),
            );
            let nodes = agents.into_iter().map(|a| a.server).collect();
            return Cluster {
                nodes,
                proxy,
                tmp,
                swift: Some(swift),
            };
        }
        let nodes: Vec<ObjectServer> = (0..n)
            .map(|i| {
                ObjectServer::start_with(
                    &tmp.path().join(format!("node{i}")),
                    "127.0.0.1:0",
                    node_config,
                )
            })
            .collect();
        let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
        let proxy = Server::proxy_with(&addrs, config.as_deref());
        Cluster {
            nodes,
            proxy,
            tmp,
            swift: None,
        }
    }

    /// The object server whose data dir holds `/account/container/object`;
    /// on Swift, the agent where a session attached to it runs: beside the
    /// first of its primaries (in `list_endpoints`' order) that has an
    /// agent.
    pub fn holder_of(&self, account: &str, container: &str, object: &str) -> Option<&ObjectServer> {
        if let Some(swift) = &self.swift {
            let primaries = swift.primaries(account, container, object);
            return primaries.iter().find_map(|server| {
                self.nodes.iter().enumerate().find_map(|(i, n)| {
                    (swift.object_servers[i % swift.object_servers.len()] == *server).then_some(n)
                })
            });
        }
        use md5::{Digest, Md5};
        let h = hex::encode(Md5::digest(
            format!("/{account}/{container}/{object}").as_bytes(),
        ));
        self.nodes.iter().find(|n| {
            n.data_dir
                .join("objects")
                .join(&h[..3])
                .join(format!("{h}.data"))
                .is_file()
        })
    }
}

/// A response, fully read.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    /// A header's value ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// A keep-alive HTTP/1.1 client for tests.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

impl Http {
    pub fn new() -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }

    /// Sends a request; `url` may contain any (already percent-encoded) path.
    pub async fn req(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            b = b.header(
                HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                HeaderValue::from_bytes(v.as_bytes()).expect("header value"),
            );
        }
        let req = b.body(Full::new(body.into())).expect("request");
        let resp = tokio::time::timeout(Duration::from_secs(60), self.client.request(req))
            .await
            .expect("request timed out")
            .expect("request failed");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        Resp {
            status,
            headers,
            body,
        }
    }
}

/// Swift session for one user: storage URL + token, and shorthand requests.
#[derive(Clone)]
pub struct Session {
    pub http: Http,
    pub url: String,
    pub token: String,
}

impl Session {
    pub async fn new(server: &Server, user: &str, key: &str) -> Session {
        let (url, token) = server.login(user, key).await;
        Session {
            http: Http::new(),
            url,
            token,
        }
    }

    /// `path` is appended to the storage URL ("" for the account, "/c", "/c/o").
    pub async fn req(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Resp {
        let mut h: Vec<(&str, &str)> = vec![("x-auth-token", &self.token)];
        h.extend_from_slice(headers);
        let m = Method::from_bytes(method.as_bytes()).expect("method");
        self.http
            .req(m, &format!("{}{}", self.url, path), &h, body)
            .await
    }
}

/// MD5 hex of a body, as Swift's ETag.
pub fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(data))
}
