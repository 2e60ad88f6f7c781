//! Compilation of a [`Job`] into a [`JobPlan`] (spec/zerocloud.md §2.4–§2.6):
//! `~` expansion, wildcard expansion through a [`Catalog`], `count`, node
//! naming and ids, output paths, `connect` and `zvm://` wiring, the user
//! image, placement (attach, replication) and the final consistency checks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;

use crate::catalog::{glob, Catalog};
use crate::device::{Access, DeviceKind};
use crate::error::Error;
use crate::job::{DeviceSpec, Group, Job};
use crate::location::{Location, SwiftPath, ZvmPath};
use crate::plan::{
    AttachMode, Channel, ChannelLimits, Connection, Direction, JobPlan, Limits, NodePlan,
    Placement, Pool,
};

/// What compilation needs besides the job: request and proxy configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileOptions {
    /// The request account (replaces `~` and `.` in `swift://` paths).
    pub account: String,
    /// Content type of outputs with a path and no `content_type`
    /// (`zerovm_default_content_type`).
    pub default_content_type: String,
    /// A tar, zapp or script was POSTed: every node gets it as a removable
    /// `image` device.
    pub user_image: bool,
    /// Replica count of the object ring, given to write-attached nodes.
    pub write_replicas: u32,
    /// `zerovm_ignore_replication` (or opaque networking): write-attached
    /// nodes run once.
    pub ignore_replication: bool,
    /// Limits of network channels (`zerovm_maxiops`, `zerovm_maxinput` for
    /// reads, `zerovm_maxoutput` for writes).
    pub network_limits: Limits,
    /// Most sessions a job may have (ZeroCloud had no limit).
    pub max_sessions: u32,
}

impl CompileOptions {
    /// Defaults of ZeroCloud's proxy for `account`.
    pub fn new(account: &str) -> Self {
        CompileOptions {
            account: account.to_string(),
            default_content_type: "application/octet-stream".to_string(),
            user_image: false,
            write_replicas: 1,
            ignore_replication: false,
            network_limits: Limits::default(),
            max_sessions: 10_000,
        }
    }
}

/// Compiles a job into node plans. Listings go through `catalog` only for
/// readable devices whose path has a `*`.
pub fn compile(job: &Job, opts: &CompileOptions, catalog: &dyn Catalog) -> Result<JobPlan, Error> {
    let mut nodes: Vec<NodePlan> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<(Range<usize>, ZvmDevices)> = Vec::new();
    for group in &job.groups {
        let start = nodes.len();
        let zvm = expand_group(group, opts, catalog, &mut nodes, &mut by_name)?;
        groups.push((start..nodes.len(), zvm));
    }
    for (group, (range, zvm)) in job.groups.iter().zip(&groups) {
        connect_group(group, range.clone(), zvm, opts, &mut nodes, &by_name)?;
    }
    if opts.user_image {
        for node in &mut nodes {
            add_user_image(node);
        }
    }
    let node_count = u32::try_from(nodes.len()).map_err(|_| Error::Internal)?;
    for node in &mut nodes {
        place(node, opts);
        node.node_count = node_count;
        node.pool = if node.connections.is_empty() {
            Pool::Default
        } else {
            Pool::Cluster
        };
        check_node(node)?;
    }
    let replicas: Vec<u32> = nodes.iter().map(|n| n.replicate).collect();
    for node in &mut nodes {
        for conn in &mut node.connections {
            conn.peer_replicate = replicas[(conn.peer_id - 1) as usize];
        }
    }
    let plan = JobPlan { nodes };
    let sessions = plan.total_sessions();
    if sessions > u64::from(opts.max_sessions) {
        return Err(Error::TooManyNodes {
            count: sessions,
            limit: u64::from(opts.max_sessions),
        });
    }
    Ok(plan)
}

/// The `zvm://` devices of a group: (device name, target).
type ZvmDevices = Vec<(String, ZvmPath)>;

/// A device of a group after `~` expansion.
struct Dev<'a> {
    spec: &'a DeviceSpec,
    path: Option<Location>,
}

