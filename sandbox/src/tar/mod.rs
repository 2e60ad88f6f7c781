//! Read-only tar images (ustar, GNU and pax headers) indexed in place: path →
//! (offset, size, mode, kind), for the VFS to mount without unpacking.
//!
//! [`TarImage::new`] walks the archive once over any byte storage (`Vec<u8>`,
//! or [`ImageBytes`]: a read-only memory map of the channel's file or owned
//! bytes) and builds an index; file contents are never copied, and nothing is
//! allocated in proportion to a *declared* size: every size is checked
//! against the bytes actually present first.
//!
//! The `tar` crate reads the archive: headers, checksums, numeric fields, the
//! ustar prefix, GNU `L`/`K` long names and pax `path`/`linkpath`/`size`
//! records, and where each member's data start (`raw_file_position`, an
//! offset into the bytes themselves: the crate seeks over data, it never
//! reads them). What this module adds are our refusal rules, checked on
//! every member the crate yields, and the index.
//!
//! The image is refused, with an error naming the member and its byte offset,
//! when a member:
//! - has an absolute path or a `..` component, a NUL or non-UTF-8 bytes in
//!   its path, or a path longer than [`PATH_LIMIT`];
//! - is a symbolic link whose target is absolute or climbs above the image
//!   root (checked lexically from the link's directory);
//! - is a hard link to anything but an earlier regular file of the image (it
//!   then shares that file's data);
//! - declares more data than the archive holds (a base-256 size wider than
//!   64 bits included: the crate would keep only its low 8 bytes), or fails
//!   its header checksum, or has a numeric field that is not a number
//!   (blank ones included);
//! - follows a GNU long-name or pax header larger than
//!   [`EXTENDED_HEADER_LIMIT`], or a pax header with a malformed record;
//! - is a device, FIFO, sparse or multi-volume member, or of unknown type;
//! - would live under a non-directory, or replace a non-empty directory;
//!
//! and when the archive ends without an end-of-archive (zero) block, or
//! anything else the crate refuses (two long names for one member,
//! extension headers with no member after them) — named as
//! [`TarErrorKind::Malformed`] with the crate's words.
//!
//! Duplicate members: the last one wins (as when tar extracts); a directory
//! entry repeated keeps its children. Directories implied by member paths
//! exist with mode 0755 and mtime 0. pax global headers and volume labels
//! are skipped. A GNU long name wins over a pax `path` (the crate's order).
//!
//! The crate reads a GNU long-name or pax header's body whole into memory
//! before it yields the member it names (a 64 MiB long name cost 70-90 ms
//! and 64 MiB of heap before it was refused), so the extension headers
//! ahead are checked here before each step of the crate's iterator. See
//! `sandbox/examples/tar_index.rs` for the figures.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::io;

mod bytes;
#[cfg(test)]
mod tests;
mod write;

pub use bytes::ImageBytes;
#[cfg(test)]
use write::USTAR_SIZE_MAX;
pub use write::{pack, write_end, write_file_header, write_file_padding, PackMember};

/// Tar block size.
pub const BLOCK: usize = 512;
/// Longest member path or link target accepted.
pub const PATH_LIMIT: usize = 4096;
/// Largest GNU long-name or pax extended header accepted.
pub const EXTENDED_HEADER_LIMIT: u64 = 1 << 20;
/// Symbolic links followed in one lookup before giving up (Linux's ELOOP limit).
pub const LINK_HOPS_LIMIT: usize = 40;
/// Mode of directories that only exist because a member path implies them.
pub const IMPLIED_DIR_MODE: u32 = 0o755;

/// What an index entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file (hard links resolve to one).
    File,
    /// A directory.
    Directory,
    /// A symbolic link with its target as written (relative, confined).
    Symlink(String),
}

/// One path of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// File, directory or symlink.
    pub kind: EntryKind,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Bytes of data (files); 0 for directories; target length for symlinks.
    pub size: u64,
    /// Where the data start in the image (files; 0 otherwise).
    pub offset: u64,
}

impl Entry {
    fn directory(mode: u32, mtime: i64) -> Self {
        Entry {
            kind: EntryKind::Directory,
            mode,
            mtime,
            size: 0,
            offset: 0,
        }
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == EntryKind::Directory
    }
}

