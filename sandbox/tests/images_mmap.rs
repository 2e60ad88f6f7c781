//! Tar images through NVRAM `[fstab]`: a large `ro` image served from a
//! memory map of its channel's file, and `wo` images packed at exit through
//! the channel's quotas. WAT guests, as in `tests/engine.rs`.

use sandbox::engine::Outcome;
use sandbox::tar::{pack, PackMember, TarImage};

mod wat;
use wat::{assert_exited, engine};

struct Run {
    outcome: Outcome,
    stdout: Vec<u8>,
    dir: tempfile::TempDir,
}

/// Runs `wat` with the std channels on files in a temp dir plus `extra`
/// channel lines (`{dir}` = the temp dir); `prepare` fills the dir first.
fn run(wat: &str, extra: &str, prepare: impl FnOnce(&std::path::Path)) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = wat::module(2, wat);
    prepare(dir.path());
    let session = wat::session(dir.path(), wasm.as_bytes(), b"", 20, extra);
    let program = engine().prepare(wasm.as_bytes()).expect("valid guest");
    let outcome = engine().run(&program, &session);
    let stdout = std::fs::read(dir.path().join("stdout")).unwrap_or_default();
    Run {
        outcome,
        stdout,
        dir,
    }
}

/// Member `i` of the big image: 4 MiB of a pattern that differs per member
/// and per position.
fn member_bytes(i: u32) -> Vec<u8> {
    (0..4u32 << 20)
        .map(|j| (j.wrapping_mul(31).wrapping_add(i * 7) % 253) as u8)
        .collect()
}

#[test]
fn a_64_mib_image_file_serves_a_member_through_its_quotas() {
    let members: Vec<(String, Vec<u8>)> = (0..16)
        .map(|i| (format!("data/m{i:02}"), member_bytes(i)))
        .collect();
    let nvram = b"[fstab]\nchannel=/dev/image,mountpoint=/opt,access=ro,removable=no\n";
    // pread 100 bytes at offset 3_000_000 of the last member, to stdout.
    let guest = r#"
      (data (i32.const 64) "/opt/data/m15")
      (func (export "_start") (local $e i32)
        (local.set $e (call $open (i32.const 64) (i32.const 13) (i32.const 0) (i64.const 6)))
        (if (local.get $e) (then (call $proc_exit (local.get $e))))
        (i32.store (i32.const 16) (i32.const 1024))
        (i32.store (i32.const 20) (i32.const 100))
        (local.set $e (call $fd_pread (i32.load (i32.const 12)) (i32.const 16) (i32.const 1)
          (i64.const 3000000) (i32.const 24)))
        (if (local.get $e) (then (call $proc_exit (local.get $e))))
        (drop (call $write (i32.const 1) (i32.const 1024) (i32.load (i32.const 24)))))"#;
    let r = run(
        guest,
        "Channel = {dir}/image.tar,/dev/image,3,0,100000,1000000000,0,0\n\
         Channel = {dir}/nvram,/dev/nvram,3,0,100,100000,0,0\n",
        |dir| {
            let file = std::fs::File::create(dir.join("image.tar")).expect("image");
            let mut out = std::io::BufWriter::new(file);
            pack(
                &mut out,
                members
                    .iter()
                    .map(|(p, b)| PackMember::File(p, b.as_slice())),
            )
            .expect("pack");
            std::io::Write::flush(&mut out).expect("flush");
            std::fs::write(dir.join("nvram"), nvram).expect("nvram");
        },
    );
    assert_exited(&r.outcome, 0);
    assert_eq!(r.stdout, &members[15].1[3_000_000..3_000_100]);
    // The whole image went through the channel's accounting: 64 KiB reads.
    let image_len = std::fs::metadata(r.dir.path().join("image.tar"))
        .expect("image")
        .len();
    assert!(image_len > 64 << 20);
    let accounting = r.outcome.report.accounting;
    let image_reads = image_len.div_ceil(64 << 10);
    // + the NVRAM (one read) and stdin (none): reads count 64 KiB chunks.
    assert_eq!(accounting.local.reads, image_reads + 1);
    assert_eq!(accounting.local.bytes_read, image_len + nvram.len() as u64);
}

