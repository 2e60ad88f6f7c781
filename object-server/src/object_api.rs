//! Object requests on a storage node: streamed PUT with MD5, GET/HEAD with Swift's
//! conditional and Range rules, POST, DELETE; each write then updates the container.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use axum::extract::{Request, State};
use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http_body_util::BodyExt;
use hyper::header::HeaderMap;
use hyper::{Method, Response};

use crate::api::{from_latin1, header_str, latin1, req_ts, Names, Node, Result};
use crate::db::ObjectRow;
use crate::error::StorageError;
use crate::objects::{ObjectMeta, ObjectWriter};
use wire::body::{self, Body};
use wire::range::{parse_range, ranges_for_length};
use wire::reply;
use wire::timestamp::Timestamp;
use wire::{is_persisted, parse_delete_at};

/// Objects up to this size are read in one go; larger ones are streamed.
const INLINE_READ: u64 = 256 * 1024;
/// PUT data is buffered up to this much before a write to disk.
const WRITE_CHUNK: usize = 1 << 20;
const STREAM_CHUNK: usize = 256 * 1024;

pub async fn handle(
    State(node): State<Arc<Node>>,
    Names([a, c, o]): Names<3>,
    req: Request,
) -> Result<Response<Body>> {
    let (node, a, c, o) = (&node, a.as_str(), c.as_str(), o.as_str());
    let name = format!("/{a}/{c}/{o}");
    // Handlers other than PUT see only the head: a body is not Sync, and a
    // reference to it could not be held across their awaits.
    match *req.method() {
        Method::PUT => put(node, req, a, c, o, name).await,
        Method::GET | Method::HEAD => get(node, &req.into_parts().0, name).await,
        Method::POST => post(node, &req.into_parts().0, name).await,
        Method::DELETE => delete(node, &req.into_parts().0, a, c, o, name).await,
        _ => Err(StorageError::MethodNotAllowed),
    }
}

fn persisted(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .filter(|(k, _)| is_persisted(k.as_str()))
        .map(|(k, v)| (k.as_str().to_string(), latin1(v.as_bytes())))
        .collect()
}

fn delete_at(h: &HeaderMap) -> Result<Option<u64>> {
    match header_str(h, "x-delete-at") {
        None => Ok(None),
        Some(s) => parse_delete_at(s)
            .map(Some)
            .ok_or_else(|| StorageError::BadRequest("Non-integer X-Delete-At".into())),
    }
}

fn is_expired(m: &ObjectMeta) -> bool {
    m.is_expired(Timestamp::now().secs())
}

fn nodes(h: &HeaderMap) -> (String, String) {
    (
        header_str(h, wire::CONTAINER_NODE)
            .unwrap_or("")
            .to_string(),
        header_str(h, wire::ACCOUNT_NODE).unwrap_or("").to_string(),
    )
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await?
}

