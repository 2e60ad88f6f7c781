//! The routes outside `/v1/<account>`: TempAuth's token endpoints, `/info`,
//! `/metrics` and `/healthcheck`.

use std::sync::Arc;

use axum::extract::{Request, State};
use hyper::header::HeaderValue;
use hyper::{Method, Response};
use wire::body::{self, Body};
use wire::reply;

use crate::auth::TokenReply;
use crate::metrics::Metrics;
use crate::router::is_v1_auth;
use crate::swift::headers::hstr;
use crate::swift::{self, SwiftApi};

/// `GET /auth/v1.0` (and its aliases): a token for X-Auth-User/X-Auth-Key.
pub async fn token(State(api): State<Arc<SwiftApi>>, req: Request) -> Response<Body> {
    token_for(&api, &req)
}

/// TempAuth's token answer; for `/v1/<account>/auth` a bare X-Storage-User
/// is taken as `<account>:<user>`.
pub fn token_for(api: &SwiftApi, req: &Request) -> Response<Body> {
    if req.method() != Method::GET {
        return reply::status(405);
    }
    let path = req.uri().path();
    let v1_account = is_v1_auth(path).then(|| {
        path.trim_start_matches("/v1/")
            .trim_end_matches("/auth")
            .to_string()
    });
    let mut user = hstr(req.headers(), "x-auth-user")
        .or_else(|| hstr(req.headers(), "x-storage-user"))
        .map(str::to_string);
    if let Some(acct) = &v1_account {
        if let Some(u) = hstr(req.headers(), "x-storage-user") {
            user = Some(if u.contains(':') {
                u.to_string()
            } else {
                format!("{acct}:{u}")
            });
        }
    }
    let key = hstr(req.headers(), "x-auth-key").or_else(|| hstr(req.headers(), "x-storage-pass"));
    match api.auth.get_token(user.as_deref(), key) {
        TokenReply::Ok {
            token,
            expires_in,
            account_id,
        } => {
            let host = hstr(req.headers(), "host").unwrap_or("127.0.0.1");
            let url = format!("http://{host}/v1/{account_id}");
            Response::builder()
                .status(200)
                .header("x-auth-token", &token)
                .header("x-storage-token", &token)
                .header("x-auth-token-expires", expires_in)
                .header("x-storage-url", url)
                .header("content-type", "text/plain; charset=UTF-8")
                .header("content-length", 0)
                .body(body::empty())
                .unwrap_or_else(|_| reply::status(500))
        }
        TokenReply::Denied { realm } => {
            let mut r = reply::status(401);
            if let Ok(v) = HeaderValue::from_str(&format!("Swift realm=\"{realm}\"")) {
                r.headers_mut().insert("www-authenticate", v);
            }
            r
        }
    }
}

/// `GET /info`: the cluster's capabilities and constraints, as Swift publishes
/// them, and what jobs may do (`zerocloud`, the options of spec §5 that apply).
pub async fn info(State(api): State<Arc<SwiftApi>>, req: Request) -> Response<Body> {
    let z = &api.cfg.zerocloud;
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return reply::status(405);
    }
    let v = serde_json::json!({
        "swift": {
            "version": concat!("zerocloud-", env!("CARGO_PKG_VERSION")),
            "max_file_size": swift::MAX_FILE_SIZE,
            "max_meta_name_length": swift::MAX_META_NAME_LENGTH,
            "max_meta_value_length": swift::MAX_META_VALUE_LENGTH,
            "max_meta_count": swift::MAX_META_COUNT,
            "max_meta_overall_size": swift::MAX_META_OVERALL_SIZE,
            "max_header_size": swift::MAX_HEADER_SIZE,
            "max_object_name_length": swift::MAX_OBJECT_NAME_LENGTH,
            "container_listing_limit": swift::CONTAINER_LISTING_LIMIT,
            "account_listing_limit": swift::ACCOUNT_LISTING_LIMIT,
            "max_account_name_length": swift::MAX_ACCOUNT_NAME_LENGTH,
            "max_container_name_length": swift::MAX_CONTAINER_NAME_LENGTH,
            "extra_header_count": 0,
            "valid_api_versions": ["v1", "v1.0"],
            "strict_cors_mode": true,
            "allow_account_management": false,
            "account_autocreate": true,
            "policies": [{"name": "Policy-0", "default": true}],
        },
        "tempauth": {"account_acls": true},
        "zerocloud": zerocloud_info(z),
    });
    let text = v.to_string();
    let b = Response::builder()
        .header("content-type", "application/json; charset=UTF-8")
        .header("content-length", text.len());
    let body = if req.method() == Method::HEAD {
        body::empty()
    } else {
        body::full(text)
    };
    b.body(body).unwrap_or_else(|_| reply::status(500))
}

/// What jobs may do, as `/info` says it (`zerocloud`): ours, or added to
/// an OpenStack Swift's own `/info` in front of it.
pub fn zerocloud_info(z: &crate::config::JobConfig) -> serde_json::Value {
    serde_json::json!({
        "execute_versions": ["1.0"],
        "timeout": z.timeout,
        "maxconfig": z.maxconfig,
        "max_sessions": z.max_sessions,
        "default_content_type": z.default_content_type,
        "max_upload_time": z.max_upload_time,
        "client_timeout": z.client_timeout,
        "request_forms": ["application/json", "application/x-tar", "application/x-gzip", "script"],
        "system_images": ["python", "python3", "python2.7"],
    })
}

pub async fn metrics(State(m): State<Arc<Metrics>>) -> Response<Body> {
    Response::builder()
        .header("content-type", "text/plain; version=0.0.4")
        .body(body::full(m.render()))
        .unwrap_or_else(|_| reply::status(500))
}

pub async fn healthcheck() -> Response<Body> {
    Response::builder()
        .header("content-type", "text/plain")
        .body(body::full("OK"))
        .unwrap_or_else(|_| reply::status(500))
}
