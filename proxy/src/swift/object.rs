//! `/v1/<account>/<container>/<object>`: object data and metadata. Copies are in
//! `copy.rs`, manifests' concatenated reads in `dlo.rs`.

use std::sync::Arc;

use axum::extract::{Request, State};
use hyper::Method;
use wire::body::{self, Body};
use wire::timestamp::Timestamp;

use super::headers::{backend_headers, client_response, put_response, ts_header};
use super::{check_metadata, copy, delete_at_headers, validate_object_put, Res, SwiftApi};
use crate::context::RequestCtx;
use crate::error::ProxyError;
use crate::storage::Target;

pub const METHODS: &str = "HEAD, GET, PUT, POST, COPY, OPTIONS, DELETE";

/// The container must exist and the caller may read (GET/HEAD) or write it.
async fn authorize(api: &SwiftApi, ctx: &RequestCtx, m: &Method) -> Result<(), ProxyError> {
    let info = api
        .container_info(ctx, &ctx.path.account, ctx.path.c())
        .await?;
    let read = matches!(*m, Method::GET | Method::HEAD);
    let acl = info.as_ref().and_then(|i| {
        if read {
            i.read_acl.clone()
        } else {
            i.write_acl.clone()
        }
    });
    api.authorize(ctx, m, &ctx.path, acl.as_deref()).await?;
    if info.is_none() {
        return Err(ProxyError::NotFound);
    }
    Ok(())
}

fn target(ctx: &RequestCtx) -> Target<'_> {
    Target::Object(&ctx.path.account, ctx.path.c(), ctx.path.o())
}

/// GET/HEAD: the object, or a DLO manifest's segments concatenated.
pub async fn get(State(api): State<Arc<SwiftApi>>, ctx: RequestCtx, req: Request) -> Res {
    let m = req.method().clone();
    authorize(&api, &ctx, &m).await?;
    let h = backend_headers(req.headers());
    let resp = api
        .call(&ctx, target(&ctx), m.clone(), h, None, body::empty())
        .await?;
    let want_manifest = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "multipart-manifest=get"));
    if resp.headers().contains_key("x-object-manifest") && !want_manifest {
        let resp = api.dlo_response(&ctx, &m, req.headers(), resp).await?;
        return Ok(client_response(resp, false));
    }
    Ok(client_response(resp, false))
}

/// PUT: an upload, validated as Swift's `check_object_creation` and streamed to
/// the storage; or, with `X-Copy-From`, a server-side copy.
pub async fn put(State(api): State<Arc<SwiftApi>>, ctx: RequestCtx, req: Request) -> Res {
    if req.headers().contains_key("x-copy-from") {
        return copy::put_from(&api, &ctx, req.headers()).await;
    }
    authorize(&api, &ctx, &Method::PUT).await?;
    let (parts, body) = req.into_parts();
    let mut h = backend_headers(&parts.headers);
    validate_object_put(&mut h, ctx.path.o(), Timestamp::now().secs())?;
    h.insert("x-timestamp", ts_header(api.next_ts()));
    let resp = api
        .call(&ctx, target(&ctx), Method::PUT, h, None, Body::new(body))
        .await?;
    Ok(put_response(resp))
}

/// POST: replaces the object's metadata and expiry.
pub async fn post(State(api): State<Arc<SwiftApi>>, ctx: RequestCtx, req: Request) -> Res {
    authorize(&api, &ctx, &Method::POST).await?;
    let mut h = backend_headers(req.headers());
    check_metadata(&h, "object")?;
    delete_at_headers(&mut h, Timestamp::now().secs())?;
    h.insert("x-timestamp", ts_header(api.next_ts()));
    let resp = api
        .call(&ctx, target(&ctx), Method::POST, h, None, body::empty())
        .await?;
    Ok(client_response(resp, false))
}

pub async fn delete(State(api): State<Arc<SwiftApi>>, ctx: RequestCtx, req: Request) -> Res {
    authorize(&api, &ctx, &Method::DELETE).await?;
    let mut h = backend_headers(req.headers());
    h.insert("x-timestamp", ts_header(api.next_ts()));
    let resp = api
        .call(&ctx, target(&ctx), Method::DELETE, h, None, body::empty())
        .await?;
    Ok(client_response(resp, false))
}

/// COPY (to `Destination`); any other method is refused.
pub async fn other(State(api): State<Arc<SwiftApi>>, ctx: RequestCtx, req: Request) -> Res {
    if req.method().as_str() == "COPY" {
        return copy::copy_method(&api, &ctx, req.headers()).await;
    }
    Err(ProxyError::MethodNotAllowed { allow: METHODS })
}