async fn put(
    node: &Arc<Node>,
    req: Request,
    a: &str,
    c: &str,
    o: &str,
    name: String,
) -> Result<Response<Body>> {
    let h = req.headers().clone();
    let ts = req_ts(&h)?;
    let expected_len: Option<u64> = header_str(&h, "content-length").and_then(|v| v.parse().ok());
    let expected_etag = header_str(&h, "etag").map(|e| e.trim_matches('"').to_ascii_lowercase());
    let mut meta = ObjectMeta {
        name: name.clone(),
        data_ts: ts,
        meta_ts: ts,
        content_type: h
            .get("content-type")
            .map(|v| latin1(v.as_bytes()))
            .unwrap_or_else(|| "application/octet-stream".into()),
        etag: String::new(),
        size: 0,
        headers: persisted(&h),
        delete_at: delete_at(&h)?,
    };
    if header_str(&h, "if-none-match") == Some("*") {
        let n = node.clone();
        let nm = name.clone();
        let existing = blocking(move || n.objects.head(&nm)).await?;
        if existing.is_some_and(|m| !is_expired(&m)) {
            return Err(StorageError::PreconditionFailed);
        }
    }
    let n = node.clone();
    let m2 = meta.clone();
    let mut writer = blocking(move || {
        let mut w = n.objects.writer()?;
        w.reserve_header(&m2)?;
        Ok(w)
    })
    .await?;
    let mut body = req.into_body();
    let mut buf = BytesMut::new();
    let mut received: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            // The client went away mid-body: drop the temp file, store nothing.
            Err(_) => return Err(StorageError::ClientDisconnect),
        };
        if let Ok(data) = frame.into_data() {
            received += data.len() as u64;
            buf.extend_from_slice(&data);
            if buf.len() >= WRITE_CHUNK {
                let chunk = buf.split().freeze();
                writer = write_chunk(writer, chunk).await?;
            }
        }
    }
    if expected_len.is_some_and(|l| l != received) {
        return Err(StorageError::ClientDisconnect);
    }
    let n = node.clone();
    let chunk = buf.freeze();
    let committed = blocking(move || {
        let mut writer = writer;
        writer.write(&chunk)?;
        let etag = writer.etag();
        if expected_etag.as_ref().is_some_and(|e| *e != etag) {
            return Ok(None);
        }
        meta.etag = etag;
        meta.size = writer.size();
        let ok = n.objects.commit(writer, &meta)?;
        Ok(Some((ok, meta)))
    })
    .await?;
    let Some((ok, meta)) = committed else {
        return Err(StorageError::EtagMismatch);
    };
    if !ok {
        return Err(StorageError::Conflict);
    }
    let (cnode, anode) = nodes(&h);
    if let Some(at) = meta.delete_at {
        node.schedule_expiry(&name, at, &cnode, &anode)?;
    }
    let row = listing_row(o, ts, &meta);
    if !cnode.is_empty() {
        node.update_container(&cnode, &anode, a, c, row).await;
    }
    Response::builder()
        .status(201)
        .header("etag", meta.etag.as_str())
        .header("last-modified", ts.http_date())
        .header("x-timestamp", ts.to_string())
        .header("content-length", 0)
        .body(body::empty())
        .map_err(|e| StorageError::Io(std::io::Error::other(e)))
}

/// The container-listing row of an object; the content type is shown as UTF-8.
pub(crate) fn listing_row(o: &str, ts: Timestamp, m: &ObjectMeta) -> ObjectRow {
    ObjectRow {
        name: o.to_string(),
        created_at: ts,
        size: m.size,
        content_type: String::from_utf8_lossy(&from_latin1(&m.content_type)).into_owned(),
        etag: m.etag.clone(),
        deleted: false,
    }
}

async fn write_chunk(mut w: ObjectWriter, chunk: Bytes) -> Result<ObjectWriter> {
    blocking(move || {
        w.write(&chunk)?;
        Ok(w)
    })
    .await
}

fn etag_list_contains(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .any(|t| t == "*" || t.trim_matches('"') == etag)
}

fn http_date_secs(v: &str) -> Option<u64> {
    httpdate::parse_http_date(v)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
}

/// 304, 412 or None, in swob's order.
fn conditional(h: &HeaderMap, m: &ObjectMeta) -> Option<u16> {
    if let Some(v) = header_str(h, "if-none-match") {
        if etag_list_contains(v, &m.etag) {
            return Some(304);
        }
    }
    if let Some(v) = header_str(h, "if-match") {
        if !etag_list_contains(v, &m.etag) {
            return Some(412);
        }
    }
    let lm = m.meta_ts.max(m.data_ts).ceil_secs();
    if let Some(t) = header_str(h, "if-modified-since").and_then(http_date_secs) {
        if lm <= t {
            return Some(304);
        }
    }
    if let Some(t) = header_str(h, "if-unmodified-since").and_then(http_date_secs) {
        if lm > t {
            return Some(412);
        }
    }
    None
}

fn object_headers(m: &ObjectMeta) -> http::response::Builder {
    let lm = m.meta_ts.max(m.data_ts);
    let mut b = Response::builder()
        .header("content-type", from_latin1(&m.content_type))
        .header("etag", m.etag.as_str())
        .header("last-modified", lm.http_date())
        .header("x-timestamp", lm.to_string())
        .header("accept-ranges", "bytes");
    for (k, v) in &m.headers {
        b = b.header(k.as_str(), from_latin1(v));
    }
    if let Some(at) = m.delete_at {
        b = b.header("x-delete-at", at);
    }
    b
}

