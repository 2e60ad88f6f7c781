//! Channels over a window of a host file (`Session::file_offsets`): the
//! exec agent's object files hold a header area before the object's bytes,
//! which a channel must neither see nor overwrite. In-process runs and runs
//! through the pool's worker processes (sources opened by the parent, or
//! passed open in `Session::files`), with WAT guests.

use std::path::Path;
use std::sync::Arc;

use sandbox::channel::shared;
use sandbox::engine::{Outcome, Session};
use sandbox::pool::{Job, Pool, PoolConfig};
use sandbox::tar::{pack, PackMember};

mod wat;
use wat::{assert_exited, engine};

const ZEROVM: &str = env!("CARGO_BIN_EXE_zerovm");

/// The header area the tests put before the data (one page on x86-64).
const HEADER: usize = 4096;

/// `junk` bytes of header, then `data`.
fn with_header(junk: usize, data: &[u8]) -> Vec<u8> {
    let mut bytes = vec![b'J'; junk];
    bytes.extend_from_slice(data);
    bytes
}

/// Opens `/dev/input` (a random channel) and writes to stdout: its
/// `fd_filestat_get` size (8 bytes LE), 4 bytes `fd_pread` at offset 6, the
/// offset `fd_seek` to the end gives (8 bytes LE); then copies stdin (a
/// sequential channel) to stdout. Exit code: the errno of a failed call.
fn window_reader() -> String {
    wat::module_importing(
        r#"(import "wasi_snapshot_preview1" "fd_filestat_get" (func $fd_filestat_get (param i32 i32) (result i32)))"#,
        1,
        r#"
      (data (i32.const 64) "/dev/input")
      (func (export "_start") (local $fd i32) (local $e i32)
        (local.set $e (call $open (i32.const 64) (i32.const 10) (i32.const 0) (i64.const 2)))
        (if (local.get $e) (then (call $proc_exit (local.get $e))))
        (local.set $fd (i32.load (i32.const 12)))
        ;; filestat at 256: the size is at 256 + 32
        (local.set $e (call $fd_filestat_get (local.get $fd) (i32.const 256)))
        (if (local.get $e) (then (call $proc_exit (local.get $e))))
        (drop (call $write (i32.const 1) (i32.const 288) (i32.const 8)))
        ;; pread 4 bytes at offset 6
        (i32.store (i32.const 16) (i32.const 1024))
        (i32.store (i32.const 20) (i32.const 4))
        (local.set $e (call $fd_pread (local.get $fd) (i32.const 16) (i32.const 1) (i64.const 6) (i32.const 24)))
        (if (local.get $e) (then (call $proc_exit (local.get $e))))
        (drop (call $write (i32.const 1) (i32.const 1024) (i32.load (i32.const 24))))
        ;; seek to the end: the new offset at 32
        (local.set $e (call $fd_seek (local.get $fd) (i64.const 0) (i32.const 2) (i32.const 32)))
        (if (local.get $e) (then (call $proc_exit (local.get $e))))
        (drop (call $write (i32.const 1) (i32.const 32) (i32.const 8)))
        (block $done (loop $next
          (i32.store (i32.const 16) (i32.const 1024))
          (i32.store (i32.const 20) (i32.const 4096))
          (br_if $done (call $fd_read (i32.const 0) (i32.const 16) (i32.const 1) (i32.const 24)))
          (br_if $done (i32.eqz (i32.load (i32.const 24))))
          (drop (call $write (i32.const 1) (i32.const 1024) (i32.load (i32.const 24))))
          (br $next))))"#,
    )
}

/// What [`window_reader`] prints for a 10-byte `0123456789` window and
/// `stdin`.
fn window_output(stdin: &[u8]) -> Vec<u8> {
    let mut out = 10u64.to_le_bytes().to_vec();
    out.extend_from_slice(b"6789");
    out.extend_from_slice(&10u64.to_le_bytes());
    out.extend_from_slice(stdin);
    out
}

const INPUT_CHANNEL: &str = "Channel = {dir}/input,/dev/input,3,0,100,100000,0,0\n";
const STDIN: &[u8] = b"stdin after its header\n";

fn hello() -> String {
    wat::module(
        1,
        r#"(data (i32.const 64) "hello, world\n")
           (func (export "_start") (drop (call $write (i32.const 1) (i32.const 64) (i32.const 13))))"#,
    )
}

