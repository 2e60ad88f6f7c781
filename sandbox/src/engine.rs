//! The wasmtime engine: one configured [`Engine`] with an epoch ticker, module validation
//! and a cache of compiled [`Program`]s, and [`Engine::run`], which runs a [`Session`] into a [`Report`].
//!
//! Decisions:
//! - **Validation** (spec §13.1) = wasmtime compilation plus import
//!   checking: every import must be a `wasi_snapshot_preview1` function
//!   (served, or linked as ENOSYS) or the Python image's `host::call` (a
//!   stub returning -1), and `_start` must be exported. A served function
//!   imported with another signature fails too. Anything
//!   else fails before the guest runs, as `validation failed` (ENOEXEC).
//! - **Cache:** compiled modules are kept in memory, keyed by the module's
//!   sha256 (one engine = one configuration), and, when
//!   [`EngineConfig::cache_dir`] is set, on disk as `<key>.cwasm` where the
//!   key is sha256(module sha256, wasmtime version, the engine's
//!   compatibility hash): artifacts of another wasmtime or other settings
//!   are never even looked at. Loading one (`Module::deserialize_file`) is
//!   the crate's only `unsafe`: it trusts the file, so only files this code
//!   wrote are loaded — named by their key, in a directory created 0700,
//!   written to a temporary name and renamed into place. The directory must
//!   be private to the sandbox's user and unreachable from guests (they see
//!   no host path at all). An unreadable artifact is recompiled.
//! - **Timeout:** epoch interruption. A ticker thread bumps the engine's
//!   epoch every [`EngineConfig::tick`] while a session runs (it sleeps
//!   while none does, so an idle server or worker is not woken 100 times
//!   a second); each store traps after
//!   `ceil(timeout / tick) + 1` ticks. Measured elsewhere
//!   (spec/sandbox-notes.md): precise to ~2 %, but it costs 18–164 % on tight
//!   loops; killing a worker process at the deadline costs nothing per
//!   instruction and is the plan once workers exist. The timeout counts from
//!   instantiation (which runs the start function), as ZeroVM's `alarm()`
//!   started just before user code.
//! - **Memory:** `Memory` caps linear memory through a `ResourceLimiter`
//!   (`wasi::Limiter`, like wasmtime's `StoreLimits` but remembering a
//!   refusal so a later trap reads `… (after memory exhausted)`):
//!   `memory.grow` past it returns -1 in the guest (§13.3); a module whose
//!   declared minimum exceeds it fails at instantiation with ENOMEM
//!   `invalid memory size`. Tables are capped the same way.
//! - **Stack:** `max_wasm_stack` bounds guest recursion (a trap, `call stack
//!   exhausted`); [`Engine::run`] uses its own host thread whose stack is
//!   larger than that bound, so the host stack can never be the limit
//!   ([`Engine::run_on_current_thread`] leaves that to the caller).
//! - **CPU accounting** (§8 fields 1–2) is the run thread's own CPU time
//!   (`/proc/thread-self/stat`): in a shared process the whole-process
//!   figures ZeroVM printed would mix sessions. A pool worker runs one
//!   session per process and cannot open `/proc` once isolated: it hands
//!   its engine an open `/proc/self/stat` ([`Engine::measure_cpu_from`])
//!   and reports the whole process's, as ZeroVM did. A worker's teardown
//!   of a run (below) comes after its report, so it counts in no report.
//! - **Resident memory** ([`EngineConfig::resident_memory`], pool
//!   workers): wasmtime's pooling allocator keeps a program's memory in
//!   the same slot run after run, and [`resident`] puts back only the
//!   pages a run wrote (userfaultfd write-protection, `PAGEMAP_SCAN`),
//!   instead of mapping the image anew and faulting every page in on each
//!   run; each run is still a fresh instance starting from the module's
//!   initial memory. The module docs of [`resident`] say why that holds.
//!   A run's end is split: [`Engine::run_keeping`] returns the outcome
//!   and the run's [`Leftovers`] (the store, the session's context), whose
//!   drop resets the memory and frees the instance; a worker drops them
//!   after sending the outcome, before it reads the next job.
//! - **System images** ([`Session::system_images`], the Python stdlib)
//!   are mapped and indexed once per engine and shared by the sessions
//!   that mount the same file (by device and inode, size and mtime).

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use md5::Md5;
use sha2::{Digest, Sha256};
use wasmtime::{Config, ExternType, InstancePre, Linker, Module, Store, Trap};

use crate::channel::{self, ChannelError, OpenChannel, SharedBuffer};
use crate::errno;
use crate::manifest::{self, ChannelType, Manifest};
use crate::nvram::{Access, MappingMode, Nvram};
use crate::report::{Accounting, Ending, Report, Validation};
use crate::tar::TarImage;
use crate::vfs::{filetype, Vfs};
use crate::wasi::{self, Ctx, Exit, Fatal, Limiter};

pub(crate) mod resident;

use resident::{Artifact, Tracked, Tracker};

/// Alias of the channel holding ZRT's configuration.
pub const NVRAM_ALIAS: &str = "/dev/nvram";

/// Engine settings; the defaults suit wasi-libc programs and the Python image.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Most bytes of wasm stack a guest may use.
    pub max_wasm_stack: usize,
    /// Most elements per table.
    pub table_elements: usize,
    /// Epoch ticker period (timeout granularity).
    pub tick: Duration,
    /// Where compiled artifacts are kept across processes (`None`: memory only).
    pub cache_dir: Option<PathBuf>,
    /// Keep a program's linear memory mapped between runs and put back
    /// only the pages a run wrote (see [`resident`]): for a process that
    /// runs one session at a time, as a pool worker does. Needs Linux 6.7
    /// (asynchronous userfaultfd write-protection, `PAGEMAP_SCAN`); where
    /// the kernel lacks them the engine runs as without it.
    pub resident_memory: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_wasm_stack: 8 << 20,
            table_elements: 1 << 20,
            tick: Duration::from_millis(10),
            cache_dir: None,
            resident_memory: false,
        }
    }
}

/// Why a module was refused before running (report: `validation failed`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// Not valid wasm (or not compilable with our features).
    #[error("invalid module: {0}")]
    Invalid(String),
    /// An import we do not provide.
    #[error("module imports {module}::{name}, which the sandbox does not provide")]
    UnknownImport {
        /// Import module.
        module: String,
        /// Import name.
        name: String,
    },
    /// No entry point to run: neither `_start` nor a command-style `run`.
    #[error("module exports no _start function")]
    NoStart,
}

/// How a program is entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// `_start: () -> ()`, the WASI command convention (wasi-libc, WAT guests);
    /// the exit code comes from `proc_exit`, else 0.
    Start,
    /// `run: () -> i32`, the Python image's command entry (it exports no
    /// `_start`): behaves like `python` with the WASI args; its result is the
    /// exit code unless `proc_exit` ended the run first.
    Run,
}

/// Exports run once, in this order, after instantiation and before the
/// entry, when a module has them: the WASI reactor constructor, then the
/// pre-initialisation function of a module that has not been snapshotted
/// yet (the Python image's plain `python.wasm`; a snapshot no longer
/// exports either, wizer removes them).
pub const INIT_EXPORTS: [&str; 2] = ["_initialize", "wizer.initialize"];

