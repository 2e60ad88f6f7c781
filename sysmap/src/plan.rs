//! Node plans: what a compiled job is, and the JSON the proxy sends to an
//! object server for each session (the wire format is described in the
//! crate README). Plain data with serde; no behaviour beyond small queries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::device::{Access, DeviceKind, Mode};
use crate::location::{Location, SwiftPath};

/// ZeroCloud's default for every channel limit (`zerovm_maxiops`,
/// `zerovm_maxinput`, `zerovm_maxoutput`): 1 GiB / 2^30 operations.
pub const DEFAULT_LIMIT: u64 = 1_073_741_824;

/// Per-channel limits from configuration: reads and writes (operations),
/// rbytes and wbytes (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub reads: u64,
    pub rbytes: u64,
    pub writes: u64,
    pub wbytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            reads: DEFAULT_LIMIT,
            rbytes: DEFAULT_LIMIT,
            writes: DEFAULT_LIMIT,
            wbytes: DEFAULT_LIMIT,
        }
    }
}

/// The four quotas of one manifest channel line, in manifest order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelLimits {
    pub gets: u64,
    pub get_size: u64,
    pub puts: u64,
    pub put_size: u64,
}

/// A compiled job: its nodes in id order (ids are 1..=N).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPlan {
    pub nodes: Vec<NodePlan>,
}

impl JobPlan {
    /// Sessions to run: each node once per replica (ZeroCloud's `total_count`).
    pub fn total_sessions(&self) -> u64 {
        self.nodes.iter().map(|n| u64::from(n.replicate)).sum()
    }

    /// The node with this name.
    pub fn node(&self, name: &str) -> Option<&NodePlan> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// One node (a ZeroVM session, times `replicate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePlan {
    /// 1-based, in creation order across the job.
    pub id: u32,
    /// `group`, or `group-<i>` when the group expanded into several nodes.
    pub name: String,
    /// The group this node came from.
    pub group: String,
    /// The executable (`swift://` after `~` expansion, or `file://`).
    pub exe: Location,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<String>,
    /// `exec.name`: `argv[0]` and `SCRIPT_NAME` (the node name when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe_name: Option<String>,
    /// Program environment: `exec.env`, overlaid by the CGI variables once
    /// [`crate::cgi::apply_cgi_env`] ran.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Local channels (devices), in manifest order: readable devices as
    /// listed, then images, then writable, then other devices.
    pub channels: Vec<Channel>,
    /// Network channels to and from peer nodes.
    #[serde(default)]
    pub connections: Vec<Connection>,
    /// What the `*`s of the wildcard input matched (read groups only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wildcards: Vec<String>,
    /// Sessions to run for this node (>= 1); replicas of a write-attached
    /// node each write their local copy.
    pub replicate: u32,
    /// `attach` as written (`default` or a device name).
    pub attach: String,
    /// Co-location hint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub placement: Placement,
    /// Object-server pool (`X-Zerovm-Pool`).
    pub pool: Pool,
    /// Number of nodes in the job (replica `k` of node `id` is `id + k*node_count`).
    pub node_count: u32,
}

impl NodePlan {
    /// `argv[0]` and `SCRIPT_NAME`: `exec.name`, else the node name.
    pub fn program_name(&self) -> &str {
        self.exe_name.as_deref().unwrap_or(&self.name)
    }

