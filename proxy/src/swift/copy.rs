//! Server-side copies: `COPY` with `Destination`, and `PUT` with `X-Copy-From`.

use hyper::header::{HeaderMap, HeaderValue};
use hyper::Method;
use wire::body;
use wire::timestamp::Timestamp;

use super::headers::{backend_headers, client_response, hstr, put_response, ts_header};
use super::{
    apply_removals_object, check_metadata, delete_at_headers, Res, SwiftApi, MAX_OBJECT_NAME_LENGTH,
};
use crate::context::{RequestCtx, SwiftPath};
use crate::error::{Name, OkOr, ProxyError};
use crate::storage::Target;

/// `COPY /v1/a/c/o` with `Destination: c2/o2` (and `Destination-Account`).
pub(crate) async fn copy_method(api: &SwiftApi, ctx: &RequestCtx, h: &HeaderMap) -> Res {
    let dest = h
        .get("destination")
        .ok_or_precondition("Destination header required")?;
    let dest = decode_copy_path(dest)?;
    let (dc, dobj) = split_copy_path(&dest, "Destination")?;
    let dest_account = hstr(h, "destination-account").unwrap_or(&ctx.path.account);
    let dst = SwiftPath::object(dest_account, &dc, &dobj);
    copy(api, ctx, h, &ctx.path, &dst).await
}

/// `PUT /v1/a/c/o` with `X-Copy-From: c0/o0` (and `X-Copy-From-Account`), no body.
pub(crate) async fn put_from(api: &SwiftApi, ctx: &RequestCtx, h: &HeaderMap) -> Res {
    if hstr(h, "content-length").is_some_and(|l| l.trim() != "0")
        || h.contains_key("transfer-encoding")
    {
        return Err(ProxyError::bad_request(
            "Copy requests require a zero byte body",
        ));
    }
    let src = h
        .get("x-copy-from")
        .ok_or_precondition("X-Copy-From header required")?;
    let src = decode_copy_path(src)?;
    let src_account = hstr(h, "x-copy-from-account").unwrap_or(&ctx.path.account);
    let (sc, so) = split_copy_path(&src, "X-Copy-From")?;
    let src = SwiftPath::object(src_account, &sc, &so);
    copy(api, ctx, h, &src, &ctx.path).await
}

/// Server-side copy, in Swift's order: the source must be readable and exist
/// (GET it, honouring Range and conditionals), then the destination must be
/// writable; it is PUT with the source's metadata merged with the request's
/// (only the request's with X-Fresh-Metadata).
async fn copy(
    api: &SwiftApi,
    ctx: &RequestCtx,
    req_headers: &HeaderMap,
    src: &SwiftPath,
    dst: &SwiftPath,
) -> Res {
    let sinfo = api.container_info(ctx, &src.account, src.c()).await?;
    let sacl = sinfo.as_ref().and_then(|i| i.read_acl.clone());
    api.authorize(ctx, &Method::GET, src, sacl.as_deref())
        .await?;
    if sinfo.is_none() {
        return Err(ProxyError::NotFound);
    }
    let mut get_h = HeaderMap::new();
    for k in [
        "range",
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
    ] {
        if let Some(v) = req_headers.get(k) {
            get_h.insert(k, v.clone());
        }
    }
    let sresp = api
        .call(
            ctx,
            Target::Object(&src.account, src.c(), src.o()),
            Method::GET,
            get_h,
            None,
            body::empty(),
        )
        .await?;
    if !sresp.status().is_success() {
        return Ok(client_response(sresp, false));
    }
    let dinfo = api.container_info(ctx, &dst.account, dst.c()).await?;
    let dacl = dinfo.as_ref().and_then(|i| i.write_acl.clone());
    api.authorize(ctx, &Method::PUT, dst, dacl.as_deref())
        .await?;
    if dinfo.is_none() {
        return Err(ProxyError::NotFound);
    }
    if dst.o().len() > MAX_OBJECT_NAME_LENGTH {
        return Err(ProxyError::NameTooLong {
            kind: Name::Object,
            len: dst.o().len(),
            max: MAX_OBJECT_NAME_LENGTH,
        });
    }
    let (sparts, sbody) = sresp.into_parts();
    let fresh = hstr(req_headers, "x-fresh-metadata").is_some_and(wire::is_true);
    let mut h = HeaderMap::new();
    for (k, v) in &sparts.headers {
        // Fresh metadata drops the source's metadata, never its content type.
        if k == "content-type" || (!fresh && wire::is_persisted(k.as_str())) {
            h.append(k.clone(), v.clone());
        }
    }
    if sparts.status.as_u16() == 206
        && sparts
            .headers
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"multipart/byteranges"))
    {
        // Several ranges: the copy is the multipart body, as Swift stores it.
        h.insert("content-type", sparts.headers["content-type"].clone());
    }
    for (k, v) in backend_headers(req_headers) {
        let Some(k) = k else { continue };
        if wire::is_persisted(k.as_str())
            || k == "content-type"
            || k == "x-delete-at"
            || k == "x-delete-after"
        {
            h.insert(k, v);
        }
    }
    if let Some(len) = sparts.headers.get("content-length") {
        h.insert("content-length", len.clone());
    }
    if !h.contains_key("content-type") {
        h.insert(
            "content-type",
            HeaderValue::from_static("application/octet-stream"),
        );
    }
    apply_removals_object(&mut h);
    check_metadata(&h, "object")?;
    delete_at_headers(&mut h, Timestamp::now().secs())?;
    h.insert("x-timestamp", ts_header(api.next_ts()));
    let resp = api
        .call(
            ctx,
            Target::Object(&dst.account, dst.c(), dst.o()),
            Method::PUT,
            h,
            None,
            sbody,
        )
        .await?;
    let mut resp = put_response(resp);
    if resp.status().is_success() {
        let rh = resp.headers_mut();
        let from = format!(
            "{}/{}",
            wire::enc(src.c()),
            percent_encoding::utf8_percent_encode(src.o(), COPY_PATH)
        );
        if let Ok(v) = HeaderValue::from_str(&from) {
            rh.insert("x-copied-from", v);
        }
        if let Ok(v) = HeaderValue::from_str(&src.account) {
            rh.insert("x-copied-from-account", v);
        }
        if let Some(lm) = sparts.headers.get("last-modified") {
            rh.insert("x-copied-from-last-modified", lm.clone());
        }
    }
    Ok(resp)
}

const COPY_PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// X-Copy-From and Destination values are percent-encoded paths.
/// They may also carry raw UTF-8, which `to_str` would refuse.
fn decode_copy_path(v: &HeaderValue) -> Result<String, ProxyError> {
    let s = percent_encoding::percent_decode(v.as_bytes())
        .decode_utf8()
        .map_err(|_| ProxyError::InvalidUtf8)?;
    if s.contains('\0') {
        return Err(ProxyError::InvalidUtf8);
    }
    Ok(s.into_owned())
}

/// `container/object` (leading `/` optional) of X-Copy-From or Destination.
fn split_copy_path(v: &str, header: &str) -> Result<(String, String), ProxyError> {
    let v = v.strip_prefix('/').unwrap_or(v);
    match v.split_once('/') {
        Some((c, o)) if !c.is_empty() && !o.is_empty() => Ok((c.to_string(), o.to_string())),
        _ => Err(ProxyError::precondition(format!(
            "{header} header must be of the form <container name>/<object name>"
        ))),
    }
}
