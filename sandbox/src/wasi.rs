//! Our WASI preview1 layer (not wasmtime-wasi): the host functions a wasi-libc program
//! imports, served from the session's channels and [`Vfs`]; every other preview1 import is ENOSYS.
//!
//! The guest sees one preopened directory, `/` (fd 3), with the channels at
//! their aliases, and fds 0–2 bound to `/dev/stdin`, `/dev/stdout`,
//! `/dev/stderr`. Every guest pointer is bounds-checked against linear
//! memory (EFAULT otherwise); nothing here panics on guest data. Channel
//! reads and writes go through [`OpenChannel`] so quotas and access types
//! apply (§13.2): sequential channels ignore offsets and refuse `fd_seek`
//! (ESPIPE). A host I/O failure on a channel ends the session (ZeroVM: EIO),
//! as does `proc_exit`; both unwind as traps carrying [`Exit`] / [`Fatal`].

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rand::RngCore;
use wasmtime::{Caller, Extern, FuncType, Linker, Val, ValType};

use crate::channel::{ChannelError, OpenChannel};
use crate::vfs::{self, filetype, Node, Vfs, VfsError};

/// The import module of WASI preview1.
pub const MODULE: &str = "wasi_snapshot_preview1";

/// The import `host::call(i32, i32, i32, i32) -> i32` of the Python image
/// (spec/sandbox-notes.md), served as a stub returning -1.
pub const HOST_MODULE: &str = "host";
/// See [`HOST_MODULE`].
pub const HOST_CALL: &str = "call";

/// WASI errno values (preview1 numbering, not Linux's).
pub mod errno {
    /// No error.
    pub const SUCCESS: u16 = 0;
    /// Permission denied.
    pub const ACCES: u16 = 2;
    /// Bad file descriptor.
    pub const BADF: u16 = 8;
    /// Disk quota exceeded.
    pub const DQUOT: u16 = 19;
    /// File exists.
    pub const EXIST: u16 = 20;
    /// Bad address.
    pub const FAULT: u16 = 21;
    /// Invalid argument.
    pub const INVAL: u16 = 28;
    /// I/O error.
    pub const IO: u16 = 29;
    /// Is a directory.
    pub const ISDIR: u16 = 31;
    /// Too many symbolic links.
    pub const LOOP: u16 = 32;
    /// Too many open files.
    pub const MFILE: u16 = 33;
    /// File name too long.
    pub const NAMETOOLONG: u16 = 37;
    /// No such file or directory.
    pub const NOENT: u16 = 44;
    /// No space left.
    pub const NOSPC: u16 = 51;
    /// Function not implemented.
    pub const NOSYS: u16 = 52;
    /// Not a directory.
    pub const NOTDIR: u16 = 54;
    /// Directory not empty.
    pub const NOTEMPTY: u16 = 55;
    /// Not supported.
    pub const NOTSUP: u16 = 58;
    /// Read-only file system.
    pub const ROFS: u16 = 69;
    /// Illegal seek.
    pub const SPIPE: u16 = 70;
}

type Errno = u16;

/// Most descriptors a guest may hold open at once.
pub const FD_LIMIT: usize = 1024;
/// Most bytes moved by one read call (a short read beyond it).
pub const READ_LIMIT: usize = 64 << 20;

const RIGHT_FD_READ: u64 = 1 << 1;
const RIGHT_FD_WRITE: u64 = 1 << 6;
const RIGHT_FD_READDIR: u64 = 1 << 14;
const ALL_RIGHTS: u64 = (1 << 30) - 1;
const OFLAG_CREAT: i32 = 1;
const OFLAG_DIRECTORY: i32 = 2;
const OFLAG_EXCL: i32 = 4;
const OFLAG_TRUNC: i32 = 8;
const FDFLAG_APPEND: i32 = 1;

/// `proc_exit(code)`: unwinds the guest; the engine reads the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("guest exited with code {0}")]
pub struct Exit(pub i32);

/// A host failure that ends the session (channel I/O): the exit state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Fatal(pub String);

#[derive(Debug, Clone)]
enum FdKind {
    Channel(usize),
    Dir(String),
    Mem(String),
    Tar {
        mount: usize,
        path: String,
        size: u64,
        mtime: i64,
    },
}

#[derive(Debug, Clone)]
struct Fd {
    kind: FdKind,
    pos: u64,
    read: bool,
    write: bool,
    append: bool,
    preopen: bool,
}

/// The per-session state the host functions work on (the store's data).
pub struct Ctx {
    /// argv, `argv[0]` first.
    pub args: Vec<String>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// Open channels in handle order.
    pub channels: Vec<OpenChannel>,
    /// The guest file system.
    pub vfs: Vfs,
    /// The `[time]` of the NVRAM: the guest's realtime clock starts there.
    pub clock_base: Option<i64>,
    /// When the session's time is over: host calls that wait (`poll_oneoff`
    /// sleeps) end there, since the epoch cannot interrupt them.
    pub deadline: Option<Instant>,
    /// Set when a host failure ended the session.
    pub fatal: Option<String>,
    /// Resource limits (memory, tables) for the store.
    pub limiter: Limiter,
    fds: Vec<Option<Fd>>,
    start: Instant,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("args", &self.args)
            .field("channels", &self.channels.len())
            .finish_non_exhaustive()
    }
}

