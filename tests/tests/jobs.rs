//! Jobs through the proxy on the embedded default (`zerocloud up`), with the
//! real sandbox and the real Python image: every request form of
//! spec/zerocloud.md §1.2–§1.3, the seed's examples (§3.3 of the ZeroVM
//! docs, ported to Python 3), stored outputs, and the errors of §4.2.
//! Needs `$ZEROCLOUD_IMAGES` with the Python image (scripts/test.sh).

mod common;

use common::{mk_container, tar_of};
use tests::{md5_hex, Server, Session};

async fn post_job(
    s: &Session,
    path: &str,
    content_type: &str,
    body: impl Into<bytes::Bytes>,
) -> tests::Resp {
    s.req(
        "POST",
        path,
        &[("x-zerovm-execute", "1.0"), ("content-type", content_type)],
        body,
    )
    .await
}

async fn up() -> (Server, Session) {
    let server = Server::start();
    let s = Session::new(&server, "test:tester", "testing").await;
    (server, s)
}

const HELLO: &str = "#!file://python2.7:python\nimport sys\nprint(\"Hello from ZeroVM!\")\nprint(\"sys.platform is '%s'\" % sys.platform)\n";

#[tokio::test]
async fn the_seed_script_example_runs() {
    let (_server, s) = up().await;
    let r = post_job(&s, "", "application/python", HELLO).await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    assert_eq!(r.text(), "Hello from ZeroVM!\nsys.platform is 'wasi'\n");
    assert_eq!(r.header("x-nexe-system"), "script");
    assert_eq!(r.header("x-nexe-status"), "ok");
    assert_eq!(r.header("x-nexe-retcode"), "0");
    assert_eq!(r.header("x-nexe-validation"), "0");
    assert_eq!(r.header("content-type"), "text/plain");
    assert_eq!(r.header("x-zerovm-device"), "stdout");
    assert!(
        r.header("x-nexe-etag").contains("/dev/stdout"),
        "{:?}",
        r.headers
    );
    // `<proxy s>, <node s>, <accounting>`
    let cdr = r.header("x-nexe-cdr-line");
    assert_eq!(cdr.split(", ").count(), 3, "{cdr}");
    assert!(!r.header("x-nexe-server").is_empty());
    // The other shebang names of the image, and a text/plain script.
    for exe in ["python", "python3"] {
        let script = format!("#!file://{exe}:python\nprint(6 * 7)\n");
        let r = post_job(&s, "", "text/plain", script).await;
        assert_eq!((r.status, r.text().as_str()), (200, "42\n"), "{exe}");
    }
}

#[tokio::test]
async fn the_seed_zapp_image_example_runs() {
    let (_server, s) = up().await;
    let map = br#"[{
        "name": "example",
        "exec": {"path": "file://python2.7:python", "args": "main.py"},
        "devices": [{"name": "python2.7"}, {"name": "stdout"}]
    }]"#;
    let main = b"import mymath\na = 5\nb = 6\nthe_sum = mymath.add(a, b)\nprint(\"%s + %s = %s\" % (a, b, the_sum))\n";
    let mymath = b"def add(a, b):\n    return a + b\n";
    let zapp = tar_of(&[
        ("boot/system.map", map),
        ("main.py", main),
        ("mymath.py", mymath),
    ]);
    let r = post_job(&s, "", "application/x-tar", zapp.clone()).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "5 + 6 = 11\n"),
        "{:?}",
        r.headers
    );
    assert_eq!(r.header("x-nexe-system"), "example");

    // The same zapp gzipped.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &zapp).unwrap();
    let r = post_job(&s, "", "application/x-gzip", gz.finish().unwrap()).await;
    assert_eq!((r.status, r.text().as_str()), (200, "5 + 6 = 11\n"));

    // No system map, but a zapp.yaml with an execution section.
    let yaml = b"execution:\n  groups:\n    - name: hello\n      path: file://python2.7:python\n      args: main.py\n      devices:\n        - name: python2.7\n        - name: stdout\n";
    let zapp = tar_of(&[
        ("zapp.yaml", yaml),
        ("main.py", main),
        ("mymath.py", mymath),
    ]);
    let r = post_job(&s, "", "application/x-tar", zapp).await;
    assert_eq!((r.status, r.text().as_str()), (200, "5 + 6 = 11\n"));
    assert_eq!(r.header("x-nexe-system"), "hello");
}

