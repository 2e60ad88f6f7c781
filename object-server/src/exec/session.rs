//! From a plan and its inputs to a session ready to run: inputs spooled,
//! every channel resolved to a host file, the program found, the manifest
//! and NVRAM rendered (by `sysmap`) and read back (by `sandbox`), exactly
//! the text a worker would get from a file.
//!
//! Where each channel's bytes live:
//! - the **attached object** (read): its own data file, opened once and
//!   handed to the worker with the offset of its data: no copy per job;
//! - the **attached output** (write): a new object file whose header area
//!   is reserved; the session writes the data after it, and the agent
//!   commits it (or drops it) after the run;
//! - **inputs the proxy streams** (remote objects, the executable, the
//!   POSTed image, the request payload): spooled into the session's
//!   directory first;
//! - **other outputs**: files in the session's directory, sent back to the
//!   proxy after the run;
//! - **system images** (`python2.7`, ...): not channels here; the image is
//!   mounted at `/` as the sandbox's system image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::header::HeaderMap;
use sandbox::engine::{self, Outcome, Session};
use sandbox::manifest::{Manifest, StdHost};
use sandbox::nvram::Nvram;
use sandbox::pool::{Job, Pool, PoolError, ProgramRef};
use sandbox::python::{PythonImage, Start};
use sandbox::report::{Ending, Validation};
use sysmap::device::DeviceKind;
use sysmap::location::Location;
use sysmap::plan::{AttachMode, Channel, Limits, NodePlan};
use sysmap::render::{self, LocalObject, RenderOptions, SessionFiles};
use tokio::io::AsyncWriteExt;
use wire::exec::{ExecRequest, PartReader, BOOT_PART};
use wire::timestamp::Timestamp;

use super::{bad_stream, Agent, Images};
use crate::api::Node;
use crate::config::ExecConfig;
use crate::error::StorageError;
use crate::objects::{ObjectMeta, ObjectWriter};

/// A session ready to run, and what its outputs need afterwards.
pub struct Prepared {
    pub plan: ExecRequest,
    session: Session,
    program: Program,
    /// The session's directory: spooled inputs, outputs, the NVRAM.
    pub dir: tempfile::TempDir,
    /// Host file of each writable channel the agent returns, by device.
    pub outputs: BTreeMap<String, PathBuf>,
    /// The attached output object, written in place.
    pub attached_output: Option<AttachedOutput>,
    /// Container and account nodes an attached output's listing update goes to.
    pub listing_nodes: (String, String),
}

/// The program of a session (its compiled module, and the host file it
/// came from, which the manifest names), or why it cannot run (a report
/// without a run).
enum Program {
    Ready(ProgramRef, PathBuf),
    Invalid(String, PathBuf),
}

/// An output object the session writes where it will be stored.
pub struct AttachedOutput {
    pub writer: ObjectWriter,
    pub meta: ObjectMeta,
}

/// The run's result and everything its outputs need.
pub struct Ran {
    pub prepared: Prepared,
    pub outcome: Outcome,
}

