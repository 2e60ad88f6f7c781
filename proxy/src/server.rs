//! The public HTTP server: the router (the API table below), trans-ids, auth
//! identity, logs and metrics around every request.
//!
//! | path | handler |
//! |---|---|
//! | `GET /auth/v1.0`, `/auth/v1`, `/v1.0`, `/v1/<acct>/auth` | [`auth_handler`] |
//! | `/v1/<account>[/<container>[/<object>]]` | [`SwiftApi::handle`] |
//! | `GET /info` | [`info`] |
//! | `GET /metrics` | [`Metrics::render`] |
//! | `GET /healthcheck` | "OK" |

use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response};
use wire::body::{self, Body};
use wire::reply;
use tracing::{info, Instrument};

use crate::auth::{Identity, TokenReply};
use crate::error::ProxyError;
use crate::metrics::Metrics;
use crate::swift::{self, SwiftApi};

tokio::task_local! {
    /// The trans-id of the request being handled, passed on to the object servers
    /// so their log lines carry it too.
    pub static TRANS_ID: String;
}

pub struct Proxy {
    pub api: SwiftApi,
    pub metrics: Metrics,
}

/// Swift's trans-id: `tx` + 21 hex digits + `-` + the time in hex.
fn trans_id() -> String {
    let r: u128 = rand::random();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    format!("tx{:021x}-{now:010x}", r & ((1u128 << 84) - 1))
}

fn hstr<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

impl Proxy {
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let tx = trans_id();
        let start = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let keep_alive =
            hstr(&req, "connection").is_some_and(|v| v.eq_ignore_ascii_case("keep-alive"));
        let bytes_in = hstr(&req, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let span = tracing::info_span!("req", tx = %tx);
        let mut resp = TRANS_ID
            .scope(tx.clone(), self.route(req))
            .instrument(span.clone())
            .await
            .unwrap_or_else(ProxyError::into_response);
        if resp.status() == 401 && !resp.headers().contains_key("www-authenticate") {
            if let Ok(v) = HeaderValue::from_str(&format!("Swift realm=\"{}\"", realm(&path))) {
                resp.headers_mut().insert("www-authenticate", v);
            }
        }
        let h = resp.headers_mut();
        if keep_alive {
            // Echoed as Swift's eventlet server does for HTTP/1.0-style clients.
            h.insert("connection", HeaderValue::from_static("keep-alive"));
        }
        if let Ok(v) = HeaderValue::from_str(&tx) {
            h.insert("x-trans-id", v.clone());
            h.insert("x-openstack-request-id", v);
        }
        if !h.contains_key("content-length") && method == Method::HEAD {
            h.insert("content-length", HeaderValue::from(0));
        }
        let status = resp.status().as_u16();
        let bytes_out = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let took = start.elapsed();
        self.metrics
            .record(method.as_str(), status, bytes_in, bytes_out, took);
        span.in_scope(|| info!(%method, %path, status, ms = took.as_secs_f64() * 1000.0, "done"));
        resp
    }

    async fn route(&self, req: Request<Incoming>) -> Result<Response<Body>, ProxyError> {
        let path = req.uri().path();
        if path == "/v1" || path == "/v1/" {
            return Err(ProxyError::Text(412, "Bad URL".into()));
        }
        if path.starts_with("/v1/") && !is_v1_auth(path) {
            let id = self.identity(&req)?;
            return self.api.handle(req, id).await;
        }
        match path {
            "/auth/v1.0" | "/auth/v1.0/" | "/auth/v1" | "/v1.0" | "/auth" => {
                self.auth_handler(&req, None)
            }
            p if is_v1_auth(p) => {
                let acct = p
                    .trim_start_matches("/v1/")
                    .trim_end_matches("/auth")
                    .to_string();
                self.auth_handler(&req, Some(acct))
            }
            "/info" => info(&req),
            "/metrics" => Ok(Response::builder()
                .header("content-type", "text/plain; version=0.0.4")
                .body(body::full(self.metrics.render()))?),
            "/healthcheck" => Ok(Response::builder()
                .header("content-type", "text/plain")
                .body(body::full("OK"))?),
            _ => Err(ProxyError::Status(404)),
        }
    }

    /// The caller's identity from X-Auth-Token (or X-Storage-Token), plus
    /// X-Service-Token; 401 for a token that is not valid.
    fn identity(&self, req: &Request<Incoming>) -> Result<Identity, ProxyError> {
        let token = hstr(req, "x-auth-token").or_else(|| hstr(req, "x-storage-token"));
        match token {
            None => Ok(Identity::default()),
            Some(t) => self
                .api
                .auth
                .validate(t, hstr(req, "x-service-token"))
                .ok_or(ProxyError::Status(401)),
        }
    }

    fn auth_handler(
        &self,
        req: &Request<Incoming>,
        v1_account: Option<String>,
    ) -> Result<Response<Body>, ProxyError> {
        if req.method() != Method::GET {
            return Err(ProxyError::Status(405));
        }
        let mut user = hstr(req, "x-auth-user")
            .or_else(|| hstr(req, "x-storage-user"))
            .map(str::to_string);
        if let Some(acct) = &v1_account {
            // /v1/<acct>/auth accepts a bare X-Storage-User.
            if let Some(u) = hstr(req, "x-storage-user") {
                user = Some(if u.contains(':') {
                    u.to_string()
                } else {
                    format!("{acct}:{u}")
                });
            }
        }
        let key = hstr(req, "x-auth-key").or_else(|| hstr(req, "x-storage-pass"));
        match self.api.auth.get_token(user.as_deref(), key) {
            TokenReply::Ok {
                token,
                expires_in,
                account_id,
            } => {
                let host = hstr(req, "host").unwrap_or("127.0.0.1");
                let url = format!("http://{host}/v1/{account_id}");
                Ok(Response::builder()
                    .status(200)
                    .header("x-auth-token", &token)
                    .header("x-storage-token", &token)
                    .header("x-auth-token-expires", expires_in)
                    .header("x-storage-url", url)
                    .header("content-type", "text/plain; charset=UTF-8")
                    .header("content-length", 0)
                    .body(body::empty())?)
            }
            TokenReply::Denied { realm } => {
                let mut r = reply::status(401);
                if let Ok(v) = HeaderValue::from_str(&format!("Swift realm=\"{realm}\"")) {
                    r.headers_mut().insert("www-authenticate", v);
                }
                Ok(r)
            }
        }
    }
}

/// swob's realm for a 401: the account segment of `/v1/<account>/...` as sent
/// (percent-encoded), else "unknown".
fn realm(path: &str) -> String {
    let mut it = path.trim_start_matches('/').split('/');
    match (it.next(), it.next()) {
        (Some(_), Some(acct)) if !acct.is_empty() && acct != "v1.0" && acct != "auth" => {
            acct.to_string()
        }
        _ => "unknown".into(),
    }
}

fn is_v1_auth(p: &str) -> bool {
    p.starts_with("/v1/") && p.ends_with("/auth") && p.matches('/').count() == 3
}

/// `GET /info`: the cluster's capabilities and constraints, as Swift publishes them.
fn info(req: &Request<Incoming>) -> Result<Response<Body>, ProxyError> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return Err(ProxyError::Status(405));
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
    });
    let text = v.to_string();
    let len = text.len();
    let b = Response::builder()
        .header("content-type", "application/json; charset=UTF-8")
        .header("content-length", len);
    Ok(if req.method() == Method::HEAD {
        b.body(body::empty())?
    } else {
        b.body(body::full(text))?
    })
}
