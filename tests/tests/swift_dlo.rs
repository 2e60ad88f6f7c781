//! Dynamic large objects: X-Object-Manifest concatenates the segments under a prefix.

use tests::{md5_hex, Server, Session};

async fn setup() -> (Server, Session) {
    let server = Server::start();
    let s = Session::new(&server, "test:tester", "testing").await;
    assert_eq!(s.req("PUT", "/segs", &[], "").await.status, 201);
    assert_eq!(s.req("PUT", "/c", &[], "").await.status, 201);
    for (i, part) in ["one", "two", "three", "four", "five"].iter().enumerate() {
        let r = s.req("PUT", &format!("/segs/big/{i:03}"), &[], *part).await;
        assert_eq!(r.status, 201);
    }
    let r = s
        .req(
            "PUT",
            "/c/manifest",
            &[
                ("x-object-manifest", "segs/big/"),
                ("content-type", "text/jibberish"),
                ("content-length", "0"),
            ],
            "",
        )
        .await;
    assert_eq!(r.status, 201);
    (server, s)
}

#[tokio::test]
async fn get_of_a_manifest_concatenates_its_segments_in_name_order() {
    let (_server, s) = setup().await;
    let r = s.req("GET", "/c/manifest", &[], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "onetwothreefourfive");
    assert_eq!(r.header("content-type"), "text/jibberish");
    assert_eq!(r.header("content-length"), "19");
    let etags: String = ["one", "two", "three", "four", "five"]
        .iter()
        .map(|p| md5_hex(p.as_bytes()))
        .collect();
    assert_eq!(
        r.header("etag"),
        format!("\"{}\"", md5_hex(etags.as_bytes()))
    );
    let h = s.req("HEAD", "/c/manifest", &[], "").await;
    assert_eq!((h.status, h.header("content-length")), (200, "19"));
    assert!(h.body.is_empty());
}

#[tokio::test]
async fn ranges_over_a_manifest_span_segments() {
    let (_server, s) = setup().await;
    let r = s
        .req("GET", "/c/manifest", &[("range", "bytes=3-")], "")
        .await;
    assert_eq!((r.status, r.text().as_str()), (206, "twothreefourfive"));
    let r = s
        .req("GET", "/c/manifest", &[("range", "bytes=5-9")], "")
        .await;
    assert_eq!((r.status, r.text().as_str()), (206, "othre"));
    assert_eq!(r.header("content-range"), "bytes 5-9/19");
    let r = s
        .req("GET", "/c/manifest", &[("range", "bytes=50-")], "")
        .await;
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), "bytes */19");
}

#[tokio::test]
async fn multipart_manifest_get_returns_the_manifest_itself_and_new_segments_show_up() {
    let (_server, s) = setup().await;
    let r = s
        .req("GET", "/c/manifest?multipart-manifest=get", &[], "")
        .await;
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(r.header("x-object-manifest"), "segs/big/");
    assert_eq!(s.req("PUT", "/segs/big/005", &[], "six").await.status, 201);
    let r = s.req("GET", "/c/manifest", &[], "").await;
    assert_eq!(r.text(), "onetwothreefourfivesix");
}

#[tokio::test]
async fn segments_need_read_access_of_their_own() {
    let (server, s) = setup().await;
    // tester3 may read container c, but not the segments' container.
    let r = s
        .req("POST", "/c", &[("x-container-read", "test:tester3")], "")
        .await;
    assert_eq!(r.status, 204);
    let t3 = Session::new(&server, "test:tester3", "testing3").await;
    assert_eq!(t3.req("GET", "/c/manifest", &[], "").await.status, 403);
    let r = s
        .req("POST", "/segs", &[("x-container-read", "test:tester3")], "")
        .await;
    assert_eq!(r.status, 204);
    let r = t3.req("GET", "/c/manifest", &[], "").await;
    assert_eq!((r.status, r.text().as_str()), (200, "onetwothreefourfive"));
}
