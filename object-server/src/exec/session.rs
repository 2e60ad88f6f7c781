//! From a plan and its inputs to a finished run: inputs received, every
//! channel given its bytes on this host, the program found, the manifest
//! and NVRAM rendered (by `sysmap`) and read back (by `sandbox`), exactly
//! the text a worker would get from a file, then the run in the pool.
//!
//! Where each channel's bytes live:
//! - the **attached object** (read): its own data file, opened once and
//!   handed to the worker with the offset of its data: no copy per job;
//!   a **container** input: a snapshot of its listing (`Databases::snapshot_container`);
//! - the **attached output** (write): a new object file whose header area
//!   is reserved; the session writes the data after it, and the agent
//!   commits it (or drops it) after the run;
//! - **inputs the proxy streams** (remote objects, the executable, the
//!   POSTed image, the request payload) and the NVRAM: in memory up to
//!   [`IN_MEMORY`] bytes (the pool hands them to the worker as memfds),
//!   beyond that in an unnamed file in the agent's directory;
//! - **other outputs**: unnamed files, read back after the run;
//! - **system images** (`python2.7`, ...): not channels here; the image is
//!   mounted at `/` as the sandbox's system image.
//!
//! Nothing of a session has a name on disk, so nothing is left behind by a
//! crash, and a small job touches no directory at all. The manifest still
//! names a host path for every channel (`/zerocloud/dev/<device>`): the
//! checks run against what the agent provides, and a worker opens no path.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::HeaderMap;
use sandbox::engine::{self, Outcome, Session};
use sandbox::manifest::{HostKind, Manifest};
use sandbox::nvram::Nvram;
use sandbox::pool::{Cancel, Job, Pool, PoolError, ProgramRef};
use sandbox::python::{PythonImage, Start};
use sandbox::report::{Ending, Validation};
use sysmap::device::DeviceKind;
use sysmap::location::Location;
use sysmap::plan::{AttachMode, Channel, Limits, NodePlan};
use sysmap::render::{self, LocalObject, RenderOptions, SessionFiles};
use wire::exec::{AttachedFrom, ExecRequest, PartReader, BOOT_PART};
use wire::timestamp::Timestamp;

use super::{bad_stream, replica, Agent, Held, Images};
use crate::api::Node;
use crate::config::ExecConfig;
use crate::error::StorageError;
use crate::objects::{ObjectMeta, ObjectWriter};

/// Inputs up to this size stay in memory.
pub const IN_MEMORY: usize = 1 << 20;
/// Outputs up to this size are read back right after the run; larger
/// ones stream from their file.
const SMALL_OUTPUT: u64 = 256 << 10;
/// Where the manifest says a channel's bytes are (never opened: the agent
/// hands the worker every channel's bytes).
const HOST_DEV: &str = "/zerocloud/dev/";
const HOST_PROGRAM: &str = "/zerocloud/program";
const HOST_NVRAM: &str = "/zerocloud/nvram";

/// Bytes the agent holds for a channel.
pub enum Data {
    Memory(Vec<u8>),
    File(std::fs::File),
}

impl Data {
    fn len(&self) -> Result<u64, StorageError> {
        Ok(match self {
            Data::Memory(v) => v.len() as u64,
            Data::File(f) => f.metadata()?.len(),
        })
    }

    /// All of it in memory (an executable, an image to take one out of).
    fn into_bytes(self, max: u64) -> Result<Vec<u8>, StorageError> {
        match self {
            Data::Memory(v) => Ok(v),
            Data::File(mut f) => {
                if f.metadata()?.len() > max {
                    return Err(StorageError::TooLarge(format!(
                        "The executable is larger than {max} bytes"
                    )));
                }
                let mut v = Vec::new();
                f.seek(SeekFrom::Start(0))?;
                f.read_to_end(&mut v)?;
                Ok(v)
            }
        }
    }
}

/// A session ready to run.
pub struct Prepared {
    pub plan: ExecRequest,
    inputs: BTreeMap<String, Data>,
    program: Program,
    python: Option<(Arc<PythonImage>, Start)>,
    /// The Python image's stdlib, for a non-Python program that asked for
    /// the image's device.
    stdlib: Option<Arc<PythonImage>>,
    container: Option<std::fs::File>,
    /// The attached object's metadata when its bytes are in `inputs` (a
    /// Swift replica, or streamed by the proxy) rather than on this
    /// node's disk.
    attached_in: Option<LocalObject>,
    listing_nodes: (String, String),
    /// A connected session's reservation: its slot and listeners.
    held: Option<Held>,
}

