//! sandbox: per-run time (p50/p99) of C guests — `hello` and `wc` over a
//! 1 MiB channel — run (a) in process with the module already prepared
//! (`Engine::run`, a thread per run, and `Engine::run_on_current_thread`,
//! with file-backed and in-memory channels), (b) by the `zerovm` binary as a
//! new process per run (with a warm `ZEROVM_CACHE_DIR`, and without one, which
//! compiles the module every run), and (c) the same C programs compiled
//! natively, as processes, and (d) under bubblewrap when it is installed.
//! Every row checks the program's output; times are printed, never judged
//! beyond the summary line. Build the guests with
//! `sandbox/build-guests.sh DIR --native`; `bench/sandbox.sh` does it all.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use sandbox::channel::{shared, SharedBuffer};
use sandbox::engine::{Engine, EngineConfig, Program, Session};
use sandbox::manifest::{Manifest, StdHost};

#[derive(Parser)]
#[command(about = "Per-run time of C guests: in process, zerovm process, native, bwrap")]
struct Args {
    /// Directory with hello.wasm, wc.wasm, hello.native, wc.native
    /// (`sandbox/build-guests.sh DIR --native`)
    #[arg(long)]
    guests: PathBuf,
    /// Timed runs per row (after a few warm-up runs)
    #[arg(long, default_value_t = 200)]
    runs: usize,
    /// The zerovm binary (default: next to this one)
    #[arg(long)]
    zerovm: Option<PathBuf>,
    /// The bwrap binary (default: `bwrap` on PATH; rows skipped without it)
    #[arg(long)]
    bwrap: Option<PathBuf>,
    /// Size of wc's input in bytes
    #[arg(long, default_value_t = 1 << 20)]
    wc_bytes: usize,
    /// Where the channel files live (default: $TMPDIR or /tmp). Each run
    /// writes a new output file (see `measure_fresh`).
    #[arg(long)]
    workdir: Option<PathBuf>,
}

const WARMUP: usize = 5;

/// One guest program and its input.
struct Workload {
    label: String,
    stem: &'static str,
    input: Vec<u8>,
    expected: Vec<u8>,
}

/// The files a workload runs with, in its own directory.
struct Setup {
    dir: PathBuf,
    manifest: PathBuf,
    session: Session,
    program: std::sync::Arc<Program>,
    native: PathBuf,
}

impl Setup {
    fn input(&self) -> PathBuf {
        self.dir.join("in")
    }

    fn output(&self) -> PathBuf {
        self.dir.join("out")
    }

    fn check_output(&self, w: &Workload, what: &str) -> Result<()> {
        let out = std::fs::read(self.output()).with_context(|| format!("{what}: no output"))?;
        ensure!(
            out == w.expected,
            "{what}: {} printed {:?}, expected {:?}",
            w.stem,
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&w.expected)
        );
        std::fs::remove_file(self.output())?;
        Ok(())
    }
}

fn manifest_text(dir: &Path, stem: &str) -> String {
    let d = dir.display();
    format!(
        "Version = 20130611\nTimeout = 10\nMemory = 67108864,0\nProgram = {d}/{stem}.wasm\n\
         Channel = {d}/in,/dev/stdin,0,0,100000,1000000000,0,0\n\
         Channel = {d}/out,/dev/stdout,0,0,0,0,100000,1000000000\n\
         Channel = {d}/err,/dev/stderr,0,0,0,0,1000,1000000\n"
    )
}

fn setup(engine: &Engine, guests: &Path, root: &Path, w: &Workload) -> Result<Setup> {
    let dir = root.join(w.stem);
    std::fs::create_dir_all(&dir)?;
    let wasm_path = guests.join(format!("{}.wasm", w.stem));
    let wasm = std::fs::read(&wasm_path)
        .with_context(|| format!("{} (run sandbox/build-guests.sh)", wasm_path.display()))?;
    std::fs::write(dir.join(format!("{}.wasm", w.stem)), &wasm)?;
    std::fs::write(dir.join("in"), &w.input)?;
    let text = manifest_text(&dir, w.stem);
    let manifest = dir.join("manifest");
    std::fs::write(&manifest, &text)?;
    let m = Manifest::parse(text.as_bytes()).map_err(|e| anyhow::anyhow!("manifest: {e}"))?;
    let channels = m
        .check(&StdHost)
        .map_err(|e| anyhow::anyhow!("manifest: {e}"))?;
    let session = Session::from_manifest(&m, channels);
    let program = engine
        .prepare(&wasm)
        .map_err(|e| anyhow::anyhow!("{}: {e}", wasm_path.display()))?;
    let native = guests.join(format!("{}.native", w.stem));
    ensure!(native.is_file(), "{} missing", native.display());
    Ok(Setup {
        dir,
        manifest,
        session,
        program,
        native,
    })
}

