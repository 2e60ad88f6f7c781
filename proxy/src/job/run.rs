//! Running a compiled job's sessions: each placed on the exec agent that
//! holds its attached object (any agent when it has none), sent its plan,
//! then fed its inputs. Every input is read once per job: the user image,
//! the payload, and each remote object (fetched with one GET before any
//! session starts, so a missing input fails the job before anything runs)
//! are streamed chunk by chunk to every session that needs them. The proxy
//! holds at most a few chunks per session: nothing is buffered whole.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use hyper::{Method, Request, Response};
use sysmap::location::{Location, SwiftPath as JobPath};
use sysmap::plan::{AttachMode, Direction, JobPlan, NodePlan};
use tokio::sync::mpsc;
use wire::body::Body;
use wire::exec::{
    encode_chunk, encode_header, encode_part, AttachedFrom, ExecRequest, PartHeader, Reservation,
    Reserved, BOOT_PART, END, PLAN_PART,
};

use super::authorize::{fetch, Fetched};
use super::catalog::fetch_listing;
use super::intake::Source;
use crate::context::RequestCtx;
use crate::error::ProxyError;
use crate::storage::Target;
use crate::swift::SwiftApi;

/// Longest wait for an agent to take the next chunk of an input.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long after its inputs were sent a session's agent may take to
/// answer beyond the session timeout (spooling, starting, outputs).
const ANSWER_GRACE: Duration = Duration::from_secs(10);

/// One session: a node (or one of its replicas) on one agent.
pub(super) struct Session {
    pub node: NodePlan,
    pub agent: String,
    /// How it got its attached object (`X-Zerocloud-Placement`): `local`
    /// (on the agent's node), `streamed` (by the proxy), `none`.
    pub placement: &'static str,
    /// The agent's answer, or why there is none.
    pub answer: Result<Response<Body>, ProxyError>,
}

/// What the proxy reads for an input: an object, or (an attached
/// container no agent holds) a container's listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Read {
    Object,
    Listing,
}

/// Where an input's bytes come from.
enum Origin {
    Stream(Source),
    Object(Fetched),
}

/// One input of the job and the sessions that receive it (by index, with
/// the part name each gets: a device name or [`BOOT_PART`]).
struct Input {
    from: Origin,
    to: Vec<(usize, String)>,
    gzip: bool,
}

