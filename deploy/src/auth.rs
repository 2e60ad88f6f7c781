//! Credentials and login: the login flags with their environment
//! fallbacks (spec/zerovm.md §12.1), auth version guessing, TempAuth v1
//! and Keystone v2 logins, and the `auth_opts` given to UI templates.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::swift::{check, Session};

/// The login flags of `deploy`, `execute` and `auth`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct LoginArgs {
    /// Auth version (guessed from the flags, then from the environment, when absent)
    #[arg(short = 'V', long = "auth-version", value_parser = ["1.0", "2.0"])]
    pub auth_version: Option<String>,
    /// v1 auth URL [env: ST_AUTH]
    #[arg(short = 'A', long = "auth")]
    pub auth: Option<String>,
    /// v1 user name, `account:user` [env: ST_USER]
    #[arg(short = 'U', long = "user")]
    pub user: Option<String>,
    /// v1 key (password) [env: ST_KEY]
    #[arg(short = 'K', long = "key")]
    pub key: Option<String>,
    /// v2 auth URL [env: OS_AUTH_URL]
    #[arg(long = "os-auth-url")]
    pub os_auth_url: Option<String>,
    /// v2 tenant name [env: OS_TENANT_NAME]
    #[arg(long = "os-tenant-name")]
    pub os_tenant_name: Option<String>,
    /// v2 user name [env: OS_USERNAME]
    #[arg(long = "os-username")]
    pub os_username: Option<String>,
    /// v2 password [env: OS_PASSWORD]
    #[arg(long = "os-password")]
    pub os_password: Option<String>,
}

/// Complete credentials for one auth version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// TempAuth / Swauth: `GET <url>` with `X-Auth-User` and `X-Auth-Key`.
    V1 {
        url: String,
        user: String,
        key: String,
    },
    /// Keystone v2: `POST <url>/tokens`.
    V2 {
        url: String,
        tenant: String,
        user: String,
        password: String,
    },
}

impl Credentials {
    pub fn version(&self) -> &'static str {
        match self {
            Credentials::V1 { .. } => "1.0",
            Credentials::V2 { .. } => "2.0",
        }
    }
}

const V1_NAMES: [(&str, &str); 3] = [
    ("--auth", "ST_AUTH"),
    ("--user", "ST_USER"),
    ("--key", "ST_KEY"),
];
const V2_NAMES: [(&str, &str); 4] = [
    ("--os-auth-url", "OS_AUTH_URL"),
    ("--os-tenant-name", "OS_TENANT_NAME"),
    ("--os-username", "OS_USERNAME"),
    ("--os-password", "OS_PASSWORD"),
];

fn non_empty(v: Option<&String>) -> Option<String> {
    v.filter(|s| !s.is_empty()).cloned()
}

impl LoginArgs {
    fn v1_flags(&self) -> [Option<String>; 3] {
        [
            non_empty(self.auth.as_ref()),
            non_empty(self.user.as_ref()),
            non_empty(self.key.as_ref()),
        ]
    }

    fn v2_flags(&self) -> [Option<String>; 4] {
        [
            non_empty(self.os_auth_url.as_ref()),
            non_empty(self.os_tenant_name.as_ref()),
            non_empty(self.os_username.as_ref()),
            non_empty(self.os_password.as_ref()),
        ]
    }

