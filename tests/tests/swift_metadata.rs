//! User metadata of accounts, containers and objects: round trips, removal, and
//! the limits of swift/common/constraints.py `check_metadata` (and, for accounts
//! and containers, of swift/common/db.py `validate_metadata` over the stored set).

mod common;

use common::{assert_status, host_port, mk_container, mk_object, raw_head_bytes, raw_request};
use tests::{Resp, Server, Session};

async fn setup() -> (Server, Session) {
    let server = Server::start();
    let s = Session::new(&server, "test:tester", "testing").await;
    mk_container(&s, "c").await;
    mk_object(&s, "/c/o", b"data", &[]).await;
    (server, s)
}

/// Python's `bytes.title()` of an ASCII header-name remainder, as swob's
/// HeaderEnvironProxy.keys() produces it (`abc-def` → `Abc-Def`, `a1b` → `A1B`).
fn py_title(s: &str) -> String {
    let mut out = String::new();
    let mut prev_alpha = false;
    for c in s.chars() {
        if c.is_ascii_alphabetic() {
            out.push(if prev_alpha {
                c.to_ascii_lowercase()
            } else {
                c.to_ascii_uppercase()
            });
            prev_alpha = true;
        } else {
            out.push(c);
            prev_alpha = false;
        }
    }
    out
}

/// One way to send metadata of a kind: (method, path).
fn targets(kind: &str) -> Vec<(&'static str, &'static str)> {
    match kind {
        "object" => vec![("PUT", "/c/new"), ("POST", "/c/o")],
        "container" => vec![("PUT", "/c2"), ("POST", "/c")],
        "account" => vec![("POST", "")],
        _ => unreachable!(),
    }
}

async fn send(s: &Session, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut h = headers.to_vec();
    if method == "PUT" && path.starts_with("/c/") {
        h.push(("Content-Length", "0"));
    }
    s.req(method, path, &h, "").await
}

#[track_caller]
fn assert_ok(r: &Resp, what: &str) {
    assert!(
        matches!(r.status, 201 | 202 | 204),
        "{what}: got {} {:?}",
        r.status,
        r.text()
    );
}

/// A 400 whose body is `want`, letting the case of the `x-<kind>-meta-` prefix
/// differ (see metadata_error_names_use_swifts_lowercase_prefix for the exact case).
#[track_caller]
fn assert_400_body(r: &Resp, want: &str, what: &str) {
    assert_status(r, 400, what);
    assert_eq!(r.header("content-type"), "text/plain", "{what}");
    assert_eq!(
        r.text().to_ascii_lowercase(),
        want.to_ascii_lowercase(),
        "{what}"
    );
    // The name after the prefix is title-cased exactly as swob does it.
    let tail = want.rsplit_once("-meta-").map(|(_, t)| t).unwrap_or(want);
    assert!(
        r.text().ends_with(tail),
        "{what}: {:?} must end with {tail:?}",
        r.text()
    );
}

// ---- round trips ----------------------------------------------------------------

#[tokio::test]
async fn account_meta_round_trips_and_x_remove_account_meta_removes_it() {
    let (_srv, s) = setup().await;
    let r = s
        .req(
            "POST",
            "",
            &[
                ("X-Account-Meta-Color", "blue"),
                ("X-Account-Meta-Size", "big one"),
            ],
            "",
        )
        .await;
    assert_status(&r, 204, "POST account meta");
    for m in ["HEAD", "GET"] {
        let r = s.req(m, "", &[], "").await;
        assert_eq!(r.header("x-account-meta-color"), "blue", "{m}");
        assert_eq!(r.header("x-account-meta-size"), "big one", "{m}");
    }
    let r = s
        .req("POST", "", &[("X-Remove-Account-Meta-Color", "x")], "")
        .await;
    assert_status(&r, 204, "POST X-Remove-Account-Meta-Color");
    let r = s.req("HEAD", "", &[], "").await;
    assert!(r.headers.get("x-account-meta-color").is_none(), "removed");
    assert_eq!(r.header("x-account-meta-size"), "big one", "others stay");
    // An empty value removes too.
    let r = s.req("POST", "", &[("X-Account-Meta-Size", "")], "").await;
    assert_status(&r, 204, "POST empty value");
    let r = s.req("HEAD", "", &[], "").await;
    assert!(
        r.headers.get("x-account-meta-size").is_none(),
        "removed by empty value"
    );
}

