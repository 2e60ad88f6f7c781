//! The ZeroVM manifest: parsing (spec/zerovm.md §3) and channel validation (§4.1–4.3)
//! with ZeroVM's exact messages and errnos; host facts come through [`HostProbe`].
//!
//! Two stages, as in ZeroVM:
//!
//! 1. [`Manifest::parse`] is ZeroVM's manifest constructor: line syntax, keys,
//!    per-line value checks (errors carry the `MANIFEST <line>: ` prefix), then
//!    the mandatory/duplicate key checks (no prefix). Pure: it never looks at
//!    the host, so channel URIs are only classified syntactically here.
//! 2. [`Manifest::check`] is everything ZeroVM verified before running user
//!    code: the program file, channel count, aliases, types, directions, what
//!    each local source is on the host (asked through [`HostProbe`]), standard
//!    channels, node id, memory size and timeout. It returns the channels in
//!    handle order (§5.1), typed, for the engine to open.
//!
//! Where ZeroVM crashed or silently misbehaved, this module refuses with the
//! nearest ZeroVM message; each such place says so (spec §13 spirit: keep
//! the visible contract, drop the bugs). Errors found after parsing carry
//! no prefix: ZeroVM put its C source file and line there
//! (`src/main/setup.c 138: invalid memory size`), which has no equivalent here.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::errno;

/// The only manifest version ZeroVM accepts.
pub const VERSION: &str = "20130611";
/// Only the first 512 KiB of a manifest are read.
pub const SIZE_LIMIT: usize = 0x80000;
/// A manifest is split into at most this many lines; the last one holds the rest.
pub const LINES_LIMIT: usize = 0x2000;
/// At most this many `;`-separated URIs per channel; the last one holds the rest.
pub const URIS_LIMIT: usize = 16;
/// The channel count must stay below this (`MAX_CHANNELS_NUMBER`).
pub const MAX_CHANNELS: usize = 10915;
/// At least stdin, stdout and stderr.
pub const MIN_CHANNELS: usize = 3;
/// `UNIX_PATH_MAX`: the longest `Job` socket path.
pub const JOB_PATH_LIMIT: usize = 108;
/// The largest `Memory` size (4 GiB).
pub const MEMORY_LIMIT: i64 = 4_294_967_296;
/// Alias of the standard input channel (handle 0).
pub const STDIN: &str = "/dev/stdin";
/// Alias of the standard output channel (handle 1).
pub const STDOUT: &str = "/dev/stdout";
/// Alias of the standard error channel (handle 2).
pub const STDERR: &str = "/dev/stderr";

/// A manifest error: ZeroVM's message (its `Display`) and the errno zerovm exits with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// 1-based manifest line for errors raised while parsing a line; `None` otherwise.
    pub line: Option<usize>,
    /// What went wrong.
    pub kind: ManifestErrorKind,
}

impl ManifestError {
    fn at(line: usize, kind: ManifestErrorKind) -> Self {
        ManifestError {
            line: Some(line),
            kind,
        }
    }

    fn plain(kind: ManifestErrorKind) -> Self {
        ManifestError { line: None, kind }
    }

    /// The exit code of the zerovm process for this error (spec §7.2).
    pub fn errno(&self) -> i32 {
        self.kind.errno()
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "MANIFEST {line}: {}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl std::error::Error for ManifestError {}

/// The kinds of manifest errors; `Display` is ZeroVM's message without the line prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestErrorKind {
    /// The manifest file could not be opened (ENOENT).
    #[error("manifest open error")]
    Open,
    /// The manifest file is empty or unreadable (EIO).
    #[error("manifest read error")]
    Read,
    /// A number with junk after it, or out of the 64-bit range. Holds what
    /// `strtoll` left unparsed, as ZeroVM printed it (empty on overflow).
    #[error("invalid numeric value '{0}'")]
    InvalidNumber(String),
    /// `Version` is not [`VERSION`].
    #[error("invalid manifest version")]
    InvalidVersion,
    /// `Memory` without a `,`.
    #[error("invalid memory token")]
    InvalidMemoryToken,
    /// `Memory` etag flag other than 0 or 1.
    #[error("invalid memory etag token")]
    InvalidMemoryEtag,
    /// `Job` longer than [`JOB_PATH_LIMIT`].
    #[error("too long Job name")]
    JobTooLong,
    /// A `Channel` line with fewer than 8 fields.
    #[error("invalid channel tokens number")]
    ChannelTokens,
    /// A local URI containing `:`.
    #[error("invalid channel name")]
    InvalidChannelName,
    /// A local URI that is not an absolute path.
    #[error("only absolute path channels are allowed")]
    NotAbsolute,
    /// A network URI without host or port, or with a port or node id out of range.
    #[error("invalid channel url")]
    InvalidUrl,
    /// A dotted host that is not an IPv4 address (or is 0.0.0.0).
    #[error("malformed ip token")]
    MalformedIp,
    /// A channel etag flag other than 0 or 1.
    #[error("invalid channel numeric token")]
    InvalidChannelEtag,
    /// A negative channel limit; holds the alias.
    #[error("negative limits for {0}")]
    NegativeLimits(String),
    /// `NameServer` that is a local path, not `proto:host:port`. (Our
    /// message: ZeroVM misread such a value as a connection.)
    #[error("invalid name server")]
    InvalidNameServer,
    /// A value of a known key that is not UTF-8. (Our message: ZeroVM took
    /// bytes; our paths are strings.)
    #[error("invalid utf-8 in value")]
    InvalidUtf8,
    /// A mandatory key is missing.
    #[error("{0} not specified")]
    NotSpecified(&'static str),
    /// A once-only key appears more than once.
    #[error("duplicate {0} keyword")]
    Duplicate(&'static str),
    /// The `Program` file cannot be opened (ENOENT).
    #[error("program open error")]
    ProgramOpen,
    /// [`MAX_CHANNELS`] or more channels (ENFILE).
    #[error("channels number reached maximum")]
    TooManyChannels,
    /// Fewer than [`MIN_CHANNELS`] channels.
    #[error("not enough channels: {0}")]
    NotEnoughChannels(usize),
    /// Two channels with one alias; holds the alias.
    #[error("{0} is already allocated")]
    AliasTaken(String),
    /// A channel type outside 0..3.
    #[error("{alias} has invalid type {value}")]
    InvalidType {
        /// The channel alias.
        alias: String,
        /// The type as written.
        value: i64,
    },
    /// Neither readable nor writable, or read-write where only one
    /// direction is possible (devices, FIFOs, network) (EINVAL).
    #[error("{0} has invalid i/o type")]
    InvalidIoType(String),
    /// A local source that is a directory, block device or socket (EPROTONOSUPPORT).
    #[error("invalid {0} source type")]
    InvalidSourceType(String),
    /// A read-only regular-file source that does not exist; holds the path.
    #[error("cannot open {0}")]
    CannotOpen(String),
    /// A read-write regular file with type 0.
    #[error("sequential channels cannot have r/w access")]
    SequentialReadWrite,
    /// A read-write regular file with type 2.
    #[error("sequential read / random write channels not supported")]
    SequentialReadRandomWrite,
    /// `/dev/stdin`, `/dev/stdout` or `/dev/stderr` missing.
    #[error("missing standard channels in manifest")]
    MissingStandardChannels,
    /// Network channels with a name server need a node id in 1..2147483647.
    #[error("invalid node: {0}")]
    InvalidNode(i64),
    /// `Memory` size ≤ 0 or above [`MEMORY_LIMIT`] (ENOMEM).
    #[error("invalid memory size")]
    InvalidMemorySize,
    /// `Timeout` below 1.
    #[error("invalid timeout {0}")]
    InvalidTimeout(i64),
}

impl ManifestErrorKind {
    /// The errno zerovm exits with for this error (spec §3, §4, §6, §7.2).
    pub fn errno(&self) -> i32 {
        use ManifestErrorKind::*;
        match self {
            Open | ProgramOpen => errno::ENOENT,
            Read => errno::EIO,
            TooManyChannels => errno::ENFILE,
            InvalidIoType(_) => errno::EINVAL,
            InvalidSourceType(_) => errno::EPROTONOSUPPORT,
            InvalidMemorySize => errno::ENOMEM,
            _ => errno::EFAULT,
        }
    }
}

/// `Memory = <bytes>,<etag>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// Bytes of linear memory the program may use (checked by [`Manifest::check`]).
    pub size: i64,
    /// Whether the report carries a `/dev/memory` etag.
    pub etag: bool,
}

/// The four channel limits; each is ≥ 0 and 0 disables that direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Read calls allowed.
    pub gets: u64,
    /// Bytes that may be read.
    pub get_size: u64,
    /// Write calls allowed.
    pub puts: u64,
    /// Bytes that may be written.
    pub put_size: u64,
}

impl Limits {
    /// `gets > 0 && get_size > 0`.
    pub fn readable(&self) -> bool {
        self.gets > 0 && self.get_size > 0
    }

