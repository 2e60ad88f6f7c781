//! After a run: the session's `X-Nexe-*` headers, the attached output
//! committed as an object (or dropped), and the other outputs streamed
//! back to the proxy as parts (spec/zerocloud.md §3.3, §4.4).
//!
//! A session **succeeded** when the program exited normally with code 0.
//! Only then is anything stored: the attached object here, the outputs
//! with a `swift://` path by the proxy. A failed session (non-zero exit,
//! timeout, trap, out of memory, a dead worker) stores nothing, leaves any
//! older object as it was, and says why in `X-Nexe-Error`; its immediate
//! output is still returned (ZeroCloud did the same, and a traceback on
//! stderr is what its user needs).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hyper::Response;
use sandbox::report::{Ending, UNKNOWN_STATE};
use tokio::io::AsyncReadExt;
use wire::body::{self, Body};
use wire::exec::{encode_chunk, encode_header, PartHeader, CHUNK, END, SERVER_HEADER};

use super::session::Ran;
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
        mut prepared,
        outcome,
    } = ran;
    let report = &outcome.report;
    let succeeded = matches!(outcome.ending, Ending::Exited) && report.user_code == 0;
    let plan = &prepared.plan;
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

    if let Some(out) = prepared.attached_output.take() {
        if succeeded {
            commit(node, out, &prepared.listing_nodes).await?;
        }
    }

    let mut parts: Vec<(PartHeader, PathBuf)> = Vec::new();
    let mut immediate = None;
    for ch in &plan.node.channels {
        let Some(path) = prepared.outputs.get(&ch.device) else {
            continue;
        };
        let len = std::fs::metadata(path)?.len();
        if len < ch.min_size {
            continue;
        }
        let header = PartHeader {
            name: ch.device.clone(),
            len: Some(len),
            path: ch.swift_path().map(|p| p.url()),
            content_type: Some(ch.content_type.clone()),
            headers: ch
                .meta
                .iter()
                .map(|(k, v)| (format!("X-Object-Meta-{k}"), v.clone()))
                .collect(),
            ..PartHeader::default()
        };
        match &header.path {
            Some(_) if succeeded => parts.push((header, path.clone())),
            Some(_) => {}
            None if immediate.is_none() => immediate = Some((header, path.clone())),
            None => {}
        }
    }
    parts.extend(immediate);

    let (tx, body) = body::channel();
    let dir = prepared.dir;
    tokio::spawn(async move {
        for (header, path) in parts {
            if tx.send(Ok(encode_header(&header))).await.is_err() {
                return;
            }
            let mut file = match tokio::fs::File::open(&path).await {
                Ok(f) => f,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            loop {
                let mut buf = vec![0u8; CHUNK];
                let n = match file.read(&mut buf).await {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                if n == 0 {
                    break;
                }
                buf.truncate(n);
                if let Some(frame) = encode_chunk(Bytes::from(buf)) {
                    for piece in frame {
                        if tx.send(Ok(piece)).await.is_err() {
                            return;
                        }
                    }
                }
            }
            if tx.send(Ok(END)).await.is_err() {
                return;
            }
        }
        let _ = tx.send(Ok(END)).await;
        // The session's files go once everything was sent.
        drop(dir);
    });
    b.body(body)
        .map_err(|e| StorageError::Io(std::io::Error::other(e)))
}

/// Stores the attached output: its data is already in the object file,
/// after the reserved header; the header is written and the file renamed
/// into place, then the container listing is updated, as for a PUT.
async fn commit(
    node: &Arc<Node>,
    out: super::session::AttachedOutput,
    listing_nodes: &(String, String),
) -> Result<(), StorageError> {
    let n = node.clone();
    let super::session::AttachedOutput {
        mut writer,
        mut meta,
        ..
    } = out;
    let stored = tokio::task::spawn_blocking(move || {
        writer.adopt_data()?;
        meta.etag = writer.etag();
        meta.size = writer.size();
        let ok = n.objects.commit(writer, &meta)?;
        Ok::<_, StorageError>((ok, meta))
    })
    .await??;
    let (ok, meta) = stored;
    if !ok {
        // A newer object arrived meanwhile: it stays.
        return Ok(());
    }
    let (cnode, anode) = listing_nodes;
    if !cnode.is_empty() {
        if let Some((a, c, o)) = split_name(&meta.name) {
            let row = crate::object_api::listing_row(&o, meta.data_ts, &meta);
            node.update_container(cnode, anode, &a, &c, row).await;
        }
    }
    Ok(())
}

/// A header value on one line.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim_end()
        .to_string()
}
