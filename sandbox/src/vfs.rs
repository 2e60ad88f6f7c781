//! The guest's file system: one virtual root `/` made of channel devices under their
//! aliases, tar images mounted read-only, and a writable in-memory layer discarded at exit.
//!
//! Paths are resolved lexically against `/` (`..` stops at the root), so no
//! guest path can name anything outside this tree, and nothing here ever
//! touches a host path. Lookup order for a path: a channel alias, a file or
//! directory of the writable layer, the last-mounted tar image covering it,
//! then a directory implied by any of those (`/dev` exists because
//! `/dev/stdin` does). Writing to a tar file gives EROFS; new files go to
//! the writable layer, whose total size is capped (ENOSPC past the cap).
//!
//! Tar images are served from their [`ImageBytes`] in place (usually a
//! memory map of the channel's file): mounting indexes the headers, reading
//! copies only the bytes asked for. [`Vfs::pack`] writes the writable
//! layer under a directory as a tar (NVRAM `[fstab]` `access=wo`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Arc;

use crate::tar::{self, EntryKind, ImageBytes, LookupError, PackMember, TarImage};

/// Longest path accepted (bytes), like Linux's PATH_MAX.
pub const PATH_LIMIT: usize = 4096;

/// WASI file types (`filetype` in preview1).
pub mod filetype {
    /// Unknown.
    pub const UNKNOWN: u8 = 0;
    /// Character device (sequential channels).
    pub const CHARACTER_DEVICE: u8 = 2;
    /// Directory.
    pub const DIRECTORY: u8 = 3;
    /// Regular file.
    pub const REGULAR_FILE: u8 = 4;
    /// Symbolic link.
    pub const SYMBOLIC_LINK: u8 = 7;
}

/// Why a file-system operation failed; the WASI layer maps these to errnos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VfsError {
    /// ENOENT.
    #[error("no such file or directory")]
    NotFound,
    /// ENOTDIR.
    #[error("not a directory")]
    NotADirectory,
    /// EISDIR.
    #[error("is a directory")]
    IsADirectory,
    /// ELOOP.
    #[error("too many levels of symbolic links")]
    Loop,
    /// EEXIST.
    #[error("file exists")]
    Exists,
    /// EROFS: a tar image or a channel device.
    #[error("read-only file system")]
    ReadOnly,
    /// ENOSPC: the writable layer is full.
    #[error("no space left on device")]
    NoSpace,
    /// ENAMETOOLONG.
    #[error("file name too long")]
    NameTooLong,
    /// ENOTEMPTY.
    #[error("directory not empty")]
    NotEmpty,
}

impl From<LookupError> for VfsError {
    fn from(e: LookupError) -> Self {
        match e {
            LookupError::NotFound => VfsError::NotFound,
            LookupError::NotADirectory => VfsError::NotADirectory,
            LookupError::IsADirectory => VfsError::IsADirectory,
            LookupError::TooManyLinks => VfsError::Loop,
        }
    }
}

/// What a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A channel, by handle.
    Channel(usize),
    /// A directory (of any layer; listings merge them all).
    Dir,
    /// A file of the writable layer.
    MemFile,
    /// A file of a tar image: mount index and path inside the image.
    TarFile {
        /// Index into the mounts.
        mount: usize,
        /// Resolved path inside the image.
        path: String,
        /// Bytes.
        size: u64,
        /// Modification time (seconds).
        mtime: i64,
    },
}

struct Mount {
    point: String,
    image: Arc<TarImage<ImageBytes>>,
}

/// The guest file system of one session.
pub struct Vfs {
    channels: BTreeMap<String, (usize, u8)>,
    mounts: Vec<Mount>,
    files: BTreeMap<String, Vec<u8>>,
    dirs: BTreeSet<String>,
    layer_bytes: u64,
    layer_limit: u64,
}

impl std::fmt::Debug for Vfs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vfs")
            .field("channels", &self.channels.len())
            .field("mounts", &self.mounts.len())
            .field("files", &self.files.len())
            .finish_non_exhaustive()
    }
}