/// Runs `f` WARMUP + `runs` times and returns the timed durations.
fn measure(runs: usize, f: impl FnMut() -> Result<()>) -> Result<Vec<Duration>> {
    measure_fresh(runs, None, f)
}

/// Like [`measure`], removing `fresh` (untimed) before every run: each run
/// writes a new output file, as a server giving each request its own file
/// would. Truncating last run's output instead (a write-only channel is
/// opened with O_TRUNC) costs 1–4 ms on ext4, whose auto_da_alloc starts a
/// writeback at close that the next truncation waits for.
fn measure_fresh(
    runs: usize,
    fresh: Option<&Path>,
    mut f: impl FnMut() -> Result<()>,
) -> Result<Vec<Duration>> {
    let prep = || -> Result<()> {
        if let Some(p) = fresh {
            match std::fs::remove_file(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    };
    for _ in 0..WARMUP {
        prep()?;
        f()?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        prep()?;
        let t = Instant::now();
        f()?;
        times.push(t.elapsed());
    }
    Ok(times)
}

struct Row {
    workload: String,
    how: String,
    times: Vec<Duration>,
}

impl Row {
    fn percentile(&self, p: f64) -> Duration {
        bench::percentile(&self.times, p)
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn run_process(mut cmd: Command, input: &Path, output: &Path) -> Result<()> {
    let status = cmd
        .stdin(File::open(input)?)
        .stdout(File::create(output)?)
        .stderr(Stdio::inherit())
        .status()
        .with_context(|| format!("{cmd:?}"))?;
    ensure!(status.success(), "{cmd:?}: {status}");
    Ok(())
}

fn zerovm_once(zerovm: &Path, manifest: &Path, cache: Option<&Path>) -> Result<()> {
    let mut cmd = Command::new(zerovm);
    cmd.arg(manifest);
    match cache {
        Some(c) => cmd.env("ZEROVM_CACHE_DIR", c),
        None => cmd.env_remove("ZEROVM_CACHE_DIR"),
    };
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("{}", zerovm.display()))?;
    let report = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && report.lines().nth(5) == Some("ok"),
        "zerovm: {}: {report}",
        out.status
    );
    Ok(())
}

fn in_process(engine: &Engine, s: &Setup, session: &Session, current_thread: bool) -> Result<()> {
    let outcome = if current_thread {
        engine.run_on_current_thread(&s.program, session)
    } else {
        engine.run(&s.program, session)
    };
    ensure!(
        outcome.exit_code() == 0 && outcome.report.user_code == 0,
        "{}: {:?}",
        outcome.ending.exit_state(),
        outcome.detail
    );
    Ok(())
}

fn bench_workload(
    args: &Args,
    engine: &Engine,
    zerovm: &Path,
    bwrap: Option<&Path>,
    root: &Path,
    w: &Workload,
) -> Result<Vec<Row>> {
    let s = setup(engine, &args.guests, root, w)?;
    let n = args.runs;
    let mut rows = Vec::new();
    let mut row = |how: &str, times: Vec<Duration>| {
        eprintln!("  {} / {how}: done", w.label);
        rows.push(Row {
            workload: w.label.clone(),
            how: how.to_string(),
            times,
        });
    };

    // (a) in process, module prepared.
    let out_file = s.output();
    let fresh = Some(out_file.as_path());
    let times = measure_fresh(n, fresh, || in_process(engine, &s, &s.session, false))?;
    s.check_output(w, "Engine::run")?;
    row("in-process Engine::run (thread/run)", times);

    let stack = engine.run_thread_stack();
    let times = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .stack_size(stack)
            .spawn_scoped(scope, || {
                measure_fresh(n, fresh, || in_process(engine, &s, &s.session, true))
            })
            .map_err(anyhow::Error::from)?
            .join()
            .map_err(|_| anyhow::anyhow!("run thread panicked"))?
    })?;
    s.check_output(w, "run_on_current_thread")?;
    row("in-process run_on_current_thread", times);

    // Same, channels in memory (no host files opened).
    let mut mem = s.session.clone();
    let out: SharedBuffer = shared(Vec::new());
    mem.buffers.insert("/dev/stdout".into(), out.clone());
    mem.buffers.insert("/dev/stderr".into(), shared(Vec::new()));
    let input = w.input.clone();
    let times = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .stack_size(stack)
            .spawn_scoped(scope, || {
                measure(n, || {
                    mem.buffers
                        .insert("/dev/stdin".into(), shared(input.clone()));
                    out.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clear();
                    in_process(engine, &s, &mem, true)
                })
            })
            .map_err(anyhow::Error::from)?
            .join()
            .map_err(|_| anyhow::anyhow!("run thread panicked"))?
    })?;
    {
        let got = out.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        ensure!(
            *got == w.expected,
            "in-memory run printed {:?}",
            String::from_utf8_lossy(&got)
        );
    }
    row("in-process run_on_current_thread, memory chans", times);

    // (b) zerovm, a process per run.
    let cache = s.dir.join("cwasm-cache");
    let times = measure_fresh(n, fresh, || zerovm_once(zerovm, &s.manifest, Some(&cache)))?;
    s.check_output(w, "zerovm")?;
    row("zerovm process, warm ZEROVM_CACHE_DIR", times);
    let few = (n / 10).max(10);
    let times = measure_fresh(few, fresh, || zerovm_once(zerovm, &s.manifest, None))?;
    s.check_output(w, "zerovm (no cache)")?;
    row("zerovm process, no cache (compiles/run)", times);

    // (c) native.
    let times = measure_fresh(n, fresh, || {
        run_process(Command::new(&s.native), &s.input(), &s.output())
    })?;
    s.check_output(w, "native")?;
    row("native process (static gcc -O2)", times);

    // (d) native under bubblewrap.
    if let Some(bwrap) = bwrap {
        let times = measure_fresh(n, fresh, || {
            let mut cmd = Command::new(bwrap);
            cmd.args([
                "--unshare-all",
                "--die-with-parent",
                "--new-session",
                "--ro-bind",
            ])
            .arg(&s.native)
            .args(["/prog", "/prog"]);
            run_process(cmd, &s.input(), &s.output())
        })?;
        s.check_output(w, "bwrap")?;
        row("native under bwrap --unshare-all", times);
    }
    Ok(rows)
}

