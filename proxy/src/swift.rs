//! The Swift v1 API: `/v1/<account>[/<container>[/<object>]]`. Validation and
//! authorization happen here; the storage behind `Storage` does the rest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response};
use wire::body::{self, Body};
use wire::reply;
use wire::timestamp::Timestamp;

use crate::auth::{self, AccountAcl, AuthzRequest, Decision, Identity, TempAuth};
use crate::config::ProxyConfig;
use crate::error::ProxyError;
use crate::mime;
use crate::storage::{Storage, Target};

pub const MAX_FILE_SIZE: u64 = 5_368_709_122;
pub const MAX_META_NAME_LENGTH: usize = 128;
pub const MAX_META_VALUE_LENGTH: usize = 256;
pub const MAX_META_COUNT: usize = 90;
pub const MAX_META_OVERALL_SIZE: usize = 4096;
pub const MAX_HEADER_SIZE: usize = 8192;
pub const MAX_OBJECT_NAME_LENGTH: usize = 1024;
pub const MAX_CONTAINER_NAME_LENGTH: usize = 256;
pub const MAX_ACCOUNT_NAME_LENGTH: usize = 256;
pub const CONTAINER_LISTING_LIMIT: usize = 10_000;
pub const ACCOUNT_LISTING_LIMIT: usize = 10_000;

type Res = Result<Response<Body>, ProxyError>;

/// Headers only an owner may see or set (Swift's `swift_owner_headers`).
const OWNER_HEADERS: &[&str] = &[
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

const ACCOUNT_ACL_SYSMETA: &str = "x-account-sysmeta-core-access-control";

#[derive(Clone, Default)]
pub(crate) struct ContainerInfo {
    pub(crate) read_acl: Option<String>,
    pub(crate) write_acl: Option<String>,
    pub(crate) cors: crate::cors::Cors,
}

/// A cached lookup: when it was made, and what it found (None: does not exist).
type Cached<T> = (Instant, Option<T>);

/// The Swift API state: auth, storage, and short-lived caches of container and
/// account info (invalidated by writes through this proxy).
pub struct SwiftApi {
    pub auth: TempAuth,
    pub storage: Arc<dyn Storage>,
    cfg: ProxyConfig,
    containers: Mutex<HashMap<(String, String), Cached<ContainerInfo>>>,
    accounts: Mutex<HashMap<String, Cached<AccountAcl>>>,
    clock: Mutex<Timestamp>,
}

/// One parsed request path.
pub(crate) struct Path {
    pub(crate) account: String,
    pub(crate) container: Option<String>,
    pub(crate) object: Option<String>,
}

/// Decodes `/v1/a/c/o` (percent-encoded) into its parts.
fn parse_path(raw: &str) -> Result<Path, ProxyError> {
    let invalid = || ProxyError::Text(412, "Invalid UTF8 or contains NULL".into());
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| invalid())?;
    if decoded.contains('\0') {
        return Err(invalid());
    }
    let rest = decoded
        .strip_prefix("/v1/")
        .ok_or(ProxyError::Status(404))?;
    let mut it = rest.splitn(3, '/');
    let account = it.next().unwrap_or("").to_string();
    if account.is_empty() {
        return Err(ProxyError::Status(404));
    }
    let container = it.next().filter(|c| !c.is_empty()).map(str::to_string);
    let object = it.next().filter(|o| !o.is_empty()).map(str::to_string);
    if container.is_none() && object.is_some() {
        return Err(ProxyError::Status(404));
    }
    Ok(Path {
        account,
        container,
        object,
    })
}

