//! Objects: PUT (sized and chunked), ETag checks, content types, name limits,
//! GET/HEAD headers, Range (single, multipart, 416), conditional requests,
//! server-side copy, POST, DELETE and expiry — each checked against Swift's rules
//! (swift/common/swob.py, constraints.py, middleware/copy.py, proxy/controllers/obj.py).

mod common;

use common::{
    assert_status, boundary_of, chunked, eventually, host_port, http_date, mk_container, mk_object,
    multipart_parts, now_secs, raw_head, raw_request, swob_body,
};
use tests::{md5_hex, Server, Session};

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz";

async fn setup() -> (Server, Session) {
    let server = Server::start();
    let s = Session::new(&server, "test:tester", "testing").await;
    mk_container(&s, "c").await;
    (server, s)
}

fn quoted(etag: &str) -> String {
    format!("\"{etag}\"")
}

/// Swift's Last-Modified for an object: ceil of its X-Timestamp.
fn last_modified_of(x_timestamp: &str) -> u64 {
    let (secs, frac) = x_timestamp
        .split_once('.')
        .unwrap_or_else(|| panic!("X-Timestamp {x_timestamp:?} has no fraction"));
    let secs: u64 = secs.parse().expect("X-Timestamp seconds");
    if frac.bytes().all(|b| b == b'0') {
        secs
    } else {
        secs + 1
    }
}