/// Resolves `path` against the directory `base` (both guest paths) into an
/// absolute, clean path: `.` and empty components dropped, `..` pops but
/// never above `/`.
pub fn normalize(base: &str, path: &str) -> Result<String, VfsError> {
    if path.len() > PATH_LIMIT || base.len() > PATH_LIMIT {
        return Err(VfsError::NameTooLong);
    }
    let mut parts: Vec<&str> = Vec::new();
    let whole = if path.starts_with('/') {
        ["", path]
    } else {
        [base, path]
    };
    for piece in whole {
        for part in piece.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                p => parts.push(p),
            }
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// `path` relative to the directory `dir` if it is `dir` itself or below it.
fn under<'a>(path: &'a str, dir: &str) -> Option<&'a str> {
    if dir == "/" {
        return Some(path.trim_start_matches('/'));
    }
    let rest = path.strip_prefix(dir)?;
    if rest.is_empty() {
        Some("")
    } else {
        rest.strip_prefix('/')
    }
}

impl Vfs {
    /// An empty tree whose writable layer may hold `layer_limit` bytes.
    pub fn new(layer_limit: u64) -> Vfs {
        Vfs {
            channels: BTreeMap::new(),
            mounts: Vec::new(),
            files: BTreeMap::new(),
            dirs: BTreeSet::new(),
            layer_bytes: 0,
            layer_limit,
        }
    }

    /// Shows channel `handle` at `alias` with the given file type.
    pub fn add_channel(&mut self, alias: &str, handle: usize, filetype: u8) {
        if let Ok(path) = normalize("/", alias) {
            self.channels.insert(path, (handle, filetype));
        }
    }

    /// Mounts a tar image read-only at `point`; later mounts hide earlier
    /// ones. The image's storage is kept as it is ([`ImageBytes`]: a map or
    /// owned bytes); a shared image (an engine's system images) serves
    /// every session that mounts it.
    pub fn mount(
        &mut self,
        point: &str,
        image: impl Into<Arc<TarImage<ImageBytes>>>,
    ) -> Result<(), VfsError> {
        let point = normalize("/", point)?;
        self.mounts.push(Mount {
            point,
            image: image.into(),
        });
        Ok(())
    }

    /// The file type of a channel as shown under its alias.
    pub fn channel_filetype(&self, handle: usize) -> u8 {
        self.channels
            .values()
            .find(|(h, _)| *h == handle)
            .map_or(filetype::CHARACTER_DEVICE, |(_, t)| *t)
    }