/// Why an image was refused; `Display` names the member and its offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarError {
    /// Byte offset of the header at fault.
    pub offset: u64,
    /// The member path as far as it was known.
    pub member: Option<String>,
    /// What is wrong.
    pub kind: TarErrorKind,
}

impl fmt::Display for TarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.member {
            Some(m) => write!(f, "tar member '{m}' at byte {}: {}", self.offset, self.kind),
            None => write!(f, "tar header at byte {}: {}", self.offset, self.kind),
        }
    }
}

impl std::error::Error for TarError {}

/// The reasons an image is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TarErrorKind {
    /// Fewer than 512 bytes where a header should be, or nothing after the
    /// last member: the archive was cut short.
    #[error("truncated archive: no end-of-archive block")]
    Truncated,
    /// The header checksum does not match its bytes.
    #[error("bad header checksum (stored {}, computed {computed})", show_stored(.stored))]
    BadChecksum {
        /// The value in the header (`None` if unreadable).
        stored: Option<u64>,
        /// The unsigned sum of the header bytes.
        computed: u64,
    },
    /// A numeric header field that is not octal (or base-256) or overflows.
    #[error("malformed {0} field")]
    BadNumber(&'static str),
    /// The member claims more data than the archive has left.
    #[error("declared size {size} exceeds the {available} bytes left in the archive")]
    SizeBeyondEnd {
        /// Declared data size.
        size: u64,
        /// Bytes after the header.
        available: u64,
    },
    /// A GNU long name or pax header larger than [`EXTENDED_HEADER_LIMIT`].
    #[error("extended header of {0} bytes is too large")]
    ExtendedHeaderTooLarge(u64),
    /// A pax record that does not read as `<len> <key>=<value>\n`.
    #[error("malformed pax extended header")]
    BadPax,
    /// The path starts with `/`.
    #[error("absolute path")]
    AbsolutePath,
    /// The path has a `..` component.
    #[error("path with a '..' component")]
    DotDot,
    /// The path is not UTF-8.
    #[error("path is not UTF-8")]
    NotUtf8,
    /// The path holds a NUL byte.
    #[error("path holds a NUL byte")]
    NulInPath,
    /// The path or link target exceeds [`PATH_LIMIT`].
    #[error("path longer than {PATH_LIMIT} bytes")]
    PathTooLong,
    /// A symbolic link with an absolute target or one that climbs out.
    #[error("symbolic link target '{0}' leaves the image")]
    SymlinkEscapes(String),
    /// A link with an empty target.
    #[error("link with an empty target")]
    EmptyLinkTarget,
    /// A hard link to something that is not an earlier regular file.
    #[error("hard link target '{0}' is not an earlier regular file of the image")]
    BadHardLink(String),
    /// Device, FIFO, sparse, multi-volume or unknown member types.
    #[error("unsupported member type '{0}'")]
    Unsupported(char),
    /// A member below something that is not a directory.
    #[error("'{0}' is not a directory")]
    ParentNotDirectory(String),
    /// A non-directory member where a directory with contents is.
    #[error("replaces a non-empty directory")]
    ReplacesNonEmptyDirectory,
    /// The image root (`./`) given as a non-directory.
    #[error("the image root must be a directory")]
    RootNotDirectory,
    /// Something else the `tar` crate refuses, in its words (two long
    /// names for one member, extension headers with nothing after them).
    #[error("malformed archive: {0}")]
    Malformed(String),
}

fn show_stored(stored: &Option<u64>) -> String {
    stored.map_or_else(|| "unreadable".to_string(), |s| s.to_string())
}

/// Why a lookup failed (the VFS maps these onto WASI errnos).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// No such path (ENOENT).
    #[error("no such file or directory")]
    NotFound,
    /// A path component is not a directory (ENOTDIR).
    #[error("not a directory")]
    NotADirectory,
    /// The path is a directory where a file is needed (EISDIR).
    #[error("is a directory")]
    IsADirectory,
    /// More than [`LINK_HOPS_LIMIT`] symbolic links (ELOOP).
    #[error("too many levels of symbolic links")]
    TooManyLinks,
}

