//! Objects on local disk: one file per object holding a JSON header (metadata) and
//! the data, written to a temp file, fsync'd and renamed, so readers see either the
//! old or the new object, never a mix. POSTed metadata lives in a `.meta` beside it.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::error::StorageError;
use wire::timestamp::Timestamp;

const MAGIC: &[u8; 8] = b"ZCOBJ01\n";
/// Largest header we accept when reading back (metadata is capped far lower).
const MAX_HEADER: u32 = 1 << 20;

/// Everything about an object but its bytes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ObjectMeta {
    /// `/account/container/object`
    pub name: String,
    /// Timestamp of the PUT that created the data.
    pub data_ts: Timestamp,
    /// Timestamp of the newest metadata change (the PUT, or a later POST).
    pub meta_ts: Timestamp,
    pub content_type: String,
    pub etag: String,
    pub size: u64,
    /// Persisted headers (lower-case name, value as latin-1 text so any byte survives):
    /// `x-object-meta-*`, `content-disposition`, `content-encoding`, …
    pub headers: Vec<(String, String)>,
    pub delete_at: Option<u64>,
}

impl ObjectMeta {
    /// Past its `X-Delete-At` at `now` (Unix seconds): gone for clients.
    pub fn is_expired(&self, now: u64) -> bool {
        self.delete_at.is_some_and(|at| at <= now)
    }
}

/// What a POST replaces.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MetaUpdate {
    ts: Timestamp,
    content_type: Option<String>,
    headers: Vec<(String, String)>,
    delete_at: Option<u64>,
}

