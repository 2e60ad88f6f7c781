//! The exec protocol: how the proxy hands one session of a job to the exec
//! agent of a storage node, and how the agent answers.
//!
//! **Request**: `POST /x/{a}[/{c}[/{o}]]` (the node's placement path: the
//! object or container it is attached to, or the account) with the usual
//! [`crate::TRANS_ID`], and [`crate::CONTAINER_NODE`]/[`crate::ACCOUNT_NODE`]
//! when the session writes its attached object. The body is a stream of
//! [parts](#parts): first [`PLAN_PART`], whose data is an [`ExecRequest`]
//! (JSON), then the session's inputs in the order the request announces
//! them (`inputs`), each named after its device (`boot` for the executable).
//!
//! **Response**: an agent that could not start the session answers with a
//! plain-text status (400 `Could not resolve channel path ...`, 404
//! `Error 404 Not Found while fetching /a/c/o`, 503 `Slot not available`,
//! ...) and the `X-Nexe-*` defaults. Otherwise 200 with the session's
//! `X-Nexe-*` headers, and a body of parts: the outputs the proxy must
//! store (a `path`), then the session's immediate output (no `path`), at
//! most one. The agent sends a response only once the session has ended,
//! so the headers are final.
//!
//! **Connected sessions** (`connect`, `zvm://`; the plan's `pool` is
//! `cluster`) are reserved first: `POST /xr/{a}[/{c}[/{o}]]` with a
//! [`Reservation`] (JSON) takes a worker slot of the agent's cluster pool
//! without waiting (503 `Slot not available` otherwise) and binds a
//! listener for each incoming network channel; the answer is a
//! [`Reserved`] (JSON): a token and the bound addresses. The session's
//! `POST /x/...` then names the token ([`ExecRequest::reservation`]) and
//! gives the addresses its outgoing channels connect to
//! ([`ExecRequest::network`]). `DELETE /xt/{token}` gives a reservation back
//! unused; one never claimed expires.
//!
//! # Parts
//!
//! A body is a sequence of parts, then the end mark:
//!
//! ```text
//! part  := u32be(n > 0) header-json[n] chunk* u32be(0)
//! chunk := u32be(m > 0) bytes[m]
//! end   := u32be(0)
//! ```
//!
//! Data is chunked so that a part of unknown length (a client's chunked
//! upload) can be streamed; a part header gives `len` when it is known,
//! and a reader refuses data that does not match it.

use std::collections::BTreeMap;

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use sysmap::plan::NodePlan;

use crate::body::Body;

/// The name of the first part of a request: its data is an [`ExecRequest`].
pub const PLAN_PART: &str = "plan";
/// The input part that holds a `swift://` executable.
pub const BOOT_PART: &str = "boot";
/// Largest part header or plan a reader accepts.
pub const MAX_HEADER: usize = 1 << 20;
/// Data chunks a writer sends are at most this long (a reader accepts up
/// to [`MAX_CHUNK`]).
pub const CHUNK: usize = 64 * 1024;
/// Largest data chunk a reader accepts.
pub const MAX_CHUNK: usize = 4 << 20;

/// Header of an exec response: the storage node that ran the session.
pub const SERVER_HEADER: &str = "x-nexe-server";

/// The plan of one session, sent as the data of [`PLAN_PART`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// The job's `X-Zerocloud-Id`.
    pub job_id: String,
    /// The node this session runs.
    pub node: NodePlan,
    /// Replica index of the session (0: the master).
    #[serde(default)]
    pub replica: u32,
    /// Session timeout in seconds.
    pub timeout: u64,
    /// `X-Timestamp` an attached output object is stored with.
    pub timestamp: String,
    /// The input parts that follow, in order (device names, [`BOOT_PART`]).
    #[serde(default)]
    pub inputs: Vec<String>,
    /// The manifest source of each outgoing network channel, by alias:
    /// `tcp:<ip>:<port>`, `;`-separated for a replicated reader (a
    /// multichannel).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub network: BTreeMap<String, String>,
    /// The token of this session's reservation (connected sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<String>,
    /// Where the agent finds the object a read-attached session reads,
    /// and where an attached output goes.
    #[serde(default, skip_serializing_if = "AttachedFrom::is_disk")]
    pub attached: AttachedFrom,
}