#[tokio::test]
async fn the_seed_csv_example_reads_its_input_object_and_image() {
    let (_server, s) = up().await;
    mk_container(&s, "example").await;
    let main = b"import csv\nwith open('/dev/input') as fp:\n    reader = csv.reader(fp)\n    for id, name, email, balance in reader:\n        print('%(name)s: %(balance)s' % dict(name=name, balance=balance))\n";
    let r = s
        .req(
            "PUT",
            "/example/example.tar",
            &[],
            tar_of(&[("main.py", main)]),
        )
        .await;
    assert_eq!(r.status, 201);
    let data1 =
        "id,name,email,balance\n1,Alice,alice@example.com,1000\n2,Bob,bob@example.com,-500\n";
    let data2 =
        "id,name,email,balance\n3,David,david@example.com,15000\n4,Erin,erin@example.com,25000\n";
    s.req("PUT", "/example/data1.csv", &[], data1).await;
    s.req("PUT", "/example/data2.csv", &[], data2).await;
    for (input, want) in [
        ("data1.csv", "name: balance\nAlice: 1000\nBob: -500\n"),
        ("data2.csv", "name: balance\nDavid: 15000\nErin: 25000\n"),
    ] {
        let job = format!(
            r#"[{{"name": "example",
                 "exec": {{"path": "file://python2.7:python", "args": "main.py"}},
                 "devices": [{{"name": "python2.7"}}, {{"name": "stdout"}},
                             {{"name": "input", "path": "swift://~/example/{input}"}},
                             {{"name": "image", "path": "swift://~/example/example.tar"}}]}}]"#
        );
        let r = post_job(&s, "", "application/json", job).await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, want),
            "{:?}",
            r.headers
        );
    }
}

#[tokio::test]
async fn jobs_run_from_container_and_object_urls_and_any_version() {
    let (_server, s) = up().await;
    mk_container(&s, "c").await;
    s.req("PUT", "/c/o", &[], "object text").await;
    let job = r#"[{"name":"n","exec":{"path":"file://python:python","args":"-c print(1)"},"devices":[{"name":"stdout"}]}]"#;
    // A comma in args reaches the program (the NVRAM escapes it).
    let comma = r#"[{"name":"n","exec":{"path":"file://python:python","args":"-c print(1,2)"},"devices":[{"name":"stdout"}]}]"#;
    let r = post_job(&s, "", "application/json", comma).await;
    assert_eq!((r.status, r.text().as_str()), (200, "1 2\n"));
    for path in ["", "/c", "/c/o"] {
        let r = post_job(&s, path, "application/json", job).await;
        assert_eq!((r.status, r.text().as_str()), (200, "1\n"), "{path}");
    }
    for version in ["v1/1.0", "foo"] {
        let r = s
            .req(
                "POST",
                "",
                &[
                    ("x-zerovm-execute", version),
                    ("content-type", "application/json"),
                ],
                job,
            )
            .await;
        assert_eq!(r.status, 200, "{version}");
    }
    // A script POSTed to an object reads it on stdin (ZeroCloud's template
    // for this case was broken, spec §9 item 10).
    let script = "#!file://python:python\nimport sys\nprint(sys.stdin.read().upper())\n";
    let r = post_job(&s, "/c/o", "application/python", script).await;
    assert_eq!((r.status, r.text().as_str()), (200, "OBJECT TEXT\n"));
    // Only POST runs; the job controller answers other methods with 501.
    for m in ["GET", "PUT", "DELETE", "HEAD"] {
        let r = s.req(m, "/c/o", &[("x-zerovm-execute", "1.0")], "").await;
        assert_eq!(r.status, 501, "{m}");
    }
    let r = s
        .req("COPY", "/c/o", &[("x-zerovm-execute", "1.0")], "")
        .await;
    assert_eq!((r.status, r.text().as_str()), (412, "Bad HTTP method"));
    // Without the header, a POST is Swift's metadata POST, untouched.
    let r = s
        .req("POST", "/c/o", &[("x-object-meta-color", "blue")], "")
        .await;
    assert_eq!(r.status, 202);
    let r = s.req("HEAD", "/c/o", &[], "").await;
    assert_eq!(r.header("x-object-meta-color"), "blue");
}

