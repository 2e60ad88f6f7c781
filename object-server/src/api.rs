//! The storage node's internal HTTP API (see `wire.rs` for the URL table): routing,
//! account and container handlers, errors mapped to responses in one place, and
//! the background updater and expirer.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{RawPathParams, Request, State};
use axum::routing::{any, get, post, put};
use axum::Router;
use axum_core::extract::FromRequestParts;
use http::request::Parts;
use http_body_util::BodyExt;
use hyper::header::HeaderMap;
use hyper::{Method, Response};
use rusqlite::{params, Connection};
use tower::ServiceExt;
use tracing::{error, info, warn, Instrument};

use crate::config::ObjectServerConfig;
use crate::db::{ContainerReport, Databases, Entry, ObjectRow};
use crate::error::StorageError;
use crate::listing;
use crate::objects::ObjectStore;
use crate::peer::{self, Pending, Update};
use wire::body::{full, Body};
use wire::client::{http_client, HttpClient};
use wire::reply;
use wire::timestamp::Timestamp;

/// One storage node: its stores, its own address, and a client for its peers.
pub struct Node {
    pub addr: String,
    pub objects: ObjectStore,
    pub dbs: Arc<Databases>,
    pub(crate) client: HttpClient,
    pending: Pending,
    expiring: Mutex<Connection>,
    /// The exec agent: sessions of jobs next to this node's data.
    pub agent: Arc<crate::exec::Agent>,
    pub cfg: ObjectServerConfig,
}

pub type Result<T> = std::result::Result<T, StorageError>;