/// Where an attached object is, for the agent that runs its session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "from")]
pub enum AttachedFrom {
    /// The agent's own storage node (the embedded store): the object is
    /// read in place, an attached output is committed there.
    #[default]
    Disk,
    /// The OpenStack Swift object server the agent runs beside holds a
    /// replica: the agent GETs `path` (`/{device}/{partition}/{a}/{c}/{o}`,
    /// percent-encoded, from Swift's `list_endpoints`) from it, with
    /// `X-Backend-Storage-Policy-Index: policy`. An attached output is sent
    /// back to the proxy like any output with a path, and stored by it
    /// through the Swift proxy.
    SwiftReplica {
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy: Option<String>,
    },
    /// No agent runs beside a replica: the proxy streams the object as the
    /// input part named after the attached device, whose part headers are
    /// the object's (`Content-Type`, `ETag`, `X-Timestamp`,
    /// `X-Object-Meta-*`). An attached output is sent back as for
    /// [`AttachedFrom::SwiftReplica`].
    Streamed,
}

/// Whether a stored object's header `name` (lowercase) is metadata a
/// session attached to it sees (`LOCAL_*`): `Content-Type`, `ETag`,
/// `X-Timestamp`, `Content-Encoding`, `X-Object-Meta-*`. The proxy sends
/// these with a streamed object, and an agent keeps these of a replica.
pub fn is_local_metadata(name: &str) -> bool {
    name.starts_with("x-object-meta-")
        || matches!(
            name,
            "content-type" | "etag" | "x-timestamp" | "content-encoding"
        )
}

impl AttachedFrom {
    pub fn is_disk(&self) -> bool {
        matches!(self, AttachedFrom::Disk)
    }

    /// What the `X-Zerocloud-Placement` response header says of a session
    /// attached this way.
    pub fn label(&self) -> &'static str {
        match self {
            AttachedFrom::Disk | AttachedFrom::SwiftReplica { .. } => "local",
            AttachedFrom::Streamed => "streamed",
        }
    }
}

/// Body of `POST /xr/...`: a connected session to reserve a slot for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub job_id: String,
    pub node: NodePlan,
    #[serde(default)]
    pub replica: u32,
}

/// Answer of `POST /xr/...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reserved {
    /// Names the reservation in the session's `POST /x/...` and in
    /// `DELETE /xt/{token}`.
    pub token: String,
    /// For each incoming network channel (alias), the `ip:port` each
    /// writer connects to: one per writing session (a replicated writer
    /// has several).
    pub bound: BTreeMap<String, Vec<String>>,
}

/// The header of one part.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartHeader {
    /// [`PLAN_PART`], a device name, or [`BOOT_PART`].
    pub name: String,
    /// Data length, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub len: Option<u64>,
    /// The data is gzip-compressed (an `application/x-gzip` image); the
    /// agent inflates it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gzip: bool,
    /// Outputs: the `swift://` object the proxy stores the data as; none
    /// for the immediate output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Outputs: the content type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Outputs: headers that go with the data (`X-Object-Meta-*`, and a
    /// CGI program's response headers and `Status`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
}

/// Why a part stream could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PartError {
    /// The body failed (the peer went away, a timeout, ...).
    #[error("body: {0}")]
    Body(String),
    /// The stream ended in the middle of a part.
    #[error("the part stream ended early")]
    Truncated,
    /// A length or header that breaks the framing rules.
    #[error("bad part stream: {0}")]
    Invalid(String),
}

/// The encoded header of a part.
pub fn encode_header(h: &PartHeader) -> Bytes {
    let json = serde_json::to_vec(h).unwrap_or_else(|_| b"{}".to_vec());
    let mut b = BytesMut::with_capacity(4 + json.len());
    b.extend_from_slice(&(json.len() as u32).to_be_bytes());
    b.extend_from_slice(&json);
    b.freeze()
}

/// The frame of one data chunk (empty input gives nothing: an empty
/// chunk would end the part).
pub fn encode_chunk(data: Bytes) -> Option<[Bytes; 2]> {
    if data.is_empty() {
        return None;
    }
    Some([
        Bytes::copy_from_slice(&(data.len() as u32).to_be_bytes()),
        data,
    ])
}

/// Ends a part's data, and (once more) the whole stream.
pub const END: Bytes = Bytes::from_static(&[0, 0, 0, 0]);

/// A whole part in one buffer (small parts: the plan).
pub fn encode_part(h: &PartHeader, data: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.extend_from_slice(&encode_header(h));
    for piece in data.chunks(CHUNK) {
        b.extend_from_slice(&(piece.len() as u32).to_be_bytes());
        b.extend_from_slice(piece);
    }
    b.extend_from_slice(&END);
    b.freeze()
}

/// Reads a part stream from a body, one part after another: a part's
/// header with [`PartReader::next_part`], then its data with
/// [`PartReader::next_chunk`] until `None`.
pub struct PartReader {
    body: Body,
    buf: BytesMut,
    state: State,
}

enum State {
    /// Between parts.
    Idle,
    /// Inside a part's data: bytes of it read so far, and the length its
    /// header announced.
    Data { read: u64, len: Option<u64> },
    /// The end mark was read.
    Done,
}

