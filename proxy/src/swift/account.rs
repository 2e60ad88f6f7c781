//! `/v1/<account>`: listing and metadata. Account PUT and DELETE are refused,
//! as with Swift's default `allow_account_management = false`.

use std::sync::Arc;

use axum::extract::{Request, State};
use wire::body;

use super::headers::{backend_headers, client_response, ts_header, OWNER_HEADERS};
use super::{apply_removals, check_metadata, Res, SwiftApi, ACCOUNT_ACL_SYSMETA};
use crate::auth;
use crate::context::RequestCtx;
use crate::error::ProxyError;
use crate::storage::Target;

pub const METHODS: &str = "HEAD, GET, POST, OPTIONS";

/// GET/HEAD: the container listing and the account's metadata.
pub async fn get(State(api): State<Arc<SwiftApi>>, ctx: RequestCtx, req: Request) -> Res {
    let m = req.method().clone();
    let owner = api.authorize(&ctx, &m, &ctx.path, None).await?;
    let h = backend_headers(req.headers());
    let resp = api
        .call(
            &ctx,
            Target::Account(&ctx.path.account),
            m,
            h,
            req.uri().query(),
            body::empty(),
        )
        .await?;
    Ok(client_response(resp, owner))
}

/// POST: metadata, and for owners the account ACL.
pub async fn post(State(api): State<Arc<SwiftApi>>, ctx: RequestCtx, req: Request) -> Res {
    let m = req.method().clone();
    let owner = api.authorize(&ctx, &m, &ctx.path, None).await?;
    let mut h = backend_headers(req.headers());
    // Removals do not count towards the limits (Swift checks first).
    check_metadata(&h, "account")?;
    apply_removals(&mut h, "account");
    if let Some(v) = h.remove("x-account-access-control") {
        if !owner {
            return Err(ProxyError::Forbidden);
        }
        let s = v.to_str().unwrap_or("");
        if !s.is_empty() {
            auth::parse_account_acl(s).map_err(|e| {
                ProxyError::bad_request(format!(
                    "X-Account-Access-Control invalid: {e}\n\nInput: {s}\n"
                ))
            })?;
        }
        h.insert(ACCOUNT_ACL_SYSMETA, v);
    }
    if !owner {
        for k in OWNER_HEADERS {
            h.remove(*k);
        }
    }
    h.insert("x-timestamp", ts_header(api.next_ts()));
    let a = &ctx.path.account;
    let resp = api
        .call(&ctx, Target::Account(a), m, h, None, body::empty())
        .await?;
    api.forget_account(a);
    Ok(client_response(resp, owner))
}

/// Every other method: account management is off, as in a default Swift proxy.
pub async fn other() -> Res {
    Err(ProxyError::MethodNotAllowed { allow: METHODS })
}