/// A tar image and its index; `B` is the storage (`Vec<u8>`, a memory map…).
pub struct TarImage<B> {
    data: B,
    entries: HashMap<String, Entry>,
    children: HashMap<String, BTreeSet<String>>,
}

impl<B> fmt::Debug for TarImage<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TarImage")
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

/// Member types (the header's type byte).
mod flag {
    pub const FILE: u8 = b'0';
    pub const OLD_FILE: u8 = 0;
    pub const HARD_LINK: u8 = b'1';
    pub const SYMLINK: u8 = b'2';
    pub const CHAR_DEVICE: u8 = b'3';
    pub const BLOCK_DEVICE: u8 = b'4';
    pub const DIRECTORY: u8 = b'5';
    pub const FIFO: u8 = b'6';
    pub const CONTIGUOUS: u8 = b'7';
    pub const PAX_LOCAL: u8 = b'x';
    pub const PAX_GLOBAL: u8 = b'g';
    pub const GNU_LONG_NAME: u8 = b'L';
    pub const GNU_LONG_LINK: u8 = b'K';
    pub const GNU_DUMPDIR: u8 = b'D';
    pub const GNU_VOLUME: u8 = b'V';
    pub const GNU_SPARSE: u8 = b'S';
}

/// Normalises a member path: UTF-8, no NUL, relative, no `..`; drops `.`
/// and empty components. `""` is the image root.
fn member_path(raw: &[u8]) -> Result<String, TarErrorKind> {
    if raw.contains(&0) {
        return Err(TarErrorKind::NulInPath);
    }
    let text = std::str::from_utf8(raw).map_err(|_| TarErrorKind::NotUtf8)?;
    if text.starts_with('/') {
        return Err(TarErrorKind::AbsolutePath);
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(TarErrorKind::DotDot),
            p => parts.push(p),
        }
    }
    let path = parts.join("/");
    if path.len() > PATH_LIMIT {
        return Err(TarErrorKind::PathTooLong);
    }
    Ok(path)
}

fn parent_of(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

fn base_of(path: &str) -> &str {
    path.rfind('/').map_or(path, |i| &path[i + 1..])
}

/// Checks a symlink target stays inside the image, resolving it lexically
/// from the link's directory.
fn confined_symlink(link: &str, target: &[u8]) -> Result<String, TarErrorKind> {
    if target.contains(&0) {
        return Err(TarErrorKind::NulInPath);
    }
    let text = std::str::from_utf8(target).map_err(|_| TarErrorKind::NotUtf8)?;
    if text.is_empty() {
        return Err(TarErrorKind::EmptyLinkTarget);
    }
    if text.len() > PATH_LIMIT {
        return Err(TarErrorKind::PathTooLong);
    }
    let escapes = || TarErrorKind::SymlinkEscapes(text.to_string());
    if text.starts_with('/') {
        return Err(escapes());
    }
    let mut depth = parent_of(link).split('/').filter(|p| !p.is_empty()).count();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => depth = depth.checked_sub(1).ok_or_else(escapes)?,
            _ => depth += 1,
        }
    }
    Ok(text.to_string())
}

/// A member's fields after the GNU/pax overrides.
#[derive(Clone, Copy)]
struct Record {
    flag: u8,
    mode: u32,
    mtime: i64,
    size: u64,
    offset: u64,
}

/// The index being built: every path's entry, and each directory's names.
struct Index {
    entries: HashMap<String, Entry>,
    children: HashMap<String, BTreeSet<String>>,
}

/// `n` rounded up to whole blocks.
fn padded(n: u64) -> u64 {
    n.div_ceil(BLOCK as u64) * BLOCK as u64
}

/// The 512 bytes at `pos`, if the archive has them.
fn block_at(data: &[u8], pos: u64) -> Option<&[u8]> {
    let start = usize::try_from(pos).ok()?;
    data.get(start..start.checked_add(BLOCK)?)
}