impl Dev<'_> {
    fn channel(&self, path: Option<Location>, opts: &CompileOptions) -> Channel {
        let kind = self.spec.kind();
        let mut access = kind.access();
        if kind == DeviceKind::Other && path.is_none() {
            // A path-less other device is a system image candidate.
            access = Access::RANDOM_READABLE;
        }
        let content_type = self.spec.content_type.clone().unwrap_or_else(|| {
            if self.path.is_some() {
                opts.default_content_type.clone()
            } else {
                "text/html".to_string()
            }
        });
        Channel {
            device: self.spec.name.clone(),
            access,
            path,
            content_type,
            meta: self.spec.meta.clone(),
            mode: self.spec.mode.unwrap_or_default(),
            min_size: self.spec.min_size,
            removable: false,
        }
    }
}

/// Creates the nodes of one group; returns its `zvm://` devices
/// (device name, target) for the connection pass.
fn expand_group(
    group: &Group,
    opts: &CompileOptions,
    catalog: &dyn Catalog,
    nodes: &mut Vec<NodePlan>,
    by_name: &mut HashMap<String, usize>,
) -> Result<ZvmDevices, Error> {
    let mut exe = group.exec.path.clone();
    exe.expand_account(&opts.account);

    let (mut readable, mut images, mut writable, mut other) = (vec![], vec![], vec![], vec![]);
    let mut zvm = Vec::new();
    for spec in &group.devices {
        let mut path = spec.path.clone();
        if let Some(p) = &mut path {
            p.expand_account(&opts.account);
        }
        if let Some(Location::Zvm(z)) = &path {
            zvm.push((spec.name.clone(), z.clone()));
            continue;
        }
        let access = spec.kind().access();
        let dev = Dev { spec, path };
        if access.readable() {
            readable.push(dev);
        } else if access.cdr() {
            images.push(dev);
        } else if access.writable() {
            writable.push(dev);
        } else {
            other.push(dev);
        }
    }
    // Images are read like readable devices and may have wildcards too.
    readable.append(&mut images);

    let wild: Vec<usize> = readable
        .iter()
        .enumerate()
        .filter(|(_, d)| {
            d.path
                .as_ref()
                .and_then(Location::as_swift)
                .is_some_and(SwiftPath::has_wildcard)
        })
        .map(|(i, _)| i)
        .collect();
    if wild.len() > 1 {
        return Err(Error::MultipleWildcardInputs(group.name.clone()));
    }
    let wild = wild.first().copied();

    // Node names, and for a wildcard group the matched objects and captures.
    let mut matches: Vec<(SwiftPath, Vec<String>)> = Vec::new();
    let count = match wild.and_then(|i| readable[i].path.as_ref()?.as_swift()) {
        Some(pattern) => {
            matches = find_objects(pattern, catalog, opts, nodes.len())?;
            matches.len()
        }
        None => group.count as usize,
    };
    check_limit(nodes.len() + count, opts)?;
    let names: Vec<String> = if wild.is_some() || count > 1 {
        (1..=count).map(|i| format!("{}-{i}", group.name)).collect()
    } else {
        vec![group.name.clone()]
    };

    for (i, name) in names.into_iter().enumerate() {
        let mut channels = Vec::new();
        let captures = matches.get(i).map(|(_, c)| c.clone()).unwrap_or_default();
        for (j, dev) in readable.iter().enumerate() {
            let path = match (wild, matches.get(i)) {
                (Some(w), Some((obj, _))) if w == j => Some(Location::Swift(obj.clone())),
                _ => dev.path.clone(),
            };
            channels.push(dev.channel(path, opts));
        }
        for dev in &writable {
            let path = output_path(dev, group, &name, wild.map(|_| captures.as_slice()), count)?;
            channels.push(dev.channel(path, opts));
        }
        for dev in &other {
            channels.push(dev.channel(dev.path.clone(), opts));
        }
        let id = u32::try_from(nodes.len() + 1).map_err(|_| Error::Internal)?;
        if by_name.insert(name.clone(), nodes.len()).is_some() {
            return Err(Error::DuplicateNodeName(name));
        }
        nodes.push(NodePlan {
            id,
            name,
            group: group.name.clone(),
            exe: exe.clone(),
            args: group.exec.args.clone(),
            exe_name: group.exec.name.clone(),
            env: group.exec.env.clone(),
            channels,
            connections: Vec::new(),
            wildcards: captures,
            replicate: group.replicate,
            attach: group.attach.clone(),
            location: group.location.clone(),
            placement: Placement {
                attach: AttachMode::None,
                channel: None,
                target: None,
                path_info: String::new(),
            },
            pool: Pool::Default,
            node_count: 0,
        });
    }
    Ok(zvm)
}

