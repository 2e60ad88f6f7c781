//! The exec agent: runs one session of a job on this storage node, next to
//! the object it is attached to (spec/zerocloud.md §3.2, §3.3; the protocol
//! is `wire::exec`).
//!
//! A request goes: the plan → admission (a new job while fewer than
//! `workers + queue` sessions are here, else 503 `Slot not available`) → the inputs the proxy streams,
//! spooled into the session's directory → channels resolved to host files
//! ([`session`]: the attached object is read in place, an attached output
//! is written straight into a new object file) → the manifest and NVRAM
//! rendered by `sysmap` and parsed by `sandbox` → a worker slot → the run
//! in the pool → outputs: the attached object committed, the others sent
//! back as parts ([`outputs`]).
//!
//! The session's directory lives until its outputs are sent. A proxy that
//! goes away drops the request: the run is cancelled (its worker killed
//! and replaced) and nothing is stored.

mod cgi;
mod images;
mod outputs;
mod replica;
mod session;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use axum::extract::{Request, State};
use hyper::Response;
use sandbox::pool::{Pool, PoolConfig, ProgramRef};
use sandbox::python::Start;
use tokio::sync::Semaphore;
use tracing::{info, warn};
use wire::body::Body;
use wire::exec::{ExecRequest, PartReader, PLAN_PART};

use crate::api::{NameList, Names, Node};
use crate::config::ExecConfig;
use crate::error::StorageError;

pub use images::{Images, Unavailable};

/// The agent of one node: its pool of workers, its images, its admission.
pub struct Agent {
    cfg: ExecConfig,
    /// What `X-Nexe-Server` says: the node's address.
    name: String,
    /// Session directories (`<data_dir>/exec`), emptied at start.
    dir: PathBuf,
    pub images: Arc<Images>,
    pool: OnceLock<Result<Arc<Pool>, String>>,
    /// Running sessions: one permit per worker of the default pool.
    slots: Arc<Semaphore>,
    /// Connected sessions reserved or running: one permit per worker of
    /// the cluster pool.
    cluster_slots: Arc<Semaphore>,
    /// Reserved connected sessions, by token.
    reservations: Mutex<std::collections::HashMap<String, Held>>,
    /// Sessions admitted and not finished (spooling, waiting or running),
    /// in all and by job (`X-Zerocloud-Id`).
    admitted: Mutex<Admissions>,
    /// The Python image's modules (daemon, plain start), once each
    /// artifact is known to be in the pool's cache.
    python_programs: Mutex<[Option<ProgramRef>; 2]>,
    /// Requests to the Swift object server this agent runs beside.
    client: wire::client::HttpClient,
}