/// Most programs an engine keeps linked in memory (a long-lived worker sees
/// every program its jobs bring): past this, the least recently used is
/// dropped (its module is unmapped once no run holds it; the disk cache
/// still has it, so using it again costs a load, not a compile).
pub const MAX_CACHED_PROGRAMS: usize = 64;

/// The engine's in-memory programs, least recently used evicted first.
#[derive(Default)]
struct ProgramCache {
    programs: HashMap<[u8; 32], (Arc<Program>, u64)>,
    clock: u64,
}

impl ProgramCache {
    fn get(&mut self, sha256: &[u8; 32]) -> Option<Arc<Program>> {
        self.clock += 1;
        let clock = self.clock;
        self.programs.get_mut(sha256).map(|(p, used)| {
            *used = clock;
            p.clone()
        })
    }

    fn insert(&mut self, sha256: [u8; 32], program: Arc<Program>) {
        self.clock += 1;
        self.programs.insert(sha256, (program, self.clock));
        while self.programs.len() > MAX_CACHED_PROGRAMS {
            let oldest = self
                .programs
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(sha, _)| *sha);
            match oldest {
                Some(sha) => self.programs.remove(&sha),
                None => break,
            };
        }
    }
}

/// A validated, compiled module ready to instantiate.
pub struct Program {
    pub(crate) pre: InstancePre<Ctx>,
    /// The export the session starts at.
    pub entry: Entry,
    /// The [`INIT_EXPORTS`] this module has, to call first.
    pub init: Vec<&'static str>,
    /// Whether it exports `turn(ptr, len) -> i32`, `host_alloc(len) -> ptr`
    /// and `memory` (the Python image's session interface, used by
    /// [`Session::turn`]).
    pub turns: bool,
    /// sha256 of the module bytes.
    pub sha256: [u8; 32],
    /// The artifact the module was loaded from, mapped for resetting its
    /// memory (engines with a [`Tracker`] only).
    pub(crate) artifact: Option<Arc<Artifact>>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("sha256", &channel::hex(&self.sha256))
            .finish()
    }
}

/// What a session runs with: the manifest's channels and limits, plus
/// in-memory buffers standing in for some channel sources.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Session {
    /// Channels in handle order (from [`Manifest::check`]).
    pub channels: Vec<manifest::Channel>,
    /// Aliases served from these buffers instead of their host sources.
    /// (This, `files` and `system_images` stay in the process: the worker
    /// pool sends the rest of a session and passes these as descriptors.)
    #[serde(skip)]
    pub buffers: HashMap<String, SharedBuffer>,
    /// Aliases served from these open host files instead of opening their
    /// sources (a worker gets its channels this way and opens no path):
    /// one file, or one socket per source of a multichannel
    /// ([`crate::channel`]).
    #[serde(skip)]
    pub files: HashMap<String, Vec<Arc<std::fs::File>>>,
    /// Aliases whose regular host file (in `files`, or opened from the
    /// source path) starts at this byte: the channel's byte 0 is the file's
    /// byte `offset`, its size the file's length minus the offset, and a
    /// write-only file opened from its path keeps the bytes before it (see
    /// "File offsets" in [`crate::channel`]). Ignored for channels served
    /// from `buffers` and for streams. Sent to pool workers with the session.
    #[serde(default)]
    pub file_offsets: BTreeMap<String, u64>,
    /// Wall-clock limit.
    pub timeout: Duration,
    /// Cap on linear memory (bytes); also caps the writable in-memory layer.
    pub memory: u64,
    /// Report a `/dev/memory` etag.
    pub memory_etag: bool,
    /// argv when there is no NVRAM `[args]` (or to override it).
    pub args: Option<Vec<String>>,
    /// Environment, overriding NVRAM `[env]` when set.
    pub env: Option<Vec<(String, String)>>,
    /// `-F`: set everything up, run nothing.
    pub prevalidate: bool,
    /// Report line 1 (`-s` gives [`Validation::NotValidated`]).
    pub validation: Validation,
    /// argv[0] when neither `args` nor the NVRAM give one.
    pub program_name: String,
    /// Instead of the entry point, hand this source to the module's `turn`
    /// export (daemon mode: a snapshotted interpreter runs one turn); the
    /// turn's result is the exit code.
    pub turn: Option<String>,
    /// Read-only tar images the sandbox itself provides (the Python
    /// image's stdlib), mounted at their mount points before the NVRAM's
    /// `[fstab]` images; not channels, so not in the accounting.
    #[serde(skip)]
    pub system_images: Vec<(String, Arc<std::fs::File>)>,
}

impl Session {
    /// A session for a parsed manifest and its checked channels.
    pub fn from_manifest(m: &Manifest, channels: Vec<manifest::Channel>) -> Session {
        Session {
            channels,
            buffers: HashMap::new(),
            files: HashMap::new(),
            file_offsets: BTreeMap::new(),
            timeout: Duration::from_secs(u64::try_from(m.timeout).unwrap_or(1).max(1)),
            memory: u64::try_from(m.memory.size).unwrap_or(0),
            memory_etag: m.memory.etag,
            args: None,
            env: None,
            prevalidate: false,
            validation: Validation::Validated,
            program_name: m
                .program
                .rsplit('/')
                .next()
                .unwrap_or("program")
                .to_string(),
            turn: None,
            system_images: Vec::new(),
        }
    }
}

/// The end of a session: the report, how it ended, and a human detail.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The report to print.
    pub report: Report,
    /// How the session ended (gives zerovm's exit code).
    pub ending: Ending,
    /// More about a failure than the report's exit state says.
    pub detail: Option<String>,
}

impl Outcome {
    /// A session that failed before running anything.
    pub fn failed(validation: Validation, ending: Ending, detail: Option<String>) -> Outcome {
        let report = Report {
            validation,
            daemon: false,
            user_code: 0,
            etags: Vec::new(),
            memory_etag: None,
            accounting: Accounting::default(),
            exit_state: Some(ending.exit_state()),
        };
        Outcome {
            report,
            ending,
            detail,
        }
    }

    /// zerovm's exit code.
    pub fn exit_code(&self) -> i32 {
        self.ending.exit_code()
    }
}

/// The wasmtime engine, its linker and the compiled-module cache.
pub struct Engine {
    pub(crate) engine: wasmtime::Engine,
    pub(crate) linker: Linker<Ctx>,
    pub(crate) config: EngineConfig,
    cache: Mutex<ProgramCache>,
    /// An open `/proc/<pid>/stat` to take CPU figures from, instead of the
    /// run thread's own.
    cpu_stat: Option<std::fs::File>,
    /// Resident memory ([`EngineConfig::resident_memory`]) is on.
    tracker: Option<Tracker>,
    /// System images mapped and indexed for the sessions that mount them.
    system_images: SystemImages,
    /// Sessions running now: the epoch ticker ticks only while one does.
    running: Arc<Running>,
}

/// How many sessions of an engine run now; its epoch ticker waits, asleep,
/// while none does (an idle server does not wake 100 times a second), and
/// ends when the engine is dropped.
#[derive(Default)]
struct Running {
    state: Mutex<RunningState>,
    wake: Condvar,
    /// Epoch ticks so far (tests see the ticker rest).
    ticks: AtomicU64,
}

