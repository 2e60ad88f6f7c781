//! C guests (`sandbox/guests/*.c`, clang + wasi-libc) run through the
//! engine under a manifest and NVRAM: what a real libc does with our WASI
//! layer, VFS, channels and quotas. The guests are compiled by this test
//! (see `common/mod.rs`); without the toolchain every test fails with a
//! message saying to run `scripts/test.sh`.

mod common;

use std::collections::HashMap;
use std::sync::OnceLock;

use sandbox::engine::{Engine, EngineConfig, Outcome, Session};
use sandbox::manifest::{Manifest, StdHost};
use sandbox::report::{Ending, Validation};

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(EngineConfig::default()).expect("engine"))
}

fn guest(stem: &str) -> &'static [u8] {
    static BUILT: OnceLock<Result<HashMap<&'static str, Vec<u8>>, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        common::build_guests(&std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-guests"))
    });
    match built {
        Ok(map) => map.get(stem).expect("a known guest"),
        Err(e) => panic!("{e}"),
    }
}

struct Run {
    outcome: Outcome,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    dir: tempfile::TempDir,
}

impl Run {
    fn state(&self) -> String {
        self.outcome.ending.exit_state()
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Ended with `ok` (zerovm exit 0) and the given user code.
    fn assert_ok(&self, user_code: i32) {
        assert_eq!(
            (self.outcome.ending.clone(), self.outcome.exit_code()),
            (Ending::Exited, 0),
            "{} {:?}; stderr: {}",
            self.state(),
            self.outcome.detail,
            String::from_utf8_lossy(&self.stderr)
        );
        assert_eq!(
            self.outcome.report.user_code,
            user_code,
            "{}",
            self.stdout()
        );
        let report = self.outcome.report.render();
        let lines: Vec<&str> = report.split('\n').collect();
        assert_eq!(lines[0], "0", "validated");
        assert_eq!(lines[5], "ok");
    }

    fn file(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(name)).unwrap_or_default()
    }
}

/// Runs guest `stem` under a manifest with file-backed standard channels
/// (`stdin` as input) plus `extra` channel lines (`{dir}` = the temp dir,
/// which first receives `files`).
fn run_with(stem: &str, stdin: &[u8], extra: &str, files: &[(&str, &[u8])]) -> Run {
    let wasm = guest(stem);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8 temp dir").to_string();
    std::fs::write(dir.path().join(format!("{stem}.wasm")), wasm).expect("program");
    std::fs::write(dir.path().join("stdin"), stdin).expect("stdin");
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).expect("file");
    }
    let text = format!(
        "Version = 20130611\nTimeout = 10\nMemory = 67108864,0\nProgram = {d}/{stem}.wasm\n\
         Channel = {d}/stdin,/dev/stdin,0,1,100000,100000000,0,0\n\
         Channel = {d}/stdout,/dev/stdout,0,1,0,0,100000,100000000\n\
         Channel = {d}/stderr,/dev/stderr,0,0,0,0,1000,1000000\n{}",
        extra.replace("{dir}", &d)
    );
    let manifest = Manifest::parse(text.as_bytes()).expect("manifest");
    let channels = manifest.check(&StdHost).expect("checked manifest");
    let session = Session::from_manifest(&manifest, channels);
    let program = engine()
        .prepare(wasm)
        .unwrap_or_else(|e| panic!("{stem}.wasm does not validate: {e}"));
    let outcome = engine().run(&program, &session);
    let stdout = std::fs::read(dir.path().join("stdout")).unwrap_or_default();
    let stderr = std::fs::read(dir.path().join("stderr")).unwrap_or_default();
    Run {
        outcome,
        stdout,
        stderr,
        dir,
    }
}