    /// What the absolute, normalized `path` names.
    pub fn lookup(&self, path: &str) -> Result<Node, VfsError> {
        if let Some((handle, _)) = self.channels.get(path) {
            return Ok(Node::Channel(*handle));
        }
        if self.files.contains_key(path) {
            return Ok(Node::MemFile);
        }
        if self.dirs.contains(path) || path == "/" {
            return Ok(Node::Dir);
        }
        for (index, mount) in self.mounts.iter().enumerate().rev() {
            let Some(rel) = under(path, &mount.point) else {
                continue;
            };
            match mount.image.resolve(rel, true) {
                Ok((resolved, entry)) => {
                    return Ok(match entry.kind {
                        EntryKind::Directory => Node::Dir,
                        _ => Node::TarFile {
                            mount: index,
                            path: resolved,
                            size: entry.size,
                            mtime: entry.mtime,
                        },
                    })
                }
                Err(LookupError::NotFound) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        if self.implied_dir(path) {
            return Ok(Node::Dir);
        }
        Err(VfsError::NotFound)
    }

    fn implied_dir(&self, path: &str) -> bool {
        let prefix = if path == "/" {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        let below = |p: &String| p.starts_with(&prefix);
        self.channels.keys().any(below)
            || self.files.keys().any(below)
            || self.dirs.iter().any(below)
            || self
                .mounts
                .iter()
                .any(|m| m.point == path || below(&m.point))
    }

    /// The names in directory `path` with their file types, sorted, merged
    /// over every layer.
    pub fn list_dir(&self, path: &str) -> Result<Vec<(String, u8)>, VfsError> {
        if self.lookup(path)? != Node::Dir {
            return Err(VfsError::NotADirectory);
        }
        let mut names: BTreeMap<String, u8> = BTreeMap::new();
        let mut child = |full: &str, leaf_type: u8| {
            if let Some(rest) = under(full, path) {
                if rest.is_empty() {
                    return;
                }
                match rest.split_once('/') {
                    Some((first, _)) => {
                        names.insert(first.to_string(), filetype::DIRECTORY);
                    }
                    None => {
                        names.entry(rest.to_string()).or_insert(leaf_type);
                    }
                }
            }
        };
        for (alias, (_, t)) in &self.channels {
            child(alias, *t);
        }
        for file in self.files.keys() {
            child(file, filetype::REGULAR_FILE);
        }
        for dir in &self.dirs {
            child(dir, filetype::DIRECTORY);
        }
        for mount in &self.mounts {
            child(&mount.point, filetype::DIRECTORY);
        }
        for mount in &self.mounts {
            let Some(rel) = under(path, &mount.point) else {
                continue;
            };
            if let Ok(entries) = mount.image.list_dir(rel) {
                for (name, entry) in entries {
                    let t = match entry.kind {
                        EntryKind::Directory => filetype::DIRECTORY,
                        EntryKind::File => filetype::REGULAR_FILE,
                        EntryKind::Symlink(_) => filetype::SYMBOLIC_LINK,
                    };
                    names.entry(name.to_string()).or_insert(t);
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Copies tar file bytes at `offset` into `buf`.
    pub fn read_tar(
        &self,
        mount: usize,
        path: &str,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, VfsError> {
        let mount = self.mounts.get(mount).ok_or(VfsError::NotFound)?;
        Ok(mount.image.read_at(path, offset, buf)?)
    }

    /// Creates directory `path` and its missing parents in the writable
    /// layer (nothing if it exists as a directory).
    pub fn mkdir_all(&mut self, path: &str) -> Result<(), VfsError> {
        let path = normalize("/", path)?;
        let mut at = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            at.push('/');
            at.push_str(part);
            match self.lookup(&at) {
                Ok(Node::Dir) => {}
                Ok(_) => return Err(VfsError::NotADirectory),
                Err(VfsError::NotFound) => {
                    self.dirs.insert(at.clone());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes the writable layer's files and directories strictly under
    /// `point` as a ustar archive ([`tar::pack`]): paths relative to
    /// `point`, in byte order (so a directory comes before what it holds),
    /// every directory leading to a file included; channels and tar images
    /// are not part of it. What an `access=wo` image receives at exit.
    pub fn pack(&self, point: &str, out: &mut dyn Write) -> std::io::Result<()> {
        let point = normalize("/", point)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let mut dirs: BTreeSet<&str> = BTreeSet::new();
        fn relative<'a>(p: &'a str, point: &str) -> Option<&'a str> {
            under(p, point).filter(|rel| !rel.is_empty())
        }
        for dir in &self.dirs {
            if let Some(rel) = relative(dir, &point) {
                dirs.insert(rel);
            }
        }
        let mut files: BTreeMap<&str, &[u8]> = BTreeMap::new();
        for (path, bytes) in &self.files {
            if let Some(rel) = relative(path, &point) {
                files.insert(rel, bytes);
                let mut parent = rel;
                while let Some((up, _)) = parent.rsplit_once('/') {
                    dirs.insert(up);
                    parent = up;
                }
            }
        }
        let mut members: Vec<PackMember<'_>> = dirs
            .iter()
            .map(|d| PackMember::Dir(d))
            .chain(files.iter().map(|(p, b)| PackMember::File(p, b)))
            .collect();
        members.sort_by(|a, b| member_path(a).cmp(member_path(b)));
        tar::pack(out, members)
    }

    /// Creates (or, with `truncate`, empties) a file of the writable layer.
    /// `exclusive` fails if the path exists.
    pub fn create(&mut self, path: &str, exclusive: bool, truncate: bool) -> Result<(), VfsError> {
        match self.lookup(path) {
            Ok(Node::MemFile) if exclusive => Err(VfsError::Exists),
            Ok(Node::MemFile) => {
                if truncate {
                    self.truncate(path, 0)?;
                }
                Ok(())
            }
            Ok(Node::Dir) => Err(VfsError::IsADirectory),
            Ok(_) if exclusive => Err(VfsError::Exists),
            Ok(_) => Err(VfsError::ReadOnly),
            Err(VfsError::NotFound) => {
                let parent = normalize(path, "..")?;
                if self.lookup(&parent)? != Node::Dir {
                    return Err(VfsError::NotADirectory);
                }
                self.files.insert(path.to_string(), Vec::new());
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Creates a directory in the writable layer.
    pub fn mkdir(&mut self, path: &str) -> Result<(), VfsError> {
        match self.lookup(path) {
            Ok(_) => Err(VfsError::Exists),
            Err(VfsError::NotFound) => {
                let parent = normalize(path, "..")?;
                if self.lookup(&parent)? != Node::Dir {
                    return Err(VfsError::NotADirectory);
                }
                self.dirs.insert(path.to_string());
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Removes a file of the writable layer.
    pub fn unlink(&mut self, path: &str) -> Result<(), VfsError> {
        match self.lookup(path)? {
            Node::MemFile => {
                if let Some(bytes) = self.files.remove(path) {
                    self.layer_bytes -= bytes.len() as u64;
                }
                Ok(())
            }
            Node::Dir => Err(VfsError::IsADirectory),
            _ => Err(VfsError::ReadOnly),
        }
    }

    /// Removes an empty directory of the writable layer.
    pub fn rmdir(&mut self, path: &str) -> Result<(), VfsError> {
        if !self.dirs.contains(path) {
            return match self.lookup(path)? {
                Node::Dir => Err(VfsError::ReadOnly),
                _ => Err(VfsError::NotADirectory),
            };
        }
        if !self.list_dir(path)?.is_empty() {
            return Err(VfsError::NotEmpty);
        }
        self.dirs.remove(path);
        Ok(())
    }

    /// Size of a writable-layer file.
    pub fn mem_size(&self, path: &str) -> Result<u64, VfsError> {
        self.files
            .get(path)
            .map(|f| f.len() as u64)
            .ok_or(VfsError::NotFound)
    }

    /// Reads a writable-layer file at `offset`.
    pub fn mem_read(&self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, VfsError> {
        let bytes = self.files.get(path).ok_or(VfsError::NotFound)?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let n = buf.len().min(bytes.len() - start);
        buf[..n].copy_from_slice(&bytes[start..start + n]);
        Ok(n)
    }

    /// Writes a writable-layer file at `offset`, growing it (zero-filled).
    pub fn mem_write(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<usize, VfsError> {
        let current = self.files.get(path).ok_or(VfsError::NotFound)?.len() as u64;
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or(VfsError::NoSpace)?;
        if end > current {
            self.grow_budget(end - current)?;
        }
        let bytes = self.files.get_mut(path).ok_or(VfsError::NotFound)?;
        let (start, end) = (offset as usize, end as usize);
        if bytes.len() < end {
            bytes.resize(end, 0);
        }
        bytes[start..end].copy_from_slice(data);
        Ok(data.len())
    }

    /// Sets a writable-layer file's size.
    pub fn truncate(&mut self, path: &str, size: u64) -> Result<(), VfsError> {
        let current = self.files.get(path).ok_or(VfsError::NotFound)?.len() as u64;
        if size > current {
            self.grow_budget(size - current)?;
        } else {
            self.layer_bytes -= current - size;
        }
        let new_len = usize::try_from(size).map_err(|_| VfsError::NoSpace)?;
        if let Some(bytes) = self.files.get_mut(path) {
            bytes.resize(new_len, 0);
        }
        Ok(())
    }

    fn grow_budget(&mut self, more: u64) -> Result<(), VfsError> {
        let total = self
            .layer_bytes
            .checked_add(more)
            .ok_or(VfsError::NoSpace)?;
        if total > self.layer_limit {
            return Err(VfsError::NoSpace);
        }
        self.layer_bytes = total;
        Ok(())
    }
}

fn member_path<'a>(m: &PackMember<'a>) -> &'a str {
    match *m {
        PackMember::Dir(p) | PackMember::File(p, _) => p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_never_climbs_above_root() {
        assert_eq!(normalize("/", "../../etc/passwd").unwrap(), "/etc/passwd");
        assert_eq!(normalize("/dev/in", "../out/./x").unwrap(), "/dev/out/x");
        assert_eq!(normalize("/a", "/b//c/").unwrap(), "/b/c");
        assert_eq!(normalize("/", "..").unwrap(), "/");
    }

    proptest::proptest! {
        #[test]
        fn normalized_paths_are_clean_and_absolute(base in "(/[a-z.]{0,3}){0,4}", path in "[a-z./]{0,24}") {
            let n = normalize(&base, &path).unwrap();
            proptest::prop_assert!(n.starts_with('/'));
            proptest::prop_assert!(n == "/" || !n.ends_with('/'));
            for part in n.split('/').skip(1) {
                proptest::prop_assert!(n == "/" || !matches!(part, "" | "." | ".."), "{n}");
            }
        }
    }

    #[test]
    fn channels_imply_directories_and_list() {
        let mut v = Vfs::new(100);
        v.add_channel("/dev/stdin", 0, filetype::CHARACTER_DEVICE);
        v.add_channel("/dev/in/a", 3, filetype::REGULAR_FILE);
        v.add_channel("/dev/in/b", 4, filetype::REGULAR_FILE);
        assert_eq!(v.lookup("/dev").unwrap(), Node::Dir);
        assert_eq!(v.lookup("/dev/in/b").unwrap(), Node::Channel(4));
        assert_eq!(v.lookup("/etc/passwd"), Err(VfsError::NotFound));
        let names: Vec<String> = v
            .list_dir("/dev/in")
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(
            v.list_dir("/").unwrap(),
            [("dev".to_string(), filetype::DIRECTORY)]
        );
    }

    #[test]
    fn writable_layer_is_capped() {
        let mut v = Vfs::new(10);
        v.mkdir("/tmp").unwrap();
        v.create("/tmp/f", false, false).unwrap();
        assert_eq!(v.mem_write("/tmp/f", 0, b"12345678"), Ok(8));
        assert_eq!(v.mem_write("/tmp/f", 8, b"abc"), Err(VfsError::NoSpace));
        assert_eq!(v.create("/nodir/f", false, false), Err(VfsError::NotFound));
        v.unlink("/tmp/f").unwrap();
        v.create("/tmp/g", true, false).unwrap();
        assert_eq!(v.mem_write("/tmp/g", 0, b"0123456789"), Ok(10));
    }

    fn tar_of(members: &[PackMember<'_>]) -> Vec<u8> {
        let mut bytes = Vec::new();
        tar::pack(&mut bytes, members.iter().copied()).unwrap();
        bytes
    }

    #[test]
    fn mounted_images_are_read_in_place() {
        let bytes = tar_of(&[
            PackMember::Dir("lib"),
            PackMember::File("lib/a.txt", b"hello"),
        ]);
        let mut v = Vfs::new(0);
        v.mount("/opt", TarImage::new(ImageBytes::from(bytes)).unwrap())
            .unwrap();
        let Node::TarFile {
            mount, path, size, ..
        } = v.lookup("/opt/lib/a.txt").unwrap()
        else {
            panic!("not a tar file");
        };
        assert_eq!(size, 5);
        let mut buf = [0u8; 3];
        assert_eq!(v.read_tar(mount, &path, 2, &mut buf), Ok(3));
        assert_eq!(&buf, b"llo");
        assert_eq!(
            v.read_tar(mount, "lib", 0, &mut buf),
            Err(VfsError::IsADirectory)
        );
        assert_eq!(v.lookup("/opt/lib").unwrap(), Node::Dir);
    }

    #[test]
    fn a_mapped_image_mounts_and_reads_like_an_owned_one() {
        use crate::channel::OpenChannel;
        use crate::manifest::{Channel, ChannelType, CheckedSource, Direction, Limits, LocalKind};
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("image.tar");
        let big = vec![b'z'; 300_000];
        std::fs::write(
            &file,
            tar_of(&[
                PackMember::File("a", b"first"),
                PackMember::File("big", &big),
            ]),
        )
        .unwrap();
        let spec = Channel {
            alias: "/dev/image".into(),
            channel_type: ChannelType::RGetRPut,
            direction: Direction::ReadOnly,
            etag: false,
            limits: Limits {
                gets: 100,
                get_size: 1 << 30,
                puts: 0,
                put_size: 0,
            },
            sources: vec![CheckedSource::Local {
                path: file.to_str().unwrap().into(),
                kind: LocalKind::Regular { size: None },
            }],
        };
        let mut c = OpenChannel::open(&spec).unwrap();
        let bytes = c.read_image(true).unwrap();
        assert!(bytes.is_mapped());
        let mut v = Vfs::new(0);
        v.mount("/", TarImage::new(bytes).unwrap()).unwrap();
        let mut buf = vec![0u8; 10];
        assert_eq!(v.read_tar(0, "big", 299_995, &mut buf), Ok(5));
        assert_eq!(&buf[..5], b"zzzzz");
        assert_eq!(v.read_tar(0, "a", 0, &mut buf), Ok(5));
        assert_eq!(&buf[..5], b"first");
    }

    #[test]
    fn mkdir_all_makes_the_missing_parents() {
        let mut v = Vfs::new(10);
        v.add_channel("/dev/out", 1, filetype::CHARACTER_DEVICE);
        v.mkdir_all("/out/a/b").unwrap();
        v.mkdir_all("/out/a").unwrap();
        v.mkdir_all("/").unwrap();
        assert_eq!(v.lookup("/out/a/b").unwrap(), Node::Dir);
        assert_eq!(v.mkdir_all("/dev/out/x"), Err(VfsError::NotADirectory));
    }

    #[test]
    fn pack_takes_the_writable_layer_under_the_point() {
        let mut v = Vfs::new(1000);
        v.add_channel("/out/chan", 3, filetype::REGULAR_FILE);
        v.mkdir_all("/out/sub/empty").unwrap();
        v.create("/out/sub/x.txt", false, false).unwrap();
        v.mem_write("/out/sub/x.txt", 0, b"xx").unwrap();
        v.create("/out/b", false, false).unwrap();
        v.mem_write("/out/b", 0, b"bee").unwrap();
        v.create("/elsewhere", false, false).unwrap();
        v.mem_write("/elsewhere", 0, b"no").unwrap();
        let mut bytes = Vec::new();
        v.pack("/out", &mut bytes).unwrap();
        let mut again = Vec::new();
        v.pack("/out/", &mut again).unwrap();
        assert_eq!(bytes, again, "deterministic");
        let img = TarImage::new(bytes).unwrap();
        let mut names: Vec<&str> = img.entries().map(|(p, _)| p).collect();
        names.sort_unstable();
        assert_eq!(names, ["", "b", "sub", "sub/empty", "sub/x.txt"]);
        assert_eq!(img.contents(img.get("b").unwrap()), b"bee");
        assert_eq!(img.contents(img.get("sub/x.txt").unwrap()), b"xx");
        // The whole layer from the root: the parents of every file too.
        let mut bytes = Vec::new();
        v.pack("/", &mut bytes).unwrap();
        let img = TarImage::new(bytes).unwrap();
        assert!(img.get("out").unwrap().is_dir());
        assert_eq!(img.contents(img.get("elsewhere").unwrap()), b"no");
        assert!(img.get("out/chan").is_none());
        // Nothing under a point that holds nothing: just the end blocks.
        let mut bytes = Vec::new();
        v.pack("/none", &mut bytes).unwrap();
        assert_eq!(bytes, vec![0u8; 2 * tar::BLOCK]);
    }
}
