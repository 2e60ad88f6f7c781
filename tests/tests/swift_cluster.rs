//! A proxy in front of three object servers: objects written through the proxy
//! list, count and read back, and are spread over the nodes.

mod common;

use std::path::Path;

use common::{assert_status, eventually, mk_container, mk_object};
use tests::{md5_hex, Cluster, Session};

fn count_files(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                count_files(&p)
            } else {
                1
            }
        })
        .sum()
}

fn body_of(c: usize, i: usize) -> Vec<u8> {
    format!("object {i} of container {c}: {}", "z".repeat(i)).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_objects_through_the_proxy_list_count_read_back_and_spread_over_nodes() {
    let cluster = Cluster::start(3);
    assert_eq!(cluster.nodes.len(), 3);
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    let containers = ["alpha", "beta", "gamma"];
    for c in containers {
        mk_container(&s, c).await;
    }
    let mut total_bytes = 0usize;
    for (ci, c) in containers.iter().enumerate() {
        for i in 0..10 {
            let body = body_of(ci, i);
            total_bytes += body.len();
            mk_object(&s, &format!("/{c}/obj-{i:02}"), &body, &[]).await;
        }
    }

    // Listings through the proxy.
    let r = s.req("GET", "", &[], "").await;
    assert_status(&r, 200, "account listing");
    assert_eq!(r.text(), "alpha\nbeta\ngamma\n");
    for (ci, c) in containers.iter().enumerate() {
        let r = s.req("GET", &format!("/{c}?format=json"), &[], "").await;
        assert_status(&r, 200, &format!("listing of {c}"));
        let v = r.json();
        let arr = v.as_array().expect("array");
        assert_eq!(arr.len(), 10, "{c}: {v}");
        for (i, e) in arr.iter().enumerate() {
            let body = body_of(ci, i);
            assert_eq!(e["name"], format!("obj-{i:02}"));
            assert_eq!(e["bytes"], body.len());
            assert_eq!(e["hash"], md5_hex(&body));
        }
        let h = s.req("HEAD", &format!("/{c}"), &[], "").await;
        assert_eq!(h.header("x-container-object-count"), "10", "{c}");
        let bytes: usize = (0..10).map(|i| body_of(ci, i).len()).sum();
        assert_eq!(h.header("x-container-bytes-used"), bytes.to_string(), "{c}");
    }

    // Account counters (updated asynchronously in Swift: poll).
    eventually(10, "account counters", || async {
        let r = s.req("HEAD", "", &[], "").await;
        let got = (
            r.header("x-account-container-count").to_string(),
            r.header("x-account-object-count").to_string(),
            r.header("x-account-bytes-used").to_string(),
        );
        let want = ("3".to_string(), "30".to_string(), total_bytes.to_string());
        if got == want {
            Ok(())
        } else {
            Err(format!("got {got:?}, want {want:?}"))
        }
    })
    .await;

    // Every object reads back intact.
    for (ci, c) in containers.iter().enumerate() {
        for i in 0..10 {
            let body = body_of(ci, i);
            let r = s.req("GET", &format!("/{c}/obj-{i:02}"), &[], "").await;
            assert_status(&r, 200, &format!("GET /{c}/obj-{i:02}"));
            assert_eq!(&r.body[..], &body[..], "/{c}/obj-{i:02}");
            assert_eq!(r.header("etag"), md5_hex(&body));
        }
    }

    // The ring spread the objects over more than one node.
    let per_node: Vec<usize> = cluster
        .nodes
        .iter()
        .map(|n| count_files(&n.data_dir.join("objects")))
        .collect();
    assert!(
        per_node.iter().sum::<usize>() >= 30,
        "a file per object at least: {per_node:?}"
    );
    let used = per_node.iter().filter(|&&n| n > 0).count();
    assert!(used > 1, "objects on more than one node: {per_node:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deletes_through_the_proxy_update_listings_and_counters() {
    let cluster = Cluster::start(3);
    let s = Session::new(&cluster.proxy, "test:tester", "testing").await;
    mk_container(&s, "c").await;
    for i in 0..12 {
        mk_object(&s, &format!("/c/o{i:02}"), b"12345", &[]).await;
    }
    for i in (0..12).step_by(2) {
        let r = s.req("DELETE", &format!("/c/o{i:02}"), &[], "").await;
        assert_status(&r, 204, &format!("DELETE o{i:02}"));
    }
    let r = s.req("GET", "/c", &[], "").await;
    assert_eq!(r.text(), "o01\no03\no05\no07\no09\no11\n");
    let h = s.req("HEAD", "/c", &[], "").await;
    assert_eq!(h.header("x-container-object-count"), "6");
    assert_eq!(h.header("x-container-bytes-used"), "30");
    for i in 0..12 {
        let r = s.req("GET", &format!("/c/o{i:02}"), &[], "").await;
        assert_status(
            &r,
            if i % 2 == 0 { 404 } else { 200 },
            &format!("GET o{i:02}"),
        );
    }
}
