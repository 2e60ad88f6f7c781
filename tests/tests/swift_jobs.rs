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

use common::{
    lend, mk_container, mk_object, post_zapp, relay_zapp, store_wordcount_inputs, wordcount_zapp,
    WORDCOUNT_MAP,
};
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
    // Nor can the other user write here: Swift refuses it when asked
    // before the job runs (a POST of an object that does not exist), and
    // nothing is stored.
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
    // The object changes while that server is down, so its replica there
    // is stale once it is back (no replicator runs here): placement takes
    // the newest replica, not the preferred one.
    let hello = |text: &'static str| {
        s.req(
            "PUT",
            "/c/hello.txt",
            &[
                ("content-type", "text/x-hello"),
                ("x-object-meta-color", "blue"),
            ],
            text,
        )
    };
    assert_eq!(hello("hello again\n").await.status, 201);
    cluster.object_server("swift-cluster-up.sh", n);
    let r = post_script(&s, "/c/hello.txt", UPPER).await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    assert_eq!(r.text(), "HELLO AGAIN text/x-hello blue\n");
    assert_eq!(r.header("x-zerocloud-placement"), "local");
    assert_ne!(beside[r.header("x-nexe-server")], preferred[0]);
    assert_eq!(hello("hello swift\n").await.status, 201);

    // A symlink's replica holds no bytes of its target: only the Swift
    // proxy follows it, so the session is streamed and reads the target.
    let r = s
        .req(
            "PUT",
            "/c/link",
            &[("x-symlink-target", "c/hello.txt"), ("content-length", "0")],
            "",
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = post_script(&s, "/c/link", UPPER).await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    assert!(r.text().starts_with("HELLO SWIFT"), "{}", r.text());
    assert_eq!(r.header("x-zerocloud-placement"), "streamed");

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

/// The setuid rule on Swift: the owner's `Zerovm-Suid` ACL is evaluated
/// by Swift's own auth, as the caller (here a user-specific ACL, which
/// only Swift can match to a token), and only what it grants is done as
/// the setuid user (`--swift-setuid-user`). Without one the rule is off;
/// with a wrong key, app requests fail saying so.
#[tokio::test]
async fn the_setuid_rule_asks_swift_and_lends_only_what_the_owner_granted() {
    let cluster = SwiftCluster::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let agents = cluster.start_agents(1, "[exec]\nworkers = 2\n", dir.path());
    let flags: Vec<String> = agents.iter().map(AgentBeside::flag).collect();
    let front =
        Server::swift_front_config(&cluster.proxy, &flags, &SwiftCluster::setuid_flags(), None);
    let owner = Session::new(&front, "test:tester", "testing").await;
    let account = owner.url.rsplit('/').next().unwrap_or_default().to_string();
    for c in ["app", "data", "priv"] {
        mk_container(&owner, c).await;
    }
    mk_object(&owner, "/data/in.txt", b"owner's data\n", &[]).await;
    mk_object(&owner, "/priv/p.txt", b"private\n", &[]).await;
    // The app reads `input`, writes what it read to `output`, and answers
    // with it.
    let zapp = |input: &str, output: &str| {
        relay_zapp(
            &format!("swift://{account}/{input}"),
            &format!("swift://{account}/{output}"),
        )
    };
    let tar = [("content-type", "application/x-tar")];
    let app = zapp("data/in.txt", "data/out.txt");
    mk_object(&owner, "/app/app.zapp", &app, &tar).await;
    let app_url = format!("swift://{account}/app/app.zapp");
    // `app` and `data` lend the app to test2:tester2 alone; `priv` lends
    // nothing. A second app, peek, reads `priv` and writes into its own
    // container, which lends it.
    mk_container(&owner, "peekc").await;
    let peek = zapp("priv/p.txt", "peekc/out.txt");
    mk_object(&owner, "/peekc/peek.zapp", &peek, &tar).await;
    let peek_url = format!("swift://{account}/peekc/peek.zapp");
    for (c, url) in [("app", &app_url), ("data", &app_url), ("peekc", &peek_url)] {
        lend(&owner, c, url, "test2:tester2").await;
    }
    let (root, _) = owner.url.split_once("/v1/").expect("storage URL");
    let api = |c: &str| format!("{root}/api/{account}/{c}/x");
    let tester2 = Session::new(&front, "test2:tester2", "testing2").await;
    let as_user = |s: &Session, url: String| {
        let (http, token) = (s.http.clone(), s.token.clone());
        async move {
            http.req(Method::GET, &url, &[("x-auth-token", token.as_str())], "")
                .await
        }
    };

    // The user the owner named runs the app with the owner's rights: it
    // reads `data` and writes into it, which tester2 itself may not.
    let r = as_user(&tester2, api("data")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "owner's data\n"),
        "{:?}",
        r.headers
    );
    let r = owner.req("GET", "/data/out.txt", &[], "").await;
    assert_eq!(r.text(), "seen: owner's data\n");
    let r = as_user(&tester2, format!("{root}/v1/{account}/data/in.txt")).await;
    assert_eq!(r.status, 403, "tester2 reads the owner's data on its own");
    // Nobody else: not anonymous callers (401), not another user of the
    // owner's own account without rights of its own (403).
    let r = Http::new().req(Method::GET, &api("data"), &[], "").await;
    assert_eq!(r.status, 401, "{}", r.text());
    let tester3 = Session::new(&front, "test:tester3", "testing3").await;
    let r = as_user(&tester3, api("data")).await;
    assert_eq!(r.status, 403, "{}", r.text());
    // An app reaching a container that lends nothing (`priv`) is refused,
    // before anything runs; once `priv` lends it too, it runs.
    let r = as_user(&tester2, api("peekc")).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = owner.req("HEAD", "/peekc/out.txt", &[], "").await;
    assert_eq!(r.status, 404);
    lend(&owner, "priv", &peek_url, "test2:tester2").await;
    let r = as_user(&tester2, api("peekc")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "private\n"));

    // A link in a lending container is not followed with the lent
    // rights: Swift would follow a symlink (here into another account) or
    // a large object's manifest (here into `priv`) as the setuid user.
    let t2 = tester2
        .url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    mk_container(&tester2, "vault").await;
    mk_object(&tester2, "/vault/secret.txt", b"tester2's secret\n", &[]).await;
    mk_container(&owner, "pub").await;
    let linker = zapp("pub/link", "pub/out.txt");
    mk_object(&owner, "/pub/linker.zapp", &linker, &tar).await;
    let linker_url = format!("swift://{account}/pub/linker.zapp");
    lend(&owner, "pub", &linker_url, ".r:*").await;
    let symlink = [
        ("x-symlink-target", "vault/secret.txt"),
        ("x-symlink-target-account", t2.as_str()),
    ];
    let manifest = [("x-object-manifest", "priv/p")];
    for link in [&symlink[..], &manifest[..]] {
        mk_object(&owner, "/pub/link", b"", link).await;
        let r = Http::new().req(Method::GET, &api("pub"), &[], "").await;
        assert_eq!(r.status, 403, "{link:?}: {}", r.text());
        assert!(!r.text().contains("secret") && !r.text().contains("private"));
    }
    assert_eq!(owner.req("HEAD", "/pub/out.txt", &[], "").await.status, 404);
    // A plain object there is read.
    mk_object(&owner, "/pub/link", b"public\n", &[]).await;
    let r = Http::new().req(Method::GET, &api("pub"), &[], "").await;
    assert_eq!((r.status, r.text().as_str()), (200, "public\n"));

    // Swift evaluated the ACL: the setuid user's probe container carries it.
    let admin = Session::new(&front, "admin:admin", "admin").await;
    let r = admin.req("GET", "", &[], "").await;
    let probes: Vec<String> = r
        .text()
        .lines()
        .filter(|l| l.starts_with("zerocloud-setuid-"))
        .map(str::to_string)
        .collect();
    let mut acls = Vec::new();
    for p in &probes {
        let r = admin.req("HEAD", &format!("/{p}"), &[], "").await;
        acls.push(r.header("x-container-read").to_string());
    }
    acls.sort();
    assert_eq!(acls, [".r:*", "test2:tester2"]);

    // Without a setuid user the rule is off: the caller's rights only.
    let off = Server::swift_front_with(&cluster.proxy, &flags);
    let t2_off = Session::new(&off, "test2:tester2", "testing2").await;
    let (off_root, _) = t2_off.url.split_once("/v1/").expect("storage URL");
    let r = as_user(&t2_off, format!("{off_root}/api/{account}/data/x")).await;
    assert_eq!(r.status, 403, "{}", r.text());

    // A setuid user Swift refuses lends nothing (its log says why; the
    // caller learns nothing of it), and the owner's own /api/ still runs.
    let wrong = [
        "--swift-setuid-user",
        "admin:admin",
        "--swift-setuid-key",
        "wrong",
    ]
    .map(String::from);
    let bad = Server::swift_front_config(&cluster.proxy, &flags, &wrong, None);
    let t2_bad = Session::new(&bad, "test2:tester2", "testing2").await;
    let (bad_root, _) = t2_bad.url.split_once("/v1/").expect("storage URL");
    let r = as_user(&t2_bad, format!("{bad_root}/api/{account}/data/x")).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(!r.text().contains("admin"), "{}", r.text());
    let owner_bad = Session::new(&bad, "test:tester", "testing").await;
    let r = as_user(&owner_bad, format!("{bad_root}/api/{account}/data/x")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "owner's data\n"));
}
