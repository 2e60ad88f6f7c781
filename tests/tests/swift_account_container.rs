//! Accounts and containers: status codes of PUT/GET/HEAD/POST/DELETE, and the
//! object/byte/container counters after object PUTs, overwrites and DELETEs.

mod common;

use common::{assert_status, eventually, mk_container, mk_object, swob_body};
use tests::{Server, Session};

async fn session() -> (Server, Session) {
    let server = Server::start();
    let s = Session::new(&server, "test:tester", "testing").await;
    (server, s)
}

/// Waits until the account reports (containers, objects, bytes). Swift updates
/// account totals asynchronously, so this polls (for at most 10 s).
async fn account_counts(s: &Session, want: (u64, u64, u64)) {
    eventually(10, "account counters", || async {
        let r = s.req("HEAD", "", &[], "").await;
        if r.status != 204 {
            return Err(format!("HEAD account: {}", r.status));
        }
        let got = (
            r.header("x-account-container-count").parse::<u64>().ok(),
            r.header("x-account-object-count").parse::<u64>().ok(),
            r.header("x-account-bytes-used").parse::<u64>().ok(),
        );
        if got == (Some(want.0), Some(want.1), Some(want.2)) {
            Ok(())
        } else {
            Err(format!("got {got:?}, want {want:?}"))
        }
    })
    .await
}

#[track_caller]
fn container_counts(r: &tests::Resp, objects: u64, bytes: u64) {
    assert_eq!(r.header("x-container-object-count"), objects.to_string());
    assert_eq!(r.header("x-container-bytes-used"), bytes.to_string());
}

// ---- accounts ------------------------------------------------------------------------

#[tokio::test]
async fn account_head_is_204_with_zero_counters_for_a_new_account() {
    let (_srv, s) = session().await;
    let r = s.req("HEAD", "", &[], "").await;
    assert_status(&r, 204, "HEAD account");
    assert!(r.body.is_empty());
    assert_eq!(r.header("x-account-container-count"), "0");
    assert_eq!(r.header("x-account-object-count"), "0");
    assert_eq!(r.header("x-account-bytes-used"), "0");
    assert!(!r.header("x-timestamp").is_empty(), "X-Timestamp");
}

#[tokio::test]
async fn account_counters_follow_container_and_object_puts_and_deletes() {
    let (_srv, s) = session().await;
    mk_container(&s, "c1").await;
    mk_container(&s, "c2").await;
    account_counts(&s, (2, 0, 0)).await;
    mk_object(&s, "/c1/o1", b"abc", &[]).await;
    mk_object(&s, "/c1/o2", b"abcde", &[]).await;
    mk_object(&s, "/c2/o3", b"abcdefg", &[]).await;
    account_counts(&s, (2, 3, 15)).await;
    // An overwrite changes bytes, not the count.
    mk_object(&s, "/c1/o1", b"a", &[]).await;
    account_counts(&s, (2, 3, 13)).await;
    assert_status(&s.req("DELETE", "/c1/o2", &[], "").await, 204, "DELETE o2");
    account_counts(&s, (2, 2, 8)).await;
    assert_status(&s.req("DELETE", "/c2/o3", &[], "").await, 204, "DELETE o3");
    assert_status(&s.req("DELETE", "/c2", &[], "").await, 204, "DELETE c2");
    account_counts(&s, (1, 1, 1)).await;
    let r = s.req("GET", "", &[], "").await;
    assert_eq!(r.text(), "c1\n");
    assert_eq!(r.header("x-account-container-count"), "1");
}

#[tokio::test]
async fn account_post_is_204() {
    let (_srv, s) = session().await;
    let r = s
        .req("POST", "", &[("X-Account-Meta-Owner", "me")], "")
        .await;
    assert_status(&r, 204, "POST account");
    assert!(r.body.is_empty());
    let r = s.req("HEAD", "", &[], "").await;
    assert_eq!(r.header("x-account-meta-owner"), "me");
}

#[tokio::test]
async fn account_put_and_delete_are_405_without_account_management() {
    let (_srv, s) = session().await;
    for m in ["PUT", "DELETE"] {
        let r = s.req(m, "", &[], "").await;
        assert_status(&r, 405, &format!("{m} account"));
        assert!(!r.header("allow").is_empty(), "Allow header on 405");
    }
}

// ---- containers ----------------------------------------------------------------------

#[tokio::test]
async fn container_put_is_201_when_new_and_202_when_existing() {
    let (_srv, s) = session().await;
    let r = s.req("PUT", "/box", &[], "").await;
    assert_status(&r, 201, "first PUT");
    let r = s.req("PUT", "/box", &[], "").await;
    assert_status(&r, 202, "second PUT");
    let r = s.req("GET", "", &[], "").await;
    assert_eq!(r.text(), "box\n", "one container");
}

