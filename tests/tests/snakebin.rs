//! Snakebin (`examples/snakebin`, the seed's tutorial §3.4), deployed by its
//! `run.sh` with `zpm` on a fresh `zerocloud up`, then used as its users
//! do: over plain HTTP without a token (anyone, through setuid), and in
//! headless Chromium driven by Playwright (`tests/browser/snakebin_browser.py`).
//! Also the two things of the server the tutorial's flow needs: a setuid
//! app's chained job runs for an anonymous caller, and sees the caller's
//! `Host`. Needs the Python image (`$ZEROCLOUD_IMAGES`), `zpm` built, and
//! for the browser test Debian's chromium and a Python with Playwright
//! (`$ZC_PLAYWRIGHT_PYTHON`): scripts/test.sh installs them.

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{mk_container, mk_object, tar_of};
use hyper::Method;
use tests::{Http, Resp, Server, Session};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `examples/snakebin/run.sh` against `server`, from a scratch directory,
/// with the built binaries (`zpm`) first on `PATH`; it must exit 0.
/// Returns its stdout and the page's URL it printed.
fn run_sh(server: &Server) -> (String, String) {
    let zpm = tests::bin("zpm");
    assert!(
        zpm.exists(),
        "{} not built: run `cargo build --release --bins`",
        zpm.display()
    );
    let mut path = OsString::from(zpm.parent().expect("bin dir"));
    if let Some(p) = std::env::var_os("PATH") {
        path.push(":");
        path.push(p);
    }
    let cwd = tempfile::tempdir().expect("tempdir");
    let out = Command::new(repo().join("examples/snakebin/run.sh"))
        .current_dir(cwd.path())
        .env("ST_AUTH", server.auth_url())
        .env_remove("ST_USER")
        .env_remove("ST_KEY")
        .env("PATH", path)
        .output()
        .expect("run examples/snakebin/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "run.sh: {}\n--- stdout\n{stdout}--- stderr\n{stderr}",
        out.status
    );
    let page = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Snakebin is at "))
        .unwrap_or_else(|| panic!("run.sh printed no page URL:\n{stdout}"))
        .to_string();
    assert_eq!(page, format!("{}/api/AUTH_test/snakebin-api", server.url));
    (stdout, page)
}

/// A request without a token, as anyone on the web.
async fn anon(method: Method, url: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    Http::new()
        .req(method, url, headers, body.to_string())
        .await
}

/// Saves `script` anonymously: (status, the URL it answered).
async fn save(page: &str, script: &str) -> (u16, String) {
    let r = anon(Method::POST, page, &[], script).await;
    assert!(
        matches!(r.status, 200 | 201),
        "save: {} {}",
        r.status,
        r.text()
    );
    let url = r.text().trim().to_string();
    assert!(
        url.starts_with(&format!("{page}/")),
        "save answered {url:?}"
    );
    (r.status, url)
}

/// The search's answer for `term`: the URLs, as the JSON list says.
async fn search(page: &str, term: &str) -> Vec<String> {
    let r = anon(Method::GET, &format!("{page}/search?q={term}"), &[], "").await;
    assert_eq!(r.status, 200, "search {term}: {}", r.text());
    assert_eq!(r.header("content-type"), "application/json");
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("search {term}: {e}: {}", r.text()))
}

