//! Runtime channels (spec/zerovm.md §4): a checked manifest channel opened on its
//! host source (or an in-memory buffer), with ZeroVM's quotas, access types, accounting and etag.
//!
//! [`OpenChannel::pread`] and [`OpenChannel::pwrite`] follow the checks of
//! §4.4 in their order. Deliberate differences, each for a WASI guest:
//! - A random read starting past the end returns 0 bytes (ZeroVM: `-EFAULT`,
//!   which WASI libcs would take for a bad pointer).
//! - ZeroVM's read check 6 (`offset >= put_size - bytes_written + size`) is
//!   not applied: it refused every read of a read-only random channel past
//!   its first bytes when taken literally, and no other check depends on it.
//! - Writable regular files are not preallocated to `put_size` (ZeroVM's
//!   default without `-P`), so nothing needs truncating at close.
//!
//! **File offsets** (not in ZeroVM; for the exec agent, whose object files
//! hold a header area before the object's bytes): a channel opened with an
//! offset ([`OpenChannel::open_at`], [`OpenChannel::from_file_at`], the
//! session's `file_offsets`) over a regular file sees the file from that
//! byte on as its whole contents. Channel byte `n` is file byte `offset + n`
//! for every read and write (sequential, random, appending); the channel's
//! size is the file's length minus the offset (0 for a shorter file); a tar
//! image read from it starts at the offset (memory-mapped when the offset is
//! a multiple of the page size, else read). A write-only file opened from its
//! path keeps its bytes before the offset and loses the rest (not all of
//! them). Quotas, host I/O counts and etags count channel bytes, as without
//! an offset. Streams, sockets and in-memory buffers have no positions: an
//! offset is ignored there.
//!
//! Quotas, exactly as §4.4: a call made when `gets`/`puts` calls are used up
//! fails with [`ChannelError::Quota`] (EDQUOT); a transfer that would cross
//! `get_size`/`put_size` is **clipped to what remains** (a short read/write,
//! not an error) and the next call, with nothing remaining, fails with
//! EDQUOT. So nothing beyond a quota is ever written, and a program that
//! writes past `put_size` sees a short write followed by EDQUOT.
//!
//! Etags are MD5 (spec §13.11: what Debian's build and ZeroCloud use) over
//! every byte read and written, in call order.
//!
//! **tcp sources** (`tcp:<ip>:<port>`, §4.3): as in ZeroVM the direction
//! decides the role, not the URI: a read-only channel **binds** `ip:port`
//! (port 0: an ephemeral one) and accepts one connection, at its first
//! transfer (so peers that bind and connect to each other never wait on one
//! another while opening); a write-only channel **connects** to `ip:port`
//! when it opens ([`CONNECT_TIMEOUT`]). Both are streams (sequential, size 0,
//! the quotas of any stream). Differences from ZeroVM's ZeroMQ transport:
//! - Plain TCP bytes, no message framing: the end of the data is the peer
//!   closing its side (a writer shuts down its sending side at close), and
//!   the writer's etag is not sent along, so there is no `corrupted upon eof`
//!   check. ZeroMQ connected lazily and retried forever; here a refused
//!   connection fails the open: `cannot connect <alias>;0: Connection
//!   refused` (EFAULT), worded like ZeroVM's `cannot bind <alias>;0: …`.
//! - Node-id hosts (`tcp:<node>:<port>`) need the name service (§4.6),
//!   which is not implemented: refused at open. Only the IPv4 addresses the
//!   manifest gives are used (no name lookup).
//! - Blocking is bounded: with [`OpenChannel::set_deadline`] (the engine
//!   passes the session's end), an accept, read or write still waiting then
//!   fails the session (`<alias>;0 failed to read: timed out`, EIO), since a
//!   guest blocked in a host call cannot be interrupted by the epoch timer.
//! - At close a reader drains what the writer still sends, for at most
//!   [`DRAIN_TIMEOUT`], so the writer is not reset mid-stream (ZeroVM
//!   drained to the end).
//!
//! **Multichannels** (several `;`-separated sources on one channel: how a
//! connection to a peer with `replicate` > 1 is wired, spec/zerovm.md §4.3):
//! - Every source must be a tcp source (ZeroVM also combined files; refused
//!   here with its own message). Each is bound or connected as above.
//! - A write goes to every source. A source whose write fails is dropped
//!   and the others go on (a dead replica of the reader does not stop the
//!   writer); the write fails when no source is left.
//! - A read takes up to the asked size from the first source still in play,
//!   then exactly as many bytes from each other one (one byte when the
//!   first is at its end), and returns the bytes that at least two sources
//!   gave identically (ZeroVM's "two identical copies"; the largest such
//!   group, the first of equals). Sources that gave anything else, or
//!   failed, are dropped from then on. With no two agreeing, the read fails
//!   (EIO): `<alias>;0 failed to read: replicas differ`. So the program
//!   sees each replica's stream only where it matches another's, and the
//!   end of data only when two replicas end at the same byte.
//! - Quotas, accounting and etags count what the program sees, once.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use memmap2::{Mmap, MmapOptions};

use crate::manifest::{
    self, ChannelType, CheckedSource, Direction, Limits, LocalKind, NetHost, NetworkUri,
};
use crate::report::{ChannelEtag, IoCounters};
use crate::tar::ImageBytes;

/// Host I/O is counted per chunk of this many bytes (§8).
pub const CHUNK: u64 = 64 * 1024;

/// How long a write-only tcp channel waits for its connection to be accepted
/// by the peer's kernel when it opens.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a read-only tcp channel keeps reading (and discarding) at close
/// for the writer to finish.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// A byte buffer shared between a channel and its owner (tests, the exec
/// agent): input to read, or where output lands.
pub type SharedBuffer = Arc<Mutex<Vec<u8>>>;

/// Makes a [`SharedBuffer`] holding `bytes`.
pub fn shared(bytes: impl Into<Vec<u8>>) -> SharedBuffer {
    Arc::new(Mutex::new(bytes.into()))
}

/// Why a channel call failed; the WASI layer maps each onto an errno.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// A quota is used up (EDQUOT).
    #[error("disk quota exceeded")]
    Quota,
    /// Bad offset or direction (EINVAL).
    #[error("invalid argument")]
    Invalid,
    /// The host source failed: fatal to the session in ZeroVM (EIO).
    #[error("{0}")]
    Io(String),
}

/// Why a channel could not be opened; `Display` is the report's exit state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// ZeroVM's "cannot open <path>" (EFAULT).
    #[error("cannot open {0}")]
    CannotOpen(String),
    /// A network protocol that carries no channel data (`udp`, `ipc`, …),
    /// ZeroVM's "invalid <alias> source type" (EPROTONOSUPPORT).
    #[error("invalid {0} source type")]
    Unsupported(String),
    /// Several sources on one channel that are not all tcp sources
    /// (EPROTONOSUPPORT).
    #[error("{0} has several sources: multichannels are only supported over tcp")]
    Multichannel(String),
    /// A node-id host, which only the name service resolves (EPROTONOSUPPORT).
    #[error("{alias};0 names node {node}: node ids need the name service, which is not supported")]
    NameService {
        /// The channel.
        alias: String,
        /// The node id in the URI.
        node: u32,
    },
    /// ZeroVM's "cannot bind <alias>;0: <strerror>" (EFAULT).
    #[error("cannot bind {alias};0: {reason}")]
    CannotBind {
        /// The channel.
        alias: String,
        /// What the host said (`Address already in use`, …).
        reason: String,
    },
    /// A write-only tcp channel could not connect (EFAULT):
    /// `cannot connect /dev/out;0: Connection refused`.
    #[error("cannot connect {alias};0: {reason}")]
    CannotConnect {
        /// The channel.
        alias: String,
        /// What the host said (`Connection refused`, `timed out`, …).
        reason: String,
    },
}

impl OpenError {
    /// zerovm's exit code for this failure.
    pub fn errno(&self) -> i32 {
        match self {
            OpenError::CannotOpen(_)
            | OpenError::CannotBind { .. }
            | OpenError::CannotConnect { .. } => crate::errno::EFAULT,
            OpenError::Unsupported(_)
            | OpenError::Multichannel(_)
            | OpenError::NameService { .. } => crate::errno::EPROTONOSUPPORT,
        }
    }
}