/// The header checksum, as the crate checks it; ours only to say what was
/// stored and what was computed.
fn checksum(block: &[u8]) -> Result<(), TarErrorKind> {
    let computed: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                u64::from(b' ')
            } else {
                u64::from(b)
            }
        })
        .sum();
    let stored = tar::Header::from_byte_slice(block)
        .cksum()
        .ok()
        .map(u64::from);
    if stored == Some(computed) {
        Ok(())
    } else {
        Err(TarErrorKind::BadChecksum { stored, computed })
    }
}

/// The header's size field. A base-256 size must fit in 64 bits: the crate
/// reads only the last 8 bytes of the 12, so a wider value would come out
/// as a different, smaller size (another reader would see another archive).
fn declared_size(block: &[u8]) -> Result<u64, TarErrorKind> {
    let bad = || TarErrorKind::BadNumber("size");
    let field = &block[124..136];
    if field[0] & 0x80 != 0 && (field[0] != 0x80 || field[1..4].iter().any(|&b| b != 0)) {
        return Err(bad());
    }
    tar::Header::from_byte_slice(block)
        .entry_size()
        .map_err(|_| bad())
}

fn is_extension(flag: u8) -> bool {
    matches!(
        flag,
        flag::GNU_LONG_NAME | flag::GNU_LONG_LINK | flag::PAX_LOCAL
    )
}

/// Checks a pax header's records; returns its `size` and `mtime`.
fn pax_records(body: &[u8]) -> Result<(Option<u64>, Option<i64>), TarErrorKind> {
    let (mut size, mut mtime) = (None, None);
    for record in tar::PaxExtensions::new(body) {
        let record = record.map_err(|_| TarErrorKind::BadPax)?;
        match record.key_bytes() {
            b"size" => {
                let value = record.value().map_err(|_| TarErrorKind::BadPax)?;
                size = Some(value.parse().map_err(|_| TarErrorKind::BadPax)?);
            }
            b"mtime" => {
                // Seconds, possibly with a fraction; the fraction is dropped.
                let value = record.value().map_err(|_| TarErrorKind::BadPax)?;
                let whole = value.split('.').next().unwrap_or("");
                mtime = Some(whole.parse().map_err(|_| TarErrorKind::BadPax)?);
            }
            _ => {}
        }
    }
    Ok((size, mtime))
}

/// The extension headers (GNU `L`/`K`, pax `x`) from `pos` on, before the
/// crate reads them: the crate reads each body whole into memory before it
/// yields the member they describe, so each is checked here first (its
/// checksum, its size against the bytes present and
/// [`EXTENDED_HEADER_LIMIT`], its pax records). Stops at the first other
/// header, and leaves anything else to the crate. Returns the last pax
/// `mtime`, if any.
fn check_extensions(data: &[u8], mut pos: u64) -> Result<Option<i64>, TarError> {
    let len = data.len() as u64;
    let mut mtime = None;
    while let Some(block) = block_at(data, pos) {
        if !is_extension(block[156]) || block.iter().all(|&b| b == 0) {
            break;
        }
        let fail = |kind| TarError {
            offset: pos,
            member: None,
            kind,
        };
        checksum(block).map_err(fail)?;
        let size = declared_size(block).map_err(fail)?;
        let available = len - (pos + BLOCK as u64);
        if size > available {
            return Err(fail(TarErrorKind::SizeBeyondEnd { size, available }));
        }
        if size > EXTENDED_HEADER_LIMIT {
            return Err(fail(TarErrorKind::ExtendedHeaderTooLarge(size)));
        }
        if block[156] == flag::PAX_LOCAL {
            // Checked just above: the body lies inside the data.
            let start = pos as usize + BLOCK;
            let body = data.get(start..start + size as usize).unwrap_or(&[]);
            mtime = pax_records(body).map_err(fail)?.1;
        }
        pos += BLOCK as u64 + padded(size);
    }
    Ok(mtime)
}

