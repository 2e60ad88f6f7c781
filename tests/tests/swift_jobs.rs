//! Jobs on the OpenStack Swift backend: `zerocloud proxy --swift-proxy`
//! with `--swift-agent`s, in front of a real Swift with three object
//! servers and three replicas (`tests/swift/swift-cluster-up.sh`), an exec
//! agent (`object-server --swift-object-server`) beside each. Every read
//! and write a job makes goes to Swift with the caller's token; a session
//! attached to an object runs beside a replica of it and reads it there.
//! Needs the Python image in `$ZEROCLOUD_IMAGES` and Swift installed
//! (scripts/test.sh does both).

mod common;

use std::collections::BTreeMap;

use common::tar_of;
use http::Method;
use tests::swift::SwiftCluster;
use tests::{Http, ObjectServer, Resp, Server, Session};

const WORDCOUNT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/wordcount");

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{WORDCOUNT}/{name}")).expect("test data")
}

const MAPREDUCE: &str = r#"[
  {"name": "map", "exec": {"path": "file://python2.7:python", "args": "mapper.py"},
   "devices": [{"name": "python2.7"}, {"name": "stdout"},
               {"name": "input", "path": "swift://~/mapreduce-data/*.txt"}],
   "connect": ["reduce"]},
  {"name": "reduce", "exec": {"path": "file://python2.7:python", "args": "reducer.py"},
   "devices": [{"name": "python2.7"}, {"name": "stdout"}]}
]"#;

/// Reads its attached object on stdin and says what it saw.
const UPPER: &str = "#!file://python:python\nimport os, sys\n\
print(sys.stdin.read().upper().strip(), os.environ.get('LOCAL_CONTENT_TYPE'), \
os.environ.get('LOCAL_HTTP_X_OBJECT_META_COLOR'))\n";

async fn login(front: &Server, user: &str, key: &str) -> Session {
    let http = Http::new();
    let r = http
        .req(
            Method::GET,
            &front.auth_url(),
            &[("x-auth-user", user), ("x-auth-key", key)],
            Vec::<u8>::new(),
        )
        .await;
    assert_eq!(r.status, 200, "login as {user}: {}", r.text());
    Session {
        http,
        url: r.header("x-storage-url").to_string(),
        token: r.header("x-auth-token").to_string(),
    }
}

async fn post_script(s: &Session, path: &str, script: &str) -> Resp {
    s.req(
        "POST",
        path,
        &[
            ("x-zerovm-execute", "1.0"),
            ("content-type", "application/python"),
        ],
        script.to_string(),
    )
    .await
}

