//! The worker pool with the real `zerovm --worker` processes: WAT guests run
//! through isolated workers, channels as passed descriptors, dead and hung
//! workers replaced, a bounded queue, and the isolation itself.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

use sandbox::channel::{shared, SharedBuffer};
use sandbox::engine::{Session, ValidationError};
use sandbox::manifest::{Manifest, StdHost};
use sandbox::pool::{Cancel, Job, Pool, PoolConfig, PoolError, ProgramRef};
use sandbox::report::Ending;

const ZEROVM: &str = env!("CARGO_BIN_EXE_zerovm");

mod wat;

fn guest(body: &str) -> String {
    wat::module(1, body)
}

fn hello() -> String {
    guest(
        r#"(data (i32.const 64) "hello, world\n")
           (func (export "_start") (drop (call $write (i32.const 1) (i32.const 64) (i32.const 13))))"#,
    )
}

/// Copies stdin to stdout.
fn cat() -> String {
    guest(
        r#"(func (export "_start")
            (block $done (loop $next
              (i32.store (i32.const 16) (i32.const 1024))
              (i32.store (i32.const 20) (i32.const 4096))
              (br_if $done (call $fd_read (i32.const 0) (i32.const 16) (i32.const 1) (i32.const 24)))
              (br_if $done (i32.eqz (i32.load (i32.const 24))))
              (drop (call $write (i32.const 1) (i32.const 1024) (i32.load (i32.const 24))))
              (br $next))))"#,
    )
}

