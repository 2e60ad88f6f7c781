//! The setuid rule (spec/zerocloud.md §1.7) on an OpenStack Swift backend
//! (docs/swift-backend.md, "The setuid rule").
//!
//! On our own store the proxy authorizes, so it evaluates a container's
//! `X-Container-Meta-Zerovm-Suid` ACL itself. In front of Swift the caller's
//! identity is Swift's to know, and an access the rule grants is one the
//! caller's own token cannot make. So:
//!
//! - **Who may** is asked of Swift, as the caller: the ACL is set as the read
//!   ACL of a *probe container* of the proxy's own (one per distinct ACL, in
//!   the setuid user's account), and the caller HEADs it (a container
//!   access) or an object in it (an object access). Swift's auth (tempauth
//!   or keystone) evaluates the very ACL with the caller's token and
//!   `Referer`, exactly as ZeroCloud evaluated it with `req.acl` set to the
//!   setuid ACL: 2xx or 404 is allowed, 401 or 403 is not. Nothing is
//!   written by a probe; the object never exists.
//! - **The access itself** is then made with the proxy's setuid credential
//!   (a reseller admin's, `[swift.setuid]`), and only that access: the job's
//!   grants (`RequestCtx::setuid_grants`) hold the exact paths and the kind
//!   of access the rule allowed, and `SwiftApi::call` uses the credential
//!   for those alone. Every other request of the job keeps the caller's token.
//!
//! Swift follows a symlink or a large object's manifest as the requester,
//! so a read made as the setuid user would reach whatever the link names,
//! in any account: such reads ask Swift for the link or manifest itself
//! (`?symlink=get&multipart-manifest=get`) and refuse it (`SwiftApi::call`).
//!
//! Everyone who owns the setuid user's account passes every probe (an
//! owner may HEAD anything there), so that account must be the setuid
//! user's alone: one with an account ACL is refused at login.
//!
//! The credential logs in with Swift's v1 auth (`GET /auth/v1.0` with
//! `X-Auth-User`/`X-Auth-Key`: tempauth, swauth) and logs in again before
//! its token expires, or after Swift refused it. What goes wrong is logged
//! with its details and the rule then grants nothing: a caller learns
//! nothing about the setuid user.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::header::HeaderValue;
use hyper::{Method, Request};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use wire::body::Body;
use wire::client::HttpClient;

use crate::context::TransId;
use crate::error::ProxyError;
use crate::storage::Target;

/// A token is renewed this long before Swift says it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(60);
/// A token whose lifetime Swift does not give is renewed after this.
const DEFAULT_LIFE: Duration = Duration::from_secs(3600);
/// A probe container is made again (its ACL set again) after this, so that
/// one deleted by mistake comes back.
const PROBE_LIFE: Duration = Duration::from_secs(600);
/// The object every object-level probe asks for; it never exists.
const PROBE_OBJECT: &str = "probe";
/// How many probe containers (distinct ACLs) one proxy keeps; beyond, the
/// longest unused is deleted. Any container owner chooses ACLs, so their
/// number must be bounded.
const MAX_PROBES: usize = 1024;
/// How long after a failed login the next one is tried.
const RETRY_LOGIN: Duration = Duration::from_secs(5);
/// How long a login, a probe or a probe container's creation may take.
const SWIFT_TIMEOUT: Duration = Duration::from_secs(10);

/// `[swift.setuid]`: the user whose rights the setuid rule lends an app
/// (its `Debug` leaves the key out).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetuidUser {
    /// `account:user`, as Swift's v1 auth takes it (`X-Auth-User`). It
    /// must reach every account whose containers grant setuid (tempauth's
    /// `.reseller_admin`, keystone's `ResellerAdmin` role), and should have
    /// an account of its own: its probe containers live there.
    pub user: String,
    /// Its key (`X-Auth-Key`).
    pub key: String,
    /// Swift's v1 auth URL; by default `/auth/v1.0` on the Swift proxy.
    #[serde(default)]
    pub auth_url: Option<String>,
}

impl std::fmt::Debug for SetuidUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetuidUser")
            .field("user", &self.user)
            .field("key", &"<hidden>")
            .field("auth_url", &self.auth_url)
            .finish()
    }
}

