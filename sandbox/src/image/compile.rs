//! Post-install steps: the plain module compiled into the store's cache
//! for every image, then the hooks the image's spec names
//! ([`super::PostInstall`]); and [`ticking`], which runs a long step with
//! progress.

use std::fs;
use std::io;
use std::time::{Duration, Instant, SystemTime};

use super::{io_at, ImageError, ImageSpec, InstalledImage, Progress, STEP_COMPILED_PLAIN};
use crate::channel::hex;
use crate::engine::{Engine, EngineConfig};

/// Runs the post-install steps of a freshly (or already) installed image:
/// compiles the plain module into the store's compile cache (about 40 s and
/// 2 GB for Python), recorded as [`STEP_COMPILED_PLAIN`], then builds and
/// runs the spec's own [`PostInstall`](super::PostInstall) steps (Python:
/// building and compiling the daemon snapshot, about a minute more). A step
/// already recorded for the same module whose output is still there is
/// skipped. Under the install lock
/// ([`ImageStore::install_and_prepare`](super::ImageStore::install_and_prepare)).
pub(super) fn post_install(
    spec: &ImageSpec,
    image: &InstalledImage,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), ImageError> {
    compile_plain(image, progress)?;
    for step in &spec.post_install {
        (step.run)(image, progress)?;
    }
    Ok(())
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