fn spin() -> String {
    guest(r#"(func (export "_start") (loop $l (br $l)))"#)
}

fn config(workers: usize, queue: usize) -> PoolConfig {
    PoolConfig {
        workers,
        queue,
        ..PoolConfig::new(ZEROVM)
    }
}

fn start(config: PoolConfig) -> Pool {
    Pool::start(config).expect("pool")
}

/// A session over a manifest in `dir`: stdin from `dir/in` (or `stdin`,
/// any path), stdout to `dir/out`, stderr to `dir/err`.
fn session(dir: &Path, stdin: Option<&str>) -> Session {
    let d = dir.to_str().expect("utf-8 temp dir");
    std::fs::write(dir.join("prog.wasm"), b"").unwrap();
    let stdin = match stdin {
        Some(path) => path.to_string(),
        None => {
            std::fs::write(dir.join("in"), b"").unwrap();
            format!("{d}/in")
        }
    };
    let text = format!(
        "Version = 20130611\nTimeout = 5\nMemory = 67108864,0\nProgram = {d}/prog.wasm\n\
         Channel = {stdin},/dev/stdin,0,0,1000,1000000,0,0\n\
         Channel = {d}/out,/dev/stdout,0,0,0,0,1000,1000000\n\
         Channel = {d}/err,/dev/stderr,0,0,0,0,1000,1000000\n"
    );
    let m = Manifest::parse(text.as_bytes()).unwrap();
    Session::from_manifest(&m, m.check(&StdHost).unwrap())
}

fn job(pool: &Pool, wat: &str, session: Session) -> Job {
    Job {
        program: pool.program_ref(wat.as_bytes()).expect("program"),
        session,
    }
}

/// [`session`] with stdout in a shared buffer, which it returns too.
fn stdout_session(dir: &Path) -> (Session, SharedBuffer) {
    let out = shared(Vec::new());
    let mut s = session(dir, None);
    s.buffers.insert("/dev/stdout".into(), out.clone());
    (s, out)
}

/// Runs the hello guest on `pool` and checks its exit and output.
fn assert_hello(pool: &Pool, dir: &Path) {
    let (s, out) = stdout_session(dir);
    let outcome = pool.run(job(pool, &hello(), s)).expect("run");
    assert_eq!(outcome.exit_code(), 0, "{:?}", outcome.detail);
    assert_eq!(&*out.lock().unwrap(), b"hello, world\n");
}

/// SIGKILL, as a crash would.
fn kill(pid: u32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill");
}

fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn hello_through_a_worker_lands_in_the_shared_buffer_as_in_process() {
    let pool = start(config(1, 0));
    let dir = tempfile::tempdir().unwrap();
    let out = shared(b"stale".to_vec());
    let mut s = session(dir.path(), None);
    s.buffers.insert("/dev/stdout".into(), out.clone());
    let outcome = pool.run(job(&pool, &hello(), s.clone())).expect("run");
    assert_eq!(outcome.ending, Ending::Exited, "{:?}", outcome.detail);
    assert_eq!(outcome.exit_code(), 0);
    assert_eq!(&*out.lock().unwrap(), b"hello, world\n");
    assert!(!dir.path().join("out").exists(), "host source never opened");
    // The same as an in-process run, CPU figures aside.
    let local_out = shared(Vec::new());
    s.buffers.insert("/dev/stdout".into(), local_out.clone());
    let program = wat::engine().prepare(hello().as_bytes()).unwrap();
    let local = wat::engine().run(&program, &s);
    assert_eq!(&*local_out.lock().unwrap(), b"hello, world\n");
    assert_eq!(outcome.ending, local.ending);
    assert_eq!(outcome.report.user_code, local.report.user_code);
    assert_eq!(outcome.report.etags, local.report.etags);
    assert_eq!(
        outcome.report.accounting.local,
        local.report.accounting.local
    );
    assert_eq!(outcome.report.exit_state, local.report.exit_state);
    assert!(pool.resident_bytes() > 0);
}

#[test]
fn file_channels_are_read_and_written_through_passed_descriptors() {
    let pool = start(config(1, 0));
    let dir = tempfile::tempdir().unwrap();
    let input = b"the quick brown fox jumps over the lazy dog\n".repeat(500);
    let stdin = dir.path().join("input.txt");
    std::fs::write(&stdin, &input).unwrap();
    std::fs::write(dir.path().join("out"), b"old contents, truncated").unwrap();
    let s = session(dir.path(), stdin.to_str());
    let outcome = pool.run(job(&pool, &cat(), s)).expect("run");
    assert_eq!(outcome.exit_code(), 0, "{:?}", outcome.detail);
    assert_eq!(std::fs::read(dir.path().join("out")).unwrap(), input);
    assert_eq!(
        outcome.report.accounting.local.bytes_read,
        input.len() as u64
    );

    // Input from a buffer, output into another.
    let (inp, out) = (shared(b"from memory\n".to_vec()), shared(Vec::new()));
    let mut s = session(dir.path(), None);
    s.buffers.insert("/dev/stdin".into(), inp.clone());
    s.buffers.insert("/dev/stdout".into(), out.clone());
    let outcome = pool.run(job(&pool, &cat(), s)).expect("run");
    assert_eq!(outcome.exit_code(), 0, "{:?}", outcome.detail);
    assert_eq!(&*out.lock().unwrap(), b"from memory\n");
    assert_eq!(&*inp.lock().unwrap(), b"from memory\n");
}

#[test]
fn tcp_channels_opened_by_the_parent_work_in_a_worker_without_network() {
    use std::io::{Read, Write};
    let pool = start(config(1, 0));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    std::fs::write(dir.path().join("prog.wasm"), b"").unwrap();
    // The reader's port: free a moment ago (the parent binds it).
    let in_port = wat::free_port();
    let peer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out_port = peer.local_addr().unwrap().port();
    let text = format!(
        "Version = 20130611\nTimeout = 10\nMemory = 67108864,0\nProgram = {d}/prog.wasm\n\
         Channel = tcp:127.0.0.1:{in_port},/dev/stdin,0,0,1000,1000000,0,0\n\
         Channel = tcp:127.0.0.1:{out_port},/dev/stdout,0,0,0,0,1000,1000000\n\
         Channel = {d}/err,/dev/stderr,0,0,0,0,1000,1000000\n"
    );
    let m = Manifest::parse(text.as_bytes()).unwrap();
    let s = Session::from_manifest(&m, m.check(&StdHost).unwrap());
    let data = b"over tcp, through a worker that has no network\n".repeat(100);
    let j = job(&pool, &cat(), s);
    std::thread::scope(|scope| {
        let run = scope.spawn(|| pool.run(j));
        let received = scope.spawn(|| {
            let (mut conn, _) = peer.accept().unwrap();
            let mut got = Vec::new();
            conn.read_to_end(&mut got).unwrap();
            got
        });
        let mut conn = wat::connect_when_bound(in_port);
        conn.write_all(&data).unwrap();
        drop(conn);
        let outcome = run.join().unwrap().expect("run");
        assert_eq!(outcome.ending, Ending::Exited, "{:?}", outcome.detail);
        assert_eq!(received.join().unwrap(), data);
    });
}

#[test]
fn a_channel_that_cannot_be_opened_ends_as_in_process() {
    let pool = start(config(1, 0));
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gone");
    std::fs::write(&missing, b"x").unwrap();
    let s = session(dir.path(), missing.to_str());
    std::fs::remove_file(&missing).unwrap();
    let outcome = pool.run(job(&pool, &hello(), s.clone())).expect("run");
    let program = wat::engine().prepare(hello().as_bytes()).unwrap();
    let local = wat::engine().run(&program, &s);
    assert_eq!(outcome.ending, local.ending);
    assert_eq!(outcome.exit_code(), local.exit_code());
    assert_ne!(outcome.exit_code(), 0);
}

#[test]
fn runs_in_a_row_reuse_the_same_workers() {
    let pool = start(config(2, 4));
    let pids = pool.worker_pids();
    assert_eq!(pids.len(), 2);
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..8 {
        assert_hello(&pool, dir.path());
    }
    assert_eq!(pool.worker_pids(), pids, "no worker was replaced");
}

#[test]
fn on_demand_slots_start_their_worker_only_when_every_started_one_is_busy() {
    let pool = start(PoolConfig {
        on_demand: 2,
        ..config(1, 0)
    });
    assert_eq!(pool.worker_pids().len(), 1, "only the started worker");
    assert_eq!(pool.stats().workers, 3);
    let dir = tempfile::tempdir().unwrap();
    // One at a time: the started worker serves them all.
    for _ in 0..3 {
        assert_hello(&pool, dir.path());
    }
    assert_eq!(pool.worker_pids().len(), 1);
    // Three at once (with no queue): each takes a slot, two of them start
    // their workers, and all three run.
    let mut s = session(dir.path(), None);
    s.timeout = Duration::from_millis(800);
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..3)
            .map(|_| {
                let j = job(&pool, &spin(), s.clone());
                let pool = &pool;
                scope.spawn(move || pool.run(j))
            })
            .collect();
        for r in runs {
            let outcome = r.join().unwrap().expect("a slot for every run");
            assert_eq!(outcome.ending, Ending::Timeout);
        }
    });
    assert_eq!(pool.worker_pids().len(), 3, "the on-demand workers stay");
    assert_hello(&pool, dir.path());
}

#[test]
fn without_isolation_workers_run_too() {
    let pool = start(PoolConfig {
        isolate: false,
        ..config(1, 0)
    });
    let dir = tempfile::tempdir().unwrap();
    assert_hello(&pool, dir.path());
}

#[test]
fn a_killed_worker_fails_only_its_own_run_and_is_replaced() {
    let pool = start(config(1, 1));
    let before = pool.worker_pids();
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path(), None);
    s.timeout = Duration::from_secs(60);
    let spinning = job(&pool, &spin(), s);
    std::thread::scope(|scope| {
        let run = scope.spawn(|| pool.run(spinning));
        wait_until("the spin to start", || pool.stats().idle == 0);
        std::thread::sleep(Duration::from_millis(300));
        kill(before[0]);
        match run.join().unwrap() {
            Err(e @ PoolError::WorkerDied { status, pid }) => {
                assert_eq!(status.signal(), Some(9), "{e}");
                assert_eq!(pid, before[0]);
                assert!(e.to_string().contains("SIGKILL"), "{e}");
            }
            other => panic!("expected WorkerDied, got {other:?}"),
        }
    });
    let after = pool.worker_pids();
    assert_eq!(after.len(), 1);
    assert_ne!(after, before, "replaced");
    assert_hello(&pool, dir.path());
}