/// Names what is wrong where the crate failed: it was reading the headers
/// from `from` on (extension headers, then a member's). Walks them with
/// our rules; what they do not explain is reported in the crate's words.
fn diagnose(data: &[u8], from: u64, error: &io::Error) -> TarError {
    let len = data.len() as u64;
    let mut pos = from;
    let mut pax_size = None;
    loop {
        let fail = |member: Option<String>, kind| TarError {
            offset: pos,
            member,
            kind,
        };
        let Some(block) = block_at(data, pos) else {
            return fail(None, TarErrorKind::Truncated);
        };
        if block.iter().all(|&b| b == 0) {
            return fail(None, TarErrorKind::Truncated);
        }
        if let Err(kind) = checksum(block) {
            return fail(None, kind);
        }
        let header = tar::Header::from_byte_slice(block);
        let flag = block[156];
        let extended = is_extension(flag);
        let member =
            (!extended).then(|| String::from_utf8_lossy(&header.path_bytes()).into_owned());
        let size = match declared_size(block) {
            Ok(size) if extended => size,
            Ok(size) => pax_size.take().unwrap_or(size),
            Err(kind) => return fail(None, kind),
        };
        let available = len.saturating_sub(pos + BLOCK as u64);
        if size > available {
            return fail(member, TarErrorKind::SizeBeyondEnd { size, available });
        }
        if extended && size > EXTENDED_HEADER_LIMIT {
            return fail(None, TarErrorKind::ExtendedHeaderTooLarge(size));
        }
        if flag == flag::PAX_LOCAL {
            let start = pos as usize + BLOCK;
            let body = data.get(start..start + size as usize).unwrap_or(&[]);
            match pax_records(body) {
                Ok((size, _)) => pax_size = size,
                Err(kind) => return fail(None, kind),
            }
        }
        if extended {
            pos += BLOCK as u64 + padded(size);
            continue;
        }
        if flag == flag::GNU_SPARSE {
            return fail(member, TarErrorKind::Unsupported('S'));
        }
        return fail(member, TarErrorKind::Malformed(error.to_string()));
    }
}

impl Index {
    /// Indexes `data` with the crate, member by member.
    fn build(data: &[u8]) -> Result<Index, TarError> {
        let mut index = Index {
            entries: HashMap::new(),
            children: HashMap::new(),
        };
        index
            .entries
            .insert(String::new(), Entry::directory(IMPLIED_DIR_MODE, 0));
        let len = data.len() as u64;
        let mut archive = tar::Archive::new(io::Cursor::new(data));
        let mut members = archive
            .entries_with_seek()
            .map_err(|e| diagnose(data, 0, &e))?;
        // Where the next header is due: after the last member's data.
        let mut next: u64 = 0;
        loop {
            let pax_mtime = check_extensions(data, next)?;
            let entry = match members.next() {
                None => break,
                Some(Ok(entry)) => entry,
                Some(Err(e)) => return Err(diagnose(data, next, &e)),
            };
            let at = entry.raw_header_position();
            let name = entry.path_bytes().into_owned();
            let shown = || Some(String::from_utf8_lossy(&name).into_owned());
            let fail = |member: Option<String>, kind| TarError {
                offset: at,
                member,
                kind,
            };
            let size = entry.size();
            let start = entry.raw_file_position();
            let available = len.saturating_sub(start);
            if size > available {
                return Err(fail(
                    shown(),
                    TarErrorKind::SizeBeyondEnd { size, available },
                ));
            }
            next = start + padded(size);
            // The crate read this header, so its block is there.
            let block = block_at(data, at).unwrap_or(&[0; BLOCK]);
            let header = entry.header();
            let flag = header.entry_type().as_byte();
            declared_size(block).map_err(|k| fail(None, k))?;
            match flag {
                flag::PAX_GLOBAL | flag::GNU_VOLUME => continue,
                _ => {}
            }
            let mode = header
                .mode()
                .map_err(|_| fail(None, TarErrorKind::BadNumber("mode")))?;
            let mtime = match pax_mtime {
                Some(mtime) => mtime,
                None => header
                    .mtime()
                    .ok()
                    .and_then(|m| i64::try_from(m).ok())
                    .ok_or_else(|| fail(None, TarErrorKind::BadNumber("mtime")))?,
            };
            let link = entry
                .link_name_bytes()
                .map(|l| l.into_owned())
                .unwrap_or_default();
            let record = Record {
                flag,
                mode: mode & 0o7777,
                mtime,
                size,
                offset: start,
            };
            let path = member_path(&name).map_err(|k| fail(shown(), k))?;
            let member = index
                .member_entry(&path, &name, &link, &record)
                .map_err(|k| fail(shown(), k))?;
            index.insert(path, member).map_err(|k| fail(shown(), k))?;
        }
        // The crate stops at a zero block, or quietly at the end of the
        // bytes: only the first is a whole archive.
        match block_at(data, next) {
            Some(block) if block.iter().all(|&b| b == 0) => Ok(index),
            _ => Err(TarError {
                offset: next,
                member: None,
                kind: TarErrorKind::Truncated,
            }),
        }
    }

