//! `jobs`: jobs POSTed over HTTP to `zerocloud up` (the proxy and one
//! storage node with its exec agent), end to end. Four measurements, each
//! printed as a table (and as JSON lines with `--json`); nothing is asserted
//! about time:
//! - script: a Python script as the request body (`application/python`),
//!   p50/p99 and jobs/s at concurrency 1 and 2, for a trivial script and a
//!   json + sqlite3 one, beside native `python3` started as a process per run;
//! - wildcard: one job of 100 nodes over `swift://~/<container>/*.txt`;
//! - attach: the same job read-attached to a 4 KiB and to a 64 MiB object
//!   (the program reads 16 bytes), beside one copy of 64 MiB on the same
//!   filesystem;
//! - burst: 1,000 script POSTs at once, each on its own connection: the
//!   statuses, the time, and the peak resident memory of the server and its
//!   worker processes, sampled from /proc.
//!
//! Starts its own server (data dir on a tmpfs) and stops it by pid at the
//! end, or uses `--url`. Every output is checked.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;

#[derive(Parser)]
#[command(
    about = "Jobs over HTTP against `zerocloud up`: script POSTs (vs native python3), a 100-node \
             wildcard job, attached objects of 4 KiB and 64 MiB, a burst of 1000 POSTs with RSS"
)]
struct Args {
    /// The server binary to start as `zerocloud up` (not with --url).
    #[arg(
        long,
        env = "ZEROCLOUD_BIN",
        default_value = "target/release/zerocloud"
    )]
    zerocloud: PathBuf,
    /// The images dir the started server uses (with the Python image).
    #[arg(long, env = "ZEROCLOUD_IMAGES")]
    images: Option<PathBuf>,
    /// A running server instead: http://HOST:PORT, or its TempAuth URL.
    #[arg(long)]
    url: Option<String>,
    /// With --url: pids of its server processes, for the memory samples
    /// (their `--worker` descendants are found); none: no samples.
    #[arg(long, value_delimiter = ',')]
    pids: Vec<u32>,
    /// Where the temporary dir goes (the server's data dir, the copy).
    #[arg(long, env = "BENCH_TMPDIR", default_value = "/dev/shm")]
    tmp_dir: PathBuf,
    #[arg(long, default_value = "test:tester")]
    user: String,
    #[arg(long, default_value = "testing")]
    key: String,
    /// Timed script POSTs per row (script).
    #[arg(long, env = "BENCH_RUNS", default_value_t = 300)]
    runs: usize,
    /// Timed native python3 runs per row (script); 0 skips them.
    #[arg(long, env = "BENCH_NATIVE_RUNS", default_value_t = 100)]
    native_runs: usize,
    /// The native interpreter of the comparison rows.
    #[arg(long, env = "BENCH_NATIVE_PYTHON", default_value = "python3")]
    native_python: PathBuf,
    /// Objects matched by the wildcard, so nodes of the job (wildcard).
    #[arg(long, env = "BENCH_NODES", default_value_t = 100)]
    nodes: usize,
    /// Timed runs of the wildcard job.
    #[arg(long, env = "BENCH_WILDCARD_RUNS", default_value_t = 5)]
    wildcard_runs: usize,
    /// Timed runs of each attached-object job (attach).
    #[arg(long, env = "BENCH_ATTACH_RUNS", default_value_t = 20)]
    attach_runs: usize,
    /// Size of the large attached object; suffixes k, m (powers of 1024).
    #[arg(long, env = "BENCH_BIG", default_value = "64m", value_parser = parse_size)]
    big: usize,
    /// Timed GETs of each kind (open).
    #[arg(long, env = "BENCH_OPEN_RUNS", default_value_t = 200)]
    open_runs: usize,
    /// Script POSTs sent at once, one connection each (burst).
    #[arg(long, env = "BENCH_BURST", default_value_t = 1000)]
    burst: usize,
    /// Milliseconds between two memory samples during the burst.
    #[arg(long, default_value_t = 20)]
    sample_ms: u64,
    /// What to measure, comma separated.
    #[arg(
        long,
        env = "BENCH_PHASES",
        value_delimiter = ',',
        default_value = "script,wildcard,attach,open,burst"
    )]
    phases: Vec<Phase>,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Also print one JSON line per table row.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Phase {
    Script,
    Wildcard,
    Attach,
    Open,
    Burst,
}

fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.trim_end_matches("ib").trim_end_matches('b');
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k')) => (&t[..i], 1 << 10),
        Some((i, 'm')) => (&t[..i], 1 << 20),
        _ => (t, 1),
    };
    let n: usize = num
        .trim()
        .parse()
        .map_err(|_| format!("bad size {s:?} (e.g. 4096, 4k, 64m)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} too large"))
}