#[test]
fn a_worker_killed_while_idle_is_replaced_without_failing_a_run() {
    let pool = start(config(1, 0));
    let before = pool.worker_pids();
    kill(before[0]);
    std::thread::sleep(Duration::from_millis(100));
    let dir = tempfile::tempdir().unwrap();
    assert_hello(&pool, dir.path());
    assert_ne!(pool.worker_pids(), before);
}

#[test]
fn a_full_queue_refuses_at_once_with_no_slot() {
    let pool = start(config(1, 1));
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path(), None);
    s.timeout = Duration::from_secs(1);
    let spinning = job(&pool, &spin(), s);
    let waiting = job(&pool, &hello(), session(dir.path(), None));
    let refused = job(&pool, &hello(), session(dir.path(), None));
    std::thread::scope(|scope| {
        let first = scope.spawn(|| pool.run(spinning));
        wait_until("the spin to start", || pool.stats().idle == 0);
        let second = scope.spawn(|| pool.run(waiting));
        wait_until("the second run to queue", || pool.stats().waiting == 1);
        // Refused, not queued: a queued run would have waited and then run.
        assert!(matches!(pool.run(refused), Err(PoolError::NoSlot)));
        assert_eq!(pool.stats().waiting, 1, "the refused run never queued");
        let first = first.join().unwrap().expect("first run");
        assert_eq!(first.ending, Ending::Timeout);
        let second = second.join().unwrap().expect("queued run");
        assert_eq!(second.exit_code(), 0, "{:?}", second.detail);
    });
    // queue = 0: no waiting at all.
    let pool = start(config(1, 0));
    let mut s = session(dir.path(), None);
    s.timeout = Duration::from_millis(500);
    let spinning = job(&pool, &spin(), s);
    let refused = job(&pool, &hello(), session(dir.path(), None));
    std::thread::scope(|scope| {
        let first = scope.spawn(|| pool.run(spinning));
        wait_until("the spin to start", || pool.stats().idle == 0);
        assert!(matches!(pool.run(refused), Err(PoolError::NoSlot)));
        assert_eq!(first.join().unwrap().expect("run").ending, Ending::Timeout);
    });
}

#[test]
fn an_infinite_loop_times_out_as_the_engine_reports_it() {
    let pool = start(config(1, 0));
    let pids = pool.worker_pids();
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path(), None);
    s.timeout = Duration::from_millis(200);
    let outcome = pool.run(job(&pool, &spin(), s)).expect("run");
    assert_eq!(outcome.ending, Ending::Timeout);
    assert_eq!(outcome.ending.exit_state(), "session timeout");
    assert_eq!(outcome.exit_code(), 4);
    assert_eq!(
        outcome.report.exit_state.as_deref(),
        Some("session timeout")
    );
    // The epoch trapped the guest: the worker was not killed.
    assert_eq!(pool.worker_pids(), pids, "the worker survives");
    // CPU figures come from the worker's /proc/self/stat, opened before its
    // root went away (the run thread's own cannot be opened any more).
    let cpu = outcome.report.accounting.user_cpu + outcome.report.accounting.system_cpu;
    assert!(cpu > Duration::ZERO, "{cpu:?}");
}

#[test]
fn a_pool_is_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Pool>();
    let pool = start(config(2, 8));
    let dir = tempfile::tempdir().unwrap();
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..6)
            .map(|_| {
                let (s, out) = stdout_session(dir.path());
                let j = job(&pool, &hello(), s);
                let pool = &pool;
                (out, scope.spawn(move || pool.run(j)))
            })
            .collect();
        for (out, run) in runs {
            let outcome = run.join().unwrap().expect("run");
            assert_eq!(outcome.exit_code(), 0, "{:?}", outcome.detail);
            assert_eq!(&*out.lock().unwrap(), b"hello, world\n");
        }
    });
}

#[test]
fn a_guest_blocked_in_a_host_read_is_killed_after_the_grace() {
    let pool = start(PoolConfig {
        grace: Duration::from_millis(300),
        ..config(1, 0)
    });
    let pids = pool.worker_pids();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(status.success());
    // Held open read-write: the pool's open does not block, and the
    // guest's read waits for bytes that never come.
    let _held = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let mut s = session(dir.path(), fifo.to_str());
    s.timeout = Duration::from_millis(500);
    let t = Instant::now();
    let outcome = pool.run(job(&pool, &cat(), s)).expect("run");
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(800), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(outcome.ending, Ending::Timeout);
    assert!(
        outcome.detail.as_deref().unwrap_or("").contains("killed"),
        "{:?}",
        outcome.detail
    );
    assert_ne!(pool.worker_pids(), pids, "replaced");
    assert_hello(&pool, dir.path());
}