/// Caps linear memory and table sizes; remembers a refusal so a later trap
/// can be reported as memory exhaustion.
#[derive(Debug, Clone, Default)]
pub struct Limiter {
    /// Bytes of linear memory allowed.
    pub memory: usize,
    /// Table elements allowed.
    pub table_elements: usize,
    /// A memory grow (or the initial size) was refused.
    pub memory_refused: bool,
    /// A table grow (or the initial size) was refused.
    pub table_refused: bool,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.memory;
        self.memory_refused |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.table_elements;
        self.table_refused |= !ok;
        Ok(ok)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        16
    }

    fn memories(&self) -> usize {
        1
    }
}

impl Ctx {
    /// A context over opened channels (handles 0–2 must be stdin, stdout,
    /// stderr) and a file system where they are already added.
    pub fn new(
        args: Vec<String>,
        env: Vec<(String, String)>,
        channels: Vec<OpenChannel>,
        vfs: Vfs,
        limiter: Limiter,
    ) -> Ctx {
        let mut fds = Vec::new();
        for (handle, (read, write)) in [(true, false), (false, true), (false, true)]
            .into_iter()
            .enumerate()
        {
            fds.push((handle < channels.len()).then_some(Fd {
                kind: FdKind::Channel(handle),
                pos: 0,
                read,
                write,
                append: false,
                preopen: false,
            }));
        }
        fds.push(Some(Fd {
            kind: FdKind::Dir("/".into()),
            pos: 0,
            read: true,
            write: false,
            append: false,
            preopen: true,
        }));
        Ctx {
            args,
            env,
            channels,
            vfs,
            clock_base: None,
            deadline: None,
            fatal: None,
            limiter,
            fds,
            start: Instant::now(),
        }
    }

    /// An empty context: what a store keeps once its session's context
    /// has been taken out to report on (the store is only dropped then).
    pub(crate) fn spent() -> Ctx {
        Ctx::new(
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vfs::new(0),
            Limiter::default(),
        )
    }

    fn fd(&mut self, fd: i32) -> Result<&mut Fd, Errno> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.fds.get_mut(i))
            .and_then(Option::as_mut)
            .ok_or(errno::BADF)
    }

    fn channel_error(&mut self, e: ChannelError) -> Errno {
        match e {
            ChannelError::Quota => errno::DQUOT,
            ChannelError::Invalid => errno::INVAL,
            ChannelError::Io(message) => {
                self.fatal.get_or_insert(message);
                errno::IO
            }
        }
    }

    fn seekable(&self, kind: &FdKind) -> bool {
        self.positioned(kind, true) || self.positioned(kind, false)
    }

    /// Whether reads (`reading`) or writes through `kind` use and move the
    /// descriptor's position; sequential channel directions ignore it.
    fn positioned(&self, kind: &FdKind, reading: bool) -> bool {
        match kind {
            FdKind::Channel(h) => self.channels.get(*h).is_some_and(|c| {
                let t = c.channel_type();
                !c.is_stream()
                    && if reading {
                        t.random_read()
                    } else {
                        t.random_write()
                    }
            }),
            FdKind::Dir(_) => false,
            FdKind::Mem(_) | FdKind::Tar { .. } => true,
        }
    }

    fn read(&mut self, fd: i32, len: usize, offset: Option<u64>) -> Result<Vec<u8>, Errno> {
        let f = self.fd(fd)?.clone();
        if !f.read {
            return Err(errno::BADF);
        }
        let at = offset.unwrap_or(f.pos);
        let mut buf = vec![0u8; len.min(READ_LIMIT)];
        let n = match &f.kind {
            FdKind::Channel(h) => {
                let c = self.channels.get_mut(*h).ok_or(errno::BADF)?;
                match c.pread(&mut buf, at) {
                    Ok(n) => n,
                    Err(e) => return Err(self.channel_error(e)),
                }
            }
            FdKind::Dir(_) => return Err(errno::ISDIR),
            FdKind::Mem(path) => self.vfs.mem_read(path, at, &mut buf).map_err(vfs_errno)?,
            FdKind::Tar { mount, path, .. } => self
                .vfs
                .read_tar(*mount, path, at, &mut buf)
                .map_err(vfs_errno)?,
        };
        buf.truncate(n);
        if offset.is_none() && self.positioned(&f.kind, true) {
            self.fd(fd)?.pos = at + n as u64;
        }
        Ok(buf)
    }

    fn write(&mut self, fd: i32, data: &[u8], offset: Option<u64>) -> Result<usize, Errno> {
        let f = self.fd(fd)?.clone();
        if !f.write {
            return Err(errno::BADF);
        }
        let mut at = offset.unwrap_or(f.pos);
        let n = match &f.kind {
            FdKind::Channel(h) => {
                let c = self.channels.get_mut(*h).ok_or(errno::BADF)?;
                match c.pwrite(data, at) {
                    Ok(n) => n,
                    Err(e) => return Err(self.channel_error(e)),
                }
            }
            FdKind::Dir(_) => return Err(errno::ISDIR),
            FdKind::Mem(path) => {
                if f.append && offset.is_none() {
                    at = self.vfs.mem_size(path).map_err(vfs_errno)?;
                }
                self.vfs.mem_write(path, at, data).map_err(vfs_errno)?
            }
            FdKind::Tar { .. } => return Err(errno::BADF),
        };
        if offset.is_none() && self.positioned(&f.kind, false) {
            self.fd(fd)?.pos = at + n as u64;
        }
        Ok(n)
    }

    fn size_of(&self, kind: &FdKind) -> u64 {
        match kind {
            FdKind::Channel(h) => self.channels.get(*h).map_or(0, OpenChannel::size),
            FdKind::Dir(_) => 0,
            FdKind::Mem(path) => self.vfs.mem_size(path).unwrap_or(0),
            FdKind::Tar { size, .. } => *size,
        }
    }

    fn filetype_of(&self, kind: &FdKind) -> u8 {
        match kind {
            FdKind::Channel(h) => self.vfs.channel_filetype(*h),
            FdKind::Dir(_) => filetype::DIRECTORY,
            FdKind::Mem(_) | FdKind::Tar { .. } => filetype::REGULAR_FILE,
        }
    }

    fn filestat(&self, kind: &FdKind, ino: u64) -> [u8; 64] {
        let mut st = [0u8; 64];
        let mtime = match kind {
            FdKind::Tar { mtime, .. } => u64::try_from(*mtime)
                .unwrap_or(0)
                .saturating_mul(1_000_000_000),
            _ => 0,
        };
        st[8..16].copy_from_slice(&ino.to_le_bytes());
        st[16] = self.filetype_of(kind);
        st[24..32].copy_from_slice(&1u64.to_le_bytes());
        st[32..40].copy_from_slice(&self.size_of(kind).to_le_bytes());
        for at in [40, 48, 56] {
            st[at..at + 8].copy_from_slice(&mtime.to_le_bytes());
        }
        st
    }

    fn dir_path(&mut self, fd: i32) -> Result<String, Errno> {
        match &self.fd(fd)?.kind {
            FdKind::Dir(p) => Ok(p.clone()),
            _ => Err(errno::NOTDIR),
        }
    }

    fn add_fd(&mut self, fd: Fd) -> Result<i32, Errno> {
        let slot = match self.fds.iter().position(Option::is_none) {
            Some(i) => i,
            None if self.fds.len() < FD_LIMIT => {
                self.fds.push(None);
                self.fds.len() - 1
            }
            None => return Err(errno::MFILE),
        };
        self.fds[slot] = Some(fd);
        i32::try_from(slot).map_err(|_| errno::MFILE)
    }

    /// Resolves a lookup into an fd kind.
    fn kind_for(&self, path: &str, node: Node) -> FdKind {
        match node {
            Node::Channel(h) => FdKind::Channel(h),
            Node::Dir => FdKind::Dir(path.to_string()),
            Node::MemFile => FdKind::Mem(path.to_string()),
            Node::TarFile {
                mount,
                path,
                size,
                mtime,
            } => FdKind::Tar {
                mount,
                path,
                size,
                mtime,
            },
        }
    }
}

