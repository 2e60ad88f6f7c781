//! The storage the proxy talks to, behind one trait: our object servers
//! placed by the ring ([`RingStorage`]), or an OpenStack Swift cluster
//! (`crate::swift_cluster::SwiftCluster`). Besides Swift's requests, the
//! trait places job sessions: which exec agents hold an object (they run
//! the sessions attached to it), and the exec request itself
//! (`wire::exec`).

use std::future::Future;
use std::pin::Pin;

use hyper::{Request, Response};
use sysmap::plan::AttachMode;
use wire::body::Body;
use wire::client::{http_client, HttpClient};
use wire::exec::AttachedFrom;

use crate::context::TransId;
use crate::error::ProxyError;
use crate::ring::Ring;

/// What a backend request is about.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Account(&'a str),
    Container(&'a str, &'a str),
    Object(&'a str, &'a str, &'a str),
}

impl<'a> Target<'a> {
    /// The target of a path's parts (an object without a container names
    /// the account).
    pub fn of(account: &'a str, container: Option<&'a str>, object: Option<&'a str>) -> Target<'a> {
        match (container, object) {
            (Some(c), Some(o)) => Target::Object(account, c, o),
            (Some(c), None) => Target::Container(account, c),
            _ => Target::Account(account),
        }
    }

    /// Its path in the Swift API (`/v1/a/c/o`, names percent-encoded).
    pub fn v1_path(&self) -> String {
        match *self {
            Target::Account(a) => crate::context::v1_path(a, None, None),
            Target::Container(a, c) => crate::context::v1_path(a, Some(c), None),
            Target::Object(a, c, o) => crate::context::v1_path(a, Some(c), Some(o)),
        }
    }
}

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a session can run: an exec agent, and how that agent gets the
/// object the session is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub agent: String,
    pub attached: AttachedFrom,
}

pub trait Storage: Send + Sync {
    /// Sends `req` (method, headers, body; its URI is ignored but for the query
    /// string) to whatever holds `target`, tagged with the client request's
    /// trans-id, and returns the storage's answer.
    fn send<'a>(
        &'a self,
        tx: &'a TransId,
        target: Target<'a>,
        req: Request<Body>,
    ) -> BoxFut<'a, Result<Response<Body>, ProxyError>>;

    /// Where a session attached to `target` (`attach`: read or write) can
    /// run: the agents beside the object, best first. For `None`, any
    /// agent (an unattached session; the order spreads the load).
    fn places<'a>(
        &'a self,
        tx: &'a TransId,
        target: Option<(Target<'a>, AttachMode)>,
    ) -> BoxFut<'a, Result<Vec<Place>, ProxyError>>;

    /// Whether the caller's own credentials go with every request (a
    /// Swift cluster, whose auth decides), rather than this proxy
    /// authorizing requests itself (our store).
    fn caller_credentials(&self) -> bool {
        false
    }

    /// On a storage whose auth decides: the user the setuid rule lends
    /// an app's jobs (`crate::swift_setuid`), if one is configured.
    fn setuid_login(&self) -> Option<&crate::swift_setuid::SetuidLogin> {
        None
    }

    /// Sends an exec request (`wire::exec`: a session, a reservation, a
    /// release) to `agent` at its internal `path`; `writes` is the object
    /// an attached session writes, whose listing must be updated.
    fn exec<'a>(
        &'a self,
        tx: &'a TransId,
        agent: &'a str,
        path: String,
        writes: Option<Target<'a>>,
        req: Request<Body>,
    ) -> BoxFut<'a, Result<Response<Body>, ProxyError>>;
}

/// Our object servers, placed by the ring; each runs an exec agent.
pub struct RingStorage {
    ring: Ring,
    client: HttpClient,
    /// Turns of the round robin over agents for unattached sessions.
    next_agent: std::sync::atomic::AtomicUsize,
}

