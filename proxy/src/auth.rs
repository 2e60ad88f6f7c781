//! TempAuth, as Swift's: v1 token requests, tokens with a lifetime, and the
//! authorization rules (account owners, reseller admins, container ACLs with
//! referrers and `.rlistings`, account ACLs from X-Account-Access-Control).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::UserConfig;

/// Reseller prefixes and the group each requires of an account's owner.
pub const RESELLER_PREFIXES: [(&str, Option<&str>); 2] =
    [("AUTH_", None), ("SERVICE_", Some("service"))];

#[derive(Debug, Clone)]
struct User {
    key: String,
    account: String,
    groups: Vec<String>,
}

/// Who is asking: the comma-list of groups Swift calls REMOTE_USER.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub groups: Vec<String>,
}

impl Identity {
    pub fn is_anonymous(&self) -> bool {
        self.groups.is_empty()
    }
    pub fn is_reseller_admin(&self) -> bool {
        self.groups.iter().any(|g| g == ".reseller_admin")
    }
    fn has(&self, g: &str) -> bool {
        self.groups.iter().any(|x| x == g)
    }
    /// `account:user`, for logs.
    pub fn user(&self) -> &str {
        self.groups.get(1).map(String::as_str).unwrap_or("-")
    }
}

/// A live token: when it expires, the groups it carries, and whose it is.
struct Token {
    expires: Instant,
    groups: Vec<String>,
    user: String,
}

pub struct TempAuth {
    users: HashMap<String, User>,
    tokens: Mutex<HashMap<String, Token>>,
    token_life: Duration,
}

/// Outcome of a token request.
pub enum TokenReply {
    Ok {
        token: String,
        expires_in: u64,
        account_id: String,
    },
    Denied {
        realm: String,
    },
}

