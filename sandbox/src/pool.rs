//! The worker pool: pre-started `zerovm --worker` processes ([`crate::worker`])
//! that run sessions for this (trusted) process, one session at a time each.
//!
//! Decisions:
//! - **The parent opens everything.** [`Pool::run`] opens every channel's
//!   host source itself ([`OpenChannel::open_source_at`]: a write-only file
//!   is cut at its [`Session::file_offsets`] entry here, since a worker may
//!   not truncate; the worker applies the offset), turns in-memory
//!   [`SharedBuffer`]s into memfds (input bytes written first; afterwards
//!   the bytes are copied back into the same buffer, so a caller sees what
//!   an in-process [`Engine::run`] would have left there) and passes the
//!   descriptors, with the compiled artifact, over a `socketpair(AF_UNIX,
//!   SOCK_SEQPACKET)` with `SCM_RIGHTS`. A worker never opens a host path.
//! - **Only our own artifacts.** A [`ProgramRef`] is a module's sha256;
//!   the worker receives the artifact this pool's engine keeps for it in
//!   its private (0700) cache directory ([`Engine::artifact_path`]), never
//!   a file a caller names: the worker maps what it receives as trusted
//!   machine code.
//! - **Timeouts, twice.** The worker's engine traps the guest at the
//!   session timeout with epoch interruption (the report says `session
//!   timeout`, the worker lives on). A worker that has not answered by
//!   timeout + [`PoolConfig::grace`] (a guest blocked in a host read of a
//!   FIFO, which no epoch check can interrupt, or a wedged worker) is
//!   SIGKILLed and replaced; the run then ends as a timeout too.
//! - **Resident memory** ([`PoolConfig::resident_memory`], on by default):
//!   a worker keeps each program's linear memory mapped between runs and
//!   puts back only the pages a run wrote ([`crate::engine::resident`]),
//!   after it has replied; a run's time is then mostly the guest's own.
//!   Free workers are handed out last-freed first, so back-to-back runs
//!   find the same worker, its memory and caches warm.
//! - **A dead worker fails only its own run** ([`PoolError::WorkerDied`])
//!   and is replaced before its slot is handed out again.
//! - **Bounded queue.** With every worker busy and [`PoolConfig::queue`]
//!   runs already waiting, [`Pool::run`] fails at once with
//!   [`PoolError::NoSlot`].
//! - **Cancellation** ([`Pool::run_cancellable`], a [`Cancel`] token): a
//!   run cancelled before it has a worker (waiting in the queue included:
//!   [`Cancel::cancel`] wakes it) runs nothing; one cancelled while its
//!   worker runs the session has the worker SIGKILLed by the thread calling
//!   [`Cancel::cancel`], at once, and the worker replaced as a dead one is.
//!   Either returns [`PoolError::Cancelled`]. The kill goes to a pid only
//!   while the worker is known unreaped (its registration with the token
//!   ends before the pool reaps it), so it can never hit a reused pid.
//!
//! The messages between the pool and its workers, and how a worker's
//! reply is checked before it is believed, are in [`wire`].

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};

pub mod wire;

use wire::{decode_reply, MAX_REPLY};
pub(crate) use wire::{recv_message, send_message, Reply, Request, MAX_REQUEST};

use crate::channel::{OpenChannel, SharedBuffer};
use crate::engine::{Engine, EngineConfig, Outcome, Session, ValidationError};
use crate::manifest::Direction;
use crate::report::Ending;

/// How long a new worker may take to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a send to a worker (which is waiting for it) may block.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start a [`Pool`].
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Worker processes started with the pool (default: the available
    /// parallelism).
    pub workers: usize,
    /// More slots, whose worker process starts at its first run and then
    /// stays like the others (default 0). Capacity that costs nothing
    /// until used: the exec agent's slots for connected jobs, which must
    /// all run at once but are rarely all needed.
    pub on_demand: usize,
    /// Runs that may wait for a busy worker before [`Pool::run`] refuses
    /// with [`PoolError::NoSlot`] (default: twice the workers).
    pub queue: usize,
    /// The `zerovm` binary, started as `zerovm --worker`.
    pub worker_program: PathBuf,
    /// Engine settings, the same in this process (compiling) and in the
    /// workers (running). Without a `cache_dir` the pool uses a private
    /// temporary one, removed when it is dropped.
    pub engine: EngineConfig,
    /// User, mount and network namespaces, an empty root and a seccomp
    /// filter in every worker (default: true).
    pub isolate: bool,
    /// How long after a session's timeout a silent worker is SIGKILLed
    /// (default: 2 s).
    pub grace: Duration,
    /// Workers keep each program's linear memory mapped between runs and
    /// put back only the pages a run wrote (default: true; see
    /// [`crate::engine::EngineConfig::resident_memory`]). `false` starts
    /// them with `--no-resident`.
    pub resident_memory: bool,
}