#[test]
fn hostile_guests_end_with_reports_and_the_worker_lives_on() {
    let pool = start(config(1, 0));
    let pids = pool.worker_pids();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            r#"(func (export "_start") (drop (i32.load (i32.const 0x7fffffff))))"#,
            "out of bounds",
        ),
        (r#"(func (export "_start") unreachable)"#, "unreachable"),
        (
            r#"(func $f (export "_start") (call $f))"#,
            "call stack exhausted",
        ),
        (
            r#"(func (export "_start")
                 (loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
                 unreachable)"#,
            "after memory exhausted",
        ),
    ];
    for (body, expected) in cases {
        let outcome = pool
            .run(job(&pool, &guest(body), session(dir.path(), None)))
            .expect("run");
        let state = outcome.ending.exit_state();
        assert!(state.contains(expected), "{state} for {body}");
        assert_eq!(outcome.exit_code(), 4, "{state}");
    }
    // The WASI calls that reach the host: clock, random, yield.
    let imports = r#"
      (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
      (import "wasi_snapshot_preview1" "sched_yield" (func $yield (result i32)))"#;
    let body = r#"
      (func (export "_start")
        (if (call $random (i32.const 100) (i32.const 64)) (then unreachable))
        (if (call $clock (i32.const 0) (i64.const 1) (i32.const 200)) (then unreachable))
        (if (call $clock (i32.const 1) (i64.const 1) (i32.const 200)) (then unreachable))
        (if (call $yield) (then unreachable))
        (drop (call $write (i32.const 1) (i32.const 100) (i32.const 64))))"#;
    let (s, out) = stdout_session(dir.path());
    let wasi = wat::module_importing(imports, 1, body);
    let outcome = pool.run(job(&pool, &wasi, s)).expect("run");
    assert_eq!(outcome.ending, Ending::Exited, "{:?}", outcome.detail);
    assert_eq!(out.lock().unwrap().len(), 64);
    assert_eq!(pool.worker_pids(), pids, "no worker died");
}

#[test]
fn only_artifacts_of_the_pool_cache_are_run() {
    let pool = start(config(1, 0));
    assert!(matches!(
        pool.program_ref(b"not wasm"),
        Err(ValidationError::Invalid(_))
    ));
    let dir = tempfile::tempdir().unwrap();
    let good = pool.program_ref(hello().as_bytes()).unwrap();
    let artifact = pool.engine().artifact_path(&good.sha256).unwrap();
    assert!(artifact.is_file());
    // A program the pool never compiled has no artifact to send.
    let unknown = ProgramRef { sha256: [7; 32] };
    let r = pool.run(Job {
        program: unknown,
        session: session(dir.path(), None),
    });
    assert!(
        matches!(&r, Err(PoolError::Artifact { error, .. }) if error.kind() == std::io::ErrorKind::NotFound),
        "{r:?}"
    );
}

#[test]
fn a_worker_runs_more_programs_than_it_caches_and_the_first_again() {
    // One isolated worker under seccomp: past MAX_CACHED_PROGRAMS it drops
    // (unmaps) the least recently used module, and loads it again from the
    // artifact the pool sends when it comes back.
    let pool = start(config(1, 0));
    let dir = tempfile::tempdir().unwrap();
    let program = |n: usize| {
        guest(&format!(
            r#"(data (i32.const 64) "{n:03}\n")
               (func (export "_start") (drop (call $write (i32.const 1) (i32.const 64) (i32.const 4))))"#
        ))
    };
    let run = |n: usize| {
        let (s, out) = stdout_session(dir.path());
        let outcome = pool.run(job(&pool, &program(n), s)).expect("run");
        assert_eq!(outcome.ending, Ending::Exited, "{n}: {:?}", outcome.detail);
        let text = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
        assert_eq!(text, format!("{n:03}\n"));
    };
    let pids = pool.worker_pids();
    for n in 0..=sandbox::engine::MAX_CACHED_PROGRAMS + 1 {
        run(n);
    }
    run(0);
    assert_eq!(pool.worker_pids(), pids, "the same worker throughout");
}

/// `zerovm --worker --self-test` lines: `stage check: verdict (detail)`.
fn self_test(extra: &[&str]) -> Vec<(String, String, String)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let scratch = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(ZEROVM)
        .args(["--worker", "--self-test"])
        .arg(format!("--connect={port}"))
        .arg(format!("--scratch={}", scratch.path().display()))
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.ends_with("done\n"), "{stdout}");
    assert_eq!(
        std::fs::read_dir(scratch.path()).unwrap().count(),
        0,
        "the worker's root directory is gone"
    );
    stdout
        .lines()
        .filter_map(|l| {
            let (head, tail) = l.split_once(": ")?;
            let (stage, check) = head.split_once(' ')?;
            Some((stage.into(), check.into(), tail.into()))
        })
        .collect()
}

fn verdict(lines: &[(String, String, String)], stage: &str, check: &str) -> String {
    lines
        .iter()
        .find(|(s, c, _)| s == stage && c.starts_with(check))
        .and_then(|(_, _, tail)| tail.split_whitespace().next())
        .map(String::from)
        .unwrap_or_else(|| panic!("no {stage} {check} in {lines:?}"))
}

#[test]
fn an_isolated_worker_sees_no_files_and_no_network() {
    let lines = self_test(&[]);
    // The checks work: on the host all of it is possible.
    assert_eq!(verdict(&lines, "host", "open /etc/passwd"), "allowed");
    assert_eq!(verdict(&lines, "host", "tcp connect"), "allowed");
    // Namespaces + empty root: no host file, nothing to create, no route.
    for check in ["open /etc/passwd", "list /", "create /x", "tcp connect"] {
        assert_eq!(verdict(&lines, "namespaces", check), "denied", "{check}");
    }
    // Then seccomp: not even a socket.
    for check in [
        "open /etc/passwd",
        "list /",
        "create /x",
        "tcp socket",
        "tcp connect",
    ] {
        assert_eq!(verdict(&lines, "seccomp", check), "denied", "{check}");
    }
}

#[test]
fn a_worker_closes_descriptors_it_inherits() {
    // A directory descriptor without FD_CLOEXEC, as a careless library of
    // the parent might leave one.
    let dir = tempfile::tempdir().unwrap();
    let leaked = std::fs::File::open(dir.path()).unwrap();
    rustix::io::fcntl_setfd(&leaked, rustix::io::FdFlags::empty()).unwrap();
    let lines = self_test(&[]);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&leaked);
    let closed = lines
        .iter()
        .find(|(s, c, _)| s == "host" && c == "stray descriptors")
        .map(|(_, _, tail)| tail.clone())
        .unwrap_or_default();
    assert!(closed.contains(&fd.to_string()), "fd {fd}: {closed}");
    drop(leaked);
}

