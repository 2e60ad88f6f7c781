//! `zerocloud proxy --swift-proxy URL` in front of a real OpenStack Swift
//! (the all-in-one peer of ../shared/tools, started on free ports in a
//! temporary home): plain Swift requests pass through unchanged, streaming
//! both ways, with Swift's own auth; without agents, ZeroCloud requests are
//! refused (with agents: tests/swift_jobs.rs).

mod common;

use std::process::{Command, Stdio};

use http::Method;
use tests::swift::{tools, SwiftCluster};
use tests::{md5_hex, Http, Server, Session};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A real Swift all-in-one node; stopped (and its tmpfs unmounted) on drop.
struct SwiftPeer {
    home: tempfile::TempDir,
    proxy_port: u16,
}

impl SwiftPeer {
    fn start() -> SwiftPeer {
        let home = tempfile::tempdir().expect("tempdir");
        let proxy_port = free_port();
        let out = Command::new(tools().join("swift-peer-up.sh"))
            .env("SWIFT_PEER_HOME", home.path())
            .env("SWIFT_PEER_PROXY_PORT", proxy_port.to_string())
            .env("SWIFT_PEER_ACCOUNT_PORT", free_port().to_string())
            .env("SWIFT_PEER_CONTAINER_PORT", free_port().to_string())
            .env("SWIFT_PEER_OBJECT_PORT", free_port().to_string())
            .env("SWIFT_PEER_MEMCACHED_PORT", free_port().to_string())
            .output()
            .expect("run swift-peer-up.sh");
        assert!(
            out.status.success(),
            "swift-peer-up.sh failed (scripts/test.sh installs Swift with swift-install.sh):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        SwiftPeer { home, proxy_port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.proxy_port)
    }
}

impl Drop for SwiftPeer {
    fn drop(&mut self) {
        let _ = Command::new(tools().join("swift-peer-down.sh"))
            .env("SWIFT_PEER_HOME", self.home.path())
            .stderr(Stdio::null())
            .status();
    }
}

/// Logs in as test:tester at `auth` (Swift's tempauth, through us).
async fn login(auth: &str) -> Session {
    let http = Http::new();
    let r = http
        .req(
            Method::GET,
            auth,
            &[("x-auth-user", "test:tester"), ("x-auth-key", "testing")],
            Vec::<u8>::new(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    Session {
        http,
        url: r.header("x-storage-url").to_string(),
        token: r.header("x-auth-token").to_string(),
    }
}

#[tokio::test]
async fn plain_swift_requests_pass_through_to_swift() {
    let peer = SwiftPeer::start();
    let front = Server::swift_front(&peer.url());

    // Swift's tempauth answers, and the storage URL it hands out names us.
    let s = login(&front.auth_url()).await;
    assert_eq!(s.url, format!("{}/v1/AUTH_test", front.url));

    let r = s.req("PUT", "/c", &[], "").await;
    assert_eq!(r.status, 201, "{}", r.text());
    // Swift's trans-id comes back, with ours appended to it.
    assert!(r.header("x-trans-id").starts_with("tx"), "{:?}", r.headers);
    assert!(
        r.header("x-trans-id").matches("tx").count() >= 2,
        "{:?}",
        r.headers
    );

    // Bytes up and down unchanged (streamed; 8 MiB).
    let big: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let r = s.req("PUT", "/c/big", &[], big.clone()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("etag"), md5_hex(&big));
    let r = s.req("GET", "/c/big", &[], "").await;
    assert_eq!(r.status, 200);
    assert!(r.body == big, "the object came back changed");
    let r = s
        .req("GET", "/c/big", &[("range", "bytes=10-19")], "")
        .await;
    assert_eq!((r.status, &r.body[..]), (206, &big[10..20]));

    // A chunked upload is framed again on the way to Swift; a coding
    // other than chunked is refused as Swift refuses it.
    let host = common::host_port(&front.url);
    let path = common::url_path(&s.url);
    for (te, want) in [("chunked", "201"), ("gzip, chunked", "501")] {
        let mut raw = format!(
            "PUT {path}/c/chunky HTTP/1.1\r\nHost: {host}\r\nX-Auth-Token: {}\r\n\
             Transfer-Encoding: {te}\r\nConnection: close\r\n\r\n",
            s.token
        )
        .into_bytes();
        raw.extend(common::chunked(&[b"hello, ", b"chunks"]));
        let r = common::raw_request(&host, &raw).await;
        assert_eq!(r.status.to_string(), want, "{te}: {}", r.text());
    }
    let r = s.req("GET", "/c/chunky", &[], "").await;
    assert_eq!(r.text(), "hello, chunks");

    // Metadata, listings, HEAD, DELETE: Swift's answers.
    let r = s
        .req("POST", "/c/big", &[("x-object-meta-color", "blue")], "")
        .await;
    assert_eq!(r.status, 202);
    let r = s.req("HEAD", "/c/big", &[], "").await;
    assert_eq!(r.header("x-object-meta-color"), "blue");
    assert_eq!(r.header("content-length"), big.len().to_string());
    let r = s.req("GET", "/c?format=json", &[], "").await;
    assert_eq!(r.json()[0]["name"], "big");
    assert_eq!(r.json()[1]["name"], "chunky");
    let r = s.req("DELETE", "/c/big", &[], "").await;
    assert_eq!(r.status, 204);
    let r = s.req("GET", "/c/big", &[], "").await;
    assert_eq!(r.status, 404);

    // Swift's auth decides: a bad token is refused by Swift.
    let r = s
        .http
        .req(
            Method::GET,
            &s.url,
            &[("x-auth-token", "AUTH_tkbogus")],
            Vec::<u8>::new(),
        )
        .await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate").starts_with("Swift"),
        "{:?}",
        r.headers
    );

    // Swift's unauthenticated locality API stays inside.
    let r = s
        .http
        .req(
            Method::GET,
            &format!("{}/endpoints/AUTH_test/c/chunky", front.url),
            &[],
            Vec::<u8>::new(),
        )
        .await;
    assert_eq!(r.status, 404);

    // Without exec agents configured, jobs get a clear 501, nothing sent on
    // (tests/swift_jobs.rs runs them with agents).
    let t = ("x-auth-token", s.token.as_str());
    for (url, headers) in [
        (s.url.clone(), vec![t, ("x-zerovm-execute", "1.0")]),
        (format!("{}/open/AUTH_test/c/x", front.url), vec![t]),
        (format!("{}/api/AUTH_test/c", front.url), vec![t]),
    ] {
        let r = s
            .http
            .req(Method::POST, &url, &headers, b"print(1)".to_vec())
            .await;
        assert_eq!(r.status, 501, "{url}: {}", r.text());
        assert!(r.text().contains("--swift-agent"), "{}", r.text());
    }
}

#[tokio::test]
async fn a_swift_that_does_not_answer_is_named() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    let front = Server::swift_front(&closed);
    let r = Http::new()
        .req(
            Method::GET,
            &format!("{}/info", front.url),
            &[],
            Vec::<u8>::new(),
        )
        .await;
    assert_eq!(r.status, 502);
    assert!(r.text().contains(&closed), "{}", r.text());
}

/// tests/swift/swift-cluster-up.sh: a real Swift with three object servers
/// (3 replicas) and `list_endpoints`; stopped on drop.
/// In front of three replicas: every object lands on the three object
/// servers (Swift's own locality answer, asked of Swift directly, since we
/// never pass `/endpoints/` on), and with one of them stopped, reads and
/// writes through us still succeed from the others.
#[tokio::test]
async fn one_object_server_down_and_requests_through_us_still_succeed() {
    let cluster = SwiftCluster::start();
    let front = Server::swift_front(&cluster.proxy);
    let s = login(&front.auth_url()).await;
    let r = s.req("PUT", "/c", &[], "").await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = s.req("PUT", "/c/o", &[], b"three copies".to_vec()).await;
    assert_eq!(r.status, 201, "{}", r.text());

    let r = s
        .http
        .req(
            Method::GET,
            &format!("{}/endpoints/v2/AUTH_test/c/o", cluster.proxy),
            &[],
            Vec::<u8>::new(),
        )
        .await;
    let holders = r.json()["endpoints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut servers: Vec<String> = holders
        .iter()
        .filter_map(|e| e.as_str())
        .filter_map(|e| e.strip_prefix("http://"))
        .filter_map(|e| e.split('/').next())
        .map(str::to_string)
        .collect();
    servers.sort();
    servers.dedup();
    assert_eq!(servers.len(), 3, "{}", r.text());

    cluster.object_server("swift-cluster-down.sh", 2);
    let r = s.req("GET", "/c/o", &[], "").await;
    assert_eq!((r.status, r.text().as_str()), (200, "three copies"));
    let r = s.req("PUT", "/c/o2", &[], b"two copies".to_vec()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    cluster.object_server("swift-cluster-up.sh", 2);
    let r = s.req("GET", "/c/o2", &[], "").await;
    assert_eq!((r.status, r.text().as_str()), (200, "two copies"));
}
