//! Malformed and broken requests: invalid UTF-8 / NUL in names, clients that
//! disconnect mid-upload, bad or missing Content-Length, oversized uploads.
//! Uses raw TCP where the hyper client would refuse to send the request.

mod common;

use std::time::Duration;

use common::{
    assert_status, chunked, host_port, mk_container, mk_object, raw_head, raw_request,
    raw_send_and_close,
};
use tests::{Server, Session};

async fn setup() -> (Server, Session) {
    let server = Server::start();
    let s = Session::new(&server, "test:tester", "testing").await;
    mk_container(&s, "c").await;
    (server, s)
}

/// The object stays absent (or keeps `old`) for a while after a broken upload.
async fn assert_untouched(s: &Session, path: &str, old: Option<&[u8]>) {
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = s.req("GET", path, &[], "").await;
        match old {
            None => assert_status(&r, 404, &format!("{path} after a broken upload")),
            Some(b) => {
                assert_status(&r, 200, &format!("{path} after a broken upload"));
                assert_eq!(&r.body[..], b, "old content of {path}");
            }
        }
    }
}

#[tokio::test]
async fn invalid_utf8_in_a_name_is_412() {
    let (_srv, s) = setup().await;
    for (m, path) in [
        ("GET", "/c/%FF"),
        ("PUT", "/c/bad%FFname"),
        ("HEAD", "/c/%C3%28"),
        ("PUT", "/%FF"),
        ("GET", "/%FF/o"),
    ] {
        let r = s.req(m, path, &[("Content-Length", "0")], "").await;
        assert_status(&r, 412, &format!("{m} {path}"));
        if m != "HEAD" {
            assert_eq!(r.text(), "Invalid UTF8 or contains NULL", "{m} {path}");
        }
    }
    let r = s.req("GET", "/c", &[], "").await;
    assert_status(&r, 204, "nothing was created");
    let r = s.req("GET", "", &[], "").await;
    assert_eq!(r.text(), "c\n", "no container was created");
}

#[tokio::test]
async fn nul_in_a_name_is_412() {
    let (_srv, s) = setup().await;
    let r = s
        .req("PUT", "/c/a%00b", &[("Content-Length", "1")], "x")
        .await;
    assert_status(&r, 412, "NUL in object name");
    assert_eq!(r.text(), "Invalid UTF8 or contains NULL");
    let r = s.req("PUT", "/c%00d", &[], "").await;
    assert_status(&r, 412, "NUL in container name");
    assert_eq!(r.text(), "Invalid UTF8 or contains NULL");
}

#[tokio::test]
async fn client_disconnect_mid_body_stores_nothing() {
    let (_srv, s) = setup().await;
    let mut req = raw_head(&s, "PUT", "/c/partial", &[("Content-Length", "1000")]).into_bytes();
    req.extend_from_slice(b"0123456789");
    raw_send_and_close(&host_port(&s.url), &req).await;
    assert_untouched(&s, "/c/partial", None).await;
    let r = s.req("GET", "/c", &[], "").await;
    assert_status(&r, 204, "listing stays empty");
    let r = s.req("HEAD", "/c", &[], "").await;
    assert_eq!(r.header("x-container-object-count"), "0");
    assert_eq!(r.header("x-container-bytes-used"), "0");
}

#[tokio::test]
async fn client_disconnect_mid_body_keeps_the_old_content() {
    let (_srv, s) = setup().await;
    mk_object(&s, "/c/existing", b"the old content", &[]).await;
    let mut req = raw_head(&s, "PUT", "/c/existing", &[("Content-Length", "1000")]).into_bytes();
    req.extend_from_slice(b"NEWNEWNEWN");
    raw_send_and_close(&host_port(&s.url), &req).await;
    assert_untouched(&s, "/c/existing", Some(b"the old content")).await;
    let r = s.req("GET", "/c?format=json", &[], "").await;
    assert_eq!(r.json()[0]["bytes"], 15);
    assert_eq!(r.json()[0]["hash"], tests::md5_hex(b"the old content"));
}

#[tokio::test]
async fn client_disconnect_mid_chunked_body_stores_nothing() {
    let (_srv, s) = setup().await;
    let mut req = raw_head(
        &s,
        "PUT",
        "/c/partial-chunked",
        &[("Transfer-Encoding", "chunked")],
    )
    .into_bytes();
    // One whole chunk, then half of the next, and no terminating chunk.
    req.extend_from_slice(b"a\r\n0123456789\r\n64\r\n01234");
    raw_send_and_close(&host_port(&s.url), &req).await;
    assert_untouched(&s, "/c/partial-chunked", None).await;
    let r = s.req("GET", "/c", &[], "").await;
    assert_status(&r, 204, "listing stays empty");
}

