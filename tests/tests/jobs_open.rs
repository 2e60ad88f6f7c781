//! `open/1.0` (spec/zerocloud.md §1.4) on three object servers: an object
//! GET processed by the app registered in `.zvm` for its content type (the
//! seed's prettyprint tutorial, in Python 3), in both URL forms; zapp
//! objects run by a request on them; the default app of
//! `application/x-nexe`; and the form's errors. Needs `$ZEROCLOUD_IMAGES`
//! with the Python image (scripts/test.sh).

mod common;

use common::{mk_container, post_zapp, tar_of};
use hyper::Method;
use tests::{Cluster, Resp, Session};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/prettyprint");

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DATA}/{name}")).expect("test data")
}

/// `/open/<account>/<path>` on the proxy, as `s`.
async fn open_form(s: &Session, method: Method, path: &str, headers: &[(&str, &str)]) -> Resp {
    let (root, account) = s.url.split_once("/v1/").expect("a /v1/ storage URL");
    let mut h = vec![("x-auth-token", s.token.as_str())];
    h.extend_from_slice(headers);
    s.http
        .req(method, &format!("{root}/open/{account}{path}"), &h, "")
        .await
}

async fn put(s: &Session, path: &str, content_type: &str, body: Vec<u8>) {
    let len = body.len().to_string();
    let r = s
        .req(
            "PUT",
            path,
            &[("content-type", content_type), ("content-length", &len)],
            body,
        )
        .await;
    assert_eq!(r.status, 201, "PUT {path}: {}", r.text());
}

/// The seed's pretty-printed `data.json` (Python's `pprint.pformat`).
const PRETTY: &str = "{'geometries': [{'coordinates': [100.0, 0.0], 'type': 'Point'},
                {'coordinates': [[101.0, 0.0], [102.0, 1.0]],
                 'type': 'LineString'}],
 'type': 'GeometryCollection'}
";

/// The tutorial's steps: the data, the app's tar, and its config in `.zvm`.
async fn install_prettyprint(s: &Session) {
    mk_container(s, "example").await;
    put(
        s,
        "/example/data.json",
        "application/json",
        read("data.json"),
    )
    .await;
    let tar = tar_of(&[("prettyprint.py", &read("prettyprint.py"))]);
    put(s, "/example/prettyprint.tar", "application/x-tar", tar).await;
    mk_container(s, ".zvm").await;
    put(
        s,
        "/.zvm/application/json/config",
        "application/json",
        read("config"),
    )
    .await;
}

#[tokio::test]
async fn the_seed_prettyprint_app_renders_a_json_object_on_get_in_both_url_forms() {
    let cluster = Cluster::start(3);
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    install_prettyprint(&s).await;

    let r = s
        .req(
            "GET",
            "/example/data.json",
            &[("x-zerovm-execute", "open/1.0")],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    assert_eq!(r.text(), PRETTY);
    assert_eq!(r.header("x-nexe-status"), "ok");

    let r = open_form(&s, Method::GET, "/example/data.json", &[]).await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    assert_eq!(r.text(), PRETTY);

    // Without the header it is the stored object, unprocessed.
    let r = s.req("GET", "/example/data.json", &[], "").await;
    assert_eq!(r.body, read("data.json"));
}

#[tokio::test]
async fn open_refuses_what_it_cannot_run_with_the_spec_s_statuses() {
    let cluster = Cluster::start(3);
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    install_prettyprint(&s).await;
    put(
        &s,
        "/example/notes.txt",
        "text/plain",
        b"plain text\n".to_vec(),
    )
    .await;
    put(&s, "/example/empty", "application/octet-stream", Vec::new()).await;
    put(&s, "/example/a.tar", "application/x-tar", b"a".to_vec()).await;
    put(
        &s,
        "/example/bad.tgz",
        "application/x-gzip",
        b"bad gzip".to_vec(),
    )
    .await;

    // No app for the type.
    let r = open_form(&s, Method::GET, "/example/notes.txt", &[]).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, "No application registered for text/plain")
    );
    // A missing object is the object's 404.
    let r = open_form(&s, Method::GET, "/example/nothing.json", &[]).await;
    assert_eq!(r.status, 404);
    // No object in the URL.
    let r = open_form(&s, Method::GET, "/example", &[]).await;
    assert_eq!((r.status, r.text().as_str()), (412, "Bad URL"));
    // Methods other than GET on what is not a zapp.
    for m in [Method::POST, Method::PUT, Method::DELETE, Method::HEAD] {
        for o in ["/example/data.json", "/example/empty", "/example/a.tar"] {
            let r = open_form(&s, m.clone(), o, &[]).await;
            assert_eq!(r.status, 501, "{m} {o}");
        }
    }
    // A gzip object that does not inflate.
    let r = open_form(&s, Method::POST, "/example/bad.tgz", &[]).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (422, "Error reading application/x-gzip stream")
    );
    // A registered config larger than maxconfig (64 KiB).
    let big = format!("[{}]", " ".repeat(70_000));
    put(
        &s,
        "/.zvm/text/csv/config",
        "application/json",
        big.into_bytes(),
    )
    .await;
    put(&s, "/example/t.csv", "text/csv", b"a,b\n".to_vec()).await;
    let r = open_form(&s, Method::GET, "/example/t.csv", &[]).await;
    let account = s.url.rsplit('/').next().expect("account");
    assert_eq!(
        (r.status, r.text()),
        (
            413,
            format!("Config file at /{account}/.zvm/text/csv/config is too large")
        )
    );
    // The objects are untouched.
    let r = s.req("GET", "/example/notes.txt", &[], "").await;
    assert_eq!(r.text(), "plain text\n");
}