/// The program of a session, or why it cannot run (a report without a run).
enum Program {
    Ready(ProgramRef),
    Invalid(String),
}

/// An output object the session writes where it will be stored.
pub struct AttachedOutput {
    pub writer: ObjectWriter,
    pub meta: ObjectMeta,
}

/// An output the agent returns, read back after the run.
pub struct Output {
    pub device: String,
    pub len: u64,
    pub data: OutputData,
}

pub enum OutputData {
    Small(Bytes),
    File(std::fs::File),
}

/// A finished run.
pub struct Ran {
    pub plan: ExecRequest,
    pub outcome: Outcome,
    /// The writable channels, in channel order.
    pub outputs: Vec<Output>,
    /// The attached output object, stored: its metadata, for the listing.
    pub stored: Option<ObjectMeta>,
    pub listing_nodes: (String, String),
}

/// Reads the inputs of `plan` from `reader` and prepares the session.
pub async fn prepare(
    node: &Arc<Node>,
    agent: &Arc<Agent>,
    pool: &Arc<Pool>,
    plan: ExecRequest,
    held: Option<Held>,
    headers: &HeaderMap,
    reader: &mut PartReader,
) -> Result<Prepared, StorageError> {
    let cfg = &agent.cfg;
    let n = &plan.node;
    if !n.connections.is_empty() && held.is_none() {
        return Err(StorageError::BadRequest(format!(
            "{} has network channels: it must be reserved first",
            n.name
        )));
    }
    if n.channels.iter().any(|c| c.kind() == DeviceKind::Debug) {
        return Err(StorageError::BadRequest(
            "The debug device (a network connection out of the sandbox) is not supported".into(),
        ));
    }
    // What the program is decides whether an image is needed at all, so
    // it is checked before any input is read.
    let python = match &n.exe {
        Location::Image(img) if Images::is_python(&img.image) => {
            let name = img.path.rsplit('/').next().unwrap_or_default();
            if !name.starts_with("python") {
                return Err(StorageError::BadRequest(format!(
                    "No executable {} in system image {}: it offers python",
                    img.path, img.image
                )));
            }
            Some(agent.images.python().map_err(unavailable)?)
        }
        _ => None,
    };
    let wants_sysimage = n
        .channels
        .iter()
        .any(|c| c.kind() == DeviceKind::Other && Images::is_python(&c.device));
    let stdlib = match (&python, wants_sysimage) {
        (None, true) => Some(agent.images.python().map_err(unavailable)?),
        _ => None,
    };

    // Inputs, in the order the plan announces them.
    let attached_read = match n.placement.attach {
        AttachMode::Read => n.attached_channel().map(|c| c.device.clone()),
        _ => None,
    };
    let streamed = match (&plan.attached, &attached_read) {
        (AttachedFrom::Streamed, Some(d)) => Some(d.clone()),
        _ => None,
    };
    let mut attached_in: Option<LocalObject> = None;
    let mut inputs: BTreeMap<String, Data> = BTreeMap::new();
    for expected in &plan.inputs {
        let h = reader
            .next_part()
            .await
            .map_err(bad_stream)?
            .ok_or(StorageError::ClientDisconnect)?;
        if &h.name != expected {
            return Err(StorageError::BadRequest(format!(
                "input {} arrived where {expected} was announced",
                h.name
            )));
        }
        if h.len.is_some_and(|l| l > cfg.max_input) {
            return Err(StorageError::TooLarge("RPC request too large".into()));
        }
        let data = spool(agent, reader, cfg.max_input).await?;
        let data = if h.gzip {
            inflate(agent, data, cfg.max_input).await?
        } else {
            data
        };
        if streamed.as_ref() == Some(&h.name) {
            // The attached object, streamed: its part headers are the object's.
            let mut local = replica::local_object_of(
                h.content_type
                    .iter()
                    .map(|t| ("Content-Type".to_string(), t.clone()))
                    .chain(h.headers.iter().cloned()),
            );
            local.content_length = data.len()?;
            attached_in = Some(local);
        }
        inputs.insert(h.name, data);
    }
    // The end mark, and the end of the body: from here on the connection
    // is watched, so a proxy that goes away cancels the session.
    if let Some(h) = reader.next_part().await.map_err(bad_stream)? {
        return Err(StorageError::BadRequest(format!(
            "input {} was not announced",
            h.name
        )));
    }

    // The attached object from the Swift object server this agent runs
    // beside.
    if let (AttachedFrom::SwiftReplica { path, policy }, Some(device)) =
        (&plan.attached, &attached_read)
    {
        let server = cfg.swift_object_server.as_deref().ok_or_else(|| {
            StorageError::BadRequest(
                "a Swift replica to read, but this agent runs beside no Swift object server".into(),
            )
        })?;
        let name = n
            .placement
            .target
            .as_ref()
            .map(|t| t.path())
            .unwrap_or_default();
        let tx = header(headers, wire::TRANS_ID);
        let (data, local) =
            replica::fetch(agent, server, path, policy.as_deref(), &tx, &name).await?;
        inputs.insert(device.clone(), data);
        attached_in = Some(local);
    }
    if attached_read.is_some() && plan.attached.is_disk() && agent.beside_swift() {
        return Err(StorageError::BadRequest(
            "this agent runs beside a Swift object server: it has no objects of its own".into(),
        ));
    }

    // The program. Python runs from its daemon snapshot unless the job's
    // environment asks for the plain start (`ZEROCLOUD_PYTHON_START=plain`).
    let start = python_start(n);
    let program = match (&n.exe, &python) {
        (_, Some(py)) => Program::Ready(agent.python_program(pool, py, start).await?),
        (Location::Swift(_), None) => {
            let wasm = inputs.remove(BOOT_PART).ok_or_else(no_executable)?;
            compile(pool, wasm, None, cfg.max_program).await?
        }
        (Location::Image(img), None) if !Images::is_python(&img.image) => {
            let image = inputs.get_mut(&img.image).ok_or_else(no_executable)?;
            // The image stays an input (it is mounted too): take a copy.
            let bytes = match image {
                Data::Memory(v) => Data::Memory(v.clone()),
                Data::File(f) => Data::File(f.try_clone()?),
            };
            compile(pool, bytes, Some(img.path.clone()), cfg.max_program).await?
        }
        _ => return Err(no_executable()),
    };

    // A container input: a snapshot of its listing (the DB lives on this
    // node, as placement chose).
    let container = match (&n.placement.attach, &n.placement.target) {
        (AttachMode::Read, Some(t)) if t.is_container() => {
            let dest = agent
                .dir
                .join(format!("snapshot-{:016x}.db", rand::random::<u64>()));
            let c = t.container.clone().unwrap_or_default();
            let made = match (&plan.attached, &attached_read) {
                // Beside Swift: the listing the proxy read as the caller.
                (AttachedFrom::Streamed, Some(device)) => match inputs.remove(device) {
                    Some(listing) => {
                        let dest = dest.clone();
                        tokio::task::spawn_blocking(move || listing_snapshot(listing, &dest))
                            .await?
                            .map(Some)
                    }
                    None => Ok(None),
                },
                _ => {
                    node.dbs
                        .snapshot_container(&t.account, &c, dest.clone())
                        .await
                }
            };
            // Opened, then unlinked: it has no name for as long as it is used.
            let file = match made {
                Ok(Some(())) => Some(std::fs::File::open(&dest)),
                Ok(None) => None,
                Err(e) => {
                    let _ = std::fs::remove_file(&dest);
                    return Err(e);
                }
            };
            let _ = std::fs::remove_file(&dest);
            file.transpose()?
        }
        _ => None,
    };
    Ok(Prepared {
        held,
        python: python.map(|py| (py, start)),
        stdlib,
        inputs,
        program,
        container,
        attached_in,
        listing_nodes: (
            header(headers, wire::CONTAINER_NODE),
            header(headers, wire::ACCOUNT_NODE),
        ),
        plan,
    })
}