/// Deterministic text: words, spaces, tabs, newlines.
fn text(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x: u32 = 12345;
    while out.len() < len {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let r = (x >> 16) % 100;
        out.push(match r {
            0..=11 => b' ',
            12 => b'\t',
            13..=15 => b'\n',
            _ => b'a' + (r % 26) as u8,
        });
    }
    out
}

fn wc(bytes: &[u8]) -> Vec<u8> {
    let lines = bytes.iter().filter(|&&b| b == b'\n').count();
    let words = bytes
        .split(|b| b" \t\n\x0b\x0c\r".contains(b))
        .filter(|w| !w.is_empty())
        .count();
    format!("{lines} {words} {}\n", bytes.len()).into_bytes()
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let zerovm = match &args.zerovm {
        Some(z) => z.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no parent directory")?
            .join("zerovm"),
    };
    if !zerovm.is_file() {
        bail!(
            "{} missing: cargo build --release -p sandbox",
            zerovm.display()
        );
    }
    let bwrap = args.bwrap.clone().or_else(|| find_on_path("bwrap"));
    let engine =
        Engine::new(EngineConfig::default()).map_err(|e| anyhow::anyhow!("engine: {e}"))?;
    let workdir = args.workdir.clone().unwrap_or_else(std::env::temp_dir);
    let root = tempfile::tempdir_in(&workdir)
        .with_context(|| format!("a temporary directory in {}", workdir.display()))?;
    let input = text(args.wc_bytes);
    let workloads = [
        Workload {
            label: "C hello".into(),
            stem: "hello",
            input: Vec::new(),
            expected: b"hello, world\n".to_vec(),
        },
        Workload {
            label: format!("C wc {} KiB", args.wc_bytes / 1024),
            stem: "wc",
            expected: wc(&input),
            input,
        },
    ];
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!(
        "sandbox bench: {} runs per row (+{WARMUP} warm-up), {cores} cores, load {}, channel files in {}",
        args.runs,
        load.join(" "),
        workdir.display()
    );
    println!(
        "zerovm {}, bwrap {}",
        zerovm.display(),
        bwrap
            .as_deref()
            .map_or("not installed".into(), |b| b.display().to_string())
    );
    let mut rows = Vec::new();
    for w in &workloads {
        rows.extend(bench_workload(
            &args,
            &engine,
            &zerovm,
            bwrap.as_deref(),
            root.path(),
            w,
        )?);
    }
    println!(
        "{:<14} {:<50} {:>5} {:>11} {:>11}",
        "workload", "how", "runs", "p50", "p99"
    );
    for r in &rows {
        println!(
            "{:<14} {:<50} {:>5} {:>11} {:>11}",
            r.workload,
            r.how,
            r.times.len(),
            ms(r.percentile(0.50)),
            ms(r.percentile(0.99))
        );
    }
    if bwrap.is_none() {
        println!("(bwrap rows skipped: bubblewrap not installed; bench/sandbox.sh installs it)");
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load at the end: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    if let Some(r) = rows
        .iter()
        .find(|r| r.workload == "C hello" && r.how.starts_with("in-process run_on_current_thread"))
    {
        let p50 = r.percentile(0.5);
        println!(
            "goal: in-process C hello p50 <= 1 ms (ZeroVM claimed ~5 ms/session): {} ({})",
            ms(p50),
            if p50 <= Duration::from_millis(1) {
                "met"
            } else {
                "not met"
            }
        );
    }
    Ok(())
}