fn run(stem: &str) -> Run {
    run_with(stem, b"", "", &[])
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Deterministic text: words of varied lengths, spaces, tabs and newlines.
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

/// `wc`'s figures, as the C guest counts them (isspace in the C locale).
fn wc(bytes: &[u8]) -> String {
    let lines = bytes.iter().filter(|&&b| b == b'\n').count();
    let words = bytes
        .split(|b| b" \t\n\x0b\x0c\r".contains(b))
        .filter(|w| !w.is_empty())
        .count();
    format!("{lines} {words} {}\n", bytes.len())
}

#[test]
fn hello_prints_and_reports_ok_with_etag() {
    let r = run("hello");
    r.assert_ok(0);
    assert_eq!(r.stdout(), "hello, world\n");
    let report = r.outcome.report.render();
    let lines: Vec<&str> = report.split('\n').collect();
    assert_eq!(
        lines[3],
        format!(
            "/dev/stdin {} /dev/stdout {}",
            md5_hex(b""),
            md5_hex(b"hello, world\n")
        )
    );
    let accounting: Vec<&str> = lines[4].split(' ').collect();
    assert_eq!(accounting.len(), 10, "{}", lines[4]);
    assert_eq!(accounting[5], "13", "bytes written: {}", lines[4]);
    assert!(r.stderr.is_empty());
}

#[test]
fn cat_copies_stdin_to_stdout() {
    let input = text(300_000);
    let r = run_with("cat", &input, "", &[]);
    r.assert_ok(0);
    assert_eq!(r.stdout, input);
    assert_eq!(
        r.outcome.report.etag_line(),
        format!("/dev/stdin {0} /dev/stdout {0}", md5_hex(&input))
    );
}

#[test]
fn wc_counts_stdin() {
    let input = text(1 << 20);
    let r = run_with("wc", &input, "", &[]);
    r.assert_ok(0);
    assert_eq!(r.stdout(), wc(&input));
    assert_eq!(wc(b"one two\nthree\n"), "2 3 14\n");
}

#[test]
fn wc_counts_a_random_access_channel_named_in_the_nvram_args() {
    let input = text(200_000);
    let r = run_with(
        "wc",
        b"",
        "Channel = {dir}/input,/dev/input,3,0,1000,10000000,0,0\n\
         Channel = {dir}/nvram,/dev/nvram,3,0,100,100000,0,0\n",
        &[
            ("input", &input),
            ("nvram", b"[args]\nargs = wc /dev/input\n"),
        ],
    );
    r.assert_ok(0);
    assert_eq!(r.stdout(), wc(&input));
    // A channel the manifest does not declare does not exist.
    let r = run_with(
        "wc",
        b"",
        "Channel = {dir}/nvram,/dev/nvram,3,0,100,100000,0,0\n",
        &[("nvram", b"[args]\nargs = wc /dev/input\n")],
    );
    r.assert_ok(1);
    assert_eq!(
        String::from_utf8_lossy(&r.stderr),
        "wc: /dev/input: No such file or directory\n"
    );
}

#[test]
fn pread_reads_a_type_3_channel_at_offsets() {
    let r = run_with(
        "pread",
        b"",
        "Channel = {dir}/input,/dev/input,3,0,100,1000,0,0\n",
        &[("input", b"0123456789")],
    );
    r.assert_ok(0);
    assert_eq!(
        r.stdout(),
        "6+4: 4 [6789]\n\
         0+3: 3 [012]\n\
         8+10: 2 [89]\n\
         2+1: 1 [2]\n\
         10+5: 0 []\n\
         size 10\n\
         lseek stdin: -1 Invalid seek\n"
    );
    // 4 reads, 10 bytes: the one at the end is clipped to 0 bytes and, as in
    // ZeroVM (spec §4.4 step 3), returns 0 before it counts as a get.
    let io = &r.outcome.report.accounting.local;
    assert_eq!((io.reads, io.bytes_read), (4, 10), "{io:?}");
}

#[test]
fn writing_past_put_size_is_short_then_edquot_and_the_file_holds_the_quota() {
    let r = run_with(
        "quota",
        b"",
        "Channel = {dir}/output,/dev/output,0,1,0,0,1000,2500\n",
        &[],
    );
    r.assert_ok(0);
    // 1000 + 1000 + a short 500, then EDQUOT (WASI errno 19).
    assert_eq!(
        r.stdout(),
        "wrote 2500 in 3 calls; then errno 19 (EDQUOT)\n"
    );
    let output = r.file("output");
    assert_eq!(output.len(), 2500);
    assert!(output.iter().all(|&b| b == b'x'));
    let report = r.outcome.report.render();
    assert!(
        report.contains(&format!("/dev/output {}", md5_hex(&output))),
        "{report}"
    );
}

#[test]
fn running_out_of_puts_is_edquot_too() {
    let r = run_with(
        "quota",
        b"",
        "Channel = {dir}/output,/dev/output,0,0,0,0,2,1000000\n",
        &[],
    );
    r.assert_ok(0);
    assert_eq!(
        r.stdout(),
        "wrote 2000 in 2 calls; then errno 19 (EDQUOT)\n"
    );
    assert_eq!(r.file("output").len(), 2000);
}

#[test]
fn listing_dev_in_with_readdir() {
    let r = run_with(
        "lsdir",
        b"",
        "Channel = {dir}/a,/dev/in/alpha,3,0,10,10,0,0\n\
         Channel = {dir}/b,/dev/in/beta,0,0,10,10,0,0\n",
        &[("a", b"a"), ("b", b"b")],
    );
    r.assert_ok(0);
    assert_eq!(r.stdout(), ".\n..\nalpha\nbeta\n");
    // No /dev/in without such channels.
    let r = run("lsdir");
    r.assert_ok(1);
    assert_eq!(r.stdout(), "opendir /dev/in: No such file or directory\n");
}

const FSTAB: &[u8] = b"[fstab]\nchannel=/dev/image,mountpoint=/opt,access=ro,removable=no\n";

fn tar_run(path: &str) -> Run {
    let arg = path.replace(' ', "\\x20");
    let nvram = [FSTAB, format!("[args]\nargs = tarread {arg}\n").as_bytes()].concat();
    run_with(
        "tarread",
        b"",
        "Channel = {dir}/image.tar,/dev/image,3,0,1000,10000000,0,0\n\
         Channel = {dir}/nvram,/dev/nvram,3,0,100,100000,0,0\n",
        &[
            ("image.tar", include_bytes!("fixtures/ustar.tar")),
            ("nvram", &nvram),
        ],
    )
}

#[test]
fn reading_files_of_a_tar_image_mounted_by_the_nvram_fstab() {
    // EROFS is WASI errno 69.
    for (path, content) in [
        ("/opt/img/hello.txt", "hello\n"),
        ("/opt/img/link", "hello\n"),
        ("/opt/img/hard", "hello\n"),
        ("/opt/img/../img/./café.txt", "utf8\n"),
    ] {
        let r = tar_run(path);
        r.assert_ok(0);
        assert_eq!(r.stdout(), format!("{content}write: 69 EROFS\n"), "{path}");
    }
    let long = format!("/opt/img/{}/long-file-name.txt", "sub".repeat(40));
    let r = tar_run(&long);
    r.assert_ok(0);
    assert!(r.stdout().ends_with("write: 69 EROFS\n"), "{}", r.stdout());
    let r = tar_run("/opt/img/missing");
    r.assert_ok(1);
    assert_eq!(
        r.stdout(),
        "fopen /opt/img/missing: No such file or directory\n"
    );
}

#[test]
fn argv_and_environment_come_from_the_nvram() {
    let nvram = b"[args]\nargs = prog hello\\x20there world\n[env]\nname=FOO,value=bar\n";
    let r = run_with(
        "args",
        b"",
        "Channel = {dir}/nvram,/dev/nvram,3,0,100,100000,0,0\n",
        &[("nvram", nvram)],
    );
    r.assert_ok(3);
    assert_eq!(
        r.stdout(),
        "argc 3\nargv[0] [prog]\nargv[1] [hello there]\nargv[2] [world]\nFOO=bar\n"
    );
    // Without an NVRAM: argv[0] is the program's name, no environment.
    let r = run("args");
    r.assert_ok(1);
    assert_eq!(r.stdout(), "argc 1\nargv[0] [args.wasm]\nFOO=(unset)\n");
}

#[test]
fn the_zerovm_binary_runs_a_c_guest_from_a_manifest_file() {
    let input = text(50_000);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    std::fs::write(dir.path().join("wc.wasm"), guest("wc")).unwrap();
    std::fs::write(dir.path().join("in"), &input).unwrap();
    let manifest = format!(
        "Version = 20130611\nTimeout = 10\nMemory = 67108864,0\nProgram = {d}/wc.wasm\n\
         Channel = {d}/in,/dev/stdin,0,0,1000,1000000,0,0\n\
         Channel = {d}/out,/dev/stdout,0,1,0,0,1000,1000000\n\
         Channel = {d}/err,/dev/stderr,0,0,0,0,1000,1000000\n"
    );
    std::fs::write(dir.path().join("manifest"), manifest).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zerovm"))
        .arg(dir.path().join("manifest"))
        .output()
        .expect("zerovm");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let expected = wc(&input);
    assert_eq!(
        std::fs::read(dir.path().join("out")).unwrap(),
        expected.as_bytes()
    );
    let report = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = report.split('\n').collect();
    // Seven lines, the last one empty.
    assert!(report.ends_with("ok\n\n"), "{report}");
    assert_eq!(lines.len(), 8, "{report}");
    assert_eq!(&lines[..3], ["0", "0", "0"]);
    assert_eq!(
        lines[3],
        format!("/dev/stdout {}", md5_hex(expected.as_bytes()))
    );
    assert_eq!(lines[5], "ok");
}

#[test]
fn a_prepared_c_program_runs_many_sessions() {
    let program = engine().prepare(guest("cat")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    std::fs::write(dir.path().join("in"), b"").unwrap();
    std::fs::write(dir.path().join("cat.wasm"), guest("cat")).unwrap();
    let text = format!(
        "Version = 20130611\nTimeout = 10\nMemory = 67108864,0\nProgram = {d}/cat.wasm\n\
         Channel = {d}/in,/dev/stdin,0,0,1000,1000000,0,0\n\
         Channel = {d}/out,/dev/stdout,0,0,0,0,1000,1000000\n\
         Channel = {d}/err,/dev/stderr,0,0,0,0,1000,1000000\n"
    );
    let m = Manifest::parse(text.as_bytes()).unwrap();
    let mut session = Session::from_manifest(&m, m.check(&StdHost).unwrap());
    for i in 0..20 {
        let input = format!("session {i}\n").into_bytes();
        let out = sandbox::channel::shared(Vec::new());
        session
            .buffers
            .insert("/dev/stdin".into(), sandbox::channel::shared(input.clone()));
        session.buffers.insert("/dev/stdout".into(), out.clone());
        let outcome = engine().run(&program, &session);
        assert_eq!(outcome.exit_code(), 0, "{:?}", outcome.detail);
        assert_eq!(outcome.report.validation, Validation::Validated);
        assert_eq!(*out.lock().unwrap(), input);
    }
}
