//! Writing ustar archives: [`pack`] for whole archives, and the three
//! streaming calls the image installer uses to write one member whose bytes
//! it checks as they go. Headers are the `tar` crate's (`Header::new_ustar`,
//! its path split over the ustar prefix, its octal fields and checksum).
//!
//! Not the crate's `Builder`: it takes a member's data as one `Read` and
//! writes the end-of-archive whenever it is dropped, while the installer
//! streams a member through its own digest and size checks into the writer.

use std::io::{self, Write};

use super::BLOCK;

/// One member of an archive [`pack`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackMember<'a> {
    /// A directory (relative path, no trailing `/`), mode 0755.
    Dir(&'a str),
    /// A regular file (relative path) and its bytes, mode 0644.
    File(&'a str, &'a [u8]),
}

/// Largest size a ustar octal field of 11 digits holds.
pub(super) const USTAR_SIZE_MAX: u64 = 0o77_777_777_777;

/// Writes a ustar archive of `members`, in the order given, to `out`:
/// deterministic bytes (uid/gid 0, no owner names, mtime 0, modes 0755/0644),
/// each member padded to [`BLOCK`], then the two zero blocks. A path longer
/// than ustar's name (100 bytes) is split over the prefix field (155) at a
/// `/`; one that cannot be split, or a size past ustar's 8 GiB, gets a pax
/// `x` header first (what GNU tar and Python's tarfile read; so does
/// [`super::TarImage`]). Paths are written as given: callers pass clean
/// relative paths (the VFS does); the crate refuses `..` and absolute ones.
pub fn pack<'a, W: Write + ?Sized>(
    out: &mut W,
    members: impl IntoIterator<Item = PackMember<'a>>,
) -> io::Result<()> {
    for member in members {
        let (path, kind, data) = match member {
            PackMember::Dir(p) => (p, tar::EntryType::Directory, &[][..]),
            PackMember::File(p, d) => (p, tar::EntryType::Regular, d),
        };
        write_header(out, path, data.len() as u64, kind)?;
        out.write_all(data)?;
        write_file_padding(out, data.len() as u64)?;
    }
    write_end(out)
}

/// Streams one regular file into a ustar archive: its header(s) as
/// [`pack`] writes them; then the caller writes exactly `size` bytes and
/// calls [`write_file_padding`], and [`write_end`] after the last member.
pub fn write_file_header<W: Write + ?Sized>(out: &mut W, path: &str, size: u64) -> io::Result<()> {
    write_header(out, path, size, tar::EntryType::Regular)
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

/// A deterministic ustar header: owner 0, no names, mtime 0.
fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h
}

/// A member's header, preceded by a pax `x` header when the path does not
/// fit ustar's fields or the size is past ustar's 8 GiB.
fn write_header<W: Write + ?Sized>(
    out: &mut W,
    path: &str,
    size: u64,
    kind: tar::EntryType,
) -> io::Result<()> {
    let mode = if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    };
    // The ustar field holds the largest size it can; pax has the real one.
    let mut member = header(kind, mode, size.min(USTAR_SIZE_MAX));
    let mut pax = String::new();
    if member.set_path(path).is_err() {
        // A failed split may have filled the prefix: start again.
        member = header(kind, mode, size.min(USTAR_SIZE_MAX));
        if path.split('/').any(|c| c == "..") || path.starts_with('/') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{path:?}: archive paths must be relative, without '..'"),
            ));
        }
        pax.push_str(&pax_record("path", path));
        member.set_path(fallback_name(path))?;
    }
    if size > USTAR_SIZE_MAX {
        pax.push_str(&pax_record("size", &size.to_string()));
    }
    if !pax.is_empty() {
        let mut ext = header(tar::EntryType::XHeader, 0o644, pax.len() as u64);
        ext.set_path("././@PaxHeader")?;
        ext.set_cksum();
        out.write_all(ext.as_bytes())?;
        out.write_all(pax.as_bytes())?;
        write_file_padding(out, pax.len() as u64)?;
    }
    member.set_cksum();
    out.write_all(member.as_bytes())
}

/// The header name of a member whose real path is in a pax record: its
/// last 100 bytes at most, cut at a character boundary, never starting
/// with `/`.
fn fallback_name(path: &str) -> &str {
    let mut start = path.len().saturating_sub(100);
    while !path.is_char_boundary(start) {
        start += 1;
    }
    path[start..].trim_start_matches('/')
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