/// The setuid user, logged in, and the probe containers it made.
pub struct SetuidLogin {
    /// `http://host:port` of the Swift proxy.
    base: String,
    auth_url: String,
    user: String,
    key: String,
    client: HttpClient,
    /// How long Swift may take to answer one of our requests.
    timeout: Duration,
    session: tokio::sync::Mutex<Option<Held>>,
    /// Probe containers made, by name: when made, and when last used.
    probes: Mutex<HashMap<String, (Instant, Instant)>>,
}

/// The login's state: logged in, or failed (when, and why).
enum Held {
    In(Session),
    Failed(Instant, String),
}

#[derive(Clone)]
struct Session {
    token: HeaderValue,
    /// The setuid user's account (from its storage URL): home of the probes.
    account: String,
    renew_at: Instant,
}

/// What a probe asks: an access to a container itself (its listing), or
/// to an object in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Container,
    Object,
}

impl SetuidLogin {
    /// The setuid user `who`, in front of the Swift proxy `base`, reached
    /// with `client`.
    pub fn new(base: &str, client: HttpClient, who: &SetuidUser) -> Result<SetuidLogin, String> {
        let auth_url = who
            .auth_url
            .clone()
            .unwrap_or_else(|| format!("{base}/auth/v1.0"));
        if !auth_url.starts_with("http://") || auth_url.parse::<hyper::Uri>().is_err() {
            return Err(format!(
                "[swift.setuid] auth_url {auth_url:?}: an http:// URL is needed"
            ));
        }
        if who.user.is_empty() || who.key.is_empty() {
            return Err("[swift.setuid] needs both user and key".into());
        }
        if !who
            .user
            .split_once(':')
            .is_some_and(|(a, u)| !a.is_empty() && !u.is_empty())
        {
            return Err(format!(
                "[swift.setuid] user {:?} (--swift-setuid-user): ACCOUNT:USER is needed, as Swift's v1 auth takes it",
                who.user
            ));
        }
        Ok(SetuidLogin {
            base: base.to_string(),
            auth_url,
            user: who.user.clone(),
            key: who.key.clone(),
            client,
            timeout: SWIFT_TIMEOUT,
            session: tokio::sync::Mutex::new(None),
            probes: Mutex::new(HashMap::new()),
        })
    }

    /// The setuid user's token, logging in when there is none or it is
    /// about to expire.
    pub async fn token(&self, tx: &TransId) -> Result<HeaderValue, ProxyError> {
        Ok(self.session(tx).await?.token)
    }

    async fn session(&self, tx: &TransId) -> Result<Session, ProxyError> {
        let mut held = self.session.lock().await;
        match held.as_ref() {
            Some(Held::In(s)) if Instant::now() < s.renew_at => return Ok(s.clone()),
            // A failed login is not tried again at once: every app request
            // would ask Swift's auth.
            Some(Held::Failed(at, why)) if at.elapsed() < RETRY_LOGIN => {
                return Err(ProxyError::Backend(why.clone()))
            }
            _ => {}
        }
        match self.login(tx).await {
            Ok(s) => {
                *held = Some(Held::In(s.clone()));
                Ok(s)
            }
            Err(e) => {
                let why = match &e {
                    ProxyError::Backend(m) => m.clone(),
                    other => other.to_string(),
                };
                *held = Some(Held::Failed(Instant::now(), why));
                Err(e)
            }
        }
    }

    /// Swift refused `token` (401): the next request logs in again.
    pub async fn refused(&self, token: &HeaderValue) {
        let mut held = self.session.lock().await;
        if matches!(held.as_ref(), Some(Held::In(s)) if s.token == *token) {
            *held = None;
        }
    }