#[derive(Default)]
struct RunningState {
    sessions: usize,
    closed: bool,
}

impl Running {
    fn lock(&self) -> std::sync::MutexGuard<'_, RunningState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One more session runs until the guard is dropped.
    fn enter(self: &Arc<Running>) -> RunningGuard {
        let mut s = self.lock();
        s.sessions += 1;
        if s.sessions == 1 {
            self.wake.notify_all();
        }
        RunningGuard(self.clone())
    }

    /// Waits while no session runs; false once the engine is gone.
    fn wait_for_a_session(&self) -> bool {
        let mut s = self.lock();
        while s.sessions == 0 && !s.closed {
            s = self.wake.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        !s.closed
    }

    fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_all();
    }
}

struct RunningGuard(Arc<Running>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.sessions = s.sessions.saturating_sub(1);
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.running.close();
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Configures wasmtime (Cranelift, copy-on-write memory images,
    /// exceptions, SIMD, bulk memory, reference types, epoch interruption,
    /// bounded stack; the pooling allocator with
    /// [`EngineConfig::resident_memory`]) and starts the epoch ticker,
    /// which stops when the engine is dropped.
    pub fn new(config: EngineConfig) -> wasmtime::Result<Engine> {
        let engine = Engine::without_ticker(config)?;
        engine.start_ticker()?;
        Ok(engine)
    }

    /// [`Engine::new`] without the epoch ticker (no thread started, so a
    /// worker can still enter its namespaces); until
    /// [`Engine::start_ticker`], session timeouts do not fire. With
    /// [`EngineConfig::resident_memory`] this opens `/proc/self/pagemap`
    /// and `/proc/self/maps`, so it must come before `/proc` is out of
    /// reach; if the kernel cannot track written pages, the engine is the
    /// plain one.
    pub(crate) fn without_ticker(config: EngineConfig) -> wasmtime::Result<Engine> {
        let mut c = Config::new();
        c.wasm_exceptions(true)
            .wasm_simd(true)
            .wasm_bulk_memory(true)
            .wasm_reference_types(true)
            .memory_init_cow(true)
            .epoch_interruption(true)
            .max_wasm_stack(config.max_wasm_stack)
            // Checked against max_wasm_stack even without async support.
            .async_stack_size(config.max_wasm_stack + (2 << 20));
        let resident = match config.resident_memory {
            true => Tracker::open().ok().and_then(|tracker| {
                let mut pooled = c.clone();
                pooled.allocation_strategy(resident::pooling(&config));
                wasmtime::Engine::new(&pooled).ok().map(|e| (e, tracker))
            }),
            false => None,
        };
        let (engine, tracker) = match resident {
            Some((engine, tracker)) => (engine, Some(tracker)),
            None => (wasmtime::Engine::new(&c)?, None),
        };
        let mut linker = Linker::new(&engine);
        wasi::add_to_linker(&mut linker)?;
        Ok(Engine {
            engine,
            linker,
            config,
            cache: Mutex::new(ProgramCache::default()),
            cpu_stat: None,
            tracker,
            system_images: SystemImages::default(),
            running: Arc::default(),
        })
    }

    /// Starts the thread that bumps the epoch every [`EngineConfig::tick`]
    /// while a session runs (the session timeouts: a store's deadline
    /// counts ticks from its start, so time no session runs need not
    /// pass); it ends when the engine is dropped.
    pub(crate) fn start_ticker(&self) -> wasmtime::Result<()> {
        let weak = self.engine.weak();
        let tick = self.config.tick;
        let running = self.running.clone();
        std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while running.wait_for_a_session() {
                    std::thread::sleep(tick);
                    match weak.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => break,
                    }
                    running.ticks.fetch_add(1, Ordering::Relaxed);
                }
            })
            .map_err(wasmtime::Error::new)?;
        Ok(())
    }

    /// Whether runs keep their memory resident ([`EngineConfig::resident_memory`]
    /// asked for it and the kernel has what it needs).
    pub fn resident_memory(&self) -> bool {
        self.tracker.is_some()
    }

    /// The descriptors `ioctl` is used on for resident memory (see
    /// [`resident::Tracker::fds`]).
    pub(crate) fn tracker_fds(&self) -> Option<(i32, i32)> {
        self.tracker.as_ref().map(Tracker::fds)
    }

    /// Validates and compiles `wasm` (binary, or text for tests), or returns
    /// the cached result for the same bytes.
    pub fn prepare(&self, wasm: &[u8]) -> Result<Arc<Program>, ValidationError> {
        let sha256: [u8; 32] = Sha256::digest(wasm).into();
        self.compiled(sha256, || Ok(std::borrow::Cow::Borrowed(wasm)))
    }

    /// [`Engine::prepare`] for a module whose sha256 is known already (an
    /// installed image records it): served from the memory or disk cache
    /// without reading the file; compiled from `wasm_path` otherwise, after
    /// checking the bytes against `sha256`.
    pub fn prepare_known(
        &self,
        sha256: [u8; 32],
        wasm_path: &Path,
    ) -> Result<Arc<Program>, ValidationError> {
        self.compiled(sha256, || {
            let wasm = std::fs::read(wasm_path)
                .map_err(|e| ValidationError::Invalid(format!("{}: {e}", wasm_path.display())))?;
            if <[u8; 32]>::from(Sha256::digest(&wasm)) != sha256 {
                return Err(ValidationError::Invalid(format!(
                    "{} does not have the sha256 recorded for it",
                    wasm_path.display()
                )));
            }
            Ok(std::borrow::Cow::Owned(wasm))
        })
    }

    /// The disk-cache artifact for `sha256`, compiled with `compile` and
    /// written when the cache does not hold it yet: what must exist before
    /// a pool worker is sent the program, or an install calls a module
    /// compiled. Unlike [`Engine::prepare`]'s best-effort store, a file
    /// that cannot be written is an error here.
    pub fn ensure_artifact(
        &self,
        sha256: [u8; 32],
        compile: impl FnOnce() -> Result<Arc<Program>, ValidationError>,
    ) -> Result<PathBuf, ValidationError> {
        let path = self
            .artifact_path(&sha256)
            .ok_or_else(|| ValidationError::Invalid("the engine has no cache directory".into()))?;
        if !path.is_file() {
            let program = compile()?;
            // `compile` may have stored it already (`prepare` tries to).
            if !path.is_file() {
                self.store_artifact(&sha256, program.pre.module())
                    .map_err(|e| {
                        ValidationError::Invalid(format!(
                            "cannot cache the compiled module as {}: {e}",
                            path.display()
                        ))
                    })?;
            }
        }
        Ok(path)
    }

    /// The program for `sha256`: from the memory cache, else the disk
    /// cache, else compiled from the bytes `wasm` gives (and stored).
    fn compiled<'w>(
        &self,
        sha256: [u8; 32],
        wasm: impl FnOnce() -> Result<std::borrow::Cow<'w, [u8]>, ValidationError>,
    ) -> Result<Arc<Program>, ValidationError> {
        self.program_for(sha256, || match self.cached(&sha256) {
            Some(module) => Ok(module),
            None => {
                let module = Module::new(&self.engine, &*wasm()?)
                    .map_err(|e| ValidationError::Invalid(format!("{e:#}")))?;
                // Best effort: a cache that cannot be written only costs a compile.
                let _ = self.store_artifact(&sha256, &module);
                Ok(module)
            }
        })
    }

    /// The program for `sha256` from the in-memory cache, else linked from
    /// the module `module` gives and cached: the one cache every way a
    /// module arrives goes through (compiled, loaded from disk, received
    /// by a worker).
    pub(crate) fn program_for<E: From<ValidationError>>(
        &self,
        sha256: [u8; 32],
        module: impl FnOnce() -> Result<Module, E>,
    ) -> Result<Arc<Program>, E> {
        self.program_with_artifact(sha256, || Ok((module()?, None)))
    }

    /// [`Engine::program_for`] where `module` also gives the artifact
    /// file the module was loaded from (mapped: a worker with resident
    /// memory resets memory from it).
    pub(crate) fn program_with_artifact<E: From<ValidationError>>(
        &self,
        sha256: [u8; 32],
        module: impl FnOnce() -> Result<(Module, Option<Artifact>), E>,
    ) -> Result<Arc<Program>, E> {
        if let Some(p) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&sha256)
        {
            return Ok(p);
        }
        let (module, artifact) = module()?;
        let program = self.program(module, sha256, artifact)?;
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sha256, program.clone());
        Ok(program)
    }

    /// Checks a compiled module's imports and entry point and links it:
    /// the second half of [`Engine::prepare`], shared by every way a module
    /// arrives (compiled here, loaded from the cache, received by a worker).
    pub(crate) fn program(
        &self,
        module: Module,
        sha256: [u8; 32],
        artifact: Option<Artifact>,
    ) -> Result<Arc<Program>, ValidationError> {
        let mut linker = self.linker.clone();
        for import in module.imports() {
            let unknown = || ValidationError::UnknownImport {
                module: import.module().to_string(),
                name: import.name().to_string(),
            };
            if (import.module(), import.name()) == (wasi::HOST_MODULE, wasi::HOST_CALL) {
                continue;
            }
            if import.module() != wasi::MODULE {
                return Err(unknown());
            }
            if wasi::IMPLEMENTED.contains(&import.name()) {
                continue;
            }
            match import.ty() {
                ExternType::Func(ty) if wasi::stub_friendly(&ty) => {
                    wasi::link_unknown(&mut linker, import.name(), ty).map_err(|_| unknown())?;
                }
                _ => return Err(unknown()),
            }
        }
        let entry = match (module.get_export("_start"), module.get_export("run")) {
            (Some(ExternType::Func(_)), _) => Entry::Start,
            (_, Some(ExternType::Func(f)))
                if f.params().len() == 0
                    && f.results().len() == 1
                    && matches!(f.results().next(), Some(wasmtime::ValType::I32)) =>
            {
                Entry::Run
            }
            _ => return Err(ValidationError::NoStart),
        };
        let func = |name: &str, params: usize, results: usize| {
            matches!(module.get_export(name), Some(ExternType::Func(f))
                if f.params().len() == params && f.results().len() == results)
        };
        let init = INIT_EXPORTS
            .into_iter()
            .filter(|name| func(name, 0, 0))
            .collect();
        let turns = func("turn", 2, 1)
            && func("host_alloc", 1, 1)
            && matches!(module.get_export("memory"), Some(ExternType::Memory(_)));
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| ValidationError::Invalid(format!("{e:#}")))?;
        Ok(Arc::new(Program {
            pre,
            entry,
            init,
            turns,
            sha256,
            artifact: artifact.map(Arc::new),
        }))
    }

    /// The on-disk artifact path for a module, if the disk cache is on.
    pub fn artifact_path(&self, sha256: &[u8; 32]) -> Option<PathBuf> {
        let dir = self.config.cache_dir.as_ref()?;
        let mut key = Sha256Hasher(Sha256::new());
        sha256.hash(&mut key);
        env!("CARGO_PKG_VERSION").hash(&mut key);
        WASMTIME_VERSION.hash(&mut key);
        self.engine.precompile_compatibility_hash().hash(&mut key);
        Some(dir.join(format!("{}.cwasm", channel::hex(&key.0.finalize()))))
    }

    fn cached(&self, sha256: &[u8; 32]) -> Option<Module> {
        let path = self.artifact_path(sha256)?;
        if !path.is_file() {
            return None;
        }
        // SAFETY: `deserialize_file` trusts the file to be a wasmtime artifact
        // for this engine. Only this process's own `store_artifact` writes
        // files into the cache directory (created 0700, atomically renamed
        // into place), under a name that encodes the module hash, wasmtime
        // version and engine settings; guests cannot reach host paths.
        #[allow(unsafe_code)]
        let module = unsafe { Module::deserialize_file(&self.engine, &path) };
        module.ok()
    }

    /// Writes a compiled module into the disk cache (nothing to do
    /// without one). Compiling treats a failure as best effort (it only
    /// costs a later compile); the worker pool needs the file.
    pub(crate) fn store_artifact(&self, sha256: &[u8; 32], module: &Module) -> std::io::Result<()> {
        let (Some(path), Some(dir)) =
            (self.artifact_path(sha256), self.config.cache_dir.as_deref())
        else {
            return Ok(());
        };
        let bytes = module.serialize().map_err(std::io::Error::other)?;
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        write_atomically(&path, &bytes, 0o600)
    }

    /// The host stack a thread running guests needs.
    pub fn run_thread_stack(&self) -> usize {
        self.config.max_wasm_stack + (8 << 20)
    }

    /// Runs one session of `program` on a fresh host thread and reports.
    pub fn run(&self, program: &Program, session: &Session) -> Outcome {
        let stack = self.run_thread_stack();
        std::thread::scope(|scope| {
            let handle = std::thread::Builder::new()
                .name("guest".into())
                .stack_size(stack)
                .spawn_scoped(scope, || self.run_on_current_thread(program, session));
            match handle.map(|h| h.join()) {
                Ok(Ok(outcome)) => outcome,
                _ => Outcome::failed(
                    session.validation,
                    Ending::Failed {
                        errno: errno::EFAULT,
                        message: String::new(),
                    },
                    Some("the guest thread could not run".into()),
                ),
            }
        })
    }

    /// Runs one session on the calling thread. Its stack must be larger than
    /// [`EngineConfig::max_wasm_stack`] plus a few MiB for host frames
    /// ([`Engine::run_thread_stack`]), or deep guest recursion would overflow
    /// the host stack instead of trapping; worker processes run guests on
    /// such a thread and save the per-run thread spawn of [`Engine::run`].
    pub fn run_on_current_thread(&self, program: &Program, session: &Session) -> Outcome {
        self.run_inspect(program, session, None)
    }

    /// [`Engine::run_on_current_thread`], then, when the entry returned
    /// normally, `inspect` sees the live instance (the snapshot builder
    /// takes its memory and globals there). An error from it fails the run.
    ///
    /// The steps, each its own function: open the channels, read the
    /// NVRAM, build the guest's file system, take the command line, run
    /// the module ([`Engine::execute`]), pack `wo` images, report.
    pub(crate) fn run_inspect(
        &self,
        program: &Program,
        session: &Session,
        inspect: Option<Inspect<'_>>,
    ) -> Outcome {
        self.run_keeping(program, session, inspect).0
    }

    /// [`Engine::run_inspect`] that hands back what is left of the run
    /// instead of dropping it before returning (see [`Leftovers`]).
    pub(crate) fn run_keeping(
        &self,
        program: &Program,
        session: &Session,
        inspect: Option<Inspect<'_>>,
    ) -> (Outcome, Leftovers<'_>) {
        let cpu_start = self.cpu_now();
        let fail = |(ending, detail): Failure| {
            let outcome = Outcome::failed(session.validation, ending, detail);
            (outcome, Leftovers::none())
        };
        // Blocking socket calls (tcp channels) and sleeps give up when the
        // session's time is over: the epoch cannot interrupt a host call.
        let deadline = Instant::now().checked_add(session.timeout);
        let mut channels = match open_channels(session, deadline) {
            Ok(c) => c,
            Err(f) => return fail(f),
        };
        let (nvram, mut notes) = match read_nvram(&mut channels) {
            Ok(n) => n,
            Err(f) => return fail(f),
        };
        let vfs = match build_vfs(
            session,
            &nvram,
            &mut channels,
            &mut notes,
            &self.system_images,
        ) {
            Ok(v) => v,
            Err(f) => return fail(f),
        };
        let (args, env) = command_line(session, &nvram);
        let limiter = Limiter {
            memory: usize::try_from(session.memory).unwrap_or(usize::MAX),
            table_elements: self.config.table_elements,
            ..Limiter::default()
        };
        let mut ctx = Ctx::new(args, env, channels, vfs, limiter);
        ctx.clock_base = nvram.time;
        ctx.deadline = deadline;
        let detail = (!notes.is_empty()).then(|| notes.join("; "));
        if session.prevalidate {
            let ended = Ended {
                ctx,
                memory_etag: None,
                ending: Ending::Prevalidated,
                user_code: 0,
                detail,
                store: None,
                tracked: None,
            };
            return self.finish(ended, session, cpu_start);
        }
        let mut ended = self.execute(program, session, ctx, inspect);
        // A failure's own detail replaces the notes.
        ended.detail = ended.detail.or(detail);
        // `[fstab]` `access=wo` images: after a normal exit only (ZRT packed
        // them in the guest's exit path, so not after a trap or a timeout).
        if ended.ending == Ending::Exited {
            match pack_images(&nvram, &mut ended.ctx) {
                Ok(notes) => {
                    let notes = (!notes.is_empty()).then(|| notes.join("; "));
                    ended.detail = join_notes(ended.detail, notes);
                }
                Err(ending) => ended.ending = ending,
            }
        }
        self.finish(ended, session, cpu_start)
    }

    /// Instantiates the program in a store with the session's limits
    /// (memory, tables, the timeout's epoch deadline) and enters it: init
    /// exports, then the entry or one turn; `inspect` sees the instance
    /// after a normal return. How it ended, with the user code.
    fn execute(
        &self,
        program: &Program,
        session: &Session,
        ctx: Ctx,
        inspect: Option<Inspect<'_>>,
    ) -> Ended {
        // The epoch ticks from here until the session's store is done.
        let _running = self.running.enter();
        let mut store = Store::new(&self.engine, ctx);
        store.limiter(|c| &mut c.limiter);
        let tick = self.config.tick.as_nanos().max(1);
        let ticks = session.timeout.as_nanos().div_ceil(tick) + 1;
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.epoch_deadline_trap();
        let instance = match program.pre.instantiate(&mut store) {
            Ok(i) => i,
            Err(e) => {
                let limiter = &store.data().limiter;
                let ending = if limiter.memory_refused || limiter.table_refused {
                    Ending::Failed {
                        errno: errno::ENOMEM,
                        message: "invalid memory size".into(),
                    }
                } else {
                    classify(&e, false).0
                };
                return Ended {
                    ctx: store.into_data(),
                    memory_etag: None,
                    ending,
                    user_code: 0,
                    detail: Some(format!("{e:#}")),
                    store: None,
                    tracked: None,
                };
            }
        };
        let tracked = match (&self.tracker, &program.artifact) {
            (Some(tracker), Some(artifact)) => {
                Tracked::begin(tracker, artifact, &mut store, &instance)
            }
            _ => None,
        };
        let mut result = enter(&mut store, &instance, program, session.turn.as_deref());
        if let (Ok(_), Some(inspect)) = (&result, inspect) {
            if let Err(e) = inspect(&mut store, &instance) {
                result = Err(e);
            }
        }
        let (ending, user_code, detail) = match result {
            Ok(code) => (Ending::Exited, code, None),
            Err(e) => {
                let (ending, code) = classify(&e, store.data().limiter.memory_refused);
                let detail = (ending != Ending::Exited).then(|| format!("{e:#}"));
                (ending, code, detail)
            }
        };
        let memory_etag = if session.memory_etag {
            instance.get_memory(&mut store, "memory").map(|m| {
                let mut h = Md5::new();
                md5::Digest::update(&mut h, m.data(&store));
                channel::hex(&md5::Digest::finalize(h))
            })
        } else {
            None
        };
        // The session's context goes on to the report; the store (the
        // instance, its memory) is dropped with the run's leftovers.
        let ctx = std::mem::replace(store.data_mut(), Ctx::spent());
        Ended {
            ctx,
            memory_etag,
            ending,
            user_code,
            detail,
            store: Some(store),
            tracked,
        }
    }

    /// Closes the channels and builds the report: I/O accounting, etags,
    /// CPU time since `cpu_start`.
    fn finish(
        &self,
        ended: Ended,
        session: &Session,
        cpu_start: (Duration, Duration),
    ) -> (Outcome, Leftovers<'_>) {
        let Ended {
            mut ctx,
            memory_etag,
            ending,
            user_code,
            detail,
            store,
            tracked,
        } = ended;
        let mut accounting = Accounting::default();
        let mut etags = Vec::new();
        for c in &mut ctx.channels {
            c.close();
            let io = c.io();
            // Report fields 3–6 for local sources, 7–10 for tcp (§8).
            let counters = if c.is_network() {
                &mut accounting.network
            } else {
                &mut accounting.local
            };
            counters.reads += io.reads;
            counters.bytes_read += io.bytes_read;
            counters.writes += io.writes;
            counters.bytes_written += io.bytes_written;
            etags.extend(c.etag());
        }
        let (user, system) = self.cpu_now();
        accounting.user_cpu = user.saturating_sub(cpu_start.0);
        accounting.system_cpu = system.saturating_sub(cpu_start.1);
        let report = Report {
            validation: session.validation,
            daemon: false,
            user_code,
            etags,
            memory_etag: if session.memory_etag {
                memory_etag
            } else {
                None
            },
            accounting,
            exit_state: Some(ending.exit_state()),
        };
        let outcome = Outcome {
            report,
            ending,
            detail,
        };
        let leftovers = Leftovers {
            tracker: self.tracker.as_ref(),
            store,
            tracked,
            ctx: Some(ctx),
        };
        (outcome, leftovers)
    }
}

