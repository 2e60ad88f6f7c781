//! `api/1.0` (spec/zerocloud.md §1.5): REST endpoints served by apps. A
//! request on `/api/<account>/<container>[/<path>]` (or the `/v1/` path
//! with `X-Zerovm-Execute: api/1.0`) runs the app the container names in
//! `X-Container-Meta-Rest-Endpoint` (a `swift://account/container/object`
//! URL, taken as written: no `~`), a zapp or a JSON job, as a job sourced
//! from it: the request body goes to its path-less `stdin`, and the
//! program sees the caller's method, `PATH_INFO=/<account>/<container>/<path>`
//! and `REQUEST_URI` as asked. A program answering with `message/http` or
//! `message/cgi` output sets the response's status and headers. When the
//! endpoint is neither a zapp nor a JSON job, a GET of an object opens it
//! as `open/1.0` would (its type's app from `.zvm`); other requests get 501.

use std::sync::Arc;

use axum::extract::Request;
use hyper::Method;
use sysmap::location::Location;

use super::intake::Form;
use super::open::{is_zapp, open_get, read_head, set_source, Head};
use super::{post_job, Asked};
use crate::context::RequestCtx;
use crate::error::ProxyError;
use crate::swift::{Res, SwiftApi};

/// The execute version of this form.
pub const VERSION: &str = "api/1.0";

/// An `api/1.0` request (see the module doc).
pub(super) async fn handle(api: &Arc<SwiftApi>, ctx: RequestCtx, req: Request) -> Res {
    let Some(c) = ctx.path.container.clone() else {
        return Err(ProxyError::precondition("Bad URL"));
    };
    let method = req.method().clone();
    if !matches!(
        method,
        Method::GET | Method::HEAD | Method::POST | Method::PUT | Method::DELETE
    ) {
        return Err(ProxyError::precondition("Bad HTTP method"));
    }
    let no_endpoint =
        || ProxyError::AppNotFound(format!("No API endpoint configured for container {c}"));
    let info = api
        .container_info_as_proxy(&ctx, &ctx.path.account, &c)
        .await?
        .ok_or_else(no_endpoint)?;
    let url = info.rest_endpoint.ok_or_else(no_endpoint)?;
    let decoded = percent_encoding::percent_decode_str(&url)
        .decode_utf8_lossy()
        .into_owned();
    let endpoint = match Location::parse(&decoded) {
        Some(Location::Swift(p)) if p.object.is_some() && p.account != "~" => p,
        _ => {
            return Err(ProxyError::bad_request(format!(
                "Invalid REST endpoint {decoded}: a swift://account/container/object URL is needed"
            )))
        }
    };
    // The endpoint is read as its own app (the setuid rule, §1.7).
    let ctx = ctx.running_app(Some(endpoint.url()));
    let head = match read_head(api, &ctx, &endpoint).await? {
        Head::Found(h) => h,
        Head::Answer(resp) => return Ok(resp),
    };
    let runnable = matches!(Form::of(&head.media), Form::Json)
        || is_zapp(&head, api.cfg.zerocloud.maxconfig.max(1))?;
    if !runnable {
        // Not an app: a GET of an object opens it (§1.4), others are 501.
        if method != Method::GET || ctx.path.object.is_none() {
            return Err(ProxyError::NotImplemented(format!(
                "The REST endpoint {decoded} is neither a zapp nor a JSON job"
            )));
        }
        let ctx = ctx.running_app(None);
        let object = sysmap::location::SwiftPath::new(
            &ctx.path.account,
            ctx.path.container.as_deref(),
            ctx.path.object.as_deref(),
        );
        return match read_head(api, &ctx, &object).await? {
            Head::Answer(resp) => Ok(resp),
            Head::Found(found) => open_get(api, ctx, req, &found.media).await,
        };
    }
    let (mut parts, body) = req.into_parts();
    parts.method = Method::POST;
    set_source(&mut parts.headers, &endpoint)?;
    let req = Request::from_parts(parts, body);
    let asked = Asked::app(&method, &req);
    post_job(api, &ctx, req, VERSION, asked).await
}