    fn member_entry(
        &self,
        path: &str,
        raw_name: &[u8],
        link: &[u8],
        record: &Record,
    ) -> Result<Entry, TarErrorKind> {
        let Record {
            flag,
            mode,
            mtime,
            size,
            offset,
        } = *record;
        match flag {
            // Old archives mark directories by a trailing slash only.
            flag::FILE | flag::OLD_FILE | flag::CONTIGUOUS if raw_name.ends_with(b"/") => {
                Ok(Entry::directory(mode, mtime))
            }
            flag::FILE | flag::OLD_FILE | flag::CONTIGUOUS => Ok(Entry {
                kind: EntryKind::File,
                mode,
                mtime,
                size,
                offset,
            }),
            flag::DIRECTORY | flag::GNU_DUMPDIR => Ok(Entry::directory(mode, mtime)),
            flag::SYMLINK => {
                let target = confined_symlink(path, link)?;
                Ok(Entry {
                    size: target.len() as u64,
                    kind: EntryKind::Symlink(target),
                    mode,
                    mtime,
                    offset: 0,
                })
            }
            flag::HARD_LINK => {
                let shown = || String::from_utf8_lossy(link).into_owned();
                if link.is_empty() {
                    return Err(TarErrorKind::EmptyLinkTarget);
                }
                let target = member_path(link).map_err(|_| TarErrorKind::BadHardLink(shown()))?;
                match self.entries.get(&target) {
                    Some(e) if e.kind == EntryKind::File => Ok(e.clone()),
                    _ => Err(TarErrorKind::BadHardLink(shown())),
                }
            }
            // Devices and FIFOs have no place in a guest file system.
            flag::CHAR_DEVICE | flag::BLOCK_DEVICE | flag::FIFO => {
                Err(TarErrorKind::Unsupported(char::from(flag)))
            }
            other => Err(TarErrorKind::Unsupported(char::from(other))),
        }
    }

    fn insert(&mut self, path: String, entry: Entry) -> Result<(), TarErrorKind> {
        if path.is_empty() {
            if !entry.is_dir() {
                return Err(TarErrorKind::RootNotDirectory);
            }
            self.entries.insert(path, entry);
            return Ok(());
        }
        // Parents, from the top: create the implied ones, refuse non-directories.
        let mut end = 0;
        while let Some(slash) = path[end..].find('/') {
            let dir = &path[..end + slash];
            match self.entries.get(dir) {
                Some(e) if e.is_dir() => {}
                Some(_) => return Err(TarErrorKind::ParentNotDirectory(dir.to_string())),
                None => {
                    self.entries
                        .insert(dir.to_string(), Entry::directory(IMPLIED_DIR_MODE, 0));
                    self.children
                        .entry(parent_of(dir).to_string())
                        .or_default()
                        .insert(base_of(dir).to_string());
                }
            }
            end += slash + 1;
        }
        if let Some(old) = self.entries.get(&path) {
            if old.is_dir() && !entry.is_dir() {
                if self.children.get(&path).is_some_and(|c| !c.is_empty()) {
                    return Err(TarErrorKind::ReplacesNonEmptyDirectory);
                }
                self.children.remove(&path);
            }
        }
        self.children
            .entry(parent_of(&path).to_string())
            .or_default()
            .insert(base_of(&path).to_string());
        self.entries.insert(path, entry);
        Ok(())
    }
}

impl<B: AsRef<[u8]>> TarImage<B> {
    /// Indexes a tar archive held in `data`, or refuses it (see the module doc).
    pub fn new(data: B) -> Result<Self, TarError> {
        let Index { entries, children } = Index::build(data.as_ref())?;
        Ok(TarImage {
            data,
            entries,
            children,
        })
    }