/// The object servers holding `/account/c/o`, as Swift's `list_endpoints`
/// says (asked of the Swift proxy directly: ours never passes it on).
async fn holders(cluster: &SwiftCluster, account: &str, path: &str) -> Vec<String> {
    let r = Http::new()
        .req(
            Method::GET,
            &format!("{}/endpoints/v2/{account}{path}", cluster.proxy),
            &[],
            Vec::<u8>::new(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["endpoints"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e.as_str()?.strip_prefix("http://")?.split('/').next())
        .map(str::to_string)
        .collect()
}

struct Agents {
    _dir: tempfile::TempDir,
    running: Vec<ObjectServer>,
    /// Agent address → the object server it runs beside.
    beside: BTreeMap<String, String>,
}

/// An exec agent beside each of `object_servers`.
fn agents(object_servers: &[String]) -> Agents {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut running = Vec::new();
    let mut beside = BTreeMap::new();
    for (i, server) in object_servers.iter().enumerate() {
        let config = format!("[exec]\nworkers = 2\nswift_object_server = \"{server}\"\n");
        let agent = ObjectServer::start_with(
            &dir.path().join(format!("agent{i}")),
            "127.0.0.1:0",
            &config,
        );
        beside.insert(agent.addr.clone(), server.clone());
        running.push(agent);
    }
    Agents {
        _dir: dir,
        running,
        beside,
    }
}

impl Agents {
    fn pairs(&self) -> Vec<(&str, &str)> {
        self.beside
            .iter()
            .map(|(a, s)| (a.as_str(), s.as_str()))
            .collect()
    }
}

#[tokio::test]
async fn jobs_run_beside_swift_replicas_with_the_callers_token() {
    let cluster = SwiftCluster::start();
    let agents = agents(&cluster.object_servers);
    let front = Server::swift_front_with(&cluster.proxy, &agents.pairs());
    let s = login(&front, "test:tester", "testing").await;
    let account = s.url.rsplit('/').next().unwrap_or_default().to_string();
    assert_eq!(s.req("PUT", "/c", &[], "").await.status, 201);
    let r = s
        .req(
            "PUT",
            "/c/hello.txt",
            &[
                ("content-type", "text/x-hello"),
                ("x-object-meta-color", "blue"),
            ],
            "hello swift\n",
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());

    // A script with no input: any agent.
    let r = post_script(
        &s,
        "",
        "#!file://python:python\nprint('Hello from ZeroVM!')\n",
    )
    .await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    assert_eq!(r.text(), "Hello from ZeroVM!\n");
    assert_eq!(r.header("x-zerocloud-placement"), "none");

    // A script POSTed to an object reads it on stdin: it runs beside a
    // replica, and reads it there, with its metadata.
    let r = post_script(&s, "/c/hello.txt", UPPER).await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    assert_eq!(r.text(), "HELLO SWIFT text/x-hello blue\n");
    assert_eq!(r.header("x-zerocloud-placement"), "local");
    let ran_on = r.header("x-nexe-server").to_string();
    let holding = holders(&cluster, &account, "/c/hello.txt").await;
    assert!(
        holding.contains(&agents.beside[&ran_on]),
        "ran on {ran_on} beside {}, holders {holding:?}",
        agents.beside[&ran_on]
    );

    // Outputs go through the Swift proxy, so Swift stores (and replicates)
    // them: read back straight from Swift.
    let job = format!(
        r#"[{{"name": "w", "exec": {{"path": "file://python:python", "args": "-c print(6*7)"}},
            "devices": [{{"name": "python"}}, {{"name": "stdout", "path": "swift://{account}/c/answer.txt", "content_type": "text/plain"}}]}}]"#
    );
    let r = s
        .req(
            "POST",
            "",
            &[
                ("x-zerovm-execute", "1.0"),
                ("content-type", "application/json"),
            ],
            job,
        )
        .await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    let straight = Http::new()
        .req(
            Method::GET,
            &format!("{}/v1/{account}/c/answer.txt", cluster.proxy),
            &[("x-auth-token", s.token.as_str())],
            Vec::<u8>::new(),
        )
        .await;
    assert_eq!((straight.status, straight.text().as_str()), (200, "42\n"));
    assert_eq!(straight.header("content-type"), "text/plain");

    // The seed's MapReduce wordcount: each map node beside its input.
    assert_eq!(s.req("PUT", "/mapreduce-data", &[], "").await.status, 201);
    for f in ["mrdata1.txt", "mrdata2.txt", "mrdata3.txt"] {
        let r = s
            .req("PUT", &format!("/mapreduce-data/{f}"), &[], read(f))
            .await;
        assert_eq!(r.status, 201);
    }
    let zapp = tar_of(&[
        ("boot/system.map", MAPREDUCE.as_bytes()),
        ("mapper.py", &read("mapper.py")),
        ("reducer.py", &read("reducer.py")),
    ]);
    let r = s
        .req(
            "POST",
            "",
            &[
                ("x-zerovm-execute", "1.0"),
                ("content-type", "application/x-tar"),
            ],
            zapp.clone(),
        )
        .await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    let lines: Vec<String> = r.text().lines().map(|l| l.trim().to_string()).collect();
    assert_eq!(
        lines,
        [
            "104 mapreduce-data/mrdata1.txt",
            "101 mapreduce-data/mrdata2.txt",
            "69 mapreduce-data/mrdata3.txt",
            "274 total"
        ]
    );
    assert_eq!(r.header("x-zerocloud-placement"), "local,local,local,none");
    let servers: Vec<String> = r
        .header("x-nexe-server")
        .split(',')
        .map(str::to_string)
        .collect();
    for (i, f) in ["mrdata1.txt", "mrdata2.txt", "mrdata3.txt"]
        .iter()
        .enumerate()
    {
        let holding = holders(&cluster, &account, &format!("/mapreduce-data/{f}")).await;
        assert!(
            holding.contains(&agents.beside[&servers[i]]),
            "map-{} ran on {} beside {}; {f} is on {holding:?}",
            i + 1,
            servers[i],
            agents.beside[&servers[i]]
        );
    }

    // Swift decides with the caller's token: another account's user
    // cannot read this account's object through a job, a bad token is 401.
    let other = login(&front, "test2:tester2", "testing2").await;
    let job = format!(
        r#"[{{"name": "peek", "exec": {{"path": "file://python:python", "args": "-c print(open('/dev/stdin').read())"}},
            "devices": [{{"name": "python"}}, {{"name": "stdin", "path": "swift://{account}/c/hello.txt"}}, {{"name": "stdout"}}]}}]"#
    );
    let r = other
        .req(
            "POST",
            "",
            &[
                ("x-zerovm-execute", "1.0"),
                ("content-type", "application/json"),
            ],
            job,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let bad = Session {
        http: Http::new(),
        url: s.url.clone(),
        token: "AUTH_tk_not_a_token".into(),
    };
    let r = post_script(&bad, "/c/hello.txt", UPPER).await;
    assert_eq!(r.status, 401, "{}", r.text());
    // Nor can the other user write here: the job runs, Swift refuses its
    // output's PUT, and nothing is stored.
    let job = format!(
        r#"[{{"name": "w", "exec": {{"path": "file://python:python", "args": "-c print(1)"}},
            "devices": [{{"name": "python"}}, {{"name": "stdout", "path": "swift://{account}/c/planted.txt"}}]}}]"#
    );
    let r = other
        .req(
            "POST",
            "",
            &[
                ("x-zerovm-execute", "1.0"),
                ("content-type", "application/json"),
            ],
            job,
        )
        .await;
    assert!(
        r.status == 403 || r.status == 401,
        "{}: {:?}",
        r.status,
        r.headers
    );
    assert_eq!(s.req("HEAD", "/c/planted.txt", &[], "").await.status, 404);

    // With the object server it ran beside stopped, the job runs beside
    // another replica.
    let n = cluster
        .object_servers
        .iter()
        .position(|o| *o == agents.beside[&ran_on])
        .expect("an object server of the cluster") as u8
        + 1;
    cluster.object_server("swift-cluster-down.sh", n);
    let r = post_script(&s, "/c/hello.txt", UPPER).await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    assert_eq!(r.text(), "HELLO SWIFT text/x-hello blue\n");
    assert_eq!(r.header("x-zerocloud-placement"), "local");
    assert_ne!(r.header("x-nexe-server"), ran_on);
    cluster.object_server("swift-cluster-up.sh", n);

    // Agents beside none of the replicas: the proxy streams the object
    // (read through the Swift proxy with the caller's token); the program
    // sees the same bytes and metadata.
    let elsewhere = [(agents.running[0].addr.as_str(), "127.0.0.1:9")];
    let front2 = Server::swift_front_with(&cluster.proxy, &elsewhere);
    let s2 = login(&front2, "test:tester", "testing").await;
    let r = post_script(&s2, "/c/hello.txt", UPPER).await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    assert_eq!(r.text(), "HELLO SWIFT text/x-hello blue\n");
    assert_eq!(r.header("x-zerocloud-placement"), "streamed");
    let r = s2
        .req(
            "POST",
            "",
            &[
                ("x-zerovm-execute", "1.0"),
                ("content-type", "application/x-tar"),
            ],
            zapp,
        )
        .await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    assert!(r.text().contains("274 total"), "{}", r.text());
    assert_eq!(
        r.header("x-zerocloud-placement"),
        "streamed,streamed,streamed,none"
    );
}