/// A container's JSON listing (Swift's `format=json`), as the snapshot a
/// container input reads.
fn listing_snapshot(listing: Data, dest: &std::path::Path) -> Result<(), StorageError> {
    #[derive(serde::Deserialize)]
    struct Entry {
        name: String,
        #[serde(default)]
        hash: String,
        #[serde(default)]
        bytes: i64,
        #[serde(default)]
        content_type: String,
        #[serde(default)]
        last_modified: String,
    }
    let bad =
        |e: serde_json::Error| StorageError::BadRequest(format!("the container listing: {e}"));
    let entries: Vec<Entry> = match listing {
        Data::Memory(v) => serde_json::from_slice(&v).map_err(bad)?,
        Data::File(mut f) => {
            f.seek(SeekFrom::Start(0))?;
            serde_json::from_reader(std::io::BufReader::new(f)).map_err(bad)?
        }
    };
    crate::db::Databases::snapshot_from_rows(
        dest,
        entries.into_iter().map(|e| crate::db::SnapshotRow {
            created_at: Timestamp::parse_iso8601(&e.last_modified)
                .unwrap_or_default()
                .to_string(),
            name: e.name,
            size: e.bytes,
            content_type: e.content_type,
            etag: e.hash,
        }),
    )
}

/// Where [`spool`] takes bytes from: the next chunk, `None` at the end.
pub(super) trait Chunks {
    fn next(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<Bytes>, StorageError>> + Send;
}

impl Chunks for PartReader {
    async fn next(&mut self) -> Result<Option<Bytes>, StorageError> {
        self.next_chunk().await.map_err(bad_stream)
    }
}

/// One input's data (a part, a replica): in memory while it is small, then
/// in an unnamed file in the agent's directory; more than `max` bytes is
/// refused.
pub(super) async fn spool(
    agent: &Agent,
    source: &mut impl Chunks,
    max: u64,
) -> Result<Data, StorageError> {
    let mut mem: Vec<u8> = Vec::new();
    let mut size = 0u64;
    while let Some(chunk) = source.next().await? {
        size += chunk.len() as u64;
        if size > max {
            return Err(StorageError::TooLarge("RPC request too large".into()));
        }
        mem.extend_from_slice(&chunk);
        if mem.len() > IN_MEMORY {
            break;
        }
    }
    if mem.len() <= IN_MEMORY {
        return Ok(Data::Memory(mem));
    }
    // Large: to a file, a megabyte at a time.
    let dir = agent.dir.clone();
    let mut file = tokio::task::spawn_blocking(move || {
        let mut f = tempfile::tempfile_in(dir)?;
        f.write_all(&mem)?;
        Ok::<_, std::io::Error>(f)
    })
    .await??;
    let mut batch: Vec<u8> = Vec::with_capacity(IN_MEMORY);
    loop {
        let chunk = source.next().await?;
        let done = chunk.is_none();
        if let Some(c) = &chunk {
            size += c.len() as u64;
            if size > max {
                return Err(StorageError::TooLarge("RPC request too large".into()));
            }
            batch.extend_from_slice(c);
        }
        if done || batch.len() >= IN_MEMORY {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(IN_MEMORY));
            file = tokio::task::spawn_blocking(move || {
                file.write_all(&full)?;
                Ok::<_, std::io::Error>(file)
            })
            .await??;
        }
        if done {
            return Ok(Data::File(file));
        }
    }
}

