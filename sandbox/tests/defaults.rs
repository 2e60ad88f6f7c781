//! What a new user gets with the default paths: relative directories
//! (`./zerocloud-data/images`, a relative `ZEROVM_CACHE_DIR`), no
//! `$ZEROCLOUD_IMAGES`, a fresh current directory.
//!
//! The Python test needs the image installed (as the Python tests do):
//! `$ZEROCLOUD_IMAGES`, else `~/.cache/zerocloud/images` (scripts/test.sh's
//! default). It is linked, not installed again, into the fresh directory's
//! `zerocloud-data/images`, where zvsh looks when `$ZEROCLOUD_IMAGES` is unset.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The images dir holding the installed Python image.
fn installed_images() -> PathBuf {
    let dir = std::env::var_os("ZEROCLOUD_IMAGES")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/zerocloud/images")))
        .expect("ZEROCLOUD_IMAGES or HOME");
    assert!(
        dir.join("python").is_dir(),
        "no python image in {}: run scripts/test.sh, or \
         zerocloud image install python --images-dir DIR and set ZEROCLOUD_IMAGES=DIR",
        dir.display()
    );
    std::fs::canonicalize(&dir).expect("images dir")
}

/// `bin` run in `dir` with the environment of a new user: no
/// `ZEROCLOUD_IMAGES`, no `ZEROVM_CACHE_DIR` unless given.
fn run_in(dir: &Path, bin: &str, args: &[&str], cache_dir: Option<&str>) -> Output {
    let mut command = Command::new(bin);
    command
        .args(args)
        .current_dir(dir)
        .env_remove("ZEROCLOUD_IMAGES")
        .env_remove("ZEROVM_CACHE_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(c) = cache_dir {
        command.env("ZEROVM_CACHE_DIR", c);
    }
    command.output().expect("run")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn zvsh_python_with_the_default_images_dir_in_a_fresh_directory() {
    let images = installed_images();
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(home.path().join("zerocloud-data")).expect("mkdir");
    std::os::unix::fs::symlink(&images, home.path().join("zerocloud-data/images"))
        .expect("link the installed images");
    std::fs::write(
        home.path().join("hello.py"),
        "import sys\nprint('hello from python', sys.argv[1:])\n",
    )
    .expect("script");
    let out = run_in(
        home.path(),
        env!("CARGO_BIN_EXE_zvsh"),
        &["python3", "@hello.py", "x"],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stdout),
        "hello from python ['x']\n",
        "{}",
        text(&out.stderr)
    );
}

/// A WAT program printing "hi".
const HELLO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hi\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 3))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

#[test]
fn a_relative_zerovm_cache_dir_works_and_is_kept() {
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::write(home.path().join("hello.wasm"), HELLO).expect("program");
    // Twice: the second run loads what the first compiled.
    for _ in 0..2 {
        let out = run_in(
            home.path(),
            env!("CARGO_BIN_EXE_zvsh"),
            &["hello.wasm"],
            Some("cache"),
        );
        assert_eq!(
            (out.status.code(), text(&out.stdout).as_str()),
            (Some(0), "hi\n"),
            "{}",
            text(&out.stderr)
        );
    }
    // The compiled module is kept there, and no worker left its root behind.
    let names: Vec<String> = std::fs::read_dir(home.path().join("cache"))
        .expect("the cache dir was made")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with(".cwasm")),
        "no artifact in {names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with(".worker-root-")),
        "{names:?}"
    );
}
