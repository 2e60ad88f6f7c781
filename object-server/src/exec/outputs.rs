//! After a run: the session's `X-Nexe-*` headers, the attached output's
//! listing update (the run committed the object itself), and the other
//! outputs streamed back to the proxy as parts (spec/zerocloud.md §3.3,
//! §4.4).
//!
//! A session **succeeded** when the program exited normally with code 0.
//! Only then is anything stored: the attached object here, the outputs
//! with a `swift://` path by the proxy. A failed session (non-zero exit,
//! timeout, trap, out of memory, a dead worker) stores nothing, leaves any
//! older object as it was, and says why in `X-Nexe-Error`; its immediate
//! output is still returned (ZeroCloud did the same, and a traceback on
//! stderr is what its user needs).

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hyper::Response;
use sandbox::report::{Ending, UNKNOWN_STATE};
use wire::body::{self, Body};
use wire::exec::{encode_chunk, encode_header, PartHeader, CHUNK, END, SERVER_HEADER};

use super::cgi;
use super::session::{Output, OutputData, Ran};
use super::Agent;
use crate::api::{split_name, Node};
use crate::error::StorageError;

/// The response to the proxy for a finished run.
pub async fn respond(
    node: &Arc<Node>,
    agent: &Agent,
    ran: Ran,
    started: Instant,
) -> Result<Response<Body>, StorageError> {
    let Ran {
        plan,
        outcome,
        outputs,
        stored,
        listing_nodes,
    } = ran;
    let report = &outcome.report;
    let succeeded = matches!(outcome.ending, Ending::Exited) && report.user_code == 0;
    let status = one_line(report.exit_state.as_deref().unwrap_or(UNKNOWN_STATE));
    let mut b = Response::builder()
        .status(200)
        .header("x-nexe-system", plan.node.name.as_str())
        .header("x-nexe-status", status.as_str())
        .header("x-nexe-retcode", report.user_code)
        .header("x-nexe-etag", report.etag_line())
        .header("x-nexe-validation", report.validation as u16)
        .header(
            "x-nexe-cdr-line",
            format!(
                "{:.3}, {}",
                started.elapsed().as_secs_f64(),
                report.accounting
            ),
        )
        .header("x-nexe-policy", "Policy-0")
        .header(SERVER_HEADER, agent.name.as_str())
        .header("x-timestamp", plan.timestamp.as_str());
    if !succeeded {
        let why = match (&outcome.ending, &outcome.detail) {
            (Ending::Exited, _) => "bad return code".to_string(),
            (_, Some(detail)) => one_line(&format!("{status}: {detail}")),
            (_, None) => status.clone(),
        };
        b = b.header("x-nexe-error", why);
    }

    // The attached output is stored: its listing is updated as for a PUT.
    if let Some(meta) = stored {
        let (cnode, anode) = &listing_nodes;
        if !cnode.is_empty() {
            if let Some((a, c, o)) = split_name(&meta.name) {
                let row = crate::object_api::listing_row(&o, meta.data_ts, &meta);
                node.update_container(cnode, anode, &a, &c, row).await;
            }
        }
    }

    // Outputs the proxy stores (only after success), then the immediate
    // one: the first path-less output.
    let mut outputs = outputs;
    let mut parts = Vec::new();
    let mut immediate = None;
    for ch in &plan.node.channels {
        let Some(i) = outputs.iter().position(|o| o.device == ch.device) else {
            continue;
        };
        let mut out = outputs.swap_remove(i);
        if out.len < ch.min_size {
            continue;
        }
        let mut header = PartHeader {
            name: ch.device.clone(),
            len: Some(out.len),
            path: ch.swift_path().map(|p| p.url()),
            content_type: Some(ch.content_type.clone()),
            headers: ch
                .meta
                .iter()
                .map(|(k, v)| (format!("X-Object-Meta-{k}"), v.clone()))
                .collect(),
            ..PartHeader::default()
        };
        // A program's HTTP answer: its status and headers go with the
        // part (they replace the device's meta), its body is the data.
        if let Some(nph) = cgi::kind(&ch.content_type) {
            if let Some(answer) = answer_of(&mut out, nph) {
                if let Some(ct) = answer.content_type() {
                    header.content_type = Some(ct.to_string());
                }
                header.headers = answer
                    .headers
                    .iter()
                    .filter(|(k, _)| !k.eq_ignore_ascii_case("content-type"))
                    .cloned()
                    .collect();
                header.headers.push(("Status".into(), answer.status));
                header.len = Some(out.len);
            }
        }
        match &header.path {
            Some(_) if succeeded => parts.push((header, out.data)),
            Some(_) => {}
            None if immediate.is_none() => immediate = Some((header, out.data)),
            None => {}
        }
    }
    parts.extend(immediate);

    let (tx, body) = body::channel();
    tokio::spawn(async move {
        for (header, data) in parts {
            if tx.send(Ok(encode_header(&header))).await.is_err() {
                return;
            }
            match data {
                OutputData::Small(bytes) => {
                    for piece in bytes.chunks(CHUNK) {
                        if !send_chunk(&tx, bytes.slice_ref(piece)).await {
                            return;
                        }
                    }
                }
                OutputData::File(mut file) => loop {
                    let read = tokio::task::spawn_blocking(move || {
                        let mut buf = vec![0u8; CHUNK * 4];
                        let n = file.read(&mut buf)?;
                        buf.truncate(n);
                        Ok::<_, std::io::Error>((file, buf))
                    })
                    .await;
                    let (f, buf) = match read {
                        Ok(Ok(r)) => r,
                        Ok(Err(e)) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(std::io::Error::other(e))).await;
                            return;
                        }
                    };
                    file = f;
                    if buf.is_empty() {
                        break;
                    }
                    let buf = Bytes::from(buf);
                    for piece in buf.chunks(CHUNK) {
                        if !send_chunk(&tx, buf.slice_ref(piece)).await {
                            return;
                        }
                    }
                },
            }
            if tx.send(Ok(END)).await.is_err() {
                return;
            }
        }
        let _ = tx.send(Ok(END)).await;
    });
    b.body(body)
        .map_err(|e| StorageError::Io(std::io::Error::other(e)))
}

/// Parses an output as a program's HTTP answer and moves its data past
/// the header block; `None` (the output untouched) when it does not parse.
fn answer_of(out: &mut Output, nph: bool) -> Option<cgi::Answer> {
    use std::io::{Seek, SeekFrom};
    let answer = match &out.data {
        OutputData::Small(bytes) => cgi::parse(bytes, out.len <= cgi::MAX_HEAD as u64, nph)?,
        // A file that cannot be read back is sent as it is (and fails there).
        OutputData::File(f) => cgi::parse_file(f, 0, out.len, nph).ok()??,
    };
    let at = answer.body_at as u64;
    match &mut out.data {
        OutputData::Small(bytes) => *bytes = bytes.slice(answer.body_at.min(bytes.len())..),
        OutputData::File(f) => {
            f.seek(SeekFrom::Start(at)).ok()?;
        }
    }
    out.len = out.len.saturating_sub(at);
    Some(answer)
}

async fn send_chunk(
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    data: Bytes,
) -> bool {
    let Some(frame) = encode_chunk(data) else {
        return true;
    };
    for piece in frame {
        if tx.send(Ok(piece)).await.is_err() {
            return false;
        }
    }
    true
}

/// A header value on one line.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim_end()
        .to_string()
}