fn human_size(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

/// A Python script and the exact output every run must print.
struct Script {
    name: &'static str,
    code: &'static str,
    expected: &'static str,
}

const SUM: Script = Script {
    name: "sum",
    code: "print(sum(range(1000)))\n",
    expected: "499500\n",
};

const SQLITE: Script = Script {
    name: "json+sqlite3",
    code: r#"import json, sqlite3
db = sqlite3.connect(':memory:')
db.execute('create table t (k integer primary key, v text)')
db.executemany('insert into t values (?, ?)', [(i, str(i * i)) for i in range(100)])
n, s = db.execute('select count(*), sum(k) from t').fetchone()
odd = [v for (v,) in db.execute('select v from t where k % 2 = 1 order by k desc limit 3')]
print(json.dumps({'rows': n, 'sum': s, 'odd': odd}, sort_keys=True))
"#,
    expected: "{\"odd\": [\"9801\", \"9409\", \"9025\"], \"rows\": 100, \"sum\": 4950}\n",
};

impl Script {
    /// The request body: ZeroCloud's script form, the image in the shebang.
    fn body(&self) -> Bytes {
        Bytes::from(format!("#!file://python:python\n{}", self.code))
    }
}

/// `s` cut to `n` characters, on one line (for error messages and keys).
fn short(s: &str, n: usize) -> String {
    let one_line = s.trim().replace('\n', "\\n");
    match one_line.char_indices().nth(n) {
        Some((i, _)) => format!("{}...", &one_line[..i]),
        None => one_line,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

fn p_ms(times: &[Duration], p: f64) -> f64 {
    ms(bench::percentile(times, p))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

// ---- the server ----------------------------------------------------------

/// A `zerocloud up` this benchmark started; stopped by pid when dropped.
struct Server {
    child: Child,
    log: PathBuf,
    stopped: bool,
}

impl Server {
    /// Starts `bin up` on an ephemeral port and returns it with its base
    /// URL, read from the `zerocloud listening on http://...` line.
    fn start(
        bin: &Path,
        images: Option<&Path>,
        data: &Path,
        log: &Path,
    ) -> Result<(Server, String)> {
        let file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(bin);
        if let Some(dir) = images {
            cmd.env("ZEROCLOUD_IMAGES", dir);
        }
        let mut child = cmd
            .args(["up", "--no-fsync", "--no-image-install"])
            .args(["--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(file.try_clone()?)
            .spawn()
            .with_context(|| format!("starting {} up", bin.display()))?;
        let stdout = child.stdout.take();
        let server = Server {
            child,
            log: log.to_path_buf(),
            stopped: false,
        };
        let stdout = stdout.context("no stdout pipe")?;
        let (tx, rx) = mpsc::channel();
        // Reads stdout to the end (so the server never blocks on it), into the log.
        std::thread::spawn(move || {
            let mut out = file;
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("zerocloud listening on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(url.trim().to_string());
                    }
                }
                let _ = writeln!(out, "{line}");
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => Ok((server, url)),
            Err(_) => bail!(
                "zerocloud did not print its address within 60 s; its log:\n{}",
                server.log_tail(20)
            ),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// SIGTERM by pid, up to 15 s for the graceful stop, then SIGKILL; then
    /// checks that its workers went with it. Returns how it ended.
    fn stop(&mut self) -> String {
        if std::mem::replace(&mut self.stopped, true) {
            return "already stopped".into();
        }
        if let Ok(Some(st)) = self.child.try_wait() {
            return format!("had already exited ({st})");
        }
        let pid = self.pid();
        let workers: Vec<(u32, Option<u64>)> = workers_of(&[pid])
            .into_iter()
            .map(|w| (w, start_time(w)))
            .collect();
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let t = Instant::now();
        let ended = loop {
            match self.child.try_wait() {
                Ok(Some(st)) => {
                    break format!("exited after SIGTERM in {:.0} ms ({st})", ms(t.elapsed()))
                }
                Ok(None) if t.elapsed() < Duration::from_secs(15) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break "did not stop within 15 s of SIGTERM: SIGKILL".to_string();
                }
            }
        };
        // Workers exit when their parent is gone (their socket hangs up).
        let t = Instant::now();
        let alive = |w: &(u32, Option<u64>)| {
            let f = stat_fields(w.0);
            let zombie = f.as_ref().and_then(|f| f.first()).is_some_and(|s| s == "Z");
            w.1.is_some() && !zombie && f.and_then(|f| f.get(19)?.parse().ok()) == w.1
        };
        while workers.iter().any(alive) && t.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left: Vec<u32> = workers.iter().filter(|w| alive(w)).map(|w| w.0).collect();
        if left.is_empty() {
            return ended;
        }
        for w in &left {
            let _ = Command::new("kill")
                .args(["-KILL", &w.to_string()])
                .status();
        }
        format!("{ended}; workers {left:?} still running 3 s later: SIGKILL")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---- /proc ---------------------------------------------------------------

/// The fields of /proc/<pid>/stat after the command name (state first).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Start time in clock ticks since boot (tells a reused pid apart).
fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

fn is_worker(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| c.split(|&b| b == 0).any(|a| a == b"--worker"))
        .unwrap_or(false)
}

/// Descendants of `roots` whose command line has `--worker`.
fn workers_of(roots: &[u32]) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children = BTreeMap::<u32, Vec<u32>>::new();
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(ppid) = stat_fields(pid).and_then(|f| f.get(1)?.parse::<u32>().ok()) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut todo = roots.to_vec();
    while let Some(p) = todo.pop() {
        for &c in children.get(&p).into_iter().flatten() {
            if is_worker(c) {
                out.push(c);
            }
            todo.push(c);
        }
    }
    out.sort_unstable();
    out
}

/// VmRSS of `pid` in bytes.
fn rss(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The processes sampled: the roots (`role` "server") and their workers.
fn processes(roots: &[u32]) -> Vec<(u32, &'static str)> {
    let mut v: Vec<(u32, &'static str)> = roots.iter().map(|&p| (p, "server")).collect();
    v.extend(workers_of(roots).into_iter().map(|w| (w, "worker")));
    v
}

#[derive(Default)]
struct Peaks {
    /// pid → (role, peak RSS)
    per: BTreeMap<u32, (&'static str, u64)>,
    /// The largest sum over one sample.
    sum: u64,
    samples: usize,
}

/// Samples VmRSS of the roots and their workers every `every` on its own
/// thread (the runtime's threads are busy with the burst) until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Peaks>,
}

impl Sampler {
    fn start(roots: Vec<u32>, every: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peaks = Peaks::default();
            let mut procs = processes(&roots);
            let mut n = 0usize;
            loop {
                // Workers may be restarted: look for them again now and then.
                if n % 10 == 9 {
                    procs = processes(&roots);
                }
                n += 1;
                let mut sum = 0;
                for &(pid, role) in &procs {
                    if let Some(r) = rss(pid) {
                        sum += r;
                        let e = peaks.per.entry(pid).or_insert((role, 0));
                        e.1 = e.1.max(r);
                    }
                }
                peaks.sum = peaks.sum.max(sum);
                peaks.samples += 1;
                if flag.load(Ordering::Relaxed) {
                    break peaks;
                }
                std::thread::sleep(every);
            }
        });
        Sampler { stop, thread }
    }

    fn finish(self) -> Result<Peaks> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow!("the sampler panicked"))
    }
}

// ---- HTTP ----------------------------------------------------------------

type HttpClient = Client<HttpConnector, Full<Bytes>>;

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// A logged-in account on a keep-alive pool.
struct Api {
    client: HttpClient,
    storage: String,
    token: HeaderValue,
    timeout: Duration,
}

impl Api {
    async fn login(auth_url: &str, user: &str, key: &str, timeout: Duration) -> Result<Api> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: HttpClient = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(4)
            .build(connector);
        let req = Request::get(auth_url)
            .header("x-auth-user", user)
            .header("x-auth-key", key)
            .body(Full::new(Bytes::new()))?;
        let resp = tokio::time::timeout(timeout, client.request(req))
            .await
            .map_err(|_| anyhow!("GET {auth_url}: timeout"))?
            .with_context(|| format!("GET {auth_url}"))?;
        let status = resp.status();
        ensure!(status.is_success(), "auth failed: status {status}");
        let get = |name: &str| -> Result<String> {
            let v = resp.headers().get(name).context(format!("no {name}"))?;
            Ok(v.to_str().context(format!("bad {name}"))?.to_string())
        };
        let storage = get("x-storage-url")?.trim_end_matches('/').to_string();
        let token = HeaderValue::from_str(&get("x-auth-token")?)?;
        Ok(Api {
            client,
            storage,
            token,
            timeout,
        })
    }

    /// `method` on the storage URL + `path`, the whole reply read.
    async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.storage))
            .header("x-auth-token", self.token.clone());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body))?;
        let work = async {
            let resp = self.client.request(req).await.context("request failed")?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.context("reading body")?.to_bytes();
            Ok::<_, anyhow::Error>(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| anyhow!("timeout after {:?}", self.timeout))?
    }

    /// A job POSTed to the account.
    async fn job(&self, content_type: &str, body: Bytes) -> Result<Reply> {
        let h = [("x-zerovm-execute", "1.0"), ("content-type", content_type)];
        self.call(Method::POST, "", &h, body).await
    }

    async fn put(&self, path: &str, body: Bytes) -> Result<()> {
        let r = self.call(Method::PUT, path, &[], body).await?;
        ensure!(
            matches!(r.status.as_u16(), 201 | 202),
            "PUT {path}: status {}",
            r.status
        );
        Ok(())
    }
}

