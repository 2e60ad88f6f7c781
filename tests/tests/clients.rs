//! Real third-party Swift clients against a real `zerocloud up`: the `swift` CLI
//! (python-swiftclient) and rclone's swift backend. Both tools are required: when
//! one is missing the test fails and says to run `scripts/test.sh`, which installs
//! them and exports ZC_SWIFT_CLI / ZC_RCLONE.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tests::{md5_hex, Server};

/// Any one client command is killed (and the test fails) after this long.
const CMD_TIMEOUT: Duration = Duration::from_secs(120);

/// The tool named by `$env`, else `name` on PATH; fails the test when neither exists.
fn tool(env: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "{env}={} does not exist: run scripts/test.sh (it installs {name} and exports {env})",
            p.display()
        );
        return p;
    }
    if let Some(p) = on_path(name) {
        return p;
    }
    panic!(
        "`{name}` not found: {env} is unset and there is no `{name}` on PATH. \
         Run scripts/test.sh, which installs python-swiftclient (the `swift` CLI) and rclone \
         and exports ZC_SWIFT_CLI and ZC_RCLONE before running the tests."
    );
}

fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Runs a command with no stdin, capturing its output; kills it after CMD_TIMEOUT.
fn run(cmd: &mut Command) -> Output {
    let what = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + CMD_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for client") {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {CMD_TIMEOUT:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: t_out.join().expect("stdout reader"),
        stderr: t_err.join().expect("stderr reader"),
    }
}