/// Gunzips an `application/x-gzip` image.
async fn inflate(agent: &Agent, data: Data, max: u64) -> Result<Data, StorageError> {
    let dir = agent.dir.clone();
    tokio::task::spawn_blocking(move || {
        let input: Box<dyn Read + Send> = match data {
            Data::Memory(v) => Box::new(std::io::Cursor::new(v)),
            Data::File(mut f) => {
                f.seek(SeekFrom::Start(0))?;
                Box::new(f)
            }
        };
        let bad = |_| StorageError::Unprocessable("Failed to inflate gzipped image".into());
        let mut decoder = flate2::read::GzDecoder::new(input).take(max + 1);
        let mut mem = Vec::new();
        (&mut decoder)
            .take(IN_MEMORY as u64 + 1)
            .read_to_end(&mut mem)
            .map_err(bad)?;
        if mem.len() <= IN_MEMORY {
            return Ok(Data::Memory(mem));
        }
        let mut f = tempfile::tempfile_in(dir)?;
        f.write_all(&mem)?;
        let n = std::io::copy(&mut decoder, &mut f).map_err(bad)? + mem.len() as u64;
        if n > max {
            return Err(StorageError::TooLarge("RPC request too large".into()));
        }
        Ok(Data::File(f))
    })
    .await?
}