#[tokio::test]
async fn x_zerovm_source_runs_a_stored_job_on_the_request_body() {
    let (_server, s) = up().await;
    mk_container(&s, "apps").await;
    let upper = b"import sys\nsys.stdout.write(sys.stdin.read().upper())\n";
    s.req(
        "PUT",
        "/apps/upper.tar",
        &[],
        tar_of(&[("upper.py", upper)]),
    )
    .await;
    let job = r#"[{"name":"upper","exec":{"path":"file://python:python","args":"upper.py"},
        "devices":[{"name":"stdin"},{"name":"stdout","content_type":"text/plain"},
                   {"name":"image","path":"swift://~/apps/upper.tar"}]}]"#;
    s.req(
        "PUT",
        "/apps/upper.json",
        &[("content-type", "application/json")],
        job,
    )
    .await;
    let r = s
        .req(
            "POST",
            "",
            &[
                ("x-zerovm-execute", "1.0"),
                ("x-zerovm-source", "swift://~/apps/upper.json"),
                ("content-type", "text/plain"),
            ],
            "shout this",
        )
        .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "SHOUT THIS"),
        "{:?}",
        r.headers
    );
    // A stored script runs too (its type decides).
    s.req(
        "PUT",
        "/apps/hello.py",
        &[("content-type", "application/python")],
        HELLO,
    )
    .await;
    let r = s
        .req(
            "POST",
            "",
            &[
                ("x-zerovm-execute", "1.0"),
                ("x-zerovm-source", "swift://~/apps/hello.py"),
                ("content-type", "text/plain"),
            ],
            "",
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("Hello from ZeroVM!"));
    // A missing source is the fetch's status and message.
    let r = s
        .req(
            "POST",
            "",
            &[
                ("x-zerovm-execute", "1.0"),
                ("x-zerovm-source", "swift://~/apps/nope.json"),
                ("content-type", "text/plain"),
            ],
            "",
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.text(),
        format!(
            "Error 404 Not Found while fetching /{}/apps/nope.json",
            account(&s)
        )
    );
}

fn account(s: &Session) -> String {
    s.url.rsplit('/').next().unwrap_or_default().to_string()
}

/// A zapp: `boot/system.map` and the given files.
fn zapp(map: &str, files: &[(&str, &str)]) -> Vec<u8> {
    let mut members: Vec<(&str, &[u8])> = vec![("boot/system.map", map.as_bytes())];
    members.extend(files.iter().map(|(n, d)| (*n, d.as_bytes())));
    tar_of(&members)
}

