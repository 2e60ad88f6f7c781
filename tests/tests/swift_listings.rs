//! Container and account listings: formats (plain, JSON, XML, Accept negotiation),
//! prefix, delimiter, marker, end_marker, limit, reverse, and empty listings, as
//! Swift's container/account servers and `listing_formats` middleware produce them.

mod common;

use common::{assert_status, is_isoformat, isoformat, mk_container, mk_object};
use serde_json::Value;
use tests::{md5_hex, Server, Session};

/// name → body; the bodies have distinct sizes 1..=5.
const OBJECTS: [(&str, &str); 5] = [
    ("a", "1"),
    ("b/1", "22"),
    ("b/2", "333"),
    ("c", "4444"),
    ("d/x/y", "55555"),
];

async fn setup() -> (Server, Session) {
    let server = Server::start();
    let s = Session::new(&server, "test:tester", "testing").await;
    mk_container(&s, "c").await;
    for (name, body) in OBJECTS {
        mk_object(&s, &format!("/c/{name}"), body.as_bytes(), &[]).await;
    }
    (server, s)
}

async fn plain(s: &Session, path: &str) -> String {
    let r = s.req("GET", path, &[], "").await;
    assert!(
        r.status == 200 || r.status == 204,
        "GET {path}: {} {:?}",
        r.status,
        r.text()
    );
    r.text()
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("JSON array")
        .iter()
        .map(|e| match (e.get("name"), e.get("subdir")) {
            (Some(n), None) => n.as_str().expect("name").to_string(),
            (None, Some(d)) => format!("subdir:{}", d.as_str().expect("subdir")),
            _ => panic!("entry {e}"),
        })
        .collect()
}

// ---- formats ----------------------------------------------------------------------

#[tokio::test]
async fn plain_listing_is_names_one_per_line_in_order() {
    let (_srv, s) = setup().await;
    let r = s.req("GET", "/c", &[], "").await;
    assert_status(&r, 200, "GET container");
    assert_eq!(r.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(r.text(), "a\nb/1\nb/2\nc\nd/x/y\n");
    assert_eq!(r.header("content-length"), r.body.len().to_string());
    assert_eq!(r.header("x-container-object-count"), "5");
    assert_eq!(r.header("x-container-bytes-used"), "15");
}

#[tokio::test]
async fn json_listing_has_name_hash_bytes_content_type_last_modified() {
    let (_srv, s) = setup().await;
    let r = s.req("GET", "/c?format=json", &[], "").await;
    assert_status(&r, 200, "GET ?format=json");
    assert_eq!(r.header("content-type"), "application/json; charset=utf-8");
    let v = r.json();
    let arr = v.as_array().expect("array");
    assert_eq!(arr.len(), 5);
    for (e, (name, body)) in arr.iter().zip(OBJECTS) {
        let obj = e.as_object().expect("object entry");
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            ["bytes", "content_type", "hash", "last_modified", "name"]
        );
        assert_eq!(e["name"], name);
        assert_eq!(e["bytes"], body.len());
        assert_eq!(e["hash"], md5_hex(body.as_bytes()));
        assert_eq!(e["content_type"], "application/octet-stream");
        let lm = e["last_modified"].as_str().expect("last_modified");
        assert!(is_isoformat(lm), "last_modified {lm:?}");
        let h = s.req("HEAD", &format!("/c/{name}"), &[], "").await;
        assert_eq!(lm, isoformat(h.header("x-timestamp")), "{name}");
    }
}

#[tokio::test]
async fn xml_listing_is_swifts_document() {
    let (_srv, s) = setup().await;
    let j = s.req("GET", "/c?format=json", &[], "").await.json();
    let r = s.req("GET", "/c?format=xml", &[], "").await;
    assert_status(&r, 200, "GET ?format=xml");
    assert_eq!(r.header("content-type"), "application/xml; charset=utf-8");
    let mut want =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<container name=\"c\">");
    for e in j.as_array().expect("array") {
        want.push_str(&format!(
            "<object><name>{}</name><hash>{}</hash><bytes>{}</bytes><content_type>{}</content_type><last_modified>{}</last_modified></object>",
            e["name"].as_str().unwrap_or(""),
            e["hash"].as_str().unwrap_or(""),
            e["bytes"],
            e["content_type"].as_str().unwrap_or(""),
            e["last_modified"].as_str().unwrap_or(""),
        ));
    }
    want.push_str("</container>");
    assert_eq!(r.text(), want);
}