impl Agent {
    /// The agent of the node whose data is in `data_dir`; its pool starts
    /// with [`Agent::start_pool`].
    pub fn new(
        cfg: ExecConfig,
        data_dir: &std::path::Path,
        name: String,
    ) -> std::io::Result<Agent> {
        let dir = data_dir.join("exec");
        if dir.exists() {
            // Sessions of a previous run that did not finish.
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        let images = Arc::new(Images::new(cfg.images_dir(data_dir)));
        let workers = cfg.worker_count();
        Ok(Agent {
            cluster_slots: Arc::new(Semaphore::new(cfg.cluster_workers)),
            reservations: Mutex::new(std::collections::HashMap::new()),
            cfg,
            name,
            dir,
            images,
            pool: OnceLock::new(),
            slots: Arc::new(Semaphore::new(workers)),
            admitted: Mutex::new(Admissions::default()),
            python_programs: Mutex::new([None, None]),
            client: wire::client::http_client(),
        })
    }

    /// Whether this agent runs beside an OpenStack Swift object server
    /// (and its server stores nothing itself).
    pub fn beside_swift(&self) -> bool {
        self.cfg.swift_object_server.is_some()
    }

    /// Starts the worker processes (blocking: waits until each is ready),
    /// and the background install of missing images when configured. A
    /// pool that cannot start is logged, and sessions get 503 saying why.
    pub fn start_pool(&self) {
        if !self.cfg.enabled {
            return;
        }
        if self.cfg.install_images {
            self.images.install_missing();
        }
        let result = self.make_pool();
        match &result {
            Ok(_) => info!(
                "exec agent: {} workers and {} for connected jobs ({} started, the others on demand), images in {}",
                self.cfg.worker_count(),
                self.cfg.cluster_workers,
                self.cfg.cluster_prestart.min(self.cfg.cluster_workers),
                self.images.store().dir().display()
            ),
            Err(e) => warn!("exec agent: no worker pool: {e}"),
        }
        let _ = self.pool.set(result.map(Arc::new));
    }

    fn make_pool(&self) -> Result<Pool, String> {
        let program = match &self.cfg.worker_program {
            Some(p) => p.clone(),
            None => std::env::current_exe().map_err(|e| format!("this executable: {e}"))?,
        };
        let mut config = PoolConfig::new(program);
        // Both pools' sessions take any idle worker; the slots above keep
        // each pool within its share.
        let prestart = self.cfg.cluster_prestart.min(self.cfg.cluster_workers);
        config.workers = self.cfg.worker_count() + prestart;
        config.on_demand = self.cfg.cluster_workers - prestart;
        // Admission here bounds the queue; the pool itself never refuses.
        config.queue = usize::MAX;
        config.isolate = self.cfg.isolate;
        // The image store's cache: the Python image was compiled into it.
        config.engine.cache_dir = Some(self.images.store().cache_dir());
        Pool::start(config).map_err(|e| e.to_string())
    }

    fn pool(&self) -> Result<Arc<Pool>, StorageError> {
        match self.pool.get() {
            Some(Ok(p)) => Ok(p.clone()),
            Some(Err(e)) => Err(StorageError::Unavailable {
                message: format!("This storage node cannot run jobs: {e}"),
                retry_after: None,
            }),
            None => Err(StorageError::Unavailable {
                message: "This storage node does not run jobs (exec is disabled)".into(),
                retry_after: None,
            }),
        }
    }

    /// A place among the sessions admitted here, or 503 `Slot not
    /// available`. A new job is admitted while fewer than `workers +
    /// queue` sessions are; a job already admitted here has its further
    /// sessions admitted too (they wait for a worker), so a job of many
    /// nodes on few servers runs through, as ZeroCloud's pools admitted
    /// every session of a job they had started.
    fn admit(self: &Arc<Self>, job: &str) -> Result<Admitted, StorageError> {
        let limit = self.cfg.worker_count() + self.cfg.queue;
        let mut a = lock(&self.admitted);
        let known = a.by_job.contains_key(job);
        if !known && a.total >= limit {
            return Err(StorageError::Unavailable {
                message: "Slot not available".into(),
                retry_after: Some(1),
            });
        }
        a.total += 1;
        *a.by_job.entry(job.to_string()).or_default() += 1;
        Ok(Admitted {
            agent: self.clone(),
            job: job.to_string(),
        })
    }

    /// The Python image's module for `start`, in the pool's artifact cache.
    async fn python_program(
        &self,
        pool: &Arc<Pool>,
        python: &Arc<sandbox::python::PythonImage>,
        start: Start,
    ) -> Result<ProgramRef, StorageError> {
        let slot = usize::from(start == Start::Plain);
        if let Some(p) = lock(&self.python_programs)[slot].clone() {
            return Ok(p);
        }
        let (pool, py) = (pool.clone(), python.clone());
        let program = tokio::task::spawn_blocking(move || {
            let sha256 = py.module(start).0;
            pool.engine()
                .ensure_artifact(sha256, || py.program(pool.engine(), start))
                .map(|_| ProgramRef { sha256 })
        })
        .await?
        .map_err(|e| StorageError::Unavailable {
            message: format!("The python image cannot be loaded on this storage node: {e}"),
            retry_after: None,
        })?;
        lock(&self.python_programs)[slot] = Some(program.clone());
        Ok(program)
    }
}

/// A reserved connected session: its cluster slot and its listeners, until
/// its `POST /x/...` takes them or it expires.
pub struct Held {
    /// Taken by the run, and given back when it ends.
    pub permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// Listening sockets of each incoming network channel (alias), one per
    /// writing session.
    pub listeners: std::collections::BTreeMap<String, Vec<std::net::TcpListener>>,
    job_id: String,
    expires: Instant,
}

impl Agent {
    /// Drops reservations nobody claimed in time (their slots and
    /// listeners come back).
    pub fn reap_reservations(&self) {
        let now = Instant::now();
        lock(&self.reservations).retain(|_, h| h.expires > now);
    }