fn is_normal_timestamp(ts: &str) -> bool {
    match ts.split_once('.') {
        Some((a, b)) => {
            a.len() == 10
                && b.len() == 5
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

// ---- PUT ------------------------------------------------------------------------

#[tokio::test]
async fn put_with_content_length_is_201_with_etag_and_get_returns_the_bytes() {
    let (_srv, s) = setup().await;
    let body = b"hello, zerocloud".to_vec();
    let r = s
        .req(
            "PUT",
            "/c/hello",
            &[("Content-Type", "text/x-hello")],
            body.clone(),
        )
        .await;
    assert_status(&r, 201, "PUT");
    assert_eq!(r.header("etag"), md5_hex(&body));
    assert_eq!(r.header("content-length"), "0");
    assert!(r.body.is_empty());
    assert!(
        !r.header("last-modified").is_empty(),
        "PUT answers Last-Modified"
    );

    let g = s.req("GET", "/c/hello", &[], "").await;
    assert_status(&g, 200, "GET");
    assert_eq!(&g.body[..], &body[..]);
    assert_eq!(g.header("etag"), md5_hex(&body));
    assert_eq!(g.header("content-length"), body.len().to_string());
    assert_eq!(g.header("content-type"), "text/x-hello");
    assert_eq!(g.header("accept-ranges"), "bytes");
    let ts = g.header("x-timestamp");
    assert!(is_normal_timestamp(ts), "X-Timestamp {ts:?}");
    assert_eq!(g.header("last-modified"), http_date(last_modified_of(ts)));
    let age = now_secs() as i64 - last_modified_of(ts) as i64;
    assert!(
        (-2..60).contains(&age),
        "Last-Modified is now-ish ({age} s)"
    );
    // The PUT's Last-Modified is the object's.
    assert_eq!(r.header("last-modified"), g.header("last-modified"));
}

#[tokio::test]
async fn head_returns_the_get_headers_and_no_body() {
    let (_srv, s) = setup().await;
    mk_object(
        &s,
        "/c/h.bin",
        b"0123456789",
        &[("X-Object-Meta-Color", "blue")],
    )
    .await;
    let g = s.req("GET", "/c/h.bin", &[], "").await;
    let h = s.req("HEAD", "/c/h.bin", &[], "").await;
    assert_status(&h, 200, "HEAD");
    assert!(h.body.is_empty());
    for name in [
        "etag",
        "content-length",
        "content-type",
        "last-modified",
        "x-timestamp",
        "accept-ranges",
        "x-object-meta-color",
    ] {
        assert_eq!(h.header(name), g.header(name), "header {name}");
        assert!(!h.header(name).is_empty(), "header {name} present");
    }
    assert_eq!(h.header("content-length"), "10");
    assert_eq!(h.header("x-object-meta-color"), "blue");
}

/// The object server keeps its `allowed_headers` (content-disposition,
/// content-encoding, cache-control, content-language, expires, x-robots-tag)
/// with the object and returns them on GET/HEAD.
#[tokio::test]
async fn put_keeps_swifts_allowed_headers() {
    let (_srv, s) = setup().await;
    let headers = [
        ("Content-Disposition", "attachment; filename=\"x.bin\""),
        ("Content-Encoding", "gzip"),
        ("Cache-Control", "max-age=60"),
        ("Content-Language", "fr"),
        ("Expires", "Thu, 01 Dec 2094 16:00:00 GMT"),
        ("X-Robots-Tag", "noindex"),
    ];
    mk_object(&s, "/c/h", b"x", &headers).await;
    for m in ["GET", "HEAD"] {
        let r = s.req(m, "/c/h", &[], "").await;
        for (k, v) in headers {
            assert_eq!(r.header(k), v, "{m}: {k}");
        }
    }
}

#[tokio::test]
async fn put_zero_byte_object_has_empty_md5_etag() {
    let (_srv, s) = setup().await;
    let r = s
        .req("PUT", "/c/empty", &[("Content-Length", "0")], "")
        .await;
    assert_status(&r, 201, "PUT empty");
    assert_eq!(r.header("etag"), "d41d8cd98f00b204e9800998ecf8427e");
    let g = s.req("GET", "/c/empty", &[], "").await;
    assert_status(&g, 200, "GET empty");
    assert_eq!(g.header("content-length"), "0");
    assert!(g.body.is_empty());
}

#[tokio::test]
async fn put_into_missing_container_is_404() {
    let (_srv, s) = setup().await;
    let r = s.req("PUT", "/nope/o", &[], "x").await;
    assert_status(&r, 404, "PUT into a missing container");
    let r = s.req("GET", "/nope/o", &[], "").await;
    assert_status(&r, 404, "GET from a missing container");
}

#[tokio::test]
async fn put_overwrites_and_get_returns_the_newest() {
    let (_srv, s) = setup().await;
    mk_object(&s, "/c/o", b"first", &[]).await;
    mk_object(&s, "/c/o", b"second version", &[]).await;
    let g = s.req("GET", "/c/o", &[], "").await;
    assert_eq!(&g.body[..], b"second version");
    assert_eq!(g.header("etag"), md5_hex(b"second version"));
}

#[tokio::test]
async fn chunked_put_stores_the_whole_body() {
    let (_srv, s) = setup().await;
    let pieces: [&[u8]; 4] = [b"chunk one, ", b"chunk two, ", &[b'x'; 70_000], b" the end"];
    let whole: Vec<u8> = pieces.concat();
    let mut req = raw_head(
        &s,
        "PUT",
        "/c/chunked",
        &[
            ("Transfer-Encoding", "chunked"),
            ("Content-Type", "text/plain"),
        ],
    )
    .into_bytes();
    req.extend(chunked(&pieces));
    let r = raw_request(&host_port(&s.url), &req).await;
    assert_eq!(r.status, 201, "chunked PUT: {} {:?}", r.status, r.text());
    assert_eq!(r.header("etag"), md5_hex(&whole));

    let g = s.req("GET", "/c/chunked", &[], "").await;
    assert_status(&g, 200, "GET chunked object");
    assert_eq!(g.body.len(), whole.len());
    assert_eq!(&g.body[..], &whole[..]);
    assert_eq!(g.header("content-length"), whole.len().to_string());
    let l = s.req("GET", "/c?format=json", &[], "").await;
    assert_eq!(l.json()[0]["bytes"], whole.len());
    assert_eq!(l.json()[0]["hash"], md5_hex(&whole));
}

#[tokio::test]
async fn chunked_put_with_wrong_etag_is_422_and_stores_nothing() {
    let (_srv, s) = setup().await;
    let mut req = raw_head(
        &s,
        "PUT",
        "/c/chunked-bad",
        &[
            ("Transfer-Encoding", "chunked"),
            ("Etag", &md5_hex(b"something else")),
        ],
    )
    .into_bytes();
    req.extend(chunked(&[b"abc", b"def"]));
    let r = raw_request(&host_port(&s.url), &req).await;
    assert_eq!(r.status, 422, "body {:?}", r.text());
    let g = s.req("GET", "/c/chunked-bad", &[], "").await;
    assert_status(&g, 404, "nothing stored");
}

#[tokio::test]
async fn put_with_matching_etag_is_201_with_that_etag() {
    let (_srv, s) = setup().await;
    let body = b"etag checked body";
    let etag = md5_hex(body);
    let r = s
        .req("PUT", "/c/e1", &[("Etag", &etag)], body.to_vec())
        .await;
    assert_status(&r, 201, "PUT with matching Etag");
    assert_eq!(r.header("etag"), etag);
    // A quoted ETag is the same ETag (obj/server.py normalize_etag).
    let r = s
        .req("PUT", "/c/e2", &[("Etag", &quoted(&etag))], body.to_vec())
        .await;
    assert_status(&r, 201, "PUT with quoted Etag");
    assert_eq!(r.header("etag"), etag);
}

#[tokio::test]
async fn put_with_wrong_etag_is_422_and_stores_nothing() {
    let (_srv, s) = setup().await;
    let r = s
        .req(
            "PUT",
            "/c/bad-etag",
            &[("Etag", &md5_hex(b"not this"))],
            "the body",
        )
        .await;
    assert_status(&r, 422, "PUT with wrong Etag");
    assert_eq!(r.text(), swob_body(422));
    let g = s.req("GET", "/c/bad-etag", &[], "").await;
    assert_status(&g, 404, "object must not exist");
    let l = s.req("GET", "/c", &[], "").await;
    assert_status(&l, 204, "listing stays empty");
    let h = s.req("HEAD", "/c", &[], "").await;
    assert_eq!(h.header("x-container-object-count"), "0");
}

#[tokio::test]
async fn put_with_wrong_etag_keeps_the_old_version() {
    let (_srv, s) = setup().await;
    mk_object(&s, "/c/keep", b"old content", &[]).await;
    let r = s
        .req(
            "PUT",
            "/c/keep",
            &[("Etag", &md5_hex(b"nope"))],
            "new content",
        )
        .await;
    assert_status(&r, 422, "PUT with wrong Etag");
    let g = s.req("GET", "/c/keep", &[], "").await;
    assert_status(&g, 200, "old version still there");
    assert_eq!(&g.body[..], b"old content");
    assert_eq!(g.header("etag"), md5_hex(b"old content"));
}

// ---- content types and names ---------------------------------------------------------

#[tokio::test]
async fn content_type_defaults_to_octet_stream_without_extension() {
    let (_srv, s) = setup().await;
    mk_object(&s, "/c/noext", b"x", &[]).await;
    let h = s.req("HEAD", "/c/noext", &[], "").await;
    assert_eq!(h.header("content-type"), "application/octet-stream");
    mk_object(&s, "/c/weird.zzqqx", b"x", &[]).await;
    let h = s.req("HEAD", "/c/weird.zzqqx", &[], "").await;
    assert_eq!(h.header("content-type"), "application/octet-stream");
}

#[tokio::test]
async fn content_type_is_guessed_from_the_extension() {
    let (_srv, s) = setup().await;
    for (name, want) in [
        ("a.txt", "text/plain"),
        ("b.html", "text/html"),
        ("c.json", "application/json"),
        ("d.png", "image/png"),
        ("dir/e.jpg", "image/jpeg"),
    ] {
        mk_object(&s, &format!("/c/{name}"), b"x", &[]).await;
        let h = s.req("HEAD", &format!("/c/{name}"), &[], "").await;
        assert_eq!(h.header("content-type"), want, "type of {name}");
    }
    let l = s.req("GET", "/c?format=json&prefix=a.", &[], "").await;
    assert_eq!(l.json()[0]["content_type"], "text/plain");
}

#[tokio::test]
async fn explicit_content_type_is_kept() {
    let (_srv, s) = setup().await;
    mk_object(
        &s,
        "/c/f.txt",
        b"x",
        &[("Content-Type", "application/x-mine")],
    )
    .await;
    let h = s.req("HEAD", "/c/f.txt", &[], "").await;
    assert_eq!(h.header("content-type"), "application/x-mine");
}

#[tokio::test]
async fn x_detect_content_type_true_overrides_the_given_type() {
    let (_srv, s) = setup().await;
    mk_object(
        &s,
        "/c/page.html",
        b"<p>",
        &[
            ("Content-Type", "application/x-wrong"),
            ("X-Detect-Content-Type", "true"),
        ],
    )
    .await;
    let h = s.req("HEAD", "/c/page.html", &[], "").await;
    assert_eq!(h.header("content-type"), "text/html");
    mk_object(
        &s,
        "/c/other.txt",
        b"x",
        &[
            ("Content-Type", "application/x-kept"),
            ("X-Detect-Content-Type", "false"),
        ],
    )
    .await;
    let h = s.req("HEAD", "/c/other.txt", &[], "").await;
    assert_eq!(h.header("content-type"), "application/x-kept");
}

#[tokio::test]
async fn object_name_of_1024_bytes_is_ok_and_1025_is_400() {
    let (_srv, s) = setup().await;
    let ok = "n".repeat(1024);
    let r = s.req("PUT", &format!("/c/{ok}"), &[], "max").await;
    assert_status(&r, 201, "1024-byte name");
    let g = s.req("GET", &format!("/c/{ok}"), &[], "").await;
    assert_status(&g, 200, "GET 1024-byte name");
    assert_eq!(&g.body[..], b"max");

    let long = "n".repeat(1025);
    let r = s.req("PUT", &format!("/c/{long}"), &[], "x").await;
    assert_status(&r, 400, "1025-byte name");
    assert_eq!(r.text(), "Object name length of 1025 longer than 1024");
    // Multi-byte characters count in bytes: 512 × "é" (2 bytes) + "x" = 1025.
    let r = s
        .req("PUT", &format!("/c/{}x", "%C3%A9".repeat(512)), &[], "x")
        .await;
    assert_status(&r, 400, "1025-byte UTF-8 name");
    assert_eq!(r.text(), "Object name length of 1025 longer than 1024");
}

#[tokio::test]
async fn object_names_with_slashes_and_unicode_round_trip() {
    let (_srv, s) = setup().await;
    mk_object(&s, "/c/dir/sub/%E2%98%83%20snow", b"snow", &[]).await;
    let g = s.req("GET", "/c/dir/sub/%E2%98%83%20snow", &[], "").await;
    assert_status(&g, 200, "GET");
    assert_eq!(&g.body[..], b"snow");
    let l = s.req("GET", "/c", &[], "").await;
    assert_eq!(l.text(), "dir/sub/\u{2603} snow\n");
}

/// A name holding a percent sequence is that name: decoded once, from the
/// client's URL, never again on the way to the storage node (which once
/// stored `x%41` as `xA`, so the two names were one object).
#[tokio::test]
async fn names_with_percent_sequences_are_decoded_once() {
    let (_srv, s) = setup().await;
    mk_container(&s, "p%2541c").await;
    mk_object(&s, "/p%2541c/x%2541", b"percent", &[]).await;
    mk_object(&s, "/p%2541c/xA", b"letter", &[]).await;
    let g = s.req("GET", "/p%2541c/x%2541", &[], "").await;
    assert_status(&g, 200, "GET x%41");
    assert_eq!(&g.body[..], b"percent");
    let g = s.req("GET", "/p%2541c/xA", &[], "").await;
    assert_eq!(&g.body[..], b"letter");
    assert_eq!(s.req("GET", "/p%2541c", &[], "").await.text(), "x%41\nxA\n");
    assert_eq!(s.req("HEAD", "/pAc", &[], "").await.status, 404);
    let account = s.req("GET", "", &[], "").await.text();
    assert!(account.lines().any(|c| c == "p%41c"), "{account}");
}

// ---- Range ----------------------------------------------------------------------------

#[tokio::test]
async fn range_single_is_206_with_content_range() {
    let (_srv, s) = setup().await;
    mk_object(&s, "/c/abc", ALPHABET, &[("Content-Type", "text/plain")]).await;
    for (range, want, cr) in [
        ("bytes=0-4", &b"abcde"[..], "bytes 0-4/26"),
        ("bytes=-3", b"xyz", "bytes 23-25/26"),
        ("bytes=20-", b"uvwxyz", "bytes 20-25/26"),
        ("bytes=25-25", b"z", "bytes 25-25/26"),
        ("bytes=10-100", b"klmnopqrstuvwxyz", "bytes 10-25/26"),
        ("bytes=-100", ALPHABET, "bytes 0-25/26"),
    ] {
        let r = s.req("GET", "/c/abc", &[("Range", range)], "").await;
        assert_status(&r, 206, range);
        assert_eq!(&r.body[..], want, "{range}");
        assert_eq!(r.header("content-range"), cr, "{range}");
        assert_eq!(
            r.header("content-length"),
            want.len().to_string(),
            "{range}"
        );
        assert_eq!(r.header("content-type"), "text/plain", "{range}");
        assert_eq!(r.header("etag"), md5_hex(ALPHABET), "{range}");
    }
}

#[tokio::test]
async fn range_several_is_206_multipart_byteranges() {
    let (_srv, s) = setup().await;
    mk_object(
        &s,
        "/c/abc",
        ALPHABET,
        &[("Content-Type", "text/x-letters")],
    )
    .await;
    let r = s
        .req("GET", "/c/abc", &[("Range", "bytes=0-1,5-6,-2")], "")
        .await;
    assert_status(&r, 206, "multi-range");
    let types: Vec<_> = r.headers.get_all("content-type").iter().collect();
    assert_eq!(types.len(), 1, "exactly one Content-Type header: {types:?}");
    let ct = r.header("content-type");
    assert!(
        ct.starts_with("multipart/byteranges;"),
        "Content-Type {ct:?}"
    );
    let boundary = boundary_of(ct);
    assert_eq!(r.header("content-length"), r.body.len().to_string());
    let parts = multipart_parts(&boundary, &r.body);
    let want: [(&[u8], &str); 3] = [
        (b"ab", "bytes 0-1/26"),
        (b"fg", "bytes 5-6/26"),
        (b"yz", "bytes 24-25/26"),
    ];
    assert_eq!(parts.len(), want.len(), "parts: {parts:?}");
    for (p, (data, cr)) in parts.iter().zip(want) {
        assert_eq!(p.data, data);
        assert_eq!(p.header("content-range"), cr);
        assert_eq!(p.header("content-type"), "text/x-letters");
    }
}

#[tokio::test]
async fn range_unsatisfiable_is_416_with_star_content_range() {
    let (_srv, s) = setup().await;
    mk_object(&s, "/c/abc", ALPHABET, &[]).await;
    for range in [
        "bytes=26-",
        "bytes=100-200",
        "bytes=-0",
        "bytes=30-40,50-60",
    ] {
        let r = s.req("GET", "/c/abc", &[("Range", range)], "").await;
        assert_status(&r, 416, range);
        assert_eq!(r.header("content-range"), "bytes */26", "{range}");
        assert_eq!(r.text(), swob_body(416), "{range}");
    }
}

#[tokio::test]
async fn range_on_empty_object_is_416_except_suffix_ranges() {
    let (_srv, s) = setup().await;
    mk_object(&s, "/c/zero", b"", &[]).await;
    // swob: ranges_for_length(0) of "0-1" is [] → 416.
    let r = s.req("GET", "/c/zero", &[("Range", "bytes=0-1")], "").await;
    assert_status(&r, 416, "bytes=0-1 of an empty object");
    assert_eq!(r.header("content-range"), "bytes */0");
    // A suffix range of an empty object is the whole (empty) object.
    let r = s.req("GET", "/c/zero", &[("Range", "bytes=-5")], "").await;
    assert_status(&r, 200, "bytes=-5 of an empty object");
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn range_with_invalid_syntax_returns_the_full_object() {
    let (_srv, s) = setup().await;
    mk_object(&s, "/c/abc", ALPHABET, &[]).await;
    for range in [
        "bytes=5-3",
        "bytes=abc",
        "chars=0-1",
        "bytes=1",
        "bytes=-",
        "bytes=0-1x",
    ] {
        let r = s.req("GET", "/c/abc", &[("Range", range)], "").await;
        assert_status(&r, 200, range);
        assert_eq!(&r.body[..], ALPHABET, "{range}");
        assert_eq!(r.header("content-range"), "", "{range}");
    }
}

// ---- conditional requests ---------------------------------------------------------

#[tokio::test]
async fn if_match_mismatch_is_412_and_match_is_200() {
    let (_srv, s) = setup().await;
    mk_object(&s, "/c/o", b"cond", &[]).await;
    let etag = md5_hex(b"cond");
    let r = s
        .req(
            "GET",
            "/c/o",
            &[("If-Match", "\"0123456789abcdef0123456789abcdef\"")],
            "",
        )
        .await;
    assert_status(&r, 412, "If-Match mismatch");
    assert!(r.body.is_empty(), "conditional 412 has no body");
    assert_eq!(r.header("etag"), etag);
    for v in [
        quoted(&etag),
        etag.clone(),
        "*".into(),
        format!("\"x\", {}", quoted(&etag)),
    ] {
        let r = s.req("GET", "/c/o", &[("If-Match", &v)], "").await;
        assert_status(&r, 200, &format!("If-Match {v}"));
        assert_eq!(&r.body[..], b"cond");
    }
    let r = s.req("HEAD", "/c/o", &[("If-Match", "\"nope\"")], "").await;
    assert_status(&r, 412, "HEAD If-Match mismatch");
    // If-Match: * on a missing object is 412 (RFC 2616 14.24, swob).
    let r = s.req("GET", "/c/missing", &[("If-Match", "*")], "").await;
    assert_status(&r, 412, "If-Match * on a missing object");
}

#[tokio::test]
async fn if_none_match_matching_is_304() {
    let (_srv, s) = setup().await;
    mk_object(&s, "/c/o", b"cond", &[]).await;
    let etag = md5_hex(b"cond");
    for v in [quoted(&etag), "*".to_string()] {
        let r = s.req("GET", "/c/o", &[("If-None-Match", &v)], "").await;
        assert_status(&r, 304, &format!("If-None-Match {v}"));
        assert!(r.body.is_empty());
        assert_eq!(r.header("etag"), etag);
    }
    let r = s
        .req("HEAD", "/c/o", &[("If-None-Match", &quoted(&etag))], "")
        .await;
    assert_status(&r, 304, "HEAD If-None-Match");
    let r = s
        .req("GET", "/c/o", &[("If-None-Match", "\"other\"")], "")
        .await;
    assert_status(&r, 200, "If-None-Match other");
    assert_eq!(&r.body[..], b"cond");
}

#[tokio::test]
async fn if_none_match_star_on_put_is_412_when_object_exists_and_201_when_not() {
    let (_srv, s) = setup().await;
    let r = s
        .req("PUT", "/c/once", &[("If-None-Match", "*")], "first")
        .await;
    assert_status(&r, 201, "If-None-Match * on a new object");
    let r = s
        .req("PUT", "/c/once", &[("If-None-Match", "*")], "second")
        .await;
    assert_status(&r, 412, "If-None-Match * on an existing object");
    let g = s.req("GET", "/c/once", &[], "").await;
    assert_eq!(&g.body[..], b"first");
}

#[tokio::test]
async fn if_none_match_on_put_other_than_star_is_400() {
    let (_srv, s) = setup().await;
    let r = s
        .req("PUT", "/c/x", &[("If-None-Match", "\"abc\"")], "x")
        .await;
    assert_status(&r, 400, "If-None-Match etag on PUT");
    assert_eq!(r.text(), "If-None-Match only supports *");
}

#[tokio::test]
async fn if_modified_since_not_modified_is_304() {
    let (_srv, s) = setup().await;
    mk_object(&s, "/c/o", b"dated", &[]).await;
    let lm = s
        .req("HEAD", "/c/o", &[], "")
        .await
        .header("last-modified")
        .to_string();
    let r = s
        .req("GET", "/c/o", &[("If-Modified-Since", &lm)], "")
        .await;
    assert_status(&r, 304, "If-Modified-Since = Last-Modified");
    assert!(r.body.is_empty());
    let later = http_date(now_secs() + 3600);
    let r = s
        .req("GET", "/c/o", &[("If-Modified-Since", &later)], "")
        .await;
    assert_status(&r, 304, "If-Modified-Since an hour ahead");
    let old = http_date(now_secs() - 86_400);
    let r = s
        .req("GET", "/c/o", &[("If-Modified-Since", &old)], "")
        .await;
    assert_status(&r, 200, "If-Modified-Since yesterday");
    assert_eq!(&r.body[..], b"dated");
}

#[tokio::test]
async fn if_unmodified_since_before_last_modified_is_412() {
    let (_srv, s) = setup().await;
    mk_object(&s, "/c/o", b"dated", &[]).await;
    let lm = s
        .req("HEAD", "/c/o", &[], "")
        .await
        .header("last-modified")
        .to_string();
    let old = http_date(now_secs() - 86_400);
    let r = s
        .req("GET", "/c/o", &[("If-Unmodified-Since", &old)], "")
        .await;
    assert_status(&r, 412, "If-Unmodified-Since yesterday");
    assert!(r.body.is_empty());
    let r = s
        .req("GET", "/c/o", &[("If-Unmodified-Since", &lm)], "")
        .await;
    assert_status(&r, 200, "If-Unmodified-Since = Last-Modified");
    assert_eq!(&r.body[..], b"dated");
}

// ---- copy ------------------------------------------------------------------------------

async fn put_source(s: &Session) -> tests::Resp {
    mk_object(
        s,
        "/c/src",
        b"copy me",
        &[
            ("Content-Type", "text/x-source"),
            ("X-Object-Meta-Color", "blue"),
            ("X-Object-Meta-Shape", "round"),
        ],
    )
    .await;
    s.req("HEAD", "/c/src", &[], "").await
}

#[tokio::test]
async fn copy_with_destination_copies_data_and_metadata() {
    let (_srv, s) = setup().await;
    mk_container(&s, "c2").await;
    let src = put_source(&s).await;
    let r = s
        .req(
            "COPY",
            "/c/src",
            &[
                ("Destination", "/c2/dst"),
                ("X-Object-Meta-Shape", "square"),
            ],
            "",
        )
        .await;
    assert_status(&r, 201, "COPY");
    assert_eq!(r.header("x-copied-from"), "c/src");
    assert_eq!(
        r.header("x-copied-from-last-modified"),
        src.header("last-modified")
    );
    assert_eq!(r.header("etag"), md5_hex(b"copy me"));
    let g = s.req("GET", "/c2/dst", &[], "").await;
    assert_status(&g, 200, "GET copy");
    assert_eq!(&g.body[..], b"copy me");
    assert_eq!(g.header("content-type"), "text/x-source");
    assert_eq!(g.header("x-object-meta-color"), "blue");
    assert_eq!(
        g.header("x-object-meta-shape"),
        "square",
        "request meta wins"
    );
    // The source is untouched.
    let g = s.req("GET", "/c/src", &[], "").await;
    assert_eq!(g.header("x-object-meta-shape"), "round");
    // Destination without the leading slash works too.
    let r = s
        .req("COPY", "/c/src", &[("Destination", "c/dst2")], "")
        .await;
    assert_status(&r, 201, "COPY with container/object destination");
    let g = s.req("GET", "/c/dst2", &[], "").await;
    assert_eq!(&g.body[..], b"copy me");
}

#[tokio::test]
async fn put_with_x_copy_from_copies_data_and_metadata() {
    let (_srv, s) = setup().await;
    put_source(&s).await;
    let r = s
        .req(
            "PUT",
            "/c/dst",
            &[
                ("X-Copy-From", "/c/src"),
                ("X-Object-Meta-Extra", "yes"),
                ("Content-Length", "0"),
            ],
            "",
        )
        .await;
    assert_status(&r, 201, "PUT with X-Copy-From");
    assert_eq!(r.header("x-copied-from"), "c/src");
    assert_eq!(r.header("etag"), md5_hex(b"copy me"));
    let g = s.req("GET", "/c/dst", &[], "").await;
    assert_eq!(&g.body[..], b"copy me");
    assert_eq!(g.header("content-type"), "text/x-source");
    assert_eq!(g.header("x-object-meta-color"), "blue");
    assert_eq!(g.header("x-object-meta-shape"), "round");
    assert_eq!(g.header("x-object-meta-extra"), "yes");
    let r = s
        .req(
            "PUT",
            "/c/dst3",
            &[
                ("X-Copy-From", "c/src"),
                ("Content-Type", "text/x-new"),
                ("Content-Length", "0"),
            ],
            "",
        )
        .await;
    assert_status(&r, 201, "PUT with X-Copy-From (no leading slash)");
    let g = s.req("HEAD", "/c/dst3", &[], "").await;
    assert_eq!(g.header("content-type"), "text/x-new", "request type wins");
}

#[tokio::test]
async fn copy_with_fresh_metadata_drops_source_metadata_but_keeps_content_type() {
    let (_srv, s) = setup().await;
    put_source(&s).await;
    let r = s
        .req(
            "PUT",
            "/c/fresh",
            &[
                ("X-Copy-From", "c/src"),
                ("X-Fresh-Metadata", "true"),
                ("X-Object-Meta-New", "1"),
                ("Content-Length", "0"),
            ],
            "",
        )
        .await;
    assert_status(&r, 201, "copy with X-Fresh-Metadata");
    let g = s.req("GET", "/c/fresh", &[], "").await;
    assert_eq!(&g.body[..], b"copy me");
    assert_eq!(g.header("x-object-meta-new"), "1");
    assert_eq!(g.header("x-object-meta-color"), "", "source meta dropped");
    assert_eq!(g.header("x-object-meta-shape"), "", "source meta dropped");
    // copy.py: "If the copy request does not explicitly override content-type,
    // use the one present in the source object" — in both branches.
    assert_eq!(g.header("content-type"), "text/x-source");
}

#[tokio::test]
async fn copy_response_names_the_source_account_too() {
    let (_srv, s) = setup().await;
    put_source(&s).await;
    let r = s
        .req("COPY", "/c/src", &[("Destination", "/c/d")], "")
        .await;
    assert_status(&r, 201, "COPY");
    // copy.py `_create_response_headers` always sets X-Copied-From-Account.
    assert_eq!(r.header("x-copied-from-account"), "AUTH_test");
    assert_eq!(r.header("x-copied-from"), "c/src");
}

#[tokio::test]
async fn x_copy_from_is_percent_decoded_and_x_copied_from_is_quoted() {
    let (_srv, s) = setup().await;
    mk_object(&s, "/c/sp%20ace", b"spaced", &[]).await;
    let r = s
        .req(
            "PUT",
            "/c/copied",
            &[("X-Copy-From", "c/sp%20ace"), ("Content-Length", "0")],
            "",
        )
        .await;
    assert_status(&r, 201, "X-Copy-From with %20");
    assert_eq!(r.header("x-copied-from"), "c/sp%20ace");
    let g = s.req("GET", "/c/copied", &[], "").await;
    assert_eq!(&g.body[..], b"spaced");
    let r = s
        .req(
            "COPY",
            "/c/sp%20ace",
            &[("Destination", "c/copied%202")],
            "",
        )
        .await;
    assert_status(&r, 201, "COPY to a %20 destination");
    let g = s.req("GET", "/c/copied%202", &[], "").await;
    assert_eq!(&g.body[..], b"spaced");
}

#[tokio::test]
async fn copy_without_destination_is_412() {
    let (_srv, s) = setup().await;
    put_source(&s).await;
    let r = s.req("COPY", "/c/src", &[], "").await;
    assert_status(&r, 412, "COPY without Destination");
    assert_eq!(r.text(), "Destination header required");
    let r = s
        .req("COPY", "/c/src", &[("Destination", "nocontainer")], "")
        .await;
    assert_status(&r, 412, "COPY with a bad Destination");
    assert_eq!(
        r.text(),
        "Destination header must be of the form <container name>/<object name>"
    );
}

#[tokio::test]
async fn copy_from_missing_source_or_to_missing_container_is_404() {
    let (_srv, s) = setup().await;
    put_source(&s).await;
    let r = s
        .req("COPY", "/c/missing", &[("Destination", "/c/d")], "")
        .await;
    assert_status(&r, 404, "COPY of a missing object");
    let r = s
        .req(
            "PUT",
            "/c/d",
            &[("X-Copy-From", "/c/missing"), ("Content-Length", "0")],
            "",
        )
        .await;
    assert_status(&r, 404, "X-Copy-From a missing object");
    let r = s
        .req("COPY", "/c/src", &[("Destination", "/nocontainer/d")], "")
        .await;
    assert_status(&r, 404, "COPY into a missing container");
    assert_status(&s.req("GET", "/c/d", &[], "").await, 404, "nothing at /c/d");
}

// ---- POST and DELETE -----------------------------------------------------------------

#[tokio::test]
async fn post_replaces_object_metadata_and_is_202() {
    let (_srv, s) = setup().await;
    mk_object(
        &s,
        "/c/o",
        b"meta body",
        &[
            ("Content-Type", "text/x-a"),
            ("X-Object-Meta-A", "1"),
            ("X-Object-Meta-B", "2"),
        ],
    )
    .await;
    let before = s.req("HEAD", "/c/o", &[], "").await;
    let r = s.req("POST", "/c/o", &[("X-Object-Meta-C", "3")], "").await;
    assert_status(&r, 202, "POST");
    let h = s.req("GET", "/c/o", &[], "").await;
    assert_eq!(h.header("x-object-meta-c"), "3");
    assert_eq!(
        h.header("x-object-meta-a"),
        "",
        "POST replaces all user meta"
    );
    assert_eq!(h.header("x-object-meta-b"), "");
    assert_eq!(h.header("content-type"), "text/x-a", "type survives a POST");
    assert_eq!(&h.body[..], b"meta body");
    assert_eq!(h.header("etag"), before.header("etag"));
    // POST may change the content type.
    let r = s
        .req("POST", "/c/o", &[("Content-Type", "text/x-b")], "")
        .await;
    assert_status(&r, 202, "POST Content-Type");
    let h = s.req("HEAD", "/c/o", &[], "").await;
    assert_eq!(h.header("content-type"), "text/x-b");
    assert_eq!(
        h.header("x-object-meta-c"),
        "",
        "a POST without meta clears it"
    );
}

/// swift/obj/diskfile.py merges the .meta file's metadata (with its X-Timestamp)
/// over the .data file's, and obj/server.py answers X-Timestamp and Last-Modified
/// from that merged X-Timestamp.
#[tokio::test]
async fn post_moves_x_timestamp_and_last_modified_to_the_post() {
    let (_srv, s) = setup().await;
    mk_object(&s, "/c/o", b"x", &[]).await;
    let before = s.req("HEAD", "/c/o", &[], "").await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let r = s.req("POST", "/c/o", &[("X-Object-Meta-A", "1")], "").await;
    assert_status(&r, 202, "POST");
    let after = s.req("HEAD", "/c/o", &[], "").await;
    let (t0, t1) = (before.header("x-timestamp"), after.header("x-timestamp"));
    assert!(is_normal_timestamp(t1), "X-Timestamp {t1:?}");
    assert!(
        t1 > t0,
        "X-Timestamp after POST ({t1}) must be later than the PUT's ({t0})"
    );
    assert_eq!(
        after.header("last-modified"),
        http_date(last_modified_of(t1))
    );
}

#[tokio::test]
async fn post_to_missing_object_is_404() {
    let (_srv, s) = setup().await;
    let r = s
        .req("POST", "/c/ghost", &[("X-Object-Meta-A", "1")], "")
        .await;
    assert_status(&r, 404, "POST missing object");
}

#[tokio::test]
async fn delete_is_204_then_get_and_delete_are_404() {
    let (_srv, s) = setup().await;
    mk_object(&s, "/c/o", b"bye", &[]).await;
    let r = s.req("DELETE", "/c/o", &[], "").await;
    assert_status(&r, 204, "DELETE");
    assert!(r.body.is_empty());
    let g = s.req("GET", "/c/o", &[], "").await;
    assert_status(&g, 404, "GET after DELETE");
    assert_eq!(g.text(), swob_body(404));
    let h = s.req("HEAD", "/c/o", &[], "").await;
    assert_status(&h, 404, "HEAD after DELETE");
    let d = s.req("DELETE", "/c/o", &[], "").await;
    assert_status(&d, 404, "second DELETE");
    let l = s.req("GET", "/c", &[], "").await;
    assert_status(&l, 204, "listing after DELETE");
}

// ---- expiry --------------------------------------------------------------------------------

#[tokio::test]
async fn x_delete_after_expires_the_object_then_the_listing_drops_it() {
    let (_srv, s) = setup().await;
    let before = now_secs();
    mk_object(&s, "/c/shortlived", b"tick", &[("X-Delete-After", "1")]).await;
    mk_object(&s, "/c/stays", b"tock", &[]).await;
    let h = s.req("HEAD", "/c/shortlived", &[], "").await;
    if h.status == 200 {
        let at: u64 = h
            .header("x-delete-at")
            .parse()
            .expect("X-Delete-At on HEAD");
        assert!(at > before && at <= now_secs() + 1, "X-Delete-At {at}");
    }
    eventually(5, "object reads 404", || async {
        let r = s.req("GET", "/c/shortlived", &[], "").await;
        if r.status == 404 {
            Ok(())
        } else {
            Err(format!("status {}", r.status))
        }
    })
    .await;
    // The expirer runs every 5 s by default.
    eventually(15, "listing drops the expired object", || async {
        let r = s.req("GET", "/c", &[], "").await;
        if r.text() == "stays\n" {
            Ok(())
        } else {
            Err(format!("listing {:?}", r.text()))
        }
    })
    .await;
    let h = s.req("HEAD", "/c", &[], "").await;
    assert_eq!(h.header("x-container-object-count"), "1");
    assert_eq!(h.header("x-container-bytes-used"), "4");
    assert_status(
        &s.req("GET", "/c/stays", &[], "").await,
        200,
        "other object",
    );
}

#[tokio::test]
async fn x_delete_at_is_stored_and_returned() {
    let (_srv, s) = setup().await;
    let at = (now_secs() + 3600).to_string();
    mk_object(&s, "/c/o", b"x", &[("X-Delete-At", &at)]).await;
    let h = s.req("HEAD", "/c/o", &[], "").await;
    assert_eq!(h.header("x-delete-at"), at);
    let at2 = (now_secs() + 7200).to_string();
    let r = s.req("POST", "/c/o", &[("X-Delete-At", &at2)], "").await;
    assert_status(&r, 202, "POST X-Delete-At");
    let h = s.req("HEAD", "/c/o", &[], "").await;
    assert_eq!(h.header("x-delete-at"), at2);
}

#[tokio::test]
async fn x_delete_at_in_the_past_is_400() {
    let (_srv, s) = setup().await;
    let past = (now_secs() - 10).to_string();
    let r = s.req("PUT", "/c/o", &[("X-Delete-At", &past)], "x").await;
    assert_status(&r, 400, "PUT X-Delete-At in the past");
    assert_eq!(r.text(), "X-Delete-At in past");
    assert_status(&s.req("GET", "/c/o", &[], "").await, 404, "nothing stored");
    mk_object(&s, "/c/o", b"x", &[]).await;
    let r = s.req("POST", "/c/o", &[("X-Delete-At", &past)], "").await;
    assert_status(&r, 400, "POST X-Delete-At in the past");
    assert_eq!(r.text(), "X-Delete-At in past");
    let r = s
        .req("PUT", "/c/o2", &[("X-Delete-After", "-5")], "x")
        .await;
    assert_status(&r, 400, "negative X-Delete-After");
    assert_eq!(r.text(), "X-Delete-After in past");
}

#[tokio::test]
async fn non_integer_x_delete_at_or_after_is_400() {
    let (_srv, s) = setup().await;
    let r = s.req("PUT", "/c/o", &[("X-Delete-At", "soon")], "x").await;
    assert_status(&r, 400, "X-Delete-At: soon");
    assert_eq!(r.text(), "Non-integer X-Delete-At");
    let r = s
        .req("PUT", "/c/o", &[("X-Delete-After", "later")], "x")
        .await;
    assert_status(&r, 400, "X-Delete-After: later");
    assert_eq!(r.text(), "Non-integer X-Delete-After");
    assert_status(&s.req("GET", "/c/o", &[], "").await, 404, "nothing stored");
}