#[tokio::test]
async fn container_meta_round_trips_and_x_remove_container_meta_removes_it() {
    let (_srv, s) = setup().await;
    let r = s
        .req("PUT", "/m", &[("X-Container-Meta-Color", "red")], "")
        .await;
    assert_status(&r, 201, "PUT with meta");
    let r = s
        .req("POST", "/m", &[("X-Container-Meta-Shape", "square")], "")
        .await;
    assert_status(&r, 204, "POST meta");
    for m in ["HEAD", "GET"] {
        let r = s.req(m, "/m", &[], "").await;
        assert_eq!(
            r.header("x-container-meta-color"),
            "red",
            "{m}: POST merges"
        );
        assert_eq!(r.header("x-container-meta-shape"), "square", "{m}");
    }
    let r = s
        .req("POST", "/m", &[("X-Container-Meta-Color", "green")], "")
        .await;
    assert_status(&r, 204, "POST overwrite");
    assert_eq!(
        s.req("HEAD", "/m", &[], "")
            .await
            .header("x-container-meta-color"),
        "green"
    );
    let r = s
        .req("POST", "/m", &[("X-Remove-Container-Meta-Color", "1")], "")
        .await;
    assert_status(&r, 204, "POST X-Remove-Container-Meta-Color");
    let r = s.req("HEAD", "/m", &[], "").await;
    assert!(r.headers.get("x-container-meta-color").is_none(), "removed");
    assert_eq!(r.header("x-container-meta-shape"), "square");
    // PUT on an existing container updates metadata too (202).
    let r = s
        .req("PUT", "/m", &[("X-Container-Meta-Shape", "round")], "")
        .await;
    assert_status(&r, 202, "PUT existing with meta");
    assert_eq!(
        s.req("HEAD", "/m", &[], "")
            .await
            .header("x-container-meta-shape"),
        "round"
    );
}

#[tokio::test]
async fn object_meta_round_trips_on_get_and_head() {
    let (_srv, s) = setup().await;
    mk_object(
        &s,
        "/c/m",
        b"x",
        &[
            ("X-Object-Meta-Color", "blue"),
            ("X-Object-Meta-Two-Words", "hello world"),
            ("X-Object-Meta-Empty-ish", " padded "),
        ],
    )
    .await;
    for m in ["GET", "HEAD"] {
        let r = s.req(m, "/c/m", &[], "").await;
        assert_eq!(r.header("x-object-meta-color"), "blue", "{m}");
        assert_eq!(r.header("x-object-meta-two-words"), "hello world", "{m}");
        assert_eq!(r.header("x-object-meta-empty-ish"), "padded", "{m}");
    }
    // Overwriting the object replaces its metadata.
    mk_object(&s, "/c/m", b"y", &[("X-Object-Meta-Other", "1")]).await;
    let r = s.req("HEAD", "/c/m", &[], "").await;
    assert_eq!(r.header("x-object-meta-other"), "1");
    assert!(r.headers.get("x-object-meta-color").is_none());
}

#[tokio::test]
async fn utf8_meta_values_round_trip_byte_for_byte() {
    let (_srv, s) = setup().await;
    let v = "caf\u{e9} \u{2603}";
    let r = s
        .req("POST", "/c", &[("X-Container-Meta-Uni", v)], "")
        .await;
    assert_status(&r, 204, "POST container UTF-8 meta");
    let r = s.req("HEAD", "/c", &[], "").await;
    assert_eq!(r.headers["x-container-meta-uni"].as_bytes(), v.as_bytes());
    mk_object(&s, "/c/u", b"x", &[("X-Object-Meta-Uni", v)]).await;
    let r = s.req("HEAD", "/c/u", &[], "").await;
    assert_eq!(r.headers["x-object-meta-uni"].as_bytes(), v.as_bytes());
}

