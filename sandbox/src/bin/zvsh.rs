//! `zvsh [options] COMMAND [ARGS…]`: runs a wasm program like a local command
//! (spec/zerovm.md §11). The manifest and NVRAM come from `sandbox::cli::zvsh`;
//! this file probes the host, writes them into a session directory (a
//! private temporary one, or `--zvm-save-dir`, kept), runs the program exactly
//! as `zerovm` does (`run_manifest_file`: in an isolated `zerovm --worker`
//! process beside this binary), and exits with
//! zvsh's exit code. On a zerovm failure stderr says why (a timeout in one
//! line: `timed out after N s` and how to raise the limit; otherwise the
//! exit state, the detail and `ERROR: ZeroVM return code is <n>`); with
//! `--zvm-verbose` the generated manifest and NVRAM and the report come
//! first, as the original always printed them.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use sandbox::cli::zvsh::{self, Config, Host, Plan, Stream, ZvshError};
use sandbox::cli::{self, run_manifest_file, PythonRun, RunOptions};
use sandbox::errno;
use sandbox::image::{self, ImageStore};
use sandbox::manifest::{HostKind, HostProbe, StdHost};
use sandbox::python::{self, PythonImage, Start};
use sandbox::report::{zvsh_exit_code, Ending};
use sandbox::tar::TarImage;

struct RealHost {
    cwd: String,
}

impl Host for RealHost {
    fn cwd(&self) -> String {
        self.cwd.clone()
    }

    /// Only regular files: opening a FIFO to test it would block, and a
    /// stream channel cannot be read-write anyway.
    fn writable(&self, path: &str) -> bool {
        matches!(StdHost.probe(path), Some(HostKind::Regular { .. }))
            && std::fs::OpenOptions::new().write(true).open(path).is_ok()
    }

    fn image_has(&self, image: &str, member: &str) -> bool {
        image_member(image, member).is_some()
    }

    fn streams(&self) -> [Stream; 3] {
        let kind = |p: &str| StdHost.probe(p);
        let stream_like = |k| matches!(k, Some(HostKind::CharDevice | HostKind::Fifo));
        [
            Stream {
                direct: stream_like(kind("/dev/stdin"))
                    || matches!(kind("/dev/stdin"), Some(HostKind::Regular { .. })),
                tty: std::io::stdin().is_terminal(),
            },
            Stream {
                direct: stream_like(kind("/dev/stdout")),
                tty: std::io::stdout().is_terminal(),
            },
            Stream {
                direct: stream_like(kind("/dev/stderr")),
                tty: std::io::stderr().is_terminal(),
            },
        ]
    }
}

/// The bytes of a regular-file member of a tar image.
fn image_member(image: &str, member: &str) -> Option<Vec<u8>> {
    let bytes = std::fs::read(image).ok()?;
    let tar = TarImage::new(bytes).ok()?;
    let entry = tar.get(member.trim_start_matches("./"))?;
    if entry.is_dir() {
        return None;
    }
    Some(tar.contents(entry).to_vec())
}

fn load_config() -> Result<Config, ZvshError> {
    let mut config = Config::default();
    for name in zvsh::CONFIG_FILES {
        let path = match name.strip_prefix("~/") {
            Some(rest) => match std::env::var_os("HOME") {
                Some(home) => Path::new(&home).join(rest),
                None => continue,
            },
            None => PathBuf::from(name),
        };
        if let Ok(text) = std::fs::read_to_string(&path) {
            config.read(&path.display().to_string(), &text)?;
        }
    }
    Ok(config)
}

/// When the command names a system image rather than a file (`python3`,
/// `python`, `python2.7`), the installed image from `$ZEROCLOUD_IMAGES`
/// (default `./zerocloud-data/images`).
fn system_image(inv: &zvsh::Invocation) -> Result<Option<PythonImageRun>, ZvshError> {
    if Path::new(&inv.command).exists() || image::find_spec(&inv.command).is_err() {
        return Ok(None);
    }
    let dir = sandbox::cli::images_dir();
    let installed = ImageStore::at(dir.clone())
        .resolve(&inv.command)
        .map_err(|e| {
            ZvshError::Refused(match e {
                // Said once, with the directory zvsh looked in.
                image::ImageError::NotInstalled { name, dir } => format!(
                    "{}: the {name} image is not installed in {}; install it with \
                     `zerocloud image install {name} --images-dir {}`",
                    inv.command,
                    dir.display(),
                    dir.display()
                ),
                e => format!("{}: {e}", inv.command),
            })
        })?;
    let image = PythonImage::open(&installed)
        .map_err(|e| ZvshError::Refused(format!("{}: {e}", inv.command)))?;
    Ok(Some(PythonImageRun {
        program: image
            .daemon
            .clone()
            .unwrap_or_else(|| image.plain.clone())
            .1,
        run: PythonRun {
            image,
            start: Start::Daemon,
        },
    }))
}

struct PythonImageRun {
    /// The module file named in the manifest.
    program: PathBuf,
    run: PythonRun,
}

