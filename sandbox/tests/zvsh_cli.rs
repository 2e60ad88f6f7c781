//! The `zvsh` binary: WAT guests (the engine compiles wasm text as well as
//! binary, so the `.wasm` files hold text) run like local commands.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const IMPORTS: &str = r#"
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  ;; write(fd, ptr, len) through an iovec at 0, nwritten at 8
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  ;; NULs in [ptr, ptr+len) become newlines
  (func $lines (param $ptr i32) (param $len i32) (local $i i32)
    (block $d (loop $l
      (br_if $d (i32.ge_u (local.get $i) (local.get $len)))
      (if (i32.eqz (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
        (then (i32.store8 (i32.add (local.get $ptr) (local.get $i)) (i32.const 10))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l))))
"#;

fn guest(body: &str) -> String {
    format!("(module {IMPORTS} {body})")
}

/// Prints "hi" on stdout and "oops" on stderr, exits with `code`.
fn hello(code: i32) -> String {
    guest(&format!(
        r#"(data (i32.const 64) "hi\noops\n")
           (func (export "_start")
             (call $write (i32.const 1) (i32.const 64) (i32.const 3))
             (call $write (i32.const 2) (i32.const 67) (i32.const 5))
             (call $proc_exit (i32.const {code})))"#
    ))
}

/// `cat [FILE]`: FILE (argv[1]) or stdin to stdout; exits 100+errno if
/// FILE cannot be opened.
fn cat() -> String {
    guest(
        r#"(func (export "_start") (local $fd i32) (local $n i32) (local $p i32) (local $len i32) (local $e i32)
    (drop (call $args_sizes_get (i32.const 16) (i32.const 20)))
    (drop (call $args_get (i32.const 1024) (i32.const 2048)))
    (if (i32.ge_u (i32.load (i32.const 16)) (i32.const 2))
      (then
        (local.set $p (i32.load (i32.const 1028)))
        (block $d (loop $l
          (br_if $d (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $len)))))
          (local.set $len (i32.add (local.get $len) (i32.const 1)))
          (br $l)))
        (local.set $e (call $path_open (i32.const 3) (i32.const 0) (local.get $p) (local.get $len)
          (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 12)))
        (if (local.get $e) (then (call $proc_exit (i32.add (i32.const 100) (local.get $e)))))
        (local.set $fd (i32.load (i32.const 12)))))
    (block $done (loop $more
      (i32.store (i32.const 0) (i32.const 8192))
      (i32.store (i32.const 4) (i32.const 4096))
      (local.set $e (call $fd_read (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
      (if (local.get $e) (then (call $proc_exit (i32.add (i32.const 200) (local.get $e)))))
      (local.set $n (i32.load (i32.const 8)))
      (br_if $done (i32.eqz (local.get $n)))
      (i32.store (i32.const 4) (local.get $n))
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (br $more))))"#,
    )
}

/// Prints argv, then the environment, one per line.
fn echo() -> String {
    guest(
        r#"(func (export "_start")
    (drop (call $args_sizes_get (i32.const 16) (i32.const 20)))
    (drop (call $args_get (i32.const 1024) (i32.const 4096)))
    (call $lines (i32.const 4096) (i32.load (i32.const 20)))
    (call $write (i32.const 1) (i32.const 4096) (i32.load (i32.const 20)))
    (drop (call $environ_sizes_get (i32.const 16) (i32.const 20)))
    (drop (call $environ_get (i32.const 1024) (i32.const 8192)))
    (call $lines (i32.const 8192) (i32.load (i32.const 20)))
    (call $write (i32.const 1) (i32.const 8192) (i32.load (i32.const 20))))"#,
    )
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn zvsh_in(dir: &Path, args: &[&str], stdin: &[u8]) -> Out {
    let mut child = Command::new(env!("CARGO_BIN_EXE_zvsh"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A temp dir holding `files`.
fn dir_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    dir
}

/// A one-member ustar archive.
fn tar_of(name: &str, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
    out
}

#[test]
fn hello_streams_and_user_exit_code() {
    let dir = dir_with(&[("hello.wasm", hello(0).as_bytes())]);
    let out = zvsh_in(dir.path(), &["hello.wasm"], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "hi\n");
    assert_eq!(out.stderr, "oops\n");
    // Nothing is left behind in the working directory.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1);
}

#[test]
fn cat_of_an_at_file_and_of_stdin() {
    let dir = dir_with(&[
        ("cat.wasm", cat().as_bytes()),
        ("input.txt", b"file contents\n"),
    ]);
    let out = zvsh_in(dir.path(), &["cat.wasm", "@input.txt"], b"");
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "file contents\n"),
        "{}",
        out.stderr
    );
    let out = zvsh_in(dir.path(), &["cat.wasm"], b"from stdin\n");
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "from stdin\n"),
        "{}",
        out.stderr
    );
    // A missing @file (a typo) is refused by name, and not created.
    let out = zvsh_in(dir.path(), &["cat.wasm", "@nope.txt"], b"");
    assert_eq!(out.code, 22, "{}", out.stderr);
    assert!(
        out.stderr.starts_with("zvsh: @nope.txt: no such file ("),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("touch nope.txt"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(!dir.path().join("nope.txt").exists());
}

#[test]
fn a_program_writes_into_an_at_file() {
    // Opens argv[1] for writing and writes "written".
    let writer = guest(
        r#"(data (i32.const 64) "written")
    (func (export "_start") (local $p i32) (local $len i32) (local $e i32)
    (drop (call $args_sizes_get (i32.const 16) (i32.const 20)))
    (drop (call $args_get (i32.const 1024) (i32.const 2048)))
    (local.set $p (i32.load (i32.const 1028)))
    (block $d (loop $l
      (br_if $d (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $len)))))
      (local.set $len (i32.add (local.get $len) (i32.const 1)))
      (br $l)))
    (local.set $e (call $path_open (i32.const 3) (i32.const 0) (local.get $p) (local.get $len)
      (i32.const 0) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 12)))
    (if (local.get $e) (then (call $proc_exit (i32.add (i32.const 100) (local.get $e)))))
    (call $write (i32.load (i32.const 12)) (i32.const 64) (i32.const 7)))"#,
    );
    // An output @file is created first (a missing one is refused).
    let dir = dir_with(&[("writer.wasm", writer.as_bytes()), ("result.txt", b"")]);
    let out = zvsh_in(dir.path(), &["writer.wasm", "@result.txt"], b"");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("result.txt")).unwrap(),
        "written"
    );
}