#[test]
fn without_isolation_the_self_test_shows_the_host() {
    let lines = self_test(&["--no-isolate"]);
    assert_eq!(verdict(&lines, "host", "open /etc/passwd"), "allowed");
    assert!(!lines.iter().any(|(s, _, _)| s == "seccomp"));
}

#[test]
fn a_job_larger_than_a_worker_accepts_is_refused_before_sending() {
    let pool = start(config(1, 1));
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path(), None);
    // The session's description crosses MAX_REQUEST (256 MiB) by one turn.
    s.turn = Some("#".repeat((256 << 20) + 1));
    let pids = pool.worker_pids();
    let result = pool.run(job(&pool, &hello(), s));
    assert!(
        matches!(result, Err(PoolError::TooLarge(n)) if n > 256 << 20),
        "{result:?}"
    );
    // Nothing was sent: the worker is the same and takes the next job.
    assert_eq!(pool.worker_pids(), pids);
    let outcome = pool
        .run(job(&pool, &hello(), session(dir.path(), None)))
        .expect("next run");
    assert_eq!(outcome.exit_code(), 0);
}

#[test]
fn a_cache_dir_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut c = config(1, 1);
    c.engine.cache_dir = Some(dir.path().to_path_buf());
    let e = Pool::start(c).expect_err("a world-writable cache dir");
    assert!(e.to_string().contains("writable by nobody else"), "{e}");
}

#[test]
fn a_pool_removes_roots_dead_workers_left_in_its_cache() {
    use std::os::unix::fs::DirBuilderExt;
    let cache = tempfile::tempdir().unwrap();
    // A pid that is gone (a child already reaped) and one that is alive
    // (this test process: maybe a worker of another pool, starting).
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = cache.path().join(format!(".worker-root-{dead}"));
    let live = cache
        .path()
        .join(format!(".worker-root-{}", std::process::id()));
    for dir in [&stale, &live] {
        std::fs::DirBuilder::new().mode(0o700).create(dir).unwrap();
    }
    let mut c = config(1, 0);
    c.engine.cache_dir = Some(cache.path().to_path_buf());
    let pool = start(c);
    assert!(!stale.exists(), "a dead worker's root is left");
    assert!(live.exists(), "a live process's root was removed");
    drop(pool);
}

#[test]
fn a_cancel_token_is_cheap_to_share_between_threads() {
    fn shareable<T: Send + Sync + Clone>() {}
    shareable::<Cancel>();
    let cancel = Cancel::new();
    let clone = cancel.clone();
    assert!(!cancel.is_cancelled());
    std::thread::spawn(move || clone.cancel()).join().unwrap();
    assert!(cancel.is_cancelled(), "clones share one flag");
}

#[test]
fn a_run_cancelled_while_its_worker_runs_ends_at_once_and_the_worker_is_replaced() {
    let pool = start(config(1, 0));
    let before = pool.worker_pids();
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path(), None);
    s.timeout = Duration::from_secs(60);
    let spinning = job(&pool, &spin(), s);
    let cancel = Cancel::new();
    std::thread::scope(|scope| {
        let run = scope.spawn(|| pool.run_cancellable(spinning, &cancel));
        wait_until("the spin to start", || pool.stats().idle == 0);
        std::thread::sleep(Duration::from_millis(200));
        cancel.cancel();
        // Not a timeout (after 60 s) nor a dead worker: cancelled.
        match run.join().unwrap() {
            Err(PoolError::Cancelled) => {}
            other => panic!("expected Cancelled, got {other:?}"),
        }
    });
    assert_eq!(pool.stats().idle, 1, "the slot is free again");
    let after = pool.worker_pids();
    assert_eq!(after.len(), 1);
    assert_ne!(after, before, "the killed worker was replaced");
    assert!(
        !Path::new(&format!("/proc/{}", before[0])).exists(),
        "the killed worker was reaped"
    );
    assert_hello(&pool, dir.path());
}

#[test]
fn a_queued_run_cancelled_stops_waiting_while_the_running_one_goes_on() {
    let pool = start(config(1, 1));
    let pids = pool.worker_pids();
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path(), None);
    s.timeout = Duration::from_secs(60);
    let spinning = job(&pool, &spin(), s);
    let (queued_session, out) = stdout_session(dir.path());
    let queued = job(&pool, &hello(), queued_session);
    let (first_cancel, second_cancel) = (Cancel::new(), Cancel::new());
    std::thread::scope(|scope| {
        let first = scope.spawn(|| pool.run_cancellable(spinning, &first_cancel));
        wait_until("the spin to start", || pool.stats().idle == 0);
        let second = scope.spawn(|| pool.run_cancellable(queued, &second_cancel));
        wait_until("the second run to queue", || pool.stats().waiting == 1);
        second_cancel.cancel();
        match second.join().unwrap() {
            Err(PoolError::Cancelled) => {}
            other => panic!("expected Cancelled, got {other:?}"),
        }
        // It returned while the first still runs (its session lasts 60 s).
        assert!(!first.is_finished(), "the first run is still going");
        assert_eq!(pool.stats().waiting, 0, "no longer queued");
        assert_eq!(pool.stats().idle, 0, "the running slot is still taken");
        assert_eq!(
            pool.worker_pids(),
            pids,
            "the running worker was left alone"
        );
        first_cancel.cancel();
        assert!(matches!(first.join().unwrap(), Err(PoolError::Cancelled)));
    });
    assert!(out.lock().unwrap().is_empty(), "the queued run never ran");
    assert_hello(&pool, dir.path());
}

#[test]
fn a_run_cancelled_before_it_starts_runs_nothing() {
    let pool = start(config(1, 0));
    let pids = pool.worker_pids();
    let dir = tempfile::tempdir().unwrap();
    let cancel = Cancel::new();
    cancel.cancel();
    let s = session(dir.path(), None);
    let r = pool.run_cancellable(job(&pool, &hello(), s), &cancel);
    assert!(matches!(r, Err(PoolError::Cancelled)), "{r:?}");
    assert!(
        !dir.path().join("out").exists(),
        "no channel source was even opened"
    );
    assert_eq!(pool.worker_pids(), pids, "no worker was touched");
    assert_eq!(pool.stats().idle, 1);
    assert_hello(&pool, dir.path());
}

