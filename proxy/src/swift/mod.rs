//! The Swift v1 API over the storage: one module per resource (the router in
//! `router.rs` names each handler), with what they share here: the API state,
//! the backend call, cached container/account info and authorization.

pub mod account;
pub mod constraints;
pub mod container;
pub mod copy;
pub mod dlo;
pub mod headers;
pub mod object;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::header::HeaderMap;
use hyper::{Method, Request, Response};
use wire::body::{self, Body};
use wire::timestamp::Timestamp;

use crate::auth::{self, AccountAcl, AuthzRequest, Decision, TempAuth};
use crate::config::ProxyConfig;
use crate::context::{RequestCtx, SwiftPath};
use crate::error::ProxyError;
use crate::storage::{Storage, Target};
use headers::{hstr, ACCOUNT_ACL_SYSMETA};

pub use constraints::*;

pub(crate) type Res = Result<Response<Body>, ProxyError>;

#[derive(Clone, Default)]
pub(crate) struct ContainerInfo {
    pub(crate) read_acl: Option<String>,
    pub(crate) write_acl: Option<String>,
    pub(crate) cors: crate::cors::Cors,
    /// `X-Container-Meta-Rest-Endpoint`: the app serving `api/1.0` here.
    pub(crate) rest_endpoint: Option<String>,
    /// `X-Container-Meta-Zerovm-Suid`: the ACL that app's jobs get here.
    pub(crate) zerovm_suid: Option<String>,
}

/// What a read made with the setuid rule's rights asks for: a symlink or
/// a large object's manifest itself, never what it points to.
const LITERAL_READ: &str = "symlink=get&multipart-manifest=get";

/// A cached lookup: when it was made, and what it found (None: does not exist).
type Cached<T> = (Instant, Option<T>);

/// The Swift API state: auth, storage, and short-lived caches of container and
/// account info (invalidated by writes through this proxy).
pub struct SwiftApi {
    pub auth: TempAuth,
    pub storage: Arc<dyn Storage>,
    pub(crate) cfg: ProxyConfig,
    containers: Mutex<HashMap<(String, String), Cached<ContainerInfo>>>,
    accounts: Mutex<HashMap<String, Cached<AccountAcl>>>,
    clock: Mutex<Timestamp>,
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
    pub(crate) fn next_ts(&self) -> Timestamp {
        let mut last = self.clock.lock().unwrap_or_else(|p| p.into_inner());
        let now = Timestamp::now().max(Timestamp(last.0 + 1));
        *last = now;
        now
    }

    fn ttl(&self) -> Duration {
        Duration::from_secs_f64(self.cfg.info_cache_ttl.max(0.0))
    }

    /// One backend request for the client request `ctx` (its trans-id goes along).
    pub(crate) async fn call(
        &self,
        ctx: &RequestCtx,
        target: Target<'_>,
        method: Method,
        headers: HeaderMap,
        query: Option<&str>,
        body: Body,
    ) -> Res {
        // An access the setuid rule granted this job is made as the
        // setuid user; every other one as the caller.
        let login = self.storage.setuid_login();
        let setuid_token = match (login, &ctx.setuid_grants) {
            (Some(login), Some(grants)) if grants.has(target, &method) => {
                Some(login.token(&ctx.trans_id).await?)
            }
            _ => None,
        };
        // Swift would follow a symlink or a manifest as the setuid user,
        // wherever it points: a read as it gets the object itself.
        let reads_object =
            matches!(target, Target::Object(..)) && matches!(method, Method::GET | Method::HEAD);
        let literal = setuid_token.is_some() && reads_object;
        let uri = match (query, literal) {
            (Some(q), true) => format!("/?{q}&{LITERAL_READ}"),
            (None, true) => format!("/?{LITERAL_READ}"),
            (Some(q), false) => format!("/?{q}"),
            (None, false) => "/".into(),
        };
        let mut req = Request::builder().method(method).uri(uri).body(body)?;
        *req.headers_mut() = headers;
        if let Some(token) = setuid_token.as_ref().or(ctx.credential.as_ref()) {
            req.headers_mut().insert("x-auth-token", token.clone());
        }
        let resp = self.storage.send(&ctx.trans_id, target, req).await?;
        if let (Some(login), Some(token)) = (login, &setuid_token) {
            if resp.status() == 401 {
                login.refused(token).await;
            }
        }
        if literal && crate::swift_cluster::points_elsewhere(resp.headers()) {
            let path = match target {
                Target::Object(a, c, o) => format!("/{a}/{c}/{o}"),
                _ => String::new(),
            };
            tracing::warn!(
                "{path}: a symlink or large object manifest, not followed with the setuid rule's rights"
            );
            return Err(ProxyError::FetchFailed { status: 403, path });
        }
        Ok(resp)
    }

