//! Jobs on a cluster of three object servers behind a proxy, with the real
//! sandbox and Python: the seed's examples, a wildcard group whose nodes
//! each run on the server holding their object, ACL refusals for every
//! kind of device, and a storage node killed in the middle of a job.
//! Needs `$ZEROCLOUD_IMAGES` with the Python image (scripts/test.sh).

mod common;

use common::{mk_container, tar_of};
use tests::{Cluster, Session};

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

fn account(s: &Session) -> String {
    s.url.rsplit('/').next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_wildcard_group_runs_each_node_beside_its_object() {
    let cluster = Cluster::start(3);
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    let acct = account(&s);
    mk_container(&s, "data").await;
    mk_container(&s, "apps").await;
    // Nine objects, three on each server: names are tried in turn and kept
    // while their server has fewer than three.
    let mut per_server = std::collections::BTreeMap::<String, usize>::new();
    let mut kept = Vec::new();
    let mut n = 0;
    while kept.len() < 9 {
        let name = format!("part{n:03}.txt");
        n += 1;
        let i = kept.len();
        s.req(
            "PUT",
            &format!("/data/{name}"),
            &[],
            format!("{i} ").repeat(i + 1),
        )
        .await;
        let holder = cluster
            .holder_of(&acct, "data", &name)
            .expect("stored")
            .addr
            .clone();
        let count = per_server.entry(holder).or_default();
        if *count < 3 {
            *count += 1;
            kept.push(name);
        } else {
            s.req("DELETE", &format!("/data/{name}"), &[], "").await;
        }
    }
    // Something not matching the wildcard.
    s.req("PUT", "/data/other.csv", &[], "x").await;
    let count = b"import os\nd = open('/dev/input').read()\nprint(os.environ['LOCAL_PATH_INFO'], len(d.split()))\n";
    s.req(
        "PUT",
        "/apps/count.tar",
        &[],
        tar_of(&[("count.py", count)]),
    )
    .await;
    let job = r#"[{"name":"count","exec":{"path":"file://python:python","args":"count.py"},
        "devices":[{"name":"input","path":"swift://~/data/part*.txt"},{"name":"stdout"},
                   {"name":"image","path":"swift://~/apps/count.tar"}]}]"#;
    let r = post_job(&s, "", "application/json", job).await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    let names: Vec<&str> = r.header("x-nexe-system").split(',').collect();
    assert_eq!(
        names,
        (1..=9).map(|i| format!("count-{i}")).collect::<Vec<_>>()
    );
    let lines: Vec<String> = r.text().lines().map(str::to_string).collect();
    let want: Vec<String> = kept
        .iter()
        .enumerate()
        .map(|(i, name)| format!("/{acct}/data/{name} {}", i + 1))
        .collect();
    assert_eq!(lines, want);
    // Each node ran on the server whose disk holds its object.
    let servers: Vec<&str> = r.header("x-nexe-server").split(',').collect();
    assert_eq!(servers.len(), 9);
    let mut used = std::collections::BTreeSet::new();
    for (i, server) in servers.iter().enumerate() {
        let holder = cluster
            .holder_of(&acct, "data", &kept[i])
            .expect("some node holds it");
        assert_eq!(*server, holder.addr, "count-{}", i + 1);
        used.insert(server.to_string());
    }
    assert_eq!(used.len(), 3, "the 9 objects spread over the 3 servers");
}

#[tokio::test]
async fn the_seed_examples_run_on_a_cluster() {
    let cluster = Cluster::start(3);
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    let hello = "#!file://python2.7:python\nprint(\"Hello from ZeroVM!\")\n";
    let r = post_job(&s, "", "application/python", hello).await;
    assert_eq!((r.status, r.text().as_str()), (200, "Hello from ZeroVM!\n"));

    mk_container(&s, "example").await;
    let main = b"import csv\nwith open('/dev/input') as fp:\n    reader = csv.reader(fp)\n    for id, name, email, balance in reader:\n        print('%(name)s: %(balance)s' % dict(name=name, balance=balance))\n";
    s.req(
        "PUT",
        "/example/example.tar",
        &[],
        tar_of(&[("main.py", main)]),
    )
    .await;
    s.req(
        "PUT",
        "/example/data1.csv",
        &[],
        "id,name,email,balance\n1,Alice,alice@example.com,1000\n2,Bob,bob@example.com,-500\n",
    )
    .await;
    let job = r#"[{"name": "example",
        "exec": {"path": "file://python2.7:python", "args": "main.py"},
        "devices": [{"name": "python2.7"}, {"name": "stdout"},
                    {"name": "input", "path": "swift://~/example/data1.csv"},
                    {"name": "image", "path": "swift://~/example/example.tar"}]}]"#;
    let r = post_job(&s, "", "application/json", job).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "name: balance\nAlice: 1000\nBob: -500\n")
    );
    let acct = account(&s);
    let holder = cluster.holder_of(&acct, "example", "data1.csv").unwrap();
    assert_eq!(r.header("x-nexe-server"), holder.addr);
}