#[test]
fn cancels_racing_short_runs_end_each_as_cancelled_or_done_and_the_pool_stays_whole() {
    let pool = start(config(1, 1));
    let dir = tempfile::tempdir().unwrap();
    for i in 0..12u64 {
        let (s, out) = stdout_session(dir.path());
        let j = job(&pool, &hello(), s);
        let cancel = Cancel::new();
        std::thread::scope(|scope| {
            let run = scope.spawn(|| pool.run_cancellable(j, &cancel));
            std::thread::sleep(Duration::from_micros(i * 700));
            cancel.cancel();
            match run.join().unwrap() {
                Ok(outcome) => {
                    assert_eq!(outcome.exit_code(), 0, "{:?}", outcome.detail);
                    assert_eq!(&*out.lock().unwrap(), b"hello, world\n");
                }
                Err(PoolError::Cancelled) => {}
                Err(e) => panic!("run {i}: {e}"),
            }
        });
        assert_eq!(pool.stats().idle, 1, "run {i}: the slot came back");
    }
    assert_hello(&pool, dir.path());
}

#[test]
fn every_thread_of_an_isolated_worker_is_filtered_the_watchdog_included() {
    let pool = start(config(1, 0));
    let pid = pool.worker_pids()[0];
    let mut names = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("the worker's threads") {
        let path = task.expect("a thread").path();
        let name = std::fs::read_to_string(path.join("comm")).expect("comm");
        let status = std::fs::read_to_string(path.join("status")).expect("status");
        let mode = status
            .lines()
            .find_map(|l| l.strip_prefix("Seccomp:"))
            .map(str::trim);
        // 2: SECCOMP_MODE_FILTER.
        assert_eq!(mode, Some("2"), "thread {}", name.trim());
        names.push(name.trim().to_string());
    }
    assert!(names.iter().any(|n| n == "watchdog"), "{names:?}");
    assert!(names.iter().any(|n| n == "guest"), "{names:?}");
}

/// What makes [`orphan_parent`] act, and as what: `busy` or `idle`.
const ORPHAN_ROLE: &str = "ZEROVM_TEST_ORPHAN_PARENT";
/// The directory the orphan test lends it (its pool's cache, the session's
/// files): the test's, so a SIGKILLed parent leaves nothing behind.
const ORPHAN_DIR: &str = "ZEROVM_TEST_ORPHAN_DIR";

/// Not a test by itself: the parent process of the orphan tests, which run
/// this test binary again for it alone. Starts a one-worker pool, as
/// `busy` has its worker spin in an infinite loop under an hour's timeout,
/// then prints `worker-pid=<pid>` and waits to be SIGKILLed. Should the
/// test go first (its end of our stdin closes), exits at once without
/// dropping the pool, orphaning the worker the same way.
#[test]
#[ignore = "the parent process of the orphan tests, started by them"]
fn orphan_parent() {
    use std::io::{Read, Write};
    let Ok(role) = std::env::var(ORPHAN_ROLE) else {
        return;
    };
    let dir = std::path::PathBuf::from(std::env::var_os(ORPHAN_DIR).expect(ORPHAN_DIR));
    let mut c = config(1, 0);
    c.engine.cache_dir = Some(dir.join("cache"));
    let pool = start(c);
    let pid = pool.worker_pids()[0];
    std::thread::scope(|scope| {
        if role == "busy" {
            let mut s = session(&dir, None);
            s.timeout = Duration::from_secs(3600);
            let spinning = job(&pool, &spin(), s);
            let _run = scope.spawn(|| pool.run(spinning));
            wait_until("the spin to start", || pool.stats().idle == 0);
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "\nworker-pid={pid}")
            .and_then(|()| out.flush())
            .expect("stdout");
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0)
    })
}

/// An [`orphan_parent`] process and its pool's worker, which this process
/// adopts (it is a child subreaper) when the parent dies. Dropped: the
/// parent is killed and reaped, and the worker too unless it was reaped.
struct Orphan {
    parent: std::process::Child,
    worker: rustix::process::Pid,
    reaped: bool,
    _stdin: std::process::ChildStdin,
    _dir: tempfile::TempDir,
}