impl MetaUpdate {
    /// The metadata as this POST leaves it.
    fn apply(self, meta: &mut ObjectMeta) {
        meta.meta_ts = self.ts;
        if let Some(ct) = self.content_type {
            meta.content_type = ct;
        }
        meta.headers = self.headers;
        meta.delete_at = self.delete_at;
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DataHeader {
    name: String,
    ts: Timestamp,
    content_type: String,
    etag: String,
    size: u64,
    headers: Vec<(String, String)>,
    delete_at: Option<u64>,
}

pub struct ObjectStore {
    root: PathBuf,
    tmp: PathBuf,
    fsync: bool,
    /// Striped by path hash: a check-then-rename on one object is never interleaved
    /// with another write to it.
    locks: Vec<std::sync::Mutex<()>>,
}

/// An open object: its metadata and a file positioned at the first data byte.
pub struct OpenObject {
    pub meta: ObjectMeta,
    pub file: File,
    pub data_offset: u64,
}

/// Hash of an object path: the file name, and what the ring hashes.
pub fn path_hash(path: &str) -> String {
    hex::encode(Md5::digest(path.as_bytes()))
}

impl ObjectStore {
    pub fn open(data_dir: &Path, fsync: bool) -> io::Result<ObjectStore> {
        let root = data_dir.join("objects");
        let tmp = data_dir.join("tmp");
        fs::create_dir_all(&root)?;
        fs::create_dir_all(&tmp)?;
        // Temp files of writes that never finished (a crash mid-PUT) are garbage.
        for e in fs::read_dir(&tmp)?.flatten() {
            let _ = fs::remove_file(e.path());
        }
        let locks = (0..64).map(|_| std::sync::Mutex::new(())).collect();
        Ok(ObjectStore {
            root,
            tmp,
            fsync,
            locks,
        })
    }

    fn lock(&self, name: &str) -> std::sync::MutexGuard<'_, ()> {
        let h = Md5::digest(name.as_bytes());
        let m = &self.locks[usize::from(h[0]) % self.locks.len()];
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn paths(&self, name: &str) -> (PathBuf, PathBuf, PathBuf) {
        let h = path_hash(name);
        let dir = self.root.join(&h[..3]);
        (
            dir.join(format!("{h}.data")),
            dir.join(format!("{h}.meta")),
            dir,
        )
    }

    /// The data file of an object (it may not exist).
    pub fn data_path(&self, name: &str) -> PathBuf {
        self.paths(name).0
    }

    /// Starts a write; the caller streams data into it and then commits.
    pub fn writer(&self) -> io::Result<ObjectWriter> {
        let tmp_path = self.tmp.join(format!("{:016x}.tmp", rand::random::<u64>()));
        // Readable too: an exec session writes the data itself and
        // `adopt_data` reads it back for its MD5.
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp_path)?;
        Ok(ObjectWriter {
            file: Some(file),
            tmp_path,
            md5: Md5::new(),
            size: 0,
            header_len: 0,
        })
    }

    /// Reads an object's metadata and opens its data, applying a newer `.meta`.
    pub fn open_object(&self, name: &str) -> Result<Option<OpenObject>, StorageError> {
        let (data_path, meta_path, _) = self.paths(name);
        let mut file = match File::open(&data_path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let (hdr, data_offset) = read_header(&mut file)?;
        if hdr.name != name {
            // md5 collision: astronomically unlikely, but never serve the wrong object.
            return Err(StorageError::Corrupt(format!(
                "hash collision between {name} and {}",
                hdr.name
            )));
        }
        let mut meta = ObjectMeta {
            name: hdr.name,
            data_ts: hdr.ts,
            meta_ts: hdr.ts,
            content_type: hdr.content_type,
            etag: hdr.etag,
            size: hdr.size,
            headers: hdr.headers,
            delete_at: hdr.delete_at,
        };
        if let Some(upd) = read_meta(&meta_path)? {
            if upd.ts > meta.data_ts {
                upd.apply(&mut meta);
            }
        }
        Ok(Some(OpenObject {
            meta,
            file,
            data_offset,
        }))
    }

    pub fn head(&self, name: &str) -> Result<Option<ObjectMeta>, StorageError> {
        Ok(self.open_object(name)?.map(|o| o.meta))
    }

    /// Puts a finished temp file in place unless a newer object is already there.
    /// Returns false (and discards the data) when the existing object is newer.
    pub fn commit(&self, w: ObjectWriter, meta: &ObjectMeta) -> Result<bool, StorageError> {
        let (data_path, meta_path, dir) = self.paths(&meta.name);
        let mut w = w;
        let mut file = w
            .file
            .take()
            .ok_or_else(|| StorageError::Io(io::Error::other("object writer already committed")))?;
        // The header goes at the front: it was reserved by `reserve_header`.
        let hdr = DataHeader {
            name: meta.name.clone(),
            ts: meta.data_ts,
            content_type: meta.content_type.clone(),
            etag: meta.etag.clone(),
            size: meta.size,
            headers: meta.headers.clone(),
            delete_at: meta.delete_at,
        };
        let json = serde_json::to_vec(&hdr).map_err(io::Error::other)?;
        if json.len() as u64 + 12 > w.header_len {
            return Err(StorageError::Io(io::Error::other(
                "object header too large",
            )));
        }
        file.seek(SeekFrom::Start(0))?;
        file.write_all(MAGIC)?;
        file.write_all(&(json.len() as u32).to_le_bytes())?;
        file.write_all(&json)?;
        if self.fsync {
            file.sync_data()?;
        }
        drop(file);
        let _guard = self.lock(&meta.name);
        if let Some(existing) = self.head(&meta.name)? {
            if existing.data_ts >= meta.data_ts {
                let _ = fs::remove_file(&w.tmp_path);
                return Ok(false);
            }
        }
        fs::create_dir_all(&dir)?;
        fs::rename(&w.tmp_path, &data_path)?;
        w.tmp_path = PathBuf::new();
        // A POST older than this PUT no longer applies.
        if let Ok(Some(upd)) = read_meta(&meta_path) {
            if upd.ts <= meta.data_ts {
                let _ = fs::remove_file(&meta_path);
            }
        }
        if self.fsync {
            File::open(&dir)?.sync_all()?;
        }
        Ok(true)
    }

    /// Replaces content type (if given), persisted headers and delete-at, and
    /// returns the resulting metadata. `None` when there is no object, or it
    /// expired (`delete_at <= now`): a POST does not revive an expired object.
    pub fn post(
        &self,
        name: &str,
        ts: Timestamp,
        content_type: Option<String>,
        headers: Vec<(String, String)>,
        delete_at: Option<u64>,
        now: u64,
    ) -> Result<Option<ObjectMeta>, StorageError> {
        let _guard = self.lock(name);
        let Some(mut cur) = self.head(name)?.filter(|m| !m.is_expired(now)) else {
            return Ok(None);
        };
        if cur.meta_ts >= ts {
            return Err(StorageError::Conflict);
        }
        let (_, meta_path, dir) = self.paths(name);
        let upd = MetaUpdate {
            ts,
            content_type,
            headers,
            delete_at,
        };
        let tmp_path = self
            .tmp
            .join(format!("{:016x}.meta", rand::random::<u64>()));
        let mut f = File::create(&tmp_path)?;
        f.write_all(&serde_json::to_vec(&upd).map_err(io::Error::other)?)?;
        if self.fsync {
            f.sync_data()?;
        }
        fs::rename(&tmp_path, &meta_path)?;
        if self.fsync {
            File::open(&dir)?.sync_all()?;
        }
        // What `open_object` would now read back, without reading it again.
        upd.apply(&mut cur);
        Ok(Some(cur))
    }

    /// Removes the object if it is older than `ts`; returns what was there.
    pub fn delete(&self, name: &str, ts: Timestamp) -> Result<Option<ObjectMeta>, StorageError> {
        let _guard = self.lock(name);
        let Some(cur) = self.head(name)? else {
            return Ok(None);
        };
        if cur.data_ts >= ts {
            return Err(StorageError::Conflict);
        }
        let (data_path, meta_path, dir) = self.paths(name);
        fs::remove_file(&data_path)?;
        let _ = fs::remove_file(&meta_path);
        if self.fsync {
            File::open(&dir)?.sync_all()?;
        }
        Ok(Some(cur))
    }
}

fn read_header(file: &mut File) -> Result<(DataHeader, u64), StorageError> {
    let mut fixed = [0u8; 12];
    file.read_exact(&mut fixed)?;
    if &fixed[..8] != MAGIC {
        return Err(StorageError::Corrupt("bad object file magic".into()));
    }
    let len = u32::from_le_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]);
    if len > MAX_HEADER {
        return Err(StorageError::Corrupt("object header too large".into()));
    }
    let mut buf = vec![0u8; len as usize];
    file.read_exact(&mut buf)?;
    let hdr: DataHeader = serde_json::from_slice(&buf)
        .map_err(|e| StorageError::Corrupt(format!("object header: {e}")))?;
    // The header area is padded: data starts at the reserved offset, stored as the
    // first u32 after the padding would be fragile, so we compute it from the length.
    let data_offset = header_area(len as u64);
    file.seek(SeekFrom::Start(data_offset))?;
    Ok((hdr, data_offset))
}

