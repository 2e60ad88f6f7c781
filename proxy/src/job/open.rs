//! `open/1.0` (spec/zerocloud.md §1.4): a request on an object, with
//! `X-Zerovm-Execute: open/1.0` or on `/open/<account>/<container>/<object>`.
//!
//! 1. The object is read (as the caller) from its start, up to twice
//!    `maxconfig`. A tarball whose head holds a system map (or `zapp.yaml`)
//!    is a **zapp**: the request runs it as a job whose source is the
//!    object (§1.3), with the request body as the payload of path-less
//!    `stdin` devices and the CGI `REQUEST_METHOD` the caller's method.
//! 2. Anything else is **opened**: a GET runs the app registered in the
//!    account's `.zvm` container for the object's content type
//!    (`.zvm/<content-type>/config`, a system map template; for
//!    `application/x-nexe`, without one, the object itself runs), other
//!    methods get 501.
//!
//! Template placeholders (`{.name}`, `{.name=default}`) take the request's
//! query parameters, then `{.object_path}` becomes the object's
//! `swift://` URL, then the rest take their defaults (or nothing). Where
//! ZeroCloud pasted a parameter's raw text into the JSON, we escape it as
//! JSON string content, so a query string can fill a value but never
//! change the job's shape.

use std::sync::Arc;

use axum::extract::Request;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::Method;
use sysmap::location::SwiftPath as JobPath;
use wire::body::{self, Body};

use super::intake::{self, TAR_TYPES};
use super::{authorize, media_type, post_job, Asked};
use crate::context::RequestCtx;
use crate::error::ProxyError;
use crate::storage::Target;
use crate::swift::headers::hstr;
use crate::swift::{Res, SwiftApi};

/// The execute version of this form.
pub const VERSION: &str = "open/1.0";

/// ZeroCloud's system map for an `application/x-nexe` object without a
/// registered app (`init:DEFAULT_EXE_SYSTEM_MAP`).
const DEFAULT_EXE_MAP: &str = r#"[{"name":"executable","exec":{"path":"{.object_path}","args":"{.args}"},"devices":[{"name":"stdout","content_type":"{.content_type=text/plain}"}]}]"#;

/// An `open/1.0` request (see the module doc).
pub(super) async fn handle(api: &Arc<SwiftApi>, ctx: RequestCtx, req: Request) -> Res {
    let (Some(c), Some(o)) = (ctx.path.container.clone(), ctx.path.object.clone()) else {
        return Err(ProxyError::precondition("Bad URL"));
    };
    let method = req.method().clone();
    if !matches!(
        method,
        Method::GET | Method::HEAD | Method::POST | Method::PUT | Method::DELETE
    ) {
        return Err(ProxyError::precondition("Bad HTTP method"));
    }
    let account = ctx.path.account.clone();
    let object = JobPath::new(&account, Some(&c), Some(&o));
    let maxconfig = api.cfg.zerocloud.maxconfig.max(1);

    // Step 1: the object's head, read as the caller.
    let head = match read_head(api, &ctx, &object).await? {
        Head::Found(h) => h,
        Head::Answer(resp) => return Ok(resp),
    };
    let media = head.media.clone();
    let zapp = is_zapp(&head, maxconfig)?;
    if zapp {
        let (mut parts, body) = req.into_parts();
        parts.method = Method::POST;
        set_source(&mut parts.headers, &object)?;
        let req = Request::from_parts(parts, body);
        let asked = Asked::app(&method, &req);
        return post_job(api, &ctx, req, VERSION, asked).await;
    }
    if method != Method::GET {
        return Ok(wire::reply::status(501));
    }
    open_get(api, ctx, req, &media).await
}

/// Step 2: a GET of an object of type `media` (at `ctx`'s path) runs the
/// app registered for its type.
pub(super) async fn open_get(
    api: &Arc<SwiftApi>,
    ctx: RequestCtx,
    req: Request,
    media: &str,
) -> Res {
    let (Some(c), Some(o)) = (ctx.path.container.clone(), ctx.path.object.clone()) else {
        return Err(ProxyError::precondition("Bad URL"));
    };
    let account = ctx.path.account.clone();
    let maxconfig = api.cfg.zerocloud.maxconfig.max(1);
    let config = registry(api, &ctx, &account, media, maxconfig).await?;
    let template = match config {
        Some(t) => t,
        None if media == "application/x-nexe" => DEFAULT_EXE_MAP.to_string(),
        None => {
            return Err(ProxyError::AppNotFound(format!(
                "No application registered for {media}"
            )))
        }
    };
    let query = query_pairs(req.uri().query().unwrap_or(""));
    let job = from_template(&template, &query, &format!("swift://{account}/{c}/{o}"));
    let (mut parts, _) = req.into_parts();
    parts.method = Method::POST;
    parts
        .headers
        .insert("content-type", HeaderValue::from_static("application/json"));
    parts.headers.insert("content-length", job.len().into());
    parts.headers.remove("etag");
    parts.headers.remove("x-zerovm-source");
    let req = Request::from_parts(parts, axum::body::Body::from(job));
    let asked = Asked {
        path_info: Some(ctx.path.path_info()),
        ..Asked::app(&Method::GET, &req)
    };
    // Run as a job POSTed to the account (§1.4 step 6); the program sees
    // the object's path (§3.4).
    let mut account_ctx = ctx.clone();
    account_ctx.path.container = None;
    account_ctx.path.object = None;
    post_job(api, &account_ctx, req, VERSION, asked).await
}