    async fn login(&self, tx: &TransId) -> Result<Session, ProxyError> {
        let fail = |why: String| {
            ProxyError::Backend(format!(
                "the setuid user {} could not log in at {}: {why}",
                self.user, self.auth_url
            ))
        };
        let req = Request::builder()
            .uri(&self.auth_url)
            .header("x-auth-user", &self.user)
            .header("x-auth-key", &self.key)
            .header("x-trans-id-extra", tx.as_str())
            .body(Body::empty())
            .map_err(|e| fail(e.to_string()))?;
        let resp = self.send(req).await.map_err(|e| fail(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(fail(format!("Swift's auth answered {}", resp.status())));
        }
        let h = resp.headers();
        let token = h
            .get("x-auth-token")
            .or_else(|| h.get("x-storage-token"))
            .cloned()
            .ok_or_else(|| fail("no X-Auth-Token in the answer".into()))?;
        let storage_url = h
            .get("x-storage-url")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| fail("no X-Storage-Url in the answer".into()))?;
        let account = storage_url
            .split_once("/v1/")
            .map(|(_, a)| a.trim_end_matches('/'))
            .filter(|a| !a.is_empty() && !a.contains('/'))
            .ok_or_else(|| fail(format!("storage URL {storage_url:?} names no account")))?;
        let account = percent_encoding::percent_decode_str(account)
            .decode_utf8()
            .map_err(|_| fail(format!("storage URL {storage_url:?}: not UTF-8")))?
            .into_owned();
        let life = h
            .get("x-auth-token-expires")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(DEFAULT_LIFE);
        // Its account must be its own: anyone an account ACL names there
        // would pass every probe.
        let req = self
            .request(Method::HEAD, Target::Account(&account), tx)
            .header("x-auth-token", token.clone())
            .body(Body::empty())
            .map_err(|e| fail(e.to_string()))?;
        let head = self.send(req).await?;
        if !head.status().is_success() {
            return Err(fail(format!(
                "HEAD of its account {account} answered {}",
                head.status()
            )));
        }
        if head
            .headers()
            .get("x-account-access-control")
            .is_some_and(|v| !v.as_bytes().iter().all(u8::is_ascii_whitespace))
        {
            return Err(fail(format!(
                "its account {account} has an account ACL (X-Account-Access-Control), whose users would pass every setuid probe: give the setuid user an account of its own"
            )));
        }
        Ok(Session {
            token,
            account,
            renew_at: Instant::now() + life.saturating_sub(RENEW_BEFORE),
        })
    }

    /// Whether the ACL `acl`, as a container's read ACL, lets the caller
    /// (its `token` and `referrer`) make an access at `level`, asked of
    /// Swift's own auth (the module's doc). `false` too for an ACL Swift
    /// refuses to set: it grants nothing.
    pub async fn allows(
        &self,
        tx: &TransId,
        token: Option<&HeaderValue>,
        referrer: Option<&str>,
        acl: &str,
        level: Level,
    ) -> Result<bool, ProxyError> {
        let Some((account, container)) = self.probe_container(tx, acl).await? else {
            return Ok(false);
        };
        let object = match level {
            Level::Container => None,
            Level::Object => Some(PROBE_OBJECT),
        };
        let target = Target::of(&account, Some(&container), object);
        let mut req = self.request(Method::HEAD, target, tx);
        if let Some(t) = token {
            req = req.header("x-auth-token", t);
        }
        if let Some(r) = referrer {
            req = req.header("referer", r);
        }
        let req = req
            .body(Body::empty())
            .map_err(|e| ProxyError::Internal(format!("setuid probe: {e}")))?;
        let status = self.send(req).await?.status().as_u16();
        match status {
            401 | 403 => Ok(false),
            s if (200..300).contains(&s) || s == 404 => Ok(true),
            s => Err(ProxyError::Backend(format!(
                "setuid probe /{account}/{container}: unexpected status {s} from Swift"
            ))),
        }
    }