/// What is left until `deadline` (`None`: no deadline); past it, the
/// channel's "timed out" failure.
fn time_left(
    deadline: Option<Instant>,
    alias: &str,
    what: &str,
) -> Result<Option<Duration>, ChannelError> {
    match deadline {
        None => Ok(None),
        Some(d) => match d.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(Some(left)),
            _ => Err(ChannelError::Io(format!(
                "{alias};0 failed to {what}: timed out"
            ))),
        },
    }
}

/// The host's words for an I/O error, like `strerror` (without Rust's
/// ` (os error N)` suffix).
fn reason(e: &std::io::Error) -> String {
    if matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ) {
        return "timed out".into();
    }
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

#[derive(Debug)]
enum Backing {
    /// A regular file: positioned I/O.
    File(File),
    /// A character device, FIFO or socket: stream I/O, no positions.
    Stream(Stream),
    /// Bytes in memory, positioned like a file.
    Memory(SharedBuffer),
    /// A multichannel: one socket per source (see the module doc); `None`
    /// once a source is dropped.
    Replicas(Vec<Option<Stream>>),
}

#[derive(Debug)]
enum Stream {
    /// A character device or FIFO.
    Host(File),
    /// A connected socket (a tcp channel).
    Socket(TcpStream),
    /// A listening socket (a read-only tcp channel): accepts one connection
    /// at the first transfer, then is closed.
    Listening(OwnedFd),
}

/// Calls and bytes used so far, per direction (the quota counters of §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Used {
    /// Successful read calls.
    pub gets: u64,
    /// Bytes read.
    pub get_size: u64,
    /// Successful write calls.
    pub puts: u64,
    /// Bytes written.
    pub put_size: u64,
}

/// An open channel.
#[derive(Debug)]
pub struct OpenChannel {
    alias: String,
    channel_type: ChannelType,
    limits: Limits,
    backing: Backing,
    /// Bytes in the source (files, memory) from `base` on; 0 for streams.
    size: u64,
    /// Where the channel's byte 0 is in its regular file (0 for every
    /// other source): see "File offsets" in the module doc.
    base: u64,
    read_pos: u64,
    write_pos: u64,
    eof: bool,
    used: Used,
    io: IoCounters,
    etag: Option<Md5>,
    /// When blocking socket calls give up (see [`OpenChannel::set_deadline`]).
    deadline: Option<Instant>,
}

impl OpenChannel {
    /// Opens a checked manifest channel on its (single, local) host source.
    pub fn open(channel: &manifest::Channel) -> Result<OpenChannel, OpenError> {
        Self::open_at(channel, 0)
    }

    /// [`OpenChannel::open`] with the channel's byte 0 at byte `offset` of
    /// its source when that is a regular file (ignored for other sources):
    /// [`OpenChannel::open_source_at`], then [`OpenChannel::from_file_at`].
    pub fn open_at(channel: &manifest::Channel, offset: u64) -> Result<OpenChannel, OpenError> {
        let files = Self::open_sources_at(channel, offset)?;
        Self::from_files_at(channel, files, offset)
    }

    /// Opens the host source of a channel the way [`OpenChannel::open`]
    /// does (regular files created 0600; write-only ones emptied; tcp
    /// sources bound or connected, see the module doc), without wrapping it:
    /// the worker pool opens sources in the trusted process and hands the
    /// descriptors to a worker, which never opens host paths. A socket comes
    /// back as a `File` holding its descriptor; [`OpenChannel::from_file`]
    /// tells listening and connected sockets apart.
    pub fn open_source(channel: &manifest::Channel) -> Result<File, OpenError> {
        Self::open_source_at(channel, 0)
    }