impl PoolConfig {
    /// The defaults, with `worker_program` as the `zerovm` binary.
    pub fn new(worker_program: impl Into<PathBuf>) -> PoolConfig {
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        PoolConfig {
            workers,
            on_demand: 0,
            queue: 2 * workers,
            worker_program: worker_program.into(),
            engine: EngineConfig::default(),
            isolate: true,
            grace: Duration::from_secs(2),
            resident_memory: true,
        }
    }
}

/// A module compiled into the pool engine's disk cache, by its sha256
/// ([`Pool::program_ref`], or an install that compiled it with the same
/// engine settings and cache dir, as the Python image's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramRef {
    /// sha256 of the module bytes.
    pub sha256: [u8; 32],
}

/// One run for the pool.
#[derive(Debug, Clone)]
pub struct Job {
    /// What to run.
    pub program: ProgramRef,
    /// With what: channels, limits, buffers, open files.
    pub session: Session,
}

/// Why [`Pool::run`] (or [`Pool::start`]) returned no [`Outcome`].
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Every worker is busy and the queue is full.
    #[error("no worker slot available")]
    NoSlot,
    /// The worker running this job died (crash, SIGKILL from outside);
    /// it has been replaced.
    #[error("worker {pid} died during the run ({status})")]
    WorkerDied {
        /// The dead worker's process id.
        pid: u32,
        /// How it ended, e.g. `signal: 9 (SIGKILL)`.
        status: ExitStatus,
    },
    /// A worker could not be started (or did not report ready).
    #[error("cannot start a worker: {0}")]
    Spawn(String),
    /// The artifact could not be opened (not compiled into this pool's
    /// cache: `NotFound`).
    #[error("artifact {path}: {error}")]
    Artifact {
        /// The artifact.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The worker refused the job (it could not load the artifact, …).
    #[error("worker refused the job: {0}")]
    Refused(String),
    /// The worker answered something unreadable; it has been replaced.
    #[error("worker protocol error: {0}")]
    Protocol(String),
    /// The job's description (session, turn source, in-memory inputs
    /// excluded) is larger than a worker accepts ([`MAX_REQUEST`]).
    #[error("job description of {0} bytes is larger than a worker accepts (256 MiB)")]
    TooLarge(usize),
    /// Local I/O (memfds, the socket).
    #[error("pool I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The run's [`Cancel`] was cancelled: before it had a worker (nothing
    /// ran), or while its worker ran the session (the worker was killed and
    /// replaced).
    #[error("the run was cancelled")]
    Cancelled,
}

/// A cancellation token for [`Pool::run_cancellable`]: clones share one
/// flag, so the thread serving a client keeps a clone and calls
/// [`Cancel::cancel`] when the client goes away. Once cancelled, a token
/// stays cancelled.
#[derive(Clone, Default)]
pub struct Cancel {
    inner: Arc<CancelInner>,
}

#[derive(Default)]
struct CancelInner {
    cancelled: AtomicBool,
    /// What [`Cancel::cancel`] does besides setting the flag, by
    /// registration id: wake a queued run, kill a running worker. Taken
    /// out and run under this lock, so a registration that ends (takes
    /// the lock) afterwards knows its action has run completely.
    actions: Mutex<Actions>,
}

#[derive(Default)]
struct Actions {
    next: u64,
    pending: Vec<(u64, Box<dyn FnOnce() + Send>)>,
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancel")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl Cancel {
    /// A token not cancelled yet.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Cancels every run using this token (or a clone of it): a run not
    /// started yet will not start, a queued one stops waiting, and a
    /// running one has its worker SIGKILLed before this returns.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        let mut actions = lock(&self.inner.actions);
        for (_, action) in std::mem::take(&mut actions.pending) {
            action();
        }
    }

    /// Whether [`Cancel::cancel`] has been called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Registers `action` to run at [`Cancel::cancel`]; `None` (and
    /// `action` dropped unrun) when the token is cancelled already. The
    /// flag is checked under the lock `cancel` runs actions under, so a
    /// cancel is either seen here or runs the action: never lost.
    fn on_cancel(&self, action: Box<dyn FnOnce() + Send>) -> Option<OnCancel<'_>> {
        let mut actions = lock(&self.inner.actions);
        if self.is_cancelled() {
            return None;
        }
        let id = actions.next;
        actions.next += 1;
        actions.pending.push((id, action));
        Some(OnCancel { cancel: self, id })
    }
}

