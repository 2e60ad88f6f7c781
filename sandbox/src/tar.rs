//! Read-only tar images (ustar, GNU and pax headers) indexed in place: path →
//! (offset, size, mode, kind), for the VFS to mount without unpacking.
//!
//! [`TarImage::new`] walks the headers once over any byte storage (`Vec<u8>`,
//! or [`ImageBytes`]: a read-only memory map of the channel's file or owned
//! bytes) and builds an index; file contents are never copied, and nothing is
//! allocated in proportion to a *declared* size: every size is checked
//! against the bytes actually present first.
//!
//! The image is refused, with an error naming the member and its byte offset,
//! when a member:
//! - has an absolute path or a `..` component, a NUL or non-UTF-8 bytes in
//!   its path, or a path longer than [`PATH_LIMIT`];
//! - is a symbolic link whose target is absolute or climbs above the image
//!   root (checked lexically from the link's directory);
//! - is a hard link to anything but an earlier regular file of the image (it
//!   then shares that file's data);
//! - declares more data than the archive holds, or fails its header checksum;
//! - is a device, FIFO, sparse or multi-volume member, or of unknown type;
//! - would live under a non-directory, or replace a non-empty directory;
//!
//! and when the archive ends without an end-of-archive (zero) block.
//!
//! Duplicate members: the last one wins (as when tar extracts); a directory
//! entry repeated keeps its children. Directories implied by member paths
//! exist with mode 0755 and mtime 0. GNU `L`/`K` and pax `path`, `linkpath`,
//! `size`, `mtime` records apply to the next member; pax global headers and
//! volume labels are skipped.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::io::{self, Write};

use memmap2::Mmap;

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

/// Member types.
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
}

/// Reads a NUL-terminated field.
fn cstr(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(n) => &field[..n],
        None => field,
    }
}

/// Octal ASCII (space/NUL padded) or GNU base-256 (high bit of the first byte).
fn number(field: &[u8], name: &'static str) -> Result<i64, TarErrorKind> {
    let bad = || TarErrorKind::BadNumber(name);
    match field.first() {
        Some(&first) if first & 0x80 != 0 => {
            let negative = first == 0xff;
            let mut value: i128 = if negative {
                -1
            } else {
                i128::from(first & 0x7f)
            };
            for &b in &field[1..] {
                value = value
                    .checked_mul(256)
                    .and_then(|v| v.checked_add(i128::from(b)))
                    .ok_or_else(bad)?;
                if !negative && value > i128::from(i64::MAX) {
                    return Err(bad());
                }
            }
            i64::try_from(value).map_err(|_| bad())
        }
        _ => {
            let text = cstr(field);
            let start = text.iter().position(|&b| b != b' ').unwrap_or(text.len());
            let text = &text[start..];
            let end = text.iter().position(|&b| b == b' ').unwrap_or(text.len());
            let (digits, rest) = text.split_at(end);
            if rest.iter().any(|&b| b != b' ') {
                return Err(bad());
            }
            digits.iter().try_fold(0i64, |acc, &d| {
                if !(b'0'..=b'7').contains(&d) {
                    return Err(bad());
                }
                acc.checked_mul(8)
                    .and_then(|v| v.checked_add(i64::from(d - b'0')))
                    .ok_or_else(bad)
            })
        }
    }
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

/// Metadata for the next member from GNU long-name and pax headers.
#[derive(Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax_path: Option<Vec<u8>>,
    pax_link: Option<Vec<u8>>,
    pax_size: Option<u64>,
    pax_mtime: Option<i64>,
}

impl Pending {
    /// The member name: pax `path`, else a GNU long name, else the header's
    /// (with the ustar prefix).
    fn name(&self, header: &Header<'_>) -> Vec<u8> {
        if let Some(name) = self.pax_path.as_ref().or(self.long_name.as_ref()) {
            return name.clone();
        }
        match header.prefix {
            Some(p) => [p, b"/", header.name].concat(),
            None => header.name.to_vec(),
        }
    }

    fn read_pax(&mut self, data: &[u8]) -> Result<(), TarErrorKind> {
        let mut rest = data;
        while !rest.is_empty() && rest[0] != 0 {
            let space = rest
                .iter()
                .position(|&b| b == b' ')
                .ok_or(TarErrorKind::BadPax)?;
            let len: usize = std::str::from_utf8(&rest[..space])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(TarErrorKind::BadPax)?;
            if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
                return Err(TarErrorKind::BadPax);
            }
            let record = &rest[space + 1..len - 1];
            let eq = record
                .iter()
                .position(|&b| b == b'=')
                .ok_or(TarErrorKind::BadPax)?;
            let (key, value) = (&record[..eq], &record[eq + 1..]);
            match key {
                b"path" => self.pax_path = Some(value.to_vec()),
                b"linkpath" => self.pax_link = Some(value.to_vec()),
                b"size" => {
                    let size = std::str::from_utf8(value)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or(TarErrorKind::BadPax)?;
                    self.pax_size = Some(size);
                }
                b"mtime" => {
                    // Seconds, possibly with a fraction; the fraction is dropped.
                    let text = std::str::from_utf8(value).map_err(|_| TarErrorKind::BadPax)?;
                    let whole = text.split('.').next().unwrap_or("");
                    self.pax_mtime = Some(whole.parse().map_err(|_| TarErrorKind::BadPax)?);
                }
                _ => {}
            }
            rest = &rest[len..];
        }
        Ok(())
    }
}

/// A member's header fields after the GNU/pax overrides.
#[derive(Clone, Copy)]
struct Record {
    flag: u8,
    mode: u32,
    mtime: i64,
    size: u64,
    offset: u64,
}

/// The fields of one header that the index needs.
struct Header<'a> {
    name: &'a [u8],
    link: &'a [u8],
    prefix: Option<&'a [u8]>,
    mode: u32,
    size: u64,
    mtime: i64,
    flag: u8,
}