#[tokio::test]
async fn outputs_are_stored_as_objects_where_they_live() {
    let (_server, s) = up().await;
    mk_container(&s, "in").await;
    mk_container(&s, "out").await;
    s.req("PUT", "/in/words.txt", &[], "one two three\n").await;
    // Read-attached to its input; writes `output` (stored by the proxy)
    // and `stdout` (returned).
    let map = r#"[{"name":"count","exec":{"path":"file://python:python","args":"count.py"},
        "devices":[{"name":"input","path":"swift://~/in/words.txt"},
                   {"name":"output","path":"swift://~/out/upper.txt","content_type":"text/x-upper",
                    "meta":{"Made-By":"count"}},
                   {"name":"stdout"}]}]"#;
    let count = "d = open('/dev/input').read()\nopen('/dev/output', 'w').write(d.upper())\nprint(len(d.split()))\n";
    let r = post_job(
        &s,
        "",
        "application/x-tar",
        zapp(map, &[("count.py", count)]),
    )
    .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "3\n"),
        "{:?}",
        r.headers
    );
    let o = s.req("GET", "/out/upper.txt", &[], "").await;
    assert_eq!((o.status, o.text().as_str()), (200, "ONE TWO THREE\n"));
    assert_eq!(o.header("content-type"), "text/x-upper");
    assert_eq!(o.header("x-object-meta-made-by"), "count");
    assert_eq!(o.header("etag"), md5_hex(b"ONE TWO THREE\n"));

    // A node whose only swift device is its output runs where the output
    // lives and writes it in place.
    let job = r#"[{"name":"w","exec":{"path":"file://python:python","args":"-c print(42)"},
        "devices":[{"name":"stdout","path":"swift://~/out/local.txt","content_type":"text/plain"}]}]"#;
    let r = post_job(&s, "", "application/json", job).await;
    assert_eq!((r.status, r.text().as_str()), (200, ""), "{:?}", r.headers);
    assert_eq!(r.header("content-length"), "0");
    let o = s.req("GET", "/out/local.txt", &[], "").await;
    assert_eq!((o.status, o.text().as_str()), (200, "42\n"));
    assert_eq!(o.header("etag"), md5_hex(b"42\n"));
    assert_eq!(o.header("content-type"), "text/plain");
    // Listings and counters as for a PUT.
    let l = s.req("GET", "/out?format=json", &[], "").await;
    let names: Vec<String> = l
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["local.txt", "upper.txt"]);
    let c = s.req("HEAD", "/out", &[], "").await;
    assert_eq!(c.header("x-container-object-count"), "2");
}

#[tokio::test]
async fn a_failed_node_stores_nothing_and_keeps_the_old_object() {
    let (_server, s) = up().await;
    mk_container(&s, "out").await;
    s.req("PUT", "/out/r.txt", &[], "old").await;
    // Attached (stdout with a path) and stored by the proxy (output).
    for device in ["stdout", "output"] {
        let map = format!(
            r#"[{{"name":"{device}","exec":{{"path":"file://python:python","args":"fail.py"}},
                "devices":[{{"name":"{device}","path":"swift://~/out/r.txt"}}]}}]"#
        );
        let fail = format!("open('/dev/{device}', 'w').write('partial')\nraise SystemExit(3)\n");
        let r = post_job(
            &s,
            "",
            "application/x-tar",
            zapp(&map, &[("fail.py", &fail)]),
        )
        .await;
        assert_eq!(r.status, 500, "{device}: {:?}", r.headers);
        assert_eq!(r.header("x-nexe-retcode"), "3", "{device}");
        assert_eq!(r.header("x-nexe-error"), "bad return code", "{device}");
        let o = s.req("GET", "/out/r.txt", &[], "").await;
        assert_eq!(o.text(), "old", "{device}");
    }
}

