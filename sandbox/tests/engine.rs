//! Whole-engine tests: WAT guests run through a manifest, channels on real
//! files, our WASI layer and wasmtime; hostile guests end with a clear report.

use std::time::Duration;

use sandbox::engine::{Engine, EngineConfig, Outcome, Session, ValidationError};
use sandbox::manifest::{Manifest, StdHost};
use sandbox::report::{Ending, Validation};

mod wat;
use wat::engine;

fn guest(body: &str) -> String {
    wat::module(1, body)
}

struct Run {
    outcome: Outcome,
    stdout: Vec<u8>,
    dir: tempfile::TempDir,
}

impl Run {
    fn state(&self) -> String {
        self.outcome.ending.exit_state()
    }
}

/// Runs `wasm` under a manifest with file-backed std channels plus `extra`
/// channel lines (`{dir}` stands for the temp dir); `files` are created first.
fn run_full(
    wasm: &[u8],
    stdin: &[u8],
    extra: &str,
    files: &[(&str, &[u8])],
    tweak: impl FnOnce(&mut Session),
) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).expect("file");
    }
    let mut session = wat::session(dir.path(), wasm, stdin, 5, extra);
    tweak(&mut session);
    let outcome = match engine().prepare(wasm) {
        Ok(program) => engine().run(&program, &session),
        Err(e) => Outcome::failed(
            Validation::Failed,
            Ending::ValidationFailed,
            Some(e.to_string()),
        ),
    };
    let stdout = std::fs::read(dir.path().join("stdout")).unwrap_or_default();
    Run {
        outcome,
        stdout,
        dir,
    }
}

/// A manifest in `dir` for `wasm` with the three standard channels
/// (`stdout` = the type, etag and limits fields of `/dev/stdout`), as a session.
fn session_in(dir: &std::path::Path, wasm: &[u8], stdout: &str) -> Session {
    let d = dir.to_str().expect("utf-8 temp dir");
    std::fs::write(dir.join("prog.wasm"), wasm).unwrap();
    std::fs::write(dir.join("in"), b"").unwrap();
    let text = format!(
        "Version = 20130611\nTimeout = 5\nMemory = 67108864,0\nProgram = {d}/prog.wasm\n\
         Channel = {d}/in,/dev/stdin,0,0,10,10,0,0\n\
         Channel = {d}/out,/dev/stdout,{stdout}\n\
         Channel = {d}/err,/dev/stderr,0,0,0,0,10,10\n"
    );
    let m = Manifest::parse(text.as_bytes()).unwrap();
    Session::from_manifest(&m, m.check(&StdHost).unwrap())
}

fn run(body: &str) -> Run {
    run_full(guest(body).as_bytes(), b"", "", &[], |_| {})
}

fn hello() -> String {
    guest(
        r#"(data (i32.const 64) "hello, world\n")
           (func (export "_start") (drop (call $write (i32.const 1) (i32.const 64) (i32.const 13))))"#,
    )
}

fn assert_healthy() {
    let r = run_full(hello().as_bytes(), b"", "", &[], |_| {});
    assert_eq!(r.stdout, b"hello, world\n");
    assert_eq!(r.outcome.exit_code(), 0);
}

#[test]
fn hello_writes_stdout_and_reports_ok() {
    let r = run_full(hello().as_bytes(), b"", "", &[], |_| {});
    assert_eq!(r.stdout, b"hello, world\n");
    assert_eq!(r.outcome.ending, Ending::Exited);
    assert_eq!(r.outcome.exit_code(), 0);
    let report = r.outcome.report.render();
    let lines: Vec<&str> = report.split('\n').collect();
    assert_eq!(&lines[..4], ["0", "0", "0", "disable"]);
    assert!(
        lines[4].ends_with(" 1 13 0 0 0 0"),
        "accounting {}",
        lines[4]
    );
    assert_eq!(lines[5], "ok");
}

#[test]
fn cat_copies_stdin_to_stdout() {
    let body = r#"
      (func (export "_start")
        (block $done (loop $next
          (i32.store (i32.const 16) (i32.const 1024))
          (i32.store (i32.const 20) (i32.const 7))
          (br_if $done (call $fd_read (i32.const 0) (i32.const 16) (i32.const 1) (i32.const 24)))
          (br_if $done (i32.eqz (i32.load (i32.const 24))))
          (drop (call $write (i32.const 1) (i32.const 1024) (i32.load (i32.const 24))))
          (br $next))))"#;
    let input = b"the quick brown fox jumps over the lazy dog\n".repeat(50);
    let r = run_full(guest(body).as_bytes(), &input, "", &[], |_| {});
    assert_eq!(r.outcome.exit_code(), 0, "{}", r.state());
    assert_eq!(r.stdout, input);
}