fn check_limit(nodes: usize, opts: &CompileOptions) -> Result<(), Error> {
    if nodes > opts.max_sessions as usize {
        return Err(Error::TooManyNodes {
            count: nodes as u64,
            limit: u64::from(opts.max_sessions),
        });
    }
    Ok(())
}

/// The path of a writable device on one node: `*` filled from the node's
/// captures (read group) or with the node name.
fn output_path(
    dev: &Dev<'_>,
    group: &Group,
    node: &str,
    captures: Option<&[String]>,
    count: usize,
) -> Result<Option<Location>, Error> {
    let Some(Location::Swift(p)) = &dev.path else {
        return Ok(dev.path.clone());
    };
    let url = p.url();
    if !p.has_wildcard() {
        if count > 1 {
            return Err(Error::SinglePathForMany {
                url,
                node: group.name.clone(),
            });
        }
        return Ok(dev.path.clone());
    }
    let filled = match captures {
        Some(caps) => {
            fill_stars(&url, caps).ok_or_else(|| Error::UnresolvedOutputWildcards(url.clone()))?
        }
        None => url.replace('*', node),
    };
    match Location::parse(&filled) {
        Some(Location::Swift(q)) if q.object.is_some() => Ok(Some(Location::Swift(q))),
        Some(Location::Swift(_)) => Err(Error::ContainerPathNotReadOnly),
        _ => Err(Error::InvalidPath {
            url: filled,
            node: node.to_string(),
        }),
    }
}

/// Replaces the `*`s of `template`, left to right, by `values`; `None` if
/// there are more stars than values. (ZeroCloud replaced the first `*` of
/// the partly filled string, so a `*` inside a value was filled again.)
fn fill_stars(template: &str, values: &[String]) -> Option<String> {
    let mut parts = template.split('*');
    let mut out = parts.next().unwrap_or_default().to_string();
    for (i, part) in parts.enumerate() {
        out.push_str(values.get(i)?);
        out.push_str(part);
    }
    Some(out)
}

/// `*` in a `zvm://` device: filled from the node's captures, or with the
/// node name when the node has none.
fn resolve_wildcards(text: &str, node: &NodePlan) -> Result<String, Error> {
    if !text.contains('*') {
        return Ok(text.to_string());
    }
    if node.wildcards.is_empty() {
        return Ok(text.replace('*', &node.name));
    }
    fill_stars(text, &node.wildcards).ok_or_else(|| Error::UnresolvedWildcard(node.name.clone()))
}