impl Node {
    /// Opens the node's stores under `cfg.data_dir`; `addr` is how peers reach it.
    pub fn open(cfg: ObjectServerConfig, addr: String) -> anyhow::Result<Arc<Node>> {
        std::fs::create_dir_all(&cfg.data_dir)?;
        let objects = ObjectStore::open(&cfg.data_dir, cfg.fsync)?;
        let dbs = Databases::open(&cfg.data_dir, cfg.fsync)?;
        let expiring = Connection::open(cfg.data_dir.join("expiring.db"))?;
        let agent = Arc::new(crate::exec::Agent::new(
            cfg.exec.clone(),
            &cfg.data_dir,
            addr.clone(),
        )?);
        expiring.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE IF NOT EXISTS expiring (name TEXT NOT NULL, delete_at INTEGER NOT NULL,
               container_node TEXT NOT NULL, account_node TEXT NOT NULL, PRIMARY KEY (name, delete_at));",
        )?;
        Ok(Arc::new(Node {
            addr,
            objects,
            dbs,
            client: http_client(),
            pending: Pending::open(&cfg.data_dir)?,
            expiring: Mutex::new(expiring),
            agent,
            cfg,
        }))
    }

    /// Applies an object row to a container DB here or on `node`, then reports the
    /// container's totals to its account. Failures are journaled and retried.
    pub(crate) async fn update_container(
        self: &Arc<Self>,
        node: &str,
        account_node: &str,
        account: &str,
        container: &str,
        row: ObjectRow,
    ) {
        let u = Update::Container {
            node: node.to_string(),
            account_node: account_node.to_string(),
            account: account.to_string(),
            container: container.to_string(),
            row,
        };
        if let Err(e) = self.deliver(&u).await {
            warn!("container update for /{account}/{container} deferred: {e}");
            if let Err(e) = self.pending.save(&u) {
                error!("cannot journal container update: {e}");
            }
        }
    }

    async fn deliver(self: &Arc<Self>, u: &Update) -> Result<()> {
        match u {
            Update::Container {
                node,
                account_node,
                account,
                container,
                row,
            } if *node == self.addr => {
                if let Some(rep) = self
                    .dbs
                    .container_update(account, container, row.clone())
                    .await?
                {
                    self.update_account(account_node, account, rep).await;
                }
                Ok(())
            }
            Update::Account { .. } => self.deliver_account(u).await,
            other => peer::send(&self.client, other).await,
        }
    }

    async fn deliver_account(&self, u: &Update) -> Result<()> {
        match u {
            Update::Account {
                node,
                account,
                report,
            } if *node == self.addr => self.dbs.account_update(account, report.clone()).await,
            other => peer::send(&self.client, other).await,
        }
    }

    pub(crate) async fn update_account(
        self: &Arc<Self>,
        node: &str,
        account: &str,
        report: ContainerReport,
    ) {
        if node.is_empty() {
            return;
        }
        let u = Update::Account {
            node: node.to_string(),
            account: account.to_string(),
            report,
        };
        if let Err(e) = self.deliver_account(&u).await {
            warn!("account update for /{account} deferred: {e}");
            if let Err(e) = self.pending.save(&u) {
                error!("cannot journal account update: {e}");
            }
        }
    }

    /// Remembers an object that must be deleted at `delete_at`.
    pub(crate) fn schedule_expiry(
        &self,
        name: &str,
        delete_at: u64,
        container_node: &str,
        account_node: &str,
    ) -> Result<()> {
        let c = self.expiring.lock().unwrap_or_else(|p| p.into_inner());
        c.execute(
            "INSERT OR REPLACE INTO expiring (name, delete_at, container_node, account_node) VALUES (?1, ?2, ?3, ?4)",
            params![name, delete_at as i64, container_node, account_node],
        )?;
        Ok(())
    }

    /// Deletes objects whose X-Delete-At has passed (if it is still their delete-at).
    async fn expire_once(self: &Arc<Self>) -> Result<usize> {
        let now = Timestamp::now().secs() as i64;
        let due: Vec<(String, i64, String, String)> = {
            let c = self.expiring.lock().unwrap_or_else(|p| p.into_inner());
            let mut st = c.prepare(
                "SELECT name, delete_at, container_node, account_node FROM expiring WHERE delete_at <= ?1 LIMIT 1000",
            )?;
            let rows = st.query_map(params![now], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        let mut n = 0;
        for (name, at, cnode, anode) in due {
            let cur = self.objects.head(&name)?;
            if let Some(m) = cur.filter(|m| m.delete_at == Some(at as u64)) {
                let ts = Timestamp(at as u64 * 100_000).max(Timestamp(m.meta_ts.0 + 1));
                if self.objects.delete(&name, ts).is_ok() {
                    n += 1;
                    if let Some((a, c, o)) = split_name(&name) {
                        let row = ObjectRow {
                            name: o,
                            created_at: ts,
                            size: 0,
                            content_type: String::new(),
                            etag: String::new(),
                            deleted: true,
                        };
                        self.update_container(&cnode, &anode, &a, &c, row).await;
                    }
                }
            }
            let c = self.expiring.lock().unwrap_or_else(|p| p.into_inner());
            c.execute(
                "DELETE FROM expiring WHERE name=?1 AND delete_at=?2",
                params![name, at],
            )?;
        }
        Ok(n)
    }

    async fn retry_pending(self: &Arc<Self>) {
        for (path, u) in self.pending.load() {
            if self.deliver(&u).await.is_ok() {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// Starts the expirer and the updater of journaled updates.
    pub fn start_background(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let me = self.clone();
        let expirer = tokio::spawn(async move {
            let mut t =
                tokio::time::interval(Duration::from_secs_f64(me.cfg.expirer_interval.max(0.05)));
            loop {
                t.tick().await;
                match me.expire_once().await {
                    Ok(0) => {}
                    Ok(n) => info!("expirer deleted {n} objects"),
                    Err(e) => warn!("expirer pass failed: {e}"),
                }
            }
        });
        let me = self.clone();
        let updater = tokio::spawn(async move {
            let mut t =
                tokio::time::interval(Duration::from_secs_f64(me.cfg.updater_interval.max(0.05)));
            loop {
                t.tick().await;
                me.retry_pending().await;
            }
        });
        vec![expirer, updater]
    }
}

/// `/a/c/o` back into its parts.
pub(crate) fn split_name(name: &str) -> Option<(String, String, String)> {
    let mut it = name.strip_prefix('/')?.splitn(3, '/');
    Some((
        it.next()?.to_string(),
        it.next()?.to_string(),
        it.next()?.to_string(),
    ))
}

/// A running storage node: its internal API and its background tasks.
pub struct ObjectServer {
    pub node: Arc<Node>,
    server: wire::serve::Server,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl ObjectServer {
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Stops accepting, lets open requests finish (at most `wire::serve::DRAIN`),
    /// then stops the expirer and the updater. Journaled updates stay on disk.
    pub async fn stop(self) -> bool {
        let drained = self.server.stop().await;
        for t in self.background {
            t.abort();
        }
        drained
    }
}

/// Binds `cfg.bind`, opens the data dir, then serves the internal API.
pub async fn start(cfg: ObjectServerConfig) -> anyhow::Result<ObjectServer> {
    let listener = wire::serve::bind(&cfg.bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.bind))?;
    let addr = listener.local_addr()?;
    let node = Node::open(cfg, addr.to_string())?;
    let agent = node.agent.clone();
    tokio::task::spawn_blocking(move || agent.start_pool()).await?;
    let agent = node.agent.clone();
    let reaper = tokio::spawn(async move {
        let mut t = tokio::time::interval(Duration::from_secs(1));
        loop {
            t.tick().await;
            agent.reap_reservations();
        }
    });
    let mut background = node.start_background();
    background.push(reaper);
    let table = api_table(node.clone());
    let server = wire::serve::spawn(listener, wire::serve::Options::default(), move |req| {
        handle(table.clone(), req)
    })?;
    Ok(ObjectServer {
        node,
        server,
        background,
    })
}

/// The internal API's table (the paths are documented in the `wire` crate):
/// path shape and method → handler. Names arrive percent-encoded, one segment
/// each; the router decodes them, once, and [`Names`] hands them over.
pub fn api_table(node: Arc<Node>) -> Router {
    // An agent beside a Swift object server stores nothing itself.
    if node.agent.beside_swift() {
        return exec_routes(Router::new()).with_state(node);
    }
    let storage = Router::new()
        .route("/o/{a}/{c}/{o}", any(crate::object_api::handle))
        .route(
            "/c/{a}/{c}",
            get(container_get)
                .head(container_get)
                .put(container_put)
                .post(container_post)
                .delete(container_delete),
        )
        .route("/cu/{a}/{c}/{o}", put(container_row))
        .route(
            "/a/{a}",
            get(account_get).head(account_get).post(account_post),
        )
        .route("/au/{a}", put(account_row));
    exec_routes(storage).with_state(node)
}

/// The exec agent's routes (`wire::exec`).
fn exec_routes(r: Router<Arc<Node>>) -> Router<Arc<Node>> {
    r.route("/x/{a}", post(crate::exec::handle))
        .route("/x/{a}/{c}", post(crate::exec::handle))
        .route("/x/{a}/{c}/{o}", post(crate::exec::handle))
        .route("/xr/{a}", post(crate::exec::reserve))
        .route("/xr/{a}/{c}", post(crate::exec::reserve))
        .route("/xr/{a}/{c}/{o}", post(crate::exec::reserve))
        .route("/xt/{t}", axum::routing::delete(crate::exec::release))
        .method_not_allowed_fallback(|| async { StorageError::MethodNotAllowed })
}

/// Wraps every internal request: its log line under the trans-id the proxy sent.
pub async fn handle(table: Router, req: Request<Body>) -> Response<Body> {
    let span = tracing::info_span!(
        "req",
        tx = %header_str(req.headers(), wire::TRANS_ID).unwrap_or("-")
    );
    // The request line is kept only for a debug log (asked inside the
    // span, which a filter may name).
    let line = span
        .in_scope(|| tracing::enabled!(tracing::Level::DEBUG))
        .then(|| (req.method().clone(), req.uri().path().to_string()));
    let resp = table
        .oneshot(req.map(Body::new))
        .instrument(span.clone())
        .await
        .unwrap_or_else(|e| match e {});
    if let Some((method, path)) = line {
        span.in_scope(|| tracing::debug!(%method, %path, status = resp.status().as_u16(), "done"));
    }
    resp
}

/// The `N` names of an internal path, percent-decoded (412 if one is not UTF-8).
pub struct Names<const N: usize>(pub [String; N]);

impl<S: Send + Sync, const N: usize> FromRequestParts<S> for Names<N> {
    type Rejection = StorageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let NameList(names) = NameList::from_request_parts(parts, state).await?;
        let names: [String; N] = names
            .try_into()
            .map_err(|_| StorageError::Corrupt("route and extractor disagree on names".into()))?;
        Ok(Names(names))
    }
}

/// The names of an internal path, however many the route has, each
/// percent-decoded once: axum's router decodes its captures, and
/// `wire::enc` encoded each name once, so a name holding `%41` stays
/// `%41` (412 if one is not UTF-8).
pub struct NameList(pub Vec<String>);

impl<S: Send + Sync> FromRequestParts<S> for NameList {
    type Rejection = StorageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| StorageError::InvalidName)?;
        Ok(NameList(raw.iter().map(|(_, v)| v.to_string()).collect()))
    }
}

pub(crate) fn req_ts(h: &HeaderMap) -> Result<Timestamp> {
    match h.get("x-timestamp").and_then(|v| v.to_str().ok()) {
        Some(s) => Timestamp::parse(s)
            .ok_or_else(|| StorageError::BadRequest(format!("Invalid X-Timestamp '{s}'"))),
        None => Ok(Timestamp::now()),
    }
}

pub(crate) fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Header value bytes as text, one char per byte, so any byte survives storage.
pub fn latin1(v: &[u8]) -> String {
    v.iter().map(|&b| b as char).collect()
}

pub fn from_latin1(s: &str) -> Vec<u8> {
    s.chars().map(|c| c as u32 as u8).collect()
}

/// Metadata headers the node stores for containers and accounts.
fn db_meta(h: &HeaderMap, kind: &str) -> Vec<(String, String)> {
    let meta_prefix = format!("x-{kind}-meta-");
    let sys_prefix = format!("x-{kind}-sysmeta-");
    h.iter()
        .filter(|(k, _)| {
            let k = k.as_str();
            k.starts_with(&meta_prefix)
                || k.starts_with(&sys_prefix)
                || (kind == "container"
                    && matches!(
                        k,
                        "x-container-read"
                            | "x-container-write"
                            | "x-container-sync-to"
                            | "x-container-sync-key"
                            | "x-versions-location"
                            | "x-history-location"
                    ))
                || (kind == "account" && k == "x-account-access-control")
        })
        .map(|(k, v)| (k.as_str().to_string(), latin1(v.as_bytes())))
        .collect()
}

fn with_meta(mut b: http::response::Builder, meta: &[(String, String)]) -> http::response::Builder {
    for (k, v) in meta {
        b = b.header(k.as_str(), from_latin1(v));
    }
    b
}

async fn container_put(
    State(node): State<Arc<Node>>,
    Names([a, c]): Names<2>,
    req: Request,
) -> Result<Response<Body>> {
    let (a, c) = (a.as_str(), c.as_str());
    let ts = req_ts(req.headers())?;
    let meta = db_meta(req.headers(), "container");
    let (created, rep) = node.dbs.container_put(a, c, ts, meta).await?;
    let anode = header_str(req.headers(), wire::ACCOUNT_NODE).unwrap_or("");
    node.update_account(anode, a, rep).await;
    Ok(reply::status(if created { 201 } else { 202 }))
}

async fn container_post(
    State(node): State<Arc<Node>>,
    Names([a, c]): Names<2>,
    req: Request,
) -> Result<Response<Body>> {
    let (a, c) = (a.as_str(), c.as_str());
    let ts = req_ts(req.headers())?;
    let meta = db_meta(req.headers(), "container");
    match node.dbs.container_post(a, c, ts, meta).await? {
        Some(()) => Ok(reply::status(204)),
        None => Err(StorageError::NotFound),
    }
}

async fn container_delete(
    State(node): State<Arc<Node>>,
    Names([a, c]): Names<2>,
    req: Request,
) -> Result<Response<Body>> {
    let (a, c) = (a.as_str(), c.as_str());
    let ts = req_ts(req.headers())?;
    match node.dbs.container_delete(a, c, ts).await? {
        Some(rep) => {
            let anode = header_str(req.headers(), wire::ACCOUNT_NODE).unwrap_or("");
            node.update_account(anode, a, rep).await;
            Ok(reply::status(204))
        }
        None => Err(StorageError::NotFound),
    }
}

async fn container_row(
    State(node): State<Arc<Node>>,
    Names([a, c, _object]): Names<3>,
    req: Request,
) -> Result<Response<Body>> {
    let (a, c) = (a.as_str(), c.as_str());
    let anode = header_str(req.headers(), wire::ACCOUNT_NODE)
        .unwrap_or("")
        .to_string();
    let body = read_small(req.into_body()).await?;
    let row: ObjectRow = serde_json::from_slice(&body)
        .map_err(|e| StorageError::BadRequest(format!("bad object row: {e}")))?;
    match node.dbs.container_update(a, c, row).await? {
        Some(rep) => {
            node.update_account(&anode, a, rep).await;
            Ok(reply::status(204))
        }
        None => Err(StorageError::NotFound),
    }
}

async fn account_row(
    State(node): State<Arc<Node>>,
    Names([a]): Names<1>,
    req: Request,
) -> Result<Response<Body>> {
    let a = a.as_str();
    let body = read_small(req.into_body()).await?;
    let rep: ContainerReport = serde_json::from_slice(&body)
        .map_err(|e| StorageError::BadRequest(format!("bad container report: {e}")))?;
    node.dbs.account_update(a, rep).await?;
    Ok(reply::status(204))
}

async fn read_small(b: Body) -> Result<bytes::Bytes> {
    let limited = http_body_util::Limited::new(b, 1 << 20);
    Ok(limited
        .collect()
        .await
        .map_err(|e| StorageError::BadRequest(format!("body: {e}")))?
        .to_bytes())
}

fn listing_response(
    req: &Request,
    entries: &[Entry],
    root: (&str, &str),
    fmt: listing::Format,
    b: http::response::Builder,
) -> Result<Response<Body>> {
    let head = req.method() == Method::HEAD;
    let text = listing::render(entries, fmt, root);
    let b = b.header("content-type", fmt.content_type());
    if fmt == listing::Format::Plain && entries.is_empty() {
        return b.status(204).body(wire::body::empty()).map_err(http_err);
    }
    let len = text.len();
    let b = b.status(200).header("content-length", len);
    if head {
        b.body(wire::body::empty())
    } else {
        b.body(full(text))
    }
    .map_err(http_err)
}

/// A listing whose format came from `Accept` varies on it.
fn vary(b: http::response::Builder, negotiated: bool) -> http::response::Builder {
    if negotiated {
        b.header("vary", "Accept")
    } else {
        b
    }
}

fn http_err(e: http::Error) -> StorageError {
    StorageError::Io(std::io::Error::other(e))
}

async fn container_get(
    State(node): State<Arc<Node>>,
    Names([a, c]): Names<2>,
    req: Request,
) -> Result<Response<Body>> {
    let (a, c) = (a.as_str(), c.as_str());
    let (params, fmt) = listing::parse_query(req.uri().query())?;
    let negotiated = fmt.is_none();
    let fmt = listing::negotiate(fmt, header_str(req.headers(), "accept"))?;
    let Some(info) = node.dbs.container_info(a, c).await? else {
        return Err(StorageError::NotFound);
    };
    let b = vary(Response::builder(), negotiated)
        .header("x-container-object-count", info.object_count)
        .header("x-container-bytes-used", info.bytes_used)
        .header("x-timestamp", info.created_at.to_string())
        .header("x-put-timestamp", info.put_timestamp.to_string())
        .header("last-modified", info.put_timestamp.http_date())
        .header("x-storage-policy", "Policy-0");
    let b = with_meta(b, &info.meta);
    let entries = if req.method() == Method::HEAD {
        vec![]
    } else {
        match node.dbs.list_container(a, c, params).await? {
            Some(e) => e,
            None => return Err(StorageError::NotFound),
        }
    };
    if req.method() == Method::HEAD {
        return b
            .status(204)
            .header("content-type", fmt.content_type())
            .header("content-length", 0)
            .body(wire::body::empty())
            .map_err(http_err);
    }
    listing_response(&req, &entries, ("container", c), fmt, b)
}

async fn account_get(
    State(node): State<Arc<Node>>,
    Names([a]): Names<1>,
    req: Request,
) -> Result<Response<Body>> {
    let a = a.as_str();
    let (params, fmt) = listing::parse_query(req.uri().query())?;
    let negotiated = fmt.is_none();
    let fmt = listing::negotiate(fmt, header_str(req.headers(), "accept"))?;
    let info = node.dbs.account_info(a).await?;
    let created = if info.created_at.0 == 0 {
        Timestamp::now()
    } else {
        info.created_at
    };
    let b = vary(Response::builder(), negotiated)
        .header("x-account-container-count", info.container_count)
        .header("x-account-object-count", info.object_count)
        .header("x-account-bytes-used", info.bytes_used)
        .header("x-timestamp", created.to_string())
        .header(
            "x-put-timestamp",
            info.put_timestamp.max(created).to_string(),
        )
        .header(
            "x-account-storage-policy-policy-0-container-count",
            info.container_count,
        )
        .header(
            "x-account-storage-policy-policy-0-object-count",
            info.object_count,
        )
        .header(
            "x-account-storage-policy-policy-0-bytes-used",
            info.bytes_used,
        );
    let b = with_meta(b, &info.meta);
    if req.method() == Method::HEAD {
        return b
            .status(204)
            .header("content-type", fmt.content_type())
            .header("content-length", 0)
            .body(wire::body::empty())
            .map_err(http_err);
    }
    let entries = node.dbs.list_account(a, params).await?;
    listing_response(&req, &entries, ("account", a), fmt, b)
}

async fn account_post(
    State(node): State<Arc<Node>>,
    Names([a]): Names<1>,
    req: Request,
) -> Result<Response<Body>> {
    let a = a.as_str();
    let ts = req_ts(req.headers())?;
    node.dbs
        .account_post(a, ts, db_meta(req.headers(), "account"))
        .await?;
    Ok(reply::status(204))
}