#[test]
fn proc_exit_code_is_the_user_code_and_zerovm_exits_0() {
    let r = run(r#"(func (export "_start") (call $proc_exit (i32.const 7)))"#);
    assert_eq!(r.outcome.report.user_code, 7);
    assert_eq!(r.outcome.exit_code(), 0);
    assert_eq!(r.state(), "ok");
}

#[test]
fn random_access_read_on_a_type_3_channel() {
    let body = r#"
      (data (i32.const 64) "/dev/input")
      (func (export "_start") (local $fd i32) (local $e i32)
        (local.set $e (call $open (i32.const 64) (i32.const 10) (i32.const 0) (i64.const 2)))
        (if (local.get $e) (then (call $proc_exit (local.get $e))))
        (local.set $fd (i32.load (i32.const 12)))
        ;; pread 4 bytes at offset 6
        (i32.store (i32.const 16) (i32.const 1024))
        (i32.store (i32.const 20) (i32.const 4))
        (local.set $e (call $fd_pread (local.get $fd) (i32.const 16) (i32.const 1) (i64.const 6) (i32.const 24)))
        (if (local.get $e) (then (call $proc_exit (local.get $e))))
        (drop (call $write (i32.const 1) (i32.const 1024) (i32.load (i32.const 24))))
        ;; seek to 2, read 3
        (drop (call $fd_seek (local.get $fd) (i64.const 2) (i32.const 0) (i32.const 32)))
        (i32.store (i32.const 20) (i32.const 3))
        (drop (call $fd_read (local.get $fd) (i32.const 16) (i32.const 1) (i32.const 24)))
        (drop (call $write (i32.const 1) (i32.const 1024) (i32.load (i32.const 24))))
        ;; seeking stdin (sequential) is ESPIPE
        (call $proc_exit (call $fd_seek (i32.const 0) (i64.const 2) (i32.const 0) (i32.const 32))))"#;
    let r = run_full(
        guest(body).as_bytes(),
        b"",
        "Channel = {dir}/input,/dev/input,3,0,100,1000,0,0\n",
        &[("input", b"0123456789")],
        |_| {},
    );
    assert_eq!(String::from_utf8_lossy(&r.stdout), "6789234");
    assert_eq!(r.outcome.report.user_code, 70, "ESPIPE");
}

#[test]
fn writing_past_put_size_is_short_then_edquot_and_output_holds_the_quota() {
    let body = r#"
      (data (i32.const 64) "hello world")
      (func (export "_start")
        (drop (call $write (i32.const 1) (i32.const 64) (i32.const 11)))
        (if (i32.ne (i32.load (i32.const 8)) (i32.const 5)) (then (call $proc_exit (i32.const 99))))
        (call $proc_exit (call $write (i32.const 1) (i32.const 69) (i32.const 6))))"#;
    let wasm = guest(body);
    let dir = tempfile::tempdir().unwrap();
    let session = session_in(dir.path(), wasm.as_bytes(), "0,0,0,0,10,5");
    let outcome = engine().run(&engine().prepare(wasm.as_bytes()).unwrap(), &session);
    assert_eq!(outcome.report.user_code, 19, "WASI EDQUOT");
    assert_eq!(std::fs::read(dir.path().join("out")).unwrap(), b"hello");
}

fn dirents(buf: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut at = 0;
    while at + 24 <= buf.len() {
        let len = u32::from_le_bytes(buf[at + 16..at + 20].try_into().unwrap()) as usize;
        let end = (at + 24 + len).min(buf.len());
        names.push(String::from_utf8_lossy(&buf[at + 24..end]).into_owned());
        at = end;
    }
    names
}

#[test]
fn listing_dev_in_shows_the_channels() {
    let body = r#"
      (data (i32.const 64) "/dev/in")
      (func (export "_start") (local $e i32)
        (local.set $e (call $open (i32.const 64) (i32.const 7) (i32.const 2) (i64.const 16384)))
        (if (local.get $e) (then (call $proc_exit (local.get $e))))
        (local.set $e (call $fd_readdir (i32.load (i32.const 12)) (i32.const 1024) (i32.const 1024) (i64.const 0) (i32.const 24)))
        (if (local.get $e) (then (call $proc_exit (local.get $e))))
        (drop (call $write (i32.const 1) (i32.const 1024) (i32.load (i32.const 24)))))"#;
    let r = run_full(
        guest(body).as_bytes(),
        b"",
        "Channel = {dir}/a,/dev/in/alpha,3,0,10,10,0,0\nChannel = {dir}/b,/dev/in/beta,0,0,10,10,0,0\n",
        &[("a", b"a"), ("b", b"b")],
        |_| {},
    );
    assert_eq!(r.outcome.report.user_code, 0, "{}", r.state());
    assert_eq!(dirents(&r.stdout), [".", "..", "alpha", "beta"]);
}

/// Reads the file at the path in the data segment to stdout; exit code = errno.
fn reader(path: &str) -> String {
    guest(&format!(
        r#"(data (i32.const 64) "{path}")
           (func (export "_start") (local $e i32)
             (local.set $e (call $open (i32.const 64) (i32.const {len}) (i32.const 0) (i64.const 2)))
             (if (local.get $e) (then (call $proc_exit (local.get $e))))
             (i32.store (i32.const 16) (i32.const 1024))
             (i32.store (i32.const 20) (i32.const 4096))
             (local.set $e (call $fd_read (i32.load (i32.const 12)) (i32.const 16) (i32.const 1) (i32.const 24)))
             (if (local.get $e) (then (call $proc_exit (local.get $e))))
             (drop (call $write (i32.const 1) (i32.const 1024) (i32.load (i32.const 24)))))"#,
        len = path.len()
    ))
}

#[test]
fn reading_a_file_from_a_tar_image_mounted_by_nvram() {
    let image: &[u8] = include_bytes!("fixtures/ustar.tar");
    let nvram = b"[fstab]\nchannel=/dev/image,mountpoint=/opt,access=ro,removable=no\n";
    let r = run_full(
        reader("/opt/img/link").as_bytes(),
        b"",
        "Channel = {dir}/image.tar,/dev/image,3,0,1000,10000000,0,0\n\
         Channel = {dir}/nvram,/dev/nvram,3,0,100,100000,0,0\n",
        &[("image.tar", image), ("nvram", nvram)],
        |_| {},
    );
    assert_eq!(
        r.outcome.report.user_code,
        0,
        "{} {:?}",
        r.state(),
        r.outcome.detail
    );
    assert_eq!(r.stdout, b"hello\n");
    // Writing into the image is refused (EROFS).
    let wasm = guest(
        r#"(data (i32.const 64) "/opt/img/hello.txt")
           (func (export "_start") (call $proc_exit (call $open (i32.const 64) (i32.const 18) (i32.const 0) (i64.const 64))))"#,
    );
    let r = run_full(
        wasm.as_bytes(),
        b"",
        "Channel = {dir}/image.tar,/dev/image,3,0,1000,10000000,0,0\n\
         Channel = {dir}/nvram,/dev/nvram,3,0,100,100000,0,0\n",
        &[("image.tar", image), ("nvram", nvram)],
        |_| {},
    );
    assert_eq!(r.outcome.report.user_code, 69, "EROFS");
}

#[test]
fn args_and_env_come_from_the_nvram() {
    let body = r#"
      (func (export "_start")
        (drop (call $args_sizes_get (i32.const 100) (i32.const 104)))
        (drop (call $args_get (i32.const 200) (i32.const 1024)))
        (drop (call $write (i32.const 1) (i32.const 1024) (i32.load (i32.const 104))))
        (drop (call $environ_sizes_get (i32.const 100) (i32.const 104)))
        (drop (call $environ_get (i32.const 200) (i32.const 2048)))
        (drop (call $write (i32.const 1) (i32.const 2048) (i32.load (i32.const 104)))))"#;
    let nvram = b"[args]\nargs = prog hello\\x20there world\n[env]\nname=FOO,value=bar\n";
    let r = run_full(
        guest(body).as_bytes(),
        b"",
        "Channel = {dir}/nvram,/dev/nvram,3,0,100,100000,0,0\n",
        &[("nvram", nvram)],
        |_| {},
    );
    assert_eq!(r.stdout, b"prog\0hello there\0world\0FOO=bar\0");
}

#[test]
fn writable_layer_holds_files_for_the_run_only() {
    let body = r#"
      (data (i32.const 64) "/tmp.txt")
      (data (i32.const 80) "scratch")
      (func (export "_start") (local $e i32)
        ;; create + write
        (local.set $e (call $open (i32.const 64) (i32.const 8) (i32.const 1) (i64.const 64)))
        (if (local.get $e) (then (call $proc_exit (local.get $e))))
        (drop (call $write (i32.load (i32.const 12)) (i32.const 80) (i32.const 7)))
        ;; reopen for reading, copy to stdout
        (local.set $e (call $open (i32.const 64) (i32.const 8) (i32.const 0) (i64.const 2)))
        (if (local.get $e) (then (call $proc_exit (local.get $e))))
        (i32.store (i32.const 16) (i32.const 1024))
        (i32.store (i32.const 20) (i32.const 100))
        (drop (call $fd_read (i32.load (i32.const 12)) (i32.const 16) (i32.const 1) (i32.const 24)))
        (drop (call $write (i32.const 1) (i32.const 1024) (i32.load (i32.const 24)))))"#;
    let r = run(body);
    assert_eq!(r.stdout, b"scratch");
    assert!(!r.dir.path().join("tmp.txt").exists());
    // A new run does not see it.
    let r = run_full(reader("/tmp.txt").as_bytes(), b"", "", &[], |_| {});
    assert_eq!(r.outcome.report.user_code, 44, "ENOENT");
}

#[test]
fn host_paths_undeclared_channels_and_escapes_are_enoent() {
    for path in [
        "/etc/passwd",
        "../../etc/passwd",
        "/dev/../../../etc/passwd",
        "/dev/secret",
        "/proc/self/environ",
    ] {
        let r = run_full(reader(path).as_bytes(), b"", "", &[], |_| {});
        assert_eq!(r.outcome.report.user_code, 44, "{path}: ENOENT");
        assert!(r.stdout.is_empty());
    }
}

#[test]
fn bad_pointers_are_efault_and_unknown_wasi_calls_are_enosys() {
    let r = run(
        r#"(func (export "_start") (call $proc_exit (call $write (i32.const 1) (i32.const -16) (i32.const 64))))"#,
    );
    assert_eq!(r.outcome.report.user_code, 21, "EFAULT");
    let r = run(
        r#"(func (export "_start") (call $proc_exit (call $accept (i32.const 0) (i32.const 0) (i32.const 0))))"#,
    );
    assert_eq!(r.outcome.report.user_code, 52, "ENOSYS");
}

#[test]
fn infinite_loop_times_out() {
    let wasm = guest(r#"(func (export "_start") (loop $l (br $l)))"#);
    let r = run_full(wasm.as_bytes(), b"", "", &[], |s| {
        s.timeout = Duration::from_millis(100)
    });
    assert_eq!(r.outcome.ending, Ending::Timeout);
    assert_eq!(r.state(), "session timeout");
    assert_eq!(r.outcome.exit_code(), 4);
    assert_healthy();
}

/// A guest making one `poll_oneoff` call over `subscriptions` copies of
/// one subscription (userdata 0x1234) of type `tag`: a relative monotonic
/// clock of `nanos` (0), or descriptor 0 (1: fd_read). Exits 0 when one
/// event came back, that subscription's, without error; else 100 + errno,
/// 50 (event count), 51 (event fields) or 52 (the guest's own monotonic
/// clock advanced less than `nanos` across the call).
fn poller(tag: u32, nanos: u64, subscriptions: u32) -> String {
    wat::module_importing(
        r#"(import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
           (import "wasi_snapshot_preview1" "clock_time_get" (func $now (param i32 i64 i32) (result i32)))"#,
        1,
        &format!(
            r#"(func (export "_start") (local $e i32)
                 (i64.store (i32.const 1024) (i64.const 0x1234))
                 (i32.store8 (i32.const 1032) (i32.const {tag}))
                 (i32.store (i32.const 1040) (i32.const {fd_or_clock}))
                 (i64.store (i32.const 1048) (i64.const {nanos}))
                 (i64.store (i32.const 1056) (i64.const 0))
                 (i32.store16 (i32.const 1064) (i32.const 0))
                 (drop (call $now (i32.const 1) (i64.const 0) (i32.const 3000)))
                 (local.set $e (call $poll (i32.const 1024) (i32.const 2048) (i32.const {subscriptions}) (i32.const 4000)))
                 (if (local.get $e) (then (call $proc_exit (i32.add (i32.const 100) (local.get $e)))))
                 (drop (call $now (i32.const 1) (i64.const 0) (i32.const 3008)))
                 (if (i64.lt_u (i64.sub (i64.load (i32.const 3008)) (i64.load (i32.const 3000))) (i64.const {nanos}))
                   (then (call $proc_exit (i32.const 52))))
                 (if (i32.ne (i32.load (i32.const 4000)) (i32.const 1)) (then (call $proc_exit (i32.const 50))))
                 (if (i64.ne (i64.load (i32.const 2048)) (i64.const 0x1234)) (then (call $proc_exit (i32.const 51))))
                 (if (i32.load16_u (i32.const 2056)) (then (call $proc_exit (i32.const 51))))
                 (if (i32.ne (i32.load8_u (i32.const 2058)) (i32.const {tag})) (then (call $proc_exit (i32.const 51)))))"#,
            fd_or_clock = if tag == 0 { 1 } else { 0 },
        ),
    )
}

/// [`poller`] with one clock subscription.
fn sleeper(nanos: u64, subscriptions: u32) -> String {
    poller(0, nanos, subscriptions)
}

#[test]
fn poll_oneoff_sleeps_on_a_clock() {
    // The guest checks on its own monotonic clock that 50 ms went by (exit 52 if not).
    let r = run_full(sleeper(50_000_000, 1).as_bytes(), b"", "", &[], |_| {});
    wat::assert_exited(&r.outcome, 0);
    // No subscription at all: EINVAL (28).
    let r = run_full(sleeper(0, 0).as_bytes(), b"", "", &[], |_| {});
    wat::assert_exited(&r.outcome, 128);
    // A descriptor is ready at once: no sleep, its event alone.
    let r = run_full(poller(1, 0, 1).as_bytes(), b"", "", &[], |_| {});
    wat::assert_exited(&r.outcome, 0);
    // An unknown subscription type: EINVAL.
    let r = run_full(poller(9, 0, 1).as_bytes(), b"", "", &[], |_| {});
    wat::assert_exited(&r.outcome, 128);
}

#[test]
fn a_sleep_past_the_timeout_ends_the_session_at_the_timeout() {
    // 60 s asked, 300 ms allowed: a session timeout, at the timeout.
    let started = std::time::Instant::now();
    let r = run_full(sleeper(60_000_000_000, 1).as_bytes(), b"", "", &[], |s| {
        s.timeout = Duration::from_millis(300)
    });
    assert_eq!(r.outcome.ending, Ending::Timeout, "{:?}", r.outcome.detail);
    assert_eq!(r.state(), "session timeout");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert_healthy();
}

#[test]
fn memory_bomb_hits_the_cap() {
    let wasm = guest(
        r#"(func (export "_start")
             (loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
             unreachable)"#,
    );
    let r = run_full(wasm.as_bytes(), b"", "", &[], |s| s.memory = 16 << 20);
    assert!(
        matches!(r.outcome.ending, Ending::Trap(_)),
        "{:?}",
        r.outcome.ending
    );
    assert!(r.state().contains("memory exhausted"), "{}", r.state());
    assert_eq!(r.outcome.exit_code(), 4);
    assert_healthy();
}

#[test]
fn unbounded_recursion_exhausts_the_stack() {
    let wasm = guest(r#"(func $f (call $f)) (func (export "_start") (call $f))"#);
    let r = run_full(wasm.as_bytes(), b"", "", &[], |_| {});
    assert_eq!(r.state(), "wasm trap: call stack exhausted");
    assert_eq!(r.outcome.exit_code(), 4);
    assert_healthy();
}

#[test]
fn huge_declared_memory_or_table_fails_with_enomem() {
    for wasm in [
        r#"(module (memory (export "memory") 65536) (func (export "_start")))"#,
        r#"(module (memory (export "memory") 1) (table 5000000 funcref) (func (export "_start")))"#,
    ] {
        assert!(engine().prepare(wasm.as_bytes()).is_ok(), "{wasm}");
        let r = run_full(wasm.as_bytes(), b"", "", &[], |_| {});
        assert_eq!(r.outcome.exit_code(), 12, "{wasm}: {}", r.state());
        assert_eq!(r.state(), "invalid memory size");
    }
    // Past what wasm allows at all (memory32 tops at 65536 pages): validation.
    let wasm = r#"(module (memory (export "memory") 65537) (func (export "_start")))"#;
    let r = run_full(wasm.as_bytes(), b"", "", &[], |_| {});
    assert_eq!(r.outcome.exit_code(), 8, "{}", r.state());
    assert_healthy();
}

#[test]
fn malformed_wasm_fails_validation() {
    let bytes = b"\0asm\x01\0\0\0\x01\xff\xff\xff garbage";
    assert!(matches!(
        engine().prepare(bytes),
        Err(ValidationError::Invalid(_))
    ));
    let r = run_full(bytes, b"", "", &[], |_| {});
    assert_eq!(r.outcome.report.validation, Validation::Failed);
    assert_eq!(r.state(), "validation failed");
    assert_eq!(r.outcome.exit_code(), 8);
    assert_healthy();
}

#[test]
fn unknown_imports_fail_validation_before_running() {
    let wasm = r#"(module (import "env" "system" (func (param i32) (result i32)))
                  (memory (export "memory") 1) (func (export "_start")))"#;
    match engine().prepare(wasm.as_bytes()) {
        Err(ValidationError::UnknownImport { module, name }) => {
            assert_eq!((module.as_str(), name.as_str()), ("env", "system"))
        }
        other => panic!("{other:?}"),
    }
    // A served WASI function imported with the wrong signature.
    let wasm = r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32)))
                  (memory (export "memory") 1) (func (export "_start")))"#;
    assert!(matches!(
        engine().prepare(wasm.as_bytes()),
        Err(ValidationError::Invalid(_))
    ));
    let wasm = r#"(module (memory (export "memory") 1))"#;
    assert_eq!(
        engine().prepare(wasm.as_bytes()).unwrap_err(),
        ValidationError::NoStart
    );
}

