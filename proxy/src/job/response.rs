//! The client's response to a job (spec/zerocloud.md §3.5, §4.1, §4.4):
//! each session's outputs with a `swift://` path are stored (a PUT, as a
//! client's), its immediate output becomes its part of the body; the body
//! is the immediate outputs in session order, streamed from the agents;
//! the status is the highest of the sessions'; the `X-Nexe-*` headers list
//! one value per session.
//!
//! Differences from ZeroCloud, each deliberate: the response carries no
//! `Etag` (ZeroCloud's was the MD5 of the time, which tells nothing; the
//! body's MD5 is not known before it is streamed); `X-Nexe-Server` names
//! the storage node each session ran on; a stored output's PUT does not
//! copy the client's request headers.

use std::time::Instant;

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Response};
use sysmap::location::Location;
use wire::body::{self, Body};
use wire::exec::{PartHeader, PartReader, SERVER_HEADER};

use super::run::{error_text, Session};
use crate::context::RequestCtx;
use crate::error::ProxyError;
use crate::storage::Target;
use crate::swift::headers::ts_header;
use crate::swift::{check_metadata, Res, SwiftApi};

/// What each aggregated header holds for a session that did not say.
const DEFAULTS: [(&str, &str); 8] = [
    ("x-nexe-system", ""),
    ("x-nexe-status", "ZeroVM did not run"),
    ("x-nexe-retcode", "0"),
    ("x-nexe-etag", ""),
    ("x-nexe-validation", "0"),
    ("x-nexe-cdr-line", "0.0 0.0 0 0 0 0 0 0 0 0"),
    ("x-nexe-policy", ""),
    (SERVER_HEADER, ""),
];

/// One session after its stored outputs were written.
struct Finished {
    status: u16,
    /// Aggregated header values, in [`DEFAULTS`] order.
    values: Vec<String>,
    error: Option<String>,
    /// The session did not run (its agent refused it, or did not answer):
    /// `error` is the reason, and the body of the whole response.
    refused: bool,
    /// The agent's `Retry-After` with a refusal (a slot, an image).
    retry_after: Option<HeaderValue>,
    /// The immediate output: its part header, and the reader positioned
    /// at its data.
    immediate: Option<(PartHeader, PartReader)>,
}

pub(super) async fn assemble(
    api: &SwiftApi,
    ctx: &RequestCtx,
    sessions: Vec<Session>,
    started: Instant,
) -> Res {
    let placement = sessions
        .iter()
        .map(|s| s.placement)
        .collect::<Vec<_>>()
        .join(",");
    let finished =
        futures_util::future::join_all(sessions.into_iter().map(|s| finish(api, ctx, s))).await;
    let status = finished.iter().map(|f| f.status).fold(200, u16::max);
    let mut h = HeaderMap::new();
    for (i, (name, _)) in DEFAULTS.iter().enumerate() {
        let mut joined = finished
            .iter()
            .map(|f| f.values[i].as_str())
            .collect::<Vec<_>>()
            .join(",");
        if *name == "x-nexe-cdr-line" {
            joined = format!("{:.3}, {joined}", started.elapsed().as_secs_f64());
        }
        insert(&mut h, name, &joined);
    }
    insert(&mut h, "x-zerocloud-placement", &placement);
    let errors: Vec<&str> = finished.iter().filter_map(|f| f.error.as_deref()).collect();
    if !errors.is_empty() {
        insert(&mut h, "x-nexe-error", &errors.join(","));
    }
    // A session that did not run makes the job fail: the body says why
    // (each such session's reason on a line), as ZeroCloud's did.
    let refusals: Vec<&str> = finished
        .iter()
        .filter(|f| f.refused)
        .filter_map(|f| f.error.as_deref())
        .collect();
    if !refusals.is_empty() {
        let text = refusals.join("\n");
        if let Some(v) = finished
            .iter()
            .filter_map(|f| f.retry_after.clone())
            .max_by_key(|v| {
                v.to_str()
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0)
            })
        {
            h.insert("retry-after", v);
        }
        insert(&mut h, "content-type", "text/plain");
        h.insert("content-length", HeaderValue::from(text.len()));
        let mut resp = Response::builder().status(status).body(body::full(text))?;
        *resp.headers_mut() = h;
        return Ok(resp);
    }
    // The body's type and headers are those of the first session with
    // something to say (an empty stderr of a mapper does not decide).
    let mut length = 0u64;
    let mut first: Option<&PartHeader> = None;
    let mut first_empty: Option<&PartHeader> = None;
    for (part, _) in finished.iter().filter_map(|f| f.immediate.as_ref()) {
        let len = part.len.unwrap_or(0);
        length += len;
        if len > 0 {
            first.get_or_insert(part);
        } else {
            first_empty.get_or_insert(part);
        }
    }
    let first = first.or(first_empty);
    let content_type = first
        .and_then(|p| p.content_type.clone())
        .unwrap_or_else(|| "text/html".into());
    if let Some(p) = first {
        insert(&mut h, "x-zerovm-device", &p.name);
        for (k, v) in &p.headers {
            let k = k.to_ascii_lowercase();
            if !k.starts_with("x-nexe-") && k != "status" {
                insert(&mut h, &k, v);
            }
        }
    }
    insert(&mut h, "content-type", &content_type);
    h.insert("content-length", HeaderValue::from(length));
    h.insert("x-timestamp", ts_header(api.next_ts()));
    let readers: Vec<PartReader> = finished
        .into_iter()
        .filter_map(|f| f.immediate.map(|(_, r)| r))
        .collect();
    let stream = futures_util::stream::unfold(
        (readers.into_iter(), None::<PartReader>),
        |(mut rest, mut current)| async move {
            loop {
                if current.is_none() {
                    current = Some(rest.next()?);
                }
                let reader = current.as_mut()?;
                match reader.next_chunk().await {
                    Ok(Some(chunk)) => {
                        return Some((Ok::<Bytes, std::io::Error>(chunk), (rest, current)))
                    }
                    Ok(None) => current = None,
                    Err(e) => {
                        return Some((Err(std::io::Error::other(e.to_string())), (rest, None)))
                    }
                }
            }
        },
    );
    let mut resp = Response::builder()
        .status(status)
        .body(Body::from_stream(stream))?;
    *resp.headers_mut() = h;
    Ok(resp)
}

