//! The CGI environment a program gets (spec/zerocloud.md §3.4): request
//! headers as `HTTP_*` (minus the excluded ones), method, path, query,
//! server identity, and `SCRIPT_NAME` / `SCRIPT_FILENAME` per node.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::plan::{JobPlan, NodePlan};

/// Request headers never shown to the program (case-insensitive prefixes).
pub const EXCLUDED_HEADER_PREFIXES: [&str; 9] = [
    "x-account-sysmeta-",
    "x-container-sysmeta-",
    "x-object-sysmeta-",
    "x-backend",
    "x-auth",
    "content-type",
    "content-length",
    "x-storage-token",
    "cookie",
];

/// The parts of the client request the CGI environment is made of.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgiRequest {
    /// The client's method (`POST` for jobs, the original method for
    /// open/api requests).
    pub method: String,
    /// The version segment as a path: `/v1`, `/open` or `/api`.
    pub script_name: String,
    /// The path without the version segment: `/a`, `/a/c/o`, `/a/c/rest`.
    pub path_info: String,
    /// Without the `?`; empty when there is none.
    pub query_string: String,
    /// All request headers, after the proxy forced its own
    /// (`X-Zerovm-Execute`, `X-Zerocloud-Id`, `X-Zerovm-Timeout`, `X-Trans-Id`).
    pub headers: Vec<(String, String)>,
    pub remote_user: Option<String>,
    /// Defaults to `HTTP/1.0`.
    pub server_protocol: Option<String>,
    /// Used when there is no `Host` header (default `localhost` / `80`).
    pub server_name: Option<String>,
    pub server_port: Option<String>,
}

fn excluded(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    EXCLUDED_HEADER_PREFIXES
        .iter()
        .any(|p| lower.starts_with(p))
}

/// `host[:port]` → (host, port), port 80 when absent; IPv6 in brackets.
fn split_host(host: &str) -> (String, String) {
    if host.starts_with('[') {
        if let Some(end) = host.find(']') {
            let port = host[end + 1..].strip_prefix(':').unwrap_or("80");
            return (host[..=end].to_string(), port.to_string());
        }
    }
    match host.split_once(':') {
        Some((h, p)) => (h.to_string(), p.to_string()),
        None => (host.to_string(), "80".to_string()),
    }
}

/// The CGI variables of `node` for `req`.
pub fn cgi_env(req: &CgiRequest, node: &NodePlan) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for (name, value) in &req.headers {
        if excluded(name) {
            continue;
        }
        let key = format!("HTTP_{}", name.to_uppercase().replace('-', "_"));
        env.entry(key)
            .and_modify(|v: &mut String| {
                v.push(',');
                v.push_str(value);
            })
            .or_insert_with(|| value.clone());
    }
    env.insert("REQUEST_METHOD".into(), req.method.clone());
    if let Some(user) = req.remote_user.as_ref().filter(|u| !u.is_empty()) {
        env.insert("REMOTE_USER".into(), user.clone());
    }
    let mut uri = format!("{}{}", req.script_name, req.path_info);
    if !req.query_string.is_empty() {
        env.insert("QUERY_STRING".into(), req.query_string.clone());
        uri.push('?');
        uri.push_str(&req.query_string);
    }
    env.insert("PATH_INFO".into(), req.path_info.clone());
    env.insert("REQUEST_URI".into(), uri);
    env.insert(
        "SERVER_PROTOCOL".into(),
        req.server_protocol
            .clone()
            .unwrap_or_else(|| "HTTP/1.0".into()),
    );
    env.insert("SERVER_SOFTWARE".into(), "zerocloud".into());
    env.insert("GATEWAY_INTERFACE".into(), "CGI/1.1".into());
    env.insert("SCRIPT_NAME".into(), node.program_name().to_string());
    env.insert("SCRIPT_FILENAME".into(), node.exe.url());
    let host = req
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.as_str());
    let (name, port) = match host {
        Some(h) => split_host(h),
        None => (
            req.server_name
                .clone()
                .unwrap_or_else(|| "localhost".into()),
            req.server_port.clone().unwrap_or_else(|| "80".into()),
        ),
    };
    env.insert("SERVER_NAME".into(), name);
    env.insert("SERVER_PORT".into(), port);
    env
}