fn parse_header(block: &[u8]) -> Result<Header<'_>, TarErrorKind> {
    let stored = number(&block[148..156], "checksum").ok();
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    // Some old writers summed signed chars; both sums are accepted.
    let matches =
        stored.is_some_and(|s| u64::try_from(s).is_ok_and(|s| s == unsigned) || s == signed);
    if !matches {
        return Err(TarErrorKind::BadChecksum {
            stored: stored.and_then(|s| u64::try_from(s).ok()),
            computed: unsigned,
        });
    }
    let mode = number(&block[100..108], "mode")?;
    let size = number(&block[124..136], "size")?;
    let mtime = number(&block[136..148], "mtime")?;
    // Only POSIX ustar has a name prefix; GNU keeps other fields there.
    let prefix = (&block[257..263] == b"ustar\0").then(|| cstr(&block[345..500]));
    Ok(Header {
        name: cstr(&block[0..100]),
        link: cstr(&block[157..257]),
        prefix: prefix.filter(|p| !p.is_empty()),
        mode: (mode & 0o7777) as u32,
        size: u64::try_from(size).map_err(|_| TarErrorKind::BadNumber("size"))?,
        mtime,
        flag: block[156],
    })
}

impl<B: AsRef<[u8]>> TarImage<B> {
    /// Indexes a tar archive held in `data`, or refuses it (see the module doc).
    pub fn new(data: B) -> Result<Self, TarError> {
        let mut image = TarImage {
            data,
            entries: HashMap::new(),
            children: HashMap::new(),
        };
        image
            .entries
            .insert(String::new(), Entry::directory(IMPLIED_DIR_MODE, 0));
        image.index()?;
        Ok(image)
    }

    fn index(&mut self) -> Result<(), TarError> {
        let len = self.data.as_ref().len() as u64;
        let mut pos: u64 = 0;
        let mut pending = Pending::default();
        loop {
            let fail = |member: Option<String>, kind| TarError {
                offset: pos,
                member,
                kind,
            };
            let data = self.data.as_ref();
            let header_end = pos + BLOCK as u64;
            if header_end > len {
                return Err(fail(None, TarErrorKind::Truncated));
            }
            // Offsets below `len` fit in usize: they index a slice.
            let block = &data[pos as usize..header_end as usize];
            if block.iter().all(|&b| b == 0) {
                return Ok(());
            }
            let header = parse_header(block).map_err(|k| fail(None, k))?;
            let size = pending.pax_size.take().unwrap_or(header.size);
            let name = pending.name(&header);
            let shown = || Some(String::from_utf8_lossy(&name).into_owned());
            let available = len - header_end;
            if size > available {
                return Err(fail(
                    shown(),
                    TarErrorKind::SizeBeyondEnd { size, available },
                ));
            }
            // Checked just above: the body lies inside the data.
            let body = &data[header_end as usize..(header_end + size) as usize];
            let next = header_end + size.div_ceil(BLOCK as u64) * BLOCK as u64;
            let extended = matches!(
                header.flag,
                flag::GNU_LONG_NAME | flag::GNU_LONG_LINK | flag::PAX_LOCAL
            );
            if extended && size > EXTENDED_HEADER_LIMIT {
                return Err(fail(None, TarErrorKind::ExtendedHeaderTooLarge(size)));
            }
            match header.flag {
                flag::GNU_LONG_NAME => pending.long_name = Some(cstr(body).to_vec()),
                flag::GNU_LONG_LINK => pending.long_link = Some(cstr(body).to_vec()),
                flag::PAX_LOCAL => pending.read_pax(body).map_err(|k| fail(None, k))?,
                flag::PAX_GLOBAL | flag::GNU_VOLUME => {}
                _ => {
                    let link = pending
                        .pax_link
                        .take()
                        .or_else(|| pending.long_link.take())
                        .unwrap_or_else(|| header.link.to_vec());
                    let record = Record {
                        flag: header.flag,
                        mode: header.mode,
                        mtime: pending.pax_mtime.take().unwrap_or(header.mtime),
                        size,
                        offset: header_end,
                    };
                    pending = Pending::default();
                    let path = member_path(&name).map_err(|k| fail(shown(), k))?;
                    let entry = self
                        .member_entry(&path, &name, &link, &record)
                        .map_err(|k| fail(shown(), k))?;
                    self.insert(path, entry).map_err(|k| fail(shown(), k))?;
                }
            }
            pos = next;
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

/// The bytes of a mounted image: a read-only memory map of the channel's
/// host file (nothing copied; pages come from the page cache on first
/// touch), or bytes read into memory (in-memory buffers, streams, files that
/// cannot be mapped). Made by [`crate::channel::OpenChannel::read_image`].
pub struct ImageBytes(Storage);

enum Storage {
    /// The first `len` bytes of a mapping (less than the file when the
    /// channel's read quota cut it).
    Mapped {
        map: Mmap,
        len: usize,
    },
    Owned(Vec<u8>),
}

impl ImageBytes {
    /// The first `len` bytes (at most the whole map) of a mapping.
    pub fn mapped(map: Mmap, len: usize) -> ImageBytes {
        let len = len.min(map.len());
        ImageBytes(Storage::Mapped { map, len })
    }

    /// Bytes held in memory.
    pub fn owned(bytes: Vec<u8>) -> ImageBytes {
        ImageBytes(Storage::Owned(bytes))
    }

    /// Whether the bytes are a memory map (not a copy).
    pub fn is_mapped(&self) -> bool {
        matches!(self.0, Storage::Mapped { .. })
    }
}

impl AsRef<[u8]> for ImageBytes {
    fn as_ref(&self) -> &[u8] {
        match &self.0 {
            Storage::Mapped { map, len } => map.get(..*len).unwrap_or(&[]),
            Storage::Owned(bytes) => bytes,
        }
    }
}

impl From<Vec<u8>> for ImageBytes {
    fn from(bytes: Vec<u8>) -> Self {
        ImageBytes::owned(bytes)
    }
}

impl fmt::Debug for ImageBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageBytes")
            .field("mapped", &self.is_mapped())
            .field("len", &self.as_ref().len())
            .finish()
    }
}

/// One member of an archive [`pack`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackMember<'a> {
    /// A directory (relative path, no trailing `/`), mode 0755.
    Dir(&'a str),
    /// A regular file (relative path) and its bytes, mode 0644.
    File(&'a str, &'a [u8]),
}

/// Largest size a ustar octal field of 11 digits holds.
const USTAR_SIZE_MAX: u64 = 0o77_777_777_777;

/// Writes a ustar archive of `members`, in the order given, to `out`:
/// deterministic bytes (uid/gid 0, no owner names, mtime 0, modes 0755/0644),
/// each member padded to [`BLOCK`], then the two zero blocks. A path longer
/// than ustar's name (100 bytes) is split over the prefix field (155) at a
/// `/`; one that cannot be split, or a size past ustar's 8 GiB, gets a pax
/// `x` header first (what GNU tar and Python's tarfile read; so does
/// [`TarImage`]). Paths are written as given: callers pass clean relative
/// paths (the VFS does).
pub fn pack<'a, W: Write + ?Sized>(
    out: &mut W,
    members: impl IntoIterator<Item = PackMember<'a>>,
) -> io::Result<()> {
    for member in members {
        let (path, flag, data) = match member {
            PackMember::Dir(p) => (format!("{p}/"), flag::DIRECTORY, &[][..]),
            PackMember::File(p, d) => (p.to_string(), flag::FILE, d),
        };
        write_header(out, &path, data.len() as u64, flag)?;
        write_padded(out, data)?;
    }
    write_end(out)
}