/// What a reply says when it is not the expected one.
fn unexpected(r: &Reply) -> String {
    let mut s = format!("status {}", r.status.as_u16());
    if let Some(e) = r.headers.get("x-nexe-error").and_then(|v| v.to_str().ok()) {
        s.push_str(&format!(" x-nexe-error {e:?}"));
    }
    format!("{s}: {:?}", short(&String::from_utf8_lossy(&r.body), 100))
}

// ---- 1. scripts ----------------------------------------------------------

struct Row {
    how: &'static str,
    script: &'static str,
    conc: usize,
    times: Vec<Duration>,
    secs: f64,
    errors: BTreeMap<String, usize>,
}

impl Row {
    fn p50(&self) -> f64 {
        p_ms(&self.times, 0.5)
    }
    fn rate(&self) -> f64 {
        self.times.len() as f64 / self.secs
    }
    fn error_count(&self) -> usize {
        self.errors.values().sum()
    }
}

async fn run_script(api: &Api, script: &Script) -> Result<()> {
    let r = api.job("application/python", script.body()).await?;
    if r.status != StatusCode::OK || r.body != script.expected.as_bytes() {
        bail!("{}", unexpected(&r));
    }
    Ok(())
}

/// `runs` POSTs of `script` by `conc` tasks; only successful runs are timed.
async fn http_row(
    api: &Arc<Api>,
    script: &'static Script,
    conc: usize,
    runs: usize,
) -> Result<Row> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..conc)
        .map(|_| {
            let (api, next) = (api.clone(), next.clone());
            tokio::spawn(async move {
                let mut times = Vec::new();
                let mut errors = BTreeMap::<String, usize>::new();
                while next.fetch_add(1, Ordering::Relaxed) < runs {
                    let t = Instant::now();
                    match run_script(&api, script).await {
                        Ok(()) => times.push(t.elapsed()),
                        Err(e) => *errors.entry(format!("{e:#}")).or_default() += 1,
                    }
                }
                (times, errors)
            })
        })
        .collect();
    let mut row = Row {
        how: "zerocloud HTTP",
        script: script.name,
        conc,
        times: Vec::with_capacity(runs),
        secs: 0.0,
        errors: BTreeMap::new(),
    };
    for t in tasks {
        let (times, errors) = t.await.context("a bench task panicked")?;
        row.times.extend(times);
        for (e, k) in errors {
            *row.errors.entry(e).or_default() += k;
        }
    }
    row.secs = start.elapsed().as_secs_f64();
    Ok(row)
}

fn native_run(python: &Path, script: &Script) -> Result<()> {
    let out = Command::new(python)
        .args(["-c", script.code])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {}", python.display()))?;
    ensure!(
        out.status.success() && out.stdout == script.expected.as_bytes(),
        "native {}: {} stdout {:?} stderr {:?}",
        python.display(),
        out.status,
        short(&String::from_utf8_lossy(&out.stdout), 80),
        short(&String::from_utf8_lossy(&out.stderr), 200)
    );
    Ok(())
}