#[tokio::test]
async fn accept_header_negotiates_json_and_xml() {
    let (_srv, s) = setup().await;
    let r = s
        .req("GET", "/c", &[("Accept", "application/json")], "")
        .await;
    assert_status(&r, 200, "Accept: application/json");
    assert_eq!(r.header("content-type"), "application/json; charset=utf-8");
    assert_eq!(names(&r.json()), ["a", "b/1", "b/2", "c", "d/x/y"]);

    let r = s
        .req("GET", "/c", &[("Accept", "application/xml")], "")
        .await;
    assert_status(&r, 200, "Accept: application/xml");
    assert_eq!(r.header("content-type"), "application/xml; charset=utf-8");
    assert!(r.text().starts_with(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<container name=\"c\"><object><name>a</name>"
    ));

    let r = s
        .req(
            "GET",
            "/c",
            &[("Accept", "text/plain;q=0.5, application/json;q=0.9")],
            "",
        )
        .await;
    assert_eq!(r.header("content-type"), "application/json; charset=utf-8");

    let r = s.req("GET", "/c", &[("Accept", "*/*")], "").await;
    assert_eq!(r.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(r.text(), "a\nb/1\nb/2\nc\nd/x/y\n");

    // format= wins over Accept.
    let r = s
        .req(
            "GET",
            "/c?format=json",
            &[("Accept", "application/xml")],
            "",
        )
        .await;
    assert_eq!(r.header("content-type"), "application/json; charset=utf-8");
    let r = s.req("GET", "/c?format=XML", &[], "").await;
    assert_eq!(r.header("content-type"), "application/xml; charset=utf-8");
    let r = s
        .req(
            "GET",
            "/c?format=plain",
            &[("Accept", "application/json")],
            "",
        )
        .await;
    assert_eq!(r.text(), "a\nb/1\nb/2\nc\nd/x/y\n");
}

/// `listing_formats.get_listing_content_type` offers text/xml too, and answers with
/// the type it matched.
#[tokio::test]
async fn accept_text_xml_gets_xml_typed_text_xml() {
    let (_srv, s) = setup().await;
    let r = s.req("GET", "/c", &[("Accept", "text/xml")], "").await;
    assert_status(&r, 200, "Accept: text/xml");
    assert_eq!(r.header("content-type"), "text/xml; charset=utf-8");
    assert!(r.text().starts_with("<?xml"));
}

#[tokio::test]
async fn accept_with_no_listing_type_is_406() {
    let (_srv, s) = setup().await;
    let r = s.req("GET", "/c", &[("Accept", "image/png")], "").await;
    assert_status(&r, 406, "Accept: image/png");
    let r = s.req("GET", "", &[("Accept", "image/png")], "").await;
    assert_status(&r, 406, "account with Accept: image/png");
}

/// listing_formats adds `Vary: Accept` when the format came from negotiation.
#[tokio::test]
async fn negotiated_listing_varies_on_accept() {
    let (_srv, s) = setup().await;
    let r = s
        .req("GET", "/c", &[("Accept", "application/json")], "")
        .await;
    assert_eq!(r.header("vary"), "Accept");
    let r = s.req("GET", "", &[], "").await;
    assert_eq!(r.header("vary"), "Accept");
    let r = s.req("GET", "/c?format=json", &[], "").await;
    assert_eq!(r.header("vary"), "", "no Vary with an explicit format");
}

// ---- query parameters -----------------------------------------------------------------

#[tokio::test]
async fn prefix_limits_the_listing() {
    let (_srv, s) = setup().await;
    assert_eq!(plain(&s, "/c?prefix=b/").await, "b/1\nb/2\n");
    assert_eq!(plain(&s, "/c?prefix=b%2F2").await, "b/2\n");
    assert_eq!(plain(&s, "/c?prefix=d").await, "d/x/y\n");
    let r = s.req("GET", "/c?prefix=zzz", &[], "").await;
    assert_status(&r, 204, "no match");
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn delimiter_rolls_up_subdirs_in_plain_listing() {
    let (_srv, s) = setup().await;
    assert_eq!(plain(&s, "/c?delimiter=/").await, "a\nb/\nc\nd/\n");
    assert_eq!(plain(&s, "/c?prefix=d/&delimiter=/").await, "d/x/\n");
    assert_eq!(plain(&s, "/c?prefix=d/x/&delimiter=/").await, "d/x/y\n");
    assert_eq!(plain(&s, "/c?prefix=b/&delimiter=/").await, "b/1\nb/2\n");
}

#[tokio::test]
async fn delimiter_gives_subdir_entries_in_json() {
    let (_srv, s) = setup().await;
    let r = s.req("GET", "/c?format=json&delimiter=/", &[], "").await;
    assert_status(&r, 200, "json + delimiter");
    let v = r.json();
    assert_eq!(names(&v), ["a", "subdir:b/", "c", "subdir:d/"]);
    assert_eq!(v[1], serde_json::json!({"subdir": "b/"}));
    assert_eq!(v[3], serde_json::json!({"subdir": "d/"}));
    assert_eq!(v[0]["bytes"], 1);
}

#[tokio::test]
async fn delimiter_gives_subdir_elements_in_xml() {
    let (_srv, s) = setup().await;
    let j = s
        .req("GET", "/c?format=json&prefix=d/&delimiter=/", &[], "")
        .await
        .json();
    assert_eq!(names(&j), ["subdir:d/x/"]);
    let r = s
        .req("GET", "/c?format=xml&prefix=d/&delimiter=/", &[], "")
        .await;
    assert_eq!(
        r.text(),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<container name=\"c\"><subdir name=\"d/x/\"><name>d/x/</name></subdir></container>"
    );
    let r = s.req("GET", "/c?format=xml&delimiter=/", &[], "").await;
    let t = r.text();
    assert!(
        t.contains("<subdir name=\"b/\"><name>b/</name></subdir>"),
        "{t}"
    );
    assert!(t.contains("<object><name>a</name>"), "{t}");
    assert!(t.contains("<object><name>c</name>"), "{t}");
}

#[tokio::test]
async fn marker_and_end_marker_bound_the_listing() {
    let (_srv, s) = setup().await;
    assert_eq!(plain(&s, "/c?marker=b/1").await, "b/2\nc\nd/x/y\n");
    assert_eq!(plain(&s, "/c?marker=b").await, "b/1\nb/2\nc\nd/x/y\n");
    assert_eq!(plain(&s, "/c?end_marker=c").await, "a\nb/1\nb/2\n");
    assert_eq!(plain(&s, "/c?marker=a&end_marker=c").await, "b/1\nb/2\n");
    let r = s.req("GET", "/c?marker=d/x/y", &[], "").await;
    assert_status(&r, 204, "marker past the end");
    let r = s.req("GET", "/c?marker=a&end_marker=a", &[], "").await;
    assert_status(&r, 204, "empty window");
}

#[tokio::test]
async fn limit_caps_the_count_and_pages_with_marker() {
    let (_srv, s) = setup().await;
    assert_eq!(plain(&s, "/c?limit=2").await, "a\nb/1\n");
    assert_eq!(plain(&s, "/c?limit=2&marker=b/1").await, "b/2\nc\n");
    assert_eq!(plain(&s, "/c?limit=2&marker=c").await, "d/x/y\n");
    let j = s.req("GET", "/c?format=json&limit=1", &[], "").await.json();
    assert_eq!(names(&j), ["a"]);
    assert_eq!(plain(&s, "/c?limit=10000").await, "a\nb/1\nb/2\nc\nd/x/y\n");
}

#[tokio::test]
async fn limit_above_10000_is_412() {
    let (_srv, s) = setup().await;
    let r = s.req("GET", "/c?limit=10001", &[], "").await;
    assert_status(&r, 412, "container limit=10001");
    assert_eq!(r.text(), "Maximum limit is 10000");
    let r = s.req("GET", "?limit=10001", &[], "").await;
    assert_status(&r, 412, "account limit=10001");
    assert_eq!(r.text(), "Maximum limit is 10000");
}

#[tokio::test]
async fn reverse_true_lists_backwards() {
    let (_srv, s) = setup().await;
    assert_eq!(
        plain(&s, "/c?reverse=true").await,
        "d/x/y\nc\nb/2\nb/1\na\n"
    );
    assert_eq!(plain(&s, "/c?reverse=true&marker=c").await, "b/2\nb/1\na\n");
    assert_eq!(
        plain(&s, "/c?reverse=true&end_marker=b/2").await,
        "d/x/y\nc\n"
    );
    assert_eq!(plain(&s, "/c?reverse=true&limit=2").await, "d/x/y\nc\n");
    assert_eq!(
        plain(&s, "/c?reverse=true&delimiter=/").await,
        "d/\nc\nb/\na\n"
    );
    assert_eq!(plain(&s, "/c?reverse=true&prefix=b/").await, "b/2\nb/1\n");
    let j = s
        .req("GET", "/c?reverse=on&format=json", &[], "")
        .await
        .json();
    assert_eq!(names(&j), ["d/x/y", "c", "b/2", "b/1", "a"]);
    assert_eq!(
        plain(&s, "/c?reverse=false").await,
        "a\nb/1\nb/2\nc\nd/x/y\n"
    );
}

#[tokio::test]
async fn unicode_names_list_in_every_format() {
    let server = Server::start();
    let s = Session::new(&server, "test:tester", "testing").await;
    mk_container(&s, "u").await;
    mk_object(&s, "/u/caf%C3%A9", b"x", &[]).await;
    mk_object(&s, "/u/%E2%98%83", b"y", &[]).await;
    assert_eq!(plain(&s, "/u").await, "caf\u{e9}\n\u{2603}\n");
    let j = s.req("GET", "/u?format=json", &[], "").await.json();
    assert_eq!(names(&j), ["caf\u{e9}", "\u{2603}"]);
    let x = s.req("GET", "/u?format=xml", &[], "").await.text();
    assert!(x.contains("<name>caf\u{e9}</name>"), "{x}");
    assert_eq!(plain(&s, "/u?prefix=caf%C3%A9").await, "caf\u{e9}\n");
}

// ---- empty listings --------------------------------------------------------------------

#[tokio::test]
async fn empty_container_is_204_plain_and_empty_json_array() {
    let server = Server::start();
    let s = Session::new(&server, "test:tester", "testing").await;
    mk_container(&s, "empty").await;
    let r = s.req("GET", "/empty", &[], "").await;
    assert_status(&r, 204, "empty plain listing");
    assert!(r.body.is_empty());
    assert_eq!(r.header("x-container-object-count"), "0");
    let r = s.req("GET", "/empty?format=json", &[], "").await;
    assert_status(&r, 200, "empty JSON listing");
    assert_eq!(r.text(), "[]");
    assert_eq!(r.header("content-type"), "application/json; charset=utf-8");
    let r = s.req("GET", "/empty?format=xml", &[], "").await;
    assert_status(&r, 200, "empty XML listing");
    // ElementTree writes an empty element as `<container name="empty" />`;
    // the long form is the same document.
    let t = r.text();
    assert!(
        t == "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<container name=\"empty\" />"
            || t == "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<container name=\"empty\"></container>",
        "{t:?}"
    );
}

#[tokio::test]
async fn empty_account_is_204_plain_and_empty_json_array() {
    let server = Server::start();
    let s = Session::new(&server, "test:tester", "testing").await;
    let r = s.req("GET", "", &[], "").await;
    assert_status(&r, 204, "empty account plain listing");
    assert!(r.body.is_empty());
    assert_eq!(r.header("x-account-container-count"), "0");
    let r = s.req("GET", "?format=json", &[], "").await;
    assert_status(&r, 200, "empty account JSON listing");
    assert_eq!(r.text(), "[]");
}

// ---- account listings --------------------------------------------------------------------

async fn account_setup() -> (Server, Session) {
    let server = Server::start();
    let s = Session::new(&server, "test:tester", "testing").await;
    for c in ["alpha", "beta", "beta-2", "gamma"] {
        mk_container(&s, c).await;
    }
    mk_object(&s, "/beta/o1", b"12345", &[]).await;
    mk_object(&s, "/beta/o2", b"123", &[]).await;
    (server, s)
}

#[tokio::test]
async fn account_listing_plain_json_and_xml() {
    let (_srv, s) = account_setup().await;
    let r = s.req("GET", "", &[], "").await;
    assert_status(&r, 200, "account plain");
    assert_eq!(r.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(r.text(), "alpha\nbeta\nbeta-2\ngamma\n");

    let r = s.req("GET", "?format=json", &[], "").await;
    assert_status(&r, 200, "account json");
    assert_eq!(r.header("content-type"), "application/json; charset=utf-8");
    let v = r.json();
    assert_eq!(names(&v), ["alpha", "beta", "beta-2", "gamma"]);
    let beta = &v[1];
    assert_eq!(beta["count"], 2);
    assert_eq!(beta["bytes"], 8);
    assert_eq!(v[0]["count"], 0);
    assert_eq!(v[0]["bytes"], 0);
    for e in v.as_array().expect("array") {
        let lm = e["last_modified"].as_str().expect("last_modified");
        assert!(is_isoformat(lm), "last_modified {lm:?}");
        // swift/account/utils.py adds the policy name of each container.
        assert_eq!(e["storage_policy"], "Policy-0", "{e}");
    }

    let r = s.req("GET", "?format=xml", &[], "").await;
    assert_status(&r, 200, "account xml");
    assert_eq!(r.header("content-type"), "application/xml; charset=utf-8");
    let mut want =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<account name=\"AUTH_test\">\n");
    for e in v.as_array().expect("array") {
        want.push_str(&format!(
            "<container><name>{}</name><count>{}</count><bytes>{}</bytes><last_modified>{}</last_modified><storage_policy>{}</storage_policy></container>\n",
            e["name"].as_str().unwrap_or(""),
            e["count"],
            e["bytes"],
            e["last_modified"].as_str().unwrap_or(""),
            e["storage_policy"].as_str().unwrap_or(""),
        ));
    }
    want.push_str("</account>");
    // Swift puts a newline between the elements of an account document; compare
    // without that insignificant whitespace.
    assert_eq!(r.text().replace('\n', ""), want.replace('\n', ""));
}

#[tokio::test]
async fn account_listing_prefix_marker_end_marker_limit_reverse_delimiter() {
    let (_srv, s) = account_setup().await;
    assert_eq!(plain(&s, "?prefix=beta").await, "beta\nbeta-2\n");
    assert_eq!(plain(&s, "?marker=beta").await, "beta-2\ngamma\n");
    assert_eq!(plain(&s, "?end_marker=beta-2").await, "alpha\nbeta\n");
    assert_eq!(plain(&s, "?limit=1&marker=alpha").await, "beta\n");
    assert_eq!(
        plain(&s, "?reverse=true").await,
        "gamma\nbeta-2\nbeta\nalpha\n"
    );
    assert_eq!(
        plain(&s, "?delimiter=-").await,
        "alpha\nbeta\nbeta-\ngamma\n"
    );
    let j = s
        .req("GET", "?format=json&delimiter=-", &[], "")
        .await
        .json();
    assert_eq!(names(&j), ["alpha", "beta", "subdir:beta-", "gamma"]);
}
