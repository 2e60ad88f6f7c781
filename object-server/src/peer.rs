//! Updates a node sends to other nodes (object rows to container DBs, container
//! totals to account DBs), and the journal of those that failed: like Swift's
//! async_pending, retried in the background until they land.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use wire::client::HttpClient;

use crate::db::{ContainerReport, ObjectRow};
use crate::error::StorageError;
use wire::body::full;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Update {
    /// Object row for the container DB at `node`; that node then reports to `account_node`.
    Container {
        node: String,
        account_node: String,
        account: String,
        container: String,
        row: ObjectRow,
    },
    /// Container totals for the account DB at `node`.
    Account {
        node: String,
        account: String,
        report: ContainerReport,
    },
}

/// Sends an update to a remote node over the internal API.
pub async fn send(client: &HttpClient, u: &Update) -> Result<(), StorageError> {
    let (node, path, extra, body) = match u {
        Update::Container {
            node,
            account_node,
            account,
            container,
            row,
        } => (
            node,
            format!(
                "/cu/{}/{}/{}",
                wire::enc(account),
                wire::enc(container),
                wire::enc(&row.name)
            ),
            Some(account_node.clone()),
            serde_json::to_vec(row),
        ),
        Update::Account {
            node,
            account,
            report,
        } => (
            node,
            format!("/au/{}", wire::enc(account)),
            None,
            serde_json::to_vec(report),
        ),
    };
    let body = body.map_err(|e| StorageError::Peer(e.to_string()))?;
    let mut req = hyper::Request::put(format!("http://{node}{path}"))
        .header("content-type", "application/json");
    if let Some(an) = extra {
        req = req.header(wire::ACCOUNT_NODE, an);
    }
    let req = req
        .body(full(Bytes::from(body)))
        .map_err(|e| StorageError::Peer(e.to_string()))?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| StorageError::Peer(format!("{node}: {e}")))?;
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    if status.is_success() || status == hyper::StatusCode::NOT_FOUND {
        // 404: the container is gone; nothing left to update.
        Ok(())
    } else {
        Err(StorageError::Peer(format!("{node} answered {status}")))
    }
}

/// Journal of updates that could not be delivered.
pub struct Pending {
    dir: PathBuf,
}

impl Pending {
    pub fn open(data_dir: &Path) -> std::io::Result<Pending> {
        let dir = data_dir.join("async_pending");
        std::fs::create_dir_all(&dir)?;
        Ok(Pending { dir })
    }

    pub fn save(&self, u: &Update) -> Result<(), StorageError> {
        let name = format!("{:016x}.json", rand::random::<u64>());
        let tmp = self.dir.join(format!(".{name}"));
        std::fs::write(
            &tmp,
            serde_json::to_vec(u).map_err(|e| StorageError::Peer(e.to_string()))?,
        )?;
        std::fs::rename(&tmp, self.dir.join(name))?;
        Ok(())
    }

    /// The journal's entries, oldest first.
    pub fn load(&self) -> Vec<(PathBuf, Update)> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return vec![];
        };
        let mut v: Vec<(std::time::SystemTime, PathBuf, Update)> = rd
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| {
                let p = e.path();
                let t = e.metadata().and_then(|m| m.modified()).ok()?;
                let u = serde_json::from_slice(&std::fs::read(&p).ok()?).ok()?;
                Some((t, p, u))
            })
            .collect();
        v.sort_by_key(|(t, _, _)| *t);
        v.into_iter().map(|(_, p, u)| (p, u)).collect()
    }
}
