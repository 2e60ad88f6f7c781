//! The proxy's request pipeline. [`Proxy::handle`] wraps every request: a
//! trans-id, the app forms' URLs (`/open/`, `/api/`), then the
//! [`Backend`] (`backend.rs`), then Swift's response headers, the log line
//! and metrics. For our own store ([`Embedded`]), [`route_embedded`] takes
//! `/v1/...` on: the caller's identity and the parsed path (a
//! [`RequestCtx`]), CORS, jobs, then the API table in [`api_table`].

use std::sync::Arc;
use std::time::Instant;

use axum::extract::FromRef;
use axum::routing::{any, get};
use axum::Router;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, Response};
use tower::ServiceExt;
use tracing::{info, Instrument};
use wire::body::Body;

use crate::auth::Identity;
use crate::backend::{Backend, Embedded, FromUpstream};
use crate::context::{RequestCtx, SwiftPath, TransId};
use crate::endpoints;
use crate::error::ProxyError;
use crate::metrics::Metrics;
use crate::swift::headers::hstr;
use crate::swift::{account, container, object, SwiftApi, MAX_ACCOUNT_NAME_LENGTH};

/// What handlers may take as `State`.
#[derive(Clone)]
pub struct AppState {
    pub api: Arc<SwiftApi>,
    pub metrics: Arc<Metrics>,
}

impl FromRef<AppState> for Arc<SwiftApi> {
    fn from_ref(s: &AppState) -> Self {
        s.api.clone()
    }
}

impl FromRef<AppState> for Arc<Metrics> {
    fn from_ref(s: &AppState) -> Self {
        s.metrics.clone()
    }
}

/// The API table: path shape and method → handler.
///
/// A `/v1` path is parsed once, by Swift's rules, into the request's
/// [`SwiftPath`] (a name may hold `/`, a trailing `/` names nothing: no
/// route pattern says that). The table then sees only its shape:
/// [`Shape::path`] replaces the request's path (its query stays), so the
/// `/v1` routes are literal paths (`{{...}}` is a brace, not a capture)
/// and handlers take their names from the [`RequestCtx`]. Captures would
/// cost the router eight allocations a request (docs/benchmarks.md).
///
/// One route is dispatched before the table, in [`route_embedded`]:
/// TempAuth's `GET /v1/<account>/auth` ([`endpoints::token`]), which would
/// otherwise shadow a container named `auth`.
pub fn api_table(state: AppState) -> Router {
    Router::new()
        .route("/auth/v1.0", any(endpoints::token))
        .route("/auth/v1.0/", any(endpoints::token))
        .route("/auth/v1", any(endpoints::token))
        .route("/auth", any(endpoints::token))
        .route("/v1.0", any(endpoints::token))
        .route("/info", any(endpoints::info))
        .route("/metrics", get(endpoints::metrics))
        .route("/healthcheck", get(endpoints::healthcheck))
        .route(
            "/v1/{{account}}",
            get(account::get)
                .head(account::get)
                .post(account::post)
                .fallback(account::other),
        )
        .route(
            "/v1/{{account}}/{{container}}",
            get(container::get)
                .head(container::get)
                .put(container::put_or_post)
                .post(container::put_or_post)
                .delete(container::delete)
                .fallback(container::other),
        )
        .route(
            "/v1/{{account}}/{{container}}/{{object}}",
            get(object::get)
                .head(object::get)
                .put(object::put)
                .post(object::post)
                .delete(object::delete)
                .fallback(object::other),
        )
        .fallback(|| async { ProxyError::NotFound })
        .with_state(state)
}

/// The three shapes of a `/v1` path, which the API table routes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Account,
    Container,
    Object,
}

impl Shape {
    pub fn of(p: &SwiftPath) -> Shape {
        match (&p.container, &p.object) {
            (None, _) => Shape::Account,
            (Some(_), None) => Shape::Container,
            (Some(_), Some(_)) => Shape::Object,
        }
    }

