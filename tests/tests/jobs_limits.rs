//! Hostile and heavy jobs through HTTP on the embedded server, with small
//! limits from its config: a loop past its timeout, a memory bomb, an
//! output flood past its quota, more jobs than slots, and a client that
//! goes away mid-job. Each gets a clear status, and the server serves on.
//! Needs `$ZEROCLOUD_IMAGES` with the Python image (scripts/test.sh).

mod common;

use std::time::Duration;

use tests::{Server, Session};
use tokio::io::AsyncWriteExt;

/// `zerocloud up` with `config` (TOML) as its `--config`.
async fn up_with(config: &str) -> (Server, Session, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("zerocloud.toml");
    std::fs::write(&file, config).unwrap();
    let server = Server::start_at(
        &tmp.path().join("data"),
        &["--config", file.to_str().unwrap()],
    );
    let s = Session::new(&server, "test:tester", "testing").await;
    (server, s, tmp)
}

fn script(body: &str) -> String {
    format!("#!file://python:python\n{body}")
}

async fn run(s: &Session, body: &str) -> tests::Resp {
    s.req(
        "POST",
        "",
        &[
            ("x-zerovm-execute", "1.0"),
            ("content-type", "application/python"),
        ],
        script(body),
    )
    .await
}

async fn still_serving(s: &Session) {
    let r = run(s, "print('still here')\n").await;
    assert_eq!((r.status, r.text().as_str()), (200, "still here\n"));
}

#[tokio::test]
async fn hostile_jobs_end_with_a_clear_status() {
    let (_server, s, _tmp) =
        up_with("[zerocloud]\ntimeout = 2\n[exec]\nmemory = 268435456\nmax_output = 1048576\n")
            .await;
    // An infinite loop is stopped at the timeout.
    let r = run(&s, "while True:\n    pass\n").await;
    assert_eq!(r.status, 500, "{:?}", r.headers);
    assert_eq!(r.header("x-nexe-status"), "session timeout");
    assert!(
        r.header("x-nexe-error").starts_with("session timeout"),
        "{:?}",
        r.headers
    );
    still_serving(&s).await;

    // A memory bomb meets the session's memory cap.
    let r = run(&s, "x = bytearray(1 << 30)\nprint(len(x))\n").await;
    assert_eq!(r.status, 500, "{:?}", r.headers);
    assert_eq!(
        r.header("x-nexe-retcode"),
        "1",
        "MemoryError: {:?}",
        r.headers
    );
    still_serving(&s).await;

    // An output flood is cut at the channel's quota (1 MiB).
    let r = run(
        &s,
        "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n    sys.stdout.flush()\n",
    )
    .await;
    assert_eq!(r.status, 500, "{:?}", r.headers);
    assert!(r.body.len() <= 1 << 20, "{} bytes", r.body.len());
    assert_ne!(r.header("x-nexe-retcode"), "0");
    still_serving(&s).await;

    // A job that sleeps past its timeout.
    let r = run(&s, "import time\ntime.sleep(30)\nprint('woke')\n").await;
    assert_eq!(r.status, 500);
    assert_eq!(r.header("x-nexe-status"), "session timeout");
    still_serving(&s).await;
}

#[tokio::test]
async fn jobs_beyond_the_slots_are_refused_with_503() {
    let (_server, s, _tmp) = up_with("[exec]\nworkers = 1\nqueue = 0\n").await;
    let sleeper = run(&s, "import time\ntime.sleep(3)\nprint('done')\n");
    let refused = async {
        // Let the sleeper take the one slot first.
        tokio::time::sleep(Duration::from_millis(800)).await;
        run(&s, "print(1)\n").await
    };
    let (slow, fast) = tokio::join!(sleeper, refused);
    assert_eq!((slow.status, slow.text().as_str()), (200, "done\n"));
    assert_eq!(fast.status, 503, "{}", fast.text());
    assert_eq!(fast.text(), "Slot not available");
    still_serving(&s).await;
}

#[tokio::test]
async fn a_client_that_goes_away_frees_its_worker() {
    // One slot, no queue, and a timeout no test waits for: only a
    // cancelled session can free the slot.
    let (server, s, _tmp) = up_with(
        "[zerocloud]\ntimeout = 3600\n[exec]\nworkers = 1\nqueue = 0\nmax_timeout = 3600\n",
    )
    .await;
    let body = script("while True:\n    pass\n");
    let addr = common::host_port(&server.url);
    let path = common::url_path(&s.url);
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nX-Auth-Token: {}\r\nX-Zerovm-Execute: 1.0\r\n\
         Content-Type: application/python\r\nContent-Length: {}\r\n\r\n{body}",
        s.token,
        body.len()
    );
    // Sent until it runs: an answer means it found the slot taken (by a
    // probe below) and was refused.
    let conn = loop {
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        conn.write_all(head.as_bytes()).await.unwrap();
        let mut buf = [0u8; 64];
        let answered = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::io::AsyncReadExt::read(&mut conn, &mut buf),
        )
        .await
        .is_ok();
        if !answered {
            break conn;
        }
    };
    // Wait until the loop holds the slot.
    common::eventually(30, "the loop to take the slot", || async {
        let r = run(&s, "print(1)\n").await;
        if r.status == 503 {
            Ok(())
        } else {
            Err(format!("{} {}", r.status, r.text()))
        }
    })
    .await;
    drop(conn);
    common::eventually(60, "the slot to be free again", || async {
        let r = run(&s, "print('free')\n").await;
        if r.status == 200 {
            Ok(())
        } else {
            Err(format!("{} {}", r.status, r.text()))
        }
    })
    .await;
}

/// A session the node refuses before reading its body leaves that body
/// unread on the connection: the answer says `Connection: close`, so the
/// proxy's pooled client never sends its next request on a connection the
/// node is closing.
#[tokio::test]
async fn a_session_refused_unread_closes_its_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let node = tests::ObjectServer::start(&tmp.path().join("data"), "127.0.0.1:0");
    let r = tests::Http::new()
        .req(
            http::Method::POST,
            &format!("http://{}/x/AUTH_test", node.addr),
            &[("content-type", "application/octet-stream")],
            vec![b'x'; 256 * 1024],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.header("connection"), "close", "{:?}", r.headers);
}
