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
//! Quotas, exactly as §4.4: a call made when `gets`/`puts` calls are used up
//! fails with [`ChannelError::Quota`] (EDQUOT); a transfer that would cross
//! `get_size`/`put_size` is **clipped to what remains** (a short read/write,
//! not an error) and the next call, with nothing remaining, fails with
//! EDQUOT. So nothing beyond a quota is ever written, and a program that
//! writes past `put_size` sees a short write followed by EDQUOT.
//!
//! Etags are MD5 (spec §13.11: what Debian's build and ZeroCloud use) over
//! every byte read and written, in call order.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::{Arc, Mutex};

use md5::{Digest, Md5};

use crate::manifest::{self, ChannelType, CheckedSource, Direction, Limits, LocalKind};
use crate::report::{ChannelEtag, IoCounters};

/// Host I/O is counted per chunk of this many bytes (§8).
pub const CHUNK: u64 = 64 * 1024;

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
    /// Network channels are not served in this engine yet (EPROTONOSUPPORT).
    #[error("invalid {0} source type")]
    Unsupported(String),
}

impl OpenError {
    /// zerovm's exit code for this failure.
    pub fn errno(&self) -> i32 {
        match self {
            OpenError::CannotOpen(_) => crate::errno::EFAULT,
            OpenError::Unsupported(_) => crate::errno::EPROTONOSUPPORT,
        }
    }
}

#[derive(Debug)]
enum Backing {
    /// A regular file: positioned I/O.
    File(File),
    /// A character device or FIFO: stream I/O, no positions.
    Stream(File),
    /// Bytes in memory, positioned like a file.
    Memory(SharedBuffer),
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
    /// Bytes in the source (files, memory); 0 for streams.
    size: u64,
    read_pos: u64,
    write_pos: u64,
    eof: bool,
    used: Used,
    io: IoCounters,
    etag: Option<Md5>,
}

impl OpenChannel {
    /// Opens a checked manifest channel on its (single, local) host source.
    pub fn open(channel: &manifest::Channel) -> Result<OpenChannel, OpenError> {
        let file = Self::open_source(channel)?;
        Self::from_file(channel, file)
    }

    /// Opens the host source of a channel the way [`OpenChannel::open`]
    /// does (regular files created 0600; write-only ones emptied), without
    /// wrapping it: the worker pool opens sources in the trusted process and
    /// hands the descriptors to a worker, which never opens host paths.
    pub fn open_source(channel: &manifest::Channel) -> Result<File, OpenError> {
        let alias = &channel.alias;
        let (path, kind) = match channel.sources.as_slice() {
            [CheckedSource::Local { path, kind }] => (path, *kind),
            // Several sources (a "multichannel") or a network endpoint.
            _ => return Err(OpenError::Unsupported(alias.clone())),
        };
        let mut options = OpenOptions::new();
        match channel.direction {
            Direction::ReadOnly => options.read(true),
            Direction::WriteOnly => options.write(true),
            Direction::ReadWrite => options.read(true).write(true),
        };
        let regular = matches!(kind, LocalKind::Regular { .. });
        if regular && channel.direction != Direction::ReadOnly {
            options.create(true).mode(0o600);
            // A write-only file starts empty; read-write keeps its bytes.
            options.truncate(channel.direction == Direction::WriteOnly);
        }
        options
            .open(path)
            .map_err(|_| OpenError::CannotOpen(path.clone()))
    }

    /// A channel over an already open host file: positioned I/O when it is
    /// a regular file, stream I/O otherwise (pipes, sockets, terminals).
    pub fn from_file(channel: &manifest::Channel, file: File) -> Result<OpenChannel, OpenError> {
        let meta = file
            .metadata()
            .map_err(|_| OpenError::CannotOpen(channel.alias.clone()))?;
        let (backing, size) = if meta.is_file() {
            (Backing::File(file), meta.len())
        } else {
            (Backing::Stream(file), 0)
        };
        Ok(Self::with_backing(channel, backing, size))
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
            read_pos: 0,
            write_pos,
            eof: false,
            used: Used::default(),
            io: IoCounters::default(),
            etag: channel.etag.then(Md5::new),
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

    /// Whether the source is a stream (character device, FIFO).
    pub fn is_stream(&self) -> bool {
        matches!(self.backing, Backing::Stream(_))
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
        if !self.limits.readable() {
            return Err(ChannelError::Invalid);
        }
        let random = self.channel_type.random_read() && !self.is_stream();
        let (offset, mut size) = if random {
            (
                offset,
                (buf.len() as u64).min(self.size.saturating_sub(offset)),
            )
        } else {
            (self.read_pos, buf.len() as u64)
        };
        if size == 0 || (!random && self.eof) {
            return Ok(0);
        }
        if self.used.gets >= self.limits.gets {
            return Err(ChannelError::Quota);
        }
        size = size.min(self.limits.get_size.saturating_sub(self.used.get_size));
        if size == 0 {
            return Err(ChannelError::Quota);
        }
        let want = &mut buf[..size as usize];
        let n = self.read_source(want, offset)?;
        if n == 0 && !random {
            self.eof = true;
        }
        if !random {
            self.read_pos += n as u64;
        }
        self.used.gets += 1;
        self.used.get_size += n as u64;
        self.io.reads += chunks(n as u64);
        self.io.bytes_read += n as u64;
        if let Some(h) = &mut self.etag {
            h.update(&want[..n]);
        }
        Ok(n)
    }

    fn read_source(&mut self, buf: &mut [u8], offset: u64) -> Result<usize, ChannelError> {
        let io =
            |e: std::io::Error| ChannelError::Io(format!("{};0 failed to read: {e}", self.alias));
        match &mut self.backing {
            Backing::File(f) => {
                // Read until full or EOF, as ZeroVM did (64 KiB chunks).
                let mut done = 0;
                while done < buf.len() {
                    match f.read_at(&mut buf[done..], offset + done as u64) {
                        Ok(0) => break,
                        Ok(n) => done += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(io(e)),
                    }
                }
                Ok(done)
            }
            Backing::Stream(f) => loop {
                match f.read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io(e)),
                }
            },
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
        let alias = self.alias.clone();
        let io =
            move |e: std::io::Error| ChannelError::Io(format!("{alias};0 failed to write: {e}"));
        match &mut self.backing {
            Backing::File(f) => f.write_all_at(data, offset).map_err(io),
            Backing::Stream(f) => f.write_all(data).map_err(io),
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

    /// Flushes the host source (streams); called once at session end.
    pub fn close(&mut self) {
        if let Backing::Stream(f) = &mut self.backing {
            let _ = f.flush();
        }
    }
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
}
