//! Jobs: requests with `X-Zerovm-Execute` (spec/zerocloud.md §1–§4).
//!
//! [`dispatch`] is where the router sends them. A job POST goes:
//! 1. [`intake`]: the job description from the body (JSON, zapp, script)
//!    or from `X-Zerovm-Source`, and the user image, still streaming;
//! 2. [`catalog`]: the listings its wildcards need (authorized like a
//!    container GET), then `sysmap` compiles the job into node plans;
//! 3. [`authorize`]: every object the job reads or writes, checked with
//!    the Swift API's own ACL code before anything is read or run;
//! 4. [`run`]: the inputs opened (each remote object fetched once), each
//!    session placed on the agent holding its object and sent its plan,
//!    the inputs streamed to the sessions that need them;
//! 5. [`response`]: outputs with a path stored, the immediate outputs
//!    concatenated into the response, `X-Nexe-*` aggregated.
//!
//! The app forms turn a request into such a POST first: [`open`] (an
//! object processed by its registered app, or a zapp object run) and
//! [`api`] (a container's REST endpoint).

mod api;
mod authorize;
mod catalog;
mod chain;
pub mod intake;
mod open;
mod response;
mod run;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use hyper::header::HeaderValue;
use hyper::Method;
use sysmap::cgi::{apply_cgi_env, CgiRequest};
use sysmap::compile::{compile, CompileOptions};
use sysmap::location::{Location, SwiftPath as JobPath};
use wire::body::Body;

use crate::context::RequestCtx;
use crate::error::ProxyError;
use crate::swift::headers::hstr;
use crate::swift::{Res, SwiftApi};
use intake::{Form, Intake, Reading, Source};

/// The header that makes a request a job.
pub const EXECUTE: &str = "x-zerovm-execute";

/// A request with `X-Zerovm-Execute` (§1.1): only POST runs a job; the
/// job controller answers GET, PUT, DELETE and HEAD with 501, and methods
/// it does not know with 412 `Bad HTTP method` (OPTIONS is Swift's CORS
/// preflight, answered before this).
pub async fn dispatch(api: Arc<SwiftApi>, ctx: RequestCtx, req: Request) -> Res {
    let how = chain::Deferred::of(req.headers());
    // An app's request names the app or its data, never where a result goes.
    let version = hstr(req.headers(), EXECUTE).unwrap_or_default();
    let app_form = version == open::VERSION || version == api::VERSION;
    let inherited = chain::inherited(req.headers());
    let job = {
        let (api, ctx) = (api.clone(), ctx.clone());
        async move {
            let first = one(api.clone(), ctx.clone(), req);
            chain::run(&api, &ctx, &inherited, first).await
        }
    };
    match how {
        chain::Deferred::Never => job.await,
        how => chain::deferred(api, ctx, how, !app_form, job).await,
    }
}

/// [`dispatch`] for a request that may come from a browser: with an
/// `Origin`, the answer carries the request container's CORS headers when
/// `use_cors` is on (spec §5.1). The container's settings are read as the
/// caller; when they cannot be, the answer has none.
pub async fn dispatch_with_cors(api: Arc<SwiftApi>, ctx: RequestCtx, req: Request) -> Res {
    let origin = hstr(req.headers(), "origin").map(str::to_string);
    let cors = match (&origin, &ctx.path.container, api.cfg.zerocloud.use_cors) {
        (Some(_), Some(c), true) => api
            .container_info(&ctx, &ctx.path.account, c)
            .await
            .ok()
            .flatten()
            .map(|i| i.cors),
        _ => None,
    };
    let mut resp = dispatch(api, ctx, req).await?;
    if let (Some(origin), Some(cors)) = (origin, cors) {
        crate::cors::decorate(&mut resp, &cors, &origin);
    }
    Ok(resp)
}

/// One job of any form (the first of a chain).
async fn one(api: Arc<SwiftApi>, ctx: RequestCtx, req: Request) -> Res {
    let version = hstr(req.headers(), EXECUTE).unwrap_or_default().to_string();
    if version == open::VERSION {
        return open::handle(&api, ctx, req).await;
    }
    if version == api::VERSION {
        return api::handle(&api, ctx, req).await;
    }
    match *req.method() {
        Method::POST => {}
        Method::GET | Method::PUT | Method::DELETE | Method::HEAD => {
            return Ok(wire::reply::status(501))
        }
        _ => return Err(ProxyError::precondition("Bad HTTP method")),
    }
    post_job(&api, &ctx, req, &version, Asked::POST).await
}