#[tokio::test]
async fn invalid_utf8_in_container_or_account_meta_is_400() {
    let (_srv, s) = setup().await;
    let addr = host_port(&s.url);
    for (path, name) in [("/c", "X-Container-Meta-Bad"), ("", "X-Account-Meta-Bad")] {
        // 0xFF is never valid UTF-8.
        let req = raw_head_bytes(&s, "POST", path, &[(name, b"a\xffb")]);
        let r = raw_request(&addr, &req).await;
        assert_eq!(r.status, 400, "POST {path:?}: {:?}", r.text());
        assert_eq!(r.text(), "Metadata must be valid UTF-8");
        let h = s.req("HEAD", path, &[], "").await;
        assert!(h.headers.get(name.to_ascii_lowercase().as_str()).is_none());
    }
}

// ---- limits -------------------------------------------------------------------------

#[tokio::test]
async fn meta_name_of_128_is_ok_and_129_is_400() {
    let (_srv, s) = setup().await;
    for kind in ["object", "container", "account"] {
        for (m, path) in targets(kind) {
            let ok = format!("x-{kind}-meta-{}", "k".repeat(128));
            let r = send(&s, m, path, &[(&ok, "v")]).await;
            assert_ok(&r, &format!("{m} {kind} with a 128-byte name"));
            let long = "k".repeat(129);
            let name = format!("x-{kind}-meta-{long}");
            let r = send(&s, m, path, &[(&name, "v")]).await;
            assert_400_body(
                &r,
                &format!("Metadata name too long: x-{kind}-meta-{}", py_title(&long)),
                &format!("{m} {kind} with a 129-byte name"),
            );
        }
    }
}

#[tokio::test]
async fn meta_value_of_256_is_ok_and_257_is_400() {
    let (_srv, s) = setup().await;
    for kind in ["object", "container", "account"] {
        for (m, path) in targets(kind) {
            let name = format!("x-{kind}-meta-color");
            let r = send(&s, m, path, &[(&name, &"v".repeat(256))]).await;
            assert_ok(&r, &format!("{m} {kind} with a 256-byte value"));
            let r = send(&s, m, path, &[(&name, &"v".repeat(257))]).await;
            assert_400_body(
                &r,
                &format!("Metadata value longer than 256: x-{kind}-meta-Color"),
                &format!("{m} {kind} with a 257-byte value"),
            );
        }
    }
}

#[tokio::test]
async fn meta_count_of_90_is_ok_and_91_is_400() {
    let (_srv, s) = setup().await;
    for kind in ["object", "container", "account"] {
        for (m, path) in targets(kind) {
            let names: Vec<String> = (0..91).map(|i| format!("x-{kind}-meta-k{i}")).collect();
            let h90: Vec<(&str, &str)> = names[..90].iter().map(|n| (n.as_str(), "v")).collect();
            let r = send(&s, m, path, &h90).await;
            assert_ok(&r, &format!("{m} {kind} with 90 items"));
            // Clear the stored items of accounts/containers, which count too.
            if kind != "object" {
                // In slices of 30 (removing_more_than_90_... covers larger ones).
                for start in [0, 30, 60] {
                    let rm: Vec<String> = (start..start + 30)
                        .map(|i| format!("x-remove-{kind}-meta-k{i}"))
                        .collect();
                    let hrm: Vec<(&str, &str)> = rm.iter().map(|n| (n.as_str(), "x")).collect();
                    assert_ok(&send(&s, "POST", path, &hrm).await, "clear");
                }
            }
            let h91: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
            let r = send(&s, m, path, &h91).await;
            assert_400_body(
                &r,
                "Too many metadata items; max 90",
                &format!("{m} {kind} with 91 items"),
            );
        }
    }
}