    /// The probe container whose read ACL is `acl` (made, or its ACL set
    /// again, when not made lately): `None` if Swift refuses the ACL.
    async fn probe_container(
        &self,
        tx: &TransId,
        acl: &str,
    ) -> Result<Option<(String, String)>, ProxyError> {
        let digest = Sha256::digest(acl.as_bytes());
        let name = format!("zerocloud-setuid-{}", hex::encode(&digest[..16]));
        let made = match self
            .probes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&name)
        {
            Some((made, used)) if made.elapsed() < PROBE_LIFE => {
                *used = Instant::now();
                true
            }
            _ => false,
        };
        if made {
            let account = self.session(tx).await?.account;
            return Ok(Some((account, name)));
        }
        // Made with the setuid user's token; a token Swift has forgotten
        // is renewed once.
        for attempt in 0..2 {
            let s = self.session(tx).await?;
            let req = self
                .request(Method::PUT, Target::Container(&s.account, &name), tx)
                .header("x-auth-token", s.token.clone())
                .header("x-container-read", acl)
                .body(Body::empty())
                .map_err(|_| ProxyError::bad_request(format!("Invalid setuid ACL {acl:?}")))?;
            match self.send(req).await?.status().as_u16() {
                201 | 202 | 204 => {
                    let evicted = self.remember(&name);
                    if let Some(old) = evicted {
                        self.delete_probe(tx, &s, &old).await;
                    }
                    return Ok(Some((s.account, name)));
                }
                // Swift's container server refuses an ACL it cannot parse.
                400 => return Ok(None),
                401 if attempt == 0 => self.refused(&s.token).await,
                st => {
                    return Err(ProxyError::Backend(format!(
                        "the setuid user {} could not make its probe container /{}/{name}: status {st} from Swift",
                        self.user, s.account
                    )))
                }
            }
        }
        Err(ProxyError::Backend(format!(
            "the setuid user {} was refused by Swift right after logging in",
            self.user
        )))
    }

    /// A request of ours to `target` on the Swift proxy, tagged with the
    /// trans-id.
    fn request(&self, method: Method, target: Target<'_>, tx: &TransId) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, target.v1_path()))
            .header("x-trans-id-extra", tx.as_str())
    }

    /// Records the probe container `name` as made now; returns the one
    /// it displaced (the longest unused) when there were too many.
    fn remember(&self, name: &str) -> Option<String> {
        let mut probes = self.probes.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        probes.insert(name.to_string(), (now, now));
        if probes.len() <= MAX_PROBES {
            return None;
        }
        let oldest = probes
            .iter()
            .filter(|(n, _)| n.as_str() != name)
            .min_by_key(|(_, (_, used))| *used)
            .map(|(n, _)| n.clone())?;
        probes.remove(&oldest);
        Some(oldest)
    }

    /// Deletes a probe container no longer kept (it is empty).
    async fn delete_probe(&self, tx: &TransId, s: &Session, name: &str) {
        let Ok(req) = self
            .request(Method::DELETE, Target::Container(&s.account, name), tx)
            .header("x-auth-token", s.token.clone())
            .body(Body::empty())
        else {
            return;
        };
        match self.send(req).await {
            Ok(r) if r.status().is_success() || r.status() == 404 => {}
            Ok(r) => tracing::warn!(
                "could not delete the setuid probe container /{}/{name}: {}",
                s.account,
                r.status()
            ),
            Err(e) => tracing::warn!(
                "could not delete the setuid probe container /{}/{name}: {e}",
                s.account
            ),
        }
    }

    async fn send(
        &self,
        req: Request<Body>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ProxyError> {
        match tokio::time::timeout(self.timeout, self.client.request(req)).await {
            Ok(r) => r.map_err(|e| crate::swift_cluster::upstream_down(&self.base, &e)),
            Err(_) => Err(ProxyError::Upstream(format!(
                "The Swift proxy {} did not answer in {:?}",
                self.base, self.timeout
            ))),
        }
    }
}

/// The accesses the setuid rule granted one job: each path, and whether
/// for reading (GET, HEAD) or writing (PUT, POST, DELETE). Made with the
/// setuid user's credential, and nothing else is.
#[derive(Debug, Clone, Default)]
pub struct SetuidGrants(Arc<Mutex<HashSet<(String, bool)>>>);

impl SetuidGrants {
    fn key(target: Target<'_>) -> String {
        // Accounts and containers hold no `/`: the joined path is unique.
        match target {
            Target::Account(a) => a.to_string(),
            Target::Container(a, c) => format!("{a}/{c}"),
            Target::Object(a, c, o) => format!("{a}/{c}/{o}"),
        }
    }

    fn writes(method: &Method) -> bool {
        !matches!(*method, Method::GET | Method::HEAD)
    }

    pub fn grant(&self, target: Target<'_>, method: &Method) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((Self::key(target), Self::writes(method)));
    }

    pub fn has(&self, target: Target<'_>, method: &Method) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&(Self::key(target), Self::writes(method)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_per_path_and_kind_of_access() {
        let g = SetuidGrants::default();
        g.grant(Target::Object("a", "c", "o/x"), &Method::GET);
        assert!(g.has(Target::Object("a", "c", "o/x"), &Method::HEAD));
        assert!(!g.has(Target::Object("a", "c", "o/x"), &Method::PUT));
        assert!(!g.has(Target::Object("a", "c", "o"), &Method::GET));
        assert!(!g.has(Target::Container("a", "c"), &Method::GET));
        g.grant(Target::Container("a", "c"), &Method::PUT);
        assert!(g.has(Target::Container("a", "c"), &Method::POST));
        assert!(!g.has(Target::Container("a", "c"), &Method::GET));
        // A copy of the grants is the same job's.
        let same = g.clone();
        assert!(same.has(Target::Object("a", "c", "o/x"), &Method::GET));
        assert!(!SetuidGrants::default().has(Target::Object("a", "c", "o/x"), &Method::GET));
    }