/// Bytes reserved for the header: rounded up to 4 KiB so data stays page-aligned.
fn header_area(json_len: u64) -> u64 {
    (json_len + 12).div_ceil(4096) * 4096
}

/// The header area `meta`'s header fits in, whatever its etag and size
/// (filled in at commit: room for 32 hex digits and the longest size).
fn header_area_for(meta: &ObjectMeta) -> io::Result<u64> {
    let probe = DataHeader {
        name: meta.name.clone(),
        ts: meta.data_ts,
        content_type: meta.content_type.clone(),
        etag: "0".repeat(32),
        size: u64::MAX,
        headers: meta.headers.clone(),
        delete_at: meta.delete_at,
    };
    let json_len = serde_json::to_vec(&probe).map_err(io::Error::other)?.len() as u64;
    Ok(header_area(json_len))
}

fn read_meta(path: &Path) -> Result<Option<MetaUpdate>, StorageError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(serde_json::from_slice(&b).map_err(|e| {
            StorageError::Corrupt(format!("meta file {}: {e}", path.display()))
        })?)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A write in progress: data goes to a temp file after a reserved header area.
pub struct ObjectWriter {
    file: Option<File>,
    tmp_path: PathBuf,
    md5: Md5,
    size: u64,
    header_len: u64,
}