    /// The storage back (to unmap or reuse it).
    pub fn into_inner(self) -> B {
        self.data
    }

    /// Number of paths, the root included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Never true: the root always exists.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every path (relative, `""` for the root) and its entry, in no order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(p, e)| (p.as_str(), e))
    }

    /// The entry at `path` without following symlinks (`lstat`). `path` may
    /// start with `/`; `.` and empty components are ignored and `..` goes up
    /// lexically (staying at the root).
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(&lexical(path))
    }

    /// Resolves `path` like the kernel does, following symbolic links in
    /// every component and, if `follow_last`, in the last one; `..` goes to
    /// the parent of the directory actually reached, and stays at the root.
    /// Returns the resolved path and its entry.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Result<(String, &Entry), LookupError> {
        let mut todo: Vec<String> = components(path).rev().map(str::to_string).collect();
        let mut at: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(part) = todo.pop() {
            let parent = at.join("/");
            if !self.entries.get(&parent).is_some_and(Entry::is_dir) {
                return Err(LookupError::NotADirectory);
            }
            match part.as_str() {
                "." => continue,
                ".." => {
                    at.pop();
                    continue;
                }
                _ => {}
            }
            let candidate = if parent.is_empty() {
                part.clone()
            } else {
                format!("{parent}/{part}")
            };
            let entry = self.entries.get(&candidate).ok_or(LookupError::NotFound)?;
            match &entry.kind {
                EntryKind::Symlink(target) if follow_last || !todo.is_empty() => {
                    hops += 1;
                    if hops > LINK_HOPS_LIMIT {
                        return Err(LookupError::TooManyLinks);
                    }
                    todo.extend(components(target).rev().map(str::to_string));
                }
                _ => at.push(part),
            }
        }
        let resolved = at.join("/");
        match self.entries.get(&resolved) {
            Some(entry) => Ok((resolved, entry)),
            None => Err(LookupError::NotFound),
        }
    }

    /// The entry at `path`, following symbolic links (`stat`).
    pub fn stat(&self, path: &str) -> Result<&Entry, LookupError> {
        self.resolve(path, true).map(|(_, e)| e)
    }

    /// The bytes of a file entry (empty for other kinds).
    pub fn contents(&self, entry: &Entry) -> &[u8] {
        if entry.kind != EntryKind::File {
            return &[];
        }
        let data = self.data.as_ref();
        // Entries come from the index, whose ranges were checked against the data.
        let start = usize::try_from(entry.offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(usize::try_from(entry.size).unwrap_or(usize::MAX));
        data.get(start..end).unwrap_or(&[])
    }

    /// Copies file bytes from `offset` into `buf`, following symlinks;
    /// returns how many (0 at or past the end).
    pub fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, LookupError> {
        let entry = self.stat(path)?;
        if entry.is_dir() {
            return Err(LookupError::IsADirectory);
        }
        let bytes = self.contents(entry);
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let n = buf.len().min(bytes.len() - start);
        buf[..n].copy_from_slice(&bytes[start..start + n]);
        Ok(n)
    }

    /// The names in the directory at `path` (following symlinks), sorted
    /// byte-wise, with their entries.
    pub fn list_dir(&self, path: &str) -> Result<Vec<(&str, &Entry)>, LookupError> {
        let (dir, entry) = self.resolve(path, true)?;
        if !entry.is_dir() {
            return Err(LookupError::NotADirectory);
        }
        let Some(names) = self.children.get(&dir) else {
            return Ok(Vec::new());
        };
        Ok(names
            .iter()
            .filter_map(|name| {
                let full = if dir.is_empty() {
                    name.clone()
                } else {
                    format!("{dir}/{name}")
                };
                self.entries.get(&full).map(|e| (name.as_str(), e))
            })
            .collect())
    }
}

/// The non-empty components of a lookup path.
fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|p| !p.is_empty())
}

/// Lexical clean-up of a lookup path: `.` dropped, `..` pops (not past the root).
fn lexical(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in components(path) {
        match part {
            "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}
