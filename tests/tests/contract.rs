//! The contract between `sysmap` and `sandbox`: a job description compiled
//! by sysmap, rendered into a ZeroVM manifest and NVRAM (the text an object
//! server hands a worker), is parsed and checked by `sandbox::manifest` and
//! runs a WebAssembly node whose output shows every part of that text
//! arrived: the channels, the args, the environment, the exit code.
//!
//! The rendered text is compared with the golden text below first, so a
//! change on either side shows here as a diff of the contract itself.

use std::path::Path;

use sandbox::engine::{Engine, EngineConfig, Session};
use sandbox::manifest::{Manifest, StdHost};
use sandbox::nvram::Nvram;
use sysmap::catalog::NoCatalog;
use sysmap::compile::{compile, CompileOptions};
use sysmap::job::Job;
use sysmap::render::{manifest, nvram, RenderOptions, SessionFiles};

/// The job a client POSTs: one node reading an object on stdin, writing
/// stdout and an output object, with args and an environment variable.
const JOB: &str = r#"[
  {"name": "echo",
   "exec": {"path": "swift://~/apps/echo.wasm", "args": "hello world",
            "env": {"GREETING": "hi there"}},
   "devices": [
     {"name": "stdin", "path": "swift://~/data/in.txt"},
     {"name": "stdout", "content_type": "text/plain"},
     {"name": "output", "path": "swift://~/results/out.txt"}
   ]}
]"#;

/// Where the object server put each file of the session (`$DIR` is the
/// session's temporary directory).
const DIR: &str = "$DIR";

const GOLDEN_MANIFEST: &str = "\
Version=20130611
Program=$DIR/program.wasm
Timeout=5
Memory=67108864,0
Channel=$DIR/in.txt,/dev/stdin,0,0,1073741824,1073741824,0,0
Channel=$DIR/stdout,/dev/stdout,0,1,0,0,1073741824,1073741824
Channel=$DIR/output,/dev/output,3,0,0,0,1073741824,1073741824
Channel=/dev/null,/dev/stderr,0,0,0,0,1073741824,1073741824
Channel=$DIR/nvram,/dev/nvram,3,0,1073741824,1073741824,0,0
Node=1
";

const GOLDEN_NVRAM: &str = "\
[args]
args = echo hello world
[env]
name=GREETING, value=hi there
[mapping]
channel=/dev/stdin, mode=file
channel=/dev/stdout, mode=file
channel=/dev/output, mode=file
";

/// The node: prints its argv and environment as the WASI layer gives them
/// (NUL-separated), copies stdin to stdout and to `/dev/output`, exits 7.
const GUEST: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "/dev/output")
  ;; write(fd, ptr, len): iovec at 0, count written at 8
  (func $write (param $fd i32) (param $ptr i32) (param $len i32) (result i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
  (func $check (param $e i32) (param $code i32)
    (if (local.get $e) (then (call $proc_exit (i32.add (local.get $code) (local.get $e))))))
  (func (export "_start") (local $n i32)
    (call $check (call $args_sizes_get (i32.const 100) (i32.const 104)) (i32.const 100))
    (call $check (call $args_get (i32.const 1000) (i32.const 2000)) (i32.const 100))
    (call $check (call $write (i32.const 1) (i32.const 2000) (i32.load (i32.const 104))) (i32.const 100))
    (call $check (call $environ_sizes_get (i32.const 108) (i32.const 112)) (i32.const 120))
    (call $check (call $environ_get (i32.const 3000) (i32.const 4000)) (i32.const 120))
    (call $check (call $write (i32.const 1) (i32.const 4000) (i32.load (i32.const 112))) (i32.const 120))
    ;; stdin, 4 KiB at most: iovec at 16, count read at 24
    (i32.store (i32.const 16) (i32.const 8000))
    (i32.store (i32.const 20) (i32.const 4096))
    (call $check (call $fd_read (i32.const 0) (i32.const 16) (i32.const 1) (i32.const 24)) (i32.const 140))
    (local.set $n (i32.load (i32.const 24)))
    (call $check (call $write (i32.const 1) (i32.const 8000) (local.get $n)) (i32.const 140))
    ;; /dev/output, opened for writing (fd stored at 12)
    (call $check
      (call $path_open (i32.const 3) (i32.const 0) (i32.const 64) (i32.const 11)
        (i32.const 0) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 12))
      (i32.const 160))
    (call $check (call $write (i32.load (i32.const 12)) (i32.const 8000) (local.get $n)) (i32.const 180))
    (call $proc_exit (i32.const 7))))
"#;

fn render_opts() -> RenderOptions {
    RenderOptions {
        timeout: 5,
        memory: 64 << 20,
        ..RenderOptions::default()
    }
}

