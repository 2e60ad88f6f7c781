//! `/v1/<account>/<container>`: object listings, container metadata and ACLs.

use std::sync::Arc;

use axum::extract::{Request, State};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::Method;
use wire::body;

use super::headers::{backend_headers, client_response, hstr, ts_header, OWNER_HEADERS};
use super::{apply_removals, check_metadata, Res, SwiftApi, MAX_CONTAINER_NAME_LENGTH};
use crate::auth;
use crate::context::RequestCtx;
use crate::error::{Name, OkOr, ProxyError};
use crate::storage::Target;

/// GET/HEAD: the object listing (the storage node formats it) and metadata.
pub async fn get(State(api): State<Arc<SwiftApi>>, ctx: RequestCtx, req: Request) -> Res {
    let m = req.method().clone();
    let (a, c) = (ctx.path.account.as_str(), ctx.path.c());
    let info = api.container_info(&ctx, a, c).await?;
    let acl = info.as_ref().and_then(|i| i.read_acl.clone());
    let owner = api.authorize(&ctx, &m, &ctx.path, acl.as_deref()).await?;
    if info.is_none() {
        return Err(ProxyError::NotFound);
    }
    let h = backend_headers(req.headers());
    let resp = api
        .call(
            &ctx,
            Target::Container(a, c),
            m,
            h,
            req.uri().query(),
            body::empty(),
        )
        .await?;
    Ok(client_response(resp, owner))
}

/// PUT (create, or update metadata) and POST (metadata, ACLs).
pub async fn put_or_post(State(api): State<Arc<SwiftApi>>, ctx: RequestCtx, req: Request) -> Res {
    let m = req.method().clone();
    let c = ctx.path.c();
    let owner = api.authorize(&ctx, &m, &ctx.path, None).await?;
    if m == Method::PUT && c.len() > MAX_CONTAINER_NAME_LENGTH {
        return Err(ProxyError::NameTooLong {
            kind: Name::Container,
            len: c.len(),
            max: MAX_CONTAINER_NAME_LENGTH,
        });
    }
    if let Some(policy) = hstr(req.headers(), "x-storage-policy") {
        if m == Method::PUT && !policy.is_empty() && !policy.eq_ignore_ascii_case("Policy-0") {
            return Err(ProxyError::bad_request(format!(
                "Invalid X-Storage-Policy '{policy}'"
            )));
        }
    }
    let mut h = backend_headers(req.headers());
    check_metadata(&h, "container")?;
    apply_removals(&mut h, "container");
    for name in ["x-container-read", "x-container-write"] {
        if let Some(v) = h.get(name) {
            let s = v.to_str().ok_or_bad_request("Invalid ACL")?;
            let cleaned = auth::clean_acl(name, s).map_err(ProxyError::bad_request)?;
            h.insert(
                name,
                HeaderValue::from_str(&cleaned).ok_or_bad_request("Invalid ACL")?,
            );
        }
    }
    if !owner {
        for k in OWNER_HEADERS {
            h.remove(*k);
        }
    }
    write(&api, &ctx, m, h, owner).await
}

pub async fn delete(State(api): State<Arc<SwiftApi>>, ctx: RequestCtx) -> Res {
    let owner = api
        .authorize(&ctx, &Method::DELETE, &ctx.path, None)
        .await?;
    write(&api, &ctx, Method::DELETE, HeaderMap::new(), owner).await
}

pub async fn other() -> Res {
    Err(ProxyError::MethodNotAllowed {
        allow: super::object::METHODS,
    })
}

/// Sends a container PUT/POST/DELETE (with a fresh timestamp) and drops the
/// cached info of that container.
async fn write(api: &SwiftApi, ctx: &RequestCtx, m: Method, mut h: HeaderMap, owner: bool) -> Res {
    let (a, c) = (ctx.path.account.as_str(), ctx.path.c());
    h.insert("x-timestamp", ts_header(api.next_ts()));
    let resp = api
        .call(ctx, Target::Container(a, c), m, h, None, body::empty())
        .await?;
    api.forget_container(a, c);
    Ok(client_response(resp, owner))
}