#[tokio::test]
async fn a_zapp_object_runs_when_requested_with_its_payload_and_method() {
    let cluster = Cluster::start(3);
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    mk_container(&s, "apps").await;
    let map = r#"[{"name":"echo","exec":{"path":"file://python:python","args":"echo.py"},
        "devices":[{"name":"python"},{"name":"stdin"},{"name":"stdout"}]}]"#;
    let echo = "import os, sys\nprint(os.environ['REQUEST_METHOD'], sys.stdin.read())\n";
    let zapp = tar_of(&[
        ("boot/system.map", map.as_bytes()),
        ("echo.py", echo.as_bytes()),
    ]);
    put(&s, "/apps/echo.zapp", "application/x-tar", zapp).await;

    let (root, account) = s.url.split_once("/v1/").expect("storage URL");
    let url = format!("{root}/open/{account}/apps/echo.zapp");
    let r = s
        .http
        .req(
            Method::POST,
            &url,
            &[("x-auth-token", &s.token), ("content-type", "text/plain")],
            "the payload",
        )
        .await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    assert_eq!(r.text(), "POST the payload\n");
    let r = s
        .req(
            "PUT",
            "/apps/echo.zapp",
            &[
                ("x-zerovm-execute", "open/1.0"),
                ("content-type", "text/plain"),
            ],
            "put body",
        )
        .await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    assert_eq!(r.text(), "PUT put body\n");
    // HEAD and DELETE run it too (HEAD answers without the body).
    let r = open_form(&s, Method::HEAD, "/apps/echo.zapp", &[]).await;
    assert_eq!(
        (r.status, r.header("x-nexe-status")),
        (200, "ok"),
        "{:?}",
        r.headers
    );
    assert!(r.body.is_empty());
    let r = open_form(&s, Method::DELETE, "/apps/echo.zapp", &[]).await;
    assert_eq!((r.status, r.text().as_str()), (200, "DELETE \n"));
    // The zapp itself was not replaced or removed by those requests.
    let r = s.req("HEAD", "/apps/echo.zapp", &[], "").await;
    assert_eq!(r.header("content-type"), "application/x-tar");
    // A GET without a Content-Type (ZeroCloud refused it with 400 `Must
    // specify Content-Type`; a browser sends none).
    let r = open_form(&s, Method::GET, "/apps/echo.zapp", &[]).await;
    assert_eq!((r.status, r.text().as_str()), (200, "GET \n"));
}