/// Places, starts and feeds every session of `plan`; returns when each
/// agent has answered (or failed to).
pub(super) async fn start(
    api: &std::sync::Arc<SwiftApi>,
    ctx: &RequestCtx,
    job_id: &str,
    plan: JobPlan,
    image: Option<Source>,
    payload: Option<Source>,
) -> Result<Vec<Session>, ProxyError> {
    let timeout = api.cfg.zerocloud.timeout;
    // Where each node can run (asked for every node at once), then its
    // sessions in ZeroCloud's order: by node id, replicas after each node.
    let places = futures_util::future::join_all(
        plan.nodes
            .iter()
            .map(|node| api.storage.places(&ctx.trans_id, attached_target(node))),
    )
    .await;
    let mut placed = Vec::new();
    let mut attached: Vec<AttachedFrom> = Vec::new();
    for (node, places) in plan.nodes.into_iter().zip(places) {
        let places = places?;
        for replica in 0..node.replicate.max(1) {
            // Replica k on the k-th candidate, so an unattached node's
            // replicas run on different servers where there are several.
            let pick = (replica as usize).checked_rem(places.len()).unwrap_or(0);
            let place = places
                .get(pick)
                .cloned()
                .ok_or_else(|| ProxyError::Unavailable {
                    message: "Cannot find suitable node to execute code on".into(),
                    retry_after: None,
                })?;
            placed.push((node.clone(), replica, place.agent));
            attached.push(place.attached);
        }
    }

    // The inputs, in the order every session receives them.
    let mut inputs: Vec<Input> = Vec::new();
    if let Some(image) = image {
        let gzip = image.gzip;
        let to = sessions_with(&placed, |n| {
            n.channels
                .iter()
                .filter(|c| c.removable)
                .map(|c| c.device.clone())
                .collect()
        });
        inputs.push(Input {
            from: Origin::Stream(image),
            to,
            gzip,
        });
    }
    if let Some(payload) = payload {
        let to = sessions_with(&placed, |n| {
            n.payload_channel()
                .map(|c| c.device.clone())
                .into_iter()
                .collect()
        });
        inputs.push(Input {
            from: Origin::Stream(payload),
            to,
            gzip: false,
        });
    }
    // Remote objects: fetched once each, whoever reads them.
    let mut objects: BTreeMap<(JobPath, Read), usize> = BTreeMap::new();
    let mut order: Vec<(JobPath, Read)> = Vec::new();
    let mut wanted: Vec<Vec<(usize, String)>> = Vec::new();
    for (i, (node, _, _)) in placed.iter().enumerate() {
        let mut reads: Vec<(JobPath, Read, String)> = node
            .remote_reads()
            .filter(|c| !c.removable)
            .filter_map(|c| {
                c.swift_path()
                    .map(|p| (p.clone(), Read::Object, c.device.clone()))
            })
            .collect();
        // An attached object no agent holds comes the same way, with its
        // metadata in the part's headers; an attached container as its
        // listing.
        if let (AttachedFrom::Streamed, AttachMode::Read, Some(t), Some(ch)) = (
            &attached[i],
            node.placement.attach,
            &node.placement.target,
            node.attached_channel(),
        ) {
            let how = match t.object {
                Some(_) => Read::Object,
                None => Read::Listing,
            };
            reads.push((t.clone(), how, ch.device.clone()));
        }
        if let Location::Swift(p) = &node.exe {
            reads.push((p.clone(), Read::Object, BOOT_PART.to_string()));
        }
        for (p, how, name) in reads {
            let k = *objects.entry((p.clone(), how)).or_insert_with(|| {
                order.push((p, how));
                wanted.push(Vec::new());
                order.len() - 1
            });
            wanted[k].push((i, name));
        }
    }
    let fetched = futures_util::future::join_all(order.iter().map(|(p, how)| async move {
        match how {
            Read::Object => fetch(api, ctx, p).await,
            Read::Listing => fetch_listing(api, ctx, p).await,
        }
    }))
    .await;
    for (f, to) in fetched.into_iter().zip(wanted) {
        inputs.push(Input {
            from: Origin::Object(f?),
            to,
            gzip: false,
        });
    }

    // Connected sessions must all run at once and find each other: each is
    // reserved first (a slot now, and its listeners bound), then told where
    // its outgoing channels connect.
    let (mut tokens, mut networks) = if placed.iter().any(|(n, _, _)| !n.connections.is_empty()) {
        reserve(api, ctx, job_id, &placed).await?
    } else {
        (
            vec![None; placed.len()],
            vec![BTreeMap::new(); placed.len()],
        )
    };

    // Each session's plan announces its inputs in feeding order.
    let mut announced: Vec<Vec<String>> = vec![Vec::new(); placed.len()];
    for input in &inputs {
        for (s, name) in &input.to {
            announced[*s].push(name.clone());
        }
    }
    let mut senders = Vec::with_capacity(placed.len());
    let mut requests = Vec::with_capacity(placed.len());
    for (i, (node, replica, agent)) in placed.iter().enumerate() {
        let plan = ExecRequest {
            job_id: job_id.to_string(),
            node: node.clone(),
            replica: *replica,
            timeout,
            timestamp: api.next_ts().to_string(),
            inputs: std::mem::take(&mut announced[i]),
            network: std::mem::take(&mut networks[i]),
            reservation: tokens[i].take(),
            attached: attached[i].clone(),
        };
        let plan = serde_json::to_vec(&plan)
            .map_err(|e| ProxyError::Internal(format!("plan of {}: {e}", node.name)))?;
        let first = encode_part(
            &PartHeader {
                name: PLAN_PART.into(),
                len: Some(plan.len() as u64),
                ..PartHeader::default()
            },
            &plan,
        );
        let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(8);
        // Room for 8: never blocks.
        let _ = tx.try_send(Ok(first));
        senders.push(Some(tx));
        let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }));
        requests.push((node, agent, body));
    }

    // Sessions of a job that share an agent may wait there for its workers
    // (an agent admits every session of a job it started): each may take
    // the timeout in turn before the last one answers.
    let mut per_agent: BTreeMap<String, u32> = BTreeMap::new();
    for (_, _, agent) in &placed {
        *per_agent.entry(agent.clone()).or_default() += 1;
    }
    let (fed_tx, fed_rx) = tokio::sync::watch::channel(false);
    let feeder = async move {
        feed(inputs, &mut senders).await;
        for tx in senders.iter_mut() {
            if let Some(t) = tx.take() {
                let _ = tokio::time::timeout(SEND_TIMEOUT, t.send(Ok(END))).await;
            }
        }
        let _ = fed_tx.send(true);
    };
    let answers =
        futures_util::future::join_all(requests.into_iter().map(|(node, agent, body)| {
            let mut fed = fed_rx.clone();
            let turns = per_agent.get(agent.as_str()).copied().unwrap_or(1);
            async move {
                let req = Request::builder()
                    .method(Method::POST)
                    .uri("/")
                    .header("content-type", "application/x-zerocloud-exec")
                    .body(body)?;
                let writes = match (&node.placement.attach, &node.placement.target) {
                    (AttachMode::Write, Some(t)) => object_target(t),
                    _ => None,
                };
                let path = wire::exec::exec_path(&node.placement.path_info);
                let call = api.storage.exec(&ctx.trans_id, agent, path, writes, req);
                let deadline = async {
                    let _ = fed.wait_for(|done| *done).await;
                    tokio::time::sleep((Duration::from_secs(timeout) + ANSWER_GRACE) * turns).await;
                };
                tokio::select! {
                    r = call => r,
                    _ = deadline => Err(ProxyError::Timeout(format!(
                        "Timeout: trying to get final status of POST to {}",
                        node.placement.path_info
                    ))),
                }
            }
        }));
    let ((), answers) = tokio::join!(feeder, answers);
    Ok(placed
        .into_iter()
        .zip(attached)
        .zip(answers)
        .map(|(((node, _, agent), attached), answer)| Session {
            placement: match node.placement.attach {
                AttachMode::None => "none",
                _ => attached.label(),
            },
            node,
            agent,
            answer,
        })
        .collect())
}