fn describe(cmd: &Command, o: &Output) -> String {
    format!(
        "{cmd:?}\nexit: {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs a command that must succeed; returns its stdout.
fn ok(cmd: &mut Command) -> String {
    let o = run(cmd);
    assert!(o.status.success(), "command failed: {}", describe(cmd, &o));
    String::from_utf8(o.stdout).expect("UTF-8 output")
}

/// Non-empty output lines, as printed.
fn lines(s: &str) -> Vec<String> {
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// `swift stat` output ("   Key: value" lines) as a map.
fn stat_map(s: &str) -> BTreeMap<String, String> {
    s.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn stat_field<'a>(m: &'a BTreeMap<String, String>, key: &str, out: &str) -> &'a str {
    m.get(key)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no {key:?} in stat output:\n{out}"))
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Writes `files` (relative '/'-separated path → contents) under `root`.
fn write_tree(root: &Path, files: &BTreeMap<String, Vec<u8>>) {
    for (rel, data) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, data).expect("write file");
    }
}

/// Every regular file under `root`: relative '/'-separated path → contents.
fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).expect("read_dir") {
            let p = e.expect("dir entry").path();
            let ft = std::fs::symlink_metadata(&p).expect("stat").file_type();
            if ft.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).expect("under root");
                let rel = rel
                    .to_str()
                    .unwrap_or_else(|| panic!("non-UTF-8 name {}", rel.display()))
                    .to_string();
                assert!(ft.is_file(), "{rel} is not a regular file");
                out.insert(rel, std::fs::read(&p).expect("read file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Compares two trees file by file, naming the first difference.
fn assert_same_tree(want: &BTreeMap<String, Vec<u8>>, got: &BTreeMap<String, Vec<u8>>, what: &str) {
    let wn: Vec<&String> = want.keys().collect();
    let gn: Vec<&String> = got.keys().collect();
    assert_eq!(gn, wn, "{what}: file names differ");
    for (name, data) in want {
        let g = &got[name];
        assert!(
            g == data,
            "{what}: {name} differs: {} bytes (md5 {}) instead of {} bytes (md5 {})",
            g.len(),
            md5_hex(g),
            data.len(),
            md5_hex(data)
        );
    }
}

/// A `swift` command with the default tester's v1 credentials and no inherited
/// OS_* / ST_* settings.
fn swift(cli: &Path, server: &Server) -> Command {
    let mut c = Command::new(cli);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("OS_") || k.starts_with("ST_") {
            c.env_remove(k);
        }
    }
    c.args([
        "-A",
        &server.auth_url(),
        "-U",
        "test:tester",
        "-K",
        "testing",
    ]);
    c
}

#[test]
fn swift_cli_round_trip() {
    let cli = tool("ZC_SWIFT_CLI", "swift");
    let server = Server::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    let dl = tmp.path().join("download");
    std::fs::create_dir_all(&dl).expect("mkdir");

    const C: &str = "swift-cli";
    const BIG: &str = "big.bin";
    const UTF8: &str = "ünïcödé.txt";
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    files.insert("top.txt".into(), b"hello from the top\n".to_vec());
    files.insert("a/sibling.txt".into(), b"sibling\n".to_vec());
    files.insert("a/b/c/deep.txt".into(), b"three levels down\n".to_vec());
    files.insert(UTF8.into(), "héllo wörld ✓\n".as_bytes().to_vec());
    files.insert(
        "dïr ñame/fïlé with spaces.txt".into(),
        b"spaces and accents\n".to_vec(),
    );
    files.insert("empty.dat".into(), Vec::new());
    files.insert(BIG.into(), noise(3 << 20, 1));
    write_tree(&src, &files);
    let names: Vec<String> = files.keys().cloned().collect(); // byte order, as Swift lists
    let total: usize = files.values().map(Vec::len).sum();

    // Upload the tree from inside it, so object names are the relative paths.
    ok(swift(&cli, &server)
        .current_dir(&src)
        .args(["upload", C, "."]));

    let out = ok(swift(&cli, &server).arg("list"));
    assert_eq!(lines(&out), vec![C.to_string()], "swift list");
    let out = ok(swift(&cli, &server).args(["list", C]));
    assert_eq!(lines(&out), names, "swift list {C}");
    let out = ok(swift(&cli, &server).args(["list", "--prefix", "a/", C]));
    let want: Vec<String> = names
        .iter()
        .filter(|n| n.starts_with("a/"))
        .cloned()
        .collect();
    assert_eq!(lines(&out), want, "swift list --prefix a/ {C}");
    // Pseudo-directories: everything up to the first '/' is rolled up.
    let out = ok(swift(&cli, &server).args(["list", "--delimiter", "/", C]));
    let mut want: Vec<String> = names
        .iter()
        .map(|n| match n.find('/') {
            Some(p) => n[..=p].to_string(),
            None => n.clone(),
        })
        .collect();
    want.dedup();
    assert_eq!(lines(&out), want, "swift list --delimiter / {C}");

    // Container stats are updated before each object PUT is acked.
    let out = ok(swift(&cli, &server).args(["stat", C]));
    let m = stat_map(&out);
    assert_eq!(stat_field(&m, "Container", &out), C);
    assert_eq!(
        stat_field(&m, "Objects", &out),
        files.len().to_string(),
        "{out}"
    );
    assert_eq!(stat_field(&m, "Bytes", &out), total.to_string(), "{out}");

    // Account stats may lag in Swift (the container updater reports them), so
    // poll for a bounded time.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = ok(swift(&cli, &server).arg("stat"));
        let m = stat_map(&out);
        assert_eq!(stat_field(&m, "Account", &out), "AUTH_test");
        assert_eq!(stat_field(&m, "Containers", &out), "1", "{out}");
        let objects = stat_field(&m, "Objects", &out).to_string();
        let bytes = stat_field(&m, "Bytes", &out).to_string();
        if objects == files.len().to_string() && bytes == total.to_string() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "account stats never reached {} objects / {total} bytes:\n{out}",
            files.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let out = ok(swift(&cli, &server).args(["stat", C, BIG]));
    let m = stat_map(&out);
    assert_eq!(stat_field(&m, "Object", &out), BIG);
    assert_eq!(
        stat_field(&m, "Content Length", &out),
        (3 << 20).to_string()
    );
    assert_eq!(
        stat_field(&m, "ETag", &out).trim_matches('"'),
        md5_hex(&files[BIG])
    );
    let out = ok(swift(&cli, &server).args(["stat", C, UTF8]));
    let m = stat_map(&out);
    assert_eq!(stat_field(&m, "Object", &out), UTF8);
    assert_eq!(
        stat_field(&m, "Content Length", &out),
        files[UTF8].len().to_string()
    );
    let out = ok(swift(&cli, &server).args(["stat", C, "empty.dat"]));
    let m = stat_map(&out);
    assert_eq!(stat_field(&m, "Content Length", &out), "0");
    assert_eq!(stat_field(&m, "ETag", &out).trim_matches('"'), md5_hex(b""));

    // Metadata on the container and on an object.
    ok(swift(&cli, &server).args(["post", "-m", "color:blue", C]));
    let out = ok(swift(&cli, &server).args(["stat", C]));
    assert_eq!(stat_field(&stat_map(&out), "Meta Color", &out), "blue");
    ok(swift(&cli, &server).args(["post", "-m", "k:v", C, BIG]));
    let out = ok(swift(&cli, &server).args(["stat", C, BIG]));
    let m = stat_map(&out);
    assert_eq!(stat_field(&m, "Meta K", &out), "v");
    // A POST changes metadata only.
    assert_eq!(
        stat_field(&m, "Content Length", &out),
        (3 << 20).to_string()
    );
    assert_eq!(
        stat_field(&m, "ETag", &out).trim_matches('"'),
        md5_hex(&files[BIG])
    );

    // Re-uploading with --skip-identical compares the server's ETags with the local
    // MD5s: nothing is rewritten.
    let ts = |server: &Server| {
        let out = ok(swift(&cli, server).args(["stat", C, BIG]));
        stat_field(&stat_map(&out), "X-Timestamp", &out).to_string()
    };
    let before = ts(&server);
    ok(swift(&cli, &server)
        .current_dir(&src)
        .args(["upload", "--skip-identical", C, "."]));
    assert_eq!(ts(&server), before, "upload --skip-identical rewrote {BIG}");

    // Server-side copy into a new container.
    ok(swift(&cli, &server).args(["copy", "-d", "/copies/big-copy", C, BIG]));
    let o = run(swift(&cli, &server).args(["download", "copies", "big-copy", "-o", "-"]));
    assert!(
        o.status.success(),
        "swift download copies big-copy -o -: {o:?}"
    );
    assert!(
        o.stdout == files[BIG],
        "copied object differs from its source"
    );
    ok(swift(&cli, &server).args(["delete", "copies"]));

    // Download everything and compare byte for byte; one object to stdout too.
    ok(swift(&cli, &server).args(["download", C, "-D"]).arg(&dl));
    assert_same_tree(&files, &read_tree(&dl), "swift download");
    let o = run(swift(&cli, &server).args(["download", C, UTF8, "-o", "-"]));
    assert!(o.status.success(), "swift download -o -: {o:?}");
    assert_eq!(o.stdout, files[UTF8], "swift download {C} {UTF8} -o -");

    // Delete the container (objects first, as the CLI does), then it is gone.
    ok(swift(&cli, &server).args(["delete", C]));
    let out = ok(swift(&cli, &server).arg("list"));
    assert!(
        !lines(&out).iter().any(|l| l == C),
        "{C} still listed after swift delete:\n{out}"
    );
    let cmd = &mut swift(&cli, &server);
    let o = run(cmd.args(["stat", C]));
    assert!(
        !o.status.success(),
        "stat of a deleted container succeeded: {}",
        describe(cmd, &o)
    );
}

/// An rclone command against the remote `zc:`, configured only through the
/// environment (no rclone.conf is read or written).
fn rclone(bin: &Path, server: &Server, cache: &Path) -> Command {
    let mut c = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("RCLONE_") {
            c.env_remove(k);
        }
    }
    c.env("RCLONE_CONFIG", "/dev/null")
        .env("RCLONE_CACHE_DIR", cache)
        .env("RCLONE_CONFIG_ZC_TYPE", "swift")
        .env("RCLONE_CONFIG_ZC_USER", "test:tester")
        .env("RCLONE_CONFIG_ZC_KEY", "testing")
        .env("RCLONE_CONFIG_ZC_AUTH", server.auth_url())
        .env("RCLONE_CONFIG_ZC_AUTH_VERSION", "1");
    c
}