#[tokio::test]
async fn meta_overall_size_of_4096_is_ok_and_more_is_400() {
    let (_srv, s) = setup().await;
    for kind in ["object", "container", "account"] {
        for (m, path) in targets(kind) {
            // 16 items × (16-byte name + 240-byte value) = 4096 bytes exactly.
            let names: Vec<String> = (0..16).map(|i| format!("x-{kind}-meta-n{i:015}")).collect();
            let value = "v".repeat(240);
            let mut h: Vec<(&str, &str)> =
                names.iter().map(|n| (n.as_str(), value.as_str())).collect();
            let r = send(&s, m, path, &h).await;
            assert_ok(&r, &format!("{m} {kind} with 4096 bytes of meta"));
            if kind != "object" {
                let rm: Vec<String> = names
                    .iter()
                    .map(|n| n.replacen(&format!("x-{kind}-"), &format!("x-remove-{kind}-"), 1))
                    .collect();
                let hrm: Vec<(&str, &str)> = rm.iter().map(|n| (n.as_str(), "x")).collect();
                assert_ok(&send(&s, "POST", path, &hrm).await, "clear");
            }
            let extra = format!("x-{kind}-meta-x");
            h.push((&extra, "y"));
            let r = send(&s, m, path, &h).await;
            assert_400_body(
                &r,
                "Total metadata too large; max 4096",
                &format!("{m} {kind} with 4098 bytes of meta"),
            );
        }
    }
}

#[tokio::test]
async fn rejected_meta_changes_nothing() {
    let (_srv, s) = setup().await;
    let long = "v".repeat(257);
    let r = s
        .req(
            "POST",
            "/c/o",
            &[("X-Object-Meta-Ok", "1"), ("X-Object-Meta-Bad", &long)],
            "",
        )
        .await;
    assert_status(&r, 400, "POST with one bad value");
    let h = s.req("HEAD", "/c/o", &[], "").await;
    assert!(h.headers.get("x-object-meta-ok").is_none());
    let r = s
        .req(
            "POST",
            "/c",
            &[
                ("X-Container-Meta-Ok", "1"),
                ("X-Container-Meta-Bad", &long),
            ],
            "",
        )
        .await;
    assert_status(&r, 400, "container POST with one bad value");
    let h = s.req("HEAD", "/c", &[], "").await;
    assert!(h.headers.get("x-container-meta-ok").is_none());
    let r = s
        .req(
            "PUT",
            "/c/rejected",
            &[("X-Object-Meta-Bad", &long)],
            "body",
        )
        .await;
    assert_status(&r, 400, "PUT with a bad value");
    assert_status(
        &s.req("GET", "/c/rejected", &[], "").await,
        404,
        "PUT stored nothing",
    );
}

/// Stored account/container metadata counts toward the limits
/// (swift/common/db.py `validate_metadata`): two POSTs of 50 items each make 100.
#[tokio::test]
async fn container_and_account_meta_limits_count_stored_items() {
    let (_srv, s) = setup().await;
    for (kind, path) in [("container", "/c"), ("account", "")] {
        let first: Vec<String> = (0..50).map(|i| format!("x-{kind}-meta-a{i}")).collect();
        let second: Vec<String> = (0..50).map(|i| format!("x-{kind}-meta-b{i}")).collect();
        let h1: Vec<(&str, &str)> = first.iter().map(|n| (n.as_str(), "v")).collect();
        let h2: Vec<(&str, &str)> = second.iter().map(|n| (n.as_str(), "v")).collect();
        assert_status(&s.req("POST", path, &h1, "").await, 204, "first 50");
        let r = s.req("POST", path, &h2, "").await;
        assert_status(&r, 400, &format!("{kind}: 100 stored items"));
        assert_eq!(r.text(), "Too many metadata items; max 90");
        let h = s.req("HEAD", path, &[], "").await;
        assert!(h
            .headers
            .get(format!("x-{kind}-meta-b0").as_str())
            .is_none());
        assert_eq!(h.header(&format!("x-{kind}-meta-a0")), "v");
    }
}

