//! The command-line tools' runs (`zerovm MANIFEST`, `zvsh …`): a manifest
//! file becomes one session run in a one-worker [`Pool`], the same isolated
//! path a server's runs take. The top of the crate: it uses the pool, the
//! image store and the Python image; nothing below it uses this module.
//!
//! [`zvsh`] turns a zvsh command line into the manifest and NVRAM files
//! that [`run_manifest_file`] then runs.

pub mod zvsh;

use std::path::{Path, PathBuf};

use crate::engine::{self, Outcome, Session};
use crate::errno;
use crate::manifest::{self, CheckedSource, LocalKind, Manifest};
use crate::nvram::Nvram;
use crate::pool::{Job, Pool, PoolConfig, ProgramRef};
use crate::python::{PythonImage, Start};
use crate::report::{Ending, Validation};

/// Where `zvsh` looks for system images when `$ZEROCLOUD_IMAGES` is not
/// set: `zerocloud image install`'s default (`<data dir>/images` with the
/// default data dir).
pub const DEFAULT_IMAGES_DIR: &str = "./zerocloud-data/images";

/// The images directory of a command-line run: `$ZEROCLOUD_IMAGES`, else
/// [`DEFAULT_IMAGES_DIR`]; made absolute here, once (the paths derived
/// from it, the compile cache among them, then stay right whatever
/// directory a process is in later).
pub fn images_dir() -> PathBuf {
    let dir = crate::image::images_dir_from_env().unwrap_or_else(|| DEFAULT_IMAGES_DIR.into());
    std::path::absolute(&dir).unwrap_or(dir)
}

/// How a zvsh user raises the time limit ([`timed_out`]).
pub const RAISE_IN_ZVSH_CFG: &str =
    "raise the limit with `Timeout = <seconds>` under [manifest] in ./zvsh.cfg";

/// How a zerovm user raises the time limit ([`timed_out`]).
pub const RAISE_IN_MANIFEST: &str = "raise the limit with the manifest's `Timeout = <seconds>`";

/// The one line a timed-out run is told with: `timed out after N s;
/// <how to raise the limit>`.
pub fn timed_out(seconds: i64, raise: &str) -> String {
    format!("timed out after {seconds} s; {raise}")
}

/// What `zerovm` and `zvsh` were asked for beyond the manifest.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `-s`: run without validating; the report says "not validated".
    pub skip_validation: bool,
    /// `-F`: prepare everything, then stop before the program runs.
    pub prevalidate: bool,
    /// The manifest's program is the Python image (`zvsh python3 …`): its
    /// program comes from the image (compiled at install, in the image
    /// store's cache) and the session becomes a Python run.
    pub python: Option<PythonRun>,
    /// The `zerovm` binary the session's worker runs as (`zerovm
    /// --worker`); default: `zerovm` beside the running executable.
    pub worker_program: Option<PathBuf>,
}

/// An installed Python image to run, and how.
#[derive(Debug, Clone)]
pub struct PythonRun {
    /// The image.
    pub image: PythonImage,
    /// Daemon (snapshot) or plain start.
    pub start: Start,
}

