//! swift_ops: PUT, GET and DELETE ops/s with p50/p99 latency against any Swift v1 endpoint (TempAuth).
//! C workers share a keep-alive hyper-util pool and one `Bytes` payload; one table (and JSON) line per phase.

use anyhow::{anyhow, bail, ensure, Context, Result};
use bytes::Bytes;
use clap::Parser;
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use rand::RngCore;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "PUT/GET/DELETE benchmark against a Swift v1 endpoint with TempAuth")]
struct Args {
    /// TempAuth v1 URL, e.g. http://127.0.0.1:8080/auth/v1.0
    #[arg(long)]
    auth_url: String,
    #[arg(long, default_value = "test:tester")]
    user: String,
    #[arg(long, default_value = "testing")]
    key: String,
    /// Number of objects per phase
    #[arg(long, default_value_t = 2000)]
    objects: usize,
    /// Object size in bytes; suffixes k, m, g (powers of 1024) are accepted
    #[arg(long, default_value = "4096", value_parser = parse_size)]
    size: usize,
    /// Concurrent workers (and pooled keep-alive connections)
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Name printed in the label column (default: host:port of the auth URL)
    #[arg(long)]
    label: Option<String>,
    /// Container to use (default: random bench-<hex>); created and deleted
    #[arg(long)]
    container: Option<String>,
    /// Per-request timeout in seconds (a timeout counts as an error)
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Also print one JSON line per phase
    #[arg(long)]
    json: bool,
    /// Phases to run, in order (e.g. `put`, then `get` against the same
    /// `--container` as often as wanted, then `delete`). The container is
    /// deleted only after a `delete` phase.
    #[arg(long, value_delimiter = ',', default_value = "put,get,delete", value_parser = parse_op)]
    phases: Vec<Op>,
}

fn parse_op(s: &str) -> Result<Op, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "put" => Ok(Op::Put),
        "get" => Ok(Op::Get),
        "delete" => Ok(Op::Delete),
        _ => Err(format!("unknown phase {s:?} (put, get or delete)")),
    }
}

fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.trim_end_matches("ib").trim_end_matches('b');
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k')) => (&t[..i], 1 << 10),
        Some((i, 'm')) => (&t[..i], 1 << 20),
        Some((i, 'g')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    let n: usize = num
        .trim()
        .parse()
        .map_err(|_| format!("bad size {s:?} (e.g. 4096, 4k, 1m)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} too large"))
}

fn human_size(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{}MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{}KiB", n >> 10),
        n => format!("{n}B"),
    }
}

#[derive(Clone, Copy)]
enum Op {
    Put,
    Get,
    Delete,
}

impl Op {
    /// Name, method and the expected status.
    fn spec(self) -> (&'static str, Method, StatusCode) {
        match self {
            Op::Put => ("PUT", Method::PUT, StatusCode::CREATED),
            Op::Get => ("GET", Method::GET, StatusCode::OK),
            Op::Delete => ("DELETE", Method::DELETE, StatusCode::NO_CONTENT),
        }
    }
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Everything the workers share; cloning a `Uri`, `HeaderValue` or `Bytes` is a refcount bump.
struct Ctx {
    client: HttpClient,
    token: HeaderValue,
    uris: Vec<Uri>,
    payload: Bytes,
    timeout: Duration,
}

/// Consumes a response body frame by frame (no buffering) and returns its length.
async fn drain(mut body: Incoming) -> Result<usize> {
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame.context("reading body")?.data_ref() {
            len += data.len();
        }
    }
    Ok(len)
}

/// Sends one request, reads the whole response and checks its status; returns the body length.
async fn send(
    ctx: &Ctx,
    method: Method,
    uri: Uri,
    body: Bytes,
    want: &[StatusCode],
) -> Result<usize> {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("x-auth-token", ctx.token.clone())
        .body(Full::new(body))?;
    let resp = ctx.client.request(req).await.context("request failed")?;
    let status = resp.status();
    let len = drain(resp.into_body()).await?;
    ensure!(
        want.contains(&status),
        "status {status}, expected {}",
        want[0]
    );
    Ok(len)
}

async fn one(ctx: &Ctx, op: Op, i: usize) -> Result<()> {
    let (_, method, want) = op.spec();
    let want = [want];
    let body = match op {
        Op::Put => ctx.payload.clone(),
        _ => Bytes::new(),
    };
    let sent = send(ctx, method, ctx.uris[i].clone(), body, &want);
    let len = tokio::time::timeout(ctx.timeout, sent)
        .await
        .map_err(|_| anyhow!("timeout after {:?}", ctx.timeout))??;
    if let Op::Get = op {
        let want = ctx.payload.len();
        ensure!(len == want, "body {len} bytes, expected {want}");
    }
    Ok(())
}

struct PhaseResult {
    secs: f64,
    latencies: Vec<Duration>,
    errors: BTreeMap<String, usize>,
}