    /// `puts > 0 && put_size > 0`.
    pub fn writable(&self) -> bool {
        self.puts > 0 && self.put_size > 0
    }

    /// RO, WO or RW from the limits (spec §4.2); `None` is "invalid i/o type".
    pub fn direction(&self) -> Option<Direction> {
        match (self.readable(), self.writable()) {
            (true, false) => Some(Direction::ReadOnly),
            (false, true) => Some(Direction::WriteOnly),
            (true, true) => Some(Direction::ReadWrite),
            (false, false) => None,
        }
    }
}

/// Which ways data may flow through a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Direction {
    /// Readable only.
    ReadOnly,
    /// Writable only.
    WriteOnly,
    /// Both.
    ReadWrite,
}

/// Channel access type (`enum ChannelType`, spec §4.3).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum ChannelType {
    /// 0: sequential reads, sequential writes.
    SGetSPut = 0,
    /// 1: random reads, sequential (append) writes.
    RGetSPut = 1,
    /// 2: sequential reads, random writes.
    SGetRPut = 2,
    /// 3: random reads, random writes.
    RGetRPut = 3,
}

impl ChannelType {
    /// The type for a manifest number, if it is 0..3.
    pub fn from_number(n: i64) -> Option<Self> {
        match n {
            0 => Some(ChannelType::SGetSPut),
            1 => Some(ChannelType::RGetSPut),
            2 => Some(ChannelType::SGetRPut),
            3 => Some(ChannelType::RGetRPut),
            _ => None,
        }
    }

    /// The manifest number.
    pub fn number(self) -> i64 {
        self as i64
    }

    /// Reads honour the offset (types 1 and 3).
    pub fn random_read(self) -> bool {
        matches!(self, ChannelType::RGetSPut | ChannelType::RGetRPut)
    }

    /// Writes honour the offset (types 2 and 3).
    pub fn random_write(self) -> bool {
        matches!(self, ChannelType::SGetRPut | ChannelType::RGetRPut)
    }
}

/// Network protocols ZeroVM recognised in a URI (matched case-insensitively).
///
/// ZeroVM's list also held host file kinds (`Regular`, `FIFO`, …) as
/// protocol names, so `fifo:x:1` parsed as a connection; here those are not
/// schemes, and such a URI is an "invalid channel name".
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Protocol {
    /// `tcp`: the only protocol that carries channel data.
    Tcp,
    /// `udp`: name server only.
    Udp,
    /// `ipc` (ZeroMQ; never worked for channels).
    Ipc,
    /// `inproc` (ZeroMQ; never worked for channels).
    Inproc,
    /// `pgm` (ZeroMQ; never worked for channels).
    Pgm,
    /// `epgm` (ZeroMQ; never worked for channels).
    Epgm,
}

impl Protocol {
    const ALL: [Protocol; 6] = [
        Protocol::Tcp,
        Protocol::Udp,
        Protocol::Ipc,
        Protocol::Inproc,
        Protocol::Pgm,
        Protocol::Epgm,
    ];

    /// The lower-case scheme name.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Ipc => "ipc",
            Protocol::Inproc => "inproc",
            Protocol::Pgm => "pgm",
            Protocol::Epgm => "epgm",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
    }

    /// Whether channel I/O works over it (only tcp); others fail at first use
    /// with "invalid channel source".
    pub fn carries_channels(self) -> bool {
        self == Protocol::Tcp
    }
}

/// The host part of a network URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NetHost {
    /// A dotted IPv4 address.
    Ip(Ipv4Addr),
    /// A node id, resolved through the name server (0 when empty).
    Node(u32),
}

/// `proto:host:port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetworkUri {
    /// The scheme.
    pub protocol: Protocol,
    /// IP or node id.
    pub host: NetHost,
    /// Port; 0 when empty (node-id URIs leave it to the name server).
    pub port: u16,
}

impl fmt::Display for NetworkUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host {
            NetHost::Ip(ip) => write!(f, "{}:{}:{}", self.protocol.name(), ip, self.port),
            NetHost::Node(id) => write!(f, "{}:{}:{}", self.protocol.name(), id, self.port),
        }
    }
}

/// One URI of a channel, classified by syntax only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An absolute host path (what it is on the host is asked at check time).
    Local(String),
    /// A network endpoint.
    Network(NetworkUri),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Local(p) => f.write_str(p),
            Source::Network(n) => n.fmt(f),
        }
    }
}

/// A `Channel` line as parsed; [`Manifest::check`] turns it into a [`Channel`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSpec {
    /// 1-based manifest line.
    pub line: usize,
    /// One or more sources (more than one is ZeroVM's deprecated "multichannel").
    pub sources: Vec<Source>,
    /// The name the program sees, conventionally `/dev/…`.
    pub alias: String,
    /// The access type as written; validated at check time ("has invalid type").
    pub type_number: i64,
    /// Whether the channel's data are hashed into the report.
    pub etag: bool,
    /// The four limits.
    pub limits: Limits,
}

/// A parsed manifest (spec §3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Always [`VERSION`].
    pub version: String,
    /// The program to run (not required to be absolute).
    pub program: String,
    /// Seconds, as written; checked (≥ 1) by [`Manifest::check`].
    pub timeout: i64,
    /// Memory size and etag flag.
    pub memory: Memory,
    /// Channels in manifest order.
    pub channels: Vec<ChannelSpec>,
    /// `NameServer`, for node-id network URIs.
    pub name_server: Option<NetworkUri>,
    /// `Node`: this instance's id.
    pub node: Option<i64>,
    /// `Job`: daemon socket path.
    pub job: Option<String>,
    /// `Etag`: stored, unused ("reserved for the future").
    pub etag: Option<String>,
}

/// The keys ZeroVM knows, in its declaration order (that order decides which
/// missing/duplicate key is reported first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Channel,
    Version,
    Program,
    Memory,
    Timeout,
    NameServer,
    Node,
    Job,
    Etag,
}

impl Key {
    const ALL: [Key; 9] = [
        Key::Channel,
        Key::Version,
        Key::Program,
        Key::Memory,
        Key::Timeout,
        Key::NameServer,
        Key::Node,
        Key::Job,
        Key::Etag,
    ];

    fn name(self) -> &'static str {
        match self {
            Key::Channel => "Channel",
            Key::Version => "Version",
            Key::Program => "Program",
            Key::Memory => "Memory",
            Key::Timeout => "Timeout",
            Key::NameServer => "NameServer",
            Key::Node => "Node",
            Key::Job => "Job",
            Key::Etag => "Etag",
        }
    }

    fn mandatory(self) -> bool {
        matches!(
            self,
            Key::Channel | Key::Version | Key::Program | Key::Memory | Key::Timeout
        )
    }

    fn singleton(self) -> bool {
        self != Key::Channel
    }
}