/// A registered cancel action; unregistered by [`OnCancel::release`] (or
/// on drop).
struct OnCancel<'a> {
    cancel: &'a Cancel,
    id: u64,
}

impl OnCancel<'_> {
    /// Unregisters the action; whether it ran (completely: `cancel` runs
    /// actions under the lock taken here).
    fn release(self) -> bool {
        let ran = self.unregister();
        std::mem::forget(self);
        ran
    }

    fn unregister(&self) -> bool {
        let mut actions = lock(&self.cancel.inner.actions);
        match actions.pending.iter().position(|(id, _)| *id == self.id) {
            Some(i) => {
                drop(actions.pending.swap_remove(i));
                false
            }
            None => true,
        }
    }
}

impl Drop for OnCancel<'_> {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// Load figures of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Worker slots.
    pub workers: usize,
    /// Slots not running a job.
    pub idle: usize,
    /// Runs waiting for a slot.
    pub waiting: usize,
}

/// A running worker process and the parent's end of its socket.
struct Worker {
    child: Child,
    socket: OwnedFd,
    pid: u32,
}

impl Worker {
    /// Starts `zerovm --worker` with the other end of a fresh socketpair as
    /// its standard input (std's `dup2` onto fd 0 clears `FD_CLOEXEC` in
    /// the child only, so no descriptor leaks into other children spawned
    /// concurrently and no `pre_exec` is needed).
    fn launch(config: &PoolConfig, scratch: &Path) -> Result<Worker, PoolError> {
        let (parent, child_end) = socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| PoolError::Spawn(format!("socketpair: {e}")))?;
        rustix::net::sockopt::set_socket_timeout(
            &parent,
            rustix::net::sockopt::Timeout::Send,
            Some(SEND_TIMEOUT),
        )
        .map_err(|e| PoolError::Spawn(format!("socket timeout: {e}")))?;
        let e = &config.engine;
        let mut command = Command::new(&config.worker_program);
        command
            .arg("--worker")
            .arg(format!("--max-wasm-stack={}", e.max_wasm_stack))
            .arg(format!("--table-elements={}", e.table_elements))
            .arg(format!("--tick-ns={}", e.tick.as_nanos().max(1)))
            .arg(format!("--scratch={}", scratch.display()));
        if !config.isolate {
            command.arg("--no-isolate");
        }
        if !config.resident_memory {
            command.arg("--no-resident");
        }
        // No inherited environment (secrets stay out of the worker).
        command.env_clear();
        if let Some(v) = std::env::var_os("RUST_BACKTRACE") {
            command.env("RUST_BACKTRACE", v);
        }
        command
            .stdin(Stdio::from(child_end))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = command
            .spawn()
            .map_err(|e| PoolError::Spawn(format!("{}: {e}", config.worker_program.display())))?;
        // `command` holds the child's end until dropped: drop it now, or
        // the worker's death would never show as EOF here.
        drop(command);
        let pid = child.id();
        Ok(Worker {
            child,
            socket: parent,
            pid,
        })
    }

    /// Waits for the worker's `ready`.
    fn ready(&mut self) -> Result<(), PoolError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let reply = recv_message(self.socket.as_fd(), Some(deadline), MAX_REPLY, 0);
        let fail = |worker: &mut Worker, why: String| {
            let status = reap(&mut worker.child, true);
            PoolError::Spawn(format!("worker {}: {why} ({status})", worker.pid))
        };
        match reply {
            Ok(Some((bytes, _))) => match decode_reply(&bytes) {
                Ok(Reply::Ready { .. }) => Ok(()),
                Ok(Reply::Refused { error }) => Err(fail(self, error)),
                Ok(_) => Err(fail(self, "unexpected message at start-up".into())),
                Err(e) => Err(fail(self, format!("bad start-up message: {e}"))),
            },
            Ok(None) => Err(fail(self, "exited at start-up".into())),
            Err(e) => Err(fail(self, format!("no ready message: {e}"))),
        }
    }

    fn start(config: &PoolConfig, scratch: &Path) -> Result<Worker, PoolError> {
        let mut w = Worker::launch(config, scratch)?;
        w.ready()?;
        Ok(w)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reaps a child: waits up to a second for it to exit by itself (it
/// closed its socket, so it is on its way), else (or with `kill`)
/// SIGKILLs it first.
fn reap(child: &mut Child, kill: bool) -> ExitStatus {
    if !kill {
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let _ = child.kill();
    // Wait status 9: killed by SIGKILL (only if waiting itself fails).
    child.wait().unwrap_or_else(|_| ExitStatus::from_raw(9))
}

struct State {
    idle: Vec<usize>,
    waiting: usize,
    pids: Vec<Option<u32>>,
}

/// The state, and the condition queued runs wait on: a slot freed, or
/// their run cancelled.
struct Queue {
    state: Mutex<State>,
    freed: Condvar,
}

/// Pre-started worker processes running sessions (see the module docs).
pub struct Pool {
    config: PoolConfig,
    engine: Engine,
    scratch: PathBuf,
    slots: Vec<Mutex<Option<Worker>>>,
    /// Slots' states and the queue; shared with [`Cancel`] actions that
    /// wake queued runs.
    queue: Arc<Queue>,
    /// The cache dir the pool made itself (none was configured); removed
    /// with the pool, after its workers.
    _own_cache: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// A slot taken by one run; given back (and a waiter woken) on drop.
struct Slot<'a> {
    pool: &'a Pool,
    index: usize,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        lock(&self.pool.queue.state).idle.push(self.index);
        self.pool.queue.freed.notify_one();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pool {
    /// Starts `config.workers` workers and waits until each reports ready;
    /// the `config.on_demand` further slots start theirs when first used.
    pub fn start(mut config: PoolConfig) -> Result<Pool, PoolError> {
        if config.workers == 0 {
            return Err(PoolError::Spawn("a pool needs at least one worker".into()));
        }
        let own_cache = match &config.engine.cache_dir {
            Some(_) => None,
            None => {
                // Private (0700) like any tempfile directory.
                let dir = tempfile::Builder::new().prefix("zerovm-pool-").tempdir()?;
                config.engine.cache_dir = Some(dir.path().to_path_buf());
                Some(dir)
            }
        };
        let scratch = config.engine.cache_dir.clone().unwrap_or_default();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&scratch)?;
        // Absolute, once, for this process and its workers: a worker
        // enters its root directory in here before removing it, so a
        // relative path (`./zerocloud-data/images/cache`, a relative
        // ZEROVM_CACHE_DIR) would by then name a directory that is not there.
        let scratch = std::fs::canonicalize(&scratch)?;
        config.engine.cache_dir = Some(scratch.clone());
        remove_stale_roots(&scratch);
        // Workers map artifacts from here as trusted code: refuse a cache
        // another user could write into.
        let meta = std::fs::metadata(&scratch)?;
        if meta.mode() & 0o022 != 0 || meta.uid() != rustix::process::getuid().as_raw() {
            return Err(PoolError::Spawn(format!(
                "the cache dir {} must be owned by this user and writable by nobody else",
                scratch.display()
            )));
        }
        let engine = Engine::new(config.engine.clone())
            .map_err(|e| PoolError::Spawn(format!("engine: {e:#}")))?;
        // Slots 0..workers have a worker from the start; the idle stack pops
        // them first, and a freed slot goes back on top, so on-demand slots
        // are taken only when every started one is busy.
        let n = config.workers + config.on_demand;
        let started = config.workers;
        let pool = Pool {
            engine,
            scratch,
            slots: (0..n).map(|_| Mutex::new(None)).collect(),
            queue: Arc::new(Queue {
                state: Mutex::new(State {
                    idle: (0..n).rev().collect(),
                    waiting: 0,
                    pids: vec![None; n],
                }),
                freed: Condvar::new(),
            }),
            _own_cache: own_cache,
            config,
        };
        // Launch them all, then wait for each: start-ups overlap.
        let launched: Vec<_> = (0..started)
            .map(|_| Worker::launch(&pool.config, &pool.scratch))
            .collect();
        for (i, worker) in launched.into_iter().enumerate() {
            let mut worker = worker?;
            worker.ready()?;
            lock(&pool.queue.state).pids[i] = Some(worker.pid);
            *lock(&pool.slots[i]) = Some(worker);
        }
        Ok(pool)
    }

    /// Validates and compiles `wasm` in this process (same engine settings
    /// as the workers) and returns its artifact in the disk cache.
    pub fn program_ref(&self, wasm: &[u8]) -> Result<ProgramRef, ValidationError> {
        let program = self.engine.prepare(wasm)?;
        let sha256 = program.sha256;
        self.engine.ensure_artifact(sha256, || Ok(program))?;
        Ok(ProgramRef { sha256 })
    }

    /// Runs a job on a worker and waits for its end (callers in async code
    /// use `spawn_blocking`). Waits for a free worker if fewer than
    /// [`PoolConfig::queue`] runs wait already, else fails with
    /// [`PoolError::NoSlot`]. A channel that cannot be opened ends the run
    /// with the same [`Outcome`] as [`Engine::run`].
    pub fn run(&self, job: Job) -> Result<Outcome, PoolError> {
        self.run_cancellable(job, &Cancel::new())
    }

    /// [`Pool::run`] that [`Cancel::cancel`] on `cancel` (from any thread)
    /// ends with [`PoolError::Cancelled`]: before a worker is taken
    /// (waiting in the queue included) nothing runs; while the worker runs
    /// the session it is SIGKILLed at once and replaced, as a dead worker is.
    pub fn run_cancellable(&self, job: Job, cancel: &Cancel) -> Result<Outcome, PoolError> {
        let Job { program, session } = job;
        let slot = self.acquire(cancel)?;
        if cancel.is_cancelled() {
            return Err(PoolError::Cancelled);
        }
        self.run_in(slot.index, &program, &session, cancel)
    }

    /// A free slot, waiting in the queue for one if there is room there;
    /// `Cancelled` as soon as `cancel` is (a cancel wakes the wait).
    fn acquire(&self, cancel: &Cancel) -> Result<Slot<'_>, PoolError> {
        let queue = &self.queue;
        {
            let mut state = lock(&queue.state);
            if cancel.is_cancelled() {
                return Err(PoolError::Cancelled);
            }
            if let Some(index) = state.idle.pop() {
                return Ok(Slot { pool: self, index });
            }
            if state.waiting >= self.config.queue {
                return Err(PoolError::NoSlot);
            }
            state.waiting += 1;
        }
        // Registered without the state locked: `cancel` runs this under its
        // own lock and takes the state's (never the other way round). Taking
        // the state's lock before notifying means a waiter is either before
        // its flag check or inside `wait`: the wake-up cannot fall between.
        let shared = Arc::clone(queue);
        let wake = cancel.on_cancel(Box::new(move || {
            let _state = lock(&shared.state);
            shared.freed.notify_all();
        }));
        let mut state = lock(&queue.state);
        let taken = loop {
            if wake.is_none() || cancel.is_cancelled() {
                break None;
            }
            if let Some(index) = state.idle.pop() {
                break Some(index);
            }
            state = queue.freed.wait(state).unwrap_or_else(|p| p.into_inner());
        };
        state.waiting -= 1;
        if taken.is_none() && !state.idle.is_empty() {
            // The wake-up this run took may have been a freed slot's meant
            // for another waiter: pass it on.
            queue.freed.notify_one();
        }
        drop(state);
        drop(wake);
        match taken {
            Some(index) => Ok(Slot { pool: self, index }),
            None => Err(PoolError::Cancelled),
        }
    }

    fn run_in(
        &self,
        index: usize,
        program: &ProgramRef,
        session: &Session,
        cancel: &Cancel,
    ) -> Result<Outcome, PoolError> {
        // `Pool::start` gave the engine a cache dir, so this is `Some`.
        let path = self
            .engine
            .artifact_path(&program.sha256)
            .ok_or_else(|| PoolError::Spawn("the pool's engine has no cache directory".into()))?;
        let artifact = File::open(&path).map_err(|error| PoolError::Artifact { path, error })?;
        let memfds = MemFds::new(session)?;
        let mut fds: Vec<OwnedFd> = vec![artifact.into()];
        let mut channels = Vec::with_capacity(session.channels.len());
        for spec in &session.channels {
            // One descriptor per source (several for a multichannel), each
            // sent under the channel's alias.
            let sources: Vec<OwnedFd> = if let Some(file) = memfds.file_for(&spec.alias) {
                vec![file.as_fd().try_clone_to_owned()?]
            } else if let Some(files) = session.files.get(&spec.alias) {
                files
                    .iter()
                    .map(|f| f.as_fd().try_clone_to_owned())
                    .collect::<Result<_, _>>()?
            } else {
                let offset = session.file_offsets.get(&spec.alias).copied().unwrap_or(0);
                match OpenChannel::open_sources_at(spec, offset) {
                    Ok(files) => files.into_iter().map(OwnedFd::from).collect(),
                    Err(e) => {
                        return Ok(Outcome::failed(
                            session.validation,
                            Ending::Failed {
                                errno: e.errno(),
                                message: e.to_string(),
                            },
                            None,
                        ))
                    }
                }
            };
            for fd in sources {
                channels.push((spec.alias.clone(), fds.len()));
                fds.push(fd);
            }
        }
        let mut system_images = Vec::with_capacity(session.system_images.len());
        for (point, file) in &session.system_images {
            system_images.push((point.clone(), fds.len()));
            fds.push(file.as_fd().try_clone_to_owned()?);
        }
        // A buffer reaches the worker as a memfd, which is a regular file
        // there: its offset, ignored in-process, must not travel with it.
        let mut described = session.clone();
        described
            .file_offsets
            .retain(|alias, _| !session.buffers.contains_key(alias));
        let request = Request {
            sha256: program.sha256,
            session: described,
            artifact: 0,
            channels,
            system_images,
        };
        let bytes = serde_json::to_vec(&request)
            .map_err(|e| PoolError::Protocol(format!("request: {e}")))?;
        if bytes.len() > MAX_REQUEST {
            return Err(PoolError::TooLarge(bytes.len()));
        }
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
        let result = self.exchange(index, &bytes, &borrowed, session, cancel);
        drop(borrowed);
        drop(fds);
        // A cancelled run's in-memory outputs are left as they were.
        if !matches!(result, Err(PoolError::Cancelled)) {
            memfds.read_back()?;
        }
        result
    }

    /// Sends the request to the slot's worker and waits for its answer,
    /// replacing the worker when it dies, hangs, talks nonsense or is
    /// killed by `cancel`.
    fn exchange(
        &self,
        index: usize,
        request: &[u8],
        fds: &[BorrowedFd<'_>],
        session: &Session,
        cancel: &Cancel,
    ) -> Result<Outcome, PoolError> {
        let mut slot = lock(&self.slots[index]);
        // A worker that died while idle is replaced and the job resent once.
        let mut watch = None;
        for _ in 0..2 {
            let worker = self.ensure_worker(index, &mut slot)?;
            // The worker's pid goes to the token before anything is sent:
            // from here on a cancel kills it. A token cancelled already
            // (the cancel raced the start of the run) stops it unsent.
            let pid = worker.pid;
            let Some(registered) = cancel.on_cancel(Box::new(move || kill_worker(pid))) else {
                return Err(PoolError::Cancelled);
            };
            match send_message(worker.socket.as_fd(), request, fds) {
                Ok(()) => {
                    watch = Some(registered);
                    break;
                }
                Err(e) if is_disconnect(&e) => {
                    // Unregistered before the worker is reaped (here and
                    // below): a kill never reaches a reused pid.
                    let killed = registered.release();
                    let (pid, status) = self.replace(index, &mut slot, false);
                    if killed {
                        return Err(PoolError::Cancelled);
                    }
                    log_death(pid, status);
                }
                // Maybe half a message went out: the worker cannot be trusted
                // to be in step any more.
                Err(e) => {
                    let killed = registered.release();
                    self.replace(index, &mut slot, true);
                    return Err(if killed {
                        PoolError::Cancelled
                    } else {
                        PoolError::Io(e)
                    });
                }
            }
        }
        let Some(watch) = watch else {
            return Err(PoolError::Spawn("workers die before taking a job".into()));
        };
        let Some(worker) = slot.as_mut() else {
            return Err(PoolError::Spawn("no worker".into()));
        };
        // Capped, so that the deadline exists and a socket timeout left
        // from an earlier run can never apply instead.
        let limit = session
            .timeout
            .saturating_add(self.config.grace)
            .min(Duration::from_secs(365 * 24 * 3600));
        let deadline = Some(Instant::now() + limit);
        let received = recv_message(worker.socket.as_fd(), deadline, MAX_REPLY, 0);
        if watch.release() {
            // SIGKILLed by a cancel, whatever it managed to answer first:
            // replaced like a dead worker.
            self.replace(index, &mut slot, true);
            return Err(PoolError::Cancelled);
        }
        match received {
            Ok(Some((bytes, _))) => match decode_reply(&bytes) {
                Ok(Reply::Outcome {
                    report,
                    ending,
                    detail,
                }) => Ok(Outcome {
                    report: *report,
                    ending,
                    detail,
                }),
                Ok(Reply::Refused { error }) => Err(PoolError::Refused(error)),
                Ok(Reply::Ready { .. }) => {
                    self.replace(index, &mut slot, true);
                    Err(PoolError::Protocol("ready instead of an outcome".into()))
                }
                Err(e) => {
                    self.replace(index, &mut slot, true);
                    Err(PoolError::Protocol(format!("bad reply: {e}")))
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                let (pid, _) = self.replace(index, &mut slot, true);
                Ok(Outcome::failed(
                    session.validation,
                    Ending::Timeout,
                    Some(format!(
                        "worker {pid} did not answer within the timeout ({:?}) + {:?}: killed",
                        session.timeout, self.config.grace
                    )),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                self.replace(index, &mut slot, true);
                Err(PoolError::Protocol(e.to_string()))
            }
            // EOF, ECONNRESET, …: the worker is gone.
            Ok(None) | Err(_) => {
                let (pid, status) = self.replace(index, &mut slot, false);
                Err(PoolError::WorkerDied { pid, status })
            }
        }
    }

    /// The slot's worker, started anew if it is missing or has exited.
    fn ensure_worker<'s>(
        &self,
        index: usize,
        slot: &'s mut Option<Worker>,
    ) -> Result<&'s mut Worker, PoolError> {
        let alive = match slot.as_mut() {
            Some(w) => matches!(w.child.try_wait(), Ok(None)),
            None => false,
        };
        if !alive {
            if let Some(mut dead) = slot.take() {
                let status = reap(&mut dead.child, false);
                log_death(dead.pid, status);
            }
            self.refill(index, slot)?;
        }
        slot.as_mut()
            .ok_or_else(|| PoolError::Spawn("no worker".into()))
    }

    /// Starts a fresh worker in the emptied slot `index`.
    fn refill(&self, index: usize, slot: &mut Option<Worker>) -> Result<(), PoolError> {
        lock(&self.queue.state).pids[index] = None;
        let worker = Worker::start(&self.config, &self.scratch)?;
        lock(&self.queue.state).pids[index] = Some(worker.pid);
        *slot = Some(worker);
        Ok(())
    }

    /// Reaps the slot's worker (SIGKILL first with `kill`) and starts a
    /// fresh one; a failed start leaves the slot empty for the next run to
    /// retry. Returns the old worker's pid and status.
    fn replace(&self, index: usize, slot: &mut Option<Worker>, kill: bool) -> (u32, ExitStatus) {
        let (pid, status) = match slot.take() {
            Some(mut old) => {
                let status = reap(&mut old.child, kill);
                (old.pid, status)
            }
            None => (0, ExitStatus::from_raw(0)),
        };
        if let Err(e) = self.refill(index, slot) {
            eprintln!("zerovm pool: cannot replace worker {pid}: {e}");
        }
        (pid, status)
    }

    /// The pids of the current workers (a slot being refilled has none).
    pub fn worker_pids(&self) -> Vec<u32> {
        lock(&self.queue.state)
            .pids
            .iter()
            .flatten()
            .copied()
            .collect()
    }

    /// Sum of the workers' resident memory (`VmRSS` in `/proc/<pid>/status`).
    pub fn resident_bytes(&self) -> u64 {
        self.worker_pids()
            .into_iter()
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .filter_map(|status| {
                let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
                let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kb * 1024)
            })
            .sum()
    }

    /// Workers, idle ones and waiting runs right now.
    pub fn stats(&self) -> PoolStats {
        let state = lock(&self.queue.state);
        PoolStats {
            workers: self.slots.len(),
            idle: state.idle.len(),
            waiting: state.waiting,
        }
    }

    /// The engine this pool compiles with.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for slot in &self.slots {
            drop(lock(slot).take());
        }
    }
}

/// Removes the empty root directories (`.worker-root-<pid>`, see
/// [`crate::worker`]) that workers no longer running left in `scratch`: a
/// worker removes its own right after entering it, so one is left only by
/// a worker killed in between (or by the relative-path failure of old
/// releases). A directory whose pid is alive is left alone (a worker of
/// another pool on the same cache may be starting); `rmdir` never removes
/// anything that is not empty.
pub(crate) fn remove_stale_roots(scratch: &Path) {
    let Ok(entries) = std::fs::read_dir(scratch) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(crate::worker::ROOT_PREFIX))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

/// SIGKILLs a worker from a [`Cancel`] action. Sound only while the
/// worker has not been reaped (a zombie keeps its pid from reuse): the
/// pool unregisters the action before it reaps the worker.
fn kill_worker(pid: u32) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// The peer is gone.
fn is_disconnect(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), BrokenPipe | ConnectionReset | NotConnected)
}