impl Orphan {
    fn start(role: &str) -> Orphan {
        use std::io::BufRead;
        use std::process::Stdio;
        // Orphans come to this process instead of init: waited for here,
        // and killed safely should the test fail (an unreaped child's pid
        // cannot be reused). Set before the parent is spawned, so that the
        // kernel looks for a subreaper above it.
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .expect("PR_SET_CHILD_SUBREAPER");
        let dir = tempfile::tempdir().unwrap();
        let mut parent = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "orphan_parent", "--ignored", "--nocapture"])
            .args(["--test-threads=1"])
            .env(ORPHAN_ROLE, role)
            .env(ORPHAN_DIR, dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the parent process");
        let (stdin, stdout) = (parent.stdin.take(), parent.stdout.take());
        let named = stdout.and_then(|stdout| {
            std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .find_map(|l| l.strip_prefix("worker-pid=")?.trim().parse::<i32>().ok())
        });
        let Some((stdin, worker)) = stdin.zip(named.and_then(rustix::process::Pid::from_raw))
        else {
            let _ = parent.kill();
            let status = parent.wait();
            panic!("the parent process named no worker ({status:?})");
        };
        Orphan {
            parent,
            worker,
            reaped: false,
            _stdin: stdin,
            _dir: dir,
        }
    }

    /// The worker's CPU time so far, in clock ticks (`utime` + `stime`).
    fn worker_cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.worker.as_raw_nonzero()))
            .expect("the worker's stat");
        // Fields after the command name (which may hold spaces): state is
        // the 3rd field of the line, utime the 14th, stime the 15th.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field =
            |n: usize| -> u64 { fields.get(n - 3).and_then(|f| f.parse().ok()).unwrap_or(0) };
        field(14) + field(15)
    }

    /// SIGKILLs the parent, as a crash would, and reaps it.
    fn kill_parent(&mut self) {
        kill(self.parent.id());
        let status = self.parent.wait().expect("wait for the parent");
        assert_eq!(status.signal(), Some(9), "{status}");
    }

    /// How the (adopted) worker ended, if it did within `limit`.
    fn wait_for_worker(&mut self, limit: Duration) -> Option<rustix::process::WaitStatus> {
        use rustix::process::{waitpid, WaitOptions};
        let until = Instant::now() + limit;
        loop {
            match waitpid(Some(self.worker), WaitOptions::NOHANG) {
                Ok(Some((_, status))) => {
                    self.reaped = true;
                    return Some(status);
                }
                Ok(None) => {}
                Err(e) => panic!("waitpid for the worker: {e}"),
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Orphan {
    fn drop(&mut self) {
        use rustix::process::{waitpid, WaitOptions};
        let _ = self.parent.kill();
        let _ = self.parent.wait();
        // Killed only while it is this process's unreaped child: its pid
        // is still its own.
        if !self.reaped && matches!(waitpid(Some(self.worker), WaitOptions::NOHANG), Ok(None)) {
            let _ = rustix::process::kill_process(self.worker, rustix::process::Signal::KILL);
            let _ = waitpid(Some(self.worker), WaitOptions::empty());
        }
    }
}

/// Asserts the orphaned worker exits by itself (status 0, not a signal)
/// within a bound far above what it needs.
fn assert_orphan_exits(orphan: &mut Orphan) {
    orphan.kill_parent();
    let status = orphan
        .wait_for_worker(Duration::from_secs(10))
        .expect("the worker still runs 10 s after its parent died");
    assert_eq!(status.exit_status(), Some(0), "{status:?}");
}

#[test]
fn a_worker_running_a_guest_exits_when_its_parent_is_killed() {
    let mut orphan = Orphan::start("busy");
    // It spins: its CPU time grows (10 ticks: 0.1 s at the usual 100 Hz).
    let first = orphan.worker_cpu_ticks();
    wait_until("the worker to spin", || {
        orphan.worker_cpu_ticks() >= first + 10
    });
    assert_orphan_exits(&mut orphan);
}

#[test]
fn an_idle_worker_exits_when_its_parent_is_killed() {
    let mut orphan = Orphan::start("idle");
    assert_orphan_exits(&mut orphan);
}

#[test]
fn a_worker_whose_parent_is_gone_before_it_starts_exits() {
    use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
    let (ours, theirs) = socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    // The pool's end closed before the worker even runs: a parent that
    // died right after spawning it.
    drop(ours);
    let scratch = tempfile::tempdir().unwrap();
    let mut worker = std::process::Command::new(ZEROVM)
        .arg("--worker")
        .arg(format!("--scratch={}", scratch.path().display()))
        .stdin(std::process::Stdio::from(theirs))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = worker.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= until {
            let _ = worker.kill();
            let _ = worker.wait();
            panic!("the worker still runs 10 s after its parent was gone");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0), "{status}");
}

/// A guest that reports the state it starts from, then changes all of it:
/// one line `size=… hash=… g=… t=… c=…` (memory pages, a hash of every
/// byte of memory, a mutable global, whether table slot 2 is null, a
/// counter the start function bumps, if it has one), then it writes a
/// word into every page of its 4 MiB, grows the memory by 3 pages and
/// writes there, sets the global and fills table slot 2. `salt` makes
/// distinct modules (distinct data). Its memory image is file-backed data
/// at pages 16, 256 and the last page.
fn state_guest(with_start: bool, salt: u32) -> String {
    let start = if with_start {
        r#"(start $init)
           (func $init
             (i32.store (i32.const 2048) (i32.add (i32.load (i32.const 2048)) (i32.const 1)))
             (i32.store (i32.const 409600) (i32.const 0x5eed)))"#
    } else {
        ""
    };
    wat::module(
        64,
        &format!(
            r#"(global $g (mut i32) (i32.const 7))
           (table $t 4 funcref)
           (elem (i32.const 1) $f)
           (func $f (result i32) (i32.const 42))
           (data (i32.const 65536) "image page 16, salt {salt}")
           (data (i32.const 1048576) "image page 256")
           (data (i32.const 4190208) "the last page")
           {start}
           (func $hex (param $v i32) (param $at i32)
             (local $i i32) (local $d i32)
             (loop $l
               (local.set $d (i32.and
                 (i32.shr_u (local.get $v) (i32.sub (i32.const 28) (i32.mul (local.get $i) (i32.const 4))))
                 (i32.const 15)))
               (i32.store8 (i32.add (local.get $at) (local.get $i))
                 (select (i32.add (local.get $d) (i32.const 87)) (i32.add (local.get $d) (i32.const 48))
                   (i32.ge_u (local.get $d) (i32.const 10))))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $l (i32.lt_u (local.get $i) (i32.const 8)))))
           (func $hash (result i32)
             (local $p i32) (local $h i32) (local $end i32)
             (local.set $end (i32.mul (memory.size) (i32.const 65536)))
             (loop $l
               (local.set $h (i32.add (i32.mul (local.get $h) (i32.const 31)) (i32.load (local.get $p))))
               (local.set $p (i32.add (local.get $p) (i32.const 4)))
               (br_if $l (i32.lt_u (local.get $p) (local.get $end))))
             (local.get $h))
           (func (export "_start")
             (local $h i32) (local $p i32)
             (local.set $h (call $hash))
             (i64.store (i32.const 256) (i64.const 0x3d657a6973)) ;; "size="
             (call $hex (memory.size) (i32.const 261))
             (i64.store (i32.const 269) (i64.const 0x3d687361682c)) ;; ",hash="
             (call $hex (local.get $h) (i32.const 275))
             (i32.store (i32.const 283) (i32.const 0x3d672c)) ;; ",g="
             (call $hex (global.get $g) (i32.const 286))
             (i32.store (i32.const 294) (i32.const 0x3d742c)) ;; ",t="
             (call $hex (ref.is_null (table.get $t (i32.const 2))) (i32.const 297))
             (i32.store (i32.const 305) (i32.const 0x3d632c)) ;; ",c="
             (call $hex (i32.load (i32.const 2048)) (i32.const 308))
             (i32.store8 (i32.const 316) (i32.const 10))
             (drop (call $write (i32.const 1) (i32.const 256) (i32.const 61)))
             (loop $l
               (i32.store (i32.add (local.get $p) (i32.const 100)) (i32.const 0xdeadbeef))
               (local.set $p (i32.add (local.get $p) (i32.const 4096)))
               (br_if $l (i32.lt_u (local.get $p) (i32.const 4194304))))
             (i32.store (i32.const 65536) (i32.const 0x41414141))
             (drop (memory.grow (i32.const 3)))
             (i32.store (i32.const 4194404) (i32.const 0xfeedface))
             (i32.store (i32.const 4325372) (i32.const 0xfeedface))
             (global.set $g (i32.const 99))
             (table.set $t (i32.const 2) (ref.func $f)))"#
        ),
    )
}

/// What `wat` prints when it runs in-process, in a fresh engine of its own.
fn in_process_output(wat: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let engine = sandbox::engine::Engine::new(sandbox::engine::EngineConfig::default()).unwrap();
    let program = engine.prepare(wat.as_bytes()).expect("program");
    let out = shared(Vec::new());
    let mut s = session(dir.path(), None);
    s.buffers.insert("/dev/stdout".into(), out.clone());
    let outcome = engine.run(&program, &s);
    assert_eq!(outcome.exit_code(), 0, "{:?}", outcome.detail);
    let out = out.lock().unwrap().clone();
    out
}

/// Runs `wat` on `pool` and returns what it printed.
fn pool_output(pool: &Pool, wat: &str, dir: &Path) -> Vec<u8> {
    let (s, out) = stdout_session(dir);
    let outcome = pool.run(job(pool, wat, s)).expect("run");
    assert_eq!(outcome.exit_code(), 0, "{:?}", outcome.detail);
    let out = out.lock().unwrap().clone();
    out
}

#[test]
fn every_run_in_a_worker_starts_from_the_initial_memory_globals_and_table() {
    // One worker, so every run lands on the same one: with resident
    // memory, the run before has written every page, grown the memory,
    // changed the global and filled a table slot, and the next must see
    // none of it (the same line as a fresh engine prints). The start
    // function's module checks that its writes at instantiation are not
    // kept either (they are made again, from the image, each time).
    let pool = start(config(1, 0));
    let dir = tempfile::tempdir().unwrap();
    for wat in [state_guest(false, 0), state_guest(true, 0)] {
        let fresh = in_process_output(&wat);
        assert!(
            fresh.ends_with(b"\n"),
            "{}",
            String::from_utf8_lossy(&fresh)
        );
        for run in 0..6 {
            let out = pool_output(&pool, &wat, dir.path());
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&fresh),
                "run {run}"
            );
        }
    }
}