    /// Takes a reservation for its session: 404 when it is unknown or
    /// expired, 400 when it was made for another job.
    fn claim(&self, token: &str, job_id: &str) -> Result<Held, StorageError> {
        let held = lock(&self.reservations)
            .remove(token)
            .filter(|h| h.expires > Instant::now())
            .ok_or_else(|| {
                StorageError::Missing(format!(
                    "No reservation {token} (it expired, or was never made)"
                ))
            })?;
        if held.job_id != job_id {
            return Err(StorageError::BadRequest(format!(
                "reservation {token} is not for job {job_id}"
            )));
        }
        Ok(held)
    }
}

/// `POST /xr/{a}[/{c}[/{o}]]`: reserves a connected session (see
/// `wire::exec`): a cluster slot now or 503, and a listener per writer of
/// each incoming channel.
pub async fn reserve(
    State(node): State<Arc<Node>>,
    req: Request,
) -> Result<Response<Body>, StorageError> {
    let agent = node.agent.clone();
    agent.pool()?;
    agent.reap_reservations();
    let body = http_body_util::Limited::new(req.into_body(), wire::exec::MAX_HEADER);
    let body = http_body_util::BodyExt::collect(body)
        .await
        .map_err(|e| StorageError::BadRequest(format!("reservation: {e}")))?
        .to_bytes();
    let r: wire::exec::Reservation = serde_json::from_slice(&body)
        .map_err(|e| StorageError::BadRequest(format!("Cannot parse system map: {e}")))?;
    let permit = agent
        .cluster_slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| StorageError::Unavailable {
            message: "Slot not available".into(),
            retry_after: Some(1),
        })?;
    let mut listeners = std::collections::BTreeMap::new();
    let mut bound = std::collections::BTreeMap::new();
    for c in r
        .node
        .connections
        .iter()
        .filter(|c| c.direction == sysmap::plan::Direction::In)
    {
        let mut socks = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..c.peer_replicate.max(1) {
            let l =
                std::net::TcpListener::bind((agent.cfg.network_host.as_str(), 0)).map_err(|e| {
                    StorageError::Unavailable {
                        message: format!(
                            "Cannot bind a network channel on {}: {e}",
                            agent.cfg.network_host
                        ),
                        retry_after: None,
                    }
                })?;
            addrs.push(l.local_addr()?.to_string());
            socks.push(l);
        }
        bound.insert(c.device.clone(), addrs);
        listeners.insert(c.device.clone(), socks);
    }
    let token = format!("{:032x}", rand::random::<u128>());
    let ttl = std::time::Duration::from_secs_f64(agent.cfg.reservation_ttl.max(0.1));
    lock(&agent.reservations).insert(
        token.clone(),
        Held {
            permit: Some(permit),
            listeners,
            job_id: r.job_id,
            expires: Instant::now() + ttl,
        },
    );
    let reply = serde_json::to_vec(&wire::exec::Reserved { token, bound })
        .map_err(|e| StorageError::Io(std::io::Error::other(e)))?;
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(wire::body::full(reply))
        .map_err(|e| StorageError::Io(std::io::Error::other(e)))
}

/// `DELETE /xt/{token}`: gives an unclaimed reservation back.
pub async fn release(
    State(node): State<Arc<Node>>,
    Names([token]): Names<1>,
) -> Result<Response<Body>, StorageError> {
    match lock(&node.agent.reservations).remove(&token) {
        Some(_) => Ok(wire::reply::status(204)),
        None => Err(StorageError::NotFound),
    }
}

/// Sessions admitted, in all and by job.
#[derive(Default)]
struct Admissions {
    total: usize,
    by_job: std::collections::HashMap<String, usize>,
}

/// One admitted session; leaves the counts when dropped.
struct Admitted {
    agent: Arc<Agent>,
    job: String,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut a = lock(&self.agent.admitted);
        a.total = a.total.saturating_sub(1);
        if let Some(n) = a.by_job.get_mut(&self.job) {
            *n -= 1;
            if *n == 0 {
                a.by_job.remove(&self.job);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `POST /x/{a}[/{c}[/{o}]]`: one session (see the module doc).
pub async fn handle(
    State(node): State<Arc<Node>>,
    NameList(names): NameList,
    req: Request,
) -> Result<Response<Body>, StorageError> {
    let started = Instant::now();
    let agent = node.agent.clone();
    let pool = agent.pool()?;
    let (parts, body) = req.into_parts();
    let mut reader = PartReader::new(body);
    let plan = match reader.next_part().await.map_err(bad_stream)? {
        Some(h) if h.name == PLAN_PART => reader
            .read_data(wire::exec::MAX_HEADER)
            .await
            .map_err(bad_stream)?,
        _ => {
            return Err(StorageError::BadRequest(
                "No system map found in request".into(),
            ))
        }
    };
    let plan: ExecRequest = serde_json::from_slice(&plan)
        .map_err(|e| StorageError::BadRequest(format!("Cannot parse system map: {e}")))?;
    // A connected session was admitted when it was reserved.
    let held = match &plan.reservation {
        Some(token) => Some(agent.claim(token, &plan.job_id)?),
        None => None,
    };
    let admitted = match held {
        Some(_) => None,
        None => Some(agent.admit(&plan.job_id)?),
    };
    let path_info = format!("/{}", names.join("/"));
    if plan.node.placement.path_info != path_info {
        return Err(StorageError::BadRequest(format!(
            "the plan of {} is placed at {}, not {path_info}",
            plan.node.name, plan.node.placement.path_info
        )));
    }
    let read = started.elapsed();
    let prepared = session::prepare(
        &node,
        &agent,
        &pool,
        plan,
        held,
        &parts.headers,
        &mut reader,
    )
    .await?;
    let ready = started.elapsed();
    let outcome = prepared.run(&node, &agent, &pool).await?;
    let ran = started.elapsed();
    let resp = outputs::respond(&node, &agent, outcome, started).await?;
    drop(admitted);
    let ms = |d: std::time::Duration| format!("{:.3}", d.as_secs_f64() * 1000.0);
    tracing::debug!(
        plan = %ms(read),
        prepared = %ms(ready - read),
        run = %ms(ran - ready),
        outputs = %ms(started.elapsed() - ran),
        "session"
    );
    Ok(resp)
}

fn bad_stream(e: wire::exec::PartError) -> StorageError {
    match e {
        wire::exec::PartError::Body(_) | wire::exec::PartError::Truncated => {
            StorageError::ClientDisconnect
        }
        wire::exec::PartError::Invalid(m) => StorageError::BadRequest(m),
    }
}
