//! Authorization of a job (spec/zerocloud.md §1.7), with the Swift API's
//! own ACL code: every object a session reads (the attached one, remote
//! inputs, the executable) as a GET with the container's read ACL, every
//! object it writes as a PUT with the write ACL, and the source object.
//! Everything is checked before anything is read or run, so a denied job
//! (403, 401 for an anonymous caller) has no effect at all.

use std::collections::BTreeSet;

use hyper::header::HeaderMap;
use hyper::Method;
use sysmap::location::{Location, SwiftPath as JobPath};
use sysmap::plan::{AttachMode, JobPlan};
use wire::body::{self, Body};

use crate::context::{RequestCtx, SwiftPath};
use crate::error::ProxyError;
use crate::storage::Target;
use crate::swift::SwiftApi;

/// The Swift path of a job path.
pub(super) fn swift_path(p: &JobPath) -> SwiftPath {
    SwiftPath {
        account: p.account.clone(),
        container: p.container.clone(),
        object: p.object.clone(),
    }
}

/// Checks `method` on `p` as the Swift API would: GET (HEAD) with the
/// container's read ACL, PUT with its write ACL. A write into a container
/// that does not exist is a 404 naming it.
pub(super) async fn check(
    api: &SwiftApi,
    ctx: &RequestCtx,
    p: &JobPath,
    method: &Method,
) -> Result<(), ProxyError> {
    let path = swift_path(p);
    // A storage whose auth decides (Swift) is asked as the caller, with
    // its own ACLs (docs/swift-backend.md).
    if api.storage.caller_credentials() {
        return match api.authorize(ctx, method, &path, None).await {
            Err(denied) if !setuid(api, ctx, p, method).await? => Err(denied),
            _ => Ok(()),
        };
    }
    let info = match &p.container {
        Some(c) => api.container_info(ctx, &p.account, c).await?,
        None => None,
    };
    let read = *method == Method::GET;
    let acl = info.as_ref().and_then(|i| {
        if read {
            i.read_acl.clone()
        } else {
            i.write_acl.clone()
        }
    });
    let allowed = api.authorize(ctx, method, &path, acl.as_deref()).await;
    if let Err(denied) = allowed {
        if !setuid(api, ctx, p, method).await? {
            return Err(denied);
        }
    }
    if !read && info.is_none() {
        if let Some(c) = &p.container {
            return Err(ProxyError::FetchFailed {
                status: 404,
                path: format!("/{}/{c}", p.account),
            });
        }
    }
    Ok(())
}

/// The setuid rule (spec/zerocloud.md §1.7), for an access the caller's
/// own rights do not give: it is allowed after all when the path's
/// container (for a path without one, the app's) names the very app this
/// job runs as its `Rest-Endpoint` and gives that app an ACL in
/// `Zerovm-Suid` that allows the access. Only the container's owner can
/// set either (container metadata), so an app gets exactly the rights its
/// owner gave it, on the containers the owner chose, and a caller gets
/// nothing beyond running that app. The containers' metas are read as the
/// proxy: the caller may not see them.
pub(super) async fn setuid(
    api: &SwiftApi,
    ctx: &RequestCtx,
    p: &JobPath,
    method: &Method,
) -> Result<bool, ProxyError> {
    let Some(source) = &ctx.app_source else {
        return Ok(false);
    };
    // In front of Swift the rule needs a user of its own to lend.
    if api.storage.caller_credentials() && api.storage.setuid_login().is_none() {
        return Ok(false);
    }
    let container = match &p.container {
        Some(c) => Some((p.account.clone(), c.clone())),
        None => app_container(ctx),
    };
    let Some((a, c)) = container else {
        return Ok(false);
    };
    let Some(info) = api.container_info_as_proxy(ctx, &a, &c).await? else {
        return Ok(false);
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    match (&info.zerovm_suid, &info.rest_endpoint) {
        (Some(acl), Some(endpoint))
            if !acl.trim().is_empty() && decode(endpoint.trim()) == decode(source) =>
        {
            api.setuid_allows(ctx, method, &swift_path(p), acl).await
        }
        _ => Ok(false),
    }
}

/// The account and container of the app `ctx` runs, when it is stored in
/// the request's account (another account's metas grant nothing here).
fn app_container(ctx: &RequestCtx) -> Option<(String, String)> {
    let source = ctx.app_source.as_deref()?;
    match Location::parse(source)? {
        Location::Swift(p) if p.account == ctx.path.account => Some((p.account, p.container?)),
        _ => None,
    }
}

/// Every access of a compiled job, each checked once.
pub(super) async fn job(
    api: &SwiftApi,
    ctx: &RequestCtx,
    plan: &JobPlan,
) -> Result<(), ProxyError> {
    let mut reads: BTreeSet<JobPath> = BTreeSet::new();
    let mut writes: BTreeSet<JobPath> = BTreeSet::new();
    for node in &plan.nodes {
        if let (Some(target), Some(_)) = (&node.placement.target, node.attached_channel()) {
            match node.placement.attach {
                AttachMode::Read => {
                    reads.insert(target.clone());
                }
                AttachMode::Write => {
                    writes.insert(target.clone());
                }
                AttachMode::None => {}
            }
        }
        for ch in node.remote_reads() {
            if let Some(p) = ch.swift_path() {
                reads.insert(p.clone());
            }
        }
        for ch in node.remote_writes() {
            if let Some(p) = ch.swift_path() {
                writes.insert(p.clone());
            }
        }
        if let Location::Swift(p) = &node.exe {
            reads.insert(p.clone());
        }
    }
    for p in &reads {
        check(api, ctx, p, &Method::GET).await?;
    }
    for p in &writes {
        check(api, ctx, p, &Method::PUT).await?;
    }
    Ok(())
}

/// A stored object opened for reading: its type, length and body.
pub(super) struct Fetched {
    pub content_type: String,
    pub len: Option<u64>,
    /// What a session attached to it sees of its metadata (`LOCAL_*`):
    /// `ETag`, `X-Timestamp`, `Content-Encoding`, `X-Object-Meta-*`.
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

/// GETs an object the job reads through the proxy (authorized before):
/// a status other than 200 is the job's error (`Error 404 Not Found while
/// fetching /a/c/o`).
pub(super) async fn fetch(
    api: &SwiftApi,
    ctx: &RequestCtx,
    p: &JobPath,
) -> Result<Fetched, ProxyError> {
    let (Some(c), Some(o)) = (&p.container, &p.object) else {
        return Err(ProxyError::bad_request(format!(
            "Cannot use container {} as a remote object reference",
            p.path()
        )));
    };
    let resp = api
        .call(
            ctx,
            Target::Object(&p.account, c, o),
            Method::GET,
            HeaderMap::new(),
            None,
            body::empty(),
        )
        .await?;
    if resp.status() != 200 {
        return Err(ProxyError::FetchFailed {
            status: resp.status().as_u16(),
            path: p.path(),
        });
    }
    let h = resp.headers();
    let content_type = h
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let len = h
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let headers = h
        .iter()
        .filter(|(k, _)| k.as_str() != "content-type" && wire::exec::is_local_metadata(k.as_str()))
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    Ok(Fetched {
        content_type,
        len,
        headers,
        body: resp.into_body(),
    })
}

/// The `X-Zerovm-Source` object: authorized as a GET, then fetched.
pub(super) async fn fetch_source(
    api: &SwiftApi,
    ctx: &RequestCtx,
    p: &JobPath,
) -> Result<Fetched, ProxyError> {
    check(api, ctx, p, &Method::GET).await?;
    fetch(api, ctx, p).await
}
