//! Where a request is answered once the common pipeline (`router.rs`: the
//! trans-id, the app forms' URLs, the log line) has seen it: the [`Backend`]
//! trait and its two implementations.
//!
//! - [`Embedded`]: our own Swift API (TempAuth, the handlers in `swift/`) over
//!   our storage nodes, and jobs (`job/`) run by their exec agents.
//! - [`SwiftUpstream`]: an OpenStack Swift proxy. Every plain Swift request
//!   is passed to it unchanged (auth included, so Swift's tempauth or
//!   keystone stays in charge), streaming both ways. ZeroCloud requests
//!   run as jobs on exec agents beside Swift's object servers, every read
//!   and write made with the caller's own token (`swift_cluster.rs`,
//!   docs/swift-backend.md); without agents configured they get 501.

use std::future::Future;
use std::pin::Pin;

use axum::Router;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, Uri};
use wire::body::Body;
use wire::client::HttpClient;

use std::sync::Arc;

use crate::auth::Identity;
use crate::context::{RequestCtx, SwiftPath, TransId};
use crate::error::ProxyError;
use crate::router::AppState;
use crate::swift::headers::hstr;
use crate::swift::SwiftApi;

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Answers a request: a plain Swift API request, or a ZeroCloud one
/// (`X-Zerovm-Execute`, the `/open/` and `/api/` forms already rewritten to
/// `/v1/` with the header set).
pub trait Backend: Send + Sync {
    fn handle<'a>(
        &'a self,
        req: Request<Body>,
        tx: &'a TransId,
    ) -> BoxFut<'a, Result<Response<Body>, ProxyError>>;
}

/// Our own store: the API table of `router.rs` and the job layer.
pub struct Embedded {
    pub(crate) state: AppState,
    pub(crate) table: Router,
}

impl Backend for Embedded {
    fn handle<'a>(
        &'a self,
        req: Request<Body>,
        tx: &'a TransId,
    ) -> BoxFut<'a, Result<Response<Body>, ProxyError>> {
        Box::pin(crate::router::route_embedded(self, req, tx.clone()))
    }
}

/// Marks a response that came from the upstream Swift: its `X-Trans-Id`
/// (Swift's, with ours appended) is kept.
#[derive(Clone, Copy, Debug)]
pub struct FromUpstream;

/// An OpenStack Swift proxy we stand in front of.
pub struct SwiftUpstream {
    /// `http://host:port`, no trailing slash.
    base: String,
    client: HttpClient,
    /// The job layer over the Swift cluster (`SwiftCluster` storage), when
    /// exec agents are configured.
    jobs: Option<Arc<SwiftApi>>,
}

/// Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection and
/// are never passed on. `Transfer-Encoding` is the message's framing on one
/// connection: hyper has undone the only coding we accept (`chunked`) and
/// frames the message again on the next hop.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(h: &mut hyper::HeaderMap) {
    // Headers the Connection header names are hop-by-hop too.
    let named: Vec<HeaderName> = h
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        h.remove(n);
    }
}