fn log_death(pid: u32, status: ExitStatus) {
    if pid != 0 {
        eprintln!("zerovm pool: worker {pid} died ({status}); replaced");
    }
}

/// The session's in-memory buffers as memfds: one per distinct buffer
/// (aliases sharing a buffer share the memfd), emptied first when a
/// write-only channel uses it (as [`OpenChannel::memory`] does).
struct MemFds {
    mems: Vec<Mem>,
    by_alias: HashMap<String, usize>,
}

struct Mem {
    buffer: SharedBuffer,
    file: File,
    writable: bool,
    /// The most bytes the run can leave in it: its input plus the write
    /// quotas of the channels on it. More means a misbehaving worker.
    max_len: u64,
}

impl MemFds {
    fn new(session: &Session) -> std::io::Result<MemFds> {
        let mut mems: Vec<Mem> = Vec::new();
        let mut by_alias = HashMap::new();
        let mut clear = Vec::new();
        for spec in &session.channels {
            let Some(buffer) = session.buffers.get(&spec.alias) else {
                continue;
            };
            let i = match mems.iter().position(|m| Arc::ptr_eq(&m.buffer, buffer)) {
                Some(i) => i,
                None => {
                    let fd = rustix::fs::memfd_create(
                        "zerovm-channel",
                        rustix::fs::MemfdFlags::CLOEXEC,
                    )?;
                    mems.push(Mem {
                        buffer: buffer.clone(),
                        file: File::from(fd),
                        writable: false,
                        max_len: 0,
                    });
                    clear.push(false);
                    mems.len() - 1
                }
            };
            mems[i].writable |= spec.direction != Direction::ReadOnly;
            mems[i].max_len = mems[i].max_len.saturating_add(spec.limits.put_size);
            clear[i] |= spec.direction == Direction::WriteOnly;
            by_alias.insert(spec.alias.clone(), i);
        }
        for (m, clear) in mems.iter_mut().zip(clear) {
            if !clear {
                let bytes = lock(&m.buffer).clone();
                m.file.write_all(&bytes)?;
                m.max_len = m.max_len.saturating_add(bytes.len() as u64);
            }
        }
        Ok(MemFds { mems, by_alias })
    }

