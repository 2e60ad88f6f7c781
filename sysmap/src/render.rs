//! Rendering of one session's ZeroVM manifest and NVRAM text from its node
//! plan (spec/zerocloud.md §3.2, spec/zerovm.md §3, §10), as ZeroCloud's
//! object server wrote them, with our wasm module as `Program`.
//!
//! The caller (the exec agent) supplies what only it knows: host paths of
//! the program, the NVRAM file and each channel's data, and the metadata of
//! the local object for the `LOCAL_*` variables.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::device::DeviceKind;
use crate::error::Error;
use crate::location::Location;
use crate::plan::{AttachMode, Channel, Connection, Direction, Limits, NodePlan};

/// Object-server configuration that shapes every manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderOptions {
    /// `zerovm_manifest_ver`.
    pub manifest_version: String,
    /// Session timeout in seconds (`X-Zerovm-Timeout` / `zerovm_timeout`).
    pub timeout: u64,
    /// `zerovm_maxnexemem`: bytes of memory for the program.
    pub memory: u64,
    /// Local channel limits (`zerovm_maxiops`, `zerovm_maxinput`,
    /// `zerovm_maxoutput`).
    pub limits: Limits,
    /// System image device names this server can mount (`python2.7`, ...).
    pub sysimages: BTreeSet<String>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            manifest_version: "20130611".to_string(),
            timeout: 10,
            memory: 4_294_967_296,
            limits: Limits::default(),
            sysimages: BTreeSet::new(),
        }
    }
}

/// Host-side facts of one session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionFiles {
    /// The program (wasm module) file; `/dev/null` for a forked daemon session.
    pub program: String,
    /// The NVRAM file.
    pub nvram: String,
    /// Host path of each channel's data, by device name. A path-less `stdin`
    /// missing here reads `/dev/null`; any other missing channel is an error.
    pub channels: BTreeMap<String, String>,
    /// URI of network channels by alias; when absent, ZeroCloud's
    /// `tcp:<peer id>:` form is written.
    pub network: BTreeMap<String, String>,
    /// Map the program as `/dev/self` (standalone runs).
    pub dev_self: bool,
    /// Daemon socket (`Job=` line).
    pub job: Option<String>,
    /// `NameServer=` line (ZeroCloud's UDP name service; unused by us).
    pub name_server: Option<String>,
    /// Replica index of this session (0 = master); `Node=` is
    /// `id + replica * node_count`.
    pub replica: u32,
}

/// The stored object a session is attached to, for the `LOCAL_*` variables.
/// For a write-attached session only its presence matters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalObject {
    pub content_length: u64,
    /// Stored metadata as header name/value pairs (`Content-Type`, `ETag`,
    /// `X-Timestamp`, `X-Object-Meta-*`, ...).
    pub metadata: Vec<(String, String)>,
}

/// How a channel appears in the manifest.
enum Line {
    Read,
    ReadWrite,
    Write,
    Network(String),
}

/// The channels that get a manifest line, with their host path and type.
struct Rendered<'a> {
    channel: &'a Channel,
    host: String,
    ty: u8,
    line: Line,
    sysimage: bool,
}

fn unresolved(ch: &Channel) -> Error {
    Error::UnresolvedChannel {
        path: ch.path.as_ref().map(Location::url).unwrap_or_default(),
        device: ch.device.clone(),
    }
}

fn rendered_channels<'a>(
    node: &'a NodePlan,
    opts: &RenderOptions,
    files: &SessionFiles,
) -> Result<Vec<Rendered<'a>>, Error> {
    let mut out = Vec::new();
    for ch in &node.channels {
        let kind = ch.kind();
        let sysimage = kind == DeviceKind::Other && opts.sysimages.contains(&ch.device);
        if kind == DeviceKind::Db {
            continue;
        }
        if kind == DeviceKind::Other && (!sysimage || ch.path.is_some()) {
            return Err(unresolved(ch));
        }
        let Some(ty) = kind.channel_type() else {
            continue;
        };
        let host = |ch: &Channel| -> Result<String, Error> {
            match files.channels.get(&ch.device) {
                Some(p) => Ok(p.clone()),
                None if kind == DeviceKind::Stdin && ch.path.is_none() => Ok("/dev/null".into()),
                None => Err(unresolved(ch)),
            }
        };
        let (host, line) = if ch.access.readable() {
            (host(ch)?, Line::Read)
        } else if ch.access.cdr() {
            (host(ch)?, Line::ReadWrite)
        } else if ch.access.writable() {
            (host(ch)?, Line::Write)
        } else if ch.access.network() {
            match &ch.path {
                Some(Location::Net(n)) => (n.channel_path(), Line::Network(n.channel_path())),
                _ => return Err(unresolved(ch)),
            }
        } else {
            continue;
        };
        out.push(Rendered {
            channel: ch,
            host,
            ty,
            line,
            sysimage,
        });
    }
    Ok(out)
}