    /// Every host source of a channel, opened as [`OpenChannel::open_source_at`]
    /// opens one: a single file or socket, or one socket per source of a
    /// multichannel (all must be tcp sources, see the module doc).
    pub fn open_sources_at(
        channel: &manifest::Channel,
        offset: u64,
    ) -> Result<Vec<File>, OpenError> {
        match channel.sources.as_slice() {
            [_] => Ok(vec![Self::open_source_at(channel, offset)?]),
            sources => {
                let uris = sources
                    .iter()
                    .map(|s| match s {
                        CheckedSource::Network(uri) => Ok(uri),
                        CheckedSource::Local { .. } => {
                            Err(OpenError::Multichannel(channel.alias.clone()))
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                uris.into_iter()
                    .map(|uri| open_network(channel, uri))
                    .collect()
            }
        }
    }

    /// [`OpenChannel::open_source`] for a channel that starts at byte
    /// `offset` of its source: a write-only regular file keeps its first
    /// `offset` bytes and loses the rest (one shorter than `offset` is left
    /// as it is); with offset 0, or another source, the same as
    /// [`OpenChannel::open_source`]. The offset itself is applied by
    /// [`OpenChannel::from_file_at`].
    pub fn open_source_at(channel: &manifest::Channel, offset: u64) -> Result<File, OpenError> {
        let alias = &channel.alias;
        let (path, kind) = match channel.sources.as_slice() {
            [CheckedSource::Local { path, kind }] => (path, *kind),
            [CheckedSource::Network(uri)] => return open_network(channel, uri),
            _ => return Err(OpenError::Multichannel(alias.clone())),
        };
        let mut options = OpenOptions::new();
        match channel.direction {
            Direction::ReadOnly => options.read(true),
            Direction::WriteOnly => options.write(true),
            Direction::ReadWrite => options.read(true).write(true),
        };
        let regular = matches!(kind, LocalKind::Regular { .. });
        let write_only = regular && channel.direction == Direction::WriteOnly;
        if regular && channel.direction != Direction::ReadOnly {
            options.create(true).mode(0o600);
            // A write-only file starts empty (from its offset on, below);
            // read-write keeps its bytes.
            options.truncate(write_only && offset == 0);
        }
        let file = options
            .open(path)
            .map_err(|_| OpenError::CannotOpen(path.clone()))?;
        if write_only && offset > 0 {
            let cannot = |_| OpenError::CannotOpen(path.clone());
            let meta = file.metadata().map_err(cannot)?;
            if meta.is_file() && meta.len() > offset {
                file.set_len(offset).map_err(cannot)?;
            }
        }
        Ok(file)
    }

    /// A channel over an already open host file: positioned I/O when it is
    /// a regular file, stream I/O otherwise (pipes, terminals, sockets; a
    /// listening socket accepts one connection at the first transfer).
    pub fn from_file(channel: &manifest::Channel, file: File) -> Result<OpenChannel, OpenError> {
        Self::from_file_at(channel, file, 0)
    }

    /// [`OpenChannel::from_file`] with the channel's byte 0 at byte
    /// `offset` of `file` when it is a regular file (see "File offsets" in
    /// the module doc; ignored for streams and sockets). Nothing is
    /// truncated here: a write-only file's bytes from `offset` on are the
    /// channel's initial contents ([`OpenChannel::open_source_at`] cuts them
    /// off when it opens the path).
    pub fn from_file_at(
        channel: &manifest::Channel,
        file: File,
        offset: u64,
    ) -> Result<OpenChannel, OpenError> {
        let meta = file
            .metadata()
            .map_err(|_| OpenError::CannotOpen(channel.alias.clone()))?;
        if meta.is_file() {
            let size = meta.len().saturating_sub(offset);
            let mut c = Self::with_backing(channel, Backing::File(file), size);
            c.base = offset;
            return Ok(c);
        }
        let stream = if meta.file_type().is_socket() {
            socket_stream(file)
        } else {
            Stream::Host(file)
        };
        Ok(Self::with_backing(channel, Backing::Stream(stream), 0))
    }

    /// A channel over its open host sources: [`OpenChannel::from_file_at`]
    /// for one; for several (a multichannel) each must be a socket,
    /// listening or connected (see the module doc).
    pub fn from_files_at(
        channel: &manifest::Channel,
        mut files: Vec<File>,
        offset: u64,
    ) -> Result<OpenChannel, OpenError> {
        match files.len() {
            0 => return Err(OpenError::CannotOpen(channel.alias.clone())),
            1 => return Self::from_file_at(channel, files.remove(0), offset),
            _ => {}
        }
        let mut streams = Vec::with_capacity(files.len());
        for file in files {
            let meta = file
                .metadata()
                .map_err(|_| OpenError::CannotOpen(channel.alias.clone()))?;
            if !meta.file_type().is_socket() {
                return Err(OpenError::Multichannel(channel.alias.clone()));
            }
            streams.push(Some(socket_stream(file)));
        }
        Ok(Self::with_backing(channel, Backing::Replicas(streams), 0))
    }

    /// A channel over an in-memory buffer instead of its host source (the
    /// buffer's bytes are its contents; writes land in it). A write-only
    /// channel starts by emptying it, like a write-only file.
    pub fn memory(channel: &manifest::Channel, buffer: SharedBuffer) -> OpenChannel {
        let size = {
            let mut bytes = buffer.lock().unwrap_or_else(|p| p.into_inner());
            if channel.direction == Direction::WriteOnly {
                bytes.clear();
            }
            bytes.len() as u64
        };
        Self::with_backing(channel, Backing::Memory(buffer), size)
    }

    fn with_backing(channel: &manifest::Channel, backing: Backing, size: u64) -> OpenChannel {
        // Appending (type 1) read-write channels start writing at the end.
        let write_pos = if channel.direction == Direction::ReadWrite
            && channel.channel_type == ChannelType::RGetSPut
        {
            size
        } else {
            0
        };
        OpenChannel {
            alias: channel.alias.clone(),
            channel_type: channel.channel_type,
            limits: channel.limits,
            backing,
            size,
            base: 0,
            read_pos: 0,
            write_pos,
            eof: false,
            used: Used::default(),
            io: IoCounters::default(),
            etag: channel.etag.then(Md5::new),
            deadline: None,
        }
    }

    /// Bounds every blocking socket call (accept, read, write) of a tcp
    /// channel: past `deadline` it fails with `timed out` (the engine passes
    /// the end of the session). No effect on other sources.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    /// Whether the source is a socket (a tcp channel): its I/O belongs in
    /// the report's network accounting fields (§8, 7–10).
    pub fn is_network(&self) -> bool {
        matches!(
            self.backing,
            Backing::Stream(Stream::Socket(_) | Stream::Listening(_)) | Backing::Replicas(_)
        )
    }

    /// The host file's identity (device, inode) when the source is a
    /// regular file: two channels on one file have the same.
    pub fn file_identity(&self) -> Option<(u64, u64)> {
        match &self.backing {
            Backing::File(f) => f.metadata().ok().map(|m| (m.dev(), m.ino())),
            _ => None,
        }
    }

    /// A read-only memory map of the host file from the channel's offset
    /// to its end, when the source is a regular file opened for reading by
    /// a channel that cannot write and the offset is 0 or a multiple of the
    /// page size below the file's length (`None` otherwise; `Some(Err)`
    /// when mapping fails).
    ///
    /// **Requirement on the caller:** the file must not be truncated or
    /// written in place, by anyone, while the map lives (the session).
    /// Within a session this is checked where it can be: a writable channel
    /// is never mapped, and the engine does not map a file another writable
    /// channel of the session has open (compare [`OpenChannel::file_identity`]).
    /// Outside the session it is the host's contract: the exec agent passes
    /// object files that are written once, under a temporary name, and
    /// renamed into place, never modified; zvsh passes the user's own
    /// files, which only that user can change under their own run. A file
    /// truncated under the map would kill the process with SIGBUS on the
    /// next touch of a lost page; one rewritten in place would show the guest
    /// a mix of old and new bytes (every offset was checked against the map's
    /// length when the image was indexed, so never out of bounds).
    pub(crate) fn map_readonly(&self) -> Option<std::io::Result<Mmap>> {
        let Backing::File(f) = &self.backing else {
            return None;
        };
        if !self.limits.readable() || self.limits.writable() {
            return None;
        }
        // Past the end there is nothing to map (and an offset a map cannot
        // start at is read instead: see "File offsets" in the module doc).
        if self.base > 0 && (self.size == 0 || self.base % page_size() != 0) {
            return None;
        }
        // SAFETY: `MmapOptions::map` is unsafe because the returned `&[u8]`
        // aliases a file other processes may change: truncation makes pages vanish
        // (SIGBUS), in-place writes change bytes Rust assumes immutable. We
        // map only a channel that cannot write (checked above), the engine
        // skips files any writable channel of the session has open, guests
        // reach host files only through channels, and the doc comment above
        // makes "not truncated or modified while mapped" the contract of
        // whoever hands the engine its sessions (met by write-once,
        // rename-into-place files; crate-private, so only the engine maps).
        // Two sessions naming the same file, one writing it, must not run
        // side by side in one process; in the worker pool each session has
        // its own process, so a breach kills only that worker. A private
        // (MAP_PRIVATE) map would not help: Linux shows later file changes
        // in untouched private pages too, and truncation still faults.
        // With an offset the map covers the file from there to its end, the
        // same bytes the channel reads: the same contract, a smaller map.
        #[allow(unsafe_code)]
        let map = unsafe { MmapOptions::new().offset(self.base).map(f) };
        Some(map)
    }

    /// Reads the channel from its start to its end in [`CHUNK`]-sized
    /// [`OpenChannel::pread`] calls, through its quotas: a read quota that
    /// runs out after some bytes ends the read there (the NVRAM, images).
    pub fn read_all(&mut self) -> Result<Vec<u8>, ChannelError> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; CHUNK as usize];
        loop {
            match self.pread(&mut buf, out.len() as u64) {
                Ok(0) => return Ok(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(ChannelError::Quota) if !out.is_empty() => return Ok(out),
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the channel from its start to its end through its quotas, as
    /// repeated [`CHUNK`]-sized [`OpenChannel::pread`] calls would (same
    /// gets/get_size used, host I/O counts and etag; a read quota cuts the
    /// bytes short), for a tar image. With `may_map` and a mappable source
    /// ([`OpenChannel::map_readonly`], whose requirement applies) the bytes
    /// are a memory map of the file, not a copy; otherwise they are read
    /// into memory.
    pub(crate) fn read_image(&mut self, may_map: bool) -> Result<ImageBytes, ChannelError> {
        let map = if may_map {
            self.map_readonly().and_then(Result::ok)
        } else {
            None
        };
        let Some(map) = map else {
            return self.read_all().map(ImageBytes::owned);
        };
        let mut len = 0u64;
        loop {
            let plan = match self.read_plan(CHUNK, len) {
                Ok(plan) => plan,
                Err(ChannelError::Quota) if len > 0 => None,
                Err(e) => return Err(e),
            };
            let Some((random, offset, size)) = plan else {
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                return Ok(ImageBytes::mapped(map, len));
            };
            // What `read_source` reads from the file: up to its end.
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(map.len());
            let n = usize::try_from(size)
                .unwrap_or(usize::MAX)
                .min(map.len() - start);
            self.read_done(random, &map[start..start + n]);
            if n == 0 {
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                return Ok(ImageBytes::mapped(map, len));
            }
            len += n as u64;
        }
    }

    /// The alias the program sees.
    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// The access type.
    pub fn channel_type(&self) -> ChannelType {
        self.channel_type
    }

    /// The manifest limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Current size of the source (0 for streams).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether the source is a stream (character device, FIFO, socket).
    pub fn is_stream(&self) -> bool {
        matches!(self.backing, Backing::Stream(_) | Backing::Replicas(_))
    }

    /// Quota counters used so far.
    pub fn used(&self) -> Used {
        self.used
    }

    /// Host I/O counts for the accounting line.
    pub fn io(&self) -> IoCounters {
        self.io
    }

    /// The etag so far (lower-case hex MD5), if enabled.
    pub fn etag(&self) -> Option<ChannelEtag> {
        self.etag.as_ref().map(|h| ChannelEtag {
            alias: self.alias.clone(),
            digest: hex(&h.clone().finalize()),
        })
    }

    /// `zvm_pread` (§4.4): reads into `buf` at `offset` (ignored by
    /// sequential-read types). Returns the bytes read; 0 at the end.
    pub fn pread(&mut self, buf: &mut [u8], offset: u64) -> Result<usize, ChannelError> {
        let Some((random, offset, size)) = self.read_plan(buf.len() as u64, offset)? else {
            return Ok(0);
        };
        // `read_plan` never asks for more than `buf.len()`.
        let want = &mut buf[..size as usize];
        let n = self.read_source(want, offset)?;
        self.read_done(random, &want[..n]);
        Ok(n)
    }

    /// The checks of §4.4 for a read of `len` bytes at `offset`: `None` when
    /// the call returns 0 without reading, else (random?, offset, size).
    fn read_plan(&self, len: u64, offset: u64) -> Result<Option<(bool, u64, u64)>, ChannelError> {
        if !self.limits.readable() {
            return Err(ChannelError::Invalid);
        }
        let random = self.channel_type.random_read() && !self.is_stream();
        let (offset, size) = if random {
            (offset, len.min(self.size.saturating_sub(offset)))
        } else {
            (self.read_pos, len)
        };
        if size == 0 || (!random && self.eof) {
            return Ok(None);
        }
        if self.used.gets >= self.limits.gets {
            return Err(ChannelError::Quota);
        }
        let size = size.min(self.limits.get_size.saturating_sub(self.used.get_size));
        if size == 0 {
            return Err(ChannelError::Quota);
        }
        Ok(Some((random, offset, size)))
    }

    /// Counts a read that produced `data`: positions, EOF, quotas, host
    /// I/O, etag.
    fn read_done(&mut self, random: bool, data: &[u8]) {
        let n = data.len() as u64;
        if n == 0 && !random {
            self.eof = true;
        }
        if !random {
            self.read_pos += n;
        }
        self.used.gets += 1;
        self.used.get_size += n;
        self.io.reads += chunks(n);
        self.io.bytes_read += n;
        if let Some(h) = &mut self.etag {
            h.update(data);
        }
    }

    fn read_source(&mut self, buf: &mut [u8], offset: u64) -> Result<usize, ChannelError> {
        let alias = &self.alias;
        let deadline = self.deadline;
        let io = |e: std::io::Error| ChannelError::Io(format!("{alias};0 failed to read: {e}"));
        match &mut self.backing {
            Backing::File(f) => {
                let at = self.base.checked_add(offset).ok_or(ChannelError::Invalid)?;
                // Read until full or EOF, as ZeroVM did (64 KiB chunks).
                let mut done = 0;
                while done < buf.len() {
                    match f.read_at(&mut buf[done..], at + done as u64) {
                        Ok(0) => break,
                        Ok(n) => done += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(io(e)),
                    }
                }
                Ok(done)
            }
            Backing::Stream(Stream::Host(f)) => loop {
                match f.read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io(e)),
                }
            },
            Backing::Stream(stream) => match accept(stream, alias, "read", deadline)? {
                Some(s) => socket_read(s, buf, alias, deadline),
                None => Ok(0),
            },
            Backing::Replicas(streams) => replicas_read(streams, buf, alias, deadline),
            Backing::Memory(b) => {
                let bytes = b.lock().unwrap_or_else(|p| p.into_inner());
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let n = buf.len().min(bytes.len() - start);
                buf[..n].copy_from_slice(&bytes[start..start + n]);
                Ok(n)
            }
        }
    }

    /// `zvm_pwrite` (§4.4): writes `buf` at `offset` (ignored by
    /// sequential-write types). Returns the bytes written, which are fewer
    /// than asked when `put_size` runs out.
    pub fn pwrite(&mut self, buf: &[u8], offset: u64) -> Result<usize, ChannelError> {
        if !self.limits.writable() {
            return Err(ChannelError::Invalid);
        }
        let random = self.channel_type.random_write() && !self.is_stream();
        let offset = if random { offset } else { self.write_pos };
        if buf.is_empty() {
            return Ok(0);
        }
        if self.used.puts >= self.limits.puts {
            return Err(ChannelError::Quota);
        }
        let remaining = self.limits.put_size.saturating_sub(self.used.put_size);
        if random {
            if !self.limits.readable() && offset >= self.limits.put_size {
                return Err(ChannelError::Invalid);
            }
            if offset >= self.size.saturating_add(remaining) {
                return Err(ChannelError::Invalid);
            }
        }
        let size = (buf.len() as u64).min(remaining);
        if size == 0 {
            return Err(ChannelError::Quota);
        }
        let data = &buf[..size as usize];
        self.write_source(data, offset)?;
        let end = offset + size;
        self.write_pos = end;
        self.size = if random {
            self.size.max(end)
        } else {
            end.max(self.size)
        };
        self.read_pos = self.write_pos;
        self.used.puts += 1;
        self.used.put_size += size;
        self.io.writes += 1;
        self.io.bytes_written += size;
        if let Some(h) = &mut self.etag {
            h.update(data);
        }
        Ok(size as usize)
    }

    fn write_source(&mut self, data: &[u8], offset: u64) -> Result<(), ChannelError> {
        let deadline = self.deadline;
        let alias = &self.alias;
        let io = |e: std::io::Error| ChannelError::Io(format!("{alias};0 failed to write: {e}"));
        match &mut self.backing {
            Backing::File(f) => {
                let at = self.base.checked_add(offset).ok_or(ChannelError::Invalid)?;
                f.write_all_at(data, at).map_err(io)
            }
            Backing::Stream(Stream::Host(f)) => f.write_all(data).map_err(io),
            Backing::Stream(stream) => match accept(stream, alias, "write", deadline)? {
                Some(s) => socket_write(s, data, alias, deadline),
                None => Ok(()),
            },
            Backing::Replicas(streams) => replicas_write(streams, data, alias, deadline),
            Backing::Memory(b) => {
                let mut bytes = b.lock().unwrap_or_else(|p| p.into_inner());
                let start = usize::try_from(offset).map_err(|_| ChannelError::Invalid)?;
                let end = start + data.len();
                if bytes.len() < end {
                    bytes.resize(end, 0);
                }
                bytes[start..end].copy_from_slice(data);
                Ok(())
            }
        }
    }

    /// Flushes the host source (streams); called once at session end. A
    /// tcp writer shuts its sending side down (the reader's end of data); a
    /// tcp reader drains what is still coming for at most [`DRAIN_TIMEOUT`]
    /// (uncounted), so the writer is not reset mid-stream.
    pub fn close(&mut self) {
        let writable = self.limits.writable();
        let drain = (self.limits.readable() && !self.eof).then(|| Instant::now() + DRAIN_TIMEOUT);
        match &mut self.backing {
            Backing::Stream(Stream::Host(f)) => {
                let _ = f.flush();
            }
            Backing::Stream(Stream::Socket(s)) => socket_close(s, writable, drain),
            Backing::Replicas(streams) => {
                for stream in streams.iter_mut().flatten() {
                    if let Stream::Socket(s) = stream {
                        socket_close(s, writable, drain);
                    }
                }
            }
            _ => {}
        }
    }

    /// Writes what `produce` writes through [`OpenChannel::pwrite`] in
    /// [`CHUNK`]-sized calls from offset 0 (a `wo` tar image at exit): the
    /// quotas apply as to a guest's writes, so a `put_size` or `puts` quota
    /// cuts the output short (the rest is counted, not stored); a host
    /// failure is returned.
    pub fn write_image(
        &mut self,
        produce: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<ImageWritten, ChannelError> {
        let mut w = QuotaWriter {
            channel: self,
            pending: Vec::with_capacity(CHUNK as usize),
            written: ImageWritten::default(),
            failure: None,
        };
        let produced = produce(&mut w).and_then(|()| w.flush());
        let (written, failure) = (w.written, w.failure);
        if let Some(e) = failure {
            return Err(e);
        }
        produced.map_err(|e| ChannelError::Io(format!("{};0 failed to write: {e}", self.alias)))?;
        Ok(written)
    }
}

/// What [`OpenChannel::write_image`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImageWritten {
    /// Bytes produced.
    pub offered: u64,
    /// Bytes the channel took (fewer when a quota cut the output).
    pub stored: u64,
}

impl ImageWritten {
    /// Whether a quota cut the output short.
    pub fn cut(&self) -> bool {
        self.stored < self.offered
    }
}

/// `Write` over a channel in [`CHUNK`]s: after the first refusal or short
/// write it only counts.
struct QuotaWriter<'a> {
    channel: &'a mut OpenChannel,
    pending: Vec<u8>,
    written: ImageWritten,
    failure: Option<ChannelError>,
}

impl QuotaWriter<'_> {
    fn push_pending(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let cut = self.written.stored < self.written.offered - self.pending.len() as u64;
        if !cut {
            match self.channel.pwrite(&self.pending, self.written.stored) {
                Ok(n) => self.written.stored += n as u64,
                Err(ChannelError::Quota | ChannelError::Invalid) => {}
                Err(e) => {
                    self.failure = Some(e);
                    self.pending.clear();
                    return Err(std::io::Error::other("channel failure"));
                }
            }
        }
        self.pending.clear();
        Ok(())
    }
}

impl Write for QuotaWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = CHUNK as usize - self.pending.len();
        let n = buf.len().min(room);
        self.pending.extend_from_slice(&buf[..n]);
        self.written.offered += n as u64;
        if self.pending.len() == CHUNK as usize {
            self.push_pending()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.push_pending()
    }
}

