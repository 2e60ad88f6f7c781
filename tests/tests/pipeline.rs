//! The proxy's pipeline as a user and an operator see it: every backend request
//! of a client request carries its trans-id (spawned ones too), the log is
//! plain text with millisecond figures, `up` drains both servers on Ctrl-C, and
//! start-up errors name what is wrong.

use std::io::{Read, Write};
use std::process::Command;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use tests::{bin, Server, Session};

/// Every log line received within `wait`.
fn drain(rx: &Receiver<String>, wait: Duration) -> Vec<String> {
    let deadline = Instant::now() + wait;
    let mut out = vec![];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) => out.push(l),
            Err(_) => break,
        }
    }
    out
}

#[tokio::test]
async fn dlo_segment_reads_carry_the_client_trans_id() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, rx) = Server::start_logging(&tmp.path().join("data"), &[("RUST_LOG", "debug")]);
    let s = Session::new(&server, "test:tester", "testing").await;
    assert_eq!(s.req("PUT", "/segs", &[], "").await.status, 201);
    for (i, part) in ["aaa", "bbb", "ccc"].iter().enumerate() {
        let r = s.req("PUT", &format!("/segs/big/{i:03}"), &[], *part).await;
        assert_eq!(r.status, 201);
    }
    let r = s
        .req(
            "PUT",
            "/segs/big",
            &[("x-object-manifest", "segs/big/"), ("content-length", "0")],
            "",
        )
        .await;
    assert_eq!(r.status, 201);
    let r = s.req("GET", "/segs/big", &[], "").await;
    assert_eq!((r.status, r.text().as_str()), (200, "aaabbbccc"));
    let tx = r.header("x-trans-id").to_string();
    assert!(tx.starts_with("tx"), "{tx}");
    let log = drain(&rx, Duration::from_secs(2));
    // The storage node logs each request it serves under the trans-id it got.
    for i in 0..3 {
        let seg = format!("/o/AUTH_test/segs/big%2F{i:03}");
        let line = log
            .iter()
            .find(|l| l.contains(&seg) && l.contains("GET"))
            .unwrap_or_else(|| panic!("no node log line for {seg}:\n{}", log.join("\n")));
        assert!(
            line.contains(&tx),
            "segment read without the client's trans-id {tx}: {line}"
        );
    }
}

#[tokio::test]
async fn the_log_is_plain_text_with_milliseconds_to_three_decimals() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, rx) = Server::start_logging(&tmp.path().join("data"), &[]);
    let s = Session::new(&server, "test:tester", "testing").await;
    assert_eq!(s.req("PUT", "/logc", &[], "").await.status, 201);
    let log = drain(&rx, Duration::from_secs(1));
    let done = log
        .iter()
        .find(|l| l.contains("done") && l.contains("/v1/AUTH_test/logc"))
        .unwrap_or_else(|| panic!("no request line:\n{}", log.join("\n")));
    assert!(
        !done.contains('\u{1b}'),
        "ANSI escapes in a redirected log: {done:?}"
    );
    let ms = done
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ms="))
        .unwrap_or_else(|| panic!("no ms= field: {done}"));
    let decimals = ms.split_once('.').map(|(_, d)| d.len());
    assert_eq!(decimals, Some(3), "ms={ms}");
}

/// A raw upload whose body is sent in two halves, the second after `between`.
fn slow_put(url: &str, token: &str, path: &str, between: impl FnOnce()) -> String {
    let hostport = url.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(hostport).unwrap();
    write!(
        c,
        "PUT {path} HTTP/1.1\r\nHost: {hostport}\r\nX-Auth-Token: {token}\r\nContent-Length: 10\r\nConnection: close\r\n\r\nfirst"
    )
    .unwrap();
    c.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    between();
    c.write_all(b"-half").unwrap();
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    out
}