/// Lists the objects (or containers) a wildcard path matches, with the
/// captures of each `*` over the whole path `/a/c/o`.
fn find_objects(
    pattern: &SwiftPath,
    catalog: &dyn Catalog,
    opts: &CompileOptions,
    existing: usize,
) -> Result<Vec<(SwiftPath, Vec<String>)>, Error> {
    let url = pattern.url();
    if pattern.account.contains('*') {
        return Err(Error::WildcardAccount(url));
    }
    let account = &pattern.account;
    let container = pattern.container.as_deref().unwrap_or_default();
    let list_objects = |c: &str, mask: &str| -> Result<Vec<String>, Error> {
        let names = catalog
            .list_objects(account, c, glob::prefix(mask))
            .map_err(|_| Error::ContainerListing(c.to_string()))?;
        Ok(names
            .into_iter()
            .filter(|o| !o.ends_with('/') && glob::matches(mask, o))
            .collect())
    };
    let mut found: Vec<SwiftPath> = Vec::new();
    if container.contains('*') {
        let containers = catalog
            .list_containers(account, glob::prefix(container))
            .map_err(|_| Error::AccountListing(account.clone()))?;
        for c in containers.iter().filter(|c| glob::matches(container, c)) {
            match &pattern.object {
                Some(mask) => {
                    for o in list_objects(c, mask)? {
                        found.push(SwiftPath::new(account, Some(c), Some(&o)));
                    }
                }
                None => found.push(SwiftPath::new(account, Some(c), None)),
            }
            check_limit(existing + found.len(), opts)?;
        }
    } else {
        let mask = pattern.object.as_deref().unwrap_or_default();
        for o in list_objects(container, mask)? {
            found.push(SwiftPath::new(account, Some(container), Some(&o)));
        }
    }
    if found.is_empty() {
        return Err(Error::NoObjectsFound(url));
    }
    check_limit(existing + found.len(), opts)?;
    let whole = pattern.path();
    Ok(found
        .into_iter()
        .filter_map(|p| {
            let caps = glob::captures(&whole, &p.path())?;
            Some((p, caps))
        })
        .collect())
}

/// One `connect` target of a group: the group/node name, and for `zvm://`
/// devices the source device alias and the destination device.
struct Link {
    target: String,
    zvm: Option<(String, String)>,
}

/// Wires the nodes of one group to their targets (§2.5).
fn connect_group(
    group: &Group,
    sources: Range<usize>,
    zvm: &[(String, ZvmPath)],
    opts: &CompileOptions,
    nodes: &mut [NodePlan],
    by_name: &HashMap<String, usize>,
) -> Result<(), Error> {
    // `connect` entries, each replaced by the zvm:// devices aimed at it;
    // zvm:// targets missing from `connect` are added (ZeroCloud dropped
    // them when `connect` was given).
    let zvm_link = |(dev, z): &(String, ZvmPath)| Link {
        target: z.node.clone(),
        zvm: Some((format!("/dev/{dev}"), z.alias())),
    };
    let mut links: Vec<Link> = Vec::new();
    for target in &group.connect {
        let aimed: Vec<Link> = zvm
            .iter()
            .filter(|(_, z)| &z.node == target)
            .map(zvm_link)
            .collect();
        if aimed.is_empty() {
            links.push(Link {
                target: target.clone(),
                zvm: None,
            });
        } else {
            links.extend(aimed);
        }
    }
    for z in zvm.iter().filter(|(_, z)| !group.connect.contains(&z.node)) {
        links.push(zvm_link(z));
    }
    if links.is_empty() {
        return Ok(());
    }
    let limits = opts.network_limits;
    for s in sources {
        for link in &links {
            let dst_device = match &link.zvm {
                Some((_, dst)) => resolve_wildcards(dst, &nodes[s])?,
                None => format!("/dev/in/{}", nodes[s].name),
            };
            for t in targets(&link.target, s, by_name)? {
                let src_device = match &link.zvm {
                    Some((src, _)) => resolve_wildcards(src, &nodes[t])?,
                    None => format!("/dev/out/{}", nodes[t].name),
                };
                let (s_name, s_id) = (nodes[s].name.clone(), nodes[s].id);
                let (t_name, t_id) = (nodes[t].name.clone(), nodes[t].id);
                nodes[s].connections.push(Connection {
                    direction: Direction::Out,
                    peer: t_name,
                    peer_id: t_id,
                    peer_replicate: 1,
                    device: src_device,
                    limits: ChannelLimits {
                        gets: 0,
                        get_size: 0,
                        puts: limits.writes,
                        put_size: limits.wbytes,
                    },
                });
                nodes[t].connections.push(Connection {
                    direction: Direction::In,
                    peer: s_name,
                    peer_id: s_id,
                    peer_replicate: 1,
                    device: dst_device.clone(),
                    limits: ChannelLimits {
                        gets: limits.reads,
                        get_size: limits.rbytes,
                        puts: 0,
                        put_size: 0,
                    },
                });
            }
        }
    }
    Ok(())
}