fn vfs_errno(e: VfsError) -> Errno {
    match e {
        VfsError::NotFound => errno::NOENT,
        VfsError::NotADirectory => errno::NOTDIR,
        VfsError::IsADirectory => errno::ISDIR,
        VfsError::Loop => errno::LOOP,
        VfsError::Exists => errno::EXIST,
        VfsError::ReadOnly => errno::ROFS,
        VfsError::NoSpace => errno::NOSPC,
        VfsError::NameTooLong => errno::NAMETOOLONG,
        VfsError::NotEmpty => errno::NOTEMPTY,
    }
}

// ---- guest memory, bounds-checked ----

fn range(mem: &[u8], ptr: i32, len: u64) -> Result<std::ops::Range<usize>, Errno> {
    let start = ptr as u32 as u64;
    let end = start.checked_add(len).ok_or(errno::FAULT)?;
    if end > mem.len() as u64 {
        return Err(errno::FAULT);
    }
    Ok(start as usize..end as usize)
}

fn bytes(mem: &[u8], ptr: i32, len: u64) -> Result<&[u8], Errno> {
    Ok(&mem[range(mem, ptr, len)?])
}

fn bytes_mut(mem: &mut [u8], ptr: i32, len: u64) -> Result<&mut [u8], Errno> {
    let r = range(mem, ptr, len)?;
    Ok(&mut mem[r])
}

fn put(mem: &mut [u8], ptr: i32, data: &[u8]) -> Result<(), Errno> {
    bytes_mut(mem, ptr, data.len() as u64)?.copy_from_slice(data);
    Ok(())
}

fn put_u32(mem: &mut [u8], ptr: i32, v: u32) -> Result<(), Errno> {
    put(mem, ptr, &v.to_le_bytes())
}

fn put_u64(mem: &mut [u8], ptr: i32, v: u64) -> Result<(), Errno> {
    put(mem, ptr, &v.to_le_bytes())
}

fn path_str(mem: &[u8], ptr: i32, len: i32) -> Result<String, Errno> {
    let raw = bytes(mem, ptr, len as u32 as u64)?;
    if raw.len() > vfs::PATH_LIMIT {
        return Err(errno::NAMETOOLONG);
    }
    std::str::from_utf8(raw)
        .map(str::to_string)
        .map_err(|_| errno::INVAL)
}

/// The (pointer, length) pairs of an iovec array, checked.
fn iovecs(mem: &[u8], iovs: i32, count: i32) -> Result<Vec<(i32, u64)>, Errno> {
    let table = bytes(mem, iovs, (count as u32 as u64) * 8)?;
    let mut out = Vec::with_capacity(table.len() / 8);
    for entry in table.chunks_exact(8) {
        let ptr = i32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]);
        let len = u32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]) as u64;
        range(mem, ptr, len)?;
        out.push((ptr, len));
    }
    Ok(out)
}

fn gather(mem: &[u8], iovs: i32, count: i32) -> Result<Vec<u8>, Errno> {
    let mut data = Vec::new();
    for (ptr, len) in iovecs(mem, iovs, count)? {
        data.extend_from_slice(bytes(mem, ptr, len)?);
    }
    Ok(data)
}