impl ObjectWriter {
    /// Reserves room for the header, given the metadata that will go in it.
    /// Must be called once, before any data.
    pub fn reserve_header(&mut self, meta: &ObjectMeta) -> io::Result<()> {
        self.header_len = header_area_for(meta)?;
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("writer closed"))?;
        f.seek(SeekFrom::Start(self.header_len))?;
        Ok(())
    }

    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.md5.update(data);
        self.size += data.len() as u64;
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("writer closed"))?
            .write_all(data)
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The temporary file being written.
    pub fn tmp_path(&self) -> &Path {
        &self.tmp_path
    }

    /// The open temporary file, for someone else to write the data into
    /// (at [`ObjectWriter::header_len`] and after); then
    /// [`ObjectWriter::adopt_data`].
    pub fn file(&self) -> io::Result<&File> {
        self.file
            .as_ref()
            .ok_or_else(|| io::Error::other("writer closed"))
    }

    /// Where the data starts in the file (set by `reserve_header`).
    pub fn header_len(&self) -> u64 {
        self.header_len
    }

    /// Drops the first `skip` bytes of the data someone else wrote after
    /// the header area and reserves the area anew for `meta` (whose header
    /// may be longer than the one reserved): the rest of the data is moved
    /// in the file to start right after it. Then
    /// [`ObjectWriter::adopt_data`].
    pub fn cut_front(&mut self, skip: u64, meta: &ObjectMeta) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let new_header = header_area_for(meta)?;
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("writer closed"))?;
        let src = self.header_len.saturating_add(skip);
        let len = f.metadata()?.len().saturating_sub(src);
        let dst = new_header;
        let mut buf = vec![0u8; 256 * 1024];
        let chunk = buf.len() as u64;
        if dst < src {
            let mut done = 0;
            while done < len {
                let n = chunk.min(len - done) as usize;
                f.read_exact_at(&mut buf[..n], src + done)?;
                f.write_all_at(&buf[..n], dst + done)?;
                done += n as u64;
            }
        } else if dst > src {
            // Backwards, so that nothing is overwritten before it is read.
            let mut left = len;
            while left > 0 {
                let n = chunk.min(left);
                left -= n;
                f.read_exact_at(&mut buf[..n as usize], src + left)?;
                f.write_all_at(&buf[..n as usize], dst + left)?;
            }
        }
        f.set_len(dst + len)?;
        self.header_len = new_header;
        Ok(())
    }

    /// Takes the data someone else wrote after the header area as this
    /// object's data: its size and MD5 are computed from the file.
    pub fn adopt_data(&mut self) -> io::Result<()> {
        let header_len = self.header_len;
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("writer closed"))?;
        f.seek(SeekFrom::Start(header_len))?;
        let mut md5 = Md5::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            md5.update(&buf[..n]);
            size += n as u64;
        }
        self.md5 = md5;
        self.size = size;
        Ok(())
    }

    pub fn etag(&self) -> String {
        hex::encode(self.md5.clone().finalize())
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        // An abandoned write (short body, bad etag, error) leaves nothing behind.
        if !self.tmp_path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, ts: u64) -> ObjectMeta {
        ObjectMeta {
            name: name.into(),
            data_ts: Timestamp(ts),
            meta_ts: Timestamp(ts),
            content_type: "text/plain".into(),
            etag: String::new(),
            size: 0,
            headers: vec![("x-object-meta-a".into(), "b".into())],
            delete_at: None,
        }
    }

    fn put(store: &ObjectStore, name: &str, ts: u64, body: &[u8]) -> bool {
        let mut m = meta(name, ts);
        let mut w = store.writer().unwrap();
        w.reserve_header(&m).unwrap();
        w.write(body).unwrap();
        m.etag = w.etag();
        m.size = w.size();
        store.commit(w, &m).unwrap()
    }

    #[test]
    fn cut_front_moves_the_data_after_a_header_of_any_size() {
        let d = tempfile::tempdir().unwrap();
        let s = ObjectStore::open(d.path(), false).unwrap();
        // Data larger than the copy buffer, so the move takes several steps.
        let data: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        for (grow, skip) in [(0usize, 0u64), (0, 1000), (9000, 7), (20_000, 300_000)] {
            let mut m = meta("/a/c/o", 10);
            let mut w = s.writer().unwrap();
            w.reserve_header(&m).unwrap();
            w.write(&data).unwrap();
            // A header that now needs more room (or the same).
            m.headers = vec![("x-object-meta-big".into(), "v".repeat(grow))];
            w.cut_front(skip, &m).unwrap();
            w.adopt_data().unwrap();
            m.etag = w.etag();
            m.size = w.size();
            assert!(s.commit(w, &m).unwrap());
            let mut o = s.open_object("/a/c/o").unwrap().unwrap();
            let mut got = Vec::new();
            o.file.read_to_end(&mut got).unwrap();
            assert_eq!(got, data[skip as usize..], "grow {grow} skip {skip}");
            assert_eq!(o.meta.size, data.len() as u64 - skip);
            assert_eq!(o.meta.headers, m.headers);
            assert!(s.delete("/a/c/o", Timestamp(11)).unwrap().is_some());
            let _ = fs::remove_dir_all(d.path().join("objects"));
        }
    }

    #[test]
    fn put_read_overwrite_delete() {
        let d = tempfile::tempdir().unwrap();
        let s = ObjectStore::open(d.path(), false).unwrap();
        assert!(put(&s, "/a/c/o", 10, b"hello"));
        let mut o = s.open_object("/a/c/o").unwrap().unwrap();
        let mut buf = String::new();
        o.file.read_to_string(&mut buf).unwrap();
        assert_eq!(buf, "hello");
        assert_eq!(o.meta.etag, "5d41402abc4b2a76b9719d911017c592");
        // An older PUT loses, a newer one wins.
        assert!(!put(&s, "/a/c/o", 5, b"old"));
        assert!(put(&s, "/a/c/o", 20, b"new data"));
        assert_eq!(s.head("/a/c/o").unwrap().unwrap().size, 8);
        assert!(s.delete("/a/c/o", Timestamp(30)).unwrap().is_some());
        assert!(s.head("/a/c/o").unwrap().is_none());
        assert_eq!(fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn post_applies_only_when_newer_than_data() {
        let d = tempfile::tempdir().unwrap();
        let s = ObjectStore::open(d.path(), false).unwrap();
        put(&s, "/a/c/o", 10, b"x");
        let m = s
            .post(
                "/a/c/o",
                Timestamp(20),
                Some("a/b".into()),
                vec![],
                Some(99),
                0,
            )
            .unwrap()
            .unwrap();
        assert_eq!(m.content_type, "a/b");
        assert!(m.headers.is_empty());
        assert_eq!(m.delete_at, Some(99));
        // What POST returns is what a read sees.
        assert_eq!(s.head("/a/c/o").unwrap().unwrap(), m);
        // Once expired, a POST finds nothing (and changes nothing).
        assert!(s
            .post("/a/c/o", Timestamp(25), None, vec![], None, 99)
            .unwrap()
            .is_none());
        assert_eq!(s.head("/a/c/o").unwrap().unwrap(), m);
        // A newer PUT drops the POSTed metadata.
        put(&s, "/a/c/o", 30, b"y");
        let m = s.head("/a/c/o").unwrap().unwrap();
        assert_eq!(m.content_type, "text/plain");
        assert_eq!(m.delete_at, None);
    }

    #[test]
    fn abandoned_writer_leaves_no_temp_file() {
        let d = tempfile::tempdir().unwrap();
        let s = ObjectStore::open(d.path(), false).unwrap();
        let mut w = s.writer().unwrap();
        w.reserve_header(&meta("/a/c/o", 1)).unwrap();
        w.write(b"partial").unwrap();
        drop(w);
        assert_eq!(fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
        assert!(s.head("/a/c/o").unwrap().is_none());
    }
}
