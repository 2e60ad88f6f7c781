//! CORS from container metadata: pre-flight and headers on actual requests.

use tests::{Http, Server, Session};

#[tokio::test]
async fn cors_follows_the_containers_allow_origin() {
    let server = Server::start();
    let s = Session::new(&server, "test:tester", "testing").await;
    let r = s
        .req(
            "PUT",
            "/web",
            &[(
                "x-container-meta-access-control-allow-origin",
                "http://ok.example",
            )],
            "",
        )
        .await;
    assert_eq!(r.status, 201);
    let put = s
        .req(
            "PUT",
            "/web/page",
            &[("x-object-meta-color", "red"), ("content-length", "2")],
            "hi",
        )
        .await;
    assert_eq!(put.status, 201);
    let http = Http::new();
    let url = format!("{}/web/page", s.url);
    let pre = |origin: &'static str| {
        let http = http.clone();
        let url = url.clone();
        async move {
            http.req(
                hyper::Method::OPTIONS,
                &url,
                &[("origin", origin), ("access-control-request-method", "GET")],
                "",
            )
            .await
        }
    };
    let ok = pre("http://ok.example").await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        "http://ok.example"
    );
    assert!(ok.header("access-control-allow-methods").contains("GET"));
    assert_eq!(pre("http://evil.example").await.status, 401);
    // Actual requests: allowed origins get the headers, others none (strict mode).
    let get = s
        .req("GET", "/web/page", &[("origin", "http://ok.example")], "")
        .await;
    assert_eq!(get.status, 200);
    assert_eq!(
        get.header("access-control-allow-origin"),
        "http://ok.example"
    );
    assert!(get
        .header("access-control-expose-headers")
        .split(", ")
        .any(|h| h == "x-object-meta-color"));
    let get = s
        .req("GET", "/web/page", &[("origin", "http://evil.example")], "")
        .await;
    assert_eq!(get.status, 200);
    assert_eq!(get.header("access-control-allow-origin"), "");
}