    /// The credentials from the flags, each missing flag taken from its
    /// environment variable (`env` looks one up; empty counts as unset).
    pub fn resolve(&self, env: impl Fn(&str) -> Option<String>) -> Result<Credentials> {
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        let merge = |flags: &[Option<String>], names: &[(&str, &str)]| -> Vec<Option<String>> {
            flags
                .iter()
                .zip(names)
                .map(|(f, (_, var))| f.clone().or_else(|| env(var)))
                .collect()
        };
        let v1 = merge(&self.v1_flags(), &V1_NAMES);
        let v2 = merge(&self.v2_flags(), &V2_NAMES);
        let version = match self.auth_version.as_deref() {
            Some(v) => v.to_string(),
            None => guess_version(&self.v1_flags(), &self.v2_flags(), &v1, &v2)
                .ok_or_else(|| {
                    anyhow!(
                        "no credentials: set ST_AUTH, ST_USER and ST_KEY (or --auth, --user, --key) \
                         for auth v1.0, or OS_AUTH_URL, OS_TENANT_NAME, OS_USERNAME and \
                         OS_PASSWORD (or --os-auth-url, --os-tenant-name, --os-username, \
                         --os-password) for auth v2.0"
                    )
                })?
                .to_string(),
        };
        let complete = |values: &[Option<String>], names: &[(&str, &str)]| -> Result<Vec<String>> {
            let missing: Vec<String> = values
                .iter()
                .zip(names)
                .filter(|(v, _)| v.is_none())
                .map(|(_, (flag, var))| format!("{flag} or {var}"))
                .collect();
            if !missing.is_empty() {
                bail!("auth v{version} needs {}", missing.join(", "));
            }
            Ok(values.iter().flatten().cloned().collect())
        };
        if version == "2.0" {
            let v = complete(&v2, &V2_NAMES)?;
            Ok(Credentials::V2 {
                url: v[0].clone(),
                tenant: v[1].clone(),
                user: v[2].clone(),
                password: v[3].clone(),
            })
        } else {
            let v = complete(&v1, &V1_NAMES)?;
            Ok(Credentials::V1 {
                url: v[0].clone(),
                user: v[1].clone(),
                key: v[2].clone(),
            })
        }
    }

    /// [`LoginArgs::resolve`] with the process environment.
    pub fn credentials(&self) -> Result<Credentials> {
        self.resolve(|name| std::env::var(name).ok())
    }
}

/// The auth version to use when `-V` is absent: a complete v1 set of
/// flags, then a complete v2 set of flags, then the same with the
/// environment filling in (`v1`, `v2` are the merged values). v1 wins when
/// both are complete, as python-swiftclient decides.
pub fn guess_version(
    v1_flags: &[Option<String>],
    v2_flags: &[Option<String>],
    v1: &[Option<String>],
    v2: &[Option<String>],
) -> Option<&'static str> {
    let all = |vals: &[Option<String>]| vals.iter().all(Option::is_some);
    if all(v1_flags) {
        Some("1.0")
    } else if all(v2_flags) {
        Some("2.0")
    } else if all(v1) {
        Some("1.0")
    } else if all(v2) {
        Some("2.0")
    } else {
        None
    }
}

/// The body of a Keystone v2 password login.
pub fn v2_request(tenant: &str, user: &str, password: &str) -> Value {
    json!({
        "auth": {
            "tenantName": tenant,
            "passwordCredentials": {"username": user, "password": password}
        }
    })
}

/// The token id and the `publicURL` of the first `object-store` endpoint
/// of a Keystone v2 token response.
pub fn parse_v2_response(body: &[u8]) -> Result<(String, String)> {
    let v: Value = serde_json::from_slice(body).context("keystone answer is not JSON")?;
    let access = v
        .get("access")
        .ok_or_else(|| anyhow!("keystone answer has no \"access\""))?;
    let token = access
        .pointer("/token/id")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("keystone answer has no access.token.id"))?;
    let url = access
        .get("serviceCatalog")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|s| s.get("type").and_then(Value::as_str) == Some("object-store"))
        .flat_map(|s| {
            s.get("endpoints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .find_map(|e| e.get("publicURL").and_then(Value::as_str))
        .ok_or_else(|| anyhow!("keystone catalog has no object-store endpoint with a publicURL"))?;
    Ok((token.to_string(), url.to_string()))
}

/// Logs in; the session holds the storage URL and the token.
pub fn login(client: &reqwest::blocking::Client, creds: &Credentials) -> Result<Session> {
    match creds {
        Credentials::V1 { url, user, key } => {
            let doing = format!("authenticating at {url}");
            let resp = client
                .get(url)
                .header("X-Auth-User", user)
                .header("X-Auth-Key", key)
                .send()
                .with_context(|| doing.clone())?;
            let resp = check(resp, &doing)?;
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("{doing}: the answer has no {name} header"))
            };
            let storage_url = header("X-Storage-Url")?;
            let token = header("X-Auth-Token")?;
            Ok(Session::new(client.clone(), storage_url, Some(token)))
        }
        Credentials::V2 {
            url,
            tenant,
            user,
            password,
        } => {
            let tokens = format!("{}/tokens", url.trim_end_matches('/'));
            let doing = format!("authenticating at {tokens}");
            let resp = client
                .post(&tokens)
                .header("Content-Type", "application/json")
                .body(v2_request(tenant, user, password).to_string())
                .send()
                .with_context(|| doing.clone())?;
            let resp = check(resp, &doing)?;
            let body = resp.bytes().with_context(|| doing.clone())?;
            let (token, storage_url) = parse_v2_response(&body).with_context(|| doing.clone())?;
            Ok(Session::new(client.clone(), storage_url, Some(token)))
        }
    }
}