#[tokio::test]
async fn an_executable_object_runs_by_default_with_query_values_in_its_template() {
    let cluster = Cluster::start(3);
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    mk_container(&s, "apps").await;
    let wasm = wat::parse_str(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 100) "<p>hi from wasm</p>\n")
          (func (export "_start")
            (i32.store (i32.const 0) (i32.const 100))
            (i32.store (i32.const 4) (i32.const 20))
            (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
    )
    .expect("the guest assembles");
    put(&s, "/apps/hi.nexe", "application/x-nexe", wasm).await;
    let r = open_form(
        &s,
        Method::GET,
        "/apps/hi.nexe?content_type=text%2Fhtml",
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    assert_eq!(r.text(), "<p>hi from wasm</p>\n");
    assert_eq!(r.header("content-type"), "text/html");
    // The template's default.
    let r = open_form(&s, Method::GET, "/apps/hi.nexe", &[]).await;
    assert_eq!(r.header("content-type"), "text/plain");
    // A query value cannot reshape the job: it stays an argument.
    let r = open_form(
        &s,
        Method::GET,
        "/apps/hi.nexe?args=x%22%7D%2C%7B%22name%22%3A%22evil",
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    assert_eq!(r.header("x-nexe-system"), "executable");
}

#[tokio::test]
async fn open_reads_the_object_with_the_caller_s_rights() {
    let cluster = Cluster::start(3);
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    install_prettyprint(&s).await;
    // Another account's user may not open it.
    let other = Session::new(&cluster.proxy, "test2:tester2", "testing2").await;
    let (root, _) = other.url.split_once("/v1/").expect("storage URL");
    let account = s.url.rsplit('/').next().expect("account");
    let r = other
        .http
        .req(
            Method::GET,
            &format!("{root}/open/{account}/example/data.json"),
            &[("x-auth-token", &other.token)],
            "",
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    // Nor anonymously.
    let r = other
        .http
        .req(
            Method::GET,
            &format!("{root}/open/{account}/example/data.json"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
}

/// A zapp whose one node runs `app.py` with stdout of `content_type`.
fn cgi_zapp(content_type: &str, app: &str) -> Vec<u8> {
    let map = serde_json::json!([{
        "name": "app", "exec": {"path": "file://python:python", "args": "app.py"},
        "devices": [{"name": "python"}, {"name": "stdin"},
                    {"name": "stdout", "content_type": content_type}],
    }])
    .to_string();
    tar_of(&[
        ("boot/system.map", map.as_bytes()),
        ("app.py", app.as_bytes()),
    ])
}

#[tokio::test]
async fn a_program_answers_http_itself_with_message_cgi_and_message_http() {
    let cluster = Cluster::start(3);
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    // message/cgi: headers, then the body; Status sets the status.
    let app = "import sys\nsys.stdout.write('Status: 201 Created\\r\\nX-Seq-Start: 5\\r\\nContent-Type: text/csv\\r\\nContent-Length: 999\\r\\n\\r\\na,b\\n1,2\\n')\n";
    let r = post_zapp(&s, cgi_zapp("message/cgi", app)).await;
    assert_eq!(r.status, 201, "{}: {:?}", r.text(), r.headers);
    assert_eq!(r.text(), "a,b\n1,2\n");
    assert_eq!(r.header("content-type"), "text/csv");
    assert_eq!(r.header("x-seq-start"), "5");
    // The length is the body's, whatever the program claimed.
    assert_eq!(r.header("content-length"), "8");
    assert_eq!(r.header("status"), "");
    // Without Status: 200.
    let app = "print('Content-Type: text/plain')\nprint()\nprint('fine')\n";
    let r = post_zapp(&s, cgi_zapp("message/cgi", app)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "fine\n"));
    // message/http: a status line first.
    let app = "import sys\nsys.stdout.write('HTTP/1.1 404 Not Found\\r\\nX-Why: none\\r\\n\\r\\nnothing here')\n";
    let r = post_zapp(&s, cgi_zapp("message/http", app)).await;
    assert_eq!(r.status, 404, "{:?}", r.headers);
    assert_eq!(r.text(), "nothing here");
    assert_eq!(r.header("x-why"), "none");
    // What does not parse is returned as written.
    let app = "import sys\nsys.stdout.write('Status: 200 OK\\n\\nbody')\n";
    let r = post_zapp(&s, cgi_zapp("message/http", app)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Status: 200 OK\n\nbody");
    assert_eq!(r.header("content-type"), "message/http");
    // A program cannot forge the run's report headers.
    let app = "print('X-Nexe-Status: forged')\nprint()\nprint('x')\n";
    let r = post_zapp(&s, cgi_zapp("message/cgi", app)).await;
    assert_eq!(r.header("x-nexe-status"), "ok");
}

#[tokio::test]
async fn a_rest_style_zapp_answers_each_method_with_its_own_status_and_headers() {
    let cluster = Cluster::start(3);
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    mk_container(&s, "apps").await;
    let app = "import os, sys\n\
m = os.environ['REQUEST_METHOD']\n\
body = sys.stdin.read()\n\
if m == 'GET':\n    status, out = '200 OK', 'item ' + os.environ.get('QUERY_STRING', '')\n\
elif m == 'POST':\n    status, out = '201 Created', 'stored ' + body\n\
elif m == 'DELETE':\n    status, out = '204 No Content', ''\n\
else:\n    status, out = '405 Method Not Allowed', m\n\
sys.stdout.write('Status: %s\\r\\nX-Method: %s\\r\\nContent-Type: text/plain\\r\\n\\r\\n%s' % (status, m, out))\n";
    put(
        &s,
        "/apps/rest.zapp",
        "application/x-tar",
        cgi_zapp("message/cgi", app),
    )
    .await;
    let (root, account) = s.url.split_once("/v1/").expect("storage URL");
    let url = format!("{root}/open/{account}/apps/rest.zapp");
    let call = |m: Method, q: &'static str, body: &'static str| {
        let s = s.clone();
        let url = format!("{url}{q}");
        async move {
            s.http
                .req(
                    m,
                    &url,
                    &[("x-auth-token", &s.token), ("content-type", "text/plain")],
                    body,
                )
                .await
        }
    };
    let r = call(Method::GET, "?id=7", "").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "item id=7"),
        "{:?}",
        r.headers
    );
    assert_eq!(r.header("x-method"), "GET");
    let r = call(Method::POST, "", "hello").await;
    assert_eq!((r.status, r.text().as_str()), (201, "stored hello"));
    assert_eq!(r.header("x-method"), "POST");
    let r = call(Method::DELETE, "", "").await;
    assert_eq!(r.status, 204, "{:?}", r.headers);
    assert_eq!(r.header("x-method"), "DELETE");
    let r = call(Method::PUT, "", "x").await;
    assert_eq!((r.status, r.text().as_str()), (405, "PUT"));
}

/// A request on `/api/<account><path>` as `s` (`token`: with its token).
async fn api_form(
    s: &Session,
    method: Method,
    path: &str,
    body: &'static str,
    token: bool,
) -> Resp {
    let (root, account) = s.url.split_once("/v1/").expect("a /v1/ storage URL");
    let mut h = vec![("content-type", "text/plain")];
    if token {
        h.push(("x-auth-token", s.token.as_str()));
    }
    s.http
        .req(method, &format!("{root}/api/{account}{path}"), &h, body)
        .await
}

#[tokio::test]
async fn api_endpoints_serve_a_container_s_rest_api_from_its_app() {
    let cluster = Cluster::start(3);
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    let account = s.url.rsplit('/').next().expect("account").to_string();
    mk_container(&s, "apps").await;
    let app = "import os, sys\n\
m = os.environ['REQUEST_METHOD']\n\
body = sys.stdin.read()\n\
status = {'GET': '200 OK', 'POST': '201 Created', 'DELETE': '202 Accepted'}.get(m, '405 Method Not Allowed')\n\
sys.stdout.write('Status: %s\\r\\nX-Path-Info: %s\\r\\nX-Request-Uri: %s\\r\\n\\r\\n%s %s' % (status, os.environ['PATH_INFO'], os.environ['REQUEST_URI'], m, body))\n";
    put(
        &s,
        "/apps/api.zapp",
        "application/x-tar",
        cgi_zapp("message/cgi", app),
    )
    .await;
    let r = s
        .req(
            "PUT",
            "/snake",
            &[(
                "x-container-meta-rest-endpoint",
                &format!("swift://{account}/apps/api.zapp"),
            )],
            "",
        )
        .await;
    assert!(r.status == 201 || r.status == 202, "{}", r.status);

    let r = api_form(&s, Method::GET, "/snake/items/7?full=1", "", true).await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    assert_eq!(r.text(), "GET ");
    assert_eq!(r.header("x-path-info"), format!("/{account}/snake/items/7"));
    assert_eq!(
        r.header("x-request-uri"),
        format!("/api/{account}/snake/items/7?full=1")
    );
    let r = api_form(&s, Method::POST, "/snake/items", "a new item", true).await;
    assert_eq!((r.status, r.text().as_str()), (201, "POST a new item"));
    let r = api_form(&s, Method::DELETE, "/snake/items/7", "", true).await;
    assert_eq!((r.status, r.text().as_str()), (202, "DELETE "));
    // The header form: the same app, the /v1 path.
    let r = s
        .req(
            "PUT",
            "/snake/items/9",
            &[("x-zerovm-execute", "api/1.0")],
            "x",
        )
        .await;
    assert_eq!((r.status, r.text().as_str()), (405, "PUT x"));
    assert_eq!(
        r.header("x-request-uri"),
        format!("/v1/{account}/snake/items/9")
    );
    // Nothing was stored under the API's paths.
    let r = s.req("GET", "/snake", &[], "").await;
    assert!(r.text().is_empty(), "{}", r.text());

    // A JSON job as the endpoint.
    let job = r#"[{"name":"hello","exec":{"path":"file://python:python","args":"-c print('hello')"},"devices":[{"name":"stdout"}]}]"#;
    put(
        &s,
        "/apps/hello.json",
        "application/json",
        job.as_bytes().to_vec(),
    )
    .await;
    s.req(
        "POST",
        "/snake",
        &[(
            "x-container-meta-rest-endpoint",
            &format!("swift://{account}/apps/hello.json"),
        )],
        "",
    )
    .await;
    let r = api_form(&s, Method::GET, "/snake/x", "", true).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "hello\n"),
        "{:?}",
        r.headers
    );
}

#[tokio::test]
async fn api_refuses_what_it_cannot_serve() {
    let cluster = Cluster::start(3);
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    let account = s.url.rsplit('/').next().expect("account").to_string();
    mk_container(&s, "plain").await;
    let r = api_form(&s, Method::GET, "/plain/x", "", true).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, "No API endpoint configured for container plain")
    );
    let r = api_form(&s, Method::GET, "", "", true).await;
    assert_eq!((r.status, r.text().as_str()), (412, "Bad URL"));
    // An endpoint that is missing, or neither a zapp nor a JSON job.
    mk_container(&s, "apps").await;
    put(&s, "/apps/notes.txt", "text/plain", b"just text".to_vec()).await;
    for (container, target, status) in [("gone", "nothing.zapp", 404), ("text", "notes.txt", 404)] {
        s.req(
            "PUT",
            &format!("/{container}"),
            &[(
                "x-container-meta-rest-endpoint",
                &format!("swift://{account}/apps/{target}"),
            )],
            "",
        )
        .await;
        let r = api_form(&s, Method::GET, &format!("/{container}/x"), "", true).await;
        assert_eq!(r.status, status, "{container}: {}", r.text());
    }
    // A plain endpoint: other methods are 501; a GET opens the object
    // asked for, as open/1.0 does.
    let r = api_form(&s, Method::POST, "/text/x", "", true).await;
    assert_eq!(r.status, 501, "{}", r.text());
    put(&s, "/text/readme.txt", "text/plain", b"hi\n".to_vec()).await;
    let r = api_form(&s, Method::GET, "/text/readme.txt", "", true).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, "No application registered for text/plain")
    );
    // Another account's user, and an anonymous caller, may not run it.
    let other = Session::new(&cluster.proxy, "test2:tester2", "testing2").await;
    let (root, _) = other.url.split_once("/v1/").expect("storage URL");
    let url = format!("{root}/api/{account}/text/x");
    let r = other
        .http
        .req(Method::GET, &url, &[("x-auth-token", &other.token)], "")
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = other.http.req(Method::GET, &url, &[], "").await;
    assert_eq!(r.status, 401, "{}", r.text());
}

