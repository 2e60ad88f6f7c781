//! The Swift v1 calls zpm makes, on reqwest's blocking client. Every
//! answer outside 2xx becomes an [`HttpError`]: `<status> <reason>: <body>`.

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, Result};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use reqwest::blocking::{Body, Client, RequestBuilder, Response};
use reqwest::header::HeaderMap;
use reqwest::Method;

/// How much of an error body is shown.
const BODY_SHOWN: usize = 2000;

/// An answer outside 2xx.
#[derive(Debug, thiserror::Error)]
#[error("{status} {reason}{}", if body.is_empty() { String::new() } else { format!(": {body}") })]
pub struct HttpError {
    pub status: u16,
    pub reason: String,
    /// The body as text, trimmed and cut to its first 2000 characters.
    pub body: String,
}

/// The HTTP client zpm uses: connect timeout, no redirects (a redirect
/// would carry the token elsewhere), no overall timeout (jobs take time).
pub fn client() -> Result<Client> {
    Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .timeout(None)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("zpm/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot make the HTTP client")
}

/// `resp` itself when its status is 2xx, else an [`HttpError`] in the
/// context `doing`.
pub fn check(resp: Response, doing: &str) -> Result<Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let reason = status.canonical_reason().unwrap_or("").to_string();
    let body = resp.text().unwrap_or_default();
    let body = body.trim();
    let body: String = body.chars().take(BODY_SHOWN).collect();
    Err(anyhow::Error::new(HttpError {
        status: status.as_u16(),
        reason,
        body,
    })
    .context(doing.to_string()))
}

/// Characters escaped in a path segment (`/` separates segments and stays).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'[')
    .add(b']');

/// `path` (`container/object/...`) percent-encoded for a URL.
pub fn quote_path(path: &str) -> String {
    utf8_percent_encode(path, SEGMENT).to_string()
}

/// The account of a storage URL: its last path segment (`AUTH_test`).
pub fn account_of(storage_url: &str) -> &str {
    storage_url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
}

/// A logged-in Swift session.
#[derive(Clone, Debug)]
pub struct Session {
    client: Client,
    /// The storage URL, `http://host/v1/AUTH_test`.
    pub url: String,
    /// The token; none for a public account URL.
    pub token: Option<String>,
}

/// A job's answer: its headers and its body, unchanged.
#[derive(Debug)]
pub struct JobOutput {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Session {
    pub fn new(client: Client, url: String, token: Option<String>) -> Session {
        let url = url.trim_end_matches('/').to_string();
        Session { client, url, token }
    }

    /// A request on `<storage url>/<path>` (`path` may be empty for the account).
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let url = if path.is_empty() {
            self.url.clone()
        } else {
            format!("{}/{}", self.url, quote_path(path))
        };
        let req = self.client.request(method, url);
        match &self.token {
            Some(t) => req.header("X-Auth-Token", t),
            None => req,
        }
    }

    fn send(&self, req: RequestBuilder, doing: &str) -> Result<Response> {
        let resp = req.send().with_context(|| doing.to_string())?;
        check(resp, doing)
    }

    /// Whether `container` holds any object; `None` when it does not exist.
    pub fn container_is_empty(&self, container: &str) -> Result<Option<bool>> {
        let doing = format!("listing container '{container}'");
        let resp = self
            .request(Method::GET, container)
            .query(&[("format", "json"), ("limit", "1")])
            .send()
            .with_context(|| doing.clone())?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = check(resp, &doing)?;
        let body = resp.bytes().with_context(|| doing.clone())?;
        let list: serde_json::Value = serde_json::from_slice(&body)
            .with_context(|| format!("{doing}: the listing is not JSON"))?;
        Ok(Some(list.as_array().is_none_or(|a| a.is_empty())))
    }

    pub fn put_container(&self, container: &str) -> Result<()> {
        let doing = format!("creating container '{container}'");
        self.send(self.request(Method::PUT, container), &doing)?;
        Ok(())
    }

    /// PUTs `data` at `path`, with a progress bar on stderr when it is a
    /// terminal.
    pub fn put_object(&self, path: &str, data: Vec<u8>, content_type: &str) -> Result<()> {
        let doing = format!("uploading '{path}'");
        let len = data.len() as u64;
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(len),
            indicatif::ProgressDrawTarget::stderr(),
        );
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(path.to_string());
        let reader = bar.wrap_read(std::io::Cursor::new(data));
        let req = self
            .request(Method::PUT, path)
            .header("Content-Type", content_type)
            .body(Body::sized(reader, len));
        let result = self.send(req, &doing);
        bar.finish_and_clear();
        result?;
        Ok(())
    }

    pub fn get_object(&self, path: &str) -> Result<Vec<u8>> {
        let doing = format!("getting '{path}'");
        let mut resp = self.send(self.request(Method::GET, path), &doing)?;
        let mut body = Vec::new();
        resp.read_to_end(&mut body).with_context(|| doing.clone())?;
        Ok(body)
    }

    /// POSTs a job (`X-Zerovm-Execute: 1.0`) to the account.
    pub fn execute(&self, body: Vec<u8>, content_type: &str, doing: &str) -> Result<JobOutput> {
        let req = self
            .request(Method::POST, "")
            .header("X-Zerovm-Execute", "1.0")
            .header("Content-Type", content_type)
            .body(body);
        let mut resp = self.send(req, doing)?;
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        resp.read_to_end(&mut body)
            .with_context(|| doing.to_string())?;
        Ok(JobOutput { headers, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_accounts() {
        assert_eq!(quote_path("app/boot/system.map"), "app/boot/system.map");
        assert_eq!(quote_path("my app/a#b?c%d"), "my%20app/a%23b%3Fc%25d");
        assert_eq!(quote_path("é"), "%C3%A9");
        assert_eq!(account_of("http://h:1/v1/AUTH_test"), "AUTH_test");
        assert_eq!(account_of("http://h:1/v1/AUTH_test/"), "AUTH_test");
    }

    #[test]
    fn http_error_text() {
        let e = HttpError {
            status: 404,
            reason: "Not Found".into(),
            body: "<html>x</html>".into(),
        };
        assert_eq!(e.to_string(), "404 Not Found: <html>x</html>");
        let e = HttpError {
            status: 401,
            reason: "Unauthorized".into(),
            body: String::new(),
        };
        assert_eq!(e.to_string(), "401 Unauthorized");
        let chained = anyhow::Error::new(e).context("authenticating at http://x");
        assert_eq!(
            format!("{chained:#}"),
            "authenticating at http://x: 401 Unauthorized"
        );
    }
}