/// A socket handed over as a file: listening (a reader not yet
/// connected to) or connected.
fn socket_stream(file: File) -> Stream {
    let fd = OwnedFd::from(file);
    if rustix::net::sockopt::socket_acceptconn(&fd).unwrap_or(false) {
        Stream::Listening(fd)
    } else {
        Stream::Socket(TcpStream::from(fd))
    }
}

/// The connected socket of a socket stream, accepting the one connection
/// of a listening one first (waiting at most until `deadline`; the
/// listening socket is closed then). `None` for a host stream.
fn accept<'s>(
    stream: &'s mut Stream,
    alias: &str,
    what: &str,
    deadline: Option<Instant>,
) -> Result<Option<&'s mut TcpStream>, ChannelError> {
    if let Stream::Listening(listener) = stream {
        let left = time_left(deadline, alias, what)?;
        let fail = |e: std::io::Error| {
            ChannelError::Io(format!("{alias};0 failed to {what}: {}", reason(&e)))
        };
        // Linux bounds accept() by the listening socket's receive timeout.
        rustix::net::sockopt::set_socket_timeout(
            &*listener,
            rustix::net::sockopt::Timeout::Recv,
            left,
        )
        .map_err(|e| fail(e.into()))?;
        let fd = loop {
            match rustix::net::accept(&*listener) {
                Ok(fd) => break fd,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(fail(e.into())),
            }
        };
        *stream = Stream::Socket(TcpStream::from(fd));
    }
    match stream {
        Stream::Socket(s) => Ok(Some(s)),
        _ => Ok(None),
    }
}

