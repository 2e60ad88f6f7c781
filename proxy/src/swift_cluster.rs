//! An OpenStack Swift cluster as the [`Storage`] of jobs
//! (docs/swift-backend.md): every request a job makes goes to the Swift
//! proxy with the caller's own token (`RequestCtx::credential`, added by
//! `SwiftApi::call`), so Swift's auth decides each one and a job never
//! does more than its caller could. Sessions run on our exec agents, each
//! beside one of Swift's object servers (`[swift] agents`).
//!
//! **Placement** asks Swift's `list_endpoints` middleware
//! (`GET /endpoints/v2/{a}/{c}/{o}` on the Swift proxy) which object
//! servers are the object's primaries, then HEADs the replica on each of
//! those that has an agent, directly on its object server: a session runs
//! beside the first one that answers 200, and its agent reads that replica
//! on loopback (`AttachedFrom::SwiftReplica`). With none (no agent beside
//! a primary, the object servers down, the replica not there yet), the
//! session runs on any agent and the proxy streams the object to it,
//! read through the Swift proxy (`AttachedFrom::Streamed`), which finds a
//! replica wherever one is. `X-Zerocloud-Placement` says which happened.

use std::time::Duration;

use hyper::{Method, Request, Response};
use serde::Deserialize;
use sysmap::plan::AttachMode;
use tracing::warn;
use wire::body::Body;
use wire::client::HttpClient;
use wire::enc;
use wire::exec::AttachedFrom;

use crate::context::TransId;
use crate::error::ProxyError;
use crate::storage::{insert, round_robin, to_node, BoxFut, Place, Storage, Target};
use crate::swift_setuid::SetuidLogin;

/// Whether an object's answer says it points elsewhere: a symlink (as the
/// Swift proxy shows it with `?symlink=get`, and as its object server
/// stores it), a dynamic or a static large object's manifest. Only the
/// Swift proxy follows these, as the requester.
pub(crate) fn points_elsewhere(h: &hyper::HeaderMap) -> bool {
    const LINKS: [&str; 4] = [
        "x-symlink-target",
        "x-object-sysmeta-symlink-target",
        "x-object-manifest",
        "x-static-large-object",
    ];
    LINKS.iter().any(|k| h.contains_key(*k))
}

/// How long a replica's object server may take to answer its HEAD.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// An exec agent and the Swift object server it runs beside (`[[swift.agents]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentBeside {
    /// The agent's internal address (`ip:port`).
    pub agent: String,
    /// The object server's `ip:port`, as Swift's ring names it; none for
    /// an agent beside no object server (every input streamed to it).
    #[serde(default)]
    pub object_server: Option<String>,
}

pub struct SwiftCluster {
    /// `http://host:port` of the Swift proxy.
    base: String,
    client: HttpClient,
    agents: Vec<AgentBeside>,
    next_agent: std::sync::atomic::AtomicUsize,
    /// The setuid rule's user (`[swift.setuid]`); none: not honoured.
    setuid: Option<SetuidLogin>,
}

/// `list_endpoints`' v2 answer.
#[derive(Deserialize)]
struct Endpoints {
    endpoints: Vec<String>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
}

impl SwiftCluster {
    /// The cluster behind the Swift proxy `base` (`http://host:port`, as
    /// `SwiftUpstream` checked it), reached with `client` (the upstream's:
    /// one connection pool), with `agents` and the `setuid` user.
    pub fn new(
        base: String,
        client: HttpClient,
        agents: Vec<AgentBeside>,
        setuid: Option<SetuidLogin>,
    ) -> SwiftCluster {
        SwiftCluster {
            base,
            client,
            agents,
            next_agent: std::sync::atomic::AtomicUsize::new(0),
            setuid,
        }
    }

    /// Every agent, from the next turn on: where a session that needs no
    /// particular node runs.
    fn any_agent(&self, attached: AttachedFrom) -> Vec<Place> {
        let agents: Vec<String> = self.agents.iter().map(|a| a.agent.clone()).collect();
        round_robin(&agents, &self.next_agent)
            .into_iter()
            .map(|agent| Place {
                agent,
                attached: attached.clone(),
            })
            .collect()
    }

