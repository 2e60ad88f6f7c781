//! Crash safety: SIGKILL an object server while PUTs stream through the proxy,
//! restart it on the same data dir and address, and check that every acked write
//! survived whole, that unacked writes are either whole or absent, that no temp
//! file is left behind, and that the container listing holds every acked object.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tests::{md5_hex, ObjectServer, Server, Session};

const CONTAINER: &str = "crash";
const BODY_LEN: usize = 64 * 1024;
const WRITERS: usize = 8;
/// The object server is killed once this many PUTs were acked.
const ACKS_BEFORE_KILL: usize = 300;
/// Upper bound on PUTs started (the kill comes long before).
const MAX_PUTS: usize = 20_000;
const REQ_TIMEOUT: Duration = Duration::from_secs(30);

fn name(i: usize) -> String {
    format!("obj-{i:06}")
}

/// The body of object `i`: deterministic pseudo-random bytes (xorshift64*).
fn body(i: usize) -> Vec<u8> {
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(BODY_LEN + 8);
    while v.len() < BODY_LEN {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(BODY_LEN);
    v
}

struct Reply {
    status: u16,
    etag: String,
    body: Bytes,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// One request that reports transport failures instead of panicking (the harness's
/// client panics, and PUTs in flight at the kill are expected to fail).
async fn try_req(
    client: &HttpClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<Reply, String> {
    let mut b = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(
            HeaderName::from_bytes(k.as_bytes()).map_err(|e| e.to_string())?,
            HeaderValue::from_str(v).map_err(|e| e.to_string())?,
        );
    }
    let req = b.body(Full::new(body)).map_err(|e| e.to_string())?;
    let fut = async {
        let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
        let status = resp.status().as_u16();
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim_matches('"')
            .to_string();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e:?}"))?
            .to_bytes();
        Ok(Reply { status, etag, body })
    };
    tokio::time::timeout(REQ_TIMEOUT, fut)
        .await
        .map_err(|_| format!("no answer within {REQ_TIMEOUT:?}"))?
}

#[derive(Debug, Clone)]
enum Outcome {
    /// 201 with this ETag.
    Acked(String),
    /// Any other status, or a transport error.
    Failed(String),
}

/// Files in the object server's temp dir.
fn tmp_files(data: &Path) -> Vec<String> {
    match std::fs::read_dir(data.join("tmp")) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => vec![],
    }
}