#[tokio::test]
async fn container_head_is_204_with_object_count_and_bytes_used() {
    let (_srv, s) = session().await;
    mk_container(&s, "box").await;
    let r = s.req("HEAD", "/box", &[], "").await;
    assert_status(&r, 204, "HEAD empty container");
    assert!(r.body.is_empty());
    container_counts(&r, 0, 0);
    assert!(!r.header("x-timestamp").is_empty(), "X-Timestamp");
    mk_object(&s, "/box/a", b"1234", &[]).await;
    mk_object(&s, "/box/b", b"123456", &[]).await;
    let r = s.req("HEAD", "/box", &[], "").await;
    assert_status(&r, 204, "HEAD container");
    container_counts(&r, 2, 10);
    let r = s.req("GET", "/box", &[], "").await;
    assert_status(&r, 200, "GET container");
    container_counts(&r, 2, 10);
}

#[tokio::test]
async fn container_counters_follow_overwrites_and_deletes() {
    let (_srv, s) = session().await;
    mk_container(&s, "box").await;
    mk_object(&s, "/box/a", b"1234", &[]).await;
    mk_object(&s, "/box/a", b"12", &[]).await;
    container_counts(&s.req("HEAD", "/box", &[], "").await, 1, 2);
    mk_object(&s, "/box/b", b"123", &[]).await;
    container_counts(&s.req("HEAD", "/box", &[], "").await, 2, 5);
    assert_status(&s.req("DELETE", "/box/a", &[], "").await, 204, "DELETE a");
    container_counts(&s.req("HEAD", "/box", &[], "").await, 1, 3);
    assert_status(&s.req("DELETE", "/box/b", &[], "").await, 204, "DELETE b");
    container_counts(&s.req("HEAD", "/box", &[], "").await, 0, 0);
}

#[tokio::test]
async fn container_post_is_204_and_404_when_missing() {
    let (_srv, s) = session().await;
    mk_container(&s, "box").await;
    let r = s
        .req("POST", "/box", &[("X-Container-Meta-Color", "red")], "")
        .await;
    assert_status(&r, 204, "POST container");
    assert!(r.body.is_empty());
    let r = s
        .req("POST", "/nobox", &[("X-Container-Meta-Color", "red")], "")
        .await;
    assert_status(&r, 404, "POST missing container");
    let r = s.req("HEAD", "/nobox", &[], "").await;
    assert_status(&r, 404, "POST did not create it");
}

#[tokio::test]
async fn container_delete_is_204_409_when_not_empty_and_404_when_missing() {
    let (_srv, s) = session().await;
    mk_container(&s, "box").await;
    mk_object(&s, "/box/o", b"x", &[]).await;
    let r = s.req("DELETE", "/box", &[], "").await;
    assert_status(&r, 409, "DELETE non-empty container");
    assert_eq!(r.text(), swob_body(409));
    assert_status(&s.req("HEAD", "/box", &[], "").await, 204, "still there");
    assert_status(
        &s.req("DELETE", "/box/o", &[], "").await,
        204,
        "DELETE object",
    );
    let r = s.req("DELETE", "/box", &[], "").await;
    assert_status(&r, 204, "DELETE empty container");
    assert!(r.body.is_empty());
    for m in ["HEAD", "GET"] {
        let r = s.req(m, "/box", &[], "").await;
        assert_status(&r, 404, &format!("{m} after DELETE"));
    }
    let r = s.req("DELETE", "/box", &[], "").await;
    assert_status(&r, 404, "DELETE missing container");
    let r = s.req("GET", "", &[], "").await;
    assert_status(&r, 204, "account listing is empty again");
}

#[tokio::test]
async fn deleted_container_can_be_recreated_empty() {
    let (_srv, s) = session().await;
    mk_container(&s, "box").await;
    assert_status(&s.req("DELETE", "/box", &[], "").await, 204, "DELETE");
    let r = s.req("PUT", "/box", &[], "").await;
    assert_status(&r, 201, "PUT after DELETE creates anew");
    let r = s.req("HEAD", "/box", &[], "").await;
    container_counts(&r, 0, 0);
}

#[tokio::test]
async fn get_and_head_of_missing_container_are_404() {
    let (_srv, s) = session().await;
    let r = s.req("GET", "/nothing", &[], "").await;
    assert_status(&r, 404, "GET missing container");
    assert_eq!(r.text(), swob_body(404));
    let r = s.req("HEAD", "/nothing", &[], "").await;
    assert_status(&r, 404, "HEAD missing container");
    let r = s.req("GET", "/nothing?format=json", &[], "").await;
    assert_status(&r, 404, "GET missing container as JSON");
}

#[tokio::test]
async fn container_name_longer_than_256_bytes_is_400() {
    let (_srv, s) = session().await;
    let ok = "c".repeat(256);
    let r = s.req("PUT", &format!("/{ok}"), &[], "").await;
    assert_status(&r, 201, "256-byte container name");
    let long = "c".repeat(257);
    let r = s.req("PUT", &format!("/{long}"), &[], "").await;
    assert_status(&r, 400, "257-byte container name");
    assert_eq!(r.text(), "Container name length of 257 longer than 256");
    let r = s.req("GET", "", &[], "").await;
    assert_eq!(r.text(), format!("{ok}\n"));
}