/// A manifest field must not break the line: ZeroVM splits on `,` and `=`
/// and ignores lines with two `=`.
fn field(v: &str) -> Result<&str, Error> {
    if v.is_empty() || v.contains([',', '=', '\n', '\r']) {
        return Err(Error::BadManifestValue(v.to_string()));
    }
    Ok(v)
}

fn network_uri(conn: &Connection, node: &NodePlan, files: &SessionFiles) -> String {
    if let Some(uri) = files.network.get(&conn.device) {
        return uri.clone();
    }
    let suffix = match conn.direction {
        Direction::In => "0",
        Direction::Out => "",
    };
    (0..conn.peer_replicate.max(1))
        .map(|k| {
            let id = u64::from(conn.peer_id) + u64::from(k) * u64::from(node.node_count);
            format!("tcp:{id}:{suffix}")
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// The ZeroVM manifest of one session of `node`.
pub fn manifest(
    node: &NodePlan,
    opts: &RenderOptions,
    files: &SessionFiles,
) -> Result<String, Error> {
    let l = &opts.limits;
    let mut m = String::new();
    let program = field(&files.program)?;
    // `write!` into a String cannot fail.
    let _ = writeln!(m, "Version={}", field(&opts.manifest_version)?);
    let _ = writeln!(m, "Program={program}");
    let _ = writeln!(m, "Timeout={}", opts.timeout);
    let _ = writeln!(m, "Memory={},0", opts.memory);
    if let Some(job) = &files.job {
        let _ = writeln!(m, "Job={}", field(job)?);
    }
    let attached = match node.placement.attach {
        AttachMode::None => None,
        _ => node.placement.channel.and_then(|i| node.channels.get(i)),
    };
    let mut present: BTreeSet<String> = BTreeSet::new();
    for r in rendered_channels(node, opts, files)? {
        let (host, dev, ty) = (field(&r.host)?, field(&r.channel.device)?, r.ty);
        let _ = match &r.line {
            Line::Read => writeln!(
                m,
                "Channel={host},/dev/{dev},{ty},0,{},{},0,0",
                l.reads, l.rbytes
            ),
            Line::ReadWrite => writeln!(
                m,
                "Channel={host},/dev/{dev},{ty},0,{},{},{},{}",
                l.reads, l.rbytes, l.writes, l.wbytes
            ),
            Line::Write => {
                // Etag tag 1 for immediate outputs and the local object.
                let local = attached.is_some_and(|a| std::ptr::eq(a, r.channel));
                let tag = u8::from(r.channel.path.is_none() || local);
                writeln!(
                    m,
                    "Channel={host},/dev/{dev},{ty},{tag},0,0,{},{}",
                    l.writes, l.wbytes
                )
            }
            Line::Network(path) => {
                writeln!(
                    m,
                    "Channel={path},/dev/{dev},{ty},0,0,0,{},{}",
                    l.writes, l.wbytes
                )
            }
        };
        present.insert(format!("/dev/{dev}"));
    }
    let outs = node
        .connections
        .iter()
        .filter(|c| c.direction == Direction::Out);
    let ins = node
        .connections
        .iter()
        .filter(|c| c.direction == Direction::In);
    for conn in outs.chain(ins) {
        let uri = network_uri(conn, node, files);
        let limits = &conn.limits;
        let _ = writeln!(
            m,
            "Channel={},{},0,0,{},{},{},{}",
            field(&uri)?,
            field(&conn.device)?,
            limits.gets,
            limits.get_size,
            limits.puts,
            limits.put_size
        );
        present.insert(conn.device.clone());
    }
    if !present.contains("/dev/stdin") {
        let _ = writeln!(
            m,
            "Channel=/dev/null,/dev/stdin,0,0,{},{},0,0",
            l.reads, l.rbytes
        );
    }
    for dev in ["stdout", "stderr"] {
        if !present.contains(&format!("/dev/{dev}")) {
            let _ = writeln!(
                m,
                "Channel=/dev/null,/dev/{dev},0,0,0,0,{},{}",
                l.writes, l.wbytes
            );
        }
    }
    if files.dev_self {
        let _ = writeln!(
            m,
            "Channel={program},/dev/self,3,0,{},{},0,0",
            l.reads, l.rbytes
        );
    }
    let _ = writeln!(
        m,
        "Channel={},/dev/nvram,3,0,{},{},0,0",
        field(&files.nvram)?,
        l.reads,
        l.rbytes
    );
    let node_id = u64::from(node.id) + u64::from(files.replica) * u64::from(node.node_count);
    let _ = writeln!(m, "Node={node_id}");
    if let Some(ns) = &files.name_server {
        let _ = writeln!(m, "NameServer={}", field(ns)?);
    }
    Ok(m)
}

/// NVRAM values cannot hold `,` (record separator) or line breaks: written
/// as `\xHH`, which ZRT unescapes (ZeroCloud escaped only `,`).
fn nvram_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if c == ',' || (c as u32) < 0x20 || c == '\u{7f}' {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

fn env_key(name: &str) -> String {
    name.to_uppercase().replace('-', "_")
}

/// The `LOCAL_*` variables of a session attached to an object (§3.2).
pub fn local_env(node: &NodePlan, local: &LocalObject) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let Some(ch) = node.attached_channel() else {
        return env;
    };
    if node.placement.attach == AttachMode::Read {
        env.insert(
            "LOCAL_CONTENT_LENGTH".into(),
            local.content_length.to_string(),
        );
        let ctype = local
            .metadata
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| "application/octet-stream".into());
        env.insert("LOCAL_CONTENT_TYPE".into(), ctype);
        for (k, v) in &local.metadata {
            let key = k.to_uppercase();
            let keep = key.starts_with("X-OBJECT-META-")
                || ["X-TIMESTAMP", "ETAG", "CONTENT-ENCODING"]
                    .iter()
                    .any(|h| key.contains(h));
            if keep {
                env.insert(format!("LOCAL_HTTP_{}", env_key(k)), v.clone());
            }
        }
    } else {
        env.insert("LOCAL_CONTENT_TYPE".into(), ch.content_type.clone());
        for (k, v) in &ch.meta {
            env.insert(
                format!("LOCAL_HTTP_X_OBJECT_META_{}", env_key(k)),
                v.clone(),
            );
        }
    }
    env.insert("LOCAL_DOCUMENT_ROOT".into(), ch.alias());
    env.insert("LOCAL_OBJECT".into(), "on".into());
    env.insert("LOCAL_PATH_INFO".into(), node.placement.path_info.clone());
    env
}

/// The NVRAM (ZRT configuration) of one session of `node`. `local` is the
/// attached object when the session runs attached (`None` otherwise).
pub fn nvram(
    node: &NodePlan,
    opts: &RenderOptions,
    local: Option<&LocalObject>,
) -> Result<String, Error> {
    // Host paths do not matter here; only which channels get a line.
    let files = SessionFiles {
        channels: node
            .channels
            .iter()
            .map(|c| (c.device.clone(), String::new()))
            .collect(),
        ..SessionFiles::default()
    };
    let channels = rendered_channels(node, opts, &files)?;
    let mut out = String::new();

    let mut fstab = String::new();
    for r in &channels {
        if r.sysimage {
            let _ = writeln!(
                fstab,
                "channel=/dev/{}, mountpoint=/, access=ro, removable=no",
                r.channel.device
            );
        } else if r.channel.kind() == DeviceKind::Image {
            let removable = if r.channel.removable { "yes" } else { "no" };
            let _ = writeln!(
                fstab,
                "channel=/dev/image, mountpoint=/, access=ro, removable={removable}"
            );
        }
    }
    if !fstab.is_empty() {
        out.push_str("[fstab]\n");
        out.push_str(&fstab);
    }

    // Words stay split on spaces (`\x20` keeps one inside a word); a comma
    // would end the record, so it is written `\x2c` (ZeroCloud wrote it
    // raw, cutting the program's arguments there).
    let _ = write!(out, "[args]\nargs = {}", nvram_escape(node.program_name()));
    if let Some(args) = node.args.as_deref().filter(|a| !a.is_empty()) {
        let _ = write!(out, " {}", nvram_escape(args));
    }
    out.push('\n');

    let mut env = node.env.clone();
    if let Some(local) = local {
        env.extend(local_env(node, local));
    }
    let records: Vec<String> = env
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("name={}, value={}\n", nvram_escape(k), nvram_escape(v)))
        .collect();
    if !records.is_empty() {
        out.push_str("[env]\n");
        out.extend(records);
    }

    if !channels.is_empty() {
        out.push_str("[mapping]\n");
        for r in &channels {
            let _ = writeln!(
                out,
                "channel=/dev/{}, mode={}",
                r.channel.device,
                r.channel.mode.as_str()
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
