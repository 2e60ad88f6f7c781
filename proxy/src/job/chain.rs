//! What happens after a job answers: chaining (spec/zerocloud.md §3.7) and
//! deferred jobs (§4.5).
//!
//! **Chaining.** A job whose response carries `X-Zerovm-Execute` and is of
//! type exactly `application/json` (a program's `message/http` or
//! `message/cgi` answer with those headers) asks for a child job: its body
//! is POSTed as a JSON job to the caller's account, as the same caller (the
//! same identity; the same app for the setuid rule, as ZeroCloud did), and
//! its response is the answer, which may chain again. A chain ends with
//! 408 `Job chain exceeded chain_timeout of <n> s` once its jobs took
//! `chain_timeout` in all (ZeroCloud returned the last job's JSON as if it
//! were the answer), with 508 `Job chain longer than chain_depth (<n>)`
//! past `chain_depth` jobs, and with 413 when a child job is larger than
//! `maxconfig`. The answer carries `X-Chain-Total-Time` (seconds, all the
//! chain's jobs). The caller's request body is not passed on to the child
//! jobs (ZeroCloud gave unread bytes to the first child with a `stdin`).
//! A child job's request carries the caller's `Host`, `User-Agent`,
//! `Referer` and `Origin` (what Swift's `make_env` copied into ZeroCloud's
//! chained requests), so its program sees the same `HTTP_HOST`.
//!
//! **Deferred.** `X-Zerovm-Deferred: always` answers at once (200, the
//! body `swift://<account>/<container>/<object>`: the URL's container or
//! `.zvm`, the URL's object or `job-<random>`; for the app forms, whose URL
//! names the app or its data, always `.zvm/job-<random>`); `auto` answers
//! so when the
//! job has not ended within `timeout` + 1 s. The job runs on; its answer's
//! body is stored as that object (the container created when missing) and
//! its headers, with `Status`, as a JSON object in `<object>.headers`, so
//! a client polls for `<object>.headers`. A job in flight when the proxy
//! stops is lost: the proxy holds it, and nothing is written (a poller sees
//! 404 for good); the storage nodes end its sessions when the proxy goes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use http_body_util::BodyExt;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Response};
use wire::body::{self, Body};

use super::{Asked, EXECUTE};
use crate::context::RequestCtx;
use crate::error::ProxyError;
use crate::storage::Target;
use crate::swift::headers::hstr;
use crate::swift::{Res, SwiftApi};

/// The app a job ran (its setuid context), kept on its response for the
/// jobs it chains to.
#[derive(Debug, Clone)]
pub(super) struct RanApp(pub Option<String>);

/// The caller's headers a chained job's request carries (see the module doc).
const INHERITED: [&str; 4] = ["host", "user-agent", "referer", "origin"];

/// The headers of the caller's request `h` that its chained jobs inherit.
pub(super) fn inherited(h: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in INHERITED {
        if let Some(v) = h.get(name) {
            out.insert(name, v.clone());
        }
    }
    out
}

/// Whether a job's response asks for a child job.
fn wants_child(resp: &Response<Body>) -> bool {
    resp.headers().contains_key(EXECUTE)
        && hstr(resp.headers(), "content-type").is_some_and(|t| t.trim() == "application/json")
}

/// Runs `first` and the jobs it chains to (their requests with the
/// `inherited` headers); the last one's response, with `X-Chain-Total-Time`.
pub(super) async fn run<F>(
    api: &Arc<SwiftApi>,
    ctx: &RequestCtx,
    inherited: &HeaderMap,
    first: F,
) -> Res
where
    F: std::future::Future<Output = Res>,
{
    let cfg = &api.cfg.zerocloud;
    let started = Instant::now();
    let mut resp = first.await?;
    let mut jobs = 1u32;
    while wants_child(&resp) {
        let limit = Duration::from_secs(cfg.chain_timeout);
        if started.elapsed() >= limit {
            return Err(ProxyError::Timeout(format!(
                "Job chain exceeded chain_timeout of {} s after {jobs} jobs",
                cfg.chain_timeout
            )));
        }
        if jobs >= cfg.chain_depth {
            return Err(ProxyError::ChainTooLong(format!(
                "Job chain longer than chain_depth ({})",
                cfg.chain_depth
            )));
        }
        let app = resp.extensions().get::<RanApp>().and_then(|a| a.0.clone());
        let maxconfig = cfg.maxconfig;
        let mut job = Vec::new();
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ProxyError::Backend(format!("a chained job: {e}")))?;
            if let Ok(data) = frame.into_data() {
                job.extend_from_slice(&data);
                if job.len() > maxconfig {
                    return Err(ProxyError::ConfigTooLarge(format!(
                        "Chained job larger than maxconfig ({maxconfig} bytes)"
                    )));
                }
            }
        }
        let mut child = ctx.clone();
        child.path.container = None;
        child.path.object = None;
        child.app_source = app;
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(format!("/v1/{}", wire::enc(&ctx.path.account)))
            .header(EXECUTE, "1.0")
            .header("content-type", "application/json")
            .header("content-length", job.len())
            .body(axum::body::Body::from(job))
            .map_err(|e| ProxyError::Internal(format!("a chained job: {e}")))?;
        req.headers_mut().extend(inherited.clone());
        jobs += 1;
        let left = limit.saturating_sub(started.elapsed());
        resp =
            match tokio::time::timeout(left, super::post_job(api, &child, req, "1.0", Asked::POST))
                .await
            {
                Ok(r) => r?,
                Err(_) => {
                    return Err(ProxyError::Timeout(format!(
                        "Job chain exceeded chain_timeout of {} s after {jobs} jobs",
                        cfg.chain_timeout
                    )))
                }
            };
    }
    if let Ok(v) = HeaderValue::from_str(&format!("{:.3}", started.elapsed().as_secs_f64())) {
        resp.headers_mut().insert("x-chain-total-time", v);
    }
    Ok(resp)
}

