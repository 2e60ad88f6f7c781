//! Python 3 in the sandbox: the installed `python` image run in daemon mode
//! (one turn of our snapshot) and plain mode, through the real engine.
//!
//! Needs the image installed (`scripts/test.sh` does it):
//! `zerocloud image install python --images-dir DIR` and `ZEROCLOUD_IMAGES=DIR`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sandbox::channel::{self, SharedBuffer};
use sandbox::engine::{Engine, EngineConfig, Outcome, Program, Session};
use sandbox::image::ImageStore;
use sandbox::python::{self, PythonImage, Start};
use sandbox::report::Ending;

struct Py {
    engine: Engine,
    image: PythonImage,
    daemon: Arc<Program>,
    plain: Arc<Program>,
}

fn py() -> &'static Py {
    static PY: OnceLock<Py> = OnceLock::new();
    PY.get_or_init(|| {
        let dir = std::env::var_os("ZEROCLOUD_IMAGES").expect(
            "ZEROCLOUD_IMAGES must name an images dir with python installed \
             (scripts/test.sh installs it; or: zerocloud image install python --images-dir DIR)",
        );
        let store = ImageStore::at(dir.into());
        let installed = store.resolve("python3").expect("python image installed");
        let image = PythonImage::open(&installed).expect("python image readable");
        assert!(image.daemon.is_some(), "the daemon snapshot was not built");
        assert!(
            python::daemon_is_current(&installed, &image).expect("steps.json readable"),
            "the daemon snapshot in {} was built by an older release: run \
             `zerocloud image install python --images-dir DIR` (scripts/test.sh does)",
            installed.dir.display()
        );
        let engine = Engine::new(EngineConfig {
            cache_dir: Some(installed.cache_dir.clone()),
            ..EngineConfig::default()
        })
        .expect("engine");
        let daemon = image
            .program(&engine, Start::Daemon)
            .expect("daemon program");
        let plain = image.program(&engine, Start::Plain).expect("plain program");
        Py {
            engine,
            image,
            daemon,
            plain,
        }
    })
}

struct Run {
    outcome: Outcome,
    stdout: String,
    stderr: String,
}

impl Run {
    fn code(&self) -> i32 {
        assert_eq!(
            self.outcome.ending,
            Ending::Exited,
            "run did not exit: {:?} {:?}\nstderr: {}",
            self.outcome.ending,
            self.outcome.detail,
            self.stderr
        );
        self.outcome.report.user_code
    }
}

/// A session running `args` (argv as a job gives it: `python3 …`).
fn session(args: &[&str], stdin: &[u8]) -> (Session, SharedBuffer, SharedBuffer) {
    let out = channel::shared(Vec::new());
    let err = channel::shared(Vec::new());
    let mut s = python::session_with_stdio(stdin, out.clone(), err.clone());
    s.args = Some(args.iter().map(ToString::to_string).collect());
    s.timeout = Duration::from_secs(60);
    s.memory = 1 << 30;
    (s, out, err)
}

fn run_session(mut s: Session, out: SharedBuffer, err: SharedBuffer, start: Start) -> Run {
    let py = py();
    py.image.apply(&mut s, start);
    let program = match start {
        Start::Daemon => &py.daemon,
        Start::Plain => &py.plain,
    };
    let outcome = py.engine.run(program, &s);
    let text = |b: &SharedBuffer| String::from_utf8_lossy(&b.lock().unwrap()).into_owned();
    Run {
        outcome,
        stdout: text(&out),
        stderr: text(&err),
    }
}

fn run_code(code: &str, start: Start) -> Run {
    let (s, out, err) = session(&["python3", "-c", code], b"");
    run_session(s, out, err, start)
}

/// A script given as a file channel at `/dev/script.py`, run with argv.
fn run_script(script: &str, argv: &[&str], stdin: &[u8]) -> Run {
    let mut args = vec!["python3", "/dev/script.py"];
    args.extend_from_slice(argv);
    let (mut s, out, err) = session(&args, stdin);
    python::add_input(&mut s, "/dev/script.py", script.as_bytes());
    run_session(s, out, err, Start::Daemon)
}