/// POST with the given metadata headers on a container (owner).
async fn set_meta(s: &Session, container: &str, h: &[(&str, &str)]) -> Resp {
    s.req("POST", &format!("/{container}"), h, "").await
}

#[tokio::test]
async fn setuid_lets_anyone_run_an_app_with_its_owner_s_rights_on_the_containers_that_say_so() {
    let cluster = Cluster::start(3);
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    let account = s.url.rsplit('/').next().expect("account").to_string();
    let (root, _) = s.url.split_once("/v1/").expect("storage URL");
    let anon = tests::Http::new();
    for c in ["apps", "snake", "data", "secret"] {
        mk_container(&s, c).await;
    }
    put(&s, "/data/in.txt", "text/plain", b"owner's data\n".to_vec()).await;
    put(&s, "/secret/s.txt", "text/plain", b"secret\n".to_vec()).await;
    // The app reads data/in.txt, writes data/out.txt, answers with what it read.
    let zapp = common::relay_zapp(
        &format!("swift://{account}/data/in.txt"),
        &format!("swift://{account}/data/out.txt"),
    );
    put(&s, "/apps/app.zapp", "application/x-tar", zapp).await;
    // An app of the owner's that reads a container without the setuid metas.
    let map = serde_json::json!([{
        "name": "peek", "exec": {"path": "file://python:python", "args": "-c print(open('/dev/input').read())"},
        "devices": [{"name": "input", "path": format!("swift://{account}/secret/s.txt")},
                    {"name": "stdout"}],
    }])
    .to_string();
    let app_url = format!("swift://{account}/apps/app.zapp");
    // Kept where its own metas name it, so that only `secret` stands in
    // its way.
    let peek_url = format!("swift://{account}/peek/peek.json");
    for c in ["apps", "snake", "data"] {
        common::lend(&s, c, &app_url, ".r:*").await;
    }
    mk_container(&s, "peek").await;
    put(&s, "/peek/peek.json", "application/json", map.into_bytes()).await;
    common::lend(&s, "peek", &peek_url, ".r:*").await;

    // Allowed: anyone calls the app; it reads and writes as its owner let it.
    let r = anon
        .req(
            Method::GET,
            &format!("{root}/api/{account}/snake/x"),
            &[],
            "",
        )
        .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "owner's data\n"),
        "{:?}",
        r.headers
    );
    let r = s.req("GET", "/data/out.txt", &[], "").await;
    assert_eq!(r.text(), "seen: owner's data\n");
    // Another account's user too.
    let other = Session::new(&cluster.proxy, "test2:tester2", "testing2").await;
    let r = other
        .http
        .req(
            Method::POST,
            &format!("{root}/api/{account}/snake/y"),
            &[("x-auth-token", &other.token)],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Refused: an app reaching a container of the owner without the metas
    // (secret): nothing runs.
    let r = anon
        .req(
            Method::GET,
            &format!("{root}/api/{account}/peek/x"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = other
        .http
        .req(
            Method::GET,
            &format!("{root}/api/{account}/peek/x"),
            &[("x-auth-token", &other.token)],
            "",
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    // The same call runs once `secret` names the app too: the refusal was
    // `secret`'s alone.
    common::lend(&s, "secret", &peek_url, ".r:*").await;
    let r = anon
        .req(
            Method::GET,
            &format!("{root}/api/{account}/peek/x"),
            &[],
            "",
        )
        .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "secret\n\n"),
        "{:?}",
        r.headers
    );
    set_meta(
        &s,
        "secret",
        &[
            ("x-remove-container-meta-rest-endpoint", "x"),
            ("x-remove-container-meta-zerovm-suid", "x"),
        ],
    )
    .await;
    // Refused: the caller's own job, writing into a container the app may
    // write (its devices are not the app's); with the app as its source the
    // body is only the app's input, never a job.
    let evil = format!(
        r#"[{{"name":"evil","exec":{{"path":"file://python:python","args":"-c open('/dev/out').write('x')"}},"devices":[{{"name":"out","path":"swift://{account}/data/evil.txt"}}]}}]"#
    );
    for headers in [
        vec![
            ("x-zerovm-execute", "1.0"),
            ("content-type", "application/json"),
        ],
        vec![
            ("x-zerovm-execute", "1.0"),
            ("content-type", "application/json"),
            ("x-zerovm-source", app_url.as_str()),
        ],
    ] {
        let r = anon
            .req(
                Method::POST,
                &format!("{root}/v1/{account}/data/evil.txt"),
                &headers,
                evil.clone(),
            )
            .await;
        assert_ne!(r.header("x-nexe-system"), "evil", "{}", r.text());
    }
    let r = s.req("GET", "/data/evil.txt", &[], "").await;
    assert_eq!(
        r.status, 404,
        "a caller's job wrote into the owner's container"
    );
    let r = s.req("GET", "/secret/s.txt", &[], "").await;
    assert_eq!(r.text(), "secret\n");
    // Refused: setting setuid on a container one does not own.
    for (token, want) in [(Some(other.token.as_str()), 403), (None, 401)] {
        let mut h = vec![("x-container-meta-zerovm-suid", ".r:*")];
        if let Some(t) = token {
            h.push(("x-auth-token", t));
        }
        let r = anon
            .req(Method::POST, &format!("{root}/v1/{account}/secret"), &h, "")
            .await;
        assert_eq!(r.status, want);
    }
    let r = s.req("HEAD", "/secret", &[], "").await;
    assert_eq!(r.header("x-container-meta-zerovm-suid"), "");
}

#[tokio::test]
async fn job_responses_carry_the_container_s_cors_headers_when_use_cors_is_on() {
    for (use_cors, want) in [(true, "http://example.com"), (false, "")] {
        let cluster = Cluster::start_with(1, "", &format!("[zerocloud]\nuse_cors = {use_cors}\n"));
        let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
        mk_container(&s, "web").await;
        set_meta(
            &s,
            "web",
            &[(
                "x-container-meta-access-control-allow-origin",
                "http://example.com",
            )],
        )
        .await;
        let r = s
            .req(
                "POST",
                "/web",
                &[
                    ("x-zerovm-execute", "1.0"),
                    ("content-type", "application/python"),
                    ("origin", "http://example.com"),
                ],
                "#!file://python:python\nprint('hi')\n",
            )
            .await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "hi\n"),
            "{:?}",
            r.headers
        );
        assert_eq!(
            r.header("access-control-allow-origin"),
            want,
            "use_cors {use_cors}"
        );
    }
}

