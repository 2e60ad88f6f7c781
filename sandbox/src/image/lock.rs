//! One installer at a time per images directory: a `flock` on
//! `<dir>/.install.lock`.

use std::fs::{self, File};
use std::io;

use super::{io_at, ticking, ImageError, ImageStore, Progress};

/// The install lock's file in an images directory.
pub(super) const LOCK_FILE: &str = ".install.lock";

/// Held while installing into an [`ImageStore`] ([`ImageStore::exclusive`]).
#[derive(Debug)]
pub struct InstallLock {
    _file: Option<fs::File>,
}

impl ImageStore {
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
        fs::create_dir_all(self.dir()).map_err(io_at(self.dir()))?;
        let path = self.dir().join(LOCK_FILE);
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
                let step = format!("wait for another install into {}", self.dir().display());
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
