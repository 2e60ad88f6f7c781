//! The tutorials in `examples/` (seed docs §3.3), each run as a user runs it:
//! `examples/<name>/run.sh` from an unrelated directory, against a fresh
//! `zerocloud up`, with `ST_AUTH` pointing at it and the built binaries
//! (`zpm`) first on `PATH`. Needs the Python image (`ZEROCLOUD_IMAGES`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use tests::Server;

/// What a `run.sh` printed.
struct Output {
    stdout: String,
    stderr: String,
}

fn run_sh(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("examples")
        .join(name)
        .join("run.sh")
}

/// Runs `examples/<name>/run.sh` against `server` from a scratch directory,
/// with `bin_dir` first on `PATH`; it must exit 0.
fn run_example(server: &Server, name: &str, bin_dir: &Path) -> Output {
    let cwd = tempfile::tempdir().expect("tempdir");
    let mut path = OsString::from(bin_dir);
    if let Some(p) = std::env::var_os("PATH") {
        path.push(":");
        path.push(p);
    }
    let out = Command::new(run_sh(name))
        .current_dir(cwd.path())
        .env("ST_AUTH", server.auth_url())
        .env("ST_USER", "test:tester")
        .env("ST_KEY", "testing")
        .env("PATH", path)
        .output()
        .unwrap_or_else(|e| panic!("run examples/{name}/run.sh: {e}"));
    let o = Output {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        out.status.success(),
        "examples/{name}/run.sh: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        o.stdout,
        o.stderr
    );
    // Nothing is left where it ran: builds happen in its own temporary directory.
    let left: Vec<_> = std::fs::read_dir(cwd.path())
        .expect("read cwd")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(
        left.is_empty(),
        "examples/{name}/run.sh left {left:?} in its cwd"
    );
    o
}

/// The directory of the workspace's binaries (`zerocloud`, `zpm`).
fn bin_dir(name: &str) -> PathBuf {
    let b = tests::bin(name);
    assert!(
        b.exists(),
        "{} not built: run `cargo build --release --bins`",
        b.display()
    );
    b.parent().expect("bin dir").to_path_buf()
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
fn hello_posts_a_script_then_a_zerovm_image() {
    let server = Server::start();
    let out = run_example(&server, "hello", &bin_dir("zerocloud"));
    let l = lines(&out.stdout);
    assert_eq!(l.len(), 3, "{}", out.stdout);
    assert_eq!(l[0], "Hello from ZeroVM!");
    assert!(l[1].starts_with("sys.platform is '"), "{}", l[1]);
    assert_eq!(l[2], "5 + 6 = 11");
}

#[test]
fn csv_runs_the_stored_sampleapp_on_data1_then_data2() {
    let server = Server::start();
    let out = run_example(&server, "csv", &bin_dir("zerocloud"));
    assert_eq!(
        lines(&out.stdout),
        [
            "name: balance",
            "Alice: 1000",
            "Bob: -500",
            "name: balance",
            "David: 15000",
            "Erin: 25000",
        ],
        "{}",
        out.stderr
    );
}

#[test]
fn prettyprint_runs_on_a_get_with_open_and_through_the_open_url() {
    let server = Server::start();
    let out = run_example(&server, "prettyprint", &bin_dir("zerocloud"));
    let raw = std::fs::read_to_string(run_sh("prettyprint").with_file_name("data.json"))
        .expect("data.json");
    let pretty = "\
{'geometries': [{'coordinates': [100.0, 0.0], 'type': 'Point'},
                {'coordinates': [[101.0, 0.0], [102.0, 1.0]],
                 'type': 'LineString'}],
 'type': 'GeometryCollection'}
";
    // The raw object without the header, then the app's output twice:
    // X-Zerovm-Execute: open/1.0, and /open/<account>/example/data.json.
    assert_eq!(
        out.stdout,
        format!("{raw}{pretty}{pretty}"),
        "{}",
        out.stderr
    );
}

#[test]
fn wordcount_bundles_deploys_and_executes_with_zpm_twice() {
    let server = Server::start();
    let bins = bin_dir("zpm");
    let expected = [
        "104 mapreduce-data/mrdata1.txt",
        "101 mapreduce-data/mrdata2.txt",
        "69 mapreduce-data/mrdata3.txt",
        "274 total",
    ];
    for run in 1..=2 {
        let out = run_example(&server, "wordcount", &bins);
        let l = lines(&out.stdout);
        assert!(l.len() >= 4, "run {run}: {}", out.stdout);
        let tail: Vec<&str> = l[l.len() - 4..].iter().map(|s| s.trim_start()).collect();
        assert_eq!(tail, expected, "run {run}:\n{}\n{}", out.stdout, out.stderr);
        // The counts are right-aligned to the width of the largest plus one.
        assert_eq!(l[l.len() - 2], "  69 mapreduce-data/mrdata3.txt");
        assert!(
            l.contains(&"created mapreduce.zapp"),
            "run {run}: {}",
            out.stdout
        );
        // The first deploy goes to the empty container; the second finds the
        // first one there and must be forced.
        let forced = out.stderr.contains("deploying with --force");
        assert_eq!(forced, run == 2, "run {run}: {}", out.stderr);
    }
}