fn build(b: http::response::Builder, body: Body) -> Result<Response<Body>> {
    b.body(body)
        .map_err(|e| StorageError::Io(std::io::Error::other(e)))
}

async fn get(node: &Arc<Node>, req: &Parts, name: String) -> Result<Response<Body>> {
    let n = node.clone();
    let head = req.method == Method::HEAD;
    let opened = blocking(move || {
        let Some(mut o) = n.objects.open_object(&name)? else {
            return Ok(None);
        };
        let inline = if !head && o.meta.size <= INLINE_READ {
            let mut v = vec![0u8; o.meta.size as usize];
            o.file.read_exact(&mut v)?;
            Some(Bytes::from(v))
        } else {
            None
        };
        Ok(Some((o, inline)))
    })
    .await?;
    let h = &req.headers;
    let Some((obj, inline)) = opened.filter(|(o, _)| !is_expired(&o.meta)) else {
        if header_str(h, "if-match").is_some_and(|v| etag_list_contains(v, "*")) {
            return Err(StorageError::PreconditionFailed);
        }
        return Err(StorageError::NotFound);
    };
    let m = &obj.meta;
    if let Some(st) = conditional(h, m) {
        let b = object_headers(m).status(st).header("content-length", 0);
        return build(b, body::empty());
    }
    let size = m.size;
    let ranges = header_str(h, "range")
        .and_then(parse_range)
        .filter(|r| !r.is_empty());
    let ranges = match ranges {
        None => None,
        Some(r) => {
            let rs = ranges_for_length(&r, size);
            if rs.is_empty() {
                let b = object_headers(m)
                    .status(416)
                    .header("content-range", format!("bytes */{size}"));
                let mut resp = reply::status(416);
                let (parts, body) = build(b, body::empty())?.into_parts();
                resp.headers_mut().extend(parts.headers);
                *resp.body_mut() = body;
                let msg = "<html><h1>Requested Range Not Satisfiable</h1><p>The Range requested is not available.</p></html>";
                resp.headers_mut()
                    .insert("content-length", msg.len().into());
                resp.headers_mut().insert(
                    "content-type",
                    "text/html; charset=UTF-8"
                        .parse()
                        .map_err(|_| StorageError::Corrupt("hdr".into()))?,
                );
                *resp.body_mut() = body::full(msg);
                return Ok(resp);
            }
            if size == 0 {
                None
            } else {
                Some(rs)
            }
        }
    };
    let b = object_headers(m);
    match ranges {
        None => {
            let b = b.status(200).header("content-length", size);
            if head {
                return build(b, body::empty());
            }
            let body = match inline {
                Some(bytes) => body::full(bytes),
                None => stream_file(obj.file, vec![(obj.data_offset, size)], vec![]),
            };
            build(b, body)
        }
        Some(rs) if rs.len() == 1 => {
            let (s, e) = rs[0];
            let b = b
                .status(206)
                .header("content-length", e - s)
                .header("content-range", format!("bytes {s}-{}/{size}", e - 1));
            if head {
                return build(b, body::empty());
            }
            let body = match inline {
                Some(bytes) => body::full(bytes.slice(s as usize..e as usize)),
                None => stream_file(obj.file, vec![(obj.data_offset + s, e - s)], vec![]),
            };
            build(b, body)
        }
        Some(rs) => {
            let boundary = format!("{:032x}", rand::random::<u128>());
            let ct = m.content_type.clone();
            let mut pieces = vec![];
            let mut total = 0u64;
            let mut preludes = vec![];
            for (i, (s, e)) in rs.iter().enumerate() {
                let pre = format!(
                    "{}--{boundary}\r\nContent-Type: {ct}\r\nContent-Range: bytes {s}-{}/{size}\r\n\r\n",
                    if i == 0 { "" } else { "\r\n" },
                    e - 1
                );
                total += pre.len() as u64 + (e - s);
                preludes.push(Bytes::from(pre));
                pieces.push((obj.data_offset + s, e - s));
            }
            let tail = format!("\r\n--{boundary}--");
            total += tail.len() as u64;
            preludes.push(Bytes::from(tail));
            let b = b.status(206).header("content-length", total);
            let body = if head {
                body::empty()
            } else {
                stream_file(obj.file, pieces, preludes)
            };
            let mut resp = build(b, body)?;
            // Replaces the object's own type set by `object_headers`.
            if let Ok(v) = format!("multipart/byteranges;boundary={boundary}").parse() {
                resp.headers_mut().insert("content-type", v);
            }
            Ok(resp)
        }
    }
}