/// Makes `object` the job's `X-Zerovm-Source`, in place of any the caller
/// sent.
pub(super) fn set_source(h: &mut HeaderMap, object: &JobPath) -> Result<(), ProxyError> {
    let url = object.url();
    let v = HeaderValue::from_str(&url)
        .map_err(|_| ProxyError::bad_request(format!("Cannot run {url}: not a header value")))?;
    h.insert("x-zerovm-source", v);
    Ok(())
}

/// What a request on an object found: its head, or the storage's answer
/// when that was not a success (a 404, say), which is the client's.
pub(super) enum Head {
    Found(Found),
    Answer(hyper::Response<Body>),
}

/// An object's media type and first bytes.
pub(super) struct Found {
    pub media: String,
    pub bytes: Bytes,
    /// `bytes` is the whole object.
    pub complete: bool,
}

/// Reads `object`'s first `2 * maxconfig` bytes, as the caller (its read
/// ACL).
pub(super) async fn read_head(
    api: &SwiftApi,
    ctx: &RequestCtx,
    object: &JobPath,
) -> Result<Head, ProxyError> {
    let (Some(c), Some(o)) = (&object.container, &object.object) else {
        return Err(ProxyError::precondition("Bad URL"));
    };
    // As much as a POSTed zapp is searched for its job.
    let want = intake::zapp_head_len(api.cfg.zerocloud.maxconfig.max(1));
    authorize::check(api, ctx, object, &Method::GET).await?;
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("bytes=0-{}", want - 1)) {
        h.insert("range", v);
    }
    let resp = api
        .call(
            ctx,
            Target::Object(&object.account, c, o),
            Method::GET,
            h,
            None,
            body::empty(),
        )
        .await?;
    let status = resp.status().as_u16();
    // 416: an empty object.
    if status != 416 && !(200..300).contains(&status) {
        return Ok(Head::Answer(resp));
    }
    let content_type = hstr(resp.headers(), "content-type")
        .unwrap_or("application/octet-stream")
        .to_string();
    let total = object_size(resp.headers());
    let bytes = if status == 416 {
        Bytes::new()
    } else {
        bounded(resp.into_body(), want).await?
    };
    Ok(Head::Found(Found {
        media: media_type(&content_type),
        complete: status == 416 || total.is_none_or(|t| bytes.len() as u64 >= t),
        bytes,
    }))
}

/// Whether an object is a zapp: a tarball whose head holds a job; a gzip
/// object that does not inflate is 422.
pub(super) fn is_zapp(head: &Found, maxconfig: usize) -> Result<bool, ProxyError> {
    let media = head.media.as_str();
    if head.bytes.is_empty() || !TAR_TYPES.contains(&media) {
        return Ok(false);
    }
    let gzip = media == "application/x-gzip";
    match intake::has_job(&head.bytes, gzip, head.complete, maxconfig) {
        Some(found) => Ok(found),
        None if gzip => Err(ProxyError::Unprocessable(Some(format!(
            "Error reading {media} stream"
        )))),
        None => Ok(false),
    }
}

/// The object's full size from a ranged answer's `Content-Range`
/// (`bytes 0-N/TOTAL`), or its `Content-Length` for a whole one.
fn object_size(h: &HeaderMap) -> Option<u64> {
    match hstr(h, "content-range") {
        Some(r) => r.rsplit('/').next().and_then(|t| t.parse().ok()),
        None => hstr(h, "content-length").and_then(|v| v.parse().ok()),
    }
}

/// At most `limit` bytes of `body` (the rest is not read).
async fn bounded(mut body: Body, limit: usize) -> Result<Bytes, ProxyError> {
    let mut out = Vec::new();
    while out.len() < limit {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    out.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => return Err(ProxyError::Backend(format!("reading an object: {e}"))),
        }
    }
    out.truncate(limit);
    Ok(Bytes::from(out))
}