/// What is left of a run once its outcome is known: the store (the
/// instance and its linear memory) and the session's context (channels,
/// the file system). Dropping it ends the run: with resident memory
/// ([`EngineConfig::resident_memory`]) the memory is first put back to its
/// initial contents, then the store and the context go. A pool worker
/// drops it after sending the outcome, so the reply does not wait for it;
/// the next session starts only after it is gone.
pub(crate) struct Leftovers<'e> {
    tracker: Option<&'e Tracker>,
    store: Option<Store<Ctx>>,
    tracked: Option<Tracked>,
    ctx: Option<Ctx>,
}

impl Leftovers<'_> {
    /// Nothing left (a session that ended before its program ran).
    pub(crate) fn none() -> Self {
        Leftovers {
            tracker: None,
            store: None,
            tracked: None,
            ctx: None,
        }
    }
}

impl Drop for Leftovers<'_> {
    fn drop(&mut self) {
        // Our reset first (it needs the instance's memory), then the store
        // (wasmtime's own reset finds nothing left to do in the tracked
        // range), then the hot pages lose their protection (only once
        // wasmtime's reset has looked), then the context.
        let mut hot = None;
        if let (Some(tracker), Some(store), Some(tracked)) =
            (self.tracker, self.store.as_mut(), self.tracked.take())
        {
            hot = Some(tracked.reset(tracker, store));
        }
        drop(self.store.take());
        if let (Some(tracker), Some(hot)) = (self.tracker, hot) {
            hot.release(tracker);
        }
        drop(self.ctx.take());
    }
}