    /// The agents beside a replica of `/a/c/o` that their object server
    /// has, in Swift's order of primaries: of those answering, the newest
    /// only (a replica on a recovering object server may be stale until
    /// Swift's replicator catches up).
    async fn beside_replicas(
        &self,
        tx: &TransId,
        a: &str,
        c: &str,
        o: &str,
    ) -> Result<Vec<Place>, String> {
        let url = format!(
            "{}/endpoints/v2/{}/{}/{}",
            self.base,
            enc(a),
            enc(c),
            enc(o)
        );
        let body = self.get_json(tx, &url).await?;
        let answer: Endpoints = serde_json::from_slice(&body)
            .map_err(|e| format!("{url}: not list_endpoints' answer: {e}"))?;
        let policy = answer
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-backend-storage-policy-index"))
            .map(|(_, v)| v.clone());
        let candidates: Vec<(String, String, String)> = preference(&answer.endpoints)
            .into_iter()
            .filter_map(|(server, path)| {
                let agent = self.agents.iter().find(|b| {
                    b.object_server
                        .as_deref()
                        .is_some_and(|o| o.eq_ignore_ascii_case(server))
                })?;
                Some((agent.agent.clone(), server.to_string(), path.to_string()))
            })
            .collect();
        let probes = candidates
            .iter()
            .map(|(_, server, path)| self.has_replica(tx, server, path, policy.as_deref()));
        let found = futures_util::future::join_all(probes).await;
        let newest = found.iter().flatten().max().cloned();
        Ok(candidates
            .into_iter()
            .zip(found)
            .filter(|(_, ts)| ts.is_some() && *ts == newest)
            .map(|((agent, _, path), _)| Place {
                agent,
                attached: AttachedFrom::SwiftReplica {
                    path,
                    policy: policy.clone(),
                },
            })
            .collect())
    }

    /// The replica's `X-Timestamp`, if the object server `server` answers
    /// 200 for the replica at `path` and it is the object's bytes: not a
    /// symlink or a large object's manifest, which only the Swift proxy
    /// follows (such an object is streamed). Swift's object servers give
    /// timestamps in one fixed-width form (`%016.05f`, then `_` and a
    /// fixed-width offset), so they compare as strings.
    async fn has_replica(
        &self,
        tx: &TransId,
        server: &str,
        path: &str,
        policy: Option<&str>,
    ) -> Option<String> {
        let mut req = Request::builder()
            .method(Method::HEAD)
            .uri(format!("http://{server}{path}"))
            .header("x-trans-id", tx.as_str());
        if let Some(p) = policy {
            req = req.header("x-backend-storage-policy-index", p);
        }
        let req = req.body(Body::empty()).ok()?;
        let r = tokio::time::timeout(PROBE_TIMEOUT, self.client.request(req))
            .await
            .ok()?
            .ok()?;
        if r.status() != 200 || points_elsewhere(r.headers()) {
            return None;
        }
        let ts = r.headers().get("x-timestamp")?.to_str().ok()?;
        Some(ts.to_string())
    }

    async fn get_json(&self, tx: &TransId, url: &str) -> Result<bytes::Bytes, String> {
        use http_body_util::BodyExt;
        let req = Request::builder()
            .uri(url)
            .header("x-trans-id-extra", tx.as_str())
            .body(Body::empty())
            .map_err(|e| format!("{url}: {e}"))?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| format!("{url}: {}", wire::client::describe(&e)))?;
        if resp.status() != 200 {
            return Err(format!("{url}: status {}", resp.status()));
        }
        let body = http_body_util::Limited::new(resp.into_body(), 1 << 20);
        body.collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| format!("{url}: {e}"))
    }
}

impl Storage for SwiftCluster {
    fn send<'a>(
        &'a self,
        tx: &'a TransId,
        target: Target<'a>,
        req: Request<Body>,
    ) -> BoxFut<'a, Result<Response<Body>, ProxyError>> {
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let path = target.v1_path();
            let query = parts
                .uri
                .query()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            parts.uri = format!("{}{path}{query}", self.base)
                .parse()
                .map_err(|e| ProxyError::Internal(format!("bad Swift URL: {e}")))?;
            // Swift's proxy stamps its own writes: one clock for a
            // client's PUT and a job's.
            parts.headers.remove("x-timestamp");
            parts.headers.remove(hyper::header::HOST);
            insert(&mut parts.headers, "x-trans-id-extra", tx.as_str());
            let resp = self
                .client
                .request(Request::from_parts(parts, body))
                .await
                .map_err(|e| upstream_down(&self.base, &e))?;
            Ok(resp.map(Body::new))
        })
    }

    fn places<'a>(
        &'a self,
        tx: &'a TransId,
        target: Option<(Target<'a>, AttachMode)>,
    ) -> BoxFut<'a, Result<Vec<Place>, ProxyError>> {
        Box::pin(async move {
            match target {
                // No agent beside an object server (`zerocloud up
                // --swift-proxy`): nothing to ask Swift.
                Some((Target::Object(..), AttachMode::Read))
                    if self.agents.iter().all(|a| a.object_server.is_none()) =>
                {
                    Ok(self.any_agent(AttachedFrom::Streamed))
                }
                Some((Target::Object(a, c, o), AttachMode::Read)) => {
                    let local = match self.beside_replicas(tx, a, c, o).await {
                        Ok(local) => local,
                        Err(why) => {
                            warn!("placement from Swift's list_endpoints failed ({why}): the object is streamed");
                            Vec::new()
                        }
                    };
                    if local.is_empty() {
                        Ok(self.any_agent(AttachedFrom::Streamed))
                    } else {
                        Ok(local)
                    }
                }
                // A container's listing, or an output that goes through
                // the Swift proxy: no node is better than another.
                Some(_) => Ok(self.any_agent(AttachedFrom::Streamed)),
                None => Ok(self.any_agent(AttachedFrom::Disk)),
            }
        })
    }

    fn caller_credentials(&self) -> bool {
        true
    }

    fn setuid_login(&self) -> Option<&SetuidLogin> {
        self.setuid.as_ref()
    }

    fn exec<'a>(
        &'a self,
        tx: &'a TransId,
        agent: &'a str,
        path: String,
        _writes: Option<Target<'a>>,
        req: Request<Body>,
    ) -> BoxFut<'a, Result<Response<Body>, ProxyError>> {
        Box::pin(async move { to_node(&self.client, agent, &path, tx, req).await })
    }
}