fn scatter(mem: &mut [u8], iovs: &[(i32, u64)], data: &[u8]) -> Result<(), Errno> {
    let mut rest = data;
    for &(ptr, len) in iovs {
        let n = (len as usize).min(rest.len());
        put(mem, ptr, &rest[..n])?;
        rest = &rest[n..];
    }
    Ok(())
}

// ---- the functions ----

type Res = Result<(), Errno>;

fn strings_sizes(mem: &mut [u8], list: &[String], count_ptr: i32, size_ptr: i32) -> Res {
    let size: usize = list.iter().map(|s| s.len() + 1).sum();
    put_u32(
        mem,
        count_ptr,
        u32::try_from(list.len()).map_err(|_| errno::INVAL)?,
    )?;
    put_u32(
        mem,
        size_ptr,
        u32::try_from(size).map_err(|_| errno::INVAL)?,
    )
}

fn strings_get(mem: &mut [u8], list: &[String], ptrs: i32, buf: i32) -> Res {
    let mut at = buf as u32;
    for (i, s) in list.iter().enumerate() {
        put_u32(mem, ptrs.wrapping_add((i * 4) as i32), at)?;
        put(mem, at as i32, s.as_bytes())?;
        put(mem, at.wrapping_add(s.len() as u32) as i32, &[0])?;
        at = at.wrapping_add(s.len() as u32 + 1);
    }
    Ok(())
}

fn env_strings(ctx: &Ctx) -> Vec<String> {
    ctx.env.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

fn fd_read(
    mem: &mut [u8],
    ctx: &mut Ctx,
    fd: i32,
    iovs: i32,
    count: i32,
    offset: Option<u64>,
    nread: i32,
) -> Res {
    let list = iovecs(mem, iovs, count)?;
    range(mem, nread, 4)?;
    let total: u64 = list.iter().map(|(_, l)| l).sum();
    let data = ctx.read(fd, usize::try_from(total).unwrap_or(usize::MAX), offset)?;
    scatter(mem, &list, &data)?;
    put_u32(mem, nread, data.len() as u32)
}

fn fd_write(
    mem: &mut [u8],
    ctx: &mut Ctx,
    fd: i32,
    iovs: i32,
    count: i32,
    offset: Option<u64>,
    nwritten: i32,
) -> Res {
    let data = gather(mem, iovs, count)?;
    range(mem, nwritten, 4)?;
    let n = ctx.write(fd, &data, offset)?;
    put_u32(mem, nwritten, n as u32)
}

fn fd_seek(mem: &mut [u8], ctx: &mut Ctx, fd: i32, offset: i64, whence: i32, out: i32) -> Res {
    let f = ctx.fd(fd)?.clone();
    if !ctx.seekable(&f.kind) {
        return Err(if matches!(f.kind, FdKind::Dir(_)) {
            errno::BADF
        } else {
            errno::SPIPE
        });
    }
    let base = match whence {
        0 => 0,
        1 => f.pos,
        2 => ctx.size_of(&f.kind),
        _ => return Err(errno::INVAL),
    };
    let new = i64::try_from(base)
        .ok()
        .and_then(|b| b.checked_add(offset))
        .filter(|n| *n >= 0)
        .ok_or(errno::INVAL)? as u64;
    range(mem, out, 8)?;
    ctx.fd(fd)?.pos = new;
    put_u64(mem, out, new)
}

fn fd_fdstat_get(mem: &mut [u8], ctx: &mut Ctx, fd: i32, out: i32) -> Res {
    let f = ctx.fd(fd)?.clone();
    let mut st = [0u8; 24];
    st[0] = ctx.filetype_of(&f.kind);
    st[2] = u8::from(f.append);
    st[8..16].copy_from_slice(&ALL_RIGHTS.to_le_bytes());
    st[16..24].copy_from_slice(&ALL_RIGHTS.to_le_bytes());
    put(mem, out, &st)
}

fn fd_filestat_get(mem: &mut [u8], ctx: &mut Ctx, fd: i32, out: i32) -> Res {
    let f = ctx.fd(fd)?.clone();
    let st = ctx.filestat(&f.kind, fd as u64 + 1);
    put(mem, out, &st)
}

fn fd_readdir(
    mem: &mut [u8],
    ctx: &mut Ctx,
    fd: i32,
    buf: i32,
    len: i32,
    cookie: u64,
    used: i32,
) -> Res {
    let path = ctx.dir_path(fd)?;
    let mut entries = vec![
        (".".to_string(), filetype::DIRECTORY),
        ("..".to_string(), filetype::DIRECTORY),
    ];
    entries.extend(ctx.vfs.list_dir(&path).map_err(vfs_errno)?);
    let mut out = Vec::new();
    let want = len as u32 as usize;
    for (i, (name, t)) in entries
        .iter()
        .enumerate()
        .skip(usize::try_from(cookie).unwrap_or(usize::MAX))
    {
        if out.len() >= want {
            break;
        }
        out.extend_from_slice(&(i as u64 + 1).to_le_bytes());
        out.extend_from_slice(&(i as u64 + 1).to_le_bytes());
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(&[*t, 0, 0, 0]);
        out.extend_from_slice(name.as_bytes());
    }
    out.truncate(want);
    range(mem, used, 4)?;
    put(mem, buf, &out)?;
    put_u32(mem, used, out.len() as u32)
}

#[allow(clippy::too_many_arguments)]
fn path_open(
    mem: &mut [u8],
    ctx: &mut Ctx,
    dirfd: i32,
    path_ptr: i32,
    path_len: i32,
    oflags: i32,
    rights: u64,
    fdflags: i32,
    out: i32,
) -> Res {
    let base = ctx.dir_path(dirfd)?;
    let path = vfs::normalize(&base, &path_str(mem, path_ptr, path_len)?).map_err(vfs_errno)?;
    range(mem, out, 4)?;
    let write = rights & RIGHT_FD_WRITE != 0;
    let read = rights & (RIGHT_FD_READ | RIGHT_FD_READDIR) != 0;
    let found = ctx.vfs.lookup(&path);
    let node = match found {
        Ok(_) if oflags & OFLAG_CREAT != 0 && oflags & OFLAG_EXCL != 0 => return Err(errno::EXIST),
        Ok(Node::MemFile) if oflags & OFLAG_TRUNC != 0 => {
            ctx.vfs.truncate(&path, 0).map_err(vfs_errno)?;
            Node::MemFile
        }
        Ok(node) => node,
        Err(VfsError::NotFound) if oflags & OFLAG_CREAT != 0 => {
            ctx.vfs.create(&path, true, false).map_err(vfs_errno)?;
            Node::MemFile
        }
        Err(e) => return Err(vfs_errno(e)),
    };
    match &node {
        Node::Dir if write => return Err(errno::ISDIR),
        Node::Dir => {}
        _ if oflags & OFLAG_DIRECTORY != 0 => return Err(errno::NOTDIR),
        Node::TarFile { .. } if write => return Err(errno::ROFS),
        Node::Channel(h) => {
            let limits = ctx.channels.get(*h).ok_or(errno::NOENT)?.limits();
            if (write && !limits.writable()) || (read && !write && !limits.readable()) {
                return Err(errno::ACCES);
            }
        }
        _ => {}
    }
    let fd = Fd {
        kind: ctx.kind_for(&path, node),
        pos: 0,
        read,
        write,
        append: fdflags & FDFLAG_APPEND != 0,
        preopen: false,
    };
    let n = ctx.add_fd(fd)?;
    put_u32(mem, out, n as u32)
}

fn resolve_at(mem: &[u8], ctx: &mut Ctx, dirfd: i32, ptr: i32, len: i32) -> Result<String, Errno> {
    let base = ctx.dir_path(dirfd)?;
    vfs::normalize(&base, &path_str(mem, ptr, len)?).map_err(vfs_errno)
}

fn path_filestat_get(
    mem: &mut [u8],
    ctx: &mut Ctx,
    dirfd: i32,
    ptr: i32,
    len: i32,
    out: i32,
) -> Res {
    let path = resolve_at(mem, ctx, dirfd, ptr, len)?;
    let node = ctx.vfs.lookup(&path).map_err(vfs_errno)?;
    let kind = ctx.kind_for(&path, node);
    let ino = path.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ b as u64).wrapping_mul(1099511628211)
    });
    let st = ctx.filestat(&kind, ino);
    put(mem, out, &st)
}