#[tokio::test]
async fn jobs_reach_only_what_their_caller_may() {
    let cluster = Cluster::start(3);
    let owner = Session::new(&cluster.proxy, "test:tester", "testing").await;
    let other = Session::new(&cluster.proxy, "test2:tester2", "testing2").await;
    let acct = account(&owner);
    mk_container(&owner, "private").await;
    mk_container(&owner, "apps").await;
    owner.req("PUT", "/private/secret.txt", &[], "secret").await;
    let cat = b"import sys\nsys.stdout.write(open('/dev/input').read())\n";
    owner
        .req("PUT", "/apps/cat.tar", &[], tar_of(&[("cat.py", cat)]))
        .await;
    let wasm = wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start")))"#)
        .unwrap();
    owner.req("PUT", "/apps/nop.wasm", &[], wasm).await;
    owner
        .req(
            "PUT",
            "/apps/job.json",
            &[("content-type", "application/json")],
            r#"[{"name":"x","exec":{"path":"file://python:python","args":"-c print(1)"},"devices":[{"name":"stdout"}]}]"#,
        )
        .await;
    mk_container(&other, "mine").await;
    other
        .req("PUT", "/mine/cat.tar", &[], tar_of(&[("cat.py", cat)]))
        .await;

    let read = |path: &str| {
        format!(
            r#"[{{"name":"x","exec":{{"path":"file://python:python","args":"cat.py"}},
                "devices":[{{"name":"input","path":"{path}"}},{{"name":"stdout"}},
                           {{"name":"image","path":"swift://~/mine/cat.tar"}}]}}]"#
        )
    };
    // Every kind of device, and the other ways in: refused with 403.
    let cases = vec![
        (
            "read-attached input",
            read(&format!("swift://{acct}/private/secret.txt")),
        ),
        (
            "wildcard input",
            read(&format!("swift://{acct}/private/*.txt")),
        ),
        (
            "container wildcard",
            read(&format!("swift://{acct}/priv*/*.txt")),
        ),
        (
            "remote input",
            format!(
                r#"[{{"name":"x","exec":{{"path":"file://python:python","args":"cat.py"}},
                    "devices":[{{"name":"stdin","path":"swift://~/mine/cat.tar"}},
                               {{"name":"input","path":"swift://{acct}/private/secret.txt"}},
                               {{"name":"stdout"}},{{"name":"image","path":"swift://~/mine/cat.tar"}}]}}]"#
            ),
        ),
        (
            "image",
            format!(
                r#"[{{"name":"x","exec":{{"path":"file://python:python","args":"cat.py"}},
                    "devices":[{{"name":"stdout"}},{{"name":"image","path":"swift://{acct}/apps/cat.tar"}}]}}]"#
            ),
        ),
        (
            "executable",
            format!(
                r#"[{{"name":"x","exec":{{"path":"swift://{acct}/apps/nop.wasm"}},"devices":[{{"name":"stdout"}}]}}]"#
            ),
        ),
        (
            "attached output",
            format!(
                r#"[{{"name":"x","exec":{{"path":"file://python:python","args":"-c print(1)"}},
                    "devices":[{{"name":"stdout","path":"swift://{acct}/private/out.txt"}}]}}]"#
            ),
        ),
        (
            "stored output",
            format!(
                r#"[{{"name":"x","exec":{{"path":"file://python:python","args":"-c print(1)"}},
                    "devices":[{{"name":"stdin","path":"swift://~/mine/cat.tar"}},
                               {{"name":"output","path":"swift://{acct}/private/out.txt"}}]}}]"#
            ),
        ),
    ];
    for (what, job) in &cases {
        let r = post_job(&other, "", "application/json", job.clone()).await;
        assert_eq!(r.status, 403, "{what}: {}", r.text());
    }
    // The source object, and jobs POSTed to another's account.
    let r = other
        .req(
            "POST",
            "",
            &[
                ("x-zerovm-execute", "1.0"),
                ("content-type", "text/plain"),
                ("x-zerovm-source", &format!("swift://{acct}/apps/job.json")),
            ],
            "",
        )
        .await;
    assert_eq!(r.status, 403, "source: {}", r.text());
    let r = other
        .http
        .req(
            hyper::Method::POST,
            &owner.url,
            &[
                ("x-auth-token", &other.token),
                ("x-zerovm-execute", "1.0"),
                ("content-type", "application/json"),
            ],
            r#"[{"name":"x","exec":{"path":"file://python:python","args":"-c print(1)"},"devices":[{"name":"stdout"}]}]"#,
        )
        .await;
    assert_eq!(r.status, 403, "submission");
    // Anonymous: 401.
    let r = other
        .http
        .req(
            hyper::Method::POST,
            &owner.url,
            &[("x-zerovm-execute", "1.0"), ("content-type", "application/json")],
            r#"[{"name":"x","exec":{"path":"file://python:python","args":"-c print(1)"},"devices":[{"name":"stdout"}]}]"#,
        )
        .await;
    assert_eq!(r.status, 401, "anonymous");
    // Nothing was written.
    let r = owner.req("GET", "/private?format=json", &[], "").await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);

    // An ACL lets them in, through the same code as the Swift API.
    owner
        .req(
            "POST",
            "/private",
            &[("x-container-read", "test2:tester2")],
            "",
        )
        .await;
    let r = post_job(
        &other,
        "",
        "application/json",
        read(&format!("swift://{acct}/private/secret.txt")),
    )
    .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "secret"),
        "{:?}",
        r.headers
    );
    let r = post_job(
        &other,
        "",
        "application/json",
        read(&format!("swift://{acct}/private/*.txt")),
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (200, "secret"));
    // Still no writes without the write ACL.
    let r = post_job(&other, "", "application/json", cases[6].1.clone()).await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn a_storage_node_killed_mid_job_fails_the_job_clearly() {
    let mut cluster = Cluster::start_with(3, "", "[zerocloud]\ntimeout = 60\n");
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    let acct = account(&s);
    mk_container(&s, "data").await;
    s.req("PUT", "/data/in.txt", &[], "x").await;
    let holder = cluster
        .nodes
        .iter()
        .position(|n| {
            Some(n.addr.as_str())
                == cluster
                    .holder_of(&acct, "data", "in.txt")
                    .map(|h| h.addr.as_str())
        })
        .unwrap();
    let addr = cluster.nodes[holder].addr.clone();
    let job = r#"[{"name":"slow","exec":{"path":"file://python:python","args":"-c import\\x20time;time.sleep(50)"},
        "devices":[{"name":"stdin","path":"swift://~/data/in.txt"},{"name":"stdout"}]}]"#;
    let post = post_job(&s, "", "application/json", job);
    let kill = async {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        cluster.nodes[holder].kill();
    };
    let (r, ()) = tokio::join!(post, kill);
    assert_eq!(r.status, 503, "{}: {:?}", r.text(), r.headers);
    assert!(r.text().contains(&addr), "{}", r.text());
    assert!(r.header("x-nexe-error").contains(&addr), "{:?}", r.headers);
}