/// Compiles [`JOB`] and renders its one session with host paths under `dir`.
fn rendered(dir: &str) -> (String, String) {
    let job = Job::from_json(JOB.as_bytes()).expect("the job parses");
    let plan =
        compile(&job, &CompileOptions::new("AUTH_test"), &NoCatalog).expect("the job compiles");
    assert_eq!(plan.nodes.len(), 1);
    let node = &plan.nodes[0];
    assert_eq!(node.placement.path_info, "/AUTH_test/data/in.txt");
    let files = SessionFiles {
        program: format!("{dir}/program.wasm"),
        nvram: format!("{dir}/nvram"),
        channels: [
            ("stdin", "in.txt"),
            ("stdout", "stdout"),
            ("output", "output"),
        ]
        .into_iter()
        .map(|(device, file)| (device.to_string(), format!("{dir}/{file}")))
        .collect(),
        ..SessionFiles::default()
    };
    let manifest = manifest(node, &render_opts(), &files).expect("the manifest renders");
    let nvram = nvram(node, &render_opts(), None).expect("the NVRAM renders");
    (manifest, nvram)
}

#[test]
fn sysmap_renders_the_golden_manifest_and_nvram() {
    let (manifest, nvram) = rendered(DIR);
    assert_eq!(manifest, GOLDEN_MANIFEST);
    assert_eq!(nvram, GOLDEN_NVRAM);
}

/// Writes the session's files as an object server would and runs it.
fn run_in(dir: &Path, stdin: &[u8]) -> (sandbox::engine::Outcome, Vec<u8>, Vec<u8>) {
    let d = dir.to_str().expect("a UTF-8 temporary directory");
    let (manifest_text, nvram_text) = rendered(d);
    let wasm = wat::parse_str(GUEST).expect("the guest assembles");
    std::fs::write(dir.join("program.wasm"), &wasm).expect("program");
    std::fs::write(dir.join("nvram"), &nvram_text).expect("nvram");
    std::fs::write(dir.join("in.txt"), stdin).expect("input object");

    // The engine reads the NVRAM leniently (ZRT skipped what it did not
    // understand); the contract is that nothing sysmap writes is skipped.
    let nv = Nvram::parse(nvram_text.as_bytes()).expect("sandbox parses the NVRAM strictly");
    assert_eq!(nv.args, ["echo", "hello", "world"]);
    let env: Vec<(&str, &str)> = nv
        .env
        .iter()
        .map(|v| (v.name.as_str(), v.value.as_str()))
        .collect();
    assert_eq!(env, [("GREETING", "hi there")]);
    let mapped: Vec<&str> = nv.mapping.iter().map(|m| m.channel.as_str()).collect();
    assert_eq!(mapped, ["/dev/stdin", "/dev/stdout", "/dev/output"]);

    let parsed = Manifest::parse(manifest_text.as_bytes()).expect("sandbox parses the manifest");
    assert_eq!(parsed.program, format!("{d}/program.wasm"));
    assert_eq!(parsed.timeout, 5);
    let channels = parsed
        .check(&StdHost)
        .expect("sandbox accepts the manifest");
    let aliases: Vec<&str> = channels.iter().map(|c| c.alias.as_str()).collect();
    for alias in [
        "/dev/stdin",
        "/dev/stdout",
        "/dev/output",
        "/dev/stderr",
        "/dev/nvram",
    ] {
        assert!(aliases.contains(&alias), "{alias} missing from {aliases:?}");
    }
    let session = Session::from_manifest(&parsed, channels);
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    let program = engine.prepare(&wasm).expect("the guest validates");
    let outcome = engine.run(&program, &session);
    let stdout = std::fs::read(dir.join("stdout")).unwrap_or_default();
    let output = std::fs::read(dir.join("output")).unwrap_or_default();
    (outcome, stdout, output)
}

#[test]
fn the_rendered_session_parses_and_runs_a_wasm_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (outcome, stdout, output) = run_in(dir.path(), b"the object's bytes\n");
    assert_eq!(
        (outcome.ending.exit_state(), outcome.report.user_code),
        ("ok".to_string(), 7),
        "{:?}",
        outcome.detail
    );
    // argv from the NVRAM's [args] (argv[0] is the node's name, as in
    // ZeroCloud), the environment from its [env] (the WASI layer's
    // NUL-separated buffers), then stdin from the object.
    assert_eq!(
        String::from_utf8_lossy(&stdout),
        "echo\0hello\0world\0GREETING=hi there\0the object's bytes\n"
    );
    assert_eq!(output, b"the object's bytes\n");
}