/// The time of clock `id` in nanoseconds: realtime (0) from the NVRAM's
/// `[time]` plus the session's elapsed time, or the host's; monotonic and
/// the CPU-time clocks (1–3) the session's elapsed time.
fn clock_now(ctx: &Ctx, id: u32) -> Result<u64, Errno> {
    let elapsed = u64::try_from(ctx.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
    Ok(match id {
        0 => match ctx.clock_base {
            Some(secs) => u64::try_from(secs)
                .unwrap_or(0)
                .saturating_mul(1_000_000_000)
                .saturating_add(elapsed),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        },
        1..=3 => elapsed,
        _ => return Err(errno::INVAL),
    })
}

fn clock_time_get(mem: &mut [u8], ctx: &mut Ctx, id: i32, out: i32) -> Res {
    let now = clock_now(ctx, id as u32)?;
    put_u64(mem, out, now)
}

/// Size of a preview1 `subscription` and of an `event`.
const SUBSCRIPTION_SIZE: u64 = 48;
const EVENT_SIZE: u64 = 32;
/// `eventtype`: clock, fd_read, fd_write.
const EVENT_CLOCK: u8 = 0;
const EVENT_FD_READ: u8 = 1;
const EVENT_FD_WRITE: u8 = 2;
/// `subclockflags`: the timeout is an absolute time of the clock.
const SUBCLOCK_ABSTIME: u16 = 1;

/// One event `poll_oneoff` reports.
struct Event {
    userdata: u64,
    error: Errno,
    kind: u8,
}

/// How `poll_oneoff` ended: events to report, or the session's time ran
/// out while it slept (the session ends as a timeout).
enum Polled {
    Events(Vec<Event>),
    TimedOut,
}

/// `poll_oneoff`, bounded by the session: descriptor subscriptions are
/// ready at once (channels and files never make a reader wait for
/// readiness: a read blocks or returns), so with any of them the call
/// returns without sleeping; otherwise it sleeps until the earliest clock
/// subscription (relative, or absolute on its clock) and reports the
/// clocks due by then. A sleep past the session's deadline ends at the
/// deadline as a timeout, since the epoch cannot interrupt a host call.
/// This is what `time.sleep` and `select`/`poll` timeouts of wasi-libc use.
fn poll_oneoff(mem: &[u8], ctx: &Ctx, subs: i32, n: u32) -> Result<Polled, Errno> {
    if n == 0 {
        return Err(errno::INVAL);
    }
    let table = bytes(mem, subs, u64::from(n) * SUBSCRIPTION_SIZE)?;
    let u64_at = |b: &[u8], at: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(x)
    };
    let u32_at = |b: &[u8], at: usize| {
        let mut x = [0u8; 4];
        x.copy_from_slice(&b[at..at + 4]);
        u32::from_le_bytes(x)
    };
    let mut ready = Vec::new();
    // (nanoseconds from now, userdata) of each clock subscription.
    let mut clocks: Vec<(u64, u64)> = Vec::new();
    for sub in table.chunks_exact(SUBSCRIPTION_SIZE as usize) {
        let userdata = u64_at(sub, 0);
        match sub[8] {
            EVENT_CLOCK => {
                let id = u32_at(sub, 16);
                let timeout = u64_at(sub, 24);
                let flags = u16::from_le_bytes([sub[40], sub[41]]);
                match clock_now(ctx, id) {
                    Ok(now) if flags & SUBCLOCK_ABSTIME != 0 => {
                        clocks.push((timeout.saturating_sub(now), userdata))
                    }
                    Ok(_) => clocks.push((timeout, userdata)),
                    Err(error) => ready.push(Event {
                        userdata,
                        error,
                        kind: EVENT_CLOCK,
                    }),
                }
            }
            kind @ (EVENT_FD_READ | EVENT_FD_WRITE) => {
                let fd = usize::try_from(u32_at(sub, 16)).unwrap_or(usize::MAX);
                let open = ctx.fds.get(fd).is_some_and(Option::is_some);
                ready.push(Event {
                    userdata,
                    error: if open { errno::SUCCESS } else { errno::BADF },
                    kind,
                });
            }
            _ => return Err(errno::INVAL),
        }
    }
    if !ready.is_empty() {
        return Ok(Polled::Events(ready));
    }
    let Some(&(wait, _)) = clocks.iter().min_by_key(|(wait, _)| *wait) else {
        return Err(errno::INVAL);
    };
    let until = Instant::now().checked_add(std::time::Duration::from_nanos(wait));
    let timed_out = match (until, ctx.deadline) {
        (Some(until), Some(deadline)) => until > deadline,
        (None, Some(_)) => true,
        (_, None) => false,
    };
    let end = if timed_out { ctx.deadline } else { until };
    if let Some(end) = end {
        let left = end.saturating_duration_since(Instant::now());
        if !left.is_zero() {
            std::thread::sleep(left);
        }
    }
    if timed_out {
        return Ok(Polled::TimedOut);
    }
    Ok(Polled::Events(
        clocks
            .into_iter()
            .filter(|(w, _)| *w <= wait)
            .map(|(_, userdata)| Event {
                userdata,
                error: errno::SUCCESS,
                kind: EVENT_CLOCK,
            })
            .collect(),
    ))
}

