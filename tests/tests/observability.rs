//! /metrics in Prometheus text format, /healthcheck, and `--help` on every binary.

use std::process::Command;

use tests::{bin, Server, Session};

#[tokio::test]
async fn metrics_count_requests_by_method_and_status_and_bytes() {
    let server = Server::start();
    let s = Session::new(&server, "test:tester", "testing").await;
    assert_eq!(s.req("PUT", "/m", &[], "").await.status, 201);
    assert_eq!(s.req("PUT", "/m/o", &[], "12345").await.status, 201);
    assert_eq!(s.req("GET", "/m/o", &[], "").await.status, 200);
    assert_eq!(s.req("GET", "/m/missing", &[], "").await.status, 404);
    let m = s
        .http
        .req(
            hyper::Method::GET,
            &format!("{}/metrics", server.url),
            &[],
            "",
        )
        .await;
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").starts_with("text/plain"));
    let text = m.text();
    assert!(
        text.contains("# TYPE zerocloud_requests_total counter"),
        "{text}"
    );
    assert!(
        text.contains(r#"zerocloud_requests_total{method="PUT",status="201"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"zerocloud_requests_total{method="GET",status="404"} 1"#),
        "{text}"
    );
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    assert!(value("zerocloud_request_bytes_total") >= 5.0);
    assert!(value("zerocloud_response_bytes_total") >= 5.0);
    // Every request so far (login included) is in the histogram.
    assert!(value("zerocloud_request_duration_seconds_count") >= 5.0);
    assert!(text.contains(r#"zerocloud_request_duration_seconds_bucket{le="+Inf"}"#));
}

#[tokio::test]
async fn healthcheck_says_ok() {
    let server = Server::start();
    let r = tests::Http::new()
        .req(
            hyper::Method::GET,
            &format!("{}/healthcheck", server.url),
            &[],
            "",
        )
        .await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
}

#[test]
fn every_binary_has_help_with_an_example() {
    for (name, args) in [
        ("zerocloud", vec!["--help"]),
        ("zerocloud", vec!["up", "--help"]),
        ("zerocloud", vec!["proxy", "--help"]),
        ("object-server", vec!["--help"]),
    ] {
        let out = Command::new(bin(name)).args(&args).output().expect("run");
        assert!(out.status.success(), "{name} {args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage:"), "{name} {args:?}: {text}");
    }
    let out = Command::new(bin("zerocloud"))
        .arg("--help")
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("zerocloud up"));
}

#[test]
fn proxy_without_object_servers_fails_with_a_clear_message() {
    let out = Command::new(bin("zerocloud"))
        .args(["proxy", "--bind", "127.0.0.1:0"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--object-server"));
}
