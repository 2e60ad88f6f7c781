//! CORS as Swift does it, from a container's `X-Container-Meta-Access-Control-*`
//! metadata: pre-flight OPTIONS, and the allow/expose headers on actual requests
//! (strict mode: nothing for origins the container does not allow).

use hyper::header::{HeaderMap, HeaderValue};
use hyper::Response;
use wire::body::{self, Body};

pub const ALLOWED_METHODS: &str = "HEAD, GET, PUT, POST, COPY, OPTIONS, DELETE";

/// A container's CORS settings.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    pub allow_origin: Option<String>,
    pub max_age: Option<String>,
    pub expose_headers: Option<String>,
}

impl Cors {
    pub fn from_headers(h: &HeaderMap) -> Cors {
        let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
        Cors {
            allow_origin: get("x-container-meta-access-control-allow-origin"),
            max_age: get("x-container-meta-access-control-max-age"),
            expose_headers: get("x-container-meta-access-control-expose-headers"),
        }
    }

    pub fn allows(&self, origin: &str) -> bool {
        self.allow_origin
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .map(str::trim)
            .any(|a| !a.is_empty() && (a == origin || a == "*"))
    }

    fn wildcard(&self) -> bool {
        self.allow_origin
            .as_deref()
            .is_some_and(|a| a.trim() == "*")
    }
}

fn set(h: &mut HeaderMap, k: &'static str, v: &str) {
    if let Ok(v) = HeaderValue::from_str(v) {
        h.insert(k, v);
    }
}

/// The answer to OPTIONS: 200 with `Allow` without an Origin; with one, 200 and
/// the allow headers if the container allows that origin and method, else 401.
pub fn preflight(cors: Option<&Cors>, req: &HeaderMap) -> Response<Body> {
    let mut resp = wire::reply::status(200);
    let h = resp.headers_mut();
    set(h, "allow", ALLOWED_METHODS);
    let Some(origin) = req.get("origin").and_then(|v| v.to_str().ok()) else {
        return resp;
    };
    let method = req
        .get("access-control-request-method")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(cors) = cors.filter(|c| c.allows(origin)) else {
        return wire::reply::status(401);
    };
    if !ALLOWED_METHODS.split(", ").any(|m| m == method) {
        return wire::reply::status(401);
    }
    let mut vary = vec![];
    if cors.wildcard() {
        set(h, "access-control-allow-origin", "*");
    } else {
        set(h, "access-control-allow-origin", origin);
        vary.push("Origin");
    }
    if let Some(age) = &cors.max_age {
        set(h, "access-control-max-age", age);
    }
    set(h, "access-control-allow-methods", ALLOWED_METHODS);
    if let Some(asked) = req
        .get("access-control-request-headers")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
    {
        set(h, "access-control-allow-headers", asked);
        vary.push("Access-Control-Request-Headers");
    }
    if !vary.is_empty() {
        set(h, "vary", &vary.join(", "));
    }
    *resp.body_mut() = body::empty();
    resp
}

/// Adds the CORS headers to an actual request's response.
pub fn decorate(resp: &mut Response<Body>, cors: &Cors, origin: &str) {
    if !cors.allows(origin) {
        return;
    }
    let h = resp.headers_mut();
    if !h.contains_key("access-control-expose-headers") {
        let mut expose: Vec<String> = [
            "cache-control",
            "content-language",
            "content-type",
            "expires",
            "last-modified",
            "pragma",
            "etag",
            "x-timestamp",
            "x-trans-id",
            "x-openstack-request-id",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for k in h.keys() {
            let k = k.as_str();
            if k.starts_with("x-container-meta") || k.starts_with("x-object-meta") {
                expose.push(k.to_string());
            }
        }
        if let Some(extra) = &cors.expose_headers {
            expose.extend(
                extra
                    .split(' ')
                    .map(|s| s.trim().to_lowercase())
                    .filter(|s| !s.is_empty()),
            );
        }
        expose.sort();
        expose.dedup();
        set(h, "access-control-expose-headers", &expose.join(", "));
    }
    if !h.contains_key("access-control-allow-origin") {
        if cors.wildcard() {
            set(h, "access-control-allow-origin", "*");
        } else {
            set(h, "access-control-allow-origin", origin);
            let vary = match h.get("vary").and_then(|v| v.to_str().ok()) {
                Some(v) => format!("{v}, Origin"),
                None => "Origin".into(),
            };
            set(h, "vary", &vary);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origin: &str) -> Cors {
        Cors {
            allow_origin: Some(origin.into()),
            ..Default::default()
        }
    }

    #[test]
    fn preflight_rules() {
        let mut req = HeaderMap::new();
        assert_eq!(preflight(None, &req).status(), 200);
        req.insert("origin", HeaderValue::from_static("http://m.com"));
        assert_eq!(preflight(Some(&cors("*")), &req).status(), 401);
        req.insert(
            "access-control-request-method",
            HeaderValue::from_static("GET"),
        );
        let r = preflight(Some(&cors("*")), &req);
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
        assert_eq!(
            preflight(Some(&cors("http://other.com")), &req).status(),
            401
        );
        let r = preflight(Some(&cors("http://a.com http://m.com")), &req);
        assert_eq!(r.headers()["access-control-allow-origin"], "http://m.com");
        assert_eq!(preflight(None, &req).status(), 401);
    }
}