/// Reads the inputs of `plan` from `reader` and prepares the session.
pub async fn prepare(
    node: &Arc<Node>,
    agent: &Arc<Agent>,
    pool: &Arc<Pool>,
    mut plan: ExecRequest,
    headers: &HeaderMap,
    reader: &mut PartReader,
) -> Result<Prepared, StorageError> {
    let cfg = &agent.cfg;
    if plan
        .node
        .channels
        .iter()
        .any(|c| c.kind() == DeviceKind::Debug)
    {
        return Err(StorageError::BadRequest(
            "The debug device (a network connection out of the sandbox) is not supported".into(),
        ));
    }
    // What the program is decides whether an image is needed at all, so
    // it is checked before any input is read.
    let python = match &plan.node.exe {
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
    let wants_sysimage = plan
        .node
        .channels
        .iter()
        .any(|c| c.kind() == DeviceKind::Other && Images::is_python(&c.device));
    let stdlib = match (&python, wants_sysimage) {
        (None, true) => Some(agent.images.python().map_err(unavailable)?),
        _ => None,
    };
    let dir = tempfile::Builder::new()
        .prefix("s-")
        .tempdir_in(&agent.dir)
        .map_err(StorageError::Io)?;

    // Inputs, in the order the plan announces them.
    let mut spooled: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (i, expected) in plan.inputs.clone().into_iter().enumerate() {
        let h = reader
            .next_part()
            .await
            .map_err(bad_stream)?
            .ok_or(StorageError::ClientDisconnect)?;
        if h.name != expected {
            return Err(StorageError::BadRequest(format!(
                "input {} arrived where {expected} was announced",
                h.name
            )));
        }
        if h.len.is_some_and(|l| l > cfg.max_input) {
            return Err(StorageError::TooLarge("RPC request too large".into()));
        }
        let path = dir.path().join(format!("in-{i}"));
        let mut file = tokio::fs::File::create(&path).await?;
        let mut size = 0u64;
        while let Some(chunk) = reader.next_chunk().await.map_err(bad_stream)? {
            size += chunk.len() as u64;
            if size > cfg.max_input {
                return Err(StorageError::TooLarge("RPC request too large".into()));
            }
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        drop(file);
        let path = if h.gzip {
            inflate(path, dir.path().join(format!("in-{i}.raw")), cfg.max_input).await?
        } else {
            path
        };
        spooled.insert(h.name, path);
    }
    // The end mark, and the end of the body: from here on the connection
    // is watched, so a proxy that goes away cancels the session.
    if let Some(h) = reader.next_part().await.map_err(bad_stream)? {
        return Err(StorageError::BadRequest(format!(
            "input {} was not announced",
            h.name
        )));
    }

    // The program. Python runs from its daemon snapshot unless the job's
    // environment asks for the plain start (`ZEROCLOUD_PYTHON_START=plain`).
    let start = python_start(&plan.node);
    let program = match (&plan.node.exe, &python) {
        (_, Some(py)) => Program::Ready(
            agent.python_program(pool, py, start).await?,
            py.module(start).1.clone(),
        ),
        (Location::Swift(_), None) => {
            let path = spooled.get(BOOT_PART).cloned().ok_or_else(no_executable)?;
            compile(pool, path, None, cfg.max_program).await?
        }
        (Location::Image(img), None) if !Images::is_python(&img.image) => {
            let image = spooled.get(&img.image).cloned().ok_or_else(no_executable)?;
            compile(pool, image, Some(img.path.clone()), cfg.max_program).await?
        }
        _ => return Err(no_executable()),
    };

    // Channels → host files.
    // A container input: a snapshot of its listing, made here (the DB
    // lives on this node, as placement chose).
    let container = match (&plan.node.placement.attach, &plan.node.placement.target) {
        (AttachMode::Read, Some(t)) if t.is_container() => {
            let dest = dir.path().join("container.db");
            let c = t.container.clone().unwrap_or_default();
            node.dbs
                .snapshot_container(&t.account, &c, dest.clone())
                .await?
                .map(|()| dest)
        }
        _ => None,
    };
    let node = node.clone();
    let headers = headers.clone();
    let dir_path = dir.path().to_path_buf();
    let program_file = match &program {
        Program::Ready(_, path) | Program::Invalid(_, path) => path.display().to_string(),
    };
    let resolved = tokio::task::spawn_blocking(move || {
        resolve(
            &node,
            &mut plan,
            &spooled,
            container,
            &dir_path,
            &headers,
            program_file,
        )
        .map(|r| (r, plan))
    })
    .await??;
    let (mut resolved, plan) = resolved;
    let python_or_stdlib = python.clone().or(stdlib);
    let python = python.map(|py| (py, start));
    let session = build_session(
        cfg,
        &plan,
        &resolved,
        python.as_ref(),
        python_or_stdlib,
        dir.path(),
    )?;
    Ok(Prepared {
        plan,
        session,
        program,
        dir,
        outputs: std::mem::take(&mut resolved.outputs),
        attached_output: resolved.attached_output.take(),
        listing_nodes: resolved.listing_nodes.clone(),
    })
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

/// Gunzips a spooled `application/x-gzip` image.
async fn inflate(from: PathBuf, to: PathBuf, max: u64) -> Result<PathBuf, StorageError> {
    tokio::task::spawn_blocking(move || {
        let input = std::fs::File::open(&from)?;
        let mut decoder = flate2::read::GzDecoder::new(input);
        let mut out = std::fs::File::create(&to)?;
        let mut limited = std::io::Read::take(&mut decoder, max + 1);
        let n = std::io::copy(&mut limited, &mut out)
            .map_err(|_| StorageError::Unprocessable("Failed to inflate gzipped image".into()))?;
        if n > max {
            return Err(StorageError::TooLarge("RPC request too large".into()));
        }
        let _ = std::fs::remove_file(&from);
        Ok(to)
    })
    .await?
}

/// Validates and compiles a wasm module (a file, or a member of a tar
/// image) into the pool's cache. An invalid module is not an error of the
/// request: the session reports `validation failed`.
async fn compile(
    pool: &Arc<Pool>,
    file: PathBuf,
    member: Option<String>,
    max: u64,
) -> Result<Program, StorageError> {
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let wasm = match member {
            None => {
                if std::fs::metadata(&file)?.len() > max {
                    return Err(StorageError::TooLarge(format!(
                        "The executable is larger than {max} bytes"
                    )));
                }
                std::fs::read(&file)?
            }
            Some(member) => {
                let bytes = std::fs::read(&file)?;
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
            Ok(p) => Program::Ready(p, file),
            Err(e) => Program::Invalid(e.to_string(), file),
        })
    })
    .await?
}

/// Where each channel of a node is on this host.
struct Resolved {
    files: SessionFiles,
    /// Open files the worker gets instead of opening a path, and the
    /// offset where the channel's bytes start in each.
    open: BTreeMap<String, (Arc<std::fs::File>, u64)>,
    local: Option<LocalObject>,
    outputs: BTreeMap<String, PathBuf>,
    attached_output: Option<AttachedOutput>,
    listing_nodes: (String, String),
}

fn resolve(
    node: &Arc<Node>,
    plan: &mut ExecRequest,
    spooled: &BTreeMap<String, PathBuf>,
    container: Option<PathBuf>,
    dir: &Path,
    headers: &HeaderMap,
    program: String,
) -> Result<Resolved, StorageError> {
    let n = &mut plan.node;
    // System images are mounted by the sandbox, not channels here.
    let attached_device = n.attached_channel().map(|c| c.device.clone());
    n.channels
        .retain(|c| !(c.kind() == DeviceKind::Other && Images::is_python(&c.device)));
    n.placement.channel = attached_device
        .as_ref()
        .and_then(|d| n.channels.iter().position(|c| &c.device == d));
    let mut r = Resolved {
        files: SessionFiles {
            program,
            nvram: dir.join("nvram").display().to_string(),
            network: plan.network.clone(),
            replica: plan.replica,
            ..SessionFiles::default()
        },
        open: BTreeMap::new(),
        local: None,
        outputs: BTreeMap::new(),
        attached_output: None,
        listing_nodes: (
            header(headers, wire::CONTAINER_NODE),
            header(headers, wire::ACCOUNT_NODE),
        ),
    };
    let attached = n.attached_channel().cloned();
    if let Some(ch) = &attached {
        let target =
            n.placement.target.clone().ok_or_else(|| {
                StorageError::BadRequest("an attached node without a target".into())
            })?;
        let name = target.path();
        match (n.placement.attach, target.is_container()) {
            // A container: its listing, snapshotted by `prepare`.
            (AttachMode::Read, true) => {
                let snapshot = container.clone().ok_or_else(|| {
                    StorageError::Missing(format!("Error 404 Not Found while fetching {name}"))
                })?;
                let len = std::fs::metadata(&snapshot)?.len();
                r.files
                    .channels
                    .insert(ch.device.clone(), snapshot.display().to_string());
                r.local = Some(LocalObject {
                    content_length: len,
                    metadata: vec![("Content-Type".into(), "application/x-sqlite3".into())],
                });
            }
            (_, true) => {
                return Err(StorageError::NotAllowed(format!(
                    "'{}' requests on containers are not supported.",
                    n.placement.attach.x_zerovm_access()
                )))
            }
            (AttachMode::Read, false) => {
                let opened = node
                    .objects
                    .open_object(&name)?
                    .filter(|o| !o.meta.is_expired(Timestamp::now().secs()))
                    .ok_or_else(|| {
                        StorageError::Missing(format!("Error 404 Not Found while fetching {name}"))
                    })?;
                r.files.channels.insert(
                    ch.device.clone(),
                    node.objects.data_path(&name).display().to_string(),
                );
                r.local = Some(local_object(&opened.meta));
                r.open
                    .insert(ch.alias(), (Arc::new(opened.file), opened.data_offset));
            }
            (AttachMode::Write, false) => {
                let ts = Timestamp::parse(&plan.timestamp).ok_or_else(|| {
                    StorageError::BadRequest(
                        "Locally writable object specified but no x-timestamp in request".into(),
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
                r.files
                    .channels
                    .insert(ch.device.clone(), writer.tmp_path().display().to_string());
                r.open.insert(
                    ch.alias(),
                    (Arc::new(writer.file()?.try_clone()?), writer.header_len()),
                );
                r.local = Some(LocalObject::default());
                r.attached_output = Some(AttachedOutput { writer, meta });
            }
            (AttachMode::None, false) => {}
        }
    }
    for (i, ch) in n.channels.iter().enumerate() {
        if Some(i) == n.placement.channel && attached.is_some() {
            continue;
        }
        let kind = ch.kind();
        if kind == DeviceKind::Db {
            continue;
        }
        if ch.access.readable() || ch.access.cdr() {
            // Streamed by the proxy (remote objects, the POSTed image, the
            // payload); a path-less stdin without one reads /dev/null.
            if let Some(path) = spooled.get(&ch.device) {
                r.files
                    .channels
                    .insert(ch.device.clone(), path.display().to_string());
            }
            continue;
        }
        if ch.access.writable() {
            let path = dir.join(format!("out-{i}"));
            std::fs::File::create(&path)?;
            r.files
                .channels
                .insert(ch.device.clone(), path.display().to_string());
            r.outputs.insert(ch.device.clone(), path);
        }
    }
    Ok(r)
}

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
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

/// Renders the manifest and NVRAM, reads them back as the sandbox would,
/// and makes the session.
fn build_session(
    cfg: &ExecConfig,
    plan: &ExecRequest,
    r: &Resolved,
    python: Option<&(Arc<PythonImage>, Start)>,
    stdlib: Option<Arc<PythonImage>>,
    dir: &Path,
) -> Result<Session, StorageError> {
    let opts = render_options(plan, cfg);
    let node: &NodePlan = &plan.node;
    let manifest_text = render::manifest(node, &opts, &r.files).map_err(job_error)?;
    let nvram_text = render::nvram(node, &opts, r.local.as_ref()).map_err(job_error)?;
    std::fs::write(dir.join("nvram"), &nvram_text)?;
    let manifest = Manifest::parse(manifest_text.as_bytes())
        .map_err(|e| StorageError::BadRequest(format!("Invalid manifest: {e}")))?;
    let channels = manifest
        .check(&StdHost)
        .map_err(|e| StorageError::BadRequest(format!("Invalid manifest: {e}")))?;
    let mut session = Session::from_manifest(&manifest, channels);
    session.program_name = node.program_name().to_string();
    for (alias, (file, offset)) in &r.open {
        session.files.insert(alias.clone(), file.clone());
        if *offset > 0 {
            session.file_offsets.insert(alias.clone(), *offset);
        }
    }
    match python {
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
    Ok(session)
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

impl Prepared {
    /// Waits for a worker and runs the session. Dropping the future (the
    /// proxy went away) cancels the run: its worker is killed.
    pub async fn run(mut self, agent: &Arc<Agent>, pool: &Arc<Pool>) -> Result<Ran, StorageError> {
        let program = match &self.program {
            Program::Ready(p, _) => p.clone(),
            Program::Invalid(why, _) => {
                let outcome = Outcome::failed(
                    Validation::Failed,
                    Ending::ValidationFailed,
                    Some(why.clone()),
                );
                return Ok(Ran {
                    prepared: self,
                    outcome,
                });
            }
        };
        let cfg = &agent.cfg;
        self.session.memory = cfg.memory;
        self.session.timeout = Duration::from_secs(self.plan.timeout.clamp(1, cfg.max_timeout));
        let permit = agent
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StorageError::Peer("the agent is stopping".into()))?;
        let cancel = sandbox::pool::Cancel::new();
        let guard = CancelOnDrop(Some(cancel.clone()));
        let job = Job {
            program,
            session: self.session.clone(),
        };
        let pool = pool.clone();
        let result =
            tokio::task::spawn_blocking(move || pool.run_cancellable(job, &cancel)).await?;
        guard.disarm();
        drop(permit);
        let outcome = match result {
            Ok(o) => o,
            Err(PoolError::NoSlot) => {
                return Err(StorageError::Unavailable {
                    message: "Slot not available".into(),
                    retry_after: Some(1),
                })
            }
            Err(e) => Outcome::failed(
                self.session.validation,
                Ending::Failed {
                    errno: sandbox::errno::EFAULT,
                    message: format!("ZeroVM runtime error: {e}"),
                },
                None,
            ),
        };
        Ok(Ran {
            prepared: self,
            outcome,
        })
    }
}

/// Cancels a run when the request's future is dropped before it ended.
struct CancelOnDrop(Option<sandbox::pool::Cancel>);

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
