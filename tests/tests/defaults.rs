//! A new user's path with every default: in a fresh directory, no
//! `$ZEROCLOUD_IMAGES`, `zerocloud image install python` (images go to
//! `./zerocloud-data/images`), then `zvsh python3 @script.py`; and
//! `zerocloud up` there running a POSTed script.
//!
//! The image is not downloaded a second time: the installed one
//! (`$ZEROCLOUD_IMAGES`, else `~/.cache/zerocloud/images`, as scripts/test.sh
//! installs it) is linked into the fresh directory first, so `image install`
//! finds it, verifies it and has nothing left to do, as on a second run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tests::bin;

fn installed_images() -> PathBuf {
    let dir = std::env::var_os("ZEROCLOUD_IMAGES")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/zerocloud/images")))
        .expect("ZEROCLOUD_IMAGES or HOME");
    assert!(
        dir.join("python").is_dir(),
        "no python image in {} (scripts/test.sh installs it)",
        dir.display()
    );
    std::fs::canonicalize(&dir).expect("images dir")
}

/// `name` (a binary of ours) run in `dir` as a new user would: relative
/// paths only, no `ZEROCLOUD_IMAGES` or `ZEROVM_CACHE_DIR`.
fn run_in(dir: &Path, name: &str, args: &[&str]) -> Output {
    Command::new(bin(name))
        .args(args)
        .current_dir(dir)
        .env_remove("ZEROCLOUD_IMAGES")
        .env_remove("ZEROVM_CACHE_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("run")
}

fn show(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn image_install_then_zvsh_python_with_default_paths() {
    let images = installed_images();
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(home.path().join("zerocloud-data")).expect("mkdir");
    std::os::unix::fs::symlink(&images, home.path().join("zerocloud-data/images"))
        .expect("link the installed image");

    let out = run_in(home.path(), "zerocloud", &["image", "install", "python"]);
    assert!(out.status.success(), "{}", show(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    // The default images dir, resolved against the current directory.
    let expected = std::path::absolute(home.path().join("zerocloud-data/images/python")).unwrap();
    assert!(
        said.contains(&expected.display().to_string()),
        "{}",
        show(&out)
    );

    let out = run_in(home.path(), "zerocloud", &["image", "list"]);
    assert!(out.status.success(), "{}", show(&out));
    let list = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = list.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{list}");
    // Columns line up: every row's VERSION starts where the header's does.
    let col = lines[0].find("VERSION").expect("VERSION column");
    assert!(
        lines[1..]
            .iter()
            .filter(|l| !l.starts_with("not installed"))
            .all(|l| l.get(col - 2..col) == Some("  ") && l.as_bytes().get(col) != Some(&b' ')),
        "{list}"
    );

    std::fs::write(home.path().join("script.py"), "print('hello', 6 * 7)\n").unwrap();
    let out = run_in(home.path(), "zvsh", &["python3", "@script.py"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello 42\n",
        "{}",
        show(&out)
    );
}

/// `zerocloud up` in a fresh directory with every default but the port (and
/// no `$ZEROCLOUD_IMAGES`): its agent finds the image in
/// `./zerocloud-data/images`, and a script POSTed with curl's headers runs.
#[tokio::test]
async fn zerocloud_up_runs_a_script_with_default_paths() {
    use std::io::{BufRead, BufReader};
    let images = installed_images();
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(home.path().join("zerocloud-data")).expect("mkdir");
    std::os::unix::fs::symlink(&images, home.path().join("zerocloud-data/images"))
        .expect("link the installed image");
    struct Up(std::process::Child);
    impl Drop for Up {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut up = Up(Command::new(bin("zerocloud"))
        .args(["up", "--bind", "127.0.0.1:0"])
        .current_dir(home.path())
        .env_remove("ZEROCLOUD_IMAGES")
        .env_remove("ZEROVM_CACHE_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("zerocloud up"));
    let stdout = up.0.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("zerocloud up exited").expect("stdout");
        if let Some(rest) = line.strip_prefix("zerocloud listening on ") {
            break rest.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let server_url = url.clone();
    let http = tests::Http::new();
    let login = http
        .req(
            hyper::Method::GET,
            &format!("{server_url}/auth/v1.0"),
            &[("x-auth-user", "test:tester"), ("x-auth-key", "testing")],
            "",
        )
        .await;
    let token = login.header("x-auth-token").to_string();
    let storage = login.header("x-storage-url").to_string();
    let script = "#!file://python2.7:python\nprint('hello', 6 * 7)\n";
    // The background install first checks the linked image (503 meanwhile).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let r = http
            .req(
                hyper::Method::POST,
                &storage,
                &[
                    ("x-auth-token", &token),
                    ("x-zerovm-execute", "1.0"),
                    ("content-type", "application/python"),
                ],
                script,
            )
            .await;
        if r.status == 200 {
            assert_eq!(r.text(), "hello 42\n");
            break;
        }
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(
            std::time::Instant::now() < deadline,
            "still 503 after 120 s: {}",
            r.text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    drop(up);
}
