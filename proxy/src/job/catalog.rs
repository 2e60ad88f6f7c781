//! The listings a job's wildcards need (`swift://~/c/*.txt`), read from
//! the real containers before compilation into a `sysmap` catalog. Each
//! listing is authorized as the caller's own container GET would be (an
//! account listing for a `*` in the container name): a job can expand a
//! wildcard only over what its caller may list (ZeroCloud listed without
//! authorization, spec §9 item 22).

use hyper::header::HeaderMap;
use hyper::Method;
use std::sync::Arc;
use sysmap::catalog::MemoryCatalog;
use sysmap::job::Job;
use sysmap::location::{Location, SwiftPath as JobPath};

use bytes::Bytes;
use wire::body::{self, Body};

use super::authorize::{swift_path, Fetched};
use crate::context::RequestCtx;
use crate::error::ProxyError;
use crate::storage::Target;
use crate::swift::SwiftApi;

/// Entries asked for per listing request.
const PAGE: usize = 10_000;

/// The catalog of every wildcard in `job`.
pub(super) async fn fill(
    api: &SwiftApi,
    ctx: &RequestCtx,
    job: &Job,
) -> Result<MemoryCatalog, ProxyError> {
    let mut catalog = MemoryCatalog::new();
    let limit = api.cfg.zerocloud.max_sessions as usize;
    for group in &job.groups {
        for dev in &group.devices {
            let Some(Location::Swift(p)) = &dev.path else {
                continue;
            };
            if !p.has_wildcard() || !dev.kind().access().readable() {
                continue;
            }
            let mut p = p.clone();
            p.expand_account(&ctx.path.account);
            if p.account.contains('*') {
                // Refused by the compiler with its own message.
                continue;
            }
            let Some(c) = p.container.clone() else {
                continue;
            };
            let containers = if c.contains('*') {
                let account = JobPath::new(&p.account, None, None);
                api.authorize(ctx, &Method::GET, &swift_path(&account), None)
                    .await?;
                let prefix = c.split('*').next().unwrap_or("");
                let names = list(api, ctx, Target::Account(&p.account), prefix, limit).await?;
                for name in &names {
                    catalog = catalog.with_container(&p.account, name);
                }
                names
                    .into_iter()
                    .filter(|n| sysmap::catalog::glob::matches(&c, n))
                    .collect()
            } else {
                vec![c]
            };
            let mask = p.object.clone().unwrap_or_default();
            let prefix = mask.split('*').next().unwrap_or("").to_string();
            for c in containers {
                let cp = JobPath::new(&p.account, Some(&c), None);
                super::authorize::check(api, ctx, &cp, &Method::GET).await?;
                let Some(names) =
                    list_or_missing(api, ctx, Target::Container(&p.account, &c), &prefix, limit)
                        .await?
                else {
                    continue;
                };
                catalog = catalog.with_container(&p.account, &c);
                for o in names {
                    catalog = catalog.with_object(&p.account, &c, &o);
                }
            }
        }
    }
    Ok(catalog)
}

async fn list(
    api: &SwiftApi,
    ctx: &RequestCtx,
    target: Target<'_>,
    prefix: &str,
    limit: usize,
) -> Result<Vec<String>, ProxyError> {
    Ok(list_or_missing(api, ctx, target, prefix, limit)
        .await?
        .unwrap_or_default())
}

/// Names under `target` starting with `prefix`, in listing order (at most
/// `limit` + 1: more is refused by the compiler anyway); `None` when the
/// container does not exist.
async fn list_or_missing(
    api: &SwiftApi,
    ctx: &RequestCtx,
    target: Target<'_>,
    prefix: &str,
    limit: usize,
) -> Result<Option<Vec<String>>, ProxyError> {
    let mut names: Vec<String> = Vec::new();
    let mut marker = String::new();
    loop {
        let Some(entries) = page(api, ctx, target, prefix, &marker).await? else {
            return Ok(None);
        };
        let n = entries.len();
        for e in entries {
            if let Some(name) = e.get("name").and_then(|v| v.as_str()) {
                marker = name.to_string();
                names.push(marker.clone());
            }
        }
        if n < PAGE || names.len() > limit {
            break;
        }
    }
    Ok(Some(names))
}