fn hstr<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Swift's `check_metadata` for `x-<kind>-meta-*` headers.
pub fn check_metadata(h: &HeaderMap, kind: &str) -> Result<(), ProxyError> {
    let prefix = format!("x-{kind}-meta-");
    let (mut count, mut size) = (0usize, 0usize);
    for (k, v) in h {
        let key = k.as_str();
        if v.len() > MAX_HEADER_SIZE {
            let short: String = key.chars().take(MAX_META_NAME_LENGTH).collect();
            return Err(ProxyError::bad_request(format!(
                "Header value too long: {}",
                title_case(&short)
            )));
        }
        let Some(name) = key.strip_prefix(&prefix) else {
            continue;
        };
        if name.is_empty() {
            return Err(ProxyError::bad_request("Metadata name cannot be empty"));
        }
        if kind != "object" && std::str::from_utf8(v.as_bytes()).is_err() {
            return Err(ProxyError::bad_request("Metadata must be valid UTF-8"));
        }
        count += 1;
        size += name.len() + v.len();
        if name.len() > MAX_META_NAME_LENGTH {
            return Err(ProxyError::bad_request(format!(
                "Metadata name too long: {prefix}{}",
                title_case(name)
            )));
        }
        if v.len() > MAX_META_VALUE_LENGTH {
            return Err(ProxyError::bad_request(format!(
                "Metadata value longer than {MAX_META_VALUE_LENGTH}: {prefix}{}",
                title_case(name)
            )));
        }
        if count > MAX_META_COUNT {
            return Err(ProxyError::bad_request(format!(
                "Too many metadata items; max {MAX_META_COUNT}"
            )));
        }
        if size > MAX_META_OVERALL_SIZE {
            return Err(ProxyError::bad_request(format!(
                "Total metadata too large; max {MAX_META_OVERALL_SIZE}"
            )));
        }
    }
    Ok(())
}

/// `x-object-meta-color` → `X-Object-Meta-Color`, as Swift prints header names.
pub fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut up = true;
    for c in s.chars() {
        if up {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        up = c == '-';
    }
    out
}

/// `X-Remove-<Kind>-Meta-Foo` → `X-<Kind>-Meta-Foo: ""` (and the ACL headers).
fn apply_removals(h: &mut HeaderMap, kind: &str) {
    let prefix = format!("x-remove-{kind}-");
    let removals: Vec<HeaderName> = h
        .keys()
        .filter_map(|k| {
            let rest = k.as_str().strip_prefix(&prefix)?;
            HeaderName::from_bytes(format!("x-{kind}-{rest}").as_bytes()).ok()
        })
        .collect();
    for extra in ["versions-location", "history-location"] {
        if h.contains_key(format!("x-remove-{extra}").as_str()) && kind == "container" {
            if let Ok(n) = HeaderName::from_bytes(format!("x-{extra}").as_bytes()) {
                h.insert(n, HeaderValue::from_static(""));
            }
        }
    }
    for n in removals {
        h.insert(n, HeaderValue::from_static(""));
    }
}

fn delete_at_headers(h: &mut HeaderMap, now: u64) -> Result<(), ProxyError> {
    if let Some(v) = h.get("x-delete-after") {
        let after: i64 = v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| ProxyError::bad_request("Non-integer X-Delete-After"))?;
        let at = now as i64 + after;
        if at <= now as i64 {
            return Err(ProxyError::bad_request("X-Delete-After in past"));
        }
        h.remove("x-delete-after");
        h.insert("x-delete-at", HeaderValue::from(at));
    }
    if let Some(v) = h.get("x-delete-at") {
        let at = v
            .to_str()
            .ok()
            .and_then(wire::parse_delete_at)
            .ok_or_else(|| ProxyError::bad_request("Non-integer X-Delete-At"))?;
        if at <= now {
            return Err(ProxyError::bad_request("X-Delete-At in past"));
        }
        h.insert("x-delete-at", HeaderValue::from(at));
    }
    Ok(())
}

