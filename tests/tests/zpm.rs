//! `zpm` (the `deploy` crate) driven as a user drives it: the real binary
//! in a scratch project directory against a fresh `zerocloud up`. The
//! seed tutorials' flow (`zpm new`, edit zapp.yaml, `zpm bundle`,
//! `zpm deploy`, `zpm execute`), the web UI of `zpm new --with-ui` as
//! deployed, and the errors a user sees. Needs `$ZEROCLOUD_IMAGES` with the
//! Python image (scripts/test.sh).

use std::path::Path;
use std::process::Command;

use tests::{Server, Session};

/// What one zpm run gave.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// The credential variables zpm reads; cleared for every run so the
/// caller's environment never leaks in.
const CREDENTIAL_VARS: [&str; 7] = [
    "ST_AUTH",
    "ST_USER",
    "ST_KEY",
    "OS_AUTH_URL",
    "OS_TENANT_NAME",
    "OS_USERNAME",
    "OS_PASSWORD",
];

/// Runs `zpm args...` in `dir` with `env` as its only credentials.
fn zpm(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(tests::bin("zpm"));
    cmd.args(args).current_dir(dir);
    for var in CREDENTIAL_VARS {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("run zpm");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// [`zpm`] that must exit 0.
fn zpm_ok(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let r = zpm(dir, args, env);
    assert_eq!(r.code, 0, "zpm {args:?}: {r:?}");
    r
}

/// `ST_AUTH`, `ST_USER`, `ST_KEY` for the default user.
fn st_env(server: &Server) -> [(&'static str, String); 3] {
    [
        ("ST_AUTH", server.auth_url()),
        ("ST_USER", "test:tester".into()),
        ("ST_KEY", "testing".into()),
    ]
}

fn as_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Edits the zapp.yaml `zpm new` wrote, as the tutorials tell the user to.
fn edit(dir: &Path, replacements: &[(&str, &str)]) {
    let path = dir.join("zapp.yaml");
    let mut text = std::fs::read_to_string(&path).expect("zapp.yaml");
    for (from, to) in replacements {
        assert!(text.contains(from), "zapp.yaml has no {from:?}:\n{text}");
        text = text.replacen(from, to, 1);
    }
    std::fs::write(path, text).expect("write zapp.yaml");
}

const HELLO_PY: &str =
    "import sys\nprint('hello from', sys.argv[0])\nprint('args:', sys.argv[1:])\n";

/// `zpm new myapp` in `work`, edited into a hello that prints its argv.
fn hello_project(work: &Path) -> std::path::PathBuf {
    let r = zpm_ok(work, &["new", "myapp"], &[]);
    assert_eq!(r.stdout, "Created 'myapp/zapp.yaml'\n");
    let dir = work.join("myapp");
    edit(
        &dir,
        &[
            ("- name: \"\"", "- name: \"hello\""),
            ("args: \"\"", "args: \"hello.py 'one two' three\""),
            ("bundling: []", "bundling: [\"hello.py\"]"),
        ],
    );
    std::fs::write(dir.join("hello.py"), HELLO_PY).expect("hello.py");
    dir
}

/// The member names of a gzipped tar.
fn members(gz: &[u8]) -> Vec<String> {
    let tar = flate2::read::GzDecoder::new(gz);
    let mut archive = tar::Archive::new(tar);
    archive
        .entries()
        .expect("tar")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[tokio::test]
async fn new_bundle_deploy_execute_as_in_the_tutorials() {
    let server = Server::start();
    let work = tempfile::tempdir().expect("tempdir");
    let dir = hello_project(work.path());
    let env = st_env(&server);
    let env = as_refs(&env);

    // The name comes from the directory; the template is the seed's.
    let yaml = std::fs::read_to_string(dir.join("zapp.yaml")).unwrap();
    assert!(yaml.contains("name: \"myapp\""), "{yaml}");
    assert!(yaml.contains("path: file://python2.7:python"), "{yaml}");

    let r = zpm_ok(&dir, &["bundle"], &[]);
    assert_eq!(r.stdout, "created myapp.zapp\n");
    let zapp = std::fs::read(dir.join("myapp.zapp")).unwrap();
    assert_eq!(members(&zapp), ["boot/system.map", "zapp.yaml", "hello.py"]);

    // Bundling from a subdirectory finds the root.
    std::fs::create_dir(dir.join("sub")).unwrap();
    let r = zpm_ok(&dir.join("sub"), &["bundle"], &[]);
    assert!(
        r.stdout.starts_with("created ") && r.stdout.ends_with("myapp.zapp\n"),
        "{r:?}"
    );

    let s = Session::new(&server, "test:tester", "testing").await;
    let r = zpm_ok(&dir, &["deploy", "app", "myapp.zapp"], &env);
    assert_eq!(r.stdout, format!("app deployed to\n  {}/app/\n", s.url));
    // No progress bar when stderr is not a terminal.
    assert_eq!(r.stderr, "");

    // What deploy stored: the un-gzipped tar, and the system map with the
    // image device naming it.
    let obj = s.req("GET", "/app/myapp.zapp", &[], "").await;
    assert_eq!(obj.status, 200);
    assert_eq!(obj.header("content-type"), "application/x-tar");
    let mut plain = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(zapp.as_slice()),
        &mut plain,
    )
    .unwrap();
    assert_eq!(obj.body.as_ref(), plain.as_slice());
    let map = s.req("GET", "/app/boot/system.map", &[], "").await;
    assert_eq!(map.status, 200);
    let map = map.json();
    assert_eq!(map[0]["exec"]["args"], r"hello.py one\x20two three");
    assert_eq!(
        map[0]["devices"][2],
        serde_json::json!({"name": "image", "path": "swift://AUTH_test/app/myapp.zapp"})
    );

    let want = "hello from hello.py\nargs: ['one two', 'three']\n";
    let r = zpm_ok(&dir, &["execute", "myapp.zapp", "--container", "app"], &env);
    assert_eq!(r.stdout, want);
    assert_eq!(r.stderr, "");

    // The local zapp, POSTed itself.
    let r = zpm_ok(&dir, &["execute", "myapp.zapp"], &env);
    assert_eq!(r.stdout, want);

    // Extra arguments go to the end of every group's command line, each
    // kept whole (spaces, commas, quotes), after `--` when they look like flags.
    let r = zpm_ok(
        &dir,
        &[
            "execute",
            "myapp.zapp",
            "--container",
            "app",
            "--",
            "--flag",
            "a b,c",
            "it's \"q\"",
        ],
        &env,
    );
    assert_eq!(
        r.stdout,
        "hello from hello.py\nargs: ['one two', 'three', '--flag', 'a b,c', 'it\\'s \"q\"']\n"
    );
    let r = zpm_ok(&dir, &["execute", "myapp.zapp", "x y"], &env);
    assert_eq!(
        r.stdout,
        "hello from hello.py\nargs: ['one two', 'three', 'x y']\n"
    );

    // --summary: the table of the X-Nexe-* headers, on stderr.
    let r = zpm_ok(
        &dir,
        &["execute", "-s", "myapp.zapp", "--container", "app"],
        &env,
    );
    assert_eq!(r.stdout, want);
    let rows: Vec<&str> = r.stderr.lines().collect();
    assert!(
        rows[1].starts_with("| Node ") && rows[1].contains("| NetworkBytesW |"),
        "{}",
        r.stderr
    );
    assert!(rows[3].starts_with("| hello | ok     | 0 "), "{}", r.stderr);
    assert!(
        rows.last().unwrap().starts_with("Total time: "),
        "{}",
        r.stderr
    );

    // The container is not empty now: a second deploy is refused, then forced.
    let r = zpm(&dir, &["deploy", "app", "myapp.zapp"], &env);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stdout, "");
    assert!(
        r.stderr
            .starts_with("zpm: Target container ('app') is not empty.\n")
            && r.stderr.contains("--force/-f"),
        "{}",
        r.stderr
    );
    edit(&dir, &[("three", "four")]);
    zpm_ok(&dir, &["bundle"], &[]);
    let r = zpm_ok(
        &dir,
        &["deploy", "--force", "app", "myapp.zapp", "--execute"],
        &env,
    );
    assert_eq!(
        r.stdout,
        format!(
            "app deployed to\n  {}/app/\nhello from hello.py\nargs: ['one two', 'four']\n",
            s.url
        )
    );

    // A path inside the container, then run from there.
    let r = zpm_ok(&dir, &["deploy", "-f", "app/v2", "myapp.zapp"], &env);
    assert_eq!(r.stdout, format!("app deployed to\n  {}/app/v2/\n", s.url));
    let map = s
        .req("GET", "/app/v2/boot/system.map", &[], "")
        .await
        .json();
    assert_eq!(
        map[0]["devices"][2]["path"],
        "swift://AUTH_test/app/v2/myapp.zapp"
    );
    let r = zpm_ok(
        &dir,
        &["execute", "myapp.zapp", "--container", "app/v2"],
        &env,
    );
    assert_eq!(r.stdout, "hello from hello.py\nargs: ['one two', 'four']\n");

    // `auth` with the same credentials as flags.
    let r = zpm_ok(
        &dir,
        &[
            "auth",
            "-A",
            &server.auth_url(),
            "-U",
            "test:tester",
            "-K",
            "testing",
        ],
        &[],
    );
    let l: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(l.len(), 2, "{}", r.stdout);
    assert!(l[0].starts_with("Auth token: AUTH_tk"), "{}", l[0]);
    assert_eq!(l[1], format!("Storage URL: {}", s.url));
}

#[tokio::test]
async fn a_web_ui_project_is_rendered_and_uploaded() {
    let server = Server::start();
    let work = tempfile::tempdir().expect("tempdir");
    let r = zpm_ok(work.path(), &["new", "--with-ui", "greeter"], &[]);
    assert_eq!(
        r.stdout,
        "Created 'greeter/zapp.yaml'\nCreated 'greeter/index.html.tmpl'\n\
         Created 'greeter/style.css'\nCreated 'greeter/zerocloud.js'\n"
    );
    let dir = work.path().join("greeter");
    edit(
        &dir,
        &[
            ("- name: \"\"", "- name: \"greet\""),
            ("args: \"\"", "args: \"greet.py\""),
            ("bundling: []", "bundling: [\"greet.py\", \"greetlib\"]"),
            ("description: \"\"", "description: \"Greets <you>\""),
            ("- [\"\", \"\"]", "- [\"--name\", \"Who to greet\"]"),
        ],
    );
    // A vendored pure-Python package, bundled as a directory.
    std::fs::write(
        dir.join("greet.py"),
        "import sys\nfrom greetlib.words import hello\nprint(hello(), sys.argv[1:])\n",
    )
    .unwrap();
    std::fs::create_dir(dir.join("greetlib")).unwrap();
    std::fs::write(dir.join("greetlib/__init__.py"), "").unwrap();
    std::fs::write(
        dir.join("greetlib/words.py"),
        "def hello():\n    return 'hello'\n",
    )
    .unwrap();
    zpm_ok(&dir, &["bundle"], &[]);
    let zapp = std::fs::read(dir.join("greeter.zapp")).unwrap();
    assert_eq!(
        members(&zapp),
        [
            "boot/system.map",
            "zapp.yaml",
            "greet.py",
            "greetlib/__init__.py",
            "greetlib/words.py",
            "index.html.tmpl",
            "style.css",
            "zerocloud.js"
        ]
    );

    // Credentials as flags this time.
    let auth = server.auth_url();
    let login = ["-A", auth.as_str(), "-U", "test:tester", "-K", "testing"];
    let mut args = vec!["deploy", "greet", "greeter.zapp"];
    args.extend(login);
    let r = zpm_ok(&dir, &args, &[]);
    let s = Session::new(&server, "test:tester", "testing").await;
    assert_eq!(
        r.stdout,
        format!("app deployed to\n  {}/greet/index.html\n", s.url)
    );
    // The page carries the key (as the original's did), and zpm says so.
    assert!(
        r.stderr.contains("index.html holds your password") && r.stderr.contains("--no-ui-auth"),
        "{}",
        r.stderr
    );

    let page = s.req("GET", "/greet/index.html", &[], "").await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type").starts_with("text/html"),
        "{:?}",
        page.headers
    );
    let html = page.text();
    assert!(!html.contains("{{") && !html.contains("{%"), "{html}");
    assert!(html.contains("<h1>greeter</h1>"), "{html}");
    assert!(html.contains("Greets &lt;you&gt;"), "{html}");
    assert!(html.contains(r#"data-option="--name""#), "{html}");
    // auth_opts: how the page logs in.
    let start = html.find("ZeroCloudApp.attach(").expect("attach call");
    let opts = html[start..]
        .split_once(", ")
        .unwrap()
        .1
        .split_once(");")
        .unwrap()
        .0;
    let opts: serde_json::Value = serde_json::from_str(opts).expect("auth_opts JSON");
    assert_eq!(
        opts,
        serde_json::json!({"version": "1.0", "authUrl": auth, "username": "test:tester", "password": "testing"})
    );
    for (path, kind) in [
        ("/greet/style.css", "text/css"),
        ("/greet/zerocloud.js", "application/javascript"),
    ] {
        let r = s.req("GET", path, &[], "").await;
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("content-type").starts_with(kind),
            "{path}: {:?}",
            r.headers
        );
    }
    let js = s.req("GET", "/greet/zerocloud.js", &[], "").await.text();
    assert_eq!(
        js,
        std::fs::read_to_string(dir.join("zerocloud.js")).unwrap()
    );
    let tmpl = s.req("GET", "/greet/index.html.tmpl", &[], "").await;
    assert_eq!(tmpl.status, 404);

    // The job the page POSTs is the deployed system map: it runs.
    let r = zpm_ok(
        &dir,
        &[
            "execute",
            "greeter.zapp",
            "--container",
            "greet",
            "--",
            "--name",
            "Ada",
        ],
        &as_refs(&st_env(&server)),
    );
    assert_eq!(r.stdout, "hello ['--name', 'Ada']\n");

    // --no-ui-auth: no credentials in the page, the storage URL instead.
    let mut args = vec!["deploy", "--no-ui-auth", "greet2", "greeter.zapp"];
    args.extend(login);
    let r = zpm_ok(&dir, &args, &[]);
    assert!(!r.stderr.contains("password"), "{}", r.stderr);
    let html = s.req("GET", "/greet2/index.html", &[], "").await.text();
    assert!(
        html.contains(&format!(r#"{{"swiftUrl":"{}","version":"0.0"}}"#, s.url))
            || html.contains(&format!(r#"{{"version":"0.0","swiftUrl":"{}"}}"#, s.url)),
        "{html}"
    );
    assert!(!html.contains("testing"), "{html}");
}

#[test]
fn bundle_errors_name_what_is_wrong() {
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path();

    let r = zpm(w, &["bundle"], &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.starts_with("zpm: no zapp.yaml file found"),
        "{}",
        r.stderr
    );

    let dir = hello_project(w);
    // `zpm new` wants an empty directory.
    let r = zpm(w, &["new", "myapp"], &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("is not empty"), "{}", r.stderr);

    let good = std::fs::read_to_string(dir.join("zapp.yaml")).unwrap();

    // Bad YAML: the line is named. Line 7 is the badly indented key.
    std::fs::write(
        dir.join("zapp.yaml"),
        "meta:\n  name: x\nexecution:\n  groups:\n  - name: a\n    path: file://python2.7:python\n   args: x\n",
    )
    .unwrap();
    let r = zpm(&dir, &["bundle"], &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.starts_with("zpm: zapp.yaml: line 7: "),
        "{}",
        r.stderr
    );

    // A bundled file that does not exist.
    std::fs::write(
        dir.join("zapp.yaml"),
        good.replace("[\"hello.py\"]", "[\"hello.py\", \"lib.py\"]"),
    )
    .unwrap();
    let r = zpm(&dir, &["bundle"], &[]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            1,
            "zpm: zapp.yaml: 'bundling' names a missing file: 'lib.py'\n"
        )
    );

    // A glob that matches nothing only warns.
    std::fs::write(
        dir.join("zapp.yaml"),
        good.replace("[\"hello.py\"]", "[\"hello.py\", \"*.txt\"]"),
    )
    .unwrap();
    let r = zpm_ok(&dir, &["bundle"], &[]);
    assert_eq!(
        r.stderr,
        "zpm: warning: pattern '*.txt' in section 'bundling' matched no files\n"
    );
    let r = zpm_ok(&dir, &["-l", "error", "bundle"], &[]);
    assert_eq!(r.stderr, "");

    // Nothing matched at all.
    std::fs::write(
        dir.join("zapp.yaml"),
        good.replace("[\"hello.py\"]", "[\"*.txt\"]"),
    )
    .unwrap();
    let r = zpm(&dir, &["bundle"], &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.ends_with("zpm: None of the files specified in the 'bundling' or 'ui' sections of the zapp.yaml matched anything.\n"), "{}", r.stderr);

    // Outside the project.
    std::fs::write(w.join("secret.py"), "x").unwrap();
    std::fs::write(
        dir.join("zapp.yaml"),
        good.replace("[\"hello.py\"]", "[\"../secret.py\"]"),
    )
    .unwrap();
    let r = zpm(&dir, &["bundle"], &[]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            1,
            "zpm: zapp.yaml: 'bundling' pattern '../secret.py' leaves the project root\n"
        )
    );

    // Python dependencies are not installed: refused with the way out.
    std::fs::write(
        dir.join("zapp.yaml"),
        format!("{good}dependencies: [requests]\n"),
    )
    .unwrap();
    let r = zpm(&dir, &["bundle"], &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("'dependencies' is not supported") && r.stderr.contains("'bundling'"),
        "{}",
        r.stderr
    );
    assert!(!dir.join("x.zapp").exists());

    // Help and usage.
    let r = zpm(w, &["help", "nosuch"], &[]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (2, "no such command: nosuch\n")
    );
    let r = zpm_ok(w, &["help", "deploy"], &[]);
    assert!(r.stdout.contains("Usage: zpm deploy"), "{}", r.stdout);
    assert_eq!(
        zpm_ok(w, &["version"], &[]).stdout,
        zpm_ok(w, &["--version"], &[]).stdout
    );
    assert_eq!(zpm(w, &["nosuch"], &[]).code, 2);
}

#[test]
fn login_and_server_errors_are_shown() {
    let server = Server::start();
    let work = tempfile::tempdir().expect("tempdir");
    let dir = hello_project(work.path());
    zpm_ok(&dir, &["bundle"], &[]);

    // No credentials at all: the variables are named.
    let r = zpm(&dir, &["deploy", "app", "myapp.zapp"], &[]);
    assert_eq!(r.code, 1);
    for var in CREDENTIAL_VARS {
        assert!(r.stderr.contains(var), "{var}: {}", r.stderr);
    }
    // An incomplete set is as good as none; -V names what is missing.
    let auth = server.auth_url();
    let r = zpm(
        &dir,
        &["auth"],
        &[("ST_AUTH", &auth), ("ST_USER", "test:tester")],
    );
    assert!(r.stderr.starts_with("zpm: no credentials"), "{}", r.stderr);
    let r = zpm(
        &dir,
        &["auth", "-V", "1.0"],
        &[("ST_AUTH", &auth), ("ST_USER", "test:tester")],
    );
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "zpm: auth v1.0 needs --key or ST_KEY\n")
    );

    // A wrong password: the server's 401.
    let r = zpm(
        &dir,
        &["execute", "myapp.zapp", "-K", "wrong"],
        &[
            ("ST_AUTH", &auth),
            ("ST_USER", "test:tester"),
            ("ST_KEY", "testing"),
        ],
    );
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "");
    assert!(
        r.stderr
            .starts_with(&format!("zpm: authenticating at {auth}: 401 Unauthorized")),
        "{}",
        r.stderr
    );

    // A container with no deployed zapp: the server's 404.
    let env = st_env(&server);
    let env = as_refs(&env);
    let r = zpm(
        &dir,
        &["execute", "myapp.zapp", "--container", "nosuch"],
        &env,
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .starts_with("zpm: getting 'nosuch/boot/system.map': 404 Not Found"),
        "{}",
        r.stderr
    );

    // A job the server refuses: its status and message.
    std::fs::write(dir.join("hello.py"), "raise SystemExit(3)\n").unwrap();
    edit(&dir, &[("file://python2.7:python", "file://nosuch:python")]);
    zpm_ok(&dir, &["bundle"], &[]);
    let r = zpm(&dir, &["execute", "myapp.zapp"], &env);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.starts_with("zpm: executing 'myapp.zapp': 4"),
        "{}",
        r.stderr
    );

    // Not a zapp.
    std::fs::write(dir.join("bogus.zapp"), "not a tar at all").unwrap();
    let r = zpm(&dir, &["deploy", "app", "bogus.zapp"], &env);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.starts_with("zpm: 'bogus.zapp' is not a zapp"),
        "{}",
        r.stderr
    );
}