#[tokio::test]
async fn request_errors_have_zerocloud_statuses_and_messages() {
    let (_server, s) = up().await;
    let acct = account(&s);
    let exec = [("x-zerovm-execute", "1.0")];
    let r = s.req("POST", "", &exec, "x").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "Must specify Content-Type")
    );

    let cases: Vec<(&str, Vec<u8>, u16, String)> = vec![
        ("application/json", b"[{".to_vec(), 422, "Could not parse system map".into()),
        ("application/json", b"[]".to_vec(), 400, "Config parser cannot resolve any job nodes".into()),
        ("application/json", br#"[{"name":"x"}]"#.to_vec(), 400, "Must specify exec stanza for x".into()),
        ("application/json", vec![b' '; 70_000], 413, String::new()),
        ("application/x-tar", tar_of(&[("main.py", b"print(1)")]), 400, "System boot map was not found in request".into()),
        ("application/x-tar", b"this is not a tar archive at all, no, not at all".to_vec(), 422, "Error reading application/x-tar stream".into()),
        ("application/x-gzip", b"bad gzip".to_vec(), 422, "Error reading application/x-gzip stream".into()),
        ("application/python", b"print(1)\n".to_vec(), 400, "Unsupported Content-Type".into()),
        ("application/python", b"#!file://python:python".to_vec(), 400, "Cannot find shebang (#!) in script".into()),
        ("application/python", b"#! aaa/bbb\nx".to_vec(), 400, "Bad interpreter aaa/bbb".into()),
        ("application/python", b"#!file://bin/sh\nx".to_vec(), 400, "Must supply image name in shebang url file://bin/sh".into()),
        (
            "application/json",
            br#"[{"name":"x","exec":{"path":"file://python:python"},"devices":[{"name":"stdout"},{"name":"input","path":"swift://~/nope/missing"}]}]"#.to_vec(),
            404,
            String::new(),
        ),
        (
            "application/json",
            br#"[{"name":"x","exec":{"path":"file://python:python"},"devices":[{"name":"stdin","path":"swift://~/nope/a"},{"name":"stdout","path":"swift://~/nope/b"}]}]"#.to_vec(),
            404,
            String::new(),
        ),
    ];
    for (ct, body, status, msg) in cases {
        let r = post_job(&s, "", ct, body).await;
        assert_eq!(r.status, status, "{ct}: {}", r.text());
        if !msg.is_empty() {
            assert_eq!(r.text(), msg, "{ct}");
        }
    }
    // A remote object that does not exist: ZeroCloud's fetch message.
    mk_container(&s, "c").await;
    let job = r#"[{"name":"x","exec":{"path":"file://python:python"},"devices":[{"name":"stdout"},{"name":"image","path":"swift://~/c/missing.tar"},{"name":"input","path":"swift://~/c/missing.txt"}]}]"#;
    let r = post_job(&s, "", "application/json", job).await;
    assert_eq!(r.status, 404);
    let t = r.text();
    assert!(
        t == format!("Error 404 Not Found while fetching /{acct}/c/missing.txt")
            || t == format!("Error 404 Not Found while fetching /{acct}/c/missing.tar"),
        "{t}"
    );
    // An ETag that is not the body's MD5.
    let job =
        r#"[{"name":"x","exec":{"path":"file://python:python"},"devices":[{"name":"stdout"}]}]"#;
    let r = s
        .req(
            "POST",
            "",
            &[
                ("x-zerovm-execute", "1.0"),
                ("content-type", "application/json"),
                ("etag", "0123"),
            ],
            job,
        )
        .await;
    assert_eq!(r.status, 422);
    let r = s
        .req(
            "POST",
            "",
            &[
                ("x-zerovm-execute", "1.0"),
                ("content-type", "application/json"),
                ("etag", &md5_hex(job.as_bytes())),
            ],
            job,
        )
        .await;
    assert_eq!(r.status, 200);
    // A program in a user image that does not exist there.
    let map =
        br#"[{"name":"x","exec":{"path":"file://image:nope.wasm"},"devices":[{"name":"stdout"}]}]"#;
    let r = post_job(
        &s,
        "",
        "application/x-tar",
        tar_of(&[("boot/system.map", map)]),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.text(), "No executable nope.wasm in the image");
    // An executable that is not WebAssembly: the node reports it.
    let map =
        br#"[{"name":"x","exec":{"path":"file://image:prog.wasm"},"devices":[{"name":"stdout"}]}]"#;
    let r = post_job(
        &s,
        "",
        "application/x-tar",
        tar_of(&[("boot/system.map", map), ("prog.wasm", b"not wasm")]),
    )
    .await;
    assert_eq!(r.status, 500, "{:?}", r.headers);
    assert_eq!(r.header("x-nexe-validation"), "1");
    assert_eq!(r.header("x-nexe-status"), "validation failed");
    // The debug device (a connection out of the sandbox) is refused.
    let job = r#"[{"name":"x","exec":{"path":"file://python:python"},"devices":[{"name":"stdout"},{"name":"debug","path":"tcp://127.0.0.1:9"}]}]"#;
    let r = post_job(&s, "", "application/json", job).await;
    assert_eq!(r.status, 400, "{}", r.text());
}

#[tokio::test]
async fn a_wasm_program_from_the_store_runs() {
    let (_server, s) = up().await;
    mk_container(&s, "apps").await;
    let wasm = wat::parse_str(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 100) "hi from wasm\n")
          (func (export "_start")
            (i32.store (i32.const 0) (i32.const 100))
            (i32.store (i32.const 4) (i32.const 13))
            (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
    )
    .unwrap();
    s.req(
        "PUT",
        "/apps/hi.wasm",
        &[("content-type", "application/x-nexe")],
        wasm,
    )
    .await;
    let job =
        r#"[{"name":"hi","exec":{"path":"swift://~/apps/hi.wasm"},"devices":[{"name":"stdout"}]}]"#;
    let r = post_job(&s, "", "application/json", job).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "hi from wasm\n"),
        "{:?}",
        r.headers
    );
}