/// `runs` native processes of `script` on `conc` threads.
fn native_row(python: &Path, script: &'static Script, conc: usize, runs: usize) -> Result<Row> {
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..conc)
            .map(|_| {
                scope.spawn(|| {
                    let mut times = Vec::new();
                    let mut errors = BTreeMap::<String, usize>::new();
                    while next.fetch_add(1, Ordering::Relaxed) < runs {
                        let t = Instant::now();
                        match native_run(python, script) {
                            Ok(()) => times.push(t.elapsed()),
                            Err(e) => *errors.entry(format!("{e:#}")).or_default() += 1,
                        }
                    }
                    (times, errors)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect::<Vec<_>>()
    });
    let mut row = Row {
        how: "native python3",
        script: script.name,
        conc,
        times: Vec::with_capacity(runs),
        secs: start.elapsed().as_secs_f64(),
        errors: BTreeMap::new(),
    };
    for r in results {
        let (times, errors) = r.map_err(|_| anyhow!("a bench thread panicked"))?;
        row.times.extend(times);
        for (e, k) in errors {
            *row.errors.entry(e).or_default() += k;
        }
    }
    Ok(row)
}

async fn phase_script(args: &Args, api: &Arc<Api>, out: &mut Out) -> Result<()> {
    let scripts: [&'static Script; 2] = [&SUM, &SQLITE];
    // Warm-up: the pool's workers, the Python program's artifact, the client's connections.
    for s in scripts {
        for _ in 0..10 {
            run_script(api, s)
                .await
                .context(format!("warm-up of {}", s.name))?;
        }
    }
    let native = if args.native_runs == 0 {
        None
    } else {
        match native_run(&args.native_python, &SUM) {
            Ok(()) => Some(args.native_python.clone()),
            Err(e) => {
                out.note(format!("native rows skipped: {e:#}"));
                None
            }
        }
    };
    let mut rows = Vec::new();
    for s in scripts {
        for conc in [1, 2] {
            rows.push(http_row(api, s, conc, args.runs).await?);
            if let Some(py) = &native {
                let (py, runs) = (py.clone(), args.native_runs);
                rows.push(
                    tokio::task::spawn_blocking(move || native_row(&py, s, conc, runs))
                        .await
                        .context("native rows")??,
                );
            }
        }
    }
    println!();
    println!(
        "== script POSTs over HTTP (POST <storage_url>, application/python, output checked every run) vs native {} (a new process per run) ==",
        args.native_python.display()
    );
    println!(
        "{:<14} {:<16} {:>4} {:>6} {:>6} {:>10} {:>10} {:>9}",
        "script", "how", "conc", "runs", "errors", "p50_ms", "p99_ms", "jobs/s"
    );
    for r in &rows {
        println!(
            "{:<14} {:<16} {:>4} {:>6} {:>6} {:>10.2} {:>10.2} {:>9.1}",
            r.script,
            r.how,
            r.conc,
            r.times.len(),
            r.error_count(),
            r.p50(),
            p_ms(&r.times, 0.99),
            r.rate()
        );
        out.errors(&format!("{} {} c={}", r.script, r.how, r.conc), &r.errors);
        out.json(json!({
            "phase": "script", "script": r.script, "how": r.how, "conc": r.conc,
            "runs": r.times.len(), "errors": r.error_count(), "p50_ms": round3(r.p50()),
            "p99_ms": round3(p_ms(&r.times, 0.99)), "jobs_per_s": round3(r.rate()),
        }));
    }
    for s in scripts {
        for conc in [1, 2] {
            let find = |how: &str| {
                rows.iter().find(|r| {
                    r.script == s.name && r.conc == conc && r.how == how && !r.times.is_empty()
                })
            };
            if let (Some(h), Some(n)) = (find("zerocloud HTTP"), find("native python3")) {
                let x = n.p50() / h.p50();
                println!(
                    "speedup {:<13} c={conc}: native p50 / HTTP p50 = {:.1} / {:.2} ms = {x:.1}x",
                    s.name,
                    n.p50(),
                    h.p50()
                );
                out.json(json!({
                    "phase": "script", "script": s.name, "conc": conc, "speedup": round3(x),
                }));
            }
        }
    }
    Ok(())
}

// ---- 2. a wildcard job ---------------------------------------------------

/// One run of the wildcard job, checked: its time, and whether the node
/// outputs came in another order than the objects' names.
async fn wildcard_once(api: &Api, body: &Bytes, want: &[usize]) -> Result<(Duration, bool)> {
    let t = Instant::now();
    let r = api.job("application/json", body.clone()).await?;
    let took = t.elapsed();
    ensure!(
        r.status == StatusCode::OK,
        "wildcard job: {}",
        unexpected(&r)
    );
    let nodes = r.header("x-nexe-system").split(',').count();
    ensure!(
        nodes == want.len(),
        "wildcard job: {nodes} nodes in X-Nexe-System"
    );
    let text = String::from_utf8_lossy(&r.body);
    let got: Vec<usize> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    let mut sorted = got.clone();
    sorted.sort_unstable();
    ensure!(
        sorted == want && got.len() == text.lines().count(),
        "wildcard job: output {:?}",
        short(&text, 200)
    );
    Ok((took, got != want))
}

async fn phase_wildcard(args: &Args, api: &Api, prefix: &str, out: &mut Out) -> Result<()> {
    ensure!(args.nodes > 0, "--nodes must be > 0");
    let container = format!("{prefix}-many");
    api.put(&format!("/{container}"), Bytes::new()).await?;
    // Object i holds i + 1 words, so each node's output says which it read.
    for i in 0..args.nodes {
        let words = vec!["w"; i + 1].join(" ");
        api.put(
            &format!("/{container}/obj-{i:04}.txt"),
            Bytes::from(words + "\n"),
        )
        .await?;
    }
    let job = json!([{
        "name": "wc",
        "exec": {"path": "file://python:python",
                 "args": "-c print(len(open('/dev/input').read().split()))"},
        "devices": [{"name": "input", "path": format!("swift://~/{container}/*.txt")},
                    {"name": "stdout"}],
    }]);
    let body = Bytes::from(job.to_string());
    let want: Vec<usize> = (1..=args.nodes).collect();
    wildcard_once(api, &body, &want).await.context("warm-up")?;
    let mut times = Vec::new();
    let mut order_differs = false;
    for _ in 0..args.wildcard_runs {
        let (t, differs) = wildcard_once(api, &body, &want).await?;
        times.push(t);
        order_differs |= differs;
    }
    let n = args.nodes as f64;
    let (p50, min, max) = (p_ms(&times, 0.5), p_ms(&times, 0.0), p_ms(&times, 1.0));
    println!();
    println!(
        "== one job of {} nodes: input swift://~/{container}/*.txt ({} small objects), Python counts words of /dev/input; end to end over HTTP ==",
        args.nodes, args.nodes
    );
    println!(
        "{:>5} {:>5} {:>13} {:>10} {:>10} {:>16}",
        "nodes", "runs", "p50_total_ms", "min_ms", "max_ms", "p50_ms_per_node"
    );
    println!(
        "{:>5} {:>5} {p50:>13.1} {min:>10.1} {max:>10.1} {:>16.2}",
        args.nodes,
        times.len(),
        p50 / n
    );
    if order_differs {
        out.note("wildcard: node outputs came in another order than the object names".into());
    }
    out.json(json!({
        "phase": "wildcard", "nodes": args.nodes, "runs": times.len(), "p50_total_ms": round3(p50),
        "min_ms": round3(min), "max_ms": round3(max), "p50_ms_per_node": round3(p50 / n),
    }));
    if args.url.is_some() {
        for i in 0..args.nodes {
            let _ = api
                .call(
                    Method::DELETE,
                    &format!("/{container}/obj-{i:04}.txt"),
                    &[],
                    Bytes::new(),
                )
                .await;
        }
        let _ = api
            .call(Method::DELETE, &format!("/{container}"), &[], Bytes::new())
            .await;
    }
    Ok(())
}

// ---- 3. attached objects: read in place ----------------------------------

async fn phase_attach(
    args: &Args,
    api: &Api,
    prefix: &str,
    tmp: &Path,
    out: &mut Out,
) -> Result<()> {
    let container = format!("{prefix}-attach");
    api.put(&format!("/{container}"), Bytes::new()).await?;
    let pattern =
        |n: usize| -> Bytes { (0..n).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into() };
    let objects = [("small.bin", 4096usize), ("big.bin", args.big)];
    for (name, size) in objects {
        api.put(&format!("/{container}/{name}"), pattern(size))
            .await?;
    }
    let job = |name: &str| -> Bytes {
        json!([{
            "name": "head",
            // `\\x2c`: a comma in args must be escaped (NVRAM records split on it).
            "exec": {"path": "file://python:python",
                     "args": "-c print(len(open('/dev/input'\\x2c'rb').read(16)))"},
            "devices": [{"name": "input", "path": format!("swift://~/{container}/{name}")},
                        {"name": "stdout"}],
        }])
        .to_string()
        .into()
    };
    let jobs = [job(objects[0].0), job(objects[1].0)];
    let one = |k: usize| {
        let body = jobs[k].clone();
        async move {
            let t = Instant::now();
            let r = api.job("application/json", body).await?;
            let took = t.elapsed();
            ensure!(
                r.status == StatusCode::OK && r.body.as_ref() == b"16\n",
                "attached {}: {}",
                objects[k].0,
                unexpected(&r)
            );
            Ok::<_, anyhow::Error>(took)
        }
    };
    for k in [0, 1, 0, 1] {
        one(k).await.context("warm-up")?;
    }
    // Interleaved, so that drift in the machine's load hits both alike.
    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..args.attach_runs {
        for (k, t) in times.iter_mut().enumerate() {
            t.push(one(k).await?);
        }
    }
    // One copy of the big object's size on the same filesystem.
    let src = tmp.join("copy-src.bin");
    let dst = tmp.join("copy-dst.bin");
    std::fs::write(&src, pattern(args.big)).context("writing the copy source")?;
    let mut copies = Vec::new();
    for _ in 0..5 {
        let _ = std::fs::remove_file(&dst);
        let t = Instant::now();
        std::fs::copy(&src, &dst).context("copying")?;
        copies.push(t.elapsed());
    }
    let _ = std::fs::remove_file(&dst);
    let _ = std::fs::remove_file(&src);
    let copy = p_ms(&copies, 0.5);

    println!();
    println!(
        "== a job read-attached to one object (input swift://~/{container}/<obj>; the program reads 16 bytes of /dev/input), {} runs each, interleaved ==",
        args.attach_runs
    );
    println!(
        "{:<10} {:>10} {:>5} {:>10} {:>10} {:>10}",
        "object", "size", "runs", "p50_ms", "min_ms", "max_ms"
    );
    for (k, (name, size)) in objects.iter().enumerate() {
        let t = &times[k];
        println!(
            "{:<10} {:>10} {:>5} {:>10.2} {:>10.2} {:>10.2}",
            name,
            human_size(*size),
            t.len(),
            p_ms(t, 0.5),
            p_ms(t, 0.0),
            p_ms(t, 1.0)
        );
        out.json(json!({
            "phase": "attach", "object": name, "size": size, "runs": t.len(),
            "p50_ms": round3(p_ms(t, 0.5)), "min_ms": round3(p_ms(t, 0.0)), "max_ms": round3(p_ms(t, 1.0)),
        }));
    }
    let diff = p_ms(&times[1], 0.5) - p_ms(&times[0], 0.5);
    let place = if args.url.is_none() {
        " (the data dir's filesystem)"
    } else {
        ""
    };
    println!(
        "one std::fs::copy of {} in {}{place}: p50 of 5 = {copy:.2} ms",
        human_size(args.big),
        tmp.display()
    );
    println!(
        "p50({}) - p50({}) = {diff:+.2} ms; a copy per job would add ~{copy:.1} ms",
        human_size(args.big),
        human_size(4096)
    );
    out.json(json!({
        "phase": "attach", "copy_size": args.big, "copy_p50_ms": round3(copy), "p50_diff_ms": round3(diff),
    }));
    if args.url.is_some() {
        for (name, _) in objects {
            let _ = api
                .call(
                    Method::DELETE,
                    &format!("/{container}/{name}"),
                    &[],
                    Bytes::new(),
                )
                .await;
        }
        let _ = api
            .call(Method::DELETE, &format!("/{container}"), &[], Bytes::new())
            .await;
    }
    Ok(())
}

// ---- 4. open/1.0 ------------------------------------------------------------

/// A 4 KiB JSON object fetched with a plain GET and with `X-Zerovm-Execute:
/// open/1.0`, rendered by a Python app registered in `.zvm` for its type
/// (a type of this run's own, so that no real registration is touched).
async fn phase_open(args: &Args, api: &Api, prefix: &str, out: &mut Out) -> Result<()> {
    let container = format!("{prefix}-open");
    let media = format!("application/vnd.{prefix}+json");
    api.put(&format!("/{container}"), Bytes::new()).await?;
    api.put("/.zvm", Bytes::new()).await?;
    let mut rows = Vec::new();
    let mut len = 2;
    while len < 4096 - 64 {
        let row = json!({"id": rows.len(), "name": format!("item-{}", rows.len()), "ok": true});
        len += row.to_string().len() + 1;
        rows.push(row);
    }
    let doc: Bytes = serde_json::to_vec(&rows)?.into();
    let put = |path: String, ct: String, body: Bytes| async move {
        let r = api
            .call(Method::PUT, &path, &[("content-type", ct.as_str())], body)
            .await?;
        ensure!(r.status.as_u16() == 201, "PUT {path}: {}", unexpected(&r));
        Ok::<_, anyhow::Error>(())
    };
    put(format!("/{container}/doc.json"), media.clone(), doc.clone()).await?;
    // No spaces in args (they separate arguments); `\\x2c`: commas are
    // escaped (NVRAM records split on them).
    let app = json!([{
        "name": "render",
        "exec": {"path": "file://python:python",
                 "args": "-c j=__import__('json');print(j.dumps(j.load(open('/dev/input'))\\x2cindent=1))"},
        "devices": [{"name": "input", "path": "{.object_path}"},
                    {"name": "stdout", "content_type": "application/json"}],
    }]);
    let config = format!("/.zvm/{media}/config");
    put(
        config.clone(),
        "application/json".into(),
        app.to_string().into(),
    )
    .await?;
    let want = format!(
        "{}\n",
        serde_json::to_string_pretty(&rows)?.replace("  ", " ")
    );
    let path = format!("/{container}/doc.json");
    let one = |open: bool| {
        let path = path.clone();
        let doc = doc.clone();
        let want = want.clone();
        async move {
            let h: &[(&str, &str)] = if open {
                &[("x-zerovm-execute", "open/1.0")]
            } else {
                &[]
            };
            let t = Instant::now();
            let r = api.call(Method::GET, &path, h, Bytes::new()).await?;
            let took = t.elapsed();
            let ok = r.status == StatusCode::OK
                && if open {
                    r.body.as_ref() == want.as_bytes()
                } else {
                    r.body == doc
                };
            ensure!(ok, "GET (open {open}): {}", unexpected(&r));
            Ok::<_, anyhow::Error>(took)
        }
    };
    for _ in 0..5 {
        one(false).await.context("warm-up")?;
        one(true).await.context("warm-up")?;
    }
    let mut plain = Vec::new();
    let mut opened = Vec::new();
    for _ in 0..args.open_runs {
        plain.push(one(false).await?);
        opened.push(one(true).await?);
    }
    println!();
    println!(
        "== GET of a 4 KiB JSON object, plain and open/1.0 (a Python app from .zvm renders it), {} runs each, interleaved ==",
        args.open_runs
    );
    println!(
        "{:<22} {:>5} {:>10} {:>10}",
        "how", "runs", "p50_ms", "p99_ms"
    );
    for (how, t) in [("plain GET", &plain), ("open/1.0 GET", &opened)] {
        println!(
            "{:<22} {:>5} {:>10.2} {:>10.2}",
            how,
            t.len(),
            p_ms(t, 0.5),
            p_ms(t, 0.99)
        );
        out.json(json!({
            "phase": "open", "how": how, "runs": t.len(),
            "p50_ms": round3(p_ms(t, 0.5)), "p99_ms": round3(p_ms(t, 0.99)),
        }));
    }
    let over = p_ms(&opened, 0.5) - p_ms(&plain, 0.5);
    println!("open/1.0 p50 - plain p50 = {over:+.2} ms");
    out.json(json!({"phase": "open", "p50_over_plain_ms": round3(over)}));
    for p in [config, path, format!("/{container}")] {
        let _ = api.call(Method::DELETE, &p, &[], Bytes::new()).await;
    }
    Ok(())
}

// ---- 5. a burst ----------------------------------------------------------

/// One request of the burst: its connection, then (after the barrier) its POST.
async fn burst_one(
    addr: String,
    req: Request<Full<Bytes>>,
    barrier: Arc<tokio::sync::Barrier>,
    timeout: Duration,
) -> (String, Duration, Duration) {
    let t_conn = Instant::now();
    let conn = async {
        let stream = tokio::net::TcpStream::connect(&addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok::<_, anyhow::Error>(sender)
    }
    .await;
    let connect = t_conn.elapsed();
    barrier.wait().await;
    let t = Instant::now();
    let mut sender = match conn {
        Ok(s) => s,
        Err(e) => {
            return (
                format!("connect error: {}", short(&format!("{e:#}"), 80)),
                t.elapsed(),
                connect,
            )
        }
    };
    let work = async {
        let resp = sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok::<_, anyhow::Error>((status, body))
    };
    let outcome = match tokio::time::timeout(timeout, work).await {
        Err(_) => "timeout".to_string(),
        Ok(Err(e)) => format!("error: {}", short(&format!("{e:#}"), 80)),
        Ok(Ok((200, body))) if body != SUM.expected.as_bytes() => {
            format!(
                "200 wrong output {:?}",
                short(&String::from_utf8_lossy(&body), 60)
            )
        }
        Ok(Ok((status, _))) => status.to_string(),
    };
    (outcome, t.elapsed(), connect)
}

async fn phase_burst(args: &Args, api: &Api, roots: &[u32], out: &mut Out) -> Result<()> {
    ensure!(args.burst > 0, "--burst must be > 0");
    let uri: Uri = api.storage.parse().context("storage URL")?;
    let addr = uri
        .authority()
        .context("storage URL without host")?
        .to_string();
    let path = uri.path().to_string();
    let body = SUM.body();
    let barrier = Arc::new(tokio::sync::Barrier::new(args.burst + 1));
    let idle: Vec<(u32, &'static str, Option<u64>)> = processes(roots)
        .into_iter()
        .map(|(p, role)| (p, role, rss(p)))
        .collect();
    let sampler = (!roots.is_empty())
        .then(|| Sampler::start(roots.to_vec(), Duration::from_millis(args.sample_ms)));
    let timeout = Duration::from_secs(args.timeout);
    let t_conn = Instant::now();
    let mut tasks = Vec::with_capacity(args.burst);
    for _ in 0..args.burst {
        let req = Request::builder()
            .method(Method::POST)
            .uri(&path)
            .header(HOST, &addr)
            .header("x-auth-token", api.token.clone())
            .header("x-zerovm-execute", "1.0")
            .header(CONTENT_TYPE, "application/python")
            .body(Full::new(body.clone()))?;
        tasks.push(tokio::spawn(burst_one(
            addr.clone(),
            req,
            barrier.clone(),
            timeout,
        )));
    }
    barrier.wait().await;
    let connected = t_conn.elapsed();
    let start = Instant::now();
    let mut by = BTreeMap::<String, Vec<Duration>>::new();
    let mut connects = Vec::with_capacity(args.burst);
    for t in tasks {
        let (outcome, took, connect) = t.await.context("a burst task panicked")?;
        by.entry(outcome).or_default().push(took);
        connects.push(connect);
    }
    let total = start.elapsed();
    let peaks = match sampler {
        Some(s) => {
            tokio::time::sleep(Duration::from_millis(args.sample_ms)).await;
            Some(s.finish()?)
        }
        None => None,
    };

    println!();
    println!(
        "== {} script POSTs (print(sum(range(1000)))) sent at once, each on its own connection ==",
        args.burst
    );
    println!(
        "{} connections opened in {:.1} ms (connect + handshake each: p50 {:.1} ms, max {:.1} ms); \
         all {} answered {:.1} ms after the release",
        args.burst,
        ms(connected),
        p_ms(&connects, 0.5),
        p_ms(&connects, 1.0),
        args.burst,
        ms(total)
    );
    println!(
        "{:<28} {:>6} {:>10} {:>10} {:>10}",
        "status", "count", "p50_ms", "p99_ms", "max_ms"
    );
    for (outcome, t) in &by {
        let odd = if outcome == "200" || outcome == "503" {
            ""
        } else {
            "  (unexpected)"
        };
        println!(
            "{:<28} {:>6} {:>10.1} {:>10.1} {:>10.1}{odd}",
            outcome,
            t.len(),
            p_ms(t, 0.5),
            p_ms(t, 0.99),
            p_ms(t, 1.0)
        );
        if !odd.is_empty() {
            out.note(format!("burst: {} x {outcome}", t.len()));
        }
        out.json(json!({
            "phase": "burst", "burst": args.burst, "status": outcome, "count": t.len(),
            "p50_ms": round3(p_ms(t, 0.5)), "p99_ms": round3(p_ms(t, 0.99)), "max_ms": round3(p_ms(t, 1.0)),
        }));
    }
    out.json(json!({
        "phase": "burst", "burst": args.burst, "connect_ms": round3(ms(connected)),
        "connect_p50_ms": round3(p_ms(&connects, 0.5)), "connect_max_ms": round3(p_ms(&connects, 1.0)), "total_ms": round3(ms(total)),
    }));
    let Some(peaks) = peaks else {
        println!("(no memory samples: --url without --pids)");
        return Ok(());
    };
    println!(
        "resident memory (VmRSS), idle just before the burst and peak of {} samples every {} ms:",
        peaks.samples, args.sample_ms
    );
    println!(
        "{:<10} {:>8} {:>10} {:>10}",
        "process", "pid", "idle_MiB", "peak_MiB"
    );
    let mut idle_sum = 0;
    let mut pids: Vec<u32> = peaks.per.keys().copied().collect();
    for (p, _, _) in &idle {
        if !pids.contains(p) {
            pids.push(*p);
        }
    }
    // The server(s) first, then the workers, each by pid.
    pids.sort_by_key(|p| (peaks.per.get(p).map(|e| e.0) != Some("server"), *p));
    for pid in pids {
        let before = idle.iter().find(|i| i.0 == pid);
        let role = peaks
            .per
            .get(&pid)
            .map(|e| e.0)
            .or(before.map(|i| i.1))
            .unwrap_or("?");
        let role = if role == "server" && args.url.is_none() {
            "zerocloud"
        } else {
            role
        };
        let idle_b = before.and_then(|i| i.2);
        idle_sum += idle_b.unwrap_or(0);
        let peak = peaks.per.get(&pid).map(|e| e.1);
        let show = |b: Option<u64>| b.map_or("-".to_string(), |b| format!("{:.1}", mib(b)));
        println!(
            "{:<10} {:>8} {:>10} {:>10}",
            role,
            pid,
            show(idle_b),
            show(peak)
        );
        out.json(json!({
            "phase": "burst", "process": role, "pid": pid,
            "idle_mib": idle_b.map(|b| round3(mib(b))), "peak_mib": peak.map(|b| round3(mib(b))),
        }));
    }
    println!(
        "{:<10} {:>8} {:>10.1} {:>10.1}   (peak: the largest sum over one sample)",
        "sum",
        "",
        mib(idle_sum),
        mib(peaks.sum)
    );
    out.json(json!({
        "phase": "burst", "process": "sum", "idle_mib": round3(mib(idle_sum)), "peak_mib": round3(mib(peaks.sum)),
    }));
    Ok(())
}

// ---- main ----------------------------------------------------------------

/// What is printed besides the tables: JSON lines, notes, error details.
struct Out {
    json: bool,
    notes: Vec<String>,
    failures: usize,
}

impl Out {
    fn json(&self, v: serde_json::Value) {
        if self.json {
            println!("{v}");
        }
    }
    fn note(&mut self, s: String) {
        self.notes.push(s);
    }
    fn errors(&mut self, what: &str, errors: &BTreeMap<String, usize>) {
        for (e, k) in errors {
            eprintln!("  {what}: error x{k}: {e}");
            self.failures += k;
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let result = tokio::select! {
        r = run(&args) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jobs: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("zc-bench-jobs.")
        .tempdir_in(&args.tmp_dir)
        .with_context(|| format!("a temporary dir in {}", args.tmp_dir.display()))?;
    let tmp_path = std::path::absolute(tmp.path())?;
    // Declared after `tmp`, so dropped (stopped) before the dir is removed.
    let mut server = None;
    let base = match &args.url {
        Some(u) => {
            println!("using the running server at {u}");
            u.clone()
        }
        None => {
            let (s, url) = Server::start(
                &args.zerocloud,
                args.images.as_deref(),
                &tmp_path.join("data"),
                &tmp_path.join("zerocloud.log"),
            )?;
            println!(
                "zerocloud up (pid {}) on {url}, data dir {}/data (--no-fsync)",
                s.pid(),
                tmp_path.display()
            );
            server = Some(s);
            url
        }
    };
    let roots: Vec<u32> = match &server {
        Some(s) => vec![s.pid()],
        None => args.pids.clone(),
    };
    let mut out = Out {
        json: args.json,
        notes: Vec::new(),
        failures: 0,
    };
    let result = measure(args, &base, &tmp_path, &roots, &mut out).await;
    if let Some(mut s) = server {
        if result.is_err() {
            eprintln!("jobs: the server's log ends with:\n{}", s.log_tail(20));
        }
        let ended = s.stop();
        println!();
        println!("zerocloud (pid {}) {ended}", s.pid());
        // Anything the server logged above INFO.
        let log = std::fs::read_to_string(&s.log).unwrap_or_default();
        let bad: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .collect();
        println!("server log: {} WARN/ERROR lines", bad.len());
        let mut seen = BTreeMap::<String, usize>::new();
        for l in &bad {
            // Without the timestamp and trans-id, so that alike lines group.
            let key = l.split_once(' ').map_or(*l, |x| x.1);
            let key: String = key
                .split_whitespace()
                .filter(|w| !w.contains("tx"))
                .collect::<Vec<_>>()
                .join(" ");
            *seen.entry(short(&key, 160)).or_default() += 1;
        }
        for (l, k) in seen.iter().take(8) {
            println!("  x{k}: {l}");
        }
    }
    result?;
    for n in &out.notes {
        println!("note: {n}");
    }
    ensure!(
        out.failures == 0,
        "{} run(s) failed (see above)",
        out.failures
    );
    Ok(())
}

async fn measure(args: &Args, base: &str, tmp: &Path, roots: &[u32], out: &mut Out) -> Result<()> {
    let auth_url = if base.contains("/auth/") {
        base.to_string()
    } else {
        format!("{}/auth/v1.0", base.trim_end_matches('/'))
    };
    let timeout = Duration::from_secs(args.timeout);
    let api = Arc::new(Api::login(&auth_url, &args.user, &args.key, timeout).await?);
    let prefix = format!("bench-jobs-{:08x}", rand::random::<u32>());
    let nofile = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            let line = l
                .lines()
                .find(|l| l.starts_with("Max open files"))?
                .to_string();
            line.split_whitespace().nth(3)?.parse::<usize>().ok()
        });
    let phases = &args.phases;
    if phases.contains(&Phase::Script) {
        phase_script(args, &api, out).await?;
    }
    if phases.contains(&Phase::Wildcard) {
        phase_wildcard(args, &api, &prefix, out).await?;
    }
    if phases.contains(&Phase::Attach) {
        phase_attach(args, &api, &prefix, tmp, out).await?;
    }
    if phases.contains(&Phase::Open) {
        phase_open(args, &api, &prefix, out).await?;
    }
    // Last, so that nothing it leaves behind disturbs the others.
    if phases.contains(&Phase::Burst) {
        if let Some(n) = nofile.filter(|&n| n < 2 * args.burst + 64) {
            out.note(format!(
                "open-file limit {n} < 2 x {} (client and server sockets): raise it (ulimit -n)",
                args.burst
            ));
        }
        phase_burst(args, &api, roots, out).await?;
    }
    Ok(())
}