#[tokio::test]
async fn negative_content_length_is_400() {
    let (_srv, s) = setup().await;
    let req = raw_head(&s, "PUT", "/c/neg", &[("Content-Length", "-1")]);
    let r = raw_request(&host_port(&s.url), req.as_bytes()).await;
    assert_eq!(r.status, 400, "body {:?}", r.text());
    assert_status(
        &s.req("GET", "/c/neg", &[], "").await,
        404,
        "nothing stored",
    );
}

#[tokio::test]
async fn garbage_content_length_is_400() {
    let (_srv, s) = setup().await;
    for cl in ["abc", "1x", "0x10", "1.5"] {
        let req = raw_head(&s, "PUT", "/c/garbage", &[("Content-Length", cl)]);
        let r = raw_request(&host_port(&s.url), req.as_bytes()).await;
        assert_eq!(r.status, 400, "Content-Length {cl:?}: body {:?}", r.text());
    }
    assert_status(
        &s.req("GET", "/c/garbage", &[], "").await,
        404,
        "nothing stored",
    );
}

#[tokio::test]
async fn put_without_content_length_or_chunked_is_411() {
    let (_srv, s) = setup().await;
    let req = raw_head(&s, "PUT", "/c/nolength", &[("Content-Type", "text/plain")]);
    let r = raw_request(&host_port(&s.url), req.as_bytes()).await;
    assert_eq!(r.status, 411, "body {:?}", r.text());
    assert_eq!(r.text(), "Missing Content-Length header.");
    assert_status(
        &s.req("GET", "/c/nolength", &[], "").await,
        404,
        "nothing stored",
    );
}

#[tokio::test]
async fn upload_larger_than_max_file_size_is_413() {
    let (_srv, s) = setup().await;
    // 5368709122 is max_file_size; announce one byte more and send nothing.
    let req = raw_head(&s, "PUT", "/c/huge", &[("Content-Length", "5368709123")]);
    let r = raw_request(&host_port(&s.url), req.as_bytes()).await;
    assert_eq!(r.status, 413, "body {:?}", r.text());
    assert_eq!(r.text(), "Your request is too large.");
}

#[tokio::test]
async fn chunked_put_of_an_empty_body_is_a_zero_byte_object() {
    let (_srv, s) = setup().await;
    let mut req = raw_head(
        &s,
        "PUT",
        "/c/empty-chunked",
        &[("Transfer-Encoding", "chunked")],
    )
    .into_bytes();
    req.extend(chunked(&[]));
    let r = raw_request(&host_port(&s.url), &req).await;
    assert_eq!(r.status, 201, "body {:?}", r.text());
    assert_eq!(r.header("etag"), "d41d8cd98f00b204e9800998ecf8427e");
    let g = s.req("GET", "/c/empty-chunked", &[], "").await;
    assert_status(&g, 200, "GET");
    assert_eq!(g.header("content-length"), "0");
}

#[tokio::test]
async fn body_on_copy_put_is_400() {
    let (_srv, s) = setup().await;
    mk_object(&s, "/c/src", b"source", &[]).await;
    // copy.py handle_PUT: "Copy requests require a zero byte body".
    let r = s
        .req("PUT", "/c/dst", &[("X-Copy-From", "c/src")], "not empty")
        .await;
    assert_status(&r, 400, "X-Copy-From with a body");
    assert_eq!(r.text(), "Copy requests require a zero byte body");
    assert_status(
        &s.req("GET", "/c/dst", &[], "").await,
        404,
        "nothing stored",
    );
}

/// A URI near hyper's limit (65,534 bytes) still gets a plain answer: 414
/// where routing it would cross the limit, never a 500.
#[tokio::test]
async fn a_uri_too_long_to_route_is_414() {
    let (_srv, s) = setup().await;
    mk_object(&s, "/c/o", b"x", &[]).await;
    let base = raw_head(&s, "GET", "/c/o?", &[]);
    let path_len = base
        .split(' ')
        .nth(1)
        .expect("request line has a path")
        .len();
    // The shape's path (/v1/{account}/{container}/{object}) is longer than
    // this one; the query fills the URI up to hyper's limit.
    let q = "a".repeat(65_534 - path_len);
    let req = raw_head(&s, "GET", &format!("/c/o?{q}"), &[]);
    let r = raw_request(&host_port(&s.url), req.as_bytes()).await;
    assert_eq!(r.status, 414, "body {:?}", r.text());
    assert_eq!(r.text(), "The request URI is too long.");
    // A long query that fits is served.
    let q = "a".repeat(60_000);
    let req = raw_head(&s, "GET", &format!("/c/o?{q}"), &[]);
    let r = raw_request(&host_port(&s.url), req.as_bytes()).await;
    assert_eq!(r.status, 200, "body {:?}", r.text());
}
