//! An agent beside an OpenStack Swift object server (`[exec]
//! swift_object_server`): the object a session is attached to is read from
//! that object server's replica, on loopback, through Swift's own backend
//! API (`GET /{device}/{partition}/{a}/{c}/{o}`), never from Swift's disk
//! layout directly: the object server alone knows its on-disk format,
//! quarantines, tombstones and expiry. The proxy chose this agent because
//! the object server answered a HEAD for that replica (docs/swift-backend.md).

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request};
use sysmap::render::LocalObject;
use wire::body::Body;

use super::session::{spool, Chunks, Data};
use super::Agent;
use crate::error::StorageError;

/// Largest object Swift stores (its default `max_file_size`).
const MAX_OBJECT: u64 = 5 << 30;

/// The object server's response body, chunk by chunk.
struct Replica(Incoming);

impl Chunks for Replica {
    async fn next(&mut self) -> Result<Option<Bytes>, StorageError> {
        loop {
            match self.0.frame().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(StorageError::Io(std::io::Error::other(format!(
                        "reading the replica: {e}"
                    ))))
                }
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

/// Reads the replica at `path` (policy index `policy`) from the Swift
/// object server `server`: its bytes and the metadata the `LOCAL_*`
/// variables are made of. `name` (`/a/c/o`) is for messages.
pub(super) async fn fetch(
    agent: &Agent,
    server: &str,
    path: &str,
    policy: Option<&str>,
    trans_id: &str,
    name: &str,
) -> Result<(Data, LocalObject), StorageError> {
    let mut req = Request::builder()
        .method(Method::GET)
        .uri(format!("http://{server}{path}"))
        .header("x-trans-id", trans_id);
    if let Some(p) = policy {
        req = req.header("x-backend-storage-policy-index", p);
    }
    let req = req
        .body(Body::empty())
        .map_err(|e| StorageError::BadRequest(format!("replica path {path:?}: {e}")))?;
    let resp = agent
        .client
        .request(req)
        .await
        .map_err(|e| StorageError::Unavailable {
            message: format!(
                "The Swift object server {server} did not answer: {}",
                wire::client::describe(&e)
            ),
            retry_after: None,
        })?;
    match resp.status().as_u16() {
        200 => {}
        404 => {
            return Err(StorageError::Missing(format!(
                "Error 404 Not Found while fetching {name}"
            )))
        }
        s => {
            return Err(StorageError::Unavailable {
                message: format!(
                    "Error {s} from the Swift object server {server} while fetching {name}"
                ),
                retry_after: None,
            })
        }
    }
    let local = local_object(resp.headers());
    let data = spool(agent, &mut Replica(resp.into_body()), MAX_OBJECT).await?;
    Ok((data, local))
}

/// The `LOCAL_*` metadata of an object from its HTTP headers (an object
/// server's or proxy's response, or a streamed part's).
pub(super) fn local_object(h: &hyper::HeaderMap) -> LocalObject {
    let pairs = h
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())));
    local_object_of(pairs)
}

/// The same, from name/value pairs.
pub(super) fn local_object_of(pairs: impl Iterator<Item = (String, String)>) -> LocalObject {
    let mut content_length = 0;
    let mut metadata = Vec::new();
    for (k, v) in pairs {
        let lower = k.to_ascii_lowercase();
        if lower == "content-length" {
            content_length = v.trim().parse().unwrap_or(0);
            continue;
        }
        if !wire::exec::is_local_metadata(&lower) {
            continue;
        }
        let (name, v) = match lower.as_str() {
            "content-type" => ("Content-Type".to_string(), v),
            // Swift's servers quote it; the variable never was.
            "etag" => ("ETag".to_string(), v.trim_matches('"').to_string()),
            "x-timestamp" => ("X-Timestamp".to_string(), v),
            "content-encoding" => ("Content-Encoding".to_string(), v),
            _ => (k, v),
        };
        metadata.push((name, v));
    }
    LocalObject {
        content_length,
        metadata,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_local_variables_show_is_kept() {
        let mut h = hyper::HeaderMap::new();
        for (k, v) in [
            ("content-length", "12"),
            ("content-type", "text/plain"),
            ("etag", "\"abc\""),
            ("x-timestamp", "1700000000.00000"),
            ("x-object-meta-color", "blue"),
            ("x-backend-timestamp", "1700000000.00000"),
            ("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT"),
        ] {
            h.insert(k, v.parse().unwrap());
        }
        let l = local_object(&h);
        assert_eq!(l.content_length, 12);
        let names: Vec<&str> = l.metadata.iter().map(|(k, _)| k.as_str()).collect();
        assert!(l.metadata.contains(&("ETag".into(), "abc".into())));
        assert_eq!(
            names,
            ["Content-Type", "ETag", "X-Timestamp", "x-object-meta-color"]
        );
    }
}