/// The app template registered for `media` in the account's `.zvm`
/// container (`None`: none is). Read without an ACL check: the registry
/// is the account's own configuration, and the job it makes runs with the
/// caller's rights.
async fn registry(
    api: &SwiftApi,
    ctx: &RequestCtx,
    account: &str,
    media: &str,
    maxconfig: usize,
) -> Result<Option<String>, ProxyError> {
    let name = format!("{media}/config");
    let resp = api
        .call(
            ctx,
            Target::Object(account, ".zvm", &name),
            Method::GET,
            HeaderMap::new(),
            None,
            body::empty(),
        )
        .await?;
    match resp.status().as_u16() {
        200 => {}
        404 => return Ok(None),
        s => {
            return Err(ProxyError::Backend(format!(
                "status {s} reading /{account}/.zvm/{name}"
            )))
        }
    }
    let path = format!("/{account}/.zvm/{name}");
    let too_large = || ProxyError::ConfigTooLarge(format!("Config file at {path} is too large"));
    if object_size(resp.headers()).is_some_and(|n| n > maxconfig as u64) {
        return Err(too_large());
    }
    let bytes = bounded(resp.into_body(), maxconfig + 1).await?;
    if bytes.len() > maxconfig {
        return Err(too_large());
    }
    String::from_utf8(bytes.to_vec())
        .map(Some)
        .map_err(|_| ProxyError::bad_request(format!("Config file at {path} is not UTF-8")))
}

/// The query's `k=v` pairs, percent-decoded (`+` is a space), in order.
fn query_pairs(q: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        percent_encoding::percent_decode_str(&s)
            .decode_utf8_lossy()
            .into_owned()
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// `s` with each `{.name}` / `{.name=default}` for which `fill(name,
/// default)` gives a value replaced by it; others are kept as they are.
fn substitute(s: &str, mut fill: impl FnMut(&str, Option<&str>) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("{.") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 2..];
        let Some(end) = tail.find('}') else {
            out.push_str(&rest[at..]);
            return out;
        };
        let inner = &tail[..end];
        let (name, default) = match inner.split_once('=') {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        match fill(name, default) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[at..at + 2 + end + 1]),
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

/// `s` escaped as the content of a JSON string.
fn json_text(s: &str) -> String {
    let quoted = serde_json::Value::String(s.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

/// The job a template makes for an object (§1.4 step 5, values escaped).
fn from_template(template: &str, query: &[(String, String)], object_url: &str) -> String {
    let mut s = template.to_string();
    for (k, v) in query.iter().filter(|(k, _)| k != "object_path") {
        s = substitute(&s, |name, _| (name == k).then(|| json_text(v)));
    }
    s = s.replace("{.object_path}", &json_text(object_url));
    substitute(&s, |_, default| Some(default.unwrap_or("").to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_take_query_values_then_the_object_then_defaults() {
        let t = r#"{"a":"{.object_path}","b":"{.ct=text/plain}","c":"{.args}","d":"{.object_path=zz}"}"#;
        let q = vec![("ct".to_string(), "text/html".to_string())];
        assert_eq!(
            from_template(t, &q, "swift://a/c/o"),
            r#"{"a":"swift://a/c/o","b":"text/html","c":"","d":"zz"}"#
        );
        // `object_path` cannot come from the query.
        let q = vec![("object_path".to_string(), "swift://b/x/y".to_string())];
        assert_eq!(
            from_template(r#"{"a":"{.object_path}"}"#, &q, "swift://a/c/o"),
            r#"{"a":"swift://a/c/o"}"#
        );
    }

    #[test]
    fn query_values_stay_inside_their_json_string() {
        let q = vec![("args".to_string(), r#"x"},{"name":"evil"#.to_string())];
        let job = from_template(DEFAULT_EXE_MAP, &q, "swift://a/c/o");
        let v: serde_json::Value = serde_json::from_str(&job).expect("still JSON");
        assert_eq!(v.as_array().map(Vec::len), Some(1));
        assert_eq!(v[0]["exec"]["args"], r#"x"},{"name":"evil"#);
        assert_eq!(v[0]["devices"][0]["content_type"], "text/plain");
    }

    #[test]
    fn query_pairs_are_decoded() {
        assert_eq!(
            query_pairs("content_type=text%2Fhtml&a=b+c&flag"),
            vec![
                ("content_type".to_string(), "text/html".to_string()),
                ("a".to_string(), "b c".to_string()),
                ("flag".to_string(), String::new()),
            ]
        );
    }

    #[test]
    fn unclosed_placeholders_are_left_alone() {
        assert_eq!(substitute("x {.a", |_, _| Some("v".into())), "x {.a");
        assert_eq!(
            substitute("{.a}{.b=1}", |_, d| d.map(str::to_string)),
            "{.a}1"
        );
    }
}
