//! A program's HTTP answer (spec/zerocloud.md §3.3): an output channel of
//! type `message/http` holds a whole HTTP response (status line, headers,
//! a blank line, the body), one of type `message/cgi` a CGI response
//! (headers, with an optional `Status: <code> <reason>`, then the body;
//! 200 OK by default). The status, the headers and where the body starts
//! are taken from the first [`MAX_HEAD`] bytes; output that does not parse
//! stays as it is, typed as written (ZeroCloud did the same).
//!
//! What the program may not set: the framing and hop-by-hop headers
//! (`Content-Length`, `Transfer-Encoding`, `Connection`, ...), which the
//! proxy computes, and `X-Nexe-*`, which report the run. They are dropped.

/// Most bytes of an output searched for the end of its header block.
pub const MAX_HEAD: usize = 64 * 1024;

/// Headers a program's response may not set.
const DROPPED: [&str; 9] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "trailer",
    "te",
    "proxy-connection",
    "x-timestamp",
];

/// A parsed program response.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    /// `"<code> <reason>"`.
    pub status: String,
    /// The headers, in order, without `Status` and the dropped ones.
    pub headers: Vec<(String, String)>,
    /// Where the body starts in the output.
    pub body_at: usize,
}

impl Answer {
    /// The `Content-Type` the program gave, if any.
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.as_str())
    }
}

/// Whether an output of `content_type` is a program response, and whether
/// it starts with a status line (`message/http`).
pub fn kind(content_type: &str) -> Option<bool> {
    let t = content_type.trim().to_ascii_lowercase();
    if t.starts_with("message/http") {
        Some(true)
    } else if t.starts_with("message/cgi") {
        Some(false)
    } else {
        None
    }
}

/// A `<code> <reason>` with a code of 100–599.
fn valid_status(s: &str) -> Option<String> {
    let s = s.trim();
    let code = s.split(' ').next()?;
    let n: u16 = code.parse().ok()?;
    (code.len() == 3 && (100..=599).contains(&n)).then(|| s.to_string())
}

/// Parses an output of `len` bytes starting at byte `at` of `file`.
pub fn parse_file(
    file: &std::fs::File,
    at: u64,
    len: u64,
    nph: bool,
) -> std::io::Result<Option<Answer>> {
    use std::os::unix::fs::FileExt;
    let mut head = vec![0u8; len.min(MAX_HEAD as u64) as usize];
    file.read_exact_at(&mut head, at)?;
    Ok(parse(&head, len <= MAX_HEAD as u64, nph))
}

/// Parses the start of an output (`head`, at most [`MAX_HEAD`] bytes of
/// it; `whole`: the output ends there). `nph`: a status line comes first.
pub fn parse(head: &[u8], whole: bool, nph: bool) -> Option<Answer> {
    let head = &head[..head.len().min(MAX_HEAD)];
    // The header block ends at the first empty line (or at the end of an
    // output that is only headers).
    let mut lines = Vec::new();
    let mut at = 0;
    let body_at = loop {
        let Some(nl) = head[at..].iter().position(|&b| b == b'\n') else {
            if whole && at == head.len() {
                break at;
            }
            return None;
        };
        let line = &head[at..at + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        at += nl + 1;
        if line.is_empty() {
            break at;
        }
        lines.push(std::str::from_utf8(line).ok()?);
    };
    let mut lines = lines.into_iter();
    let mut status = "200 OK".to_string();
    if nph {
        let first = lines.next()?;
        let rest = first
            .strip_prefix("HTTP/1.1 ")
            .or_else(|| first.strip_prefix("HTTP/1.0 "))?;
        status = valid_status(rest)?;
    }
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line.split_once(':')?;
        let ok_name = !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !ok_name {
            return None;
        }
        let (k, v) = (k.to_string(), v.trim().to_string());
        let lower = k.to_ascii_lowercase();
        if lower == "status" {
            // A CGI answer's status; after a status line, not the program's
            // to restate (the part's own `Status` is the one that counts).
            if !nph {
                status = valid_status(&v)?;
            }
        } else if !DROPPED.contains(&lower.as_str()) && !lower.starts_with("x-nexe-") {
            headers.push((k, v));
        }
    }
    Some(Answer {
        status,
        headers,
        body_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_responses_keep_their_status_line_and_headers() {
        let a = parse(
            b"HTTP/1.1 404 Not Found\r\nX-A: b\r\nContent-Type: text/x\r\n\r\nnope",
            true,
            true,
        )
        .expect("parses");
        assert_eq!(a.status, "404 Not Found");
        assert_eq!(a.content_type(), Some("text/x"));
        assert_eq!(a.headers[0], ("X-A".to_string(), "b".to_string()));
        assert_eq!(a.body_at, 56);
    }

    #[test]
    fn cgi_responses_default_to_200_and_take_a_status_header() {
        let a = parse(b"Content-Type: text/plain\n\nhi", true, false).expect("parses");
        assert_eq!((a.status.as_str(), a.body_at), ("200 OK", 26));
        let a = parse(b"Status: 201 Created\nX-Seq: 5\n\n", true, false).expect("parses");
        assert_eq!(a.status, "201 Created");
        assert_eq!(a.headers, vec![("X-Seq".to_string(), "5".to_string())]);
    }

    #[test]
    fn what_does_not_parse_is_none() {
        // A CGI header first under message/http.
        assert_eq!(parse(b"Status: 200 OK\n\nx", true, true), None);
        assert_eq!(parse(b"HTTP/1.1 99 Low\n\n", true, true), None);
        assert_eq!(parse(b"no colon here\n\n", true, false), None);
        assert_eq!(parse(b"Status: abc\n\n", true, false), None);
        // No end of headers within the head of a longer output.
        assert_eq!(parse(b"X-A: b\n", false, false), None);
    }

    #[test]
    fn a_status_header_does_not_override_a_status_line() {
        let a = parse(
            b"HTTP/1.1 404 Not Found\nStatus: 200 OK\nX-A: b\n\n",
            true,
            true,
        )
        .expect("parses");
        assert_eq!(a.status, "404 Not Found");
        assert_eq!(a.headers, vec![("X-A".to_string(), "b".to_string())]);
    }

    #[test]
    fn framing_and_report_headers_are_dropped() {
        let a = parse(
            b"Content-Length: 999\nTransfer-Encoding: chunked\nX-Nexe-Status: fake\nX-Ok: 1\n\n",
            true,
            false,
        )
        .expect("parses");
        assert_eq!(a.headers, vec![("X-Ok".to_string(), "1".to_string())]);
    }
}
