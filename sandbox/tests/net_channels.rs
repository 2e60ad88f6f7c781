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
fn node_ids_and_multichannels_of_files_are_refused_clearly() {
    let r = run(
        CAT,
        5,
        "Channel = /dev/null;/dev/null,/dev/in,0,0,10,100,0,0\n",
    );
    assert_eq!(
        r.outcome.ending.exit_state(),
        "/dev/in has several sources: multichannels are only supported over tcp"
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

/// A multichannel reader on two ports, each fed by `sends[i]` (written in
/// pieces, then closed; `None`: the peer connects and closes at once after
/// `hold`): what the guest got, and how it ended.
fn read_replicas(sends: [Vec<u8>; 2]) -> Run {
    let ports = [free_port(), free_port()];
    let peers: Vec<_> = ports
        .iter()
        .zip(sends)
        .map(|(&port, data)| {
            std::thread::spawn(move || {
                let mut s = connect_when_bound(port);
                // Different piece sizes, so the replicas' reads do not line up.
                for piece in data.chunks(7000 + port as usize % 5000) {
                    if s.write_all(piece).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    let r = run(
        CAT,
        10,
        &format!(
            "Channel = tcp:127.0.0.1:{};tcp:127.0.0.1:{},/dev/in,0,1,1000,10000000,0,0\n",
            ports[0], ports[1]
        ),
    );
    for p in peers {
        p.join().expect("peer");
    }
    r
}

#[test]
fn a_multichannel_reader_gets_what_both_replicas_sent_once() {
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let r = read_replicas([data.clone(), data.clone()]);
    assert_exited(&r.outcome, 0);
    assert_eq!(r.stdout, data);
    // The program's view, counted once, hashed once.
    assert_eq!(
        r.outcome.report.accounting.network.bytes_read,
        data.len() as u64
    );
    assert_eq!(
        r.outcome.report.etag_line(),
        format!("/dev/in {}", md5_hex(&data))
    );
}

#[test]
fn a_multichannel_read_fails_where_the_replicas_differ() {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 256) as u8).collect();
    let mut other = data.clone();
    other[60_000] ^= 1;
    let r = read_replicas([data.clone(), other]);
    assert_eq!(
        r.outcome.ending.exit_state(),
        "/dev/in;0 failed to read: replicas differ"
    );
    assert_eq!(r.outcome.exit_code(), 5);
    // What the guest saw before the difference is the agreed prefix only.
    assert!(r.stdout.len() <= 60_000, "{}", r.stdout.len());
    assert_eq!(r.stdout[..], data[..r.stdout.len()]);
    // A replica that stops early differs too: the end of data needs two.
    let r = read_replicas([data.clone(), data[..50_000].to_vec()]);
    assert_eq!(
        r.outcome.ending.exit_state(),
        "/dev/in;0 failed to read: replicas differ"
    );
    assert!(r.stdout.len() <= 50_000);
}

#[test]
fn a_multichannel_writer_sends_everything_to_every_replica() {
    let listeners: Vec<TcpListener> = (0..2)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("listener"))
        .collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect();
    let peers: Vec<_> = listeners
        .into_iter()
        .map(|l| {
            std::thread::spawn(move || {
                let (mut s, _) = l.accept().expect("accept");
                let mut got = Vec::new();
                s.read_to_end(&mut got).expect("read to the end");
                got
            })
        })
        .collect();
    let r = run(
        WRITER,
        5,
        &format!(
            "Channel = tcp:127.0.0.1:{};tcp:127.0.0.1:{},/dev/out,0,1,0,0,10,100\n",
            ports[0], ports[1]
        ),
    );
    assert_exited(&r.outcome, 15);
    for p in peers {
        assert_eq!(p.join().expect("peer"), b"hello over tcp\n");
    }
    // Counted once: the program wrote 15 bytes in one call.
    let w = &r.outcome.report.accounting.network;
    assert_eq!((w.writes, w.bytes_written), (1, 15));
}

#[test]
fn a_multichannel_writer_goes_on_when_one_replica_is_gone() {
    let alive = TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = alive.local_addr().expect("addr").port();
    let gone = TcpListener::bind("127.0.0.1:0").expect("listener");
    let gone_port = gone.local_addr().expect("addr").port();
    // The second replica accepts, then closes without reading.
    let closer = std::thread::spawn(move || {
        let (s, _) = gone.accept().expect("accept");
        drop(s);
    });
    let reader = std::thread::spawn(move || {
        let (mut s, _) = alive.accept().expect("accept");
        let mut got = Vec::new();
        s.read_to_end(&mut got).expect("read to the end");
        got
    });
    // Enough bytes that the closed replica's reset is seen by a write.
    const BIG: &str = r#"
  (data (i32.const 64) "/dev/out")
  (func (export "_start") (local $e i32) (local $i i32)
    (local.set $e (call $open (i32.const 64) (i32.const 8) (i32.const 0) (i64.const 64)))
    (if (local.get $e) (then (call $proc_exit (i32.add (i32.const 1000) (local.get $e)))))
    (loop $next
      (local.set $e (call $write (i32.load (i32.const 12)) (i32.const 4096) (i32.const 32768)))
      (if (local.get $e) (then (call $proc_exit (i32.add (i32.const 1000) (local.get $e)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $i) (i32.const 128))))
    (call $proc_exit (i32.const 0)))"#;
    let r = run(
        BIG,
        10,
        &format!(
            "Channel = tcp:127.0.0.1:{port};tcp:127.0.0.1:{gone_port},/dev/out,0,1,0,0,1000,10000000\n"
        ),
    );
    closer.join().expect("closer");
    assert_exited(&r.outcome, 0);
    assert_eq!(reader.join().expect("reader").len(), 128 * 32768);
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