#[test]
fn stdout_appended_to_a_regular_file_keeps_what_was_there() {
    let dir = dir_with(&[("hello.wasm", hello(0).as_bytes()), ("log", b"before\n")]);
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("log"))
        .unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_zvsh"))
        .arg("hello.wasm")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("log")).unwrap(),
        "before\nhi\n"
    );
}

#[test]
fn arguments_pass_through_and_at_arguments_are_rewritten() {
    let dir = dir_with(&[("echo.wasm", echo().as_bytes()), ("in.txt", b"x")]);
    let out = zvsh_in(
        dir.path(),
        &[
            "echo.wasm",
            "-n",
            "a b",
            "@in.txt",
            "@GREETING=hi there",
            "--zvm-debug",
            "z,y",
        ],
        b"",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "echo.wasm\n-n\na b\n/dev/1.in.txt\n--zvm-debug\nz,y\nGREETING=hi there\n"
    );
}

#[test]
fn image_files_are_readable_and_a_program_boots_from_an_image() {
    let image: &[u8] = include_bytes!("fixtures/ustar.tar");
    let dir = dir_with(&[("cat.wasm", cat().as_bytes()), ("img.tar", image)]);
    let out = zvsh_in(
        dir.path(),
        &[
            "--zvm-image",
            "img.tar,/opt",
            "cat.wasm",
            "/opt/img/hello.txt",
        ],
        b"",
    );
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "hello\n"),
        "{}",
        out.stderr
    );
    // At / by default.
    let out = zvsh_in(
        dir.path(),
        &["--zvm-image=img.tar", "cat.wasm", "/img/link"],
        b"",
    );
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "hello\n"),
        "{}",
        out.stderr
    );
    // The command names a member of the image: that member runs.
    let app = tar_of("hello", hello(9).as_bytes());
    std::fs::write(dir.path().join("app.tar"), app).unwrap();
    let out = zvsh_in(dir.path(), &["--zvm-image", "app.tar", "hello"], b"");
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (9, "hi\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn save_dir_keeps_manifest_nvram_and_report() {
    let dir = dir_with(&[("cat.wasm", cat().as_bytes()), ("input.txt", b"abc")]);
    let out = zvsh_in(
        dir.path(),
        &["--zvm-save-dir", "saved", "cat.wasm", "@input.txt"],
        b"",
    );
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "abc"),
        "{}",
        out.stderr
    );
    let saved = dir.path().join("saved");
    let d = dir.path().canonicalize().unwrap();
    let d = d.to_str().unwrap();
    let manifest = std::fs::read_to_string(saved.join("manifest.1")).unwrap();
    assert!(
        manifest.starts_with(&format!(
            "Version = 20130611\nProgram = {d}/cat.wasm\nTimeout = 50\nMemory = 4294967296,0\n"
        )),
        "{manifest}"
    );
    assert!(
        manifest.contains(&format!(
        "Channel = {d}/input.txt,/dev/1.input.txt,3,0,4294967296,4294967296,4294967296,4294967296\n"
    )),
        "{manifest}"
    );
    assert!(manifest.contains(&format!("Channel = {d}/saved/nvram.1,/dev/nvram,3,")));
    let nvram = std::fs::read_to_string(saved.join("nvram.1")).unwrap();
    assert!(
        nvram.starts_with("[args]\nargs = cat.wasm /dev/1.input.txt\n"),
        "{nvram}"
    );
    assert!(
        nvram.contains("channel=/dev/1.input.txt, mode=file\n"),
        "{nvram}"
    );
    let report = std::fs::read_to_string(saved.join("report.1")).unwrap();
    let lines: Vec<&str> = report.split('\n').collect();
    assert_eq!(lines.len(), 8, "{report}");
    assert_eq!(&lines[..4], ["0", "0", "0", "disable"]);
    assert_eq!(lines[5], "ok");
}