#[tokio::test]
async fn ctrl_c_lets_an_open_upload_finish_then_stops_both_servers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (mut server, rx) = Server::start_logging(&data, &[]);
    let s = Session::new(&server, "test:tester", "testing").await;
    assert_eq!(s.req("PUT", "/drain", &[], "").await.status, 201);
    let (url, token) = (server.url.clone(), s.token.clone());
    // Blocking I/O on the test's own thread: the server is another process.
    let reply = slow_put(&url, &token, "/v1/AUTH_test/drain/o", || {
        server.signal("INT")
    });
    assert!(
        reply.starts_with("HTTP/1.1 201"),
        "the open upload was cut: {reply}"
    );
    let exit = server
        .wait_exit(Duration::from_secs(15))
        .expect("stops after the drain");
    assert!(exit.success(), "{exit:?}");
    let log = drain(&rx, Duration::from_millis(500)).join("\n");
    assert!(
        log.contains("shutting down: finishing open requests"),
        "{log}"
    );
    assert!(log.contains("Ctrl-C again stops at once"), "{log}");
    assert!(log.contains("zerocloud: stopped"), "{log}");
    // The storage node served the upload to its end: the object is whole.
    let again = Server::start_at(&data, &[]);
    let s = Session::new(&again, "test:tester", "testing").await;
    let r = s.req("GET", "/drain/o", &[], "").await;
    assert_eq!((r.status, r.text().as_str()), (200, "first-half"));
}

#[tokio::test]
async fn a_second_ctrl_c_stops_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut server, _rx) = Server::start_logging(&tmp.path().join("data"), &[]);
    let s = Session::new(&server, "test:tester", "testing").await;
    assert_eq!(s.req("PUT", "/held", &[], "").await.status, 201);
    // An upload that never finishes holds the drain open.
    let hostport = server.url.trim_start_matches("http://").to_string();
    let mut c = std::net::TcpStream::connect(&hostport).unwrap();
    write!(
        c,
        "PUT /v1/AUTH_test/held/o HTTP/1.1\r\nHost: {hostport}\r\nX-Auth-Token: {}\r\nContent-Length: 100\r\n\r\npart",
        s.token
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    server.signal("INT");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        server.wait_exit(Duration::from_millis(100)).is_none(),
        "still draining"
    );
    server.signal("INT");
    let exit = server
        .wait_exit(Duration::from_secs(5))
        .expect("the second Ctrl-C stops it");
    assert_eq!(exit.code(), Some(130));
}

/// `zerocloud <args>` run in `cwd`; (exit code, stderr).
fn run_in(cwd: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(bin("zerocloud"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn start_up_errors_name_the_file_address_or_path_and_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let (code, err) = run_in(cwd, &["up", "--no-image-install", "--config", "nope.toml"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("nope.toml") && err.contains("--config"),
        "{err}"
    );

    let (code, err) = run_in(
        cwd,
        &["up", "--no-image-install", "--bind", "localhost:port"],
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("localhost:port") && err.contains("--bind"),
        "{err}"
    );

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let (code, err) = run_in(cwd, &["up", "--no-image-install", "--bind", &addr]);
    assert_eq!(code, Some(1));
    assert!(err.contains(&addr) && err.contains("--bind"), "{err}");

    std::fs::write(cwd.join("a-file"), "x").unwrap();
    let (code, err) = run_in(
        cwd,
        &[
            "up",
            "--no-image-install",
            "--bind",
            "127.0.0.1:0",
            "--data-dir",
            "a-file/data",
        ],
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("a-file/data") && err.contains("--data-dir"),
        "{err}"
    );
    // None of the failed starts left the default data dir behind.
    assert!(!cwd.join("zerocloud-data").exists());
}

#[test]
fn version_names_zerocloud() {
    let out = Command::new(bin("zerocloud"))
        .arg("--version")
        .output()
        .unwrap();
    let v = String::from_utf8_lossy(&out.stdout);
    assert!(v.starts_with("zerocloud "), "{v}");
}
