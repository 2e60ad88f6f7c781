//! Chained jobs (spec/zerocloud.md §3.7) and deferred jobs (§4.5) on three
//! object servers, with the real sandbox and Python. Needs
//! `$ZEROCLOUD_IMAGES` with the Python image (scripts/test.sh).

mod common;

use common::{eventually, mk_container, post_zapp, tar_of};
use tests::{Cluster, Resp, Session};

/// Step `n` of `limit`: below the limit it answers with the next step's
/// job (`X-Zerovm-Execute`, `application/json`), at the limit with text.
/// A third argument is a `swift://` object the next job reads.
const STEP: &str = r#"import json, sys
n, limit = int(sys.argv[1]), int(sys.argv[2])
extra = {"name": "input", "path": sys.argv[3]} if len(sys.argv) > 3 else None
if n < limit:
    devices = [{"name": "python"}, {"name": "image", "path": "swift://~/apps/chain.tar"},
               {"name": "stdout", "content_type": "message/cgi"}]
    if extra:
        devices.append(extra)
    job = [{"name": "step%d" % (n + 1),
            "exec": {"path": "file://python:python", "args": "step.py %d %d" % (n + 1, limit)},
            "devices": devices}]
    sys.stdout.write("X-Zerovm-Execute: 1.0\r\nContent-Type: application/json\r\n\r\n" + json.dumps(job))
else:
    sys.stdout.write("Content-Type: text/plain\r\n\r\ndone after %d jobs\n" % n)
"#;

async fn install(s: &Session) {
    mk_container(s, "apps").await;
    let tar = tar_of(&[("step.py", STEP.as_bytes())]);
    let r = s
        .req(
            "PUT",
            "/apps/chain.tar",
            &[("content-type", "application/x-tar")],
            tar,
        )
        .await;
    assert_eq!(r.status, 201);
}

/// The first job of a chain of `limit` jobs.
fn first_job(limit: u32) -> String {
    serde_json::json!([{
        "name": "step1",
        "exec": {"path": "file://python:python", "args": format!("step.py 1 {limit}")},
        "devices": [{"name": "python"}, {"name": "image", "path": "swift://~/apps/chain.tar"},
                    {"name": "stdout", "content_type": "message/cgi"}],
    }])
    .to_string()
}

async fn post(s: &Session, path: &str, job: String, extra: &[(&str, &str)]) -> Resp {
    let mut h = vec![
        ("x-zerovm-execute", "1.0"),
        ("content-type", "application/json"),
    ];
    h.extend_from_slice(extra);
    s.req("POST", path, &h, job).await
}

#[tokio::test]
async fn a_chain_of_three_jobs_answers_with_the_last() {
    let cluster = Cluster::start(3);
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    install(&s).await;
    let r = post(&s, "", first_job(3), &[]).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "done after 3 jobs\n"),
        "{:?}",
        r.headers
    );
    assert_eq!(r.header("x-nexe-system"), "step3");
    let total: f64 = r
        .header("x-chain-total-time")
        .parse()
        .expect("X-Chain-Total-Time");
    assert!(total > 0.0);
}

#[tokio::test]
async fn chains_end_at_their_time_and_depth_limits() {
    let cluster = Cluster::start_with(
        3,
        "",
        "[zerocloud]\nchain_timeout = 1\nchain_depth = 10000\n",
    );
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    install(&s).await;
    // A hang would fail the request (the test client gives up after 60 s).
    let r = post(&s, "", first_job(100_000), &[]).await;
    assert_eq!(r.status, 408, "{}", r.text());
    assert!(
        r.text()
            .starts_with("Job chain exceeded chain_timeout of 1 s after "),
        "{}",
        r.text()
    );

    let cluster = Cluster::start(3);
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    install(&s).await;
    let r = post(&s, "", first_job(100), &[]).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (508, "Job chain longer than chain_depth (16)")
    );
}

#[tokio::test]
async fn a_chained_job_is_authorized_as_its_caller() {
    let cluster = Cluster::start(3);
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    install(&s).await;
    // Another account's private object.
    let other = Session::new(&cluster.proxy, "test2:tester2", "testing2").await;
    mk_container(&other, "private").await;
    let r = other.req("PUT", "/private/x.txt", &[], "theirs\n").await;
    assert_eq!(r.status, 201);
    let account2 = other.url.rsplit('/').next().expect("account");
    // The second job would read it.
    let job = serde_json::json!([{
        "name": "step1",
        "exec": {"path": "file://python:python",
                 "args": format!("step.py 1 2 swift://{account2}/private/x.txt")},
        "devices": [{"name": "python"}, {"name": "image", "path": "swift://~/apps/chain.tar"},
                    {"name": "stdout", "content_type": "message/cgi"}],
    }])
    .to_string();
    let r = post(&s, "", job, &[]).await;
    assert_eq!(r.status, 403, "{}: {:?}", r.text(), r.headers);
    assert_ne!(r.header("x-nexe-system"), "step2");
}