#[tokio::test]
async fn snakebin_saves_fetches_runs_and_searches_scripts_for_anyone() {
    let server = Server::start();
    let (stdout, page) = run_sh(&server);
    // run.sh's own tour: saved, fetched, run twice, found.
    assert!(
        stdout.contains("\nprint(\"hello world!\")\nhello world!\nhello world!\n"),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("[\"{page}/")), "{stdout}");

    // Save: a URL under the page's, for anyone (no token).
    let script = "print(\"apples & <pears>\")\n";
    let (status, url) = save(&page, script).await;
    assert_eq!(status, 201);

    // The script, as text; to a browser, the page with the script in its editor.
    let r = anon(Method::GET, &url, &[], "").await;
    assert_eq!((r.status, r.text().as_str()), (200, script));
    assert!(
        r.header("content-type").starts_with("text/plain"),
        "{:?}",
        r.headers
    );
    let r = anon(Method::GET, &url, &[("accept", "text/html,*/*")], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type").starts_with("text/html"),
        "{:?}",
        r.headers
    );
    let html = r.text();
    assert!(
        html.contains("spellcheck=\"false\">print(\"apples &amp; &lt;pears&gt;\")\n</textarea>"),
        "the page has no escaped script in its editor"
    );
    assert!(!html.contains("<pears>") && !html.contains("{code}"));
    // The empty page has an empty editor and loads nothing from elsewhere.
    let r = anon(Method::GET, &page, &[("accept", "text/html")], "").await;
    assert_eq!(r.status, 200);
    let empty = r.text();
    assert!(empty.contains("spellcheck=\"false\"></textarea>"));
    assert!(empty.contains("CodeMirror") && empty.contains("jQuery"));
    assert!(!empty.contains("src=\"//") && !empty.contains("src=\"http"));

    // Run it: stored, then posted.
    let r = anon(Method::GET, &format!("{url}/execute"), &[], "").await;
    assert_eq!((r.status, r.text().as_str()), (200, "apples & <pears>\n"));
    assert!(r.header("content-type").starts_with("text/plain"));
    let r = anon(
        Method::GET,
        &format!("{url}/execute"),
        &[("accept", "text/html")],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type").starts_with("text/plain"),
        "a script's output is never served as HTML: {:?}",
        r.headers
    );
    let r = anon(
        Method::POST,
        &format!("{page}/execute"),
        &[],
        "import sys\nprint(sum(range(10)))\nprint('to stderr', file=sys.stderr)\nraise ValueError('boom')\n",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let out = r.text();
    assert!(out.starts_with("45\nto stderr\nTraceback"), "{out}");
    assert!(out.ends_with("ValueError: boom\n"), "{out}");
    // A script that answers like an app (a chained job, with the app's
    // setuid rights) is only text: its output is never read as HTTP.
    let sneaky = "import sys\nsys.stdout.write('X-Zerovm-Execute: 1.0\\r\\nContent-Type: application/json\\r\\n\\r\\n[]')\n";
    let r = anon(Method::POST, &format!("{page}/execute"), &[], sneaky).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.text(),
        "X-Zerovm-Execute: 1.0\r\nContent-Type: application/json\r\n\r\n[]"
    );
    assert!(r.header("x-zerovm-execute").is_empty(), "{:?}", r.headers);

    // The same script again: the same URL (200: it was there).
    assert_eq!(save(&page, script).await, (200, url.clone()));
    let (_, bananas) = save(&page, "print('bananas')\n").await;
    assert_ne!(bananas, url);

    // Search: a MapReduce job over the store (3 scripts: run.sh's, ours).
    assert_eq!(search(&page, "pears").await, std::slice::from_ref(&url));
    assert_eq!(
        search(&page, "bananas").await,
        std::slice::from_ref(&bananas)
    );
    assert_eq!(search(&page, "print").await.len(), 3);
    assert!(search(&page, "no-such-text").await.is_empty());
    let r = anon(Method::GET, &format!("{page}/search"), &[], "").await;
    assert_eq!(r.status, 400);

    // The largest script Snakebin takes arrives whole (it is handed on in
    // a job's environment, within ZeroVM's 10 KiB NVRAM); a larger one is
    // refused rather than cut.
    let big = format!("# {}\nprint('big')\n", "\u{e9}".repeat(2980));
    assert!(big.len() <= 6000);
    let (status, big_url) = save(&page, &big).await;
    assert_eq!(status, 201);
    let r = anon(Method::GET, &big_url, &[], "").await;
    assert!(r.text() == big, "the big script came back changed");
    let r = anon(Method::POST, &format!("{page}/execute"), &[], &big).await;
    assert_eq!((r.status, r.text().as_str()), (200, "big\n"));
    let huge = format!("{big}#{}\n", "x".repeat(1000));
    for u in [page.clone(), format!("{page}/execute")] {
        let r = anon(Method::POST, &u, &[], &huge).await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (413, "Snakebin takes scripts of up to 6000 bytes\n")
        );
    }

    // Unknown scripts and paths.
    for path in ["NoSuchName", "NoSuchName/execute", "a*", "x/y/z"] {
        let r = anon(Method::GET, &format!("{page}/{path}"), &[], "").await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
    let r = anon(Method::DELETE, &url, &[], "").await;
    assert_eq!(r.status, 405);

    // The store is the app's: not readable directly, not even its listing,
    // nor through the app's other containers.
    let name = url.rsplit('/').next().expect("name");
    let store = format!("{}/v1/AUTH_test/snakebin-store", server.url);
    for u in [store.clone(), format!("{store}/{name}")] {
        let r = anon(Method::GET, &u, &[], "").await;
        assert_eq!(r.status, 401, "{u}: {}", r.text());
    }
    let other = Session::new(&server, "test2:tester2", "testing2").await;
    let r = other
        .http
        .req(
            Method::GET,
            &format!("{store}/{name}"),
            &[("x-auth-token", &other.token)],
            "",
        )
        .await;
    assert_eq!(r.status, 403);
    let r = anon(
        Method::GET,
        &format!("{}/api/AUTH_test/snakebin-store/{name}", server.url),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
    // A job of the caller's own gets no setuid rights.
    let job = r#"[{"name":"peek","exec":{"path":"file://python:python","args":"-c print(open('/dev/input').read())"},
        "devices":[{"name":"input","path":"swift://~/snakebin-store/NAME"},{"name":"stdout"}]}]"#
        .replace("NAME", name);
    let r = anon(
        Method::POST,
        &format!("{}/v1/AUTH_test", server.url),
        &[
            ("x-zerovm-execute", "1.0"),
            ("content-type", "application/json"),
        ],
        &job,
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());

    // run.sh again: a redeploy (--force), the same URL for example.py.
    let (again, _) = run_sh(&server);
    let saved = |s: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix("saved: "))
            .map(str::to_string)
    };
    assert_eq!(saved(&again), saved(&stdout));
    assert!(saved(&again).is_some());
}