/// `list_endpoints`' primaries as (`ip:port`, backend path), in the order
/// placement tries them: Swift's order, rotated by the partition. Swift
/// lists a partition's replicas in the ring's replica order, which a
/// small ring keeps the same for every partition (the first primary
/// would take every session); Swift's own proxy shuffles them for reads.
/// Rotating by the partition spreads sessions over the replicas just as
/// well, and sends every job on one object to the same node, whose page
/// cache then holds it.
fn preference(endpoints: &[String]) -> Vec<(&str, &str)> {
    let parsed: Vec<(&str, &str)> = endpoints
        .iter()
        .filter_map(|ep| {
            let rest = ep.strip_prefix("http://")?;
            Some(rest.split_at(rest.find('/')?))
        })
        .collect();
    let part = parsed
        .first()
        .and_then(|(_, path)| path.split('/').nth(2)?.parse::<usize>().ok())
        .unwrap_or(0);
    let n = parsed.len().max(1);
    (0..parsed.len()).map(|i| parsed[(part + i) % n]).collect()
}

/// The Swift proxy did not answer (502, naming it).
pub fn upstream_down(base: &str, e: &hyper_util::client::legacy::Error) -> ProxyError {
    ProxyError::Upstream(format!(
        "The Swift proxy {base} did not answer: {}",
        wire::client::describe(e)
    ))
}

/// `AGENT=OBJECT_SERVER`, or `AGENT` alone for an agent beside no object
/// server (the command line's `--swift-agent`; both `ip:port`).
pub fn parse_agent(s: &str) -> Result<AgentBeside, String> {
    let (agent, object_server) = match s.split_once('=') {
        Some((a, o)) => (a, Some(o)),
        None => (s, None),
    };
    let valid = |v: &str| {
        v.rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
    };
    if !valid(agent) || !object_server.is_none_or(valid) {
        return Err(format!(
            "{s:?}: expected AGENT=OBJECT_SERVER or AGENT (each ip:port)"
        ));
    }
    Ok(AgentBeside {
        agent: agent.to_string(),
        object_server: object_server.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_tried_from_the_partition_on() {
        let eps = |part: u32| -> Vec<String> {
            (1..=3)
                .map(|n| format!("http://127.0.0.1:600{n}/sdb{n}/{part}/AUTH_test/c/o"))
                .collect()
        };
        let servers = |part| -> Vec<String> {
            preference(&eps(part))
                .iter()
                .map(|(s, _)| s.to_string())
                .collect()
        };
        assert_eq!(
            servers(0),
            ["127.0.0.1:6001", "127.0.0.1:6002", "127.0.0.1:6003"]
        );
        assert_eq!(
            servers(4),
            ["127.0.0.1:6002", "127.0.0.1:6003", "127.0.0.1:6001"]
        );
        assert_eq!(
            servers(8),
            ["127.0.0.1:6003", "127.0.0.1:6001", "127.0.0.1:6002"]
        );
        let one = eps(1);
        let p = preference(&one);
        assert_eq!(p[0].1, "/sdb2/1/AUTH_test/c/o");
        let junk = ["not a url".to_string()];
        assert!(preference(&junk).is_empty());
    }

    #[test]
    fn agents_are_agent_equals_object_server() {
        let a = parse_agent("10.0.0.1:6300=10.0.0.1:6200").unwrap();
        assert_eq!(
            (a.agent.as_str(), a.object_server.as_deref()),
            ("10.0.0.1:6300", Some("10.0.0.1:6200"))
        );
        let alone = parse_agent("10.0.0.1:6300").unwrap();
        assert_eq!(alone.object_server, None);
        for bad in [
            "10.0.0.1",
            "a=b",
            "10.0.0.1:x=10.0.0.1:6200",
            "=10.0.0.1:6200",
        ] {
            assert!(parse_agent(bad).is_err(), "{bad}");
        }
    }
}