#[test]
fn an_image_file_the_session_also_writes_is_read_not_mapped() {
    // The same file is the `ro` image and a read-write channel: the guest
    // overwrites the member's bytes through the channel, then reads the
    // member. A map would show it its own write; the image must be the
    // bytes as they were when the session started.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tar = Vec::new();
    pack(&mut tar, [PackMember::File("f", &[b'A'; 4096])]).expect("pack");
    std::fs::write(dir.path().join("image.tar"), &tar).expect("image");
    std::fs::write(
        dir.path().join("nvram"),
        b"[fstab]\nchannel=/dev/image,mountpoint=/opt,access=ro,removable=no\n",
    )
    .expect("nvram");
    let wasm = wat::module_importing(
        r#"(import "wasi_snapshot_preview1" "fd_pwrite"
             (func $fd_pwrite (param i32 i32 i32 i64 i32) (result i32)))"#,
        2,
        r#"
      (data (i32.const 64) "/dev/rw")
      (data (i32.const 80) "/opt/f")
      (data (i32.const 1024) "BBBB")
      (func (export "_start") (local $e i32)
        (local.set $e (call $open (i32.const 64) (i32.const 7) (i32.const 0) (i64.const 0x1fffffff)))
        (if (local.get $e) (then (call $proc_exit (i32.add (i32.const 100) (local.get $e)))))
        (i32.store (i32.const 16) (i32.const 1024))
        (i32.store (i32.const 20) (i32.const 4))
        ;; The member's data starts after its 512-byte header.
        (local.set $e (call $fd_pwrite (i32.load (i32.const 12)) (i32.const 16) (i32.const 1)
          (i64.const 512) (i32.const 24)))
        (if (local.get $e) (then (call $proc_exit (i32.add (i32.const 200) (local.get $e)))))
        (local.set $e (call $open (i32.const 80) (i32.const 6) (i32.const 0) (i64.const 6)))
        (if (local.get $e) (then (call $proc_exit (i32.add (i32.const 300) (local.get $e)))))
        (i32.store (i32.const 16) (i32.const 2048))
        (local.set $e (call $fd_pread (i32.load (i32.const 12)) (i32.const 16) (i32.const 1)
          (i64.const 0) (i32.const 24)))
        (if (local.get $e) (then (call $proc_exit (i32.add (i32.const 400) (local.get $e)))))
        (drop (call $write (i32.const 1) (i32.const 2048) (i32.load (i32.const 24)))))"#,
    );
    let session = wat::session(
        dir.path(),
        wasm.as_bytes(),
        b"",
        20,
        "Channel = {dir}/image.tar,/dev/image,3,0,100000,1000000000,0,0\n\
         Channel = {dir}/image.tar,/dev/rw,3,0,100,100000,100,100000\n\
         Channel = {dir}/nvram,/dev/nvram,3,0,100,100000,0,0\n",
    );
    let program = engine().prepare(wasm.as_bytes()).expect("valid guest");
    let outcome = engine().run(&program, &session);
    assert_exited(&outcome, 0);
    // The write reached the file; the image the guest read did not change.
    let file = std::fs::read(dir.path().join("image.tar")).expect("image");
    assert_eq!(&file[512..516], b"BBBB");
    let stdout = std::fs::read(dir.path().join("stdout")).expect("stdout");
    assert_eq!(stdout, b"AAAA");
}

#[test]
fn an_image_cut_by_get_size_is_refused_like_before() {
    // A read quota that ends inside the image leaves no end-of-archive.
    let r = run(
        r#"(func (export "_start"))"#,
        "Channel = {dir}/image.tar,/dev/image,3,0,100000,1000,0,0\n\
         Channel = {dir}/nvram,/dev/nvram,3,0,100,100000,0,0\n",
        |dir| {
            let mut bytes = Vec::new();
            pack(&mut bytes, [PackMember::File("a", &[1u8; 5000])]).expect("pack");
            std::fs::write(dir.join("image.tar"), bytes).expect("image");
            std::fs::write(
                dir.join("nvram"),
                b"[fstab]\nchannel=/dev/image,mountpoint=/,access=ro,removable=no\n",
            )
            .expect("nvram");
        },
    );
    assert_eq!(
        r.outcome.ending.exit_state(),
        "/dev/image is not a valid tar image"
    );
    assert_eq!(r.outcome.exit_code(), 14);
}