impl RingStorage {
    pub fn new(ring: Ring) -> RingStorage {
        RingStorage {
            ring,
            client: http_client(),
            next_agent: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    async fn forward(
        &self,
        node: &str,
        path: String,
        tx: &TransId,
        req: Request<Body>,
        listing_of: Option<Target<'_>>,
    ) -> Result<Response<Body>, ProxyError> {
        let (mut parts, body) = req.into_parts();
        // Writes name the DBs they must update.
        match listing_of {
            Some(Target::Object(a, c, _)) => {
                insert(
                    &mut parts.headers,
                    wire::CONTAINER_NODE,
                    self.ring.container_node(a, c),
                );
                insert(
                    &mut parts.headers,
                    wire::ACCOUNT_NODE,
                    self.ring.account_node(a),
                );
            }
            Some(Target::Container(a, _)) => {
                insert(
                    &mut parts.headers,
                    wire::ACCOUNT_NODE,
                    self.ring.account_node(a),
                );
            }
            Some(Target::Account(_)) | None => {}
        }
        to_node(
            &self.client,
            node,
            &path,
            tx,
            Request::from_parts(parts, body),
        )
        .await
    }
}

impl Storage for RingStorage {
    fn send<'a>(
        &'a self,
        tx: &'a TransId,
        target: Target<'a>,
        req: Request<Body>,
    ) -> BoxFut<'a, Result<Response<Body>, ProxyError>> {
        Box::pin(async move {
            let (node, path) = match target {
                Target::Account(a) => (self.ring.account_node(a), wire::account_path(a)),
                Target::Container(a, c) => {
                    (self.ring.container_node(a, c), wire::container_path(a, c))
                }
                Target::Object(a, c, o) => {
                    (self.ring.object_node(a, c, o), wire::object_path(a, c, o))
                }
            };
            self.forward(node, path, tx, req, Some(target)).await
        })
    }

    fn places<'a>(
        &'a self,
        _tx: &'a TransId,
        target: Option<(Target<'a>, AttachMode)>,
    ) -> BoxFut<'a, Result<Vec<Place>, ProxyError>> {
        let agents = match target.map(|(t, _)| t) {
            Some(Target::Object(a, c, o)) => vec![self.ring.object_node(a, c, o).to_string()],
            Some(Target::Container(a, c)) => vec![self.ring.container_node(a, c).to_string()],
            Some(Target::Account(a)) => vec![self.ring.account_node(a).to_string()],
            None => round_robin(self.ring.nodes(), &self.next_agent),
        };
        let places = agents
            .into_iter()
            .map(|agent| Place {
                agent,
                attached: AttachedFrom::Disk,
            })
            .collect();
        Box::pin(std::future::ready(Ok(places)))
    }

    fn exec<'a>(
        &'a self,
        tx: &'a TransId,
        agent: &'a str,
        path: String,
        writes: Option<Target<'a>>,
        req: Request<Body>,
    ) -> BoxFut<'a, Result<Response<Body>, ProxyError>> {
        Box::pin(async move { self.forward(agent, path, tx, req, writes).await })
    }
}

/// Sends `req` to the internal `path` of `node` (a storage node or an exec
/// agent), keeping its query string, tagged with the trans-id.
pub(crate) async fn to_node(
    client: &HttpClient,
    node: &str,
    path: &str,
    tx: &TransId,
    req: Request<Body>,
) -> Result<Response<Body>, ProxyError> {
    let (mut parts, body) = req.into_parts();
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    parts.uri = format!("http://{node}{path}{query}")
        .parse()
        .map_err(|e| ProxyError::Internal(format!("bad backend uri: {e}")))?;
    insert(&mut parts.headers, wire::TRANS_ID, tx.as_str());
    parts.headers.remove(hyper::header::HOST);
    parts.headers.remove(hyper::header::CONNECTION);
    let resp = client
        .request(Request::from_parts(parts, body))
        .await
        .map_err(|e| ProxyError::Backend(format!("{node}: {}", wire::client::describe(&e))))?;
    Ok(resp.map(Body::new))
}

/// `items`, starting at the next turn of `turns`: successive calls start
/// at successive items.
pub(crate) fn round_robin<T: Clone>(items: &[T], turns: &std::sync::atomic::AtomicUsize) -> Vec<T> {
    let turn = turns.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    (0..items.len())
        .map(|i| items[(turn + i) % items.len()].clone())
        .collect()
}

pub(crate) fn insert(h: &mut hyper::HeaderMap, name: &'static str, v: &str) {
    if let Ok(v) = v.parse() {
        h.insert(name, v);
    }
}