/// Reserves every session of a connected job (see `wire::exec`): all of
/// them get a slot and their listeners, or none does and the job is
/// refused (503 `Slot not available` when an agent had no slot): a job
/// never waits holding part of its slots. Returns each session's token and
/// the manifest sources of its outgoing channels.
async fn reserve(
    api: &SwiftApi,
    ctx: &RequestCtx,
    job_id: &str,
    placed: &[(NodePlan, u32, String)],
) -> Result<(Vec<Option<String>>, Vec<BTreeMap<String, String>>), ProxyError> {
    let calls = placed.iter().map(|(node, replica, agent)| async move {
        let body = serde_json::to_vec(&Reservation {
            job_id: job_id.to_string(),
            node: node.clone(),
            replica: *replica,
        })
        .map_err(|e| ProxyError::Internal(format!("reservation of {}: {e}", node.name)))?;
        let req = Request::builder()
            .method(Method::POST)
            .uri("/")
            .header("content-type", "application/json")
            .body(Body::from(body))?;
        let path = wire::exec::reserve_path(&node.placement.path_info);
        let resp = api
            .storage
            .exec(&ctx.trans_id, agent, path, None, req)
            .await?;
        let status = resp.status().as_u16();
        let retry = resp.headers().get("retry-after").is_some();
        let body = error_text(resp.into_body()).await;
        if status != 200 {
            return Err(match status {
                503 => ProxyError::Unavailable {
                    message: body,
                    retry_after: retry.then_some(1),
                },
                _ => ProxyError::Backend(format!("{agent}: reservation: {status} {body}")),
            });
        }
        serde_json::from_str::<Reserved>(&body)
            .map_err(|e| ProxyError::Backend(format!("{agent}: reservation: {e}")))
    });
    let replies = futures_util::future::join_all(calls).await;
    if replies.iter().any(Result::is_err) {
        // Give back what was reserved, then report the first refusal.
        let releases = placed
            .iter()
            .zip(&replies)
            .filter_map(|((_, _, agent), r)| {
                let token = r.as_ref().ok()?.token.clone();
                Some(async move {
                    let req = Request::builder()
                        .method(Method::DELETE)
                        .uri("/")
                        .body(Body::empty())
                        .ok()?;
                    let path = wire::exec::reservation_path(&token);
                    api.storage
                        .exec(&ctx.trans_id, agent, path, None, req)
                        .await
                        .ok()
                })
            });
        futures_util::future::join_all(releases).await;
        let first = replies.into_iter().find_map(Result::err);
        return Err(first.unwrap_or_else(|| ProxyError::Internal("a reservation failed".into())));
    }
    let reserved: Vec<Reserved> = replies.into_iter().filter_map(Result::ok).collect();
    // Session index of (node id, replica).
    let index: BTreeMap<(u32, u32), usize> = placed
        .iter()
        .enumerate()
        .map(|(i, (n, r, _))| ((n.id, *r), i))
        .collect();
    let mut networks = vec![BTreeMap::new(); placed.len()];
    for (i, (node, replica, _)) in placed.iter().enumerate() {
        for c in node
            .connections
            .iter()
            .filter(|c| c.direction == Direction::Out)
        {
            let mut sources = Vec::new();
            for k in 0..c.peer_replicate.max(1) {
                let Some(&j) = index.get(&(c.peer_id, k)) else {
                    continue;
                };
                // The reader's alias for this connection, and the listener
                // of this writer replica.
                let reader = &placed[j].0;
                let alias = reader
                    .connections
                    .iter()
                    .find(|rc| rc.direction == Direction::In && rc.peer == node.name)
                    .map(|rc| rc.device.as_str());
                let addr = alias
                    .and_then(|a| reserved[j].bound.get(a))
                    .and_then(|addrs| addrs.get(*replica as usize));
                if let Some(addr) = addr {
                    sources.push(format!("tcp:{addr}"));
                }
            }
            networks[i].insert(c.device.clone(), sources.join(";"));
        }
    }
    Ok((
        reserved.into_iter().map(|r| Some(r.token)).collect(),
        networks,
    ))
}