/// Creates /out/sub/result.txt (mkdir /out/sub first) with 3000 bytes.
const WRITER: &str = r#"
  (data (i32.const 64) "/out/sub/result.txt")
  (func (export "_start") (local $e i32)
    (local.set $e (call $mkdir (i32.const 3) (i32.const 64) (i32.const 8)))
    (if (local.get $e) (then (call $proc_exit (local.get $e))))
    (local.set $e (call $open (i32.const 64) (i32.const 19) (i32.const 1) (i64.const 64)))
    (if (local.get $e) (then (call $proc_exit (local.get $e))))
    (memory.fill (i32.const 4096) (i32.const 0x61) (i32.const 3000))
    (call $proc_exit (call $write (i32.load (i32.const 12)) (i32.const 4096) (i32.const 3000))))"#;

const WO_NVRAM: &[u8] = b"[fstab]\nchannel=/dev/outimg,mountpoint=/out,access=wo,removable=no\n";

/// Runs `wat` with the `wo` image `/out` on `{dir}/out.tar`, its channel
/// allowing `put_size` bytes.
fn run_wo(wat: &str, put_size: u64) -> Run {
    run(
        wat,
        &format!(
            "Channel = {{dir}}/out.tar,/dev/outimg,0,0,0,0,1000,{put_size}\n\
             Channel = {{dir}}/nvram,/dev/nvram,3,0,100,100000,0,0\n"
        ),
        |dir| std::fs::write(dir.join("nvram"), WO_NVRAM).expect("nvram"),
    )
}

#[test]
fn a_wo_image_receives_the_files_under_its_mount_point_at_exit() {
    let r = run_wo(WRITER, 10_000_000);
    assert_exited(&r.outcome, 0);
    assert_eq!(r.outcome.detail, None);
    let bytes = std::fs::read(r.dir.path().join("out.tar")).expect("out.tar");
    // sub/ (512), sub/result.txt (512 + 3072), end (1024).
    assert_eq!(bytes.len(), 512 + 512 + 3072 + 1024);
    let image = TarImage::new(bytes).expect("a valid tar");
    let mut names: Vec<&str> = image.entries().map(|(p, _)| p).collect();
    names.sort_unstable();
    assert_eq!(names, ["", "sub", "sub/result.txt"]);
    let file = image.get("sub/result.txt").expect("result");
    assert_eq!(image.contents(file), vec![b'a'; 3000]);
    // The image's bytes went through the channel: accounted as writes.
    let local = r.outcome.report.accounting.local;
    assert_eq!(local.bytes_written, 5120);
}

#[test]
fn a_wo_image_past_put_size_is_cut_and_noted() {
    let r = run_wo(WRITER, 1536);
    assert_eq!(r.outcome.ending.exit_state(), "ok");
    assert_eq!(
        r.outcome.detail.as_deref(),
        Some("fstab: image /dev/outimg cut at 1536 of 5120 bytes by the channel's quota")
    );
    let bytes = std::fs::read(r.dir.path().join("out.tar")).expect("out.tar");
    assert_eq!(bytes.len(), 1536);
    assert!(TarImage::new(bytes).is_err(), "a cut tar has no end");
}

#[test]
fn a_wo_image_is_not_written_after_a_trap() {
    let trapping = WRITER
        .replace("(call $proc_exit (call $write", "(drop (call $write")
        .replace("(i32.const 3000))))", "(i32.const 3000))) unreachable)");
    let r = run_wo(&trapping, 10_000_000);
    assert!(r.outcome.ending.exit_state().starts_with("wasm trap"));
    let bytes = std::fs::read(r.dir.path().join("out.tar")).expect("out.tar");
    assert!(bytes.is_empty());
}
