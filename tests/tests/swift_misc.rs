//! Cluster-wide behaviour: GET /info, trans-ids on every response, and 405 for
//! methods the API does not have.

mod common;

use common::{assert_status, is_trans_id, mk_container, mk_object};
use hyper::Method;
use tests::{Http, Resp, Server, Session};

#[tokio::test]
async fn info_publishes_swift_constraints() {
    let server = Server::start();
    let r = Http::new()
        .req(Method::GET, &format!("{}/info", server.url), &[], "")
        .await;
    assert_status(&r, 200, "GET /info");
    assert!(
        r.header("content-type").starts_with("application/json"),
        "Content-Type {:?}",
        r.header("content-type")
    );
    let v = r.json();
    let swift = v["swift"].as_object().expect("swift section");
    for (key, want) in [
        ("max_file_size", 5_368_709_122u64),
        ("max_meta_name_length", 128),
        ("max_meta_value_length", 256),
        ("max_meta_count", 90),
        ("max_meta_overall_size", 4096),
        ("max_object_name_length", 1024),
        ("container_listing_limit", 10_000),
        ("account_listing_limit", 10_000),
        ("max_container_name_length", 256),
        ("max_account_name_length", 256),
        ("max_header_size", 8192),
    ] {
        assert_eq!(
            swift.get(key).and_then(|x| x.as_u64()),
            Some(want),
            "swift.{key}"
        );
    }
    assert!(
        swift.get("version").is_some_and(|x| x.is_string()),
        "swift.version"
    );
    assert!(v["tempauth"].is_object(), "tempauth section");
}

#[track_caller]
fn check_trans_id(r: &Resp, what: &str) -> String {
    let tx = r.header("x-trans-id");
    assert!(is_trans_id(tx), "{what}: X-Trans-Id {tx:?}");
    assert_eq!(
        r.header("x-openstack-request-id"),
        tx,
        "{what}: X-Openstack-Request-Id"
    );
    tx.to_string()
}

#[tokio::test]
async fn every_response_carries_equal_trans_id_and_request_id() {
    let server = Server::start();
    let http = Http::new();
    let s = Session::new(&server, "test:tester", "testing").await;
    mk_container(&s, "c").await;
    mk_object(&s, "/c/o", b"x", &[]).await;
    let mut seen = vec![];
    let auth_ok = http
        .req(
            Method::GET,
            &server.auth_url(),
            &[("X-Auth-User", "test:tester"), ("X-Auth-Key", "testing")],
            "",
        )
        .await;
    seen.push(check_trans_id(&auth_ok, "auth 200"));
    let auth_bad = http
        .req(
            Method::GET,
            &server.auth_url(),
            &[("X-Auth-User", "x:y")],
            "",
        )
        .await;
    seen.push(check_trans_id(&auth_bad, "auth 401"));
    let info = http
        .req(Method::GET, &format!("{}/info", server.url), &[], "")
        .await;
    seen.push(check_trans_id(&info, "/info"));
    for (m, path, status) in [
        ("HEAD", "", 204),
        ("GET", "", 200),
        ("PUT", "/c2", 201),
        ("GET", "/c", 200),
        ("HEAD", "/nope", 404),
        ("GET", "/c/o", 200),
        ("HEAD", "/c/o", 200),
        ("GET", "/c/missing", 404),
        ("DELETE", "/c/missing", 404),
        ("GET", "/c?limit=10001", 412),
        ("GET", "/c/%FF", 412),
        ("PATCH", "/c/o", 405),
    ] {
        let r = s.req(m, path, &[], "").await;
        assert_status(&r, status, &format!("{m} {path}"));
        seen.push(check_trans_id(&r, &format!("{m} {path}")));
    }
    let anon = http
        .req(Method::GET, &format!("{}/c/o", s.url), &[], "")
        .await;
    assert_status(&anon, 401, "anonymous");
    seen.push(check_trans_id(&anon, "anonymous 401"));
    let bad = http
        .req(
            Method::GET,
            &format!("{}/c/o", s.url),
            &[("X-Auth-Token", "AUTH_tkbad")],
            "",
        )
        .await;
    assert_status(&bad, 401, "bad token");
    seen.push(check_trans_id(&bad, "bad token 401"));
    let unknown = http
        .req(
            Method::GET,
            &format!("{}/no/such/endpoint", server.url),
            &[],
            "",
        )
        .await;
    seen.push(check_trans_id(&unknown, "unknown path"));
    let n = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), n, "trans-ids are unique per request");
}

#[tokio::test]
async fn unknown_method_on_an_object_is_405() {
    let server = Server::start();
    let s = Session::new(&server, "test:tester", "testing").await;
    mk_container(&s, "c").await;
    mk_object(&s, "/c/o", b"x", &[]).await;
    for m in ["PATCH", "FOO", "PROPFIND"] {
        let r = s.req(m, "/c/o", &[], "").await;
        assert_status(&r, 405, &format!("{m} object"));
        let allow = r.header("allow");
        for verb in ["GET", "HEAD", "PUT", "POST", "DELETE"] {
            assert!(allow.contains(verb), "{m}: Allow {allow:?} lacks {verb}");
        }
        assert!(!allow.contains(m), "{m}: Allow {allow:?}");
    }
    let g = s.req("GET", "/c/o", &[], "").await;
    assert_eq!(&g.body[..], b"x", "object untouched");
}

#[tokio::test]
async fn unknown_method_on_a_container_or_account_is_405() {
    let server = Server::start();
    let s = Session::new(&server, "test:tester", "testing").await;
    mk_container(&s, "c").await;
    for path in ["/c", ""] {
        let r = s.req("FOO", path, &[], "").await;
        assert_status(&r, 405, &format!("FOO {path:?}"));
        assert!(
            r.header("allow").contains("GET"),
            "Allow {:?}",
            r.header("allow")
        );
    }
}