/// Headers passed to storage: everything but hop-by-hop and credentials.
fn backend_headers(h: &HeaderMap) -> HeaderMap {
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

impl SwiftApi {
    pub fn new(cfg: ProxyConfig, storage: Arc<dyn Storage>) -> anyhow::Result<SwiftApi> {
        Ok(SwiftApi {
            auth: TempAuth::new(&cfg.users, cfg.token_life)?,
            storage,
            cfg,
            containers: Mutex::new(HashMap::new()),
            accounts: Mutex::new(HashMap::new()),
            clock: Mutex::new(Timestamp(0)),
        })
    }

    /// A timestamp later than every one handed out before: writes through this
    /// proxy are totally ordered.
    fn next_ts(&self) -> Timestamp {
        let mut last = self.clock.lock().unwrap_or_else(|p| p.into_inner());
        let now = Timestamp::now().max(Timestamp(last.0 + 1));
        *last = now;
        now
    }

    fn ttl(&self) -> Duration {
        Duration::from_secs_f64(self.cfg.info_cache_ttl.max(0.0))
    }

    pub(crate) async fn call(
        &self,
        target: Target<'_>,
        method: Method,
        headers: HeaderMap,
        query: Option<&str>,
        body: Body,
    ) -> Res {
        let uri = match query {
            Some(q) => format!("/?{q}"),
            None => "/".into(),
        };
        let mut req = Request::builder().method(method).uri(uri).body(body)?;
        *req.headers_mut() = headers;
        self.storage.send(target, req).await
    }

    pub(crate) async fn container_info(
        &self,
        a: &str,
        c: &str,
    ) -> Result<Option<ContainerInfo>, ProxyError> {
        let key = (a.to_string(), c.to_string());
        if let Some((t, info)) = self
            .containers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            if t.elapsed() < self.ttl() {
                return Ok(info.clone());
            }
        }
        let resp = self
            .call(
                Target::Container(a, c),
                Method::HEAD,
                HeaderMap::new(),
                None,
                body::empty(),
            )
            .await?;
        let info = if resp.status().is_success() {
            let h = resp.headers();
            Some(ContainerInfo {
                read_acl: hstr(h, "x-container-read").map(str::to_string),
                write_acl: hstr(h, "x-container-write").map(str::to_string),
                cors: crate::cors::Cors::from_headers(h),
            })
        } else if resp.status().as_u16() == 404 {
            None
        } else {
            return Err(ProxyError::Status(503));
        };
        self.containers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (Instant::now(), info.clone()));
        Ok(info)
    }

    fn forget_container(&self, a: &str, c: &str) {
        self.containers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(a.to_string(), c.to_string()));
    }

    async fn account_acl(&self, a: &str) -> Result<Option<AccountAcl>, ProxyError> {
        if let Some((t, acl)) = self
            .accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(a)
        {
            if t.elapsed() < self.ttl() {
                return Ok(acl.clone());
            }
        }
        let resp = self
            .call(
                Target::Account(a),
                Method::HEAD,
                HeaderMap::new(),
                None,
                body::empty(),
            )
            .await?;
        let acl =
            hstr(resp.headers(), ACCOUNT_ACL_SYSMETA).and_then(|v| auth::parse_account_acl(v).ok());
        self.accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(a.to_string(), (Instant::now(), acl.clone()));
        Ok(acl)
    }

    /// Authorizes or returns 401/403. Returns whether the caller is an owner.
    pub(crate) async fn authorize(
        &self,
        id: &Identity,
        method: &Method,
        p: &Path,
        acl: Option<&str>,
        referrer: Option<&str>,
    ) -> Result<bool, ProxyError> {
        let quick = AuthzRequest {
            method: method.as_str(),
            account: &p.account,
            container: p.container.as_deref(),
            object: p.object.as_deref(),
            referrer,
            acl,
            account_acl: None,
        };
        match auth::authorize(id, &quick) {
            Decision::Allow { owner } => return Ok(owner),
            Decision::Deny if id.is_anonymous() => return Err(ProxyError::Status(401)),
            Decision::Deny => {}
        }
        // Account ACLs only matter for authenticated callers who are not owners.
        let account_acl = self.account_acl(&p.account).await?;
        let full = AuthzRequest {
            account_acl: account_acl.as_ref(),
            ..quick
        };
        match auth::authorize(id, &full) {
            Decision::Allow { owner } => Ok(owner),
            Decision::Deny => Err(ProxyError::Status(403)),
        }
    }

    /// Entry point for `/v1/...`.
    pub async fn handle(&self, req: Request<hyper::body::Incoming>, id: Identity) -> Res {
        let p = parse_path(req.uri().path())?;
        if p.account.len() > MAX_ACCOUNT_NAME_LENGTH {
            return Err(ProxyError::bad_request(format!(
                "Account name length of {} longer than {MAX_ACCOUNT_NAME_LENGTH}",
                p.account.len()
            )));
        }
        let origin = hstr(req.headers(), "origin").map(str::to_string);
        let cors = match (&origin, &p.container) {
            (Some(_), Some(c)) => self.container_info(&p.account, c).await?.map(|i| i.cors),
            _ => None,
        };
        if req.method() == Method::OPTIONS {
            if origin.is_some() && p.container.is_none() {
                // No container, no CORS settings: a plain answer (as Swift).
                return Ok(crate::cors::preflight(None, &HeaderMap::new()));
            }
            return Ok(crate::cors::preflight(cors.as_ref(), req.headers()));
        }
        let result = match (&p.container, &p.object) {
            (None, _) => self.account(req, p, id).await,
            (Some(_), None) => self.container(req, p, id).await,
            (Some(_), Some(_)) => self.object(req, p, id).await,
        };
        let (Some(origin), Some(cors)) = (origin, cors) else {
            return result;
        };
        let mut resp = result.unwrap_or_else(ProxyError::into_response);
        crate::cors::decorate(&mut resp, &cors, &origin);
        Ok(resp)
    }

    // ---- accounts ---------------------------------------------------------------

    async fn account(&self, req: Request<hyper::body::Incoming>, p: Path, id: Identity) -> Res {
        let m = req.method().clone();
        let referrer = hstr(req.headers(), "referer").map(str::to_string);
        match m {
            Method::GET | Method::HEAD => {
                let owner = self
                    .authorize(&id, &m, &p, None, referrer.as_deref())
                    .await?;
                let h = backend_headers(req.headers());
                let resp = self
                    .call(
                        Target::Account(&p.account),
                        m,
                        h,
                        req.uri().query(),
                        body::empty(),
                    )
                    .await?;
                Ok(client_response(resp, owner))
            }
            Method::POST => {
                let owner = self
                    .authorize(&id, &m, &p, None, referrer.as_deref())
                    .await?;
                let mut h = backend_headers(req.headers());
                // Removals do not count towards the limits (Swift checks first).
                check_metadata(&h, "account")?;
                apply_removals(&mut h, "account");
                if let Some(v) = h.remove("x-account-access-control") {
                    if !owner {
                        return Err(ProxyError::Status(403));
                    }
                    let s = v.to_str().unwrap_or("");
                    if !s.is_empty() {
                        auth::parse_account_acl(s).map_err(|e| {
                            ProxyError::Text(
                                400,
                                format!("X-Account-Access-Control invalid: {e}\n\nInput: {s}\n"),
                            )
                        })?;
                    }
                    h.insert(ACCOUNT_ACL_SYSMETA, v);
                }
                if !owner {
                    for k in OWNER_HEADERS {
                        h.remove(*k);
                    }
                }
                h.insert("x-timestamp", ts_header(self.next_ts()));
                let resp = self
                    .call(Target::Account(&p.account), m, h, None, body::empty())
                    .await?;
                self.accounts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&p.account);
                Ok(client_response(resp, owner))
            }
            Method::PUT | Method::DELETE => {
                // Account management is off, as in a default Swift proxy.
                let mut r = reply::status(405);
                r.headers_mut().insert(
                    "allow",
                    HeaderValue::from_static("HEAD, GET, POST, OPTIONS"),
                );
                Ok(r)
            }
            _ => Ok(method_not_allowed()),
        }
    }

    // ---- containers ---------------------------------------------------------------

    async fn container(&self, req: Request<hyper::body::Incoming>, p: Path, id: Identity) -> Res {
        let m = req.method().clone();
        let a = p.account.clone();
        let c = p.container.clone().unwrap_or_default();
        let referrer = hstr(req.headers(), "referer").map(str::to_string);
        match m {
            Method::GET | Method::HEAD => {
                let info = self.container_info(&a, &c).await?;
                let acl = info.as_ref().and_then(|i| i.read_acl.clone());
                let owner = self
                    .authorize(&id, &m, &p, acl.as_deref(), referrer.as_deref())
                    .await?;
                if info.is_none() {
                    return Err(ProxyError::Status(404));
                }
                let h = backend_headers(req.headers());
                let resp = self
                    .call(
                        Target::Container(&a, &c),
                        m,
                        h,
                        req.uri().query(),
                        body::empty(),
                    )
                    .await?;
                Ok(client_response(resp, owner))
            }
            Method::PUT | Method::POST => {
                let owner = self
                    .authorize(&id, &m, &p, None, referrer.as_deref())
                    .await?;
                if m == Method::PUT && c.len() > MAX_CONTAINER_NAME_LENGTH {
                    return Err(ProxyError::Html(
                        400,
                        format!(
                            "Container name length of {} longer than {MAX_CONTAINER_NAME_LENGTH}",
                            c.len()
                        ),
                    ));
                }
                if let Some(policy) = hstr(req.headers(), "x-storage-policy") {
                    if m == Method::PUT
                        && !policy.is_empty()
                        && !policy.eq_ignore_ascii_case("Policy-0")
                    {
                        return Err(ProxyError::bad_request(format!(
                            "Invalid X-Storage-Policy '{policy}'"
                        )));
                    }
                }
                let mut h = backend_headers(req.headers());
                check_metadata(&h, "container")?;
                apply_removals(&mut h, "container");
                for name in ["x-container-read", "x-container-write"] {
                    if let Some(v) = h.get(name) {
                        let s = v
                            .to_str()
                            .map_err(|_| ProxyError::bad_request("Invalid ACL"))?;
                        let cleaned = auth::clean_acl(name, s).map_err(ProxyError::bad_request)?;
                        h.insert(
                            name,
                            HeaderValue::from_str(&cleaned)
                                .map_err(|_| ProxyError::bad_request("Invalid ACL"))?,
                        );
                    }
                }
                if !owner {
                    for k in OWNER_HEADERS {
                        h.remove(*k);
                    }
                }
                self.container_write(m, &a, &c, h, owner).await
            }
            Method::DELETE => {
                let owner = self
                    .authorize(&id, &m, &p, None, referrer.as_deref())
                    .await?;
                self.container_write(m, &a, &c, HeaderMap::new(), owner)
                    .await
            }
            _ => Ok(method_not_allowed()),
        }
    }

    /// Sends a container PUT/POST/DELETE (with a fresh timestamp) and drops the
    /// cached info of that container.
    async fn container_write(
        &self,
        m: Method,
        a: &str,
        c: &str,
        mut h: HeaderMap,
        owner: bool,
    ) -> Res {
        h.insert("x-timestamp", ts_header(self.next_ts()));
        let resp = self
            .call(Target::Container(a, c), m, h, None, body::empty())
            .await?;
        self.forget_container(a, c);
        Ok(client_response(resp, owner))
    }

    // ---- objects -----------------------------------------------------------------

    async fn object(&self, req: Request<hyper::body::Incoming>, p: Path, id: Identity) -> Res {
        let m = req.method().clone();
        let a = p.account.clone();
        let c = p.container.clone().unwrap_or_default();
        let o = p.object.clone().unwrap_or_default();
        let referrer = hstr(req.headers(), "referer").map(str::to_string);
        let is_read = matches!(m, Method::GET | Method::HEAD);
        if !matches!(
            m.as_str(),
            "GET" | "HEAD" | "PUT" | "POST" | "DELETE" | "COPY"
        ) {
            return Ok(method_not_allowed());
        }
        if m.as_str() == "COPY" {
            // Both ends are authorized (source first, as Swift) in `copy`.
            return self.copy_method(req, p, id).await;
        }
        if m == Method::PUT {
            if let Some(src) = req.headers().get("x-copy-from") {
                if hstr(req.headers(), "content-length").is_some_and(|l| l.trim() != "0")
                    || req.headers().contains_key("transfer-encoding")
                {
                    return Err(ProxyError::bad_request(
                        "Copy requests require a zero byte body",
                    ));
                }
                let src = decode_copy_path(src)?;
                let src_account = hstr(req.headers(), "x-copy-from-account")
                    .map(str::to_string)
                    .unwrap_or_else(|| a.clone());
                let (sc, so) = split_copy_path(&src, "X-Copy-From")?;
                let headers = req.headers().clone();
                return self
                    .copy(
                        &id,
                        headers,
                        (&src_account, &sc, &so),
                        (&a, &c, &o),
                        referrer.as_deref(),
                    )
                    .await;
            }
        }
        let info = self.container_info(&a, &c).await?;
        let acl = info.as_ref().and_then(|i| {
            if is_read {
                i.read_acl.clone()
            } else {
                i.write_acl.clone()
            }
        });
        self.authorize(&id, &m, &p, acl.as_deref(), referrer.as_deref())
            .await?;
        if info.is_none() {
            return Err(ProxyError::Status(404));
        }
        match m {
            Method::GET | Method::HEAD => {
                let h = backend_headers(req.headers());
                let resp = self
                    .call(
                        Target::Object(&a, &c, &o),
                        m.clone(),
                        h,
                        None,
                        body::empty(),
                    )
                    .await?;
                let want_manifest = req
                    .uri()
                    .query()
                    .is_some_and(|q| q.split('&').any(|kv| kv == "multipart-manifest=get"));
                if resp.headers().contains_key("x-object-manifest") && !want_manifest {
                    let resp = self.dlo_response(&id, &m, &a, req.headers(), resp).await?;
                    return Ok(client_response(resp, false));
                }
                Ok(client_response(resp, false))
            }
            Method::PUT => self.put_object(req, &a, &c, &o).await,
            Method::POST => {
                let mut h = backend_headers(req.headers());
                check_metadata(&h, "object")?;
                delete_at_headers(&mut h, Timestamp::now().secs())?;
                h.insert("x-timestamp", ts_header(self.next_ts()));
                let resp = self
                    .call(Target::Object(&a, &c, &o), m, h, None, body::empty())
                    .await?;
                Ok(client_response(resp, false))
            }
            Method::DELETE => {
                let mut h = backend_headers(req.headers());
                h.insert("x-timestamp", ts_header(self.next_ts()));
                let resp = self
                    .call(Target::Object(&a, &c, &o), m, h, None, body::empty())
                    .await?;
                Ok(client_response(resp, false))
            }
            _ => Ok(method_not_allowed()),
        }
    }

    /// Validates an object PUT as Swift's `check_object_creation` and streams it.
    async fn put_object(
        &self,
        req: Request<hyper::body::Incoming>,
        a: &str,
        c: &str,
        o: &str,
    ) -> Res {
        let (parts, incoming) = req.into_parts();
        let mut h = backend_headers(&parts.headers);
        validate_object_put(&mut h, o, Timestamp::now().secs())?;
        h.insert("x-timestamp", ts_header(self.next_ts()));
        let body = incoming.map_err(std::io::Error::other).boxed();
        let resp = self
            .call(Target::Object(a, c, o), Method::PUT, h, None, body)
            .await?;
        Ok(put_response(resp))
    }

    async fn copy_method(&self, req: Request<hyper::body::Incoming>, p: Path, id: Identity) -> Res {
        let h = req.headers();
        let dest = h
            .get("destination")
            .ok_or_else(|| ProxyError::Text(412, "Destination header required".into()))?;
        let dest = decode_copy_path(dest)?;
        let (dc, dobj) = split_copy_path(&dest, "Destination")?;
        let dest_account = hstr(h, "destination-account")
            .map(str::to_string)
            .unwrap_or_else(|| p.account.clone());
        let referrer = hstr(h, "referer").map(str::to_string);
        let sc = p.container.clone().unwrap_or_default();
        let so = p.object.clone().unwrap_or_default();
        let headers = h.clone();
        self.copy(
            &id,
            headers,
            (&p.account, &sc, &so),
            (&dest_account, &dc, &dobj),
            referrer.as_deref(),
        )
        .await
    }

    /// Server-side copy, in Swift's order: the source must be readable and exist
    /// (GET it, honouring Range and conditionals), then the destination must be
    /// writable; it is PUT with the source's metadata merged with the request's
    /// (only the request's with X-Fresh-Metadata).
    async fn copy(
        &self,
        id: &Identity,
        req_headers: HeaderMap,
        src: (&str, &str, &str),
        dst: (&str, &str, &str),
        referrer: Option<&str>,
    ) -> Res {
        let path = |(a, c, o): (&str, &str, &str)| Path {
            account: a.into(),
            container: Some(c.into()),
            object: Some(o.into()),
        };
        let sinfo = self.container_info(src.0, src.1).await?;
        let sacl = sinfo.as_ref().and_then(|i| i.read_acl.clone());
        self.authorize(id, &Method::GET, &path(src), sacl.as_deref(), referrer)
            .await?;
        if sinfo.is_none() {
            return Err(ProxyError::Status(404));
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
        let sresp = self
            .call(
                Target::Object(src.0, src.1, src.2),
                Method::GET,
                get_h,
                None,
                body::empty(),
            )
            .await?;
        if !sresp.status().is_success() {
            return Ok(client_response(sresp, false));
        }
        let dinfo = self.container_info(dst.0, dst.1).await?;
        let dacl = dinfo.as_ref().and_then(|i| i.write_acl.clone());
        self.authorize(id, &Method::PUT, &path(dst), dacl.as_deref(), referrer)
            .await?;
        if dinfo.is_none() {
            return Err(ProxyError::Status(404));
        }
        if dst.2.len() > MAX_OBJECT_NAME_LENGTH {
            return Err(ProxyError::bad_request(format!(
                "Object name length of {} longer than {MAX_OBJECT_NAME_LENGTH}",
                dst.2.len()
            )));
        }
        let (sparts, sbody) = sresp.into_parts();
        let fresh =
            hstr(&req_headers, "x-fresh-metadata").is_some_and(wire::is_true);
        let mut h = HeaderMap::new();
        for (k, v) in &sparts.headers {
            // Fresh metadata drops the source's metadata, never its content type.
            if k == "content-type"
                || (!fresh && wire::is_persisted(k.as_str()))
            {
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
        for (k, v) in backend_headers(&req_headers) {
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
        h.insert("x-timestamp", ts_header(self.next_ts()));
        let resp = self
            .call(
                Target::Object(dst.0, dst.1, dst.2),
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
                wire::enc(src.1),
                percent_encoding::utf8_percent_encode(src.2, COPY_PATH)
            );
            if let Ok(v) = HeaderValue::from_str(&from) {
                rh.insert("x-copied-from", v);
            }
            if let Ok(v) = HeaderValue::from_str(src.0) {
                rh.insert("x-copied-from-account", v);
            }
            if let Some(lm) = sparts.headers.get("last-modified") {
                rh.insert("x-copied-from-last-modified", lm.clone());
            }
        }
        Ok(resp)
    }
}

const COPY_PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn apply_removals_object(h: &mut HeaderMap) {
    let names: Vec<String> = h
        .keys()
        .filter_map(|k| {
            k.as_str()
                .strip_prefix("x-remove-object-meta-")
                .map(str::to_string)
        })
        .collect();
    for n in names {
        h.remove(format!("x-remove-object-meta-{n}").as_str());
        h.remove(format!("x-object-meta-{n}").as_str());
    }
}

/// X-Copy-From and Destination values are percent-encoded paths.
/// They may also carry raw UTF-8, which `to_str` would refuse.
fn decode_copy_path(v: &HeaderValue) -> Result<String, ProxyError> {
    let s = percent_encoding::percent_decode(v.as_bytes())
        .decode_utf8()
        .map_err(|_| ProxyError::Text(412, "Invalid UTF8 or contains NULL".into()))?;
    if s.contains('\0') {
        return Err(ProxyError::Text(
            412,
            "Invalid UTF8 or contains NULL".into(),
        ));
    }
    Ok(s.into_owned())
}

/// `container/object` (leading `/` optional) of X-Copy-From or Destination.
fn split_copy_path(v: &str, header: &str) -> Result<(String, String), ProxyError> {
    let v = v.strip_prefix('/').unwrap_or(v);
    match v.split_once('/') {
        Some((c, o)) if !c.is_empty() && !o.is_empty() => Ok((c.to_string(), o.to_string())),
        _ => Err(ProxyError::Text(
            412,
            format!("{header} header must be of the form <container name>/<object name>"),
        )),
    }
}

/// `check_object_creation`: length, name, content type, expiry, metadata.
fn validate_object_put(h: &mut HeaderMap, o: &str, now: u64) -> Result<(), ProxyError> {
    // swob's is_chunked: exactly one coding, and it must be "chunked".
    let chunked = match h.get("transfer-encoding") {
        None => false,
        Some(te) => {
            let te = te.to_str().unwrap_or("");
            if te.contains(',') {
                return Err(ProxyError::Text(
                    501,
                    "Unsupported Transfer-Coding header value specified in Transfer-Encoding header"
                        .into(),
                ));
            }
            if !te.trim().eq_ignore_ascii_case("chunked") {
                return Err(ProxyError::bad_request(
                    "Invalid Transfer-Encoding header value",
                ));
            }
            true
        }
    };
    let len = if chunked {
        None
    } else {
        match hstr(h, "content-length") {
            Some(v) => Some(
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| ProxyError::bad_request("Invalid Content-Length header value"))?,
            ),
            None => None,
        }
    };
    if len.is_some_and(|l| l > MAX_FILE_SIZE) {
        return Err(ProxyError::Text(413, "Your request is too large.".into()));
    }
    if len.is_none() && !chunked {
        return Err(ProxyError::Text(
            411,
            "Missing Content-Length header.".into(),
        ));
    }
    if o.len() > MAX_OBJECT_NAME_LENGTH {
        return Err(ProxyError::bad_request(format!(
            "Object name length of {} longer than {MAX_OBJECT_NAME_LENGTH}",
            o.len()
        )));
    }
    if let Some(inm) = hstr(h, "if-none-match") {
        if inm.trim() != "*" {
            return Err(ProxyError::bad_request("If-None-Match only supports *"));
        }
    }
    let detect = hstr(h, "x-detect-content-type").is_some_and(wire::is_true);
    if detect || !h.contains_key("content-type") {
        let guessed = mime::guess(o).unwrap_or("application/octet-stream");
        h.insert("content-type", HeaderValue::from_static(guessed));
    }
    if h.get("content-type")
        .is_some_and(|v| std::str::from_utf8(v.as_bytes()).is_err())
    {
        return Err(ProxyError::bad_request("Invalid Content-Type"));
    }
    delete_at_headers(h, now)?;
    check_metadata(h, "object")?;
    // Never let clients forge the storage's own headers.
    h.remove("x-timestamp");
    Ok(())
}

fn ts_header(ts: Timestamp) -> HeaderValue {
    HeaderValue::from_str(&ts.to_string()).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

fn method_not_allowed() -> Response<Body> {
    let mut r = reply::status(405);
    r.headers_mut().insert(
        "allow",
        HeaderValue::from_static("HEAD, GET, PUT, POST, COPY, OPTIONS, DELETE"),
    );
    r
}

/// The storage's answer as the client sees it: no backend or sysmeta headers,
/// owner-only headers for owners, the account ACL under its public name.
fn client_response(resp: Response<Body>, owner: bool) -> Response<Body> {
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

fn put_response(resp: Response<Body>) -> Response<Body> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_limits_and_messages() {
        let mut h = HeaderMap::new();
        h.insert("x-object-meta-a", HeaderValue::from_static("b"));
        assert!(check_metadata(&h, "object").is_ok());
        let long = "x".repeat(129);
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_bytes(format!("x-object-meta-{long}").as_bytes()).unwrap(),
            HeaderValue::from_static("v"),
        );
        match check_metadata(&h, "object") {
            Err(ProxyError::Text(400, m)) => {
                assert!(m.starts_with("Metadata name too long: x-object-meta-Xxx"))
            }
            _ => panic!(),
        }
        let mut h = HeaderMap::new();
        h.insert(
            "x-container-meta-v",
            HeaderValue::from_str(&"v".repeat(257)).unwrap(),
        );
        assert!(
            matches!(check_metadata(&h, "container"), Err(ProxyError::Text(400, m)) if m == "Metadata value longer than 256: x-container-meta-V")
        );
        let mut h = HeaderMap::new();
        for i in 0..91 {
            h.insert(
                HeaderName::from_bytes(format!("x-account-meta-k{i}").as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        assert!(
            matches!(check_metadata(&h, "account"), Err(ProxyError::Text(400, m)) if m == "Too many metadata items; max 90")
        );
    }

    #[test]
    fn object_put_validation() {
        let mut h = HeaderMap::new();
        assert!(matches!(
            validate_object_put(&mut h, "o", 100),
            Err(ProxyError::Text(411, _))
        ));
        h.insert("content-length", HeaderValue::from_static("5368709123"));
        assert!(matches!(
            validate_object_put(&mut h, "o", 100),
            Err(ProxyError::Text(413, _))
        ));
        h.insert("content-length", HeaderValue::from_static("1"));
        validate_object_put(&mut h, "x.txt", 100).unwrap();
        assert_eq!(h["content-type"], "text/plain");
        h.insert("x-delete-after", HeaderValue::from_static("10"));
        validate_object_put(&mut h, "x", 100).unwrap();
        assert_eq!(h["x-delete-at"], "110");
        h.insert("x-delete-at", HeaderValue::from_static("50"));
        assert!(
            matches!(validate_object_put(&mut h, "x", 100), Err(ProxyError::Text(400, m)) if m == "X-Delete-At in past")
        );
        let mut h = HeaderMap::new();
        h.insert("content-length", HeaderValue::from_static("1"));
        assert!(validate_object_put(&mut h, &"o".repeat(1025), 1).is_err());
    }

    #[test]
    fn paths() {
        let p = parse_path("/v1/AUTH_a/c/o/with/slashes").unwrap();
        assert_eq!(p.object.as_deref(), Some("o/with/slashes"));
        assert!(parse_path("/v1/AUTH_a/c/").unwrap().object.is_none());
        assert!(matches!(
            parse_path("/v1/a/%ff"),
            Err(ProxyError::Text(412, _))
        ));
        assert!(matches!(
            parse_path("/v1/a/%00"),
            Err(ProxyError::Text(412, _))
        ));
    }
}