fn insert(h: &mut HeaderMap, name: &str, v: &str) {
    if let (Ok(k), Ok(v)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(v),
    ) {
        h.insert(k, v);
    }
}

/// A session's status, header values and outputs; its stored outputs are
/// written here.
async fn finish(api: &SwiftApi, ctx: &RequestCtx, s: Session) -> Finished {
    let mut values: Vec<String> = DEFAULTS.iter().map(|(_, d)| d.to_string()).collect();
    values[0] = s.node.name.clone();
    let failed = |status: u16, why: String, values: Vec<String>| Finished {
        status,
        values,
        error: Some(one_line(&why)),
        refused: true,
        retry_after: None,
        immediate: None,
    };
    let resp = match s.answer {
        Ok(r) => r,
        Err(e) => {
            let status = match &e {
                ProxyError::Timeout(_) => 408,
                _ => 503,
            };
            let why = match e {
                ProxyError::Timeout(m) => m,
                ProxyError::Backend(m) => format!("storage node {} failed: {m}", s.agent),
                other => other.to_string(),
            };
            return failed(status, why, values);
        }
    };
    for (i, (name, _)) in DEFAULTS.iter().enumerate() {
        if let Some(v) = resp.headers().get(*name).and_then(|v| v.to_str().ok()) {
            values[i] = v.to_string();
        }
    }
    let status = resp.status().as_u16();
    if !resp.status().is_success() {
        let retry_after = resp.headers().get("retry-after").cloned();
        let why = error_text(resp.into_body()).await;
        return Finished {
            retry_after,
            ..failed(status, why, values)
        };
    }
    let mut error = resp
        .headers()
        .get("x-nexe-error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut status = if error.is_some() { 500 } else { status };
    let mut reader = PartReader::new(resp.into_body());
    loop {
        let part = match reader.next_part().await {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => {
                error = Some(format!("reading the outputs of {}: {e}", s.node.name));
                status = status.max(500);
                break;
            }
        };
        match &part.path {
            None => {
                // A program's HTTP answer decides the status of a session
                // that ran well (§3.5).
                let cgi = part
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("status"))
                    .and_then(|(_, v)| v.split(' ').next()?.parse::<u16>().ok())
                    .filter(|c| (100..=599).contains(c));
                if let (Some(code), None) = (cgi, &error) {
                    status = code;
                }
                return Finished {
                    status,
                    values,
                    error,
                    refused: false,
                    retry_after: None,
                    immediate: Some((part, reader)),
                };
            }
            Some(url) => {
                if let Err((st, why)) = store(api, ctx, &part, url, &mut reader).await {
                    status = status.max(st);
                    error = Some(why);
                    break;
                }
            }
        }
    }
    Finished {
        status,
        values,
        error,
        refused: false,
        retry_after: None,
        immediate: None,
    }
}

/// PUTs an output part as the object `url` (authorized with the job).
async fn store(
    api: &SwiftApi,
    ctx: &RequestCtx,
    part: &PartHeader,
    url: &str,
    reader: &mut PartReader,
) -> Result<(), (u16, String)> {
    let Some(Location::Swift(p)) = Location::parse(url) else {
        return Err((500, format!("Channel name {} not found", part.name)));
    };
    let (Some(c), Some(o)) = (&p.container, &p.object) else {
        return Err((500, format!("Channel name {} not found", part.name)));
    };
    let path = p.path();
    let mut h = HeaderMap::new();
    if let Some(ct) = &part.content_type {
        insert(&mut h, "content-type", ct);
    }
    for (k, v) in &part.headers {
        if k.to_ascii_lowercase().starts_with("x-object-meta-") {
            insert(&mut h, k, v);
        }
    }
    check_metadata(&h, "object").map_err(|e| match e {
        ProxyError::BadRequest(m) => (400, m),
        other => (400, other.to_string()),
    })?;
    if let Some(len) = part.len {
        h.insert("content-length", HeaderValue::from(len));
    }
    h.insert("x-timestamp", ts_header(api.next_ts()));
    let (tx, body) = body::channel();
    let put = api.call(
        ctx,
        Target::Object(&p.account, c, o),
        Method::PUT,
        h,
        None,
        body,
    );
    let forward = async move {
        loop {
            match reader.next_chunk().await {
                Ok(Some(chunk)) => {
                    if tx.send(Ok(chunk)).await.is_err() {
                        return Err("the storage node stopped reading".to_string());
                    }
                }
                Ok(None) => return Ok(()),
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return Err(e.to_string());
                }
            }
        }
    };
    let (resp, forwarded) = tokio::join!(put, forward);
    let fail = |st: u16| (st, format!("Status {st} when putting {path}"));
    match resp {
        Ok(r) if r.status().is_success() => forwarded.map_err(|_| fail(499)),
        Ok(r) => Err(fail(r.status().as_u16())),
        Err(_) => Err(fail(503)),
    }
}

/// A header value on one line.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}
