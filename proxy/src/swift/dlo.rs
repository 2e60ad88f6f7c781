//! Dynamic large objects: an object with `X-Object-Manifest: <container>/<prefix>`
//! reads as the concatenation of the objects under that prefix, in name order
//! (how `swift upload --segment-size` stores big files without SLO).

use http_body_util::BodyExt;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Response};
use md5::{Digest, Md5};
use wire::body::{self, Body};
use wire::range::{parse_range, ranges_for_length};

use crate::context::{RequestCtx, SwiftPath};
use crate::error::ProxyError;
use crate::storage::Target;
use crate::swift::SwiftApi;

/// One segment as the container listing describes it.
struct Segment {
    name: String,
    bytes: u64,
    hash: String,
}

impl SwiftApi {
    /// Answers a GET/HEAD of a manifest object. `manifest` is the storage's
    /// response for the manifest object itself.
    pub(crate) async fn dlo_response(
        &self,
        ctx: &RequestCtx,
        method: &Method,
        req_headers: &HeaderMap,
        manifest: Response<Body>,
    ) -> Result<Response<Body>, ProxyError> {
        let (parts, _) = manifest.into_parts();
        let value = parts
            .headers
            .get("x-object-manifest")
            .map(|v| {
                percent_encoding::percent_decode(v.as_bytes())
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .unwrap_or_default();
        let Some((container, prefix)) = value.split_once('/').filter(|(c, _)| !c.is_empty()) else {
            return Err(ProxyError::bad_request(
                "X-Object-Manifest must be in the format container/prefix",
            ));
        };
        let account = ctx.path.account.as_str();
        let info = self.container_info(ctx, account, container).await?;
        let acl = info.as_ref().and_then(|i| i.read_acl.clone());
        let seg_path = SwiftPath::object(account, container, prefix);
        self.authorize(ctx, &Method::GET, &seg_path, acl.as_deref())
            .await?;
        let segments = if info.is_some() {
            self.list_segments(ctx, account, container, prefix).await?
        } else {
            vec![]
        };
        let total: u64 = segments.iter().map(|s| s.bytes).sum();
        // Swift's DLO ETag: the MD5 of the segments' ETags, concatenated.
        let mut md5 = Md5::new();
        for s in &segments {
            md5.update(s.hash.as_bytes());
        }
        let etag = hex::encode(md5.finalize());

        let mut headers = parts.headers.clone();
        for k in ["content-length", "etag", "content-range", "accept-ranges"] {
            headers.remove(k);
        }
        let range = req_headers
            .get("range")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_range)
            .filter(|r| !r.is_empty());
        let (status, start, end) = match range {
            None => (200, 0, total),
            Some(r) => {
                let rs = ranges_for_length(&r, total);
                match rs.as_slice() {
                    [] if total > 0 => {
                        let mut resp = wire::reply::status(416);
                        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                            resp.headers_mut().insert("content-range", v);
                        }
                        return Ok(resp);
                    }
                    [(s, e)] if total > 0 => (206, *s, *e),
                    // Several ranges over a DLO: the whole object (documented).
                    _ => (200, 0, total),
                }
            }
        };
        let mut b = Response::builder().status(status);
        for (k, v) in &headers {
            b = b.header(k, v);
        }
        b = b
            .header("content-length", end - start)
            .header("etag", format!("\"{etag}\""))
            .header("accept-ranges", "bytes");
        if status == 206 {
            b = b.header(
                "content-range",
                format!("bytes {start}-{}/{total}", end - 1),
            );
        }
        if *method == Method::HEAD || end == start {
            return Ok(b.body(body::empty())?);
        }
        let (tx, body) = body::channel();
        let storage = self.storage.clone();
        let (a, c) = (account.to_string(), container.to_string());
        // The segment reads outlive this handler: they take the trans-id along.
        let tx_id = ctx.trans_id.clone();
        let span = tracing::Span::current();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let mut offset = 0u64;
                for s in segments {
                    let (seg_start, seg_end) = (offset, offset + s.bytes);
                    offset = seg_end;
                    if seg_end <= start || seg_start >= end || s.bytes == 0 {
                        continue;
                    }
                    let from = start.max(seg_start) - seg_start;
                    let to = end.min(seg_end) - seg_start;
                    let mut h = HeaderMap::new();
                    if let Ok(v) = HeaderValue::from_str(&format!("bytes={from}-{}", to - 1)) {
                        h.insert("range", v);
                    }
                    let mut req = hyper::Request::new(body::empty());
                    *req.headers_mut() = h;
                    let resp = match storage
                        .send(&tx_id, Target::Object(&a, &c, &s.name), req)
                        .await
                    {
                        Ok(r) if r.status().is_success() => r,
                        _ => {
                            let _ = tx
                                .send(Err(std::io::Error::other(format!(
                                    "segment {} unavailable",
                                    s.name
                                ))))
                                .await;
                            return;
                        }
                    };
                    let mut b = resp.into_body();
                    while let Some(frame) = b.frame().await {
                        match frame {
                            Ok(f) => {
                                if let Ok(data) = f.into_data() {
                                    if tx.send(Ok(data)).await.is_err() {
                                        return;
                                    }
                                }
                            }
                            Err(e) => {
                                let _ = tx.send(Err(std::io::Error::other(e))).await;
                                return;
                            }
                        }
                    }
                }
            },
            span,
        ));
        Ok(b.body(body)?)
    }

    /// Every object under `prefix`, in name order, through paged JSON listings.
    async fn list_segments(
        &self,
        ctx: &RequestCtx,
        a: &str,
        c: &str,
        prefix: &str,
    ) -> Result<Vec<Segment>, ProxyError> {
        let mut out: Vec<Segment> = vec![];
        loop {
            let marker = out.last().map(|s| s.name.as_str()).unwrap_or("");
            let query: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("format", "json")
                .append_pair("prefix", prefix)
                .append_pair("marker", marker)
                .finish();
            let resp = self
                .call(
                    ctx,
                    Target::Container(a, c),
                    Method::GET,
                    HeaderMap::new(),
                    Some(&query),
                    body::empty(),
                )
                .await?;
            if !resp.status().is_success() {
                return Ok(out);
            }
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| ProxyError::Backend(e.to_string()))?
                .to_bytes();
            let page: Vec<serde_json::Value> = if bytes.is_empty() {
                vec![]
            } else {
                serde_json::from_slice(&bytes)
                    .map_err(|e| ProxyError::Internal(format!("listing: {e}")))?
            };
            let n = page.len();
            for e in page {
                let (Some(name), Some(b)) = (e["name"].as_str(), e["bytes"].as_u64()) else {
                    continue;
                };
                out.push(Segment {
                    name: name.to_string(),
                    bytes: b,
                    hash: e["hash"].as_str().unwrap_or("").to_string(),
                });
            }
            if n < crate::swift::CONTAINER_LISTING_LIMIT {
                return Ok(out);
            }
        }
    }
}
