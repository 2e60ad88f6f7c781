//! Helpers shared by the Swift API end-to-end tests: raw HTTP/1.1 over TCP (for
//! chunked uploads, broken clients and malformed headers the hyper client refuses
//! to send), HTTP dates, multipart/byteranges parsing and small assertions.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use tests::{Resp, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `http://127.0.0.1:PORT/...` → `127.0.0.1:PORT`.
pub fn host_port(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("http URL");
    rest.split('/').next().expect("host").to_string()
}

/// The path part of a storage URL (`/v1/AUTH_test`).
pub fn url_path(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("http URL");
    match rest.find('/') {
        Some(i) => rest[i..].to_string(),
        None => "/".into(),
    }
}

/// A response read off a raw socket.
#[derive(Debug)]
pub struct RawResp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResp {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn decode_chunked(mut b: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    while let Some(eol) = find(b, b"\r\n") {
        let size_line = String::from_utf8_lossy(&b[..eol]).to_string();
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .expect("chunk size");
        b = &b[eol + 2..];
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
    out
}

/// Parses one full HTTP response (the connection was closed by the server).
pub fn parse_raw(buf: &[u8]) -> RawResp {
    let end = find(buf, b"\r\n\r\n").unwrap_or_else(|| {
        panic!(
            "no complete response head in {:?}",
            String::from_utf8_lossy(buf)
        )
    });
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &buf[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        decode_chunked(rest)
    } else if let Some((_, len)) = headers.iter().find(|(k, _)| k == "content-length") {
        let n: usize = len.parse().expect("content-length");
        rest[..n.min(rest.len())].to_vec()
    } else {
        rest.to_vec()
    };
    RawResp {
        status,
        headers,
        body,
    }
}

/// Sends `req` as-is on a fresh connection and reads the response until the
/// server closes (callers send `Connection: close`).
pub async fn raw_request(addr: &str, req: &[u8]) -> RawResp {
    let fut = async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(req).await.expect("write request");
        let mut buf = vec![];
        s.read_to_end(&mut buf).await.expect("read response");
        parse_raw(&buf)
    };
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .expect("raw request timed out")
}

/// Sends `req` and closes the connection without reading anything.
pub async fn raw_send_and_close(addr: &str, req: &[u8]) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(req).await.expect("write request");
    s.flush().await.expect("flush");
    s.shutdown().await.ok();
    drop(s);
}

