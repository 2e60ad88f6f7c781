//! tcp channels (spec §4.3): as in ZeroVM, a read-only `tcp:<ip>:<port>`
//! channel binds and accepts one connection, a write-only one connects.
//! WAT guests against peers played by the test on 127.0.0.1, and two
//! sessions wired to each other the way ZeroCloud's `connect` does.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use sandbox::engine::{Outcome, Session};

mod wat;
use wat::{assert_exited, connect_when_bound, engine, free_port};

/// Writes "hello over tcp\n" (15 bytes) to /dev/out; exit code = bytes taken.
const WRITER: &str = r#"
  (data (i32.const 64) "/dev/out")
  (data (i32.const 128) "hello over tcp\n")
  (func (export "_start") (local $e i32)
    (local.set $e (call $open (i32.const 64) (i32.const 8) (i32.const 0) (i64.const 64)))
    (if (local.get $e) (then (call $proc_exit (i32.add (i32.const 1000) (local.get $e)))))
    (local.set $e (call $write (i32.load (i32.const 12)) (i32.const 128) (i32.const 15)))
    (if (local.get $e) (then (call $proc_exit (i32.add (i32.const 1000) (local.get $e)))))
    (call $proc_exit (i32.load (i32.const 8))))"#;

/// Copies /dev/in to stdout until the end; exit code = errno of a failed read.
const CAT: &str = r#"
  (data (i32.const 64) "/dev/in")
  (func (export "_start") (local $e i32) (local $fd i32)
    (local.set $e (call $open (i32.const 64) (i32.const 7) (i32.const 0) (i64.const 2)))
    (if (local.get $e) (then (call $proc_exit (local.get $e))))
    (local.set $fd (i32.load (i32.const 12)))
    (block $done (loop $next
      (i32.store (i32.const 16) (i32.const 1024))
      (i32.store (i32.const 20) (i32.const 4096))
      (local.set $e (call $fd_read (local.get $fd) (i32.const 16) (i32.const 1) (i32.const 24)))
      (if (local.get $e) (then (call $proc_exit (local.get $e))))
      (br_if $done (i32.eqz (i32.load (i32.const 24))))
      (drop (call $write (i32.const 1) (i32.const 1024) (i32.load (i32.const 24))))
      (br $next))))"#;

struct Run {
    outcome: Outcome,
    stdout: Vec<u8>,
}

/// A session for `wat` with the std channels on files in `dir` plus the
/// channel line `extra`.
fn session(dir: &std::path::Path, wat: &str, timeout: u32, extra: &str) -> (Vec<u8>, Session) {
    let wasm = wat::module(1, wat).into_bytes();
    let session = wat::session(dir, &wasm, b"", timeout, extra);
    (wasm, session)
}

fn run(wat: &str, timeout: u32, extra: &str) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let (wasm, session) = session(dir.path(), wat, timeout, extra);
    let program = engine().prepare(&wasm).expect("valid guest");
    let outcome = engine().run(&program, &session);
    let stdout = std::fs::read(dir.path().join("stdout")).unwrap_or_default();
    Run { outcome, stdout }
}

/// Waits until a socket listens on `port` (Linux `/proc/net/tcp`, state
/// 0A), without connecting (which would use up a channel's one connection)
/// or binding (which could take the port from under the session).
fn wait_until_listening(port: u16) {
    let until = Instant::now() + Duration::from_secs(10);
    let wanted = format!(":{port:04X}");
    loop {
        let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
        let listening = table.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 3 && fields[1].ends_with(&wanted) && fields[3] == "0A"
        });
        if listening {
            return;
        }
        assert!(Instant::now() < until, "nobody listened on {port}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    sandbox::channel::hex(&md5::Md5::digest(bytes))
}

#[test]
fn a_write_only_channel_connects_and_its_quota_cuts_the_stream() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("addr").port();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut got = Vec::new();
        s.read_to_end(&mut got).expect("read to the end");
        got
    });
    // put_size 10 of the 15 bytes: a short write, as for any channel.
    let r = run(
        WRITER,
        5,
        &format!("Channel = tcp:127.0.0.1:{port},/dev/out,0,1,0,0,10,10\n"),
    );
    let got = peer.join().expect("peer");
    assert_exited(&r.outcome, 10);
    assert_eq!(got, b"hello over");
    assert_eq!(
        r.outcome.report.etag_line(),
        format!("/dev/out {}", md5_hex(b"hello over"))
    );
}