/// `g_ascii_isspace`: unlike `char::is_ascii_whitespace` it includes `\v`.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

fn strip_bytes(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if is_space(char::from(*first)) {
            b = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = b {
        if is_space(char::from(*last)) {
            b = rest;
        } else {
            break;
        }
    }
    b
}

/// ZeroVM's `ToInt`: strip, then `g_ascii_strtoll(…, 0)` (decimal, `0x` hex,
/// leading-`0` octal, optional sign); anything left over, or overflow, is an
/// error quoting the leftover. An empty value is 0, as in ZeroVM.
pub fn parse_int(raw: &str) -> Result<i64, ManifestErrorKind> {
    let s = strip(raw);
    let b = s.as_bytes();
    let mut i = 0;
    let negative = match b.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    let hex_prefix = b.get(i) == Some(&b'0') && matches!(b.get(i + 1), Some(b'x' | b'X'));
    let (base, start) = if hex_prefix {
        (16, i + 2)
    } else if b.get(i) == Some(&b'0') {
        (8, i)
    } else {
        (10, i)
    };
    let mut end = start;
    let mut magnitude: u64 = 0;
    let mut overflow = false;
    while let Some(d) = b.get(end).and_then(|c| char::from(*c).to_digit(base)) {
        match magnitude
            .checked_mul(u64::from(base))
            .and_then(|m| m.checked_add(u64::from(d)))
        {
            Some(m) => magnitude = m,
            None => overflow = true,
        }
        end += 1;
    }
    if end == start {
        // No digits. `0x` followed by no hex digit parses the `0` and stops at
        // the `x`; anything else is "no conversion": nothing consumed.
        end = if hex_prefix { i + 1 } else { 0 };
        magnitude = 0;
    }
    let value = if negative {
        if magnitude > 1u64 << 63 {
            overflow = true;
            i64::MIN
        } else {
            0i64.wrapping_sub_unsigned(magnitude)
        }
    } else {
        i64::try_from(magnitude).unwrap_or_else(|_| {
            overflow = true;
            i64::MAX
        })
    };
    let rest = s.get(end..).unwrap_or("");
    if !rest.is_empty() || overflow {
        return Err(ManifestErrorKind::InvalidNumber(rest.to_string()));
    }
    Ok(value)
}

/// ZeroVM's `ParseName`: one URI of a channel (or the name server).
fn parse_uri(raw: &str) -> Result<Source, ManifestErrorKind> {
    let name = strip(raw);
    let mut parts = name.splitn(3, ':');
    let first = parts.next().unwrap_or("");
    let Some(protocol) = Protocol::from_name(strip(first)) else {
        if name.contains(':') {
            return Err(ManifestErrorKind::InvalidChannelName);
        }
        // An empty URI (ZeroVM crashed on it) is not an absolute path either.
        if !name.starts_with('/') {
            return Err(ManifestErrorKind::NotAbsolute);
        }
        return Ok(Source::Local(name.to_string()));
    };
    // ZeroVM crashed on a missing port; we call it an invalid url like a
    // missing host.
    let (Some(host), Some(port)) = (parts.next(), parts.next()) else {
        return Err(ManifestErrorKind::InvalidUrl);
    };
    let host = if host.contains('.') {
        // inet_pton; ZeroVM took the 0 address for a failure.
        match strip(host).parse::<Ipv4Addr>() {
            Ok(ip) if !ip.is_unspecified() => NetHost::Ip(ip),
            _ => return Err(ManifestErrorKind::MalformedIp),
        }
    } else {
        // ZeroVM truncated the node id to 32 bits; we refuse instead.
        let id = parse_int(host)?;
        NetHost::Node(u32::try_from(id).map_err(|_| ManifestErrorKind::InvalidUrl)?)
    };
    // ZeroVM truncated the port to 16 bits; we refuse instead.
    let port = u16::try_from(parse_int(port)?).map_err(|_| ManifestErrorKind::InvalidUrl)?;
    Ok(Source::Network(NetworkUri {
        protocol,
        host,
        port,
    }))
}

fn parse_channel(line: usize, value: &str) -> Result<ChannelSpec, ManifestErrorKind> {
    let tokens: Vec<&str> = value.splitn(8, ',').collect();
    if tokens.len() < 8 {
        return Err(ManifestErrorKind::ChannelTokens);
    }
    let alias = strip(tokens[1]).to_string();
    let sources = tokens[0]
        .splitn(URIS_LIMIT, ';')
        .map(parse_uri)
        .collect::<Result<Vec<_>, _>>()?;
    let type_number = parse_int(tokens[2])?;
    let etag = match parse_int(tokens[3])? {
        0 => false,
        1 => true,
        _ => return Err(ManifestErrorKind::InvalidChannelEtag),
    };
    let mut limits = [0u64; 4];
    for (slot, token) in limits.iter_mut().zip(&tokens[4..8]) {
        *slot = u64::try_from(parse_int(token)?)
            .map_err(|_| ManifestErrorKind::NegativeLimits(alias.clone()))?;
    }
    let [gets, get_size, puts, put_size] = limits;
    Ok(ChannelSpec {
        line,
        sources,
        alias,
        type_number,
        etag,
        limits: Limits {
            gets,
            get_size,
            puts,
            put_size,
        },
    })
}

fn parse_memory(value: &str) -> Result<Memory, ManifestErrorKind> {
    // g_strsplit(value, ",", 2): "1,2,3" gives ["1", "2,3"] and the second
    // token then fails as a number, as in ZeroVM.
    let Some((size, tag)) = value.split_once(',') else {
        return Err(ManifestErrorKind::InvalidMemoryToken);
    };
    let size = parse_int(size)?;
    let etag = match parse_int(tag)? {
        0 => false,
        1 => true,
        _ => return Err(ManifestErrorKind::InvalidMemoryEtag),
    };
    Ok(Memory { size, etag })
}

#[derive(Default)]
struct Draft {
    counts: [usize; Key::ALL.len()],
    version: Option<String>,
    program: Option<String>,
    timeout: Option<i64>,
    memory: Option<Memory>,
    channels: Vec<ChannelSpec>,
    name_server: Option<NetworkUri>,
    node: Option<i64>,
    job: Option<String>,
    etag: Option<String>,
}

impl Draft {
    fn apply(&mut self, key: Key, line: usize, value: &str) -> Result<(), ManifestErrorKind> {
        self.counts[key as usize] += 1;
        match key {
            Key::Version => {
                let v = strip(value);
                if v != VERSION {
                    return Err(ManifestErrorKind::InvalidVersion);
                }
                self.version = Some(v.to_string());
            }
            Key::Program => self.program = Some(strip(value).to_string()),
            Key::Memory => self.memory = Some(parse_memory(value)?),
            Key::Timeout => self.timeout = Some(parse_int(value)?),
            Key::Node => self.node = Some(parse_int(value)?),
            Key::Job => {
                // ZeroVM measured the unstripped value; we measure the path.
                let job = strip(value);
                if job.len() > JOB_PATH_LIMIT {
                    return Err(ManifestErrorKind::JobTooLong);
                }
                self.job = Some(job.to_string());
            }
            Key::Etag => self.etag = Some(strip(value).to_string()),
            Key::NameServer => match parse_uri(value)? {
                Source::Network(uri) => self.name_server = Some(uri),
                Source::Local(_) => return Err(ManifestErrorKind::InvalidNameServer),
            },
            Key::Channel => self.channels.push(parse_channel(line, value)?),
        }
        Ok(())
    }

    /// ZeroVM's `CheckCounters`: walks the keys from last to second (index 0,
    /// `Channel`, is skipped), missing before duplicate for each key.
    fn finish(self) -> Result<Manifest, ManifestError> {
        for key in Key::ALL.iter().skip(1).rev() {
            let count = self.counts[*key as usize];
            if count == 0 && key.mandatory() {
                return Err(ManifestError::plain(ManifestErrorKind::NotSpecified(
                    key.name(),
                )));
            }
            if count > 1 && key.singleton() {
                return Err(ManifestError::plain(ManifestErrorKind::Duplicate(
                    key.name(),
                )));
            }
        }
        let missing = |key: Key| ManifestError::plain(ManifestErrorKind::NotSpecified(key.name()));
        Ok(Manifest {
            version: self.version.ok_or_else(|| missing(Key::Version))?,
            program: self.program.ok_or_else(|| missing(Key::Program))?,
            timeout: self.timeout.ok_or_else(|| missing(Key::Timeout))?,
            memory: self.memory.ok_or_else(|| missing(Key::Memory))?,
            channels: self.channels,
            name_server: self.name_server,
            node: self.node,
            job: self.job,
            etag: self.etag,
        })
    }
}

impl Manifest {
    /// Parses manifest text as ZeroVM did: the first [`SIZE_LIMIT`] bytes, up
    /// to the first NUL (ZeroVM read a C string), split on `\n` into at most
    /// [`LINES_LIMIT`] lines. A line counts only if it has exactly one `=`;
    /// key and value are trimmed; unknown keys are ignored. The first error
    /// wins.
    pub fn parse(text: &[u8]) -> Result<Manifest, ManifestError> {
        let text = &text[..text.len().min(SIZE_LIMIT)];
        let text = match text.iter().position(|&b| b == 0) {
            Some(nul) => &text[..nul],
            None => text,
        };
        let mut draft = Draft::default();
        for (index, line) in text.splitn(LINES_LIMIT, |&b| b == b'\n').enumerate() {
            let number = index + 1;
            let mut parts = line.split(|&b| b == b'=');
            let (Some(key), Some(value), None) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let key = strip_bytes(key);
            let Some(key) = Key::ALL.into_iter().find(|k| k.name().as_bytes() == key) else {
                continue;
            };
            let value = std::str::from_utf8(value)
                .map_err(|_| ManifestError::at(number, ManifestErrorKind::InvalidUtf8))?;
            draft
                .apply(key, number, value)
                .map_err(|kind| ManifestError::at(number, kind))?;
        }
        draft.finish()
    }

    /// Reads and parses a manifest file: "manifest open error" (ENOENT) if it
    /// cannot be opened, "manifest read error" (EIO) if nothing can be read.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        use std::io::Read;
        let file =
            std::fs::File::open(path).map_err(|_| ManifestError::plain(ManifestErrorKind::Open))?;
        let mut text = Vec::new();
        match file.take(SIZE_LIMIT as u64).read_to_end(&mut text) {
            Ok(n) if n > 0 => Manifest::parse(&text),
            _ => Err(ManifestError::plain(ManifestErrorKind::Read)),
        }
    }

    /// Renders the manifest as `Key = value` lines (zvsh's layout) that
    /// [`Manifest::parse`] reads back to an equal value (channel `line`
    /// numbers aside).
    pub fn render(&self) -> String {
        use fmt::Write;
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(out, "Version = {}", self.version);
        let _ = writeln!(out, "Program = {}", self.program);
        let _ = writeln!(out, "Timeout = {}", self.timeout);
        let _ = writeln!(
            out,
            "Memory = {},{}",
            self.memory.size,
            u8::from(self.memory.etag)
        );
        for c in &self.channels {
            let sources: Vec<String> = c.sources.iter().map(Source::to_string).collect();
            let _ = writeln!(
                out,
                "Channel = {},{},{},{},{},{},{},{}",
                sources.join(";"),
                c.alias,
                c.type_number,
                u8::from(c.etag),
                c.limits.gets,
                c.limits.get_size,
                c.limits.puts,
                c.limits.put_size
            );
        }
        if let Some(ns) = &self.name_server {
            let _ = writeln!(out, "NameServer = {ns}");
        }
        if let Some(node) = self.node {
            let _ = writeln!(out, "Node = {node}");
        }
        if let Some(job) = &self.job {
            let _ = writeln!(out, "Job = {job}");
        }
        if let Some(etag) = &self.etag {
            let _ = writeln!(out, "Etag = {etag}");
        }
        out
    }

    /// Everything ZeroVM checked before running user code, in its order:
    /// the program file, the channel count, each channel in manifest order
    /// (alias unique, type 0..3, a direction, each source by what it is on
    /// the host), the standard channels, the node id, the memory size, the
    /// timeout. Returns the channels in handle order: stdin, stdout, stderr,
    /// then the rest sorted byte-wise by alias (spec §5.1).
    ///
    /// ZeroVM's order among several faulty channels followed its mount sort
    /// (network binds first); here it is manifest order.
    pub fn check(&self, host: &impl HostProbe) -> Result<Vec<Channel>, ManifestError> {
        use ManifestErrorKind as K;
        let fail = |kind| Err(ManifestError::plain(kind));
        if !matches!(host.probe(&self.program), Some(HostKind::Regular { .. })) {
            return fail(K::ProgramOpen);
        }
        let count = self.channels.len();
        if count >= MAX_CHANNELS {
            return fail(K::TooManyChannels);
        }
        if count < MIN_CHANNELS {
            return fail(K::NotEnoughChannels(count));
        }
        let mut aliases = std::collections::HashSet::new();
        let mut channels = Vec::with_capacity(count);
        for spec in &self.channels {
            channels.push(check_channel(spec, host, &mut aliases).map_err(ManifestError::plain)?);
        }
        if ![STDIN, STDOUT, STDERR]
            .iter()
            .all(|std| aliases.contains(*std))
        {
            return fail(K::MissingStandardChannels);
        }
        let networked = channels
            .iter()
            .flat_map(|c: &Channel| &c.sources)
            .any(|s| matches!(s, CheckedSource::Network(_)));
        if self.name_server.is_some() && networked {
            let node = self.node.unwrap_or(0);
            if !(1..=i64::from(i32::MAX)).contains(&node) {
                return fail(K::InvalidNode(node));
            }
        }
        if self.memory.size <= 0 || self.memory.size > MEMORY_LIMIT {
            return fail(K::InvalidMemorySize);
        }
        if self.timeout < 1 {
            return fail(K::InvalidTimeout(self.timeout));
        }
        channels.sort_by(|a, b| handle_rank(&a.alias).cmp(&handle_rank(&b.alias)));
        Ok(channels)
    }
}