/// One read from a connected socket, waiting at most until `deadline`.
fn socket_read(
    s: &mut TcpStream,
    buf: &mut [u8],
    alias: &str,
    deadline: Option<Instant>,
) -> Result<usize, ChannelError> {
    let net =
        |e: std::io::Error| ChannelError::Io(format!("{alias};0 failed to read: {}", reason(&e)));
    s.set_read_timeout(time_left(deadline, alias, "read")?)
        .map_err(net)?;
    loop {
        match s.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(net(e)),
        }
    }
}

/// Writes all of `data` to a connected socket. Each partial send may only
/// wait for what is left until `deadline`, so a slow reader cannot hold the
/// writer past it.
fn socket_write(
    s: &mut TcpStream,
    data: &[u8],
    alias: &str,
    deadline: Option<Instant>,
) -> Result<(), ChannelError> {
    let net =
        |e: std::io::Error| ChannelError::Io(format!("{alias};0 failed to write: {}", reason(&e)));
    let mut rest = data;
    while !rest.is_empty() {
        s.set_write_timeout(time_left(deadline, alias, "write")?)
            .map_err(net)?;
        match s.write(rest) {
            Ok(0) => return Err(net(std::io::ErrorKind::WriteZero.into())),
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(net(e)),
        }
    }
    Ok(())
}