    /// A container's info as the proxy itself reads it, for the setuid
    /// rule and for finding an `/api/` endpoint: what the caller may not
    /// see. On a storage whose auth decides, read as the setuid user
    /// (as the caller when none is configured).
    pub(crate) async fn container_info_as_proxy(
        &self,
        ctx: &RequestCtx,
        a: &str,
        c: &str,
    ) -> Result<Option<ContainerInfo>, ProxyError> {
        let login = match self.storage.setuid_login() {
            Some(login) if self.storage.caller_credentials() => login,
            _ => return self.container_info(ctx, a, c).await,
        };
        let mut as_proxy = ctx.clone();
        as_proxy.setuid_grants = None;
        // A token Swift has forgotten is renewed once.
        let why = 'tries: {
            for _ in 0..2 {
                let token = match login.token(&ctx.trans_id).await {
                    Ok(t) => t,
                    Err(e) => break 'tries e.to_string(),
                };
                as_proxy.credential = Some(token.clone());
                match self.container_info(&as_proxy, a, c).await {
                    Err(ProxyError::Unauthorized) => login.refused(&token).await,
                    Err(ProxyError::Forbidden) => {
                        break 'tries "it may not read it: give it reseller admin rights".into()
                    }
                    other => return other,
                }
            }
            "Swift refused its token twice".into()
        };
        // What the caller may see still works (an owner's own /api/).
        tracing::warn!("setuid user: reading /{a}/{c} failed ({why}); read as the caller");
        self.container_info(ctx, a, c).await
    }

    /// The setuid rule's last step: whether the container ACL `acl` (its
    /// `Zerovm-Suid`) allows the caller `method` on `p`. On our store it
    /// is evaluated here; on a storage whose auth decides, Swift is asked
    /// (`crate::swift_setuid`), and the access is granted to the job: made
    /// as the setuid user.
    pub(crate) async fn setuid_allows(
        &self,
        ctx: &RequestCtx,
        method: &Method,
        p: &SwiftPath,
        acl: &str,
    ) -> Result<bool, ProxyError> {
        if !self.storage.caller_credentials() {
            return match self.authorize(ctx, method, p, Some(acl)).await {
                Ok(_) => Ok(true),
                Err(ProxyError::Forbidden | ProxyError::Unauthorized) => Ok(false),
                Err(e) => Err(e),
            };
        }
        let (Some(login), Some(grants)) = (self.storage.setuid_login(), &ctx.setuid_grants) else {
            return Ok(false);
        };
        let level = match p.object {
            Some(_) => crate::swift_setuid::Level::Object,
            None => crate::swift_setuid::Level::Container,
        };
        let token = ctx.credential.as_ref();
        let referrer = ctx.referrer.as_deref();
        match login
            .allows(&ctx.trans_id, token, referrer, acl, level)
            .await
        {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            // Logged, and nothing granted: the caller learns nothing of it.
            Err(e) => {
                tracing::warn!("setuid rule for {}: {e}", p.v1_path());
                return Ok(false);
            }
        }
        // A job's submission (POST) reaches no storage: only the reads and
        // writes it makes are granted.
        if *method != Method::POST {
            let target = Target::of(&p.account, p.container.as_deref(), p.object.as_deref());
            grants.grant(target, method);
        }
        Ok(true)
    }

    pub(crate) async fn container_info(
        &self,
        ctx: &RequestCtx,
        a: &str,
        c: &str,
    ) -> Result<Option<ContainerInfo>, ProxyError> {
        let key = (a.to_string(), c.to_string());
        // What one caller may see of a container is not another's: with
        // the callers' own credentials nothing is shared.
        let shared = !self.storage.caller_credentials();
        if shared {
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
        }
        let resp = self
            .call(
                ctx,
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
                rest_endpoint: hstr(h, "x-container-meta-rest-endpoint").map(str::to_string),
                zerovm_suid: hstr(h, "x-container-meta-zerovm-suid").map(str::to_string),
            })
        } else {
            match resp.status().as_u16() {
                404 => None,
                401 => return Err(ProxyError::Unauthorized),
                403 => return Err(ProxyError::Forbidden),
                s => {
                    return Err(ProxyError::Backend(format!(
                        "unexpected status {s} from storage"
                    )))
                }
            }
        };
        if shared {
            self.containers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, (Instant::now(), info.clone()));
        }
        Ok(info)
    }

    pub(crate) fn forget_account(&self, a: &str) {
        self.accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(a);
    }

    pub(crate) fn forget_container(&self, a: &str, c: &str) {
        self.containers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(a.to_string(), c.to_string()));
    }

    async fn account_acl(
        &self,
        ctx: &RequestCtx,
        a: &str,
    ) -> Result<Option<AccountAcl>, ProxyError> {
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
                ctx,
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

    /// Authorizes the caller of `ctx` for `method` on `p` (the request's own
    /// path, or a copy's or DLO's other end) or returns 401/403. Returns
    /// whether the caller is an owner.
    pub(crate) async fn authorize(
        &self,
        ctx: &RequestCtx,
        method: &Method,
        p: &SwiftPath,
        acl: Option<&str>,
    ) -> Result<bool, ProxyError> {
        if self.storage.caller_credentials() {
            return self.ask_storage(ctx, method, p).await;
        }
        let id = &ctx.identity;
        let referrer = ctx.referrer.as_deref();
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
            Decision::Deny if id.is_anonymous() => return Err(ProxyError::Unauthorized),
            Decision::Deny => {}
        }
        // Account ACLs only matter for authenticated callers who are not owners.
        let account_acl = self.account_acl(ctx, &p.account).await?;
        let full = AuthzRequest {
            account_acl: account_acl.as_ref(),
            ..quick
        };
        match auth::authorize(id, &full) {
            Decision::Allow { owner } => Ok(owner),
            Decision::Deny => Err(ProxyError::Forbidden),
        }
    }

    /// Authorization by a storage whose own auth decides (an OpenStack
    /// Swift backend), asked with the caller's credentials: a read as a
    /// HEAD of `p`, a job's submission (POST) as a HEAD of its path. A
    /// write of an object is asked as a POST of an object of the same
    /// container that does not exist: Swift authorizes it with the
    /// container's write ACL, as a PUT, then answers 404 and changes
    /// nothing (an object's POST only updates one that exists). Never an
    /// owner (nothing here acts on ownership).
    async fn ask_storage(
        &self,
        ctx: &RequestCtx,
        method: &Method,
        p: &SwiftPath,
    ) -> Result<bool, ProxyError> {
        let (ask, probe);
        let target = match (method, &p.container, &p.object) {
            (&Method::PUT | &Method::DELETE, Some(c), Some(_)) => {
                ask = Method::POST;
                probe = format!("zerocloud-write-check-{:032x}", rand::random::<u128>());
                Target::Object(&p.account, c, &probe)
            }
            // Jobs write objects only.
            (&Method::PUT | &Method::DELETE, ..) => return Ok(false),
            _ => {
                ask = Method::HEAD;
                Target::of(&p.account, p.container.as_deref(), p.object.as_deref())
            }
        };
        let resp = self
            .call(ctx, target, ask, HeaderMap::new(), None, body::empty())
            .await?;
        match resp.status().as_u16() {
            401 => Err(ProxyError::Unauthorized),
            403 => Err(ProxyError::Forbidden),
            s if s < 300 || s == 404 => Ok(false),
            s => Err(ProxyError::Backend(format!(
                "unexpected status {s} from storage"
            ))),
        }
    }
}