#[tokio::test]
async fn an_opened_object_s_app_sees_the_cgi_environment_variable_by_variable() {
    let cluster = Cluster::start(3);
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    let account = s.url.rsplit('/').next().expect("account").to_string();
    mk_container(&s, "apps").await;
    mk_container(&s, "docs").await;
    let env_py = "import json, os\nprint(json.dumps(dict(os.environ)))\n";
    put(
        &s,
        "/apps/env.tar",
        "application/x-tar",
        tar_of(&[("env.py", env_py.as_bytes())]),
    )
    .await;
    let body = b"1,2,3\n".to_vec();
    let r = s
        .req(
            "PUT",
            "/docs/table.csv",
            &[
                ("content-type", "text/x-envtest"),
                ("x-object-meta-color", "blue"),
                ("content-length", "6"),
            ],
            body,
        )
        .await;
    assert_eq!(r.status, 201);
    let etag = r.header("etag").to_string();
    mk_container(&s, ".zvm").await;
    let config = r#"[{"name": "env", "exec": {"path": "file://python:python", "args": "env.py"},
        "devices": [{"name": "python"}, {"name": "input", "path": "{.object_path}"},
                    {"name": "image", "path": "swift://~/apps/env.tar"}, {"name": "stdout"}]}]"#;
    put(
        &s,
        "/.zvm/text/x-envtest/config",
        "application/json",
        config.as_bytes().to_vec(),
    )
    .await;

    let (root, _) = s.url.split_once("/v1/").expect("storage URL");
    let host = root.trim_start_matches("http://").to_string();
    let (server_name, server_port) = host.split_once(':').expect("host:port");
    let r = s
        .http
        .req(
            Method::GET,
            &format!("{root}/open/{account}/docs/table.csv?rows=3&x=y"),
            &[
                ("x-auth-token", &s.token),
                ("x-custom", "yes"),
                ("cookie", "secret=1"),
            ],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    let env: serde_json::Value =
        serde_json::from_str(r.text().trim()).expect("the environment as JSON");
    let get = |k: &str| env[k].as_str().unwrap_or("<unset>").to_string();
    assert_eq!(get("REQUEST_METHOD"), "GET");
    assert_eq!(get("QUERY_STRING"), "rows=3&x=y");
    assert_eq!(
        get("REQUEST_URI"),
        format!("/open/{account}/docs/table.csv?rows=3&x=y")
    );
    assert_eq!(get("PATH_INFO"), format!("/{account}/docs/table.csv"));
    assert_eq!(get("SCRIPT_NAME"), "env");
    assert_eq!(get("SCRIPT_FILENAME"), "file://python:python");
    assert_eq!(get("SERVER_SOFTWARE"), "zerocloud");
    assert_eq!(get("GATEWAY_INTERFACE"), "CGI/1.1");
    assert_eq!(get("SERVER_NAME"), server_name);
    assert_eq!(get("SERVER_PORT"), server_port);
    assert_eq!(get("HTTP_X_ZEROVM_EXECUTE"), "open/1.0");
    assert_eq!(get("HTTP_X_CUSTOM"), "yes");
    assert_eq!(get("HTTP_HOST"), host);
    assert_eq!(get("HTTP_X_ZEROVM_TIMEOUT"), "10");
    // The caller's groups, as Swift's REMOTE_USER. On the Swift backend
    // the caller's identity is Swift's alone (docs/swift-backend.md).
    if tests::on_swift() {
        assert_eq!(get("REMOTE_USER"), "<unset>");
    } else {
        let groups: Vec<String> = get("REMOTE_USER").split(',').map(str::to_string).collect();
        assert!(groups.contains(&"test:tester".to_string()), "{groups:?}");
        assert!(groups.contains(&account), "{groups:?}");
    }
    // Never passed on: credentials, cookies, body framing.
    for k in [
        "HTTP_X_AUTH_TOKEN",
        "HTTP_COOKIE",
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
    ] {
        assert_eq!(get(k), "<unset>", "{k}");
    }
    // The attached object's own variables.
    assert_eq!(get("LOCAL_OBJECT"), "on");
    assert_eq!(get("LOCAL_CONTENT_LENGTH"), "6");
    assert_eq!(get("LOCAL_CONTENT_TYPE"), "text/x-envtest");
    assert_eq!(get("LOCAL_HTTP_X_OBJECT_META_COLOR"), "blue");
    assert_eq!(get("LOCAL_HTTP_ETAG"), etag);
    assert_eq!(get("LOCAL_PATH_INFO"), format!("/{account}/docs/table.csv"));
    assert_eq!(get("LOCAL_DOCUMENT_ROOT"), "/dev/input");
}