/// One page (at most [`PAGE`] entries) of `target`'s JSON listing after
/// `marker`, as the caller; `None` when it does not exist.
async fn page(
    api: &SwiftApi,
    ctx: &RequestCtx,
    target: Target<'_>,
    prefix: &str,
    marker: &str,
) -> Result<Option<Vec<serde_json::Value>>, ProxyError> {
    let query = {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("format", "json");
        q.append_pair("limit", &PAGE.to_string());
        if !prefix.is_empty() {
            q.append_pair("prefix", prefix);
        }
        if !marker.is_empty() {
            q.append_pair("marker", marker);
        }
        q.finish()
    };
    let resp = api
        .call(
            ctx,
            target,
            Method::GET,
            HeaderMap::new(),
            Some(&query),
            body::empty(),
        )
        .await?;
    match resp.status().as_u16() {
        404 => return Ok(None),
        401 => return Err(ProxyError::Unauthorized),
        403 => return Err(ProxyError::Forbidden),
        200 | 204 => {}
        s => return Err(ProxyError::Backend(format!("listing: status {s}"))),
    }
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .map_err(|e| ProxyError::Backend(format!("listing: {e}")))?
        .to_bytes();
    if bytes.is_empty() {
        return Ok(Some(Vec::new()));
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ProxyError::Backend(format!("listing: {e}")))
}

/// A container's whole listing as one JSON array (Swift's `format=json`
/// entries), read page by page as the caller: a container input's data on
/// a storage whose agents hold no container DBs (Swift). The first page
/// is read now (a missing container fails the job before anything runs),
/// the others as the session takes them.
pub(super) async fn fetch_listing(
    api: &Arc<SwiftApi>,
    ctx: &RequestCtx,
    p: &JobPath,
) -> Result<Fetched, ProxyError> {
    let (Some(c), None) = (p.container.clone(), &p.object) else {
        return Err(ProxyError::bad_request(format!(
            "{} is not a container",
            p.path()
        )));
    };
    let missing = || ProxyError::FetchFailed {
        status: 404,
        path: p.path(),
    };
    let first = page(api, ctx, Target::Container(&p.account, &c), "", "")
        .await?
        .ok_or_else(missing)?;
    /// What the stream sends next: a page (and whether the array has begun).
    enum Next {
        Page(Vec<serde_json::Value>, bool),
        Done,
    }
    let (api, ctx, account) = (api.clone(), ctx.clone(), p.account.clone());
    let pages = futures_util::stream::unfold(Next::Page(first, false), move |next| {
        let (api, ctx, account, c) = (api.clone(), ctx.clone(), account.clone(), c.clone());
        async move {
            let Next::Page(entries, begun) = next else {
                return None;
            };
            let mut out = vec![if begun { b',' } else { b'[' }];
            for (i, e) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(e.to_string().as_bytes());
            }
            if entries.len() >= PAGE {
                let marker = entries
                    .last()
                    .and_then(|e| e["name"].as_str())
                    .unwrap_or_default();
                let target = Target::Container(&account, &c);
                match page(&api, &ctx, target, "", marker).await {
                    Ok(Some(more)) if !more.is_empty() => {
                        return Some((Ok(Bytes::from(out)), Next::Page(more, true)))
                    }
                    Ok(_) => {}
                    Err(e) => return Some((Err(std::io::Error::other(e.to_string())), Next::Done)),
                }
            }
            out.push(b']');
            Some((Ok(Bytes::from(out)), Next::Done))
        }
    });
    Ok(Fetched {
        content_type: "application/json".into(),
        len: None,
        headers: Vec::new(),
        body: Body::from_stream(pages),
    })
}
