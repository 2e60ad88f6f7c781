//! The `zerovm` binary: report on stdout, ZeroVM's exit codes, refused options.

use std::process::Command;

const HELLO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hi\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 3))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

fn setup(program: &[u8]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    std::fs::write(dir.path().join("prog.wasm"), program).unwrap();
    std::fs::write(dir.path().join("in"), b"").unwrap();
    let manifest = format!(
        "Version = 20130611\nTimeout = 5\nMemory = 67108864,0\nProgram = {d}/prog.wasm\n\
         Channel = {d}/in,/dev/stdin,0,0,10,10,0,0\n\
         Channel = {d}/out,/dev/stdout,0,0,0,0,10,100\n\
         Channel = {d}/err,/dev/stderr,0,0,0,0,10,10\n"
    );
    let path = format!("{d}/manifest");
    std::fs::write(&path, manifest).unwrap();
    (dir, path)
}

fn zerovm(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_zerovm"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn runs_a_manifest_and_prints_the_report() {
    let (dir, manifest) = setup(HELLO.as_bytes());
    let (code, report) = zerovm(&["-PQ", &manifest]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = report.split('\n').collect();
    assert_eq!(lines.len(), 8, "{report}");
    assert_eq!(&lines[..4], ["0", "0", "0", "disable"]);
    assert_eq!(lines[5], "ok");
    assert_eq!(std::fs::read(dir.path().join("out")).unwrap(), b"hi\n");
}

#[test]
fn skip_validation_and_prevalidate_flags() {
    let (dir, manifest) = setup(HELLO.as_bytes());
    let (code, report) = zerovm(&["-s", "-F", "-M", &manifest]);
    assert_eq!(code, 0);
    assert!(report.starts_with("2\n0\n0\n"), "{report}");
    assert_eq!(
        std::fs::read(dir.path().join("out")).unwrap(),
        b"",
        "-F runs nothing"
    );
}

#[test]
fn malformed_wasm_exits_enoexec_with_validation_state_1() {
    let (_dir, manifest) = setup(b"\0asm\x01\0\0\0junk");
    let (code, report) = zerovm(&[&manifest]);
    assert_eq!(code, 8);
    assert!(report.starts_with("1\n"), "{report}");
    assert!(report.contains("\nvalidation failed\n"), "{report}");
}

#[test]
fn manifest_errors_are_reported_with_their_errno() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m");
    std::fs::write(&path, "Version = 1\n").unwrap();
    let (code, report) = zerovm(&[path.to_str().unwrap()]);
    assert_eq!(code, 14);
    assert!(
        report.contains("MANIFEST 1: invalid manifest version"),
        "{report}"
    );
}

#[test]
fn bad_command_lines_exit_22_without_a_report() {
    let (code, out) = zerovm(&[]);
    assert_eq!(code, 22);
    assert!(out.contains("Usage:"));
    let (code, out) = zerovm(&["-x", "m"]);
    assert_eq!(code, 22);
    assert!(out.contains("Usage:"));
    let (code, out) = zerovm(&["-t1", "m"]);
    assert_eq!(code, 22);
    assert!(out.is_empty());
    let (code, _) = zerovm(&["-T/tmp/trace", "m"]);
    assert_eq!(code, 22);
    let (code, _) = zerovm(&["a", "b"]);
    assert_eq!(code, 22);
}

#[test]
fn help_and_version_exit_0() {
    for flag in ["--help", "-h"] {
        let (code, out) = zerovm(&[flag]);
        assert_eq!(code, 0, "{flag}");
        for says in [
            "Usage:",
            "Example: zerovm hello.manifest",
            "Timeout = 50",
            "4 GiB",
            "Python",
            "ZEROCLOUD_IMAGES",
            "ZEROVM_CACHE_DIR",
        ] {
            assert!(out.contains(says), "{flag}: {says:?} in {out}");
        }
    }
    let (code, out) = zerovm(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("zerovm (zerocloud sandbox) "), "{out}");
}

#[test]
fn a_timeout_is_one_line_on_stderr() {
    let spin =
        r#"(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))"#;
    let (dir, path) = setup(spin.as_bytes());
    let manifest = std::fs::read_to_string(&path)
        .unwrap()
        .replace("Timeout = 5", "Timeout = 1");
    std::fs::write(&path, manifest).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_zerovm"))
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "zerovm: timed out after 1 s; raise the limit with the manifest's `Timeout = <seconds>`\n"
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("session timeout"), "{report}");
    drop(dir);
}