#[test]
fn memory_stays_pristine_when_programs_take_each_others_slots() {
    // A worker keeps the memories of 8 programs in their own slots. Here
    // 9 programs take turns so that a slot goes to another module (which
    // wasmtime maps anew, dropping the write tracking there) and then back
    // to the first one: A, B..H (the other 7 slots), X (takes A's, the
    // least recently used), B..H again, A (takes X's: its old slot). Every
    // run must start from its own module's initial memory.
    let pool = start(config(1, 0));
    let dir = tempfile::tempdir().unwrap();
    let programs: Vec<(String, Vec<u8>)> = (0..9)
        .map(|salt| {
            let wat = state_guest(salt % 3 == 0, salt);
            let fresh = in_process_output(&wat);
            (wat, fresh)
        })
        .collect();
    let order = [0, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 0, 8, 0];
    for round in 0..2 {
        for &i in &order {
            let (wat, fresh) = &programs[i];
            let out = pool_output(&pool, wat, dir.path());
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(fresh),
                "round {round}, program {i}"
            );
        }
    }
}

#[test]
fn workers_without_resident_memory_run_the_same() {
    let mut config = config(1, 0);
    config.resident_memory = false;
    let pool = start(config);
    let dir = tempfile::tempdir().unwrap();
    let wat = state_guest(true, 1);
    let fresh = in_process_output(&wat);
    for _ in 0..3 {
        assert_eq!(pool_output(&pool, &wat, dir.path()), fresh);
    }
}

#[test]
fn limits_end_runs_in_a_worker_as_in_process() {
    // The worker's pooling allocator has limits of its own; the session's
    // (memory cap, table elements) must still be what refuses, with the
    // same report as in-process.
    let pool = start(config(1, 0));
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        // 2 GiB of initial memory, over the manifest's 64 MiB.
        "(module (memory (export \"memory\") 32768) (func (export \"_start\")))",
        // More table elements than EngineConfig::table_elements (2^20).
        "(module (memory (export \"memory\") 1) (table 2000000 funcref) (func (export \"_start\")))",
    ];
    for wat in cases {
        let engine =
            sandbox::engine::Engine::new(sandbox::engine::EngineConfig::default()).unwrap();
        let program = engine.prepare(wat.as_bytes()).expect("program");
        let here = engine.run(&program, &session(dir.path(), None));
        let there = pool
            .run(job(&pool, wat, session(dir.path(), None)))
            .expect("run");
        assert_eq!(there.ending, here.ending, "{wat}: {:?}", there.detail);
        assert_eq!(there.exit_code(), here.exit_code());
        assert_eq!(
            there.ending.exit_state(),
            "invalid memory size",
            "{wat}: {:?}",
            there.detail
        );
    }
}
