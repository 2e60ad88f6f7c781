//! What the WAT-guest tests share: one engine, the imports and helper
//! functions every guest starts with, and a session over a manifest whose
//! std channels are files in a temp dir.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sandbox::engine::{Engine, EngineConfig, Outcome, Session};
use sandbox::manifest::{Manifest, StdHost};

/// One engine per test binary (default settings).
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(EngineConfig::default()).expect("engine"))
}

/// The preview1 imports guests use, plus `$write(fd, ptr, len) -> errno`
/// (iovec at 0, nwritten at 8) and `$open(ptr, len, oflags, rights) ->
/// errno` (relative to the `/` preopen, fd stored at 12).
const IMPORTS: &str = r#"
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_create_directory"
    (func $mkdir (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_pread" (func $fd_pread (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_seek" (func $fd_seek (param i32 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_readdir" (func $fd_readdir (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func $accept (param i32 i32 i32) (result i32)))
  (func $write (param $fd i32) (param $ptr i32) (param $len i32) (result i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
  (func $open (param $ptr i32) (param $len i32) (param $oflags i32) (param $rights i64) (result i32)
    (call $path_open (i32.const 3) (i32.const 0) (local.get $ptr) (local.get $len)
      (local.get $oflags) (local.get $rights) (i64.const 0) (i32.const 0) (i32.const 12)))
"#;

/// A guest module: the shared imports and helpers, `pages` of exported
/// memory, then `body`.
pub fn module(pages: u32, body: &str) -> String {
    module_importing("", pages, body)
}

/// [`module`] with more `(import …)` forms first.
pub fn module_importing(imports: &str, pages: u32, body: &str) -> String {
    format!("(module {imports} {IMPORTS} (memory (export \"memory\") {pages}) {body})")
}

/// A session for `wasm` (written to `dir/prog.wasm`) under a manifest with
/// `timeout` seconds, 64 MiB, stdin from `dir/stdin` (holding `stdin`),
/// stdout and stderr to `dir/stdout`, `dir/stderr`, then the channel lines
/// of `extra` (`{dir}` stands for `dir`).
pub fn session(dir: &Path, wasm: &[u8], stdin: &[u8], timeout: u32, extra: &str) -> Session {
    let d = dir.to_str().expect("utf-8 temp dir");
    std::fs::write(dir.join("prog.wasm"), wasm).expect("program");
    std::fs::write(dir.join("stdin"), stdin).expect("stdin");
    let text = format!(
        "Version = 20130611\nTimeout = {timeout}\nMemory = 67108864,0\nProgram = {d}/prog.wasm\n\
         Channel = {d}/stdin,/dev/stdin,0,0,1000,1000000,0,0\n\
         Channel = {d}/stdout,/dev/stdout,0,0,0,0,1000,1000000\n\
         Channel = {d}/stderr,/dev/stderr,0,0,0,0,1000,1000000\n{}",
        extra.replace("{dir}", d)
    );
    let manifest = Manifest::parse(text.as_bytes()).expect("manifest");
    let channels = manifest.check(&StdHost).expect("checked manifest");
    Session::from_manifest(&manifest, channels)
}

/// Asserts the session ended normally (exit state `ok`) with `code`.
pub fn assert_exited(outcome: &Outcome, code: i32) {
    assert_eq!(
        (outcome.ending.exit_state(), outcome.report.user_code),
        ("ok".to_string(), code),
        "{:?}",
        outcome.detail
    );
}

/// A port on 127.0.0.1 free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Connects to 127.0.0.1:`port`, retrying while nobody listens yet.
pub fn connect_when_bound(port: u16) -> TcpStream {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => return s,
            Err(_) if Instant::now() < until => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("nobody listened on {port}: {e}"),
        }
    }
}