/// Validates and compiles a wasm module (the input itself, or a member of
/// it when it is a tar image) into the pool's cache. An invalid module is
/// not an error of the request: the session reports `validation failed`.
async fn compile(
    pool: &Arc<Pool>,
    data: Data,
    member: Option<String>,
    max: u64,
) -> Result<Program, StorageError> {
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let wasm = match member {
            None => data.into_bytes(max)?,
            Some(member) => {
                let bytes = data.into_bytes(u64::MAX)?;
                let image = sandbox::tar::TarImage::new(bytes.as_slice()).map_err(|e| {
                    StorageError::BadRequest(format!("The image is not a valid tar: {e}"))
                })?;
                let (_, entry) = image.resolve(&member, true).map_err(|_| {
                    StorageError::BadRequest(format!("No executable {member} in the image"))
                })?;
                let data = image.contents(entry);
                if data.len() as u64 > max {
                    return Err(StorageError::TooLarge(format!(
                        "The executable is larger than {max} bytes"
                    )));
                }
                data.to_vec()
            }
        };
        Ok(match pool.program_ref(&wasm) {
            Ok(p) => Program::Ready(p),
            Err(e) => Program::Invalid(e.to_string()),
        })
    })
    .await?
}

/// The Python start a node's environment asks for.
fn python_start(node: &NodePlan) -> Start {
    sandbox::python::start_from_env(node.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn unavailable(u: super::Unavailable) -> StorageError {
    StorageError::Unavailable {
        message: u.message,
        retry_after: u.retry_after,
    }
}

fn no_executable() -> StorageError {
    StorageError::BadRequest("No executable found in request".into())
}

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

impl Prepared {
    /// Waits for a worker and runs the session. Dropping the future (the
    /// proxy went away) cancels the run: its worker is killed.
    pub async fn run(
        mut self,
        node: &Arc<Node>,
        agent: &Arc<Agent>,
        pool: &Arc<Pool>,
    ) -> Result<Ran, StorageError> {
        // A connected session holds its slot since it was reserved; the
        // others wait for one of the default pool.
        let permit = match self.held.as_mut() {
            Some(h) => h.permit.take(),
            None => Some(
                agent
                    .slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| StorageError::Peer("the agent is stopping".into()))?,
            ),
        };
        let cancel = Cancel::new();
        let guard = CancelOnDrop(Some(cancel.clone()));
        let (node, agent, pool) = (node.clone(), agent.clone(), pool.clone());
        let ran = tokio::task::spawn_blocking(move || self.run_here(&node, &agent, &pool, &cancel))
            .await?;
        guard.disarm();
        drop(permit);
        ran
    }

    /// The run, in one blocking section: channels, manifest, the pool, the
    /// attached output committed, small outputs read back.
    fn run_here(
        self,
        node: &Node,
        agent: &Agent,
        pool: &Pool,
        cancel: &Cancel,
    ) -> Result<Ran, StorageError> {
        let Prepared {
            mut plan,
            mut inputs,
            program,
            python,
            stdlib,
            container,
            attached_in,
            listing_nodes,
            held,
        } = self;
        let cfg = &agent.cfg;
        let mut provided = Provided::default();
        let mut attached: Option<AttachedOutput> = None;
        let mut outputs: Vec<(String, std::fs::File)> = Vec::new();
        let mut local: Option<LocalObject> = None;

        let n = &mut plan.node;
        // System images are mounted by the sandbox, not channels here.
        let attached_device = n.attached_channel().map(|c| c.device.clone());
        n.channels
            .retain(|c| !(c.kind() == DeviceKind::Other && Images::is_python(&c.device)));
        n.placement.channel = attached_device
            .as_ref()
            .and_then(|d| n.channels.iter().position(|c| &c.device == d));
        let attached_ch = n.attached_channel().cloned();
        if let Some(ch) = &attached_ch {
            let target = n.placement.target.clone().ok_or_else(|| {
                StorageError::BadRequest("an attached node without a target".into())
            })?;
            let name = target.path();
            let missing =
                || StorageError::Missing(format!("Error 404 Not Found while fetching {name}"));
            match (n.placement.attach, target.is_container()) {
                (AttachMode::Read, true) => {
                    let file = container.ok_or_else(missing)?;
                    let len = file.metadata()?.len();
                    local = Some(LocalObject {
                        content_length: len,
                        metadata: vec![("Content-Type".into(), "application/x-sqlite3".into())],
                    });
                    provided.file(&ch.device, file, 0)?;
                }
                (_, true) => {
                    return Err(StorageError::NotAllowed(format!(
                        "'{}' requests on containers are not supported.",
                        n.placement.attach.x_zerovm_access()
                    )))
                }
                (AttachMode::Read, false) if attached_in.is_some() => {
                    match inputs.remove(&ch.device) {
                        Some(Data::Memory(v)) => provided.memory(&ch.device, v),
                        Some(Data::File(f)) => provided.file(&ch.device, f, 0)?,
                        None => return Err(missing()),
                    }
                    local = attached_in;
                }
                (AttachMode::Read, false) => {
                    let opened = node
                        .objects
                        .open_object(&name)?
                        .filter(|o| !o.meta.is_expired(Timestamp::now().secs()))
                        .ok_or_else(missing)?;
                    local = Some(local_object(&opened.meta));
                    provided.file(&ch.device, opened.file, opened.data_offset)?;
                }
                (AttachMode::Write, false) if !plan.attached.is_disk() => {
                    // Stored by the proxy through the Swift proxy, as an
                    // output with a path (only after a clean exit too).
                    let f = tempfile::tempfile_in(&agent.dir)?;
                    provided.file(&ch.device, f.try_clone()?, 0)?;
                    outputs.push((ch.device.clone(), f));
                    local = Some(LocalObject::default());
                }
                (AttachMode::Write, false) => {
                    let ts = Timestamp::parse(&plan.timestamp).ok_or_else(|| {
                        StorageError::BadRequest(
                            "Locally writable object specified but no x-timestamp in request"
                                .into(),
                        )
                    })?;
                    let meta = ObjectMeta {
                        name: name.clone(),
                        data_ts: ts,
                        meta_ts: ts,
                        content_type: ch.content_type.clone(),
                        etag: String::new(),
                        size: 0,
                        headers: object_meta_headers(ch),
                        delete_at: None,
                    };
                    let mut writer = node.objects.writer()?;
                    writer.reserve_header(&meta)?;
                    provided.file(&ch.device, writer.file()?.try_clone()?, writer.header_len())?;
                    local = Some(LocalObject::default());
                    attached = Some(AttachedOutput { writer, meta });
                }
                (AttachMode::None, false) => {}
            }
        }
        for (i, ch) in n.channels.iter().enumerate() {
            if Some(i) == n.placement.channel && attached_ch.is_some() {
                continue;
            }
            if ch.kind() == DeviceKind::Db {
                continue;
            }
            if ch.access.readable() || ch.access.cdr() {
                // Streamed by the proxy (remote objects, the POSTed image,
                // the payload); a path-less stdin without one reads /dev/null.
                match inputs.remove(&ch.device) {
                    Some(Data::Memory(v)) => provided.memory(&ch.device, v),
                    Some(Data::File(f)) => provided.file(&ch.device, f, 0)?,
                    None => {}
                }
                continue;
            }
            if ch.access.writable() {
                let f = tempfile::tempfile_in(&agent.dir)?;
                provided.file(&ch.device, f.try_clone()?, 0)?;
                outputs.push((ch.device.clone(), f));
            }
        }

        // Network channels: the reserved listeners of incoming ones (they
        // accept at the first read), the readers' addresses for outgoing
        // ones (connected when the session's channels open).
        let mut network = plan.network.clone();
        if let Some(held) = held {
            for (alias, socks) in held.listeners {
                let addrs: Vec<String> = socks
                    .iter()
                    .map(|l| l.local_addr().map(|a| format!("tcp:{a}")))
                    .collect::<std::io::Result<_>>()?;
                network.insert(alias.clone(), addrs.join(";"));
                for l in socks {
                    provided.socket(&alias, std::fs::File::from(std::os::fd::OwnedFd::from(l)));
                }
            }
        }

        // The manifest and NVRAM, rendered and read back.
        let opts = render_options(&plan, cfg);
        let node_plan: &NodePlan = &plan.node;
        let files = SessionFiles {
            program: HOST_PROGRAM.into(),
            nvram: HOST_NVRAM.into(),
            channels: provided.paths.clone(),
            network,
            replica: plan.replica,
            ..SessionFiles::default()
        };
        let manifest_text = render::manifest(node_plan, &opts, &files).map_err(job_error)?;
        let nvram_text = render::nvram(node_plan, &opts, local.as_ref()).map_err(job_error)?;
        let manifest = Manifest::parse(manifest_text.as_bytes())
            .map_err(|e| StorageError::BadRequest(format!("Invalid manifest: {e}")))?;
        let sizes = &provided.sizes;
        let nvram_len = nvram_text.len() as u64;
        let probe = |path: &str| -> Option<HostKind> {
            match path {
                HOST_PROGRAM => Some(HostKind::Regular { size: 0 }),
                HOST_NVRAM => Some(HostKind::Regular { size: nvram_len }),
                "/dev/null" => Some(HostKind::CharDevice),
                p => sizes.get(p).map(|&size| HostKind::Regular { size }),
            }
        };
        let checked = manifest
            .check(&probe)
            .map_err(|e| StorageError::BadRequest(format!("Invalid manifest: {e}")))?;
        let mut session = Session::from_manifest(&manifest, checked);
        session.program_name = node_plan.program_name().to_string();
        session.memory = cfg.memory;
        session.timeout = Duration::from_secs(plan.timeout.clamp(1, cfg.max_timeout));
        let nvram_alias = engine::NVRAM_ALIAS.to_string();
        session.buffers.insert(
            nvram_alias,
            sandbox::channel::shared(nvram_text.as_bytes().to_vec()),
        );
        for (alias, data) in provided.buffers {
            session
                .buffers
                .insert(alias, sandbox::channel::shared(data));
        }
        for (alias, (file, offset)) in provided.files {
            // A multichannel's sockets arrive one by one under its alias.
            session
                .files
                .entry(alias.clone())
                .or_default()
                .push(Arc::new(file));
            if offset > 0 {
                session.file_offsets.insert(alias, offset);
            }
        }
        match &python {
            Some((py, start)) => {
                let nvram = Nvram::parse_lenient(nvram_text.as_bytes()).0;
                let (args, env) = engine::command_line(&session, &nvram);
                session.args = Some(args);
                session.env = Some(env);
                py.apply(&mut session, *start);
            }
            None => {
                if let Some(image) = stdlib {
                    session
                        .system_images
                        .push(("/".to_string(), image.stdlib.clone()));
                }
            }
        }

        // The run.
        let outcome = match program {
            Program::Invalid(why) => {
                Outcome::failed(Validation::Failed, Ending::ValidationFailed, Some(why))
            }
            Program::Ready(program) => {
                let validation = session.validation;
                match pool.run_cancellable(Job { program, session }, cancel) {
                    Ok(o) => o,
                    Err(PoolError::NoSlot) => {
                        return Err(StorageError::Unavailable {
                            message: "Slot not available".into(),
                            retry_after: Some(1),
                        })
                    }
                    Err(PoolError::Cancelled) => return Err(StorageError::ClientDisconnect),
                    Err(e) => Outcome::failed(
                        validation,
                        Ending::Failed {
                            errno: sandbox::errno::EFAULT,
                            message: format!("ZeroVM runtime error: {e}"),
                        },
                        None,
                    ),
                }
            }
        };

        // The attached output, stored only after a clean exit.
        let succeeded = matches!(outcome.ending, Ending::Exited) && outcome.report.user_code == 0;
        let stored = match attached {
            Some(AttachedOutput {
                mut writer,
                mut meta,
            }) if succeeded => {
                // A program's HTTP answer: its type and X-Object-Meta-*
                // headers describe the object, its body is the data.
                if let Some(nph) = attached_ch
                    .as_ref()
                    .and_then(|c| super::cgi::kind(&c.content_type))
                {
                    let at = writer.header_len();
                    let file = writer.file()?;
                    let len = file.metadata()?.len().saturating_sub(at);
                    if let Some(answer) = super::cgi::parse_file(file, at, len, nph)? {
                        if let Some(ct) = answer.content_type() {
                            meta.content_type = ct.to_string();
                        }
                        meta.headers = within_swift_limits(
                            answer
                                .headers
                                .iter()
                                .filter(|(k, _)| {
                                    k.to_ascii_lowercase().starts_with("x-object-meta-")
                                })
                                .cloned(),
                        );
                        writer.cut_front(answer.body_at as u64, &meta)?;
                    }
                }
                writer.adopt_data()?;
                meta.etag = writer.etag();
                meta.size = writer.size();
                // False: a newer object arrived meanwhile, and it stays.
                node.objects.commit(writer, &meta)?.then_some(meta)
            }
            _ => None,
        };
        let mut read_back = Vec::with_capacity(outputs.len());
        for (device, mut f) in outputs {
            let len = f.metadata()?.len();
            f.seek(SeekFrom::Start(0))?;
            let data = if len <= SMALL_OUTPUT {
                let mut v = Vec::with_capacity(len as usize);
                f.read_to_end(&mut v)?;
                OutputData::Small(Bytes::from(v))
            } else {
                OutputData::File(f)
            };
            read_back.push(Output { device, len, data });
        }
        Ok(Ran {
            plan,
            outcome,
            outputs: read_back,
            stored,
            listing_nodes,
        })
    }
}

/// What the agent hands the worker for each channel, and the host path
/// the manifest gives it.
#[derive(Default)]
struct Provided {
    paths: BTreeMap<String, String>,
    sizes: BTreeMap<String, u64>,
    buffers: Vec<(String, Vec<u8>)>,
    files: Vec<(String, (std::fs::File, u64))>,
}

impl Provided {
    fn path(&mut self, device: &str, size: u64) -> String {
        let path = format!("{HOST_DEV}{device}");
        self.paths.insert(device.to_string(), path.clone());
        self.sizes.insert(path.clone(), size);
        path
    }

    fn memory(&mut self, device: &str, v: Vec<u8>) {
        self.path(device, v.len() as u64);
        self.buffers.push((format!("/dev/{device}"), v));
    }

    /// A network channel's socket (its manifest source is a `tcp:` URI,
    /// not a host path).
    fn socket(&mut self, alias: &str, f: std::fs::File) {
        self.files.push((alias.to_string(), (f, 0)));
    }

    fn file(&mut self, device: &str, f: std::fs::File, offset: u64) -> std::io::Result<()> {
        let size = f.metadata()?.len().saturating_sub(offset);
        self.path(device, size);
        self.files.push((format!("/dev/{device}"), (f, offset)));
        Ok(())
    }
}

/// Object metadata a program gave, kept while within Swift's limits (90
/// items, names of 128 bytes, values of 256, 4096 bytes in all); the rest
/// is dropped, as a PUT with it would have been refused.
fn within_swift_limits(headers: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut kept = Vec::new();
    let mut total = 0;
    for (k, v) in headers {
        let name = k.len() - "x-object-meta-".len();
        if kept.len() == 90 || name == 0 || name > 128 || v.len() > 256 {
            continue;
        }
        if total + name + v.len() > 4096 {
            continue;
        }
        total += name + v.len();
        kept.push((k, v));
    }
    kept
}

/// `X-Object-Meta-*` headers from a channel's `meta`.
fn object_meta_headers(ch: &Channel) -> Vec<(String, String)> {
    ch.meta
        .iter()
        .map(|(k, v)| {
            (
                format!("x-object-meta-{}", k.to_ascii_lowercase()),
                v.clone(),
            )
        })
        .collect()
}

/// The stored metadata `LOCAL_*` variables are made of.
fn local_object(m: &ObjectMeta) -> LocalObject {
    let mut metadata = vec![
        ("Content-Type".to_string(), m.content_type.clone()),
        ("ETag".to_string(), m.etag.clone()),
        ("X-Timestamp".to_string(), m.data_ts.to_string()),
    ];
    metadata.extend(m.headers.iter().cloned());
    LocalObject {
        content_length: m.size,
        metadata,
    }
}

/// What every manifest of this agent says: the session's timeout, the
/// memory and channel limits of the configuration.
fn render_options(plan: &ExecRequest, cfg: &ExecConfig) -> RenderOptions {
    RenderOptions {
        timeout: plan.timeout.clamp(1, cfg.max_timeout),
        memory: cfg.memory,
        limits: Limits {
            reads: cfg.max_iops,
            rbytes: cfg.max_input,
            writes: cfg.max_iops,
            wbytes: cfg.max_output,
        },
        ..RenderOptions::default()
    }
}

fn job_error(e: sysmap::Error) -> StorageError {
    StorageError::BadRequest(e.to_string())
}

/// Cancels a run when the request's future is dropped before it ended.
struct CancelOnDrop(Option<Cancel>);

impl CancelOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(c) = &self.0 {
            c.cancel();
        }
    }
}