#[tokio::test]
async fn programs_see_the_forced_headers_and_the_cgi_environment() {
    let (server, s) = up().await;
    let info = tests::Http::new()
        .req(hyper::Method::GET, &format!("{}/info", server.url), &[], "")
        .await;
    assert_eq!(info.json()["zerocloud"]["timeout"], 10, "{}", info.text());
    let script = "#!file://python:python\nimport os\nfor k in sorted(os.environ):\n    print(k + '=' + os.environ[k])\n";
    let r = s
        .req(
            "POST",
            "",
            &[
                ("x-zerovm-execute", "1.0"),
                ("content-type", "application/python"),
                ("x-zerovm-timeout", "99"),
                ("x-custom", "yes"),
            ],
            script,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let env: std::collections::BTreeMap<String, String> = r
        .text()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let get = |k: &str| env.get(k).map(String::as_str).unwrap_or("<unset>");
    // The proxy's timeout, not the client's.
    assert_eq!(get("HTTP_X_ZEROVM_TIMEOUT"), "10");
    assert_eq!(get("HTTP_X_ZEROVM_EXECUTE"), "1.0");
    assert_eq!(get("HTTP_X_CUSTOM"), "yes");
    assert_eq!(get("HTTP_X_TRANS_ID"), r.header("x-trans-id"));
    let id = get("HTTP_X_ZEROCLOUD_ID");
    assert!(
        id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    assert_eq!(get("REQUEST_METHOD"), "POST");
    assert_eq!(get("PATH_INFO"), format!("/{}", account(&s)));
    assert_eq!(get("SCRIPT_NAME"), "script");
    assert_eq!(get("SCRIPT_FILENAME"), "file://python:python");
    assert_eq!(get("SERVER_SOFTWARE"), "zerocloud");
    assert_eq!(get("GATEWAY_INTERFACE"), "CGI/1.1");
    // Credentials and the body's own headers never reach the program.
    for k in [
        "HTTP_X_AUTH_TOKEN",
        "HTTP_CONTENT_TYPE",
        "HTTP_CONTENT_LENGTH",
    ] {
        assert_eq!(get(k), "<unset>", "{k}");
    }
}

#[tokio::test]
async fn a_container_input_is_a_sqlite_snapshot_of_its_listing() {
    let (_server, s) = up().await;
    mk_container(&s, "many").await;
    for i in 0..1000 {
        let ext = if i % 3 == 0 { "csv" } else { "txt" };
        let r = s
            .req(
                "PUT",
                &format!("/many/obj{i:04}.{ext}"),
                &[],
                format!("{i}"),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    // Deleted objects are not in the snapshot.
    for i in [3, 6, 9] {
        let r = s
            .req("DELETE", &format!("/many/obj{i:04}.csv"), &[], "")
            .await;
        assert_eq!(r.status, 204);
    }
    let map = r#"[{"name":"query","exec":{"path":"file://python:python","args":"query.py"},
        "devices":[{"name":"input","path":"swift://~/many"},{"name":"stdout"}]}]"#;
    let query = "import sqlite3\n\
        db = sqlite3.connect('file:/dev/input?mode=ro&immutable=1', uri=True)\n\
        for (name,) in db.execute(\"SELECT name FROM object WHERE name LIKE '%.csv' ORDER BY name\"):\n    print(name)\n";
    let r = post_job(
        &s,
        "",
        "application/x-tar",
        zapp(map, &[("query.py", query)]),
    )
    .await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    let listing = s.req("GET", "/many?format=json&limit=10000", &[], "").await;
    let want: Vec<String> = listing
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .filter(|n| n.ends_with(".csv"))
        .map(str::to_string)
        .collect();
    let got: Vec<String> = r.text().lines().map(str::to_string).collect();
    assert_eq!(got.len(), 331);
    assert_eq!(got, want);
}
