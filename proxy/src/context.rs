//! What every handler and every backend request knows about the request being
//! served: its parsed path, the caller, the trans-id and the referrer. The
//! router builds it once; handlers get it as an argument and pass it to the
//! storage client, so spawned work (DLO segment reads, later job nodes) carries
//! the trans-id too.

use std::fmt;
use std::sync::Arc;

use axum_core::extract::FromRequestParts;
use http::request::Parts;

use crate::auth::Identity;
use crate::error::ProxyError;

/// Swift's trans-id: `tx` + 21 hex digits + `-` + the time in hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransId(Arc<str>);

impl TransId {
    pub fn new() -> TransId {
        let r: u128 = rand::random();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        TransId(format!("tx{:021x}-{now:010x}", r & ((1u128 << 84) - 1)).into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TransId {
    fn default() -> Self {
        TransId::new()
    }
}

impl fmt::Display for TransId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `/v1/<account>[/<container>[/<object>]]`, percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwiftPath {
    pub account: String,
    pub container: Option<String>,
    pub object: Option<String>,
}

impl SwiftPath {
    /// Decodes a raw request path: 412 for bad UTF-8 or a NUL, 404 for a path
    /// that is not a Swift path (an object without a container, no account).
    pub fn parse(raw: &str) -> Result<SwiftPath, ProxyError> {
        let decoded = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| ProxyError::InvalidUtf8)?;
        if decoded.contains('\0') {
            return Err(ProxyError::InvalidUtf8);
        }
        let rest = decoded.strip_prefix("/v1/").ok_or(ProxyError::NotFound)?;
        let mut it = rest.splitn(3, '/');
        let account = it.next().unwrap_or("").to_string();
        if account.is_empty() {
            return Err(ProxyError::NotFound);
        }
        let container = it.next().filter(|c| !c.is_empty()).map(str::to_string);
        let object = it.next().filter(|o| !o.is_empty()).map(str::to_string);
        if container.is_none() && object.is_some() {
            return Err(ProxyError::NotFound);
        }
        Ok(SwiftPath {
            account,
            container,
            object,
        })
    }

    pub fn object(a: &str, c: &str, o: &str) -> SwiftPath {
        SwiftPath {
            account: a.into(),
            container: Some(c.into()),
            object: Some(o.into()),
        }
    }

    /// The container name ("" for an account path).
    /// `/a`, `/a/c` or `/a/c/o`, names as they are (not encoded).
    pub fn path_info(&self) -> String {
        let mut p = format!("/{}", self.account);
        for name in [&self.container, &self.object].into_iter().flatten() {
            p.push('/');
            p.push_str(name);
        }
        p
    }

    pub fn c(&self) -> &str {
        self.container.as_deref().unwrap_or("")
    }

    /// The object name ("" for an account or container path).
    pub fn o(&self) -> &str {
        self.object.as_deref().unwrap_or("")
    }

    /// `/v1/<account>[/<container>[/<object>]]`, each name one
    /// percent-encoded segment (as a Swift proxy is sent it).
    pub fn v1_path(&self) -> String {
        v1_path(
            &self.account,
            self.container.as_deref(),
            self.object.as_deref(),
        )
    }
}

/// `/v1/<account>[/<container>[/<object>]]`, each name percent-encoded.
pub fn v1_path(account: &str, container: Option<&str>, object: Option<&str>) -> String {
    let mut p = format!("/v1/{}", wire::enc(account));
    for name in [container, object].into_iter().flatten() {
        p.push('/');
        p.push_str(&wire::enc(name));
    }
    p
}

/// The request context handlers receive (an axum extractor).
#[derive(Debug, Clone)]
pub struct RequestCtx {
    pub path: SwiftPath,
    pub identity: Identity,
    pub trans_id: TransId,
    pub referrer: Option<String>,
    /// The app a job request runs (its `X-Zerovm-Source`, or the REST
    /// endpoint): what the setuid rule compares with a container's
    /// `Rest-Endpoint` (spec/zerocloud.md §1.7). `None` outside jobs.
    pub app_source: Option<String>,
    /// The caller's own `X-Auth-Token`, sent with every storage request
    /// made for it when the storage's auth decides (an OpenStack Swift
    /// backend: `Storage::caller_credentials`). `None` on our own store,
    /// whose proxy authorizes.
    pub credential: Option<hyper::header::HeaderValue>,
    /// The accesses the setuid rule granted the job being run, made with
    /// the proxy's setuid user instead of `credential`
    /// (`crate::swift_setuid`). `None` where the proxy authorizes (our
    /// store); each job starts with none.
    pub setuid_grants: Option<crate::swift_setuid::SetuidGrants>,
}

impl RequestCtx {
    /// This request's context for a job that runs the app `source` (or
    /// none): the setuid rule compares it with containers' metas, and
    /// what the rule grants is that job's alone.
    pub fn running_app(&self, source: Option<String>) -> RequestCtx {
        RequestCtx {
            app_source: source,
            setuid_grants: self.setuid_grants.as_ref().map(|_| Default::default()),
            ..self.clone()
        }
    }
}

/// Moved out of the request to its handler (no copy per request): a
/// handler takes it once.
impl<S: Send + Sync> FromRequestParts<S> for RequestCtx {
    type Rejection = ProxyError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .remove::<RequestCtx>()
            .ok_or_else(|| ProxyError::Internal("no request context on a /v1 route".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let p = SwiftPath::parse("/v1/AUTH_a/c/o/with/slashes").unwrap();
        assert_eq!(p.object.as_deref(), Some("o/with/slashes"));
        assert_eq!(p.v1_path(), "/v1/AUTH_a/c/o%2Fwith%2Fslashes");
        let p = SwiftPath::parse("/v1/AUTH_a/c/").unwrap();
        assert!(p.object.is_none());
        assert_eq!(p.v1_path(), "/v1/AUTH_a/c");
        assert!(matches!(
            SwiftPath::parse("/v1/a/%ff"),
            Err(ProxyError::InvalidUtf8)
        ));
        assert!(matches!(
            SwiftPath::parse("/v1/a/%00"),
            Err(ProxyError::InvalidUtf8)
        ));
        assert!(matches!(
            SwiftPath::parse("/v1//c"),
            Err(ProxyError::NotFound)
        ));
        assert!(matches!(
            SwiftPath::parse("/v1/a//o"),
            Err(ProxyError::NotFound)
        ));
    }

    #[test]
    fn trans_ids_look_like_swifts() {
        let t = TransId::new();
        assert!(
            t.as_str().starts_with("tx") && t.as_str().len() == 2 + 21 + 1 + 10,
            "{t}"
        );
        assert_ne!(t, TransId::new());
    }
}