/// Gives every node its program environment: `exec.env` overlaid by the
/// CGI variables (a user key with a CGI name is overridden).
pub fn apply_cgi_env(plan: &mut JobPlan, req: &CgiRequest) {
    for node in &mut plan.nodes {
        let cgi = cgi_env(req, node);
        node.env.extend(cgi);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::NoCatalog;
    use crate::compile::{compile, CompileOptions};
    use crate::job::Job;
    use serde_json::json;

    fn plan() -> JobPlan {
        let job = Job::from_value(&json!([{
            "name": "sort", "count": 2,
            "exec": {"path": "swift://~/c/sort.wasm", "env": {"REQUEST_METHOD": "mine", "MINE": "1"}},
            "devices": [{"name": "stdout"}]
        }]))
        .unwrap();
        compile(&job, &CompileOptions::new("a"), &NoCatalog).unwrap()
    }

    fn request() -> CgiRequest {
        CgiRequest {
            method: "GET".into(),
            script_name: "/open".into(),
            path_info: "/a/c/myapp".into(),
            query_string: "start=1&end=5".into(),
            headers: vec![
                ("Host".into(), "example.com:8080".into()),
                ("User-Agent".into(), "curl".into()),
                ("X-Auth-Token".into(), "secret".into()),
                ("Content-Type".into(), "text/plain".into()),
                ("Content-Length".into(), "4".into()),
                ("Cookie".into(), "c=1".into()),
                ("X-Object-Sysmeta-Foo".into(), "x".into()),
                ("X-Backend-Thing".into(), "x".into()),
                ("X-Storage-Token".into(), "x".into()),
                ("X-Zerovm-Execute".into(), "open/1.0".into()),
                ("Accept".into(), "a".into()),
                ("accept".into(), "b".into()),
            ],
            remote_user: Some(String::new()),
            ..CgiRequest::default()
        }
    }

    #[test]
    fn cgi_variables_follow_the_spec() {
        let mut plan = plan();
        apply_cgi_env(&mut plan, &request());
        let env = &plan.nodes[1].env;
        let get = |k: &str| env.get(k).map(String::as_str);
        assert_eq!(get("HTTP_HOST"), Some("example.com:8080"));
        assert_eq!(get("HTTP_USER_AGENT"), Some("curl"));
        assert_eq!(get("HTTP_X_ZEROVM_EXECUTE"), Some("open/1.0"));
        assert_eq!(get("HTTP_ACCEPT"), Some("a,b"));
        for gone in [
            "HTTP_X_AUTH_TOKEN",
            "HTTP_CONTENT_TYPE",
            "HTTP_CONTENT_LENGTH",
            "HTTP_COOKIE",
            "HTTP_X_OBJECT_SYSMETA_FOO",
            "HTTP_X_BACKEND_THING",
            "HTTP_X_STORAGE_TOKEN",
            "CONTENT_TYPE",
            "CONTENT_LENGTH",
            "REMOTE_USER",
        ] {
            assert_eq!(get(gone), None, "{gone}");
        }
        assert_eq!(get("REQUEST_METHOD"), Some("GET"));
        assert_eq!(get("MINE"), Some("1"));
        assert_eq!(get("QUERY_STRING"), Some("start=1&end=5"));
        assert_eq!(get("PATH_INFO"), Some("/a/c/myapp"));
        assert_eq!(get("REQUEST_URI"), Some("/open/a/c/myapp?start=1&end=5"));
        assert_eq!(get("SERVER_PROTOCOL"), Some("HTTP/1.0"));
        assert_eq!(get("SERVER_SOFTWARE"), Some("zerocloud"));
        assert_eq!(get("GATEWAY_INTERFACE"), Some("CGI/1.1"));
        assert_eq!(get("SCRIPT_NAME"), Some("sort-2"));
        assert_eq!(get("SCRIPT_FILENAME"), Some("swift://a/c/sort.wasm"));
        assert_eq!(get("SERVER_NAME"), Some("example.com"));
        assert_eq!(get("SERVER_PORT"), Some("8080"));
    }

    #[test]
    fn server_identity_fallbacks() {
        let node = &plan().nodes[0];
        let mut req = CgiRequest {
            method: "POST".into(),
            script_name: "/v1".into(),
            path_info: "/a".into(),
            remote_user: Some("u".into()),
            ..CgiRequest::default()
        };
        let env = cgi_env(&req, node);
        assert_eq!(env["SERVER_NAME"], "localhost");
        assert_eq!(env["SERVER_PORT"], "80");
        assert_eq!(env["REQUEST_URI"], "/v1/a");
        assert_eq!(env["REMOTE_USER"], "u");
        assert!(!env.contains_key("QUERY_STRING"));
        req.headers.push(("host".into(), "[::1]:81".into()));
        let env = cgi_env(&req, node);
        assert_eq!(
            (env["SERVER_NAME"].as_str(), env["SERVER_PORT"].as_str()),
            ("[::1]", "81")
        );
        req.headers[0].1 = "h".into();
        assert_eq!(cgi_env(&req, node)["SERVER_PORT"], "80");
    }
}