/// Streams every input to its sessions, one after another. A session whose
/// agent stopped reading (it answered early, or went away) is dropped from
/// the feeding; the others go on.
async fn feed(
    inputs: Vec<Input>,
    senders: &mut [Option<mpsc::Sender<Result<Bytes, std::io::Error>>>],
) {
    for input in inputs {
        // A stored object's type and metadata go with it.
        let mut meta: (Option<String>, Vec<(String, String)>) = (None, Vec::new());
        let (mut body, len) = match input.from {
            Origin::Stream(s) => {
                let len = s.len;
                (s.into_body().into_data_stream(), len)
            }
            Origin::Object(f) => {
                meta = (Some(f.content_type), f.headers);
                (f.body.into_data_stream(), f.len)
            }
        };
        for (s, name) in &input.to {
            let h = PartHeader {
                name: name.clone(),
                len,
                gzip: input.gzip,
                content_type: meta.0.clone(),
                headers: meta.1.clone(),
                ..PartHeader::default()
            };
            send(senders, *s, encode_header(&h)).await;
        }
        let mut failed = None;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            };
            let Some(frame) = encode_chunk(chunk) else {
                continue;
            };
            for (s, _) in &input.to {
                for piece in &frame {
                    send(senders, *s, piece.clone()).await;
                }
            }
        }
        for (s, _) in &input.to {
            match &failed {
                // Cut the session's stream: its agent sees a broken input.
                Some(e) => {
                    if let Some(tx) = senders[*s].take() {
                        let _ = tx.send(Err(std::io::Error::other(e.clone()))).await;
                    }
                }
                None => send(senders, *s, END).await,
            }
        }
    }
}

async fn send(
    senders: &mut [Option<mpsc::Sender<Result<Bytes, std::io::Error>>>],
    s: usize,
    b: Bytes,
) {
    let Some(tx) = &senders[s] else {
        return;
    };
    match tokio::time::timeout(SEND_TIMEOUT, tx.send(Ok(b))).await {
        Ok(Ok(())) => {}
        _ => senders[s] = None,
    }
}

/// The sessions that receive an input, with the part name each gets.
fn sessions_with(
    placed: &[(NodePlan, u32, String)],
    devices: impl Fn(&NodePlan) -> Vec<String>,
) -> Vec<(usize, String)> {
    placed
        .iter()
        .enumerate()
        .flat_map(|(i, (n, _, _))| devices(n).into_iter().map(move |d| (i, d)))
        .collect()
}

/// Where a node must run: with the object (or container) it is attached
/// to, and how.
fn attached_target(node: &NodePlan) -> Option<(Target<'_>, AttachMode)> {
    match (node.placement.attach, &node.placement.target) {
        (AttachMode::None, _) | (_, None) => None,
        (mode, Some(t)) => Some((
            Target::of(&t.account, t.container.as_deref(), t.object.as_deref()),
            mode,
        )),
    }
}

fn object_target(t: &JobPath) -> Option<Target<'_>> {
    match (&t.container, &t.object) {
        (Some(c), Some(o)) => Some(Target::Object(&t.account, c, o)),
        _ => None,
    }
}

/// Reads a small error body of an agent (its plain-text reason).
pub(super) async fn error_text(body: Body) -> String {
    let limited = http_body_util::Limited::new(body, 64 * 1024);
    match limited.collect().await {
        Ok(c) => String::from_utf8_lossy(&c.to_bytes()).into_owned(),
        Err(_) => String::new(),
    }
}
