//! The agent's system images: the Python image sessions run in, the
//! background install `zerocloud up` starts, and what a session that needs
//! an image is told while it is not ready (503, how far the install is).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sandbox::image::{self, ImageStore, Progress, ProgressDisplay};
use sandbox::python::{PythonImage, Start};
use tracing::warn;

/// Names a job may give the Python image (`file://python2.7:python`, the
/// `python2.7` device): those the image records as its name and aliases.
pub const PYTHON: &str = "python";

/// What a session is told when an image cannot be used now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    pub message: String,
    /// Seconds after which trying again may succeed (an install running).
    pub retry_after: Option<u64>,
}

enum State {
    /// Not looked at yet, or not installed and no install running.
    Idle,
    /// The background install runs; the last thing it reported.
    Installing { step: String, since: Instant },
    /// The background install failed.
    Failed(String),
}

/// The images of one agent.
pub struct Images {
    store: ImageStore,
    state: Mutex<State>,
    python: Mutex<Option<Arc<PythonImage>>>,
}

impl Images {
    pub fn new(dir: PathBuf) -> Images {
        Images {
            store: ImageStore::at(dir),
            state: Mutex::new(State::Idle),
            python: Mutex::new(None),
        }
    }

    pub fn store(&self) -> &ImageStore {
        &self.store
    }

    /// Whether `name` is a name or alias of the Python image.
    pub fn is_python(name: &str) -> bool {
        image::find_spec(name).is_ok_and(|spec| spec.name == PYTHON)
    }

    /// The installed Python image, ready for daemon-mode sessions (its
    /// snapshot built and compiled), or why not.
    pub fn python(&self) -> Result<Arc<PythonImage>, Unavailable> {
        if let Some(p) = lock(&self.python).as_ref() {
            return Ok(p.clone());
        }
        match &*lock(&self.state) {
            State::Installing { step, since } => {
                return Err(Unavailable {
                    message: format!(
                        "The python image is still being installed on this storage node \
                         ({step}; started {} s ago). Try again shortly.",
                        since.elapsed().as_secs()
                    ),
                    retry_after: Some(30),
                })
            }
            State::Failed(e) => {
                return Err(Unavailable {
                    message: format!(
                        "The python image could not be installed on this storage node: {e}"
                    ),
                    retry_after: None,
                })
            }
            State::Idle => {}
        }
        let not_ready = |why: String| Unavailable {
            message: format!("The python image is not ready on this storage node: {why}"),
            retry_after: None,
        };
        let installed = self
            .store
            .resolve(PYTHON)
            .map_err(|e| not_ready(e.to_string()))?;
        let python = PythonImage::open(&installed).map_err(|e| not_ready(e.to_string()))?;
        if python.start(Start::Daemon) != Start::Daemon {
            return Err(not_ready(format!(
                "its daemon snapshot is not built; finish it with `zerocloud image install \
                 python --images-dir {}`",
                self.store.dir().display()
            )));
        }
        let python = Arc::new(python);
        *lock(&self.python) = Some(python.clone());
        Ok(python)
    }

    /// Installs every known image missing from the store (or with a
    /// post-install step left), in a background thread, with progress on
    /// stderr as plain lines (they share it with the request log).
    /// Sessions that need an image meanwhile get 503 with the last step.
    pub fn install_missing(self: &Arc<Self>) {
        *lock(&self.state) = State::Installing {
            step: "starting".into(),
            since: Instant::now(),
        };
        let me = self.clone();
        let work = move || {
            for spec in image::known_images() {
                let mut display: Option<ProgressDisplay<std::io::Stderr>> = None;
                let result = me
                    .store
                    .install_and_prepare(&spec.name, None, &mut |p: Progress| {
                        if let State::Installing { step, .. } = &mut *lock(&me.state) {
                            *step = describe(&p);
                        }
                        let nothing_to_do = matches!(
                            p,
                            Progress::AlreadyInstalled { .. } | Progress::AlreadyDone { .. }
                        );
                        if display.is_none() && nothing_to_do {
                            return;
                        }
                        display
                            .get_or_insert_with(|| {
                                eprintln!(
                                    "zerocloud: preparing the {} image in {} (the first time: a \
                                     ~100 MB download and a few minutes of compiling; the Swift \
                                     API is already up)",
                                    spec.name,
                                    me.store.dir().display()
                                );
                                ProgressDisplay::new(std::io::stderr(), false)
                            })
                            .show(&p);
                    });
                if let Some(d) = display.as_mut() {
                    d.finish();
                }
                match result {
                    Ok(img) => {
                        eprintln!(
                            "zerocloud: image {} {} ready in {}",
                            img.name(),
                            img.version(),
                            img.dir.display()
                        );
                    }
                    Err(e) => {
                        eprintln!(
                            "zerocloud: image {} not ready: {e:#}\n  Swift requests work; jobs \
                             that need it cannot run until `zerocloud image install {} \
                             --images-dir {}` succeeds",
                            spec.name,
                            spec.name,
                            me.store.dir().display()
                        );
                        *lock(&me.state) = State::Failed(e.to_string());
                        return;
                    }
                }
            }
            *lock(&me.state) = State::Idle;
        };
        if let Err(e) = std::thread::Builder::new()
            .name("image-install".into())
            .spawn(work)
        {
            warn!("cannot start the image install: {e}");
            *lock(&self.state) = State::Failed(format!("cannot start the install: {e}"));
        }
    }
}

/// One line for a 503: what the install is doing.
fn describe(p: &Progress) -> String {
    match p {
        Progress::Download { requirement } => format!("downloading {requirement}"),
        Progress::Verify { file } => format!("verifying {file}"),
        Progress::Unpack { file, bytes, total } => format!(
            "unpacking {file}: {} of {}",
            image::human_bytes(*bytes),
            image::human_bytes(*total)
        ),
        Progress::Working { step, elapsed } => {
            format!("{step}, {} s so far", elapsed.as_secs())
        }
        Progress::Done { step, .. } => format!("{step} done"),
        Progress::AlreadyDone { step } => format!("{step} done"),
        Progress::Installed { name, .. } | Progress::AlreadyInstalled { name, .. } => {
            format!("{name} unpacked, preparing it")
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