/// Streams one regular file into a ustar archive: its header(s) as
/// [`pack`] writes them; then the caller writes exactly `size` bytes and
/// calls [`write_file_padding`], and [`write_end`] after the last member.
pub fn write_file_header<W: Write + ?Sized>(out: &mut W, path: &str, size: u64) -> io::Result<()> {
    write_header(out, path, size, flag::FILE)
}

/// Zeros after a member's `size` bytes up to the next block boundary.
pub fn write_file_padding<W: Write + ?Sized>(out: &mut W, size: u64) -> io::Result<()> {
    let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
    out.write_all(&[0u8; BLOCK][..pad as usize])
}

/// The end of an archive: two zero blocks.
pub fn write_end<W: Write + ?Sized>(out: &mut W) -> io::Result<()> {
    out.write_all(&[0u8; 2 * BLOCK])
}

/// A member's header, preceded by a pax `x` header when the path does not
/// fit ustar's fields or the size is past ustar's 8 GiB.
fn write_header<W: Write + ?Sized>(out: &mut W, path: &str, size: u64, flag: u8) -> io::Result<()> {
    let split = ustar_split(path);
    let mut pax = String::new();
    if split.is_none() {
        pax.push_str(&pax_record("path", path));
    }
    if size > USTAR_SIZE_MAX {
        pax.push_str(&pax_record("size", &size.to_string()));
    }
    if !pax.is_empty() {
        let header = ustar_header(
            "",
            "././@PaxHeader",
            0o644,
            pax.len() as u64,
            flag::PAX_LOCAL,
        );
        out.write_all(&header)?;
        write_padded(out, pax.as_bytes())?;
    }
    let (prefix, name) = split.unwrap_or(("", fallback_name(path)));
    let mode = if flag == flag::DIRECTORY {
        0o755
    } else {
        0o644
    };
    out.write_all(&ustar_header(
        prefix,
        name,
        mode,
        size.min(USTAR_SIZE_MAX),
        flag,
    ))
}

/// `(prefix, name)` when `path` fits ustar's fields (name ≤ 100 bytes,
/// prefix ≤ 155, split at a `/`).
fn ustar_split(path: &str) -> Option<(&str, &str)> {
    if path.len() <= 100 {
        return Some(("", path));
    }
    // The name keeps a trailing `/` of a directory; split at an earlier one.
    let body = path.strip_suffix('/').unwrap_or(path);
    body.char_indices()
        .filter(|&(_, c)| c == '/')
        .map(|(i, _)| (&path[..i], &path[i + 1..]))
        .find(|(prefix, name)| prefix.len() <= 155 && name.len() <= 100 && !name.is_empty())
}

/// The header name of a member whose real path is in a pax record: its
/// last 100 bytes at most, cut at a character boundary.
fn fallback_name(path: &str) -> &str {
    let mut start = path.len().saturating_sub(100);
    while !path.is_char_boundary(start) {
        start += 1;
    }
    &path[start..]
}

/// One pax record, `"<len> <key>=<value>\n"`, where len counts itself.
fn pax_record(key: &str, value: &str) -> String {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while len.to_string().len() + body.len() != len {
        len += 1;
    }
    format!("{len}{body}")
}