/// Writes `events` at `out` (32 bytes each, `fd_readwrite` zeroed) and
/// their number at `nevents`.
fn put_events(mem: &mut [u8], events: &[Event], out: i32, nevents: i32) -> Res {
    let len = events.len() as u64 * EVENT_SIZE;
    let area = bytes_mut(mem, out, len)?;
    for (slot, e) in area.chunks_exact_mut(EVENT_SIZE as usize).zip(events) {
        slot.fill(0);
        slot[..8].copy_from_slice(&e.userdata.to_le_bytes());
        slot[8..10].copy_from_slice(&e.error.to_le_bytes());
        slot[10] = e.kind;
    }
    put_u32(
        mem,
        nevents,
        u32::try_from(events.len()).unwrap_or(u32::MAX),
    )
}

fn memory_of(c: &mut Caller<'_, Ctx>) -> Option<wasmtime::Memory> {
    match c.get_export("memory") {
        Some(Extern::Memory(m)) => Some(m),
        _ => None,
    }
}

/// Runs `f` on guest memory and the context, then turns the outcome into
/// the WASI result (or a trap when a host failure ended the session).
fn call(
    c: &mut Caller<'_, Ctx>,
    f: impl FnOnce(&mut [u8], &mut Ctx) -> Res,
) -> wasmtime::Result<i32> {
    let result = match memory_of(c) {
        Some(mem) => {
            let (data, ctx) = mem.data_and_store_mut(&mut *c);
            f(data, ctx)
        }
        None => Err(errno::FAULT),
    };
    if let Some(message) = &c.data().fatal {
        return Err(wasmtime::Error::new(Fatal(message.clone())));
    }
    Ok(i32::from(result.err().unwrap_or(errno::SUCCESS)))
}

/// The preview1 functions served for real; any other preview1 import is
/// linked by [`link_unknown`] as ENOSYS.
pub const IMPLEMENTED: &[&str] = &[
    "args_get",
    "args_sizes_get",
    "environ_get",
    "environ_sizes_get",
    "clock_res_get",
    "clock_time_get",
    "fd_close",
    "fd_fdstat_get",
    "fd_fdstat_set_flags",
    "fd_filestat_get",
    "fd_pread",
    "fd_prestat_dir_name",
    "fd_prestat_get",
    "fd_pwrite",
    "fd_read",
    "fd_readdir",
    "fd_seek",
    "fd_tell",
    "fd_write",
    "path_create_directory",
    "path_filestat_get",
    "path_open",
    "path_remove_directory",
    "path_unlink_file",
    "poll_oneoff",
    "proc_exit",
    "random_get",
    "sched_yield",
];

