//! Account and container databases in SQLite, one file each, with Swift's `object`
//! and `container` tables, so a container DB can later be handed to a job as-is.
//! Object-row updates to one container are group-committed: concurrent PUTs share
//! one transaction (and one fsync).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::error::StorageError;
use crate::objects::path_hash;
use wire::timestamp::Timestamp;

/// A row of a container input's snapshot (spec §2.2).
pub struct SnapshotRow {
    pub name: String,
    /// A Swift timestamp ("1700000000.12345").
    pub created_at: String,
    pub size: i64,
    pub content_type: String,
    pub etag: String,
}

/// The table a container input's snapshot has, in database `db`.
fn snapshot_table(db: &str) -> String {
    format!(
        "CREATE TABLE {db}.object (
             ROWID INTEGER PRIMARY KEY AUTOINCREMENT,
             name TEXT NOT NULL UNIQUE,
             created_at TEXT NOT NULL,
             size INTEGER NOT NULL,
             content_type TEXT NOT NULL,
             etag TEXT NOT NULL,
             deleted INTEGER NOT NULL DEFAULT 0);"
    )
}

const CONTAINER_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS object (
    ROWID INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    size INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    etag TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS ix_object_deleted_name ON object (deleted, name);
CREATE TABLE IF NOT EXISTS container_stat (
    account TEXT NOT NULL,
    container TEXT NOT NULL,
    created_at TEXT NOT NULL,
    put_timestamp TEXT NOT NULL,
    delete_timestamp TEXT NOT NULL DEFAULT '0',
    object_count INTEGER NOT NULL DEFAULT 0,
    bytes_used INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    stat_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS metadata (key TEXT PRIMARY KEY, value TEXT NOT NULL, ts TEXT NOT NULL);
";

const ACCOUNT_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS container (
    ROWID INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    put_timestamp TEXT NOT NULL,
    delete_timestamp TEXT NOT NULL DEFAULT '0',
    object_count INTEGER NOT NULL DEFAULT 0,
    bytes_used INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    stat_seq INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS ix_container_deleted_name ON container (deleted, name);
CREATE TABLE IF NOT EXISTS account_stat (
    account TEXT NOT NULL,
    created_at TEXT NOT NULL,
    put_timestamp TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS metadata (key TEXT PRIMARY KEY, value TEXT NOT NULL, ts TEXT NOT NULL);
";

/// A change to one row of a container's object table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectRow {
    pub name: String,
    pub created_at: Timestamp,
    pub size: u64,
    pub content_type: String,
    pub etag: String,
    pub deleted: bool,
}

/// A container's totals as its account records them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerReport {
    pub name: String,
    pub put_timestamp: Timestamp,
    pub delete_timestamp: Timestamp,
    pub object_count: u64,
    pub bytes_used: u64,
    pub deleted: bool,
    /// Reports are applied in this order; a late, older report is ignored.
    pub stat_seq: u64,
}

#[derive(Debug, Clone, Default)]
pub struct ContainerInfo {
    pub created_at: Timestamp,
    pub put_timestamp: Timestamp,
    pub delete_timestamp: Timestamp,
    pub object_count: u64,
    pub bytes_used: u64,
    pub meta: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct AccountInfo {
    pub created_at: Timestamp,
    pub put_timestamp: Timestamp,
    pub container_count: u64,
    pub object_count: u64,
    pub bytes_used: u64,
    pub meta: Vec<(String, String)>,
}

/// One listing row, objects or containers, or a `subdir` produced by a delimiter.
#[derive(Debug, Clone)]
pub enum Entry {
    Object {
        name: String,
        created_at: Timestamp,
        size: u64,
        content_type: String,
        etag: String,
    },
    Container {
        name: String,
        count: u64,
        bytes: u64,
        last_modified: Timestamp,
    },
    Subdir(String),
}

impl Entry {
    pub fn name(&self) -> &str {
        match self {
            Entry::Object { name, .. } | Entry::Container { name, .. } | Entry::Subdir(name) => {
                name
            }
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub limit: usize,
    pub marker: String,
    pub end_marker: String,
    pub prefix: Option<String>,
    pub delimiter: Option<String>,
    pub path: Option<String>,
    pub reverse: bool,
}

type Waiter = oneshot::Sender<Result<(), String>>;

/// An open database file and the queue of row updates waiting for its next commit.
struct DbHandle {
    conn: Mutex<Connection>,
    pending: Mutex<(Vec<(ObjectRow, Waiter)>, bool)>,
}

/// All account and container DBs of this node.
pub struct Databases {
    root: PathBuf,
    open: Mutex<HashMap<PathBuf, Arc<DbHandle>>>,
    fsync: bool,
}

const MAX_OPEN: usize = 512;

impl Databases {
    pub fn open(data_dir: &Path, fsync: bool) -> std::io::Result<Arc<Databases>> {
        let root = data_dir.join("db");
        std::fs::create_dir_all(&root)?;
        Ok(Arc::new(Databases {
            root,
            open: Mutex::new(HashMap::new()),
            fsync,
        }))
    }

    fn path_for(&self, kind: &str, key: &str) -> PathBuf {
        let h = path_hash(key);
        self.root.join(kind).join(&h[..3]).join(format!("{h}.db"))
    }

    pub fn container_db_path(&self, account: &str, container: &str) -> PathBuf {
        self.path_for("containers", &format!("/{account}/{container}"))
    }

    fn account_db_path(&self, account: &str) -> PathBuf {
        self.path_for("accounts", &format!("/{account}"))
    }

    /// The handle for a DB file; `create` makes the file (and schema) when missing.
    fn handle(
        &self,
        path: &Path,
        schema: &str,
        create: bool,
    ) -> Result<Option<Arc<DbHandle>>, StorageError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = open.get(path) {
            return Ok(Some(h.clone()));
        }
        if !path.exists() {
            if !create {
                return Ok(None);
            }
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let conn = Connection::open(path)?;
        // Container DBs sync every commit: a listing row must survive whatever
        // the object file survives. Account DBs hold totals derived from the
        // container DBs, so they sync at checkpoints only (a process crash still
        // loses nothing; a power cut may lose the last totals update).
        let sync = match (self.fsync, schema == ACCOUNT_SCHEMA) {
            (false, _) => "OFF",
            (true, true) => "NORMAL",
            (true, false) => "FULL",
        };
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; {schema}"
        ))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        if open.len() >= MAX_OPEN {
            // Drop handles nobody is using; they reopen on demand.
            open.retain(|_, h| Arc::strong_count(h) > 1);
        }
        let h = Arc::new(DbHandle {
            conn: Mutex::new(conn),
            pending: Mutex::new((Vec::new(), false)),
        });
        open.insert(path.to_path_buf(), h.clone());
        Ok(Some(h))
    }

    async fn with_db<T: Send + 'static>(
        self: &Arc<Self>,
        path: PathBuf,
        schema: &'static str,
        create: bool,
        f: impl FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<Option<T>, StorageError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let Some(h) = this.handle(&path, schema, create)? else {
                return Ok(None);
            };
            let mut conn = h.conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn).map(Some)
        })
        .await?
    }

    // ---- containers -------------------------------------------------------------

    /// Creates the container or updates its put timestamp and metadata.
    /// Returns (created, report for the account).
    pub async fn container_put(
        self: &Arc<Self>,
        account: &str,
        container: &str,
        ts: Timestamp,
        meta: Vec<(String, String)>,
    ) -> Result<(bool, ContainerReport), StorageError> {
        let (a, c) = (account.to_string(), container.to_string());
        let path = self.container_db_path(account, container);
        let r = self
            .with_db(path, CONTAINER_SCHEMA, true, move |conn| {
                let tx = conn.transaction()?;
                let stat: Option<(bool, String)> = tx
                    .query_row("SELECT deleted, put_timestamp FROM container_stat", [], |r| {
                        Ok((r.get::<_, i64>(0)? != 0, r.get(1)?))
                    })
                    .optional()?;
                let created = match stat {
                    None => {
                        tx.execute(
                            "INSERT INTO container_stat (account, container, created_at, put_timestamp) VALUES (?1, ?2, ?3, ?3)",
                            params![a, c, ts.to_string()],
                        )?;
                        true
                    }
                    Some((true, _)) => {
                        tx.execute(
                            "UPDATE container_stat SET created_at=?1, put_timestamp=?1, deleted=0, delete_timestamp='0', object_count=0, bytes_used=0",
                            params![ts.to_string()],
                        )?;
                        tx.execute("DELETE FROM metadata", [])?;
                        true
                    }
                    Some((false, put_ts)) => {
                        if ts.to_string() > put_ts {
                            tx.execute(
                                "UPDATE container_stat SET put_timestamp=?1",
                                params![ts.to_string()],
                            )?;
                        }
                        false
                    }
                };
                set_meta(&tx, &meta, ts)?;
                check_meta_totals(&tx, "x-container-meta-")?;
                tx.execute("UPDATE container_stat SET stat_seq = stat_seq + 1", [])?;
                let rep = container_report(&tx, &c)?;
                tx.commit()?;
                Ok((created, rep))
            })
            .await?;
        r.ok_or(StorageError::NotFound)
    }

    pub async fn container_info(
        self: &Arc<Self>,
        account: &str,
        container: &str,
    ) -> Result<Option<ContainerInfo>, StorageError> {
        let path = self.container_db_path(account, container);
        Ok(self
            .with_db(path, CONTAINER_SCHEMA, false, |conn| {
                let row = conn
                    .query_row(
                        "SELECT created_at, put_timestamp, delete_timestamp, object_count, bytes_used, deleted FROM container_stat",
                        [],
                        |r| {
                            Ok((
                                r.get::<_, String>(0)?,
                                r.get::<_, String>(1)?,
                                r.get::<_, String>(2)?,
                                r.get::<_, i64>(3)?,
                                r.get::<_, i64>(4)?,
                                r.get::<_, i64>(5)?,
                            ))
                        },
                    )
                    .optional()?;
                let Some((cr, pt, dt, n, b, deleted)) = row else {
                    return Ok(None);
                };
                if deleted != 0 {
                    return Ok(None);
                }
                Ok(Some(ContainerInfo {
                    created_at: ts_col(&cr),
                    put_timestamp: ts_col(&pt),
                    delete_timestamp: ts_col(&dt),
                    object_count: n.max(0) as u64,
                    bytes_used: b.max(0) as u64,
                    meta: get_meta(conn)?,
                }))
            })
            .await?
            .flatten())
    }

    /// Updates metadata; `None` when the container does not exist.
    pub async fn container_post(
        self: &Arc<Self>,
        account: &str,
        container: &str,
        ts: Timestamp,
        meta: Vec<(String, String)>,
    ) -> Result<Option<()>, StorageError> {
        let path = self.container_db_path(account, container);
        Ok(self
            .with_db(path, CONTAINER_SCHEMA, false, move |conn| {
                let tx = conn.transaction()?;
                let live: Option<i64> = tx
                    .query_row("SELECT deleted FROM container_stat", [], |r| r.get(0))
                    .optional()?;
                if live != Some(0) {
                    return Ok(None);
                }
                set_meta(&tx, &meta, ts)?;
                check_meta_totals(&tx, "x-container-meta-")?;
                // A POST changes the container's Last-Modified, as in Swift.
                tx.execute(
                    "UPDATE container_stat SET put_timestamp=?1 WHERE put_timestamp < ?1",
                    params![ts.to_string()],
                )?;
                tx.commit()?;
                Ok(Some(()))
            })
            .await?
            .flatten())
    }

    /// Deletes an empty container. Err(Conflict) when it holds objects.
    pub async fn container_delete(
        self: &Arc<Self>,
        account: &str,
        container: &str,
        ts: Timestamp,
    ) -> Result<Option<ContainerReport>, StorageError> {
        let path = self.container_db_path(account, container);
        let c = container.to_string();
        Ok(self
            .with_db(path, CONTAINER_SCHEMA, false, move |conn| {
                let tx = conn.transaction()?;
                let row: Option<(i64, i64)> = tx
                    .query_row("SELECT deleted, object_count FROM container_stat", [], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()?;
                match row {
                    None | Some((1, _)) => return Ok(None),
                    Some((_, n)) if n > 0 => return Err(StorageError::Conflict),
                    _ => {}
                }
                tx.execute(
                    "UPDATE container_stat SET deleted=1, delete_timestamp=?1, stat_seq = stat_seq + 1",
                    params![ts.to_string()],
                )?;
                tx.execute("DELETE FROM object", [])?;
                tx.execute("DELETE FROM metadata", [])?;
                let rep = container_report(&tx, &c)?;
                tx.commit()?;
                Ok(Some(rep))
            })
            .await?
            .flatten())
    }

    /// Applies an object row change; concurrent callers share one transaction.
    /// Returns the container's new totals, or None when the container is gone.
    pub async fn container_update(
        self: &Arc<Self>,
        account: &str,
        container: &str,
        row: ObjectRow,
    ) -> Result<Option<ContainerReport>, StorageError> {
        let path = self.container_db_path(account, container);
        let this = self.clone();
        let h = tokio::task::spawn_blocking(move || this.handle(&path, CONTAINER_SCHEMA, false))
            .await??;
        let Some(h) = h else { return Ok(None) };
        let (tx, rx) = oneshot::channel();
        let lead = {
            let mut p = h.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.0.push((row, tx));
            !std::mem::replace(&mut p.1, true)
        };
        if lead {
            let h2 = h.clone();
            tokio::task::spawn_blocking(move || commit_loop(&h2));
        }
        match rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e == "gone" => return Ok(None),
            Ok(Err(e)) => return Err(StorageError::Corrupt(e)),
            Err(_) => return Err(StorageError::Corrupt("container update lost".into())),
        }
        let c = container.to_string();
        let conn = h.clone();
        let rep = tokio::task::spawn_blocking(move || {
            let conn = conn.conn.lock().unwrap_or_else(|p| p.into_inner());
            container_report(&conn, &c)
        })
        .await??;
        Ok(Some(rep))
    }

    pub async fn list_container(
        self: &Arc<Self>,
        account: &str,
        container: &str,
        p: ListParams,
    ) -> Result<Option<Vec<Entry>>, StorageError> {
        let path = self.container_db_path(account, container);
        Ok(self
            .with_db(path, CONTAINER_SCHEMA, false, move |conn| {
                let live: Option<i64> = conn
                    .query_row("SELECT deleted FROM container_stat", [], |r| r.get(0))
                    .optional()?;
                if live != Some(0) {
                    return Ok(None);
                }
                list(conn, Table::Object, &p).map(Some)
            })
            .await?
            .flatten())
    }

    /// Writes a consistent snapshot of the container's listing to `dest`, a
    /// new SQLite file (rollback journal, nothing beside it) holding Swift's
    /// `object` table with the live rows only, by name: what a job reads as
    /// a container input (spec §2.2, §8.2). One `INSERT … SELECT` into the
    /// attached file, under this DB's lock: the snapshot is one read of
    /// the DB at one moment, and the WAL-mode file itself is never copied.
    /// `None` when the container does not exist.
    pub async fn snapshot_container(
        self: &Arc<Self>,
        account: &str,
        container: &str,
        dest: PathBuf,
    ) -> Result<Option<()>, StorageError> {
        let path = self.container_db_path(account, container);
        Ok(self
            .with_db(path, CONTAINER_SCHEMA, false, move |conn| {
                let live: Option<i64> = conn
                    .query_row("SELECT deleted FROM container_stat", [], |r| r.get(0))
                    .optional()?;
                if live != Some(0) {
                    return Ok(None);
                }
                let dest = dest.to_str().ok_or_else(|| {
                    StorageError::Corrupt(format!("snapshot path {} is not UTF-8", dest.display()))
                })?;
                conn.execute("ATTACH DATABASE ?1 AS snap", [dest])?;
                let copied = conn.execute_batch(&format!(
                    "{}
                     INSERT INTO snap.object (name, created_at, size, content_type, etag, deleted)
                         SELECT name, created_at, size, content_type, etag, 0
                         FROM main.object WHERE deleted = 0 ORDER BY name;",
                    snapshot_table("snap")
                ));
                conn.execute("DETACH DATABASE snap", [])?;
                copied?;
                Ok(Some(()))
            })
            .await?
            .flatten())
    }

    /// A container input's snapshot made from a listing rather than a DB
    /// here (an agent beside Swift: the listing was read through the Swift
    /// proxy as the caller): the same table as
    /// [`Databases::snapshot_container`], in a new SQLite file `dest`.
    pub fn snapshot_from_rows(
        dest: &Path,
        rows: impl IntoIterator<Item = SnapshotRow>,
    ) -> Result<(), StorageError> {
        let mut conn = Connection::open(dest)?;
        conn.execute_batch(&snapshot_table("main"))?;
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare(
                "INSERT OR REPLACE INTO object (name, created_at, size, content_type, etag, deleted)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0)",
            )?;
            for r in rows {
                insert.execute(params![
                    r.name,
                    r.created_at,
                    r.size,
                    r.content_type,
                    r.etag
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    // ---- accounts -----------------------------------------------------------------

    /// Records a container's totals (creating the account DB on first use).
    pub async fn account_update(
        self: &Arc<Self>,
        account: &str,
        rep: ContainerReport,
    ) -> Result<(), StorageError> {
        let path = self.account_db_path(account);
        let a = account.to_string();
        self.with_db(path, ACCOUNT_SCHEMA, true, move |conn| {
            let tx = conn.transaction()?;
            ensure_account(&tx, &a)?;
            tx.execute(
                "INSERT INTO container (name, put_timestamp, delete_timestamp, object_count, bytes_used, deleted, stat_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(name) DO UPDATE SET put_timestamp=excluded.put_timestamp,
                   delete_timestamp=excluded.delete_timestamp, object_count=excluded.object_count,
                   bytes_used=excluded.bytes_used, deleted=excluded.deleted, stat_seq=excluded.stat_seq
                 WHERE excluded.stat_seq >= container.stat_seq OR excluded.put_timestamp > container.put_timestamp",
                params![
                    rep.name,
                    rep.put_timestamp.to_string(),
                    rep.delete_timestamp.to_string(),
                    rep.object_count as i64,
                    rep.bytes_used as i64,
                    rep.deleted as i64,
                    rep.stat_seq as i64
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// The account's totals; an account never written to reads as empty (autocreate).
    pub async fn account_info(
        self: &Arc<Self>,
        account: &str,
    ) -> Result<AccountInfo, StorageError> {
        let path = self.account_db_path(account);
        Ok(self
            .with_db(path, ACCOUNT_SCHEMA, false, |conn| {
                let (cr, pt): (String, String) = conn
                    .query_row("SELECT created_at, put_timestamp FROM account_stat", [], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()?
                    .unwrap_or_else(|| ("0".into(), "0".into()));
                let (cc, oc, bu): (i64, i64, i64) = conn.query_row(
                    "SELECT COUNT(*), COALESCE(SUM(object_count),0), COALESCE(SUM(bytes_used),0) FROM container WHERE deleted=0",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
                Ok(AccountInfo {
                    created_at: ts_col(&cr),
                    put_timestamp: ts_col(&pt),
                    container_count: cc.max(0) as u64,
                    object_count: oc.max(0) as u64,
                    bytes_used: bu.max(0) as u64,
                    meta: get_meta(conn)?,
                })
            })
            .await?
            .unwrap_or_default())
    }

    pub async fn account_post(
        self: &Arc<Self>,
        account: &str,
        ts: Timestamp,
        meta: Vec<(String, String)>,
    ) -> Result<(), StorageError> {
        let path = self.account_db_path(account);
        let a = account.to_string();
        self.with_db(path, ACCOUNT_SCHEMA, true, move |conn| {
            let tx = conn.transaction()?;
            ensure_account(&tx, &a)?;
            set_meta(&tx, &meta, ts)?;
            check_meta_totals(&tx, "x-account-meta-")?;
            tx.commit()?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    pub async fn list_account(
        self: &Arc<Self>,
        account: &str,
        p: ListParams,
    ) -> Result<Vec<Entry>, StorageError> {
        let path = self.account_db_path(account);
        Ok(self
            .with_db(path, ACCOUNT_SCHEMA, false, move |conn| {
                list(conn, Table::Container, &p)
            })
            .await?
            .unwrap_or_default())
    }
}

fn ts_col(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap_or_default()
}

fn ensure_account(tx: &rusqlite::Transaction<'_>, account: &str) -> Result<(), StorageError> {
    let n: i64 = tx.query_row("SELECT COUNT(*) FROM account_stat", [], |r| r.get(0))?;
    if n == 0 {
        let now = Timestamp::now().to_string();
        tx.execute(
            "INSERT INTO account_stat (account, created_at, put_timestamp) VALUES (?1, ?2, ?2)",
            params![account, now],
        )?;
    }
    Ok(())
}

/// Sets metadata keys; an empty value removes the key (Swift's rule).
fn set_meta(
    tx: &rusqlite::Transaction<'_>,
    meta: &[(String, String)],
    ts: Timestamp,
) -> Result<(), StorageError> {
    for (k, v) in meta {
        if v.is_empty() {
            tx.execute("DELETE FROM metadata WHERE key=?1", params![k])?;
        } else {
            tx.execute(
                "INSERT INTO metadata (key, value, ts) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO UPDATE SET value=excluded.value, ts=excluded.ts WHERE excluded.ts >= metadata.ts",
                params![k, v, ts.to_string()],
            )?;
        }
    }
    Ok(())
}

/// Swift's limits on all of a DB's user metadata together (a POST may be fine
/// alone and still push the total over).
fn check_meta_totals(tx: &rusqlite::Transaction<'_>, prefix: &str) -> Result<(), StorageError> {
    let (count, size): (i64, i64) = tx.query_row(
        "SELECT COUNT(*), COALESCE(SUM(LENGTH(key) - ?2 + LENGTH(value)), 0)
         FROM metadata WHERE substr(key, 1, ?2) = ?1",
        params![prefix, prefix.len() as i64],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if count > 90 {
        return Err(StorageError::BadRequest(
            "Too many metadata items; max 90".into(),
        ));
    }
    if size > 4096 {
        return Err(StorageError::BadRequest(
            "Total metadata too large; max 4096".into(),
        ));
    }
    Ok(())
}

fn get_meta(conn: &Connection) -> Result<Vec<(String, String)>, StorageError> {
    let mut st = conn.prepare_cached("SELECT key, value FROM metadata ORDER BY key")?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn container_report(conn: &Connection, name: &str) -> Result<ContainerReport, StorageError> {
    Ok(conn.query_row(
        "SELECT put_timestamp, delete_timestamp, object_count, bytes_used, deleted, stat_seq FROM container_stat",
        [],
        |r| {
            Ok(ContainerReport {
                name: name.to_string(),
                put_timestamp: ts_col(&r.get::<_, String>(0)?),
                delete_timestamp: ts_col(&r.get::<_, String>(1)?),
                object_count: r.get::<_, i64>(2)?.max(0) as u64,
                bytes_used: r.get::<_, i64>(3)?.max(0) as u64,
                deleted: r.get::<_, i64>(4)? != 0,
                stat_seq: r.get::<_, i64>(5)?.max(0) as u64,
            })
        },
    )?)
}

/// Drains the container's pending row updates in batches until none are left.
fn commit_loop(h: &DbHandle) {
    loop {
        let batch = {
            let mut p = h.pending.lock().unwrap_or_else(|e| e.into_inner());
            if p.0.is_empty() {
                p.1 = false;
                return;
            }
            std::mem::take(&mut p.0)
        };
        let mut conn = h.conn.lock().unwrap_or_else(|p| p.into_inner());
        let res = apply_rows(&mut conn, batch.iter().map(|(r, _)| r));
        drop(conn);
        for (_, w) in batch {
            let _ = w.send(res.clone());
        }
    }
}

fn apply_rows<'a>(
    conn: &mut Connection,
    rows: impl Iterator<Item = &'a ObjectRow>,
) -> Result<(), String> {
    let go = || -> Result<bool, rusqlite::Error> {
        let tx = conn.transaction()?;
        let live: Option<i64> = tx
            .query_row("SELECT deleted FROM container_stat", [], |r| r.get(0))
            .optional()?;
        if live != Some(0) {
            return Ok(false);
        }
        let (mut dn, mut db) = (0i64, 0i64);
        for row in rows {
            let old: Option<(String, i64, i64)> = tx
                .prepare_cached("SELECT created_at, size, deleted FROM object WHERE name=?1")?
                .query_row(params![row.name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            let ts = row.created_at.to_string();
            if let Some((old_ts, old_size, old_deleted)) = &old {
                if *old_ts >= ts {
                    continue;
                }
                if *old_deleted == 0 {
                    dn -= 1;
                    db -= old_size;
                }
            }
            if !row.deleted {
                dn += 1;
                db += row.size as i64;
            }
            tx.prepare_cached(
                "INSERT INTO object (name, created_at, size, content_type, etag, deleted) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(name) DO UPDATE SET created_at=excluded.created_at, size=excluded.size,
                   content_type=excluded.content_type, etag=excluded.etag, deleted=excluded.deleted",
            )?
            .execute(params![
                row.name,
                ts,
                row.size as i64,
                row.content_type,
                row.etag,
                row.deleted as i64
            ])?;
        }
        tx.execute(
            "UPDATE container_stat SET object_count = object_count + ?1, bytes_used = bytes_used + ?2, stat_seq = stat_seq + 1",
            params![dn, db],
        )?;
        tx.commit()?;
        Ok(true)
    };
    match go() {
        Ok(true) => Ok(()),
        Ok(false) => Err("gone".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Clone, Copy)]
enum Table {
    Object,
    Container,
}

/// Swift's listing walk: SQL does prefix/marker/limit; a delimiter folds names
/// into `subdir` entries and restarts the query after them.
fn list(conn: &Connection, table: Table, p: &ListParams) -> Result<Vec<Entry>, StorageError> {
    let (mut marker, mut end_marker) = if p.reverse {
        (p.end_marker.clone(), p.marker.clone())
    } else {
        (p.marker.clone(), p.end_marker.clone())
    };
    let (mut prefix, mut delimiter) = (p.prefix.clone(), p.delimiter.clone());
    let mut path = p.path.clone();
    if let Some(pa) = &mut path {
        if !pa.is_empty() {
            *pa = format!("{}/", pa.trim_end_matches('/'));
        }
        prefix = Some(pa.clone());
        delimiter = Some("/".into());
    } else if delimiter.is_some() && prefix.is_none() {
        prefix = Some(String::new());
    }
    let prefix = prefix.unwrap_or_default();
    let end_prefix = if prefix.is_empty() {
        None
    } else {
        let mut chars: Vec<char> = prefix.chars().collect();
        let last = chars.pop().unwrap_or('\0');
        let next = char::from_u32(last as u32 + 1).unwrap_or(char::MAX);
        chars.push(next);
        Some(chars.into_iter().collect::<String>())
    };
    let orig_marker = marker.clone();
    let delimiter = delimiter.filter(|d| !d.is_empty());
    let mut results = Vec::new();
    let mut force_gte = false;
    let cols = match table {
        Table::Object => "name, created_at, size, content_type, etag",
        Table::Container => "name, put_timestamp, object_count, bytes_used, delete_timestamp",
    };
    let tname = match table {
        Table::Object => "object",
        Table::Container => "container",
    };
    while results.len() < p.limit {
        let mut conds: Vec<&str> = vec!["deleted = 0"];
        let mut args: Vec<String> = vec![];
        if !end_marker.is_empty()
            && (prefix.is_empty()
                || end_prefix
                    .as_deref()
                    .is_some_and(|e| end_marker.as_str() < e))
        {
            conds.push("name < ?");
            args.push(end_marker.clone());
        } else if let Some(e) = &end_prefix {
            conds.push("name < ?");
            args.push(e.clone());
        }
        if force_gte {
            conds.push("name >= ?");
            args.push(marker.clone());
            force_gte = false;
        } else if !marker.is_empty() && (prefix.is_empty() || marker >= prefix) {
            conds.push("name > ?");
            args.push(marker.clone());
        } else if !prefix.is_empty() {
            conds.push("name >= ?");
            args.push(prefix.clone());
        }
        let sql = format!(
            "SELECT {cols} FROM {tname} WHERE {} ORDER BY name {} LIMIT {}",
            conds.join(" AND "),
            if p.reverse { "DESC" } else { "" },
            p.limit - results.len()
        );
        let mut st = conn.prepare_cached(&sql)?;
        let mut rows = st.query(rusqlite::params_from_iter(args.iter()))?;
        let mut rowcount = 0;
        let mut restarted = false;
        while let Some(r) = rows.next()? {
            rowcount += 1;
            let name: String = r.get(0)?;
            if p.reverse {
                end_marker = name.clone();
            } else {
                marker = name.clone();
            }
            if results.len() >= p.limit {
                return Ok(results);
            }
            if let Some(d) = &delimiter {
                let end = name
                    .get(prefix.len()..)
                    .and_then(|rest| rest.find(d.as_str()))
                    .map(|i| i + prefix.len());
                if let Some(pa) = &path {
                    if &name == pa {
                        continue;
                    }
                    if let Some(end) = end {
                        if name.len() > end + d.len() {
                            if p.reverse {
                                end_marker = name[..end + d.len()].to_string();
                            } else {
                                marker = after_delimiter(&name[..end], d);
                            }
                            restarted = true;
                            break;
                        }
                    }
                } else if let Some(end) = end {
                    if p.reverse {
                        end_marker = name[..end + d.len()].to_string();
                    } else {
                        marker = after_delimiter(&name[..end], d);
                        force_gte = true;
                    }
                    let dir = name[..end + d.len()].to_string();
                    if dir != orig_marker {
                        results.push(Entry::Subdir(dir));
                    }
                    restarted = true;
                    break;
                }
            }
            results.push(row_entry(table, r, name)?);
        }
        if rowcount == 0 || (!restarted && delimiter.is_none()) {
            break;
        }
    }
    Ok(results)
}

/// `name[:end] + delimiter[:-1] + chr(ord(delimiter[-1]) + 1)`
fn after_delimiter(stem: &str, d: &str) -> String {
    let mut chars: Vec<char> = d.chars().collect();
    let last = chars.pop().unwrap_or('\0');
    let mut s = stem.to_string();
    s.extend(chars);
    s.push(char::from_u32(last as u32 + 1).unwrap_or(char::MAX));
    s
}

fn row_entry(table: Table, r: &rusqlite::Row<'_>, name: String) -> Result<Entry, StorageError> {
    Ok(match table {
        Table::Object => Entry::Object {
            name,
            created_at: ts_col(&r.get::<_, String>(1)?),
            size: r.get::<_, i64>(2)?.max(0) as u64,
            content_type: r.get(3)?,
            etag: r.get(4)?,
        },
        Table::Container => {
            let put = ts_col(&r.get::<_, String>(1)?);
            let del = ts_col(&r.get::<_, String>(4)?);
            Entry::Container {
                name,
                count: r.get::<_, i64>(2)?.max(0) as u64,
                bytes: r.get::<_, i64>(3)?.max(0) as u64,
                last_modified: put.max(del),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, ts: u64, size: u64, deleted: bool) -> ObjectRow {
        ObjectRow {
            name: name.into(),
            created_at: Timestamp(ts),
            size,
            content_type: "text/plain".into(),
            etag: "e".into(),
            deleted,
        }
    }

    fn names(v: &[Entry]) -> Vec<String> {
        v.iter()
            .map(|e| match e {
                Entry::Subdir(s) => format!("{s}*"),
                other => other.name().to_string(),
            })
            .collect()
    }

    #[tokio::test]
    async fn counts_follow_puts_overwrites_and_deletes() {
        let d = tempfile::tempdir().unwrap();
        let dbs = Databases::open(d.path(), false).unwrap();
        let (created, _) = dbs
            .container_put("a", "c", Timestamp(1), vec![])
            .await
            .unwrap();
        assert!(created);
        dbs.container_update("a", "c", row("x", 10, 5, false))
            .await
            .unwrap();
        dbs.container_update("a", "c", row("x", 11, 7, false))
            .await
            .unwrap();
        // Older write loses.
        dbs.container_update("a", "c", row("x", 9, 100, false))
            .await
            .unwrap();
        let rep = dbs
            .container_update("a", "c", row("y", 12, 3, false))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((rep.object_count, rep.bytes_used), (2, 10));
        let rep = dbs
            .container_update("a", "c", row("x", 13, 0, true))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((rep.object_count, rep.bytes_used), (1, 3));
        assert!(matches!(
            dbs.container_delete("a", "c", Timestamp(20)).await,
            Err(StorageError::Conflict)
        ));
    }

    #[tokio::test]
    async fn listing_with_prefix_delimiter_markers_and_reverse() {
        let d = tempfile::tempdir().unwrap();
        let dbs = Databases::open(d.path(), false).unwrap();
        dbs.container_put("a", "c", Timestamp(1), vec![])
            .await
            .unwrap();
        for (i, n) in ["a/1", "a/2", "b", "c/x/y", "c/z", "d"].iter().enumerate() {
            dbs.container_update("a", "c", row(n, 10 + i as u64, 1, false))
                .await
                .unwrap();
        }
        let l = |p: ListParams| {
            let dbs = dbs.clone();
            async move { names(&dbs.list_container("a", "c", p).await.unwrap().unwrap()) }
        };
        let base = ListParams {
            limit: 10000,
            ..Default::default()
        };
        assert_eq!(
            l(base.clone()).await,
            ["a/1", "a/2", "b", "c/x/y", "c/z", "d"]
        );
        let delim = ListParams {
            delimiter: Some("/".into()),
            ..base.clone()
        };
        assert_eq!(l(delim.clone()).await, ["a/*", "b", "c/*", "d"]);
        assert_eq!(
            l(ListParams {
                reverse: true,
                ..delim.clone()
            })
            .await,
            ["d", "c/*", "b", "a/*"]
        );
        assert_eq!(
            l(ListParams {
                prefix: Some("c/".into()),
                ..delim.clone()
            })
            .await,
            ["c/x/*", "c/z"]
        );
        assert_eq!(
            l(ListParams {
                marker: "a/2".into(),
                end_marker: "d".into(),
                ..base.clone()
            })
            .await,
            ["b", "c/x/y", "c/z"]
        );
        assert_eq!(
            l(ListParams {
                limit: 2,
                ..base.clone()
            })
            .await,
            ["a/1", "a/2"]
        );
        // `path` lists only the objects directly under it (no subdirs), as Swift.
        assert_eq!(
            l(ListParams {
                path: Some("c".into()),
                ..base.clone()
            })
            .await,
            ["c/z"]
        );
    }

    #[tokio::test]
    async fn more_containers_than_open_handles_still_work() {
        // Crosses MAX_OPEN: idle handles are dropped and reopened on demand.
        let d = tempfile::tempdir().unwrap();
        let dbs = Databases::open(d.path(), false).unwrap();
        for i in 0..MAX_OPEN + 20 {
            dbs.container_put("a", &format!("c{i}"), Timestamp(1), vec![])
                .await
                .unwrap();
        }
        assert!(dbs.open.lock().unwrap().len() <= MAX_OPEN + 1);
        let rep = dbs
            .container_update("a", "c0", row("x", 5, 7, false))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((rep.object_count, rep.bytes_used), (1, 7));
        let info = dbs.container_info("a", "c0").await.unwrap().unwrap();
        assert_eq!(info.object_count, 1);
    }

    #[tokio::test]
    async fn account_totals_and_listing() {
        let d = tempfile::tempdir().unwrap();
        let dbs = Databases::open(d.path(), false).unwrap();
        let rep = |name: &str, n, seq| ContainerReport {
            name: name.into(),
            put_timestamp: Timestamp(1),
            delete_timestamp: Timestamp(0),
            object_count: n,
            bytes_used: n * 10,
            deleted: false,
            stat_seq: seq,
        };
        dbs.account_update("a", rep("c1", 2, 1)).await.unwrap();
        dbs.account_update("a", rep("c2", 3, 1)).await.unwrap();
        // A stale report does not regress counts.
        dbs.account_update("a", rep("c2", 99, 0)).await.unwrap();
        let info = dbs.account_info("a").await.unwrap();
        assert_eq!(
            (info.container_count, info.object_count, info.bytes_used),
            (2, 5, 50)
        );
        let l = dbs
            .list_account(
                "a",
                ListParams {
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(names(&l), ["c1", "c2"]);
    }
}
