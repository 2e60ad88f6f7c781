//! `zerocloud up` installs missing system images in the background while the
//! Swift API serves (issue 5): an installed image is found ready and nothing
//! is redone; an install that cannot happen is reported with the command
//! that fixes it, and Swift requests are unaffected.

use std::sync::mpsc::Receiver;
use std::time::Duration;

use tests::{Server, Session};

/// stderr lines until one contains `needle` (that one included); panics
/// with what was seen if none does within `limit`.
fn lines_until(rx: &Receiver<String>, needle: &str, limit: Duration) -> Vec<String> {
    let deadline = std::time::Instant::now() + limit;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.contains(needle);
                seen.push(line);
                if done {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no stderr line with {needle:?}; saw:\n{}", seen.join("\n"));
}

#[test]
fn an_installed_image_is_found_ready_and_nothing_is_redone() {
    let images = std::env::var_os("ZEROCLOUD_IMAGES").expect(
        "ZEROCLOUD_IMAGES must name an images dir with python installed (scripts/test.sh does it)",
    );
    let tmp = tempfile::tempdir().unwrap();
    let (server, rx) =
        Server::start_installing(&tmp.path().join("data"), &[("ZEROCLOUD_IMAGES", &images)]);
    let seen = lines_until(&rx, "zerocloud: image python", Duration::from_secs(60));
    let last = seen.last().map(String::as_str).unwrap_or("");
    let dir = last
        .strip_prefix("zerocloud: image python ")
        .and_then(|rest| rest.split_once(" ready in "))
        .map(|(_version, dir)| std::path::PathBuf::from(dir));
    let images = std::path::PathBuf::from(&images);
    assert!(
        dir.as_ref().is_some_and(|d| d.starts_with(images.join("python"))
            && d.join("image.json").is_file()),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|l| l.contains("preparing")),
        "an installed image was installed again: {seen:?}"
    );
    // Nothing was written under the data dir's own images/.
    assert!(!tmp.path().join("data").join("images").exists());
    drop(server);
}

#[tokio::test]
async fn a_failed_install_is_reported_and_swift_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    // No python3 on PATH: pip cannot run, so the install fails at once (and
    // downloads nothing).
    let empty = tmp.path().join("empty-path");
    std::fs::create_dir(&empty).unwrap();
    let (server, rx) = Server::start_installing(
        &tmp.path().join("data"),
        &[
            ("ZEROCLOUD_IMAGES", images.as_os_str()),
            ("PATH", empty.as_os_str()),
        ],
    );
    let seen = lines_until(&rx, "not ready", Duration::from_secs(60));
    let report = seen.last().map(String::as_str).unwrap_or("");
    assert!(
        report.starts_with("zerocloud: image python not ready:") && report.contains("pip"),
        "{report}"
    );
    let hint = lines_until(&rx, "zerocloud image install", Duration::from_secs(5));
    assert!(
        hint.iter()
            .any(|l| l.contains(&format!("--images-dir {}", images.display()))),
        "{hint:?}"
    );
    // The install got as far as its lock, and left nothing half-installed
    // (`cache` is the exec agent's compile cache, made when its workers start).
    let mut left: Vec<String> = std::fs::read_dir(&images)
        .expect("the images dir was made")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, [".install.lock", "cache"], "left in the images dir");
    // Swift is unaffected.
    let s = Session::new(&server, "test:tester", "testing").await;
    let r = s.req("PUT", "/c", &[], "").await;
    assert_eq!(r.status, 201);
    let r = s.req("PUT", "/c/o", &[], "hello").await;
    assert_eq!(r.status, 201);
    let r = s.req("GET", "/c/o", &[], "").await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
}

#[tokio::test]
async fn a_job_during_the_install_gets_503_saying_so() {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    // A `python3` that takes its time: the install (pip) is still running
    // when the job arrives.
    let bin = tmp.path().join("slow-bin");
    std::fs::create_dir(&bin).unwrap();
    let python3 = bin.join("python3");
    std::fs::write(&python3, "#!/bin/sh\nexec /bin/sleep 120\n").unwrap();
    let mut perm = std::fs::metadata(&python3).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&python3, perm).unwrap();
    let (server, rx) = Server::start_installing(
        &tmp.path().join("data"),
        &[
            ("ZEROCLOUD_IMAGES", images.as_os_str()),
            ("PATH", bin.as_os_str()),
        ],
    );
    let s = Session::new(&server, "test:tester", "testing").await;
    let r = s
        .req(
            "POST",
            "",
            &[
                ("x-zerovm-execute", "1.0"),
                ("content-type", "application/python"),
            ],
            "#!file://python2.7:python\nprint(1)\n",
        )
        .await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.text()
            .starts_with("The python image is still being installed on this storage node"),
        "{}",
        r.text()
    );
    assert!(
        r.header("retry-after").parse::<u64>().is_ok(),
        "{:?}",
        r.headers
    );
    // Swift requests are served meanwhile.
    let r = s.req("PUT", "/c", &[], "").await;
    let log: Vec<String> = rx.try_iter().collect();
    assert_eq!(
        r.status,
        201,
        "{}\nserver log:\n{}",
        r.text(),
        log.join("\n")
    );
}