/// A session that ends before its program runs: how, and more detail.
type Failure = (Ending, Option<String>);

/// A session after its program ran (or was set up, with `-F`).
struct Ended {
    ctx: Ctx,
    memory_etag: Option<String>,
    ending: Ending,
    user_code: i32,
    detail: Option<String>,
    /// The store the program ran in (none if it never ran).
    store: Option<Store<Ctx>>,
    /// Its memory, when it is resident.
    tracked: Option<Tracked>,
}

/// `a; b`, or whichever of them there is.
fn join_notes(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    }
}

/// The session's channels in handle order: its buffers and open files
/// where it has them, else opened on their host sources; files start at
/// their [`Session::file_offsets`]. Each gives up blocking host calls at
/// `deadline`.
fn open_channels(
    session: &Session,
    deadline: Option<Instant>,
) -> Result<Vec<OpenChannel>, Failure> {
    let mut channels = Vec::with_capacity(session.channels.len());
    for spec in &session.channels {
        let offset = session.file_offsets.get(&spec.alias).copied().unwrap_or(0);
        let opened = match (
            session.buffers.get(&spec.alias),
            session.files.get(&spec.alias),
        ) {
            (Some(buffer), _) => Ok(OpenChannel::memory(spec, buffer.clone())),
            (None, Some(files)) => files
                .iter()
                .map(|f| f.try_clone())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| channel::OpenError::CannotOpen(spec.alias.clone()))
                .and_then(|f| OpenChannel::from_files_at(spec, f, offset)),
            (None, None) => OpenChannel::open_at(spec, offset),
        };
        let mut c = opened.map_err(|e| {
            let ending = Ending::Failed {
                errno: e.errno(),
                message: e.to_string(),
            };
            (ending, None)
        })?;
        c.set_deadline(deadline);
        channels.push(c);
    }
    Ok(channels)
}