    /// The path the API table matches for this shape.
    pub fn path(self) -> &'static str {
        match self {
            Shape::Account => "/v1/{account}",
            Shape::Container => "/v1/{account}/{container}",
            Shape::Object => "/v1/{account}/{container}/{object}",
        }
    }

    /// The request's URI on its way to the table: the shape's path, with
    /// the request's query.
    fn uri(self, query: Option<&str>) -> Result<hyper::Uri, ProxyError> {
        match query {
            None => Ok(hyper::Uri::from_static(self.path())),
            // The query came from a URI that parsed; only its length
            // can fail (the shape's path may be longer than the request's).
            Some(q) => format!("{}?{q}", self.path())
                .parse()
                .map_err(|_| ProxyError::UriTooLong),
        }
    }
}

pub struct Proxy {
    metrics: Arc<Metrics>,
    backend: Box<dyn Backend>,
}

impl Proxy {
    /// In front of our own store.
    pub fn new(api: SwiftApi) -> Proxy {
        let metrics = Arc::new(Metrics::default());
        let state = AppState {
            api: Arc::new(api),
            metrics: metrics.clone(),
        };
        let backend = Embedded {
            table: api_table(state.clone()),
            state,
        };
        Proxy {
            metrics,
            backend: Box::new(backend),
        }
    }

    /// In front of another backend (an OpenStack Swift proxy).
    pub fn with_backend(backend: Box<dyn Backend>) -> Proxy {
        Proxy {
            metrics: Arc::new(Metrics::default()),
            backend,
        }
    }