#[test]
fn etags_are_md5_of_channel_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = hello();
    let session = session_in(dir.path(), wasm.as_bytes(), "0,1,0,0,10,100");
    let outcome = engine().run(&engine().prepare(wasm.as_bytes()).unwrap(), &session);
    // md5("hello, world\n")
    assert_eq!(
        outcome.report.etag_line(),
        "/dev/stdout 22c3683b094136c3398391ae71b20f04"
    );
}

#[test]
fn in_memory_buffers_stand_in_for_channel_sources() {
    let out = sandbox::channel::shared(Vec::new());
    let dir = tempfile::tempdir().unwrap();
    let mut session = session_in(dir.path(), hello().as_bytes(), "0,0,0,0,10,100");
    session.buffers.insert("/dev/stdout".into(), out.clone());
    let outcome = engine().run(&engine().prepare(hello().as_bytes()).unwrap(), &session);
    assert_eq!(outcome.exit_code(), 0, "{:?}", outcome.detail);
    assert_eq!(&*out.lock().unwrap(), b"hello, world\n");
    assert!(
        std::fs::read(dir.path().join("out")).is_err(),
        "the host source is never opened"
    );
}

#[test]
fn compiled_modules_are_cached_on_disk_and_reused() {
    let cache = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        cache_dir: Some(cache.path().join("cwasm")),
        ..EngineConfig::default()
    };
    let first = Engine::new(config.clone()).unwrap();
    first.prepare(hello().as_bytes()).unwrap();
    let artifacts: Vec<_> = std::fs::read_dir(cache.path().join("cwasm"))
        .unwrap()
        .collect();
    assert_eq!(artifacts.len(), 1, "one .cwasm, no temporary left");
    // A new engine (as in a new process) loads it and runs it.
    let second = Engine::new(config).unwrap();
    let program = second.prepare(hello().as_bytes()).unwrap();
    let out = sandbox::channel::shared(Vec::new());
    let dir = tempfile::tempdir().unwrap();
    let mut session = session_in(dir.path(), hello().as_bytes(), "0,0,0,0,10,100");
    session.buffers.insert("/dev/stdout".into(), out.clone());
    let outcome = second.run(&program, &session);
    assert_eq!(outcome.exit_code(), 0, "{:?}", outcome.detail);
    assert_eq!(&*out.lock().unwrap(), b"hello, world\n");
}

