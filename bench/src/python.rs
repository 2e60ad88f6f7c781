//! `python`: per-run time of a script using json, sqlite3 and numpy, run
//! through the worker pool with the daemon snapshot, through the pool with
//! the plain start, and as native `python3` processes; at concurrency 1 and
//! 2, with runs/s; plus the pool's resident memory idle and under load.
//! The snapshot rows are also measured with workers that do not keep the
//! memory resident (`--no-resident` workers, a second pool), unless
//! `--no-compare`. Prints figures; asserts nothing about time.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use sandbox::channel;
use sandbox::engine::{EngineConfig, Session};
use sandbox::image::ImageStore;
use sandbox::pool::{Job, Pool, PoolConfig, ProgramRef};
use sandbox::python::{self, PythonImage, Start};

/// The workload: all three modules doing a little real work.
const SCRIPT: &str = r#"
import json, sqlite3
import numpy as np
db = sqlite3.connect(':memory:')
db.execute('create table t (k integer, v text)')
db.executemany('insert into t values (?, ?)', [(i, str(i * i)) for i in range(100)])
rows = db.execute('select count(*), sum(k) from t').fetchone()
a = np.arange(1000, dtype=np.float64)
print(json.dumps({'rows': rows, 'mean': float(a.mean()), 'dot': float(a @ a)}))
"#;

const EXPECTED: &str = "{\"rows\": [100, 4950], \"mean\": 499.5, \"dot\": 332833500.0}\n";

#[derive(Parser, Debug)]
#[command(about = "Python run time: pool + snapshot, pool + plain, native python3")]
struct Args {
    /// Images dir with python installed (default: $ZEROCLOUD_IMAGES).
    #[arg(long, env = "ZEROCLOUD_IMAGES")]
    images: PathBuf,
    /// The zerovm binary (worker processes).
    #[arg(long, env = "ZC_ZEROVM")]
    zerovm: PathBuf,
    /// Native python3 with numpy for the comparison rows.
    #[arg(long, default_value = "python3")]
    native_python: PathBuf,
    /// Timed runs per row for the fast rows (snapshot).
    #[arg(long, default_value_t = 200)]
    runs: usize,
    /// Timed runs per row for the slow rows (plain start, native); 0 skips
    /// them (profiling the snapshot path alone).
    #[arg(long, default_value_t = 20)]
    slow_runs: usize,
    /// Worker processes.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Skip the snapshot rows with workers that do not keep memory
    /// resident.
    #[arg(long)]
    no_compare: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let store = ImageStore::at(args.images.clone());
    let installed = store.resolve("python").context("python image")?;
    let image = PythonImage::open(&installed).context("python image")?;
    ensure!(image.daemon.is_some(), "the daemon snapshot is not built");
    let mut config = PoolConfig::new(&args.zerovm);
    config.workers = args.workers;
    config.queue = 64;
    config.engine = EngineConfig {
        cache_dir: Some(installed.cache_dir.clone()),
        ..EngineConfig::default()
    };
    let t = Instant::now();
    let pool = Pool::start(config.clone()).context("pool")?;
    println!(
        "pool: {} workers started in {:.1} ms",
        args.workers,
        t.elapsed().as_secs_f64() * 1e3
    );
    let program = |start: Start| -> Result<ProgramRef> {
        let sha256 = image.module(start).0;
        pool.engine()
            .ensure_artifact(sha256, || image.program(pool.engine(), start))
            .context("compiled module")?;
        Ok(ProgramRef { sha256 })
    };
    let daemon = program(Start::Daemon)?;
    let plain = program(Start::Plain)?;
    // Warm every worker (first use maps the artifact).
    for _ in 0..2 * args.workers {
        pool_run(&pool, &image, &daemon, Start::Daemon)?;
    }
    let idle_rss = pool.resident_bytes();