/// The `auth_opts` of UI templates: how the deployed page logs in.
/// `no_ui_auth` gives version 0.0 with the storage URL and no credentials.
pub fn auth_opts(creds: &Credentials, no_ui_auth: bool, storage_url: &str) -> Value {
    if no_ui_auth {
        return json!({"version": "0.0", "swiftUrl": storage_url});
    }
    match creds {
        Credentials::V1 { url, user, key } => json!({
            "version": "1.0", "authUrl": url, "username": user, "password": key
        }),
        Credentials::V2 {
            url,
            tenant,
            user,
            password,
        } => json!({
            "version": "2.0", "authUrl": url, "tenant": tenant,
            "username": user, "password": password
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const V1_ENV: [(&str, &str); 3] = [
        ("ST_AUTH", "http://e/auth/v1.0"),
        ("ST_USER", "eu"),
        ("ST_KEY", "ek"),
    ];
    const V2_ENV: [(&str, &str); 4] = [
        ("OS_AUTH_URL", "http://k/v2.0"),
        ("OS_TENANT_NAME", "et"),
        ("OS_USERNAME", "eu2"),
        ("OS_PASSWORD", "ep2"),
    ];

    fn v1_flags() -> LoginArgs {
        LoginArgs {
            auth: Some("http://f/auth/v1.0".into()),
            user: Some("fu".into()),
            key: Some("fk".into()),
            ..Default::default()
        }
    }

    fn v2_flags() -> LoginArgs {
        LoginArgs {
            os_auth_url: Some("http://fk/v2.0".into()),
            os_tenant_name: Some("ft".into()),
            os_username: Some("fu2".into()),
            os_password: Some("fp2".into()),
            ..Default::default()
        }
    }

    #[test]
    fn v1_from_the_environment() {
        let c = LoginArgs::default().resolve(env(&V1_ENV)).unwrap();
        assert_eq!(
            c,
            Credentials::V1 {
                url: "http://e/auth/v1.0".into(),
                user: "eu".into(),
                key: "ek".into()
            }
        );
    }

    #[test]
    fn v2_from_the_environment() {
        let c = LoginArgs::default().resolve(env(&V2_ENV)).unwrap();
        assert_eq!(c.version(), "2.0");
        assert_eq!(
            c,
            Credentials::V2 {
                url: "http://k/v2.0".into(),
                tenant: "et".into(),
                user: "eu2".into(),
                password: "ep2".into()
            }
        );
    }

    #[test]
    fn both_complete_is_v1_and_flags_come_before_the_environment() {
        let both: Vec<(&str, &str)> = V1_ENV.iter().chain(V2_ENV.iter()).copied().collect();
        assert_eq!(
            LoginArgs::default().resolve(env(&both)).unwrap().version(),
            "1.0"
        );
        // Complete v2 flags beat a complete v1 environment.
        let c = v2_flags().resolve(env(&V1_ENV)).unwrap();
        assert_eq!(c.version(), "2.0");
        // Complete v1 flags beat everything, and flags beat their variables.
        let mut both_flags = v1_flags();
        both_flags.os_auth_url = Some("x".into());
        both_flags.os_tenant_name = Some("x".into());
        both_flags.os_username = Some("x".into());
        both_flags.os_password = Some("x".into());
        assert_eq!(
            both_flags.resolve(env(&V1_ENV)).unwrap(),
            Credentials::V1 {
                url: "http://f/auth/v1.0".into(),
                user: "fu".into(),
                key: "fk".into()
            }
        );
    }

    #[test]
    fn a_flag_completes_the_environment() {
        let args = LoginArgs {
            key: Some("other".into()),
            ..Default::default()
        };
        let c = args.resolve(env(&V1_ENV)).unwrap();
        assert_eq!(
            c,
            Credentials::V1 {
                url: "http://e/auth/v1.0".into(),
                user: "eu".into(),
                key: "other".into()
            }
        );
        // ST_AUTH missing, the flag gives it.
        let args = LoginArgs {
            auth: Some("http://a".into()),
            ..Default::default()
        };
        let c = args
            .resolve(env(&[("ST_USER", "u"), ("ST_KEY", "k")]))
            .unwrap();
        assert_eq!(c.version(), "1.0");
    }

    #[test]
    fn none_is_an_error_naming_the_variables() {
        let e = LoginArgs::default()
            .resolve(env(&[]))
            .unwrap_err()
            .to_string();
        for name in [
            "ST_AUTH",
            "ST_USER",
            "ST_KEY",
            "OS_AUTH_URL",
            "OS_TENANT_NAME",
            "OS_USERNAME",
            "OS_PASSWORD",
        ] {
            assert!(e.contains(name), "{e}");
        }
        // Incomplete sets, empty values count as unset.
        let e = LoginArgs::default()
            .resolve(env(&[("ST_AUTH", "x"), ("ST_USER", "u"), ("ST_KEY", "")]))
            .unwrap_err();
        assert!(e.to_string().starts_with("no credentials"), "{e}");
    }

    #[test]
    fn an_explicit_version_names_what_is_missing() {
        let args = LoginArgs {
            auth_version: Some("2.0".into()),
            ..Default::default()
        };
        let e = args.resolve(env(&V1_ENV)).unwrap_err().to_string();
        assert_eq!(
            e,
            "auth v2.0 needs --os-auth-url or OS_AUTH_URL, --os-tenant-name or OS_TENANT_NAME, \
             --os-username or OS_USERNAME, --os-password or OS_PASSWORD"
        );
        let args = LoginArgs {
            auth_version: Some("1.0".into()),
            ..Default::default()
        };
        let e = args
            .resolve(env(&[("ST_AUTH", "a")]))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "auth v1.0 needs --user or ST_USER, --key or ST_KEY");
        // -V 1.0 with a complete v2 environment and a complete v1 one: v1.
        let both: Vec<(&str, &str)> = V2_ENV.iter().chain(V1_ENV.iter()).copied().collect();
        assert_eq!(args.resolve(env(&both)).unwrap().version(), "1.0");
    }

    #[test]
    fn v2_request_and_response() {
        assert_eq!(
            v2_request("t", "u", "p"),
            json!({"auth": {"tenantName": "t", "passwordCredentials": {"username": "u", "password": "p"}}})
        );
        let body = br#"{"access": {
            "token": {"id": "tok123", "expires": "2030-01-01T00:00:00Z", "tenant": {"id": "1", "name": "t"}},
            "serviceCatalog": [
                {"type": "identity", "name": "keystone", "endpoints": [{"publicURL": "http://k/v2.0"}]},
                {"type": "object-store", "name": "swift", "endpoints": [
                    {"region": "r1", "publicURL": "http://swift/v1/AUTH_1", "internalURL": "http://int/v1/AUTH_1"}
                ]}
            ],
            "user": {"id": "u1", "name": "u"}
        }}"#;
        assert_eq!(
            parse_v2_response(body).unwrap(),
            ("tok123".to_string(), "http://swift/v1/AUTH_1".to_string())
        );
        let e = |b: &[u8]| parse_v2_response(b).unwrap_err().to_string();
        assert_eq!(e(b"<html>"), "keystone answer is not JSON");
        assert_eq!(e(b"{}"), "keystone answer has no \"access\"");
        assert_eq!(
            e(br#"{"access": {"token": {}}}"#),
            "keystone answer has no access.token.id"
        );
        assert_eq!(
            e(br#"{"access": {"token": {"id": "x"}, "serviceCatalog": [{"type": "compute", "endpoints": [{"publicURL": "u"}]}]}}"#),
            "keystone catalog has no object-store endpoint with a publicURL"
        );
    }

    #[test]
    fn ui_auth_options() {
        let v1 = Credentials::V1 {
            url: "A".into(),
            user: "U".into(),
            key: "K".into(),
        };
        assert_eq!(
            auth_opts(&v1, false, "S"),
            json!({"version": "1.0", "authUrl": "A", "username": "U", "password": "K"})
        );
        assert_eq!(
            auth_opts(&v1, true, "S"),
            json!({"version": "0.0", "swiftUrl": "S"})
        );
        let v2 = Credentials::V2 {
            url: "A".into(),
            tenant: "T".into(),
            user: "U".into(),
            password: "P".into(),
        };
        assert_eq!(
            auth_opts(&v2, false, "S"),
            json!({"version": "2.0", "authUrl": "A", "tenant": "T", "username": "U", "password": "P"})
        );
    }
}