/// Restarts the object server on exactly `addr`, retrying while the port is
/// briefly unavailable.
fn restart(data: &Path, addr: &str) -> ObjectServer {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut attempts = 0;
    loop {
        attempts += 1;
        // Probe first so that a busy port does not cost a panic inside the harness.
        if std::net::TcpListener::bind(addr).is_ok() {
            if let Ok(s) = std::panic::catch_unwind(|| ObjectServer::start(data, addr)) {
                assert_eq!(s.addr, addr, "restarted object server on another address");
                return s;
            }
        }
        assert!(
            Instant::now() < deadline,
            "could not restart the object server on {addr} ({attempts} attempts)"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_puts_loses_no_acked_write() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("node");
    let mut node = ObjectServer::start(&data, "127.0.0.1:0");
    let addr = node.addr.clone();
    let proxy = Server::proxy(std::slice::from_ref(&addr));
    let s = Session::new(&proxy, "test:tester", "testing").await;
    let r = s.req("PUT", &format!("/{CONTAINER}"), &[], "").await;
    assert!(r.status == 201 || r.status == 202, "container PUT: {r:?}");

    let client: HttpClient = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let outcomes: Arc<Mutex<BTreeMap<usize, Outcome>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = vec![];
    for _ in 0..WRITERS {
        let (client, outcomes, next, acked, in_flight, stop) = (
            client.clone(),
            outcomes.clone(),
            next.clone(),
            acked.clone(),
            in_flight.clone(),
            stop.clone(),
        );
        let (url, token) = (s.url.clone(), s.token.clone());
        writers.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= MAX_PUTS {
                    break;
                }
                let data = Bytes::from(body(i));
                let want = md5_hex(&data);
                in_flight.fetch_add(1, Ordering::SeqCst);
                let r = try_req(
                    &client,
                    Method::PUT,
                    &format!("{url}/{CONTAINER}/{}", name(i)),
                    &[
                        ("x-auth-token", &token),
                        ("content-type", "application/octet-stream"),
                    ],
                    data,
                )
                .await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                let o = match r {
                    Ok(r) if r.status == 201 => {
                        assert_eq!(r.etag, want, "ETag of acked PUT of {}", name(i));
                        acked.fetch_add(1, Ordering::SeqCst);
                        Outcome::Acked(r.etag)
                    }
                    Ok(r) => Outcome::Failed(format!("status {}", r.status)),
                    Err(e) => Outcome::Failed(e),
                };
                outcomes.lock().unwrap().insert(i, o);
            }
        }));
    }

    // Wait for enough acks, then kill while the node is mid-write (a temp file
    // exists) if that can be caught within a few seconds, and PUTs are in flight.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.load(Ordering::SeqCst) < ACKS_BEFORE_KILL {
        if Instant::now() >= deadline || writers.iter().all(|w| w.is_finished()) {
            let o = outcomes.lock().unwrap();
            let failures: Vec<_> = o
                .iter()
                .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
                .take(5)
                .collect();
            panic!(
                "only {} of {} PUTs acked before the kill; first failures: {failures:?}",
                acked.load(Ordering::SeqCst),
                o.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let catch_by = Instant::now() + Duration::from_secs(5);
    while Instant::now() < catch_by
        && (in_flight.load(Ordering::SeqCst) == 0 || tmp_files(&data).is_empty())
    {
        tokio::task::yield_now().await;
    }
    let busy_at_kill = tmp_files(&data).len();
    let in_flight_at_kill = in_flight.load(Ordering::SeqCst);
    node.kill();
    stop.store(true, Ordering::SeqCst);
    eprintln!(
        "killed object server after {} acks, {in_flight_at_kill} PUTs in flight, \
         {busy_at_kill} temp files",
        acked.load(Ordering::SeqCst)
    );
    for w in writers {
        tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .expect("a writer hung after the kill")
            .expect("writer panicked");
    }
    let outcomes = outcomes.lock().unwrap().clone();
    let n_acked = outcomes
        .values()
        .filter(|o| matches!(o, Outcome::Acked(_)))
        .count();
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for o in outcomes.values() {
        if let Outcome::Failed(why) = o {
            *reasons.entry(why.as_str()).or_default() += 1;
        }
    }
    eprintln!(
        "{} PUTs started, {n_acked} acked, {} not acked: {reasons:?}",
        outcomes.len(),
        outcomes.len() - n_acked
    );

    // Restart on the same data dir and address: the proxy's ring names it.
    let _node = restart(&data, &addr);
    let left = tmp_files(&data);
    assert!(
        left.is_empty(),
        "temp files left in {} after restart: {left:?}",
        data.join("tmp").display()
    );

    // Every acked object reads back whole; unacked ones are whole or absent.
    let mut unacked_present = 0;
    let mut read_status: BTreeMap<usize, u16> = BTreeMap::new();
    for (&i, o) in &outcomes {
        let r = try_req(
            &client,
            Method::GET,
            &format!("{}/{CONTAINER}/{}", s.url, name(i)),
            &[("x-auth-token", &s.token)],
            Bytes::new(),
        )
        .await
        .unwrap_or_else(|e| panic!("GET {} after restart: {e}", name(i)));
        read_status.insert(i, r.status);
        let want = body(i);
        match o {
            Outcome::Acked(etag) => {
                assert_eq!(r.status, 200, "acked object {} after restart", name(i));
                assert_eq!(&r.etag, etag, "ETag of acked object {}", name(i));
                assert!(
                    r.body[..] == want[..],
                    "acked object {} reads back {} bytes (md5 {}) instead of its {} bytes",
                    name(i),
                    r.body.len(),
                    md5_hex(&r.body),
                    want.len()
                );
            }
            Outcome::Failed(why) => match r.status {
                404 => {}
                200 => {
                    unacked_present += 1;
                    assert!(
                        r.body[..] == want[..] && r.etag == md5_hex(&want),
                        "unacked object {} ({why}) reads back {} bytes (md5 {}, ETag {}) \
                         instead of its {} bytes (md5 {})",
                        name(i),
                        r.body.len(),
                        md5_hex(&r.body),
                        r.etag,
                        want.len(),
                        md5_hex(&want)
                    );
                }
                st => panic!(
                    "unacked object {} ({why}): GET after restart gave {st}: {}",
                    name(i),
                    String::from_utf8_lossy(&r.body)
                ),
            },
        }
    }
    eprintln!("{unacked_present} unacked PUTs were stored whole");

    // The listing was updated before each ack.
    let mut listed: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut marker = String::new();
    for _ in 0..1000 {
        let r = try_req(
            &client,
            Method::GET,
            &format!(
                "{}/{CONTAINER}?format=json&limit=1000&marker={marker}",
                s.url
            ),
            &[("x-auth-token", &s.token)],
            Bytes::new(),
        )
        .await
        .unwrap_or_else(|e| panic!("container listing after restart: {e}"));
        assert_eq!(r.status, 200, "container listing after restart");
        let page: Vec<serde_json::Value> = serde_json::from_slice(&r.body).expect("JSON listing");
        let Some(last) = page.last() else { break };
        marker = last["name"].as_str().expect("name").to_string();
        for e in &page {
            listed.insert(
                e["name"].as_str().expect("name").to_string(),
                (
                    e["hash"].as_str().expect("hash").to_string(),
                    e["bytes"].as_u64().expect("bytes"),
                ),
            );
        }
    }
    for (&i, o) in &outcomes {
        if let Outcome::Acked(etag) = o {
            let row = listed.get(&name(i));
            assert_eq!(
                row,
                Some(&(etag.clone(), BODY_LEN as u64)),
                "listing row of acked object {}",
                name(i)
            );
        }
    }
    // Nothing is listed that was never written, and what is listed exists (the
    // listing update comes after the object is durably in place).
    for n in listed.keys() {
        let i: usize = n
            .strip_prefix("obj-")
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("unexpected object {n:?} listed"));
        assert!(outcomes.contains_key(&i), "{n} listed but never PUT");
        assert_eq!(read_status[&i], 200, "{n} is listed but does not read back");
    }
    let r = s.req("HEAD", &format!("/{CONTAINER}"), &[], "").await;
    assert_eq!(r.status, 204, "container HEAD after restart");
    assert_eq!(
        r.header("x-container-object-count"),
        listed.len().to_string(),
        "object count vs listing"
    );

    // The restarted node takes writes again.
    let data = Bytes::from(body(MAX_PUTS + 1));
    let r = s
        .req(
            "PUT",
            &format!("/{CONTAINER}/after-restart"),
            &[],
            data.clone(),
        )
        .await;
    assert_eq!(r.status, 201, "PUT after restart: {r:?}");
    let r = s
        .req("GET", &format!("/{CONTAINER}/after-restart"), &[], "")
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body == data, "object PUT after restart reads back wrong");
}