/// `X-Zerocloud-Id`: 16 hex digits, sortable by time (ms since the epoch,
/// then a per-process counter).
fn zerocloud_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) & 0xfff;
    let host = u64::from(std::process::id()) & 0xfff;
    format!("{:010x}{host:03x}{n:03x}", ms & 0xff_ffff_ffff)
}

/// The media type of a `Content-Type` value (parameters dropped).
fn media_type(v: &str) -> String {
    v.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The URL prefix an app form was asked on (`/open`, `/api`), kept by the
/// router when it rewrites the path to `/v1/...`: the start of the
/// program's `REQUEST_URI`.
#[derive(Debug, Clone, Copy)]
pub struct AppUrl(pub &'static str);

/// How the caller asked, as the program sees it: `REQUEST_METHOD` and the
/// URL prefix of `REQUEST_URI`.
struct Asked<'a> {
    method: &'a str,
    script_name: &'a str,
    /// An app form (`open/1.0`, `api/1.0`), not a POSTed job.
    app: bool,
    /// The program's `PATH_INFO` when it is not the job's own path (an
    /// opened object's, whose app runs as a job of the account).
    path_info: Option<String>,
}

impl Asked<'_> {
    /// A job POSTed on `/v1/...`.
    const POST: Asked<'static> = Asked {
        method: "POST",
        script_name: "/v1",
        app: false,
        path_info: None,
    };

    /// An app form's request `req`, asked with `method`.
    fn app(method: &Method, req: &Request) -> Asked<'static> {
        let script_name = req.extensions().get::<AppUrl>().map_or("/v1", |u| u.0);
        let method = match *method {
            Method::GET => "GET",
            Method::HEAD => "HEAD",
            Method::PUT => "PUT",
            Method::DELETE => "DELETE",
            _ => "POST",
        };
        Asked {
            method,
            script_name,
            app: true,
            path_info: None,
        }
    }
}