#[test]
fn exit_codes() {
    let dir = dir_with(&[
        ("seven.wasm", hello(7).as_bytes()),
        (
            "trap.wasm",
            guest(r#"(func (export "_start") unreachable)"#).as_bytes(),
        ),
        ("bad.wasm", b"\0asm junk"),
        (
            "loop.wasm",
            guest(r#"(func (export "_start") (loop $l (br $l)))"#).as_bytes(),
        ),
    ]);
    let run = |args: &[&str]| zvsh_in(dir.path(), args, b"");
    // The program's code; zerovm's status is 0.
    assert_eq!(run(&["seven.wasm"]).code, 7);
    assert_eq!(run(&["--zvm-getrc", "seven.wasm"]).code, 0);
    // A trap: EINTR (4) << 4, and the failure is explained on stderr.
    let out = run(&["trap.wasm"]);
    assert_eq!(out.code, 4 << 4);
    assert!(out.stderr.contains("wasm trap: "), "{}", out.stderr);
    assert!(
        out.stderr.ends_with("ERROR: ZeroVM return code is 4\n"),
        "{}",
        out.stderr
    );
    assert_eq!(run(&["--zvm-getrc", "trap.wasm"]).code, 4);
    // Invalid module: ENOEXEC (8); missing program: ENOENT (2).
    assert_eq!(run(&["bad.wasm"]).code, 8 << 4);
    let out = run(&["missing.wasm"]);
    assert_eq!(out.code, 2 << 4);
    assert!(out.stderr.contains("program open error"), "{}", out.stderr);
    // Timeout and memory come from zvsh.cfg's [manifest].
    std::fs::write(
        dir.path().join("zvsh.cfg"),
        "[manifest]\nTimeout = 1\nMemory = 131072\n",
    )
    .unwrap();
    // A timeout: one line saying so and how to raise the limit.
    let out = run(&["loop.wasm"]);
    assert_eq!(out.code, 4 << 4, "{}", out.stderr);
    assert_eq!(
        out.stderr,
        "zvsh: timed out after 1 s; raise the limit with `Timeout = <seconds>` \
         under [manifest] in ./zvsh.cfg\n"
    );
    // --zvm-verbose: the manifest, NVRAM and report, then the details.
    let out = run(&["--zvm-verbose", "loop.wasm"]);
    assert_eq!(out.code, 4 << 4, "{}", out.stderr);
    assert!(out.stderr.contains("Timeout = 1\n"), "{}", out.stderr);
    assert!(out.stderr.contains("[mapping]"), "{}", out.stderr);
    assert!(out.stderr.contains("report:\n"), "{}", out.stderr);
    assert!(out.stderr.contains("session timeout"), "{}", out.stderr);
    // Two pages declared, one allowed: ENOMEM (12) << 4, low 8 bits.
    std::fs::write(dir.path().join("zvsh.cfg"), "[manifest]\nMemory = 65536\n").unwrap();
    let out = run(&["seven.wasm"]);
    assert_eq!(out.code, 12 << 4, "{}", out.stderr);
    assert!(out.stderr.contains("invalid memory size"), "{}", out.stderr);
}

#[test]
fn bad_and_refused_options_say_why() {
    let dir = dir_with(&[("hello.wasm", hello(0).as_bytes())]);
    let run = |args: &[&str]| zvsh_in(dir.path(), args, b"");
    let out = run(&["--zvm-bogus", "hello.wasm"]);
    assert_eq!(out.code, 22);
    assert!(
        out.stderr
            .starts_with("zvsh: unknown option --zvm-bogus\nusage: zvsh"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, "");
    let out = run(&[]);
    assert_eq!(out.code, 22);
    assert!(out.stderr.contains("no command given"), "{}", out.stderr);
    for (args, says) in [
        (
            &["--zvm-trace", "hello.wasm"][..],
            "--zvm-trace is not supported",
        ),
        (
            &["gdb", "--args", "hello.wasm"],
            "gdb mode is not supported",
        ),
        (
            &["--zvm-image", "x.tar,/,rw", "hello.wasm"],
            "access must be 'ro'",
        ),
        (&["--zvm-image", "x.tar,/,wo", "hello.wasm"], "'wo'"),
        (&["hello.wasm", ""], "argument 1 is empty"),
    ] {
        let out = run(args);
        assert_eq!(out.code, 22, "{args:?}");
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
    }
}

#[test]
fn help_and_version_exit_0() {
    let dir = dir_with(&[]);
    for flag in ["--help", "-h"] {
        let out = zvsh_in(dir.path(), &[flag], b"");
        assert_eq!(out.code, 0, "{flag}: {}", out.stderr);
        for says in [
            "usage: zvsh",
            "zvsh python3 @hello.py",
            "ZEROCLOUD_IMAGES",
            "Timeout  50 s",
            "Memory   4 GiB",
            "zvsh.cfg",
        ] {
            assert!(
                out.stdout.contains(says),
                "{flag}: {says:?} in {}",
                out.stdout
            );
        }
        assert_eq!(out.stderr, "");
    }
    let out = zvsh_in(dir.path(), &["--version"], b"");
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.starts_with("zvsh (zerocloud sandbox) "),
        "{}",
        out.stdout
    );
    // Nothing was run, nothing left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_missing_python_script_is_refused_by_name() {
    // The @file is checked before the image is looked for.
    let dir = dir_with(&[]);
    let out = zvsh_in(dir.path(), &["python3", "@nope.py"], b"");
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.starts_with("zvsh: @nope.py: no such file ("),
        "{}",
        out.stderr
    );
    assert!(!dir.path().join("nope.py").exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_missing_image_is_explained_once() {
    // An images dir with no python in it.
    let dir = dir_with(&[("hi.py", b"print(1)\n")]);
    let images = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_zvsh"))
        .args(["python3", "@hi.py"])
        .current_dir(dir.path())
        .env("ZEROCLOUD_IMAGES", images.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(22), "{stderr}");
    let d = images.path().display();
    assert_eq!(
        stderr,
        format!(
            "zvsh: python3: the python image is not installed in {d}; install it with \
             `zerocloud image install python --images-dir {d}`\n"
        )
    );
}