/// Sort key for handle order: the standard channels first, then by alias bytes.
fn handle_rank(alias: &str) -> (u8, &[u8]) {
    match alias {
        STDIN => (0, &[]),
        STDOUT => (1, &[]),
        STDERR => (2, &[]),
        other => (3, other.as_bytes()),
    }
}

fn check_channel(
    spec: &ChannelSpec,
    host: &impl HostProbe,
    aliases: &mut std::collections::HashSet<String>,
) -> Result<Channel, ManifestErrorKind> {
    use ManifestErrorKind as K;
    let alias = &spec.alias;
    if !aliases.insert(alias.clone()) {
        return Err(K::AliasTaken(alias.clone()));
    }
    let channel_type =
        ChannelType::from_number(spec.type_number).ok_or_else(|| K::InvalidType {
            alias: alias.clone(),
            value: spec.type_number,
        })?;
    let direction = spec
        .limits
        .direction()
        .ok_or_else(|| K::InvalidIoType(alias.clone()))?;
    let mut sources = Vec::with_capacity(spec.sources.len());
    for source in &spec.sources {
        let checked = match source {
            Source::Network(uri) => {
                if direction == Direction::ReadWrite {
                    return Err(K::InvalidIoType(alias.clone()));
                }
                CheckedSource::Network(*uri)
            }
            Source::Local(path) => {
                let kind = match host.probe(path) {
                    None => LocalKind::Regular { size: None },
                    Some(HostKind::Regular { size }) => LocalKind::Regular { size: Some(size) },
                    Some(HostKind::CharDevice) => LocalKind::CharDevice,
                    Some(HostKind::Fifo) => LocalKind::Fifo,
                    Some(HostKind::Directory | HostKind::BlockDevice | HostKind::Socket) => {
                        return Err(K::InvalidSourceType(alias.clone()))
                    }
                };
                match (kind, direction) {
                    (LocalKind::Regular { size: None }, Direction::ReadOnly) => {
                        return Err(K::CannotOpen(path.clone()))
                    }
                    (LocalKind::Regular { .. }, Direction::ReadWrite) => match channel_type {
                        ChannelType::SGetSPut => return Err(K::SequentialReadWrite),
                        ChannelType::SGetRPut => return Err(K::SequentialReadRandomWrite),
                        ChannelType::RGetSPut | ChannelType::RGetRPut => {}
                    },
                    (LocalKind::CharDevice | LocalKind::Fifo, Direction::ReadWrite) => {
                        return Err(K::InvalidIoType(alias.clone()))
                    }
                    _ => {}
                }
                CheckedSource::Local {
                    path: path.clone(),
                    kind,
                }
            }
        };
        sources.push(checked);
    }
    Ok(Channel {
        alias: alias.clone(),
        channel_type,
        direction,
        etag: spec.etag,
        limits: spec.limits,
        sources,
    })
}