    #[test]
    fn probe_containers_are_bounded_and_the_longest_unused_goes() {
        let l =
            SetuidLogin::new("http://127.0.0.1:1", wire::client::http_client(), &admin()).unwrap();
        for i in 0..MAX_PROBES {
            assert_eq!(l.remember(&format!("p{i}")), None);
        }
        // Used one after the other, p0 last: p1 is the longest unused.
        let base = Instant::now();
        for (name, (_, used)) in l.probes.lock().unwrap().iter_mut() {
            let i: u64 = name[1..].parse().unwrap();
            let i = if i == 0 { MAX_PROBES as u64 } else { i };
            *used = base + Duration::from_millis(i);
        }
        assert_eq!(l.remember("new").as_deref(), Some("p1"));
        assert_eq!(l.probes.lock().unwrap().len(), MAX_PROBES);
    }

    /// A Swift auth on loopback that answers every request with
    /// `status_line` (or, with `None`, never answers); counts requests.
    async fn fake_auth(
        status_line: Option<&'static str>,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let asked = std::sync::Arc::new(AtomicUsize::new(0));
        let count = asked.clone();
        tokio::spawn(async move {
            let mut silent = Vec::new();
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                match status_line {
                    Some(line) => {
                        let answer =
                            format!("{line}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                        let _ = conn.write_all(answer.as_bytes()).await;
                    }
                    None => silent.push(conn),
                }
            }
        });
        (base, asked)
    }

    fn admin() -> SetuidUser {
        SetuidUser {
            user: "admin:admin".into(),
            key: "k".into(),
            auth_url: None,
        }
    }

    #[tokio::test]
    async fn a_refused_login_is_not_tried_again_before_its_retry_delay() {
        use std::sync::atomic::Ordering;
        let (base, asked) = fake_auth(Some("HTTP/1.1 401 Unauthorized")).await;
        let l = SetuidLogin::new(&base, wire::client::http_client(), &admin()).unwrap();
        let tx = TransId::new();
        let e = l.token(&tx).await.unwrap_err().to_string();
        assert!(e.contains("could not log in") && e.contains("401"), "{e}");
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        // Within the delay: the same failure, Swift's auth not asked.
        let again = l.token(&tx).await.unwrap_err().to_string();
        assert_eq!(again, e);
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        // Once the delay is over, it is asked again.
        if let Some(Held::Failed(at, _)) = l.session.lock().await.as_mut() {
            *at = at.checked_sub(RETRY_LOGIN).expect("an instant 5 s back");
        }
        assert!(l.token(&tx).await.is_err());
        assert_eq!(asked.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_login_swift_does_not_answer_fails_after_the_timeout() {
        let (base, _) = fake_auth(None).await;
        let mut l = SetuidLogin::new(&base, wire::client::http_client(), &admin()).unwrap();
        l.timeout = Duration::from_millis(200);
        let e = l.token(&TransId::new()).await.unwrap_err().to_string();
        assert!(
            e.contains("could not log in") && e.contains("did not answer in 200ms"),
            "{e}"
        );
    }

    #[test]
    fn the_auth_url_must_be_http() {
        let client = wire::client::http_client();
        let who = |auth_url: Option<&str>| SetuidUser {
            auth_url: auth_url.map(str::to_string),
            ..admin()
        };
        let l = SetuidLogin::new("http://127.0.0.1:8080", client.clone(), &who(None)).unwrap();
        assert_eq!(l.auth_url, "http://127.0.0.1:8080/auth/v1.0");
        assert!(
            SetuidLogin::new("http://h:1", client.clone(), &who(Some("https://k/v1"))).is_err()
        );
        assert!(!format!("{:?}", who(None)).contains("\"k\""));
        let empty = SetuidUser {
            key: String::new(),
            ..who(None)
        };
        assert!(SetuidLogin::new("http://h:1", client.clone(), &empty).is_err());
        for user in ["admin", "admin:", ":admin"] {
            let bare = SetuidUser {
                user: user.into(),
                ..admin()
            };
            let e = SetuidLogin::new("http://h:1", client.clone(), &bare).err();
            assert!(e.is_some_and(|e| e.contains("ACCOUNT:USER")), "{user}");
        }
    }
}