    let native_ok = Command::new(&args.native_python)
        .args(["-c", "import numpy"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);

    // The same pool without resident memory, for the comparison rows.
    let plain_pool = if args.no_compare {
        None
    } else {
        config.resident_memory = false;
        let p = Pool::start(config).context("pool without resident memory")?;
        for _ in 0..2 * args.workers {
            pool_run(&p, &image, &daemon, Start::Daemon)?;
        }
        Some(p)
    };

    let mut rows = Vec::new();
    let peak = Arc::new(Mutex::new(0u64));
    for conc in [1usize, 2] {
        rows.push(measure(
            "pool + snapshot",
            conc,
            args.runs,
            || pool_run(&pool, &image, &daemon, Start::Daemon),
            Some((&pool, &peak)),
        )?);
        if let Some(p) = &plain_pool {
            rows.push(measure(
                "  same, not resident",
                conc,
                args.runs,
                || pool_run(p, &image, &daemon, Start::Daemon),
                None,
            )?);
        }
        if args.slow_runs == 0 {
            continue;
        }
        rows.push(measure(
            "pool, plain start",
            conc,
            args.slow_runs,
            || pool_run(&pool, &image, &plain, Start::Plain),
            Some((&pool, &peak)),
        )?);
        if native_ok {
            rows.push(measure(
                "native python3 process",
                conc,
                args.slow_runs,
                || native_run(&args.native_python),
                None,
            )?);
        }
    }
    let load_rss = *peak.lock().unwrap_or_else(|p| p.into_inner());

    println!();
    println!("script: json + sqlite3 (100 rows) + numpy (1000 floats); output checked every run");
    println!(
        "{:<26} {:>4} {:>6} {:>11} {:>11} {:>9}",
        "how", "conc", "runs", "p50", "p99", "runs/s"
    );
    for r in &rows {
        println!(
            "{:<26} {:>4} {:>6} {:>11} {:>11} {:>9.1}",
            r.how,
            r.conc,
            r.times.len(),
            ms(r.percentile(0.5)),
            ms(r.percentile(0.99)),
            r.rate
        );
    }
    if !native_ok && args.slow_runs > 0 {
        println!(
            "(native rows skipped: {} has no numpy)",
            args.native_python.display()
        );
    }
    for conc in [1usize, 2] {
        let find = |how: &str| rows.iter().find(|r| r.how == how && r.conc == conc);
        if let (Some(s), Some(n)) = (find("pool + snapshot"), find("native python3 process")) {
            println!(
                "c={conc}: snapshot p50 is {:.1}x faster than native python3 spawn",
                n.percentile(0.5).as_secs_f64() / s.percentile(0.5).as_secs_f64()
            );
        }
    }
    println!(
        "pool resident memory ({} workers): idle {} MiB, under load (peak sampled) {} MiB",
        args.workers,
        idle_rss >> 20,
        load_rss.max(idle_rss) >> 20
    );
    Ok(())
}

struct Row {
    how: String,
    conc: usize,
    times: Vec<Duration>,
    rate: f64,
}

impl Row {
    fn percentile(&self, p: f64) -> Duration {
        bench::percentile(&self.times, p)
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// `runs` runs of `f` spread over `conc` threads; per-run times and runs/s.
fn measure(
    how: &str,
    conc: usize,
    runs: usize,
    f: impl Fn() -> Result<()> + Sync,
    rss: Option<(&Pool, &Arc<Mutex<u64>>)>,
) -> Result<Row> {
    let times = Mutex::new(Vec::with_capacity(runs));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let mut handles = Vec::new();
        for _ in 0..conc {
            handles.push(scope.spawn(|| -> Result<()> {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < runs {
                    let t = Instant::now();
                    f()?;
                    times
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(t.elapsed());
                    if let Some((pool, peak)) = rss {
                        let now = pool.resident_bytes();
                        let mut p = peak.lock().unwrap_or_else(|p| p.into_inner());
                        *p = (*p).max(now);
                    }
                }
                Ok(())
            }));
        }
        for h in handles {
            match h.join() {
                Ok(r) => r?,
                Err(_) => bail!("a bench thread panicked"),
            }
        }
        Ok(())
    })?;
    let elapsed = start.elapsed();
    let times = times.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok(Row {
        how: how.to_string(),
        conc,
        rate: times.len() as f64 / elapsed.as_secs_f64(),
        times,
    })
}

fn session() -> (Session, channel::SharedBuffer, channel::SharedBuffer) {
    let out = channel::shared(Vec::new());
    let err = channel::shared(Vec::new());
    let mut s = python::session_with_stdio(b"", out.clone(), err.clone());
    python::add_input(&mut s, "/dev/script.py", SCRIPT);
    s.args = Some(vec!["python3".into(), "/dev/script.py".into()]);
    s.timeout = Duration::from_secs(60);
    (s, out, err)
}

fn pool_run(pool: &Pool, image: &PythonImage, program: &ProgramRef, start: Start) -> Result<()> {
    let (mut s, out, err) = session();
    image.apply(&mut s, start);
    let outcome = pool
        .run(Job {
            program: program.clone(),
            session: s,
        })
        .context("pool run")?;
    let out = out.lock().unwrap_or_else(|p| p.into_inner()).clone();
    ensure!(
        out == EXPECTED.as_bytes() && outcome.report.user_code == 0,
        "unexpected result: {:?} {:?} stdout {:?} stderr {:?}",
        outcome.ending,
        outcome.detail,
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&err.lock().unwrap_or_else(|p| p.into_inner()))
    );
    Ok(())
}

fn native_run(python: &PathBuf) -> Result<()> {
    let out = Command::new(python)
        .args(["-c", SCRIPT])
        .stdin(Stdio::null())
        .output()
        .context("python3")?;
    ensure!(
        out.status.success() && out.stdout == EXPECTED.as_bytes(),
        "native python3: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