/// Reads `/opt/a.txt` (from a tar image) to stdout; exit code = errno.
fn image_reader() -> String {
    wat::module(
        1,
        r#"(data (i32.const 64) "/opt/a.txt")
           (func (export "_start") (local $e i32)
             (local.set $e (call $open (i32.const 64) (i32.const 10) (i32.const 0) (i64.const 2)))
             (if (local.get $e) (then (call $proc_exit (local.get $e))))
             (i32.store (i32.const 16) (i32.const 1024))
             (i32.store (i32.const 20) (i32.const 4096))
             (local.set $e (call $fd_read (i32.load (i32.const 12)) (i32.const 16) (i32.const 1) (i32.const 24)))
             (if (local.get $e) (then (call $proc_exit (local.get $e))))
             (drop (call $write (i32.const 1) (i32.const 1024) (i32.load (i32.const 24)))))"#,
    )
}

const IMAGE_CHANNELS: &str = "Channel = {dir}/image.tar,/dev/image,3,0,1000,10000000,0,0\n\
                              Channel = {dir}/nvram,/dev/nvram,3,0,100,100000,0,0\n";

/// A tar image holding `a.txt` (`alpha from the image`) and a 200 KiB
/// member after it, behind `junk` header bytes, and the NVRAM mounting it
/// at `/opt`, written into `dir`.
fn write_image(dir: &Path, junk: usize) {
    let big = vec![b'z'; 200 << 10];
    let mut tar = Vec::new();
    pack(
        &mut tar,
        [
            PackMember::File("a.txt", b"alpha from the image\n"),
            PackMember::File("big", &big),
        ],
    )
    .expect("pack");
    std::fs::write(dir.join("image.tar"), with_header(junk, &tar)).expect("image");
    std::fs::write(
        dir.join("nvram"),
        b"[fstab]\nchannel=/dev/image,mountpoint=/opt,access=ro,removable=no\n",
    )
    .expect("nvram");
}

/// Runs `wat` in-process over `session`.
fn run_local(wat: &str, session: &Session) -> Outcome {
    let program = engine().prepare(wat.as_bytes()).expect("valid guest");
    engine().run(&program, session)
}

fn pool() -> Pool {
    Pool::start(PoolConfig {
        workers: 1,
        queue: 0,
        ..PoolConfig::new(ZEROVM)
    })
    .expect("pool")
}

fn run_pool(pool: &Pool, wat: &str, session: Session) -> Outcome {
    let program = pool.program_ref(wat.as_bytes()).expect("valid guest");
    pool.run(Job { program, session }).expect("run")
}

/// The window-reader session in a fresh dir: `/dev/input` and stdin behind
/// a header, both at offset [`HEADER`].
fn window_session(dir: &Path) -> Session {
    std::fs::write(dir.join("input"), with_header(HEADER, b"0123456789")).unwrap();
    let wasm = window_reader();
    let mut s = wat::session(
        dir,
        wasm.as_bytes(),
        &with_header(HEADER, STDIN),
        5,
        INPUT_CHANNEL,
    );
    s.file_offsets.insert("/dev/input".into(), HEADER as u64);
    s.file_offsets.insert("/dev/stdin".into(), HEADER as u64);
    s
}

#[test]
fn random_and_sequential_channels_see_only_the_bytes_after_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let s = window_session(dir.path());
    let outcome = run_local(&window_reader(), &s);
    assert_exited(&outcome, 0);
    assert_eq!(
        std::fs::read(dir.path().join("stdout")).unwrap(),
        window_output(STDIN)
    );
    // Accounting counts channel bytes: 4 + 23 read (+ the end of stdin).
    assert_eq!(
        outcome.report.accounting.local.bytes_read,
        4 + STDIN.len() as u64
    );
    // Without the offsets the guest sees the headers (the test is sound).
    let mut s = window_session(dir.path());
    s.file_offsets.clear();
    assert_exited(&run_local(&window_reader(), &s), 0);
    assert_ne!(
        std::fs::read(dir.path().join("stdout")).unwrap(),
        window_output(STDIN)
    );
}

#[test]
fn a_write_only_channel_writes_after_a_preserved_header() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = hello();
    let mut s = wat::session(dir.path(), wasm.as_bytes(), b"", 5, "");
    std::fs::write(
        dir.path().join("stdout"),
        with_header(HEADER, b"an old object, longer than the new one"),
    )
    .unwrap();
    s.file_offsets.insert("/dev/stdout".into(), HEADER as u64);
    assert_exited(&run_local(&hello(), &s), 0);
    assert_eq!(
        std::fs::read(dir.path().join("stdout")).unwrap(),
        with_header(HEADER, b"hello, world\n")
    );
}

#[test]
fn a_tar_image_behind_a_header_mounts_at_aligned_and_unaligned_offsets() {
    for junk in [HEADER, HEADER + 100] {
        let dir = tempfile::tempdir().unwrap();
        write_image(dir.path(), junk);
        let wasm = image_reader();
        let mut s = wat::session(dir.path(), wasm.as_bytes(), b"", 5, IMAGE_CHANNELS);
        s.file_offsets.insert("/dev/image".into(), junk as u64);
        assert_exited(&run_local(&wasm, &s), 0);
        assert_eq!(
            std::fs::read(dir.path().join("stdout")).unwrap(),
            b"alpha from the image\n",
            "offset {junk}"
        );
    }
}