impl SwiftUpstream {
    /// `url`: the Swift proxy's base URL (`http://127.0.0.1:8080`); only
    /// plain `http` (it is a neighbour inside the cluster).
    pub fn new(url: &str) -> Result<SwiftUpstream, String> {
        let base = url.trim_end_matches('/');
        let uri: Uri = base
            .parse()
            .map_err(|e| format!("the Swift proxy URL {url:?}: {e}"))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(format!(
                "the Swift proxy URL {url:?} must be http://host:port"
            ));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(format!(
                "the Swift proxy URL {url:?} must have no path: requests keep theirs"
            ));
        }
        Ok(SwiftUpstream {
            base: base.to_string(),
            client: wire::client::http_client(),
            jobs: None,
        })
    }

    /// Runs ZeroCloud requests on `swift`'s agents (with its setuid user),
    /// with `cfg`'s job settings: the job layer over this Swift
    /// (`SwiftCluster`, sharing this upstream's URL and connections).
    pub fn with_jobs(
        mut self,
        cfg: crate::config::ProxyConfig,
        swift: &crate::config::SwiftConfig,
    ) -> anyhow::Result<SwiftUpstream> {
        let setuid = match &swift.setuid {
            Some(who) => Some(
                crate::swift_setuid::SetuidLogin::new(&self.base, self.client.clone(), who)
                    .map_err(anyhow::Error::msg)?,
            ),
            None => None,
        };
        let cluster = crate::swift_cluster::SwiftCluster::new(
            self.base.clone(),
            self.client.clone(),
            swift.agents.clone(),
            setuid,
        );
        self.jobs = Some(Arc::new(SwiftApi::new(cfg, Arc::new(cluster))?));
        Ok(self)
    }

    /// A ZeroCloud request: the job layer, as the caller (its own token
    /// goes with every request the job makes to Swift).
    async fn job(
        &self,
        api: &Arc<SwiftApi>,
        req: Request<Body>,
        tx: &TransId,
    ) -> Result<Response<Body>, ProxyError> {
        let h = req.headers();
        let path = req.uri().path();
        if !path.starts_with("/v1/") {
            return Err(ProxyError::precondition("Bad URL"));
        }
        let ctx = RequestCtx {
            path: SwiftPath::parse(path)?,
            identity: Identity::default(),
            trans_id: tx.clone(),
            referrer: hstr(h, "referer").map(str::to_string),
            app_source: None,
            setuid_grants: Some(Default::default()),
            credential: h
                .get("x-auth-token")
                .or_else(|| h.get("x-storage-token"))
                .cloned(),
        };
        // Boxed: a job's future is large, plain requests need none of it.
        Box::pin(crate::job::dispatch_with_cors(api.clone(), ctx, req)).await
    }

    /// Passes `req` to Swift as sent (method, path and query, headers but
    /// the hop-by-hop ones, the body streaming), with our trans-id added
    /// to Swift's (`X-Trans-Id-Extra`), and returns Swift's answer as it
    /// comes. `Host` goes through, so the URLs Swift hands out (its
    /// `X-Storage-Url`) name us.
    async fn forward(
        &self,
        req: Request<Body>,
        tx: &TransId,
    ) -> Result<Response<Body>, ProxyError> {
        let (mut parts, body) = req.into_parts();
        // A coding other than `chunked` alone cannot be passed on once
        // hyper has taken the chunks off: refused, as Swift refuses it.
        if let Some(te) = parts.headers.get(hyper::header::TRANSFER_ENCODING) {
            if !te
                .to_str()
                .is_ok_and(|t| t.trim().eq_ignore_ascii_case("chunked"))
            {
                return Err(ProxyError::NotImplemented(
                    "Unsupported Transfer-Coding header value specified in Transfer-Encoding header"
                        .into(),
                ));
            }
        }
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        parts.uri = format!("{}{path}", self.base)
            .parse()
            .map_err(|e| ProxyError::bad_request(format!("cannot pass the URL on: {e}")))?;
        strip_hop_by_hop(&mut parts.headers);
        if let Ok(v) = HeaderValue::from_str(tx.as_str()) {
            parts.headers.insert("x-trans-id-extra", v);
        }
        let resp = self
            .client
            .request(Request::from_parts(parts, body))
            .await
            .map_err(|e| crate::swift_cluster::upstream_down(&self.base, &e))?;
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        parts.extensions.insert(FromUpstream);
        Ok(Response::from_parts(parts, Body::new(body)))
    }
}

impl Backend for SwiftUpstream {
    fn handle<'a>(
        &'a self,
        req: Request<Body>,
        tx: &'a TransId,
    ) -> BoxFut<'a, Result<Response<Body>, ProxyError>> {
        Box::pin(async move {
            // Swift's `list_endpoints` answers without auth and shows the
            // cluster's insides: ours to ask, never the clients'.
            let path = req.uri().path();
            if path == "/endpoints" || path.starts_with("/endpoints/") {
                return Err(ProxyError::NotFound);
            }
            if path == "/info" && req.method() == hyper::Method::GET {
                if let Some(api) = &self.jobs {
                    let resp = self.forward(req, tx).await?;
                    return Ok(with_jobs_info(resp, api).await);
                }
            }
            if req.headers().contains_key(crate::job::EXECUTE) {
                return match &self.jobs {
                    Some(api) => self.job(api, req, tx).await,
                    None => Err(ProxyError::NotImplemented(
                        "Jobs on the OpenStack Swift backend need exec agents: \
                         this proxy has no [swift] agents configured (--swift-agent), \
                         so it passes plain Swift requests on to Swift only"
                            .into(),
                    )),
                };
            }
            self.forward(req, tx).await
        })
    }
}

/// Swift's `/info`, with what jobs may do added (`zerocloud`), as
/// ZeroCloud's middleware registered it in Swift's. Anything but a JSON
/// object from Swift is passed on as it came.
async fn with_jobs_info(resp: Response<Body>, api: &SwiftApi) -> Response<Body> {
    use http_body_util::BodyExt;
    if resp.status() != 200 {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match http_body_util::Limited::new(body, 1 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return wire::reply::status(502),
    };
    let text = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(mut v)) => {
            v.insert(
                "zerocloud".into(),
                crate::endpoints::zerocloud_info(&api.cfg.zerocloud),
            );
            serde_json::Value::Object(v).to_string().into_bytes()
        }
        _ => bytes.to_vec(),
    };
    parts
        .headers
        .insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(text.len()));
    Response::from_parts(parts, wire::body::full(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_url_is_a_plain_http_base() {
        assert!(SwiftUpstream::new("http://127.0.0.1:8080").is_ok());
        assert_eq!(
            SwiftUpstream::new("http://127.0.0.1:8080/").unwrap().base,
            "http://127.0.0.1:8080"
        );
        for bad in [
            "127.0.0.1:8080",
            "https://swift:443",
            "http://swift:8080/v1",
            "http://swift:8080?x=1",
            "not a url",
        ] {
            assert!(SwiftUpstream::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hop_by_hop_headers_stay_on_their_connection() {
        let mut h = hyper::HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("te", "trailers"),
            ("x-auth-token", "t"),
            ("transfer-encoding", "chunked"),
        ] {
            h.insert(k, HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-auth-token"]);
    }
}
