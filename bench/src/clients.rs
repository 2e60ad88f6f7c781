//! clients: the internal hot path's HTTP client, measured. The proxy sends every
//! object request to a storage node through `wire::client` (hyper's pooled
//! client); this compares it with reqwest, the design card's HTTP client, on
//! the same requests: GETs of one 4 KiB object from an embedded storage node's
//! internal API, at the same concurrency, interleaved rounds, best round kept.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use clap::Parser;
use http_body_util::BodyExt;

#[derive(Parser)]
#[command(about = "hyper's pooled client (wire::client) vs reqwest on the proxy→node GET path")]
struct Args {
    /// GETs per round
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Rounds per client (interleaved; the best is printed)
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

#[derive(Clone)]
enum Client {
    Hyper(Box<wire::client::HttpClient>),
    Reqwest(reqwest::Client),
}

impl Client {
    async fn get(&self, url: &str) -> Result<usize> {
        match self {
            Client::Hyper(c) => {
                let req = http::Request::get(url).body(wire::body::empty())?;
                let resp = c.request(req).await?;
                ensure!(resp.status() == 200, "status {}", resp.status());
                Ok(resp.into_body().collect().await?.to_bytes().len())
            }
            Client::Reqwest(c) => {
                let resp = c.get(url).send().await?;
                ensure!(resp.status() == 200, "status {}", resp.status());
                Ok(resp.bytes().await?.len())
            }
        }
    }
}

/// One round: `n` GETs by `conc` workers; (ops/s, p50 ms, p99 ms).
async fn round(client: &Client, url: &str, n: usize, conc: usize) -> Result<(f64, f64, f64)> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = vec![];
    for _ in 0..conc {
        let (client, url, next) = (client.clone(), url.to_string(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = vec![];
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let t = Instant::now();
                let len = client.get(&url).await?;
                ensure!(len == 4096, "read {len} bytes");
                lat.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all: Vec<Duration> = vec![];
    for t in tasks {
        all.extend(t.await??);
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| all[((all.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0;
    Ok((n as f64 / secs, pct(0.5), pct(0.99)))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let node = object_server::start(object_server::ObjectServerConfig {
        bind: "127.0.0.1:0".into(),
        data_dir: dir.path().join("data"),
        fsync: false,
        ..Default::default()
    })
    .await?;
    let base = format!("http://{}", node.addr());
    let hyper = wire::client::http_client();
    // One container and one 4 KiB object, as the proxy would create them.
    let put = |path: String, body: Vec<u8>| {
        let hyper = hyper.clone();
        async move {
            let req = http::Request::put(path)
                .header("x-timestamp", wire::timestamp::Timestamp::now().to_string())
                .header("content-type", "application/octet-stream")
                .body(wire::body::full(body))?;
            let resp = hyper.request(req).await?;
            ensure!(resp.status().is_success(), "PUT: {}", resp.status());
            Ok::<_, anyhow::Error>(())
        }
    };
    put(
        format!("{base}{}", wire::container_path("AUTH_b", "c")),
        vec![],
    )
    .await?;
    put(
        format!("{base}{}", wire::object_path("AUTH_b", "c", "o")),
        vec![7u8; 4096],
    )
    .await?;
    let url = format!("{base}{}", wire::object_path("AUTH_b", "c", "o"));
    let clients = [
        (
            "hyper (wire::client)",
            Client::Hyper(Box::new(hyper.clone())),
        ),
        (
            "reqwest",
            Client::Reqwest(
                reqwest::Client::builder()
                    .pool_max_idle_per_host(64)
                    .tcp_nodelay(true)
                    .build()
                    .context("reqwest client")?,
            ),
        ),
    ];
    let mut best = vec![(0.0f64, 0.0f64, 0.0f64); clients.len()];
    for _ in 0..args.rounds {
        for (i, (_, c)) in clients.iter().enumerate() {
            let r = round(c, &url, args.requests, args.concurrency).await?;
            if r.0 > best[i].0 {
                best[i] = r;
            }
        }
    }
    println!(
        "{:<22} {:>10} {:>8} {:>8}   ({} GETs of 4 KiB from the node's internal API, c={}, best of {})",
        "client", "ops/s", "p50_ms", "p99_ms", args.requests, args.concurrency, args.rounds
    );
    for ((name, _), (ops, p50, p99)) in clients.iter().zip(&best) {
        println!("{name:<22} {ops:>10.0} {p50:>8.3} {p99:>8.3}");
    }
    node.stop().await;
    Ok(())
}