#[test]
fn buffers_ignore_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = window_session(dir.path());
    s.buffers
        .insert("/dev/stdin".into(), shared(b"all of the buffer\n".to_vec()));
    let outcome = run_local(&window_reader(), &s);
    assert_exited(&outcome, 0);
    assert_eq!(
        std::fs::read(dir.path().join("stdout")).unwrap(),
        window_output(b"all of the buffer\n")
    );
}

#[test]
fn through_the_pool_channels_see_only_the_bytes_after_the_offset() {
    let pool = pool();
    // Both sources opened by the parent.
    let dir = tempfile::tempdir().unwrap();
    let s = window_session(dir.path());
    assert_exited(&run_pool(&pool, &window_reader(), s), 0);
    assert_eq!(
        std::fs::read(dir.path().join("stdout")).unwrap(),
        window_output(STDIN)
    );
    // `/dev/input` passed open (as the exec agent passes an object file).
    let dir = tempfile::tempdir().unwrap();
    let mut s = window_session(dir.path());
    let input = std::fs::File::open(dir.path().join("input")).unwrap();
    s.files.insert("/dev/input".into(), vec![Arc::new(input)]);
    assert_exited(&run_pool(&pool, &window_reader(), s), 0);
    assert_eq!(
        std::fs::read(dir.path().join("stdout")).unwrap(),
        window_output(STDIN)
    );
    // A buffer reaches the worker as a memfd, still without an offset.
    let dir = tempfile::tempdir().unwrap();
    let mut s = window_session(dir.path());
    s.buffers
        .insert("/dev/stdin".into(), shared(b"all of the buffer\n".to_vec()));
    assert_exited(&run_pool(&pool, &window_reader(), s), 0);
    assert_eq!(
        std::fs::read(dir.path().join("stdout")).unwrap(),
        window_output(b"all of the buffer\n")
    );
}

#[test]
fn through_the_pool_a_write_only_channel_writes_after_a_preserved_header() {
    let pool = pool();
    let wasm = hello();
    let expected = with_header(HEADER, b"hello, world\n");
    // Opened by the parent, which cuts the old bytes after the header.
    let dir = tempfile::tempdir().unwrap();
    let mut s = wat::session(dir.path(), wasm.as_bytes(), b"", 5, "");
    let out = dir.path().join("stdout");
    std::fs::write(&out, with_header(HEADER, &[b'o'; 10_000])).unwrap();
    s.file_offsets.insert("/dev/stdout".into(), HEADER as u64);
    assert_exited(&run_pool(&pool, &wasm, s), 0);
    assert_eq!(std::fs::read(&out).unwrap(), expected);
    // Passed open: a temp object whose header area is reserved.
    let dir = tempfile::tempdir().unwrap();
    let mut s = wat::session(dir.path(), wasm.as_bytes(), b"", 5, "");
    let out = dir.path().join("object.tmp");
    std::fs::write(&out, with_header(HEADER, b"")).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&out).unwrap();
    s.files.insert("/dev/stdout".into(), vec![Arc::new(file)]);
    s.file_offsets.insert("/dev/stdout".into(), HEADER as u64);
    assert_exited(&run_pool(&pool, &wasm, s), 0);
    assert_eq!(std::fs::read(&out).unwrap(), expected);
}

#[test]
fn through_the_pool_a_tar_image_behind_a_header_mounts() {
    let pool = pool();
    for junk in [HEADER, HEADER + 100] {
        let dir = tempfile::tempdir().unwrap();
        write_image(dir.path(), junk);
        let wasm = image_reader();
        let mut s = wat::session(dir.path(), wasm.as_bytes(), b"", 5, IMAGE_CHANNELS);
        s.file_offsets.insert("/dev/image".into(), junk as u64);
        assert_exited(&run_pool(&pool, &wasm, s), 0);
        assert_eq!(
            std::fs::read(dir.path().join("stdout")).unwrap(),
            b"alpha from the image\n",
            "offset {junk}"
        );
    }
}

#[test]
fn file_offsets_travel_as_json_and_default_to_none() {
    let dir = tempfile::tempdir().unwrap();
    let s = window_session(dir.path());
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["file_offsets"]["/dev/input"], HEADER as u64);
    // JSON from before the field still parses.
    let mut old = json.clone();
    old.as_object_mut().unwrap().remove("file_offsets");
    let parsed: Session = serde_json::from_value(old).unwrap();
    assert!(parsed.file_offsets.is_empty());
}
