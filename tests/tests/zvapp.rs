//! `zvapp`: a system map or a zapp run locally (the real binary, its private
//! embedded store, the real sandbox and Python), local files standing in for
//! `swift://` objects.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn zvapp(dir: &Path, args: &[&str]) -> Output {
    Command::new(tests::bin("zvapp"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run zvapp")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The wordcount example as a user has it after `zpm bundle`, with its
/// data where zvapp looks for `swift://~/mapreduce-data/*.txt`.
fn wordcount_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = examples().join("wordcount");
    std::fs::create_dir(dir.path().join("mapreduce-data")).expect("mkdir");
    for f in ["zapp.yaml", "mapper.py", "reducer.py"] {
        std::fs::copy(src.join(f), dir.path().join(f)).expect("copy the example");
    }
    for f in ["mrdata1.txt", "mrdata2.txt", "mrdata3.txt"] {
        let from = [src.join("mapreduce-data").join(f), src.join(f)]
            .into_iter()
            .find(|p| p.exists())
            .expect("the example's data file");
        std::fs::copy(from, dir.path().join("mapreduce-data").join(f)).expect("copy data");
    }
    let out = Command::new(tests::bin("zpm"))
        .arg("bundle")
        .current_dir(dir.path())
        .output()
        .expect("run zpm bundle");
    assert!(out.status.success(), "zpm bundle: {}", text(&out.stderr));
    dir
}

fn lines(out: &[u8]) -> Vec<String> {
    text(out).lines().map(|l| l.trim().to_string()).collect()
}

#[test]
fn the_wordcount_example_runs_locally_from_its_zapp() {
    let dir = wordcount_project();
    let out = zvapp(dir.path(), &["mapreduce.zapp"]);
    assert!(out.status.success(), "zvapp: {}", text(&out.stderr));
    assert_eq!(
        lines(&out.stdout),
        [
            "104 mapreduce-data/mrdata1.txt",
            "101 mapreduce-data/mrdata2.txt",
            "69 mapreduce-data/mrdata3.txt",
            "274 total"
        ],
        "stderr: {}",
        text(&out.stderr)
    );
    // The data changes, the count follows: the files are read on each run.
    std::fs::write(
        dir.path().join("mapreduce-data/mrdata3.txt"),
        "one two three\n",
    )
    .unwrap();
    let out = zvapp(dir.path(), &["mapreduce.zapp"]);
    assert!(out.status.success(), "zvapp: {}", text(&out.stderr));
    assert!(
        lines(&out.stdout).contains(&"3 mapreduce-data/mrdata3.txt".to_string()),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn outputs_are_copied_back_and_every_account_is_the_root() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("in")).unwrap();
    std::fs::write(root.path().join("in/words.txt"), "alpha beta\n").unwrap();
    let job = root.path().join("job.json");
    // The input names another account: locally every account is the root.
    std::fs::write(
        &job,
        r#"[{"name": "upper", "exec": {"path": "file://python3:python",
              "args": "-c import\\x20sys;d=open('/dev/input').read();open('/dev/output','w').write(d.upper());print(len(d))"},
            "devices": [{"name": "python3"}, {"name": "stdout"},
                        {"name": "input", "path": "swift://AUTH_someone/in/words.txt"},
                        {"name": "output", "path": "swift://~/out/deep/upper.txt"}]}]"#,
    )
    .unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = zvapp(
        elsewhere.path(),
        &[
            "--root",
            root.path().to_str().unwrap(),
            job.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "zvapp: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "11");
    assert_eq!(
        std::fs::read_to_string(root.path().join("out/deep/upper.txt")).unwrap(),
        "ALPHA BETA\n"
    );
    // Nothing lands in the directory zvapp ran from.
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}

#[test]
fn a_failing_program_fails_zvapp_with_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("job.json"),
        r#"[{"name": "f", "exec": {"path": "file://python3:python",
              "args": "-c import\\x20sys;sys.exit(3)"},
            "devices": [{"name": "python3"}, {"name": "stdout"}]}]"#,
    )
    .unwrap();
    let out = zvapp(dir.path(), &["job.json"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("X-Nexe-Retcode: 3"), "{err}");
}

#[test]
fn bad_jobs_and_missing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = zvapp(dir.path(), &["nosuch.json"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot read nosuch.json"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(dir.path().join("job.json"), r#"[{"name": "a"}]"#).unwrap();
    let out = zvapp(dir.path(), &["job.json"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("exec"), "{}", text(&out.stderr));
}

/// What the README has a new user do: `zerocloud up` at the top of the repo
/// (the image lands in ./zerocloud-data/images there), then `zvapp` inside
/// an example, with no $ZEROCLOUD_IMAGES: zvapp finds the images up the tree.
#[test]
fn on_the_defaults_zvapp_in_a_subdirectory_uses_the_images_above_it() {
    let installed = std::env::var_os("ZEROCLOUD_IMAGES")
        .expect("ZEROCLOUD_IMAGES names the installed images (scripts/test.sh sets it)");
    let project = wordcount_project();
    let top = tempfile::tempdir().unwrap();
    std::fs::create_dir(top.path().join("zerocloud-data")).unwrap();
    // The installed image, reused by a link rather than installed again.
    std::os::unix::fs::symlink(&installed, top.path().join("zerocloud-data/images")).unwrap();
    let deep = top.path().join("examples/wordcount");
    std::fs::create_dir_all(deep.parent().unwrap()).unwrap();
    std::fs::rename(project.path(), &deep)
        .or_else(|_| copy_dir(project.path(), &deep))
        .expect("move the project");
    let out = Command::new(tests::bin("zvapp"))
        .arg("mapreduce.zapp")
        .current_dir(&deep)
        .env_remove("ZEROCLOUD_IMAGES")
        .output()
        .expect("run zvapp");
    assert!(out.status.success(), "zvapp: {}", text(&out.stderr));
    assert_eq!(
        lines(&out.stdout).last().map(String::as_str),
        Some("274 total")
    );
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()))?;
        } else {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

/// A new user's defaults: no $ZEROCLOUD_IMAGES, a fresh directory, so the
/// images are looked for in ./zerocloud-data/images, which is empty: the
/// error says where it looked and how to install.
#[test]
fn on_the_defaults_a_missing_image_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("job.json"),
        r#"[{"name": "a", "exec": {"path": "file://python3:python", "args": "-c pass"},
            "devices": [{"name": "python3"}, {"name": "stdout"}]}]"#,
    )
    .unwrap();
    let out = Command::new(tests::bin("zvapp"))
        .arg("job.json")
        .current_dir(dir.path())
        .env_remove("ZEROCLOUD_IMAGES")
        .output()
        .expect("run zvapp");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    let images = dir
        .path()
        .canonicalize()
        .unwrap()
        .join("zerocloud-data/images");
    assert!(err.contains(&images.display().to_string()), "{err}");
    assert!(err.contains("zerocloud image install python"), "{err}");
    // Said before anything started: nothing is left in the user's directory.
    assert!(!dir.path().join("zerocloud-data").exists());
}
