//! Headers between client and storage: what passes to the storage, what the
//! client may see of the answer, and the owner-only ones.

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::Response;
use wire::body::Body;
use wire::reply;
use wire::timestamp::Timestamp;

use crate::auth;

/// Headers only an owner may see or set (Swift's `swift_owner_headers`).
pub(crate) const OWNER_HEADERS: &[&str] = &[
    "x-container-read",
    "x-container-write",
    "x-container-sync-key",
    "x-container-sync-to",
    "x-account-meta-temp-url-key",
    "x-account-meta-temp-url-key-2",
    "x-container-meta-temp-url-key",
    "x-container-meta-temp-url-key-2",
    "x-account-access-control",
];

pub(crate) const ACCOUNT_ACL_SYSMETA: &str = "x-account-sysmeta-core-access-control";

pub(crate) fn hstr<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Headers passed to storage: everything but hop-by-hop and credentials.
pub(crate) fn backend_headers(h: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(h.len());
    for (k, v) in h {
        let n = k.as_str();
        if matches!(
            n,
            "host"
                | "connection"
                | "keep-alive"
                | "x-auth-token"
                | "x-storage-token"
                | "x-service-token"
                | "expect"
                | "te"
                | "upgrade"
                | "proxy-authorization"
        ) || n.starts_with("x-backend-")
            || n.contains("-sysmeta-")
        {
            continue;
        }
        out.append(k.clone(), v.clone());
    }
    out
}

pub(crate) fn ts_header(ts: Timestamp) -> HeaderValue {
    HeaderValue::from_str(&ts.to_string()).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// The storage's answer as the client sees it: no backend or sysmeta headers,
/// owner-only headers for owners, the account ACL under its public name.
pub(crate) fn client_response(resp: Response<Body>, owner: bool) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    let acl = parts.headers.remove(ACCOUNT_ACL_SYSMETA);
    let drop: Vec<HeaderName> = parts
        .headers
        .keys()
        .filter(|k| {
            let n = k.as_str();
            n.starts_with("x-backend-")
                || n.contains("-sysmeta-")
                || (!owner && OWNER_HEADERS.contains(&n))
        })
        .cloned()
        .collect();
    for k in drop {
        parts.headers.remove(k);
    }
    if owner {
        if let Some(v) = acl.filter(|v| {
            auth::parse_account_acl(v.to_str().unwrap_or("")).is_ok_and(|a| !a.is_empty())
        }) {
            parts.headers.insert("x-account-access-control", v);
        }
    }
    Response::from_parts(parts, body)
}

pub(crate) fn put_response(resp: Response<Body>) -> Response<Body> {
    let status = resp.status().as_u16();
    if status == 409 {
        // A newer write won the race: Swift's proxy answers 202 Accepted.
        return reply::status(202);
    }
    let mut resp = client_response(resp, false);
    if status == 201 {
        resp.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("text/html; charset=UTF-8"),
        );
    }
    resp
}