/// The NVRAM, read (leniently, as ZRT did) from the readable
/// [`NVRAM_ALIAS`] channel if there is one, and its diagnostics.
fn read_nvram(channels: &mut [OpenChannel]) -> Result<(Nvram, Vec<String>), Failure> {
    let Some(c) = channels
        .iter_mut()
        .find(|c| c.alias() == NVRAM_ALIAS && c.limits().readable())
    else {
        return Ok((Nvram::default(), Vec::new()));
    };
    let text = c
        .read_all()
        .map_err(|e| (channel_failure(NVRAM_ALIAS, e), None))?;
    let (nvram, diagnostics) = Nvram::parse_lenient(&text);
    Ok((nvram, diagnostics.iter().map(ToString::to_string).collect()))
}

/// The guest's file system: the session's system images, every channel
/// at its alias (a file or a character device, as the NVRAM maps it),
/// the `[fstab]` images, and a writable `/tmp`. Problems that do not end
/// the session are added to `notes`.
fn build_vfs(
    session: &Session,
    nvram: &Nvram,
    channels: &mut [OpenChannel],
    notes: &mut Vec<String>,
    system_images: &SystemImages,
) -> Result<Vfs, Failure> {
    let mut vfs = Vfs::new(session.memory);
    for (point, file) in &session.system_images {
        let image = system_images.get(file);
        if let Err(e) = image.and_then(|i| vfs.mount(point, i).map_err(|e| e.to_string())) {
            let ending = Ending::Failed {
                errno: errno::EFAULT,
                message: format!("system image at {point} cannot be mounted"),
            };
            return Err((ending, Some(e)));
        }
    }
    for (handle, c) in channels.iter().enumerate() {
        let mapped = nvram
            .mapping
            .iter()
            .rev()
            .find(|m| m.channel == c.alias())
            .map(|m| m.mode);
        let t = match mapped {
            Some(MappingMode::File) => filetype::REGULAR_FILE,
            Some(MappingMode::Char | MappingMode::Pipe) => filetype::CHARACTER_DEVICE,
            None if c.channel_type() == ChannelType::SGetSPut || c.is_stream() => {
                filetype::CHARACTER_DEVICE
            }
            None => filetype::REGULAR_FILE,
        };
        vfs.add_channel(c.alias(), handle, t);
    }
    mount_fstab(nvram, channels, &mut vfs, notes)?;
    // A writable /tmp in the in-memory layer, as programs expect (the
    // Python image's TMPDIR); it vanishes with the session like the rest.
    if vfs.lookup("/tmp").is_err() {
        let _ = vfs.mkdir("/tmp");
    }
    Ok(vfs)
}

/// `[fstab]` images: `ro` ones are read through their channel's quotas
/// and mounted, memory-mapped when the channel is a regular file no
/// writable channel of the session also has open (see
/// `OpenChannel::read_image` for what the host must guarantee); `wo` ones
/// get their mount point made, and are packed at exit ([`pack_images`]).
fn mount_fstab(
    nvram: &Nvram,
    channels: &mut [OpenChannel],
    vfs: &mut Vfs,
    notes: &mut Vec<String>,
) -> Result<(), Failure> {
    let written: Vec<(u64, u64)> = channels
        .iter()
        .filter(|c| c.limits().writable())
        .filter_map(OpenChannel::file_identity)
        .collect();
    for entry in nvram.fstab.iter().filter(|e| e.is_tar()) {
        if entry.access == Access::WriteOnly {
            if vfs.mkdir_all(&entry.mountpoint).is_err() {
                notes.push(format!("fstab: bad mount point {}", entry.mountpoint));
            }
            continue;
        }
        let Some(c) = channels.iter_mut().find(|c| c.alias() == entry.channel) else {
            notes.push(format!("fstab: no channel {}", entry.channel));
            continue;
        };
        let may_map = c.file_identity().is_none_or(|id| !written.contains(&id));
        let bytes = c
            .read_image(may_map)
            .map_err(|e| (channel_failure(&entry.channel, e), None))?;
        let image = TarImage::new(bytes).map_err(|e| {
            let ending = Ending::Failed {
                errno: errno::EFAULT,
                message: format!("{} is not a valid tar image", entry.channel),
            };
            (ending, Some(e.to_string()))
        })?;
        if vfs.mount(&entry.mountpoint, image).is_err() {
            notes.push(format!("fstab: bad mount point {}", entry.mountpoint));
        }
    }
    Ok(())
}