#[test]
fn rclone_round_trip() {
    let bin = tool("ZC_RCLONE", "rclone");
    let server = Server::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    let back = tmp.path().join("back");
    let cache = tmp.path().join("rclone-cache");
    std::fs::create_dir_all(&back).expect("mkdir");
    const REMOTE: &str = "zc:rclone-bucket";

    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    files.insert("hello.txt".into(), b"hello\n".to_vec());
    files.insert("empty".into(), Vec::new());
    files.insert(
        "sub/ünïcödé name.txt".into(),
        "héllo wörld\n".as_bytes().to_vec(),
    );
    files.insert(
        "日本語/ファイル.txt".into(),
        "こんにちは\n".as_bytes().to_vec(),
    );
    files.insert("sub/deeper/blob.bin".into(), noise(1 << 20, 2));
    for i in 1..=10 {
        files.insert(format!("sub/f{i}.txt"), format!("line {i}\n").into_bytes());
    }
    write_tree(&src, &files);

    ok(rclone(&bin, &server, &cache)
        .args(["copy", "--retries", "1", "--low-level-retries", "2"])
        .arg(&src)
        .arg(REMOTE));

    let out = ok(rclone(&bin, &server, &cache).args(["lsf", "-R", "--files-only", REMOTE]));
    let mut listed = lines(&out);
    listed.sort();
    let names: Vec<String> = files.keys().cloned().collect();
    assert_eq!(listed, names, "rclone lsf -R {REMOTE}");

    // The server's ETags are the MD5s rclone compares.
    let out = ok(rclone(&bin, &server, &cache).args(["md5sum", REMOTE]));
    let sums: BTreeMap<String, String> = out
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(h, n)| (n.to_string(), h.to_string()))
        .collect();
    let want: BTreeMap<String, String> =
        files.iter().map(|(n, d)| (n.clone(), md5_hex(d))).collect();
    assert_eq!(sums, want, "rclone md5sum {REMOTE}:\n{out}");

    ok(rclone(&bin, &server, &cache)
        .args(["copy", "--retries", "1", REMOTE])
        .arg(&back));
    assert_same_tree(&files, &read_tree(&back), "rclone copy down");

    ok(rclone(&bin, &server, &cache)
        .arg("check")
        .arg(&src)
        .arg(REMOTE));

    ok(rclone(&bin, &server, &cache).args(["purge", REMOTE]));
    let out = ok(rclone(&bin, &server, &cache).args(["lsd", "zc:"]));
    assert!(
        !out.contains("rclone-bucket"),
        "container still listed after rclone purge:\n{out}"
    );
}