/// Streams file sections; `preludes[i]` goes before section i, and one more after
/// the last section (multipart framing).
fn stream_file(mut file: std::fs::File, sections: Vec<(u64, u64)>, preludes: Vec<Bytes>) -> Body {
    let (tx, body) = body::channel();
    tokio::task::spawn_blocking(move || {
        let send = |b: std::io::Result<Bytes>| tx.blocking_send(b).is_ok();
        for (i, (off, len)) in sections.iter().enumerate() {
            if let Some(p) = preludes.get(i) {
                if !send(Ok(p.clone())) {
                    return;
                }
            }
            if let Err(e) = file.seek(SeekFrom::Start(*off)) {
                send(Err(e));
                return;
            }
            let mut left = *len;
            while left > 0 {
                let n = left.min(STREAM_CHUNK as u64) as usize;
                let mut buf = vec![0u8; n];
                if let Err(e) = file.read_exact(&mut buf) {
                    send(Err(e));
                    return;
                }
                left -= n as u64;
                if !send(Ok(Bytes::from(buf))) {
                    return;
                }
            }
        }
        if let Some(p) = preludes.get(sections.len()) {
            send(Ok(p.clone()));
        }
    });
    body
}

async fn post(node: &Arc<Node>, req: &Parts, name: String) -> Result<Response<Body>> {
    let h = &req.headers;
    let ts = req_ts(h)?;
    let ct = h.get("content-type").map(|v| latin1(v.as_bytes()));
    let headers = persisted(h);
    let at = delete_at(h)?;
    let n = node.clone();
    let nm = name.clone();
    let now = Timestamp::now().secs();
    let updated = blocking(move || n.objects.post(&nm, ts, ct, headers, at, now)).await?;
    let Some(m) = updated else {
        return Err(StorageError::NotFound);
    };
    let (cnode, anode) = nodes(h);
    if let Some(at) = m.delete_at {
        node.schedule_expiry(&name, at, &cnode, &anode)?;
    }
    if !cnode.is_empty() {
        // The listing shows the new content type and the POST's time, as Swift's.
        if let Some((a, c, o)) = crate::api::split_name(&name) {
            let row = listing_row(&o, ts, &m);
            node.update_container(&cnode, &anode, &a, &c, row).await;
        }
    }
    Ok(reply::status(202))
}

async fn delete(
    node: &Arc<Node>,
    req: &Parts,
    a: &str,
    c: &str,
    o: &str,
    name: String,
) -> Result<Response<Body>> {
    let h = &req.headers;
    let ts = req_ts(h)?;
    let if_delete_at = match header_str(h, "x-if-delete-at") {
        None => None,
        Some(v) => Some(
            v.trim()
                .parse::<u64>()
                .map_err(|_| StorageError::BadRequest("Bad X-If-Delete-At header value".into()))?,
        ),
    };
    if let Some(want) = if_delete_at {
        let n = node.clone();
        let nm = name.clone();
        let cur = blocking(move || n.objects.head(&nm)).await?;
        match cur {
            None => return Err(StorageError::NotFound),
            Some(m) if m.delete_at != Some(want) => {
                return Err(StorageError::Precondition(
                    "X-If-Delete-At and X-Delete-At do not match".into(),
                ))
            }
            _ => {}
        }
    }
    let n = node.clone();
    let removed = blocking(move || n.objects.delete(&name, ts)).await?;
    let Some(m) = removed else {
        return Err(StorageError::NotFound);
    };
    let (cnode, anode) = nodes(h);
    if !cnode.is_empty() {
        let row = ObjectRow {
            name: o.to_string(),
            created_at: ts,
            size: 0,
            content_type: String::new(),
            etag: String::new(),
            deleted: true,
        };
        node.update_container(&cnode, &anode, a, c, row).await;
    }
    if is_expired(&m) {
        return Err(StorageError::NotFound);
    }
    Ok(reply::status(204))
}
