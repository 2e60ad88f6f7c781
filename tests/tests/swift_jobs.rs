//! Jobs on the OpenStack Swift backend: `zerocloud proxy --swift-proxy`
//! with `--swift-agent`s, in front of a real Swift with three object
//! servers and three replicas (`tests/swift/swift-cluster-up.sh`), an exec
//! agent (`object-server --swift-object-server`) beside each. Every read
//! and write a job makes goes to Swift with the caller's token; a session
//! attached to an object runs beside a replica of it and reads it there.
//! Needs the Python image in `$ZEROCLOUD_IMAGES` and Swift installed
//! (scripts/test.sh does both). The job tests of the embedded store also
//! run on this setup (`ZC_TEST_BACKEND=swift`, scripts/test.sh); these are
//! what only this backend has: its placement and the caller's token.

mod common;

use std::collections::BTreeMap;

use common::{post_zapp, store_wordcount_inputs, wordcount_zapp, WORDCOUNT_MAP};
use http::Method;
use tests::swift::{AgentBeside, SwiftCluster};
use tests::{Http, Resp, Server, Session};

/// Reads its attached object on stdin and says what it saw.
const UPPER: &str = "#!file://python:python\nimport os, sys\n\
print(sys.stdin.read().upper().strip(), os.environ.get('LOCAL_CONTENT_TYPE'), \
os.environ.get('LOCAL_HTTP_X_OBJECT_META_COLOR'))\n";

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

async fn post_json(s: &Session, job: String) -> Resp {
    s.req(
        "POST",
        "",
        &[
            ("x-zerovm-execute", "1.0"),
            ("content-type", "application/json"),
        ],
        job,
    )
    .await
}

#[tokio::test]
async fn jobs_run_beside_swift_replicas_with_the_callers_token() {
    let cluster = SwiftCluster::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let agents = cluster.start_agents(3, "[exec]\nworkers = 2\n", dir.path());
    let flags: Vec<String> = agents.iter().map(AgentBeside::flag).collect();
    let front = Server::swift_front_with(&cluster.proxy, &flags);
    // Agent address → the object server it runs beside.
    let beside: BTreeMap<String, String> = agents
        .iter()
        .map(|a| (a.server.addr.clone(), a.beside.clone()))
        .collect();
    let s = Session::new(&front, "test:tester", "testing").await;
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

    // A script POSTed to an object reads it on stdin: it runs beside the
    // replica placement prefers, and reads it there, with its metadata.
    let r = post_script(&s, "/c/hello.txt", UPPER).await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    assert_eq!(r.text(), "HELLO SWIFT text/x-hello blue\n");
    assert_eq!(r.header("x-zerocloud-placement"), "local");
    let ran_on = r.header("x-nexe-server").to_string();
    let preferred = cluster.primaries(&account, "c", "hello.txt");
    assert_eq!(beside[&ran_on], preferred[0], "{preferred:?}");

    // Outputs go through the Swift proxy, so Swift stores (and replicates)
    // them: read back straight from Swift.
    let r = post_json(
        &s,
        format!(
            r#"[{{"name": "w", "exec": {{"path": "file://python:python", "args": "-c print(6*7)"}},
                "devices": [{{"name": "python"}}, {{"name": "stdout", "path": "swift://{account}/c/answer.txt", "content_type": "text/plain"}}]}}]"#
        ),
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

    // The seed's MapReduce wordcount: each map node beside its input
    // (jobs_connected.rs checks the same on this setup; here, against
    // streamed placement below).
    store_wordcount_inputs(&s).await;
    let zapp = wordcount_zapp(WORDCOUNT_MAP);
    let r = post_zapp(&s, zapp.clone()).await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    let lines: Vec<String> = r.text().lines().map(|l| l.trim().to_string()).collect();
    let counts = [
        "104 mapreduce-data/mrdata1.txt",
        "101 mapreduce-data/mrdata2.txt",
        "69 mapreduce-data/mrdata3.txt",
        "274 total",
    ];
    assert_eq!(lines, counts);
    assert_eq!(r.header("x-zerocloud-placement"), "local,local,local,none");

    // Swift decides with the caller's token: another account's user
    // cannot read this account's object through a job, a bad token is 401.
    let other = Session::new(&front, "test2:tester2", "testing2").await;
    let r = post_json(
        &other,
        format!(
            r#"[{{"name": "peek", "exec": {{"path": "file://python:python", "args": "-c print(open('/dev/stdin').read())"}},
                "devices": [{{"name": "python"}}, {{"name": "stdin", "path": "swift://{account}/c/hello.txt"}}, {{"name": "stdout"}}]}}]"#
        ),
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
    let r = post_json(
        &other,
        format!(
            r#"[{{"name": "w", "exec": {{"path": "file://python:python", "args": "-c print(1)"}},
                "devices": [{{"name": "python"}}, {{"name": "stdout", "path": "swift://{account}/c/planted.txt"}}]}}]"#
        ),
    )
    .await;
    assert_eq!(r.status, 403, "{}: {:?}", r.text(), r.headers);
    assert_eq!(s.req("HEAD", "/c/planted.txt", &[], "").await.status, 404);

    // With the object server it ran beside stopped, the job runs beside
    // the next replica.
    let n = cluster
        .object_servers
        .iter()
        .position(|o| *o == preferred[0])
        .expect("an object server of the cluster") as u8
        + 1;
    cluster.object_server("swift-cluster-down.sh", n);
    let r = post_script(&s, "/c/hello.txt", UPPER).await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    assert_eq!(r.text(), "HELLO SWIFT text/x-hello blue\n");
    assert_eq!(r.header("x-zerocloud-placement"), "local");
    assert_eq!(beside[r.header("x-nexe-server")], preferred[1]);
    cluster.object_server("swift-cluster-up.sh", n);

    // Agents beside none of the replicas: the proxy streams the object
    // (read through the Swift proxy with the caller's token); the program
    // sees the same bytes and metadata.
    let elsewhere = [format!("{}=127.0.0.1:9", agents[0].server.addr)];
    let front2 = Server::swift_front_with(&cluster.proxy, &elsewhere);
    let s2 = Session::new(&front2, "test:tester", "testing").await;
    let r = post_script(&s2, "/c/hello.txt", UPPER).await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    assert_eq!(r.text(), "HELLO SWIFT text/x-hello blue\n");
    assert_eq!(r.header("x-zerocloud-placement"), "streamed");
    let r = post_zapp(&s2, zapp).await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    let lines: Vec<String> = r.text().lines().map(|l| l.trim().to_string()).collect();
    assert_eq!(lines, counts);
    assert_eq!(
        r.header("x-zerocloud-placement"),
        "streamed,streamed,streamed,none"
    );

    // One command on a machine with a Swift: `zerocloud up --swift-proxy`
    // puts the proxy in front of it with an agent of its own.
    let up_dir = tempfile::tempdir().expect("tempdir");
    let up = Server::start_at(
        &up_dir.path().join("data"),
        &["--swift-proxy", &cluster.proxy],
    );
    let s3 = Session::new(&up, "test:tester", "testing").await;
    let r = post_script(&s3, "/c/hello.txt", UPPER).await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    assert_eq!(r.text(), "HELLO SWIFT text/x-hello blue\n");
    assert_eq!(r.header("x-zerocloud-placement"), "streamed");
    // Plain requests still go to Swift: the object is Swift's.
    let r = s3.req("GET", "/c/hello.txt", &[], "").await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello swift\n"));
}