/// `swift upload --segment-size` stores segments plus a DLO manifest; the download
/// must be the original bytes, and the segments must be listed in their container.
#[test]
fn swift_cli_segmented_upload_round_trips_through_a_dlo() {
    let cli = tool("ZC_SWIFT_CLI", "swift");
    let server = Server::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = noise(2_500_000, 7);
    let src = tmp.path().join("seg.bin");
    std::fs::write(&src, &data).expect("write");
    ok(swift(&cli, &server).current_dir(tmp.path()).args([
        "upload",
        "--segment-size",
        "1000000",
        "segc",
        "seg.bin",
    ]));
    let segs = lines(&ok(swift(&cli, &server).args(["list", "segc_segments"])));
    assert_eq!(segs.len(), 3, "{segs:?}");
    let back = tmp.path().join("back.bin");
    ok(swift(&cli, &server).args([
        "download",
        "segc",
        "seg.bin",
        "-o",
        back.to_str().expect("utf-8 path"),
    ]));
    assert!(
        std::fs::read(&back).expect("read back") == data,
        "download differs"
    );
    let stat = ok(swift(&cli, &server).args(["stat", "segc", "seg.bin"]));
    assert!(stat.contains("Content Length: 2500000"), "{stat}");
    assert!(stat.contains("Manifest: segc_segments/seg.bin/"), "{stat}");
}