    fn file_for(&self, alias: &str) -> Option<&File> {
        self.by_alias.get(alias).map(|&i| &self.mems[i].file)
    }

    /// Copies what the run left in each writable memfd into its buffer.
    fn read_back(mut self) -> std::io::Result<()> {
        for m in self.mems.iter_mut().filter(|m| m.writable) {
            let len = m.file.metadata()?.len();
            if len > m.max_len {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "an in-memory channel holds {len} bytes after the run, more than its input and write quotas allow ({})",
                        m.max_len
                    ),
                ));
            }
            m.file.seek(SeekFrom::Start(0))?;
            let mut bytes = Vec::new();
            m.file.read_to_end(&mut bytes)?;
            *lock(&m.buffer) = bytes;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{ChannelType, CheckedSource, Limits, LocalKind};
    use std::os::unix::fs::FileExt;

    #[test]
    fn an_output_memfd_grown_past_its_quota_is_refused() {
        let out = crate::channel::shared(b"old".to_vec());
        let mut session = crate::python::session_with_stdio(b"", out.clone(), out.clone());
        session.channels.retain(|c| c.alias == "/dev/stdout");
        session.channels[0] = manifest_channel(10);
        session.buffers.retain(|k, _| k == "/dev/stdout");
        // Within the quota: read back.
        let memfds = MemFds::new(&session).unwrap();
        memfds.mems[0].file.write_all_at(b"0123456789", 0).unwrap();
        memfds.read_back().unwrap();
        assert_eq!(&*lock(&out), b"0123456789");
        // A worker writing far past it: refused, the buffer untouched.
        let memfds = MemFds::new(&session).unwrap();
        memfds.mems[0].file.write_all_at(b"x", 1 << 20).unwrap();
        let e = memfds.read_back().unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert_eq!(&*lock(&out), b"0123456789");
    }

    fn manifest_channel(put_size: u64) -> crate::manifest::Channel {
        crate::manifest::Channel {
            alias: "/dev/stdout".into(),
            channel_type: ChannelType::SGetSPut,
            direction: Direction::WriteOnly,
            etag: false,
            limits: Limits {
                gets: 0,
                get_size: 0,
                puts: 100,
                put_size,
            },
            sources: vec![CheckedSource::Local {
                path: "/dev/null".into(),
                kind: LocalKind::CharDevice,
            }],
        }
    }
}