#[tokio::test]
async fn a_stored_cgi_output_keeps_the_body_typed_and_described_by_the_program() {
    let cluster = Cluster::start(3);
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    mk_container(&s, "out").await;
    // The node writes its output object (attached for writing: it runs
    // where the object lives) and a second one the proxy stores.
    let page = "import sys\nsys.stdout.write('Content-Type: text/html\\r\\nX-Object-Meta-Kind: page\\r\\n\\r\\n<p>hi</p>\\n')\nopen('/dev/output', 'w').write('HTTP/1.1 200 OK\\r\\nContent-Type: text/csv\\r\\nX-Object-Meta-Rows: 1\\r\\n\\r\\na,b\\n')\n";
    let map = serde_json::json!([{
        "name": "page", "exec": {"path": "file://python:python", "args": "page.py"},
        "devices": [{"name": "python"},
                    {"name": "stdout", "path": "swift://~/out/page.html", "content_type": "message/cgi"},
                    {"name": "output", "path": "swift://~/out/table.csv", "content_type": "message/http"}],
    }])
    .to_string();
    let zapp = tar_of(&[
        ("boot/system.map", map.as_bytes()),
        ("page.py", page.as_bytes()),
    ]);
    let r = post_zapp(&s, zapp).await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    for (path, body, ct, (k, v)) in [
        (
            "/out/page.html",
            "<p>hi</p>\n",
            "text/html",
            ("x-object-meta-kind", "page"),
        ),
        (
            "/out/table.csv",
            "a,b\n",
            "text/csv",
            ("x-object-meta-rows", "1"),
        ),
    ] {
        let got = s.req("GET", path, &[], "").await;
        assert_eq!((got.status, got.text().as_str()), (200, body), "{path}");
        assert_eq!(got.header("content-type"), ct, "{path}");
        assert_eq!(got.header(k), v, "{path}");
        assert_eq!(
            got.header("etag"),
            tests::md5_hex(body.as_bytes()),
            "{path}"
        );
        assert_eq!(
            got.header("content-length"),
            body.len().to_string(),
            "{path}"
        );
    }
    // The listing shows the stored sizes.
    let listing = s.req("GET", "/out?format=json", &[], "").await;
    let rows = listing.json();
    assert_eq!(rows[0]["name"], "page.html");
    assert_eq!(rows[0]["bytes"], 10);
    assert_eq!(rows[0]["content_type"], "text/html");
}