/// check_metadata only counts `x-<kind>-meta-*` request headers; X-Remove-* headers
/// become empty values later (proxy/controllers/base.py `transfer_headers`), so
/// removing 95 items in one request is fine. (95 keeps the request under 100
/// header lines; Swift takes up to MAX_HEADER_COUNT × 1.6 = 201.)
#[tokio::test]
async fn removing_more_than_90_meta_items_in_one_request_is_allowed() {
    let (_srv, s) = setup().await;
    for (kind, path) in [("container", "/c"), ("account", "")] {
        let set: Vec<String> = (0..60).map(|i| format!("x-{kind}-meta-k{i}")).collect();
        let hs: Vec<(&str, &str)> = set.iter().map(|n| (n.as_str(), "v")).collect();
        assert_status(&s.req("POST", path, &hs, "").await, 204, "set 60");
        let rm: Vec<String> = (0..95)
            .map(|i| format!("x-remove-{kind}-meta-k{i}"))
            .collect();
        let hr: Vec<(&str, &str)> = rm.iter().map(|n| (n.as_str(), "x")).collect();
        let r = s.req("POST", path, &hr, "").await;
        assert_status(&r, 204, &format!("{kind}: remove 95 items at once"));
        let h = s.req("HEAD", path, &[], "").await;
        assert!(h
            .headers
            .get(format!("x-{kind}-meta-k0").as_str())
            .is_none());
        assert!(h
            .headers
            .get(format!("x-{kind}-meta-k59").as_str())
            .is_none());
    }
}

/// The proxy must not turn one client request into a backend request the storage
/// refuses: removing 50 items is 50 request headers, well within Swift's limits.
#[tokio::test]
async fn removing_50_meta_items_in_one_request_works() {
    let (_srv, s) = setup().await;
    for (kind, path) in [("container", "/c"), ("account", "")] {
        let set: Vec<String> = (0..50).map(|i| format!("x-{kind}-meta-k{i}")).collect();
        let hs: Vec<(&str, &str)> = set.iter().map(|n| (n.as_str(), "v")).collect();
        assert_status(&s.req("POST", path, &hs, "").await, 204, "set 50");
        let rm: Vec<String> = (0..50)
            .map(|i| format!("x-remove-{kind}-meta-k{i}"))
            .collect();
        let hr: Vec<(&str, &str)> = rm.iter().map(|n| (n.as_str(), "x")).collect();
        let r = s.req("POST", path, &hr, "").await;
        assert_status(&r, 204, &format!("{kind}: remove 50 items at once"));
        let h = s.req("HEAD", path, &[], "").await;
        assert!(h
            .headers
            .get(format!("x-{kind}-meta-k0").as_str())
            .is_none());
        assert!(h
            .headers
            .get(format!("x-{kind}-meta-k49").as_str())
            .is_none());
    }
}

/// swift/common/bufferedhttp.py raises the header-count limit to
/// MAX_HEADER_COUNT × 1.6 (≈201) "so the app is more likely to get the chance to
/// reject with a 400 instead" of a 431.
#[tokio::test]
async fn far_too_many_meta_items_is_400_not_431() {
    let (_srv, s) = setup().await;
    let names: Vec<String> = (0..120).map(|i| format!("x-object-meta-k{i}")).collect();
    let h: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let r = s.req("POST", "/c/o", &h, "").await;
    assert_status(&r, 400, "POST with 120 meta items");
    assert_eq!(r.text(), "Too many metadata items; max 90");
}

/// constraints.check_metadata formats `'%s%s' % (prefix, key)` with the lower-case
/// `prefix = 'x-%s-meta-'` and `key` from swob's title-cased header names, so the
/// body reads `Metadata name too long: x-object-meta-Nnnn…`.
#[tokio::test]
async fn metadata_error_names_use_swifts_lowercase_prefix() {
    let (_srv, s) = setup().await;
    let long = "n".repeat(129);
    let r = s
        .req(
            "POST",
            "/c/o",
            &[(&format!("X-Object-Meta-{long}"), "v")],
            "",
        )
        .await;
    assert_status(&r, 400, "name too long");
    assert_eq!(
        r.text(),
        format!("Metadata name too long: x-object-meta-N{}", "n".repeat(128))
    );
    let r = s
        .req(
            "POST",
            "/c",
            &[("X-Container-Meta-Color", &"v".repeat(257))],
            "",
        )
        .await;
    assert_status(&r, 400, "value too long");
    assert_eq!(
        r.text(),
        "Metadata value longer than 256: x-container-meta-Color"
    );
}