/// A chain step: below the limit it answers with the next step's job.
const STEP: &str = r#"import json, sys
n, limit = int(sys.argv[1]), int(sys.argv[2])
if n < limit:
    job = [{"name": "step%d" % (n + 1),
            "exec": {"path": "file://python:python", "args": "step.py %d %d" % (n + 1, limit)},
            "devices": [{"name": "python"}, {"name": "image", "path": "swift://~/apps/chain.tar"},
                        {"name": "stdout", "content_type": "message/cgi"}]}]
    sys.stdout.write("X-Zerovm-Execute: 1.0\r\nContent-Type: application/json\r\n\r\n" + json.dumps(job))
else:
    sys.stdout.write("Content-Type: text/plain\r\n\r\ndone after %d jobs\n" % n)
"#;

const PRETTYPRINT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/prettyprint");

async fn put(s: &Session, path: &str, content_type: &str, body: Vec<u8>) {
    let r = s
        .req("PUT", path, &[("content-type", content_type)], body)
        .await;
    assert_eq!(r.status, 201, "PUT {path}: {}", r.text());
}

/// The app forms, chains and a container input, on Swift: each reads and
/// writes through Swift as its caller.
#[tokio::test]
async fn apps_chains_and_container_inputs_run_on_swift() {
    let cluster = SwiftCluster::start();
    let agents = agents(&cluster.object_servers);
    let front = Server::swift_front_with(&cluster.proxy, &agents.pairs());
    let s = login(&front, "test:tester", "testing").await;
    let (root, account) = s.url.split_once("/v1/").expect("a /v1/ storage URL");
    let (root, account) = (root.to_string(), account.to_string());
    for c in ["example", ".zvm", "apps", "data"] {
        assert_eq!(s.req("PUT", &format!("/{c}"), &[], "").await.status, 201);
    }

    // open/1.0: the seed's prettyprint app, registered in .zvm for JSON.
    let pp = |f: &str| std::fs::read(format!("{PRETTYPRINT}/{f}")).expect("test data");
    put(
        &s,
        "/example/data.json",
        "application/json",
        pp("data.json"),
    )
    .await;
    let tar = tar_of(&[("prettyprint.py", &pp("prettyprint.py"))]);
    put(&s, "/example/prettyprint.tar", "application/x-tar", tar).await;
    put(
        &s,
        "/.zvm/application/json/config",
        "application/json",
        pp("config"),
    )
    .await;
    let r = s
        .http
        .req(
            Method::GET,
            &format!("{root}/open/{account}/example/data.json"),
            &[("x-auth-token", s.token.as_str())],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    assert!(r.text().starts_with("{'geometries': "), "{}", r.text());
    assert_eq!(r.header("x-zerocloud-placement"), "local");
    // Without a token, Swift refuses the object to the app as to anyone.
    let r = s
        .http
        .req(
            Method::GET,
            &format!("{root}/open/{account}/example/data.json"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text());

    // api/1.0: a container's REST endpoint runs its app.
    let map = serde_json::json!([{
        "name": "app", "exec": {"path": "file://python:python", "args": "app.py"},
        "devices": [{"name": "python"}, {"name": "stdin"},
                    {"name": "stdout", "content_type": "message/cgi"}],
    }])
    .to_string();
    let app = "import os, sys\nsys.stdout.write('Status: 201 Created\\r\\n\\r\\n%s %s' % (os.environ['REQUEST_METHOD'], os.environ['PATH_INFO']))\n";
    let zapp = tar_of(&[
        ("boot/system.map", map.as_bytes()),
        ("app.py", app.as_bytes()),
    ]);
    put(&s, "/apps/api.zapp", "application/x-tar", zapp).await;
    let endpoint = format!("swift://{account}/apps/api.zapp");
    let r = s
        .req(
            "POST",
            "/data",
            &[("x-container-meta-rest-endpoint", endpoint.as_str())],
            "",
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = s
        .http
        .req(
            Method::POST,
            &format!("{root}/api/{account}/data/items"),
            &[("x-auth-token", s.token.as_str())],
            "",
        )
        .await;
    assert_eq!(
        (r.status, r.text()),
        (201, format!("POST /{account}/data/items"))
    );

    // A chain of three jobs, each POSTed as the caller.
    let tar = tar_of(&[("step.py", STEP.as_bytes())]);
    put(&s, "/apps/chain.tar", "application/x-tar", tar).await;
    let first = serde_json::json!([{
        "name": "step1",
        "exec": {"path": "file://python:python", "args": "step.py 1 3"},
        "devices": [{"name": "python"}, {"name": "image", "path": "swift://~/apps/chain.tar"},
                    {"name": "stdout", "content_type": "message/cgi"}],
    }])
    .to_string();
    let r = s
        .req(
            "POST",
            "",
            &[
                ("x-zerovm-execute", "1.0"),
                ("content-type", "application/json"),
            ],
            first,
        )
        .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "done after 3 jobs\n"),
        "{:?}",
        r.headers
    );

    // A container input: Swift's listing, read as the caller, as the
    // SQLite table a program queries.
    for (name, body) in [("b.csv", "2"), ("a.csv", "1"), ("c.txt", "33")] {
        put(
            &s,
            &format!("/data/{name}"),
            "text/csv",
            body.as_bytes().to_vec(),
        )
        .await;
    }
    let map = r#"[{"name":"query","exec":{"path":"file://python:python","args":"query.py"},
        "devices":[{"name":"input","path":"swift://~/data"},{"name":"stdout"}]}]"#;
    let query = "import sqlite3\n\
        db = sqlite3.connect('file:/dev/input?mode=ro&immutable=1', uri=True)\n\
        for row in db.execute(\"SELECT name, size, content_type, etag, created_at > '1700000000' FROM object ORDER BY name\"):\n    print(*row)\n";
    let zapp = tar_of(&[
        ("boot/system.map", map.as_bytes()),
        ("query.py", query.as_bytes()),
    ]);
    let r = s
        .req(
            "POST",
            "",
            &[
                ("x-zerovm-execute", "1.0"),
                ("content-type", "application/x-tar"),
            ],
            zapp,
        )
        .await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    let md5 = |b: &str| tests::md5_hex(b.as_bytes());
    assert_eq!(
        r.text(),
        format!(
            "a.csv 1 text/csv {} 1\nb.csv 1 text/csv {} 1\nc.txt 2 text/csv {} 1\n",
            md5("1"),
            md5("2"),
            md5("33")
        )
    );
    assert_eq!(r.header("x-zerocloud-placement"), "streamed");
}