fn ustar_header(prefix: &str, name: &str, mode: u32, size: u64, flag: u8) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    let put = |h: &mut [u8; BLOCK], at: usize, bytes: &[u8]| {
        h[at..at + bytes.len()].copy_from_slice(bytes);
    };
    put(&mut h, 0, name.as_bytes());
    put(&mut h, 100, format!("{mode:07o}\0").as_bytes());
    put(&mut h, 108, b"0000000\0");
    put(&mut h, 116, b"0000000\0");
    put(&mut h, 124, format!("{size:011o}\0").as_bytes());
    put(&mut h, 136, b"00000000000\0");
    h[156] = flag;
    put(&mut h, 257, b"ustar\x0000");
    put(&mut h, 345, prefix.as_bytes());
    put(&mut h, 148, b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    put(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
    h
}

/// `data` then zeros up to the next block boundary.
fn write_padded<W: Write + ?Sized>(out: &mut W, data: &[u8]) -> io::Result<()> {
    out.write_all(data)?;
    write_file_padding(out, data.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streamed_member_reads_back_long_paths_included() {
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(90));
        let longer = "x".repeat(300);
        let mut tar = Vec::new();
        for (path, data) in [("a/b", &[7u8; 1234][..]), (&long, b"l"), (&longer, b"")] {
            write_file_header(&mut tar, path, data.len() as u64).unwrap();
            tar.extend_from_slice(data);
            write_file_padding(&mut tar, data.len() as u64).unwrap();
        }
        write_end(&mut tar).unwrap();
        let image = TarImage::new(tar).unwrap();
        let entry = image.stat("a/b").unwrap();
        assert_eq!(image.contents(entry), &[7u8; 1234][..]);
        assert_eq!(image.contents(image.stat(&long).unwrap()), b"l");
        assert!(image.stat(&longer).is_ok(), "a pax path record");
    }

    #[test]
    fn a_size_past_ustar_gets_a_pax_size_record() {
        let mut out = Vec::new();
        write_file_header(&mut out, "big", USTAR_SIZE_MAX + 1).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains(&format!(" size={}\n", USTAR_SIZE_MAX + 1)));
        // The ustar header itself holds the largest size it can.
        assert_eq!(out.len(), 3 * BLOCK);
        assert_eq!(&out[2 * BLOCK + 124..2 * BLOCK + 135], b"77777777777");
    }

    /// Builds tar archives byte by byte, hostile ones included.
    #[derive(Default)]
    struct Builder {
        out: Vec<u8>,
    }

    struct Member<'a> {
        name: &'a [u8],
        flag: u8,
        data: &'a [u8],
        size: Option<Vec<u8>>,
        link: &'a [u8],
        mode: &'a [u8],
        prefix: &'a [u8],
        gnu: bool,
    }

    fn member<'a>(name: &'a str, flag: u8, data: &'a [u8]) -> Member<'a> {
        Member {
            name: name.as_bytes(),
            flag,
            data,
            size: None,
            link: b"",
            mode: b"0000644",
            prefix: b"",
            gnu: false,
        }
    }

    fn header_block(m: &Member<'_>) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        h[..m.name.len()].copy_from_slice(m.name);
        h[100..100 + m.mode.len()].copy_from_slice(m.mode);
        h[108..115].copy_from_slice(b"0001750");
        h[116..123].copy_from_slice(b"0001750");
        let size = m
            .size
            .clone()
            .unwrap_or_else(|| format!("{:011o}", m.data.len()).into_bytes());
        h[124..124 + size.len()].copy_from_slice(&size);
        h[136..147].copy_from_slice(b"14707352744");
        h[156] = m.flag;
        h[157..157 + m.link.len()].copy_from_slice(m.link);
        if m.gnu {
            h[257..265].copy_from_slice(b"ustar  \0");
        } else {
            h[257..265].copy_from_slice(b"ustar\x0000");
        }
        h[345..345 + m.prefix.len()].copy_from_slice(m.prefix);
        set_checksum(&mut h);
        h
    }

    fn set_checksum(h: &mut [u8; BLOCK]) {
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    }

    impl Builder {
        fn add(mut self, m: Member<'_>) -> Self {
            self.out.extend_from_slice(&header_block(&m));
            self.out.extend_from_slice(m.data);
            let pad = (BLOCK - m.data.len() % BLOCK) % BLOCK;
            self.out.extend(std::iter::repeat_n(0, pad));
            self
        }

        fn file(self, name: &str, data: &[u8]) -> Self {
            self.add(member(name, flag::FILE, data))
        }

        fn dir(self, name: &str) -> Self {
            self.add(Member {
                mode: b"0000755",
                ..member(name, flag::DIRECTORY, b"")
            })
        }

        fn symlink(self, name: &str, target: &str) -> Self {
            self.add(Member {
                link: target.as_bytes(),
                mode: b"0000777",
                ..member(name, flag::SYMLINK, b"")
            })
        }

        fn hardlink(self, name: &str, target: &str) -> Self {
            self.add(Member {
                link: target.as_bytes(),
                ..member(name, flag::HARD_LINK, b"")
            })
        }

        fn pax(self, records: &[(&str, &str)]) -> Self {
            let mut body = Vec::new();
            for (k, v) in records {
                let content = format!(" {k}={v}\n");
                let mut len = content.len() + 1;
                while format!("{len}").len() + content.len() != len {
                    len += 1;
                }
                body.extend_from_slice(format!("{len}{content}").as_bytes());
            }
            let body: &[u8] = Box::leak(body.into_boxed_slice());
            self.add(member("PaxHeaders/x", flag::PAX_LOCAL, body))
        }

        fn gnu_long(self, flag: u8, name: &str) -> Self {
            let mut body = name.as_bytes().to_vec();
            body.push(0);
            let body: &[u8] = Box::leak(body.into_boxed_slice());
            self.add(Member {
                gnu: true,
                ..member("././@LongLink", flag, body)
            })
        }

        fn finish(mut self) -> Vec<u8> {
            self.out.extend(std::iter::repeat_n(0, 2 * BLOCK));
            self.out
        }
    }

    fn image(bytes: Vec<u8>) -> TarImage<Vec<u8>> {
        TarImage::new(bytes).unwrap()
    }

    fn refuse(bytes: Vec<u8>) -> TarError {
        TarImage::new(bytes).unwrap_err()
    }

    fn read(img: &TarImage<Vec<u8>>, path: &str) -> Vec<u8> {
        img.contents(img.stat(path).unwrap()).to_vec()
    }

    #[test]
    fn indexes_files_dirs_and_implied_dirs() {
        let img = image(
            Builder::default()
                .dir("lib/")
                .file("lib/a.txt", b"hello")
                .file("./bin//tool", &[7u8; 1000])
                .file("deep/er/x", b"")
                .finish(),
        );
        assert_eq!(read(&img, "lib/a.txt"), b"hello");
        assert_eq!(read(&img, "/bin/tool"), vec![7u8; 1000]);
        let a = img.get("lib/a.txt").unwrap();
        assert_eq!((a.mode, a.size, a.mtime), (0o644, 5, 0o14707352744));
        assert_eq!(a.offset, 2 * BLOCK as u64);
        assert_eq!(img.get("lib").unwrap().mode, 0o755);
        let implied = img.get("deep/er").unwrap();
        assert!(implied.is_dir());
        assert_eq!((implied.mode, implied.mtime), (IMPLIED_DIR_MODE, 0));
        let root: Vec<&str> = img.list_dir("/").unwrap().iter().map(|(n, _)| *n).collect();
        assert_eq!(root, ["bin", "deep", "lib"]);
        let lib: Vec<&str> = img
            .list_dir("lib")
            .unwrap()
            .iter()
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(lib, ["a.txt"]);
        assert_eq!(img.list_dir("deep/er/x"), Err(LookupError::NotADirectory));
        assert_eq!(img.list_dir("nope"), Err(LookupError::NotFound));
        assert_eq!(img.len(), 8);
        assert!(!img.is_empty());
    }

    #[test]
    fn read_at_offsets() {
        let img = image(Builder::default().file("f", b"0123456789").finish());
        let mut buf = [0u8; 4];
        assert_eq!(img.read_at("f", 0, &mut buf), Ok(4));
        assert_eq!(&buf, b"0123");
        assert_eq!(img.read_at("f", 8, &mut buf), Ok(2));
        assert_eq!(&buf[..2], b"89");
        assert_eq!(img.read_at("f", 10, &mut buf), Ok(0));
        assert_eq!(img.read_at("f", u64::MAX, &mut buf), Ok(0));
        assert_eq!(
            img.read_at("/", 0, &mut buf),
            Err(LookupError::IsADirectory)
        );
        assert_eq!(img.read_at("g", 0, &mut buf), Err(LookupError::NotFound));
        assert_eq!(
            img.read_at("f/x", 0, &mut buf),
            Err(LookupError::NotADirectory)
        );
    }

    #[test]
    fn duplicates_last_wins_and_directories_keep_children() {
        let img = image(
            Builder::default()
                .file("a", b"first")
                .file("a", b"second")
                .file("d/x", b"x")
                .dir("d")
                .finish(),
        );
        assert_eq!(read(&img, "a"), b"second");
        assert_eq!(img.list_dir("d").unwrap().len(), 1);
        // A file may replace an empty directory, not a full one.
        let img = image(
            Builder::default()
                .dir("e")
                .file("e", b"now a file")
                .finish(),
        );
        assert_eq!(read(&img, "e"), b"now a file");
        let e = refuse(
            Builder::default()
                .file("d/x", b"x")
                .file("d", b"y")
                .finish(),
        );
        assert_eq!(e.kind, TarErrorKind::ReplacesNonEmptyDirectory);
        assert_eq!(
            e.to_string(),
            "tar member 'd' at byte 1024: replaces a non-empty directory"
        );
    }

    #[test]
    fn root_member_is_accepted_as_a_directory() {
        let img = image(
            Builder::default()
                .add(Member {
                    mode: b"0000700",
                    ..member("./", flag::DIRECTORY, b"")
                })
                .file("./x", b"1")
                .finish(),
        );
        assert_eq!(img.get("").unwrap().mode, 0o700);
        let e = refuse(Builder::default().symlink(".", "x").finish());
        assert_eq!(e.kind, TarErrorKind::RootNotDirectory);
    }

    #[test]
    fn old_style_directory_by_trailing_slash() {
        let img = image(
            Builder::default()
                .add(member("olddir/", flag::OLD_FILE, b""))
                .finish(),
        );
        assert!(img.get("olddir").unwrap().is_dir());
    }

    #[test]
    fn refuses_dot_dot_and_absolute_members() {
        let table: &[(&str, TarErrorKind)] = &[
            ("../etc/passwd", TarErrorKind::DotDot),
            ("a/../../x", TarErrorKind::DotDot),
            ("a/..", TarErrorKind::DotDot),
            ("/etc/passwd", TarErrorKind::AbsolutePath),
            ("//x", TarErrorKind::AbsolutePath),
        ];
        for (name, kind) in table {
            let e = refuse(
                Builder::default()
                    .file("ok", b"1")
                    .file(name, b"x")
                    .finish(),
            );
            assert_eq!(&e.kind, kind, "{name}");
            assert_eq!(e.member.as_deref(), Some(*name));
            assert_eq!(e.offset, 1024);
        }
        let e = refuse(Builder::default().file("../x", b"x").finish());
        assert_eq!(
            e.to_string(),
            "tar member '../x' at byte 0: path with a '..' component"
        );
    }

    #[test]
    fn refuses_hostile_names_from_extended_headers() {
        let e = refuse(
            Builder::default()
                .pax(&[("path", "../../escape")])
                .file("innocent", b"x")
                .finish(),
        );
        assert_eq!(e.kind, TarErrorKind::DotDot);
        assert_eq!(e.member.as_deref(), Some("../../escape"));
        let e = refuse(
            Builder::default()
                .gnu_long(flag::GNU_LONG_NAME, "/abs/long")
                .file("innocent", b"x")
                .finish(),
        );
        assert_eq!(e.kind, TarErrorKind::AbsolutePath);
        let e = refuse(
            Builder::default()
                .pax(&[("path", "a\u{0}b")])
                .file("x", b"")
                .finish(),
        );
        assert_eq!(e.kind, TarErrorKind::NulInPath);
        let e = refuse(
            Builder::default()
                .add(member("x", flag::FILE, b""))
                .finish()
                .into_iter()
                .enumerate()
                .map(|(i, b)| if i == 0 { 0xff } else { b })
                .collect(),
        );
        assert!(matches!(e.kind, TarErrorKind::BadChecksum { .. }));
        let mut bytes = Builder::default().file("\u{0}", b"").finish();
        bytes[0] = 0xff;
        let mut block = [0u8; BLOCK];
        block.copy_from_slice(&bytes[..BLOCK]);
        set_checksum(&mut block);
        bytes[..BLOCK].copy_from_slice(&block);
        assert_eq!(refuse(bytes).kind, TarErrorKind::NotUtf8);
        let long = "a/".repeat(PATH_LIMIT / 2 + 1);
        let e = refuse(
            Builder::default()
                .gnu_long(flag::GNU_LONG_NAME, &long)
                .file("x", b"")
                .finish(),
        );
        assert_eq!(e.kind, TarErrorKind::PathTooLong);
    }

    #[test]
    fn symlinks_confined_followed_and_refused_when_escaping() {
        let img = image(
            Builder::default()
                .file("usr/lib/libx.so.1", b"elf")
                .symlink("usr/lib/libx.so", "libx.so.1")
                .symlink("lib", "usr/lib")
                .symlink("usr/bin/up", "../lib/./libx.so")
                .symlink("loop1", "loop2")
                .symlink("loop2", "loop1")
                .finish(),
        );
        assert_eq!(read(&img, "lib/libx.so"), b"elf");
        assert_eq!(read(&img, "usr/bin/up"), b"elf");
        let link = img.get("lib").unwrap();
        assert_eq!(link.kind, EntryKind::Symlink("usr/lib".into()));
        assert_eq!((link.mode, link.size), (0o777, 7));
        let (path, _) = img.resolve("lib/libx.so", false).unwrap();
        assert_eq!(path, "usr/lib/libx.so");
        let (path, _) = img.resolve("lib/libx.so", true).unwrap();
        assert_eq!(path, "usr/lib/libx.so.1");
        // `..` after a symlink is physical: lib -> usr/lib, so lib/.. is usr.
        let (path, _) = img.resolve("lib/../bin/up", true).unwrap();
        assert_eq!(path, "usr/lib/libx.so.1");
        assert_eq!(img.resolve("/../../lib", false).unwrap().0, "lib");
        assert_eq!(img.stat("loop1"), Err(LookupError::TooManyLinks));
        assert!(img.resolve("loop1", false).is_ok());
        let names: Vec<&str> = img
            .list_dir("lib")
            .unwrap()
            .iter()
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(names, ["libx.so", "libx.so.1"]);

        let table: &[(&str, &str)] = &[
            ("a", "../x"),
            ("d/a", "../../x"),
            ("d/a", "../e/../../x"),
            ("a", "/etc/passwd"),
        ];
        for (name, target) in table {
            let e = refuse(Builder::default().symlink(name, target).finish());
            assert_eq!(
                e.kind,
                TarErrorKind::SymlinkEscapes(target.to_string()),
                "{name} -> {target}"
            );
        }
        let e = refuse(Builder::default().symlink("a", "").finish());
        assert_eq!(e.kind, TarErrorKind::EmptyLinkTarget);
        let e = refuse(
            Builder::default()
                .symlink("a", "x")
                .pax(&[("linkpath", "../../etc")])
                .symlink("b", "fine")
                .finish(),
        );
        assert_eq!(e.kind, TarErrorKind::SymlinkEscapes("../../etc".into()));
        assert_eq!(
            e.to_string(),
            "tar member 'b' at byte 1536: symbolic link target '../../etc' leaves the image"
        );
    }

    #[test]
    fn members_below_a_symlink_or_file_are_refused() {
        let e = refuse(
            Builder::default()
                .symlink("s", "d")
                .file("s/passwd", b"x")
                .finish(),
        );
        assert_eq!(e.kind, TarErrorKind::ParentNotDirectory("s".into()));
        let e = refuse(
            Builder::default()
                .file("f", b"1")
                .file("f/g/h", b"x")
                .finish(),
        );
        assert_eq!(e.kind, TarErrorKind::ParentNotDirectory("f".into()));
        assert_eq!(
            e.to_string(),
            "tar member 'f/g/h' at byte 1024: 'f' is not a directory"
        );
    }

    #[test]
    fn hard_links_share_data_of_earlier_files_only() {
        let img = image(
            Builder::default()
                .file("a/orig", b"data")
                .hardlink("b/copy", "./a/orig")
                .finish(),
        );
        assert_eq!(read(&img, "b/copy"), b"data");
        assert_eq!(
            img.get("b/copy").unwrap().offset,
            img.get("a/orig").unwrap().offset
        );
        for target in ["missing", "../a/orig", "/a/orig", "a"] {
            let e = refuse(
                Builder::default()
                    .file("a/orig", b"data")
                    .hardlink("c", target)
                    .finish(),
            );
            assert_eq!(e.kind, TarErrorKind::BadHardLink(target.into()), "{target}");
        }
        let e = refuse(Builder::default().hardlink("c", "").finish());
        assert_eq!(e.kind, TarErrorKind::EmptyLinkTarget);
    }

    #[test]
    fn huge_declared_size_is_refused_without_allocating() {
        // 8 GiB - 1 in octal, and the largest base-256 value.
        let e = refuse(
            Builder::default()
                .add(Member {
                    size: Some(b"77777777777".to_vec()),
                    ..member("big", flag::FILE, b"")
                })
                .finish(),
        );
        assert_eq!(
            e.kind,
            TarErrorKind::SizeBeyondEnd {
                size: 0o77777777777,
                available: 1024
            }
        );
        let mut base256 = vec![0x80];
        base256.extend_from_slice(&[
            0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ]);
        let e = refuse(
            Builder::default()
                .add(Member {
                    size: Some(base256),
                    ..member("big", flag::FILE, b"")
                })
                .finish(),
        );
        assert_eq!(e.kind, TarErrorKind::BadNumber("size"));
        let e = refuse(
            Builder::default()
                .pax(&[("size", "18446744073709551615")])
                .file("big", b"")
                .finish(),
        );
        assert!(matches!(
            e.kind,
            TarErrorKind::SizeBeyondEnd { size: u64::MAX, .. }
        ));
        let e = refuse(
            Builder::default()
                .add(Member {
                    size: Some(b"7777777777".to_vec()),
                    ..member("././@LongLink", flag::GNU_LONG_NAME, b"")
                })
                .finish(),
        );
        assert!(matches!(e.kind, TarErrorKind::SizeBeyondEnd { .. }));
    }

    #[test]
    fn base256_sizes_are_read() {
        let mut size = vec![0x80u8; 1];
        size.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3]);
        let img = image(
            Builder::default()
                .add(Member {
                    size: Some(size),
                    ..member("f", flag::FILE, b"abc")
                })
                .finish(),
        );
        assert_eq!(read(&img, "f"), b"abc");
    }

    #[test]
    fn extended_headers_over_the_limit_are_refused() {
        let big = vec![b'a'; EXTENDED_HEADER_LIMIT as usize + 1];
        let e = refuse(
            Builder::default()
                .add(member("././@LongLink", flag::GNU_LONG_NAME, &big))
                .file("x", b"")
                .finish(),
        );
        assert_eq!(
            e.kind,
            TarErrorKind::ExtendedHeaderTooLarge(EXTENDED_HEADER_LIMIT + 1)
        );
    }

    #[test]
    fn truncated_archives_are_refused() {
        let whole = Builder::default().file("a", &[1u8; 600]).finish();
        // Cut inside the data, inside the padding, at the end of the member,
        // inside the end block, and nothing at all.
        for cut in [700, 1100, 1536, 1536 + 100, 0] {
            let e = refuse(whole[..cut].to_vec());
            let want_size = cut < 512 + 600 && cut > 0;
            if want_size {
                assert!(
                    matches!(e.kind, TarErrorKind::SizeBeyondEnd { size: 600, .. }),
                    "{cut}: {e}"
                );
            } else {
                assert_eq!(e.kind, TarErrorKind::Truncated, "{cut}");
            }
        }
        assert_eq!(
            refuse(Vec::new()).to_string(),
            "tar header at byte 0: truncated archive: no end-of-archive block"
        );
        // One zero block is enough to end it; what follows is ignored.
        let mut lone = whole[..1536 + BLOCK].to_vec();
        lone.extend_from_slice(b"trailing garbage");
        assert_eq!(read(&image(lone), "a"), vec![1u8; 600]);
    }

    #[test]
    fn bad_checksums_and_numbers_are_refused() {
        let mut bytes = Builder::default().file("a", b"x").finish();
        bytes[0] = b'b';
        let e = refuse(bytes);
        assert!(matches!(
            e.kind,
            TarErrorKind::BadChecksum {
                stored: Some(_),
                ..
            }
        ));
        assert!(e
            .to_string()
            .starts_with("tar header at byte 0: bad header checksum (stored "));
        let mut bytes = Builder::default().file("a", b"x").finish();
        bytes[148..156].copy_from_slice(b"zzzzzzzz");
        assert!(matches!(
            refuse(bytes).kind,
            TarErrorKind::BadChecksum { stored: None, .. }
        ));
        let e = refuse(
            Builder::default()
                .add(Member {
                    mode: b"0009",
                    ..member("a", flag::FILE, b"")
                })
                .finish(),
        );
        assert_eq!(e.kind, TarErrorKind::BadNumber("mode"));
        // Signed-char sums (old writers) are accepted.
        let mut h = header_block(&member("\u{e9}", flag::FILE, b""));
        let signed: i64 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    i64::from(b as i8)
                }
            })
            .sum();
        h[148..156].copy_from_slice(format!("{signed:06o}\0 ").as_bytes());
        let mut bytes = h.to_vec();
        bytes.extend_from_slice(&[0u8; 2 * BLOCK]);
        assert!(image(bytes).get("\u{e9}").is_some());
    }

    #[test]
    fn unsupported_member_types_are_refused() {
        for (flag, c) in [
            (flag::CHAR_DEVICE, '3'),
            (flag::BLOCK_DEVICE, '4'),
            (flag::FIFO, '6'),
            (b'S', 'S'),
            (b'M', 'M'),
            (b'Z', 'Z'),
        ] {
            let e = refuse(Builder::default().add(member("dev", flag, b"")).finish());
            assert_eq!(e.kind, TarErrorKind::Unsupported(c));
        }
    }

    #[test]
    fn long_names_ustar_prefix_and_pax() {
        let long = format!("{}/file.txt", "d".repeat(150));
        let img = image(
            Builder::default()
                .gnu_long(flag::GNU_LONG_NAME, &long)
                .add(Member {
                    gnu: true,
                    ..member("truncated-name", flag::FILE, b"gnu")
                })
                .add(Member {
                    prefix: b"some/prefix",
                    ..member("name.txt", flag::FILE, b"ustar")
                })
                .pax(&[
                    ("path", "pax/\u{e9}t\u{e9}.txt"),
                    ("mtime", "1700000000.5"),
                    ("comment", "ignored"),
                ])
                .file("ignored-name", b"pax")
                .gnu_long(flag::GNU_LONG_NAME, "gl")
                .gnu_long(flag::GNU_LONG_LINK, "gnu-target")
                .add(Member {
                    gnu: true,
                    link: b"short",
                    ..member("x", flag::SYMLINK, b"")
                })
                .add(member("g", flag::PAX_GLOBAL, b"9 a=bcd\n"))
                .add(member("vol", flag::GNU_VOLUME, b""))
                .file("after", b"1")
                .finish(),
        );
        assert_eq!(read(&img, &long), b"gnu");
        assert!(img.get("truncated-name").is_none());
        assert_eq!(read(&img, "some/prefix/name.txt"), b"ustar");
        let pax = img.get("pax/\u{e9}t\u{e9}.txt").unwrap();
        assert_eq!(pax.mtime, 1_700_000_000);
        assert_eq!(img.contents(pax), b"pax");
        assert_eq!(
            img.get("gl").unwrap().kind,
            EntryKind::Symlink("gnu-target".into())
        );
        assert!(img.get("vol").is_none() && img.get("g").is_none());
        assert_eq!(read(&img, "after"), b"1");
        // GNU headers keep other data where ustar has its prefix.
        let img = image(
            Builder::default()
                .add(Member {
                    gnu: true,
                    prefix: b"atime-bytes",
                    ..member("plain", flag::FILE, b"")
                })
                .finish(),
        );
        assert!(img.get("plain").is_some());
    }

    #[test]
    fn pax_size_overrides_the_header() {
        let img = image(
            Builder::default()
                .pax(&[("size", "3")])
                .add(Member {
                    size: Some(b"00000000000".to_vec()),
                    ..member("f", flag::FILE, b"abc")
                })
                .file("g", b"z")
                .finish(),
        );
        assert_eq!(read(&img, "f"), b"abc");
        assert_eq!(read(&img, "g"), b"z");
    }

    #[test]
    fn malformed_pax_is_refused() {
        for body in [
            &b"abc"[..],
            b"5 a=b",
            b"99 path=x\n",
            b"8 pathx\n",
            b"9 size=x\n",
            b"2 \n",
            b"12 mtime=x\n\n",
        ] {
            let e = refuse(
                Builder::default()
                    .add(member("p", flag::PAX_LOCAL, body))
                    .file("f", b"")
                    .finish(),
            );
            assert_eq!(
                e.kind,
                TarErrorKind::BadPax,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn lookups_clean_paths() {
        let img = image(Builder::default().file("a/b", b"1").finish());
        for p in ["a/b", "/a/b", "./a//b/", "a/./b", "/../a/b", "x/../a/b"] {
            assert!(img.get(p).is_some(), "{p}");
        }
        assert_eq!(
            img.resolve("a/b/..", true).map(|(p, _)| p),
            Err(LookupError::NotADirectory)
        );
        assert_eq!(img.resolve("a/..", true).unwrap().0, "");
        assert_eq!(img.entries().count(), 3);
        assert_eq!(img.into_inner().len(), 4 * BLOCK);
    }

    #[test]
    fn real_world_archives() {
        // Made with GNU tar 1.34 (gnu and posix formats) and Python's tarfile
        // (ustar with a prefix): long names, a symlink, a hard link, UTF-8.
        for (name, bytes) in [
            ("gnu", &include_bytes!("../tests/fixtures/gnu.tar")[..]),
            ("posix", &include_bytes!("../tests/fixtures/posix.tar")[..]),
            ("ustar", &include_bytes!("../tests/fixtures/ustar.tar")[..]),
        ] {
            let img = TarImage::new(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            let long = format!("img/{}/long-file-name.txt", "sub".repeat(40));
            assert_eq!(img.contents(img.stat(&long).unwrap()), b"long\n", "{name}");
            assert_eq!(
                img.contents(img.stat("img/hello.txt").unwrap()),
                b"hello\n",
                "{name}"
            );
            assert_eq!(img.stat("img/hello.txt").unwrap().mode, 0o644, "{name}");
            assert_eq!(
                img.contents(img.stat("img/caf\u{e9}.txt").unwrap()),
                b"utf8\n",
                "{name}"
            );
            assert_eq!(
                img.contents(img.stat("img/link").unwrap()),
                b"hello\n",
                "{name}"
            );
            assert_eq!(
                img.contents(img.stat("img/hard").unwrap()),
                b"hello\n",
                "{name}"
            );
            assert_eq!(
                img.get("img/link").unwrap().kind,
                EntryKind::Symlink("hello.txt".into()),
                "{name}"
            );
        }
    }

    #[test]
    fn pack_writes_ustar_that_reads_back_and_is_deterministic() {
        let deep = format!("{}/file.txt", "sub".repeat(40)); // needs the prefix field
        let unsplittable = "x".repeat(150); // one component: a pax path record
        let members = [
            PackMember::Dir("a"),
            PackMember::File("a/one.txt", b"one\n"),
            PackMember::Dir("a/empty"),
            PackMember::File("b", &[7u8; 1500]),
            PackMember::File(&deep, b"deep"),
            PackMember::File(&unsplittable, b"pax"),
            PackMember::File("caf\u{e9}", b""),
        ];
        let mut bytes = Vec::new();
        pack(&mut bytes, members).unwrap();
        let mut again = Vec::new();
        pack(&mut again, members).unwrap();
        assert_eq!(bytes, again);
        assert_eq!(bytes.len() % BLOCK, 0);
        assert!(bytes.ends_with(&[0u8; 2 * BLOCK]));
        let img = image(bytes);
        assert_eq!(read(&img, "a/one.txt"), b"one\n");
        assert!(img.get("a/empty").unwrap().is_dir());
        assert_eq!(img.get("a").unwrap().mode, 0o755);
        assert_eq!(read(&img, "b"), vec![7u8; 1500]);
        assert_eq!(img.get("b").unwrap().mode, 0o644);
        assert_eq!(img.get("b").unwrap().mtime, 0);
        assert_eq!(read(&img, &deep), b"deep");
        assert_eq!(read(&img, &unsplittable), b"pax");
        assert_eq!(read(&img, "caf\u{e9}"), b"");
        // Root, a, a/empty, b, caf\u{e9}, x…, and sub…/ plus its file.
        assert_eq!(img.len(), 9);
    }

    #[test]
    fn pack_of_nothing_is_the_end_of_archive() {
        let mut bytes = Vec::new();
        pack(&mut bytes, []).unwrap();
        assert_eq!(bytes, vec![0u8; 2 * BLOCK]);
        assert_eq!(image(bytes).len(), 1);
    }

    #[test]
    fn image_bytes_owned_reads_like_a_vec() {
        let bytes = ImageBytes::from(b"abc".to_vec());
        assert!(!bytes.is_mapped());
        assert_eq!(bytes.as_ref(), b"abc");
    }
}