/// `POST` with `X-Zerovm-Execute` (§1.2), as `asked`.
async fn post_job(
    api: &Arc<SwiftApi>,
    ctx: &RequestCtx,
    req: Request,
    version: &str,
    asked: Asked<'_>,
) -> Res {
    let started = Instant::now();
    let cfg = &api.cfg.zerocloud;
    let (mut parts, body) = req.into_parts();
    // The app this job runs, for the setuid rule (§1.7).
    let source_url = hstr(&parts.headers, "x-zerovm-source").map(str::to_string);
    let app = match &source_url {
        Some(url) => Some(source_path(url, &ctx.path.account)?.url()),
        None => ctx.app_source.clone(),
    };
    let job_ctx = ctx.running_app(app);
    let ctx = &job_ctx;
    // Submission: the request's own path, as a POST with no container ACL
    // (or the app's, by the setuid rule; a job POSTed to the account, an
    // app's chained job or one sourced from an app, is the app's: its
    // container's setuid metas decide, as in ZeroCloud, spec §1.7).
    if let Err(denied) = api.authorize(ctx, &Method::POST, &ctx.path, None).await {
        let path = JobPath::new(
            &ctx.path.account,
            ctx.path.container.as_deref(),
            ctx.path.object.as_deref(),
        );
        if !authorize::setuid(api, ctx, &path, &Method::POST).await? {
            return Err(denied);
        }
    }
    // The app forms' body is only a payload, whose type nothing reads: a
    // browser's GET has none (ZeroCloud wanted one all the same, §1.4).
    let content_type = match hstr(&parts.headers, "content-type") {
        Some(v) => v.to_string(),
        None if asked.app => "application/octet-stream".to_string(),
        None => return Err(ProxyError::bad_request("Must specify Content-Type")),
    };
    let content_length: Option<u64> = match hstr(&parts.headers, "content-length") {
        None => None,
        Some(v) => Some(
            v.parse()
                .map_err(|_| ProxyError::bad_request("Invalid Content-Length"))?,
        ),
    };
    let reading = Reading {
        cfg,
        started: Instant::now(),
    };
    let job_id = zerocloud_id();

    // The job and its image come from the body, or from the source object
    // (then the body is the payload of path-less stdin devices).
    let (intake, payload) = match &source_url {
        Some(url) => {
            let path = source_path(url, &ctx.path.account)?;
            let fetched = authorize::fetch_source(api, ctx, &path).await?;
            let intake = read_form(
                &reading,
                &Form::of(&media_type(&fetched.content_type)),
                &fetched.content_type,
                fetched.body,
                fetched.len,
                None,
                None,
            )
            .await?;
            let payload = match content_length {
                Some(0) => None,
                len => Some(Source {
                    head: bytes::Bytes::new(),
                    rest: Some(Body::new(body)),
                    len,
                    gzip: false,
                }),
            };
            (intake, payload)
        }
        None => {
            let object = match (&ctx.path.container, &ctx.path.object) {
                (Some(c), Some(o)) => Some(JobPath::new(&ctx.path.account, Some(c), Some(o)).url()),
                _ => None,
            };
            let intake = read_form(
                &reading,
                &Form::of(&media_type(&content_type)),
                &media_type(&content_type),
                Body::new(body),
                content_length,
                hstr(&parts.headers, "etag"),
                object,
            )
            .await?;
            (intake, None)
        }
    };
    let Intake { job, image } = intake;

    // Wildcards are listed (authorized as listings), then the job compiles.
    let catalog = catalog::fill(api, ctx, &job).await?;
    let opts = CompileOptions {
        default_content_type: cfg.default_content_type.clone(),
        user_image: image.is_some(),
        max_sessions: cfg.max_sessions,
        ..CompileOptions::new(&ctx.path.account)
    };
    let mut plan = compile(&job, &opts, &catalog)?;

    // The headers the nodes see (§1.1 step 4, §1.6).
    let force = |h: &mut hyper::HeaderMap, name: &'static str, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(name, v);
        }
    };
    force(&mut parts.headers, EXECUTE, version);
    force(&mut parts.headers, "x-zerocloud-id", &job_id);
    force(
        &mut parts.headers,
        "x-zerovm-timeout",
        &cfg.timeout.to_string(),
    );
    force(&mut parts.headers, "x-trans-id", ctx.trans_id.as_str());
    force(&mut parts.headers, "x-zerovm-valid", "false");
    let cgi = CgiRequest {
        method: asked.method.into(),
        script_name: asked.script_name.into(),
        path_info: match (asked.path_info, source_url) {
            (Some(p), _) => p,
            (None, Some(_)) => ctx.path.path_info(),
            (None, None) => format!("/{}", ctx.path.account),
        },
        query_string: parts.uri.query().unwrap_or("").to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        remote_user: (!ctx.identity.groups.is_empty()).then(|| ctx.identity.groups.join(",")),
        ..CgiRequest::default()
    };
    apply_cgi_env(&mut plan, &cgi);

    // Nothing is read, run or written before every access is allowed.
    authorize::job(api, ctx, &plan).await?;

    let sessions = run::start(api, ctx, &job_id, plan, image, payload).await?;
    let mut resp = response::assemble(api, ctx, sessions, started).await?;
    resp.extensions_mut()
        .insert(chain::RanApp(ctx.app_source.clone()));
    Ok(resp)
}

/// Reads the job in its form.
async fn read_form(
    r: &Reading<'_>,
    form: &Form,
    media_type: &str,
    body: Body,
    len: Option<u64>,
    etag: Option<&str>,
    object: Option<String>,
) -> Result<Intake, ProxyError> {
    match *form {
        Form::Json => Ok(Intake {
            job: intake::read_json(r, body, len, etag).await?,
            image: None,
        }),
        Form::Tar { gzip } => intake::read_tar(r, body, len, gzip, media_type).await,
        Form::Script => intake::read_script(r, body, len, object).await,
    }
}

/// The object `X-Zerovm-Source` names (URL-decoded, `~` expanded).
fn source_path(url: &str, account: &str) -> Result<JobPath, ProxyError> {
    let decoded = percent_encoding::percent_decode_str(url)
        .decode_utf8()
        .map_err(|_| ProxyError::bad_request(format!("Invalid X-Zerovm-Source {url}")))?;
    match Location::parse(&decoded) {
        Some(Location::Swift(mut p)) if p.object.is_some() => {
            p.expand_account(account);
            Ok(p)
        }
        _ => Err(ProxyError::bad_request(format!(
            "X-Zerovm-Source must be a swift:// object URL, not {decoded}"
        ))),
    }
}