    pub async fn handle(self: Arc<Self>, req: Request<Body>) -> Response<Body> {
        let tx = TransId::new();
        let start = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let keep_alive =
            hstr(req.headers(), "connection").is_some_and(|v| v.eq_ignore_ascii_case("keep-alive"));
        let bytes_in = hstr(req.headers(), "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let span = tracing::info_span!("req", tx = %tx);
        let mut resp = self
            .route(req, tx.clone())
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
        // Swift's own trans-id (ours appended) stays on what Swift answered.
        let upstream = resp.extensions().get::<FromUpstream>().is_some();
        let h = resp.headers_mut();
        if !(upstream && h.contains_key("x-trans-id")) {
            if let Ok(v) = HeaderValue::from_str(tx.as_str()) {
                h.insert("x-trans-id", v.clone());
                h.insert("x-openstack-request-id", v);
            }
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
        let ms = format!("{:.3}", took.as_secs_f64() * 1000.0);
        span.in_scope(|| info!(%method, %path, status, %ms, "done"));
        resp
    }

    /// What every backend shares: the app forms' URLs; then the backend.
    async fn route(
        &self,
        mut req: Request<Body>,
        tx: TransId,
    ) -> Result<Response<Body>, ProxyError> {
        let path = req.uri().path();
        // The app forms' URLs (spec/zerocloud.md §1.1): `/open/...` and
        // `/api/...` are `/v1/...` with `X-Zerovm-Execute: open/1.0` or
        // `api/1.0`, unless the request names its own version.
        if let Some(form) = ["open", "api"].into_iter().find(|f| {
            path.strip_prefix('/')
                .and_then(|p| p.strip_prefix(f))
                .is_some_and(|p| p.starts_with('/'))
        }) {
            let rest = &path[form.len() + 1..];
            let routed = match req.uri().query() {
                Some(q) => format!("/v1{rest}?{q}"),
                None => format!("/v1{rest}"),
            };
            *req.uri_mut() = routed
                .parse()
                .map_err(|_| ProxyError::precondition("Bad URL"))?;
            req.extensions_mut().insert(crate::job::AppUrl(match form {
                "open" => "/open",
                _ => "/api",
            }));
            if !req.headers().contains_key(crate::job::EXECUTE) {
                req.headers_mut().insert(
                    crate::job::EXECUTE,
                    hyper::header::HeaderValue::from_static(match form {
                        "open" => "open/1.0",
                        _ => "api/1.0",
                    }),
                );
            }
        }
        self.backend.handle(req, &tx).await
    }
}

/// Our own store's pipeline for a request ([`Embedded`]'s [`Backend`]):
/// TempAuth's routes, then for `/v1/...` the caller's identity, the parsed
/// path and the request context, CORS, jobs, and the API table.
pub(crate) async fn route_embedded(
    e: &Embedded,
    mut req: Request<Body>,
    tx: TransId,
) -> Result<Response<Body>, ProxyError> {
    let path = req.uri().path();
    if path == "/v1" || path == "/v1/" {
        return Err(ProxyError::precondition("Bad URL"));
    }
    if is_v1_auth(path) {
        return Ok(endpoints::token_for(&e.state.api, &req));
    }
    if !path.starts_with("/v1/") {
        return Ok(e
            .table
            .clone()
            .oneshot(req)
            .await
            .unwrap_or_else(|e| match e {}));
    }
    let identity = identity(&e.state.api, req.headers())?;
    let swift_path = SwiftPath::parse(path)?;
    if swift_path.account.len() > MAX_ACCOUNT_NAME_LENGTH {
        return Err(ProxyError::bad_request(format!(
            "Account name length of {} longer than {MAX_ACCOUNT_NAME_LENGTH}",
            swift_path.account.len()
        )));
    }
    let ctx = RequestCtx {
        path: swift_path,
        identity,
        trans_id: tx,
        referrer: hstr(req.headers(), "referer").map(str::to_string),
        app_source: None,
        setuid_grants: None,
        credential: None,
    };
    *req.uri_mut() = Shape::of(&ctx.path).uri(req.uri().query())?;
    // CORS: the container's settings decide, for requests with an Origin.
    let origin = hstr(req.headers(), "origin").map(str::to_string);
    let cors = match (&origin, &ctx.path.container) {
        (Some(_), Some(c)) => e
            .state
            .api
            .container_info(&ctx, &ctx.path.account, c)
            .await?
            .map(|i| i.cors),
        _ => None,
    };
    if req.method() == Method::OPTIONS {
        if origin.is_some() && ctx.path.container.is_none() {
            // No container, no CORS settings: a plain answer (as Swift).
            return Ok(crate::cors::preflight(None, &HeaderMap::new()));
        }
        return Ok(crate::cors::preflight(cors.as_ref(), req.headers()));
    }
    if req.headers().contains_key(crate::job::EXECUTE) {
        // Boxed: a job's future is 45 KB, which every plain
        // request would otherwise allocate and copy (the boxed backend
        // future holds this function's state).
        return Box::pin(crate::job::dispatch_with_cors(
            e.state.api.clone(),
            ctx,
            req,
        ))
        .await;
    }
    req.extensions_mut().insert(ctx);
    let mut resp = e
        .table
        .clone()
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {});
    if let (Some(origin), Some(cors)) = (origin, cors) {
        crate::cors::decorate(&mut resp, &cors, &origin);
    }
    Ok(resp)
}

/// The caller's identity from X-Auth-Token (or X-Storage-Token), plus
/// X-Service-Token; 401 for a token that is not valid.
fn identity(api: &SwiftApi, h: &HeaderMap) -> Result<Identity, ProxyError> {
    let token = hstr(h, "x-auth-token").or_else(|| hstr(h, "x-storage-token"));
    match token {
        None => Ok(Identity::default()),
        Some(t) => api
            .auth
            .validate(t, hstr(h, "x-service-token"))
            .ok_or(ProxyError::Unauthorized),
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

pub(crate) fn is_v1_auth(p: &str) -> bool {
    p.starts_with("/v1/") && p.ends_with("/auth") && p.matches('/').count() == 3
}