    /// The channel of a device.
    pub fn channel(&self, device: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.device == device)
    }

    /// The path-less `stdin` that receives the request payload, if any.
    pub fn payload_channel(&self) -> Option<&Channel> {
        self.channels
            .iter()
            .find(|c| c.kind() == DeviceKind::Stdin && c.path.is_none())
    }

    /// The channel the node is attached to (its object lives where it runs).
    pub fn attached_channel(&self) -> Option<&Channel> {
        match self.placement.attach {
            AttachMode::None => None,
            _ => self.placement.channel.and_then(|i| self.channels.get(i)),
        }
    }

    /// Objects the proxy must fetch and send along: readable or image
    /// channels with a `swift://` object that is not the attached one.
    pub fn remote_reads(&self) -> impl Iterator<Item = &Channel> {
        let attached = self.attached_index();
        self.channels.iter().enumerate().filter_map(move |(i, c)| {
            let remote = (c.access.readable() || c.access.cdr())
                && c.swift_path().is_some()
                && Some(i) != attached;
            remote.then_some(c)
        })
    }

    /// Outputs the proxy must store itself (PUT): writable channels with a
    /// `swift://` path that is not the attached one.
    pub fn remote_writes(&self) -> impl Iterator<Item = &Channel> {
        let attached = self.attached_index();
        self.channels.iter().enumerate().filter_map(move |(i, c)| {
            let remote = c.access.writable() && c.swift_path().is_some() && Some(i) != attached;
            remote.then_some(c)
        })
    }

    fn attached_index(&self) -> Option<usize> {
        match self.placement.attach {
            AttachMode::None => None,
            _ => self.placement.channel,
        }
    }
}

/// A device of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    /// Device name; the program sees `/dev/<device>`.
    pub device: String,
    /// ZeroCloud's access bit mask (1 R, 2 W, 4 random, 8 network, 16 CDR,
    /// 32 checkpoint).
    pub access: Access,
    /// `swift://` object or container, `tcp://`/`udp://` for `debug`, or
    /// none (stdin payload, immediate stdout/stderr, system image, POSTed image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Location>,
    pub content_type: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    #[serde(default)]
    pub mode: Mode,
    /// Outputs smaller than this are neither returned nor stored.
    #[serde(default)]
    pub min_size: u64,
    /// The POSTed tar / script / zapp image (NVRAM fstab `removable=yes`).
    #[serde(default)]
    pub removable: bool,
}

impl Channel {
    pub fn kind(&self) -> DeviceKind {
        DeviceKind::of(&self.device)
    }

    /// The `swift://` path of the channel, if any.
    pub fn swift_path(&self) -> Option<&SwiftPath> {
        self.path.as_ref().and_then(Location::as_swift)
    }

    /// The alias the program sees: `/dev/<device>`.
    pub fn alias(&self) -> String {
        format!("/dev/{}", self.device)
    }
}

/// Direction of a network channel, seen from the node that has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The node reads what the peer writes (`/dev/in/<peer>`); ZeroVM's
    /// reader side binds.
    In,
    /// The node writes to the peer (`/dev/out/<peer>`); the writer connects.
    Out,
}

/// A network channel between two nodes. Every connection appears twice in a
/// plan: as `Out` on the writer and `In` on the reader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub direction: Direction,
    /// Name of the node at the other end.
    pub peer: String,
    pub peer_id: u32,
    /// Sessions of the peer: a write goes to each replica of the reader.
    pub peer_replicate: u32,
    /// The alias on this node (`/dev/out/reduce`, `/dev/in/map-1`, or the
    /// devices of a `zvm://` path such as `/dev/stdout` / `/dev/stdin`).
    pub device: String,
    pub limits: ChannelLimits,
}

/// Where a node runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub attach: AttachMode,
    /// Index in `channels` of the top channel (the attached one when attached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<usize>,
    /// The object or container the node is attached to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<SwiftPath>,
    /// `/a/c/o`, `/a/c` (container) or `/a` (unattached): the path of the
    /// request to the object (or container) server.
    pub path_info: String,
}

/// How a node is attached to its top channel's object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    /// Runs anywhere (random partition of a standalone policy).
    None,
    /// Runs where the object (container) is and reads it directly.
    Read,
    /// Runs where the output object will be and writes it directly.
    Write,
}

impl AttachMode {
    /// ZeroCloud's `X-Zerovm-Access` header value.
    pub fn x_zerovm_access(self) -> &'static str {
        match self {
            AttachMode::None => "",
            AttachMode::Read => "GET",
            AttachMode::Write => "PUT",
        }
    }
}

/// Object-server thread pool (`X-Zerovm-Pool`): connected nodes must all
/// start together, so they use the `cluster` pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pool {
    Default,
    Cluster,
}