#[test]
fn a_read_only_channel_listens_and_the_guest_reads_to_the_end() {
    let port = free_port();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 256) as u8).collect();
    let sent = data.clone();
    let peer = std::thread::spawn(move || {
        let mut s = connect_when_bound(port);
        s.write_all(&sent).expect("send");
    });
    let r = run(
        CAT,
        10,
        &format!("Channel = tcp:127.0.0.1:{port},/dev/in,0,0,1000,1000000,0,0\n"),
    );
    peer.join().expect("peer");
    assert_exited(&r.outcome, 0);
    assert_eq!(r.stdout, data);
}

#[test]
fn a_refused_connection_ends_the_session_before_it_runs() {
    let port = free_port();
    let r = run(
        WRITER,
        5,
        &format!("Channel = tcp:127.0.0.1:{port},/dev/out,0,0,0,0,10,100\n"),
    );
    assert_eq!(
        r.outcome.ending.exit_state(),
        "cannot connect /dev/out;0: Connection refused"
    );
    assert_eq!(r.outcome.exit_code(), 14);
    let report = r.outcome.report.render();
    let lines: Vec<&str> = report.split('\n').collect();
    assert_eq!(lines[2], "0");
    assert_eq!(lines[5], "cannot connect /dev/out;0: Connection refused");
    assert!(r.stdout.is_empty());
}

#[test]
fn multichannels_and_node_ids_are_refused_clearly() {
    let r = run(
        CAT,
        5,
        "Channel = tcp:127.0.0.1:1;tcp:127.0.0.1:2,/dev/in,0,0,10,100,0,0\n",
    );
    assert_eq!(
        r.outcome.ending.exit_state(),
        "/dev/in has several sources: multichannels are not supported"
    );
    assert_eq!(r.outcome.exit_code(), 93);
    let r = run(CAT, 5, "Channel = tcp:2:0,/dev/in,0,0,10,100,0,0\n");
    assert_eq!(r.outcome.exit_code(), 93);
    assert!(
        r.outcome.ending.exit_state().contains("name service"),
        "{}",
        r.outcome.ending.exit_state()
    );
}

#[test]
fn a_reader_nobody_connects_to_gives_up_at_the_session_timeout() {
    let r = run(
        CAT,
        1,
        &format!(
            "Channel = tcp:127.0.0.1:{},/dev/in,0,0,10,100,0,0\n",
            free_port()
        ),
    );
    assert_eq!(
        r.outcome.ending.exit_state(),
        "/dev/in;0 failed to read: timed out"
    );
    assert_eq!(r.outcome.exit_code(), 5);
}

#[test]
fn two_sessions_wired_writer_to_reader() {
    let port = free_port();
    let reader = std::thread::spawn(move || {
        run(
            CAT,
            10,
            &format!("Channel = tcp:127.0.0.1:{port},/dev/in,0,1,1000,1000000,0,0\n"),
        )
    });
    wait_until_listening(port);
    let writer = run(
        WRITER,
        10,
        &format!("Channel = tcp:127.0.0.1:{port},/dev/out,0,1,0,0,10,100\n"),
    );
    let reader = reader.join().expect("reader");
    assert_eq!(writer.outcome.ending.exit_state(), "ok");
    assert_eq!(writer.outcome.report.user_code, 15);
    assert_eq!(reader.outcome.ending.exit_state(), "ok");
    assert_eq!(reader.stdout, b"hello over tcp\n");
    // Both ends hash the same bytes.
    let tag = md5_hex(b"hello over tcp\n");
    assert_eq!(writer.outcome.report.etag_line(), format!("/dev/out {tag}"));
    assert_eq!(reader.outcome.report.etag_line(), format!("/dev/in {tag}"));
    // tcp traffic is counted in the network fields (7–10), not the local ones.
    let w = &writer.outcome.report.accounting;
    assert_eq!((w.network.writes, w.network.bytes_written), (1, 15));
    assert_eq!(w.local.bytes_written, 0);
    let r = &reader.outcome.report.accounting;
    assert_eq!(r.network.bytes_read, 15);
    assert_eq!(r.local.bytes_read, 0);
}