#[tokio::test]
async fn a_deferred_job_answers_at_once_and_its_result_is_polled() {
    let cluster = Cluster::start(3);
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    install(&s).await;
    mk_container(&s, "results").await;
    let account = s.url.rsplit('/').next().expect("account").to_string();
    let r = post(
        &s,
        "/results/out.txt",
        first_job(2),
        &[("x-zerovm-deferred", "always")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), format!("swift://{account}/results/out.txt"));
    // Poll for the headers object, then read the result.
    let headers = eventually(60, "the deferred result's headers", || {
        let s = s.clone();
        async move {
            let h = s.req("GET", "/results/out.txt.headers", &[], "").await;
            match h.status {
                200 => Ok(h.json()),
                st => Err(format!("status {st}")),
            }
        }
    })
    .await;
    assert_eq!(headers["status"], 200, "{headers}");
    assert_eq!(headers["x-nexe-system"], "step2", "{headers}");
    let out = s.req("GET", "/results/out.txt", &[], "").await;
    assert_eq!(out.text(), "done after 2 jobs\n");
    assert_eq!(out.header("content-type"), "text/plain");

    // On the account: a job-<id> object in .zvm.
    let r = post(&s, "", first_job(1), &[("x-zerovm-deferred", "always")]).await;
    assert_eq!(r.status, 200);
    let place = r.text();
    let prefix = format!("swift://{account}/.zvm/job-");
    assert!(place.starts_with(&prefix), "{place}");
    let name = place
        .trim_start_matches(&format!("swift://{account}/"))
        .to_string();
    let out = eventually(60, "the deferred result", || {
        let (s, name) = (s.clone(), name.clone());
        async move {
            let r = s.req("GET", &format!("/{name}"), &[], "").await;
            match r.status {
                200 => Ok(r.text()),
                st => Err(format!("status {st}")),
            }
        }
    })
    .await;
    assert_eq!(out, "done after 1 jobs\n");
    // `auto`: a quick job answers itself.
    let r = post(&s, "", first_job(1), &[("x-zerovm-deferred", "auto")]).await;
    assert_eq!((r.status, r.text().as_str()), (200, "done after 1 jobs\n"));
}

#[tokio::test]
async fn a_child_job_larger_than_maxconfig_ends_the_chain_with_413() {
    let cluster = Cluster::start(3);
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    let map = r#"[{"name":"big","exec":{"path":"file://python:python","args":"big.py"},
        "devices":[{"name":"python"},{"name":"stdout","content_type":"message/cgi"}]}]"#;
    let big = "import sys\nsys.stdout.write('X-Zerovm-Execute: 1.0\\r\\nContent-Type: application/json\\r\\n\\r\\n' + ' ' * 70000 + '[]')\n";
    let zapp = tar_of(&[
        ("boot/system.map", map.as_bytes()),
        ("big.py", big.as_bytes()),
    ]);
    let r = post_zapp(&s, zapp).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (413, "Chained job larger than maxconfig (65536 bytes)")
    );
}

#[tokio::test]
async fn a_deferred_app_request_stores_its_result_in_zvm_not_over_the_app() {
    let cluster = Cluster::start(3);
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    let account = s.url.rsplit('/').next().expect("account").to_string();
    mk_container(&s, "apps").await;
    let map = r#"[{"name":"hi","exec":{"path":"file://python:python","args":"hi.py"},
        "devices":[{"name":"python"},{"name":"stdout"}]}]"#;
    let zapp = tar_of(&[
        ("boot/system.map", map.as_bytes()),
        ("hi.py", b"print('hi')\n"),
    ]);
    let r = s
        .req(
            "PUT",
            "/apps/hi.zapp",
            &[("content-type", "application/x-tar")],
            zapp.clone(),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = s
        .req(
            "GET",
            "/apps/hi.zapp",
            &[
                ("x-zerovm-execute", "open/1.0"),
                ("x-zerovm-deferred", "always"),
            ],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let place = r.text();
    assert!(
        place.starts_with(&format!("swift://{account}/.zvm/job-")),
        "{place}"
    );
    let name = place
        .trim_start_matches(&format!("swift://{account}/"))
        .to_string();
    let out = eventually(60, "the deferred result", || {
        let (s, name) = (s.clone(), name.clone());
        async move {
            let r = s.req("GET", &format!("/{name}"), &[], "").await;
            if r.status == 200 {
                Ok(r.text())
            } else {
                Err(format!("status {}", r.status))
            }
        }
    })
    .await;
    assert_eq!(out, "hi\n");
    // The app is still the app.
    let r = s.req("GET", "/apps/hi.zapp", &[], "").await;
    assert_eq!(r.body.as_ref(), zapp.as_slice());
}