#[test]
fn hello_world_in_both_starts() {
    for start in [Start::Daemon, Start::Plain] {
        let r = run_code("print('hello, world')", start);
        assert_eq!(r.code(), 0, "{start:?}: {}", r.stderr);
        assert_eq!(r.stdout, "hello, world\n", "{start:?}");
        assert_eq!(r.stderr, "");
    }
}

#[test]
fn script_sees_argv_and_runs_as_main() {
    let r = run_script(
        "import sys\nprint(sys.argv)\nprint(__name__)\n",
        &["a", "b c", "--x=1"],
        b"",
    );
    assert_eq!(r.code(), 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "['/dev/script.py', 'a', 'b c', '--x=1']\n__main__\n"
    );
}

#[test]
fn exit_codes_are_those_of_python() {
    assert_eq!(run_code("import sys; sys.exit(3)", Start::Daemon).code(), 3);
    assert_eq!(run_code("import sys; sys.exit(0)", Start::Daemon).code(), 0);
    assert_eq!(run_code("raise SystemExit(7)", Start::Plain).code(), 7);
    let r = run_code("import sys; sys.exit('bye')", Start::Daemon);
    assert_eq!(r.code(), 1);
    assert_eq!(r.stderr, "bye\n");
}

#[test]
fn uncaught_exception_prints_a_traceback_and_exits_1() {
    let r = run_script(
        "def f():\n    raise ValueError('bad value')\nf()\n",
        &[],
        b"",
    );
    assert_eq!(r.code(), 1);
    assert!(
        r.stderr.starts_with("Traceback (most recent call last):\n"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("File \"/dev/script.py\", line 3"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.ends_with("ValueError: bad value\n"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("<reactor>"), "{}", r.stderr);
}

#[test]
fn stdin_stdout_stderr_are_the_channels() {
    let r = run_script(
        "import sys\ndata = sys.stdin.read()\nsys.stdout.write(data.upper())\nprint(len(data), file=sys.stderr)\n",
        &[],
        b"some input\nlines\n",
    );
    assert_eq!(r.code(), 0, "{}", r.stderr);
    assert_eq!(r.stdout, "SOME INPUT\nLINES\n");
    assert_eq!(r.stderr, "17\n");
}

#[test]
fn stdin_as_the_program_like_python_with_no_args() {
    let (s, out, err) = session(&["python"], b"print(6 * 7)\n");
    let r = run_session(s, out, err, Start::Daemon);
    assert_eq!(r.code(), 0, "{}", r.stderr);
    assert_eq!(r.stdout, "42\n");
}

#[test]
fn job_tar_image_and_channels_are_visible() {
    let mut tar = Vec::new();
    sandbox::tar::pack(
        &mut tar,
        [sandbox::tar::PackMember::File(
            "data/words.txt",
            b"alpha beta\ngamma\n",
        )],
    )
    .expect("tar");
    let script = "import os\n\
        print([os.path.exists(p) for p in ('/dev/script.py', '/dev/image', '/dev/stdout', '/dev/nope')])\n\
        print(open('/app/data/words.txt').read().split())\n\
        print(os.path.exists('/usr/local/lib/python315.zip'))\n";
    let (mut s, out, err) = session(&["python3", "/dev/script.py"], b"");
    python::add_input(&mut s, "/dev/script.py", script.as_bytes());
    python::add_input(&mut s, "/dev/image", tar);
    python::add_input(
        &mut s,
        "/dev/nvram",
        b"[fstab]\nchannel=/dev/image,mountpoint=/app,access=ro,removable=no\n",
    );
    let r = run_session(s, out, err, Start::Daemon);
    assert_eq!(r.code(), 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    // The channels are files at their aliases, and only they.
    assert_eq!(lines[0], "[True, True, True, False]");
    assert_eq!(lines[1], "['alpha', 'beta', 'gamma']");
    assert_eq!(lines[2], "True");
}

#[test]
fn numpy_pandas_and_sqlite3_do_real_work() {
    let script = r#"
import numpy as np, sqlite3, json
a = np.arange(1, 101, dtype=np.int64).reshape(10, 10)
print(int(a.sum()), int(a.T[3].sum()), float(np.linalg.det(np.array([[2.0, 1.0], [1.0, 3.0]]))))
db = sqlite3.connect(':memory:')
db.execute('create table t (k text, v integer)')
db.executemany('insert into t values (?, ?)', [('a', 1), ('b', 2), ('a', 3)])
print(json.dumps(db.execute('select k, sum(v) from t group by k order by k').fetchall()))
import pandas as pd
df = pd.DataFrame({'k': ['x', 'y', 'x'], 'v': [1, 2, 4]})
print(df.groupby('k')['v'].sum().to_dict())
"#;
    let r = run_script(script, &[], b"");
    assert_eq!(r.code(), 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "5050 490 5.000000000000001\n[[\"a\", 4], [\"b\", 2]]\n{'x': 5, 'y': 2}\n"
    );
}

#[test]
fn nothing_leaks_from_one_run_to_the_next() {
    let first = "import json, random, os\n\
        LEAK = 1\n\
        json.leaked = 'yes'\n\
        open('/tmp/leak.txt', 'w').write('x')\n\
        print(random.random(), random.getrandbits(64))\n";
    let second = "import json, random, os\n\
        print('LEAK' in globals(), hasattr(json, 'leaked'), os.path.exists('/tmp/leak.txt'))\n\
        print(random.random(), random.getrandbits(64))\n";
    let a = run_script(first, &[], b"");
    assert_eq!(a.code(), 0, "{}", a.stderr);
    let b = run_script(second, &[], b"");
    assert_eq!(b.code(), 0, "{}", b.stderr);
    let lines: Vec<&str> = b.stdout.lines().collect();
    assert_eq!(lines[0], "False False False");
    let c = run_script(second, &[], b"");
    assert_eq!(c.code(), 0, "{}", c.stderr);
    let randoms = [
        a.stdout.trim(),
        lines[1],
        c.stdout.lines().nth(1).unwrap_or(""),
    ];
    assert!(
        randoms[0] != randoms[1] && randoms[1] != randoms[2] && randoms[0] != randoms[2],
        "random values repeat across runs: {randoms:?}"
    );
}

/// A script run in daemon mode whose turn first counts the stdlib zip's
/// member reads (zipimport's `_get_data`), then runs the script as every
/// daemon run does; stdout ends with the names of the members read.
fn run_script_counting_zip_reads(script: &str) -> Run {
    let argv = ["python3", "/dev/script.py"];
    let (mut s, out, err) = session(&argv, b"");
    python::add_input(&mut s, "/dev/script.py", script.as_bytes());
    let args: Vec<String> = argv.iter().map(ToString::to_string).collect();
    let run = python::turn_source(&python::guest_argv(&args), &python::base_env());
    s.turn = Some(format!(
        "import zipimport\n\
         _reads = []\n\
         _get = zipimport._get_data\n\
         def _count(archive, toc):\n    _reads.append(toc[0])\n    return _get(archive, toc)\n\
         zipimport._get_data = _count\n\
         try:\n    {run}\n\
         finally:\n    print('zip reads:', sorted({{t.rsplit('/', 1)[-1] for t in _reads}}))\n"
    ));
    run_session(s, out, err, Start::Daemon)
}

#[test]
fn daemon_runs_find_the_preloaded_modules_and_a_frozen_heap() {
    // Everything a script importing the preloaded modules needs, what
    // `_reactor` imports to run a script included, is in the snapshot:
    // nothing is unpacked from the stdlib zip.
    let script = format!("import {}\nprint('ok')\n", python::PRELOAD.join(", "));
    let r = run_script_counting_zip_reads(&script);
    assert_eq!(r.code(), 0, "{}", r.stderr);
    assert_eq!(r.stdout, "ok\nzip reads: []\n");
    // The count is real: a module outside the snapshot is read.
    let r = run_script_counting_zip_reads("import colorsys\nprint('ok')\n");
    assert_eq!(r.code(), 0, "{}", r.stderr);
    assert_eq!(r.stdout, "ok\nzip reads: ['colorsys.pyc']\n");
    // The snapshot's objects are in the GC's permanent generation (a run's
    // collections skip them); a plain start has nothing frozen.
    let frozen = "import gc\nprint(gc.get_freeze_count() > 10000)\n";
    let d = run_code(frozen, Start::Daemon);
    assert_eq!((d.code(), d.stdout.as_str()), (0, "True\n"), "{}", d.stderr);
    let p = run_code(frozen, Start::Plain);
    assert_eq!(
        (p.code(), p.stdout.as_str()),
        (0, "False\n"),
        "{}",
        p.stderr
    );
}

#[test]
fn memory_cap_gives_memory_error() {
    let (mut s, out, err) = session(
        &[
            "python3",
            "-c",
            "try:\n    x = bytearray(512 * 1024 * 1024)\nexcept MemoryError:\n    print('caught MemoryError')\n",
        ],
        b"",
    );
    s.memory = 256 << 20;
    let r = run_session(s, out, err, Start::Daemon);
    assert_eq!(r.code(), 0, "{}", r.stderr);
    assert_eq!(r.stdout, "caught MemoryError\n");
}

#[test]
fn timeout_ends_an_endless_loop() {
    let (mut s, out, err) = session(&["python3", "-c", "while True: pass"], b"");
    s.timeout = Duration::from_secs(2);
    let r = run_session(s, out, err, Start::Daemon);
    assert_eq!(r.outcome.ending, Ending::Timeout, "{:?}", r.outcome.detail);
}

#[test]
fn output_quota_gives_oserror_edquot() {
    let script = "import sys, errno, os\n\
        try:\n\
        \x20   for i in range(1000):\n\
        \x20       os.write(1, b'0123456789')\n\
        except OSError as e:\n\
        \x20   os.write(2, ('%s %s' % (e.errno == errno.EDQUOT, e.strerror)).encode())\n";
    let (mut s, out, err) = session(&["python3", "-c", script], b"");
    let stdout = s
        .channels
        .iter_mut()
        .find(|c| c.alias == "/dev/stdout")
        .expect("stdout channel");
    stdout.limits.put_size = 95;
    let r = run_session(s, out, err, Start::Daemon);
    assert_eq!(r.code(), 0, "{}", r.stderr);
    assert_eq!(r.stdout.len(), 95);
    assert_eq!(r.stderr, "True Quota exceeded");
}

/// The same image through the worker pool (separate, isolated processes):
/// the daemon snapshot runs there too, and a worker killed in the middle of
/// a Python run fails only that run.
#[test]
fn python_through_the_worker_pool() {
    use sandbox::pool::{Job, Pool, PoolConfig, PoolError, ProgramRef};
    let py = py();
    let mut config = PoolConfig::new(env!("CARGO_BIN_EXE_zerovm"));
    config.workers = 1;
    config.engine = EngineConfig {
        cache_dir: Some(py.image.cache_dir.clone()),
        ..EngineConfig::default()
    };
    let pool = Pool::start(config).expect("pool");
    let (sha, _) = py.image.daemon.clone().expect("daemon");
    assert!(pool
        .engine()
        .artifact_path(&sha)
        .expect("cache dir")
        .is_file());
    let program = ProgramRef { sha256: sha };
    let job = |code: &str| {
        let (mut s, out, err) = session(&["python3", "-c", code], b"");
        py.image.apply(&mut s, Start::Daemon);
        (
            Job {
                program: program.clone(),
                session: s,
            },
            out,
            err,
        )
    };
    let (j, out, err) = job("import numpy, sys; print(numpy.arange(5).sum()); sys.exit(4)");
    let outcome = pool.run(j).expect("pool run");
    assert_eq!(
        outcome.report.user_code, 4,
        "{:?} {:?}",
        outcome.ending, err
    );
    assert_eq!(&*out.lock().unwrap(), b"10\n");
    // Kill the worker while a run loops.
    let (j, _, _) = job("while True: pass");
    let result = std::thread::scope(|scope| {
        let run = scope.spawn(|| pool.run(j));
        // Once the run holds the only worker, kill that worker.
        let until = std::time::Instant::now() + Duration::from_secs(30);
        while pool.stats().idle != 0 {
            assert!(std::time::Instant::now() < until, "the run never started");
            std::thread::sleep(Duration::from_millis(10));
        }
        for pid in pool.worker_pids() {
            let pid = rustix::process::Pid::from_raw(pid as i32).expect("pid");
            rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill");
        }
        run.join().expect("run thread")
    });
    assert!(
        matches!(result, Err(PoolError::WorkerDied { .. })),
        "{result:?}"
    );
    let (j, out, _) = job("print('after')");
    let outcome = pool.run(j).expect("run after the kill");
    assert_eq!(outcome.report.user_code, 0);
    assert_eq!(&*out.lock().unwrap(), b"after\n");
}

/// `zvsh python3 @script.py args` as a user types it: the image found in
/// `$ZEROCLOUD_IMAGES`, the run in a pool worker, stdin and stdout the
/// terminal's, the script's exit code zvsh's.
#[test]
fn zvsh_runs_a_python_script_like_a_local_command() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("s.py");
    std::fs::write(
        &script,
        "import sys, numpy\nprint(sys.argv[1:], int(numpy.arange(4).sum()))\n\
         print(sys.stdin.read().upper(), end='')\nsys.exit(3)\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_zvsh"))
        .arg("python3")
        .arg(format!("@{}", script.display()))
        .args(["a", "b c"])
        .env(
            "ZEROCLOUD_IMAGES",
            std::env::var_os("ZEROCLOUD_IMAGES").expect("ZEROCLOUD_IMAGES"),
        )
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("zvsh");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"from stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "['a', 'b c'] 6\nFROM STDIN\n"
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn time_sleep_sleeps_and_ends_at_the_timeout() {
    // Both starts: the clock-based poll_oneoff serves wasi-libc's sleep.
    for start in [Start::Daemon, Start::Plain] {
        let r = run_code(
            "import time\nt = time.monotonic()\ntime.sleep(0.2)\nprint(time.monotonic() - t >= 0.2)\n",
            start,
        );
        assert_eq!(r.code(), 0, "{start:?}: {}", r.stderr);
        assert_eq!(r.stdout, "True\n", "{start:?}");
    }
    // A sleep longer than the session may last ends it at the timeout. The
    // sleep asked for is ~31 years: were it not cut at the deadline, this
    // test would never end (no wall-clock assertion needed to tell).
    let (mut s, out, err) = session(&["python3", "-c", "import time\ntime.sleep(10**9)\n"], b"");
    s.timeout = Duration::from_secs(1);
    let r = run_session(s, out, err, Start::Daemon);
    assert_eq!(r.outcome.ending, Ending::Timeout, "{:?}", r.outcome.detail);
}

/// `zvsh ARGS` in `dir` with the test's images dir.
fn zvsh(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_zvsh"))
        .args(args)
        .env(
            "ZEROCLOUD_IMAGES",
            std::env::var_os("ZEROCLOUD_IMAGES").expect("ZEROCLOUD_IMAGES"),
        )
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("zvsh")
}

#[test]
fn zvsh_says_a_script_timed_out_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spin.py"), "while True:\n    pass\n").unwrap();
    std::fs::write(dir.path().join("zvsh.cfg"), "[manifest]\nTimeout = 1\n").unwrap();
    let out = zvsh(dir.path(), &["python3", "@spin.py"]);
    assert_eq!(out.status.code(), Some(4 << 4));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "zvsh: timed out after 1 s; raise the limit with `Timeout = <seconds>` \
         under [manifest] in ./zvsh.cfg\n"
    );
}

#[test]
fn a_manifest_zvsh_saved_for_a_python_run_replays_with_zerovm() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hi.py"),
        "import sys, time\ntime.sleep(0.01)\nprint('hi', sys.argv[1:])\n",
    )
    .unwrap();
    let out = zvsh(
        dir.path(),
        &["--zvm-save-dir", "saved", "python3", "@hi.py", "x"],
    );
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).as_ref()
        ),
        (Some(0), "hi ['x']\n"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Replayed by zerovm from the saved manifest: the same run, then the
    // report; no $ZEROCLOUD_IMAGES needed (the image is found from the
    // manifest's Program).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zerovm"))
        .arg(dir.path().join("saved/manifest.1"))
        .env_remove("ZEROCLOUD_IMAGES")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("zerovm");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("hi ['x']\n"), "{stdout}");
    let report: Vec<&str> = stdout["hi ['x']\n".len()..].lines().collect();
    assert_eq!((report[2], report[5]), ("0", "ok"), "{stdout}");
}