/// Prints the in-process per-run time of the WAT hello (never asserts on it):
/// `cargo test -p sandbox --release --test engine -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_hello_per_run() {
    let program = engine().prepare(hello().as_bytes()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut session = session_in(dir.path(), hello().as_bytes(), "0,0,0,0,10,100");
    let out = sandbox::channel::shared(Vec::new());
    for alias in ["/dev/stdin", "/dev/stdout", "/dev/stderr"] {
        session.buffers.insert(alias.into(), out.clone());
    }
    let percentiles = |mut times: Vec<Duration>| {
        times.sort();
        (times[times.len() / 2], times[times.len() * 9 / 10])
    };
    let mut times = Vec::new();
    for _ in 0..2000 {
        let t = std::time::Instant::now();
        let o = engine().run(&program, &session);
        times.push(t.elapsed());
        assert_eq!(o.exit_code(), 0);
    }
    let (p50, p90) = percentiles(times);
    println!("WAT hello, Engine::run (own thread per run): p50 {p50:?} p90 {p90:?}");
    let times = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .stack_size(engine().run_thread_stack())
            .spawn_scoped(scope, || {
                (0..2000)
                    .map(|_| {
                        let t = std::time::Instant::now();
                        let o = engine().run_on_current_thread(&program, &session);
                        assert_eq!(o.exit_code(), 0);
                        t.elapsed()
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap()
            .join()
            .unwrap()
    });
    let (p50, p90) = percentiles(times);
    println!("WAT hello, Engine::run_on_current_thread: p50 {p50:?} p90 {p90:?}");
}

#[test]
fn filling_the_writable_layer_stops_at_the_memory_cap_with_enospc() {
    let wasm = guest(
        r#"(data (i32.const 64) "/big")
           (func (export "_start") (local $e i32) (local $fd i32)
             (local.set $e (call $open (i32.const 64) (i32.const 4) (i32.const 1) (i64.const 64)))
             (if (local.get $e) (then (call $proc_exit (i32.const 1000))))
             (local.set $fd (i32.load (i32.const 12)))
             (loop $more
               (local.set $e (call $write (local.get $fd) (i32.const 0) (i32.const 65536)))
               (br_if $more (i32.eqz (local.get $e))))
             (call $proc_exit (local.get $e)))"#,
    );
    let r = run_full(wasm.as_bytes(), b"", "", &[], |s| s.memory = 4 << 20);
    assert_eq!(r.outcome.report.user_code, 51, "ENOSPC: {}", r.state());
    assert_healthy();
}

#[test]
fn descriptors_run_out_with_emfile() {
    let wasm = guest(
        r#"(data (i32.const 64) "/dev/stdin")
           (func (export "_start") (local $e i32)
             (loop $more
               (local.set $e (call $open (i32.const 64) (i32.const 10) (i32.const 0) (i64.const 2)))
               (br_if $more (i32.eqz (local.get $e))))
             (call $proc_exit (local.get $e)))"#,
    );
    let r = run_full(wasm.as_bytes(), b"", "", &[], |_| {});
    assert_eq!(r.outcome.report.user_code, 33, "EMFILE: {}", r.state());
}

#[test]
fn a_command_style_run_export_is_the_entry_when_there_is_no_start() {
    // The Python image exports `run() -> i32` and no `_start`.
    let r = run(r#"(data (i32.const 64) "from run\n")
        (func (export "run") (result i32)
          (drop (call $write (i32.const 1) (i32.const 64) (i32.const 9)))
          (i32.const 3))"#);
    assert_eq!(r.stdout, b"from run\n");
    assert_eq!(r.outcome.report.user_code, 3);
    assert_eq!(r.state(), "ok");
    let r =
        run(r#"(func (export "run") (result i32) (call $proc_exit (i32.const 9)) (i32.const 1))"#);
    assert_eq!(r.outcome.report.user_code, 9);
}

#[test]
fn a_run_export_of_the_wrong_type_is_no_entry_point() {
    let r = run(r#"(func (export "run") (param i32))"#);
    assert_eq!(r.outcome.exit_code(), 8, "{}", r.state());
    assert!(r
        .outcome
        .detail
        .as_deref()
        .is_some_and(|d| d.contains("no _start")));
}