/// Request head for a raw request with the session's token.
pub fn raw_head(s: &Session, method: &str, path: &str, extra: &[(&str, &str)]) -> String {
    let mut h = format!(
        "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nX-Auth-Token: {}\r\nConnection: close\r\n",
        url_path(&s.url),
        host_port(&s.url),
        s.token
    );
    for (k, v) in extra {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h.push_str("\r\n");
    h
}

/// Like [`raw_head`], with header values given as raw bytes (any octets).
pub fn raw_head_bytes(s: &Session, method: &str, path: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mut h = raw_head(s, method, path, &[]).into_bytes();
    h.truncate(h.len() - 2);
    for (k, v) in extra {
        h.extend_from_slice(k.as_bytes());
        h.extend_from_slice(b": ");
        h.extend_from_slice(v);
        h.extend_from_slice(b"\r\n");
    }
    h.extend_from_slice(b"\r\n");
    h
}

/// Body bytes in chunked transfer coding, one chunk per piece.
pub fn chunked(pieces: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![];
    for p in pieces {
        if p.is_empty() {
            continue;
        }
        out.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) of Unix seconds.
pub fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Swift's trans-id: `tx` + 21 hex digits + `-` + 10 hex digits (the time).
pub fn is_trans_id(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("tx") else {
        return false;
    };
    let Some((a, b)) = rest.split_once('-') else {
        return false;
    };
    a.len() == 21
        && a.bytes().all(|c| c.is_ascii_hexdigit())
        && b.len() >= 10
        && b[..10].bytes().all(|c| c.is_ascii_hexdigit())
}

/// One part of a multipart/byteranges body: its headers (lower-case names) and data.
#[derive(Debug)]
pub struct Part {
    pub headers: Vec<(String, String)>,
    pub data: Vec<u8>,
}

impl Part {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// The boundary parameter of a `multipart/byteranges; boundary=...` type.
pub fn boundary_of(content_type: &str) -> String {
    let mut it = content_type.split(';');
    assert_eq!(
        it.next().map(|s| s.trim().to_ascii_lowercase()),
        Some("multipart/byteranges".to_string()),
        "content type {content_type:?}"
    );
    it.find_map(|p| p.trim().strip_prefix("boundary="))
        .map(|b| b.trim_matches('"').to_string())
        .unwrap_or_else(|| panic!("no boundary in {content_type:?}"))
}

/// Splits a multipart/byteranges body (RFC 2046 framing) into its parts. Panics on
/// malformed framing, so a test using it fails on a broken body.
pub fn multipart_parts(boundary: &str, body: &[u8]) -> Vec<Part> {
    let open = format!("--{boundary}");
    let delim = format!("\r\n--{boundary}");
    assert!(
        body.starts_with(open.as_bytes()),
        "body must start with the boundary: {:?}",
        String::from_utf8_lossy(body)
    );
    let mut rest = &body[open.len()..];
    let mut parts = vec![];
    loop {
        if rest.starts_with(b"--") {
            // Close delimiter; only optional CRLF / epilogue whitespace may follow.
            assert!(
                rest[2..].iter().all(|b| b.is_ascii_whitespace()),
                "junk after the close delimiter: {:?}",
                String::from_utf8_lossy(&rest[2..])
            );
            break;
        }
        assert!(
            rest.starts_with(b"\r\n"),
            "boundary line must end with CRLF: {:?}",
            String::from_utf8_lossy(rest)
        );
        rest = &rest[2..];
        let hend = find(rest, b"\r\n\r\n").expect("part headers end");
        let headers = String::from_utf8_lossy(&rest[..hend])
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        rest = &rest[hend + 4..];
        let dend = find(rest, delim.as_bytes()).expect("next boundary");
        parts.push(Part {
            headers,
            data: rest[..dend].to_vec(),
        });
        rest = &rest[dend + delim.len()..];
    }
    parts
}

/// Asserts the response status, showing the body when it differs.
#[track_caller]
pub fn assert_status(r: &Resp, want: u16, what: &str) {
    assert_eq!(
        r.status,
        want,
        "{what}: got {} with body {:?} headers {:?}",
        r.status,
        r.text(),
        r.headers
    );
}

/// PUTs a container and asserts 201.
pub async fn mk_container(s: &Session, c: &str) {
    let r = s.req("PUT", &format!("/{c}"), &[], "").await;
    assert_status(&r, 201, &format!("PUT container {c}"));
}

/// PUTs an object and asserts 201. (hyper's client sends no Content-Length for
/// an empty body, so one is added then, as any Swift client does.)
pub async fn mk_object(s: &Session, path: &str, body: &[u8], headers: &[(&str, &str)]) {
    let mut h = headers.to_vec();
    if body.is_empty() {
        h.push(("Content-Length", "0"));
    }
    let r = s.req("PUT", path, &h, body.to_vec()).await;
    assert_status(&r, 201, &format!("PUT object {path}"));
}

/// Polls `f` every 100 ms until it returns Some, or panics after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(last) => {
                if Instant::now() > deadline {
                    panic!("{what}: still not true after {secs} s; last: {last}");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// swob's default body for a status.
pub fn swob_body(status: u16) -> String {
    let (title, expl) = match status {
        401 => ("Unauthorized", "This server could not verify that you are authorized to access the document you requested."),
        403 => ("Forbidden", "Access was denied to this resource."),
        404 => ("Not Found", "The resource could not be found."),
        405 => ("Method Not Allowed", "The method is not allowed for this resource."),
        409 => ("Conflict", "There was a conflict when trying to complete your request."),
        411 => ("Length Required", "Content-Length header required."),
        412 => ("Precondition Failed", "A precondition for this request was not met."),
        416 => ("Requested Range Not Satisfiable", "The Range requested is not available."),
        422 => ("Unprocessable Entity", "Unable to process the contained instructions"),
        _ => panic!("no swob body known for {status}"),
    };
    format!("<html><h1>{title}</h1><p>{expl}</p></html>")
}

/// Swift's listing `last_modified` (`Timestamp.isoformat`) of an X-Timestamp:
/// `2024-01-31T12:34:56.789010`.
pub fn isoformat(x_timestamp: &str) -> String {
    let (secs, frac) = x_timestamp.split_once('.').unwrap_or((x_timestamp, "0"));
    let secs: u64 = secs.parse().expect("seconds");
    // Reuse http_date's calendar: "Sun, 06 Nov 1994 08:49:37 GMT".
    let d = http_date(secs);
    let f: Vec<&str> = d.split(' ').collect();
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == f[2]).expect("month") + 1;
    let mut micros = frac.to_string();
    micros.truncate(6);
    while micros.len() < 6 {
        micros.push('0');
    }
    format!("{}-{:02}-{}T{}.{}", f[3], month, f[1], f[4], micros)
}

/// Is `s` shaped like `Timestamp.isoformat` (`YYYY-MM-DDTHH:MM:SS.ffffff`)?
pub fn is_isoformat(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 26
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            _ => c.is_ascii_digit(),
        })
}

/// A tar archive of `members` (zapps, images).
pub fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, *data).expect("tar member");
    }
    b.into_inner().expect("tar")
}