/// Runs `n` operations with `conc` workers pulling indexes from a shared counter.
async fn phase(ctx: &Arc<Ctx>, op: Op, conc: usize) -> Result<PhaseResult> {
    let next = Arc::new(AtomicUsize::new(0));
    let n = ctx.uris.len();
    let start = Instant::now();
    let workers: Vec<_> = (0..conc)
        .map(|_| {
            let (ctx, next) = (ctx.clone(), next.clone());
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(n / conc + 1);
                let mut errors = BTreeMap::<String, usize>::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let t = Instant::now();
                    let res = one(&ctx, op, i).await;
                    lat.push(t.elapsed());
                    if let Err(e) = res {
                        *errors.entry(format!("{e:#}")).or_default() += 1;
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let mut res = PhaseResult {
        secs: 0.0,
        latencies: Vec::with_capacity(n),
        errors: BTreeMap::new(),
    };
    for w in workers {
        let (lat, errors) = w.await.context("worker panicked")?;
        res.latencies.extend(lat);
        for (e, k) in errors {
            *res.errors.entry(e).or_default() += k;
        }
    }
    res.secs = start.elapsed().as_secs_f64();
    Ok(res)
}

/// Nearest-rank percentile (`p` in percent) of the latencies, in milliseconds.
fn pct_ms(latencies: &[Duration], p: f64) -> f64 {
    bench::percentile(latencies, p / 100.0).as_secs_f64() * 1e3
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

fn header_str(resp: &http::Response<Incoming>, name: &str) -> Result<String> {
    let v = resp.headers().get(name).context(format!("no {name}"))?;
    Ok(v.to_str().context(format!("bad {name}"))?.to_string())
}

/// TempAuth v1: returns (storage URL, token).
async fn auth(client: &HttpClient, args: &Args) -> Result<(String, HeaderValue)> {
    let req = Request::get(&args.auth_url)
        .header("x-auth-user", &args.user)
        .header("x-auth-key", &args.key)
        .body(Full::new(Bytes::new()))?;
    let resp = client
        .request(req)
        .await
        .with_context(|| format!("GET {}", args.auth_url))?;
    let status = resp.status();
    ensure!(status.is_success(), "auth failed: status {status}");
    let url = header_str(&resp, "x-storage-url")?;
    let token = HeaderValue::from_str(&header_str(&resp, "x-auth-token")?)?;
    drain(resp.into_body()).await?;
    Ok((url.trim_end_matches('/').to_string(), token))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("swift_ops: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    ensure!(
        args.objects > 0 && args.concurrency > 0,
        "--objects and --concurrency must be > 0"
    );
    let auth_uri: Uri = args.auth_url.parse().context("bad --auth-url")?;
    if auth_uri.scheme_str() != Some("http") {
        bail!("only http:// endpoints are supported");
    }
    let label = args.label.clone().unwrap_or_else(|| {
        auth_uri
            .authority()
            .map_or("swift".into(), |a| a.to_string())
    });
    let container = args
        .container
        .clone()
        .unwrap_or_else(|| format!("bench-{:016x}", rand::random::<u64>()));

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(args.concurrency)
        .build(connector);

    let (storage, token) = auth(&client, &args).await?;
    let cont_uri: Uri = format!("{storage}/{container}")
        .parse()
        .context("bad storage URL or container name")?;
    let uris = (0..args.objects)
        .map(|i| format!("{storage}/{container}/obj-{i:07}").parse::<Uri>())
        .collect::<Result<Vec<_>, _>>()?;
    let mut payload = vec![0u8; args.size];
    rand::thread_rng().fill_bytes(&mut payload);
    let timeout = Duration::from_secs(args.timeout);
    let ctx = Arc::new(Ctx {
        client,
        token,
        uris,
        payload: payload.into(),
        timeout,
    });

    let created = [StatusCode::CREATED, StatusCode::ACCEPTED];
    send(&ctx, Method::PUT, cont_uri.clone(), Bytes::new(), &created)
        .await
        .context("creating container")?;

    println!(
        "{:<16} {:<6} {:>7} {:>4} {:>6} {:>9} {:>8} {:>8} {:>6}",
        "label", "op", "size", "conc", "n", "ops/s", "p50_ms", "p99_ms", "errors"
    );
    let mut total_errors = 0;
    for &op in &args.phases {
        let name = op.spec().0;
        let r = phase(&ctx, op, args.concurrency).await?;
        let n = r.latencies.len();
        let errors: usize = r.errors.values().sum();
        let ops = n as f64 / r.secs;
        let (p50, p99) = (pct_ms(&r.latencies, 50.0), pct_ms(&r.latencies, 99.0));
        println!(
            "{label:<16} {:<6} {:>7} {:>4} {n:>6} {ops:>9.1} {p50:>8.2} {p99:>8.2} {errors:>6}",
            name,
            human_size(args.size),
            args.concurrency,
        );
        for (e, k) in &r.errors {
            eprintln!("  {name} error x{k}: {e}");
        }
        if args.json {
            let j = serde_json::json!({
                "label": label, "op": name, "size": args.size, "concurrency": args.concurrency,
                "n": n, "secs": round3(r.secs), "ops_per_s": round3(ops), "p50_ms": round3(p50),
                "p99_ms": round3(p99), "errors": errors,
            });
            println!("{j}");
        }
        total_errors += errors;
    }

    let deleted = [StatusCode::NO_CONTENT, StatusCode::NOT_FOUND];
    if args.phases.iter().any(|op| matches!(op, Op::Delete)) {
        if let Err(e) = send(&ctx, Method::DELETE, cont_uri, Bytes::new(), &deleted).await {
            eprintln!("warning: deleting container {container}: {e:#}");
        }
    }
    ensure!(total_errors == 0, "{total_errors} request(s) failed");
    Ok(())
}