/// The guest's argv and environment: the session's when it sets them,
/// else the NVRAM's `[args]` (argv0 alone, [`Session::program_name`], when
/// it has none) and `[env]`. What a caller that rewrites a command line
/// (an interpreter image, as the Python image's `PythonImage::apply`) starts from.
pub fn command_line(session: &Session, nvram: &Nvram) -> (Vec<String>, Vec<(String, String)>) {
    let args = session.args.clone().unwrap_or_else(|| {
        if nvram.args.is_empty() {
            vec![session.program_name.clone()]
        } else {
            nvram.args.clone()
        }
    });
    let env = session.env.clone().unwrap_or_else(|| {
        nvram
            .env
            .iter()
            .map(|v| (v.name.clone(), v.value.clone()))
            .collect()
    });
    (args, env)
}

/// `[fstab]` `access=wo` images, after a normal exit: the writable layer
/// under each mount point is written to its channel as a tar, through the
/// channel's quotas (a quota cuts the tar short: noted). A host write
/// failure ends the session.
fn pack_images(nvram: &Nvram, ctx: &mut Ctx) -> Result<Vec<String>, Ending> {
    let mut notes = Vec::new();
    for entry in nvram
        .fstab
        .iter()
        .filter(|e| e.access == Access::WriteOnly && e.is_tar())
    {
        let Some(c) = ctx.channels.iter_mut().find(|c| c.alias() == entry.channel) else {
            notes.push(format!("fstab: no channel {}", entry.channel));
            continue;
        };
        if !c.limits().writable() || crate::vfs::normalize("/", &entry.mountpoint).is_err() {
            notes.push(format!(
                "fstab: image {} at {} not written (channel not writable or bad mount point)",
                entry.channel, entry.mountpoint
            ));
            continue;
        }
        let vfs = &ctx.vfs;
        match c.write_image(|w| vfs.pack(&entry.mountpoint, w)) {
            Ok(w) if w.cut() => notes.push(format!(
                "fstab: image {} cut at {} of {} bytes by the channel's quota",
                entry.channel, w.stored, w.offered
            )),
            Ok(_) => {}
            Err(e) => {
                return Err(Ending::Failed {
                    errno: errno::EIO,
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(notes)
}

/// Most system images an engine keeps mapped and indexed.
const MAX_SYSTEM_IMAGES: usize = 4;

/// An engine's system images ([`Session::system_images`]), mapped and
/// indexed once and mounted in every session that brings the same file,
/// instead of mapping and indexing it for each (a pool worker receives a
/// new descriptor of the same file with every job). A file is known by
/// its device and inode, with its size and modification time: the map an
/// entry holds keeps that inode alive, so its number cannot come back as
/// another file while the entry is here.
#[derive(Default)]
struct SystemImages(Mutex<Vec<(ImageKey, Arc<TarImage<crate::tar::ImageBytes>>)>>);

/// (device, inode, size, mtime seconds, mtime nanoseconds).
type ImageKey = (u64, u64, i64, i64, i64);

impl SystemImages {
    fn get(&self, file: &std::fs::File) -> Result<Arc<TarImage<crate::tar::ImageBytes>>, String> {
        use std::os::fd::AsFd;
        let st = rustix::fs::fstat(file.as_fd()).map_err(|e| e.to_string())?;
        let key: ImageKey = (
            st.st_dev,
            st.st_ino,
            st.st_size,
            st.st_mtime,
            i64::try_from(st.st_mtime_nsec).unwrap_or(0),
        );
        let mut images = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = images.iter().position(|(k, _)| *k == key) {
            let entry = images.remove(i);
            let image = entry.1.clone();
            images.push(entry);
            return Ok(image);
        }
        let image = Arc::new(system_image(file)?);
        images.push((key, image.clone()));
        if images.len() > MAX_SYSTEM_IMAGES {
            images.remove(0);
        }
        Ok(image)
    }
}

/// A system image's tar index over a read-only map of its file.
fn system_image(file: &std::fs::File) -> Result<TarImage<crate::tar::ImageBytes>, String> {
    // SAFETY: a map aliases the file, so it is sound only while nobody
    // truncates or rewrites the file in place. System images are files the
    // image installer wrote under a temporary name and renamed into place
    // (sandbox::image), never modified afterwards; guests cannot reach host
    // files at all; and the tar index checked every offset against the
    // map's length, so a lookup can never read past it.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(file) }.map_err(|e| e.to_string())?;
    let len = map.len();
    TarImage::new(crate::tar::ImageBytes::mapped(map, len)).map_err(|e| e.to_string())
}

/// A look at a live instance after its entry returned.
pub(crate) type Inspect<'a> =
    &'a mut dyn FnMut(&mut Store<Ctx>, &wasmtime::Instance) -> wasmtime::Result<()>;

/// Runs the init exports, then the entry (or one turn); the exit code.
fn enter(
    store: &mut Store<Ctx>,
    instance: &wasmtime::Instance,
    program: &Program,
    turn: Option<&str>,
) -> wasmtime::Result<i32> {
    for name in &program.init {
        instance
            .get_typed_func::<(), ()>(&mut *store, name)?
            .call(&mut *store, ())?;
    }
    match (turn, program.entry) {
        (Some(source), _) => {
            if !program.turns {
                return Err(wasmtime::Error::msg(
                    "the module has no turn export (daemon mode needs a snapshot image)",
                ));
            }
            let len = i32::try_from(source.len())
                .map_err(|_| wasmtime::Error::msg("turn source too long"))?;
            let ptr = instance
                .get_typed_func::<i32, i32>(&mut *store, "host_alloc")?
                .call(&mut *store, len)?;
            // host_alloc returns 0 when the guest has no memory for the
            // code; `turn` itself reports that case (as a MemoryError).
            if ptr != 0 {
                let memory = instance
                    .get_memory(&mut *store, "memory")
                    .ok_or_else(|| wasmtime::Error::msg("no memory export"))?;
                let at = usize::try_from(ptr as u32).unwrap_or(usize::MAX);
                memory.write(&mut *store, at, source.as_bytes())?;
            }
            instance
                .get_typed_func::<(i32, i32), i32>(&mut *store, "turn")?
                .call(&mut *store, (ptr, len))
        }
        (None, Entry::Start) => instance
            .get_typed_func::<(), ()>(&mut *store, "_start")?
            .call(&mut *store, ())
            .map(|()| 0),
        (None, Entry::Run) => instance
            .get_typed_func::<(), i32>(&mut *store, "run")?
            .call(&mut *store, ()),
    }
}

/// The wasmtime version compiled in (part of the artifact key).
const WASMTIME_VERSION: &str = "48.0.8";

/// Feeds `Hash` values into sha256 (a hash that is stable across builds).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Writes `bytes` to `path` with permissions `mode`: into a temporary file
/// of its own (a unique name: two writers of the same path, threads or
/// processes, never share one) in the same directory, synced, renamed over
/// `path`, then the directory synced. A reader sees the old file or the
/// whole new one, never half of it; a crash leaves at most the temporary.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other(format!("{} has no directory", path.display())))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".write-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

/// How a guest call ended, and the user code.
fn classify(e: &wasmtime::Error, memory_refused: bool) -> (Ending, i32) {
    if let Some(Exit(code)) = e.downcast_ref::<Exit>() {
        return (Ending::Exited, *code);
    }
    if let Some(Fatal(message)) = e.downcast_ref::<Fatal>() {
        return (
            Ending::Failed {
                errno: errno::EIO,
                message: message.clone(),
            },
            0,
        );
    }
    if let Some(trap) = e.downcast_ref::<Trap>() {
        if *trap == Trap::Interrupt {
            return (Ending::Timeout, 0);
        }
        let text = trap.to_string();
        let kind = text
            .strip_prefix("wasm trap: ")
            .unwrap_or(&text)
            .to_string();
        let kind = if memory_refused {
            format!("{kind} (after memory exhausted)")
        } else {
            kind
        };
        return (Ending::Trap(kind), 0);
    }
    (
        Ending::Failed {
            errno: errno::EFAULT,
            message: String::new(),
        },
        0,
    )
}

fn channel_failure(alias: &str, e: ChannelError) -> Ending {
    let errno = match e {
        ChannelError::Io(_) => errno::EIO,
        _ => errno::EFAULT,
    };
    Ending::Failed {
        errno,
        message: format!("{alias} cannot be read: {e}"),
    }
}

/// (user, system) CPU time of the calling thread; zero where unknown.
fn thread_cpu() -> (Duration, Duration) {
    std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|text| stat_cpu(&text))
        .unwrap_or((Duration::ZERO, Duration::ZERO))
}

impl Engine {
    /// Takes every run's CPU figures from `stat`, an open `/proc/<pid>/stat`
    /// (the process's, for a pool worker), instead of the run thread's.
    pub(crate) fn measure_cpu_from(&mut self, stat: std::fs::File) {
        self.cpu_stat = Some(stat);
    }

    /// (user, system) CPU time so far, by the clock runs are measured with.
    fn cpu_now(&self) -> (Duration, Duration) {
        use std::os::unix::fs::FileExt;
        let Some(stat) = &self.cpu_stat else {
            return thread_cpu();
        };
        let mut buf = [0u8; 1024];
        stat.read_at(&mut buf, 0)
            .ok()
            .and_then(|n| std::str::from_utf8(buf.get(..n)?).ok())
            .and_then(stat_cpu)
            .unwrap_or((Duration::ZERO, Duration::ZERO))
    }
}

/// (user, system) CPU time from the text of a `/proc/…/stat` file (fields
/// 14 and 15, in clock ticks of 10 ms).
pub(crate) fn stat_cpu(stat: &str) -> Option<(Duration, Duration)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // The slice starts at field 3.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u32>().ok());
    let clk = Duration::from_millis(10);
    Some((clk * ticks(11)?, clk * ticks(12)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distinct modules, in the text format `prepare` also takes.
    fn tiny(n: usize) -> Vec<u8> {
        format!("(module (global i32 (i32.const {n})) (func (export \"_start\")))").into_bytes()
    }

    #[test]
    fn concurrent_atomic_writes_of_one_path_leave_one_whole_file() {
        // Threads of one process writing the same artifact (two runs
        // compiling the same module) once shared a temporary name.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.cwasm");
        let contents: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 1 << 20]).collect();
        std::thread::scope(|scope| {
            for c in &contents {
                let path = &path;
                scope.spawn(move || {
                    for _ in 0..10 {
                        write_atomically(path, c, 0o600).unwrap();
                    }
                });
            }
        });
        let written = std::fs::read(&path).unwrap();
        assert!(contents.contains(&written), "a mixed or short file");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "temporaries left behind");
    }

    #[test]
    fn ensure_artifact_writes_once_and_fails_where_prepare_only_tries() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = tiny(1);
        // A cache dir that cannot exist (under a regular file).
        std::fs::write(dir.path().join("file"), b"").unwrap();
        let engine = Engine::new(EngineConfig {
            cache_dir: Some(dir.path().join("file").join("cache")),
            ..EngineConfig::default()
        })
        .unwrap();
        let program = engine.prepare(&wasm).expect("compiled all the same");
        let err = engine
            .ensure_artifact(program.sha256, || Ok(program.clone()))
            .unwrap_err();
        assert!(
            matches!(&err, ValidationError::Invalid(m) if m.contains("cannot cache")),
            "{err}"
        );
        // Writable: the file appears; asked again, nothing is compiled.
        let engine = Engine::new(EngineConfig {
            cache_dir: Some(dir.path().join("cache")),
            ..EngineConfig::default()
        })
        .unwrap();
        let sha = program.sha256;
        let path = engine
            .ensure_artifact(sha, || engine.prepare(&wasm))
            .unwrap();
        assert!(path.is_file());
        let again = engine.ensure_artifact(sha, || panic!("compiled again"));
        assert_eq!(again.unwrap(), path);
    }

    #[test]
    fn the_epoch_ticker_rests_while_no_session_runs() {
        let engine = Engine::new(EngineConfig {
            tick: Duration::from_millis(1),
            ..EngineConfig::default()
        })
        .expect("engine");
        let ticks = || engine.running.ticks.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(ticks(), 0, "ticked with no session running");
        {
            let _session = engine.running.enter();
            let mut waited = 0;
            while ticks() < 3 && waited < 5_000 {
                std::thread::sleep(Duration::from_millis(1));
                waited += 1;
            }
            assert!(ticks() >= 3, "no ticks while a session runs");
        }
        // At most the tick in flight when the session ended.
        let after = ticks();
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            ticks() <= after + 1,
            "{} ticks after the session",
            ticks() - after
        );
    }

    #[test]
    fn the_program_cache_keeps_the_most_recently_used() {
        let engine = Engine::new(EngineConfig::default()).expect("engine");
        let first = engine.prepare(&tiny(0)).expect("program");
        for n in 1..MAX_CACHED_PROGRAMS + 8 {
            engine.prepare(&tiny(n)).expect("program");
            // Kept in use: never the least recently used.
            let again = engine.prepare(&tiny(0)).expect("program");
            assert!(Arc::ptr_eq(&first, &again));
        }
        let cache = engine.cache.lock().unwrap_or_else(|p| p.into_inner());
        assert_eq!(cache.programs.len(), MAX_CACHED_PROGRAMS);
        assert!(cache.programs.contains_key(&first.sha256));
        let sha = |n: usize| -> [u8; 32] { Sha256::digest(tiny(n)).into() };
        assert!(
            !cache.programs.contains_key(&sha(1)),
            "the oldest unused one went first"
        );
        assert!(cache.programs.contains_key(&sha(MAX_CACHED_PROGRAMS + 7)));
    }
}