/// A tcp channel's end: a writer shuts its sending side down (the
/// reader's end of data); a reader that has not seen the end drains (and
/// discards) what still comes until `drain`, so the writer is not reset
/// mid-stream.
fn socket_close(s: &mut TcpStream, writable: bool, drain: Option<Instant>) {
    if writable {
        let _ = s.flush();
        let _ = s.shutdown(Shutdown::Write);
    }
    let Some(until) = drain else {
        return;
    };
    let mut scratch = vec![0u8; CHUNK as usize];
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match s.read(&mut scratch) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

/// Up to `want` bytes from a socket stream: all of them unless its data
/// ends first.
fn read_exactly(
    stream: &mut Stream,
    want: usize,
    alias: &str,
    deadline: Option<Instant>,
) -> Result<Vec<u8>, ChannelError> {
    let mut v = vec![0u8; want];
    let mut done = 0;
    if let Some(s) = accept(stream, alias, "read", deadline)? {
        while done < want {
            match socket_read(s, &mut v[done..], alias, deadline)? {
                0 => break,
                n => done += n,
            }
        }
    }
    v.truncate(done);
    Ok(v)
}

/// A multichannel read (see the module doc): the first source still in
/// play sets the size, the others give as many bytes, and the bytes two or
/// more gave identically are the result; every other source is dropped.
fn replicas_read(
    streams: &mut [Option<Stream>],
    buf: &mut [u8],
    alias: &str,
    deadline: Option<Instant>,
) -> Result<usize, ChannelError> {
    let mut got: Vec<(usize, Result<Vec<u8>, ChannelError>)> = Vec::new();
    let mut want: Option<usize> = None;
    for (i, slot) in streams.iter_mut().enumerate() {
        let Some(stream) = slot else {
            continue;
        };
        let r = match want {
            None => accept(stream, alias, "read", deadline).and_then(|s| match s {
                Some(s) => socket_read(s, buf, alias, deadline).map(|n| buf[..n].to_vec()),
                None => Ok(Vec::new()),
            }),
            // At the first source's end, one byte tells whether this one
            // ends there too.
            Some(m) => read_exactly(stream, m.max(1), alias, deadline),
        };
        if want.is_none() {
            want = r.as_ref().ok().map(Vec::len);
        }
        got.push((i, r));
    }
    let agreeing = |v: &Vec<u8>| {
        got.iter()
            .filter(|(_, r)| r.as_ref().is_ok_and(|w| w == v))
            .count()
    };
    let mut best: Option<(&Vec<u8>, usize)> = None;
    for (_, r) in &got {
        if let Ok(v) = r {
            let n = agreeing(v);
            if n >= 2 && best.is_none_or(|(_, m)| n > m) {
                best = Some((v, n));
            }
        }
    }
    let Some((winner, _)) = best else {
        let failed = got.iter().filter(|(_, r)| r.is_err()).count();
        let first_failure = got.iter().find_map(|(_, r)| r.as_ref().err().cloned());
        for slot in streams.iter_mut() {
            *slot = None;
        }
        return Err(match first_failure {
            Some(e) if failed == got.len() => e,
            _ => ChannelError::Io(format!("{alias};0 failed to read: replicas differ")),
        });
    };
    let winner = winner.clone();
    for (i, r) in &got {
        if !r.as_ref().is_ok_and(|v| *v == winner) {
            streams[*i] = None;
        }
    }
    buf[..winner.len()].copy_from_slice(&winner);
    Ok(winner.len())
}

/// A multichannel write (see the module doc): to every source still in
/// play; one that fails is dropped, and the write fails only when none is
/// left.
fn replicas_write(
    streams: &mut [Option<Stream>],
    data: &[u8],
    alias: &str,
    deadline: Option<Instant>,
) -> Result<(), ChannelError> {
    let mut first_failure = None;
    let mut delivered = 0;
    for slot in streams.iter_mut() {
        let Some(stream) = slot else {
            continue;
        };
        let r = accept(stream, alias, "write", deadline).and_then(|s| match s {
            Some(s) => socket_write(s, data, alias, deadline),
            None => Ok(()),
        });
        match r {
            Ok(()) => delivered += 1,
            Err(e) => {
                first_failure.get_or_insert(e);
                *slot = None;
            }
        }
    }
    match (delivered, first_failure) {
        (0, Some(e)) => Err(e),
        (0, None) => Err(ChannelError::Io(format!(
            "{alias};0 failed to write: no source left"
        ))),
        _ => Ok(()),
    }
}

/// Binds (read-only) or connects (write-only) a tcp source; the socket's
/// descriptor comes back as a `File`.
fn open_network(channel: &manifest::Channel, uri: &NetworkUri) -> Result<File, OpenError> {
    let alias = &channel.alias;
    if !uri.protocol.carries_channels() {
        return Err(OpenError::Unsupported(alias.clone()));
    }
    let ip: Ipv4Addr = match uri.host {
        NetHost::Ip(ip) => ip,
        NetHost::Node(node) => {
            return Err(OpenError::NameService {
                alias: alias.clone(),
                node,
            })
        }
    };
    let addr = SocketAddr::V4(SocketAddrV4::new(ip, uri.port));
    let fd = match channel.direction {
        Direction::ReadOnly => {
            TcpListener::bind(addr)
                .map(OwnedFd::from)
                .map_err(|e| OpenError::CannotBind {
                    alias: alias.clone(),
                    reason: reason(&e),
                })?
        }
        Direction::WriteOnly => TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            .map(OwnedFd::from)
            .map_err(|e| OpenError::CannotConnect {
                alias: alias.clone(),
                reason: reason(&e),
            })?,
        // Refused by `Manifest::check` already ("invalid i/o type").
        Direction::ReadWrite => return Err(OpenError::Unsupported(alias.clone())),
    };
    Ok(File::from(fd))
}

/// The host's memory page size: where a map of a file may start.
fn page_size() -> u64 {
    // Not `rustix::param::page_size`: it reads `/proc/self/auxv` on first
    // use, which an isolated worker cannot open any more.
    // SAFETY: `sysconf` takes an integer and returns one; it reads no
    // caller memory and is thread-safe. `_SC_PAGESIZE` is answered from
    // the value the kernel passed at exec (no system call, so also under
    // the worker's seccomp filter); memmap2 asks the same way.
    #[allow(unsafe_code)]
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    // Linux's smallest page; a size the host cannot tell (never on Linux)
    // only decides whether an image is mapped or read.
    u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

/// Host operations for `n` bytes: one per 64 KiB chunk, at least one.
fn chunks(n: u64) -> u64 {
    n.div_ceil(CHUNK).max(1)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::CheckedSource;

    fn chan(t: ChannelType, limits: Limits, etag: bool) -> manifest::Channel {
        manifest::Channel {
            alias: "/dev/x".into(),
            channel_type: t,
            direction: limits.direction().unwrap_or(Direction::ReadOnly),
            etag,
            limits,
            sources: vec![CheckedSource::Local {
                path: "/nonexistent".into(),
                kind: LocalKind::Regular { size: None },
            }],
        }
    }

    fn lim(gets: u64, get_size: u64, puts: u64, put_size: u64) -> Limits {
        Limits {
            gets,
            get_size,
            puts,
            put_size,
        }
    }

    proptest::proptest! {
        /// Whatever the calls, nothing beyond the quotas moves and every
        /// refusal is for a reason the limits give.
        #[test]
        fn quotas_are_never_crossed(
            t in 0i64..4,
            limits in (0u64..6, 0u64..40, 0u64..6, 0u64..40),
            ops in proptest::collection::vec((proptest::bool::ANY, 0usize..20, 0u64..50), 0..20),
        ) {
            let limits = lim(limits.0, limits.1, limits.2, limits.3);
            let channel_type = ChannelType::from_number(t).unwrap();
            let buffer = shared(b"0123456789abcdefghij".to_vec());
            let mut c = OpenChannel::memory(&chan(channel_type, limits, false), buffer.clone());
            for (write, len, offset) in ops {
                if write {
                    let _ = c.pwrite(&vec![b'x'; len], offset);
                } else {
                    let _ = c.pread(&mut vec![0; len], offset);
                }
                let used = c.used();
                proptest::prop_assert!(used.gets <= limits.gets && used.get_size <= limits.get_size);
                proptest::prop_assert!(used.puts <= limits.puts && used.put_size <= limits.put_size);
            }
            if !limits.readable() {
                let written = buffer.lock().unwrap().iter().filter(|&&b| b == b'x').count() as u64;
                proptest::prop_assert!(written <= limits.put_size);
            }
        }
    }

    #[test]
    fn write_past_put_size_is_short_then_edquot() {
        let out = shared(Vec::new());
        let mut c = OpenChannel::memory(
            &chan(ChannelType::SGetSPut, lim(0, 0, 10, 5), false),
            out.clone(),
        );
        assert_eq!(c.pwrite(b"abc", 99), Ok(3));
        assert_eq!(c.pwrite(b"defgh", 0), Ok(2));
        assert_eq!(c.pwrite(b"i", 0), Err(ChannelError::Quota));
        assert_eq!(&*out.lock().unwrap(), b"abcde");
    }

    #[test]
    fn puts_quota_counts_calls() {
        let out = shared(Vec::new());
        let mut c =
            OpenChannel::memory(&chan(ChannelType::SGetSPut, lim(0, 0, 2, 100), false), out);
        assert_eq!(c.pwrite(b"a", 0), Ok(1));
        assert_eq!(c.pwrite(b"b", 0), Ok(1));
        assert_eq!(c.pwrite(b"c", 0), Err(ChannelError::Quota));
        assert_eq!(c.used().puts, 2);
    }

    #[test]
    fn sequential_read_ignores_offset_and_eof_is_subject_to_quota() {
        let inp = shared(b"hello".to_vec());
        let mut c = OpenChannel::memory(&chan(ChannelType::SGetSPut, lim(10, 5, 0, 0), false), inp);
        let mut buf = [0u8; 3];
        assert_eq!(c.pread(&mut buf, 4), Ok(3));
        assert_eq!(&buf, b"hel");
        assert_eq!(c.pread(&mut buf, 0), Ok(2));
        assert_eq!(&buf[..2], b"lo");
        assert_eq!(c.pread(&mut buf, 0), Err(ChannelError::Quota));
    }

    #[test]
    fn random_read_honours_offset() {
        let inp = shared(b"0123456789".to_vec());
        let mut c =
            OpenChannel::memory(&chan(ChannelType::RGetRPut, lim(10, 100, 0, 0), false), inp);
        let mut buf = [0u8; 4];
        assert_eq!(c.pread(&mut buf, 6), Ok(4));
        assert_eq!(&buf, b"6789");
        assert_eq!(c.pread(&mut buf, 8), Ok(2));
        assert_eq!(c.pread(&mut buf, 10), Ok(0));
        assert_eq!(c.pread(&mut buf, 100), Ok(0));
        assert_eq!(c.used().gets, 2);
    }

    #[test]
    fn gets_quota_counts_calls() {
        let inp = shared(b"0123456789".to_vec());
        let mut c =
            OpenChannel::memory(&chan(ChannelType::SGetSPut, lim(1, 100, 0, 0), false), inp);
        let mut buf = [0u8; 2];
        assert_eq!(c.pread(&mut buf, 0), Ok(2));
        assert_eq!(c.pread(&mut buf, 0), Err(ChannelError::Quota));
    }

    #[test]
    fn etag_is_md5_of_bytes_through_the_channel() {
        let out = shared(Vec::new());
        let mut c =
            OpenChannel::memory(&chan(ChannelType::SGetSPut, lim(0, 0, 10, 100), true), out);
        c.pwrite(b"hello", 0).unwrap();
        assert_eq!(c.etag().unwrap().digest, "5d41402abc4b2a76b9719d911017c592");
    }

    #[test]
    fn write_only_file_truncates_and_random_write_honours_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        std::fs::write(&path, b"old contents").unwrap();
        let mut spec = chan(ChannelType::RGetRPut, lim(0, 0, 10, 100), false);
        spec.sources = vec![CheckedSource::Local {
            path: path.to_str().unwrap().into(),
            kind: LocalKind::Regular { size: Some(12) },
        }];
        let mut c = OpenChannel::open(&spec).unwrap();
        assert_eq!(c.size(), 0);
        c.pwrite(b"world", 6).unwrap();
        c.pwrite(b"hello ", 0).unwrap();
        c.close();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
        // Past what remains of the quota beyond the end: EINVAL.
        assert_eq!(c.pwrite(b"x", 200), Err(ChannelError::Invalid));
    }

    #[test]
    fn appending_channel_starts_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, b"ab").unwrap();
        let mut spec = chan(ChannelType::RGetSPut, lim(10, 100, 10, 100), false);
        spec.sources = vec![CheckedSource::Local {
            path: path.to_str().unwrap().into(),
            kind: LocalKind::Regular { size: Some(2) },
        }];
        let mut c = OpenChannel::open(&spec).unwrap();
        c.pwrite(b"cd", 0).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(c.pread(&mut buf, 0), Ok(4));
        assert_eq!(&buf, b"abcd");
    }

    fn file_chan(path: &std::path::Path, t: ChannelType, limits: Limits) -> manifest::Channel {
        let mut spec = chan(t, limits, true);
        spec.sources = vec![CheckedSource::Local {
            path: path.to_str().unwrap().into(),
            kind: LocalKind::Regular { size: None },
        }];
        spec
    }

    #[test]
    fn a_mapped_image_counts_exactly_like_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image");
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        for (t, limits, expect_len) in [
            (ChannelType::RGetRPut, lim(100, 1 << 30, 0, 0), bytes.len()),
            // Sequential: the read that finds the end counts too.
            (ChannelType::SGetSPut, lim(100, 1 << 30, 0, 0), bytes.len()),
            // Cut by get_size, then by gets.
            (ChannelType::RGetRPut, lim(100, 100_000, 0, 0), 100_000),
            (
                ChannelType::SGetSPut,
                lim(2, 1 << 30, 0, 0),
                2 * CHUNK as usize,
            ),
        ] {
            let spec = file_chan(&path, t, limits);
            let mut mapped = OpenChannel::open(&spec).unwrap();
            let mut copied = OpenChannel::open(&spec).unwrap();
            let a = mapped.read_image(true).unwrap();
            let b = copied.read_image(false).unwrap();
            assert!(a.is_mapped() && !b.is_mapped());
            assert_eq!(a.as_ref(), &bytes[..expect_len], "{t:?} {limits:?}");
            assert_eq!(a.as_ref(), b.as_ref());
            assert_eq!(mapped.used(), copied.used(), "{t:?} {limits:?}");
            assert_eq!(mapped.io(), copied.io(), "{t:?} {limits:?}");
            assert_eq!(mapped.etag(), copied.etag());
        }
        // Readable and writable: read, never mapped (its own writes would
        // change the mapped bytes).
        let spec = file_chan(&path, ChannelType::RGetRPut, lim(100, 1 << 30, 1, 1));
        let mut c = OpenChannel::open(&spec).unwrap();
        assert!(c.map_readonly().is_none());
        let image = c.read_image(true).unwrap();
        assert!(!image.is_mapped(), "a writable channel is never mapped");
        assert_eq!(image.as_ref(), &bytes[..]);
        // Nothing readable: refused either way.
        let spec = file_chan(&path, ChannelType::RGetRPut, lim(0, 0, 1, 1));
        let mut c = OpenChannel::open(&spec).unwrap();
        assert_eq!(c.read_image(true).unwrap_err(), ChannelError::Invalid);
    }

    /// `junk` bytes of prefix, then `data`, in a new file in `dir`.
    fn prefixed(dir: &std::path::Path, name: &str, junk: usize, data: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        let mut bytes = vec![b'J'; junk];
        bytes.extend_from_slice(data);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn an_offset_shifts_reads_and_the_size_to_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = prefixed(dir.path(), "in", 4096, b"0123456789");
        // Random reads.
        let spec = file_chan(&path, ChannelType::RGetRPut, lim(100, 1000, 0, 0));
        let mut c = OpenChannel::open_at(&spec, 4096).unwrap();
        assert_eq!(c.size(), 10);
        let mut buf = [0u8; 4];
        assert_eq!(c.pread(&mut buf, 6), Ok(4));
        assert_eq!(&buf, b"6789");
        assert_eq!(c.pread(&mut buf, 0), Ok(4));
        assert_eq!(&buf, b"0123");
        assert_eq!(c.pread(&mut buf, 10), Ok(0));
        // Counted as channel bytes: 8 read, the etag of what was read.
        assert_eq!(c.used().get_size, 8);
        assert_eq!(c.io().bytes_read, 8);
        let mut h = Md5::new();
        h.update(b"67890123");
        assert_eq!(c.etag().unwrap().digest, hex(&h.finalize()));
        // Sequential reads, through an already open file.
        let spec = file_chan(&path, ChannelType::SGetSPut, lim(100, 1000, 0, 0));
        let file = File::open(&path).unwrap();
        let mut c = OpenChannel::from_file_at(&spec, file, 4096).unwrap();
        assert_eq!(c.read_all().unwrap(), b"0123456789");
        // A file shorter than its offset: an empty channel.
        let mut c = OpenChannel::open_at(&spec, 1 << 20).unwrap();
        assert_eq!(c.size(), 0);
        assert_eq!(c.read_all().unwrap(), b"");
        // The same channel without an offset sees everything.
        let c = OpenChannel::open(&spec).unwrap();
        assert_eq!(c.size(), 4106);
    }

    #[test]
    fn an_offset_shifts_writes_and_a_write_only_file_keeps_its_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = prefixed(dir.path(), "out", 4096, b"old tail to be cut");
        let spec = file_chan(&path, ChannelType::RGetRPut, lim(0, 0, 10, 100));
        let mut c = OpenChannel::open_at(&spec, 4096).unwrap();
        assert_eq!(c.size(), 0, "the bytes from the offset on are gone");
        assert_eq!(c.pwrite(b"world", 6), Ok(5));
        assert_eq!(c.pwrite(b"hello ", 0), Ok(6));
        assert_eq!(c.size(), 11);
        c.close();
        let mut expect = vec![b'J'; 4096];
        expect.extend_from_slice(b"hello world");
        assert_eq!(std::fs::read(&path).unwrap(), expect);
        // Sequential writes through an already open file: nothing is cut
        // there, the writes start at the offset.
        let spec = file_chan(&path, ChannelType::SGetSPut, lim(0, 0, 10, 100));
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        let mut c = OpenChannel::from_file_at(&spec, file, 4096).unwrap();
        assert_eq!(c.size(), 11);
        assert_eq!(c.pwrite(b"HELLO", 99), Ok(5));
        c.close();
        expect[4096..4101].copy_from_slice(b"HELLO");
        assert_eq!(std::fs::read(&path).unwrap(), expect);
        // A file shorter than the offset is left as it is (not extended).
        let short = prefixed(dir.path(), "short", 10, b"");
        let spec = file_chan(&short, ChannelType::SGetSPut, lim(0, 0, 10, 100));
        let c = OpenChannel::open_at(&spec, 4096).unwrap();
        assert_eq!(
            (c.size(), std::fs::metadata(&short).unwrap().len()),
            (0, 10)
        );
    }

    #[test]
    fn an_appending_channel_with_an_offset_starts_at_the_end_of_its_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = prefixed(dir.path(), "log", 100, b"ab");
        let spec = file_chan(&path, ChannelType::RGetSPut, lim(10, 100, 10, 100));
        let mut c = OpenChannel::open_at(&spec, 100).unwrap();
        assert_eq!(c.size(), 2);
        c.pwrite(b"cd", 0).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(c.pread(&mut buf, 0), Ok(4));
        assert_eq!(&buf[..4], b"abcd");
        let mut expect = vec![b'J'; 100];
        expect.extend_from_slice(b"abcd");
        assert_eq!(std::fs::read(&path).unwrap(), expect);
    }

    #[test]
    fn streams_ignore_offsets() {
        let spec = chan(ChannelType::SGetSPut, lim(10, 100, 0, 0), false);
        let mut c =
            OpenChannel::from_file_at(&spec, File::open("/dev/zero").unwrap(), 4096).unwrap();
        assert!(c.is_stream());
        assert_eq!(c.size(), 0);
        let mut buf = [1u8; 4];
        assert_eq!(c.pread(&mut buf, 0), Ok(4));
        assert_eq!(buf, [0; 4]);
    }

    #[test]
    fn an_image_at_an_offset_is_mapped_when_page_aligned_and_read_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let page = page_size() as usize;
        for (junk, mapped) in [
            (page, true),
            (3 * page, true),
            (page + 512, false),
            (1, false),
        ] {
            let path = prefixed(dir.path(), "image", junk, &bytes);
            let spec = file_chan(&path, ChannelType::RGetRPut, lim(100, 1 << 30, 0, 0));
            let mut c = OpenChannel::open_at(&spec, junk as u64).unwrap();
            let image = c.read_image(true).unwrap();
            assert_eq!(image.is_mapped(), mapped, "offset {junk}");
            assert_eq!(image.as_ref(), &bytes[..], "offset {junk}");
            // Counted as reading the window would count.
            let mut read = OpenChannel::open_at(&spec, junk as u64).unwrap();
            assert_eq!(read.read_image(false).unwrap().as_ref(), &bytes[..]);
            assert_eq!(c.used(), read.used());
            assert_eq!(c.io(), read.io());
            assert_eq!(c.etag(), read.etag());
        }
        // Past the end: an empty image, nothing mapped.
        let path = prefixed(dir.path(), "image", page, b"");
        let spec = file_chan(&path, ChannelType::RGetRPut, lim(100, 1 << 30, 0, 0));
        let mut c = OpenChannel::open_at(&spec, 2 * page as u64).unwrap();
        let image = c.read_image(true).unwrap();
        assert!(!image.is_mapped());
        assert_eq!(image.as_ref(), b"");
    }

    #[test]
    fn memory_and_empty_images_are_owned_bytes() {
        let spec = chan(ChannelType::RGetRPut, lim(10, 100, 0, 0), false);
        let mut c = OpenChannel::memory(&spec, shared(b"abc".to_vec()));
        let bytes = c.read_image(true).unwrap();
        assert!(!bytes.is_mapped());
        assert_eq!(bytes.as_ref(), b"abc");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        std::fs::write(&path, b"").unwrap();
        let mut c = OpenChannel::open(&file_chan(&path, ChannelType::RGetRPut, lim(10, 100, 0, 0)))
            .unwrap();
        assert_eq!(c.read_image(true).unwrap().as_ref(), b"");
        assert_eq!(c.used(), Used::default());
    }

    #[test]
    fn an_image_written_past_put_size_is_cut() {
        let out = shared(Vec::new());
        let spec = chan(ChannelType::SGetSPut, lim(0, 0, 100, 100_000), true);
        let mut c = OpenChannel::memory(&spec, out.clone());
        let data: Vec<u8> = (0..150_000u32).map(|i| i as u8).collect();
        let w = c.write_image(|w| w.write_all(&data)).unwrap();
        assert_eq!(
            w,
            ImageWritten {
                offered: 150_000,
                stored: 100_000
            }
        );
        assert!(w.cut());
        assert_eq!(&*out.lock().unwrap(), &data[..100_000]);
        // 64 KiB calls: one full, one short.
        assert_eq!(c.used().puts, 2);
        // Cut by the number of calls instead.
        let out = shared(Vec::new());
        let spec = chan(ChannelType::RGetRPut, lim(0, 0, 1, 1 << 30), false);
        let mut c = OpenChannel::memory(&spec, out.clone());
        let w = c.write_image(|w| w.write_all(&data)).unwrap();
        assert_eq!((w.offered, w.stored), (150_000, CHUNK));
        assert_eq!(out.lock().unwrap().len() as u64, CHUNK);
        // Within the quotas: all of it.
        let out = shared(Vec::new());
        let spec = chan(ChannelType::SGetSPut, lim(0, 0, 100, 1 << 30), false);
        let mut c = OpenChannel::memory(&spec, out.clone());
        let w = c.write_image(|w| w.write_all(&data)).unwrap();
        assert!(!w.cut());
        assert_eq!(&*out.lock().unwrap(), &data);
    }

    fn net_chan(uri: &str, limits: Limits) -> manifest::Channel {
        let text = format!(
            "Version = 20130611\nTimeout = 5\nMemory = 1000000,0\nProgram = /p\n\
             Channel = /dev/null,/dev/stdin,0,0,1,1,0,0\n\
             Channel = /dev/null,/dev/stdout,0,0,0,0,1,1\n\
             Channel = /dev/null,/dev/stderr,0,0,0,0,1,1\n\
             Channel = {uri},/dev/net,0,0,{},{},{},{}\n",
            limits.gets, limits.get_size, limits.puts, limits.put_size
        );
        let m = manifest::Manifest::parse(text.as_bytes()).unwrap();
        let host = |path: &str| {
            Some(match path {
                "/p" => manifest::HostKind::Regular { size: 1 },
                _ => manifest::HostKind::CharDevice,
            })
        };
        m.check(&host)
            .unwrap()
            .into_iter()
            .find(|c| c.alias == "/dev/net")
            .unwrap()
    }

    #[test]
    fn tcp_sources_refused_with_zerovm_style_messages() {
        let free = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = OpenChannel::open(&net_chan(&format!("tcp:127.0.0.1:{free}"), lim(0, 0, 1, 1)))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot connect /dev/net;0: Connection refused"
        );
        assert_eq!(e.errno(), crate::errno::EFAULT);
        let e = OpenChannel::open(&net_chan("tcp:3:0", lim(1, 1, 0, 0))).unwrap_err();
        assert_eq!(e.errno(), crate::errno::EPROTONOSUPPORT);
        assert!(e.to_string().contains("name service"), "{e}");
        let e = OpenChannel::open(&net_chan("udp:127.0.0.1:9", lim(1, 1, 0, 0))).unwrap_err();
        assert_eq!(e.to_string(), "invalid /dev/net source type");
        let e = OpenChannel::open(&net_chan("/dev/null;/dev/null", lim(1, 1, 0, 0))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/dev/net has several sources: multichannels are only supported over tcp"
        );
        assert_eq!(e.errno(), crate::errno::EPROTONOSUPPORT);
        // A port already bound elsewhere.
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let e = OpenChannel::open(&net_chan(&format!("tcp:127.0.0.1:{port}"), lim(1, 1, 0, 0)))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot bind /dev/net;0: Address already in use"
        );
    }

    #[test]
    fn tcp_reader_accepts_one_connection_and_counts_like_a_stream() {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let mut c = OpenChannel::open(&net_chan(
            &format!("tcp:127.0.0.1:{port}"),
            lim(10, 8, 0, 0),
        ))
        .unwrap();
        assert!(c.is_stream() && c.is_network());
        c.set_deadline(Instant::now().checked_add(Duration::from_secs(5)));
        let writer = std::thread::spawn(move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"0123456789").unwrap();
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 4];
        loop {
            match c.pread(&mut buf, 99) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => {
                    assert_eq!(e, ChannelError::Quota);
                    break;
                }
            }
        }
        assert_eq!(got, b"01234567", "get_size 8 cuts the stream");
        writer.join().unwrap();
        // A second connection is refused: the listener is closed.
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
        c.close();
    }

    #[test]
    fn tcp_read_past_the_deadline_fails() {
        let mut c = OpenChannel::open(&net_chan("tcp:127.0.0.1:0", lim(10, 10, 0, 0))).unwrap();
        c.set_deadline(Instant::now().checked_add(Duration::from_millis(100)));
        let e = c.pread(&mut [0u8; 4], 0).unwrap_err();
        assert_eq!(
            e,
            ChannelError::Io("/dev/net;0 failed to read: timed out".into())
        );
    }

    /// A reader that keeps taking a little (so every partial send makes
    /// progress) cannot hold a writer past its deadline: the write times
    /// out while the reader is still there (it hangs up after 10 s, which a
    /// writer that waited per send would see as a reset instead).
    #[test]
    fn tcp_write_to_a_slow_reader_stops_at_the_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let reader = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let until = Instant::now() + Duration::from_secs(10);
            let mut buf = [0u8; 4096];
            while Instant::now() < until && !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                if matches!(s.read(&mut buf), Ok(0) | Err(_)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let big = 1u64 << 40;
        let mut c = OpenChannel::open(&net_chan(
            &format!("tcp:127.0.0.1:{port}"),
            lim(0, 0, 10, big),
        ))
        .unwrap();
        c.set_deadline(Instant::now().checked_add(Duration::from_millis(300)));
        let e = c.pwrite(&vec![b'x'; 64 << 20], 0).unwrap_err();
        assert_eq!(
            e,
            ChannelError::Io("/dev/net;0 failed to write: timed out".into())
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        drop(c);
        reader.join().unwrap();
    }
}