/// The setuid tests' app: a zapp that reads `input` and writes what it
/// read (after `seen: `) to `output` (both `swift://` URLs), and answers
/// with it as a CGI text page.
pub fn relay_zapp(input: &str, output: &str) -> Vec<u8> {
    let map = serde_json::json!([{
        "name": "app", "exec": {"path": "file://python:python", "args": "app.py"},
        "devices": [{"name": "python"},
                    {"name": "input", "path": input},
                    {"name": "output", "path": output},
                    {"name": "stdout", "content_type": "message/cgi"}],
    }])
    .to_string();
    let app = "import sys\ntext = open('/dev/input').read()\nopen('/dev/output', 'w').write('seen: ' + text)\nsys.stdout.write('Content-Type: text/plain\\r\\n\\r\\n' + text)\n";
    tar_of(&[
        ("boot/system.map", map.as_bytes()),
        ("app.py", app.as_bytes()),
    ])
}

/// The owner `s` lends container `c` to the app at `app_url` (a
/// `swift://` URL) for callers `acl` allows: the setuid rule's metas.
pub async fn lend(s: &Session, c: &str, app_url: &str, acl: &str) {
    let h = [
        ("x-container-meta-rest-endpoint", app_url),
        ("x-container-meta-zerovm-suid", acl),
    ];
    let r = s.req("POST", &format!("/{c}"), &h, "").await;
    assert_status(&r, 204, &format!("lending {c}"));
}

/// POSTs a zapp to the account as a job.
pub async fn post_zapp(s: &Session, zapp: Vec<u8>) -> Resp {
    s.req(
        "POST",
        "",
        &[
            ("x-zerovm-execute", "1.0"),
            ("content-type", "application/x-tar"),
        ],
        zapp,
    )
    .await
}

/// The seed's wordcount, as users run it (examples/wordcount).
const WORDCOUNT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/wordcount");

/// A file of the wordcount example (`mrdata1.txt`, `mapper.py`, ...).
pub fn wordcount_file(name: &str) -> Vec<u8> {
    std::fs::read(format!("{WORDCOUNT}/{name}")).expect("test data")
}

/// The wordcount's MapReduce job over `swift://~/mapreduce-data/*.txt`.
pub const WORDCOUNT_MAP: &str = r#"[
  {"name": "map", "exec": {"path": "file://python2.7:python", "args": "mapper.py"},
   "devices": [{"name": "python2.7"}, {"name": "stdout"},
               {"name": "input", "path": "swift://~/mapreduce-data/*.txt"}],
   "connect": ["reduce"]},
  {"name": "reduce", "exec": {"path": "file://python2.7:python", "args": "reducer.py"},
   "devices": [{"name": "python2.7"}, {"name": "stdout"}]}
]"#;

/// The wordcount zapp with `map` as its system map.
pub fn wordcount_zapp(map: &str) -> Vec<u8> {
    tar_of(&[
        ("boot/system.map", map.as_bytes()),
        ("mapper.py", &wordcount_file("mapper.py")),
        ("reducer.py", &wordcount_file("reducer.py")),
    ])
}

/// The wordcount's three inputs, stored in `mapreduce-data`.
pub async fn store_wordcount_inputs(s: &Session) {
    mk_container(s, "mapreduce-data").await;
    for f in ["mrdata1.txt", "mrdata2.txt", "mrdata3.txt"] {
        let r = s
            .req(
                "PUT",
                &format!("/mapreduce-data/{f}"),
                &[],
                wordcount_file(f),
            )
            .await;
        assert_eq!(r.status, 201);
    }
}