#[tokio::test]
async fn a_container_of_1000_objects_is_queried_as_sqlite_on_the_server_holding_it() {
    let cluster = Cluster::start(3);
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
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
    let zapp = tar_of(&[
        ("boot/system.map", map.as_bytes()),
        ("query.py", query.as_bytes()),
    ]);
    let r = post_job(&s, "", "application/x-tar", zapp).await;
    assert_eq!(r.status, 200, "{}: {:?}", r.text(), r.headers);
    let listing = s.req("GET", "/many?format=json&limit=10000", &[], "").await;
    let want: Vec<String> = listing
        .json()
        .as_array()
        .expect("a JSON listing")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .filter(|n| n.ends_with(".csv"))
        .map(str::to_string)
        .collect();
    let got: Vec<String> = r.text().lines().map(str::to_string).collect();
    assert_eq!(got.len(), 331);
    assert_eq!(got, want);
    // On Swift, a container input is its listing, streamed to any agent
    // (docs/swift-backend.md).
    if tests::on_swift() {
        assert_eq!(r.header("x-zerocloud-placement"), "streamed");
        return;
    }
    // The node ran where the container's database is.
    use md5::{Digest, Md5};
    let h = hex::encode(Md5::digest(format!("/{}/many", account(&s)).as_bytes()));
    let holder = cluster
        .nodes
        .iter()
        .find(|n| {
            n.data_dir
                .join("db")
                .join("containers")
                .join(&h[..3])
                .join(format!("{h}.db"))
                .is_file()
        })
        .expect("the container's server");
    assert_eq!(r.header("x-nexe-server"), holder.addr);
}