/// A whole session from a manifest file, as the `zerovm` command runs it: load
/// and check the manifest, read and validate the program (in this process),
/// then run it in a worker process of a one-worker [`Pool`],
/// the same isolated path every run takes. Every failure becomes an
/// [`Outcome`] with ZeroVM's exit state. `ZEROVM_CACHE_DIR` names the
/// on-disk cache of compiled modules (a private temporary one otherwise).
///
/// A manifest whose program is an installed Python image's module (as
/// `zvsh --zvm-save-dir` saves one for a Python run) replays that Python
/// run, its start from the NVRAM ([`crate::python::start_from_env`]): the
/// module alone is a snapshot that cannot run outside its image.
pub fn run_manifest_file(path: &Path, options: RunOptions) -> Outcome {
    let manifest = match Manifest::load(path) {
        Ok(m) => m,
        Err(e) => return Outcome::failed(Validation::NotValidated, Ending::from(&e), None),
    };
    let channels = match manifest.check(&manifest::StdHost) {
        Ok(c) => c,
        Err(e) => return Outcome::failed(Validation::NotValidated, Ending::from(&e), None),
    };
    let mut session = Session::from_manifest(&manifest, channels);
    if options.skip_validation {
        session.validation = Validation::NotValidated;
    }
    session.prevalidate = options.prevalidate;
    let python = match options.python.clone() {
        Some(py) => Some(py),
        None => match PythonImage::of_module(Path::new(&manifest.program)) {
            None => None,
            Some(Ok(image)) => {
                let nvram = nvram_of(&session);
                let env = nvram.env.iter().map(|v| (&*v.name, &*v.value));
                let start = crate::python::start_from_env(env);
                Some(PythonRun { image, start })
            }
            Some(Err(e)) => {
                return Outcome::failed(
                    Validation::NotValidated,
                    Ending::Failed {
                        errno: errno::ENOENT,
                        message: "program open error".into(),
                    },
                    Some(format!(
                        "{} is a module of an installed image, which cannot be opened: {e}",
                        manifest.program
                    )),
                )
            }
        },
    };
    let worker_program = match options.worker_program.clone().or_else(|| {
        std::env::current_exe()
            .ok()
            .map(|exe| exe.with_file_name("zerovm"))
    }) {
        Some(p) => p,
        None => return internal("cannot find the zerovm binary for the worker".into()),
    };
    let mut config = PoolConfig::new(worker_program);
    config.workers = 1;
    config.queue = 0;
    config.engine.cache_dir = match &python {
        Some(py) => Some(py.image.cache_dir.clone()),
        None => std::env::var_os("ZEROVM_CACHE_DIR").map(Into::into),
    };
    let pool = match Pool::start(config) {
        Ok(p) => p,
        Err(e) => return internal(format!("worker pool: {e}")),
    };
    let program = match &python {
        // Compiled at install: nothing to load here unless the cache lost it.
        Some(py) => {
            let sha256 = py.image.module(py.start).0;
            pool.engine()
                .ensure_artifact(sha256, || py.image.program(pool.engine(), py.start))
                .map(|_| ProgramRef { sha256 })
        }
        None => match std::fs::read(&manifest.program) {
            Ok(wasm) => pool.program_ref(&wasm),
            Err(e) => {
                return Outcome::failed(
                    Validation::NotValidated,
                    Ending::Failed {
                        errno: errno::ENOENT,
                        message: "program open error".into(),
                    },
                    Some(e.to_string()),
                )
            }
        },
    };
    let program = match program {
        Ok(p) => p,
        Err(e) => {
            return Outcome::failed(
                Validation::Failed,
                Ending::ValidationFailed,
                Some(e.to_string()),
            )
        }
    };
    if let Some(py) = &python {
        // The image rewrites the job's command line, which is in the NVRAM.
        let (args, env) = engine::command_line(&session, &nvram_of(&session));
        session.args = Some(args);
        session.env = Some(env);
        py.image.apply(&mut session, py.start);
    }
    let validation = session.validation;
    match pool.run(Job { program, session }) {
        Ok(outcome) => outcome,
        Err(e) => Outcome::failed(
            validation,
            Ending::Failed {
                errno: errno::EFAULT,
                message: String::new(),
            },
            Some(e.to_string()),
        ),
    }
}

/// A failure of ours, before the session could start.
fn internal(detail: String) -> Outcome {
    Outcome::failed(
        Validation::NotValidated,
        Ending::Failed {
            errno: errno::EFAULT,
            message: String::new(),
        },
        Some(detail),
    )
}

/// The NVRAM the session's readable [`engine::NVRAM_ALIAS`] channel holds
/// when its source is a regular host file (a stream is not read here: that
/// would take its bytes from the run), read leniently as the engine will;
/// empty otherwise, or when it cannot be read here (the run then reports
/// why).
pub fn nvram_of(session: &Session) -> Nvram {
    let path = session
        .channels
        .iter()
        .find(|c| c.alias == engine::NVRAM_ALIAS && c.limits.readable())
        .and_then(|c| match c.sources.first() {
            Some(CheckedSource::Local {
                path,
                kind: LocalKind::Regular { .. },
            }) => Some(path.clone()),
            _ => None,
        });
    path.and_then(|p| std::fs::read(p).ok())
        .map(|text| Nvram::parse_lenient(&text).0)
        .unwrap_or_default()
}