/// The nodes a connect target names: the node of that exact name, else the
/// nodes `<target>-1`, `<target>-2`, … (without the source itself).
fn targets(
    target: &str,
    source: usize,
    by_name: &HashMap<String, usize>,
) -> Result<Vec<usize>, Error> {
    if let Some(&t) = by_name.get(target) {
        if t == source {
            return Err(Error::BindToItself(target.to_string()));
        }
        return Ok(vec![t]);
    }
    let found: Vec<usize> = (1..)
        .map_while(|i| by_name.get(&format!("{target}-{i}")).copied())
        .collect();
    if found.is_empty() {
        return Err(Error::NonExistingConnect(target.to_string()));
    }
    Ok(found.into_iter().filter(|&t| t != source).collect())
}

/// Adds the POSTed image as a removable `image` device, or marks a declared
/// path-less `image` device as that image (ZeroCloud added a second one).
fn add_user_image(node: &mut NodePlan) {
    if let Some(ch) = node
        .channels
        .iter_mut()
        .find(|c| c.device == "image" && c.path.is_none())
    {
        ch.removable = true;
        return;
    }
    node.channels.push(Channel {
        device: "image".to_string(),
        access: Access::CDR,
        path: None,
        content_type: "application/octet-stream".to_string(),
        meta: BTreeMap::new(),
        mode: Default::default(),
        min_size: 0,
        removable: true,
    });
}

/// The top channel: for `attach: default` the first channel with a
/// `swift://` path that is read, mounted or written, `script` only when
/// nothing else qualifies; otherwise the first channel of the named device
/// that has a `swift://` path.
fn top_channel(node: &NodePlan) -> Option<usize> {
    let swift = |c: &Channel| c.swift_path().is_some();
    if node.attach != "default" {
        return node
            .channels
            .iter()
            .position(|c| c.device == node.attach && swift(c));
    }
    let candidate =
        |c: &Channel| swift(c) && (c.access.readable() || c.access.cdr() || c.access.writable());
    node.channels
        .iter()
        .position(|c| candidate(c) && c.kind() != DeviceKind::Script)
        .or_else(|| node.channels.iter().position(candidate))
}

fn place(node: &mut NodePlan, opts: &CompileOptions) {
    let home = format!("/{}", opts.account);
    let top = top_channel(node);
    let mut placement = Placement {
        attach: AttachMode::None,
        channel: top,
        target: None,
        path_info: home,
    };
    if let Some(ch) = top.map(|i| &node.channels[i]) {
        if let Some(p) = ch.swift_path() {
            if ch.access.readable() || ch.access.cdr() {
                placement.attach = AttachMode::Read;
            } else if ch.access.writable() && node.replicate > 0 {
                placement.attach = AttachMode::Write;
                node.replicate = if opts.ignore_replication {
                    1
                } else {
                    opts.write_replicas.max(1)
                };
            }
            if placement.attach != AttachMode::None {
                placement.path_info = p.path();
                placement.target = Some(p.clone());
            }
        }
    }
    if node.replicate == 0 {
        node.replicate = 1;
    }
    node.placement = placement;
}

/// Checks that need the finished node: unique aliases, and no container
/// that would have to be fetched remotely.
fn check_node(node: &NodePlan) -> Result<(), Error> {
    let mut seen = HashSet::new();
    let aliases = node
        .channels
        .iter()
        .map(Channel::alias)
        .chain(node.connections.iter().map(|c| c.device.clone()));
    for alias in aliases {
        // A `*` of a zvm:// device may have been filled with an object name.
        if alias.contains([',', '=', ';', ' ', '\n', '\r']) {
            return Err(Error::BadManifestValue(alias));
        }
        if !seen.insert(alias.clone()) {
            return Err(Error::DuplicateChannel {
                alias,
                node: node.name.clone(),
            });
        }
    }
    if let Some(c) = node
        .remote_reads()
        .find_map(|c| c.swift_path().filter(|p| p.is_container()))
    {
        return Err(Error::RemoteContainer(c.path()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