/// What a local path is on the host, as far as channels care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// A regular file of this many bytes.
    Regular {
        /// Current size in bytes.
        size: u64,
    },
    /// A character device (`/dev/null`, a tty).
    CharDevice,
    /// A named pipe.
    Fifo,
    /// A directory (refused as a source).
    Directory,
    /// A block device (refused as a source).
    BlockDevice,
    /// A unix socket (refused as a source).
    Socket,
}

/// The host facts [`Manifest::check`] needs; the engine passes [`StdHost`],
/// tests pass a table.
pub trait HostProbe {
    /// What `path` is (following symlinks, like `stat`), or `None` if it does
    /// not exist or cannot be examined (ZeroVM then treated it as a regular
    /// file to be created).
    fn probe(&self, path: &str) -> Option<HostKind>;
}

impl<F: Fn(&str) -> Option<HostKind>> HostProbe for F {
    fn probe(&self, path: &str) -> Option<HostKind> {
        self(path)
    }
}

/// [`HostProbe`] over the real file system (`std::fs::metadata`).
#[derive(Debug, Clone, Copy, Default)]
pub struct StdHost;

impl HostProbe for StdHost {
    fn probe(&self, path: &str) -> Option<HostKind> {
        let meta = std::fs::metadata(path).ok()?;
        let ft = meta.file_type();
        if ft.is_file() {
            return Some(HostKind::Regular { size: meta.len() });
        }
        if ft.is_dir() {
            return Some(HostKind::Directory);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            if ft.is_char_device() {
                return Some(HostKind::CharDevice);
            }
            if ft.is_fifo() {
                return Some(HostKind::Fifo);
            }
            if ft.is_block_device() {
                return Some(HostKind::BlockDevice);
            }
        }
        Some(HostKind::Socket)
    }
}

/// What a checked local source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LocalKind {
    /// A regular file; `size` is `None` when it does not exist yet (writable
    /// channels create it).
    Regular {
        /// Current size, if the file exists.
        size: Option<u64>,
    },
    /// A character device: stream I/O, size 0.
    CharDevice,
    /// A FIFO: stream I/O, size 0.
    Fifo,
}

/// A source after the host checks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CheckedSource {
    /// A host path and what it is.
    Local {
        /// Absolute host path.
        path: String,
        /// Its kind on the host.
        kind: LocalKind,
    },
    /// A network endpoint (only tcp works; others fail at first use).
    Network(NetworkUri),
}