/// Adds every function of [`IMPLEMENTED`] to `linker`.
pub fn add_to_linker(linker: &mut Linker<Ctx>) -> wasmtime::Result<()> {
    let m = MODULE;
    linker.func_wrap(
        m,
        "args_sizes_get",
        |mut c: Caller<'_, Ctx>, n: i32, size: i32| {
            call(&mut c, |mem, ctx| strings_sizes(mem, &ctx.args, n, size))
        },
    )?;
    linker.func_wrap(
        m,
        "args_get",
        |mut c: Caller<'_, Ctx>, ptrs: i32, buf: i32| {
            call(&mut c, |mem, ctx| strings_get(mem, &ctx.args, ptrs, buf))
        },
    )?;
    linker.func_wrap(
        m,
        "environ_sizes_get",
        |mut c: Caller<'_, Ctx>, n: i32, size: i32| {
            call(&mut c, |mem, ctx| {
                strings_sizes(mem, &env_strings(ctx), n, size)
            })
        },
    )?;
    linker.func_wrap(
        m,
        "environ_get",
        |mut c: Caller<'_, Ctx>, ptrs: i32, buf: i32| {
            call(&mut c, |mem, ctx| {
                strings_get(mem, &env_strings(ctx), ptrs, buf)
            })
        },
    )?;
    linker.func_wrap(
        m,
        "clock_res_get",
        |mut c: Caller<'_, Ctx>, id: i32, out: i32| {
            call(&mut c, |mem, _| {
                if (0..=3).contains(&id) {
                    put_u64(mem, out, 1_000)
                } else {
                    Err(errno::INVAL)
                }
            })
        },
    )?;
    linker.func_wrap(
        m,
        "clock_time_get",
        |mut c: Caller<'_, Ctx>, id: i32, _precision: i64, out: i32| {
            call(&mut c, |mem, ctx| clock_time_get(mem, ctx, id, out))
        },
    )?;
    linker.func_wrap(m, "fd_close", |mut c: Caller<'_, Ctx>, fd: i32| {
        call(&mut c, |_, ctx| {
            ctx.fd(fd)?;
            ctx.fds[fd as usize] = None;
            Ok(())
        })
    })?;
    linker.func_wrap(
        m,
        "fd_fdstat_get",
        |mut c: Caller<'_, Ctx>, fd: i32, out: i32| {
            call(&mut c, |mem, ctx| fd_fdstat_get(mem, ctx, fd, out))
        },
    )?;
    linker.func_wrap(
        m,
        "fd_fdstat_set_flags",
        |mut c: Caller<'_, Ctx>, fd: i32, flags: i32| {
            call(&mut c, |_, ctx| {
                let f = ctx.fd(fd)?;
                // Only (un)setting append on files of the writable layer.
                match (&f.kind, flags & !FDFLAG_APPEND) {
                    (FdKind::Mem(_), 0) => {
                        f.append = flags & FDFLAG_APPEND != 0;
                        Ok(())
                    }
                    _ if flags == i32::from(f.append) => Ok(()),
                    _ => Err(errno::NOTSUP),
                }
            })
        },
    )?;
    linker.func_wrap(
        m,
        "fd_filestat_get",
        |mut c: Caller<'_, Ctx>, fd: i32, out: i32| {
            call(&mut c, |mem, ctx| fd_filestat_get(mem, ctx, fd, out))
        },
    )?;
    linker.func_wrap(
        m,
        "fd_pread",
        |mut c: Caller<'_, Ctx>, fd: i32, iovs: i32, n: i32, offset: i64, out: i32| {
            call(&mut c, |mem, ctx| {
                let offset = u64::try_from(offset).map_err(|_| errno::INVAL)?;
                fd_read(mem, ctx, fd, iovs, n, Some(offset), out)
            })
        },
    )?;
    linker.func_wrap(
        m,
        "fd_pwrite",
        |mut c: Caller<'_, Ctx>, fd: i32, iovs: i32, n: i32, offset: i64, out: i32| {
            call(&mut c, |mem, ctx| {
                let offset = u64::try_from(offset).map_err(|_| errno::INVAL)?;
                fd_write(mem, ctx, fd, iovs, n, Some(offset), out)
            })
        },
    )?;
    linker.func_wrap(
        m,
        "fd_read",
        |mut c: Caller<'_, Ctx>, fd: i32, iovs: i32, n: i32, out: i32| {
            call(&mut c, |mem, ctx| fd_read(mem, ctx, fd, iovs, n, None, out))
        },
    )?;
    linker.func_wrap(
        m,
        "fd_write",
        |mut c: Caller<'_, Ctx>, fd: i32, iovs: i32, n: i32, out: i32| {
            call(&mut c, |mem, ctx| {
                fd_write(mem, ctx, fd, iovs, n, None, out)
            })
        },
    )?;
    linker.func_wrap(
        m,
        "fd_prestat_get",
        |mut c: Caller<'_, Ctx>, fd: i32, out: i32| {
            call(&mut c, |mem, ctx| {
                if !ctx.fd(fd)?.preopen {
                    return Err(errno::BADF);
                }
                put(mem, out, &[0, 0, 0, 0, 1, 0, 0, 0])
            })
        },
    )?;
    linker.func_wrap(
        m,
        "fd_prestat_dir_name",
        |mut c: Caller<'_, Ctx>, fd: i32, buf: i32, len: i32| {
            call(&mut c, |mem, ctx| {
                if !ctx.fd(fd)?.preopen {
                    return Err(errno::BADF);
                }
                if len < 1 {
                    return Err(errno::INVAL);
                }
                put(mem, buf, b"/")
            })
        },
    )?;
    linker.func_wrap(
        m,
        "fd_readdir",
        |mut c: Caller<'_, Ctx>, fd: i32, buf: i32, len: i32, cookie: i64, out: i32| {
            call(&mut c, |mem, ctx| {
                fd_readdir(mem, ctx, fd, buf, len, cookie as u64, out)
            })
        },
    )?;
    linker.func_wrap(
        m,
        "fd_seek",
        |mut c: Caller<'_, Ctx>, fd: i32, offset: i64, whence: i32, out: i32| {
            call(&mut c, |mem, ctx| {
                fd_seek(mem, ctx, fd, offset, whence, out)
            })
        },
    )?;
    linker.func_wrap(m, "fd_tell", |mut c: Caller<'_, Ctx>, fd: i32, out: i32| {
        call(&mut c, |mem, ctx| fd_seek(mem, ctx, fd, 0, 1, out))
    })?;
    linker.func_wrap(
        m,
        "path_open",
        |mut c: Caller<'_, Ctx>,
         fd: i32,
         _dirflags: i32,
         ptr: i32,
         len: i32,
         oflags: i32,
         rights: i64,
         _inheriting: i64,
         fdflags: i32,
         out: i32| {
            call(&mut c, |mem, ctx| {
                path_open(mem, ctx, fd, ptr, len, oflags, rights as u64, fdflags, out)
            })
        },
    )?;
    linker.func_wrap(
        m,
        "path_filestat_get",
        |mut c: Caller<'_, Ctx>, fd: i32, _flags: i32, ptr: i32, len: i32, out: i32| {
            call(&mut c, |mem, ctx| {
                path_filestat_get(mem, ctx, fd, ptr, len, out)
            })
        },
    )?;
    linker.func_wrap(
        m,
        "path_create_directory",
        |mut c: Caller<'_, Ctx>, fd: i32, ptr: i32, len: i32| {
            call(&mut c, |mem, ctx| {
                let path = resolve_at(mem, ctx, fd, ptr, len)?;
                ctx.vfs.mkdir(&path).map_err(vfs_errno)
            })
        },
    )?;
    linker.func_wrap(
        m,
        "path_unlink_file",
        |mut c: Caller<'_, Ctx>, fd: i32, ptr: i32, len: i32| {
            call(&mut c, |mem, ctx| {
                let path = resolve_at(mem, ctx, fd, ptr, len)?;
                ctx.vfs.unlink(&path).map_err(vfs_errno)
            })
        },
    )?;
    linker.func_wrap(
        m,
        "path_remove_directory",
        |mut c: Caller<'_, Ctx>, fd: i32, ptr: i32, len: i32| {
            call(&mut c, |mem, ctx| {
                let path = resolve_at(mem, ctx, fd, ptr, len)?;
                ctx.vfs.rmdir(&path).map_err(vfs_errno)
            })
        },
    )?;
    linker.func_wrap(
        m,
        "random_get",
        |mut c: Caller<'_, Ctx>, buf: i32, len: i32| {
            call(&mut c, |mem, _| {
                rand::rngs::OsRng.fill_bytes(bytes_mut(mem, buf, len as u32 as u64)?);
                Ok(())
            })
        },
    )?;
    linker.func_wrap(m, "sched_yield", || -> i32 { 0 })?;
    linker.func_wrap(
        m,
        "poll_oneoff",
        |mut c: Caller<'_, Ctx>, subs: i32, out: i32, n: i32, nevents: i32| {
            let mut timed_out = false;
            let result = call(&mut c, |mem, ctx| {
                match poll_oneoff(mem, ctx, subs, n as u32)? {
                    Polled::Events(events) => put_events(mem, &events, out, nevents),
                    Polled::TimedOut => {
                        timed_out = true;
                        Ok(())
                    }
                }
            });
            if timed_out {
                // As if the epoch had trapped the guest: a session timeout.
                return Err(wasmtime::Error::new(wasmtime::Trap::Interrupt));
            }
            result
        },
    )?;
    // The Python image's one non-WASI import; -1 means "no host service".
    linker.func_wrap(
        HOST_MODULE,
        HOST_CALL,
        |_: i32, _: i32, _: i32, _: i32| -> i32 { -1 },
    )?;
    linker.func_wrap(m, "proc_exit", |code: i32| -> wasmtime::Result<()> {
        Err(wasmtime::Error::new(Exit(code)))
    })?;
    Ok(())
}

/// Links an import of [`MODULE`] we do not serve as a function of the type
/// the module declares that returns ENOSYS (52).
pub fn link_unknown(linker: &mut Linker<Ctx>, name: &str, ty: FuncType) -> wasmtime::Result<()> {
    let values: Vec<Val> = ty
        .results()
        .map(|t| match t {
            ValType::I64 => Val::I64(i64::from(errno::NOSYS)),
            ValType::F32 => Val::F32(0),
            ValType::F64 => Val::F64(0),
            _ => Val::I32(i32::from(errno::NOSYS)),
        })
        .collect();
    linker.func_new(MODULE, name, ty, move |_, _, results| {
        for (r, v) in results.iter_mut().zip(&values) {
            *r = *v;
        }
        Ok(())
    })?;
    Ok(())
}

/// Whether every result of `ty` is a number (ENOSYS stubs can fill them).
pub fn stub_friendly(ty: &FuncType) -> bool {
    ty.results()
        .all(|t| matches!(t, ValType::I32 | ValType::I64 | ValType::F32 | ValType::F64))
}