/// How a job may be deferred (`X-Zerovm-Deferred`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Deferred {
    Never,
    Always,
    Auto,
}

impl Deferred {
    pub(super) fn of(h: &HeaderMap) -> Deferred {
        match hstr(h, "x-zerovm-deferred").map(|v| v.trim().to_ascii_lowercase()) {
            Some(v) if v == "always" => Deferred::Always,
            Some(v) if v == "auto" => Deferred::Auto,
            _ => Deferred::Never,
        }
    }
}

/// Runs `job` deferred (see the module doc): the place of its result now
/// (or, for `auto`, its answer if it ends in time).
pub(super) async fn deferred<F>(
    api: Arc<SwiftApi>,
    ctx: RequestCtx,
    how: Deferred,
    place_from_url: bool,
    job: F,
) -> Res
where
    F: std::future::Future<Output = Res> + Send + 'static,
{
    let account = ctx.path.account.clone();
    let from_url = |p: &Option<String>| p.clone().filter(|_| place_from_url);
    let container = from_url(&ctx.path.container).unwrap_or_else(|| ".zvm".into());
    let object = from_url(&ctx.path.object)
        .unwrap_or_else(|| format!("job-{:032x}", rand::random::<u128>()));
    // The result can be stored, or nothing runs.
    let result = crate::context::SwiftPath {
        account: account.clone(),
        container: Some(container.clone()),
        object: Some(object.clone()),
    };
    api.authorize(&ctx, &Method::PUT, &result, None).await?;
    let (tx, rx) = tokio::sync::oneshot::channel::<Response<Body>>();
    let store_api = api.clone();
    tokio::spawn(async move {
        let resp = job.await.unwrap_or_else(ProxyError::into_response);
        if let Err(resp) = tx.send(resp) {
            store(&store_api, &ctx, &container, &object, resp).await;
        }
    });
    if how == Deferred::Auto {
        let wait = Duration::from_secs(api.cfg.zerocloud.timeout + 1);
        let mut rx = rx;
        if let Ok(Ok(resp)) = tokio::time::timeout(wait, &mut rx).await {
            return Ok(resp);
        }
    }
    let place = format!("swift://{}/{}/{}", result.account, result.c(), result.o());
    let mut r = wire::reply::text(200, place);
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("text/plain"));
    Ok(r)
}

/// Stores a deferred job's answer: the body as `<container>/<object>`, the
/// headers and status as JSON in `<object>.headers`.
async fn store(
    api: &SwiftApi,
    ctx: &RequestCtx,
    container: &str,
    object: &str,
    resp: Response<Body>,
) {
    let a = &ctx.path.account;
    let mut headers = serde_json::Map::new();
    for (k, v) in resp.headers() {
        if let Ok(v) = v.to_str() {
            headers.insert(k.as_str().to_string(), v.into());
        }
    }
    headers.insert("status".into(), resp.status().as_u16().into());
    // The container, if it is missing.
    let _ = api
        .call(
            ctx,
            Target::Container(a, container),
            Method::PUT,
            HeaderMap::new(),
            None,
            body::empty(),
        )
        .await;
    let mut h = HeaderMap::new();
    if let Some(ct) = resp.headers().get("content-type") {
        h.insert("content-type", ct.clone());
    }
    // Streamed when its length is known (a job's answer always has one).
    let data = match resp.headers().get("content-length").cloned() {
        Some(len) => {
            h.insert("content-length", len);
            resp.into_body()
        }
        None => {
            let bytes = match resp.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => bytes::Bytes::new(),
            };
            h.insert("content-length", bytes.len().into());
            body::full(bytes)
        }
    };
    h.insert(
        "x-timestamp",
        crate::swift::headers::ts_header(api.next_ts()),
    );
    let put = api
        .call(
            ctx,
            Target::Object(a, container, object),
            Method::PUT,
            h,
            None,
            data,
        )
        .await;
    report(ctx, &format!("/{a}/{container}/{object}"), put);
    let json = serde_json::Value::Object(headers).to_string();
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("content-length", json.len().into());
    h.insert(
        "x-timestamp",
        crate::swift::headers::ts_header(api.next_ts()),
    );
    let name = format!("{object}.headers");
    let put = api
        .call(
            ctx,
            Target::Object(a, container, &name),
            Method::PUT,
            h,
            None,
            body::full(json),
        )
        .await;
    report(ctx, &format!("/{a}/{container}/{name}"), put);
}

/// Logs a deferred result that could not be stored: nobody waits for it.
fn report(ctx: &RequestCtx, path: &str, put: Res) {
    let status = match put {
        Ok(r) if r.status().is_success() => return,
        Ok(r) => r.status().to_string(),
        Err(e) => e.to_string(),
    };
    tracing::warn!(tx = %ctx.trans_id.as_str(), %path, %status, "a deferred job's result was not stored");
}