/// A channel ready for the engine to open, in handle order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Channel {
    /// The name the program sees.
    pub alias: String,
    /// Access type.
    pub channel_type: ChannelType,
    /// RO / WO / RW from the limits.
    pub direction: Direction,
    /// Whether the channel is hashed into the report.
    pub etag: bool,
    /// The four limits.
    pub limits: Limits,
    /// The sources, in manifest order.
    pub sources: Vec<CheckedSource>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const STD: &str = "Channel = /dev/stdin,/dev/stdin,0,0,8192,8192,0,0\n\
                       Channel = /dev/stdout,/dev/stdout,0,0,0,0,8192,8192\n\
                       Channel = /dev/stderr,/dev/stderr,0,0,0,0,8192,8192\n";

    fn header() -> String {
        "Version = 20130611\nTimeout = 50\nMemory = 4294967296,0\nProgram = /bin/prog\n".into()
    }

    fn full(extra: &str) -> String {
        format!("{}{STD}{extra}", header())
    }

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text.as_bytes())
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(m) => panic!("parsed: {m:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn spec_example_parses() {
        let text = "Version = 20130611\n\
                    Timeout = 50\n\
                    Memory = 4294967296,0\n\
                    Program = /home/me/myapp.nexe\n\
                    Channel = /dev/stdin,/dev/stdin,0,0,8192,8192,0,0\n\
                    Channel = /dev/stdout,/dev/stdout,0,0,0,0,8192,8192\n\
                    Channel = /dev/stderr,/dev/stderr,0,0,0,0,8192,8192\n\
                    Channel = /home/me/python.tar,/dev/1.python.tar,3,0,8192,8192,8192,8192\n\
                    Channel = /home/me/nvram.1,/dev/nvram,3,0,8192,8192,8192,8192\n";
        let m = parse(text).unwrap();
        assert_eq!(m.version, "20130611");
        assert_eq!(m.timeout, 50);
        assert_eq!(
            m.memory,
            Memory {
                size: 4294967296,
                etag: false
            }
        );
        assert_eq!(m.program, "/home/me/myapp.nexe");
        assert_eq!(m.channels.len(), 5);
        let tar = &m.channels[3];
        assert_eq!(tar.line, 8);
        assert_eq!(tar.alias, "/dev/1.python.tar");
        assert_eq!(
            tar.sources,
            vec![Source::Local("/home/me/python.tar".into())]
        );
        assert_eq!(tar.type_number, 3);
        assert!(!tar.etag);
        assert_eq!(
            tar.limits,
            Limits {
                gets: 8192,
                get_size: 8192,
                puts: 8192,
                put_size: 8192
            }
        );
        assert_eq!(m.name_server, None);
        assert_eq!(m.node, None);
        assert_eq!(m.job, None);
        assert_eq!(m.etag, None);
    }

    #[test]
    fn crlf_whitespace_and_unknown_lines() {
        let text = "== banner ==\r\n\
                    # Timeout = 5\r\n\
                    #Timeout = 5\r\n\
                    \tVersion\t=\t20130611\t\r\n\
                    Timeout=7\r\n\
                    Unknown = whatever\r\n\
                    a = b = c\r\n\
                    no equals here\r\n\
                    \r\n\
                    Memory = 0x1000 , 1 \r\n\
                    Program =  rel/prog \x0b\r\n\
                    Channel = /dev/stdin,/dev/stdin,0,0,1,1,0,0\r\n";
        let m = parse(text).unwrap();
        assert_eq!(m.timeout, 7);
        assert_eq!(
            m.memory,
            Memory {
                size: 0x1000,
                etag: true
            }
        );
        assert_eq!(m.program, "rel/prog");
        assert_eq!(m.channels[0].line, 12);
    }

    #[test]
    fn keys_are_case_sensitive() {
        let text = full("timeout = 0\nTIMEOUT = x\n");
        assert_eq!(parse(&text).unwrap().timeout, 50);
        assert_eq!(
            err("version = 20130611\nTimeout = 1\nMemory = 1,0\nProgram = p\n"),
            "Version not specified"
        );
    }

    #[test]
    fn integers_follow_strtoll_base_0() {
        let table: &[(&str, Result<i64, &str>)] = &[
            ("50", Ok(50)),
            ("  50 ", Ok(50)),
            ("+50", Ok(50)),
            ("-50", Ok(-50)),
            ("0x1000", Ok(4096)),
            ("0X1f", Ok(31)),
            ("-0x10", Ok(-16)),
            ("07", Ok(7)),
            ("010", Ok(8)),
            ("0", Ok(0)),
            ("", Ok(0)),
            ("9223372036854775807", Ok(i64::MAX)),
            ("-9223372036854775808", Ok(i64::MIN)),
            ("0x7fffffffffffffff", Ok(i64::MAX)),
            ("12abc", Err("abc")),
            ("08", Err("8")),
            ("0x", Err("x")),
            ("0xg", Err("xg")),
            ("-", Err("-")),
            ("+", Err("+")),
            ("abc", Err("abc")),
            ("1 2", Err(" 2")),
            ("8192, 0", Err(", 0")),
            ("9223372036854775808", Err("")),
            ("-9223372036854775809", Err("")),
            ("99999999999999999999999", Err("")),
            ("1.5", Err(".5")),
        ];
        for (input, want) in table {
            let got = parse_int(input);
            match want {
                Ok(v) => assert_eq!(got, Ok(*v), "{input:?}"),
                Err(rest) => assert_eq!(
                    got,
                    Err(ManifestErrorKind::InvalidNumber(rest.to_string())),
                    "{input:?}"
                ),
            }
        }
    }

    #[test]
    fn line_errors_carry_the_line_number_and_efault() {
        let base = header();
        let lines = base.lines().count();
        let table: &[(&str, &str)] = &[
            ("Version = 20130612", "invalid manifest version"),
            ("Timeout = 5s", "invalid numeric value 's'"),
            ("Memory = 4096", "invalid memory token"),
            ("Memory =", "invalid memory token"),
            ("Memory = 4096,2", "invalid memory etag token"),
            ("Memory = 4096,-1", "invalid memory etag token"),
            ("Memory = 4096,0,1", "invalid numeric value ',1'"),
            ("Memory = 4k,0", "invalid numeric value 'k'"),
            ("Node = one", "invalid numeric value 'one'"),
            ("Job = /x", ""),
            (
                "Channel = /a,/dev/a,0,0,1,1,0",
                "invalid channel tokens number",
            ),
            ("Channel =", "invalid channel tokens number"),
            (
                "Channel = /a,/dev/a,0,0,1,1,0,0,0",
                "invalid numeric value ',0'",
            ),
            ("Channel = /a:b,/dev/a,0,0,1,1,0,0", "invalid channel name"),
            (
                "Channel = a,/dev/a,0,0,1,1,0,0",
                "only absolute path channels are allowed",
            ),
            (
                "Channel = ,/dev/a,0,0,1,1,0,0",
                "only absolute path channels are allowed",
            ),
            (
                "Channel = /a;;/b,/dev/a,0,0,1,1,0,0",
                "only absolute path channels are allowed",
            ),
            ("Channel = tcp,/dev/a,0,0,1,1,0,0", "invalid channel url"),
            ("Channel = tcp:1,/dev/a,0,0,1,1,0,0", "invalid channel url"),
            (
                "Channel = tcp:1:70000,/dev/a,0,0,1,1,0,0",
                "invalid channel url",
            ),
            (
                "Channel = tcp:-1:5,/dev/a,0,0,1,1,0,0",
                "invalid channel url",
            ),
            (
                "Channel = tcp:1.2.3:5,/dev/a,0,0,1,1,0,0",
                "malformed ip token",
            ),
            (
                "Channel = tcp:0.0.0.0:5,/dev/a,0,0,1,1,0,0",
                "malformed ip token",
            ),
            (
                "Channel = tcp:host:5,/dev/a,0,0,1,1,0,0",
                "invalid numeric value 'host'",
            ),
            (
                "Channel = tcp:1:2:3,/dev/a,0,0,1,1,0,0",
                "invalid numeric value ':3'",
            ),
            (
                "Channel = /a,/dev/a,x,0,1,1,0,0",
                "invalid numeric value 'x'",
            ),
            (
                "Channel = /a,/dev/a,0,2,1,1,0,0",
                "invalid channel numeric token",
            ),
            (
                "Channel = /a,/dev/a,0,0,-1,1,0,0",
                "negative limits for /dev/a",
            ),
            (
                "Channel = /a, /dev/a ,0,0,1,1,0,-0x1",
                "negative limits for /dev/a",
            ),
            ("NameServer = /tmp/ns", "invalid name server"),
            ("NameServer = udp:10.0.0.1", "invalid channel url"),
        ];
        for (line, want) in table {
            let text = format!("{base}{line}\n{STD}");
            let got = parse(&text);
            if want.is_empty() {
                assert!(got.is_ok(), "{line}: {got:?}");
                continue;
            }
            let e = got.expect_err(line);
            assert_eq!(
                e.to_string(),
                format!("MANIFEST {}: {want}", lines + 1),
                "{line}"
            );
            assert_eq!(e.errno(), errno::EFAULT, "{line}");
        }
    }

    #[test]
    fn job_path_limit() {
        let ok = "/".repeat(JOB_PATH_LIMIT);
        let long = "/".repeat(JOB_PATH_LIMIT + 1);
        assert_eq!(
            parse(&full(&format!("Job =  {ok}  \n")))
                .unwrap()
                .job
                .as_deref(),
            Some(ok.as_str())
        );
        let lines = full("").lines().count();
        assert_eq!(
            err(&full(&format!("Job = {long}\n"))),
            format!("MANIFEST {}: too long Job name", lines + 1)
        );
    }

    #[test]
    fn first_line_error_wins_over_later_ones_and_counters() {
        let text = "Timeout = x\nVersion = 1\n";
        assert_eq!(err(text), "MANIFEST 1: invalid numeric value 'x'");
    }

    #[test]
    fn missing_keys_in_zerovm_order_without_prefix() {
        // CheckCounters walks Etag..Version backwards: Timeout before Memory
        // before Program before Version.
        let table: &[(&str, &str)] = &[
            ("", "Timeout not specified"),
            ("Timeout = 1\n", "Memory not specified"),
            ("Timeout = 1\nMemory = 1,0\n", "Program not specified"),
            (
                "Timeout = 1\nMemory = 1,0\nProgram = p\n",
                "Version not specified",
            ),
        ];
        for (text, want) in table {
            let e = parse(text).expect_err(text);
            assert_eq!(e.to_string(), *want);
            assert_eq!(e.line, None);
            assert_eq!(e.errno(), errno::EFAULT);
        }
    }

    #[test]
    fn duplicates_are_reported_after_all_lines() {
        for key in ["Version", "Timeout", "Memory", "Program"] {
            let line = header()
                .lines()
                .find(|l| l.starts_with(key))
                .unwrap()
                .to_string();
            let e = parse(&full(&format!("{line}\n"))).unwrap_err();
            assert_eq!(e.to_string(), format!("duplicate {key} keyword"));
        }
        for line in [
            "Node = 1\nNode = 2",
            "Job = /a\nJob = /b",
            "Etag = a\nEtag = b",
            "NameServer = udp:10.0.0.1:1\nNameServer = udp:10.0.0.1:2",
        ] {
            let key = line.split(' ').next().unwrap();
            let e = parse(&full(&format!("{line}\n"))).unwrap_err();
            assert_eq!(e.to_string(), format!("duplicate {key} keyword"));
        }
        // Later keys in the table are checked first: Etag before Timeout.
        let text = format!("{}Timeout = 2\nEtag = a\nEtag = b\n", full(""));
        assert_eq!(err(&text), "duplicate Etag keyword");
        // A missing key found before a duplicate of an earlier key.
        assert_eq!(
            err("Version = 20130611\nVersion = 20130611\nMemory = 1,0\nProgram = p\n"),
            "Timeout not specified"
        );
    }

    #[test]
    fn channel_is_never_reported_missing_by_the_parser() {
        let m = parse(&header()).unwrap();
        assert!(m.channels.is_empty());
        let e = m.check(&all_regular()).unwrap_err();
        assert_eq!(e.to_string(), "not enough channels: 0");
    }

    #[test]
    fn optional_keys_parse() {
        let m = parse(&full(
            "NameServer = UDP:10.1.2.3:54321\nNode = 0x10\nJob = /tmp/job.sock\nEtag = abc\n",
        ))
        .unwrap();
        assert_eq!(
            m.name_server,
            Some(NetworkUri {
                protocol: Protocol::Udp,
                host: NetHost::Ip(Ipv4Addr::new(10, 1, 2, 3)),
                port: 54321
            })
        );
        assert_eq!(m.node, Some(16));
        assert_eq!(m.job.as_deref(), Some("/tmp/job.sock"));
        assert_eq!(m.etag.as_deref(), Some("abc"));
    }

    #[test]
    fn uris_classify_syntactically() {
        let m = parse(&full(
            "Channel = tcp:2:, /dev/in/a ,0,0,1,1,0,0\n\
             Channel = TCP:10.0.0.2:7000;tcp:3:0;/tmp/x,/dev/out/b,0,1,0,0,1,1\n",
        ))
        .unwrap();
        assert_eq!(m.channels[3].alias, "/dev/in/a");
        assert_eq!(
            m.channels[3].sources,
            vec![Source::Network(NetworkUri {
                protocol: Protocol::Tcp,
                host: NetHost::Node(2),
                port: 0
            })]
        );
        assert_eq!(
            m.channels[4].sources,
            vec![
                Source::Network(NetworkUri {
                    protocol: Protocol::Tcp,
                    host: NetHost::Ip(Ipv4Addr::new(10, 0, 0, 2)),
                    port: 7000
                }),
                Source::Network(NetworkUri {
                    protocol: Protocol::Tcp,
                    host: NetHost::Node(3),
                    port: 0
                }),
                Source::Local("/tmp/x".into()),
            ]
        );
        assert!(m.channels[4].etag);
        assert!(Protocol::Tcp.carries_channels());
        assert!(!Protocol::Ipc.carries_channels());
        // Host file kinds are not schemes here.
        assert!(
            err(&full("Channel = fifo:1:1,/dev/a,0,0,1,1,0,0\n")).ends_with("invalid channel name")
        );
    }

    #[test]
    fn more_than_16_uris_keep_the_rest_in_the_last() {
        let uris: Vec<String> = (0..17).map(|i| format!("/u{i}")).collect();
        let m = parse(&full(&format!(
            "Channel = {},/dev/a,3,0,1,1,0,0\n",
            uris.join(";")
        )))
        .unwrap();
        let sources = &m.channels[3].sources;
        assert_eq!(sources.len(), URIS_LIMIT);
        assert_eq!(sources[15], Source::Local("/u15;/u16".into()));
    }

    #[test]
    fn size_line_and_nul_limits() {
        // Text after the first NUL is not seen.
        let mut text = full("").into_bytes();
        text.extend_from_slice(b"\0Timeout = 9\n");
        assert_eq!(Manifest::parse(&text).unwrap().timeout, 50);
        // Beyond 512 KiB nothing is read.
        let mut text = full("").into_bytes();
        text.resize(SIZE_LIMIT, b'\n');
        text.extend_from_slice(b"Timeout = 9\n");
        assert_eq!(Manifest::parse(&text).unwrap().timeout, 50);
        // The 8192nd line holds the rest of the text, so keys after it vanish
        // (it has many '=').
        let mut text = full("");
        let used = text.lines().count();
        text.push_str(&"\n".repeat(LINES_LIMIT - used - 1));
        text.push_str("Etag = a\nNode = 2\n");
        let m = parse(&text).unwrap();
        assert_eq!((m.etag, m.node), (None, None));
        // ...unless the rest has exactly one '=' and no newline before it.
        let mut text = full("");
        text.push_str(&"\n".repeat(LINES_LIMIT - used - 1));
        text.push_str("Etag = a\n");
        assert_eq!(parse(&text).unwrap().etag.as_deref(), Some("a"));
    }

    #[test]
    fn non_utf8_values_are_refused_but_ignored_lines_may_hold_anything() {
        let mut text = full("").into_bytes();
        text.extend_from_slice(b"Junk \xff\xfe = 1\n");
        assert!(Manifest::parse(&text).is_ok());
        let mut text = header().into_bytes();
        text.extend_from_slice(b"Channel = /\xff,/dev/a,0,0,1,1,0,0\n");
        assert_eq!(
            Manifest::parse(&text).unwrap_err().to_string(),
            "MANIFEST 5: invalid utf-8 in value"
        );
    }

    #[test]
    fn render_round_trips() {
        let text = full(
            "Channel = tcp:2:;/tmp/y,/dev/in/a,1,1,1,1,0,0\nNameServer = udp:10.0.0.1:9\nNode = 3\nJob = /j\nEtag = e\n",
        );
        let m = parse(&text).unwrap();
        let again = parse(&m.render()).unwrap();
        assert_eq!(strip_lines(again), strip_lines(m));
    }

    fn strip_lines(mut m: Manifest) -> Manifest {
        for c in &mut m.channels {
            c.line = 0;
        }
        m
    }

    #[test]
    fn load_maps_file_errors() {
        let dir = std::env::temp_dir().join(format!("sandbox-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing");
        let e = Manifest::load(&missing).unwrap_err();
        assert_eq!(
            (e.to_string().as_str(), e.errno()),
            ("manifest open error", errno::ENOENT)
        );
        let empty = dir.join("empty");
        std::fs::write(&empty, b"").unwrap();
        let e = Manifest::load(&empty).unwrap_err();
        assert_eq!(
            (e.to_string().as_str(), e.errno()),
            ("manifest read error", errno::EIO)
        );
        let good = dir.join("good");
        std::fs::write(&good, full("")).unwrap();
        assert_eq!(Manifest::load(&good).unwrap().timeout, 50);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // ---- host checks ----

    fn all_regular() -> impl HostProbe {
        |_: &str| Some(HostKind::Regular { size: 10 })
    }

    struct Table(HashMap<&'static str, HostKind>);

    impl HostProbe for Table {
        fn probe(&self, path: &str) -> Option<HostKind> {
            self.0.get(path).copied()
        }
    }

    fn host() -> Table {
        Table(HashMap::from([
            ("/bin/prog", HostKind::Regular { size: 100 }),
            ("/dev/stdin", HostKind::CharDevice),
            ("/dev/stdout", HostKind::CharDevice),
            ("/dev/stderr", HostKind::CharDevice),
            ("/data/in", HostKind::Regular { size: 5 }),
            ("/data/fifo", HostKind::Fifo),
            ("/data/dir", HostKind::Directory),
            ("/data/blk", HostKind::BlockDevice),
            ("/data/sock", HostKind::Socket),
        ]))
    }

    fn check(extra: &str) -> Result<Vec<Channel>, ManifestError> {
        parse(&full(extra)).unwrap().check(&host())
    }

    fn check_err(extra: &str) -> (String, i32) {
        let e = check(extra).expect_err(extra);
        (e.to_string(), e.errno())
    }

    #[test]
    fn check_orders_channels_by_handle() {
        let channels = check(
            "Channel = /data/in,/dev/zeta,3,0,1,1,0,0\n\
             Channel = /data/new,/dev/alpha,3,1,0,0,1,1\n\
             Channel = /data/in,/dev/Beta,1,0,1,1,1,1\n",
        )
        .unwrap();
        let aliases: Vec<&str> = channels.iter().map(|c| c.alias.as_str()).collect();
        assert_eq!(
            aliases,
            [
                "/dev/stdin",
                "/dev/stdout",
                "/dev/stderr",
                "/dev/Beta",
                "/dev/alpha",
                "/dev/zeta"
            ]
        );
        assert_eq!(channels[0].direction, Direction::ReadOnly);
        assert_eq!(
            channels[0].sources,
            vec![CheckedSource::Local {
                path: "/dev/stdin".into(),
                kind: LocalKind::CharDevice
            }]
        );
        assert_eq!(channels[3].direction, Direction::ReadWrite);
        assert_eq!(channels[3].channel_type, ChannelType::RGetSPut);
        assert_eq!(channels[4].direction, Direction::WriteOnly);
        assert!(channels[4].etag);
        assert_eq!(
            channels[4].sources,
            vec![CheckedSource::Local {
                path: "/data/new".into(),
                kind: LocalKind::Regular { size: None }
            }]
        );
        assert_eq!(
            channels[5].sources,
            vec![CheckedSource::Local {
                path: "/data/in".into(),
                kind: LocalKind::Regular { size: Some(5) }
            }]
        );
    }

    #[test]
    fn check_rules_and_messages() {
        use errno::*;
        let table: &[(&str, &str, i32)] = &[
            ("Channel = /data/in,/dev/stdin,0,0,1,1,0,0\n", "/dev/stdin is already allocated", EFAULT),
            ("Channel = /data/in,/dev/a,4,0,1,1,0,0\n", "/dev/a has invalid type 4", EFAULT),
            ("Channel = /data/in,/dev/a,-1,0,1,1,0,0\n", "/dev/a has invalid type -1", EFAULT),
            ("Channel = /data/in,/dev/a,0,0,0,0,0,0\n", "/dev/a has invalid i/o type", EINVAL),
            ("Channel = /data/in,/dev/a,0,0,1,0,0,1\n", "/dev/a has invalid i/o type", EINVAL),
            ("Channel = /data/dir,/dev/a,0,0,1,1,0,0\n", "invalid /dev/a source type", EPROTONOSUPPORT),
            ("Channel = /data/blk,/dev/a,0,0,1,1,0,0\n", "invalid /dev/a source type", EPROTONOSUPPORT),
            ("Channel = /data/sock,/dev/a,0,0,0,0,1,1\n", "invalid /dev/a source type", EPROTONOSUPPORT),
            ("Channel = /data/none,/dev/a,3,0,1,1,0,0\n", "cannot open /data/none", EFAULT),
            ("Channel = /data/in,/dev/a,0,0,1,1,1,1\n", "sequential channels cannot have r/w access", EFAULT),
            ("Channel = /data/none,/dev/a,2,0,1,1,1,1\n", "sequential read / random write channels not supported", EFAULT),
            ("Channel = /data/fifo,/dev/a,3,0,1,1,1,1\n", "/dev/a has invalid i/o type", EINVAL),
            ("Channel = /dev/stdin,/dev/a,3,0,1,1,1,1\n", "/dev/a has invalid i/o type", EINVAL),
            ("Channel = tcp:1:5,/dev/a,0,0,1,1,1,1\n", "/dev/a has invalid i/o type", EINVAL),
            ("Channel = tcp:1:5,/dev/a,0,0,1,1,0,0\nNameServer = udp:10.0.0.1:1\n", "invalid node: 0", EFAULT),
            ("Channel = tcp:1:5,/dev/a,0,0,1,1,0,0\nNameServer = udp:10.0.0.1:1\nNode = 0x80000000\n", "invalid node: 2147483648", EFAULT),
        ];
        for (extra, want, code) in table {
            assert_eq!(check_err(extra), (want.to_string(), *code), "{extra}");
        }
        // Accepted combinations.
        for extra in [
            "Channel = /data/fifo,/dev/a,0,0,1,1,0,0\n",
            "Channel = /data/fifo,/dev/a,0,0,0,0,1,1\n",
            "Channel = /data/in,/dev/a,1,0,1,1,1,1\n",
            "Channel = /data/none,/dev/a,3,0,1,1,1,1\n",
            "Channel = /data/none,/dev/a,0,0,0,0,1,1\n",
            "Channel = tcp:1:5,/dev/a,0,0,1,1,0,0\n",
            "Channel = ipc:1:5,/dev/a,0,0,0,0,1,1\n",
            "Channel = tcp:1:5,/dev/a,0,0,1,1,0,0\nNameServer = udp:10.0.0.1:1\nNode = 2147483647\n",
        ] {
            assert!(check(extra).is_ok(), "{extra}");
        }
    }

    #[test]
    fn check_order_program_count_channels_std_memory_timeout() {
        let bad_all = "Version = 20130611\nTimeout = 0\nMemory = 0,0\nProgram = /missing\n\
                       Channel = /data/in,/dev/a,9,0,1,1,0,0\n";
        let m = parse(bad_all).unwrap();
        let e = m.check(&host()).unwrap_err();
        assert_eq!(
            (e.to_string().as_str(), e.errno()),
            ("program open error", errno::ENOENT)
        );
        let m = Manifest {
            program: "/bin/prog".into(),
            ..m
        };
        assert_eq!(
            m.check(&host()).unwrap_err().to_string(),
            "not enough channels: 1"
        );
        let mut m = Manifest {
            channels: parse(&full("")).unwrap().channels,
            ..m
        };
        m.channels[0].alias = "/dev/a".into();
        assert_eq!(
            m.check(&host()).unwrap_err().to_string(),
            "missing standard channels in manifest"
        );
        m.channels[0].alias = STDIN.into();
        let e = m.check(&host()).unwrap_err();
        assert_eq!(
            (e.to_string().as_str(), e.errno()),
            ("invalid memory size", errno::ENOMEM)
        );
        m.memory.size = MEMORY_LIMIT + 1;
        assert_eq!(
            m.check(&host()).unwrap_err().to_string(),
            "invalid memory size"
        );
        m.memory.size = MEMORY_LIMIT;
        assert_eq!(
            m.check(&host()).unwrap_err().to_string(),
            "invalid timeout 0"
        );
        m.timeout = -5;
        assert_eq!(
            m.check(&host()).unwrap_err().to_string(),
            "invalid timeout -5"
        );
        m.timeout = 1;
        assert!(m.check(&host()).is_ok());
    }

    #[test]
    fn channel_count_limits() {
        let mut m = parse(&full("")).unwrap();
        let template = m.channels[0].clone();
        for i in 3..MAX_CHANNELS - 1 {
            let mut c = template.clone();
            c.alias = format!("/dev/{i}");
            m.channels.push(c);
        }
        assert_eq!(m.channels.len(), MAX_CHANNELS - 1);
        let probe = |p: &str| {
            if p.starts_with("/dev/") {
                Some(HostKind::CharDevice)
            } else {
                Some(HostKind::Regular { size: 1 })
            }
        };
        assert_eq!(m.check(&probe).unwrap().len(), MAX_CHANNELS - 1);
        m.channels.push(template);
        let e = m.check(&probe).unwrap_err();
        assert_eq!(
            (e.to_string().as_str(), e.errno()),
            ("channels number reached maximum", errno::ENFILE)
        );
    }

    #[test]
    fn std_host_classifies_real_paths() {
        let dir = std::env::temp_dir();
        assert_eq!(
            StdHost.probe(dir.to_str().unwrap()),
            Some(HostKind::Directory)
        );
        assert_eq!(StdHost.probe("/dev/null"), Some(HostKind::CharDevice));
        assert_eq!(StdHost.probe("/definitely/not/here"), None);
        let file = dir.join(format!("sandbox-probe-{}", std::process::id()));
        std::fs::write(&file, b"abc").unwrap();
        assert_eq!(
            StdHost.probe(file.to_str().unwrap()),
            Some(HostKind::Regular { size: 3 })
        );
        std::fs::remove_file(&file).unwrap();
    }
}