impl TempAuth {
    pub fn new(users: &[UserConfig], token_life: u64) -> anyhow::Result<TempAuth> {
        let mut map = HashMap::new();
        for u in users {
            let (account, _) = u
                .user
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("user {:?} must be account:user", u.user))?;
            map.insert(
                u.user.clone(),
                User {
                    key: u.key.clone(),
                    account: account.to_string(),
                    groups: u.groups.clone(),
                },
            );
        }
        Ok(TempAuth {
            users: map,
            tokens: Mutex::new(HashMap::new()),
            token_life: Duration::from_secs(token_life),
        })
    }

    /// Groups of a user: account, account:user, its groups, and for `.admin`
    /// every reseller-prefixed account id.
    fn groups_of(&self, account_user: &str, u: &User) -> Vec<String> {
        let mut g = vec![u.account.clone(), account_user.to_string()];
        g.extend(u.groups.iter().cloned());
        if let Some(i) = g.iter().position(|x| x == ".admin") {
            g.remove(i);
            for (p, _) in RESELLER_PREFIXES {
                g.push(format!("{p}{}", u.account));
            }
        }
        g
    }

    /// GET /auth/v1.0 with X-Auth-User `account:user` and X-Auth-Key.
    pub fn get_token(&self, user: Option<&str>, key: Option<&str>) -> TokenReply {
        let denied = |realm: &str| TokenReply::Denied {
            realm: realm.to_string(),
        };
        let Some(account_user) = user.filter(|u| u.contains(':')) else {
            return denied("unknown");
        };
        let account = account_user.split(':').next().unwrap_or("unknown");
        let (Some(key), Some(u)) = (key, self.users.get(account_user)) else {
            return denied(account);
        };
        if !constant_time_eq(u.key.as_bytes(), key.as_bytes()) {
            return denied(account);
        }
        let groups = self.groups_of(account_user, u);
        let now = Instant::now();
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.retain(|_, t| t.expires > now);
        // Swift hands back a user's still-valid token rather than minting another.
        let existing = tokens
            .iter()
            .find(|(_, t)| t.user == account_user && t.groups == groups)
            .map(|(tok, t)| (tok.clone(), t.expires));
        let (token, exp) = existing.unwrap_or_else(|| {
            let tok = format!("AUTH_tk{:032x}", rand::random::<u128>());
            let expires = now + self.token_life;
            tokens.insert(
                tok.clone(),
                Token {
                    expires,
                    groups,
                    user: account_user.to_string(),
                },
            );
            (tok, expires)
        });
        TokenReply::Ok {
            token,
            expires_in: exp.saturating_duration_since(now).as_secs(),
            account_id: format!("AUTH_{}", u.account),
        }
    }

    /// The identity behind a token (and optional service token); None when invalid.
    pub fn validate(&self, token: &str, service_token: Option<&str>) -> Option<Identity> {
        let now = Instant::now();
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let look = |t: &str| {
            tokens
                .get(t)
                .filter(|t| t.expires > now)
                .map(|t| t.groups.clone())
        };
        let mut groups = look(token)?;
        if let Some(st) = service_token {
            if let Some(more) = look(st) {
                groups.extend(more);
            }
        }
        Some(Identity { groups })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Account-level ACLs (X-Account-Access-Control, version 2 JSON).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct AccountAcl {
    #[serde(default)]
    pub admin: Vec<String>,
    #[serde(default, rename = "read-write")]
    pub read_write: Vec<String>,
    #[serde(default, rename = "read-only")]
    pub read_only: Vec<String>,
}

impl AccountAcl {
    pub fn is_empty(&self) -> bool {
        self.admin.is_empty() && self.read_write.is_empty() && self.read_only.is_empty()
    }
}

/// Validates an X-Account-Access-Control value with tempauth's messages.
pub fn parse_account_acl(v: &str) -> Result<AccountAcl, String> {
    let val: serde_json::Value =
        serde_json::from_str(v).map_err(|_| format!("Syntax error in input ({v:?})"))?;
    let obj = val
        .as_object()
        .ok_or_else(|| format!("Syntax error in input ({v:?})"))?;
    for (k, val) in obj {
        if !matches!(k.as_str(), "admin" | "read-write" | "read-only") {
            return Err(format!("Key \"{k}\" not recognized"));
        }
        let list = val
            .as_array()
            .ok_or_else(|| format!("Value for key \"{k}\" must be a list"))?;
        if list.iter().any(|x| !x.is_string()) {
            return Err(format!("Elements of \"{k}\" list must be strings"));
        }
    }
    serde_json::from_value(val).map_err(|e| e.to_string())
}

/// Swift's `clean_acl` for X-Container-Read / X-Container-Write.
pub fn clean_acl(header: &str, value: &str) -> Result<String, String> {
    let mut out = vec![];
    for raw in value.split(',') {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let Some((first, second)) = raw.split_once(':') else {
            out.push(raw.to_string());
            continue;
        };
        let (first, mut second) = (first.trim(), second.trim());
        if first.is_empty() || !first.starts_with('.') {
            out.push(raw.to_string());
        } else if matches!(first, ".r" | ".ref" | ".referer" | ".referrer") {
            if header.contains("write") {
                return Err(format!("Referrers not allowed in write ACL: '{raw}'"));
            }
            let mut negate = false;
            if let Some(s) = second.strip_prefix('-') {
                negate = true;
                second = s.trim();
            }
            // Swift drops one leading `*` per cleaning, so a stored `.r:*.a`
            // from `.r:**.a` would change again (and `.r:**.` would be refused
            // only when posted back); we drop them all in one pass, which makes
            // cleaning idempotent (found by the account_acl fuzz target).
            while second != "*" && second.starts_with('*') {
                second = second[1..].trim();
            }
            // A host never starts with `-`: `.r:*-` would store `.r:-`, which
            // reads back as a negation of nothing (the fuzzer found it).
            if second.is_empty() || second == "." || second.starts_with('-') {
                return Err(format!(
                    "No host/domain value after referrer designation in ACL: '{raw}'"
                ));
            }
            out.push(format!(".r:{}{second}", if negate { "-" } else { "" }));
        } else {
            return Err(format!("Unknown designator '{first}' in ACL: '{raw}'"));
        }
    }
    Ok(out.join(","))
}

fn parse_acl(acl: &str) -> (Vec<String>, Vec<String>) {
    let (mut refs, mut groups) = (vec![], vec![]);
    for v in acl.split(',').filter(|v| !v.is_empty()) {
        match v.strip_prefix(".r:") {
            Some(r) => refs.push(r.to_string()),
            None => groups.push(
                percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned(),
            ),
        }
    }
    (refs, groups)
}

fn referrer_allowed(referrer: Option<&str>, acl: &[String]) -> bool {
    if acl.is_empty() {
        return false;
    }
    let rhost = referrer
        .and_then(|r| r.split_once("://").map(|(_, rest)| rest))
        .map(|rest| {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            let host = host.rsplit_once('@').map(|(_, h)| h).unwrap_or(host);
            host.split(':').next().unwrap_or("").to_ascii_lowercase()
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let mut allow = false;
    for m in acl {
        if let Some(neg) = m.strip_prefix('-') {
            if neg == rhost || (neg.starts_with('.') && rhost.ends_with(neg)) {
                allow = false;
            }
        } else if m == "*" || *m == rhost || (m.starts_with('.') && rhost.ends_with(m.as_str())) {
            allow = true;
        }
    }
    allow
}

/// What a request asks for, as `authorize` needs it.
pub struct AuthzRequest<'a> {
    pub method: &'a str,
    pub account: &'a str,
    pub container: Option<&'a str>,
    pub object: Option<&'a str>,
    pub referrer: Option<&'a str>,
    /// The container ACL that applies (read ACL for reads, write ACL for writes).
    pub acl: Option<&'a str>,
    pub account_acl: Option<&'a AccountAcl>,
}

pub enum Decision {
    /// Allowed; `owner` is Swift's `swift_owner` (may see and set ACLs).
    Allow { owner: bool },
    /// 401 for anonymous callers, 403 for authenticated ones.
    Deny,
}

pub fn authorize(id: &Identity, r: &AuthzRequest<'_>) -> Decision {
    let Some((prefix, require_group)) = RESELLER_PREFIXES
        .iter()
        .find(|(p, _)| r.account.starts_with(p))
    else {
        return Decision::Deny;
    };
    let dot_account = r.account[prefix.len()..].starts_with('.');
    if id.is_reseller_admin() && !dot_account {
        return Decision::Allow { owner: true };
    }
    if id.has(r.account)
        && (!matches!(r.method, "DELETE" | "PUT") || r.container.is_some())
        && require_group.is_none_or(|g| id.has(g))
    {
        return Decision::Allow { owner: true };
    }
    if r.method == "OPTIONS" {
        return Decision::Allow { owner: false };
    }
    let (refs, groups) = parse_acl(r.acl.unwrap_or(""));
    if referrer_allowed(r.referrer, &refs)
        && (r.object.is_some() || groups.iter().any(|g| g == ".rlistings"))
    {
        return Decision::Allow { owner: false };
    }
    for g in &groups {
        if id.has(g) {
            return Decision::Allow { owner: false };
        }
        // `account:*` grants every user of that account (our extension).
        if let Some(acct) = g.strip_suffix(":*") {
            if !id.is_anonymous() && id.groups.first().is_some_and(|a| a == acct) {
                return Decision::Allow { owner: false };
            }
        }
    }
    if let Some(acl) = r.account_acl {
        let any = |list: &[String]| list.iter().any(|g| id.has(g));
        if any(&acl.admin) {
            return Decision::Allow { owner: true };
        }
        if any(&acl.read_write) && (r.container.is_some() || matches!(r.method, "GET" | "HEAD")) {
            return Decision::Allow { owner: false };
        }
        if any(&acl.read_only) && matches!(r.method, "GET" | "HEAD") {
            return Decision::Allow { owner: false };
        }
    }
    Decision::Deny
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProxyConfig;

    fn auth() -> TempAuth {
        TempAuth::new(&ProxyConfig::default().users, 60).unwrap()
    }

    fn login(a: &TempAuth, u: &str, k: &str) -> Identity {
        match a.get_token(Some(u), Some(k)) {
            TokenReply::Ok { token, .. } => a.validate(&token, None).unwrap(),
            TokenReply::Denied { .. } => panic!("denied"),
        }
    }

    fn req<'a>(
        method: &'a str,
        acct: &'a str,
        c: Option<&'a str>,
        acl: Option<&'a str>,
    ) -> AuthzRequest<'a> {
        AuthzRequest {
            method,
            account: acct,
            container: c,
            object: None,
            referrer: None,
            acl,
            account_acl: None,
        }
    }

    #[test]
    fn tokens_and_bad_keys() {
        let a = auth();
        assert!(matches!(
            a.get_token(Some("test:tester"), Some("nope")),
            TokenReply::Denied { .. }
        ));
        assert!(matches!(
            a.get_token(Some("tester"), Some("testing")),
            TokenReply::Denied { .. }
        ));
        assert!(a.validate("AUTH_tkbogus", None).is_none());
        let (TokenReply::Ok { token: t1, .. }, TokenReply::Ok { token: t2, .. }) = (
            a.get_token(Some("test:tester"), Some("testing")),
            a.get_token(Some("test:tester"), Some("testing")),
        ) else {
            panic!()
        };
        assert_eq!(t1, t2);
    }

    #[test]
    fn owners_acls_and_strangers() {
        let a = auth();
        let admin = login(&a, "test:tester", "testing");
        let user3 = login(&a, "test:tester3", "testing3");
        let other = login(&a, "test2:tester2", "testing2");
        let anon = Identity::default();
        let ok = |d: Decision| matches!(d, Decision::Allow { .. });
        assert!(ok(authorize(&admin, &req("GET", "AUTH_test", None, None))));
        assert!(!ok(authorize(&admin, &req("PUT", "AUTH_test", None, None))));
        assert!(!ok(authorize(
            &user3,
            &req("GET", "AUTH_test", Some("c"), None)
        )));
        assert!(ok(authorize(
            &user3,
            &req("GET", "AUTH_test", Some("c"), Some("test:tester3"))
        )));
        assert!(ok(authorize(
            &other,
            &req("GET", "AUTH_test", Some("c"), Some("test2:*"))
        )));
        assert!(!ok(authorize(
            &other,
            &req("GET", "AUTH_test", Some("c"), Some("test:*"))
        )));
        assert!(!ok(authorize(&other, &req("GET", "AUTH_test", None, None))));
        // Referrer ACL: objects yes, listings only with .rlistings.
        assert!(!ok(authorize(
            &anon,
            &req("GET", "AUTH_test", Some("c"), Some(".r:*"))
        )));
        assert!(ok(authorize(
            &anon,
            &req("GET", "AUTH_test", Some("c"), Some(".r:*,.rlistings"))
        )));
        let mut r = req(
            "GET",
            "AUTH_test",
            Some("c"),
            Some(".r:.example.com,.r:-bad.example.com"),
        );
        r.object = Some("o");
        r.referrer = Some("http://www.example.com/x");
        assert!(ok(authorize(&anon, &r)));
        r.referrer = Some("http://bad.example.com/x");
        assert!(!ok(authorize(&anon, &r)));
        // SERVICE_ accounts need the service group too.
        assert!(!ok(authorize(
            &admin,
            &req("GET", "SERVICE_test", Some("c"), None)
        )));
    }

    #[test]
    fn acl_cleaning() {
        assert_eq!(
            clean_acl("x-container-read", "bob , sue,,").unwrap(),
            "bob,sue"
        );
        assert_eq!(
            clean_acl("x-container-read", ".ref:*.example.com").unwrap(),
            ".r:.example.com"
        );
        assert!(clean_acl("x-container-write", ".r:*").is_err());
        assert!(clean_acl("x-container-read", ".r:").is_err());
        assert!(clean_acl("x-container-read", ".bad:x").is_err());
        // Every leading `*` goes in one pass, so cleaning again changes nothing.
        let once = clean_acl("x-container-read", ".r:**.example.com").unwrap();
        assert_eq!(once, ".r:.example.com");
        assert_eq!(clean_acl("x-container-read", &once).unwrap(), once);
        assert_eq!(clean_acl("x-container-read", ".r:**").unwrap(), ".r:*");
        assert!(clean_acl("x-container-read", ".r:**.").is_err());
        assert!(clean_acl("x-container-read", ".r:*-").is_err());
        assert!(clean_acl("x-container-read", ".r:--a").is_err());
        assert_eq!(clean_acl("x-container-read", ".r:-a").unwrap(), ".r:-a");
        assert!(parse_account_acl(r#"{"admin":["a"]}"#).is_ok());
        assert_eq!(
            parse_account_acl(r#"{"foo":[]}"#).unwrap_err(),
            "Key \"foo\" not recognized"
        );
    }
}