/// The app of the server tests: `front` answers with a job (`back`, from
/// the same zapp) that prints its `HTTP_HOST`.
const FRONT: &str = r#"import json, sys
job = [{"name": "back",
        "exec": {"path": "file://python:python", "args": "back.py"},
        "devices": [{"name": "python"}, {"name": "stdout"},
                    {"name": "image", "path": "swift://~/apps/app.zapp"}]}]
sys.stdout.write("X-Zerovm-Execute: 1.0\r\nContent-Type: application/json\r\n\r\n" + json.dumps(job))
"#;
const BACK: &str = "import os\nprint('host=%s' % os.environ.get('HTTP_HOST'))\n";

#[tokio::test]
async fn a_setuid_app_s_chained_job_runs_for_anyone_and_sees_the_caller_s_host() {
    let server = Server::start();
    let s = Session::new(&server, "test:tester", "testing").await;
    let map = serde_json::json!([{
        "name": "front", "exec": {"path": "file://python:python", "args": "front.py"},
        "devices": [{"name": "python"}, {"name": "stdout", "content_type": "message/cgi"}],
    }])
    .to_string();
    let zapp = tar_of(&[
        ("boot/system.map", map.as_bytes()),
        ("front.py", FRONT.as_bytes()),
        ("back.py", BACK.as_bytes()),
    ]);
    for c in ["apps", "svc"] {
        mk_container(&s, c).await;
    }
    mk_object(
        &s,
        "/apps/app.zapp",
        &zapp,
        &[("content-type", "application/x-tar")],
    )
    .await;
    let setuid = |c: &'static str, acl: &'static str| {
        let s = s.clone();
        async move {
            let r = s
                .req(
                    "POST",
                    &format!("/{c}"),
                    &[
                        (
                            "x-container-meta-rest-endpoint",
                            "swift://AUTH_test/apps/app.zapp",
                        ),
                        ("x-container-meta-zerovm-suid", acl),
                    ],
                    "",
                )
                .await;
            assert_eq!(r.status, 204);
        }
    };
    setuid("svc", ".r:*,.rlistings").await;
    let url = format!("{}/api/AUTH_test/svc", server.url);
    let host = [("host", "snakebin.example:8080")];

    // The chained job is submitted in the account, not a container: the
    // app's container decides. Without `.rlistings` there (an account-level
    // POST is not an object access), anyone is refused; the owner is not.
    setuid("apps", ".r:*").await;
    let r = anon(Method::GET, &url, &host, "").await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = s
        .http
        .req(
            Method::GET,
            &url,
            &[("x-auth-token", &s.token), host[0]],
            "",
        )
        .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "host=snakebin.example:8080\n")
    );

    // With it, anyone runs the chain, and the chained job sees the Host
    // the caller sent (ZeroCloud's chained requests carried it).
    setuid("apps", ".r:*,.rlistings").await;
    let r = anon(Method::GET, &url, &host, "").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "host=snakebin.example:8080\n"),
        "{:?}",
        r.headers
    );
    assert_eq!(r.header("x-nexe-system"), "back");

    // Anyone may also name the app as the job's source in the account
    // (what a chain does): it runs as the app, by the same rule.
    let r = anon(
        Method::POST,
        &format!("{}/v1/AUTH_test", server.url),
        &[
            ("x-zerovm-execute", "1.0"),
            ("x-zerovm-source", "swift://AUTH_test/apps/app.zapp"),
            ("content-type", "text/plain"),
            host[0],
        ],
        "",
    )
    .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "host=snakebin.example:8080\n")
    );
    // An app of another account grants nothing here, even one whose own
    // containers are open to anyone.
    let s2 = Session::new(&server, "test2:tester2", "testing2").await;
    mk_container(&s2, "apps").await;
    mk_object(
        &s2,
        "/apps/app.zapp",
        &zapp,
        &[("content-type", "application/x-tar")],
    )
    .await;
    let r = s2
        .req(
            "POST",
            "/apps",
            &[
                (
                    "x-container-meta-rest-endpoint",
                    "swift://AUTH_test2/apps/app.zapp",
                ),
                ("x-container-meta-zerovm-suid", ".r:*,.rlistings"),
            ],
            "",
        )
        .await;
    assert_eq!(r.status, 204);
    let r = anon(
        Method::POST,
        &format!("{}/v1/AUTH_test", server.url),
        &[
            ("x-zerovm-execute", "1.0"),
            ("x-zerovm-source", "swift://AUTH_test2/apps/app.zapp"),
            ("content-type", "text/plain"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());

    // Still refused: a job of the caller's own in the account.
    let job = serde_json::json!([{
        "name": "mine", "exec": {"path": "file://python:python", "args": "-c print(1)"},
        "devices": [{"name": "python"}, {"name": "stdout"}],
    }])
    .to_string();
    let r = anon(
        Method::POST,
        &format!("{}/v1/AUTH_test", server.url),
        &[
            ("x-zerovm-execute", "1.0"),
            ("content-type", "application/json"),
        ],
        &job,
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
}

/// The Python that has Playwright: `$ZC_PLAYWRIGHT_PYTHON`, else
/// `~/.cache/zerocloud/venv/bin/python` (where scripts/test.sh puts it).
fn playwright_python() -> PathBuf {
    let python = match std::env::var_os("ZC_PLAYWRIGHT_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => {
            let home = std::env::var_os("HOME").expect("$HOME");
            Path::new(&home).join(".cache/zerocloud/venv/bin/python")
        }
    };
    let ok = Command::new(&python)
        .args(["-c", "import playwright.sync_api"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{} cannot import playwright: run scripts/test.sh (it installs Playwright \
         into its venv and exports ZC_PLAYWRIGHT_PYTHON), or set ZC_PLAYWRIGHT_PYTHON",
        python.display()
    );
    let chromium = std::env::var("ZC_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: run scripts/test.sh (it installs Debian's chromium), \
         or set ZC_CHROMIUM"
    );
    python
}

#[test]
fn snakebin_works_in_headless_chromium_without_the_internet() {
    let python = playwright_python();
    let server = Server::start();
    let (_, page) = run_sh(&server);
    let out_dir = repo().join("target/test-output/snakebin");
    let _ = std::fs::remove_dir_all(&out_dir);
    let out = Command::new(&python)
        .arg(repo().join("tests/browser/snakebin_browser.py"))
        .arg(&page)
        .arg(&out_dir)
        .output()
        .expect("run tests/browser/snakebin_browser.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "snakebin_browser.py: {}\n--- stdout\n{stdout}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("ok: saved {page}/")), "{stdout}");
    for shot in [
        "01-open.png",
        "02-typed.png",
        "03-saved.png",
        "04-reopened.png",
        "05-run.png",
        "06-search.png",
        "readme.png",
    ] {
        let png = std::fs::read(out_dir.join(shot)).unwrap_or_else(|e| panic!("{shot}: {e}"));
        assert!(png.starts_with(b"\x89PNG"), "{shot} is not a PNG");
    }
}