/// Through a pool worker, which keeps the snapshot's memory resident: a
/// run that changes the interpreter every way it can (globals, module
/// attributes, `sys.modules`, the GC's frozen set, the recursion limit, a
/// file, 100,000 strings that grow the heap) leaves no trace in the next,
/// down to the heap itself: a probe run prints the same addresses and
/// object counts before and after, and the same as a fresh instance in
/// this process.
#[test]
fn python_runs_in_a_pool_worker_start_from_the_snapshot_every_time() {
    use sandbox::pool::{Job, Pool, PoolConfig, ProgramRef};
    let py = py();
    let mut config = PoolConfig::new(env!("CARGO_BIN_EXE_zerovm"));
    config.workers = 1;
    config.engine = EngineConfig {
        cache_dir: Some(py.image.cache_dir.clone()),
        ..EngineConfig::default()
    };
    let pool = Pool::start(config).expect("pool");
    let program = ProgramRef {
        sha256: py.image.daemon.clone().expect("daemon").0,
    };
    let probe = "import gc, sys, json, os\n\
        print(id(object()), id([]), len(gc.get_objects()), gc.get_freeze_count(),\n\
              sys.getrecursionlimit(), 'LEAK' in globals(), hasattr(json, 'leaked'),\n\
              'secret_mod' in sys.modules, os.path.exists('/tmp/leak.txt'),\n\
              any(isinstance(o, str) and o.startswith('secret-') for o in gc.get_objects()))\n";
    let dirty = "import gc, sys, json\n\
        LEAK = 1\n\
        json.leaked = 'yes'\n\
        sys.modules['secret_mod'] = type(sys)('secret_mod')\n\
        sys.setrecursionlimit(123)\n\
        open('/tmp/leak.txt', 'w').write('x')\n\
        big = ['secret-%d' % i for i in range(100000)]\n\
        gc.freeze()\n\
        print(len(big))\n";
    let run = |script: &str| -> String {
        let (mut s, out, err) = session(&["python3", "/dev/script.py"], b"");
        python::add_input(&mut s, "/dev/script.py", script.as_bytes());
        py.image.apply(&mut s, Start::Daemon);
        let outcome = pool
            .run(Job {
                program: program.clone(),
                session: s,
            })
            .expect("pool run");
        let stderr = String::from_utf8_lossy(&err.lock().unwrap()).into_owned();
        assert_eq!(outcome.report.user_code, 0, "{:?} {stderr}", outcome.ending);
        let stdout = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
        stdout
    };
    let fresh = run_script(probe, &[], b"");
    assert_eq!(fresh.code(), 0, "{}", fresh.stderr);
    assert!(
        fresh
            .stdout
            .trim_end()
            .ends_with("1000 False False False False False"),
        "{}",
        fresh.stdout
    );
    for round in 0..4 {
        assert_eq!(run(probe), fresh.stdout, "round {round}");
        assert_eq!(run(dirty), "100000\n");
    }
    assert_eq!(run(probe), fresh.stdout);
}