impl PartReader {
    pub fn new(body: Body) -> PartReader {
        PartReader {
            body,
            buf: BytesMut::new(),
            state: State::Idle,
        }
    }

    /// Reads until `n` bytes are buffered; false if the body ended first.
    async fn fill(&mut self, n: usize) -> Result<bool, PartError> {
        while self.buf.len() < n {
            match self.body.frame().await {
                None => return Ok(false),
                Some(Err(e)) => return Err(PartError::Body(e.to_string())),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
        Ok(true)
    }

    async fn read_u32(&mut self) -> Result<usize, PartError> {
        if !self.fill(4).await? {
            return Err(PartError::Truncated);
        }
        Ok(self.buf.get_u32() as usize)
    }

    /// The next part's header; `None` at the end of the stream. Data of
    /// the current part that was not read is skipped.
    pub async fn next_part(&mut self) -> Result<Option<PartHeader>, PartError> {
        while let State::Data { .. } = self.state {
            self.next_chunk().await?;
        }
        if let State::Done = self.state {
            return Ok(None);
        }
        let n = self.read_u32().await?;
        if n == 0 {
            self.state = State::Done;
            self.drain().await?;
            return Ok(None);
        }
        if n > MAX_HEADER {
            return Err(PartError::Invalid(format!("part header of {n} bytes")));
        }
        if !self.fill(n).await? {
            return Err(PartError::Truncated);
        }
        let json = self.buf.split_to(n);
        let h: PartHeader = serde_json::from_slice(&json)
            .map_err(|e| PartError::Invalid(format!("part header: {e}")))?;
        self.state = State::Data {
            read: 0,
            len: h.len,
        };
        Ok(Some(h))
    }

    /// After the end mark: reads the body to its end (nothing may follow),
    /// so the HTTP layer knows the message is complete and notices when
    /// the peer goes away (hyper watches a connection for EOF only between
    /// a finished request and its response).
    async fn drain(&mut self) -> Result<(), PartError> {
        if self.buf.is_empty() && !self.fill(1).await? {
            return Ok(());
        }
        Err(PartError::Invalid("data after the end of the parts".into()))
    }

    /// The next chunk of the current part's data; `None` at its end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, PartError> {
        let State::Data { read, len } = self.state else {
            return Ok(None);
        };
        let n = self.read_u32().await?;
        if n == 0 {
            if len.is_some_and(|l| l != read) {
                return Err(PartError::Invalid(format!(
                    "part data of {read} bytes, announced {}",
                    len.unwrap_or(0)
                )));
            }
            self.state = State::Idle;
            return Ok(None);
        }
        if n > MAX_CHUNK {
            return Err(PartError::Invalid(format!("chunk of {n} bytes")));
        }
        let read = read + n as u64;
        if len.is_some_and(|l| read > l) {
            return Err(PartError::Invalid(format!(
                "part data longer than announced ({})",
                len.unwrap_or(0)
            )));
        }
        if !self.fill(n).await? {
            return Err(PartError::Truncated);
        }
        self.state = State::Data { read, len };
        Ok(Some(self.buf.split_to(n).freeze()))
    }

    /// The whole data of the current part, refused past `max` bytes.
    pub async fn read_data(&mut self, max: usize) -> Result<Vec<u8>, PartError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.next_chunk().await? {
            if out.len() + chunk.len() > max {
                return Err(PartError::Invalid(format!("part larger than {max} bytes")));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

/// `/x/{a}`, `/x/{a}/{c}` or `/x/{a}/{c}/{o}` for a placement path
/// (`/a`, `/a/c`, `/a/c/o` with raw names: the object part may hold `/`).
pub fn exec_path(path_info: &str) -> String {
    placement_path("/x", path_info)
}

/// `/xr/...`: where a connected session is reserved.
pub fn reserve_path(path_info: &str) -> String {
    placement_path("/xr", path_info)
}

/// `/xt/{token}`: a reservation, to give back.
pub fn reservation_path(token: &str) -> String {
    format!("/xt/{}", crate::enc(token))
}

fn placement_path(prefix: &str, path_info: &str) -> String {
    let rest = path_info.strip_prefix('/').unwrap_or(path_info);
    let mut out = String::from(prefix);
    for name in rest.splitn(3, '/') {
        out.push('/');
        out.push_str(&crate::enc(name));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(pieces: Vec<Bytes>) -> Body {
        let stream = futures_util::stream::iter(
            pieces
                .into_iter()
                .map(Ok::<_, std::io::Error>)
                .collect::<Vec<_>>(),
        );
        Body::from_stream(stream)
    }

    #[tokio::test]
    async fn parts_round_trip_across_any_split() {
        let mut all = BytesMut::new();
        all.extend_from_slice(&encode_part(
            &PartHeader {
                name: "plan".into(),
                ..Default::default()
            },
            b"{\"x\":1}",
        ));
        let big = vec![7u8; 200_000];
        all.extend_from_slice(&encode_part(
            &PartHeader {
                name: "stdin".into(),
                len: Some(big.len() as u64),
                ..Default::default()
            },
            &big,
        ));
        all.extend_from_slice(&encode_part(
            &PartHeader {
                name: "empty".into(),
                len: Some(0),
                ..Default::default()
            },
            b"",
        ));
        all.extend_from_slice(&END);
        let all = all.freeze();
        for split in [1usize, 3, 5, 4096, all.len()] {
            let pieces: Vec<Bytes> = all.chunks(split).map(Bytes::copy_from_slice).collect();
            let mut r = PartReader::new(body_of(pieces));
            let h = r.next_part().await.unwrap().unwrap();
            assert_eq!(h.name, "plan");
            assert_eq!(r.read_data(100).await.unwrap(), b"{\"x\":1}");
            let h = r.next_part().await.unwrap().unwrap();
            assert_eq!((h.name.as_str(), h.len), ("stdin", Some(200_000)));
            assert_eq!(r.read_data(1 << 20).await.unwrap(), big);
            let h = r.next_part().await.unwrap().unwrap();
            assert_eq!(h.name, "empty");
            assert_eq!(r.next_chunk().await.unwrap(), None);
            assert!(r.next_part().await.unwrap().is_none());
            assert!(r.next_part().await.unwrap().is_none());
        }
    }

    #[tokio::test]
    async fn unread_data_is_skipped_and_bad_streams_are_refused() {
        let mut all = BytesMut::new();
        all.extend_from_slice(&encode_part(
            &PartHeader {
                name: "a".into(),
                ..Default::default()
            },
            b"skipped",
        ));
        all.extend_from_slice(&encode_part(
            &PartHeader {
                name: "b".into(),
                ..Default::default()
            },
            b"read",
        ));
        all.extend_from_slice(&END);
        let mut r = PartReader::new(body_of(vec![all.freeze()]));
        assert_eq!(r.next_part().await.unwrap().unwrap().name, "a");
        assert_eq!(r.next_part().await.unwrap().unwrap().name, "b");
        assert_eq!(r.read_data(10).await.unwrap(), b"read");

        // Longer than announced.
        let h = PartHeader {
            name: "x".into(),
            len: Some(2),
            ..Default::default()
        };
        let mut r = PartReader::new(body_of(vec![encode_part(&h, b"abc")]));
        r.next_part().await.unwrap();
        assert!(matches!(r.read_data(10).await, Err(PartError::Invalid(_))));
        // Shorter than announced.
        let h = PartHeader {
            name: "x".into(),
            len: Some(5),
            ..Default::default()
        };
        let mut r = PartReader::new(body_of(vec![encode_part(&h, b"abc")]));
        r.next_part().await.unwrap();
        assert!(matches!(r.read_data(10).await, Err(PartError::Invalid(_))));
        // Cut in the middle.
        let whole = encode_part(&h, b"abcde");
        let mut r = PartReader::new(body_of(vec![whole.slice(..whole.len() - 6)]));
        r.next_part().await.unwrap();
        assert!(matches!(r.read_data(10).await, Err(PartError::Truncated)));
        // Over the size limit of the caller.
        let mut r = PartReader::new(body_of(vec![whole]));
        r.next_part().await.unwrap();
        assert!(matches!(r.read_data(3).await, Err(PartError::Invalid(_))));
        // Anything after the end mark.
        let mut r = PartReader::new(body_of(vec![END, Bytes::from_static(b"x")]));
        assert!(matches!(r.next_part().await, Err(PartError::Invalid(_))));
        // A header that is not JSON.
        let mut r = PartReader::new(body_of(vec![Bytes::from_static(b"\0\0\0\x02{x")]));
        assert!(matches!(r.next_part().await, Err(PartError::Invalid(_))));
    }

    #[test]
    fn exec_paths_encode_each_name() {
        assert_eq!(exec_path("/AUTH_a"), "/x/AUTH_a");
        assert_eq!(exec_path("/AUTH_a/c"), "/x/AUTH_a/c");
        assert_eq!(exec_path("/AUTH_a/c/d/e f"), "/x/AUTH_a/c/d%2Fe%20f");
        assert_eq!(reserve_path("/AUTH_a/c"), "/xr/AUTH_a/c");
        assert_eq!(reservation_path("a/b"), "/xt/a%2Fb");
    }
}