/// Writes the plan's files into the session directory.
fn prepare(plan: &Plan) -> Result<(), String> {
    let write = |path: &str, bytes: &[u8]| {
        std::fs::write(path, bytes).map_err(|e| format!("cannot write {path}: {e}"))
    };
    write(&plan.manifest_path, plan.manifest_text.as_bytes())?;
    write(&plan.nvram_path, plan.nvram_text.as_bytes())?;
    if let Some(boot) = &plan.boot {
        let bytes = image_member(&boot.image, &boot.member)
            .ok_or_else(|| format!("cannot extract {} from {}", boot.member, boot.image))?;
        write(&boot.path, &bytes)?;
    }
    if let Some(path) = &plan.stdin_file {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read stdin: {e}"))?;
        write(path, &bytes)?;
    }
    Ok(())
}

fn copy_out(path: &Option<String>, to: &mut dyn Write) {
    if let Some(path) = path {
        if let Ok(bytes) = std::fs::read(path) {
            let _ = to.write_all(&bytes);
            let _ = to.flush();
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match real_main(&args) {
        Ok(code) => ExitCode::from((code & 0xff) as u8),
        Err(ZvshError::Usage(why)) => {
            eprintln!("zvsh: {why}");
            eprint!("{}", zvsh::USAGE);
            ExitCode::from(errno::EINVAL as u8)
        }
        Err(ZvshError::Refused(why)) => {
            eprintln!("zvsh: {why}");
            ExitCode::from(errno::EINVAL as u8)
        }
    }
}

fn real_main(args: &[String]) -> Result<i32, ZvshError> {
    let inv = zvsh::parse_args(args)?;
    if inv.help || inv.version {
        let text = if inv.help {
            zvsh::help()
        } else {
            zvsh::version()
        };
        print!("{text}");
        return Ok(0);
    }
    let config = load_config()?;
    let refused = |what: String| ZvshError::Refused(what);
    let cwd = std::env::current_dir()
        .map_err(|e| refused(format!("no current directory: {e}")))?
        .to_str()
        .ok_or_else(|| refused("the current directory is not UTF-8".into()))?
        .to_string();
    zvsh::check_at_files(&inv, &cwd, |path| Path::new(path).exists())?;
    // `--zvm-save-dir` keeps the manifest and NVRAM; else a private (0700)
    // temporary directory, removed when the session is over.
    let (dir, _temporary) = match &inv.save_dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| refused(format!("cannot create {d}: {e}")))?;
            (PathBuf::from(zvsh::absolute(&cwd, d)), None)
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("zvsh.")
                .tempdir()
                .map_err(|e| refused(format!("no temporary directory: {e}")))?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    session(&inv, &config, &dir, &cwd)
}

fn session(
    inv: &zvsh::Invocation,
    config: &Config,
    dir: &Path,
    cwd: &str,
) -> Result<i32, ZvshError> {
    let dir_text = dir
        .to_str()
        .ok_or_else(|| ZvshError::Refused("the session directory is not UTF-8".into()))?;
    let host = RealHost { cwd: cwd.into() };
    let python = system_image(inv)?;
    let mut inv = inv.clone();
    if let Some(py) = &python {
        inv.command = py.program.to_string_lossy().into_owned();
    }
    let plan = zvsh::plan(&inv, config, dir_text, &host)?;
    prepare(&plan).map_err(ZvshError::Refused)?;
    let options = RunOptions {
        python: python.map(|mut py| {
            let env = plan.nvram.env.iter();
            py.run.start = python::start_from_env(env.map(|v| (&*v.name, &*v.value)));
            py.run
        }),
        ..RunOptions::default()
    };
    let outcome = run_manifest_file(Path::new(&plan.manifest_path), options);
    let report = outcome.report.render();
    let _ = std::fs::write(&plan.report_path, &report);
    copy_out(&plan.stdout_file, &mut std::io::stdout());
    copy_out(&plan.stderr_file, &mut std::io::stderr());
    let status = outcome.exit_code();
    if status != 0 {
        let mut err = std::io::stderr().lock();
        if inv.verbose {
            for (path, text) in [
                (&plan.manifest_path, &plan.manifest_text),
                (&plan.nvram_path, &plan.nvram_text),
            ] {
                let _ = writeln!(err, "{path}:\n{text}");
            }
            let _ = write!(err, "report:\n{report}");
        }
        if outcome.ending == Ending::Timeout && !inv.verbose {
            let _ = writeln!(
                err,
                "zvsh: {}",
                cli::timed_out(plan.manifest.timeout, cli::RAISE_IN_ZVSH_CFG)
            );
        } else {
            let _ = writeln!(err, "zvsh: {}", outcome.ending.exit_state());
            if let Some(detail) = &outcome.detail {
                let _ = writeln!(err, "zvsh: {detail}");
            }
            let _ = writeln!(err, "ERROR: ZeroVM return code is {status}");
        }
    }
    Ok(zvsh_exit_code(outcome.report.user_code, status, inv.getrc))
}
